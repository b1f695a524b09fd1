"""The confusion matrix and per-class precision and recall on ``/metrics``, against scikit-learn.

Events go through :class:`Engine`; the exposition the snapshot collector writes
is parsed back with ``prometheus_client.parser`` and every window's series are
compared with scikit-learn's ``confusion_matrix`` and
``precision_recall_fscore_support`` on the raw events of that window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from stream_monitor.engine import Engine
from stream_monitor.sinks.prometheus import build_registry, exposition
from stream_monitor.summaries.classification import MulticlassQualitySlots
from tests.conftest import as_messages, make_config
from tests.unit.test_quality_engine import (
    EXACT,
    FRAUD,
    PANE_S,
    T0,
    Event,
    fraud_stream,
    in_window,
    spread,
)

CLASSES = ["cat", "dog", "emu", "fox"]
#: A four-class model; "ferret" is not configured and counts as "other".
FOUR_CLASS_MODEL = {
    "name": "animal-classifier",
    "task": "multiclass",
    "classes": CLASSES,
    "features": {"weight_kg": "numeric"},
    "reference": {"warmup_events": 300},
}

#: Label values in the order model, version, window, then the metric's own labels.
Series = dict[tuple[str, ...], float]
ORDER = ("model", "version", "window", "actual", "predicted", "class")


def exported(engine: Engine) -> dict[str, Series]:
    """Every sample of the engine's snapshot as /metrics writes it, by name and label values."""
    text = exposition(build_registry(engine.snapshot)).decode()
    found: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sample.labels[name] for name in ORDER if name in sample.labels)
            found.setdefault(sample.name, {})[key] = sample.value
    return found


def matrix_of(series: Series, model: str, window: str, classes: list[str]) -> np.ndarray:
    """The exported confusion matrix of one window, rows actual, columns predicted."""
    cells = {k[3:]: v for k, v in series.items() if k[0] == model and k[2] == window}
    assert set(cells) == {(a, p) for a in classes for p in classes}
    return np.array([[cells[(a, p)] for p in classes] for a in classes])


def four_class_stream(minutes: int, per_minute: int, seed: int) -> list[Event]:
    """Events of FOUR_CLASS_MODEL, right about 60% of the time; 5% carry no label."""
    rng = np.random.default_rng(seed)
    names = [*CLASSES, "ferret"]
    events: list[Event] = []
    for minute in range(minutes):
        truth = rng.choice(names, per_minute, p=[0.4, 0.25, 0.15, 0.15, 0.05])
        guess = rng.choice(names, per_minute, p=[0.2, 0.2, 0.2, 0.3, 0.1])
        right = rng.random(per_minute) < 0.6
        batch: list[Event] = []
        for i in range(per_minute):
            event: Event = {
                "event_id": f"a-{minute}-{i}",
                "model": "animal-classifier",
                "features": {"weight_kg": round(float(rng.gamma(2.0, 3.0)), 2)},
                "prediction": str(truth[i] if right[i] else guess[i]),
            }
            if rng.random() > 0.05:
                event["label"] = str(truth[i])
            batch.append(event)
        events += spread(batch, rng, minute, PANE_S)
    return events


def test_binary_confusion_counts_equal_sklearn() -> None:
    events = fraud_stream(minutes=9, per_minute=300, seed=11)
    for event in events[::37]:
        event["prediction"] = 0.5  # on the threshold: predicted positive
    engine = Engine(make_config())
    for start in range(0, len(events), 700):
        engine.process(as_messages(events[start : start + 700]))
        engine.evaluate(now_s=T0)
    metrics = exported(engine)
    state = engine.states[(FRAUD, "v1")]
    for window in state.window_sizes:
        rows = in_window(events, state, window)
        y = np.array([e["label"] for e in rows], dtype=int)
        predicted = (np.array([e["prediction"] for e in rows]) >= 0.5).astype(int)
        expected = confusion_matrix(y, predicted, labels=[0, 1])
        got = matrix_of(metrics["stream_monitor_confusion_matrix"], FRAUD, window, ["0", "1"])
        assert got.tolist() == expected.tolist()
        assert got.sum() == metrics["stream_monitor_labeled_events"][(FRAUD, "v1", window)]
        tn, fp = expected[0]
        assert metrics["stream_monitor_precision"][(FRAUD, "v1", window)] == pytest.approx(
            expected[1, 1] / (expected[1, 1] + fp), **EXACT
        )
        assert tn > 0 and fp > 0 and expected[1].min() > 0  # every cell was exercised
    # A regression model has no confusion matrix; a binary one no per-class values.
    models = {key[0] for key in metrics["stream_monitor_confusion_matrix"]}
    assert models == {FRAUD}
    assert "stream_monitor_class_precision" not in metrics


def test_four_class_matrix_precision_and_recall_equal_sklearn() -> None:
    events = four_class_stream(minutes=8, per_minute=250, seed=5)
    engine = Engine(make_config(models=[FOUR_CLASS_MODEL]))
    for start in range(0, len(events), 450):
        engine.process(as_messages(events[start : start + 450]))
        engine.evaluate(now_s=T0)
    metrics = exported(engine)
    state = engine.states[("animal-classifier", "unknown")]
    names = [*CLASSES, "other"]
    for window in state.window_sizes:
        rows = [e for e in in_window(events, state, window) if "label" in e]

        def bucket(value: Any) -> str:
            return value if value in CLASSES else "other"

        y = [bucket(e["label"]) for e in rows]
        p = [bucket(e["prediction"]) for e in rows]
        assert "other" in y and "other" in p
        expected = confusion_matrix(y, p, labels=names)
        cells = metrics["stream_monitor_confusion_matrix"]
        got = matrix_of(cells, "animal-classifier", window, names)
        assert got.tolist() == expected.tolist()
        precision, recall, _, support = precision_recall_fscore_support(
            y, p, labels=names, zero_division=0
        )
        key = ("animal-classifier", "unknown", window)
        for i, name in enumerate(names):
            assert support[i] > 0
            exported_precision = metrics["stream_monitor_class_precision"][(*key, name)]
            exported_recall = metrics["stream_monitor_class_recall"][(*key, name)]
            assert exported_precision == pytest.approx(precision[i], **EXACT), name
            assert exported_recall == pytest.approx(recall[i], **EXACT), name


def test_a_window_without_labels_exports_zero_counts_and_no_class_values() -> None:
    events = four_class_stream(minutes=6, per_minute=120, seed=2)
    for event in events:
        event.pop("label", None)
    engine = Engine(make_config(models=[FOUR_CLASS_MODEL]))
    engine.process(as_messages(events))
    engine.evaluate(now_s=T0)
    metrics = exported(engine)
    cells = metrics["stream_monitor_confusion_matrix"]
    windows = engine.states[("animal-classifier", "unknown")].window_sizes
    assert len(cells) == len(windows) * 5 * 5
    assert set(cells.values()) == {0.0}
    assert "stream_monitor_class_precision" not in metrics
    assert "stream_monitor_class_recall" not in metrics


def test_a_class_called_other_keeps_its_name_apart_from_the_other_bucket() -> None:
    slots = MulticlassQualitySlots(0, ["other", "spam"])
    matrix = slots.confusion_matrix(slots.update(["other", "ham"], ["spam", "ham"]))
    assert matrix.classes == ("other", "spam", "__other__")
    assert matrix.counts == ((0, 0, 0), (1, 0, 0), (0, 0, 1))
