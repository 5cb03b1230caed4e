"""The spoke's step daemon: reused between commands, restarted when what it imported may have
changed, one session per command (two at once run side by side), stopped when idle, and a
step ends when the command that asked for it goes away.

Each test starts real daemons (the zygote's imports: a few seconds of CPU each) in a private
runtime directory of its own, and stops them at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.pipelines.training import daemon, zygote

PROBE = '''
import os, time
from pathlib import Path

def meet(mine, other):
    """Say this step runs, then wait for the other command's step: only two steps running
    at once ever both return."""
    Path(mine).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the other command's step never ran alongside this one")
        time.sleep(0.01)
    return {"pid": os.getpid(), "session": os.getppid()}

def hang(pidfile):
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(600)
'''


@pytest.fixture
def spoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A spoke's lock and project file, a library on PYTHONPATH that the daemon preloads,
    and a runtime directory of the test's own (short: a socket path has ~107 bytes)."""
    root = tmp_path / "spoke"
    (root / "src" / "model").mkdir(parents=True)
    (root / "src" / "model" / "train.py").write_text("def train(): return 1\n")
    (root / "uv.lock").write_text("version = 1\n")
    (root / "pyproject.toml").write_text('[project]\nname = "model"\n')
    library = tmp_path / "lib"
    library.mkdir()
    (library / "probe_lib.py").write_text(textwrap.dedent(PROBE))
    runtime = Path(tempfile.mkdtemp(prefix="sw-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PYTHONPATH", str(library))
    monkeypatch.setenv(daemon.PRELOAD_ENV, "probe_lib")
    monkeypatch.setenv(zygote.ENV_SWITCH, "daemon")
    yield root
    daemon.stop(root)
    subprocess.run(["rm", "-rf", str(runtime)], check=False)


def _session(root: Path) -> tuple[int, int]:
    """(daemon pid, session pid) of one command's session, which it then closes."""
    session = daemon.connect(root)
    try:
        session_pid = session.call("os:getppid", {})
    finally:
        session.close()
    pid = daemon.running(root)
    assert pid is not None
    return pid, session_pid


def _warm(root: Path) -> None:
    """Wait until the daemon has imported everything (the preloaded library last)."""
    deadline = time.monotonic() + 300
    while (found := daemon.status(root)) is None or found.stages_left:
        assert time.monotonic() < deadline, "the daemon never finished warming up"
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # ended, not yet reaped by its parent


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 60
    while not _gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


@pytest.mark.slow  # a real daemon or MLflow evaluation: `make test` runs it
def test_later_commands_reuse_the_daemon_and_a_change_restarts_it(spoke: Path) -> None:
    first, session_a = _session(spoke)
    again, session_b = _session(spoke)
    assert again == first  # warm: the second command forked from the same daemon
    assert session_a != session_b  # each command its own session

    # The team edits its trainer: the daemon never imported it (each step does), no restart.
    (spoke / "src" / "model" / "train.py").write_text("def train(): return 2\n")
    assert _session(spoke)[0] == first

    # A code change in a module the daemon holds: a new daemon, the old one ends.
    _warm(spoke)
    probe = Path(os.environ["PYTHONPATH"]) / "probe_lib.py"
    probe.write_text(probe.read_text() + "\nCHANGED = True\n")
    after_code, _ = _session(spoke)
    assert after_code != first
    _wait_gone(first)
    log = daemon.paths_for(spoke).log.read_text()
    assert f"daemon {first} ending for a new daemon: {probe} changed" in log

    # The lock moves (uv lock, uv add): a new daemon again.
    (spoke / "uv.lock").write_text("version = 1\n# mlflow upgraded\n")
    after_lock, _ = _session(spoke)
    assert after_lock not in (first, after_code)
    _wait_gone(after_code)
    assert "the spoke's lock or environment changed" in daemon.paths_for(spoke).log.read_text()


@pytest.mark.slow  # a real daemon or MLflow evaluation: `make test` runs it
def test_two_commands_at_once_share_one_daemon_and_run_side_by_side(
    spoke: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "a", tmp_path / "b"
    results: dict[str, object] = {}

    def command(name: str, mine: Path, other: Path) -> None:
        try:  # both race to start the daemon: the lock lets one start it
            session = daemon.connect(spoke)
            try:
                results[name] = session.call(
                    "probe_lib:meet", {"mine": str(mine), "other": str(other)}
                )
            finally:
                session.close()
        except Exception as error:  # reported below, with the other command's
            results[name] = error

    threads = [
        threading.Thread(target=command, args=("a", marks[0], marks[1])),
        threading.Thread(target=command, args=("b", marks[1], marks[0])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    a, b = results["a"], results["b"]
    assert isinstance(a, dict) and isinstance(b, dict), results  # both met the other's step
    assert a["session"] != b["session"]
    assert a["pid"] != b["pid"]
    log = daemon.paths_for(spoke).log.read_text()
    assert log.count("started for") == 1, log  # one daemon, not one per racing command


@pytest.mark.slow  # a real daemon or MLflow evaluation: `make test` runs it
@pytest.mark.parametrize("kind", ["daemon", "zygote"])
def test_a_step_ends_when_its_command_goes_away(spoke: Path, tmp_path: Path, kind: str) -> None:
    """Ctrl-C or a kill of `slipway train`: the running step ends too, whether it was forked
    by the spoke's daemon (its own process group, away from the terminal) or by a zygote of
    the command's own."""
    pidfile = tmp_path / "step.pid"
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path\n"
            "from slipway.pipelines.training import daemon, zygote\n"
            "root, pidfile, kind = Path(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
            "runner = daemon.connect(root) if kind == 'daemon' else zygote.Zygote.spawn()\n"
            "runner.call('probe_lib:hang', {'pidfile': pidfile})",
            str(spoke),
            str(pidfile),
            kind,
        ]
    )
    deadline = time.monotonic() + 120
    while not pidfile.exists() or not pidfile.read_text():
        assert client.poll() is None, "the command ended before its step started"
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    step = int(pidfile.read_text())
    client.kill()  # as a killed or interrupted `slipway train` would
    client.wait()
    _wait_gone(step)  # its session or zygote saw the command go and ended the step
    if kind == "daemon":
        assert daemon.running(spoke) is not None  # the daemon stays for the next command


@pytest.mark.slow  # a real daemon or MLflow evaluation: `make test` runs it
def test_an_idle_daemon_stops_itself(spoke: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(daemon.IDLE_ENV, "0.01")  # 0.6 s
    pid, _ = _session(spoke)
    _wait_gone(pid)
    assert not daemon.paths_for(spoke).socket.exists()
    assert f"daemon {pid} stopped: idle for 0.0 min" in daemon.paths_for(spoke).log.read_text()


def test_the_daemon_is_off_in_ci_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(zygote.ENV_SWITCH, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert daemon.mode() == "daemon"
    monkeypatch.setenv("CI", "true")
    assert daemon.mode() == "zygote"
    monkeypatch.setenv(zygote.ENV_SWITCH, "daemon")
    assert daemon.mode() == "daemon"
    monkeypatch.setenv(zygote.ENV_SWITCH, "subprocess")
    assert daemon.mode() == "subprocess"


def test_another_users_runtime_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "run"
    (shared / "slipway").mkdir(parents=True)
    (shared / "slipway").chmod(0o777)  # anyone could plant a socket here and run our steps
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    with pytest.raises(zygote.ZygoteUnavailable, match="not a private directory"):
        daemon.paths_for(tmp_path)
