"""Per-work-unit cycle counts from real bitmaps (numba kernels).

A *stripe* is NullHop's work unit: two stride-1 output rows computed from
the ``kh + 1`` input rows that feed them (nullhop.md §7.2 [C]). These pure
functions walk the activation bitmaps and return exact per-stripe counts;
the simpy engine (``_engine.py``) turns them into time. See
docs/architecture.md for the per-cycle behaviour each count encodes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["stripe_mac_work", "row_stream_elements", "stripe_windows", "ceil_div"]


@njit(cache=True)
def ceil_div(a, b):
    """Integer ceiling division for non-negative ``a`` and positive ``b``."""
    return (a + b - 1) // b


@njit(cache=True)
def _taps_1d(n_in, n_out, k, pad):
    # taps[i] = number of outputs o in [0, n_out) with 0 <= i - o + pad < k
    taps = np.zeros(n_in, dtype=np.int64)
    for i in range(n_in):
        lo = max(0, i + pad - k + 1)
        hi = min(n_out - 1, i + pad)
        if hi >= lo:
            taps[i] = hi - lo + 1
    return taps


@njit(cache=True)
def stripe_mac_work(act, kh, kw, pad, m, channels_per_lane, dense_input):
    """MAC cycles per stripe and useful taps per input channel.

    Parameters
    ----------
    act : int16 (H, W, C) layer input (zeros are skipped unless ``dense_input``).
    kh, kw, pad : kernel size and zero padding, in pixels (stride-1 compute).
    m : MACs per output channel; input channel ``c`` goes to lane
        ``min(c // channels_per_lane, m - 1)``.
    dense_input : the input is streamed uncompressed (first layer), so zero
        pixels cost MAC cycles like non-zero ones.

    Returns
    -------
    mac_cycles : int64 (S,) cycles of the MAC array per stripe. Each input
        column of a stripe costs the maximum over the ``m`` lanes of the taps
        their pixels touch (lanes synchronise per column; Assumption).
    taps_per_channel : int64 (C,) useful taps (non-zero pixel x valid output
        position) per input channel, summed over all stripes.
    processed_taps : taps the MACs actually perform per output channel
        (equals ``taps_per_channel.sum()`` unless ``dense_input``).
    """
    h, w, c = act.shape
    ho = h + 2 * pad - kh + 1
    wo = w + 2 * pad - kw + 1
    n_stripes = (ho + 1) // 2
    nx = _taps_1d(w, wo, kw, pad)
    mac_cycles = np.zeros(n_stripes, dtype=np.int64)
    taps_c = np.zeros(c, dtype=np.int64)
    lane_sum = np.zeros(m, dtype=np.int64)
    processed = 0
    for s in range(n_stripes):
        oy0 = 2 * s
        rows_out = min(2, ho - oy0)
        iy_lo = max(0, oy0 - pad)
        iy_hi = min(h - 1, oy0 + rows_out - 1 - pad + kh - 1)
        total = 0
        for ix in range(w):
            if nx[ix] == 0:
                continue
            lane_sum[:] = 0
            for iy in range(iy_lo, iy_hi + 1):
                # output rows of this stripe that input row iy feeds
                ny = 0
                for oy in range(oy0, oy0 + rows_out):
                    ky = iy - oy + pad
                    if ky >= 0 and ky < kh:
                        ny += 1
                if ny == 0:
                    continue
                t = ny * nx[ix]
                for ch in range(c):
                    v = act[iy, ix, ch]
                    if v != 0:
                        taps_c[ch] += t
                    if v != 0 or dense_input:
                        lane = ch // channels_per_lane
                        if lane >= m:
                            lane = m - 1
                        lane_sum[lane] += t
                        processed += t
            best = 0
            for ln in range(m):
                if lane_sum[ln] > best:
                    best = lane_sum[ln]
            total += best
        mac_cycles[s] = total
    return mac_cycles, taps_c, processed


@njit(cache=True)
def row_stream_elements(act, sm_word_pixels, compressed):
    """16-bit stream elements per row: SM words plus non-zeros, or raw pixels.

    Rows are SM-aligned (each row starts a new SM word, nullhop.md §5.1 [C]).
    """
    h, w, c = act.shape
    out = np.zeros(h, dtype=np.int64)
    for iy in range(h):
        if not compressed:
            out[iy] = w * c
            continue
        nnz = 0
        for ix in range(w):
            for ch in range(c):
                if act[iy, ix, ch] != 0:
                    nnz += 1
        out[iy] = ceil_div(w * c, sm_word_pixels) + nnz
    return out


def stripe_windows(h: int, kh: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last (inclusive) input row of each stripe's window."""
    ho = h + 2 * pad - kh + 1
    s = np.arange((ho + 1) // 2)
    rows_out = np.minimum(2, ho - 2 * s)
    lo = np.maximum(0, 2 * s - pad)
    hi = np.minimum(h - 1, 2 * s + rows_out - 1 - pad + kh - 1)
    return lo, hi
