"""The state of one model version: reference, pane vectors, sliding windows, error stream."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.config import ConceptDriftConfig, LimitsConfig, ModelConfig, WindowConfig
from stream_monitor.decode.batches import ModelBatch, Reject, concat_batches
from stream_monitor.state.errors import ErrorStreams
from stream_monitor.state.ledger import PartitionLedger
from stream_monitor.state.version_panes import VersionPanes
from stream_monitor.state.warmup import WarmupBuffer
from stream_monitor.state.windows import (
    JudgedWindows,
    SlidingWindows,
    late_mask,
    pane_of,
    panes_for,
)
from stream_monitor.summaries.quality_labels import quality_labels
from stream_monitor.summaries.reference import Reference, build_reference

if TYPE_CHECKING:
    from stream_monitor.summaries.layout import CounterLayout

#: Builds the pane-vector layout of a model version once its reference is known.
LayoutOf = Callable[[ModelConfig, Reference], "CounterLayout"]


@dataclass
class Counted:
    """What :meth:`ModelVersionState.update` did: rows rejected, and rows counted.

    ``parts`` holds each counted batch with its partition's ledger and the pane
    of every row (a warm-up flush counts rows buffered from several partitions).
    """

    rejects: list[Reject] = field(default_factory=list)
    parts: list[tuple[PartitionLedger, ModelBatch, np.ndarray]] = field(default_factory=list)


class ModelVersionState:
    """One model version: its reference, its counts in event-time panes, its error streams.

    Every count is recorded in the :class:`PartitionLedger` of the input
    partition it came from (:class:`VersionPanes`), so that one partition's
    share can be checkpointed, removed (revoked) or added back (restored).
    Lateness is judged against the watermark of the event's own partition,
    where Kafka keeps order; each partition feeds its own concept-drift error
    stream, in its Kafka order.

    Without a baseline the first ``reference.warmup_events`` events become the
    reference; they are buffered (a bounded number) and counted in their panes
    as soon as the reference exists.
    """

    def __init__(
        self,
        model: ModelConfig,
        version: str,
        windows: WindowConfig,
        limits: LimitsConfig,
        concept_drift: ConceptDriftConfig,
        layout_of: LayoutOf,
        reference: Reference | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.key = (model.name, version)
        self.layout_of = layout_of
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
        self.max_known_categories = limits.max_known_categories
        self.events_total = 0
        self.late_labels = 0
        self.quality_reference: dict[str, float] = {}
        self.errors = ErrorStreams(model, concept_drift)
        self.layout: CounterLayout | None = None
        #: The panes and windows, once the reference exists.
        self.panes: VersionPanes | None = None
        self.windows: SlidingWindows | None = None
        self.judged: JudgedWindows | None = None
        self.cumulative: np.ndarray | None = None
        self._warmup = WarmupBuffer()
        if reference is not None:
            self._start(reference, None)

    @property
    def reference(self) -> Reference | None:
        """The reference in use, None while warming up."""
        return self.layout.reference if self.layout else None

    @property
    def watermark_s(self) -> float:
        """The newest event time counted (-inf before any)."""
        return self.panes.watermark_s if self.panes is not None else -np.inf

    @property
    def warmup_rows(self) -> int:
        """Events buffered while the reference is being collected."""
        return self._warmup.rows

    @property
    def skipped_total(self) -> int:
        """Window ends given up on so far (judging fell too far behind)."""
        return self.judged.skipped_total if self.judged is not None else 0

    def _start(self, reference: Reference, rows: ModelBatch | None) -> None:
        self.layout = layout = self.layout_of(self.model, reference)
        self.panes = panes = VersionPanes(
            self.key,
            layout.width,
            self.window_sizes,
            self.keep_panes,
            self.max_unjudged_panes,
            self.pane_s,
        )
        self.windows, self.judged, self.cumulative = panes.windows, panes.judged, panes.cumulative
        self.quality_reference = dict(reference.quality)
        if rows is not None and len(rows):
            self.quality_reference = reference_quality(layout, rows)

    def update(self, batch: ModelBatch, ledger: PartitionLedger) -> Counted:
        """Count ``batch`` from ``ledger``'s partition (or buffer it while warming up)."""
        if self.layout is not None:
            return self._count(batch, ledger)
        self._warmup.add(ledger, [batch])
        return self._finish_warmup()

    def _finish_warmup(self) -> Counted:
        """Build the reference once enough events are buffered, then count the buffer."""
        needed = self.model.reference.warmup_events
        if self.layout is not None or self._warmup.rows < needed:
            return Counted()
        buffered = self._warmup.take()
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
        assert self.layout is not None and self.panes is not None
        late = late_mask(batch.event_ts, ledger.watermark(self.key), self.allowed_lateness_s)
        rejects = [Reject(int(i), "late") for i in batch.message_index[late]]
        if rejects:
            batch = batch.take(~late)
        if len(batch) == 0:
            return Counted(rejects)
        pane_index = pane_of(batch.event_ts, self.pane_s)
        labels = quality_labels(self.model.task, batch.labels)
        self.panes.add(ledger, pane_index, partial(self.layout.pane_deltas, labels=labels), batch)
        ledger.advance(self.key, float(batch.event_ts.max()))
        self.panes.advance(ledger.watermark(self.key))
        self.events_total += len(batch)
        self._feed_errors(ledger, batch.prediction, labels, pane_index)
        return Counted(rejects, [(ledger, batch, pane_index)])

    def _feed_errors(
        self, ledger: PartitionLedger, predictions: Any, labels: Any, panes: np.ndarray
    ) -> None:
        """Feed the partition's error stream; a detection counts in its error's pane."""
        assert self.layout is not None and self.panes is not None
        for row in self.errors.feed(ledger.key, predictions, labels):
            self.panes.credit(ledger, int(panes[row]), self.layout.detection_delta(1))

    def evict(self) -> None:
        """Forget panes no window needs any more (see :meth:`VersionPanes.evict`)."""
        if self.panes is not None:
            self.panes.evict(self.judging)

    def merge(self, ledger: PartitionLedger, pane: int, vector: np.ndarray) -> bool:
        """Take a partition's newest partial summary of ``pane`` (False: it left every window)."""
        assert self.panes is not None
        return self.panes.merge(ledger, pane, vector)

    def follow_watermark(self, ledger: PartitionLedger) -> None:
        """Slide the live windows to a partition's reported watermark (scale-out aggregation)."""
        if self.panes is not None:
            self.panes.follow_watermark(ledger)

    def adopt_judged(self, end_pane: int) -> None:
        """Continue judging after ``end_pane`` (restored: it was judged before)."""
        if self.judged is not None:
            self.judged.adopt(end_pane)

    def add_labels(
        self, panes: np.ndarray, predictions: Any, labels: list[Any], ledger: PartitionLedger
    ) -> int:
        """Count joined labels in their predictions' panes; returns how many were too late.

        Every joined label feeds the error stream; one whose pane left every
        window is not counted in the panes.
        """
        assert self.layout is not None and self.panes is not None
        column = quality_labels(self.model.task, labels)
        self._feed_errors(ledger, predictions, column, panes)
        oldest = self.panes.windows.oldest_pane
        kept = panes >= oldest if oldest is not None else np.ones(len(panes), dtype=bool)
        late = int((~kept).sum())
        self.late_labels += late
        if late:
            rows = np.flatnonzero(kept)
            panes = panes[rows]
            predictions = _take(predictions, rows)
            column = _take(column, rows)
        if len(panes):
            self.panes.add(ledger, panes, self.layout.label_deltas, predictions, column)
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
        for ledger, batch in self._warmup.take():
            self._count(batch, ledger)
        return True

    def take_reference(self, reference: Reference, quality: Mapping[str, float]) -> Counted:
        """Start from another version's reference and reference quality (compared versions
        share bins), then count the warm-up rows buffered so far."""
        self._start(reference, None)
        self.quality_reference = dict(quality)
        counted = Counted()
        for ledger, batch in self._warmup.take():
            part = self._count(batch, ledger)
            counted.rejects += [Reject(-1, r.reason, r.detail) for r in part.rejects]
            counted.parts += part.parts
        return counted

    def remove_partition(self, ledger: PartitionLedger) -> None:
        """Take a revoked partition's share out of the windows (its ledger leaves)."""
        self._warmup.drop(ledger)
        self.errors.pop(ledger.key, None)
        if self.panes is not None:
            self.panes.remove(ledger)

    def restore_partition(self, ledger: PartitionLedger, warmup: list[ModelBatch]) -> Counted:
        """Add a restored partition's share: its ledger's panes and buffered warm-up rows."""
        if self.panes is None:
            self._warmup.add(ledger, warmup)
            return self._finish_warmup()
        self.panes.restore(ledger)
        counted = Counted()
        for batch in warmup:
            part = self._count(batch, ledger)
            counted.rejects += [Reject(-1, r.reason, r.detail) for r in part.rejects]
            counted.parts += part.parts
        return counted

    def warmup_of(self, ledger: PartitionLedger) -> list[ModelBatch]:
        """The warm-up rows buffered from ``ledger``'s partition."""
        return self._warmup.of(ledger)


def reference_quality(layout: CounterLayout, rows: ModelBatch) -> dict[str, float]:
    """Quality metrics of reference rows with inline labels (empty when none is labeled).

    Only the quality summary is counted: the metrics read nothing else.
    """
    labels = quality_labels(layout.model.task, rows.labels)
    pane_rows = np.zeros(len(rows), dtype=np.int64)
    values = layout.quality_values(layout.label_deltas(rows.prediction, labels, pane_rows, 1)[0])
    return values if values.get("labeled", 0) > 0 else {}


def _take(values: Any, rows: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows]
