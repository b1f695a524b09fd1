"""The laws of every summary, run over a registry of them all.

Each summary follows :class:`stream_monitor.summaries.slots.Summary`. For every
entry of :data:`REGISTRY` (a summary, a seeded data generator and an
independent computation of its value with numpy, scipy or scikit-learn):

- ``update`` of a batch equals the rows counted one at a time;
- ``merge`` is addition: the merge of two parts equals the update of their union,
  and the whole minus a part is the rest;
- the pane counter (``pane_deltas``) splits a batch into panes that sum to it;
- the state round-trips through bytes, bit for bit, and so does the value;
- the value equals the independent computation within the stated tolerance.

:func:`assert_laws` is also what the per-summary test files run on their data.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn import metrics as skm

from stream_monitor.summaries.binning import NumericBins
from stream_monitor.summaries.calibration import build_calibration
from stream_monitor.summaries.classification import (
    OTHER_CLASS,
    BinaryQualitySlots,
    MulticlassQualitySlots,
)
from stream_monitor.summaries.column_bins import ColumnSlots
from stream_monitor.summaries.estimate import EstimateSlots
from stream_monitor.summaries.latency import LatencySlots
from stream_monitor.summaries.reference import ColumnProfile, categorical_profile
from stream_monitor.summaries.regression import RegressionSlots
from stream_monitor.summaries.slots import PaneCounts, Summary, pane_deltas

SINGLES = 300  # rows counted one at a time (the batch-vs-singles law; a loop is slow)
PSI_EPSILON = 1e-4

Columns = tuple[Any, ...]


def _rows(columns: Columns, rows: slice) -> Columns:
    return tuple(column[rows] for column in columns)


def assert_laws(summary: Summary[Any], columns: Columns, seed: int = 0) -> np.ndarray:
    """Check the laws of ``summary`` on ``columns``; returns the vector of all of them."""
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    whole = summary.update(*columns)
    assert whole.shape == (summary.start + summary.width,)
    assert np.all(whole[: summary.start] == 0), "slots before start must stay untouched"

    head = min(n, SINGLES)
    singles = np.zeros_like(whole)
    for i in range(head):
        singles = summary.merge(singles, summary.update(*_rows(columns, slice(i, i + 1))))
    batch = summary.update(*_rows(columns, slice(0, head)))
    np.testing.assert_allclose(singles, batch, rtol=1e-12, atol=1e-9)

    cut = int(rng.integers(0, n + 1))
    first = summary.update(*_rows(columns, slice(0, cut)))
    rest = summary.update(*_rows(columns, slice(cut, n)))
    np.testing.assert_allclose(summary.merge(first, rest), whole, rtol=1e-12, atol=1e-9)
    # Subtracting cancels: the error of whole - first is a few ulps of whole (sums of
    # fourth powers reach 1e12 here), however small the difference.
    cancel = 8 * np.finfo(np.float64).eps * np.abs(whole)
    np.testing.assert_array_less(np.abs(whole - first - rest), 1e-6 + 1e-9 * np.abs(rest) + cancel)

    n_panes = 4
    panes = pane_deltas(
        len(whole),
        rng.integers(0, n_panes, n),
        n_panes,
        summary.positions(*columns),
        summary.sum_slots,
        summary.sums(*columns),
    )
    np.testing.assert_allclose(panes.sum(axis=0), whole, rtol=1e-12, atol=1e-9)

    restored = summary.from_bytes(summary.to_bytes(whole))
    assert restored.tobytes() == whole.tobytes()
    assert repr(summary.value(restored)) == repr(summary.value(whole))
    return whole


@dataclass(frozen=True)
class Entry:
    """One summary of the registry, its data and its independent value."""

    summary: Summary[Any]
    data: Callable[[int, np.random.Generator], Columns]
    check: Callable[[Any, Columns], None]


# Column bins -------------------------------------------------------------------------

NUMERIC_EDGES = [-1.0, 0.0, 0.0, 0.5, 2.0]
NUMERIC_REFERENCE = ColumnProfile("numeric", [10, 30, 25, 20, 15], 0, edges=NUMERIC_EDGES)


def independent_psi(reference: np.ndarray, window: np.ndarray) -> float:
    """SPEC section 6, written out term by term."""
    e = np.maximum(reference / reference.sum(), PSI_EPSILON)
    a = np.maximum(window / window.sum(), PSI_EPSILON) if window.sum() else np.full_like(e, 1e-4)
    return math.fsum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))


def numeric_data(n: int, rng: np.random.Generator) -> Columns:
    values = rng.normal(0.3, 1.2, n)
    values[rng.random(n) < 0.05] = np.nan
    values[rng.random(n) < 0.1] = 0.0  # on a repeated edge
    return (values,)


def numeric_check(stats: Any, columns: Columns) -> None:
    (values,) = columns
    present = values[~np.isnan(values)]
    bounds = [-np.inf, *sorted(set(NUMERIC_EDGES)), np.inf]
    pairs = itertools.pairwise(bounds)
    counts = np.array([np.sum((present > lo) & (present <= hi)) for lo, hi in pairs])
    assert stats.counts == counts.tolist()  # exact
    assert stats.nulls == np.isnan(values).sum() and stats.new_values == 0
    reference = np.array(NUMERIC_REFERENCE.counts, dtype=float)
    assert stats.psi == pytest.approx(independent_psi(reference, counts), abs=1e-12)


CATEGORY_NAMES = list("abcdefg")
CATEGORY_REFERENCE = categorical_profile(
    [c for c, k in zip(CATEGORY_NAMES, [30, 20, 15, 12, 10, 8, 5], strict=True) for _ in range(k)],
    top_k=4,
    max_known=100,
)


def categorical_data(n: int, rng: np.random.Generator) -> Columns:
    values = rng.choice([*CATEGORY_NAMES, "z", "y"], n).astype(object)
    values[rng.random(n) < 0.05] = None
    return (values.tolist(),)


def categorical_check(stats: Any, columns: Columns) -> None:
    (values,) = columns
    seen = Counter(values)
    top = CATEGORY_REFERENCE.categories
    other = sum(k for v, k in seen.items() if v is not None and v not in top)
    counts = [float(seen[c]) for c in top] + [float(other)]
    assert stats.counts == counts  # exact
    assert stats.nulls == seen[None]
    assert stats.new_values == sum(k for v, k in seen.items() if v in ("z", "y"))
    reference = np.array(CATEGORY_REFERENCE.counts, dtype=float)
    assert stats.psi == pytest.approx(independent_psi(reference, np.array(counts)), abs=1e-12)


# Latency -----------------------------------------------------------------------------

LATENCY_QS = (0.5, 0.9, 0.99)


def latency_data(n: int, rng: np.random.Generator) -> Columns:
    values = np.clip(rng.lognormal(np.log(20.0), 1.0, n), 0.02, 500_000.0)
    values[rng.random(n) < 0.02] = np.nan  # not counted
    return (values,)


def latency_check(stats: Any, columns: Columns) -> None:
    (values,) = columns
    valid = values[np.isfinite(values)]
    assert stats.count == len(valid)  # exact
    assert stats.sum_s == pytest.approx(valid.sum() / 1000.0, rel=1e-12)
    for q in LATENCY_QS:  # within the sketch's relative error alpha = 1%
        expected = np.quantile(valid, q, method="inverted_cdf") / 1000.0
        assert abs(stats.quantiles_s[q] - expected) <= 0.01 * expected * (1 + 1e-9)


# Quality -----------------------------------------------------------------------------

THRESHOLD = 0.4


def binary_data(n: int, rng: np.random.Generator) -> Columns:
    y = rng.binomial(1, 0.3, n).astype(float)
    score = np.where(y == 1, rng.beta(4, 2, n), rng.beta(2, 4, n))
    y[rng.random(n) < 0.05] = np.nan  # no label: not counted
    return score, y


def binary_check(quality: Any, columns: Columns) -> None:
    score, y = columns
    labeled = ~np.isnan(y)
    score, y = score[labeled], y[labeled].astype(int)
    pred = (score >= THRESHOLD).astype(int)
    assert quality.labeled == len(y) and quality.positives == y.sum()  # exact
    # Binned (1000 score bins): AUC within 0.002, KS within 0.005; the rest exact to rounding.
    assert quality.auc == pytest.approx(skm.roc_auc_score(y, score), abs=0.002)
    ks = ks_2samp(score[y == 1], score[y == 0]).statistic
    assert quality.ks == pytest.approx(ks, abs=0.005)
    assert quality.accuracy == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert quality.precision == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
    assert quality.recall == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert quality.f1 == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert quality.log_loss == pytest.approx(skm.log_loss(y, score), abs=1e-9)
    assert quality.brier == pytest.approx(skm.brier_score_loss(y, score), abs=1e-9)


CLASSES = ["cat", "dog", "emu"]


def multiclass_data(n: int, rng: np.random.Generator) -> Columns:
    names = np.array([*CLASSES, "yak"], dtype=object)
    truth = names[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])]
    pred = np.where(rng.random(n) < 0.3, names[rng.integers(0, 4, n)], truth)
    truth[rng.random(n) < 0.05] = None
    return pred.tolist(), truth.tolist()


def multiclass_check(quality: Any, columns: Columns) -> None:
    pred, truth = columns
    kept = [(p, t) for p, t in zip(pred, truth, strict=True) if t is not None]
    p = [v if v in CLASSES else OTHER_CLASS for v, _ in kept]
    t = [v if v in CLASSES else OTHER_CLASS for _, v in kept]
    names = [*CLASSES, OTHER_CLASS]
    assert quality.labeled == len(kept)  # exact
    assert quality.accuracy == pytest.approx(skm.accuracy_score(t, p), abs=1e-12)
    assert quality.macro_f1 == pytest.approx(skm.f1_score(t, p, average="macro"), abs=1e-12)
    weighted = skm.f1_score(t, p, average="weighted")
    assert quality.weighted_f1 == pytest.approx(weighted, abs=1e-12)
    recall = skm.recall_score(t, p, labels=names, average=None, zero_division=0)
    np.testing.assert_allclose([quality.recall[c] for c in names], recall, atol=1e-12)


def regression_data(n: int, rng: np.random.Generator) -> Columns:
    y = 50.0 + rng.normal(0.0, 3.0, n)
    prediction = y + rng.normal(0.4, 1.0, n)
    y[rng.random(n) < 0.05] = np.nan
    return prediction, y


def regression_check(quality: Any, columns: Columns) -> None:
    prediction, y = columns
    labeled = ~np.isnan(y)
    prediction, y = prediction[labeled], y[labeled]
    assert quality.labeled == len(y)  # exact
    rmse = skm.root_mean_squared_error(y, prediction)
    assert quality.rmse == pytest.approx(rmse, abs=1e-9)
    assert quality.mae == pytest.approx(skm.mean_absolute_error(y, prediction), abs=1e-9)
    assert quality.r2 == pytest.approx(skm.r2_score(y, prediction), abs=1e-9)
    assert quality.mean_error == pytest.approx(np.mean(prediction - y), abs=1e-9)


ESTIMATE_BINS = 100
ESTIMATE_MAP = build_calibration(
    *binary_data(4000, np.random.default_rng(5)), ESTIMATE_BINS, min_labeled=100
)
assert ESTIMATE_MAP is not None


def estimate_data(n: int, rng: np.random.Generator) -> Columns:
    score = rng.beta(2.5, 3.0, n)
    score[rng.random(n) < 0.03] = np.nan  # no score: not counted
    return (score,)


def estimate_check(quality: Any, columns: Columns) -> None:
    (score,) = columns
    present = score[np.isfinite(score)]
    counts = np.histogram(present, bins=ESTIMATE_BINS, range=(0.0, 1.0))[0]
    p = ESTIMATE_MAP.shares
    above = (np.arange(ESTIMATE_BINS) + 0.5) / ESTIMATE_BINS >= THRESHOLD  # on a bin edge
    tp, fp = np.sum(counts * p * above), np.sum(counts * (1 - p) * above)
    fn, tn = np.sum(counts * p * ~above), np.sum(counts * (1 - p) * ~above)
    assert quality.events == len(present)  # exact
    for name, value in {"tp": tp, "fp": fp, "fn": fn, "tn": tn}.items():
        assert getattr(quality, name) == pytest.approx(value, rel=1e-9), name
    assert quality.accuracy == pytest.approx((tp + tn) / len(present), rel=1e-9)
    assert quality.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-9)
    y = np.r_[np.ones(ESTIMATE_BINS), np.zeros(ESTIMATE_BINS)]
    middles = np.tile((np.arange(ESTIMATE_BINS) + 0.5) / ESTIMATE_BINS, 2)
    auc = skm.roc_auc_score(y, middles, sample_weight=np.r_[counts * p, counts * (1 - p)])
    assert quality.auc == pytest.approx(auc, rel=1e-9)


REGISTRY: dict[str, Entry] = {
    "numeric column": Entry(
        ColumnSlots("x", 3, NumericBins(NUMERIC_EDGES), NUMERIC_REFERENCE),
        numeric_data,
        numeric_check,
    ),
    "categorical column": Entry(
        ColumnSlots("c", 0, CATEGORY_REFERENCE.bins(), CATEGORY_REFERENCE),
        categorical_data,
        categorical_check,
    ),
    "latency": Entry(LatencySlots(7), latency_data, latency_check),
    "binary": Entry(BinaryQualitySlots(5, threshold=THRESHOLD), binary_data, binary_check),
    "multiclass": Entry(MulticlassQualitySlots(2, CLASSES), multiclass_data, multiclass_check),
    "regression": Entry(RegressionSlots(4, y_shift=50.0), regression_data, regression_check),
    "estimate": Entry(EstimateSlots(6, ESTIMATE_MAP, THRESHOLD), estimate_data, estimate_check),
}


@pytest.mark.parametrize("name", list(REGISTRY))
@pytest.mark.parametrize(("n", "seed"), [(1, 0), (2000, 1), (20000, 2)])
def test_summary_laws_and_value(name: str, n: int, seed: int) -> None:
    entry = REGISTRY[name]
    columns = entry.data(n, np.random.default_rng(seed))
    whole = assert_laws(entry.summary, columns, seed)
    if n > 1:  # one row: too few for the reference metrics (one class, no spread)
        entry.check(entry.summary.value(whole), columns)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_merge_of_many_parts_is_the_union(name: str) -> None:
    entry = REGISTRY[name]
    rng = np.random.default_rng(9)
    columns = entry.data(5000, rng)
    cuts = np.sort(rng.integers(0, 5000, 6))
    parts = [slice(a, b) for a, b in zip([0, *cuts], [*cuts, 5000], strict=True)]
    merged = np.zeros(entry.summary.start + entry.summary.width)
    for part in parts:
        merged = entry.summary.merge(merged, entry.summary.update(*_rows(columns, part)))
    np.testing.assert_allclose(merged, entry.summary.update(*columns), rtol=1e-12, atol=1e-9)
    entry.check(entry.summary.value(merged), columns)


def test_state_of_another_width_is_refused() -> None:
    data = LatencySlots(0).to_bytes(np.zeros(2000))
    with pytest.raises(ValueError):
        RegressionSlots(0).from_bytes(data)


@pytest.mark.parametrize("rows", [0, 1, 500])
def test_one_pane_sums_are_row_order_sums_to_the_bit(rows: int) -> None:
    """Sums of one pane's rows are added in row order, one row at a time, as they are when
    the rows spread over several panes (a batch's vector must not depend on the path)."""
    rng = np.random.default_rng(3)
    sums = rng.lognormal(0.0, 3.0, (rows, 3)) * rng.choice([-1.0, 1.0], (rows, 3))
    sums[::11, 1] = -0.0
    slots = np.array([2, 5, 6])
    counts = PaneCounts(8, np.zeros(rows, dtype=np.int64), 1)
    counts.add_sums(slots, sums)
    expected = np.zeros(8)
    for row in sums:
        for slot, value in zip(slots.tolist(), row.tolist(), strict=True):
            expected[slot] += value
    assert counts.deltas()[0].tobytes() == expected.tobytes()
