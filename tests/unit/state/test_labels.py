"""The delayed-label join store: joins both ways, time to live, bounded memory, state."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.state.labels import Expired, Joined, LabelJoinStore


def test_label_after_prediction_and_before_it() -> None:
    store = LabelJoinStore(max_entries=100, ttl_s=600)
    assert (
        store.add_predictions(
            ["a", "b"], "m", "v1", np.array([1, 2]), np.array([0.9, 0.1]), np.array([60.0, 130.0])
        )
        == []
    )
    assert store.add_labels(["c"], "m", [1], [140.0]) == []  # c's label comes first
    assert (store.pending_predictions, store.pending_labels) == (2, 1)
    joined = store.add_labels(["b", "a"], "m", [0, 1], [150.0, 151.0])
    assert joined == [Joined("m", "v1", 2, 0.1, 0, 130.0), Joined("m", "v1", 1, 0.9, 1, 60.0)]
    assert isinstance(joined[0].prediction, float)  # numpy values come out as Python values
    late = store.add_predictions(["c"], "m", "v2", [3], [0.4], [170.0])
    assert late == [Joined("m", "v2", 3, 0.4, 1, 170.0)]
    assert store.counters.joined == 3 and len(store) == 0


def test_ids_are_scoped_by_model() -> None:
    store = LabelJoinStore()
    store.add_predictions(["x"], "m1", "v", [0], [1.0], [0.0])
    assert store.add_labels(["x"], "m2", [1], [1.0]) == []
    assert store.add_labels(["x"], ["m1"], [1], [1.0]) == [Joined("m1", "v", 0, 1.0, 1, 0.0)]


def test_event_time_ttl_with_out_of_order_events() -> None:
    store = LabelJoinStore(ttl_s=60)
    store.add_predictions(
        ["a", "b", "c", "d"], "m", "v", [0] * 4, [0.0] * 4, [100.0, 50.0, 200.0, 10.0]
    )
    store.add_labels(["z"], "m", ["yes"], [90.0])
    assert store.expire(160.0) == Expired(predictions=2, labels=1)  # b, d and label z
    assert store.expire(160.0) == Expired(0, 0)
    assert store.expire() == Expired(1, 0)  # default now: the high-water mark, 200
    assert store.counters.expired_predictions == 3 and store.counters.orphan_labels == 1
    assert store.add_labels(["c"], "m", [1], [201.0])[0].pane == 0


def test_wall_clock_ttl() -> None:
    now = [1000.0]
    store = LabelJoinStore(ttl_s=30, clock="wall", wall_clock=lambda: now[0])
    store.add_predictions(["a"], "m", "v", [0], [0.5], [5.0])  # event time is irrelevant here
    now[0] = 1020.0
    store.add_labels(["q"], "m", [1], [np.nan])
    now[0] = 1040.0
    assert store.expire() == Expired(1, 0)
    assert store.expire(1051.0) == Expired(0, 1)


def test_memory_is_bounded_by_evicting_the_oldest() -> None:
    store = LabelJoinStore(max_entries=3, ttl_s=1e9)
    store.add_predictions(["1", "2", "3"], "m", "v", [0, 0, 0], [0, 0, 0], [0.0, 1.0, 2.0])
    store.add_labels(["L"], "m", [1], [3.0])
    store.add_predictions(["4"], "m", "v", [0], [0], [4.0])
    assert store.counters.evicted_predictions == 2 and len(store) == 3
    assert store.add_labels(["1"], "m", [1], [5.0]) == []  # evicted: waits as a label now
    assert store.counters.evicted_predictions == 3  # "3" went to make room
    assert store.add_labels(["4"], "m", [1], [6.0]) == [Joined("m", "v", 0, 0, 1, 4.0)]
    for i in range(10_000):
        store.add_predictions([f"p{i}"], "m", "v", [0], [0], [float(i)])
        store.add_labels([f"l{i}"], "m", [0], [float(i)])
    assert len(store) == 3
    assert len(store._queue) <= 2 * store.max_entries + 1024


def test_duplicates_and_missing_ids() -> None:
    store = LabelJoinStore()
    store.add_predictions(["a", "a", None], "m", "v", [0, 1, 2], [1, 2, 3], [0.0, 0.0, 0.0])
    store.add_labels(["b", "b", None], "m", [1, 0, 1], 5.0)
    c = store.counters
    assert (c.duplicate_predictions, c.duplicate_labels, c.missing_ids) == (1, 1, 2)
    assert store.add_labels(["a"], "m", [1], [6.0]) == [Joined("m", "v", 0, 1, 1, 0.0)]


def test_state_round_trips_through_json() -> None:
    store = LabelJoinStore(max_entries=50, ttl_s=100)
    rng = np.random.default_rng(0)
    ts = rng.uniform(0, 500, 80)
    store.add_predictions(
        [f"e{i}" for i in range(80)], "m", "v", (ts // 60).astype(int), rng.random(80), ts
    )
    store.add_labels([f"e{i}" for i in range(60, 100)], "m", list(range(40)), ts[:40] + 5)
    copy = LabelJoinStore(max_entries=50, ttl_s=100)
    copy.from_state(json.loads(json.dumps(store.to_state())))
    assert copy.to_state() == store.to_state()
    for s in (store, copy):
        s.expire(450.0)
    assert copy.counters == store.counters
    ids = [f"e{i}" for i in range(100)]
    assert copy.add_labels(ids, "m", [1] * 100, 600.0) == store.add_labels(
        ids, "m", [1] * 100, 600.0
    )
    assert copy.to_state() == store.to_state()


def test_validation() -> None:
    for bad in ({"max_entries": 0}, {"ttl_s": 0}, {"clock": "lamport"}):
        with pytest.raises(ValueError):
            LabelJoinStore(**bad)
    with pytest.raises(ValueError):
        LabelJoinStore().add_labels(["a", "b"], "m", [1], [0.0, 1.0])


class NaiveStore:
    """The obvious O(n) model of the store, to compare against."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self.entries: dict[str, tuple[str, float, Any]] = {}
        self.counts = {
            "joined": 0,
            "expired": 0,
            "orphan": 0,
            "evicted_p": 0,
            "evicted_l": 0,
            "dup_p": 0,
            "dup_l": 0,
        }

    def add(self, kind: str, key: str, ts: float, payload: Any) -> list[tuple[Any, Any]]:
        other = self.entries.get(key)
        if other is not None and other[0] != kind:
            del self.entries[key]
            self.counts["joined"] += 1
            pred, label = (payload, other[2]) if kind == "p" else (other[2], payload)
            return [(pred, label)]
        if other is not None:
            self.counts["dup_" + kind] += 1
            return []
        self.entries[key] = (kind, ts, payload)
        while len(self.entries) > self.max_entries:
            oldest = next(iter(self.entries))
            self.counts["evicted_" + self.entries.pop(oldest)[0]] += 1
        return []

    def expire(self, now: float) -> None:
        for key, (kind, ts, _) in list(self.entries.items()):
            if ts < now - self.ttl_s:
                del self.entries[key]
                self.counts["expired" if kind == "p" else "orphan"] += 1


operation = st.tuples(
    st.sampled_from(["p", "l", "x"]), st.integers(0, 15), st.floats(0, 1000, allow_nan=False)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=120), st.integers(1, 8), st.sampled_from([50.0, 300.0]))
def test_matches_a_naive_model(ops: list[tuple[str, int, float]], cap: int, ttl: float) -> None:
    store, naive = LabelJoinStore(max_entries=cap, ttl_s=ttl), NaiveStore(cap, ttl)
    for kind, n, ts in ops:
        key = f"e{n}"
        if kind == "p":
            got = store.add_predictions([key], "m", "v", [0], [ts], [ts])
            want = naive.add("p", key, ts, ts)
        elif kind == "l":
            got = store.add_labels([key], "m", [ts], [ts])
            want = naive.add("l", key, ts, ts)
        else:
            store.expire(ts)
            naive.expire(ts)
            got, want = [], []
        assert [(j.prediction, j.label) for j in got] == want
        assert len(store) == len(naive.entries) <= cap
    c = store.counters
    assert naive.counts == {
        "joined": c.joined,
        "expired": c.expired_predictions,
        "orphan": c.orphan_labels,
        "evicted_p": c.evicted_predictions,
        "evicted_l": c.evicted_labels,
        "dup_p": c.duplicate_predictions,
        "dup_l": c.duplicate_labels,
    }
    assert store.pending_predictions == sum(e[0] == "p" for e in naive.entries.values())
