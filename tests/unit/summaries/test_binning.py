"""Binning: the block's histogram counts what a binary search per value counts, and block
reference profiles equal each column's own."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.summaries.binning import (
    MAX_BLOCK_EDGES,
    CategoricalBins,
    NumericBins,
    NumericBinsBlock,
)
from stream_monitor.summaries.reference import numeric_profile, numeric_profiles

EDGE = st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, math.inf, -math.inf])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(EDGE, max_size=MAX_BLOCK_EDGES), min_size=1, max_size=5),
    st.lists(EDGE | st.just(math.nan), min_size=0, max_size=30),
)
def test_histogram_equals_the_count_of_each_bin_index(
    edges: list[list[float]], values: list[float]
) -> None:
    bins = [NumericBins(e) for e in edges]
    rows = np.array([np.roll(values, shift) for shift in range(len(bins))], dtype=np.float64)
    rows = rows.reshape(len(bins), len(values))
    expected = np.concatenate(
        [np.bincount(b.index(row), minlength=b.size + 1) for b, row in zip(bins, rows, strict=True)]
    )
    got = NumericBinsBlock(bins).histogram(rows)
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)


def test_histogram_of_a_real_batch_sums_to_its_rows() -> None:
    rng = np.random.default_rng(5)
    bins = [
        NumericBins(np.quantile(rng.normal(size=500), np.linspace(0.1, 0.9, k))) for k in (9, 4)
    ]
    values = rng.normal(size=(2, 2000))
    values[1, ::7] = np.nan
    counts = NumericBinsBlock(bins).histogram(values)
    assert counts[: bins[0].size + 1].sum() == 2000 and counts[bins[0].size + 1 :].sum() == 2000
    assert counts[-1] == len(values[1, ::7])


VALUE = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.sampled_from([0.0, 1.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(VALUE | st.just(math.nan), min_size=12, max_size=12), max_size=6),
    st.integers(2, 12),
)
def test_block_profiles_equal_profiles_of_each_column(
    columns: list[list[float]], bins: int
) -> None:
    """Reference edges and counts from one quantile call over a block are each column's own,
    with or without nulls (the block's ``np.quantile`` works on each row alone)."""
    arrays = [np.array(column, dtype=np.float64) for column in columns]
    assert numeric_profiles(arrays, bins) == [numeric_profile(a, bins) for a in arrays]


def test_block_profiles_of_a_real_reference_equal_each_columns() -> None:
    rng = np.random.default_rng(11)
    columns = [
        np.round(rng.normal(50, 10, 5000), 3),
        np.round(rng.lognormal(3.0, 0.8, 5000), 2),
        np.where(rng.random(5000) < 0.35, 0.0, np.round(rng.exponential(100.0, 5000), 2)),
        rng.poisson(3.0, 5000).astype(np.float64),
    ]
    columns[1][rng.random(5000) < 0.05] = np.nan
    profiles = numeric_profiles(columns, 10)
    assert profiles == [numeric_profile(column, 10) for column in columns]
    assert profiles[1].nulls > 0 and len(profiles[2].edges) < 9  # a null column; merged edges


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=3),
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), max_size=40),
    st.integers(0, 50),
)
def test_categorical_positions_are_bins_from_start_and_new_values_go_to_other(
    categories: list[str], values: list[str | None], start: int
) -> None:
    """Each value's position is its bin plus ``start``: a top category's own bin, ``other``
    for a known or new value, the null bin for None; new values are flagged."""
    known = [*categories, "d"]
    bins = CategoricalBins(categories, known)
    positions, new = bins.index(values, start)
    expected = [
        bins.null_index
        if value is None
        else categories.index(value)
        if value in categories
        else bins.other_index
        for value in values
    ]
    assert positions.tolist() == [start + bin_ for bin_ in expected]
    assert new.tolist() == [value is not None and value not in known for value in values]
    again, _ = bins.index(values, start)  # the lookup made for this start is kept
    assert again.tolist() == positions.tolist()
