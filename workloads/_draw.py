"""Counter-based normal (and exponential) draws for synthetic tensors, and the weights' exact magnitude pruning.

Element ``i`` of a weight tensor is a pure function of the seed's two key words
and ``i``: a SplitMix64 hash of the counter gives 64 random bits; bit 0 is the
sign and the top 53 bits a tail probability ``p`` in ``(0, 1]``, which the
inverse half-normal CDF turns into ``|z| = -Phi^-1(p / 2)``. The inverse CDF is
a table, linear within each of 256 cells per binary octave of ``p`` (53
octaves, so the tail reaches ``|z|`` ~ 8.3), built once from
:class:`statistics.NormalDist`; the interpolation error is below 1e-5 in ``z``.

Because any element can be recomputed on its own, magnitude pruning needs no
sort of the whole tensor: the k-th largest ``|w|`` is bracketed from a sample,
one parallel pass counts above the bracket and collects the few values inside
it, and those are ranked exactly (ties to the lowest flat index; ``_topk``). The result is
the same exact top-k as a full partition. Only integer operations and IEEE additions and
multiplications are used (no ``fastmath``, no transcendental functions), so the
values are the same on every machine and for any number of threads.
"""
from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._parallel import NoAliasCompiler, run_chunks
from ._topk import MARGIN_SIGMAS, SAMPLE, select_top_k

__all__ = ["he_weights_q88"]

_CELLS = 256            # table cells per binary octave of the tail probability
_OCTAVES = 54           # p in (2^-53, 1]: frexp exponents 1 .. -52
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
#: The pruning threshold's bracket (workloads/_topk.py); module attributes so tests can shrink them.
_SAMPLE = SAMPLE
_MARGIN_SIGMAS = MARGIN_SIGMAS
_I16_MIN, _I16_MAX = -32768, 32767
ROUND = 6755399441055744.0     # 1.5 * 2^52
_LN2 = math.log(2.0)
#: Weights below which one pass runs on one thread (about 0.15 ms of work: less than sharing costs).
_PARALLEL_MIN_WEIGHTS = 1 << 15


@functools.lru_cache(maxsize=1)
def half_normal_table() -> np.ndarray:
    """``T[o, j] = -Phi^-1(p / 2)`` at ``p = 2^-o (1 + j / 256)``, shape (54, 257), float64."""
    inv = NormalDist().inv_cdf
    t = np.zeros((_OCTAVES, _CELLS + 1))
    for o in range(1, _OCTAVES):
        for j in range(_CELLS + 1):
            p = 2.0 ** -o * (1.0 + j / _CELLS)
            t[o, j] = -inv(p / 2.0) if p < 1.0 else 0.0
    t.setflags(write=False)
    return t


_SUBCELLS = 16
#: (biased exponent, top 4 mantissa bits) of float(v) = 1.0 (octave 53), the bound table's first entry.
_BOUND_BASE = 1023 << 4


@functools.lru_cache(maxsize=1)
def _half_normal_bound() -> np.ndarray:
    """``B[16 (53 - o) + m] >= |z|`` for every p in sub-cell m (16 cells of the table) of
    octave o: the table's value at the sub-cell's left edge, raised by 2^-40 for rounding.
    The index is the top 16 bits of the float64 ``v`` minus those of 1.0."""
    t = half_normal_table()
    b = t[::-1, 0:_CELLS:_CELLS // _SUBCELLS] * (1.0 + 2.0 ** -40)
    b = np.ascontiguousarray(b).reshape(-1)
    b.setflags(write=False)
    return b


@functools.lru_cache(maxsize=1)
def log_table() -> np.ndarray:
    """``L[j] = ln(1 + j / 256)``, shape (257,), float64: the exponential's inverse CDF within an octave."""
    t = np.array([math.log1p(j / _CELLS) for j in range(_CELLS + 1)])
    t.setflags(write=False)
    return t


@intrinsic
def _f64_bits(typingctx, x):
    """The IEEE bits of a float64 as a uint64 (LLVM ``bitcast``)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.uint64(types.float64), codegen


@intrinsic
def _clz64(typingctx, x):
    """Leading zero bits of a uint64 (LLVM ``ctlz``)."""
    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))
    return types.uint64(types.uint64), codegen


#: 256 / 2^(53 - o): scales v in [2^(53-o), 2^(54-o)) to a table position in [256, 512).
_CELL_SCALE = np.array([_CELLS / 2.0 ** (53 - o) for o in range(_OCTAVES)])


@njit(cache=True, inline="always")
def _hash64(k0, k1, i):
    # SplitMix64 of the counter, keyed by two words.
    # NOTE: all uint64 arithmetic (a mixed int64/uint64 expression would become float64 in numba).
    h = k0 + np.uint64(i) * _GOLDEN
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return (h ^ (h >> np.uint64(31))) ^ k1


@njit(cache=True, inline="always")
def _octave_cell(h):
    # The tail probability p = v / 2^53 in (0, 1] of the top 53 bits of h, as its octave o
    # (p in [2^-o, 2^(1-o))) and its position t in [0, 256) within that octave's table cells.
    v = np.uint64(1) + (h >> np.uint64(11))
    o = np.int64(_clz64(v)) - 10
    # NOTE: v < 2^63, so the int64 -> float64 conversion is exact and one instruction.
    return o, np.float64(np.int64(v)) * _CELL_SCALE[o] - _CELLS


@njit(cache=True, inline="always")
def std_normal(k0, k1, i, table):
    return _normal_of_hash(_hash64(k0, k1, i), table)


@njit(cache=True, inline="always")
def _normal_of_hash(h, table):
    o, t = _octave_cell(h)
    j = np.int64(t)
    z = table[o, j] + (t - j) * (table[o, j + 1] - table[o, j])
    return -z if h & np.uint64(1) else z


@njit(cache=True, inline="always")
def std_exponential(k0, k1, i, log_table):
    # -ln p = o ln 2 - ln(1 + t / 256), the second term from a table linear within each cell.
    o, t = _octave_cell(_hash64(k0, k1, i))
    j = np.int64(t)
    return o * _LN2 - (log_table[j] + (t - j) * (log_table[j + 1] - log_table[j]))


@njit(cache=True)
def _sample_magnitudes(k0, k1, table, scale_k, scale_c, khw, cin, idx, out):
    # out[s] = |w| at flat index idx[s]. out is allocated by the caller (see _draw_rows).
    row = khw * cin
    for s in range(idx.shape[0]):
        i = idx[s]
        co = i // row
        ci = i % cin
        out[s] = abs(std_normal(k0, k1, i, table) * scale_k[co] * scale_c[ci])


@njit(cache=True, nogil=True, pipeline_class=NoAliasCompiler)
def _draw_rows(k0, k1, table, bound, scale_k, scale_c, khw, cin, lo, hi, rows, q, counts, cand_val, cand_idx, maybe):
    # One pass over every weight: q = Q8.8 of w if |w| >= lo (a weight with |w| > hi is kept for
    # sure, so a 0 there becomes +-1 LSB now), else 0. Weights with lo <= |w| <= hi are the
    # candidates for the threshold: signed value and flat index go to row r of cand_*, as far
    # as it has room. counts[co] = (# |w| > hi, # lo <= |w| <= hi). Only the kernels in rows.
    # maybe: scratch, cin bytes. No two array arguments may share memory (NoAliasCompiler).
    # NOTE: arrays come from the caller: every np.empty / np.zeros of a new dtype or rank in a
    # kernel is one more numpy implementation for numba to compile (about 40 ms each, cold).
    cap = cand_val.shape[1]
    row = khw * cin
    for rr in range(rows.shape[0]):
        co = rows[rr]
        above = 0
        mid = 0
        sk = scale_k[co]
        base = co * row
        for r in range(khw):
            off = base + r * cin
            # NOTE: most weights fall below lo. A branch-free first loop (it vectorises) bounds
            # |z| from the octave and the top 4 bits of its table cell (one small-table load)
            # and writes 0; only the weights not excluded by the bound are drawn exactly below.
            # Exact: a weight excluded here has |w| < lo.
            for ci in range(cin):
                i = off + ci
                h = _hash64(k0, k1, i)
                # The exponent and top 4 mantissa bits of float(v) are the octave and sub-cell.
                f = np.float64(np.int64(np.uint64(1) + (h >> np.uint64(11))))
                zb = bound[(_f64_bits(f) >> np.uint64(48)) - np.uint64(_BOUND_BASE)]
                maybe[ci] = not (zb * sk * scale_c[ci] < lo)
                q[i] = 0
            for ci in range(cin):
                if not maybe[ci]:
                    continue
                i = off + ci
                h = _hash64(k0, k1, i)
                w = _normal_of_hash(h, table) * sk * scale_c[ci]
                a = abs(w)
                if a < lo:
                    q[i] = 0
                    continue
                v = w * 256.0
                if v > _I16_MAX:
                    v = _I16_MAX
                elif v < _I16_MIN:
                    v = _I16_MIN
                # NOTE: round half to even (np.rint) inline: adding and subtracting 1.5 * 2^52
                # rounds any |v| < 2^51 to an integer in IEEE arithmetic; np.rint is a libm call.
                v = (v + ROUND) - ROUND
                if a > hi:
                    above += 1
                    if v == 0.0:
                        v = -1.0 if w < 0 else 1.0
                else:
                    if mid < cap:
                        cand_val[rr, mid] = w
                        cand_idx[rr, mid] = i
                    mid += 1
                q[i] = np.int16(v)
        counts[co, 0] = above
        counts[co, 1] = mid


def _draw_pass(k0, k1, table, bound, scale_k, scale_c, khw, cin, lo, hi, rows, q, counts, cand_val, cand_idx):
    # _draw_rows over the rows, in parallel: row rr writes only its kernel's weights, counts and
    # row rr of cand_*.
    def chunk(a: int, b: int) -> None:
        _draw_rows(k0, k1, table, bound, scale_k, scale_c, khw, cin, lo, hi, rows[a:b], q, counts,
                   cand_val[a:b], cand_idx[a:b], np.empty(cin, dtype=np.uint8))

    run_chunks(chunk, rows.shape[0], serial=rows.shape[0] * khw * cin < _PARALLEL_MIN_WEIGHTS)


def he_weights_q88(shape: tuple[int, int, int, int], keys: np.ndarray, std: float, scale_k: np.ndarray,
                   scale_c: np.ndarray, k: int) -> np.ndarray:
    """Q8.8 weights ``z * std * scale_k[co] * scale_c[ci]`` (z standard normal, counter-based),
    rounded to nearest, saturated, then all but the ``k`` largest ``|w|`` set to 0 (ties to the
    lowest flat index) and kept zeros set to +-1 LSB. ``keys``: two uint64 words of the seed.
    Returns int16 of ``shape``."""
    cout, kh, kw, cin = shape
    n = cout * kh * kw * cin
    khw = kh * kw
    k0, k1 = np.uint64(keys[0]), np.uint64(keys[1])
    table = half_normal_table()
    bound = _half_normal_bound()
    sk = np.ascontiguousarray(scale_k * std, dtype=np.float64)
    sc = np.ascontiguousarray(scale_c, dtype=np.float64)
    if k <= 0:
        return np.zeros(shape, dtype=np.int16)
    q = np.empty(n, dtype=np.int16)
    counts = np.zeros((cout, 2), dtype=np.int64)
    row = khw * cin
    rows = np.arange(cout, dtype=np.int64)

    def sample_fn(idx: np.ndarray) -> np.ndarray:
        out = np.empty(idx.shape[0], dtype=np.float64)
        _sample_magnitudes(k0, k1, table, sk, sc, khw, cin, idx, out)
        return out

    def pass_fn(lo: float, hi: float, mid_frac: float):
        # Room for the candidates of one output kernel: the mean count plus 8 sigma. Kernels with
        # more (larger filter norm) are drawn again with room for all of theirs.
        expect = row * mid_frac
        cap = min(row, int(expect + 8.0 * np.sqrt(expect) + 16))
        cand_val = np.empty((cout, cap), dtype=np.float64)
        cand_idx = np.empty((cout, cap), dtype=np.int64)
        _draw_pass(k0, k1, table, bound, sk, sc, khw, cin, lo, hi, rows, q, counts, cand_val, cand_idx)
        above, n_c = int(counts[:, 0].sum()), counts[:, 1].copy()
        sel = np.arange(cap)[None, :] < n_c[:, None]
        vals, idxs = [cand_val[sel]], [cand_idx[sel]]
        over = np.flatnonzero(n_c > cap)
        if over.size:
            big = int(n_c[over].max())
            ov_val = np.empty((over.size, big), dtype=np.float64)
            ov_idx = np.empty((over.size, big), dtype=np.int64)
            _draw_pass(k0, k1, table, bound, sk, sc, khw, cin, lo, hi, over, q, counts, ov_val, ov_idx)
            sel = (np.arange(big)[None, :] >= cap) & (np.arange(big)[None, :] < n_c[over][:, None])
            vals.append(ov_val[sel])
            idxs.append(ov_idx[sel])
        vals, idxs = np.concatenate(vals), np.concatenate(idxs)
        return above, np.abs(vals), idxs, vals

    # Keep the (k - above) largest |w| of the bracket: by value descending, then flat index.
    above, _, idxs, vals, order = select_top_k(n, k, sample_fn, pass_fn, sample=_SAMPLE,
                                               margin_sigmas=_MARGIN_SIGMAS)
    kept, dropped = order[:k - above], order[k - above:]
    q[idxs[dropped]] = 0
    fix = kept[q[idxs[kept]] == 0]
    q[idxs[fix]] = np.where(vals[fix] < 0, -1, 1).astype(np.int16)
    return q.reshape(shape)
