"""``stream-monitor bench --broker``: end to end through the embedded broker, in this process.

The benchmark's messages, row events and then micro-batches, are produced to
a topic of the embedded broker; then :class:`~stream_monitor.kafka.service.MonitorService`,
the loop of ``stream-monitor run``, reads them as a backlog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from confluent_kafka import Producer

from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.tools.broker_runs import SESSION_TIMEOUT_MS, send_messages
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.measuring import process_memory, rate_row, reset_peak_rss
from stream_monitor.tools.workload import Workload, bench_config


def measure_backlogs(
    workload: Workload, rows: Sequence[RawMessage], micro: Sequence[RawMessage]
) -> dict[str, Any]:
    """:func:`measure_broker` of the row messages (``broker``) and of the micro-batches
    (``broker_micro_batch``, with its rate as a ratio to the row events' rate)."""
    results = {"broker": measure_broker(workload, rows)}
    micro_run = measure_broker(workload, micro)
    row_rate = results["broker"]["monitor"]["events_per_s"]
    micro_run["monitor"]["ratio_to_row_events"] = (
        micro_run["monitor"]["events_per_s"] / row_rate if row_rate else 0.0
    )
    results["broker_micro_batch"] = micro_run
    return results


def measure_broker(workload: Workload, messages: Sequence[RawMessage]) -> dict[str, Any]:
    """End to end through the embedded broker: produce ``messages`` (row events or
    micro-batches, ``workload.events`` events in all), then consume and count them.

    The produce rate is measured on its own. The monitor (the
    :class:`~stream_monitor.kafka.service.MonitorService` loop of ``stream-monitor
    run``: consume, decode, windows, periodic evaluation and commits) is timed
    from its first counted event to its last, after joining the consumer group,
    which is reported apart as ``startup_s``. Everything is produced before the
    monitor starts, so this is a backlog read far faster than its event time:
    the row also gives the window ends judged on the way, those given up
    (``windows_skipped``, 0 unless judging fell behind), and the process's RSS
    before the monitor started and its peak while it ran (the peak is reset
    first where Linux allows it; the process also holds the produced messages).
    """
    topic = "bench-inference-events"
    with EmbeddedBroker() as broker:
        broker.create_topics([topic, "bench-drift-events"])
        largest = max((len(m.value or b"") for m in messages), default=0)
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "linger.ms": 20,
                "message.max.bytes": max(1_000_000, largest + 4096),
            }
        )
        started = time.perf_counter()
        send_messages(producer, topic, messages)
        produce_s = time.perf_counter() - started
        base = bench_config(workload)
        config = replace(
            base,
            kafka=replace(
                base.kafka,
                bootstrap_servers=broker.bootstrap_servers,
                group_id="stream-monitor-bench",
                topics=replace(base.kafka.topics, events=topic, drift_events="bench-drift-events"),
                assignment_strategy="range",
                session_timeout_ms=SESSION_TIMEOUT_MS,
                poll_timeout_s=0.1,
            ),
        )
        engine = Engine(config)
        service = MonitorService(config, engine)
        reset_peak_rss()
        rss_before = process_memory()["rss_bytes"]
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        expected = workload.events
        started = time.perf_counter()
        first = last = started
        thread.start()
        deadline = started + max(120.0, expected / 1000.0)
        counted = 0
        while counted < expected and time.perf_counter() < deadline:
            time.sleep(0.002)
            now = time.perf_counter()
            seen = sum(list(engine.events_total.values())) + sum(
                list(engine.invalid_total.values())
            )
            if seen and not counted:
                first = now
            if seen > counted:
                counted, last = seen, now
        stop.set()
        thread.join(30)
    counted_events = sum(engine.events_total.values())
    return {
        "produce": rate_row(len(messages), produce_s),
        "monitor": rate_row(
            counted_events,
            max(last - first, 1e-9),
            complete=counted_events >= expected,
            startup_s=first - started,
            event_time_s=workload.events / workload.rate_per_s,
            judged_window_ends=engine.judge.judged_panes,
            windows_skipped=sum(state.skipped_total for state in engine.states.values()),
            rss_before_bytes=rss_before,
            peak_rss_bytes=process_memory()["peak_rss_bytes"],
        ),
    }
