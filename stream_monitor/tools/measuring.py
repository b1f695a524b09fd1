"""What every benchmark measures with: wall times by round, rates, process memory, the machine."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np
import orjson


def wall_time(function: Callable[[], object]) -> float:
    """The wall time of one call of ``function``, in seconds (after a garbage collection)."""
    gc.collect()
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def round_times(
    measures: Mapping[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """The wall time of each of ``measures`` in each of ``repeats`` rounds, in seconds.

    Every round runs every measure once, in turn, so that a busy spell of the
    machine hits all of them alike; a measure's best is the least of its times,
    and two measures' times of one round make a ratio of that round.
    """
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, function in measures.items():
            times[name].append(wall_time(function))
    return times


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
        "msgspec": msgspec.__version__,
        "platform": platform.platform(terse=True),
    }
