"""One partition's share of the state: packed panes, change tracking, eviction, replacement."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.state.ledger import PaneChanges, PaneVectors, PartitionLedger

VERSION = ("m", "v1")


def awkward_vector(rng: np.random.Generator, width: int = 64) -> np.ndarray:
    """Values a lossy codec would get wrong: extremes, subnormals, -0.0, NaN, inf, zeros."""
    vector = rng.normal(size=width) * 10.0 ** rng.integers(-300, 300, width)
    vector[:6] = [5e-324, -0.0, np.nan, np.inf, -np.inf, 1.0 + 2**-52]
    vector[rng.random(width) < 0.3] = 0.0
    return vector


def test_cold_panes_are_packed_and_read_back_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    originals = {pane: awkward_vector(rng) for pane in range(8)}
    panes = PaneVectors(hot_panes=2)
    for pane, vector in originals.items():
        panes[pane] = vector.copy()
    assert sorted(panes.packed_panes()) == [0, 1, 2, 3, 4]  # behind newest (7) by more than 2
    assert len(panes) == 8 and set(panes) == set(originals)
    for pane, vector in originals.items():
        assert panes[pane].tobytes() == vector.tobytes()
    assert not panes[0].flags.writeable  # a packed pane is read, never changed in place


def test_adding_to_a_packed_pane_unpacks_it_and_the_next_pane_packs_it_again() -> None:
    rng = np.random.default_rng(1)
    originals = {pane: awkward_vector(rng) for pane in range(5)}
    panes = PaneVectors(hot_panes=1)
    for pane, vector in originals.items():
        panes.add(pane, vector)
    delta = rng.normal(size=64)
    panes.add(0, delta)
    assert 0 not in panes.packed_panes()
    expected = originals[0] + delta
    assert panes[0].tobytes() == expected.tobytes()
    panes.add(5, np.zeros(64))  # the newest pane moves on: pane 0 is cold again
    assert 0 in panes.packed_panes()
    assert panes[0].tobytes() == expected.tobytes()


def test_a_cold_pane_set_directly_is_packed_at_once_and_add_copies_its_delta() -> None:
    panes = PaneVectors(hot_panes=1)
    delta = np.array([1.0, 2.0])
    panes.add(10, delta)
    delta += 100.0  # the pane holds its own copy
    assert panes[10].tolist() == [1.0, 2.0]
    panes[3] = np.array([7.0, 0.0])
    assert panes.packed_panes() == [3] and panes[3].tolist() == [7.0, 0.0]
    del panes[3]
    assert 3 not in panes and panes.get(3) is None
    with pytest.raises(KeyError):
        panes[3]
    with pytest.raises(ValueError):
        PaneVectors(hot_panes=-1)


def test_packed_sparse_counts_take_a_fraction_of_their_size() -> None:
    panes = PaneVectors(hot_panes=0)
    for pane in range(10):
        vector = np.zeros(1000)
        vector[[0, 3, 500 + pane]] = [120.0, 40.0, 1.0]
        panes.add(pane, vector)
    assert len(panes.packed_panes()) == 9
    assert panes.nbytes < 8000 + 9 * 8000 / 7  # the hot pane, and the others 7 times smaller


def test_pane_changes_write_changed_panes_and_tombstone_only_written_ones() -> None:
    held = {VERSION: PaneVectors(hot_panes=4)}
    for pane in (1, 2):
        held[VERSION][pane] = np.full(3, float(pane))
    changes = PaneChanges()
    assert not changes.pending
    for pane in (1, 2, 9):  # pane 9 changed but is not held: nothing to write
        changes.touch((VERSION, pane))
    changed, evicted = changes.take(held)
    assert set(changed) == {(VERSION, 1), (VERSION, 2)} and evicted == set()
    assert changed[(VERSION, 2)].tolist() == [2.0, 2.0, 2.0]
    assert not changes.pending
    changes.evict((VERSION, 1))  # written before: its destination needs a tombstone
    changes.touch((VERSION, 5))
    changes.evict((VERSION, 5))  # never written: nothing to delete
    assert changes.pending
    assert changes.take(held) == ({}, {(VERSION, 1)})
    changes.evict((VERSION, 1))  # a second eviction writes no second tombstone
    assert changes.take(held) == ({}, set())


def test_each_destination_of_a_ledger_is_tracked_on_its_own() -> None:
    ledger = PartitionLedger(("t", 0), hot_panes=2)
    ledger.add(VERSION, 4, np.ones(2))
    changed, _ = ledger.take_changes()
    assert set(changed) == {(VERSION, 4)}
    assert ledger.take_changes() == ({}, set())
    published, _ = ledger.take_unpublished()  # the checkpoint's take left the partials' alone
    assert set(published) == {(VERSION, 4)}


def ledger_with_panes(count: int) -> PartitionLedger:
    """A ledger with panes 0 .. count-1 of VERSION, every one written to both destinations."""
    ledger = PartitionLedger(("t", 0), hot_panes=2)
    for pane in range(count):
        ledger.add(VERSION, pane, np.full(3, pane + 1.0))
    ledger.take_changes()
    ledger.take_unpublished()
    return ledger


def test_evict_holds_panes_not_yet_published_when_asked() -> None:
    ledger = ledger_with_panes(6)
    ledger.add(VERSION, 1, np.ones(3))  # changed since its last publication
    ledger.evict(VERSION, 4, hold_unpublished=True)
    assert sorted(ledger.panes[VERSION]) == [1, 4, 5]
    changed, evicted = ledger.take_unpublished()
    assert set(changed) == {(VERSION, 1)} and changed[(VERSION, 1)].tolist() == [3.0, 3.0, 3.0]
    assert evicted == {(VERSION, 0), (VERSION, 2), (VERSION, 3)}
    ledger.evict(VERSION, 4, hold_unpublished=True)  # published now: it goes
    assert sorted(ledger.panes[VERSION]) == [4, 5]
    assert ledger.take_unpublished() == ({}, {(VERSION, 1)})
    assert ledger.take_changes() == ({}, {(VERSION, p) for p in range(4)})


def test_evict_without_holding_forgets_every_older_pane() -> None:
    ledger = ledger_with_panes(6)
    ledger.add(VERSION, 1, np.ones(3))
    ledger.evict(VERSION, 4)
    assert sorted(ledger.panes[VERSION]) == [4, 5]
    assert ledger.take_unpublished() == ({}, {(VERSION, p) for p in range(4)})
    ledger.evict(("other", "v"), 100)  # a version the ledger never held: nothing happens
    assert sorted(ledger.panes[VERSION]) == [4, 5]


def test_mark_all_dirty_rewrites_every_pane_and_keeps_pending_tombstones() -> None:
    ledger = ledger_with_panes(5)
    ledger.evict(VERSION, 1)
    ledger.mark_all_dirty()
    assert ledger.checkpointed.pending
    changed, evicted = ledger.take_changes()
    assert sorted(pane for _, pane in changed) == [1, 2, 3, 4]
    for (_, pane), vector in changed.items():
        assert vector.tolist() == [pane + 1.0] * 3
    assert evicted == {(VERSION, 0)}
    assert not ledger.checkpointed.pending


def test_replace_returns_the_change_and_marks_the_pane_for_both_destinations() -> None:
    ledger = PartitionLedger(("t", 0), hot_panes=1)
    first = np.array([1.0, 2.0, 3.0])
    assert ledger.replace(VERSION, 7, first).tolist() == [1.0, 2.0, 3.0]
    second = np.array([4.0, 2.0, 0.5])
    assert ledger.replace(VERSION, 7, second).tolist() == [3.0, 0.0, -2.5]
    assert ledger.panes[VERSION][7].tolist() == [4.0, 2.0, 0.5]
    ledger.add(VERSION, 9, np.zeros(3))  # pane 7 is now packed
    assert 7 in ledger.panes[VERSION].packed_panes()
    assert ledger.replace(VERSION, 7, first).tolist() == [-3.0, 0.0, 2.5]
    assert {k for k in ledger.take_changes()[0]} == {(VERSION, 7), (VERSION, 9)}
    assert {k for k in ledger.take_unpublished()[0]} == {(VERSION, 7), (VERSION, 9)}


def test_watermarks_only_move_forward() -> None:
    ledger = PartitionLedger(("t", 0), hot_panes=1)
    assert ledger.event_time == -np.inf and ledger.watermark(VERSION) == -np.inf
    ledger.advance(VERSION, 50.0)
    ledger.advance(VERSION, 20.0)
    ledger.advance(("m", "v2"), 80.0)
    assert ledger.watermark(VERSION) == 50.0 and ledger.event_time == 80.0
