"""The typed fast path: messages decoded straight into typed records, read a column at a time.

:meth:`TypedPath.read` decodes a chunk's messages with one msgspec decoder
(:mod:`~stream_monitor.decode.typed`) and marks with None each message that
it cannot take exactly as the careful path would: one that does not decode or
validate (an unknown model, a string in a numeric feature, NaN literals, a
label event), is not UTF-8, is too large, or is an empty or too large
micro-batch. It decodes into strict records first, which refuse unknown keys:
the decoder then reads, and checks the UTF-8 of, every byte it takes. Once a
message with a key no record knows comes, chunks are decoded into records that
skip unknown keys unread, after a check that the chunk is ASCII (so valid
UTF-8). The decoder sends those through the careful path and puts the
chunk's rows back in message order. :meth:`TypedPath.add` reads the decoded
records into the same :class:`~stream_monitor.decode.column_builder.Rows` the
careful path fills, from one tuple per record for the fields and one for the
features (:func:`msgspec.structs.astuple`), transposed, every numeric feature
packed by one :class:`struct.Struct` (:func:`packed_columns`), so both paths
give the same columns to the bit.

A chunk where more than :data:`MAX_MISSED_SHARE` of the messages need the
careful path makes the next chunks skip the typed decoder (1, 3, 7, … up to
:data:`MAX_SKIPPED_CHUNKS` of them), so a stream of bad messages costs little
more than the careful path alone.
"""

from __future__ import annotations

import struct
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import starmap
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
from msgspec.structs import astuple

from stream_monitor.decode.columns import categorical_column

if TYPE_CHECKING:
    from stream_monitor.config import LimitsConfig
    from stream_monitor.decode.column_builder import ColumnBuilder, Rows
    from stream_monitor.decode.typed import TypedModel, TypedSchema

#: JSON bytes decoded and read at a time (the careful path's chunks are smaller, as its
#: dicts are read while fresh in the CPU cache): one model version's records are read a
#: feature at a time, so a chunk should hold many of each, however many models share it.
TYPED_CHUNK_BYTES = 2 * 1024 * 1024
#: Share of a chunk's messages left to the careful path above which the next chunks skip the
#: typed decoder: each costs a failed typed decode on top of the careful path, about what
#: the typed path saves on three good messages.
MAX_MISSED_SHARE = 0.25
#: Most chunks skipped in a row after chunks where too many messages needed the careful path.
MAX_SKIPPED_CHUNKS = 63
#: What decoding a message may raise on bad input (msgspec's errors, nesting too deep).
_DECODE_ERRORS = (msgspec.MsgspecError, RecursionError, ValueError, TypeError)


#: The fields read into rows, in the order :meth:`_ModelReader.fields` gives their values
#: (``features``: each record's features struct), then the model version.
_ROW_FIELDS = (
    "prediction",
    "timestamp",
    "latency_ms",
    "label",
    "event_id",
    "features",
    "model_version",
)


class _ModelReader:
    """Reads the fields of one model's typed records a column at a time."""

    def __init__(self, model: TypedModel) -> None:
        self.name = model.name
        paths = [model.paths[name] for name in _ROW_FIELDS]
        attributes = model.struct.__struct_fields__
        #: Where each row field sits in the record's tuple, when all are top-level.
        self._positions = (
            [attributes.index(path) for path in paths]
            if not any("." in path for path in paths)
            else None
        )
        self._getters = [attrgetter(path) for path in paths]
        #: Where the numeric and the categorical features sit among the features.
        self._numeric = [i for i, numeric in enumerate(model.numeric) if numeric]
        self._categorical = [i for i, numeric in enumerate(model.numeric) if not numeric]

    def fields(self, records: list[Any]) -> list[Sequence[Any]]:
        """The values of each of :data:`_ROW_FIELDS` over ``records``.

        Top-level fields come from one tuple per record (:func:`msgspec.structs.astuple`
        reads the struct's slots directly), transposed.
        """
        if self._positions is None:
            return [list(map(getter, records)) for getter in self._getters]
        columns = list(zip(*map(astuple, records), strict=True))
        return [columns[position] for position in self._positions]

    def add_features(self, rows: Rows, structs: Sequence[Any]) -> None:
        """Append the records' features structs ``structs`` to ``rows``, a feature at a time:
        numeric ones packed as doubles (:func:`packed_columns`), categorical ones as text."""
        features = list(zip(*map(astuple, structs), strict=True))
        numeric = packed_columns(len(structs), [features[i] for i in self._numeric])
        columns = rows.features
        arrays: list[array[float]] = [columns[i] for i in self._numeric]  # type: ignore[misc]
        deque(map(array.frombytes, arrays, numeric), maxlen=0)
        for i in self._categorical:
            columns[i] += categorical_column(list(features[i]))  # type: ignore[operator]


def packed_columns(count: int, columns: Sequence[Sequence[float | bool | None]]) -> list[bytes]:
    """The float64 bytes of each of ``columns`` (numeric features' or latencies' values;
    None is NaN).

    One :class:`struct.Struct` packs every column, called from one C-level
    ``starmap`` (no Python call per column); a column with a null stops it and
    takes numpy, which reads None as NaN, and packing goes on after it.
    """
    pack = struct.Struct(f"{count}d").pack
    packed: list[bytes] = []
    remaining = iter(columns)
    while len(packed) < len(columns):
        try:
            packed.extend(starmap(pack, remaining))
        except struct.error:
            values = columns[len(packed)]
            packed.append(np.fromiter(values, dtype=np.float64, count=count).tobytes())
    return packed


_NONE = type(None)


@dataclass(slots=True)
class TypedChunk:
    """What :meth:`TypedPath.read` made of a chunk of messages.

    ``decoded`` holds each message's record or micro-batch (a list of records),
    None where the message needs the careful path; ``kinds`` the types among
    them, read once, so that no later step passes over the chunk to learn
    whether every message was read, whether there are micro-batches, or
    whether there is more than one model.
    """

    decoded: list[Any]
    kinds: set[type]

    @property
    def complete(self) -> bool:
        """Whether the typed path read every message."""
        return _NONE not in self.kinds


class TypedPath:
    """Decodes messages into the typed records of ``schema`` and reads them into rows."""

    def __init__(self, schema: TypedSchema, strict: TypedSchema, limits: LimitsConfig) -> None:
        self.limits = limits
        self._decode = msgspec.json.Decoder(schema.message_type).decode
        self._decode_strict = msgspec.json.Decoder(strict.message_type).decode
        #: Whether chunks are decoded into ``strict`` records first (until a message with
        #: an unknown key comes): they need no UTF-8 check of their own.
        self.strict = True
        self._readers = {model.struct: _ModelReader(model) for model in schema.models}
        self._readers.update((model.struct, _ModelReader(model)) for model in strict.models)
        self._event_types = frozenset(self._readers)
        #: Every model's struct has the same layout outside its features, strict or not.
        self._version = attrgetter(schema.models[0].paths["model_version"])
        self._skip = 0
        self._backoff = 0

    def read(self, values: Sequence[bytes | None], sizes: Sequence[int]) -> TypedChunk | None:
        """Each message's record (or micro-batch list of records), None where it needs the
        careful path; None for the whole chunk when the typed decoder skips it.

        ``sizes`` are the values' lengths
        (:func:`~stream_monitor.decode.parsing.message_sizes`).
        """
        if self._skip:
            self._skip -= 1
            return None
        in_size = max(sizes) <= self.limits.max_message_bytes
        if in_size and self.strict:
            decoded, kinds = self._checked_all(self._decode_all(values, self._decode_strict))
            if _NONE in kinds:
                decoded = self._read_misses(values, decoded)
                kinds = set(map(type, decoded))
        elif in_size and self._plain(values):
            decoded, kinds = self._checked_all(self._decode_all(values, self._decode))
        else:
            decoded = [self._read_one(value) for value in values]
            kinds = set(map(type, decoded))
        misses = decoded.count(None) if _NONE in kinds else 0
        if misses > MAX_MISSED_SHARE * len(decoded):
            self._backoff = min(2 * self._backoff + 1, MAX_SKIPPED_CHUNKS)
            self._skip = self._backoff
        else:
            self._backoff = 0
        return TypedChunk(decoded, kinds)

    def _plain(self, values: Sequence[bytes | None]) -> bool:
        """Whether every message is bytes and ASCII (so valid UTF-8)."""
        try:
            return all(map(bytes.isascii, values))  # type: ignore[arg-type]
        except TypeError:  # None
            return False

    def _decode_all(
        self, values: Sequence[bytes | None], decode: Callable[[bytes], Any]
    ) -> list[Any]:
        """Messages decoded in C-level ``map`` calls, None where one fails to decode.

        A message that fails to decode stops the ``map``; ``list.extend`` keeps
        the records before it, and decoding goes on after it.
        """
        decoded: list[Any] = []
        remaining = iter(values)
        while len(decoded) < len(values):
            try:
                decoded.extend(map(decode, remaining))  # type: ignore[arg-type]  # None: TypeError
            except _DECODE_ERRORS:
                decoded.append(None)
        return decoded

    def _checked_all(self, decoded: list[Any]) -> tuple[list[Any], set[type]]:
        """:meth:`_checked` of each of ``decoded``, and the types among the results (one pass
        over their types when all are records of configured models)."""
        kinds = set(map(type, decoded))
        if kinds - {_NONE} <= self._event_types:
            return decoded, kinds
        checked = [self._checked(value) for value in decoded]
        return checked, set(map(type, checked))

    def _read_misses(self, values: Sequence[bytes | None], decoded: list[Any]) -> list[Any]:
        """``decoded`` (strict records) with each miss read again as the lenient decoder
        reads it; once one is read that way (it has a key no record knows), chunks are no
        longer decoded strictly first, and their UTF-8 is checked instead."""
        misses = decoded.count(None)
        decoded = [
            self._read_one(value) if record is None else record
            for value, record in zip(values, decoded, strict=True)
        ]
        if decoded.count(None) < misses:
            self.strict = False
        return decoded

    def _read_one(self, value: bytes | None) -> Any:
        """The record(s) of one message, or None when it needs the careful path."""
        if not value or len(value) > self.limits.max_message_bytes:
            return None
        if not value.isascii():
            # msgspec skips unknown keys without checking their UTF-8; the careful path rejects.
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        try:
            return self._checked(self._decode(value))
        except _DECODE_ERRORS:
            return None

    def _checked(self, decoded: Any) -> Any:
        """``decoded`` if the typed path takes it as the careful path would, else None.

        Takes a record of a configured model, or a micro-batch of 1 to
        ``max_batch_events`` of them.
        """
        if type(decoded) is list:
            if not 0 < len(decoded) <= self.limits.max_batch_events:
                return None
            return decoded if set(map(type, decoded)) <= self._event_types else None
        return decoded if type(decoded) in self._event_types else None

    def add(
        self,
        columns: ColumnBuilder,
        rows_of: dict[tuple[str, str], Rows],
        chunk: TypedChunk,
        indexes: Sequence[int],
    ) -> int:
        """Read the records of ``chunk`` (complete), of the messages at ``indexes``, into
        ``rows_of``.

        Returns the number of events read.
        """
        records, record_indexes, kinds = _flatten(chunk, indexes)
        if len(kinds) == 1:  # one model: the records' versions come with their other fields
            reader = self._readers[next(iter(kinds))]
            values = reader.fields(records)
            version_names, number = _version_numbers(values[-1])
            if len(version_names) == 1:
                self._add_rows(columns, rows_of, reader, version_names[0], record_indexes, values)
                return len(records)
            codes = np.fromiter(map(number.__getitem__, values[-1]), np.int64, len(records))
            for code, rows, positions in _split(codes):
                group_values = [_take(column, rows) for column in values]
                group_indexes = _message_indexes(record_indexes, rows, positions)
                name = version_names[code]
                self._add_rows(columns, rows_of, reader, name, group_indexes, group_values)
            return len(records)
        groups = self._groups(records, record_indexes)
        for (reader, version), (group, group_indexes) in groups.items():
            self._add_rows(columns, rows_of, reader, version, group_indexes, reader.fields(group))
        return len(records)

    @staticmethod
    def _add_rows(
        columns: ColumnBuilder,
        rows_of: dict[tuple[str, str], Rows],
        reader: _ModelReader,
        version: str,
        indexes: Sequence[int] | np.ndarray,
        values: Sequence[Sequence[Any]],
    ) -> None:
        """Append one model version's records to its rows in ``rows_of``: their message
        ``indexes`` and their field ``values`` (:meth:`_ModelReader.fields`)."""
        key = (reader.name, version)
        rows = rows_of.get(key) or columns.new_rows(rows_of, key)
        prediction, timestamp, latency, label, event_id, features, _ = values
        rows.add_indexes(indexes)
        rows.predictions += prediction
        rows.timestamps += timestamp
        rows.latencies.frombytes(packed_columns(len(latency), [latency])[0])
        rows.labels += label
        rows.event_ids += event_id
        reader.add_features(rows, features)

    def _groups(
        self, records: list[Any], indexes: Sequence[int]
    ) -> dict[tuple[_ModelReader, str], tuple[list[Any], Sequence[int] | np.ndarray]]:
        """The records of several models (or of one model's strict and lenient records) by
        (model's reader, version name), in order of first appearance, as the careful path
        sees them, with their message indexes.

        Each record's group is a number (its model's, then its version name's),
        so that grouping is a stable sort of integers.
        """
        types = list(map(type, records))
        versions = list(map(self._version, records))
        readers: dict[str, _ModelReader] = {}  # by model, in order of first appearance
        for kind in dict.fromkeys(types):
            readers.setdefault(self._readers[kind].name, self._readers[kind])
        models = list(readers)
        model_number = {kind: models.index(self._readers[kind].name) for kind in set(types)}
        version_names, number = _version_numbers(versions)
        count = len(records)
        codes = np.fromiter(map(model_number.__getitem__, types), np.int64, count)
        if len(version_names) > 1:  # else every version number is 0
            codes *= len(version_names)
            codes += np.fromiter(map(number.__getitem__, versions), np.int64, count)
        groups: dict[tuple[_ModelReader, str], tuple[list[Any], Sequence[int] | np.ndarray]] = {}
        for code, rows, positions in _split(codes):
            model, version = divmod(code, len(version_names))
            groups[(readers[models[model]], version_names[version])] = (
                _take(records, rows),
                _message_indexes(indexes, rows, positions),
            )
        return groups


def _version_numbers(versions: Sequence[Any]) -> tuple[list[str], dict[Any, int]]:
    """The names of ``versions`` in order of first appearance, and the number of each
    version value's name among them: None reads "unknown", and 7 and "7" are one version.

    >>> _version_numbers(["v1", "v1"]), _version_numbers([7, None, "7"])
    ((['v1'], {'v1': 0}), (['7', 'unknown'], {7: 0, None: 1, '7': 0}))
    """
    if versions and versions.count(versions[0]) == len(versions):  # one version: no hashing
        first = versions[0]
        return ["unknown" if first is None else str(first)], {first: 0}
    names = {v: "unknown" if v is None else str(v) for v in dict.fromkeys(versions)}
    version_names = list(dict.fromkeys(names.values()))
    number = {name: n for n, name in enumerate(version_names)}
    return version_names, {value: number[name] for value, name in names.items()}


def _split(codes: np.ndarray) -> list[tuple[int, list[int], np.ndarray]]:
    """Each distinct code of ``codes`` with its rows (in order, as a list and as an int64
    array), in order of first appearance."""
    present, first, sizes = np.unique(codes, return_index=True, return_counts=True)
    order = np.argsort(codes, kind="stable")  # each code's rows, in order
    rows = order.tolist()
    ends = np.cumsum(sizes)
    starts, ends = (ends - sizes).tolist(), ends.tolist()
    return [
        (int(present[g]), rows[starts[g] : ends[g]], order[starts[g] : ends[g]])
        for g in np.argsort(first).tolist()
    ]


def _message_indexes(
    indexes: Sequence[int], rows: list[int], positions: np.ndarray
) -> Sequence[int] | np.ndarray:
    """The items of ``indexes`` (message indexes) at ``rows``, also given as the int64 array
    ``positions``: a range's are taken by numpy, without a Python int each."""
    if type(indexes) is range and indexes.step == 1:
        return positions + indexes.start
    return _take(indexes, rows)


def _take(values: Sequence[Any], rows: list[int]) -> list[Any]:
    """The items of ``values`` at ``rows``."""
    return list(map(values.__getitem__, rows))


def _flatten(chunk: TypedChunk, at: Sequence[int]) -> tuple[list[Any], Sequence[int], set[type]]:
    """The records of ``chunk`` (micro-batches unpacked), the index of each one's message
    (``at`` holds the messages' indexes), and the records' types."""
    if list not in chunk.kinds:
        return chunk.decoded, at, chunk.kinds
    records: list[Any] = []
    indexes: list[int] = []
    for index, value in zip(at, chunk.decoded, strict=True):
        if type(value) is list:
            records += value
            indexes += [index] * len(value)
        else:
            records.append(value)
            indexes.append(index)
    return records, indexes, set(map(type, records))
