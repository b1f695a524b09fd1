"""Where each counter of a model version lives in its pane vectors.

All the state of one pane is one float64 vector: slot 0 counts events, then
each column (the prediction, then every feature) has its bins, a null slot and,
for categorical columns, a new-category slot. Updating a batch is one
``np.bincount`` over the positions of every event in every column; merging
panes, windows, replicas or restarts is vector addition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from stream_monitor.decode import ModelBatch
from stream_monitor.reference import ColumnProfile, Reference
from stream_monitor.sketches.binning import CategoricalBins, NumericBins
from stream_monitor.stats.psi import psi

EVENTS_SLOT = 0


@dataclass
class ColumnSlots:
    """The slots of one column: ``size`` bins, then null, then (categorical) new."""

    name: str
    start: int
    bins: NumericBins | CategoricalBins
    reference: ColumnProfile

    @property
    def size(self) -> int:
        """Number of bins."""
        return self.bins.size

    @property
    def width(self) -> int:
        """Slots used: bins, null, and new for categorical columns."""
        return self.size + (2 if isinstance(self.bins, CategoricalBins) else 1)

    def positions(self, values: np.ndarray | list[str | None]) -> Iterator[np.ndarray]:
        """Vector positions to count for each value (one array per counter kind)."""
        if isinstance(self.bins, NumericBins):
            yield self.start + self.bins.index(np.asarray(values))
            return
        index, new = self.bins.index(values)  # type: ignore[arg-type]
        yield self.start + index
        yield np.where(new, self.start + self.size + 1, -1)

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


@dataclass(frozen=True)
class StabilityStats:
    """Stability statistics of one window."""

    events: int
    psi: float
    csi: dict[str, float]
    null_ratio: dict[str, float]
    new_category_ratio: dict[str, float]


class CounterLayout:
    """The pane-vector layout of one model version, fixed by its reference."""

    def __init__(self, reference: Reference, epsilon: float) -> None:
        self.reference = reference
        self.epsilon = epsilon
        start = EVENTS_SLOT + 1
        self.prediction = ColumnSlots(
            "prediction", start, reference.prediction.bins(), reference.prediction
        )
        start += self.prediction.width
        self.features: dict[str, ColumnSlots] = {}
        for name, profile in reference.features.items():
            slots = ColumnSlots(name, start, profile.bins(), profile)
            self.features[name] = slots
            start += slots.width
        self.width = start

    def pane_deltas(self, batch: ModelBatch, pane_rows: np.ndarray, n_panes: int) -> np.ndarray:
        """Count ``batch`` into ``n_panes`` vectors; ``pane_rows[i]`` is row i's pane (0-based)."""
        parts = [np.full(len(batch), EVENTS_SLOT, dtype=np.int64)]
        parts.extend(self.prediction.positions(batch.prediction))
        for name, slots in self.features.items():
            parts.extend(slots.positions(batch.features[name]))
        positions = np.stack(parts, axis=1)
        counted = positions >= 0
        flat = (positions + (pane_rows * self.width)[:, None])[counted]
        counts = np.bincount(flat, minlength=n_panes * self.width)
        return counts.reshape(n_panes, self.width).astype(np.float64)

    def stability(self, vector: np.ndarray) -> StabilityStats:
        """PSI, CSI, null and new-category ratios of a window vector."""
        events = int(vector[EVENTS_SLOT])
        csi: dict[str, float] = {}
        null_ratio: dict[str, float] = {}
        new_ratio: dict[str, float] = {}
        for name, slots in self.features.items():
            counts = slots.counts(vector)
            csi[name] = psi(np.asarray(slots.reference.counts), counts, self.epsilon)
            null_ratio[name] = slots.nulls(vector) / events if events else 0.0
            if isinstance(slots.bins, CategoricalBins):
                present = float(counts.sum())
                new_ratio[name] = slots.new_values(vector) / present if present else 0.0
        prediction_psi = psi(
            np.asarray(self.prediction.reference.counts),
            self.prediction.counts(vector),
            self.epsilon,
        )
        return StabilityStats(events, prediction_psi, csi, null_ratio, new_ratio)
