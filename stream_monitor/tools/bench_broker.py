"""``stream-monitor bench --broker``: end to end through the embedded broker, in this process.

The benchmark's messages, row events and then micro-batches, are produced to
a topic of the embedded broker; then :class:`~stream_monitor.kafka.service.MonitorService`,
the loop of ``stream-monitor run``, reads them as a backlog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.tools.broker_runs import SESSION_TIMEOUT_MS, send_messages
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.measuring import process_memory, rate_row, reset_peak_rss, wall_time
from stream_monitor.tools.workload import Workload, batches, bench_config

#: Most end-to-end runs of one kind of message, the fastest kept (each joins a consumer
#: group, a few seconds with the embedded broker). One run varies by a sixth from the next
#: even against an engine pass beside it, so the best of fewer would often be a slow one.
BROKER_REPEATS = 5


class TimedService(MonitorService):
    """The loop of ``stream-monitor run``, noting when the broker assigned its partitions, when
    the first consumed batch arrived and when the processing of each batch ended
    (``time.perf_counter`` seconds); ``done`` is set once ``expected`` events are counted.

    The service itself says when it is done, so no other thread polls the
    engine meanwhile (a watcher waking every few milliseconds takes the GIL from
    the loop it times).
    """

    def __init__(self, config: MonitorConfig, engine: Engine, expected: int) -> None:
        super().__init__(config, engine)
        self.expected = expected
        self.done = threading.Event()
        self.assigned_at: float | None = None
        self.received_at: float | None = None
        self.processed_at: float | None = None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        super()._on_assign(consumer, partitions)
        if self.assigned_at is None:
            self.assigned_at = time.perf_counter()

    def process(self, messages: list[Message]) -> None:
        """:meth:`MonitorService.process`, noting the times if there was any message."""
        if messages and self.received_at is None:
            self.received_at = time.perf_counter()
        super().process(messages)
        if messages:
            self.processed_at = time.perf_counter()
            if _seen(self.engine) >= self.expected:
                self.done.set()


#: One engine pass over engine batches of messages (the bench's
#: :func:`~stream_monitor.tools.bench_engine.run_engine` with the workload's config).
EnginePass = Callable[[Sequence[Sequence[RawMessage]]], object]


def measure_backlogs(
    workload: Workload,
    rows: Sequence[RawMessage],
    micro: Sequence[RawMessage],
    engine_pass: EnginePass,
) -> dict[str, Any]:
    """:func:`best_broker_run` of the row messages (``broker``) and of the micro-batches
    (``broker_micro_batch``), each against ``engine_pass`` over the same messages.

    The micro-batches' monitor is also given as a ratio to the row events'
    (``ratio_to_row_events``).
    """
    row_batches = batches(rows, 1, workload.batch)
    micro_batches = batches(micro, workload.micro_batch, workload.batch)
    runs = {
        "broker": best_broker_run(workload, rows, lambda: engine_pass(row_batches)),
        "broker_micro_batch": best_broker_run(workload, micro, lambda: engine_pass(micro_batches)),
    }
    row_rate = runs["broker"]["monitor"]["events_per_s"]
    micro_monitor = runs["broker_micro_batch"]["monitor"]
    micro_monitor["ratio_to_row_events"] = (
        micro_monitor["events_per_s"] / row_rate if row_rate else 0.0
    )
    return runs


def best_broker_run(
    workload: Workload, messages: Sequence[RawMessage], engine_pass: Callable[[], object]
) -> dict[str, Any]:
    """The fastest complete run of :func:`measure_broker`, of ``workload.repeats`` runs (at
    most :data:`BROKER_REPEATS`), against the fastest of as many calls of ``engine_pass``,
    an engine pass over the same messages.

    Each broker run is followed by one engine pass, so that the two are measured
    alike: as many times, and in the same minutes. This machine's speed drifts
    by a quarter over minutes, so a baseline measured apart from the runs (the
    engine's rows of the report, minutes earlier and best of more passes) would
    measure the drift as much as the monitor. The monitor's row gives the
    engine's rate (``engine_events_per_s``), its ratio to it (``ratio_to_engine``) and
    the ratio of each run to the engine pass after it (``round_ratios_to_engine``).
    """
    runs, engine_times = [], []
    for _ in range(min(workload.repeats, BROKER_REPEATS)):
        runs.append(measure_broker(workload, messages))
        engine_times.append(wall_time(engine_pass))
    best = max(runs, key=lambda run: (run["monitor"]["complete"], run["monitor"]["events_per_s"]))
    monitor = best["monitor"]
    monitor["engine_events_per_s"] = workload.events / min(engine_times)
    monitor["ratio_to_engine"] = monitor["events_per_s"] / monitor["engine_events_per_s"]
    monitor["round_ratios_to_engine"] = [
        run["monitor"]["events_per_s"] * engine_s / workload.events
        for run, engine_s in zip(runs, engine_times, strict=True)
    ]
    return best


def measure_broker(workload: Workload, messages: Sequence[RawMessage]) -> dict[str, Any]:
    """End to end through the embedded broker: produce ``messages`` (row events or
    micro-batches, ``workload.events`` events in all), then consume and count them.

    The produce rate is measured on its own. The monitor (the
    :class:`~stream_monitor.kafka.service.MonitorService` loop of ``stream-monitor
    run``: consume, decode, windows, periodic evaluation and commits) is timed
    from the arrival of its first consumed batch, before it is processed, to the
    end of its processing of the batch that held the last event, so the first
    batch counts in full. Joining the consumer group, up to the assignment of
    the partitions, is reported apart as ``startup_s``, and the wait from the
    assignment to the first batch (the first fetch and ``poll_timeout_s``) as
    ``first_batch_s``. Once the service has stopped, every pane is
    closed and judged (``evaluate(final=True)``), as at the end of the engine's
    own pass, and that time (``close_s``) is added: without it a slow backlog,
    where judging is most of the work, would leave out a share the engine's row
    pays. Everything is produced before the monitor
    starts, so this is a backlog read far faster than its event time:
    the row also gives the window ends judged on the way, those given up
    (``windows_skipped``, 0 unless judging fell behind), and the process's RSS
    before the monitor started and its peak while it ran (the peak is reset
    first where Linux allows it; the process also holds the produced messages).
    """
    topic = "bench-inference-events"
    with EmbeddedBroker() as broker:
        broker.create_topics([topic, "bench-drift-events"])
        largest = max((len(m.value or b"") for m in messages), default=0)
        started = time.perf_counter()
        send_messages(
            broker.bootstrap_servers,
            topic,
            messages,
            **{"message.max.bytes": max(1_000_000, largest + 4096)},
        )
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
        expected = workload.events
        service = TimedService(config, engine, expected)
        reset_peak_rss()
        rss_before = process_memory()["rss_bytes"]
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        started = time.perf_counter()
        thread.start()
        service.done.wait(max(120.0, expected / 1000.0))
        stop.set()
        thread.join(30)
        closed = time.perf_counter()
        engine.evaluate(final=True)
        close_s = time.perf_counter() - closed
    counted_events = sum(engine.events_total.values())
    assigned = service.assigned_at if service.assigned_at is not None else started
    received = service.received_at if service.received_at is not None else assigned
    processed = service.processed_at if service.processed_at is not None else received
    return {
        "produce": rate_row(len(messages), produce_s),
        "monitor": rate_row(
            counted_events,
            max(processed - received, 0.0) + close_s,
            close_s=close_s,
            complete=counted_events >= expected,
            startup_s=assigned - started,
            first_batch_s=received - assigned,
            event_time_s=workload.events / workload.rate_per_s,
            judged_window_ends=engine.judge.judged_panes,
            windows_skipped=sum(state.skipped_total for state in engine.states.values()),
            rss_before_bytes=rss_before,
            peak_rss_bytes=process_memory()["peak_rss_bytes"],
        ),
    }


def _seen(engine: Engine) -> int:
    """Valid plus invalid events the engine counted so far."""
    return sum(list(engine.events_total.values())) + sum(list(engine.invalid_total.values()))
