"""The fast label conversion gives label_column's result, value for value, on every input."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from stream_monitor.decode.columns import label_column
from stream_monitor.summaries.quality_labels import quality_labels

#: Every kind of label value JSON (or a checkpoint) can give, the awkward ones included.
VALUES: list[Any] = [
    None,
    0,
    1,
    2,
    -3,
    0.0,
    1.0,
    0.25,
    -0.0,
    True,
    False,
    2**53 + 1,
    2**1100,
    -(2**1100),
    1e308,
    float("inf"),
    float("nan"),
    "1",
    "0",
    "true",
    "False",
    "maybe",
    "",
    [1],
    {"a": 1},
]


def same(left: Any, right: Any) -> bool:
    """Equal as the quality summary sees them: same floats (NaN equal, -0.0 kept) or same list."""
    if isinstance(right, list):
        return bool(left == right)
    left, right = np.asarray(left), np.asarray(right)
    return left.dtype == right.dtype and left.tobytes() == right.tobytes()


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_every_pair_of_values_converts_as_label_column(task: str) -> None:
    for pair in itertools.product(VALUES, repeat=2):
        labels = list(pair)
        assert same(quality_labels(task, labels), label_column(task, labels)), labels


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_generated_batches_convert_as_label_column(task: str) -> None:
    rng = np.random.default_rng(3)
    for size in (0, 1, 7, 500):
        present = rng.random(size) < 0.3
        numbers = rng.integers(0, 2, size) if task == "binary" else rng.normal(size=size)
        labels = [v if p else None for v, p in zip(numbers.tolist(), present, strict=True)]
        fast = quality_labels(task, labels)
        assert fast.dtype == np.float64 and len(fast) == size
        assert same(fast, label_column(task, labels))
        assert np.array_equal(np.isnan(fast), ~present)


def test_labels_without_any_value_are_all_nan() -> None:
    assert np.isnan(quality_labels("binary", [None] * 4)).all()
    assert quality_labels("regression", []).shape == (0,)
