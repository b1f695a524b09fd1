"""File sources: JSON Lines and CSV files of inference events, read in batches."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from stream_monitor.config import ModelConfig
from stream_monitor.decode.batches import RawMessage

#: Event time given to file events that carry none; only ``baseline`` uses it (it ignores time).
NO_TIME_MS = 1


def jsonl_batches(
    path: Path, batch_size: int, timestamp_ms: int | None = None
) -> Iterator[list[RawMessage]]:
    """The non-blank lines of a JSON Lines file as messages, ``batch_size`` at a time."""
    batch: list[RawMessage] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            line = line.strip()
            if not line:
                continue
            batch.append(RawMessage(line, timestamp_ms, topic=str(path), offset=number))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _csv_value(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind != "numeric":
        return text
    try:
        return float(text)
    except ValueError:
        return text


def csv_batches(path: Path, model: ModelConfig, batch_size: int) -> Iterator[list[RawMessage]]:
    """Rows of a CSV file as event messages of ``model``.

    Columns are named after the event fields (``prediction``, ``label``,
    ``model_version``, ``timestamp``, ``latency_ms``) and the model's features.
    """
    batch: list[RawMessage] = []
    with path.open(newline="", encoding="utf-8") as handle:
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
                yield batch
                batch = []
    if batch:
        yield batch
