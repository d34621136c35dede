"""Timing-only mode gives exactly the cycle counts of the full (functional + timing) mode."""
import pytest

from simulator import WorkloadError, simulate


@pytest.mark.parametrize("network, accel", [("roshambonet", "nullhop"), ("facedet", "combined"),
                                            ("resnet18", "nullhop"), ("mobilenet_v2", "rsnn")])
def test_timing_only_matches_full_mode(network, accel):
    full = simulate(network, accel, trace="synthetic", check=True, seed=3)
    fast = simulate(network, accel, trace="synthetic", timing_only=True, seed=3)
    assert [l.name for l in fast.layers] == [l.name for l in full.layers]
    for a, b in zip(full.layers, fast.layers):
        assert (a.cycles, a.macs_useful, a.mac_ops, a.units, a.dram_read_bytes, a.dram_write_bytes, a.actions) == \
               (b.cycles, b.macs_useful, b.mac_ops, b.units, b.dram_read_bytes, b.dram_write_bytes, b.actions), a.name
    assert full.totals["cycles"] == fast.totals["cycles"]
    assert {l.functional_check for l in full.layers} == {"bit-exact"}
    assert {l.functional_check for l in fast.layers if l.where != "fused"} == {"timing-only"}


def test_timing_only_needs_synthetic_trace():
    with pytest.raises(WorkloadError, match="timing_only needs trace='synthetic'"):
        simulate("facedet", timing_only=True)
