"""MLflow's evaluation pictures of the new model, drawn once the gate has decided.

`mlflow.models.evaluate` draws five images for a classifier (ROC, precision-recall, lift,
calibration, confusion matrix; two for a regressor): about 0.9 s of a 1 s evaluation, and
nothing the gate or the model card reads. The gate reads the metrics; the card reads the
metrics and the evaluate step's own plots (`plots/`). So the gate step records how to draw
each image while MLflow evaluates (`deferred`), decides, records its verdict, and only then
has them drawn and logged on the run, with the same names MLflow gives them
(`after_verdict`):

- in the laptop's step daemon (zygote.background_allowed), by a process of their own at a
  lower priority, so `slipway train` returns without waiting for them: they appear on the
  run a few seconds later, and its tag `slipway.evaluation_pictures` says `drawing`, then
  `drawn` (or `failed: <why>`, with the traceback in `<run key>.pictures.log` beside the run's
  log);
- everywhere else (Kubeflow, CI's zygote per run, a fresh interpreter per step), at the end of
  the gate step, so a finished run always has them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.pipelines import registry

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "BINARY_CLASSIFIER_PICTURES",
    "DRAWING",
    "DRAWN",
    "FAILED",
    "Picture",
    "after_verdict",
    "deferred",
    "log_pictures",
    "wait_for_pictures",
]

# What MLflow 3 draws for a binary classifier (a regressor gets none of these).
BINARY_CLASSIFIER_PICTURES = frozenset(
    {
        "roc_curve_plot.png",
        "precision_recall_curve_plot.png",
        "lift_curve_plot.png",
        "calibration_curve_plot.png",
        "confusion_matrix.png",
    }
)
DRAWING = "drawing"
DRAWN = "drawn"
FAILED = "failed"


@dataclass(frozen=True)
class Picture:
    """One of MLflow's evaluation images, not drawn yet: its file name and how to draw it
    (MLflow's own plotting call, holding the curves it computed)."""

    name: str
    draw: Callable[[], Any]


@contextlib.contextmanager
def deferred() -> Iterator[list[Picture]]:
    """While open, MLflow's built-in evaluators record their images instead of drawing them;
    yields the list they are recorded in. Should a later MLflow rename the method, the images
    are drawn during the evaluation as before and the list stays empty: slower, never lost."""
    from mlflow.models.evaluation.default_evaluator import BuiltInEvaluator

    pictures: list[Picture] = []
    original = getattr(BuiltInEvaluator, "_log_image_artifact", None)
    if original is None:
        yield pictures
        return

    def record(self: Any, do_plot: Callable[[], Any], artifact_name: str) -> None:
        prefix = self.evaluator_config.get("metric_prefix", "")
        pictures.append(Picture(f"{prefix}{artifact_name}.png", do_plot))

    BuiltInEvaluator._log_image_artifact = record  # pyright: ignore[reportAttributeAccessIssue]
    try:
        yield pictures
    finally:
        BuiltInEvaluator._log_image_artifact = original  # pyright: ignore[reportAttributeAccessIssue]


def log_pictures(pictures: list[Picture], client: MlflowClient, run_id: str) -> list[str]:
    """Draw each picture as MLflow would have (its matplotlib style) and log it at the root
    of the run's artifacts; returns the names logged. A picture that fails to draw is left
    out with a warning, as MLflow does."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from mlflow.models.evaluation.default_evaluator import (
        _matplotlib_config,  # pyright: ignore[reportPrivateUsage]
    )

    logged: list[str] = []
    style: Any = _matplotlib_config
    with tempfile.TemporaryDirectory() as scratch, matplotlib.rc_context(style):
        for picture in pictures:
            path = Path(scratch) / picture.name
            try:
                pyplot.clf()
                picture.draw()
                pyplot.savefig(path, bbox_inches="tight")
            except Exception as exc:
                print(f"warning: MLflow's picture {picture.name} failed to draw: {exc!r}")
                continue
            finally:
                pyplot.close(pyplot.gcf())
            client.log_artifact(run_id, str(path))
            logged.append(picture.name)
    return logged


def after_verdict(
    pictures: list[Picture], tracking_uri: str, run_id: str, log_path: Callable[[], Path]
) -> None:
    """Have the pictures drawn and logged on the run: in the background when the step runs
    in the laptop's step daemon, else now (see the module's docstring). `log_path` gives the
    background's log file (asked only then: a cluster's step has no place for it)."""
    if not pictures:
        return
    from slipway.pipelines.training import zygote

    client = registry.client_for(tracking_uri)
    if zygote.background_allowed() and _can_forget_connections():
        log = log_path()
        client.set_tag(run_id, registry.TAG_EVALUATION_PICTURES, DRAWING)
        pid = os.fork()
        if pid == 0:
            _in_background(pictures, tracking_uri, run_id, log)  # never returns
        print(
            f"MLflow's {len(pictures)} evaluation pictures are drawn in the background "
            f"(process {pid}): they appear on run {run_id} in a few seconds"
        )
        return
    logged = log_pictures(pictures, client, run_id)
    client.set_tag(run_id, registry.TAG_EVALUATION_PICTURES, DRAWN)
    print(f"logged MLflow's evaluation pictures: {', '.join(logged)}")


def wait_for_pictures(client: MlflowClient, run_id: str, timeout_s: float = 240.0) -> str | None:
    """The run's pictures state once it is no longer `drawing` (`drawn`, `failed: ...`, or
    None for a run whose gate never evaluated), or `drawing` still after `timeout_s`: for a
    notebook or a test that wants MLflow's images of a run that has just ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.get_run(run_id).data.tags.get(registry.TAG_EVALUATION_PICTURES)
        if state != DRAWING or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def _store_cache() -> Any:
    """MLflow's cache of tracking stores (one engine and pool per URI), or None."""
    from mlflow.tracking._tracking_service import utils

    registry_ = getattr(utils, "_tracking_store_registry", None)
    return getattr(type(registry_), "_get_store_with_resolved_uri", None)


def _can_forget_connections() -> bool:
    return callable(getattr(_store_cache(), "cache_clear", None))


def _in_background(pictures: list[Picture], tracking_uri: str, run_id: str, log_path: Path) -> None:
    """The forked child: leave the step's session and output, draw, log, tag; never returns.

    It never touches the connections it inherited from the step (a database connection used
    by two processes corrupts its state): MLflow's cache of stores is emptied first, so the
    client below opens its own."""
    code = 1
    try:
        os.setsid()  # the command's Ctrl-C or the step's end is not the pictures' end
        output = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(output, 1)  # off the step's pipe: the command stops waiting for the step
        os.dup2(output, 2)
        os.close(output)
        with contextlib.suppress(OSError):
            os.nice(10)  # the next commands come first
        _store_cache().cache_clear()
        client = registry.client_for(tracking_uri)
        started = time.process_time()
        try:
            logged = log_pictures(pictures, client, run_id)
            client.set_tag(run_id, registry.TAG_EVALUATION_PICTURES, DRAWN)
            print(
                f"run {run_id}: logged {', '.join(logged)} "
                f"({time.process_time() - started:.1f} s of CPU)",
                flush=True,
            )
            code = 0
        except Exception as exc:
            import traceback

            traceback.print_exc()
            client.set_tag(run_id, registry.TAG_EVALUATION_PICTURES, f"{FAILED}: {exc}"[:250])
    finally:
        with contextlib.suppress(Exception):
            import sys

            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
