"""The Helm chart, through the helm-python-sdk (Helm's Go SDK, no helm binary, no cluster).

Lint, render with the default values, with every toggle on and with scale-out (ingest and
aggregate Deployments, KEDA), validate values against values.schema.json, check the rendered
monitor config with the monitor's own loader and CLI, and check that the chart's alert rules and
dashboard are the files under config/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from stream_monitor.config_file import load_config
from tests.conftest import ROOT

CHART = ROOT / "helm" / "stream-monitor"
ALL_ON_VALUES = CHART / "ci" / "all-on-values.yaml"
SCALE_OUT_VALUES = CHART / "ci" / "scale-out-values.yaml"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yaml"
SERVICE_ALERTS = ROOT / "config" / "prometheus" / "inference-service-alerts.yaml"
DASHBOARD = ROOT / "config" / "grafana" / "stream-monitor.json"
RELEASE, NAMESPACE = "fraud", "monitoring"
FULLNAME = f"{RELEASE}-stream-monitor"
ROLES = ("ingest", "aggregate")
CONFIG_PATH = "/etc/stream-monitor/monitor.yaml"
METRICS_PORT = 9108
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")

BASE_KINDS = {"ConfigMap", "Deployment", "Service", "ServiceAccount"}
OPTIONAL_KINDS = {
    "ServiceMonitor",
    "PrometheusRule",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
}


def all_on_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(ALL_ON_VALUES.read_text(encoding="utf-8"))
    return values


def scale_out_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(SCALE_OUT_VALUES.read_text(encoding="utf-8"))
    return values


VALUE_SETS = {"default": lambda: None, "all-on": all_on_values}
# Scale-out's config names baseline files, which check-config would open: it joins the value
# sets of the tests that do not run the monitor on the rendered config.
RENDER_SETS = {
    **VALUE_SETS,
    "scale-out": scale_out_values,
    "scale-out-minimal": lambda: {"scaleOut": {"enabled": True}},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects (NOTES.txt and templates switched off are dropped)."""
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def only(objects: list[dict[str, Any]], kind: str, name: str = FULLNAME) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]], name: str = FULLNAME) -> dict[str, Any]:
    containers = only(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def monitor_yaml(objects: list[dict[str, Any]]) -> str:
    text: str = only(objects, "ConfigMap")["data"]["monitor.yaml"]
    return text


def pod_environment(objects: list[dict[str, Any]], name: str = FULLNAME) -> dict[str, str]:
    """The container's env as the pod would see it; Secret values become placeholders."""
    env = {}
    for var in container(objects, name).get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"from-secret-{ref['name']}-{ref['key']}"
    return env


# ---------------------------------------------------------------------------- lint, render


@pytest.mark.parametrize("value_set", RENDER_SETS)
def test_lint_has_no_errors_or_warnings(value_set: str) -> None:
    report = helm.lint(CHART, RENDER_SETS[value_set](), strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_values_render_the_base_resources_only(chart: helm.Chart) -> None:
    objects = render(chart, None)
    assert {o["kind"] for o in objects} == BASE_KINDS
    assert len([o for o in objects if o["kind"] == "ConfigMap"]) == 1


def test_all_on_values_render_every_optional_resource(chart: helm.Chart) -> None:
    objects = render(chart, all_on_values())
    assert {o["kind"] for o in objects} == BASE_KINDS | OPTIONAL_KINDS
    only(objects, "ConfigMap", f"{FULLNAME}-dashboard")


@pytest.mark.parametrize("value_set", RENDER_SETS)
def test_every_resource_has_the_standard_labels(chart: helm.Chart, value_set: str) -> None:
    for obj in render(chart, RENDER_SETS[value_set]()):
        labels = obj["metadata"]["labels"]
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "stream-monitor", where
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/version"] == chart.metadata["appVersion"], where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["helm.sh/chart"] == f"stream-monitor-{chart.version}", where
        assert obj["metadata"]["namespace"] == NAMESPACE, where


# ---------------------------------------------------------------------------- schema


def test_schema_accepts_the_shipped_values(chart: helm.Chart) -> None:
    assert chart.schema is not None
    chart.validate_schema(None)
    chart.validate_schema(all_on_values())
    chart.validate_schema(scale_out_values())


@pytest.mark.parametrize(
    ("bad_values", "complaint"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicas": 2}, "replicas"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"config": {"models": []}}, "/config/models"),
        (
            {
                "config": {
                    "models": [{"name": "m", "task": "ranking", "features": {"x": "numeric"}}]
                }
            },
            "/config/models/0/task",
        ),
        (
            {"config": {"kafka": {"dead_letter_max_bytes": 100}}},
            "/config/kafka/dead_letter_max_bytes",
        ),
        ({"kafka": {"existingSecretKeys": {"KAFKA-USER": "username"}}}, "KAFKA-USER"),
        ({"scaleOut": {"enabled": "yes"}}, "/scaleOut/enabled"),
        ({"scaleOut": {"ingest": {"replicas": "two"}}}, "/scaleOut/ingest/replicas"),
        ({"scaleOut": {"aggregate": {"replicas": -1}}}, "/scaleOut/aggregate/replicas"),
        ({"scaleOut": {"aggregate": {"replicaCount": 2}}}, "replicaCount"),
        ({"scaleOut": {"ingest": {"resources": {"request": {}}}}}, "request"),
        ({"scaleOut": {"ingest": {"keda": {"lagThreshold": "5k"}}}}, "/lagThreshold"),
        ({"scaleOut": {"ingest": {"keda": {"maxReplicaCount": 0}}}}, "/maxReplicaCount"),
        (
            {"scaleOut": {"ingest": {"keda": {"authenticationRef": {"name": "x"}}}}},
            "/authenticationRef",
        ),
        (
            {
                "scaleOut": {
                    "ingest": {"keda": {"extraTriggerMetadata": {"allowIdleConsumers": True}}}
                }
            },
            "/extraTriggerMetadata/allowIdleConsumers",
        ),
    ],
    ids=[
        "replicaCount-string",
        "unknown-key",
        "pullPolicy",
        "no-models",
        "task",
        "dead-letter-max-bytes",
        "env-name",
        "scaleOut-enabled",
        "ingest-replicas-string",
        "aggregate-replicas-negative",
        "scaleOut-unknown-key",
        "resources-unknown-key",
        "keda-lagThreshold",
        "keda-maxReplicaCount",
        "keda-authenticationRef",
        "keda-metadata-not-string",
    ],
)
def test_schema_rejects_bad_values(
    chart: helm.Chart, bad_values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(bad_values)
    with pytest.raises(helm.HelmValuesError):
        chart.render(bad_values, name=RELEASE, namespace=NAMESPACE)


def _documented_leaves(text: str) -> list[str]:
    """Keys of values.yaml that neither they nor an ancestor carry a ``# --`` comment."""
    undocumented, stack = [], []  # stack: (indent, key, documented)
    comment = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = True
            continue
        match = re.match(r"^(\s*)([\w.-]+):(.*)$", line)
        if not match or stripped.startswith("#"):
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = comment or any(entry[2] for entry in stack)
        comment = False
        stack.append((indent, key, documented))
        is_leaf = rest.split("#")[0].strip() != ""
        if is_leaf and not documented:
            undocumented.append(".".join(entry[1] for entry in stack))
    return undocumented


def test_values_are_documented_for_helm_docs() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert _documented_leaves(text) == []
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    top_level = set(yaml.safe_load(text))
    assert top_level <= set(schema["properties"]), "values missing from the schema"


# ---------------------------------------------------------------------------- monitor config


def _write_config(objects: list[dict[str, Any]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The rendered monitor.yaml in a file, and the environment the pod would give it."""
    text = monitor_yaml(objects)
    env = pod_environment(objects)
    required = {m.group(1) for m in ENV_REFERENCE.finditer(text) if m.group(2) is None}
    assert required <= set(env), f"config needs {sorted(required - set(env))}, pod lacks them"
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    return path, env


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_config_is_accepted_by_the_loader(
    chart: helm.Chart, value_set: str, tmp_path: Path
) -> None:
    values = VALUE_SETS[value_set]()
    objects = render(chart, values)
    path, env = _write_config(objects, tmp_path)
    config = load_config(path, environ=env)
    expected_models = chart.merge_values(values)["config"]["models"]
    assert [m.name for m in config.models] == [m["name"] for m in expected_models]
    assert config.kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert config.metrics.port == METRICS_PORT
    assert config.metrics.host == "0.0.0.0"
    if value_set == "all-on":
        assert config.kafka.client["sasl.username"] == env["KAFKA_USERNAME"]
        assert config.kafka.client["sasl.password"] == env["KAFKA_PASSWORD"]


def _check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``stream-monitor check-config`` on a rendered config, with the chart's environment."""
    return subprocess.run(
        [sys.executable, "-m", "stream_monitor", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_config_passes_check_config(
    chart: helm.Chart, value_set: str, tmp_path: Path
) -> None:
    path, env = _write_config(render(chart, VALUE_SETS[value_set]()), tmp_path)
    done = _check_config(path, env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_config_rejects_a_broken_rendered_config(chart: helm.Chart, tmp_path: Path) -> None:
    values = {"config": {"windows": {"pane_s": "60s", "sizes": ["90s"]}}}
    path, env = _write_config(render(chart, values), tmp_path)
    done = _check_config(path, env)
    assert done.returncode != 0
    assert "windows.sizes" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------- workload


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_deployment_runs_as_non_root_with_secure_contexts(
    chart: helm.Chart, value_set: str
) -> None:
    objects = render(chart, VALUE_SETS[value_set]())
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == only(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["terminationGracePeriodSeconds"] == 60
    ctx = container(objects)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert ctx.get("privileged", False) is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"] == {}
    config_volume = volumes[mounts[str(Path(CONFIG_PATH).parent)]["name"]]["configMap"]
    assert config_volume["name"] == only(objects, "ConfigMap")["metadata"]["name"]
    assert {"key": "monitor.yaml", "path": Path(CONFIG_PATH).name} in config_volume["items"]


def test_container_command_ports_and_probes(chart: helm.Chart) -> None:
    objects = render(chart, None)
    main = container(objects)
    assert main["args"][:3] == ["run", "--config", CONFIG_PATH]
    assert main["ports"] == [
        {"name": "http-metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
    ]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert main["resources"]["requests"] and main["resources"]["limits"]
    assert only(objects, "Deployment")["spec"]["replicas"] == 1
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [
        {
            "name": "http-metrics",
            "port": METRICS_PORT,
            "targetPort": "http-metrics",
            "protocol": "TCP",
        }
    ]
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_metrics_port_follows_the_monitor_config(chart: helm.Chart) -> None:
    objects = render(chart, {"config": {"metrics": {"host": "0.0.0.0", "port": 9200}}})
    main = container(objects)
    assert main["ports"][0]["containerPort"] == 9200
    assert "port: 9200" in monitor_yaml(objects)


def test_config_checksum_rolls_the_pods_only_when_the_config_changes(chart: helm.Chart) -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        deployment = only(render(chart, values), "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    base = checksum(None)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum({"replicaCount": 3}) == base
    assert checksum({"config": {"drift": {"min_window_events": 500}}}) != base


def test_kafka_credentials_come_from_the_existing_secret(chart: helm.Chart) -> None:
    default_env = container(render(chart, None))["env"]
    assert [v for v in default_env if "valueFrom" in v] == []
    assert {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "kafka:9092"} in default_env

    values = all_on_values()
    objects = render(chart, values)
    env = {v["name"]: v for v in container(objects)["env"]}
    for env_name, key in values["kafka"]["existingSecretKeys"].items():
        assert env[env_name]["valueFrom"]["secretKeyRef"] == {
            "name": values["kafka"]["existingSecret"],
            "key": key,
        }
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == values["kafka"]["bootstrapServers"]
    for extra in values["env"]:
        assert env[extra["name"]] == extra
    assert container(objects)["envFrom"] == values["envFrom"]
    assert "sasl.password: ${KAFKA_PASSWORD}" in monitor_yaml(objects)


def test_autoscaler_and_disruption_budget(chart: helm.Chart) -> None:
    values = all_on_values()
    objects = render(chart, values)
    deployment = only(objects, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = only(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert hpa["spec"]["minReplicas"] == values["autoscaling"]["minReplicas"]
    assert hpa["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"]
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_service_monitor_scrapes_the_metrics_port(chart: helm.Chart) -> None:
    objects = render(chart, all_on_values())
    monitor = only(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    service_labels = only(objects, "Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


# ---------------------------------------------------------------------------- one source of truth


def test_chart_rules_are_config_prometheus_alerts(chart: helm.Chart) -> None:
    copy = CHART / "files" / "alerts.yaml"
    assert copy.read_bytes() == ALERTS.read_bytes(), (
        f"{copy} differs from {ALERTS}: cp {ALERTS.relative_to(ROOT)} {copy.relative_to(ROOT)}"
    )
    rule = only(render(chart, all_on_values()), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("main_rules", [True, False])
def test_inference_service_rules_are_off_by_default_and_follow_their_own_toggle(
    chart: helm.Chart, main_rules: bool
) -> None:
    copy = CHART / "files" / "inference-service-alerts.yaml"
    assert copy.read_bytes() == SERVICE_ALERTS.read_bytes(), f"cp {SERVICE_ALERTS} {copy}"
    name = f"{FULLNAME}-inference-service"
    rules = [o for o in render(chart, None) if o["kind"] == "PrometheusRule"]
    assert rules == []
    values = {"prometheusRule": {"enabled": main_rules, "inferenceService": {"enabled": True}}}
    objects = render(chart, values)
    rule = only(objects, "PrometheusRule", name)
    assert rule["spec"] == yaml.safe_load(SERVICE_ALERTS.read_text(encoding="utf-8"))
    assert len([o for o in objects if o["kind"] == "PrometheusRule"]) == 1 + main_rules
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_dashboard_is_config_grafana_dashboard(chart: helm.Chart) -> None:
    copy = CHART / "files" / "stream-monitor.json"
    assert copy.read_bytes() == DASHBOARD.read_bytes(), (
        f"{copy} differs from {DASHBOARD}: cp {DASHBOARD.relative_to(ROOT)} "
        f"{copy.relative_to(ROOT)}"
    )
    configmap = only(render(chart, all_on_values()), "ConfigMap", f"{FULLNAME}-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "MLOps"}
    (name,) = configmap["data"]
    assert name.endswith(".json")
    assert json.loads(configmap["data"][name]) == json.loads(DASHBOARD.read_text("utf-8"))


# ---------------------------------------------------------------------------- scale-out


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_scale_out_renders_an_ingest_and_an_aggregate_deployment(chart: helm.Chart) -> None:
    values = scale_out_values()
    objects = render(chart, values)
    found = deployments(objects)
    assert set(found) == {f"{FULLNAME}-{role}" for role in ROLES}, "no single Deployment"
    for role in ROLES:
        deployment = found[f"{FULLNAME}-{role}"]
        main = container(objects, f"{FULLNAME}-{role}")
        assert main["args"] == ["run", "--config", CONFIG_PATH, "--role", role]
        assert main["resources"] == values["scaleOut"][role]["resources"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector == {
            "app.kubernetes.io/name": "stream-monitor",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": role,
        }
        assert selector.items() <= pod_labels(deployment).items()
        assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == role
    aggregate = found[f"{FULLNAME}-aggregate"]["spec"]
    assert aggregate["replicas"] == values["scaleOut"]["aggregate"]["replicas"]
    assert "replicas" not in found[f"{FULLNAME}-ingest"]["spec"], "KEDA owns the ingest count"
    kinds = {o["kind"] for o in objects}
    assert "HorizontalPodAutoscaler" not in kinds, "autoscaling.* is for the single Deployment"
    assert values["autoscaling"]["enabled"] is True


def test_scale_out_replicas_without_keda(chart: helm.Chart) -> None:
    values = {
        "scaleOut": {"enabled": True, "ingest": {"replicas": 5}, "aggregate": {"replicas": 2}},
        "autoscaling": {"enabled": True},
    }
    objects = render(chart, values)
    found = deployments(objects)
    assert found[f"{FULLNAME}-ingest"]["spec"]["replicas"] == 5
    assert found[f"{FULLNAME}-aggregate"]["spec"]["replicas"] == 2
    kinds = {o["kind"] for o in objects}
    assert "ScaledObject" not in kinds and "HorizontalPodAutoscaler" not in kinds
    defaults = chart.merge_values(None)["scaleOut"]
    default_objects = deployments(render(chart, {"scaleOut": {"enabled": True}}))
    for role in ROLES:
        deployment = default_objects[f"{FULLNAME}-{role}"]
        assert deployment["spec"]["replicas"] == defaults[role]["replicas"]
        resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources == defaults[role]["resources"]


def test_scale_out_pods_share_the_single_deployment_pod_spec(chart: helm.Chart) -> None:
    """Config map, probes, security contexts, env and Secret, volumes: all as without scale-out."""
    values = scale_out_values()
    values["scaleOut"]["ingest"]["keda"]["enabled"] = False
    values["extraArgs"] = ["--extra-flag"]
    single_values = {**values, "scaleOut": {**values["scaleOut"], "enabled": False}}
    single = only(render(chart, single_values), "Deployment")["spec"]["template"]
    objects = render(chart, values)
    for role in ROLES:
        template = only(objects, "Deployment", f"{FULLNAME}-{role}")["spec"]["template"]
        assert template["metadata"]["annotations"] == single["metadata"]["annotations"]
        labels = dict(template["metadata"]["labels"])
        assert labels.pop("app.kubernetes.io/component") == role
        assert labels == single["metadata"]["labels"]
        pod, single_pod = dict(template["spec"]), dict(single["spec"])
        (main,), (single_main,) = pod.pop("containers"), single_pod.pop("containers")
        assert pod == single_pod
        main, single_main = dict(main), dict(single_main)
        assert single_main.pop("args") == ["run", "--config", CONFIG_PATH, "--extra-flag"]
        assert main.pop("args") == ["run", "--config", CONFIG_PATH, "--role", role, "--extra-flag"]
        assert main.pop("resources") == values["scaleOut"][role]["resources"]
        single_main.pop("resources")
        assert main == single_main
    assert pod_environment(objects, f"{FULLNAME}-ingest")["KAFKA_PASSWORD"] == (
        "from-secret-kafka-credentials-password"
    )


def test_scale_out_service_and_service_monitor_scrape_both_roles(chart: helm.Chart) -> None:
    objects = render(chart, scale_out_values())
    service = only(objects, "Service")
    selector = service["spec"]["selector"]
    assert "app.kubernetes.io/component" not in selector
    for deployment in deployments(objects).values():
        assert selector.items() <= pod_labels(deployment).items()
        (main,) = deployment["spec"]["template"]["spec"]["containers"]
        assert main["ports"][0]["name"] == service["spec"]["ports"][0]["targetPort"]
    monitor = only(objects, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    assert monitor["spec"]["podTargetLabels"] == ["app.kubernetes.io/component"]
    assert "podTargetLabels" not in only(render(chart, all_on_values()), "ServiceMonitor")["spec"]


def test_scale_out_has_a_disruption_budget_per_role(chart: helm.Chart) -> None:
    objects = render(chart, scale_out_values())
    budgets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert set(budgets) == {f"{FULLNAME}-{role}" for role in ROLES}
    found = deployments(objects)
    for role in ROLES:
        selector = budgets[f"{FULLNAME}-{role}"]["spec"]["selector"]["matchLabels"]
        for other in ROLES:
            matches = selector.items() <= pod_labels(found[f"{FULLNAME}-{other}"]).items()
            assert matches == (other == role), f"{role} budget vs {other} pods"


def test_keda_scaled_object_scales_ingest_on_the_event_lag(chart: helm.Chart) -> None:
    values = scale_out_values()
    keda = values["scaleOut"]["ingest"]["keda"]
    objects = render(chart, values)
    scaled = only(objects, "ScaledObject", f"{FULLNAME}-ingest")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{FULLNAME}-ingest",
    }
    only(objects, "Deployment", spec["scaleTargetRef"]["name"])
    for key in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        assert spec[key] == keda[key], key
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 600}
    }
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": values["kafka"]["bootstrapServers"],
        "consumerGroup": values["config"]["kafka"]["group_id"],
        "topic": values["config"]["kafka"]["topics"]["events"],
        "lagThreshold": str(keda["lagThreshold"]),
        "offsetResetPolicy": values["config"]["kafka"]["auto_offset_reset"],
        **keda["extraTriggerMetadata"],
    }
    assert all(isinstance(v, str) for v in trigger["metadata"].values())
    assert trigger["authenticationRef"] == {"name": keda["authenticationRef"]}


def test_keda_defaults_follow_the_monitor_config(chart: helm.Chart) -> None:
    values = {"scaleOut": {"enabled": True, "ingest": {"keda": {"enabled": True}}}}
    (trigger,) = only(render(chart, values), "ScaledObject", f"{FULLNAME}-ingest")["spec"][
        "triggers"
    ]
    merged = chart.merge_values(values)
    assert trigger["metadata"]["bootstrapServers"] == merged["kafka"]["bootstrapServers"]
    assert trigger["metadata"]["consumerGroup"] == merged["config"]["kafka"]["group_id"]
    assert trigger["metadata"]["topic"] == merged["config"]["kafka"]["topics"]["events"]
    assert trigger["metadata"]["offsetResetPolicy"] == "earliest"
    assert "authenticationRef" not in trigger


@pytest.mark.parametrize(
    "values",
    [None, {"scaleOut": {"enabled": True}}],
    ids=["default", "scale-out-without-keda"],
)
def test_no_scaled_object_unless_keda_is_enabled(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    assert "ScaledObject" not in {o["kind"] for o in render(chart, values)}


def test_keda_without_scale_out_fails_clearly(chart: helm.Chart) -> None:
    values = {"scaleOut": {"ingest": {"keda": {"enabled": True}}}}
    with pytest.raises(helm.HelmRenderError, match=r"keda\.enabled=true needs scaleOut\.enabled"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    values = {
        "scaleOut": {
            "enabled": True,
            "ingest": {"keda": {"enabled": True, "minReplicaCount": 5, "maxReplicaCount": 2}},
        }
    }
    with pytest.raises(helm.HelmRenderError, match="minReplicaCount"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_role_names_fit_a_dns_label(chart: helm.Chart) -> None:
    long_name = "m" * 63
    values = {"fullnameOverride": long_name, "scaleOut": {"enabled": True}}
    names = set(deployments(render(chart, values)))
    assert len(names) == 2
    for role in ROLES:
        (name,) = [n for n in names if n.endswith(f"-{role}")]
        assert len(name) <= 63


def test_scale_out_config_is_accepted_by_the_loader(chart: helm.Chart, tmp_path: Path) -> None:
    objects = render(chart, scale_out_values())
    text = monitor_yaml(objects)
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ=pod_environment(objects, f"{FULLNAME}-ingest"))
    assert all(model.reference.baseline for model in config.models)
    mounts = container(objects, f"{FULLNAME}-aggregate")["volumeMounts"]
    for model in config.models:
        assert model.reference.baseline is not None
        assert any(model.reference.baseline.startswith(m["mountPath"] + "/") for m in mounts)


def test_notes_name_both_roles_and_missing_baselines(chart: helm.Chart) -> None:
    def notes(values: dict[str, Any] | None) -> str:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
        (text,) = [t for path, t in manifests.items() if path.endswith("NOTES.txt")]
        return text

    single = notes(None)
    assert f"deploy/{FULLNAME}\n" in single and "-ingest" not in single
    scaled = notes({"scaleOut": {"enabled": True}})
    for role in ROLES:
        assert f"deploy/{FULLNAME}-{role}" in scaled
    assert "missing for: fraud-detector" in scaled
    assert "missing for" not in notes(scale_out_values())
