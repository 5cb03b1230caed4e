"""Draw rollouts over time (a PNG): challenger weight; the challenger's error rate with the
judge's evidence (its lower bound and the rollback boundary); and the latency and drift tests'
p-values against the level at which they roll back.

Reads the readings the controller stored in the durable rollout state, so the chart can be
drawn after the fact, for the demo or a post-mortem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slipway.pipelines._compat import spoke_or_root
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.spoke import Spoke

# The challenger's share once a rollout closes: all of it when promoted, none when rolled back.
CLOSING_WEIGHT = {rollout_state.PROMOTED: 100, rollout_state.ROLLED_BACK: 0}


@spoke_or_root
def draw_rollouts(spoke: Spoke, path: Path) -> Path:
    """One timeline of every rollout of this spoke: weight (%) and error rates (%)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = spoke.rollouts.all_rollouts()
    if not rows:
        raise ValueError("no rollout has run in this spoke yet; nothing to draw")
    t0 = rows[0].started_at
    fig, (top, bottom, tests) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    for row in rows:
        readings = spoke.rollouts.readings(row.id)
        times = [r["at"] - t0 for r in readings]
        weights = [100 if r["phase"] == "smoke" else r["weight"] for r in readings]
        errors = [100 * (r.get("error_rate") or 0.0) for r in readings]
        end = (row.finished_at or row.updated_at) - t0
        if row.status in CLOSING_WEIGHT:  # where the traffic went when the rollout closed
            times, weights = [*times, end], [*weights, CLOSING_WEIGHT[row.status]]
        label = f"v{row.version} ({row.status})"
        (line,) = top.step(times, weights, where="post", marker="o", markersize=2, label=label)
        bottom.plot(
            times[: len(errors)],
            errors,
            marker="o",
            markersize=2,
            label=label,
            color=line.get_color(),
        )
        _evidence(bottom, tests, readings, t0, line.get_color())
        top.axvline(end, color="grey", linestyle=":", linewidth=0.8)
        top.annotate(
            f"v{row.version} {row.status}",
            (end, 108),
            fontsize=8,
            ha="right",
            color=line.get_color(),
        )
    top.set_ylabel("challenger weight (%)")
    top.set_ylim(-5, 120)
    bottom.set_ylabel("challenger error rate (%)\n(dashed: rollback above)")
    bottom.legend(loc="center left", fontsize=8)
    tests.set_ylabel("-log10 p\n(x: latency, +: drift;\n_: rollback above)")
    tests.set_xlabel("seconds since the first rollout")
    fig.suptitle(f"Rollouts of {rows[0].model}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _evidence(errors_ax: Any, tests_ax: Any, readings: list[dict], t0: float, color: str) -> None:
    """The judge's statistics where it computed them: the challenger's certain error rate
    (dotted) against the rollback boundary (dashed), and each look's p-values against the
    level below which it rolls back (short bars)."""
    import math

    bounds = [(r["at"] - t0, r) for r in readings if r.get("error_boundary") is not None]
    if bounds:
        times = [t for t, _ in bounds]
        errors_ax.plot(times, [100 * r["error_low"] for _, r in bounds], ":", color=color)
        errors_ax.plot(times, [100 * r["error_boundary"] for _, r in bounds], "--", color=color)
    for key, alpha, marker in (
        ("latency_p", "latency_alpha", "x"),
        ("drift_p", "drift_alpha", "+"),
    ):
        looks = [(r["at"] - t0, r) for r in readings if r.get(key) is not None]
        if not looks:
            continue
        times = [t for t, _ in looks]
        tests_ax.scatter(
            times, [-math.log10(max(r[key], 1e-300)) for _, r in looks], marker=marker, color=color
        )
        tests_ax.scatter(
            times, [-math.log10(r[alpha]) for _, r in looks], marker="_", color=color, s=200
        )
