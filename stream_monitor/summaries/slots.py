"""Fixed-slot summaries: the protocol of every summary, and the one pane counter.

A summary owns ``width`` consecutive slots of a pane vector, from ``start``.
Counting a batch gives (1) a few integer position arrays, one position per row
and counter kind (``-1`` for "not counted"), each adding 1 to that slot, and (2)
a float matrix of per-row contributions to the summary's sum slots
(``sum_slots``, absolute positions). :func:`pane_deltas`, the one pane counter,
turns both into one vector per pane with ``np.bincount``; the integrating layout
(:class:`stream_monitor.summaries.layout.CounterLayout`) concatenates the
positions of every summary and calls it once. Because every slot is a count or
a sum, merging panes, windows or replicas is vector addition and a window's
part can be subtracted from it.

:class:`Summary` is the protocol every summary follows, river-shaped:
``update`` (columns to a delta vector), ``merge`` (addition), ``value`` (the
statistics a vector holds) and ``to_bytes``/``from_bytes`` (its slots through
the vector codec, :class:`stream_monitor.state.vectors.SlotRange`).
:class:`SlotSummary` gives a summary ``update`` and ``merge`` from its
``positions`` and ``sums``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

T_co = TypeVar("T_co", covariant=True)


class Summary(Protocol[T_co]):
    """What every summary provides; a summary vector has ``start + width`` slots."""

    start: int

    @property
    def width(self) -> int:
        """Slots used from ``start``."""
        ...

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute positions of the float sum slots (may be empty)."""
        ...

    def positions(self, *columns: Any) -> Sequence[np.ndarray]:
        """Absolute positions to count, one array per counter kind (``-1``: skip)."""
        ...

    def sums(self, *columns: Any) -> np.ndarray:
        """Per-row contributions to ``sum_slots``, shape ``(rows, len(sum_slots))``."""
        ...

    def update(self, *columns: Any) -> np.ndarray:
        """The delta vector of a batch of rows (one entry per row in each column)."""
        ...

    def merge(self, vector: np.ndarray, other: np.ndarray) -> np.ndarray:
        """The summary of both vectors' rows: their sum."""
        ...

    def value(self, vector: np.ndarray) -> T_co:
        """The statistics held by ``vector`` (a delta, pane or window vector)."""
        ...

    def to_bytes(self, vector: np.ndarray) -> bytes:
        """This summary's slots of ``vector`` as bytes."""
        ...

    def from_bytes(self, data: bytes) -> np.ndarray:
        """A summary vector holding the slots saved by :meth:`to_bytes`."""
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


class SlotSummary:
    """``update`` and ``merge`` of a summary, from its ``positions`` and ``sums``.

    Subclasses set ``start`` and define ``width``, ``sum_slots``, ``positions``,
    ``sums`` and ``value``.
    """

    start: int

    @property
    def width(self) -> int:
        """Slots used from ``start``."""
        raise NotImplementedError

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute positions of the float sum slots (none unless overridden)."""
        return np.zeros(0, dtype=np.int64)

    def positions(self, *columns: Any) -> Sequence[np.ndarray]:
        """Absolute positions to count, one array per counter kind (``-1``: skip)."""
        raise NotImplementedError

    def sums(self, *columns: Any) -> np.ndarray:
        """Per-row contributions to ``sum_slots`` (none unless overridden)."""
        return np.zeros((len(columns[0]), 0))

    def update(self, *columns: Any) -> np.ndarray:
        """The delta vector (``start + width`` slots) of a batch of rows."""
        rows = len(columns[0])
        return pane_deltas(
            self.start + self.width,
            np.zeros(rows, dtype=np.int64),
            1,
            self.positions(*columns),
            self.sum_slots,
            self.sums(*columns),
        )[0]

    def merge(self, vector: np.ndarray, other: np.ndarray) -> np.ndarray:
        """The summary of both vectors' rows: their sum."""
        merged: np.ndarray = vector + other
        return merged
