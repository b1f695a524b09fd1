"""Checkpoints of partition state in a compacted Kafka topic (a changelog).

Each input partition's share of the state (see :mod:`stream_monitor.ledger`)
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

Restoring a partition reads its changelog partition from the beginning up to a
marker record written just before, so the read is complete without trusting
the broker's reported high watermark.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
import zlib
from typing import Any

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_monitor.checkpoint import PartitionCheckpoint
from stream_monitor.kafka.admin import create_topics
from stream_monitor.ledger import PaneKey, PartitionKey
from stream_monitor.sinks.kafka_topics import TopicWriter

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
CHUNK_BYTES = 512 * 1024


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back (wrong schema version, missing records)."""


def encode_vector(vector: np.ndarray) -> str:
    """A float64 vector as compact text (zlib, base64)."""
    raw = np.ascontiguousarray(vector, dtype="<f8").tobytes()
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """Inverse of :func:`encode_vector`.

    >>> decode_vector(encode_vector(np.array([1.0, 0.0, 2.5]))).tolist()
    [1.0, 0.0, 2.5]
    """
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<f8").copy()


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
            value = orjson.dumps({"seq": seq, "vector": encode_vector(vector)})
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


def read_changelog(
    consumer_settings: dict[str, Any],
    producer_settings: dict[str, Any],
    topic: str,
    partition: int,
    timeout_s: float = 15.0,
) -> tuple[dict[bytes, bytes | None], int]:
    """The latest value of every key in one compacted partition (None: deleted).

    Also returns the offset just past the marker: what a reader continues from.
    """
    nonce = uuid.uuid4().hex
    outcome: list[Any] = []
    producer = Producer({**producer_settings, "enable.idempotence": False})
    producer.produce(
        topic,
        key=_key("marker", nonce),
        value=b"{}",
        partition=partition,
        on_delivery=lambda error, _message: outcome.append(error),
    )
    deadline = time.monotonic() + timeout_s
    while not outcome and time.monotonic() < deadline:
        producer.poll(0.1)
    producer.flush(1.0)
    if not outcome or outcome[0] is not None:
        raise CheckpointError(f"{topic}[{partition}]: restore marker not delivered {outcome}")
    settings = {
        **consumer_settings,
        "group.id": f"stream-monitor-restore-{nonce}",
        "enable.auto.commit": False,
    }
    consumer = Consumer(settings)
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    latest: dict[bytes, bytes | None] = {}
    marker = _key("marker", nonce)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                key = message.key()
                if key == marker:
                    return latest, (message.offset() or 0) + 1
                if key is not None:
                    latest[key] = message.value()
        raise CheckpointError(f"{topic}[{partition}]: restore read did not reach its marker")
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
        raise CheckpointError(
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
            raise CheckpointError(f"checkpoint {seq} of {topic}[{partition}]: meta chunk missing")
        blob += base64.b64decode(record["data"])
    meta = orjson.loads(zlib.decompress(blob))
    checkpoint = PartitionCheckpoint(key, seq, meta)
    for model, version, pane, slot, pane_seq in meta["pane_slots"]:
        raw = latest.get(_key("pane", topic, partition, model, version, pane, slot))
        record = orjson.loads(raw) if raw else None
        if record is None or record["seq"] != pane_seq:
            raise CheckpointError(
                f"checkpoint {seq} of {topic}[{partition}]: pane {pane} of {model} {version} "
                "missing"
            )
        checkpoint.panes[((model, version), int(pane))] = decode_vector(record["vector"])
    return checkpoint
