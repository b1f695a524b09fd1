"""A broker outage: the monitor stays up, /metrics answers and shows it, consumption resumes."""

from __future__ import annotations

import logging
import time
from collections import Counter

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.kafka.client_log import SUMMARY_INTERVAL_S, kind_of
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import (
    FRAUD_MODEL,
    kafka_section,
    produce,
    samples,
    scrape,
    serve_metrics,
    start_service,
    wait_for,
)

OUTAGE_S = 20.0
TOPICS = ("events", "drift")


def up_value(port: int) -> float | None:
    """``stream_monitor_up`` as ``/metrics`` serves it now."""
    return samples(scrape(port), "stream_monitor_up").get(("stream_monitor_up", ()))


class KindCounter(logging.Handler):
    """Counts librdkafka's logged lines by kind (facility and broker)."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        facility, _, rest = record.getMessage().partition(" [")
        self.kinds[kind_of(facility, rest.partition("] ")[2])] += 1


def test_monitor_rides_out_a_broker_outage() -> None:
    broker = EmbeddedBroker().start()
    client_lines = KindCounter()
    logging.getLogger("stream_monitor.librdkafka").addHandler(client_lines)
    try:
        broker.create_topics(TOPICS)
        config = config_from_dict(
            {
                "kafka": kafka_section(broker, "outage", events="events", drift_events="drift"),
                "models": [FRAUD_MODEL],
            }
        )
        service, stop, thread = start_service(config, Engine(config))
        server = serve_metrics(service)
        traffic = SyntheticTraffic(seed=3)
        produce(broker.bootstrap_servers, "events", traffic.fraud(500, time.time()))

        def consumed() -> int:
            return service.engine.events_total[("fraud-detector", "v1")]

        wait_for(lambda: consumed() >= 500, 30, "the first 500 events")
        assert consumed() == 500
        assert up_value(server.port) == 1.0

        broker.stop()
        outage_end = time.monotonic() + OUTAGE_S
        saw_down = False
        while time.monotonic() < outage_end:
            saw_down = up_value(server.port) == 0.0 or saw_down  # answers throughout
            assert thread.is_alive()
            time.sleep(1.0)
        assert saw_down, "stream_monitor_up never showed the outage"
        most = 2 + OUTAGE_S / SUMMARY_INTERVAL_S  # the first line, one per interval, the rest
        assert client_lines.kinds and max(client_lines.kinds.values()) <= most, client_lines.kinds

        broker.start()
        broker.create_topics(TOPICS)  # the in-memory broker lost them
        produce(broker.bootstrap_servers, "events", traffic.fraud(300, time.time()))
        wait_for(lambda: consumed() >= 800, 60, "consumption to resume")
        assert consumed() == 800
        wait_for(lambda: up_value(server.port) == 1.0, 15, "stream_monitor_up 1 again")
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
        server.stop()
    finally:
        logging.getLogger("stream_monitor.librdkafka").removeHandler(client_lines)
        broker.close()
