"""A partition's share of the state as a checkpoint, and how it is added back.

Windows are sums of pane vectors, so an instance's state is the sum of its
input partitions' shares (:mod:`stream_monitor.state.ledger`). A checkpoint of one
partition is its changed and evicted panes plus a ``meta`` mapping:

- ``next_offset`` and ``watermarks``: where the partition stands;
- ``references``: the reference each of its model versions is counted against;
- ``warmup``: its events buffered while a reference is being collected;
- ``errors``: its concept-drift error streams (detector state);
- ``joins``: the predictions and labels it holds waiting for a join;
- ``severities`` and ``instance`` (quality references, the last window end
  judged): the instance's judging, carried by every partition so that any of
  them restores it.

Where checkpoints are kept is the caller's business (the Kafka changelog, see
:mod:`stream_monitor.kafka.changelog`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.decode.batches import ModelBatch
from stream_monitor.state import persist
from stream_monitor.state.ledger import PaneKey, PartitionKey
from stream_monitor.summaries.reference import Reference

if TYPE_CHECKING:
    from stream_monitor.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class PartitionCheckpoint:
    """One partition's restored (or to-be-written) share of the state."""

    key: PartitionKey
    seq: int
    meta: dict[str, Any]
    panes: dict[PaneKey, np.ndarray] = field(default_factory=dict)


def checkpoint_of(
    engine: Engine, key: PartitionKey
) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey], dict[str, Any]]:
    """``key``'s panes changed and evicted since its last checkpoint, and its meta."""
    ledger = engine.ledger(key)
    changed, evicted = ledger.take_changes()
    versions = set(ledger.panes) | set(ledger.watermarks)
    references, warmup, instance = {}, [], []
    for version_key in versions:
        state = engine.states.get(version_key)
        if state is None:
            continue
        if state.reference is not None:
            references["\x1f".join(version_key)] = state.reference.to_dict()
    errors = []
    for state in engine.states.values():
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
        "joins": {model: store.owned_state(key) for model, store in (engine.joins or {}).items()},
        "severities": persist.severities_to_json(engine.board.severities()),
        "instance": instance,
    }
    return changed, evicted, meta


def restore(engine: Engine, checkpoint: PartitionCheckpoint) -> None:
    """Add a partition's checkpointed share to ``engine`` (replacing what it held of it)."""
    engine.drop_partition(checkpoint.key)
    meta = checkpoint.meta
    ledger = engine.ledger(checkpoint.key)
    ledger.next_offset = meta["next_offset"]
    for model, version, event_ts in meta["watermarks"]:
        ledger.watermarks[(model, version)] = float(event_ts)
    for (version_key, pane), vector in checkpoint.panes.items():
        ledger.version_panes(version_key)[pane] = vector
    warmup: dict[tuple[str, str], list[ModelBatch]] = {}
    for data in meta["warmup"]:
        config = engine.config.model(data["model"])
        if config is not None:
            batch = persist.batch_from_json(data, config.features, config.prediction_type)
            warmup.setdefault((batch.model, batch.version), []).append(batch)
    versions = set(ledger.panes) | set(ledger.watermarks) | set(warmup)
    for version_key in versions:
        state = engine.state(*version_key)
        if state is None:
            continue
        stored = meta["references"].get("\x1f".join(version_key))
        if stored is not None and not state.adopt_reference(Reference.from_dict(stored)):
            log.error(
                "%s %s: the restored checkpoint of %s[%d] was counted against another "
                "reference; its panes are not restored (use a baseline file with replicas)",
                *version_key,
                *checkpoint.key,
            )
            engine.invalid_total["state_conflict"] += 1
            ledger.panes.pop(version_key, None)
        for owner, rows, panes in state.restore_partition(
            ledger, warmup.get(version_key, [])
        ).parts:
            engine.joiner.await_labels(owner, rows, panes)
    for model, rows in meta["joins"].items():
        if engine.joins is not None and model in engine.joins:
            engine.joins[model].load_owned(rows, checkpoint.key)
    for series, severity in persist.severities_from_json(meta["severities"]).items():
        engine.board.adopt(series, severity)
    for model, version, quality_reference, judged in meta["instance"]:
        state = engine.states.get((model, version))
        if state is not None:
            state.quality_reference = state.quality_reference or quality_reference
            if judged is not None:
                state.adopt_judged(int(judged))
    for model, version, errors in meta["errors"]:
        state = engine.states.get((model, version))
        if state is not None:
            state.error_stream(checkpoint.key).adopt(errors)
