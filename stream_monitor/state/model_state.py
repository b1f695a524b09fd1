"""The state of one model version: reference, pane vectors, sliding windows, error stream."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from stream_monitor.config import ConceptDriftConfig, LimitsConfig, ModelConfig, WindowConfig
from stream_monitor.decode.batches import ModelBatch, Reject, concat_batches
from stream_monitor.state.ledger import LedgerPanes, PartitionKey, PartitionLedger
from stream_monitor.state.windows import SlidingWindows, late_mask, pane_of, panes_for
from stream_monitor.summaries.concept import ConceptDriftDetector
from stream_monitor.summaries.layout import CounterLayout, label_column
from stream_monitor.summaries.reference import Reference, build_reference


@dataclass
class Counted:
    """What :meth:`ModelVersionState.update` did: rows rejected, and rows counted.

    ``parts`` holds each counted batch with its partition's ledger and the pane
    of every row (a warm-up flush counts rows buffered from several partitions).
    """

    rejects: list[Reject] = field(default_factory=list)
    parts: list[tuple[PartitionLedger, ModelBatch, np.ndarray]] = field(default_factory=list)


def prediction_errors(task: str, threshold: float, predictions: Any, column: Any) -> np.ndarray:
    """The error stream of labeled rows: 0/1 misclassification, or absolute error.

    ``column`` is the rows' :func:`~stream_monitor.summaries.layout.label_column`; NaN marks
    rows without a usable label (they are not fed to the detector).

    >>> labels = label_column("binary", [1, 1, None])
    >>> prediction_errors("binary", 0.5, np.array([0.9, 0.2, 0.7]), labels).tolist()
    [0.0, 1.0, nan]
    >>> labels = label_column("regression", [1.0, 1.5])
    >>> prediction_errors("regression", 0.5, np.array([3.0, 1.0]), labels).tolist()
    [2.0, 0.5]
    """
    if task == "multiclass":
        return np.array(
            [
                np.nan if y is None else float(p != y)
                for p, y in zip(predictions, column, strict=True)
            ]
        )
    scores = np.asarray(predictions, dtype=np.float64)
    if task == "binary":
        usable = (column == 0) | (column == 1)
        return np.where(usable, ((scores >= threshold) != (column == 1)).astype(float), np.nan)
    return np.abs(scores - column)


class ErrorStream:
    """Feeds a model version's errors to a concept-drift detector in chunks.

    Each ``chunk`` consecutive errors (in arrival order, carried across batches,
    so the result does not depend on batching) become one mean fed to the
    detector: river's detectors cost microseconds per value, so ``chunk`` bounds
    the per-event cost; ``chunk: 1`` feeds every labeled event.
    """

    def __init__(self, config: ConceptDriftConfig) -> None:
        self.chunk = config.chunk
        self.detector = (
            ConceptDriftDetector(config.detector, **config.params)
            if config.detector != "none"
            else None
        )
        self._pending = np.empty(0)
        self.detections = 0

    def feed(self, errors: np.ndarray) -> list[int]:
        """Add errors (NaN skipped); for each detection, the index of the error that raised it.

        That is the last error of the chunk whose mean the detector flagged, so
        where a detection is counted depends on the stream alone, not on batches.
        """
        if self.detector is None:
            return []
        finite = np.flatnonzero(np.isfinite(errors))
        pending = len(self._pending)
        values = np.concatenate((self._pending, errors[finite]))
        whole = len(values) // self.chunk * self.chunk
        self._pending = values[whole:]
        if not whole:
            return []
        means = values[:whole].reshape(-1, self.chunk).mean(axis=1)
        chunks = self.detector.update_many(means)
        self.detections += len(chunks)
        return [int(finite[(k + 1) * self.chunk - 1 - pending]) for k in chunks]

    def to_state(self) -> dict[str, Any]:
        """Pending errors and the detector's state, for a checkpoint."""
        return {
            "pending": self._pending.tolist(),
            "detections": self.detections,
            "detector": self.detector.to_state() if self.detector is not None else None,
        }

    def adopt(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint, unless this stream has already seen errors."""
        if self.detector is None or self.detector.n_seen or len(self._pending):
            return
        if state.get("detector") is not None:
            self.detector = ConceptDriftDetector.from_state(state["detector"])
        self._pending = np.asarray(state.get("pending", []), dtype=np.float64)
        self.detections = int(state.get("detections", 0))


class ModelVersionState:
    """Counts of one model version in event-time panes, and its sliding windows.

    Every count is also recorded in the :class:`PartitionLedger` of the input
    partition it came from, so that one partition's share can be checkpointed,
    removed (revoked) or added back (restored). Lateness is judged against the
    watermark of the event's own partition, where Kafka keeps order.

    Without a baseline the first ``reference.warmup_events`` events become the
    reference; they are buffered (a bounded number) and counted in their panes
    as soon as the reference exists.

    Two sets of windows read the same panes: ``windows`` end at the newest
    pane (what ``/metrics`` shows) and ``judged`` end at the newest *closed*
    pane, one pane at a time, so drift is judged on complete windows at
    points fixed by event time alone (see :meth:`close_panes`). Each input
    partition feeds its own concept-drift error stream, in its Kafka order.
    """

    def __init__(
        self,
        model: ModelConfig,
        version: str,
        windows: WindowConfig,
        limits: LimitsConfig,
        concept_drift: ConceptDriftConfig,
        reference: Reference | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.pane_s = windows.pane_s
        self.allowed_lateness_s = windows.allowed_lateness_s
        self.window_sizes = {
            name: panes_for(size, windows.pane_s) for name, size in windows.sizes.items()
        }
        lateness_panes = (
            panes_for(windows.allowed_lateness_s, windows.pane_s)
            if windows.allowed_lateness_s
            else 0
        )
        self.keep_panes = max(self.window_sizes.values()) + lateness_panes
        self.max_unjudged_panes = max(
            self.keep_panes, panes_for(windows.max_unjudged_s, windows.pane_s)
        )
        #: Whether this instance judges windows; an ingest replica does not (it publishes panes).
        self.judging = True
        #: Window ends given up on (see :meth:`skip_unjudged`), as (first, last) pane ranges:
        #: since the last drift event, and since the last log line.
        self.skipped: list[tuple[int, int]] = []
        self.skipped_unlogged: list[tuple[int, int]] = []
        self.skipped_total = 0
        self.max_known_categories = limits.max_known_categories
        self.watermark_s = -np.inf
        self.events_total = 0
        self.late_labels = 0
        self.layout: CounterLayout | None = None
        self.windows: SlidingWindows | None = None
        self.cumulative: np.ndarray | None = None
        self.quality_reference: dict[str, float] = {}
        self.concept_drift = concept_drift
        self.errors: dict[PartitionKey, ErrorStream] = {}
        self.judged: SlidingWindows | None = None
        self.rejudge = False
        self.key = (model.name, version)
        self._warmup: list[tuple[PartitionLedger, ModelBatch]] = []
        self._warmup_rows = 0
        self._ledgers: dict[PartitionKey, PartitionLedger] = {}
        if reference is not None:
            self._start(reference, None)

    @property
    def reference(self) -> Reference | None:
        """The reference in use, None while warming up."""
        return self.layout.reference if self.layout else None

    def _start(self, reference: Reference, rows: ModelBatch | None) -> None:
        self.layout = CounterLayout(self.model, reference)
        panes = LedgerPanes(self.key, self._ledgers)
        self.windows = SlidingWindows(self.layout.width, self.window_sizes, self.keep_panes, panes)
        self.judged = SlidingWindows(self.layout.width, self.window_sizes, self.keep_panes, panes)
        self.cumulative = np.zeros(self.layout.width)
        self.quality_reference = dict(reference.quality)
        if rows is not None and len(rows):
            self.quality_reference = reference_quality(self.layout, rows)

    @property
    def warmup_rows(self) -> int:
        """Events buffered while the reference is being collected."""
        return self._warmup_rows

    def update(self, batch: ModelBatch, ledger: PartitionLedger) -> Counted:
        """Count ``batch`` from ``ledger``'s partition (or buffer it while warming up)."""
        if self.layout is not None:
            return self._count(batch, ledger)
        self._warmup.append((ledger, batch))
        self._warmup_rows += len(batch)
        return self._finish_warmup()

    def _finish_warmup(self) -> Counted:
        """Build the reference once enough events are buffered, then count the buffer."""
        needed = self.model.reference.warmup_events
        if self.layout is not None or self._warmup_rows < needed:
            return Counted()
        buffered, self._warmup, self._warmup_rows = self._warmup, [], 0
        head = concat_batches([batch for _, batch in buffered]).take(np.arange(needed))
        reference = build_reference(
            self.model,
            [head],
            source=f"warmup:{needed}",
            max_known_categories=self.max_known_categories,
        )
        self._start(reference, head)
        counted = Counted()
        for position, (ledger, batch) in enumerate(buffered):
            part = self._count(batch, ledger)
            if position < len(buffered) - 1:  # from an earlier batch: its message is gone
                part.rejects = [Reject(-1, r.reason, r.detail) for r in part.rejects]
            counted.rejects += part.rejects
            counted.parts += part.parts
        return counted

    def _count(self, batch: ModelBatch, ledger: PartitionLedger) -> Counted:
        assert self.layout is not None and self.windows is not None
        late = late_mask(batch.event_ts, ledger.watermark(self.key), self.allowed_lateness_s)
        rejects = [Reject(int(i), "late") for i in batch.message_index[late]]
        if rejects:
            batch = batch.take(~late)
        if len(batch) == 0:
            return Counted(rejects)
        pane_index = pane_of(batch.event_ts, self.pane_s)
        labels = label_column(self.model.task, batch.labels)
        self._add(ledger, pane_index, partial(self.layout.pane_deltas, labels=labels), batch)
        ledger.advance(self.key, float(batch.event_ts.max()))
        self._advance(ledger.watermark(self.key))
        self.events_total += len(batch)
        self._feed_errors(ledger, batch.prediction, labels, pane_index)
        return Counted(rejects, [(ledger, batch, pane_index)])

    def _advance(self, event_ts: float) -> None:
        """Slide the live windows to ``event_ts`` (panes are let go later, by :meth:`evict`)."""
        assert self.windows is not None
        if event_ts <= self.watermark_s:
            return
        self.watermark_s = event_ts
        self.windows.advance(int(pane_of(np.array([event_ts]), self.pane_s)[0]))

    def evict(self) -> None:
        """Forget panes that left every live window and that no window still to be judged needs.

        Called once the closed panes were judged (after each batch), so a backlog
        read faster than its event time loses no window. Only when judging stays
        more than ``windows.max_unjudged_s`` behind the newest pane (a partition
        holds panes open) are the oldest window ends given up, counted and
        reported (:meth:`skip_unjudged`), so memory stays bounded. An ingest
        replica, which judges nothing, keeps panes for twice the horizon, and
        until they are published.
        """
        if self.windows is None or self.judged is None:
            return
        live = self.windows.oldest_pane
        if live is None:
            return
        if self.judging:
            self.skip_unjudged()
            oldest = min(live, self._first_unjudged_pane())
        else:
            oldest = live - self.keep_panes
        for ledger in self._ledgers.values():
            ledger.evict(self.key, oldest, hold_unpublished=not self.judging)

    def _judged_end(self) -> int | None:
        """The last window end judged, or the one before the first pane held (None: nothing)."""
        assert self.judged is not None
        if self.judged.end_pane is not None:
            return self.judged.end_pane
        held = set(self.judged.source)
        return min(held) - 1 if held else None

    def _first_unjudged_pane(self) -> int:
        """The oldest pane a window still to be judged (or re-judged) needs."""
        assert self.judged is not None and self.windows is not None
        if self.judged.end_pane is not None:
            return self.judged.end_pane - self.keep_panes + 1
        end = self._judged_end()
        return end + 1 if end is not None else self.windows.end_pane or 0

    def skip_unjudged(self) -> None:
        """Give up the window ends more than ``max_unjudged_panes`` behind the newest pane."""
        assert self.judged is not None and self.windows is not None
        end, newest = self._judged_end(), self.windows.end_pane
        if end is None or newest is None or end >= newest - self.max_unjudged_panes:
            return
        floor = newest - self.max_unjudged_panes
        self.judged.advance(floor)
        self.rejudge = False
        for ranges in (self.skipped, self.skipped_unlogged):
            if ranges and ranges[-1][1] == end:
                ranges[-1] = (ranges[-1][0], floor)
            else:
                ranges.append((end + 1, floor))
        self.skipped_total += (floor - end) * len(self.window_sizes)

    def error_stream(self, key: PartitionKey) -> ErrorStream:
        """The concept-drift error stream of input partition ``key``."""
        stream = self.errors.get(key)
        if stream is None:
            stream = self.errors[key] = ErrorStream(self.concept_drift)
        return stream

    def _feed_errors(
        self, ledger: PartitionLedger, predictions: Any, labels: Any, panes: np.ndarray
    ) -> None:
        """Feed the partition's error stream; a detection counts in its error's pane."""
        assert self.layout is not None
        errors = prediction_errors(self.model.task, self.model.threshold, predictions, labels)
        for row in self.error_stream(ledger.key).feed(errors):
            self._credit(ledger, int(panes[row]), self.layout.detection_delta(1))

    def _add(
        self, ledger: PartitionLedger, pane_index: np.ndarray, deltas_of: Any, *columns: Any
    ) -> None:
        panes, rows = np.unique(pane_index, return_inverse=True)
        deltas = deltas_of(*columns, rows.astype(np.int64), len(panes))
        for pane, delta in zip(panes.tolist(), deltas, strict=True):
            self._credit(ledger, pane, delta)

    def _credit(self, ledger: PartitionLedger, pane: int, delta: np.ndarray) -> None:
        assert self.cumulative is not None
        ledger.add(self.key, pane, delta)
        self._ledgers[ledger.key] = ledger
        self._follow(pane, delta)
        self.cumulative += delta

    def _follow(self, pane: int, delta: np.ndarray) -> None:
        """Add a pane's change to every live and judged window holding the pane."""
        assert self.windows is not None and self.judged is not None
        self.windows.add(pane, delta)
        end = self.judged.end_pane
        if end is not None and end - max(self.window_sizes.values()) < pane <= end:
            self.judged.add(pane, delta)
            self.rejudge = True

    def merge(self, ledger: PartitionLedger, pane: int, vector: np.ndarray) -> bool:
        """Take a partition's newest partial summary of ``pane`` (scale-out aggregation).

        Returns False, keeping nothing, when the pane already left every window.
        """
        assert self.windows is not None and self.cumulative is not None
        oldest = self.windows.oldest_pane
        if oldest is not None and pane < oldest - self.keep_panes:
            return False
        delta = ledger.replace(self.key, pane, vector)
        self._ledgers[ledger.key] = ledger
        self._follow(pane, delta)
        self.cumulative += delta
        return True

    def follow_watermark(self, ledger: PartitionLedger) -> None:
        """Slide the live windows to a partition's reported watermark (scale-out aggregation)."""
        if self.windows is not None:
            self._ledgers[ledger.key] = ledger
            self._advance(ledger.watermark(self.key))

    def close_panes(self, last_closed: int) -> Iterator[int]:
        """Slide the judged windows up to ``last_closed``, one pane at a time.

        Yields each end pane; the caller judges ``judged`` there. After a late
        change to a judged pane (``rejudge``) the current end is yielded again.
        """
        if self.judged is None:
            return
        end = self.judged.end_pane
        if end is None:
            held = set(self.judged.source)
            if not held:
                return
            end = min(held) - 1
        if self.rejudge and self.judged.end_pane is not None:
            self.rejudge = False
            yield self.judged.end_pane
        for pane in range(end + 1, last_closed + 1):
            self.judged.advance(pane)
            self.rejudge = False
            yield pane

    def adopt_judged(self, end_pane: int) -> None:
        """Continue judging after ``end_pane`` (restored: it was judged before)."""
        if self.judged is not None and (
            self.judged.end_pane is None or self.judged.end_pane < end_pane
        ):
            self.judged.advance(end_pane)
            self.rejudge = False

    def add_labels(
        self, panes: np.ndarray, predictions: Any, labels: list[Any], ledger: PartitionLedger
    ) -> int:
        """Count joined labels in their predictions' panes; returns how many were too late.

        Every joined label feeds the error stream; one whose pane left every
        window is not counted in the panes.
        """
        assert self.layout is not None and self.windows is not None
        column = label_column(self.model.task, labels)
        self._feed_errors(ledger, predictions, column, panes)
        oldest = self.windows.oldest_pane
        kept = panes >= oldest if oldest is not None else np.ones(len(panes), dtype=bool)
        late = int((~kept).sum())
        self.late_labels += late
        if late:
            rows = np.flatnonzero(kept)
            panes = panes[rows]
            predictions = _take(predictions, rows)
            column = _take(column, rows)
        if len(panes):
            self._add(ledger, panes, self.layout.label_deltas, predictions, column)
        return late

    def adopt_quality_reference(self, quality: Mapping[str, float]) -> None:
        """Without reference quality, take the first window's with enough labels."""
        if not self.quality_reference and (
            quality.get("labeled", 0) >= self.model.quality.min_labeled_events
        ):
            self.quality_reference = dict(quality)

    def adopt_reference(self, reference: Reference) -> bool:
        """Use a restored reference; False when another one is already in use."""
        if self.reference is not None:
            return self.reference.to_dict() == reference.to_dict()
        self._start(reference, None)
        buffered, self._warmup, self._warmup_rows = self._warmup, [], 0
        for ledger, batch in buffered:
            self._count(batch, ledger)
        return True

    def remove_partition(self, ledger: PartitionLedger) -> None:
        """Take a revoked partition's share out of the windows (its ledger leaves)."""
        self._ledgers.pop(ledger.key, None)
        kept = [(owner, batch) for owner, batch in self._warmup if owner is not ledger]
        self._warmup, self._warmup_rows = kept, sum(len(batch) for _, batch in kept)
        self.errors.pop(ledger.key, None)
        if self.windows is None:
            return
        for pane, vector in ledger.panes.get(self.key, {}).items():
            self._follow(pane, -vector)

    def restore_partition(self, ledger: PartitionLedger, warmup: list[ModelBatch]) -> Counted:
        """Add a restored partition's share: its ledger's panes and buffered warm-up rows."""
        if self.windows is None:
            self._warmup.extend((ledger, batch) for batch in warmup)
            self._warmup_rows += sum(len(batch) for batch in warmup)
            return self._finish_warmup()
        self._ledgers[ledger.key] = ledger
        for pane, vector in ledger.panes.get(self.key, {}).items():
            self._follow(pane, vector)
        self._advance(ledger.watermark(self.key))
        counted = Counted()
        for batch in warmup:
            part = self._count(batch, ledger)
            counted.rejects += [Reject(-1, r.reason, r.detail) for r in part.rejects]
            counted.parts += part.parts
        return counted

    def warmup_of(self, ledger: PartitionLedger) -> list[ModelBatch]:
        """The warm-up rows buffered from ``ledger``'s partition."""
        return [batch for owner, batch in self._warmup if owner is ledger]


def reference_quality(layout: CounterLayout, rows: ModelBatch) -> dict[str, float]:
    """Quality metrics of reference rows with inline labels (empty when none is labeled)."""
    profile = layout.pane_deltas(rows, np.zeros(len(rows), dtype=np.int64), 1)[0]
    values = layout.quality_values(profile)
    return values if values.get("labeled", 0) > 0 else {}


def _take(values: Any, rows: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows]
