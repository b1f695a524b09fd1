"""Judging: every rule of when something alerts, severities and drift events.

:func:`window_checks` lists what a window is judged on, each value with its
thresholds (fixed lines, the null-ratio shift from the reference, quality
relative to the reference's). Every (model, version, metric, feature, window)
has a severity: ``ok``, ``warn`` or ``alert``. Judging a window's value
against its thresholds moves that severity; a drift event is emitted only when
it changes, with an id derived from what changed, so the same input always
gives the same ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from stream_monitor.config import ModelConfig, Thresholds
from stream_monitor.metric_names import (
    CONCEPT_DRIFT,
    CSI,
    ESTIMATED_METRICS,
    ESTIMATED_PREFIX,
    ESTIMATION_ERROR,
    LATENCY_P99,
    NEW_CATEGORY_RATIO,
    NULL_RATIO,
    PSI,
    RISE_METRICS,
    STABILITY_METRICS,
    VERSION_CSI,
    VERSION_PREFIX,
    VERSION_PSI,
)
from stream_monitor.snapshot import SeriesKey, WindowSample

if TYPE_CHECKING:
    from stream_monitor.significance import Evidence, SignificanceLevels
    from stream_monitor.summaries.reference import Reference

SEVERITIES = ("ok", "warn", "alert")
LEVELS = {name: level for level, name in enumerate(SEVERITIES)}

#: A concept-drift detection in the window is an alert.
DETECTION = Thresholds(1.0, 1.0)


class Check(NamedTuple):
    """One judged value, its practical thresholds and, where a test applies, its noise."""

    metric: str
    feature: str | None
    value: float
    thresholds: Thresholds
    evidence: Evidence | None = None


def drift_metrics(model: ModelConfig) -> list[str]:
    """Every metric a drift event of ``model`` can name."""
    metrics = [*STABILITY_METRICS, CONCEPT_DRIFT, *model.quality.rules]
    if model.quality.latency_p99_ms is not None:
        metrics.append(LATENCY_P99)
    if model.compare_versions is not None:
        metrics += [VERSION_PSI, VERSION_CSI]
        metrics += [VERSION_PREFIX + metric for metric in model.compare_versions.quality]
    estimated = estimated_rules(model)
    metrics += [ESTIMATED_PREFIX + metric for metric in estimated]
    return metrics + ([ESTIMATION_ERROR] if estimated else [])


def estimated_rules(model: ModelConfig) -> tuple[str, ...]:
    """The quality rules of ``model`` also judged on its label-free estimate (binary models).

    >>> estimated_rules(ModelConfig("m", "binary", {"x": "numeric"}))
    ('auc', 'accuracy', 'f1')
    """
    if model.task != "binary" or not model.estimation.enabled:
        return ()
    return tuple(metric for metric in ESTIMATED_METRICS if metric in model.quality.rules)


def window_checks(
    model: ModelConfig,
    reference: Reference,
    quality_reference: Mapping[str, float],
    sample: WindowSample,
    concept_active: bool,
    noise: WindowNoise,
) -> list[Check]:
    """Everything one window is judged on, each value with its thresholds and noise.

    Stability needs ``noise.min_events`` events; concept drift is judged while
    the window holds a detection or its series is not ``ok``
    (``concept_active``), so that it resolves.
    """
    checks = (
        stability_checks(model, reference, sample, noise.stability)
        if sample.stats.events >= noise.min_events
        else []
    )
    checks += quality_checks(model, quality_reference, sample, noise)
    if sample.detections > 0 or concept_active:
        checks.append(Check(CONCEPT_DRIFT, None, sample.detections, DETECTION))
    return checks


def stability_checks(
    model: ModelConfig,
    reference: Reference,
    sample: WindowSample,
    evidence: Mapping[str | None, Evidence],
) -> list[Check]:
    """PSI and CSI (with their noise), null and new-category ratios, with their thresholds.

    The null ratio is judged as a rise over the reference's own null ratio.
    """
    drift = model.drift
    stats = sample.stats
    checks = [Check(PSI, None, stats.psi, drift.psi, evidence.get(None))]
    checks += [
        Check(CSI, name, value, drift.csi, evidence.get(name)) for name, value in stats.csi.items()
    ]
    for name, value in stats.null_ratio.items():
        base = reference.features[name].null_ratio
        shifted = Thresholds(base + drift.null_ratio.warn, base + drift.null_ratio.alert)
        checks.append(Check(NULL_RATIO, name, value, shifted))
    checks += [
        Check(NEW_CATEGORY_RATIO, name, value, drift.new_category_ratio)
        for name, value in stats.new_category_ratio.items()
    ]
    return checks


def quality_checks(
    model: ModelConfig,
    quality_reference: Mapping[str, float],
    sample: WindowSample,
    noise: WindowNoise,
) -> list[Check]:
    """Latency p99, and quality metrics against the reference's on windows with enough labels.

    A drop (``auc``, ``f1``, …) is judged as an absolute difference, a rise of an
    error (``rmse``, ``mae``, …) as a relative one.
    """
    rules = model.quality
    checks: list[Check] = []
    if rules.latency_p99_ms is not None and sample.latency.count >= noise.min_events:
        warn, alert = (level / 1000.0 for level in rules.latency_p99_ms)
        checks.append(
            Check(LATENCY_P99, None, sample.latency.quantiles_s[0.99], Thresholds(warn, alert))
        )
    if sample.quality.get("labeled", 0) < rules.min_labeled_events:
        return checks
    for metric, (warn, alert) in rules.rules.items():
        value, base = sample.quality.get(metric), quality_reference.get(metric)
        if value is None or base is None or not math.isfinite(base):
            continue
        if metric in RISE_METRICS:
            thresholds = Thresholds(base * (1 + warn), base * (1 + alert))
        else:
            thresholds = Thresholds(base - warn, base - alert, "below")
        checks.append(Check(metric, None, value, thresholds, noise.quality.get(metric)))
    return checks


@dataclass(frozen=True)
class WindowNoise:
    """A window's sampling noise: per-test levels, the evidence of each test, min events."""

    levels: SignificanceLevels
    min_events: int
    stability: Mapping[str | None, Evidence]
    quality: Mapping[str, Evidence]


@dataclass(frozen=True)
class WindowInfo:
    """The window a value was computed on."""

    name: str
    start_s: float
    end_s: float
    events: int
    reference: str
    #: The model's ``metadata:`` block and the feature names its windows are judged on.
    metadata: Mapping[str, str] = field(default_factory=dict)
    features: tuple[str, ...] = ()


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
    #: Probability of a value at least this far from the reference with no change (None: no test).
    p_value: float | None = None
    #: The value the statistic had to pass to be told apart from sampling noise (None: no test).
    critical_value: float | None = None
    #: Events (labeled events for quality) in the reference the window was compared with.
    reference_events: int | None = None
    #: PSI/CSI: the bins with the largest contribution.
    explain: list[dict[str, Any]] | None = None
    #: Windows not judged since this series' model version last emitted (memory cap), or None.
    unjudged: list[dict[str, Any]] | None = None
    #: The model's ``metadata:`` block from the config (may be empty).
    metadata: dict[str, str] = field(default_factory=dict)
    #: The feature names the window was judged on.
    features: list[str] = field(default_factory=list)
    #: ``version_*`` metrics: the version compared against (absent from other events).
    champion: str | None = None
    #: ``estimated_*`` metrics: true, a label-free estimate (absent from other events).
    estimated: bool | None = None

    def to_json(self) -> bytes:
        """The event as the JSON value of a Kafka message."""
        return orjson.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The event as a dict (``champion`` only on ``version_*`` events, ``estimated`` only
        on ``estimated_*`` ones)."""
        found = asdict(self)
        for name in ("champion", "estimated"):
            if found[name] is None:
                del found[name]
        return found


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


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
    """The current severity of every judged series; emits an event on each change.

    A severity needs the value past its warn/alert line and, where a test
    applies, significant at that level (:class:`Evidence`). With
    ``persistence`` above 1 a severity rises only after that many consecutive
    judgments agree; it falls at once.
    """

    def __init__(self) -> None:
        self._severities: dict[SeriesKey, str] = {}
        self._thresholds: dict[SeriesKey, tuple[float, float]] = {}
        self._critical: dict[SeriesKey, float] = {}
        self._rising: dict[SeriesKey, int] = {}
        #: Severities restored from a checkpoint and not judged since.
        self._restored: set[SeriesKey] = set()

    def judge(
        self,
        key: SeriesKey,
        check: Check,
        window: WindowInfo,
        detected_at_s: float,
        levels: SignificanceLevels | None = None,
        persistence: int = 1,
    ) -> DriftEvent | None:
        """Record ``check`` for ``key``; a :class:`DriftEvent` when the severity changed."""
        thresholds, evidence = check.thresholds, check.evidence
        if self._restored:
            self._restored.discard(key)
        self._thresholds[key] = (thresholds.warn, thresholds.alert)
        severity = severity_of(check.value, thresholds)
        if evidence is not None and levels is not None:
            if severity != "ok":  # past a line: significant too? (a p-value only here)
                severity = min(severity, evidence.allowed(levels), key=LEVELS.__getitem__)
            critical = evidence.critical("alert")
            if critical is None:
                self._critical.pop(key, None)
            else:
                self._critical[key] = critical
        previous = self._severities.get(key, "ok")
        if LEVELS[severity] > LEVELS[previous]:
            self._rising[key] = rising = self._rising.get(key, 0) + 1
            if rising < persistence:
                self._severities[key] = previous
                return None
        if self._rising:
            self._rising.pop(key, None)
        self._severities[key] = severity
        if severity == previous:
            return None
        window_end = iso_utc(window.end_s)
        crossed = (
            severity if LEVELS[severity] > LEVELS[previous] else SEVERITIES[LEVELS[severity] + 1]
        )
        return DriftEvent(
            id=event_id(key, window_end, previous, severity),
            model=key.model,
            model_version=key.version,
            metric=key.metric,
            feature=key.feature,
            window=key.window,
            value=check.value,
            threshold=crossed_threshold(previous, severity, thresholds),
            severity=severity,
            previous_severity=previous,
            window_start=iso_utc(window.start_s),
            window_end=window_end,
            window_events=window.events,
            detected_at=iso_utc(detected_at_s),
            reference=window.reference,
            p_value=_finite(evidence.p_value) if evidence is not None else None,
            critical_value=evidence.critical(crossed) if evidence is not None else None,
            reference_events=evidence.reference_events if evidence is not None else None,
            explain=evidence.explain() if evidence is not None else None,
            metadata=dict(window.metadata),
            features=list(window.features),
            estimated=True if key.metric.startswith(ESTIMATED_PREFIX) else None,
        )

    def judge_window(
        self,
        model: str,
        version: str,
        checks: Sequence[Check],
        window: WindowInfo,
        detected_at_s: float,
        levels: SignificanceLevels | None = None,
        persistence: int = 1,
    ) -> list[DriftEvent]:
        """Judge every finite value of one window; the drift events of the changes."""
        events = []
        for check in checks:
            if not math.isfinite(check.value):
                continue
            key = SeriesKey(model, version, check.metric, check.feature, window.name)
            event = self.judge(key, check, window, detected_at_s, levels, persistence)
            if event is not None:
                events.append(event)
        return events

    def adopt(self, key: SeriesKey, severity: str, newer: bool = False) -> None:
        """Take a restored severity for a series this board has not judged yet.

        ``newer``: it comes from a checkpoint judged at least as far as the one
        restored before, so it also replaces a restored (never judged) severity.
        """
        if severity not in LEVELS:
            return
        if key not in self._severities or (newer and key in self._restored):
            self._severities[key] = severity
            self._restored.add(key)

    def severity(self, key: SeriesKey) -> str | None:
        """The severity of ``key`` (None before it was judged)."""
        return self._severities.get(key)

    def severities(self) -> dict[SeriesKey, str]:
        """Severity of every series judged so far."""
        return dict(self._severities)

    def thresholds(self) -> dict[SeriesKey, tuple[float, float]]:
        """The (warn, alert) levels last used for every series."""
        return dict(self._thresholds)

    def critical_values(self) -> dict[SeriesKey, float]:
        """The alert-level critical value last computed for every tested series."""
        return dict(self._critical)

    def forget(self, model: str, version: str) -> None:
        """Drop the series of a retired model version."""
        for key in [k for k in self._severities if k.model == model and k.version == version]:
            self._severities.pop(key, None)
            self._thresholds.pop(key, None)
            self._critical.pop(key, None)
            self._rising.pop(key, None)
            self._restored.discard(key)
