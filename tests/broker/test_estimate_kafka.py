"""The label-free estimate through the embedded broker, before and after the labels arrive.

The baseline holds labeled events, so the model has a calibration map.
Predictions come without labels: ``/metrics`` shows the estimated quality of
each window while it holds no label, and no realized quality. Then the labels
come on the labels topic: the realized quality appears beside the estimate,
and so does the estimation error (estimate minus realized).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry
from sklearn.metrics import roc_auc_score

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.conftest import (
    broker_config,
    frozen_registry,
    produce,
    registry_samples,
    start_service,
    wait_for,
)
from tests.unit.test_estimation import MODEL, RISK_MODEL, engine_with_baseline, generate

LABELS_5M = (("model", MODEL), ("version", "v1"), ("window", "5m"))


def gauge(registry: CollectorRegistry, name: str, **extra: str) -> float | None:
    """The 5m window's value of ``name`` (None while it is not exported)."""
    key = (name, tuple(sorted((*LABELS_5M, *extra.items()))))
    value = registry_samples(registry, name).get(key)
    return None if value is None or math.isnan(value) else value


def test_the_estimate_shows_before_the_labels_and_the_realized_quality_when_they_come(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    events_topic, labels_topic = topic_names("events"), topic_names("labels")
    topics = {"events": events_topic, "labels": labels_topic, "drift_events": topic_names("drift")}
    data = broker_config(
        broker,
        f"monitor-{events_topic}",
        topics,
        labels={"ttl_s": 36_000, "clock": "event"},
        models=[RISK_MODEL],
        evaluation_interval_s=0.5,
    )
    config = config_from_dict(data)
    _, reference = engine_with_baseline()
    rng = np.random.default_rng(17)
    predictions, labels = [], []
    for minute in range(7):
        batch, truth = generate(1500, rng, minute)
        predictions += batch
        labels += [
            {"event_id": e["event_id"], "model": MODEL, "label": int(y), "timestamp": ts}
            for e, y, ts in zip(batch, truth, [e["timestamp"] for e in batch], strict=True)
        ]

    service, stop, thread = start_service(config, Engine(config, {MODEL: reference}))
    try:
        produce(broker.bootstrap_servers, events_topic, predictions, lambda _: MODEL)

        def estimated() -> CollectorRegistry | None:
            registry = frozen_registry(service)
            events = gauge(registry, "stream_monitor_window_events")
            ready = gauge(registry, "stream_monitor_estimated_auc") is not None
            return registry if events == 7500 and ready else None

        before = wait_for(estimated, 30, "the 5m window's estimate")
        assert gauge(before, "stream_monitor_labeled_events") == 0
        assert gauge(before, "stream_monitor_auc") is None
        assert gauge(before, "stream_monitor_estimation_error", metric="auc") is None

        produce(broker.bootstrap_servers, labels_topic, labels, lambda _: MODEL)

        def labeled() -> CollectorRegistry | None:
            registry = frozen_registry(service)
            labels = gauge(registry, "stream_monitor_labeled_events")
            ready = gauge(registry, "stream_monitor_estimation_error", metric="auc") is not None
            return registry if labels == 7500 and ready else None

        after = wait_for(labeled, 30, "the 5m window's labels")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    in_window = slice(2 * 1500, None)  # the last five minutes
    y = np.array([label["label"] for label in labels[in_window]])
    score = np.array([event["prediction"] for event in predictions[in_window]])
    realized = gauge(after, "stream_monitor_auc")
    estimated = gauge(after, "stream_monitor_estimated_auc")
    assert realized is not None and estimated is not None
    assert abs(realized - roc_auc_score(y, score)) <= 0.002
    assert estimated == gauge(before, "stream_monitor_estimated_auc")  # the labels move it not
    assert abs(estimated - realized) <= 0.02
    error = gauge(after, "stream_monitor_estimation_error", metric="auc")
    assert error is not None and abs(error - (estimated - realized)) <= 1e-9
