"""MLflow's evaluation pictures of the new model, drawn after the gate's verdict
(slipway.pipelines.training.pictures): the evaluation records them instead of drawing them,
with the same metrics; drawn later they are the images MLflow would have logged, on the same
run, with nothing else of the run changed; in the laptop's step daemon a process of their own
draws them after the step has ended.

One MLflow registry on sqlite per module (creating one costs seconds); every test has its
own runs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.pipelines import registry
from slipway.pipelines.training import pictures

MLFLOW_IMAGES = pictures.BINARY_CLASSIFIER_PICTURES


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pictures")


@pytest.fixture(scope="module")
def scored(store: Path) -> dict[str, Any]:
    """A fitted model as the gate scores it (pyfunc), and its held-out rows."""
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from slipway.pipelines.training.evaluation import as_pyfunc

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    split: Any = train_test_split(x, y, random_state=0, stratify=y)
    x_train, x_test, y_train, y_test = split
    model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    pyfunc = as_pyfunc(model, infer_signature(x_train.head(5), model.predict(x_train.head(5))))
    return {"model": pyfunc, "x": x_test, "y": y_test}


@pytest.fixture
def mlflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    yield


def _artifacts(store: Path, run_id: str) -> set[str]:
    client = registry.client_for(registry.tracking_uri(store))
    return {item.path for item in client.list_artifacts(run_id)}


def _evaluate(store: Path, scored: dict[str, Any], *, deferred: bool) -> tuple[str, dict, list]:
    import mlflow

    from slipway.pipelines.training.evaluation import evaluate

    drawings: list[pictures.Picture] = []
    metrics: dict[str, float] = {}
    with registry.fluent_registry(store), mlflow.start_run() as run:
        if deferred:
            with pictures.deferred() as drawings:
                metrics = evaluate(scored["model"], scored["x"], scored["y"], "binary")
        else:
            metrics = evaluate(scored["model"], scored["x"], scored["y"], "binary")
    return run.info.run_id, metrics, drawings


@pytest.mark.slow  # a real daemon or MLflow evaluation: `make test` runs it
def test_deferred_pictures_are_recorded_not_drawn_and_the_metrics_are_the_same(
    store, scored, mlflow_env
):
    drawn_run, drawn_metrics, _ = _evaluate(store, scored, deferred=False)
    run_id, metrics, drawings = _evaluate(store, scored, deferred=True)
    assert metrics == drawn_metrics  # what the gate judges does not depend on the pictures
    assert {p.name for p in drawings} == MLFLOW_IMAGES
    assert _artifacts(store, drawn_run) >= MLFLOW_IMAGES  # MLflow draws them when not deferred
    assert not MLFLOW_IMAGES & _artifacts(store, run_id)  # deferred: none drawn yet
    # Drawn afterwards (as outside the daemon: Kubeflow, CI), on the same run, the same names.
    client = registry.client_for(registry.tracking_uri(store))
    before = client.get_run(run_id)
    pictures.after_verdict(drawings, registry.tracking_uri(store), run_id, lambda: store / "x")
    after = client.get_run(run_id)
    assert _artifacts(store, run_id) >= MLFLOW_IMAGES
    assert after.data.tags[registry.TAG_EVALUATION_PICTURES] == pictures.DRAWN
    # Nothing else of the run moved: its metrics, their history, its status and end.
    assert after.data.metrics == before.data.metrics
    assert all(len(client.get_metric_history(run_id, key)) == 1 for key in after.data.metrics)
    assert (after.info.status, after.info.end_time) == (before.info.status, before.info.end_time)
    assert not (store / "x").exists()  # no background: no background log either


def test_a_picture_that_fails_to_draw_is_left_out_and_the_others_are_logged(
    store, scored, mlflow_env
):
    run_id, _, drawings = _evaluate(store, scored, deferred=True)

    def broken() -> None:
        raise ValueError("no curve for a single class")

    client = registry.client_for(registry.tracking_uri(store))
    logged = pictures.log_pictures(
        [pictures.Picture("broken.png", broken), *drawings], client, run_id
    )
    assert set(logged) == MLFLOW_IMAGES
    assert "broken.png" not in _artifacts(store, run_id)


BACKGROUND_STEP = """
import json, os, sys
from pathlib import Path

import mlflow
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from slipway.pipelines import registry
from slipway.pipelines.training import pictures, zygote
from slipway.pipelines.training.evaluation import as_pyfunc, evaluate

store, log = Path(sys.argv[1]), Path(sys.argv[2])
zygote._background = True  # what a daemon's session sets in the steps it forks
x, y = load_breast_cancer(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=5000).fit(x, y)
pyfunc = as_pyfunc(model, infer_signature(x.head(5), model.predict(x.head(5))))
with registry.fluent_registry(store), mlflow.start_run() as run:
    with pictures.deferred() as drawings:
        evaluate(pyfunc, x, y, "binary")
uri = registry.tracking_uri(store)
pictures.after_verdict(drawings, uri, run.info.run_id, lambda: log)
print(json.dumps({"run_id": run.info.run_id, "pid": os.getpid()}), flush=True)
os._exit(0)  # the step ends at once, as a forked step does
"""


@pytest.mark.slow  # a real daemon or MLflow evaluation: `make test` runs it
def test_in_the_daemon_a_process_of_their_own_draws_them_after_the_step_ended(
    store, tmp_path, mlflow_env
):
    import json

    log = tmp_path / "run.pictures.log"
    step = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BACKGROUND_STEP), str(store), str(log)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert step.returncode == 0, step.stdout + step.stderr
    assert "drawn in the background" in step.stdout
    run_id = json.loads(step.stdout.strip().splitlines()[-1])["run_id"]
    client = registry.client_for(registry.tracking_uri(store))
    tag = pictures.wait_for_pictures(client, run_id)
    assert tag == pictures.DRAWN, log.read_text() if log.exists() else tag
    assert _artifacts(store, run_id) >= MLFLOW_IMAGES
    assert f"run {run_id}: logged" in log.read_text()  # its output went to its own log
