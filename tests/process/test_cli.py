"""The command line: one clear line and a non-zero exit for user errors; file commands."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream_monitor.cli import main
from stream_monitor.config_file import load_config
from stream_monitor.summaries.reference import load_reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, ROOT, closed_port, write_config, write_jsonl


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_monitor", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def test_check_config_accepts_the_example() -> None:
    result = cli("check-config", "config/monitor.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 2 model(s)")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("models: []\n", "models: expected a non-empty list"),
        (
            "models: [{name: m, task: binary, features: {x: numeric},"
            " reference: {baseline: nope.json}}]\n",
            "nope.json: cannot read baseline",
        ),
    ],
)
def test_bad_config_gives_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    result = cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "nosuchhost.invalid"])
def test_run_gives_up_on_an_unreachable_broker(tmp_path: Path, host: str) -> None:
    """It says at once which broker it waits for; librdkafka's hundreds of connection errors
    become one line per broker per interval, with a count; then the one line, exit 1."""
    with closed_port() as port:
        broker = f"{host}:{port}"
        path = write_config(
            tmp_path / "c.yaml",
            {
                "models": [FRAUD_MODEL],
                "kafka": {"bootstrap_servers": broker, "startup_timeout_s": 3},
                "metrics": {"host": "127.0.0.1", "port": 0},
            },
        )
        result = cli("run", "--config", str(path), timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 8, result.stderr
    assert lines[-1] == (
        f"stream-monitor run: Kafka broker {broker} unreachable after 3s (kafka.startup_timeout_s)"
    )
    waiting = next(i for i, line in enumerate(lines) if "waiting for the Kafka broker" in line)
    assert f"{broker} (up to 3s, kafka.startup_timeout_s)" in lines[waiting]
    about = [i for i, line in enumerate(lines) if f"{broker}/bootstrap" in line]
    assert about and min(about) > waiting
    fails = [line for line in lines if "stream_monitor.librdkafka: FAIL" in line]
    assert 1 <= len(fails) <= 2, result.stderr  # the first, then the count of the rest
    counts = [int(m.group(1)) for m in map(re.compile(r"\((\d+) more times in").search, fails) if m]
    assert counts and counts[0] > 1, result.stderr


def test_a_setting_librdkafka_refuses_gives_one_line_naming_the_key(tmp_path: Path) -> None:
    with closed_port() as port:
        path = write_config(
            tmp_path / "c.yaml",
            {
                "models": [FRAUD_MODEL],
                "kafka": {
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "client": {"fetch.max.bytes": 1000, "message.max.bytes": 100000},
                },
                "metrics": {"host": "127.0.0.1", "port": 0},
            },
        )
        result = cli("run", "--config", str(path), timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert one_line(result) == (
        "stream-monitor run: kafka.client.fetch.max.bytes: "
        "`fetch.max.bytes` must be >= `message.max.bytes`"
    )


def test_check_config_finds_the_setting_run_would_refuse(tmp_path: Path) -> None:
    with closed_port() as port:
        kafka = {"bootstrap_servers": f"127.0.0.1:{port}", "client": {}}
        good = write_config(tmp_path / "good.yaml", {"models": [FRAUD_MODEL], "kafka": kafka})
        kafka["client"] = {"fetch.max.bytes": 1000, "message.max.bytes": 100000}
        bad = write_config(tmp_path / "bad.yaml", {"models": [FRAUD_MODEL], "kafka": kafka})
        accepted = cli("check-config", str(good), timeout=60)
        refused = cli("check-config", str(bad), timeout=60)
    assert accepted.returncode == 0 and accepted.stdout.startswith("ok: 1 model(s)")
    assert accepted.stderr == ""  # the clients did not log their refused connections
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert one_line(refused) == (
        "stream-monitor check-config: kafka.client.fetch.max.bytes: "
        "`fetch.max.bytes` must be >= `message.max.bytes`"
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a user error gives on stderr (after any log lines), no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_a_metrics_port_in_use_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(
            tmp_path / "c.yaml",
            {"models": [FRAUD_MODEL], "metrics": {"host": "127.0.0.1", "port": port}},
        )
        result = cli("run", "--config", str(path), timeout=60)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"stream-monitor run: cannot serve /metrics on 127.0.0.1:{port}")
    assert "set metrics.port" in line and "0: any free port" in line


def test_a_missing_input_and_a_malformed_variable_give_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"models": [FRAUD_MODEL]})
    missing = tmp_path / "missing.jsonl"
    result = cli("replay", "--config", str(config), "--input", str(missing))
    assert result.returncode == 2
    assert one_line(result) == f"stream-monitor replay: --input: {missing} does not exist"
    broken = tmp_path / "broken.yaml"
    broken.write_text(config.read_text() + "kafka: {group_id: '${MY_GROUP'}\n")
    result = cli("check-config", str(broken))
    assert result.returncode == 2
    assert one_line(result).startswith("stream-monitor check-config: kafka.group_id: malformed")


def test_every_option_has_help() -> None:
    from stream_monitor.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    undocumented = [
        f"{name} {action.dest}"
        for name, command in commands.items()
        for action in command._actions
        if action.help is None and action.dest != "help"
    ]
    assert undocumented == []
    assert "SPEC" not in parser.format_help() and "``" not in parser.format_help()


def test_baseline_from_jsonl_and_csv_agree(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"models": [FRAUD_MODEL]})
    events = SyntheticTraffic(seed=2).fraud(2000, 1_700_000_000.0)
    jsonl = write_jsonl(tmp_path / "ref.jsonl", events)
    csv = tmp_path / "ref.csv"
    names = list(FRAUD_MODEL["features"])  # type: ignore[arg-type]
    rows = ["prediction," + ",".join(names)]
    for e in events:
        f = e["features"]
        rows.append(
            ",".join([str(e["prediction"])] + ["" if f[n] is None else str(f[n]) for n in names])
        )  # type: ignore[index]
    csv.write_text("\n".join(rows) + "\n")
    fraud = load_config(config).models[0]
    for source, output in ((jsonl, "a.json"), (csv, "b.json")):
        assert main(["baseline", "--config", str(config), "--model", "fraud-detector",
                     "--input", str(source), "--output", str(tmp_path / output)]) == 0  # fmt: skip
    a = load_reference(tmp_path / "a.json", fraud)
    b = load_reference(tmp_path / "b.json", fraud)
    assert a.events == b.events == 2000
    assert a.features == b.features and a.prediction == b.prediction
    assert a.digest.startswith("sha256:") and a.digest != b.digest
    assert a.features["account_age_days"].nulls > 0


def test_baseline_then_replay_prints_drift_events(tmp_path: Path) -> None:
    traffic = SyntheticTraffic(seed=4)
    reference = write_jsonl(tmp_path / "ref.jsonl", traffic.fraud(3000, 1.7e9))
    model = dict(FRAUD_MODEL, reference={"baseline": "fraud.json"})
    config = write_config(
        tmp_path / "c.yaml", {"models": [model], "drift": {"min_window_events": 100}}
    )
    result = cli("baseline", "--config", str(config), "--model", "fraud-detector",
                 "--input", str(reference), "--output", str(tmp_path / "fraud.json"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    stream = [
        e for minute in range(10) for e in traffic.fraud(200, 1.7e9 + 60 * minute, minute >= 5)
    ]
    events = write_jsonl(tmp_path / "events.jsonl", stream)
    with events.open("ab") as lines:
        lines.write(b"{broken\n")
    result = cli("replay", "--config", str(config), "--input", str(events))
    assert result.returncode == 0, result.stderr
    drift = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert any(e["feature"] == "amount" and e["severity"] == "alert" for e in drift)
    assert {e["reference"].split("@")[0] for e in drift} == {"ref.jsonl"}
    assert "malformed_json" in result.stderr  # the bad line is logged, not fatal


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["check-config", "c.yaml"], logging.INFO),
        (["bench"], logging.WARNING),
        (["--log-level", "debug", "bench"], logging.DEBUG),
        (["--log-level", "Error", "check-config", "c.yaml"], logging.ERROR),
    ],
)
def test_log_level_defaults_to_info_and_to_warning_for_bench(argv: list[str], level: int) -> None:
    from stream_monitor.cli import build_parser, log_level

    assert log_level(build_parser().parse_args(argv)) == level


def test_an_unknown_log_level_is_refused_by_name() -> None:
    result = cli("--log-level", "verbose", "check-config", "config/monitor.yaml")
    assert result.returncode == 2
    assert "argument --log-level: invalid choice: 'VERBOSE'" in result.stderr, result.stderr
