"""replay and baseline show a progress bar on a terminal, and nothing of it when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, ROOT, write_config, write_jsonl


def files(folder: Path) -> tuple[Path, Path]:
    """A config with the fraud model and 10 minutes of its events, the last five drifted."""
    traffic = SyntheticTraffic(seed=5)
    model = dict(FRAUD_MODEL)
    config = write_config(
        folder / "c.yaml", {"models": [model], "drift": {"min_window_events": 100}}
    )
    stream = [
        e for minute in range(10) for e in traffic.fraud(300, 1.7e9 + 60 * minute, minute >= 5)
    ]
    return config, write_jsonl(folder / "events.jsonl", stream)


def on_a_terminal(*args: str) -> tuple[int, bytes, str]:
    """Run the command, stderr on a pseudo-terminal: exit code, stdout, what the terminal got."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_monitor", *args],
        stdout=subprocess.PIPE, stderr=terminal, cwd=ROOT,
    )  # fmt: skip
    os.close(terminal)
    shown = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stdout, _ = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(controller)
    return process.returncode, stdout, shown.decode(errors="replace")


def without_clock(stdout: bytes) -> list[dict[str, object]]:
    """Drift events without the wall-clock time they were judged at."""
    events = [orjson.loads(line) for line in stdout.splitlines()]
    return [{k: v for k, v in e.items() if not k.endswith("_at")} for e in events]


def piped(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_monitor", *args], capture_output=True, timeout=120, cwd=ROOT
    )


def test_replay_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    config, events = files(tmp_path)
    args = ("replay", "--config", str(config), "--input", str(events))
    quiet = piped(*args)
    assert quiet.returncode == 0, quiet.stderr
    assert b"events/s" not in quiet.stderr and b"\r" not in quiet.stderr
    assert quiet.stdout.count(b"\n") > 0  # drift events
    code, stdout, terminal = on_a_terminal(*args)
    assert code == 0, terminal
    final = terminal.rstrip().split("\r")[-1]
    size_mb = events.stat().st_size / 1e6
    assert final.startswith("replay [####################] 100% ")
    assert f"{size_mb:.1f}/{size_mb:.1f} MB, 3,000 events, " in final and "events/s" in final
    assert without_clock(stdout) == without_clock(quiet.stdout)  # untouched by the bar


def test_baseline_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    config, events = files(tmp_path)
    args = ("baseline", "--config", str(config), "--model", "fraud-detector",
            "--input", str(events), "--output", str(tmp_path / "b.json"))  # fmt: skip
    quiet = piped(*args)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == b""
    code, stdout, terminal = on_a_terminal(*args)
    assert code == 0, terminal
    assert "baseline [####################] 100% " in terminal and "3,000 events" in terminal
    assert stdout == quiet.stdout
