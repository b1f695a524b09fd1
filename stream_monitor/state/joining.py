"""Delayed labels joined to their predictions, and counted in the predictions' panes.

One :class:`~stream_monitor.state.labels.LabelJoinStore` per model holds predictions
waiting for labels and labels waiting for predictions; a joined label is
counted in the pane of its prediction's event time, in the ledger of the
partition that completed the join.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import LabelBatch, ModelBatch
from stream_monitor.state.keys import VersionKey
from stream_monitor.state.labels import Joined, LabelJoinStore

if TYPE_CHECKING:
    from stream_monitor.state.ledger import PartitionLedger
    from stream_monitor.state.model_state import ModelVersionState


class LabelJoiner:
    """The label join stores of every model, and the crediting of joined labels.

    ``stores`` is None when no label join is configured. Labels joined too late
    for their prediction's pane are counted in ``invalid_total["late_label"]``.
    """

    def __init__(
        self,
        config: MonitorConfig,
        states: Mapping[VersionKey, ModelVersionState],
        invalid_total: Counter[str],
    ) -> None:
        labels = config.labels
        self.stores = (
            {
                model.name: LabelJoinStore(labels.max_entries, labels.ttl_s, labels.clock)
                for model in config.models
            }
            if config.joins_labels
            else None
        )
        self._states = states
        self._invalid_total = invalid_total

    def await_labels(self, ledger: PartitionLedger, batch: ModelBatch, panes: np.ndarray) -> None:
        """Predictions without an inline label wait in the join store for theirs."""
        if self.stores is None:
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
            self.stores[batch.model].add_predictions(
                [batch.event_ids[i] for i in waiting],
                batch.model,
                batch.version,
                panes[rows].tolist(),
                predictions[rows]
                if isinstance(predictions, np.ndarray)
                else [predictions[i] for i in waiting],
                batch.event_ts[rows].tolist(),
                owner=ledger.key,
            ),
            ledger,
        )

    def join(self, labels: LabelBatch, ledger: PartitionLedger) -> None:
        """Join label events to waiting predictions (or keep them waiting for theirs)."""
        if self.stores is None or not len(labels):
            return
        self._credit(
            self.stores[labels.model].add_labels(
                labels.event_ids,
                labels.model,
                labels.labels,
                labels.event_ts.tolist(),
                owner=ledger.key,
            ),
            ledger,
        )

    def _credit(self, joined: Sequence[Joined], ledger: PartitionLedger) -> None:
        """Count joined labels in their predictions' panes, in the joining partition's ledger."""
        groups: dict[tuple[str, str], list[Joined]] = {}
        for item in joined:
            groups.setdefault((item.model, item.version), []).append(item)
        for (model, version), items in groups.items():
            state = self._states.get((model, version))
            if state is None or state.layout is None:
                continue
            predictions: Any = [item.prediction for item in items]
            if state.model.prediction_type == "numeric":
                predictions = np.asarray(predictions, dtype=np.float64)
            late = state.add_labels(
                np.asarray([item.pane for item in items], dtype=np.int64),
                predictions,
                [item.label for item in items],
                ledger,
            )
            if late:
                self._invalid_total["late_label"] += late

    def expire(self) -> None:
        """Let go of entries past their time to live."""
        for store in (self.stores or {}).values():
            store.expire()

    def counts(self) -> dict[str, int]:
        """Join outcomes and waiting entries over every model (empty without a join)."""
        if self.stores is None:
            return {}
        stores = list(self.stores.values())
        late = self._invalid_total.get("late_label", 0)
        return {
            "joined": sum(s.counters.joined for s in stores) - late,
            "late": late,
            "expired": sum(s.counters.expired_predictions for s in stores),
            "orphan": sum(s.counters.orphan_labels for s in stores),
            "evicted": sum(
                s.counters.evicted_predictions + s.counters.evicted_labels for s in stores
            ),
            "pending_predictions": sum(s.pending_predictions for s in stores),
            "pending_labels": sum(s.pending_labels for s in stores),
        }
