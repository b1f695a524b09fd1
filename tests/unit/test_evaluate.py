"""Severity transitions and drift events."""

from __future__ import annotations

import pytest

from stream_monitor.config import Thresholds
from stream_monitor.evaluate import Check, SeverityBoard, WindowInfo, WindowNoise, severity_of
from stream_monitor.significance import SignificanceLevels
from stream_monitor.snapshot import SeriesKey

KEY = SeriesKey("m", "v1", "csi", "amount", "5m")
INFO = WindowInfo("5m", 0.0, 300.0, 1000, "warmup:1000")
PSI = Thresholds(0.1, 0.25)
#: No evidence and no test: the practical lines alone.
NO_NOISE = WindowNoise(SignificanceLevels(0.01, 0.001), 200, {}, {})


def csi(value: float) -> Check:
    return Check("csi", "amount", value, PSI)


@pytest.mark.parametrize(
    ("value", "thresholds", "severity"),
    [
        (0.0999, PSI, "ok"),
        (0.1, PSI, "warn"),
        (0.25, PSI, "alert"),
        (0.9, Thresholds(0.9, 0.8, "below"), "warn"),
        (0.81, Thresholds(0.9, 0.8, "below"), "warn"),
        (0.79, Thresholds(0.9, 0.8, "below"), "alert"),
        (1.0, Thresholds(1.0, 1.0), "alert"),
    ],
)
def test_severity_of(value: float, thresholds: Thresholds, severity: str) -> None:
    assert severity_of(value, thresholds) == severity


def test_events_only_on_transitions_with_crossed_thresholds() -> None:
    board = SeverityBoard()
    values = [0.01, 0.05, 0.15, 0.16, 0.3, 0.31, 0.2, 0.02, 0.02, 0.4, 0.0]
    events = [board.judge(KEY, csi(v), INFO, 1e9) for v in values]
    transitions = [(e.previous_severity, e.severity, e.threshold) for e in events if e]
    assert transitions == [
        ("ok", "warn", 0.1),
        ("warn", "alert", 0.25),
        ("alert", "warn", 0.25),
        ("warn", "ok", 0.1),
        ("ok", "alert", 0.25),
        ("alert", "ok", 0.1),
    ]
    assert board.severities()[KEY] == "ok"


def test_ids_are_deterministic_and_distinct() -> None:
    first = [SeverityBoard().judge(KEY, csi(0.3), INFO, t) for t in (1.0, 2.0)]
    assert first[0] is not None and first[1] is not None
    assert first[0].id == first[1].id  # same transition, different wall clock
    other_window = WindowInfo("5m", 60.0, 360.0, 1000, "warmup:1000")
    assert SeverityBoard().judge(KEY, csi(0.3), other_window, 1.0).id != first[0].id  # type: ignore[union-attr]
    event = first[0]
    assert event.to_dict()["window_end"] == "1970-01-01T00:05:00Z"
    assert event.reference == "warmup:1000" and event.window_events == 1000


def test_window_checks_have_no_side_effects_and_shift_null_ratio_by_the_reference() -> None:
    from stream_monitor.config_file import config_from_dict
    from stream_monitor.engine import Engine
    from stream_monitor.evaluate import window_checks
    from stream_monitor.snapshot import LatencyStats, StabilityStats, WindowSample
    from stream_monitor.summaries.reference import build_reference
    from stream_monitor.tools.synthetic import SyntheticTraffic
    from tests.conftest import FRAUD_MODEL, as_messages

    config = config_from_dict({"models": [FRAUD_MODEL], "quality": {"min_labeled_events": 10}})
    model = config.models[0]
    events = SyntheticTraffic(seed=1).fraud(500, 1_700_000_000.0)
    batches = Engine(config).decoder.decode(as_messages(events)).batches
    reference = build_reference(model, batches, source="r")
    base = reference.features["account_age_days"].null_ratio
    stats = StabilityStats(500, 0.01, {}, {"account_age_days": base + 0.5}, {})
    sample = WindowSample(
        "fraud-detector", "v1", "5m", 0.0, 300.0, 1.0, stats,
        {"labeled": 20.0, "accuracy": 0.5}, LatencyStats(0, {}), 0.0,
    )  # fmt: skip
    quality_reference = {"accuracy": 0.9}
    checks = window_checks(
        model, reference, quality_reference, sample, concept_active=False, noise=NO_NOISE
    )
    assert quality_reference == {"accuracy": 0.9}  # read, never written
    by_metric = {(c.metric, c.feature): c.thresholds for c in checks}
    null = by_metric[("null_ratio", "account_age_days")]
    assert null.warn == base + model.drift.null_ratio.warn
    accuracy = by_metric[("accuracy", None)]
    assert (
        accuracy.direction == "below" and accuracy.warn == 0.9 - model.quality.rules["accuracy"][0]
    )
    assert ("concept_drift", None) not in by_metric
    active = window_checks(
        model, reference, quality_reference, sample, concept_active=True, noise=NO_NOISE
    )
    assert ("concept_drift", None, 0.0) in [c[:3] for c in active]
