"""``stream-monitor bench``: the engine's throughput and memory on synthetic events.

Everything runs in one process on one core, on seeded synthetic traffic:

* **decode floor**: ``orjson.loads`` of every message and nothing else, the
  least any JSON consumer has to do;
* **engine**: :meth:`Engine.process` on batches of ``--batch`` rows, and
  :meth:`Engine.evaluate` once per batch (every window judged, drift events
  built), from bytes to statistics;
* the same rows sent as **micro-batches** (one JSON array of
  ``--micro-batch`` events per message);
* **memory**, in a fresh child process so that the messages held for the
  timing runs do not count: resident set size once every pane of every window
  holds events, again after ten times more events (it must not grow), and the
  peak (``VmHWM``);
* with ``--broker``, end to end through the embedded broker and
  :class:`~stream_monitor.kafka.service.MonitorService`, then ingest replica
  processes (:mod:`stream_monitor.tools.bench_scale`) and the start-up and restore
  time of ``stream-monitor run`` processes (:mod:`stream_monitor.tools.bench_restore`).

Timings use :func:`time.perf_counter` and keep the best of ``--repeats`` runs.
The traffic drifts half-way (one numeric feature, one categorical feature
with new categories, and the score), so evaluation emits drift events as in
production.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_monitor.config import MonitorConfig
from stream_monitor.config_file import config_from_dict, parse_duration_s
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine

#: Event time of the first synthetic event (2023-11-14T22:13:20Z).
START_S = 1_700_000_000.0
#: Largest message the benchmark config accepts (a micro-batch of wide events is big).
BENCH_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MEMORY_GROWTH_FACTOR = 10
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """What the benchmark feeds the engine; every field has a command-line option."""

    events: int = 200_000
    features: int = 23
    categorical: int = 3
    categories: int = 12
    models: int = 1
    windows: tuple[str, ...] = ("5m", "1h", "24h")
    pane_s: float = 60.0
    batch: int = 2000
    micro_batch: int = 1000
    rate_per_s: float = 1000.0
    label_ratio: float = 0.3
    null_ratio: float = 0.05
    repeats: int = 3
    seed: int = 42

    def __post_init__(self) -> None:
        if self.events < 1 or self.batch < 1 or self.micro_batch < 1 or self.repeats < 1:
            raise ValueError("--events, --batch, --micro-batch and --repeats must be positive")
        if self.models < 1:
            raise ValueError("--models must be at least 1")
        if not 0 <= self.categorical <= self.features or self.features < 1:
            raise ValueError("--features must be >= 1 and --categorical within 0..--features")
        if self.categories < 2:
            raise ValueError("--categories must be at least 2")
        if self.rate_per_s <= 0:
            raise ValueError("--rate must be positive")

    @property
    def numeric(self) -> int:
        """Number of numeric features."""
        return self.features - self.categorical

    def numeric_names(self) -> list[str]:
        """Names of the numeric features."""
        return [f"num_{j:02d}" for j in range(self.numeric)]

    def categorical_names(self) -> list[str]:
        """Names of the categorical features."""
        return [f"cat_{j}" for j in range(self.categorical)]

    def model_names(self) -> list[str]:
        """Names of the models the events are spread over (round robin)."""
        return [f"bench-{m}" for m in range(self.models)]

    @property
    def keep_s(self) -> float:
        """Event time the engine keeps per model: the largest window plus the lateness."""
        largest = max(parse_duration_s(w, "--windows") for w in self.windows)
        return largest + WINDOW_LATENESS_S + self.pane_s


#: Allowed lateness of the benchmark config (the product default).
WINDOW_LATENESS_S = 300.0


def bench_config(workload: Workload) -> MonitorConfig:
    """The monitor config of the benchmark: one binary classifier per model, product defaults.

    Only the message-size limits are raised, so that micro-batches of wide events fit.
    """
    return config_from_dict(bench_config_data(workload))


def bench_config_data(workload: Workload) -> dict[str, Any]:
    """:func:`bench_config` as the YAML document a monitor process reads."""
    features = dict.fromkeys(workload.numeric_names(), "numeric")
    features.update(dict.fromkeys(workload.categorical_names(), "categorical"))
    return dict(
        {
            "models": [
                {"name": name, "task": "binary", "features": features}
                for name in workload.model_names()
            ],
            "windows": {
                "pane_s": workload.pane_s,
                "sizes": list(workload.windows),
                "allowed_lateness_s": WINDOW_LATENESS_S,
            },
            "limits": {
                "max_message_bytes": BENCH_MAX_MESSAGE_BYTES,
                "max_batch_events": max(10_000, workload.micro_batch),
            },
        }
    )


class BenchTraffic:
    """Seeded synthetic events of :class:`Workload`, generated in chunks (numpy, then dicts).

    Numeric features cycle through four shapes: normal, log-normal, zero-inflated
    (many equal quantiles, so merged bin edges) and small integer counts. The
    log-normal ones (every fourth numeric feature) are nullable, each value null
    with probability ``null_ratio``; the others are always present. Categorical values
    follow a Zipf law over ``categories`` values. From event ``drift_at`` on,
    ``num_00`` shifts by half a standard deviation, ``cat_0``'s frequencies
    reverse and 5% of its values are new, and the score shifts up.

    >>> traffic = BenchTraffic(Workload(features=3, categorical=1, categories=3), rate_per_s=10)
    >>> [sorted(e) for e in traffic.take(2)][0]
    ['event_id', 'features', 'latency_ms', 'model', 'model_version', 'prediction', 'timestamp']
    >>> traffic.sent
    2
    """

    def __init__(
        self,
        workload: Workload,
        rate_per_s: float,
        drift_at: int | None = None,
        start_s: float = START_S,
    ) -> None:
        self.workload = workload
        self.rate_per_s = rate_per_s
        self.drift_at = workload.events // 2 if drift_at is None else drift_at
        self.start_s = start_s
        self.rng = np.random.default_rng(workload.seed)
        self.sent = 0
        self._models = workload.model_names()
        self._numeric = workload.numeric_names()
        self._categorical = workload.categorical_names()
        ranks = np.arange(1, workload.categories + 1, dtype=np.float64)
        self._weights = (1.0 / ranks) / (1.0 / ranks).sum()
        self._values = np.array([f"v{k:02d}" for k in range(workload.categories)], dtype=object)
        self._new_values = np.array([f"new-{k}" for k in range(5)], dtype=object)

    def _numeric_column(self, j: int, n: int, drifted: np.ndarray) -> list[Any]:
        rng = self.rng
        shape = j % 4
        values: np.ndarray
        if shape == 0:
            values = rng.normal(50.0 + 10.0 * j, 10.0, n)
            if j == 0:
                values = values + 5.0 * drifted
            values = np.round(values, 3)
        elif shape == 1:
            values = np.round(rng.lognormal(3.0, 0.8, n), 2)
        elif shape == 2:
            values = np.round(rng.exponential(100.0, n), 2)
            values[rng.random(n) < 0.35] = 0.0
        else:
            values = rng.poisson(3.0, n)
        column: list[Any] = values.tolist()
        if shape == 1:
            for row in np.flatnonzero(rng.random(n) < self.workload.null_ratio).tolist():
                column[row] = None
        return column

    def _categorical_column(self, j: int, n: int, drifted: np.ndarray) -> list[Any]:
        rng = self.rng
        values = self._values[rng.choice(len(self._values), n, p=self._weights)]
        if j == 0 and drifted.any():
            reversed_values = self._values[rng.choice(len(self._values), n, p=self._weights[::-1])]
            values = np.where(drifted, reversed_values, values)
            new = drifted & (rng.random(n) < 0.05)
            values[new] = self._new_values[rng.integers(0, len(self._new_values), int(new.sum()))]
        return list(values)

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` events (dicts in the SPEC section 1 schema)."""
        rng = self.rng
        first = self.sent
        index = np.arange(first, first + n)
        self.sent += n
        drifted = index >= self.drift_at
        timestamps = np.round(self.start_s + index / self.rate_per_s, 3).tolist()
        columns = [self._numeric_column(j, n, drifted) for j in range(len(self._numeric))]
        columns += [self._categorical_column(j, n, drifted) for j in range(len(self._categorical))]
        names = self._numeric + self._categorical
        score = np.round(1.0 / (1.0 + np.exp(-(rng.normal(-1.0, 1.0, n) + 0.6 * drifted))), 5)
        labelled = rng.random(n) < self.workload.label_ratio
        label = (rng.random(n) < score).astype(np.int64).tolist()
        latency = np.round(rng.lognormal(np.log(12.0), 0.4, n), 3).tolist()
        models = self._models
        events = []
        for row, values in enumerate(zip(*columns, strict=True)):
            number = first + row
            event: dict[str, Any] = {
                "event_id": f"ev-{number}",
                "model": models[number % len(models)],
                "model_version": "v1",
                "timestamp": timestamps[row],
                "features": dict(zip(names, values, strict=True)),
                "prediction": float(score[row]),
                "latency_ms": latency[row],
            }
            if labelled[row]:
                event["label"] = label[row]
            events.append(event)
        return events


def _dumps(value: Any) -> bytes:
    """orjson bytes, copied to their exact size (orjson's own buffer keeps its spare capacity,
    which would inflate the benchmark's memory far above a Kafka client's message values)."""
    return bytes(memoryview(orjson.dumps(value)))


def row_messages(events: Sequence[dict[str, Any]]) -> list[RawMessage]:
    """One Kafka message per event (orjson bytes; the message timestamp is the event's)."""
    return [RawMessage(_dumps(e), int(e["timestamp"] * 1000)) for e in events]


def micro_batch_messages(events: Sequence[dict[str, Any]], size: int) -> list[RawMessage]:
    """Messages holding a JSON array of ``size`` events each (the last one may hold fewer)."""
    return [
        RawMessage(_dumps(events[i : i + size]), int(events[i]["timestamp"] * 1000))
        for i in range(0, len(events), size)
    ]


def batches(
    messages: Sequence[RawMessage], rows_per_message: int, rows: int
) -> list[list[RawMessage]]:
    """``messages`` cut into engine batches of about ``rows`` events each."""
    per_batch = max(1, rows // rows_per_message)
    return [list(messages[i : i + per_batch]) for i in range(0, len(messages), per_batch)]


def best_of(repeats: int, function: Callable[[], object]) -> float:
    """The shortest wall time of ``repeats`` calls of ``function``, in seconds."""
    best = math.inf
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def decode_floor(messages: Sequence[RawMessage]) -> None:
    """``orjson.loads`` of every message value and nothing else (in a C-level loop)."""
    deque(map(orjson.loads, map(_value, messages)), maxlen=0)


_value = attrgetter("value")


@dataclass
class EngineRun:
    """What one engine pass over the messages counted."""

    events: int = 0
    rejected: int = 0
    drift_events: int = 0
    windows: int = 0


def run_engine(config: MonitorConfig, engine_batches: Sequence[Sequence[RawMessage]]) -> EngineRun:
    """A fresh engine over ``engine_batches``: process, then evaluate, per batch; then close all."""
    engine = Engine(config)
    run = EngineRun()
    for batch in engine_batches:
        run.rejected += len(engine.process(batch))
        run.drift_events += len(engine.evaluate())
    run.drift_events += len(engine.evaluate(final=True))
    run.events = sum(engine.events_total.values())
    run.windows = len(engine.snapshot().windows)
    return run


def rate_row(events: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """One measurement: events, best seconds, events per second and microseconds per event."""
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "us_per_event": seconds / events * 1e6,
        **extra,
    }


def process_memory() -> dict[str, int]:
    """Resident set size now and at its peak, in bytes.

    From ``VmRSS`` and ``VmHWM`` in ``/proc/self/status`` where there is one. Only
    without it is the peak taken from ``getrusage``, whose ``ru_maxrss`` on Linux
    survives ``exec`` and so would report the parent's size in a child process.
    """
    memory: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    memory[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    if "VmRSS" in memory and "VmHWM" in memory:
        return {"rss_bytes": memory["VmRSS"], "peak_rss_bytes": memory["VmHWM"]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024
    return {"rss_bytes": memory.get("VmRSS", peak_bytes), "peak_rss_bytes": peak_bytes}


def engine_state_bytes(engine: Engine) -> int:
    """Bytes of numpy state the engine holds: pane vectors, window sums, running totals.

    Pane vectors are counted where they are kept, once: in each input partition's
    ledger (``engine.store.ledgers``), compressed ones at their packed size; windows hold
    only their running sums.
    """
    total = 0
    for state in engine.states.values():
        if state.windows is None:
            continue
        total += sum(state.windows.window(name).nbytes for name in state.window_sizes)
        cumulative = getattr(state, "cumulative", None)
        total += cumulative.nbytes if isinstance(cumulative, np.ndarray) else 0
    for ledger in engine.store.ledgers.values():
        total += sum(panes.nbytes for panes in ledger.panes.values())
    return total


def measure_memory(workload: Workload) -> dict[str, Any]:
    """Memory of the engine on ``workload`` (run in a fresh process by :func:`memory_in_child`).

    The events are spread over the event time the engine keeps, so after the
    first ``workload.events`` every pane of every window of every model holds
    counts. After as many again, the oldest panes have been leaving the windows
    for a while: the steady state, whose resident set size is the one reported.
    Then ten times more events follow, spanning ten times that event time; the
    resident set size must stay where it was.
    """
    config = bench_config(workload)
    rate_per_s = workload.events * 1.02 / workload.keep_s
    traffic = BenchTraffic(workload, rate_per_s=rate_per_s)
    gc.collect()
    before = process_memory()["rss_bytes"]
    engine = Engine(config)

    def feed(count: int) -> None:
        done = 0
        while done < count:
            rows = min(workload.batch, count - done)
            engine.process(row_messages(traffic.take(rows)))
            engine.evaluate()
            done += rows

    feed(workload.events)
    gc.collect()
    filled = process_memory()["rss_bytes"]
    feed(workload.events)
    gc.collect()
    steady = process_memory()["rss_bytes"]
    panes = sum(
        len(panes) for ledger in engine.store.ledgers.values() for panes in ledger.panes.values()
    )
    state_bytes = engine_state_bytes(engine)
    feed(workload.events * MEMORY_GROWTH_FACTOR)
    gc.collect()
    final = process_memory()
    return {
        "events": workload.events,
        "events_after_growth": workload.events * (MEMORY_GROWTH_FACTOR + 2),
        "event_time_s": workload.keep_s,
        "rss_before_engine_bytes": before,
        "rss_filled_bytes": filled,
        "rss_bytes": steady,
        "rss_after_growth_bytes": final["rss_bytes"],
        "rss_growth_bytes": final["rss_bytes"] - steady,
        "peak_rss_bytes": final["peak_rss_bytes"],
        "engine_state_bytes": state_bytes,
        "panes": panes,
        "counted_events": sum(engine.events_total.values()),
    }


def memory_in_child(workload: Workload) -> dict[str, Any]:
    """:func:`measure_memory` in a fresh Python process (clean RSS and peak)."""
    code = (
        "import sys, orjson\n"
        "from stream_monitor.tools import bench\n"
        "workload = bench.workload_from_dict(orjson.loads(sys.stdin.buffer.read()))\n"
        "sys.stdout.buffer.write(orjson.dumps(bench.measure_memory(workload)))\n"
    )
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        input=orjson.dumps(asdict(workload)),
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"memory run failed: {completed.stderr.decode(errors='replace')[-2000:]}"
        )
    result: dict[str, Any] = orjson.loads(completed.stdout)
    return result


def workload_from_dict(data: dict[str, Any]) -> Workload:
    """Inverse of :func:`dataclasses.asdict` for :class:`Workload`."""
    return Workload(**{**data, "windows": tuple(data["windows"])})


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
    from confluent_kafka import Producer

    from stream_monitor.kafka.service import MonitorService
    from stream_monitor.tools.embedded import EmbeddedBroker

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
        for message in messages:
            while True:
                try:
                    producer.produce(
                        topic, value=message.value, timestamp=message.timestamp_ms or 0
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)
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
                session_timeout_ms=6000,
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


def reset_peak_rss() -> None:
    """Start the peak RSS (``VmHWM``) afresh, where Linux allows it (``clear_refs``)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def machine() -> dict[str, Any]:
    """The machine and software the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": cpu,
        "nproc": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "orjson": orjson.__version__,
        "platform": platform.platform(terse=True),
    }


def measure_throughput(
    workload: Workload, rows: Sequence[RawMessage], micro: Sequence[RawMessage]
) -> dict[str, Any]:
    """Decode floor and engine rates of the row messages and of the micro-batch messages.

    Every repeat runs every measure once, in turn, so that a busy spell of the
    machine hits all of them alike; each keeps its best time.
    """
    config = bench_config(workload)
    n = workload.events
    row_batches = batches(rows, 1, workload.batch)
    micro_batches = batches(micro, workload.micro_batch, workload.batch)
    checks = {"row": run_engine(config, row_batches), "micro": run_engine(config, micro_batches)}
    for name, check in checks.items():
        if check.events != n or check.rejected:
            raise RuntimeError(
                f"{name} messages: the engine counted {check.events} of {n} events "
                f"and rejected {check.rejected}"
            )
    measures: dict[str, Callable[[], object]] = {
        "decode_floor": lambda: decode_floor(rows),
        "engine": lambda: run_engine(config, row_batches),
        "micro_batch_decode_floor": lambda: decode_floor(micro),
        "micro_batch_engine": lambda: run_engine(config, micro_batches),
    }
    best = dict.fromkeys(measures, math.inf)
    for _ in range(workload.repeats):
        for name, function in measures.items():
            best[name] = min(best[name], best_of(1, function))
    floor_s, engine_s, micro_s = best["decode_floor"], best["engine"], best["micro_batch_engine"]
    return {
        "decode_floor": rate_row(n, floor_s),
        "engine": rate_row(
            n,
            engine_s,
            ratio_to_decode_floor=floor_s / engine_s,
            batch_rows=workload.batch,
            drift_events=checks["row"].drift_events,
            windows=checks["row"].windows,
        ),
        "micro_batch_decode_floor": rate_row(n, best["micro_batch_decode_floor"]),
        "micro_batch_engine": rate_row(
            n,
            micro_s,
            ratio_to_row_engine=engine_s / micro_s,
            ratio_to_decode_floor=floor_s / micro_s,
            rows_per_message=workload.micro_batch,
        ),
    }


def measure(
    workload: Workload,
    *,
    broker: bool = False,
    ingest_replicas: Sequence[int] = (),
    restore_partitions: Sequence[int] = (),
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every measurement of ``workload``; a JSON-ready dict (what ``--json`` prints)."""
    say = progress or (lambda _: None)
    say(f"generating {workload.events:,} events")
    events = BenchTraffic(workload, rate_per_s=workload.rate_per_s).take(workload.events)
    rows = row_messages(events)
    micro = micro_batch_messages(events, workload.micro_batch)
    events.clear()
    say(f"decode floor and engine, best of {workload.repeats}")
    results = measure_throughput(workload, rows, micro)
    if memory:
        say("memory (fresh process)")
        results["memory"] = memory_in_child(workload)
    if broker:
        say("end to end through the embedded broker: row events, then micro-batches")
        results["broker"] = measure_broker(workload, rows)
        micro_run = measure_broker(workload, micro)
        row_rate = results["broker"]["monitor"]["events_per_s"]
        micro_run["monitor"]["ratio_to_row_events"] = (
            micro_run["monitor"]["events_per_s"] / row_rate if row_rate else 0.0
        )
        results["broker_micro_batch"] = micro_run
    micro.clear()
    if broker and ingest_replicas:
        from stream_monitor.tools.bench_scale import measure_ingest

        say(f"ingest replicas {', '.join(map(str, ingest_replicas))} through the embedded broker")
        results["scale_out"] = measure_ingest(bench_config_data(workload), rows, ingest_replicas)
    if broker and restore_partitions:
        from stream_monitor.tools.bench_restore import measure_restore

        counts = ", ".join(map(str, restore_partitions))
        say(f"start-up and restore of stream-monitor run, {counts} partitions")
        results["restore"] = measure_restore(bench_config_data(workload), rows, restore_partitions)
    return {"workload": asdict(workload), "machine": machine(), "results": results}


def _rate(value: float) -> str:
    return f"{value:>14,.0f}"


def format_table(report: dict[str, Any]) -> str:
    """The human-readable table of a :func:`measure` report."""
    w = report["workload"]
    m = report["machine"]
    r = report["results"]
    lines = [
        f"stream-monitor bench: {w['events']:,} events, {w['models']} model(s), "
        f"{w['features']} features ({w['categorical']} categorical of {w['categories']} values), "
        f"windows {'/'.join(w['windows'])} of {w['pane_s']:g}s panes",
        f"machine: {m['nproc']} x {m['cpu']}; Python {m['python']}, numpy {m['numpy']}, "
        f"orjson {m['orjson']}; one core, best of {w['repeats']}",
        "",
        f"{'measure':<44}{'events/s':>14}{'us/event':>10}  ratio",
    ]

    def row(name: str, data: dict[str, Any], ratio: str = "") -> None:
        lines.append(
            f"{name:<44}{_rate(data['events_per_s'])}{data['us_per_event']:>10.2f}  {ratio}"
        )

    row("decode floor: orjson.loads, row events", r["decode_floor"])
    engine = r["engine"]
    row(
        f"engine: process + evaluate per {engine['batch_rows']:,} rows",
        engine,
        f"{engine['ratio_to_decode_floor']:.2f} of decode floor",
    )
    row(
        f"decode floor: micro-batches of {w['micro_batch']:,}",
        r["micro_batch_decode_floor"],
    )
    micro = r["micro_batch_engine"]
    row(
        f"engine: micro-batches of {micro['rows_per_message']:,}",
        micro,
        f"{micro['ratio_to_row_engine']:.2f}x row events",
    )
    if "broker" in r:
        row("embedded broker: produce", r["broker"]["produce"])
        monitor = r["broker"]["monitor"]
        row(
            "embedded broker: consume + engine",
            monitor,
            f"after {monitor['startup_s']:.1f}s joining the group"
            + ("" if monitor["complete"] else "; incomplete (timed out)"),
        )
        lines.append(
            f"{'  backlog: judged while read':<44}"
            f"{monitor['event_time_s'] / 60:,.0f} min of event time in {monitor['seconds']:.1f} s; "
            f"{monitor['judged_window_ends']:,} window ends judged, "
            f"{monitor['windows_skipped']:,} skipped; "
            f"peak RSS {monitor['peak_rss_bytes'] / 2**20:,.0f} MiB "
            f"(from {monitor['rss_before_bytes'] / 2**20:,.0f} MiB before)"
        )
    if "broker_micro_batch" in r:
        monitor = r["broker_micro_batch"]["monitor"]
        row(
            f"embedded broker: micro-batches of {w['micro_batch']:,}",
            monitor,
            f"{monitor['ratio_to_row_events']:.2f}x row events"
            + ("" if monitor["complete"] else "; incomplete (timed out)"),
        )
    if "scale_out" in r:
        for run in r["scale_out"]["runs"]:
            run_row = {
                **run,
                "us_per_event": 1e6 / run["events_per_s"] if run["events_per_s"] else 0,
            }
            row(
                f"--role ingest x{run['replicas']}, {r['scale_out']['partitions']} partitions",
                run_row,
                f"{run['ratio_to_first']:.2f}x one replica"
                + ("" if run["complete"] else "; incomplete (timed out)"),
            )
    if "restore" in r:
        from stream_monitor.tools.bench_restore import format_rows

        lines += ["", *format_rows(r["restore"])]
    if "memory" in r:
        mem = r["memory"]
        lines += [
            "",
            f"memory (fresh process; each {mem['events']:,} events span the "
            f"{mem['event_time_s']:,.0f}s of event time the windows keep):",
            f"  RSS before the engine          {mem['rss_before_engine_bytes'] / _MIB:8.1f} MiB",
            f"  RSS, every pane filled         {mem['rss_filled_bytes'] / _MIB:8.1f} MiB",
            f"  RSS, steady state (2x events)  {mem['rss_bytes'] / _MIB:8.1f} MiB"
            f"  (pane state {mem['engine_state_bytes'] / _MIB:.1f} MiB, {mem['panes']:,} panes)",
            f"  RSS after {MEMORY_GROWTH_FACTOR}x more events      "
            f"{mem['rss_after_growth_bytes'] / _MIB:8.1f} MiB"
            f"  (growth {mem['rss_growth_bytes'] / _MIB:+.1f} MiB)",
            f"  peak RSS (VmHWM)               {mem['peak_rss_bytes'] / _MIB:8.1f} MiB",
        ]
    lines.append(f"\ndrift events emitted per engine pass: {engine['drift_events']:,}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Define the options of ``stream-monitor bench``."""
    d = Workload()
    parser.add_argument("--events", type=int, default=None, help=f"events (default {d.events:,})")
    parser.add_argument(
        "--features", type=int, default=d.features, help="features per event, categorical included"
    )
    parser.add_argument(
        "--categorical", type=int, default=d.categorical, help="how many features are categorical"
    )
    parser.add_argument(
        "--categories", type=int, default=d.categories, help="values per categorical feature"
    )
    parser.add_argument("--models", type=int, default=d.models, help="models (events round robin)")
    parser.add_argument(
        "--windows", default=",".join(d.windows), help="window sizes, comma-separated"
    )
    parser.add_argument("--pane", type=float, default=d.pane_s, help="pane length in seconds")
    parser.add_argument("--batch", type=int, default=d.batch, help="rows per engine batch")
    parser.add_argument(
        "--micro-batch", type=int, default=d.micro_batch, help="events per micro-batch message"
    )
    parser.add_argument(
        "--rate", type=float, default=d.rate_per_s, help="events per second of event time"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timing runs, best kept")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--quick", action="store_true", help="a few seconds (for CI)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--broker", action="store_true", help="also end to end through the embedded broker"
    )
    parser.add_argument(
        "--ingest-replicas",
        default="1,2",
        help="with --broker: ingest replica processes to time, comma-separated ('' to skip)",
    )
    parser.add_argument(
        "--restore-partitions",
        default="4,32,128",
        help="with --broker: input partition counts to time start-up and restore at ('' to skip)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


QUICK_EVENTS = 10_000
QUICK_REPEATS = 2


def workload_from_args(args: argparse.Namespace) -> Workload:
    """The :class:`Workload` the command-line options describe."""
    windows = tuple(w.strip() for w in str(args.windows).split(",") if w.strip())
    for window in windows:
        parse_duration_s(window, "--windows")
    default = Workload()
    events = args.events or (QUICK_EVENTS if args.quick else default.events)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else default.repeats)
    return Workload(
        events=events,
        features=args.features,
        categorical=args.categorical,
        categories=args.categories,
        models=args.models,
        windows=windows,
        pane_s=args.pane,
        batch=args.batch,
        micro_batch=args.micro_batch,
        rate_per_s=args.rate,
        repeats=repeats,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``stream-monitor bench``; prints the table (or JSON with ``--json``)."""
    from stream_monitor.config import ConfigError

    try:
        workload = workload_from_args(args)
        bench_config(workload)
        replicas = [int(n) for n in str(args.ingest_replicas).split(",") if n.strip()]
        partitions = [int(n) for n in str(args.restore_partitions).split(",") if n.strip()]
    except (ValueError, ConfigError) as exc:
        print(f"stream-monitor bench: {exc}", file=sys.stderr)
        return 2

    def progress(text: str) -> None:
        if not args.json:
            print(f"... {text}", file=sys.stderr, flush=True)

    report = measure(
        workload,
        broker=args.broker,
        ingest_replicas=replicas,
        restore_partitions=partitions,
        memory=not args.no_memory,
        progress=progress,
    )
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_table(report))
    return 0
