"""The rollout controller end to end: real gateway on 127.0.0.1, real registry, the real CLI,
and 20 concurrent clients replaying held-out rows throughout.

Each safety test includes the model that must trip it (raising, slow, constant-class), and
the success test a healthy one that must not. The commands run, as subprocesses: slipway
deploy (and deploy --resume), slipway rollback, slipway promote, slipway status, slipway
traffic.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time

import httpx
import pytest

from slipway.pipelines import registry
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.rollout.controller import plan_for
from slipway.pipelines.rollout.rehearsal import register_faulty
from slipway.pipelines.rollout.traffic import replay_rows

from .conftest import SLIPWAY, STARTUP_GUARD_S, GatewayProcess, Load, Spoke, slipway

CONCURRENCY = 20
RATE = 200.0  # requests/s in total: enough for each step, civil to parallel test workers
DEAD_PID = 2**22 + 1  # above the largest pid Linux can hand out: no process has it


def aliases(spoke: Spoke) -> dict[str, str | None]:
    client = registry.client(spoke.root)
    out = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS):
        found = registry.version_by_alias(client, spoke.config.model_name, alias)
        out[alias] = None if found is None else str(found.version)
    return out


def outcome_tags(spoke: Spoke, version: str) -> tuple[str | None, str | None]:
    mv = registry.client(spoke.root).get_model_version(spoke.config.model_name, version)
    return mv.tags.get(registry.TAG_ROLLOUT_OUTCOME), mv.tags.get(registry.TAG_ROLLOUT_REASON)


def gateway_state(url: str) -> dict:
    return httpx.get(f"{url}/admin/state", timeout=10).json()


def deploy_under_load(spoke: Spoke, gw: GatewayProcess, *args: str):
    with Load(gw.url, spoke, concurrency=CONCURRENCY, rate=RATE) as load:
        done = slipway(spoke.root, "deploy", "--url", gw.url, "--step-seconds", "1", *args)
    print(done.stdout, done.stderr)
    print("clients:", load.report.summary())
    return done, load.report


def test_healthy_challenger_is_promoted_with_zero_failed_requests(spoke, gateway):
    done, report = deploy_under_load(spoke, gateway, "--version", "2")

    assert done.returncode == 0, done.stderr
    assert report.failed == 0
    assert report.variants["champion"] > 0 and report.variants["challenger"] > 0
    assert aliases(spoke) == {"champion": "2", "challenger": None, "previous": "1"}
    assert outcome_tags(spoke, "2")[0] == "promoted"
    assert [e["version"] for e in audit.read(spoke.root) if e["action"] == "promote"] == ["1", "2"]
    state = gateway_state(gateway.url)
    assert (state["champion"], state["challenger"], state["weight"]) == ("2", None, 0)
    phases = {r["phase"] for r in rollout_state.readings(spoke.root, 1)}
    assert phases == {"10%", "32%", "100%"}
    # Each step's evidence (readings, statistics, boundaries) is in the terminal, the audit
    # trail and the stored readings the chart draws.
    assert done.stdout.count(" passed:\n    errors ") == 3, done.stdout
    assert "rollback above" in done.stdout and "Mann-Whitney p=" in done.stdout
    promoted = [e for e in audit.read(spoke.root) if e["action"] == "promote"][-1]
    evidence = promoted["details"]["evidence"]
    assert set(evidence) == {"10%", "32%", "100%"}
    assert all(
        step["decision"] == "passed" and "error_boundary" in step for step in evidence.values()
    )
    assert all("latency_p" in step and 0 < step["drift_alpha"] < 0.01 for step in evidence.values())
    chart = spoke.root / "build" / "rollouts.png"
    slipway(spoke.root, "status", "--url", gateway.url, "--chart", str(chart), check=True)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_raising_challenger_is_rolled_back_at_the_first_step(spoke, gateway):
    version = register_faulty(spoke.root, spoke.config, "raise")
    done, report = deploy_under_load(spoke, gateway, "--version", version)

    assert done.returncode == Exit.ROLLED_BACK, done.stdout + done.stderr
    assert "error rate" in done.stderr
    row = rollout_state.latest(spoke.root)
    assert (row.status, row.phase, row.weight) == ("rolled_back", "10%", 0)
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    outcome, reason = outcome_tags(spoke, version)
    assert outcome == "rolled_back" and "error rate" in reason
    assert audit.read(spoke.root)[-1]["action"] == "rollback"
    step = audit.read(spoke.root)[-1]["details"]["evidence"]["10%"]
    assert step["decision"] == "rollback" and step["error_low"] > step["error_boundary"]
    # The clients that failed are exactly the challenger's share of the first window:
    # the gateway's own error count for the version matches what the clients saw, and the
    # deterministic split caps it at 10% of the window (plus requests in flight).
    window = rollout_state.readings(spoke.root, row.id)[-1]
    window_total = window["champion_requests"] + window["challenger_requests"]
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    served_errors = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("slipway_gateway_errors_total") and f'version="{version}"' in line
    )
    print(
        f"failed client requests: {report.failed} of {report.sent}; first window "
        f"{window_total} requests; gateway errors {served_errors}"
    )
    assert report.failed > 0
    assert report.failed == served_errors
    assert report.failed <= math.ceil(0.10 * (window_total + CONCURRENCY))
    assert gateway_state(gateway.url)["challenger"] is None


@pytest.mark.parametrize(
    ("kind", "guardrail"), [("slow", "p95 latency"), ("constant", "prediction drift")]
)
def test_misbehaving_challenger_trips_its_guardrail(spoke, gateway, kind, guardrail):
    version = register_faulty(spoke.root, spoke.config, kind)
    done, report = deploy_under_load(spoke, gateway, "--version", version)

    assert done.returncode == Exit.ROLLED_BACK, done.stdout + done.stderr
    assert guardrail in done.stderr
    assert aliases(spoke)["champion"] == "1" and aliases(spoke)["challenger"] is None
    assert outcome_tags(spoke, version)[0] == "rolled_back"
    assert report.failed == 0  # slow or wrong, but never an error the client saw
    assert gateway_state(gateway.url)["weight"] == 0


def controller_at_32_percent(spoke: Spoke, url: str) -> subprocess.Popen:
    """`slipway deploy` of v2 in its own process, returned once its 32% step is live: the
    phase is recorded just before the gateway is told, so both are waited for."""
    controller = subprocess.Popen(
        [
            SLIPWAY,
            "-C",
            str(spoke.root),
            "deploy",
            "--version",
            "2",
            "--url",
            url,
            "--step-seconds",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A lease that outlives the test: these tests kill a process and then expect the
        # state it left (a restarted gateway restores the canary weight only while the
        # lease holds; `deploy --resume` on this host sees the dead pid at once).
        env={**os.environ, rollout_state.LEASE_ENV: "600"},
    )
    deadline = time.monotonic() + STARTUP_GUARD_S
    while time.monotonic() < deadline:
        row = rollout_state.latest(spoke.root)
        if row is not None and row.phase == "32%" and gateway_state(url)["weight"] == 32:
            return controller
        assert controller.poll() is None, controller.communicate()
        time.sleep(0.1)
    controller.kill()
    raise AssertionError("the rollout never reached its 32% step")


@pytest.mark.parametrize("recovery", ["resume", "rollback"])
def test_controller_killed_mid_rollout_recovers_consistently(spoke, gateway, recovery):
    with Load(gateway.url, spoke, concurrency=CONCURRENCY, rate=RATE) as load:
        controller = controller_at_32_percent(spoke, gateway.url)
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait()

        status = json.loads(
            slipway(spoke.root, "status", "--json", "--url", gateway.url, check=True).stdout
        )
        assert status["rollout"]["status"] == "running"
        assert status["action"] and "slipway deploy --resume" in status["action"]
        assert status["gateway"]["weight"] == 32  # traffic left as the controller left it
        assert status["aliases"]["challenger"] == "2"

        if recovery == "resume":
            done = slipway(spoke.root, "deploy", "--resume", "--url", gateway.url)
            expected = {"champion": "2", "challenger": None, "previous": "1"}
        else:
            done = slipway(spoke.root, "rollback", "--url", gateway.url, "--reason", "drill")
            expected = {"champion": "1", "challenger": None, "previous": None}
    print(done.stdout, done.stderr, load.report.summary())
    assert done.returncode == 0, done.stderr
    assert aliases(spoke) == expected
    state = gateway_state(gateway.url)
    assert (state["champion"], state["challenger"], state["weight"]) == (
        expected["champion"],
        None,
        0,
    )
    row = rollout_state.latest(spoke.root)
    assert row.status == ("promoted" if recovery == "resume" else "rolled_back")
    actions = [(e["action"], e["version"]) for e in audit.read(spoke.root)]
    closing = ("promote", "2") if recovery == "resume" else ("rollback", "2")
    assert actions.count(closing) == 1 and actions[-1] == closing
    assert load.report.failed == 0


def test_gateway_killed_mid_rollout_restarts_at_its_weight_and_the_rollout_resumes(spoke):
    """The gateway dies (SIGKILL) at the 32% step: the controller stops without touching the
    registry, a new gateway takes the weight from the durable rollout state, and `deploy
    --resume` against it finishes the rollout."""
    first = GatewayProcess(spoke.root)
    try:
        with Load(first.url, spoke, concurrency=CONCURRENCY, rate=RATE):
            controller = controller_at_32_percent(spoke, first.url)
            first.proc.kill()
            first.proc.wait()
            _, stderr = controller.communicate(timeout=STARTUP_GUARD_S)
    finally:
        first.stop()
    assert controller.returncode == Exit.UNREACHABLE, stderr
    assert "slipway deploy --resume" in stderr
    assert rollout_state.latest(spoke.root).status == "running"
    assert aliases(spoke) == {"champion": "1", "challenger": "2", "previous": None}

    second = GatewayProcess(spoke.root)
    try:
        state = gateway_state(second.url)
        assert (state["champion"], state["challenger"], state["weight"]) == ("1", "2", 32)
        with Load(second.url, spoke, concurrency=CONCURRENCY, rate=RATE) as load:
            done = slipway(spoke.root, "deploy", "--resume", "--url", second.url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert gateway_state(second.url)["champion"] == "2"
    finally:
        second.stop()
    assert aliases(spoke) == {"champion": "2", "challenger": None, "previous": "1"}
    actions = [(e["action"], e["version"]) for e in audit.read(spoke.root)]
    assert actions.count(("promote", "2")) == 1 and ("rollback", "2") not in actions
    assert load.report.failed == 0


def test_rollback_while_promoting_finishes_the_promotion_then_reverts_it(spoke, gateway):
    """A controller killed between `promoting` and `promoted`, then `slipway rollback`: the
    team asked for the old champion, so the promotion is completed (registry and audit agree)
    and reverted, never left standing."""
    model = spoke.config.model_name
    registry.client(spoke.root).set_registered_model_alias(model, registry.CHALLENGER, "2")
    row = rollout_state.start(
        spoke.root,
        model=model,
        version="2",
        champion_version="1",
        plan=plan_for(spoke.config).as_dict(),
        pid=DEAD_PID,
    )
    rollout_state.update(spoke.root, row.id, status=rollout_state.PROMOTING, phase="promote")
    with Load(gateway.url, spoke, concurrency=CONCURRENCY, rate=RATE) as load:
        done = slipway(spoke.root, "rollback", "--url", gateway.url, "--reason", "drill")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rollout {row.id} closed: rolled_back" in done.stdout
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert gateway_state(gateway.url)["champion"] == "1"
    assert rollout_state.latest(spoke.root).status == rollout_state.ROLLED_BACK
    assert outcome_tags(spoke, "2") == ("rolled_back", "manual rollback: drill")
    actions = [(e["action"], e["version"]) for e in audit.read(spoke.root)]
    assert actions[-2:] == [("promote", "2"), ("rollback", "2")]
    assert load.report.failed == 0


def test_manual_rollback_after_a_promotion_restores_the_previous_champion(spoke, gateway):
    slipway(spoke.root, "promote", "2", "--reason", "hotfix", "--url", gateway.url, check=True)
    assert gateway_state(gateway.url)["champion"] == "2"
    replay = slipway(
        spoke.root,
        "traffic",
        "--rate",
        "50",
        "--duration",
        "2",
        "--url",
        gateway.url,
        "--json",
        check=True,
    )
    seen = json.loads(replay.stdout)
    assert seen["sent"] > 0 and seen["failed"] == 0 and set(seen["variants"]) == {"champion"}
    no_chart = slipway(spoke.root, "status", "--chart", str(spoke.root / "x.png"))
    assert no_chart.returncode == Exit.ERROR and "no rollout has run" in no_chart.stderr

    slipway(spoke.root, "rollback", "--url", gateway.url, "--reason", "bad KPI", check=True)

    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert gateway_state(gateway.url)["champion"] == "1"
    assert outcome_tags(spoke, "2") == ("rolled_back", "manual rollback: bad KPI")
    again = slipway(spoke.root, "rollback", "--url", gateway.url)
    assert again.returncode == Exit.ERROR and "no `previous` version" in again.stderr


def test_first_deploy_bootstraps_after_a_smoke_test_and_refuses_a_broken_one(spoke):
    client = registry.client(spoke.root)
    client.delete_registered_model_alias(spoke.config.model_name, registry.CHAMPION)
    broken = register_faulty(spoke.root, spoke.config, "raise", base_version="1")
    gw = GatewayProcess(spoke.root)
    try:
        assert httpx.get(f"{gw.url}/health", timeout=10).json()["status"] == "no_champion"
        refused = slipway(spoke.root, "deploy", "--version", broken, "--url", gw.url)
        assert refused.returncode == Exit.ROLLED_BACK and "smoke test failed" in refused.stderr
        assert aliases(spoke)["champion"] is None

        slipway(spoke.root, "deploy", "--version", "1", "--url", gw.url, check=True)
        assert aliases(spoke)["champion"] == "1"
        first_row = replay_rows(spoke.root, spoke.config)[0]
        answer = httpx.post(
            f"{gw.url}/invocations", timeout=10, json={"dataframe_records": [first_row]}
        )
        assert answer.status_code == 200 and answer.headers["x-slipway-version"] == "1"
    finally:
        gw.stop()


def register_off_contract(spoke: Spoke) -> str:
    """A real model trained without the contract's first column: its signature asks for
    inputs that no request checked against the contract will have."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from slipway.pipelines.registry import fluent_registry
    from slipway.pipelines.training.spoke_code import load_frame, split

    parts = split(load_frame(spoke.root, spoke.config), spoke.config)
    x_train = parts.x_train.drop(columns=parts.x_train.columns[0])
    model = LogisticRegression(max_iter=2000).fit(x_train, parts.y_train)
    client = registry.client(spoke.root)
    experiment = registry.experiment_id(client, spoke.root, spoke.config.model_name)
    with fluent_registry(spoke.root), mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=spoke.config.model_name,
            signature=infer_signature(x_train.head(5), model.predict(x_train.head(5))),
        )
    return str(info.registered_model_version)


def test_a_challenger_whose_signature_breaks_the_contract_is_rolled_back_unserved(spoke, gateway):
    version = register_off_contract(spoke)
    done, report = deploy_under_load(spoke, gateway, "--version", version)
    assert done.returncode == Exit.ROLLED_BACK, done.stdout + done.stderr
    assert f"the gateway cannot serve version {version}" in done.stderr
    assert "signature does not match the data contract" in done.stderr
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert outcome_tags(spoke, version)[0] == "rolled_back"
    state = gateway_state(gateway.url)
    assert (state["champion"], state["challenger"], state["weight"]) == ("1", None, 0)
    assert report.failed == 0  # the champion answered throughout


def test_a_step_without_enough_traffic_fails_and_rolls_back(spoke, gateway):
    """No load on purpose: a canary that nobody calls proves nothing, so it is not promoted."""
    done = slipway(
        spoke.root,
        "deploy",
        "--version",
        "2",
        "--url",
        gateway.url,
        "--step-seconds",
        "1",
        "--step-timeout",
        "2",
    )
    assert done.returncode == Exit.ROLLED_BACK, done.stdout + done.stderr
    assert "not enough traffic: 0 challenger requests" in done.stderr
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert gateway_state(gateway.url)["weight"] == 0


def test_unreachable_gateway_and_governance_refusal_have_their_exit_codes(spoke):
    typo = slipway(spoke.root, "deploy", "--version", "99", "--url", "http://127.0.0.1:9")
    assert typo.returncode == Exit.ERROR and "has no version '99'" in typo.stderr, typo.stderr
    assert "Traceback" not in typo.stderr
    unreachable = slipway(spoke.root, "deploy", "--version", "2", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == Exit.UNREACHABLE, unreachable.stderr
    assert rollout_state.latest(spoke.root) is None
    assert aliases(spoke)["challenger"] is None


def test_a_damaged_audit_trail_never_stops_a_rollback_half_way(spoke):
    """A torn line, an overwritten line and an unreadable head: the rollback still finishes
    (the append chains from what it can trust and says so), and verify names the damage."""
    client = registry.client(spoke.root)
    client.set_registered_model_alias(spoke.config.model_name, registry.CHALLENGER, "2")
    rollout_state.start(
        spoke.root,
        model=spoke.config.model_name,
        version="2",
        champion_version="1",
        plan=plan_for(spoke.config).as_dict(),
        pid=DEAD_PID,
    )
    trail = audit.audit_path(spoke.root)
    trail.write_text("not json at all\n" + trail.read_text() + '{"seq": 9, "act')
    audit.head_path(spoke.root).write_text("{broken")

    done = slipway(spoke.root, "rollback", "--url", "http://127.0.0.1:9", "--reason", "drill")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rollout_state.latest(spoke.root).status == "rolled_back"
    assert aliases(spoke) == {"champion": "1", "challenger": None, "previous": None}
    assert audit.read(spoke.root)[-1]["action"] == "rollback"
    verified = slipway(spoke.root, "audit", "--verify")
    assert verified.returncode == Exit.ERROR and "Traceback" not in verified.stderr
    assert "note: line 1: not an entry" in verified.stdout
    assert "appended while the head record was missing or unreadable" in verified.stderr


def test_a_trail_deleted_with_its_head_is_caught_by_asking_the_registry(spoke):
    audit.audit_path(spoke.root).unlink()
    audit.head_path(spoke.root).unlink()
    assert audit.verify(spoke.root).ok  # the files alone look like a fresh spoke's
    verified = slipway(spoke.root, "audit", "--verify")
    assert verified.returncode == Exit.ERROR, verified.stdout + verified.stderr
    assert "the trail is empty, yet the registry holds 2 version(s)" in verified.stderr


def test_the_demos_broken_version_step_prints_one_line_and_no_library_warnings(spoke):
    """`make demo`'s v3 step printed MLflow's warnings and log lines among the story's own;
    they now go to the spoke's log, as under the `slipway` command."""
    import subprocess
    import sys

    from scripts.demo import REGISTER_BROKEN

    def run(code: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=spoke.root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done

    # The step as it was: register_faulty called bare, MLflow writing to the terminal.
    before = run(
        "from pathlib import Path; from slipway.pipelines.config import load_config;"
        " from slipway.pipelines.rollout.rehearsal import register_faulty;"
        " print('registered broken version', register_faulty(Path('.'),"
        " load_config(Path('.')), 'raise'))"
    )
    assert "WARNING mlflow" in before.stderr and "UserWarning" in before.stderr
    done = run(REGISTER_BROKEN)
    version = done.stdout.removeprefix("registered broken version ").strip()
    assert done.stdout == f"registered broken version {version}\n"
    assert done.stderr == ""
    assert aliases(spoke)["challenger"] == version
    logged = (spoke.root / ".slipway" / "logs" / "slipway.log").read_text()
    assert "register" in logged.lower()  # MLflow's lines are kept, where people look later
