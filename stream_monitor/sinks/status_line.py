"""The status line: one INFO line every ``metrics.status_interval_s`` while the service runs.

It reads the :class:`~stream_monitor.snapshot.Snapshot` that ``/metrics``
serves at that moment, so each count it prints is a metric summed over its labels:

- events in total: ``stream_monitor_events_total``; events/s: its increase
  since the previous line divided by the seconds between the two snapshots;
- invalid events: ``stream_monitor_invalid_events_total``, by reason;
- lag: ``stream_monitor_consumer_lag``, summed over the assigned partitions;
- a model version judged: its series at warn and alert in ``stream_monitor_drift_status``.

A version not judged yet shows its warm-up and when its first verdict can come
(:mod:`stream_monitor.verdict_progress`, not exported to ``/metrics``). At most
:data:`MAX_LISTED` models and versions are named, so the line stays one line.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from stream_monitor.snapshot import Snapshot

if TYPE_CHECKING:
    from stream_monitor.verdict_progress import VersionProgress

log = logging.getLogger(__name__)

#: Models (by traffic) and model versions named in one line; the rest are counted.
MAX_LISTED = 5
#: Reasons of invalid events named in one line (the largest counts).
MAX_REASONS = 3


class StatusLine:
    """Logs a status line at most every ``interval_s`` seconds (0: never).

    ``models`` are the configured model names (those without events are named
    as such); ``now_s`` (monotonic seconds) is when counting starts.
    """

    def __init__(self, models: Sequence[str], interval_s: float, now_s: float) -> None:
        self.models = tuple(models)
        self.interval_s = interval_s
        self._last_s = now_s
        self._last_events: Mapping[tuple[str, str], int] = {}

    def due(self, now_s: float) -> bool:
        """Whether a line is due at ``now_s``."""
        return self.interval_s > 0 and now_s - self._last_s >= self.interval_s

    def report(self, snapshot: Snapshot, progress: Iterable[VersionProgress], now_s: float) -> str:
        """Log the line for ``snapshot`` taken at ``now_s``; the next rates count from it."""
        text = status_text(snapshot, self._last_events, now_s - self._last_s, progress, self.models)
        self._last_s, self._last_events = now_s, snapshot.events_total
        log.info("%s", text)
        return text


def status_text(
    snapshot: Snapshot,
    previous_events: Mapping[tuple[str, str], int],
    elapsed_s: float,
    progress: Iterable[VersionProgress],
    models: Sequence[str] = (),
) -> str:
    """The status line of ``snapshot``, with rates since ``previous_events`` ``elapsed_s`` ago.

    >>> snapshot = Snapshot(events_total={("fraud", "v1"): 500, ("price", "v1"): 300},
    ...     invalid_total={"late": 2, "bad_json": 0}, consumer_lag={("events", 0): 37})
    >>> status_text(snapshot, {("fraud", "v1"): 100}, 10.0, [])
    'status: 70 events/s (fraud 40/s, price 30/s), 800 events in total, 2 invalid events (2 late), lag 37 events'
    >>> status_text(snapshot, snapshot.events_total, 10.0, [], ["fraud", "price", "ranker"])
    'status: no events in the last 10 s (800 events in total), 2 invalid events (2 late), lag 37 events; no events yet from ranker'
    """  # noqa: E501
    elapsed_s = max(elapsed_s, 1e-3)
    rates = {
        key: max(0, count - previous_events.get(key, 0)) / elapsed_s
        for key, count in snapshot.events_total.items()
    }
    parts = [_traffic(snapshot, rates, elapsed_s), _invalid(snapshot.invalid_total)]
    parts.append(
        f"lag {sum(snapshot.consumer_lag.values()):,} events"
        if snapshot.consumer_lag
        else "lag not reported yet"
    )
    if snapshot.broker_up is False:
        parts.append("broker unreachable")
    sections = [", ".join(parts), *_versions(snapshot, rates, progress)]
    seen = {model for model, _ in snapshot.events_total}
    silent = [model for model in models if model not in seen]
    if silent:
        sections.append(f"no events yet from {_capped(silent, MAX_LISTED, 'models')}")
    return "status: " + "; ".join(sections)


def _traffic(snapshot: Snapshot, rates: Mapping[tuple[str, str], float], elapsed_s: float) -> str:
    total = sum(snapshot.events_total.values())
    rate = sum(rates.values())
    if rate <= 0:
        return f"no events in the last {elapsed_s:.0f} s ({total:,} events in total)"
    by_model: dict[str, float] = {}
    for (model, _), value in rates.items():
        by_model[model] = by_model.get(model, 0.0) + value
    busiest = sorted(by_model.items(), key=lambda item: (-item[1], item[0]))
    listed = [f"{model} {_rate(value)}/s" for model, value in busiest if value > 0]
    return (
        f"{_rate(rate)} events/s ({_capped(listed, MAX_LISTED, 'models')}), "
        f"{total:,} events in total"
    )


def _invalid(invalid_total: Mapping[str, int]) -> str:
    total = sum(invalid_total.values())
    if not total:
        return "0 invalid events"
    reasons = sorted(
        ((reason, count) for reason, count in invalid_total.items() if count),
        key=lambda item: (-item[1], item[0]),
    )
    named = [f"{count:,} {reason}" for reason, count in reasons]
    return f"{total:,} invalid events ({_capped(named, MAX_REASONS, 'reasons')})"


def _versions(
    snapshot: Snapshot,
    rates: Mapping[tuple[str, str], float],
    progress: Iterable[VersionProgress],
) -> list[str]:
    """One part per judged model version: pending ones first, then by traffic."""
    severities: dict[tuple[str, str], Counter[str]] = {}
    for key, severity in snapshot.severities.items():
        severities.setdefault((key.model, key.version), Counter())[severity] += 1
    rows = []
    for version in progress:
        if not version.judging:
            continue
        name = (version.model, version.version)
        rate = rates.get(name, 0.0)
        counted = severities.get(name)
        text = _judged(version, counted) if counted else _pending(version, rate)
        rows.append((counted is not None, -rate, name, text))
    rows.sort()
    texts = [text for *_, text in rows]
    if len(texts) > MAX_LISTED:
        texts = [*texts[:MAX_LISTED], f"+{len(texts) - MAX_LISTED} more model versions"]
    return texts


def _judged(version: VersionProgress, severities: Counter[str]) -> str:
    """``m v1 judged: 2 of 48 series at alert, 1 at warn`` (or all ok)."""
    name, total = f"{version.model} {version.version}", sum(severities.values())
    raised = [(level, severities[level]) for level in ("alert", "warn") if severities[level]]
    if not raised:
        return f"{name} judged: all {total:,} series ok"
    (first, count), *rest = raised
    more = "".join(f", {n:,} at {level}" for level, n in rest)
    return f"{name} judged: {count:,} of {total:,} series at {first}{more}"


def _pending(version: VersionProgress, rate_per_s: float) -> str:
    """Warm-up, and when the first verdict can come (or what it waits for)."""
    name = f"{version.model} {version.version}"
    if version.warmup is not None:
        collected, needed = version.warmup
        name += f" warming up {collected:,}/{needed:,} reference events,"
    verdict = version.first_verdict(rate_per_s)
    if verdict.eta_s is not None:
        return f"{name} first {verdict.window} verdict in ~{_duration(verdict.eta_s)}"
    if rate_per_s <= 0:
        return f"{name} first verdict waits for {verdict.more_events:,} more events"
    return (
        f"{name} first verdict needs {version.min_window_events or 0:,} events in a "
        f"{verdict.window} window (holds {version.window_events:,})"
    )


def _capped(items: Sequence[str], limit: int, what: str) -> str:
    """``items`` joined, the ones past ``limit`` counted as ``+N more <what>``."""
    shown = list(items[:limit])
    if len(items) > limit:
        shown.append(f"+{len(items) - limit} more {what}")
    return ", ".join(shown)


def _rate(per_s: float) -> str:
    """Events a second: whole numbers from 10 up, two significant digits below.

    >>> _rate(812.4), _rate(5.6), _rate(0.04)
    ('812', '5.6', '0.04')
    """
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}"


def _duration(seconds: float) -> str:
    """``40 s``, ``3 min``, ``2.5 h``.

    >>> _duration(39.6), _duration(170), _duration(9000)
    ('40 s', '3 min', '2.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
