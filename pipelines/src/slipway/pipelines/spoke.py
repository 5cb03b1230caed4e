"""One spoke, opened once: its root, its config, and where its team state lives.

Until 0.2.0 every call that touched the audit trail or the rollout record took a bare
`root: Path`, and each one re-read the environment and re-parsed slipway.toml to decide
between the files under .slipway/ and the team's PostgreSQL (the controller did it four
times a second). `Spoke.open(root)` does it once: the config is loaded, the state location
resolved, and `.rollouts` and `.audit` are the two stores, typed by the Protocols below so
a caller never asks which back end it has. Each Protocol has a file and a PostgreSQL
implementation (rollout.state, governance.audit); one test suite runs against both.

This module is the composition root: it sits below the stages and opens the stores that
the rollout and governance stages implement (imported lazily, so a stage that reaches its
stores through a `Spoke` never imports a stage above it).
"""

from __future__ import annotations

import getpass
import subprocess
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from slipway.pipelines import store
from slipway.pipelines.settings import Settings

if TYPE_CHECKING:
    from slipway.pipelines.config import SpokeConfig
    from slipway.pipelines.governance.audit import NewEntry, Verification

__all__ = ["AuditTrail", "RolloutRow", "RolloutStore", "Spoke", "current_actor", "lease_expired"]


@dataclass(frozen=True)
class RolloutRow:
    """One rollout as the stores hold it (rollout.state writes it)."""

    id: int
    model: str
    version: str
    champion_version: str | None
    status: str
    phase: str
    step_index: int
    weight: int
    shadow: bool
    reason: str
    plan: dict[str, Any]
    controller_pid: int | None
    started_at: float
    updated_at: float
    finished_at: float | None
    owner: str | None = None  # host:pid:uuid of the controller that drives it
    lease_expires_at: float | None = None  # its heartbeat: renewed every poll

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lease_expired(row: RolloutRow, now: float | None = None) -> bool:
    """No controller holds this rollout: its lease ran out (or it has none, a row written
    before leases existed)."""
    at = time.time() if now is None else now
    return row.lease_expires_at is None or row.lease_expires_at <= at


@runtime_checkable
class RolloutStore(Protocol):
    """The durable rollout record (see rollout.state): at most one open rollout per spoke,
    changed only by compare-and-set, with its readings and events."""

    @property
    def where(self) -> str:
        """Where the record lives, for messages."""
        ...

    def start(
        self,
        *,
        model: str,
        version: str,
        champion_version: str | None,
        plan: dict[str, Any],
        pid: int,
        owner: str | None = None,
        lease: float | None = None,
    ) -> RolloutRow: ...

    def update(
        self,
        rollout_id: int,
        *,
        expected_phase: str | None = None,
        expected_status: str | None = None,
        expected_owner: str | None = None,
        **fields: Any,
    ) -> bool: ...

    def renew(self, rollout_id: int, owner: str, lease: float, status: str = ...) -> bool: ...

    def claim(
        self,
        row: RolloutRow,
        owner: str,
        lease: float,
        *,
        pid: int | None = None,
        now: float | None = None,
    ) -> bool: ...

    def get(self, rollout_id: int) -> RolloutRow | None: ...

    def latest(self) -> RolloutRow | None: ...

    def open_rollout(self) -> RolloutRow | None: ...

    def all_rollouts(self) -> list[RolloutRow]: ...

    def record_reading(
        self, rollout_id: int, phase: str, weight: int, data: dict[str, Any]
    ) -> None: ...

    def record_event(self, rollout_id: int, message: str) -> None: ...

    def readings(self, rollout_id: int) -> list[dict[str, Any]]: ...

    def events(self, rollout_id: int) -> list[dict[str, Any]]: ...


@runtime_checkable
class AuditTrail(Protocol):
    """The spoke's hash-chained audit trail (see governance.audit)."""

    @property
    def where(self) -> str:
        """Where the trail lives, for messages."""
        ...

    def append(self, new: NewEntry) -> dict[str, Any]: ...

    def read(self) -> list[dict[str, Any]]: ...

    def verify(self) -> Verification: ...


def current_actor(root: Path | None = None) -> str:
    """SLIPWAY_ACTOR (CI sets it), else git's user.email, else the login name."""
    if actor := Settings.from_env().actor:
        return actor
    try:
        email = subprocess.run(
            ["git", "config", "user.email"], cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        email = ""
    return email or getpass.getuser()


class Spoke:
    """A spoke's root and config with its two stores, resolved once per `open`."""

    def __init__(self, root: Path, config: SpokeConfig | None = None) -> None:
        self.root = root
        if config is not None:
            self.__dict__["config"] = config  # what `config` below would load

    def __repr__(self) -> str:
        return f"Spoke({str(self.root)!r})"

    @classmethod
    def open(cls, root: Path, config: SpokeConfig | None = None) -> Spoke:
        """`root`'s spoke, its slipway.toml loaded (unless `config` is given)."""
        if config is None:
            from slipway.pipelines.config import load_config

            config = load_config(root)
        return cls(root, config)

    @cached_property
    def config(self) -> SpokeConfig:
        """The spoke's config: given to `open` (loaded there, at the edge), or loaded on first
        use by a spoke made from a bare root by a one-release shim (`_compat.spoke_or_root`),
        which reads only what the old function read."""
        from slipway.pipelines.config import load_config

        return load_config(self.root)

    @cached_property
    def state_url(self) -> str | None:
        """The team's PostgreSQL, or None for the files under .slipway/ (SLIPWAY_STATE_URL,
        else a postgresql:// MLFLOW_TRACKING_URI): resolved on first use, then kept, so a
        command that never touches team state never asks."""
        return store.state_url()

    @property
    def key(self) -> str:
        """Which rows of the shared tables are this spoke's: the registered model's name."""
        if "config" not in self.__dict__:  # a shim's spoke: the slug alone, as 0.1.0 read it
            return store.spoke_key(self.root)
        return self.config.project.slug

    @cached_property
    def rollouts(self) -> RolloutStore:
        from slipway.pipelines.rollout.state import FileRollouts, SharedRollouts

        if self.state_url is None:
            return FileRollouts(self.root)
        return SharedRollouts(self.state_url, self.key)

    @cached_property
    def audit(self) -> AuditTrail:
        from slipway.pipelines.governance.audit import FileTrail, SharedTrail

        if self.state_url is None:
            return FileTrail(self.root)
        return SharedTrail(self.state_url, self.key)

    def record(self, action: str, **fields: Any) -> dict[str, Any]:
        """Append one audit entry (the fields of governance.audit.entry: model, version,
        reason, actor, details)."""
        from slipway.pipelines.governance.audit import entry

        return self.audit.append(entry(action, root=self.root, **fields))
