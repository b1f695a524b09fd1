"""A severity needs the value past its line and significant: levels, evidence, explain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_monitor.config import Thresholds
from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.evaluate import Check, SeverityBoard, WindowInfo
from stream_monitor.significance import (
    Evidence,
    SignificanceLevels,
    bin_labels,
    min_window_events,
    series_tested,
    significance_levels,
    stability_evidence,
)
from stream_monitor.snapshot import SeriesKey
from stream_monitor.summaries.binning import NumericBins
from stream_monitor.summaries.layout import CounterLayout
from stream_monitor.summaries.noise import chi2_isf, stability_noise
from stream_monitor.summaries.reference import build_reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, as_messages

KEY = SeriesKey("m", "v1", "csi", "amount", "5m")
INFO = WindowInfo("5m", 0.0, 300.0, 1000, "warmup:1000")
LINES = Thresholds(0.1, 0.25)
LEVELS = SignificanceLevels(warn=1e-3, alert=1e-5)


def evidence(p_value: float) -> Evidence:
    return Evidence(
        lambda: p_value, 0.05, 0.08, 50_000, lambda: [{"bin": "a", "contribution": 0.2}]
    )


@pytest.mark.parametrize(
    ("value", "p_value", "severity"),
    [
        (0.3, 1e-7, "alert"),  # past both lines and significant for an alert
        (0.3, 1e-4, "warn"),  # past the alert line, significant for a warning only
        (0.3, 0.2, "ok"),  # noise at this size: no severity however high the value
        (0.05, 1e-12, "ok"),  # significant but below the practical line
        (0.3, math.nan, "ok"),  # no test possible (e.g. one bin left after merging)
    ],
)
def test_a_severity_needs_the_line_and_significance(
    value: float, p_value: float, severity: str
) -> None:
    board = SeverityBoard()
    check = Check("csi", "amount", value, LINES, evidence(p_value))
    board.judge(KEY, check, INFO, 1.0, LEVELS)
    assert board.severities()[KEY] == severity


def test_the_event_says_why_it_fired() -> None:
    event = SeverityBoard().judge(
        KEY, Check("csi", "amount", 0.3, LINES, evidence(1e-7)), INFO, 1.0, LEVELS
    )
    assert event is not None and event.severity == "alert"
    assert (event.p_value, event.critical_value, event.reference_events) == (1e-7, 0.08, 50_000)
    assert event.explain == [{"bin": "a", "contribution": 0.2}]
    plain = SeverityBoard().judge(KEY, Check("csi", "amount", 0.3, LINES), INFO, 1.0, LEVELS)
    assert plain is not None and plain.p_value is None and plain.critical_value is None


def test_persistence_holds_a_rise_until_enough_panes_agree_and_lets_it_fall_at_once() -> None:
    board = SeverityBoard()
    high = Check("csi", "amount", 0.3, LINES, evidence(1e-9))
    low = Check("csi", "amount", 0.01, LINES, evidence(0.5))
    severities = []
    for check in (high, high, low, high, high, high, low):
        board.judge(KEY, check, INFO, 1.0, LEVELS, persistence=3)
        severities.append(board.severities()[KEY])
    assert severities == ["ok", "ok", "ok", "ok", "ok", "alert", "ok"]


def test_levels_share_the_daily_budget_over_every_test() -> None:
    config = config_from_dict({"models": [FRAUD_MODEL]})
    model = config.models[0]
    levels = significance_levels(model, windows=2, pane_s=60.0)
    tests_per_day = series_tested(model) * 2 * 1440
    assert series_tested(model) == 1 + len(model.features) + 3 + 1  # auc, accuracy, f1 of 6
    assert levels.alert == pytest.approx(0.1 / tests_per_day, rel=1e-12)
    assert levels.warn == pytest.approx(1.0 / tests_per_day, rel=1e-12)


@pytest.fixture(scope="module")
def fraud_layout() -> CounterLayout:
    config = config_from_dict({"models": [FRAUD_MODEL]})
    model = config.models[0]
    events = SyntheticTraffic(seed=3).fraud(20_000, 1_700_000_000.0)
    batches = Engine(config).decoder.decode(as_messages(events)).batches
    return CounterLayout(model, build_reference(model, batches, source="r"))


def test_stability_evidence_matches_the_chi_square_rule_and_explains_the_moved_bins(
    fraud_layout: CounterLayout,
) -> None:
    layout = fraud_layout
    amount = layout.features["amount"]
    reference = np.asarray(amount.reference.counts, dtype=np.float64)
    vector = np.zeros(layout.width)
    window = np.round(reference / reference.sum() * 5_000)
    window[0] += 2_000  # a shift into the first bin
    vector[amount.start : amount.start + amount.size] = window
    found = stability_evidence(layout, vector, LEVELS)["amount"]
    n, m = reference.sum(), window.sum()
    assert found.reference_events == n
    assert found.critical_alert == pytest.approx(
        (1 / n + 1 / m) * chi2_isf(LEVELS.alert, amount.size - 1), rel=1e-9
    )
    assert found.p_value < 1e-12 and found.allowed(LEVELS) == "alert"
    explained = found.explain()
    assert explained is not None and explained[0]["bin"] == bin_labels(amount)[0]
    top = explained[0]
    assert top["window_share"] == pytest.approx(window[0] / m, abs=1e-6)
    assert top["reference_share"] == pytest.approx(reference[0] / n, abs=1e-6)
    assert [e["contribution"] for e in explained] == sorted(
        (e["contribution"] for e in explained), reverse=True
    )


@pytest.mark.parametrize("scale", [0, 3, 40, 5_000, 10**6])
def test_stability_evidence_of_all_columns_equals_the_noise_of_each_to_the_bit(
    fraud_layout: CounterLayout, scale: int
) -> None:
    layout = fraud_layout
    drift = layout.model.drift
    columns = [(None, layout.prediction), *layout.features.items()]
    rng = np.random.default_rng(scale)
    for _ in range(20):
        vector = rng.integers(0, scale + 1, layout.width).astype(np.float64)
        for _, slots in columns[:: 1 + int(rng.integers(0, 3))]:
            vector[slots.start] = 0.0  # an empty bin here and there: some columns merge
        found = stability_evidence(layout, vector, LEVELS)
        stats = layout.stability(vector)  # as judging passes them: the window's PSI and CSI
        given = stability_evidence(layout, vector, LEVELS, [stats.psi, *stats.csi.values()])
        p_values = [[e.p_value for e in evidence.values()] for evidence in (found, given)]
        assert np.array(p_values[0]).tobytes() == np.array(p_values[1]).tobytes()
        for name, slots in columns:
            reference = np.asarray(slots.reference.counts, dtype=np.float64)
            window = np.array(slots.counts(vector), dtype=np.float64)
            ordered = isinstance(slots.bins, NumericBins)
            noise = [
                stability_noise(
                    reference, window, level, drift.epsilon, drift.min_expected_per_bin, ordered
                )
                for level in (LEVELS.warn, LEVELS.alert)
            ]
            evidence = found[name]
            expected_alert = noise[0].critical_value
            if noise[0].bins >= 2 and math.isfinite(expected_alert):
                scale_of = 1 / reference.sum() + 1 / window.sum()
                expected_alert = scale_of * chi2_isf(LEVELS.alert, noise[0].bins - 1)
            got = [evidence.p_value, evidence.critical_warn, evidence.critical_alert]
            want = [noise[0].p_value, noise[0].critical_value, expected_alert]
            assert np.array(got).tobytes() == np.array(want).tobytes(), (name, got, want)
            assert evidence.reference_events == int(reference.sum())


def test_bins_read_as_intervals_or_categories_and_min_events_follow_the_bins(
    fraud_layout: CounterLayout,
) -> None:
    labels = bin_labels(fraud_layout.features["amount"])
    assert labels[0].startswith("(-inf, ") and labels[-1].endswith(", inf]")
    country = bin_labels(fraud_layout.features["country"])
    assert country[-1] == "other" and len(country) == fraud_layout.features["country"].size
    assert min_window_events(fraud_layout.model, fraud_layout) == 5 * fraud_layout.prediction.size
