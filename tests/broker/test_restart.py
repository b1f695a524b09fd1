"""Nothing lost, nothing counted twice: kill -9 and restart, and a rebalance mid-stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from stream_monitor.config import MonitorConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.summaries.reference import Reference, build_reference
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import (
    FRAUD_MODEL,
    MonitorProcess,
    as_messages,
    broker_config,
    produce,
    replay_metrics,
    samples,
    start_service,
    wait_for,
    write_config,
)
from tests.unit.test_engine import stream

STATS = (
    "stream_monitor_window_events",
    "stream_monitor_psi",
    "stream_monitor_csi",
    "stream_monitor_feature_null_ratio",
    "stream_monitor_new_category_ratio",
    "stream_monitor_labeled_events",
)

FRAUD = FRAUD_MODEL["name"]


def fraud_baseline(config: MonitorConfig, seed: int) -> dict[str, Reference]:
    """A baseline for the fraud detector from 3,000 undrifted events of ``seed``."""
    model = config.model(FRAUD)
    assert model is not None
    sample = Engine(config).decoder.decode(as_messages(SyntheticTraffic(seed).fraud(3000, 1.6e9)))
    return {FRAUD: build_reference(model, sample.batches, source="ref", digest="sha256:x")}


def test_kill_minus_nine_and_restart_equals_an_uninterrupted_run(
    broker: EmbeddedBroker, topic_names: Callable[..., str], tmp_path: Path
) -> None:
    events_topic = topic_names("events", partitions=3)
    topics = {"events": events_topic, "drift_events": topic_names("drift")}
    data = broker_config(broker, f"kill-{events_topic}", topics)
    config_file = write_config(tmp_path / "monitor.yaml", data)
    events = stream(minutes=20, drift_from=10, per_minute=200)
    expected = samples(replay_metrics(config_file, events, tmp_path), *STATS)

    half = len(events) // 2
    produce(broker.bootstrap_servers, events_topic, events[:half], "model")
    first = MonitorProcess(config_file, tmp_path).start()
    try:
        deadline = time.monotonic() + 60
        while first.consumed() < half and time.monotonic() < deadline:
            time.sleep(0.3)
        assert first.consumed() == half
        time.sleep(2.5)  # at least one checkpoint of the first half
        produce(broker.bootstrap_servers, events_topic, events[half : half + half // 2], "model")
        time.sleep(0.3)  # part of it processed, not yet checkpointed
    finally:
        first.kill()
    produce(broker.bootstrap_servers, events_topic, events[half + half // 2 :], "model")

    second = MonitorProcess(config_file, tmp_path).start()
    try:
        deadline, found = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            found = second.series(*STATS)
            if found == expected:
                break
            time.sleep(0.5)
    finally:
        status = second.stop()
    assert len(expected) > 20
    mismatched = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
    assert not mismatched, f"{len(mismatched)} series differ, e.g. {list(mismatched.items())[:3]}"
    assert status == 0, second.log_tail()


def test_rebalance_union_of_two_instances_equals_an_uninterrupted_run(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    events_topic = topic_names("events", partitions=3)
    topics = {"events": events_topic, "drift_events": topic_names("drift")}
    config = config_from_dict(
        broker_config(broker, f"rebalance-{events_topic}", topics, models=[FRAUD_MODEL])
    )
    baselines = fraud_baseline(config, seed=8)
    events = [e for e in stream(minutes=16, drift_from=8, per_minute=300) if e["model"] == FRAUD]

    def launch() -> tuple[MonitorService, threading.Event, threading.Thread]:
        return start_service(config, Engine(config, baselines))

    def owned(*services: MonitorService) -> int:
        return sum(
            sum(len(m) for m in ledger.panes.get(("fraud-detector", "v1"), {}).values()) > 0
            for s in services
            for ledger in s.engine.store.ledgers.values()
        )

    def settled(services: list[MonitorService], total: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            offsets = sum(
                (ledger.next_offset or 0)
                for s in services
                for key, ledger in s.engine.store.ledgers.items()
                if key in s._owned
            )
            if offsets >= total:
                return
            time.sleep(0.3)
        raise AssertionError(f"consumed {offsets} of {total}")

    a, a_stop, a_thread = launch()
    b, b_stop, b_thread = launch()
    third = len(events) // 3
    produce(broker.bootstrap_servers, events_topic, events[:third], "event_id")
    settled([a, b], third)
    b_stop.set()  # b leaves: its partitions are checkpointed and move to a
    b_thread.join(timeout=60)
    produce(broker.bootstrap_servers, events_topic, events[third : 2 * third], "event_id")
    settled([a], 2 * third)
    c, c_stop, c_thread = launch()  # b's replacement joins: partitions move back, restored
    produce(broker.bootstrap_servers, events_topic, events[2 * third :], "event_id")
    time.sleep(3)
    settled([a, c], len(events))
    time.sleep(2)
    try:
        uninterrupted = Engine(config, baselines)
        uninterrupted.process(as_messages(events))
        truth = uninterrupted.states[("fraud-detector", "v1")]
        assert truth.windows is not None
        parts = [s.engine.states.get(("fraud-detector", "v1")) for s in (a, c)]
        assert all(p is not None and p.windows is not None for p in parts)
        assert owned(a) and owned(c), "both instances should own partitions at the end"
        for window in truth.window_sizes:
            union = sum(p.windows.window(window) for p in parts)  # type: ignore[union-attr]
            np.testing.assert_allclose(union, truth.windows.window(window), rtol=1e-9, atol=1e-6)
    finally:
        for stop, thread in ((a_stop, a_thread), (c_stop, c_thread)):
            stop.set()
            thread.join(timeout=60)


def test_restore_of_32_partitions_equals_an_engine_that_read_the_same_events(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    partitions, written = 32, 28  # the last four partitions stay empty
    events_topic = topic_names("events", partitions=partitions)
    topics = {"events": events_topic, "drift_events": topic_names("drift")}
    config = config_from_dict(
        broker_config(broker, f"restore-{events_topic}", topics, models=[FRAUD_MODEL])
    )
    baselines = fraud_baseline(config, seed=3)
    # Ten minutes of events: every pane stays in the 15m window, so none is evicted.
    events = [e for e in stream(minutes=10, drift_from=5) if e["model"] == FRAUD]
    messages = [
        RawMessage(orjson.dumps(e), int(float(e["timestamp"]) * 1000), events_topic, i % written,
                   i // written)
        for i, e in enumerate(events)
    ]  # fmt: skip
    for partition in range(written):
        values = [m.value for m in messages if m.partition == partition]
        produce(broker.bootstrap_servers, events_topic, values, partition=partition)
    truth = Engine(config, baselines)
    truth.process(messages)

    def start() -> tuple[MonitorService, threading.Event, threading.Thread]:
        return start_service(config, Engine(config, baselines))

    def consumed(service: MonitorService) -> int:
        return sum(
            ledger.next_offset or 0 for ledger in list(service.engine.store.ledgers.values())
        )

    first, stop, thread = start()
    try:
        wait_for(lambda: consumed(first) == len(events), 60, "every event to be read")
    finally:
        stop.set()  # checkpoints every partition it owns as it leaves the group
        thread.join(timeout=60)
    second, stop, thread = start()
    try:
        wait_for(second.ready, 60, "the restored service to be ready")
        restored = second.engine
        assert (
            set(restored.store.ledgers)
            == set(truth.store.ledgers)
            == {(events_topic, p) for p in range(written)}
        )  # the empty partitions were restored as empty
        for key, expected in truth.store.ledgers.items():
            ledger = restored.store.ledgers[key]
            assert ledger.next_offset == expected.next_offset, key
            assert ledger.watermarks == expected.watermarks, key
            assert {v: set(p) for v, p in ledger.panes.items()} == {
                v: set(p) for v, p in expected.panes.items()
            }, key
            for version, panes in expected.panes.items():
                for pane, vector in panes.items():
                    np.testing.assert_allclose(ledger.panes[version][pane], vector, atol=1e-9)
        state = restored.states[("fraud-detector", "v1")]
        whole = truth.states[("fraud-detector", "v1")]
        assert state.windows is not None and whole.windows is not None
        for window in whole.window_sizes:
            np.testing.assert_allclose(
                state.windows.window(window), whole.windows.window(window), rtol=1e-9, atol=1e-6
            )
    finally:
        stop.set()
        thread.join(timeout=60)
