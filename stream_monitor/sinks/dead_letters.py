"""Dead letters: rejected messages forwarded to a topic, best effort and never fatal.

Dead letters have a producer of their own, whose ``message.max.bytes`` is
``kafka.dead_letter_max_bytes``; a letter that would not fit is cut to fit
(:func:`fit`). A failed delivery is sent again after a backoff that doubles,
up to ``kafka.dead_letter_retries`` times, then dropped; one refused for good
(:func:`~stream_monitor.kafka.producer.undeliverable`) is dropped at once.
Failures are counted by Kafka error name and logged rate-limited. None of this
raises or holds back the offset commits: a letter still waiting to be sent
again when its offset is committed is lost if the process dies.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream_monitor.decode.batches import RawMessage, Reject
from stream_monitor.kafka.producer import undeliverable
from stream_monitor.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

HEADER = "stream-monitor."
TRUNCATED = HEADER + "truncated"
ORIGINAL_BYTES = HEADER + "original.bytes"
#: Bytes of a record besides its value and headers: the record batch's header (61)
#: and librdkafka's bound on one record's framing (36). Dead letters have no key.
RECORD_OVERHEAD_BYTES = 97
#: Bytes of one header besides its name and value: two varints of at most 5 bytes.
HEADER_OVERHEAD_BYTES = 10
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0

Header = tuple[str, bytes]


def letter_headers(source: RawMessage, reject: Reject) -> list[Header]:
    """Why, and where the original is: ``stream-monitor.reason``, ``.detail``, ``.source.*``."""
    return [
        (HEADER + "reason", reject.reason.encode()),
        (HEADER + "detail", reject.detail.encode(errors="replace")),
        (HEADER + "source.topic", source.topic.encode()),
        (HEADER + "source.partition", str(source.partition).encode()),
        (HEADER + "source.offset", str(source.offset).encode()),
    ]


def record_bytes(value: bytes, headers: Sequence[Header]) -> int:
    """At least the size of a record holding ``value`` and ``headers``, in a batch of its own."""
    framing = sum(HEADER_OVERHEAD_BYTES + len(name.encode()) + len(raw) for name, raw in headers)
    return RECORD_OVERHEAD_BYTES + len(value) + framing


def fit(value: bytes, headers: list[Header], max_bytes: int) -> tuple[bytes, list[Header]]:
    """``value`` and ``headers`` as a record of at most ``max_bytes``, the value cut if need be.

    A cut value keeps its first bytes, and two headers say so:
    ``stream-monitor.truncated`` and ``stream-monitor.original.bytes``.

    >>> value, headers = fit(b"x" * 5000, [("stream-monitor.reason", b"oversized")], 4096)
    >>> len(value), headers[1:]
    (3878, [('stream-monitor.truncated', b'true'), ('stream-monitor.original.bytes', b'5000')])
    >>> record_bytes(value, headers)
    4096
    >>> fit(b"{}", [], 4096)
    (b'{}', [])
    """
    if record_bytes(value, headers) <= max_bytes:
        return value, headers
    cut = [*headers, (TRUNCATED, b"true"), (ORIGINAL_BYTES, str(len(value)).encode())]
    return value[: max(0, max_bytes - record_bytes(b"", cut))], cut


@dataclass
class _Letter:
    value: bytes
    headers: list[Header]
    source: str
    attempts: int = 0


class DeadLetters:
    """Forwards rejected messages to ``topic``; failures are retried, counted and logged.

    Delivery reports and retries are served by :meth:`poll`, which the service
    calls at every evaluation; nothing here raises a delivery failure.
    """

    def __init__(
        self,
        producer: Producer,
        topic: str,
        max_bytes: int,
        retries: int,
        backoff_s: float = FIRST_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff_s = backoff_s
        self.clock = clock
        #: Failed deliveries (every attempt) by Kafka error name.
        self.failures: Counter[str] = Counter()
        #: Letters given up on.
        self.dropped = 0
        self._due: list[tuple[float, int, _Letter]] = []
        self._order = itertools.count()
        self._log = RateLimitedLog(log, "dead letters failed %d time(s) with %s (e.g. %s)")

    def forward(self, messages: Sequence[RawMessage], rejects: Sequence[Reject]) -> None:
        """Send each rejected message once per reason: its bytes (cut to fit), reason in headers."""
        seen: set[tuple[int, str]] = set()
        for reject in rejects:
            if reject.message_index < 0 or (reject.message_index, reject.reason) in seen:
                continue
            seen.add((reject.message_index, reject.reason))
            source = messages[reject.message_index]
            headers = letter_headers(source, reject)
            value, headers = fit(source.value or b"", headers, self.max_bytes)
            where = f"{source.topic}[{source.partition}]@{source.offset}"
            self._send(_Letter(value, headers, where))
        self.producer.poll(0)

    def poll(self) -> None:
        """Serve delivery reports, then send again the letters whose backoff has passed."""
        self.producer.poll(0)
        now = self.clock()
        while self._due and self._due[0][0] <= now:
            self._send(heapq.heappop(self._due)[2])

    def settle(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the letters in flight (before offsets are committed)."""
        self.producer.flush(timeout_s)

    def waiting(self) -> int:
        """Letters waiting for their backoff to pass."""
        return len(self._due)

    def release(self, timeout_s: float) -> None:
        """Flush and drop the producer (see ``TopicWriter.release``); waiting letters are lost."""
        self.producer.flush(timeout_s)
        del self.producer
        if self._due:
            log.warning("%d dead letter(s) waiting to be sent again were dropped", len(self._due))
            self.dropped += len(self._due)
            self._due.clear()

    def _send(self, letter: _Letter) -> None:
        letter.attempts += 1
        headers: list[tuple[str, str | bytes | None]] = [*letter.headers]
        try:
            self.producer.produce(
                self.topic,
                value=letter.value,
                headers=headers,
                on_delivery=partial(self._delivered, letter),
            )
        except BufferError:
            self._fail(letter, KafkaError(KafkaError._QUEUE_FULL))
        except KafkaException as exc:
            self._fail(letter, exc.args[0])

    def _delivered(self, letter: _Letter, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._fail(letter, error)

    def _fail(self, letter: _Letter, error: KafkaError) -> None:
        reason = error.name()
        self.failures[reason] += 1
        if undeliverable(error) or letter.attempts > self.retries:
            self.dropped += 1
            outcome = f"dropped after {letter.attempts} attempt(s)"
        else:
            delay_s = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (letter.attempts - 1))
            heapq.heappush(self._due, (self.clock() + delay_s, next(self._order), letter))
            outcome = f"sent again in {delay_s:g} s"
        self._log.record([(reason, f"{letter.source}, {error.str()}; {outcome}")])
