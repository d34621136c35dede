"""Tests of workloads._scalesim (SCALE-Sim topology CSVs).

Independent expectations: SCALE-Sim's row format and its per-row MAC formula
``ofmap_h * ofmap_w * filter_h * filter_w * channels * num_filter`` (its
``topology_utils.py``), rows copied from its shipped ``alexnet.csv``, and the
zoo's VGG16 MAC total.
"""
from __future__ import annotations

import math
import re

import pytest

from simulator import simulate
from workloads import (WorkloadError, from_scalesim_csv, get_network, load_user_network, read_scalesim_csv,
                       scalesim_networks)

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"

#: scale-sim-v2 topologies/conv_nets/alexnet.csv, verbatim.
ALEXNET = (
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    "Conv1     ,224         ,224        ,11           ,11          ,3       ,96        ,4      ,\n"
    "Conv2     ,27         ,27        ,5            ,5           ,96      ,256       ,1      ,\n"
    "Conv3     ,13          ,13         ,3            ,3           ,256     ,384       ,1      ,\n"
    "Conv4     ,13          ,13         ,3            ,3           ,384     ,384       ,1      ,\n"
    "Conv5     ,13          ,13         ,3            ,3           ,384     ,256       ,1      ,\n"
)

#: VGG16 with padded IFMAPs (226, 114, 58, 30, 16) and fc6..fc8 as convs, as in docs/sources.md §P1.2.
VGG16 = HEADER + "".join(
    f"{n},{s},{s},{k},{k},{c},{f},1,\n" for n, s, k, c, f in [
        ("conv1_1", 226, 3, 3, 64), ("conv1_2", 226, 3, 64, 64),
        ("conv2_1", 114, 3, 64, 128), ("conv2_2", 114, 3, 128, 128),
        ("conv3_1", 58, 3, 128, 256), ("conv3_2", 58, 3, 256, 256), ("conv3_3", 58, 3, 256, 256),
        ("conv4_1", 30, 3, 256, 512), ("conv4_2", 30, 3, 512, 512), ("conv4_3", 30, 3, 512, 512),
        ("conv5_1", 16, 3, 512, 512), ("conv5_2", 16, 3, 512, 512), ("conv5_3", 16, 3, 512, 512),
        ("fc6", 7, 7, 512, 4096), ("fc7", 1, 1, 4096, 4096), ("fc8", 1, 1, 4096, 1000)])


def _csv(tmp_path, text, name="topo.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _scalesim_macs(h, w, fh, fw, c, f, s):
    """SCALE-Sim's own formula (topology_utils.topo_calc_hyperparams)."""
    oh, ow = math.ceil((h - fh + s) / s), math.ceil((w - fw + s) / s)
    return oh * ow * fh * fw * c * f


def test_small_chain(tmp_path):
    path = _csv(tmp_path, HEADER + "\n"
                "\tc1, 18, 18, 3, 3, 3, 8, 1,\n"          # tab, spaces, trailing comma
                "c2, 18, 18, 3, 3, 8, 8, 1\n"             # padding 1, no trailing comma
                "c3_DP, 8, 8, 3, 3, 8, 1, 1,#dw\n"        # 2x2 pool then padding 1; depthwise; comment
                "c4, 6, 6, 1, 1, 8, 16, 1, 1,\n"          # direct; stride width column
                ",,,,,,,,\n"
                "head, 1, 1, 1, 1, 16, 4, 1,\n")           # global average pool
    net = from_scalesim_csv(path)
    got = [(l.name, l.op, l.inputs, l.out_shape, l.padding, l.groups, l.activation) for l in net.layers]
    assert got == [
        ("c1", "conv", ("input",), (16, 16, 8), 0, 1, "relu"),
        ("c2", "conv", ("c1",), (16, 16, 8), 1, 1, "relu"),
        ("c2_pool", "maxpool", ("c2",), (8, 8, 8), 0, 1, None),
        ("c3_DP", "conv", ("c2_pool",), (6, 6, 8), 0, 8, "relu"),
        ("c4", "conv", ("c3_DP",), (6, 6, 16), 0, 1, "relu"),
        ("c4_gap", "avgpool", ("c4",), (1, 1, 16), 0, 1, None),
        ("head", "conv", ("c4_gap",), (1, 1, 4), 0, 1, "relu"),
    ]
    assert net.name == "topo" and net.input_shape == (18, 18, 3)
    result = simulate(net, profile="uniform-0.5")
    assert [r.functional_check for r in result.layers] == ["bit-exact"] * len(net.layers)
    assert {r.name: r.where for r in result.layers}["c2_pool"] == "fused"
    assert from_scalesim_csv(path, name="mine").name == "mine"


def test_rows(tmp_path):
    rows = read_scalesim_csv(_csv(tmp_path, ALEXNET))
    assert [(r.line, r.name, r.ifmap, r.filter_h, r.num_filter, r.stride) for r in rows][:2] == [
        (2, "Conv1", (224, 224, 3), 11, 96, 4), (3, "Conv2", (27, 27, 96), 5, 256, 1)]
    assert not rows[0].depthwise


def test_alexnet_chains_with_inferred_pools_and_padding(tmp_path):
    net = from_scalesim_csv(_csv(tmp_path, ALEXNET, "alexnet.csv"))
    got = [(l.name, l.op, l.in_shape, l.out_shape, l.padding) for l in net.layers]
    assert got == [
        ("Conv1", "conv", (224, 224, 3), (54, 54, 96), 0),
        ("Conv1_pool", "maxpool", (54, 54, 96), (27, 27, 96), 0),
        ("Conv2", "conv", (27, 27, 96), (23, 23, 256), 0),
        ("Conv2_pool", "maxpool", (23, 23, 256), (11, 11, 256), 0),
        ("Conv3", "conv", (11, 11, 256), (11, 11, 384), 1),
        ("Conv4", "conv", (11, 11, 384), (11, 11, 384), 1),
        ("Conv5", "conv", (11, 11, 384), (11, 11, 256), 1),
    ]
    rows = read_scalesim_csv(tmp_path / "alexnet.csv")
    for row in rows:
        layer = net.layer(row.name)
        want = _scalesim_macs(*row.ifmap[:2], row.filter_h, row.filter_w, row.channels, row.num_filter, row.stride)
        if (row.ifmap_h - row.filter_h) % row.stride == 0:
            assert layer.macs == want, row.name          # same MACs as SCALE-Sim
        else:                                            # documented: floor here, ceil in SCALE-Sim
            assert row.name == "Conv1" and layer.out_shape[0] == 54 and want == 55 * 55 * 11 * 11 * 3 * 96


def test_vgg16_padded_ifmaps_give_the_zoo_macs(tmp_path):
    net = from_scalesim_csv(_csv(tmp_path, VGG16, "vgg16.csv"))
    assert net.macs == get_network("vgg16").macs
    assert net.layer("conv2_1").inputs == ("conv1_2_pool",) and net.layer("conv2_1").padding == 1
    assert net.layer("fc6").in_shape == (7, 7, 512) and net.layer("fc6").out_shape == (1, 1, 4096)


def test_independent_rows(tmp_path):
    # ResNet-50's first bottleneck in scale-sim-v2 Resnet50.csv: the shortcut CB2s reads the block input.
    text = HEADER + ("CB2a_1,56,56,1,1,64,64,1,\nCB2a_2,56,56,3,3,64,64,1,\nCB2a_3,56,56,1,1,64,256,1,\n"
                     "CB2s,56,56,1,1,64,256,1,\n")
    path = _csv(tmp_path, text, "res.csv")
    # CB2a_3 (1x1) on 56x56 after CB2a_2's 54x54 would need padding 1 > (1 - 1) / 2: not a chain.
    msg = (f"{path}: row 4 ('CB2a_3'): IFMAP 56x56x64 does not follow from the previous row's output 54x54x64 "
           "(directly, with symmetric padding, after a 2x2 max pool, or after a global average pool); to "
           "simulate the rows as independent layers use workloads.scalesim_networks()")
    with pytest.raises(WorkloadError, match=f"^{re.escape(msg)}$"):
        from_scalesim_csv(path)
    nets = scalesim_networks(path)
    assert [(n.name, n.input_shape, len(n.layers)) for n in nets] == [
        ("res.CB2a_1", (56, 56, 64), 1), ("res.CB2a_2", (56, 56, 64), 1), ("res.CB2a_3", (56, 56, 64), 1),
        ("res.CB2s", (56, 56, 64), 1)]
    assert nets[3].layers[0].out_shape == (56, 56, 256)


def test_shipped_quirks_are_tolerated(tmp_path):
    # Resnet50.csv's annotation columns and all-empty row; duplicate names get a suffix.
    text = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
            "Strides,,,Eh,Ew,e2\n,,,,,,,,,,,,\nConv1,8,8,3,3,3,4,2,,,110,110,12100\nConv1,3,3,1,1,4,4,1,,,,,\n")
    rows = read_scalesim_csv(_csv(tmp_path, text))
    assert [(r.name, r.stride) for r in rows] == [("Conv1", 2), ("Conv1_2", 1)]


def test_depthwise_row(tmp_path):
    net = scalesim_networks(_csv(tmp_path, HEADER + "dw_DP,10,10,3,3,32,2,1,\n"))[0]
    layer = net.layers[0]
    assert layer.groups == 32 and layer.out_shape == (8, 8, 64) and layer.macs == 8 * 8 * 3 * 3 * 32 * 2


@pytest.mark.parametrize("row, msg", [
    ("c1, 8, 8, 3, 3, 3\n", "row 2 ('c1'): expected 8 columns (Layer name, IFMAP Height, IFMAP Width, Filter "
                            "Height, Filter Width, Channels, Num Filter, Strides), got 6"),
    ("c1, 8, x8, 3, 3, 3, 4, 1,\n", "row 2 ('c1'), column 3 ('IFMAP Width'): 'x8' is not a positive integer"),
    ("c1, 8, 8, 3, 3, 3, 0, 1,\n", "row 2 ('c1'), column 7 ('Num Filter'): '0' is not a positive integer"),
    ("c1, 8, 8, 9, 3, 3, 4, 1,\n", "row 2 ('c1'), column 4 ('Filter Height'): filter height 9 exceeds the IFMAP "
                                   "height 8"),
    ("c1, 8, 8, 3, 3, 3, 4, 1, 2,\n", "row 2 ('c1'), column 9 ('Stride width'): stride width 2 differs from the "
                                      "stride height 1; sparsesim has one stride"),
    (", 8, 8, 3, 3, 3, 4, 1,\n", "row 2, column 1 ('Layer name'): the layer name is empty"),
])
def test_row_errors(tmp_path, row, msg):
    path = _csv(tmp_path, HEADER + row)
    with pytest.raises(WorkloadError, match=f"^{re.escape(f'{path}: {msg}')}$"):
        read_scalesim_csv(path)


def test_file_errors(tmp_path):
    path = _csv(tmp_path, "c1, 8, 8, 3, 3, 3, 4, 1,\n")
    with pytest.raises(WorkloadError, match=re.escape(f"{path}: row 1: looks like a layer row; SCALE-Sim treats "
                                                      "the first line as the header")):
        read_scalesim_csv(path)
    path = _csv(tmp_path, HEADER + "\n")
    with pytest.raises(WorkloadError, match=f"^{re.escape(str(path))}: no layer rows after the header$"):
        from_scalesim_csv(path)
    with pytest.raises(WorkloadError, match=r"missing\.csv: file not found$"):
        load_user_network(tmp_path / "missing.csv")
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(WorkloadError, match=r"bin\.csv: not a readable text file"):
        read_scalesim_csv(bad)
