"""The spoke's warm step daemon: the zygote kept alive between `slipway train` runs.

A per-run zygote (zygote.py) pays for importing kfp, MLflow, pandas, scikit-learn, skops and
pandera on every run: most of what `slipway train` costs beyond the team's own code. Like
dmypy or the Gradle daemon, this keeps that warm parent between runs:

- started on first use, one per spoke and user (a Unix socket in a directory only the user
  can enter; the daemon also checks the peer's user id);
- each command gets a *session*: a process forked from the daemon that runs the zygote's
  loop for that command alone, so two commands at once each fork their own steps and never
  share one; every step is still its own process with only its declared inputs and outputs;
- the daemon never imports the spoke's own code (each step imports it afresh, so an edit to
  the loader or trainer applies to the next run without a restart); it is restarted when what
  it did import could have changed: the spoke's uv.lock or pyproject.toml, the interpreter,
  the installed packages (site-packages), PYTHONPATH, or the file of any module it holds;
- stopped after SLIPWAY_DAEMON_IDLE_MINUTES (default 10) without a command, or when the
  spoke's directory is gone; `slipway train --stop-daemon` stops it at once;
- off in CI (the CI variable set) unless SLIPWAY_STEP_PROCESSES=daemon asks for it;
- SLIPWAY_DAEMON_PRELOAD=lightgbm,torch has it import the spoke's heavy libraries too.

SLIPWAY_STEP_PROCESSES chooses: `daemon` (the default outside CI), `zygote` (a warm parent
for this run only, the default in CI), `subprocess` (a fresh interpreter per step).

The daemon warms up in stages (zygote.STAGES). The first command's session finishes the
stages the daemon has not reached, while its steps run, as a per-run zygote does; between
commands the daemon finishes them itself, so later sessions fork from a fully warm parent.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import hashlib
import json
import os
import select
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from slipway.pipelines.settings import Settings, passed_on
from slipway.pipelines.training import zygote

__all__ = [
    "DaemonPaths",
    "connect",
    "fingerprint",
    "mode",
    "paths_for",
    "running",
    "status",
    "stop",
]

PROTOCOL = "1"
IDLE_ENV = "SLIPWAY_DAEMON_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 10.0
START_TIMEOUT = 60.0  # seconds for a new daemon to take its socket (a loaded laptop is slow)
# Environment that changes what an import does, so what the daemon holds.
PRELOAD_ENV = "SLIPWAY_DAEMON_PRELOAD"
_IMPORT_ENV = ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONSAFEPATH", "MPLBACKEND", PRELOAD_ENV)


@dataclass(frozen=True)
class DaemonPaths:
    """Where one spoke's daemon lives, for this user."""

    socket: Path  # the daemon listens here
    lock: Path  # held while a command checks for, or starts, the daemon
    log: Path  # the daemon's own output (a run's output goes to the run's log)


def _runtime_dir() -> Path:
    """A directory only this user can enter: XDG_RUNTIME_DIR/slipway, else
    <tmp>/slipway-<uid>. Raises ZygoteUnavailable when it is anyone else's."""
    base = Settings.from_env().runtime_dir
    if base and Path(base).is_dir():
        path = Path(base) / "slipway"
    else:
        path = Path(tempfile.gettempdir()) / f"slipway-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise zygote.ZygoteUnavailable(
            f"{path} is not a private directory of this user: no daemon (remove it to get one)"
        )
    return path


def paths_for(root: Path) -> DaemonPaths:
    """The daemon of the spoke at `root` (one per spoke and user)."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]
    base = _runtime_dir() / key
    return DaemonPaths(
        socket=base.with_suffix(".sock"),
        lock=base.with_suffix(".lock"),
        log=base.with_suffix(".log"),
    )


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "-"


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _package_dirs() -> list[str]:
    """Where packages are installed (the same for the command and the daemon, whose
    sys.path differ in their first entry: the script's directory or the spoke)."""
    import sysconfig

    found = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return sorted(path for path in found if path and os.path.isdir(path))


def fingerprint(root: Path) -> str:
    """What a daemon's imports depend on, as the command sees it: the spoke's lock and
    project file, the interpreter, the installed packages (a directory on sys.path changes
    its mtime when a package is added or removed) and the environment imports read."""
    parts = [
        PROTOCOL,
        os.path.realpath(sys.executable),
        sys.version,
        _digest(root / "uv.lock"),
        _digest(root / "pyproject.toml"),
        *(f"{name}={value}" for name, value in passed_on(_IMPORT_ENV).items()),
        *(f"{entry}@{_mtime(entry)}" for entry in _package_dirs()),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _ModuleFiles:
    """The files of the modules the daemon holds, as they were when imported."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}

    def record(self) -> None:
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path not in self._seen:
                with contextlib.suppress(OSError):
                    info = os.stat(path)
                    self._seen[path] = (info.st_mtime_ns, info.st_size)

    def changed(self) -> str | None:
        """The first file that changed since it was imported, or None."""
        for path, (mtime, size) in self._seen.items():
            try:
                info = os.stat(path)
            except OSError:
                return path
            if (info.st_mtime_ns, info.st_size) != (mtime, size):
                return path
        return None


def mode() -> str:
    """daemon, zygote or subprocess (SLIPWAY_STEP_PROCESSES; see the module's docstring)."""
    if not hasattr(os, "fork") or not hasattr(socket, "AF_UNIX"):
        return "subprocess"
    settings = Settings.from_env()
    chosen = (settings.step_processes or "").lower()
    if chosen in ("daemon", "zygote", "subprocess"):
        return chosen
    in_ci = (settings.ci or "").lower() not in ("", "0", "false", "no")
    return "zygote" if in_ci else "daemon"


# -- the command's side ------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _connect(path: Path) -> socket.socket | None:
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        channel.connect(str(path))
    except OSError:
        channel.close()
        return None
    return channel


def _start(root: Path, paths: DaemonPaths) -> socket.socket:
    """Start the daemon (the caller holds the lock and found none answering) and connect."""
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()  # left by a daemon that was killed: nothing listens on it
    with paths.log.open("a") as log:  # the last daemons' reasons to end stay readable
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(root), str(paths.socket)],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not the terminal's: Ctrl-C ends the command, not it
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        channel = _connect(paths.socket)
        if channel is not None:
            return channel
        if process.poll() is not None:
            break
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    raise zygote.ZygoteUnavailable(f"the step daemon did not start; its output is in {paths.log}")


def _introduce(channel: socket.socket, print_to: IO[str] | None, mark: str) -> None:
    """Send this command's fingerprint, and where its steps' output goes."""
    channel.settimeout(START_TIMEOUT)
    target = print_to.fileno() if print_to is not None else os.open(os.devnull, os.O_WRONLY)
    try:
        message = json.dumps({"fingerprint": mark}).encode() + b"\n"
        socket.send_fds(channel, [message], [target])
    finally:
        if print_to is None:
            os.close(target)
    channel.settimeout(None)


def _hello(channel: socket.socket, print_to: IO[str] | None, mark: str) -> str:
    """Introduce this command and read the daemon's answer. A daemon that does not answer
    within START_TIMEOUT raises TimeoutError (an OSError)."""
    _introduce(channel, print_to, mark)
    channel.settimeout(START_TIMEOUT)
    answer = b""
    while not answer.endswith(b"\n"):
        more = channel.recv(1)
        if not more:
            break
        answer += more
    channel.settimeout(None)
    return answer.decode().strip()


def connect(root: Path, log: IO[str] | None = None) -> zygote.Zygote:
    """A session of the spoke's daemon, started or restarted as needed; the steps' output
    goes to `log`. Raises ZygoteUnavailable when no daemon can serve this command."""
    root = root.resolve()
    paths = paths_for(root)
    mark = fingerprint(root)
    if log is not None:
        log.flush()
    for _ in range(3):
        channel = _connect(paths.socket)
        if channel is None:
            with _locked(paths.lock):
                channel = _connect(paths.socket)
                if channel is None:
                    channel = _start(root, paths)
                    # It holds this very fingerprint and no module that could have changed:
                    # its "ready" (after its first imports) is read at the first step, and
                    # this command compiles the pipeline meanwhile.
                    _introduce(channel, log, mark)
                    return zygote.Zygote(channel, ready=False)
        try:
            answer = _hello(channel, log, mark)
        except OSError:  # a daemon that was ending dropped the connection
            answer = "gone"
        if answer == "ready":
            return zygote.Zygote(channel, ready=True)
        channel.close()  # "stale" or gone: that daemon gave up its socket and is ending
    raise zygote.ZygoteUnavailable("the step daemon kept restarting")


@dataclass(frozen=True)
class DaemonStatus:
    pid: int
    stages_left: int  # warm-up stages it has not run yet (0: later sessions fork fully warm)


def _ask(root: Path, question: str) -> list[str]:
    channel = _connect(paths_for(root.resolve()).socket)
    if channel is None:
        return []
    with channel:
        try:
            return _hello(channel, None, question).split()
        except OSError:
            return []


def stop(root: Path) -> int | None:
    """Stop the spoke's daemon (the sessions of running commands finish); its pid, or None
    when none was running."""
    answer = _ask(root, "stop")
    return int(answer[1]) if answer[:1] == ["stopped"] else None


def status(root: Path) -> DaemonStatus | None:
    """The spoke's daemon, or None when none is running."""
    answer = _ask(root, "status")
    if answer[:1] != ["running"] or len(answer) != 3:
        return None
    return DaemonStatus(pid=int(answer[1]), stages_left=int(answer[2]))


def running(root: Path) -> int | None:
    """The pid of the spoke's daemon, or None when none is running."""
    found = status(root)
    return None if found is None else found.pid


# -- the daemon's side -------------------------------------------------------------------


def _peer_is_me(channel: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # the private directory is the guard there
    credentials = channel.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid == os.getuid()


class _Daemon:
    def __init__(self, root: Path, socket_path: Path) -> None:
        self.root = root
        self.socket_path = socket_path
        self.mark = fingerprint(root)
        settings = Settings.from_env()
        self.idle = 60 * (settings.daemon_idle_minutes or DEFAULT_IDLE_MINUTES)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(socket_path))
        self.listener.listen(16)
        self.inode = os.stat(socket_path).st_ino
        self.pending: list[Callable[[], None]] = zygote._warm_ups()  # pyright: ignore[reportPrivateUsage]
        if extra := tuple(filter(None, (settings.daemon_preload or "").split(","))):
            self.pending.append(functools.partial(zygote._import, extra))  # pyright: ignore[reportPrivateUsage]
        self.modules = _ModuleFiles()
        self.sessions: set[int] = set()
        self.last_active = time.monotonic()
        self.open = True

    def warm(self) -> None:
        zygote._run_quietly(self.pending.pop(0))  # pyright: ignore[reportPrivateUsage]
        self.modules.record()
        if not self.pending:
            gc.freeze()  # sessions fork from here: keep the collector off the shared pages

    def reap(self) -> None:
        for pid in list(self.sessions):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
            self.sessions.discard(pid)
            self.last_active = time.monotonic()

    def close(self) -> None:
        """Give up the socket (only if it is still ours) so the next command starts anew."""
        if not self.open:
            return
        self.open = False
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self.inode:
                self.socket_path.unlink()
        self.listener.close()

    def say(self, what: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} daemon {os.getpid()} {what}", flush=True)

    def should_end(self) -> str | None:
        """Why the daemon should end now, or None."""
        if self.sessions:
            return None
        if time.monotonic() - self.last_active > self.idle:
            return f"idle for {self.idle / 60:.1f} min"
        try:
            if os.stat(self.socket_path).st_ino != self.inode:
                return "its socket was replaced"
        except OSError:
            return "its socket was removed"
        return None if self.root.is_dir() else f"{self.root} is gone"

    def run(self) -> None:
        self.warm()
        while self.open:
            self.reap()
            busy = bool(self.sessions)
            timeout = 0.0 if self.pending and not busy else 1.0
            readable, _, _ = select.select([self.listener], [], [], timeout)
            if readable:
                channel, _ = self.listener.accept()
                self.last_active = time.monotonic()
                self.answer(channel)
            elif reason := self.should_end():
                self.say(f"stopped: {reason}")
                self.close()
            elif self.pending and not busy:
                self.warm()  # between commands: the next session forks fully warm
        while self.sessions:  # a stale daemon's sessions still finish their commands
            self.reap()
            time.sleep(0.2)

    def answer(self, channel: socket.socket) -> None:
        fds: list[int] = []
        try:
            channel.settimeout(10)
            if not _peer_is_me(channel):
                return
            message, fds, _, _ = socket.recv_fds(channel, 1 << 16, 1)
            while message and not message.endswith(b"\n"):
                more = channel.recv(1 << 16)
                if not more:
                    return
                message += more
            if not message or not fds:
                return
            mark = json.loads(message)["fingerprint"]
            if mark == "status":
                channel.sendall(f"running {os.getpid()} {len(self.pending)}\n".encode())
                return
            if mark == "stop":
                self.say("stopped: asked to")
                self.close()
                channel.sendall(f"stopped {os.getpid()}\n".encode())
                return
            changed = self.modules.changed()
            if mark != self.mark or changed:
                why = f"{changed} changed" if changed else "the spoke's lock or environment changed"
                self.say(f"ending for a new daemon: {why}")
                self.close()
                channel.sendall(b"stale\n")
                return
            channel.settimeout(None)
            self.fork_session(channel, fds[0])
        except (OSError, ValueError, KeyError):
            return
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            channel.close()

    def fork_session(self, channel: socket.socket, output_fd: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            self.sessions.add(pid)
            return
        code = 1
        try:  # the session: this command's zygote loop, its output in the command's log
            self.listener.close()
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            zygote.serve(channel, self.pending, own_group=True)
            code = 0
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def main(root: str, socket_path: str) -> None:
    daemon = _Daemon(Path(root), Path(socket_path))
    daemon.say(f"started for {root}")
    try:
        daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the teardown of every module imported (seconds)
