"""`slipway score`: score a CSV or Parquet file with one registered version, in chunks."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slipway.pipelines.cli._common import Spoke, spoke_from_context

if TYPE_CHECKING:
    from slipway.pipelines.batch.scoring import BatchResult
    from slipway.pipelines.config import SpokeConfig


def summary(result: BatchResult) -> dict[str, Any]:
    """The numbers of a batch, for --json and the summary line."""
    return {
        "input": result.input,
        "output": result.output if result.published else None,
        "quarantine": result.quarantine if result.published and result.quarantined else None,
        "model": result.model.name,
        "version": result.model.version,
        "model_run_id": result.model.run_id,
        "rows_in": result.rows_in,
        "scored": result.scored,
        "quarantined": result.quarantined,
        "rejected_fraction": round(result.rejected_fraction, 6),
        "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.rows_per_second, 1),
        "published": result.published,
        "scored_at": result.scored_at,
        "reasons": result.reasons,
    }


def _line(result: BatchResult) -> str:
    from slipway.pipelines.console import duration, percent

    return (
        f"{result.rows_in:,} rows in, {result.scored:,} scored, {result.quarantined:,} "
        f"quarantined ({percent(result.rejected_fraction)}) in {duration(result.seconds)} "
        f"({result.rows_per_second:,.0f} rows/s)"
    )


@click.command()
@click.argument("input_path", metavar="INPUT")
@click.option("--output", "-o", required=True, help="Predictions (Parquet): a path or s3://.")
@click.option(
    "--quarantine",
    default=None,
    help="Rejected rows with their reason (Parquet); default OUTPUT's name + .quarantine.",
)
@click.option("--version", "version", default=None, help="Score with this registered version.")
@click.option(
    "--alias", default=None, help="Score with the version holding this alias (default champion)."
)
@click.option(
    "--kfp-local",
    is_flag=True,
    help="Run the Kubeflow batch pipeline (shards in parallel) on kfp.local instead of "
    "scoring in this process: what a cluster runs, on this machine.",
)
@click.option(
    "--kfp-host",
    metavar="URL",
    default=None,
    help="Submit the batch pipeline to this Kubeflow Pipelines API (as `slipway train "
    "--kfp-host`: MLFLOW_TRACKING_URI names the team's registry; INPUT and OUTPUT should be "
    "s3:// paths the cluster can reach).",
)
@click.option("--image", metavar="REF", default=None, help="With --kfp-host: the spoke's image.")
@click.option("--namespace", default=None, help="With --kfp-host: your Kubeflow namespace.")
@click.option(
    "--schedule",
    metavar="CRON",
    default=None,
    help="With --kfp-host: create a recurring run instead of one run (six cron fields, "
    "seconds first: '0 0 2 * * *' is 02:00 every day).",
)
@click.option(
    "--env",
    type=click.Choice(["staging", "prod"]),
    default=None,
    help="Score as a SageMaker Batch Transform job on the environment's Model of the version "
    "(the spoke's image; AWS credentials needed). INPUT is staged to the spoke's bucket.",
)
@click.option(
    "--kms-key",
    envvar="SLIPWAY_KMS_KEY_ARN",
    default=None,
    help="With --env: the spoke's KMS key ARN (its stack output), for the job's output and "
    "volumes. Default: $SLIPWAY_KMS_KEY_ARN.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document (progress to stderr).")
@click.pass_context
def score(
    ctx: click.Context,
    input_path: str,
    output: str,
    quarantine: str | None,
    version: str | None,
    alias: str | None,
    kfp_local: bool,
    kfp_host: str | None,
    image: str | None,
    namespace: str | None,
    schedule: str | None,
    env: str | None,
    kms_key: str | None,
    as_json: bool,
) -> None:
    """Check every row of INPUT (CSV or Parquet, a path or s3://) against the data contract,
    score the good ones with one version, quarantine the rest. Exit 4, publishing nothing,
    when more than [batch] max_rejected_fraction of the rows break the contract."""
    from slipway.pipelines.batch import job
    from slipway.pipelines.cli._common import fail
    from slipway.pipelines.console import terminal
    from slipway.pipelines.exitcodes import Exit

    if version is not None and alias is not None:
        fail("give --version or --alias, not both", Exit.USAGE)
    spoke = spoke_from_context(ctx)
    if kfp_host is not None:
        _on_kubeflow(
            spoke,
            input_path,
            output,
            kfp_host,
            image,
            namespace,
            version,
            alias,
            schedule,
        )
        return
    if image is not None or namespace is not None or schedule is not None:
        fail("--image, --namespace and --schedule only apply with --kfp-host", Exit.USAGE)
    if env is not None:
        _on_sagemaker(
            spoke.root, spoke.config, input_path, output, quarantine, env, kms_key, version, alias
        )
        return
    if kfp_local:
        _on_kfp_local(spoke.root, spoke.config, input_path, output, quarantine, version, alias)
        return
    plan = job.plan_for(spoke.config, input_path, output, quarantine)
    out = terminal() if as_json else None

    def progress(result: BatchResult) -> None:
        click.echo(f"  {_line(result)}", file=out)

    redirect = contextlib.redirect_stdout(terminal()) if as_json else contextlib.nullcontext()
    with redirect:
        click.echo(f"scoring {input_path} with {spoke.config.model_name} ...", file=out)
        outcome = job.run(
            spoke.root, spoke.config, plan, version=version, alias=alias, progress=progress
        )
    result = outcome.result
    if as_json:
        from slipway.pipelines.json_output import dumps

        click.echo(
            dumps(
                {
                    **summary(result),
                    "run_id": outcome.run_id,
                    "prediction_psi": outcome.prediction_psi,
                }
            )
        )
        return
    click.echo(f"{result.model.uri}: {_line(result)}")
    click.echo(f"  predictions  {result.output}")
    if result.quarantined:
        click.echo(f"  quarantine   {result.quarantine}")
    drift = "n/a" if outcome.prediction_psi is None else f"{outcome.prediction_psi:.3f}"
    click.echo(f"  drift        prediction PSI {drift} against the training split")
    click.echo(f"  run          {outcome.run_id} (audit entry `score`)")


def _on_kfp_local(
    root: Path,
    config: SpokeConfig,
    input_path: str,
    output: str,
    quarantine: str | None,
    version: str | None,
    alias: str | None,
) -> None:
    from slipway.pipelines.batch.kubeflow import run_local
    from slipway.pipelines.batch.scoring import default_quarantine
    from slipway.pipelines.cli._common import fail
    from slipway.pipelines.exitcodes import Exit
    from slipway.pipelines.json_output import dumps

    if quarantine is not None and quarantine != default_quarantine(output):
        fail(
            "the batch pipeline writes the quarantine beside OUTPUT; drop --quarantine", Exit.USAGE
        )
    click.echo(
        f"scoring {input_path} with the batch pipeline on kfp.local ({config.batch.shards} shards)"
    )
    click.echo(dumps(run_local(root, config, input_path, output, version=version, alias=alias)))


def _on_sagemaker(
    root: Path,
    config: SpokeConfig,
    input_path: str,
    output: str,
    quarantine: str | None,
    env: str,
    kms_key: str | None,
    version: str | None,
    alias: str | None,
) -> None:
    from slipway.pipelines.batch import job, transform
    from slipway.pipelines.cli._common import fail
    from slipway.pipelines.exitcodes import Exit

    if not kms_key:
        fail(
            "--env needs the spoke's KMS key ARN (--kms-key, or SLIPWAY_KMS_KEY_ARN; the "
            "spoke stack's output): the job's output and volumes are encrypted with it",
            Exit.USAGE,
        )
    plan = job.plan_for(config, input_path, output, quarantine)
    click.echo(f"scoring {input_path} as a SageMaker Batch Transform job in {env} ...")
    outcome = transform.run(
        root,
        config,
        plan,
        env=env,
        kms_key_arn=kms_key,
        clients=transform.AwsClients.default(),
        version=version,
        alias=alias,
    )
    click.echo(f"{outcome.job_name}: {_line(outcome.result)}")
    click.echo(f"  predictions  {outcome.result.output}")
    click.echo(f"  run          {outcome.run_id} (audit entry `score`)")


def _on_kubeflow(
    spoke: Spoke,
    input_path: str,
    output: str,
    host: str,
    image: str | None,
    namespace: str | None,
    version: str | None,
    alias: str | None,
    cron: str | None,
) -> None:
    import os

    from slipway.pipelines.batch.kubeflow import BatchRequest, check_cron, schedule, submit
    from slipway.pipelines.training import kubeflow

    config = spoke.config
    if cron is not None:
        check_cron(cron)
    options = kubeflow.SubmitOptions(host, image, namespace)
    target, uri = kubeflow.target_for(spoke.root, config, options, os.environ)
    request = BatchRequest(input_path, output, uri, version=version, alias=alias)
    if cron is not None:
        recurring = schedule(spoke, target, request, cron=cron)
        click.echo(
            f"scheduled {config.model_name} batch scoring on {target.api} ({cron!r}, one run at "
            f"a time, no backfill): recurring run {recurring}"
        )
        return
    run = submit(spoke, target, request)
    click.echo(f"submitted {config.model_name} batch scoring to {target.api}: run {run.run_id}")
    click.echo(f"  image {target.image}")
    click.echo(f"  {run.url}")
