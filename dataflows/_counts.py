"""Per-work-unit cycle counts from real bitmaps (numba kernels).

A *stripe* is NullHop's work unit: two stride-1 output rows computed from
the ``kh + 1`` input rows that feed them (docs/sources.md §N7.2 [C]). These pure
functions walk the activation bitmaps and return exact per-stripe counts;
``_stripe`` turns them into per-unit work and the event model in
``simulator.engine`` turns that into time. See
docs/architecture.md for the per-cycle behaviour each count encodes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from workloads import run_chunks

__all__ = ["slot_mac_work", "weight_tap_prefix", "row_chunk_elements", "stripe_windows", "ceil_div"]


def ceil_div(a, b):
    """Integer ceiling division for non-negative ``a`` and positive ``b``."""
    # NOTE: plain Python (the kernels write the expression out): as a numba function it was one
    # more compile of a cold run.
    return (a + b - 1) // b


def row_chunk_elements(act, sm_word_pixels, compressed, col_chunk, n_chunks):
    """Per row and chunk: 16-bit stream elements, and the pixels a decoder delivers.

    ``col_chunk[x]`` is the chunk of column ``x``. Elements are the non-zeros in
    the chunk's columns plus the SM words that start there (word ``k`` covers
    stream positions ``16k .. 16k+15``, position = column x channels + channel),
    or every value when not compressed. Pixels are the non-zeros, or every value.

    Returns
    -------
    elements, pixels : int64 ``(H, n_chunks)``; each row of ``elements`` sums to the row's
    stream elements, ``ceil(W * C / 16)`` SM words plus its non-zeros (rows are SM-aligned,
    docs/sources.md §N5.1 [C]), or ``W * C``.
    """
    el = np.zeros((act.shape[0], n_chunks), dtype=np.int64)
    px = np.zeros((act.shape[0], n_chunks), dtype=np.int64)
    _row_chunk_elements(act, sm_word_pixels, compressed, col_chunk, el, px)
    return el, px


@njit(cache=True, nogil=True)
def _row_chunk_elements(act, sm_word_pixels, compressed, col_chunk, el, px):
    # row_chunk_elements into its zeroed outputs. NOTE: every work array of the compile-ahead
    # child's kernels comes from the caller: each np.zeros / np.full / np.empty in a kernel is one
    # more numpy implementation for numba to compile (about 0.6 s of the child's compile).
    h, w, c = act.shape
    for iy in range(h):
        for ix in range(w):
            j = col_chunk[ix]
            if not compressed:
                el[iy, j] += c
                px[iy, j] += c
                continue
            nnz = 0
            for ch in range(c):
                if act[iy, ix, ch] != 0:
                    nnz += 1
            # SM words that start in this column: ceil((ix + 1) c / p) - ceil(ix c / p), p = sm_word_pixels
            words = (((ix + 1) * c + sm_word_pixels - 1) // sm_word_pixels
                     - (ix * c + sm_word_pixels - 1) // sm_word_pixels)
            el[iy, j] += nnz + words
            px[iy, j] += nnz


def stripe_windows(h: int, kh: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last (inclusive) input row of each stripe's window."""
    ho = h + 2 * pad - kh + 1
    s = np.arange((ho + 1) // 2)
    rows_out = np.minimum(2, ho - 2 * s)
    lo = np.maximum(0, 2 * s - pad)
    hi = np.minimum(h - 1, 2 * s + rows_out - 1 - pad + kh - 1)
    return lo, hi


@njit(cache=True, nogil=True)
def weight_tap_prefix(weights_full):
    """Prefix sums over kx of non-zero weights: ``out[k, c, ky, j] = #nz w[k, ky, :j, c]``.

    ``weights_full`` is int16 ``(C_out, kh, kw, C_in)`` with zeros outside each
    kernel's group (block-diagonal). Returns uint8 ``(C_out, C_in, kh, kw + 1)``.
    """
    cout, kh, kw, cin = weights_full.shape
    out = np.zeros((cout, cin, kh, kw + 1), dtype=np.uint8)
    for k in range(cout):
        for ky in range(kh):
            for c in range(cin):
                acc = 0
                for kx in range(kw):
                    if weights_full[k, ky, kx, c] != 0:
                        acc += 1
                    out[k, c, ky, kx + 1] = acc
    return out


def slot_mac_work(act, wpre, kh, kw, pad, m, channels_per_lane, skip_act, skip_w,
                  slot_kptr, slot_kernels, slot_lane, slot_pu, n_pus, col_chunk, n_chunks):
    """MAC-array cycles per work unit (stripe ``s``, chunk ``j`` -> ``s * n_chunks + j``), with per-PU busy time.

    Each MAC slot ``s`` serves lane ``slot_lane[s]`` for the output channels
    ``slot_kernels[slot_kptr[s]:slot_kptr[s+1]]`` (one, or several when kernels
    are merged). A pixel of its lane costs the slot one cycle per tap it
    performs: every valid tap (``skip_w`` False) or only taps with a non-zero
    weight of that kernel (``skip_w`` True), summed over the slot's kernels.
    Zero pixels are skipped when ``skip_act``. Within a PU, slots synchronise per
    input column (a column costs the PU the maximum over its slots); PUs run
    independently through a chunk's input columns (``col_chunk[x]`` is the chunk
    of input column ``x``) and meet at its end (Assumption, docs/architecture.md §8.1).

    Returns
    -------
    mac_cycles : int64 (S * n_chunks,) work-unit cycles (slowest PU).
    pu_cycles : int64 (S * n_chunks, n_pus) busy cycles of each PU per work unit.
    pu_ops : int64 (S * n_chunks, n_pus) MAC operations performed by each PU per work unit.
    """
    h, w, _ = act.shape
    n_stripes = (h + 2 * pad - kh + 2) // 2
    n_items = n_stripes * n_chunks
    mac_cycles = np.zeros(n_items, dtype=np.int64)
    pu_cycles = np.zeros((n_items, n_pus), dtype=np.int64)
    pu_ops = np.zeros((n_items, n_pus), dtype=np.int64)

    slot_kcount = np.diff(slot_kptr).astype(np.int64)
    if not skip_w:
        # Without weight skipping a slot's work in a column is its lane's taps times its kernels,
        # so per (lane, PU) the slots' kernels summed (for the PU's operations) and their largest
        # count (for its slowest slot) say all: ``taps * k`` is largest where ``k`` is, as no
        # count is negative.
        lane_pu = slot_lane.astype(np.int64) * n_pus + slot_pu
        ksum = np.bincount(lane_pu, weights=slot_kcount, minlength=m * n_pus).astype(np.int64).reshape(m, n_pus)
        kmax = np.zeros(m * n_pus, dtype=np.int64)
        np.maximum.at(kmax, lane_pu, slot_kcount)
        kmax = kmax.reshape(m, n_pus)

    def stripes(lo: int, hi: int) -> None:
        # NOTE: two kernels, not one with a flag: without weight skipping (NullHop) the count is
        # a far smaller kernel, and its compile is on the critical path of a first run (the
        # compile-ahead child compiles it while this process compiles the functional kernels).
        if skip_w:
            _slot_mac_stripes(act, wpre, kh, kw, pad, m, channels_per_lane, skip_act, slot_kptr,
                              slot_kernels, slot_lane, slot_pu, n_pus, col_chunk, n_chunks, lo, hi,
                              mac_cycles, pu_cycles, pu_ops)
        else:
            work = np.zeros(m + n_pus + 2, dtype=np.int64)
            _lane_mac_stripes(act, kh, kw, pad, m, channels_per_lane, skip_act, ksum, kmax, n_pus, col_chunk,
                              n_chunks, lo, hi, mac_cycles, pu_cycles, pu_ops, work)

    # NOTE: stripes are independent (each writes its own work units) and split over threads
    # (workloads.run_chunks) at equal input rows; parallel=True made the compile 2.4 s longer.
    run_chunks(stripes, n_stripes, serial=act.size * kh < _PARALLEL_MIN_TAPS)
    return mac_cycles, pu_cycles, pu_ops


#: Activation taps (elements x kernel rows) below which the MAC work is counted on one thread.
_PARALLEL_MIN_TAPS = 1 << 20


@njit(inline="always")
def _stripe_rows(st, h, kh, pad):
    # Output rows oy0 .. oy0 + rows_out - 1 of stripe st and its input rows iy_lo .. iy_hi.
    ho = h + 2 * pad - kh + 1
    oy0 = 2 * st
    rows_out = min(2, ho - oy0)
    return oy0, rows_out, max(0, oy0 - pad), min(h - 1, oy0 + rows_out - 1 - pad + kh - 1)


@njit(inline="always")
def _column_taps(ix, pad, wo, kw):
    # First and last kernel column by which input column ix feeds a stride-1 output (kx_lo > kx_hi: none).
    return max(0, ix + pad - (wo - 1)), min(kw - 1, ix + pad)


@njit(inline="always")
def _row_taps(iy, oy0, rows_out, pad, kh, kys):
    # The kernel rows ky by which input row iy feeds the stripe's output rows, into kys; their count.
    ny = 0
    for oy in range(oy0, oy0 + rows_out):
        ky = iy - oy + pad
        if ky >= 0 and ky < kh:
            kys[ny] = ky
            ny += 1
    return ny


@njit(inline="always")
def _lane_channels(lane, m, channels_per_lane, c):
    # Channels ch0 .. ch1 - 1 of a lane (lane = ch // channels_per_lane, the last lane taking the rest).
    ch0 = lane * channels_per_lane
    return ch0, (c if lane == m - 1 else min(c, ch0 + channels_per_lane))


@njit(inline="always")
def _close_column(slot_work, slot_pu, item, pu_col, pu_ops, pu_cycles):
    # A column's slot work into its work unit: each PU is busy for its slowest slot.
    for p in range(pu_col.shape[0]):
        pu_col[p] = 0
    for s in range(slot_work.shape[0]):
        p = slot_pu[s]
        pu_ops[item, p] += slot_work[s]
        if slot_work[s] > pu_col[p]:
            pu_col[p] = slot_work[s]
    for p in range(pu_col.shape[0]):
        pu_cycles[item, p] += pu_col[p]


@njit(inline="always")
def _close_stripe(st, n_chunks, pu_cycles, mac_cycles):
    # A work unit lasts as long as its slowest PU.
    for j in range(st * n_chunks, (st + 1) * n_chunks):
        best = 0
        for p in range(pu_cycles.shape[1]):
            if pu_cycles[j, p] > best:
                best = pu_cycles[j, p]
        mac_cycles[j] = best


@njit(cache=True, nogil=True)
def _lane_mac_stripes(act, kh, kw, pad, m, channels_per_lane, skip_act, ksum, kmax, n_pus, col_chunk,
                      n_chunks, st0, st1, mac_cycles, pu_cycles, pu_ops, work):
    # Stripes st0 .. st1 - 1 of slot_mac_work without weight skipping into its zeroed outputs: a
    # slot's work in a column is its lane's taps times its kernels; ksum / kmax: per (lane, PU)
    # the sum and the largest of its slots' kernel counts. work: int64 scratch of m + n_pus + 2
    # (see _row_chunk_elements).
    h, w, c = act.shape
    wo = w + 2 * pad - kw + 1
    lane_taps = work[:m]
    pu_col = work[m:m + n_pus]
    kys = work[m + n_pus:m + n_pus + 2]
    for st in range(st0, st1):
        oy0, rows_out, iy_lo, iy_hi = _stripe_rows(st, h, kh, pad)
        for ix in range(w):
            kx_lo, kx_hi = _column_taps(ix, pad, wo, kw)
            if kx_hi < kx_lo:
                continue
            nx = kx_hi - kx_lo + 1
            for ln in range(m):
                lane_taps[ln] = 0
            for iy in range(iy_lo, iy_hi + 1):
                ny = _row_taps(iy, oy0, rows_out, pad, kh, kys)
                if ny == 0:
                    continue
                # NOTE: lane by lane: no division per channel, and a plain sum LLVM vectorises.
                for lane in range(m):
                    ch0, ch1 = _lane_channels(lane, m, channels_per_lane, c)
                    cnt = 0
                    if skip_act:
                        for ch in range(ch0, ch1):
                            cnt += act[iy, ix, ch] != 0
                    else:
                        cnt = max(0, ch1 - ch0)
                    lane_taps[lane] += ny * nx * cnt
            # the column into its work unit, each PU busy for its slowest slot (_close_column)
            item = st * n_chunks + col_chunk[ix]
            for p in range(n_pus):
                pu_col[p] = 0
            for ln in range(m):
                t = lane_taps[ln]
                for p in range(n_pus):
                    pu_ops[item, p] += t * ksum[ln, p]
                    if t * kmax[ln, p] > pu_col[p]:
                        pu_col[p] = t * kmax[ln, p]
            for p in range(n_pus):
                pu_cycles[item, p] += pu_col[p]
        _close_stripe(st, n_chunks, pu_cycles, mac_cycles)


@njit(cache=True, nogil=True)
def _slot_mac_stripes(act, wpre, kh, kw, pad, m, channels_per_lane, skip_act,
                      slot_kptr, slot_kernels, slot_lane, slot_pu, n_pus, col_chunk, n_chunks, st0, st1,
                      mac_cycles, pu_cycles, pu_ops):
    # Stripes st0 .. st1 - 1 of slot_mac_work with weight skipping into its zeroed outputs.
    h, w, c = act.shape
    wo = w + 2 * pad - kw + 1
    n_slots = slot_lane.shape[0]
    # NOTE: lane -> slots table (CSR), built once so the inner loop touches only its lane's slots.
    lane_cnt = np.zeros(m + 1, dtype=np.int64)
    for s in range(n_slots):
        lane_cnt[slot_lane[s] + 1] += 1
    # NOTE: plain loops here and below instead of np.cumsum, .copy() and slice fills: each numpy
    # call is one more implementation for numba to compile (0.25 s of this kernel's cold compile).
    lane_ptr = np.zeros(m + 1, dtype=np.int64)
    for ln in range(m):
        lane_ptr[ln + 1] = lane_ptr[ln] + lane_cnt[ln + 1]
    lane_slots = np.zeros(n_slots, dtype=np.int64)
    fillp = np.zeros(m, dtype=np.int64)
    for ln in range(m):
        fillp[ln] = lane_ptr[ln]
    for s in range(n_slots):
        ln = slot_lane[s]
        lane_slots[fillp[ln]] = s
        fillp[ln] += 1
    slot_work = np.zeros(n_slots, dtype=np.int64)
    pu_col = np.zeros(n_pus, dtype=np.int64)
    kys = np.zeros(2, dtype=np.int64)
    for st in range(st0, st1):
        oy0, rows_out, iy_lo, iy_hi = _stripe_rows(st, h, kh, pad)
        for ix in range(w):
            kx_lo, kx_hi = _column_taps(ix, pad, wo, kw)
            if kx_hi < kx_lo:
                continue
            for s in range(n_slots):
                slot_work[s] = 0
            for iy in range(iy_lo, iy_hi + 1):
                ny = _row_taps(iy, oy0, rows_out, pad, kh, kys)
                if ny == 0:
                    continue
                for lane in range(m):
                    ch0, ch1 = _lane_channels(lane, m, channels_per_lane, c)
                    for ch in range(ch0, ch1):
                        if skip_act and act[iy, ix, ch] == 0:
                            continue
                        for q in range(lane_ptr[lane], lane_ptr[lane + 1]):
                            s = lane_slots[q]
                            acc = 0
                            for j in range(slot_kptr[s], slot_kptr[s + 1]):
                                k = slot_kernels[j]
                                for t in range(ny):
                                    acc += np.int64(wpre[k, ch, kys[t], kx_hi + 1]) - np.int64(wpre[k, ch, kys[t], kx_lo])
                            slot_work[s] += acc
            _close_column(slot_work, slot_pu, st * n_chunks + col_chunk[ix], pu_col, pu_ops, pu_cycles)
        _close_stripe(st, n_chunks, pu_cycles, mac_cycles)
