"""The audit trail's checkpoints outside its database, and the decision a gate may trust.

Why: the trail's owner role can still rewrite its tables (disable the trigger, delete the
last entries, set the head back) and the chain alone cannot tell. So every decision that
changes the registry carries, as a version tag, the seq and hash of the audit entry that
records it (``slipway.audit.checkpoint``). The registry is another system with other
credentials (an MLflow server, SageMaker managed MLflow): a rewrite of the trail that drops
or alters a checkpointed entry no longer matches the registry, and `slipway audit --verify`
says so.

The same link makes a decision's two halves one: a gate counts a decision only when the
version's tags point at the trail's latest decision on that version. Tags set again after a
later rejection (a replayed approval), or tags whose audit entry never landed, do not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slipway.pipelines.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from slipway.pipelines.spoke import Spoke

TAG_CHECKPOINT = "slipway.audit.checkpoint"  # the decision's (approve / reject) entry
TAG_OUTCOME_CHECKPOINT = "slipway.audit.outcome_checkpoint"  # the rollout outcome's entry
DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str

    def tag(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Checkpoint:
        return cls(int(entry["seq"]), str(entry["hash"]))

    @classmethod
    def parse(cls, value: str) -> Checkpoint | None:
        seq, _, digest = value.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            return None
        return cls(int(seq), digest)


def checkpoint_of(version: ModelVersion, tag: str = TAG_CHECKPOINT) -> Checkpoint | None:
    return Checkpoint.parse((version.tags or {}).get(tag, ""))


def latest_decision(
    entries: Sequence[Mapping[str, Any]], model: str, version: str
) -> Mapping[str, Any] | None:
    """The trail's last approve/reject entry on `model` `version`, or None."""
    found = None
    for entry in entries:
        if (
            entry.get("model") == model
            and entry.get("version") == str(version)
            and entry.get("action") in DECISIONS
        ):
            found = entry
    return found


def decision_problem(
    entries: Sequence[Mapping[str, Any]], version: ModelVersion, state: str | None
) -> str | None:
    """Why the version's decision tags (state `state`) are not the trail's latest decision on
    it, or None when they are (or nobody decided)."""
    latest = latest_decision(entries, version.name, str(version.version))
    if latest is None:
        if state is None:
            return None
        return (
            "the registry's decision tags have no entry in the audit trail (written around "
            "`slipway approve`, or the trail lost it)"
        )
    said = "approved" if latest.get("action") == "approve" else "rejected"
    mark = checkpoint_of(version)
    if state != said or mark is None or mark != Checkpoint.of(latest):
        by = (latest.get("details") or {}).get("by", latest.get("actor", "?"))
        return (
            f"the audit trail's latest decision on version {version.version} is seq "
            f"{latest.get('seq')}: {said} by {by}, and the registry's tags are not that decision "
            "(replayed or half written)"
        )
    return None


def stamp(client: MlflowClient, model: str, version: str, entry: Mapping[str, Any]) -> None:
    """Tag `version` with the rollout outcome's audit entry (promote, rollback, revert)."""
    client.set_model_version_tag(
        model, str(version), TAG_OUTCOME_CHECKPOINT, Checkpoint.of(entry).tag()
    )


def checkpoint_problems(
    entries: Sequence[Mapping[str, Any]], versions: Sequence[ModelVersion]
) -> list[str]:
    """Each registry checkpoint the trail no longer holds: the trail was cut or rewritten."""
    by_seq = {e.get("seq"): e.get("hash") for e in entries}
    last = max((s for s in by_seq if isinstance(s, int)), default=0)
    problems = []
    marks = [
        (version, mark)
        for version in versions
        for tag in (TAG_CHECKPOINT, TAG_OUTCOME_CHECKPOINT)
        if (mark := checkpoint_of(version, tag)) is not None
    ]
    for version, mark in marks:
        if mark.seq > last:
            problems.append(
                f"version {version.version}'s registry checkpoint names audit entry seq "
                f"{mark.seq}, but the trail ends at seq {last}: entries were deleted and the "
                "head set back (by someone who can write the trail's tables)"
            )
        elif by_seq.get(mark.seq) != mark.hash:
            problems.append(
                f"version {version.version}'s registry checkpoint names audit entry seq "
                f"{mark.seq} with hash {mark.hash[:12]}..., the trail holds another there: the "
                "trail was rewritten"
            )
    return problems


def registry_checkpoint_problems(spoke: Spoke) -> list[str]:
    """checkpoint_problems against the registry this spoke uses; [] when it has none yet.

    An unreachable registry is reported as a problem: `--verify` must not say "intact" when
    the one check that catches an owner's rewrite could not run."""

    from slipway.pipelines import registry
    from slipway.pipelines.registry import state_dir

    root, model = spoke.root, spoke.config.model_name

    if not Settings.from_env().mlflow_tracking_uri and not (state_dir(root) / "mlflow.db").exists():
        return []
    try:
        versions = registry.client(root).search_model_versions(f"name = '{model}'")
    except Exception as exc:  # any failure of the registry is reported, never a traceback
        return [f"the registry's checkpoints could not be read ({type(exc).__name__}): {exc}"]
    return checkpoint_problems(spoke.audit.read(), list(versions))
