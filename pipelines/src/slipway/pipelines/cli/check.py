"""`slipway check`: is this a valid spoke? Cheap enough for a pre-commit hook."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slipway.pipelines.cli._common import spoke_from_context
from slipway.pipelines.governance.tiers import rules_for
from slipway.pipelines.hub.tested_versions import untested
from slipway.pipelines.rollout.guardrails import explain, thresholds_for

if TYPE_CHECKING:
    from slipway.pipelines.registry_versions import RegistryVersions


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document (shape: docs/reference/cli.md)."
)
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Validate slipway.toml and report every problem with its field; compare the installed
    libraries with the versions this release was tested with, and the registry's MLflow with
    this environment's (exit 12 when they disagree)."""
    spoke = spoke_from_context(ctx)
    cfg = spoke.config
    versions = _registry_versions(spoke.root)
    if as_json:
        from slipway.pipelines.json_output import check_json, dumps

        click.echo(dumps(check_json(spoke.root, cfg, versions, untested())))
        if versions is not None:
            versions.raise_for_skew()
        return
    rules = rules_for(cfg.governance.risk_tier)
    click.echo(f"{spoke.root / 'slipway.toml'}: ok")
    click.echo(f"  model        {cfg.model_name} (risk tier {cfg.governance.risk_tier})")
    click.echo(f"  KPI          {cfg.kpi.name}: {cfg.kpi.baseline} -> {cfg.kpi.target}")
    click.echo(
        f"  contract     {len(cfg.data.contract.columns)} columns, "
        f">= {cfg.data.contract.min_rows} rows"
    )
    steps = " -> ".join(f"{s}%" for s in cfg.rollout.canary_steps)
    click.echo(f"  rollout      {steps}, {cfg.rollout.step_seconds}s per step")
    shadow = cfg.rollout.shadow_seconds > 0 or rules.shadow_required
    phases = len(cfg.rollout.canary_steps) + (1 if shadow else 0)
    for line in explain(thresholds_for(cfg), phases):
        click.echo(f"  guardrails   {line}")
    approval = "required" if rules.approval_required else "not required"
    card = "required" if rules.card_required else "optional"
    click.echo(f"  governance   approval {approval}, model card {card}")
    click.echo(
        f"  budget       {cfg.budget.monthly_usd:g} USD/month on {cfg.deploy.target} "
        f"({cfg.deploy.region})"
    )
    for drift in untested():
        click.secho(
            f"  warning      {drift.package} {drift.installed} is installed; this Slipway "
            f"release was tested with {drift.tested} (run `make setup` to install the lock)",
            fg="yellow",
        )
    if versions is not None:
        click.echo(
            f"  registry     {versions.uri}: {versions.registry}, MLflow {versions.client} here"
        )
        versions.raise_for_skew()


def _registry_versions(root: Path) -> RegistryVersions | None:
    """The registry's MLflow version against this environment's; None on the base install
    (no MLflow to compare) or for a registry with no version to read (an ARN)."""
    if find_spec("mlflow") is None:
        return None
    from slipway.pipelines import registry
    from slipway.pipelines.registry_versions import registry_versions

    return registry_versions(registry.tracking_uri(root))
