"""librdkafka client settings from the config, and what the client's statistics say."""

from __future__ import annotations

import logging
import re
from typing import Any

from stream_monitor.config import KafkaConfig

#: How long the consumer waits to fetch again once its fetch queue is full (librdkafka's
#: default is 1,000 ms).
FETCH_QUEUE_BACKOFF_MS = 50
#: librdkafka's own log lines go through Python logging under this name.
client_log = logging.getLogger("stream_monitor.librdkafka")


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
        # librdkafka postpones fetching for 1 s once its queue is full; a backlog of large
        # messages fills it at once, and the loop would then drain it and wait.
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
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


#: Short-lived admin clients log warnings and errors only, through Python logging (their
#: notices, such as the queue purged when they close, say nothing to a person).
QUIET_ADMIN: dict[str, Any] = {"log_level": 4, "logger": client_log}


def admin_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """Admin client settings: the bootstrap servers and the user's client settings."""
    return {"bootstrap.servers": kafka.bootstrap_servers, **QUIET_ADMIN, **kafka.client}


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


_QUOTED = re.compile(r"[`\"]([\w.-]+)[`\"]")
_FAILED_TO_CREATE = re.compile(r"^Failed to create \w+: ")


def refused_setting(kafka: KafkaConfig, role: str, reason: str) -> str:
    """librdkafka's refusal of a ``role`` client's settings ("consumer", "producer"), as
    one line naming the config key it is about.

    >>> kafka = KafkaConfig(client={"fetch.max.bytes": 1000})
    >>> refused_setting(kafka, "consumer",
    ...     "Failed to create consumer: `fetch.max.bytes` must be >= `message.max.bytes`")
    'kafka.client.fetch.max.bytes: `fetch.max.bytes` must be >= `message.max.bytes`'
    """
    reason = _FAILED_TO_CREATE.sub("", reason)
    sections = {"client": kafka.client, role: getattr(kafka, role)}
    for key in _QUOTED.findall(reason):
        for section, values in sections.items():
            if key in values:
                return f"kafka.{section}.{key}: {reason}"
    return f"kafka: librdkafka refuses the {role} settings: {reason}"
