"""Quality metrics through the engine, checked against scikit-learn on the raw events.

Every test feeds events through :class:`Engine` (inline labels, or delayed labels
joined by ``event_id``) and recomputes each window's metrics from the raw events
whose event time falls in the window's panes (``state.windows.span`` and
``pane_s``). Tolerances: AUC within 0.002 and KS within 0.005 (the engine reads
them from 1000-bin score histograms); confusion-matrix metrics equal up to float
rounding (relative 1e-12); log loss, Brier, RMSE, MAE and R2 within 1e-9;
latency quantiles within the sketch's 1% relative error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from stream_monitor.engine import Engine
from stream_monitor.evaluate import DriftEvent
from stream_monitor.metric_names import CONCEPT_DRIFT, DROP_METRICS, RISE_METRICS
from stream_monitor.state.model_state import ModelVersionState
from stream_monitor.summaries.reference import build_reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, PRICE_MODEL, as_messages, make_config

PANE_S = 60.0
#: A multiple of the pane: minute ``m`` of a test stream is pane ``T0 / 60 + m``.
T0 = 28_333_333 * PANE_S
FRAUD = "fraud-detector"
PRICE = "price-estimator"
EXACT = {"rel": 1e-12, "abs": 0.0}
#: Drift events judging quality.
QUALITY_EVENTS = {*DROP_METRICS, *RISE_METRICS, CONCEPT_DRIFT}

Event = dict[str, Any]


def spread(events: list[Event], rng: np.random.Generator, minute: int, width: float) -> list[Event]:
    """Give ``events`` timestamps spread over ``[minute start, + width)``, unsorted.

    Events of one minute arrive out of order, within the allowed lateness.
    """
    offsets = rng.uniform(0.0, width - 0.01, len(events))
    for event, offset in zip(events, offsets, strict=True):
        event["timestamp"] = round(T0 + minute * PANE_S + float(offset), 3)
    return events


def in_window(events: Iterable[Event], state: ModelVersionState, window: str) -> list[Event]:
    """The events whose event-time pane lies in ``window``'s current span."""
    assert state.windows is not None
    first, last = state.windows.span(window)
    assert state.pane_s == PANE_S
    return [e for e in events if first <= np.floor(e["timestamp"] / state.pane_s) <= last]


def samples_of(engine: Engine, model: str) -> dict[tuple[str, str], Any]:
    """The last snapshot's window samples of ``model`` by (version, window)."""
    return {(s.version, s.window): s for s in engine.snapshot().windows if s.model == model}


def assert_binary(quality: Mapping[str, float], labels: Sequence[int], scores: Sequence[float]):
    """The engine's binary quality values equal scikit-learn's on (labels, scores)."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    assert 0 < y.sum() < len(y), "both classes are needed for AUC and KS"
    predicted = (p >= 0.5).astype(int)
    auc = roc_auc_score(y, p)
    assert quality["labeled"] == len(y)
    assert quality["positives"] == int(y.sum())
    assert abs(quality["auc"] - auc) <= 0.002
    assert abs(quality["gini"] - (2 * auc - 1)) <= 0.004
    assert quality["gini"] == pytest.approx(2 * quality["auc"] - 1, abs=1e-12)
    assert abs(quality["ks"] - ks_2samp(p[y == 1], p[y == 0]).statistic) <= 0.005
    assert quality["accuracy"] == pytest.approx(accuracy_score(y, predicted), **EXACT)
    assert quality["precision"] == pytest.approx(
        precision_score(y, predicted, zero_division=0), **EXACT
    )
    assert quality["recall"] == pytest.approx(recall_score(y, predicted, zero_division=0), **EXACT)
    assert quality["f1"] == pytest.approx(f1_score(y, predicted, zero_division=0), **EXACT)
    assert quality["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1]), abs=1e-9)
    assert quality["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-9)


def synthetic_stream(kind: str, minutes: int, per_minute: int, seed: int) -> list[Event]:
    """``SyntheticTraffic``'s ``kind`` (fraud or price) events, spread over their minutes."""
    traffic, rng = SyntheticTraffic(seed=seed), np.random.default_rng(seed)
    generate = getattr(traffic, kind)
    events: list[Event] = []
    for minute in range(minutes):
        events += spread(generate(per_minute, 0.0), rng, minute, PANE_S)
    return events


def fraud_stream(minutes: int, per_minute: int, seed: int) -> list[Event]:
    return synthetic_stream("fraud", minutes, per_minute, seed)


# -- inline labels ------------------------------------------------------------------------------


def test_binary_windows_match_sklearn_after_every_batch() -> None:
    """Every window after every batch (sliding 5m, filling 15m) against sklearn."""
    events = fraud_stream(minutes=13, per_minute=400, seed=3)
    for event in events[::40]:
        event["prediction"] = 0.5  # on the threshold: predicted positive
    engine = Engine(make_config())
    checked = 0
    for start in range(0, len(events), 523):
        engine.process(as_messages(events[start : start + 523]))
        engine.evaluate(now_s=T0)
        seen = events[: start + 523]
        state = engine.states[(FRAUD, "v1")]
        for (_, window), sample in samples_of(engine, FRAUD).items():
            rows = in_window(seen, state, window)
            assert sample.stats.events == len(rows)
            assert (sample.start_s, sample.end_s) == (
                state.windows.span(window)[0] * PANE_S,
                (state.windows.span(window)[1] + 1) * PANE_S,
            )
            assert_binary(
                sample.quality, [e["label"] for e in rows], [e["prediction"] for e in rows]
            )
            checked += 1
    assert checked >= 16
    assert engine.invalid_total == {}


@pytest.mark.parametrize("split", ["two_engines", "two_versions"])
def test_merged_windows_match_sklearn_on_the_union(split: str) -> None:
    """Window vectors of two parts of a stream (same baseline) add up to the whole."""
    config = make_config()
    model = config.model(FRAUD)
    assert model is not None
    decoded = Engine(config).decoder.decode(as_messages(fraud_stream(1, 2000, seed=99)))
    reference = build_reference(model, decoded.batches, source="ref.jsonl", digest="sha256:1")
    baselines = {FRAUD: reference}

    events = fraud_stream(minutes=9, per_minute=400, seed=4)
    halves = np.random.default_rng(8).random(len(events)) < 0.5
    whole = Engine(config, baselines)
    whole.process(as_messages(events))
    if split == "two_engines":
        a, b = Engine(config, baselines), Engine(config, baselines)
        a.process(as_messages([e for e, h in zip(events, halves, strict=True) if h]))
        b.process(as_messages([e for e, h in zip(events, halves, strict=True) if not h]))
        parts = [a.states[(FRAUD, "v1")], b.states[(FRAUD, "v1")]]
    else:
        for event, half in zip(events, halves, strict=True):
            event["model_version"] = "v1" if half else "v2"
        one = Engine(config, baselines)
        one.process(as_messages(events))
        parts = [one.states[(FRAUD, "v1")], one.states[(FRAUD, "v2")]]
    full = whole.states[(FRAUD, "v1")]
    assert full.windows is not None
    layouts = [part.layout for part in parts]
    assert layouts[0] is not None and layouts[1] is not None and full.layout is not None
    assert layouts[0].width == layouts[1].width == full.layout.width
    for window in ("5m", "15m"):
        spans = {part.windows.span(window) for part in parts if part.windows is not None}
        assert spans == {full.windows.span(window)}
        merged = sum(part.windows.window(window) for part in parts if part.windows is not None)
        np.testing.assert_allclose(merged, full.windows.window(window), rtol=1e-12, atol=1e-9)
        quality = layouts[0].quality_values(merged)
        assert quality == layouts[1].quality_values(merged)
        rows = in_window(events, full, window)
        assert len(rows) > 1000
        assert_binary(quality, [e["label"] for e in rows], [e["prediction"] for e in rows])


def test_regression_windows_match_sklearn() -> None:
    traffic, rng = SyntheticTraffic(seed=5), np.random.default_rng(5)
    events: list[Event] = []
    for minute in range(11):
        events += spread(traffic.price(350, 0.0, drifted=minute >= 7), rng, minute, PANE_S)
    for event in events[::17]:
        del event["label"]  # unlabeled rows count for drift, not for quality
    engine = Engine(make_config())
    for start in range(0, len(events), 900):
        engine.process(as_messages(events[start : start + 900]))
    engine.evaluate(now_s=T0)
    state = engine.states[(PRICE, "v1")]
    samples = samples_of(engine, PRICE)
    assert set(samples) == {("v1", "5m"), ("v1", "15m")}
    for (_, window), sample in samples.items():
        rows = [e for e in in_window(events, state, window) if "label" in e]
        y = np.array([e["label"] for e in rows])
        p = np.array([e["prediction"] for e in rows])
        q = sample.quality
        assert q["labeled"] == len(rows)
        rmse = float(np.sqrt(mean_squared_error(y, p)))
        assert q["rmse"] == pytest.approx(rmse, rel=1e-9)
        assert q["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9)
        assert q["r2"] == pytest.approx(r2_score(y, p), rel=1e-9)
        assert q["mean_error"] == pytest.approx(float(np.mean(p - y)), abs=1e-9 * rmse)


ANIMALS = ["cat", "dog", "emu"]
ANIMAL_MODEL = {
    "name": "animal-classifier",
    "task": "multiclass",
    "classes": ANIMALS,
    "features": {"weight_kg": "numeric", "habitat": "categorical"},
    "reference": {"warmup_events": 300},
}


def animal_stream(minutes: int, per_minute: int, seed: int) -> list[Event]:
    """Multiclass events: the label one of ANIMALS or (rarely) "ferret", not configured."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    for minute in range(minutes):
        n = per_minute
        truth = rng.choice([*ANIMALS, "ferret"], n, p=[0.5, 0.3, 0.17, 0.03])
        right = rng.random(n) < 0.7 - 0.04 * minute
        guess = rng.choice([*ANIMALS, "ferret"], n, p=[0.3, 0.3, 0.3, 0.1])
        for i in range(n):
            event: Event = {
                "event_id": f"a-{minute}-{i}",
                "model": "animal-classifier",
                "features": {
                    "weight_kg": round(float(rng.gamma(2.0, 3.0)), 2),
                    "habitat": str(rng.choice(["farm", "city", "bush"])),
                },
                "prediction": str(truth[i] if right[i] else guess[i]),
                "latency_ms": round(float(rng.lognormal(1.5, 0.3)), 3),
            }
            if rng.random() > 0.05:
                event["label"] = str(truth[i])
            events.append(event)
        spread(events[-n:], rng, minute, PANE_S)
    return events


def test_multiclass_windows_match_sklearn() -> None:
    events = animal_stream(minutes=9, per_minute=250, seed=6)
    engine = Engine(make_config(models=[ANIMAL_MODEL]))
    for start in range(0, len(events), 400):
        engine.process(as_messages(events[start : start + 400]))
        engine.evaluate(now_s=T0)
    state = engine.states[("animal-classifier", "unknown")]
    samples = samples_of(engine, "animal-classifier")
    assert set(samples) == {("unknown", "5m"), ("unknown", "15m")}
    for (_, window), sample in samples.items():
        rows = [e for e in in_window(events, state, window) if "label" in e]
        y = [e["label"] for e in rows]
        p = [e["prediction"] for e in rows]
        assert "ferret" in y and "ferret" in p  # the one unconfigured class is "other"
        q = sample.quality
        assert q["labeled"] == len(rows)
        assert q["accuracy"] == pytest.approx(accuracy_score(y, p), **EXACT)
        macro = f1_score(y, p, average="macro", zero_division=0)
        assert q["macro_f1"] == pytest.approx(macro, **EXACT)
        assert q["f1"] == q["macro_f1"]
        weighted = f1_score(y, p, average="weighted", zero_division=0)
        assert q["weighted_f1"] == pytest.approx(weighted, **EXACT)


def test_latency_quantiles_within_one_percent() -> None:
    traffic, rng = SyntheticTraffic(seed=9), np.random.default_rng(9)
    events: list[Event] = []
    for minute in range(10):
        batch = traffic.fraud(300, 0.0) + traffic.price(300, 0.0)
        events += spread(batch, rng, minute, PANE_S)
    for event in events[::13]:
        del event["latency_ms"]  # no latency: not counted
    for event in events[5::97]:
        event["latency_ms"] = round(float(rng.uniform(200.0, 5000.0)), 3)  # a slow tail
    engine = Engine(make_config())
    for start in range(0, len(events), 1000):
        engine.process(as_messages(events[start : start + 1000]))
    engine.evaluate(now_s=T0)
    checked = 0
    for model in (FRAUD, PRICE):
        state = engine.states[(model, "v1")]
        for (_, window), sample in samples_of(engine, model).items():
            rows = [e for e in in_window(events, state, window) if e["model"] == model]
            latency_s = np.array([e["latency_ms"] for e in rows if "latency_ms" in e]) / 1000.0
            assert sample.latency.count == len(latency_s)
            assert set(sample.latency.quantiles_s) == {0.5, 0.9, 0.99}
            for q, value in sample.latency.quantiles_s.items():
                exact = float(np.quantile(latency_s, q, method="inverted_cdf"))
                assert value == pytest.approx(exact, rel=0.01), (model, window, q)
            checked += 1
    assert checked == 4


# -- delayed labels -----------------------------------------------------------------------------

MINUTES = 12
TTL_S = 230.0


def delayed_label_batches(seed: int) -> tuple[list[list[Event]], dict[str, Event], dict[str, str]]:
    """Predictions without labels, and their label events in later batches, shuffled.

    Minute ``m``'s predictions have event times in ``[m*60, m*60 + 20)`` and
    arrive in batch ``m``; label events carry ``timestamp = prediction time +
    30 s``. The event-time watermark after batch ``k <= 11`` is just under
    ``k*60 + 20`` (a label in batch ``k`` is stamped before ``k*60 - 10``), so
    with a TTL of 230 s a prediction of minute ``m`` still waits after batch
    ``m + 3`` (cutoff ``m*60 - 30``) and has expired after batch ``m + 4``
    (cutoff ``m*60 + 30``). Each prediction's fate:

    * ``on_time`` (most): its label comes in batch ``m + 1``, ``m + 2`` or ``m + 3``;
    * ``late`` (about 10%, minutes 0-6): its label comes in batch ``m + 5``,
      after the prediction expired: an orphan label (stamped before the
      cutoff, so it is dropped in the same batch);
    * ``never`` (about 10%): no label. Batches 12-14 hold labels only; those of
      minute 11 (stamped up to ``11*60 + 50``) move the watermark to just under
      710 s, so the final cutoff stays just under 480 s: never-labeled
      predictions of minutes 0-7 expired, those of minutes 8-11 still wait.
    """
    rng = np.random.default_rng(seed)
    traffic = SyntheticTraffic(seed=seed)
    batches: dict[int, list[Event]] = defaultdict(list)
    predictions: dict[str, Event] = {}
    fate: dict[str, str] = {}
    for minute in range(MINUTES):
        events = traffic.fraud(300, 0.0)
        offsets = rng.uniform(0.0, 19.99, len(events))
        for event, offset in zip(events, offsets, strict=True):
            event["timestamp"] = round(T0 + minute * PANE_S + float(offset), 3)
            truth = event.pop("label")
            event_id = event["event_id"]
            predictions[event_id] = {**event, "label": truth}
            batches[minute].append(event)
            label = {
                "event_id": event_id,
                "model": FRAUD,
                "label": truth,
                "timestamp": round(event["timestamp"] + 30.0, 3),
            }
            draw = rng.random()
            if draw < 0.1:
                fate[event_id] = "never"
            elif draw < 0.2 and minute <= 6:
                fate[event_id] = "late"
                batches[minute + 5].append(label)
            else:
                fate[event_id] = "on_time"
                batches[minute + int(rng.integers(1, 4))].append(label)
    ordered = []
    for index in sorted(batches):
        batch = batches[index]
        rng.shuffle(batch)  # type: ignore[arg-type]
        ordered.append(batch)
    return ordered, predictions, fate


def test_delayed_labels_join_expire_and_count_in_the_prediction_pane() -> None:
    config = make_config(labels={"join": True, "ttl_s": TTL_S, "clock": "event"})
    engine = Engine(config)
    batches, predictions, fate = delayed_label_batches(seed=21)
    assert len(batches) == MINUTES + 3  # the last three hold labels only
    for batch in batches:
        rejects = engine.process(as_messages(batch))
        assert rejects == []
        engine.evaluate(now_s=T0)
    assert engine.joiner.stores is not None

    minute_of = {i: int((p["timestamp"] - T0) // PANE_S) for i, p in predictions.items()}
    on_time = [i for i, f in fate.items() if f == "on_time"]
    late = [i for i, f in fate.items() if f == "late"]
    never_old = [i for i, f in fate.items() if f == "never" and minute_of[i] <= 7]
    never_new = [i for i, f in fate.items() if f == "never" and minute_of[i] >= 8]
    assert late and never_old and never_new

    counters = engine.joiner.stores[FRAUD].counters
    assert counters.joined == len(on_time)
    assert counters.expired_predictions == len(never_old) + len(late)
    assert counters.orphan_labels == len(late)
    assert engine.joiner.stores[FRAUD].pending_predictions == len(never_new)
    assert engine.joiner.stores[FRAUD].pending_labels == 0
    assert counters.joined + counters.expired_predictions + engine.joiner.stores[
        FRAUD
    ].pending_predictions == len(predictions)
    assert engine.snapshot().label_joins == {
        "joined": len(on_time),
        "late": 0,
        "expired": len(never_old) + len(late),
        "orphan": len(late),
        "evicted": 0,
        "pending_predictions": len(never_new),
        "pending_labels": 0,
    }

    # Each joined label counts in its prediction's pane, not in the pane it arrived in.
    state = engine.states[(FRAUD, "v1")]
    joined = [predictions[i] for i in on_time]
    samples = samples_of(engine, FRAUD)
    assert set(samples) == {("v1", "5m"), ("v1", "15m")}
    for (_, window), sample in samples.items():
        rows = in_window(joined, state, window)
        assert sample.stats.events == len(in_window(predictions.values(), state, window))
        assert_binary(sample.quality, [e["label"] for e in rows], [e["prediction"] for e in rows])
    assert samples[("v1", "15m")].quality["labeled"] == len(on_time)


def test_a_label_before_its_prediction_waits_for_it() -> None:
    """Labels first (in another batch), predictions later: joined, counted once."""
    config = make_config(
        labels={"join": True, "ttl_s": 600, "clock": "event"},
        models=[{**FRAUD_MODEL, "reference": {"warmup_events": 100}}],
    )
    engine = Engine(config)
    events = fraud_stream(minutes=3, per_minute=200, seed=12)
    labels = [
        {"event_id": e["event_id"], "model": FRAUD, "label": e["label"], "timestamp": T0}
        for e in events[::2]
    ]
    engine.process(as_messages(labels))
    assert engine.joiner.stores is not None and engine.joiner.stores[FRAUD].pending_labels == len(
        labels
    )
    stripped = [{k: v for k, v in e.items() if k != "label"} for e in events]
    engine.process(as_messages(stripped))
    engine.evaluate(now_s=T0)
    assert engine.joiner.stores[FRAUD].counters.joined == len(labels)
    assert engine.joiner.stores[FRAUD].pending_labels == 0
    assert engine.joiner.stores[FRAUD].pending_predictions == len(events) - len(labels)
    state = engine.states[(FRAUD, "v1")]
    sample = samples_of(engine, FRAUD)[("v1", "5m")]
    rows = in_window(events[::2], state, "5m")
    assert_binary(sample.quality, [e["label"] for e in rows], [e["prediction"] for e in rows])


def price_stream(minutes: int, per_minute: int, seed: int) -> list[Event]:
    return synthetic_stream("price", minutes, per_minute, seed)


@pytest.mark.parametrize(
    ("model", "make_stream"),
    [(FRAUD, fraud_stream), (PRICE, price_stream), ("animal-classifier", animal_stream)],
)
def test_delayed_labels_give_the_inline_quality_for_every_task(
    model: str, make_stream: Any
) -> None:
    """The same labels, inline or joined later (shuffled, two batches): the same windows."""
    config = make_config(
        models=[FRAUD_MODEL, PRICE_MODEL, ANIMAL_MODEL], labels={"join": True, "ttl_s": 3600}
    )
    events = make_stream(7, 300, 13)
    inline, delayed = Engine(config), Engine(config)
    inline.process(as_messages(events))
    delayed.process(as_messages([{k: v for k, v in e.items() if k != "label"} for e in events]))
    labels = [
        {
            "event_id": e["event_id"],
            "model": model,
            "label": e["label"],
            "timestamp": e["timestamp"],
        }
        for e in events
        if "label" in e
    ]
    np.random.default_rng(13).shuffle(labels)  # type: ignore[arg-type]
    delayed.process(as_messages(labels[: len(labels) // 2]))
    delayed.process(as_messages(labels[len(labels) // 2 :]))
    inline.evaluate(now_s=T0)
    delayed.evaluate(now_s=T0)
    assert delayed.joiner.stores is not None and delayed.joiner.stores[
        model
    ].counters.joined == len(labels)
    expected = samples_of(inline, model)
    got = samples_of(delayed, model)
    assert set(got) == set(expected) and len(got) == 2
    for key, sample in expected.items():
        assert sample.quality["labeled"] == got[key].quality["labeled"] > 1000
        assert got[key].quality == pytest.approx(dict(sample.quality), rel=1e-9, nan_ok=True)


# -- regressions: bugs these tests found ------------------------------------------------------


def test_a_label_from_the_far_future_does_not_expire_every_prediction() -> None:
    """One label event stamped years ahead moves the event-time clock of the join store.

    Predictions past ``now + windows.max_future_s`` are rejected as
    ``future_timestamp``; label events are not, and ``Engine._join`` raises the
    watermark to their timestamp, so the next ``expire`` drops every waiting
    prediction and every later one (SPEC section 3: bad input must not corrupt
    the state).
    """
    engine = Engine(
        make_config(
            labels={"join": True, "ttl_s": 3600, "clock": "event"},
            models=[{**FRAUD_MODEL, "reference": {"warmup_events": 100}}],
        )
    )
    events = fraud_stream(minutes=4, per_minute=300, seed=31)
    truth = {e["event_id"]: e.pop("label") for e in events}
    now = T0 + 300
    engine.process(as_messages(events[:600]), now_s=now)
    bogus = {"event_id": "x", "model": FRAUD, "label": 1, "timestamp": T0 + 10 * 365 * 86400}
    rejects = engine.process(as_messages([bogus]), now_s=now)
    engine.process(as_messages(events[600:]), now_s=now)
    labels = [
        {"event_id": i, "model": FRAUD, "label": y, "timestamp": T0 + 250} for i, y in truth.items()
    ]
    engine.process(as_messages(labels), now_s=now)
    assert engine.joiner.stores is not None
    assert [r.reason for r in rejects] == ["future_timestamp"]
    assert engine.joiner.stores[FRAUD].counters.expired_predictions == 0
    assert engine.joiner.stores[FRAUD].counters.joined == len(events)


def test_a_model_behind_in_event_time_still_gets_its_labels() -> None:
    """Event-time TTL must follow each model's own clock.

    Lateness is judged per model version (README, Windows), so a model whose
    events run two hours behind another's is counted normally; but the join
    store expired on one clock, the newest event time over all models, so
    with a one-hour TTL every prediction of the slower model expires in the
    batch it arrives in and none of its labels is ever joined.
    """
    engine = Engine(make_config(labels={"join": True, "ttl_s": 3600, "clock": "event"}))
    traffic = SyntheticTraffic(seed=1)
    fraud = traffic.fraud(1000, T0)
    price = traffic.price(1000, T0 - 7200)
    for event in fraud + price:
        del event["label"]
    assert engine.process(as_messages(fraud + price), now_s=T0) == []
    labels = [
        {"event_id": e["event_id"], "model": PRICE, "label": 1.0, "timestamp": T0 - 7190}
        for e in price
    ]
    engine.process(as_messages(labels), now_s=T0)
    assert engine.joiner.stores is not None
    assert engine.joiner.stores[PRICE].counters.expired_predictions == 0
    assert engine.joiner.stores[PRICE].counters.joined == len(price)


def test_a_label_event_without_a_join_is_counted() -> None:
    """Without a label join, an event with ``event_id`` and ``label`` but no ``features``
    is decoded as a label event and dropped by ``Engine._join``: neither counted as
    an event nor as invalid (SPEC section 3: every rejected event is counted by reason).
    The same event without ``event_id`` is rejected as ``missing_field``.
    """
    engine = Engine(make_config())
    assert engine.joiner.stores is None
    label = {"event_id": "x", "model": FRAUD, "label": 1, "timestamp": T0}
    no_id = {"model": FRAUD, "label": 1, "timestamp": T0}
    rejects = engine.process(as_messages([label, no_id]))
    assert sorted(r.message_index for r in rejects) == [0, 1]
    assert sum(engine.invalid_total.values()) == 2


# -- performance drift --------------------------------------------------------------------------


def test_accuracy_drop_raises_quality_drift_after_the_change_only() -> None:
    """Labels flip from minute 14 on: accuracy and concept-drift events follow, none before."""
    change_minute = 14
    change_s = T0 + change_minute * PANE_S
    traffic, rng = SyntheticTraffic(seed=2), np.random.default_rng(2)
    engine = Engine(make_config())
    found: list[tuple[int, DriftEvent]] = []
    for minute in range(24):
        events = spread(traffic.fraud(300, 0.0), rng, minute, PANE_S)
        if minute >= change_minute:
            for event in events:
                event["label"] = 1 - event["label"]
        for part in (events[:150], events[150:]):
            engine.process(as_messages(part))
            found += [(minute, e) for e in engine.evaluate(now_s=T0)]

    quality = [(m, e) for m, e in found if e.metric in QUALITY_EVENTS]
    assert [e for m, e in quality if m < change_minute] == []
    raised = [e for _, e in quality if e.severity != "ok"]
    assert {"accuracy", "concept_drift"} <= {e.metric for e in raised}
    for event in raised:
        assert event.window_end > event.window_start
        assert parse_iso(event.window_end) > change_s
    first_accuracy = min(m for m, e in quality if e.metric == "accuracy" and e.severity != "ok")
    # A pane is judged once closed: the watermark passed its end by the allowed lateness.
    lateness_panes = make_config().windows.allowed_lateness_s / PANE_S
    assert first_accuracy <= change_minute + 2 + lateness_panes
    alerts = {(e.metric, e.window) for _, e in quality if e.severity == "alert"}
    assert ("accuracy", "5m") in alerts and ("concept_drift", "5m") in alerts
    accuracy_alert = next(
        e for _, e in quality if (e.metric, e.window, e.severity) == ("accuracy", "5m", "alert")
    )
    assert accuracy_alert.value < accuracy_alert.threshold
    assert accuracy_alert.window_events >= 200


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
