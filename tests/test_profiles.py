"""Density profiles: numbers pinned to docs/sources.md (§S), lookup rules, names and errors."""
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workloads import WorkloadError
from workloads import NetworkBuilder
from workloads import (
    DensityProfile,
    default_profile_for,
    get_profile,
    list_profiles,
    uniform_profile,
)

# docs/sources.md §S3.1, Han et al. 2015 VGG16 table: layer -> (Act%, Weights%)
VGG16_TABLE = {
    "conv1_1": (53, 58), "conv1_2": (89, 22), "conv2_1": (80, 34), "conv2_2": (81, 36),
    "conv3_1": (68, 53), "conv3_2": (70, 24), "conv3_3": (64, 42), "conv4_1": (51, 32),
    "conv4_2": (45, 27), "conv4_3": (34, 34), "conv5_1": (32, 35), "conv5_2": (29, 29),
    "conv5_3": (19, 36), "fc6": (38, 4), "fc7": (42, 4), "fc8": (100, 23),
}
# docs/sources.md §S2, Han et al. 2015 AlexNet table
ALEXNET_TABLE = {
    "conv1": (88, 84), "conv2": (52, 38), "conv3": (37, 35), "conv4": (40, 37), "conv5": (34, 37),
    "fc1": (36, 9), "fc2": (40, 9), "fc3": (100, 25),
}


# -- network builders used by the tests ------------------------------------------------------------

def vgg(depth: int = 16):
    blocks = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}[depth]
    b = NetworkBuilder(f"vgg{depth}", (224, 224, 3))
    for stage, (n, ch) in enumerate(zip(blocks, (64, 128, 256, 512, 512)), start=1):
        for i in range(1, n + 1):
            b.conv(f"conv{stage}_{i}", ch, 3, padding=1)
        b.maxpool(f"pool{stage}")
    b.fc("fc6", 4096)
    b.fc("fc7", 4096)
    b.fc("fc8", 1000, activation=None)
    return b.build()


def resnet50():
    b = NetworkBuilder("resnet50", (224, 224, 3))
    b.conv("conv1", 64, 7, stride=2, padding=3)
    x = b.maxpool("pool1", 3, 2, 1)
    for stage, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for i in range(n):
            s = 2 if (i == 0 and stage > 1) else 1
            p = f"layer{stage}.{i}"
            b.conv(f"{p}.conv1", width, 1, inputs=x)
            b.conv(f"{p}.conv2", width, 3, stride=s, padding=1)
            y = b.conv(f"{p}.conv3", 4 * width, 1, activation=None)
            short = b.conv(f"{p}.downsample", 4 * width, 1, stride=s, activation=None, inputs=x) if i == 0 else x
            x = b.add(f"{p}.add", (y, short), activation="relu")
    b.avgpool("avgpool")
    b.fc("fc", 1000, activation=None)
    return b.build()


def mobilenet_v1():
    b = NetworkBuilder("mobilenet_v1", (224, 224, 3))
    b.conv("model.0", 32, 3, stride=2, padding=1)
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    cin = 32
    for i, (cout, s) in enumerate(cfg, start=1):
        b.conv(f"model.{i}.0", cin, 3, stride=s, padding=1, groups=cin)
        b.conv(f"model.{i}.3", cout, 1)
        cin = cout
    b.avgpool("model.14")
    b.fc("fc", 1000, activation=None)
    return b.build()


def weight_totals(network, profile):
    total = nonzero = 0.0
    for layer in network:
        if layer.op in ("conv", "fc"):
            n = math.prod(layer.weight_shape)
            total += n
            nonzero += n * profile.weight_density_for(layer)
    return total, nonzero


# -- published numbers -----------------------------------------------------------------------------

@pytest.mark.parametrize("layer", sorted(VGG16_TABLE))
def test_vgg16_numbers_match_han2015_table(layer):
    p = get_profile("han2015_vgg16")
    act, w = VGG16_TABLE[layer]
    assert p.output_density_for(layer) == act / 100
    assert p.weight_density_for(layer) == w / 100


def test_vgg16_spot_values():
    p = get_profile("han2015_vgg16")
    assert p.output_density_for("conv1_2") == 0.89
    assert p.weight_density_for("conv4_2") == 0.27
    assert p.output_density_for("conv5_3") == 0.19
    assert p.weight_density_for("fc6") == 0.04
    assert p.output_density_for("fc8") == 1.0
    assert set(p.output_density) == set(VGG16_TABLE) == set(p.weight_density)


@pytest.mark.parametrize("layer", sorted(ALEXNET_TABLE))
def test_alexnet_numbers_match_han2015_table(layer):
    p = get_profile("han2015_alexnet")
    act, w = ALEXNET_TABLE[layer]
    assert p.output_density_for(layer) == act / 100
    assert p.weight_density_for(layer) == w / 100


def test_han_defaults_are_conv_means():
    vgg16 = get_profile("han2015_vgg16")
    assert vgg16.default_output_density == pytest.approx(0.55)  # 715 / 13
    assert vgg16.default_weight_density == pytest.approx(462 / 13 / 100)
    alex = get_profile("han2015_alexnet")
    assert alex.default_output_density == pytest.approx(0.502)
    assert alex.default_weight_density == pytest.approx(0.462)
    assert "[P]" in vgg16.source and "[D]" in vgg16.source and "Assumption" in vgg16.source


def test_vgg19_extra_layers_use_defaults():
    p = get_profile(default_profile_for("vgg19"))
    net = vgg(19)
    assert p.output_density_for("conv5_4") == pytest.approx(0.55)
    assert p.weight_density_for(net.layer("conv3_4")) == pytest.approx(462 / 1300)
    # conv4_1 reads pool3, whose producer conv3_4 is not in the table
    assert p.input_density_for(net, "conv4_1") == pytest.approx(0.55)


def test_vgg16_input_densities_follow_previous_act_through_pools():
    """docs/sources.md §S3.2 'previous Act%' column, including the pool boundaries."""
    p = get_profile("han2015_vgg16")
    net = vgg(16)
    expected = {
        "conv1_1": 1.00, "conv1_2": 0.53, "conv2_1": 0.89, "conv2_2": 0.80, "conv3_1": 0.81,
        "conv3_2": 0.68, "conv3_3": 0.70, "conv4_1": 0.64, "conv4_2": 0.51, "conv4_3": 0.45,
        "conv5_1": 0.34, "conv5_2": 0.32, "conv5_3": 0.29, "fc6": 0.19, "fc7": 0.38, "fc8": 0.42,
    }
    got = {name: p.input_density_for(net, net.layer(name)) for name in expected}
    assert got == pytest.approx(expected)
    assert p.input_density_for(net, "conv2_1") == 0.89  # by name too


def test_resnet50_agp80_matches_distiller_totals():
    """docs/sources.md §S5.1: 5,108,133 of 25,502,912 weights non-zero, conv1 dense."""
    p = get_profile("distiller_resnet50_agp80")
    net = resnet50()
    total, nonzero = weight_totals(net, p)
    assert total == 25_502_912
    assert nonzero == pytest.approx(5_108_133, rel=1e-4)
    assert p.weight_density_for(net.layer("conv1")) == 1.0
    assert p.weight_density_for(net.layer("layer1.0.downsample")) == 0.2
    assert p.weight_density_for(net.layer("fc")) == 0.2
    assert p.output_density_for("layer3.2.conv2") == 0.5
    assert "Assumption" in p.source and "[NF]" in p.source


def test_resnet50_input_densities():
    p = get_profile("distiller_resnet50_agp80")
    net = resnet50()
    assert p.input_density_for(net, "conv1") == 1.0
    assert p.input_density_for(net, "layer1.0.conv1") == 0.5  # through pool1
    # add reads conv3 (no ReLU: dense) and the downsample conv (no ReLU: dense)
    assert p.input_density_for(net, "layer1.0.add") == 1.0
    assert p.input_density_for(net, "layer1.1.conv1") == 0.5  # add has a ReLU
    assert p.input_density_for(net, "fc") == 0.5  # through the global average pool


def test_mobilenet_v1_agp_matches_distiller_totals():
    """docs/sources.md §S6: 2,038,208 of 4,209,088 weights non-zero."""
    p = get_profile("distiller_mobilenet_v1_agp")
    net = mobilenet_v1()
    total, nonzero = weight_totals(net, p)
    assert total == 4_209_088
    assert nonzero == 2_038_208
    assert p.weight_density_for(net.layer("model.3.3")) == 1.0
    assert p.weight_density_for(net.layer("model.4.3")) == 0.5
    assert p.weight_density_for(net.layer("model.13.3")) == 0.5
    assert p.weight_density_for(net.layer("model.13.0")) == 1.0  # depthwise
    assert p.weight_density_for(net.layer("model.0")) == 1.0
    assert p.weight_density_for(net.layer("fc")) == 0.4


def test_mobilenet_classifier_as_1x1_conv_counts_as_fc():
    b = NetworkBuilder("mobilenet_conv_head", (7, 7, 1024))
    b.avgpool("pool")
    b.conv("classifier", 1000, 1, activation=None)
    net = b.build()
    assert get_profile("distiller_mobilenet_v1_agp").weight_density_for(net.layer("classifier")) == 0.4


def test_input_density_concat_and_linear_add():
    b = NetworkBuilder("branches", (8, 8, 3))
    b.conv("a", 16, 3, padding=1)
    b.conv("b", 48, 3, padding=1, inputs="input")
    b.concat("cat", ("a", "b"))
    b.conv("after_cat", 8, 1)
    b.conv("c", 16, 1, inputs="a")
    b.add("sum", ("a", "c"))
    b.conv("after_sum", 8, 1)
    net = b.build()
    p = DensityProfile(name="t", source="test", output_density={"a": 0.2, "b": 0.6, "c": 0.5})
    assert p.input_density_for(net, "after_cat") == pytest.approx((16 * 0.2 + 48 * 0.6) / 64)
    assert p.input_density_for(net, "after_sum") == pytest.approx(1 - 0.8 * 0.5)
    assert p.input_density_for(net, "sum") == pytest.approx(0.35)  # mean over the two inputs


def test_missing_output_density_without_default():
    p = DensityProfile(name="t", source="test", output_density={"a": 0.2})
    with pytest.raises(WorkloadError, match=r"^profile 't' has no output density for layer 'x' and no "
                                            r"default_output_density$"):
        p.output_density_for("x")


def test_weight_rule_needs_layer_and_pool_has_no_weights():
    p = get_profile("distiller_mobilenet_v1_agp")
    with pytest.raises(WorkloadError, match=r"pass the Layer, not only its name 'model.4.3'$"):
        p.weight_density_for("model.4.3")
    net = vgg(16)
    with pytest.raises(WorkloadError, match=r"^layer 'pool1' is a 'maxpool' layer and has no weights$"):
        get_profile("han2015_vgg16").weight_density_for(net.layer("pool1"))


def test_profile_tables_are_read_only():
    p = get_profile("han2015_vgg16")
    with pytest.raises(TypeError):
        p.output_density["conv1_1"] = 0.0
    assert get_profile("han2015_vgg16") is p


# -- names, uniform profiles and errors ------------------------------------------------------------

def test_list_profiles():
    assert list_profiles() == ["distiller_mobilenet_v1_agp", "distiller_resnet50_agp80",
                               "han2015_alexnet", "han2015_vgg16"]
    for name in list_profiles():
        assert get_profile(name).name == name


@pytest.mark.parametrize("network, profile", [
    ("vgg16", "han2015_vgg16"), ("VGG19", "han2015_vgg16"), ("resnet50", "distiller_resnet50_agp80"),
    ("resnet18", "uniform-0.5"), ("mobilenet_v1", "distiller_mobilenet_v1_agp"),
    ("mobilenet_v2", "uniform-0.5"),
    ("roshambo", "uniform-0.5"), ("face_detector", "uniform-0.5"), ("vgg11", "uniform-0.5"),
])
def test_default_profile_for(network, profile):
    assert default_profile_for(network) == profile
    get_profile(profile)


def test_unknown_profile_message():
    msg = ("unknown density profile 'han2015_vgg61'; did you mean 'han2015_vgg16'? known profiles: "
           "distiller_mobilenet_v1_agp, distiller_resnet50_agp80, han2015_alexnet, han2015_vgg16, "
           "uniform-<density>")
    with pytest.raises(WorkloadError, match=f"^{re.escape(msg)}$"):
        get_profile("han2015_vgg61")
    with pytest.raises(WorkloadError, match=r"^unknown density profile 'zzz'; known profiles: "):
        get_profile("zzz")


def test_uniform_parsing():
    p = get_profile("uniform-0.3")
    assert p.name == "uniform-0.3"
    assert p.output_density_for("anything") == 0.3
    assert p.weight_density_for("anything") == 1.0
    q = get_profile("uniform-0.3-w0.25")
    assert (q.output_density_for("x"), q.weight_density_for("x")) == (0.3, 0.25)
    assert q.name == "uniform-0.3-w0.25"
    assert get_profile("uniform-1").name == "uniform-1.0"
    assert get_profile("uniform-1e-05").default_output_density == 1e-05
    net = vgg(16)
    assert p.input_density_for(net, "conv1_1") == 1.0
    assert p.input_density_for(net, "conv2_1") == 0.3


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_uniform_names_round_trip(d, w):
    p = uniform_profile(d, weight_density=w)
    q = get_profile(p.name)
    assert (q.default_output_density, q.default_weight_density) == (d, w)


@pytest.mark.parametrize("name, msg", [
    ("uniform-1.5", "uniform profile density must be in [0, 1], not 1.5"),
    ("uniform--0.1", "uniform profile density must be in [0, 1], not -0.1"),
    ("uniform-nan", "uniform profile density must be in [0, 1], not nan"),
    ("uniform-0.5-w2", "uniform profile weight_density must be in [0, 1], not 2.0"),
    ("uniform-half", "profile 'uniform-half': density 'half' is not a number"),
])
def test_bad_uniform_density_messages(name, msg):
    with pytest.raises(WorkloadError, match=f"^{re.escape(msg)}$"):
        get_profile(name)


def test_bad_profile_values_are_named():
    with pytest.raises(WorkloadError, match=r"^profile 'bad': output_density of layer 'conv1' must be in "
                                            r"\[0, 1\], not 89$"):
        DensityProfile(name="bad", source="test", output_density={"conv1": 89})
    with pytest.raises(WorkloadError, match=r"^profile 'bad': default_weight_density must be in \[0, 1\], "
                                            r"not -0.2$"):
        DensityProfile(name="bad", source="test", default_weight_density=-0.2)
    with pytest.raises(WorkloadError, match=r"^profile 'bad': weight_density of layer 'fc' must be a "
                                            r"number in \[0, 1\], not '4%'$"):
        DensityProfile(name="bad", source="test", weight_density={"fc": "4%"})
    with pytest.raises(WorkloadError, match=r"^uniform profile density must be in \[0, 1\], not -0.1$"):
        uniform_profile(-0.1)


@pytest.mark.parametrize("network, total, nonzero, rel", [
    ("mobilenet_v1", 4_209_088, 2_038_208, 0.0),
    ("resnet50", 25_502_912, 5_108_133, 1e-4),
])
def test_zoo_networks_match_distiller_totals(network, total, nonzero, rel):
    """The shape-based rules also hold on the zoo's own layer names."""
    from workloads import get_network

    net = get_network(network)
    got_total, got_nonzero = weight_totals(net, get_profile(default_profile_for(net.name)))
    assert got_total == total
    assert got_nonzero == pytest.approx(nonzero, rel=rel)


def test_zoo_vgg16_input_densities_resolve():
    from workloads import get_network

    net = get_network("vgg16")
    p = get_profile(default_profile_for(net.name))
    assert p.input_density_for(net, "conv1_1") == 1.0
    assert p.input_density_for(net, "conv2_1") == 0.89
    assert p.input_density_for(net, "fc6") == 0.19
