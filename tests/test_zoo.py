"""Tests for workloads._zoo: the built-in networks against published figures.

Every expected number below comes from an independent source, never from running the zoo:
docs/sources.md §N3.4 (VGG MACs) and §N10 (RoshamboNet, face detector), §S5.1 and §S6
(Distiller weight counts), and torchvision's published model metadata (``num_params`` and
GFLOPS, where torchvision's "FLOPS" are multiply-accumulates).
"""
from __future__ import annotations

import math

import pytest

from workloads import WorkloadError
from workloads import Network
from workloads import get_network, list_networks

ALL = ("facedet", "mobilenet_v1", "mobilenet_v2", "resnet18", "resnet50", "roshambonet", "vgg16", "vgg19")


def _weights(net: Network) -> int:
    """Weights of the conv and fc layers, biases excluded."""
    return sum(math.prod(layer.weight_shape) for layer in net if layer.op in ("conv", "fc"))


def _layers(net: Network, op: str) -> list:
    return [layer for layer in net if layer.op == op]


# ------------------------------------------------------------------ registry / lookup
def test_list_networks_is_sorted_and_complete():
    names = list_networks()
    assert names == sorted(names)
    assert tuple(names) == ALL


@pytest.mark.parametrize("name", ALL)
def test_network_is_named_after_its_key(name):
    assert get_network(name).name == name


@pytest.mark.parametrize("alias, name", [
    ("VGG16", "vgg16"),
    ("Vgg19", "vgg19"),
    ("ResNet50", "resnet50"),
    ("mobilenet-v1", "mobilenet_v1"),
    ("MobileNet-V2", "mobilenet_v2"),
    ("RoshamboNet", "roshambonet"),
    ("FACEDET", "facedet"),
])
def test_lookup_ignores_case_and_accepts_dashes(alias, name):
    assert get_network(alias) == get_network(name)


def test_unknown_network_message_suggests_close_match():
    with pytest.raises(WorkloadError) as info:
        get_network("vgg61")
    msg = str(info.value)
    assert msg.startswith("unknown network 'vgg61'; choose one of ")
    assert "did you mean" in msg
    # difflib scores 'vgg16' and 'vgg19' equally (0.8) and breaks the tie towards 'vgg19'.
    assert msg == ("unknown network 'vgg61'; choose one of facedet, mobilenet_v1, mobilenet_v2, "
                   "resnet18, resnet50, roshambonet, vgg16, vgg19 (did you mean 'vgg19'?)")


def test_unknown_network_without_close_match_has_no_suggestion():
    with pytest.raises(WorkloadError) as info:
        get_network("transformer")
    assert str(info.value) == ("unknown network 'transformer'; choose one of facedet, mobilenet_v1, "
                               "mobilenet_v2, resnet18, resnet50, roshambonet, vgg16, vgg19")


def test_unknown_network_dash_variant_suggests_underscore_name():
    with pytest.raises(WorkloadError, match=r"\(did you mean 'mobilenet_v2'\?\)$"):
        get_network("mobilenet-v3")


def test_non_string_name_raises_workload_error():
    with pytest.raises(WorkloadError, match=r"^unknown network 16; choose one of "):
        get_network(16)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("name, input_shape, classes", [
    ("vgg16", (224, 224, 3), 1000),
    ("vgg19", (224, 224, 3), 1000),
    ("resnet18", (224, 224, 3), 1000),
    ("resnet50", (224, 224, 3), 1000),
    ("mobilenet_v1", (224, 224, 3), 1000),
    ("mobilenet_v2", (224, 224, 3), 1000),
    ("roshambonet", (64, 64, 1), 4),     # docs/sources.md §N10.2: PAPER, SCISSORS, ROCK, BACKGROUND
    ("facedet", (36, 36, 1), 2),         # docs/sources.md §N10.3: IP2_OP_SIZE 2
])
def test_input_and_output_shapes(name, input_shape, classes):
    net = get_network(name)
    assert net.input_shape == input_shape
    assert net.layers[-1].out_shape == (1, 1, classes)
    assert net.layers[-1].op == "fc"
    assert net.layers[-1].activation is None


@pytest.mark.parametrize("name, weight_layers", [
    ("vgg16", 16), ("vgg19", 19),          # the depth in the name counts conv + fc layers
    ("resnet18", 18), ("resnet50", 50),    # ... excluding the 1x1 downsample projections
    ("mobilenet_v1", 28),                  # Howard et al. 2017: "MobileNet has 28 layers"
])
def test_depth_matches_the_published_layer_count(name, weight_layers):
    net = get_network(name)
    counted = [layer for layer in net if layer.op in ("conv", "fc") and not layer.name.endswith("downsample")]
    assert len(counted) == weight_layers


# ------------------------------------------------------------------ VGG (docs/sources.md §N3.4)
def test_vgg_conv_macs_match_nullhop_worked_example():
    assert get_network("vgg16").conv_macs == 15_346_630_656
    assert get_network("vgg19").conv_macs == 19_508_428_800


@pytest.mark.parametrize("layer, macs", [
    ("conv1_1", 86_704_128),
    ("conv1_2", 1_849_688_064),
    ("conv2_1", 924_844_032),
    ("conv2_2", 1_849_688_064),
    ("conv3_1", 924_844_032),
    ("conv3_2", 1_849_688_064),
    ("conv3_3", 1_849_688_064),
    ("conv4_1", 924_844_032),
    ("conv4_2", 1_849_688_064),
    ("conv4_3", 1_849_688_064),
    ("conv5_1", 462_422_016),
    ("conv5_2", 462_422_016),
    ("conv5_3", 462_422_016),
])
def test_vgg16_per_layer_macs(layer, macs):
    assert get_network("vgg16").layer(layer).macs == macs


def test_vgg16_layer_conventions():
    net = get_network("vgg16")
    for layer in _layers(net, "conv"):
        assert (layer.kernel, layer.stride, layer.padding, layer.activation) == ((3, 3), 1, 1, "relu")
    assert [l.name for l in _layers(net, "maxpool")] == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert net.layer("pool5").out_shape == (7, 7, 512)
    assert [(l.name, l.out_channels, l.activation) for l in _layers(net, "fc")] == [
        ("fc6", 4096, "relu"), ("fc7", 4096, "relu"), ("fc8", 1000, None)]


@pytest.mark.parametrize("name, params", [
    ("vgg16", 138_357_544),   # torchvision VGG16_Weights num_params
    ("vgg19", 143_667_240),   # torchvision VGG19_Weights num_params
])
def test_vgg_parameter_count_with_biases(name, params):
    net = get_network(name)
    biases = sum(l.out_channels for l in net if l.op in ("conv", "fc") and l.bias)
    assert _weights(net) + biases == params


# ------------------------------------------------------------------ ImageNet MACs
@pytest.mark.parametrize("name, published_macs, rel", [
    ("resnet18", 1.814e9, 0.02),       # torchvision ResNet18_Weights: 1.81 GFLOPS (MACs)
    ("resnet50", 4.089e9, 0.02),       # torchvision ResNet50_Weights: 4.09 GFLOPS (MACs)
    ("mobilenet_v1", 569e6, 0.01),     # Howard et al. 2017, Table 8: 569 M mult-adds
    ("mobilenet_v2", 300.8e6, 0.02),   # torchvision MobileNet_V2_Weights: 0.30 GFLOPS; Sandler et al.: 300 M
])
def test_total_macs_match_published_figures(name, published_macs, rel):
    assert get_network(name).macs == pytest.approx(published_macs, rel=rel)


# ------------------------------------------------------------------ weight / parameter counts
def test_resnet50_conv_fc_weights_match_distiller():
    # docs/sources.md §S5.1: "5,108,133 of 25,502,912 weights are non-zero"; conv1 is 9,408 weights.
    net = get_network("resnet50")
    assert _weights(net) == 25_502_912
    assert math.prod(net.layer("conv1").weight_shape) == 9_408


def test_mobilenet_v1_conv_fc_weights_match_distiller():
    # docs/sources.md §S6: "2,038,208 of 4,209,088 weights non-zero".
    assert _weights(get_network("mobilenet_v1")) == 4_209_088


@pytest.mark.parametrize("name, params", [
    ("resnet18", 11_689_512),      # torchvision ResNet18_Weights num_params
    ("resnet50", 25_557_032),      # torchvision ResNet50_Weights num_params
    ("mobilenet_v2", 3_504_872),   # torchvision MobileNet_V2_Weights num_params
])
def test_torchvision_parameter_count_with_unfolded_batch_norm(name, params):
    # torchvision convs have no bias; each conv is followed by a batch norm with 2 learnable
    # parameters per channel (folded into our conv bias); the fc has a bias.
    net = get_network(name)
    bn = sum(2 * l.out_channels for l in _layers(net, "conv"))
    fc_bias = sum(l.out_channels for l in _layers(net, "fc"))
    assert _weights(net) + bn + fc_bias == params


# ------------------------------------------------------------------ ResNet structure
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_stem_and_head(name):
    net = get_network(name)
    conv1 = net.layer("conv1")
    assert (conv1.kernel, conv1.stride, conv1.padding, conv1.activation) == ((7, 7), 2, 3, "relu")
    assert conv1.out_shape == (112, 112, 64)
    pool = net.layer("maxpool")
    assert (pool.op, pool.kernel, pool.stride, pool.padding, pool.out_shape) == (
        "maxpool", (3, 3), 2, 1, (56, 56, 64))
    avg = net.layer("avgpool")
    assert avg.op == "avgpool" and avg.kernel == (7, 7) and avg.out_shape[:2] == (1, 1)
    assert all(l.bias for l in _layers(net, "conv"))   # batch norm folded


@pytest.mark.parametrize("name, blocks, final_channels", [
    ("resnet18", (2, 2, 2, 2), 512),
    ("resnet50", (3, 4, 6, 3), 2048),
])
def test_resnet_residual_adds(name, blocks, final_channels):
    net = get_network(name)
    adds = _layers(net, "add")
    assert len(adds) == sum(blocks)
    for add in adds:
        assert add.activation == "relu"
        for src in add.inputs:
            producer = net.layer(src) if src != "input" else None
            if producer is not None and producer.op == "conv":
                assert producer.activation is None, f"{producer.name} feeds an add"
    downsamples = [l for l in net if l.name.endswith("downsample")]
    expected = ["layer1.0.downsample"] if name == "resnet50" else []
    expected += ["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"]
    assert [l.name for l in downsamples] == expected
    for ds in downsamples:
        assert ds.kernel == (1, 1) and ds.activation is None
    assert net.layer(f"layer4.{blocks[3] - 1}.add").out_shape == (7, 7, final_channels)


def test_resnet50_is_v1_5_with_stride_on_the_3x3():
    net = get_network("resnet50")
    assert net.layer("layer2.0.conv1").stride == 1
    assert net.layer("layer2.0.conv2").stride == 2
    assert net.layer("layer2.0.conv2").kernel == (3, 3)
    assert net.layer("layer2.0.downsample").stride == 2
    assert net.layer("layer2.0.conv3").out_shape == (28, 28, 512)


# ------------------------------------------------------------------ MobileNet structure
def test_mobilenet_v1_structure_matches_distiller_names():
    net = get_network("mobilenet_v1")
    first = net.layer("model.0.0")
    assert (first.kernel, first.stride, first.out_shape) == ((3, 3), 2, (112, 112, 32))
    depthwise = [l for l in net if l.is_depthwise]
    assert len(depthwise) == 13
    for dw in depthwise:
        assert dw.kernel == (3, 3) and dw.padding == 1 and dw.activation == "relu"
    # docs/sources.md §S6: pointwise convs model.4.3 to model.13.3 are 128->256 ... 1024->1024.
    pw4, pw13 = net.layer("model.4.3"), net.layer("model.13.3")
    assert (pw4.in_channels, pw4.out_channels, pw4.kernel) == (128, 256, (1, 1))
    assert (pw13.in_channels, pw13.out_channels, pw13.kernel) == (1024, 1024, (1, 1))
    assert net.layer("model.14").op == "avgpool"
    assert net.layer("fc").weight_shape == (1000, 1, 1, 1024)


def test_mobilenet_v2_structure():
    net = get_network("mobilenet_v2")
    adds = _layers(net, "add")
    # torchvision: residuals in blocks with stride 1 and in == out channels
    # (24: 1, 32: 2, 64: 3, 96: 2, 160: 2).
    assert len(adds) == 10
    assert all(a.activation is None for a in adds)
    assert len([l for l in net if l.is_depthwise]) == 17
    for layer in _layers(net, "conv"):
        projection = layer.kernel == (1, 1) and not layer.is_depthwise and layer.name.endswith(
            (".conv.2", "features.1.conv.1"))
        assert layer.activation == (None if projection else "relu6"), layer.name
    last = net.layer("features.18")
    assert (last.in_channels, last.out_channels, last.out_shape[:2]) == (320, 1280, (7, 7))
    assert net.layer("classifier.1").weight_shape == (1000, 1, 1, 1280)


# ------------------------------------------------------------------ NullHop workloads (docs/sources.md §N10)
def test_roshambonet_matches_nullhop_table():
    net = get_network("roshambonet")
    convs = _layers(net, "conv")
    assert [l.macs for l in convs] == [1_440_000, 3_612_672, 2_654_208, 1_179_648, 65_536]
    assert [l.out_shape for l in convs] == [(60, 60, 16), (28, 28, 32), (12, 12, 64), (4, 4, 128), (2, 2, 128)]
    assert [l.out_shape[:2] for l in _layers(net, "maxpool")] == [(30, 30), (14, 14), (6, 6), (2, 2), (1, 1)]
    assert all(l.padding == 0 and l.activation == "relu" for l in convs)
    assert _layers(net, "fc")[0].macs == 512
    assert net.macs == pytest.approx(8.95e6, rel=0.001)   # "Total ≈ 8.95 M MACs"


def test_facedet_matches_nullhop_table():
    net = get_network("facedet")
    assert [l.macs for l in _layers(net, "conv")] == [409_600, 451_584]
    ip1, ip2 = _layers(net, "fc")
    assert ip1.in_shape == (7, 7, 16)   # IP1_IP_SIZE 784
    assert (ip1.out_channels, ip1.activation) == (128, "relu")
    assert (ip2.out_channels, ip2.activation) == (2, None)
