"""Confidence-based performance estimation: a binary classifier's quality before its labels.

A calibrated score says how likely each event is to be positive, so the
expected confusion matrix of a window follows from its scores alone (CBPE, as
NannyML does it in batch). Two pieces, both fixed-size:

- the reference's calibration map
  (:class:`stream_monitor.summaries.calibration.CalibrationMap`): the share of
  positives per score bin, sparse bins pooled;
- :class:`EstimateSlots`, a mergeable summary: the score histogram of every
  event, labeled or not, in the pane vector. Its value is the expected
  quality of the window (:func:`expected_quality`).

Two assumptions make the estimate right: the scores are calibrated on the
reference (the map holds), and ``P(y | score)`` has not changed since. It
therefore follows covariate shift and is blind to pure concept drift, which
the realized metrics and the concept-drift detector cover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stream_monitor.metric_names import ESTIMATED_METRICS
from stream_monitor.state.vectors import SlotRange
from stream_monitor.summaries.calibration import CalibrationMap, score_bin
from stream_monitor.summaries.noise import auc_se_binned, f1_se, proportion_se
from stream_monitor.summaries.slots import SlotSummary, as_float_column


def predicted_positive(threshold: float, score_bins: int) -> np.ndarray:
    """The share of each score bin at or above ``threshold`` (scores spread evenly in a bin).

    >>> predicted_positive(0.5, 4).tolist(), predicted_positive(0.6, 5).tolist()
    ([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0])
    >>> predicted_positive(0.55, 4).round(6).tolist()
    [0.0, 0.0, 0.8, 1.0]
    """
    return np.clip(np.arange(1, score_bins + 1) - threshold * score_bins, 0.0, 1.0)


@dataclass(frozen=True)
class EstimatedQuality:
    """The expected quality of a window from its scores (NaN where undefined)."""

    events: int
    tp: float
    fp: float
    tn: float
    fn: float
    auc: float
    accuracy: float
    precision: float
    recall: float
    f1: float

    def metrics(self) -> dict[str, float]:
        """The estimated metrics by name (:data:`ESTIMATED_METRICS`)."""
        return {name: float(getattr(self, name)) for name in ESTIMATED_METRICS}


def expected_quality(
    histogram: np.ndarray, shares: np.ndarray, above: np.ndarray
) -> EstimatedQuality:
    """Expected confusion counts and metrics of scores binned in ``histogram``.

    Bin ``i`` holds ``h_i`` events, a share ``p_i`` of them positive (the map)
    and a share ``a_i`` predicted positive (:func:`predicted_positive`):
    ``TP = sum h p a``, ``FP = sum h (1 - p) a``, ``FN = sum h p (1 - a)``,
    ``TN = sum h (1 - p)(1 - a)``; the expected AUC is that of the expected
    positive and negative histograms ``h p`` and ``h (1 - p)``.

    >>> q = expected_quality(np.array([2.0, 2.0]), np.array([0.25, 0.75]), np.array([0.0, 1.0]))
    >>> q.tp, q.fp, q.tn, q.fn, q.accuracy, q.auc
    (1.5, 0.5, 1.5, 0.5, 0.75, 0.75)
    """
    h = np.asarray(histogram, dtype=np.float64)
    pos, neg = h * shares, h * (1.0 - shares)
    tp, fp = float(pos @ above), float(neg @ above)
    fn, tn = float(pos.sum()) - tp, float(neg.sum()) - fp
    events = float(h.sum())
    if events <= 0:
        nan = float("nan")
        return EstimatedQuality(0, 0.0, 0.0, 0.0, 0.0, nan, nan, nan, nan, nan)
    return EstimatedQuality(
        events=round(events),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        auc=_auc_parts(h, shares)[0],
        accuracy=(tp + tn) / events,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2.0 * tp, 2.0 * tp + fp + fn),
    )


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, 0 when the denominator is 0 (as the realized metrics)."""
    return numerator / denominator if denominator > 0 else 0.0


def estimation_errors(
    estimate: Mapping[str, float], realized: Mapping[str, float]
) -> dict[str, float]:
    """The estimate minus the realized value of each metric both have (finite).

    >>> estimation_errors({"auc": 0.75, "f1": 0.5}, {"auc": 0.5, "f1": float("nan")})
    {'auc': 0.25}
    """
    errors = {}
    for metric, value in estimate.items():
        found = realized.get(metric)
        if found is not None and math.isfinite(found) and math.isfinite(value):
            errors[metric] = value - found
    return errors


def _auc_parts(h: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float, float]:
    """AUC of ``h p`` against ``h (1 - p)`` (Mann-Whitney, a tie within a bin counting
    one half, as the realized AUC), each bin's negatives below (half its own) and
    positives above (half its own), and the two totals; NaN without both classes."""
    pos, neg = h * p, h * (1.0 - p)
    total_pos, total_neg = float(pos.sum()), float(neg.sum())
    below = np.cumsum(neg) - 0.5 * neg
    above = total_pos - np.cumsum(pos) + 0.5 * pos
    auc = float(pos @ below) / (total_pos * total_neg) if total_pos * total_neg > 0 else math.nan
    return auc, below, above, total_pos, total_neg


#: The per-event parts of each metric ``X / Y`` and their derivatives by a bin's share ``p``.
RatioParts = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def ratio_parts(p: np.ndarray, a: np.ndarray) -> RatioParts:
    """The parts of each ratio metric ``X / Y``, fixed by the map: per-event ``x`` and ``y``
    by bin, and their derivatives by the bin's share ``p`` (``a``: share predicted positive).

    Accuracy is a correct prediction over 1; precision a true positive over a
    predicted positive; recall over a positive; F1 two true positives over a
    predicted positive plus a positive.
    """
    return {
        "accuracy": (p * a + (1.0 - p) * (1.0 - a), np.ones_like(p), 2.0 * a - 1.0, 0.0 * p),
        "precision": (p * a, a, a, 0.0 * p),
        "recall": (p * a, p, a, np.ones_like(p)),
        "f1": (2.0 * p * a, a + p, 2.0 * a, np.ones_like(p)),
    }


def _gradients(
    h: np.ndarray, p: np.ndarray, parts: RatioParts, by_share: bool
) -> dict[str, np.ndarray]:
    """Per-bin derivatives of each metric by the bin's event count, or (``by_share``) by
    its share ``p``; the ratio metrics from their :func:`ratio_parts`, AUC directly."""
    found: dict[str, np.ndarray] = {}
    for name, (x, y, dx_dp, dy_dp) in parts.items():
        big_x, big_y = float(h @ x), float(h @ y)
        if big_y <= 0:
            continue
        ratio = big_x / big_y
        if by_share:
            found[name] = h * (dx_dp - ratio * dy_dp) / big_y
        else:
            found[name] = (x - ratio * y) / big_y
    auc, below, above, total_pos, total_neg = _auc_parts(h, p)
    if not math.isfinite(auc):
        return found
    if by_share:
        gradient = h * (below - above) / (total_pos * total_neg)
        gradient -= auc * h * (1.0 / total_pos - 1.0 / total_neg)
    else:
        gradient = (p * below + (1.0 - p) * above) / (total_pos * total_neg)
        gradient -= auc * (p / total_pos + (1.0 - p) / total_neg)
    found["auc"] = gradient
    return found


def window_standard_errors(
    histogram: np.ndarray, calibration: CalibrationMap, parts: RatioParts
) -> dict[str, float]:
    """The sampling noise of each estimated metric from the window's events (NaN: undefined).

    The delta method over the multinomial counts of the histogram,
    ``var = (sum q g^2 - (sum q g)^2) / m`` with ``q`` the bins' shares of the
    ``m`` events and ``g`` the metric's derivative by them. Two estimates on one
    map share its error, so a change of the estimate is tested with this one.
    """
    h = np.asarray(histogram, dtype=np.float64)
    m = float(h.sum())
    found = dict.fromkeys(ESTIMATED_METRICS, math.nan)
    if m <= 0:
        return found
    q = h / m
    for name, gradient in _gradients(q, calibration.shares, parts, by_share=False).items():
        spread = float(q @ (gradient * gradient)) - float(q @ gradient) ** 2
        found[name] = math.sqrt(max(spread, 0.0) / m)
    return found


def map_standard_errors(
    histogram: np.ndarray, calibration: CalibrationMap, parts: RatioParts
) -> dict[str, float]:
    """The noise of each estimated metric from the map (NaN: undefined): each group's share
    is a binomial proportion of its labeled reference events,
    ``var = sum_g (d metric / d p_g)^2 p_g (1 - p_g) / n_g``.

    The estimate against the realized value is tested with this and the
    realized metric's own noise.
    """
    h = np.asarray(histogram, dtype=np.float64)
    m = float(h.sum())
    found = dict.fromkeys(ESTIMATED_METRICS, math.nan)
    if m <= 0:
        return found
    starts = calibration.group_starts
    binomial = calibration.share_variances
    for name, gradient in _gradients(h / m, calibration.shares, parts, by_share=True).items():
        grouped = np.add.reduceat(gradient, starts)
        found[name] = math.sqrt(float(grouped * grouped @ binomial))
    return found


def realized_standard_errors(
    histogram: np.ndarray,
    shares: np.ndarray,
    above: np.ndarray,
    labeled: float,
    estimate: Mapping[str, float],
) -> dict[str, float]:
    """The sampling noise of each realized metric on ``labeled`` events, if the estimate holds.

    Under the hypothesis that the map is right, ``labeled`` events drawn from the
    window have the estimate's expected confusion counts and score histograms,
    scaled to their number: binomial errors for accuracy, precision and recall,
    the delta method for F1, DeLong's for AUC, each taken at the expected counts
    (the observed ones can be 0 by chance, and a standard error of 0 would make
    any difference significant). ``estimate`` is the histogram's
    :func:`expected_quality` (its metrics), already known to the caller.

    >>> h, shares, above = np.array([50.0, 50.0]), np.array([0.2, 0.8]), np.array([0.0, 1.0])
    >>> estimate = expected_quality(h, shares, above).metrics()
    >>> se = realized_standard_errors(h, shares, above, 100, estimate)
    >>> round(se["accuracy"], 4), round(se["precision"], 4), round(se["recall"], 4)
    (0.04, 0.0566, 0.0566)
    """
    h = np.asarray(histogram, dtype=np.float64)
    m = float(h.sum())
    if m <= 0 or labeled <= 0:
        return dict.fromkeys(ESTIMATED_METRICS, math.nan)
    scale = labeled / m
    pos, neg = h * shares * scale, h * (1.0 - shares) * scale
    tp, fp = float(pos @ above), float(neg @ above)
    fn = float(pos.sum()) - tp
    return {
        "auc": auc_se_binned(neg, pos),
        "accuracy": proportion_se(estimate["accuracy"], labeled),
        "precision": proportion_se(estimate["precision"], tp + fp),
        "recall": proportion_se(estimate["recall"], tp + fn),
        "f1": f1_se(tp, fp, fn),
    }


class EstimateSlots(SlotSummary, SlotRange):
    """The score histogram of every event (labeled or not), read through a calibration map.

    ``score_bins`` slots from ``start`` (the map's bins); a row whose score is
    NaN or infinite is not counted. The value is the window's
    :class:`EstimatedQuality` at ``threshold``.

    Examples
    --------
    >>> m = CalibrationMap(4, (0, 2), (10, 10), (2, 8), (2.5, 7.5), (5, 5, 5, 5))
    >>> m.shares.round(3).tolist()
    [0.075, 0.325, 0.675, 0.925]
    >>> slots = EstimateSlots(1, m, threshold=0.5)
    >>> slots.positions(np.array([0.1, 0.9, np.nan]))
    (array([ 1,  4, -1]),)
    >>> q = slots.value(slots.update(np.array([0.1, 0.3, 0.6, 0.9])))
    >>> q.events, round(q.tp, 6), round(q.accuracy, 6), round(q.auc, 6)
    (4, 1.6, 0.8, 0.8625)
    """

    def __init__(self, start: int, calibration: CalibrationMap, threshold: float) -> None:
        self.start = start
        self.calibration = calibration
        self.threshold = threshold
        self.score_bins = calibration.score_bins
        self.shares = calibration.shares
        self.above = predicted_positive(threshold, self.score_bins)
        self._reference = expected_quality(
            np.asarray(calibration.histogram, np.float64), self.shares, self.above
        )
        #: The ratio metrics' parts under this map (:func:`ratio_parts`), for their noise.
        self.parts = ratio_parts(self.shares, self.above)
        self._reference_errors: dict[str, float] | None = None

    @property
    def width(self) -> int:
        """Slots used: one per score bin."""
        return self.score_bins

    def positions(self, score: np.ndarray) -> tuple[np.ndarray]:
        """The histogram slot of each row (``-1`` for a missing score)."""
        score = as_float_column(score)
        slot = self.start + score_bin(score, self.score_bins)
        return (np.where(np.isfinite(score), slot, -1),)

    def histogram(self, vector: np.ndarray) -> np.ndarray:
        """The score histogram held by ``vector``."""
        return vector[self.start : self.start + self.score_bins]

    def value(self, vector: np.ndarray) -> EstimatedQuality:
        """The expected quality of the events counted in ``vector``."""
        return expected_quality(self.histogram(vector), self.shares, self.above)

    @property
    def reference(self) -> EstimatedQuality:
        """The expected quality of the reference's own events."""
        return self._reference

    def map_standard_errors(self, vector: np.ndarray) -> dict[str, float]:
        """:func:`map_standard_errors` of ``vector``'s histogram."""
        return map_standard_errors(self.histogram(vector), self.calibration, self.parts)

    def realized_standard_errors(
        self, vector: np.ndarray, labeled: float, estimate: Mapping[str, float]
    ) -> dict[str, float]:
        """:func:`realized_standard_errors` of ``labeled`` events of ``vector``'s window,
        whose estimated metrics are ``estimate``."""
        histogram = self.histogram(vector)
        return realized_standard_errors(histogram, self.shares, self.above, labeled, estimate)

    def reference_standard_errors(self) -> dict[str, float]:
        """:func:`window_standard_errors` of the reference's histogram (computed once)."""
        if self._reference_errors is None:
            histogram = np.asarray(self.calibration.histogram, np.float64)
            found = window_standard_errors(histogram, self.calibration, self.parts)
            self._reference_errors = found
        return self._reference_errors
