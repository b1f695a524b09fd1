"""Delayed labels through the embedded broker: late, out of order, some past the TTL.

Predictions (no inline labels) go to the events topic and their labels, later
and shuffled, to the labels topic; the service joins them by ``event_id``. At
the end ``/metrics`` must show the window quality of the joined data (AUC
within 0.002 of scikit-learn, accuracy and F1 equal up to float rounding),
the labeled-event count, and the join outcomes, with every prediction
accounted for: joined + expired + still pending == predictions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.state.labels import LabelJoinStore
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.conftest import (
    FRAUD_MODEL,
    broker_config,
    frozen_registry,
    produce,
    registry_samples,
    start_service,
    wait_for,
)
from tests.unit.test_quality_engine import FRAUD, PANE_S, T0, TTL_S, delayed_label_batches


def test_late_out_of_order_labels_through_kafka(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    events_topic, labels_topic = topic_names("events"), topic_names("labels")
    topics = {"events": events_topic, "labels": labels_topic, "drift_events": topic_names("drift")}
    data = broker_config(
        broker,
        f"monitor-{events_topic}",
        topics,
        labels={"ttl_s": TTL_S, "clock": "event"},  # join: on, as a labels topic is set
        models=[FRAUD_MODEL],
        evaluation_interval_s=0.5,
    )
    config = config_from_dict(data)
    assert config.joins_labels
    # Batch k holds minute k's predictions and labels of earlier minutes (see
    # delayed_label_batches); each batch is produced once the previous one was consumed.
    batches, predictions, fate = delayed_label_batches(seed=33)

    service, stop, thread = start_service(config, Engine(config))

    def store() -> LabelJoinStore:
        joins = service.engine.joiner.stores
        assert joins is not None
        return joins["fraud-detector"]

    def labels_consumed() -> int:
        c = store().counters
        return c.joined + c.orphan_labels + c.duplicate_labels + store().pending_labels

    sent_predictions = sent_labels = 0
    try:
        for batch in batches:
            labels = [event for event in batch if "features" not in event]
            predictions_now = [event for event in batch if "features" in event]
            produce(broker.bootstrap_servers, events_topic, predictions_now, lambda _: FRAUD)
            produce(broker.bootstrap_servers, labels_topic, labels, lambda _: FRAUD)
            sent_labels += len(labels)
            sent_predictions += len(predictions_now)
            wait_for(
                lambda n=sent_predictions, m=sent_labels: (
                    service.engine.events_total[(FRAUD, "v1")] == n and labels_consumed() == m
                ),
                15,
                f"batch with {sent_predictions} predictions and {sent_labels} labels",
            )
        wait_for(  # an evaluation after the last message published the final counts
            lambda: (
                service.snapshot().label_joins.get("joined") == store().counters.joined
                and service.snapshot().label_joins.get("orphan") == store().counters.orphan_labels
            ),
            15,
            "the final evaluation",
        )
        # Read while running: stopping hands the partitions (and their state) back.
        metrics = frozen_registry(service)
        pending_at_end = store().pending_predictions
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    # Expected outcomes, from each prediction's fate (see delayed_label_batches).
    minute_of = {i: int((p["timestamp"] - T0) // PANE_S) for i, p in predictions.items()}
    on_time = [i for i, f in fate.items() if f == "on_time"]
    late = [i for i, f in fate.items() if f == "late"]
    expired = [i for i, f in fate.items() if f == "late" or (f == "never" and minute_of[i] <= 7)]
    pending = [i for i, f in fate.items() if f == "never" and minute_of[i] >= 8]

    outcomes = {
        dict(labels)["outcome"]: value
        for (_, labels), value in registry_samples(
            metrics, "stream_monitor_label_joins_total"
        ).items()
    }
    assert outcomes["expired"] == len(expired) > 0
    assert outcomes["orphan"] == len(late) > 0
    assert outcomes["joined"] == len(on_time)
    assert outcomes.get("late", 0) == 0 and outcomes.get("evicted", 0) == 0
    assert pending_at_end == len(pending) > 0
    assert outcomes["joined"] + outcomes["expired"] + pending_at_end == len(predictions)

    totals = registry_samples(
        metrics, "stream_monitor_events_total", "stream_monitor_invalid_events_total"
    )
    totals = {key: value for key, value in totals.items() if value}  # reasons are exported from 0
    assert totals == {
        ("stream_monitor_events_total", (("model", FRAUD), ("version", "v1"))): len(predictions)
    }, "label events must be neither counted as predictions nor rejected"

    last = int(T0 // PANE_S) + 11  # the windows end at the last prediction's pane
    for window, panes in (("5m", 5), ("15m", 15)):
        first = last - panes + 1

        def in_window(ids: list[str], first: int = first) -> list[dict]:
            return [
                predictions[i]
                for i in ids
                if first <= np.floor(predictions[i]["timestamp"] / PANE_S) <= last
            ]

        rows = in_window(on_time)
        y = np.array([e["label"] for e in rows])
        p = np.array([e["prediction"] for e in rows])

        def gauge(name: str, window: str = window) -> float:
            value = metrics.get_sample_value(
                name, {"model": FRAUD, "version": "v1", "window": window}
            )
            assert value is not None, (name, window)
            return value

        assert gauge("stream_monitor_window_events") == len(in_window(list(predictions)))
        assert gauge("stream_monitor_labeled_events") == len(rows) > 500
        assert abs(gauge("stream_monitor_auc") - roc_auc_score(y, p)) <= 0.002
        predicted = (p >= 0.5).astype(int)
        assert gauge("stream_monitor_accuracy") == pytest.approx(
            accuracy_score(y, predicted), rel=1e-12
        )
        assert gauge("stream_monitor_f1") == pytest.approx(
            f1_score(y, predicted, zero_division=0), rel=1e-12
        )
