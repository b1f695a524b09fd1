"""The laws every fixed-slot summary obeys, checked the same way for each of them."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_monitor.summaries.slots import Summary, pane_deltas

SINGLES = 500  # rows fed one at a time (the batch-vs-singles law; a loop is slow)


def _slice(column: Any, rows: slice) -> Any:
    return column[rows]


def assert_summary_laws(layout: Any, columns: tuple[Any, ...], seed: int = 0) -> Summary[Any]:
    """Check the laws of one summary on ``columns``; returns the summary of all of them.

    Batch == singles (first ``SINGLES`` rows), merge of parts == whole,
    whole - part == rest, the state round-trips, and pane deltas sum to the whole.
    """
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    whole = Summary(layout)
    whole.update_many(*columns)
    assert np.all(whole.vector[: layout.start] == 0), "slots before start must stay untouched"

    head = min(n, SINGLES)
    batch, singles = Summary(layout), Summary(layout)
    batch.update_many(*(_slice(c, slice(0, head)) for c in columns))
    for i in range(head):
        singles.update_many(*(_slice(c, slice(i, i + 1)) for c in columns))
    np.testing.assert_allclose(singles.vector, batch.vector, rtol=1e-12, atol=1e-9)

    cut = int(rng.integers(0, n + 1))
    first, rest = Summary(layout), Summary(layout)
    first.update_many(*(_slice(c, slice(0, cut)) for c in columns))
    rest.update_many(*(_slice(c, slice(cut, n)) for c in columns))
    merged = Summary(layout)
    merged.merge(first)
    merged.merge(rest)
    np.testing.assert_allclose(merged.vector, whole.vector, rtol=1e-12, atol=1e-9)

    remainder = Summary(layout)
    remainder.merge(whole)
    remainder.subtract(first)
    np.testing.assert_allclose(remainder.vector, rest.vector, rtol=1e-9, atol=1e-6)

    restored = Summary(layout)
    restored.from_state(whole.to_state())
    assert np.array_equal(restored.vector, whole.vector)

    n_panes = 4
    rows = rng.integers(0, n_panes, n)
    panes = pane_deltas(
        len(whole.vector),
        rows,
        n_panes,
        layout.positions(*columns),
        layout.sum_slots,
        layout.sums(*columns),
    )
    np.testing.assert_allclose(panes.sum(axis=0), whole.vector, rtol=1e-12, atol=1e-9)
    return whole
