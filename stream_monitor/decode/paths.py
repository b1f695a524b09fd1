"""Reading one field of decoded events: a plain key or a dotted path.

Keys are looked up with the string objects orjson makes of them
(:func:`orjson_keys`), so a lookup finds its key by identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson


def orjson_keys(names: list[str]) -> list[str]:
    """``names`` as the string objects orjson makes of them when they are keys.

    orjson keeps the keys it has made in a cache and hands out the same objects
    for the same keys, so a dict lookup with these finds its key by identity
    instead of comparing the text. Equal strings either way.

    >>> orjson_keys(["model", "features"])
    ['model', 'features']
    """
    keys: list[str] = list(orjson.loads(orjson.dumps(dict.fromkeys(names))))
    return keys if len(keys) == len(names) else names


def field_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    """A function reading a key or a dotted path from a decoded event (None where missing).

    >>> field_getter("a.b")({"a": {"b": 1}}), field_getter("a.b")({"a": 2})
    (1, None)
    """
    if "." not in path:
        return lambda event: event.get(path)
    parts = orjson_keys(path.split("."))

    def get(event: dict[str, Any]) -> Any:
        node: Any = event
        for part in parts:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node

    return get


def field_values(events: Sequence[dict[str, Any]], path: str) -> list[Any]:
    """The values of one field over ``events`` (None where missing).

    >>> field_values([{"x": 1}, {}], "x")
    [1, None]
    """
    if "." not in path:
        return [event.get(path) for event in events]
    get = field_getter(path)
    return [get(event) for event in events]
