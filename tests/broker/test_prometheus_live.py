"""The dashboard and the alert rules against a real monitor and a real Prometheus (issue 6).

``test_prometheus_config.py`` checks ``config/grafana/stream-monitor.json`` and
``config/prometheus/alerts.yaml`` against a fake exporter that serves every metric of the
contract. Here the exporter is the monitor itself: :class:`MonitorService` and
:class:`MetricsServer` run in-process, fed through the embedded broker with synthetic traffic
whose ``amount``, ``country`` and ``area_m2`` drift halfway (plus a few bad messages), and a
real Prometheus scrapes them every second with the alert rules loaded. The tests check that

- ``promtool check metrics`` accepts the real exposition;
- every dashboard query (variables resolved the way Grafana does, from the run's own series)
  and every rule expression is accepted and returns data, except those over metrics the
  monitor does not export or judge yet (:data:`NOT_YET_EXPORTED`, :data:`NOT_YET_JUDGED`),
  which must return nothing;
- the drift alerts go pending on the drifted features and never on the stable ones.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import DRIFTING_FEATURES
from tests.conftest import (
    FRAUD_MODEL,
    PRICE_MODEL,
    TEST_WINDOWS,
    broker_config,
    produce,
    samples,
    scrape,
    serve_metrics,
    start_service,
    wait_for,
)
from tests.dashboard import label_values_to_promql, load_dashboard, variable_query
from tests.process.test_prometheus_config import (
    ALERTS,
    KNOWN_METRICS,
    VERSION_METRICS,
    dashboard_targets,
    load_rules,
)
from tests.prometheus_server import PrometheusServer, require_prometheus
from tests.unit.test_engine import stream

# Metrics of the contract (and of the dashboard and rules) that the monitor does not export
# yet. The queries over them must be accepted and return nothing; the day one appears, the
# tests fail and the name must leave this set (its queries must then return data). Empty since
# the quality gauges (stream_monitor_auc ... _r2, _labeled_events) and the latency metrics
# (_latency_quantile_seconds, _inference_latency_seconds histogram) arrived with issue 3.
NOT_YET_EXPORTED: frozenset[str] = frozenset()
# Likewise, ``metric`` label values of stream_monitor_drift_status not judged yet (empty since
# issue 3 judges auc, accuracy, f1, rmse, mae, r2, concept_drift, ...).
NOT_YET_JUDGED: frozenset[str] = frozenset()
# Metrics that only multiclass models export: this run has none (a binary and a regression
# model), so the queries over them must be accepted and return nothing.
MULTICLASS_ONLY = frozenset({"stream_monitor_class_precision", "stream_monitor_class_recall"})
# Exported only for a model that compares versions; this run has one version per model, so
# the exposition lacks them and the queries over them return nothing.
NOT_IN_THIS_RUN = frozenset(VERSION_METRICS)

MODELS = {FRAUD_MODEL["name"]: FRAUD_MODEL, PRICE_MODEL["name"]: PRICE_MODEL}
VERSION = "v1"
WINDOWS = ("5m", "15m")
WINDOW = "5m"  # the dashboard's $window is single-valued
STABLE_FEATURES = ("merchant_category", "district")
MINUTES, DRIFT_FROM, PER_MINUTE = 20, 10, 250

# Bad input, so that stream_monitor_invalid_events_total has series; with the reasons counted.
BAD_MESSAGES = [
    b"{not json",
    b"",
    b'{"model": "ghost", "features": {}, "prediction": 1}',
    b"[1, 2]",
    b'{"model": "fraud-detector", "features": {"amount": 3.5}}',
]
INVALID_REASONS = {
    "malformed_json": 1,
    "empty": 1,
    "unknown_model": 1,
    "not_an_object": 2,
    "missing_field": 1,
}

# Grafana's built-in variables; $__rate_interval is what Grafana derives from its default
# 15 s scrape interval (this Prometheus scrapes every second, so [1m] holds plenty of samples).
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
# The inference service's cAdvisor and kube-state-metrics series: this run has no cluster and
# its models no Kubernetes metadata, so the variables and panels over them stay empty
# (tests/process/test_service_resources.py checks them against such series).
CLUSTER_SERIES = re.compile(r"\b(container|kube)_[a-z_]+")
SERVICE_VARIABLES = ("namespace", "workload", "pod")
# Rules that must stay silent on a healthy, reachable, scraped monitor.
SILENT_ALERTS = {"StreamMonitorDown", "StreamMonitorAbsent", "StreamMonitorBrokerUnreachable"}
DRIFT_ALERTS = {"StreamMonitorPredictionDrift", "StreamMonitorFeatureDrift"}


# ---------------------------------------------------------------------------- helpers


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bstream_monitor_[a-z0-9_]+", expr))


def not_yet_exported(expr: str) -> bool:
    """Whether ``expr`` reads a metric, or a drift judgement, the monitor has not got yet."""
    if metric_names(expr) & (NOT_YET_EXPORTED | NOT_IN_THIS_RUN):
        return True
    judged = re.findall(r'\bmetric=~"([^"]*)"', expr)
    return any(set(values.split("|")) <= NOT_YET_JUDGED for values in judged)


def unfiltered(expr: str) -> str:
    """``expr`` with every comparison against a number turned into a ``bool`` comparison.

    A rule's expression is empty while its condition does not hold; with ``bool`` it
    returns 0 or 1 for every series its selectors and joins match, so an empty answer means
    the selectors match nothing the monitor exports.
    """
    return re.sub(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)(?=\s*-?[\d.])", r"\1 bool", expr)


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables (``$model``, ``${model}``, ``${model:regex}``)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def grafana_value(values: list[str], multi: bool) -> str:
    """How Grafana's Prometheus data source writes a variable into a ``=~`` matcher."""
    assert all(re.fullmatch(r"[\w.-]+", value) for value in values), values
    if not multi:
        return values[0]
    return "(" + "|".join(value.replace(".", r"\\.") for value in values) + ")"


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) of every panel target and annotation of the dashboard."""
    annotations = [
        (f"annotation {a['name']}", a["expr"])
        for a in load_dashboard().get("annotations", {}).get("list", [])
        if a.get("expr")
    ]
    return dashboard_targets() + annotations


def rule_expressions() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for rule in load_rules()]


# ---------------------------------------------------------------------------- the run


@dataclass
class LiveRun:
    prometheus: PrometheusServer
    exposition: str  # the monitor's /metrics once it had consumed everything
    stable_status: float  # max(stream_monitor_drift_status) scraped before the drift
    stable_drift_counters: int  # stream_monitor_drift_events_total series before the drift
    variables: dict[str, str] = field(default_factory=dict)  # the dashboard's, resolved
    resolved: dict[str, list[str]] = field(default_factory=dict)  # every value of each


def resolve_variables(prometheus: PrometheusServer) -> tuple[dict[str, str], dict[str, list]]:
    """The dashboard's query variables, in order, resolved as Grafana does ("All" selected)."""
    variables, resolved = dict(BUILTIN_VARIABLES), {}
    for variable in load_dashboard()["templating"]["list"]:
        if variable.get("type") != "query":
            continue
        name = variable["name"]
        query = label_values_to_promql(substitute(variable_query(variable), variables))
        label = query.split("(", 1)[1].split(")", 1)[0]  # count by (label) (...)
        found = (series["metric"].get(label) for series in prometheus.result(query))
        values = sorted(value for value in found if value)
        if name in SERVICE_VARIABLES:
            assert values == [], f"dashboard variable ${name}: {values}, yet no metadata"
            resolved[name], variables[name] = values, ""
            continue
        assert values, f"dashboard variable ${name} has no values: {query}"
        resolved[name] = values
        if variable.get("multi") or variable.get("includeAll"):
            variables[name] = grafana_value(values, multi=True)
        else:
            choice = {"window": WINDOW}.get(name, values[0])
            assert choice in values, f"${name}: {choice} not among {values}"
            variables[name] = grafana_value([choice], multi=False)
    return variables, resolved


@pytest.fixture(scope="module")
def live(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """A monitor fed through the broker, scraped by Prometheus with the alert rules loaded.

    The traffic comes in two parts: the stable minutes (and one bad message), scraped by
    Prometheus, then the drifting minutes (and the other bad messages), so that counters
    grow between scrapes and the drift alerts go from inactive to pending.
    """
    require_prometheus()
    suffix = f"{time.monotonic_ns()}"
    events_topic, drift_topic, dlq = (f"{p}-live-{suffix}" for p in ("events", "drift", "dlq"))
    broker.create_topics([events_topic], partitions=3)
    broker.create_topics([drift_topic, dlq], partitions=1)
    events = stream(minutes=MINUTES, drift_from=DRIFT_FROM, per_minute=PER_MINUTE)
    split = DRIFT_FROM * 2 * PER_MINUTE  # stream() yields both models' events minute by minute
    assert all(e["timestamp"] < events[split]["timestamp"] for e in events[:split])

    topics = {"events": events_topic, "drift_events": drift_topic, "dead_letter": dlq}
    windows = {**TEST_WINDOWS, "sizes": list(WINDOWS)}
    config = config_from_dict(
        broker_config(broker, f"monitor-{events_topic}", topics, windows=windows)
    )
    service, stop, thread = start_service(config, Engine(config))
    server = serve_metrics(service)
    prometheus = PrometheusServer(
        tmp_path_factory.mktemp("prometheus-live"),
        targets=[f"127.0.0.1:{server.port}"],
        rule_files=[ALERTS],
    )

    def published(valid: int, invalid: int) -> Callable[[], bool]:
        def check() -> bool:
            snapshot = service.snapshot()
            return (
                sum(snapshot.events_total.values()) >= valid
                and sum(snapshot.invalid_total.values()) >= invalid
                and bool(snapshot.consumer_lag)
            )

        return check

    def judged_all() -> bool:
        """Drift is judged on closed panes: wait until the last closable one was judged."""
        for state in list(service.engine.states.values()):
            mark = state.watermark_s - state.allowed_lateness_s
            last = math.floor(mark / state.pane_s) - 1
            if state.judged is None or state.judged.end_pane is None:
                return False
            if state.judged.end_pane < last:
                return False
        return True

    try:
        prometheus.start()
        produce(broker.bootstrap_servers, events_topic, events[:split], "model")
        produce(broker.bootstrap_servers, events_topic, BAD_MESSAGES[:1], lambda _: "bad")
        wait_for(published(split, 1), 30, f"the monitor to publish {split} events")
        prometheus.wait_for(f"sum(stream_monitor_events_total) == {split}", timeout_s=15)
        worst = prometheus.wait_for("max(stream_monitor_drift_status)", timeout_s=15)
        stable_status = float(worst[0]["value"][1])
        stable_drift_counters = len(prometheus.result("stream_monitor_drift_events_total"))

        produce(broker.bootstrap_servers, events_topic, events[split:], "model")
        produce(broker.bootstrap_servers, events_topic, BAD_MESSAGES[1:], lambda _: "bad")
        wait_for(published(len(events), len(BAD_MESSAGES)), 30, "the monitor to publish all")
        wait_for(judged_all, 30, "every closable pane to be judged (idle partitions)")
        time.sleep(config.evaluation_interval_s + 0.5)  # a snapshot after the last judgement
        exposition = scrape(server.port)
        # Prometheus scraped the final state at least twice: once, and then once more.
        prometheus.wait_for(f"sum(stream_monitor_events_total) == {len(events)}", timeout_s=15)
        scrapes = "count_over_time(stream_monitor_up[5m])"
        first = float(prometheus.result(scrapes)[0]["value"][1])
        prometheus.wait_for(f"{scrapes} > {first:g}", timeout_s=15)
        variables, resolved = resolve_variables(prometheus)
        yield LiveRun(
            prometheus, exposition, stable_status, stable_drift_counters, variables, resolved
        )
    finally:
        prometheus.stop()
        stop.set()
        thread.join(timeout=30)
        server.stop()
    assert not thread.is_alive(), "the monitor did not stop"


# ---------------------------------------------------------------------------- exposition


def test_promtool_accepts_the_real_exposition(live: LiveRun) -> None:
    # The text format (0.0.4), served when no Accept header asks for OpenMetrics; promtool
    # 2.42 lints OpenMetrics counters wrongly ("no help text", their family has no _total).
    promtool = require_prometheus("promtool")["promtool"]
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=live.exposition,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"promtool check metrics:\n{done.stdout}{done.stderr}"


def test_the_exposition_has_every_contract_metric_but_the_pending_ones(live: LiveRun) -> None:
    exported = {
        sample.name
        for family in text_string_to_metric_families(live.exposition)
        for sample in family.samples
    }
    assert sorted(exported & NOT_YET_EXPORTED) == [], "exported now: update NOT_YET_EXPORTED"
    assert sorted(exported & MULTICLASS_ONLY) == [], "the run has no multiclass model"
    assert sorted(exported & NOT_IN_THIS_RUN) == [], "the run compares no versions"
    missing = KNOWN_METRICS - NOT_YET_EXPORTED - MULTICLASS_ONLY - NOT_IN_THIS_RUN - exported
    assert sorted(missing) == [], "contract metrics missing"
    for name in sorted(NOT_YET_EXPORTED):
        assert live.prometheus.result(f'{{__name__="{name}"}}') == [], f"{name} is exported now"
    judged = {
        series["metric"]["metric"]
        for series in live.prometheus.result("count by (metric) (stream_monitor_drift_status)")
    }
    assert sorted(judged & NOT_YET_JUDGED) == [], "judged now: update NOT_YET_JUDGED"
    assert {"psi", "csi", "null_ratio", "new_category_ratio"} <= judged


def test_invalid_events_reach_prometheus_by_reason(live: LiveRun) -> None:
    result = live.prometheus.result("stream_monitor_invalid_events_total")
    counted = {series["metric"]["reason"]: float(series["value"][1]) for series in result}
    assert {reason for reason, count in counted.items() if count == 0} >= {"late", "oversized"}
    assert {reason: count for reason, count in counted.items() if count} == INVALID_REASONS


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_variables_resolve_to_the_run(live: LiveRun) -> None:
    features = sorted({feature for model in MODELS.values() for feature in model["features"]})
    assert live.resolved == {
        "model": sorted(MODELS),
        "version": [VERSION],
        "window": sorted(WINDOWS),
        "feature": features,
        **{name: [] for name in SERVICE_VARIABLES},
    }


@pytest.mark.parametrize(
    ("where", "expr"), dashboard_queries(), ids=[where for where, _ in dashboard_queries()]
)
def test_dashboard_query(live: LiveRun, where: str, expr: str) -> None:
    query = substitute(expr, live.variables)
    answer = live.prometheus.query(query)
    assert answer["status"] == "success", f"{where}: {query}: {answer}"
    result = answer["data"]["result"]
    if not_yet_exported(expr):
        assert result == [], f"{where}: data, yet in NOT_YET_EXPORTED/NOT_YET_JUDGED: {query}"
    elif CLUSTER_SERIES.search(expr):
        assert result == [], f"{where}: data, yet the run has no cluster: {query}"
    elif metric_names(expr) & MULTICLASS_ONLY:
        assert result == [], f"{where}: data, yet the run has no multiclass model: {query}"
    elif where.startswith("annotation"):
        # ``changes(...) > 0`` has data only while drift events are produced: check that
        # its selector matches the exported counter.
        assert live.prometheus.result(unfiltered(query)), f"{where}: no series for {query}"
    else:
        assert result, f"{where}: no series for {query}"


# ---------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("alert", "expr"), rule_expressions(), ids=[alert for alert, _ in rule_expressions()]
)
def test_rule_expression(live: LiveRun, alert: str, expr: str) -> None:
    answer = live.prometheus.query(expr)
    assert answer["status"] == "success", f"{alert}: {answer}"
    result = answer["data"]["result"]
    if not_yet_exported(expr):
        assert result == [], f"{alert}: data, yet in NOT_YET_EXPORTED/NOT_YET_JUDGED: {expr}"
        assert live.prometheus.result(unfiltered(expr)) == [], alert
        return
    if alert in DRIFT_ALERTS:
        assert result, f"{alert}: the run drifts, yet nothing matches {expr}"
    if alert in SILENT_ALERTS:
        assert result == [], f"{alert}: matches on a healthy monitor: {result}"
    if "absent(" not in expr:
        assert live.prometheus.result(unfiltered(expr)), (
            f"{alert}: the selectors match no exported series: {unfiltered(expr)}"
        )


def test_rules_evaluate_without_errors(live: LiveRun) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = live.prometheus.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(r.get("health") != "unknown" for r in rules) else None

    rules = wait_for(evaluated, 15, "every rule to be evaluated")
    assert len(rules) == len(load_rules())
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken


def test_nothing_at_alert_level_before_the_drift(live: LiveRun) -> None:
    assert live.stable_status == 0


def test_drift_event_counters_exist_before_the_first_drift(live: LiveRun) -> None:
    assert live.stable_status == 0  # no transition yet: a counter there can only be 0
    assert live.stable_drift_counters > 0


def test_drift_alerts_on_the_drifted_features_only(live: LiveRun) -> None:
    drifted = {(model, f) for model, features in DRIFTING_FEATURES.items() for f in features}

    def active() -> list[dict[str, Any]] | None:
        alerts = live.prometheus.api("alerts")["data"]["alerts"]
        found = {
            (a["labels"]["model"], a["labels"]["feature"])
            for a in alerts
            if a["labels"]["alertname"] == "StreamMonitorFeatureDrift"
        }
        names = {a["labels"]["alertname"] for a in alerts}
        return alerts if drifted <= found and "StreamMonitorPredictionDrift" in names else None

    alerts = wait_for(active, 20, f"StreamMonitorFeatureDrift on {sorted(drifted)}")
    assert all(a["state"] in ("pending", "firing") for a in alerts)
    assert not [a for a in alerts if a["labels"].get("feature") in STABLE_FEATURES], alerts
    assert not [a for a in alerts if a["labels"]["alertname"] in SILENT_ALERTS], alerts
    stable = "|".join(STABLE_FEATURES)
    worst = live.prometheus.result(
        f'max(max_over_time(stream_monitor_drift_status{{feature=~"{stable}"}}[5m]))'
    )
    assert [float(s["value"][1]) for s in worst] == [0], "a stable feature was judged drifting"
    csi = {
        tuple(dict(labels)[k] for k in ("model", "window", "feature")): value
        for (_, labels), value in samples(live.exposition, "stream_monitor_csi").items()
    }
    for alert in alerts:
        labels, annotations = alert["labels"], alert["annotations"]
        text = annotations["summary"] + " " + annotations["description"]
        assert "<no value>" not in text and "{{" not in text, text
        if labels["alertname"] == "StreamMonitorFeatureDrift":
            assert labels["version"] == VERSION
            key = (labels["model"], labels["window"], labels["feature"])
            assert float(alert["value"]) == pytest.approx(csi[key]), key
            assert csi[key] > 0.25, key
