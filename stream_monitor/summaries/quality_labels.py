"""Raw labels as the quality summary takes them, in C-level passes when they are numbers.

The rules are :func:`~stream_monitor.decode.columns.label_column`'s; this is its
fast path for the common case, where binary or regression labels are numbers,
booleans or null (no label). Anything else (text such as ``"true"``, a nested
value, an integer beyond float range, a multiclass model) goes to
``label_column`` itself, so the result is the same in every case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from stream_monitor.decode.columns import label_column, packed_doubles

_NAN = math.nan


def quality_labels(task: str, labels: Sequence[Any]) -> Any:
    """:func:`~stream_monitor.decode.columns.label_column` of ``labels``, quicker.

    Numbers and nulls are converted by :func:`~stream_monitor.decode.columns.packed_doubles`
    (null made NaN first, by a list comprehension: quicker than a C-level ``map`` of
    ``dict.get``), which refuses any other value; rows without a label at all are one
    ``list.count``.

    >>> quality_labels("binary", [1, None, 0.0, True]).tolist()
    [1.0, nan, 0.0, 1.0]
    >>> quality_labels("binary", ["true", None, "maybe"]).tolist()  # text: label_column
    [1.0, nan, nan]
    >>> quality_labels("regression", [None, None]).tolist(), quality_labels("multiclass", ["a"])
    ([nan, nan], ['a'])
    """
    if task == "multiclass":
        return label_column(task, labels)
    rows = len(labels)
    if labels.count(None) == rows:
        return np.full(rows, np.nan)
    numbers = packed_doubles([_NAN if label is None else label for label in labels])
    if numbers is None:  # text, nested values, huge integers
        return label_column(task, labels)
    return numbers
