"""A Kafka producer that tracks delivery: records to re-queue, droppable records, flushes."""

from __future__ import annotations

import logging
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

#: How long a flush waits for the broker to acknowledge what was produced.
DELIVERY_TIMEOUT_S = 10.0
#: librdkafka's "let the partitioner choose".
PARTITION_UA = -1
#: Errors no retry can cure: the broker (or librdkafka) refuses the record itself.
UNDELIVERABLE = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
    }
)

Headers = list[tuple[str, str | bytes | None]] | None

log = logging.getLogger(__name__)


def undeliverable(error: KafkaError) -> bool:
    """Whether ``error`` refuses the record for good (too large, invalid), so no retry helps.

    >>> undeliverable(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    True
    >>> undeliverable(KafkaError(KafkaError._MSG_TIMED_OUT))
    False
    """
    return error.code() in UNDELIVERABLE


class DeliveryError(RuntimeError):
    """A produced message was not acknowledged by the broker."""


class _Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None
    droppable: bool


class TopicWriter:
    """Produces to Kafka and tracks delivery, so that offsets are committed only after it.

    A message whose delivery failed (after librdkafka's own retries) is queued
    again by :meth:`confirm`, which then reports the failure: state records are
    delivered, or nothing is committed. A ``droppable`` message (a drift event)
    that can never be delivered (:func:`undeliverable`) is logged, counted in
    :attr:`dropped` and dropped instead, so that it neither stops the service
    nor holds back the commits forever.
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        #: Droppable messages dropped because they can never be delivered.
        self.dropped = 0
        self._failed: list[_Record] = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = None,
        partition: int | None = None,
        *,
        droppable: bool = False,
    ) -> None:
        """Queue one message (``value`` None is a tombstone); waits for room in the queue."""
        self._produce(_Record(topic, key, value, headers, partition, droppable))

    def _produce(self, record: _Record) -> None:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._fail(record, error)

        while True:
            try:
                self.producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    partition=PARTITION_UA if record.partition is None else record.partition,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                self.producer.poll(0.1)
            except KafkaException as exc:
                if not record.droppable:
                    raise
                self._fail(record, exc.args[0])
                break
        self.producer.poll(0)

    def _fail(self, record: _Record, error: KafkaError) -> None:
        if record.droppable and undeliverable(error):
            log.error(
                "dropped a message to %s that can never be delivered (%d bytes): %s",
                record.topic,
                len(record.value or b""),
                error.str(),
            )
            self.dropped += 1
            return
        log.warning("delivery to %s failed: %s", record.topic, error)
        self._failed.append(record)

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
        for record in failed:
            self._produce(record)
        if remaining or failed:
            raise DeliveryError(
                f"delivery not confirmed: {len(failed)} failed and re-queued, {remaining} in flight"
            )
