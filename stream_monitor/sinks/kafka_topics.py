"""Producing drift events and dead letters to Kafka."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from stream_monitor.decode import RawMessage, Reject
from stream_monitor.evaluate import DriftEvent

#: librdkafka's "let the partitioner choose".
PARTITION_UA = -1

Headers = list[tuple[str, str | bytes | None]] | None

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """A produced message was not acknowledged by the broker."""


class TopicWriter:
    """Produces to Kafka and tracks delivery, so that offsets are committed only after it.

    A message whose delivery failed (after librdkafka's own retries) is queued
    again by :meth:`confirm`, which then reports the failure.
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._failed: list[tuple[str, bytes | None, bytes | None, Headers, int | None]] = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message (``value`` None is a tombstone); waits for room in the queue."""

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                log.warning("delivery to %s failed: %s", topic, error)
                self._failed.append((topic, key, value, headers, partition))

        while True:
            try:
                self.producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    partition=PARTITION_UA if partition is None else partition,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def release(self, timeout_s: float) -> None:
        """Flush, then drop the producer, so its librdkafka threads end now.

        The producer's callbacks refer back to its owner, so without this it
        would be destroyed by the garbage collector at interpreter exit, when a
        librdkafka thread logging through Python can abort the process.
        """
        self.producer.flush(timeout_s)
        del self.producer

    def confirm(self, timeout_s: float) -> None:
        """Wait until everything queued is delivered; raises :class:`DeliveryError` otherwise."""
        remaining = self.producer.flush(timeout_s)
        failed, self._failed = self._failed, []
        for topic, key, value, headers, partition in failed:
            self.produce(topic, key, value, headers, partition)
        if remaining or failed:
            raise DeliveryError(
                f"delivery not confirmed: {len(failed)} failed and re-queued, {remaining} in flight"
            )


def produce_drift_events(writer: TopicWriter, topic: str, events: Sequence[DriftEvent]) -> None:
    """Queue drift events, keyed by model name (SPEC section 4)."""
    for event in events:
        writer.produce(topic, event.model.encode(), event.to_json())


def produce_dead_letters(
    writer: TopicWriter, topic: str, messages: Sequence[RawMessage], rejects: Sequence[Reject]
) -> None:
    """Forward each rejected message once per reason, original bytes intact, reason in headers."""
    seen: set[tuple[int, str]] = set()
    for reject in rejects:
        if reject.message_index < 0 or (reject.message_index, reject.reason) in seen:
            continue
        seen.add((reject.message_index, reject.reason))
        source = messages[reject.message_index]
        headers: Headers = [
            ("stream-monitor.reason", reject.reason.encode()),
            ("stream-monitor.detail", reject.detail.encode(errors="replace")),
            ("stream-monitor.source.topic", source.topic.encode()),
            ("stream-monitor.source.partition", str(source.partition).encode()),
            ("stream-monitor.source.offset", str(source.offset).encode()),
        ]
        writer.produce(topic, None, source.value or b"", headers)
