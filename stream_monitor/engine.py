"""The monitoring engine: decoded batches in, window statistics and drift events out.

The engine knows nothing of Kafka or HTTP: the service loop, ``replay`` and the
benchmark feed it the same :class:`RawMessage` batches, so they compute the
same numbers. Each :meth:`Engine.evaluate` judges every window and publishes
an immutable :class:`Snapshot` that the Prometheus collector reads.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_monitor.config import RISE_METRICS, MonitorConfig, Thresholds
from stream_monitor.decode import Decoder, LabelBatch, RawMessage, Reject
from stream_monitor.evaluate import DriftEvent, SeriesKey, SeverityBoard, WindowInfo
from stream_monitor.labels import Joined, LabelJoinStore
from stream_monitor.layout import StabilityStats
from stream_monitor.reference import Reference
from stream_monitor.sketches.latency import LatencyHistogram, LatencyStats
from stream_monitor.state import Counted, ModelVersionState


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
    consumer_lag: Mapping[tuple[str, int], int] = field(default_factory=dict)
    broker_up: bool | None = None


class Engine:
    """Per model version state, label joins, evaluation and counters for one monitor instance."""

    def __init__(
        self, config: MonitorConfig, baselines: Mapping[str, Reference] | None = None
    ) -> None:
        self.config = config
        self.baselines = dict(baselines or {})
        self.decoder = Decoder(config.models, config.fields, config.limits)
        self.states: dict[tuple[str, str], ModelVersionState] = {}
        self.board = SeverityBoard()
        self.events_total: Counter[tuple[str, str]] = Counter()
        self.invalid_total: Counter[str] = Counter()
        self.drift_events_total: Counter[tuple[str, str, str, str]] = Counter()
        labels = config.labels
        self.joins = (
            LabelJoinStore(labels.max_entries, labels.ttl_s, labels.clock)
            if config.joins_labels
            else None
        )
        self.watermark_s = -math.inf
        self._snapshot = Snapshot()

    def process(self, messages: Sequence[RawMessage], now_s: float | None = None) -> list[Reject]:
        """Decode and count ``messages``; returns the rejected events.

        ``now_s`` is the wall clock for the future-timestamp check (None in replay).
        """
        result = self.decoder.decode(messages)
        rejects = result.rejects
        max_future_s = self.config.windows.max_future_s
        for batch in result.batches:
            if now_s is not None:
                future = batch.event_ts > now_s + max_future_s
                if future.any():
                    rejects.extend(
                        Reject(int(i), "future_timestamp") for i in batch.message_index[future]
                    )
                    batch = batch.take(~future)
            state = self._state(batch.model, batch.version)
            if state is None:
                rejects.extend(Reject(int(i), "too_many_versions") for i in batch.message_index)
                continue
            self.events_total[(batch.model, batch.version)] += len(batch)
            counted = state.update(batch)
            rejects.extend(counted.rejects)
            if counted.batch is not None and len(counted.batch):
                self.watermark_s = max(self.watermark_s, state.watermark_s)
                self._await_labels(counted)
        for labels in result.labels:
            self._join(labels)
        if self.joins is not None:
            self.joins.expire(self.watermark_s if self.joins.clock == "event" else None)
        self.invalid_total.update(reject.reason for reject in rejects)
        return rejects

    def _await_labels(self, counted: Counted) -> None:
        """Predictions without an inline label wait in the join store for theirs."""
        batch = counted.batch
        if self.joins is None or batch is None or counted.panes is None:
            return
        waiting = [
            i
            for i, (event_id, label) in enumerate(zip(batch.event_ids, batch.labels, strict=True))
            if event_id is not None and label is None
        ]
        if not waiting:
            return
        rows = np.asarray(waiting)
        predictions = batch.prediction
        self._credit(
            self.joins.add_predictions(
                [batch.event_ids[i] for i in waiting],
                batch.model,
                batch.version,
                counted.panes[rows].tolist(),
                predictions[rows]
                if isinstance(predictions, np.ndarray)
                else [predictions[i] for i in waiting],
                batch.event_ts[rows].tolist(),
            )
        )

    def _join(self, labels: LabelBatch) -> None:
        if self.joins is None:
            return
        self.watermark_s = max(self.watermark_s, float(labels.event_ts.max()))
        self._credit(
            self.joins.add_labels(
                labels.event_ids, labels.model, labels.labels, labels.event_ts.tolist()
            )
        )

    def _credit(self, joined: Sequence[Joined]) -> None:
        """Count joined labels in their predictions' panes, per model version."""
        groups: dict[tuple[str, str], list[Joined]] = {}
        for item in joined:
            groups.setdefault((item.model, item.version), []).append(item)
        for (model, version), items in groups.items():
            state = self.states.get((model, version))
            if state is None or state.layout is None:
                continue
            predictions: Any = [item.prediction for item in items]
            if state.model.prediction_type == "numeric":
                predictions = np.asarray(predictions, dtype=np.float64)
            late = state.add_labels(
                np.asarray([item.pane for item in items], dtype=np.int64),
                predictions,
                [item.label for item in items],
            )
            if late:
                self.invalid_total["late_label"] += late

    def _state(self, model: str, version: str) -> ModelVersionState | None:
        state = self.states.get((model, version))
        if state is not None:
            return state
        versions = sum(1 for m, _ in self.states if m == model)
        if versions >= self.config.limits.max_versions_per_model:
            return None
        config = self.config.model(model)
        assert config is not None
        state = ModelVersionState(
            config,
            version,
            self.config.windows,
            self.config.limits,
            self.config.concept_drift,
            self.baselines.get(model),
        )
        self.states[(model, version)] = state
        return state

    def evaluate(self, now_s: float | None = None) -> list[DriftEvent]:
        """Judge every window, publish a new snapshot, and return the drift events."""
        detected_at = time.time() if now_s is None else now_s
        events: list[DriftEvent] = []
        samples: list[WindowSample] = []
        histograms = {}
        for state in self.states.values():
            if state.layout is None or state.windows is None or state.cumulative is None:
                continue
            layout = state.layout
            histograms[(state.model.name, state.version)] = layout.latency_histogram(
                state.cumulative
            )
            for window in state.window_sizes:
                first, last = state.windows.span(window)
                vector = state.windows.window(window)
                stats = layout.stability(vector)
                start_s, end_s = first * state.pane_s, (last + 1) * state.pane_s
                covered_s = max(state.pane_s, min(end_s - start_s, state.watermark_s - start_s))
                sample = WindowSample(
                    state.model.name,
                    state.version,
                    window,
                    start_s,
                    end_s,
                    stats.events / covered_s,
                    stats,
                    layout.quality_values(vector),
                    layout.latency_stats(vector),
                    layout.detections(vector),
                )
                samples.append(sample)
                info = WindowInfo(
                    window, start_s, end_s, stats.events, layout.reference.description
                )
                events.extend(self._judge(state, info, sample, detected_at))
        for event in events:
            key = (event.model, event.model_version, event.metric, event.severity)
            self.drift_events_total[key] += 1
        self._snapshot = Snapshot(
            events_total=dict(self.events_total),
            invalid_total=dict(self.invalid_total),
            drift_events_total=dict(self.drift_events_total),
            windows=tuple(samples),
            severities=self.board.severities(),
            thresholds=self.board.thresholds(),
            latency_histograms=histograms,
            label_joins=self._join_counts(),
        )
        return events

    def _join_counts(self) -> dict[str, int]:
        if self.joins is None:
            return {}
        counters = self.joins.counters
        late = self.invalid_total.get("late_label", 0)
        return {
            "joined": counters.joined - late,
            "late": late,
            "expired": counters.expired_predictions,
            "orphan": counters.orphan_labels,
            "evicted": counters.evicted_predictions + counters.evicted_labels,
        }

    def _judge(
        self, state: ModelVersionState, info: WindowInfo, sample: WindowSample, now_s: float
    ) -> list[DriftEvent]:
        checks = (
            stability_checks(state, sample)
            if sample.stats.events >= state.model.drift.min_window_events
            else []
        )
        checks += quality_checks(state, sample)
        if sample.detections > 0 or self.board.severities().get(
            SeriesKey(state.model.name, state.version, "concept_drift", None, info.name)
        ) not in (None, "ok"):
            checks.append(("concept_drift", None, sample.detections, DETECTION))
        events = []
        for metric, feature, value, thresholds in checks:
            if not np.isfinite(value):
                continue
            key = SeriesKey(state.model.name, state.version, metric, feature, info.name)
            event = self.board.judge(key, value, thresholds, info, now_s)
            if event is not None:
                events.append(event)
        return events

    def snapshot(self) -> Snapshot:
        """The snapshot published by the last :meth:`evaluate`."""
        return self._snapshot


#: A concept-drift detection in the window is an alert.
DETECTION = Thresholds(1.0, 1.0)

Check = tuple[str, str | None, float, Thresholds]


def stability_checks(state: ModelVersionState, sample: WindowSample) -> list[Check]:
    """PSI, CSI, null and new-category ratios with their thresholds."""
    drift = state.model.drift
    reference = state.reference
    assert reference is not None
    stats = sample.stats
    checks: list[Check] = [("psi", None, stats.psi, drift.psi)]
    checks += [("csi", name, value, drift.csi) for name, value in stats.csi.items()]
    for name, value in stats.null_ratio.items():
        base = reference.features[name].null_ratio
        shifted = Thresholds(base + drift.null_ratio.warn, base + drift.null_ratio.alert)
        checks.append(("null_ratio", name, value, shifted))
    checks += [
        ("new_category_ratio", name, value, drift.new_category_ratio)
        for name, value in stats.new_category_ratio.items()
    ]
    return checks


def quality_checks(state: ModelVersionState, sample: WindowSample) -> list[Check]:
    """Quality metrics against the reference's, on windows with enough labels.

    Without reference quality (no labels in the reference) the first window that
    reaches ``quality.min_labeled_events`` becomes the quality reference.
    """
    rules = state.model.quality
    checks: list[Check] = []
    if (
        rules.latency_p99_ms is not None
        and sample.latency.count >= state.model.drift.min_window_events
    ):
        warn, alert = (level / 1000.0 for level in rules.latency_p99_ms)
        checks.append(
            ("latency_p99", None, sample.latency.quantiles_s[0.99], Thresholds(warn, alert))
        )
    if sample.quality.get("labeled", 0) < rules.min_labeled_events:
        return checks
    if not state.quality_reference:
        state.quality_reference = dict(sample.quality)
    for metric, (warn, alert) in rules.rules.items():
        value, base = sample.quality.get(metric), state.quality_reference.get(metric)
        if value is None or base is None or not math.isfinite(base):
            continue
        if metric in RISE_METRICS:
            thresholds = Thresholds(base * (1 + warn), base * (1 + alert))
        else:
            thresholds = Thresholds(base - warn, base - alert, "below")
        checks.append((metric, None, value, thresholds))
    return checks
