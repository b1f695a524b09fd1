"""Config loading: every error names the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_monitor.config import ConfigError
from stream_monitor.config_file import config_from_dict, load_config, redact
from tests.conftest import ROOT


def minimal(**extra: object) -> dict[str, object]:
    return {"models": [{"name": "m", "task": "binary", "features": {"x": "numeric"}}], **extra}


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config" / "monitor.yaml", environ={})
    assert [m.name for m in config.models] == ["fraud-detector", "price-estimator"]
    assert config.windows.sizes == {"5m": 300.0, "1h": 3600.0, "24h": 86400.0}
    assert config.kafka.bootstrap_servers == "localhost:9092"
    assert config.kafka.dead_letter_max_bytes == 1_000_000
    assert config.kafka.dead_letter_retries == 3
    assert config.models[1].drift.csi.alert == 0.3
    assert config.models[0].drift.csi.alert == 0.25


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": []}, "models: expected a non-empty list"),
        (
            minimal(windows={"sizes": ["90s"], "pane_s": 60}),
            "windows.sizes.90s: 90s is not a whole",
        ),
        (minimal(windows={"pane_s": "soon"}), "windows.pane_s: expected a duration"),
        (minimal(drift={"psi": {"warn": 0.3, "alert": 0.1}}), "drift.psi.alert: alert level"),
        (minimal(kafka={"assignment_strategy": "sticky"}), "kafka.assignment_strategy: expected"),
        (minimal(kafka={"batch_size": 0}), "kafka.batch_size: must be at least 1"),
        (minimal(metrics={"port": "x"}), "metrics.port: expected an integer"),
        (
            minimal(kafka={"dead_letter_max_bytes": 1000}),
            "kafka.dead_letter_max_bytes: must be at least 4096, got 1000",
        ),
        (
            minimal(kafka={"dead_letter_max_bytes": 2_000_000_000}),
            "kafka.dead_letter_max_bytes: must be at most 1000000000",
        ),
        (
            minimal(kafka={"dead_letter_max_bytes": "1MB"}),
            "kafka.dead_letter_max_bytes: expected an integer",
        ),
        (
            minimal(kafka={"dead_letter_retries": -1}),
            "kafka.dead_letter_retries: must be at least 0",
        ),
        (minimal(surprise=1), "surprise: unknown key"),
        (
            minimal(drift={"false_alerts_per_day": 2, "false_warnings_per_day": 1}),
            "drift.false_warnings_per_day: must be at least false_alerts_per_day (2)",
        ),
        (minimal(drift={"false_alerts_per_day": 0}), "drift.false_alerts_per_day: must be above 0"),
        (minimal(drift={"persistence_panes": 0}), "drift.persistence_panes: must be at least 1"),
        (
            {"models": [{"name": "m", "task": "binary", "features": {"x": "float"}}]},
            "models[0].features.x: unknown feature type 'float'",
        ),
        (
            {"models": [{"name": "m", "task": "ranking", "features": {"x": "numeric"}}]},
            "models[0].task",
        ),
        (
            {"models": [{"task": "binary", "features": {"x": "numeric"}}]},
            "models[0].name: is required",
        ),
        (
            {"models": [{"name": "m", "task": "binary", "features": {"x": "numeric"}, "bins": 1}]},
            "models[0].bins: must be at least 2",
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict(data)
    assert str(raised.value).startswith(message), str(raised.value)


def test_environment_substitution_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "# ${NOT_A_VARIABLE} in a comment is ignored\n"
        "kafka: {bootstrap_servers: '${BROKERS}', client: {sasl.password: '${SECRET}'}}\n"
        "metrics: {port: '${PORT:-9200}'}\n"
        "models: [{name: m, task: binary, features: {x: numeric}}]\n"
    )
    config = load_config(path, environ={"BROKERS": "k1:9092,k2:9092", "SECRET": "hunter2"})
    assert config.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert config.metrics.port == 9200
    assert redact(config.kafka.client) == {"sasl.password": "***"}
    with pytest.raises(
        ConfigError, match=r"^kafka.bootstrap_servers: environment variable BROKERS"
    ):
        load_config(path, environ={"SECRET": "x"})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
