"""Bit-exact Q8.8 functional model of NullHop layers, computed on the compressed stream.

Numerics (see docs/numerics.md for provenance):

* activations, weights and biases are int16 Q8.8 (value = int / 256),
  docs/sources.md §N4 [C];
* products are accumulated at full precision in int64; the bias enters as
  ``bias << 8``; the sum is shifted right by 8 (floor), saturated to int16,
  then ReLU / ReLU6 is applied;
* the accelerator computes stride 1 only; stride ``s`` is the stride-1 result
  decimated as ``[::s, ::s]`` by the host, docs/sources.md §N8 [C].

Tensors are int16 ``(H, W, C)``, channel fastest; weights are int16
``(C_out, kh, kw, C_in / groups)``; biases are int16 ``(C_out,)``.
Activation codes: 0 = none, 1 = ReLU, 2 = ReLU6 (6.0 = 1536); the workload
strings ``None``, ``"relu"`` and ``"relu6"`` are accepted as well.

The convolution kernel walks the SM + non-zero stream of
:mod:`simulator._format`, so only non-zero inputs are ever multiplied,
as in the hardware (docs/sources.md §N7.3).
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from dataclasses import dataclass
from types import CodeType

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from workloads import NoAliasCompiler, TraceError, WorkloadError, run_chunks

from ._codec import as_activation, as_stream, encode, sm_words_per_row

__all__ = [
    "ACT_NONE",
    "ACT_RELU",
    "ACT_RELU6",
    "RELU6_MAX",
    "activation_code",
    "conv_accumulate",
    "PairTable",
    "pair_table",
    "pair_table_shape",
    "PAIR_TABLE_VERSION",
    "requantize",
    "conv2d",
    "conv2d_accumulators",
    "maxpool",
    "avgpool",
    "add",
    "fc",
    "fc_accumulators",
]

ACT_NONE = 0
ACT_RELU = 1
ACT_RELU6 = 2
#: 6.0 in Q8.8.
RELU6_MAX = 6 * 256

#: Products per output below which float64 sums are exact (docs/numerics.md, section 8).
_FLOAT_EXACT_TERMS = 2**23
#: Weight bytes (counted as float64) per kernel row that one channel block of the convolution
#: kernel keeps in cache.
_WEIGHT_BLOCK_BYTES = 1 << 20
#: Products (non-zeros x kh x kw x C_out) below which a convolution runs on one thread (about
#: 0.2 ms of work: less than sharing it costs).
_PARALLEL_MIN_PRODUCTS = 1 << 21
#: Row ranges the stream walk of a convolution is split into (beside the weight table).
_WALK_PARTS = 4
#: Accumulators requantized per block (2 MiB of int64).
_REQUANTIZE_BLOCK_ELEMENTS = 1 << 18
#: Accumulators below which requantization runs on one thread.
_PARALLEL_MIN_REQUANTIZE = 1 << 20

_ACT_NAMES = {None: ACT_NONE, "none": ACT_NONE, "relu": ACT_RELU, "relu6": ACT_RELU6}


def activation_code(activation: int | str | None) -> int:
    """Map ``0/1/2`` or ``None/"relu"/"relu6"`` to the activation code 0, 1 or 2."""
    if isinstance(activation, (int, np.integer)) and not isinstance(activation, bool):
        if int(activation) in (ACT_NONE, ACT_RELU, ACT_RELU6):
            return int(activation)
    elif activation is None or isinstance(activation, str):
        if activation in _ACT_NAMES:
            return _ACT_NAMES[activation]
    raise WorkloadError(
        f"activation must be 0, 1, 2, None, 'relu' or 'relu6', not {activation!r}"
    )


# ---------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _conv_acc_kernel(sm, nz, row_sm_ptr, row_nz_ptr, H, W, C, wt, groups, pad, Ho1, Wo1):
    # wt is the pre-transposed weight tensor (kh, kw, C_in / groups, C_out).
    kh, kw, cin_g, cout = wt.shape
    cout_g = cout // groups
    acc = np.zeros((Ho1, Wo1, cout), dtype=np.int64)
    # NOTE: gather form, parallel over output rows: each output row is written
    # by exactly one prange iteration, so the accumulation is race-free. Each
    # input row is re-walked once per kernel row (kh times in total).
    for oy in prange(Ho1):
        acc_row = acc[oy]
        for ky in range(kh):
            iy = oy + ky - pad
            if iy < 0 or iy >= H:
                continue
            w_ky = wt[ky]
            k = row_nz_ptr[iy]
            base = 0
            for wi in range(row_sm_ptr[iy], row_sm_ptr[iy + 1]):
                word = np.int64(sm[wi])
                b = 0
                while word != 0:
                    if word & 1:
                        v = np.int64(nz[k])
                        k += 1
                        idx = base + b
                        x = idx // C
                        c = idx - x * C
                        g = c // cin_g
                        cl = c - g * cin_g
                        co0 = g * cout_g
                        # valid kx: 0 <= ox = x + pad - kx < Wo1
                        kx_lo = max(0, x + pad - Wo1 + 1)
                        kx_hi = min(kw, x + pad + 1)
                        for kx in range(kx_lo, kx_hi):
                            # NOTE: slice first, then index from 0: the
                            # contiguous 0-based loop over this group's output
                            # channels is what lets LLVM vectorise the
                            # int16 -> int64 multiply-add (about 5x faster
                            # than indexing acc_row[ox, co0 + j] directly).
                            a = acc_row[x + pad - kx, co0:co0 + cout_g]
                            wv = w_ky[kx, cl, co0:co0 + cout_g]
                            for j in range(cout_g):
                                a[j] += v * wv[j]
                    word >>= 1
                    b += 1
                base += 16
    return acc


#: Trailing zero bits of a byte (8 for 0).
_TZ8 = np.array([8] + [(i & -i).bit_length() - 1 for i in range(1, 256)], dtype=np.int64)


@njit(cache=True, nogil=True)
def _stream_pairs(sm, nz, row_sm_ptr, row_nz_ptr, W, C, cb, r0, r1, ps, pv, sp):
    # Walks rows r0 .. r1 - 1 of the stream into channel pairs: every (pixel, channel pair c // 2)
    # with a non-zero gives one entry, its pair index (ps) and both values packed in an int32 (pv:
    # channel 2p in the low 16 bits, 2p + 1 in the high 16 bits, 0 for a zero), in stream order;
    # and per row the start of every (pixel x, channel block c // cb) segment (cb even, so a pair
    # never straddles two): row r's segment x * nb + b is ps/pv[sp[r, x * nb + b]:sp[r, x * nb +
    # b + 1]]. Row r's entries start at row_nz_ptr[r] (a row has at most as many pairs as
    # non-zeros), so rows are independent. Returns the largest |v| (int64: |-32768| = 2**15).
    # NOTE: the set bits of a word are visited lowest first by a trailing-zero table (not bit by
    # bit), and the pixel and channel are carried along (no division per non-zero).
    nb = (C + cb - 1) // cb
    v_max = np.int64(0)
    for r in range(r0, r1):
        k = row_nz_ptr[r]
        n = k
        sp_r = sp[r]
        nxt = 0
        xw = 0              # pixel and channel of the current word's first bit
        cw = 0
        last_x = -1         # pixel and pair of entry n - 1
        last_p = -1
        for wi in range(row_sm_ptr[r], row_sm_ptr[r + 1]):
            word = np.int64(sm[wi])
            while word != 0:
                lo8 = word & 0xFF
                b = _TZ8[lo8] if lo8 != 0 else 8 + _TZ8[word >> 8]
                word &= word - 1
                x = xw
                c = cw + b
                while c >= C:
                    c -= C
                    x += 1
                seg = x * nb + (c // cb if nb > 1 else 0)
                while nxt <= seg:
                    sp_r[nxt] = n
                    nxt += 1
                v = np.int64(nz[k])
                k += 1
                v_max = max(v_max, abs(v))
                half = v & 0xFFFF
                if c & 1:
                    half <<= 16
                p = c >> 1
                if x == last_x and p == last_p:
                    pv[n - 1] = np.int32(np.int64(pv[n - 1]) | half)
                else:
                    ps[n] = p
                    pv[n] = np.int32(half)
                    last_x = x
                    last_p = p
                    n += 1
            cw += 16
            while cw >= C:
                cw -= C
                xw += 1
        while nxt <= W * nb:
            sp_r[nxt] = n
            nxt += 1
    return v_max


def _pair_weight_table(weights: np.ndarray, t: np.ndarray, o0: int, o1: int) -> int:
    """Outputs ``o0 .. o1 - 1`` of the weight table of :func:`_conv_acc_pairs` into ``t``, int16
    ``(kh, kw, ceil(C_in / 2), C_out, 2)`` with ``t[ky, kx, p, o, i] = weights[o, ky, kx, 2p + i]``
    (0 past ``C_in``). Returns the largest sum of ``|w|`` over one of these outputs' weights."""
    # NOTE: numpy, not numba: a numba kernel here was 0.3 s more of a cold run's compile for
    # 0.03 s of a warm VGG16 run. numpy releases the GIL for these, beside the stream walk. The
    # pairs are moved as one 4-byte unit (the transpose of 2-byte elements is slower).
    w = weights[o0:o1]
    cout, kh, kw, cin = w.shape
    if cout == 0:
        return 0
    if cin % 2:
        w = np.concatenate([w, np.zeros((cout, kh, kw, 1), dtype=np.int16)], axis=3)
    t.view(np.int32)[:, :, :, o0:o1, 0] = np.ascontiguousarray(w).view(np.int32).transpose(1, 2, 3, 0)
    l1 = np.add.reduce(np.abs(weights[o0:o1].reshape(cout, -1), dtype=np.int32), axis=1, dtype=np.int64)
    return int(l1.max(initial=0))


@dataclass(frozen=True)
class PairTable:
    """The weights of a ``groups == 1`` convolution as the channel-pair kernel reads them, made
    once by :func:`pair_table` (for weights that serve many runs, as a sweep's do).

    ``table``: int16 ``(kh, kw, ceil(C_in / 2), C_out, 2)``, ``table[ky, kx, p, o, i] =
    w[o, ky, kx, 2p + i]`` (0 past ``C_in``; not to be written to); ``l1_max``: the largest sum of ``|w|`` over one output's weights;
    ``shape``: the weights' shape ``(C_out, kh, kw, C_in)``.
    """

    table: np.ndarray
    l1_max: int
    shape: tuple[int, int, int, int]


def pair_table_shape(shape: tuple[int, int, int, int]) -> tuple[int, int, int, int, int]:
    """The shape of the table of :func:`pair_table` for weights of shape ``(C_out, kh, kw, C_in)``."""
    cout, kh, kw, cin = (int(v) for v in shape)
    return (kh, kw, (cin + 1) // 2, cout, 2)


def pair_table(weights: np.ndarray) -> PairTable:
    """The :class:`PairTable` of int16 ``(C_out, kh, kw, C_in)`` weights, for
    :func:`conv2d_accumulators` and :func:`conv_accumulate` (``pairs=``), on the calling thread."""
    weights = _as_weights(weights)
    t = np.empty(pair_table_shape(weights.shape), dtype=np.int16)
    l1 = _pair_weight_table(weights, t, 0, weights.shape[0])
    return PairTable(t, l1, tuple(int(v) for v in weights.shape))


def _code_bytes(code: CodeType) -> bytes:
    """The instructions, names and constants of compiled code (nested code included)."""
    parts = [code.co_code, repr((code.co_names, code.co_varnames)).encode()]
    for k in code.co_consts:
        parts.append(_code_bytes(k) if isinstance(k, CodeType) else repr(k).encode())
    return b"\0".join(parts)


def _code_version(*functions) -> str:
    """A hash of the functions' source, or of their compiled code where no source file ships."""
    h = hashlib.sha256()
    for f in functions:
        try:
            h.update(inspect.getsource(f).encode())
        except (OSError, TypeError):
            h.update(_code_bytes(f.__code__))
    return h.hexdigest()[:16]


#: Names the layout :func:`pair_table` makes (a hash of the code that makes it), for tables kept
#: on disk beside their weights.
PAIR_TABLE_VERSION = _code_version(_pair_weight_table, pair_table_shape)


def _pair_step(context, builder, acc, wp, vb):
    """``acc + lo(w) * lo(v) + hi(w) * hi(v)`` in the 8 int32 lanes of ``acc``, ``w`` the 8 lanes at
    ``wp`` and ``vb`` the broadcast pair values (``<16 x i16>``)."""
    v8i32, v16i16 = ir.VectorType(ir.IntType(32), 8), ir.VectorType(ir.IntType(16), 16)
    features = (getattr(context.codegen(), "_tm_features", "") or "").split(",")
    # NOTE: the x86 instructions themselves: LLVM recognises neither the generic form below as
    # one vpmaddwd nor a vpmaddwd and add as one vpdpwssd (one instruction less per step).
    if "+avxvnni" in features or ("+avx512vnni" in features and "+avx512vl" in features):
        f = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8i32, [v8i32] * 3),
                                           "llvm.x86.avx512.vpdpwssd.256")
        wv = builder.load(builder.bitcast(wp, v8i32.as_pointer()), align=4)
        return builder.call(f, [acc, wv, builder.bitcast(vb, v8i32)])
    wv = builder.load(builder.bitcast(wp, v16i16.as_pointer()), align=4)
    if "+avx2" in features:
        f = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8i32, [v16i16, v16i16]),
                                           "llvm.x86.avx2.pmadd.wd")
        return builder.add(acc, builder.call(f, [wv, vb]))
    even = ir.Constant(v8i32, list(range(0, 16, 2)))
    odd = ir.Constant(v8i32, list(range(1, 16, 2)))
    return builder.add(acc, builder.add(
        builder.mul(builder.sext(builder.shuffle_vector(wv, wv, even), v8i32),
                    builder.sext(builder.shuffle_vector(vb, vb, even), v8i32)),
        builder.mul(builder.sext(builder.shuffle_vector(wv, wv, odd), v8i32),
                    builder.sext(builder.shuffle_vector(vb, vb, odd), v8i32))))


def _broadcast_pairs(builder, vals):
    """Each packed int32 value of ``vals`` in all 8 lanes, as ``<16 x i16>``."""
    i32, i16 = ir.IntType(32), ir.IntType(16)
    v8i32, v16i16 = ir.VectorType(i32, 8), ir.VectorType(i16, 16)
    out = []
    for v in vals:
        vv = builder.insert_element(ir.Constant(v8i32, ir.Undefined), v, ir.Constant(i32, 0))
        vv = builder.shuffle_vector(vv, ir.Constant(v8i32, ir.Undefined), ir.Constant(v8i32, [0] * 8))
        out.append(builder.bitcast(vv, v16i16))
    return out


def _madd_lanes(context, builder, acc_ty, acc_arr, j, row_ptrs, vbs):
    """``acc[j:j + 8] += pmadd(row, v)`` for each 8-lane row pointer and broadcast value."""
    v8i32 = ir.VectorType(ir.IntType(32), 8)
    a = context.make_array(acc_ty)(context, builder, acc_arr)
    ap = builder.bitcast(builder.gep(a.data, [j]), v8i32.as_pointer())
    acc = builder.load(ap, align=4)
    for wp, vb in zip(row_ptrs, vbs):
        acc = _pair_step(context, builder, acc, wp, vb)
    # one load and one store of the accumulators for all the rows
    builder.store(acc, ap, align=4)


def _madd_pairs8_codegen(context, builder, sig, args):
    # args: a, j, four rows, four values
    a, j, rows, vals = args[0], args[1], args[2:6], args[6:]
    ptrs = [builder.gep(context.make_array(sig.args[2 + r])(context, builder, w).data, [j])
            for r, w in enumerate(rows)]
    _madd_lanes(context, builder, sig.args[0], a, j, ptrs, _broadcast_pairs(builder, vals))
    return context.get_dummy_value()


def _madd_pairs8x3_codegen(context, builder, sig, args):
    # args: 3 accumulator rows, j, 3 tables (C-contiguous (pairs, C_out)), 4 pair indices, 4 values
    accs, j, tables, idx, vals = args[:3], args[3], args[4:7], args[7:11], args[11:]
    vbs = _broadcast_pairs(builder, vals)
    for t in range(3):
        w = context.make_array(sig.args[4 + t])(context, builder, tables[t])
        cout = builder.extract_value(w.shape, 1)
        ptrs = [builder.gep(w.data, [builder.add(builder.mul(c, cout), j)]) for c in idx]
        _madd_lanes(context, builder, sig.args[t], accs[t], j, ptrs, vbs)
    return context.get_dummy_value()


def _int32_vectors(arrays, ints, vals) -> bool:
    return (all(isinstance(a, types.Array) and a.dtype == types.int32 and a.layout == "C" for a in arrays)
            and all(isinstance(c, types.Integer) for c in ints) and all(v == types.int32 for v in vals))


@intrinsic
def _madd_pairs8(typingctx, a, j, w0, w1, w2, w3, v0, v1, v2, v3):
    """``a[j:j + 8] += lo(w[j:j + 8]) * lo(v) + hi(w[j:j + 8]) * hi(v)`` lane by lane for the four
    rows ``w0..w3`` and values ``v0..v3``, in int32 (numba only).

    ``a``: int32 accumulators; each ``w``: int32 lanes holding two int16 (``lo`` the low 16 bits,
    ``hi`` the high 16 bits, both signed); each ``v``: two int16 packed the same way. The caller
    guarantees ``j + 8 <= len(a), len(w)`` and that no partial sum leaves int32 (on x86 each row
    is one ``vpdpwssd`` with VNNI, else with AVX2 one ``vpmaddwd``, which wraps only for
    ``2 * (-32768)**2``, and an add).
    """
    if not _int32_vectors((a, w0, w1, w2, w3), (j,), (v0, v1, v2, v3)):
        return None
    return types.void(a, types.intp, w0, w1, w2, w3, v0, v1, v2, v3), _madd_pairs8_codegen


@intrinsic
def _madd_pairs8x3(typingctx, a0, a1, a2, j, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3):
    """:func:`_madd_pairs8` into three accumulator rows ``a0..a2`` from the rows ``c0..c3`` of three
    tables ``w0..w2`` (int32 ``(pairs, C_out)``; the 3 output pixels an input pixel of a 3-wide
    kernel feeds), the values loaded once (numba only)."""
    if not (_int32_vectors((a0, a1, a2, w0, w1, w2), (j, c0, c1, c2, c3), (v0, v1, v2, v3))
            and w0.ndim == w1.ndim == w2.ndim == 2):
        return None
    return (types.void(a0, a1, a2, types.intp, w0, w1, w2, *([types.intp] * 4), v0, v1, v2, v3),
            _madd_pairs8x3_codegen)


@njit(inline="always")
def _madd_rows(a, w0, w1, w2, w3, v0, v1, v2, v3):
    # a += lo(w) * lo(v) + hi(w) * hi(v) for the four pair rows w0..w3 (float32 (C_out, 2)) and
    # packed values v0..v3, in float64.
    e0, o0 = np.float64(np.int16(v0)), np.float64(v0 >> 16)
    e1, o1 = np.float64(np.int16(v1)), np.float64(v1 >> 16)
    e2, o2 = np.float64(np.int16(v2)), np.float64(v2 >> 16)
    e3, o3 = np.float64(np.int16(v3)), np.float64(v3 >> 16)
    for j in range(a.shape[0]):
        a[j] += ((e0 * w0[j, 0] + o0 * w0[j, 1]) + (e1 * w1[j, 0] + o1 * w1[j, 1])
                 + (e2 * w2[j, 0] + o2 * w2[j, 1]) + (e3 * w3[j, 0] + o3 * w3[j, 1]))


def _madd_pairs1(a, w0, w1, w2, w3, v0, v1, v2, v3):
    """``a += lo(w) * lo(v) + hi(w) * hi(v)`` for the four pair rows ``w0..w3`` and packed values
    ``v0..v3``, in the arithmetic of the table the rows come from: int32 rows 8 outputs at a
    time by :func:`_madd_pairs8`, float32 ``(C_out, 2)`` rows in float64 (numba only)."""
    raise NotImplementedError


@overload(_madd_pairs1)
def _madd_pairs1_impl(a, w0, w1, w2, w3, v0, v1, v2, v3):
    if w0.dtype == types.int32:
        def impl(a, w0, w1, w2, w3, v0, v1, v2, v3):
            n = a.shape[0]
            n8 = n - n % 8
            for j in range(0, n8, 8):
                _madd_pairs8(a, j, w0, w1, w2, w3, v0, v1, v2, v3)
            e0, o0 = np.int32(np.int16(v0)), v0 >> 16
            e1, o1 = np.int32(np.int16(v1)), v1 >> 16
            e2, o2 = np.int32(np.int16(v2)), v2 >> 16
            e3, o3 = np.int32(np.int16(v3)), v3 >> 16
            for j in range(n8, n):
                a[j] += ((e0 * np.int32(np.int16(w0[j])) + o0 * (w0[j] >> 16))
                         + (e1 * np.int32(np.int16(w1[j])) + o1 * (w1[j] >> 16))
                         + (e2 * np.int32(np.int16(w2[j])) + o2 * (w2[j] >> 16))
                         + (e3 * np.int32(np.int16(w3[j])) + o3 * (w3[j] >> 16)))
        return impl
    return lambda a, w0, w1, w2, w3, v0, v1, v2, v3: _madd_rows(a, w0, w1, w2, w3, v0, v1, v2, v3)


def _madd_pairs3(a0, a1, a2, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3):
    """:func:`_madd_pairs1` into ``a_t`` from the rows ``c0..c3`` of the table ``w_t``, ``t`` in 0, 1,
    2, for ``C_out`` a multiple of 8 (numba only)."""
    raise NotImplementedError


@overload(_madd_pairs3)
def _madd_pairs3_impl(a0, a1, a2, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3):
    if w0.dtype == types.int32:
        def impl(a0, a1, a2, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3):
            for j in range(0, a0.shape[0], 8):
                _madd_pairs8x3(a0, a1, a2, j, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3)
        return impl

    def impl_float(a0, a1, a2, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3):
        _madd_rows(a0, w0[c0], w0[c1], w0[c2], w0[c3], v0, v1, v2, v3)
        _madd_rows(a1, w1[c0], w1[c1], w1[c2], w1[c3], v0, v1, v2, v3)
        _madd_rows(a2, w2[c0], w2[c1], w2[c2], w2[c3], v0, v1, v2, v3)
    return impl_float


@njit(cache=True, nogil=True, fastmath={"contract"}, pipeline_class=NoAliasCompiler)
def _conv_acc_pairs(ps, pv, sp, H, W, nb, wt, pad, oy0, oy1, a_row, out):
    # Output rows oy0 .. oy1 - 1 into out ((Ho1, Wo1, C_out): int32 with the int32 table, else int64);
    # a_row: (Wo1, C_out) scratch.
    # No two array arguments may share memory (NoAliasCompiler). groups == 1; ps/pv/sp from
    # _stream_pairs. Either table is exact (docs/numerics.md, section 8.1): int32 (kh, kw, pairs,
    # C_out), the two weights of a pair in one lane, with int32 sums, when the caller has checked
    # that no partial sum can reach 2**31; float32 (kh, kw, pairs, C_out, 2) with float64 sums, in
    # which every product and partial sum is an integer below 2**53, so neither the order of the
    # additions nor the fused multiply-adds ("contract") change a bit.
    kh, kw = wt.shape[0], wt.shape[1]
    cout = wt.shape[3]
    Wo1 = a_row.shape[0]
    whole = cout % 8 == 0
    # NOTE: gather form, each output row on its own. The pairs of one input pixel are taken 4 at a
    # time (8 channels), read once for the kw output pixels they feed: one load and one store of
    # the accumulators per 4 pair products (one vpdpwssd or vpmaddwd each on x86); the 3 output pixels of an
    # inner pixel of a 3-wide kernel in one pass (_madd_pairs3: the values stay in registers, the
    # loop over C_out runs once instead of 3 times, 15 % faster over VGG16). Channel blocks keep the
    # kw x cb x C_out weights of a pass in cache. A short group repeats its last pair with the
    # value 0 (adds nothing). Plain loops instead of np.zeros / slice fills: each numpy call is one
    # more implementation for numba to compile.
    for oy in range(oy0, oy1):
        for i in range(Wo1):
            a = a_row[i]
            for j in range(cout):
                a[j] = 0
        for bi in range(nb):
            for ky in range(kh):
                iy = oy + ky - pad
                if iy < 0 or iy >= H:
                    continue
                sp_r = sp[iy]
                w_ky = wt[ky]
                for x in range(W):
                    k0 = sp_r[x * nb + bi]
                    k1 = sp_r[x * nb + bi + 1]
                    # valid kx: 0 <= ox = x + pad - kx < Wo1
                    kx_lo = max(0, x + pad - Wo1 + 1)
                    kx_hi = min(kw, x + pad + 1)
                    if k0 == k1:
                        continue
                    fused = kx_lo == 0 and kx_hi == 3 and whole
                    a0 = a_row[x + pad]
                    a1 = a_row[max(0, x + pad - 1)]
                    a2 = a_row[max(0, x + pad - 2)]
                    w0 = w_ky[0]
                    w1 = w_ky[min(1, kw - 1)]
                    w2 = w_ky[min(2, kw - 1)]
                    for k in range(k0, k1, 4):
                        c0 = ps[k]
                        v0 = pv[k]
                        c1, c2, c3 = c0, c0, c0
                        v1 = v2 = v3 = np.int32(0)
                        if k + 1 < k1:
                            c1 = ps[k + 1]
                            v1 = pv[k + 1]
                        if k + 2 < k1:
                            c2 = ps[k + 2]
                            v2 = pv[k + 2]
                        if k + 3 < k1:
                            c3 = ps[k + 3]
                            v3 = pv[k + 3]
                        if fused:
                            _madd_pairs3(a0, a1, a2, w0, w1, w2, c0, c1, c2, c3, v0, v1, v2, v3)
                        else:
                            for kx in range(kx_lo, kx_hi):
                                wk = w_ky[kx]
                                _madd_pairs1(a_row[x + pad - kx], wk[c0], wk[c1], wk[c2], wk[c3], v0, v1, v2, v3)
        o = out[oy]
        for i in range(Wo1):
            for j in range(cout):
                o[i, j] = a_row[i, j]


@njit(cache=True, pipeline_class=NoAliasCompiler)
def _maxpool_kernel(act, kh, kw, stride, pad, out, m):
    # out: int16 (Ho, Wo, C); m: int16 (C,) scratch; both from the caller: every np.empty / np.zeros
    # of another dtype or rank in a kernel is one more numpy implementation for numba to compile.
    # No two array arguments may share memory (NoAliasCompiler: without it the max loop over
    # channels no longer vectorises).
    H, W, C = act.shape
    Ho, Wo = out.shape[0], out.shape[1]
    for oy in range(Ho):
        y0 = max(oy * stride - pad, 0)
        y1 = min(oy * stride - pad + kh, H)
        for ox in range(Wo):
            x0 = max(ox * stride - pad, 0)
            x1 = min(ox * stride - pad + kw, W)
            # padded cells are skipped (-inf semantics); every window holds
            # at least one real pixel because pad < kernel.
            for c in range(C):
                m[c] = -32768
            for y in range(y0, y1):
                for x in range(x0, x1):
                    for c in range(C):
                        if act[y, x, c] > m[c]:
                            m[c] = act[y, x, c]
            # NOTE: element loops, not ``out[oy, ox, :] = m`` or ``m[:] = -32768``: numba's
            # array-to-slice assignment alone made this kernel's compile 2 s (0.25 s without it).
            for c in range(C):
                out[oy, ox, c] = m[c]


@njit(cache=True)
def _avgpool_kernel(act, kh, kw, stride, pad, Ho, Wo):
    H, W, C = act.shape
    out = np.empty((Ho, Wo, C), dtype=np.int16)
    s = np.empty(C, dtype=np.int64)
    for oy in range(Ho):
        y0 = max(oy * stride - pad, 0)
        y1 = min(oy * stride - pad + kh, H)
        for ox in range(Wo):
            x0 = max(ox * stride - pad, 0)
            x1 = min(ox * stride - pad + kw, W)
            n = (y1 - y0) * (x1 - x0)  # count_include_pad=False
            s[:] = 0
            for y in range(y0, y1):
                for x in range(x0, x1):
                    for c in range(C):
                        s[c] += act[y, x, c]
            for c in range(C):
                # round half up: floor(sum / n + 1/2); // is floor division.
                q = (2 * s[c] + n) // (2 * n)
                if q > 32767:
                    q = 32767
                elif q < -32768:
                    q = -32768
                out[oy, ox, c] = q
    return out


@njit(cache=True)
def _add_kernel(a, b, activation):
    fa = a.ravel()
    fb = b.ravel()
    out = np.empty(fa.shape[0], dtype=np.int16)
    for i in range(fa.shape[0]):
        s = np.int32(fa[i]) + np.int32(fb[i])
        if s > 32767:
            s = 32767
        elif s < -32768:
            s = -32768
        if activation == 1:
            if s < 0:
                s = 0
        elif activation == 2:
            if s < 0:
                s = 0
            elif s > 1536:
                s = 1536
        out[i] = s
    return out.reshape(a.shape)


def _stream_positions(sm: np.ndarray, H: int, n_row: int) -> np.ndarray:
    """The flat input position of every non-zero of a row-aligned stream, in stream order, read
    from its SM words (bit ``b`` of a row's word ``j`` is its value ``16 j + b``)."""
    # NOTE: numpy, not a numba kernel: this is the walk of one small fc input, and a kernel was
    # 0.45 s of a first run's compile.
    bits = np.unpackbits(sm.astype("<u2", copy=False).view(np.uint8), bitorder="little")
    return np.flatnonzero(bits.reshape(H, -1)[:, :n_row])


@njit(cache=True, nogil=True)
def _fc_acc_rows(nz, pos, w2, lo, hi, acc):
    # Outputs lo .. hi - 1: each gathers its row of w2 (the weights as stored, (C_out, N): no
    # transposed copy, fc6 of VGG16 is 200 MB) at the non-zeros' positions.
    # NOTE: 4 outputs per pass over the non-zeros: each non-zero and its position are loaded once
    # for 4 gathers, which run as 4 independent sums (3x faster on an fc6-sized layer with half
    # of its inputs non-zero, 63 -> 21 ms on one thread).
    nnz = nz.shape[0]
    co = lo
    while co + 4 <= hi:
        w0 = w2[co]
        w1 = w2[co + 1]
        w2_ = w2[co + 2]
        w3 = w2[co + 3]
        s0 = np.int64(0)
        s1 = np.int64(0)
        s2 = np.int64(0)
        s3 = np.int64(0)
        for t in range(nnz):
            v = np.int64(nz[t])
            p = pos[t]
            s0 += v * w0[p]
            s1 += v * w1[p]
            s2 += v * w2_[p]
            s3 += v * w3[p]
        acc[co] = s0
        acc[co + 1] = s1
        acc[co + 2] = s2
        acc[co + 3] = s3
        co += 4
    for c in range(co, hi):
        wr = w2[c]
        s = np.int64(0)
        for t in range(nnz):
            s += np.int64(nz[t]) * wr[pos[t]]
        acc[c] = s


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _check_int(name: str, value, lo: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise WorkloadError(f"{name} must be an integer >= {lo}, not {value!r}")
    return int(value)


def _as_weights(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights)
    if weights.ndim != 4:
        raise TraceError(
            f"weights must have shape (C_out, kh, kw, C_in / groups), not {weights.shape!r}"
        )
    if weights.dtype != np.int16:
        raise TraceError(f"weights must be int16 (Q8.8), not {weights.dtype!r}")
    return weights


def _as_bias(bias, cout: int) -> np.ndarray:
    if bias is None:
        return np.zeros(cout, dtype=np.int16)
    bias = np.asarray(bias)
    if bias.shape != (cout,) or bias.dtype != np.int16:
        raise TraceError(
            f"bias must be an int16 array of shape ({cout},), not {bias.dtype!r} {bias.shape!r}"
        )
    return np.ascontiguousarray(bias)


def _conv_geometry(shape, weights, padding, groups):
    H, W, C = shape
    cout, kh, kw, cin_g = weights.shape
    if C % groups or cout % groups:
        raise WorkloadError(
            f"groups={groups!r} must divide C_in={C!r} and C_out={cout!r}"
        )
    if cin_g != C // groups:
        raise TraceError(
            f"weights have {cin_g!r} input channels per group, "
            f"expected C_in / groups = {C // groups!r}"
        )
    Ho1 = H + 2 * padding - kh + 1
    Wo1 = W + 2 * padding - kw + 1
    if Ho1 < 1 or Wo1 < 1:
        raise WorkloadError(
            f"kernel {kh}x{kw} with padding {padding!r} does not fit the {H}x{W} input"
        )
    return Ho1, Wo1


def _pool_geometry(shape, k, stride, padding):
    if isinstance(k, (tuple, list)):
        if len(k) != 2:
            raise WorkloadError(f"pooling kernel must be an int or (kh, kw), not {k!r}")
        kh, kw = (_check_int("pooling kernel", v, 1) for v in k)
    else:
        kh = kw = _check_int("pooling kernel", k, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    if padding >= min(kh, kw):
        raise WorkloadError(
            f"pooling padding must be smaller than the kernel {kh}x{kw}, not {padding!r}"
        )
    H, W, _ = shape
    if kh > H + 2 * padding or kw > W + 2 * padding:
        raise WorkloadError(
            f"pooling kernel {kh}x{kw} with padding {padding!r} does not fit the {H}x{W} input"
        )
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    return kh, kw, stride, padding, Ho, Wo


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def conv_accumulate(
    sm: np.ndarray,
    nz: np.ndarray,
    row_sm_ptr: np.ndarray,
    row_nz_ptr: np.ndarray,
    H: int,
    W: int,
    C: int,
    weights: np.ndarray,
    groups: int = 1,
    padding: int = 0,
    pairs: PairTable | None = None,
    *,
    compact: bool = False,
) -> np.ndarray:
    """Stride-1 convolution accumulators of a compressed input, without bias.

    Only the non-zeros of the stream are touched. Input channel ``c`` belongs
    to group ``c // (C / groups)`` and feeds that group's ``C_out / groups``
    output channels.

    Parameters
    ----------
    sm, nz, row_sm_ptr, row_nz_ptr : the stream of an ``(H, W, C)`` map, as
        returned by :func:`encode`. It is not re-validated.
    H, W, C : shape of the uncompressed input.
    weights : int16 ``(C_out, kh, kw, C / groups)``.
    groups : convolution groups.
    padding : symmetric zero padding, pixels.
    pairs : optional ``pair_table(weights)``, made ahead (``groups == 1`` only): the layout of
        the weights the kernel reads is then not made again.
    compact : return int32 accumulators when the kernel has proved that every sum fits
        (its int32 arithmetic, docs/numerics.md §8.1): half the memory of int64 for the passes
        that follow (bias calibration, requantization).

    Returns
    -------
    int64 (or, ``compact``, possibly int32) array ``(H + 2p - kh + 1, W + 2p - kw + 1, C_out)``:
    sums of products, in units of 2**-16 (Q16.16).
    """
    sm, nz, row_sm_ptr, row_nz_ptr = as_stream(sm, nz, row_sm_ptr, row_nz_ptr)
    H, W, C = _check_int("H", H, 1), _check_int("W", W, 1), _check_int("C", C, 1)
    if row_sm_ptr.shape[0] != H + 1:
        raise TraceError(
            f"row pointers must have length H + 1 = {H + 1!r}, not {row_sm_ptr.shape[0]!r}"
        )
    # O(1) consistency checks that keep the unchecked kernel inside its
    # arrays; check_stream() does the full O(n) validation.
    if sm.shape[0] != H * sm_words_per_row(W, C) or row_sm_ptr[H] != sm.shape[0]:
        raise TraceError(
            f"stream has {sm.shape[0]!r} SM words, expected H * ceil(W * C / 16) = "
            f"{H * sm_words_per_row(W, C)!r} for a {(H, W, C)!r} map"
        )
    if row_nz_ptr[H] != nz.shape[0] or row_sm_ptr[0] != 0 or row_nz_ptr[0] != 0:
        raise TraceError("row pointers do not span the sm and nz arrays")
    weights = _as_weights(weights)
    groups = _check_int("groups", groups, 1)
    padding = _check_int("padding", padding, 0)
    Ho1, Wo1 = _conv_geometry((H, W, C), weights, padding, groups)
    cout, kh, kw, _ = weights.shape
    if pairs is not None and (not isinstance(pairs, PairTable) or groups != 1 or pairs.shape != weights.shape):
        raise TraceError(f"pairs must be the pair_table() of these {weights.shape!r} weights with groups=1, "
                         f"not {type(pairs).__name__} for {getattr(pairs, 'shape', None)!r} with groups={groups!r}")
    if groups == 1:
        # channel blocks of about _WEIGHT_BLOCK_BYTES of weights per kernel row, multiples of 8
        nb = -(-C // max(8, _WEIGHT_BLOCK_BYTES // (kw * cout * 8)))
        per_block = -(-C // nb)
        cb = -(-per_block // 8) * 8
        nb = -(-C // cb)
        ps = np.empty(nz.shape[0], dtype=np.int32)
        pv = np.empty(nz.shape[0], dtype=np.int32)
        sp = np.empty((H, W * nb + 1), dtype=np.int64)
        # the table (unless made ahead) in two halves of the outputs, and the walk in row ranges of
        # about equal non-zeros, on the threads
        t = np.empty((kh, kw, (C + 1) // 2, cout, 2), dtype=np.int16) if pairs is None else pairs.table
        cuts = np.searchsorted(row_nz_ptr, np.linspace(0, row_nz_ptr[H], _WALK_PARTS + 1)[1:-1])
        edges = [0, *np.minimum(cuts, H).tolist(), H]
        half = cout // 2
        tables = 2 if pairs is None else 0
        made: list = [None] * (tables + _WALK_PARTS)

        def prepare(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                if i < tables:
                    made[i] = _pair_weight_table(weights, t, half * i, cout if i else half)
                else:
                    made[i] = _stream_pairs(sm, nz, row_sm_ptr, row_nz_ptr, W, C, cb, edges[i - tables],
                                            edges[i - tables + 1], ps, pv, sp)

        small = nz.shape[0] * kh * kw * cout < _PARALLEL_MIN_PRODUCTS
        run_chunks(prepare, len(made), serial=small)
        l1_max = max(made[:2]) if pairs is None else pairs.l1_max
        # NOTE: read-only, as a table kept in the tensor cache is: numba compiles the kernel once
        # per argument type, and a writable table would be one more compile.
        t = t.view()
        t.flags.writeable = False
        wt = _exact_weight_table(t, l1_max, max(int(v) for v in made[tables:]), kh * kw * C)
    if groups == 1 and wt is not None:
        scratch = np.int32 if wt.dtype == np.int32 else np.float64
        out = np.empty((Ho1, Wo1, cout), dtype=np.int32 if scratch is np.int32 else np.int64)

        def rows(lo: int, hi: int) -> None:
            a_row = np.empty((Wo1, cout), dtype=scratch)
            _conv_acc_pairs(ps, pv, sp, H, W, nb, wt, padding, lo, hi, a_row, out)

        # NOTE: parallel over output rows on threads (each row written by one call), see run_chunks,
        # split at equal work: an output row costs kw multiply-adds per non-zero of its kh input
        # rows, and two passes over its accumulators.
        nnz_row = np.zeros(H + 2 * padding, dtype=np.int64)
        nnz_row[padding:padding + H] = np.diff(row_nz_ptr)
        taps = np.cumsum(np.concatenate(([0], nnz_row)))
        cost = kw * (taps[kh:kh + Ho1] - taps[:Ho1]) + 2 * Wo1
        run_chunks(rows, Ho1, serial=small, cost=cost)
        return out if compact else out.astype(np.int64, copy=False)
    # NOTE: (C_out, kh, kw, Cin_g) -> (kh, kw, Cin_g, C_out) so that the
    # kernel's innermost loop over output channels reads contiguous weights.
    wt = np.ascontiguousarray(weights.transpose(1, 2, 3, 0))
    return _conv_acc_kernel(
        sm, nz, row_sm_ptr, row_nz_ptr, H, W, C, wt, groups, padding, Ho1, Wo1
    )


def _exact_weight_table(t: np.ndarray, l1_max: int, v_max: int, terms: int) -> np.ndarray | None:
    """The weight table of :func:`_conv_acc_pairs` in an exact arithmetic, or None.

    ``t``: int16 ``(kh, kw, pairs, C_out, 2)`` from :func:`_pair_weight_table`, whose largest sum
    of ``|w|`` over one output is ``l1_max``. Returned as int32 ``(kh, kw, pairs, C_out)`` lanes
    (int32 sums) when no partial sum can reach 2**31: every product is ``v w`` with ``|v| <=
    v_max``, the largest magnitude of the input's non-zeros, so a partial sum of an output is at
    most ``v_max`` times ``l1_max``. Else as float32 (float64 sums), exact below 2**23 ``terms``
    per output (docs/numerics.md, section 8.1); else None.
    """
    if v_max * int(l1_max) < 2**31:
        # lanes with channel 2p in the low 16 bits, as _stream_pairs packs the values
        if sys.byteorder == "little":
            return t.view(np.int32).reshape(t.shape[:4])
        return (t[..., 0].astype(np.int32) & 0xFFFF) | (t[..., 1].astype(np.int32) << 16)
    if terms >= _FLOAT_EXACT_TERMS:
        return None
    return t.astype(np.float32)


def requantize(acc: np.ndarray, bias: np.ndarray | None, activation: int | str | None) -> np.ndarray:
    """Q8.8 output of accumulators: ``act(sat16((acc + (bias << 8)) >> 8))``.

    Parameters
    ----------
    acc : int64 (or int32) array ``(..., C_out)`` of sums of products (Q16.16).
    bias : int16 ``(C_out,)`` in Q8.8, or ``None`` for no bias.
    activation : 0/None, 1/"relu" or 2/"relu6".

    Returns
    -------
    int16 array of the same shape as ``acc``.
    """
    acc = np.asarray(acc)
    if acc.dtype not in (np.int64, np.int32) or acc.ndim < 1:
        raise TraceError(f"accumulators must be an int64 or int32 array, not {acc.dtype!r} {acc.shape!r}")
    cout = acc.shape[-1]
    bias = _as_bias(bias, cout)
    code = activation_code(activation)
    acc2 = acc.reshape(-1, cout)
    out = np.empty(acc2.shape, dtype=np.int16)
    b256 = bias.astype(np.int64) << 8
    lo, hi = (-32768, 32767) if code == ACT_NONE else (0, 32767 if code == ACT_RELU else RELU6_MAX)
    rows = max(1, _REQUANTIZE_BLOCK_ELEMENTS // cout)

    def part(r0: int, r1: int) -> None:
        # NOTE: numpy in blocks of rows that stay in cache through the passes, on the threads (numpy
        # releases the GIL). A numba kernel took half the CPU time (0.01 s over VGG16) but 0.2 s
        # of compile on a first run, whose compiles keep both cores busy.
        # >> on a signed int64 is an arithmetic shift, i.e. floor(x / 256); saturating to int16
        # and then applying ReLU (ReLU6) is one clip.
        buf = np.empty((min(rows, r1 - r0), cout), dtype=np.int64)
        for i in range(r0, r1, rows):
            q = buf[:min(r1, i + rows) - i]
            np.add(acc2[i:i + q.shape[0]], b256, out=q)
            np.right_shift(q, 8, out=q)
            np.clip(q, lo, hi, out=q)
            out[i:i + q.shape[0]] = q
    run_chunks(part, acc2.shape[0], serial=acc2.size < _PARALLEL_MIN_REQUANTIZE)
    return out.reshape(acc.shape)


def conv2d_accumulators(
    act: np.ndarray, weights: np.ndarray, stride: int = 1, padding: int = 0, groups: int = 1,
    pairs: PairTable | None = None, *, compact: bool = False,
) -> np.ndarray:
    """Accumulators (no bias) of a strided convolution: stride-1 result decimated ``[::s, ::s]``.

    ``pairs``, ``compact``: see :func:`conv_accumulate`.
    Returns int64 (``compact``: possibly int32) ``(Ho, Wo, C_out)`` with ``Ho = (H + 2p - kh) // s + 1``.
    """
    act = as_activation(act)
    stride = _check_int("stride", stride, 1)
    H, W, C = act.shape
    sm, nz, rsp, rnp = encode(act)
    acc = conv_accumulate(sm, nz, rsp, rnp, H, W, C, weights, groups, padding, pairs, compact=compact)
    if stride == 1:
        return acc
    return np.ascontiguousarray(acc[::stride, ::stride])


def conv2d(
    act: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    *,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    activation: int | str | None = ACT_NONE,
) -> np.ndarray:
    """Q8.8 convolution as NullHop computes it: encode, accumulate non-zeros, requantize, decimate.

    Parameters
    ----------
    act : int16 ``(H, W, C)``.
    weights : int16 ``(C_out, kh, kw, C / groups)``.
    bias : int16 ``(C_out,)`` or ``None``.
    stride, padding, groups : as in the usual convolution; padding in pixels.
    activation : 0/None, 1/"relu" or 2/"relu6".

    Returns
    -------
    int16 ``(Ho, Wo, C_out)``, ``Ho = (H + 2p - kh) // stride + 1``.
    """
    weights = _as_weights(weights)
    bias = _as_bias(bias, weights.shape[0])
    code = activation_code(activation)
    acc = conv2d_accumulators(act, weights, stride, padding, groups)
    return requantize(acc, bias, code)


def maxpool(act: np.ndarray, k, stride: int = 2, padding: int = 0) -> np.ndarray:
    """Max pooling; padded cells are ignored (-inf semantics).

    ``k`` is an int or ``(kh, kw)``; ``padding`` must be smaller than the
    kernel so every window holds a real pixel. Output ``(Ho, Wo, C)`` int16.
    """
    act = as_activation(act)
    kh, kw, stride, padding, Ho, Wo = _pool_geometry(act.shape, k, stride, padding)
    out = np.empty((Ho, Wo, act.shape[2]), dtype=np.int16)
    _maxpool_kernel(act, kh, kw, stride, padding, out, np.empty(act.shape[2], dtype=np.int16))
    return out


def avgpool(act: np.ndarray, k, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Average pooling, count_include_pad=False, rounded half up: ``floor((2 sum + n) / (2 n))``.

    ``k`` is an int or ``(kh, kw)``; ``stride`` defaults to the kernel height.
    Output ``(Ho, Wo, C)`` int16.
    """
    act = as_activation(act)
    if stride is None:
        stride = k[0] if isinstance(k, (tuple, list)) else k
    kh, kw, stride, padding, Ho, Wo = _pool_geometry(act.shape, k, stride, padding)
    return _avgpool_kernel(act, kh, kw, stride, padding, Ho, Wo)


def add(a: np.ndarray, b: np.ndarray, activation: int | str | None = ACT_NONE) -> np.ndarray:
    """Element-wise Q8.8 add: int32 sum, saturate to int16, then the activation."""
    a = as_activation(a)
    b = as_activation(b)
    if a.shape != b.shape:
        raise TraceError(f"add operands differ in shape: {a.shape!r} and {b.shape!r}")
    return _add_kernel(a, b, activation_code(activation))


def fc(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    activation: int | str | None = ACT_NONE,
) -> np.ndarray:
    """Fully connected layer over ``x`` flattened in HWC order (on the host, docs/sources.md §N8).

    Walks the compressed stream of ``x`` so only non-zero inputs are
    multiplied, then requantizes exactly as :func:`conv2d`.

    Parameters
    ----------
    x : int16 ``(H, W, C)``.
    weights : int16 ``(C_out, 1, 1, H * W * C)`` (any ``(C_out, a, b, c)``
        with ``a * b * c == H * W * C`` is flattened the same way).
    bias : int16 ``(C_out,)`` or ``None``.
    activation : 0/None, 1/"relu" or 2/"relu6".

    Returns
    -------
    int16 ``(1, 1, C_out)``.
    """
    acc = fc_accumulators(x, weights)
    cout = acc.shape[0]
    bias = _as_bias(bias, cout)
    code = activation_code(activation)
    return requantize(acc.reshape(1, 1, cout), bias, code)


def fc_accumulators(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accumulators (no bias) of a fully connected layer over ``x`` flattened in HWC order.

    Only the non-zeros of ``x``'s compressed stream are multiplied. ``weights`` is int16
    ``(C_out, a, b, c)`` with ``a * b * c == x.size``. Returns int64 ``(C_out,)`` (Q16.16).
    """
    x = as_activation(x)
    weights = _as_weights(weights)
    cout = weights.shape[0]
    n = x.size
    if weights[0].size != n:
        raise TraceError(
            f"fc weights {weights.shape!r} do not match the {n!r} inputs of {x.shape!r}"
        )
    H, W, C = x.shape
    sm, nz, rsp, rnp = encode(x)
    pos = _stream_positions(sm, H, W * C)
    w2 = weights.reshape(cout, n)
    acc = np.empty(cout, dtype=np.int64)
    # NOTE: outputs split over the threads (run_chunks): the gathers are memory-bound on the weights.
    run_chunks(lambda lo, hi: _fc_acc_rows(nz, pos, w2, lo, hi, acc), cout,
               serial=nz.shape[0] * cout < _PARALLEL_MIN_PRODUCTS)
    return acc
