"""The aggregate stage: partial summaries from every ingest replica merged per model.

An :class:`Aggregator` feeds an :class:`~stream_monitor.engine.Engine` with
records of the partials topic instead of input messages. Each input
partition gets a ledger, as in a single process, but its panes are replaced by
the newest partial the partition's ingest replica published (newest by input
offset, so re-sent and stale partials change nothing) and its watermarks come
from the replica's reports. Windows, closing, judging and drift events are the
engine's own, so an aggregator computes what one process reading every input
partition computes.

A replica sends each report to every partials partition, after the panes it
covers; read from one partials partition, a report says nothing of panes still
on their way in another. So an aggregator follows an input partition only as
far as every partials partition it reads has reported it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from stream_monitor.scaleout.partials import (
    JudgedMark,
    PanePartial,
    Record,
    WatermarkReport,
    fingerprint,
    partition_of,
)
from stream_monitor.state import persist
from stream_monitor.state.keys import PartitionKey, VersionKey

if TYPE_CHECKING:
    from stream_monitor.engine import Engine

log = logging.getLogger(__name__)


class Aggregator:
    """Merges partials into an engine and tracks which models it owns."""

    def __init__(self, engine: Engine, partitions: int) -> None:
        self.engine = engine
        self.partitions = partitions
        self._offsets: dict[tuple[PartitionKey, VersionKey, int], int] = {}
        self._fingerprints: dict[VersionKey, str] = {}
        self._judged: dict[str, bytes] = {}
        self._pruned_at = 0
        self._assigned: set[int] = set()
        self._reports: dict[PartitionKey, dict[int, WatermarkReport]] = {}

    def assign(self, partitions: Iterable[int]) -> None:
        """Partials partitions this aggregator reads from now on (before any of their records)."""
        self._assigned.update(partitions)

    def apply(self, records: Iterable[Record], partition: int) -> None:
        """Merge records of partials partition ``partition``, in its log order."""
        for record in records:
            if isinstance(record, PanePartial):
                self._merge(record)
            elif isinstance(record, WatermarkReport):
                self._report(record, partition)
            else:
                self._adopt(record)

    def restore(self, records: Iterable[Record], partition: int) -> None:
        """Rebuild owned models from a read of partials partition ``partition``.

        Panes and watermarks first, then the judged marks, so judging resumes
        after the last pane judged before, with every restored pane in place.
        """
        records = list(records)
        self.apply((r for r in records if not isinstance(r, JudgedMark)), partition)
        self.apply((r for r in records if isinstance(r, JudgedMark)), partition)

    def _merge(self, partial: PanePartial) -> None:
        key = (partial.source, partial.version, partial.pane)
        if self._offsets.get(key, -1) > partial.offset:
            return  # an older copy: the partition was re-read after a crash or a rebalance
        engine = self.engine
        state = engine.state(*partial.version)
        if state is None:
            engine.count_invalid("too_many_versions")
            return
        if state.layout is None or state.layout.width != len(partial.vector):
            engine.count_invalid("state_conflict")
            return
        expected = self._fingerprints.get(partial.version)
        if expected is None:
            assert state.reference is not None
            expected = self._fingerprints[partial.version] = fingerprint(state.reference)
        if partial.reference != expected:
            log.error(
                "%s %s: a partial from %s[%d] was counted against another reference "
                "(give every replica the same baseline file); it is not merged",
                *partial.version,
                *partial.source,
            )
            engine.count_invalid("state_conflict")
            return
        if not engine.store.merge_partial(partial.source, state, partial.pane, partial.vector):
            engine.count_invalid("late_partial")
            return
        self._offsets[key] = partial.offset

    def _report(self, report: WatermarkReport, partition: int) -> None:
        """Follow the oldest of the newest reports each partials partition read gave."""
        newest = self._reports.setdefault(report.source, {})
        newest[partition] = report
        reading = self._assigned | {partition}
        if reading <= newest.keys():
            self._follow(min((newest[p] for p in reading), key=_progress))

    def _follow(self, report: WatermarkReport) -> None:
        self.engine.store.follow_report(
            report.source, report.watermarks, report.offset, report.caught_up
        )

    def _adopt(self, mark: JudgedMark) -> None:
        severities = persist.severities_from_json(mark.severities)
        self.engine.adopt_progress(mark.model, mark.versions, severities)

    def owns(self, model: str, partitions: set[int]) -> bool:
        """Whether ``model``'s partials partition is among ``partitions``."""
        return partition_of(model, self.partitions) in partitions

    def drop(self, partitions: set[int]) -> None:
        """Forget the models (and reports) of partials partitions this replica no longer owns."""
        self._assigned -= partitions
        for newest in self._reports.values():
            for partition in partitions:
                newest.pop(partition, None)
        models = {m for m, _ in self.engine.states if self.owns(m, partitions)}
        for model in models:
            self.engine.drop_model(model)
            self._judged.pop(model, None)
        self._offsets = {k: v for k, v in self._offsets.items() if k[1][0] not in models}
        self._fingerprints = {k: v for k, v in self._fingerprints.items() if k[0] not in models}

    def judged_marks(self) -> list[tuple[str, JudgedMark]]:
        """Progress records of models whose judging moved since they were last taken."""
        engine = self.engine
        severities = engine.judge.board.severities()
        marks = []
        for model in sorted({m for m, _ in engine.states}):
            versions = [
                [
                    state.version,
                    state.judged.end_pane if state.judged is not None else None,
                    state.quality_reference,
                ]
                for (name, _), state in engine.states.items()
                if name == model
            ]
            rows = persist.severities_to_json(
                {k: v for k, v in severities.items() if k.model == model}
            )
            mark = JudgedMark(model, versions, rows)
            text = repr(mark).encode()
            if self._judged.get(model) != text:
                self._judged[model] = text
                marks.append((model, mark))
        return marks

    def forget_marks(self) -> None:
        """Write every progress record again (the last ones were not delivered)."""
        self._judged.clear()

    def prune(self) -> None:
        """Drop newest-offset entries of panes no ledger holds any more (bounded memory).

        Cheap to call often: it works only once the entries doubled since the last pass.
        """
        if len(self._offsets) < 2 * self._pruned_at + 1000:
            return
        ledgers = self.engine.store.ledgers
        self._offsets = {
            key: offset
            for key, offset in self._offsets.items()
            if key[0] in ledgers and key[2] in ledgers[key[0]].panes.get(key[1], {})
        }
        self._pruned_at = len(self._offsets)


def _progress(report: WatermarkReport) -> tuple[int, bool]:
    """How far a report of an input partition goes: its offset, then whether it was caught up."""
    return (-1 if report.offset is None else report.offset, report.caught_up)
