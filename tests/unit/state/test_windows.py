"""Window arithmetic, and sliding windows against recomputation from raw events."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.decode.batches import concat_batches
from stream_monitor.state.model_state import ModelVersionState
from stream_monitor.state.windows import (
    SlidingWindows,
    late_mask,
    pane_of,
    panes_for,
    window_panes,
)
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import as_messages, make_config


@pytest.mark.parametrize(
    ("ts", "pane_s", "pane"),
    [(0.0, 60, 0), (59.999, 60, 0), (60.0, 60, 1), (-0.5, 60, -1), (1700000000.0, 10, 170000000)],
)
def test_pane_of(ts: float, pane_s: float, pane: int) -> None:
    assert pane_of(np.array([ts]), pane_s).tolist() == [pane]


@pytest.mark.parametrize(
    ("end", "n", "span"), [(10, 5, (6, 10)), (0, 1, (0, 0)), (100, 60, (41, 100))]
)
def test_window_panes(end: int, n: int, span: tuple[int, int]) -> None:
    assert window_panes(end, n) == span


@pytest.mark.parametrize(("seconds", "pane_s", "n"), [(300, 60, 5), (86400, 60, 1440), (1, 60, 1)])
def test_panes_for(seconds: float, pane_s: float, n: int) -> None:
    assert panes_for(seconds, pane_s) == n


def test_late_mask_is_independent_of_batching() -> None:
    rng = np.random.default_rng(4)
    ts = np.cumsum(rng.exponential(1.0, 2000)) + rng.normal(0, 30, 2000)
    whole = late_mask(ts, -np.inf, 45.0)
    watermark, parts = -np.inf, []
    for chunk in np.array_split(ts, 17):
        parts.append(late_mask(chunk, watermark, 45.0))
        watermark = max(watermark, chunk.max())
    assert np.array_equal(whole, np.concatenate(parts))
    sequential = [t < max([-np.inf, *ts[:i]]) - 45.0 for i, t in enumerate(ts)]
    assert whole.tolist() == sequential
    assert 0 < whole.sum() < len(ts)


def test_sliding_windows_equal_recomputation_from_panes() -> None:
    rng = np.random.default_rng(5)
    store: dict[int, np.ndarray] = {}
    windows = SlidingWindows(width=3, window_sizes={"a": 3, "b": 7}, keep_panes=9, panes=store)
    added: dict[int, np.ndarray] = {}
    end = None
    for step in range(300):
        pane = int(rng.integers(0, 5) + (end or 0) - 2) if end is not None else 0
        if end is not None and pane <= end - 9:
            continue
        delta = rng.integers(0, 5, 3).astype(float)
        store[pane] = store.get(pane, np.zeros(3)) + delta
        windows.add(pane, delta)
        added[pane] = added.get(pane, np.zeros(3)) + delta
        if step % 3 == 0:
            end = max(end or 0, pane + int(rng.integers(0, 3)))
            windows.advance(end)
        if end is not None:
            for name, size in windows.window_sizes.items():
                expected = sum((v for p, v in added.items() if end - size < p <= end), np.zeros(3))
                assert np.array_equal(windows.window(name), expected), (step, name)


def test_state_windows_equal_recomputation_from_raw_events() -> None:
    config = make_config()
    model = config.model("fraud-detector")
    assert model is not None
    traffic = SyntheticTraffic(seed=9)
    rng = np.random.default_rng(9)
    events = []
    for minute in range(40):
        for event in traffic.fraud(150, 1_700_000_000 + minute * 60.0, drifted=minute > 25):
            event["timestamp"] = float(event["timestamp"]) + float(
                rng.uniform(0, 60) + rng.normal(0, 40)
            )
            events.append(event)
    from stream_monitor.engine import Engine

    engine = Engine(config)
    for start in range(0, len(events), 700):
        engine.process(as_messages(events[start : start + 700]))
    state: ModelVersionState = engine.states[("fraud-detector", "v1")]
    assert state.layout is not None and state.windows is not None
    late = engine.invalid_total["late"]
    assert late > 0

    decoded = concat_batches(engine.decoder.decode(as_messages(events)).batches)
    accepted = ~late_mask(decoded.event_ts, -np.inf, config.windows.allowed_lateness_s)
    assert int((~accepted).sum()) == late
    kept = decoded.take(accepted)
    panes = pane_of(kept.event_ts, 60.0)
    for name in state.window_sizes:
        first, last = state.windows.span(name)
        rows = (panes >= first) & (panes <= last)
        window = kept.take(rows)
        recomputed = state.layout.pane_deltas(window, np.zeros(len(window), dtype=np.int64), 1)[0]
        np.testing.assert_allclose(state.windows.window(name), recomputed, rtol=1e-12, err_msg=name)
        stats = state.layout.stability(state.windows.window(name))
        assert stats.events == int(rows.sum())
