"""False alerts on stable streams and detection delays, before and after significance.

Counts are simulated (:mod:`stream_monitor.tools.alert_simulation`); the
model is the issue's new user's, with fewer columns to keep CI fast: one
normal and one zero-inflated numeric feature (4 bins after merged edges), the
30-value Zipf categorical, and a 20-bin score histogram.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from stream_monitor.config import ConceptDriftConfig, DriftConfig, LimitsConfig, WindowConfig
from stream_monitor.judging import WindowJudge
from stream_monitor.state.ledger import PartitionLedger
from stream_monitor.state.model_state import ModelVersionState
from stream_monitor.summaries.layout import CounterLayout
from stream_monitor.tools.alert_simulation import (
    PANE_S,
    SHIFTS,
    WINDOWS,
    Transitions,
    VectorJudge,
    new_user_model,
    run_shift,
    run_stable,
    window_sums,
)

MODEL_DAYS = 200
#: The budget is 0.1 false alerts per model per day. Over 200 model-days that is
#: at most 20 expected alerts, and a Poisson count of mean 20 exceeds 60 with
#: probability below 1e-11: 0.3 per model-day fails only when the rate is truly
#: above budget (about 3 times), not by Monte-Carlo chance.
AFTER_ALERTS_PER_DAY = 0.3


@pytest.fixture(scope="module")
def small_model():
    return new_user_model(seed=5, numeric=2, small_categoricals=0, score_bins=20)


@pytest.mark.parametrize("rate", [1.0, 10.0])
def test_stable_streams_keep_false_alerts_within_the_budget(small_model, rate: float) -> None:
    run = run_stable(small_model, rate, MODEL_DAYS, seed=11)
    assert run.model_days >= MODEL_DAYS
    assert run.per_day("after", "alerts") <= AFTER_ALERTS_PER_DAY, run.worst("after", "alerts")
    if rate == 1.0:
        # As the issue measured: the practical line alone fires hundreds of times a day.
        assert run.per_day("before", "alerts") + run.per_day("before", "warnings") > 100
        assert run.per_day("before", "alerts") > 30 * AFTER_ALERTS_PER_DAY


@pytest.mark.parametrize("rate", [10.0, 100.0, 1000.0])
def test_shifts_are_detected_after_no_later_than_before_plus_one_pane(
    small_model, rate: float
) -> None:
    for kind in SHIFTS:
        delays = run_shift(small_model, kind, rate, runs=3, horizon=90, seed=7)
        for window in WINDOWS:
            first = np.median(delays[("after", window, "warn")])
            assert math.isfinite(first), (kind, window, rate)
            for level in ("warn", "alert"):
                after = np.median(delays[("after", window, level)])
                before = np.median(delays[("before", window, level)])
                assert after <= before + PANE_S / 60, (kind, window, level, before, after)


def engine_transitions(sim, panes: np.ndarray) -> Counter:
    """Drift events of the engine's own judge on the same pane vectors."""
    state = ModelVersionState(
        sim.model,
        "v1",
        WindowConfig(sizes={name: size * PANE_S for name, size in WINDOWS.items()}),
        LimitsConfig(),
        ConceptDriftConfig(),
        CounterLayout,
        sim.layout.reference,
    )
    ledger = PartitionLedger(("events", 0), hot_panes=1000)
    for pane, vector in enumerate(panes):
        state.panes.credit(ledger, pane, vector)
    state.panes.advance((len(panes) - 0.5) * PANE_S)
    judge = WindowJudge()
    judge.judge_closed([state], math.inf, now_s=0.0, final=True)
    found = Counter()
    for event in judge.take_events():
        if event.metric not in VectorJudge.METRICS:
            continue  # null and new-category ratios are not simulated
        series = event.metric if event.feature is None else f"{event.metric}[{event.feature}]"
        found[(event.window, series, event.previous_severity, event.severity)] += 1
    return found


def test_vectorised_judging_matches_the_engine() -> None:
    # Generous budgets, so that noise alone moves severities both ways.
    drift = DriftConfig(false_alerts_per_day=500.0, false_warnings_per_day=5000.0)
    sim = new_user_model(seed=3, numeric=2, small_categoricals=1, score_bins=20, drift=drift)
    rng = np.random.default_rng(4)
    moved, _ = sim.shifted("category")
    panes = np.concatenate(
        (
            sim.pane_vectors(rng, rng.poisson(1.0 * PANE_S, 150)),
            moved.pane_vectors(rng, rng.poisson(1.0 * PANE_S, 30)),
        )
    )
    judge = VectorJudge(sim)
    found = Counter()
    for window, vectors in window_sums(panes, np.zeros((0, panes.shape[1]))).items():
        severities = judge.judge(vectors[:, judge.used])["after"]
        names = ["ok", "warn", "alert"]
        for row, series in enumerate(judge.series):
            state = "ok"
            for value in severities[row]:
                if value >= 0 and names[value] != state:
                    found[(window, series, state, names[value])] += 1
                    state = names[value]
    expected = engine_transitions(sim, panes)
    assert sum(expected.values()) > 20  # the check is not empty
    assert found == expected


def test_transitions_count_rises_as_a_severity_board() -> None:
    board = Transitions(["a"])
    board.follow(np.array([[0, 1, -1, 2, 1, 2, 0, 2]], dtype=np.int8))
    assert (board.alerts["a"], board.warnings["a"]) == (3, 1)
    board.follow(np.array([[-1, 1]], dtype=np.int8))  # alert is kept, then falls to warn
    assert (board.alerts["a"], board.warnings["a"]) == (3, 1)
