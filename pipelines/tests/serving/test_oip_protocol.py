"""The Open Inference Protocol (v2) adapter over the gateway's scoring core, in process: both
request forms, typed outputs, the same contract check, window and metrics as /invocations.
(A real OIP client nobody here wrote talks to a real gateway in tests/deploy/test_oip_client.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import generate_latest

from slipway.pipelines.config import parse_config
from slipway.pipelines.serving.batching import Batcher
from slipway.pipelines.serving.gateway import CHALLENGER, CHAMPION, Gateway, Limits, build_app
from slipway.pipelines.serving.oip_tensors import encode_outputs

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = parse_config((DATA / "mixed_contract_spoke.toml").read_text())
NAME = CONFIG.model_name
ROW = {"tenure": 3, "score": 0.5, "visits": 2, "active": True, "plan": "a"}
DATATYPES = {
    "tenure": "INT64",
    "score": "FP64",
    "visits": "INT64",
    "active": "BOOL",
    "plan": "BYTES",
}


def gateway(tmp_path: Path, *, loaded: bool = True) -> Gateway:
    """Champion v1 and challenger v2 (weight 0): tenure's parity, and parity + 10."""
    gw = Gateway(tmp_path, CONFIG, limits=Limits())

    def model(offset: int) -> Any:
        def predict(rows: list[tuple[Any, ...]]) -> list[int]:
            return [int(row[0]) % 2 + offset for row in rows]

        return predict

    gw.variants = {
        role: gw._variant(role, str(i + 1), Batcher(model(10 * i), role))
        for i, role in enumerate([CHAMPION, CHALLENGER])
    }
    gw._champion_wanted = True
    if loaded:
        gw.loaded.set()
    else:
        gw.variants = {}
    return gw


def per_column(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": t, "data": [r[c] for r in rows]}
            for c, t in DATATYPES.items()
        ],
        "parameters": {"content_type": "pd"},
        **extra,
    }


def run(gw: Gateway, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_app(gw), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return [await http.request(m, u, json=body) for m, u, body in calls]

    return asyncio.run(scenario())


def test_per_column_infer_is_scored_batched_counted_and_answered_typed(tmp_path):
    gw = gateway(tmp_path)
    rows = [ROW, {**ROW, "tenure": 4, "plan": "b", "active": False}]
    [answer] = run(gw, [("POST", f"/v2/models/{NAME}/infer", per_column(rows, id="req-7"))])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "model_name": NAME,
        "model_version": "1",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 0]}],
        "id": "req-7",
    }
    window = gw.window(0)
    assert window[CHAMPION]["requests"] == 1 and window[CHAMPION]["predictions"] == [1, 0]
    metrics = generate_latest(gw.metrics).decode()
    assert 'slipway_gateway_requests_total{variant="champion",version="1"} 1.0' in metrics


def test_a_2d_tensor_in_contract_order_scores_like_the_per_column_form_and_invocations(tmp_path):
    gw = gateway(tmp_path)
    rows = [ROW, {**ROW, "tenure": 8}, {**ROW, "tenure": 5}]
    tensor = {
        "inputs": [
            {
                "name": "features",
                "shape": [3, 5],
                "datatype": "BYTES",  # one tensor has one datatype: a mixed row travels as BYTES
                "data": [[r[c] for c in DATATYPES] for r in rows],
            }
        ]
    }
    numeric_only = run(
        gw,
        [
            ("POST", f"/v2/models/{NAME}/infer", per_column(rows)),
            ("POST", "/invocations", {"dataframe_records": rows}),
            ("POST", f"/v2/models/{NAME}/infer", tensor),
        ],
    )
    by_column, mlflow, as_tensor = numeric_only
    assert by_column.json()["outputs"][0]["data"] == mlflow.json()["predictions"] == [1, 0, 1]
    # A BYTES tensor declares strings; the contract's numbers in it are the client's mistake.
    assert as_tensor.status_code == 400
    assert "is not a BYTES value" in as_tensor.json()["error"]


def test_a_numeric_2d_tensor_scores_when_the_contract_is_all_numbers(tmp_path):
    config = CONFIG.model_copy(deep=True)
    for name in ("active", "plan", "visits"):
        del config.data.contract.columns[name]
    gw = Gateway(tmp_path, config)
    gw.variants = {
        CHAMPION: gw._variant(CHAMPION, "1", Batcher(lambda rows: [r[0] for r in rows], "c"))
    }
    gw._champion_wanted = True
    gw.loaded.set()
    body = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [3, 0.5, 7, 1.5]}]
    }
    [answer] = run(gw, [("POST", f"/v2/models/{NAME}/infer", body)])
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [3, 7]


def test_bad_tensors_are_400s_in_the_protocols_error_form_and_never_a_variants_error(tmp_path):
    gw = gateway(tmp_path)
    url = f"/v2/models/{NAME}/infer"
    cases = [
        (per_column([{**ROW, "tenure": -1}]), "column 'tenure', row 0: -1 is below"),
        (per_column([{**ROW, "plan": "z"}]), "column 'plan', row 0: 'z' is not one of"),
        ({"inputs": per_column([ROW])["inputs"][:4]}, "missing columns ['plan']"),
        (
            {"inputs": [{"name": "tenure", "shape": [2], "datatype": "INT64", "data": [1]}]},
            "shape [2] holds 2 values, data has 1",
        ),
        (
            {"inputs": [{"name": "tenure", "shape": [1], "datatype": "INT64", "data": [0.5]}]},
            "0.5 is not a INT64 value",
        ),
        ({"instances": [[1]]}, 'an infer request is {"inputs"'),
        ({**per_column([ROW]), "outputs": [{"name": "probabilities"}]}, "one output, 'predict'"),
    ]
    answers = run(gw, [("POST", url, body) for body, _ in cases])
    for (_, expected), answer in zip(cases, answers, strict=True):
        assert answer.status_code == 400, answer.text
        assert expected in answer.json()["error"], answer.json()
    assert gw.window(0)[CHAMPION]["errors"] == 0 and gw.window(0)[CHAMPION]["requests"] == 0


def test_health_metadata_and_per_version_urls(tmp_path):
    gw = gateway(tmp_path)
    answers = run(
        gw,
        [
            ("GET", "/v2/health/live", None),
            ("GET", "/v2/health/ready", None),
            ("GET", f"/v2/models/{NAME}/ready", None),
            ("GET", f"/v2/models/{NAME}", None),
            ("POST", f"/v2/models/{NAME}/versions/2/infer", per_column([ROW])),
            ("GET", f"/v2/models/{NAME}/versions/9/ready", None),
            ("GET", "/v2/models/someone-else/ready", None),
            ("GET", "/v2", None),
        ],
    )
    live, ready, model_ready, meta, v2, missing, other, server = answers
    assert live.json() == {"live": True} and ready.json() == {"ready": True}
    assert model_ready.json() == {"name": NAME, "ready": True}
    assert meta.json()["inputs"] == [
        {"name": c, "datatype": t, "shape": [-1]} for c, t in DATATYPES.items()
    ]
    assert meta.json()["versions"] == ["1", "2"]
    assert meta.json()["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    # The challenger is at weight 0, yet its own URL reaches it (KServe's tag routing does too).
    assert v2.json()["model_version"] == "2" and v2.json()["outputs"][0]["data"] == [11]
    assert v2.headers["x-slipway-variant"] == CHALLENGER
    assert missing.status_code == 404 and "version '9'" in missing.json()["error"]
    assert other.status_code == 404 and NAME in other.json()["error"]
    assert server.json()["name"] == "slipway"


def test_not_ready_is_503_on_readiness_and_infer(tmp_path):
    gw = gateway(tmp_path, loaded=False)
    ready, infer = run(
        gw,
        [
            ("GET", "/v2/health/ready", None),
            ("POST", f"/v2/models/{NAME}/infer", per_column([ROW])),
        ],
    )
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert infer.status_code == 503 and "still loading" in infer.json()["error"]
    assert infer.headers["retry-after"] == "1"


def test_outputs_are_typed_by_the_task():
    assert encode_outputs("regression", [1, 2])["datatype"] == "FP64"
    assert encode_outputs("binary", [True, False])["datatype"] == "BOOL"
    assert encode_outputs("multiclass", ["cat", "dog"]) == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["cat", "dog"],
    }
    assert encode_outputs("binary", [[0.2, 0.8]])["shape"] == [1, 2]
