"""A broker outage: the monitor stays up, /metrics answers and shows it, consumption resumes."""

from __future__ import annotations

import threading
import time
import urllib.request

import orjson
import pytest
from confluent_kafka import Producer

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.sinks.prometheus import MetricsServer, build_registry
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, TEST_KAFKA

pytestmark = pytest.mark.broker

OUTAGE_S = 20.0
TOPICS = ("events", "drift")


def produce(bootstrap: str, events: list[dict[str, object]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        producer.produce("events", value=orjson.dumps(event))
    assert producer.flush(15) == 0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def up_value(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("stream_monitor_up "):
            return float(line.split()[1])
    return None


def test_monitor_rides_out_a_broker_outage() -> None:
    broker = EmbeddedBroker().start()
    try:
        broker.create_topics(TOPICS)
        config = config_from_dict(
            {
                "kafka": {
                    "bootstrap_servers": broker.bootstrap_servers,
                    "group_id": "outage",
                    "topics": {"events": "events", "drift_events": "drift"},
                    **TEST_KAFKA,
                },
                "models": [FRAUD_MODEL],
            }
        )
        service = MonitorService(config, Engine(config))
        server = MetricsServer(build_registry(service.snapshot), "127.0.0.1", 0, service.ready)
        server.start()
        stop = threading.Event()
        service.wait_for_broker()
        thread = threading.Thread(target=service.run, args=(stop,))
        thread.start()
        traffic = SyntheticTraffic(seed=3)
        now = time.time()
        produce(broker.bootstrap_servers, traffic.fraud(500, now))

        def consumed() -> int:
            return service.engine.events_total[("fraud-detector", "v1")]

        deadline = time.monotonic() + 30
        while consumed() < 500 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert consumed() == 500
        assert up_value(scrape(server.port)) == 1.0

        broker.stop()
        outage_end = time.monotonic() + OUTAGE_S
        saw_down = False
        while time.monotonic() < outage_end:
            text = scrape(server.port)  # answers throughout
            saw_down = saw_down or up_value(text) == 0.0
            assert thread.is_alive()
            time.sleep(1.0)
        assert saw_down, "stream_monitor_up never showed the outage"

        broker.start()
        broker.create_topics(TOPICS)  # the in-memory broker lost them
        produce(broker.bootstrap_servers, traffic.fraud(300, time.time()))
        deadline = time.monotonic() + 60
        while consumed() < 800 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert consumed() == 800, "consumption did not resume"
        deadline = time.monotonic() + 15
        while up_value(scrape(server.port)) != 1.0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert up_value(scrape(server.port)) == 1.0
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
        server.stop()
    finally:
        broker.close()
