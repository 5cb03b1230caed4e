"""The hub's view across a registry: every model, who owns it, what serves, and is it governed.

Everything is read from the registry alone (model tags, version tags, aliases), so the
platform team can run it against a shared MLflow server without any spoke's checkout. For
the spoke the command runs in, its slipway.toml is used to judge whether the card is current;
for other models, the config sha256 their last `slipway card` recorded on the model is used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slipway.pipelines.governance.approvals import approval_of
from slipway.pipelines.governance.model_card import (
    MODEL_TAG_CONFIG_SHA256,
    MODEL_TAG_OWNER,
    MODEL_TAG_RISK_TIER,
    MODEL_TAG_TEAM,
    card_problem_for,
    config_sha256,
)
from slipway.pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    TAG_RISK_TIER,
    TAG_ROLLOUT_OUTCOME,
    TAG_ROLLOUT_REASON,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from slipway.pipelines.config import SpokeConfig


@dataclass(frozen=True)
class CatalogEntry:
    model: str
    owner: str | None
    team: str | None
    risk_tier: str | None
    versions: int
    champion_version: str | None
    # Days since the champion version was registered (MLflow keeps no alias timestamps).
    champion_age_days: float | None
    challenger_version: str | None
    challenger_approval: str  # the decision the rollout of the challenger waits for
    last_rollout_version: str | None
    last_rollout_outcome: str | None
    last_rollout_reason: str | None
    approval: str  # of the champion: "approved by X", "rejected by X" or "none"
    card_current: bool | None  # None: no champion to judge
    card_problem: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _approval_text(version: ModelVersion | None) -> str:
    decision = approval_of(version) if version is not None else None
    return f"{decision.decision} by {decision.by}" if decision else "none"


def _entry(
    client: MlflowClient, model: Any, config: SpokeConfig | None, now: datetime
) -> CatalogEntry:
    tags = dict(model.tags or {})
    versions = sorted(
        client.search_model_versions(f"name='{model.name}'"), key=lambda v: int(v.version)
    )
    by_number = {str(v.version): v for v in versions}
    aliases = dict(model.aliases or {})
    champion = by_number.get(str(aliases[CHAMPION])) if CHAMPION in aliases else None
    challenger = by_number.get(str(aliases[CHALLENGER])) if CHALLENGER in aliases else None
    rolled = [v for v in versions if (v.tags or {}).get(TAG_ROLLOUT_OUTCOME)]
    last = rolled[-1] if rolled else None
    own = config if config is not None and config.model_name == model.name else None
    owner = own.project.contact if own else tags.get(MODEL_TAG_OWNER)
    team = own.project.team if own else tags.get(MODEL_TAG_TEAM)
    tier = (own.governance.risk_tier.value if own else tags.get(MODEL_TAG_RISK_TIER)) or (
        (versions[-1].tags or {}).get(TAG_RISK_TIER) if versions else None
    )
    problem: str | None = None
    current: bool | None = None
    if champion is not None:
        config_sha = config_sha256(own) if own else tags.get(MODEL_TAG_CONFIG_SHA256, "")
        problem = card_problem_for(config_sha, client, champion)
        current = problem is None
    age = None
    if champion is not None and champion.creation_timestamp:
        born = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
        age = round((now - born).total_seconds() / 86400, 2)
    return CatalogEntry(
        model=model.name,
        owner=owner,
        team=team,
        risk_tier=tier,
        versions=len(versions),
        champion_version=str(champion.version) if champion else None,
        champion_age_days=age,
        challenger_version=str(challenger.version) if challenger else None,
        challenger_approval=_approval_text(challenger),
        last_rollout_version=str(last.version) if last else None,
        last_rollout_outcome=(last.tags or {}).get(TAG_ROLLOUT_OUTCOME) if last else None,
        last_rollout_reason=(last.tags or {}).get(TAG_ROLLOUT_REASON) if last else None,
        approval=_approval_text(champion),
        card_current=current,
        card_problem=problem,
    )


def catalog(client: MlflowClient, config: SpokeConfig | None = None) -> list[CatalogEntry]:
    """One entry per registered model, sorted by name."""
    now = datetime.now(UTC)
    models: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=200, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            break
    return [_entry(client, model, config, now) for model in sorted(models, key=lambda m: m.name)]


def format_table(entries: list[CatalogEntry]) -> str:
    """A fixed-width table for people; `--json` is the machine form."""
    header = ("model", "owner", "tier", "champion", "age (d)", "last rollout", "approval", "card")
    rows: list[tuple[str, ...]] = [header]
    for e in entries:
        card = (
            "-"
            if e.card_current is None
            else "current"
            if e.card_current
            else ("missing" if (e.card_problem or "").endswith("has no model card") else "STALE")
        )
        rollout = (
            f"v{e.last_rollout_version} {e.last_rollout_outcome}" if e.last_rollout_outcome else "-"
        )
        rows.append(
            (
                e.model,
                e.owner or "unknown",
                e.risk_tier or "?",
                f"v{e.champion_version}" if e.champion_version else "none",
                "-" if e.champion_age_days is None else f"{e.champion_age_days:g}",
                rollout,
                e.approval,
                card,
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
