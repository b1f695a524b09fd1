"""The state store: every input partition's ledger, every model version's state, the label joins.

Windows are sums of pane vectors, so an instance's state is the sum of its
input partitions' shares (:mod:`stream_monitor.state.ledger`). The store adds a
partition's share (restore), takes it out (drop) and writes it down
(checkpoint). A checkpoint of one partition is its changed and evicted panes
plus a ``meta`` mapping:

- ``next_offset`` and ``watermarks``: where the partition stands;
- ``references``: the reference each of its model versions is counted against;
- ``warmup``: its events buffered while a reference is being collected;
- ``errors``: its concept-drift error streams (detector state);
- ``joins``: the predictions and labels it holds waiting for a join;
- ``severities`` and ``instance`` (quality references, the last window end
  judged): the instance's judging, carried by every partition so that any of
  them restores it.

Where checkpoints are kept is the caller's business (the Kafka changelog).

It also decides when a pane is closed: once every active input partition's
watermark (the largest event time it carried) has passed the pane's end by the
allowed lateness. A partition that is caught up (nothing left to read) and
whose watermark did not move for ``windows.idle_timeout_s`` of wall time is not
active; one that stalls with messages left to read (a rebalance, a crashed
replica) is.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import ModelBatch
from stream_monitor.snapshot import SeriesKey
from stream_monitor.state import persist
from stream_monitor.state.keys import PaneKey, PartitionCheckpoint, PartitionKey, VersionKey
from stream_monitor.state.ledger import PaneVectors, PartitionLedger
from stream_monitor.state.windows import panes_for
from stream_monitor.summaries.reference import Reference

if TYPE_CHECKING:
    from stream_monitor.state.joining import LabelJoiner
    from stream_monitor.state.model_state import ModelVersionState

log = logging.getLogger(__name__)

#: Creates (or finds) the state of a model version; None beyond the version cap.
StateOf = Callable[[str, str], "ModelVersionState | None"]


class StateStore:
    """The ledger of every input partition, the state of every model version, the label joins.

    The engine creates the states and the ``joiner``; the store adds, drops and
    checkpoints each partition's share of them.

    ``clock`` (monotonic seconds) enables the idle timeout of partitions; without
    it (replay, benchmarks) a pane closes only when every partition passed it.
    """

    def __init__(
        self,
        config: MonitorConfig,
        states: dict[VersionKey, ModelVersionState],
        joiner: LabelJoiner,
        invalid_total: Counter[str],
        clock: Callable[[], float] | None,
    ) -> None:
        windows = config.windows
        self.config = config
        self.invalid_total = invalid_total
        #: Panes an event within the allowed lateness can still land in, behind the newest;
        #: ledgers keep older ones compressed.
        self.hot_panes = panes_for(windows.allowed_lateness_s, windows.pane_s) + 1
        self.idle_timeout_s = windows.idle_timeout_s
        self.clock = clock
        self.ledgers: dict[PartitionKey, PartitionLedger] = {}
        self.states = states
        self.joiner = joiner
        self._expected: dict[PartitionKey, float | None] = {}

    def ledger(self, key: PartitionKey) -> PartitionLedger:
        """The ledger of input partition ``key`` (created on first use)."""
        ledger = self.ledgers.get(key)
        if ledger is None:
            ledger = self.ledgers[key] = PartitionLedger(key, self.hot_panes)
        return ledger

    def expect(self, keys: Iterable[PartitionKey]) -> None:
        """Input partitions that hold panes open until they pass them (or go idle)."""
        for key in keys:
            self._expected.setdefault(key, self.clock() if self.clock is not None else None)

    @property
    def expected(self) -> set[PartitionKey]:
        """The input partitions that hold panes open (see :meth:`expect`)."""
        return set(self._expected)

    def closing_watermark(self) -> float:
        """The event time every active input partition has reached (panes before it close).

        Active: expected or carrying events, and not idle (caught up and still for
        ``idle_timeout_s``). When every partition is idle, the largest watermark
        of all (nothing more is coming).
        """
        now = self.clock() if self.clock is not None else None
        keys = set(self._expected) | {k for k, ledger in self.ledgers.items() if ledger.watermarks}
        active, seen = [], []
        for key in keys:
            ledger = self.ledgers.get(key)
            mark = ledger.event_time if ledger is not None else -math.inf
            if mark > -math.inf:
                seen.append(mark)
            since = ledger.advanced_at if ledger is not None else None
            since = self._expected.get(key) if since is None else since
            caught_up = ledger is None or ledger.caught_up
            idle = now is not None and since is not None and now - since >= self.idle_timeout_s
            if caught_up and idle:
                continue
            active.append(mark)
        return min(active) if active else max(seen, default=-math.inf)

    def next_offset(self, key: PartitionKey) -> int | None:
        """The offset after the last message counted from input partition ``key``."""
        ledger = self.ledgers.get(key)
        return ledger.next_offset if ledger is not None else None

    def unwritten(self, key: PartitionKey) -> bool:
        """Whether ``key``'s panes changed since its last checkpoint was taken."""
        return self.ledger(key).checkpointed.pending

    def rewrite(self, key: PartitionKey) -> None:
        """Write all of ``key``'s panes at its next checkpoint (the last was not confirmed)."""
        self.ledger(key).mark_all_dirty()

    def note_end_offset(self, key: PartitionKey, end_offset: int) -> None:
        """Note the partition's end offset: it is caught up once everything before it was read."""
        ledger = self.ledgers.get(key)
        if ledger is not None:
            ledger.caught_up = end_offset >= 0 and (ledger.next_offset or 0) >= end_offset

    def quiet_partitions(self) -> list[PartitionKey]:
        """Expected partitions said to be caught up that never reported, or had no new
        event for ``idle_timeout_s``: the caller asks the broker for their end offsets."""
        assert self.clock is not None
        now = self.clock()
        quiet = []
        for key in self.expected:
            ledger = self.ledger(key)
            moved = ledger.advanced_at
            still = ledger.next_offset is None or (
                moved is not None and now - moved >= self.idle_timeout_s
            )
            if still and ledger.caught_up:
                quiet.append(key)
        return quiet

    def follow_report(
        self,
        key: PartitionKey,
        watermarks: dict[VersionKey, float],
        next_offset: int | None,
        caught_up: bool,
    ) -> None:
        """Take an ingest replica's report of input partition ``key`` (scale-out aggregation)."""
        ledger = self.ledger(key)
        before = ledger.event_time
        ledger.caught_up = caught_up
        ledger.next_offset = next_offset
        for version, event_ts in watermarks.items():
            ledger.advance(version, event_ts)
            state = self.states.get(version)
            if state is not None:
                state.follow_watermark(ledger)
        if ledger.event_time > before and self.clock is not None:
            ledger.advanced_at = self.clock()

    def merge_partial(
        self, source: PartitionKey, state: ModelVersionState, pane: int, vector: np.ndarray
    ) -> bool:
        """Take a replica's newest partial of ``pane`` from ``source`` (False: too late)."""
        ledger = self.ledger(source)
        fresh = state.windows is not None and state.windows.end_pane is None
        if not state.merge(ledger, pane, vector):
            return False
        if fresh:  # a new state: follow the watermarks already reported
            for other in self.ledgers.values():
                if state.key in other.watermarks:
                    state.follow_watermark(other)
        return True

    def drop_partition(self, key: PartitionKey) -> None:
        """Forget a partition this instance no longer owns (revoked or lost)."""
        self._expected.pop(key, None)
        ledger = self.ledgers.pop(key, None)
        if ledger is None:
            return
        for state in self.states.values():
            state.remove_partition(ledger)
        for store in (self.joiner.stores or {}).values():
            store.drop_owner(key)

    def drop_model(self, model: str) -> None:
        """Forget every version of ``model`` (an aggregator handed it to another replica)."""
        for key in [k for k in self.states if k[0] == model]:
            del self.states[key]
            for ledger in self.ledgers.values():
                ledger.panes.pop(key, None)
                ledger.watermarks.pop(key, None)

    def checkpoint_of(
        self, key: PartitionKey, severities: dict[SeriesKey, str]
    ) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey], dict[str, Any]]:
        """``key``'s panes changed and evicted since its last checkpoint, and its meta."""
        ledger = self.ledger(key)
        changed, evicted = ledger.take_changes()
        versions = set(ledger.panes) | set(ledger.watermarks)
        references, warmup, instance, errors = {}, [], [], []
        for version_key in versions:
            state = self.states.get(version_key)
            if state is not None and state.reference is not None:
                references["\x1f".join(version_key)] = state.reference.to_dict()
        for state in self.states.values():
            warmup += [persist.batch_to_json(b) for b in state.warmup_of(ledger)]
            judged = state.judged.end_pane if state.judged is not None else None
            instance.append([state.model.name, state.version, state.quality_reference, judged])
            if key in state.errors:
                errors.append([state.model.name, state.version, state.errors[key].to_state()])
        meta = {
            "next_offset": ledger.next_offset,
            "watermarks": [[*v, ts] for v, ts in ledger.watermarks.items()],
            "references": references,
            "warmup": warmup,
            "errors": errors,
            "joins": {m: store.owned_state(key) for m, store in (self.joiner.stores or {}).items()},
            "severities": persist.severities_to_json(severities),
            "instance": instance,
        }
        return changed, evicted, meta

    def restore(self, checkpoint: PartitionCheckpoint, state_of: StateOf) -> dict[SeriesKey, str]:
        """Add a partition's checkpointed share (replacing what was held of it).

        Returns the severities it carried of the model versions it was judged at
        least as far for as anything restored before, for the judge to adopt.
        """
        self.drop_partition(checkpoint.key)
        meta = checkpoint.meta
        ledger = self.ledger(checkpoint.key)
        ledger.next_offset = meta["next_offset"]
        for model, version, event_ts in meta["watermarks"]:
            ledger.watermarks[(model, version)] = float(event_ts)
        for (version_key, pane), vector in checkpoint.panes.items():
            ledger.version_panes(version_key)[pane] = vector
        warmup = _warmup_batches(self.config, meta["warmup"])
        for version_key in set(ledger.panes) | set(ledger.watermarks) | set(warmup):
            state = state_of(*version_key)
            if state is None:
                continue
            stored = meta["references"].get("\x1f".join(version_key))
            conflict = _conflict(state, stored, ledger.panes.get(version_key))
            if conflict:
                log.error(
                    "%s %s: the restored checkpoint of %s[%d] %s; its panes are not restored",
                    *version_key,
                    *checkpoint.key,
                    conflict,
                )
                self.invalid_total["state_conflict"] += 1
                ledger.panes.pop(version_key, None)
            for owner, rows, panes in state.restore_partition(
                ledger, warmup.get(version_key, [])
            ).parts:
                self.joiner.await_labels(owner, rows, panes)
        for model, rows in meta["joins"].items():
            if self.joiner.stores is not None and model in self.joiner.stores:
                self.joiner.stores[model].load_owned(rows, checkpoint.key)
        newest = _judged_as_far(self.states, meta["instance"])
        self.adopt_progress(meta["instance"], lambda m, v: self.states.get((m, v)))
        for model, version, errors in meta["errors"]:
            state = self.states.get((model, version))
            if state is not None:
                state.errors.of(checkpoint.key).adopt(errors)
        severities = persist.severities_from_json(meta["severities"]).items()
        return {s: level for s, level in severities if (s.model, s.version) in newest}

    def adopt_progress(self, rows: Iterable[list[Any]], state_of: StateOf) -> None:
        """Adopt judging progress rows ``[model, version, quality reference, judged end]``."""
        for model, version, quality_reference, judged in rows:
            state = state_of(model, version)
            if state is not None:
                state.quality_reference = state.quality_reference or quality_reference
                if judged is not None:
                    state.adopt_judged(int(judged))


def _conflict(
    state: ModelVersionState, stored: dict[str, Any] | None, panes: PaneVectors | None
) -> str | None:
    """Why a restored share cannot be added to ``state`` (None: it can)."""
    if stored is not None and not state.adopt_reference(Reference.from_dict(stored)):
        return "was counted against another reference (use a baseline file with replicas)"
    layout = state.layout
    if panes and layout is not None and len(panes[next(iter(panes))]) != layout.width:
        return "has panes of another layout (written by another release)"
    return None


def _warmup_batches(
    config: MonitorConfig, rows: list[dict[str, Any]]
) -> dict[VersionKey, list[ModelBatch]]:
    """Checkpointed warm-up batches by model version (models no longer configured dropped)."""
    warmup: dict[VersionKey, list[ModelBatch]] = {}
    for data in rows:
        model = config.model(data["model"])
        if model is not None:
            batch = persist.batch_from_json(data, model.features, model.prediction_type)
            warmup.setdefault((batch.model, batch.version), []).append(batch)
    return warmup


def _judged_as_far(
    states: dict[VersionKey, ModelVersionState], rows: Iterable[list[Any]]
) -> set[VersionKey]:
    """Versions a checkpoint's judging rows ``[model, version, quality, judged end]`` reach
    at least as far as the state held (partition checkpoints cut by a crash differ)."""
    found = set()
    for model, version, _, judged in rows:
        state = states.get((model, version))
        held = state.judged.end_pane if state is not None and state.judged is not None else None
        if held is None or (judged is not None and int(judged) >= held):
            found.add((model, version))
    return found
