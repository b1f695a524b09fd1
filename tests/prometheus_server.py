"""A throw-away Prometheus server for tests: Debian's ``prometheus`` binary on loopback.

Each server binds a port the OS picks (read back from its log) and gets its own config (the
scrape targets it is given, scraped every second, plus optional rule files evaluated every
second) and its own storage folder, and is stopped on exit::

    with PrometheusServer(tmp_path, targets=["127.0.0.1:9108"]) as prom:
        prom.wait_for("stream_monitor_up")
        prom.query("sum(stream_monitor_events_total)")

:func:`require_prometheus` skips the calling test when the binaries are missing (CI installs
them: ``apt-get install prometheus``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

READY_TIMEOUT_S = 30.0
#: How the reason of every test skipped for want of Prometheus begins (the summary counts them).
MISSING_PROMETHEUS = "Debian's prometheus package is not installed"


def require_prometheus(*names: str) -> dict[str, str]:
    """Paths of the named binaries (default ``prometheus`` and ``promtool``), or skip."""
    wanted = names or ("prometheus", "promtool")
    found = {name: shutil.which(name) for name in wanted}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        pytest.skip(
            f"{MISSING_PROMETHEUS}: {', '.join(missing)} not on PATH (apt-get install prometheus)"
        )
    return {name: path for name, path in found.items() if path is not None}


#: The line Prometheus logs once its web listener is bound, with the bound address.
LISTENING = re.compile(r'msg="Listening on" address=[^\s:]+:(\d+)')


class PrometheusError(RuntimeError):
    """The server did not start, or a query was refused."""


class PrometheusServer:
    """A Prometheus process with a temporary config and storage folder.

    Parameters
    ----------
    workdir
        A folder of the test (``tmp_path``); the config, storage and log go there.
    targets
        ``host:port`` scrape targets, all in one job (``job_name``).
    rule_files
        Rule files to load, evaluated every second.
    job_name
        Name of the scrape job (the ``job`` label).
    """

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str] = (),
        rule_files: Sequence[Path] = (),
        job_name: str = "stream-monitor",
    ) -> None:
        self.workdir = Path(workdir)
        self.targets = list(targets)
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.job_name = job_name
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        """Start the server and wait until ``/-/ready`` answers."""
        binary = require_prometheus("prometheus")["prometheus"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job_name,
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        storage = self.workdir / "data"
        storage.mkdir(exist_ok=True)
        self.port = 0
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={storage}",
                    "--web.listen-address=127.0.0.1:0",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=info",  # the "Listening on" line names the bound port
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited early:\n{self.log()}")
            if not self.port:
                found = LISTENING.search(self.log())
                self.port = int(found.group(1)) if found else 0
            elif self._answers_ready():
                return
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {READY_TIMEOUT_S:g}s:\n{self.log()}")

    def _answers_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log(self) -> str:
        """What the server wrote so far."""
        try:
            return self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def api(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET ``/api/v1/<path>``; the decoded JSON body, also for 4xx answers."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
            body = exc.read()
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def query(self, expr: str) -> dict[str, Any]:
        """Run an instant query; the full API answer (``status``, ``data`` or ``error``)."""
        return self.api("query", {"query": expr})

    def result(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query; raises :class:`PrometheusError` when refused."""
        answer = self.query(expr)
        if answer.get("status") != "success":
            raise PrometheusError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns something (e.g. the first scrape landed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.result(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expr} still empty after {timeout_s:g}s:\n{self.log()}")
            time.sleep(0.2)
