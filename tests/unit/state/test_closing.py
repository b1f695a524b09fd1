"""When panes close: every expected partition past them, unless idle (caught up and still)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from stream_monitor.config import ConfigError
from stream_monitor.config_file import check_role
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import make_config
from tests.unit.test_engine import START


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def on(partition: int, minute: int, offset: int) -> list[RawMessage]:
    events = SyntheticTraffic(seed=minute).fraud(50, START + minute * 60.0)
    return [
        RawMessage(orjson.dumps(e), None, "events", partition, offset + i)
        for i, e in enumerate(events)
    ]


def test_an_expected_partition_holds_panes_open_until_idle() -> None:
    clock = FakeClock()
    engine = Engine(make_config(), clock=clock)
    engine.store.expect([("events", 0), ("events", 1)])
    engine.process(on(0, 0, 0) + on(0, 10, 50))
    assert engine.store.closing_watermark() == -math.inf  # partition 1 has said nothing yet
    clock.now += make_config().windows.idle_timeout_s
    assert engine.store.closing_watermark() == engine.store.ledgers[("events", 0)].event_time


def test_a_partition_with_unread_messages_is_never_idle() -> None:
    clock = FakeClock()
    engine = Engine(make_config(), clock=clock)
    engine.store.expect([("events", 0), ("events", 1)])
    engine.process(on(0, 0, 0) + on(1, 0, 0))
    engine.process(on(0, 10, 50))
    behind = engine.store.ledgers[("events", 1)]
    assert engine.store.closing_watermark() == behind.event_time
    behind.caught_up = False
    clock.now += 10 * make_config().windows.idle_timeout_s
    assert engine.store.closing_watermark() == behind.event_time
    behind.caught_up = True
    assert engine.store.closing_watermark() == engine.store.ledgers[("events", 0)].event_time


def test_drift_is_judged_once_per_closed_pane_in_order() -> None:
    config = make_config()
    engine = Engine(config)
    engine.process([m for minute in range(30) for m in on(0, minute, minute * 50)])
    state = engine.states[("fraud-detector", "v1")]
    engine.evaluate(now_s=START)
    assert state.judged is not None and state.windows is not None
    lateness_panes = config.windows.allowed_lateness_s / config.windows.pane_s
    assert state.judged.end_pane == state.windows.end_pane - lateness_panes - 1
    for name in state.window_sizes:
        first, last = state.judged.span(name)
        expected = sum(
            engine.store.ledgers[("events", 0)].panes[state.key][p] for p in range(first, last + 1)
        )
        np.testing.assert_allclose(state.judged.window(name), expected, rtol=1e-12, atol=1e-9)
    engine.evaluate(now_s=START, final=True)
    assert state.judged.end_pane == state.windows.end_pane


def test_scaled_out_roles_need_a_baseline_per_model() -> None:
    config = make_config()
    check_role(config, "all")
    with pytest.raises(ConfigError, match=r"models\[0\]\.reference\.baseline: required"):
        check_role(config, "ingest")
    with pytest.raises(ConfigError, match="--role"):
        check_role(config, "both")
