"""The monitoring engine: decoded batches in, window statistics and drift events out.

The engine knows nothing of Kafka or HTTP: the service loop, ``replay`` and the
benchmark feed it the same :class:`RawMessage` batches, so they compute the
same numbers. Each :meth:`Engine.evaluate` judges every window and publishes
an immutable :class:`Snapshot` that the Prometheus collector reads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream_monitor.config import ModelConfig, MonitorConfig, Thresholds
from stream_monitor.decode import Decoder, RawMessage, Reject
from stream_monitor.evaluate import DriftEvent, SeriesKey, SeverityBoard, WindowInfo
from stream_monitor.layout import StabilityStats
from stream_monitor.reference import Reference
from stream_monitor.state import ModelVersionState


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


@dataclass(frozen=True)
class Snapshot:
    """Everything ``/metrics`` shows, as plain Python values (built off the scrape thread)."""

    events_total: Mapping[tuple[str, str], int] = field(default_factory=dict)
    invalid_total: Mapping[str, int] = field(default_factory=dict)
    drift_events_total: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    windows: tuple[WindowSample, ...] = ()
    severities: Mapping[SeriesKey, str] = field(default_factory=dict)
    thresholds: Mapping[SeriesKey, tuple[float, float]] = field(default_factory=dict)
    consumer_lag: Mapping[tuple[str, int], int] = field(default_factory=dict)
    broker_up: bool | None = None


class Engine:
    """Per model version state, evaluation and counters for one monitor instance."""

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
            rejects.extend(state.update(batch))
        self.invalid_total.update(reject.reason for reject in rejects)
        return rejects

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
            config, version, self.config.windows, self.config.limits, self.baselines.get(model)
        )
        self.states[(model, version)] = state
        return state

    def evaluate(self, now_s: float | None = None) -> list[DriftEvent]:
        """Judge every window, publish a new snapshot, and return the drift events."""
        detected_at = time.time() if now_s is None else now_s
        events: list[DriftEvent] = []
        samples: list[WindowSample] = []
        for state in self.states.values():
            if state.layout is None or state.windows is None:
                continue
            for window in state.window_sizes:
                first, last = state.windows.span(window)
                stats = state.layout.stability(state.windows.window(window))
                start_s, end_s = first * state.pane_s, (last + 1) * state.pane_s
                covered_s = max(state.pane_s, min(end_s - start_s, state.watermark_s - start_s))
                samples.append(
                    WindowSample(
                        state.model.name,
                        state.version,
                        window,
                        start_s,
                        end_s,
                        stats.events / covered_s,
                        stats,
                    )
                )
                info = WindowInfo(
                    window, start_s, end_s, stats.events, state.layout.reference.description
                )
                if stats.events >= state.model.drift.min_window_events:
                    events.extend(self._judge(state, info, stats, detected_at))
        for event in events:
            self.drift_events_total[
                (event.model, event.model_version, event.metric, event.severity)
            ] += 1
        self._snapshot = Snapshot(
            events_total=dict(self.events_total),
            invalid_total=dict(self.invalid_total),
            drift_events_total=dict(self.drift_events_total),
            windows=tuple(samples),
            severities=self.board.severities(),
            thresholds=self.board.thresholds(),
        )
        return events

    def _judge(
        self, state: ModelVersionState, info: WindowInfo, stats: StabilityStats, now_s: float
    ) -> list[DriftEvent]:
        model: ModelConfig = state.model
        drift = model.drift
        reference = state.layout.reference if state.layout else None
        assert reference is not None
        checks: list[tuple[str, str | None, float, Thresholds, float]] = [
            ("psi", None, stats.psi, drift.psi, 0.0)
        ]
        for name, value in stats.csi.items():
            checks.append(("csi", name, value, drift.csi, 0.0))
        for name, value in stats.null_ratio.items():
            baseline = reference.features[name].null_ratio
            checks.append(("null_ratio", name, value, drift.null_ratio, baseline))
        for name, value in stats.new_category_ratio.items():
            checks.append(("new_category_ratio", name, value, drift.new_category_ratio, 0.0))
        events = []
        for metric, feature, value, thresholds, offset in checks:
            if not np.isfinite(value):
                continue
            key = SeriesKey(model.name, state.version, metric, feature, info.name)
            event = self.board.judge(key, value, thresholds, info, now_s, offset)
            if event is not None:
                events.append(event)
        return events

    def snapshot(self) -> Snapshot:
        """The snapshot published by the last :meth:`evaluate`."""
        return self._snapshot
