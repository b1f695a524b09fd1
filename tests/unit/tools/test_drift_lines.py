"""Readable drift lines: grouping over windows, damping of flapping, units (fake clock)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from stream_monitor.evaluate import SEVERITIES
from stream_monitor.metric_names import (
    CONCEPT_DRIFT,
    DROP_METRICS,
    LATENCY_P99,
    RISE_METRICS,
    STABILITY_METRICS,
)
from stream_monitor.tools.drift_lines import DriftLines, ManualClock, shown

HOLD_S, QUIET_S, STEP_S = 1.0, 30.0, 0.1
LINE = re.compile(r"^\S+ +(?P<mark>ok|WARN|ALERT) +m v1 (?P<subject>\S+) over (?P<windows>[^:]+):")


def drift_event(
    severity: str,
    previous: str,
    window: str = "5m",
    metric: str = "csi",
    feature: str | None = "amount",
    value: float = 0.31,
    window_end: str = "2023-11-14T22:34:00Z",
) -> dict[str, Any]:
    return {
        "detected_at": "2023-11-14T22:36:00Z",
        "model": "m",
        "model_version": "v1",
        "metric": metric,
        "feature": feature,
        "window": window,
        "value": value,
        "threshold": 0.25,
        "severity": severity,
        "previous_severity": previous,
        "window_end": window_end,
        "window_events": 1200,
        "critical_value": None,
        "explain": None,
    }


def lines_at(clock: ManualClock, lines: DriftLines, now: float) -> list[str]:
    clock.now = now
    return lines.due()


def test_a_transition_in_several_windows_is_one_line_after_the_hold() -> None:
    clock = ManualClock(100.0)
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    lines.add(drift_event("warn", "ok", window="5m", value=0.2))
    clock.now = 100.3
    lines.add(drift_event("warn", "ok", window="1m", value=0.3))
    lines.add(drift_event("warn", "ok", window="5m", metric="psi", feature=None))
    assert lines_at(clock, lines, 100.9) == []  # still held for the other windows
    (csi,) = lines_at(clock, lines, 101.0)
    assert " WARN m v1 csi[amount] over 1m, 5m: 0.3, 0.2 > 0.25 at 1,200 events (was ok)" in csi
    (psi,) = lines_at(clock, lines, 101.3)
    assert " WARN m v1 psi over 5m: 0.31 > 0.25" in psi
    assert lines_at(clock, lines, 200.0) == [] and lines.flush() == []


def test_windows_ending_at_other_panes_or_moving_elsewhere_stay_apart() -> None:
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    lines.add(drift_event("warn", "ok", window="1m"))
    lines.add(drift_event("alert", "ok", window="5m"))
    lines.add(drift_event("warn", "ok", window="15m", window_end="2023-11-14T22:35:00Z"))
    printed = lines_at(clock, lines, HOLD_S)
    assert [LINE.match(line)["windows"] for line in printed] == ["1m", "5m", "15m"]  # type: ignore[index]


def test_flapping_prints_one_line_and_the_next_line_counts_what_was_folded() -> None:
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    lines.add(drift_event("alert", "warn", metric="accuracy", feature=None))
    printed = []
    for second, (severity, previous) in enumerate(
        [("warn", "alert"), ("alert", "warn"), ("warn", "alert"), ("alert", "warn")], start=1
    ):
        printed += lines_at(clock, lines, float(second))
        lines.add(drift_event(severity, previous, metric="accuracy", feature=None))
    printed += lines_at(clock, lines, 5.0) + lines_at(clock, lines, QUIET_S + 10)
    assert len(printed) == 1 and printed[0].endswith("(was warn)"), printed
    assert "ALERT m v1 accuracy over 5m" in printed[0]
    clock.now = 100.0
    lines.add(drift_event("ok", "alert", metric="accuracy", feature=None))
    (resolved,) = lines_at(clock, lines, 101.0)
    assert resolved.endswith("(was alert; 4 changes back and forth folded)"), resolved


def test_a_folded_change_that_sticks_is_printed_when_the_quiet_period_ends() -> None:
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    lines.add(drift_event("alert", "warn"))
    assert len(lines_at(clock, lines, 1.0)) == 1
    for second, (severity, previous) in enumerate(
        [("warn", "alert"), ("alert", "warn"), ("warn", "alert")], start=2
    ):
        clock.now = float(second)
        lines.add(drift_event(severity, previous, value=0.2))
    assert lines_at(clock, lines, QUIET_S - 0.1) == []
    assert lines_at(clock, lines, QUIET_S + 0.5) == []  # released, then held like any line
    (settled,) = lines_at(clock, lines, QUIET_S + 0.5 + HOLD_S)
    assert " WARN m v1 csi[amount] over 5m: 0.2 back past 0.25" in settled
    assert settled.endswith("(was alert; 2 changes back and forth folded)"), settled


def test_a_further_rise_is_printed_at_once_and_copies_are_not() -> None:
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    lines.add(drift_event("warn", "ok"))
    assert len(lines_at(clock, lines, 1.0)) == 1
    lines.add(drift_event("alert", "warn"))  # not seen in the quiet period: a real rise
    (rise,) = lines_at(clock, lines, 2.0)
    assert "ALERT m v1 csi[amount]" in rise and rise.endswith("(was warn)")
    clock.now = 100.0
    lines.add(drift_event("alert", "warn"))  # delivered twice (at least once)
    assert lines_at(clock, lines, 200.0) == [] and lines.flush() == []


def test_flush_prints_what_is_held_and_what_was_folded() -> None:
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    lines.add(drift_event("alert", "ok"))
    assert len(lines_at(clock, lines, 1.0)) == 1
    clock.now = 2.0
    lines.add(drift_event("ok", "alert"))  # folded: ok was the previous severity
    lines.add(drift_event("warn", "ok", metric="psi", feature=None))
    flushed = lines.flush()
    assert sorted(LINE.match(line)["mark"] for line in flushed) == ["WARN", "ok"]  # type: ignore[index]


@pytest.mark.parametrize("seed", range(20))
def test_random_streams_never_flap_and_end_on_the_last_severity(seed: int) -> None:
    rng = random.Random(seed)
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    current = {window: "ok" for window in ("1m", "5m")}
    printed: list[tuple[float, str]] = []
    for _ in range(200):
        until = clock.now + rng.choice([0.0, 0.2, 1.0, 3.0, 40.0])
        while clock.now < until:  # lines are printed within STEP_S of being due
            clock.now = min(until, clock.now + STEP_S)
            printed += [(clock.now, line) for line in lines.due()]
        window = rng.choice(list(current))
        severity = rng.choice([s for s in SEVERITIES if s != current[window]])
        lines.add(drift_event(severity, current[window], window=window))
        current[window] = severity
    flushed = lines.flush()  # the end of the stream: the last severities, quiet or not
    last: dict[str, tuple[float, set[str]]] = {}
    shown_now: dict[str, str] = {}
    for at, line in printed + [(float("inf"), line) for line in flushed]:
        match = LINE.match(line)
        assert match is not None, line
        severity = {"ok": "ok", "WARN": "warn", "ALERT": "alert"}[match["mark"]]
        previous = re.search(r"\(was (\w+)", line)[1]  # type: ignore[index]
        for window in match["windows"].split(", "):
            if window in last and at - last[window][0] < QUIET_S - HOLD_S - STEP_S:
                assert severity not in last[window][1], f"flapped on {window}: {line}"
            last[window] = (at, {previous, severity})
            shown_now[window] = severity
    assert shown_now == current


#: Every drift metric, a value of it and how it reads.
UNITS = [
    (LATENCY_P99, 0.1234, "123 ms"),
    (CONCEPT_DRIFT, 3.0, "3"),
    ("psi", 0.31234, "0.312"),
    ("csi", 0.0421, "0.0421"),
    ("null_ratio", 0.0523, "5.2%"),
    ("new_category_ratio", 0.2, "20.0%"),
    ("accuracy", 0.71, "71.0%"),
    ("precision", 0.655, "65.5%"),
    ("recall", 0.5, "50.0%"),
    ("auc", 0.81234, "0.812"),
    ("gini", 0.62468, "0.625"),
    ("ks", 0.4, "0.4"),
    ("f1", 0.6667, "0.667"),
    ("r2", 0.912, "0.912"),
    ("rmse", 25312.4, "25,312"),
    ("mae", 12.345, "12.3"),
    ("log_loss", 0.4567, "0.457"),
    ("brier", 0.1234, "0.123"),
]


@pytest.mark.parametrize(("metric", "value", "expected"), UNITS)
def test_every_metric_is_shown_in_its_unit(metric: str, value: float, expected: str) -> None:
    assert shown(metric, value) == expected


def test_the_unit_table_covers_every_drift_metric() -> None:
    covered = {name for name, _, _ in UNITS}
    assert {*STABILITY_METRICS, *DROP_METRICS, *RISE_METRICS, CONCEPT_DRIFT, LATENCY_P99} <= covered


def test_a_value_at_its_threshold_reads_differently_from_it() -> None:
    clock = ManualClock()
    lines = DriftLines(clock, HOLD_S, QUIET_S)
    event = drift_event("alert", "warn", metric="accuracy", feature=None, value=0.70996)
    lines.add({**event, "threshold": 0.71})
    (line,) = lines.flush()
    assert "accuracy over 5m: 70.996% < 71.000%" in line
