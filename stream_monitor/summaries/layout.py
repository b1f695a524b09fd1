"""Where each counter of a model version lives in its pane vectors.

All the state of one pane is one float64 vector: slot 0 counts events, then
each column (the prediction, then every feature) has its bins, a null slot and,
for categorical columns, a new-category slot; then the latency sketch and the
quality summary of the model's task (:mod:`stream_monitor.summaries.slots`).
Updating a batch is one ``np.bincount`` over the positions of every event in
every column (:class:`~stream_monitor.summaries.slots.PaneCounts`), plus a
weighted one for each summary's float sums; merging panes, windows,
replicas or restarts is vector addition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from stream_monitor.config import ModelConfig
from stream_monitor.decode.batches import ModelBatch
from stream_monitor.decode.columns import numeric_column
from stream_monitor.snapshot import ConfusionMatrix, LatencyHistogram, LatencyStats, StabilityStats
from stream_monitor.summaries.binning import (
    MAX_BLOCK_EDGES,
    CategoricalBins,
    CategoricalBinsBlock,
    NumericBins,
    NumericBinsBlock,
)
from stream_monitor.summaries.classification import (
    BinaryQualitySlots,
    MulticlassQualitySlots,
)
from stream_monitor.summaries.column_bins import ColumnSlots
from stream_monitor.summaries.estimate import EstimateSlots, estimation_errors
from stream_monitor.summaries.latency import LatencySlots
from stream_monitor.summaries.psi import StabilityIndex
from stream_monitor.summaries.quality_labels import quality_labels
from stream_monitor.summaries.reference import Reference
from stream_monitor.summaries.regression import RegressionSlots
from stream_monitor.summaries.slots import PaneCounts

QualitySlots = BinaryQualitySlots | RegressionSlots | MulticlassQualitySlots

EVENTS_SLOT = 0
#: Concept-drift detections credited to the pane in which they were raised.
DETECTIONS_SLOT = 1


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


def estimate_slots(model: ModelConfig, reference: Reference, start: int) -> EstimateSlots | None:
    """The estimate's summary at ``start``: a binary model whose reference has a calibration map."""
    calibration = reference.calibration
    if model.task != "binary" or not model.estimation.enabled or calibration is None:
        return None
    return EstimateSlots(start, calibration, model.threshold)


def number_column(values: Any) -> np.ndarray:
    """``values`` as float64 (an array as it is); in a list, None and non-numbers become NaN.

    >>> number_column([1, None, True, "x", 0.5]).tolist()
    [1.0, nan, 1.0, nan, 0.5]
    """
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(np.float64, copy=False)
    return numeric_column(list(values))


def quality_column(task: str, values: Any) -> Any:
    """A prediction or label column as the quality summary of ``task`` takes it."""
    return values if task == "multiclass" else number_column(values)


class CounterLayout:
    """The pane-vector layout of one model version, fixed by its model and reference."""

    def __init__(self, model: ModelConfig, reference: Reference) -> None:
        self.model = model
        self.reference = reference
        self.epsilon = model.drift.epsilon
        start = DETECTIONS_SLOT + 1
        prediction = reference.prediction
        self.prediction = ColumnSlots(
            "prediction", start, prediction.bins(), prediction, self.epsilon
        )
        start += self.prediction.width
        self.features: dict[str, ColumnSlots] = {}
        for name, profile in reference.features.items():
            slots = ColumnSlots(name, start, profile.bins(), profile, self.epsilon)
            self.features[name] = slots
            start += slots.width
        self.latency = LatencySlots(start)
        start += self.latency.width
        self.quality: QualitySlots = quality_slots(model, reference, start)
        start += self.quality.width
        #: Every event's score through the reference's calibration map (binary models with one).
        self.estimate = estimate_slots(model, reference, start)
        start += self.estimate.width if self.estimate is not None else 0
        self.width = start
        #: The prediction's and every feature's bins, in order (PSI, then each CSI).
        self.stability_columns = StabilityColumns(
            [self.prediction, *self.features.values()], self.epsilon
        )
        #: The prediction (None) and the features whose numeric bins are counted together
        #: (:class:`NumericBinsBlock`), and the other columns.
        columns: dict[str | None, ColumnSlots] = {None: self.prediction}
        columns.update(self.features)
        blocked = {
            name: slots.bins
            for name, slots in columns.items()
            if isinstance(slots.bins, NumericBins) and len(slots.bins.edges) <= MAX_BLOCK_EDGES
        }
        #: Whether the prediction is the block's first column; the features that follow it.
        self._prediction_blocked = None in blocked
        self._blocked_features = [name for name in blocked if name is not None]
        self._block = NumericBinsBlock(list(blocked.values())) if blocked else None
        self._block_starts = np.array([[columns[name].start] for name in blocked], np.int64)
        #: The slots of :meth:`NumericBinsBlock.histogram`'s counts: each column's bins and null.
        self._block_slots = (
            np.concatenate(
                [
                    np.arange(columns[n].start, columns[n].start + b.size + 1)
                    for n, b in blocked.items()
                ]
            )
            if blocked
            else np.zeros(0, dtype=np.int64)
        )
        #: The categorical columns, binned together (:class:`CategoricalBinsBlock`); their
        #: new-value slots; the numeric columns with too many edges for the block.
        categorical = [
            (n, slots, slots.bins)
            for n, slots in columns.items()
            if isinstance(slots.bins, CategoricalBins)
        ]
        self._categorical_names = [n for n, _, _ in categorical]
        self._categorical_block = (
            CategoricalBinsBlock(
                [b for _, _, b in categorical], [s.start for _, s, _ in categorical]
            )
            if categorical
            else None
        )
        self._new_slots = [slots.new_slot for _, slots, _ in categorical]
        self._unblocked = [
            (n, slots)
            for n, slots in columns.items()
            if n not in blocked and isinstance(slots.bins, NumericBins)
        ]
        #: Each feature's null slot; each categorical feature's new-value slot and column.
        self._null_slots = np.array([s.start + s.size for s in self.features.values()], np.int64)
        self._categorical = [
            (name, column, slots.new_slot)
            for column, (name, slots) in enumerate(self.features.items(), start=1)
            if isinstance(slots.bins, CategoricalBins)
        ]

    def pane_deltas(
        self, batch: ModelBatch, pane_rows: np.ndarray, n_panes: int, labels: Any = None
    ) -> np.ndarray:
        """Count ``batch`` into ``n_panes`` vectors; ``pane_rows[i]`` is row i's pane (0-based).

        Rows with an inline label are counted in the quality summary too; ``labels``
        is the batch's :func:`quality_labels` when the caller already has it.
        Every position goes to one :class:`PaneCounts`: the events slot and new
        categories as counts of rows, the quality summary for its labeled rows only.
        """
        counts = PaneCounts(self.width, pane_rows, n_panes)
        counts.count_rows(EVENTS_SLOT)
        if self._block is not None:
            columns = list(map(batch.features.__getitem__, self._blocked_features))
            if self._prediction_blocked:
                columns.insert(0, batch.prediction)
            values = np.array(columns, dtype=np.float64)
            if n_panes == 1:  # the common case: sorted columns, no position per value
                counts.add_counts(self._block_slots, self._block.histogram(values))
            else:
                counts.count(self._block.positions(values, self._block_starts))
        if self._categorical_block is not None:
            self._count_categorical(counts, batch)
        for name, slots in self._unblocked:
            counts.count(slots.bin_positions(batch.column(name))[0])
        _count_summary(counts, self.latency, batch.latency_ms)
        if labels is None:
            labels = quality_labels(self.model.task, batch.labels)
        prediction = quality_column(self.model.task, batch.prediction)
        _count_summary(counts, self.quality, prediction, labels)
        if self.estimate is not None:
            _count_summary(counts, self.estimate, prediction)
        return counts.deltas()

    def _count_categorical(self, counts: PaneCounts, batch: ModelBatch) -> None:
        """Count the categorical columns' bins, and their new values (rare) as rows of each
        column's new-value slot."""
        assert self._categorical_block is not None
        columns: list[Any] = list(map(batch.column, self._categorical_names))  # lists of text
        positions, new = self._categorical_block.index(columns)
        counts.count(positions)
        if new.any():
            for slot, column_new in zip(
                self._new_slots, new.reshape(len(columns), -1), strict=True
            ):
                if column_new.any():
                    counts.count_rows(slot, column_new)

    def label_deltas(
        self, predictions: Any, column: Any, pane_rows: np.ndarray, n_panes: int
    ) -> np.ndarray:
        """Count joined labels (their :func:`quality_labels`) into the quality summary only."""
        counts = PaneCounts(self.width, pane_rows, n_panes)
        _count_summary(counts, self.quality, quality_column(self.model.task, predictions), column)
        return counts.deltas()

    def events(self, vector: np.ndarray) -> int:
        """Events counted in a window vector."""
        return int(vector[EVENTS_SLOT])

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
        stats = self.quality.value(vector)
        found = ((f.name, getattr(stats, f.name)) for f in fields(stats))
        values = {k: float(v) for k, v in found if isinstance(v, int | float)}
        if "macro_f1" in values:
            values["f1"] = values["macro_f1"]
        return values

    def confusion_matrix(self, vector: np.ndarray) -> ConfusionMatrix | None:
        """The confusion matrix of a vector; None for a regression model."""
        if isinstance(self.quality, RegressionSlots):
            return None
        return self.quality.confusion_matrix(vector)

    def estimated_values(
        self, vector: np.ndarray, quality: dict[str, float]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The label-free estimate of a vector's quality, and its error against ``quality``
        (the realized values); both empty without a calibration map."""
        if self.estimate is None:
            return {}, {}
        estimate = self.estimate.value(vector).metrics()
        return estimate, estimation_errors(estimate, quality)

    def latency_stats(self, vector: np.ndarray) -> LatencyStats:
        """Latency count and quantiles of a window vector."""
        return self.latency.value(vector)

    def latency_histogram(self, vector: np.ndarray) -> LatencyHistogram:
        """Cumulative latency buckets of a running-total vector."""
        return self.latency.histogram(vector)

    def stability(self, vector: np.ndarray) -> StabilityStats:
        """PSI, CSI, null and new-category ratios of a window vector."""
        events = int(vector[EVENTS_SLOT])
        index, present = self.stability_columns.read(vector)
        csi = dict(zip(self.features, index[1:], strict=True))
        nulls = vector[self._null_slots].tolist()
        ratios = [n / events if events else 0.0 for n in nulls]
        null_ratio = dict(zip(self.features, ratios, strict=True))
        new_ratio = {
            name: float(vector[slot]) / present[column] if present[column] else 0.0
            for name, column, slot in self._categorical
        }
        return StabilityStats(events, index[0], csi, null_ratio, new_ratio)


def _count_summary(
    counts: PaneCounts, summary: QualitySlots | LatencySlots | EstimateSlots, *columns: Any
) -> None:
    """Count the rows ``summary`` counts of ``columns``, and add their sums."""
    rows, positions, sums = summary.counted(*columns)
    for column in positions:
        counts.count(column, rows)
    counts.add_sums(summary.sum_slots, sums, rows)


class StabilityColumns:
    """The stability index of the prediction and every feature, read from their slots.

    Gathers the columns' bin slots of a vector in order and hands them to one
    :class:`stream_monitor.summaries.psi.StabilityIndex`.

    >>> from stream_monitor.summaries.psi import psi
    >>> from stream_monitor.summaries.reference import ColumnProfile
    >>> from stream_monitor.summaries.binning import NumericBins
    >>> a = ColumnSlots("a", 1, NumericBins([0.0]), ColumnProfile("numeric", [5, 5], 0))
    >>> b = ColumnSlots("b", 4, NumericBins([0.0, 1.0]), ColumnProfile("numeric", [1, 2, 3], 0))
    >>> vector = np.array([9.0, 9.0, 1.0, 0.0, 0.0, 4.0, 2.0, 0.0])
    >>> index, present = StabilityColumns([a, b], 1e-4).read(vector)
    >>> index == [psi(np.array([5, 5]), vector[1:3]), psi(np.array([1, 2, 3]), vector[4:7])]
    True
    >>> present
    [10.0, 6.0]
    """

    def __init__(self, columns: Sequence[ColumnSlots], epsilon: float) -> None:
        self.slots = np.concatenate([np.arange(c.start, c.start + c.size) for c in columns])
        self.index = StabilityIndex([c.reference.counts for c in columns], epsilon)

    def read(self, vector: np.ndarray) -> tuple[list[float], list[float]]:
        """Stability index and count of present (non-null) values of each column."""
        return self.index.read(vector[self.slots])
