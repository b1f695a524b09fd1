"""Decode a batch of raw messages into numpy columns per (model, version).

The per-event Python work is parsing JSON (orjson) and reading fields out of the
parsed dicts; everything else works on whole columns. Messages are parsed a
chunk (:data:`CHUNK_BYTES`) at a time and each chunk's fields are read while its
objects are still in the CPU cache, which then frees them. For the usual chunk
(plain field names, known models, features objects) the model, version and
features of every event are checked a column at a time, the features of each
event are read with one :func:`operator.itemgetter` call (of orjson's own key
strings, see :func:`_orjson_keys`), and each numeric column becomes floats in
one ``array('d')`` call. Anything unusual falls back to checking event by event,
with the same results.
Bad input never raises: each rejected event becomes a :class:`Reject` with its
reason (SPEC section 3), and the caller counts, logs and dead-letters it.
"""

from __future__ import annotations

import array
import gc
import heapq
import json
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import orjson

from stream_monitor.config import FieldMap, LimitsConfig, ModelConfig
from stream_monitor.decode.batches import LabelBatch, ModelBatch, RawMessage, Reject
from stream_monitor.decode.columns import (
    MILLISECONDS_ABOVE,
    categorical_column,
    float_column,
    json_numbers,
    number_array,
    number_or_none,
    parse_timestamp_s,
)

#: Timestamp types converted with one numpy call (booleans are not timestamps).
_TIME_VALUE_TYPES = frozenset({float, int})
#: Model-version types that may be valid (``bool``, which equals 0 and 1, is not).
_VERSION_VALUE_TYPES = frozenset({str, int, type(None)})
#: Bytes that ``bytes.strip`` removes: a message starting with none of them is not blank.
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")
_message_index = attrgetter("message_index")

#: Events (and their message indexes) by (model, version), and label events by model.
Groups = dict[tuple[str, str], tuple[list[dict[str, Any]], list[int]]]
LabelGroups = dict[str, tuple[list[dict[str, Any]], list[int]]]


@dataclass
class DecodeResult:
    """What one batch of messages decoded to."""

    batches: list[ModelBatch] = field(default_factory=list)
    labels: list[LabelBatch] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    events: int = 0


def _orjson_keys(names: list[str]) -> list[str]:
    """``names`` as the string objects orjson makes of them when they are keys.

    orjson keeps the keys it has made in a cache and hands out the same objects
    for the same keys, so a dict lookup with these finds its key by identity
    instead of comparing the text. Equal strings either way.

    >>> _orjson_keys(["model", "features"])
    ['model', 'features']
    """
    keys: list[str] = list(orjson.loads(orjson.dumps(dict.fromkeys(names))))
    return keys if len(keys) == len(names) else names


def _getter(path: str) -> Callable[[dict[str, Any]], Any]:
    """A function reading a key or a dotted path from a decoded event."""
    if "." not in path:
        return lambda event: event.get(path)
    parts = _orjson_keys(path.split("."))

    def get(event: dict[str, Any]) -> Any:
        node: Any = event
        for part in parts:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node

    return get


def _column(events: Sequence[dict[str, Any]], path: str) -> list[Any]:
    """The values of one field over ``events`` (None where missing)."""
    if "." not in path:
        return [event.get(path) for event in events]
    get = _getter(path)
    return [get(event) for event in events]


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _sanitize(node: Any) -> Any:
    """What the lenient parser accepted, made representable like orjson's output.

    Lone surrogates become U+FFFD; integers beyond 64 bits become floats (None
    beyond float range), so that state and checkpoints can always be encoded.
    """
    if isinstance(node, str):
        return node.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(node, list):
        return [_sanitize(item) for item in node]
    if isinstance(node, dict):
        return {_sanitize(key): _sanitize(value) for key, value in node.items()}
    if type(node) is int and not _INT64_MIN <= node <= _UINT64_MAX:
        return number_or_none(node) and float(node)
    return node


def _loads(value: bytes) -> Any:
    r"""Parse JSON; NaN and Infinity literals (Python's json.dumps writes them) are accepted.

    orjson parses everything else; the fallback reads UTF-8 strictly and
    sanitizes what orjson would have refused (lone surrogates, huge integers).

    >>> _loads(b'{"x": NaN}')
    {'x': nan}
    >>> _loads(rb'"\ud800"') == "\ufffd" * 3
    True
    """
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _sanitize(json.loads(value.decode("utf-8")))


#: JSON bytes parsed at a time: a chunk's objects are read into columns while
#: they are still in the CPU cache, then freed before the next chunk is parsed.
CHUNK_BYTES = 128 * 1024


def _chunks(values: Sequence[bytes | None], budget: int) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges of ``values`` of about ``budget`` bytes (at least one value).

    >>> _chunks([b"ab", b"c", None, b"defg", b"h"], 3)
    [(0, 3), (3, 4), (4, 5)]
    """
    ends = list(accumulate([len(value) if value else 0 for value in values]))
    ranges = []
    start = 0
    while start < len(ends):
        before = ends[start - 1] if start else 0
        stop = max(bisect_right(ends, before + budget, start), start + 1)
        ranges.append((start, stop))
        start = stop
    return ranges


@dataclass(slots=True)
class _Rows:
    """The raw field values of one model version's inference events, in event order."""

    indexes: list[int] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    timestamps: list[Any] = field(default_factory=list)
    latencies: array.array[float] = field(default_factory=lambda: array.array("d"))
    labels: list[Any] = field(default_factory=list)
    event_ids: list[Any] = field(default_factory=list)
    #: Per configured feature (config order): numbers (:func:`number_array`) of a
    #: numeric feature, :func:`categorical_column` values of a categorical one.
    features: list[array.array[float] | list[str | None]] = field(default_factory=list)


class Decoder:
    """Turns raw messages into per-model columns; configured once, used for every batch."""

    #: JSON bytes parsed and read into columns at a time (:data:`CHUNK_BYTES`).
    chunk_bytes = CHUNK_BYTES

    def __init__(
        self, models: Sequence[ModelConfig], fields: FieldMap, limits: LimitsConfig
    ) -> None:
        self.models = {model.name: model for model in models}
        names = [f.name for f in dataclass_fields(fields)]
        keys = _orjson_keys([getattr(fields, name) for name in names])
        self.fields = fields = replace(fields, **dict(zip(names, keys, strict=True)))
        self.limits = limits
        self._model = _getter(fields.model)
        self._version = _getter(fields.model_version)
        self._features = _getter(fields.features)
        self._prediction = _getter(fields.prediction)
        self._label = _getter(fields.label)
        self._event_id = _getter(fields.event_id)
        #: Plain (undotted) names of the fields that decide an event's group.
        self._plain_keys = all(
            "." not in path for path in (fields.model, fields.model_version, fields.features)
        )
        self._feature_names = {model.name: _orjson_keys(list(model.features)) for model in models}
        self._feature_getters = {
            model: itemgetter(*names) for model, names in self._feature_names.items() if names
        }

    def decode(self, messages: Sequence[RawMessage]) -> DecodeResult:
        """Decode ``messages``; never raises on bad input.

        Python's cyclic garbage collector is paused meanwhile (and restored): the
        parsed JSON cannot hold reference cycles, so its passes over thousands of
        fresh dicts per batch, and the full collections that their promotion to
        older generations sets off, would find nothing. Reference counting still
        frees every parsed object as soon as the batch is columns.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._decode(messages)
        finally:
            if collecting:
                gc.enable()

    def _decode(self, messages: Sequence[RawMessage]) -> DecodeResult:
        result = DecodeResult()
        values = [message.value for message in messages]
        groups: dict[tuple[str, str], _Rows] = {}
        label_groups: LabelGroups = {}
        for start, stop in _chunks(values, self.chunk_bytes):
            rejects: list[Reject] = []
            events, indexes = self._parse(messages, values, start, stop, rejects)
            result.events += len(events)
            self._add_events(events, indexes, groups, label_groups, rejects)
            result.rejects += rejects
        for (model, version), rows in groups.items():
            batch = self._columns(model, version, rows, messages, result.rejects)
            if len(batch):
                result.batches.append(batch)
        for model, (events, indexes) in label_groups.items():
            labels = self._label_columns(model, events, indexes, messages, result.rejects)
            if len(labels):
                result.labels.append(labels)
        return result

    def _add_events(
        self,
        events: list[dict[str, Any]],
        indexes: list[int],
        groups: dict[tuple[str, str], _Rows],
        label_groups: LabelGroups,
        rejects: list[Reject],
    ) -> None:
        """Read the fields of one chunk's events into ``groups`` and ``label_groups``.

        Called while the chunk's parsed objects are fresh in the CPU cache; only
        the field values are kept, so the objects are freed chunk by chunk.
        """
        chunk_groups = self._groups(events, indexes)
        if chunk_groups is None:
            chunk_groups, chunk_labels = self._groups_one_by_one(events, indexes, rejects)
            for model, (label_events, label_indexes) in chunk_labels.items():
                label_group = label_groups.setdefault(model, ([], []))
                label_group[0].extend(label_events)
                label_group[1].extend(label_indexes)
        fields = self.fields
        for key, (group_events, group_indexes) in chunk_groups.items():
            rows = groups.get(key)
            if rows is None:
                kinds = self.models[key[0]].features.values()
                rows = groups[key] = _Rows(
                    features=[array.array("d") if kind == "numeric" else [] for kind in kinds]
                )
            rows.indexes += group_indexes
            rows.predictions += _column(group_events, fields.prediction)
            rows.timestamps += _column(group_events, fields.timestamp)
            rows.latencies += number_array(_column(group_events, fields.latency_ms))
            rows.labels += _column(group_events, fields.label)
            rows.event_ids += _column(group_events, fields.event_id)
            feature_dicts = _column(group_events, fields.features)
            for column, values in zip(
                rows.features, self._feature_values(key[0], feature_dicts), strict=True
            ):
                if isinstance(column, list):
                    column += categorical_column(list(values))
                else:
                    column += number_array(values)

    def _parse(
        self,
        messages: Sequence[RawMessage],
        values: list[bytes | None],
        start: int,
        stop: int,
        rejects: list[Reject],
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Every event object of ``messages[start:stop]`` and the index of its message.

        A message that is not blank, not too large and parses (orjson) to an object
        is one event; everything else goes through :meth:`_events`.
        """
        parsed = self._parse_all(values[start:stop], start, rejects)
        if parsed is not None:
            return parsed
        events: list[dict[str, Any]] = []
        indexes: list[int] = []
        loads = orjson.loads
        max_bytes = self.limits.max_message_bytes
        for index in range(start, stop):
            value = values[index]
            if value and len(value) <= max_bytes and value[0] not in _WHITESPACE:
                try:
                    decoded = loads(value)
                except ValueError:
                    decoded = None
                if type(decoded) is dict:
                    events.append(decoded)
                    indexes.append(index)
                    continue
                if type(decoded) is list:
                    unpacked = self._unpack(index, decoded, rejects)
                    events.extend(unpacked)
                    indexes.extend([index] * len(unpacked))
                    continue
            unpacked = self._events(index, messages[index], rejects)
            events.extend(unpacked)
            indexes.extend([index] * len(unpacked))
        return events, indexes

    def _parse_all(
        self, values: list[bytes | None], start: int, rejects: list[Reject]
    ) -> tuple[list[dict[str, Any]], list[int]] | None:
        """:meth:`_parse` when every value is in size and parses to an object or a list.

        ``values`` are the messages from index ``start`` on. Parses in one C-level
        ``map``; None (nothing rejected yet) when some message needs the
        message-by-message path.
        """
        try:
            if max(map(len, values), default=0) > self.limits.max_message_bytes:  # type: ignore[arg-type]
                return None
            decoded = list(map(orjson.loads, values))  # type: ignore[arg-type]
        except (TypeError, ValueError, RecursionError):
            return None
        types = set(map(type, decoded))
        if types == {dict}:
            return decoded, list(range(start, start + len(decoded)))
        if not types <= {dict, list}:
            return None
        events: list[dict[str, Any]] = []
        indexes: list[int] = []
        for index, value in enumerate(decoded, start):
            if type(value) is dict:
                events.append(value)
                indexes.append(index)
            else:
                unpacked = self._unpack(index, value, rejects)
                events.extend(unpacked)
                indexes.extend([index] * len(unpacked))
        return events, indexes

    def _groups(self, events: list[dict[str, Any]], indexes: list[int]) -> Groups | None:
        """Events by (model, version), checked a column at a time; None unless all are valid.

        None sends the batch to :meth:`_groups_one_by_one`, which rejects (or
        routes to the label path) event by event.
        """
        if not self._plain_keys or not events:
            return None
        fields = self.fields
        model_key, version_key, features_key = fields.model, fields.model_version, fields.features
        models: list[Any] = [event.get(model_key) for event in events]
        try:
            unique_models = set(models)
        except TypeError:
            return None
        if not all(type(m) is str and m in self.models for m in unique_models):
            return None
        if set(map(type, [event.get(features_key) for event in events])) != {dict}:
            return None
        versions = [event.get(version_key) for event in events]
        if not set(map(type, versions)) <= _VERSION_VALUE_TYPES:
            return None
        unique_versions = set(versions)
        if "" in unique_versions:
            return None
        names = {v: "unknown" if v is None else str(v) for v in unique_versions}
        if len(unique_models) == 1 and len(names) == 1:
            return {(models[0], names[versions[0]]): (events, indexes)}
        rows_of: dict[tuple[str, str], list[int]] = {}
        for row, key in enumerate(zip(models, map(names.__getitem__, versions), strict=True)):
            rows = rows_of.get(key)
            if rows is None:
                rows = rows_of[key] = []
            rows.append(row)
        return {
            key: ([events[i] for i in rows], [indexes[i] for i in rows])
            for key, rows in rows_of.items()
        }

    def _groups_one_by_one(
        self, all_events: list[dict[str, Any]], all_indexes: list[int], rejects: list[Reject]
    ) -> tuple[Groups, LabelGroups]:
        """Inference events by (model, version) and label events by model, event by event.

        The rejects are merged into ``rejects`` (which holds the message-level
        rejects) in message order, a message's own rejects first.
        """
        groups: Groups = {}
        label_groups: LabelGroups = {}
        group_rejects: list[Reject] = []
        for index, event in zip(all_indexes, all_events, strict=True):
            key = self._group_key(index, event, group_rejects)
            if key is None:
                continue
            model, version = key
            if version is None:
                label_group = label_groups.setdefault(model, ([], []))
                label_group[0].append(event)
                label_group[1].append(index)
                continue
            group = groups.get((model, version))
            if group is None:
                group = groups[(model, version)] = ([], [])
            group[0].append(event)
            group[1].append(index)
        if group_rejects:
            rejects[:] = heapq.merge(rejects, group_rejects, key=_message_index)
        return groups, label_groups

    def _events(
        self, index: int, message: RawMessage, rejects: list[Reject]
    ) -> Sequence[dict[str, Any]]:
        value = message.value
        if not value or not value.strip():
            rejects.append(Reject(index, "empty"))
            return ()
        if len(value) > self.limits.max_message_bytes:
            rejects.append(Reject(index, "oversized", f"{len(value)} bytes"))
            return ()
        try:
            decoded = _loads(value)
        except (ValueError, TypeError, RecursionError) as exc:
            rejects.append(Reject(index, "malformed_json", str(exc)[:200]))
            return ()
        return self._unpack(index, decoded, rejects)

    def _unpack(self, index: int, decoded: Any, rejects: list[Reject]) -> Sequence[dict[str, Any]]:
        """The events of a parsed message value: an object, or a micro-batch of objects."""
        if isinstance(decoded, dict):
            return (decoded,)
        if not isinstance(decoded, list):
            rejects.append(Reject(index, "not_an_object", type(decoded).__name__))
            return ()
        if not decoded:
            rejects.append(Reject(index, "empty", "empty micro-batch"))
            return ()
        if len(decoded) > self.limits.max_batch_events:
            rejects.append(Reject(index, "batch_too_large", f"{len(decoded)} events"))
            return ()
        events = [event for event in decoded if isinstance(event, dict)]
        for _ in range(len(decoded) - len(events)):
            rejects.append(Reject(index, "not_an_object", "micro-batch element"))
        return events

    def _group_key(
        self, index: int, event: dict[str, Any], rejects: list[Reject]
    ) -> tuple[str, str | None] | None:
        """``(model, version)`` of an inference event, ``(model, None)`` of a label event."""
        model = self._model(event)
        if model is None:
            rejects.append(Reject(index, "missing_field", self.fields.model))
            return None
        if type(model) is not str:
            rejects.append(Reject(index, "wrong_type", self.fields.model))
            return None
        if model not in self.models:
            rejects.append(Reject(index, "unknown_model", model[:100]))
            return None
        features = self._features(event)
        if features is None:
            if self._label(event) is not None and self._event_id(event) is not None:
                return model, None
            rejects.append(Reject(index, "missing_field", self.fields.features))
            return None
        if type(features) is not dict:
            rejects.append(Reject(index, "wrong_type", self.fields.features))
            return None
        version = self._version(event)
        if version is None:
            return model, "unknown"
        if type(version) is str and version:
            return model, version
        if type(version) is int:
            return model, str(version)
        rejects.append(Reject(index, "wrong_type", self.fields.model_version))
        return None

    def _columns(
        self,
        model: str,
        version: str,
        rows: _Rows,
        messages: Sequence[RawMessage],
        rejects: list[Reject],
    ) -> ModelBatch:
        config = self.models[model]
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
        columns: dict[str, np.ndarray | list[str | None]] = {
            name: column if isinstance(column, list) else float_column(column)
            for name, column in zip(config.features, rows.features, strict=True)
        }
        batch = ModelBatch(
            model=model,
            version=version,
            event_ts=event_ts,
            prediction=prediction,
            features=columns,
            latency_ms=float_column(rows.latencies),
            labels=rows.labels,
            event_ids=rows.event_ids,
            message_index=np.asarray(indexes, dtype=np.int64),
        )
        return batch if keep.all() else batch.take(keep)

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

    def _label_columns(
        self,
        model: str,
        events: list[dict[str, Any]],
        indexes: list[int],
        messages: Sequence[RawMessage],
        rejects: list[Reject],
    ) -> LabelBatch:
        keep = np.ones(len(events), dtype=bool)
        raw_ts = _column(events, self.fields.timestamp)
        event_ts = self._event_times(raw_ts, indexes, messages, rejects, keep)
        labels = LabelBatch(
            model=model,
            event_ids=_column(events, self.fields.event_id),
            labels=_column(events, self.fields.label),
            event_ts=event_ts,
            message_index=np.asarray(indexes, dtype=np.int64),
        )
        return labels if keep.all() else labels.take(keep)

    def _event_times(
        self,
        raw: list[Any],
        indexes: list[int],
        messages: Sequence[RawMessage],
        rejects: list[Reject],
        keep: np.ndarray,
    ) -> np.ndarray:
        """Event times in epoch seconds of the ``raw`` timestamp values (``keep`` cleared
        and a reject added where one is unusable)."""
        if set(map(type, raw)) <= _TIME_VALUE_TYPES:
            # Numbers only (no booleans, no None): convert at once, and keep the result
            # if every value is a valid time; otherwise judge value by value below.
            try:
                seconds = np.array(raw, dtype=np.float64)
            except OverflowError:
                seconds = np.full(len(raw), np.nan)
            seconds = np.where(seconds > MILLISECONDS_ABOVE, seconds / 1000.0, seconds)
            if np.isfinite(seconds).all() and np.all(seconds >= 0):
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


def _prediction_reason(value: Any) -> str:
    if value is None:
        return "missing_field"
    if isinstance(value, float) and not math.isfinite(value):
        return "non_finite"
    return "wrong_type"
