"""The test run's summary says how many tests skipped for want of Prometheus, and the fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_summary_counts_the_tests_skipped_without_prometheus(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent)  # no prometheus nor promtool
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'basetemp'}", "tests/process/test_prometheus_config.py"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    line = re.compile(r"^(\d+) test\(s\) skipped: the prometheus and promtool binaries.*$", re.M)
    summary = line.search(result.stdout)
    assert summary is not None, result.stdout[-2000:]
    assert "apt-get install prometheus" in summary[0]
    skipped = re.search(r"(\d+) skipped", result.stdout.splitlines()[-1])
    assert skipped is not None and int(summary[1]) == int(skipped[1]) > 0
