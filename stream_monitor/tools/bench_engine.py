"""``stream-monitor bench``: the engine's throughput in this process, against the decode floor.

* **decode floor**: ``orjson.loads`` of every message and nothing else, the
  least any JSON consumer has to do;
* **engine**: :meth:`Engine.process` on batches of ``--batch`` rows, and
  :meth:`Engine.evaluate` once per batch (every window judged, drift events
  built), from bytes to statistics;
* the same rows sent as **micro-batches** (one JSON array of
  ``--micro-batch`` events per message).

Timings use :func:`time.perf_counter` and keep the best of ``--repeats`` runs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.tools.measuring import best_of, rate_row
from stream_monitor.tools.workload import Workload, batches, bench_config


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
