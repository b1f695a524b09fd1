"""Binary and multiclass quality summaries against scikit-learn and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn import metrics as skm

from stream_monitor.summaries.classification import (
    OTHER_CLASS,
    BinaryQualitySlots,
    MulticlassQualitySlots,
    auc_error_bound,
    auc_from_histograms,
    ks_from_histograms,
)
from tests.unit.summaries.test_summary_laws import assert_laws

AUC_TOLERANCE = 0.002
KS_TOLERANCE = 0.005


def binary_data(n: int, seed: int, prevalence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Scores from Beta(4, 2) for positives and Beta(2, 4) for negatives."""
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, prevalence, n)
    score = np.where(y == 1, rng.beta(4, 2, n), rng.beta(2, 4, n))
    return score, y


def sklearn_binary(score: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (score >= threshold).astype(int)
    return {
        "auc": skm.roc_auc_score(y, score),
        "ks": ks_2samp(score[y == 1], score[y == 0]).statistic,
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "recall": skm.recall_score(y, pred, zero_division=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
        "log_loss": skm.log_loss(y, score, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, score),
    }


def assert_matches_sklearn(quality, expected: dict[str, float]) -> None:
    assert abs(quality.auc - expected["auc"]) <= AUC_TOLERANCE
    assert quality.gini == pytest.approx(2 * quality.auc - 1, abs=1e-15)
    assert abs(quality.ks - expected["ks"]) <= KS_TOLERANCE
    for name in ("accuracy", "precision", "recall", "f1"):
        assert getattr(quality, name) == pytest.approx(expected[name], rel=0, abs=1e-12), name
    assert quality.log_loss == pytest.approx(expected["log_loss"], rel=0, abs=1e-9)
    assert quality.brier == pytest.approx(expected["brier"], rel=0, abs=1e-9)


@pytest.mark.parametrize(
    ("n", "seed", "threshold", "prevalence"),
    [(5000, 1, 0.5, 0.3), (20000, 2, 0.35, 0.05), (800, 3, 0.7, 0.5), (3000, 4, 0.5, 0.9)],
)
def test_binary_matches_sklearn_and_scipy(
    n: int, seed: int, threshold: float, prevalence: float
) -> None:
    score, y = binary_data(n, seed, prevalence)
    slots = BinaryQualitySlots(start=7, threshold=threshold)
    whole = assert_laws(slots, (score, y), seed)
    expected = sklearn_binary(score, y, threshold)
    quality = slots.value(whole)
    assert quality.labeled == n and quality.positives == int(y.sum())
    assert_matches_sklearn(quality, expected)


def test_binary_merged_halves_match_sklearn_on_the_whole() -> None:
    score, y = binary_data(6000, 11)
    slots = BinaryQualitySlots(0)
    merged = slots.merge(slots.update(score[:2500], y[:2500]), slots.update(score[2500:], y[2500:]))
    assert_matches_sklearn(slots.value(merged), sklearn_binary(score, y, 0.5))


def test_binned_auc_within_its_bound_and_ks_never_above_exact() -> None:
    score, y = binary_data(4000, 5)
    for bins in (10, 50, 1000):
        slots = BinaryQualitySlots(0, score_bins=bins)
        pos, neg = slots.histograms(slots.update(score, y))
        exact_auc = skm.roc_auc_score(y, score)
        assert abs(auc_from_histograms(pos, neg) - exact_auc) <= auc_error_bound(pos, neg) + 1e-12
        exact_ks = ks_2samp(score[y == 1], score[y == 0]).statistic
        assert ks_from_histograms(pos, neg) <= exact_ks + 1e-12


def test_rows_without_label_or_score_are_not_counted() -> None:
    slots = BinaryQualitySlots(0, score_bins=10)
    vector = slots.update(
        np.array([0.9, np.nan, 0.2, 0.4, np.inf, 0.7]),
        np.array([1.0, 1.0, np.nan, 2.0, 0.0, 0.0]),
    )
    assert slots.value(vector).labeled == 2
    assert vector.sum() - vector[slots.sum_slots].sum() == 4  # 2 rows x (bin + confusion)


def test_scores_outside_unit_interval_land_in_the_end_bins() -> None:
    slots = BinaryQualitySlots(0, score_bins=10)
    hist, _ = slots.positions(np.array([-0.5, 0.0, 1.0, 3.0]), np.array([0, 0, 1, 1]))
    assert hist.tolist() == [0, 0, 19, 19]


def test_zero_division_and_empty_windows() -> None:
    slots = BinaryQualitySlots(0, threshold=0.5)
    empty = slots.value(np.zeros(slots.width))
    assert empty.labeled == 0
    assert all(math.isnan(v) for v in (empty.auc, empty.ks, empty.f1, empty.log_loss, empty.brier))

    q = slots.value(slots.update(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0])))  # one class
    assert math.isnan(q.auc) and math.isnan(q.ks)
    y, pred = np.zeros(3), np.zeros(3)
    assert q.precision == skm.precision_score(y, pred, zero_division=0) == 0.0
    assert q.recall == skm.recall_score(y, pred, zero_division=0) == 0.0
    assert q.f1 == skm.f1_score(y, pred, zero_division=0) == 0.0
    assert q.accuracy == 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 1.0), st.sampled_from([0, 1])),
        min_size=2,
        max_size=80,
    ),
    st.sampled_from([0.25, 0.5, 0.8]),
)
def test_binary_property(rows: list[tuple[float, int]], threshold: float) -> None:
    score = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    slots = BinaryQualitySlots(3, score_bins=100, threshold=threshold)
    whole = assert_laws(slots, (score, y))
    q = slots.value(whole)
    pred = (score >= threshold).astype(int)
    assert q.f1 == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)
    assert q.accuracy == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert q.brier == pytest.approx(skm.brier_score_loss(y, score), abs=1e-9)
    clipped = np.clip(score, 1e-15, 1 - 1e-15)
    expected_ll = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    assert q.log_loss == pytest.approx(expected_ll, rel=1e-9, abs=1e-9)
    if 0 < y.sum() < len(y):
        pos, neg = slots.histograms(whole)
        exact = skm.roc_auc_score(y, score)
        assert abs(q.auc - exact) <= auc_error_bound(pos, neg) + 1e-12


def multiclass_data(n: int, seed: int) -> tuple[list[str | None], list[str | None]]:
    rng = np.random.default_rng(seed)
    names = np.array(["cat", "dog", "emu", "yak", "owl"])
    truth = names[rng.choice(5, n, p=[0.4, 0.3, 0.15, 0.1, 0.05])]
    noisy = rng.random(n) < 0.3
    pred = np.where(noisy, names[rng.integers(0, 5, n)], truth)
    return list(pred), list(truth)


@pytest.mark.parametrize("classes", [["cat", "dog", "emu"], ["cat", "dog", "emu", "yak", "owl"]])
def test_multiclass_matches_sklearn(classes: list[str]) -> None:
    pred, truth = multiclass_data(3000, 8)
    pred[5], truth[9] = None, None  # unlabeled / missing rows are not counted
    slots = MulticlassQualitySlots(4, classes)
    q = slots.value(assert_laws(slots, (pred, truth)))

    keep = [i for i in range(len(pred)) if pred[i] is not None and truth[i] is not None]
    known = set(classes)
    p = [pred[i] if pred[i] in known else OTHER_CLASS for i in keep]
    t = [truth[i] if truth[i] in known else OTHER_CLASS for i in keep]
    names = [*classes, OTHER_CLASS]
    assert q.labeled == len(keep)
    assert q.accuracy == pytest.approx(skm.accuracy_score(t, p), abs=1e-12)
    macro = skm.f1_score(t, p, average="macro", zero_division=0)
    assert q.macro_f1 == pytest.approx(macro, abs=1e-12)
    weighted = skm.f1_score(t, p, average="weighted", zero_division=0)
    assert q.weighted_f1 == pytest.approx(weighted, abs=1e-12)
    precision = skm.precision_score(t, p, labels=names, average=None, zero_division=0)
    recall = skm.recall_score(t, p, labels=names, average=None, zero_division=0)
    np.testing.assert_allclose([q.precision[c] for c in names], precision, atol=1e-12)
    np.testing.assert_allclose([q.recall[c] for c in names], recall, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdz"), st.sampled_from("abcdz")),
        min_size=1,
        max_size=60,
    )
)
def test_multiclass_property(rows: list[tuple[str, str]]) -> None:
    pred = [r[0] for r in rows]
    truth = [r[1] for r in rows]
    slots = MulticlassQualitySlots(0, ["a", "b", "c", "d", "z"])
    q = slots.value(assert_laws(slots, (pred, truth)))
    assert q.accuracy == pytest.approx(skm.accuracy_score(truth, pred), abs=1e-12)
    assert q.macro_f1 == pytest.approx(
        skm.f1_score(truth, pred, average="macro", zero_division=0), abs=1e-12
    )
    assert q.weighted_f1 == pytest.approx(
        skm.f1_score(truth, pred, average="weighted", zero_division=0), abs=1e-12
    )


def test_multiclass_validation_and_empty() -> None:
    with pytest.raises(ValueError):
        MulticlassQualitySlots(0, ["a", "a"])
    with pytest.raises(ValueError):
        MulticlassQualitySlots(0, [OTHER_CLASS])
    slots = MulticlassQualitySlots(0, ["a"])
    q = slots.value(np.zeros(slots.width))
    assert q.labeled == 0 and math.isnan(q.accuracy) and math.isnan(q.macro_f1)


def test_binary_validation() -> None:
    with pytest.raises(ValueError):
        BinaryQualitySlots(0, score_bins=0)
    with pytest.raises(ValueError):
        BinaryQualitySlots(0, threshold=1.5)


def test_label_lists_with_none_match_nan_arrays() -> None:
    slots = BinaryQualitySlots(0, score_bins=20)
    from_list = slots.update([0.9, 0.3, 0.6, 0.2], [True, None, 0, 1])
    from_array = slots.update(np.array([0.9, 0.3, 0.6, 0.2]), np.array([1.0, np.nan, 0.0, 1.0]))
    assert np.array_equal(from_list, from_array)
    assert slots.value(from_list).labeled == 3
