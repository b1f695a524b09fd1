"""``examples/``: the README's "Try it offline" commands give the drift lines it shows.

The commands and the expected output are read out of README.md, so the two
cannot drift apart; they run in a copy of ``examples/`` (the baselines they
write stay out of the clone).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SECTION = "## Try it offline"
#: The files of ``examples/`` kept in the repository.
EXAMPLE_FILES = ("make_events.py", "monitor.yaml", "baseline-events.jsonl", "events.jsonl")


def readme_block(language: str) -> str:
    """The first fenced ``language`` block of the README's offline section."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else None]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"README.md: no ```{language} block under {SECTION!r}"
    return match.group(1)


def copy_examples(folder: Path) -> Path:
    """The committed files of ``examples/`` in ``folder/examples``."""
    target = folder / "examples"
    target.mkdir()
    for name in EXAMPLE_FILES:
        shutil.copy(ROOT / "examples" / name, target / name)
    return target


def run_shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, with this interpreter's virtual environment first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
    )  # fmt: skip


def test_the_readme_offline_commands_print_the_documented_drift_lines(tmp_path: Path) -> None:
    commands = readme_block("bash")
    assert commands.count("stream-monitor baseline") == 2 and "stream-monitor replay" in commands
    copy_examples(tmp_path)
    result = run_shell(commands, tmp_path)
    assert result.returncode == 0, result.stderr
    expected = readme_block("text").splitlines()
    printed = result.stdout.splitlines()
    assert printed == expected, "\n".join(["README.md shows other lines; printed:", *printed])
    drift_lines = [line for line in printed if not line.startswith("wrote ")]
    severities = {line.split()[1] for line in drift_lines}
    assert len(drift_lines) >= 10 and severities == {"WARN", "ALERT"}
    assert any(" ms > " in line for line in drift_lines)  # latency in ms


def test_make_events_writes_the_committed_files(tmp_path: Path) -> None:
    result = run_shell(f"python {ROOT / 'examples' / 'make_events.py'} --out {tmp_path}", ROOT)
    assert result.returncode == 0, result.stderr
    for name in ("baseline-events.jsonl", "events.jsonl"):
        written, committed = (tmp_path / name).read_bytes(), (ROOT / "examples" / name).read_bytes()
        assert written == committed, f"examples/{name} differs from what make_events.py writes"
    assert sum(1 for _ in (tmp_path / "events.jsonl").open()) == 3600
