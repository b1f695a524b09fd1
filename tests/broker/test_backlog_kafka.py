"""``run`` started on a full backlog judges every window, exactly as ``replay`` does.

Forty minutes of event time wait on four partitions before the monitor starts;
it reads them far faster than their event time. Its drift events must be those
of ``replay`` over the same events, ids included, with drifts both early and
late in the backlog; and again when the process is killed with SIGKILL once it
has read 60% of the backlog, and restarted after the rest was produced. Concept
drift is left out: its detectors run per input partition, so it depends on how
the events are partitioned.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.evaluate import iso_utc
from stream_monitor.kafka.changelog import read_changelog, restore
from stream_monitor.kafka.settings import consumer_settings, producer_settings
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.broker.test_service_kafka import config_data
from tests.conftest import (
    FRAUD_MODEL,
    PRICE_MODEL,
    TEST_WINDOWS,
    MonitorProcess,
    broker_config,
    drift_events_by_id,
    produce,
    settled,
    start_service,
    wait_for,
    write_baselines,
    write_config,
    write_jsonl,
)
from tests.unit.state.test_backlog import backlog
from tests.unit.test_engine import START

PARTITIONS = 4
MINUTES = 40
PER_MINUTE = 600
IDLE_TIMEOUT_S = 4
LATENESS_S = 120
PANE_S = 60


def monitor_config(tmp_path: Path, broker: EmbeddedBroker, topics: dict[str, str]) -> Path:
    """A config with a baseline file per model, built from undrifted traffic of another seed."""
    traffic = SyntheticTraffic(seed=99)
    reference = write_jsonl(
        tmp_path / "reference.jsonl", traffic.fraud(4000, START) + traffic.price(4000, START)
    )
    models = [
        {**model, "reference": {"baseline": str(tmp_path / f"{model['name']}.json")}}
        for model in (FRAUD_MODEL, PRICE_MODEL)
    ]
    data = broker_config(
        broker,
        f"backlog-{topics['events']}",
        {"events": topics["events"], "drift_events": topics["drift"]},
        windows={
            **TEST_WINDOWS,
            "pane_s": PANE_S,
            "allowed_lateness_s": LATENESS_S,
            "idle_timeout_s": IDLE_TIMEOUT_S,
        },
        models=models,
    )
    config_file = write_config(tmp_path / "backlog.yaml", data)
    write_baselines(config_file, reference)
    return config_file


def replayed(config_file: Path, events: list[dict[str, Any]], tmp_path: Path) -> dict[str, dict]:
    """Drift events by id from ``stream-monitor replay`` over ``events`` in order."""
    lines = write_jsonl(tmp_path / "events.jsonl", events)
    out = subprocess.run(
        [sys.executable, "-m", "stream_monitor", "replay", "--config", str(config_file),
         "--input", str(lines)],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    found = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    return {event["id"]: event for event in found}


def judged_by_both(events: dict[str, dict]) -> dict[str, dict]:
    """Events of windows the service closes too: all but concept drift and the last panes.

    With every partition idle a pane closes once the newest event time passed its
    end by the allowed lateness; ``replay`` closes every pane at the end of its input.
    """
    newest = START + (MINUTES - 1) * PANE_S
    last_end = iso_utc(math.floor((newest - LATENESS_S) / PANE_S) * PANE_S)
    return {
        event_id: event
        for event_id, event in events.items()
        if event["metric"] != "concept_drift" and event["window_end"] <= last_end
    }


def compare(expected: dict[str, dict], found: dict[str, dict]) -> None:
    """The same transitions: ids, and every field but the detection time (values to 1e-9)."""
    missing, extra = set(expected) - set(found), set(found) - set(expected)

    def brief(events: dict[str, dict], ids: set[str]) -> list[tuple]:
        keys = ("model", "metric", "feature", "window", "window_end", "severity")
        return sorted(tuple(events[i][k] for k in keys) for i in ids)

    assert not missing and not extra, (brief(expected, missing), brief(found, extra))
    for event_id, event in expected.items():
        other = found[event_id]
        assert math.isclose(other["value"], event["value"], rel_tol=1e-9, abs_tol=1e-12)
        same = ("window_start", "window_events", "threshold", "previous_severity", "reference")
        assert {k: other[k] for k in same} == {k: event[k] for k in same}


@pytest.mark.parametrize("kill", [False, True], ids=["uninterrupted", "kill-9-mid-backlog"])
def test_run_on_a_full_backlog_gives_the_drift_events_of_replay(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path, kill: bool
) -> None:
    topics = {"events": topic_names("events", PARTITIONS), "drift": topic_names("drift")}
    config_file = monitor_config(tmp_path, broker, topics)
    events = backlog(MINUTES, PER_MINUTE, late_from=28)
    first = len(events) * 3 // 5 if kill else len(events)
    produce(broker.bootstrap_servers, topics["events"], events[:first], "event_id")
    expected = judged_by_both(replayed(config_file, events, tmp_path))
    early, late = iso_utc(START + 20 * PANE_S), iso_utc(START + 28 * PANE_S)
    alerts = [e for e in expected.values() if e["severity"] == "alert"]
    assert any(e["window_end"] <= early for e in alerts)
    assert any(e["window_end"] > late for e in alerts)

    replica = MonitorProcess(config_file, tmp_path).start()
    try:
        if kill:  # killed once it read the first 60%; the rest waits for the restart
            wait_for(lambda: replica.consumed() == first, 90, "60% of the backlog to be read")
            replica.kill()
            produce(broker.bootstrap_servers, topics["events"], events[first:], "event_id")
            replica = MonitorProcess(config_file, tmp_path).start()

        def caught_up() -> bool:
            lag = replica.series("stream_monitor_consumer_lag")
            return len(lag) == PARTITIONS and not any(lag.values())

        wait_for(caught_up, 120, "the consumer to catch up")
        time.sleep(IDLE_TIMEOUT_S + 2)  # every partition idle: the last panes close
        found = settled(lambda: drift_events_by_id(broker, topics["drift"]), 60)
        skipped = replica.series("stream_monitor_windows_skipped_total")
    finally:
        assert replica.stop() == 0, replica.log_tail()
    assert skipped and not any(skipped.values())
    compare(expected, judged_by_both(found))


def test_every_partition_checkpoint_carries_the_newest_severities(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    """A partition that stopped receiving still gets the severities judged since.

    Each partition's checkpoint holds the model's severities and how far it was
    judged; a restore takes them from whichever partition comes first. Partition 0
    gets events for 5 minutes and then nothing; once its panes left every window,
    partition 1 drifts, so severities change while partition 0 has nothing new at
    all to checkpoint.
    """
    events_topic = topic_names("events", partitions=2)
    data = config_data(broker, events_topic, topic_names("drift"), topic_names("dlq"))
    data["models"] = [FRAUD_MODEL]
    config = config_from_dict(data)
    traffic = SyntheticTraffic(seed=5)

    def produce_minutes(minutes: range, partitions: tuple[int, ...]) -> None:
        for minute in minutes:
            for partition in partitions:
                events = traffic.fraud(200, START + minute * PANE_S, drifted=minute >= 30)
                produce(broker.bootstrap_servers, events_topic, events, partition=partition)

    produce_minutes(range(5), (0, 1))
    produce_minutes(range(5, 30), (1,))
    service, stop, thread = start_service(config, Engine(config))
    engine = service.engine
    try:
        wait_for(
            lambda: engine.events_total[("fraud-detector", "v1")] == 35 * 200, 60, "every event"
        )
        quiet = engine.store.ledgers[(events_topic, 0)]
        # partition 0 goes idle, the panes close and are judged, partition 0's are let go
        wait_for(lambda: not quiet.panes.get(("fraud-detector", "v1")), 60, "partition 0 let go")
        wait_for(lambda: not quiet.checkpointed.pending, 10, "partition 0 checkpointed")
        assert "alert" not in engine.judge.board.severities().values()
        produce_minutes(range(30, 45), (1,))
        wait_for(lambda: "alert" in engine.judge.board.severities().values(), 60, "an alert")
    finally:
        stop.set()  # the service checkpoints once more as it stops
        thread.join(30)
    assert not thread.is_alive()

    topic = config.kafka.changelog_topic
    reads = read_changelog(
        consumer_settings(config.kafka), producer_settings(config.kafka), topic, [0, 1]
    )
    checkpoints = []
    for partition in (0, 1):
        checkpoint = restore(reads[partition].latest, (events_topic, partition))
        assert checkpoint is not None
        checkpoints.append(checkpoint.meta)
    quiet, busy = checkpoints
    assert "alert" in {row[-1] for row in busy["severities"]}
    assert {tuple(r[:5]): r[5] for r in quiet["severities"]} == {
        tuple(r[:5]): r[5] for r in busy["severities"]
    }
    assert quiet["instance"] == busy["instance"]
