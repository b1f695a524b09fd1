"""The engine end to end without a broker: drift found where it is, and only there."""

from __future__ import annotations

import numpy as np
import orjson

from stream_monitor.decode.batches import RawMessage, Reject
from stream_monitor.decode.parsing import chunks, message_sizes
from stream_monitor.engine import Engine
from stream_monitor.summaries.reference import build_reference
from stream_monitor.tools.synthetic import DRIFTING_FEATURES, SyntheticTraffic
from tests.conftest import as_messages, make_config

START = 1_700_000_000.0


def stream(
    minutes: int, drift_from: int, per_minute: int = 300, seed: int = 1
) -> list[dict[str, object]]:
    traffic = SyntheticTraffic(seed=seed)
    events: list[dict[str, object]] = []
    for minute in range(minutes):
        ts = START + minute * 60.0
        events += traffic.fraud(per_minute, ts, drifted=minute >= drift_from)
        events += traffic.price(per_minute, ts, drifted=minute >= drift_from)
    return events


def run(engine: Engine, events: list[dict[str, object]], batch: int = 500) -> list:
    drift = []
    for start in range(0, len(events), batch):
        engine.process(as_messages(events[start : start + batch]))
        drift += engine.evaluate(now_s=START)
    return drift


def test_only_drifted_features_alert() -> None:
    engine = Engine(make_config())
    drift = run(engine, stream(minutes=30, drift_from=12))
    alerts = {(e.model, e.metric, e.feature) for e in drift if e.severity == "alert"}
    for model, features in DRIFTING_FEATURES.items():
        for feature in features:
            assert (model, "csi", feature) in alerts
    assert ("fraud-detector", "psi", None) in alerts
    stable = {"merchant_category", "district"}
    assert not [e for e in drift if e.feature in stable and e.severity != "ok"]
    assert all(e.window_events >= 200 for e in drift)
    snapshot = engine.snapshot()
    assert snapshot.events_total[("fraud-detector", "v1")] == 30 * 300
    assert {s.window for s in snapshot.windows} == {"5m", "15m"}


def test_no_drift_no_events() -> None:
    engine = Engine(make_config())
    drift = run(engine, stream(minutes=20, drift_from=99))
    assert [e for e in drift if e.metric in ("psi", "csi")] == []


def test_results_do_not_depend_on_batching() -> None:
    events = stream(minutes=20, drift_from=10)
    a, b = Engine(make_config()), Engine(make_config())
    run(a, events, batch=97)
    run(b, events, batch=3000)
    assert_same_windows(a, b)


def assert_same_windows(a: Engine, b: Engine) -> None:
    """Every window of every model version of ``a`` is that of ``b``: counts exact, float
    sums (latency, log loss) to the last bits."""
    assert a.states.keys() == b.states.keys()
    for key, state in a.states.items():
        other = b.states[key]
        assert state.windows is not None and other.windows is not None
        for name in state.window_sizes:
            np.testing.assert_allclose(
                state.windows.window(name), other.windows.window(name), rtol=1e-12, atol=0
            )


def test_baseline_reference_is_used_and_named() -> None:
    config = make_config()
    model = config.model("fraud-detector")
    assert model is not None
    engine = Engine(config)
    reference_events = SyntheticTraffic(seed=5).fraud(3000, START)
    batches = engine.decoder.decode(as_messages(reference_events)).batches
    reference = build_reference(model, batches, source="ref.jsonl", digest="sha256:abc")
    engine = Engine(config, {"fraud-detector": reference})
    drift = run(engine, [e for e in stream(10, 3) if e["model"] == "fraud-detector"])
    assert drift and {e.reference for e in drift} == {"ref.jsonl@sha256:abc"}
    assert engine.states[("fraud-detector", "v1")].events_total == 10 * 300


def test_version_cap_and_future_events_are_rejected() -> None:
    engine = Engine(make_config(limits={"max_versions_per_model": 2}))
    events = SyntheticTraffic(seed=3).fraud(6, START)
    for i, event in enumerate(events):
        event["model_version"] = f"v{i % 3}"
    events[0]["timestamp"] = START + 10 * 3600
    rejects = engine.process(as_messages(events), now_s=START)
    assert sorted(r.reason for r in rejects) == [
        "future_timestamp",
        "too_many_versions",
        "too_many_versions",
    ]
    assert engine.invalid_total["too_many_versions"] == 2
    assert sorted(v for _, v in engine.states) == ["v0", "v1"]


def test_a_batch_of_large_messages_is_counted_in_pieces_as_if_read_whole() -> None:
    events = stream(minutes=12, drift_from=6)
    size = 400  # events per micro-batch message
    messages = [
        RawMessage(orjson.dumps(events[start : start + size]), 1, offset=n)
        for n, start in enumerate(range(0, len(events), size))
    ]
    messages[5] = RawMessage(b"{not json", 1, offset=5)
    messages[-3] = RawMessage(b"[]", 1, offset=len(messages) - 3)
    whole, one_by_one = Engine(make_config()), Engine(make_config())
    whole.decoder.piece_bytes = 3 * len(messages[0].value or b"")
    sizes = message_sizes([message.value for message in messages])
    assert len(chunks(sizes, whole.decoder.piece_bytes)) >= 4
    rejects = whole.process(messages)
    each = [
        Reject(index, r.reason, r.detail)
        for index, message in enumerate(messages)
        for r in one_by_one.process([message])
    ]
    assert [(r.message_index, r.reason) for r in rejects] == [
        (r.message_index, r.reason) for r in each
    ]
    assert {r.message_index for r in rejects} == {5, len(messages) - 3}
    assert whole.events_total == one_by_one.events_total
    assert_same_windows(whole, one_by_one)
