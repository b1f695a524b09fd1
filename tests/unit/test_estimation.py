"""The label-free quality estimate on the streaming path (``Engine.process`` / ``evaluate``).

The events come from a generator whose truth is known: ``P(y | x)`` is logistic
in the features and the model's score is that probability (calibrated). The
reference is a baseline of labeled events; the stream's labels are either
hidden from the monitor (kept aside, compared with scikit-learn on each
window's events) or sent inline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sklearn import metrics as skm

from stream_monitor.config import ConfigError, EstimationConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.evaluate import DriftEvent, drift_metrics
from stream_monitor.sinks.prometheus import SnapshotCollector
from stream_monitor.summaries.layout import CounterLayout
from stream_monitor.summaries.reference import (
    Reference,
    ReferenceError,
    build_reference,
    load_reference,
    save_reference,
)
from tests.conftest import TEST_WINDOWS, as_messages, registry_samples

PANE_S = 60.0
T0 = 28_333_333 * PANE_S
MODEL = "risk"
RISK_MODEL: dict[str, Any] = {
    "name": MODEL,
    "task": "binary",
    "features": {"x1": "numeric", "x2": "numeric"},
}

Event = dict[str, Any]


def true_logit(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """The generator's ``logit P(y = 1 | x)`` before any concept change."""
    return -1.0 + 1.5 * x1 - 1.0 * x2


def generate(
    n: int,
    rng: np.random.Generator,
    minute: int,
    shift: float = 0.0,
    spread: float | None = None,
    concept: bool = False,
) -> tuple[list[Event], np.ndarray]:
    """``n`` scored events of ``minute`` and their labels; ``x1`` moved by ``shift``, its
    spread ``spread`` (default: wider as it moves).

    The score is the true probability before a concept change; with ``concept``
    the labels follow another ``P(y | x)`` while the scores do not change.
    """
    x1 = rng.normal(shift, 1.0 + 0.4 * abs(shift) if spread is None else spread, n)
    x2 = rng.normal(0.5 * shift, 1.0, n)
    score = 1.0 / (1.0 + np.exp(-true_logit(x1, x2)))
    truth = 1.0 / (1.0 + np.exp(-(0.5 - 0.3 * x1 + 0.2 * x2))) if concept else score
    labels = (rng.random(n) < truth).astype(int)
    times = T0 + minute * PANE_S + rng.uniform(0.0, PANE_S - 0.01, n)
    events = [
        {
            "event_id": f"{minute}-{i}",
            "model": MODEL,
            "model_version": "v1",
            "timestamp": round(float(times[i]), 3),
            "features": {"x1": float(x1[i]), "x2": float(x2[i])},
            "prediction": round(float(score[i]), 6),
        }
        for i in range(n)
    ]
    return events, labels


def engine_with_baseline(**model: Any) -> tuple[Engine, Reference]:
    """An engine for ``risk`` whose baseline holds 20,000 labeled events."""
    config = config_from_dict(
        {"models": [{**RISK_MODEL, **model}], "windows": TEST_WINDOWS,
         "drift": {"min_window_events": 200}}
    )  # fmt: skip
    events, labels = generate(20_000, np.random.default_rng(99), minute=-60)
    for event, label in zip(events, labels, strict=True):
        event["label"] = int(label)
    decoded = Engine(config).decoder.decode(as_messages(events))
    model_config = config.model(MODEL)
    assert model_config is not None
    reference = build_reference(model_config, decoded.batches, source="r.jsonl", digest="sha256:1")
    assert reference.calibration is not None
    return Engine(config, {MODEL: reference}), reference


def realized(events: list[Event], labels: np.ndarray, span: tuple[int, int]) -> dict[str, float]:
    """AUC and accuracy (threshold 0.5) of the events whose pane lies in ``span``."""
    panes = np.floor(np.array([e["timestamp"] for e in events]) / PANE_S)
    inside = (panes >= span[0]) & (panes <= span[1])
    score = np.array([e["prediction"] for e in events])[inside]
    y = labels[inside]
    return {
        "auc": skm.roc_auc_score(y, score),
        "accuracy": skm.accuracy_score(y, (score >= 0.5).astype(int)),
        "events": int(inside.sum()),
    }


def test_covariate_shift_estimate_tracks_the_hidden_realized_quality_window_by_window() -> None:
    engine, _ = engine_with_baseline()
    rng = np.random.default_rng(5)
    events: list[Event] = []
    labels = np.zeros(0, dtype=int)
    compared: list[tuple[float, float]] = []
    for minute in range(14):
        shift = 0.0 if minute < 3 else min(2.0, 0.25 * (minute - 2))
        batch, hidden = generate(2500, rng, minute, shift)
        events += batch
        labels = np.r_[labels, hidden]
        engine.process(as_messages(batch))  # no label reaches the monitor
        engine.evaluate(now_s=T0)
        state = engine.states[(MODEL, "v1")]
        assert state.windows is not None
        for sample in engine.snapshot().windows:
            assert sample.quality.get("labeled", 0) == 0 and sample.estimation_error == {}
            truth = realized(events, labels, state.windows.span(sample.window))
            assert truth["events"] == sample.stats.events
            estimate = sample.estimate
            assert abs(estimate["auc"] - truth["auc"]) <= 0.02, (minute, sample.window)
            assert abs(estimate["accuracy"] - truth["accuracy"]) <= 0.02, (minute, sample.window)
            compared.append((truth["auc"], truth["accuracy"]))
    moved = np.array(compared)
    assert np.ptp(moved[:, 0]) > 0.05 and np.ptp(moved[:, 1]) > 0.05  # the shift mattered


def test_concept_drift_leaves_the_estimate_in_place_and_its_error_alerts() -> None:
    """P(y | x) changes at minute 6, scores do not: the realized AUC falls, the estimate
    stays, and ``estimation_error`` alerts once the window's labels show it."""
    engine, reference = engine_with_baseline()
    rng = np.random.default_rng(8)
    found: list[tuple[int, DriftEvent]] = []
    estimates: dict[int, float] = {}
    realized_auc: dict[int, float] = {}
    for minute in range(16):
        batch, labels = generate(2500, rng, minute, concept=minute >= 6)
        for event, label in zip(batch, labels, strict=True):
            event["label"] = int(label)
        engine.process(as_messages(batch))
        found += [(minute, e) for e in engine.evaluate(now_s=T0)]
        sample = next(s for s in engine.snapshot().windows if s.window == "5m")
        estimates[minute], realized_auc[minute] = sample.estimate["auc"], sample.quality["auc"]
    base = reference.quality.get("auc", realized_auc[4])
    assert all(abs(value - estimates[4]) <= 0.02 for value in estimates.values())
    assert realized_auc[15] < base - 0.3  # the concept changed
    errors = [(m, e) for m, e in found if e.metric == "estimation_error"]
    assert [e for m, e in errors if m < 6] == []
    alerts = [e for _, e in errors if e.severity == "alert"]
    assert {e.feature for e in alerts} >= {"auc", "accuracy"}
    assert all(e.value >= 0.10 and e.critical_value is not None for e in alerts)
    assert all(e.value > e.critical_value for e in alerts if e.critical_value is not None)
    assert not [e for _, e in found if e.metric.startswith("estimated_") and e.severity != "ok"]
    error_gauge = next(s for s in engine.snapshot().windows if s.window == "5m").estimation_error
    assert error_gauge["auc"] == pytest.approx(estimates[15] - realized_auc[15], abs=1e-12)


def test_estimated_events_say_so_and_the_gauges_are_exported() -> None:
    """Inputs crowd where the model hesitates (a covariate shift that lowers the quality):
    estimated_* events alert, and carry estimated: true."""
    engine, _ = engine_with_baseline()
    rng = np.random.default_rng(6)
    found: list[DriftEvent] = []
    for minute in range(12):
        moved = {"shift": 0.6, "spread": 0.2} if minute >= 4 else {}
        batch, _ = generate(2500, rng, minute, **moved)
        engine.process(as_messages(batch))
        found += engine.evaluate(now_s=T0)
    estimated = [e for e in found if e.metric.startswith("estimated_")]
    alerted = {e.metric for e in estimated if e.severity == "alert"}
    assert "estimated_auc" in alerted
    assert all(e.value < e.threshold for e in estimated if e.severity == "alert")
    assert all(e.to_dict()["estimated"] is True and e.feature is None for e in estimated)
    others = [e for e in found if not e.metric.startswith("estimated_")]
    assert others and all("estimated" not in e.to_dict() for e in others)
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(engine.snapshot))
    series = registry_samples(registry, "stream_monitor_estimated_f1")
    sample = next(s for s in engine.snapshot().windows if s.window == "5m")
    key = ("stream_monitor_estimated_f1", (("model", MODEL), ("version", "v1"), ("window", "5m")))
    assert series[key] == pytest.approx(sample.estimate["f1"])
    assert "estimated_auc" in drift_metrics(engine.states[(MODEL, "v1")].model)


def test_a_reference_without_labels_means_no_estimate() -> None:
    config = config_from_dict({"models": [{**RISK_MODEL, "reference": {"warmup_events": 500}}],
                               "windows": TEST_WINDOWS})  # fmt: skip
    engine = Engine(config)
    batch, _ = generate(2000, np.random.default_rng(1), 0)
    engine.process(as_messages(batch))
    engine.evaluate(now_s=T0)
    state = engine.states[(MODEL, "v1")]
    assert state.reference is not None and state.reference.calibration is None
    assert state.layout is not None and state.layout.estimate is None
    assert all(sample.estimate == {} for sample in engine.snapshot().windows)
    assert "calibration" not in state.reference.to_dict()


def test_a_warmup_with_inline_labels_gives_the_map() -> None:
    config = config_from_dict({"models": [{**RISK_MODEL, "reference": {"warmup_events": 3000}}],
                               "windows": TEST_WINDOWS})  # fmt: skip
    engine = Engine(config)
    batch, labels = generate(4000, np.random.default_rng(2), 0)
    for event, label in zip(batch, labels, strict=True):
        event["label"] = int(label)
    engine.process(as_messages(batch))
    state = engine.states[(MODEL, "v1")]
    assert state.reference is not None and state.reference.calibration is not None
    assert sum(state.reference.calibration.labeled) == 3000
    assert sum(state.reference.calibration.histogram) == 3000


def test_estimation_config_defaults_and_errors() -> None:
    config = config_from_dict({"models": [RISK_MODEL]})
    model = config.model(MODEL)
    assert model is not None and model.estimation == EstimationConfig()
    custom = config_from_dict(
        {"models": [{**RISK_MODEL, "estimation": {"min_labeled_per_bin": 40,
                                                  "error": {"warn": 0.03, "alert": 0.08}}}]}
    ).model(MODEL)  # fmt: skip
    assert custom is not None and custom.estimation.min_labeled_per_bin == 40
    assert custom.estimation.error == (0.03, 0.08)
    off = config_from_dict({"models": [{**RISK_MODEL, "estimation": {"enabled": False}}]})
    off_model = off.model(MODEL)
    assert off_model is not None and "estimated_auc" not in drift_metrics(off_model)
    bad = [
        ({"min_labeled_per_bin": 0}, "models[0].estimation.min_labeled_per_bin"),
        ({"error": {"warn": 0.2, "alert": 0.1}}, "models[0].estimation.error.alert"),
        ({"error": {"warn": 2}}, "models[0].estimation.error.warn"),
        ({"false_alerts_per_day": 0}, "models[0].estimation.false_alerts_per_day"),
        ({"enabled": "yes"}, "models[0].estimation.enabled"),
        ({"bins": 3}, "models[0].estimation.bins"),
        ("on", "models[0].estimation"),
    ]
    for block, key in bad:
        with pytest.raises(ConfigError, match="^" + re.escape(key) + ":"):
            config_from_dict({"models": [{**RISK_MODEL, "estimation": block}]})
    regression = {"name": "p", "task": "regression", "features": {"x": "numeric"}}
    with pytest.raises(ConfigError, match=r"^models\[0\]\.estimation\.enabled: only binary"):
        config_from_dict({"models": [{**regression, "estimation": {"enabled": True}}]})


def test_baseline_files_carry_the_map_and_old_ones_still_load(tmp_path: Path) -> None:
    _, reference = engine_with_baseline()
    model = config_from_dict({"models": [RISK_MODEL]}).model(MODEL)
    assert model is not None
    path = tmp_path / "risk.json"
    save_reference(reference, path)
    loaded = load_reference(path, model)
    assert loaded.calibration == reference.calibration and loaded.calibration is not None
    old = orjson.loads(path.read_bytes())
    del old["calibration"]  # a baseline written before the estimate existed
    path.write_bytes(orjson.dumps(old))
    assert load_reference(path, model).calibration is None
    assert CounterLayout(model, load_reference(path, model)).estimate is None
    old["calibration"] = {**reference.calibration.to_dict(), "starts": [5]}
    path.write_bytes(orjson.dumps(old))
    with pytest.raises(ReferenceError, match="baseline is incomplete"):
        load_reference(path, model)


def test_no_change_raises_nothing_from_the_estimate() -> None:
    """Thirty minutes like the reference, labels inline (the error is judged too): no
    ``estimated_*`` or ``estimation_error`` event, at 500 to 2500 events a minute."""
    engine, _ = engine_with_baseline()
    rng = np.random.default_rng(21)
    found: list[DriftEvent] = []
    judged = 0
    for minute in range(30):
        batch, labels = generate(500 if minute % 2 else 2500, rng, minute)
        for event, label in zip(batch, labels, strict=True):
            event["label"] = int(label)
        engine.process(as_messages(batch))
        found += engine.evaluate(now_s=T0)
        judged += len(engine.snapshot().windows)
    assert judged >= 50
    severities = engine.snapshot().severities
    estimate_series = [k for k in severities if k.metric.startswith(("estimated_", "estimation"))]
    assert len(estimate_series) >= 12  # three estimated metrics and three errors, two windows
    assert [e for e in found if e.metric.startswith(("estimated_", "estimation"))] == []
