"""Cycle accuracy: the event-driven model equals the clock-stepped reference.

``simulator.engine.time_layer`` (the event model, per-stripe durations; under both of its
implementations, the compiled event loop and the simpy processes) and
``simulator.oracle.clocked_layer`` (every unit stepped one clock at a time,
no shared timing code) must agree on the total cycles, on every per-unit
counter of docs/architecture.md §3.2, on the useful MACs, the MAC operations
(in total and per PU) and the DRAM traffic, for randomly drawn small layers,
data, weights and configurations under every registered dataflow (dense, nullhop,
rsnn, combined, nullhop-prefetch). A mismatch reports the (shrunk) layer, its configuration and
both counter dictionaries.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dataflows import dataflow_names, get_dataflow, next_pow2, schedule_network
from simulator import Simulator, with_overrides
from simulator.oracle import clocked_layer
from simulator.report import LayerTiming as ClockedTiming
from dataflows import AcceleratorConfig
from simulator.engine import ENGINES, time_layer
from simulator.oracle import validate_network
from workloads import MappingError, WorkloadError
from workloads import NetworkBuilder

#: Bandwidths in bytes/cycle, starved to ample, including decimals that are not binary
#: fractions (0.3, 0.7, 1.1): both models must read them as the decimal written.
BANDWIDTHS = [0.25, 0.3, 0.5, 0.7, 0.75, 1.0, 1.1, 1.25, 2.0, 2.5, 3.0, 4.0, 8.0, 12.5, 16.0, 64.0]
#: (beat_bytes, values_per_beat): the NullHop AXI word and a few others.
BEATS = [(8, 2), (8, 2), (8, 4), (4, 2), (16, 2)]
BUFFER_KIB = [0.25, 0.5, 1, 2, 4, 4, 8, 16, 64]
#: Input channels: small, non-powers of two; CIN_WIDE: > 128 (a few examples).
CIN_SMALL = [1, 2, 3, 4, 5, 7, 8, 13, 16, 24, 31, 33, 64, 100]
CIN_WIDE = [129, 160, 200, 260]
#: Output channels: m = 8 (<= 16), 4 (<= 32), 2 (<= 64), 1 (<= 128) and multi-pass.
COUT = [1, 4, 9, 16, 20, 32, 40, 64, 96, 100, 128, 129, 200, 300]
#: Dataflows (docs/architecture.md §8) and PU counts (all divide every drawn MAC count, 16..128).
DATAFLOWS = list(dataflow_names())   # every registered dataflow, nullhop-prefetch included
PUS = [1, 2, 4, 8, 16]
#: Upper bound on the taps of a drawn layer (pixels x kernel taps x C_in x C_out): the
#: reference retires every tap of every MAC slot one cycle at a time.
MAX_TAPS = 3_000_000


@dataclass(frozen=True)
class Case:
    """One drawn layer: shape, data recipe and configuration overrides."""

    kind: str            # "conv" or "fc"
    h: int
    w: int
    cin: int
    cout: int
    k: int
    pad: int
    stride: int
    groups: int
    activation: str | None
    pool: bool
    first: bool
    density: float
    pattern: str
    out_density: float
    seed: int
    overrides: tuple[tuple[str, object], ...]
    w_density: float = 0.5
    w_pattern: str = "iid"   # "iid", "balanced" (equal non-zeros per kernel), "kernels", "none" (no weights)

    def cfg(self) -> AcceleratorConfig:
        return with_overrides(AcceleratorConfig(), dict(self.overrides))


def _network(c: Case):
    b = NetworkBuilder("case", (c.h, c.w, c.cin))
    if not c.first:
        b.conv("prev", c.cin, 1)
    if c.kind == "fc":
        b.fc("layer", c.cout, activation=c.activation)
    else:
        b.conv("layer", c.cout, c.k, stride=c.stride, padding=c.pad, groups=c.groups, activation=c.activation)
        if c.pool:
            b.maxpool("pool")
    return b.build()


def _sparse(rng: np.random.Generator, shape, density: float, pattern: str) -> np.ndarray:
    """int16 array with about ``density`` non-zeros (exactly 0 / all for 0 and 1)."""
    mag = rng.integers(1, 3000, size=shape)
    vals = np.where(rng.random(shape) < 0.5, -mag, mag)
    keep = rng.random(shape) < density
    if density not in (0.0, 1.0):
        if pattern == "rows":          # blobs: whole input rows switched off
            keep &= (rng.random(shape[0]) < 0.7)[:, None, None]
        elif pattern == "cols":        # whole columns switched off (zero-cost MAC columns)
            keep &= (rng.random(shape[1]) < 0.6)[None, :, None]
        elif pattern == "chans":       # whole channels off (unbalanced lanes)
            keep &= (rng.random(shape[2]) < 0.5)[None, None, :]
    return np.where(keep, vals, 0).astype(np.int16)


def _weights(rng: np.random.Generator, shape, density: float, pattern: str) -> np.ndarray:
    """int16 ``(C_out, kh, kw, C_in/groups)`` weights with about ``density`` non-zeros."""
    mag = rng.integers(1, 3000, size=shape)
    vals = np.where(rng.random(shape) < 0.5, -mag, mag)
    if pattern == "balanced":                      # exactly the same number of non-zeros in every kernel
        per = shape[1] * shape[2] * shape[3]
        nnz = int(round(density * per))
        rank = np.argsort(rng.random((shape[0], per)), axis=1).argsort(axis=1).reshape(shape)
        keep = rank < nnz
    else:
        keep = rng.random(shape) < density
        if pattern == "kernels" and density not in (0.0, 1.0):   # whole kernels pruned away: uneven PUs
            keep &= (rng.random(shape[0]) < 0.6)[:, None, None, None]
    return np.where(keep, vals, 0).astype(np.int16)


def materialise(c: Case):
    """The scheduled layer, its input, its written output and its weights (or None) for case ``c``."""
    cfg = c.cfg()
    sched = next(s for s in schedule_network(_network(c), cfg) if s.layer.name == "layer")
    rng = np.random.default_rng(c.seed)
    x = _sparse(rng, (c.h, c.w, c.cin), c.density, c.pattern)
    if c.kind == "fc":
        x = x.reshape(1, 1, -1)
        oshape = (1, 1, c.cout)
    else:
        ho1, wo1 = c.h + 2 * c.pad - c.k + 1, c.w + 2 * c.pad - c.k + 1
        oshape = (ho1 // 2, wo1 // 2, c.cout) if sched.fused_pool is not None else (ho1, wo1, c.cout)
    out = _sparse(rng, oshape, c.out_density, "iid")
    mp = sched.mapping
    wshape = (mp.out_channels, mp.kernel[0], mp.kernel[1], mp.conv_in_channels // mp.groups)
    w = None if c.w_pattern == "none" else _weights(rng, wshape, c.w_density, c.w_pattern)
    return sched, x, out, cfg, w


def _compressed_input(sched, cfg: AcceleratorConfig) -> bool:
    """The input stream is compressed: not the first layer, and a dataflow that compresses activations."""
    return sched.compressed_input and get_dataflow(cfg.array.dataflow).traits.compressed_activations


def _input_bytes(x: np.ndarray, compressed: bool, k: int, pad: int) -> tuple[int, int]:
    """(image bytes, largest stripe-window bytes), from the doc's §4.2 definitions."""
    h, w, c = x.shape
    nnz = np.count_nonzero(x.reshape(h, -1), axis=1)
    el = (math.ceil(w * c / 16) + nnz) if compressed else np.full(h, w * c)
    ho1 = h + 2 * pad - k + 1
    best = 0
    for s in range((ho1 + 1) // 2):
        rows = min(2, ho1 - 2 * s)
        lo, hi = max(0, 2 * s - pad), min(h - 1, 2 * s + rows - 1 - pad + k - 1)
        best = max(best, int(el[lo:hi + 1].sum()) * 2)
    return int(el.sum()) * 2, best


@st.composite
def cases(draw) -> Case:
    kind = draw(st.sampled_from(["conv"] * 11 + ["fc"]))
    stream = draw(st.booleans())
    k = draw(st.integers(1, 7)) if kind == "conv" else 1
    pad = draw(st.integers(0, k // 2))
    lo_hw = max(k, 6 if stream else 1, 2 if kind == "fc" else 1)
    tall = kind == "conv" and draw(st.integers(0, 7)) == 0      # more stripes: deeper FIFO interplay
    h = draw(st.integers(lo_hw, (24 if tall else 14) if kind == "conv" else 6))
    w = draw(st.integers(lo_hw, 14 if kind == "conv" else 6))
    wide = draw(st.integers(0, 9)) == 0
    cin = draw(st.sampled_from(CIN_WIDE if wide else (CIN_SMALL[6:] if stream else CIN_SMALL)))
    cout = draw(st.sampled_from(COUT))
    stride = draw(st.sampled_from([1, 1, 1, 2])) if kind == "conv" else 1
    pool = kind == "conv" and stride == 1 and draw(st.booleans())
    if pool:
        # A fusable pool needs an even stride-1 output: h + 2 pad - k + 1 even (likewise w).
        h, w = (v + 1 if (v + 2 * pad - k + 1) % 2 else v for v in (h, w))
        pool = min(h + 2 * pad - k + 1, w + 2 * pad - k + 1) >= 2
    groups = 1
    if kind == "conv":
        g = draw(st.sampled_from(["dense"] * 6 + ["two", "depthwise"]))
        if g == "two" and cin % 2 == 0 and cout % 2 == 0:
            groups = 2
        elif g == "depthwise" and cin <= 64:
            groups, cout = cin, cin
    # Keep the layer within MAX_TAPS: fewer rows/columns first, then fewer output channels.
    def taps() -> int:
        return h * w * k * k * cin * cout
    while taps() > MAX_TAPS and max(h, w) > lo_hw:
        if h >= w:
            h -= 1 + (pool and h - 2 >= lo_hw)      # a fused pool keeps h + 2 pad - k + 1 even
        else:
            w -= 1 + (pool and w - 2 >= lo_hw)
    if pool:
        h, w = (v + 1 if (v + 2 * pad - k + 1) % 2 else v for v in (h, w))
    while taps() > MAX_TAPS and cout > 1:
        if 1 < groups == cin:                      # depthwise: fewer channels
            cin = cout = groups = max(x for x in CIN_SMALL if x < cin)
        else:
            groups = 1
            cout = max(x for x in COUT if x < cout)
    activation = draw(st.sampled_from(["relu", "relu", "relu6"] if pool else ["relu", "relu", "relu6", None]))
    first = draw(st.booleans())
    density = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    pattern = draw(st.sampled_from(["iid", "rows", "cols", "chans"]))
    out_density = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    seed = draw(st.integers(0, 2**32 - 1))

    beat_bytes, vpb = draw(st.sampled_from(BEATS))
    maxm = draw(st.sampled_from([8, 8, 8, 4, 2, 1]))
    kkc = k * k * (h * w * cin if kind == "fc" else cin)
    # A lane holds its channels padded to a power of two (docs/architecture.md §2): size the
    # kernel memory so that the padded kernels fit at the largest m.
    padded = k * k * max(1, next_pow2(h * w * cin if kind == "fc" else cin) // maxm)
    kmem = 4096 if kkc // 4096 + 1 <= maxm and padded <= 4096 else max(kkc // maxm + 1, padded)
    if draw(st.booleans()):        # smaller kernel memories: force m up to r
        kmem = max(kkc // draw(st.integers(1, maxm)) + 1, padded)
    ov: dict[str, object] = {
        "array.num_clusters": 8 if wide else draw(st.sampled_from([8, 8, 4, 2, 1])),
        "array.max_macs_per_channel": maxm,
        "array.decoder_values_per_cycle": draw(st.integers(1, 3)),
        "array.pre_words_per_cycle": draw(st.integers(1, 3)),
        "array.encoder_values_per_cycle": draw(st.integers(1, 3)),
        "array.run_fc_on_accelerator": kind == "fc",
        "memory.kernel_memory_words_per_mac": kmem,
        # Buffers from a few hundred bytes (stalls, one-column chunks, or a MappingError both
        # models must raise) to ample; chunk widths from one column to whole stripes.
        "memory.decoder_fifo_kib": draw(st.sampled_from(BUFFER_KIB)),
        "memory.pre_buffer_kib": draw(st.sampled_from(BUFFER_KIB)),
        "memory.encoder_fifo_kib": draw(st.sampled_from(BUFFER_KIB)),
        "memory.output_buffer_kib": draw(st.sampled_from(BUFFER_KIB)),
        "array.handoff_columns": draw(st.sampled_from([1, 2, 3, 4, 4, 64])),
        "dma.interface": draw(st.sampled_from(["shared", "separate"])),
        "dma.bandwidth_bytes_per_cycle": draw(st.sampled_from(BANDWIDTHS)),
        "dma.latency_cycles": draw(st.one_of(st.just(0), st.integers(0, 200))),
        "dma.beat_bytes": beat_bytes,
        "dma.values_per_beat": vpb,
        "dma.config_beats_per_pass": draw(st.sampled_from([16, 0, 3])),
    }
    dataflow = draw(st.sampled_from(DATAFLOWS))
    skips_weights = get_dataflow(dataflow).traits.skip_weights
    merging = skips_weights and draw(st.booleans())
    ov["array.dataflow"] = dataflow
    ov["array.num_pus"] = draw(st.sampled_from(PUS))
    ov["array.kernel_merging"] = merging
    w_density = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    w_pattern = draw(st.sampled_from(["iid", "iid", "balanced", "kernels"]
                                     + ([] if skips_weights else ["none"])))
    c = Case(kind, h, w, cin, cout, k, pad, stride, groups, activation, pool, first, density, pattern,
             out_density, seed, tuple(ov.items()), w_density, w_pattern)
    if merging and draw(st.integers(0, 9)):
        # Merging keeps a kernel's m MACs in one PU; mostly draw PU counts where that holds.
        sched, *_ = materialise(c)
        n_macs = c.cfg().array.num_macs
        if sched.mapping.m > n_macs // ov["array.num_pus"]:
            ov["array.num_pus"] = n_macs // sched.mapping.m
            c = dataclasses.replace(c, overrides=tuple(ov.items()))
    if stream and kind == "conv":
        # Input memory too small for the image but big enough for one window (in KiB).
        sched, x, _, cfg, _ = materialise(c)
        image, window = _input_bytes(x, _compressed_input(sched, cfg), k, pad)
        lo_kib, hi_kib = math.ceil(window / 1024), (image - 1) // 1024
        if lo_kib <= hi_kib:
            ov["memory.input_memory_kib"] = draw(st.integers(lo_kib, hi_kib))
            c = dataclasses.replace(c, overrides=tuple(ov.items()))
    return c


def _counters(ev) -> dict[str, dict[str, int]]:
    return {u: s.as_dict() for u, s in ev.units.items()}


def _event_view(ev) -> dict[str, object]:
    """Everything both models must agree on exactly, from the event model's LayerTiming."""
    return {"cycles": ev.cycles, "units": _counters(ev), "macs_useful": ev.macs_useful, "mac_ops": ev.mac_ops,
            "pu_ops": list(ev.pu_ops), "passes": ev.passes, "resident": ev.resident,
            "dram_read_bytes": dict(ev.dram_read_bytes), "dram_write_bytes": dict(ev.dram_write_bytes),
            "dram_busy_cycles": ev.dram_busy_cycles, "handoff_columns": ev.handoff_columns,
            "pass_cycles": list(ev.pass_cycles)}


def _reference_view(ref: ClockedTiming) -> dict[str, object]:
    return {"cycles": ref.cycles, "units": {u: st.as_dict() for u, st in ref.units.items()},
            "macs_useful": ref.macs_useful, "mac_ops": ref.mac_ops,
            "pu_ops": list(ref.pu_ops), "passes": ref.passes, "resident": ref.resident,
            "dram_read_bytes": dict(ref.dram_read_bytes), "dram_write_bytes": dict(ref.dram_write_bytes),
            "dram_busy_cycles": ref.dram_busy_cycles, "handoff_columns": ref.handoff_columns,
            "pass_cycles": list(ref.pass_cycles)}


def _message(c: Case, ev, ref: ClockedTiming) -> str:
    e, r = _event_view(ev), _reference_view(ref)
    lines = [f"event model and clocked reference disagree for {c!r}"]
    for key in e:
        if key == "units":
            continue
        flag = "" if e[key] == r[key] else "   <-- differs"
        lines.append(f"  {key}: event={e[key]} reference={r[key]}{flag}")
    lines.append(f"  pu_imbalance: event={ev.pu_imbalance} reference={ref.pu_imbalance}")
    lines.append(f"  pu_time_imbalance: event={ev.pu_time_imbalance} reference={ref.pu_time_imbalance}")
    for u in e["units"]:
        flag = "" if e["units"][u] == r["units"].get(u) else "   <-- differs"
        lines.append(f"  {u}: event={e['units'][u]} reference={r['units'].get(u)}{flag}")
    return "\n".join(lines)


def _compare(c: Case) -> tuple[object, ClockedTiming] | None:
    """Time case ``c`` with both models (the event model under each engine) and assert they
    agree; None when both reject the layer."""
    try:
        sched, x, out, cfg, w = materialise(c)
    except MappingError as exc:            # the shared mapping rejects it before either model runs
        event(f"mapping rejects: {str(exc).split(',')[0][:40]}")
        return None
    try:
        evs = [time_layer(sched, x, out, cfg, weights=w, engine=e) for e in ENGINES]
    except MappingError as exc:
        # The planning rejects the layer (e.g. merging with fewer MACs per PU than m, or a
        # compressed kernel larger than the kernel memory): the reference must reject it too.
        with pytest.raises(MappingError):
            clocked_layer(sched, x, out, cfg, weights=w)
        event(f"both reject: {str(exc).split(',')[0][:40]}")
        return None
    ref = clocked_layer(sched, x, out, cfg, weights=w)
    for engine, ev in zip(ENGINES, evs):
        msg = f"engine={engine}\n" + _message(c, ev, ref)
        assert _event_view(ev) == _reference_view(ref), msg
        assert math.isclose(ev.pu_imbalance, ref.pu_imbalance, rel_tol=1e-9), msg
        assert math.isclose(ev.pu_time_imbalance, ref.pu_time_imbalance, rel_tol=1e-9), msg
    return evs[0], ref


@settings(max_examples=1000, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(c=cases())
def test_event_model_is_cycle_exact(c: Case) -> None:
    cfg = c.cfg()
    event(f"dataflow={cfg.array.dataflow}" + (", merged" if cfg.array.kernel_merging else ""))
    event(f"num_pus={cfg.array.num_pus}")
    event(f"weights: {c.w_pattern}, density {'0' if c.w_density == 0 else '1' if c.w_density == 1 else 'between'}")
    got = _compare(c)
    if got is None:
        return
    ev, _ = got
    sched = materialise(c)[0]
    event(c.kind)
    event("resident" if ev.resident else "streamed")
    event(f"m={sched.mapping.m}, passes>1={ev.passes > 1}")
    event("fused pool" if sched.fused_pool is not None else "no pool")
    event("uncompressed input" if not _compressed_input(sched, cfg) else "compressed input")
    event("buffer stalls" if any(u.stall_output for u in ev.units.values()) else "no buffer stall")
    event("DRAM-interface stalls" if any(u.stall_dram for u in ev.units.values()) else "no DRAM-interface stall")
    event("one-column hand-offs" if ev.handoff_columns == 1 else "multi-column hand-offs")


def _fixed(**kw) -> Case:
    base = dict(kind="conv", h=10, w=10, cin=16, cout=32, k=3, pad=1, stride=1, groups=1, activation="relu",
                pool=False, first=False, density=0.5, pattern="iid", out_density=0.5, seed=1, overrides=())
    base.update(kw)
    return Case(**base)


def _smallest_memory(c: Case) -> Case:
    """``c`` with the smallest input memory (KiB) that still holds one stripe window."""
    sched, x, _, cfg, _ = materialise(c)
    _, window = _input_bytes(x, _compressed_input(sched, cfg), c.k, c.pad)
    return dataclasses.replace(c, overrides=c.overrides + (("memory.input_memory_kib", math.ceil(window / 1024)),))


def _flow(dataflow: str, pus: int = 8, merging: bool = False, *more) -> tuple[tuple[str, object], ...]:
    return (("array.dataflow", dataflow), ("array.num_pus", pus), ("array.kernel_merging", merging)) + more


#: Hand-picked corners the random suite reaches only by luck.
CORNERS = {
    "streamed window, 1-stripe input memory": _smallest_memory(_fixed(h=14, w=12, cin=64)),
    "streamed, multi-pass re-read": _smallest_memory(_fixed(h=12, w=12, cin=64, cout=200, overrides=(
        ("dma.bandwidth_bytes_per_cycle", 2.0),))),
    "all-zero input, zero-cycle MAC stripes": _fixed(density=0.0, out_density=0.0),
    "dense first layer, starved DMA": _fixed(first=True, density=1.0, overrides=(
        ("dma.bandwidth_bytes_per_cycle", 0.25), ("dma.latency_cycles", 200))),
    "fused pool, small buffers": _fixed(pool=True, overrides=(
        ("memory.decoder_fifo_kib", 1), ("memory.pre_buffer_kib", 0.5), ("memory.encoder_fifo_kib", 0.5),
        ("memory.output_buffer_kib", 0.5))),
    "one column per hand-off, separate DRAM channels": _fixed(overrides=(
        ("array.handoff_columns", 1), ("dma.interface", "separate"))),
    "whole-stripe hand-offs, ample buffers": _fixed(overrides=(
        ("array.handoff_columns", 64), ("memory.decoder_fifo_kib", 1024), ("memory.pre_buffer_kib", 1024),
        ("memory.encoder_fifo_kib", 1024), ("memory.output_buffer_kib", 1024))),
    "7x7 stride 2, zero latency, ample DMA": _fixed(k=7, pad=3, stride=2, h=14, w=13, overrides=(
        ("dma.latency_cycles", 0), ("dma.bandwidth_bytes_per_cycle", 64.0))),
    "1x1, odd output height, m=8": _fixed(k=1, pad=0, h=7, w=5, cout=12),
    "wide input, 2 kernel memories": _fixed(k=5, pad=2, cin=200, cout=100, h=7, w=7),
    "depthwise": _fixed(groups=16, cout=16, cin=16, density=0.3),
    # Dataflows (docs/architecture.md §8).
    "nullhop without weights: every weight counts as non-zero": _fixed(w_pattern="none"),
    "dense, depthwise, raw activations": _fixed(groups=16, cout=16, cin=16, density=0.3, overrides=_flow("dense")),
    "dense, streamed raw input": _smallest_memory(_fixed(h=14, w=12, cin=64, overrides=_flow("dense"))),
    "rsnn, all-zero weights: no MAC cycle": _fixed(w_density=0.0, overrides=_flow("rsnn")),
    "rsnn, dense weights, 16 PUs": _fixed(w_density=1.0, overrides=_flow("rsnn", 16)),
    "rsnn, balanced weights, 2 PUs, multi-pass": _fixed(cout=200, w_density=0.3, w_pattern="balanced",
                                                        overrides=_flow("rsnn", 2)),
    "rsnn, pruned kernels, stride 2": _fixed(k=5, pad=2, stride=2, h=12, w=11, w_density=0.5, w_pattern="kernels",
                                             overrides=_flow("rsnn", 4)),
    "rsnn, depthwise, merged": _fixed(groups=16, cout=16, cin=16, w_density=0.4, overrides=_flow("rsnn", 8, True)),
    "combined, merged sparse kernels, 300 channels": _fixed(cout=300, w_density=0.1, overrides=_flow(
        "combined", 4, True)),
    "combined, merged, 1 PU, small kernel memory": _fixed(cout=64, w_density=0.2, overrides=_flow(
        "combined", 1, True, ("memory.kernel_memory_words_per_mac", 200))),
    "combined, first layer, fused pool": _fixed(first=True, pool=True, w_density=0.5, overrides=_flow("combined", 16)),
    "combined, FC on the accelerator": _fixed(kind="fc", h=3, w=3, cin=40, cout=100, k=1, pad=0, w_density=0.3,
                                              overrides=_flow("combined", 8, True,
                                                              ("array.run_fc_on_accelerator", True))),
}


@pytest.mark.parametrize("name", list(CORNERS))
def test_corner_cases_are_cycle_exact(name: str) -> None:
    assert _compare(CORNERS[name]) is not None


def test_dataflow_corners_do_what_they_say() -> None:
    _, ref = _compare(CORNERS["rsnn, all-zero weights: no MAC cycle"])
    assert ref.units["mac_array"].busy == 0 and ref.mac_ops == 0 and ref.macs_useful == 0
    ev, ref = _compare(CORNERS["combined, merged sparse kernels, 300 channels"])
    assert ref.passes == 1 and len(ref.pass_channels[0]) == 300 and len(ref.pu_ops) == 4
    _, ref = _compare(CORNERS["rsnn, dense weights, 16 PUs"])
    assert len(ref.pu_ops) == 16
    _, ref = _compare(CORNERS["dense, depthwise, raw activations"])
    assert ref.pu_ops == [ref.mac_ops]          # one PU: the whole array in lockstep
    sched, x, out, cfg, w = materialise(CORNERS["dense, streamed raw input"])
    assert not clocked_layer(sched, x, out, cfg, weights=w).resident


def test_reference_weight_skipping_by_hand() -> None:
    # 3x3 image, one non-zero pixel in the middle, pad 1, one input and one output channel (one busy
    # MAC slot), weights non-zero at (ky, kx) = (0, 1), (1, 0), (2, 1), (2, 2). A weight at (ky, kx)
    # meets (3 - |ky - 1|) x (3 - |kx - 1|) input pixels on valid outputs: 6 + 6 + 6 + 4 = 22 taps
    # over all pixels, 49 for all nine weights; the middle pixel meets each weight once.
    #   combined: middle pixel x 4 non-zero weights = 4   nullhop: middle pixel x 9 taps = 9
    #   rsnn:     all pixels x non-zero weights = 22       dense:   all pixels x all taps = 49
    # Useful MACs are the 4 products of the non-zero pixel with a non-zero weight in every case.
    base = _fixed(h=3, w=3, cin=1, cout=1, k=3, pad=1, overrides=(("array.num_clusters", 1),))
    sched, x, out, cfg, _ = materialise(base)
    x = np.zeros_like(x)
    x[1, 1, 0] = 7
    w = np.zeros((1, 3, 3, 1), dtype=np.int16)
    w[0, 0, 1, 0] = w[0, 1, 0, 0] = w[0, 2, 2, 0] = w[0, 2, 1, 0] = 3
    for dataflow, busy in [("combined", 4), ("nullhop", 9), ("rsnn", 22), ("dense", 49)]:
        c = with_overrides(cfg, {"array.dataflow": dataflow})
        ref = clocked_layer(sched, x, out, c, weights=w)
        assert (ref.units["mac_array"].busy, ref.mac_ops, ref.macs_useful) == (busy, busy, 4), dataflow
        for engine in ENGINES:
            ev = time_layer(sched, x, out, c, weights=w, engine=engine)
            assert (ev.cycles, ev.mac_ops, ev.macs_useful) == (ref.cycles, ref.mac_ops, ref.macs_useful), engine


def test_weight_skipping_dataflows_need_weights() -> None:
    for dataflow in ("rsnn", "combined"):
        c = _fixed(w_pattern="none", overrides=_flow(dataflow))
        sched, x, out, cfg, w = materialise(c)
        assert w is None
        with pytest.raises(MappingError, match="needs the layer's weights"):
            clocked_layer(sched, x, out, cfg)
        with pytest.raises(MappingError):
            time_layer(sched, x, out, cfg)


def test_streaming_corner_really_streams() -> None:
    sched, x, out, cfg, w = materialise(CORNERS["streamed, multi-pass re-read"])
    ref = clocked_layer(sched, x, out, cfg, weights=w)
    assert not ref.resident and ref.passes > 1
    sched, x, out, cfg, w = materialise(CORNERS["streamed window, 1-stripe input memory"])
    ref = clocked_layer(sched, x, out, cfg, weights=w)
    assert not ref.resident


def test_reference_dma_transfer_is_latency_plus_exact_ceil() -> None:
    # 16 MACs, C_out = 1 -> m = 8; load = 16 config + ceil(16 / 2) bias + 1 x 8 x ceil(1 / 2) kernel
    # = 32 beats = 256 bytes at 0.75 B/cycle: 7 cycles of latency + ceil(341.33) = 349 cycles.
    c = _fixed(k=1, pad=0, h=1, w=1, cin=1, cout=1, density=0.0, out_density=0.0, overrides=(
        ("array.num_clusters", 1), ("dma.bandwidth_bytes_per_cycle", 0.75), ("dma.latency_cycles", 7)))
    sched, x, out, cfg, _ = materialise(c)
    ref = clocked_layer(sched, x, out, cfg)
    assert ref.units["decoder"].stall_weights == 7 + 342


#: 16 MACs, C_out = 9 -> m = 1; load = 0 config + ceil(16 / 2) bias + 9 x 1 x ceil(34 / 2) = 161 beats.
DECIMAL_BW = _fixed(k=1, pad=0, h=2, w=2, cin=34, cout=9, overrides=(
    ("array.num_clusters", 1), ("dma.config_beats_per_pass", 0), ("dma.bandwidth_bytes_per_cycle", 0.7),
    ("dma.latency_cycles", 0)))


def test_reference_reads_decimal_bandwidth_exactly() -> None:
    sched, x, out, cfg, _ = materialise(DECIMAL_BW)
    ref = clocked_layer(sched, x, out, cfg)
    assert ref.units["decoder"].stall_weights == 1840   # 161 x 8 bytes / (7/10 B/cycle), exactly


def test_decimal_bandwidth_is_exact_in_event_model() -> None:
    # Regression: a float ceil(1288 / 0.7) = ceil(1840.0000000000002) gave 1841 cycles.
    assert _compare(DECIMAL_BW) is not None


# ---------------------------------------------------------------------------
# validate_network: real propagated activations, whole networks
# ---------------------------------------------------------------------------

#: (network, accelerator preset, overrides, max_rows, layers, profile): every dataflow on real
#: propagated activations and synthetic pruned weights (resnet18 and mobilenet_v2 have no
#: published weight sparsity: a uniform profile with 30% weights makes weight skipping matter).
#: Big networks are cropped to their first rows and a few layers (the reference retires every
#: MAC slot's taps one by one, and a run stops after the last selected layer); full networks
#: under every dataflow are in docs/architecture.md §7.6.
VALIDATIONS = [
    ("roshambonet", "nullhop", None, None, None, None),
    ("roshambonet", "rsnn", {"array.kernel_merging": True}, None, None, None),
    ("resnet18", "combined", None, 8, None, "uniform-0.5-w0.3"),
    ("mobilenet_v2", "dense", None, 8, ["features.0", "features.1.conv.0.0", "features.2.conv.1.0", "features.18"],
     None),
    ("vgg16", "rsnn", None, 6, ["conv1_1", "conv1_2", "conv2_1"], None),
    ("vgg16", "combined", {"array.kernel_merging": True}, 6, ["conv1_2", "conv2_2", "conv3_1"], None),
    # Two kernel banks: multi-pass layers, loads overlapping the previous pass, resident and streaming inputs.
    ("resnet18", "nullhop-prefetch", None, None, None, None),
    ("vgg16", "nullhop-prefetch", None, 6, ["conv3_1", "conv4_2", "conv5_1"], None),
    ("mobilenet_v2", "nullhop-prefetch", {"dma.latency_cycles": 400}, 6,
     ["features.14.conv.0.0", "features.17.conv.2", "features.18"], None),
]


@pytest.mark.slow
@pytest.mark.parametrize("network, accel, overrides, max_rows, layers, profile", VALIDATIONS,
                         ids=[f"{n}-{a}{'-merged' if o else ''}" for n, a, o, *_ in VALIDATIONS])
def test_validate_network_agrees_on_every_layer(network: str, accel: str, overrides, max_rows, layers,
                                                profile) -> None:
    report = validate_network(network, accel, overrides=overrides, max_rows=max_rows, layers=layers,
                              profile=profile)
    assert report.all_agree, report.format_table()
    assert report.accelerator == accel
    assert len(report.rows) == (len(layers) if layers else len(report.rows)) > 0
    if max_rows is None:
        assert all(r.shape == "full" for r in report.rows)


def test_validate_crops_and_stops_after_the_selected_layers() -> None:
    report = validate_network("roshambonet", layers=["layer2", "layer1"], max_rows=9)
    assert [r.layer for r in report.rows] == ["layer1", "layer2"]
    assert report.all_agree, report.format_table()
    first = report.rows[0]
    assert first.shape.startswith("rows 0..") and first.input_shape[0] < 64
    assert report.to_dict()["all_agree"] is True
    assert "2/2 layers agree" in report.format_table()


def test_validate_rejects_unknown_layers_naming_the_valid_ones() -> None:
    with pytest.raises(WorkloadError, match=r"^layer 'nope' is not a layer of the network; accelerator layers of "
                                            r"'roshambonet' are: layer1, layer2, "):
        validate_network("roshambonet", layers=["nope"])


def test_reference_shares_no_timing_code() -> None:
    # The oracle may use the configuration, the codec, the records and the dataflow's traits and
    # pass plan, never the event model, the dataflow's per-pass work or the counting kernels.
    import ast
    import simulator.oracle._clocked as clocked
    text = open(clocked.__file__, encoding="utf-8").read()
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    forbidden = ("engine", "_counts", "_stripe", "slot_mac_work", "weight_tap_prefix", "row_chunk_elements",
                 "stripe_windows", "dma_cycles", "StripeDataflow")
    assert not [m for m in imported if any(f in m for f in forbidden)], imported
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert ".layer_work(" not in code and "dma_cycles" not in code
