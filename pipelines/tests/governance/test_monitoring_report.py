"""Labels joined to served rows on [batch] id_columns, and the performance they give."""

from __future__ import annotations

import pandas as pd
import pytest

from slipway.pipelines.config import SpokeConfig, parse_config
from slipway.pipelines.governance.monitoring_report import LabelsError, join_labels, performance
from tests.hub import VALID_SPOKE_TOML as VALID


def config(extra: str = "") -> SpokeConfig:
    return parse_config(VALID + extra)


SERVED = pd.DataFrame(
    {
        "tenure": [1, 2, 3],
        "plan": ["a", "b", "a"],
        "_prediction": [1, 0, 1],
        "_id": ["r1", "r2", "r3"],
    }
)


def test_labels_join_on_the_id_columns_and_score_the_labelled_rows():
    labels = pd.DataFrame({"request_id": ["r1", "r3", "r9"], "churned": [1, 0, 1]})
    spoke = config('\n[batch]\nid_columns = ["request_id"]\n')
    joined = join_labels(SERVED, labels, spoke)  # the capture's InferenceId fills request_id
    assert joined["request_id"].tolist() == ["r1", "r3"]
    perf = performance(SERVED, labels, spoke)
    assert perf is not None and (perf.labelled, perf.served) == (2, 3)
    assert perf.metrics["accuracy"] == 0.5 and perf.coverage == pytest.approx(2 / 3)


def test_a_join_that_cannot_be_made_says_what_is_missing():
    labels = pd.DataFrame({"request_id": ["r1"], "churned": [1]})
    with pytest.raises(LabelsError, match=r"\[batch\] id_columns"):
        join_labels(SERVED, labels, config())
    spoke = config('\n[batch]\nid_columns = ["request_id"]\n')
    with pytest.raises(LabelsError, match="lacks columns"):
        join_labels(SERVED, labels.drop(columns="churned"), spoke)
    with pytest.raises(LabelsError, match="more than one label"):
        join_labels(SERVED, pd.concat([labels, labels]), spoke)
    two = config('\n[batch]\nid_columns = ["day", "customer"]\n')
    with pytest.raises(LabelsError, match="served rows carry no"):
        join_labels(SERVED, labels.assign(day=1, customer=2), two)
