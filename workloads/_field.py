"""numba kernels of the synthetic activations: the smooth random field and the final values.

The field is white noise blurred by a separable, truncated Gaussian; every noise
sample is a counter-based standard normal (``_draw.std_normal``) of its flat
index in the padded ``(H + 2r, W + 2r, C)`` block, so it does not depend on the
order of computation. The blur and the scores are float32 with a fixed order of
operations (no ``fastmath``): the field, and everything derived from it, is the
same for any number of threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._draw import ROUND, std_exponential, std_normal

_I16_MAX = 32767


@njit(cache=True, parallel=True)
def field_kernel(k0, k1, table, taps, h, w, c, out, row_sum, row_sq):
    """Blurred noise into ``out`` (h, w*c) float32; per-row channel sums into ``row_sum``/``row_sq``
    (h, c) float64. ``taps``: the 2r + 1 float32 Gaussian weights (r = 0: white noise)."""
    nt = taps.shape[0]
    r = (nt - 1) // 2
    hp = h + 2 * r
    wpc = (w + 2 * r) * c
    wc = w * c
    noise = np.empty((hp, wpc), dtype=np.float32)
    # NOTE: parallel over rows; each noise value is a pure function of its flat index.
    for y in prange(hp):
        base = y * wpc
        for x in range(wpc):
            noise[y, x] = np.float32(std_normal(k0, k1, base + x, table))
    for y in prange(h):
        col = np.zeros(wpc, dtype=np.float32)          # vertical blur of padded row y + r
        for t in range(nt):
            g = taps[t]
            src = noise[y + t]
            for x in range(wpc):
                col[x] += g * src[x]
        dst = out[y]
        dst[:] = 0.0
        for t in range(nt):                             # horizontal blur, taps in the same order
            g = taps[t]
            off = t * c
            for x in range(wc):
                dst[x] += g * col[x + off]
        for j in range(c):
            row_sum[y, j] = 0.0
            row_sq[y, j] = 0.0
        for x in range(w):
            for j in range(c):
                v = np.float64(dst[x * c + j])
                row_sum[y, j] += v
                row_sq[y, j] += v * v


@njit(cache=True, inline="always")
def _score(f, a, b):
    # Standardised field value minus the channel's Gaussian quantile: f * a + b with
    # a = 1 / sd, b = -mu / sd - q (float32, one expression everywhere).
    return f * a + b


@njit(cache=True)
def score_pass(field, c, a, b, lo, hi, cand_val, cand_idx):
    """Count scores > hi; collect scores in [lo, hi] (as far as cand_* have room) with their
    flat indices. ``field``: flat (h * w * c,) float32. Returns (above, in-bracket count)."""
    cap = cand_val.shape[0]
    above = 0
    mid = 0
    for p in range(0, field.shape[0], c):
        for j in range(c):
            s = _score(field[p + j], a[j], b[j])
            # NOTE: branch-free tests; about half the scores are above, at random.
            above += s > hi
            if (s >= lo) & (s <= hi):
                if mid < cap:
                    cand_val[mid] = s
                    cand_idx[mid] = p + j
                mid += 1
    return above, mid


@njit(cache=True)
def score_sample(field, c, a, b, idx):
    """Scores at the flat indices ``idx`` (float32)."""
    out = np.empty(idx.shape[0], dtype=np.float32)
    for s in range(idx.shape[0]):
        i = idx[s]
        j = i % c
        out[s] = _score(field[i], a[j], b[j])
    return out


@njit(cache=True, parallel=True)
def activation_values(field, c, a, b, thr, thr_idx, k0, k1, log_table, scale, out):
    """``out`` (h, w*c) int16: kept elements (score > thr, or == thr at flat index <= thr_idx)
    get ``round(256 * E * scale[ch])`` clipped to [1, 32767], E a counter-based standard
    exponential; the rest 0. ``field``: (h, w * c) float32."""
    h, wc = field.shape
    for y in prange(h):
        row = field[y]
        dst = out[y]
        base = y * wc
        for x in range(0, wc, c):
            for j in range(c):
                s = _score(row[x + j], a[j], b[j])
                i = base + x + j
                if (s > thr) | ((s == thr) & (i <= thr_idx)):
                    v = std_exponential(k0, k1, i, log_table) * scale[j] * 256.0
                    # NOTE: round half to even inline (as in _draw); v >= 0.
                    v = (v + ROUND) - ROUND
                    if v < 1.0:
                        v = 1.0
                    elif v > _I16_MAX:
                        v = _I16_MAX
                    dst[x + j] = np.int16(v)
                else:
                    dst[x + j] = 0
