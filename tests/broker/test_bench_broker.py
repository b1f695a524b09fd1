"""``stream-monitor bench --broker`` times the monitor honestly: from the arrival of its first
consumed batch, so that no end-to-end row comes out faster than the engine alone."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from stream_monitor.tools.bench_broker import measure_backlogs
from stream_monitor.tools.bench_engine import run_engine
from stream_monitor.tools.workload import Workload, bench_config, workload_messages

#: How far above the engine's own rate (same messages, passes between the monitor's runs)
#: an end-to-end row may come out, as a ratio. The monitor does all the engine's work and
#: more (consuming, converting messages), so honestly timed it is at most as fast; it
#: evaluates once a second where the engine's pass evaluates after every 2,000 rows, a few
#: % of the engine's time at 1,000 events/s of event time. The rest is noise: each rate is
#: the best of 3 runs of about 0.1 s, on a machine whose timings vary by up to 30% from run
#: to run (README, Performance).
NOISE = 1.3
#: A busy spell of the machine can still slow every engine pass of one attempt; the timing
#: error this test guards against (leaving the first consumed batch out: 1.8x the engine for
#: row events, thousands of times for micro-batches) fails every attempt.
ATTEMPTS = 3


def ratios_to_engine(workload: Workload) -> dict[str, Any]:
    """One bench run of the engine and the broker: each end-to-end row's ratio to the engine,
    checked for being complete and consistent with the rates it comes from."""
    rows, micro = workload_messages(workload)
    runs = measure_backlogs(workload, rows, micro, partial(run_engine, bench_config(workload)))
    ratios = {}
    for name in ("broker", "broker_micro_batch"):
        monitor = runs[name]["monitor"]
        assert monitor["complete"] and monitor["events"] == workload.events, (name, monitor)
        assert monitor["startup_s"] > 0 and monitor["first_batch_s"] >= 0, (name, monitor)
        assert monitor["close_s"] >= 0, (name, monitor)
        assert monitor["seconds"] == pytest.approx(monitor["events"] / monitor["events_per_s"])
        rate = monitor["engine_events_per_s"]
        assert 0 < rate < workload.events / 1e-3, (name, monitor)
        assert monitor["ratio_to_engine"] == pytest.approx(monitor["events_per_s"] / rate)
        # one ratio per run, the best run's among them at least its best ratio's share
        rounds = monitor["round_ratios_to_engine"]
        assert len(rounds) == workload.repeats, (name, rounds)
        assert max(rounds) >= monitor["ratio_to_engine"] * (1 - 1e-9), (name, rounds)
        ratios[name] = (monitor["ratio_to_engine"], monitor["events_per_s"], rate)
    return ratios


def test_no_end_to_end_row_is_faster_than_the_engine_alone() -> None:
    workload = Workload(events=20_000, repeats=3)
    attempts = []
    for _ in range(ATTEMPTS):
        attempts.append(ratios_to_engine(workload))
        if all(ratio <= NOISE for ratio, _, _ in attempts[-1].values()):
            return
    pytest.fail(f"an end-to-end row beat the engine by more than {NOISE}x: {attempts}")
