"""From grouped events to column batches: one :class:`ModelBatch` per model version, one
:class:`LabelBatch` per model.

Each chunk's field values are read into :class:`Rows` while its objects are
fresh (the features of each event with one :func:`operator.itemgetter` call of
orjson's own key strings, numeric columns as ``array('d')``); once the whole
batch is read, the rows become numpy columns and events without a usable
prediction or timestamp are rejected.
"""

from __future__ import annotations

import array
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.decode.batches import LabelBatch, ModelBatch, RawMessage, Reject
from stream_monitor.decode.columns import (
    MILLISECONDS_ABOVE,
    categorical_column,
    float_column,
    json_numbers,
    number_array,
    packed_doubles,
    parse_timestamp_s,
)
from stream_monitor.decode.paths import field_values, orjson_keys

if TYPE_CHECKING:
    from stream_monitor.config import FieldMap, ModelConfig
    from stream_monitor.decode.grouping import Groups


@dataclass(slots=True)
class Rows:
    """The raw field values of one model version's inference events, in event order."""

    #: Each row's message index (int64: becomes the batch's index column without a copy).
    indexes: array.array[int] = field(default_factory=lambda: array.array("q"))
    predictions: list[Any] = field(default_factory=list)
    timestamps: list[Any] = field(default_factory=list)
    latencies: array.array[float] = field(default_factory=lambda: array.array("d"))
    labels: list[Any] = field(default_factory=list)
    event_ids: list[Any] = field(default_factory=list)
    #: Per configured feature (config order): numbers (:func:`number_array`) of a
    #: numeric feature, :func:`categorical_column` values of a categorical one.
    features: list[array.array[float] | list[str | None]] = field(default_factory=list)
    #: False once rows of the typed and the careful path were joined (see :meth:`sort`).
    ordered: bool = True

    def add_indexes(self, indexes: Sequence[int] | np.ndarray) -> None:
        """Append the message indexes of new rows (a range or an array without a Python int
        each)."""
        if type(indexes) is range and indexes.step == 1:
            indexes = np.arange(indexes.start, indexes.stop, dtype=np.int64)
        if isinstance(indexes, np.ndarray):
            self.indexes.frombytes(indexes.astype(np.int64, copy=False).tobytes())
        else:
            self.indexes.extend(indexes)

    def extend(self, other: Rows) -> None:
        """Append the rows of ``other`` (of the same model)."""
        self.indexes += other.indexes
        self.predictions += other.predictions
        self.timestamps += other.timestamps
        self.latencies += other.latencies
        self.labels += other.labels
        self.event_ids += other.event_ids
        for mine, theirs in zip(self.features, other.features, strict=True):
            mine += theirs  # type: ignore[operator]

    def sort(self) -> None:
        """Put the rows in message order (stable: the rows of one message keep their order,
        as each message is read by one path)."""
        self.ordered = True
        if len(self.indexes) < 2:
            return
        order = np.argsort(np.frombuffer(self.indexes, dtype=np.int64), kind="stable")
        take = operator.itemgetter(*order.tolist())
        lists = [self.predictions, self.timestamps, self.labels, self.event_ids]
        arrays: list[array.array[Any]] = [self.indexes, self.latencies]
        for column in self.features:
            (arrays if isinstance(column, array.array) else lists).append(column)  # type: ignore[arg-type]
        for values in lists:
            values[:] = take(values)
        for numbers in arrays:
            moved = np.frombuffer(numbers, dtype=numbers.typecode)[order]
            numbers[:] = array.array(numbers.typecode, moved.tobytes())


class ColumnBuilder:
    """Reads grouped events into :class:`Rows`, then rows into column batches."""

    def __init__(self, models: Mapping[str, ModelConfig], fields: FieldMap) -> None:
        self.models = models
        self.fields = fields
        self._feature_names = {name: orjson_keys(list(m.features)) for name, m in models.items()}
        self._feature_getters = {
            model: itemgetter(*names) for model, names in self._feature_names.items() if names
        }

    def add(self, rows_of: dict[tuple[str, str], Rows], groups: Groups) -> None:
        """Append the field values of ``groups`` (one chunk's events) to ``rows_of``.

        Only the field values are kept, so the chunk's parsed objects can be freed.
        """
        fields = self.fields
        for key, (group_events, group_indexes) in groups.items():
            rows = rows_of.get(key) or self.new_rows(rows_of, key)
            rows.add_indexes(group_indexes)
            rows.predictions += field_values(group_events, fields.prediction)
            rows.timestamps += field_values(group_events, fields.timestamp)
            rows.latencies += number_array(field_values(group_events, fields.latency_ms))
            rows.labels += field_values(group_events, fields.label)
            rows.event_ids += field_values(group_events, fields.event_id)
            feature_dicts = field_values(group_events, fields.features)
            for column, values in zip(
                rows.features, self._feature_values(key[0], feature_dicts), strict=True
            ):
                if isinstance(column, list):
                    column += categorical_column(list(values))
                else:
                    column += number_array(values)

    def new_rows(self, rows_of: dict[tuple[str, str], Rows], key: tuple[str, str]) -> Rows:
        """Empty :class:`Rows` for the model version ``key``, added to ``rows_of``."""
        kinds = self.models[key[0]].features.values()
        rows = rows_of[key] = Rows(
            features=[array.array("d") if kind == "numeric" else [] for kind in kinds]
        )
        return rows

    def _feature_values(
        self, model: str, feature_dicts: list[dict[str, Any]]
    ) -> list[Sequence[Any]]:
        """The values of each configured feature (config order) over ``feature_dicts``.

        One ``itemgetter`` call per event reads every feature; when some event
        lacks one, each feature is read with ``dict.get`` (None where missing).
        """
        names = self._feature_names[model]
        getter = self._feature_getters.get(model)
        if getter is not None and feature_dicts:
            try:
                rows = list(map(getter, feature_dicts))
            except KeyError:
                pass
            else:
                if len(names) == 1:
                    return [rows]
                return list(zip(*rows, strict=True))
        return [[features.get(name) for features in feature_dicts] for name in names]

    def model_batch(
        self,
        model: str,
        version: str,
        rows: Rows,
        messages: Sequence[RawMessage],
        rejects: list[Reject],
    ) -> ModelBatch:
        """The columns of ``rows``, without the events whose prediction or timestamp is unusable."""
        config = self.models[model]
        if not rows.ordered:
            rows.sort()
        indexes = rows.indexes
        keep = np.ones(len(indexes), dtype=bool)

        raw_prediction = rows.predictions
        prediction: np.ndarray | list[str | None]
        if config.prediction_type == "numeric":
            prediction = json_numbers(raw_prediction)
            bad = np.isnan(prediction)
        else:
            prediction = categorical_column(raw_prediction)
            bad = np.fromiter((p is None for p in prediction), bool, len(prediction))
        for row in np.flatnonzero(bad):
            rejects.append(Reject(indexes[row], _prediction_reason(raw_prediction[row])))
        keep &= ~bad

        event_ts = self._event_times(rows.timestamps, indexes, messages, rejects, keep)
        columns = _feature_columns(config.features, rows.features, len(indexes))
        batch = ModelBatch(
            model=model,
            version=version,
            event_ts=event_ts,
            prediction=prediction,
            features=columns,
            latency_ms=float_column(rows.latencies),
            labels=rows.labels,
            event_ids=rows.event_ids,
            message_index=np.frombuffer(indexes, dtype=np.int64),
        )
        return batch if keep.all() else batch.take(keep)

    def label_batch(
        self,
        model: str,
        events: list[dict[str, Any]],
        indexes: list[int],
        messages: Sequence[RawMessage],
        rejects: list[Reject],
    ) -> LabelBatch:
        """The columns of ``model``'s label events, without those whose timestamp is unusable."""
        keep = np.ones(len(events), dtype=bool)
        raw_ts = field_values(events, self.fields.timestamp)
        event_ts = self._event_times(raw_ts, indexes, messages, rejects, keep)
        labels = LabelBatch(
            model=model,
            event_ids=field_values(events, self.fields.event_id),
            labels=field_values(events, self.fields.label),
            event_ts=event_ts,
            message_index=np.asarray(indexes, dtype=np.int64),
        )
        return labels if keep.all() else labels.take(keep)

    def _event_times(
        self,
        raw: list[Any],
        indexes: Sequence[int],
        messages: Sequence[RawMessage],
        rejects: list[Reject],
        keep: np.ndarray,
    ) -> np.ndarray:
        """Event times in epoch seconds of the ``raw`` timestamp values (``keep`` cleared
        and a reject added where one is unusable)."""
        seconds = packed_doubles(raw)  # None: a null, text or an integer beyond float range
        if seconds is not None:
            # Numbers (and booleans, which pack as 0 and 1): keep them if every one is a
            # valid time after 1 s past the epoch; otherwise judge value by value below.
            seconds = np.where(seconds > MILLISECONDS_ABOVE, seconds / 1000.0, seconds)
            if np.isfinite(seconds).all() and np.all(seconds > 1.0):
                return seconds
        seconds = np.empty(len(raw), dtype=np.float64)
        for row, value in enumerate(raw):
            if value is None:
                kafka_ms = messages[indexes[row]].timestamp_ms
                parsed = kafka_ms / 1000.0 if kafka_ms and kafka_ms > 0 else None
            else:
                parsed = parse_timestamp_s(value)
            if parsed is None:
                seconds[row] = 0.0
                if keep[row]:
                    rejects.append(Reject(indexes[row], "bad_timestamp", repr(value)[:100]))
                    keep[row] = False
            else:
                seconds[row] = parsed
        return seconds


def _feature_columns(
    names: Iterable[str], features: list[array.array[float] | list[str | None]], rows: int
) -> dict[str, np.ndarray | list[str | None]]:
    """Each feature's column by name: the numeric ones rows of one float64 block, NaN for
    non-finite (checked in one pass over the block, not one per feature)."""
    numeric = [column for column in features if type(column) is not list]
    joined = bytearray().join(numeric)  # type: ignore[arg-type]  # array('d') is a buffer
    block = iter(float_column(joined).reshape(len(numeric), rows))
    return {
        name: column if type(column) is list else next(block)
        for name, column in zip(names, features, strict=True)
    }


def _prediction_reason(value: Any) -> str:
    """The reject reason of an unusable prediction value."""
    if value is None:
        return "missing_field"
    if isinstance(value, float) and not math.isfinite(value):
        return "non_finite"
    return "wrong_type"
