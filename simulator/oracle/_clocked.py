"""Clock-stepped reference model of the NullHop pipeline (the cycle-accuracy oracle).

This module re-implements the timing contract of docs/architecture.md (§3 work
units and hand-off semantics, §3.2 accounting, §4 per-unit behaviour, §8
dataflows, §8.4 kernel prefetch) in the most literal way we could write it: a
loop that advances **every unit by one clock cycle at a time**. It shares no
timing code with the event-driven model (``simulator.engine``,
``dataflows/_stripe.py``, ``dataflows/_counts.py``); it only reuses the mapping
and pass planning (the dataflow's ``plan`` and ``traits``), the shared
chunk-width rule (``dataflows.handoff_columns``, ``input_column_chunks``,
``written_column_chunks``), the configuration and the stream encoder
(``numerics.encode``, to count SM words and non-zeros per activation row and
per compressed kernel block).

What is explicit here and implicit (pre-summed) in the event model:

* work units are **chunks**: ``C`` stride-1 output columns of one stripe, taken
  stripe-major (``i = s * J + j``); every unit holds the work content of its
  current chunk and drains it cycle by cycle;
* the five buffers between the six units are byte counters with a capacity:
  a producer reserves the bytes a chunk will occupy when it starts it (it
  waits while they do not fit; a chunk larger than the whole buffer enters only
  an empty one), the consumer frees them when it finishes it. The input memory
  is a sliding window of rows (rows enter with their stripe's read and leave
  when the decoder finishes the last stripe that needs them); a resident image
  never blocks;
* every unit has a state register: waiting (for its input chunk, or for room
  in its output buffer), waiting for the shared DRAM interface (DMA units),
  busy, or done;
* DMA channels count down their latency, then stream bytes at the configured
  bandwidth per cycle (an exact rational, so ``ceil`` is exact). The read of a
  stripe's new rows is one transfer on its chunk 0; the write of a stripe is
  one transfer streamed chunk by chunk (the scaled byte counter runs on across
  the stripe's chunks, each chunk finishing when the bytes of the row beats it
  completes are through). On a shared interface (``dma.interface = "shared"``)
  one transfer holds the interface at a time, granted first come, first served,
  the read side first on a tie;
* the decoder has one IDP manager per window row, each draining the row's
  elements in the chunk's input columns;
* the MAC array is a set of processing units (PUs; one for the dataflows that
  do not skip weights). Each PU holds, for its current input column, one
  explicit **tap list per MAC slot** (every tap the slot must perform: its
  lane's delivered pixels x its kernels x valid kernel taps, zero-weight taps
  left out when weights are skipped) and retires one tap per slot per cycle;
  the PU's column retires when all its slots' lists are empty, each PU walks
  the chunk's input columns on its own, and the chunk leaves the array when the
  last PU has finished it (PUs meet at every hand-off);
* PRE walks the chunk's output pixels word by word, then waits out the adder
  tree (once per chunk);
* the encoder drains the chunk's output elements;
* with two kernel banks the next pass's load is a transfer on the read
  channel issued when DMA read has finished its last chunk; whatever is left
  of it when the pass ends is the next pass's load.

Within one cycle boundary ``t`` the hand-offs are resolved to a fixed point,
visiting units downstream to upstream (bytes freed at ``t`` are visible
upstream at ``t``) and repeating until nothing changes (a chunk finished at
``t`` can be taken at ``t``; zero-cycle chunks pass straight through, also in
chains). Then the shared DRAM interface, if free, is granted; then every
unit's state classifies cycle ``t`` (§3.2) and every busy unit does one cycle
of work.

The model is written for clarity; the stepping loop is one numba function
because real layers take tens of millions of cycles.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numba import njit

from dataflows import (AcceleratorConfig, ScheduledLayer, get_dataflow, handoff_columns, input_column_chunks,
                       written_column_chunks)
from workloads import ConfigError, MappingError, TraceError, WorkloadError

from ..numerics import encode
from ..report import COUNTERS, LayerTiming, UnitStats

__all__ = ["clocked_layer", "exact_bandwidth", "row_elements"]

#: Units this reference steps, by position in the dataflow's pipeline (docs/architecture.md §3).
_N_UNITS = 6

# Unit state registers.
_WAIT = 0   # has finished its previous chunk; waits for its next input chunk or for room in its output buffer
_BUS = 1    # a DMA unit with a chunk of nonzero cycles, waiting for the shared DRAM interface
_BUSY = 2   # working on a chunk
_DONE = 3   # finished the pass's last chunk

# Columns of the stats array (same order as COUNTERS).
_C_BUSY, _C_IN, _C_OUT, _C_DRAM, _C_W, _C_IDLE = 0, 1, 2, 3, 4, 5

# Unit indices.
_DMA_R, _DEC, _MAC, _PRE, _ENC, _DMA_W = 0, 1, 2, 3, 4, 5

# Prefetch states (two kernel banks, docs §8.4).
_PF_NONE, _PF_WAIT, _PF_XFER, _PF_DONE = 0, 1, 2, 3

#: Largest scaled byte counter the DMA stepping may reach (int64 headroom).
_MAX_SCALED = 2**62


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
    Returns True when the transfer has finished at the end of this cycle: a
    transfer whose bytes are already through when its latency runs out (a write
    chunk that completes no beat but carries the stripe's latency) takes exactly
    its latency.
    """
    if lat_left[ch] > 0:
        lat_left[ch] -= 1
        return lat_left[ch] == 0 and acc[ch] >= target[ch]
    acc[ch] += bw_num
    return acc[ch] >= target[ch]


@njit(cache=True)
def _mac_deliver(lo, hi, oy0, rows, nonzero, skip_act, lane_of_c, m, kh, pad, stride, pix_ptr, pix_ky, pix_ch,
                 pix_flag):
    """The pixels the decoder delivers to each lane, per input column of one stripe.

    For column ``ix`` and lane ``ln``, entries ``pix_ptr[ix*m + ln] .. pix_ptr[ix*m + ln + 1]``
    are (window row ``iy``, stripe output row ``oy`` it feeds through kernel row
    ``ky = iy - oy + pad``, channel ``ch`` of the lane): every pixel of the lane
    when the input is raw, only the non-zero ones when it is compressed (zeros
    are not in the stream). ``pix_flag`` bit 0: the pixel is non-zero; bit 1:
    ``oy`` is kept after stride decimation. Fills the caller's arrays in place.
    """
    w = nonzero.shape[1]
    c = nonzero.shape[2]
    n = 0
    for ix in range(w):
        for ln in range(m):
            pix_ptr[ix * m + ln] = n
            for iy in range(lo, hi + 1):
                for oy in range(oy0, oy0 + rows):
                    ky = iy - oy + pad
                    if ky < 0 or ky >= kh:
                        continue
                    for ch in range(c):
                        if lane_of_c[ch] != ln:
                            continue
                        nz = nonzero[iy, ix, ch]
                        if skip_act and not nz:
                            continue
                        pix_ky[n] = ky
                        pix_ch[n] = ch
                        pix_flag[n] = (1 if nz else 0) + (2 if oy % stride == 0 else 0)
                        n += 1
    pix_ptr[w * m] = n


@njit(cache=True)
def _mac_load_column(p, start, end, pix_ptr, pix_ky, pix_ch, pix_flag, m, skip_w, has_w, wmask, cin_g, cout_g,
                     slot_lane, slot_kptr, slot_k, pu_ptr, pu_slots, kw, pad, stride, wo1,
                     taps, slot_pos, slot_len, active, n_active):
    """Load PU ``p``'s tap lists for its first input column in ``start .. end - 1`` that has work.

    For every MAC slot of the PU, its list holds one entry per tap it must
    perform in the column: each pixel delivered to the slot's lane
    (:func:`_mac_deliver`), each of the slot's kernels, each kernel column ``kx``
    landing on a stride-1 output column ``ox = ix + pad - kx``. With weight
    skipping only the taps whose weight is non-zero are listed (a channel
    outside the kernel's group has none). The entry is 1 when the tap is a
    useful MAC (non-zero pixel, non-zero weight, output row and column kept
    after stride decimation), else 0. ``wmask[k, c, ky]`` has bit ``kx`` set when
    weight ``(k, ky, kx, c)`` of the kernel's group is non-zero.

    Writes the entries into row ``p`` of ``taps`` (grown when too small), each
    slot's list start and length into ``slot_pos``/``slot_len``; ``active[p, :n_active[p]]``
    lists the slots with a non-empty list, longest first. Returns ``(column, taps)``;
    column -1 when no column from ``start`` to the chunk's last (``end - 1``) has work
    for the PU (columns without work take no cycle).
    """
    for ix in range(start, end):
        # Kernel columns kx_lo..kx_hi of this input column land on a stride-1 output
        # (bits of ``valid``); ``kept``: those whose output column survives decimation.
        valid = 0
        kept = 0
        kx_lo = kw
        kx_hi = -1
        for kx in range(kw):
            ox = ix + pad - kx
            if 0 <= ox < wo1:
                valid |= 1 << kx
                kx_lo = min(kx_lo, kx)
                kx_hi = kx
                if ox % stride == 0:
                    kept |= 1 << kx
        n = 0
        n_active[p] = 0
        for q in range(pu_ptr[p], pu_ptr[p + 1]):
            s = pu_slots[q]
            ln = slot_lane[s]
            e0, e1 = pix_ptr[ix * m + ln], pix_ptr[ix * m + ln + 1]
            bound = (e1 - e0) * (slot_kptr[s + 1] - slot_kptr[s]) * kw
            if n + bound > taps.shape[1]:
                grown = np.zeros((taps.shape[0], max(2 * taps.shape[1], n + bound)), dtype=np.uint8)
                grown[:, :taps.shape[1]] = taps
                taps = grown
            slot_pos[s] = n
            if valid:
                for e in range(e0, e1):
                    ky = pix_ky[e]
                    ch = pix_ch[e]
                    g = ch // cin_g
                    cl = ch - g * cin_g
                    flag = pix_flag[e]
                    for j in range(slot_kptr[s], slot_kptr[s + 1]):
                        k = slot_k[j]
                        if k // cout_g == g:
                            nzw = wmask[k, cl, ky] if has_w else valid
                        else:
                            nzw = 0                       # a channel outside the kernel's group
                        listed = nzw if skip_w else valid
                        useful = (nzw & kept) if flag == 3 else 0   # non-zero pixel on a kept output row
                        for kx in range(kx_lo, kx_hi + 1):
                            # NOTE: branch-free: the entry is always written, the list grows only
                            # when kernel column kx is a tap of this slot.
                            taps[p, n] = (useful >> kx) & 1
                            n += (listed >> kx) & 1
            slot_len[s] = n - slot_pos[s]
            if slot_len[s] > 0:
                active[p, n_active[p]] = s
                n_active[p] += 1
        if n_active[p] > 0:
            na = n_active[p]
            order = np.argsort(-slot_len[active[p, :na]], kind="mergesort")
            active[p, :na] = active[p, :na][order]
            return ix, taps
    return -1, taps


@njit(cache=True)
def _clock_pass(latency, bw_num, bw_den, shared, load_bytes, load_lat, load_acc, prefetch_bytes,
                n_chunks, read_bytes, write_cum, caps, alloc, free,
                chunk_el, win_lo, win_hi, dec_rate,
                nonzero, skip_act, skip_w, has_w, wmask, cin_g, cout_g, lane_of_c, m,
                slot_lane, slot_kptr, slot_k, pu_ptr, pu_slots, kh, kw, pad, stride, out_lo, out_rows,
                col_lo, col_hi, pre_words, pre_rate, pre_tree, out_cols, wo1,
                enc_el, enc_rate):
    """Step one pass clock by clock.

    Work unit ``i = s * n_chunks + j`` is chunk ``j`` of stripe ``s``.

    Parameters (all counts are integers)
    ----------
    latency : DMA latency per transfer, in cycles.
    bw_num, bw_den : DMA bandwidth ``bw_num / bw_den`` bytes per cycle.
    shared : the read and write sides take turns on one DRAM interface.
    load_bytes : bytes of the kernel/bias/config load at the pass start (0: nothing to load).
    load_lat, load_acc : the load transfer's latency counter and scaled byte counter at the
        pass start (``latency`` and 0 for a fresh load; what is left of a prefetched one).
    prefetch_bytes : bytes of the next pass's load, issued on the DMA read channel as soon
        as DMA read has finished its last chunk (a second kernel bank); 0: none.
    n_chunks : chunks per stripe.
    read_bytes : (S,) bytes DMA-read on chunk 0 of each stripe.
    write_cum : (S, J) bytes of the stripe's write transfer through chunk ``j`` (whole beats of
        each written row, counted up to the chunk that completes them).
    caps : (5,) capacities in bytes of the buffers after units 0..4.
    alloc : (5, N) bytes unit ``b`` reserves in buffer ``b`` when it starts chunk ``i``;
        free : (5, N) bytes unit ``b + 1`` frees in buffer ``b`` when it finishes chunk ``i``.
    chunk_el : (H, J) 16-bit stream elements of each input row in each chunk's input columns;
        win_lo, win_hi : (S,) window rows; dec_rate : elements per cycle per IDP manager.
    nonzero : (H, W, C) bool bitmap; skip_act : the input is compressed (zero pixels
        are never delivered); skip_w : zero-weight taps are not performed;
        has_w, wmask : whether weights are known, and their non-zero map ``(C_out, C_in / groups, kh)``,
        bit ``kx`` set for a non-zero weight; cin_g, cout_g : channels per group.
    lane_of_c : (C,) lane of each input channel; m : lanes (MACs per output channel).
    slot_lane, slot_kptr, slot_k : lane of each MAC slot and CSR of its kernels (output channels).
    pu_ptr, pu_slots : CSR of the slots of each PU of the pass.
    kh, kw, pad, stride : kernel size, padding (pixels) and the layer's stride (host decimation).
    out_lo, out_rows : (S,) first stride-1 output row and row count of each stripe.
    col_lo, col_hi : (J,) input columns ``col_lo[j] .. col_hi[j] - 1`` of each chunk.
    pre_words : 16-channel words per output pixel; pre_rate : words per cycle;
        pre_tree : adder-tree cycles per chunk; out_cols : (J,) stride-1 output columns of each
        chunk; wo1 : stride-1 output width.
    enc_el : (S, J) output elements of each chunk; enc_rate : elements per cycle.

    Returns
    -------
    cycles : cycles of the pass; stats : (6, 6) int64 per unit and class (COUNTERS order);
    macs : useful MACs retired in this pass; pu_ops : (P,) taps retired per PU;
    pu_busy : (N, P) cycles each PU worked on each chunk;
    pf_left, pf_lat, pf_acc : whether the prefetch is unfinished when the pass ends, and its
        latency and scaled byte counters then; dram_busy : cycles with a transfer on a DMA
        channel (the interface).
    """
    # NOTE: one flat numba loop with the six units written out in place, and state held in
    # small int64 arrays instead of per-unit objects: numba has no cheap dynamic dispatch, and
    # real layers need tens of millions of iterations. Each unit's code is one labelled block.
    n_stripes = read_bytes.shape[0]
    n = n_stripes * n_chunks
    max_win = 1
    for s in range(n_stripes):
        max_win = max(max_win, win_hi[s] - win_lo[s] + 1)
    state = np.zeros(6, dtype=np.int64)          # all units start in _WAIT
    done = np.zeros(6, dtype=np.int64)           # chunks finished so far (chunk done[k] is next)
    req = np.zeros(6, dtype=np.int64)            # cycle a DMA unit asked for the interface
    held = np.zeros(5, dtype=np.int64)           # bytes held in the buffers after units 0..4
    stats = np.zeros((6, 6), dtype=np.int64)
    # DMA channels: 0 = read (loads, prefetches, input rows), 1 = write.
    lat_left = np.zeros(2, dtype=np.int64)
    acc = np.zeros(2, dtype=np.int64)
    target = np.zeros(2, dtype=np.int64)
    # The shared interface: -1 free, 0 the read side holds it, 1 the write side.
    bus = -1
    # Decoder: one remaining-elements register per IDP manager.
    mgr_left = np.zeros(max_win, dtype=np.int64)
    n_mgr = 0
    # MAC array: per PU its current column and one tap list per slot (row p of ``taps``, slot s
    # owns taps[p, slot_pos[s]:slot_pos[s] + slot_len[s]]); in the column's cycle t (``elapsed``)
    # every slot retires its tap t; active[p, :n_active[p]] are the slots with taps left, longest first.
    n_pu = pu_ptr.shape[0] - 1
    n_slots = slot_lane.shape[0]
    max_slots = 1
    for p in range(n_pu):
        max_slots = max(max_slots, pu_ptr[p + 1] - pu_ptr[p])
    taps = np.zeros((max(n_pu, 1), 1024), dtype=np.uint8)
    slot_pos = np.zeros(n_slots, dtype=np.int64)
    slot_len = np.zeros(n_slots, dtype=np.int64)
    elapsed = np.zeros(max(n_pu, 1), dtype=np.int64)    # cycles the PU has spent on its current column
    active = np.zeros((max(n_pu, 1), max_slots), dtype=np.int64)
    n_active = np.zeros(max(n_pu, 1), dtype=np.int64)
    pu_col = np.full(max(n_pu, 1), -1, dtype=np.int64)   # -1: the PU has finished the chunk
    pu_ops = np.zeros(max(n_pu, 1), dtype=np.int64)
    pu_busy = np.zeros((n, max(n_pu, 1)), dtype=np.int64)
    w = nonzero.shape[1]
    c = nonzero.shape[2]
    pix_ptr = np.zeros(w * m + 1, dtype=np.int64)     # pixels delivered per (column, lane) of the stripe
    pix_cap = w * max_win * 2 * c
    pix_ky = np.zeros(pix_cap, dtype=np.int64)
    pix_ch = np.zeros(pix_cap, dtype=np.int64)
    pix_flag = np.zeros(pix_cap, dtype=np.uint8)
    mac_i = 0           # the MAC array's current chunk
    mac_end = 0         # one past its last input column
    mac_stripe = -1     # the stripe whose pixels are laid out in pix_*
    # PRE and encoder registers.
    pre_px_left = 0
    pre_words_left = 0
    pre_tree_left = 0
    enc_left = 0
    macs = 0
    dram_busy = 0

    loading = load_bytes > 0
    if loading:
        lat_left[0] = load_lat
        acc[0] = load_acc
        target[0] = load_bytes * bw_den
    pf = _PF_NONE       # the prefetch of the next pass's load on the read channel
    pf_req = 0
    t = 0
    while True:
        if not loading:
            # ---- cycle boundary t: resolve hand-offs to a fixed point, downstream first.
            changed = True
            while changed:
                changed = False
                for k in range(5, -1, -1):
                    if state[k] != _WAIT:
                        continue
                    i = done[k]                       # the chunk to take next
                    if i == n:
                        state[k] = _DONE
                        changed = True
                        continue
                    if k > 0 and done[k - 1] <= i:
                        continue                      # the upstream unit has not finished it
                    if k < 5:
                        if held[k] > 0 and held[k] + alloc[k, i] > caps[k]:
                            continue                  # no room in the output buffer
                        held[k] += alloc[k, i]
                    changed = True
                    s = i // n_chunks
                    j = i - s * n_chunks
                    zero = False
                    if k == _DMA_R:
                        if j > 0 or read_bytes[s] == 0:
                            zero = True
                        else:
                            lat_left[0] = latency
                            acc[0] = 0
                            target[0] = read_bytes[s] * bw_den
                    elif k == _DEC:
                        n_mgr = win_hi[s] - win_lo[s] + 1
                        zero = True
                        for r in range(n_mgr):
                            mgr_left[r] = chunk_el[win_lo[s] + r, j]
                            if mgr_left[r] > 0:
                                zero = False
                    elif k == _MAC:
                        mac_i = i
                        if mac_stripe != s:
                            mac_stripe = s
                            _mac_deliver(win_lo[s], win_hi[s], out_lo[s], out_rows[s], nonzero, skip_act,
                                         lane_of_c, m, kh, pad, stride, pix_ptr, pix_ky, pix_ch, pix_flag)
                        mac_end = col_hi[j]
                        zero = True
                        for p in range(n_pu):
                            col, taps = _mac_load_column(
                                p, col_lo[j], mac_end, pix_ptr, pix_ky, pix_ch, pix_flag, m, skip_w, has_w, wmask,
                                cin_g, cout_g, slot_lane, slot_kptr, slot_k, pu_ptr, pu_slots, kw, pad, stride, wo1,
                                taps, slot_pos, slot_len, active, n_active)
                            pu_col[p] = col
                            elapsed[p] = 0
                            if col >= 0:
                                zero = False
                    elif k == _PRE:
                        pre_px_left = out_rows[s] * out_cols[j]
                        pre_words_left = pre_words
                        pre_tree_left = pre_tree
                        zero = (pre_px_left == 0 or pre_words == 0) and pre_tree == 0
                    elif k == _ENC:
                        enc_left = enc_el[s, j]
                        zero = enc_left == 0
                    else:
                        # One write transfer per stripe, streamed chunk by chunk: the scaled byte
                        # counter runs on across the stripe's chunks; chunk 0 carries the latency.
                        if j == 0:
                            lat_left[1] = latency if write_cum[s, n_chunks - 1] > 0 else 0
                            acc[1] = 0
                        target[1] = write_cum[s, j] * bw_den
                        zero = lat_left[1] == 0 and acc[1] >= target[1]
                    if zero:
                        # Finished at once: free its bytes upstream, stay ready for the next chunk.
                        if k > 0:
                            held[k - 1] -= free[k - 1, i]
                        done[k] += 1
                    elif shared and (k == _DMA_R or k == _DMA_W):
                        state[k] = _BUS
                        req[k] = t
                    else:
                        state[k] = _BUSY
            if pf == _PF_NONE and prefetch_bytes > 0 and state[_DMA_R] == _DONE:
                lat_left[0] = latency
                acc[0] = 0
                target[0] = prefetch_bytes * bw_den
                pf = _PF_WAIT if shared else _PF_XFER
                pf_req = t
            if state[_DMA_W] == _DONE:
                break
            # ---- the shared DRAM interface: first come, first served; the read side first on a tie.
            if shared and bus < 0:
                rd = -1
                if state[_DMA_R] == _BUS:
                    rd = req[_DMA_R]
                elif pf == _PF_WAIT:
                    rd = pf_req
                if rd >= 0 and (state[_DMA_W] != _BUS or rd <= req[_DMA_W]):
                    bus = 0
                    if state[_DMA_R] == _BUS:
                        state[_DMA_R] = _BUSY
                    else:
                        pf = _PF_XFER
                elif state[_DMA_W] == _BUS:
                    bus = 1
                    state[_DMA_W] = _BUSY

        # ---- classify cycle t (docs/architecture.md §3.2).
        if loading:
            stats[_DMA_R, _C_BUSY] += 1
            for k in range(1, 6):
                stats[k, _C_W] += 1
            dram_busy += 1
        else:
            xfer = state[_DMA_R] == _BUSY or state[_DMA_W] == _BUSY or pf == _PF_XFER
            if xfer:
                dram_busy += 1
            for k in range(6):
                sk = state[k]
                if sk == _BUSY:
                    stats[k, _C_BUSY] += 1
                elif sk == _BUS:
                    stats[k, _C_DRAM] += 1
                elif sk == _DONE:
                    if k == _DMA_R and pf == _PF_XFER:
                        stats[k, _C_BUSY] += 1            # the read channel is prefetching
                    elif k == _DMA_R and pf == _PF_WAIT:
                        stats[k, _C_DRAM] += 1            # the prefetch waits for the interface
                    else:
                        stats[k, _C_IDLE] += 1
                elif k > 0 and done[k - 1] <= done[k]:
                    stats[k, _C_IN] += 1
                else:
                    stats[k, _C_OUT] += 1

        # ---- one cycle of work for every busy unit; a unit finishing frees its input bytes now
        # (visible at the next boundary).
        if loading:
            if _dma_step(0, lat_left, acc, target, bw_num):
                loading = False
        else:
            if state[_DMA_R] == _BUSY and _dma_step(0, lat_left, acc, target, bw_num):
                done[_DMA_R] += 1
                state[_DMA_R] = _WAIT
                bus = -1
            if pf == _PF_XFER and _dma_step(0, lat_left, acc, target, bw_num):
                pf = _PF_DONE
                bus = -1
            if state[_DEC] == _BUSY:
                left = 0
                for r in range(n_mgr):
                    mgr_left[r] -= min(dec_rate, mgr_left[r])
                    left += mgr_left[r]
                if left == 0:
                    held[_DMA_R] -= free[_DMA_R, done[_DEC]]
                    done[_DEC] += 1
                    state[_DEC] = _WAIT
            if state[_MAC] == _BUSY:
                working = False
                for p in range(n_pu):
                    if pu_col[p] < 0:
                        continue                              # this PU has finished the chunk
                    pu_busy[mac_i, p] += 1
                    t_col = elapsed[p]
                    for q in range(n_active[p]):              # every slot with taps left retires one
                        sl = active[p, q]
                        macs += taps[p, slot_pos[sl] + t_col]
                    pu_ops[p] += n_active[p]
                    elapsed[p] = t_col + 1
                    while n_active[p] > 0 and slot_len[active[p, n_active[p] - 1]] <= t_col + 1:
                        n_active[p] -= 1                      # this slot's list is empty
                    if n_active[p] == 0:                      # the PU's column retires
                        col, taps = _mac_load_column(
                            p, pu_col[p] + 1, mac_end, pix_ptr, pix_ky, pix_ch, pix_flag, m, skip_w, has_w, wmask,
                            cin_g, cout_g, slot_lane, slot_kptr, slot_k, pu_ptr, pu_slots, kw, pad, stride, wo1,
                            taps, slot_pos, slot_len, active, n_active)
                        pu_col[p] = col
                        elapsed[p] = 0
                    if pu_col[p] >= 0:
                        working = True
                if not working:                               # the last PU finished the chunk
                    held[_DEC] -= free[_DEC, done[_MAC]]
                    done[_MAC] += 1
                    state[_MAC] = _WAIT
            if state[_PRE] == _BUSY:
                if pre_px_left > 0 and pre_words > 0:
                    pre_words_left -= min(pre_rate, pre_words_left)
                    if pre_words_left == 0:
                        pre_px_left -= 1
                        pre_words_left = pre_words
                elif pre_tree_left > 0:
                    pre_tree_left -= 1
                if (pre_px_left == 0 or pre_words == 0) and pre_tree_left == 0:
                    held[_MAC] -= free[_MAC, done[_PRE]]
                    done[_PRE] += 1
                    state[_PRE] = _WAIT
            if state[_ENC] == _BUSY:
                enc_left -= min(enc_rate, enc_left)
                if enc_left == 0:
                    held[_PRE] -= free[_PRE, done[_ENC]]
                    done[_ENC] += 1
                    state[_ENC] = _WAIT
            if state[_DMA_W] == _BUSY and _dma_step(1, lat_left, acc, target, bw_num):
                held[_ENC] -= free[_ENC, done[_DMA_W]]
                done[_DMA_W] += 1
                state[_DMA_W] = _WAIT
                bus = -1
        t += 1
    pf_left = prefetch_bytes > 0 and pf != _PF_DONE
    if pf == _PF_NONE or pf == _PF_WAIT:                # the transfer never started: all of it is left
        lat_left[0] = latency
        acc[0] = 0
    return t, stats, macs, pu_ops[:n_pu], pu_busy[:, :n_pu], pf_left, lat_left[0], acc[0], dram_busy


# ---------------------------------------------------------------------------
# Work content of a layer (data, not time)
# ---------------------------------------------------------------------------

def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def row_elements(act: np.ndarray, compressed: bool) -> np.ndarray:
    """16-bit stream elements per row: SM words + non-zeros (row-aligned), or raw values."""
    h, w, c = act.shape
    if not compressed:
        return np.full(h, w * c, dtype=np.int64)
    _, _, sm_ptr, nz_ptr = encode(act)
    return (np.diff(sm_ptr) + np.diff(nz_ptr)).astype(np.int64)


def _chunk_elements(act: np.ndarray, compressed: bool, col_chunk: np.ndarray, n_chunks: int) -> np.ndarray:
    """16-bit stream elements of each row that belong to each chunk, int64 ``(H, n_chunks)``.

    A chunk owns the columns ``col_chunk`` assigns it (docs §3): of a compressed row,
    the non-zeros in those columns and the SM words that start in them (word ``k``
    covers stream positions ``16k .. 16k + 15``, position = column x channels +
    channel, and starts in column ``16k // channels``); of a raw row, every value
    of those columns. The chunks of a row add up to :func:`row_elements`.
    """
    h, w, c = act.shape
    owner = np.zeros((w, n_chunks), dtype=np.int64)      # owner[x, j] = 1: column x belongs to chunk j
    owner[np.arange(w), col_chunk] = 1
    if not compressed:
        return np.broadcast_to(owner.sum(axis=0) * c, (h, n_chunks)).astype(np.int64)
    nnz = np.count_nonzero(act, axis=2).astype(np.int64)          # (H, W)
    words = -(-(w * c) // 16)
    sm = np.bincount(col_chunk[(16 * np.arange(words)) // c], minlength=n_chunks).astype(np.int64)
    el = nnz @ owner + sm[None, :]
    if not np.array_equal(el.sum(axis=1), row_elements(act, True)):   # the codec's own count
        raise AssertionError("chunk elements do not add up to the encoded rows")
    return el


def _beats(elements: np.ndarray, values_per_beat: int) -> np.ndarray:
    return -(-elements // values_per_beat)


def _as_int16_hwc(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.dtype != np.int16:
        raise TraceError(f"{what} must be an int16 (H, W, C) array, not {a.ndim}-D {a.dtype!r}")
    return np.ascontiguousarray(a)


def _kernel_block_words(full: np.ndarray, lane_channels: np.ndarray) -> np.ndarray:
    """16-bit words of each kernel's compressed block for one lane: SM words + non-zeros.

    ``full`` is the block-diagonal ``(C_out, kh, kw, C_in)`` weight tensor. A block is
    the lane's input channels x kh x kw weights of one kernel, stored like one
    activation row (**Assumption**, docs §8): ``ceil(taps x channels / 16)`` SM words
    plus the non-zero values. A lane without channels holds nothing.
    """
    cout, kh, kw, _ = full.shape
    if len(lane_channels) == 0:
        return np.zeros(cout, dtype=np.int64)
    block = np.ascontiguousarray(full[:, :, :, lane_channels].reshape(cout, kh * kw, len(lane_channels)))
    _, _, sm_ptr, nz_ptr = encode(block)          # one "row" per kernel
    return (np.diff(sm_ptr) + np.diff(nz_ptr)).astype(np.int64)


def clocked_layer(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray,
                  cfg: AcceleratorConfig, weights: np.ndarray | None = None) -> LayerTiming:
    """Time one accelerator layer by stepping every unit one clock cycle at a time.

    Parameters
    ----------
    sched : the scheduled layer (``where == "accelerator"``).
    act_in : int16 (H, W, C) input as the array sees it (FC: (1, 1, N)).
    out_written : int16 output as the PRE writes it: stride-1, after the fused
        pool if any; shape ``(Ho1, Wo1, C_out)`` or ``(Ho1 // 2, Wo1 // 2, C_out)``.
    cfg : the accelerator configuration (``array.dataflow`` picks what is skipped).
    weights : the layer's ``(C_out, kh, kw, C_in / groups)`` weights. Required by the
        dataflows that skip zero weights; otherwise only
        used to count useful MACs (every weight counts as non-zero without them).

    Returns
    -------
    LayerTiming (no action counts); cycles are accelerator clock cycles, with the
    six counters of every unit (§3.2), ``handoff_columns`` (the chunk width ``C``)
    and ``dram_busy_cycles`` (cycles with a transfer on the DRAM interface, summed
    over passes).

    Raises
    ------
    WorkloadError : the layer is not mapped onto the accelerator.
    TraceError : the arrays do not match the layer.
    MappingError : one stripe window does not fit the input memory, a weight-skipping
        dataflow has no weights, or the pass planning rejects the layer.
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
    dataflow = get_dataflow(a.dataflow)
    flow = dataflow.traits
    units = tuple(dataflow.units)
    if len(units) != _N_UNITS:
        raise WorkloadError(f"dataflow {a.dataflow!r} has a {len(units)}-unit pipeline; the clock-stepped "
                            f"reference steps the {_N_UNITS}-unit stripe pipeline")
    cout = mp.out_channels
    groups = mp.groups
    cin_g = c // groups
    cout_g = cout // groups
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != (cout, kh, kw, cin_g):
            raise TraceError(f"layer {sched.layer.name!r}: weights have shape {weights.shape!r}, expected "
                             f"{(cout, kh, kw, cin_g)!r}")
    elif flow.skip_weights or flow.compressed_weights:
        raise MappingError(f"layer {sched.layer.name!r}: dataflow {a.dataflow!r} "
                           f"{'skips zero weights' if flow.skip_weights else 'compresses kernels'} and needs "
                           "the layer's weights")
    # What the dataflow stores compressed and what it skips (docs §8 table).
    compressed_in = sched.compressed_input and flow.compressed_activations
    compressed_out = sched.compressed_output and flow.compressed_activations
    n_pus = a.num_pus if flow.uses_pus else 1      # without PUs the array runs in lockstep

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
    # The input memory frees a row when the decoder finishes the last stripe that needs it:
    # rows below the next stripe's window (the last stripe: all the rows it still holds).
    last_stripe_of_row = np.full(h, n_stripes - 1, dtype=np.int64)
    for s in range(n_stripes - 1):
        last_stripe_of_row[win_lo[s]:win_lo[s + 1]] = np.minimum(last_stripe_of_row[win_lo[s]:win_lo[s + 1]], s)

    # Input side: stream elements, DMA bytes, residency.
    row_el = row_elements(act, compressed_in)
    row_bytes = _beats(row_el, d.values_per_beat) * d.beat_bytes
    read_bytes = np.zeros(n_stripes, dtype=np.int64)
    np.add.at(read_bytes, first_stripe_of_row, row_bytes)
    mem_bytes = mem.input_memory_kib * 1024
    image_bytes = int(row_el.sum()) * 2
    window_bytes = max(int(row_el[win_lo[s]:win_hi[s] + 1].sum()) * 2 for s in range(n_stripes))
    resident = image_bytes <= mem_bytes
    if not resident and window_bytes > mem_bytes:
        raise MappingError(f"layer {sched.layer.name!r}: one stripe window ({window_bytes} bytes) does not "
                           f"fit memory.input_memory_kib={mem.input_memory_kib}")

    # MAC array: lanes (docs §2).
    m = mp.m
    p2 = _next_pow2(c)
    lane_of_c = np.array([ch if p2 <= m else ch // (p2 // m) for ch in range(c)], dtype=np.int64)
    lane_members = [np.flatnonzero(lane_of_c == ln) for ln in range(m)]
    nonzero = act != 0
    has_w = weights is not None
    # Non-zero weights as one bit per kernel column: wmask[k, c, ky] bit kx <=> weights[k, ky, kx, c] != 0.
    if has_w:
        bitval = (1 << np.arange(kw, dtype=np.int64))[None, None, :, None]
        wmask = np.ascontiguousarray(((weights != 0) * bitval).sum(axis=2).transpose(0, 2, 1)).astype(np.uint16)
    else:
        wmask = np.zeros((1, 1, 1), dtype=np.uint16)

    # Pass plans (shared mapping): which output channels each slot group computes, and its PU.
    plans = dataflow.plan(sched, cfg, weights)
    if flow.compressed_weights:
        full = np.zeros((cout, kh, kw, c), dtype=np.int16)
        for g in range(groups):
            full[g * cout_g:(g + 1) * cout_g, :, :, g * cin_g:(g + 1) * cin_g] = weights[g * cout_g:(g + 1) * cout_g]
        block_words = np.stack([_kernel_block_words(full, lane_members[ln]) for ln in range(m)], axis=1)

    # Work units: chunks of C stride-1 output columns (the shared chunk-width rule, docs §3).
    max_slots = max(len(p.group_ptr) - 1 for p in plans) * m
    max_channels = max(len(p.channels) for p in plans)
    hand = handoff_columns(sched, act.shape, cfg, max_slots, max_channels)
    cols, n_chunks = int(hand.columns), int(hand.chunks)
    n_items = n_stripes * n_chunks
    in_chunk = np.asarray(input_column_chunks(w, kw, pad, cols, n_chunks), dtype=np.int64)
    # Input columns of chunk j: col_lo[j] .. col_hi[j] - 1 (the chunk map never decreases).
    col_lo = np.searchsorted(in_chunk, np.arange(n_chunks), side="left").astype(np.int64)
    col_hi = np.searchsorted(in_chunk, np.arange(n_chunks), side="right").astype(np.int64)
    out_cols = np.array([min((j + 1) * cols, wo1) - j * cols for j in range(n_chunks)], dtype=np.int64)
    w_written = out.shape[1]
    wr_chunk = np.asarray(written_column_chunks(w_written, pooled, cols, n_chunks), dtype=np.int64)
    wr_cols = np.bincount(wr_chunk, minlength=n_chunks).astype(np.int64)
    # Decoder: elements of each input row per chunk (IDP managers); decoded pixels per chunk.
    chunk_el = _chunk_elements(act, compressed_in, in_chunk, n_chunks)
    in_owner = np.zeros((w, n_chunks), dtype=np.int64)
    in_owner[np.arange(w), in_chunk] = 1
    if compressed_in:
        row_px = np.count_nonzero(act, axis=2).astype(np.int64) @ in_owner       # (H, J) non-zeros
    else:
        row_px = np.broadcast_to(in_owner.sum(axis=0) * c, (h, n_chunks))        # every pixel
    dec_px = np.stack([row_px[win_lo[s]:win_hi[s] + 1].sum(axis=0) for s in range(n_stripes)])   # (S, J)
    # Input memory: a stripe's chunk 0 brings the rows it needs first; the decoder's last chunk of
    # a stripe frees the rows no later stripe needs. A resident image never blocks.
    in_alloc = np.zeros(n_stripes, dtype=np.int64)
    in_free = np.zeros(n_stripes, dtype=np.int64)
    if not resident:
        np.add.at(in_alloc, first_stripe_of_row, 2 * row_el)
        np.add.at(in_free, last_stripe_of_row, 2 * row_el)
    caps = np.array([mem_bytes] + [int(getattr(mem, f) * 1024) for f in
                                   ("decoder_fifo_kib", "pre_buffer_kib", "encoder_fifo_kib", "output_buffer_kib")],
                    dtype=np.int64)
    # Written rows of each stripe: one after the fused 2x2 pool, else its stride-1 rows.
    o_stripe = np.arange(out.shape[0]) if pooled else np.arange(out.shape[0]) // 2
    wr_rows = np.bincount(o_stripe, minlength=n_stripes).astype(np.int64)

    # DMA bandwidth as an exact fraction.
    bw = exact_bandwidth(d.bandwidth_bytes_per_cycle)
    bw_num, bw_den = bw.numerator, bw.denominator
    shared = d.interface == "shared"

    pre_tree = int(math.log2(m)) + 1
    bias_beats = math.ceil(a.num_macs / d.values_per_beat)
    timing = LayerTiming(units={u: UnitStats() for u in units}, passes=len(plans), resident=resident,
                         handoff_columns=cols)
    pu_ops_total = np.zeros(n_pus, dtype=np.int64)
    busy_max = 0
    busy_mean = 0.0

    # Every pass's MAC slots and its kernel, bias and register load (§4.1): raw kernels (every
    # slot holds contiguous_kernels words) or, compressed, each slot's block of its kernels'
    # lane blocks, starting on a new beat.
    slots = []
    for plan in plans:
        chans = np.asarray(plan.channels, dtype=np.int64)
        n_groups = len(plan.group_ptr) - 1
        # MAC slots: group g, lane l is slot g * m + l; it computes the group's kernels.
        slot_lane = np.array([ln for g in range(n_groups) for ln in range(m)], dtype=np.int64)
        slot_kernels = [chans[plan.group_ptr[g]:plan.group_ptr[g + 1]] for g in range(n_groups) for _ in range(m)]
        if flow.compressed_weights:
            slot_words = np.array([int(block_words[slot_kernels[s], slot_lane[s]].sum())
                                   for s in range(len(slot_lane))], dtype=np.int64)
            kernel_beats = int(_beats(slot_words, d.values_per_beat).sum())
        else:
            kernel_beats = len(slot_lane) * math.ceil(mp.contiguous_kernels / d.values_per_beat)
        load_bytes = (d.config_beats_per_pass + bias_beats + kernel_beats) * d.beat_bytes
        slots.append((chans, slot_lane, slot_kernels, kernel_beats, load_bytes))

    carry = None          # a prefetched load still in flight: (latency counter, scaled bytes)
    for p, plan in enumerate(plans):
        chans, slot_lane, slot_kernels, kernel_beats, load_bytes = slots[p]
        slot_kptr = np.concatenate(([0], np.cumsum([len(x) for x in slot_kernels]))).astype(np.int64)
        slot_k = np.concatenate(slot_kernels).astype(np.int64)
        slot_pu = np.asarray(plan.slot_pu, dtype=np.int64)
        pus = sorted(set(int(x) for x in slot_pu))
        pu_members = [np.flatnonzero(slot_pu == u) for u in pus]
        pu_ptr = np.concatenate(([0], np.cumsum([len(x) for x in pu_members]))).astype(np.int64)
        pu_slots = np.concatenate(pu_members).astype(np.int64)
        # PRE: every output pixel of the pass is walked in 16-channel words.
        pre_words = math.ceil(max(mp.out_per_pass, len(chans)) / 16)
        # Output side of this pass: the pass's channels of each written row, per chunk.
        sl = np.ascontiguousarray(out[:, :, chans])
        o_el = _chunk_elements(sl, compressed_out, wr_chunk, n_chunks)          # (written rows, J)
        enc_el = np.zeros((n_stripes, n_chunks), dtype=np.int64)
        np.add.at(enc_el, o_stripe, o_el)
        # The stripe's write: each row's beats are charged to the chunk that completes them.
        o_beats = _beats(np.cumsum(o_el, axis=1), d.values_per_beat) * d.beat_bytes
        write_cum = np.zeros((n_stripes, n_chunks), dtype=np.int64)
        np.add.at(write_cum, o_stripe, o_beats)
        # Bytes each chunk reserves in the buffer after each unit, and what its consumer frees.
        alloc = np.zeros((5, n_items), dtype=np.int64)
        alloc[0, ::n_chunks] = in_alloc
        alloc[1] = (2 * dec_px).ravel()
        alloc[2] = (2 * out_rows[:, None] * out_cols[None, :] * len(slot_lane)).ravel()
        alloc[3] = (2 * wr_rows[:, None] * wr_cols[None, :] * len(chans)).ravel()
        alloc[4] = (2 * enc_el).ravel()
        free = alloc.copy()
        free[0] = 0
        free[0, n_chunks - 1::n_chunks] = in_free
        # With two kernel banks every pass after the first loads during the previous one.
        prefetching = flow.kernel_banks > 1 and p > 0
        if not prefetching:
            start_bytes, start_lat, start_acc = load_bytes, int(d.latency_cycles), 0
        elif carry is None:
            start_bytes, start_lat, start_acc = 0, 0, 0        # the prefetch finished in time
        else:
            start_bytes, (start_lat, start_acc) = load_bytes, carry
        next_bytes = slots[p + 1][4] if flow.kernel_banks > 1 and p + 1 < len(plans) else 0
        rb = read_bytes if (p == 0 or not resident) else np.zeros(n_stripes, dtype=np.int64)
        biggest = max(load_bytes, next_bytes, int(rb.max()), int(write_cum[:, -1].max()))
        if (biggest + 1) * bw_den + bw_num >= _MAX_SCALED:
            raise ConfigError(f"dma.bandwidth_bytes_per_cycle={d.bandwidth_bytes_per_cycle!r} = {bw} needs a "
                              "denominator too large for exact stepping; use fewer decimal digits")
        cycles, stats, macs, pu_ops, pu_busy, pf_left, pf_lat, pf_acc, dram_busy = _clock_pass(
            int(d.latency_cycles), bw_num, bw_den, shared, start_bytes, start_lat, start_acc, next_bytes,
            n_chunks, rb, write_cum, caps, alloc, free,
            chunk_el, win_lo, win_hi, int(a.decoder_values_per_cycle),
            nonzero, compressed_in, flow.skip_weights, has_w, wmask, cin_g, cout_g, lane_of_c, m,
            slot_lane, slot_kptr, slot_k, pu_ptr, pu_slots, kh, kw, pad, int(mp.stride), out_lo, out_rows,
            col_lo, col_hi, pre_words, int(a.pre_words_per_cycle), pre_tree, out_cols, wo1,
            enc_el, int(a.encoder_values_per_cycle))
        carry = (int(pf_lat), int(pf_acc)) if pf_left else None
        timing.cycles += int(cycles)
        timing.pass_cycles.append(int(cycles))
        timing.pass_channels.append([int(x) for x in chans])
        timing.macs_useful += int(macs)
        timing.mac_ops += int(pu_ops.sum())
        timing.dram_busy_cycles += int(dram_busy)
        for j, u in enumerate(pus):
            pu_ops_total[u] += int(pu_ops[j])
        busy_max += int(pu_busy.max(axis=1).sum())
        busy_mean += float(pu_busy.mean(axis=1).sum())
        for k, u in enumerate(units):
            st = timing.units[u]
            for j, name in enumerate(COUNTERS):
                setattr(st, name, getattr(st, name) + int(stats[k, j]))
        timing.dram_read_bytes["activations"] += int(rb.sum())
        timing.dram_read_bytes["weights"] += kernel_beats * d.beat_bytes
        timing.dram_read_bytes["biases"] += bias_beats * d.beat_bytes
        timing.dram_read_bytes["config"] += d.config_beats_per_pass * d.beat_bytes
        timing.dram_write_bytes["activations"] += int(write_cum[:, -1].sum())
    timing.pu_ops = [int(x) for x in pu_ops_total]
    worked = pu_ops_total[pu_ops_total > 0]
    timing.pu_imbalance = float(worked.max() / worked.mean()) if len(worked) else 1.0
    timing.pu_time_imbalance = busy_max / busy_mean if busy_mean > 0 else 1.0
    return timing
