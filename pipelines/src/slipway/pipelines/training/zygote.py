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
before); so does a platform without os.fork.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.settings import Settings

__all__ = [
    "StepCommand",
    "Zygote",
    "ZygoteUnavailable",
    "parse_step_command",
    "warm_steps",
]

EXECUTOR_MODULE = "kfp.dsl.executor_main"
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
    ("pandera", "pandera.typing", "slipway.pipelines.training.data_contract"),  # validate
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
        "mlflow.sklearn",
        "skops.io",
        "git",  # MLflow records the source commit with GitPython
        "slipway.pipelines.training.quality_gate",
    ),
    ("slipway.pipelines.governance.audit",),  # register
)


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
    os.environ["_KFP_RUNTIME"] = "true"
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


def _child(request: dict[str, Any], output_fd: int) -> None:
    """Become the step: its output, environment and directory; never returns."""
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
    stages: list[Callable[[], None]] = [functools.partial(_import, names) for names in STAGES]
    stages.insert(4, _matplotlib)  # for evaluate
    stages.append(_requirements_map)  # for register
    return stages


def _run_quietly(stage: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        stage()


def serve(channel: socket.socket) -> None:
    """The zygote's loop: one forked child per request, one at a time, warming up further
    while each child runs."""
    pending = _warm_ups()
    _run_quietly(pending.pop(0))
    channel.sendall(b"ready\n")
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 1)
        if not message:
            return
        buffer = message
        while not buffer.endswith(b"\n"):
            more = channel.recv(1 << 20)
            if not more:
                return
            buffer += more
        request = json.loads(buffer)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            channel.close()
            _child(request, fds[0])
        os.close(fds[0])
        done, status = 0, 0
        while pending and not done:  # no thread ever runs here: forking stays safe
            _run_quietly(pending.pop(0))
            done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            _, status = os.waitpid(pid, 0)
        channel.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())


class Zygote:
    """The parent's handle on a zygote process; `run(command, env)` has kfp.local's contract."""

    def __init__(self, log: IO[str] | None = None) -> None:
        parent, child = socket.socketpair()
        self._channel = parent
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=log if log is not None else subprocess.DEVNULL,
        )
        child.close()
        self._reader = parent.makefile("rb")
        self._ready = False

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
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def enabled() -> bool:
    return hasattr(os, "fork") and Settings.from_env().step_processes != "subprocess"


@contextlib.contextmanager
def warm_steps(log: IO[str] | None = None) -> Iterator[Zygote | None]:
    """While open, kfp.local's SubprocessRunner runs lightweight steps through a zygote."""
    if not enabled():
        yield None
        return
    if log is not None:
        log.flush()
    zygote = Zygote(log)  # first, so that it imports while this process does too
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
    serve(socket.socket(fileno=int(sys.argv[1])))
    # Nothing left to save: skip the interpreter's teardown of every module imported above
    # (seconds, with MLflow's and matplotlib's exit handlers), which the CLI would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
