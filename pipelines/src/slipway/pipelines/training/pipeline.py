"""The training pipeline: its factory, its compiled form, and running it locally or on Kubeflow.

load -> validate -> train -> evaluate -> gate -> register. The spoke wires it in its own
pipelines/training.py (`build_pipeline(config)`), which is what `slipway train` and
`slipway compile` use, so a team that adds a step sees it everywhere.

Lineage that only the starting machine knows (git commit, dirty flag, the sha256 of the
compiled pipeline, who started it) enters as pipeline parameters; the steps record it.
The outcome of a run is read back from its MLflow run (tagged with a fresh run key), the
one record that exists both locally and on a cluster.

No `from __future__ import annotations` here: kfp reads the pipeline's annotations as types.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from slipway.pipelines import console, registry
from slipway.pipelines.config import SpokeConfig, load_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.registry_versions import registry_versions
from slipway.pipelines.training import images, spoke_code, zygote
from slipway.pipelines.training.spoke_code import held_out_rows
from slipway.pipelines.training.steps import (
    OUTCOME_DATA_INVALID,
    OUTCOME_GATE_REJECTED,
    OUTCOME_REGISTERED,
    VIOLATIONS_FILE,
    runs_dir,
)

if TYPE_CHECKING:
    from kfp.dsl.graph_component import GraphComponent

__all__ = [
    "TrainingError",
    "TrainingOutcome",
    "TrainingSummary",
    "compile_training",
    "find_outcome",
    "held_out_rows",
    "pipeline_arguments",
    "run_local_training",
    "spoke_pipeline",
    "training_pipeline",
]

SPOKE_PIPELINE_FILE = Path("pipelines/training.py")
COMPILED_FILE = Path("build/pipelines/training.yaml")

StepCallback = Callable[[str, str], None]


class TrainingError(SlipwayError):
    """The pipeline could not run or a step crashed; the message says where and what next."""


def training_pipeline(config: SpokeConfig) -> "GraphComponent":
    """The standard training pipeline for a spoke, on its base image, with caching off.

    Caching is off for every step: a cached `load` would hide new data from the gate.
    """
    from kfp import dsl

    from slipway.pipelines.training.components import build

    c = build(config.training.base_image)

    @dsl.pipeline(
        name=f"{config.model_name}-training",
        description=f"Train, gate and register {config.model_name} (Slipway).",
    )
    def pipeline(
        project_root: str = ".",
        tracking_uri: str = "",
        run_key: str = "",
        git_sha: str = "unknown",
        git_dirty: bool = True,
        pipeline_sha256: str = "",
        author: str = "unknown",
    ) -> None:
        lineage = {
            "tracking_uri": tracking_uri,
            "run_key": run_key,
            "git_sha": git_sha,
            "git_dirty": git_dirty,
            "pipeline_sha256": pipeline_sha256,
            "author": author,
        }
        loaded = c.load(project_root=project_root)
        data, digest = loaded.outputs["data"], loaded.outputs["Output"]
        checked = c.validate(project_root=project_root, data=data, digest=digest, **lineage)
        trained = c.train(project_root=project_root, data=data).after(checked)
        model = trained.outputs["model"]
        evaluated = c.evaluate(project_root=project_root, data=data, model=model)
        judged = c.gate(
            project_root=project_root,
            data=data,
            digest=digest,
            model=model,
            metrics=evaluated.outputs["metrics"],
            plots=evaluated.outputs["plots"],
            **lineage,
        )
        registered = c.register(
            project_root=project_root,
            data=data,
            digest=digest,
            model=model,
            run_id=judged.outputs["run_id"],
            verdict=judged.outputs["verdict"],
            **lineage,
        )
        for task in (loaded, checked, trained, evaluated, judged, registered):
            task.set_caching_options(False)

    return cast("GraphComponent", pipeline)  # dsl.pipeline's stub keeps the function type


def spoke_pipeline(root: Path, config: SpokeConfig) -> "GraphComponent":
    """The pipeline the spoke wires in pipelines/training.py (`build_pipeline(config)`)."""
    return spoke_code.spoke_pipeline(
        root, config, str(SPOKE_PIPELINE_FILE), "docs/spoke/training.md"
    )


def compile_training(
    root: Path, config: SpokeConfig, output: Path | None = None, *, image: str | None = None
) -> Path:
    """Write the KFP IR YAML (for Kubeflow Pipelines or Vertex AI) and return its path.

    `image` (the spoke's image for the commit) goes on every executor; without it the steps
    name training.base_image, which only kfp.local can use.
    """
    pipeline = spoke_pipeline(root, images.with_image(config, image))
    return _compile(pipeline, output or root / COMPILED_FILE, image=image)


def _compile(pipeline: "GraphComponent", output: Path, *, image: str | None = None) -> Path:
    """Compile unless `output` already holds this very IR: the same pipeline spec, platform
    spec, description, image and kfp, and a file nobody changed since (its sha256 is kept
    beside it). kfp then writes exactly the bytes it wrote before, so the lineage's pipeline
    sha256 is the same either way; only the YAML dump is saved, on every run."""
    import kfp
    from kfp import compiler

    key = hashlib.sha256(
        b"\0".join(
            [
                kfp.__version__.encode(),
                pipeline.pipeline_spec.SerializeToString(deterministic=True),
                pipeline.platform_spec.SerializeToString(deterministic=True),
                (pipeline.description or "").encode(),
                (image or "").encode(),
            ]
        )
    ).hexdigest()
    record = output.with_name(output.name + ".sha256")  # "<inputs> <output>"
    if output.is_file() and record.is_file():
        with contextlib.suppress(OSError, ValueError):
            inputs, written = record.read_text(encoding="utf-8").split()
            if inputs == key and written == hashlib.sha256(output.read_bytes()).hexdigest():
                return output
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))
    if image is not None:
        images.set_executor_images(output, image)
    written = hashlib.sha256(output.read_bytes()).hexdigest()
    record.write_text(f"{key} {written}\n", encoding="utf-8")
    return output


def pipeline_arguments(
    root: Path,
    compiled: Path,
    *,
    tracking_uri: str,
    project_root: str | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    """The run's parameters: lineage only the starting machine knows, plus a fresh run key."""
    from slipway.pipelines.spoke import current_actor
    from slipway.pipelines.training.lineage import file_sha256, git_state

    git = git_state(root)
    arguments: dict[str, Any] = {
        "tracking_uri": tracking_uri,
        "run_key": run_key or uuid.uuid4().hex,
        "git_sha": git.sha,
        "git_dirty": git.dirty,
        "pipeline_sha256": file_sha256(compiled),
        "author": current_actor(root),
    }
    if project_root is not None:
        arguments["project_root"] = project_root
    return arguments


@dataclass(frozen=True)
class TrainingSummary:
    """`slipway train --json`: what the run decided (docs/reference/cli.md#json-output)."""

    model: str
    status: str  # registered | gate_rejected | data_invalid
    version: int | None  # the registered version (None unless registered)
    run_id: str  # the MLflow run
    gate: str | None  # passed | bootstrap | rejected (None when the data was invalid)
    baseline: str | None  # "champion v3", "challenger v1" or "none"
    metrics: dict[str, float]  # held-out metrics of the new model
    baseline_metrics: dict[str, float]  # the baseline's, scored on the same rows
    reasons: list[str]  # the gate's reasons, or the contract's violations
    exit_code: int
    log: str  # the steps' output: a file locally, the run's page on Kubeflow
    tracking_uri: str


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training run decided, read back from its MLflow run."""

    status: str  # registered | gate_rejected | data_invalid
    run_id: str
    tracking_uri: str
    log_path: Path | str  # the steps' output: a file locally, the run's page on Kubeflow
    version: int | None = None
    verdict: str | None = None  # passed | bootstrap | rejected (None when data was invalid)
    baseline: str | None = None  # "champion v3", "challenger v1" or "none"
    metrics: dict[str, float] = field(default_factory=dict)  # test_<metric>
    baseline_metrics: dict[str, float] = field(default_factory=dict)  # champion_<metric>
    reasons: list[str] = field(default_factory=list)

    def summary(self, model: str) -> "TrainingSummary":
        """The `slipway train --json` document."""
        return TrainingSummary(
            model=model,
            status=self.status,
            version=self.version,
            run_id=self.run_id,
            gate=self.verdict,
            baseline=self.baseline,
            metrics=dict(self.metrics),
            baseline_metrics=dict(self.baseline_metrics),
            reasons=list(self.reasons),
            exit_code=int(self.exit_code),
            log=str(self.log_path),
            tracking_uri=self.tracking_uri,
        )

    @property
    def exit_code(self) -> Exit:
        return {
            OUTCOME_REGISTERED: Exit.OK,
            OUTCOME_GATE_REJECTED: Exit.GATE_REJECTED,
            OUTCOME_DATA_INVALID: Exit.DATA_INVALID,
        }[self.status]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([\w-]+)'")
_FINISHED = re.compile(r"Task '([\w-]+)' finished with status (\w+)")


class _StepLog(io.TextIOBase):
    """Receives kfp.local's output: keeps all of it in a log file, reports step changes."""

    def __init__(self, sink: IO[str], on_step: StepCallback | None) -> None:
        self._sink = sink
        # With -v the steps' own output (library warnings and logs) also reaches the terminal.
        self._echo = console.terminal() if console.verbose() else None
        self._stdout = sys.stdout  # the caller's, for on_step to print to
        self._on_step = on_step
        self._pending = ""
        self.failed_step: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._sink.write(text)
        if self._echo is not None:
            self._echo.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def _line(self, line: str) -> None:
        if started := _STARTED.search(line):
            self._report(started.group(1), "running")
        elif finished := _FINISHED.search(line):
            status = finished.group(2).lower()
            if status != "success":
                self.failed_step = finished.group(1)
            self._report(finished.group(1), "succeeded" if status == "success" else "failed")

    def _report(self, step: str, status: str) -> None:
        if self._on_step is not None:
            with contextlib.redirect_stdout(self._stdout):
                self._on_step(step, status)


def run_local_training(root: Path, *, on_step: StepCallback | None = None) -> TrainingOutcome:
    """Compile and run the spoke's training pipeline on kfp.local against its registry.

    on_step(step, status) is called as steps start ("running") and end ("succeeded",
    "failed"). Returns the outcome (registered, gate_rejected or data_invalid); raises
    TrainingError when a step crashed, naming the step and the log with its output.
    """
    # A registry on a laptop or in a private cluster reports nothing to mlflow.org unless
    # the team opts in; the steps inherit this.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    root = root.resolve()
    config = load_config(root)
    # Before any step: a registry another MLflow migrated would fail the first step that opens
    # it, deep in that step's log. Said here with both versions (exit 12).
    if (versions := registry_versions(registry.tracking_uri(root))) is not None:
        versions.raise_for_skew()
    run_key = uuid.uuid4().hex
    runs = runs_dir(registry.state_dir(root))
    log_path = runs / f"{run_key}.log"
    # The zygote starts first: it imports the steps' libraries while this process compiles.
    with (
        log_path.open("w", encoding="utf-8") as sink,
        console.attach_log(sink),  # what this process's libraries say, -v or not
        zygote.warm_steps(sink, root) as runner,
    ):
        zygote.import_kfp_without_client()
        from kfp import local

        pipeline = spoke_pipeline(root, config)
        compiled = _compile(pipeline, root / COMPILED_FILE)
        uri = registry.tracking_uri(root)
        arguments = pipeline_arguments(
            root, compiled, tracking_uri=uri, project_root=str(root), run_key=run_key
        )
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(runs),
            raise_on_error=False,
        )
        steps = _StepLog(sink, on_step)
        # Without a zygote, reading the outcome needs MLflow here: import it while steps run.
        warming = threading.Thread(target=_import_registry_client, daemon=True)
        with contextlib.redirect_stdout(steps), contextlib.redirect_stderr(steps):
            if runner is None:
                warming.start()
            pipeline(**arguments)
        if runner is None:
            warming.join()
        sink.flush()
        try:
            found = _find_outcome_warm(runner, root, run_key, uri, log_path)
        except zygote.ZygoteUnavailable:
            found = find_outcome(root, config, run_key, uri, log_path)
        return _outcome(log_path, steps.failed_step, found)


def _import_registry_client() -> None:
    with contextlib.suppress(ImportError):
        import mlflow.store.model_registry.sqlalchemy_store
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def outcome_document(root: str, run_key: str, uri: str, log_path: str) -> dict[str, Any] | None:
    """find_outcome as plain JSON types, for a process forked from the zygote."""
    found = find_outcome(Path(root), load_config(Path(root)), run_key, uri, log_path)
    return None if found is None else asdict(found)


def _find_outcome_warm(
    runner: "zygote.Zygote | None", root: Path, run_key: str, uri: str, log_path: Path
) -> "TrainingOutcome | None":
    """find_outcome in a process forked from the zygote, which has MLflow imported (this one
    has not). Raises zygote.ZygoteUnavailable when there is no zygote to ask."""
    if runner is None:
        raise zygote.ZygoteUnavailable("no zygote")
    document = runner.call(
        "slipway.pipelines.training.pipeline:outcome_document",
        {"root": str(root), "run_key": run_key, "uri": uri, "log_path": str(log_path)},
    )
    return None if document is None else TrainingOutcome(**{**document, "log_path": log_path})


# The step that fails on purpose to stop the pipeline, by the outcome it recorded first.
_STOPS = {"data_invalid": "validate-data", "gate_rejected": "gate-model"}


def _outcome(
    log_path: Path, failed_step: str | None, found: "TrainingOutcome | None"
) -> TrainingOutcome:
    if found is None:
        where = f"step {failed_step!r} failed" if failed_step else "the pipeline did not finish"
        cause = _last_error(log_path)
        raise TrainingError(
            f"{where}{': ' + cause if cause else ''}\nIts output is in "
            f"{log_path}. Fix the cause and run `slipway train` again "
            "(nothing was registered)."
        )
    if failed_step is not None and _STOPS.get(found.status) != failed_step:
        # A step failed after the outcome was recorded (e.g. the audit trail refused the
        # registration's entry): the run is not a success, whatever the registry says. The
        # two refusals stop the pipeline by failing their own step on purpose, after recording
        # why: those are the outcome (exit 4 or 5), not a crash.
        cause = _last_error(log_path)
        recorded = f"version {found.version}" if found.version else "no version"
        raise TrainingError(
            f"step {failed_step!r} failed{': ' + cause if cause else ''}\nThe run recorded "
            f"{found.status} ({recorded}) before it failed; check it with `slipway status` and "
            f"`slipway audit --verify`. Its output is in {log_path}; fix the cause and run "
            "`slipway train` again."
        )
    return found


def find_outcome(
    root: Path, config: SpokeConfig, run_key: str, uri: str, log_path: Path | str
) -> TrainingOutcome | None:
    """What the steps of the pipeline run `run_key` recorded in the registry at `uri`, or
    None when they recorded no outcome (a step crashed before deciding)."""
    client = registry.client_for(uri)
    experiment = client.get_experiment_by_name(config.model_name)
    found = (
        []
        if experiment is None
        else client.search_runs(
            [experiment.experiment_id], f"tags.`{registry.TAG_RUN_KEY}` = '{run_key}'"
        )
    )
    tags = found[0].data.tags if found else {}
    status = tags.get(registry.TAG_OUTCOME)
    if status is None:
        return None
    run = found[0]
    metrics = run.data.metrics
    reasons = _reasons(client, run.info.run_id, status)
    version = tags.get(registry.TAG_REGISTERED_VERSION)
    return TrainingOutcome(
        status=status,
        run_id=run.info.run_id,
        tracking_uri=uri,
        log_path=log_path,
        version=int(version) if version else None,
        verdict=tags.get(registry.TAG_GATE_VERDICT),
        baseline=tags.get(registry.TAG_GATE_BASELINE),
        metrics={k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_")},
        baseline_metrics={
            k.removeprefix("champion_"): v for k, v in metrics.items() if k.startswith("champion_")
        },
        reasons=reasons,
    )


_EXCEPTION = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception)): (.+)$")


def _last_error(log_path: Path) -> str | None:
    """The last exception a step printed (e.g. the loader's own error), for the message."""
    found = None
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := _EXCEPTION.match(_ANSI.sub("", line)):
            found = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    return found


def _reasons(client: Any, run_id: str, status: str) -> list[str]:
    """The violations (invalid data) or the gate's reasons, as logged on the run."""
    name = VIOLATIONS_FILE if status == OUTCOME_DATA_INVALID else "gate.txt"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(client.download_artifacts(run_id, name, scratch))
        if status == OUTCOME_DATA_INVALID:
            from slipway.pipelines.training.data_contract import Violation

            return [str(Violation(**v)) for v in json.loads(path.read_text())["violations"]]
        return path.read_text().splitlines()
