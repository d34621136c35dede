"""The dataflow plug-in protocol: the registry, a dataflow written through the API alone,
and what the second kernel bank of ``nullhop-prefetch`` buys, checked by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dataflows import (Dataflow, DataflowTraits, StripeDataflow, dataflow_names, get_dataflow, get_preset,
                       list_presets, register, schedule_network, with_overrides)
from simulator import ConfigError, Simulator, compare_dataflows
from simulator.engine import time_layer
from simulator.oracle import clocked_layer
from workloads import NetworkBuilder


def test_builtin_dataflows_are_registered_in_order_and_each_has_a_preset():
    assert dataflow_names()[:5] == ("dense", "nullhop", "rsnn", "combined", "nullhop-prefetch")
    for name in dataflow_names()[:5]:
        assert isinstance(get_dataflow(name), Dataflow)
        assert name in list_presets() and get_preset(name).array.dataflow == name


def test_unknown_dataflow_names_the_field_the_value_and_the_choices():
    with pytest.raises(ConfigError, match=r"^array.dataflow must be one of dense, nullhop, rsnn, combined, "
                                          r"nullhop-prefetch, got 'nullhopp' \(did you mean 'nullhop'\?\)$"):
        get_dataflow("nullhopp")
    with pytest.raises(ConfigError, match=r"^array.dataflow must be one of .*, got 'nulhop' \(did you mean"):
        with_overrides(get_preset("nullhop"), {"array.dataflow": "nulhop"})


def test_register_checks_the_protocol():
    with pytest.raises(ConfigError, match="a dataflow must provide name, description, traits"):
        register(object())
    with pytest.raises(ConfigError, match="dataflow 'nullhop' is already registered"):
        register(StripeDataflow("nullhop", "again", get_dataflow("nullhop").traits))

    class Short(StripeDataflow):
        buffers = StripeDataflow.buffers[:2]

    with pytest.raises(ConfigError, match=r"6 units need 5 buffers between them, got 2"):
        register(Short("short", "too few buffers", get_dataflow("nullhop").traits))
    assert "short" not in dataflow_names()


def _layer(h=16, w=16, cin=32, cout=256, k=3):
    b = NetworkBuilder("net", (h, w, cin))
    b.conv("prev", cin, 1)
    b.conv("layer", cout, k, padding=1)
    return b.build()


def test_a_dataflow_written_through_the_api_alone_runs_everywhere():
    """A user's dataflow: its module registers it, and config, runs, energy, compare and
    the reference all accept it without any other change."""
    name = "test-weights-only-compressed"
    if name not in dataflow_names():
        register(StripeDataflow(name, "skips nothing, stores kernels compressed",
                                DataflowTraits(skip_activations=False, skip_weights=False,
                                               compressed_activations=False, compressed_weights=True)))
    cfg = with_overrides(get_preset("nullhop"), {"array.dataflow": name})
    res = Simulator(cfg).run(_layer(), trace="synthetic", profile="uniform-0.5-w0.3")
    acc = [l for l in res.layers if l.where == "accelerator"]
    assert acc and all(l.cycles > 0 and l.energy_pj["mac"] > 0 for l in acc)
    assert list(acc[0].units) == list(get_dataflow(name).units)
    comp = compare_dataflows(_layer(), cfg, dataflows=["dense", name], trace="synthetic",
                             profile="uniform-0.5-w0.3")
    dense, mine = comp.results["dense"], comp.results[name]
    # Same MAC work as dense; only the weight bytes differ (compressed kernels at 30% density).
    assert mine.totals["mac_ops"] == dense.totals["mac_ops"]
    assert mine.layer("layer").dram_read_bytes["weights"] < dense.layer("layer").dram_read_bytes["weights"]
    # The clock-stepped reference reads the registry too, and agrees.
    sched = next(s for s in schedule_network(_layer(), cfg) if s.layer.name == "layer")
    rng = np.random.default_rng(1)
    x = (rng.random((16, 16, 32)) < 0.5).astype(np.int16)
    out = (rng.random((16, 16, 256)) < 0.5).astype(np.int16)
    wts = (rng.random((256, 3, 3, 32)) < 0.3).astype(np.int16)
    ev, ref = time_layer(sched, x, out, cfg, weights=wts), clocked_layer(sched, x, out, cfg, weights=wts)
    assert ev.cycles == ref.cycles
    assert {u: s.as_dict() for u, s in ev.units.items()} == {u: s.as_dict() for u, s in ref.units.items()}


# ------------------------------------------------------------ the second kernel bank
def _load_cycles(cfg, sched) -> int:
    """Kernel + bias + register load of one pass, per docs/architecture.md §4.1, by hand."""
    mp, d = sched.mapping, cfg.dma
    slots = mp.out_per_pass * mp.m
    beats = d.config_beats_per_pass + math.ceil(cfg.array.num_macs / d.values_per_beat) \
        + slots * math.ceil(mp.contiguous_kernels / d.values_per_beat)
    return d.latency_cycles + math.ceil(beats * d.beat_bytes / d.bandwidth_bytes_per_cycle)


@pytest.mark.parametrize("cout, passes", [(256, 2), (512, 4)])
def test_prefetch_hides_every_load_but_the_first_when_passes_are_long(cout, passes):
    net = _layer(h=32, w=32, cin=64, cout=cout)
    # Separate DRAM channels: the prefetch then competes with nothing (the shared case is below).
    sep = {"dma.interface": "separate"}
    base = with_overrides(get_preset("nullhop"), sep)
    pre = with_overrides(get_preset("nullhop-prefetch"), sep)
    sched = next(s for s in schedule_network(net, base) if s.layer.name == "layer")
    assert sched.mapping.passes == passes
    rng = np.random.default_rng(0)
    x = (rng.random((32, 32, 64)) < 0.5).astype(np.int16)
    out = (rng.random((32, 32, cout)) < 0.5).astype(np.int16)
    serial, overlapped = time_layer(sched, x, out, base), time_layer(sched, x, out, pre)
    load = _load_cycles(base, sched)
    # Each pass computes far longer than a load takes, so every load after the first is hidden.
    assert min(serial.pass_cycles) > 4 * load
    assert serial.cycles - overlapped.cycles == (passes - 1) * load
    assert serial.units["mac_array"].stall_weights == passes * load
    assert overlapped.units["mac_array"].stall_weights == load
    # DMA read does the same transfers, now overlapped; the work itself is unchanged.
    assert overlapped.units["dma_read"].busy == serial.units["dma_read"].busy
    assert overlapped.units["mac_array"].busy == serial.units["mac_array"].busy
    assert overlapped.dram_read_bytes == serial.dram_read_bytes and overlapped.actions == serial.actions
    ref = clocked_layer(sched, x, out, pre)
    assert (ref.cycles, ref.units["mac_array"].stall_weights) == (overlapped.cycles, load)
    # On one shared interface the prefetch takes turns with the output writes: it still hides
    # the loads, but the writes it delays can give some of the gain back.
    shared_serial = time_layer(sched, x, out, get_preset("nullhop"))
    shared_pre = time_layer(sched, x, out, get_preset("nullhop-prefetch"))
    assert 0 < shared_serial.cycles - shared_pre.cycles <= (passes - 1) * load
    assert shared_pre.units["mac_array"].stall_weights == load


def test_prefetch_waits_for_the_rest_of_a_load_longer_than_the_pass():
    """A starved DMA: the next load outlasts the pass, and the pass after it waits only for the rest."""
    net = _layer(h=4, w=4, cin=64, cout=256)
    ov = {"dma.bandwidth_bytes_per_cycle": 0.5, "dma.latency_cycles": 50, "dma.interface": "separate"}
    base = with_overrides(get_preset("nullhop"), ov)
    pre = with_overrides(get_preset("nullhop-prefetch"), ov)
    sched = next(s for s in schedule_network(net, base) if s.layer.name == "layer")
    rng = np.random.default_rng(2)
    x = (rng.random((4, 4, 64)) < 0.5).astype(np.int16)
    out = (rng.random((4, 4, 256)) < 0.5).astype(np.int16)
    serial, overlapped = time_layer(sched, x, out, base), time_layer(sched, x, out, pre)
    load = _load_cycles(base, sched)
    first_compute = serial.pass_cycles[0] - load
    assert first_compute < load                    # the pass is shorter than the next load
    saved = serial.cycles - overlapped.cycles
    assert 0 < saved < load
    ref = clocked_layer(sched, x, out, pre)
    assert ref.cycles == overlapped.cycles and ref.pass_cycles == overlapped.pass_cycles
    assert {u: s.as_dict() for u, s in ref.units.items()} == {u: s.as_dict() for u, s in overlapped.units.items()}


def test_the_readme_plug_in_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### Adding a dataflow"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    if "dense-compressed-kernels" in dataflow_names():   # already registered by an earlier run
        code = code.replace("register(", "(lambda d: d)(", 1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)       # the project's own README, not user input
    res = scope["result"]
    assert res.config["array"]["dataflow"] == "dense-compressed-kernels" and res.totals["cycles"] > 0
    assert all(l.functional_check == "bit-exact" for l in res.layers if l.where == "accelerator")
