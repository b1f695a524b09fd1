"""From raw message bytes to event objects: JSON parsing, micro-batches and chunking.

A message is one event (a JSON object) or a micro-batch (a JSON array of
objects). Messages are parsed a chunk (:data:`CHUNK_BYTES`) at a time, in one
C-level ``map`` when every message of the chunk is in size and parses to an
object or an array; anything unusual is parsed message by message, with the
same results. Each unusable message or element becomes a :class:`Reject`.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import orjson

from stream_monitor.decode.batches import RawMessage, Reject
from stream_monitor.decode.columns import number_or_none

if TYPE_CHECKING:
    from stream_monitor.config import LimitsConfig

#: JSON bytes parsed at a time: a chunk's objects are read into columns while
#: they are still in the CPU cache, then freed before the next chunk is parsed.
CHUNK_BYTES = 128 * 1024
#: Bytes that ``bytes.strip`` removes: a message starting with none of them is not blank.
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def message_sizes(values: Sequence[bytes | None]) -> list[int]:
    """The length of each message value (0 for None), in one C-level pass when none is None.

    >>> message_sizes([b"ab", None, b""])
    [2, 0, 0]
    """
    try:
        return list(map(len, values))  # type: ignore[arg-type]
    except TypeError:  # a None value
        return [len(value) if value else 0 for value in values]


def chunks(sizes: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges of messages of ``sizes`` bytes of about ``budget`` bytes
    (at least one message each).

    >>> chunks([2, 1, 0, 4, 1], 3)
    [(0, 3), (3, 4), (4, 5)]
    """
    if sum(sizes) <= budget:
        return [(0, len(sizes))] if sizes else []
    ends = list(accumulate(sizes))
    ranges = []
    start = 0
    while start < len(ends):
        before = ends[start - 1] if start else 0
        stop = max(bisect_right(ends, before + budget, start), start + 1)
        ranges.append((start, stop))
        start = stop
    return ranges


def _sanitize(node: Any) -> Any:
    """What the lenient parser accepted, made representable like orjson's output.

    Lone surrogates become U+FFFD; integers beyond 64 bits become floats (None
    beyond float range), so that state and checkpoints can always be encoded.
    """
    if isinstance(node, str):
        return node.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(node, list):
        return [_sanitize(item) for item in node]
    if isinstance(node, dict):
        return {_sanitize(key): _sanitize(value) for key, value in node.items()}
    if type(node) is int and not _INT64_MIN <= node <= _UINT64_MAX:
        return number_or_none(node) and float(node)
    return node


def _loads(value: bytes) -> Any:
    r"""Parse JSON; NaN and Infinity literals (Python's json.dumps writes them) are accepted.

    orjson parses everything else; the fallback reads UTF-8 strictly and
    sanitizes what orjson would have refused (lone surrogates, huge integers).

    >>> _loads(b'{"x": NaN}')
    {'x': nan}
    >>> _loads(rb'"\ud800"') == "\ufffd" * 3
    True
    """
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _sanitize(json.loads(value.decode("utf-8")))


class MessageParser:
    """Parses messages into event objects within the size limits; rejects the rest."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits

    def parse(
        self,
        messages: Sequence[RawMessage],
        values: list[bytes | None],
        start: int,
        stop: int,
        rejects: list[Reject],
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Every event object of ``messages[start:stop]`` and the index of its message.

        ``values`` are the messages' values. A message that is not blank, not
        too large and parses (orjson) to an object is one event; everything else
        goes through :meth:`_events`.
        """
        parsed = self._parse_all(values[start:stop], start, rejects)
        if parsed is not None:
            return parsed
        events: list[dict[str, Any]] = []
        indexes: list[int] = []
        loads = orjson.loads
        max_bytes = self.limits.max_message_bytes
        for index in range(start, stop):
            value = values[index]
            if value and len(value) <= max_bytes and value[0] not in _WHITESPACE:
                try:
                    decoded = loads(value)
                except ValueError:
                    decoded = None
                if type(decoded) is dict:
                    events.append(decoded)
                    indexes.append(index)
                    continue
                if type(decoded) is list:
                    unpacked = self._unpack(index, decoded, rejects)
                    events.extend(unpacked)
                    indexes.extend([index] * len(unpacked))
                    continue
            unpacked = self._events(index, messages[index], rejects)
            events.extend(unpacked)
            indexes.extend([index] * len(unpacked))
        return events, indexes

    def _parse_all(
        self, values: list[bytes | None], start: int, rejects: list[Reject]
    ) -> tuple[list[dict[str, Any]], list[int]] | None:
        """:meth:`parse` when every value is in size and parses to an object or a list.

        ``values`` are the messages from index ``start`` on. Parses in one C-level
        ``map``; None (nothing rejected yet) when some message needs the
        message-by-message path.
        """
        try:
            if max(map(len, values), default=0) > self.limits.max_message_bytes:  # type: ignore[arg-type]
                return None
            decoded = list(map(orjson.loads, values))  # type: ignore[arg-type]
        except (TypeError, ValueError, RecursionError):
            return None
        types = set(map(type, decoded))
        if types == {dict}:
            return decoded, list(range(start, start + len(decoded)))
        if not types <= {dict, list}:
            return None
        events: list[dict[str, Any]] = []
        indexes: list[int] = []
        for index, value in enumerate(decoded, start):
            if type(value) is dict:
                events.append(value)
                indexes.append(index)
            else:
                unpacked = self._unpack(index, value, rejects)
                events.extend(unpacked)
                indexes.extend([index] * len(unpacked))
        return events, indexes

    def _events(
        self, index: int, message: RawMessage, rejects: list[Reject]
    ) -> Sequence[dict[str, Any]]:
        """The events of one message, parsed on its own (blank, oversized, lenient JSON)."""
        value = message.value
        if not value or not value.strip():
            rejects.append(Reject(index, "empty"))
            return ()
        if len(value) > self.limits.max_message_bytes:
            rejects.append(Reject(index, "oversized", f"{len(value)} bytes"))
            return ()
        try:
            decoded = _loads(value)
        except (ValueError, TypeError, RecursionError) as exc:
            rejects.append(Reject(index, "malformed_json", str(exc)[:200]))
            return ()
        return self._unpack(index, decoded, rejects)

    def _unpack(self, index: int, decoded: Any, rejects: list[Reject]) -> Sequence[dict[str, Any]]:
        """The events of a parsed message value: an object, or a micro-batch of objects."""
        if isinstance(decoded, dict):
            return (decoded,)
        if not isinstance(decoded, list):
            rejects.append(Reject(index, "not_an_object", type(decoded).__name__))
            return ()
        if not decoded:
            rejects.append(Reject(index, "empty", "empty micro-batch"))
            return ()
        if len(decoded) > self.limits.max_batch_events:
            rejects.append(Reject(index, "batch_too_large", f"{len(decoded)} events"))
            return ()
        events = [event for event in decoded if isinstance(event, dict)]
        for _ in range(len(decoded) - len(events)):
            rejects.append(Reject(index, "not_an_object", "micro-batch element"))
        return events
