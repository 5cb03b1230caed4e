"""Draw rollouts over time: challenger weight and both variants' error rates (a PNG).

Reads the readings the controller stored in the durable rollout state, so the chart can be
drawn after the fact, for the demo or a post-mortem.
"""

from __future__ import annotations

from pathlib import Path

from slipway.pipelines.rollout import state as rollout_state

# The challenger's share once a rollout closes: all of it when promoted, none when rolled back.
CLOSING_WEIGHT = {rollout_state.PROMOTED: 100, rollout_state.ROLLED_BACK: 0}


def draw_rollouts(root: Path, path: Path) -> Path:
    """One timeline of every rollout of this spoke: weight (%) and error rates (%)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rollout_state.all_rollouts(root)
    if not rows:
        raise ValueError("no rollout has run in this spoke yet; nothing to draw")
    t0 = rows[0].started_at
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    for row in rows:
        readings = rollout_state.readings(root, row.id)
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
    bottom.set_ylabel("challenger error rate (%)")
    bottom.set_xlabel("seconds since the first rollout")
    bottom.legend(loc="center left", fontsize=8)
    fig.suptitle(f"Rollouts of {rows[0].model}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
