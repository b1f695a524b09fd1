"""File sources: JSON Lines and CSV files of inference events, read in batches."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from functools import partial
from itertools import compress, count, repeat
from pathlib import Path
from typing import Any

import orjson

from stream_monitor.config import ModelConfig
from stream_monitor.decode.batches import RawMessage

#: Event time given to file events that carry none; only ``baseline`` uses it (it ignores time).
NO_TIME_MS = 1


#: Bytes read from a JSON Lines file at a time; its lines are split and numbered per block.
READ_BLOCK_BYTES = 1 << 20


#: ``RawMessage`` from a tuple of its five fields, without a Python-level ``__new__``.
_as_message = partial(tuple.__new__, RawMessage)


def jsonl_batches(
    path: Path,
    batch_size: int,
    timestamp_ms: int | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[list[RawMessage]]:
    """The non-blank lines of a JSON Lines file as messages, ``batch_size`` at a time.

    A message's offset is its line's number (0-based, counting blank lines), so
    rejects and dead letters cite the line. Lines end at ``\\n`` and are
    stripped of ASCII whitespace (a ``\\r`` before the ``\\n`` too); lines
    blank after stripping are skipped. The file is read in blocks of
    :data:`READ_BLOCK_BYTES` and each block's lines are split, stripped and
    numbered by C-level calls; ``on_read`` (if given) hears each block's size.
    """
    topic = str(path)
    batch_size = max(1, batch_size)
    pending: list[RawMessage] = []
    first_line = 0
    unfinished: list[bytes] = []  # the unterminated line that runs on into the next block
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK_BYTES):
            if on_read is not None:
                on_read(len(block))
            lines = block.split(b"\n")
            if len(lines) == 1:
                unfinished.append(block)
                continue
            if unfinished:
                lines[0] = b"".join([*unfinished, lines[0]])
            unfinished = [lines.pop()]
            pending.extend(_numbered(lines, first_line, timestamp_ms, topic))
            first_line += len(lines)
            whole = len(pending) - len(pending) % batch_size
            for start in range(0, whole, batch_size):
                yield pending[start : start + batch_size]
            del pending[:whole]
    pending.extend(_numbered([b"".join(unfinished)], first_line, timestamp_ms, topic))
    for start in range(0, len(pending), batch_size):
        yield pending[start : start + batch_size]


def _numbered(
    lines: list[bytes], first_line: int, timestamp_ms: int | None, topic: str
) -> Iterator[RawMessage]:
    """Messages of the non-blank ``lines``, numbered from ``first_line``; no Python-level loop."""
    stripped = list(map(bytes.strip, lines))
    numbers = compress(count(first_line), stripped)
    fields = zip(filter(None, stripped), repeat(timestamp_ms), repeat(topic), repeat(-1), numbers)
    return map(_as_message, fields)


def _csv_value(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind != "numeric":
        return text
    try:
        return float(text)
    except ValueError:
        return text


def csv_batches(
    path: Path,
    model: ModelConfig,
    batch_size: int,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[list[RawMessage]]:
    """Rows of a CSV file as event messages of ``model``.

    Columns are named after the event fields (``prediction``, ``label``,
    ``model_version``, ``timestamp``, ``latency_ms``) and the model's features.
    ``on_read`` (if given) hears how many more bytes were read before each batch.
    """
    batch: list[RawMessage] = []
    position = 0

    def note_read() -> None:
        nonlocal position
        if on_read is not None:
            now_at = raw.tell()
            on_read(now_at - position)
            position = now_at

    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            event: dict[str, Any] = {
                "model": row.get("model") or model.name,
                "features": {
                    name: _csv_value(row.get(name, ""), kind)
                    for name, kind in model.features.items()
                },
                "prediction": _csv_value(row.get("prediction", ""), model.prediction_type),
            }
            for name in ("model_version", "event_id"):
                if row.get(name):
                    event[name] = row[name]
            for name, kind in (
                ("timestamp", "numeric"),
                ("latency_ms", "numeric"),
                ("label", model.prediction_type),
            ):
                if row.get(name):
                    event[name] = _csv_value(row[name], kind)
            batch.append(
                RawMessage(orjson.dumps(event), NO_TIME_MS, topic=str(path), offset=number)
            )
            if len(batch) >= batch_size:
                note_read()
                yield batch
                batch = []
        note_read()
    if batch:
        yield batch
