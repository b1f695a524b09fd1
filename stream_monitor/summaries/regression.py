"""Regression quality from six sums in fixed slots.

With ``err = prediction - label`` the slots hold ``n``, ``sum(err)``,
``sum(err^2)``, ``sum(|err|)``, ``sum(y)`` and ``sum(y^2)``; RMSE, MAE, R^2 and the
mean error (bias) are pure functions of them, so windows merge by addition and
every value is exact up to float rounding.

R^2 needs the total sum of squares, ``SST = sum(y^2) - sum(y)^2 / n``, which
cancels badly when the labels' mean is large next to their spread. The
``y_shift`` knob counts ``y - y_shift`` instead (SST does not change under a
shift); set it near the labels' mean (e.g. the reference's) for such targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_monitor.state.vectors import SlotRange
from stream_monitor.summaries.slots import SlotSummary, as_float_column

# Offsets from ``start``.
N, SUM_ERR, SUM_SQ_ERR, SUM_ABS_ERR, SUM_Y, SUM_SQ_Y = range(6)


def rmse(n: float, sum_sq_err: float) -> float:
    """Root mean squared error; NaN when ``n`` is 0.

    >>> rmse(4, 16.0)
    2.0
    """
    return float(np.sqrt(sum_sq_err / n)) if n > 0 else float("nan")


def mae(n: float, sum_abs_err: float) -> float:
    """Mean absolute error; NaN when ``n`` is 0.

    >>> mae(4, 6.0)
    1.5
    """
    return float(sum_abs_err / n) if n > 0 else float("nan")


def mean_error(n: float, sum_err: float) -> float:
    """Mean of ``prediction - label`` (bias: positive means over-prediction); NaN when empty.

    >>> mean_error(4, -2.0)
    -0.5
    """
    return float(sum_err / n) if n > 0 else float("nan")


def r2(n: float, sum_sq_err: float, sum_y: float, sum_sq_y: float) -> float:
    """Coefficient of determination, ``1 - SSE / SST``, ``SST = sum(y^2) - sum(y)^2 / n``.

    As ``sklearn.metrics.r2_score`` (``force_finite=True``): when the labels are
    constant (SST is 0, or below ``1e-12 * sum(y^2)``, i.e. rounding noise) the
    result is 1.0 for a perfect fit and 0.0 otherwise. NaN when ``n`` is 0.
    ``sum_y`` and ``sum_sq_y`` may be of shifted labels.

    >>> r2(3, 2.0, 6.0, 14.0)
    0.0
    >>> r2(3, 0.5, 6.0, 14.0)
    0.75
    """
    if n <= 0:
        return float("nan")
    sst = max(sum_sq_y - sum_y * sum_y / n, 0.0)
    if sst <= 1e-12 * sum_sq_y:
        return 1.0 if sum_sq_err == 0 else 0.0
    return float(1.0 - sum_sq_err / sst)


@dataclass(frozen=True)
class RegressionQuality:
    """Quality of a regression model in one window (NaN when no labels)."""

    labeled: int
    rmse: float
    mae: float
    r2: float
    mean_error: float


class RegressionSlots(SlotSummary, SlotRange):
    """Six slots from ``start``: ``n`` (a count) and five float sums.

    A row is counted when both its prediction and its label are finite numbers
    (lists may hold None for "no label").

    Examples
    --------
    >>> slots = RegressionSlots(3)
    >>> slots.width, slots.sum_slots.tolist()
    (6, [4, 5, 6, 7, 8])
    >>> vector = slots.update(np.array([2.5, 0.0, 2.0, 8.0]), np.array([3.0, -0.5, 2.0, 7.0]))
    >>> q = slots.value(vector)
    >>> q.labeled, round(q.rmse, 6), q.mae, round(q.r2, 6), q.mean_error
    (4, 0.612372, 0.5, 0.948608, 0.25)
    """

    def __init__(self, start: int, y_shift: float = 0.0) -> None:
        if not np.isfinite(y_shift):
            raise ValueError("y_shift must be finite")
        self.start = start
        self.y_shift = float(y_shift)

    @property
    def width(self) -> int:
        """Slots used: ``n`` and five sums."""
        return 6

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute positions of the five sums."""
        return self.start + np.arange(SUM_ERR, SUM_SQ_Y + 1, dtype=np.int64)

    def positions(self, prediction: np.ndarray, label: np.ndarray) -> tuple[np.ndarray]:
        """The ``n`` slot for every counted row, ``-1`` for the others."""
        valid = np.isfinite(as_float_column(prediction)) & np.isfinite(as_float_column(label))
        return (np.where(valid, self.start + N, -1),)

    def sums(self, prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Per-row ``err, err^2, |err|, y, y^2`` (shifted ``y``), 0 where not counted."""
        pred = as_float_column(prediction)
        y = as_float_column(label)
        valid = np.isfinite(pred) & np.isfinite(y)
        err = np.where(valid, pred - y, 0.0)
        ys = np.where(valid, y - self.y_shift, 0.0)
        return np.stack([err, err * err, np.abs(err), ys, ys * ys], axis=1)

    def value(self, vector: np.ndarray) -> RegressionQuality:
        """Every regression metric of ``vector``."""
        n, s_err, s_sq, s_abs, s_y, s_yy = (float(v) for v in vector[self.start : self.start + 6])
        return RegressionQuality(
            labeled=round(n),
            rmse=rmse(n, s_sq),
            mae=mae(n, s_abs),
            r2=r2(n, s_sq, s_y, s_yy),
            mean_error=mean_error(n, s_err),
        )
