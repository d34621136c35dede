"""Exact top-k of a large tensor whose values are computed in passes, without sorting it.

The k-th largest value is bracketed between two order statistics of a sample,
8 binomial standard deviations of the sample's rank either side. One pass over
the tensor then counts the values above the bracket and collects the few inside
it, and those few are ranked exactly (value descending, ties to the lowest flat
index). If the counts show that the bracket missed the k-th value (a rare
sampling miss, or a deliberately tiny sample in the tests), the side that failed
is widened to infinity and the pass runs again. The result is the same as a full
partition of the tensor. Used for the magnitude pruning of synthetic weights and
the exact non-zero count of synthetic activations.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

#: Elements drawn for the bracket; tensors up to this size are ranked directly.
SAMPLE = 1 << 18
#: Half-width of the bracket, in binomial standard deviations of the sample's rank.
MARGIN_SIGMAS = 8.0

#: ``pass_fn(lo, hi, mid_frac)`` -> ``(above, keys, idxs, payload)``: the count of values
#: ``> hi``, and the values ``lo <= v <= hi`` (all of them) with their flat indices; payload
#: is the caller's. ``mid_frac`` is the expected fraction of values inside the bracket.
PassFn = Callable[[float, float, float], tuple]


def select_top_k(n: int, k: int, sample_fn: Callable[[np.ndarray], np.ndarray], pass_fn: PassFn,
                 *, sample: int, margin_sigmas: float):
    """The exact ``k`` largest of ``n`` values, with ``0 < k``.

    ``sample_fn(idx)`` returns the values at the flat indices ``idx`` (any order);
    ``pass_fn`` is described at :data:`PassFn`. Returns ``(above, keys, idxs, payload,
    order)``: the values ``> hi`` are all kept; of the bracket's candidates,
    ``order[:k - above]`` (indices into ``keys``/``idxs``) are kept and the rest dropped.
    """
    if k >= n:
        lo = hi = -np.inf                                          # every value is above
        mid_frac = 0.0
    elif n <= sample:
        lo, hi = -np.inf, np.inf                                   # every value is a candidate
        mid_frac = 1.0
    else:
        idx = np.linspace(0, n - 1, sample).astype(np.int64)
        s = np.sort(sample_fn(idx))
        frac = k / n
        margin = margin_sigmas * np.sqrt(frac * (1.0 - frac) / sample) + 2.0 / sample
        lo_r, hi_r = 1.0 - frac - margin, 1.0 - frac + margin
        lo = s[int(np.floor(lo_r * (sample - 1)))] if lo_r > 0 else -np.inf
        hi = s[int(np.ceil(hi_r * (sample - 1)))] if hi_r < 1 else np.inf
        mid_frac = min(1.0, hi_r) - max(0.0, lo_r)
    while True:
        above, keys, idxs, payload = pass_fn(lo, hi, mid_frac)
        if above <= k <= above + keys.size:
            break
        lo, hi = (-np.inf, hi) if above + keys.size < k else (lo, np.inf)   # widen the side that failed
    return above, keys, idxs, payload, _rank(keys, idxs, k - above)


def _rank(keys: np.ndarray, idxs: np.ndarray, m: int) -> np.ndarray:
    """Indices into ``keys`` whose first ``m`` are the ``m`` first in the order (key descending,
    flat index ascending), the ``m``-th of them at position ``m - 1``; a full order in general."""
    if keys.dtype == np.float32 and 0 < m < keys.size and (idxs.size == 0 or int(idxs.max()) < 1 << 32):
        # NOTE: float32 keys and 32-bit indices pack into one uint64 whose ascending order is the
        # ranking order, so one O(n) partition replaces the sort. (+0.0 makes -0.0 equal to 0.0;
        # the bit trick maps float order to unsigned order, inverted for descending keys.)
        u = (keys + np.float32(0.0)).view(np.uint32)
        asc = np.where(u >> 31 == 1, ~u, u | np.uint32(1 << 31))
        comp = ((~asc).astype(np.uint64) << np.uint64(32)) | idxs.astype(np.uint64)
        return np.argpartition(comp, m - 1)
    return np.lexsort((idxs, -keys))
