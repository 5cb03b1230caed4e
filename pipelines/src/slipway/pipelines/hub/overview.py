"""What the console shows, as typed records: one SpokeView per spoke, built from the spoke's
checkout (slipway.toml, .copier-answers.yml), its registry and its team state.

Reading only. Every spoke is read on its own: a spoke whose registry cannot be reached, or
whose checkout is not a spoke, is shown with that error instead of hiding the others.
Everything here is plain data; nothing is HTML. The pages escape it (console_app.py).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.hub import console_sources as sources
from slipway.pipelines.hub.fleet import NotASpoke, SpokeStatus, spoke_status
from slipway.pipelines.spoke import Spoke

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from slipway.pipelines.config import SpokeConfig

# How a trail reads, worst first (the page sorts and colours by it).
TAMPERED = "tampered"
TRUNCATED = "truncated"
LOST = "lost"
VERIFIED = "verified"
EMPTY = "empty"
# Problems verify reports about the end of a trail (entries cut off, head record gone).
_END_MARKERS = ("head record", "were deleted", "end of the trail was rewritten")

# The guardrail readings a chart plots, with the label people read.
GUARDRAILS = (
    ("error_rate", "challenger errors"),
    ("champion_error_rate", "champion errors"),
    ("p95_ratio", "p95 latency ratio"),
    ("psi", "prediction PSI"),
)


@dataclass(frozen=True)
class VersionView:
    number: str
    aliases: tuple[str, ...]
    author: str
    registered: str  # ISO time, UTC
    approval: str  # "approved by X", "rejected by X" or "none"
    approval_reason: str
    rollout_outcome: str | None
    rollout_reason: str | None
    card: str  # "current", "none", or why the card is not current
    has_card: bool
    template_version: str | None


@dataclass(frozen=True)
class Point:
    at: float  # seconds since the rollout started
    phase: str
    weight: int
    readings: dict[str, float | None]


@dataclass(frozen=True)
class RolloutView:
    id: int
    version: str
    champion_version: str | None
    status: str
    phase: str
    weight: int
    reason: str
    started: str
    finished: str | None
    is_open: bool
    points: tuple[Point, ...]
    events: tuple[tuple[str, str], ...]  # (time, message)


@dataclass(frozen=True)
class AuditLine:
    seq: str
    at: str
    actor: str
    action: str
    version: str
    reason: str


@dataclass(frozen=True)
class TrailView:
    status: str  # TAMPERED, TRUNCATED, LOST, VERIFIED or EMPTY
    entries: int
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    where: str
    lines: tuple[AuditLine, ...]  # newest first


@dataclass(frozen=True)
class Waiting:
    """A version that cannot be released until someone acts; each blocker names who."""

    spoke: str
    version: str
    risk_tier: str
    who: str
    blockers: tuple[str, ...]


@dataclass(frozen=True)
class SpokeView:
    key: str  # the registered model's name (project.slug): the spoke's address in the console
    status: SpokeStatus  # owner, tier, template version and lag, leftover conflicts (fleet)
    versions: tuple[VersionView, ...] = ()  # newest first
    rollouts: tuple[RolloutView, ...] = ()  # newest first
    trail: TrailView | None = None
    waiting: tuple[Waiting, ...] = ()
    errors: tuple[str, ...] = ()

    def alias(self, name: str) -> VersionView | None:
        return next((v for v in self.versions if name in v.aliases), None)

    @property
    def open_rollout(self) -> RolloutView | None:
        return next((r for r in self.rollouts if r.is_open), None)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def trail_status(checked: Any, lost: str | None) -> str:
    """TAMPERED when an entry was edited, inserted, deleted or reordered; TRUNCATED when only
    its end is gone (or cannot be vouched for); LOST when the registry proves it was wiped."""
    if lost:
        return LOST
    if checked.problems:
        if all(any(m in p for m in _END_MARKERS) for p in checked.problems):
            return TRUNCATED
        return TAMPERED
    return VERIFIED if checked.entries else EMPTY


def _trail(spoke: Spoke) -> TrailView:
    read = sources.trail(spoke)
    checked = read.verification
    lines = tuple(
        AuditLine(
            seq=str(e.get("seq", "?")),
            at=str(e.get("at", "")),
            actor=str(e.get("actor", "")),
            action=str(e.get("action", "")),
            version=str(e.get("version") or ""),
            reason=str(e.get("reason", "")),
        )
        for e in reversed(read.entries)
    )
    problems = (*((read.lost,) if read.lost else ()), *checked.problems)
    return TrailView(
        status=trail_status(checked, read.lost),
        entries=checked.entries,
        problems=problems,
        notes=tuple(checked.notes),
        where=read.where or checked.where,
        lines=lines,
    )


def _rollout(spoke: Spoke, row: sources.RolloutRow) -> RolloutView:
    points = tuple(
        Point(
            at=round(r["at"] - row.started_at, 3),
            phase=str(r["phase"]),
            weight=int(r["weight"]),
            readings={key: r.get(key) for key, _ in GUARDRAILS},
        )
        for r in sources.readings(spoke, row.id)
    )
    events = tuple((_iso(e["at"]) or "", str(e["message"])) for e in sources.events(spoke, row.id))
    return RolloutView(
        id=row.id,
        version=row.version,
        champion_version=row.champion_version,
        status=row.status,
        phase=row.phase,
        weight=row.weight,
        reason=row.reason,
        started=_iso(row.started_at) or "",
        finished=_iso(row.finished_at),
        is_open=row.status in sources.OPEN_STATUSES,
        points=points,
        events=events,
    )


def rollout_view(root: Path, rollout_id: int) -> RolloutView | None:
    """One rollout, re-read (the live chart polls this: each poll is an edge, opening the
    spoke at `root` whose config is read only if its state is shared)."""
    spoke = Spoke(root)
    row = next((r for r in sources.rollouts(spoke) if r.id == rollout_id), None)
    return None if row is None else _rollout(spoke, row)


def _version(
    client: MlflowClient, config: SpokeConfig, v: ModelVersion, aliases: dict[str, Any]
) -> VersionView:
    from slipway.pipelines.governance.approvals import approval_of, author_of
    from slipway.pipelines.governance.model_card import TAG_CARD_FINGERPRINT, card_problem
    from slipway.pipelines.registry import (
        TAG_ROLLOUT_OUTCOME,
        TAG_ROLLOUT_REASON,
        TAG_TEMPLATE_VERSION,
    )

    tags = v.tags or {}
    decision = approval_of(v)
    has_card = bool(tags.get(TAG_CARD_FINGERPRINT))
    problem = card_problem(config, client, v) if has_card else None
    return VersionView(
        number=str(v.version),
        aliases=tuple(sorted(a for a, n in aliases.items() if str(n) == str(v.version))),
        author=author_of(v),
        registered=_iso((v.creation_timestamp or 0) / 1000) or "",
        approval=f"{decision.decision} by {decision.by}" if decision else "none",
        approval_reason=decision.reason if decision else "",
        rollout_outcome=tags.get(TAG_ROLLOUT_OUTCOME),
        rollout_reason=tags.get(TAG_ROLLOUT_REASON),
        card="none" if not has_card else (problem or "current"),
        has_card=has_card,
        template_version=tags.get(TAG_TEMPLATE_VERSION),
    )


def _waiting(
    spoke: Spoke, client: MlflowClient, versions: tuple[VersionView, ...]
) -> tuple[Waiting, ...]:
    """The challenger, and a newer version than the champion that no rollout has taken yet:
    what the next rollout would ask governance about."""
    from slipway.pipelines.governance.blockers import release_blockers, who_may_approve

    config = spoke.config
    champion = next((v for v in versions if "champion" in v.aliases), None)
    floor = int(champion.number) if champion else 0
    candidates = [
        v
        for v in versions
        if "challenger" in v.aliases
        or (int(v.number) > floor and not v.rollout_outcome and not v.approval.startswith("rej"))
    ][:1]
    found = []
    for v in candidates:
        blockers = release_blockers(spoke, client, v.number)
        if blockers:
            found.append(
                Waiting(
                    spoke=config.model_name,
                    version=v.number,
                    risk_tier=str(config.governance.risk_tier),
                    who=who_may_approve(config, v.author),
                    blockers=tuple(blockers),
                )
            )
    return tuple(found)


def spoke_view(root: Path, template: str | None, tags_cache: dict[str, list[Version]]) -> SpokeView:
    """Everything the console shows about the spoke at `root`; never raises for one spoke's
    trouble (it is listed in `errors`), only NotASpoke for a path that is no spoke at all."""
    from slipway.pipelines.config import load_config
    from slipway.pipelines.registry import client as registry_client
    from slipway.pipelines.registry import unreachable

    fleet = spoke_status(root, template, tags_cache)
    config = load_config(root)
    spoke = Spoke.open(root, config)
    errors: list[str] = []
    versions: tuple[VersionView, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    try:
        client = registry_client(root)
        found = client.search_model_versions(f"name='{config.model_name}'")
        if found:
            aliases = dict(client.get_registered_model(config.model_name).aliases or {})
            ordered = sorted(found, key=lambda v: -int(v.version))
            versions = tuple(_version(client, config, v, aliases) for v in ordered)
            waiting = _waiting(spoke, client, versions)
    except SlipwayError as exc:
        errors.append(f"registry: {exc}")
    except Exception as exc:
        known = unreachable(exc)
        errors.append(f"registry: {known or exc}")
    rollouts: tuple[RolloutView, ...] = ()
    trail_view: TrailView | None = None
    try:
        rollouts = tuple(_rollout(spoke, r) for r in reversed(sources.rollouts(spoke)))
        trail_view = _trail(spoke)
    except SlipwayError as exc:
        errors.append(f"team state: {exc}")
    return SpokeView(
        key=config.model_name,
        status=fleet,
        versions=versions,
        rollouts=rollouts,
        trail=trail_view,
        waiting=waiting,
        errors=tuple(errors),
    )


@dataclass(frozen=True)
class Overview:
    spokes: tuple[SpokeView, ...]
    problems: tuple[str, ...]  # paths that are no spoke, with what to do
    read_at: str

    @property
    def waiting(self) -> tuple[Waiting, ...]:
        return tuple(w for s in self.spokes for w in s.waiting)

    def spoke(self, key: str) -> SpokeView | None:
        return next((s for s in self.spokes if s.key == key), None)


def overview(
    paths: tuple[Path, ...],
    template: str | None = None,
    tags_cache: dict[str, list[Version]] | None = None,
) -> Overview:
    """Read every spoke at `paths` (the fleet the console watches); `tags_cache` keeps each
    template source's release tags between calls (see fleet.spoke_status)."""
    cache = {} if tags_cache is None else tags_cache
    spokes, problems = [], []
    for path in paths:
        try:
            spokes.append(spoke_view(path, template, cache))
        except NotASpoke as exc:
            problems.append(str(exc))
    return Overview(
        spokes=tuple(sorted(spokes, key=lambda s: s.key)),
        problems=tuple(problems),
        read_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def card_markdown(root: Path, model: str, version: str) -> str | None:
    """The model card logged with `version`'s run (what `slipway card` generated), or None."""
    from slipway.pipelines.governance.model_card import CARD_ARTIFACT_DIR
    from slipway.pipelines.registry import client as registry_client

    client = registry_client(root)
    found = client.get_model_version(model, version)
    if not found.run_id:
        return None
    listed = client.list_artifacts(found.run_id, CARD_ARTIFACT_DIR)
    if not any(item.path.endswith("model_card.md") for item in listed):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(found.run_id, f"{CARD_ARTIFACT_DIR}/model_card.md", tmp)
        return Path(local).read_text(encoding="utf-8")


def card_plot(root: Path, model: str, version: str, name: str) -> bytes | None:
    """A plot the card shows (`model_card/NAME.png` in the card is `plots/NAME.png` of the
    version's run); None when there is none."""
    from slipway.pipelines.registry import client as registry_client

    client = registry_client(root)
    found = client.get_model_version(model, version)
    if not found.run_id:
        return None
    available = {item.path for item in client.list_artifacts(found.run_id, "plots")}
    if f"plots/{name}" not in available:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(found.run_id, f"plots/{name}", tmp)).read_bytes()
