"""Coercing decoded JSON values into columns: numbers to float64 (NaN for null), categories to text.

One home for the rules of the event schema's values: a numeric feature takes
numbers (booleans as 0/1) and anything else is null; a categorical value is
compared as text (``3`` and ``"3"`` are the same category, ``true`` is
``"true"``); timestamps are epoch seconds, milliseconds above
:data:`MILLISECONDS_ABOVE`, or ISO-8601 text.
"""

from __future__ import annotations

import array
import contextlib
import math
import struct
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

#: Epoch values above this are read as milliseconds.
MILLISECONDS_ABOVE = 1e11

_NUMBER_TYPES = (int, float)

_LARGEST_FLOAT_INT = int(sys.float_info.max)
#: Value types a numeric column converts with one numpy call (None becomes NaN).
_NUMERIC_VALUE_TYPES = frozenset({float, int, bool, type(None)})
#: Value types a categorical column keeps as they are.
_CATEGORY_VALUE_TYPES = frozenset({str, type(None)})


def numeric_column(values: list[Any]) -> np.ndarray:
    """Float64 array of ``values``: numbers kept (booleans as 0/1), anything else NaN.

    >>> numeric_column([1, 2.5, None, "3", True, float("inf")]).tolist()
    [1.0, 2.5, nan, nan, 1.0, nan]
    """
    result: np.ndarray | None = None
    if set(map(type, values)) <= _NUMERIC_VALUE_TYPES:
        # Only numbers and None: numpy converts them all (None to NaN) in one call,
        # unless an int is beyond float range.
        with contextlib.suppress(OverflowError):
            result = np.array(values, dtype=np.float64)
    if result is None:
        array = _as_array(values)
        if array.dtype.kind in "fiub":
            result = array.astype(np.float64, copy=False)
        else:
            result = np.array([number_or_none(v) for v in values], dtype=np.float64)
    return _finite_or_nan(result)


def json_numbers(values: Sequence[Any]) -> np.ndarray:
    """:func:`numeric_column` of values parsed from JSON, in one pass when none is null.

    >>> json_numbers([1, 2.5, True]).tolist(), json_numbers([1, None, "2"]).tolist()
    ([1.0, 2.5, 1.0], [1.0, nan, nan])
    """
    doubles = packed_doubles(values)
    if doubles is None:  # a null, text or a huge integer
        return float_column(number_array(values))
    return doubles


def packed_doubles(values: Sequence[Any]) -> np.ndarray | None:
    """``values`` (numbers and booleans) as a float64 array, NaN for infinities, converted
    by :mod:`struct` (faster than numpy or ``array``); None if one is not such a number or
    is out of range.

    >>> packed_doubles([1, 2.5, True, float("inf")]).tolist(), packed_doubles([1, None])
    ([1.0, 2.5, 1.0, nan], None)
    """
    try:
        packed = bytearray(struct.pack(f"{len(values)}d", *values))
    except (struct.error, OverflowError):
        return None
    return _finite_or_nan(np.frombuffer(packed, dtype=np.float64))


def number_array(values: Sequence[Any]) -> array.array[float]:
    """``values`` parsed from JSON as :func:`numeric_column` reads them, except that
    non-finite floats are kept (:func:`_finite_or_nan` turns them into NaN).

    JSON gives only dict, list, str, int, float, bool and None, and ``array('d')``
    takes exactly the int, float and bool among them (converting them as numpy
    does), so it checks the types and converts in the same pass. Nulls are made
    NaN first when there are some; anything else (a string, a huge int) raises,
    and :func:`numeric_column` decides.

    >>> number_array([1, None, True]), number_array([1, None, "2", 2**64])
    (array('d', [1.0, nan, 1.0]), array('d', [1.0, nan, nan, 1.8446744073709552e+19]))
    """
    try:
        return array.array("d", values)
    except (TypeError, OverflowError):
        pass
    try:
        return array.array("d", [math.nan if value is None else value for value in values])
    except (TypeError, OverflowError):
        return array.array("d", numeric_column(list(values)).tobytes())


def float_column(numbers: array.array[float] | bytearray) -> np.ndarray:
    """The float64 column of :func:`number_array` results (joined), NaN for non-finite."""
    return _finite_or_nan(np.frombuffer(numbers, dtype=np.float64))


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN for every infinity (a copy only when there is one; nulls, NaN
    already, are no reason to copy)."""
    infinite = np.isinf(values)
    if infinite.any():
        return np.where(infinite, np.nan, values)
    return values


def number_or_none(value: Any) -> float | int | bool | None:
    """``value`` if it is a number a float can hold, else None."""
    kind = type(value)
    if kind is float or kind is bool:
        return value
    if kind is int:
        fits = -_LARGEST_FLOAT_INT <= value <= _LARGEST_FLOAT_INT
        return value if fits else None
    return None


def _as_array(values: list[Any]) -> np.ndarray:
    """``values`` as a 1-d numpy array, or an object array when numpy would guess a shape."""
    try:
        array = np.asarray(values) if values else np.empty(0)
    except (ValueError, TypeError, OverflowError):
        return np.empty(0, dtype=object)
    return array if array.ndim == 1 else np.empty(0, dtype=object)


def category_value(value: Any) -> str | None:
    """A categorical value as the string it is compared as (README, Inference events).

    >>> [category_value(v) for v in ("a", 3, True, None, 2.5)]
    ['a', '3', 'true', None, '2.5']
    """
    if value is None or type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    return None


def categorical_column(values: list[Any]) -> list[str | None]:
    """``values`` as category strings, None for null or unusable values.

    >>> categorical_column(["a", None, 3, True])
    ['a', None, '3', 'true']
    """
    types = set(map(type, values))
    if types <= {str}:
        return values
    if types <= _CATEGORY_VALUE_TYPES:
        return list(values)
    return [category_value(v) for v in values]


def parse_timestamp_s(value: Any) -> float | None:
    """Event time in epoch seconds from a number (s or ms) or an ISO-8601 string.

    >>> parse_timestamp_s(1700000000), parse_timestamp_s(1700000000000)
    (1700000000.0, 1700000000.0)
    >>> parse_timestamp_s("2023-11-14T22:13:20Z")
    1700000000.0
    """
    if type(value) is bool:
        return None
    if isinstance(value, int | float):
        number = number_or_none(value)
        if number is None:
            return None
        seconds = float(number)
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds / 1000.0 if seconds > MILLISECONDS_ABOVE else seconds
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


#: Binary labels given as text.
_BINARY_TEXT = {"1": 1, "true": 1, "0": 0, "false": 0}


def label_column(task: str, labels: Sequence[Any]) -> Any:
    """Raw labels as the quality summary takes them: classes for multiclass, else numbers.

    Binary labels may be 0/1, booleans or the strings "0"/"1"/"true"/"false".

    >>> label_column("binary", [1, "0", "true", None, "maybe"]).tolist()
    [1.0, 0.0, 1.0, nan, nan]
    """
    if task == "multiclass":
        return categorical_column(list(labels))
    if task == "binary":
        labels = [_BINARY_TEXT.get(v.lower(), v) if type(v) is str else v for v in labels]
    return numeric_column(list(labels))
