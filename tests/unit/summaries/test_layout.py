"""The pane-vector layout checked against independent numpy and scikit-learn computations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stream_monitor.decode.batches import ModelBatch
from stream_monitor.summaries.classification import auc_error_bound
from stream_monitor.summaries.layout import EVENTS_SLOT, CounterLayout
from stream_monitor.summaries.reference import build_reference
from tests.conftest import make_config
from tests.unit.state.test_model_state import fraud_batch
from tests.unit.test_engine import START

#: Tolerance of the binned AUC (1000 score bins) against scikit-learn's exact AUC. Measured
#: on these batches: 2.4e-5 (stable traffic) and 1.2e-5 (drifted); the documented bound
#: (``auc_error_bound``, half the share of tied positive-negative pairs) is 1.1e-3 and 6.2e-4.
AUC_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference_batch() -> ModelBatch:
    return fraud_batch(make_config(), 3000, START, seed=21)


@pytest.fixture(scope="module")
def layout(reference_batch: ModelBatch) -> CounterLayout:
    """The fraud detector's layout, its reference profiled from ``reference_batch``."""
    model = make_config().model("fraud-detector")
    assert model is not None
    return CounterLayout(model, build_reference(model, [reference_batch], source="test"))


def one_pane(layout: CounterLayout, batch: ModelBatch) -> np.ndarray:
    """The vector of ``batch`` counted in one pane."""
    return layout.pane_deltas(batch, np.zeros(len(batch), dtype=np.int64), 1)[0]


def numeric_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of present values in right-closed bins between ``edges`` (outer bins open)."""
    present = values[~np.isnan(values)]
    below = (present[:, None] > np.asarray(edges)[None, :]).sum(axis=1)
    return np.bincount(below, minlength=len(edges) + 1)


def categorical_counts(values: Sequence[str | None], categories: Sequence[str]) -> np.ndarray:
    """Counts of each category, then of every other present value."""
    seen = Counter(value for value in values if value is not None)
    top = [seen[category] for category in categories]
    return np.array([*top, sum(seen.values()) - sum(top)])


def stability_index(expected: np.ndarray, actual: np.ndarray, epsilon: float) -> float:
    """``sum((a - e) * ln(a / e))`` over proportions floored at ``epsilon``."""
    e = np.maximum(expected / expected.sum(), epsilon)
    a = np.maximum(actual / actual.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def test_deltas_of_two_panes_sum_to_the_deltas_of_the_whole_batch(layout: CounterLayout) -> None:
    batch = fraud_batch(make_config(), 4000, START, seed=22)
    panes = np.random.default_rng(3).integers(0, 2, len(batch))
    split = layout.pane_deltas(batch, panes, 2)
    whole = one_pane(layout, batch)
    assert split.shape == (2, layout.width)
    assert [split[p][EVENTS_SLOT] for p in (0, 1)] == [np.sum(panes == p) for p in (0, 1)]
    floats = np.concatenate((layout.latency.sum_slots, layout.quality.sum_slots))
    counts = np.setdiff1d(np.arange(layout.width), floats)
    assert np.array_equal(split.sum(axis=0)[counts], whole[counts])  # counts add up exactly
    np.testing.assert_allclose(split.sum(axis=0)[floats], whole[floats], rtol=1e-12)
    for pane in (0, 1):
        alone = one_pane(layout, batch.take(panes == pane))
        assert np.array_equal(split[pane][counts], alone[counts])
        np.testing.assert_allclose(split[pane][floats], alone[floats], rtol=1e-12)


def test_stability_equals_an_independent_numpy_computation(
    layout: CounterLayout, reference_batch: ModelBatch
) -> None:
    window = fraud_batch(make_config(), 4000, START, seed=22, drifted=True)
    country = list(window.features["country"])
    for row in range(0, len(country), 40):  # 100 values the reference never saw
        country[row] = "ZZ"
    window.features["country"] = country
    stats = layout.stability(one_pane(layout, window))
    reference = layout.reference
    epsilon = layout.epsilon
    assert stats.events == len(window)

    edges = reference.features["amount"].edges
    expected = numeric_counts(np.asarray(reference_batch.features["amount"]), edges)
    assert expected.tolist() == reference.features["amount"].counts
    actual = numeric_counts(np.asarray(window.features["amount"]), edges)
    assert stats.csi["amount"] == pytest.approx(
        stability_index(expected, actual, epsilon), rel=1e-12
    )
    assert stats.csi["amount"] > 0.25  # drifted: the comparison is not between zeros

    categories = reference.features["country"].categories
    expected = categorical_counts(reference_batch.features["country"], categories)  # type: ignore[arg-type]
    assert expected.tolist() == reference.features["country"].counts
    actual = categorical_counts(country, categories)
    assert actual[-1] == 100
    assert stats.csi["country"] == pytest.approx(
        stability_index(expected, actual, epsilon), rel=1e-12
    )
    assert stats.csi["country"] > 0.25
    assert stats.new_category_ratio["country"] == 100 / len(country)

    scores = np.asarray(window.prediction)
    prediction_edges = reference.prediction.edges
    expected = numeric_counts(np.asarray(reference_batch.prediction), prediction_edges)
    actual = numeric_counts(scores, prediction_edges)
    assert stats.psi == pytest.approx(stability_index(expected, actual, epsilon), rel=1e-12)

    age = np.asarray(window.features["account_age_days"])
    assert stats.null_ratio["account_age_days"] == np.isnan(age).sum() / len(window) > 0


@pytest.mark.parametrize("drifted", [False, True])
def test_binary_quality_equals_scikit_learn(layout: CounterLayout, drifted: bool) -> None:
    batch = fraud_batch(make_config(), 4000, START, seed=22, drifted=drifted)
    vector = one_pane(layout, batch)
    values = layout.quality_values(vector)
    y = np.asarray(batch.labels, dtype=np.int64)
    scores = np.asarray(batch.prediction)
    threshold = layout.model.threshold
    predicted = (scores >= threshold).astype(np.int64)
    assert 0 < y.sum() < len(y) and 0 < predicted.sum() < len(y)
    assert values["labeled"] == len(y) and values["positives"] == y.sum()
    exact = {
        "accuracy": accuracy_score(y, predicted),
        "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0),
        "f1": f1_score(y, predicted, zero_division=0),
        "log_loss": log_loss(y, scores),
        "brier": brier_score_loss(y, scores),
    }
    for name, value in exact.items():
        assert values[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name

    pos, neg = layout.quality.histograms(vector)  # type: ignore[union-attr]
    gap = abs(values["auc"] - roc_auc_score(y, scores))
    assert gap <= auc_error_bound(pos, neg)
    assert gap <= AUC_TOLERANCE
    assert values["gini"] == pytest.approx(2 * values["auc"] - 1, abs=1e-15)

    ks = ks_2samp(scores[y == 1], scores[y == 0]).statistic
    largest_bin_share = max((pos / pos.sum()).max(), (neg / neg.sum()).max())
    assert values["ks"] <= ks + 1e-12 and ks - values["ks"] <= largest_bin_share
