"""The monitoring engine: decoded batches in, window statistics and drift events out.

The engine knows nothing of Kafka or HTTP: the service loop, ``replay`` and the
benchmark feed it the same :class:`RawMessage` batches, so they compute the
same numbers. Each :meth:`Engine.evaluate` judges the windows that ended at
newly closed panes and publishes an immutable :class:`Snapshot` of the live
windows that the Prometheus collector reads.

A pane is closed once every active input partition has passed it by the
allowed lateness (:mod:`stream_monitor.state.partitions`): later events for it are
rejected as late, so the pane is complete. Drift is judged on each closed
pane in turn, as soon as it closes (at the end of the batch that closed it, so
a backlog read faster than its event time is judged in full), so drift events
depend on the events alone, never on when evaluation ran or how many instances
shared the work.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import REASONS, LabelBatch, ModelBatch, RawMessage, Reject
from stream_monitor.decode.decoder import Decoder
from stream_monitor.evaluate import (
    SEVERITIES,
    DriftEvent,
    SeverityBoard,
    WindowInfo,
    drift_metrics,
    iso_utc,
    window_checks,
)
from stream_monitor.snapshot import SeriesKey, Snapshot, WindowSample
from stream_monitor.state.checkpoint import PartitionCheckpoint, checkpoint_of, restore
from stream_monitor.state.joining import LabelJoiner
from stream_monitor.state.ledger import PaneKey, PartitionKey, PartitionLedger
from stream_monitor.state.model_state import ModelVersionState
from stream_monitor.state.partitions import InputPartitions
from stream_monitor.state.windows import SlidingWindows, panes_for
from stream_monitor.summaries.reference import Reference

log = logging.getLogger(__name__)

Rows = TypeVar("Rows", ModelBatch, LabelBatch)


class Engine:
    """Per model version state, label joins, evaluation and counters for one monitor instance.

    ``clock`` (monotonic seconds) enables the idle timeout of partitions; without
    it (replay, benchmarks) a pane closes only when every partition passed it.
    ``judging`` False (an ingest replica) judges nothing and keeps panes for its
    publisher instead.
    """

    def __init__(
        self,
        config: MonitorConfig,
        baselines: Mapping[str, Reference] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.baselines = dict(baselines or {})
        self.decoder = Decoder(config.models, config.fields, config.limits)
        windows = config.windows
        self.states: dict[tuple[str, str], ModelVersionState] = {}
        self.board = SeverityBoard()
        self.events_total: Counter[tuple[str, str]] = Counter()
        self.invalid_total: Counter[str] = Counter()
        self.drift_events_total: Counter[tuple[str, str, str, str]] = Counter()
        self.joiner = LabelJoiner(config, self.states, self.invalid_total)
        #: The label join store of each model (None without a label join).
        self.joins = self.joiner.stores
        self.watermark_s = -math.inf
        #: Panes an event within the allowed lateness can still land in, behind the newest;
        #: ledgers keep older ones compressed.
        hot_panes = panes_for(windows.allowed_lateness_s, windows.pane_s) + 1
        self.partitions = InputPartitions(hot_panes, windows.idle_timeout_s, clock)
        #: The ledger of every input partition (see :class:`InputPartitions`).
        self.ledgers = self.partitions.ledgers
        self.judging = True
        #: Window ends judged so far; a checkpoint rewrites every partition's copy of the
        #: severities and judged marks when it moved.
        self.judged_panes = 0
        self._judged_events: list[DriftEvent] = []
        self._snapshot = Snapshot()

    def process(self, messages: Sequence[RawMessage], now_s: float | None = None) -> list[Reject]:
        """Decode and count ``messages``; returns the rejected events.

        ``now_s`` is the wall clock for the future-timestamp check (None in replay).
        """
        rejects: list[Reject] = []
        for key, indexes in _by_partition(messages).items():
            ledger = self.ledger(key)
            event_time = ledger.event_time
            mine = messages if len(indexes) == len(messages) else [messages[i] for i in indexes]
            part = self._process_partition(mine, ledger, now_s)
            if ledger.event_time > event_time and self.clock is not None:
                ledger.advanced_at = self.clock()
            rejects.extend(
                Reject(indexes[r.message_index] if r.message_index >= 0 else -1, r.reason, r.detail)
                for r in part
            )
            ledger.next_offset = messages[indexes[-1]].offset + 1  # offsets rise in a partition
        self.joiner.expire()
        self.invalid_total.update(reject.reason for reject in rejects)
        self.settle(now_s)
        return rejects

    @property
    def clock(self) -> Callable[[], float] | None:
        """Monotonic seconds for the idle timeout of partitions (None: no timeout)."""
        return self.partitions.clock

    @clock.setter
    def clock(self, clock: Callable[[], float] | None) -> None:
        self.partitions.clock = clock

    def ledger(self, key: PartitionKey) -> PartitionLedger:
        """The ledger of input partition ``key`` (created on first use)."""
        return self.partitions.ledger(key)

    def expect(self, keys: Iterable[PartitionKey]) -> None:
        """Input partitions that hold panes open until they pass them (or go idle)."""
        self.partitions.expect(keys)

    @property
    def expected(self) -> set[PartitionKey]:
        """The input partitions that hold panes open (see :meth:`expect`)."""
        return self.partitions.expected

    def closing_watermark(self) -> float:
        """The event time every active input partition has reached (panes before it close)."""
        return self.partitions.closing_watermark()

    def _process_partition(
        self, messages: Sequence[RawMessage], ledger: PartitionLedger, now_s: float | None
    ) -> list[Reject]:
        result = self.decoder.decode(messages)
        rejects = result.rejects
        for batch in result.batches:
            batch = self._drop_future(batch, now_s, rejects)
            state = self.state(batch.model, batch.version)
            if state is None:
                rejects.extend(Reject(int(i), "too_many_versions") for i in batch.message_index)
                continue
            counted = state.update(batch, ledger)
            late = sum(1 for r in counted.rejects if r.reason == "late")
            self.events_total[(batch.model, batch.version)] += max(0, len(batch) - late)
            rejects.extend(counted.rejects)
            self.watermark_s = max(self.watermark_s, state.watermark_s)
            for owner, rows, panes in counted.parts:
                self.joiner.await_labels(owner, rows, panes)
        for labels in result.labels:
            labels = self._drop_future(labels, now_s, rejects)
            if self.joins is None:
                rejects.extend(Reject(int(i), "label_without_join") for i in labels.message_index)
                continue
            self.joiner.join(labels, ledger)
        return rejects

    def _drop_future(self, rows: Rows, now_s: float | None, rejects: list[Reject]) -> Rows:
        """``rows`` without events further ahead of ``now_s`` than ``windows.max_future_s``."""
        if now_s is None:
            return rows
        future = rows.event_ts > now_s + self.config.windows.max_future_s
        if not future.any():
            return rows
        rejects.extend(Reject(int(i), "future_timestamp") for i in rows.message_index[future])
        return rows.take(~future)

    def checkpoint_partition(
        self, key: PartitionKey
    ) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey], dict[str, Any]]:
        """One partition's changes since its last checkpoint, and the rest of its state."""
        return checkpoint_of(self, key)

    def drop_partition(self, key: PartitionKey) -> None:
        """Forget a partition this instance no longer owns (revoked or lost)."""
        ledger = self.partitions.drop(key)
        if ledger is None:
            return
        for state in self.states.values():
            state.remove_partition(ledger)
        for store in (self.joins or {}).values():
            store.drop_owner(key)

    def restore_partition(self, checkpoint: PartitionCheckpoint) -> None:
        """Add a partition's checkpointed share to this instance's state."""
        restore(self, checkpoint)

    def drop_model(self, model: str) -> None:
        """Forget every version of ``model`` (an aggregator handed it to another replica)."""
        for key in [k for k in self.states if k[0] == model]:
            del self.states[key]
            self.board.forget(*key)
            for ledger in self.ledgers.values():
                ledger.panes.pop(key, None)
                ledger.watermarks.pop(key, None)

    def state(self, model: str, version: str) -> ModelVersionState | None:
        """The state of a model version, created on first use (None beyond the version cap)."""
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
        state.judging = self.judging
        self.states[(model, version)] = state
        for metric in drift_metrics(config):
            for severity in SEVERITIES:
                self.drift_events_total[(model, version, metric, severity)] += 0
        return state

    def settle(self, now_s: float | None = None, final: bool = False) -> None:
        """Judge each window ending at a newly closed pane, then let go of panes no window needs.

        Called after every batch, so that every pane is judged before it leaves
        memory, however fast the stream is read; :meth:`evaluate` returns the
        drift events. ``final`` (end of the input, as in ``replay``) closes
        every pane seen.
        """
        if self.judging:
            self._judge_closed(now_s, final)
        for state in self.states.values():
            state.evict()

    def _judge_closed(self, now_s: float | None, final: bool) -> None:
        detected_at = time.time() if now_s is None else now_s
        closing = self.closing_watermark()
        for state in self.states.values():
            if state.layout is None or state.judged is None:
                continue
            mark = state.watermark_s if final else closing - state.allowed_lateness_s
            if not math.isfinite(mark):
                continue
            last_closed = math.floor(mark / state.pane_s) - (0 if final else 1)
            for _ in state.close_panes(last_closed):
                self.judged_panes += 1
                for window in state.window_sizes:
                    sample, info = self._sample(state, state.judged, window)
                    self._judged_events.extend(self._judge(state, info, sample, detected_at))

    def evaluate(self, now_s: float | None = None, final: bool = False) -> list[DriftEvent]:
        """Judge the windows of newly closed panes, publish a snapshot, return the drift events.

        The events are those of every pane closed since the last call, in order.
        ``final`` (end of the input, as in ``replay``) closes every pane seen.
        """
        self.settle(now_s, final)
        events, self._judged_events = self._judged_events, []
        samples: list[WindowSample] = []
        histograms = {}
        for state in self.states.values():
            if state.layout is None or state.windows is None:
                continue
            assert state.cumulative is not None
            self._log_skips(state)
            histograms[(state.model.name, state.version)] = state.layout.latency_histogram(
                state.cumulative
            )
            samples += [self._sample(state, state.windows, w)[0] for w in state.window_sizes]
        for event in events:
            key = (event.model, event.model_version, event.metric, event.severity)
            self.drift_events_total[key] += 1
        self._snapshot = Snapshot(
            events_total=dict(self.events_total),
            invalid_total={**dict.fromkeys(REASONS, 0), **self.invalid_total},
            drift_events_total=dict(self.drift_events_total),
            windows=tuple(samples),
            severities=self.board.severities(),
            thresholds=self.board.thresholds(),
            latency_histograms=histograms,
            label_joins=self.joiner.counts(),
            windows_skipped_total={
                key: state.skipped_total for key, state in self.states.items() if state.judging
            },
        )
        return events

    @staticmethod
    def _log_skips(state: ModelVersionState) -> None:
        """One warning per evaluation for the windows given up since the last (memory cap)."""
        if not state.skipped_unlogged:
            return
        ranges, state.skipped_unlogged = state.skipped_unlogged, []
        log.warning(
            "%s %s: %d windows ending %s were not judged: judging fell more than "
            "windows.max_unjudged_s behind the newest event (a partition held panes open)",
            *state.key,
            sum(last - first + 1 for first, last in ranges) * len(state.window_sizes),
            ", ".join(
                iso_utc((first + 1) * state.pane_s)
                + ("" if last == first else f" to {iso_utc((last + 1) * state.pane_s)}")
                for first, last in ranges
            ),
        )

    def operations_snapshot(self) -> Snapshot:
        """A snapshot of the counters alone (an ingest replica judges no window)."""
        return Snapshot(
            events_total=dict(self.events_total),
            invalid_total={**dict.fromkeys(REASONS, 0), **self.invalid_total},
            label_joins=self.joiner.counts(),
        )

    @staticmethod
    def _sample(
        state: ModelVersionState, windows: SlidingWindows, window: str
    ) -> tuple[WindowSample, WindowInfo]:
        """The statistics of ``window`` as ``windows`` hold it now."""
        layout = state.layout
        assert layout is not None
        first, last = windows.span(window)
        vector = windows.window(window)
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
        info = WindowInfo(window, start_s, end_s, stats.events, layout.reference.description)
        return sample, info

    def _judge(
        self, state: ModelVersionState, info: WindowInfo, sample: WindowSample, now_s: float
    ) -> list[DriftEvent]:
        assert state.reference is not None
        state.adopt_quality_reference(sample.quality)
        concept = SeriesKey(state.model.name, state.version, "concept_drift", None, info.name)
        checks = window_checks(
            state.model,
            state.reference,
            state.quality_reference,
            sample,
            concept_active=self.board.severity(concept) not in (None, "ok"),
        )
        events = self.board.judge_window(state.model.name, state.version, checks, info, now_s)
        if events and state.skipped:
            events[0] = replace(events[0], unjudged=unjudged_ranges(state))
            state.skipped = []
        return events

    def snapshot(self) -> Snapshot:
        """The snapshot published by the last :meth:`evaluate`."""
        return self._snapshot


def _by_partition(messages: Sequence[RawMessage]) -> dict[PartitionKey, list[int]]:
    """Message indexes grouped by source partition, in arrival order.

    >>> m = [RawMessage(b"", None, "t", p, 0) for p in (1, 0, 1)]
    >>> _by_partition(m), _by_partition(m[:1])
    ({('t', 1): [0, 2], ('t', 0): [1]}, {('t', 1): [0]})
    """
    keys = [(message.topic, message.partition) for message in messages]
    if not keys:
        return {}
    if keys.count(keys[0]) == len(keys):  # one partition: the common case
        return {keys[0]: list(range(len(keys)))}
    groups: dict[PartitionKey, list[int]] = {}
    for index, key in enumerate(keys):
        group = groups.get(key)
        if group is None:
            groups[key] = [index]
        else:
            group.append(index)
    return groups


def unjudged_ranges(state: ModelVersionState) -> list[dict[str, Any]]:
    """The window ends ``state`` skipped since its last drift event, for that event."""
    return [
        {
            "first_window_end": iso_utc((first + 1) * state.pane_s),
            "last_window_end": iso_utc((last + 1) * state.pane_s),
            "windows": (last - first + 1) * len(state.window_sizes),
        }
        for first, last in state.skipped
    ]
