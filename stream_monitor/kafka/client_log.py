"""librdkafka's log lines, summarised: each kind of line at most once per interval, with a count."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: How often a line that librdkafka keeps repeating is logged again, with its count.
SUMMARY_INTERVAL_S = 10.0

_THREAD_PREFIX = re.compile(r"^\[thrd:[^\]]*\]: ")
_NUMBER = re.compile(r"\d+")


def kind_of(facility: str, text: str) -> tuple[str, str]:
    """What makes two librdkafka lines "the same": the facility and the broker the line is
    about, or (for a line about no broker) the text with its numbers blanked.

    >>> kind_of("FAIL", "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed")
    ('FAIL', '127.0.0.1:1/bootstrap')
    >>> kind_of("REQTMOUT", "Timed out 3 requests")
    ('REQTMOUT', 'Timed out # requests')
    """
    subject, separator, _ = text.partition(": ")
    if separator and "/" in subject and ":" in subject:
        return facility, subject
    return facility, _NUMBER.sub("#", text)


@dataclass
class _Kind:
    """One kind of line: when its interval started and what came since the last line logged."""

    started: float
    repeats: int = 0
    level: int = logging.NOTSET
    text: str = ""
    clients: set[str] = field(default_factory=set)

    def note(self, level: int, client: str, text: str) -> None:
        """Count one more line of this kind."""
        self.repeats += 1
        self.level = max(self.level, level)
        self.text = text
        self.clients.add(client)


class ClientLogSummary:
    """The ``logger`` of librdkafka clients: each kind of line at most once per interval.

    A broker that refuses connections makes librdkafka log the same line many
    times a second from every client. Passed as the clients' ``logger``
    setting (confluent-kafka calls ``log(level, "%s [%s] %s", facility,
    client, text)``), this logs the first line of a kind (:func:`kind_of`) at
    once, counts the repeats, and logs the latest with the count when the
    kind's next line comes after ``interval_s`` or when :meth:`flush` finds the
    interval over. Lines reach ``target``, so the usual log format and level
    apply. The clients call it from ``poll()``/``consume()``/``close()``,
    which may run on several threads; a lock keeps the counts.

    >>> import logging, sys
    >>> target = logging.getLogger("doctest.librdkafka")
    >>> target.addHandler(logging.StreamHandler(sys.stdout)); target.propagate = False
    >>> now = [0.0]
    >>> summary = ClientLogSummary(target, interval_s=10, clock=lambda: now[0])
    >>> line = "h:1/bootstrap: Connect to h:1 failed: Connection refused"
    >>> for client in ("rdkafka#consumer-1", "rdkafka#producer-2") * 3:
    ...     summary.log(logging.ERROR, "%s [%s] %s", "FAIL", client, "[thrd:main]: " + line)
    FAIL [rdkafka#consumer-1] h:1/bootstrap: Connect to h:1 failed: Connection refused
    >>> now[0] = 10.0
    >>> summary.flush()
    FAIL [rdkafka#consumer-1, rdkafka#producer-2] h:1/bootstrap: Connect to h:1 failed: \
Connection refused (5 more times in 10 s)
    """

    def __init__(
        self,
        target: logging.Logger,
        interval_s: float = SUMMARY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.interval_s = interval_s
        self._clock = clock
        self._kinds: dict[tuple[str, str], _Kind] = {}
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: object) -> None:
        """Take one line from a client: ``msg % (facility, client, text)``."""
        if len(args) != 3:
            self.target.log(level, msg, *args)
            return
        facility, client, text = (str(arg) for arg in args)
        text = _THREAD_PREFIX.sub("", text)
        key = kind_of(facility, text)
        now = self._clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.started < self.interval_s:
                kind.note(level, client, text)
                return
            if kind is not None and kind.repeats:
                kind.note(level, client, text)
                self._say(facility, kind, "times", now)
            else:
                self.target.log(level, "%s [%s] %s", facility, client, text)
            self._kinds[key] = _Kind(started=now)

    def flush(self, final: bool = False) -> None:
        """Log the count of each kind whose interval is over (of every kind if ``final``)."""
        now = self._clock()
        with self._lock:
            for key, kind in list(self._kinds.items()):
                if not final and now - kind.started < self.interval_s:
                    continue
                if kind.repeats:
                    self._say(key[0], kind, "more times", now)
                    self._kinds[key] = _Kind(started=now)
                else:
                    del self._kinds[key]  # quiet for a whole interval: its next line is news

    def _say(self, facility: str, kind: _Kind, what: str, now: float) -> None:
        clients = ", ".join(sorted(kind.clients))
        seconds = now - kind.started
        line = "%s [%s] %s (%d %s in %.0f s)"
        self.target.log(kind.level, line, facility, clients, kind.text, kind.repeats, what, seconds)
