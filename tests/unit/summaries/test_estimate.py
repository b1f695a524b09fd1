"""The label-free quality estimate: calibration map, expected confusion counts and AUC, noise.

Each value is checked against an independent computation: the expected counts
written as explicit sums over the bins, the expected AUC as scikit-learn's AUC
of bin scores weighted by the expected positives and negatives, and the
standard errors against the spread of many simulated windows.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from stream_monitor.summaries.calibration import (
    CalibrationMap,
    build_calibration,
    pooled_starts,
    score_bin,
)
from stream_monitor.summaries.classification import BinaryQualitySlots
from stream_monitor.summaries.estimate import (
    EstimateSlots,
    expected_quality,
    map_standard_errors,
    predicted_positive,
    ratio_parts,
    window_standard_errors,
)

BINS = 1000


def calibrated(n: int, rng: np.random.Generator, a: float = 2.0, b: float = 5.0):
    """``n`` perfectly calibrated scores (Beta(a, b)) and labels drawn from them."""
    score = rng.beta(a, b, n)
    return score, (rng.random(n) < score).astype(float)


def direct_estimate(histogram: np.ndarray, shares: np.ndarray, threshold: float) -> dict:
    """Expected counts as explicit sums over the bins, the AUC by scikit-learn (weighted)."""
    tp = fp = tn = fn = 0.0
    for i, (count, share) in enumerate(zip(histogram, shares, strict=True)):
        low, high = i / len(histogram), (i + 1) / len(histogram)
        positive_part = min(1.0, max(0.0, (high - threshold) / (high - low)))
        tp += count * share * positive_part
        fp += count * (1 - share) * positive_part
        fn += count * share * (1 - positive_part)
        tn += count * (1 - share) * (1 - positive_part)
    middles = (np.arange(len(histogram)) + 0.5) / len(histogram)
    y = np.r_[np.ones(len(histogram)), np.zeros(len(histogram))]
    weights = np.r_[histogram * shares, histogram * (1 - shares)]
    auc = skm.roc_auc_score(y, np.r_[middles, middles], sample_weight=weights)
    return {
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "auc": auc,
        "accuracy": (tp + tn) / (tp + fp + tn + fn),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }  # fmt: skip


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.4567])
def test_expected_counts_and_auc_match_a_direct_computation(threshold: float) -> None:
    rng = np.random.default_rng(1)
    reference_scores, reference_labels = calibrated(20_000, rng)
    calibration = build_calibration(reference_scores, reference_labels, 50, 200)
    assert calibration is not None
    slots = EstimateSlots(7, calibration, threshold)
    window = rng.beta(3.0, 4.0, 5000)
    window[::97] = np.nan  # not counted
    vector = slots.update(window)
    histogram = np.histogram(window[np.isfinite(window)], bins=50, range=(0, 1))[0]
    np.testing.assert_array_equal(slots.histogram(vector), histogram)
    found = slots.value(vector)
    expected = direct_estimate(histogram.astype(float), calibration.shares, threshold)
    for name, value in expected.items():
        assert getattr(found, name) == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert found.events == np.isfinite(window).sum()


def test_a_calibrated_model_is_estimated_within_a_hundredth_on_100k_events() -> None:
    """Map from 50k labeled reference events; 100k window events of another score mix."""
    rng = np.random.default_rng(7)
    calibration = build_calibration(*calibrated(50_000, rng), BINS, 100)
    assert calibration is not None
    score, label = calibrated(100_000, rng, a=3.0, b=3.0)  # covariate shift
    slots = EstimateSlots(0, calibration, 0.5)
    estimate = slots.value(slots.update(score))
    realized = BinaryQualitySlots(0, BINS, 0.5).value(
        BinaryQualitySlots(0, BINS, 0.5).update(score, label)
    )
    y, predicted = label.astype(int), (score >= 0.5).astype(int)
    assert realized.auc == pytest.approx(skm.roc_auc_score(y, score), abs=0.002)
    for name in ("auc", "accuracy", "precision", "recall", "f1"):
        assert abs(getattr(estimate, name) - getattr(realized, name)) <= 0.01, name
    assert abs(estimate.tp - ((predicted == 1) & (y == 1)).sum()) <= 0.01 * len(y)


def test_sparse_bins_are_pooled_until_each_group_holds_enough_labels() -> None:
    rng = np.random.default_rng(3)
    score, label = calibrated(3000, rng)
    label[rng.random(3000) < 0.5] = np.nan  # unlabeled events count only in the histogram
    calibration = build_calibration(score, label, BINS, 150)
    assert calibration is not None
    labeled = np.isfinite(label)
    assert sum(calibration.labeled) == labeled.sum()
    assert sum(calibration.positives) == label[labeled].sum()
    assert sum(calibration.histogram) == 3000
    assert min(calibration.labeled) >= 150
    assert list(calibration.starts) == sorted(set(calibration.starts))
    groups = np.searchsorted(calibration.starts, score_bin(score[labeled], BINS), side="right") - 1
    np.testing.assert_array_equal(np.bincount(groups), calibration.labeled)
    np.testing.assert_allclose(
        np.bincount(groups, weights=score[labeled]), calibration.score_sums, rtol=1e-12
    )
    assert pooled_starts(np.array([0, 0, 7, 0, 2]), 5).tolist() == [0]  # short last group
    assert pooled_starts(np.array([0, 0, 7, 0, 5]), 5).tolist() == [0, 3]


def test_no_map_without_labels_or_without_both_classes() -> None:
    score = np.linspace(0.0, 1.0, 500)
    assert build_calibration(score, np.full(500, np.nan), BINS, 10) is None
    assert build_calibration(score, np.zeros(500), BINS, 10) is None
    few = np.full(500, np.nan)
    few[:9] = [1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert build_calibration(score, few, BINS, 10) is None
    few[9] = 0
    assert build_calibration(score, few, BINS, 10) is not None


def test_the_map_round_trips_and_a_damaged_one_is_refused() -> None:
    calibration = build_calibration(*calibrated(4000, np.random.default_rng(2)), 100, 100)
    assert calibration is not None
    assert CalibrationMap.from_dict(calibration.to_dict()) == calibration
    damaged = {**calibration.to_dict(), "labeled": [0, *calibration.labeled[1:]]}
    with pytest.raises(ValueError, match="calibration map"):
        CalibrationMap.from_dict(damaged)
    with pytest.raises(ValueError):
        CalibrationMap.from_dict({**calibration.to_dict(), "histogram": [1, 2]})


def test_the_standard_errors_match_the_spread_of_simulated_windows_and_maps() -> None:
    """Window noise: 400 windows of 3000 events from one score distribution; map noise:
    400 maps from references of 4000 labeled events. Each standard error within 15%."""
    rng = np.random.default_rng(11)
    calibration = build_calibration(*calibrated(4000, rng), 200, 200)
    assert calibration is not None
    above = predicted_positive(0.4, 200)
    probabilities = np.diff(np.linspace(0, 1, 201) ** 0.8)  # a fixed score mix
    windows = rng.multinomial(3000, probabilities / probabilities.sum(), 400)
    values = [expected_quality(h, calibration.shares, above).metrics() for h in windows]
    typical = probabilities / probabilities.sum() * 3000
    window_se = window_standard_errors(typical, calibration, ratio_parts(calibration.shares, above))
    maps = [build_calibration(*calibrated(4000, rng), 200, 200) for _ in range(400)]
    mapped = [expected_quality(typical, m.shares, above).metrics() for m in maps if m]
    map_se = [map_standard_errors(typical, m, ratio_parts(m.shares, above)) for m in maps[:50] if m]
    for name in ("auc", "accuracy", "precision", "recall", "f1"):
        spread = np.std([v[name] for v in values], ddof=1)
        assert window_se[name] == pytest.approx(spread, rel=0.15), name
        map_spread = np.std([v[name] for v in mapped], ddof=1)
        assert np.median([se[name] for se in map_se]) == pytest.approx(map_spread, rel=0.25), name
