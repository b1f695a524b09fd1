"""Population and characteristic stability index (README, Windows).

PSI compares the prediction's distribution in a window with the reference's;
CSI is the same formula on one feature. Both are
``sum((a_i - e_i) * ln(a_i / e_i))`` over bins, with ``e_i`` and ``a_i`` the
reference and window proportions, each floored at ``epsilon`` so that an empty
bin gives a large but finite term. The result depends on the binning, which is
fixed by the reference (quantile edges, or top-k categories plus "other"): that
is the approximation, and ``bins``/``top_k`` in the model config are its knobs.
Reference: Yurdakul (2018), "Statistical Properties of Population Stability Index".

:class:`StabilityIndex` is the one implementation: it computes the index of
many columns at once (the live path, every window) and :func:`psi` is its
one-column case.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_EPSILON = 1e-4


class StabilityIndex:
    """The stability index of several columns against fixed reference counts.

    The columns' bins are concatenated: ``reference_counts[j]`` are column ``j``'s
    reference counts, and a window is given as one array of every column's
    counts in the same order. Proportions of every bin of every column are one
    numpy expression (a column with no count is ``epsilon`` in every bin). Each
    column's terms are summed as ``np.sum`` sums them on their own slice
    (pairwise, so the order matters to the last bit), the columns of one bin
    count together: the rows of one 2-D array, each summed along it.

    >>> index = StabilityIndex([[5, 5], [1, 2, 3]])
    >>> values, totals = index.read(np.array([1.0, 0.0, 0.0, 4.0, 2.0]))
    >>> [round(v, 6) for v in values], totals
    ([4.604318, 1.534315], [1.0, 6.0])
    """

    def __init__(
        self, reference_counts: Sequence[ArrayLike], epsilon: float = DEFAULT_EPSILON
    ) -> None:
        sizes = np.array([np.size(c) for c in reference_counts], dtype=np.int64)
        if not sizes.size or np.any(sizes < 1):
            raise ValueError("every column needs at least one bin")
        ends = np.cumsum(sizes)
        self.epsilon = epsilon
        self.sizes = sizes
        self.starts = ends - sizes
        self.bounds = list(zip(self.starts.tolist(), ends.tolist(), strict=True))
        #: For each bin count: the columns that have it, and their bins' positions (a row each).
        self._by_size: list[tuple[np.ndarray, np.ndarray]] = []
        for size in np.unique(sizes).tolist():
            columns = np.flatnonzero(sizes == size)
            self._by_size.append((columns, self.starts[columns][:, None] + np.arange(size)))
        counts = np.concatenate([np.asarray(c, dtype=np.float64) for c in reference_counts])
        #: Every column's reference counts, concatenated.
        self.reference_counts = counts
        self.expected, totals = self.proportions(counts)
        #: Each column's reference total, and each bin's column total.
        self.reference_totals = totals
        self.reference_per_bin = np.repeat(totals, sizes)

    def proportions(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each bin's share of its column, floored at ``epsilon``, and each column's total."""
        totals = np.add.reduceat(counts, self.starts)
        per_bin = np.repeat(totals, self.sizes)
        filled = per_bin > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = np.maximum(counts / np.where(filled, per_bin, 1.0), self.epsilon)
        return np.where(filled, shares, self.epsilon), totals

    def read(self, window_counts: np.ndarray) -> tuple[list[float], list[float]]:
        """Stability index and total count of each column in ``window_counts``."""
        actual, totals = self.proportions(np.asarray(window_counts, dtype=np.float64))
        terms = (actual - self.expected) * np.log(actual / self.expected)
        index = np.empty(len(self.sizes))
        for columns, positions in self._by_size:
            index[columns] = terms[positions].sum(axis=1)
        return index.tolist(), totals.tolist()


def psi(
    reference_counts: ArrayLike, window_counts: ArrayLike, epsilon: float = DEFAULT_EPSILON
) -> float:
    """Stability index of ``window_counts`` against ``reference_counts`` (same bins).

    >>> round(psi(np.array([50, 50]), np.array([50, 50])), 12)
    0.0
    >>> round(psi(np.array([50, 50]), np.array([90, 10])), 5)
    0.87889
    >>> psi([3, 1, 0], [0, 0, 0]) > 0  # an empty window is all epsilon
    True
    """
    return StabilityIndex([reference_counts], epsilon).read(np.asarray(window_counts))[0][0]
