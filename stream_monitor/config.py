"""Monitor configuration: the plain, typed dataclasses the rest of the monitor reads.

They are built and validated from one YAML file by
:mod:`stream_monitor.config_file`; every problem found is a :class:`ConfigError`.
:func:`warn_alert_levels` is the check of a ``{warn, alert}`` pair that the
sections read by modules of their own share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("regression", "binary", "multiclass")
FEATURE_TYPES = ("numeric", "categorical")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the problem."""


@dataclass(frozen=True)
class Thresholds:
    """Warn and alert levels of one drift metric; ``direction`` says which side is bad."""

    warn: float
    alert: float
    direction: str = "above"


def warn_alert_levels(
    value: Any, key: str, default: Thresholds, maximum: float = math.inf
) -> Thresholds:
    """A ``{warn, alert}`` mapping at ``key`` (``default`` for what it leaves out): numbers
    within [0, ``maximum``], alert at least warn."""
    if value is None:
        return Thresholds(default.warn, default.alert)
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping {{warn: ..., alert: ...}}, got {value!r}")
    for name in value:
        if name not in ("warn", "alert"):
            raise ConfigError(f"{key}.{name}: unknown key (expected warn or alert)")
    bounds = "of at least 0" if maximum == math.inf else f"within [0, {maximum:g}]"
    levels = {}
    for name in ("warn", "alert"):
        level = value.get(name, getattr(default, name))
        if (
            isinstance(level, bool)
            or not isinstance(level, int | float)
            or not 0 <= level <= maximum
        ):
            raise ConfigError(f"{key}.{name}: expected a number {bounds}, got {level!r}")
        levels[name] = float(level)
    if levels["alert"] < levels["warn"]:
        raise ConfigError(
            f"{key}.alert: alert level {levels['alert']:g} is less severe than "
            f"warn {levels['warn']:g}"
        )
    return Thresholds(levels["warn"], levels["alert"])


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and judging rules shared by all models (a model may override them).

    A severity needs the value past its warn/alert line and past the critical
    value of its sampling noise. The critical values come from a budget of false
    alerts (and, separately, warnings) per model per day, spread over the
    model's tests. ``persistence_panes`` consecutive closed panes must agree
    before a severity rises. ``min_window_events`` None: what the prediction's
    bins need, 5 events each. ``min_expected_per_bin`` None: sparse bins are
    merged for the test until each expects enough events for the chi-square
    approximation at the test's level (at least 5).
    """

    min_window_events: int | None = None
    epsilon: float = 1e-4
    false_alerts_per_day: float = 0.1
    false_warnings_per_day: float = 1.0
    persistence_panes: int = 1
    min_expected_per_bin: float | None = None
    psi: Thresholds = Thresholds(0.1, 0.25)
    csi: Thresholds = Thresholds(0.1, 0.25)
    null_ratio: Thresholds = Thresholds(0.05, 0.2)
    new_category_ratio: Thresholds = Thresholds(0.05, 0.2)


@dataclass(frozen=True)
class QualityConfig:
    """Performance-drift rules: how far quality may fall from the reference's."""

    min_labeled_events: int = 200
    rules: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "auc": (0.05, 0.10),
            "accuracy": (0.05, 0.10),
            "f1": (0.05, 0.10),
            "r2": (0.05, 0.10),
            "rmse": (0.2, 0.5),
            "mae": (0.2, 0.5),
        }
    )
    latency_p99_ms: tuple[float, float] | None = None


@dataclass(frozen=True)
class LabelsConfig:
    """The delayed-label join store (README, Labels and model quality)."""

    ttl_s: float = 3600.0
    max_entries: int = 200_000
    clock: str = "event"
    join: bool | None = None


@dataclass(frozen=True)
class ConceptDriftConfig:
    """River's online detector on each model's error stream."""

    detector: str = "adwin"
    params: dict[str, Any] = field(default_factory=dict)
    chunk: int = 32


@dataclass(frozen=True)
class FieldMap:
    """Where each event field is read from: a key or a dotted path (README, Inference events)."""

    event_id: str = "event_id"
    model: str = "model"
    model_version: str = "model_version"
    timestamp: str = "timestamp"
    features: str = "features"
    prediction: str = "prediction"
    probabilities: str = "probabilities"
    label: str = "label"
    latency_ms: str = "latency_ms"


@dataclass(frozen=True)
class ReferenceConfig:
    """What a model's windows are compared with: a baseline file, or its first events."""

    baseline: str | None = None
    warmup_events: int = 1000


@dataclass(frozen=True)
class CompareVersionsConfig:
    """Champion against challengers: which version is the champion and the lines of each test.

    ``champion`` ``auto``: the version with the most events in each window.
    ``quality``: metric -> (warn, alert) of a challenger's shortfall, absolute
    for a drop metric (``auc``), relative to the champion's value for an error
    (``rmse``).
    """

    champion: str = "auto"
    psi: Thresholds = Thresholds(0.1, 0.25)
    csi: Thresholds = Thresholds(0.1, 0.25)
    quality: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class EstimationConfig:
    """Quality estimated from the scores before labels arrive (binary models).

    ``min_labeled_per_bin``: labeled reference events each calibration group
    holds at least. ``error``: (warn, alert) of the absolute difference between
    an estimated metric and its realized value. The estimate's tests have their
    own false-alert budgets, so that they do not move the other tests' lines.
    """

    enabled: bool = True
    min_labeled_per_bin: int = 100
    error: tuple[float, float] = (0.05, 0.10)
    false_alerts_per_day: float = 0.02
    false_warnings_per_day: float = 0.2


@dataclass(frozen=True)
class ModelConfig:
    """One monitored model: its task, features, reference and descriptive metadata."""

    name: str
    task: str
    features: dict[str, str]
    reference: ReferenceConfig = ReferenceConfig()
    bins: int = 10
    top_k: int = 50
    threshold: float = 0.5
    classes: tuple[str, ...] = ()
    score_bins: int = 1000
    drift: DriftConfig = DriftConfig()
    quality: QualityConfig = QualityConfig()
    #: The ``metadata:`` block (see :mod:`stream_monitor.model_metadata`): key -> short string.
    metadata: dict[str, str] = field(default_factory=dict)
    #: ``compare_versions:`` (see :mod:`stream_monitor.versions`); None: versions not compared.
    compare_versions: CompareVersionsConfig | None = None
    #: ``estimation:`` (see :mod:`stream_monitor.estimation`), binary models only.
    estimation: EstimationConfig = EstimationConfig()

    @property
    def prediction_type(self) -> str:
        """``categorical`` for multiclass models (classes are compared), else ``numeric``."""
        return "categorical" if self.task == "multiclass" else "numeric"


@dataclass(frozen=True)
class WindowConfig:
    """Event-time panes and the sliding windows built from them (README, Windows)."""

    pane_s: float = 60.0
    sizes: dict[str, float] = field(
        default_factory=lambda: {"5m": 300.0, "1h": 3600.0, "24h": 86400.0}
    )
    allowed_lateness_s: float = 300.0
    max_future_s: float = 3600.0
    idle_timeout_s: float = 60.0
    #: How far judging may fall behind the newest event before windows are given up (at least
    #: the largest window plus the allowed lateness): partitions read unevenly hold panes open.
    max_unjudged_s: float = 86400.0


@dataclass(frozen=True)
class TopicConfig:
    """Kafka topic names."""

    events: str = "inference-events"
    labels: str | None = None
    drift_events: str = "drift-events"
    dead_letter: str | None = None
    changelog: str | None = None
    partials: str | None = None


@dataclass(frozen=True)
class KafkaConfig:
    """Kafka client settings; ``client`` is passed to librdkafka for every client (SASL/SSL).

    ``dead_letter_max_bytes`` is the dead-letter producer's ``message.max.bytes``: a
    dead letter that would not fit is cut to fit. A dead letter whose delivery fails
    is sent again up to ``dead_letter_retries`` times, then dropped.
    """

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "stream-monitor"
    topics: TopicConfig = TopicConfig()
    client: dict[str, Any] = field(default_factory=dict)
    consumer: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    assignment_strategy: str = "cooperative-sticky"
    session_timeout_ms: int = 45000
    max_poll_interval_ms: int = 300000
    auto_offset_reset: str = "earliest"
    batch_size: int = 2000
    poll_timeout_s: float = 0.5
    commit_interval_s: float = 5.0
    startup_timeout_s: float = 30.0
    statistics_interval_ms: int = 5000
    checkpoints: bool = True
    partials_partitions: int = 0
    dead_letter_max_bytes: int = 1_000_000
    dead_letter_retries: int = 3

    @property
    def changelog_topic(self) -> str:
        """The compacted topic holding state checkpoints."""
        return self.topics.changelog or f"{self.group_id}-changelog"

    @property
    def partials_topic(self) -> str:
        """The compacted topic joining ingest and aggregate replicas (scale-out)."""
        return self.topics.partials or f"{self.group_id}-partials"

    @property
    def aggregate_group_id(self) -> str:
        """The consumer group of aggregate replicas."""
        return f"{self.group_id}-aggregate"


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint, and the status line that logs its main numbers."""

    host: str = "0.0.0.0"
    port: int = 9108
    #: Seconds between status lines (0: none); see :mod:`stream_monitor.sinks.status_line`.
    status_interval_s: float = 10.0


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on input and state, so memory stays flat whatever the traffic."""

    max_message_bytes: int = 1_048_576
    max_batch_events: int = 10_000
    max_versions_per_model: int = 20
    max_known_categories: int = 10_000


@dataclass(frozen=True)
class MonitorConfig:
    """The whole monitor configuration."""

    models: tuple[ModelConfig, ...]
    kafka: KafkaConfig = KafkaConfig()
    metrics: MetricsConfig = MetricsConfig()
    windows: WindowConfig = WindowConfig()
    drift: DriftConfig = DriftConfig()
    fields: FieldMap = FieldMap()
    limits: LimitsConfig = LimitsConfig()
    quality: QualityConfig = QualityConfig()
    labels: LabelsConfig = LabelsConfig()
    concept_drift: ConceptDriftConfig = ConceptDriftConfig()
    evaluation_interval_s: float = 1.0
    base_dir: Path = Path(".")

    def model(self, name: str) -> ModelConfig | None:
        """The model called ``name``, or None when it is not configured."""
        for model in self.models:
            if model.name == name:
                return model
        return None

    @property
    def joins_labels(self) -> bool:
        """Whether predictions wait for delayed labels (default: when a labels topic is set)."""
        if self.labels.join is not None:
            return self.labels.join
        return self.kafka.topics.labels is not None

    def resolve_path(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.base_dir / candidate
