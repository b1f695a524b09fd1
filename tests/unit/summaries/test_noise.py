"""Noise levels of judged statistics against scipy, Monte-Carlo and the bootstrap."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from stream_monitor.summaries.noise import (
    auc_se,
    auc_se_binned,
    change_noise,
    chi2_isf,
    chi2_sf,
    f1_se,
    ks_critical,
    mean_se,
    merge_sparse_bins,
    min_expected_count,
    normal_isf,
    normal_sf,
    proportion_se,
    r2_se,
    rmse_se,
    stability_noise,
)

PROBABILITIES = np.concatenate((np.logspace(-12, math.log10(0.5), 25), [0.05, 0.01, 0.5]))


def test_chi2_matches_scipy_within_1e9_relative() -> None:
    for dof in range(1, 101):
        for p in PROBABILITIES:
            x = stats.chi2.isf(p, dof)
            assert chi2_isf(p, dof) == pytest.approx(x, rel=1e-9)
            assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9)


def test_chi2_sf_matches_scipy_below_and_above_the_mean() -> None:
    for dof in (1, 2, 3.5, 10, 50, 100):
        for x in (1e-8, 1e-3, 0.5, 1.0, 7.0, 40.0, 150.0, 400.0):
            assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9)


def test_normal_matches_scipy_within_1e9_relative() -> None:
    for p in PROBABILITIES:
        z = stats.norm.isf(p)
        assert normal_isf(p) == pytest.approx(z, rel=1e-9, abs=1e-15)
        assert normal_isf(1.0 - p) == pytest.approx(stats.norm.isf(1.0 - p), rel=1e-9, abs=1e-15)
        assert normal_sf(z) == pytest.approx(stats.norm.sf(z), rel=1e-9)


def test_ks_critical_matches_kolmogorovs_limit_law() -> None:
    for alpha in (1e-6, 1e-3, 0.01, 0.05, 0.2):
        scale = math.sqrt((300 + 700) / (300 * 700))
        exact = stats.kstwobign.isf(alpha) * scale
        assert ks_critical(alpha, 300, 700) == pytest.approx(exact, rel=1e-3)


def test_merged_bins_each_expect_enough() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        expected = rng.exponential(rng.uniform(0.5, 20), rng.integers(2, 60))
        for ordered in (True, False):
            labels = merge_sparse_bins(expected, 5.0, ordered)
            merged = np.bincount(labels, weights=expected)
            assert np.array_equal(np.unique(labels), np.arange(merged.size))
            if expected.sum() >= 5.0:
                assert merged.min() >= 5.0 - 1e-9
            if ordered:
                assert np.all(np.diff(labels) >= 0)


N_REFERENCE = 50_000
ALPHA = 0.01
REFERENCES, WINDOWS_EACH = 250, 80  # 20,000 no-change draws per case


def zipf(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1)
    return weights / weights.sum()


SHAPES = {
    "2 bins": (np.full(2, 1 / 2), True),
    "5 bins": (np.full(5, 1 / 5), True),
    "10 bins": (np.full(10, 1 / 10), True),
    "30 bins": (np.full(30, 1 / 30), True),
    "50 bins": (np.full(50, 1 / 50), True),
    "30 Zipf categories": (zipf(30), False),
    "50 Zipf categories": (zipf(50), False),
}


def null_psi(
    shares: np.ndarray, m: int, ordered: bool, min_expected: float | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """PSI of windows and references drawn from the same ``shares``, and each one's critical value.

    Every reference is merged by :func:`stability_noise` itself; the windows of a
    reference are then summed over its merged bins in one numpy expression,
    checked against :func:`stability_noise` on the first window.
    """
    rng = np.random.default_rng(seed)
    values, critical = [], []
    for _ in range(REFERENCES):
        reference = rng.multinomial(N_REFERENCE, shares).astype(float)
        windows = rng.multinomial(m, shares, size=WINDOWS_EACH).astype(float)
        first = stability_noise(reference, windows[0], ALPHA, min_expected=min_expected,
                                ordered=ordered)  # fmt: skip
        threshold = min_expected_count(ALPHA) if min_expected is None else min_expected
        labels = merge_sparse_bins(m * reference / N_REFERENCE, threshold, ordered)
        merge = np.zeros((shares.size, int(labels.max()) + 1))
        merge[np.arange(shares.size), labels] = 1.0
        e = np.maximum(reference @ merge / N_REFERENCE, 1e-4)
        a = np.maximum(windows @ merge / m, 1e-4)
        psi = np.sum((a - e) * np.log(a / e), axis=1)
        assert psi[0] == pytest.approx(first.statistic, rel=1e-12, abs=1e-15)
        assert first.bins == merge.shape[1]
        values.append(psi)
        critical.append(np.full(WINDOWS_EACH, first.critical_value))
    return np.concatenate(values), np.concatenate(critical)


# Critical value / Monte-Carlo 0.99 quantile, merging at min_expected_count(0.01) = 19.9
# (these seeds; "-" where fewer than 2 bins remain for most references: no test applies):
#   m:                     50    300   1000  10000 100000
#   2 bins               0.975 1.012 0.995 1.012 1.013
#   5 bins                 -   0.978 1.002 0.996 1.019
#   10 bins              0.999 0.962 1.006 1.005 1.029
#   30 bins              0.998 0.939 0.980 0.999 1.004
#   50 bins              1.002 0.967 0.939 1.006 0.993
#   30 Zipf categories     -   0.981 0.973 0.999 1.025
#   50 Zipf categories     -   0.985 0.979 0.990 0.991
# Merging at 5 expected events instead leaves small windows 12% to 57% below
# (50 bins at 300 events: 0.73, a false-alarm rate of 11% for 1%).
@pytest.mark.parametrize("m", [50, 300, 1000, 10_000, 100_000])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_critical_value_is_the_monte_carlo_quantile(shape: str, m: int) -> None:
    shares, ordered = SHAPES[shape]
    psi, critical = null_psi(shares, m, ordered, None, seed=m + len(shape))
    typical = float(np.median(critical))
    if math.isnan(typical):  # too few events for two bins: no test, never a false alarm
        return
    ratio = typical / float(np.quantile(psi, 1 - ALPHA))
    assert 0.9 <= ratio <= 1.1, ratio


def test_merging_keeps_sparse_categories_at_their_false_alarm_rate() -> None:
    """30 Zipf categories, 300 events, alpha 0.01; measured 0.154 unmerged, 0.0115 merged."""
    shares = zipf(30)
    unmerged, critical = null_psi(shares, 300, False, 0.0, seed=5)
    assert np.mean(unmerged > critical) > 10 * ALPHA
    merged, critical = null_psi(shares, 300, False, None, seed=5)
    assert ALPHA / 1.5 <= np.mean(merged > critical) <= 1.5 * ALPHA


def test_no_test_without_two_bins_or_events() -> None:
    assert math.isnan(stability_noise(np.array([10.0, 10.0]), np.zeros(2), 0.01).critical_value)
    assert math.isnan(stability_noise(np.zeros(2), np.array([3.0, 1.0]), 0.01).p_value)
    single = stability_noise(np.array([900.0, 100.0]), np.array([9.0, 1.0]), 0.01)
    assert single.bins == 1 and math.isnan(single.p_value)


BOOTSTRAPS = 2000


def bootstrap_sd(
    rng: np.random.Generator, statistic: Callable[..., np.ndarray], *columns: np.ndarray
) -> float:
    """Standard deviation of ``statistic`` over resampled events (200 resamples at a time)."""
    n = columns[0].size
    draws = []
    for _ in range(BOOTSTRAPS // 200):
        rows = rng.integers(0, n, (200, n))
        draws.append(statistic(*(column[rows] for column in columns)))
    return float(np.std(np.concatenate(draws)))


def binned_auc(negatives: np.ndarray, positives: np.ndarray) -> np.ndarray:
    below = np.cumsum(negatives, axis=-1) - negatives
    pairs = negatives.sum(-1) * positives.sum(-1)
    return ((below * positives).sum(-1) + 0.5 * (negatives * positives).sum(-1)) / pairs


def classification_ratios(n: int, seed: int) -> dict[str, float]:
    """Standard error / bootstrap for a 30%-prevalence classifier with beta scores."""
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.3
    score = np.where(label, rng.beta(4, 2, n), rng.beta(2, 4, n))
    cells = np.array(
        [np.sum(p & q) for p in (label, ~label) for q in (score >= 0.5, score < 0.5)], dtype=float
    )
    tp, fn, fp, tn = cells
    # Resampling events is resampling the cells of their counts.
    btp, bfn, bfp, btn = rng.multinomial(n, cells / n, size=BOOTSTRAPS).T.astype(float)
    ratios = {
        "accuracy": proportion_se((tp + tn) / n, n) / np.std((btp + btn) / n),
        "precision": proportion_se(tp / (tp + fp), tp + fp) / np.std(btp / (btp + bfp)),
        "recall": proportion_se(tp / (tp + fn), tp + fn) / np.std(btp / (btp + bfn)),
        "f1": f1_se(tp, fp, fn) / np.std(2 * btp / (2 * btp + bfp + bfn)),
    }
    bins = np.minimum((score * 100).astype(int), 99)
    histograms = np.zeros((2, 100))
    np.add.at(histograms, (label.astype(int), bins), 1.0)
    resampled = rng.multinomial(n, histograms.ravel() / n, size=BOOTSTRAPS).reshape(-1, 2, 100)
    auc_sd = np.std(binned_auc(resampled[:, 0].astype(float), resampled[:, 1].astype(float)))
    ratios["auc"] = auc_se_binned(histograms[0], histograms[1]) / auc_sd
    auc = float(binned_auc(histograms[0], histograms[1]))
    ratios["auc hanley-mcneil"] = auc_se(auc, histograms[1].sum(), histograms[0].sum()) / auc_sd
    log_loss = -np.where(label, np.log(score), np.log1p(-score))
    brier = (score - label) ** 2
    for name, loss in (("log loss", log_loss), ("brier", brier)):
        se = mean_se(loss.sum(), (loss**2).sum(), n)
        ratios[name] = se / bootstrap_sd(rng, lambda v: v.mean(axis=1), loss)
    return ratios


def regression_ratios(n: int, seed: int, heavy_tails: bool) -> dict[str, float]:
    """Standard error / bootstrap for a regression with normal or Student-t(5) noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    noise = rng.standard_t(5, n) * 0.8 if heavy_tails else rng.normal(0, 1, n)
    y = 2 * x + noise + 10
    err = 2 * x + 10.1 - y
    sq = err**2

    def r2(e: np.ndarray, label: np.ndarray) -> np.ndarray:
        return 1 - (e**2).mean(axis=1) / label.var(axis=1)

    r2_sd = bootstrap_sd(rng, r2, err, y)
    sums = (sq.sum(), (sq**2).sum(), n, y.sum(), (y**2).sum())
    full = {
        "y_sum_cube": (y**3).sum(),
        "y_sum_4th": (y**4).sum(),
        "err_sq_y_sum": (sq * y).sum(),
        "err_sq_y_sq_sum": (sq * y**2).sum(),
    }
    mae_sd = bootstrap_sd(rng, lambda e: np.abs(e).mean(axis=1), err)
    rmse_sd = bootstrap_sd(rng, lambda e: np.sqrt((e**2).mean(axis=1)), err)
    return {
        "mae": mean_se(np.abs(err).sum(), sq.sum(), n) / mae_sd,
        "rmse": rmse_se(sq.sum(), (sq**2).sum(), n) / rmse_sd,
        "r2": r2_se(*sums, **full) / r2_sd,
        "r2 var(y) known": r2_se(*sums) / r2_sd,
    }


# Standard error / bootstrap (2,000 resamples), these seeds, n = 300 / 5,000:
#   accuracy 0.995 / 0.967   precision 0.999 / 0.991   recall 0.996 / 1.009   f1 0.994 / 0.989
#   auc (DeLong, binned) 0.986 / 1.005   auc (Hanley-McNeil) 1.217 / 1.202
#   log loss 1.041 / 1.018   brier 1.021 / 0.968
#   normal: mae 0.978 / 0.999  rmse 1.007 / 1.001  r2 0.997 / 1.013 (var(y) known: 0.779 / 0.778)
#   t(5):   mae 0.987 / 1.035  rmse 0.989 / 1.011  r2 0.980 / 1.003 (var(y) known: 1.133 / 1.004)
@pytest.mark.parametrize("n", [300, 5000])
def test_classification_standard_errors_match_the_bootstrap(n: int) -> None:
    ratios = classification_ratios(n, seed=n)
    hanley_mcneil = ratios.pop("auc hanley-mcneil")
    assert all(0.85 <= ratio <= 1.15 for ratio in ratios.values()), ratios
    # Hanley-McNeil's exponential model overstates the noise of these beta scores.
    assert 1.0 <= hanley_mcneil <= 1.3, hanley_mcneil


@pytest.mark.parametrize("heavy_tails", [False, True])
@pytest.mark.parametrize("n", [300, 5000])
def test_regression_standard_errors_match_the_bootstrap(n: int, heavy_tails: bool) -> None:
    ratios = regression_ratios(n, seed=n + heavy_tails, heavy_tails=heavy_tails)
    known = ratios.pop("r2 var(y) known")
    assert all(0.85 <= ratio <= 1.15 for ratio in ratios.values()), ratios
    if not heavy_tails:  # the noise of var(y) is as large as that of MSE here
        assert 0.7 <= known <= 0.9, known


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_change_test_rejects_at_alpha_with_no_change(alpha: float) -> None:
    """Accuracy 0.85 of a 5,000-event reference and of independent 1,000-event windows.

    With both standard errors at the reference's accuracy (the no-change
    hypothesis) the rate is alpha (measured 1.04 and 1.16 alpha at 0.05 and 0.01,
    1.4 at 0.001); with each at its own accuracy it is below (0.90, 0.77, 0.5).
    """
    rng = np.random.default_rng(7)
    trials = 20_000
    reference = rng.binomial(5000, 0.85, trials) / 5000
    window = rng.binomial(1000, 0.85, trials) / 1000
    null = own = 0
    for r, w in zip(reference.tolist(), window.tolist(), strict=True):
        reference_se = proportion_se(r, 5000)
        null += change_noise(r - w, proportion_se(r, 1000), reference_se, alpha).p_value < alpha
        own += change_noise(r - w, proportion_se(w, 1000), reference_se, alpha).p_value < alpha
    tolerance = 4 * math.sqrt(trials * alpha * (1 - alpha))
    assert abs(null - trials * alpha) <= tolerance, null / trials
    assert own <= trials * alpha + tolerance, own / trials


def test_change_at_the_critical_value_has_p_value_alpha() -> None:
    noise = change_noise(0.0, 0.02, 0.01, 0.001)
    assert change_noise(noise.critical_value, 0.02, 0.01, 0.001).p_value == pytest.approx(0.001)
    assert math.isnan(change_noise(0.1, 0.0, 0.0, 0.01).p_value)
