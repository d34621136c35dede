"""Clock-stepped reference model of the NullHop pipeline (the cycle-accuracy oracle).

This module re-implements the timing contract of docs/architecture.md (§3 hand-off
semantics, §3.2 accounting, §4 per-unit behaviour) in the most literal way we
could write it: a loop that advances **every unit by one clock cycle at a
time**. It shares no timing code with the event-driven model
(``_engine.py``, ``_layer_model.py``, ``_cycles.py``); it only reuses the
mapping (``dataflows``), the configuration and the stream encoder
(``_format.encode``, to count SM words and non-zeros per row).

What is explicit here and implicit (pre-summed) in the event model:

* FIFOs are occupancy counters with a capacity;
* every unit has a state register: waiting for input, busy on a work unit,
  holding a finished work unit (output FIFO full), or done;
* DMA channels count down their latency, then stream bytes at the configured
  bandwidth per cycle (an exact rational, so ``ceil`` is exact);
* the decoder has ``kh + 1`` IDP managers, each draining its own row;
* the MAC array keeps, per input column of the stripe, one pixel queue per
  lane and retires one tap per lane per cycle; a column retires when every
  lane's queue is empty (per-column synchronisation);
* PRE walks output pixels word by word, then waits out the adder tree;
* the encoder drains the stripe's output elements.

Within one cycle boundary ``t`` the hand-offs are resolved to a fixed point,
visiting units downstream to upstream (a slot freed at ``t`` is visible
upstream at ``t``) and repeating until nothing changes (an item put at ``t``
can be taken at ``t``; zero-work items pass straight through, also in chains).
Then every unit's state classifies cycle ``t`` (§3.2) and every busy unit
does one cycle of work.

The model is written for clarity; the stepping loop is one numba function
because real layers take millions of cycles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from numba import njit

from dataflows import ScheduledLayer
from workloads._errors import ConfigError, MappingError, TraceError, WorkloadError

from ._config import AcceleratorConfig
from ._format import encode

__all__ = ["CLOCKED_UNITS", "COUNTERS", "ClockedTiming", "clocked_layer", "exact_bandwidth"]

#: Units of the pipeline, upstream first (docs/architecture.md §3).
CLOCKED_UNITS = ("dma_read", "decoder", "mac_array", "pre", "encoder", "dma_write")
#: Per-unit cycle classes (docs/architecture.md §3.2), in the column order of the stats array.
COUNTERS = ("busy", "stall_input", "stall_output", "stall_weights", "idle")

# Unit state registers.
_WAIT = 0   # has handed off its previous work unit; waits for the next one in its input FIFO
_BUSY = 1   # working on a work unit
_HOLD = 2   # holds a finished work unit; its output FIFO is full
_DONE = 3   # handed off the pass's last work unit

# Columns of the stats array (same order as COUNTERS).
_C_BUSY, _C_IN, _C_OUT, _C_W, _C_IDLE = 0, 1, 2, 3, 4

# Unit indices.
_DMA_R, _DEC, _MAC, _PRE, _ENC, _DMA_W = 0, 1, 2, 3, 4, 5

#: Largest scaled byte counter the DMA stepping may reach (int64 headroom).
_MAX_SCALED = 2**62


@dataclass
class ClockedTiming:
    """What the clock-stepped reference measured for one layer (all passes).

    Attributes
    ----------
    cycles : clock cycles of all passes (kernel loads included).
    units : per unit (``CLOCKED_UNITS``), cycles per class (``COUNTERS``), summed over passes.
    macs_useful : multiply-accumulates on non-zero pixels times connected output
        channels, counted tap by tap as the lanes retire them; with stride > 1
        only taps feeding outputs the host keeps after decimation count.
    passes : number of passes.
    pass_cycles : cycles of each pass.
    resident : whether the input image stays in the input memory for all passes.
    input_fifo_stripes : capacity of the input memory in stripes (§3 table, row 1).
    """

    cycles: int = 0
    units: dict[str, dict[str, int]] = field(
        default_factory=lambda: {u: {c: 0 for c in COUNTERS} for u in CLOCKED_UNITS})
    macs_useful: int = 0
    passes: int = 0
    pass_cycles: list[int] = field(default_factory=list)
    resident: bool = False
    input_fifo_stripes: int = 0


def exact_bandwidth(bandwidth_bytes_per_cycle: float) -> Fraction:
    """The DMA bandwidth as an exact fraction, in bytes per cycle.

    The configured number is read as the decimal the user wrote (``0.7`` is
    7/10, not the nearest binary float), so ``ceil(bytes / bandwidth)`` of the
    contract (docs/architecture.md §4.2) is evaluated exactly.
    """
    return Fraction(repr(float(bandwidth_bytes_per_cycle)))


# ---------------------------------------------------------------------------
# The clock loop (one pass)
# ---------------------------------------------------------------------------

@njit(cache=True)
def _dma_step(ch, lat_left, acc, target, bw_num):
    """One cycle of DMA channel ``ch``: latency first, then ``bw_num`` scaled bytes.

    ``acc`` and ``target`` are in bytes x ``bw_den`` so the comparison is exact.
    Mutates the caller's registers ``lat_left`` and ``acc`` (cycles, scaled bytes).
    Returns True when the transfer has finished at the end of this cycle.
    """
    if lat_left[ch] > 0:
        lat_left[ch] -= 1
        return False
    acc[ch] += bw_num
    return acc[ch] >= target[ch]


@njit(cache=True)
def _mac_fill_column(ix, lo, hi, oy0, rows, nonzero, dense_input, lane_of_c, useful_c, kh, pad, stride, nx,
                     nx_kept, q_taps, q_kept, q_use, q_len, q_pos, q_left):
    """Queue, per lane, the pixels of input column ``ix`` in the stripe's window.

    A pixel is delivered when it is non-zero (or always, for an uncompressed
    first-layer input); it costs one cycle per tap it performs: the output rows
    of the stripe it feeds times the valid output columns (``nx[ix]``). Of those
    taps, ``q_kept`` feed outputs the host keeps after stride decimation (all of
    them at stride 1); only these count as useful MACs, and a lane performs them
    first. Fills the caller's queue registers ``q_*`` in place. Returns True when
    the column has any work.
    """
    m = q_len.shape[0]
    c = nonzero.shape[2]
    for ln in range(m):
        q_len[ln] = 0
        q_pos[ln] = 0
        q_left[ln] = 0
    any_work = False
    for iy in range(lo, hi + 1):
        ny = 0
        ny_kept = 0
        for oy in range(oy0, oy0 + rows):
            ky = iy - oy + pad
            if 0 <= ky < kh:
                ny += 1
                if oy % stride == 0:
                    ny_kept += 1
        taps = ny * nx[ix]
        kept = ny_kept * nx_kept[ix]
        if taps == 0:
            continue
        for ch in range(c):
            nz = nonzero[iy, ix, ch]
            if nz or dense_input:
                ln = lane_of_c[ch]
                q_taps[ln, q_len[ln]] = taps
                q_kept[ln, q_len[ln]] = kept
                q_use[ln, q_len[ln]] = useful_c[ch] if nz else 0
                q_len[ln] += 1
                any_work = True
    for ln in range(m):
        if q_len[ln] > 0:
            q_left[ln] = q_taps[ln, 0]
    return any_work


@njit(cache=True)
def _mac_next_column(start, lo, hi, oy0, rows, nonzero, dense_input, lane_of_c, useful_c, kh, pad, stride, nx,
                     nx_kept, q_taps, q_kept, q_use, q_len, q_pos, q_left):
    """First column ``>= start`` with work, its queues loaded; -1 if none (columns with no work take 0 cycles)."""
    w = nonzero.shape[1]
    for ix in range(start, w):
        if _mac_fill_column(ix, lo, hi, oy0, rows, nonzero, dense_input, lane_of_c, useful_c, kh, pad, stride, nx,
                            nx_kept, q_taps, q_kept, q_use, q_len, q_pos, q_left):
            return ix
    return -1


@njit(cache=True)
def _clock_pass(latency, bw_num, bw_den, load_bytes, read_bytes, write_bytes, caps,
                row_el, win_lo, win_hi, dec_rate,
                nonzero, dense_input, lane_of_c, useful_c, m, kh, pad, stride, nx, nx_kept, out_lo, out_rows,
                pre_words, pre_rate, pre_tree, wo1,
                enc_el, enc_rate):
    """Step one pass clock by clock.

    Parameters (all counts are integers)
    ----------
    latency : DMA latency per transfer, in cycles.
    bw_num, bw_den : DMA bandwidth ``bw_num / bw_den`` bytes per cycle.
    load_bytes : bytes of the kernel/bias/config load at the pass start.
    read_bytes, write_bytes : (S,) bytes DMA-read / DMA-written per stripe.
    caps : (5,) FIFO capacities in stripes, after units 0..4.
    row_el : (H,) 16-bit stream elements per input row; win_lo, win_hi : (S,) window rows.
    dec_rate : elements per cycle per IDP manager.
    nonzero : (H, W, C) bool bitmap; dense_input : deliver zeros too (first layer).
    lane_of_c : (C,) lane of each input channel; useful_c : (C,) connected output
        channels of this pass per channel; m : lanes per output channel.
    kh, pad, stride : kernel height, padding (pixels) and the layer's stride (host decimation).
    nx, nx_kept : (W,) valid output columns per input column, and those kept after decimation.
    out_lo, out_rows : (S,) first stride-1 output row and row count of each stripe.
    pre_words : 16-channel words per output pixel; pre_rate : words per cycle;
        pre_tree : adder-tree cycles per stripe; wo1 : stride-1 output width.
    enc_el : (S,) output elements per stripe; enc_rate : elements per cycle.

    Returns
    -------
    cycles : cycles of the pass; stats : (6, 5) int64 per unit and class;
    macs : useful MACs retired in this pass.
    """
    # NOTE: one flat numba loop with the six units written out in place, and state held in
    # small int64 arrays instead of per-unit objects: numba has no cheap dynamic dispatch, and
    # real layers need tens of millions of iterations. Each unit's code is one labelled block.
    n = read_bytes.shape[0]
    c = nonzero.shape[2]
    max_win = 1
    for s in range(n):
        max_win = max(max_win, win_hi[s] - win_lo[s] + 1)
    state = np.zeros(6, dtype=np.int64)          # all units start in _WAIT
    handed = np.zeros(6, dtype=np.int64)         # work units handed off so far
    occ = np.zeros(5, dtype=np.int64)            # FIFO occupancy after units 0..4
    stats = np.zeros((6, 5), dtype=np.int64)
    # DMA channels: 0 = read, 1 = write.
    lat_left = np.zeros(2, dtype=np.int64)
    acc = np.zeros(2, dtype=np.int64)
    target = np.zeros(2, dtype=np.int64)
    # Decoder: one remaining-elements register per IDP manager.
    mgr_left = np.zeros(max_win, dtype=np.int64)
    n_mgr = 0
    # MAC array: per lane a pixel queue (taps, useful MACs per tap) of the current column.
    qcap = max_win * c
    q_taps = np.zeros((m, qcap), dtype=np.int64)
    q_kept = np.zeros((m, qcap), dtype=np.int64)
    q_use = np.zeros((m, qcap), dtype=np.int64)
    q_len = np.zeros(m, dtype=np.int64)
    q_pos = np.zeros(m, dtype=np.int64)
    q_left = np.zeros(m, dtype=np.int64)
    mac_s = 0
    mac_col = -1
    # PRE and encoder registers.
    pre_px_left = 0
    pre_words_left = 0
    pre_tree_left = 0
    enc_left = 0
    macs = 0

    loading = load_bytes > 0
    if loading:
        lat_left[0] = latency
        acc[0] = 0
        target[0] = load_bytes * bw_den
    t = 0
    while True:
        # ---- cycle boundary t: resolve hand-offs to a fixed point, downstream first.
        if not loading:
            changed = True
            while changed:
                changed = False
                for k in range(5, -1, -1):
                    if state[k] == _HOLD:
                        if k == 5:
                            handed[k] += 1
                            state[k] = _WAIT
                            changed = True
                        elif occ[k] < caps[k]:
                            occ[k] += 1
                            handed[k] += 1
                            state[k] = _WAIT
                            changed = True
                    if state[k] != _WAIT:
                        continue
                    if handed[k] == n:
                        state[k] = _DONE
                        changed = True
                        continue
                    if k > 0 and occ[k - 1] == 0:
                        continue
                    if k > 0:
                        occ[k - 1] -= 1
                    i = handed[k]                     # the work unit taken now
                    changed = True
                    zero = False
                    if k == _DMA_R:
                        if read_bytes[i] == 0:
                            zero = True
                        else:
                            lat_left[0] = latency
                            acc[0] = 0
                            target[0] = read_bytes[i] * bw_den
                    elif k == _DEC:
                        n_mgr = win_hi[i] - win_lo[i] + 1
                        zero = True
                        for j in range(n_mgr):
                            mgr_left[j] = row_el[win_lo[i] + j]
                            if mgr_left[j] > 0:
                                zero = False
                    elif k == _MAC:
                        mac_s = i
                        mac_col = _mac_next_column(0, win_lo[i], win_hi[i], out_lo[i], out_rows[i], nonzero,
                                                   dense_input, lane_of_c, useful_c, kh, pad, stride, nx, nx_kept,
                                                   q_taps, q_kept, q_use, q_len, q_pos, q_left)
                        zero = mac_col < 0
                    elif k == _PRE:
                        pre_px_left = out_rows[i] * wo1
                        pre_words_left = pre_words
                        pre_tree_left = pre_tree
                        zero = (pre_px_left == 0 or pre_words == 0) and pre_tree == 0
                    elif k == _ENC:
                        enc_left = enc_el[i]
                        zero = enc_left == 0
                    else:
                        if write_bytes[i] == 0:
                            zero = True
                        else:
                            lat_left[1] = latency
                            acc[1] = 0
                            target[1] = write_bytes[i] * bw_den
                    state[k] = _HOLD if zero else _BUSY
        if state[_DMA_W] == _DONE:
            break

        # ---- classify cycle t (docs/architecture.md §3.2).
        if loading:
            stats[_DMA_R, _C_BUSY] += 1
            for k in range(1, 6):
                stats[k, _C_W] += 1
        else:
            for k in range(6):
                s = state[k]
                if s == _BUSY:
                    stats[k, _C_BUSY] += 1
                elif s == _WAIT:
                    stats[k, _C_IN] += 1
                elif s == _HOLD:
                    stats[k, _C_OUT] += 1
                else:
                    stats[k, _C_IDLE] += 1

        # ---- one cycle of work for every busy unit.
        if loading:
            if _dma_step(0, lat_left, acc, target, bw_num):
                loading = False
        else:
            if state[_DMA_R] == _BUSY and _dma_step(0, lat_left, acc, target, bw_num):
                state[_DMA_R] = _HOLD
            if state[_DEC] == _BUSY:
                left = 0
                for j in range(n_mgr):
                    mgr_left[j] -= min(dec_rate, mgr_left[j])
                    left += mgr_left[j]
                if left == 0:
                    state[_DEC] = _HOLD
            if state[_MAC] == _BUSY:
                busy_lanes = 0
                for ln in range(m):
                    if q_left[ln] > 0:
                        j = q_pos[ln]
                        if q_taps[ln, j] - q_left[ln] < q_kept[ln, j]:   # a tap feeding a kept output
                            macs += q_use[ln, j]
                        q_left[ln] -= 1                       # one tap retired on this lane
                        if q_left[ln] == 0:
                            q_pos[ln] += 1
                            if q_pos[ln] < q_len[ln]:
                                q_left[ln] = q_taps[ln, q_pos[ln]]
                        if q_left[ln] > 0:
                            busy_lanes += 1
                if busy_lanes == 0:                           # the column retires
                    mac_col = _mac_next_column(mac_col + 1, win_lo[mac_s], win_hi[mac_s], out_lo[mac_s],
                                               out_rows[mac_s], nonzero, dense_input, lane_of_c, useful_c,
                                               kh, pad, stride, nx, nx_kept, q_taps, q_kept, q_use, q_len,
                                               q_pos, q_left)
                    if mac_col < 0:
                        state[_MAC] = _HOLD
            if state[_PRE] == _BUSY:
                if pre_px_left > 0 and pre_words > 0:
                    pre_words_left -= min(pre_rate, pre_words_left)
                    if pre_words_left == 0:
                        pre_px_left -= 1
                        pre_words_left = pre_words
                elif pre_tree_left > 0:
                    pre_tree_left -= 1
                if (pre_px_left == 0 or pre_words == 0) and pre_tree_left == 0:
                    state[_PRE] = _HOLD
            if state[_ENC] == _BUSY:
                enc_left -= min(enc_rate, enc_left)
                if enc_left == 0:
                    state[_ENC] = _HOLD
            if state[_DMA_W] == _BUSY and _dma_step(1, lat_left, acc, target, bw_num):
                state[_DMA_W] = _HOLD
        t += 1
    return t, stats, macs


# ---------------------------------------------------------------------------
# Work content of a layer (data, not time)
# ---------------------------------------------------------------------------

def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _row_elements(act: np.ndarray, compressed: bool) -> np.ndarray:
    """16-bit stream elements per row: SM words + non-zeros (row-aligned), or raw values."""
    h, w, c = act.shape
    if not compressed:
        return np.full(h, w * c, dtype=np.int64)
    _, _, sm_ptr, nz_ptr = encode(act)
    return (np.diff(sm_ptr) + np.diff(nz_ptr)).astype(np.int64)


def _beats(elements: np.ndarray, values_per_beat: int) -> np.ndarray:
    return -(-elements // values_per_beat)


def _as_int16_hwc(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.dtype != np.int16:
        raise TraceError(f"{what} must be an int16 (H, W, C) array, not {a.ndim}-D {a.dtype!r}")
    return np.ascontiguousarray(a)


def clocked_layer(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray,
                  cfg: AcceleratorConfig) -> ClockedTiming:
    """Time one accelerator layer by stepping every unit one clock cycle at a time.

    Parameters
    ----------
    sched : the scheduled layer (``where == "accelerator"``).
    act_in : int16 (H, W, C) input as the array sees it (FC: (1, 1, N)).
    out_written : int16 output as the PRE writes it: stride-1, after the fused
        pool if any; shape ``(Ho1, Wo1, C_out)`` or ``(Ho1 // 2, Wo1 // 2, C_out)``.
    cfg : the accelerator configuration.

    Returns
    -------
    ClockedTiming; cycles are accelerator clock cycles.

    Raises
    ------
    WorkloadError : the layer is not mapped onto the accelerator.
    TraceError : the arrays do not match the layer.
    MappingError : one stripe window does not fit the input memory.
    ConfigError : the bandwidth has too many decimal digits for exact int64 stepping.
    """
    mp = sched.mapping
    if mp is None or sched.where != "accelerator":
        raise WorkloadError(f"layer {sched.layer.name!r} runs {sched.where!r}, not on the accelerator")
    act = _as_int16_hwc(act_in, "act_in")
    out = _as_int16_hwc(out_written, "out_written")
    h, w, c = act.shape
    kh, kw = mp.kernel
    pad = mp.padding
    if c != mp.conv_in_channels:
        raise TraceError(f"layer {sched.layer.name!r}: act_in has {c} channels, the mapping {mp.conv_in_channels}")
    ho1, wo1 = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    if ho1 < 1 or wo1 < 1:
        raise TraceError(f"layer {sched.layer.name!r}: a {kh}x{kw} kernel with padding {pad} does not fit "
                         f"a {h}x{w} input")
    pooled = sched.fused_pool is not None
    want = (ho1 // 2, wo1 // 2, mp.out_channels) if pooled else (ho1, wo1, mp.out_channels)
    if out.shape != want or (pooled and ho1 % 2):
        raise TraceError(f"layer {sched.layer.name!r}: out_written has shape {out.shape!r}, expected {want!r} "
                         f"(stride-1 output{', 2x2-pooled, even height' if pooled else ''})")
    a, d, mem = cfg.array, cfg.dma, cfg.memory

    # Stripes: stride-1 output rows 2s, 2s+1 (one row for an odd last stripe), and
    # their windows: every input row that feeds one of them through some kernel row.
    n_stripes = (ho1 + 1) // 2
    out_lo = np.array([2 * s for s in range(n_stripes)], dtype=np.int64)
    out_rows = np.array([min(2, ho1 - 2 * s) for s in range(n_stripes)], dtype=np.int64)
    win_lo = np.zeros(n_stripes, dtype=np.int64)
    win_hi = np.zeros(n_stripes, dtype=np.int64)
    first_stripe_of_row = np.full(h, n_stripes - 1, dtype=np.int64)  # rows in no window: last stripe
    seen = np.zeros(h, dtype=bool)
    for s in range(n_stripes):
        rows = [iy for iy in range(h)
                if any(0 <= iy - oy + pad < kh for oy in range(out_lo[s], out_lo[s] + out_rows[s]))]
        win_lo[s], win_hi[s] = rows[0], rows[-1]
        for iy in rows:
            if not seen[iy]:
                seen[iy] = True
                first_stripe_of_row[iy] = s

    # Input side: stream elements, DMA bytes, residency.
    row_el = _row_elements(act, sched.compressed_input)
    row_bytes = _beats(row_el, d.values_per_beat) * d.beat_bytes
    read_bytes = np.zeros(n_stripes, dtype=np.int64)
    np.add.at(read_bytes, first_stripe_of_row, row_bytes)
    mem_bytes = mem.input_memory_kib * 1024
    image_bytes = int(row_el.sum()) * 2
    window_bytes = max(int(row_el[win_lo[s]:win_hi[s] + 1].sum()) * 2 for s in range(n_stripes))
    resident = image_bytes <= mem_bytes
    if resident:
        in_fifo = n_stripes
    else:
        if window_bytes > mem_bytes:
            raise MappingError(f"layer {sched.layer.name!r}: one stripe window ({window_bytes} bytes) does not "
                               f"fit memory.input_memory_kib={mem.input_memory_kib}")
        in_fifo = mem_bytes // window_bytes
    caps = np.array([in_fifo, mem.decoder_fifo_stripes, mem.pre_fifo_stripes, 1, mem.output_fifo_stripes],
                    dtype=np.int64)

    # MAC array: lanes (docs §2), valid output columns of every input column.
    m = mp.m
    p2 = _next_pow2(c)
    lane_of_c = np.array([ch if p2 <= m else ch // (p2 // m) for ch in range(c)], dtype=np.int64)
    nx = np.array([sum(1 for ox in range(wo1) if 0 <= ix - ox + pad < kw) for ix in range(w)], dtype=np.int64)
    nx_kept = np.array([sum(1 for ox in range(0, wo1, mp.stride) if 0 <= ix - ox + pad < kw) for ix in range(w)],
                       dtype=np.int64)
    nonzero = act != 0
    cin_g = c // mp.groups
    cout_g = mp.out_channels // mp.groups

    # DMA bandwidth as an exact fraction.
    bw = exact_bandwidth(d.bandwidth_bytes_per_cycle)
    bw_num, bw_den = bw.numerator, bw.denominator

    pre_words = math.ceil(mp.out_per_pass / 16)
    pre_tree = int(math.log2(m)) + 1
    timing = ClockedTiming(passes=mp.passes, resident=resident, input_fifo_stripes=int(in_fifo))
    for p in range(mp.passes):
        first = p * mp.out_per_pass
        count = min(mp.out_per_pass, mp.out_channels - first)
        # Output side of this pass: the pass's channel slice of each written row.
        sl = np.ascontiguousarray(out[:, :, first:first + count])
        o_el = _row_elements(sl, sched.compressed_output)
        o_stripe = np.arange(out.shape[0]) if pooled else np.arange(out.shape[0]) // 2
        enc_el = np.zeros(n_stripes, dtype=np.int64)
        np.add.at(enc_el, o_stripe, o_el)
        write_bytes = np.zeros(n_stripes, dtype=np.int64)
        np.add.at(write_bytes, o_stripe, _beats(o_el, d.values_per_beat) * d.beat_bytes)
        # Kernel, bias and register load of this pass (§4.1).
        load_beats = (d.config_beats_per_pass + math.ceil(a.num_macs / d.values_per_beat)
                      + count * m * math.ceil(mp.contiguous_kernels / d.values_per_beat))
        load_bytes = load_beats * d.beat_bytes
        rb = read_bytes if (p == 0 or not resident) else np.zeros(n_stripes, dtype=np.int64)
        biggest = max(load_bytes, int(rb.max()), int(write_bytes.max()))
        if (biggest + 1) * bw_den + bw_num >= _MAX_SCALED:
            raise ConfigError(f"dma.bandwidth_bytes_per_cycle={d.bandwidth_bytes_per_cycle!r} = {bw} needs a "
                              "denominator too large for exact stepping; use fewer decimal digits")
        # Connected output channels of this pass for each input channel (grouped convs: its group's).
        grp = np.arange(c) // cin_g
        useful_c = np.clip(np.minimum((grp + 1) * cout_g, first + count) - np.maximum(grp * cout_g, first),
                           0, None).astype(np.int64)
        cycles, stats, macs = _clock_pass(
            int(d.latency_cycles), bw_num, bw_den, load_bytes, rb, write_bytes, caps,
            row_el, win_lo, win_hi, int(a.decoder_values_per_cycle),
            nonzero, not sched.compressed_input, lane_of_c, useful_c, m, kh, pad, int(mp.stride), nx, nx_kept,
            out_lo, out_rows,
            pre_words, int(a.pre_words_per_cycle), pre_tree, wo1,
            enc_el, int(a.encoder_values_per_cycle))
        timing.cycles += int(cycles)
        timing.pass_cycles.append(int(cycles))
        timing.macs_useful += int(macs)
        for k, u in enumerate(CLOCKED_UNITS):
            for j, name in enumerate(COUNTERS):
                timing.units[u][name] += int(stats[k, j])
    return timing
