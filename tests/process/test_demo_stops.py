"""The demo stops cleanly on Ctrl-C and on SIGTERM: the monitor finishes, then the broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT


def running_with(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_the_demo_stops_within_seconds_leaving_nothing_behind(how: str, tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "stream_monitor", "demo", "--seconds", "300", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where its broker's folder goes
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    assert demo.stdout is not None
    first = demo.stdout.readline()
    broker = re.search(r"broker (127\.0\.0\.1:\d+)", first)
    assert broker, first
    for line in demo.stdout:
        if "restored" in line:  # the monitor joined the group and took its partitions
            break
    time.sleep(3)  # traffic flows
    sent = time.monotonic()
    if how == "ctrl-c":
        os.killpg(demo.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
    else:
        demo.send_signal(signal.SIGTERM)  # what a process manager does
    after = demo.stdout.read().splitlines()
    assert demo.wait(timeout=30) == 0
    took = time.monotonic() - sent
    assert took < 10, f"stopped after {took:.1f}s"
    assert len(after) <= 5, "\n".join(after)
    assert after[-1] == "stream-monitor demo: stopped"
    assert running_with(f"tcp://{broker.group(1)}") == []
    assert list(tmp_path.iterdir()) == []
