"""Properties of the event model ``time_layer``, checked against independent arithmetic.

Every expectation here is computed in the test from docs/architecture.md
(§3 pipeline, §4 per-unit formulas), never from the simulator's own code:

* an all-zero compressed input costs only the fixed overheads (loads, DMA,
  SM-word decoding, PRE, encoding of an all-zero output), which a ten-line
  max-plus recurrence of the §3.1 hand-off rules reproduces exactly;
* more DMA bandwidth never costs cycles;
* zeroing input pixels never costs MAC, decoder or total cycles;
* useful MACs equal a plain loop over the non-zero pixels;
* a dense, compute-bound layer runs within 2% of dense MACs / num_macs.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dataflows import schedule_network
from simulator import Simulator, with_overrides
from dataflows import AcceleratorConfig
from simulator.engine import time_layer
from workloads import MappingError
from workloads import NetworkBuilder

SETTINGS = settings(max_examples=150, deadline=None, derandomize=False)


def _layer(h, w, cin, cout, k, pad, *, stride=1, pool=False, first=False, groups=1, cfg=None):
    """Schedule a one-conv network (optionally after a 1x1 conv, optionally pooled); return the conv."""
    cfg = cfg or AcceleratorConfig()
    b = NetworkBuilder("inv", (h, w, cin))
    if not first:
        b.conv("prev", cin, 1)
    b.conv("layer", cout, k, stride=stride, padding=pad, groups=groups)
    if pool:
        b.maxpool("pool")
    return next(s for s in schedule_network(b.build(), cfg) if s.layer.name == "layer")


def _random(rng, shape, density):
    mag = rng.integers(1, 2000, size=shape)
    return np.where(rng.random(shape) < density, mag, 0).astype(np.int16)


def _out_shape(sched, h, w):
    kh, kw = sched.mapping.kernel
    p = sched.mapping.padding
    ho1, wo1 = h + 2 * p - kh + 1, w + 2 * p - kw + 1
    return (ho1 // 2, wo1 // 2) if sched.fused_pool is not None else (ho1, wo1)


@st.composite
def small_layers(draw, *, allow_first=True):
    k = draw(st.integers(1, 7))
    pad = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(k, 3), 14))
    w = draw(st.integers(max(k, 3), 14))
    cin = draw(st.sampled_from([1, 3, 8, 13, 16, 33, 64, 150]))
    cout = draw(st.sampled_from([8, 16, 24, 64, 100, 128, 200]))
    stride = draw(st.sampled_from([1, 1, 2]))
    ho1, wo1 = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    pool = stride == 1 and ho1 % 2 == 0 and wo1 % 2 == 0 and draw(st.booleans())
    first = allow_first and draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(h=h, w=w, cin=cin, cout=cout, k=k, pad=pad, stride=stride, pool=pool, first=first, seed=seed)


def _pipeline_end(durations: list[list[int]], caps: list[int], start: int) -> int:
    """When the last unit hands off its last work unit, by the §3.1 rules as a recurrence.

    A unit takes item i at max(its hand-off of i-1, the upstream hand-off of i); it
    hands i off at max(finish, the time the downstream unit took item i - capacity).
    """
    n_units, n = len(durations), len(durations[0])
    take = [[0] * n for _ in range(n_units)]
    hand = [[0] * n for _ in range(n_units)]
    for i in range(n):
        for k in range(n_units):
            ready = start if k == 0 else hand[k - 1][i]
            take[k][i] = max(ready, hand[k][i - 1] if i else start)
            finish = take[k][i] + durations[k][i]
            j = i - caps[k] if k < n_units - 1 else -1
            hand[k][i] = max(finish, take[k + 1][j]) if j >= 0 else finish
    return hand[-1][-1]


def _dma(nbytes: int, cfg) -> int:
    d = cfg.dma
    return d.latency_cycles + math.ceil(nbytes / d.bandwidth_bytes_per_cycle) if nbytes else 0


def _zero_input_cycles(sched, h, w, cfg) -> int:
    """Cycles of an all-zero compressed input and all-zero compressed output (§4)."""
    mp, a, d, mem = sched.mapping, cfg.array, cfg.dma, cfg.memory
    kh, kw = mp.kernel
    p, cin, m = mp.padding, mp.conv_in_channels, mp.m
    ho1, wo1 = h + 2 * p - kh + 1, w + 2 * p - kw + 1
    n = (ho1 + 1) // 2
    sm_words = math.ceil(w * cin / 16)                        # per input row; no non-zeros
    row_bytes = math.ceil(sm_words / d.values_per_beat) * d.beat_bytes
    rows_out = [min(2, ho1 - 2 * s) for s in range(n)]
    lo = [max(0, 2 * s - p) for s in range(n)]
    hi = [min(h - 1, 2 * s + rows_out[s] - 1 - p + kh - 1) for s in range(n)]
    new_rows = [hi[0] + 1] + [hi[s] - hi[s - 1] for s in range(1, n)]
    new_rows[-1] += h - 1 - hi[-1]
    image = h * sm_words * 2
    window = max(hi[s] - lo[s] + 1 for s in range(n)) * sm_words * 2
    resident = image <= mem.input_memory_kib * 1024
    in_cap = n if resident else mem.input_memory_kib * 1024 // window
    decoder = math.ceil(sm_words / a.decoder_values_per_cycle)
    pre = [r * wo1 * math.ceil(math.ceil(mp.out_per_pass / 16) / a.pre_words_per_cycle) + int(math.log2(m)) + 1
           for r in rows_out]
    pooled = sched.fused_pool is not None
    wout = wo1 // 2 if pooled else wo1
    total = 0
    for q in range(mp.passes):
        count = min(mp.out_per_pass, mp.out_channels - q * mp.out_per_pass)
        out_words = math.ceil(wout * count / 16)             # per written row; no non-zeros
        out_rows = [1] * n if pooled else rows_out
        enc = [math.ceil(r * out_words / a.encoder_values_per_cycle) for r in out_rows]
        wr = [_dma(r * math.ceil(out_words / d.values_per_beat) * d.beat_bytes, cfg) for r in out_rows]
        rd = [_dma(r * row_bytes, cfg) if (q == 0 or not resident) else 0 for r in new_rows]
        load_beats = (d.config_beats_per_pass + math.ceil(a.num_macs / d.values_per_beat)
                      + count * m * math.ceil(mp.contiguous_kernels / d.values_per_beat))
        start = _dma(load_beats * d.beat_bytes, cfg)
        total += _pipeline_end([rd, [decoder] * n, [0] * n, pre, enc, wr], [in_cap] + [n] * 4, start)
    return total


@SETTINGS
@given(p=small_layers(allow_first=False), bw=st.sampled_from([0.25, 1.0, 2.5, 8.0, 64.0]),
       lat=st.integers(0, 200), rate=st.integers(1, 3))
def test_all_zero_input_costs_only_fixed_overheads(p, bw, lat, rate):
    # One work unit per stripe (a chunk as wide as the output), buffers that never fill and
    # separate DMA channels, so that the stripe-level recurrence below is the whole contract.
    cfg = with_overrides(AcceleratorConfig(), {
        "dma.bandwidth_bytes_per_cycle": bw, "dma.latency_cycles": lat, "array.decoder_values_per_cycle": rate,
        "array.encoder_values_per_cycle": rate, "array.handoff_columns": 4096, "array.min_handoffs_per_stripe": 1,
        "dma.interface": "separate",
        "memory.decoder_fifo_kib": 1 << 20, "memory.pre_buffer_kib": 1 << 20, "memory.encoder_fifo_kib": 1 << 20,
        "memory.output_buffer_kib": 1 << 20})
    sched = _layer(p["h"], p["w"], p["cin"], p["cout"], p["k"], p["pad"], stride=p["stride"], pool=p["pool"],
                   cfg=cfg)
    x = np.zeros((p["h"], p["w"], p["cin"]), dtype=np.int16)
    out = np.zeros(_out_shape(sched, p["h"], p["w"]) + (p["cout"],), dtype=np.int16)
    t = time_layer(sched, x, out, cfg)
    assert t.units["mac_array"].busy == 0
    assert t.macs_useful == 0
    assert t.cycles == _zero_input_cycles(sched, p["h"], p["w"], cfg)


@SETTINGS
@given(p=small_layers(), density=st.floats(0.0, 1.0),
       bws=st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 2.5, 8.0, 16.0, 64.0, 512.0]), min_size=2, max_size=4,
                    unique=True),
       lat=st.integers(0, 200))
def test_more_dma_bandwidth_never_costs_cycles(p, density, bws, lat):
    rng = np.random.default_rng(p["seed"])
    cycles = []
    for bw in sorted(bws):
        cfg = with_overrides(AcceleratorConfig(), {"dma.bandwidth_bytes_per_cycle": bw, "dma.latency_cycles": lat})
        sched = _layer(p["h"], p["w"], p["cin"], p["cout"], p["k"], p["pad"], stride=p["stride"], pool=p["pool"],
                       first=p["first"], cfg=cfg)
        if not cycles:
            x = _random(rng, (p["h"], p["w"], p["cin"]), density)
            out = _random(rng, _out_shape(sched, p["h"], p["w"]) + (p["cout"],), 0.5)
        cycles.append(time_layer(sched, x, out, cfg).cycles)
    assert cycles == sorted(cycles, reverse=True), (sorted(bws), cycles)


@SETTINGS
@given(p=small_layers(allow_first=False), density=st.floats(0.05, 1.0), drop=st.floats(0.0, 1.0),
       mem_frac=st.floats(0.0, 1.0))
def test_fewer_non_zeros_never_cost_compute_cycles(p, density, drop, mem_frac):
    rng = np.random.default_rng(p["seed"])
    x = _random(rng, (p["h"], p["w"], p["cin"]), density)
    # Input memory from 1 KiB up to about the compressed image: resident and streamed layers.
    image = sum(math.ceil(p["w"] * p["cin"] / 16) + int(np.count_nonzero(row)) for row in x) * 2
    cfg = with_overrides(AcceleratorConfig(), {"memory.input_memory_kib": 1 + int(mem_frac * (image // 1024))})
    sched = _layer(p["h"], p["w"], p["cin"], p["cout"], p["k"], p["pad"], stride=p["stride"], pool=p["pool"],
                   cfg=cfg)
    out = _random(rng, _out_shape(sched, p["h"], p["w"]) + (p["cout"],), 0.5)
    sparser = np.where(rng.random(x.shape) < drop, 0, x).astype(np.int16)
    try:
        dense_t = time_layer(sched, x, out, cfg)
    except MappingError:  # one stripe window does not fit the small memory: nothing to compare
        event("window does not fit")
        return
    event("resident" if dense_t.resident else "streamed")
    sparse_t = time_layer(sched, sparser, out, cfg)
    assert sparse_t.units["mac_array"].busy <= dense_t.units["mac_array"].busy
    assert sparse_t.units["decoder"].busy <= dense_t.units["decoder"].busy
    assert sparse_t.cycles <= dense_t.cycles


def _useful_macs_loop(x: np.ndarray, k: int, pad: int, stride: int, cout: int, groups: int) -> int:
    """Σ over non-zero pixels of the taps feeding kept (decimated) outputs x connected output channels."""
    h, w, _ = x.shape
    ho1, wo1 = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    nnz = np.count_nonzero(x, axis=2)
    total = 0
    for iy in range(h):
        for ix in range(w):
            if not nnz[iy, ix]:
                continue
            taps = 0
            for ky in range(k):
                for kx in range(k):
                    oy, ox = iy + pad - ky, ix + pad - kx
                    if 0 <= oy < ho1 and 0 <= ox < wo1 and oy % stride == 0 and ox % stride == 0:
                        taps += 1
            total += int(nnz[iy, ix]) * taps * (cout // groups)
    return total


@SETTINGS
@given(p=small_layers(), density=st.floats(0.0, 1.0), groups=st.sampled_from([1, 1, 2, "dw"]))
def test_useful_macs_equal_a_loop_over_non_zero_pixels(p, density, groups):
    cin, cout = p["cin"], p["cout"]
    if groups == "dw":
        groups, cout = cin, cin
    elif cin % groups or cout % groups:
        groups = 1
    sched = _layer(p["h"], p["w"], cin, cout, p["k"], p["pad"], stride=p["stride"], pool=p["pool"],
                   first=p["first"], groups=groups)
    rng = np.random.default_rng(p["seed"])
    x = _random(rng, (p["h"], p["w"], cin), density)
    out = _random(rng, _out_shape(sched, p["h"], p["w"]) + (cout,), 0.5)
    t = time_layer(sched, x, out, AcceleratorConfig())
    assert t.macs_useful == _useful_macs_loop(x, p["k"], p["pad"], p["stride"], cout, groups)


@settings(max_examples=6, deadline=None, derandomize=False)
@given(size=st.integers(26, 32), pad=st.sampled_from([0, 1]), seed=st.integers(0, 2**32 - 1))
def test_dense_compute_bound_layer_runs_at_peak(size, pad, seed):
    # 3x3, C_in = C_out = 128 (m = 1, one pass), density 1, ample DMA, no latency.
    cfg = with_overrides(AcceleratorConfig(), {"dma.bandwidth_bytes_per_cycle": 512.0, "dma.latency_cycles": 0})
    sched = _layer(size, size, 128, 128, 3, pad, cfg=cfg)
    rng = np.random.default_rng(seed)
    x = _random(rng, (size, size, 128), 1.0)
    out = _random(rng, _out_shape(sched, size, size) + (128,), 0.5)
    t = time_layer(sched, x, out, cfg)
    # Dense MACs the array must perform: every pixel x its valid taps x C_out (= layer MACs at pad 0).
    dense = _useful_macs_loop(np.ones((size, size, 1), dtype=np.int16), 3, pad, 1, 128, 1) * 128
    if pad == 0:
        assert dense == sched.layer.macs
    ideal = dense / cfg.array.num_macs
    assert ideal <= t.cycles <= 1.02 * ideal, (t.cycles, ideal)


# ---------------------------------------------------------------------------
# Dataflows (docs/architecture.md §8): weight skipping, PUs, kernel merging
# ---------------------------------------------------------------------------

def _weights(rng, shape, density, balanced=False):
    """int16 weights with about ``density`` non-zeros (exactly ``round(density x size)`` per kernel if balanced)."""
    mag = rng.integers(1, 2000, size=shape)
    if balanced:
        per = int(np.prod(shape[1:]))
        rank = np.argsort(rng.random((shape[0], per)), axis=1).argsort(axis=1).reshape(shape)
        return np.where(rank < int(round(density * per)), mag, 0).astype(np.int16)
    return np.where(rng.random(shape) < density, mag, 0).astype(np.int16)


def _flow_cfg(dataflow, pus=8, merging=False, **extra):
    return with_overrides(AcceleratorConfig(), {"array.dataflow": dataflow, "array.num_pus": pus,
                                                "array.kernel_merging": merging, **extra})


@st.composite
def dataflow_layers(draw):
    """A small layer (maybe grouped), its data and weights, a PU count and a weight density."""
    p = draw(small_layers())
    g = draw(st.sampled_from([1, 1, 1, 2, "dw"]))
    if g == "dw":
        p["groups"], p["cout"] = p["cin"], p["cin"]
    else:
        p["groups"] = g if p["cin"] % g == 0 and p["cout"] % g == 0 else 1
    p["pus"] = draw(st.sampled_from([1, 2, 4, 8, 16]))
    p["density"] = draw(st.floats(0.0, 1.0))
    p["w_density"] = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    p["balanced"] = draw(st.booleans())
    return p


def _dataflow_case(p, cfg):
    sched = _layer(p["h"], p["w"], p["cin"], p["cout"], p["k"], p["pad"], stride=p["stride"], pool=p["pool"],
                   first=p["first"], groups=p["groups"], cfg=cfg)
    rng = np.random.default_rng(p["seed"])
    x = _random(rng, (p["h"], p["w"], p["cin"]), p["density"])
    out = _random(rng, _out_shape(sched, p["h"], p["w"]) + (p["cout"],), 0.5)
    w = _weights(rng, (p["cout"], p["k"], p["k"], p["cin"] // p["groups"]), p["w_density"], p["balanced"])
    return sched, x, out, w


@SETTINGS
@given(p=dataflow_layers())
def test_weight_skipping_never_costs_mac_cycles(p):
    # Same layer, data, weights and pass plan (no merging): rsnn <= dense, combined <= nullhop.
    for skipping, plain in (("rsnn", "dense"), ("combined", "nullhop")):
        cfg = _flow_cfg(skipping, p["pus"])
        sched, x, out, w = _dataflow_case(p, cfg)
        t_skip = time_layer(sched, x, out, cfg, weights=w)
        t_plain = time_layer(sched, x, out, _flow_cfg(plain, p["pus"]), weights=w)
        assert t_skip.passes == t_plain.passes
        assert t_skip.units["mac_array"].busy <= t_plain.units["mac_array"].busy, (skipping, plain)
        assert t_skip.mac_ops <= t_plain.mac_ops
        assert t_skip.macs_useful == t_plain.macs_useful        # skipping zeros never drops a useful product


@SETTINGS
@given(p=dataflow_layers(), drop=st.floats(0.0, 1.0))
def test_more_zero_weights_never_cost_mac_cycles_under_rsnn(p, drop):
    cfg = _flow_cfg("rsnn", p["pus"])
    sched, x, out, w = _dataflow_case(p, cfg)
    rng = np.random.default_rng(p["seed"] + 1)
    sparser = np.where(rng.random(w.shape) < drop, 0, w).astype(np.int16)
    t = time_layer(sched, x, out, cfg, weights=w)
    t_sparse = time_layer(sched, x, out, cfg, weights=sparser)
    assert t_sparse.units["mac_array"].busy <= t.units["mac_array"].busy
    assert t_sparse.mac_ops <= t.mac_ops
    assert t_sparse.dram_read_bytes["weights"] <= t.dram_read_bytes["weights"]   # smaller compressed kernels
    assert t_sparse.cycles <= t.cycles


def _valid_taps_1d(n_in, k, pad):
    """Σ over stride-1 outputs of the kernel taps that land on a real input (not padding)."""
    n_out = n_in + 2 * pad - k + 1
    return sum(1 for o in range(n_out) for t in range(k) if 0 <= o + t - pad < n_in)


@SETTINGS
@given(p=dataflow_layers(), pus=st.sampled_from([1, 4, 16]))
def test_dense_mac_busy_is_all_taps_of_the_widest_lane(p, pus):
    # The dense dataflow delivers every pixel and performs every valid tap. A column costs the
    # widest lane's pixels x their taps, so MAC busy = passes x widest lane (channels) x
    # Σ_rows valid kernel rows x Σ_columns valid kernel columns, whatever the data and weights.
    cfg = _flow_cfg("dense", pus)
    sched, x, out, w = _dataflow_case(p, cfg)
    mp = sched.mapping
    cin, m = p["cin"], mp.m
    p2 = 1 << (cin - 1).bit_length()
    lanes = [ch if p2 <= m else ch // (p2 // m) for ch in range(cin)]          # docs §2
    widest = max(lanes.count(ln) for ln in range(m))
    expect = (math.ceil(p["cout"] / mp.out_per_pass) * widest
              * _valid_taps_1d(p["h"], p["k"], p["pad"]) * _valid_taps_1d(p["w"], p["k"], p["pad"]))
    t = time_layer(sched, x, out, cfg, weights=w if p["seed"] % 2 else None)
    assert t.units["mac_array"].busy == expect
    assert t.pu_ops == [t.mac_ops]                                # one PU: the array in lockstep


@SETTINGS
@given(p=dataflow_layers(), dataflow=st.sampled_from(["rsnn", "combined"]),
       kmem=st.sampled_from([None, 64, 256, 1024]))
def test_kernel_merging_never_adds_passes(p, dataflow, kmem):
    extra = {} if kmem is None else {"memory.kernel_memory_words_per_mac": kmem}
    plain_cfg = _flow_cfg(dataflow, p["pus"], **extra)
    try:
        sched, x, out, w = _dataflow_case(p, plain_cfg)
    except MappingError:               # raw kernels do not fit the small kernel memory at any m
        event("layer does not map")
        return
    plain = time_layer(sched, x, out, plain_cfg, weights=w)
    try:
        merged = time_layer(sched, x, out, _flow_cfg(dataflow, p["pus"], True, **extra), weights=w)
    except MappingError as exc:        # m MACs exceed a PU, or a compressed kernel exceeds the memory
        event(f"merging rejected: {str(exc)[:30]}")
        return
    event("fewer passes" if merged.passes < plain.passes else "same passes")
    assert merged.passes <= plain.passes == sched.mapping.passes
    assert merged.macs_useful == plain.macs_useful                 # same products, other grouping
