"""Thresholds, severities and drift events (SPEC section 4).

Every (model, version, metric, feature, window) has a severity: ``ok``,
``warn`` or ``alert``. Judging a window's value against its thresholds moves
that severity; a drift event is emitted only when it changes, with an id
derived from what changed, so the same input always gives the same ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from stream_monitor.config import Thresholds
from stream_monitor.snapshot import SeriesKey

SEVERITIES = ("ok", "warn", "alert")
LEVELS = {name: level for level, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class WindowInfo:
    """The window a value was computed on."""

    name: str
    start_s: float
    end_s: float
    events: int
    reference: str


@dataclass(frozen=True)
class DriftEvent:
    """One severity transition, as produced to the drift-events topic."""

    id: str
    model: str
    model_version: str
    metric: str
    feature: str | None
    window: str
    value: float
    threshold: float
    severity: str
    previous_severity: str
    window_start: str
    window_end: str
    window_events: int
    detected_at: str
    reference: str
    #: Windows not judged since this series' model version last emitted (memory cap), or None.
    unjudged: list[dict[str, Any]] | None = None

    def to_json(self) -> bytes:
        """The event as the JSON value of a Kafka message."""
        return orjson.dumps(asdict(self))

    def to_dict(self) -> dict[str, Any]:
        """The event as a dict."""
        return asdict(self)


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC with a ``Z`` suffix.

    >>> iso_utc(0)
    '1970-01-01T00:00:00Z'
    """
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if epoch_s % 1 else "seconds")
    return text.replace("+00:00", "Z")


def severity_of(value: float, thresholds: Thresholds) -> str:
    """The severity of ``value`` against absolute thresholds.

    >>> t = Thresholds(0.1, 0.25)
    >>> severity_of(0.05, t), severity_of(0.1, t), severity_of(0.3, t)
    ('ok', 'warn', 'alert')
    >>> severity_of(0.70, Thresholds(0.75, 0.70, "below"))
    'alert'
    """
    warn, alert = thresholds.warn, thresholds.alert
    if thresholds.direction == "above":
        return "alert" if value >= alert else "warn" if value >= warn else "ok"
    return "alert" if value <= alert else "warn" if value <= warn else "ok"


def crossed_threshold(previous: str, severity: str, thresholds: Thresholds) -> float:
    """The threshold a transition crossed: the new level's going up, the left one's going down."""
    levels = {1: thresholds.warn, 2: thresholds.alert}
    if LEVELS[severity] > LEVELS[previous]:
        return levels[LEVELS[severity]]
    return levels[LEVELS[severity] + 1]


def event_id(key: SeriesKey, window_end: str, previous: str, severity: str) -> str:
    """Deterministic id of a transition: same series, window end and change, same id."""
    text = "|".join(
        (
            key.model,
            key.version,
            key.metric,
            key.feature or "",
            key.window,
            window_end,
            previous,
            severity,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SeverityBoard:
    """The current severity of every judged series; emits an event on each change."""

    def __init__(self) -> None:
        self._severities: dict[SeriesKey, str] = {}
        self._thresholds: dict[SeriesKey, tuple[float, float]] = {}

    def judge(
        self,
        key: SeriesKey,
        value: float,
        thresholds: Thresholds,
        window: WindowInfo,
        detected_at_s: float,
    ) -> DriftEvent | None:
        """Record ``value`` for ``key``; a :class:`DriftEvent` when the severity changed."""
        self._thresholds[key] = (thresholds.warn, thresholds.alert)
        severity = severity_of(value, thresholds)
        previous = self._severities.get(key, "ok")
        self._severities[key] = severity
        if severity == previous:
            return None
        window_end = iso_utc(window.end_s)
        return DriftEvent(
            id=event_id(key, window_end, previous, severity),
            model=key.model,
            model_version=key.version,
            metric=key.metric,
            feature=key.feature,
            window=key.window,
            value=value,
            threshold=crossed_threshold(previous, severity, thresholds),
            severity=severity,
            previous_severity=previous,
            window_start=iso_utc(window.start_s),
            window_end=window_end,
            window_events=window.events,
            detected_at=iso_utc(detected_at_s),
            reference=window.reference,
        )

    def adopt(self, key: SeriesKey, severity: str) -> None:
        """Take a restored severity for a series this board has not judged yet."""
        if key not in self._severities and severity in LEVELS:
            self._severities[key] = severity

    def severity(self, key: SeriesKey) -> str | None:
        """The severity of ``key`` (None before it was judged)."""
        return self._severities.get(key)

    def severities(self) -> dict[SeriesKey, str]:
        """Severity of every series judged so far."""
        return dict(self._severities)

    def thresholds(self) -> dict[SeriesKey, tuple[float, float]]:
        """The (warn, alert) levels last used for every series."""
        return dict(self._thresholds)

    def forget(self, model: str, version: str) -> None:
        """Drop the series of a retired model version."""
        for key in [k for k in self._severities if k.model == model and k.version == version]:
            self._severities.pop(key, None)
            self._thresholds.pop(key, None)
