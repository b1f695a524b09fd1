"""Rate-limited warnings: one line per kind and interval, with the count since the last."""

from __future__ import annotations

import logging

import pytest

from stream_monitor.decode.batches import Reject
from stream_monitor.decode.rejects import RejectLog


def test_one_line_per_reason_and_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    reject_log = RejectLog(interval_s=10.0)
    with caplog.at_level(logging.WARNING, logger="stream_monitor.decode.rejects"):
        reject_log.record([Reject(0, "empty"), Reject(1, "oversized", "5000 bytes")], now_s=0.0)
        reject_log.record([Reject(2, "oversized", "6000 bytes")] * 3, now_s=5.0)
        reject_log.record([Reject(3, "oversized", "7000 bytes")], now_s=10.0)
    assert [r.getMessage() for r in caplog.records] == [
        "rejected 1 event(s) as empty (e.g. no detail)",
        "rejected 1 event(s) as oversized (e.g. 5000 bytes)",
        "rejected 4 event(s) as oversized (e.g. 7000 bytes)",
    ]
