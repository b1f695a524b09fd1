"""Compressed cold panes: same vectors as a plain dict, same engine results, less memory."""

from __future__ import annotations

import numpy as np

from stream_monitor.engine import Engine
from stream_monitor.state.ledger import PaneVectors
from stream_monitor.tools.bench_memory import engine_state_bytes
from stream_monitor.tools.workload import BenchTraffic, Workload, bench_config, row_messages


def test_pane_vectors_read_back_what_a_dict_of_vectors_holds() -> None:
    rng = np.random.default_rng(7)
    panes = PaneVectors(hot_panes=3)
    plain: dict[int, np.ndarray] = {}
    for step in range(3000):
        pane = int(rng.integers(0, 12 + step // 50))
        action = rng.random()
        if action < 0.6:
            delta = rng.integers(0, 5, 40).astype(np.float64) * rng.random(40)
            panes.add(pane, delta)
            plain[pane] = plain[pane] + delta if pane in plain else delta.copy()
        elif action < 0.8:
            vector = rng.random(40)
            panes[pane] = vector.copy()
            plain[pane] = vector
        elif pane in plain:
            del panes[pane]
            del plain[pane]
    assert sorted(panes) == sorted(plain)
    assert len(panes) == len(plain)
    assert panes.packed_panes(), "old panes should have been packed"
    for pane, vector in plain.items():
        assert np.array_equal(panes[pane], vector)
    assert panes.get(10**6) is None
    newest = max(plain)
    assert all(p < newest - 3 for p in panes.packed_panes())


def run(workload: Workload, hot_panes: int | None) -> tuple[Engine, list[dict[str, object]]]:
    """The bench workload spread over a day of event time (every pane of every window used)."""
    engine = Engine(bench_config(workload))
    if hot_panes is not None:
        engine.store.hot_panes = hot_panes
    traffic = BenchTraffic(workload, rate_per_s=workload.events * 1.5 / workload.keep_s)
    events = []
    for _ in range(workload.events // workload.batch):
        engine.process(row_messages(traffic.take(workload.batch)))
        events += [e.to_dict() for e in engine.evaluate()]
    events += [e.to_dict() for e in engine.evaluate(final=True)]
    for event in events:
        event.pop("detected_at")  # wall time
    return engine, events


def test_engine_with_packed_panes_gives_the_same_windows_and_events_with_less_memory() -> None:
    workload = Workload(events=12_000, batch=500, features=12, categorical=2, models=2)
    packed, packed_events = run(workload, None)
    plain, plain_events = run(workload, 10**9)
    assert packed_events == plain_events
    assert len(packed_events) > 0
    a, b = packed.snapshot().windows, plain.snapshot().windows
    assert len(a) == 6
    assert repr(a) == repr(b)  # bit for bit (repr also compares NaN)
    held = [p for ledger in packed.store.ledgers.values() for p in ledger.panes.values()]
    assert sum(len(p.packed_panes()) for p in held) > 1000
    assert engine_state_bytes(packed) * 5 < engine_state_bytes(plain)
