"""Turns one mapped layer and its real data into per-pass work and time.

Plain Python over numpy arrays: it asks the numba kernels in ``_cycles`` for
exact per-stripe counts, converts them into per-unit service times using the
configuration (docs/architecture.md, "Per-unit timing"), and lets the simpy
pipeline in ``_engine`` schedule them.
"""
from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass, field

import numpy as np

from dataflows import ScheduledLayer
from dataflows._plan import kernel_lane_sizes, plan_passes, traits
from workloads._errors import MappingError

from ._config import AcceleratorConfig
from ._cycles import ceil_div, row_stream_elements, slot_mac_work, stripe_windows, weight_tap_prefix
from ._engine import UnitStats, simulate_pipeline

__all__ = ["UNITS", "ACTIONS", "LayerTiming", "time_layer", "dma_cycles"]

#: Units of the NullHop pipeline, upstream first.
UNITS = ("dma_read", "decoder", "mac_array", "pre", "encoder", "dma_write")

#: Countable actions of a layer, the input of the energy model. ``*_words`` are
#: 16-bit words; MAC slots are MAC x cycle pairs.
ACTIONS = (
    "mac_ops",                  # multiply-accumulates performed (zero activations skipped)
    "mac_gated_slots",          # MAC slots idle while the array is busy (lane imbalance, unused MACs)
    "input_memory_write_words", "input_memory_read_words",
    "sm_read_words",            # sparsity-map words among the input-memory reads (metadata)
    "kernel_memory_write_words", "kernel_memory_read_words",
    "pre_buffer_write_words", "pre_buffer_read_words",
    "output_buffer_write_words", "output_buffer_read_words",
    "sm_write_words",           # sparsity-map words among the output-buffer writes (metadata)
    "dram_read_bytes", "dram_write_bytes",
)


@dataclass
class LayerTiming:
    """Cycles and action counts of one accelerator layer (all passes)."""

    cycles: int = 0
    passes: int = 0
    macs_useful: int = 0
    mac_ops: int = 0
    resident: bool = False
    dram_read_bytes: dict[str, int] = field(default_factory=lambda: {
        "activations": 0, "weights": 0, "biases": 0, "config": 0})
    dram_write_bytes: dict[str, int] = field(default_factory=lambda: {"activations": 0})
    units: dict[str, UnitStats] = field(default_factory=lambda: {u: UnitStats() for u in UNITS})
    actions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    pu_ops: list[int] = field(default_factory=list)
    pu_imbalance: float = 1.0        # max / mean MAC operations over the PUs that had work
    pu_time_imbalance: float = 1.0   # sum over stripes of the slowest PU's busy / the mean PU's busy


def dma_cycles(beats, cfg: AcceleratorConfig):
    """Cycles one DMA transfer of ``beats`` beats occupies its channel.

    A transfer pays ``dma.latency_cycles`` once, then streams at
    ``dma.bandwidth_bytes_per_cycle``; an empty transfer costs nothing.
    """
    beats = np.asarray(beats, dtype=np.int64)
    nbytes = beats * cfg.dma.beat_bytes
    # Exact rational ceil: the bandwidth as written (0.7 means 7/10), so that
    # float rounding never adds a cycle.
    bw = Fraction(repr(float(cfg.dma.bandwidth_bytes_per_cycle)))
    stream = -(-(nbytes * bw.denominator) // bw.numerator)
    return np.where(beats > 0, cfg.dma.latency_cycles + stream, 0)


def _output_rows(out: np.ndarray, first: int, count: int, compressed: bool, cfg: AcceleratorConfig):
    """Per output row: 16-bit stream elements and DMA beats for one pass's channels."""
    sl = np.ascontiguousarray(out[:, :, first:first + count])
    elements = row_stream_elements(sl, cfg.array.sm_word_pixels, compressed)
    beats = -(-elements // cfg.dma.values_per_beat)
    return elements, beats


def _kept_taps_1d(n_in: int, k: int, pad: int, stride: int) -> np.ndarray:
    """Per input index: kernel taps that land on outputs kept after stride decimation."""
    n_out1 = n_in + 2 * pad - k + 1
    i = np.arange(n_in)[:, None]
    o = np.arange(0, n_out1, stride)[None, :]
    tap = i - o + pad
    return ((tap >= 0) & (tap < k)).sum(axis=1)


def _useful_taps_per_channel(act: np.ndarray, kh: int, kw: int, pad: int, stride: int) -> np.ndarray:
    """Taps of each input channel's non-zero pixels that produce kept outputs.

    Stride > 1 is computed at stride 1 and decimated on the host [C], so only the
    products feeding kept outputs are useful.
    """
    h, w, _ = act.shape
    ny = _kept_taps_1d(h, kh, pad, stride)
    nx = _kept_taps_1d(w, kw, pad, stride)
    return np.einsum("hwc,h,w->c", (act != 0).astype(np.int64), ny, nx)


def _per_stripe(values: np.ndarray, rows_per_stripe: int, n_stripes: int) -> np.ndarray:
    out = np.zeros(n_stripes, dtype=np.int64)
    idx = np.minimum(np.arange(len(values)) // rows_per_stripe, n_stripes - 1)
    np.add.at(out, idx, values)
    return out


def _effectual_per_channel(act: np.ndarray, weights: np.ndarray | None, mp, kh: int, kw: int, pad: int,
                           stride: int) -> np.ndarray:
    """Per output channel: products with a non-zero activation AND a non-zero weight
    that feed outputs kept after decimation (all weights count when ``weights`` is None)."""
    h, w, c = act.shape
    cout = mp.out_channels
    groups = mp.groups
    cin_g, cout_g = c // groups, cout // groups
    if weights is None:
        taps_c = _useful_taps_per_channel(act, kh, kw, pad, stride)
        return np.repeat(taps_c.reshape(groups, cin_g).sum(axis=1), cout_g)
    vy = (np.arange(h)[:, None, None] - np.arange(0, h + 2 * pad - kh + 1, stride)[None, None, :] + pad
          == np.arange(kh)[None, :, None]).sum(axis=2)       # (h, kh): kept outputs fed through tap ky
    vx = (np.arange(w)[:, None, None] - np.arange(0, w + 2 * pad - kw + 1, stride)[None, None, :] + pad
          == np.arange(kw)[None, :, None]).sum(axis=2)       # (w, kw)
    nz = (act != 0).astype(np.int64)
    a = np.einsum("hwc,hy,wx->cyx", nz, vy, vx)               # (c, kh, kw)
    nzw = (weights.reshape(cout, kh, kw, cin_g) != 0).astype(np.int64)
    out = np.zeros(cout, dtype=np.int64)
    for g in range(groups):
        ag = a[g * cin_g:(g + 1) * cin_g]                     # (cin_g, kh, kw)
        out[g * cout_g:(g + 1) * cout_g] = np.einsum("kyxc,cyx->k", nzw[g * cout_g:(g + 1) * cout_g], ag)
    return out


def _block_diagonal(weights: np.ndarray, mp) -> np.ndarray:
    """Weights expanded to all input channels, zero outside each kernel's group."""
    cout = mp.out_channels
    kh, kw = mp.kernel
    cin, groups = mp.conv_in_channels, mp.groups
    w = weights.reshape(cout, kh, kw, cin // groups)
    if groups == 1:
        return np.ascontiguousarray(w)
    full = np.zeros((cout, kh, kw, cin), dtype=w.dtype)
    cin_g, cout_g = cin // groups, cout // groups
    for g in range(groups):
        full[g * cout_g:(g + 1) * cout_g, :, :, g * cin_g:(g + 1) * cin_g] = w[g * cout_g:(g + 1) * cout_g]
    return full


def time_layer(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray,
               cfg: AcceleratorConfig, weights: np.ndarray | None = None) -> LayerTiming:
    """Simulate one accelerator layer under the configured dataflow.

    Parameters
    ----------
    sched : the scheduled layer (mapping, fused pool, compression flags).
    act_in : int16 (H, W, C) input as the array sees it (FC: (1, 1, N)).
    out_written : int16 output as the PRE writes it: stride-1, after the fused
        pool if any (host decimation for stride > 1 comes later).
    cfg : the accelerator configuration (``array.dataflow`` picks what is skipped).
    weights : int16 ``(C_out, kh, kw, C_in/groups)``. Required by the
        weight-skipping dataflows (``rsnn``, ``combined``); without it useful
        MACs count every weight as non-zero.
    """
    mp = sched.mapping
    layer = sched.layer
    h, w, c = act_in.shape
    kh, kw = mp.kernel
    pad = mp.padding
    n_macs = cfg.array.num_macs
    tr = traits(cfg.array.dataflow)
    if tr.skip_weights and weights is None:
        raise MappingError(f"layer {layer.name!r}: dataflow {cfg.array.dataflow!r} skips zero weights and "
                           "needs the layer's weights")
    compressed_in = sched.compressed_input and tr.compressed_activations
    compressed_out = sched.compressed_output and tr.compressed_activations
    # Weight-skipping dataflows run as PUs; NullHop broadcasts every pixel to the whole array [S].
    n_pus = cfg.array.num_pus if tr.skip_weights else 1
    plans = plan_passes(mp, num_macs=n_macs, num_pus=n_pus,
                        kernel_memory_words=cfg.memory.kernel_memory_words_per_mac,
                        merging=cfg.array.kernel_merging and tr.skip_weights, weights=weights)
    t = LayerTiming(passes=len(plans))
    if tr.skip_weights:
        full = _block_diagonal(weights, mp)
        wpre = weight_tap_prefix(full)
        lane_words = kernel_lane_sizes(weights, mp, cfg.array.sm_word_pixels)   # (cout, m)
    else:
        wpre = np.zeros((1, 1, 1, 1), dtype=np.uint8)
        lane_words = None

    # Input side: identical for every pass.
    row_el = row_stream_elements(act_in, cfg.array.sm_word_pixels, compressed_in)
    row_sm = ceil_div(w * c, cfg.array.sm_word_pixels) if compressed_in else 0
    row_beats = -(-row_el // cfg.dma.values_per_beat)
    lo, hi = stripe_windows(h, kh, pad)
    n_stripes = len(lo)
    cum = np.concatenate(([0], np.cumsum(row_el)))
    window_el = cum[hi + 1] - cum[lo]
    dec_rate = cfg.array.decoder_values_per_cycle
    decoder = np.array([ceil_div(int(row_el[a:b + 1].max()), dec_rate) if b >= a else 0
                        for a, b in zip(lo, hi)], dtype=np.int64)
    # Rows first needed by each stripe (one DMA transfer per stripe).
    prev_end = np.concatenate(([0], hi[:-1] + 1))
    new_hi = hi.copy()
    new_hi[-1] = h - 1
    cumb = np.concatenate(([0], np.cumsum(row_beats)))
    read_beats = cumb[new_hi + 1] - cumb[np.minimum(prev_end, new_hi + 1)]
    image_bytes = int(row_el.sum()) * 2
    mem_bytes = cfg.memory.input_memory_kib * 1024
    t.resident = image_bytes <= mem_bytes
    if t.resident:
        in_fifo = max(1, n_stripes)
    else:
        window_bytes = int(window_el.max()) * 2
        if window_bytes > mem_bytes:
            raise MappingError(
                f"layer {layer.name!r}: memory.input_memory_kib={cfg.memory.input_memory_kib} is too small "
                f"for one stripe of {int((hi - lo + 1).max())} input rows, which needs "
                f"{math.ceil(window_bytes / 1024)} KiB")
        in_fifo = max(1, mem_bytes // window_bytes)

    # Output side.
    rows_out_stripe = np.minimum(2, (h + 2 * pad - kh + 1) - 2 * np.arange(n_stripes))
    wo1 = w + 2 * pad - kw + 1
    pre_tree = int(math.log2(mp.m)) + 1
    window_rows = int((hi - lo + 1).clip(min=0).sum())
    out_w = out_written.shape[1]
    out_rows_per_stripe = 1 if sched.fused_pool is not None else 2
    effectual = _effectual_per_channel(act_in, weights, mp, kh, kw, pad, mp.stride)
    vpb = cfg.dma.values_per_beat
    bb = cfg.dma.beat_bytes
    pu_max = pu_sum = 0
    pu_ops_total = np.zeros(n_pus, dtype=np.int64)
    mac_cache: dict = {}
    for p, plan in enumerate(plans):
        stream = p == 0 or not t.resident
        # MAC slots of this pass: group g, lane l -> slot g*m + l.
        m = mp.m
        n_slots = plan.groups * m
        sizes = np.diff(plan.group_ptr)
        slot_kptr = np.concatenate(([0], np.cumsum(np.repeat(sizes, m)))).astype(np.int64)
        slot_kernels = np.concatenate([np.tile(plan.channels[plan.group_ptr[g]:plan.group_ptr[g + 1]], 1)
                                       for g in range(plan.groups) for _ in range(m)]).astype(np.int64)
        slot_lane = np.tile(np.arange(m, dtype=np.int64), plan.groups)
        # NOTE: without weight skipping the MAC work depends only on the slot layout,
        # so passes with the same layout reuse it (a 512-channel layer has 8 identical passes).
        key = None if tr.skip_weights else (n_slots, sizes.tobytes(), plan.slot_pu.tobytes())
        if key is not None and key in mac_cache:
            mac_cycles, pu_cycles, pu_ops = mac_cache[key]
        else:
            mac_cycles, pu_cycles, pu_ops = slot_mac_work(
                act_in, wpre, kh, kw, pad, m, mp.channels_per_lane, compressed_in, tr.skip_weights,
                slot_kptr, slot_kernels, slot_lane, plan.slot_pu, n_pus)
            if key is not None:
                mac_cache[key] = (mac_cycles, pu_cycles, pu_ops)
        ops = int(pu_ops.sum())
        busy = pu_cycles[:, np.unique(plan.slot_pu)]
        pu_max += int(busy.max(axis=1).sum())
        pu_sum_f = busy.mean(axis=1).sum()
        pu_sum += float(pu_sum_f)
        pu_ops_total += pu_ops.sum(axis=0)

        count = plan.count
        chans = plan.channels
        out_slice = np.ascontiguousarray(out_written[:, :, chans])
        el = row_stream_elements(out_slice, cfg.array.sm_word_pixels, compressed_out)
        beats = -(-el // vpb)
        enc = -(-_per_stripe(el, out_rows_per_stripe, n_stripes) // cfg.array.encoder_values_per_cycle)
        wr_beats = _per_stripe(beats, out_rows_per_stripe, n_stripes)
        rd_beats = read_beats if stream else np.zeros(n_stripes, dtype=np.int64)
        words_per_px = ceil_div(ceil_div(max(mp.out_per_pass, count), 16), cfg.array.pre_words_per_cycle)
        pre = rows_out_stripe * wo1 * words_per_px + pre_tree
        if lane_words is None:
            kmem_words = n_slots * mp.contiguous_kernels
            w_beats = n_slots * ceil_div(mp.contiguous_kernels, vpb)
        else:
            # Compressed kernels: each slot's block (SM words + non-zeros of its kernels) starts a new beat.
            slot_words = np.array([int(lane_words[plan.channels[plan.group_ptr[g]:plan.group_ptr[g + 1]], ln].sum())
                                   for g in range(plan.groups) for ln in range(m)], dtype=np.int64)
            kmem_words = int(slot_words.sum())
            w_beats = int((-(-slot_words // vpb)).sum())
        b_beats = ceil_div(n_macs, vpb)
        load_beats = cfg.dma.config_beats_per_pass + b_beats + w_beats
        load = int(dma_cycles(load_beats, cfg))
        timing = simulate_pipeline(
            list(UNITS),
            [dma_cycles(rd_beats, cfg), decoder, mac_cycles, pre, enc, dma_cycles(wr_beats, cfg)],
            [in_fifo, cfg.memory.decoder_fifo_stripes, cfg.memory.pre_fifo_stripes, 1,
             cfg.memory.output_fifo_stripes],
            load_cycles=load, load_unit="dma_read")
        t.cycles += timing.cycles
        for u in UNITS:
            t.units[u].add(timing.units[u])
        t.dram_read_bytes["activations"] += int(rd_beats.sum()) * bb
        t.dram_read_bytes["weights"] += int(w_beats) * bb
        t.dram_read_bytes["biases"] += int(b_beats) * bb
        t.dram_read_bytes["config"] += int(cfg.dma.config_beats_per_pass) * bb
        t.dram_write_bytes["activations"] += int(wr_beats.sum()) * bb
        acc_words = int(rows_out_stripe.sum()) * wo1 * n_slots
        t.mac_ops += ops
        a = t.actions
        a["mac_ops"] += ops
        a["mac_gated_slots"] += n_macs * int(mac_cycles.sum()) - ops
        a["input_memory_write_words"] += int(row_el.sum()) if stream else 0
        a["input_memory_read_words"] += int(window_el.sum())
        a["sm_read_words"] += row_sm * window_rows
        a["kernel_memory_write_words"] += int(kmem_words)
        a["kernel_memory_read_words"] += ops
        a["pre_buffer_write_words"] += acc_words
        a["pre_buffer_read_words"] += acc_words
        a["output_buffer_write_words"] += int(el.sum())
        a["output_buffer_read_words"] += int(el.sum())
        if compressed_out:
            a["sm_write_words"] += ceil_div(out_w * count, cfg.array.sm_word_pixels) * out_written.shape[0]
        a["dram_read_bytes"] += (int(rd_beats.sum()) + int(w_beats) + int(b_beats)
                                 + int(cfg.dma.config_beats_per_pass)) * bb
        a["dram_write_bytes"] += int(wr_beats.sum()) * bb
        t.macs_useful += int(effectual[chans].sum())
    t.pu_ops = [int(x) for x in pu_ops_total]
    worked = pu_ops_total[pu_ops_total > 0]
    t.pu_imbalance = float(worked.max() / worked.mean()) if len(worked) else 1.0
    t.pu_time_imbalance = (pu_max / pu_sum) if pu_sum > 0 else 1.0
    return t
