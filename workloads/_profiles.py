"""Published per-layer density profiles (weights and post-ReLU activations).

"Density" is the fraction of non-zeros (1 - sparsity). Every number below comes
from the sources summarised in ``docs/sources.md`` (its §S sections); the
provenance tags are that file's: [P] published by the authors, [D] derived here (working shown), [M]
unverified hint, [NF] not found.

Provenance of the profiles
--------------------------
``han2015_vgg16``
    S. Han, J. Pool, J. Tran, W. J. Dally, "Learning both Weights and
    Connections for Efficient Neural Networks", NIPS 2015 (arXiv 1506.02626),
    VGG-16 per-layer table: Act% and Weights% [P] (docs/sources.md §S3.1). The
    defaults for layers not in the table (VGG19's conv3_4, conv4_4, conv5_4)
    are the means of the 13 conv rows [D]: Act% 715/13 = 55.0 %, Weights%
    462/13 = 35.5 %. **Assumption.**
``han2015_alexnet``
    Same paper, AlexNet per-layer table [P] (docs/sources.md §S2); layer names
    conv1..conv5, fc1..fc3 as printed. Defaults = means of the 5 conv rows [D]
    (Act% 251/5 = 50.2 %, Weights% 231/5 = 46.2 %). **Assumption.**
``distiller_resnet50_agp80``
    IntelLabs/distiller ``examples/agp-pruning/resnet50.schedule_agp.yaml`` @
    a3515f8 (unchanged @ d859fc8): 80 % sparsity on every conv and fc except the
    first convolution, which is dense [P] (docs/sources.md §S5.1). ResNet-50
    activation density is not published [NF] (docs/sources.md §S8); 0.5 is an
    **Assumption**, the midpoint of the unverified 40-60 % zeros range [M].
``distiller_mobilenet_v1_agp``
    IntelLabs/distiller ``examples/agp-pruning/mobilenet.imagenet.schedule_agp.yaml``
    @ 0a86656 (unchanged @ d859fc8): pointwise convs model.4.3..model.13.3 at
    50 % sparsity, fc at 60 %, everything else dense [P] (docs/sources.md §S6).
    Stored as a rule over :class:`~workloads._network.Layer` attributes, see
    :func:`_mobilenet_v1_weight_rule`. Activation density 0.5 is an
    **Assumption** (not published, docs/sources.md §S8).
``uniform-<d>``
    No source: one activation density ``d`` for every layer, dense weights
    unless ``-w<d>`` is appended (``uniform-0.5-w0.3``). For sweeps and for
    networks without a published profile.

Input density of a layer is the output density of its producer (docs/sources.md §S1);
see :meth:`DensityProfile.input_density_for` for pooling and multi-input layers.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ._errors import WorkloadError
from ._network import Layer, Network

__all__ = [
    "DensityProfile",
    "default_profile_for",
    "get_profile",
    "list_profiles",
    "uniform_profile",
]

#: Layer ops that carry weights.
_WEIGHTED_OPS = ("conv", "fc")
#: Layer ops assumed not to change density (see ``input_density_for``).
_POOL_OPS = ("maxpool", "avgpool")


def _check_density(value: object, what: str) -> float:
    """Return ``value`` as a float in [0, 1] or raise :class:`WorkloadError` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WorkloadError(f"{what} must be a number in [0, 1], not {value!r}")
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise WorkloadError(f"{what} must be in [0, 1], not {value!r}")
    return v


@dataclass(frozen=True, kw_only=True)
class DensityProfile:
    """Per-layer weight and output-activation densities of one (pruned) network.

    Parameters
    ----------
    name : profile name, as accepted by :func:`get_profile`.
    source : citation with provenance tag(s), e.g. ``"Han et al. 2015, NIPS,
        Table (VGG16) [P]"``; assumptions are spelled out here.
    output_density : post-ReLU output density ("Act%") per layer name, in [0, 1].
    weight_density : non-zero weight fraction ("Weights%") per layer name, in [0, 1].
    default_output_density : output density of layers not in ``output_density``;
        ``None`` means such layers are an error.
    default_weight_density : weight density of weighted layers that neither
        ``weight_density`` nor ``weight_rule`` covers.
    weight_rule : optional ``Layer -> float | None`` for profiles published with
        framework-specific layer names (Distiller's ``model.4.3``); it is asked
        after ``weight_density`` and may return ``None`` to fall through to the
        default.
    """

    name: str
    source: str
    output_density: Mapping[str, float] = field(default_factory=dict)
    weight_density: Mapping[str, float] = field(default_factory=dict)
    default_output_density: float | None = None
    default_weight_density: float = 1.0
    weight_rule: Callable[[Layer], float | None] | None = None

    def __post_init__(self) -> None:
        for attr in ("output_density", "weight_density"):
            checked = {
                str(layer): _check_density(v, f"profile {self.name!r}: {attr} of layer {layer!r}")
                for layer, v in dict(getattr(self, attr)).items()
            }
            # Read-only copy: registry profiles are shared module-level objects.
            object.__setattr__(self, attr, MappingProxyType(checked))
        if self.default_output_density is not None:
            object.__setattr__(self, "default_output_density", _check_density(
                self.default_output_density, f"profile {self.name!r}: default_output_density"))
        object.__setattr__(self, "default_weight_density", _check_density(
            self.default_weight_density, f"profile {self.name!r}: default_weight_density"))

    # -- activations ---------------------------------------------------------

    def output_density_for(self, layer_name: str) -> float:
        """Post-ReLU output density of ``layer_name`` (table value, else the default)."""
        if layer_name in self.output_density:
            return self.output_density[layer_name]
        if self.default_output_density is None:
            raise WorkloadError(f"profile {self.name!r} has no output density for layer {layer_name!r} "
                                "and no default_output_density")
        return self.default_output_density

    def input_density_for(self, network: Network, layer: Layer | str) -> float:
        """Density of the input activations that ``layer`` reads, in [0, 1].

        The input density of a layer is the output density of its producer
        (docs/sources.md §S1), resolved as follows:

        - the network input (the image) is dense: 1.0;
        - pooling layers (max and average) are walked through to their own
          producer. **Assumption**: pooling does not change density, as the
          FLOP% column of Han et al. 2015 implies (docs/sources.md §S3.2). Max pooling
          really raises density somewhat and a global average pool makes it ~1;
        - a concat has the channel-weighted mean density of its inputs;
        - a conv/fc listed in the profile has its table value;
        - an unlisted conv/fc/add without activation is linear, so its output is
          dense (conv/fc: 1.0) or, for an add, the union of its inputs' non-zeros
          assuming independence, ``1 - prod(1 - d_i)``. **Assumption**;
        - anything else with a ReLU gets :meth:`output_density_for`.

        For a layer with several inputs (add, concat) the element-count-weighted
        mean over its inputs is returned.
        """
        if isinstance(layer, str):
            layer = network.layer(layer)
        by_name = {l.name: l for l in network.layers}
        sizes = [h * w * c for h, w, c in layer.in_shapes]
        dens = [self._tensor_density(by_name, src) for src in layer.inputs]
        return sum(d * n for d, n in zip(dens, sizes)) / sum(sizes)

    def _tensor_density(self, by_name: Mapping[str, Layer], name: str) -> float:
        # NOTE: iterative walk through pool chains, recursion only at add/concat.
        while True:
            if name == "input":
                return 1.0
            producer = by_name[name]
            if producer.op in _POOL_OPS:
                name = producer.inputs[0]
                continue
            break
        if producer.op == "concat":
            sizes = [c for _, _, c in producer.in_shapes]
            dens = [self._tensor_density(by_name, src) for src in producer.inputs]
            return sum(d * n for d, n in zip(dens, sizes)) / sum(sizes)
        if name in self.output_density:
            return self.output_density[name]
        if producer.activation is None:
            if producer.op == "add":
                return 1.0 - math.prod(1.0 - self._tensor_density(by_name, s) for s in producer.inputs)
            return 1.0
        return self.output_density_for(name)

    # -- weights -------------------------------------------------------------

    def weight_density_for(self, layer: Layer | str) -> float:
        """Non-zero weight fraction of a conv/fc layer, in [0, 1].

        Looks up the layer name in ``weight_density``, then asks ``weight_rule``,
        then falls back to ``default_weight_density``. Profiles with a
        ``weight_rule`` need the :class:`Layer`, not only its name.
        """
        name = layer if isinstance(layer, str) else layer.name
        if name in self.weight_density:
            return self.weight_density[name]
        if isinstance(layer, Layer) and layer.op not in _WEIGHTED_OPS:
            raise WorkloadError(f"layer {name!r} is a {layer.op!r} layer and has no weights")
        if self.weight_rule is not None:
            if isinstance(layer, str):
                raise WorkloadError(f"profile {self.name!r} derives weight density from the layer's shape; "
                                    f"pass the Layer, not only its name {name!r}")
            value = self.weight_rule(layer)
            if value is not None:
                return _check_density(value, f"profile {self.name!r}: weight_rule for layer {name!r}")
        return self.default_weight_density


# -- published tables ---------------------------------------------------------

# Han et al. 2015, NIPS, VGG-16 per-layer table [P] (docs/sources.md §S3.1):
# layer: (Act%, Weights%)
_HAN2015_VGG16 = {
    "conv1_1": (53, 58),
    "conv1_2": (89, 22),
    "conv2_1": (80, 34),
    "conv2_2": (81, 36),
    "conv3_1": (68, 53),
    "conv3_2": (70, 24),
    "conv3_3": (64, 42),
    "conv4_1": (51, 32),
    "conv4_2": (45, 27),
    "conv4_3": (34, 34),
    "conv5_1": (32, 35),
    "conv5_2": (29, 29),
    "conv5_3": (19, 36),
    "fc6": (38, 4),
    "fc7": (42, 4),
    "fc8": (100, 23),
}

# Han et al. 2015, NIPS, AlexNet per-layer table [P] (docs/sources.md §S2):
# layer: (Act%, Weights%)
_HAN2015_ALEXNET = {
    "conv1": (88, 84),
    "conv2": (52, 38),
    "conv3": (37, 35),
    "conv4": (40, 37),
    "conv5": (34, 37),
    "fc1": (36, 9),
    "fc2": (40, 9),
    "fc3": (100, 25),
}


def _conv_mean(table: Mapping[str, tuple[int, int]], column: int) -> float:
    """[D] mean of one column over the conv rows of a Han et al. table, as a fraction."""
    values = [row[column] for name, row in table.items() if name.startswith("conv")]
    return sum(values) / len(values) / 100.0


def _han_profile(name: str, table: Mapping[str, tuple[int, int]], source: str) -> DensityProfile:
    act_mean, w_mean = _conv_mean(table, 0), _conv_mean(table, 1)
    return DensityProfile(
        name=name,
        source=(f"{source}; unlisted layers: mean of the conv rows [D] (Act {act_mean:.1%}, "
                f"Weights {w_mean:.1%}) - Assumption"),
        output_density={layer: act / 100.0 for layer, (act, _) in table.items()},
        weight_density={layer: w / 100.0 for layer, (_, w) in table.items()},
        default_output_density=act_mean,
        default_weight_density=w_mean,
    )


def _reads_image(layer: Layer) -> bool:
    return layer.inputs == ("input",)


#: Distiller resnet50.schedule_agp.yaml [P]: 80 % sparsity everywhere except conv1.
_RESNET50_AGP80_DENSITY = 0.2


def _resnet50_weight_rule(layer: Layer) -> float | None:
    """Dense first conv (the one reading the image), 0.2 for every other conv/fc [P] §S5.1."""
    if layer.op == "conv" and _reads_image(layer):
        return 1.0
    return _RESNET50_AGP80_DENSITY


#: Distiller mobilenet.imagenet.schedule_agp.yaml [P]: pointwise 50 %, fc 60 % sparsity.
_MOBILENET_PW_DENSITY = 0.5
_MOBILENET_FC_DENSITY = 0.4
#: Distiller's first pruned pointwise conv, model.4.3, is the first with 256 outputs (128 -> 256);
#: model.1.3-model.3.3 (32->64, 64->128, 128->128) stay dense. Valid for width multiplier 1.0.
_MOBILENET_PW_MIN_OUT = 256


def _mobilenet_v1_weight_rule(layer: Layer) -> float | None:
    """MobileNet-v1 (width 1.0) AGP schedule [P] §S6, expressed on layer shapes.

    - fc, or a 1x1 conv on a 1x1 input (a classifier written as conv): 0.4;
    - the first conv (reads the image) and every depthwise conv: dense;
    - pointwise (1x1, groups 1) convs with >= 256 output channels, i.e.
      model.4.3..model.13.3: 0.5; smaller pointwise convs (model.1.3..3.3): dense.
    """
    if layer.op == "fc":
        return _MOBILENET_FC_DENSITY
    if layer.op != "conv" or _reads_image(layer) or layer.is_depthwise:
        return 1.0
    if layer.kernel == (1, 1) and layer.groups == 1:
        if layer.in_shape[:2] == (1, 1):
            return _MOBILENET_FC_DENSITY
        return _MOBILENET_PW_DENSITY if layer.out_channels >= _MOBILENET_PW_MIN_OUT else 1.0
    return None


#: Assumed activation density where none is published (docs/sources.md §S8; [M] 40-60 % zeros).
_UNPUBLISHED_ACT_DENSITY = 0.5

_PROFILES: dict[str, DensityProfile] = {
    p.name: p
    for p in (
        _han_profile("han2015_vgg16", _HAN2015_VGG16,
                     "Han et al. 2015, NIPS (arXiv 1506.02626), Table (VGG16): Act% and Weights% [P]"),
        _han_profile("han2015_alexnet", _HAN2015_ALEXNET,
                     "Han et al. 2015, NIPS (arXiv 1506.02626), Table (AlexNet): Act% and Weights% [P]"),
        DensityProfile(
            name="distiller_resnet50_agp80",
            source=("IntelLabs/distiller examples/agp-pruning/resnet50.schedule_agp.yaml @a3515f8: "
                    "80% sparsity on all conv and fc except the first conv (dense) [P]; "
                    "activation density 0.5 is an Assumption - not published [NF], "
                    "midpoint of the unverified 40-60% zeros range [M]"),
            default_output_density=_UNPUBLISHED_ACT_DENSITY,
            default_weight_density=_RESNET50_AGP80_DENSITY,
            weight_rule=_resnet50_weight_rule,
        ),
        DensityProfile(
            name="distiller_mobilenet_v1_agp",
            source=("IntelLabs/distiller examples/agp-pruning/mobilenet.imagenet.schedule_agp.yaml "
                    "@0a86656: pointwise convs model.4.3-model.13.3 50% sparse, fc 60% sparse, all else "
                    "dense [P]; mapped to layers by shape (pointwise with >= 256 outputs) [D]; "
                    "activation density 0.5 is an Assumption - not published [NF], "
                    "midpoint of the unverified 40-60% zeros range [M]"),
            default_output_density=_UNPUBLISHED_ACT_DENSITY,
            default_weight_density=1.0,
            weight_rule=_mobilenet_v1_weight_rule,
        ),
    )
}

_UNIFORM_RE = re.compile(r"uniform-(?P<act>.+?)(?:-w(?P<w>.+))?")


def _fmt(d: float) -> str:
    """Shortest text that parses back to exactly ``d`` (so names round-trip)."""
    return repr(float(d))


def uniform_profile(density: float, *, weight_density: float = 1.0) -> DensityProfile:
    """A profile with the same output density ``density`` for every layer.

    Weights are dense unless ``weight_density`` is given (**Assumption**:
    networks without a published pruning profile are unpruned). The name is
    ``uniform-<density>`` (``uniform-0.5``), with ``-w<weight_density>``
    appended when the weights are pruned; :func:`get_profile` parses both.
    """
    d = _check_density(density, "uniform profile density")
    w = _check_density(weight_density, "uniform profile weight_density")
    name = f"uniform-{_fmt(d)}" + ("" if w == 1.0 else f"-w{_fmt(w)}")
    return DensityProfile(
        name=name,
        source=f"no source: uniform activation density {_fmt(d)}, weight density {_fmt(w)} (sweep parameter)",
        default_output_density=d,
        default_weight_density=w,
    )


def list_profiles() -> list[str]:
    """Names of the published profiles; ``uniform-<d>`` profiles are made on demand."""
    return sorted(_PROFILES)


def get_profile(name: str) -> DensityProfile:
    """Return the profile called ``name`` (a published one or ``uniform-<d>[-w<d>]``)."""
    if not isinstance(name, str):
        raise WorkloadError(f"profile must be a profile name (str), got {name!r}")
    if name in _PROFILES:
        return _PROFILES[name]
    m = _UNIFORM_RE.fullmatch(name)
    if m is not None:
        values = []
        for key in ("act", "w"):
            text = m.group(key)
            if text is None:
                values.append(1.0)
                continue
            try:
                values.append(float(text))
            except ValueError:
                raise WorkloadError(f"profile {name!r}: density {text!r} is not a number") from None
        return uniform_profile(values[0], weight_density=values[1])
    known = list_profiles() + ["uniform-<density>"]
    close = difflib.get_close_matches(name, list_profiles() + ["uniform-0.5"], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise WorkloadError(f"unknown density profile {name!r}; {hint}known profiles: {', '.join(known)}")


def default_profile_for(network_name: str) -> str:
    """Name of the profile to use for a network when none is given.

    vgg16/vgg19 -> ``han2015_vgg16`` (VGG19's extra layers use the conv means);
    resnet50 -> ``distiller_resnet50_agp80``; mobilenet_v1 ->
    ``distiller_mobilenet_v1_agp``; anything else (resnet18, mobilenet_v2,
    user networks) -> ``uniform-0.5`` (**Assumption**: typical post-ReLU
    density, dense weights), because no profile was published for them.
    """
    n = network_name.lower()
    if n.startswith(("vgg16", "vgg19")):
        return "han2015_vgg16"
    if n == "resnet50":
        return "distiller_resnet50_agp80"
    if n == "mobilenet_v1":
        return "distiller_mobilenet_v1_agp"
    return "uniform-0.5"
