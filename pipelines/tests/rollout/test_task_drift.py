"""Prediction drift fits the task: classes are counted, a regressor's numbers are binned."""

from __future__ import annotations

import numpy as np

from slipway.pipelines.statistics import binned_counts, compare_predictions, psi


def test_a_regressors_predictions_are_binned_at_the_champions_deciles():
    rng = np.random.default_rng(7)
    champion = (150 + 50 * rng.standard_normal(400)).tolist()
    counts_b, counts_c, labels = binned_counts(champion, champion)
    assert len(labels) == 10 and labels[0].startswith("<= ")
    assert sum(counts_b) == 400 and all(35 <= c <= 45 for c in counts_b)
    assert counts_b == counts_c


def test_the_same_regressor_is_stable_and_a_shifted_one_drifts():
    rng = np.random.default_rng(11)
    champion = (150 + 50 * rng.standard_normal(300)).tolist()
    same = (150 + 50 * rng.standard_normal(300)).tolist()
    shifted = [value + 0.5 * (max(champion) - min(champion)) + 50 for value in same]
    assert psi(champion, same) < 0.25
    assert psi(champion, shifted) > 1.0
    drift = compare_predictions(shifted, champion, alpha=0.001, max_psi=0.25)
    assert drift.breach
    assert not compare_predictions(same, champion, alpha=0.001, max_psi=0.25).breach


def test_a_multiclass_classifier_is_counted_per_class():
    champion = [0, 1, 2] * 100
    counts_b, counts_c, labels = binned_counts(champion, [2] * 300)
    assert labels == ["0", "1", "2"]
    assert counts_b == [100, 100, 100] and counts_c == [0, 0, 300]
    assert psi(champion, [2] * 300) > 1.0
