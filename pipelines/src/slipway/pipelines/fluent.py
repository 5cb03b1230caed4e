"""MLflow's fluent API (log_model, load_model) pointed at one spoke's registry, for a block.

`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which every later
`registry.client(...)` in the process and every child process would follow to that spoke:
one gateway or test touching spoke A would silently send the next command to A's registry.
This context manager restores the environment on exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slipway.pipelines import registry


@contextmanager
def fluent_registry(root: Path) -> Iterator[None]:
    """The fluent API uses this spoke's registry inside the block; the environment is
    restored on exit (the fluent API itself keeps the URI until the next block sets one)."""
    import mlflow

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    uri = registry.tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
