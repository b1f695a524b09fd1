"""Scale-out: ingest and aggregate replicas compute what one process computes.

The same stream (three models, one of them keyed by event id so it spreads over
every partition) goes through one ``--role all`` process and through three
ingest plus two aggregate replicas, each a real process on the embedded broker.
Window statistics, quality metrics and drift events (ids included) must agree;
then again with one replica of each role killed with SIGKILL mid-stream.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stream_monitor.engine import Engine
from stream_monitor.metric_names import QUALITY_METRICS
from stream_monitor.scaleout.service import AggregateService
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.broker.test_restart import STATS
from tests.conftest import (
    FRAUD_MODEL,
    PRICE_MODEL,
    TEST_WINDOWS,
    MonitorProcess,
    Series,
    broker_config,
    drift_events_by_id,
    fresh_topic,
    kafka_section,
    make_config,
    produce,
    settled,
    wait_for,
    write_baselines,
    write_config,
    write_jsonl,
)
from tests.unit.test_engine import START

PARTITIONS = 4
IDLE_TIMEOUT_S = 15
SECOND_FRAUD = {**FRAUD_MODEL, "name": "fraud-detector-eu"}
COMPARED = (
    *STATS,
    "stream_monitor_concept_drift_detections",
    *(f"stream_monitor_{name}" for name in QUALITY_METRICS),
)


def traffic(minutes: int = 24, per_minute: int = 150) -> list[dict[str, Any]]:
    """Three models; the two fraud models drift from minute 12, the price model does not."""
    from stream_monitor.tools.synthetic import SyntheticTraffic

    generator = SyntheticTraffic(seed=11)
    events: list[dict[str, Any]] = []
    for minute in range(minutes):
        ts = START + minute * 60.0
        drifted = minute >= 12
        events += generator.fraud(per_minute, ts, drifted=drifted)
        events += generator.price(per_minute // 2, ts)
        for event in generator.fraud(per_minute // 2, ts, drifted=drifted):
            event["model"] = SECOND_FRAUD["name"]
            events.append(event)
    return events


def monitor_config(
    tmp_path: Path, broker: EmbeddedBroker, topics: dict[str, str], name: str
) -> Path:
    """A config with a baseline file per model (built from the first 8 minutes)."""
    early = [e for e in traffic() if e["timestamp"] < START + 8 * 60]
    models = [
        {**model, "reference": {"baseline": str(tmp_path / f"{model['name']}.baseline.json")}}
        for model in (FRAUD_MODEL, PRICE_MODEL, SECOND_FRAUD)
    ]
    data = broker_config(
        broker,
        f"{name}-{topics['events']}",
        {"events": topics["events"], "drift_events": topics["drift"]},
        windows={**TEST_WINDOWS, "idle_timeout_s": IDLE_TIMEOUT_S},
        drift={"min_window_events": 100},
        quality={"min_labeled_events": 100},
        models=models,
    )
    config_file = write_config(tmp_path / f"{name}.yaml", data)
    write_baselines(config_file, write_jsonl(tmp_path / "reference.jsonl", early))
    return config_file


def consumed(replicas: list[MonitorProcess]) -> float:
    """Valid events counted by ``replicas``."""
    return sum(replica.consumed() for replica in replicas)


def produce_stream(broker: EmbeddedBroker, topic: str, events: list[dict[str, Any]]) -> None:
    """In time order: the first fraud model keyed by event id (every partition), the others
    by model."""

    def key(event: dict[str, Any]) -> object:
        return event["event_id"] if event["model"] == FRAUD_MODEL["name"] else event["model"]

    produce(broker.bootstrap_servers, topic, events, key)


def single_process(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path
) -> tuple[Series, dict[str, dict]]:
    """Statistics and drift events of one ``--role all`` process over the stream."""
    topics = {"events": topic_names("events", PARTITIONS), "drift": topic_names("drift")}
    config_file = monitor_config(tmp_path, broker, topics, "all")
    events = traffic()
    produce_stream(broker, topics["events"], events)
    replica = MonitorProcess(config_file, tmp_path).start()
    try:
        wait_for(lambda: replica.consumed() == len(events), 90, "every event to be counted")
        time.sleep(IDLE_TIMEOUT_S + 2)  # every partition idle: the last panes close
        found = settled(lambda: replica.series(*COMPARED), 30)
    finally:
        assert replica.stop() == 0, replica.log_tail()
    return found, drift_events_by_id(broker, topics["drift"])


def compare(expected: Series, found: Series) -> None:
    """Same series; values equal up to float summation order (relative 1e-9)."""
    assert len(expected) > 100
    assert set(found) == set(expected), set(found) ^ set(expected)
    differ = {
        key: (found[key], value)
        for key, value in expected.items()
        if not (
            math.isclose(found[key], value, rel_tol=1e-9, abs_tol=1e-12)
            or (math.isnan(found[key]) and math.isnan(value))
        )
    }
    assert not differ, f"{len(differ)} series differ, e.g. {list(differ.items())[:3]}"


def compare_events(expected: dict[str, dict], found: dict[str, dict]) -> None:
    """The same drift events: ids, and everything but the detection time."""
    assert expected, "the stream should raise drift events"
    assert {e["model"] for e in expected.values()} == {
        FRAUD_MODEL["name"],
        SECOND_FRAUD["name"],
    }

    def brief(events: dict[str, dict], ids: set[str]) -> list[tuple]:
        fields = ("model", "metric", "feature", "window", "window_end", "previous_severity")
        return sorted(tuple(events[i][f] for f in (*fields, "severity")) for i in ids)

    extra, missing = set(found) - set(expected), set(expected) - set(found)
    assert not extra and not missing, (brief(found, extra), brief(expected, missing))
    for event_id, event in expected.items():
        other = found[event_id]
        for field in ("model", "metric", "feature", "window", "severity", "window_end"):
            assert other[field] == event[field]
        assert other["window_events"] == event["window_events"]
        assert math.isclose(other["value"], event["value"], rel_tol=1e-9, abs_tol=1e-12)


def scaled_out(
    broker: EmbeddedBroker,
    topic_names: Callable[..., str],
    tmp_path: Path,
    kill: bool,
) -> tuple[Series, dict[str, dict]]:
    """Statistics and drift events of 3 ingest + 2 aggregate replicas (optionally killing one
    of each mid-stream and restarting it)."""
    topics = {"events": topic_names("events", PARTITIONS), "drift": topic_names("drift")}
    config_file = monitor_config(tmp_path, broker, topics, "scaled")
    events = traffic()
    ingest = [MonitorProcess(config_file, tmp_path, "ingest").start() for _ in range(3)]
    aggregate = [MonitorProcess(config_file, tmp_path, "aggregate").start() for _ in range(2)]
    replicas = ingest + aggregate
    try:
        if kill:
            half = len(events) // 2
            produce_stream(broker, topics["events"], events[:half])
            wait_for(lambda: consumed(ingest) >= half // 2, 90, "half the first half to be counted")
            ingest[0].kill()
            aggregate[0].kill()
            produce_stream(broker, topics["events"], events[half:])
            time.sleep(1.0)
            ingest[0].start()
            aggregate[0].start()
        else:
            produce_stream(broker, topics["events"], events)

        def every_model_aggregated() -> bool:
            found = {dict(k[1])["model"] for r in aggregate for k in r.series(*STATS)}
            return len(found) == 3

        wait_for(every_model_aggregated, 120, "every model to be aggregated")
        time.sleep(IDLE_TIMEOUT_S + 2)

        def union() -> Series:
            found: Series = {}
            for replica in aggregate:
                found.update(replica.series(*COMPARED))
            return found

        found = settled(union, 60)
        ingested = consumed(ingest)
    finally:
        codes = [replica.stop() for replica in replicas]
    unclean = [r.log_tail() for r, code in zip(replicas, codes, strict=True) if code != 0]
    assert not unclean, unclean
    if not kill:  # a killed replica's counters restart from zero; its events are not lost
        assert ingested == len(events)
    return found, drift_events_by_id(broker, topics["drift"])


@pytest.fixture(scope="module")
def single(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The single-process run every scaled-out run is compared with."""
    names = functools.partial(fresh_topic, broker)
    return single_process(broker, names, tmp_path_factory.mktemp("single"))


@pytest.mark.parametrize("kill", [False, True], ids=["clean", "kill-9-one-of-each-role"])
def test_three_ingest_and_two_aggregate_replicas_equal_one_process(
    broker: EmbeddedBroker,
    topic_names: Callable[..., str],
    tmp_path: Path,
    single: Any,
    kill: bool,
) -> None:
    """Same windows and drift events, also when a replica of each role is killed and restarted."""
    expected, expected_events = single
    found, found_events = scaled_out(broker, topic_names, tmp_path, kill=kill)
    compare(expected, found)
    compare_events(expected_events, found_events)


def test_a_partition_no_replica_reported_is_checked_again_and_not_let_go_idle(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    """Empty at first, then messages arrive that no ingest replica reads: not idle."""
    events_topic = topic_names("events")
    config = make_config(
        kafka=kafka_section(
            broker, f"unread-{events_topic}", events=events_topic, drift_events=topic_names("drift")
        )
    )
    service = AggregateService(config, Engine(config))
    key = (events_topic, 0)
    try:
        service.engine.store.expect([key])
        service.checkpoint()
        assert service.engine.store.ledger(key).caught_up  # nothing there yet
        produce(broker.bootstrap_servers, events_topic, traffic(minutes=1)[:1], "model")
        deadline = time.monotonic() + 15  # the high watermark may lag the log a moment
        while service.engine.store.ledger(key).caught_up and time.monotonic() < deadline:
            service.checkpoint()
            time.sleep(0.2)
        assert not service.engine.store.ledger(key).caught_up
    finally:
        service.connection.close()
