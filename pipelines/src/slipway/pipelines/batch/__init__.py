"""Batch scoring: one contract, one model and one lineage for a file scored in chunks.

Modules: `files` (CSV or Parquet in, Parquet out, local or `s3://`, streamed; outputs
published only when the job succeeds), `scoring` (the chunked core: the gateway's contract
check, predictions, quarantine, the rejected-share limit), `lineage` (which version scores,
and the MLflow run and audit entry a batch leaves), `kubeflow` (the same job as a KFP
pipeline over shards) and `transform` (SageMaker Batch Transform on the serving image).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.batch.files import BatchFileError, Sink, Source, open_source
    from slipway.pipelines.batch.lineage import (
        LoadedModel,
        NoSuchModel,
        load,
        load_dir,
        record,
        resolve,
    )
    from slipway.pipelines.batch.scoring import (
        BatchInputError,
        BatchPlan,
        BatchResult,
        ModelRef,
        RejectedBatch,
        default_quarantine,
        score_file,
    )

_EXPORTS = {
    "BatchFileError": "files",
    "Sink": "files",
    "Source": "files",
    "open_source": "files",
    "LoadedModel": "lineage",
    "NoSuchModel": "lineage",
    "load": "lineage",
    "load_dir": "lineage",
    "record": "lineage",
    "resolve": "lineage",
    "BatchInputError": "scoring",
    "BatchPlan": "scoring",
    "BatchResult": "scoring",
    "ModelRef": "scoring",
    "RejectedBatch": "scoring",
    "default_quarantine": "scoring",
    "score_file": "scoring",
}
__all__ = [
    "BatchFileError",
    "BatchInputError",
    "BatchPlan",
    "BatchResult",
    "LoadedModel",
    "ModelRef",
    "NoSuchModel",
    "RejectedBatch",
    "Sink",
    "Source",
    "default_quarantine",
    "load",
    "load_dir",
    "open_source",
    "record",
    "resolve",
    "score_file",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
