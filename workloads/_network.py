"""Layers and networks: shapes only, no data.

Tensors are described as ``(height, width, channels)``; sparsesim stores
activations channel-fastest (HWC), which is NullHop's stream order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ._errors import WorkloadError

#: Layer operations sparsesim understands.
OPS = ("conv", "fc", "maxpool", "avgpool", "add", "concat", "host")
#: Activation functions a layer may apply to its output.
ACTIVATIONS = (None, "relu", "relu6")

Shape = tuple[int, int, int]


@dataclass(frozen=True, kw_only=True)
class Layer:
    """One layer of a network.

    Parameters
    ----------
    name : unique layer name.
    op : one of :data:`OPS`.
    inputs : names of the producing layers; ``"input"`` is the network input.
    in_shapes : ``(H, W, C)`` of each input, in ``inputs`` order.
    out_shape : ``(H, W, C)`` of the output.
    kernel : ``(kh, kw)`` for conv and pooling, ``(1, 1)`` otherwise.
    stride, padding : spatial stride and symmetric zero padding, in pixels.
    groups : conv groups (``groups == C_in`` is depthwise).
    activation : ``None``, ``"relu"`` or ``"relu6"`` applied to the output.
    bias : whether the layer adds a bias (batch norm folded into conv counts as a bias).
    host_op : for ``op == "host"``: what the host computes (an ONNX op type such as
        ``"Sigmoid"``, or a recognised activation such as ``"HardSwish"``). Such a layer's
        values come from the model's own run (an ONNX import), not from sparsesim.
    host_reason : for ``op == "host"``: why it is not on the accelerator (the report's note
        shows it), e.g. why an ONNX node did not map; may be empty.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: int = 0
    groups: int = 1
    activation: str | None = None
    bias: bool = True
    host_op: str = ""
    host_reason: str = ""

    @property
    def in_shape(self) -> Shape:
        """Shape of the first input."""
        return self.in_shapes[0]

    @property
    def in_channels(self) -> int:
        return self.in_shapes[0][2]

    @property
    def out_channels(self) -> int:
        return self.out_shape[2]

    @property
    def is_depthwise(self) -> bool:
        return self.op == "conv" and self.groups > 1 and self.groups == self.in_channels

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """``(C_out, kh, kw, C_in / groups)`` for conv and fc, else ``(0, 0, 0, 0)``."""
        if self.op == "conv":
            return (self.out_channels, self.kernel[0], self.kernel[1], self.in_channels // self.groups)
        if self.op == "fc":
            h, w, c = self.in_shape
            return (self.out_channels, 1, 1, h * w * c)
        return (0, 0, 0, 0)

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates of the layer (conv and fc only)."""
        if self.op not in ("conv", "fc"):
            return 0
        ho, wo, co = self.out_shape
        _, kh, kw, cin_g = self.weight_shape
        return ho * wo * co * kh * kw * cin_g


@dataclass(frozen=True)
class Network:
    """A named, topologically ordered list of layers with an input shape."""

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        seen = {"input"}
        for layer in self.layers:
            if layer.name in seen:
                raise WorkloadError(f"network {self.name!r}: duplicate layer name {layer.name!r}")
            if layer.op not in OPS:
                raise WorkloadError(f"network {self.name!r}, layer {layer.name!r}: unsupported op {layer.op!r}; "
                                    f"supported ops: {', '.join(OPS)}")
            for src in layer.inputs:
                if src not in seen:
                    raise WorkloadError(
                        f"network {self.name!r}, layer {layer.name!r}: input {src!r} is not an "
                        "earlier layer or 'input'"
                    )
            seen.add(layer.name)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, name: str) -> Layer:
        """Return the layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise WorkloadError(f"network {self.name!r} has no layer {name!r}; layers are "
                            f"{', '.join(l.name for l in self.layers)}")

    def consumers(self) -> dict[str, list[str]]:
        """Map each tensor name to the layers that read it."""
        out: dict[str, list[str]] = {"input": []}
        for layer in self.layers:
            out.setdefault(layer.name, [])
            for src in layer.inputs:
                out[src].append(layer.name)
        return out

    @property
    def macs(self) -> int:
        """Dense MACs of all conv and fc layers."""
        return sum(layer.macs for layer in self.layers)

    @property
    def conv_macs(self) -> int:
        """Dense MACs of the conv layers only."""
        return sum(layer.macs for layer in self.layers if layer.op == "conv")


def _conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


@dataclass
class NetworkBuilder:
    """Builds a :class:`Network`, inferring shapes and validating them.

    Each method appends a layer that reads ``inputs`` (default: the last layer
    added) and returns the new layer's name.
    """

    name: str
    input_shape: Shape
    _layers: list[Layer] = field(default_factory=list)
    _shapes: dict[str, Shape] = field(default_factory=dict)
    _last: str = "input"

    def __post_init__(self) -> None:
        h, w, c = self.input_shape
        if min(h, w, c) < 1:
            raise WorkloadError(f"network {self.name!r}: input shape must be positive, got {self.input_shape!r}")
        self._shapes["input"] = tuple(self.input_shape)

    def _src(self, inputs: str | tuple[str, ...] | None) -> tuple[str, ...]:
        if inputs is None:
            return (self._last,)
        if isinstance(inputs, str):
            return (inputs,)
        return tuple(inputs)

    def _one(self, name: str, inputs) -> str:
        src = self._src(inputs)
        if len(src) != 1:
            raise WorkloadError(f"layer {name!r}: takes exactly one input, got {len(src)}: {src!r}")
        return src[0]

    @staticmethod
    def _check_activation(name: str, activation) -> None:
        if activation not in ACTIVATIONS:
            raise WorkloadError(f"layer {name!r}: activation must be one of {ACTIVATIONS!r}, got {activation!r}")

    def _add(self, layer: Layer) -> str:
        self._layers.append(layer)
        self._shapes[layer.name] = layer.out_shape
        self._last = layer.name
        return layer.name

    def _shape(self, layer_name: str, src: str) -> Shape:
        if src not in self._shapes:
            raise WorkloadError(f"network {self.name!r}, layer {layer_name!r}: unknown input {src!r}")
        return self._shapes[src]

    def conv(self, name: str, out_channels: int, kernel: int | tuple[int, int], *, stride: int = 1,
             padding: int = 0, groups: int = 1, activation: str | None = "relu", bias: bool = True,
             inputs: str | None = None) -> str:
        """Append a convolution (groups > 1 for grouped / depthwise)."""
        src = self._one(name, inputs)
        h, w, c = self._shape(name, src)
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        self._check_activation(name, activation)
        if out_channels < 1 or kh < 1 or kw < 1 or stride < 1 or padding < 0 or groups < 1:
            raise WorkloadError(
                f"layer {name!r}: out_channels, kernel, stride and groups must be >= 1 and padding >= 0, got "
                f"out_channels={out_channels!r} kernel={(kh, kw)!r} stride={stride!r} padding={padding!r} "
                f"groups={groups!r}")
        if c % groups or out_channels % groups:
            raise WorkloadError(f"layer {name!r}: groups={groups} must divide in_channels={c} and "
                                f"out_channels={out_channels}")
        ho, wo = _conv_out(h, kh, stride, padding), _conv_out(w, kw, stride, padding)
        if ho < 1 or wo < 1:
            raise WorkloadError(f"layer {name!r}: kernel {kh}x{kw} with padding {padding} does not fit the "
                                f"{h}x{w} input")
        return self._add(Layer(name=name, op="conv", inputs=(src,), in_shapes=((h, w, c),),
                               out_shape=(ho, wo, out_channels), kernel=(kh, kw), stride=stride,
                               padding=padding, groups=groups, activation=activation, bias=bias))

    def fc(self, name: str, out_features: int, *, activation: str | None = "relu", inputs: str | None = None) -> str:
        """Append a fully connected layer over the flattened input."""
        src = self._one(name, inputs)
        self._check_activation(name, activation)
        shape = self._shape(name, src)
        if out_features < 1:
            raise WorkloadError(f"layer {name!r}: out_features must be >= 1, got {out_features!r}")
        return self._add(Layer(name=name, op="fc", inputs=(src,), in_shapes=(shape,),
                               out_shape=(1, 1, out_features), activation=activation))

    def _pool(self, op: str, name: str, kernel: int, stride: int, padding: int, inputs) -> str:
        src = self._one(name, inputs)
        h, w, c = self._shape(name, src)
        if (kernel < 1 or stride < 1 or padding < 0 or 2 * padding > kernel or kernel > h + 2 * padding
                or kernel > w + 2 * padding):
            raise WorkloadError(f"layer {name!r}: {op} kernel={kernel!r} stride={stride!r} padding={padding!r} "
                                f"does not fit the {h}x{w} input")
        ho, wo = _conv_out(h, kernel, stride, padding), _conv_out(w, kernel, stride, padding)
        return self._add(Layer(name=name, op=op, inputs=(src,), in_shapes=((h, w, c),), out_shape=(ho, wo, c),
                               kernel=(kernel, kernel), stride=stride, padding=padding, bias=False))

    def maxpool(self, name: str, kernel: int = 2, stride: int = 2, padding: int = 0, *, inputs: str | None = None) -> str:
        """Append a max pool."""
        return self._pool("maxpool", name, kernel, stride, padding, inputs)

    def avgpool(self, name: str, kernel: int | None = None, stride: int | None = None, padding: int = 0, *,
                inputs: str | None = None) -> str:
        """Append an average pool; ``kernel=None`` is a global average pool."""
        src = self._one(name, inputs)
        h, w, _ = self._shape(name, src)
        if kernel is None and h != w:
            raise WorkloadError(f"layer {name!r}: global average pool needs a square input, got {h}x{w}")
        k = h if kernel is None else kernel
        return self._pool("avgpool", name, k, k if stride is None else stride, padding, inputs)

    def add(self, name: str, inputs: tuple[str, str], *, activation: str | None = None) -> str:
        """Append an element-wise (residual) add of two equal-shape tensors."""
        self._check_activation(name, activation)
        if len(inputs) != 2:
            raise WorkloadError(f"layer {name!r}: add takes exactly two inputs, got {inputs!r}")
        a, b = (self._shape(name, s) for s in inputs)
        if a != b:
            raise WorkloadError(f"layer {name!r}: add inputs {inputs[0]!r} {a!r} and {inputs[1]!r} {b!r} "
                                "differ in shape")
        return self._add(Layer(name=name, op="add", inputs=tuple(inputs), in_shapes=(a, b), out_shape=a,
                               activation=activation, bias=False))

    def concat(self, name: str, inputs: tuple[str, ...]) -> str:
        """Append a channel concatenation."""
        shapes = tuple(self._shape(name, s) for s in inputs)
        if len({s[:2] for s in shapes}) != 1:
            raise WorkloadError(f"layer {name!r}: concat inputs differ in height/width: {shapes!r}")
        out = (shapes[0][0], shapes[0][1], sum(s[2] for s in shapes))
        return self._add(Layer(name=name, op="concat", inputs=tuple(inputs), in_shapes=shapes, out_shape=out,
                               bias=False))

    def host(self, name: str, host_op: str, inputs: tuple[str, ...], out_shape: Shape, *, reason: str = "") -> str:
        """Append a host operation ``host_op`` (values supplied by a trace) of shape ``out_shape``.

        ``inputs`` are the layers it depends on (may be empty for a constant-only branch);
        ``reason`` says why it runs on the host (:attr:`Layer.host_reason`).
        """
        shapes = tuple(self._shape(name, s) for s in inputs)
        if len(out_shape) != 3 or min(out_shape) < 1:
            raise WorkloadError(f"layer {name!r}: host output shape must be three positive ints, got {out_shape!r}")
        return self._add(Layer(name=name, op="host", inputs=tuple(inputs), in_shapes=shapes or ((1, 1, 1),),
                               out_shape=tuple(int(v) for v in out_shape), bias=False, host_op=host_op,
                               host_reason=str(reason)))

    @property
    def last(self) -> str:
        """Name of the most recently added layer."""
        return self._last

    def build(self) -> Network:
        """Return the finished, validated network."""
        return Network(self.name, tuple(self.input_shape), tuple(self._layers))
