"""The stripe pipeline: the work model shared by NullHop and its weight-skipping relatives.

A layer runs pass by pass; a pass streams the input image stripe by stripe
(two stride-1 output rows from the ``kh + 1`` input rows that feed them,
docs/sources.md §N7.2), each stripe chunk by chunk (a few output columns,
``_handoff``), through six units joined by buffers sized in bytes:
DMA read -> input decoder -> MAC array -> PRE -> output encoder -> DMA write.
This module turns one mapped layer and its real data into, per pass, the
cycles each unit spends on each work unit (exact counts from the numba kernels
in ``_counts``), the bytes each work unit takes in each buffer, the kernel-load
cycles, and the action counts the energy model charges. It decides nothing
about time: the event model in ``simulator.engine`` schedules the work
(docs/architecture.md §3-§4).

A dataflow built on it is a :class:`StripeDataflow` with its own
:class:`~dataflows.DataflowTraits` (what it skips, what it compresses, its
kernel banks); see ``dataflows/nullhop.py`` and its siblings.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from workloads import MappingError

from ._accelerator import AcceleratorConfig
from ._counts import ceil_div, row_chunk_elements, slot_mac_work, stripe_windows, weight_tap_prefix
from ._handoff import HANDOFF_BUFFERS, buffer_bytes, handoff_columns, input_column_chunks, written_column_chunks
from ._mapping import ScheduledLayer
from ._plan import PassPlan, kernel_lane_sizes, plan_passes
from ._protocol import Action, Buffer, DataflowTraits, LayerWork, Memory, PassWork, frozen_actions

__all__ = ["STRIPE_ACTIONS", "STRIPE_BUFFERS", "STRIPE_MEMORIES", "STRIPE_UNITS", "StripeDataflow", "dma_cycles"]

#: Units of the stripe pipeline, upstream first.
STRIPE_UNITS = ("dma_read", "decoder", "mac_array", "pre", "encoder", "dma_write")

#: The buffer after each unit but the last, sized in bytes (docs/architecture.md §3).
STRIPE_BUFFERS = (Buffer("input_memory", "memory.input_memory_kib"),) + tuple(
    Buffer(name, key) for name, key in HANDOFF_BUFFERS)

#: On-chip memories whose accesses the energy model charges.
STRIPE_MEMORIES = (
    Memory("input_memory", "compressed input image (IDP memory)", lambda cfg: float(cfg.memory.input_memory_kib)),
    Memory("kernel_memory", "one per MAC: kernel_memory_words_per_mac 16-bit words",
           lambda cfg: cfg.memory.kernel_memory_words_per_mac * cfg.precision.total_bits / 8 / 1024),
    Memory("decoder_fifo", "decoded pixels for the MAC array", lambda cfg: float(cfg.memory.decoder_fifo_kib)),
    Memory("pre_buffer", "retired accumulator columns", lambda cfg: float(cfg.memory.pre_buffer_kib)),
    Memory("encoder_fifo", "raw output values for the encoder", lambda cfg: float(cfg.memory.encoder_fifo_kib)),
    Memory("output_buffer", "encoded output before the DMA", lambda cfg: float(cfg.memory.output_buffer_kib)),
)

#: Countable actions of a layer, the input of the energy model. ``*_words`` are
#: 16-bit words; MAC slots are MAC x cycle pairs.
STRIPE_ACTIONS = frozen_actions(
    Action("mac_ops", "mac", "mac", "multiply-accumulates performed (skipped zeros excluded)"),
    Action("mac_gated_slots", "mac_gated", "mac_gated",
           "MAC slots idle while the array is busy (lane imbalance, unused MACs)"),
    Action("input_memory_write_words", "input_memory", "write"),
    Action("input_memory_read_words", "input_memory", "read", "SM words and non-zeros"),
    Action("sm_read_words", "sm_metadata", "sm_decode", "sparsity-map words among the input-memory reads"),
    Action("kernel_memory_write_words", "kernel_memory", "write"),
    Action("kernel_memory_read_words", "kernel_memory", "read"),
    Action("decoder_fifo_write_words", "decoder_fifo", "write", "decoded pixels"),
    Action("decoder_fifo_read_words", "decoder_fifo", "read"),
    Action("pre_buffer_write_words", "pre_buffer", "write"),
    Action("pre_buffer_read_words", "pre_buffer", "read"),
    Action("encoder_fifo_write_words", "encoder_fifo", "write", "raw output values"),
    Action("encoder_fifo_read_words", "encoder_fifo", "read"),
    Action("output_buffer_write_words", "output_buffer", "write", "SM words and non-zeros"),
    Action("output_buffer_read_words", "output_buffer", "read"),
    Action("sm_write_words", "sm_metadata", "sm_encode", "sparsity-map words among the output-buffer writes"),
    Action("dram_read_bytes", "dram", "dram"),
    Action("dram_write_bytes", "dram", "dram"),
)


def dma_cycles(beats, cfg: AcceleratorConfig):
    """Cycles one DMA transfer of ``beats`` beats occupies its channel.

    A transfer pays ``dma.latency_cycles`` once, then streams at
    ``dma.bandwidth_bytes_per_cycle``; an empty transfer costs nothing.
    """
    beats = np.asarray(beats, dtype=np.int64)
    return np.where(beats > 0, cfg.dma.latency_cycles + _stream_cycles(beats * cfg.dma.beat_bytes, cfg), 0)


def _dma_cycles_one(beats: int, cfg: AcceleratorConfig) -> int:
    """:func:`dma_cycles` of one transfer, in Python integers."""
    if beats <= 0:
        return 0
    num, den = _decimal_ratio(float(cfg.dma.bandwidth_bytes_per_cycle))
    return cfg.dma.latency_cycles + -(-(beats * cfg.dma.beat_bytes * den) // num)


def _stream_cycles(nbytes, cfg: AcceleratorConfig):
    """``ceil(nbytes / dma.bandwidth_bytes_per_cycle)``, exactly: the bandwidth is read as the
    decimal written (0.7 means 7/10), so that float rounding never adds a cycle."""
    num, den = _decimal_ratio(float(cfg.dma.bandwidth_bytes_per_cycle))
    return -(-(np.asarray(nbytes, dtype=np.int64) * den) // num)


@functools.lru_cache(maxsize=64)
def _decimal_ratio(x: float) -> tuple[int, int]:
    """(numerator, denominator) of ``x`` read as the decimal it prints as."""
    f = Fraction(repr(x))
    return f.numerator, f.denominator


def _diff_last(x: np.ndarray) -> np.ndarray:
    """``np.diff(x, axis=-1, prepend=0)`` (the first column kept as is)."""
    d = x.copy()
    d[..., 1:] -= x[..., :-1]
    return d


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
    ny = _kept_taps_1d(h, kh, pad, stride).astype(np.float64)
    nx = _kept_taps_1d(w, kw, pad, stride).astype(np.float64)
    taps = (ny @ _nonzero(act).reshape(h, -1)).reshape(w, -1).T @ nx
    return taps.astype(np.int64)


def _nonzero(a: np.ndarray, dtype=np.float64) -> np.ndarray:
    """1.0 where ``a`` is non-zero, else 0.0.

    NOTE: floats so that the tap counts below are BLAS products: numpy multiplies integer
    matrices without BLAS, about 30x slower on a VGG16 layer. Each product below is exact: its
    sums are integers below 2**24 in float32 (checked where it is used) and far below 2**53 in
    float64.
    """
    return (a != 0).astype(dtype)


#: Integers up to this are exact in float32.
_F32_EXACT = 2**24


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
    # Matrix products instead of one three-operand einsum (much faster on large layers).
    # Every count of the first two products is at most h * w, so float32 is exact for maps below
    # 2**24 pixels (half the bytes of float64); the last one sums up to every tap count.
    ft = np.float32 if h * w < _F32_EXACT else np.float64
    rows = (vy.T.astype(ft) @ _nonzero(act, ft).reshape(h, w * c)).reshape(kh, w, c)   # (kh, w, c)
    a = rows.transpose(0, 2, 1) @ vx.astype(ft)                                        # (kh, c, kw)
    k = kh * kw * cin_g
    a = a.reshape(kh, groups, cin_g, kw).transpose(1, 0, 3, 2).reshape(groups, k, 1)
    ft = np.float32 if float(a.sum(dtype=np.float64)) < _F32_EXACT else np.float64
    nzw = _nonzero(weights, ft).reshape(groups, cout_g, k)
    # All groups in one batched product (a depthwise layer has one group per channel).
    return (nzw @ a.astype(ft, copy=False)).reshape(cout).astype(np.int64)


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


def _kernel_layout(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous read-only array, the one layout the count kernels are compiled for.

    NOTE: numba compiles a kernel once per argument layout; the input image (a transposed view),
    decimated inputs ('A' layout) and seed-cache tensors (read-only) would each cost a compile.
    The copy touches only the strided inputs (under 1 MB per network); the read-only view is free.
    """
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


class StripeDataflow:
    """A dataflow on the stripe pipeline, characterised by its traits.

    Parameters
    ----------
    name, description : registry name and one-line description.
    traits : what it skips and compresses, and its kernel banks.
    """

    units = STRIPE_UNITS
    buffers = STRIPE_BUFFERS
    memories = STRIPE_MEMORIES
    actions = STRIPE_ACTIONS

    def __init__(self, name: str, description: str, traits: DataflowTraits) -> None:
        self.name = name
        self.description = description
        self.traits = traits

    def __repr__(self) -> str:
        return f"StripeDataflow({self.name!r}, {self.traits!r})"

    def num_pus(self, cfg: AcceleratorConfig) -> int:
        """Processing units: ``array.num_pus`` when weights are skipped; NullHop broadcasts
        every pixel to the whole array, one PU [S]."""
        return cfg.array.num_pus if self.traits.uses_pus else 1

    def plan(self, sched: ScheduledLayer, cfg: AcceleratorConfig, weights: np.ndarray | None) -> list[PassPlan]:
        """Pass plans (kernel merging only where weights are skipped)."""
        return plan_passes(sched.mapping, num_macs=cfg.array.num_macs, num_pus=self.num_pus(cfg),
                           kernel_memory_words=cfg.memory.kernel_memory_words_per_mac,
                           merging=cfg.array.kernel_merging and self.traits.skip_weights, weights=weights)

    def layer_work(self, sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray,
                   cfg: AcceleratorConfig, weights: np.ndarray | None = None) -> LayerWork:
        """Per-pass work of one accelerator layer.

        Parameters
        ----------
        sched : the scheduled layer (mapping, fused pool, compression flags).
        act_in : int16 (H, W, C) input as the array sees it (FC: (1, 1, N)).
        out_written : int16 output as the PRE writes it: stride-1, after the fused
            pool if any (host decimation for stride > 1 comes later).
        cfg : the accelerator configuration.
        weights : int16 ``(C_out, kh, kw, C_in/groups)``. Required when weights are
            skipped; without it useful MACs count every weight as non-zero.
        """
        mp = sched.mapping
        layer = sched.layer
        h, w, c = act_in.shape
        kh, kw = mp.kernel
        pad = mp.padding
        n_macs = cfg.array.num_macs
        tr = self.traits
        if (tr.skip_weights or tr.compressed_weights) and weights is None:
            raise MappingError(f"layer {layer.name!r}: dataflow {self.name!r} "
                               f"{'skips zero weights' if tr.skip_weights else 'compresses kernels'} and "
                               "needs the layer's weights")
        compressed_in = sched.compressed_input and tr.compressed_activations
        compressed_out = sched.compressed_output and tr.compressed_activations
        n_pus = self.num_pus(cfg)
        if tr.skip_weights:
            wpre = weight_tap_prefix(_block_diagonal(weights, mp))
        else:
            wpre = np.zeros((1, 1, 1, 1), dtype=np.uint8)
        # Compressed kernels: SM words + non-zeros of each (output channel, lane) block.
        lane_words = kernel_lane_sizes(weights, mp, cfg.array.sm_word_pixels) if tr.compressed_weights else None

        plans = self.plan(sched, cfg, weights)
        m = mp.m
        max_slots = max(plan.groups * m for plan in plans)
        max_channels = max(plan.count for plan in plans)
        hand = handoff_columns(sched, act_in.shape, cfg, max_slots, max_channels)
        cols, n_chunks = hand.columns, hand.chunks
        in_chunk = input_column_chunks(w, kw, pad, cols, n_chunks)

        # Input side: identical for every pass.
        act_in = _kernel_layout(act_in)
        el_in, px_in = row_chunk_elements(act_in, cfg.array.sm_word_pixels, compressed_in, in_chunk, n_chunks)
        row_el = el_in.sum(axis=1)
        row_sm = ceil_div(w * c, cfg.array.sm_word_pixels) if compressed_in else 0
        row_beats = -(-row_el // cfg.dma.values_per_beat)
        lo, hi = stripe_windows(h, kh, pad)
        n_stripes = len(lo)
        n_items = n_stripes * n_chunks
        first = np.arange(n_stripes) * n_chunks          # chunk 0 of each stripe
        last = first + n_chunks - 1
        cum = np.concatenate(([0], np.cumsum(row_el)))
        window_el = cum[hi + 1] - cum[lo]
        dec_rate = cfg.array.decoder_values_per_cycle
        decoder = np.zeros((n_stripes, n_chunks), dtype=np.int64)
        dec_bytes = np.zeros((n_stripes, n_chunks), dtype=np.int64)
        for st, (a0, b0) in enumerate(zip(lo, hi)):
            if b0 >= a0:
                decoder[st] = -(-el_in[a0:b0 + 1].max(axis=0) // dec_rate)
                dec_bytes[st] = 2 * px_in[a0:b0 + 1].sum(axis=0)
        decoder = decoder.ravel()
        dec_bytes = dec_bytes.ravel()
        # Rows first needed by each stripe (one DMA transfer per stripe, on its chunk 0).
        prev_end = np.concatenate(([0], hi[:-1] + 1))
        new_hi = hi.copy()
        new_hi[-1] = h - 1
        cumb = np.concatenate(([0], np.cumsum(row_beats)))
        read_beats = cumb[new_hi + 1] - cumb[np.minimum(prev_end, new_hi + 1)]
        image_bytes = int(row_el.sum()) * 2
        mem_bytes = cfg.memory.input_memory_kib * 1024
        resident = image_bytes <= mem_bytes
        mem_alloc = np.zeros(n_items, dtype=np.int64)
        mem_free = np.zeros(n_items, dtype=np.int64)
        if not resident:
            window_bytes = int(window_el.max()) * 2
            if window_bytes > mem_bytes:
                raise MappingError(
                    f"layer {layer.name!r}: memory.input_memory_kib={cfg.memory.input_memory_kib} is too small "
                    f"for one stripe of {int((hi - lo + 1).max())} input rows, which needs "
                    f"{math.ceil(window_bytes / 1024)} KiB")
            # Rows enter with their stripe's read and leave once the last stripe needing them is decoded.
            mem_alloc[first] = 2 * (cum[new_hi + 1] - cum[np.minimum(prev_end, new_hi + 1)])
            leave = np.concatenate((lo[1:], [h]))
            mem_free[last] = 2 * (cum[leave] - cum[lo])
        caps = [mem_bytes, *buffer_bytes(cfg).values()]

        # Output side.
        rows_out_stripe = np.minimum(2, (h + 2 * pad - kh + 1) - 2 * np.arange(n_stripes))
        wo1 = w + 2 * pad - kw + 1
        chunk_cols = np.minimum(cols, wo1 - cols * np.arange(n_chunks))
        pix_out = np.outer(rows_out_stripe, chunk_cols).ravel()     # stride-1 output pixels per work unit
        pre_tree = int(math.log2(mp.m)) + 1
        window_rows = int((hi - lo + 1).clip(min=0).sum())
        out_w = out_written.shape[1]
        pooled = sched.fused_pool is not None
        out_chunk = written_column_chunks(out_w, pooled, cols, n_chunks)
        out_cols = np.bincount(out_chunk, minlength=n_chunks)
        out_rows_per_stripe = 1 if pooled else 2
        row_stripe = np.minimum(np.arange(out_written.shape[0]) // out_rows_per_stripe, n_stripes - 1)
        rows_written = np.bincount(row_stripe, minlength=n_stripes)
        # Written rows of stripe s are rows seg[s] .. seg[s + 1] - 1 (row_stripe never decreases).
        seg = np.concatenate(([0], np.cumsum(rows_written)))
        effectual = _effectual_per_channel(act_in, weights, mp, kh, kw, pad, mp.stride)
        vpb = cfg.dma.values_per_beat
        bb = cfg.dma.beat_bytes
        read_rd = dma_cycles(read_beats, cfg)
        mac_cache: dict = {}
        # Pass-invariant parts of every pass's work and counts.
        read_streamed = np.zeros(n_items, dtype=np.int64)
        read_streamed[first] = read_rd
        read_none = np.zeros(n_items, dtype=np.int64)
        enc_fifo_px = np.outer(rows_written, out_cols).ravel()        # written pixels per work unit
        enc_fifo_px_total = int(enc_fifo_px.sum())
        row_el_total = int(row_el.sum())
        window_el_total = int(window_el.sum())
        dec_words = int(dec_bytes.sum()) // 2
        read_beats_total = int(read_beats.sum())
        acc_rows = int(rows_out_stripe.sum())
        passes = []
        for p, plan in enumerate(plans):
            stream = p == 0 or not resident
            # MAC slots of this pass: group g, lane l -> slot g*m + l.
            n_slots = plan.groups * m
            sizes = np.diff(plan.group_ptr)
            # NOTE: without weight skipping the MAC work depends only on the slot layout,
            # so passes with the same layout reuse it (a 512-channel layer has 8 identical passes).
            key = None if tr.skip_weights else (n_slots, sizes.tobytes(), plan.slot_pu.tobytes())
            if key is not None and key in mac_cache:
                mac_cycles, ops, mac_total, pu_ops_sum, pu_max, pu_mean = mac_cache[key]
            else:
                slot_sizes = np.repeat(sizes, m)
                slot_kptr = np.concatenate(([0], np.cumsum(slot_sizes))).astype(np.int64)
                # Slot g*m + l holds group g's kernels: channels[group_ptr[g]:group_ptr[g + 1]].
                slot_start = np.repeat(np.asarray(plan.group_ptr[:-1], dtype=np.int64), m)
                pick = np.arange(slot_kptr[-1], dtype=np.int64) + np.repeat(slot_start - slot_kptr[:-1], slot_sizes)
                slot_kernels = np.asarray(plan.channels, dtype=np.int64)[pick]
                slot_lane = np.tile(np.arange(m, dtype=np.int64), plan.groups)
                mac_cycles, pu_cycles, pu_ops = slot_mac_work(
                    act_in, wpre, kh, kw, pad, m, mp.channels_per_lane, compressed_in, tr.skip_weights,
                    slot_kptr, slot_kernels, slot_lane, plan.slot_pu, n_pus, in_chunk, n_chunks)
                busy = pu_cycles[:, np.unique(plan.slot_pu)]
                mac_work = (mac_cycles, int(pu_ops.sum()), int(mac_cycles.sum()), pu_ops.sum(axis=0),
                            int(busy.max(axis=1).sum()), float(busy.mean(axis=1).sum()))
                mac_cycles, ops, mac_total, pu_ops_sum, pu_max, pu_mean = mac_work
                if key is not None:
                    mac_cache[key] = mac_work

            count = plan.count
            chans = plan.channels
            c0 = int(chans[0]) if count else 0
            if count and int(chans[-1]) - c0 + 1 == count and bool((np.diff(chans) == 1).all()):
                # NOTE: a range of channels (every pass of a dataflow without load balancing): a
                # view, copied only if strided; a gather of the channels (fancy indexing) took
                # 17.5 ms on a 224 x 224 x 64 output.
                out_slice = _kernel_layout(out_written[:, :, c0:c0 + count])
            else:
                out_slice = _kernel_layout(out_written[:, :, chans])
            el_rc, _ = row_chunk_elements(out_slice, cfg.array.sm_word_pixels, compressed_out, out_chunk, n_chunks)
            el_total = int(el_rc.sum())
            # A row's beats go to the chunk that completes them, so the bytes equal whole-row transfers.
            beats_rc = _diff_last(-(-np.cumsum(el_rc, axis=1) // vpb))
            # Per stripe: sums over its written rows, as differences of running sums.
            run = np.zeros((len(el_rc) + 1, 2, n_chunks), dtype=np.int64)
            np.cumsum(np.stack((el_rc, beats_rc), axis=1), axis=0, out=run[1:])
            per_stripe = run[seg[1:]] - run[seg[:-1]]
            el_s, beats_s = per_stripe[:, 0], per_stripe[:, 1]
            enc = (-(-el_s // cfg.array.encoder_values_per_cycle)).ravel()
            wr_beats = beats_s.sum(axis=1)
            wr_beats_total = int(wr_beats.sum())
            # One write transfer per stripe, streamed chunk by chunk: cumulative exact-rational ceilings.
            write = _diff_last(_stream_cycles(np.cumsum(beats_s, axis=1) * bb, cfg))
            write[:, 0] += np.where(wr_beats > 0, cfg.dma.latency_cycles, 0)
            rd_beats_total = read_beats_total if stream else 0
            read_service = read_streamed if stream else read_none
            words_per_px = ceil_div(ceil_div(max(mp.out_per_pass, count), 16), cfg.array.pre_words_per_cycle)
            pre = pix_out * words_per_px + pre_tree
            if lane_words is None:
                kmem_words = n_slots * mp.contiguous_kernels
                w_beats = n_slots * ceil_div(mp.contiguous_kernels, vpb)
            else:
                # Compressed kernels: each slot's block (SM words + non-zeros of its kernels) starts a new beat.
                cw = np.concatenate((np.zeros((1, m), dtype=np.int64),
                                     np.cumsum(lane_words[plan.channels].astype(np.int64), axis=0)))
                gp = np.asarray(plan.group_ptr)
                slot_words = (cw[gp[1:]] - cw[gp[:-1]]).ravel()      # (group, lane), group-major
                kmem_words = int(slot_words.sum())
                w_beats = int((-(-slot_words // vpb)).sum())
            b_beats = ceil_div(n_macs, vpb)
            cfg_beats = cfg.dma.config_beats_per_pass
            load_beats = cfg_beats + b_beats + w_beats
            acc_words = acc_rows * wo1 * n_slots
            alloc = [mem_alloc, dec_bytes, 2 * n_slots * pix_out, 2 * count * enc_fifo_px, 2 * el_s.ravel()]
            free = [mem_free] + alloc[1:]
            a = dict.fromkeys(self.actions, 0)
            a["mac_ops"] = ops
            a["mac_gated_slots"] = n_macs * mac_total - ops
            a["input_memory_write_words"] = row_el_total if stream else 0
            a["input_memory_read_words"] = window_el_total
            a["sm_read_words"] = row_sm * window_rows
            a["kernel_memory_write_words"] = int(kmem_words)
            a["kernel_memory_read_words"] = ops
            a["decoder_fifo_write_words"] = a["decoder_fifo_read_words"] = dec_words
            a["encoder_fifo_write_words"] = a["encoder_fifo_read_words"] = count * enc_fifo_px_total
            a["pre_buffer_write_words"] = acc_words
            a["pre_buffer_read_words"] = acc_words
            a["output_buffer_write_words"] = el_total
            a["output_buffer_read_words"] = el_total
            if compressed_out:
                a["sm_write_words"] = ceil_div(out_w * count, cfg.array.sm_word_pixels) * out_written.shape[0]
            a["dram_read_bytes"] = (rd_beats_total + int(w_beats) + int(b_beats) + int(cfg_beats)) * bb
            a["dram_write_bytes"] = wr_beats_total * bb
            passes.append(PassWork(
                service=[read_service, decoder, mac_cycles, pre, enc, write.ravel()],
                capacities=caps, load_cycles=_dma_cycles_one(int(load_beats), cfg), alloc=alloc, free=free,
                dram_units=(0, len(self.units) - 1), shared_dram=cfg.dma.interface == "shared",
                prefetched=tr.kernel_banks > 1 and p > 0, channels=chans, actions=a,
                dram_read_bytes={"activations": rd_beats_total * bb, "weights": int(w_beats) * bb,
                                 "biases": int(b_beats) * bb, "config": int(cfg_beats) * bb},
                dram_write_bytes={"activations": wr_beats_total * bb},
                mac_ops=ops, macs_useful=int(effectual[chans].sum()), pu_ops=pu_ops_sum,
                pu_busy_max=pu_max, pu_busy_mean=pu_mean))
        return LayerWork(passes=passes, resident=resident, handoff_columns=cols)
