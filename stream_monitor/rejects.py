"""Rate-limited warnings about rejected input (SPEC section 3)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from stream_monitor.decode import Reject

log = logging.getLogger("stream_monitor.rejects")


class RejectLog:
    """Logs at most one warning per reason every ``interval_s``, with the count since the last."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last_logged: dict[str, float] = {}
        self._pending: Counter[str] = Counter()

    def record(self, rejects: Sequence[Reject], now_s: float | None = None) -> None:
        """Count ``rejects`` and log the reasons whose interval has passed."""
        now = time.monotonic() if now_s is None else now_s
        examples: dict[str, Reject] = {}
        for reject in rejects:
            self._pending[reject.reason] += 1
            examples.setdefault(reject.reason, reject)
        for reason, example in examples.items():
            if now - self._last_logged.get(reason, -float("inf")) < self.interval_s:
                continue
            log.warning(
                "rejected %d event(s) as %s (e.g. %s)",
                self._pending.pop(reason),
                reason,
                example.detail or "no detail",
            )
            self._last_logged[reason] = now
