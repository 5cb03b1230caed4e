"""What reaches a person's terminal: slipway's own lines, readings formatted for people, and
(behind -v/--verbose) what the libraries say.

Libraries write to `sys.stderr`: Python's warnings, MLflow's log stream (which looks up
`sys.stderr` at each write), kfp's logging. `quiet_libraries` puts a tee in its place for the
command: every write goes to the attached log files (the training run's log, .slipway/logs/
slipway.log) and, only with -v, to the terminal. Slipway's own error lines go to `terminal()`,
the real stderr, so a quiet terminal never hides an error.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import IO, TextIO

__all__ = [
    "Ticker",
    "attach_log",
    "command_log",
    "duration",
    "milliseconds",
    "percent",
    "quiet_libraries",
    "reading",
    "terminal",
]

_REAL_STDERR: TextIO = sys.stderr
_ShowWarning = Callable[[Warning | str, type[Warning], str, int, TextIO | None, str | None], None]


class _LibraryStream(io.TextIOBase):
    """Stands in for sys.stderr: copies what libraries write to the logs, echoes with -v."""

    def __init__(self, terminal: TextIO, *, verbose: bool) -> None:
        self._terminal = terminal
        self.verbose = verbose
        self.logs: list[IO[str]] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            for log in self.logs:
                with contextlib.suppress(ValueError, OSError):  # a log closed under us
                    log.write(text)
            if self.verbose:
                self._terminal.write(text)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            for log in self.logs:
                with contextlib.suppress(ValueError, OSError):
                    log.flush()
            self._terminal.flush()

    def isatty(self) -> bool:
        return False  # libraries colour and animate only for a person who asked (-v)

    def fileno(self) -> int:
        # A subprocess given our stderr gets the real one; it is not a library line we own.
        return self._terminal.fileno()


_active: _LibraryStream | None = None


def terminal() -> TextIO:
    """The real stderr, for slipway's own error and warning lines."""
    return _active._terminal if _active is not None else sys.stderr


@contextlib.contextmanager
def quiet_libraries(*, verbose: bool) -> Iterator[None]:
    """For the command's duration, library output goes to the attached logs, and to the
    terminal only when `verbose`."""
    global _active
    previous, previous_stderr = _active, sys.stderr
    previous_show = warnings.showwarning
    stream = _LibraryStream(previous_stderr, verbose=verbose)
    _active = stream
    sys.stderr = stream
    warnings.showwarning = _show_slipway_warnings(previous_show)
    try:
        yield
    finally:
        stream.flush()
        warnings.showwarning = previous_show
        sys.stderr = previous_stderr
        _active = previous


def _show_slipway_warnings(show: _ShowWarning) -> _ShowWarning:
    """A SlipwayWarning is a line for people (`warning: ...`), where library warnings go (the
    logs, the terminal with -v); any other warning is shown as `show` shows it."""

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        from slipway.pipelines.errors import SlipwayWarning

        if issubclass(category, SlipwayWarning):
            (file or sys.stderr).write(f"warning: {message}\n")
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


@contextlib.contextmanager
def attach_log(log: IO[str]) -> Iterator[None]:
    """Library output also goes to `log` while this is open (a no-op outside the CLI)."""
    stream = _active
    if stream is None:
        yield
        return
    stream.logs.append(log)
    try:
        yield
    finally:
        stream.logs.remove(log)


def verbose() -> bool:
    """Whether the command line asked for the libraries' output (-v); False outside it."""
    return _active is not None and _active.verbose


# --- readings for people -------------------------------------------------------------------


def milliseconds(ms: float) -> str:
    """3.410253999959423 -> '3.4 ms'; 1250.0 -> '1.25 s'."""
    if abs(ms) >= 1000:
        return f"{ms / 1000:.2f} s"
    if abs(ms) >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def percent(fraction: float) -> str:
    """0.12 -> '12.0%'."""
    return f"{fraction * 100:.1f}%"


def duration(seconds: float) -> str:
    """7.25 -> '7.2s'; 125 -> '2m05s'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def reading(name: str, value: float) -> str:
    """A guardrail or step reading by its name's unit: *_ms in ms, *rate/*share/*fraction as
    a percentage, *_ratio as a factor, psi and the rest with three significant digits."""
    if name.endswith("_ms"):
        return milliseconds(value)
    if name.endswith("_ratio"):
        return f"{value:.2f}x"
    if name.endswith(("rate", "_share", "_fraction")):
        return percent(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


_FRAMES = "|/-\\"


class Ticker:
    """Shows that a step is running and for how long: a spinner with the elapsed time on a
    terminal; on a file or CI log, one plain line as it starts (the caller prints the end)."""

    def __init__(self, out: TextIO | None = None, *, interval: float = 0.25) -> None:
        self._out = out if out is not None else sys.stdout
        self._interval = interval
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def animated(self) -> bool:
        return self._out.isatty()

    def start(self, label: str) -> None:
        self.stop()
        if not self.animated:
            self._out.write(f"{label} running\n")
            self._out.flush()
            return
        self._done = threading.Event()
        started = time.monotonic()
        done, out, interval = self._done, self._out, self._interval

        def spin() -> None:
            tick = 0
            while not done.wait(interval):
                took = duration(time.monotonic() - started)
                out.write(f"\r{label} {_FRAMES[tick % 4]} {took}  ")
                out.flush()
                tick += 1

        self._thread = threading.Thread(target=spin, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and clear the spinner's line, so the caller's result line takes its place."""
        if self._thread is None:
            return
        self._done.set()
        self._thread.join()
        self._thread = None
        self._out.write("\r\x1b[2K")
        self._out.flush()


def command_log(project: str | None) -> IO[str] | None:
    """.slipway/logs/slipway.log of the spoke the command runs in (appended), or None outside
    a spoke; what the libraries say during a command is kept there."""
    from pathlib import Path

    from slipway.pipelines import registry
    from slipway.pipelines.config import find_spoke_root

    try:
        root = Path(project).resolve() if project else find_spoke_root()
        if not (root / "slipway.toml").is_file():
            return None
        logs = registry.state_dir(root) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / "slipway.log").open("a", encoding="utf-8")
    except Exception:  # no spoke here (e.g. `slipway --help` anywhere): nothing to keep
        return None
    log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} slipway {' '.join(sys.argv[1:])}\n")
    return log
