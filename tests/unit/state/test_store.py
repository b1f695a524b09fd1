"""The state store behind an engine: closing, checkpoints and restore, drop, progress reports."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.state.keys import PartitionCheckpoint
from stream_monitor.state.windows import pane_of
from stream_monitor.summaries.reference import Reference
from tests.conftest import make_config
from tests.unit.scaleout.test_partials import TOPIC, baselines, messages, stream, windows_of
from tests.unit.state.test_closing import FakeClock, on
from tests.unit.test_engine import START

P0, P1, P2 = ((TOPIC, p) for p in range(3))
FRAUD = ("fraud-detector", "v1")
IDLE = make_config().windows.idle_timeout_s


@pytest.fixture(scope="module")
def refs() -> dict[str, Reference]:
    """Baselines of both models (their first ten minutes of traffic)."""
    return baselines(stream(minutes=10))


@pytest.fixture(scope="module")
def two_partitions() -> list[RawMessage]:
    """24 minutes of both models (drift from minute 12) on input partitions 0 and 1."""
    return [m for m in messages(stream(minutes=24)) if m.partition in (0, 1)]


def feed(engine: Engine, batch: list[RawMessage], final: bool = False) -> list[dict[str, Any]]:
    """Process one batch and evaluate: the drift events it gave, as dicts without the wall
    clock time of their detection."""
    engine.process(batch)
    events = [event.to_dict() for event in engine.evaluate(now_s=START, final=final)]
    for event in events:
        del event["detected_at"]
    return events


def assert_same_windows(found: Engine, expected: Engine) -> None:
    want, got = windows_of(expected), windows_of(found)
    assert want.keys() == got.keys() and want
    for key, vector in want.items():
        assert got[key][0] == vector[0], key  # events: an exact count
        np.testing.assert_allclose(got[key], vector, rtol=1e-12, atol=1e-9, err_msg=str(key))


def clocked(refs: dict[str, Reference]) -> tuple[Engine, FakeClock]:
    """An engine whose partitions go idle after IDLE seconds of its fake clock."""
    clock = FakeClock()
    return Engine(make_config(), refs, clock=clock), clock


def test_without_a_clock_an_expected_partition_holds_panes_open_for_good(
    refs: dict[str, Reference],
) -> None:
    engine = Engine(make_config(), refs)
    assert engine.store.closing_watermark() == -math.inf  # nothing known yet
    engine.store.expect([P0, P1])
    engine.process(on(0, 5, 0))
    assert engine.store.closing_watermark() == -math.inf
    engine.process(on(1, 3, 0))
    assert engine.store.closing_watermark() == START + 3 * 60


def test_the_closing_watermark_lets_idle_partitions_go_and_waits_for_behind_ones(
    refs: dict[str, Reference],
) -> None:
    engine, clock = clocked(refs)
    store = engine.store
    store.expect([P0, P1, P2])
    expected_at = clock.now
    clock.now += IDLE - 1
    engine.process(on(0, 5, 0))
    engine.process(on(1, 3, 0))
    moved_at = clock.now
    assert store.closing_watermark() == -math.inf  # partition 2 said nothing, not idle yet
    clock.now = expected_at + IDLE
    store.expect([P2])  # expecting it again does not restart its idle time
    assert store.closing_watermark() == START + 3 * 60  # 2 is idle; 1 is behind 0
    clock.now = moved_at + IDLE - 0.5
    assert store.closing_watermark() == START + 3 * 60  # 0 and 1 moved less than IDLE s ago
    clock.now = moved_at + IDLE
    assert store.closing_watermark() == START + 5 * 60  # all idle: the newest of all
    engine.process(on(1, 6, 50))
    assert store.closing_watermark() == START + 6 * 60  # 1 moved; 0 is still idle
    store.ledgers[P0].caught_up = False  # messages left to read: never idle
    assert store.closing_watermark() == START + 5 * 60


def test_note_end_offset_says_whether_a_partition_is_caught_up() -> None:
    engine = Engine(make_config())
    engine.process(on(0, 0, 0))
    ledger = engine.store.ledgers[P0]
    assert ledger.next_offset == 50 and engine.store.next_offset(P0) == 50
    for end_offset, caught_up in [(80, False), (50, True), (10, True), (-1, False)]:
        engine.store.note_end_offset(P0, end_offset)
        assert ledger.caught_up is caught_up, end_offset
    engine.store.note_end_offset(P1, 0)  # not read here: nothing to note
    assert P1 not in engine.store.ledgers and engine.store.next_offset(P1) is None


def test_quiet_partitions_are_the_caught_up_ones_silent_or_still_for_the_idle_timeout(
    refs: dict[str, Reference],
) -> None:
    engine, clock = clocked(refs)
    store = engine.store
    store.expect([P0, P1])
    assert set(store.quiet_partitions()) == {P0, P1}  # neither reported anything
    engine.process(on(0, 0, 0))
    assert store.quiet_partitions() == [P1]
    clock.now += IDLE
    assert set(store.quiet_partitions()) == {P0, P1}
    store.note_end_offset(P0, 70)  # 20 messages left to read
    assert store.quiet_partitions() == [P1]
    store.note_end_offset(P1, 5)  # never read, 5 messages there
    assert store.quiet_partitions() == []


def test_checkpoints_restored_in_another_engine_continue_exactly(
    two_partitions: list[RawMessage],
) -> None:
    """No baseline: the fraud reference comes from warm-up, the price model is still warming."""
    batches_of = two_partitions
    batches = [batches_of[i : i + 600] for i in range(0, len(batches_of), 600)]
    half = len(batches) // 2
    first = Engine(make_config())
    for batch in batches[:half]:
        feed(first, batch)
    assert first.states[FRAUD].reference is not None
    assert first.states[("price-estimator", "v1")].warmup_rows > 0
    assert first.judge.board.severities()
    second = Engine(make_config())
    for key in (P0, P1):
        changed, evicted, meta = first.checkpoint_partition(key)
        assert evicted == set()  # nothing was written before, so nothing to delete
        meta = orjson.loads(orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY))
        second.restore_partition(PartitionCheckpoint(key, 1, meta, changed))

    assert_same_ledgers(second, first)
    assert_same_references(second, first)
    for version, state in first.states.items():
        assert second.states[version].warmup_rows == state.warmup_rows
    assert second.judge.board.severities() == first.judge.board.severities()
    assert_same_windows(second, first)

    found, expected = [], []
    for batch in batches[half:]:
        expected += feed(first, batch)
        found += feed(second, batch)
    expected += feed(first, [], final=True)
    found += feed(second, [], final=True)
    assert {e["model"] for e in expected} == {"fraud-detector", "price-estimator"}
    assert_same_events(found, expected)
    assert_same_windows(second, first)
    assert all(state.reference is not None for state in first.states.values())
    assert_same_references(second, first)  # the price model's warm-up ended alike


def assert_same_ledgers(found: Engine, expected: Engine) -> None:
    """Every partition's offset, watermarks and pane vectors (bit for bit) are equal."""
    assert found.store.ledgers.keys() == expected.store.ledgers.keys()
    for key, ledger in expected.store.ledgers.items():
        other = found.store.ledgers[key]
        assert (other.next_offset, other.watermarks) == (ledger.next_offset, ledger.watermarks)
        assert other.panes.keys() == ledger.panes.keys()
        for version, panes in ledger.panes.items():
            assert sorted(other.panes[version]) == sorted(panes)
            for pane, vector in panes.items():
                assert other.panes[version][pane].tobytes() == vector.tobytes()


def assert_same_references(found: Engine, expected: Engine) -> None:
    """The same model versions, each with the same reference or none yet."""
    assert found.states.keys() == expected.states.keys()
    for key, state in expected.states.items():
        reference = found.states[key].reference
        if state.reference is None:
            assert reference is None
        else:
            assert reference is not None and reference.to_dict() == state.reference.to_dict()


def assert_same_events(found: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Each model's drift events in the same order; values may differ in the last bits."""
    floats = ("value", "threshold", "p_value", "critical_value")
    for model in {event["model"] for event in expected}:
        mine = [e for e in found if e["model"] == model]
        theirs = [e for e in expected if e["model"] == model]
        assert len(mine) == len(theirs)
        for event, other in zip(mine, theirs, strict=True):
            assert {k: v for k, v in event.items() if k not in floats} == {
                k: v for k, v in other.items() if k not in floats
            }
            for name in floats:
                if other[name] is None:
                    assert event[name] is None
                else:
                    assert event[name] == pytest.approx(other[name], rel=1e-9, abs=1e-12)


def test_drop_partition_takes_out_exactly_that_partitions_share(
    two_partitions: list[RawMessage], refs: dict[str, Reference]
) -> None:
    all_messages = two_partitions
    both, only_zero = Engine(make_config(), refs), Engine(make_config(), refs)
    both.store.expect([P0, P1])
    for start in range(0, len(all_messages), 700):
        batch = all_messages[start : start + 700]
        feed(both, batch)
        feed(only_zero, [m for m in batch if m.partition == 0])
    assert windows_of(both)[(*FRAUD, "15m")][0] > windows_of(only_zero)[(*FRAUD, "15m")][0]
    both.drop_partition(P1)
    assert P1 not in both.store.ledgers and both.store.expected == {P0}
    assert_same_windows(both, only_zero)
    both.drop_partition(P1)  # dropping it again changes nothing
    assert_same_windows(both, only_zero)


def test_a_partial_merged_into_a_new_state_follows_the_reported_watermark(
    two_partitions: list[RawMessage], refs: dict[str, Reference]
) -> None:
    all_messages = two_partitions
    ingest = Engine(make_config(), refs)
    ingest.process(all_messages[:2000])
    source = ingest.store.ledgers[P0]
    newest = max(source.panes[FRAUD])
    first = source.panes[FRAUD][newest].copy()
    engine = Engine(make_config(), refs)
    engine.store.follow_report(P0, dict(source.watermarks), source.next_offset, True)
    assert FRAUD not in engine.states  # reported before any partial of the model arrived
    state = engine.state(*FRAUD)
    assert state is not None and state.windows is not None
    assert engine.store.merge_partial(P0, state, newest, first)
    assert state.windows.end_pane == int(pane_of(np.array([source.watermark(FRAUD)]), 60)[0])
    assert np.array_equal(state.windows.window("5m"), first)
    second = first * 2.0
    assert engine.store.merge_partial(P0, state, newest, second)  # newer: replaces, not adds
    assert np.array_equal(state.windows.window("5m"), second)
    assert np.array_equal(engine.store.ledgers[P0].panes[FRAUD][newest], second)
    too_old = newest - 100
    assert not engine.store.merge_partial(P0, state, too_old, first)
    assert too_old not in engine.store.ledgers[P0].panes[FRAUD]
    assert np.array_equal(state.windows.window("5m"), second)


def test_follow_report_moves_a_partition_forward_only(refs: dict[str, Reference]) -> None:
    clock = FakeClock()
    engine = Engine(make_config(), refs, clock=clock)
    state = engine.state(*FRAUD)
    assert state is not None and state.windows is not None
    engine.store.follow_report(P0, {FRAUD: START + 600}, 42, False)
    ledger = engine.store.ledgers[P0]
    assert (ledger.next_offset, ledger.caught_up, ledger.advanced_at) == (42, False, clock.now)
    assert ledger.watermark(FRAUD) == START + 600 and state.watermark_s == START + 600
    assert state.windows.end_pane == int((START + 600) // 60)
    moved_at = clock.now
    clock.now += 5
    engine.store.follow_report(P0, {FRAUD: START + 300}, 50, True)  # an older report
    assert ledger.watermark(FRAUD) == START + 600 and ledger.advanced_at == moved_at
    assert (ledger.next_offset, ledger.caught_up) == (50, True)
    engine.store.follow_report(P0, {FRAUD: START + 660}, 60, True)
    assert ledger.advanced_at == clock.now and state.windows.end_pane == int((START + 660) // 60)
