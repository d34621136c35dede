"""ONNX import: a model's graph as a :class:`Network`, its real data as a :class:`Trace`.

:func:`from_onnx` maps an ONNX graph (NCHW, batch 1) onto sparsesim layers (HWC),
takes the weights from the model's initializers and runs the model once in
onnxruntime on an input image, capturing the real input of every conv and fc
layer. :func:`load_user_network` picks the importer from a file's suffix
(``.onnx`` or a SCALE-Sim ``.csv`` topology); the CLI calls it.

Needs the optional extra ``pip install 'sparsesim[onnx]'`` (onnx, onnxruntime);
both are imported only when a model is loaded. The mapping rules, the Q8.8
quantization of captured data and the list of supported ops are documented in
``docs/bring_your_own.md``; in short:

* ``Conv`` -> ``conv`` (groups, one stride, one symmetric padding; dilation
  ``d > 1`` is run as the zero-stuffed kernel of size ``d (k - 1) + 1``);
  a ``BatchNormalization`` that alone reads a conv's output is folded into its
  weights and bias in float64, before quantization.
* ``Relu`` / ``Clip(0, 6)`` / ``Clip(0, inf)`` -> the activation of the conv,
  fc or add that produces their input, which they must be the only reader of.
* ``MaxPool`` / ``AveragePool`` / ``GlobalAveragePool`` -> pools; ``Add`` of two
  feature maps -> ``add``; ``Add`` of a constant -> folded into the producing
  conv/fc bias; ``Concat`` on the channel axis -> ``concat``;
  ``Gemm`` / ``MatMul`` -> ``fc`` (weights re-ordered from the CHW flatten of
  ONNX to sparsesim's HWC flatten).
* ``Flatten`` / ``Reshape`` / ``Identity`` pass their input through when they
  only flatten a feature map for a ``Gemm`` / ``MatMul`` or keep the shape.
* Every other op raises :class:`WorkloadError` naming the op type and node.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from ._errors import SparsesimError, TraceError, WorkloadError
from ._network import Network, NetworkBuilder, Shape
from ._synthetic import image_input, normalized_image
from ._trace import Trace, quantize_q88

__all__ = ["SUPPORTED_ONNX_OPS", "USER_NETWORK_SUFFIXES", "OnnxImport", "from_onnx", "import_onnx", "load_user_network"]

#: ONNX op types (default domain) :func:`from_onnx` maps; ``Constant`` only feeds attributes-like inputs.
SUPPORTED_ONNX_OPS = ("Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Flatten",
                      "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Relu", "Reshape")
#: File suffixes :func:`load_user_network` accepts.
USER_NETWORK_SUFFIXES = (".onnx", ".csv")

#: ReLU6's upper bound, in real units.
_RELU6_MAX = 6.0
_LAYER_OPS_WITH_ACTIVATION = ("conv", "fc", "add")


def load_user_network(path: str | os.PathLike, *,
                      image: str | os.PathLike | np.ndarray | None = None) -> tuple[Network, Trace | None]:
    """Load a user's network file, choosing the importer by suffix.

    Parameters
    ----------
    path : ``.onnx`` model (:func:`from_onnx`, returns its trace) or SCALE-Sim
        topology ``.csv`` (:func:`~workloads.from_scalesim_csv`, returns no trace:
        the run uses the usual propagated or synthetic data).
    image : input image for an ONNX model (see :func:`from_onnx`); not allowed for ``.csv``.

    Raises
    ------
    WorkloadError : unknown suffix (the message lists the allowed ones), a missing
        file, or any import error.
    """
    from ._scalesim import from_scalesim_csv

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in USER_NETWORK_SUFFIXES:
        raise WorkloadError(f"{path}: unknown network file type {p.suffix!r}; expected one of "
                            f"{', '.join(USER_NETWORK_SUFFIXES)} (ONNX model or SCALE-Sim topology)")
    if suffix == ".onnx":
        return from_onnx(p, image=image)
    if image is not None:
        raise WorkloadError(f"{path}: an input image only applies to ONNX models; a SCALE-Sim topology has "
                            "no weights to run it through")
    return from_scalesim_csv(p), None


def from_onnx(path: str | os.PathLike, *, image: str | os.PathLike | np.ndarray | None = None,
              name: str | None = None) -> tuple[Network, Trace]:
    """Import an ONNX model with its real weights and activations.

    Parameters
    ----------
    path : ``.onnx`` file. One float32 input of shape ``(N, C, H, W)`` with ``N``
        1 or symbolic and fixed ``C, H, W``.
    image : the input the activations are captured on. ``None``: the bundled
        photo (:func:`~workloads.image_input`, needs ``C`` of 1 or 3). A path: an
        image file read with ``matplotlib.image.imread``, center-cropped, area-resized
        and ImageNet-normalised exactly like the bundled photo. An array: ``(H, W, C)``
        (sparsesim layout), int16 taken as Q8.8, float as real (already normalised) values.
    name : network name; default the file's stem.

    Returns
    -------
    ``(network, trace)``: the trace holds the Q8.8 image, every conv/fc layer's
    weights, biases and captured input, and saturation counts per array key.
    The model is run on exactly the Q8.8 image (its real value ``q / 256``).

    Raises
    ------
    WorkloadError : unreadable file, unsupported op or attribute (naming the node),
        missing optional dependencies.
    """
    return import_onnx(path, image=image, name=name).as_pair()


# -- import ---------------------------------------------------------------------------------------------------

@dataclass
class _Ref:
    """What an ONNX tensor is in sparsesim terms."""

    layer: str               # producing layer, or "input"
    shape: Shape             # (H, W, C) in sparsesim layout
    rank: int                # ONNX rank: 4 (1, C, H, W) or 2 (1, F)
    chw_flat: bool = False   # rank 2 flattening a (C, H, W) map in CHW order, H*W > 1 and C > 1


@dataclass
class _Pending:
    """A layer being assembled; activations and batch norms are fused in later."""

    name: str
    node: str                          # ONNX node label, for messages
    op: str
    inputs: tuple[str, ...]
    kw: dict
    onnx_out: str                      # ONNX tensor holding the layer's (fused) output
    in_tensor: str = ""                # conv/fc: the ONNX tensor it reads (captured)
    in_ref: _Ref | None = None
    activation: str | None = None
    weight: np.ndarray | None = None   # float64 (C_out, kh, kw, C_in/groups)
    bias: np.ndarray | None = None     # float64 (C_out,)


@dataclass
class OnnxImport:
    """Everything :func:`import_onnx` learned; tests use the float data and tensor names."""

    network: Network
    trace: Trace
    float_weights: dict[str, np.ndarray] = field(default_factory=dict)
    float_biases: dict[str, np.ndarray] = field(default_factory=dict)
    input_tensor: dict[str, str] = field(default_factory=dict)    # conv/fc layer -> ONNX tensor it reads
    output_tensor: dict[str, str] = field(default_factory=dict)   # layer -> ONNX tensor of its output

    def as_pair(self) -> tuple[Network, Trace]:
        return self.network, self.trace


def _require(where: str):
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise WorkloadError(f"{where}: ONNX import needs the optional extra: pip install 'sparsesim[onnx]' "
                            f"({exc})") from None
    return onnx, onnxruntime


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")


def _fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, gamma, beta, mean, var,
                    eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``y = gamma (conv(x) - mean) / sqrt(var + eps) + beta`` into the conv, in float64.

    ``weight`` is ``(C_out, kh, kw, C_in/groups)``; returns the new weights and bias.
    A weight that is exactly 0 stays exactly 0, so pruning survives the fold.
    """
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + float(eps))
    b = np.zeros(weight.shape[0]) if bias is None else bias
    return (weight * scale[:, None, None, None],
            (b - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64))


def _dilate(w: np.ndarray, dilations) -> np.ndarray:
    """Zero-stuff an OIHW kernel: dilation ``d`` turns size ``k`` into ``d (k - 1) + 1``."""
    dh, dw = dilations
    cout, cin, kh, kw = w.shape
    out = np.zeros((cout, cin, dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def import_onnx(path: str | os.PathLike, *, image=None, name: str | None = None) -> OnnxImport:
    where = str(path)
    onnx, ort = _require(where)
    model = _load(onnx, path)
    try:
        return _Importer(onnx, ort, model, where, image, name or _sanitize(Path(path).stem) or "onnx_model").run()
    except SparsesimError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # A damaged file that still parses as protobuf: undefined tensor types, initializers whose data
        # does not match their shape, names that are not UTF-8, ... (kept as __cause__ for --debug).
        raise WorkloadError(f"{where}: not a readable ONNX model: malformed content "
                            f"({type(exc).__name__}: {exc})") from exc


def _load(onnx, path):
    p = Path(path)
    try:
        if not p.exists():
            raise WorkloadError(f"{path}: file not found")
        if not p.is_file():
            raise WorkloadError(f"{path}: not a file")
        empty = p.stat().st_size == 0
    except OSError as exc:   # e.g. a file name too long for the file system
        raise WorkloadError(f"{path}: cannot read the model: {exc.strerror or exc}") from None
    if empty:
        raise WorkloadError(f"{path}: not a readable ONNX model: the file is empty")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf DecodeError, onnx's own errors, external-data OSErrors: all mean the same
        raise WorkloadError(f"{path}: not a readable ONNX model: {exc}") from None
    if not model.graph.node:
        raise WorkloadError(f"{path}: not a readable ONNX model: the graph has no nodes")
    return model


class _Importer:
    """One import: checks the graph, runs it in onnxruntime, maps each node in graph order
    (one ``op_<OpType>`` method per supported op) and quantizes the result into a Trace."""

    def __init__(self, onnx, ort, model, where: str, image, net_name: str) -> None:
        self.onnx, self.ort, self.where, self.image_arg, self.net_name = onnx, ort, where, image, net_name
        self.model = model
        self.graph = model.graph
        self.labels = [n.name or f"{n.op_type}#{i}" for i, n in enumerate(self.graph.node)]
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.refs: dict[str, _Ref] = {}
        self.pending: list[_Pending] = []
        self.by_out: dict[str, _Pending] = {}
        self.names: set[str] = {"input"}
        self.consumers: dict[str, list[str]] = {}
        self.saturated: dict[str, int] = {}

    # -- helpers ------------------------------------------------------------------------------------------
    def fail(self, label: str, msg: str) -> NoReturn:
        raise WorkloadError(f"{self.where}: node {label!r}: {msg}")

    def _attrs(self, node) -> dict:
        out = {}
        for a in node.attribute:
            v = self.onnx.helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def _unique(self, text: str, fallback: str) -> str:
        base = _sanitize(text) or fallback
        if base == "input":
            base = "input_"
        name, i = base, 2
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def _onnx_shape(self, tensor: str) -> tuple[int, ...]:
        if tensor == self.input_name:
            return self.input_nchw
        if tensor in self.values:
            return tuple(self.values[tensor].shape)
        raise WorkloadError(f"{self.where}: tensor {tensor!r} has no value")  # pragma: no cover - all outputs run

    def _hwc(self, label: str, shape: tuple[int, ...]) -> tuple[Shape, int]:
        if len(shape) == 4 and shape[0] == 1:
            return (shape[2], shape[3], shape[1]), 4
        if len(shape) == 2 and shape[0] == 1:
            return (1, 1, shape[1]), 2
        self.fail(label, f"output shape {list(shape)} is neither (1, C, H, W) nor (1, F)")

    def _feature(self, label: str, node, i: int, *, flat_ok: bool = False, rank: int | None = None) -> _Ref:
        t = node.input[i] if i < len(node.input) else ""
        if t in self.consts:
            self.fail(label, f"input {t!r} is a constant; {node.op_type} needs a feature map there")
        ref = self.refs.get(t)
        if ref is None:
            self.fail(label, f"input {t!r} is not produced by a supported node")
        if ref.chw_flat and not flat_ok:
            self.fail(label, f"input {t!r} is a flattened (C, H, W) feature map; only Gemm/MatMul may read "
                             "a Flatten/Reshape of a feature map")
        if rank is not None and ref.rank != rank:
            self.fail(label, f"input {t!r} has rank {ref.rank}; {node.op_type} needs rank {rank}")
        return ref

    def _const(self, label: str, node, i: int, what: str) -> np.ndarray:
        t = node.input[i]
        if t not in self.consts:
            self.fail(label, f"{what} ({t!r}) must be an initializer or a Constant; computed {what} are not "
                             "supported")
        return np.asarray(self.consts[t], dtype=np.float64)

    def _optional_const(self, label: str, node, i: int, what: str) -> np.ndarray | None:
        if i < len(node.input) and node.input[i]:
            return self._const(label, node, i, what)
        return None

    def _only_first_output(self, label: str, node) -> None:
        for extra in node.output[1:]:
            if extra and self.consumers.get(extra):
                self.fail(label, f"output {extra!r} of {node.op_type} is read by another node; only the first "
                                 "output is supported")

    def _padding(self, label: str, a: dict, kernel: tuple[int, int], stride: int, hw: tuple[int, int]) -> int:
        auto = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "NOTSET":
            pads = list(a.get("pads", [0, 0, 0, 0]))
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k in zip(hw, kernel):
                total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
                small = total // 2
                begin.append(small if auto == "SAME_UPPER" else total - small)
                end.append(total - begin[-1])
            pads = begin + end
        else:
            self.fail(label, f"auto_pad {auto!r} is not supported")
        if len(pads) != 4 or len(set(pads)) != 1:
            self.fail(label, f"pads {pads} are not the same on all four sides; sparsesim supports one symmetric "
                             "padding (pads [p, p, p, p])")
        return int(pads[0])

    def _stride(self, label: str, a: dict) -> int:
        strides = list(a.get("strides", [1, 1]))
        if len(strides) != 2 or strides[0] != strides[1]:
            self.fail(label, f"strides {strides} differ between height and width; sparsesim has one stride")
        return int(strides[0])

    def _new(self, label: str, node, op: str, inputs: tuple[str, ...], kw: dict, **extra) -> _Pending:
        p = _Pending(name=self._unique(node.name, f"{node.op_type.lower()}_{len(self.pending)}"), node=label,
                     op=op, inputs=inputs, kw=kw, onnx_out=node.output[0], **extra)
        shape, rank = self._hwc(label, self._onnx_shape(node.output[0]))
        self.pending.append(p)
        self.by_out[p.onnx_out] = p
        self.refs[p.onnx_out] = _Ref(p.name, shape, rank)
        return p

    def _fuse_target(self, label: str, node, what: str, ops: tuple[str, ...], src_index: int = 0) -> _Pending:
        """The layer producing ``node.input[src_index]``, into which ``node`` is fused (must be its only reader)."""
        src = node.input[src_index]
        p = self.by_out.get(src)
        if p is None or p.op not in ops:
            producer = f"layer {p.name!r} ({p.op})" if p is not None else "no conv, fc or add"
            self.fail(label, f"{what} is fused into the {'/'.join(ops)} that produces its input {src!r}, but "
                             f"that input comes from {producer}")
        if p.activation is not None:
            self.fail(label, f"{what} follows {p.node!r}, which already has activation {p.activation!r}")
        readers = self.consumers.get(src, [])
        if len(readers) != 1:
            self.fail(label, f"{what} is fused into {p.node!r}, but its input {src!r} is also read by "
                             f"{', '.join(repr(r) for r in readers if r != label)}; the pre-{what} tensor cannot "
                             "be shared")
        del self.by_out[src]
        p.onnx_out = node.output[0]
        self.by_out[p.onnx_out] = p
        self.refs[p.onnx_out] = self.refs[src]
        return p

    # -- ops ----------------------------------------------------------------------------------------------
    def op_Conv(self, label, node, a):
        x = self._feature(label, node, 0, rank=4)
        w = self._const(label, node, 1, "weights")
        if w.ndim != 4:
            self.fail(label, f"weights have shape {list(w.shape)}; only 2-D convolutions are supported")
        group = int(a.get("group", 1))
        stride = self._stride(label, a)
        dil = list(a.get("dilations", [1, 1]))
        if len(dil) != 2 or min(dil) < 1:
            self.fail(label, f"dilations {dil} are not two positive ints")
        if dil != [1, 1]:
            w = _dilate(w, dil)
        kernel = (w.shape[2], w.shape[3])
        pad = self._padding(label, a, kernel, stride, x.shape[:2])
        bias = self._optional_const(label, node, 2, "bias")
        self._new(label, node, "conv", (x.layer,),
                  dict(out_channels=w.shape[0], kernel=kernel, stride=stride, padding=pad, groups=group),
                  in_tensor=node.input[0], in_ref=x, weight=w.transpose(0, 2, 3, 1).copy(),
                  bias=None if bias is None else bias.reshape(-1))

    def op_BatchNormalization(self, label, node, a):
        self._only_first_output(label, node)
        if a.get("training_mode", 0):
            self.fail(label, "training_mode=1 is not supported; export the model in eval mode")
        gamma, beta, mean, var = (self._const(label, node, i, w) for i, w in
                                  ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        p = self._fuse_target(label, node, "BatchNormalization", ("conv",))
        p.weight, p.bias = _fold_batchnorm(p.weight, p.bias, gamma, beta, mean, var, a.get("epsilon", 1e-5))

    def op_Relu(self, label, node, a):
        self._fuse_target(label, node, "Relu", _LAYER_OPS_WITH_ACTIVATION).activation = "relu"

    def op_Clip(self, label, node, a):
        lo = a.get("min", -np.inf)
        hi = a.get("max", np.inf)
        lo_c = self._optional_const(label, node, 1, "min")
        hi_c = self._optional_const(label, node, 2, "max")
        lo = float(lo_c.reshape(-1)[0]) if lo_c is not None and lo_c.size == 1 else lo
        hi = float(hi_c.reshape(-1)[0]) if hi_c is not None and hi_c.size == 1 else hi
        if lo == 0.0 and hi == _RELU6_MAX:
            act = "relu6"
        elif lo == 0.0 and hi == np.inf:
            act = "relu"
        else:
            self.fail(label, f"Clip({lo:g}, {hi:g}) is not supported; only Clip(0, 6) (ReLU6) and Clip(0, inf) "
                             "(ReLU)")
        self._fuse_target(label, node, "Clip", _LAYER_OPS_WITH_ACTIVATION).activation = act

    def _pool_common(self, label, node, a) -> tuple[_Ref, int, int, int]:
        self._only_first_output(label, node)
        x = self._feature(label, node, 0, rank=4)
        k = list(a.get("kernel_shape", []))
        if len(k) != 2 or k[0] != k[1]:
            self.fail(label, f"kernel_shape {k} is not square; sparsesim pools are k x k")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(label, f"dilations {list(a['dilations'])} are not supported for pooling")
        stride = self._stride(label, a)
        return x, int(k[0]), stride, self._padding(label, a, (k[0], k[1]), stride, x.shape[:2])

    def op_MaxPool(self, label, node, a):
        x, k, s, p = self._pool_common(label, node, a)
        self._new(label, node, "maxpool", (x.layer,), dict(kernel=k, stride=s, padding=p))

    def op_AveragePool(self, label, node, a):
        x, k, s, p = self._pool_common(label, node, a)
        if p > 0 and a.get("count_include_pad", 0):
            self.fail(label, "count_include_pad=1 with padding is not supported; sparsesim's average pool "
                             "does not count padded cells")
        self._new(label, node, "avgpool", (x.layer,), dict(kernel=k, stride=s, padding=p))

    def op_GlobalAveragePool(self, label, node, a):
        x = self._feature(label, node, 0, rank=4)
        self._new(label, node, "avgpool", (x.layer,), dict(kernel=None))

    def op_Add(self, label, node, a):
        if len(node.input) != 2:
            self.fail(label, f"Add has {len(node.input)} inputs, expected 2")
        const = [t in self.consts for t in node.input]
        if all(const):
            self.fail(label, "both inputs are constants")
        if any(const):
            self._add_constant(label, node, const.index(False), const.index(True))
            return
        x, y = (self._feature(label, node, i) for i in (0, 1))
        if x.shape != y.shape or x.rank != y.rank:
            self.fail(label, f"inputs have shapes {list(self._onnx_shape(node.input[0]))} and "
                             f"{list(self._onnx_shape(node.input[1]))}; broadcasting adds are not supported")
        self._new(label, node, "add", (x.layer, y.layer), {})

    def _add_constant(self, label, node, fi: int, ci: int) -> None:
        """``Add(layer_output, constant)`` where the constant is per channel: a bias."""
        shape = self._onnx_shape(node.input[fi])
        c = self._const(label, node, ci, "addend")
        try:
            full = np.broadcast_to(c, shape)
        except ValueError:
            self.fail(label, f"constant of shape {list(c.shape)} does not broadcast to {list(shape)}")
        per_channel = full[(0, slice(None)) + (0,) * (len(shape) - 2)]
        if not np.array_equal(full, np.broadcast_to(per_channel.reshape((1, -1) + (1,) * (len(shape) - 2)),
                                                    shape)):
            self.fail(label, "adding a constant that varies over positions is not supported (only a per-channel "
                             "bias)")
        p = self._fuse_target(label, node, "Add of a constant", ("conv", "fc"), fi)
        p.bias = per_channel.astype(np.float64) + (0.0 if p.bias is None else p.bias)

    def op_Concat(self, label, node, a):
        refs = [self._feature(label, node, i) for i in range(len(node.input))]
        rank = refs[0].rank
        if any(r.rank != rank for r in refs):
            self.fail(label, "inputs have different ranks")
        axis = int(a.get("axis", 1))
        if axis % rank != 1:
            self.fail(label, f"axis {axis} is not the channel axis (1); sparsesim concatenates channels only")
        self._new(label, node, "concat", tuple(r.layer for r in refs), {})

    def op_Gemm(self, label, node, a):
        if a.get("transA", 0):
            self.fail(label, "transA=1 is not supported")
        x = self._feature(label, node, 0, flat_ok=True, rank=2)
        b = self._const(label, node, 1, "weights")
        if b.ndim != 2:
            self.fail(label, f"weights have shape {list(b.shape)}, expected 2-D")
        w = (b if a.get("transB", 0) else b.T) * float(a.get("alpha", 1.0))
        c = self._optional_const(label, node, 2, "bias")
        bias = None if c is None else float(a.get("beta", 1.0)) * np.broadcast_to(c, (1, w.shape[0]))[0]
        self._fc(label, node, x, w, bias)

    def op_MatMul(self, label, node, a):
        x = self._feature(label, node, 0, flat_ok=True, rank=2)
        b = self._const(label, node, 1, "weights")
        if b.ndim != 2:
            self.fail(label, f"weights have shape {list(b.shape)}, expected 2-D")
        self._fc(label, node, x, b.T, None)

    def _fc(self, label, node, x: _Ref, w: np.ndarray, bias) -> None:
        h, wd, c = x.shape
        m, k = w.shape
        if k != h * wd * c:
            self.fail(label, f"weights have {k} inputs, but the input has {h * wd * c} values")
        if x.chw_flat:  # ONNX flattened (C, H, W); sparsesim flattens (H, W, C)
            w = w.reshape(m, c, h, wd).transpose(0, 2, 3, 1)
        self._new(label, node, "fc", (x.layer,), dict(out_features=m), in_tensor=node.input[0], in_ref=x,
                  weight=np.ascontiguousarray(w).reshape(m, 1, 1, k), bias=None if bias is None else
                  np.asarray(bias, np.float64).reshape(-1))

    def op_Identity(self, label, node, a):
        self.refs[node.output[0]] = self._feature(label, node, 0, flat_ok=True)

    def op_Flatten(self, label, node, a):
        self._reshape(label, node)

    def op_Reshape(self, label, node, a):
        self._reshape(label, node)

    def _reshape(self, label, node) -> None:
        x = self._feature(label, node, 0, flat_ok=True)
        src, dst = self._onnx_shape(node.input[0]), self._onnx_shape(node.output[0])
        n = math.prod(src)
        if dst == src:
            self.refs[node.output[0]] = x
        elif len(dst) == 2 and dst[0] == 1 and dst[1] == n:
            h, w, c = x.shape
            self.refs[node.output[0]] = (x if x.rank == 2 else
                                         _Ref(x.layer, x.shape, 2, chw_flat=h * w > 1 and c > 1))
        elif len(dst) == 4 and dst[0] == 1 and dst[2:] == (1, 1) and x.rank == 2 and not x.chw_flat:
            self.refs[node.output[0]] = _Ref(x.layer, x.shape, 4)
        else:
            self.fail(label, f"{node.op_type} from {list(src)} to {list(dst)} is not supported; only flattening "
                             "(1, C, H, W) -> (1, C*H*W) before Gemm/MatMul, (1, F) <-> (1, F, 1, 1) and "
                             "shape-preserving reshapes are")

    def op_Constant(self, label, node, a):
        pass  # its value comes from the onnxruntime run (see run())

    # -- driver -------------------------------------------------------------------------------------------
    def _prepare(self):
        onnx = self.onnx
        g = self.graph
        for i, node in enumerate(g.node):
            if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_ONNX_OPS:
                op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                raise WorkloadError(f"{self.where}: node {self.labels[i]!r}: op type {op!r} is not supported; "
                                    f"supported: {', '.join(SUPPORTED_ONNX_OPS)}")
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(self.labels[i])
        init_names = {t.name for t in g.initializer}
        inputs = [v for v in g.input if v.name not in init_names]
        if len(inputs) != 1:
            raise WorkloadError(f"{self.where}: the model has {len(inputs)} inputs "
                                f"({', '.join(repr(v.name) for v in inputs)}); sparsesim needs exactly one image "
                                "input")
        inp = inputs[0]
        tt = inp.type.tensor_type
        if tt.elem_type != onnx.TensorProto.FLOAT:
            raise WorkloadError(f"{self.where}: input {inp.name!r} has element type "
                                f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; only FLOAT is supported")
        dims = list(tt.shape.dim)
        if len(dims) != 4:
            raise WorkloadError(f"{self.where}: input {inp.name!r} has rank {len(dims)}; expected (N, C, H, W)")
        if dims[0].HasField("dim_value") and dims[0].dim_value > 1:
            raise WorkloadError(f"{self.where}: input {inp.name!r} has batch size {dims[0].dim_value}; "
                                "sparsesim simulates one image (batch 1)")
        chw = []
        for d, what in zip(dims[1:], ("channels", "height", "width")):
            if not (d.HasField("dim_value") and d.dim_value > 0):
                raise WorkloadError(f"{self.where}: input {inp.name!r} has no fixed {what}; export the model "
                                    "with a fixed input size")
            chw.append(int(d.dim_value))
        dims[0].Clear()
        dims[0].dim_value = 1
        self.input_name = inp.name
        self.input_nchw = (1, *chw)
        self.input_hwc = (chw[1], chw[2], chw[0])
        try:
            onnx.shape_inference.infer_shapes(self.model, strict_mode=True)
        except Exception as exc:  # onnx raises several types (InferenceError, ValidationError, ...)
            raise WorkloadError(f"{self.where}: ONNX shape inference failed: {exc}") from None
        for t in g.initializer:
            self.consts[t.name] = onnx.numpy_helper.to_array(t)

    def _image(self) -> np.ndarray:
        shape = self.input_hwc
        img = self.image_arg
        if img is None:
            if shape[2] not in (1, 3):
                raise WorkloadError(f"{self.where}: the model input has {shape[2]} channels; the bundled photo "
                                    "gives 1 or 3; pass image= as an (H, W, C) array")
            return image_input(shape)
        if isinstance(img, np.ndarray):
            if img.shape != shape:
                raise WorkloadError(f"{self.where}: image array has shape {img.shape}; the model input needs "
                                    f"(H, W, C) = {shape}")
            if img.dtype == np.int16:
                return img.copy()
            if not np.issubdtype(img.dtype, np.floating):
                raise WorkloadError(f"{self.where}: image array has dtype {img.dtype}; pass int16 (Q8.8) or "
                                    "float (normalised real values)")
            real = img
        else:
            real = _read_image(img, shape)
        q, sat = quantize_q88(real, what=f"{self.where}: image", keep_nonzero=True)
        if sat:
            self.saturated["image"] = sat
        return q

    def _run_model(self, image_q: np.ndarray) -> None:
        onnx, ort = self.onnx, self.ort
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        have = {o.name for o in m.graph.output}
        for node in m.graph.node:
            for t in node.output:
                if t and t not in have:
                    m.graph.output.append(onnx.ValueInfoProto(name=t))
                    have.add(t)
        so = ort.SessionOptions()
        # NOTE: no graph optimizations: the captured tensors are the graph's own, not fused variants.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        x = (image_q.astype(np.float32) / np.float32(256.0)).transpose(2, 0, 1)[None]
        try:
            sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            outs = sess.run(names, {self.input_name: np.ascontiguousarray(x)})
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise WorkloadError(f"{self.where}: onnxruntime could not run the model: {exc}") from None
        self.values = dict(zip(names, (np.asarray(o) for o in outs)))
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self.values[node.output[0]]

    def run(self) -> OnnxImport:
        self._prepare()
        image_q = self.image_q = self._image()
        self._run_model(image_q)
        self.refs[self.input_name] = _Ref("input", self.input_hwc, 4)
        for node, label in zip(self.graph.node, self.labels):
            getattr(self, f"op_{node.op_type}")(label, node, self._attrs(node))
        return self._finish(image_q)

    def _finish(self, image_q: np.ndarray) -> OnnxImport:
        b = NetworkBuilder(self.net_name, self.input_hwc)
        for p in self.pending:
            try:
                if p.op == "conv":
                    b.conv(p.name, inputs=p.inputs[0], activation=p.activation, bias=p.bias is not None, **p.kw)
                elif p.op == "fc":
                    b.fc(p.name, p.kw["out_features"], activation=p.activation, inputs=p.inputs[0])
                elif p.op == "maxpool":
                    b.maxpool(p.name, inputs=p.inputs[0], **p.kw)
                elif p.op == "avgpool":
                    b.avgpool(p.name, inputs=p.inputs[0], **p.kw)
                elif p.op == "add":
                    b.add(p.name, p.inputs, activation=p.activation)
                else:
                    b.concat(p.name, p.inputs)
            except WorkloadError as exc:
                raise WorkloadError(f"{self.where}: node {p.node!r}: {exc}") from None
        net = b.build()
        out = OnnxImport(network=net, trace=Trace(network=net.name, image=image_q))
        tr = out.trace
        for p, layer in zip(self.pending, net.layers):
            want = self.refs[p.onnx_out].shape
            if layer.out_shape != want:
                raise WorkloadError(f"{self.where}: node {p.node!r}: sparsesim computes output shape "
                                    f"{layer.out_shape} (H, W, C), onnxruntime gives {want} (ceil_mode or "
                                    "an unsupported attribute?)")
            out.output_tensor[p.name] = p.onnx_out
            if p.op not in ("conv", "fc"):
                continue
            out.float_weights[p.name] = p.weight
            out.input_tensor[p.name] = p.in_tensor
            tr.weights[p.name] = self._q(p.weight, f"weights/{p.name}", p.node)
            if p.bias is not None:
                out.float_biases[p.name] = p.bias
                tr.biases[p.name] = self._q(p.bias, f"bias/{p.name}", p.node)
            tr.inputs[p.name] = self._q(self._captured(p), f"input/{p.name}", p.node)
        tr.saturated = dict(self.saturated)
        return out

    def _captured(self, p: _Pending) -> np.ndarray:
        """The float input of conv/fc ``p`` as onnxruntime computed it, in (H, W, C)."""
        if p.in_tensor == self.input_name:
            return self.image_q / 256.0
        x = self.values[p.in_tensor]
        ref = p.in_ref
        h, w, c = ref.shape
        if x.ndim == 4:
            return x[0].transpose(1, 2, 0)
        if ref.chw_flat:
            return x.reshape(c, h, w).transpose(1, 2, 0)
        return x.reshape(h, w, c)

    def _q(self, a: np.ndarray, key: str, label: str) -> np.ndarray:
        try:
            q, sat = quantize_q88(a, what=f"{self.where}: node {label!r}: {key}", keep_nonzero=True)
        except TraceError as exc:
            raise WorkloadError(str(exc)) from None
        if sat:
            self.saturated[key] = sat
        return q


def _read_image(path: str | os.PathLike, shape: Shape) -> np.ndarray:
    """An image file as normalised real values of ``shape`` (same steps as the bundled photo)."""
    import matplotlib.image as mimage

    p = Path(path)
    if not p.is_file():
        raise WorkloadError(f"{path}: image file not found")
    try:
        img = np.asarray(mimage.imread(p))
    except Exception as exc:  # Pillow and matplotlib raise various types for unreadable files
        raise WorkloadError(f"{path}: not a readable image: {exc}") from None
    if img.dtype == np.uint8:
        img = img / 255.0
    elif img.dtype == np.uint16:
        img = img / 65535.0
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] in (1, 2):  # gray, gray + alpha
        img = np.repeat(img[..., :1], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] in (3, 4):  # RGB, RGBA
        img = img[..., :3]
    else:
        raise WorkloadError(f"{path}: image has shape {img.shape}; expected gray, RGB or RGBA")
    h, w, c = shape
    if c not in (1, 3):
        raise WorkloadError(f"{path}: the model input has {c} channels; an image file gives 1 or 3")
    return normalized_image(img, h, w, c)
