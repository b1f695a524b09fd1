"""``stream-monitor bench``: the engine's memory, measured in a fresh child process.

Resident set size once every pane of every window holds events, again after
ten times more events (it must not grow), and the peak (``VmHWM``). The child
process holds only the engine and the traffic it is fed, not the messages the
timing runs keep.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_monitor.engine import Engine
from stream_monitor.tools.measuring import process_memory
from stream_monitor.tools.workload import (
    MEMORY_GROWTH_FACTOR,
    BenchTraffic,
    Workload,
    bench_config,
    row_messages,
)


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
        "from stream_monitor.tools.bench_memory import measure_memory\n"
        "from stream_monitor.tools.workload import workload_from_dict\n"
        "workload = workload_from_dict(orjson.loads(sys.stdin.buffer.read()))\n"
        "sys.stdout.buffer.write(orjson.dumps(measure_memory(workload)))\n"
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
