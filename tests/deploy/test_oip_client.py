"""A real Open Inference Protocol client nobody here wrote - KServe's own Python SDK
(`kserve.InferenceRESTClient`, protocol v2) - against a real `slipway serve` gateway process
holding a registered scikit-learn champion.

The SDK pins its own web stack, so it runs in an environment of its own under build/ (made
once with uv, then reused), never in the hub's lock; the test talks to it through a script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
KSERVE = "kserve==0.21.0"  # the SDK a Kubeflow user installs; bump with the platform's KServe
CLIENT_ENV = REPO / "build" / f"oip-client-{KSERVE.replace('==', '-')}"
SCRIPT = Path(__file__).parent / "oip" / "kserve_client.py"


def _uv() -> str:
    found = REPO / ".tools" / "bin" / "uv"
    return str(found) if found.exists() else (shutil.which("uv") or "uv")


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    """The Python of an environment holding only the KServe SDK (made once, kept in build/)."""
    python = CLIENT_ENV / "bin" / "python"
    if not (CLIENT_ENV / ".complete").exists():
        shutil.rmtree(CLIENT_ENV, ignore_errors=True)
        subprocess.run([_uv(), "venv", "-q", "-p", sys.executable, str(CLIENT_ENV)], check=True)
        subprocess.run(
            [_uv(), "pip", "install", "-q", "-p", str(python), KSERVE],
            check=True,
            env={**os.environ, "VIRTUAL_ENV": str(CLIENT_ENV)},
        )
        (CLIENT_ENV / ".complete").touch()
    return python


def test_kserves_own_client_infers_and_probes_the_gateway_over_oip(spoke, gateway, kserve_python):
    from slipway.pipelines.rollout.traffic import replay_rows

    rows = replay_rows(spoke.root, spoke.config)[:5]
    model = spoke.config.model_name
    mlflow = httpx.post(f"{gateway.url}/invocations", json={"dataframe_records": rows}, timeout=30)
    ran = subprocess.run(
        [str(kserve_python), str(SCRIPT), gateway.url, model, json.dumps(rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert got["live"] is True and got["ready"] is True and got["model_ready"] is True
    assert got["missing_model_ready"] is False
    # The SDK's InferResponse keeps no model_version; the answer's headers name the version.
    assert (got["model_name"], got["id"]) == (model, "kserve-client-1")
    assert got["version_header"] == "1"
    assert got["output"]["name"] == "predict" and got["output"]["datatype"] == "INT64"
    assert got["output"]["shape"] == [5]
    # The same rows through MLflow's protocol and as one 2-D tensor: the same answers.
    assert got["output"]["data"] == mlflow.json()["predictions"] == got["tensor_data"]
    assert got["refused"] is not None and "400" in got["refused"]
    assert "missing columns" in got["refused"]
    window = httpx.get(f"{gateway.url}/admin/window", params={"after": 0}, timeout=5).json()
    assert window["champion"]["requests"] == 3  # /invocations, then the client's two infers
