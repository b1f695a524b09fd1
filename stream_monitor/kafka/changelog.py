"""Checkpoints of partition state in a compacted Kafka topic (a changelog).

Each input partition's share of the state (see :mod:`stream_monitor.state.ledger`)
is written as records keyed by JSON arrays:

- ``["pane", topic, partition, model, version, pane, slot]``: one pane vector,
  ``{"seq": S, "vector": base64(zlib(float64 bytes))}``;
- ``["meta", topic, partition, slot, chunk]``: the rest (offset, watermarks,
  references, warm-up rows, pending label joins, severities), zlib-compressed
  JSON cut into chunks of at most ``CHUNK_BYTES``;
- ``["commit", topic, partition]``: ``{"schema_version", "seq", "meta_slot",
  "chunks"}``, written last: a checkpoint exists once its commit record does.

Every pane and the meta are double-buffered (slots 0 and 1): a checkpoint
writes changed panes and its meta into the slots the last commit does not
point at, then the commit record. A crash half-way leaves the previous commit
and everything it points at intact, whatever compaction keeps, because each
key holds only its latest value and the live slots are never overwritten.
Panes that left every window are deleted with tombstones after the commit.

Restoring reads the changelog partitions of every assigned partition together,
each up to a marker record written just before (:func:`read_changelog`), so
the read is complete without trusting the broker's reported high watermark.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from stream_monitor.kafka.admin import create_topics
from stream_monitor.kafka.producer import TopicWriter
from stream_monitor.state.keys import PaneKey, PartitionCheckpoint, PartitionKey
from stream_monitor.state.vectors import pack_text, unpack_text

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
CHUNK_BYTES = 512 * 1024


class ChangelogReadError(RuntimeError):
    """A checkpoint that cannot be read back (wrong schema version, missing records)."""


def _key(*parts: Any) -> bytes:
    return orjson.dumps(list(parts))


class ChangelogWriter:
    """Writes incremental, double-buffered checkpoints of partitions."""

    def __init__(self, writer: TopicWriter, topic: str, partitions: int) -> None:
        self.writer = writer
        self.topic = topic
        self.partitions = partitions
        self._seq: dict[PartitionKey, int] = {}
        self._meta_slot: dict[PartitionKey, int] = {}
        self._pane_slots: dict[PartitionKey, dict[PaneKey, tuple[int, int]]] = {}

    def changelog_partition(self, key: PartitionKey) -> int:
        """The changelog partition holding ``key``'s records."""
        return max(key[1], 0) % self.partitions

    def adopt(self, checkpoint: PartitionCheckpoint) -> None:
        """Continue from a restored checkpoint (its sequence number and live slots)."""
        key = checkpoint.key
        self._seq[key] = checkpoint.seq
        self._meta_slot[key] = int(checkpoint.meta.get("meta_slot", 0))
        self._pane_slots[key] = {
            ((m, v), int(p)): (int(slot), int(seq))
            for m, v, p, slot, seq in checkpoint.meta.get("pane_slots", [])
        }

    def forget(self, key: PartitionKey) -> None:
        """Stop tracking a partition this instance no longer owns."""
        self._seq.pop(key, None)
        self._meta_slot.pop(key, None)
        self._pane_slots.pop(key, None)

    def write(
        self,
        key: PartitionKey,
        changed: dict[PaneKey, np.ndarray],
        evicted: set[PaneKey],
        meta: dict[str, Any],
    ) -> None:
        """Queue one checkpoint of ``key``: changed panes, meta, commit, then tombstones."""
        topic, partition = key
        target = self.changelog_partition(key)
        seq = self._seq.get(key, 0) + 1
        slots = self._pane_slots.setdefault(key, {})
        for (version, pane), vector in changed.items():
            slot = 1 - slots.get((version, pane), (1, 0))[0]
            value = orjson.dumps({"seq": seq, "vector": pack_text(vector)})
            self._produce(_key("pane", topic, partition, *version, pane, slot), value, target)
            slots[(version, pane)] = (slot, seq)
        for pane_key in evicted:
            slots.pop(pane_key, None)
        meta_slot = 1 - self._meta_slot.get(key, 1)
        body = dict(meta)
        body["meta_slot"] = meta_slot
        body["pane_slots"] = [[*v, p, slot, s] for (v, p), (slot, s) in slots.items()]
        blob = zlib.compress(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), 1)
        chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        for index, chunk in enumerate(chunks):
            value = orjson.dumps({"seq": seq, "data": base64.b64encode(chunk).decode("ascii")})
            self._produce(_key("meta", topic, partition, meta_slot, index), value, target)
        commit = {
            "schema_version": SCHEMA_VERSION,
            "seq": seq,
            "meta_slot": meta_slot,
            "chunks": len(chunks),
        }
        self._produce(_key("commit", topic, partition), orjson.dumps(commit), target)
        for version, pane in evicted:
            for slot in (0, 1):
                self._produce(_key("pane", topic, partition, *version, pane, slot), None, target)
        self._seq[key] = seq
        self._meta_slot[key] = meta_slot

    def _produce(self, key: bytes, value: bytes | None, partition: int) -> None:
        self.writer.produce(self.topic, key, value, partition=partition)


def ensure_changelog(admin_settings: dict[str, Any], topic: str, partitions: int) -> int:
    """Create the compacted changelog topic if missing; its partition count."""
    admin = AdminClient(admin_settings)
    metadata = admin.list_topics(timeout=10)
    existing = metadata.topics.get(topic)
    if existing is not None and not existing.error:
        return len(existing.partitions)
    compacted = NewTopic(topic, num_partitions=partitions, config={"cleanup.policy": "compact"})
    create_topics(admin_settings, [compacted])
    return partitions


#: Key of the marker records a restore read writes (compaction keeps the newest per partition).
MARKER_KEY = _key("marker")
#: Most messages taken per ``consume()`` of a restore read, and how long one waits for more.
READ_BATCH = 10_000
READ_WAIT_S = 0.02


@dataclass
class PartitionRead:
    """One partition of a compacted topic, read up to a marker."""

    #: The latest value of every key (None: deleted).
    latest: dict[bytes, bytes | None]
    #: The offset just past the marker: where a reader continues.
    next_offset: int


def read_changelog(
    consumer_settings: dict[str, Any],
    producer_settings: dict[str, Any],
    topic: str,
    partitions: Iterable[int],
    timeout_s: float = 15.0,
) -> dict[int, PartitionRead]:
    """Every key's latest value in ``partitions`` of a compacted topic, read together.

    1. One producer writes a marker record to every partition at once. The
       partition leader assigns the marker its offset when it appends it, so
       every record written before (a checkpoint the previous owner wrote when
       its partitions were revoked, say) has a smaller offset.
    2. One ListOffsets request gives each partition's log start offset. A
       partition whose marker sits at its log start offset holds nothing
       before the marker: it is empty and is not read.
    3. One consumer is assigned every other partition at its log start offset
       and reads until it passed the marker of each.

    The high watermark is not used: a broker may report one that lags its log
    for a moment after a write (the embedded broker does), which would make the
    checkpoint just written look absent. The marker's offset cannot lag, and a
    stale log start offset is only ever too low, which costs a read, never a
    record. Nothing waits for a fixed time: ``timeout_s`` only bounds a broker
    that stops answering (:class:`ChangelogReadError` when the markers are not
    delivered, or the read makes no progress, for that long).
    """
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    # Not idempotent: an idempotent client would take a producer id from the broker
    # for nothing (the admin client is a producer too).
    plain = {**producer_settings, "enable.idempotence": False}
    ends = _write_markers(plain, topic, wanted, timeout_s)
    starts = _log_starts(plain, topic, wanted, timeout_s)
    reads = {p: PartitionRead({}, ends[p] + 1) for p in wanted}
    pending = {p: ends[p] for p in wanted if ends[p] > starts[p]}
    if pending:
        _read_to_markers(consumer_settings, topic, starts, pending, reads, timeout_s)
    return reads


def read_size(reads: dict[int, PartitionRead]) -> tuple[int, int]:
    """Keys and bytes (keys plus values) that a :func:`read_changelog` result holds."""
    records = sum(len(read.latest) for read in reads.values())
    size = sum(
        len(key) + len(value or b"")
        for read in reads.values()
        for key, value in read.latest.items()
    )
    return records, size


def _write_markers(
    producer_settings: dict[str, Any], topic: str, partitions: list[int], timeout_s: float
) -> dict[int, int]:
    """Produce a marker to each partition; the offset each was written at."""
    offsets: dict[int, int] = {}
    failed: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failed.append(f"[{message.partition()}] {error.str()}")
        else:
            offsets[message.partition() or 0] = message.offset() or 0

    producer = Producer(producer_settings)
    for partition in partitions:
        producer.produce(
            topic, key=MARKER_KEY, value=b"{}", partition=partition, on_delivery=on_delivery
        )
    deadline = time.monotonic() + timeout_s
    while len(offsets) + len(failed) < len(partitions) and time.monotonic() < deadline:
        producer.poll(0.01)
    producer.flush(1.0)
    if failed or len(offsets) < len(partitions):
        missing = sorted(set(partitions) - set(offsets))
        raise ChangelogReadError(f"{topic}: restore markers not delivered to {missing} {failed}")
    return offsets


def _log_starts(
    admin_settings: dict[str, Any], topic: str, partitions: list[int], timeout_s: float
) -> dict[int, int]:
    """The log start offset of each partition, in one request."""
    admin = AdminClient(admin_settings)
    futures = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.earliest() for p in partitions},
        request_timeout=timeout_s,
    )
    return {tp.partition: max(0, future.result().offset) for tp, future in futures.items()}


def _read_to_markers(
    consumer_settings: dict[str, Any],
    topic: str,
    starts: dict[int, int],
    pending: dict[int, int],
    reads: dict[int, PartitionRead],
    timeout_s: float,
) -> None:
    """Read each ``pending`` partition from its start until its marker's offset (into ``reads``)."""
    settings = {
        **consumer_settings,
        "group.id": f"stream-monitor-restore-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    consumer = Consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise ChangelogReadError(
                    f"{topic}: restore read of {sorted(pending)} did not reach its markers"
                )
            for message in consumer.consume(READ_BATCH, READ_WAIT_S):
                partition = message.partition() or 0
                end = pending.get(partition)
                if end is None or message.error() is not None:
                    continue
                deadline = time.monotonic() + timeout_s
                offset = message.offset() or 0
                if offset >= end:  # the marker, or past it if compaction removed it
                    del pending[partition]
                    consumer.pause([TopicPartition(topic, partition)])
                    continue
                key = message.key()
                if key is not None and key != MARKER_KEY:
                    reads[partition].latest[key] = message.value()
    finally:
        consumer.close()


def restore(latest: dict[bytes, bytes | None], key: PartitionKey) -> PartitionCheckpoint | None:
    """The committed checkpoint of ``key`` in a changelog read, or None when there is none."""
    topic, partition = key
    raw_commit = latest.get(_key("commit", topic, partition))
    if raw_commit is None:
        return None
    commit = orjson.loads(raw_commit)
    if commit.get("schema_version") != SCHEMA_VERSION:
        raise ChangelogReadError(
            f"checkpoint of {topic}[{partition}] has schema_version "
            f"{commit.get('schema_version')!r}; this release reads {SCHEMA_VERSION}. "
            "Delete the changelog topic (or use a new group id) to start afresh."
        )
    seq, meta_slot = int(commit["seq"]), int(commit["meta_slot"])
    blob = b""
    for index in range(int(commit["chunks"])):
        raw = latest.get(_key("meta", topic, partition, meta_slot, index))
        record = orjson.loads(raw) if raw else None
        if record is None or record["seq"] != seq:
            raise ChangelogReadError(
                f"checkpoint {seq} of {topic}[{partition}]: meta chunk missing"
            )
        blob += base64.b64decode(record["data"])
    meta = orjson.loads(zlib.decompress(blob))
    checkpoint = PartitionCheckpoint(key, seq, meta)
    for model, version, pane, slot, pane_seq in meta["pane_slots"]:
        raw = latest.get(_key("pane", topic, partition, model, version, pane, slot))
        record = orjson.loads(raw) if raw else None
        if record is None or record["seq"] != pane_seq:
            raise ChangelogReadError(
                f"checkpoint {seq} of {topic}[{partition}]: pane {pane} of {model} {version} "
                "missing"
            )
        checkpoint.panes[((model, version), int(pane))] = unpack_text(record["vector"])
    return checkpoint
