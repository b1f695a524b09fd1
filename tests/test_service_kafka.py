"""Through the embedded broker: events in, /metrics and drift events out, replay agrees."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka import Consumer
from kafka import KafkaProducer

from stream_monitor.cli import main
from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.sinks.prometheus import MetricsServer, build_registry
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.conftest import (
    FRAUD_MODEL,
    PRICE_MODEL,
    TEST_KAFKA,
    TEST_WINDOWS,
    MonitorProcess,
    committed_offsets,
    samples,
    scrape,
    wait_for,
)
from tests.test_engine import stream

pytestmark = pytest.mark.broker

BAD_MESSAGES = [
    b"{not json",
    b"",
    b'{"model": "ghost", "features": {}, "prediction": 1}',
    b"[1, 2]",
]


def config_data(broker: EmbeddedBroker, events_topic: str, drift_topic: str, dlq: str) -> dict:
    return {
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "group_id": f"monitor-{events_topic}",
            "topics": {"events": events_topic, "drift_events": drift_topic, "dead_letter": dlq},
            **TEST_KAFKA,
        },
        "metrics": {"host": "127.0.0.1", "port": 0},
        "windows": TEST_WINDOWS,
        "drift": {"min_window_events": 200},
        "models": [FRAUD_MODEL, PRICE_MODEL],
    }


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0, linger_s: float = 0.0
) -> list:
    """Up to ``expected`` records of ``topic`` from the start (then ``linger_s`` more to look)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    messages, deadline = [], time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(500, 0.5) if m.error() is None]
    if linger_s:
        messages += [m for m in consumer.consume(500, linger_s) if m.error() is None]
    consumer.close()
    return messages


def test_kafka_to_metrics_and_drift_events(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path
) -> None:
    events_topic = topic_names("events", partitions=3)
    drift_topic, dlq = topic_names("drift"), topic_names("dlq")
    events = stream(minutes=24, drift_from=12, per_minute=250)

    # Produce with kafka-python, a client independent of librdkafka; key = model keeps
    # each model's events in order in one partition.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20)
    for event in events:
        producer.send(events_topic, key=str(event["model"]).encode(), value=orjson.dumps(event))
    for value in BAD_MESSAGES:
        producer.send(events_topic, key=b"bad", value=value)
    producer.flush()
    producer.close()

    data = config_data(broker, events_topic, drift_topic, dlq)
    config = config_from_dict(data)
    service = MonitorService(config, Engine(config))
    server = MetricsServer(build_registry(service.snapshot), "127.0.0.1", 0, service.ready).start()
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    service.wait_for_broker()
    thread.start()
    try:
        deadline = time.monotonic() + 60
        expected_total = len(events) + len(BAD_MESSAGES)
        while time.monotonic() < deadline:
            engine = service.engine
            seen = sum(engine.events_total.values()) + sum(engine.invalid_total.values())
            if seen >= expected_total:
                break
            time.sleep(0.2)
        time.sleep(config.evaluation_interval_s + 1.5)  # one more evaluation and commit
        # Drift is judged on closed panes; the empty third partition holds them open
        # until it counts as idle (windows.idle_timeout_s after its assignment).
        deadline = time.monotonic() + config.windows.idle_timeout_s + 15
        while time.monotonic() < deadline:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{server.port}/metrics", timeout=5
            ) as response:
                scraped = response.read().decode()
            if samples(scraped, "stream_monitor_drift_status"):
                break
            time.sleep(0.5)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/readyz", timeout=5
        ) as response:
            assert response.status == 200
    finally:
        stop.set()
        thread.join(timeout=30)
        server.stop()
    assert not thread.is_alive()

    totals = samples(scraped, "stream_monitor_events_total", "stream_monitor_invalid_events_total")
    assert (
        totals[("stream_monitor_events_total", (("model", "fraud-detector"), ("version", "v1")))]
        == 24 * 250
    )
    invalid = {
        dict(k[1])["reason"]: v
        for k, v in totals.items()
        if k[0].startswith("stream_monitor_invalid") and v  # every reason is exported from 0
    }
    assert invalid == {"malformed_json": 1, "empty": 1, "unknown_model": 1, "not_an_object": 2}

    csi = samples(scraped, "stream_monitor_csi")

    def csi_of(model: str, feature: str, window: str) -> float:
        key = (("feature", feature), ("model", model), ("version", "v1"), ("window", window))
        return csi[("stream_monitor_csi", key)]

    assert csi_of("fraud-detector", "amount", "5m") > 0.25
    assert csi_of("fraud-detector", "merchant_category", "5m") < 0.05
    assert csi_of("price-estimator", "area_m2", "15m") > 0.25
    assert csi_of("price-estimator", "district", "15m") < 0.05

    drift = [
        orjson.loads(m.value()) for m in consume_all(broker.bootstrap_servers, drift_topic, 1, 15)
    ]
    assert drift, "no drift event on the output topic"
    alerted = {(e["model"], e["metric"], e["feature"]) for e in drift if e["severity"] == "alert"}
    assert ("fraud-detector", "csi", "amount") in alerted
    assert ("price-estimator", "csi", "area_m2") in alerted
    assert not [e for e in drift if e["feature"] in ("merchant_category", "district")]
    assert len({e["id"] for e in drift}) == len(drift)
    status = samples(scraped, "stream_monitor_drift_status")
    assert max(status.values()) == 2

    dead = consume_all(broker.bootstrap_servers, dlq, len(BAD_MESSAGES) - 1, 15)
    reasons = {dict(m.headers())["stream-monitor.reason"].decode(): m.value() for m in dead}
    assert reasons["malformed_json"] == b"{not json"
    assert reasons["unknown_model"] == BAD_MESSAGES[2]

    # Offsets were committed for everything processed.
    group_id = data["kafka"]["group_id"]
    committed = committed_offsets(broker.bootstrap_servers, group_id, events_topic, 3)
    assert sum(o for o in committed.values() if o >= 0) == len(events) + len(BAD_MESSAGES)

    # Replay over the same events gives the same windows, PSI and CSI.
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    config_file = tmp_path / "monitor.yaml"
    config_file.write_text(yaml.safe_dump(data))
    metrics_out = tmp_path / "replay.prom"
    assert (
        main(
            [
                "replay",
                "--config",
                str(config_file),
                "--input",
                str(lines),
                "--metrics-out",
                str(metrics_out),
            ]
        )
        == 0
    )
    names = (
        "stream_monitor_window_events",
        "stream_monitor_psi",
        "stream_monitor_csi",
        "stream_monitor_feature_null_ratio",
        "stream_monitor_new_category_ratio",
    )
    replayed = samples(metrics_out.read_text(), *names)
    assert len(replayed) > 20
    assert replayed == samples(scraped, *names)


def test_run_command_serves_and_stops_cleanly_on_sigterm(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path
) -> None:
    """``metrics.port: 0`` binds any free port; the log names it, and it serves /metrics."""
    events_topic = topic_names("events")
    data = config_data(broker, events_topic, topic_names("drift"), topic_names("dlq"))
    assert data["metrics"] == {"host": "127.0.0.1", "port": 0}
    data["kafka"]["client"] = {"client.id": "monitor", "sasl.password": "${TEST_KAFKA_SECRET}"}
    config_file = tmp_path / "monitor.yaml"
    config_file.write_text(yaml.safe_dump(data))
    secret = "hunter2-do-not-log"
    process = MonitorProcess(config_file, tmp_path, env={"TEST_KAFKA_SECRET": secret}).start()
    try:
        port = wait_for(lambda: process.port, 30, "the log line naming the /metrics port")
        assert port != 0

        def ready() -> bool:
            try:
                return scrape(port, "/readyz") == "ready\n"
            except OSError:
                return False

        wait_for(ready, 30, "the service to be ready")
        assert "stream_monitor_up 1.0" in scrape(port)
    finally:
        status = process.stop()
    log = process.log_text()
    assert status == 0, log
    assert "stopped cleanly" in log
    assert "sasl.password" in log and secret not in log  # settings logged, secret redacted
