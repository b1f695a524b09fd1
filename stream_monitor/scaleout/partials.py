"""Partial summaries: what ingest replicas publish and aggregators merge (scale-out).

A scaled-out deployment splits the work in two consumer groups joined by one
internal, compacted topic (``kafka.topics.partials``). Ingest replicas count
their input partitions into pane vectors exactly as a single process does
(:mod:`stream_monitor.state.ledger`) and publish, per input partition, model version
and pane, the pane's *cumulative* vector. Aggregators keep the newest vector of
every such key and sum them, so a re-sent partial replaces its earlier copy
instead of adding to it: publication is idempotent, whatever a crash or a
rebalance makes an ingest replica send twice.

Records (keys are JSON arrays, values JSON; a pane record's value None is its
tombstone, written when the ingest replica forgets the pane):

- ``["pane", topic, partition, model, version, pane]``: ``{"offset", "reference",
  "width", "index", "value"}``: the partition's vector of the pane as it was
  with every input message before ``offset`` counted, stored sparse (the
  non-zero slots); ``reference`` is the fingerprint of the reference the slots
  belong to. Sent to the model's partials partition.
- ``["watermark", topic, partition]``: ``{"offset", "caught_up", "watermarks":
  [[model, version, event_ts], ...]}``: the input partition's event-time
  progress, and whether the replica had read all of it (only then may the
  partition count as idle). Sent to every partials partition, after the pane
  records it covers.
- ``["judged", model]``: ``{"versions": [[version, end_pane, quality_reference]],
  "severities": rows}``: written by the aggregator owning the model once the
  drift events of those panes are delivered, so a restarted aggregator goes on
  from there instead of judging every pane again.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from stream_monitor.state.keys import PartitionKey, VersionKey
from stream_monitor.state.vectors import from_sparse_parts, sparse_parts
from stream_monitor.summaries.reference import Reference


def partition_of(model: str, partitions: int) -> int:
    """The partials partition of ``model`` (stable across processes, unlike ``hash``).

    >>> partition_of("fraud-detector", 6) == partition_of("fraud-detector", 6)
    True
    """
    return zlib.crc32(model.encode()) % partitions


def fingerprint(reference: Reference) -> str:
    """A short digest of a reference: partials counted against another one do not merge."""
    text = orjson.dumps(reference.to_dict(), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:16]


def pane_key(source: PartitionKey, version: VersionKey, pane: int) -> bytes:
    """Key of one partition's partial summary of one pane."""
    return orjson.dumps(["pane", *source, *version, pane])


def watermark_key(source: PartitionKey) -> bytes:
    """Key of one input partition's watermark record."""
    return orjson.dumps(["watermark", *source])


def judged_key(model: str) -> bytes:
    """Key of an aggregator's progress record for ``model``."""
    return orjson.dumps(["judged", model])


def encode_pane(vector: np.ndarray, offset: int, reference: str) -> bytes:
    """A pane vector as a sparse record value (:func:`decode_pane` reads it)."""
    width, index, values = sparse_parts(vector)
    return orjson.dumps(
        {
            "offset": offset,
            "reference": reference,
            "width": width,
            "index": base64.b64encode(index).decode("ascii"),
            "value": base64.b64encode(values).decode("ascii"),
        }
    )


def decode_pane(body: dict[str, Any]) -> np.ndarray:
    """The vector of an :func:`encode_pane` record value (parsed)."""
    index, values = base64.b64decode(body["index"]), base64.b64decode(body["value"])
    return from_sparse_parts(int(body["width"]), index, values)


def encode_watermarks(
    watermarks: dict[VersionKey, float], offset: int | None, caught_up: bool = True
) -> bytes:
    """An input partition's watermarks as a record value."""
    rows = [[*version, ts] for version, ts in sorted(watermarks.items())]
    return orjson.dumps({"offset": offset, "caught_up": caught_up, "watermarks": rows})


@dataclass(frozen=True)
class PanePartial:
    """One input partition's cumulative vector of one pane of one model version."""

    source: PartitionKey
    version: VersionKey
    pane: int
    offset: int
    reference: str
    vector: np.ndarray


@dataclass(frozen=True)
class WatermarkReport:
    """One input partition's event-time progress per model version."""

    source: PartitionKey
    watermarks: dict[VersionKey, float]
    caught_up: bool = True
    offset: int | None = None


@dataclass(frozen=True)
class JudgedMark:
    """How far an aggregator judged a model, and the severities it left."""

    model: str
    versions: list[list[Any]]
    severities: list[list[Any]]


Record = PanePartial | WatermarkReport | JudgedMark


def encode_judged(mark: JudgedMark) -> bytes:
    """An aggregator's progress record value."""
    return orjson.dumps({"versions": mark.versions, "severities": mark.severities})


class PartialError(ValueError):
    """A record on the partials topic that this release cannot read."""


def decode_record(key: bytes | None, value: bytes | None) -> Record | None:
    """The record behind a partials-topic message (None: a tombstone).

    >>> vector = np.array([0.0, 2.0, 0.0, 1.5])
    >>> record = decode_record(pane_key(("t", 3), ("m", "v1"), 7), encode_pane(vector, 42, "ab"))
    >>> record.source, record.version, record.pane, record.offset, record.vector.tolist()
    (('t', 3), ('m', 'v1'), 7, 42, [0.0, 2.0, 0.0, 1.5])
    """
    if value is None:
        return None
    try:
        parts = orjson.loads(key or b"[]")
        body = orjson.loads(value)
        kind = parts[0]
        if kind == "marker":  # written by a restore read (see kafka.changelog)
            return None
        if kind == "pane":
            _, topic, partition, model, version, pane = parts
            return PanePartial(
                (topic, int(partition)),
                (model, version),
                int(pane),
                int(body["offset"]),
                body["reference"],
                decode_pane(body),
            )
        if kind == "watermark":
            _, topic, partition = parts
            marks = {(m, v): float(ts) for m, v, ts in body["watermarks"]}
            caught_up = bool(body.get("caught_up", True))
            offset = body.get("offset")
            return WatermarkReport((topic, int(partition)), marks, caught_up, offset)
        if kind == "judged":
            return JudgedMark(parts[1], body["versions"], body["severities"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise PartialError(f"unreadable partials record {key!r}: {exc}") from exc
    raise PartialError(f"unknown partials record {key!r}")
