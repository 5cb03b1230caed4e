"""Two teams (or two trainings of one spoke) at once on one `mlflow server` (PostgreSQL + S3,
the real thing): scoring the same held-out rows in one experiment must not race (issue 22).

Found: of two `slipway train` started together, one failed in gate-model with
`psycopg.errors.UniqueViolation ... dataset_pk`: MLflow's store looks a dataset up, then
inserts it when absent, so two runs logging the same rows at once both insert. The gate's
message then told the team to retire the champion, which had nothing to do with it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from slipway.pipelines.training.evaluation import is_write_conflict, log_dataset
from slipway.pipelines.training.steps import _baseline_failure

from .conftest import MlflowServer

WRITERS = 8
GUARD_S = 60  # a hang fails the test instead of stalling the suite; never a speed claim


def burst(server: MlflowServer, log: Any) -> tuple[MlflowClient, list[str], list[BaseException]]:
    """WRITERS runs of one experiment log the same held-out rows at the same instant."""
    client = MlflowClient(server.url)
    experiment = client.create_experiment(f"held-out-race-{uuid.uuid4().hex[:8]}")
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3], "__slipway_target__": [0, 1, 0]})
    data = mlflow.data.from_pandas(  # pyright: ignore[reportAttributeAccessIssue]
        frame, targets="__slipway_target__", name="churn-held-out"
    )
    runs = [client.create_run(experiment).info.run_id for _ in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(run_id: str) -> None:
        try:
            with mlflow.start_run(run_id=run_id):
                start.wait(GUARD_S)
                log(data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD_S)
    return client, runs, errors


def test_runs_logging_the_same_held_out_rows_at_once_all_succeed(team_env: MlflowServer):
    client, runs, errors = burst(team_env, lambda d: log_dataset(d, context="evaluation"))
    assert errors == []
    digests = set()
    for run_id in runs:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["churn-held-out"]
        digests.add(inputs[0].dataset.digest)
    assert len(digests) == 1  # one dataset row, linked to every run


def test_the_race_as_found_and_the_gates_message_for_it(team_env: MlflowServer):
    # MLflow's own log_input in the same burst: the store's check-then-insert loses the race
    # (how often depends on scheduling, so the count is reported, not required).
    _, _, errors = burst(team_env, lambda d: mlflow.log_input(d, context="evaluation"))
    assert all(isinstance(e, MlflowException) and is_write_conflict(e) for e in errors), errors
    print(f"plain mlflow.log_input: {len(errors)} of {WRITERS} writers lost the race")
    conflict = MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/log-inputs failed with error code 500: "
        "(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "
        '"dataset_pk"'
    )
    message = _baseline_failure("challenger", "1", conflict)
    assert "retire" not in message
    assert "another training of this model may have been writing" in message
    assert "run the training again" in message
    # A model that really no longer takes the rows keeps the contract hint.
    schema = MlflowException("Failed to enforce schema of data: missing inputs ['tenure']")
    assert "if the data contract changed on purpose, retire the challenger first" in (
        _baseline_failure("challenger", "1", schema)
    )


@pytest.fixture(autouse=True)
def _no_active_run():
    yield
    while mlflow.active_run():
        mlflow.end_run()
