"""What one gateway accepts before it refuses work: body size, the model's deadline, queue.

Every limit is settable by environment (SLIPWAY_* or the SageMaker toolkits' own names), so
the same image takes an operator's limits on SageMaker and on KServe alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_number(name: str, default: float, environ: dict[str, str]) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be a number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


LIMIT_ENV = {
    "max_body_bytes": "SLIPWAY_MAX_BODY_BYTES",
    "predict_timeout_s": "SLIPWAY_PREDICT_TIMEOUT_S",
    "max_queued_requests": "SLIPWAY_MAX_QUEUED_REQUESTS",
    "max_queued_rows": "SLIPWAY_MAX_QUEUED_ROWS",
}


@dataclass(frozen=True)
class Limits:
    """What one gateway accepts before it refuses work (all settable by environment)."""

    max_body_bytes: int = 6 * 1024 * 1024  # SageMaker's own InvokeEndpoint body limit
    predict_timeout_s: float = 30.0  # SageMaker gives up on a request at 60 s
    max_queued_requests: int = 1024  # per variant; beyond it requests are shed
    max_queued_rows: int = 100_000  # per variant, the same in rows (~100 MB of tuples)
    retry_after_s: int = 1
    inline_parse_bytes: int = 32 * 1024  # larger bodies are parsed off the event loop

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        env = dict(os.environ if environ is None else environ)
        default = cls()
        timeout = env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT")  # the SageMaker toolkits' name
        if timeout and not env.get(LIMIT_ENV["predict_timeout_s"]):
            env[LIMIT_ENV["predict_timeout_s"]] = timeout
        return cls(
            max_body_bytes=int(
                _env_number(LIMIT_ENV["max_body_bytes"], default.max_body_bytes, env)
            ),
            predict_timeout_s=_env_number(
                LIMIT_ENV["predict_timeout_s"], default.predict_timeout_s, env
            ),
            max_queued_requests=int(
                _env_number(LIMIT_ENV["max_queued_requests"], default.max_queued_requests, env)
            ),
            max_queued_rows=int(
                _env_number(LIMIT_ENV["max_queued_rows"], default.max_queued_rows, env)
            ),
        )
