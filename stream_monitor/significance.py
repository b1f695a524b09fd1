"""How far a window's statistic can move by chance, and which bins moved it.

A severity needs two things: the value past its practical warn/alert line, and
a change too large to be sampling noise at the window's size. The noise level
of each test comes from a budget of false alerts per model per day
(``drift.false_alerts_per_day``; warnings have their own budget), shared by
every test the model runs in a day: each judged series (PSI, CSI of every
feature, each quality rule, the concept-drift detector) in each window, at
every closed pane. Overlapping windows make the tests correlated, so this
Bonferroni share is conservative; simulations check the rate it gives.

- PSI and CSI: with no change, PSI between a reference of n events and a
  window of m events over k bins is about (1/n + 1/m) * chi2(k - 1). Bins too
  sparse for that to hold in this window (fewer than
  ``drift.min_expected_per_bin`` expected events) are merged first
  (:func:`stream_monitor.summaries.noise.stability_noise`).
- Quality: a drop (or, for errors, a rise) from the reference's value is
  compared with its standard error, from the window's counts and sums and the
  reference's own, in a one-sided z-test.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.config import DriftConfig, ModelConfig
from stream_monitor.metric_names import RISE_METRICS, TASK_QUALITY
from stream_monitor.summaries.binning import NumericBins
from stream_monitor.summaries.noise import (
    change_noise,
    chi2_isf,
    chi2_sf,
    min_expected_count,
    normal_isf,
    per_test_alpha,
    stability_noise,
)

if TYPE_CHECKING:
    from stream_monitor.summaries.column_bins import ColumnSlots
    from stream_monitor.summaries.layout import CounterLayout

SECONDS_PER_DAY = 86400.0
#: Bins named in a drift event's ``explain``.
EXPLAIN_BINS = 5


@dataclass(frozen=True)
class SignificanceLevels:
    """The significance level of one test for a warning and for an alert."""

    warn: float
    alert: float


@dataclass
class Evidence:
    """A judged value's sampling noise: its p-value and the critical value of each level.

    The p-value is computed when first asked for (a value short of its
    warn line, most of them, never needs it). Not frozen: a judged window makes
    one per value, and a frozen dataclass takes three times as long to make.
    """

    p_value_of: Callable[[], float]
    critical_warn: float
    critical_alert: float
    reference_events: int
    #: The bins that moved most (PSI/CSI), computed only when an event needs them.
    explain_of: Callable[[], list[dict[str, Any]]] | None = None

    @functools.cached_property
    def p_value(self) -> float:
        """Probability of a value at least this far from the reference with no change."""
        return float(self.p_value_of())

    def explain(self) -> list[dict[str, Any]] | None:
        """The bins with the largest contribution (None where the statistic has no bins)."""
        return self.explain_of() if self.explain_of is not None else None

    def allowed(self, levels: SignificanceLevels) -> str:
        """The highest severity the value is significant for (``ok`` when none or no test)."""
        if not math.isfinite(self.p_value):
            return "ok"
        if self.p_value <= levels.alert:
            return "alert"
        return "warn" if self.p_value <= levels.warn else "ok"

    def critical(self, severity: str) -> float | None:
        """The critical value of ``severity``'s level (None for ``ok`` or when undefined)."""
        if severity == "alert":
            value = self.critical_alert
        elif severity == "warn":
            value = self.critical_warn
        else:
            return None
        return value if math.isfinite(value) else None


def series_tested(model: ModelConfig) -> int:
    """The series of one window that are tests: PSI, each CSI, the quality rules that
    apply to the model's task, the concept-drift detector and, when versions are
    compared, one challenger's tests (more challengers share that share)."""
    rules = [metric for metric in model.quality.rules if metric in TASK_QUALITY[model.task]]
    tests = 1 + len(model.features) + len(rules) + 1
    if model.compare_versions is not None:  # one challenger's version PSI, CSI and quality
        tests += 1 + len(model.features) + len(model.compare_versions.quality)
    return tests


def significance_levels(model: ModelConfig, windows: int, pane_s: float) -> SignificanceLevels:
    """Per-test levels: the model's daily budgets over its tests per day."""
    drift = model.drift
    return budget_levels(
        drift.false_warnings_per_day,
        drift.false_alerts_per_day,
        series_tested(model),
        windows,
        pane_s,
    )


def budget_levels(
    warnings_per_day: float, alerts_per_day: float, series: int, windows: int, pane_s: float
) -> SignificanceLevels:
    """Per-test levels of daily budgets of false warnings and alerts spread over ``series``
    tests in each of ``windows`` windows, judged every ``pane_s`` seconds."""
    tests = series * windows * SECONDS_PER_DAY / pane_s
    return SignificanceLevels(
        per_test_alpha(warnings_per_day, tests), per_test_alpha(alerts_per_day, tests)
    )


#: Events per prediction bin a window needs before it is judged (unless configured).
EVENTS_PER_BIN = 5


def min_window_events(model: ModelConfig, layout: CounterLayout) -> int:
    """``drift.min_window_events``, or what the prediction's bins need (5 events each)."""
    if model.drift.min_window_events is not None:
        return model.drift.min_window_events
    return EVENTS_PER_BIN * layout.prediction.size


def stability_evidence(
    layout: CounterLayout,
    vector: np.ndarray,
    levels: SignificanceLevels,
    statistics: Sequence[float] | None = None,
) -> dict[str | None, Evidence]:
    """The noise of the prediction's PSI (key None) and of each feature's CSI.

    Columns whose bins all expect enough window events (none merged: most
    columns of most windows) are read together (:class:`CleanColumns`), with
    :func:`~stream_monitor.summaries.noise.stability_noise`'s arithmetic; the
    others go through it one by one. p-values are computed when asked for.
    ``statistics`` are the window's PSI and each CSI where the caller has them
    (:meth:`~stream_monitor.summaries.layout.CounterLayout.stability`).
    """
    columns: list[tuple[str | None, ColumnSlots]] = [(None, layout.prediction)]
    columns += list(layout.features.items())
    drift = layout.model.drift
    clean = CleanColumns(layout, vector, levels, statistics)
    warn, alert = clean.critical_values(levels.warn), clean.critical_values(levels.alert)
    found = {}
    for index, (name, slots) in enumerate(columns):
        if not clean.clean[index]:
            reference, window = clean.column(index)
            found[name] = column_evidence(slots, reference, window, levels, drift)
            continue
        found[name] = Evidence(
            functools.partial(clean.p_value, index),
            warn[index],
            alert[index],
            clean.reference_events[index],
            functools.partial(clean.explain, index, slots),
        )
    return found


def column_evidence(
    slots: ColumnSlots,
    reference_counts: Any,
    window_counts: np.ndarray,
    levels: SignificanceLevels,
    drift: DriftConfig,
) -> Evidence:
    """The noise of one column's PSI of ``window_counts`` against ``reference_counts``.

    Both are samples: the critical values scale with ``1/n + 1/m``, so this
    serves a window against the reference and a challenger against its champion.
    """
    reference = np.asarray(reference_counts, dtype=np.float64)
    window = np.array(window_counts, dtype=np.float64)  # a copy: windows slide
    ordered = isinstance(slots.bins, NumericBins)
    warn = stability_noise(
        reference, window, levels.warn, drift.epsilon, drift.min_expected_per_bin, ordered
    )
    alert = warn.critical_value
    if warn.bins >= 2 and math.isfinite(alert):
        alert = warn.scale * chi2_isf(levels.alert, warn.bins - 1)
    return Evidence(
        functools.partial(getattr, warn, "p_value"),
        float(warn.critical_value),
        float(alert),
        int(reference.sum()),
        functools.partial(explain_bins, slots, reference, window, drift.epsilon),
    )


class CleanColumns:
    """The PSI/CSI noise of every column at once, where no bin needs merging.

    A column is clean when both totals are positive, it has two bins or more
    and every bin expects at least ``min_expected`` window events: then
    :func:`~stream_monitor.summaries.noise.stability_noise` merges nothing, and
    its statistic, critical value and p-value are computed here with the same
    operations on the same numbers, so they are equal to the bit: the statistic
    is the column's stability index as the layout reads it (each column's terms
    summed by ``np.sum`` on its own slice), given as ``statistics`` or read here.
    The reference's side (its totals and shares) is the layout's, computed once.
    """

    def __init__(
        self,
        layout: CounterLayout,
        vector: np.ndarray,
        levels: SignificanceLevels,
        statistics: Sequence[float] | None = None,
    ) -> None:
        columns = layout.stability_columns
        index = columns.index
        drift = layout.model.drift
        self.epsilon = drift.epsilon
        self.bounds = index.bounds
        self.reference = index.reference_counts
        self.window = vector[columns.slots]  # a copy: windows slide
        n = index.reference_totals  # whole counts: exact sums
        self.m = np.add.reduceat(self.window, index.starts)
        min_expected = drift.min_expected_per_bin
        if min_expected is None:
            min_expected = min_expected_count(levels.warn)
        m_bins = np.repeat(self.m, index.sizes)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = m_bins * self.reference / index.reference_per_bin
            sparse = np.add.reduceat((expected < min_expected).view(np.int8), index.starts)
            self.scale = (1.0 / n + 1.0 / self.m).tolist()
        self.sizes = index.sizes.tolist()
        self.clean = ((n > 0) & (self.m > 0) & (sparse == 0) & (index.sizes >= 2)).tolist()
        #: Each column's reference events (its total count).
        self.reference_events = [int(total) for total in n.tolist()]
        if statistics is None:
            statistics, _ = index.read(self.window)
        self.statistic = [
            value if ok else math.nan for ok, value in zip(self.clean, statistics, strict=True)
        ]

    def column(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The reference and window counts of column ``index``."""
        first, last = self.bounds[index]
        return self.reference[first:last], self.window[first:last]

    def critical_values(self, alpha: float) -> list[float]:
        """Each clean column's critical value at level ``alpha`` (NaN for the others)."""
        return [
            scale * chi2_isf(alpha, size - 1) if ok else math.nan
            for ok, scale, size in zip(self.clean, self.scale, self.sizes, strict=True)
        ]

    def p_value(self, index: int) -> float:
        """The p-value of column ``index``'s statistic."""
        return chi2_sf(self.statistic[index] / self.scale[index], self.sizes[index] - 1)

    def explain(self, index: int, slots: ColumnSlots) -> list[dict[str, Any]]:
        """:func:`explain_bins` of column ``index``."""
        return explain_bins(slots, *self.column(index), self.epsilon)


def explain_bins(
    slots: ColumnSlots, reference: np.ndarray, window: np.ndarray, epsilon: float
) -> list[dict[str, Any]]:
    """The bins with the largest PSI contribution: bin, reference and window shares."""
    if reference.sum() <= 0 or window.sum() <= 0:
        return []
    expected = np.maximum(reference / reference.sum(), epsilon)
    actual = np.maximum(window / window.sum(), epsilon)
    contribution = (actual - expected) * np.log(actual / expected)
    labels = bin_labels(slots)
    top = np.argsort(-contribution, kind="stable")[:EXPLAIN_BINS]
    return [
        {
            "bin": labels[i],
            "reference_share": round(float(reference[i] / reference.sum()), 6),
            "window_share": round(float(window[i] / window.sum()), 6),
            "contribution": round(float(contribution[i]), 6),
        }
        for i in top
        if contribution[i] > 0
    ]


def bin_labels(slots: ColumnSlots) -> list[str]:
    """Each bin as a person reads it: ``(120, 480]`` or a category (``other`` last)."""
    bins = slots.bins
    if isinstance(bins, NumericBins):
        edges = [-math.inf, *bins.edges, math.inf]
        return [f"({_edge(low)}, {_edge(high)}]" for low, high in itertools.pairwise(edges)]
    return [*bins.categories, "other"]


def _edge(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def quality_evidence(
    layout: CounterLayout,
    vector: np.ndarray,
    window: Mapping[str, float],
    reference: Mapping[str, float],
    levels: SignificanceLevels,
) -> dict[str, Evidence]:
    """The noise of each quality rule's change from the reference's value."""
    errors = layout.quality.standard_errors(vector)
    labeled = window.get("labeled", 0.0)
    reference_labeled = reference.get("labeled", 0.0)
    found = {}
    for metric in layout.model.quality.rules:
        value, base, se = window.get(metric), reference.get(metric), errors.get(metric)
        if value is None or base is None or se is None or not math.isfinite(base):
            continue
        # The reference's value is a sample too: same composition, its own size.
        reference_se = se * math.sqrt(labeled / reference_labeled) if reference_labeled else 0.0
        found[metric] = change_evidence(
            value, base, metric in RISE_METRICS, se, reference_se, int(reference_labeled), levels
        )
    return found


def change_evidence(
    value: float,
    base: float,
    rise: bool,
    se: float,
    base_se: float,
    base_events: int,
    levels: SignificanceLevels,
) -> Evidence:
    """The noise of ``value``'s change from ``base`` (worse: a rise if ``rise``, else a drop).

    ``se`` and ``base_se`` are the two values' standard errors; the critical
    values are on ``value``'s scale, ``base`` plus or minus the test's margin.
    """
    change = value - base if rise else base - value
    warn = change_noise(change, se, base_se, levels.warn)
    total_se = math.hypot(se, base_se)
    sign = 1.0 if rise else -1.0
    return Evidence(
        functools.partial(float, warn.p_value),
        float(base + sign * warn.critical_value),
        float(base + sign * normal_isf(levels.alert) * total_se),
        base_events,
    )
