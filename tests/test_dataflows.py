"""RSNN-style weight sparsity: pruning tools, PUs, kernel merging, dense baseline, compare."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dataflows import schedule_network
from dataflows import get_dataflow, kernel_lane_sizes, plan_passes
from simulator import Simulator, WorkloadError, get_preset, with_overrides
from simulator.studies import compare_dataflows
from simulator.engine import time_layer
from workloads import NetworkBuilder, prune_weights, synthetic_activation, synthetic_weights


def _layer(h=14, cin=64, cout=128, k=3):
    b = NetworkBuilder("t", (h, h, cin))
    b.conv("pre", cin, 1)            # so that "c" reads a compressed input
    b.conv("c", cout, k, padding=k // 2)
    return b.build()


def _timed(net, accel, weights, act, overrides=None):
    cfg = get_preset(accel)
    if overrides:
        cfg = with_overrides(cfg, overrides)
    sim = Simulator(cfg)
    sched = [s for s in schedule_network(net, sim.config) if s.layer.name == "c"][0]
    layer = sched.layer
    out = synthetic_activation((layer.out_shape[0], layer.out_shape[1], layer.out_channels), 0.5, 9)
    return time_layer(sched, act, out, cfg, weights=weights)


# ---------------------------------------------------------------- pruning tools
@settings(max_examples=60, deadline=None)
@given(cout=st.integers(1, 24), k=st.integers(1, 5), cin=st.integers(1, 20),
       density=st.floats(0, 1), method=st.sampled_from(["magnitude", "balanced"]),
       gran=st.sampled_from(["kernel", "kernel_channel"]), seed=st.integers(0, 5))
def test_pruning_hits_the_density_exactly(cout, k, cin, density, method, gran, seed):
    w = synthetic_weights((cout, k, k, cin), seed)          # no zero weights
    p = prune_weights(w, density, method=method, granularity=gran)
    assert np.count_nonzero(p) == int(np.floor(density * w.size + 0.5))
    kept = p != 0
    assert np.array_equal(p[kept], w[kept])                  # kept weights unchanged


def test_magnitude_pruning_keeps_the_largest_weights():
    w = synthetic_weights((16, 3, 3, 16), 1)
    p = prune_weights(w, 0.3, method="magnitude")
    kept = np.abs(w[p != 0].astype(int))
    dropped = np.abs(w[p == 0].astype(int))
    assert kept.min() >= dropped.max()


@pytest.mark.parametrize("gran, axes", [("kernel", (1, 2, 3)), ("kernel_channel", (1, 2))])
def test_balanced_pruning_equalises_units(gran, axes):
    w = synthetic_weights((32, 3, 3, 32), 2)
    p = prune_weights(w, 0.27, method="balanced", granularity=gran)
    per_unit = (p != 0).sum(axis=axes)
    assert per_unit.max() - per_unit.min() <= 1
    naive = (prune_weights(w, 0.27) != 0).sum(axis=axes)
    assert naive.max() - naive.min() > 1                     # the spread balance-aware pruning removes


def test_pruning_errors_name_the_value():
    w = synthetic_weights((2, 1, 1, 2), 0)
    with pytest.raises(WorkloadError, match=r"density must be a number in \[0, 1\], got 1.5"):
        prune_weights(w, 1.5)
    with pytest.raises(WorkloadError, match="pruning method must be one of magnitude, balanced, got 'random'"):
        prune_weights(w, 0.5, method="random")


# ---------------------------------------------------------------- PUs and imbalance
@pytest.mark.parametrize("gran", ["kernel", "kernel_channel"])
def test_balance_aware_pruning_same_density_lower_imbalance(gran):
    """Issue 4: balance-aware pruning reaches the same density with lower PU imbalance."""
    net = _layer()
    act = synthetic_activation((14, 14, 64), 0.5, 3)
    w = synthetic_weights((128, 3, 3, 64), 4)
    naive = prune_weights(w, 0.3, method="magnitude")
    balanced = prune_weights(w, 0.3, method="balanced", granularity=gran)
    assert np.count_nonzero(naive) == np.count_nonzero(balanced)
    t_naive = _timed(net, "rsnn", naive, act)
    t_bal = _timed(net, "rsnn", balanced, act)
    assert t_bal.pu_imbalance < t_naive.pu_imbalance
    assert t_bal.pu_time_imbalance < t_naive.pu_time_imbalance
    assert t_bal.actions["mac_ops"] == pytest.approx(t_naive.actions["mac_ops"], rel=0.25)
    assert t_bal.cycles < t_naive.cycles


def test_pu_ops_sum_to_mac_ops_and_imbalance_definition():
    net = _layer()
    act = synthetic_activation((14, 14, 64), 0.4, 5)
    w = prune_weights(synthetic_weights((128, 3, 3, 64), 6), 0.3)
    t = _timed(net, "combined", w, act)
    assert sum(t.pu_ops) == t.mac_ops
    ops = np.array(t.pu_ops)
    assert t.pu_imbalance == pytest.approx(ops.max() / ops[ops > 0].mean())


def test_weight_skipping_performs_only_nonzero_weight_taps():
    """MAC ops = taps with a non-zero weight (rsnn: every pixel; combined: non-zero pixels only)."""
    net = _layer(h=8, cin=16, cout=16)
    act = synthetic_activation((8, 8, 16), 0.5, 1)
    w = prune_weights(synthetic_weights((16, 3, 3, 16), 2), 0.4)
    t_rsnn = _timed(net, "rsnn", w, act)
    t_comb = _timed(net, "combined", w, act)
    # Independent count: for every (pixel, kernel, tap) with a valid output, a non-zero weight.
    h = 8
    valid = np.zeros((h, 3))
    for iy in range(h):
        for ky in range(3):
            oy = iy - ky + 1
            valid[iy, ky] = 0 <= oy < h
    nzw = (w != 0).astype(int)                               # (k, ky, kx, c)
    a_all = np.einsum("hy,wx->yx", valid, valid)             # pixel positions per tap
    expect_rsnn = int(np.einsum("kyxc,yx->", nzw, a_all))
    nz = (act != 0).astype(int)
    a_nz = np.einsum("hwc,hy,wx->cyx", nz, valid, valid)
    expect_comb = int(np.einsum("kyxc,cyx->", nzw, a_nz))
    assert t_rsnn.mac_ops == expect_rsnn                     # every pixel, only non-zero weights
    assert t_comb.mac_ops == expect_comb
    assert t_comb.macs_useful == expect_comb                 # every performed op is effectual


# ---------------------------------------------------------------- dense baseline
def test_dense_baseline_skips_nothing_and_moves_raw_data():
    net = _layer(h=10, cin=32, cout=32)
    act = synthetic_activation((10, 10, 32), 0.3, 1)
    w = prune_weights(synthetic_weights((32, 3, 3, 32), 2), 0.3)
    dense = _timed(net, "dense", w, act)
    nullhop = _timed(net, "nullhop", w, act)
    # Every pixel x every valid tap x every output channel is performed.
    taps = sum(sum(0 <= i - k + 1 < 10 for k in range(3)) for i in range(10))  # valid taps per row, pad 1
    assert dense.mac_ops == taps * taps * 32 * 32
    assert nullhop.mac_ops < dense.mac_ops
    assert dense.cycles > nullhop.cycles
    # Uncompressed activations: W*C values per row, 2 per beat, 8 bytes per beat.
    assert dense.dram_read_bytes["activations"] == 10 * (10 * 32 // 2) * 8
    assert dense.dram_read_bytes["activations"] != nullhop.dram_read_bytes["activations"]


def test_compressed_weights_are_counted_compressed():
    net = _layer(h=10, cin=32, cout=32)
    act = synthetic_activation((10, 10, 32), 0.5, 1)
    w = prune_weights(synthetic_weights((32, 3, 3, 32), 2), 0.25)
    t = _timed(net, "rsnn", w, act)
    sched = [s for s in schedule_network(net, get_preset("rsnn")) if s.layer.name == "c"][0]
    sizes = kernel_lane_sizes(w, sched.mapping)              # SM words + non-zeros per kernel lane
    expect_beats = int((-(-sizes // 2)).sum())
    assert t.dram_read_bytes["weights"] == expect_beats * 8
    assert t.dram_read_bytes["weights"] < _timed(net, "nullhop", w, act).dram_read_bytes["weights"]


# ---------------------------------------------------------------- kernel merging
def test_kernel_merging_packs_sparse_kernels_into_fewer_passes():
    net = _layer(h=8, cin=256, cout=512)
    act = synthetic_activation((8, 8, 256), 0.5, 1)
    w = prune_weights(synthetic_weights((512, 3, 3, 256), 3), 0.25, method="balanced")
    plain = _timed(net, "rsnn", w, act)
    merged = _timed(net, "rsnn", w, act, {"array.kernel_merging": True})
    assert merged.passes < plain.passes
    assert merged.mac_ops == plain.mac_ops                   # same work, fewer passes
    assert merged.dram_read_bytes["activations"] < plain.dram_read_bytes["activations"] or plain.resident


def test_merged_plans_respect_kernel_memory_and_cover_every_channel():
    net = _layer(h=8, cin=128, cout=300)
    sim = Simulator("rsnn")
    sched = [s for s in schedule_network(net, sim.config) if s.layer.name == "c"][0]
    w = prune_weights(synthetic_weights((300, 3, 3, 128), 3), 0.2)
    plans = plan_passes(sched.mapping, num_macs=128, num_pus=8, kernel_memory_words=4096, merging=True, weights=w)
    chans = np.concatenate([p.channels for p in plans])
    assert sorted(chans.tolist()) == list(range(300))
    sizes = kernel_lane_sizes(w, sched.mapping)
    for p in plans:
        assert p.groups <= 128 // sched.mapping.m
        for g in range(p.groups):
            members = p.channels[p.group_ptr[g]:p.group_ptr[g + 1]]
            assert np.all(sizes[members].sum(axis=0) <= 4096)
        per_pu = np.bincount(p.slot_pu, minlength=8)
        assert per_pu.max() <= 16


def test_traits_table():
    traits = {name: get_dataflow(name).traits for name in ("dense", "nullhop", "rsnn", "combined")}
    assert traits["nullhop"].skip_activations and not traits["nullhop"].skip_weights
    assert traits["rsnn"].skip_weights and not traits["rsnn"].compressed_activations
    dense = traits["dense"]
    assert not (dense.skip_activations or dense.skip_weights or dense.compressed_activations
                or dense.compressed_weights)


# ---------------------------------------------------------------- compare
def test_compare_runs_every_dataflow_on_the_same_trace():
    comp = compare_dataflows("facedet", check=False, profile="uniform-0.5-w0.3", pruning="balanced")
    rows = {r["dataflow"]: r for r in comp.rows()}
    assert set(rows) == {"dense", "nullhop", "rsnn", "combined", "nullhop-prefetch"}
    assert rows["dense"]["speedup"] == 1.0
    assert rows["combined"]["cycles"] <= rows["nullhop"]["cycles"]
    # Same trace: identical functional outputs, so identical input densities per layer.
    dens = {name: [l.input_density for l in r.layers] for name, r in comp.results.items()}
    assert len({tuple(v) for v in dens.values()}) == 1
    assert "combined" in comp.format_table()


@pytest.mark.parametrize("groups, stride", [(1, 1), (1, 2), (4, 1)])
def test_effectual_taps_are_exact_in_float32_and_float64(monkeypatch, groups, stride):
    # The effectual products per output channel are BLAS products in float32 when every sum stays
    # below 2**24 and in float64 otherwise: both are the count of a plain integer loop.
    from types import SimpleNamespace
    from dataflows import _stripe
    rng = np.random.default_rng(groups)
    h, w, c, cout, kh, kw, pad = 9, 7, 8, 12, 3, 3, 1
    act = np.where(rng.random((h, w, c)) < 0.6, 1, 0).astype(np.int16)
    weights = np.where(rng.random((cout, kh, kw, c // groups)) < 0.5, 3, 0).astype(np.int16)
    mp = SimpleNamespace(out_channels=cout, groups=groups)
    want = np.zeros(cout, dtype=np.int64)
    cg, og = c // groups, cout // groups
    for o in range(cout):
        g = o // og
        for oy in range(0, h + 2 * pad - kh + 1, stride):
            for ox in range(0, w + 2 * pad - kw + 1, stride):
                for ky in range(kh):
                    for kx in range(kw):
                        y, x = oy + ky - pad, ox + kx - pad
                        if 0 <= y < h and 0 <= x < w:
                            want[o] += int(np.count_nonzero(act[y, x, g * cg:(g + 1) * cg]
                                                            * weights[o, ky, kx]))
    got32 = _stripe._effectual_per_channel(act, weights, mp, kh, kw, pad, stride)
    monkeypatch.setattr(_stripe, "_F32_EXACT", 1)
    got64 = _stripe._effectual_per_channel(act, weights, mp, kh, kw, pad, stride)
    np.testing.assert_array_equal(got32, want)
    np.testing.assert_array_equal(got64, want)
