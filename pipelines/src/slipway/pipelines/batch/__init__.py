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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
