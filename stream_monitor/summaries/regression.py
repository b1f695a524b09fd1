"""Regression quality from a count and ten sums in fixed slots.

With ``err = prediction - label`` the slots hold ``n``, ``sum(err)``,
``sum(err^2)``, ``sum(|err|)``, ``sum(y)``, ``sum(y^2)``, and for standard
errors ``sum(err^4)``, ``sum(y^3)``, ``sum(y^4)``, ``sum(err^2 y)`` and
``sum(err^2 y^2)``; RMSE, MAE, R^2 and the mean error (bias) are pure functions
of them, so windows merge by addition and every value is exact up to float
rounding.

R^2 needs the total sum of squares, ``SST = sum(y^2) - sum(y)^2 / n``, which
cancels badly when the labels' mean is large next to their spread. The
``y_shift`` knob counts ``y - y_shift`` instead (SST does not change under a
shift); set it near the labels' mean (e.g. the reference's) for such targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_monitor.state.vectors import SlotRange
from stream_monitor.summaries.noise import mean_se, r2_se, rmse_se
from stream_monitor.summaries.slots import SlotSummary, as_float_column

# Offsets from ``start``.
(N, SUM_ERR, SUM_SQ_ERR, SUM_ABS_ERR, SUM_Y, SUM_SQ_Y, SUM_ERR_4, SUM_Y_3, SUM_Y_4, SUM_ERR_SQ_Y,
 SUM_ERR_SQ_Y_SQ) = range(11)  # fmt: skip


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
    """Eleven slots from ``start``: ``n`` (a count) and ten float sums.

    A row is counted when both its prediction and its label are finite numbers
    (lists may hold None for "no label").

    Examples
    --------
    >>> slots = RegressionSlots(3)
    >>> slots.width, slots.sum_slots.tolist()
    (11, [4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
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
        """Slots used: ``n`` and ten sums."""
        return 11

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute positions of the ten sums."""
        return self.start + np.arange(SUM_ERR, SUM_ERR_SQ_Y_SQ + 1, dtype=np.int64)

    def positions(self, prediction: np.ndarray, label: np.ndarray) -> tuple[np.ndarray]:
        """The ``n`` slot for every counted row, ``-1`` for the others."""
        valid = np.isfinite(as_float_column(prediction)) & np.isfinite(as_float_column(label))
        return (np.where(valid, self.start + N, -1),)

    def sums(self, prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Per-row values of the ten sums (shifted ``y``), 0 where not counted."""
        pred = as_float_column(prediction)
        y = as_float_column(label)
        valid = np.isfinite(pred) & np.isfinite(y)
        err = np.where(valid, pred - y, 0.0)
        ys = np.where(valid, y - self.y_shift, 0.0)
        squared, ys2 = err * err, ys * ys
        return np.stack(
            [err, squared, np.abs(err), ys, ys2, squared * squared, ys2 * ys, ys2 * ys2,
             squared * ys, squared * ys2],
            axis=1,
        )  # fmt: skip

    def standard_errors(self, vector: np.ndarray) -> dict[str, float]:
        """The sampling standard error of RMSE, MAE and R^2 (NaN where undefined)."""
        n, _, s_sq, s_abs, s_y, s_yy, s_4, s_y3, s_y4, s_e2y, s_e2y2 = (
            float(v) for v in vector[self.start : self.start + 11]
        )
        r2_error = r2_se(
            s_sq, s_4, n, s_y, s_yy,
            y_sum_cube=s_y3, y_sum_4th=s_y4, err_sq_y_sum=s_e2y, err_sq_y_sq_sum=s_e2y2,
        )  # fmt: skip
        return {"rmse": rmse_se(s_sq, s_4, n), "mae": mean_se(s_abs, s_sq, n), "r2": r2_error}

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
