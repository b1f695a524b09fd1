"""The monitoring engine: decoded batches in, window statistics and drift events out.

The engine knows nothing of Kafka or HTTP: the service loop, ``replay`` and the
benchmark feed it the same :class:`RawMessage` batches, so they compute the
same numbers. Each :meth:`Engine.evaluate` judges the windows that ended at
newly closed panes and publishes an immutable :class:`Snapshot` of the live
windows that the Prometheus collector reads.

A pane is closed once every active input partition has passed it by the
allowed lateness (:mod:`stream_monitor.state.store`): later events for it are
rejected as late, so the pane is complete. Drift is judged on each closed
pane in turn, as soon as it closes (at the end of the batch that closed it, so
a backlog read faster than its event time is judged in full), so drift events
depend on the events alone, never on when evaluation ran or how many instances
shared the work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from operator import countOf, itemgetter
from typing import Any, TypeVar

import numpy as np

from stream_monitor.config import ModelConfig, MonitorConfig
from stream_monitor.decode.batches import REASONS, LabelBatch, ModelBatch, RawMessage, Reject
from stream_monitor.decode.decoder import Decoder, DecodeResult
from stream_monitor.estimation import judge_estimates
from stream_monitor.evaluate import DriftEvent
from stream_monitor.judging import WindowCopy, WindowJudge, log_skipped_windows
from stream_monitor.snapshot import ModelInfo, SeriesKey, Snapshot
from stream_monitor.state.joining import LabelJoiner
from stream_monitor.state.keys import PaneKey, PartitionCheckpoint, PartitionKey, VersionKey
from stream_monitor.state.ledger import PartitionLedger
from stream_monitor.state.model_state import ModelVersionState
from stream_monitor.state.store import StateStore
from stream_monitor.summaries.layout import CounterLayout
from stream_monitor.summaries.reference import Reference
from stream_monitor.verdict_progress import VersionProgress, version_progress
from stream_monitor.versions import VersionJudge, live_comparisons, shared_reference

Rows = TypeVar("Rows", ModelBatch, LabelBatch)


class Engine:
    """The pure core behind one facade: decode, count into pane state, judge windows, snapshot.

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
        self.events_total: Counter[tuple[str, str]] = Counter()
        self.invalid_total: Counter[str] = Counter()
        self.states: dict[VersionKey, ModelVersionState] = {}
        self.joiner = LabelJoiner(config, self.states, self.invalid_total)
        self.store = StateStore(config, self.states, self.joiner, self.invalid_total, clock)
        self.judge = WindowJudge(VersionJudge, judge_estimates)
        self.judging = True
        self._counters = Snapshot()
        self._unsampled: list[WindowCopy] = []
        self._snapshot: Snapshot | None = self._counters

    def process(self, messages: Sequence[RawMessage], now_s: float | None = None) -> list[Reject]:
        """Decode and count ``messages``; returns the rejected events.

        ``now_s`` is the wall clock for the future-timestamp check (None in replay).
        """
        rejects: list[Reject] = []
        for key, indexes in _by_partition(messages).items():
            ledger = self.store.ledger(key)
            event_time = ledger.event_time
            mine = messages if len(indexes) == len(messages) else [messages[i] for i in indexes]
            for start, result in self.decoder.decode_pieces(mine):
                part = self._count(result, ledger, now_s)
                rejects.extend(
                    Reject(
                        indexes[start + r.message_index] if r.message_index >= 0 else -1,
                        r.reason,
                        r.detail,
                    )
                    for r in part
                )
            if ledger.event_time > event_time and self.store.clock is not None:
                ledger.advanced_at = self.store.clock()
            ledger.next_offset = messages[indexes[-1]].offset + 1  # offsets rise in a partition
        self.joiner.expire()
        self.invalid_total.update(reject.reason for reject in rejects)
        self.settle(now_s)
        return rejects

    def _count(
        self, result: DecodeResult, ledger: PartitionLedger, now_s: float | None
    ) -> list[Reject]:
        """Count one decoded piece of ``ledger``'s partition; its rejects (indexes in the piece)."""
        rejects = result.rejects
        for batch in result.batches:
            batch = self._drop_future(batch, now_s, rejects)
            state = self.state(batch.model, batch.version)
            if state is None:
                rejects.extend(Reject(int(i), "too_many_versions") for i in batch.message_index)
                continue
            warming = state.reference is None
            counted = state.update(batch, ledger)
            if warming and state.reference is not None:
                rejects.extend(self._share_reference(state))
            late = sum(1 for r in counted.rejects if r.reason == "late")
            self.events_total[(batch.model, batch.version)] += max(0, len(batch) - late)
            rejects.extend(counted.rejects)
            for owner, rows, panes in counted.parts:
                self.joiner.await_labels(owner, rows, panes)
        for labels in result.labels:
            labels = self._drop_future(labels, now_s, rejects)
            if self.joiner.stores is None:
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
        sibling = shared_reference(self.states.values(), config)
        state = ModelVersionState(
            config,
            version,
            self.config.windows,
            self.config.limits,
            self.config.concept_drift,
            CounterLayout,
            self.baselines.get(model) or (sibling.reference if sibling else None),
        )
        if sibling is not None and not state.quality_reference:
            state.quality_reference = dict(sibling.quality_reference)
        state.judging = self.judging
        self.states[(model, version)] = state
        self.judge.register(config, version)
        return state

    def _share_reference(self, state: ModelVersionState) -> list[Reject]:
        """Versions of a model that compares versions share one reference: those still
        warming up take the one ``state`` just built; the late rows among their buffers."""
        if state.model.compare_versions is None or state.reference is None:
            return []
        rejects: list[Reject] = []
        for other in self.states.values():
            if other.model.name == state.model.name and other.reference is None:
                counted = other.take_reference(state.reference, state.quality_reference)
                rejects.extend(counted.rejects)
                for owner, rows, panes in counted.parts:
                    self.joiner.await_labels(owner, rows, panes)
        return rejects

    def checkpoint_partition(
        self, key: PartitionKey
    ) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey], dict[str, Any]]:
        """One partition's changes since its last checkpoint, and the rest of its state."""
        return self.store.checkpoint_of(key, self.judge.board.severities())

    def restore_partition(self, checkpoint: PartitionCheckpoint) -> None:
        """Add a partition's checkpointed share to this instance's state."""
        for series, severity in self.store.restore(checkpoint, self.state).items():
            self.judge.board.adopt(series, severity, newer=True)

    def drop_partition(self, key: PartitionKey) -> None:
        """Forget a partition this instance no longer owns (revoked or lost)."""
        self.store.drop_partition(key)

    def drop_model(self, model: str) -> None:
        """Forget every version of ``model`` (an aggregator handed it to another replica)."""
        for key in [k for k in self.states if k[0] == model]:
            self.judge.board.forget(*key)
        self.store.drop_model(model)

    def count_invalid(self, reason: str) -> None:
        """Count one input that could not be used (a partial in conflict, say)."""
        self.invalid_total[reason] += 1

    def adopt_progress(
        self, model: str, versions: list[list[Any]], severities: dict[SeriesKey, str]
    ) -> None:
        """Continue another replica's judging of ``model``: rows ``[version, end, quality]``."""
        rows = [[model, version, quality, end] for version, end, quality in versions]
        self.store.adopt_progress(rows, self.state)
        for series, severity in severities.items():
            self.judge.board.adopt(series, severity)

    def settle(self, now_s: float | None = None, final: bool = False) -> None:
        """Judge each window ending at a newly closed pane, then let go of panes no window needs.

        Called after every batch, so that every pane is judged before it leaves
        memory, however fast the stream is read; :meth:`evaluate` returns the
        drift events. ``final`` (end of the input, as in ``replay``) closes
        every pane seen.
        """
        if self.judging:
            closing = self.store.closing_watermark()
            self.judge.judge_closed(self.states.values(), closing, now_s, final)
        for state in self.states.values():
            state.evict()

    def evaluate(self, now_s: float | None = None, final: bool = False) -> list[DriftEvent]:
        """Judge the windows of newly closed panes, publish a snapshot, return the drift events.

        The events are those of every pane closed since the last call, in order.
        ``final`` (end of the input, as in ``replay``) closes every pane seen.
        The snapshot's window statistics are computed when it is first read
        (:meth:`snapshot`), from copies of the windows as they are now.
        """
        self.settle(now_s, final)
        events = self.judge.take_events()
        copies: list[WindowCopy] = []
        histograms = {}
        for state in self.states.values():
            if state.layout is None or state.windows is None:
                continue
            assert state.cumulative is not None
            log_skipped_windows(state)
            histograms[(state.model.name, state.version)] = state.layout.latency_histogram(
                state.cumulative
            )
            copies += [WindowCopy.of(state, state.windows, w) for w in state.window_sizes]
        comparisons, shares = live_comparisons(self.states.values())
        self._snapshot = None
        self._unsampled = copies
        self._counters = Snapshot(
            events_total=dict(self.events_total),
            invalid_total={**dict.fromkeys(REASONS, 0), **self.invalid_total},
            drift_events_total=dict(self.judge.drift_events_total),
            severities=self.judge.board.severities(),
            thresholds=self.judge.board.thresholds(),
            critical_values=self.judge.board.critical_values(),
            latency_histograms=histograms,
            label_joins=self.joiner.counts(),
            windows_skipped_total={
                key: state.skipped_total for key, state in self.states.items() if state.judging
            },
            model_info=model_info(self.states.values()),
            version_comparisons=comparisons,
            traffic_shares=shares,
        )
        return events

    def operations_snapshot(self) -> Snapshot:
        """A snapshot of the counters alone (an ingest replica judges no window)."""
        return Snapshot(
            events_total=dict(self.events_total),
            invalid_total={**dict.fromkeys(REASONS, 0), **self.invalid_total},
            label_joins=self.joiner.counts(),
        )

    def snapshot(self) -> Snapshot:
        """The snapshot published by the last :meth:`evaluate`, its windows sampled on first read.

        Read it off the scrape thread (the service does, right after evaluating).
        """
        if self._snapshot is None:
            windows = tuple(copy.sample() for copy in self._unsampled)
            self._snapshot = replace(self._counters, windows=windows)
            self._unsampled = []
        return self._snapshot

    def progress(self) -> list[VersionProgress]:
        """How far each model version is from its first verdict (warm-up, window events)."""
        closing_s, ledgers = self.store.closing_watermark(), list(self.store.ledgers.values())
        return [version_progress(state, ledgers, closing_s) for state in self.states.values()]


def model_info(states: Iterable[ModelVersionState]) -> tuple[ModelInfo, ...]:
    """What each live version is: its model, version, reference and the model's metadata."""
    return tuple(
        ModelInfo(
            state.model.name,
            state.version,
            reference_name(state.model, state.reference),
            state.model.metadata,
        )
        for state in states
    )


def reference_name(model: ModelConfig, reference: Reference | None) -> str:
    """What a version is compared with: the baseline's digest, or ``warmup:<n>``."""
    if reference is None:
        return f"warmup:{model.reference.warmup_events}"
    return reference.digest or reference.source


def _by_partition(messages: Sequence[RawMessage]) -> Mapping[PartitionKey, Sequence[int]]:
    """Message indexes grouped by source partition, in arrival order.

    >>> m = [RawMessage(b"", None, "t", p, 0) for p in (1, 0, 1)]
    >>> _by_partition(m), _by_partition(m[:1])
    ({('t', 1): [0, 2], ('t', 0): [1]}, {('t', 1): range(0, 1)})
    """
    if not messages:
        return {}
    first, size = messages[0], len(messages)
    if (
        countOf(map(_partition_of, messages), first.partition) == size
        and countOf(map(_topic_of, messages), first.topic) == size
    ):  # one partition, the common case: C-level passes, no tuple per message
        return {(first.topic, first.partition): range(size)}
    groups: dict[PartitionKey, list[int]] = {}
    for index, message in enumerate(messages):
        key = (message.topic, message.partition)
        group = groups.get(key)
        if group is None:
            groups[key] = [index]
        else:
            group.append(index)
    return groups


# A RawMessage is a named tuple: its fields are read by index, a little quicker than by name.
_partition_of = itemgetter(RawMessage._fields.index("partition"))
_topic_of = itemgetter(RawMessage._fields.index("topic"))
