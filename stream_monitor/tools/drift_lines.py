"""Readable drift lines: drift events grouped over windows and damped against flapping.

The drift events on the topic are the contract for alerting and stay as they
are; this module only decides what a person reads. :class:`DriftLines` takes
events as they arrive and gives lines:

- **grouping**: the same transition (model, version, metric, feature, window
  end, from and to severity) in several windows is one line
  (``... csi[amount] over 1m, 5m: ...``). A transition is held ``hold_s`` to
  collect its other windows;
- **damping**: on one (model, version, metric, feature, window), a return to a
  severity already shown within the last ``quiet_s`` is not printed. The last
  such change is printed when the quiet period ends, if it differs from what
  was shown, and the next line of that window says how many changes were
  folded. A severity not shown yet (a further rise) is printed at once.

Time comes from a clock given to the constructor (the wall clock live; the
events' window ends offline; a :class:`ManualClock` in tests).

Run as ``python -m stream_monitor.tools.drift_lines`` it reads drift events as
JSON Lines on stdin (what ``stream-monitor replay`` writes) and prints lines
stamped with each window's end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from stream_monitor.config_file import parse_duration_s
from stream_monitor.evaluate import LEVELS
from stream_monitor.metric_names import CONCEPT_DRIFT, LATENCY_P99, NEW_CATEGORY_RATIO, NULL_RATIO

#: Metrics that are shares of events, shown as percentages.
PERCENT_METRICS = frozenset(
    {NULL_RATIO, NEW_CATEGORY_RATIO}
    | {p + name for p in ("", "estimated_") for name in ("accuracy", "precision", "recall")}
)
#: How a severity is marked at the start of a line (all marks are five characters wide).
MARKS = {"ok": "  ok ", "warn": " WARN", "alert": "ALERT"}

Event = Mapping[str, Any]


def shown(metric: str, value: float, extra_digits: int = 0) -> str:
    """A metric's value with its unit: latency in ms, counts whole, shares of events in %.

    Scores (PSI, CSI, AUC, F1, ...) keep three significant digits, errors in the
    target's unit (RMSE, MAE) get thousands separators once they are large.
    ``extra_digits`` adds precision, to tell a value from a threshold.

    >>> shown("latency_p99", 0.1234), shown("concept_drift", 3.0), shown("psi", 0.31234)
    ('123 ms', '3', '0.312')
    >>> shown("accuracy", 0.7098), shown("accuracy", 0.7098, 1), shown("rmse", 25312.4)
    ('71.0%', '70.98%', '25,312')
    """
    if metric == LATENCY_P99:
        return f"{value * 1000:.{extra_digits}f} ms"
    if metric == CONCEPT_DRIFT:
        return f"{value:.0f}"
    if metric in PERCENT_METRICS:
        return f"{value * 100:.{1 + extra_digits}f}%"
    digits = 3 + extra_digits
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def shown_apart(metric: str, value: float, threshold: float) -> tuple[str, str]:
    """``value`` and ``threshold`` shown with enough digits that they read differently.

    >>> shown_apart("accuracy", 0.70996, 0.71)
    ('70.996%', '71.000%')
    """
    for extra in range(4):
        pair = shown(metric, value, extra), shown(metric, threshold, extra)
        if pair[0] != pair[1] or value == threshold:
            return pair
    return pair


def subject_of(event: Event) -> str:
    """``metric[feature]``, or the metric alone; ``against`` the champion for versions.

    >>> subject_of({"metric": "version_rmse", "feature": None, "champion": "v1"})
    'version_rmse against v1'
    """
    subject = f"{event['metric']}[{event['feature']}]" if event.get("feature") else event["metric"]
    return f"{subject} against {event['champion']}" if event.get("champion") else subject


def format_drift_line(
    transitions: list[tuple[Event, int]], previous: str, stamp_field: str = "detected_at"
) -> str:
    """One line for one transition in one or more windows, with why it fired.

    ``transitions`` holds (event, changes folded before it) for each window, in
    window order; ``previous`` is the severity the reader saw last.

    >>> event = {"detected_at": "T", "severity": "alert", "model": "m", "model_version": "v1",
    ...     "metric": "csi", "feature": "amount", "window": "5m", "value": 0.31,
    ...     "threshold": 0.25, "window_events": 5400, "critical_value": 0.04,
    ...     "explain": [{"bin": "(120, 480]", "reference_share": 0.1, "window_share": 0.23}]}
    >>> for part in format_drift_line([(event, 0)], "warn").split("; "):
    ...     print(part)
    T ALERT m v1 csi[amount] over 5m: 0.31 > 0.25, noise level 0.04 at 5,400 events
    (120, 480]: 10% → 23% (was warn)
    >>> short = {**event, "window": "1m", "value": 0.4, "window_events": 1100, "explain": None}
    >>> print(format_drift_line([(short, 0), (event, 3)], "warn"))  # doctest: +NORMALIZE_WHITESPACE
    T ALERT m v1 csi[amount] over 1m, 5m: 0.4, 0.31 > 0.25, noise level 0.04 at 1,100, 5,400
    events; (120, 480]: 10% → 23% (was warn; 3 changes back and forth folded)
    """
    first = transitions[0][0]
    metric, severity = str(first["metric"]), str(first["severity"])
    events = [event for event, _ in transitions]
    threshold = float(first["threshold"])
    values = [float(event["value"]) for event in events]
    value_text, threshold_text = shown_apart(metric, values[0], threshold)
    rising = LEVELS[severity] > LEVELS[previous]
    compare = (">" if values[0] >= threshold else "<") if rising else "back past"
    line = (
        f"{first[stamp_field]} {MARKS.get(severity, severity)} {first['model']} "
        f"{first['model_version']} {subject_of(first)} over "
        f"{', '.join(str(event['window']) for event in events)}: "
        f"{_joined([value_text, *(shown(metric, v) for v in values[1:])])} {compare} "
        f"{_joined([threshold_text, *(shown(metric, float(e['threshold'])) for e in events[1:])])}"
    )
    noise = [float(e["critical_value"]) for e in events if e.get("critical_value") is not None]
    if noise:
        line += f", noise level {_joined([shown(metric, level) for level in noise])}"
    counts = [f"{int(event['window_events']):,}" for event in events]
    line += f" at {_joined(counts)} events"
    moved = next((e["explain"] for e in events if e.get("explain")), None)
    if moved:
        top = moved[0]
        line += (
            f"; {top['bin']}: {float(top['reference_share']):.0%} → "
            f"{float(top['window_share']):.0%}"
        )
    folded = sum(count for _, count in transitions)
    note = f"; {folded} change{'s' * (folded != 1)} back and forth folded" if folded else ""
    return line + f" (was {previous}{note})"


def _joined(texts: list[str]) -> str:
    """The texts of each window, or one text when every window reads the same."""
    return texts[0] if len(set(texts)) == 1 else ", ".join(texts)


class ManualClock:
    """A clock that says what it is told: the fake clock of tests, event time offline."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class _WindowShown:
    """What the reader has seen of one (model, version, metric, feature, window)."""

    severity: str
    seen: set[str]
    quiet_until: float
    folded: int = 0
    pending: Event | None = None
    #: The group holding this window's transition not printed yet (it may be gone).
    held: tuple[Any, ...] | None = None


@dataclass
class _Group:
    """Transitions of one line being held to collect their other windows."""

    due_at: float
    previous: str
    transitions: list[tuple[Event, int]] = field(default_factory=list)


class DriftLines:
    """Drift events in, readable lines out: grouped over windows, damped against flapping.

    Parameters
    ----------
    clock
        Seconds, monotonic (``time.monotonic`` live, a :class:`ManualClock` in tests).
    hold_s
        How long a transition waits for the same transition in other windows.
    quiet_s
        How long after a printed line a return to a severity seen on that window is folded.
    stamp_field
        The event's time at the start of a line: ``detected_at``, or ``window_end`` offline.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        hold_s: float = 1.0,
        quiet_s: float = 30.0,
        stamp_field: str = "detected_at",
    ) -> None:
        if hold_s < 0 or quiet_s < 0:
            raise ValueError("hold_s and quiet_s must not be negative")
        self.clock = clock
        self.hold_s = hold_s
        self.quiet_s = quiet_s
        self.stamp_field = stamp_field
        self._windows: dict[tuple[Any, ...], _WindowShown] = {}
        self._groups: dict[tuple[Any, ...], _Group] = {}

    def add(self, event: Event) -> None:
        """Take one drift event (a dict as produced to the drift-events topic)."""
        now = self.clock()
        self._release_quiet(now)
        key = (event["model"], event["model_version"], event["metric"], event.get("feature"))
        window_key = (*key, event["window"])
        severity = str(event["severity"])
        state = self._windows.get(window_key)
        if state is None:
            previous = str(event["previous_severity"])
            state = _WindowShown(previous, {previous}, now)
            self._windows[window_key] = state
        if severity == state.severity and now >= state.quiet_until:
            return  # a copy of what was shown (drift events are delivered at least once)
        if now < state.quiet_until and severity in state.seen:
            state.folded += state.pending is not None
            state.pending = None if severity == state.severity else event
            state.folded += state.pending is None
            return
        self._show(window_key, state, event, now)

    def due(self) -> list[str]:
        """Lines whose hold is over, in the order they fell due."""
        now = self.clock()
        self._release_quiet(now)
        ready = [key for key, group in self._groups.items() if group.due_at <= now]
        return self._lines([self._groups.pop(key) for key in ready])

    def flush(self) -> list[str]:
        """Every line still held, and every folded change that differs from what was shown."""
        for window_key, state in self._windows.items():
            if state.pending is not None:
                self._show(window_key, state, state.pending, self.clock())
        lines = self._lines(list(self._groups.values()))
        self._groups.clear()
        return lines

    def _release_quiet(self, now: float) -> None:
        """Show the last folded change of each window whose quiet period is over."""
        for window_key, state in self._windows.items():
            if state.pending is not None and now >= state.quiet_until:
                self._show(window_key, state, state.pending, now)

    def _show(
        self, window_key: tuple[Any, ...], state: _WindowShown, event: Event, now: float
    ) -> None:
        """Commit ``event`` to be printed: into its group, and into what the reader has seen.

        A transition of this window still held unprinted is taken back and folded
        into this one, so a window's lines never come out of order.
        """
        superseded = state.pending is not None and state.pending is not event
        previous, folded = state.severity, state.folded + superseded
        held = self._take_held(window_key, state)
        if held is not None:
            previous, folded = held[0], folded + held[1] + 1
        severity = str(event["severity"])
        if now >= state.quiet_until:
            state.seen = set()
        state.seen |= {previous, severity}
        state.severity, state.folded, state.pending = severity, 0, None
        state.quiet_until = now + self.quiet_s
        if severity == previous:  # back to what the reader saw before it was printed
            state.folded, state.held = folded + 1, None
            return
        state.held = (*window_key[:4], event.get("window_end"), previous, severity)
        group = self._groups.setdefault(state.held, _Group(now + self.hold_s, previous))
        group.transitions.append((event, folded))

    def _take_held(
        self, window_key: tuple[Any, ...], state: _WindowShown
    ) -> tuple[str, int] | None:
        """Remove this window's unprinted transition: the severity it came from, its folds."""
        group = self._groups.get(state.held) if state.held is not None else None
        if group is None:
            return None
        for index, (event, folded) in enumerate(group.transitions):
            if event["window"] == window_key[4]:
                del group.transitions[index]
                if not group.transitions:
                    del self._groups[state.held]  # type: ignore[arg-type]
                return group.previous, folded
        return None

    def _lines(self, groups: list[_Group]) -> list[str]:
        """The lines of ``groups`` in the order they fell due, each with its windows in order."""
        lines = []
        for group in sorted(groups, key=lambda group: group.due_at):
            transitions = sorted(
                group.transitions, key=lambda t: parse_duration_s(t[0]["window"], "window")
            )
            lines.append(format_drift_line(transitions, group.previous, self.stamp_field))
        return lines


def epoch_s(iso: str) -> float:
    """Seconds since the epoch of an ISO-8601 UTC time with a ``Z``.

    >>> epoch_s("2023-11-14T22:13:20Z")
    1700000000.0
    """
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> int:
    """Read drift events (JSON Lines) on stdin, print readable lines on stdout."""
    clock = ManualClock()
    lines = DriftLines(clock, stamp_field="window_end")
    for raw in sys.stdin.buffer:
        if not raw.strip():
            continue
        event = orjson.loads(raw)
        clock.now = epoch_s(str(event["window_end"]))
        for text in lines.due():
            print(text)
        lines.add(event)
    for text in [*lines.due(), *lines.flush()]:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
