"""The gateway's HTTP surface against the inputs and failures found in review, in-process
(httpx's ASGI transport on one event loop, no server, no model file): each case shows the
guard firing, and that a caller's bad request never becomes a variant's error."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from slipway.pipelines.config import parse_config
from slipway.pipelines.serving import core as core_module
from slipway.pipelines.serving import mlflow_protocol, predictors
from slipway.pipelines.serving.batching import Batcher
from slipway.pipelines.serving.gateway import (
    CHALLENGER,
    CHAMPION,
    MAX_PREDICTION_LABELS,
    Gateway,
    Limits,
    build_app,
)

CONFIG = parse_config(
    (Path(__file__).parents[1] / "data" / "mixed_contract_spoke.toml").read_text()
)
COLUMNS = list(CONFIG.data.contract.columns)
GOOD = {"tenure": 3, "score": 0.5, "visits": 2, "active": True, "plan": "a"}
GUARD_S = 20  # a hang fails the test instead of stalling the suite; never a speed claim


def split(**overrides: Any) -> dict[str, Any]:
    row = {**GOOD, **overrides}
    return {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}


def raw(column: str, literal: str) -> bytes:
    values = [literal if c == column else json.dumps(v) for c, v in GOOD.items()]
    return (
        f'{{"dataframe_split": {{"columns": {json.dumps(list(GOOD))}, '
        f'"data": [[{",".join(values)}]]}}}}'
    ).encode()


def frame_model(gw: Gateway, output: Callable[[Any], list[Any]] | None = None):
    """The real row -> DataFrame step, then a model that refuses missing values (as most
    sklearn estimators do)."""
    to_frame = gw._frame_builder()

    def predict(rows: list[tuple[Any, ...]]) -> list[Any]:
        frame = to_frame(rows)
        if frame.isna().to_numpy().any():
            raise ValueError("Input contains NaN")
        return output(frame) if output else [int(t) % 2 for t in frame["tenure"]]

    return predict


def serving(
    tmp_path: Path,
    *,
    limits: Limits | None = None,
    predict: Callable[[Gateway], Any] | None = None,
    challenger: bool = False,
) -> Gateway:
    gw = Gateway(tmp_path, CONFIG, limits=limits or Limits())
    make = predict or frame_model
    roles = [CHAMPION, CHALLENGER] if challenger else [CHAMPION]
    gw.variants = {
        role: gw._variant(
            role,
            str(i + 1),
            Batcher(
                make(gw),
                role,
                timeout=gw.limits.predict_timeout_s,
                max_queued=gw.limits.max_queued_requests,
            ),
        )
        for i, role in enumerate(roles)
    }
    gw._champion_wanted = True
    gw.loaded.set()
    return gw


def client(app: Any, peer: str = "127.0.0.1", host: str = "127.0.0.1:8780") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 50000)), base_url=f"http://{host}"
    )


BAD_INPUTS = [
    (json.dumps({"dataframe_split": {"columns": [["x"]], "data": [[1]]}}).encode(), "columns[0]"),
    (raw("tenure", "1" * 5000), "column 'tenure'"),
    (raw("score", "9" * 400), "column 'score'"),
    (raw("tenure", str(2**64)), "column 'tenure'"),
    (json.dumps(split(visits=None)).encode(), "column 'visits'"),
    (json.dumps(split(active=None)).encode(), "column 'active'"),
]


def test_bad_inputs_are_400s_naming_the_field_and_never_a_variants_error(tmp_path):
    gw = serving(tmp_path, challenger=True)
    gw.set_weights(50, False)

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        async with client(build_app(gw)) as http:
            answers = [
                await http.post(
                    "/invocations", content=body, headers={"content-type": "application/json"}
                )
                for body, _ in BAD_INPUTS * 2  # both variants would have had their turn
            ]
            good = await http.post("/invocations", json=split())
            return answers, good

    answers, good = asyncio.run(scenario())
    for answer, (_, field) in zip(answers, BAD_INPUTS * 2, strict=True):
        assert answer.status_code == 400, answer.text
        assert field in answer.json()["message"]
    assert good.status_code == 200
    window = gw.window(0)
    assert window[CHAMPION]["errors"] == 0 and window[CHALLENGER]["errors"] == 0
    assert window[CHAMPION]["requests"] + window[CHALLENGER]["requests"] == 1


def test_a_body_over_the_limit_is_a_413_whether_declared_or_streamed(tmp_path):
    gw = serving(tmp_path, limits=Limits(max_body_bytes=2_000))
    big = json.dumps({"dataframe_records": [GOOD] * 100}).encode()
    assert len(big) > 2_000

    async def chunks():
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    async def scenario() -> list[httpx.Response]:
        async with client(build_app(gw)) as http:
            declared = await http.post("/invocations", content=big)
            streamed = await http.post("/invocations", content=chunks())  # no length given
            small = await http.post("/invocations", json=split())
            return [declared, streamed, small]

    declared, streamed, small = asyncio.run(scenario())
    assert declared.status_code == 413 and "split it" in declared.json()["message"]
    assert streamed.status_code == 413
    assert small.status_code == 200
    assert gw.window(0)[CHAMPION]["errors"] == 0


def test_large_bodies_are_parsed_off_the_event_loop(tmp_path, monkeypatch):
    gw = serving(tmp_path, limits=Limits(inline_parse_bytes=1_000))
    threads: list[str] = []
    real = mlflow_protocol.parse_body

    def recording(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(mlflow_protocol, "parse_body", recording)
    big = {"dataframe_records": [GOOD] * 50}

    async def scenario() -> tuple[str, list[int]]:
        async with client(build_app(gw)) as http:
            codes = [
                (await http.post("/invocations", json=split())).status_code,
                (await http.post("/invocations", json=big)).status_code,
            ]
        return threading.current_thread().name, codes

    loop_thread, codes = asyncio.run(scenario())
    assert codes == [200, 200]
    assert threads[0] == loop_thread  # a small body: cheaper than the hop to a thread
    assert threads[1] != loop_thread


def test_admin_refuses_browsers_rebound_hosts_and_non_json_and_odd_tokens(tmp_path):
    gw = serving(tmp_path, challenger=True)
    app = build_app(gw, admin_token="s3cret")
    weights = {"challenger": 10, "shadow": False}

    async def scenario() -> dict[str, int]:
        codes = {}
        async with client(app) as local:
            codes["local"] = (await local.post("/admin/weights", json=weights)).status_code
            codes["origin"] = (
                await local.post(
                    "/admin/weights", json=weights, headers={"origin": "https://evil.example"}
                )
            ).status_code
            codes["cross_site_get"] = (
                await local.get("/admin/state", headers={"sec-fetch-site": "cross-site"})
            ).status_code
            codes["form"] = (
                await local.post("/admin/weights", data={"challenger": "100"})
            ).status_code
            codes["text_plain"] = (
                await local.post(
                    "/admin/reload", content=b"{}", headers={"content-type": "text/plain"}
                )
            ).status_code
            codes["shadow_string"] = (
                await local.post("/admin/weights", json={"challenger": 0, "shadow": "false"})
            ).status_code
        async with client(app, host="attacker.example:8780") as rebound:
            codes["rebound"] = (await rebound.get("/admin/state")).status_code
        async with client(app, peer="10.1.2.3") as remote:
            codes["non_ascii_token"] = (
                await remote.get(
                    "/admin/state", headers={"authorization": "Bearer s3crét".encode("latin-1")}
                )
            ).status_code
            codes["token"] = (
                await remote.get("/admin/state", headers={"authorization": "Bearer s3cret"})
            ).status_code
        return codes

    codes = asyncio.run(scenario())
    assert codes == {
        "local": 200,
        "origin": 403,
        "cross_site_get": 403,
        "form": 403,
        "text_plain": 403,
        "shadow_string": 400,
        "rebound": 403,
        "non_ascii_token": 403,
        "token": 200,
    }
    assert gw.weight == 10 and gw.shadow is False  # only the first, legitimate call took


def test_a_hung_model_gets_503s_with_retry_after_and_a_bounded_queue(tmp_path):
    release, entered = threading.Event(), threading.Event()

    def hanging(gw: Gateway):
        def predict(rows: list[tuple[Any, ...]]) -> list[Any]:
            entered.set()
            release.wait(GUARD_S)
            return [0] * len(rows)

        return predict

    gw = serving(
        tmp_path, limits=Limits(predict_timeout_s=0.3, max_queued_requests=2), predict=hanging
    )

    async def scenario() -> list[httpx.Response]:
        async with client(build_app(gw)) as http:
            first = [asyncio.create_task(http.post("/invocations", json=split()))]
            await asyncio.to_thread(entered.wait, GUARD_S)  # the model holds the first
            first += [asyncio.create_task(http.post("/invocations", json=split())) for _ in "ab"]
            while gw.variants[CHAMPION].batcher.queued < 2:  # both wait behind it: queue full
                await asyncio.sleep(0.01)
            shed = await http.post("/invocations", json=split())
            answers = [*await asyncio.gather(*first), shed]
            release.set()
            return answers

    try:
        answers = asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    finally:
        release.set()
    codes = [a.status_code for a in answers]
    assert codes == [503] * 4
    assert all(a.headers["retry-after"] == "1" for a in answers)
    assert [a.json()["error_code"] for a in answers] == ["TIMEOUT"] * 3 + ["OVERLOADED"]
    window = gw.window(0)[CHAMPION]
    assert window["errors"] == 3  # the model's deadlines count against it; the shed does not
    assert window["requests"] == 3


def test_prediction_labels_stay_bounded_for_regressors_and_many_valued_outputs(tmp_path):
    gw = serving(tmp_path, predict=lambda g: frame_model(g, lambda f: list(f["tenure"])))

    async def scenario() -> str:
        async with client(build_app(gw)) as http:
            for tenure in range(60):
                assert (await http.post("/invocations", json=split(tenure=tenure))).is_success
            return (await http.get("/metrics")).text

    text = asyncio.run(scenario())
    labels = {
        line.split('value="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("slipway_gateway_predictions_total{")
    }
    assert len(labels) == MAX_PREDICTION_LABELS + 1 and "other" in labels
    assert core_module._label(0.37) == "continuous"


def test_a_champion_that_fails_to_load_never_hands_the_challenger_its_share(tmp_path, monkeypatch):
    gw = Gateway(tmp_path, CONFIG)
    monkeypatch.setattr(gw, "_wanted_versions", lambda: {CHAMPION: "1", CHALLENGER: "2"})

    def load(role: str, version: str):
        if role == CHAMPION:
            raise OSError("model artifact missing")
        return gw._variant(role, version, Batcher(frame_model(gw), role))

    @dataclass
    class Open:
        version: str = "2"
        weight: int = 10
        shadow: bool = False
        lease_expires_at: float = float("inf")  # its controller is alive

    monkeypatch.setattr(gw, "_load_variant", load)
    monkeypatch.setattr(gw.spoke.rollouts, "open_rollout", lambda: Open())

    async def scenario() -> list[httpx.Response]:
        await gw.reload()
        async with client(build_app(gw)) as http:
            return [await http.post("/invocations", json=split()) for _ in range(50)]

    answers = asyncio.run(scenario())
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 503]
    assert {a.headers["x-slipway-variant"] for a in served} == {CHALLENGER}
    assert len(served) == 5 and len(refused) == 45  # exactly its 10 %
    assert "model artifact missing" in refused[0].json()["message"]
    assert gw.window(0)[CHALLENGER]["errors"] == 0


def test_the_drift_sample_flusher_survives_write_errors_with_bounded_memory(tmp_path, monkeypatch):
    from slipway.pipelines.serving.drift_sample import SampleWriter, read_samples

    gw = serving(tmp_path)
    writer = gw._samples
    assert isinstance(writer, SampleWriter)
    capacity = CONFIG.monitoring.sample_capacity
    broken = threading.Event()
    broken.set()
    real_write = SampleWriter._write

    def flaky(self: SampleWriter, pending: Any) -> None:
        if broken.is_set():
            raise OSError(28, "No space left on device")
        real_write(self, pending)

    monkeypatch.setattr(SampleWriter, "_write", flaky)
    monkeypatch.setattr(core_module, "SAMPLE_FLUSH_SECONDS", 0.01)
    row = tuple(GOOD.values())

    async def scenario() -> None:
        flusher = asyncio.get_running_loop().create_task(gw.flush_samples_forever())
        for i in range(3 * capacity // 100):
            writer.add(CHAMPION, "1", [row] * 100, [i] * 100)
            await asyncio.sleep(0)
        while writer.write_errors < 3:  # it failed, and kept trying
            await asyncio.sleep(0.01)
        assert not flusher.done()
        assert writer.pending_rows <= capacity < 3 * capacity  # the oldest were dropped
        broken.clear()
        while writer.pending_rows:  # the disk is back: the next flush writes what was kept
            await asyncio.sleep(0.01)
        flusher.cancel()

    asyncio.run(asyncio.wait_for(scenario(), GUARD_S))
    kept = read_samples(tmp_path)
    assert 0 < len(kept) <= capacity
    assert kept["_prediction"].iloc[-1] == 3 * capacity // 100 - 1  # the newest survived
    assert writer.dropped == 3 * capacity - capacity
    metrics = gw.metrics
    assert metrics.get_sample_value("slipway_gateway_sample_dropped_rows") == writer.dropped


def test_ping_and_ready_say_503_until_the_model_is_loaded_while_liveness_says_200(
    tmp_path, monkeypatch
):
    gw = Gateway(tmp_path, CONFIG, model_dir=tmp_path / "model", model_version="4", sample=False)
    gate = threading.Event()

    def slow_load(role: str, version: str):
        gate.wait(GUARD_S)
        return gw._variant(role, version, Batcher(frame_model(gw), role))

    monkeypatch.setattr(gw, "_load_variant", slow_load)
    app = build_app(gw)

    async def scenario() -> list[int]:
        codes = []
        async with client(app) as http:
            loading = asyncio.get_running_loop().create_task(gw.reload())
            codes.append((await http.get("/ping")).status_code)
            codes.append((await http.get("/ready")).status_code)
            codes.append((await http.get("/health")).status_code)
            codes.append((await http.post("/invocations", json=split())).status_code)
            gate.set()
            await loading
            codes.append((await http.get("/ping")).status_code)
            codes.append((await http.post("/invocations", json=split())).status_code)
            codes.append((await http.get("/admin/state")).status_code)
        return codes

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD_S)) == [503, 503, 200, 503, 200, 200, 404]
    assert gw.state()["champion"] == "4"


class _Metadata:
    flavors: ClassVar[dict[str, dict[str, str]]] = {
        "python_function": {"loader_module": "mlflow.sklearn", "predict_fn": "predict"}
    }

    def get_input_schema(self) -> None:
        return None


class _Estimator:
    """A scikit-learn-like estimator whose own predict disagrees with its pyfunc wrapper."""

    feature_names_in_: ClassVar[list[str]] = ["tenure", "score", "visits"]

    def predict(self, array: Any) -> list[int]:
        return [7] * len(array)


class _PyfuncModel:
    metadata = _Metadata()

    def get_raw_model(self) -> _Estimator:
        return _Estimator()

    def predict(self, frame: Any) -> list[int]:
        return [int(t) % 2 for t in frame["tenure"]]


def test_the_direct_sklearn_call_is_dropped_when_it_disagrees_with_pyfunc(tmp_path, monkeypatch):
    import mlflow.pyfunc

    text = (Path(__file__).parents[1] / "data" / "mixed_contract_spoke.toml").read_text()
    numeric = parse_config(
        text.replace('visits = { dtype = "int", nullable = true }', 'visits = { dtype = "int" }')
        .replace('active = { dtype = "bool", nullable = true }\n', "")
        .replace('plan = { dtype = "str", allowed = ["a", "b"] }\n', "")
    )
    assert list(numeric.data.contract.columns) == ["tenure", "score", "visits"]
    monkeypatch.setattr(mlflow.pyfunc, "load_model", lambda uri: _PyfuncModel())
    gw = Gateway(tmp_path, numeric, model_dir=tmp_path, sample=False)
    predict = gw._load_variant(CHAMPION, "1").batcher._predict
    assert predictors._direct_predictor(_PyfuncModel(), gw.columns, numeric) is not None
    # The first batch is scored both ways: they differ, so pyfunc answers, now and after.
    assert predict([(3, 0.5, 1)]) == [1]
    assert predict([(4, 0.5, 1)]) == [0]
