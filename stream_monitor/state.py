"""The state of one model version: reference, pane vectors, sliding windows, error stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_monitor.concept import ConceptDriftDetector
from stream_monitor.config import ConceptDriftConfig, LimitsConfig, ModelConfig, WindowConfig
from stream_monitor.decode import ModelBatch, Reject, concat_batches
from stream_monitor.layout import CounterLayout, label_column
from stream_monitor.reference import Reference, build_reference
from stream_monitor.windows import SlidingWindows, late_mask, pane_of, panes_for


@dataclass
class Counted:
    """What :meth:`ModelVersionState.update` did with a batch."""

    rejects: list[Reject]
    batch: ModelBatch | None = None
    panes: np.ndarray | None = None


def prediction_errors(task: str, threshold: float, predictions: Any, labels: Any) -> np.ndarray:
    """The error stream of labeled rows: 0/1 misclassification, or absolute error.

    NaN marks rows without a usable label (they are not fed to the detector).

    >>> prediction_errors("binary", 0.5, np.array([0.9, 0.2, 0.7]), [1, 1, None]).tolist()
    [0.0, 1.0, nan]
    >>> prediction_errors("regression", 0.5, np.array([3.0, 1.0]), [1.0, 1.5]).tolist()
    [2.0, 0.5]
    """
    column = label_column(task, labels)
    if task == "multiclass":
        return np.array(
            [
                np.nan if y is None else float(p != y)
                for p, y in zip(predictions, column, strict=True)
            ]
        )
    scores = np.asarray(predictions, dtype=np.float64)
    if task == "binary":
        usable = (column == 0) | (column == 1)
        return np.where(usable, ((scores >= threshold) != (column == 1)).astype(float), np.nan)
    return np.abs(scores - column)


class ErrorStream:
    """Feeds a model version's errors to a concept-drift detector in chunks.

    Each ``chunk`` consecutive errors (in arrival order, carried across batches,
    so the result does not depend on batching) become one mean fed to the
    detector: river's detectors cost microseconds per value, so ``chunk`` bounds
    the per-event cost; ``chunk: 1`` feeds every labeled event.
    """

    def __init__(self, config: ConceptDriftConfig) -> None:
        self.chunk = config.chunk
        self.detector = (
            ConceptDriftDetector(config.detector, **config.params)
            if config.detector != "none"
            else None
        )
        self._pending = np.empty(0)
        self.detections = 0
        self.last_mean = float("nan")

    def feed(self, errors: np.ndarray) -> int:
        """Add errors (NaN skipped); the number of detections they raised."""
        if self.detector is None:
            return 0
        values = np.concatenate((self._pending, errors[np.isfinite(errors)]))
        whole = len(values) // self.chunk * self.chunk
        self._pending = values[whole:]
        if not whole:
            return 0
        means = values[:whole].reshape(-1, self.chunk).mean(axis=1)
        self.last_mean = float(means[-1])
        found = len(self.detector.update_many(means))
        self.detections += found
        return found


class ModelVersionState:
    """Counts of one model version in event-time panes, and its sliding windows.

    Without a baseline the first ``reference.warmup_events`` events become the
    reference; they are buffered (a bounded number) and counted in their panes
    as soon as the reference exists.
    """

    def __init__(
        self,
        model: ModelConfig,
        version: str,
        windows: WindowConfig,
        limits: LimitsConfig,
        concept_drift: ConceptDriftConfig,
        reference: Reference | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.pane_s = windows.pane_s
        self.allowed_lateness_s = windows.allowed_lateness_s
        self.window_sizes = {
            name: panes_for(size, windows.pane_s) for name, size in windows.sizes.items()
        }
        lateness_panes = (
            panes_for(windows.allowed_lateness_s, windows.pane_s)
            if windows.allowed_lateness_s
            else 0
        )
        self.keep_panes = max(self.window_sizes.values()) + lateness_panes
        self.max_known_categories = limits.max_known_categories
        self.watermark_s = -np.inf
        self.events_total = 0
        self.late_labels = 0
        self.layout: CounterLayout | None = None
        self.windows: SlidingWindows | None = None
        self.cumulative: np.ndarray | None = None
        self.quality_reference: dict[str, float] = {}
        self.errors = ErrorStream(concept_drift)
        self._warmup: list[ModelBatch] = []
        self._warmup_rows = 0
        if reference is not None:
            self._start(reference, None)

    @property
    def reference(self) -> Reference | None:
        """The reference in use, None while warming up."""
        return self.layout.reference if self.layout else None

    def _start(self, reference: Reference, rows: ModelBatch | None) -> None:
        self.layout = CounterLayout(self.model, reference)
        self.windows = SlidingWindows(self.layout.width, self.window_sizes, self.keep_panes)
        self.cumulative = np.zeros(self.layout.width)
        self.quality_reference = dict(reference.quality)
        if rows is not None and len(rows):
            self.quality_reference = reference_quality(self.layout, rows)

    def update(self, batch: ModelBatch) -> Counted:
        """Count ``batch`` (or buffer it while warming up); late rows are rejected."""
        if self.layout is not None:
            return self._count(batch)
        self._warmup.append(batch)
        self._warmup_rows += len(batch)
        needed = self.model.reference.warmup_events
        if self._warmup_rows < needed:
            return Counted([])
        buffered = concat_batches(self._warmup)
        self._warmup, self._warmup_rows = [], 0
        head = buffered.take(np.arange(needed))
        reference = build_reference(
            self.model,
            [head],
            source=f"warmup:{needed}",
            max_known_categories=self.max_known_categories,
        )
        self._start(reference, head)
        return self._count(buffered)

    def _count(self, batch: ModelBatch) -> Counted:
        assert self.layout is not None and self.windows is not None
        assert self.cumulative is not None
        late = late_mask(batch.event_ts, self.watermark_s, self.allowed_lateness_s)
        rejects = [Reject(int(i), "late") for i in batch.message_index[late]]
        if rejects:
            batch = batch.take(~late)
        if len(batch) == 0:
            return Counted(rejects)
        pane_index = pane_of(batch.event_ts, self.pane_s)
        self._add(pane_index, self.layout.pane_deltas, batch)
        self.watermark_s = max(self.watermark_s, float(batch.event_ts.max()))
        self.windows.advance(int(pane_of(np.array([self.watermark_s]), self.pane_s)[0]))
        self.events_total += len(batch)
        self._feed_errors(batch.prediction, batch.labels)
        return Counted(rejects, batch, pane_index)

    def _feed_errors(self, predictions: Any, labels: list[Any]) -> None:
        """Feed the error stream; a detection is counted in the watermark's pane."""
        assert self.layout is not None and self.windows is not None
        assert self.cumulative is not None and self.windows.end_pane is not None
        errors = prediction_errors(self.model.task, self.model.threshold, predictions, labels)
        found = self.errors.feed(errors)
        if found:
            delta = self.layout.detection_delta(found)
            self.windows.add(self.windows.end_pane, delta)
            self.cumulative += delta

    def _add(self, pane_index: np.ndarray, deltas_of: Any, *columns: Any) -> None:
        assert self.windows is not None and self.cumulative is not None
        panes, rows = np.unique(pane_index, return_inverse=True)
        deltas = deltas_of(*columns, rows.astype(np.int64), len(panes))
        for pane, delta in zip(panes.tolist(), deltas, strict=True):
            self.windows.add(pane, delta)
            self.cumulative += delta

    def add_labels(self, panes: np.ndarray, predictions: Any, labels: list[Any]) -> int:
        """Count joined labels in their predictions' panes; returns how many were too late."""
        assert self.layout is not None and self.windows is not None
        oldest = self.windows.oldest_pane
        kept = panes >= oldest if oldest is not None else np.ones(len(panes), dtype=bool)
        late = int((~kept).sum())
        self.late_labels += late
        if late:
            rows = np.flatnonzero(kept)
            panes = panes[rows]
            predictions = _take(predictions, rows)
            labels = [labels[i] for i in rows]
        if len(panes):
            self._add(panes, self.layout.label_deltas, predictions, labels)
            self._feed_errors(predictions, labels)
        return late


def reference_quality(layout: CounterLayout, rows: ModelBatch) -> dict[str, float]:
    """Quality metrics of reference rows with inline labels (empty when none is labeled)."""
    profile = layout.pane_deltas(rows, np.zeros(len(rows), dtype=np.int64), 1)[0]
    values = layout.quality_values(profile)
    return values if values.get("labeled", 0) > 0 else {}


def _take(values: Any, rows: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows]
