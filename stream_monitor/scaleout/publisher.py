"""The ingest side of a scaled-out deployment: publishing partial summaries.

See :mod:`stream_monitor.scaleout.partials` for the records. Each publication sends the
panes every owned partition changed (or forgot) since the previous one, then
the partition's watermarks to every partials partition, so an aggregator
always reads a partition's panes before the watermark that covers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stream_monitor.kafka.producer import TopicWriter
from stream_monitor.scaleout.partials import (
    encode_pane,
    encode_watermarks,
    fingerprint,
    pane_key,
    partition_of,
    watermark_key,
)
from stream_monitor.state.keys import PartitionKey, VersionKey

if TYPE_CHECKING:
    from stream_monitor.engine import Engine


class PartialPublisher:
    """Queues an engine's changed panes and watermarks on the partials topic."""

    def __init__(self, engine: Engine, writer: TopicWriter, topic: str, partitions: int) -> None:
        self.engine = engine
        self.writer = writer
        self.topic = topic
        self.partitions = partitions
        self._sent: dict[PartitionKey, tuple[dict[VersionKey, float], bool]] = {}
        self._fingerprints: dict[VersionKey, str] = {}

    def publish(self, owned: Iterable[PartitionKey]) -> int:
        """Queue the partials of ``owned`` partitions; how many pane records were queued."""
        queued = 0
        for key in owned:
            ledger = self.engine.store.ledgers.get(key)
            if ledger is None:
                continue
            changed, evicted = ledger.take_unpublished()
            offset = ledger.next_offset or 0
            for (version, pane), vector in changed.items():
                reference = self._fingerprint(version)
                if reference is None:
                    continue
                value = encode_pane(vector, offset, reference)
                self._produce(pane_key(key, version, pane), value, version[0])
                queued += 1
            for version, pane in evicted:
                self._produce(pane_key(key, version, pane), None, version[0])
            progress = (dict(ledger.watermarks), ledger.caught_up)
            if ledger.watermarks and self._sent.get(key) != progress:
                value = encode_watermarks(ledger.watermarks, ledger.next_offset, ledger.caught_up)
                for partition in range(self.partitions):
                    self.writer.produce(self.topic, watermark_key(key), value, partition=partition)
                self._sent[key] = progress
        return queued

    def resend(self) -> None:
        """Send every owned pane and watermark again (the last publication was not delivered)."""
        self._sent.clear()
        for ledger in self.engine.store.ledgers.values():
            ledger.published.touch_all(ledger.panes)

    def forget(self, key: PartitionKey) -> None:
        """Stop tracking a partition this replica no longer owns."""
        self._sent.pop(key, None)

    def _fingerprint(self, version: VersionKey) -> str | None:
        found = self._fingerprints.get(version)
        if found is None:
            state = self.engine.states.get(version)
            if state is None or state.reference is None:
                return None
            found = self._fingerprints[version] = fingerprint(state.reference)
        return found

    def _produce(self, key: bytes, value: bytes | None, model: str) -> None:
        partition = partition_of(model, self.partitions)
        self.writer.produce(self.topic, key, value, partition=partition)
