"""Warm step processes for kfp.local: fork each step from a parent that imported its libraries.

kfp.local's SubprocessRunner starts every step as `sh -ec <script> <component source>
--executor_input ... --function_to_execute ...`, where the script writes the source to a
temporary file and runs `python3 -m kfp.dsl.executor_main --component_module_path <file> "$@"`.
Each of those processes pays for importing kfp, mlflow, pandas and scikit-learn again (about
1.5-2.5 s each on a laptop, six times a run).

The zygote is a separate Python process, started as the run begins, that imports those
libraries once and then, for each step, forks a child that does exactly what the script does:
the same executor module, the same arguments, the same environment and working directory, its
output on its own pipe. A step is still its own process with only its declared inputs and
outputs (the executor input kfp.local wrote for it); what it shares with its siblings is
imported code, never state: the zygote opens no registry and no file before forking.

The zygote is a fresh interpreter, not the CLI process: forking a process that has started
threads (MLflow and kfp.local's parent do) is unsafe, and a fresh one imports while the CLI
compiles.

Anything the zygote does not recognise as that exact command (a component that installs
packages, a container component) runs the way kfp.local would run it.
SLIPWAY_STEP_PROCESSES=subprocess turns the zygote off (every step a new interpreter, as
before); so does a platform without os.fork. Outside CI the zygote outlives the run, as the
spoke's daemon (daemon.py); SLIPWAY_STEP_PROCESSES=zygote keeps one per run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from slipway.pipelines.errors import SlipwayError

__all__ = [
    "StepCommand",
    "Zygote",
    "ZygoteUnavailable",
    "background_allowed",
    "import_kfp_without_client",
    "parse_step_command",
    "warm_steps",
]

EXECUTOR_MODULE = "kfp.dsl.executor_main"
RUNTIME_ENV = "_KFP_RUNTIME"  # what kfp's step command sets: import only what runs a step
ENV_SWITCH = "SLIPWAY_STEP_PROCESSES"
# Imported once by the zygote, in the order the steps need them (found by profiling each forked
# step, benchmarks/README.md). The first stage is imported before the first step; each later one
# while a step runs, so the imports overlap the steps instead of delaying the first.
STAGES: tuple[tuple[str, ...], ...] = (
    (  # load
        "kfp.dsl.executor_main",
        "kfp.dsl.executor",
        "pandas",
        "pyarrow.parquet",
        "sklearn.datasets",
        "slipway.pipelines.training.steps",
        "slipway.pipelines.training.spoke_code",
        "slipway.pipelines.training.lineage",
    ),
    (  # validate: pandera registers its pandas backends (and imports hypothesis) on first use
        "pandera",
        "pandera.typing",
        "pandera.backends.pandas.register",
        "pandera.backends.pandas.builtin_checks",
        "slipway.pipelines.training.data_contract",
    ),
    (  # train
        "joblib",
        "sklearn.model_selection",
        "sklearn.pipeline",
        "sklearn.preprocessing",
        "sklearn.linear_model",
        "sklearn.ensemble",
    ),
    ("sklearn.metrics", "slipway.pipelines.training.evaluation"),  # evaluate
    (  # gate: MLflow's client, sqlite stores and scikit-learn flavour (saved with skops)
        "mlflow",
        "mlflow.tracking",
        "mlflow.store.tracking.sqlalchemy_store",
        "mlflow.store.model_registry.sqlalchemy_store",
        "mlflow.data.code_dataset_source",
        "mlflow.models",
        "mlflow.models.evaluation.evaluator_registry",  # imported by evaluate's first call
        "mlflow.models.evaluation.evaluators.classifier",
        "mlflow.models.evaluation.evaluators.regressor",
        "mlflow.pyfunc",
        "mlflow.sklearn",
        "skops.io",
        "git",  # MLflow records the source commit with GitPython
        "slipway.pipelines.training.quality_gate",
    ),
    ("slipway.pipelines.governance.audit",),  # register
)


# Set in the steps of a daemon's session: there, work that need not block the command may
# outlive the step (the daemon is the laptop's, long-lived; CI's zygote and Kubeflow's pods
# end with the run, and a finished run must hold everything).
_background = False


def background_allowed() -> bool:
    """Whether this step runs in the laptop's step daemon (see pictures.py for the use)."""
    return _background


class ZygoteUnavailable(SlipwayError):
    """The zygote cannot run this; do it the ordinary way (never reaches a person)."""


@dataclass(frozen=True)
class StepCommand:
    """What kfp.local's step script would run: the component's source and the executor's args."""

    source: str
    arguments: list[str]


def parse_step_command(command: Sequence[str]) -> StepCommand | None:
    """The step behind a kfp.local lightweight-component command, or None when it is anything
    else (then it must run as kfp.local would run it)."""
    if len(command) < 4 or command[0] != "sh" or command[1] not in ("-c", "-ec"):
        return None
    script = command[2]
    expected = ("program_path=$(mktemp -d)", "ephemeral_component.py", EXECUTOR_MODULE, '"$@"')
    if not all(part in script for part in expected) or "pip" in script:
        return None
    return StepCommand(source=command[3], arguments=list(command[4:]))


def _run_step(step: StepCommand) -> int:
    """In the forked child: the script's work, then the executor's main; returns the exit code."""
    program_path = tempfile.mkdtemp()
    module_path = os.path.join(program_path, "ephemeral_component.py")
    with open(module_path, "w", encoding="utf-8") as handle:
        handle.write(step.source)
    os.environ[RUNTIME_ENV] = "true"
    sys.argv = [EXECUTOR_MODULE, "--component_module_path", module_path, *step.arguments]
    from kfp.dsl import executor_main

    try:
        executor_main.executor_main()
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)  # what the interpreter does with SystemExit("message")
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _call(request: dict[str, Any], output_fd: int) -> None:
    """In the forked child: module:function(**arguments), its JSON result on the pipe (its
    own output goes where the zygote's does: the run's log); never returns."""
    import importlib

    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        module, _, name = request["call"].partition(":")
        try:
            result = {"ok": getattr(importlib.import_module(module), name)(**request["arguments"])}
        except Exception as error:
            result = {"error": f"{type(error).__name__}: {error}"}
        with open(output_fd, "w", encoding="utf-8") as answer:
            json.dump(result, answer, default=str)
        code = 0
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _child(request: dict[str, Any], output_fd: int, *, own_group: bool) -> None:
    """Become the step: its output, environment and directory; never returns. With
    own_group (a daemon's session, away from the terminal), the step leads its own process
    group, so that a command that goes away takes the step and what it started with it."""
    global _background
    if own_group:
        os.setpgid(0, 0)
        _background = True  # a daemon's session: the laptop's daemon, not CI's zygote
    if "call" in request:
        _call(request, output_fd)
    code = 1
    try:
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        code = _run_step(StepCommand(request["source"], request["arguments"]))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _import(names: tuple[str, ...]) -> None:
    import importlib

    for name in names:  # what they warn about on import goes to the run's log
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


@contextlib.contextmanager
def _kfp_runtime() -> Iterator[None]:
    """kfp imported as a step imports it (`_KFP_RUNTIME=true`, which the step command sets):
    without the compile-time names and kfp.client, whose Kubernetes client alone is 0.3 s
    of CPU before the first step could start."""
    from slipway.pipelines.settings import restored_environment

    with restored_environment([RUNTIME_ENV]):
        os.environ[RUNTIME_ENV] = "true"
        yield


def import_kfp_without_client() -> None:
    """For a process that compiles and runs a pipeline on kfp.local (the `slipway train`
    command): kfp and its compile-time names, without kfp.client, whose Kubernetes client
    costs 0.25 s of CPU on every run and serves only a submission to a cluster. `kfp.Client`
    still resolves, on first use. Nothing to do when kfp is already imported."""
    if "kfp" in sys.modules:
        return
    import importlib

    with _kfp_runtime():
        kfp = importlib.import_module("kfp")  # its __init__ reads the variable only now
    importlib.import_module("kfp.dsl")  # with the compile-time names: the variable is back

    def attribute(name: str) -> Any:
        if name == "Client":
            from kfp.client import Client

            return Client
        raise AttributeError(f"module 'kfp' has no attribute {name!r}")

    kfp.__getattr__ = attribute


def _first_stage() -> None:
    with _kfp_runtime():
        _import(STAGES[0])


def _matplotlib() -> None:
    import importlib

    import matplotlib

    matplotlib.use("Agg")  # what the evaluate step selects; a step never opens a window
    importlib.import_module("matplotlib.pyplot")


def _requirements_map() -> None:
    # MLflow maps import names to distributions (1.5 s) to check a logged model's
    # requirements; the map depends only on what is installed.
    from mlflow.utils import requirements_utils

    requirements_utils._init_packages_to_modules_map()  # pyright: ignore[reportPrivateUsage]


def _warm_ups() -> list[Callable[[], None]]:
    """Imports, and caches every step would otherwise fill again: pure reads of this
    interpreter and its installed packages, no file or connection left open."""
    # One module at a time after the first stage: a session notices a step that ended (and
    # forks the next) after the import under way, not after a whole stage (MLflow's is 2 s).
    stages: list[Callable[[], None]] = [_first_stage]
    stages += [functools.partial(_import, (name,)) for names in STAGES[1:] for name in names]
    stages.insert(1 + sum(map(len, STAGES[1:4])), _matplotlib)  # for evaluate
    stages.append(_requirements_map)  # for register
    return stages


# What a step needs imported before it is forked, by its function's name in the request:
# forked earlier, it would import MLflow itself while the session imports it too (twice the
# CPU, the same wall time). "*": every warm-up (the register step fills MLflow's package map).
NEEDS = {"gate_model": "slipway.pipelines.training.quality_gate", "register_model": "*"}


def _ready_for(request: dict[str, Any], pending: list[Callable[[], None]]) -> None:
    """Finish the warm-ups the requested step needs (NEEDS) before forking it."""
    if "call" in request:  # reading the outcome: MLflow's client, after register's warm-ups
        module: str | None = "*"
    else:
        arguments = list(request.get("arguments", []))
        flag = "--function_to_execute"
        name = arguments[arguments.index(flag) + 1] if flag in arguments[:-1] else ""
        module = NEEDS.get(name)
    while module and pending and module not in sys.modules:
        _run_quietly(pending.pop(0))


def _run_quietly(stage: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        stage()


def _hung_up(channel: socket.socket) -> bool:
    """The command sends nothing while a step runs: a readable channel means it went away."""
    try:
        return channel.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _stop_step(pid: int) -> int:
    """The command went away (Ctrl-C, killed): end the step's process group, as the
    terminal would have ended a step of its own."""
    import signal

    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:  # not a group of its own: a per-run zygote's step
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace or 0.0)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if grace is None:
                _, status = os.waitpid(pid, 0)
                return status
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    return 0


def _wait_step(pid: int, channel: socket.socket, pending: list[Callable[[], None]]) -> int | None:
    """The step's wait status, warming up further while it runs (no thread ever runs here:
    forking stays safe); None when the command hung up (the step is then stopped)."""
    while pending:
        _run_quietly(pending.pop(0))
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if _hung_up(channel):  # Ctrl-C during a first run: not only after all the imports
            _stop_step(pid)
            return None
    watched: list[Any] = [channel]
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    if pidfd is not None:
        watched.append(pidfd)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            readable, _, _ = select.select(watched, [], [], 1.0 if pidfd is not None else 0.02)
            if channel in readable and _hung_up(channel):
                _stop_step(pid)
                return None
    finally:
        if pidfd is not None:
            os.close(pidfd)


def serve(
    channel: socket.socket, pending: list[Callable[[], None]], *, own_group: bool = False
) -> None:
    """The zygote's loop: one forked child per request, one at a time, warming up further
    (the stages left in `pending`) while each child runs."""
    channel.sendall(b"ready\n")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 1)
        except OSError:
            return
        if not message:
            return
        buffer = message
        while not buffer.endswith(b"\n"):
            more = channel.recv(1 << 20)
            if not more:
                return
            buffer += more
        request = json.loads(buffer)
        _ready_for(request, pending)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            channel.close()
            _child(request, fds[0], own_group=own_group)
        os.close(fds[0])
        status = _wait_step(pid, channel, pending)
        if status is None:
            return
        channel.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())


class Zygote:
    """The parent's handle on a zygote process; `run(command, env)` has kfp.local's contract."""

    def __init__(
        self,
        channel: socket.socket,
        process: subprocess.Popen[bytes] | None = None,
        *,
        ready: bool = False,
    ) -> None:
        """Over `channel`, connected to a zygote's loop: a process of this command's own
        (`spawn`) or a session of the spoke's daemon (slipway.pipelines.training.daemon),
        which has already said it is ready."""
        self._channel = channel
        self._process = process
        self._reader = channel.makefile("rb")
        self._ready = ready

    @classmethod
    def spawn(cls, log: IO[str] | None = None) -> Zygote:
        """A zygote for this command alone: it ends when the command closes it."""
        parent, child = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=log if log is not None else subprocess.DEVNULL,
        )
        child.close()
        return cls(parent, process)

    def _wait_ready(self) -> bool:
        if not self._ready:
            self._ready = self._reader.readline() == b"ready\n"
        return self._ready

    def run(self, command: Sequence[str], env_vars: dict[str, str] | None = None) -> int | None:
        """Run a kfp.local step command in a forked child, print its output as kfp.local does,
        and return its exit code; None when this command is not one the zygote runs."""
        step = parse_step_command(command)
        if step is None or not self._wait_ready():
            return None
        read_end = self._send(
            {
                "source": step.source,
                "arguments": step.arguments,
                "env": {**os.environ, **(env_vars or {})},
                "cwd": os.getcwd(),
            }
        )
        with open(read_end, encoding="utf-8", errors="replace") as output:
            for line in output:
                print(line, end="")
        print("\n")  # kfp.local's separation after a step's output
        return self._exit_code()

    def call(self, function: str, arguments: dict[str, Any]) -> Any:
        """`module:function(**arguments)` in a forked child, where MLflow is already imported;
        returns its JSON result. Raises ZygoteUnavailable when the zygote cannot, and
        RuntimeError with the child's error when the function raised."""
        if not self._wait_ready():
            raise ZygoteUnavailable("the zygote did not start")
        read_end = self._send(
            {"call": function, "arguments": arguments, "env": dict(os.environ), "cwd": os.getcwd()}
        )
        with open(read_end, encoding="utf-8") as output:
            text = output.read()
        self._exit_code()
        if not text:
            raise ZygoteUnavailable("the call's process ended without an answer")
        answer = json.loads(text)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ok"]

    def _exit_code(self) -> int:
        answer = self._reader.readline()
        if not answer:
            raise RuntimeError("the step zygote ended unexpectedly; see the run's log")
        return int(answer)

    def _send(self, request: dict[str, Any]) -> int:
        """Send a request with the write end of a fresh pipe; returns the read end."""
        read_end, write_end = os.pipe()
        try:
            payload = json.dumps(request).encode() + b"\n"
            socket.send_fds(self._channel, [payload[: 1 << 16]], [write_end])
            if len(payload) > 1 << 16:
                self._channel.sendall(payload[1 << 16 :])
        finally:
            os.close(write_end)
        return read_end

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._channel.shutdown(socket.SHUT_RDWR)
        self._channel.close()
        self._reader.close()
        if self._process is None:
            return
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def enabled() -> bool:
    from slipway.pipelines.training.daemon import mode

    return mode() != "subprocess"


def _open(log: IO[str] | None, root: Path | None) -> Zygote:
    """The spoke's daemon when it is on (daemon.mode()), else a zygote for this run."""
    from slipway.pipelines.training import daemon

    if root is not None and daemon.mode() == "daemon":
        try:
            return daemon.connect(root, log)
        except (ZygoteUnavailable, OSError) as why:
            if log is not None:
                print(f"slipway: no step daemon ({why}); a zygote for this run", file=log)
    return Zygote.spawn(log)


@contextlib.contextmanager
def warm_steps(log: IO[str] | None = None, root: Path | None = None) -> Iterator[Zygote | None]:
    """While open, kfp.local's SubprocessRunner runs lightweight steps through a zygote:
    the daemon of the spoke at `root`, or one started for this run."""
    if not enabled():
        yield None
        return
    if log is not None:
        log.flush()
    zygote = _open(log, root)  # first, so that it imports while this process does too
    import_kfp_without_client()
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess

    def run_local_subprocess(
        full_command: list[str], env_vars: dict[str, str] | None = None
    ) -> int:
        code = zygote.run(full_command, env_vars)
        return original(full_command, env_vars) if code is None else code

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield zygote
    finally:
        handler.run_local_subprocess = original
        zygote.close()


if __name__ == "__main__":
    stages = _warm_ups()
    _run_quietly(stages.pop(0))
    serve(socket.socket(fileno=int(sys.argv[1])), stages)
    # Nothing left to save: skip the interpreter's teardown of every module imported above
    # (seconds, with MLflow's and matplotlib's exit handlers), which the CLI would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
