"""What flows through the pipeline: raw messages in, rejects, and decoded column batches.

A :class:`RawMessage` is one Kafka message (or one line of a file); the
decoder turns a batch of them into a :class:`ModelBatch` of numpy columns per
model version, a :class:`LabelBatch` per model, and a :class:`Reject` for each
event it could not use, with one of the :data:`REASONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: Every reason an event can be rejected for (README, "Bad input"); exported from 0.
REASONS = (
    "empty",
    "oversized",
    "batch_too_large",
    "malformed_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "non_finite",
    "unknown_model",
    "bad_timestamp",
    "late",
    "future_timestamp",
    "too_many_versions",
    "late_label",
    "label_without_join",
    "state_conflict",
    "late_partial",
)


class RawMessage(NamedTuple):
    """One Kafka message as the engine needs it (or one line of a replay file).

    A tuple, because one is built per consumed message: ten times cheaper than
    a frozen dataclass.
    """

    value: bytes | None
    timestamp_ms: int | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class Reject:
    """An event (or whole message) that was not used, and why.

    ``message_index`` is -1 for an event buffered from an earlier batch (its
    message can no longer be dead-lettered; it is still counted).
    """

    message_index: int
    reason: str
    detail: str = ""


@dataclass
class ModelBatch:
    """The valid events of one model version in one batch, as columns.

    Numeric columns are float64 with NaN for null; categorical columns are lists
    of ``str | None``. ``message_index`` maps each row back to its message.
    """

    model: str
    version: str
    event_ts: np.ndarray
    prediction: np.ndarray | list[str | None]
    features: dict[str, np.ndarray | list[str | None]]
    latency_ms: np.ndarray
    labels: list[Any]
    event_ids: list[Any]
    message_index: np.ndarray

    def __len__(self) -> int:
        return len(self.event_ts)

    def column(self, name: str | None) -> np.ndarray | list[str | None]:
        """The prediction (``name`` None) or the feature ``name``."""
        return self.prediction if name is None else self.features[name]

    def take(self, rows: np.ndarray) -> ModelBatch:
        """The batch restricted to ``rows`` (an index array or boolean mask)."""
        index = np.flatnonzero(rows) if rows.dtype == bool else rows
        return ModelBatch(
            model=self.model,
            version=self.version,
            event_ts=self.event_ts[index],
            prediction=_take(self.prediction, index),
            features={name: _take(col, index) for name, col in self.features.items()},
            latency_ms=self.latency_ms[index],
            labels=[self.labels[i] for i in index],
            event_ids=[self.event_ids[i] for i in index],
            message_index=self.message_index[index],
        )


def concat_batches(batches: Sequence[ModelBatch]) -> ModelBatch:
    """One batch holding the rows of ``batches`` in order (all of one model version)."""
    first = batches[0]
    if len(batches) == 1:
        return first

    def join(columns: list[Any]) -> Any:
        if isinstance(columns[0], np.ndarray):
            return np.concatenate(columns)
        return [value for column in columns for value in column]

    return ModelBatch(
        model=first.model,
        version=first.version,
        event_ts=join([b.event_ts for b in batches]),
        prediction=join([b.prediction for b in batches]),
        features={name: join([b.features[name] for b in batches]) for name in first.features},
        latency_ms=join([b.latency_ms for b in batches]),
        labels=join([b.labels for b in batches]),
        event_ids=join([b.event_ids for b in batches]),
        message_index=join([b.message_index for b in batches]),
    )


@dataclass
class LabelBatch:
    """Label events of one model, waiting to be joined to their predictions by event id."""

    model: str
    event_ids: list[Any]
    labels: list[Any]
    event_ts: np.ndarray
    message_index: np.ndarray

    def __len__(self) -> int:
        return len(self.event_ids)

    def take(self, rows: np.ndarray) -> LabelBatch:
        """The label events at ``rows`` (an index array or boolean mask)."""
        index = np.flatnonzero(rows) if rows.dtype == bool else rows
        return LabelBatch(
            model=self.model,
            event_ids=[self.event_ids[i] for i in index],
            labels=[self.labels[i] for i in index],
            event_ts=self.event_ts[index],
            message_index=self.message_index[index],
        )


def _take(column: np.ndarray | list[str | None], index: np.ndarray) -> Any:
    if isinstance(column, np.ndarray):
        return column[index]
    return [column[i] for i in index]
