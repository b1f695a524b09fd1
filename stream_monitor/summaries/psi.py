"""Population and characteristic stability index (SPEC section 6).

PSI compares the prediction's distribution in a window with the reference's;
CSI is the same formula on one feature. Both are
``sum((a_i - e_i) * ln(a_i / e_i))`` over bins, with ``e_i`` and ``a_i`` the
reference and window proportions, each floored at ``epsilon`` so that an empty
bin gives a large but finite term. The result depends on the binning, which is
fixed by the reference (quantile edges, or top-k categories plus "other"): that
is the approximation, and ``bins``/``top_k`` in the model config are its knobs.
Reference: Yurdakul (2018), "Statistical Properties of Population Stability Index".
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPSILON = 1e-4


def proportions(counts: np.ndarray, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """Bin proportions floored at ``epsilon`` (all ``epsilon`` for an empty histogram).

    >>> proportions(np.array([3.0, 1.0, 0.0])).tolist()
    [0.75, 0.25, 0.0001]
    """
    total = counts.sum()
    if total <= 0:
        return np.full(counts.shape, epsilon)
    return np.maximum(counts / total, epsilon)


def psi(
    reference_counts: np.ndarray, window_counts: np.ndarray, epsilon: float = DEFAULT_EPSILON
) -> float:
    """Stability index of ``window_counts`` against ``reference_counts`` (same bins).

    >>> round(psi(np.array([50, 50]), np.array([50, 50])), 12)
    0.0
    >>> round(psi(np.array([50, 50]), np.array([90, 10])), 5)
    0.87889
    """
    expected = proportions(np.asarray(reference_counts, dtype=np.float64), epsilon)
    actual = proportions(np.asarray(window_counts, dtype=np.float64), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
