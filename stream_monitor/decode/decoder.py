"""Decode a batch of raw messages into numpy columns per (model, version).

The per-event Python work is parsing JSON (orjson) and reading fields out of the
parsed dicts; everything else works on whole columns. Messages are parsed a
chunk (:data:`~stream_monitor.decode.parsing.CHUNK_BYTES`) at a time and each
chunk's fields are read while its objects are still in the CPU cache, which then
frees them. Each step has its module: :mod:`~stream_monitor.decode.parsing`
(bytes to event objects), :mod:`~stream_monitor.decode.grouping` (events by
model version, label events by model) and
:mod:`~stream_monitor.decode.column_builder` (field values to columns). Each has
a fast path for the usual chunk (plain field names, known models, features
objects) and falls back to checking event by event, with the same results.
Bad input never raises: each rejected event becomes a :class:`Reject` with its
reason (README, Bad input), and the caller counts, logs and dead-letters it.

All of that is the careful path. Before it, the typed fast path
(:mod:`~stream_monitor.decode.typed_path`) decodes each chunk's messages
straight into typed records built from the config's schema and reads them into
the same rows; each message it cannot take exactly as the careful path would
goes through the careful path instead, in message order, so the result is the
same to the bit either way.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from operator import attrgetter
from typing import Any

from stream_monitor.config import FieldMap, LimitsConfig, ModelConfig
from stream_monitor.decode.batches import LabelBatch, ModelBatch, RawMessage, Reject
from stream_monitor.decode.column_builder import ColumnBuilder, Rows
from stream_monitor.decode.grouping import EventGrouper, LabelGroups
from stream_monitor.decode.parsing import CHUNK_BYTES, MessageParser, chunks, message_sizes
from stream_monitor.decode.paths import orjson_keys
from stream_monitor.decode.typed import typed_schema
from stream_monitor.decode.typed_path import TYPED_CHUNK_BYTES, TypedChunk, TypedPath

_value = attrgetter("value")
#: Message bytes :meth:`Decoder.decode_pieces` decodes at a time: a consumed batch of large
#: messages (micro-batches of thousands of events each) is cut into pieces of about this
#: size, so that columns stay small enough for the CPU cache (a piece of 2 MiB holds about
#: 4,000 events of 500 bytes; a batch of row events is usually one piece).
PIECE_BYTES = 2 * 1024 * 1024


@dataclass
class DecodeResult:
    """What one batch of messages decoded to."""

    batches: list[ModelBatch] = field(default_factory=list)
    labels: list[LabelBatch] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    events: int = 0


class Decoder:
    """Turns raw messages into per-model columns; configured once, used for every batch.

    ``typed=False`` turns the typed fast path off: every message takes the careful path.
    """

    #: JSON bytes :meth:`decode_pieces` decodes at a time (:data:`PIECE_BYTES`).
    piece_bytes = PIECE_BYTES
    #: JSON bytes the careful path parses and reads into columns at a time (:data:`CHUNK_BYTES`).
    chunk_bytes = CHUNK_BYTES
    #: JSON bytes the typed path decodes and reads at a time: its records are compact and
    #: read a feature at a time, so larger chunks cost less per event (fewer, longer
    #: columns per model version), most of all with many models and features.
    typed_chunk_bytes = TYPED_CHUNK_BYTES

    def __init__(
        self,
        models: Sequence[ModelConfig],
        fields: FieldMap,
        limits: LimitsConfig,
        typed: bool = True,
    ) -> None:
        self.models = {model.name: model for model in models}
        names = [f.name for f in dataclass_fields(fields)]
        keys = orjson_keys([getattr(fields, name) for name in names])
        self.fields = replace(fields, **dict(zip(names, keys, strict=True)))
        self.limits = limits
        self.parser = MessageParser(limits)
        self.grouper = EventGrouper(self.models, self.fields)
        self.columns = ColumnBuilder(self.models, self.fields)
        schema = typed_schema(models, fields) if typed else None
        strict = typed_schema(models, fields, strict=True) if typed else None
        self.typed = (
            TypedPath(schema, strict, limits) if schema is not None and strict is not None else None
        )

    def decode(self, messages: Sequence[RawMessage]) -> DecodeResult:
        """Decode ``messages``; never raises on bad input."""
        values: list[bytes | None] = list(map(_value, messages))
        return self._decode_paused(messages, values, message_sizes(values))

    def decode_pieces(self, messages: Sequence[RawMessage]) -> Iterator[tuple[int, DecodeResult]]:
        """:meth:`decode` of ``messages`` a piece of about :attr:`piece_bytes` at a time, in
        order: each piece's first index and its result (whose indexes count from there).

        A caller that counts each piece before the next one is decoded keeps its
        columns small enough for the CPU cache, however large the batch. Each
        message's value and size are read once for all the pieces.
        """
        values: list[bytes | None] = list(map(_value, messages))
        sizes = message_sizes(values)
        for start, stop in chunks(sizes, self.piece_bytes):
            if stop - start == len(messages):
                yield start, self._decode_paused(messages, values, sizes)
            else:
                piece = slice(start, stop)
                yield start, self._decode_paused(messages[piece], values[piece], sizes[piece])

    def _decode_paused(
        self, messages: Sequence[RawMessage], values: list[bytes | None], sizes: list[int]
    ) -> DecodeResult:
        """:meth:`_decode` with Python's cyclic garbage collector paused (and restored).

        The parsed JSON cannot hold reference cycles, so the collector's passes
        over thousands of fresh objects per batch, and the full collections that
        their promotion to older generations sets off, would find nothing.
        Reference counting still frees every parsed object as soon as the batch
        is columns.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._decode(messages, values, sizes)
        finally:
            if collecting:
                gc.enable()

    def _decode(
        self, messages: Sequence[RawMessage], values: list[bytes | None], sizes: list[int]
    ) -> DecodeResult:
        result = DecodeResult()
        rows_of: dict[tuple[str, str], Rows] = {}
        label_groups: LabelGroups = {}
        if self.typed is None:
            for start, stop in chunks(sizes, self.chunk_bytes):
                span = range(start, stop)
                self._add_careful(messages, values, span, rows_of, label_groups, result)
        else:
            for start, stop in chunks(sizes, self.typed_chunk_bytes):
                span = range(start, stop)
                self._add_typed(messages, values, sizes, span, rows_of, label_groups, result)
        for (model, version), rows in rows_of.items():
            batch = self.columns.model_batch(model, version, rows, messages, result.rejects)
            if len(batch):
                result.batches.append(batch)
        for model, (events, indexes) in label_groups.items():
            labels = self.columns.label_batch(model, events, indexes, messages, result.rejects)
            if len(labels):
                result.labels.append(labels)
        return result

    def _add_typed(
        self,
        messages: Sequence[RawMessage],
        values: list[bytes | None],
        sizes: list[int],
        span: range,
        rows_of: dict[tuple[str, str], Rows],
        label_groups: LabelGroups,
        result: DecodeResult,
    ) -> None:
        """One typed chunk: read by the typed path, by the careful path where it cannot."""
        assert self.typed is not None
        chunk_sizes = sizes[span.start : span.stop]
        typed = self.typed.read(values[span.start : span.stop], chunk_sizes)
        if typed is None:  # the typed decoder skips this chunk
            for start, stop in chunks(chunk_sizes, self.chunk_bytes):
                careful = range(span.start + start, span.start + stop)
                self._add_careful(messages, values, careful, rows_of, label_groups, result)
        elif typed.complete:
            result.events += self.typed.add(self.columns, rows_of, typed, span)
        else:
            self._add_mixed(messages, values, span, typed, rows_of, label_groups, result)

    def _add_careful(
        self,
        messages: Sequence[RawMessage],
        values: list[bytes | None],
        span: Sequence[int],
        rows_of: dict[tuple[str, str], Rows],
        label_groups: LabelGroups,
        result: DecodeResult,
    ) -> None:
        """The careful path over the messages at ``span`` (increasing indexes of one chunk)."""
        rejects: list[Reject] = []
        if isinstance(span, range):
            events, indexes = self.parser.parse(messages, values, span.start, span.stop, rejects)
        else:
            some = [messages[index] for index in span]
            events, positions = self.parser.parse(
                some, list(map(_value, some)), 0, len(some), rejects
            )
            indexes = [span[position] for position in positions]
            rejects = [Reject(span[r.message_index], r.reason, r.detail) for r in rejects]
        result.events += len(events)
        self._add_events(events, indexes, rows_of, label_groups, rejects)
        result.rejects += rejects

    def _add_mixed(
        self,
        messages: Sequence[RawMessage],
        values: list[bytes | None],
        span: range,
        typed: TypedChunk,
        rows_of: dict[tuple[str, str], Rows],
        label_groups: LabelGroups,
        result: DecodeResult,
    ) -> None:
        """A chunk of which the typed path read some messages (``typed``, None elsewhere).

        Its records are read at once, the other messages go through the careful
        path at once, each path into rows of its own; these are then joined,
        model versions first seen in the chunk in the order the careful path
        alone would have seen them (their rows are put in message order once
        the whole batch is read: :meth:`Rows.sort`).
        """
        assert self.typed is not None
        decoded = typed.decoded
        records = TypedChunk(
            [record for record in decoded if record is not None], typed.kinds - {type(None)}
        )
        typed_at = [index for index, record in zip(span, decoded, strict=True) if record]
        careful_at = [index for index, record in zip(span, decoded, strict=True) if not record]
        typed_rows: dict[tuple[str, str], Rows] = {}
        careful_rows: dict[tuple[str, str], Rows] = {}
        result.events += self.typed.add(self.columns, typed_rows, records, typed_at)
        self._add_careful(messages, values, careful_at, careful_rows, label_groups, result)
        for key in sorted(
            typed_rows.keys() | careful_rows.keys(), key=_first_seen(typed_rows, careful_rows)
        ):
            rows = rows_of.get(key) or self.columns.new_rows(rows_of, key)
            parts = [path_rows[key] for path_rows in (typed_rows, careful_rows) if key in path_rows]
            for part in parts:
                rows.extend(part)
            if len(parts) > 1:
                rows.ordered = False

    def _add_events(
        self,
        events: list[dict[str, Any]],
        indexes: list[int],
        rows_of: dict[tuple[str, str], Rows],
        label_groups: LabelGroups,
        rejects: list[Reject],
    ) -> None:
        """Read the fields of one chunk's events into ``rows_of`` and ``label_groups``.

        Called while the chunk's parsed objects are fresh in the CPU cache; only
        the field values are kept, so the objects are freed chunk by chunk.
        """
        groups = self.grouper.groups(events, indexes)
        if groups is None:
            groups, chunk_labels = self.grouper.groups_one_by_one(events, indexes, rejects)
            for model, (label_events, label_indexes) in chunk_labels.items():
                label_group = label_groups.setdefault(model, ([], []))
                label_group[0].extend(label_events)
                label_group[1].extend(label_indexes)
        self.columns.add(rows_of, groups)


def _first_seen(
    *paths: dict[tuple[str, str], Rows],
) -> Callable[[tuple[str, str]], tuple[int, int]]:
    """Sort key of model versions by where each is first seen over ``paths`` (the rows each
    path read from one chunk, disjoint messages): its first message, then its place among
    the versions that message's path saw first in it (a micro-batch's order)."""

    def first_seen(key: tuple[str, str]) -> tuple[int, int]:
        return min((rows[key].indexes[0], list(rows).index(key)) for rows in paths if key in rows)

    return first_seen
