"""Each input partition's error stream, fed in its Kafka order to a concept-drift detector."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_monitor.config import ConceptDriftConfig, ModelConfig
from stream_monitor.state.keys import PartitionKey
from stream_monitor.summaries.concept import ConceptDriftDetector


def prediction_errors(task: str, threshold: float, predictions: Any, column: Any) -> np.ndarray:
    """The error stream of labeled rows: 0/1 misclassification, or absolute error.

    ``column`` is the rows' :func:`~stream_monitor.decode.columns.label_column`; NaN marks
    rows without a usable label (they are not fed to the detector).

    >>> from stream_monitor.decode.columns import label_column
    >>> labels = label_column("binary", [1, 1, None])
    >>> prediction_errors("binary", 0.5, np.array([0.9, 0.2, 0.7]), labels).tolist()
    [0.0, 1.0, nan]
    >>> labels = label_column("regression", [1.0, 1.5])
    >>> prediction_errors("regression", 0.5, np.array([3.0, 1.0]), labels).tolist()
    [2.0, 0.5]
    """
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

    def feed(self, errors: np.ndarray) -> list[int]:
        """Add errors (NaN skipped); for each detection, the index of the error that raised it.

        That is the last error of the chunk whose mean the detector flagged, so
        where a detection is counted depends on the stream alone, not on batches.
        """
        if self.detector is None:
            return []
        finite = np.flatnonzero(np.isfinite(errors))
        pending = len(self._pending)
        values = np.concatenate((self._pending, errors[finite]))
        whole = len(values) // self.chunk * self.chunk
        self._pending = values[whole:]
        if not whole:
            return []
        means = np.add.reduce(values[:whole].reshape(-1, self.chunk), axis=1) / self.chunk  # mean
        chunks = self.detector.update_many(means)
        self.detections += len(chunks)
        return [int(finite[(k + 1) * self.chunk - 1 - pending]) for k in chunks]

    def to_state(self) -> dict[str, Any]:
        """Pending errors and the detector's state, for a checkpoint."""
        return {
            "pending": self._pending.tolist(),
            "detections": self.detections,
            "detector": self.detector.to_state() if self.detector is not None else None,
        }

    def adopt(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint, unless this stream has already seen errors."""
        if self.detector is None or self.detector.n_seen or len(self._pending):
            return
        if state.get("detector") is not None:
            self.detector = ConceptDriftDetector.from_state(state["detector"])
        self._pending = np.asarray(state.get("pending", []), dtype=np.float64)
        self.detections = int(state.get("detections", 0))


class ErrorStreams(dict[PartitionKey, ErrorStream]):
    """A model version's error stream of each input partition, created on first use."""

    def __init__(self, model: ModelConfig, config: ConceptDriftConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def of(self, key: PartitionKey) -> ErrorStream:
        """The error stream of input partition ``key``."""
        stream = self.get(key)
        if stream is None:
            stream = self[key] = ErrorStream(self.config)
        return stream

    def feed(self, key: PartitionKey, predictions: Any, labels: Any) -> list[int]:
        """Feed labeled rows' errors to ``key``'s stream; the rows that raised a detection."""
        errors = prediction_errors(self.model.task, self.model.threshold, predictions, labels)
        return self.of(key).feed(errors)
