"""Topic administration shared by the service (changelog) and the embedded broker."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(admin_settings: dict[str, Any], topics: list[NewTopic]) -> None:
    """Create ``topics``; those that already exist are left as they are."""
    admin = AdminClient(admin_settings)  # must outlive the futures
    futures = admin.create_topics(topics)
    for future in futures.values():
        try:
            future.result(timeout=10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
