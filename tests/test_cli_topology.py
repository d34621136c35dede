"""SCALE-Sim topologies whose rows do not chain run as independent layers from the CLI."""
import json

import pytest

from dataflows import get_preset, map_conv
from simulator.cli import main
from workloads import MappingError, NetworkBuilder

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def test_unchained_rows_run_independently(tmp_path, capsys):
    topo = tmp_path / "res.csv"
    topo.write_text(HEADER + "CB2a_1,14,14,1,1,16,16,1,\nCB2s,28,28,1,1,16,32,1,\n")
    out = tmp_path / "r.json"
    assert main(["run", str(topo), "--no-check", "--quiet", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["network"] == "res"
    assert [l["name"] for l in d["layers"]] == ["CB2a_1", "CB2s"]
    assert [tuple(l["in_shape"]) for l in d["layers"]] == [(14, 14, 16), (28, 28, 16)]
    assert all(l["cycles"] > 0 for l in d["layers"])
    assert d["totals"]["cycles"] == sum(l["cycles"] for l in d["layers"])


def test_padding_as_large_as_the_kernel_is_rejected():
    b = NetworkBuilder("p", (8, 8, 4))
    b.conv("c", 4, 1, padding=1)
    layer = b.build().layers[0]
    geom = get_preset("nullhop")
    with pytest.raises(MappingError, match=r"^layer 'c': padding 1 must be smaller than the 1x1 kernel on NullHop"):
        map_conv(layer, geom)
