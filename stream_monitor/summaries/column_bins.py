"""The bins of one column (a feature or the prediction) as a fixed-slot summary.

A column's slots are its reference bins (:mod:`stream_monitor.summaries.binning`),
then a null count and, for categorical columns, a count of values never seen in
the reference. Its value is those counts and its stability index against the
reference (:func:`stream_monitor.summaries.psi.psi`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor.state.vectors import SlotRange
from stream_monitor.summaries.binning import CategoricalBins, NumericBins
from stream_monitor.summaries.psi import DEFAULT_EPSILON, psi
from stream_monitor.summaries.slots import SlotSummary

if TYPE_CHECKING:
    from stream_monitor.summaries.reference import ColumnProfile


#: The new-value mask of a numeric column: nothing is ever new.
_NOTHING_NEW = np.zeros(0, dtype=bool)


@dataclass(frozen=True)
class ColumnStats:
    """One column's counts in a vector and its stability index against the reference."""

    counts: list[float]
    nulls: float
    new_values: float
    psi: float


@dataclass
class ColumnSlots(SlotSummary, SlotRange):
    """The slots of one column: ``size`` bins, then null, then (categorical) new.

    >>> from stream_monitor.summaries.reference import ColumnProfile
    >>> slots = ColumnSlots("x", 1, NumericBins([0.0]), ColumnProfile("numeric", [5, 5], 0))
    >>> stats = slots.value(slots.update(np.array([-1.0, 2.0, 3.0, np.nan])))
    >>> stats.counts, stats.nulls, round(stats.psi, 6)
    ([1.0, 2.0], 1.0, 0.115525)
    """

    name: str
    start: int
    bins: NumericBins | CategoricalBins
    reference: ColumnProfile
    epsilon: float = DEFAULT_EPSILON

    @property
    def size(self) -> int:
        """Number of bins."""
        return self.bins.size

    @property
    def width(self) -> int:
        """Slots used: bins, null, and new for categorical columns."""
        return self.size + (2 if isinstance(self.bins, CategoricalBins) else 1)

    def positions(self, values: np.ndarray | list[str | None]) -> tuple[np.ndarray, ...]:
        """Vector positions to count for each value (one array per counter kind)."""
        index, new = self.bin_positions(values)
        if isinstance(self.bins, NumericBins):
            return (index,)
        return index, np.where(new, self.new_slot, -1)

    def bin_positions(self, values: np.ndarray | list[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """The bin position of each value, and a mask of the new ones (empty when numeric).

        :meth:`positions`, with the rare new values as a mask rather than a position each.
        """
        if isinstance(self.bins, NumericBins):
            index = self.bins.index(np.asarray(values))
            index += self.start
            return index, _NOTHING_NEW
        return self.bins.index(values, self.start)  # type: ignore[arg-type]

    @property
    def new_slot(self) -> int:
        """Position of the count of values never seen in the reference (categorical columns)."""
        return self.start + self.size + 1

    def counts(self, vector: np.ndarray) -> np.ndarray:
        """Bin counts of this column in ``vector``."""
        return vector[self.start : self.start + self.size]

    def nulls(self, vector: np.ndarray) -> float:
        """Null count of this column in ``vector``."""
        return float(vector[self.start + self.size])

    def new_values(self, vector: np.ndarray) -> float:
        """Values never seen in the reference (0 for numeric columns)."""
        if isinstance(self.bins, NumericBins):
            return 0.0
        return float(vector[self.start + self.size + 1])

    def value(self, vector: np.ndarray) -> ColumnStats:
        """Counts, nulls, new values and stability index of this column in ``vector``."""
        counts = self.counts(vector)
        return ColumnStats(
            counts=counts.tolist(),
            nulls=self.nulls(vector),
            new_values=self.new_values(vector),
            psi=psi(self.reference.counts, counts, self.epsilon),
        )
