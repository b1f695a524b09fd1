"""Fixed-slot summaries: how a statistic lives in a pane vector and is counted into it.

A summary owns ``width`` consecutive slots of a pane vector, from ``start``. An
update of a batch is (1) a few integer position arrays, one position per row and
counter kind (``-1`` for "not counted"), each adding 1 to that slot, and (2) a
float matrix of per-row contributions to the summary's sum slots (``sum_slots``,
absolute positions). :func:`pane_deltas`, the one pane counter, turns both into
one vector per pane with ``np.bincount``; the integrating layout
(:class:`stream_monitor.summaries.layout.CounterLayout`) concatenates the positions
of every summary and calls it once. Because every slot is a count or a sum,
merging panes, windows or replicas is vector addition and a window's part can be
subtracted from it.

:class:`Summary` wraps one slot layout with the usual statistic API
(``update_many``, ``merge``, ``value``, ``to_state``/``from_state``); it is what the
tests use, and a convenient standalone accumulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

T_co = TypeVar("T_co", covariant=True)


class SlotLayout(Protocol[T_co]):
    """What every fixed-slot summary provides (see the module docstring)."""

    start: int

    @property
    def width(self) -> int:
        """Slots used from ``start``."""
        ...

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute positions of the float sum slots (may be empty)."""
        ...

    def positions(self, *columns: Any) -> tuple[np.ndarray, ...]:
        """Absolute positions to count, one array per counter kind (``-1``: skip)."""
        ...

    def sums(self, *columns: Any) -> np.ndarray:
        """Per-row contributions to ``sum_slots``, shape ``(rows, len(sum_slots))``."""
        ...

    def read(self, vector: np.ndarray) -> T_co:
        """The statistics held by ``vector`` (a pane or window vector)."""
        ...


def as_float_column(values: Any) -> np.ndarray:
    """``values`` (numbers, booleans, None) as float64; None becomes NaN.

    Coercing raw JSON values (text, say) is the decoder's job
    (:mod:`stream_monitor.decode.columns`); a summary takes numbers.

    >>> as_float_column([1, None, True, 0.5]).tolist()
    [1.0, nan, 1.0, 0.5]
    """
    return np.asarray(values, dtype=np.float64)


def pane_deltas(
    width: int,
    pane_rows: np.ndarray,
    n_panes: int,
    positions: Sequence[np.ndarray],
    sum_slots: np.ndarray | None = None,
    sums: np.ndarray | None = None,
) -> np.ndarray:
    """Count rows into ``n_panes`` vectors of ``width``; ``pane_rows[i]`` is row i's pane.

    The one pane counter: one ``np.bincount`` over every array of ``positions``
    (shifted to each row's pane), and one weighted ``np.bincount`` for the sums.

    Parameters
    ----------
    width
        Length of a pane vector.
    pane_rows
        0-based pane of each row.
    n_panes
        Number of pane vectors to return.
    positions
        Integer arrays of absolute slot positions, one entry per row each;
        negative entries are not counted.
    sum_slots, sums
        Absolute positions of float slots and the ``(rows, len(sum_slots))``
        contributions of each row to them.

    Returns
    -------
    np.ndarray
        Shape ``(n_panes, width)``, float64.

    Examples
    --------
    >>> pane_deltas(4, np.array([0, 1, 1]), 2, [np.array([0, 0, -1]), np.array([2, -1, 1])],
    ...             np.array([3]), np.array([[0.5], [1.0], [2.0]])).tolist()
    [[1.0, 0.0, 1.0, 0.5], [1.0, 1.0, 0.0, 3.0]]
    """
    total = n_panes * width
    offsets = np.asarray(pane_rows, dtype=np.int64) * width
    if len(positions):
        flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in positions])
        counted = flat >= 0
        if n_panes > 1:
            flat = flat + np.tile(offsets, len(positions))
        out = np.bincount(flat[counted], minlength=total).astype(np.float64)
    else:
        out = np.zeros(total, dtype=np.float64)
    if sum_slots is not None and sums is not None and len(sum_slots):
        flat = (offsets[:, None] + np.asarray(sum_slots, dtype=np.int64)[None, :]).ravel()
        out += np.bincount(
            flat, weights=np.asarray(sums, dtype=np.float64).ravel(), minlength=total
        )
    return out.reshape(n_panes, width)


L = TypeVar("L", bound=SlotLayout[Any])


class Summary(Generic[L]):
    """A standalone vector for one slot layout, with the usual statistic API.

    The vector covers slots ``0 .. layout.start + layout.width``; slots before
    ``start`` stay zero.

    Examples
    --------
    >>> from stream_monitor.summaries.regression import RegressionSlots
    >>> s = Summary(RegressionSlots(0))
    >>> s.update_many(np.array([1.0, 2.0]), np.array([1.5, 2.0]))
    >>> s.value().mae
    0.25
    """

    def __init__(self, layout: L) -> None:
        self.layout = layout
        self._reset()

    def _reset(self) -> None:
        self.vector = np.zeros(self.layout.start + self.layout.width, dtype=np.float64)

    def update_many(self, *columns: Any) -> None:
        """Count a batch (the columns that ``layout.positions`` takes)."""
        rows = len(columns[0])
        delta = pane_deltas(
            len(self.vector),
            np.zeros(rows, dtype=np.int64),
            1,
            self.layout.positions(*columns),
            self.layout.sum_slots,
            self.layout.sums(*columns),
        )
        self.vector += delta[0]

    def merge(self, other: Summary[L]) -> None:
        """Add ``other``'s counts (same layout) to this one."""
        self.vector += other.vector

    def subtract(self, other: Summary[L]) -> None:
        """Remove ``other``'s counts (a part of this summary) from this one."""
        self.vector -= other.vector

    def value(self) -> Any:
        """The statistics of everything counted so far."""
        return self.layout.read(self.vector)

    def to_state(self) -> list[float]:
        """The vector as a plain list (JSON-friendly)."""
        return [float(v) for v in self.vector]

    def from_state(self, state: Sequence[float]) -> None:
        """Restore the vector saved by :meth:`to_state`."""
        vector = np.asarray(state, dtype=np.float64)
        if vector.shape != self.vector.shape:
            raise ValueError(f"state has {vector.size} slots, layout needs {self.vector.size}")
        self.vector = vector.copy()
