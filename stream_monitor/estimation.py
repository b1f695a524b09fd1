"""Judging the label-free quality estimate of binary classifiers, and its error.

The estimate of each window comes from its score histogram through the
reference's calibration map (:mod:`stream_monitor.summaries.estimate`). Two
kinds of test, for each quality rule of the model that can be estimated
(``auc``, ``accuracy``, ``precision``, ``recall``, ``f1``):

- ``estimated_<metric>``: a drop of the estimate from the reference's own
  estimate, judged with the rule's lines and a one-sided z-test whose standard
  errors come from the multinomial noise of the reference's score histogram, at
  the reference's size and at the window's (the no-change hypothesis; the map is
  shared, so its own error cancels);
- ``estimation_error`` (``feature``: the metric): once a window holds
  ``quality.min_labeled_events`` labels, the absolute difference between the
  estimate and the realized value, judged with ``estimation.error``'s lines and
  a two-sided z-test whose standard error adds the realized value's sampling
  noise at the labeled count if the estimate holds, and the map's.

Both have their own false-alert budgets (``estimation.false_alerts_per_day``,
``estimation.false_warnings_per_day``), spread over these tests alone.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor.config import ModelConfig, Thresholds
from stream_monitor.evaluate import (
    Check,
    DriftEvent,
    SeverityBoard,
    WindowInfo,
    estimated_rules,
)
from stream_monitor.metric_names import ESTIMATED_PREFIX, ESTIMATION_ERROR
from stream_monitor.significance import (
    Evidence,
    SignificanceLevels,
    budget_levels,
    change_evidence,
    min_window_events,
)
from stream_monitor.snapshot import WindowSample
from stream_monitor.summaries.noise import normal_isf, normal_sf

if TYPE_CHECKING:
    from stream_monitor.state.model_state import ModelVersionState
    from stream_monitor.summaries.layout import CounterLayout


def estimation_levels(model: ModelConfig, windows: int, pane_s: float) -> SignificanceLevels:
    """Per-test levels of the estimate's tests: its own budgets over its tests per day."""
    budget = model.estimation
    series = max(1, 2 * len(estimated_rules(model)))
    return budget_levels(
        budget.false_warnings_per_day, budget.false_alerts_per_day, series, windows, pane_s
    )


def error_evidence(
    error: float, se: float, reference_events: int, levels: SignificanceLevels
) -> Evidence:
    """A two-sided z-test of an estimation error with standard error ``se``.

    The critical values are on the scale of the absolute error.

    >>> e = error_evidence(0.1, 0.05, 500, SignificanceLevels(0.05, 0.01))
    >>> round(e.p_value, 4), round(e.critical_warn, 4), round(e.critical_alert, 4)
    (0.0455, 0.098, 0.1288)
    """
    if not 0.0 < se < math.inf:
        nan = float("nan")
        return Evidence(functools.partial(float, nan), nan, nan, reference_events)
    return Evidence(
        functools.partial(two_sided_p_value, abs(error) / se),
        normal_isf(levels.warn / 2.0) * se,
        normal_isf(levels.alert / 2.0) * se,
        reference_events,
    )


def two_sided_p_value(z: float) -> float:
    """``P(|Z| >= z)`` for a standard normal ``Z``.

    >>> round(two_sided_p_value(1.96), 4)
    0.05
    """
    return 2.0 * normal_sf(z)


def estimate_checks(
    model: ModelConfig, layout: CounterLayout, vector: np.ndarray, sample: WindowSample,
    levels: SignificanceLevels,
) -> list[Check]:  # fmt: skip
    """The estimate's checks of one window (none without a calibration map)."""
    slots = layout.estimate
    rules = estimated_rules(model)
    if slots is None or not rules:
        return []
    checks: list[Check] = []
    reference = slots.reference.metrics()
    events = sample.stats.events
    if events >= min_window_events(model, layout):
        reference_se = slots.reference_standard_errors()
        # With no change the window's histogram is a sample of the reference's score mix:
        # its noise is the reference's at the window's size (robust to a window whose own
        # counts are degenerate, e.g. no score above the threshold by chance).
        scale = math.sqrt(slots.reference.events / events)
        for metric in rules:
            value, base = sample.estimate.get(metric, math.nan), reference[metric]
            if not (math.isfinite(value) and math.isfinite(base)):
                continue
            warn, alert = model.quality.rules[metric]
            evidence = change_evidence(
                value, base, False, reference_se[metric] * scale, reference_se[metric],
                slots.reference.events, levels,
            )  # fmt: skip
            lines = Thresholds(base - warn, base - alert, "below")
            checks.append(Check(ESTIMATED_PREFIX + metric, None, value, lines, evidence))
    if sample.quality.get("labeled", 0) < model.quality.min_labeled_events:
        return checks
    map_se = slots.map_standard_errors(vector)
    realized_se = slots.realized_standard_errors(vector, sample.quality["labeled"], sample.estimate)
    labeled = sum(slots.calibration.labeled)
    for metric in rules:
        error = sample.estimation_error.get(metric)
        if error is None:
            continue
        se = math.hypot(realized_se.get(metric, math.nan), map_se[metric])
        evidence = error_evidence(error, se, labeled, levels)
        lines = Thresholds(*model.estimation.error)
        checks.append(Check(ESTIMATION_ERROR, metric, abs(error), lines, evidence))
    return checks


def judge_estimates(
    board: SeverityBoard,
    state: ModelVersionState,
    info: WindowInfo,
    sample: WindowSample,
    now_s: float,
) -> list[DriftEvent]:
    """Judge the estimate's checks of one window of ``state``; the drift events of changes."""
    layout, judged = state.layout, state.judged
    if layout is None or layout.estimate is None or judged is None:
        return []
    levels = estimation_levels(state.model, len(state.window_sizes), state.pane_s)
    vector = judged.window(info.name)
    checks = estimate_checks(state.model, layout, vector, sample, levels)
    return board.judge_window(
        state.model.name,
        state.version,
        checks,
        info,
        now_s,
        levels,
        state.model.drift.persistence_panes,
    )
