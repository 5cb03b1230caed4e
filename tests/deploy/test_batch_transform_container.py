"""The image's `serve` under Batch Transform's contract, run for real as a subprocess on a
model directory made the way SageMaker makes it: `GET /execution-parameters`, then
MultiRecord mini-batches of CSV without a header and of JSON Lines (SplitType=Line) with bad
lines in them, answered line by line with the same predictions and reasons as `slipway score`.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import mlflow.pyfunc
import numpy as np

from .conftest import Spoke
from .test_batch_score import feature_table
from .test_sagemaker_serving import Container, model_dir  # noqa: F401 - the fixture


def test_the_image_scores_transform_mini_batches_line_by_line_and_names_each_bad_line(
    spoke: Spoke,
    model_dir: Path,  # noqa: F811 - the imported fixture
):
    columns = list(spoke.config.data.contract.columns)
    table = feature_table(spoke, 60)
    rule = spoke.config.data.contract.columns[columns[1]]
    assert rule.max is not None
    table.loc[4, columns[1]] = rule.max * 10
    csv_lines = [",".join(repr(float(v)) for v in row) for row in table[columns].to_numpy()]
    csv_lines[9] = csv_lines[9].replace(csv_lines[9].split(",", 1)[0], "n/a", 1)
    csv_lines[11] = ",".join(csv_lines[11].split(",")[:-1])  # one value short
    records = table.to_dict(orient="records")  # ids ride along in JSON Lines
    records[20][columns[0]] = None
    json_lines = "\n".join(json.dumps(r) for r in records)

    container = Container(
        spoke, model_dir, {"SLIPWAY_MODEL_VERSION": "1", "SLIPWAY_TRANSFORM": "1"}
    )
    try:
        parameters = httpx.get(f"{container.url}/execution-parameters", timeout=5)
        as_csv = httpx.post(
            f"{container.url}/invocations",
            content="\n".join(csv_lines) + "\n",
            headers={"content-type": "text/csv", "accept": "application/jsonlines"},
            timeout=30,
        )
        as_jsonl = httpx.post(
            f"{container.url}/invocations",
            content=json_lines,
            headers={"content-type": "application/jsonlines"},
            timeout=30,
        )
    finally:
        container.stop()
    assert parameters.json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    assert as_csv.status_code == 200, as_csv.text
    answers = [json.loads(line) for line in as_csv.text.splitlines()]
    assert len(answers) == 60
    rejected = {i: a["rejected"] for i, a in enumerate(answers) if "rejected" in a}
    assert sorted(rejected) == [4, 9, 11]
    assert f"column {columns[1]!r}, row 4:" in rejected[4] and "above" in rejected[4]
    assert f"column {columns[0]!r}, row 9: expected a number" in rejected[9]
    assert "line 11: 29 values; expected 30" in rejected[11]

    model = mlflow.pyfunc.load_model(str(model_dir))
    good = [i for i in range(60) if i not in rejected]
    expected = model.predict(table.loc[good, columns].reset_index(drop=True))
    assert [answers[i]["prediction"] for i in good] == np.asarray(expected).tolist()

    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [i for i, a in enumerate(lines) if "rejected" in a] == [4, 20]
    assert "value is missing" in lines[20]["rejected"]
    assert lines[0]["prediction"] == answers[0]["prediction"]
