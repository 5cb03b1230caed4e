"""Serving: the gateway that answers predictions for champion and challenger.

Modules: `gateway` (the ASGI app and its server, composed of protocol adapters over one
scoring core: `core` and `scoring`, `mlflow_protocol` for /invocations, `oip` for the Open
Inference Protocol's /v2, `admin` for the controller's /admin/*, with `limits`, `predictors`
and `http_common` beside them), `client` (talking to a running gateway), `batching`
(concurrent requests into one predict call), `parsing` (scoring requests checked against
the data contract), `drift_sample` (the bounded sample drift monitoring reads),
`sagemaker` (the image's `serve` entry: single-model mode on SageMaker's contract) and
`guardrail_metrics` (what that container publishes to CloudWatch for the rollback alarms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines._lazy import lazy_exports

if TYPE_CHECKING:
    from slipway.pipelines.serving.batching import (
        Batcher,
        Overloaded,
        PredictTimeout,
        Retired,
    )
    from slipway.pipelines.serving.client import (
        BadGatewayUrl,
        GatewayClient,
        GatewayError,
        GatewayUnreachable,
        resolve_url,
    )
    from slipway.pipelines.serving.drift_sample import (
        SampleWriter,
        read_samples,
    )
    from slipway.pipelines.serving.gateway import (
        Gateway,
        Limits,
        build_app,
        serve,
    )
    from slipway.pipelines.serving.guardrail_metrics import (
        GuardrailPublisher,
        Reference,
        load_reference,
    )
    from slipway.pipelines.serving.parsing import (
        BadRequest,
        parse_body,
        parse_csv,
        parse_rows,
    )
    from slipway.pipelines.serving.sagemaker import (
        ServingSettings,
        ServingSetupError,
    )
    from slipway.pipelines.serving.window import VariantWindow, Window

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
