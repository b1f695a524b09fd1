"""The block's histogram (one pane, sorted columns) counts what a binary search per value counts."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.summaries.binning import MAX_BLOCK_EDGES, NumericBins, NumericBinsBlock

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
