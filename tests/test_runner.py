"""End-to-end tests of simulator.runner (Simulator, simulate) on small networks.

Independent expectations: dense MACs of docs/sources.md §N10, the load / DMA formulas
of docs/architecture.md §4.1-§4.2, the ratio definitions of §5, and useful MACs
recomputed here from the observed input bitmap.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulator import ConfigError, MappingError, Simulator, simulate
from workloads import NetworkBuilder, WorkloadError, get_network

UNITS = ("dma_read", "decoder", "mac_array", "pre", "encoder", "dma_write")
STATS = ("busy", "stall_input", "stall_output", "stall_dram", "stall_weights", "idle")
N_MACS, CLOCK_MHZ = 128, 500.0

#: docs/sources.md §N10.2 / §N10.3: dense MACs per conv [D].
ROSHAMBO_MACS = {"layer1": 1_440_000, "layer2": 3_612_672, "layer3": 2_654_208, "layer4": 1_179_648,
                 "layer5": 65_536}
FACEDET_MACS = {"conv1": 409_600, "conv2": 451_584}


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, sched, act_in, out_written):
        self.calls.append((sched, act_in.copy(), out_written.copy()))


@pytest.fixture(scope="module")
def rosh():
    rec = _Recorder()
    result = Simulator("nullhop").run("roshambonet", seed=0, observer=rec)
    return result, rec


@pytest.fixture(scope="module")
def face():
    return Simulator("nullhop").run("facedet", seed=0)


@pytest.fixture(scope="module")
def rosh_03():
    return Simulator("nullhop").run("roshambonet", profile="uniform-0.3", seed=3)


def _acc(result):
    return [l for l in result.layers if l.where == "accelerator"]


# ---------------------------------------------------------------- determinism
def test_same_seed_same_json(rosh):
    again = Simulator("nullhop").run("roshambonet", seed=0)
    assert again.to_json() == rosh[0].to_json()


def test_different_seed_different_results(rosh):
    other = Simulator("nullhop").run("roshambonet", seed=1)
    assert other.seed == 1
    a = [(l.cycles, l.macs_useful) for l in _acc(rosh[0])]
    b = [(l.cycles, l.macs_useful) for l in _acc(other)]
    assert a != b


def test_simulate_one_call_equals_simulator_run(face):
    assert simulate("facedet", "nullhop", seed=0).to_json() == face.to_json()
    assert (simulate("facedet", overrides={"dma.latency_cycles": 7}, seed=2).to_json()
            == Simulator("nullhop", {"dma.latency_cycles": 7}).run("facedet", seed=2).to_json())


# --------------------------------------------------------------- functional
@pytest.mark.parametrize("which", ["rosh", "face"])
def test_every_layer_bit_exact(which, rosh, face):
    result = rosh[0] if which == "rosh" else face
    assert result.layers, "no layers"
    for l in result.layers:
        assert l.functional_check == "bit-exact", l.name


def test_check_off_reports_off():
    r = Simulator().run("facedet", check=False)
    assert {l.functional_check for l in r.layers} == {"off"}


def test_schedule_in_records(rosh, face):
    r = rosh[0]
    assert [l.where for l in r.layers] == ["accelerator", "fused"] * 5 + ["host"]
    assert [(l.m, l.passes) for l in _acc(r)] == [(8, 1), (4, 1), (2, 1), (1, 1), (1, 1)]
    assert [l.where for l in face.layers] == ["accelerator", "fused", "accelerator", "fused", "host", "host"]


# ------------------------------------------------------------------ totals
@pytest.mark.parametrize("which, macs, host_macs", [
    ("rosh", ROSHAMBO_MACS, 128 * 4),                     # fc 128 -> 4 on the ARM
    ("face", FACEDET_MACS, 784 * 128 + 128 * 2),          # ip1 + ip2 on the ARM
])
def test_totals_are_sums_of_layers(which, macs, host_macs, rosh, face):
    r = rosh[0] if which == "rosh" else face
    acc = _acc(r)
    t = r.totals
    assert {l.name: l.macs_dense for l in acc} == macs
    assert t["macs_dense"] == sum(macs.values())
    assert t["host_macs"] == host_macs
    assert t["host_layers"] == [l.name for l in r.layers if l.where == "host"]
    assert t["cycles"] == sum(l.cycles for l in acc) > 0
    assert t["macs_useful"] == sum(l.macs_useful for l in acc)
    for kind in ("activations", "weights", "biases", "config"):
        assert t["dram_read_bytes"][kind] == sum(l.dram_read_bytes[kind] for l in acc)
    assert t["dram_write_bytes"]["activations"] == sum(l.dram_write_bytes["activations"] for l in acc)
    assert t["dram_bytes"] == sum(l.dram_bytes for l in acc)
    for u in UNITS:
        for s in STATS:
            assert t["units"][u][s] == sum(l.units[u][s] for l in acc)
    cyc = t["cycles"]
    assert t["latency_ms"] == pytest.approx(cyc / CLOCK_MHZ / 1e3, rel=1e-12)
    assert t["efficiency"] == pytest.approx(t["macs_dense"] / (N_MACS * cyc), rel=1e-12)
    assert t["mac_utilization"] == pytest.approx(t["macs_useful"] / (N_MACS * cyc), rel=1e-12)
    assert t["effective_gops"] == pytest.approx(2 * t["macs_dense"] / (cyc / (CLOCK_MHZ * 1e6)) / 1e9, rel=1e-9)


@pytest.mark.parametrize("which", ["rosh", "face"])
def test_layer_ratios(which, rosh, face):
    r = rosh[0] if which == "rosh" else face
    for l in _acc(r):
        assert l.cycles > 0
        assert l.latency_us == pytest.approx(l.cycles / CLOCK_MHZ, rel=1e-12)
        assert l.efficiency == pytest.approx(l.macs_dense / (N_MACS * l.cycles), rel=1e-12)
        assert l.mac_utilization == pytest.approx(l.macs_useful / (N_MACS * l.cycles), rel=1e-12)
        assert 0 < l.mac_utilization <= 1
        assert l.effective_gops == pytest.approx(2 * l.macs_dense / (l.cycles / (CLOCK_MHZ * 1e6)) / 1e9,
                                                 rel=1e-9)
        # physical bounds: useful <= performed <= 128 per MAC-array busy cycle; useful <= dense
        assert l.macs_useful <= l.mac_ops <= N_MACS * l.units["mac_array"]["busy"]
        assert l.macs_useful <= l.macs_dense
    for l in r.layers:
        if l.where != "accelerator":
            assert l.cycles == 0 and l.units == {}


@pytest.mark.parametrize("which", ["rosh", "face"])
def test_unit_accounting_identity(which, rosh, face):
    r = rosh[0] if which == "rosh" else face
    for l in _acc(r):
        assert set(l.units) == set(UNITS)
        for u in UNITS:
            st = l.units[u]
            assert set(st) == set(STATS)
            assert all(v >= 0 for v in st.values()), (l.name, u, st)
            assert sum(st.values()) == l.cycles, (l.name, u, st)
        assert l.units["dma_read"]["stall_weights"] == 0
        assert l.units["mac_array"]["busy"] > 0


def test_uncompressed_first_layer_processes_every_pixel(rosh, face):
    # The first layer's input is streamed raw (§4.4): every pixel costs its taps,
    # so performed MACs equal the dense count of docs/sources.md §N10.
    assert rosh[0].layer("layer1").mac_ops == ROSHAMBO_MACS["layer1"]
    assert face.layer("conv1").mac_ops == FACEDET_MACS["conv1"]
    # Compressed inputs: only non-zero pixels are processed, all of them useful.
    for l in _acc(rosh[0])[1:]:
        assert l.mac_ops == l.macs_useful


# ------------------------------------------------------------------ observer
def test_observer_called_once_per_accelerator_layer(rosh):
    result, rec = rosh
    names = [s.layer.name for s, _, _ in rec.calls]
    assert names == [l.name for l in _acc(result)]
    expect_out = {"layer1": (30, 30, 16), "layer2": (14, 14, 32), "layer3": (6, 6, 64), "layer4": (2, 2, 128),
                  "layer5": (1, 1, 128)}  # pooled (fused) outputs as written
    for s, act_in, written in rec.calls:
        assert act_in.shape == s.layer.in_shape
        assert act_in.dtype == np.int16 and written.dtype == np.int16
        assert written.shape == expect_out[s.layer.name]
        lr = result.layer(s.layer.name)
        assert lr.input_density == pytest.approx(np.count_nonzero(act_in) / act_in.size)


def test_useful_macs_recomputed_from_observed_input(rosh):
    # useful MACs = C_out x sum over output positions of non-zero input pixels in the k x k window
    result, rec = rosh
    for s, act_in, _ in rec.calls:
        layer = s.layer
        kh, kw = layer.kernel
        nz = (act_in != 0).astype(np.int64)
        win = np.lib.stride_tricks.sliding_window_view(nz, (kh, kw), axis=(0, 1))
        expect = int(win.sum()) * layer.out_channels
        assert result.layer(layer.name).macs_useful == expect, layer.name


def _useful_macs(act_in, layer):
    """Useful MACs: every non-zero input pixel x every (kept output, tap) it feeds x C_out/groups."""
    kh, kw = layer.kernel
    p, s = layer.padding, layer.stride
    nz = np.pad((act_in != 0).astype(np.int64), ((p, p), (p, p), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(nz, (kh, kw), axis=(0, 1))[::s, ::s]
    return int(win.sum()) * (layer.out_channels // layer.groups)


def test_useful_macs_with_padding_stride_and_groups():
    # Stride 2 is computed at stride 1 and decimated on the host: only products that
    # feed kept outputs are useful (docs/architecture.md §1, §4.4).
    b = NetworkBuilder("shapes", (16, 16, 3))
    b.conv("first", 16, 3, padding=1)
    b.conv("strided", 32, 3, stride=2, padding=1)
    b.conv("grouped", 32, 3, padding=1, groups=4)
    b.conv("odd", 16, 5, padding=2, activation=None)
    rec = _Recorder()
    r = Simulator().run(b.build(), seed=7, observer=rec)
    assert [s.layer.name for s, _, _ in rec.calls] == ["first", "strided", "grouped", "odd"]
    for s, act_in, _ in rec.calls:
        l = r.layer(s.layer.name)
        assert l.functional_check == "bit-exact"
        assert l.macs_useful == _useful_macs(act_in, s.layer), l.name
        assert l.macs_useful <= l.macs_dense, l.name
        assert l.macs_useful <= l.mac_ops <= N_MACS * l.units["mac_array"]["busy"], l.name
        assert 0 < l.mac_utilization <= 1
        for u in UNITS:
            assert sum(l.units[u].values()) == l.cycles
    # The first layer reads the (nearly dense) photo: useful MACs approach the products that do not
    # fall on padding, C_out x C_in x (sum of valid taps per row) x (per column) = 16 x 3 x 46 x 46,
    # with 46 = 16 * 3 - 2 (one tap lost at each border).
    first = r.layer("first")
    assert 0.99 * 16 * 3 * 46 * 46 <= first.macs_useful <= 16 * 3 * 46 * 46 < first.macs_dense


# -------------------------------------------------------------- DRAM formulas
def _load_cycles(load_beats, latency=100, bw=8, beat_bytes=8):
    return latency + math.ceil(load_beats * beat_bytes / bw)


def test_weight_bytes_single_pass_layer(rosh):
    # roshambonet layer2: 3x3, Cin 16 -> Cout 32; m = 4, P2 = 16 > 4: contiguous = (16/4)*9 = 36
    # weights: count*m * ceil(36/2) = 32*4*18 = 2304 beats; biases ceil(128/2) = 64; config 16 (§4.1)
    l = rosh[0].layer("layer2")
    assert l.dram_read_bytes["weights"] == 2304 * 8
    assert l.dram_read_bytes["biases"] == 64 * 8
    assert l.dram_read_bytes["config"] == 16 * 8
    # Nothing but the load runs during it: other units wait for weights 100 + 2384 cycles (§4.1, §4.2).
    load = _load_cycles(16 + 64 + 2304)
    assert load == 2484
    for u in UNITS[1:]:
        assert l.units[u]["stall_weights"] == load
    assert l.units["dma_read"]["busy"] >= load
    # layer1: 5x5, Cin 1, m 8, P2 = 1 <= 8: contiguous = 25 -> 13 beats x 16*8 MACs
    assert rosh[0].layer("layer1").dram_read_bytes["weights"] == 16 * 8 * 13 * 8


def test_multi_pass_layer_bytes_and_residency():
    # 8x8x3 input, 3x3 conv pad 1 to 200 channels, no ReLU (uncompressed output).
    # m = 1 (128 // (200 // 2) = 1), 128 per pass, ceil(200/128) = 2 passes (128 + 72 channels).
    b = NetworkBuilder("multipass", (8, 8, 3))
    b.conv("wide", 200, 3, padding=1, activation=None)
    r = Simulator().run(b.build())
    l = r.layer("wide")
    assert (l.m, l.passes) == (1, 2)
    assert l.functional_check == "bit-exact"
    # contiguous = Cin*k^2 = 27 -> 14 beats per MAC; 128 MACs in pass 0, 72 in pass 1.
    w0, w1 = 128 * 14, 72 * 14
    assert l.dram_read_bytes["weights"] == (w0 + w1) * 8
    assert l.dram_read_bytes["biases"] == 2 * 64 * 8
    assert l.dram_read_bytes["config"] == 2 * 16 * 8
    for u in UNITS[1:]:
        assert l.units[u]["stall_weights"] == _load_cycles(16 + 64 + w0) + _load_cycles(16 + 64 + w1)
    # First-layer input is raw: 8 rows x ceil(8*3/2) = 12 beats, read once (resident in 512 KiB).
    assert l.input_resident is True
    assert l.dram_read_bytes["activations"] == 8 * 12 * 8
    # Uncompressed output (no ReLU): 8 rows x ceil(8*128/2) beats + 8 rows x ceil(8*72/2) beats.
    assert l.dram_write_bytes["activations"] == (8 * 512 + 8 * 288) * 8
    for u in UNITS:
        assert sum(l.units[u].values()) == l.cycles


def test_streamed_input_is_read_again_every_pass():
    # 32x32x3 raw input = 3072 values = 6 KiB > 1 KiB of input memory: not resident, so the
    # image is streamed for each of the 2 passes (§4.2): 32 rows x ceil(32*3/2) = 48 beats per pass.
    # The largest window (4 rows x 96 values x 2 bytes = 768 bytes) fits in 1 KiB.
    b = NetworkBuilder("stream", (32, 32, 3))
    b.conv("wide", 200, 3, padding=1)
    net = b.build()
    small = Simulator("nullhop", {"memory.input_memory_kib": 1}).run(net, check=False)
    big = Simulator("nullhop").run(net, check=False)
    ls, lb = small.layer("wide"), big.layer("wide")
    assert (ls.passes, ls.input_resident, lb.input_resident) == (2, False, True)
    assert ls.dram_read_bytes["activations"] == 2 * 32 * 48 * 8
    assert lb.dram_read_bytes["activations"] == 1 * 32 * 48 * 8
    assert ls.dram_read_bytes["weights"] == lb.dram_read_bytes["weights"]
    for u in UNITS:
        assert sum(ls.units[u].values()) == ls.cycles


def test_window_larger_than_input_memory_is_rejected():
    # 64x64x3 raw rows: a 4-row window is 4 x 192 values x 2 bytes = 1536 bytes > 1 KiB.
    b = NetworkBuilder("toowide", (64, 64, 3))
    b.conv("big_rows", 16, 3, padding=1)
    with pytest.raises(MappingError) as info:
        Simulator("nullhop", {"memory.input_memory_kib": 1}).run(b.build(), check=False)
    assert "big_rows" in str(info.value) and "memory.input_memory_kib" in str(info.value)


def test_fc_on_accelerator_runs():
    rec = _Recorder()
    r = Simulator("nullhop", {"array.run_fc_on_accelerator": True}).run("facedet", observer=rec)
    assert [s.layer.name for s, _, _ in rec.calls] == ["conv1", "conv2", "ip1", "ip2"]
    assert rec.calls[2][1].shape == (1, 1, 784)
    for name in ("ip1", "ip2"):
        l = r.layer(name)
        assert l.where == "accelerator" and l.cycles > 0 and l.functional_check == "bit-exact"
        for u in UNITS:
            assert sum(l.units[u].values()) == l.cycles
    assert r.totals["host_layers"] == []
    assert r.totals["macs_dense"] == sum(FACEDET_MACS.values()) + 784 * 128 + 128 * 2


# ---------------------------------------------------------- traces & densities
def test_propagated_output_density_close_to_profile(rosh_03):
    assert rosh_03.profile == "uniform-0.3"
    checked = 0
    for l in _acc(rosh_03):
        ho, wo, _ = l.out_shape
        if ho * wo >= 16:
            assert abs(l.output_density - 0.3) <= 0.05, (l.name, l.output_density)
            checked += 1
    assert checked >= 4


def test_propagated_default_profile_density(rosh):
    # roshambonet has no published profile: uniform-0.5 (docs/traces.md §1)
    assert rosh[0].profile == "uniform-0.5"
    for l in _acc(rosh[0])[:4]:
        assert abs(l.output_density - 0.5) <= 0.05, (l.name, l.output_density)


def test_synthetic_trace_mode():
    r = Simulator().run("roshambonet", profile="uniform-0.3", trace="synthetic", seed=5)
    assert r.trace == "synthetic"
    acc = _acc(r)
    assert all(l.cycles > 0 and l.functional_check == "bit-exact" for l in acc)
    # layer1 reads the photo (dense); the others read synthetic maps at exactly round(0.3 * N) non-zeros
    assert acc[0].input_density > 0.9
    for l in acc[1:]:
        n = math.prod(l.in_shape)
        assert l.input_density == pytest.approx(round(0.3 * n) / n, abs=1.0 / n), l.name
    again = Simulator().run("roshambonet", profile="uniform-0.3", trace="synthetic", seed=5)
    assert again.to_json() == r.to_json()


# ---------------------------------------------------------------- overrides
def test_lower_dma_bandwidth_increases_cycles(face):
    slow = Simulator("nullhop", {"dma.bandwidth_bytes_per_cycle": 2}).run("facedet", seed=0)
    assert slow.config["dma"]["bandwidth_bytes_per_cycle"] == 2
    for a, b in zip(_acc(face), _acc(slow)):
        assert b.cycles > a.cycles, a.name
    assert slow.totals["cycles"] > face.totals["cycles"]
    # same data, same work: only time changes
    assert [l.macs_useful for l in _acc(slow)] == [l.macs_useful for l in _acc(face)]
    assert slow.totals["dram_bytes"] == face.totals["dram_bytes"]


def test_string_override_like_cli(face):
    r = Simulator("nullhop", {"dma.latency_cycles": "0"}).run("facedet", seed=0)
    assert r.config["dma"]["latency_cycles"] == 0
    assert r.totals["cycles"] < face.totals["cycles"]


# --------------------------------------------------------------- bad inputs
def test_unknown_network():
    with pytest.raises(WorkloadError, match="nosuchnet"):
        Simulator().run("nosuchnet")


def test_unknown_profile():
    with pytest.raises(WorkloadError, match="nosuchprofile"):
        Simulator().run("facedet", profile="nosuchprofile")


def test_bad_profile_density():
    with pytest.raises(WorkloadError, match="1.5"):
        Simulator().run("facedet", profile="uniform-1.5")


def test_bad_trace_mode():
    with pytest.raises(WorkloadError, match="bogus"):
        Simulator().run("facedet", trace="bogus")


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_bad_seed(seed):
    with pytest.raises(WorkloadError) as info:
        Simulator().run("facedet", seed=seed)
    assert repr(seed) in str(info.value)


def test_unknown_preset_and_override_key():
    with pytest.raises(ConfigError, match="nosuchaccel"):
        Simulator("nosuchaccel")
    with pytest.raises(ConfigError, match="dma.nosuch"):
        Simulator("nullhop", {"dma.nosuch": 1})
    with pytest.raises(ConfigError, match="dma.bandwidth_bytes_per_cycle"):
        Simulator("nullhop", {"dma.bandwidth_bytes_per_cycle": 0})


def test_result_is_json_serialisable(face):
    d = json.loads(face.to_json())
    assert d["network"] == "facedet" and d["seed"] == 0


def test_timing_on_other_threads_changes_no_number(monkeypatch):
    # With two cores the layers' timings run side by side after the functional work (or, past a
    # bound on the tensors they hold, at once beside the next layers); on one core they run in
    # line. Every number of the result is the same.
    import numba

    import simulator.runner._network_run as nr
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: the timing always runs in line")
    runs = {}
    old = numba.get_num_threads()
    for threads, bound in ((1, nr._DEFERRED_MAX_BYTES), (numba.config.NUMBA_NUM_THREADS, nr._DEFERRED_MAX_BYTES),
                           (numba.config.NUMBA_NUM_THREADS, 0)):
        numba.set_num_threads(threads)
        monkeypatch.setattr(nr, "_DEFERRED_MAX_BYTES", bound)
        try:
            runs[threads, bound] = simulate("resnet18", "nullhop").to_json()
        finally:
            numba.set_num_threads(old)
    assert len(runs) == 3 and len(set(runs.values())) == 1


def test_a_timing_error_is_raised_for_its_layer(monkeypatch):
    # A layer's timing may run on another thread after the layers: its error still reaches the caller, and the
    # earliest layer's comes first even when a later layer fails as well.
    import simulator.runner._network_run as nr

    real = nr.time_layer
    timed = []

    def failing(s, *args, **kwargs):
        timed.append(s.layer.name)
        if s.layer.name == "layer2":
            raise MappingError(f"timing of {s.layer.name}")
        return real(s, *args, **kwargs)
    monkeypatch.setattr(nr, "time_layer", failing)
    with pytest.raises(MappingError, match="^timing of layer2$"):
        simulate("roshambonet", "nullhop")
    assert "layer2" in timed

    def mismatch(self, layer, got, want):
        if layer.name == "layer4":
            raise WorkloadError("functional layer4")
    monkeypatch.setattr(nr._NetworkRun, "_mismatch", mismatch)
    with pytest.raises(MappingError, match="^timing of layer2$"):
        simulate("roshambonet", "nullhop")


def test_seed_cache_counts_a_density_once_per_cached_array(monkeypatch, tmp_path):
    # The weight prefetch thread counts a layer's weight density when it reads the weights ahead;
    # the layer loop then reads the count instead of counting again. The count belongs to the
    # cached array: an evicted key, or another array under the key, is counted anew.
    from simulator.runner import _network_run as nr
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(nr, "count_nonzero", lambda a: calls.append(a.size) or int(np.count_nonzero(a)))
    cache = nr._SeedCache(max_bytes=4000)
    a = cache.get(("a",), lambda: np.arange(-500, 1500, dtype=np.int16) // 7, (2000,))
    want = np.count_nonzero(a) / a.size
    assert cache.density(("a",), a) == cache.density(("a",), a) == want
    assert calls == [2000]
    assert cache.density(("a",), a.copy()) == want and calls == [2000, 2000]    # not the cached array
    cache.get(("b",), lambda: np.ones(1500, dtype=np.int16), (1500,))          # evicts ("a",)
    assert ("a",) not in cache.derived
    assert cache.density(("a",), a) == want and calls == [2000, 2000, 2000]


def test_counts_and_pair_tables_are_kept_on_disk(monkeypatch, tmp_path):
    # What derives from a cached weight tensor is kept in the tensor cache beside it: a fresh
    # process (here a fresh seed cache) reads the count and the pair table instead of making them,
    # and gets the same values; with the cache off they are made.
    from simulator import numerics
    from simulator.runner import _network_run as nr
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", str(tmp_path))
    counted, built = [], []
    monkeypatch.setattr(nr, "count_nonzero", lambda a: counted.append(1) or int(np.count_nonzero(a)))
    real = numerics.pair_table
    monkeypatch.setattr(numerics, "pair_table", lambda w: built.append(1) or real(w))
    w0 = np.random.default_rng(2).integers(-9, 9, (6, 3, 3, 5)).astype(np.int16)
    key = ("weights", "k")
    for fresh in range(3):
        cache = nr._SeedCache(1 << 20)
        w = cache.get(key, lambda: w0.copy(), w0.shape)
        assert cache.density(key, w) == np.count_nonzero(w0) / w0.size
        p = cache.pairs(key, w)
        want = real(w0)
        np.testing.assert_array_equal(p.table, want.table)
        assert p.l1_max == want.l1_max and p.shape == w0.shape
        assert (len(counted), len(built)) == (1, 1)          # made by the first seed cache only
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", "off")
    cache = nr._SeedCache(1 << 20)
    w = cache.get(key, lambda: w0.copy(), w0.shape)
    cache.density(key, w), cache.pairs(key, w)
    assert (len(counted), len(built)) == (2, 2)


def test_runs_keep_the_channel_pair_weights_of_cached_weights(monkeypatch, tmp_path):
    # The accelerator kernel's layout of a layer's weights is made once per cached weight tensor
    # (by the prefetch thread as it draws them) and passed to the kernel; the results are those
    # of a run that makes every layout afresh, inside the kernel.
    from simulator import numerics
    from simulator.runner import _network_run as nr
    made, passed = [], []
    real_table, real_acc = numerics.pair_table, numerics.conv2d_accumulators
    monkeypatch.setattr(numerics, "pair_table", lambda w: made.append(w.shape) or real_table(w))
    monkeypatch.setattr(numerics, "conv2d_accumulators",
                        lambda *a, **k: passed.append(a[5] is not None) or real_acc(*a, **k))
    monkeypatch.setattr(nr, "_SYNTHETIC", nr._SeedCache(64 << 20))
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", str(tmp_path))
    first = simulate("roshambonet", "nullhop", seed=3)
    convs = [ly for ly in get_network("roshambonet").layers if ly.op == "conv"]
    assert sorted(made) == sorted(ly.weight_shape for ly in convs) and all(passed)
    again = simulate("roshambonet", "nullhop", seed=3)
    assert len(made) == len(convs)                       # the second run made none
    monkeypatch.setattr(nr._NetworkRun, "_pairs_kept", lambda self, layer: False)
    fresh = simulate("roshambonet", "nullhop", seed=3)
    assert not all(passed[-len(convs):])
    assert first.to_dict() == again.to_dict() == fresh.to_dict()


def test_a_map_density_is_counted_once_per_run(monkeypatch):
    # A layer's output is the next layer's input (and its fused pool's): its density is counted
    # once, and every record still holds the density of its own maps.
    from simulator.runner import _network_run as nr
    seen = []
    real = nr._density
    monkeypatch.setattr(nr, "_density", lambda a: seen.append(a) or real(a))
    res = simulate("roshambonet", "nullhop", seed=4)
    assert len({id(a) for a in seen}) == len(seen)          # the arrays are kept alive in `seen`
    monkeypatch.setattr(nr, "_DENSITIES_KEPT", 0)
    again = simulate("roshambonet", "nullhop", seed=4)
    assert res.to_dict() == again.to_dict()
