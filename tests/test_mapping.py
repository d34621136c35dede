"""Tests for dataflows._nullhop: the driver's MAC-to-channel mapping and the schedule.

Expected values are independent of the code under test: the VGG16 table of
docs/sources.md §N3.4 [D], the RoshamboNet / face-detector columns of §N10
[D], the driver's rule of §N3.3 [C] worked by hand, and the fixes and
fusion rule of docs/architecture.md §2.
"""
from __future__ import annotations

import pytest

from dataflows import get_preset, map_conv, schedule_network, with_overrides
from simulator import Simulator
from workloads import MappingError, NetworkBuilder, get_network

#: The NullHop defaults (docs/sources.md §N3.2 [C], §N8 [P]).
GEOM = get_preset("nullhop")


def _by_name(schedule):
    return {s.layer.name: s for s in schedule}


def _one_conv(in_shape, cout, k, *, padding=0, activation="relu", name="c"):
    b = NetworkBuilder("one", in_shape)
    b.conv(name, cout, k, padding=padding, activation=activation)
    return b.build().layer(name)


# ----------------------------------------------------------------- geometry wiring
def test_the_mapping_limits_of_the_nullhop_preset_are_the_published_ones():
    a, m = GEOM.array, GEOM.memory
    assert (a.num_macs, m.kernel_memory_words_per_mac, a.max_macs_per_channel, a.max_kernel_size) == (128, 4096, 8, 7)
    assert Simulator("nullhop").config == GEOM


# ----------------------------------------------------------------- VGG16 (§N3.4)
#: docs/sources.md §N3.4: layer -> (input H, Cin, Cout, dense MACs, m, out ch / pass, passes).
VGG16_TABLE = {
    "conv1_1": (224, 3, 64, 86_704_128, 2, 64, 1),
    "conv1_2": (224, 64, 64, 1_849_688_064, 2, 64, 1),
    "conv2_1": (112, 64, 128, 924_844_032, 1, 128, 1),
    "conv2_2": (112, 128, 128, 1_849_688_064, 1, 128, 1),
    "conv3_1": (56, 128, 256, 924_844_032, 1, 128, 2),
    "conv3_2": (56, 256, 256, 1_849_688_064, 1, 128, 2),
    "conv3_3": (56, 256, 256, 1_849_688_064, 1, 128, 2),
    "conv4_1": (28, 256, 512, 924_844_032, 1, 128, 4),
    "conv4_2": (28, 512, 512, 1_849_688_064, 2, 64, 8),
    "conv4_3": (28, 512, 512, 1_849_688_064, 2, 64, 8),
    "conv5_1": (14, 512, 512, 462_422_016, 2, 64, 8),
    "conv5_2": (14, 512, 512, 462_422_016, 2, 64, 8),
    "conv5_3": (14, 512, 512, 462_422_016, 2, 64, 8),
}


@pytest.fixture(scope="module")
def vgg16_schedule():
    return _by_name(schedule_network(get_network("vgg16"), GEOM))


@pytest.mark.parametrize("name", list(VGG16_TABLE))
def test_vgg16_mapping_matches_nullhop_table(vgg16_schedule, name):
    h, cin, cout, macs, m, out_per_pass, passes = VGG16_TABLE[name]
    s = vgg16_schedule[name]
    assert s.where == "accelerator"
    assert s.layer.in_shape == (h, h, cin) and s.layer.out_channels == cout
    assert s.layer.macs == macs
    mp = s.mapping
    assert (mp.m, mp.out_per_pass, mp.passes) == (m, out_per_pass, passes)
    assert mp.m * mp.out_per_pass == 128


def test_vgg16_table_covers_every_conv_and_the_conv_total(vgg16_schedule):
    convs = [n for n, s in vgg16_schedule.items() if s.layer.op == "conv"]
    assert convs == list(VGG16_TABLE)
    assert sum(v[3] for v in VGG16_TABLE.values()) == 15_346_630_656  # §N3.4 conv total


def test_vgg16_pools_fused_and_fc_on_host(vgg16_schedule):
    for stage in range(1, 6):
        pool = vgg16_schedule[f"pool{stage}"]
        assert pool.where == "fused"
        last_conv = {1: "conv1_2", 2: "conv2_2", 3: "conv3_3", 4: "conv4_3", 5: "conv5_3"}[stage]
        assert vgg16_schedule[last_conv].fused_pool.name == f"pool{stage}"
    for fc in ("fc6", "fc7", "fc8"):
        assert vgg16_schedule[fc].where == "host"
        assert vgg16_schedule[fc].mapping is None


def test_vgg16_conv4_2_is_kernel_memory_bound():
    # 3*3*512 = 4608 weights > 4096 words: 4608 // 4096 + 1 = 2 kernel memories.
    layer = get_network("vgg16").layer("conv4_2")
    mp = map_conv(layer, GEOM)
    assert mp.m == 2
    # P2 = 512 > m: each MAC holds 512/2 = 256 channels x 9 taps (§N3.3).
    assert mp.channels_per_lane == 256
    assert mp.contiguous_kernels == 256 * 9
    assert mp.contiguous_kernels <= 4096


# ------------------------------------------------------- RoshamboNet, facedet (§N10)
#: docs/sources.md §N10.2: layer -> (m, out ch / pass); all single pass.
ROSHAMBO = {"layer1": (8, 16), "layer2": (4, 32), "layer3": (2, 64), "layer4": (1, 128), "layer5": (1, 128)}
#: docs/sources.md §N10.3: Cout = 16 on both convs -> m = 8, 16 per pass, 1 pass.
FACEDET = {"conv1": (8, 16), "conv2": (8, 16)}


@pytest.mark.parametrize("network, table", [("roshambonet", ROSHAMBO), ("facedet", FACEDET)])
def test_small_networks_mapping(network, table):
    sched = _by_name(schedule_network(get_network(network), GEOM))
    acc = [n for n, s in sched.items() if s.where == "accelerator"]
    assert acc == list(table)
    for name, (m, out_per_pass) in table.items():
        mp = sched[name].mapping
        assert (mp.m, mp.out_per_pass, mp.passes) == (m, out_per_pass, 1), name


def test_roshambonet_contiguous_kernels():
    # §N3.3: P2 <= m -> k^2; P2 > m -> (P2/m) k^2; m = 1 -> Cin k^2.
    sched = _by_name(schedule_network(get_network("roshambonet"), GEOM))
    expect = {"layer1": (25, 1),          # Cin 1, m 8: P2 = 1 <= 8
              "layer2": (4 * 9, 4),       # Cin 16, m 4: 16/4 = 4 channels per MAC
              "layer3": (16 * 9, 16),     # Cin 32, m 2
              "layer4": (64 * 9, 64),     # Cin 64, m 1
              "layer5": (128, 128)}       # 1x1, Cin 128, m 1
    for name, (contig, per_lane) in expect.items():
        mp = sched[name].mapping
        assert (mp.contiguous_kernels, mp.channels_per_lane) == (contig, per_lane), name


# ------------------------------------------------------------ driver rule details
@pytest.mark.parametrize("cout, m, out_per_pass, passes, last", [
    # docs/architecture.md §2: passes = ceil(Cout / out_per_pass) (driver: 96 -> 0 passes, 200 -> 1).
    (96, 1, 128, 1, (0, 96)),
    (200, 1, 128, 2, (128, 72)),
    (128, 1, 128, 1, (0, 128)),
    (256, 1, 128, 2, (128, 128)),
    (384, 1, 128, 3, (256, 128)),
    (64, 2, 64, 1, (0, 64)),
    # Cout < 16: 128 // Cout > 8, capped at max_macs_per_channel (Assumption, §2)
    (4, 8, 16, 1, (0, 4)),
    (1, 8, 16, 1, (0, 1)),
    # 128 // 40 = 3 -> rounded up to 4: 32 per pass -> 2 passes
    (40, 4, 32, 2, (32, 8)),
])
def test_pass_count_is_ceil(cout, m, out_per_pass, passes, last):
    layer = _one_conv((8, 8, 16), cout, 3, padding=1)
    mp = map_conv(layer, GEOM)
    assert (mp.m, mp.out_per_pass, mp.passes) == (m, out_per_pass, passes)
    assert mp.pass_channels(passes - 1) == last
    # passes cover every output channel exactly once
    assert sum(mp.pass_channels(p)[1] for p in range(mp.passes)) == cout


@pytest.mark.parametrize("cin, m", [
    (4095, 1),   # 4095 // 4096 + 1 = 1
    (4096, 2),   # "+1" even when exact: 4096 // 4096 + 1 = 2
    (8192, 4),   # 2 + 1 = 3 -> rounded up to 4
    (28671, 8),  # 6 + 1 = 7 -> 8
    (32767, 8),  # 7 + 1 = 8
])
def test_kernel_memory_rule_plus_one(cin, m):
    layer = _one_conv((1, 1, cin), 128, 1)
    assert map_conv(layer, GEOM).m == m


def test_kernel_too_large_raises_mapping_error():
    b = NetworkBuilder("big", (16, 16, 4))
    b.conv("huge_kernel", 8, 9, padding=4)
    net = b.build()
    with pytest.raises(MappingError) as info:
        schedule_network(net, GEOM)
    msg = str(info.value)
    assert "huge_kernel" in msg and "array.max_kernel_size" in msg and "9x9" in msg
    with pytest.raises(MappingError, match="array.max_kernel_size"):
        Simulator("nullhop").run(net)
    # A larger configured maximum accepts it.
    bigger = Simulator("nullhop", {"array.max_kernel_size": 9}).config
    assert map_conv(net.layer("huge_kernel"), bigger).m == 8


def test_seven_by_seven_is_accepted():
    layer = _one_conv((16, 16, 4), 8, 7, padding=3)
    assert map_conv(layer, GEOM).kernel == (7, 7)


@pytest.mark.parametrize("cin", [32768, 40000])
def test_too_many_kernel_memories_raises_mapping_error(cin):
    # 1*1*32768 // 4096 + 1 = 9 kernel memories > 8 MACs per channel.
    layer = _one_conv((1, 1, cin), 16, 1, name="wide_layer")
    with pytest.raises(MappingError) as info:
        map_conv(layer, GEOM)
    msg = str(info.value)
    assert "wide_layer" in msg and "memory.kernel_memory_words_per_mac" in msg


def test_smaller_kernel_memory_is_rejected_earlier():
    # 3*3*64 = 576 weights; with 64 words per MAC: 576 // 64 + 1 = 10 > 8.
    layer = _one_conv((8, 8, 64), 16, 3, name="l")
    small = with_overrides(GEOM, {"memory.kernel_memory_words_per_mac": 64})
    with pytest.raises(MappingError, match="memory.kernel_memory_words_per_mac"):
        map_conv(layer, small)
    # 128 words: 576 // 128 + 1 = 5 -> m = 8
    ok = with_overrides(GEOM, {"memory.kernel_memory_words_per_mac": 128})
    assert map_conv(layer, ok).m == 8


def test_padded_kernels_raise_m_until_they_fit():
    # C_in = 576: the driver's rule gives 3*3*576 // 4096 + 1 = 2 kernel memories, but a lane
    # holds its channels padded to a power of two: 1024 / 2 = 512 channels x 9 taps = 4608
    # words > 4096. m = 4 halves that to 2304 words (MobileNet-v2 features.12-14 conv.1.0).
    layer = _one_conv((14, 14, 576), 576, 3, padding=1, name="dw")
    mp = map_conv(layer, GEOM)
    assert (mp.m, mp.channels_per_lane, mp.contiguous_kernels) == (4, 256, 2304)
    assert mp.out_per_pass == 32 and mp.passes == 18


@pytest.mark.parametrize("network", ["vgg16", "vgg19", "resnet18", "resnet50", "mobilenet_v1", "mobilenet_v2",
                                     "roshambonet", "facedet"])
def test_no_zoo_layer_overflows_its_kernel_memory(network):
    words = GEOM.memory.kernel_memory_words_per_mac
    for s in schedule_network(get_network(network), GEOM):
        if s.mapping is not None:
            assert s.mapping.contiguous_kernels <= words, (s.layer.name, s.mapping)


def test_padded_kernels_that_never_fit_raise_mapping_error():
    # 3x3 x 3000 channels padded to 4096: even m = 8 leaves 512 x 9 = 4608 words per MAC.
    layer = _one_conv((4, 4, 3000), 16, 3, padding=1, name="too_wide")
    with pytest.raises(MappingError, match=r"layer 'too_wide': each MAC must hold 4608 kernel words .* "
                                           r"memory.kernel_memory_words_per_mac=4096"):
        map_conv(layer, GEOM)


# ------------------------------------------------------------------------ fusion
def _fusion_net(pool_kernel=2, pool_stride=2, *, activation="relu", in_hw=8, conv_stride=1, second_consumer=False):
    b = NetworkBuilder("fuse", (in_hw, in_hw, 8))
    c = b.conv("conv", 16, 3, padding=1, stride=conv_stride, activation=activation)
    b.maxpool("pool", pool_kernel, pool_stride, 0 if pool_kernel == 2 else 1, inputs=c)
    if second_consumer:
        b.conv("side", 16, 1, inputs=c)
    return b.build()


def test_2x2_pool_after_relu_conv_is_fused():
    sched = _by_name(schedule_network(_fusion_net(), GEOM))
    assert sched["pool"].where == "fused"
    assert "conv" in sched["pool"].reason
    assert sched["conv"].where == "accelerator"
    assert sched["conv"].fused_pool is not None and sched["conv"].fused_pool.name == "pool"


def test_relu6_conv_pool_is_fused():
    sched = _by_name(schedule_network(_fusion_net(activation="relu6"), GEOM))
    assert sched["pool"].where == "fused"


@pytest.mark.parametrize("kwargs", [
    dict(pool_kernel=3, pool_stride=2),     # 3x3/2 pool: host
    dict(second_consumer=True),             # conv output read by two layers
    dict(activation=None),                  # no ReLU: not fused (fusion needs a ReLU conv)
    dict(in_hw=7),                          # odd output height/width
    dict(conv_stride=2, in_hw=16),          # stride > 1 conv (host decimation)
])
def test_pool_not_fused(kwargs):
    sched = _by_name(schedule_network(_fusion_net(**kwargs), GEOM))
    assert sched["pool"].where == "host"
    assert sched["pool"].reason
    assert sched["conv"].where == "accelerator"
    assert sched["conv"].fused_pool is None


# ------------------------------------------------------------ compression flags
def test_first_layer_input_uncompressed_and_others_compressed():
    sched = schedule_network(get_network("roshambonet"), GEOM)
    acc = [s for s in sched if s.where == "accelerator"]
    assert acc[0].layer.name == "layer1" and acc[0].compressed_input is False
    assert all(s.compressed_input for s in acc[1:])


def test_output_compression_is_wired_to_relu():
    b = NetworkBuilder("act", (8, 8, 8))
    b.conv("relu_conv", 16, 3, padding=1, activation="relu")
    b.conv("relu6_conv", 16, 3, padding=1, activation="relu6")
    b.conv("linear_conv", 16, 3, padding=1, activation=None)
    sched = _by_name(schedule_network(b.build(), GEOM))
    assert sched["relu_conv"].compressed_output is True
    assert sched["relu6_conv"].compressed_output is True
    assert sched["linear_conv"].compressed_output is False
    assert sched["relu_conv"].compressed_input is False
    assert sched["linear_conv"].compressed_input is True


def test_host_layers_add_concat_and_global_pool():
    b = NetworkBuilder("res", (8, 8, 16))
    x = b.conv("a", 16, 3, padding=1)
    y = b.conv("b", 16, 3, padding=1, activation=None)
    b.add("add", (y, x), activation="relu")
    b.concat("cat", ("add", x))
    b.avgpool("gap")
    b.fc("fc", 10, activation=None)
    sched = _by_name(schedule_network(b.build(), GEOM))
    assert [n for n, s in sched.items() if s.where == "accelerator"] == ["a", "b"]
    for n in ("add", "cat", "gap", "fc"):
        assert sched[n].where == "host" and sched[n].mapping is None


# -------------------------------------------------------------------------- FC
def test_fc_on_host_by_default():
    sched = _by_name(schedule_network(get_network("facedet"), GEOM))
    for name in ("ip1", "ip2"):
        assert sched[name].where == "host"
        assert "host" in sched[name].reason.lower()


def test_fc_on_accelerator_when_configured():
    geom = Simulator("nullhop", {"array.run_fc_on_accelerator": "true"}).config
    assert geom.array.run_fc_on_accelerator is True
    sched = _by_name(schedule_network(get_network("facedet"), geom))
    ip1, ip2 = sched["ip1"], sched["ip2"]
    assert ip1.where == ip2.where == "accelerator"
    # ip1: 784 -> 128 as a 1x1 conv: 784 // 4096 + 1 = 1, 128 // 128 = 1 -> m = 1, 1 pass.
    assert ip1.mapping.kernel == (1, 1) and ip1.mapping.conv_in_channels == 784
    assert (ip1.mapping.m, ip1.mapping.out_per_pass, ip1.mapping.passes) == (1, 128, 1)
    assert ip1.mapping.contiguous_kernels == 784
    # ip2: 128 -> 2: 128 // 2 = 64, capped at 8 -> 16 per pass, 1 pass; 128/8 = 16 channels per MAC.
    assert (ip2.mapping.m, ip2.mapping.out_per_pass, ip2.mapping.passes) == (8, 16, 1)
    assert ip2.mapping.contiguous_kernels == 16
    # ip1 has a ReLU: compressed output; ip2 has none.
    assert ip1.compressed_output and not ip2.compressed_output


def test_vgg16_fc6_on_accelerator_mapping():
    # fc6: 7*7*512 = 25088 inputs -> 25088 // 4096 + 1 = 7 kernel memories -> m = 8, 16 per pass, 256 passes.
    geom = with_overrides(GEOM, {"array.run_fc_on_accelerator": True})
    sched = _by_name(schedule_network(get_network("vgg16"), geom))
    mp = sched["fc6"].mapping
    assert (mp.m, mp.out_per_pass, mp.passes) == (8, 16, 4096 // 16)
