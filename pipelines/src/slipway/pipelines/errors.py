"""One error hierarchy for everything Slipway refuses or cannot do.

Every error Slipway raises on purpose is a `SlipwayError`: its message says what went wrong
and what to do next, and its `exit_code` is what the `slipway` command exits with. The CLI
maps them once (`slipway.pipelines.cli.main`), so a library function that raises the right
error is already a documented command-line outcome, and can be tested without a CLI runner.

Some classes also derive from the builtin they replaced (`ValueError`, `RuntimeError`) so
callers written against 0.1.0 keep catching them.
"""

from __future__ import annotations

from typing import ClassVar

from slipway.pipelines.exitcodes import Exit

__all__ = ["CommandError", "SlipwayError", "SlipwayWarning"]


class SlipwayError(Exception):
    """Base of Slipway's errors; `exit_code` is the command's exit code for it."""

    exit_code: ClassVar[Exit] = Exit.ERROR

    def __init__(self, message: str = "", *, exit_code: Exit | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            # An instance may carry another code than its class: the same missing file is a
            # configuration error for `slipway compile` and a failed run for `slipway train`.
            self.exit_code = exit_code  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def message(self) -> str:
        return str(self)


class CommandError(SlipwayError):
    """A command's own refusal (bad option combination, nothing to do), with its code."""


class SlipwayWarning(UserWarning):
    """Something works, but probably not as the team means it to (team state kept on one
    machine while the registry is shared). The library warns through `warnings` instead of
    printing, so a caller decides where it goes: the `slipway` command prints it as a
    `warning:` line (console.quiet_libraries), a test asserts it with `pytest.warns`, a
    program may filter it. It is a category, not an error: nothing raises it."""
