"""One model version's state: warm-up, lateness per partition, a partition's share out and in."""

from __future__ import annotations

import numpy as np

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import ModelBatch, concat_batches
from stream_monitor.decode.decoder import Decoder
from stream_monitor.state.ledger import PartitionLedger
from stream_monitor.state.model_state import ModelVersionState
from stream_monitor.summaries.layout import EVENTS_SLOT, CounterLayout
from stream_monitor.summaries.reference import Reference, build_reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import as_messages, make_config
from tests.unit.test_engine import START

MODEL = "fraud-detector"


def fraud_batch(
    config: MonitorConfig, rows: int, event_ts: float, seed: int, drifted: bool = False
) -> ModelBatch:
    """``rows`` decoded fraud-detector events at ``event_ts``."""
    events = SyntheticTraffic(seed=seed).fraud(rows, event_ts, drifted=drifted)
    decoder = Decoder(config.models, config.fields, config.limits)
    (batch,) = decoder.decode(as_messages(events)).batches
    return batch


def new_state(config: MonitorConfig, reference: Reference | None = None) -> ModelVersionState:
    model = config.model(MODEL)
    assert model is not None
    return ModelVersionState(
        model,
        "v1",
        config.windows,
        config.limits,
        config.concept_drift,
        CounterLayout,
        reference,
    )


def baseline(config: MonitorConfig) -> Reference:
    model = config.model(MODEL)
    assert model is not None
    return build_reference(model, [fraud_batch(config, 2000, START, seed=99)], source="test")


def ledger_events(ledger: PartitionLedger) -> float:
    """Events counted in a ledger's panes of the fraud detector."""
    return sum(vector[EVENTS_SLOT] for vector in ledger.panes[(MODEL, "v1")].values())


def test_warmup_builds_the_reference_from_the_first_events_and_counts_every_buffered_row() -> None:
    config = make_config()
    model = config.model(MODEL)
    assert model is not None and model.reference.warmup_events == 1000
    state = new_state(config)
    ledgers = [PartitionLedger(("events", p), hot_panes=3) for p in (0, 1)]
    batches = [fraud_batch(config, 300, START + minute * 60.0, seed=minute) for minute in range(4)]
    for minute, batch in enumerate(batches[:3]):
        counted = state.update(batch, ledgers[minute % 2])
        assert counted.parts == [] and counted.rejects == []
    assert state.reference is None and state.warmup_rows == 900 and state.events_total == 0
    assert all(not ledger.panes for ledger in ledgers)
    counted = state.update(batches[3], ledgers[1])
    assert state.reference is not None and state.warmup_rows == 0
    head = concat_batches(batches).take(np.arange(1000))
    expected = build_reference(
        model, [head], source="warmup:1000", max_known_categories=config.limits.max_known_categories
    )
    assert state.reference.to_dict() == expected.to_dict()
    assert state.events_total == 1200 and len(counted.parts) == 4
    assert ledger_events(ledgers[0]) == 600 and ledger_events(ledgers[1]) == 600
    assert state.windows is not None and state.cumulative is not None
    assert state.windows.window("15m")[EVENTS_SLOT] == 1200
    assert state.cumulative[EVENTS_SLOT] == 1200


def test_late_rows_are_judged_against_their_own_partitions_watermark() -> None:
    config = make_config()
    assert config.windows.allowed_lateness_s == 120
    state = new_state(config, baseline(config))
    ahead, behind = (PartitionLedger(("events", p), hot_panes=3) for p in (0, 1))
    state.update(fraud_batch(config, 50, START + 600, seed=1), ahead)
    old = fraud_batch(config, 40, START + 100, seed=2)
    assert state.update(old, behind).rejects == []  # partition 1 is not ahead: not late
    late = state.update(old, ahead)
    assert [r.reason for r in late.rejects] == ["late"] * 40
    assert [r.message_index for r in late.rejects] == old.message_index.tolist()
    assert late.parts == []
    within = state.update(fraud_batch(config, 30, START + 481, seed=3), ahead)  # 600 - 120 < 481
    assert within.rejects == [] and len(within.parts) == 1
    assert state.events_total == 50 + 40 + 30
    assert ledger_events(ahead) == 80 and ledger_events(behind) == 40


def windows_of(state: ModelVersionState) -> dict[str, np.ndarray]:
    assert state.windows is not None
    return {name: state.windows.window(name).copy() for name in state.window_sizes}


def test_removing_a_partition_takes_out_its_share_and_restoring_it_puts_it_back() -> None:
    config = make_config()
    reference = baseline(config)
    state, alone = new_state(config, reference), new_state(config, reference)
    kept, moved = (PartitionLedger(("events", p), hot_panes=3) for p in (0, 1))
    kept_alone = PartitionLedger(("events", 0), hot_panes=3)
    for minute in range(8):
        mine = fraud_batch(config, 60, START + minute * 60.0, seed=minute)
        state.update(mine, kept)
        alone.update(mine, kept_alone)
        state.update(fraud_batch(config, 90, START + minute * 60.0 + 30, seed=100 + minute), moved)
    both = windows_of(state)
    assert both["15m"][EVENTS_SLOT] == 8 * 150
    assert moved.key in state.errors
    state.remove_partition(moved)
    assert moved.key not in state.errors
    for name, vector in windows_of(alone).items():
        found = windows_of(state)[name]
        assert found[EVENTS_SLOT] == vector[EVENTS_SLOT]
        np.testing.assert_allclose(found, vector, rtol=1e-12, atol=1e-9, err_msg=name)
    state.restore_partition(moved, [])
    for name, vector in both.items():
        np.testing.assert_allclose(windows_of(state)[name], vector, rtol=1e-12, atol=1e-9)


def test_a_partitions_warmup_rows_leave_with_it_and_come_back_when_restored() -> None:
    config = make_config()
    state = new_state(config)
    kept, moved = (PartitionLedger(("events", p), hot_panes=3) for p in (0, 1))
    mine = fraud_batch(config, 300, START, seed=1)
    theirs = [fraud_batch(config, 200, START + 60 * m, seed=10 + m) for m in range(2)]
    state.update(mine, kept)
    for batch in theirs:
        state.update(batch, moved)
    assert state.warmup_rows == 700
    state.remove_partition(moved)
    assert state.warmup_rows == 300 and state.warmup_of(moved) == []
    assert [batch is mine for batch in state.warmup_of(kept)] == [True]
    counted = state.restore_partition(moved, theirs)
    assert counted.parts == [] and state.warmup_rows == 700
    assert [a is b for a, b in zip(state.warmup_of(moved), theirs, strict=True)] == [True, True]
    state.update(fraud_batch(config, 300, START + 120, seed=20), kept)  # 1000 reached
    assert state.reference is not None and state.events_total == 1000
    assert ledger_events(kept) == 600 and ledger_events(moved) == 400
