"""Shared fixtures: the embedded broker (one per session) and small factories."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from stream_monitor.config import MonitorConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.tools.embedded import EmbeddedBroker

#: Consumer-group settings that suit the embedded broker (eager assignor, short timeouts).
TEST_KAFKA = {
    "assignment_strategy": "range",
    "session_timeout_ms": 6000,
    "max_poll_interval_ms": 10000,
    "commit_interval_s": 1,
    "poll_timeout_s": 0.2,
    "statistics_interval_ms": 1000,
    "startup_timeout_s": 10,
}

#: Windows of the tests: 60 s panes, short windows, idle partitions let go after 3 s.
TEST_WINDOWS = {
    "pane_s": 60,
    "sizes": ["5m", "15m"],
    "allowed_lateness_s": 120,
    "idle_timeout_s": 3,
}

FRAUD_MODEL = {
    "name": "fraud-detector",
    "task": "binary",
    "features": {
        "amount": "numeric",
        "account_age_days": "numeric",
        "merchant_category": "categorical",
        "country": "categorical",
    },
    "reference": {"warmup_events": 1000},
}

PRICE_MODEL = {
    "name": "price-estimator",
    "task": "regression",
    "features": {"area_m2": "numeric", "rooms": "numeric", "district": "categorical"},
    "reference": {"warmup_events": 1000},
}


def make_config(**overrides: Any) -> MonitorConfig:
    """A config for the synthetic models; keyword arguments replace top-level sections."""
    data: dict[str, Any] = {
        "models": [FRAUD_MODEL, PRICE_MODEL],
        "windows": TEST_WINDOWS,
        "drift": {"min_window_events": 200},
    }
    data.update(overrides)
    return config_from_dict(data)


def as_messages(events: list[dict[str, Any]]) -> list[RawMessage]:
    """Events as raw messages (one event per message)."""
    return [RawMessage(orjson.dumps(event), 1) for event in events]


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker, started once for the test session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def topic_names(broker: EmbeddedBroker) -> Callable[..., str]:
    """Creates a fresh topic and returns its name."""

    def create(prefix: str = "t", partitions: int = 1) -> str:
        return fresh_topic(broker, prefix, partitions)

    return create


def fresh_topic(broker: EmbeddedBroker, prefix: str = "t", partitions: int = 1) -> str:
    """Create a topic with a unique name; its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    broker.create_topics([name], partitions=partitions)
    return name


def committed_offsets(bootstrap: str, group_id: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets ``group_id`` committed on each partition of ``topic`` (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def start_service(
    config: MonitorConfig, engine: Engine
) -> tuple[MonitorService, threading.Event, threading.Thread]:
    """A :class:`MonitorService` running in a thread once the broker answered; set the
    event to stop it (it checkpoints as it stops) and join the thread."""
    service = MonitorService(config, engine)
    stop = threading.Event()
    service.wait_for_broker()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    return service, stop, thread
