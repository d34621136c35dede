"""Plain-numpy reference of the Q8.8 layer math, independent of the compressed-stream kernels.

This module deliberately shares no code with :mod:`simulator._functional` or
:mod:`simulator._format` and uses no numba: it works on dense, zero-padded
tensors and writes the Q8.8 rules again with numpy operations, so that a
bug in one implementation shows up as a mismatch against the other.

Conventions are the same as :mod:`simulator._functional`: int16 ``(H, W, C)``
activations, int16 ``(C_out, kh, kw, C_in / groups)`` weights, int16
``(C_out,)`` biases, Q8.8 throughout; activation 0/None, 1/"relu",
2/"relu6".
"""
from __future__ import annotations

import threading

import numpy as np

from workloads import TraceError, WorkloadError, run_blas_chunks, run_chunks

__all__ = [
    "blas_conv2d_accumulators",
    "ref_conv2d_accumulators",
    "ref_conv2d",
    "ref_maxpool",
    "ref_avgpool",
    "ref_add",
    "ref_fc",
]

_INT16_MIN = -(2**15)
_INT16_MAX = 2**15 - 1
_RELU6_MAX = 6 * 256  # 6.0 in Q8.8
#: float64 elements per block of fc weight rows (2 MiB).
_FC_BLOCK_ELEMENTS = 1 << 18
#: Multiply-adds below which a reference product runs on one thread (about 0.1 ms of BLAS work:
#: less than sharing it costs).
_PARALLEL_MIN_PRODUCTS = 1 << 22
#: Elements below which a copy of the BLAS reference runs on one thread.
_PARALLEL_MIN_COPY = 1 << 20
#: float64 elements of the stacked input rows one band of the convolution's GEMMs reads (2 MiB).
_BAND_ELEMENTS = 1 << 18
#: Fewest GEMM rows per band (each GEMM call packs all of its weights again).
_MIN_BAND_ROWS = 512
#: Accumulators requantized per block (2 MiB, in the core's cache through its passes; smaller
#: blocks spend more on the calls than they gain).
_REQUANTIZE_BLOCK_ELEMENTS = 1 << 18
#: Largest float64 work buffer (elements, 128 MiB) the convolution keeps between calls.
_SCRATCH_MAX_ELEMENTS = 1 << 24
_scratch = threading.local()


def _scratch_array(slot: str, n: int) -> np.ndarray:
    """Uninitialised float64 ``(n,)`` work array, the same memory on every call of this thread.

    NOTE: a fresh array of tens of MiB costs its page faults (and zeroing) again on every call,
    more than the copy into it; each slot keeps its largest array up to ``_SCRATCH_MAX_ELEMENTS``.
    """
    if n > _SCRATCH_MAX_ELEMENTS:
        return np.empty(n, dtype=np.float64)
    bufs = _scratch.__dict__.setdefault("bufs", {})
    buf = bufs.get(slot)
    if buf is None or buf.size < n:
        buf = bufs[slot] = np.empty(n, dtype=np.float64)
    return buf[:n]


def release_work_arrays() -> None:
    """Free the calling thread's reference work arrays (a network run calls it when it ends)."""
    _scratch.__dict__.pop("bufs", None)


def _act_code(activation) -> int:
    table = {None: 0, 0: 0, "none": 0, 1: 1, "relu": 1, 2: 2, "relu6": 2}
    if isinstance(activation, bool) or activation not in table:
        raise WorkloadError(
            f"activation must be 0, 1, 2, None, 'relu' or 'relu6', not {activation!r}"
        )
    return table[activation]


def _output_bounds(activation) -> tuple[int, int]:
    """The int16 saturation range narrowed by the activation: clipping to int16 and then applying
    ReLU (ReLU6) is one clip to [0, 32767] ([0, 6.0])."""
    return ((_INT16_MIN, _INT16_MAX), (0, _INT16_MAX), (0, _RELU6_MAX))[_act_code(activation)]


def _check_exact(n_terms: int) -> None:
    if n_terms >= 2**23:
        raise WorkloadError(
            f"{n_terms!r} products per output may not sum exactly in float64 (limit 2**23)"
        )


def _kernel_hw(k) -> tuple[int, int]:
    if isinstance(k, (tuple, list)):
        kh, kw = k
        return int(kh), int(kw)
    return int(k), int(k)


def _check_act(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.dtype != np.int16:
        raise TraceError(f"activations must be int16 (H, W, C), not {x.dtype!r} {x.shape!r}")
    return x


def _conv_geometry(x: np.ndarray, w: np.ndarray, padding: int, groups: int):
    H, W, C = x.shape
    cout, kh, kw, cin_g = w.shape
    if C % groups or cout % groups or cin_g * groups != C:
        raise WorkloadError(
            f"groups={groups!r} does not fit C_in={C!r}, C_out={cout!r}, weights {w.shape!r}"
        )
    Ho1 = H + 2 * padding - kh + 1
    Wo1 = W + 2 * padding - kw + 1
    if Ho1 < 1 or Wo1 < 1:
        raise WorkloadError(f"kernel {kh}x{kw} with padding {padding!r} does not fit {H}x{W}")
    return Ho1, Wo1


def ref_conv2d_accumulators(
    act: np.ndarray, weights: np.ndarray, stride: int = 1, padding: int = 0, groups: int = 1
) -> np.ndarray:
    """Dense int64 accumulators (no bias) of a strided, grouped, zero-padded convolution.

    Plain integer arithmetic (int64 products and sums, no BLAS): the definition that
    :func:`blas_conv2d_accumulators` is tested against. Returns int64 ``(Ho, Wo, C_out)``,
    ``Ho = (H + 2p - kh) // stride + 1``.
    """
    x = _check_act(act)
    w = np.asarray(weights)
    H, W, C = x.shape
    cout, kh, kw, cin_g = w.shape
    Ho1, Wo1 = _conv_geometry(x, w, padding, groups)
    cout_g = cout // groups
    xp = np.zeros((H + 2 * padding, W + 2 * padding, C), dtype=np.int64)
    xp[padding:padding + H, padding:padding + W] = x
    wi = w.astype(np.int64)
    acc = np.zeros((Ho1, Wo1, cout), dtype=np.int64)
    for g in range(groups):
        ci = slice(g * cin_g, (g + 1) * cin_g)
        co = slice(g * cout_g, (g + 1) * cout_g)
        for ky in range(kh):
            for kx in range(kw):
                acc[:, :, co] += xp[ky:ky + Ho1, kx:kx + Wo1, ci] @ wi[co, ky, kx, :].T
    return acc[::stride, ::stride]


#: Below this many output rows per GEMM, the column taps are summed instead of phased (a GEMM
#: with few rows runs below BLAS speed).
_MIN_PHASE_ROWS = 2048


def _fill_stacked(x: np.ndarray, kh: int, stride: int, padding: int, Ho: int, i0: int, i1: int,
                  dst: np.ndarray) -> None:
    """Stacked rows ``i0 .. i1 - 1`` into ``dst``, float64 ``(i1 - i0, Wq, kh, C)``: pixel ``(i, x)``
    holds the channels of the padded input rows ``stride * i + ky``, ``ky < kh``, at column ``x``.
    Rows ``i >= Ho`` (read only by discarded outputs) are zero."""
    H, W, C = x.shape
    hi = min(i1, Ho)
    dst[max(0, hi - i0):] = 0
    if hi <= i0:
        return
    part = dst[:hi - i0]
    part[:, :padding] = 0                # the padding columns (and those past the padded width)
    part[:, padding + W:] = 0
    for ky in range(kh):
        r0 = max(0, -(-(padding - ky) // stride))                    # first i with stride*i + ky - padding >= 0
        r1 = max(r0, min(Ho, (H - 1 - ky + padding) // stride + 1))  # past the last i inside the input
        a, b = max(i0, r0), min(hi, r1)
        part[:max(0, min(hi, r0) - i0), padding:padding + W, ky] = 0  # the padding rows
        part[max(0, max(i0, r1) - i0):, padding:padding + W, ky] = 0
        if b > a:
            y0 = stride * a + ky - padding
            part[a - i0:b - i0, padding:padding + W, ky, :] = x[y0:y0 + stride * (b - a - 1) + 1:stride]


def blas_conv2d_accumulators(
    act: np.ndarray, weights: np.ndarray, stride: int = 1, padding: int = 0, groups: int = 1
) -> np.ndarray:
    """The accumulators of :func:`ref_conv2d_accumulators`, computed with float64 BLAS.

    Exact: every product is an integer with ``|x * w| <= 2**30``, so a sum of n
    products has magnitude ``<= n * 2**30``, below 2**53 for any ``n < 2**23``
    (NullHop layers have ``n <= 7 * 7 * 4096 < 2**18``, sums below 2**48,
    docs/numerics.md). Every partial sum, in whatever order BLAS adds and with or
    without FMA, is then an integer exactly representable in float64: no rounding
    happens and the cast to int64 is exact. Larger fan-ins raise ``WorkloadError``.

    Returns int64 ``(Ho, Wo, C_out)``.
    """
    return _blas_conv_float(act, weights, stride, padding, groups).astype(np.int64)


def _blas_conv_float(act: np.ndarray, weights: np.ndarray, stride: int, padding: int, groups: int) -> np.ndarray:
    """:func:`blas_conv2d_accumulators` before the cast: float64 ``(Ho, Wo, C_out)`` (a view) of exact
    integers. For ``groups == 1`` a view of scratch memory: valid until the next call in this thread."""
    x = _check_act(act)
    w = np.asarray(weights)
    H, W, C = x.shape
    cout, kh, kw, cin_g = w.shape
    Ho1, Wo1 = _conv_geometry(x, w, padding, groups)
    _check_exact(kh * kw * cin_g)
    if groups > 1:
        return _blas_grouped(x, w, stride, padding, groups)
    s = stride
    Ho, Wo = (Ho1 - 1) // s + 1, (Wo1 - 1) // s + 1
    # NOTE: the input is copied into "stacked rows": pixel (i, x) holds the kh padded input rows
    # s*i + ky at column x, so the receptive field of output (i, j) is the CONTIGUOUS run of kw
    # pixels starting at pixel s*j of row i (kw * kh * C values). Outputs are computed on every
    # s-th column of the padded width ("wide" rows, the columns past Wo discarded), so output slot
    # u = i * Ws + j starts at element s * u * KC of the flat stacked rows: consecutive slots
    # overlap. Slots taken P = ceil(kw / s) apart do not, so each phase of slots is a plain
    # strided view, one GEMM with K = kh * kw * C and no copies (written straight into its rows of
    # the result). For a small output (few GEMM rows) the kw column taps are summed instead,
    # K = kh * C each. The weights are (C_out, K) rows (a cheap copy of the int16 layout) and enter
    # BLAS transposed. The stacked rows are built band by band (see rows() below).
    Ws = -(-(W + 2 * padding) // s)
    KC = kh * C
    L = Ws * s * KC                             # elements of one stacked row
    U = Ho * Ws
    P = -(-kw // s)
    if P > 1 and U // P < _MIN_PHASE_ROWS:
        P = 1
    nq = -(-U // P)
    step = s * P * KC
    phased = P > 1 or kw <= s
    K = kw * KC if phased else KC               # columns of one GEMM
    offsets = [s * ph * KC for ph in range(P)] if phased else [kx * KC for kx in range(kw)]
    band = max(_MIN_BAND_ROWS, _BAND_ELEMENTS // step)   # GEMM rows per band
    wf = _scratch_array("weights", cout * kw * KC).reshape(cout, kw, kh, C)
    # (the int16 -> float64 conversion in ranges of outputs on the threads)
    run_chunks(lambda lo, hi: wf[lo:hi].__setitem__(Ellipsis, w[lo:hi].transpose(0, 2, 1, 3)), cout,
               serial=wf.size < _PARALLEL_MIN_COPY)
    acc = _scratch_array("acc", nq * P * cout).reshape(nq, P, cout)
    wt = wf.reshape(cout, kw * KC).T if phased else None
    wk = wf.reshape(cout, kw, KC)
    part = None if phased else np.empty((nq, cout), dtype=np.float64)

    def rows(lo: int, hi: int) -> None:
        # NOTE: band by band: the stacked rows a band of GEMM rows reads are built into a buffer
        # of about _BAND_ELEMENTS, which stays in the core's cache for its GEMMs (the whole
        # layer's stacked rows are up to 77 MB, written and read back from memory).
        buf = np.empty(2 * L + band * step + offsets[-1] + K, dtype=np.float64)
        for b0 in range(lo, hi, band):
            b1 = min(hi, b0 + band)
            e0 = b0 * step
            i0 = e0 // L
            i1 = -(-((b1 - 1) * step + offsets[-1] + K) // L)
            _fill_stacked(x, kh, s, padding, Ho, i0, i1, buf[:(i1 - i0) * L].reshape(i1 - i0, Ws * s, kh, C))
            base = e0 - i0 * L
            for t, off in enumerate(offsets):
                a = buf[base + off:base + off + (b1 - b0) * step].reshape(b1 - b0, step)[:, :K]
                if phased:
                    np.matmul(a, wt, out=acc[b0:b1, t, :])
                elif t == 0:
                    np.matmul(a, wk[:, 0].T, out=acc[b0:b1, 0, :])
                else:
                    acc[b0:b1, 0, :] += np.matmul(a, wk[:, t].T, out=part[b0:b1])
    # NOTE: each GEMM split by rows over our threads (run_blas_chunks), see there.
    run_blas_chunks(rows, nq, serial=nq * P * K * cout < _PARALLEL_MIN_PRODUCTS)
    return acc.reshape(-1, cout)[:U].reshape(Ho, Ws, cout)[:, :Wo]


def _blas_grouped(x: np.ndarray, w: np.ndarray, stride: int, padding: int, groups: int) -> np.ndarray:
    """:func:`blas_conv2d_accumulators` for ``groups > 1``: one GEMM per group and kernel tap
    (depthwise: one multiply-add over all channels per tap)."""
    H, W, C = x.shape
    cout, kh, kw, cin_g = w.shape
    Ho1, Wo1 = _conv_geometry(x, w, padding, groups)
    cout_g = cout // groups
    Hp, Wp = H + 2 * padding, W + 2 * padding
    xp = np.zeros((Hp + 1, Wp, C), dtype=np.float64)
    xp[padding:padding + H, padding:padding + W] = x
    wf = w.astype(np.float64)
    if cin_g == 1:
        # Depthwise (one input channel per group): every tap is one broadcast multiply-add over
        # all channels of the strided tap view (only the outputs kept are computed).
        Ho, Wo = (Ho1 - 1) // stride + 1, (Wo1 - 1) // stride + 1
        xc = xp if cout_g == 1 else xp[:, :, np.repeat(np.arange(C), cout_g)]
        acc3 = np.empty((Ho, Wo, cout), dtype=np.float64)
        part3 = np.empty((Ho, Wo, cout), dtype=np.float64)
        for ky in range(kh):
            for kx in range(kw):
                tap = xc[ky:ky + stride * (Ho - 1) + 1:stride, kx:kx + stride * (Wo - 1) + 1:stride]
                if ky == kx == 0:
                    np.multiply(tap, wf[:, 0, 0, 0], out=acc3)
                else:
                    acc3 += np.multiply(tap, wf[:, ky, kx, 0], out=part3)
        return acc3
    # NOTE: outputs are computed on the padded width Wp ("wide" rows, the last kw - 1 columns
    # of each discarded), so that every kernel tap is ONE contiguous GEMM over rows of the
    # flattened padded input: tap (ky, kx) of output p = oy * Wp + ox reads input p + ky * Wp + kx.
    # One spare row keeps the last tap's rows inside the array.
    flat = xp.reshape(-1, C)
    rows = Ho1 * Wp
    acc = np.zeros((rows, cout), dtype=np.float64)
    part = np.empty((rows, cout_g), dtype=np.float64)
    for g in range(groups):
        ci = slice(g * cin_g, (g + 1) * cin_g)
        co = slice(g * cout_g, (g + 1) * cout_g)
        for ky in range(kh):
            for kx in range(kw):
                off = ky * Wp + kx
                np.matmul(flat[off:off + rows, ci], wf[co, ky, kx, :].T, out=part)
                acc[:, co] += part
    return acc.reshape(Ho1, Wp, cout)[:Ho1:stride, :Wo1:stride]


def _requantize(acc: np.ndarray, bias, activation) -> np.ndarray:
    """int16 output of int64 accumulators, or of float64 ones holding integers below 2**53 (exact:
    adding the aligned bias, dividing by 256 and flooring are all exact on such values). Float64
    accumulators are overwritten (the callers' own work arrays)."""
    cout = acc.shape[-1]
    b = np.zeros(cout, dtype=acc.dtype) if bias is None else np.asarray(bias).astype(acc.dtype)
    v_lo, v_hi = _output_bounds(activation)
    # Q16.16 sum + bias aligned to Q16.16, floor-divided back to Q8.8.
    if acc.dtype.kind != "f":
        q = acc + b * 256
        np.floor_divide(q, 256, out=q)
        np.clip(q, v_lo, v_hi, out=q)
        return q.astype(np.int16)
    out = np.empty(acc.shape, dtype=np.int16)
    rows = acc.reshape(-1, *acc.shape[-2:]) if acc.ndim > 2 else acc.reshape(-1, 1, cout)
    out_rows = out.reshape(rows.shape)
    block = max(1, _REQUANTIZE_BLOCK_ELEMENTS // (rows.shape[1] * cout))
    b256 = b * 256

    def part(lo: int, hi: int) -> None:
        # NOTE: in blocks of rows that stay in cache through the five passes, on the threads
        # (numpy releases the GIL).
        for r0 in range(lo, hi, block):
            q = rows[r0:min(hi, r0 + block)]
            np.add(q, b256, out=q)
            # NOTE: x / 256 is exact in float64 (a power of two) and floor is exact: the same value
            # as np.floor_divide, which is several times slower on floats.
            np.multiply(q, 1.0 / 256, out=q)
            np.floor(q, out=q)
            np.clip(q, v_lo, v_hi, out=q)
            out_rows[r0:r0 + q.shape[0]] = q
    run_chunks(part, rows.shape[0], serial=acc.size < _PARALLEL_MIN_COPY)
    return out


def ref_conv2d(
    act: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    *,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    activation=0,
) -> np.ndarray:
    """Reference Q8.8 convolution, int16 ``(Ho, Wo, C_out)``.

    ``out = act(clip(floor((acc + 256 * bias) / 256), -32768, 32767))``.
    """
    return _requantize(_blas_conv_float(act, weights, stride, padding, groups), bias, activation)


def _pool_windows(x: np.ndarray, k, stride: int, padding: int, fill, dtype=np.int64):
    """Yield the (kh * kw) strided tap views of ``x`` (as ``dtype``) padded with ``fill``."""
    kh, kw = _kernel_hw(k)
    if padding >= min(kh, kw):
        raise WorkloadError(f"pooling padding {padding!r} must be smaller than the kernel {kh}x{kw}")
    H, W, C = x.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    if padding:
        xp = np.full((H + 2 * padding, W + 2 * padding, C), fill, dtype=dtype)
        xp[padding:padding + H, padding:padding + W] = x
    else:
        xp = x.astype(dtype, copy=False)
    for ky in range(kh):
        for kx in range(kw):
            yield xp[ky:ky + stride * (Ho - 1) + 1:stride, kx:kx + stride * (Wo - 1) + 1:stride]


def ref_maxpool(act: np.ndarray, k, stride: int = 2, padding: int = 0) -> np.ndarray:
    """Reference max pool; padding cells hold a value below int16 so they never win."""
    x = _check_act(act)
    out = None
    # int32 holds the padding value; without padding the int16 input is compared as it is.
    for tap in _pool_windows(x, k, stride, padding, fill=_INT16_MIN - 1, dtype=np.int32 if padding else np.int16):
        out = tap.copy() if out is None else np.maximum(out, tap, out=out)
    return out.astype(np.int16, copy=False)


def ref_avgpool(act: np.ndarray, k, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Reference average pool: count_include_pad=False, round half up, saturate."""
    x = _check_act(act)
    if stride is None:
        stride = _kernel_hw(k)[0]
    ones = np.ones(x.shape[:2] + (1,), dtype=np.int16)
    total = sum(_pool_windows(x, k, stride, padding, fill=0))
    count = sum(_pool_windows(ones, k, stride, padding, fill=0))
    q = np.floor_divide(2 * total + count, 2 * count)
    return np.clip(q, _INT16_MIN, _INT16_MAX).astype(np.int16)


def ref_add(a: np.ndarray, b: np.ndarray, activation=0) -> np.ndarray:
    """Reference element-wise add: exact sum, clip to int16, activation."""
    lo, hi = _output_bounds(activation)
    s = _check_act(a).astype(np.int32) + _check_act(b)   # exact: |a + b| < 2**16
    np.clip(s, lo, hi, out=s)
    return s.astype(np.int16)


def ref_fc(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, activation=0) -> np.ndarray:
    """Reference fully connected layer over ``x`` flattened in HWC order; int16 ``(1, 1, C_out)``."""
    x = _check_act(x)
    w = np.asarray(weights)
    cout = w.shape[0]
    # Exact in float64 for the same reason as the convolution. NOTE: the weights are converted
    # in blocks of rows into one reused buffer (VGG16's fc6 would be an 800 MB float64 copy).
    _check_exact(w[0].size)
    w2 = w.reshape(cout, -1)
    xf = x.reshape(-1).astype(np.float64)
    acc = np.empty(cout, dtype=np.float64)
    block = max(1, _FC_BLOCK_ELEMENTS // max(1, w2.shape[1]))

    def rows(lo: int, hi: int) -> None:      # a buffer per thread
        buf = np.empty((min(block, hi - lo), w2.shape[1]), dtype=np.float64)
        for r0 in range(lo, hi, block):
            r1 = min(hi, r0 + block)
            b = buf[:r1 - r0]
            b[...] = w2[r0:r1]
            np.matmul(b, xf, out=acc[r0:r1])
    run_blas_chunks(rows, cout, serial=w2.size < _PARALLEL_MIN_PRODUCTS)
    return _requantize(acc.reshape(1, 1, cout), bias, activation)
