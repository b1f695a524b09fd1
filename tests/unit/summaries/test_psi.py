"""PSI/CSI and reference binning against an independent numpy computation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stream_monitor.summaries.binning import NumericBins
from stream_monitor.summaries.psi import StabilityIndex, psi
from stream_monitor.summaries.reference import categorical_profile, numeric_profile

EPS = 1e-4


def independent_psi(reference: np.ndarray, window: np.ndarray, edges: np.ndarray) -> float:
    """PSI written out from SPEC section 6 with explicit interval masks."""
    bounds = np.concatenate(([-np.inf], edges, [np.inf]))

    def shares(values: np.ndarray) -> np.ndarray:
        counts = np.array(
            [np.sum((values > lo) & (values <= hi)) for lo, hi in itertools.pairwise(bounds)],
            dtype=float,
        )
        return np.maximum(counts / counts.sum(), EPS)

    e, a = shares(reference), shares(window)
    return float(sum((ai - ei) * np.log(ai / ei) for ai, ei in zip(a, e, strict=True)))


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5, 2.0])
def test_numeric_psi_matches_independent_computation(shift: float) -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 5000)
    window = rng.normal(shift, 1.2, 3000)
    profile = numeric_profile(reference, bins=10)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1])
    assert np.allclose(profile.edges, edges, rtol=0, atol=0)
    bins = NumericBins(profile.edges)
    counts = np.bincount(bins.index(window), minlength=bins.size)
    assert psi(np.array(profile.counts), counts[: bins.size]) == pytest.approx(
        independent_psi(reference, window, edges), abs=1e-9
    )


def test_zero_inflated_feature_merges_duplicate_edges() -> None:
    rng = np.random.default_rng(2)
    reference = np.where(rng.random(4000) < 0.6, 0.0, rng.exponential(50, 4000))
    profile = numeric_profile(reference, bins=10)
    assert len(profile.edges) < 9
    assert profile.edges[0] == 0.0
    assert profile.counts[0] == np.sum(reference <= 0.0)
    window = np.where(rng.random(2000) < 0.3, 0.0, rng.exponential(80, 2000))
    bins = NumericBins(profile.edges)
    counts = np.bincount(bins.index(window), minlength=bins.size)
    assert psi(np.array(profile.counts), counts) == pytest.approx(
        independent_psi(reference, window, np.array(profile.edges)), abs=1e-9
    )


def test_categorical_csi_with_other_bin_and_empty_bins() -> None:
    rng = np.random.default_rng(3)
    shares = [0.3, 0.2, 0.16, 0.13, 0.1, 0.07, 0.04]
    reference = [str(v) for v in rng.choice(list("abcdefg"), 3000, p=shares)]
    profile = categorical_profile(reference, top_k=4, max_known=100)
    assert sorted(profile.categories) == ["a", "b", "c", "d"]
    window = [str(v) for v in rng.choice(list("abcz"), 1000)]
    bins = profile.bins()
    index, new = bins.index(window)  # type: ignore[arg-type]
    counts = np.bincount(index, minlength=bins.size)
    top = profile.categories
    ref_share = (
        np.array([reference.count(c) for c in top] + [sum(r in "efg" for r in reference)]) / 3000
    )
    win_share = np.array([window.count(c) for c in top] + [window.count("z")]) / 1000
    e, a = np.maximum(ref_share, EPS), np.maximum(win_share, EPS)
    assert psi(np.array(profile.counts), counts[: bins.size]) == pytest.approx(
        float(np.sum((a - e) * np.log(a / e))), abs=1e-9
    )
    assert int(new.sum()) == window.count("z")


def test_psi_is_zero_for_identical_and_symmetric_in_extremes() -> None:
    counts = np.array([10, 20, 30, 40])
    assert psi(counts, counts * 3) == pytest.approx(0.0, abs=1e-15)
    assert psi(counts, np.zeros(4)) > 0  # an empty window is all-epsilon, not a crash


def column_by_column_psi(reference: np.ndarray, window: np.ndarray, epsilon: float) -> float:
    """The index as it was computed one column at a time before :class:`StabilityIndex`."""

    def shares(counts: np.ndarray) -> np.ndarray:
        total = counts.sum()
        if total <= 0:
            return np.full(counts.shape, epsilon)
        return np.maximum(counts / total, epsilon)

    e = shares(reference.astype(np.float64))
    a = shares(window.astype(np.float64))
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.mark.parametrize("seed", range(5))
def test_many_columns_at_once_equal_each_column_to_the_last_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 15, 12)
    references = [rng.integers(0, 50, size) * (rng.random() > 0.1) for size in sizes]
    windows = [rng.integers(0, 9, size) * (rng.random() > 0.2) for size in sizes]
    index, totals = StabilityIndex(references, 1e-4).read(np.concatenate(windows).astype(float))
    for value, total, reference, window in zip(index, totals, references, windows, strict=True):
        assert value == column_by_column_psi(reference, window, 1e-4)
        assert value == psi(reference, window)
        assert total == window.sum()
