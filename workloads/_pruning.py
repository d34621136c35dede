"""Offline weight-pruning tools (the software half of the RSNN-style design).

Two methods, both deterministic and both hitting the target density exactly
(``round(density * size)`` non-zero weights):

``magnitude``
    Keep the largest ``|w|`` of the whole layer (Han et al. 2015's criterion).
    Non-zeros fall wherever the large weights are, so some kernels, input
    channels and therefore PUs get much more work than others.
``balanced`` (load-balance-aware, RSNN-style; the algorithm is an **Assumption**,
RSNN's own is [NF], docs/sources.md §R3)
    Split the layer into equal *balance units* and give every unit the same
    number of non-zeros (±1), keeping the largest ``|w|`` inside each unit:

    * ``granularity="kernel"``: a unit is one output kernel (all its taps), so
      every kernel, and so every PU that owns the same number of kernels, does
      the same total work;
    * ``granularity="kernel_channel"`` (default): a unit is one kernel's taps
      for one input channel, so every broadcast pixel costs every MAC about the
      same number of cycles, which also balances the MACs within a column.

    The ``round(density * size)`` non-zeros are apportioned by the largest
    remainder: every unit gets ``floor(d * unit_size)``, and the units whose
    best remaining weight is largest get one more.
"""
from __future__ import annotations

import numpy as np

from ._errors import WorkloadError

__all__ = ["PRUNING_METHODS", "prune_weights"]

PRUNING_METHODS = ("magnitude", "balanced")
_GRANULARITIES = ("kernel", "kernel_channel")


def _keep_top(order_vals: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest values (ties: lowest flat index first)."""
    mask = np.zeros(order_vals.size, dtype=bool)
    if k > 0:
        idx = np.lexsort((np.arange(order_vals.size), -order_vals))[:k]
        mask[idx] = True
    return mask


def prune_weights(weights: np.ndarray, density: float, *, method: str = "magnitude",
                  granularity: str = "kernel_channel") -> np.ndarray:
    """Prune int16 weights ``(C_out, kh, kw, C_in/groups)`` to ``density``.

    Already-zero weights count as pruned: a layer never gains non-zeros, so
    the result's density is ``min(density, current density)`` when the target
    is above what the weights have.

    Parameters
    ----------
    weights : int16 array ``(C_out, kh, kw, C_in/groups)``.
    density : target fraction of non-zero weights, in [0, 1].
    method : ``"magnitude"`` or ``"balanced"`` (see module docstring).
    granularity : balance unit of ``"balanced"``: ``"kernel"`` or ``"kernel_channel"``.

    Returns
    -------
    A new int16 array of the same shape.
    """
    w = np.asarray(weights)
    if w.ndim != 4 or w.dtype != np.int16:
        raise WorkloadError(f"weights must be an int16 array (C_out, kh, kw, C_in), got {w.dtype} {w.shape}")
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 <= density <= 1.0:
        raise WorkloadError(f"density must be a number in [0, 1], got {density!r}")
    if method not in PRUNING_METHODS:
        raise WorkloadError(f"pruning method must be one of {', '.join(PRUNING_METHODS)}, got {method!r}")
    if granularity not in _GRANULARITIES:
        raise WorkloadError(f"pruning granularity must be one of {', '.join(_GRANULARITIES)}, got {granularity!r}")
    mag = np.abs(w.astype(np.int32)).astype(np.float64)
    target = min(int(np.floor(density * w.size + 0.5)), int(np.count_nonzero(w)))
    if method == "magnitude":
        keep = _keep_top(mag.ravel(), target).reshape(w.shape)
        return np.where(keep, w, 0).astype(np.int16)
    cout, kh, kw, cin = w.shape
    if granularity == "kernel":
        units = mag.reshape(cout, kh * kw * cin)
    else:  # (kernel, input channel) units of kh*kw taps
        units = mag.transpose(0, 3, 1, 2).reshape(cout * cin, kh * kw)
    n_units, size = units.shape
    # Sort each unit descending (stable by position), then apportion counts.
    order = np.argsort(-units, axis=1, kind="stable")
    sorted_vals = np.take_along_axis(units, order, axis=1)
    nonzero = (sorted_vals > 0).sum(axis=1)
    base = np.minimum(int(np.floor(target / n_units)), nonzero)
    rest = target - int(base.sum())
    # Largest remainder: the unit whose next weight is biggest gets one more, repeatedly.
    counts = base.copy()
    while rest > 0:
        cand = np.where(counts < nonzero, sorted_vals[np.arange(n_units), np.minimum(counts, size - 1)], -1.0)
        if cand.max() <= 0:
            break
        # Give one extra to as many units as possible in one round, best first.
        take = np.lexsort((np.arange(n_units), -cand))[:rest]
        take = take[cand[take] > 0]
        counts[take] += 1
        rest -= len(take)
    keep_sorted = np.arange(size)[None, :] < counts[:, None]
    keep_units = np.zeros_like(keep_sorted)
    np.put_along_axis(keep_units, order, keep_sorted, axis=1)
    if granularity == "kernel":
        keep = keep_units.reshape(w.shape)
    else:
        keep = keep_units.reshape(cout, cin, kh, kw).transpose(0, 2, 3, 1)
    return np.where(keep, w, 0).astype(np.int16)
