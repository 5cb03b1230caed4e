"""What each training step does, as plain functions of paths and strings.

The KFP components in components.py are one-line shims over these (kfp ships a
component's source, so the logic lives here, importable and testable without kfp). Heavy
libraries are imported only by the steps that need them: every step is its own process.

A step that refuses (data breaks the contract, the gate rejects the model) records why on
the MLflow run, then ends the process with the reason, which fails the pipeline run on
kfp.local and on Kubeflow alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from slipway.pipelines import registry
from slipway.pipelines.config import SpokeConfig, load_config

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

OUTCOME_REGISTERED = "registered"
OUTCOME_GATE_REJECTED = "gate_rejected"
OUTCOME_DATA_INVALID = "data_invalid"
VIOLATIONS_FILE = "violations.json"
MODEL_FILE = "model.joblib"
PARAMS_FILE = "params.json"
RUNS_DIR = "pipeline-runs"  # under the spoke's state directory: each run's log


@dataclass(frozen=True)
class RunContext:
    """Who started the pipeline run and from which commit: passed in, never guessed."""

    tracking_uri: str
    run_key: str
    git_sha: str
    git_dirty: bool
    pipeline_sha256: str
    author: str


def context(
    project_root: str,
    tracking_uri: str,
    run_key: str,
    git_sha: str,
    git_dirty: bool,
    pipeline_sha256: str,
    author: str,
) -> RunContext:
    """The run's context; an empty tracking_uri means MLFLOW_TRACKING_URI, else embedded."""
    return RunContext(
        tracking_uri=tracking_uri or registry.tracking_uri(Path(project_root)),
        run_key=run_key,
        git_sha=git_sha,
        git_dirty=git_dirty,
        pipeline_sha256=pipeline_sha256,
        author=author,
    )


def runs_dir(state: Path) -> Path:
    """Where the laptop's runs keep their logs under the spoke's state directory
    (`registry.state_dir`), never used on a cluster."""
    path = state / RUNS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def refuse(message: str) -> NoReturn:
    """End the step (and so the pipeline run) with a message for a person."""
    raise SystemExit(message)


def _frame(path: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path)


def _client(tracking_uri: str) -> MlflowClient:
    return registry.client_for(tracking_uri)


def _open_run(
    root: Path, config: SpokeConfig, ctx: RunContext, frame: pd.DataFrame, digest: str
) -> str:
    """Create the pipeline run's MLflow run and log the data it saw (with its digest)."""
    import mlflow

    client = _client(ctx.tracking_uri)
    experiment = registry.experiment_id(client, root, config.model_name)
    run = client.create_run(
        experiment,
        run_name=f"train-{ctx.run_key[:8]}",
        tags={
            registry.TAG_RUN_KEY: ctx.run_key,
            registry.TAG_AUTHOR: ctx.author,
            registry.TAG_DATA_DIGEST: digest,
            "mlflow.source.git.commit": ctx.git_sha,
        },
    )
    from mlflow.data.code_dataset_source import CodeDatasetSource

    # MLflow caps a dataset digest at 36 characters; the version tag keeps the full sha256.
    # The source is code (the loader), said so explicitly: given as a string, "churn.data:load"
    # parses as a URL with scheme "churn.data" that no MLflow resolver knows, and the step
    # failed for every package name without an underscore.
    dataset = mlflow.data.from_pandas(  # pyright: ignore[reportAttributeAccessIssue]
        frame,
        source=CodeDatasetSource(tags={"slipway.loader": config.data.loader}),
        targets=config.data.target,
        name=f"{config.model_name}-training",
        digest=digest[:32],
    )
    mlflow.set_tracking_uri(ctx.tracking_uri)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_input(dataset, context="training")
    return run.info.run_id


def load(project_root: str, data_path: str) -> str:
    """Call the spoke's loader; write the frame as parquet; return its digest."""
    from slipway.pipelines.training.lineage import data_digest
    from slipway.pipelines.training.spoke_code import load_frame

    root = Path(project_root)
    frame = load_frame(root, load_config(root))
    frame.to_parquet(data_path, index=False)
    digest = data_digest(frame)
    print(f"loaded {len(frame)} rows x {frame.shape[1]} columns, digest {digest[:12]}")
    return digest


def validate(project_root: str, data_path: str, digest: str, ctx: RunContext) -> int:
    """Check the data contract; on violations record them on a failed run and refuse."""
    from slipway.pipelines.training.data_contract import format_report, validate_frame

    root = Path(project_root)
    config = load_config(root)
    frame = _frame(data_path)
    violations = validate_frame(
        frame, config.data.contract, require_target=config.data.target, enforce_min_rows=True
    )
    if not violations:
        print(f"{len(frame)} rows meet the contract ({len(config.data.contract.columns)} columns)")
        return len(frame)
    run_id = _open_run(root, config, ctx, frame, digest)
    client = _client(ctx.tracking_uri)
    client.log_dict(run_id, {"violations": [v.__dict__ for v in violations]}, VIOLATIONS_FILE)
    client.set_tag(run_id, registry.TAG_OUTCOME, OUTCOME_DATA_INVALID)
    client.set_terminated(run_id, "FAILED")
    refuse(format_report(violations))


def train(project_root: str, data_path: str, model_dir: str) -> None:
    """Fit the spoke's trainer on the training split; keep the params beside the model."""
    import joblib

    from slipway.pipelines.training.spoke_code import split, train_model

    root = Path(project_root)
    config = load_config(root)
    parts = split(_frame(data_path), config)
    model = train_model(root, config, parts.x_train, parts.y_train)
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / MODEL_FILE)
    (out / PARAMS_FILE).write_text(json.dumps(dict(config.training.params)))
    print(f"trained {type(model).__name__} on {len(parts.x_train)} rows")


def _model(model_dir: str) -> Any:
    import joblib

    return joblib.load(Path(model_dir) / MODEL_FILE)


def evaluate(project_root: str, data_path: str, model_dir: str, plots_dir: str) -> dict[str, float]:
    """The task's plots on the held-out rows. No registry access here: the metrics come from
    mlflow.models.evaluate in the gate, on the run that records them (an MLflow evaluation
    needs a run, and a throwaway tracking store costs ~7 s to create)."""
    from slipway.pipelines.training.evaluation import plots
    from slipway.pipelines.training.spoke_code import split

    config = load_config(Path(project_root))
    parts = split(_frame(data_path), config)
    model = _model(model_dir)
    written = plots(model, parts.x_test, parts.y_test, Path(plots_dir), config.training.task)
    print(f"plotted {', '.join(p.name for p in written)} on {len(parts.x_test)} held-out rows")
    return {"held_out_rows": float(len(parts.x_test))}


def _predict(model: Any, x: pd.DataFrame) -> Any:
    from slipway.pipelines.training.evaluation import predictors

    return predictors(model)[0](x)


def _baseline_model(client: MlflowClient, model_name: str) -> tuple[str, Any] | None:
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        held = registry.version_by_alias(client, model_name, alias)
        if held is not None:
            return alias, held
    return None


def gate(
    project_root: str,
    data_path: str,
    digest: str,
    model_dir: str,
    plots_dir: str,
    summary: dict[str, float],  # the evaluate step's (held-out row count); metrics are made here
    ctx: RunContext,
) -> tuple[str, str]:
    """Evaluate the challenger with mlflow.models.evaluate on a new MLflow run, then judge it
    against the floors and the baseline, evaluated here the same way on the same rows (in a
    nested run, so each keeps its own metrics). Returns (run id, verdict)."""
    import mlflow
    from mlflow.models import infer_signature

    from slipway.pipelines.training import pictures
    from slipway.pipelines.training.evaluation import as_pyfunc, evaluate
    from slipway.pipelines.training.quality_gate import Baseline, check_gates
    from slipway.pipelines.training.spoke_code import split

    root = Path(project_root)
    config = load_config(root)
    frame = _frame(data_path)
    parts = split(frame, config)
    run_id = _open_run(root, config, ctx, frame, digest)
    params = json.loads((Path(model_dir) / PARAMS_FILE).read_text())
    task = config.training.task
    model = _model(model_dir)
    example = parts.x_train.head(5)
    challenger = as_pyfunc(model, infer_signature(example, _predict(model, example)))
    held_out = f"{config.model_name}-held-out"
    scores: dict[str, float] = {}  # set inside the run (start_run re-raises on failure)
    drawings: list[pictures.Picture] = []
    with mlflow.start_run(run_id=run_id):
        # MLflow's pictures are drawn once the verdict is recorded (pictures.py): the gate and
        # the card never read them.
        with pictures.deferred() as drawings:
            scores = evaluate(challenger, parts.x_test, parts.y_test, task, held_out)
        mlflow.log_params(
            {
                **params,
                "test_size": config.training.test_size,
                "seed": config.training.seed,
                "trainer": config.training.trainer,
            }
        )
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        mlflow.log_artifacts(plots_dir, artifact_path="plots")
    client = _client(ctx.tracking_uri)
    held = _baseline_model(client, config.model_name)
    baseline = None
    if held is not None:
        alias, version = held
        mlflow.set_registry_uri(ctx.tracking_uri)
        measured: dict[str, float] = {}
        try:
            reigning = mlflow.pyfunc.load_model(f"models:/{config.model_name}@{alias}")
            # In the training's own experiment: without it MLflow files the nested run (and
            # its dataset) under the Default experiment, shared by every spoke.
            experiment = client.get_run(run_id).info.experiment_id
            with (
                mlflow.start_run(run_id=run_id),
                mlflow.start_run(
                    run_name=f"{alias}-v{version.version}", nested=True, experiment_id=experiment
                ),
            ):
                # Only its numbers: its pictures are on its own version's run already.
                measured = evaluate(
                    reigning, parts.x_test, parts.y_test, task, held_out, pictures=False
                )
        except Exception as exc:  # any failure to score must stop the gate, loudly
            refuse(_baseline_failure(alias, str(version.version), exc))
        baseline = Baseline(alias=alias, version=str(version.version), metrics=measured)
        for name, value in measured.items():
            client.log_metric(run_id, f"champion_{name}", value)
    verdict = check_gates(scores, baseline, config.gates, task)
    client.set_tag(run_id, registry.TAG_GATE_VERDICT, verdict.label)
    client.set_tag(
        run_id,
        registry.TAG_GATE_BASELINE,
        f"{baseline.alias} v{baseline.version}" if baseline else "none",
    )
    client.log_text(run_id, "\n".join(verdict.reasons) + "\n", "gate.txt")
    report = "\n".join(f"  - {reason}" for reason in verdict.reasons)
    pictures.after_verdict(
        drawings,
        ctx.tracking_uri,
        run_id,
        lambda: runs_dir(registry.state_dir(root)) / f"{ctx.run_key}.pictures.log",
    )
    if not verdict.passed:
        client.set_tag(run_id, registry.TAG_OUTCOME, OUTCOME_GATE_REJECTED)
        refuse(f"gate rejected the model; nothing was registered:\n{report}")
    print(f"gate {verdict.label}:\n{report}")
    return run_id, verdict.label


def _baseline_failure(alias: str, version: str, exc: BaseException) -> str:
    """Why the baseline could not be scored, and the next step that fits the cause: a
    registry that failed or lost a write race is not a changed data contract."""
    from slipway.pipelines.training.evaluation import is_write_conflict

    where = f"gate: cannot score the {alias} (v{version}) on the held-out rows"
    if is_write_conflict(exc) or registry.connection_failure(exc) is not None:
        return (
            f"{where}: the registry failed while recording the evaluation "
            f"({type(exc).__name__}: {str(exc)[:300]}). Nothing was registered; another "
            "training of this model may have been writing at the same moment: run the "
            "training again."
        )
    return (
        f"{where}: {exc}. The {alias} no longer takes these rows: if the data contract "
        f"changed on purpose, retire the {alias} first."
    )


def register(
    project_root: str,
    data_path: str,
    digest: str,
    model_dir: str,
    run_id: str,
    verdict: str,
    ctx: RunContext,
) -> int:
    """Log the model with signature and example, register it, tag lineage, alias challenger."""
    import mlflow
    from mlflow.models import infer_signature

    from slipway.pipelines.spoke import Spoke
    from slipway.pipelines.training import lineage
    from slipway.pipelines.training.flavors import flavor_of
    from slipway.pipelines.training.spoke_code import split

    root = Path(project_root)
    config = load_config(root)
    parts = split(_frame(data_path), config)
    model = _model(model_dir)
    example = parts.x_train.head(5)
    mlflow.set_tracking_uri(ctx.tracking_uri)
    mlflow.set_registry_uri(ctx.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = flavor_of(model).log(
            model,
            name="model",
            signature=infer_signature(example, _predict(model, example)),
            input_example=example,
            registered_model_name=config.model_name,
        )
    version = str(info.registered_model_version)  # pyright: ignore[reportPossiblyUnboundVariable]  # start_run re-raises
    client = _client(ctx.tracking_uri)
    tags = {
        registry.TAG_GIT_SHA: ctx.git_sha,
        registry.TAG_GIT_DIRTY: str(ctx.git_dirty).lower(),
        registry.TAG_DATA_DIGEST: digest,
        registry.TAG_PIPELINE_SHA256: ctx.pipeline_sha256,
        registry.TAG_TEMPLATE_VERSION: lineage.template_version(root),
        registry.TAG_SLIPWAY_VERSION: lineage.slipway_version(),
        registry.TAG_RISK_TIER: str(config.governance.risk_tier),
        registry.TAG_KPI_NAME: config.kpi.name,
        registry.TAG_KPI_BASELINE: str(config.kpi.baseline),
        registry.TAG_KPI_TARGET: str(config.kpi.target),
        registry.TAG_AUTHOR: ctx.author,
        registry.TAG_GATE_VERDICT: verdict,
    }
    for key, value in tags.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    registry.alias_newest_challenger(client, config.model_name, version)
    client.set_tag(run_id, registry.TAG_OUTCOME, OUTCOME_REGISTERED)
    client.set_tag(run_id, registry.TAG_REGISTERED_VERSION, version)
    Spoke.open(root, config).record(
        "register",
        model=config.model_name,
        version=version,
        reason=f"gate {verdict}",
        actor=ctx.author,
        details={"run_id": run_id, "git_sha": ctx.git_sha, "data_digest": digest},
    )
    print(f"registered {config.model_name} v{version} as {registry.CHALLENGER}")
    return int(version)
