"""Model cards generated from the registry and slipway.toml, never written by hand.

A card is "current" for a version when the facts it was generated from are unchanged: the
card-relevant parts of slipway.toml (owners, intended use, KPI, data, contract, gates,
limitations, risk tier) and the version's own registry facts (lineage tags and metrics).
Their sha256 is the card's fingerprint, kept as a tag on the version. Approvals and rollout
history are shown on the card but are not part of the fingerprint: they happen after the
card is reviewed, and must not make it stale.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from slipway.pipelines._compat import spoke_or_root_and_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.governance import audit
from slipway.pipelines.governance.approvals import Decision, approval_of, proof_problem
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.registry import (
    CHAMPION,
    TAG_AUTHOR,
    TAG_DATA_DIGEST,
    TAG_GIT_DIRTY,
    TAG_GIT_SHA,
    TAG_KPI_BASELINE,
    TAG_KPI_NAME,
    TAG_KPI_TARGET,
    TAG_PIPELINE_SHA256,
    TAG_RISK_TIER,
    TAG_ROLLOUT_OUTCOME,
    TAG_ROLLOUT_REASON,
    TAG_SLIPWAY_VERSION,
    TAG_TEMPLATE_VERSION,
    version_by_alias,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from slipway.pipelines.config import SpokeConfig, Task
    from slipway.pipelines.spoke import Spoke

TAG_CARD_FINGERPRINT = "slipway.card.fingerprint"
TAG_CARD_CONFIG_SHA256 = "slipway.card.config_sha256"
TAG_CARD_SHA256 = "slipway.card.sha256"
TAG_CARD_AT = "slipway.card.at"

# Tags on the registered model (not a version): who owns it and which slipway.toml the cards
# were made from, so the hub's catalog can judge cards without the spoke's checkout.
MODEL_TAG_OWNER = "slipway.owner"
MODEL_TAG_TEAM = "slipway.team"
MODEL_TAG_RISK_TIER = "slipway.risk_tier"
MODEL_TAG_CONFIG_SHA256 = "slipway.config_sha256"

CARD_FILE = Path("docs") / "model_card.md"
CARD_ARTIFACT_DIR = "model_card"
PLOTS = ("plots/confusion_matrix.png", "plots/roc_curve.png")
LINEAGE_TAGS = (
    TAG_GIT_SHA,
    TAG_GIT_DIRTY,
    TAG_DATA_DIGEST,
    TAG_PIPELINE_SHA256,
    TAG_TEMPLATE_VERSION,
    TAG_SLIPWAY_VERSION,
    TAG_RISK_TIER,
    TAG_KPI_NAME,
    TAG_KPI_BASELINE,
    TAG_KPI_TARGET,
    TAG_AUTHOR,
)
_METRIC_PREFIXES = ("test_", "champion_")


class CardError(SlipwayError):
    """A card could not be generated or logged; the message says what to do."""


@dataclass(frozen=True)
class CardResult:
    path: Path
    version: str
    fingerprint: str
    gaps: tuple[str, ...]


def config_facts(config: SpokeConfig) -> dict[str, Any]:
    """The parts of slipway.toml a card states; changing any of them makes cards stale."""
    dumped = config.model_dump(mode="json")
    return {
        "project": dumped["project"],
        "kpi": dumped["kpi"],
        "governance": dumped["governance"],
        "data": dumped["data"],
        "gates": dumped["gates"],
    }


def version_facts(client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """The registry facts of one version a card states: lineage tags and held-out metrics."""
    tags = version.tags or {}
    metrics: dict[str, float] = {}
    if version.run_id:
        run = client.get_run(version.run_id)
        metrics = {
            key: value
            for key, value in run.data.metrics.items()
            if key.startswith(_METRIC_PREFIXES)
        }
    return {
        "name": version.name,
        "version": str(version.version),
        "run_id": version.run_id,
        "tags": {key: tags[key] for key in LINEAGE_TAGS if key in tags},
        "metrics": metrics,
    }


def fingerprint(config_sha: str, facts: dict[str, Any]) -> str:
    return audit.canonical_sha256({"config": config_sha, "version": facts})


def config_sha256(config: SpokeConfig) -> str:
    return audit.canonical_sha256(config_facts(config))


def publish_model_facts(client: MlflowClient, config: SpokeConfig) -> None:
    """Record owner, team, tier and the config sha256 on the registered model for the catalog."""
    for key, value in (
        (MODEL_TAG_OWNER, config.project.contact),
        (MODEL_TAG_TEAM, config.project.team),
        (MODEL_TAG_RISK_TIER, config.governance.risk_tier.value),
        (MODEL_TAG_CONFIG_SHA256, config_sha256(config)),
    ):
        client.set_registered_model_tag(config.model_name, key, value)


def card_problem(config: SpokeConfig, client: MlflowClient, version: ModelVersion) -> str | None:
    """Why this version has no card current with slipway.toml and the registry, or None."""
    return card_problem_for(config_sha256(config), client, version)


def card_problem_for(config_sha: str, client: MlflowClient, version: ModelVersion) -> str | None:
    """card_problem given only the config's sha256 (the catalog reads it from the registry)."""
    tags = version.tags or {}
    number = version.version
    recorded = tags.get(TAG_CARD_FINGERPRINT)
    if not recorded:
        return f"version {number} has no model card"
    if tags.get(TAG_CARD_CONFIG_SHA256) != config_sha:
        return (
            f"the model card of version {number} is out of date: slipway.toml changed "
            f"(owners, KPI, data, contract, gates or governance) since it was generated"
        )
    if fingerprint(config_sha, version_facts(client, version)) != recorded:
        return (
            f"the model card of version {number} is out of date: the version's lineage tags "
            "or metrics changed since it was generated"
        )
    if version.run_id and not _card_artifact_exists(client, version.run_id):
        return f"the model card artifact of version {number} is missing from its run"
    return None


def _card_artifact_exists(client: MlflowClient, run_id: str) -> bool:
    listed = client.list_artifacts(run_id, CARD_ARTIFACT_DIR)
    return any(item.path.endswith("model_card.md") for item in listed)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    def line(cells: tuple[Any, ...]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(tuple("---" for _ in header)), *map(line, rows)])


def _metrics_section(facts: dict[str, Any], gaps: list[str]) -> str:
    metrics: dict[str, float] = facts["metrics"]
    names = sorted(k.removeprefix("test_") for k in metrics if k.startswith("test_"))
    if not names:
        gaps.append("no held-out metrics (test_*) were logged with this version's run")
        return "_No held-out metrics were logged._"
    rows = []
    for name in names:
        ours = metrics[f"test_{name}"]
        theirs = metrics.get(f"champion_{name}")
        if theirs is None:
            rows.append((name, f"{ours:.4f}", "n/a", "n/a"))
        else:
            rows.append((name, f"{ours:.4f}", f"{theirs:.4f}", f"{ours - theirs:+.4f}"))
    if not any(k.startswith("champion_") for k in metrics):
        gaps.append("no comparison with a champion (first version, or champion metrics not logged)")
    return _table(("metric", "this version", "champion (same rows)", "difference"), rows)


def _gates_line(config: SpokeConfig) -> str:
    from slipway.pipelines.config import metric as metric_of

    gates, task = config.gates, config.training.task

    def better(name: str) -> tuple[str, str]:  # (comparison, sign of the margin)
        return (">=", "+") if metric_of(task, name).greater_is_better else ("<=", "-")

    floors = ", ".join(
        f"{name} {better(name)[0]} {value:g}" for name, value in sorted(gates.minimum.items())
    )
    metric = gates.primary_metric
    compare, sign = better(metric)
    return (
        f"Task: {task}. Gates a version had to pass: {floors or 'no absolute floors'}, and "
        f"{metric} {compare} the champion's {metric} {sign} {gates.champion_margin:g}."
    )


def _contract_section(config: SpokeConfig) -> str:
    contract = config.data.contract
    rows = [
        (
            name,
            rule.dtype,
            "" if rule.min is None else rule.min,
            "" if rule.max is None else rule.max,
            "yes" if rule.nullable else "no",
        )
        for name, rule in contract.columns.items()
    ]
    return (
        f"At least {contract.min_rows} rows; the same contract is checked in training, "
        "at serving and in drift monitoring.\n\n"
        + _table(("column", "type", "min", "max", "nullable"), rows)
    )


def _history(spoke: Spoke, model: str, version: str, actions: set[str] | None) -> list[dict]:
    return [
        e
        for e in spoke.audit.read()
        if e.get("model") == model
        and e.get("version") == version
        and (actions is None or e.get("action") in actions)
    ]


def _approval_section(spoke: Spoke, version: ModelVersion, gaps: list[str]) -> str:
    config = spoke.config
    decision = approval_of(version)
    required = rules_for(config.governance.risk_tier).approval_required
    if decision is None:
        if required:
            gaps.append(f"risk tier {config.governance.risk_tier} needs an approval; none yet")
        head = "No approval recorded" + (" (required by the risk tier)." if required else ".")
    else:
        head = f"Current decision: **{decision.decision}** by {decision.by} at {decision.at}: "
        head += decision.reason
        # The card never vouches for an approval the gate would not count.
        unproven = (
            proof_problem(config, version, decision)
            if required and decision.decision is Decision.approved
            else None
        )
        if unproven:
            head += f" (does not count: {unproven})"
            gaps.append(f"the approval of version {version.version} does not count: {unproven}")
    entries = _history(spoke, version.name, str(version.version), {"approve", "reject"})
    rows = [
        (e["at"], e["action"], e["details"].get("by", e["actor"]), e["reason"]) for e in entries
    ]
    return head if not rows else head + "\n\n" + _table(("when", "decision", "by", "why"), rows)


def _rollout_section(spoke: Spoke, version: ModelVersion) -> str:
    tags = version.tags or {}
    entries = _history(spoke, version.name, str(version.version), None)
    rows = [
        (e["at"], e["action"], e["actor"], e["reason"])
        for e in entries
        if e["action"] not in {"approve", "reject", "card", *WINDOW_ACTIONS}
    ]
    outcome = tags.get(TAG_ROLLOUT_OUTCOME)
    head = (
        f"Last rollout outcome: **{outcome}** ({tags.get(TAG_ROLLOUT_REASON, '')})."
        if outcome
        else "Not rolled out yet."
    )
    if not rows:
        return head
    return (
        head
        + "\n\nEvents recorded for this version in the audit trail:\n\n"
        + _table(("when", "action", "who", "why"), rows)
    )


WINDOW_ACTIONS = frozenset({"drift", "monitor"})  # one entry per monitoring window
SHOWN_WINDOWS = 8


def _monitoring_section(spoke: Spoke, version: ModelVersion) -> str:
    """The latest monitoring windows of this version while it served, each linked to its
    HTML report in the version's run (`slipway monitor --report`)."""
    windows = [
        e
        for e in _history(spoke, version.name, str(version.version), set(WINDOW_ACTIONS))
        if (e.get("details") or {}).get("env")
    ]
    if not windows:
        return "No monitoring window recorded for this version yet (`slipway monitor`)."
    rows = []
    for entry in windows[-SHOWN_WINDOWS:]:
        details = entry.get("details") or {}
        html = details.get("html")
        report = f"[report]({html})" if html else "-"
        verdict = "drift" if entry["action"] == "drift" else "no drift"
        if details.get("judged") is False:
            verdict = "not judged"
        rows.append((entry["at"], details["env"], verdict, details.get("decision", ""), report))
    drifted = sum(1 for e in windows if e["action"] == "drift")
    return (
        f"{len(windows)} window(s) monitored, {drifted} with drift; the latest "
        f"{len(rows)} (reports are artifacts of this version's run under `monitoring/`):\n\n"
        + _table(("when", "environment", "verdict", "decision", "report"), rows)
    )


def _fetch_plots(
    client: MlflowClient, run_id: str | None, into: Path, gaps: list[str], task: Task = "binary"
) -> str:
    """Copy the run's plots (the task's pair) beside the card so the Markdown renders offline."""
    from slipway.pipelines.training.evaluation import PLOTS as PLOTS_BY_TASK

    if not run_id:
        gaps.append("the version has no run, so no plots")
        return "_No plots._"
    found = []
    available = {item.path for item in client.list_artifacts(run_id, "plots")}
    for plot in (f"plots/{name}" for name in PLOTS_BY_TASK[task]):
        if plot not in available:
            gaps.append(f"plot {plot} was not logged with the version's run")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(client.download_artifacts(run_id, plot, tmp))
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, into / local.name)
        found.append(f"![{local.stem.replace('_', ' ')}](model_card/{local.name})")
    return "\n\n".join(found) if found else "_No plots._"


@spoke_or_root_and_config
def render_card(
    spoke: Spoke,
    client: MlflowClient,
    version: ModelVersion,
    *,
    plots_dir: Path,
) -> tuple[str, str, str, list[str]]:
    """(markdown, config sha, fingerprint, gaps) for one version."""
    config = spoke.config
    gaps: list[str] = []
    facts = version_facts(client, version)
    config_sha = config_sha256(config)
    print_fp = fingerprint(config_sha, facts)
    gov, kpi, project, data = config.governance, config.kpi, config.project, config.data
    tags = facts["tags"]
    if not gov.intended_use.strip():
        gaps.append("no intended use declared ([governance] intended_use in slipway.toml)")
    if not gov.limitations:
        gaps.append("no limitations declared ([governance] limitations in slipway.toml)")
    if not data.source.strip():
        gaps.append("no data source described ([data] source in slipway.toml)")
    for tag, what in (
        (TAG_DATA_DIGEST, "data digest"),
        (TAG_GIT_SHA, "git commit"),
        (TAG_AUTHOR, "author"),
        (TAG_PIPELINE_SHA256, "pipeline sha256"),
    ):
        if tags.get(tag, "unknown") == "unknown":
            gaps.append(f"no {what} recorded on the version ({tag})")
    if tags.get(TAG_GIT_DIRTY) == "true":
        gaps.append(
            "trained from a working tree with uncommitted changes: the code is not "
            "exactly the recorded commit"
        )
    champion = version_by_alias(client, config.model_name, CHAMPION)
    lineage = _table(
        ("fact", "value"),
        [
            ("registered", _when(version.creation_timestamp)),
            ("author", tags.get(TAG_AUTHOR, "unknown")),
            (
                "git commit",
                tags.get(TAG_GIT_SHA, "unknown")
                + (" (dirty working tree)" if tags.get(TAG_GIT_DIRTY) == "true" else ""),
            ),
            ("data digest", tags.get(TAG_DATA_DIGEST, "unknown")),
            ("pipeline sha256", tags.get(TAG_PIPELINE_SHA256, "unknown")),
            (
                "template / slipway version",
                f"{tags.get(TAG_TEMPLATE_VERSION, '?')} / {tags.get(TAG_SLIPWAY_VERSION, '?')}",
            ),
            ("MLflow run", version.run_id or "none"),
            ("champion now", f"version {champion.version}" if champion else "none"),
        ],
    )
    direction = "higher is better" if kpi.higher_is_better else "lower is better"
    template = Template(
        files("slipway.pipelines.governance")
        .joinpath("model_card.md.tmpl")
        .read_text(encoding="utf-8")
    )
    sections = {
        "name": project.name,
        "model": config.model_name,
        "version": str(version.version),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": print_fp,
        "tier": gov.risk_tier.value,
        # The template seeds intended_use from the description: say it once.
        "description": "" if project.description == gov.intended_use else project.description,
        "intended_use": gov.intended_use or "_Not declared._",
        "team": project.team,
        "contact": project.contact,
        "business_owner": project.business_owner,
        "cost_center": project.cost_center,
        "kpi": f"{kpi.name}: baseline {kpi.baseline:g}, target {kpi.target:g} ({direction})",
        "data_source": data.source or "_Not described._",
        "loader": data.loader,
        "target": data.target,
        "contract": _contract_section(config),
        "lineage": lineage,
        "metrics": _metrics_section(facts, gaps),
        "plots": _fetch_plots(client, version.run_id, plots_dir, gaps, config.training.task),
        "limitations": "\n".join(f"- {item}" for item in gov.limitations) or "_None declared._",
        "approvals": _approval_section(spoke, version, gaps),
        "approvers": "Who may approve: "
        + (", ".join(gov.approvers) or "anyone but the author")
        + ".",
        "gates": _gates_line(config),
        "rollouts": _rollout_section(spoke, version),
        "monitoring": _monitoring_section(spoke, version),
    }
    sections["gaps"] = "\n".join(f"- {gap}" for gap in gaps) or "None."
    return template.substitute(sections), config_sha, print_fp, gaps


def _when(millis: int | None) -> str:
    if not millis:
        return "unknown"
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")


@spoke_or_root_and_config
def write_card(spoke: Spoke, client: MlflowClient, version: ModelVersion) -> CardResult:
    """Write docs/model_card.md, log it to the version's run, tag the version, audit it."""
    config = spoke.config
    if not version.run_id:
        raise CardError(
            f"version {version.version} has no MLflow run to log its card to; "
            "register versions through `slipway train`"
        )
    path = spoke.root / CARD_FILE
    text, config_sha, print_fp, gaps = render_card(
        spoke, client, version, plots_dir=path.parent / "model_card"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    client.log_artifact(version.run_id, str(path), CARD_ARTIFACT_DIR)
    card_sha = hashlib.sha256(text.encode()).hexdigest()
    number = str(version.version)
    for key, value in (
        (TAG_CARD_FINGERPRINT, print_fp),
        (TAG_CARD_CONFIG_SHA256, config_sha),
        (TAG_CARD_SHA256, card_sha),
        (TAG_CARD_AT, datetime.now(UTC).isoformat(timespec="seconds")),
    ):
        client.set_model_version_tag(config.model_name, number, key, value)
    publish_model_facts(client, config)
    spoke.record(
        "card",
        model=config.model_name,
        version=number,
        reason=f"model card generated ({len(gaps)} gap(s))",
        details={"sha256": card_sha, "fingerprint": print_fp, "gaps": gaps},
    )
    return CardResult(path=path, version=number, fingerprint=print_fp, gaps=tuple(gaps))
