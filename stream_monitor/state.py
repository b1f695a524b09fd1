"""The state of one model version: reference, pane vectors and sliding windows."""

from __future__ import annotations

import numpy as np

from stream_monitor.config import LimitsConfig, ModelConfig, WindowConfig
from stream_monitor.decode import ModelBatch, Reject, concat_batches
from stream_monitor.layout import CounterLayout
from stream_monitor.reference import Reference, build_reference
from stream_monitor.windows import SlidingWindows, late_mask, pane_of, panes_for


class ModelVersionState:
    """Counts of one model version in event-time panes, and its sliding windows.

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
        self.max_known_categories = limits.max_known_categories
        self.watermark_s = -np.inf
        self.events_total = 0
        self.layout: CounterLayout | None = None
        self.windows: SlidingWindows | None = None
        self._warmup: list[ModelBatch] = []
        self._warmup_rows = 0
        if reference is not None:
            self._start(reference)

    @property
    def reference(self) -> Reference | None:
        """The reference in use, None while warming up."""
        return self.layout.reference if self.layout else None

    def _start(self, reference: Reference) -> None:
        self.layout = CounterLayout(reference, self.model.drift.epsilon)
        self.windows = SlidingWindows(self.layout.width, self.window_sizes, self.keep_panes)

    def update(self, batch: ModelBatch) -> list[Reject]:
        """Count ``batch``; returns the rows rejected as late."""
        if self.layout is not None:
            return self._count(batch)
        self._warmup.append(batch)
        self._warmup_rows += len(batch)
        needed = self.model.reference.warmup_events
        if self._warmup_rows < needed:
            return []
        buffered = concat_batches(self._warmup)
        self._warmup, self._warmup_rows = [], 0
        head = buffered.take(np.arange(needed))
        self._start(
            build_reference(
                self.model,
                [head],
                source=f"warmup:{needed}",
                max_known_categories=self.max_known_categories,
            )
        )
        return self._count(buffered)

    def _count(self, batch: ModelBatch) -> list[Reject]:
        assert self.layout is not None and self.windows is not None
        late = late_mask(batch.event_ts, self.watermark_s, self.allowed_lateness_s)
        rejects = [Reject(int(i), "late") for i in batch.message_index[late]]
        if rejects:
            batch = batch.take(~late)
        if len(batch) == 0:
            return rejects
        panes, rows = np.unique(pane_of(batch.event_ts, self.pane_s), return_inverse=True)
        deltas = self.layout.pane_deltas(batch, rows.astype(np.int64), len(panes))
        for pane, delta in zip(panes.tolist(), deltas, strict=True):
            self.windows.add(pane, delta)
        self.watermark_s = max(self.watermark_s, float(batch.event_ts.max()))
        self.windows.advance(int(pane_of(np.array([self.watermark_s]), self.pane_s)[0]))
        self.events_total += len(batch)
        return rejects
