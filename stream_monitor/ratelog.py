"""Rate-limited warnings: at most one line per kind every interval, with the count since."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable


class RateLimitedLog:
    """Logs at most one warning per kind every ``interval_s``, with how many happened since.

    ``template`` takes the count, the kind and an example, in that order.
    """

    def __init__(self, logger: logging.Logger, template: str, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.template = template
        self.interval_s = interval_s
        self._last_logged: dict[str, float] = {}
        self._pending: Counter[str] = Counter()

    def record(self, occurrences: Iterable[tuple[str, str]], now_s: float | None = None) -> None:
        """Count each ``(kind, example)`` and log the kinds whose interval has passed."""
        now = time.monotonic() if now_s is None else now_s
        examples: dict[str, str] = {}
        for kind, example in occurrences:
            self._pending[kind] += 1
            examples.setdefault(kind, example)
        for kind, example in examples.items():
            if now - self._last_logged.get(kind, -float("inf")) < self.interval_s:
                continue
            self.logger.warning(self.template, self._pending.pop(kind), kind, example)
            self._last_logged[kind] = now
