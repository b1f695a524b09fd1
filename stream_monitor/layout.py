"""Where each counter of a model version lives in its pane vectors.

All the state of one pane is one float64 vector: slot 0 counts events, then
each column (the prediction, then every feature) has its bins, a null slot and,
for categorical columns, a new-category slot; then the latency sketch and the
quality summary of the model's task (:mod:`stream_monitor.stats.slots`).
Updating a batch is one ``np.bincount`` over the positions of every event in
every column, plus a weighted one for the float sums; merging panes, windows,
replicas or restarts is vector addition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stream_monitor.config import ModelConfig
from stream_monitor.decode import ModelBatch, categorical_column, numeric_column
from stream_monitor.reference import ColumnProfile, Reference
from stream_monitor.sketches.binning import CategoricalBins, NumericBins
from stream_monitor.sketches.latency import LatencyHistogram, LatencySlots, LatencyStats
from stream_monitor.stats.classification import (
    BinaryQuality,
    BinaryQualitySlots,
    MulticlassQuality,
    MulticlassQualitySlots,
)
from stream_monitor.stats.psi import psi
from stream_monitor.stats.regression import RegressionQuality, RegressionSlots
from stream_monitor.stats.slots import pane_deltas

Quality = BinaryQuality | RegressionQuality | MulticlassQuality
QualitySlots = BinaryQualitySlots | RegressionSlots | MulticlassQualitySlots

EVENTS_SLOT = 0
#: Concept-drift detections credited to the pane in which they were raised.
DETECTIONS_SLOT = 1


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


def quality_slots(model: ModelConfig, reference: Reference, start: int) -> QualitySlots:
    """The quality summary of ``model``'s task, placed at ``start``."""
    if model.task == "binary":
        return BinaryQualitySlots(start, model.score_bins, model.threshold)
    if model.task == "multiclass":
        classes = model.classes or tuple(reference.prediction.categories)
        return MulticlassQualitySlots(start, classes)
    low, high = reference.prediction.minimum, reference.prediction.maximum
    shift = (low + high) / 2.0 if low is not None and high is not None else 0.0
    return RegressionSlots(start, y_shift=shift)


def label_column(task: str, labels: Sequence[Any]) -> Any:
    """Raw labels as the quality summary takes them: classes for multiclass, else numbers."""
    return (
        categorical_column(list(labels)) if task == "multiclass" else numeric_column(list(labels))
    )


class CounterLayout:
    """The pane-vector layout of one model version, fixed by its model and reference."""

    def __init__(self, model: ModelConfig, reference: Reference) -> None:
        self.model = model
        self.reference = reference
        self.epsilon = model.drift.epsilon
        start = DETECTIONS_SLOT + 1
        self.prediction = ColumnSlots(
            "prediction", start, reference.prediction.bins(), reference.prediction
        )
        start += self.prediction.width
        self.features: dict[str, ColumnSlots] = {}
        for name, profile in reference.features.items():
            slots = ColumnSlots(name, start, profile.bins(), profile)
            self.features[name] = slots
            start += slots.width
        self.latency = LatencySlots(start)
        start += self.latency.width
        self.quality: QualitySlots = quality_slots(model, reference, start)
        start += self.quality.width
        self.width = start
        self._sum_slots = np.concatenate((self.latency.sum_slots, self.quality.sum_slots))

    def pane_deltas(self, batch: ModelBatch, pane_rows: np.ndarray, n_panes: int) -> np.ndarray:
        """Count ``batch`` into ``n_panes`` vectors; ``pane_rows[i]`` is row i's pane (0-based).

        Rows with an inline label are counted in the quality summary too.
        """
        positions = [np.full(len(batch), EVENTS_SLOT, dtype=np.int64)]
        positions.extend(self.prediction.positions(batch.prediction))
        for name, slots in self.features.items():
            positions.extend(slots.positions(batch.features[name]))
        positions.extend(self.latency.positions(batch.latency_ms))
        labels = label_column(self.model.task, batch.labels)
        prediction: Any = batch.prediction
        positions.extend(self.quality.positions(prediction, labels))
        sums = np.concatenate(
            (self.latency.sums(batch.latency_ms), self.quality.sums(prediction, labels)),
            axis=1,
        )
        return pane_deltas(self.width, pane_rows, n_panes, positions, self._sum_slots, sums)

    def label_deltas(
        self, predictions: Any, labels: Sequence[Any], pane_rows: np.ndarray, n_panes: int
    ) -> np.ndarray:
        """Count joined labels (with their predictions) into the quality summary only."""
        column = label_column(self.model.task, labels)
        return pane_deltas(
            self.width,
            pane_rows,
            n_panes,
            self.quality.positions(predictions, column),
            self.quality.sum_slots,
            self.quality.sums(predictions, column),
        )

    def detections(self, vector: np.ndarray) -> float:
        """Concept-drift detections counted in a window vector."""
        return float(vector[DETECTIONS_SLOT])

    def detection_delta(self, count: int) -> np.ndarray:
        """A pane delta holding ``count`` detections."""
        delta = np.zeros(self.width)
        delta[DETECTIONS_SLOT] = count
        return delta

    def quality_values(self, vector: np.ndarray) -> dict[str, float]:
        """The quality metrics of a vector by metric name (``f1`` is macro F1 for multiclass)."""
        stats = self.quality.read(vector)
        values = {k: float(v) for k, v in asdict(stats).items() if isinstance(v, int | float)}
        if "macro_f1" in values:
            values["f1"] = values["macro_f1"]
        return values

    def quality_stats(self, vector: np.ndarray) -> Quality:
        """The quality metrics of a window vector."""
        return self.quality.read(vector)

    def latency_stats(self, vector: np.ndarray) -> LatencyStats:
        """Latency count and quantiles of a window vector."""
        return self.latency.read(vector)

    def latency_histogram(self, vector: np.ndarray) -> LatencyHistogram:
        """Cumulative latency buckets of a running-total vector."""
        return self.latency.histogram(vector)

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
