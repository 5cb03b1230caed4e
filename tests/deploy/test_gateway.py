"""The gateway over real HTTP on 127.0.0.1: MLflow's scoring protocol, contract-checked 400s
that never stop the serving, shadow mode, batching, metrics, the drift sample and the admin
guard."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from slipway.pipelines import registry
from slipway.pipelines.serving.drift_sample import SampleWriter, read_samples

from .conftest import Load


def row(spoke, **overrides) -> dict:
    from slipway.pipelines.rollout.traffic import replay_rows

    return {**replay_rows(spoke.root, spoke.config)[0], **overrides}


def test_all_four_mlflow_payloads_give_the_same_answer(spoke, gateway):
    one = row(spoke)
    cols, values = list(one), list(one.values())
    payloads = [
        {"dataframe_split": {"columns": cols, "data": [values]}},
        {"dataframe_records": [one]},
        {"instances": [one]},
        {"inputs": {c: [v] for c, v in one.items()}},
        {"instances": [values]},
    ]
    answers = [httpx.post(f"{gateway.url}/invocations", json=p, timeout=30) for p in payloads]
    assert [a.status_code for a in answers] == [200] * len(payloads)
    assert len({str(a.json()["predictions"]) for a in answers}) == 1
    assert answers[0].headers["x-slipway-version"] == "1"


BAD_REQUESTS = [
    (b"{not json", "not valid JSON"),
    (b'{"dataframe_split": {"columns": ["a"], "data": [[1]]}}', "missing columns"),
    (b'{"rows": []}', "exactly one of"),
]


def test_malformed_requests_get_400s_that_say_why_while_serving_continues(spoke, gateway):
    url = f"{gateway.url}/invocations"
    wrong_type = {"dataframe_records": [row(spoke, mean_radius="large")]}
    out_of_range = {"dataframe_records": [row(spoke, mean_area=-5.0)]}
    unknown = {"dataframe_records": [row(spoke, shoe_size=42.0)]}
    with Load(gateway.url, spoke, concurrency=20, rate=200.0) as load:
        answers = [
            httpx.post(url, content=body, timeout=30, headers={"content-type": "application/json"})
            for body, _ in BAD_REQUESTS
        ]
        answers += [
            httpx.post(url, json=p, timeout=30) for p in (wrong_type, out_of_range, unknown)
        ]
        good = httpx.post(url, json={"dataframe_records": [row(spoke)]}, timeout=30)
    messages = [a.json()["message"] for a in answers]
    print(messages, load.report.summary())
    assert [a.status_code for a in answers] == [400] * 6
    for message, (_, expected) in zip(messages, BAD_REQUESTS, strict=False):
        assert expected in message
    assert "column 'mean_radius', row 0: expected a number" in messages[3]
    assert "below the contract minimum" in messages[4]
    assert "unknown columns ['shoe_size']" in messages[5]
    assert good.status_code == 200
    assert load.report.sent > 0 and load.report.failed == 0
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert "slipway_gateway_bad_requests_total 6.0" in metrics


def test_concurrent_requests_are_batched_and_metrics_and_samples_are_per_variant(spoke, gateway):
    load = Load(gateway.url, spoke, concurrency=20, rate=0.0, guard_s=8.0)
    load.thread.start()
    load.thread.join(timeout=120)
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    calls = float(
        re.search(r'slipway_gateway_batch_rows_count\{version="1"\} (\S+)', metrics).group(1)
    )
    rows = float(
        re.search(r'slipway_gateway_batch_rows_sum\{version="1"\} (\S+)', metrics).group(1)
    )
    print(f"{rows:.0f} rows in {calls:.0f} model calls; clients {load.report.summary()}")
    assert rows == load.report.ok
    assert calls < rows  # concurrent requests shared model calls
    assert 'slipway_gateway_requests_total{variant="champion",version="1"}' in metrics
    assert 'slipway_gateway_latency_seconds_bucket{le="0.005",variant="champion"' in metrics
    assert re.search(r'slipway_gateway_predictions_total\{value="[01]",variant="champion"', metrics)
    for _ in range(100):  # the gateway flushes the sample once a second; bounded wait
        samples = read_samples(spoke.root)
        if len(samples) >= load.report.ok:
            break
        time.sleep(0.2)
    assert len(samples) == load.report.ok
    assert set(spoke.config.data.contract.columns) < set(samples.columns)
    assert set(samples["_variant"]) == {"champion"} and set(samples["_prediction"]) <= {0, 1}


def test_the_drift_sample_on_disk_stays_within_its_capacity(spoke):
    columns = list(spoke.config.data.contract.columns)
    writer = SampleWriter(spoke.root, columns, capacity=100)
    for batch in range(35):
        rows = [tuple(float(batch * 10 + i) for _ in columns) for i in range(10)]
        writer.write("champion", "1", rows, [batch] * 10)
    kept = read_samples(spoke.root)
    assert 75 <= len(kept) <= 100
    assert kept["_prediction"].iloc[-1] == 34  # the newest rows are the ones kept
    assert kept["_at"].is_monotonic_increasing


def test_shadow_mode_answers_from_the_champion_while_the_challenger_scores_a_copy(spoke, gateway):
    client = registry.client(spoke.root)
    client.set_registered_model_alias(spoke.config.model_name, registry.CHALLENGER, "2")
    reloaded = httpx.post(f"{gateway.url}/admin/reload", json={}, timeout=60)
    assert reloaded.json()["challenger"] == "2"
    seq = httpx.post(
        f"{gateway.url}/admin/weights", json={"challenger": 0, "shadow": True}, timeout=10
    ).json()["seq"]
    answers = [
        httpx.post(
            f"{gateway.url}/invocations", json={"dataframe_records": [row(spoke)]}, timeout=30
        )
        for _ in range(20)
    ]
    assert {a.headers["x-slipway-variant"] for a in answers} == {"champion"}
    window = httpx.get(f"{gateway.url}/admin/window", params={"after": seq}, timeout=10).json()
    assert window["champion"]["requests"] == 20
    # Shadow copies are scored in the background; give them a moment, bounded.
    for _ in range(100):
        window = httpx.get(f"{gateway.url}/admin/window", params={"after": seq}, timeout=10).json()
        if window["challenger"]["requests"] == 20:
            break
        time.sleep(0.1)
    assert window["challenger"]["requests"] == 20


def test_every_row_of_a_batched_request_reaches_the_drift_window(spoke, gateway):
    """Callers that send batches are judged for drift like single-row callers."""
    from slipway.pipelines.rollout.traffic import replay_rows

    rows = replay_rows(spoke.root, spoke.config)[:40]
    seq = httpx.get(f"{gateway.url}/admin/window", params={"after": 0}, timeout=10).json()["seq"]
    answer = httpx.post(f"{gateway.url}/invocations", json={"dataframe_records": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    window = httpx.get(f"{gateway.url}/admin/window", params={"after": seq}, timeout=10).json()
    assert window["champion"]["requests"] == 1
    assert window["champion"]["predictions"] == answer.json()["predictions"]
    assert len(window["champion"]["predictions"]) == 40


def test_admin_operations_need_loopback_or_the_token(spoke):
    from starlette.testclient import TestClient

    from slipway.pipelines.serving.gateway import Gateway, build_app

    app = build_app(Gateway(spoke.root, spoke.config), admin_token="s3cret")
    # An in-process ASGI client posing as a remote peer: the only way to show a non-loopback
    # caller without binding a non-loopback address, which the tests never do.
    with TestClient(app, client=("10.20.30.40", 50000)) as remote:
        assert remote.post("/admin/weights", json={"challenger": 0}).status_code == 403
        assert remote.post("/admin/reload").status_code == 403
        assert remote.get("/health").status_code == 200
        authed = remote.post(
            "/admin/weights", json={"challenger": 0}, headers={"authorization": "Bearer s3cret"}
        )
        assert authed.status_code == 200
        assert (
            remote.post(
                "/admin/weights",
                json={"challenger": 150},
                headers={"authorization": "Bearer s3cret"},
            ).status_code
            == 400
        )


@pytest.mark.parametrize("weight", [10, 50])
def test_the_split_is_exact_over_any_run_of_requests(spoke, weight):
    from slipway.pipelines.serving.gateway import Gateway, Variant

    gw = Gateway(spoke.root, spoke.config)
    gw.variants = {
        "champion": Variant("champion", "1", None),
        "challenger": Variant("challenger", "2", None),
    }
    gw.set_weights(weight, False)
    routes = [gw.route() for _ in range(1000)]
    assert routes.count("challenger") == weight * 10
    assert routes[:100].count("challenger") == weight
