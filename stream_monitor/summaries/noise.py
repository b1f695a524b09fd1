"""Sampling noise of judged statistics: critical values, p-values, standard errors.

A statistic is judged against the noise it has at the window's sample size.
This module holds that noise and nothing else (pure functions of counts and
sums, numpy and the standard library only).

**Distributions.** :func:`chi2_sf` is the regularized upper incomplete gamma
``Q(k/2, x/2)``, by its power series below ``a + 1`` and by its continued fraction
(modified Lentz) above (Numerical Recipes, 6.2). The inverses solve
``ln sf(x) = ln p`` by Newton's method kept inside a shrinking bracket, so they
are exact to rounding for ``p`` down to ``1e-12`` and beyond.

**PSI/CSI.** With no change, a window of ``m`` events and a reference of ``n``
drawn from the same ``k`` bin proportions give ``PSI ~ (1/n + 1/m) chi2(k - 1)``
(PSI is the symmetric Kullback-Leibler divergence, about Pearson's statistic of
the two proportions; Yurdakul 2018). That holds only when every bin's expected
window count ``m e_i`` is not small. Below it two things break: the count's
law is far from normal, and a bin empty in the window is floored at
``epsilon``, adding about ``e ln(e / epsilon)`` (0.02 for a 0.5% category,
whatever ``m``), which is above the critical value for small windows. So
:func:`stability_noise` first merges, for the window being judged, the bins
whose expected count is below ``min_expected``: numeric bins into their
neighbours (adjacent, left to right, a short last group leftwards), categories
into one pooled bin. The statistic is then the PSI of the merged bins, with the
same ``epsilon`` floor as the reported index. Merging was chosen over
smoothing because it keeps the index's formula and the null law both as they
are; smoothing changes the index itself. The count a bin needs grows as
``alpha`` falls (:func:`min_expected_count`): 5 expected events are not enough
even at 0.01 (50 bins at 300 events: 11% false alarms for 1%), and the exact
law of two and three bins gives 5 to 8 times ``alpha`` at 1e-6 with 20 expected
events per bin, 1.6 to 2.1 times with 72. Measured (the tests, 20,000 draws,
``alpha = 0.01``, reference of 50,000): the critical value is within 7% of the
Monte-Carlo quantile for 2 to 50 bins and windows of 50 to 100,000 events,
Zipf categories included; without merging a 30-category Zipf feature at 300
events is past it 15% of the time.

**Quality.** Standard errors come from the counts and sums a pane holds:
binomial for proportions, the delta method for F1, RMSE and R^2,
Hanley-McNeil or DeLong (from the histograms) for AUC, and the two-sample
Kolmogorov critical value for KS.
:func:`change_noise` turns a change and the two standard errors (window and
reference) into a one-sided z-test.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NAN = float("nan")
_TINY = 1e-300
_REL_TOL = 1e-15
_MAX_ITER = 500
MIN_ALPHA = 1e-12


def _regularized_gamma_q(a: float, x: float) -> float:
    """``Q(a, x) = Gamma(a, x) / Gamma(a)``, the regularized upper incomplete gamma."""
    if x <= 0.0:
        return 1.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        for step in range(1, _MAX_ITER):
            term *= x / (a + step)
            total += term
            if abs(term) < abs(total) * _REL_TOL:
                break
        return 1.0 - total * math.exp(log_prefactor)
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for step in range(1, _MAX_ITER):
        an = -step * (step - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1.0) < _REL_TOL:
            break
    return math.exp(log_prefactor) * fraction


def chi2_sf(x: float, dof: float) -> float:
    """``P(X > x)`` for ``X ~ chi2(dof)``.

    >>> round(chi2_sf(3.841458820694124, 1), 12)
    0.05
    >>> chi2_sf(0.0, 4), math.isnan(chi2_sf(1.0, 0))
    (1.0, True)
    """
    if not dof > 0 or math.isnan(x):
        return NAN
    return _regularized_gamma_q(dof / 2.0, x / 2.0)


def _chi2_pdf(x: float, dof: float) -> float:
    """Density of ``chi2(dof)`` at ``x > 0``."""
    a = dof / 2.0
    return math.exp((a - 1.0) * math.log(x) - x / 2.0 - a * math.log(2.0) - math.lgamma(a))


def normal_sf(z: float) -> float:
    """``P(Z > z)`` for a standard normal ``Z``.

    >>> normal_sf(0.0), round(normal_sf(1.6448536269514722), 12)
    (0.5, 0.05)
    """
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _normal_pdf(z: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _solve_log_sf(
    sf: Callable[[float], float],
    pdf: Callable[[float], float],
    p: float,
    x: float,
    low: float,
    high: float,
) -> float:
    """``x`` in ``(low, high)`` with ``sf(x) == p`` for a decreasing ``sf``.

    Newton's method on ``ln sf(x) - ln p`` (slope ``-pdf / sf``), falling back to
    bisection (or doubling while ``high`` is infinite) when a step leaves the
    bracket, which shrinks at every evaluation.
    """
    target = math.log(p)
    for _ in range(_MAX_ITER):
        tail = sf(x)
        if tail == p:
            return x
        if tail > p:
            low = x
        else:
            high = x
        density = pdf(x)
        step = (math.log(tail) - target) * tail / density if density > 0 and tail > 0 else NAN
        guess = x + step
        if not low < guess < high:
            guess = 2.0 * x + 1.0 if math.isinf(high) else 0.5 * (low + high)
        if abs(guess - x) <= 4e-16 * max(abs(x), 1.0) or guess in (low, high):
            return guess
        x = guess
    return x


@functools.lru_cache(maxsize=4096)  # a model's levels repeat at every judged window
def normal_isf(p: float) -> float:
    """``z`` with ``normal_sf(z) == p``.

    >>> round(normal_isf(0.05), 12), normal_isf(0.5)
    (1.644853626951, 0.0)
    """
    if not 0.0 < p < 1.0:
        return math.inf if p == 0.0 else -math.inf if p == 1.0 else NAN
    if p > 0.5:
        return -normal_isf(1.0 - p)
    if p == 0.5:
        return 0.0
    t = math.sqrt(-2.0 * math.log(p))
    # Abramowitz and Stegun 26.2.23 (error below 4.5e-4) as the starting point.
    start = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (
        1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))
    )
    return _solve_log_sf(normal_sf, _normal_pdf, p, start, 0.0, math.inf)


@functools.lru_cache(maxsize=4096)  # a model's levels repeat at every judged window
def chi2_isf(p: float, dof: float) -> float:
    """``x`` with ``chi2_sf(x, dof) == p``.

    >>> round(chi2_isf(0.05, 1), 9), round(chi2_isf(0.01, 9), 9)
    (3.841458821, 21.665994333)
    """
    if not dof > 0 or not 0.0 < p < 1.0:
        return NAN if not dof > 0 or not 0.0 <= p <= 1.0 else math.inf if p == 0.0 else 0.0
    # Wilson-Hilferty as the starting point.
    h = 2.0 / (9.0 * dof)
    start = max(dof * (1.0 - h + normal_isf(p) * math.sqrt(h)) ** 3, 1e-3)
    return _solve_log_sf(
        lambda x: chi2_sf(x, dof), lambda x: _chi2_pdf(x, dof), p, start, 0.0, math.inf
    )


def per_test_alpha(budget_per_day: float, tests_per_day: float) -> float:
    """Significance level of one test: ``budget / tests``, within ``[1e-12, 0.5]``.

    A budget of false alerts per day spread evenly over the tests made per day
    (Bonferroni). At most one test a day is assumed below one.

    >>> per_test_alpha(0.1, 1000), per_test_alpha(5, 2), per_test_alpha(0, 10)
    (0.0001, 0.5, 1e-12)
    """
    return min(max(budget_per_day / max(tests_per_day, 1.0), MIN_ALPHA), 0.5)


@dataclass(frozen=True)
class StabilityNoise:
    """A PSI/CSI value with its noise at the window's size (see the module docstring).

    ``scale`` is ``1/n + 1/m`` (NaN when untested); the p-value is computed when first
    read (a value short of its warn line, most of them, never needs it).
    """

    statistic: float
    critical_value: float
    bins: int
    scale: float

    @functools.cached_property
    def p_value(self) -> float:
        """Probability of a PSI at least this large with no change (NaN when untested)."""
        if math.isnan(self.scale):
            return NAN
        return chi2_sf(self.statistic / self.scale, self.bins - 1)


def min_expected_count(alpha: float) -> float:
    """Expected window count a bin needs for the chi-square law of PSI to hold at ``alpha``.

    ``max(5, 3 chi2_isf(alpha, 1))``: 20 at 0.01, 45 at 1e-4, 72 at 1e-6. A bin
    with ``c`` expected events passes the critical value alone once it is short
    by about ``sqrt(c q)`` events (``q = chi2_isf(alpha, 1)``), where PSI's
    logarithm weighs a shortfall by ``1 + sqrt(q / c) / 3`` or so more than the
    chi-square law assumes; ``c = 3 q`` keeps that within about 20%, and an empty
    bin (probability ``exp(-c)``) far below ``alpha``.

    >>> min_expected_count(0.5), round(min_expected_count(0.01), 2)
    (5.0, 19.9)
    """
    return max(5.0, 3.0 * chi2_isf(alpha, 1))


def merge_sparse_bins(expected: np.ndarray, min_expected: float, ordered: bool) -> np.ndarray:
    """The merged bin of each bin, so that every merged bin expects ``min_expected``.

    ``expected`` are the window's expected counts per bin. Ordered bins are
    merged with their neighbours left to right, and a short last group joins
    the one before it; unordered bins below ``min_expected`` are pooled into one
    bin, which joins the smallest other bin if it is still short.

    >>> merge_sparse_bins(np.array([1.0, 6, 2, 2, 2, 1]), 5, ordered=True).tolist()
    [0, 0, 1, 1, 1, 1]
    >>> merge_sparse_bins(np.array([1.0, 6, 2, 7, 3]), 5, ordered=False).tolist()
    [2, 0, 2, 1, 2]
    >>> merge_sparse_bins(np.array([1.0, 6, 2, 7]), 5, ordered=False).tolist()
    [0, 0, 0, 1]
    """
    if ordered:
        groups, group, filled = [], 0, 0.0
        for count in expected.tolist():
            groups.append(group)
            filled += count
            if filled >= min_expected:
                group, filled = group + 1, 0.0
        if group and groups[-1] == group:  # a short last group joins the one before
            groups = [min(g, group - 1) for g in groups]
        return np.array(groups, dtype=np.intp)
    labels = np.empty(expected.size, dtype=np.intp)
    sparse = expected < min_expected
    kept = np.flatnonzero(~sparse)
    labels[kept] = np.arange(kept.size)
    labels[sparse] = kept.size
    if sparse.any() and kept.size and expected[sparse].sum() < min_expected:
        labels[sparse] = labels[kept[np.argmin(expected[kept])]]
    return labels


def _shares(counts: np.ndarray, total: float, epsilon: float) -> np.ndarray:
    """Each bin's share of ``total`` (the counts' sum), floored at ``epsilon``."""
    return np.maximum(counts / total, epsilon) if total > 0 else np.full(counts.size, epsilon)


def _psi(reference: np.ndarray, window: np.ndarray, n: float, m: float, epsilon: float) -> float:
    """PSI of two count vectors of totals ``n`` and ``m``, proportions floored at ``epsilon``
    (as in ``psi.py``)."""
    e, a = _shares(reference, n, epsilon), _shares(window, m, epsilon)
    return float(((a - e) * np.log(a / e)).sum())


def stability_noise(
    reference: np.ndarray,
    window: np.ndarray,
    alpha: float,
    epsilon: float = 1e-4,
    min_expected: float | None = None,
    ordered: bool = True,
) -> StabilityNoise:
    """PSI of ``window`` against ``reference`` (counts, same bins) and its noise.

    Bins whose expected window count is below ``min_expected`` (by default
    :func:`min_expected_count` of ``alpha``) are merged first
    (:func:`merge_sparse_bins`). The critical value is
    ``(1/n + 1/m) chi2_isf(alpha, bins - 1)`` and the p-value
    ``chi2_sf(PSI / (1/n + 1/m), bins - 1)``, with ``n`` and ``m`` the reference's
    and the window's totals; both are NaN when fewer than 2 bins remain or a
    total is 0 (then no bins are merged).

    >>> reference, window = np.array([500, 300, 150, 40, 10]), np.array([48, 32, 17, 3, 0])
    >>> noise = stability_noise(reference, window, alpha=0.01)  # the last three bins merge
    >>> noise.bins, round(noise.statistic, 4), round(noise.critical_value, 4)
    (3, 0.0021, 0.1013)
    >>> round(noise.p_value, 3)
    0.909
    """
    reference = np.asarray(reference, dtype=np.float64)
    window = np.asarray(window, dtype=np.float64)
    n, m = float(reference.sum()), float(window.sum())
    if n > 0 and m > 0:
        if min_expected is None:
            min_expected = min_expected_count(alpha)
        labels = merge_sparse_bins(m * reference / n, min_expected, ordered)
        size = int(labels.max()) + 1
        reference = np.bincount(labels, weights=reference, minlength=size)
        window = np.bincount(labels, weights=window, minlength=size)
    statistic = _psi(reference, window, n, m, epsilon)  # merging keeps the (whole) totals
    bins = int(reference.size)
    if bins < 2 or not (n > 0 and m > 0):
        return StabilityNoise(statistic, NAN, bins, NAN)
    scale = 1.0 / n + 1.0 / m
    return StabilityNoise(statistic, scale * chi2_isf(alpha, bins - 1), bins, scale)


def proportion_se(p: float, n: float) -> float:
    """Binomial standard error ``sqrt(p (1 - p) / n)`` of a proportion of ``n``.

    Accuracy (``n`` labeled events), precision (``n = tp + fp``), recall
    (``n = tp + fn``); NaN when ``n`` is not positive.

    >>> proportion_se(0.9, 100), math.isnan(proportion_se(0.5, 0))
    (0.03, True)
    """
    return math.sqrt(p * (1.0 - p) / n) if n > 0 else NAN


def f1_se(tp: float, fp: float, fn: float) -> float:
    """Delta-method standard error of ``F1 = 2 tp / (2 tp + fp + fn)``.

    With multinomial counts, and F1 a ratio of homogeneous counts,
    ``var = sum_i (dF1/dx_i)^2 x_i = 4 tp (fp + fn) (tp + fp + fn) / (2 tp + fp + fn)^4``
    (true negatives do not enter). NaN when ``2 tp + fp + fn`` is 0.

    >>> round(f1_se(80, 20, 20), 6), math.isnan(f1_se(0, 0, 0))
    (0.030984, True)
    """
    total = 2.0 * tp + fp + fn
    if not total > 0:
        return NAN
    return 2.0 * math.sqrt(tp * (fp + fn) * (tp + fp + fn)) / total**2


def auc_se(auc: float, positives: float, negatives: float) -> float:
    """Hanley-McNeil (1982) standard error of an AUC from ``positives`` and ``negatives``.

    ``var = (A (1 - A) + (P - 1)(Q1 - A^2) + (N - 1)(Q2 - A^2)) / (P N)``
    with ``Q1 = A / (2 - A)`` and ``Q2 = 2 A^2 / (1 + A)``; NaN without both classes.

    >>> round(auc_se(0.8, 100, 400), 6), math.isnan(auc_se(0.8, 0, 10))
    (0.027917, True)
    """
    if not (positives > 0 and negatives > 0):
        return NAN
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    variance = (
        auc * (1.0 - auc)
        + (positives - 1.0) * (q1 - auc * auc)
        + (negatives - 1.0) * (q2 - auc * auc)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def auc_se_binned(negatives: np.ndarray, positives: np.ndarray) -> float:
    """DeLong standard error of the binned AUC, from the two score histograms.

    Bins in increasing score; a tie counts one half. Each positive's placement
    is the share of negatives below its bin plus half those in it, and each
    negative's the share of positives above plus half; ``var = var(placement of
    positives) / P + var(placement of negatives) / N`` (DeLong et al. 1988). It
    needs no model of the score distributions, unlike :func:`auc_se`, which the
    tests measure up to 20% too large on beta-distributed scores. NaN without
    both classes.

    >>> round(auc_se_binned(np.array([30, 50, 20]), np.array([10, 30, 60])), 6)
    0.033496
    """
    negatives = np.asarray(negatives, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.float64)
    total_negatives, total_positives = float(negatives.sum()), float(positives.sum())
    if not (total_negatives > 0 and total_positives > 0):
        return NAN
    below = np.cumsum(negatives) - negatives
    above = total_positives - np.cumsum(positives)
    of_positives = (below + 0.5 * negatives) / total_negatives
    of_negatives = (above + 0.5 * positives) / total_positives
    auc = float(positives @ of_positives) / total_positives
    spread_positives = float(positives @ (of_positives - auc) ** 2) / total_positives
    spread_negatives = float(negatives @ (of_negatives - auc) ** 2) / total_negatives
    return math.sqrt(spread_positives / total_positives + spread_negatives / total_negatives)


def ks_critical(alpha: float, positives: float, negatives: float) -> float:
    """Two-sample KS critical value ``c(alpha) sqrt((n1 + n2) / (n1 n2))``.

    ``c(alpha) = sqrt(-ln(alpha / 2) / 2)``, the first term of Kolmogorov's
    limit law; NaN without both samples.

    >>> round(ks_critical(0.05, 100, 100), 6), math.isnan(ks_critical(0.05, 0, 100))
    (0.192065, True)
    """
    if not (positives > 0 and negatives > 0 and 0.0 < alpha < 1.0):
        return NAN
    c = math.sqrt(-math.log(alpha / 2.0) / 2.0)
    return c * math.sqrt((positives + negatives) / (positives * negatives))


def mean_se(total: float, total_sq: float, n: float) -> float:
    """Standard error of a mean from its sum and sum of squares: ``s / sqrt(n)``.

    ``s^2 = (total_sq - total^2 / n) / (n - 1)``; for MAE (sums of ``|e|`` and
    ``e^2``), log loss and Brier. NaN below 2 values.

    >>> round(mean_se(10.0, 30.0, 5), 6), math.isnan(mean_se(1.0, 1.0, 1))
    (0.707107, True)
    """
    if not n >= 2:
        return NAN
    variance = max(total_sq - total * total / n, 0.0) / (n - 1.0)
    return math.sqrt(variance / n)


def rmse_se(sum_sq: float, sum_4th: float, n: float) -> float:
    """Delta-method standard error of RMSE: ``se(MSE) / (2 RMSE)``.

    ``se(MSE)`` is :func:`mean_se` of the squared errors (sums of ``e^2`` and
    ``e^4``). NaN below 2 values or when RMSE is 0.

    >>> round(rmse_se(20.0, 100.0, 10), 6), math.isnan(rmse_se(0.0, 0.0, 10))
    (0.288675, True)
    """
    if not (n >= 2 and sum_sq > 0):
        return NAN
    return mean_se(sum_sq, sum_4th, n) / (2.0 * math.sqrt(sum_sq / n))


def r2_se(
    sum_sq_err: float,
    sum_4th_err: float,
    n: float,
    y_sum: float,
    y_sum_sq: float,
    *,
    y_sum_cube: float | None = None,
    y_sum_4th: float | None = None,
    err_sq_y_sum: float | None = None,
    err_sq_y_sq_sum: float | None = None,
) -> float:
    """Delta-method standard error of ``R^2 = 1 - MSE / var(y)``.

    From the four sums alone ``var(y) = y_sum_sq / n - (y_sum / n)^2`` is treated
    as known: ``se(MSE) / var(y)``. That misses the noise of ``var(y)`` itself,
    which is as large as the noise of MSE for normal labels and errors (the
    tests measure 0.8 of the bootstrap's error there). Given also the sums of
    ``y^3``, ``y^4``, ``e^2 y`` and ``e^2 y^2`` it is the full delta method: with
    ``u = e^2``, ``v = (y - mean(y))^2`` and ``r = MSE / var(y)``,
    ``var(R^2) = mean((u - r v)^2) / ((n - 1) var(y)^2)``. The label sums may be
    of shifted labels. NaN below 2 values or when ``y`` is constant.

    >>> round(r2_se(20.0, 100.0, 10, 30.0, 190.0), 6)
    0.08165
    """
    if not n >= 2:
        return NAN
    y_mean = y_sum / n
    y_variance = y_sum_sq / n - y_mean**2
    if not y_variance > 1e-12 * y_sum_sq / n:
        return NAN
    extra = (y_sum_cube, y_sum_4th, err_sq_y_sum, err_sq_y_sq_sum)
    if any(value is None for value in extra):
        return mean_se(sum_sq_err, sum_4th_err, n) / y_variance
    y3, y4, e2y, e2y2 = (float(value) for value in extra)  # type: ignore[arg-type]
    ratio = sum_sq_err / n / y_variance
    u_squared = sum_4th_err / n
    uv = (e2y2 - 2.0 * y_mean * e2y + y_mean**2 * sum_sq_err) / n
    v_squared = (
        y4 - 4.0 * y_mean * y3 + 6.0 * y_mean**2 * y_sum_sq - 4.0 * y_mean**3 * y_sum
    ) / n + y_mean**4
    spread = max(u_squared - 2.0 * ratio * uv + ratio**2 * v_squared, 0.0)
    return math.sqrt(spread / (n - 1.0)) / y_variance


@dataclass(frozen=True)
class ChangeNoise:
    """A one-sided z-test of a change for the worse (see :func:`change_noise`)."""

    p_value: float
    critical_value: float


def change_noise(change: float, window_se: float, reference_se: float, alpha: float) -> ChangeNoise:
    """One-sided z-test of ``change`` (positive when worse) against both samples' noise.

    ``se = sqrt(window_se^2 + reference_se^2)``, ``p = normal_sf(change / se)``,
    ``critical = normal_isf(alpha) se``. Both are NaN when ``se`` is not a positive
    finite number (no test applies). For a proportion, standard errors taken at
    the reference's value (the no-change hypothesis) give a rate close to
    ``alpha``; each sample's own value gives fewer rejections (the tests measure
    both).

    >>> noise = change_noise(0.05, 0.03, 0.04, 0.05)
    >>> round(noise.p_value, 6), round(noise.critical_value, 6)
    (0.158655, 0.082243)
    """
    se = math.hypot(window_se, reference_se)
    if not 0.0 < se < math.inf:
        return ChangeNoise(NAN, NAN)
    return ChangeNoise(normal_sf(change / se), normal_isf(alpha) * se)
