"""`slipway monitor --source kserve`: the drift sample of every predictor process, read back
from the team's object store (moto's S3 server, the stand-in for AWS).

The predictors are the image's real `serve` entry point (the gateway as KServe runs it:
single-model mode, SLIPWAY_SAMPLE_STORE set as the InferenceService manifest sets it), as
subprocesses: one replica with one worker, one with two workers, and a replica replaced
half-way (stopped, a new one started), which is what a pod restart is. Every row they
answered must reach the monitor's window, whichever process answered it.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import httpx
from click.testing import CliRunner

from slipway.pipelines.cli import main
from slipway.pipelines.config import load_config
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.governance import audit
from slipway.pipelines.rollout.kserve_manifest import inference_service

from .conftest import Spoke
from .test_sagemaker_serving import AWS_ENV, Container, held_out, model_dir, moto_server  # noqa: F401

REGION = "eu-west-1"
BUCKET = "team-samples"
STORE = f"s3://{BUCKET}/slipway/samples"


def _configured(spoke: Spoke) -> Spoke:
    toml = spoke.root / "slipway.toml"
    text = toml.read_text().replace("sources = []", 'sources = ["kserve"]', 1)
    text = text.replace('sample_store = ""', f'sample_store = "{STORE}"', 1)
    toml.write_text(text)
    return Spoke(spoke.root, load_config(spoke.root))


def _serve(pod: Container, rows: list[dict], per_request: int = 10) -> int:
    """Send `rows` in requests of `per_request`; returns the rows answered."""
    answered = 0
    for i in range(0, len(rows), per_request):
        chunk = rows[i : i + per_request]
        response = httpx.post(
            f"{pod.url}/invocations", json={"dataframe_records": chunk}, timeout=30
        )
        assert response.status_code == 200, response.text
        answered += len(response.json()["predictions"])
    return answered


def test_the_kserve_source_reads_what_every_predictor_process_wrote(
    spoke: Spoke,
    model_dir: Path,  # noqa: F811
    moto_server: str,  # noqa: F811
):
    spoke = _configured(spoke)
    # The manifest passes the store to every replica of the predictor.
    manifest = inference_service(
        spoke.config, image="registry.example/spoke:abc", version="1", storage_uri="s3://m/1"
    )
    [container] = manifest["spec"]["predictor"]["containers"]
    assert {"name": "SLIPWAY_SAMPLE_STORE", "value": STORE} in container["env"]

    aws = {**AWS_ENV, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_server}
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION, **_keys())
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    env = {**aws, "SLIPWAY_SAMPLE_STORE": STORE, "SLIPWAY_MODEL_VERSION": "1"}
    columns = list(spoke.config.data.contract.columns)
    drifted = [{c: float(r[c]) * 1.5 for c in columns} for r in held_out(spoke)]

    sent = 0
    first = Container(spoke, model_dir, env)
    second = Container(spoke, model_dir, {**env, "SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    try:
        sent += _serve(first, drifted)
        sent += _serve(second, drifted)
        first.stop()  # the pod is replaced (SIGTERM: its last rows are put on the way out)...
        assert "write failed" not in first.output(), first.output()  # no failed put logged
        replacement = Container(spoke, model_dir, env)  # ...by a new one
        try:
            sent += _serve(replacement, drifted)
            sent += _serve(second, drifted)
        finally:
            replacement.stop()
    finally:
        second.stop()

    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert keys and all(
        re.fullmatch(
            rf"slipway/samples/{spoke.config.model_name}/\d{{4}}/\d\d/\d\d/\d\d/.+-\d{{6}}\.jsonl",
            k,
        )
        for k in keys
    ), keys
    writers = {k.rsplit("/", 1)[1].rsplit("-", 1)[0] for k in keys}
    assert len(writers) >= 3, writers  # the first pod, the replacement, and >= 1 of two workers

    result = CliRunner().invoke(
        main,
        ["--project", str(spoke.root), "monitor", "--source", "kserve", "--no-retrain"],
        env={**aws, "SLIPWAY_ACTOR": "monitor-bot"},
    )
    assert result.exit_code == Exit.DRIFT, result.output
    assert f"kserve: {sent} rows served in the last 6 h from s3://{BUCKET}/" in result.output
    assert "(versions: 1)" in result.output and "drift found" in result.output
    [entry] = [e for e in audit.read(spoke.root) if e["action"] == "drift"]
    assert entry["details"]["source"] == "kserve" and entry["details"]["samples"] == sent


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }
