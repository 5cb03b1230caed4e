"""Spokes against the team's registry for real: `mlflow server` on PostgreSQL with its
artifacts on S3 (moto's server), and the team state (audit trail, rollout state) in the same
PostgreSQL. Nothing of the team's is left on the spoke's disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout import release
from slipway.pipelines.rollout import state as rollout_state
from slipway.pipelines.rollout.controller import plan_for
from slipway.pipelines.rollout.rehearsal import register_faulty, register_trained
from tests.hub import COMMAND_GUARD_S, SLIPWAY, slipway

from .conftest import MlflowServer, SpokeMaker, unique_slug

DEAD_PID = 2**22 + 1  # above the largest pid Linux hands out


def aliases(root: Path, model: str) -> dict[str, str | None]:
    client = registry.client(root)
    out = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS):
        found = registry.version_by_alias(client, model, alias)
        out[alias] = None if found is None else str(found.version)
    return out


class Gateway:
    """`slipway serve --port 0` for the spoke, loading its models through the server."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [str(SLIPWAY), "-C", str(root), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"gateway did not start: {line}{self.proc.stderr.read()}")
        self.url = line.rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/health", timeout=5)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("gateway never answered")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def deploy_under_load(root: Path, url: str, version: str) -> subprocess.CompletedProcess[str]:
    from slipway.pipelines.rollout.traffic import replay_rows, run_traffic

    stop = threading.Event()
    rows = replay_rows(root, load_config(root))
    load = threading.Thread(
        target=run_traffic,
        args=(url, rows),
        kwargs={"rate": 200.0, "duration": 240.0, "concurrency": 10, "stop": stop},
        daemon=True,
    )
    load.start()
    try:
        return slipway(root, "deploy", "--version", version, "--url", url, "--step-seconds", "1")
    finally:
        stop.set()
        load.join(timeout=60)


def test_a_spokes_whole_story_on_the_team_server(team_env: MlflowServer, make_spoke: SpokeMaker):
    root = make_spoke(unique_slug("story"))
    config = load_config(root)
    model = config.model_name
    v1 = register_trained(root, config, {"C": 1.0, "max_iter": 500})
    gateway = Gateway(root)
    try:
        first = slipway(root, "deploy", "--version", v1, "--url", gateway.url)
        assert first.returncode == 0, first.stdout + first.stderr  # bootstrap after a smoke test
        v2 = register_trained(root, config, {"C": 0.5, "max_iter": 500})  # the retrain
        canary = deploy_under_load(root, gateway.url, v2)
        assert canary.returncode == 0, canary.stdout + canary.stderr
        broken = register_faulty(root, config, "raise")
        refused = deploy_under_load(root, gateway.url, broken)
        assert refused.returncode == Exit.ROLLED_BACK, refused.stdout + refused.stderr
        assert "error rate" in refused.stderr  # served (from S3, via the server), then judged
    finally:
        gateway.stop()

    assert aliases(root, model) == {"champion": v2, "challenger": None, "previous": v1}
    actions = [(e["action"], e["version"]) for e in audit.read(root)]
    assert ("promote", v1) in actions and ("promote", v2) in actions
    assert actions[-1] == ("rollback", broken)
    assert [r.status for r in rollout_state.all_rollouts(root)] == [
        "promoted",
        "promoted",
        "rolled_back",
    ]
    verified = slipway(root, "audit", "--verify")
    assert verified.returncode == 0 and "slipway_audit" in verified.stdout, verified.stderr
    # The team's facts are on the server, none on this disk; the model files are on S3.
    state = root / ".slipway"
    assert not (state / "audit.jsonl").exists() and not (state / "rollout.db").exists()
    assert not (state / "mlflow.db").exists()
    import boto3

    objects = boto3.client(
        "s3",
        endpoint_url=team_env.s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).list_objects_v2(Bucket=team_env.s3.bucket)
    assert any(o["Key"].endswith("MLmodel") for o in objects.get("Contents", []))


def test_two_spokes_share_one_server_and_keep_their_own_state(
    team_env: MlflowServer, make_spoke: SpokeMaker
):
    one, two = make_spoke(unique_slug("alpha")), make_spoke(unique_slug("beta"))
    plans = {}
    for root in (one, two):
        config = load_config(root)
        version = register_trained(root, config, {"C": 1.0, "max_iter": 500})
        release.promote(
            root, registry.client(root), config.model_name, version, reason="first champion"
        )
        plans[root] = plan_for(config).as_dict()
    # One open rollout per spoke, whichever machine opens it; the other spoke is not blocked.
    first = rollout_state.start(
        one,
        model=load_config(one).model_name,
        version="1",
        champion_version="1",
        plan=plans[one],
        pid=DEAD_PID,
    )
    with pytest.raises(RuntimeError, match="still running"):
        rollout_state.start(
            one,
            model=load_config(one).model_name,
            version="1",
            champion_version="1",
            plan=plans[one],
            pid=DEAD_PID,
        )
    other = rollout_state.start(
        two,
        model=load_config(two).model_name,
        version="1",
        champion_version="1",
        plan=plans[two],
        pid=DEAD_PID,
    )
    assert rollout_state.open_rollout(one).id == first.id
    assert rollout_state.open_rollout(two).id == other.id
    assert first.owner and f":{os.getpid()}:" in first.owner  # host:pid:uuid
    # Compare-and-set: a change made against a phase that has moved on does not apply.
    assert rollout_state.update(one, first.id, expected_phase="starting", phase="10%")
    assert not rollout_state.update(one, first.id, expected_phase="starting", phase="32%")
    assert rollout_state.get(one, first.id).phase == "10%"
    for root in (one, two):
        trail = audit.read(root)
        assert [e["action"] for e in trail] == ["promote"]
        assert trail[0]["model"] == load_config(root).model_name
        assert audit.verify(root).ok


TRAIN = """
import sys
from pathlib import Path
from slipway.pipelines import registry
from slipway.pipelines.config import load_config
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout.rehearsal import register_trained
root = Path(sys.argv[1]); config = load_config(root)
version = register_trained(root, config, {"C": float(sys.argv[2]), "max_iter": 500})
client = registry.client(root)
client.set_model_version_tag(config.model_name, version, registry.TAG_GATE_VERDICT, "passed")
registry.alias_newest_challenger(client, config.model_name, version)
audit.append(root, "register", model=config.model_name, version=version, reason="gate passed")
"""


def test_two_trainings_of_one_spoke_at_once_lose_nothing(
    team_env: MlflowServer, make_spoke: SpokeMaker
):
    root = make_spoke(unique_slug("twice"))
    model = load_config(root).model_name
    trainings = [
        subprocess.Popen([sys.executable, "-c", TRAIN, str(root), c], stderr=subprocess.PIPE)
        for c in ("1.0", "0.5")
    ]
    codes = [t.wait(timeout=COMMAND_GUARD_S) for t in trainings]
    assert codes == [0, 0], [t.stderr.read().decode()[-3000:] for t in trainings if t.stderr]
    versions = registry.client(root).search_model_versions(f"name = '{model}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert aliases(root, model)["challenger"] == "2"  # the newest, whoever finished last
    assert sorted(e["version"] for e in audit.read(root)) == ["1", "2"]
    assert audit.verify(root).ok


def backend_aliases(server: MlflowServer, model: str) -> dict[str, str]:
    """The aliases as the registry's own database holds them (readable while it is down)."""
    with psycopg.connect(server.backend) as conn:
        rows = conn.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = %s", (model,)
        ).fetchall()
    return {alias: str(version) for alias, version in rows}


def test_a_registry_restart_mid_rollout_is_survived_never_half_moved(
    team_env: MlflowServer, make_spoke: SpokeMaker
):
    root = make_spoke(unique_slug("outage"))
    config = load_config(root)
    model = config.model_name
    client = registry.client(root)
    v1 = register_trained(root, config, {"C": 1.0, "max_iter": 500})
    release.promote(root, client, model, v1, reason="first champion")
    v2 = register_trained(root, config, {"C": 0.5, "max_iter": 500})
    client.set_registered_model_alias(model, registry.CHALLENGER, v2)
    rollout = rollout_state.start(
        root,
        model=model,
        version=v2,
        champion_version=v1,
        plan=plan_for(config).as_dict(),
        pid=DEAD_PID,
    )
    nowhere = "http://127.0.0.1:9"  # the gateway is gone too: it restores weight 0 on restart
    drill = ("rollback", "--url", nowhere, "--reason", "registry outage drill")

    team_env.stop()
    restart = threading.Timer(1.0, team_env.start)
    try:
        down = slipway(root, *drill, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
        assert down.returncode == Exit.UNREACHABLE, down.stdout + down.stderr
        assert "did not answer, even after retrying" in down.stderr
        assert "Traceback" not in down.stderr
        # The decision is in the state database; the registry was not half moved.
        assert rollout_state.open_rollout(root).status == rollout_state.ROLLING_BACK
        assert backend_aliases(team_env, model) == {"champion": v1, "challenger": v2}

        # The registry comes back while the next attempt is backing off: it goes through.
        restart.start()
        again = slipway(root, *drill, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7"})
    finally:
        restart.cancel()
        if restart.ident is not None:  # started: wait until the server answers
            restart.join()
        if team_env.proc is None or team_env.proc.poll() is not None:
            team_env.start()
    assert again.returncode == 0, again.stdout + again.stderr
    assert rollout_state.get(root, rollout.id).status == rollout_state.ROLLED_BACK
    assert aliases(root, model) == {"champion": v1, "challenger": None, "previous": None}
    assert [e["action"] for e in audit.read(root)] == ["promote", "rollback"]
    assert audit.verify(root).ok
