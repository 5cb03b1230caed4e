"""The rollout controller: shadow, canary steps, guardrails, then promotion or rollback.

The plan comes from slipway.toml [rollout] and the risk tier (tiers.py); only the step
and shadow durations may be overridden (tests and demos hold steps for seconds, not
minutes). Every decision is written to the durable rollout state before it is acted on,
so a controller killed at any point is resumed (`slipway deploy --resume`) or aborted
(`slipway rollback`) into a consistent registry, gateway and audit trail.

Every state change is a compare-and-set from the state the controller expects, under its
own lease (owner host:pid:uuid, renewed every poll). An operator's abort moves the row to
rolling_back whatever the owner, so the controller's next change fails and it stops: the
abort always wins. `deploy --resume` takes a rollout over only by a compare-and-set on an
expired lease, so of two resumers exactly one drives it.

A first deploy (no champion yet) bootstraps: the candidate is loaded as challenger, answers
held-out rows through the gateway as a smoke test, and is then promoted to 100%.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from slipway.pipelines import registry
from slipway.pipelines.config import SpokeConfig
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance.audit import AuditTrailError
from slipway.pipelines.governance.blockers import GovernanceRefusal, require_release
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.rollout import release
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.rollout.guardrails import (
    PASSED,
    ROLLBACK,
    Judgement,
    RolloutJudge,
    Thresholds,
    thresholds_for,
)
from slipway.pipelines.serving.client import GatewayUnreachable, TrafficTarget
from slipway.pipelines.spoke import Spoke

POLL_SECONDS = 0.25
SMOKE_ROWS = 50
SHADOW = "shadow"
SMOKE = "smoke"


class NotApproved(GovernanceRefusal, RuntimeError):
    """Governance refused the rollout; the message lists each blocker and who may clear it."""

    exit_code = Exit.NOT_APPROVED


@dataclass(frozen=True)
class Plan:
    shadow_seconds: float
    steps: list[int]
    step_seconds: float
    min_requests: int
    step_timeout: float
    thresholds: Thresholds

    def phases(self) -> list[str]:
        """The phase names in order: `shadow` (if any), then one per canary percentage."""
        return ([SHADOW] if self.shadow_seconds > 0 else []) + [f"{p}%" for p in self.steps]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "thresholds": self.thresholds.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(**{**data, "thresholds": Thresholds(**data["thresholds"])})

    def judge(self) -> RolloutJudge:
        """The decision loop of this plan (the benchmark drives the same one)."""
        return RolloutJudge(
            self.thresholds,
            phases=len(self.phases()),
            min_requests=self.min_requests,
            step_timeout=self.step_timeout,
        )


def plan_for(
    config: SpokeConfig,
    *,
    step_seconds: float | None = None,
    shadow_seconds: float | None = None,
    step_timeout: float | None = None,
) -> Plan:
    """The plan for this spoke: slipway.toml, overrides, then the tier's floors on top."""
    rules = rules_for(config.governance.risk_tier)
    step = max(step_seconds or config.rollout.step_seconds, rules.min_step_seconds)
    shadow = config.rollout.shadow_seconds if shadow_seconds is None else shadow_seconds
    if rules.shadow_required:
        shadow = max(shadow, rules.min_step_seconds)
    return Plan(
        shadow_seconds=shadow,
        steps=list(config.rollout.canary_steps),
        step_seconds=step,
        min_requests=config.rollout.min_requests_per_step,
        step_timeout=step_timeout or max(3 * step, 30.0),
        thresholds=thresholds_for(config),
    )


@dataclass(frozen=True)
class Outcome:
    status: str  # promoted | rolled_back
    version: str
    reason: str
    rollout_id: int


class Controller:
    def __init__(
        self,
        spoke: Spoke,
        gateway: TrafficTarget,
        plan: Plan,
        echo: Callable[[str], None] = print,
        smoke_rows: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        if not isinstance(spoke, Spoke):  # 0.1.0's Controller(root, config, gateway, plan)
            raise TypeError(
                "Controller takes a Spoke since 0.2.0: Controller(Spoke.open(root, config), "
                "gateway, plan)"
            )
        self.spoke, self.gateway, self.plan = spoke, gateway, plan
        self.root, self.config = spoke.root, spoke.config
        # The rollout record, opened once (the state location is not re-read every poll).
        self.rollouts = spoke.rollouts
        self.model = spoke.config.model_name
        self.client = registry.client(spoke.root)
        self._echo = echo
        self._smoke_rows = smoke_rows
        self._t0 = time.monotonic()
        self._judge = plan.judge()
        # Who drives the rollout, and for how long without a heartbeat (see state.claim).
        self.owner = rollout_state.new_owner()
        self.lease = rollout_state.lease_seconds()
        # Per step, the evidence it was decided on: events, the audit entry and the chart.
        self._evidence: dict[str, dict[str, Any]] = {}

    # -- entry points -------------------------------------------------------------------------

    def deploy(self, version: str | None) -> Outcome:
        """Roll `version` (default: the `challenger` alias) out, or bootstrap a first champion."""
        version = release.candidate_version(self.client, self.model, version)
        champion = self._alias(registry.CHAMPION)
        if champion == version:
            raise release.ReleaseError(f"version {version} is already the champion")
        self._check_governance(version)
        self.gateway.health()  # GatewayUnreachable before anything changes
        plan = self.plan.as_dict() | {"bootstrap": champion is None}
        row = self.rollouts.start(
            model=self.model,
            version=version,
            champion_version=champion,
            plan=plan,
            pid=os.getpid(),
            owner=self.owner,
            lease=self.lease,
        )
        self._event(
            row.id,
            f"rollout {row.id}: version {version} against champion "
            f"{champion or '(none: first deploy)'}",
        )
        if self._alias(registry.CHALLENGER) != version:
            self.client.set_registered_model_alias(self.model, registry.CHALLENGER, version)
        if problem := self._serve_candidate(version):
            return self._rollback(row.id, problem)
        if champion is None:
            return self._bootstrap(row.id, version)
        return self._run(row.id, 0)

    def resume(self) -> Outcome:
        """Continue the open rollout after its controller died (its step restarts)."""
        row = self.rollouts.open_rollout()
        if row is None:
            raise release.ReleaseError("no rollout is open; nothing to resume")
        self.plan = Plan.from_dict({k: v for k, v in row.plan.items() if k != "bootstrap"})
        self._judge = self.plan.judge()
        self.gateway.health()
        if not self.rollouts.claim(row, self.owner, self.lease, pid=os.getpid()):
            now = self.rollouts.get(row.id) or row
            left = max(0.0, (now.lease_expires_at or 0.0) - time.time())
            raise release.ReleaseError(
                f"rollout {row.id} is driven by {now.owner} (its lease runs {left:.0f}s more); "
                "let it finish, or once its lease has expired run `slipway deploy --resume` "
                "again (`slipway rollback` aborts it at any time)"
            )
        self._event(row.id, f"resumed rollout {row.id} ({row.status}, phase {row.phase})")
        if row.status == rollout_state.PROMOTING:
            return self._promote(row.id, expected=rollout_state.PROMOTING)
        if row.status == rollout_state.ROLLING_BACK:
            return self._rollback(row.id, row.reason, expected=rollout_state.ROLLING_BACK)
        if self._alias(registry.CHALLENGER) != row.version:
            return self._rollback(row.id, "resume found the `challenger` alias moved away")
        if problem := self._serve_candidate(row.version):
            return self._rollback(row.id, problem)
        if row.plan.get("bootstrap"):
            return self._bootstrap(row.id, row.version)
        # The 100% step is judged against the champion of the step before: retake both.
        last = len(self.plan.phases()) - 1
        start = max(0, row.step_index - (1 if row.step_index == last else 0))
        return self._run(row.id, start)

    def abort(self, reason: str) -> Outcome:
        """Roll the open rollout back now (`slipway rollback` while a rollout is open),
        whoever drives it: marking it rolling_back (a compare-and-set from the status just
        read) makes the driving controller's next change fail, so it stops. If it got to
        promoting first, its promotion is let finish (or finished here, if its driver is
        gone) and then reverted."""
        for _ in range(5):  # each retry means the row moved under us; it cannot move forever
            row = self.rollouts.open_rollout()
            if row is None:
                raise release.ReleaseError("no rollout is open")
            if row.status == rollout_state.PROMOTING:
                return self._revert_promotion(row.id, reason)
            if self.mark_rolling_back(row, reason):
                return self._rollback(
                    row.id, reason, expected=rollout_state.ROLLING_BACK, marked=True
                )
        raise release.ReleaseError("the rollout kept changing; run `slipway rollback` again")

    def mark_rolling_back(self, row: rollout_state.RolloutRow, reason: str) -> bool:
        """The operator's abort, its first and deciding act: the row goes to rolling_back
        (weight 0) if it is still as read, and this controller holds it from now on."""
        return self.rollouts.update(
            row.id,
            expected_status=row.status,
            status=rollout_state.ROLLING_BACK,
            reason=reason,
            weight=0,
            shadow=False,
            owner=self.owner,
            lease_expires_at=time.time() + self.lease,
        )

    def _cas(self, rollout_id: int, expected: str, **fields: Any) -> bool:
        """A change that applies only while this controller still owns the rollout and it is
        still `expected`; every change renews the lease."""
        return self.rollouts.update(
            rollout_id,
            expected_status=expected,
            expected_owner=self.owner,
            lease_expires_at=time.time() + self.lease,
            **fields,
        )

    # -- phases -------------------------------------------------------------------------------

    def _bootstrap(self, rollout_id: int, version: str) -> Outcome:
        if not self._cas(rollout_id, rollout_state.RUNNING, phase=SMOKE, step_index=0, weight=100):
            return self._finished(rollout_id)
        rows = self._smoke_rows() if self._smoke_rows else []
        if not rows:
            return self._rollback(rollout_id, "bootstrap needs held-out rows for a smoke test")
        failures = []
        for i, row in enumerate(rows[:SMOKE_ROWS]):
            response = self.gateway.invoke({"columns": list(row), "data": [list(row.values())]})
            if response.status_code != 200:
                failures.append(f"row {i}: {response.status_code} {response.text[:200]}")
        n = min(len(rows), SMOKE_ROWS)
        if failures:
            return self._rollback(
                rollout_id, f"smoke test failed on {len(failures)}/{n} held-out rows: {failures[0]}"
            )
        self._event(rollout_id, f"smoke test: {n}/{n} held-out rows answered")
        if stopped := self._governance_stop(rollout_id, version):
            return stopped
        return self._promote(rollout_id, note=f"first champion, smoke test on {n} held-out rows")

    def _run(self, rollout_id: int, start: int) -> Outcome:
        phases = self.plan.phases()
        for index in range(start, len(phases)):
            row = self.rollouts.get(rollout_id)
            if row is None or row.status != rollout_state.RUNNING:
                return self._finished(rollout_id)
            if stopped := self._governance_stop(rollout_id, row.version):
                return stopped
            name = phases[index]
            shadow = name == SHADOW
            weight = 0 if shadow else int(name.rstrip("%"))
            if not self._cas(
                rollout_id,
                rollout_state.RUNNING,
                step_index=index,
                phase=name,
                weight=weight,
                shadow=shadow,
            ):
                return self._finished(rollout_id)
            seq = self.gateway.set_weights(weight, shadow)["seq"]
            label = (
                "shadow (challenger scores a copy of every request)"
                if shadow
                else (f"challenger at {weight}%")
            )
            self._event(rollout_id, f"step {index + 1}/{len(phases)}: {label}")
            breaches = self._hold(
                rollout_id,
                name,
                weight,
                seq,
                self.plan.shadow_seconds if shadow else self.plan.step_seconds,
            )
            if breaches is None:
                return self._finished(rollout_id)
            if breaches:
                return self._rollback(rollout_id, f"step {name}: " + "; ".join(breaches))
        row = self.rollouts.get(rollout_id)
        if row is not None and (stopped := self._governance_stop(rollout_id, row.version)):
            return stopped
        return self._promote(rollout_id)

    def _hold(
        self, rollout_id: int, phase: str, weight: int, seq: int, seconds: float
    ) -> list[str] | None:
        """Watch one step's window until it passes (returns []), breaches (the reasons), or
        someone else closed the rollout (None). The decisions are the RolloutJudge's."""
        started = time.monotonic()
        watch = self._judge.step(seconds)
        while True:
            time.sleep(POLL_SECONDS)
            # The heartbeat, and the check that nobody aborted or took the rollout over.
            if not self.rollouts.renew(rollout_id, self.owner, self.lease):
                return None
            decision = watch.observe(self.gateway.window(seq), time.monotonic() - started)
            verdict = decision.judgement
            self.rollouts.record_reading(rollout_id, phase, weight, verdict.readings)
            if decision.status == ROLLBACK:
                self._record_evidence(rollout_id, phase, decision.status, verdict)
                return decision.reasons
            if decision.status == PASSED:
                self._record_evidence(rollout_id, phase, decision.status, verdict)
                return []

    def _record_evidence(
        self, rollout_id: int, phase: str, status: str, verdict: Judgement
    ) -> None:
        lines = verdict.evidence.describe()
        self._evidence[phase] = {"decision": status, **verdict.readings}
        self._event(rollout_id, f"step {phase} {status}:" + "".join(f"\n    {x}" for x in lines))

    def _rollback(
        self,
        rollout_id: int,
        reason: str,
        *,
        expected: str = rollout_state.RUNNING,
        marked: bool = False,
    ) -> Outcome:
        """Traffic first (weight 0), then registry, audit and state; safe to repeat."""
        row = self.rollouts.get(rollout_id)
        assert row is not None
        if not marked and not self._cas(
            rollout_id,
            expected,
            status=rollout_state.ROLLING_BACK,
            reason=reason,
            weight=0,
            shadow=False,
        ):
            return self._finished(rollout_id)
        try:
            self.gateway.set_weights(0, False)
        except GatewayUnreachable:
            self._echo("warning: gateway unreachable; it restores weight 0 when it restarts")
        self._event(rollout_id, f"ROLLBACK: challenger weight 0; {reason}")
        release.reject_challenger(
            self.spoke,
            self.client,
            self.model,
            row.version,
            reason=reason,
            details={"rollout": rollout_id, "evidence": self._evidence},
        )
        self._reload_quietly()
        if not self._cas(rollout_id, rollout_state.ROLLING_BACK, status=rollout_state.ROLLED_BACK):
            return self._finished(rollout_id)
        self._event(
            rollout_id, f"rolled back version {row.version}; champion stays {row.champion_version}"
        )
        return Outcome(rollout_state.ROLLED_BACK, row.version, reason, rollout_id)

    def _promote(
        self, rollout_id: int, note: str = "", *, expected: str = rollout_state.RUNNING
    ) -> Outcome:
        row = self.rollouts.get(rollout_id)
        assert row is not None
        reason = note or f"passed {len(self.plan.phases())} rollout steps within guardrails"
        # The deciding compare-and-set: an abort that marked the rollout rolling_back first
        # wins, and nothing below (registry, audit) happens.
        if not self._cas(rollout_id, expected, status=rollout_state.PROMOTING, phase="promote"):
            return self._finished(rollout_id)
        try:
            release.promote(
                self.spoke,
                self.client,
                self.model,
                row.version,
                reason=reason,
                old_champion=row.champion_version,
                details={"rollout": rollout_id, "evidence": self._evidence},
            )
        except AuditTrailError as exc:
            # The trail refused the promotion's entry, so no alias moved: traffic back to the
            # champion and the rollout closed, never left `promoting` without its entry.
            self._close_unaudited(rollout_id, f"the audit trail refused the promotion: {exc}")
            raise
        self._reload_quietly()
        if not self._cas(
            rollout_id,
            rollout_state.PROMOTING,
            status=rollout_state.PROMOTED,
            reason=reason,
            weight=0,
            shadow=False,
        ):
            return self._promotion_overtaken(rollout_id, row.version)
        self._event(
            rollout_id,
            f"PROMOTED version {row.version} to champion (previous: {row.champion_version})",
        )
        # A rejection that landed after the last governance check, while the aliases moved,
        # is not lost: governance is asked once more now that the promotion is recorded, and
        # a refusal gives the champion back (the promotion and its revert both audited).
        if (stopped := self._governance_stop_promoted(rollout_id, row.version)) is not None:
            return stopped
        return Outcome(rollout_state.PROMOTED, row.version, reason, rollout_id)

    def _close_unaudited(self, rollout_id: int, reason: str) -> None:
        """Close a rollout whose entry the audit trail refused: weight 0, state rolled_back
        with the reason in its own events (the one record left that can be written)."""
        try:
            self.gateway.set_weights(0, False)
        except GatewayUnreachable:
            self._echo("warning: gateway unreachable; it restores weight 0 when it restarts")
        self.rollouts.update(
            rollout_id,
            expected_status=rollout_state.PROMOTING,
            status=rollout_state.ROLLED_BACK,
            reason=reason,
            weight=0,
            shadow=False,
        )
        self._event(rollout_id, f"NOT PROMOTED: {reason}; the champion is unchanged")

    def _governance_stop_promoted(self, rollout_id: int, version: str) -> Outcome | None:
        from slipway.pipelines.governance.blockers import release_blockers

        blockers = release_blockers(self.spoke, self.client, version)
        if not blockers or self._alias(registry.PREVIOUS) is None:
            return None
        return self._revert_promotion(rollout_id, "governance: " + "; ".join(blockers))

    def _revert_promotion(self, rollout_id: int, reason: str) -> Outcome:
        """A rollback asked for while the aliases were moving: finish the promotion, so the
        registry and the audit trail agree on what happened, then give the champion back."""
        row = self._wait_for_promotion(rollout_id)
        if row.status == rollout_state.PROMOTING:
            # Its driver is gone: take the promotion over (compare-and-set on the owner
            # read) and finish it here.
            took = self.rollouts.update(
                rollout_id,
                expected_status=rollout_state.PROMOTING,
                expected_owner=row.owner,
                owner=self.owner,
                lease_expires_at=time.time() + self.lease,
            )
            promoted = (
                self._promote(rollout_id, expected=rollout_state.PROMOTING)
                if took
                else self._finished(rollout_id)
            )
        else:
            promoted = Outcome(row.status, row.version, row.reason, rollout_id)
        if promoted.status != rollout_state.PROMOTED:
            return promoted
        if self._alias(registry.PREVIOUS) is None:
            raise release.ReleaseError(
                f"version {promoted.version} was a first champion, so there is nothing to "
                "go back to; promote a known-good version with `slipway promote VERSION`"
            )
        release.revert_promotion(self.spoke, self.client, self.model, reason=reason)
        self._reload_quietly()
        self.rollouts.update(
            rollout_id,
            expected_status=rollout_state.PROMOTED,
            status=rollout_state.ROLLED_BACK,
            reason=reason,
        )
        self._event(
            rollout_id,
            f"ROLLBACK after promotion: version {promoted.version} out, "
            f"champion {self._alias(registry.CHAMPION)} again; {reason}",
        )
        return Outcome(rollout_state.ROLLED_BACK, promoted.version, reason, rollout_id)

    def _wait_for_promotion(self, rollout_id: int) -> rollout_state.RolloutRow:
        """A live controller is moving the aliases: wait until it is done (at most its lease)
        rather than finish the promotion beside it, where its alias moves could land after
        our revert."""
        said = False
        while True:
            row = self.rollouts.get(rollout_id)
            assert row is not None
            if (
                row.status != rollout_state.PROMOTING
                or row.owner == self.owner
                or rollout_state.lease_expired(row)
                or rollout_state.owner_is_dead_here(row.owner)
            ):
                return row
            if not said:
                self._echo(
                    f"rollout {rollout_id} is being promoted by {row.owner}; waiting for it "
                    "to finish (at most its lease), then reverting the promotion"
                )
                said = True
            time.sleep(POLL_SECONDS)

    def _promotion_overtaken(self, rollout_id: int, version: str) -> Outcome:
        """This controller's promotion could not be recorded: someone took the rollout over
        (it stalled past its lease). If they rolled it back, its alias moves may have landed
        after their revert: undo them, so the registry says what the rollout decided."""
        row = self.rollouts.get(rollout_id)
        assert row is not None
        if row.status == rollout_state.ROLLED_BACK and self._alias(registry.CHAMPION) == version:
            try:
                release.revert_promotion(
                    self.spoke,
                    self.client,
                    self.model,
                    reason=f"rollout {rollout_id} was rolled back while this controller "
                    f"promoted: {row.reason}",
                )
            except release.ReleaseError as exc:
                self._echo(f"warning: could not undo the late promotion of {version}: {exc}")
            self._reload_quietly()
        return self._finished(rollout_id)

    def _finished(self, rollout_id: int) -> Outcome:
        row = self.rollouts.get(rollout_id)
        assert row is not None
        self._echo(f"rollout {rollout_id} was closed by another command: {row.status}")
        return Outcome(row.status, row.version, row.reason or "closed elsewhere", rollout_id)

    # -- helpers ------------------------------------------------------------------------------

    def _alias(self, alias: str) -> str | None:
        found = registry.version_by_alias(self.client, self.model, alias)
        return None if found is None else str(found.version)

    def _check_governance(self, version: str) -> None:

        require_release(self.spoke, self.client, version, action="rollout", error=NotApproved)

    def _governance_stop(self, rollout_id: int, version: str) -> Outcome | None:
        """Governance asked again before every step and before promotion: a `slipway reject`
        (or an approver's key withdrawn) during a canary rolls it back instead of promoting."""
        from slipway.pipelines.governance.blockers import release_blockers

        blockers = release_blockers(self.spoke, self.client, version)
        if not blockers:
            return None
        return self._rollback(rollout_id, "governance: " + "; ".join(blockers))

    def _serve_candidate(self, version: str) -> str | None:
        """Have the gateway load the aliases; why it cannot serve `version`, or None."""
        state = self.gateway.reload()
        if state.get("challenger") == version:
            return None
        why = state.get("load_errors", {}).get(registry.CHALLENGER) or "it was not loaded"
        return f"the gateway cannot serve version {version}: {why}"

    def _reload_quietly(self) -> None:
        try:
            self.gateway.reload()
        except GatewayUnreachable:
            self._echo("warning: gateway unreachable; it loads the new aliases when it restarts")

    def _event(self, rollout_id: int, message: str) -> None:
        self.rollouts.record_event(rollout_id, message)
        self._echo(f"[{time.monotonic() - self._t0:7.1f}s] {message}")
