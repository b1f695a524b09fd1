"""Champion against challenger: version PSI/CSI, quality deltas, traffic shares and their events.

Two versions of the fraud detector share one reference; each minute the
champion gets 80% of the traffic and the challenger 20%. The values are checked
against numpy (PSI on the reference's bins) and scikit-learn (quality) on the
raw events of each version's window; the events are judged with two-sample
noise, so two versions from the same generator stay quiet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from stream_monitor.config import ConfigError
from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.evaluate import DriftEvent
from stream_monitor.sinks.prometheus import build_registry
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, TEST_WINDOWS, as_messages, registry_samples

PANE_S = 60.0
T0 = 28_333_333 * PANE_S
FRAUD = "fraud-detector"

Event = dict[str, Any]
Shift = Callable[[list[Event], np.random.Generator], None]


def versions_config(compare: dict[str, Any] | None = None, **drift: Any) -> Any:
    """The fraud detector alone, comparing its versions."""
    model = {**FRAUD_MODEL, "compare_versions": compare or {"champion": "auto"}}
    return config_from_dict(
        {
            "models": [model],
            "windows": TEST_WINDOWS,
            "drift": {"min_window_events": 150, **drift},
            "quality": {"min_labeled_events": 150},
        }
    )


def two_versions(
    minutes: int, per_minute: int, seed: int, shift: Shift | None = None, share: float = 0.2
) -> list[list[Event]]:
    """Per minute: ``per_minute`` events, ``share`` of them from v2 (``shift`` applied)."""
    champion = SyntheticTraffic(seed=seed, version="v1")
    challenger = SyntheticTraffic(seed=seed + 1000, version="v2")
    rng = np.random.default_rng(seed)
    minutes_of_events = []
    for minute in range(minutes):
        ts = T0 + minute * PANE_S + 1.0
        mine = challenger.fraud(int(per_minute * share), ts)
        for event in mine:
            event["event_id"] = "c" + event["event_id"]
        if shift is not None:
            shift(mine, rng)
        minutes_of_events.append(champion.fraud(per_minute - len(mine), ts) + mine)
    return minutes_of_events


def run(engine: Engine, minutes: list[list[Event]]) -> list[DriftEvent]:
    """Feed every minute, evaluating after each; every drift event."""
    found: list[DriftEvent] = []
    for events in minutes:
        engine.process(as_messages(events))
        found += engine.evaluate(now_s=T0)
    return found + engine.evaluate(now_s=T0, final=True)


def window_events(engine: Engine, minutes: list[list[Event]], version: str, window: str):
    """The raw events of ``version`` in the live ``window``."""
    windows = engine.states[(FRAUD, version)].windows
    assert windows is not None
    first, last = windows.span(window)
    return [
        e
        for events in minutes
        for e in events
        if e["model_version"] == version and first <= e["timestamp"] // PANE_S <= last
    ]


def numpy_psi(edges: np.ndarray, expected: list[float], actual: list[float]) -> float:
    """PSI of ``actual`` against ``expected`` on right-closed bins at ``edges``, floored at 1e-4."""
    e = np.bincount(np.searchsorted(edges, expected), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual), minlength=len(edges) + 1) / len(actual)
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def test_two_versions_from_one_generator_stay_within_the_false_alert_budget() -> None:
    """3 hours of 60 s panes, two windows: with the lines at 0 only the noise test decides.

    The budgets are raised so that the expected count is measurable: 400
    warnings and 40 alerts a day over 17 tests per window, 8 of them version
    tests, so about 400 * 0.125 * 8 / 17 = 24 version warnings (and 2.4 alerts)
    if every judgment were independent; overlapping windows make them fewer.
    The bound allows two standard deviations of a Poisson count over that.
    """
    lines = {"warn": 0.0, "alert": 0.0}
    quality = {m: lines for m in ("auc", "accuracy", "f1")}
    config = versions_config(
        {"champion": "auto", "psi": lines, "csi": lines, "quality": quality},
        false_warnings_per_day=400,
        false_alerts_per_day=40,
    )
    minutes = two_versions(minutes=180, per_minute=1000, seed=5)
    found = run(Engine(config), minutes)
    version_events = [e for e in found if e.metric.startswith("version_")]
    rises = Counter(e.severity for e in version_events if e.previous_severity == "ok")
    assert rises["warn"] + rises["alert"] <= 24 + 2 * 24**0.5, Counter(rises)
    assert rises["alert"] <= 2.4 + 2 * 2.4**0.5
    assert all(e.champion == "v1" and e.model_version == "v2" for e in version_events)


def test_default_lines_give_no_event_for_equal_versions() -> None:
    minutes = two_versions(minutes=60, per_minute=1000, seed=8)
    found = run(Engine(versions_config()), minutes)
    assert [e for e in found if e.metric.startswith("version_")] == []


def shift_scores(events: list[Event], rng: np.random.Generator) -> None:
    """The challenger scores higher: every score pushed 0.15 up."""
    for event in events:
        event["prediction"] = min(1.0, event["prediction"] + 0.15)


def test_a_challenger_with_shifted_scores_raises_version_psi() -> None:
    minutes = two_versions(minutes=20, per_minute=1500, seed=9, shift=shift_scores)
    engine = Engine(versions_config())
    found = run(engine, minutes[:16])
    psi_events = [e for e in found if e.metric == "version_psi"]
    assert psi_events and psi_events[-1].severity == "alert"
    event = psi_events[-1]
    assert (event.model_version, event.champion) == ("v2", "v1")
    assert event.to_dict()["champion"] == "v1"
    assert event.explain and event.p_value is not None and event.p_value < 1e-6
    # The gauges of the live windows against numpy on the same events.
    edges = engine.states[(FRAUD, "v1")].layout.prediction.bins.edges  # type: ignore[union-attr]
    registry = build_registry(engine.snapshot)
    gauges = registry_samples(
        registry, "stream_monitor_version_psi", "stream_monitor_version_traffic_share"
    )
    for window in ("5m", "15m"):
        mine = window_events(engine, minutes[:16], "v2", window)
        theirs = window_events(engine, minutes[:16], "v1", window)
        expected = numpy_psi(
            edges, [e["prediction"] for e in theirs], [e["prediction"] for e in mine]
        )
        labels = (("champion", "v1"), ("model", FRAUD), ("version", "v2"), ("window", window))
        assert gauges[("stream_monitor_version_psi", labels)] == pytest.approx(expected, rel=1e-9)
        share = (("model", FRAUD), ("version", "v2"), ("window", window))
        total = len(mine) + len(theirs)
        value = gauges[("stream_monitor_version_traffic_share", share)]
        assert value == pytest.approx(len(mine) / total, rel=1e-12)
    # The features were not shifted: no version CSI alerts.
    assert not [e for e in found if e.metric == "version_csi" and e.severity == "alert"]


def flip_labels(rate: float) -> Shift:
    """The challenger is wrong more often: a share ``rate`` of its labels flipped."""

    def shift(events: list[Event], rng: np.random.Generator) -> None:
        for event, flip in zip(events, rng.random(len(events)) < rate, strict=True):
            if flip:
                event["label"] = 1 - event["label"]

    return shift


def test_a_less_accurate_challenger_raises_version_accuracy_and_deltas_match_sklearn() -> None:
    """Labels flipped on 12% of the challenger's events: accuracy about 0.1 lower."""
    minutes = two_versions(minutes=20, per_minute=2000, seed=12, shift=flip_labels(0.12))
    engine = Engine(versions_config())
    found = run(engine, minutes[:16])
    accuracy = [e for e in found if e.metric == "version_accuracy"]
    assert accuracy and accuracy[0].previous_severity == "ok"
    assert "alert" in {e.severity for e in accuracy}
    assert accuracy[0].champion == "v1" and accuracy[0].value < -0.07
    assert not [e for e in found if e.metric == "version_psi"]  # same scores, other truth
    gauges = registry_samples(
        build_registry(engine.snapshot), "stream_monitor_version_quality_delta"
    )
    for window in ("5m", "15m"):
        mine = window_events(engine, minutes[:16], "v2", window)
        theirs = window_events(engine, minutes[:16], "v1", window)

        def score(events: list[Event], metric: Callable[..., float], cut: bool) -> float:
            labels = [e["label"] for e in events]
            scores = [e["prediction"] for e in events]
            return metric(labels, [s >= 0.5 for s in scores] if cut else scores)

        expected = score(mine, accuracy_score, True) - score(theirs, accuracy_score, True)
        labels = (("champion", "v1"), ("metric", "accuracy"), ("model", FRAUD))
        labels += (("version", "v2"), ("window", window))
        value = gauges[("stream_monitor_version_quality_delta", labels)]
        assert value == pytest.approx(expected, rel=1e-12)
        assert expected < -0.07
        auc = score(mine, roc_auc_score, False) - score(theirs, roc_auc_score, False)
        labels = (("champion", "v1"), ("metric", "auc"), ("model", FRAUD))
        labels += (("version", "v2"), ("window", window))
        assert gauges[("stream_monitor_version_quality_delta", labels)] == pytest.approx(
            auc, abs=0.004
        )


def test_a_better_challenger_raises_nothing_and_the_gauges_show_it() -> None:
    """The worse version is the configured champion: its challenger is better."""
    minutes = two_versions(minutes=16, per_minute=2000, seed=12, shift=flip_labels(0.12))
    engine = Engine(versions_config({"champion": "v2"}))
    found = run(engine, minutes)
    assert [e for e in found if e.metric.startswith("version_") and e.metric != "version_csi"] == []
    deltas = [c for c in engine.snapshot().version_comparisons if c.window == "15m"]
    assert [(c.version, c.champion) for c in deltas] == [("v1", "v2")]
    assert deltas[0].quality_delta["accuracy"] > 0.05


def test_without_compare_versions_nothing_is_compared() -> None:
    config = config_from_dict({"models": [FRAUD_MODEL], "windows": TEST_WINDOWS})
    engine = Engine(config)
    run(engine, two_versions(minutes=8, per_minute=1000, seed=3))
    snapshot = engine.snapshot()
    assert snapshot.version_comparisons == () and snapshot.traffic_shares == {}
    names = {family.name for family in build_registry(engine.snapshot).collect()}
    assert not {name for name in names if name.startswith("stream_monitor_version_")}
    # Each version warmed up on its own events: their references differ.
    v1, v2 = engine.states[(FRAUD, "v1")], engine.states[(FRAUD, "v2")]
    assert v1.reference is not v2.reference


def test_compared_versions_share_the_first_reference() -> None:
    engine = Engine(versions_config())
    run(engine, two_versions(minutes=3, per_minute=1000, seed=3))
    v1, v2 = engine.states[(FRAUD, "v1")], engine.states[(FRAUD, "v2")]
    assert v1.reference is not None and v1.reference is v2.reference


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("v1", "models[0].compare_versions: expected a mapping"),
        ({"champion": ""}, "models[0].compare_versions.champion: expected a model version"),
        ({"champions": "v1"}, "models[0].compare_versions.champions: unknown key"),
        ({"psi": {"warn": 0.3, "alert": 0.2}}, "models[0].compare_versions.psi.alert: alert"),
        ({"csi": {"warn": -1}}, "models[0].compare_versions.csi.warn: expected a number"),
        ({"quality": {"rmse": {"warn": 0.1}}}, "models[0].compare_versions.quality.rmse: not a"),
    ],
)
def test_config_errors_name_the_key(block: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict({"models": [{**FRAUD_MODEL, "compare_versions": block}]})
    assert str(error.value).startswith(message)


def test_config_defaults_come_from_the_model() -> None:
    model = {**FRAUD_MODEL, "compare_versions": {"quality": {"auc": {"warn": 0.02}}}}
    model["drift"] = {"psi": {"warn": 0.2, "alert": 0.3}}
    config = config_from_dict({"models": [model]}).models[0].compare_versions
    assert config is not None and config.champion == "auto"
    assert (config.psi.warn, config.psi.alert) == (0.2, 0.3)
    assert config.quality["auc"] == (0.02, 0.10)
    assert "rmse" not in config.quality  # not a binary model's metric
