"""Every zoo network simulates end to end on the NullHop preset with the functional check on."""
import pytest

from simulator import simulate
from workloads import get_network, list_networks


@pytest.mark.slow
@pytest.mark.parametrize("name", list_networks())
def test_network_end_to_end_bit_exact(name):
    net = get_network(name)
    result = simulate(name, "nullhop", check=True)
    assert [l.name for l in result.layers] == [l.name for l in net.layers]
    # Every layer's output was compared bit for bit with the numpy reference.
    assert {l.functional_check for l in result.layers} == {"bit-exact"}
    acc = [l for l in result.layers if l.where == "accelerator"]
    assert acc, "no layer ran on the accelerator"
    # Every conv runs on the accelerator (FC runs on the host by default, as in the driver).
    assert {l.name for l in acc} == {l.name for l in net.layers if l.op == "conv"}
    assert result.totals["macs_dense"] == net.conv_macs
    for l in acc:
        assert l.cycles > 0
        assert 0 < l.mac_utilization <= 1.0
        assert l.macs_useful <= l.macs_dense
        for unit, st in l.units.items():
            assert sum(st.values()) == l.cycles, (l.name, unit)
