"""The rollout chart's geometry (a step line of the weight and the error rates, scaled), and
how long the console keeps the template's release tags."""

from __future__ import annotations

from slipway.pipelines.hub.console_chart import PANEL, chart
from slipway.pipelines.hub.overview import Point, RolloutView


def _rollout(*points: Point) -> RolloutView:
    return RolloutView(
        id=1,
        version="2",
        champion_version="1",
        status="running",
        phase="canary",
        weight=points[-1].weight if points else 0,
        reason="",
        started="",
        finished=None,
        is_open=True,
        points=points,
        events=(),
    )


def _xy(points: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in points.split())]


def test_weight_is_a_step_line_from_bottom_to_top() -> None:
    drawn = chart(
        _rollout(
            Point(0.0, "canary", 10, {"error_rate": 0.02, "champion_error_rate": 0.01}),
            Point(5.0, "canary", 50, {"error_rate": 0.04, "champion_error_rate": None}),
            Point(10.0, "full", 100, {}),
        )
    )
    weight = _xy(drawn.weight.points)
    # Each new weight is reached by a vertical step: (x, old y) then (x, new y).
    assert [y for _, y in weight] == [PANEL * 0.9, PANEL * 0.9, PANEL * 0.5, PANEL * 0.5, 0.0]
    assert weight[0][0] < weight[2][0] < weight[4][0]
    assert drawn.seconds == 10.0
    # Error rates share one scale topped by the largest reading; missing readings are gaps.
    assert drawn.error_top == 0.04
    challenger, champion = (_xy(line.points) for line in drawn.errors)
    assert len(challenger) == 2 and len(champion) == 1
    bottom = PANEL + drawn.gap + PANEL
    assert challenger[1][1] == bottom - PANEL  # 4 % is the top of the panel
    assert champion[0][1] == bottom - PANEL / 4


def test_an_empty_rollout_draws_empty_lines() -> None:
    drawn = chart(_rollout())
    assert drawn.weight.points == "" and all(line.points == "" for line in drawn.errors)
    assert drawn.error_top == 0.01


def test_release_tags_are_kept_for_their_ttl_then_read_again() -> None:
    from packaging.version import Version

    from slipway.pipelines.hub.console_app import ReleaseTags

    now = [0.0]
    tags = ReleaseTags(ttl=300, clock=lambda: now[0])
    tags.current()["src"] = [Version("0.1.0")]
    now[0] = 299.0
    assert tags.current() == {"src": [Version("0.1.0")]}  # a page view within the TTL
    now[0] = 301.0
    assert tags.current() == {}  # a new release is seen after the TTL
