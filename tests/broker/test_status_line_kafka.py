"""The status line of a real ``stream-monitor run``: it appears every interval, its numbers
are those of ``/metrics``, and each line's counts are those of the snapshot it was formed from."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.kafka import service as service_module
from stream_monitor.sinks.prometheus import build_registry
from stream_monitor.sinks.status_line import StatusLine
from stream_monitor.snapshot import Snapshot
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.verdict_progress import VersionProgress
from tests.conftest import (
    MonitorProcess,
    broker_config,
    produce,
    registry_samples,
    samples,
    scrape,
    start_service,
    wait_for,
    write_config,
)
from tests.unit.sinks.test_status_line import parsed
from tests.unit.test_engine import stream

INTERVAL_S = 1.0
BAD_MESSAGES = [b"{not json", b"[1, 2]", b'{"model": "ghost", "prediction": 1}']
#: Invalid events in them: the micro-batch ``[1, 2]`` holds two events that are not objects.
INVALID = 4
STATUS = re.compile(r"^(\S+)Z INFO stream_monitor\.sinks\.status_line: (status: .*)$", re.M)
COUNTERS = (
    "stream_monitor_events_total",
    "stream_monitor_invalid_events_total",
    "stream_monitor_consumer_lag",
)


def status_lines(log: str) -> list[tuple[float, str]]:
    """The status lines of a log, with their time stamps (seconds)."""
    return [
        (datetime.fromisoformat(stamp + "+00:00").timestamp(), line)
        for stamp, line in STATUS.findall(log)
    ]


def totals(series: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """Each counter of :data:`COUNTERS` summed over its labels."""
    return {name: sum(v for (n, _), v in series.items() if n == name) for name in COUNTERS}


def line_totals(line: str) -> dict[str, float]:
    found = parsed(line)
    return {
        "stream_monitor_events_total": float(found["events"]),  # type: ignore[arg-type]
        "stream_monitor_invalid_events_total": float(found["invalid"]),  # type: ignore[arg-type]
        "stream_monitor_consumer_lag": float(found["lag"]),  # type: ignore[arg-type]
    }


def test_the_status_line_of_run_appears_every_interval_and_matches_metrics(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path
) -> None:
    events_topic = topic_names("events", partitions=2)
    data = broker_config(
        broker,
        f"status-{events_topic}",
        {"events": events_topic, "drift_events": topic_names("drift")},
        metrics={"host": "127.0.0.1", "port": 0, "status_interval_s": INTERVAL_S},
    )
    process = MonitorProcess(write_config(tmp_path / "monitor.yaml", data), tmp_path).start()
    events = stream(minutes=12, drift_from=99, per_minute=100)
    try:
        port = wait_for(lambda: process.port, 30, "the /metrics port in the log")
        wait_for(lambda: "assigned" in process.log_text(), 30, "the partitions to be assigned")

        # Within the interval: a new line comes at most one interval (plus one evaluation
        # interval, when snapshots are taken, and some scheduling) after any moment.
        for _ in range(3):
            before = len(status_lines(process.log_text()))
            wait_for(
                lambda before=before: len(status_lines(process.log_text())) > before,
                INTERVAL_S + 1.0 + 1.5,
                "the next status line",
            )
        quiet = status_lines(process.log_text())[-1][1]
        assert re.match(r"status: no events in the last \d s \(0 events in total\)", quiet)

        produce(broker.bootstrap_servers, events_topic, events, key="model")
        produce(broker.bootstrap_servers, events_topic, BAD_MESSAGES, partition=0)

        def read_all() -> bool:
            seen = totals(process.series(*COUNTERS))
            counted = seen["stream_monitor_events_total"]
            invalid = seen["stream_monitor_invalid_events_total"]
            return counted == len(events) and invalid == INVALID

        wait_for(read_all, 60, "every message to be counted")
        # Nothing is produced any more: once the lag reads 0, the counters stay put, so a
        # scrape before a status line and one after it bracket the snapshot it was formed from.
        wait_for(
            lambda: (
                process.series("stream_monitor_consumer_lag")
                and not any(process.series("stream_monitor_consumer_lag").values())
            ),
            30,
            "the consumer lag to read 0",
        )
        for _ in range(5):
            first = totals(samples(scrape(port), *COUNTERS))
            before = len(status_lines(process.log_text()))
            wait_for(
                lambda before=before: len(status_lines(process.log_text())) > before,
                INTERVAL_S + 2.5,
                "a status line after the scrape",
            )
            line = status_lines(process.log_text())[-1][1]
            second = totals(samples(scrape(port), *COUNTERS))
            if first == second:
                break
        else:
            pytest.fail("the counters never stood still for one status interval")
        assert line_totals(line) == first == second
        assert first["stream_monitor_events_total"] == len(events)
        assert first["stream_monitor_invalid_events_total"] == INVALID
        assert "no events in the last" in line
        assert "fraud-detector v1 judged" in line and "price-estimator v1 judged" in line
    finally:
        status = process.stop()
    log = process.log_text()
    assert status == 0, log
    lines = status_lines(log)
    flowing = [line for _, line in lines if " events/s (" in line]
    assert flowing, "no status line while events flowed"
    assert any("warming up" in line for _, line in lines) or any(
        "judged" in line for line in flowing
    )
    stamps = [stamp for stamp, _ in lines]
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert min(gaps) >= INTERVAL_S - 0.05, gaps  # never more often than the interval
    assert sorted(gaps)[len(gaps) // 2] <= INTERVAL_S + 1.0 + 0.5, gaps  # steady


class RecordingStatusLine(StatusLine):
    """A status line that keeps each snapshot it was formed from, with the line."""

    formed: list[tuple[Snapshot, str, float]] = []

    def report(self, snapshot: Snapshot, progress: Iterable[VersionProgress], now_s: float) -> str:
        text = super().report(snapshot, progress, now_s)
        self.formed.append((snapshot, text, now_s))
        return text


def test_each_line_counts_what_its_snapshot_exports_while_events_flow(
    broker: EmbeddedBroker,
    topic_names: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a backlog read in small batches the lag is not 0: every line, whatever moment it
    was formed at, shows the events, invalid events and lag its snapshot exports."""
    events_topic = topic_names("events", partitions=2)
    data = broker_config(
        broker,
        f"status-flow-{events_topic}",
        {"events": events_topic, "drift_events": topic_names("drift")},
        metrics={"host": "127.0.0.1", "port": 0, "status_interval_s": 0.3},
        evaluation_interval_s=0.1,
    )
    data["kafka"]["batch_size"] = 50
    config = config_from_dict(data)
    events = stream(minutes=20, drift_from=99, per_minute=150)
    produce(broker.bootstrap_servers, events_topic, events, key="model")
    produce(broker.bootstrap_servers, events_topic, BAD_MESSAGES, partition=1)
    monkeypatch.setattr(service_module, "StatusLine", RecordingStatusLine)
    RecordingStatusLine.formed = []
    process = service_module.MonitorService.process

    def slowly(self: service_module.MonitorService, messages: list[Any]) -> None:
        """Each batch of 50 takes at least 50 ms: the backlog lasts past several lag reports
        (statistics every second), however fast the machine reads it."""
        process(self, messages)
        if messages:
            time.sleep(0.05)

    monkeypatch.setattr(service_module.MonitorService, "process", slowly)
    service, stop, thread = start_service(config, Engine(config))
    try:
        wait_for(
            lambda: sum(service.snapshot().events_total.values()) == len(events),
            90,
            "every event to be counted",
        )
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(30)
    formed = list(RecordingStatusLine.formed)
    assert len(formed) >= 3
    lagging = 0
    for snapshot, line, _ in formed:
        exported = totals(registry_samples(build_registry(lambda s=snapshot: s), *COUNTERS))
        if snapshot.consumer_lag:
            assert line_totals(line) == exported, line
            lagging += exported["stream_monitor_consumer_lag"] > 0
        else:
            assert "lag not reported yet" in line
    assert lagging, "no line was formed while the consumer lagged"
    # events/s: the increase of stream_monitor_events_total between two lines' snapshots
    rated = 0
    for (earlier, _, then_s), (later, line, now_s) in itertools.pairwise(formed):
        rate = re.match(r"status: ([\d.,]+) events/s", line)
        if rate is None:
            continue
        increase = sum(later.events_total.values()) - sum(earlier.events_total.values())
        expected = increase / (now_s - then_s)
        shown = float(rate.group(1).replace(",", ""))
        assert abs(shown - expected) <= max(0.5, 0.05 * expected), (line, expected)
        rated += 1
    assert rated, "no line said events/s"
