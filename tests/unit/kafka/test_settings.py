"""The consumer's librdkafka settings: ours by default, the user's passthrough wins."""

from __future__ import annotations

from confluent_kafka import Consumer

from stream_monitor.config import KafkaConfig
from stream_monitor.kafka.settings import FETCH_QUEUE_BACKOFF_MS, consumer_settings


def built(settings: dict[str, object]) -> None:
    """librdkafka takes ``settings`` (it raises on a setting it does not know or refuses)."""
    Consumer({key: value for key, value in settings.items() if key != "logger"}).close()


def test_a_full_fetch_queue_is_refetched_within_50_ms_unless_the_user_says_otherwise() -> None:
    ours = consumer_settings(KafkaConfig(group_id="g"))
    assert ours["fetch.queue.backoff.ms"] == FETCH_QUEUE_BACKOFF_MS == 50
    built(ours)
    theirs = consumer_settings(KafkaConfig(group_id="g", consumer={"fetch.queue.backoff.ms": 500}))
    assert theirs["fetch.queue.backoff.ms"] == 500
    built(theirs)
