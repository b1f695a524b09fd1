"""librdkafka's repeated lines: one per kind per interval, and every line counted."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from itertools import pairwise

import pytest

from stream_monitor.kafka.client_log import ClientLogSummary

REFUSED = "[thrd:{b}/bootstrap]: {b}/bootstrap: Connect to ipv4#{b} failed: Connection refused"
COUNT = re.compile(r"\((\d+) (?:more )?times in (\d+) s\)$")


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Kept(logging.Handler):
    """Keeps the records it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    target = logging.getLogger("test.librdkafka")
    kept = Kept()
    target.addHandler(kept)
    target.setLevel(logging.DEBUG)
    yield kept.records
    target.removeHandler(kept)


def said(records: list[logging.LogRecord]) -> list[str]:
    return [record.getMessage() for record in records]


def counted(line: str) -> int:
    """How many client lines one logged line stands for."""
    match = COUNT.search(line)
    return int(match.group(1)) if match else 1


def test_a_broker_down_for_25_s_gives_one_line_per_interval(
    lines: list[logging.LogRecord],
) -> None:
    clock = Clock()
    summary = ClientLogSummary(logging.getLogger("test.librdkafka"), interval_s=10, clock=clock)
    sent: dict[str, int] = {"127.0.0.1:1": 0, "127.0.0.1:2": 0}
    logged_at: list[tuple[float, str]] = []
    for tick in range(2500):  # 100 lines/s for 25 s: two clients, two brokers
        clock.now = tick / 100
        broker = "127.0.0.1:1" if tick % 5 else "127.0.0.1:2"
        client = "rdkafka#consumer-1" if tick % 2 else "rdkafka#producer-2"
        before = len(lines)
        summary.log(logging.ERROR, "%s [%s] %s", "FAIL", client, REFUSED.format(b=broker))
        sent[broker] += 1
        logged_at += [(clock.now, record.getMessage()) for record in lines[before:]]
        if tick % 50 == 0:
            summary.flush()
    clock.now = 25.0
    summary.flush(final=True)
    messages = said(lines)
    for broker, total in sent.items():
        mine = [m for m in messages if f"{broker}/bootstrap:" in m]
        assert sum(counted(m) for m in mine) == total  # every client line counted once
        assert len(mine) <= 1 + 25 / 10 + 1  # the first, one per interval, the last
        assert all("Connection refused" in m and "[thrd:" not in m for m in mine)
    assert all(record.levelno == logging.ERROR for record in lines)
    assert "rdkafka#consumer-1, rdkafka#producer-2" in messages[-1]
    for broker in sent:
        times = [t for t, m in logged_at if f"{broker}/bootstrap:" in m]
        assert all(b - a >= 10 for a, b in pairwise(times))


def test_lines_about_no_broker_are_grouped_by_text_without_numbers(
    lines: list[logging.LogRecord],
) -> None:
    clock = Clock()
    summary = ClientLogSummary(logging.getLogger("test.librdkafka"), interval_s=10, clock=clock)
    for n in range(30):
        clock.now = n * 0.1
        summary.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "c", f"Timed out {n} requests")
        summary.log(logging.INFO, "%s [%s] %s", "OTHER", "c", "something else")
    summary.flush(final=True)
    assert said(lines) == [
        "REQTMOUT [c] Timed out 0 requests",
        "OTHER [c] something else",
        "REQTMOUT [c] Timed out 29 requests (29 more times in 3 s)",
        "OTHER [c] something else (29 more times in 3 s)",
    ]


def test_a_kind_quiet_for_an_interval_is_news_again(lines: list[logging.LogRecord]) -> None:
    clock = Clock()
    summary = ClientLogSummary(logging.getLogger("test.librdkafka"), interval_s=10, clock=clock)
    refused = REFUSED.format(b="h:1")
    summary.log(logging.ERROR, "%s [%s] %s", "FAIL", "c", refused)
    clock.now = 11.0
    summary.flush()
    clock.now = 600.0
    summary.log(logging.ERROR, "%s [%s] %s", "FAIL", "c", refused)
    assert (
        said(lines)
        == ["FAIL [c] h:1/bootstrap: Connect to ipv4#h:1 failed: Connection refused"] * 2
    )
