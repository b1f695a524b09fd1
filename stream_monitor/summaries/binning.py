"""Map raw column values to bin indices fixed by a reference.

Numeric bins are right-closed intervals between the reference's quantile edges,
the outer ones open to -inf/+inf: bin ``i`` holds ``edges[i-1] < x <= edges[i]``,
so a value equal to a repeated quantile (the zeros of a zero-inflated amount)
lands in one bin. Categorical bins are the reference's top-k categories plus one
bin for every other value.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from struct import pack

import numpy as np


class NumericBins:
    """Bins between fixed edges; NaN (null) gets the index ``len(edges) + 1``.

    >>> bins = NumericBins([0.0, 1.0])
    >>> bins.index(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan])).tolist()
    [0, 0, 1, 1, 2, 3]
    """

    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = np.unique(np.asarray(edges, dtype=np.float64))
        self.size = len(self.edges) + 1
        self.null_index = self.size

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value; ``null_index`` for NaN."""
        index = np.searchsorted(self.edges, values, side="left")
        null = np.isnan(values)
        if null.any():
            index[null] = self.null_index
        return index


#: Most edges a column may have to be binned by :class:`NumericBinsBlock`
#: (beyond, a binary search per value costs less than comparing with every edge).
MAX_BLOCK_EDGES = 64


class NumericBinsBlock:
    """:meth:`NumericBins.index` of several columns at once, to the same integers.

    The bin of ``x`` is the number of edges below it (what ``searchsorted`` finds
    in the sorted edges), counted here with one comparison of every column's
    values per edge rank (shorter edge lists padded with +inf, never below a
    value) instead of one binary search per value, which mispredicts its branches.

    >>> a, b = NumericBins([0.0, 1.0]), NumericBins([5.0])
    >>> values = np.array([[-5.0, 0.5, 1.0, np.nan], [4.0, 5.0, 6.0, 7.0]])
    >>> NumericBinsBlock([a, b]).index(values).tolist()
    [[0, 1, 1, 3], [0, 0, 1, 1]]
    >>> [a.index(values[0]).tolist(), b.index(values[1]).tolist()]
    [[0, 1, 1, 3], [0, 0, 1, 1]]
    """

    def __init__(self, bins: Sequence[NumericBins]) -> None:
        ranks = max(len(b.edges) for b in bins)
        if ranks > MAX_BLOCK_EDGES:
            raise ValueError(f"at most {MAX_BLOCK_EDGES} edges per column")
        edges = np.full((ranks, len(bins), 1), np.inf)
        for column, b in enumerate(bins):
            edges[: len(b.edges), column, 0] = b.edges
        self._edges = edges
        self._null_index = np.array([[b.null_index] for b in bins], dtype=np.int64)
        #: Each column's padded edges and one more +inf (a row each: what :meth:`histogram`
        #: searches), and where it finds each column's bins and nulls in the differences.
        self._column_edges = np.ascontiguousarray(
            np.concatenate((edges[:, :, 0], np.full((1, len(bins)), np.inf))).T
        )
        width = ranks + 2
        self._histogram_take = np.concatenate(
            [c * width + np.r_[np.arange(b.size), width - 1] for c, b in enumerate(bins)]
        )

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bin index (int64) of each value of each column (one row of ``values`` per column)."""
        return self.positions(values, np.zeros((len(self._null_index), 1), dtype=np.int64))

    def histogram(self, values: np.ndarray) -> np.ndarray:
        """What :meth:`index` counts, column by column: each bin's count, then the nulls.

        One flat int64 array, ``size + 1`` entries per column in order. Each
        column is sorted (NaN last), and the count of values ``<= edge`` is a
        binary search of the edge in it; bin ``i`` holds
        ``edges[i-1] < x <= edges[i]``, so its count is the difference of two
        of them. The search of +inf counts the values that are not NaN, so the
        nulls are the rest. No position per value: for rows that all fall in one pane.

        >>> block = NumericBinsBlock([NumericBins([0.0, 1.0]), NumericBins([5.0])])
        >>> values = np.array([[-5.0, 0.5, 1.0, np.nan], [4.0, 5.0, 6.0, 7.0]])
        >>> block.histogram(values).tolist()
        [1, 2, 0, 1, 2, 2, 0]
        """
        ordered = np.sort(values, axis=1)
        columns, rows = values.shape
        table = np.empty((columns, self._column_edges.shape[1] + 2), dtype=np.int64)
        table[:, 0] = 0
        # ndarray.searchsorted itself: np.searchsorted's Python wrapper costs as much again.
        sides = repeat("right", columns)
        table[:, 1:-1] = list(map(np.ndarray.searchsorted, ordered, self._column_edges, sides))  # type: ignore[arg-type]
        table[:, -1] = rows
        # Each column's bins (then zeros for its padding), and last its nulls.
        return np.diff(table, axis=1).ravel()[self._histogram_take]

    def positions(self, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """:meth:`index` plus each column's ``starts`` (a column of int64), in one int64 pass.

        >>> block = NumericBinsBlock([NumericBins([0.0, 1.0]), NumericBins([5.0])])
        >>> values = np.array([[-5.0, 0.5, 1.0, np.nan], [4.0, 5.0, 6.0, 7.0]])
        >>> block.positions(values, np.array([[10], [20]])).tolist()
        [[10, 11, 11, 13], [20, 20, 21, 21]]
        """
        counts = np.zeros(values.shape, dtype=np.int8)
        below = np.empty(values.shape, dtype=bool)
        for edge in self._edges:
            np.less(edge, values, out=below)
            counts += below.view(np.int8)
        positions = np.add(counts, starts, dtype=np.int64)
        null = np.isnan(values)
        if null.any():
            np.copyto(positions, starts + self._null_index, where=null)
        return positions


class CategoricalBins:
    """Bins for the reference's top categories plus ``other``; remembers every known value.

    ``index`` returns the bin of each value (``other_index`` for values outside the
    top categories, ``null_index`` for None) and whether the value is new, i.e.
    never seen in the reference.

    >>> bins = CategoricalBins(["a", "b"], known=["a", "b", "c"])
    >>> idx, new = bins.index(["a", "c", "z", None])
    >>> idx.tolist(), new.tolist()
    ([0, 2, 2, 3], [False, False, True, False])
    """

    def __init__(self, categories: Sequence[str], known: Sequence[str]) -> None:
        self.categories = list(categories)
        self.size = len(self.categories) + 1
        self.other_index = len(self.categories)
        self.null_index = self.size
        lookup: dict[str | None, int] = {value: self.other_index for value in known}
        lookup.update({value: i for i, value in enumerate(self.categories)})
        lookup[None] = self.null_index
        #: Each value's bin moved by a start position (:meth:`lookup`), and the one-column
        #: block that :meth:`index` uses, by start.
        self._lookups = {0: lookup}
        self._blocks: dict[int, CategoricalBinsBlock] = {}

    def lookup(self, start: int) -> dict[str | None, int]:
        """Each known value's bin (None's: the null slot) plus ``start`` (kept by start)."""
        found = self._lookups.get(start)
        if found is None:
            found = self._lookups[start] = {k: start + i for k, i in self._lookups[0].items()}
        return found

    def index(self, values: Sequence[str | None], start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Bin index (plus ``start``) of each value and a mask of values never seen in the
        reference (:class:`CategoricalBinsBlock` of this one column)."""
        block = self._blocks.get(start)
        if block is None:
            block = self._blocks[start] = CategoricalBinsBlock([self], [start])
        return block.index([values])


class CategoricalBinsBlock:
    """:meth:`CategoricalBins.index` of several columns of one length at once, each moved
    to its own start: one C-level ``map`` of ``dict.get`` over every column's values,
    whose misses are the new values, and one packing of the positions.

    >>> a = CategoricalBins(["x"], known=["x", "y"])
    >>> b = CategoricalBins(["u", "v"], known=["u", "v"])
    >>> positions, new = CategoricalBinsBlock([a, b], [10, 20]).index(
    ...     [["x", "y", "z"], ["v", None, "w"]])
    >>> positions.tolist(), new.tolist()
    ([10, 11, 11, 21, 23, 22], [False, False, True, False, False, True])
    """

    def __init__(self, bins: Sequence[CategoricalBins], starts: Sequence[int]) -> None:
        self._gets = [b.lookup(start).get for b, start in zip(bins, starts, strict=True)]
        self._other = np.array(
            [start + b.other_index for b, start in zip(bins, starts, strict=True)], np.int64
        )

    def index(self, columns: Sequence[Sequence[str | None]]) -> tuple[np.ndarray, np.ndarray]:
        """The position of each value, column after column (one flat array), and a mask of
        the values never seen in the reference (counted in their column's ``other`` bin)."""
        rows = len(columns[0])
        count = rows * len(columns)
        found = [
            map(get, values, repeat(-1, rows))
            for get, values in zip(self._gets, columns, strict=True)
        ]
        # struct packs the positions faster than np.fromiter converts them.
        raw = np.frombuffer(pack(f"{count}q", *chain.from_iterable(found)), np.int64)
        new = raw < 0
        if new.any():
            raw = np.where(new, np.repeat(self._other, rows), raw)
        return raw, new
