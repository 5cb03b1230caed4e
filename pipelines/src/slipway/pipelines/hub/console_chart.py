"""The rollout chart as inline SVG geometry, drawn on the server.

No chart library: two panels of polylines (the challenger's weight; the challenger's and the
champion's error rates) are a few lines of arithmetic, need no script in the browser, and
cannot break with a vendored library's next release. The page polls the fragment that holds
the chart, so the chart is live without a client-side model.
"""

from __future__ import annotations

from dataclasses import dataclass

from slipway.pipelines.hub.overview import RolloutView

WIDTH = 640
PANEL = 150  # height of each panel, in SVG units
GAP = 36
LEFT = 48


@dataclass(frozen=True)
class Line:
    label: str
    css: str  # the class that colours it (console.css)
    points: str  # "x,y x,y ..." in SVG units


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    weight: Line
    errors: tuple[Line, ...]
    error_top: float  # the error panel's top value, as a fraction
    seconds: float  # the time axis' end
    panel: int
    gap: int
    left: int


def _x(at: float, seconds: float) -> float:
    return round(LEFT + (WIDTH - LEFT - 8) * (at / seconds), 1)


def chart(rollout: RolloutView) -> Chart:
    """Weight (a step line, 0 to 100 %) over error rates (0 to the largest seen, at least
    1 %), both against seconds since the rollout started."""
    points = rollout.points
    seconds = max([p.at for p in points] + [1.0])
    steps: list[str] = []
    for p in points:
        y = round(PANEL - PANEL * p.weight / 100, 1)
        if steps:  # hold the previous weight until this reading (a step, not a ramp)
            steps.append(f"{_x(p.at, seconds)},{steps[-1].split(',')[1]}")
        steps.append(f"{_x(p.at, seconds)},{y}")
    rates = [
        value
        for p in points
        for key in ("error_rate", "champion_error_rate")
        if (value := p.readings.get(key)) is not None
    ]
    top = max([*rates, 0.01])
    base = PANEL + GAP

    def rate_line(key: str, label: str, css: str) -> Line:
        xy = [
            f"{_x(p.at, seconds)},{round(base + PANEL - PANEL * value / top, 1)}"
            for p in points
            if (value := p.readings.get(key)) is not None
        ]
        return Line(label, css, " ".join(xy))

    return Chart(
        width=WIDTH,
        height=2 * PANEL + GAP + 20,
        weight=Line("challenger weight", "weight", " ".join(steps)),
        errors=(
            rate_line("error_rate", "challenger errors", "challenger"),
            rate_line("champion_error_rate", "champion errors", "champion"),
        ),
        error_top=top,
        seconds=seconds,
        panel=PANEL,
        gap=GAP,
        left=LEFT,
    )
