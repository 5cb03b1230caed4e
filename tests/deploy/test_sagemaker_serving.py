"""The image's `serve` entry point (template/docker/serve) run for real as a subprocess on a
model directory made the way SageMaker makes it (a registered version packaged by
rollout.packaging into model.tar.gz, then unpacked), and its guardrail metrics published to
moto's CloudWatch server (the stand-in for AWS), judged against the alarm the spoke stack
defines under Pulumi's mocks.

moto never evaluates alarms (put_metric_alarm only stores them), so the alarm is evaluated
here the way CloudWatch would: the stack's own namespace, metric, dimensions, statistic and
period, read back with get_metric_statistics, compared with the stack's threshold.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hub import free_port

from .conftest import STARTUP_GUARD_S, Spoke, answers_200

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "template" / "docker" / "serve"
VENV_BIN = Path(sys.executable).parent
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture
def model_dir(spoke: Spoke, tmp_path: Path) -> Path:
    """Version 1 as SageMaker sees it: packaged into model.tar.gz (with its drift
    reference), then unpacked into a fresh directory like /opt/ml/model."""
    import mlflow.artifacts

    from slipway.pipelines.registry import fluent_registry
    from slipway.pipelines.rollout.packaging import add_reference, write_model_tarball

    with fluent_registry(spoke.root):
        local = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{spoke.config.model_name}/1", dst_path=str(tmp_path / "download")
            )
        )
    add_reference(spoke.root, local)
    tarball = write_model_tarball(local, tmp_path / "model.tar.gz")
    target = tmp_path / "opt" / "ml" / "model"
    target.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    return target


class Container:
    """`serve` as SageMaker starts it, with the environment its Model would carry."""

    def __init__(self, spoke: Spoke, model_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = model_dir.parent / f"serve-{self.port}.log"
        environment = {
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "SLIPWAY_MODEL_DIR": str(model_dir),
            "SLIPWAY_SPOKE_ROOT": str(spoke.root),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            **env,
        }
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            ["sh", str(SERVE)], env=environment, stdout=self._out, stderr=subprocess.STDOUT
        )
        if not answers_200(f"{self.url}/ping", STARTUP_GUARD_S, alive=self._alive):
            self.stop()
            raise AssertionError(f"/ping never answered 200:\n{self.output()}")

    def _alive(self) -> None:
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def held_out(spoke: Spoke) -> list[dict]:
    from slipway.pipelines.rollout.traffic import replay_rows

    return replay_rows(spoke.root, spoke.config)


def test_serve_answers_sagemakers_contract_with_the_gateway(spoke, model_dir):
    rows = held_out(spoke)[:20]
    columns = list(spoke.config.data.contract.columns)
    csv_lines = "\n".join(",".join(repr(float(r[c])) for c in columns) for r in rows) + "\n"
    container = Container(spoke, model_dir, {"SLIPWAY_MODEL_VERSION": "1"})
    try:
        url = container.url
        as_json = httpx.post(f"{url}/invocations", json={"dataframe_records": rows}, timeout=30)
        as_csv = httpx.post(
            f"{url}/invocations", content=csv_lines, headers={"content-type": "text/csv"}
        )
        with_header = httpx.post(
            f"{url}/invocations",
            content=",".join(columns) + "\n" + csv_lines,
            headers={"content-type": "text/csv; charset=utf-8"},
        )
        bad = httpx.post(
            f"{url}/invocations",
            content=csv_lines.replace(csv_lines.split(",", 1)[0], "large", 1),
            headers={"content-type": "text/csv"},
        )
        ready = httpx.get(f"{url}/ready", timeout=5)
        health = httpx.get(f"{url}/health", timeout=5).json()
        admin = httpx.get(f"{url}/admin/state", timeout=5)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
    finally:
        code = container.stop()
    assert as_json.status_code == 200, as_json.text
    predictions = as_json.json()["predictions"]
    assert len(predictions) == 20 and set(predictions) <= {0, 1}
    assert as_csv.json()["predictions"] == predictions
    assert with_header.json()["predictions"] == predictions
    assert as_json.headers["x-slipway-version"] == "1"
    assert bad.status_code == 400
    assert f"column {columns[0]!r}, row 0: expected a number" in bad.json()["message"]
    assert ready.status_code == 200 and health["ready"] is True
    assert admin.status_code == 404  # one model from a directory: nothing to administer
    assert 'slipway_gateway_requests_total{variant="champion",version="1"} 3.0' in metrics
    # SIGTERM (SageMaker's scale-in) drains the server; uvicorn then re-raises the signal.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in container.output()
    access = [json.loads(line) for line in container.output().splitlines() if line[:1] == "{"]
    assert [(a["path"], a["status"], a["rows"]) for a in access] == [
        ("/invocations", 200, 20),
        ("/invocations", 200, 20),
        ("/invocations", 200, 20),
        ("/invocations", 400, 0),
    ]


def test_serve_refuses_other_commands_and_a_missing_model_with_a_clear_message(spoke, tmp_path):
    entry = [sys.executable, "-m", "slipway.pipelines.serving.sagemaker"]
    train = subprocess.run([*entry, "train"], capture_output=True, text=True, timeout=120)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "SLIPWAY_MODEL_DIR": str(empty), "SLIPWAY_SPOKE_ROOT": str(spoke.root)}
    missing = subprocess.run(
        [*entry, "serve"], capture_output=True, text=True, timeout=120, env=env
    )
    (empty / "MLmodel").write_text("flavors: {}\n")
    env["SLIPWAY_MAX_BODY_BYTES"] = "lots"
    bad_limit = subprocess.run(
        [*entry, "serve"], capture_output=True, text=True, timeout=120, env=env
    )
    assert bad_limit.returncode == 3  # CONFIG: one exit code for a bad setting (settings.py)
    assert "SLIPWAY_MAX_BODY_BYTES='lots' must be a number" in bad_limit.stderr
    assert train.returncode == 2 and "run it with `serve`" in train.stderr
    assert missing.returncode == 2
    assert f"{empty} holds no MLmodel" in missing.stderr
    assert "Traceback" not in missing.stderr + train.stderr


@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[str]:
    """moto's server (a stand-in for AWS's APIs) on 127.0.0.1."""
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_GUARD_S
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/moto-api/", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def stack_of(spoke: Spoke):
    from slipway.infra.plan import Environment
    from slipway.infra.spoke_stack import StackInputs, build_spoke_stack
    from slipway.infra.testing import run_stack

    config = spoke.config
    return run_stack(
        lambda: build_spoke_stack(config, Environment.prod, StackInputs(model_version=1)),
        project=config.project.slug,
        stack="prod",
        region=config.deploy.region,
    )


def minority_rows(spoke: Spoke, model_dir: Path, n: int) -> list[dict]:
    """Held-out rows the model puts in its rarer class, repeated to `n`: traffic whose
    prediction mix is far from the training split's."""
    import mlflow.pyfunc
    import pandas as pd

    rows = held_out(spoke)
    predicted = mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame(rows))
    labels = list(predicted)
    rare = min(set(labels), key=labels.count)
    chosen = [r for r, p in zip(rows, labels, strict=True) if p == rare]
    return (chosen * (n // len(chosen) + 1))[:n]


def alarm_breaches(cloudwatch, alarm: dict, start: datetime, end: datetime) -> list[float]:
    """The alarm's statistic per period, from exactly its namespace, metric and dimensions
    (moto stores alarms but never evaluates them). CloudWatch (and moto) refuse an end
    that is not after the start at their one-second resolution."""
    end = max(end, start + timedelta(seconds=1))
    stats = cloudwatch.get_metric_statistics(
        Namespace=alarm["namespace"],
        MetricName=alarm["metricName"],
        Dimensions=[{"Name": k, "Value": v} for k, v in alarm["dimensions"].items()],
        StartTime=start,
        EndTime=end,
        Period=int(alarm["period"]),
        Statistics=[alarm["statistic"]],
    )["Datapoints"]
    return [point[alarm["statistic"]] for point in stats]


def test_a_drifting_variant_pushes_the_stacks_psi_alarm_over_its_threshold(
    spoke, model_dir, moto_server, monkeypatch
):
    import boto3

    stack = stack_of(spoke)
    alarm = next(
        dict(a.props)
        for a in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.props["name"].endswith("-prediction-psi")
    )
    alarm["dimensions"] = dict(alarm["dimensions"])
    model_env = dict(
        stack.one("aws:sagemaker/model:Model").props["primaryContainer"]["environment"]
    )
    region = spoke.config.deploy.region
    aws = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_server, "AWS_DEFAULT_REGION": region}
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    cloudwatch = boto3.client("cloudwatch")
    container = Container(
        spoke, model_dir, {**model_env, **aws, "SLIPWAY_METRICS_INTERVAL_S": "0.5"}
    )
    url = f"{container.url}/invocations"
    min_samples = spoke.config.monitoring.min_samples
    try:
        # Phase 1: traffic like the held-out split, enough for a PSI.
        healthy = held_out(spoke)
        started = datetime.now(UTC) - timedelta(seconds=1)
        sent = 0
        while sent < max(min_samples, 2 * len(healthy)):
            assert httpx.post(url, json={"dataframe_records": healthy}, timeout=30).is_success
            sent += len(healthy)
        deadline = time.monotonic() + STARTUP_GUARD_S
        while not alarm_breaches(cloudwatch, alarm, started, datetime.now(UTC)):
            assert time.monotonic() < deadline, container.output()  # bounded wait for a PSI
            time.sleep(0.5)
        time.sleep(1.0)  # one more interval: phase 1's last datum is out before phase 2
        switched = datetime.now(UTC)
        # Phase 2: only the rows of the model's rarer class, enough to fill the window.
        drifting = minority_rows(spoke, model_dir, 2_500)
        for i in range(0, len(drifting), 100):
            assert httpx.post(
                url, json={"dataframe_records": drifting[i : i + 100]}, timeout=30
            ).is_success
        deadline = time.monotonic() + STARTUP_GUARD_S
        while time.monotonic() < deadline:  # bounded wait for the publisher's next datum
            late = alarm_breaches(cloudwatch, alarm, switched, datetime.now(UTC))
            if late and max(late) > alarm["threshold"]:
                break
            time.sleep(0.5)
        errors = cloudwatch.get_metric_statistics(
            Namespace=alarm["namespace"],
            MetricName="ModelErrors",
            Dimensions=[{"Name": k, "Value": v} for k, v in alarm["dimensions"].items()],
            StartTime=started,
            EndTime=datetime.now(UTC) + timedelta(seconds=5),
            Period=int(alarm["period"]),
            Statistics=["Average", "SampleCount"],
        )["Datapoints"]
    finally:
        assert container.stop() in (0, -signal.SIGTERM)
    assert alarm["comparisonOperator"] == "GreaterThanThreshold"
    before = alarm_breaches(cloudwatch, alarm, started, switched)
    assert before and max(before) <= alarm["threshold"], (before, alarm["threshold"])
    after = alarm_breaches(cloudwatch, alarm, switched, datetime.now(UTC) + timedelta(seconds=5))
    assert after and max(after) > alarm["threshold"], (after, alarm["threshold"])
    assert errors and all(point["Average"] == 0.0 for point in errors)
    assert sum(point["SampleCount"] for point in errors) >= 2  # per-request outcomes, batched


def capture_event(body: str, content_type: str, predictions: list, when: datetime) -> str:
    """One request as SageMaker's data capture writes it (awsdocs' sample's shape)."""
    encoding = "CSV" if content_type == "text/csv" else "JSON"
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": content_type,
                    "mode": "INPUT",
                    "data": body,
                    "encoding": encoding,
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps({"predictions": predictions}),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {
                "eventId": f"e-{when.timestamp()}",
                "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "eventVersion": "0",
        }
    )


def test_monitor_env_judges_the_endpoints_data_capture_in_s3(
    spoke, model_dir, moto_server, monkeypatch
):
    import boto3
    import mlflow.pyfunc
    import pandas as pd

    from slipway.pipelines.governance.capture import capture_location

    from .conftest import slipway

    region = spoke.config.deploy.region
    for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": moto_server}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    account = boto3.client("sts").get_caller_identity()["Account"]
    location = capture_location(spoke.config, "prod", account)
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=location.bucket, CreateBucketConfiguration={"LocationConstraint": region}
    )
    model = mlflow.pyfunc.load_model(str(model_dir))
    columns = list(spoke.config.data.contract.columns)

    def capture(rows: list[dict], hour: datetime, name: str) -> None:
        predictions = [int(p) for p in model.predict(pd.DataFrame(rows)[columns])]
        half = len(rows) // 2
        lines = [  # JSON requests of 10 rows, then CSV ones, then a refused request
            capture_event(
                json.dumps({"dataframe_records": rows[i : i + 10]}),
                "application/json",
                predictions[i : i + 10],
                hour,
            )
            for i in range(0, half, 10)
        ]
        lines += [
            capture_event(
                ",".join(repr(float(r[c])) for c in columns) + "\n", "text/csv", [p], hour
            )
            for r, p in zip(rows[half:], predictions[half:], strict=True)
        ]
        lines.append(capture_event('{"rows": []}', "application/json", [], hour))
        key = f"{location.prefix}AllTraffic/{hour:%Y/%m/%d/%H}/{name}.jsonl"
        s3.put_object(Bucket=location.bucket, Key=key, Body="\n".join(lines).encode())

    healthy = held_out(spoke)
    rows = (healthy * (spoke.config.monitoring.min_samples // len(healthy) + 1))[
        : spoke.config.monitoring.min_samples + 40
    ]
    # A scheduled run judges the last [monitoring] window_hours of capture: the calm hour is
    # three hours ago (inside the default 6 h), the drifting one this hour, judged alone once
    # the window is one hour.
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    capture(rows, this_hour - timedelta(hours=3), "10-00-000-a")
    calm = slipway(spoke.root, "monitor", "--env", "prod", "--no-retrain")
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert f"prod: {len(rows)} rows captured in the last 6 h" in calm.stdout
    assert location.uri in calm.stdout
    assert "no drift" in calm.stdout

    drifting = minority_rows(spoke, model_dir, len(rows))
    capture(drifting, this_hour, "10-00-000-b")
    toml = spoke.root / "slipway.toml"
    toml.write_text(toml.read_text().replace("window_hours = 6", "window_hours = 1"))
    drifted = slipway(spoke.root, "monitor", "--env", "prod", "--no-retrain")
    assert drifted.returncode == 9, drifted.stdout + drifted.stderr
    assert "drift found" in drifted.stdout


def test_monitor_env_without_aws_says_what_to_do(spoke, monkeypatch, tmp_path):
    from .conftest import slipway

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    done = slipway(spoke.root, "monitor", "--env", "staging", "--no-retrain")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "sign in to the spoke's account" in done.stderr
    assert "Traceback" not in done.stderr
