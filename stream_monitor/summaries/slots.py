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

    The one pane counter (:class:`PaneCounts` with every row's positions and sums).

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
    counts = PaneCounts(width, pane_rows, n_panes)
    for column in positions:
        counts.count(np.asarray(column, dtype=np.int64))
    if sum_slots is not None and sums is not None:
        counts.add_sums(np.asarray(sum_slots, dtype=np.int64), np.asarray(sums, dtype=np.float64))
    return counts.deltas()


class PaneCounts:
    """The pane deltas of one batch, gathered then counted with one ``np.bincount``.

    Positions come as arrays of one position per row (``-1``: not counted),
    several at once as the rows of a 2-D array, or as the positions of some
    rows only (``rows``, none of them ``-1``); float sums as ``(rows, slots)``
    contributions, of every row or of ``rows``. :meth:`deltas` shifts each
    position to its row's pane and counts them all in one ``np.bincount``
    (with several panes, or where a position is ``-1``, every position one
    more, so that ``-1`` lands in a slot that is dropped),
    then adds the sums with one weighted ``np.bincount`` per call of
    :meth:`add_sums`, in row order. Counts are exact; each sum slot adds its
    rows' contributions in row order, so rows that contribute nothing may be
    left out without changing a bit.

    >>> counts = PaneCounts(4, np.array([0, 1, 1]), 2)
    >>> counts.count(np.array([[0, 0, -1], [2, -1, 1]]))
    >>> counts.count(np.array([3]), rows=np.array([2]))
    >>> counts.add_sums(np.array([3]), np.array([[0.5], [2.0]]), rows=np.array([0, 2]))
    >>> counts.deltas().tolist()
    [[1.0, 0.0, 1.0, 0.5], [1.0, 1.0, 0.0, 3.0]]
    """

    def __init__(self, width: int, pane_rows: np.ndarray, n_panes: int) -> None:
        self.width = width
        self.n_panes = n_panes
        self.rows = len(pane_rows)
        #: Each row's first slot in the flattened ``(n_panes, width)`` deltas.
        self.offsets = np.asarray(pane_rows, dtype=np.int64) * width
        self._every_row: list[np.ndarray] = []
        self._some_rows: list[np.ndarray] = []
        self._out = np.zeros(n_panes * width)

    def count(self, positions: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Count ``positions`` (int64): one per row, a 2-D array of such, or one per ``rows``."""
        if rows is None:
            self._every_row.append(positions.reshape(-1))
        elif self.n_panes == 1:
            self._some_rows.append(positions)
        else:
            self._some_rows.append(positions + self.offsets[rows])

    def count_rows(self, slot: int, rows: np.ndarray | None = None) -> None:
        """Count 1 in ``slot`` for every row, or for ``rows`` (a boolean mask or row indexes)."""
        if self.n_panes == 1:
            if rows is None:
                self._out[slot] += self.rows
            else:
                self._out[slot] += np.count_nonzero(rows) if rows.dtype == bool else len(rows)
            return
        offsets = self.offsets if rows is None else self.offsets[rows]
        self._out[slot :: self.width] += np.bincount(offsets // self.width, minlength=self.n_panes)

    def add_counts(self, slots: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts`` to distinct ``slots`` (one pane only: counted without positions)."""
        if self.n_panes != 1:
            raise ValueError("counts without positions need rows of one pane")
        self._out[slots] += counts

    def add_sums(self, slots: np.ndarray, sums: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Add float contributions ``sums`` of every row (or of ``rows``) to ``slots``."""
        if not len(slots):
            return
        if self.n_panes == 1:  # one pane: each slot's sum in row order, as bincount adds them
            if len(sums):
                self._out[slots] += np.cumsum(sums, axis=0)[-1]
            return
        offsets = self.offsets if rows is None else self.offsets[rows]
        flat = (offsets[:, None] + slots[None, :]).ravel()
        self._out += np.bincount(flat, weights=sums.ravel(), minlength=self._out.size)

    def deltas(self) -> np.ndarray:
        """The ``(n_panes, width)`` deltas of everything counted and added."""
        total = self._out.size
        if self.n_panes == 1 and (self._every_row or self._some_rows):
            flat = np.concatenate([*self._every_row, *self._some_rows])
            try:  # positions are rarely -1 (a NaN latency): count them as they are
                self._out += np.bincount(flat, minlength=total)
            except ValueError:
                self._out += np.bincount(flat + 1, minlength=total + 1)[1:]
        elif self._every_row or self._some_rows:
            every = np.concatenate(self._every_row) if self._every_row else _NO_POSITIONS
            if every.size:
                shifted = np.tile(self.offsets, every.size // self.rows) + every + 1
                every = np.where(every >= 0, shifted, 0)
            flat = np.concatenate([every, *(p + 1 for p in self._some_rows)])
            self._out += np.bincount(flat, minlength=total + 1)[1:]
        return self._out.reshape(self.n_panes, self.width)


_NO_POSITIONS = np.zeros(0, dtype=np.int64)


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

    def counted(self, *columns: Any) -> tuple[np.ndarray | None, Sequence[np.ndarray], np.ndarray]:
        """The rows counted, their positions and their sums, for :class:`PaneCounts`.

        By default every row (None), with ``-1`` positions and zero sums where a
        row is not counted; a summary that counts few rows gives just those.
        """
        return None, self.positions(*columns), self.sums(*columns)

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
