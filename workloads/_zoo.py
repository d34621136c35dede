"""Built-in network zoo: layer shapes of well-known CNNs, built with :class:`NetworkBuilder`.

Sources
-------
ImageNet networks (input 224x224x3, 1000 classes), shapes as in the torchvision model
definitions (``torchvision/models/vgg.py``, ``resnet.py``, ``mobilenetv2.py``):

- ``vgg16``, ``vgg19``: configurations "D" and "E" of Simonyan & Zisserman (torchvision
  ``vgg16``/``vgg19``). 3x3 convs with padding 1 and ReLU, 2x2/2 max pools, fc6/fc7 4096 with
  ReLU, fc8 1000 without activation. torchvision's ``AdaptiveAvgPool2d((7, 7))`` is the identity
  at 224x224 and dropout does not change shapes, so both are omitted. Layer names follow the
  Caffe convention (``conv1_1`` ... ``pool5``, ``fc6`` ... ``fc8``) used by docs/sources.md §N3.4 and
  §S3.
- ``resnet18``, ``resnet50``: torchvision ResNet v1.5 (the stride of a Bottleneck sits on its
  3x3 conv). Batch norm is folded into the convs, so every conv has a bias. Convs that feed a
  residual add, and the 1x1 ``downsample`` projections, have no activation; the ``add`` applies
  the ReLU. Layer names follow torchvision's module names (``layer1.0.conv1``,
  ``layer1.0.downsample``), which are also the names used by the Distiller schedules in
  docs/sources.md §S5, plus ``layerN.i.add`` for the residual add.
- ``mobilenet_v1``: width 1.0, as in the Distiller ``mobilenet`` model
  (``distiller/models/imagenet/mobilenet.py``): a 3x3/2 conv with 32 channels, 13 depthwise-
  separable blocks (depthwise 3x3 + ReLU, pointwise 1x1 + ReLU), a global average pool and an
  fc 1000. Layer names follow that model (``model.0.0``, ``model.k.0`` depthwise,
  ``model.k.3`` pointwise, ``model.14`` pool, ``fc``) so the sparsity profile of docs/sources.md §S6
  maps onto it by name.
- ``mobilenet_v2``: torchvision ``mobilenet_v2`` (width 1.0): inverted residuals with expand
  ratio t, ReLU6 after the stem, expansion and depthwise convs, a linear projection conv
  (no activation), an ``add`` (no activation) where stride is 1 and in == out channels, a 1x1
  conv to 1280 with ReLU6, a global average pool and an fc 1000. Names follow torchvision's
  modules (``features.0``, ``features.k.conv.0.0`` expansion, ``features.k.conv.1.0``
  depthwise, ``features.k.conv.2`` projection; ``features.1`` has no expansion, so there it is
  ``conv.0.0`` depthwise and ``conv.1`` projection) plus ``features.k.add``, ``avgpool`` and
  ``classifier.1``.

Small real NullHop workloads (docs/sources.md §N10):

- ``roshambonet``: docs/sources.md §N10.2 [C] (``SensorsINI/dextra-roshambo-python`` @ f211d08,
  ``RoshamboNet.py``; 64x64 input from ``globals_and_utils.py`` @ 053445e; "5 convolutional
  layers and a fully connected layer" confirmed by the 2019 demo record [P]). 64x64x1 input,
  five valid convs with ReLU, each followed by a 2x2 max pool, then fc 4. Layer names follow
  the Keras model (``layer1`` ... ``layer5``, ``pool1`` ... ``pool5``, ``layer6`` for the fc);
  the Keras fc has a softmax, modelled here as no activation.
- ``facedet``: docs/sources.md §N10.3 [C] (``wzygzlm/caer`` @ e17ad5d,
  ``modules/caffeinterface/caffe_models/faces_36x36/lenet.prototxt``; fc sizes confirmed by
  the testbench header ``IP1_IP_SIZE 784``, ``IP1_OP_SIZE 128``, ``IP2_OP_SIZE 2``). That it is
  the paper's face detector is likely but not confirmed. Layer names follow the Caffe LeNet
  convention (``conv1``, ``pool1``, ``conv2``, ``pool2``, ``ip1``, ``ip2``).

Networks are immutable, so :func:`get_network` caches them.
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Callable

from ._errors import WorkloadError
from ._network import Network, NetworkBuilder

__all__ = ["get_network", "list_networks"]

_IMAGENET_INPUT = (224, 224, 3)
_IMAGENET_CLASSES = 1000


# --------------------------------------------------------------------------- VGG
_VGG_CFG = {
    # channels per conv in each of the five stages
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


def _vgg(name: str) -> Network:
    b = NetworkBuilder(name, _IMAGENET_INPUT)
    for stage, channels in enumerate(_VGG_CFG[name], start=1):
        for i, c in enumerate(channels, start=1):
            b.conv(f"conv{stage}_{i}", c, 3, padding=1, activation="relu")
        b.maxpool(f"pool{stage}", 2, 2)
    b.fc("fc6", 4096, activation="relu")
    b.fc("fc7", 4096, activation="relu")
    b.fc("fc8", _IMAGENET_CLASSES, activation=None)
    return b.build()


# ------------------------------------------------------------------------ ResNet
def _resnet(name: str, bottleneck: bool, blocks: tuple[int, int, int, int]) -> Network:
    b = NetworkBuilder(name, _IMAGENET_INPUT)
    b.conv("conv1", 64, 7, stride=2, padding=3, activation="relu")
    b.maxpool("maxpool", 3, 2, 1)
    expansion = 4 if bottleneck else 1
    in_ch = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for i in range(n):
            stride = 2 if stage > 1 and i == 0 else 1
            p = f"layer{stage}.{i}"
            x = b.last
            out_ch = planes * expansion
            if bottleneck:
                b.conv(f"{p}.conv1", planes, 1, activation="relu", inputs=x)
                b.conv(f"{p}.conv2", planes, 3, stride=stride, padding=1, activation="relu")
                out = b.conv(f"{p}.conv3", out_ch, 1, activation=None)
            else:
                b.conv(f"{p}.conv1", planes, 3, stride=stride, padding=1, activation="relu", inputs=x)
                out = b.conv(f"{p}.conv2", planes, 3, padding=1, activation=None)
            if stride != 1 or in_ch != out_ch:
                identity = b.conv(f"{p}.downsample", out_ch, 1, stride=stride, activation=None, inputs=x)
            else:
                identity = x
            b.add(f"{p}.add", (out, identity), activation="relu")
            in_ch = out_ch
    b.avgpool("avgpool", kernel=None)
    b.fc("fc", _IMAGENET_CLASSES, activation=None)
    return b.build()


# --------------------------------------------------------------------- MobileNet
def _mobilenet_v1() -> Network:
    b = NetworkBuilder("mobilenet_v1", _IMAGENET_INPUT)
    b.conv("model.0.0", 32, 3, stride=2, padding=1, activation="relu")
    # (out channels of the pointwise conv, stride of the depthwise conv), Distiller model.1..13
    blocks = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
    c = 32
    for k, (out_ch, stride) in enumerate(blocks, start=1):
        b.conv(f"model.{k}.0", c, 3, stride=stride, padding=1, groups=c, activation="relu")
        b.conv(f"model.{k}.3", out_ch, 1, activation="relu")
        c = out_ch
    b.avgpool(f"model.{len(blocks) + 1}", kernel=None)
    b.fc("fc", _IMAGENET_CLASSES, activation=None)
    return b.build()


def _mobilenet_v2() -> Network:
    b = NetworkBuilder("mobilenet_v2", _IMAGENET_INPUT)
    b.conv("features.0", 32, 3, stride=2, padding=1, activation="relu6")
    # torchvision inverted_residual_setting: expand ratio t, channels c, repeats n, first stride s
    setting = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    in_ch, idx = 32, 1
    for t, c, n, s in setting:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{idx}"
            x = b.last
            hidden = in_ch * t
            j = 0
            if t != 1:
                b.conv(f"{p}.conv.0.0", hidden, 1, activation="relu6", inputs=x)
                j = 1
            b.conv(f"{p}.conv.{j}.0", hidden, 3, stride=stride, padding=1, groups=hidden,
                   activation="relu6")
            out = b.conv(f"{p}.conv.{j + 1}", c, 1, activation=None)
            if stride == 1 and in_ch == c:
                b.add(f"{p}.add", (out, x), activation=None)
            in_ch = c
            idx += 1
    b.conv(f"features.{idx}", 1280, 1, activation="relu6")
    b.avgpool("avgpool", kernel=None)
    b.fc("classifier.1", _IMAGENET_CLASSES, activation=None)
    return b.build()


# ------------------------------------------------------------- NullHop workloads
def _roshambonet() -> Network:
    b = NetworkBuilder("roshambonet", (64, 64, 1))
    for k, (c, kernel) in enumerate(((16, 5), (32, 3), (64, 3), (128, 3), (128, 1)), start=1):
        b.conv(f"layer{k}", c, kernel, padding=0, activation="relu")
        b.maxpool(f"pool{k}", 2, 2)
    b.fc("layer6", 4, activation=None)  # softmax in the Keras model
    return b.build()


def _facedet() -> Network:
    b = NetworkBuilder("facedet", (36, 36, 1))
    b.conv("conv1", 16, 5, padding=0, activation="relu")
    b.maxpool("pool1", 2, 2)
    b.conv("conv2", 16, 3, padding=0, activation="relu")
    b.maxpool("pool2", 2, 2)
    b.fc("ip1", 128, activation="relu")
    b.fc("ip2", 2, activation=None)
    return b.build()


_REGISTRY: dict[str, Callable[[], Network]] = {
    "vgg16": lambda: _vgg("vgg16"),
    "vgg19": lambda: _vgg("vgg19"),
    "resnet18": lambda: _resnet("resnet18", False, (2, 2, 2, 2)),
    "resnet50": lambda: _resnet("resnet50", True, (3, 4, 6, 3)),
    "mobilenet_v1": _mobilenet_v1,
    "mobilenet_v2": _mobilenet_v2,
    "roshambonet": _roshambonet,
    "facedet": _facedet,
}


def list_networks() -> list[str]:
    """Names of the built-in networks, sorted."""
    return sorted(_REGISTRY)


@lru_cache(maxsize=None)
def _build(key: str) -> Network:
    return _REGISTRY[key]()


def get_network(name: str) -> Network:
    """Return the built-in network called ``name``.

    The lookup ignores case and accepts ``-`` for ``_`` (``"MobileNet-V2"`` is
    ``mobilenet_v2``). An unknown name raises :class:`WorkloadError` listing the
    choices and, when one is close, suggesting it.
    """
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key in _REGISTRY:
        return _build(key)
    msg = f"unknown network {name!r}; choose one of {', '.join(list_networks())}"
    if key is not None:
        close = difflib.get_close_matches(key, list_networks(), n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
    raise WorkloadError(msg)
