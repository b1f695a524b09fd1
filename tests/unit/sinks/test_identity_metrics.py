"""``stream_monitor_model_info``, ``stream_monitor_build_info`` and the process metrics."""

from __future__ import annotations

from typing import Any

from stream_monitor import __version__
from stream_monitor.engine import Engine
from stream_monitor.model_metadata import METADATA_KEYS
from stream_monitor.sinks.prometheus import build_registry, build_service_registry, exposition
from stream_monitor.summaries.reference import build_reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, PRICE_MODEL, as_messages, make_config, registry_samples

START = 1_700_000_000.0
FRAUD_METADATA = {
    "owner": "risk-ml-team",
    "kubernetes_namespace": "serving",
    "kubernetes_workload": "fraud-api",
}


def engine_with_two_fraud_versions(baseline: bool = False) -> Engine:
    """Fraud v1 past its warm-up, v2 still in it; the price model never seen."""
    config = make_config(
        models=[{**FRAUD_MODEL, "metadata": FRAUD_METADATA}, PRICE_MODEL],
    )
    traffic = SyntheticTraffic(seed=3)
    baselines = {}
    if baseline:
        decoded = engine_decode(config, traffic.fraud(1200, START))
        baselines["fraud-detector"] = build_reference(
            config.models[0], decoded, source="ref.jsonl", digest="sha256:abc"
        )
    engine = Engine(config, baselines)
    events = traffic.fraud(1200, START)
    for event in events[:50]:
        event["model_version"] = "v2"
    engine.process(as_messages(events))
    engine.evaluate(now_s=START)
    return engine


def engine_decode(config: Any, events: list[dict[str, Any]]) -> list[Any]:
    return Engine(config).decoder.decode(as_messages(events)).batches


def info_labels(engine: Engine) -> list[dict[str, str]]:
    registry = build_service_registry(engine.snapshot)
    found = registry_samples(registry, "stream_monitor_model_info")
    assert set(found.values()) == {1.0}
    return sorted((dict(labels) for _, labels in found), key=lambda d: d["version"])


def test_one_info_series_per_live_version_with_reference_and_metadata() -> None:
    v1, v2 = info_labels(engine_with_two_fraud_versions())
    absent = dict.fromkeys(METADATA_KEYS, "")
    assert v1 == {
        **absent,
        **FRAUD_METADATA,
        "model": "fraud-detector",
        "version": "v1",
        "reference": "warmup:1000",
    }
    assert v2 == {**v1, "version": "v2"}  # still warming up: named by what it will use


def test_a_baseline_is_named_by_its_digest() -> None:
    labels = info_labels(engine_with_two_fraud_versions(baseline=True))
    assert {item["reference"] for item in labels} == {"sha256:abc"}


def test_build_info_carries_the_package_version() -> None:
    registry = build_service_registry(engine_with_two_fraud_versions().snapshot)
    assert registry.get_sample_value("stream_monitor_build_info", {"version": __version__}) == 1.0


def test_the_service_registry_has_the_process_and_gc_metrics() -> None:
    registry = build_service_registry(engine_with_two_fraud_versions().snapshot)
    assert registry.get_sample_value("process_resident_memory_bytes") > 1e6
    assert registry.get_sample_value("process_open_fds") >= 3
    assert registry.get_sample_value("process_cpu_seconds_total") > 0
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) >= 0
    assert set(registry_samples(registry, "python_info").values()) == {1.0}


def test_replay_metrics_hold_no_process_or_identity_series() -> None:
    """``--metrics-out`` depends on the events alone (two runs give the same bytes)."""
    text = exposition(build_registry(engine_with_two_fraud_versions().snapshot)).decode()
    for prefix in ("process_", "python_", "stream_monitor_build_info", "stream_monitor_model_info"):
        assert f"\n{prefix}" not in text
    again = exposition(build_registry(engine_with_two_fraud_versions().snapshot)).decode()
    assert text == again
