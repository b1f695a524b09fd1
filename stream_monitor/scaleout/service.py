"""The aggregate replica's loop: partials in, windows judged, drift events out.

Aggregate replicas form their own consumer group (``<group_id>-aggregate``)
on the partials topic; each owns the models whose partials partition it is
assigned. On assignment its partitions are read together, each from its
beginning up to a marker (the topic is compacted: the newest partial of every
pane, the watermarks and the last judged mark), which rebuilds the models
exactly; consumption goes on from the markers. Nothing is committed: the topic itself is the state.

Order per evaluation: judge, produce the drift events and confirm them, then
write each model's judged mark. A crash in between re-judges the panes after
the last mark and re-sends their drift events, with the same ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from stream_monitor.config import MonitorConfig
from stream_monitor.evaluate import DriftEvent
from stream_monitor.kafka.changelog import ChangelogReadError, read_changelog, read_size
from stream_monitor.kafka.connection import KafkaConnection
from stream_monitor.kafka.producer import DELIVERY_TIMEOUT_S, DeliveryError
from stream_monitor.kafka.service import assign, judge_and_emit
from stream_monitor.scaleout.aggregator import Aggregator
from stream_monitor.scaleout.partials import (
    PartialError,
    Record,
    decode_record,
    encode_judged,
    judged_key,
    partition_of,
)
from stream_monitor.snapshot import Snapshot

if TYPE_CHECKING:
    from stream_monitor.engine import Engine

log = logging.getLogger(__name__)


class AggregateService:
    """One aggregate replica: merges the partials of the models it owns and judges them."""

    def __init__(
        self,
        config: MonitorConfig,
        engine: Engine,
        on_drift: Callable[[DriftEvent], None] | None = None,
    ) -> None:
        kafka = config.kafka
        own = replace(
            kafka,
            group_id=kafka.aggregate_group_id,
            # Partials in, drift events out: no input of its own to reject or dead-letter.
            topics=replace(kafka.topics, partials=kafka.partials_topic, dead_letter=None),
            checkpoints=False,
        )
        self.config = replace(config, kafka=own)
        self.engine = engine
        if engine.store.clock is None:
            engine.store.clock = time.monotonic
        self.on_drift = on_drift
        self.connection = KafkaConnection(own)
        self.aggregator: Aggregator | None = None
        self._stop = threading.Event()
        self._assigned = False
        self._snapshot = Snapshot()

    def snapshot(self) -> Snapshot:
        """The engine's last snapshot plus the consumer's lag and broker state."""
        return self._snapshot

    def ready(self) -> bool:
        """Ready once the broker answered and partials partitions were assigned."""
        return bool(self.connection.broker_up) and self._assigned

    def run(self, stop: threading.Event) -> None:
        """Consume partials until ``stop`` is set, judging every ``evaluation_interval_s``."""
        self._stop = stop
        kafka = self.config.kafka
        consumer = self.connection.consumer
        self.aggregator = Aggregator(self.engine, self.connection.open_partials())
        metadata = consumer.list_topics(timeout=10)
        events = metadata.topics.get(kafka.topics.events)
        if events is not None and not events.error:
            self.engine.store.expect((kafka.topics.events, p) for p in events.partitions)
        consumer.subscribe(
            [kafka.partials_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        last = time.monotonic()
        try:
            while not stop.is_set():
                self.process(consumer.consume(kafka.batch_size, kafka.poll_timeout_s))
                if time.monotonic() - last >= self.config.evaluation_interval_s:
                    self.checkpoint()
                    last = time.monotonic()
            self.checkpoint()
        finally:
            self.connection.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("aggregating partials partitions %s", sorted(p.partition for p in partitions))
        assert self.aggregator is not None
        self.aggregator.assign(p.partition for p in partitions)
        while not self._stop.is_set():
            try:
                self._rebuild(partitions)
                break
            except (ChangelogReadError, KafkaException) as exc:
                log.warning("reading partials failed, retrying: %s", exc)
                self._stop.wait(1.0)
        assign(consumer, partitions, self.config.kafka.assignment_strategy)
        self._assigned = True

    def _rebuild(self, partitions: list[TopicPartition]) -> None:
        """Rebuild the models of the partials partitions in one read; set where each continues."""
        assert self.aggregator is not None
        started = time.monotonic()
        topic = self.config.kafka.partials_topic
        reads = read_changelog(
            *self.connection.settings(), topic, [p.partition for p in partitions]
        )
        for p in partitions:
            read = reads[p.partition]
            self.aggregator.restore(self._decode(list(read.latest.items())), p.partition)
            p.offset = read.next_offset
        log.info(
            "restored %d partials partitions from %d records (%d bytes) in %.3fs",
            len(partitions),
            *read_size(reads),
            time.monotonic() - started,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.checkpoint()
        self._on_lost(consumer, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.aggregator is not None:
            self.aggregator.drop({p.partition for p in partitions})

    def process(self, messages: list[Message]) -> None:
        """Merge one consumed batch of partials, each partials partition in its log order."""
        assert self.aggregator is not None
        by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        for message in messages:
            if message.error() is None:
                self.connection.broker_up = True
                pairs = by_partition.setdefault(message.partition() or 0, [])
                pairs.append((message.key(), message.value()))
        for partition, pairs in by_partition.items():
            self.aggregator.apply(self._decode(pairs), partition)
        self.engine.settle()

    def _decode(self, pairs: list[tuple[bytes | None, bytes | None]]) -> list[Record]:
        records = []
        for key, value in pairs:
            try:
                record = decode_record(key, value)
            except PartialError as exc:
                log.warning("%s", exc)
                self.engine.count_invalid("state_conflict")
                continue
            if record is not None:
                records.append(record)
        return records

    def _check_unread(self) -> None:
        """An input partition with messages its ingest replica has not read is not idle.

        Its last report may say it was caught up, yet its replica died (or is
        rebalancing) since and new messages wait; or no replica has reported it
        yet. It holds panes open until a replica reads them. Asked of the broker
        for partitions never reported (every time: one that was empty may
        receive messages no replica reads) and those still for ``idle_timeout_s``.
        """
        for key in self.engine.store.quiet_partitions():
            try:
                _, high = self.connection.consumer.get_watermark_offsets(
                    TopicPartition(*key), timeout=2.0
                )
            except KafkaException:
                high = -1
            self.engine.store.note_end_offset(key, high)

    def checkpoint(self) -> bool:
        """Judge, deliver the drift events, then record how far each model was judged."""
        self.connection.renew_producer()
        self._check_unread()
        topic = self.config.kafka.topics.drift_events
        self._snapshot = judge_and_emit(self.engine, self.connection, topic, self.on_drift)
        writer = self.connection.writer
        try:
            writer.confirm(DELIVERY_TIMEOUT_S)
        except DeliveryError as exc:
            log.warning("%s; judged marks not written yet", exc)
            return False
        if self.aggregator is None:
            return True
        topic = self.config.kafka.partials_topic
        for model, mark in self.aggregator.judged_marks():
            partition = partition_of(model, self.aggregator.partitions)
            writer.produce(topic, judged_key(model), encode_judged(mark), partition=partition)
        try:
            writer.confirm(DELIVERY_TIMEOUT_S)
        except DeliveryError as exc:
            log.warning("%s; judged marks will be written again", exc)
            self.aggregator.forget_marks()
            return False
        self.aggregator.prune()
        return True
