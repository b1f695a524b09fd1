"""Through the embedded broker: events in, /metrics and drift events out, replay agrees."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from kafka import KafkaProducer

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.conftest import (
    MonitorProcess,
    broker_config,
    committed_offsets,
    consume_all,
    frozen_registry,
    registry_samples,
    replay_metrics,
    samples,
    scrape,
    serve_metrics,
    start_service,
    wait_for,
    write_config,
)
from tests.unit.test_engine import stream

BAD_MESSAGES = [
    b"{not json",
    b"",
    b'{"model": "ghost", "features": {}, "prediction": 1}',
    b"[1, 2]",
]


def config_data(broker: EmbeddedBroker, events_topic: str, drift_topic: str, dlq: str) -> dict:
    """Both synthetic models, their events from ``events_topic``; /metrics on any free port."""
    topics = {"events": events_topic, "drift_events": drift_topic, "dead_letter": dlq}
    return broker_config(broker, f"monitor-{events_topic}", topics)


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
    service, stop, thread = start_service(config, Engine(config))
    server = serve_metrics(service)
    try:

        def read_all() -> bool:
            engine = service.engine
            seen = sum(engine.events_total.values()) + sum(engine.invalid_total.values())
            return seen >= len(events) + len(BAD_MESSAGES)

        wait_for(read_all, 60, "every message to be read")
        time.sleep(config.evaluation_interval_s + 1.5)  # one more evaluation and commit
        # Drift is judged on closed panes; the empty third partition holds them open
        # until it counts as idle (windows.idle_timeout_s after its assignment).
        wait_for(
            lambda: registry_samples(frozen_registry(service), "stream_monitor_drift_status"),
            config.windows.idle_timeout_s + 15,
            "a drift status",
        )
        assert scrape(server.port, "/readyz") == "ready\n"
        metrics = frozen_registry(service)  # read while running: stopping hands state back
    finally:
        stop.set()
        thread.join(timeout=30)
        server.stop()
    assert not thread.is_alive()

    fraud = {"model": "fraud-detector", "version": "v1"}
    assert metrics.get_sample_value("stream_monitor_events_total", fraud) == 24 * 250
    invalid = {
        dict(labels)["reason"]: value
        for (_, labels), value in registry_samples(
            metrics, "stream_monitor_invalid_events_total"
        ).items()
        if value  # every reason is exported from 0
    }
    assert invalid == {"malformed_json": 1, "empty": 1, "unknown_model": 1, "not_an_object": 2}

    def csi_of(model: str, feature: str, window: str) -> float:
        labels = {"feature": feature, "model": model, "version": "v1", "window": window}
        value = metrics.get_sample_value("stream_monitor_csi", labels)
        assert value is not None, labels
        return value

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
    status = registry_samples(metrics, "stream_monitor_drift_status")
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
    config_file = write_config(tmp_path / "monitor.yaml", data)
    names = (
        "stream_monitor_window_events",
        "stream_monitor_psi",
        "stream_monitor_csi",
        "stream_monitor_feature_null_ratio",
        "stream_monitor_new_category_ratio",
    )
    replayed = samples(replay_metrics(config_file, events, tmp_path), *names)
    assert len(replayed) > 20
    assert replayed == registry_samples(metrics, *names)


def test_run_command_serves_and_stops_cleanly_on_sigterm(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path
) -> None:
    """``metrics.port: 0`` binds any free port; the log names it, and it serves /metrics."""
    events_topic = topic_names("events")
    data = config_data(broker, events_topic, topic_names("drift"), topic_names("dlq"))
    assert data["metrics"] == {"host": "127.0.0.1", "port": 0}
    data["kafka"]["client"] = {"client.id": "monitor", "sasl.password": "${TEST_KAFKA_SECRET}"}
    config_file = write_config(tmp_path / "monitor.yaml", data)
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
        assert process.process is not None
        process.process.send_signal(signal.SIGUSR1)  # where is it? (it goes on)
        wait_for(lambda: "most recent call first" in process.log_text(), 10, "a stack dump")
        assert "stream_monitor_up 1.0" in scrape(port)
    finally:
        status = process.stop()
    log = process.log_text()
    assert status == 0, log
    assert "stopped cleanly" in log
    assert "in run" in log.split("most recent call first", 1)[1]  # the stack names its frames
    assert "sasl.password" in log and secret not in log  # settings logged, secret redacted
