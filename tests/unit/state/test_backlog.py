"""A backlog is judged in full: every window at every closed pane, however fast it is read.

Without a broker: one batch holding an hour of event time gives the drift events
of the same stream read a minute at a time; a checkpoint taken mid-backlog and
restored elsewhere continues them exactly; and only a partition that holds panes
open past ``windows.max_unjudged_s`` makes windows go unjudged, which is counted,
logged and said in the next drift event.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import orjson
import pytest

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.evaluate import DriftEvent
from stream_monitor.sinks.prometheus import build_registry
from stream_monitor.state.keys import PartitionCheckpoint
from stream_monitor.summaries.reference import Reference, build_reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import make_config
from tests.unit.state.test_closing import FakeClock
from tests.unit.test_engine import START

MINUTES = 60
PER_MINUTE = 200


def backlog(
    minutes: int = MINUTES, per_minute: int = PER_MINUTE, late_from: int = 40
) -> list[dict[str, Any]]:
    """Both synthetic models a minute at a time, in event-time order.

    They drift early (minutes 8 to 17) and late (from ``late_from``).
    """
    traffic = SyntheticTraffic(seed=3)
    events: list[dict[str, Any]] = []
    for minute in range(minutes):
        ts = START + minute * 60.0
        drifted = 8 <= minute < 18 or minute >= late_from
        events += traffic.fraud(per_minute, ts, drifted=drifted)
        events += traffic.price(per_minute, ts, drifted=drifted)
    return events


def baselines(config: MonitorConfig) -> dict[str, Reference]:
    """A reference per model from undrifted traffic of another seed."""
    traffic = SyntheticTraffic(seed=99)
    engine = Engine(config)
    found = {}
    for model in config.models:
        events = traffic.fraud(4000, START) if model.name == "fraud-detector" else []
        events = events or traffic.price(4000, START)
        batches = engine.decoder.decode(messages(events)).batches
        found[model.name] = build_reference(model, batches, source=f"{model.name}.jsonl")
    return found


def messages(events: list[dict[str, Any]], partition: int = 0, first: int = 0) -> list[RawMessage]:
    return [
        RawMessage(orjson.dumps(e), None, "events", partition, first + i)
        for i, e in enumerate(events)
    ]


def brief(events: list[DriftEvent]) -> dict[str, list[dict[str, Any]]]:
    """The events of each model in order, without their wall-clock detection time.

    Values, p-values and critical values are rounded to 9 significant digits:
    restored panes are summed in another order, which moves float sums
    (latency, errors) in their last bits.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        fields = {k: v for k, v in asdict(event).items() if k != "detected_at"}
        for name in ("value", "p_value", "critical_value"):
            if fields[name] is not None:
                fields[name] = float(f"{fields[name]:.9g}")
        found.setdefault(event.model, []).append(fields)
    return found


def minute_by_minute(config: MonitorConfig, events: list[dict[str, Any]]) -> list[DriftEvent]:
    """The drift events of ``events`` read a minute at a time, evaluated after each."""
    engine = Engine(config, baselines(config))
    found: list[DriftEvent] = []
    step = 2 * PER_MINUTE
    for start in range(0, len(events), step):
        engine.process(messages(events[start : start + step], first=start))
        found += engine.evaluate(now_s=START)
    return found + engine.evaluate(now_s=START, final=True)


def test_a_backlog_read_in_one_batch_is_judged_like_a_live_stream() -> None:
    config = make_config()
    events = backlog()
    live = minute_by_minute(config, events)
    engine = Engine(config, baselines(config))
    engine.process(messages(events))
    at_once = engine.evaluate(now_s=START) + engine.evaluate(now_s=START, final=True)
    assert brief(at_once) == brief(live)
    alerts = {(e.metric, e.feature) for e in live if e.severity == "alert"}
    assert ("csi", "amount") in alerts and ("csi", "area_m2") in alerts
    ends = sorted({e.window_end for e in live if e.severity == "alert" and e.metric == "csi"})
    early, late = START + 18 * 60, START + 40 * 60
    assert any(end <= iso(early) for end in ends) and any(end > iso(late) for end in ends)
    assert all(s.skipped_total == 0 for s in engine.states.values())


def iso(epoch_s: float) -> str:
    from stream_monitor.evaluate import iso_utc

    return iso_utc(epoch_s)


def test_a_checkpoint_mid_backlog_restored_elsewhere_continues_exactly() -> None:
    config = make_config()
    events = backlog()
    live = minute_by_minute(config, events)
    half = len(events) // 2
    first = Engine(config, baselines(config))
    first.process(messages(events[:half]))
    found = first.evaluate(now_s=START)
    key = ("events", 0)
    changed, _, meta = first.checkpoint_partition(key)
    meta = orjson.loads(orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY))
    second = Engine(config, baselines(config))
    second.restore_partition(PartitionCheckpoint(key, 1, meta, changed))
    second.process(messages(events[half:], first=half))
    found += second.evaluate(now_s=START) + second.evaluate(now_s=START, final=True)
    assert brief(found) == brief(live)
    assert all(s.skipped_total == 0 for s in second.states.values())


def test_a_partition_holding_panes_open_too_long_skips_windows_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    windows = {"pane_s": 60, "sizes": ["5m", "15m"], "allowed_lateness_s": 120}
    config = make_config(windows={**windows, "idle_timeout_s": 30, "max_unjudged_s": "20m"})
    clock = FakeClock()
    engine = Engine(config, baselines(config), clock=clock)
    engine.store.expect([("events", 0), ("events", 1)])  # partition 1 never says anything
    events = backlog()
    most_panes = 0
    with caplog.at_level(logging.WARNING, logger="stream_monitor.judging"):
        for start in range(0, len(events), 2 * PER_MINUTE):
            engine.process(messages(events[start : start + 2 * PER_MINUTE], first=start))
            assert engine.evaluate(now_s=START) == []  # nothing closes: partition 1 holds
            panes = engine.store.ledgers[("events", 0)].panes[("fraud-detector", "v1")]
            most_panes = max(most_panes, len(panes))
    state = engine.states[("fraud-detector", "v1")]
    # Panes held: the judging lag allowed (20 panes), the largest window (15) and lateness (2).
    assert most_panes <= 20 + 15 + 2 + 1
    skipped_ends = MINUTES - 20  # the newest pane is minute 59: ends 0 to 39 are given up
    assert state.skipped_total == skipped_ends * 2  # two window sizes
    registry = build_registry(engine.snapshot)
    labels = {"model": "fraud-detector", "version": "v1"}
    assert registry.get_sample_value("stream_monitor_windows_skipped_total", labels) == (
        skipped_ends * 2
    )
    warnings = [r.getMessage() for r in caplog.records if "not judged" in r.getMessage()]
    assert warnings and "fraud-detector v1" in warnings[0]
    assert "windows.max_unjudged_s" in warnings[0]

    clock.now += 31  # partition 1 is idle now: the held panes close and are judged
    judged = engine.evaluate(now_s=START)
    mine = [e for e in judged if e.model == "fraud-detector"]
    assert mine, "the late drift (from minute 40) is judged once partition 1 is idle"
    assert mine[0].unjudged is not None
    assert sum(r["windows"] for r in mine[0].unjudged) == skipped_ends * 2
    assert mine[0].unjudged[0]["first_window_end"] == iso((START // 60 + 1) * 60)
    assert all(e.unjudged is None for e in mine[1:])
    assert orjson.loads(mine[0].to_json())["unjudged"] == mine[0].unjudged


def test_max_unjudged_s_below_the_horizon_is_refused() -> None:
    from stream_monitor.config import ConfigError

    windows = {"pane_s": 60, "sizes": ["5m", "15m"], "allowed_lateness_s": 120}
    with pytest.raises(ConfigError, match=r"windows\.max_unjudged_s: 600s is less than"):
        make_config(windows={**windows, "max_unjudged_s": "10m"})


def checkpoint_of(engine: Engine, partition: int) -> PartitionCheckpoint:
    """Partition ``partition``'s checkpoint, as written to and read back from the changelog."""
    key = ("events", partition)
    changed, _, meta = engine.checkpoint_partition(key)
    return PartitionCheckpoint(key, 1, orjson.loads(orjson.dumps(meta)), changed)


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_checkpoints_cut_by_a_crash_restore_the_newest_severities(order: str) -> None:
    """A crash between two partitions' checkpoints leaves them at different judging points.

    Whatever the order they are restored in, the severities of the one judged
    further win, so the transitions that follow name the right previous severity.
    """
    config = make_config()
    events = backlog(minutes=30)  # drifts from minute 8 to 17, then settles
    half = len(events) // 2
    live = Engine(config, baselines(config))
    live.process(messages(events[:half], 0) + messages(events[:half], 1))
    live.evaluate(now_s=START)
    older = checkpoint_of(live, 0)
    live.process(messages(events[half:], 0, half) + messages(events[half:], 1, half))
    live.evaluate(now_s=START)
    newer = checkpoint_of(live, 1)
    assert older.meta["severities"] != newer.meta["severities"]  # judging moved in between
    restored = Engine(config, baselines(config))
    for checkpoint in [older, newer] if order == "older first" else [newer, older]:
        restored.restore_partition(checkpoint)
    assert restored.judge.board.severities() == live.judge.board.severities()
