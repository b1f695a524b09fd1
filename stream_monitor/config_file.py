"""Reading the monitor configuration from one YAML file into :mod:`stream_monitor.config`.

Every error raised while loading is a :class:`~stream_monitor.config.ConfigError`
whose message starts with the dotted path of the offending key, e.g.
``models[0].features.amount: unknown feature type 'float'``.
``${VAR}`` and ``${VAR:-default}`` in string values are replaced from the
environment before validation, so secrets never need to be written in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from stream_monitor.compare_versions_config import with_compare_versions
from stream_monitor.config import (
    FEATURE_TYPES,
    TASKS,
    ConceptDriftConfig,
    ConfigError,
    DriftConfig,
    FieldMap,
    KafkaConfig,
    LabelsConfig,
    LimitsConfig,
    MetricsConfig,
    ModelConfig,
    MonitorConfig,
    QualityConfig,
    ReferenceConfig,
    Thresholds,
    TopicConfig,
    WindowConfig,
)
from stream_monitor.estimation_config import with_estimation
from stream_monitor.metric_names import DROP_METRICS, RISE_METRICS
from stream_monitor.model_metadata import parse_metadata

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SECRET_WORDS = ("password", "secret", "sasl.oauthbearer.config", "ssl.key")
#: Bounds of ``kafka.dead_letter_max_bytes``: room for the headers and a prefix of the
#: message, and librdkafka's own ceiling on ``message.max.bytes``.
DEAD_LETTER_BYTES_RANGE = (4096, 1_000_000_000)
#: What ``--role`` may be: one process doing everything, or a scaled-out replica.
ROLES = ("all", "ingest", "aggregate")


def substitute_env(text: str, environ: Mapping[str, str] | None = None, key: str = "") -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``text`` from the environment.

    >>> substitute_env("${HOST:-localhost}:${PORT}", {"PORT": "9092"})
    'localhost:9092'
    >>> substitute_env("${GROUP", {}, "kafka.group_id")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream_monitor.config.ConfigError: kafka.group_id: malformed ${...} in '${GROUP' ...
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{key or '<value>'}: environment variable {name} is not set")

    if "${" in _ENV_PATTERN.sub("", text):
        raise ConfigError(
            f"{key or '<value>'}: malformed ${{...}} in {text!r} "
            "(write ${VAR} or ${VAR:-default})"
        )
    return _ENV_PATTERN.sub(replace, text)


def _substitute_tree(node: Any, environ: Mapping[str, str] | None, key: str) -> Any:
    """Substitute the environment into every string of a parsed YAML tree.

    A value that is exactly one ``${VAR}`` takes the YAML type of what it expands to,
    so ``port: ${METRICS_PORT}`` stays an integer.
    """
    if isinstance(node, dict):
        return {
            k: _substitute_tree(v, environ, f"{key}.{k}" if key else str(k))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute_tree(v, environ, f"{key}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        expanded = substitute_env(node, environ, key)
        if _ENV_PATTERN.fullmatch(node.strip()):
            try:
                return yaml.safe_load(expanded) if expanded.strip() else expanded
            except yaml.YAMLError:
                return expanded
        return expanded
    return node


def parse_duration_s(value: Any, key: str) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h"``, ``"7d"``.

    >>> parse_duration_s("5m", "x"), parse_duration_s(30, "x")
    (300.0, 30.0)
    """
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_PATTERN.match(value.strip())):
        seconds = float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
    else:
        raise ConfigError(
            f"{key}: expected a duration such as 30, '90s', '5m' or '1h', got {value!r}"
        )
    if seconds <= 0:
        raise ConfigError(f"{key}: must be positive, got {value!r}")
    return seconds


class _Reader:
    """Reads one mapping of the YAML tree, tracking the key path for error messages."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or '<root>'}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def child(self, name: str) -> _Reader:
        return _Reader(self.get(name), self.key(name))

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.key(name)}: expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self.key(name)}: must be at least {minimum}, got {value!r}")
        return float(value)

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected an integer, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{self.key(name)}: must be at least {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self.key(name)}: must be at most {maximum}, got {value!r}")
        return value

    def string(self, name: str, default: str | None, *, required: bool = False) -> str | None:
        value = self.get(name, default)
        if value is None:
            if required:
                raise ConfigError(f"{self.key(name)}: is required")
            return None
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        return str(value)

    def duration(self, name: str, default: float) -> float:
        return parse_duration_s(self.get(name, default), self.key(name))

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.get(name, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self.key(name)}: expected a mapping, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.key(str(unknown[0]))}: unknown key")


def _interval_or_off(reader: _Reader, name: str, default: float) -> float:
    """A duration, or 0 (switched off).

    >>> _interval_or_off(_Reader({"every": "30s", "never": 0}, "x"), "every", 10.0)
    30.0
    >>> _interval_or_off(_Reader({"never": 0}, "x"), "never", 10.0)
    0.0
    """
    value = reader.get(name, default)
    if value == 0 and not isinstance(value, bool):
        return 0.0
    try:
        return parse_duration_s(value, reader.key(name))
    except ConfigError:
        raise ConfigError(
            f"{reader.key(name)}: expected a duration such as 10 or '30s', or 0 for none, "
            f"got {value!r}"
        ) from None


def _boolean(reader: _Reader, name: str, default: bool) -> bool:
    value = reader.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{reader.key(name)}: expected true or false, got {value!r}")
    return value


def _thresholds(reader: _Reader, name: str, default: Thresholds) -> Thresholds:
    sub = reader.child(name)
    warn = sub.number("warn", default.warn)
    alert = sub.number("alert", default.alert)
    direction = sub.string("direction", default.direction) or default.direction
    if direction not in ("above", "below"):
        raise ConfigError(f"{sub.key('direction')}: must be 'above' or 'below', got {direction!r}")
    if (direction == "above" and alert < warn) or (direction == "below" and alert > warn):
        raise ConfigError(
            f"{sub.key('alert')}: alert level {alert} is less severe than warn {warn}"
        )
    sub.finish()
    return Thresholds(warn, alert, direction)


def _budget(reader: _Reader, name: str, default: float) -> float:
    value = reader.number(name, default)
    if not 0 < value <= 1000:
        raise ConfigError(f"{reader.key(name)}: must be above 0 and at most 1000, got {value!r}")
    return value


def _drift(reader: _Reader, base: DriftConfig) -> DriftConfig:
    min_events = reader.get("min_window_events", base.min_window_events)
    result = DriftConfig(
        min_window_events=(
            None
            if min_events is None
            else reader.integer("min_window_events", base.min_window_events or 1, minimum=1)
        ),
        epsilon=reader.number("epsilon", base.epsilon, minimum=1e-12),
        false_alerts_per_day=_budget(reader, "false_alerts_per_day", base.false_alerts_per_day),
        false_warnings_per_day=_budget(
            reader, "false_warnings_per_day", base.false_warnings_per_day
        ),
        persistence_panes=reader.integer(
            "persistence_panes", base.persistence_panes, minimum=1, maximum=1440
        ),
        min_expected_per_bin=(
            None
            if reader.get("min_expected_per_bin", base.min_expected_per_bin) is None
            else reader.number("min_expected_per_bin", 5.0, minimum=1.0)
        ),
        psi=_thresholds(reader, "psi", base.psi),
        csi=_thresholds(reader, "csi", base.csi),
        null_ratio=_thresholds(reader, "null_ratio", base.null_ratio),
        new_category_ratio=_thresholds(reader, "new_category_ratio", base.new_category_ratio),
    )
    if result.false_warnings_per_day < result.false_alerts_per_day:
        raise ConfigError(
            f"{reader.key('false_warnings_per_day')}: must be at least false_alerts_per_day "
            f"({result.false_alerts_per_day:g}): a warning is judged before an alert"
        )
    reader.finish()
    return result


def _level_pair(reader: _Reader, name: str, default: tuple[float, float] | None) -> Any:
    if reader.get(name) is None:
        return default
    sub = reader.child(name)
    warn = sub.number("warn", default[0] if default else 0.0, minimum=0.0)
    alert = sub.number("alert", default[1] if default else 0.0, minimum=0.0)
    if alert < warn:
        raise ConfigError(
            f"{sub.key('alert')}: alert level {alert} is less severe than warn {warn}"
        )
    sub.finish()
    return (warn, alert)


def _quality(reader: _Reader, base: QualityConfig) -> QualityConfig:
    rules = dict(base.rules)
    for metric in (*DROP_METRICS, *RISE_METRICS):
        pair = _level_pair(reader, metric, rules.get(metric))
        if pair is not None:
            rules[metric] = pair
    result = QualityConfig(
        min_labeled_events=reader.integer("min_labeled_events", base.min_labeled_events, minimum=1),
        rules=rules,
        latency_p99_ms=_level_pair(reader, "latency_p99_ms", base.latency_p99_ms),
    )
    reader.finish()
    return result


def _labels(reader: _Reader) -> LabelsConfig:
    base = LabelsConfig()
    clock = reader.string("clock", base.clock)
    if clock not in ("event", "wall"):
        raise ConfigError(f"{reader.key('clock')}: must be 'event' or 'wall', got {clock!r}")
    result = LabelsConfig(
        ttl_s=reader.duration("ttl_s", base.ttl_s),
        max_entries=reader.integer("max_entries", base.max_entries, minimum=1),
        clock=clock or base.clock,
        join=reader.get("join"),
    )
    if result.join is not None and not isinstance(result.join, bool):
        raise ConfigError(f"{reader.key('join')}: expected true or false")
    reader.finish()
    return result


def _concept_drift(reader: _Reader) -> ConceptDriftConfig:
    base = ConceptDriftConfig()
    detector = reader.string("detector", base.detector)
    if detector not in ("adwin", "page_hinkley", "none"):
        raise ConfigError(
            f"{reader.key('detector')}: must be adwin, page_hinkley or none, got {detector!r}"
        )
    result = ConceptDriftConfig(
        detector=detector or base.detector,
        params=reader.mapping("params"),
        chunk=reader.integer("chunk", base.chunk, minimum=1),
    )
    reader.finish()
    return result


def _model(reader: _Reader, drift: DriftConfig, quality: QualityConfig) -> ModelConfig:
    name = str(reader.string("name", None, required=True))
    task = reader.string("task", None, required=True)
    if task not in TASKS:
        raise ConfigError(f"{reader.key('task')}: must be one of {', '.join(TASKS)}, got {task!r}")
    raw_features = reader.mapping("features")
    if not raw_features:
        raise ConfigError(f"{reader.key('features')}: at least one feature is required")
    features: dict[str, str] = {}
    for feature, kind in raw_features.items():
        if kind not in FEATURE_TYPES:
            raise ConfigError(
                f"{reader.key('features')}.{feature}: unknown feature type {kind!r} "
                f"(expected {' or '.join(FEATURE_TYPES)})"
            )
        features[feature] = kind
    ref = reader.child("reference")
    reference = ReferenceConfig(
        baseline=ref.string("baseline", None),
        warmup_events=ref.integer("warmup_events", ReferenceConfig.warmup_events, minimum=10),
    )
    ref.finish()
    classes = reader.get("classes", []) or []
    if not isinstance(classes, list):
        raise ConfigError(f"{reader.key('classes')}: expected a list of class names")
    threshold = reader.number("threshold", 0.5)
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{reader.key('threshold')}: must be within [0, 1], got {threshold}")
    model = ModelConfig(
        name=name,
        task=task,
        features=features,
        reference=reference,
        bins=reader.integer("bins", 10, minimum=2),
        top_k=reader.integer("top_k", 50, minimum=1),
        threshold=threshold,
        classes=tuple(str(c) for c in classes),
        score_bins=reader.integer("score_bins", 1000, minimum=10),
        drift=_drift(reader.child("drift"), drift),
        quality=_quality(reader.child("quality"), quality),
        metadata=parse_metadata(reader.get("metadata"), reader.key("metadata")),
    )
    for key, add in (("compare_versions", with_compare_versions), ("estimation", with_estimation)):
        model = add(model, reader.get(key), reader.key(key))
    reader.finish()
    return model


def _kafka(reader: _Reader) -> KafkaConfig:
    topics_reader = reader.child("topics")
    defaults = TopicConfig()
    topics = TopicConfig(
        events=topics_reader.string("events", defaults.events) or defaults.events,
        labels=topics_reader.string("labels", None),
        drift_events=topics_reader.string("drift_events", defaults.drift_events)
        or defaults.drift_events,
        dead_letter=topics_reader.string("dead_letter", None),
        changelog=topics_reader.string("changelog", None),
        partials=topics_reader.string("partials", None),
    )
    topics_reader.finish()
    base = KafkaConfig()
    strategy = reader.string("assignment_strategy", base.assignment_strategy)
    if strategy not in ("range", "roundrobin", "cooperative-sticky", "range,roundrobin"):
        raise ConfigError(
            f"{reader.key('assignment_strategy')}: expected range, roundrobin or "
            f"cooperative-sticky, got {strategy!r}"
        )
    offset_reset = reader.string("auto_offset_reset", base.auto_offset_reset)
    if offset_reset not in ("earliest", "latest"):
        raise ConfigError(f"{reader.key('auto_offset_reset')}: expected earliest or latest")
    kafka = KafkaConfig(
        bootstrap_servers=reader.string("bootstrap_servers", base.bootstrap_servers)
        or base.bootstrap_servers,
        group_id=reader.string("group_id", base.group_id) or base.group_id,
        topics=topics,
        client=reader.mapping("client"),
        consumer=reader.mapping("consumer"),
        producer=reader.mapping("producer"),
        assignment_strategy=strategy or base.assignment_strategy,
        session_timeout_ms=reader.integer("session_timeout_ms", base.session_timeout_ms, minimum=1),
        max_poll_interval_ms=reader.integer(
            "max_poll_interval_ms", base.max_poll_interval_ms, minimum=1
        ),
        auto_offset_reset=offset_reset or base.auto_offset_reset,
        batch_size=reader.integer("batch_size", base.batch_size, minimum=1),
        poll_timeout_s=reader.duration("poll_timeout_s", base.poll_timeout_s),
        commit_interval_s=reader.duration("commit_interval_s", base.commit_interval_s),
        startup_timeout_s=reader.duration("startup_timeout_s", base.startup_timeout_s),
        statistics_interval_ms=reader.integer(
            "statistics_interval_ms", base.statistics_interval_ms, minimum=0
        ),
        checkpoints=_boolean(reader, "checkpoints", base.checkpoints),
        partials_partitions=reader.integer("partials_partitions", base.partials_partitions),
        dead_letter_max_bytes=reader.integer(
            "dead_letter_max_bytes",
            base.dead_letter_max_bytes,
            minimum=DEAD_LETTER_BYTES_RANGE[0],
            maximum=DEAD_LETTER_BYTES_RANGE[1],
        ),
        dead_letter_retries=reader.integer("dead_letter_retries", base.dead_letter_retries),
    )
    reader.finish()
    return kafka


def _windows(reader: _Reader) -> WindowConfig:
    base = WindowConfig()
    pane_s = reader.duration("pane_s", base.pane_s)
    raw_sizes = reader.get("sizes", list(base.sizes))
    if isinstance(raw_sizes, str) or not isinstance(raw_sizes, list | dict) or not raw_sizes:
        raise ConfigError(f"{reader.key('sizes')}: expected a list of durations such as [5m, 1h]")
    items = raw_sizes.items() if isinstance(raw_sizes, dict) else ((s, s) for s in raw_sizes)
    sizes: dict[str, float] = {}
    for name, value in items:
        key = f"{reader.key('sizes')}.{name}"
        seconds = parse_duration_s(value, key)
        ratio = seconds / pane_s
        if abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(f"{key}: {seconds:g}s is not a whole number of panes of {pane_s:g}s")
        sizes[str(name)] = seconds
    lateness_s = reader.number("allowed_lateness_s", base.allowed_lateness_s, minimum=0)
    result = WindowConfig(
        pane_s=pane_s,
        sizes=sizes,
        allowed_lateness_s=lateness_s,
        max_future_s=reader.duration("max_future_s", base.max_future_s),
        idle_timeout_s=reader.duration("idle_timeout_s", base.idle_timeout_s),
        max_unjudged_s=_max_unjudged_s(reader, max(sizes.values()) + lateness_s),
    )
    reader.finish()
    return result


def _max_unjudged_s(reader: _Reader, least: float) -> float:
    """``windows.max_unjudged_s``: at least the largest window plus the allowed lateness."""
    if reader.get("max_unjudged_s", None) is None:
        return max(least, WindowConfig.max_unjudged_s)
    seconds = reader.duration("max_unjudged_s", least)
    if seconds < least:
        raise ConfigError(
            f"{reader.key('max_unjudged_s')}: {seconds:g}s is less than the largest window "
            f"plus the allowed lateness ({least:g}s)"
        )
    return seconds


def _fields(reader: _Reader) -> FieldMap:
    base = FieldMap()
    values = {
        name: reader.string(name, getattr(base, name)) or getattr(base, name)
        for name in base.__dataclass_fields__
    }
    reader.finish()
    return FieldMap(**values)


def _limits(reader: _Reader) -> LimitsConfig:
    base = LimitsConfig()
    limits = LimitsConfig(
        max_message_bytes=reader.integer("max_message_bytes", base.max_message_bytes, minimum=1),
        max_batch_events=reader.integer("max_batch_events", base.max_batch_events, minimum=1),
        max_versions_per_model=reader.integer(
            "max_versions_per_model", base.max_versions_per_model, minimum=1
        ),
        max_known_categories=reader.integer(
            "max_known_categories", base.max_known_categories, minimum=1
        ),
    )
    reader.finish()
    return limits


def config_from_dict(data: Any, base_dir: Path = Path(".")) -> MonitorConfig:
    """Validate a parsed YAML tree and build the configuration."""
    root = _Reader(data, "")
    drift = _drift(root.child("drift"), DriftConfig())
    quality = _quality(root.child("quality"), QualityConfig())
    raw_models = root.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise ConfigError("models: expected a non-empty list of models")
    models = tuple(
        _model(_Reader(item, f"models[{i}]"), drift, quality) for i, item in enumerate(raw_models)
    )
    names = [m.name for m in models]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"models[{i}].name: duplicate model name {name!r}")
    metrics_reader = root.child("metrics")
    metrics = MetricsConfig(
        host=metrics_reader.string("host", MetricsConfig.host) or MetricsConfig.host,
        port=metrics_reader.integer("port", MetricsConfig.port, minimum=0),
        status_interval_s=_interval_or_off(
            metrics_reader, "status_interval_s", MetricsConfig.status_interval_s
        ),
    )
    metrics_reader.finish()
    config = MonitorConfig(
        models=models,
        kafka=_kafka(root.child("kafka")),
        metrics=metrics,
        windows=_windows(root.child("windows")),
        drift=drift,
        fields=_fields(root.child("fields")),
        limits=_limits(root.child("limits")),
        quality=quality,
        labels=_labels(root.child("labels")),
        concept_drift=_concept_drift(root.child("concept_drift")),
        evaluation_interval_s=root.number("evaluation_interval_s", 1.0, minimum=0),
        base_dir=base_dir,
    )
    root.finish()
    return config


def check_role(config: MonitorConfig, role: str) -> None:
    """Raise :class:`ConfigError` when ``config`` cannot run as ``role``.

    Scaled-out replicas must count against one reference per model, so
    ``ingest`` and ``aggregate`` need a baseline file for every model.
    """
    if role not in ROLES:
        raise ConfigError(f"--role: expected one of {', '.join(ROLES)}, got {role!r}")
    if role == "all":
        return
    for index, model in enumerate(config.models):
        if model.reference.baseline is None:
            raise ConfigError(
                f"models[{index}].reference.baseline: required with --role {role} "
                "(every replica must count against the same reference; "
                "build one with 'stream-monitor baseline')"
            )


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> MonitorConfig:
    """Read, substitute and validate a YAML config file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc})") from None
    return config_from_dict(_substitute_tree(data, environ, ""), base_dir=file.resolve().parent)


def redact(settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of librdkafka settings with secrets replaced, for logs and config dumps.

    >>> redact({"sasl.password": "hunter2", "sasl.username": "svc"})
    {'sasl.password': '***', 'sasl.username': 'svc'}
    """
    return {
        key: "***" if any(word in key.lower() for word in _SECRET_WORDS) else value
        for key, value in settings.items()
    }
