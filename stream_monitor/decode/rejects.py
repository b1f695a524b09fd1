"""Rate-limited warnings about rejected input (README, Bad input)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stream_monitor.decode.batches import Reject
from stream_monitor.ratelog import RateLimitedLog

log = logging.getLogger("stream_monitor.decode.rejects")


class RejectLog:
    """Logs at most one warning per reason every ``interval_s``, with the count since the last."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self._log = RateLimitedLog(log, "rejected %d event(s) as %s (e.g. %s)", interval_s)

    def record(self, rejects: Sequence[Reject], now_s: float | None = None) -> None:
        """Count ``rejects`` and log the reasons whose interval has passed."""
        self._log.record(((r.reason, r.detail or "no detail") for r in rejects), now_s)
