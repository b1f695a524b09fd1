"""The service loop: consume, compute, emit drift events, commit.

Each consumed batch goes through the engine; every ``evaluation_interval_s``
the windows are judged and the drift events produced; every
``commit_interval_s`` the progress is committed in the order of
:mod:`stream_monitor.kafka.checkpoint`. Dead letters go through a producer of
their own (:mod:`stream_monitor.sinks.dead_letters`): a dead letter that fails
is retried, counted and finally dropped, but never holds back a commit. A
drift event the broker can never accept (e.g. too large) is counted and dropped.

On assignment each partition's state is restored from the changelog and
consumption resumes at the offset stored with it, so the state reflects every
input event exactly once across crashes, restarts and rebalances. Drift events
are at least once: a crash re-sends some, with the same ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.decode.rejects import RejectLog
from stream_monitor.evaluate import DriftEvent
from stream_monitor.kafka.changelog import (
    ChangelogReadError,
    ChangelogWriter,
    read_changelog,
    read_size,
    restore,
)
from stream_monitor.kafka.checkpoint import Checkpoint, CommitError, StateNotDelivered
from stream_monitor.kafka.connection import KafkaConnection
from stream_monitor.kafka.producer import DeliveryError, TopicWriter
from stream_monitor.sinks.drift_events import produce_drift_events
from stream_monitor.sinks.status_line import StatusLine
from stream_monitor.snapshot import Snapshot
from stream_monitor.state.keys import PartitionKey

if TYPE_CHECKING:
    from stream_monitor.engine import Engine

log = logging.getLogger(__name__)
#: Bytes of message values that make a consumed batch worth taking at once (see
#: :func:`_substantial`): about a thousand events.
SUBSTANTIAL_BYTES = 256 * 1024


class PanePublisher(Protocol):
    """Publishes pane partials for the aggregate replicas (an ingest replica's output)."""

    def publish(self, owned: Iterable[PartitionKey]) -> int:
        """Publish the owned partitions' changed panes and watermarks."""
        ...

    def forget(self, key: PartitionKey) -> None:
        """Forget a partition this replica no longer owns."""
        ...

    def resend(self) -> None:
        """Publish everything again (the last partials were not delivered)."""
        ...


#: Builds the publisher once the partials topic is open: (writer, partials partitions).
PublisherOf = Callable[[TopicWriter, int], PanePublisher]


class MonitorService:
    """One monitor instance in the consumer group.

    With ``publisher_of`` (an ingest replica) it judges nothing: it publishes
    partial summaries for the aggregate replicas where it would evaluate, so
    they are delivered before the changelog and the offsets they reflect.
    """

    def __init__(
        self,
        config: MonitorConfig,
        engine: Engine,
        on_drift: Callable[[DriftEvent], None] | None = None,
        publisher_of: PublisherOf | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.on_drift = on_drift
        self.publisher_of = publisher_of
        self.publisher: PanePublisher | None = None
        engine.judging = publisher_of is None
        if engine.store.clock is None:
            engine.store.clock = time.monotonic
        self.connection = KafkaConnection(config.kafka)
        self.checkpoints = Checkpoint(engine, self.connection, None, config.kafka.commit_interval_s)
        self.reject_log = RejectLog()
        self._owned: set[PartitionKey] = set()
        self._stop = threading.Event()
        self._assigned = False
        self._snapshot = Snapshot()

    @property
    def changelog(self) -> ChangelogWriter | None:
        """Where owned partitions' state is written (None without checkpoints)."""
        return self.checkpoints.changelog

    # -- rebalance callbacks (run inside consume() on the loop thread) --

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        while self.changelog is not None and not self._stop.is_set():
            try:
                self._restore(partitions)
                break
            except (DeliveryError, ChangelogReadError, KafkaException) as exc:
                log.warning("restoring state failed, retrying: %s", exc)
                self._stop.wait(1.0)
                self._reopen_changelog()
        self._owned.update((p.topic, p.partition) for p in partitions)
        events = self.config.kafka.topics.events
        self.engine.store.expect((p.topic, p.partition) for p in partitions if p.topic == events)
        assign(consumer, partitions, self.config.kafka.assignment_strategy)
        self._assigned = True

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Restore every partition's checkpoint in one read; seek each to its stored offset."""
        changelog = self.changelog
        assert changelog is not None
        started = time.monotonic()
        targets = {changelog.changelog_partition((p.topic, p.partition)) for p in partitions}
        reads = read_changelog(*self.connection.settings(), changelog.topic, targets)
        restored = 0
        for p in partitions:
            key = (p.topic, p.partition)
            checkpoint = restore(reads[changelog.changelog_partition(key)].latest, key)
            if checkpoint is None:
                continue
            self.engine.restore_partition(checkpoint)
            changelog.adopt(checkpoint)
            next_offset = checkpoint.meta.get("next_offset")
            self.checkpoints.written(key, next_offset)
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
            self.connection.lag.pop(key, None)
            self.checkpoints.forget(key)
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
        return bool(self.connection.broker_up) and self._assigned

    def open_changelog(self) -> None:
        """Create (if needed) and open the changelog topic, sized like the input topics."""
        connection = self.connection
        topic = self.config.kafka.changelog_topic
        partitions = connection.open_compacted(topic, connection.input_partitions())
        self.checkpoints.changelog = ChangelogWriter(connection.writer, topic, partitions)

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
        if self.publisher_of is not None and self.publisher is None:
            self.publisher = self.publisher_of(
                self.connection.writer, self.connection.open_partials()
            )
        topics = [kafka.topics.events, *([kafka.topics.labels] if kafka.topics.labels else [])]
        self.connection.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        last_evaluation = time.monotonic()
        status = StatusLine(
            [model.name for model in self.config.models],
            self.config.metrics.status_interval_s,
            last_evaluation,
        )
        at_once = False
        try:
            while not stop.is_set():
                messages = self._consume(at_once)
                self.process(messages)
                at_once = _substantial(messages, kafka.batch_size)
                if self.checkpoints.due():
                    self.checkpoint()
                    last_evaluation = time.monotonic()
                elif time.monotonic() - last_evaluation >= self.config.evaluation_interval_s:
                    self.evaluate()
                    last_evaluation = time.monotonic()
                if status.due(last_evaluation):  # the snapshot /metrics serves, just taken
                    status.report(self._snapshot, self.engine.progress(), last_evaluation)
            self.checkpoint()
        finally:
            self.connection.close()

    def _consume(self, at_once: bool) -> list[Message]:
        """The next batch: up to ``kafka.batch_size`` messages, waiting up to
        ``kafka.poll_timeout_s`` for them to gather; ``at_once``, only for the first (then
        whatever the client has fetched already; see :func:`_substantial`)."""
        consumer, kafka = self.connection.consumer, self.config.kafka
        if not at_once:
            return consumer.consume(kafka.batch_size, kafka.poll_timeout_s)
        first = consumer.poll(kafka.poll_timeout_s)
        if first is None:
            return []
        return [first, *(consumer.consume(kafka.batch_size - 1, 0) if kafka.batch_size > 1 else [])]

    def process(self, messages: list[Message]) -> None:
        """Run one consumed batch through the engine; dead-letter what it rejects."""
        raw = raw_messages(messages)
        if not raw:
            return
        self.connection.broker_up = True
        rejects = self.engine.process(raw, now_s=time.time())
        if rejects:
            self.reject_log.record(rejects)
            if self.connection.dead_letters is not None:
                self.connection.dead_letters.forward(raw, rejects)

    def _note_end_offsets(self) -> None:
        """Note each owned partition's (cached) end offset: whether it was read to the end."""
        for key in self._owned:
            try:
                _, high = self.connection.consumer.get_watermark_offsets(
                    TopicPartition(*key), cached=True
                )
            except KafkaException:
                continue
            self.engine.store.note_end_offset(key, high)

    def evaluate(self) -> None:
        """Judge windows and queue drift events (ingest: publish partials); refresh the snapshot."""
        self._note_end_offsets()
        if self.publisher is not None:
            self.publisher.publish(key for key in self.engine.store.ledgers if key in self._owned)
            snapshot = self.engine.operations_snapshot()
            self.connection.poll()
            self._snapshot = self.connection.report(snapshot)
        else:
            topic = self.config.kafka.topics.drift_events
            self._snapshot = judge_and_emit(self.engine, self.connection, topic, self.on_drift)

    def checkpoint(self) -> bool:
        """Evaluate, then commit (:mod:`stream_monitor.kafka.checkpoint`); whether it committed."""
        if self.connection.renew_producer():
            self.checkpoints.rewrite_all()
            if self.publisher is not None:
                self.publisher.resend()
        self.evaluate()
        try:
            self.checkpoints.commit(self._owned)
        except StateNotDelivered as exc:
            log.warning("%s; offsets not committed yet", exc)
            if self.publisher is not None:
                self.publisher.resend()
            return False
        except CommitError as exc:
            log.warning("%s (will retry)", exc)
            return False
        return True


def _substantial(messages: list[Message], batch_size: int) -> bool:
    """Whether a consumed batch was worth taking at once: ``batch_size`` messages, or
    :data:`SUBSTANTIAL_BYTES` of values (a micro-batch of a thousand events is).

    After such a batch the loop takes the next as soon as its first message is
    there: ``consume()`` waits for ``batch_size`` messages until its timeout,
    and micro-batches fill the client's fetch queue long before they number
    that many, so a backlog of them would be read with an idle timeout before
    every batch. After a smaller batch the next one gathers for up to
    ``poll_timeout_s``, so that a slow stream is not read a few events at a time.
    """
    return len(messages) >= batch_size or sum(map(len, messages)) >= SUBSTANTIAL_BYTES


def judge_and_emit(
    engine: Engine,
    connection: KafkaConnection,
    topic: str,
    on_drift: Callable[[DriftEvent], None] | None,
) -> Snapshot:
    """Judge the windows of closed panes, queue their drift events; the snapshot to serve."""
    events = engine.evaluate()
    if events:
        produce_drift_events(connection.writer, topic, events)
        if on_drift is not None:
            for event in events:
                on_drift(event)
    connection.poll()
    return connection.report(engine.snapshot())


def raw_messages(messages: list[Message]) -> list[RawMessage]:
    """The consumed messages as the engine reads them (errors logged, end-of-partition skipped)."""
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
    return raw


def assign(consumer: Consumer, partitions: list[TopicPartition], strategy: str) -> None:
    """Take an assignment: incrementally for the cooperative assignor, else eagerly."""
    if strategy == "cooperative-sticky":
        consumer.incremental_assign(partitions)
    else:
        consumer.assign(partitions)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions)
