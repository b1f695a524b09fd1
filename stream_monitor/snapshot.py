"""What the sinks read: an immutable snapshot of the engine's counters, windows and severities.

The engine builds a :class:`Snapshot` off the scrape thread after each
evaluation; the Prometheus collector and the service read nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class SeriesKey(NamedTuple):
    """What one severity belongs to (a tuple: hashed and compared in C, it keys every judgement)."""

    model: str
    version: str
    metric: str
    feature: str | None
    window: str


@dataclass(frozen=True)
class StabilityStats:
    """Stability statistics of one window."""

    events: int
    psi: float
    csi: dict[str, float]
    null_ratio: dict[str, float]
    new_category_ratio: dict[str, float]


@dataclass(frozen=True)
class LatencyHistogram:
    """A Prometheus histogram: cumulative ``(le, count)`` pairs ending with ``+Inf``, and the sum.

    ``buckets`` fits ``prometheus_client``'s ``HistogramMetricFamily.add_metric``
    once each bound is formatted as a string (``float("inf")`` as ``"+Inf"``).
    """

    buckets: list[tuple[float, float]]
    count: float
    sum_s: float


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one window: events with a latency and quantiles in seconds."""

    count: int
    quantiles_s: dict[float, float]
    sum_s: float = 0.0


@dataclass(frozen=True)
class ConfusionMatrix:
    """A classifier's window counts of each (actual, predicted) pair of classes.

    ``counts[i][j]`` counts the labeled events of class ``classes[i]`` predicted as
    ``classes[j]`` (rows actual, columns predicted, as scikit-learn's
    ``confusion_matrix``). Binary models have the classes ``"0"`` and ``"1"`` at
    their threshold; multiclass models their configured or reference classes and
    ``"other"``, with each class's precision and recall.
    """

    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    #: Per class, multiclass only (empty for binary models); 0 where undefined.
    precision: Mapping[str, float] = field(default_factory=dict)
    recall: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowSample:
    """The statistics of one window of one model version at the last evaluation."""

    model: str
    version: str
    window: str
    start_s: float
    end_s: float
    throughput_per_s: float
    stats: StabilityStats
    quality: Mapping[str, float]
    latency: LatencyStats
    detections: float
    #: Classification models only.
    confusion: ConfusionMatrix | None = None
    #: Binary models with a calibration map: the quality expected from every event's score.
    estimate: Mapping[str, float] = field(default_factory=dict)
    #: The estimate minus the realized value, per metric the window's labels give.
    estimation_error: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """What one live model version is compared with, and its config's ``metadata:`` block."""

    model: str
    version: str
    #: The baseline's digest (``sha256:...``), or ``warmup:<n>``.
    reference: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class VersionComparison:
    """A challenger against its champion in one window (``compare_versions``)."""

    model: str
    #: The challenger.
    version: str
    champion: str
    window: str
    #: PSI of the challenger's prediction against the champion's, on the reference's bins.
    psi: float
    csi: Mapping[str, float]
    #: Challenger minus champion, per quality metric both windows have.
    quality_delta: Mapping[str, float]


@dataclass(frozen=True)
class Snapshot:
    """Everything ``/metrics`` shows, as plain Python values (built off the scrape thread)."""

    events_total: Mapping[tuple[str, str], int] = field(default_factory=dict)
    invalid_total: Mapping[str, int] = field(default_factory=dict)
    drift_events_total: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    windows: tuple[WindowSample, ...] = ()
    severities: Mapping[SeriesKey, str] = field(default_factory=dict)
    thresholds: Mapping[SeriesKey, tuple[float, float]] = field(default_factory=dict)
    latency_histograms: Mapping[tuple[str, str], LatencyHistogram] = field(default_factory=dict)
    label_joins: Mapping[str, int] = field(default_factory=dict)
    #: The alert-level critical value of every tested series (see the significance rules).
    critical_values: Mapping[SeriesKey, float] = field(default_factory=dict)
    windows_skipped_total: Mapping[tuple[str, str], int] = field(default_factory=dict)
    consumer_lag: Mapping[tuple[str, int], int] = field(default_factory=dict)
    broker_up: bool | None = None
    dead_letter_failures: Mapping[str, int] = field(default_factory=dict)
    dead_letters_dropped: int = 0
    drift_events_dropped: int = 0
    model_info: tuple[ModelInfo, ...] = ()
    #: Models that compare versions: every challenger against its champion, per window.
    version_comparisons: tuple[VersionComparison, ...] = ()
    #: (model, version, window) -> the version's share of the model's events in the window.
    traffic_shares: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
