"""The gateway's readings since a sequence number, as the rollout reads them.

The wire form is /admin/window's JSON; these are its typed reading. Kept free of httpx and
numpy so the policy pack and infrastructure code, which import the judge's settings, need
only the base install.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["VariantWindow", "Window"]


@dataclass(frozen=True)
class VariantWindow:
    """One variant's readings over a step's window, as /admin/window reports them."""

    requests: int
    errors: int
    p95_ms: float | None
    latencies_ms: Sequence[float]
    predictions: Sequence[Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantWindow:
        return cls(
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            p95_ms=data.get("p95_ms"),
            latencies_ms=_samples(data.get("latencies_ms")),
            predictions=_samples(data.get("predictions")),
        )


def _samples(values: Sequence[Any] | None) -> Sequence[Any]:
    return [] if values is None else values


@dataclass(frozen=True)
class Window:
    """The gateway's readings since a sequence number: both variants, and where it ended
    (the next window starts after `seq`). The wire form is /admin/window's JSON."""

    seq: int
    champion: VariantWindow
    challenger: VariantWindow
    # Why these readings cannot be judged yet, when they cannot (empty: they can). Prometheus
    # sets it on KServe until both revisions were scraped after the step began: an empty
    # champion there is "not read yet", not "served nothing".
    pending: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Window:
        return cls(
            seq=int(data.get("seq", 0)),
            champion=VariantWindow.from_dict(data["champion"]),
            challenger=VariantWindow.from_dict(data["challenger"]),
        )
