"""Regression quality summary against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from stream_monitor.decode.columns import label_column
from stream_monitor.summaries.regression import RegressionSlots, r2
from tests.unit.summaries.test_summary_laws import assert_laws

TOLERANCE = 1e-9


def regression_data(n: int, seed: int, mean: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = mean + rng.normal(0.0, 3.0, n)
    prediction = y + rng.normal(0.4, 1.0, n)
    return prediction, y


def assert_matches_sklearn(quality, prediction: np.ndarray, y: np.ndarray) -> None:
    assert quality.labeled == len(y)
    assert quality.rmse == pytest.approx(skm.root_mean_squared_error(y, prediction), abs=TOLERANCE)
    assert quality.mae == pytest.approx(skm.mean_absolute_error(y, prediction), abs=TOLERANCE)
    assert quality.r2 == pytest.approx(skm.r2_score(y, prediction), abs=TOLERANCE)
    assert quality.mean_error == pytest.approx(np.mean(prediction - y), abs=TOLERANCE)


@pytest.mark.parametrize(("n", "seed"), [(10, 1), (1000, 2), (50000, 3)])
def test_matches_sklearn(n: int, seed: int) -> None:
    prediction, y = regression_data(n, seed)
    slots = RegressionSlots(11)
    assert_matches_sklearn(slots.value(assert_laws(slots, (prediction, y), seed)), prediction, y)


def test_merged_halves_match_sklearn_on_the_whole() -> None:
    prediction, y = regression_data(5000, 4)
    slots = RegressionSlots(0)
    a = slots.update(prediction[:1234], y[:1234])
    b = slots.update(prediction[1234:], y[1234:])
    assert_matches_sklearn(slots.value(slots.merge(a, b)), prediction, y)


def test_y_shift_keeps_r2_exact_for_large_label_means() -> None:
    prediction, y = regression_data(20000, 5, mean=1e6)
    shifted = RegressionSlots(0, y_shift=1e6)
    assert_matches_sklearn(shifted.value(shifted.update(prediction, y)), prediction, y)


def test_unlabeled_rows_are_skipped_and_empty_is_nan() -> None:
    slots = RegressionSlots(0)
    assert all(
        math.isnan(v) for v in vars(slots.value(np.zeros(6))).values() if isinstance(v, float)
    )
    vector = slots.update(np.array([1.0, 2.0, np.nan, 4.0]), np.array([1.5, np.nan, 3.0, 3.0]))
    assert_matches_sklearn(slots.value(vector), np.array([1.0, 4.0]), np.array([1.5, 3.0]))


def test_constant_labels_follow_sklearn() -> None:
    y = np.full(5, 2.0)
    assert r2(5, 0.0, y.sum(), (y * y).sum()) == skm.r2_score(y, y) == 1.0
    prediction = y + 0.5
    assert r2(5, 1.25, y.sum(), (y * y).sum()) == skm.r2_score(y, prediction) == 0.0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
        min_size=2,
        max_size=60,
    )
)
def test_property(rows: list[tuple[float, float]]) -> None:
    prediction = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    slots = RegressionSlots(2)
    q = slots.value(assert_laws(slots, (prediction, y)))
    assert q.rmse == pytest.approx(skm.root_mean_squared_error(y, prediction), rel=1e-9, abs=1e-9)
    assert q.mae == pytest.approx(skm.mean_absolute_error(y, prediction), rel=1e-9, abs=1e-9)
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst > 1e-6 * max(1.0, float(np.sum(y * y))):  # well-conditioned: exact to float rounding
        assert q.r2 == pytest.approx(skm.r2_score(y, prediction), rel=1e-6, abs=1e-9)


def test_label_lists_with_none() -> None:
    slots = RegressionSlots(0)
    q = slots.value(slots.update([1.0, 2.0, 3.0], label_column("regression", [1.5, None, "n/a"])))
    assert q.labeled == 1 and q.mae == 0.5
