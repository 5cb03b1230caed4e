"""The local loop a data scientist keeps using: warm step processes, a quiet terminal, --json.

One spoke for the module (its runs build on each other: the first registers v1, the next are
gated against it), so the module stays in one xdist worker.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from slipway.pipelines import console
from slipway.pipelines.training import zygote
from slipway.pipelines.training.pipeline import TrainingSummary
from tests import hub

pytestmark = pytest.mark.xdist_group("local-loop-spoke")

VENV_BIN = Path(sys.executable).parent
MODEL = "diagnosis-assist"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Spoke Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Spoke Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}
# What libraries print, never slipway: Python warnings, logging records, kfp's executor lines.
LIBRARY_LINE = re.compile(r"\w+Warning:|\bINFO\b|\bWARNING\b|\bDEBUG\b|KFP Executor|warnings\.warn")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(GIT_ENV, SLIPWAY_ACTOR="data-scientist@example.com", **extra)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def slipway(spoke: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """tests.hub.slipway with this file's environment (its actor, git identity, no
    inherited registry) plus `env`."""
    return hub.slipway(spoke, *args, env=_env(**env), inherit=False)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=_env(), check=True, capture_output=True)


def _run_log(stdout: str) -> str:
    match = re.search(r"step output in (\S+\.log)", stdout)
    assert match, stdout
    return Path(match.group(1)).read_text(encoding="utf-8")


# --- a quiet terminal ------------------------------------------------------------------------


def test_a_default_train_prints_only_slipways_own_lines(first_run):
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    assert first_run.stderr == ""
    noisy = [line for line in first_run.stdout.splitlines() if LIBRARY_LINE.search(line)]
    assert noisy == []
    assert f"registered {MODEL} v1 as challenger" in first_run.stdout
    # Not a TTY: each step says it is running, then how it ended and how long it took.
    assert re.search(r"(?m)^  load-data\s+running$", first_run.stdout)
    assert re.search(r"(?m)^  load-data\s+ok\s+\d+\.\ds$", first_run.stdout)


def test_the_libraries_lines_are_in_the_runs_log_and_on_the_terminal_with_verbose(spoke, first_run):
    assert first_run.returncode == 0
    log = _run_log(first_run.stdout)
    assert "KFP Executor" in log  # kfp's INFO lines, from every step
    warned = set(re.findall(r"(\w+Warning):", log))
    loud = slipway(spoke, "-v", "train")
    assert loud.returncode == 0, loud.stdout + loud.stderr
    assert "KFP Executor" in loud.stderr
    assert warned <= set(re.findall(r"(\w+Warning):", loud.stderr))
    assert "KFP Executor" in _run_log(loud.stdout)  # in the log with -v too
    assert not any(LIBRARY_LINE.search(line) for line in loud.stdout.splitlines())


WARN_IN_THE_CLI = """
import io, sys, warnings
from slipway.pipelines import console

log = io.StringIO()
with console.quiet_libraries(verbose=sys.argv[1] == "-v"), console.attach_log(log):
    warnings.warn_explicit("from a library", UserWarning, "lib.py", 1)
    print("error: slipway's own line", file=console.terminal())
print(log.getvalue())
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_in_the_cli_process_go_to_the_log_unless_verbose(verbose):
    # A fresh interpreter: pytest records warnings itself, which would hide what happens.
    flag = "-v" if verbose else "-q"
    done = subprocess.run(
        [sys.executable, "-c", WARN_IN_THE_CLI, flag], capture_output=True, text=True, check=True
    )
    assert "UserWarning: from a library" in done.stdout  # the log
    assert ("UserWarning: from a library" in done.stderr) is verbose
    assert "error: slipway's own line" in done.stderr  # an error is never hidden


def test_readings_are_formatted_for_people():
    assert console.reading("champion_p95_ms", 3.410253999959423) == "3.4 ms"
    assert console.reading("challenger_p95_ms", 1250.0) == "1.25 s"
    assert console.reading("error_rate", 0.12) == "12.0%"
    assert console.reading("p95_ratio", 1.0512) == "1.05x"
    assert console.reading("psi", 0.123456) == "0.123"
    assert console.reading("requests", 200.0) == "200"
    assert console.duration(7.25) == "7.2s"
    assert console.duration(125) == "2m05s"


def test_a_running_step_says_so_on_a_log_and_spins_on_a_terminal():
    plain = io.StringIO()
    ticker = console.Ticker(plain)
    ticker.start("  gate-model")
    ticker.stop()
    assert plain.getvalue() == "  gate-model running\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    ticker = console.Ticker(screen, interval=0.01)
    ticker.start("  gate-model")
    import time

    deadline = time.monotonic() + 5
    while "0." not in screen.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    ticker.stop()
    shown = screen.getvalue()
    assert re.search(r"\r  gate-model [|/\\-] \d+\.\ds", shown), shown
    assert shown.endswith("\r\x1b[2K")  # the line is cleared for the result line


# --- --json ----------------------------------------------------------------------------------


def test_train_json_is_one_document_of_the_documented_shape(spoke, first_run):
    assert first_run.returncode == 0
    result = slipway(spoke, "train", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)  # nothing else on stdout
    assert list(document) == [f.name for f in fields(TrainingSummary)]
    assert document["model"] == MODEL
    assert document["status"] == "registered"
    assert document["exit_code"] == 0
    assert isinstance(document["version"], int) and document["version"] >= 2
    assert document["gate"] == "passed"
    assert document["baseline"] == f"challenger v{document['version'] - 1}"
    assert set(document["metrics"]) == {"roc_auc", "accuracy", "f1", "precision", "recall"}
    assert set(document["baseline_metrics"]) == set(document["metrics"])
    assert all(isinstance(v, float) for v in document["metrics"].values())
    assert any("floor" in reason for reason in document["reasons"])
    assert re.fullmatch(r"[0-9a-f]{32}", document["run_id"])
    assert Path(document["log"]).is_file()
    assert document["tracking_uri"].startswith("sqlite:///")


# --- warm step processes ---------------------------------------------------------------------


def _step_command() -> list[str]:
    """The command kfp.local builds for one of the spoke's components (install_kfp_package off)."""
    from slipway.pipelines.training.components import build

    component = build("python:3.11").load.component_spec.implementation.container
    assert component is not None and component.command and component.args
    return [str(part) for part in (*component.command, *component.args)]


def test_the_zygote_runs_exactly_kfps_lightweight_step_command_and_nothing_else():
    command = _step_command()
    step = zygote.parse_step_command(command)
    assert step is not None
    assert "def load_data(" in step.source
    assert step.arguments[step.arguments.index("--function_to_execute") + 1] == "load_data"
    assert zygote.parse_step_command(["sh", "-c", "echo hi", "x"]) is None
    installs = [command[0], command[1], "pip install pandas\n" + command[2], *command[3:]]
    assert zygote.parse_step_command(installs) is None


def test_each_step_is_its_own_process_with_its_own_environment(tmp_path):
    """A forked step reports its pid and the env kfp gave it; the zygote answers its exit."""
    probe = tmp_path / "probe.json"
    source = (
        "import json, os\n"
        "def probe(out: str) -> None:\n"
        "    json.dump({'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd(),\n"
        "               'flag': os.environ.get('STEP_FLAG'),\n"
        "               'runtime': os.environ.get('_KFP_RUNTIME')}, open(out, 'w'))\n"
        "def crash(out: str) -> None:\n"
        "    raise SystemExit('the step refused: because')\n"
    )
    script = (
        'program_path=$(mktemp -d)\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
        "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "
        '"$program_path/ephemeral_component.py" "$@"\n'
    )

    def command(function: str) -> list[str]:
        executor_input = {
            "inputs": {"parameterValues": {"out": str(probe)}},
            "outputs": {"outputFile": str(tmp_path / f"{function}-output.json")},
        }
        return [
            "sh", "-ec", script, source,
            "--executor_input", json.dumps(executor_input),
            "--function_to_execute", function,
        ]  # fmt: skip

    out = io.StringIO()
    log = (tmp_path / "zygote.log").open("w")
    runner = zygote.Zygote.spawn(log)
    try:
        from contextlib import redirect_stdout

        with redirect_stdout(out):
            first = runner.run(command("probe"), {"STEP_FLAG": "one"})
            seen_first = json.loads(probe.read_text())
            second = runner.run(command("probe"), {"STEP_FLAG": "two"})
            seen_second = json.loads(probe.read_text())
            crashed = runner.run(command("crash"), {})
    finally:
        runner.close()
        log.close()
    assert (first, second, crashed) == (0, 0, 1)
    assert seen_first["pid"] != seen_second["pid"] != os.getpid()
    assert seen_first["ppid"] == seen_second["ppid"] != os.getpid()  # both forked by the zygote
    assert (seen_first["flag"], seen_second["flag"]) == ("one", "two")
    assert seen_first["runtime"] == "true"
    assert seen_first["cwd"] == os.getcwd()
    assert "the step refused: because" in out.getvalue()  # its output, as kfp.local prints it
    assert "KFP Executor" in out.getvalue()


def test_two_trains_at_once_through_the_spokes_daemon(spoke, first_run, monkeypatch):
    """What a data scientist does with two terminals: both runs go through the one daemon,
    each in its own session, and each registers its own version with its own lineage."""
    import tempfile

    from slipway.pipelines.training import daemon

    assert first_run.returncode == 0
    runtime = tempfile.mkdtemp(prefix="sw-")  # short: a socket path has ~107 bytes
    env = {zygote.ENV_SWITCH: "daemon", "XDG_RUNTIME_DIR": runtime}
    commands = [
        subprocess.Popen(
            [str(VENV_BIN / "slipway"), "train", "--json"],
            cwd=spoke,
            env=_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [command.communicate(timeout=600) for command in commands]
        for command, (out, err) in zip(commands, outputs, strict=True):
            assert command.returncode == 0, out + err
        documents = [json.loads(out) for out, _ in outputs]
        assert documents[0]["run_id"] != documents[1]["run_id"]
        assert documents[0]["version"] != documents[1]["version"]
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
        log = daemon.paths_for(spoke).log.read_text()
        assert log.count("started for") == 1, log  # one daemon for both commands
        pid = daemon.running(spoke)  # still there for the next command
        stopped = slipway(spoke, "train", "--stop-daemon", **env)
        assert stopped.stdout.strip() == f"stopped the step daemon (pid {pid})", stopped.stderr
        again = slipway(spoke, "train", "--stop-daemon", **env)
        assert again.stdout.strip() == "no step daemon was running for this spoke"
    finally:
        for command in commands:
            if command.poll() is None:
                command.kill()


def test_the_zygote_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(zygote.ENV_SWITCH, "subprocess")
    with zygote.warm_steps() as runner:
        assert runner is None


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return json.loads(result.stdout)  # the document alone on stdout


def test_check_json_shape(spoke):
    from slipway.pipelines.json_output import CheckJson

    document = _json(slipway(spoke, "check", "--json"))
    assert list(document) == list(CheckJson.__annotations__)
    assert document["model"] == MODEL
    assert document["path"] == str(spoke / "slipway.toml")
    assert document["risk_tier"] == "medium"
    assert set(document["kpi"]) == {"name", "baseline", "target"}
    assert "mean_radius" in document["contract_columns"]
    assert document["canary_steps"] and all(isinstance(s, int) for s in document["canary_steps"])
    assert isinstance(document["approval_required"], bool)


def test_audit_json_shape_and_a_broken_chain(spoke, first_run, tmp_path):
    import shutil

    from slipway.pipelines.json_output import AuditEntry, AuditJson

    assert first_run.returncode == 0
    document = _json(slipway(spoke, "audit", "--json"))
    assert list(document) == list(AuditJson.__annotations__)
    assert document["verified"] is None and document["problems"] == []
    registered = [e for e in document["entries"] if e["action"] == "register"]
    assert registered and all(list(e) == list(AuditEntry.__annotations__) for e in registered)
    assert registered[0]["version"] == "1"
    only_v1 = _json(slipway(spoke, "audit", "--json", "--version", "1"))
    assert {e["version"] for e in only_v1["entries"]} == {"1"}
    intact = _json(slipway(spoke, "audit", "--verify", "--json"))
    assert (intact["verified"], intact["problems"]) == (True, [])

    copy = tmp_path / "spoke"
    shutil.copytree(spoke, copy)
    trail = copy / ".slipway" / "audit.jsonl"
    trail.write_text(trail.read_text().replace('"reason": "gate', '"reason": "edited', 1))
    broken = slipway(copy, "audit", "--verify", "--json")
    assert broken.returncode == 1
    document = json.loads(broken.stdout)
    assert document["verified"] is False and document["problems"]


def test_card_json_shape(spoke, first_run):
    from slipway.pipelines.json_output import CardJson

    assert first_run.returncode == 0
    document = _json(slipway(spoke, "card", "1", "--json"))
    assert list(document) == list(CardJson.__annotations__)
    assert (document["model"], document["version"]) == (MODEL, "1")
    assert Path(document["path"]).is_file()
    assert re.fullmatch(r"[0-9a-f]{64}", document["fingerprint"])
    assert isinstance(document["gaps"], list)


def test_deploy_json_keeps_the_last_reading_of_each_step_in_order(tmp_path):
    """The readings come from the rollout state a real rollout writes (record_reading)."""
    from slipway.pipelines.json_output import DeployJson, deploy_json, deploy_steps
    from slipway.pipelines.rollout import state

    (tmp_path / "slipway.toml").write_text("")
    row = state.start(
        tmp_path, model=MODEL, version="2", champion_version="1", plan={}, pid=os.getpid()
    )
    rollout = row.id
    for phase, weight, p95 in (("shadow", 0, 3.1), ("canary-10", 10, 3.3), ("canary-10", 10, 3.4)):
        state.record_reading(
            tmp_path, rollout, phase, weight, {"challenger_p95_ms": p95, "error_rate": 0.0}
        )
    steps = deploy_steps(state.readings(tmp_path, rollout))
    document = deploy_json(
        outcome="promoted", model=MODEL, version="2", reason=None, exit_code=0, steps=steps
    )
    assert list(document) == list(DeployJson.__annotations__)
    assert [(s["phase"], s["weight"]) for s in document["steps"]] == [
        ("shadow", 0),
        ("canary-10", 10),
    ]
    assert document["steps"][1]["readings"] == {"challenger_p95_ms": 3.4, "error_rate": 0.0}
    json.loads(json.dumps(document))  # plain JSON types only


def test_monitor_json_shape_on_drift(template_repo, tmp_path_factory, tmp_path):
    from slipway.pipelines.exitcodes import Exit
    from slipway.pipelines.json_output import MonitorJson
    from tests import governance_support as support
    from tests.governance.test_monitor import SCALE, serving_spoke

    rendered = support.render_spoke(template_repo, tmp_path_factory.mktemp("drift") / "spoke")
    root = serving_spoke(rendered, tmp_path, scale=SCALE)
    result = slipway(root, "--project", str(root), "monitor", "--no-retrain", "--json")
    assert result.returncode == Exit.DRIFT, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert list(document) == list(MonitorJson.__annotations__)
    assert document["drifted"] is True and document["enough_samples"] is True
    assert document["breaches"] and document["exit_code"] == Exit.DRIFT
    assert document["retrained"] is None  # --no-retrain
    assert (document["decision"], document["consecutive"]) == ("wait", 1)  # drift_windows 2
    assert document["started"] is None and document["html"] is None
    assert all(isinstance(v, float) for v in document["features"].values())
    assert Path(document["report"]).is_file()
    assert "drift found" in result.stderr  # the progress lines, off stdout
