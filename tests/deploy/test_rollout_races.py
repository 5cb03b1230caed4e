"""Races between the controller and an operator, or between two controllers, with the
interleaving forced: each test drives Controller objects step by step through a stand-in
gateway client whose window() (one poll) runs the other party's move at a chosen poll. The
registry, audit trail and rollout state are the spoke's real ones; only the gateway is a
stand-in (the real gateway's lease handling is tested in-process below, over HTTP).

The lease reproduction of issue 14: `slipway rollback` landing during the last poll of the
last step was overridden and the rejected version promoted; `deploy --resume` checked a PID
and then claimed with nothing atomic in between; a restarted gateway restored the canary
weight of a controller that was gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slipway.pipelines import registry
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout import release
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.rollout.controller import Controller, Plan
from slipway.pipelines.rollout.guardrails import thresholds_for
from slipway.pipelines.serving.window import VariantWindow, Window
from slipway.pipelines.spoke import Spoke as SpokeContext

from .conftest import Spoke

FAR_OWNER = "far-host:4242:gone"  # a controller on another machine


def healthy(requests: int = 400) -> VariantWindow:
    return VariantWindow(
        requests=requests,
        errors=0,
        p95_ms=5.0,
        latencies_ms=[5.0] * 200,
        predictions=[0, 1] * 100,
    )


class StandInGateway:
    """A stand-in for GatewayClient: serves whatever the aliases say, reports identical
    healthy readings for both variants, and runs `on_poll(weight, poll)` inside each poll."""

    def __init__(self, spoke: Spoke, on_poll: Callable[[int, int], None] | None = None) -> None:
        self.spoke = spoke
        self.on_poll = on_poll
        self.weight, self.shadow, self.seq, self.polls = 0, False, 0, 0
        self.weights: list[int] = []

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def reload(self) -> dict[str, Any]:
        client = registry.client(self.spoke.root)
        found = {
            alias: registry.version_by_alias(client, self.spoke.config.model_name, alias)
            for alias in (registry.CHAMPION, registry.CHALLENGER)
        }
        return {a: (None if v is None else str(v.version)) for a, v in found.items()}

    def set_weights(self, challenger: int, shadow: bool = False) -> dict[str, Any]:
        self.weight, self.shadow = challenger, shadow
        self.weights.append(challenger)
        self.seq += 1
        return {"seq": self.seq, "weight": challenger}

    def window(self, after: int) -> Window:
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll(self.weight, self.polls)
        return Window(seq=self.seq, champion=healthy(), challenger=healthy())

    def close(self) -> None:
        pass


def plan(spoke: Spoke) -> Plan:
    # step_seconds 0: every step passes at its first poll, so "the last poll of the 100%
    # step" is the first poll at weight 100, deterministically.
    return Plan(
        shadow_seconds=0,
        steps=[10, 100],
        step_seconds=0,
        min_requests=10,
        step_timeout=60,
        thresholds=thresholds_for(spoke.config),
    )


def controller(spoke: Spoke, gateway: StandInGateway, messages: list[str]) -> Controller:
    return Controller(
        SpokeContext.open(spoke.root, spoke.config), gateway, plan(spoke), echo=messages.append
    )  # type: ignore[arg-type]


def aliases(spoke: Spoke) -> dict[str, str | None]:
    client = registry.client(spoke.root)
    out = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS):
        found = registry.version_by_alias(client, spoke.config.model_name, alias)
        out[alias] = None if found is None else str(found.version)
    return out


def promotions(spoke: Spoke) -> list[str]:
    return [e["version"] for e in audit.read(spoke.root) if e["action"] == "promote"]


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(rollout_state.LEASE_ENV, "60")
    yield


def test_a_rollback_during_the_last_poll_of_the_last_step_wins_over_promotion(
    spoke: Spoke, short_lease: None
):
    operator_messages: list[str] = []
    operator = Controller(
        SpokeContext.open(spoke.root, spoke.config),
        StandInGateway(spoke),
        plan(spoke),
        echo=operator_messages.append,
    )
    landed: list[int] = []

    def rollback_lands(weight: int, poll: int) -> None:
        # The controller has renewed its lease and checked the row for this poll; the
        # operator's `slipway rollback` now marks the rollout rolling_back (its first,
        # deciding act), before the controller has read the window that passes the step.
        if weight == 100 and not landed:
            row = rollout_state.open_rollout(spoke.root)
            assert row is not None and row.status == rollout_state.RUNNING
            assert operator.mark_rolling_back(row, "manual rollback: drill at 100%")
            landed.append(poll)

    messages: list[str] = []
    gateway = StandInGateway(spoke, on_poll=rollback_lands)
    outcome = controller(spoke, gateway, messages).deploy("2")

    assert landed, "the rollout never reached its 100% step"
    # The controller's promotion compare-and-set failed: it stopped and said why.
    assert outcome.status == rollout_state.ROLLING_BACK, outcome
    assert outcome.reason == "manual rollback: drill at 100%"
    assert any("closed by another command: rolling_back" in m for m in messages), messages
    assert aliases(spoke)["champion"] == "1" and promotions(spoke) == ["1"]
    row = rollout_state.latest(spoke.root)
    assert row.status == rollout_state.ROLLING_BACK and row.owner == operator.owner

    # The operator's rollback completes; the registry never saw version 2 promoted.
    done = operator.abort("manual rollback: drill at 100%")
    assert done.status == rollout_state.ROLLED_BACK
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert promotions(spoke) == ["1"]
    assert [e["action"] for e in audit.read(spoke.root)][-1] == "rollback"


def test_an_abort_while_a_live_controller_promotes_waits_for_it_then_reverts(
    spoke: Spoke, short_lease: None
):
    """The other order: the controller won the race to promoting. The abort waits for the
    live controller to finish moving the aliases (its lease bounds the wait), then reverts
    the promotion: the abort still wins, and no alias move lands after the revert."""
    import threading

    operator_waiting = threading.Event()
    operator_done: list[Any] = []

    def operator_echo(message: str) -> None:
        if "waiting for it to finish" in message:
            operator_waiting.set()

    operator = Controller(
        SpokeContext.open(spoke.root, spoke.config),
        StandInGateway(spoke),
        plan(spoke),
        echo=operator_echo,
    )
    operator_thread = threading.Thread(
        target=lambda: operator_done.append(operator.abort("manual rollback: drill")),
    )
    real_promote = release.promote

    def abort_lands_mid_promotion(*args: Any, **kwargs: Any) -> Any:
        assert rollout_state.open_rollout(spoke.root).status == rollout_state.PROMOTING
        operator_thread.start()
        # Failure guard only: the operator must reach its wait; no speed is claimed.
        assert operator_waiting.wait(120), "the abort never started waiting"
        return real_promote(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(release, "promote", abort_lands_mid_promotion)
    try:
        outcome = controller(spoke, StandInGateway(spoke), []).deploy("2")
    finally:
        mp.undo()
    operator_thread.join(120)
    assert not operator_thread.is_alive()
    assert outcome.status == rollout_state.PROMOTED  # the controller finished undisturbed
    assert operator_done and operator_done[0].status == rollout_state.ROLLED_BACK
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert promotions(spoke) == ["1", "2"]
    assert [e["action"] for e in audit.read(spoke.root)][-1] == "rollback"
    assert rollout_state.latest(spoke.root).status == rollout_state.ROLLED_BACK


def test_a_controller_that_stalled_past_its_lease_mid_promotion_undoes_its_late_promotion(
    spoke: Spoke, short_lease: None
):
    """The controller stalls inside its promotion past its lease; an abort takes the rollout
    over, finishes and reverts the promotion; then the stalled controller's alias moves land.
    Its closing compare-and-set fails, and it undoes them: champion 1, as the abort decided."""
    operator = Controller(
        SpokeContext.open(spoke.root, spoke.config), StandInGateway(spoke), plan(spoke), echo=print
    )
    real_promote = release.promote
    entered: list[bool] = []
    aborted: list[Any] = []

    def stall_then_abort(*args: Any, **kwargs: Any) -> Any:
        if not entered:
            entered.append(True)  # the abort's own promote() below runs straight through
            row = rollout_state.open_rollout(spoke.root)
            assert row.status == rollout_state.PROMOTING
            assert rollout_state.update(spoke.root, row.id, lease_expires_at=0.0)  # stalled
            aborted.append(operator.abort("manual rollback: controller stalled"))
        return real_promote(*args, **kwargs)

    messages: list[str] = []
    mp = pytest.MonkeyPatch()
    mp.setattr(release, "promote", stall_then_abort)
    try:
        outcome = controller(spoke, StandInGateway(spoke), messages).deploy("2")
    finally:
        mp.undo()
    assert aborted and aborted[0].status == rollout_state.ROLLED_BACK
    assert outcome.status == rollout_state.ROLLED_BACK, outcome
    assert any("closed by another command: rolled_back" in m for m in messages), messages
    assert aliases(spoke)["champion"] == "1"
    assert rollout_state.latest(spoke.root).status == rollout_state.ROLLED_BACK


def far_rollout_at_10_percent(spoke: Spoke, lease_left: float) -> rollout_state.RolloutRow:
    """The state a controller on another machine leaves when it dies at the 10% step."""
    client = registry.client(spoke.root)
    client.set_registered_model_alias(spoke.config.model_name, registry.CHALLENGER, "2")
    row = rollout_state.start(
        spoke.root,
        model=spoke.config.model_name,
        version="2",
        champion_version="1",
        plan=plan(spoke).as_dict() | {"bootstrap": False},
        pid=4242,
        owner=FAR_OWNER,
        lease=lease_left,
    )
    assert rollout_state.update(spoke.root, row.id, phase="10%", step_index=0, weight=10)
    return rollout_state.get(spoke.root, row.id)


def test_resume_refuses_a_rollout_whose_lease_is_held_on_another_host(
    spoke: Spoke, short_lease: None
):
    row = far_rollout_at_10_percent(spoke, lease_left=600.0)
    with pytest.raises(release.ReleaseError, match=r"driven by far-host:4242:gone .*lease"):
        controller(spoke, StandInGateway(spoke), []).resume()
    after = rollout_state.get(spoke.root, row.id)
    assert (after.owner, after.status, after.weight) == (FAR_OWNER, rollout_state.RUNNING, 10)


def test_two_resumers_at_once_exactly_one_drives_the_rollout(spoke: Spoke, short_lease: None):
    far_rollout_at_10_percent(spoke, lease_left=-1.0)  # its lease is over
    second_messages: list[str] = []
    second = controller(spoke, StandInGateway(spoke), second_messages)
    refused: list[str] = []

    def second_resumer_arrives(weight: int, poll: int) -> None:
        if not refused:
            try:
                second.resume()
            except release.ReleaseError as exc:
                refused.append(str(exc))

    first_gateway = StandInGateway(spoke, on_poll=second_resumer_arrives)
    first = controller(spoke, first_gateway, [])
    outcome = first.resume()

    assert refused and f"driven by {first.owner}" in refused[0], refused
    assert outcome.status == rollout_state.PROMOTED
    assert promotions(spoke) == ["1", "2"]  # promoted once, by the one that won
    assert rollout_state.latest(spoke.root).owner == first.owner


def test_a_controller_whose_lease_was_taken_over_stops_without_touching_the_registry(
    spoke: Spoke, short_lease: None
):
    """A controller that stalled past its lease (a long GC pause, a suspended laptop) and
    was resumed elsewhere finds out at its next heartbeat and stops."""
    far_rollout_at_10_percent(spoke, lease_left=-1.0)
    stalled = controller(spoke, StandInGateway(spoke), [])
    new_owner = rollout_state.new_owner()

    def lease_taken_over(weight: int, poll: int) -> None:
        if poll == 1:
            row = rollout_state.open_rollout(spoke.root)
            assert rollout_state.update(spoke.root, row.id, lease_expires_at=0.0)
            assert rollout_state.claim(
                spoke.root, rollout_state.get(spoke.root, row.id), new_owner, 60
            )

    stalled.gateway = StandInGateway(spoke, on_poll=lease_taken_over)  # type: ignore[assignment]
    messages: list[str] = []
    stalled._echo = messages.append
    outcome = stalled.resume()
    assert outcome.status == rollout_state.RUNNING  # left to its new owner
    assert any("closed by another command" in m for m in messages)
    assert promotions(spoke) == ["1"] and aliases(spoke)["champion"] == "1"
    row = rollout_state.latest(spoke.root)
    assert row.owner == new_owner and row.status == rollout_state.RUNNING


def test_a_gateway_serves_the_champion_only_once_the_controllers_lease_expired(
    spoke: Spoke, short_lease: None
):
    """The real gateway, in-process over HTTP: restarted while a rollout is open, it restores
    the canary weight only if a controller still holds the lease; a running gateway drops a
    canary whose lease expires at its next periodic check. A canary nobody watches serves
    no traffic."""
    from starlette.testclient import TestClient

    from slipway.pipelines.rollout.traffic import replay_rows
    from slipway.pipelines.serving.gateway import Gateway, build_app

    row = far_rollout_at_10_percent(spoke, lease_left=-1.0)  # its controller is gone
    auth = {"authorization": "Bearer s3cret"}
    record = replay_rows(spoke.root, spoke.config)[0]

    def versions_served(client: TestClient, n: int) -> set[str]:
        served = set()
        for _ in range(n):
            answer = client.post("/invocations", json={"dataframe_records": [record]})
            assert answer.status_code == 200, answer.text
            served.add(answer.headers["x-slipway-version"])
        return served

    gateway = Gateway(spoke.root, spoke.config, sample=False)
    with TestClient(build_app(gateway, admin_token="s3cret")) as client:
        state = client.get("/admin/state", headers=auth).json()
        assert (state["champion"], state["challenger"], state["weight"]) == ("1", "2", 0)
        assert "lease expired" in state["held_back"] and f"rollout {row.id}" in state["held_back"]
        assert versions_served(client, 20) == {"1"}

        # A controller takes the rollout over (resume): the reload restores its weight.
        owner = rollout_state.new_owner()
        assert rollout_state.claim(spoke.root, row, owner, 60.0)
        state = client.post("/admin/reload", headers=auth, json={}).json()
        assert (state["weight"], state["held_back"]) == (10, None)
        assert versions_served(client, 20) == {"1", "2"}  # the canary is back at 10%

        # That controller dies: once its lease is over, the periodic check drops the canary.
        assert not client.portal.call(gateway.check_lease)  # lease still live: kept
        assert rollout_state.update(spoke.root, row.id, expected_owner=owner, lease_expires_at=0)
        assert client.portal.call(gateway.check_lease)
        state = client.get("/admin/state", headers=auth).json()
        assert state["weight"] == 0 and "lease expired" in state["held_back"]
        assert versions_served(client, 20) == {"1"}
    # The durable row is untouched: resume or rollback still decide the rollout.
    after = rollout_state.get(spoke.root, row.id)
    assert (after.status, after.weight) == (rollout_state.RUNNING, 10)
