"""Drift events out to their Kafka topic, keyed by model name."""

from __future__ import annotations

from collections.abc import Sequence

from stream_monitor.evaluate import DriftEvent
from stream_monitor.kafka.producer import TopicWriter


def produce_drift_events(writer: TopicWriter, topic: str, events: Sequence[DriftEvent]) -> None:
    """Queue drift events, keyed by model name; droppable if Kafka can never accept one."""
    for event in events:
        writer.produce(topic, event.model.encode(), event.to_json(), droppable=True)
