"""The status line: its counts are the metrics of the snapshot it was formed from, its
first-verdict estimate comes true, and it stays one line."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest

from stream_monitor.config import ConfigError
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.sinks.prometheus import build_registry
from stream_monitor.sinks.status_line import MAX_LISTED, StatusLine, status_text
from stream_monitor.snapshot import Snapshot
from stream_monitor.tools.synthetic import SyntheticTraffic
from stream_monitor.verdict_progress import VersionProgress
from tests.conftest import FRAUD_MODEL, PRICE_MODEL, as_messages, make_config, registry_samples

START = 1_700_000_000.0
MODELS = ("fraud-detector", "price-estimator")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def parsed(line: str) -> dict[str, object]:
    """The numbers of a status line, read back from its text."""
    invalid = re.search(r"(\d[\d,]*) invalid events(?: \(([^)]*)\))?", line)
    total = re.search(r"(\d[\d,]*) events in total", line)
    lag = re.search(r"lag (\d[\d,]*) events", line)
    assert invalid and total and lag, line
    named = [part.split(" ") for part in (invalid.group(2) or "").split(", ") if part]
    reasons = {reason: number(count) for count, reason in named}
    rates = {
        model: float(rate.replace(",", ""))
        for model, rate in re.findall(r"([\w-]+) ([\d.,]+)/s", line)
    }
    return {
        "events": number(total.group(1)),
        "invalid": number(invalid.group(1)),
        "reasons": reasons,
        "lag": number(lag.group(1)),
        "rates": rates,
    }


def fed(engine: Engine, seconds: range, per_step: int, step_s: float = 5.0) -> None:
    """Feed both models ``per_step`` events each every ``step_s`` of event time."""
    traffic = SyntheticTraffic(seed=3)
    for step in seconds:
        ts = START + step * step_s
        engine.process(as_messages(traffic.fraud(per_step, ts) + traffic.price(per_step, ts)))
        engine.evaluate(now_s=ts)


def test_its_counts_are_the_metrics_of_the_same_snapshot() -> None:
    engine = Engine(make_config())
    fed(engine, range(10), per_step=40)
    before = engine.snapshot()
    fed(engine, range(10, 16), per_step=25)
    bad = [RawMessage(b"{not json", 1), RawMessage(b"[1]", 1), RawMessage(b"{broken", 1)]
    engine.process(bad)
    engine.evaluate(now_s=START)
    lag = {("inference-events", 0): 1234, ("inference-events", 1): 5}
    snapshot = replace(engine.snapshot(), consumer_lag=lag)

    line = status_text(snapshot, before.events_total, 30.0, engine.progress(), MODELS)

    found = parsed(line)
    metrics = registry_samples(
        build_registry(lambda: snapshot),
        "stream_monitor_events_total",
        "stream_monitor_invalid_events_total",
        "stream_monitor_consumer_lag",
    )

    def total(name: str) -> float:
        return sum(value for (metric, _), value in metrics.items() if metric == name)

    assert found["events"] == total("stream_monitor_events_total") == 2 * 16 * 40 - 2 * 6 * 15
    assert found["invalid"] == total("stream_monitor_invalid_events_total") == 3
    assert found["lag"] == total("stream_monitor_consumer_lag") == 1239
    by_reason = {
        dict(labels)["reason"]: value
        for (name, labels), value in metrics.items()
        if name == "stream_monitor_invalid_events_total" and value
    }
    assert found["reasons"] == by_reason == {"malformed_json": 2, "not_an_object": 1}
    # events/s: the counters' increase over the 30 s, per model and in all
    assert found["rates"] == {"fraud-detector": 5.0, "price-estimator": 5.0}
    assert line.startswith("status: 10 events/s (")
    assert "\n" not in line


def test_a_quiet_interval_says_so_instead_of_zeros() -> None:
    snapshot = Snapshot(events_total={("fraud-detector", "v1"): 4200}, consumer_lag={("t", 0): 0})
    line = status_text(snapshot, snapshot.events_total, 10.2, [], MODELS)
    assert line == (
        "status: no events in the last 10 s (4,200 events in total), 0 invalid events, "
        "lag 0 events; no events yet from price-estimator"
    )
    assert "events/s" not in line


def test_lag_not_reported_and_broker_down_are_said() -> None:
    line = status_text(Snapshot(broker_up=False), {}, 10.0, [])
    assert "lag not reported yet" in line and "broker unreachable" in line


def progress_of(model: str, version: str = "v1", **changes: object) -> VersionProgress:
    base = VersionProgress(
        model, version, True, (10, 1000), 10, 200, (("5m", 5), ("15m", 15)),
        next_pane=100, newest_s=6000.0, closing_s=6000.0, pane_s=60.0, allowed_lateness_s=120.0,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_many_models_and_versions_stay_one_line_busiest_first() -> None:
    models = [f"model-{i:02d}" for i in range(12)]
    now = {(model, "v1"): 1000 + 100 * i for i, model in enumerate(models)}
    snapshot = Snapshot(events_total=now)
    progress = [progress_of(model) for model in models]

    line = status_text(snapshot, {}, 10.0, progress, [*models, "quiet-a", "quiet-b"])

    assert "\n" not in line
    shown = re.findall(r"(model-\d\d) [\d.,]+/s", line)
    assert shown == ["model-11", "model-10", "model-09", "model-08", "model-07"]
    assert f"+{12 - MAX_LISTED} more models)" in line
    assert len(re.findall(r"model-\d\d v1 warming up", line)) == MAX_LISTED
    assert f"+{12 - MAX_LISTED} more model versions" in line
    assert line.endswith("no events yet from quiet-a, quiet-b")


def test_an_ingest_replica_names_no_verdicts() -> None:
    snapshot = Snapshot(events_total={("m", "v1"): 10})
    line = status_text(snapshot, {}, 10.0, [progress_of("m", judging=False)])
    assert "verdict" not in line and "warming" not in line


def test_warm_up_progress_is_the_engine_s() -> None:
    engine = Engine(make_config())
    traffic = SyntheticTraffic(seed=5)
    engine.process(as_messages(traffic.fraud(600, START)))
    engine.evaluate(now_s=START)

    line = status_text(engine.snapshot(), {}, 60.0, engine.progress(), MODELS)

    assert "fraud-detector v1 warming up 600/1,000 reference events, first 5m verdict in ~" in line
    assert line.endswith("no events yet from price-estimator")


def test_judged_versions_count_the_series_of_drift_status() -> None:
    engine = Engine(make_config())
    traffic = SyntheticTraffic(seed=9)
    for minute in range(30):
        ts = START + minute * 60.0
        events = traffic.fraud(300, ts, drifted=minute >= 12) + traffic.price(300, ts)
        engine.process(as_messages(events))
        engine.evaluate(now_s=ts)
    snapshot = engine.snapshot()
    status = registry_samples(build_registry(lambda: snapshot), "stream_monitor_drift_status")
    line = status_text(snapshot, {}, 60.0, engine.progress(), MODELS)

    for model in MODELS:
        levels = [value for (_, labels), value in status.items() if dict(labels)["model"] == model]
        alerts, warnings = levels.count(2.0), levels.count(1.0)
        if alerts:
            expected = f"{model} v1 judged: {alerts:,} of {len(levels):,} series at alert"
            expected += f", {warnings:,} at warn" if warnings else ""
        elif warnings:
            expected = f"{model} v1 judged: {warnings:,} of {len(levels):,} series at warn"
        else:
            expected = f"{model} v1 judged: all {len(levels):,} series ok"
        assert expected in line, (expected, line)
    assert "fraud-detector v1 judged: all" not in line  # its drift shows
    assert "price-estimator v1 judged: all" in line


@pytest.mark.parametrize(("step_s", "per_s"), [(5.0, 20.0), (20.0, 20.0), (1.0, 3.0)])
def test_the_first_verdict_comes_when_the_line_said(step_s: float, per_s: float) -> None:
    """Fed at a steady rate in event time, the first severity appears at the estimate:
    bound by the first pane closing (20 events/s) or by the warm-up (3 events/s)."""
    engine = Engine(make_config())
    traffic = SyntheticTraffic(seed=11)

    def feed(step: int) -> None:
        ts = START + step * step_s
        engine.process(as_messages(traffic.fraud(int(per_s * step_s), ts)))
        engine.evaluate(now_s=ts)

    for step in range(2):
        feed(step)
    (progress,) = engine.progress()
    estimate = progress.first_verdict(per_s)
    assert estimate.eta_s is not None and estimate.more_events == 1000 - 2 * int(per_s * step_s)
    said_at = START + step_s
    step = 2
    while not engine.snapshot().severities:
        feed(step)
        step += 1
    judged_at = START + (step - 1) * step_s
    # within one feeding step: the events come in steps, the estimate assumes a stream
    assert said_at + estimate.eta_s - step_s <= judged_at <= said_at + estimate.eta_s + step_s
    windows = {key.window for key in engine.snapshot().severities}
    assert estimate.window in windows


def test_no_rate_says_what_it_waits_for_and_a_window_too_small_says_so() -> None:
    waiting = progress_of("m", warmup=None, window_events=50)
    assert "m v1 first verdict waits for 150 more events" in status_text(
        Snapshot(events_total={("m", "v1"): 50}), {("m", "v1"): 50}, 10.0, [waiting]
    )
    # 0.1 events/s fill a 15 m window with 90 events, never 200
    small = replace(waiting, min_window_events=200)
    line = status_text(Snapshot(events_total={("m", "v1"): 51}), {("m", "v1"): 50}, 10.0, [small])
    assert "m v1 first verdict needs 200 events in a 15m window (holds 50)" in line


def test_the_line_is_logged_at_info_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    line = StatusLine(MODELS, interval_s=10.0, now_s=100.0)
    assert not line.due(109.9) and line.due(110.0)
    snapshot = Snapshot(events_total={("fraud-detector", "v1"): 250})
    with caplog.at_level(logging.INFO, logger="stream_monitor.sinks.status_line"):
        text = line.report(snapshot, [], now_s=110.0)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [text]
    assert text.startswith("status: 25 events/s (fraud-detector 25/s), 250 events in total")
    assert not line.due(119.0) and line.due(120.0)
    assert "no events in the last 10 s" in line.report(snapshot, [], now_s=120.0)
    assert not StatusLine(MODELS, interval_s=0.0, now_s=0.0).due(10**9)


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 10.0), (0, 0.0), ("30s", 30.0), (2.5, 2.5), ("1m", 60.0)]
)
def test_the_interval_setting(value: object, seconds: float) -> None:
    metrics = {} if value is None else {"status_interval_s": value}
    config = config_from_dict({"models": [FRAUD_MODEL, PRICE_MODEL], "metrics": metrics})
    assert config.metrics.status_interval_s == seconds


@pytest.mark.parametrize("value", [-1, "soon", True, "0s"])
def test_a_bad_interval_names_the_key(value: object) -> None:
    data = {"models": [FRAUD_MODEL], "metrics": {"status_interval_s": value}}
    with pytest.raises(ConfigError, match=r"^metrics\.status_interval_s: expected a duration"):
        config_from_dict(data)
