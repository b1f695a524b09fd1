"""One instance's Kafka clients: the consumer, the producer, the dead-letter producer.

It also keeps what the clients report (broker reachable, consumer lag) and
recreates a producer that hit a fatal error. The consumer loops of the
single-process service and of the aggregate replicas both build on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from stream_monitor.config import ConfigError, KafkaConfig
from stream_monitor.kafka.changelog import ensure_changelog
from stream_monitor.kafka.client_log import ClientLogSummary
from stream_monitor.kafka.producer import DELIVERY_TIMEOUT_S, TopicWriter
from stream_monitor.kafka.settings import (
    admin_settings,
    brokers_up,
    client_log,
    consumer_settings,
    dead_letter_producer_settings,
    lag_from_statistics,
    producer_settings,
    refused_setting,
)
from stream_monitor.sinks.dead_letters import DeadLetters
from stream_monitor.snapshot import Snapshot

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Client errors that mean "no broker answers": logged once when the broker goes away.
_UNREACHABLE = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE)


class StartupError(RuntimeError):
    """The broker could not be reached within the start-up timeout."""


class ClientSettingsError(ConfigError):
    """librdkafka refused a client setting; the message names the config key."""


class KafkaConnection:
    """The Kafka clients of one instance, and what they report about the broker.

    Their log lines go through one :class:`ClientLogSummary`, which :meth:`poll`
    and :meth:`wait_for_broker` flush, so a broker that is down gives one line
    per interval, not hundreds.
    """

    def __init__(self, kafka: KafkaConfig) -> None:
        self.kafka = kafka
        self.lag: dict[tuple[str, int], int] = {}
        self.broker_up: bool | None = None
        self.producer_failed = False
        self.client_log = ClientLogSummary(client_log)
        callbacks = {"error_cb": self._on_error, "logger": self.client_log}
        self.consumer = _built(
            Consumer,
            kafka,
            "consumer",
            consumer_settings(kafka, stats_cb=self._on_stats, **callbacks),
        )
        try:
            producer = _built(Producer, kafka, "producer", producer_settings(kafka, **callbacks))
            self.writer = TopicWriter(producer)
            self.dead_letters: DeadLetters | None = None
            if kafka.topics.dead_letter:
                settings = dead_letter_producer_settings(kafka, **callbacks)
                self.dead_letters = DeadLetters(
                    _built(Producer, kafka, "producer", settings),
                    kafka.topics.dead_letter,
                    kafka.dead_letter_max_bytes,
                    kafka.dead_letter_retries,
                )
        except ClientSettingsError:
            self.consumer.close()
            raise
        self._closed = False

    # -- callbacks (run inside consume()/poll() on the loop thread) --

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("kafka client fatal error, recreating the producer: %s", error.str())
            self.producer_failed = True
            return
        if error.code() in _UNREACHABLE:
            if self.broker_up is not False:
                log.warning("kafka broker unreachable: %s", error.str())
            self.broker_up = False
            return
        self.client_log.log(logging.WARNING, "%s [%s] %s", error.name(), "error", error.str())

    def _on_stats(self, raw: str) -> None:
        stats = orjson.loads(raw)
        self.lag = lag_from_statistics(stats)
        self.broker_up = brokers_up(stats)

    # -- public --

    def wait_for_broker(self) -> None:
        """Block until the broker answers, or raise :class:`StartupError` after the timeout.

        It says at once which broker it waits for; the clients' log lines are
        served (summarised) while it waits.
        """
        timeout_s = self.kafka.startup_timeout_s
        log.info(
            "waiting for the Kafka broker %s (up to %gs, kafka.startup_timeout_s)",
            self.kafka.bootstrap_servers,
            timeout_s,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.consumer.list_topics(timeout=min(1.0, timeout_s))
                self.broker_up = True
                return
            except KafkaException:
                self.consumer.poll(0)  # serves the clients' log lines and errors
                self.poll()
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"Kafka broker {self.kafka.bootstrap_servers} unreachable "
                        f"after {timeout_s:g}s (kafka.startup_timeout_s)"
                    ) from None
                time.sleep(0.5)

    def input_partitions(self) -> int:
        """The most partitions of the input topics (1 when they do not exist yet)."""
        topics = self.kafka.topics
        metadata = self.consumer.list_topics(timeout=10)
        inputs = [topics.events, *([topics.labels] if topics.labels else [])]
        return max(
            [len(metadata.topics[t].partitions) for t in inputs if t in metadata.topics] or [1]
        )

    def open_compacted(self, topic: str, partitions: int) -> int:
        """Create (if needed) a compacted topic; its partition count."""
        return ensure_changelog(admin_settings(self.kafka), topic, partitions)

    def open_partials(self) -> int:
        """Create (if needed) the partials topic; its partition count."""
        wanted = self.kafka.partials_partitions or self.input_partitions()
        return self.open_compacted(self.kafka.partials_topic, wanted)

    def renew_producer(self) -> bool:
        """Replace a producer that hit a fatal error; whether it did (all state must be resent)."""
        if not self.producer_failed:
            return False
        self.producer_failed = False
        settings = producer_settings(self.kafka, error_cb=self._on_error, logger=self.client_log)
        self.writer.producer = Producer(settings)
        return True

    def poll(self) -> None:
        """Serve delivery reports of the producers; log the clients' repeated lines' counts."""
        self.writer.producer.poll(0)
        if self.dead_letters is not None:
            self.dead_letters.poll()
        self.client_log.flush()

    def report(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with what the clients know: lag, broker state, dropped records."""
        dead = self.dead_letters
        return replace(
            snapshot,
            consumer_lag=dict(self.lag),
            broker_up=self.broker_up,
            drift_events_dropped=self.writer.dropped,
            dead_letter_failures=dict(dead.failures) if dead is not None else {},
            dead_letters_dropped=dead.dropped if dead is not None else 0,
        )

    def close(self) -> None:
        """Close the consumer (leaving the group), flush and release the producers; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.consumer.close()
        self.writer.release(DELIVERY_TIMEOUT_S)
        if self.dead_letters is not None:
            self.dead_letters.release(DELIVERY_TIMEOUT_S)
        self.client_log.flush(final=True)

    def settings(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Consumer and producer settings for a side client (reading a compacted topic)."""
        return (
            consumer_settings(self.kafka, logger=self.client_log),
            producer_settings(self.kafka, logger=self.client_log),
        )


def check_client_settings(kafka: KafkaConfig) -> None:
    """Build and close each client ``run`` builds, so that librdkafka judges the settings;
    :class:`ClientSettingsError` names a refused key. Nothing is consumed or produced,
    and the clients log nothing (they may not reach the broker before they close)."""
    quiet = {"log_level": 0}
    consumer = _built(Consumer, kafka, "consumer", consumer_settings(kafka, **quiet))
    consumer.close()
    built = [producer_settings(kafka, **quiet)]
    if kafka.topics.dead_letter:
        built.append(dead_letter_producer_settings(kafka, **quiet))
    for settings in built:
        _built(Producer, kafka, "producer", settings).flush(0)


def _built(
    make: Callable[[dict[str, Any]], T], kafka: KafkaConfig, role: str, settings: dict[str, Any]
) -> T:
    """A client made from ``settings``, or :class:`ClientSettingsError` naming the refused key."""
    try:
        return make(settings)
    except KafkaException as exc:
        raise ClientSettingsError(refused_setting(kafka, role, exc.args[0].str())) from None
