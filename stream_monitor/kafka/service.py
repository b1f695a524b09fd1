"""The service loop: consume, compute, emit drift events, commit.

Commit order, enforced in :meth:`MonitorService.checkpoint`:

1. evaluate the windows the consumed messages updated;
2. produce the resulting drift events;
3. write each owned partition's state, with the offset it reflects, to the
   changelog topic (:mod:`stream_monitor.kafka.changelog`);
4. flush the producer and confirm delivery (nothing is committed otherwise);
5. commit the offsets of the messages processed.

Dead letters go through a producer of their own (:mod:`stream_monitor.sinks.dead_letters`),
produced as messages are rejected and waited for briefly at step 4; a dead letter
that fails is retried, counted and finally dropped, but never holds back step 5.
A drift event the broker can never accept (e.g. too large) is counted and dropped.

On assignment each partition's state is restored from the changelog and
consumption resumes at the offset stored with it, so the state reflects every
input event exactly once across crashes, restarts and rebalances. Drift events
are at least once: a crash re-sends some, with the same ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream_monitor.config import KafkaConfig, MonitorConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.decode.rejects import RejectLog
from stream_monitor.engine import Engine
from stream_monitor.evaluate import DriftEvent
from stream_monitor.kafka.changelog import (
    ChangelogWriter,
    CheckpointError,
    ensure_changelog,
    read_changelog,
    read_size,
    restore,
)
from stream_monitor.kafka.producer import DeliveryError, TopicWriter
from stream_monitor.scaleout.publisher import PartialPublisher
from stream_monitor.sinks.dead_letters import DeadLetters
from stream_monitor.sinks.drift_events import produce_drift_events
from stream_monitor.snapshot import Snapshot

log = logging.getLogger(__name__)
#: librdkafka's own log lines go through Python logging under this name.
client_log = logging.getLogger("stream_monitor.librdkafka")

DELIVERY_TIMEOUT_S = 10.0
#: How long a checkpoint waits for dead letters in flight before it commits anyway.
DEAD_LETTER_WAIT_S = 2.0


class StartupError(RuntimeError):
    """The broker could not be reached within the start-up timeout."""


def consumer_settings(kafka: KafkaConfig, **callbacks: Any) -> dict[str, Any]:
    """librdkafka consumer settings: ours, then the user's passthrough settings."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": kafka.auto_offset_reset,
        "partition.assignment.strategy": kafka.assignment_strategy,
        "session.timeout.ms": kafka.session_timeout_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
        "heartbeat.interval.ms": max(100, min(3000, kafka.session_timeout_ms // 3)),
        "statistics.interval.ms": kafka.statistics_interval_ms,
        "logger": client_log,
        **kafka.client,
        **kafka.consumer,
        **callbacks,
    }


def producer_settings(kafka: KafkaConfig, **callbacks: Any) -> dict[str, Any]:
    """librdkafka producer settings: idempotent, acks from all in-sync replicas."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "logger": client_log,
        **kafka.client,
        **kafka.producer,
        **callbacks,
    }


def dead_letter_producer_settings(kafka: KafkaConfig, **callbacks: Any) -> dict[str, Any]:
    """The dead-letter producer: ``message.max.bytes`` from the config, not idempotent.

    Dead letters are best effort (one sent again may be duplicated), and a
    producer that is not idempotent has no fatal errors to recover from.
    """
    return {
        **producer_settings(kafka, **callbacks),
        "enable.idempotence": False,
        "message.max.bytes": kafka.dead_letter_max_bytes,
    }


def lag_from_statistics(stats: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Consumer lag per assigned partition from librdkafka's statistics JSON.

    >>> lag_from_statistics({"topics": {"t": {"partitions": {
    ...     "0": {"consumer_lag": 5}, "-1": {"consumer_lag": -1}, "1": {"consumer_lag": -1}}}}})
    {('t', 0): 5}
    """
    lag: dict[tuple[str, int], int] = {}
    for topic, topic_stats in stats.get("topics", {}).items():
        for partition, partition_stats in topic_stats.get("partitions", {}).items():
            value = partition_stats.get("consumer_lag", -1)
            if int(partition) >= 0 and value >= 0:
                lag[(topic, int(partition))] = int(value)
    return lag


def brokers_up(stats: dict[str, Any]) -> bool:
    """Whether librdkafka reports at least one broker connection as UP."""
    return any(b.get("state") == "UP" for b in stats.get("brokers", {}).values())


class MonitorService:
    """One monitor instance in the consumer group.

    With ``ingest`` it judges nothing: it publishes partial summaries for the
    aggregate replicas (:mod:`stream_monitor.scaleout.partials`) where it would evaluate,
    so they are delivered before the changelog and the offsets they reflect.
    """

    def __init__(
        self,
        config: MonitorConfig,
        engine: Engine,
        on_drift: Callable[[DriftEvent], None] | None = None,
        ingest: bool = False,
    ) -> None:
        self.config = config
        self.ingest = ingest
        self.publisher: PartialPublisher | None = None
        self.engine = engine
        engine.judging = not ingest
        if engine.store.clock is None:
            engine.store.clock = time.monotonic
        self.on_drift = on_drift
        self.reject_log = RejectLog()
        self._lag: dict[tuple[str, int], int] = {}
        self._broker_up: bool | None = None
        self._owned: set[tuple[str, int]] = set()
        self._checkpointed: dict[tuple[str, int], int | None] = {}
        self._judged_panes = 0
        self.changelog: ChangelogWriter | None = None
        self._stop = threading.Event()
        self._producer_failed = False
        self._assigned = False
        self._closed = False
        self._snapshot = Snapshot()
        kafka = config.kafka
        self.consumer = Consumer(
            consumer_settings(kafka, error_cb=self._on_error, stats_cb=self._on_stats)
        )
        self.writer = TopicWriter(Producer(producer_settings(kafka, error_cb=self._on_error)))
        self.dead_letters: DeadLetters | None = None
        if kafka.topics.dead_letter:
            settings = dead_letter_producer_settings(kafka, error_cb=self._on_error)
            self.dead_letters = DeadLetters(
                Producer(settings),
                kafka.topics.dead_letter,
                kafka.dead_letter_max_bytes,
                kafka.dead_letter_retries,
            )

    # -- callbacks (run inside consume()/poll() on the loop thread) --

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("kafka client fatal error, recreating the producer: %s", error.str())
            self._producer_failed = True
            return
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self._broker_up is not False:
                log.warning("kafka broker unreachable: %s", error.str())
            self._broker_up = False
            return
        log.warning("kafka: %s", error.str())

    def _on_stats(self, raw: str) -> None:
        stats = orjson.loads(raw)
        self._lag = lag_from_statistics(stats)
        self._broker_up = brokers_up(stats)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        while self.changelog is not None and not self._stop.is_set():
            try:
                self._restore(partitions)
                break
            except (DeliveryError, CheckpointError, KafkaException) as exc:
                log.warning("restoring state failed, retrying: %s", exc)
                self._stop.wait(1.0)
                self._reopen_changelog()
        self._owned.update((p.topic, p.partition) for p in partitions)
        events = self.config.kafka.topics.events
        self.engine.store.expect((p.topic, p.partition) for p in partitions if p.topic == events)
        if self.config.kafka.assignment_strategy == "cooperative-sticky":
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._assigned = True

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Restore every partition's checkpoint in one read; seek each to its stored offset."""
        assert self.changelog is not None
        started = time.monotonic()
        changelog = self.changelog
        targets = {changelog.changelog_partition((p.topic, p.partition)) for p in partitions}
        kafka = self.config.kafka
        reads = read_changelog(
            consumer_settings(kafka), producer_settings(kafka), changelog.topic, targets
        )
        restored = 0
        for p in partitions:
            key = (p.topic, p.partition)
            checkpoint = restore(reads[changelog.changelog_partition(key)].latest, key)
            if checkpoint is None:
                continue
            self.engine.restore_partition(checkpoint)
            changelog.adopt(checkpoint)
            next_offset = checkpoint.meta.get("next_offset")
            self._checkpointed[key] = next_offset
            if next_offset is not None:
                p.offset = next_offset
            restored += 1
            log.debug("restored %s[%d] at offset %s", p.topic, p.partition, next_offset)
        log.info(
            "restored %d of %d partitions from %d changelog records (%d bytes) in %.3fs",
            restored,
            len(partitions),
            *read_size(reads),
            time.monotonic() - started,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s: checkpointing", _names(partitions))
        self.checkpoint()
        self._drop(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s: their state is dropped uncommitted", _names(partitions))
        self._drop(partitions)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            key = (p.topic, p.partition)
            self._owned.discard(key)
            self._lag.pop(key, None)
            self._checkpointed.pop(key, None)
            self.engine.drop_partition(key)
            if self.changelog is not None:
                self.changelog.forget(key)
            if self.publisher is not None:
                self.publisher.forget(key)

    # -- public --

    def snapshot(self) -> Snapshot:
        """The engine's last snapshot plus the consumer's lag and broker state."""
        return self._snapshot

    def ready(self) -> bool:
        """Ready once the broker answered and partitions were assigned."""
        return bool(self._broker_up) and self._assigned

    def wait_for_broker(self) -> None:
        """Block until the broker answers, or raise :class:`StartupError` after the timeout."""
        timeout_s = self.config.kafka.startup_timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.consumer.list_topics(timeout=min(2.0, timeout_s))
                self._broker_up = True
                return
            except KafkaException:
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"Kafka broker {self.config.kafka.bootstrap_servers} unreachable "
                        f"after {timeout_s:g}s (kafka.startup_timeout_s)"
                    ) from None
                time.sleep(0.5)

    def input_partitions(self) -> int:
        """The most partitions of the input topics (1 when they do not exist yet)."""
        kafka = self.config.kafka
        metadata = self.consumer.list_topics(timeout=10)
        inputs = [kafka.topics.events, *([kafka.topics.labels] if kafka.topics.labels else [])]
        return max(
            [len(metadata.topics[t].partitions) for t in inputs if t in metadata.topics] or [1]
        )

    def open_compacted(self, topic: str, partitions: int) -> int:
        """Create (if needed) a compacted topic; its partition count."""
        kafka = self.config.kafka
        admin = {"bootstrap.servers": kafka.bootstrap_servers, **kafka.client}
        return ensure_changelog(admin, topic, partitions)

    def open_changelog(self) -> None:
        """Create (if needed) and open the changelog topic, sized like the input topics."""
        topic = self.config.kafka.changelog_topic
        partitions = self.open_compacted(topic, self.input_partitions())
        self.changelog = ChangelogWriter(self.writer, topic, partitions)

    def open_partials(self) -> int:
        """Create (if needed) the partials topic; its partition count."""
        kafka = self.config.kafka
        wanted = kafka.partials_partitions or self.input_partitions()
        return self.open_compacted(kafka.partials_topic, wanted)

    def _reopen_changelog(self) -> None:
        """Recreate a changelog topic that vanished (a broker that lost its data)."""
        try:
            self.open_changelog()
        except KafkaException as exc:
            log.warning("changelog topic unavailable: %s", exc)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then checkpoint and close."""
        self._stop = stop
        kafka = self.config.kafka
        if kafka.checkpoints and self.changelog is None:
            self.open_changelog()
        if self.ingest and self.publisher is None:
            partitions = self.open_partials()
            self.publisher = PartialPublisher(
                self.engine, self.writer, kafka.partials_topic, partitions
            )
        topics = [kafka.topics.events]
        if kafka.topics.labels:
            topics.append(kafka.topics.labels)
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        last_evaluation = last_commit = time.monotonic()
        try:
            while not stop.is_set():
                messages = self.consumer.consume(kafka.batch_size, kafka.poll_timeout_s)
                self.process(messages)
                now = time.monotonic()
                if now - last_commit >= kafka.commit_interval_s:
                    self.checkpoint()
                    last_commit = last_evaluation = now
                elif now - last_evaluation >= self.config.evaluation_interval_s:
                    self.evaluate()
                    last_evaluation = now
            self.checkpoint()
        finally:
            self.close()

    def close(self) -> None:
        """Close the consumer (leaving the group), flush and release the producer; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.consumer.close()
        self.writer.release(DELIVERY_TIMEOUT_S)
        if self.dead_letters is not None:
            self.dead_letters.release(DELIVERY_TIMEOUT_S)

    def process(self, messages: list[Message]) -> None:
        """Run one consumed batch through the engine; dead-letter what it rejects."""
        raw: list[RawMessage] = []
        append = raw.append
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            timestamp_type, timestamp_ms = message.timestamp()
            append(
                RawMessage(
                    message.value(),
                    timestamp_ms if timestamp_type else None,
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                )
            )
        if not raw:
            return
        self._broker_up = True
        rejects = self.engine.process(raw, now_s=time.time())
        if rejects:
            self.reject_log.record(rejects)
            if self.dead_letters is not None:
                self.dead_letters.forward(raw, rejects)

    def _note_caught_up(self) -> None:
        """Whether each owned partition was read to its (cached) high watermark."""
        for key in self._owned:
            ledger = self.engine.store.ledgers.get(key)
            if ledger is None:
                continue
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except KafkaException:
                continue
            ledger.caught_up = high >= 0 and (ledger.next_offset or 0) >= high

    def evaluate(self) -> None:
        """Judge windows and queue drift events (ingest: publish partials); refresh the snapshot."""
        self._note_caught_up()
        if self.publisher is not None:
            self.publisher.publish(key for key in self.engine.store.ledgers if key in self._owned)
            snapshot = self.engine.operations_snapshot()
        else:
            events = self.engine.evaluate()
            if events:
                produce_drift_events(self.writer, self.config.kafka.topics.drift_events, events)
                if self.on_drift is not None:
                    for event in events:
                        self.on_drift(event)
            snapshot = self.engine.snapshot()
        self.writer.producer.poll(0)
        dead = self.dead_letters
        if dead is not None:
            dead.poll()
        self._snapshot = replace(
            snapshot,
            consumer_lag=dict(self._lag),
            broker_up=self._broker_up,
            drift_events_dropped=self.writer.dropped,
            dead_letter_failures=dict(dead.failures) if dead is not None else {},
            dead_letters_dropped=dead.dropped if dead is not None else 0,
        )

    def _renew_producer(self) -> None:
        """Replace a producer that hit a fatal error (e.g. a broker that lost its data)."""
        self._producer_failed = False
        self.writer.producer = Producer(
            producer_settings(self.config.kafka, error_cb=self._on_error)
        )
        for ledger in self.engine.store.ledgers.values():
            ledger.mark_all_dirty()
        self._checkpointed.clear()
        if self.publisher is not None:
            self.publisher.resend()

    def checkpoint(self) -> bool:
        """Evaluate, write state, confirm delivery, then commit offsets (the module's order)."""
        if self._producer_failed:
            self._renew_producer()
        self.evaluate()
        owned = [key for key in self.engine.store.ledgers if key in self._owned]
        if self.changelog is not None:
            # Every partition's checkpoint carries the severities and how far each model
            # was judged: once judging moved, all are rewritten, so none restores stale ones.
            judged = self.engine.judge.judged_panes != self._judged_panes
            self._judged_panes = self.engine.judge.judged_panes
            for key in owned:
                ledger = self.engine.store.ledgers[key]
                unchanged = not ledger.checkpointed.pending and not judged
                if unchanged and self._checkpointed.get(key) == ledger.next_offset:
                    continue
                changed, evicted, meta = self.engine.checkpoint_partition(key)
                self.changelog.write(key, changed, evicted, meta)
                self._checkpointed[key] = ledger.next_offset
        if self.dead_letters is not None:
            self.dead_letters.settle(DEAD_LETTER_WAIT_S)
        try:
            self.writer.confirm(DELIVERY_TIMEOUT_S)
        except DeliveryError as exc:
            log.warning("%s; offsets not committed yet", exc)
            for key in owned:
                self.engine.store.ledgers[key].mark_all_dirty()
                self._checkpointed.pop(key, None)
            if self.publisher is not None:
                self.publisher.resend()
            return False
        offsets = [
            TopicPartition(topic, partition, ledger.next_offset)
            for (topic, partition), ledger in self.engine.store.ledgers.items()
            if (topic, partition) in self._owned and ledger.next_offset is not None
        ]
        if not offsets:
            return True
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed (will retry): %s", exc.args[0])
            return False
        return True


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions)
