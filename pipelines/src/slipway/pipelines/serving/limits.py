"""What one gateway accepts before it refuses work: body size, the model's deadline, queue.

Every limit is settable by environment (SLIPWAY_* or the SageMaker toolkits' own names), so
the same image takes an operator's limits on SageMaker and on KServe alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from slipway.pipelines.settings import Settings


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
        """The limits in the environment (settings.py); a bad value is a SettingError."""
        env = Settings.from_env(environ)
        default = cls()
        timeout = env.predict_timeout_s or env.sagemaker_timeout_s  # the toolkits' name
        return cls(
            max_body_bytes=int(env.max_body_bytes or default.max_body_bytes),
            predict_timeout_s=timeout or default.predict_timeout_s,
            max_queued_requests=int(env.max_queued_requests or default.max_queued_requests),
            max_queued_rows=int(env.max_queued_rows or default.max_queued_rows),
        )
