"""Latency sketch quantiles against numpy, and the Prometheus histogram against direct counts.

Reference quantiles are ``np.quantile(values, q, method="inverted_cdf")`` (an
observed value: the smallest whose empirical CDF reaches ``q``); the sketch must
be within relative error ``alpha`` of it for values inside its range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.summaries.latency import DEFAULT_BOUNDS_S, LatencySlots, LogBuckets
from tests.unit.summaries.test_summary_laws import assert_laws

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


def latencies(n: int, seed: int) -> np.ndarray:
    """Log-normal latencies around 20 ms with a slow tail, all inside the sketch's range."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(np.log(20.0), 1.0, n)
    slow = rng.random(n) < 0.01
    x[slow] *= 50.0
    return np.clip(x, 0.02, 500_000.0)


def assert_quantiles_within(slots: LatencySlots, vector: np.ndarray, values: np.ndarray) -> None:
    alpha = slots.buckets.alpha
    got = slots.quantiles_s(vector, QS)
    for q in QS:
        expected_s = np.quantile(values, q, method="inverted_cdf") / 1000.0
        assert abs(got[q] - expected_s) <= alpha * expected_s * (1 + 1e-9), q


def assert_histogram_exact(slots: LatencySlots, vector: np.ndarray, values: np.ndarray) -> None:
    h = slots.histogram(vector)
    seconds = values / 1000.0
    for bound, cumulative in h.buckets:
        assert cumulative == np.count_nonzero(seconds <= bound), bound
    assert h.buckets[-1][0] == math.inf
    assert h.count == len(values)
    assert h.sum_s == pytest.approx(seconds.sum(), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize(
    ("n", "seed", "alpha"),
    [(1, 0, 0.01), (999, 1, 0.01), (50000, 2, 0.01), (20000, 3, 0.005), (5000, 4, 0.05)],
)
def test_quantiles_and_histogram(n: int, seed: int, alpha: float) -> None:
    values = latencies(n, seed)
    slots = LatencySlots(5, LogBuckets(alpha=alpha))
    whole = assert_laws(slots, (values,), seed)
    assert_quantiles_within(slots, whole, values)
    assert_histogram_exact(slots, whole, values)
    assert slots.value(whole).count == n


def test_merged_halves_match_the_whole() -> None:
    values = latencies(30000, 6)
    slots = LatencySlots(0)
    merged = slots.merge(slots.update(values[:10000]), slots.update(values[10000:]))
    assert_quantiles_within(slots, merged, values)
    assert_histogram_exact(slots, merged, values)


def test_out_of_range_values_clamp_and_invalid_values_are_skipped() -> None:
    b = LogBuckets(min_ms=0.01, max_ms=600_000.0)
    slots = LatencySlots(0, b)
    vector = slots.update(np.array([0.0, 0.001, 1e7, 2e7, -3.0, np.nan, np.inf]))
    counts = slots.counts(vector)
    assert counts[0] == 2 and counts[-1] == 2 and counts.sum() == 4
    assert b.quantile(counts, 0.0) == 0.01 and b.quantile(counts, 1.0) == 600_000.0
    h = slots.histogram(vector)
    assert h.count == 4 and h.buckets[0][1] == 2 and h.buckets[-2][1] == 2
    assert h.sum_s == pytest.approx((0.001 + 1e7 + 2e7) / 1000.0)


def test_bucket_bounds_are_le_inclusive() -> None:
    slots = LatencySlots(0)
    ms = np.array(DEFAULT_BOUNDS_S) * 1000.0
    cumulative = [c for _, c in slots.histogram(slots.update(ms)).buckets]
    assert cumulative == [*range(1, len(ms) + 1), len(ms)]


def test_empty_and_validation() -> None:
    slots = LatencySlots(0)
    empty = np.zeros(slots.width)
    assert all(math.isnan(v) for v in slots.quantiles_s(empty).values())
    assert slots.histogram(empty).count == 0
    for bad in ({"alpha": 0.0}, {"alpha": 1.0}, {"min_ms": 0.0}, {"min_ms": 5.0, "max_ms": 1.0}):
        with pytest.raises(ValueError):
            LogBuckets(**bad)
    with pytest.raises(ValueError):
        LatencySlots(0, bounds_s=(0.1, 0.1))
    with pytest.raises(ValueError):
        LogBuckets().quantile(np.ones(3), 1.5)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0.01, 600_000.0), min_size=1, max_size=200),
    st.floats(0.0, 1.0),
)
def test_relative_error_property(values: list[float], q: float) -> None:
    x = np.array(values)
    b = LogBuckets()
    counts = np.bincount(b.index(x), minlength=b.size)
    expected = np.quantile(x, q, method="inverted_cdf")
    assert abs(b.quantile(counts, q) - expected) <= b.alpha * expected * (1 + 1e-9)
