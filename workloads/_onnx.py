"""ONNX import: a model's graph as a :class:`Network`, its real data as a :class:`Trace`.

:func:`from_onnx` maps an ONNX graph onto sparsesim layers (HWC), takes the
weights from the model's initializers and runs the model once in onnxruntime on
an input image. Every conv and fc layer gets the tensor onnxruntime computed for
its input, Q8.8-quantized. :func:`load_user_network` picks the importer from a
file's suffix (``.onnx`` or a SCALE-Sim ``.csv`` topology); the CLI calls it.

Needs the optional extra ``pip install 'sparsesim[onnx]'`` (onnx, onnxruntime);
both are imported only when a model is loaded. The rules are documented in
``docs/bring_your_own.md``; in short:

* ``Conv`` (2-D or 1-D, any groups, dilation as a zero-stuffed kernel) -> ``conv``;
  ``Gemm`` / ``MatMul`` by a constant matrix -> ``fc`` (or a 1x1 ``conv`` over the
  tokens of a ``(N, T, F)`` input). ``BatchNormalization`` and ``Mul`` / ``Div`` /
  ``Add`` / ``Sub`` by a per-channel constant that alone read a conv/fc output are
  folded into its weights and bias in float64.
* ``Relu`` / ``Clip(0, 6)`` / ``Clip(0, inf)`` that alone read a conv, fc or add
  output become its activation (NullHop's PRE). 2x2 max pools are fused as usual;
  other pools, adds of two equal maps and channel concats of sparsesim-computed
  maps are sparsesim's host layers.
* Everything else runs on the host as a ``host`` layer whose values are
  onnxruntime's: other activations (a conv before them then writes its output
  dense), written-out activations (``x * HardSigmoid(x)``, ``x * Sigmoid(x)``,
  ``x * Clip(x + 3, 0, 6) / 6``) recognised as one ``HardSwish`` / ``SiLU`` layer,
  Resize, ConvTranspose, Softmax, attention, reshapes, ...
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from ._errors import LimitError, SparsesimError, TraceError, WorkloadError, check_path_arg
from ._limits import check_memory, memory_limit_bytes
from ._network import Network, NetworkBuilder, Shape
from ._synthetic import child_seed, image_input, normalized_image
from ._trace import Trace, quantize_q88

__all__ = ["SUPPORTED_ONNX_OPS", "USER_NETWORK_SUFFIXES", "OnnxImport", "from_onnx", "import_onnx", "load_user_network",
           "parse_input_shape"]

#: ONNX op types (default domain) :func:`from_onnx` maps onto sparsesim layers or folds into them
#: when their conditions hold (docs/bring_your_own.md); every other op, and these when their
#: conditions do not hold, runs on the host with onnxruntime's values.
SUPPORTED_ONNX_OPS = ("Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Div",
                      "Flatten", "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Relu",
                      "Reshape", "Sub", "Transpose")
#: File suffixes :func:`load_user_network` accepts.
USER_NETWORK_SUFFIXES = (".onnx", ".csv")

#: ReLU6's upper bound, in real units.
_RELU6_MAX = 6.0
_LAYER_OPS_WITH_ACTIVATION = ("conv", "fc", "add")
#: Layers sparsesim computes itself (the others' values come from onnxruntime).
_COMPUTED = ("conv", "fc", "maxpool", "avgpool", "add", "concat")
#: Ops whose output depends only on their input's shape, which the import fixes.
_SHAPE_OPS = ("Shape", "Size")
#: A dynamic input height/width taken from an image file is its size rounded down to a multiple of this.
_DYNAMIC_HW_MULTIPLE = 32
#: Float32 unit roundoff, for the functional check's allowance for onnxruntime's own rounding.
_F32_U = 2.0 ** -24


def parse_input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``"1,3,640,640"`` / ``"1x3x640x640"`` / ``"name=1,3,640,640"`` -> ``(name or None, dims)``."""
    name, sep, dims = text.rpartition("=")
    parts = dims.strip().split("," if "," in dims else "x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise WorkloadError(f"--input-shape: expected positive integers such as 1,3,640,640 (optionally "
                            f"NAME=1,3,640,640), got {text!r}")
    return (name.strip() or None) if sep else None, shape


def load_user_network(path: str | os.PathLike, *, image: str | os.PathLike | np.ndarray | None = None,
                      input_shape=None) -> tuple[Network, Trace | None]:
    """Load a user's network file, choosing the importer by suffix.

    Parameters
    ----------
    path : ``.onnx`` model (:func:`from_onnx`, returns its trace) or SCALE-Sim
        topology ``.csv`` (:func:`~workloads.from_scalesim_csv`, returns no trace:
        the run uses the usual propagated or synthetic data).
    image, input_shape : for an ONNX model (see :func:`from_onnx`); not allowed for ``.csv``.

    Raises
    ------
    WorkloadError : unknown suffix (the message lists the allowed ones), a missing
        file, or any import error.
    """
    from ._scalesim import from_scalesim_csv

    check_path_arg(path, "load_user_network", WorkloadError)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in USER_NETWORK_SUFFIXES:
        raise WorkloadError(f"{path}: unknown network file type {p.suffix!r}; expected one of "
                            f"{', '.join(USER_NETWORK_SUFFIXES)} (ONNX model or SCALE-Sim topology)")
    if suffix == ".onnx":
        return from_onnx(p, image=image, input_shape=input_shape)
    if image is not None:
        raise WorkloadError(f"{path}: an input image only applies to ONNX models; a SCALE-Sim topology has "
                            "no weights to run it through")
    if input_shape:
        raise WorkloadError(f"{path}: --input-shape only applies to ONNX models; a SCALE-Sim topology fixes "
                            "its own shapes")
    return from_scalesim_csv(p), None


def from_onnx(path: str | os.PathLike, *, image: str | os.PathLike | np.ndarray | None = None,
              name: str | None = None, input_shape=None) -> tuple[Network, Trace]:
    """Import an ONNX model with its real weights and activations.

    Parameters
    ----------
    path : ``.onnx`` file. Its first input is the image: float32 ``(N, C, H, W)``,
        ``(N, H, W, C)`` read through a ``Transpose`` to NCHW, or ``(N, C, L)`` (1-D).
    image : the input the activations are captured on. ``None``: the bundled
        photo (:func:`~workloads.image_input`, needs ``C`` of 1 or 3). A path: an
        image file read with ``matplotlib.image.imread``, center-cropped, area-resized
        and ImageNet-normalised exactly like the bundled photo. An array: ``(H, W, C)``
        (sparsesim layout), int16 taken as Q8.8, float as real (already normalised) values.
    name : network name; default the file's stem.
    input_shape : sizes of dynamic input dimensions, in the model's own dimension order:
        a tuple for the image input (``(1, 3, 640, 640)``), or a mapping from input name
        to tuple. A dynamic batch is 1 unless given; with ``N > 1`` every sample is the
        same image and sample 0 is simulated.

    Returns
    -------
    ``(network, trace)``: the trace holds the Q8.8 image, every conv/fc layer's
    weights, biases, captured input and functional-check reference, and the
    densities of the host layers whose values come from onnxruntime.

    Raises
    ------
    WorkloadError : unreadable file, malformed graph, a dynamic dimension without
        ``input_shape``, missing optional dependencies.
    """
    return import_onnx(path, image=image, name=name, input_shape=input_shape).as_pair()


# -- import ---------------------------------------------------------------------------------------------------

@dataclass
class _Ref:
    """What an ONNX tensor is in sparsesim terms."""

    layer: str               # producing layer, or "input"
    shape: Shape             # (H, W, C) in sparsesim layout
    rank: int                # ONNX rank of the whole tensor (batch included)
    chw_flat: bool = False   # rank 2 flattening a (C, H, W) map in CHW order, H*W > 1 and C > 1
    kind: str = "nchw"       # how the ONNX sample maps to (H, W, C): nchw, ncl, cl, flat, nhwc, other


@dataclass
class _Pending:
    """A layer being assembled; activations, batch norms and constant scales are fused in later."""

    name: str
    node: str                          # ONNX node label, for messages
    op: str
    inputs: tuple[str, ...]
    kw: dict
    onnx_out: str                      # ONNX tensor holding the layer's (fused) output
    in_tensor: str = ""                # conv/fc: the ONNX tensor it reads (captured)
    in_ref: _Ref | None = None
    in_kind: str = "nchw"              # conv/fc: how the captured tensor maps to (H, W, C)
    in_pad: tuple[int, int, int, int] = (0, 0, 0, 0)   # zeros the host adds (top, left, bottom, right)
    out_kind: str = "nchw"
    step: tuple[int, int] = (1, 1)     # conv whose model output is its output [::sh, ::sw]
    model_out: str = ""                # such a conv: the (decimated) ONNX tensor its folds have reached
    activation: str | None = None
    pre_act: str = ""                  # ONNX tensor before the fused activation
    weight: np.ndarray | None = None   # float64 (C_out, kh, kw, C_in/groups)
    bias: np.ndarray | None = None     # float64 (C_out,)
    density: tuple[float, float] | None = None   # host layers: onnxruntime's input/output density


class _ToHost(Exception):
    """A node that does not map onto a sparsesim layer: it runs on the host."""


@dataclass
class OnnxImport:
    """Everything :func:`import_onnx` learned; tests use the float data and tensor names."""

    network: Network
    trace: Trace
    float_weights: dict[str, np.ndarray] = field(default_factory=dict)
    float_biases: dict[str, np.ndarray] = field(default_factory=dict)
    input_tensor: dict[str, str] = field(default_factory=dict)    # conv/fc layer -> ONNX tensor it reads
    output_tensor: dict[str, str] = field(default_factory=dict)   # layer -> ONNX tensor of its output
    host_reasons: dict[str, str] = field(default_factory=dict)    # host layer -> why it is not mapped

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
    with np.errstate(invalid="ignore", divide="ignore"):   # a negative variance gives NaN, refused at quantization
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


def _conv_pair(onnx, ort, x1: np.ndarray, w1: np.ndarray, x2: np.ndarray, w2: np.ndarray, stride: int, pad: int,
               groups: int) -> np.ndarray:
    """``conv(x1, w1) + conv(x2, w2)`` in float32, inputs (H, W, C), weights (C_out, kh, kw, C_in/groups).

    One onnxruntime ``Conv`` over the stacked channels: each group reads its ``x1`` channels, then its
    ``x2`` channels, with the kernels ``[w1, w2]`` (so grouped and depthwise convs stay one conv).
    Float32 suffices: the result is a correction of a few LSB whose own rounding is far below 1 LSB.
    """
    h, wd, c = x1.shape
    cout, kh, kw, cg = w1.shape
    x = np.empty((1, groups, 2, cg, h, wd), np.float32)
    x[0, :, 0] = x1.reshape(h, wd, groups, cg).transpose(2, 3, 0, 1)
    x[0, :, 1] = x2.reshape(h, wd, groups, cg).transpose(2, 3, 0, 1)
    w = np.empty((cout, 2, cg, kh, kw), np.float32)
    w[:, 0] = w1.transpose(0, 3, 1, 2)
    w[:, 1] = w2.transpose(0, 3, 1, 2)
    helper, tp = onnx.helper, onnx.TensorProto
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=groups, strides=[stride, stride], pads=[pad] * 4,
                            kernel_shape=[kh, kw])
    graph = helper.make_graph([node], "correction",
                              [helper.make_tensor_value_info("x", tp.FLOAT, [1, 2 * c, h, wd]),
                               helper.make_tensor_value_info("w", tp.FLOAT, [cout, 2 * cg, kh, kw])],
                              [helper.make_tensor_value_info("y", tp.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(["y"], {"x": x.reshape(1, 2 * c, h, wd), "w": w.reshape(cout, 2 * cg, kh, kw)})
    return y[0].transpose(1, 2, 0)


def import_onnx(path: str | os.PathLike, *, image=None, name: str | None = None, input_shape=None) -> OnnxImport:
    """:func:`from_onnx` with everything the import learned (:class:`OnnxImport`)."""
    check_path_arg(path, "from_onnx", WorkloadError)
    where = str(path)
    onnx, ort = _require(where)
    model = _load(onnx, path)
    try:
        return _Importer(onnx, ort, model, where, image, name or _sanitize(Path(path).stem) or "onnx_model",
                         input_shape).run()
    except LimitError as exc:   # raised deep down (an image resize): say which model asked for it
        raise LimitError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    except MemoryError:
        raise LimitError(f"{where}: out of memory while importing the model (the machine or the process limit "
                         "gave less than it needed)") from None
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
    _check_model_file_size(p, where=str(path))
    try:
        model = onnx.load(str(p), load_external_data=False)
        _check_external_data(onnx, model, p.parent, where=str(path))
        onnx.external_data_helper.load_external_data_for_model(model, str(p.parent))
    except SparsesimError:
        raise
    except Exception as exc:  # protobuf DecodeError, onnx's own errors, external-data OSErrors: all mean the same
        raise WorkloadError(f"{path}: not a readable ONNX model: {exc}") from None
    if not model.graph.node:
        raise WorkloadError(f"{path}: not a readable ONNX model: the graph has no nodes")
    return model


def _attr_dict(onnx, node) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


class _Patterns:
    """Finds written-out activations: ``x * HardSigmoid(x)`` and ``x * Clip(x + 3, 0, 6) / 6``
    (HardSwish), ``x * Sigmoid(x)`` (SiLU). Each becomes one node; the nodes inside a pattern
    must be read only inside it."""

    def __init__(self, onnx, nodes, consts: dict, graph_outputs: set[str]) -> None:
        self.onnx, self.nodes, self.consts = onnx, nodes, consts
        self.prod = {t: i for i, n in enumerate(nodes) for t in n.output if t}
        self.readers: dict[str, int] = {t: 1 for t in graph_outputs}
        for n in nodes:
            for t in n.input:
                if t:
                    self.readers[t] = self.readers.get(t, 0) + 1

    def _node(self, t: str, op: str | tuple[str, ...]):
        i = self.prod.get(t)
        if i is None:
            return None, None
        n = self.nodes[i]
        return (i, n) if n.op_type in ((op,) if isinstance(op, str) else op) else (None, None)

    def _scalar(self, t: str) -> float | None:
        v = self.consts.get(t)
        return float(np.asarray(v).reshape(-1)[0]) if v is not None and np.asarray(v).size == 1 else None

    def _only(self, t: str) -> bool:
        return self.readers.get(t, 0) == 1

    def _through_units(self, t: str, used: set[int]) -> str:
        """Follow Identity and x*1, x/1 nodes back from ``t`` (each read only once)."""
        while self._only(t):
            i, n = self._node(t, ("Identity", "Mul", "Div"))
            if n is None:
                break
            if n.op_type == "Identity":
                t = n.input[0]
            else:
                a, b = n.input[0], n.input[1]
                if self._scalar(b) == 1.0:
                    t = a
                elif n.op_type == "Mul" and self._scalar(a) == 1.0:
                    t = b
                else:
                    break
            used.add(i)
        return t

    def _clip06(self, t: str, used: set[int]) -> str | None:
        """``x`` if ``t == Clip(x + 3, 0, 6)`` (read once), else None."""
        i, clip = self._node(t, "Clip")
        if clip is None or not self._only(t):
            return None
        a = _attr_dict(self.onnx, clip)
        lo = self._scalar(clip.input[1]) if len(clip.input) > 1 and clip.input[1] else a.get("min")
        hi = self._scalar(clip.input[2]) if len(clip.input) > 2 and clip.input[2] else a.get("max")
        if lo != 0.0 or hi != 6.0:
            return None
        j, add = self._node(clip.input[0], "Add")
        if add is None or not self._only(clip.input[0]):
            return None
        x, c = add.input[0], add.input[1]
        if self._scalar(c) != 3.0:
            x, c = c, x
        if self._scalar(c) != 3.0:
            return None
        used.update((i, j))
        return x

    def _gate(self, t: str, used: set[int]) -> tuple[str, str] | None:
        """``(activation, x)`` if ``t`` is a gate of x: HardSigmoid(x), Sigmoid(x), Clip(x+3,0,6)/6."""
        if not self._only(t):
            return None
        i, n = self._node(t, ("HardSigmoid", "Sigmoid", "Div", "Mul"))
        if n is None:
            return None
        inner: set[int] = {i}
        if n.op_type == "HardSigmoid":
            a = _attr_dict(self.onnx, n)
            if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or a.get("beta", 0.5) != 0.5:
                return None
            act, x = "HardSwish", self._through_units(n.input[0], inner)
        elif n.op_type == "Sigmoid":
            act, x = "SiLU", self._through_units(n.input[0], inner)
        else:
            a, b = n.input[0], n.input[1]
            sixth = (n.op_type == "Div" and self._scalar(b) == 6.0) or (
                n.op_type == "Mul" and self._scalar(b) is not None and abs(self._scalar(b) - 1 / 6) < 1e-6)
            x = self._clip06(a, inner) if sixth else None
            if x is None:
                return None
            act = "HardSwish"
        used.update(inner)
        return act, x

    def find(self) -> dict[int, tuple[str, str, set[int]]]:
        """Last node of each pattern -> (activation, input tensor, the other nodes of the pattern)."""
        found: dict[int, tuple[str, str, set[int]]] = {}
        taken: set[int] = set()
        for i, n in enumerate(self.nodes):
            if n.op_type not in ("Mul", "Div") or len(n.input) != 2:
                continue
            hit = None
            if n.op_type == "Mul":
                for x, g in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
                    used: set[int] = set()
                    r = self._gate(g, used)
                    if r is not None and r[1] == x:
                        hit = (r[0], x, used)
                        break
            # (x * Clip(x + 3, 0, 6)) / 6, or * (1/6)
            sixth = self._scalar(n.input[1])
            if hit is None and sixth is not None and (
                    (n.op_type == "Div" and sixth == 6.0) or (n.op_type == "Mul" and abs(sixth - 1 / 6) < 1e-6)):
                j, m = self._node(n.input[0], "Mul")
                if m is not None and self._only(n.input[0]):
                    for x, g in ((m.input[0], m.input[1]), (m.input[1], m.input[0])):
                        used = {j}
                        if self._clip06(g, used) == x:
                            hit = ("HardSwish", x, used)
                            break
            if hit is not None and not (hit[2] & taken) and i not in taken:
                found[i] = hit
                taken |= hit[2] | {i}
        return found


class _Importer:
    """One import: fixes the input shapes, runs the model in onnxruntime, maps each node in graph
    order (``op_<OpType>`` methods; a node they cannot map, or an op without one, becomes a host
    layer) and quantizes the result into a Trace."""

    def __init__(self, onnx, ort, model, where: str, image, net_name: str, input_shape) -> None:
        self.onnx, self.ort, self.where, self.image_arg, self.net_name = onnx, ort, where, image, net_name
        self.model = model
        self.graph = model.graph
        self.input_shape_arg = input_shape
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.refs: dict[str, _Ref] = {}
        self.pending: list[_Pending] = []
        self.ops: dict[str, str] = {"input": "input"}
        self.by_out: dict[str, _Pending] = {}
        self.names: set[str] = {"input"}
        self.consumers: dict[str, list[str]] = {}
        self.saturated: dict[str, int] = {}
        self.host_reasons: dict[str, str] = {}
        self.cl: set[str] = set()
        self.densities: dict[str, float] = {}
        self.decimation: dict[str, tuple[_Pending, _Pending]] = {}   # tensor -> (host decimation, its conv)
        self.pad_of: dict[str, tuple[str, tuple[int, int, int, int]]] = {}
        self.node_of: dict[str, list] = {}
        self.pad_node: dict[str, tuple] = {}
        self.notes: list[str] = []                        # how the import chose what the user did not give
        self.derived_shape: tuple[int, ...] | None = None  # the image input's shape, when taken from the image

    # -- helpers ------------------------------------------------------------------------------------------
    def fail(self, label: str, msg: str) -> NoReturn:
        """Inside an op method: the node does not map (it runs on the host, ``msg`` says why)."""
        raise _ToHost(msg)

    def _attrs(self, node) -> dict:
        return _attr_dict(self.onnx, node)

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
        if tensor in self.values:
            return tuple(self.values[tensor].shape)
        raise WorkloadError(f"{self.where}: tensor {tensor!r} has no value")  # pragma: no cover - all outputs run

    def _sample(self, tensor: str) -> np.ndarray:
        """Sample 0 of a tensor (the whole tensor when its first axis is not the batch)."""
        v = self.values[tensor]
        return v[0] if v.ndim >= 1 and v.shape[0] == self.batch else v

    def _density_of(self, tensor: str) -> float:
        """Density of sample 0 of a tensor (cached: a tensor is often read by several host layers)."""
        d = self.densities.get(tensor)
        if d is None:
            d = self.densities[tensor] = _density(self._sample(tensor))
        return d

    def _view_kind(self, tensor: str) -> str:
        shape = self._onnx_shape(tensor)
        if not shape or shape[0] != self.batch:
            return "other"
        return {4: "nchw", 3: "cl" if tensor in self.cl else "ncl", 2: "flat", 1: "flat"}.get(len(shape), "other")

    def _hwc_of(self, tensor: str, kind: str) -> Shape:
        shape = self._onnx_shape(tensor)
        r = shape[1:] if kind != "other" else shape
        if kind == "nchw":
            return (r[1], r[2], r[0])
        if kind == "ncl":
            return (1, r[1], r[0])
        if kind == "cl":
            return (1, r[0], r[1])
        if kind == "flat":
            return (1, 1, max(1, math.prod(r)))
        if not r:
            return (1, 1, 1)
        if len(r) == 1:
            return (1, 1, r[0])
        return (1, max(1, math.prod(r[:-1])), max(1, r[-1]))

    @staticmethod
    def _to_hwc(x: np.ndarray, kind: str) -> np.ndarray:
        """A sample (batch axis removed) as (H, W, C) for layout ``kind``."""
        if kind == "nchw":
            return x.transpose(1, 2, 0)
        if kind == "ncl":
            return x.T[None]
        if kind == "cl":
            return x[None]
        return x.reshape(1, 1, -1)

    def _feature(self, label: str, node, i: int, *, flat_ok: bool = False, rank: int | None = None) -> _Ref:
        t = node.input[i] if i < len(node.input) else ""
        ref = self.refs.get(t)
        if ref is None:
            self.fail(label, f"input {t!r} is not a feature map")
        if ref.chw_flat and not flat_ok:
            self.fail(label, f"input {t!r} is a flattened (C, H, W) feature map; only Gemm/MatMul read it as such")
        if ref.kind == "nhwc":
            self.fail(label, f"input {t!r} is the NHWC model input")
        if rank is not None and ref.rank != rank:
            self.fail(label, f"input {t!r} has rank {ref.rank}; {node.op_type} maps with rank {rank}")
        return ref

    def _computed(self, label: str, refs) -> None:
        for r in refs:
            if self.ops.get(r.layer) not in _COMPUTED + ("input",):
                self.fail(label, f"an input comes from host layer {r.layer!r}, whose values are onnxruntime's")

    def _const(self, label: str, node, i: int, what: str) -> np.ndarray:
        t = node.input[i] if i < len(node.input) else ""
        if t not in self.consts:
            self.fail(label, f"{what} ({t!r}) are computed, not constant")
        return np.asarray(self.consts[t], dtype=np.float64)

    def _optional_const(self, label: str, node, i: int, what: str) -> np.ndarray | None:
        if i < len(node.input) and node.input[i]:
            return self._const(label, node, i, what)
        return None

    def _only_first_output(self, label: str, node) -> None:
        for extra in node.output[1:]:
            if extra and self.consumers.get(extra):
                self.fail(label, f"output {extra!r} of {node.op_type} is read too")

    def _pads(self, label: str, a: dict, kernel: tuple[int, int], strides: tuple[int, int],
              hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) padding of a 2-D window op."""
        auto = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "NOTSET":
            pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k, s in zip(hw, kernel, strides):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                small = total // 2
                begin.append(small if auto == "SAME_UPPER" else total - small)
                end.append(total - begin[-1])
            pads = begin + end
        else:
            self.fail(label, f"auto_pad {auto!r} is not known")
        if len(pads) != 4 or min(pads) < 0:
            self.fail(label, f"pads {pads} are not four non-negative ints")
        return pads[0], pads[1], pads[2], pads[3]

    def _strides(self, label: str, a: dict, n: int = 2) -> tuple[int, int]:
        strides = [int(v) for v in a.get("strides", [1] * n)]
        if len(strides) != n or min(strides) < 1:
            self.fail(label, f"strides {strides} are not {n} positive ints")
        return (1, strides[0]) if n == 1 else (strides[0], strides[1])

    def _probe(self, label: str, op: str, sources: list[str], kw: dict) -> Shape:
        """The output shape sparsesim's builder gives; a builder error means the node does not map."""
        b = NetworkBuilder("probe", (1, 1, 1))
        names = []
        for i, src in enumerate(sources):
            b._shapes[f"s{i}"] = self.input_hwc if src == "input" else self.layer_shapes[src]
            names.append(f"s{i}")
        try:
            if op in ("conv", "fc", "maxpool", "avgpool"):
                getattr(b, op)("probe", inputs=names[0], **kw)
            else:
                getattr(b, op)("probe", tuple(names), **kw)
        except WorkloadError as exc:
            self.fail(label, str(exc).replace("layer 'probe': ", ""))
        return b._layers[-1].out_shape

    def _new(self, label: str, node, op: str, inputs: tuple[str, ...], kw: dict, *, out: str | None = None,
             out_kind: str | None = None, **extra) -> _Pending:
        out = out or node.output[0]
        kind = out_kind or self._view_kind(out)
        probe_kw = dict(kw, activation=None) if op in ("conv", "fc") else kw
        shape = self._probe(label, op, list(inputs), probe_kw)
        if out in self.values:
            want = self._hwc_of(out, kind)
            if shape != want:
                self.fail(label, f"sparsesim's {op} gives shape {shape} (H, W, C), the model {want}")
        p = _Pending(name=self._unique(node.name, f"{node.op_type.lower()}_{len(self.pending)}"), node=label,
                     op=op, inputs=inputs, kw=kw, onnx_out=out, out_kind=kind, **extra)
        self._register(p, shape, len(self._onnx_shape(out)) if out in self.values else 4, kind)
        self.by_out[p.onnx_out] = p
        return p

    def _register(self, p: _Pending, shape: Shape, rank: int, kind: str) -> None:
        self.pending.append(p)
        self.ops[p.name] = p.op
        self.layer_shapes[p.name] = shape
        self.refs[p.onnx_out] = _Ref(p.name, shape, rank, kind=kind)

    def _host(self, label: str, node, op_name: str, reason: str) -> None:
        """``node`` runs on the host: one host layer per float output that depends on the input."""
        feats: list[str] = []
        for t in node.input:
            r = self.refs.get(t)
            if r is not None and r.layer not in feats:
                feats.append(r.layer)
        first_in = next((t for t in node.input if t in self.refs), None)
        for k, t in enumerate(node.output):
            if not t or t not in self.values:
                continue
            v = self.values[t]
            if v.dtype.kind != "f" or not feats or v.size == 0:
                self.consts[t] = v
                continue
            kind = self._view_kind(t)
            shape = self._hwc_of(t, kind)
            name = self._unique(node.name + (f"_{k}" if k else ""), f"{node.op_type.lower()}_{len(self.pending)}")
            din = self._density_of(first_in) if first_in is not None else 0.0
            p = _Pending(name=name, node=label, op="host", inputs=tuple(feats),
                         kw=dict(host_op=op_name, out_shape=shape), onnx_out=t,
                         density=(din, self._density_of(t)))
            self._register(p, shape, v.ndim, kind)
            self.host_reasons[name] = reason

    def _fuse_target(self, label: str, node, what: str, ops: tuple[str, ...], src_index: int = 0) -> _Pending:
        """The layer producing ``node.input[src_index]``, into which ``node`` is fused (must be its only reader)."""
        src = node.input[src_index]
        p = self.by_out.get(src)
        if p is None and src in self.decimation:   # folds commute with the host's decimation: fold into the conv
            p = self.decimation[src][1]
        if p is None or p.op not in ops:
            producer = f"layer {p.name!r} ({p.op})" if p is not None else "no conv, fc or add"
            self.fail(label, f"{what} is fused into the {'/'.join(ops)} that produces its input {src!r}, but "
                             f"that input comes from {producer}")
        if p.activation is not None:
            self.fail(label, f"{what} follows {p.node!r}, which already has activation {p.activation!r}")
        readers = self.consumers.get(src, [])
        if len(readers) != 1 or src in self.graph_outputs:
            self.fail(label, f"{what} would be fused into {p.node!r}, but its input {src!r} is also read "
                             "elsewhere")
        return p

    def _retarget(self, p: _Pending, node) -> None:
        """``node``'s output is now ``p``'s output."""
        if p.step != (1, 1):   # the host's decimation moves after the folded node
            old = p.model_out
            dec, _ = self.decimation.pop(old)
            p.model_out = dec.onnx_out = node.output[0]
            dec.density = (dec.density[0], self._density_of(node.output[0]))
            self.decimation[p.model_out] = (dec, p)
            self.refs[p.model_out] = self.refs[old]
            return
        src = p.onnx_out
        del self.by_out[src]
        p.onnx_out = node.output[0]
        self.by_out[p.onnx_out] = p
        self.refs[p.onnx_out] = self.refs[src]

    # -- ops ----------------------------------------------------------------------------------------------
    def op_Conv(self, label, node, a):
        folded = self.pad_of.get(node.input[0])
        if folded is not None:   # a Pad folded into this conv: read the Pad's input, pad more
            src_t, (pt, pl, pb, pr) = folded
            a = dict(a)
            if (a.get("auto_pad", "NOTSET") or "NOTSET") not in ("NOTSET", "VALID"):
                self.fail(label, "auto_pad SAME after a Pad")
            own = [int(v) for v in a.get("pads", [0, 0, 0, 0])] if a.get("auto_pad", "NOTSET") != "VALID" else [0] * 4
            a["pads"] = [own[0] + pt, own[1] + pl, own[2] + pb, own[3] + pr]
            a["auto_pad"] = "NOTSET"
            node = self.onnx.helper.make_node("Conv", [src_t] + list(node.input[1:]), list(node.output),
                                              name=node.name)
        x = self._feature(label, node, 0)
        w = self._const(label, node, 1, "weights")
        xs = self._onnx_shape(node.input[0])
        if xs[0] != self.batch:
            self.fail(label, f"input shape {list(xs)} has no batch axis")
        if w.ndim == 3 and len(xs) == 3:        # Conv1d: (N, C, L) as H = 1
            kind, w = "ncl", w[:, :, None, :]
            a = dict(a)
            for key in ("strides", "dilations", "kernel_shape"):
                if key in a:
                    a[key] = [1] + list(a[key])
            if "pads" in a:
                pl, pr = list(a["pads"])
                a["pads"] = [0, pl, 0, pr]
            hw = (1, xs[2])
        elif w.ndim == 4 and len(xs) == 4:
            kind, hw = "nchw", (xs[2], xs[3])
        else:
            self.fail(label, f"weights of shape {list(w.shape)} on an input of shape {list(xs)}: only 1-D and 2-D "
                             "convolutions map")
        if x.kind != kind or x.shape != (hw[0], hw[1], xs[1]):
            self.fail(label, f"input {node.input[0]!r} has the layout {x.kind}, the conv needs {kind}")
        group = int(a.get("group", 1))
        dil = [int(v) for v in a.get("dilations", [1, 1])]
        if len(dil) != 2 or min(dil) < 1:
            self.fail(label, f"dilations {dil} are not two positive ints")
        if dil != [1, 1]:
            w = _dilate(w, dil)
        kernel = (w.shape[2], w.shape[3])
        sh, sw = self._strides(label, a)
        top, left, bottom, right = self._pads(label, a, kernel, (sh, sw), hw)
        pad = min(top, left, bottom, right)
        extra = (top - pad, left - pad, bottom - pad, right - pad)
        src = x.layer
        if any(extra):
            # NullHop pads symmetrically; the rest is zeros the host writes around the input.
            shape = (x.shape[0] + extra[0] + extra[2], x.shape[1] + extra[1] + extra[3], x.shape[2])
            src = self._unique(f"{node.name or label}_pad", "pad")
            p = _Pending(name=src, node=label, op="host", inputs=(x.layer,),
                         kw=dict(host_op="Pad", out_shape=shape), onnx_out=f"{node.input[0]}#pad:{src}")
            xv = self._sample(node.input[0])
            p.density = (_density(xv), _density(xv) * math.prod(x.shape) / math.prod(shape))
            self._register(p, shape, 4, kind)
            self.host_reasons[src] = "padding that differs between sides is written by the host"
        ho_model, wo_model = self._hwc_of(node.output[0], kind)[:2]
        hp, wp = self.layer_shapes.get(src, x.shape)[:2] if src != "input" else x.shape[:2]
        stride, step = sh, (1, 1)
        if sh != sw:
            for s in (sh, sw):
                if ((hp + 2 * pad - kernel[0]) // s + 1, (wp + 2 * pad - kernel[1]) // s + 1) == (ho_model, wo_model):
                    stride = s
                    break
            else:
                stride, step = 1, (sh, sw)
        bias = self._optional_const(label, node, 2, "bias")
        weight = w.transpose(0, 2, 3, 1).copy()
        kw = dict(out_channels=w.shape[0], kernel=kernel, stride=stride, padding=pad, groups=group)
        common = dict(in_tensor=node.input[0], in_ref=x, in_kind=kind, in_pad=extra, weight=weight,
                      bias=None if bias is None else bias.reshape(-1).copy())
        if step == (1, 1):
            self._new(label, node, "conv", (src,), kw, out_kind=kind, **common)
            return
        # Different strides per axis: NullHop computes stride 1, the host keeps every sh-th row and sw-th column.
        conv = self._new(label, node, "conv", (src,), kw, out=f"{node.output[0]}#stride1", out_kind=kind,
                         step=step, **common)
        shape = self._hwc_of(node.output[0], kind)
        del self.by_out[conv.onnx_out]
        conv.model_out = node.output[0]
        name = self._unique(f"{conv.name}_stride", "stride")
        p = _Pending(name=name, node=label, op="host", inputs=(conv.name,), kw=dict(host_op="StrideDecimation",
                     out_shape=shape), onnx_out=node.output[0],
                     density=(0.0, self._density_of(node.output[0])))
        self._register(p, shape, len(xs), kind)
        self.decimation[node.output[0]] = (p, conv)
        self.host_reasons[name] = f"strides {sh}x{sw}: NullHop computes stride 1, the host decimates"

    def _scale_target(self, label, node, fi: int, ci: int, what: str) -> tuple[_Pending, np.ndarray]:
        """The conv/fc producing input ``fi`` and the per-channel constant at input ``ci``."""
        p = self._fuse_target(label, node, what, ("conv", "fc"), fi)
        shape = self._onnx_shape(node.input[fi])
        c = self._const(label, node, ci, "constant")
        try:
            full = np.broadcast_to(c, shape)
        except ValueError:
            self.fail(label, f"constant of shape {list(c.shape)} does not broadcast to {list(shape)}")
        if full.shape != shape:
            self.fail(label, "the constant changes the shape")
        axis = len(shape) - 1 if p.out_kind == "cl" else 1
        vec = np.moveaxis(full, axis, -1).reshape(-1, shape[axis])
        if not np.array_equal(vec, np.broadcast_to(vec[:1], vec.shape)):
            self.fail(label, f"{what} varies over positions (only a per-channel constant folds)")
        return p, vec[0].astype(np.float64)

    def _binary_const(self, label, node) -> tuple[int, int]:
        if len(node.input) != 2:
            self.fail(label, f"{node.op_type} has {len(node.input)} inputs")
        const = [t in self.consts for t in node.input]
        if const.count(True) != 1:
            self.fail(label, "not a feature map and a constant")
        return const.index(False), const.index(True)

    def op_Mul(self, label, node, a):
        fi, ci = self._binary_const(label, node)
        p, s = self._scale_target(label, node, fi, ci, "Mul by a constant")
        self._scale(p, s)
        self._retarget(p, node)

    def op_Div(self, label, node, a):
        fi, ci = self._binary_const(label, node)
        if fi != 0:
            self.fail(label, "a constant divided by a feature map")
        p, s = self._scale_target(label, node, fi, ci, "Div by a constant")
        if not np.all(s != 0):
            self.fail(label, "division by zero")
        self._scale(p, 1.0 / s)
        self._retarget(p, node)

    @staticmethod
    def _scale(p: _Pending, s: np.ndarray) -> None:
        p.weight = p.weight * s[:, None, None, None]
        if p.bias is not None:
            p.bias = p.bias * s

    def op_Sub(self, label, node, a):
        fi, ci = self._binary_const(label, node)
        if fi != 0:
            self.fail(label, "a constant minus a feature map")
        p, c = self._scale_target(label, node, fi, ci, "Sub of a constant")
        p.bias = -c + (0.0 if p.bias is None else p.bias)
        self._retarget(p, node)

    def op_BatchNormalization(self, label, node, a):
        self._only_first_output(label, node)
        if a.get("training_mode", 0):
            self.fail(label, "training_mode=1")
        gamma, beta, mean, var = (self._const(label, node, i, w) for i, w in
                                  ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        p = self._fuse_target(label, node, "BatchNormalization", ("conv",))
        if p.out_kind not in ("nchw", "ncl"):
            self.fail(label, "BatchNormalization after a conv whose output the host rearranges")
        p.weight, p.bias = _fold_batchnorm(p.weight, p.bias, gamma, beta, mean, var, a.get("epsilon", 1e-5))
        self._retarget(p, node)

    def _activation(self, label, node, act: str, what: str) -> None:
        p = self._fuse_target(label, node, what, _LAYER_OPS_WITH_ACTIVATION)
        p.pre_act = p.model_out or p.onnx_out
        p.activation = act
        self._retarget(p, node)

    def op_Relu(self, label, node, a):
        self._activation(label, node, "relu", "Relu")

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
            self.fail(label, f"Clip({lo:g}, {hi:g}) is neither ReLU nor ReLU6, which the PRE has")
        self._activation(label, node, act, "Clip")

    def _pool_common(self, label, node, a) -> tuple[_Ref, int, int, int]:
        self._only_first_output(label, node)
        x = self._feature(label, node, 0, rank=4)
        self._computed(label, [x])
        if a.get("ceil_mode", 0):
            self.fail(label, "ceil_mode=1")
        k = list(a.get("kernel_shape", []))
        if len(k) != 2 or k[0] != k[1]:
            self.fail(label, f"kernel_shape {k} is not square; sparsesim pools are k x k")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(label, f"dilations {list(a['dilations'])}")
        sh, sw = self._strides(label, a)
        if sh != sw:
            self.fail(label, f"strides {[sh, sw]} differ between height and width")
        pads = self._pads(label, a, (k[0], k[1]), (sh, sw), x.shape[:2])
        if len(set(pads)) != 1:
            self.fail(label, f"pads {list(pads)} are not the same on all four sides")
        return x, int(k[0]), sh, pads[0]

    def op_MaxPool(self, label, node, a):
        x, k, s, p = self._pool_common(label, node, a)
        self._new(label, node, "maxpool", (x.layer,), dict(kernel=k, stride=s, padding=p))

    def op_AveragePool(self, label, node, a):
        x, k, s, p = self._pool_common(label, node, a)
        if p > 0 and a.get("count_include_pad", 0):
            self.fail(label, "count_include_pad=1 with padding (sparsesim never counts padded cells)")
        self._new(label, node, "avgpool", (x.layer,), dict(kernel=k, stride=s, padding=p))

    def op_GlobalAveragePool(self, label, node, a):
        x = self._feature(label, node, 0, rank=4)
        self._computed(label, [x])
        self._new(label, node, "avgpool", (x.layer,), dict(kernel=None))

    def op_Add(self, label, node, a):
        if len(node.input) != 2:
            self.fail(label, f"Add has {len(node.input)} inputs")
        if any(t in self.consts for t in node.input):
            fi, ci = self._binary_const(label, node)
            p, c = self._scale_target(label, node, fi, ci, "Add of a constant")
            p.bias = c + (0.0 if p.bias is None else p.bias)
            self._retarget(p, node)
            return
        x, y = (self._feature(label, node, i) for i in (0, 1))
        self._computed(label, [x, y])
        if self._onnx_shape(node.input[0]) != self._onnx_shape(node.input[1]):
            self.fail(label, f"inputs have shapes {list(self._onnx_shape(node.input[0]))} and "
                             f"{list(self._onnx_shape(node.input[1]))} (broadcasting)")
        self._new(label, node, "add", (x.layer, y.layer), {})

    def op_Concat(self, label, node, a):
        refs = [self._feature(label, node, i) for i in range(len(node.input))]
        self._computed(label, refs)
        rank = refs[0].rank
        if any(r.rank != rank for r in refs) or any(r.kind != refs[0].kind for r in refs):
            self.fail(label, "inputs have different ranks or layouts")
        axis = int(a.get("axis", 1))
        if axis % rank != (rank - 1 if refs[0].kind == "cl" else 1):
            self.fail(label, f"axis {axis} is not the channel axis; sparsesim concatenates channels only")
        self._new(label, node, "concat", tuple(r.layer for r in refs), {})

    def op_Gemm(self, label, node, a):
        if a.get("transA", 0):
            self.fail(label, "transA=1")
        x = self._feature(label, node, 0, flat_ok=True, rank=2)
        b = self._const(label, node, 1, "weights")
        if b.ndim != 2:
            self.fail(label, f"weights have shape {list(b.shape)}, expected 2-D")
        w = (b if a.get("transB", 0) else b.T) * float(a.get("alpha", 1.0))
        c = self._optional_const(label, node, 2, "bias")
        if c is not None:
            try:
                c = float(a.get("beta", 1.0)) * np.broadcast_to(c, (1, w.shape[0]))[0]
            except ValueError:
                self.fail(label, f"bias of shape {list(c.shape)} is not per output")
        self._fc(label, node, x, w, c)

    def op_MatMul(self, label, node, a):
        b = self._const(label, node, 1, "second operand")
        if b.ndim != 2:
            self.fail(label, f"second operand has shape {list(b.shape)}, expected a 2-D matrix")
        xs = self._onnx_shape(node.input[0])
        if len(xs) == 3 and xs[0] == self.batch:
            # (N, T, F) @ (F, M): one 1x1 convolution over the T tokens.
            x = self._feature(label, node, 0)
            if x.kind != "cl" or x.shape != (1, xs[1], xs[2]):
                self.fail(label, f"input {node.input[0]!r} is not laid out as tokens")
            m = b.shape[1]
            self._new(label, node, "conv", (x.layer,), dict(out_channels=m, kernel=(1, 1), stride=1, padding=0,
                                                            groups=1),
                      out_kind="cl", in_tensor=node.input[0], in_ref=x, in_kind="cl",
                      weight=np.ascontiguousarray(b.T).reshape(m, 1, 1, -1), bias=None)
            return
        x = self._feature(label, node, 0, flat_ok=True, rank=2)
        self._fc(label, node, x, b.T, None)

    def _fc(self, label, node, x: _Ref, w: np.ndarray, bias) -> None:
        if self._onnx_shape(node.input[0])[0] != self.batch:
            self.fail(label, "the input has no batch axis")
        h, wd, c = x.shape
        m, k = w.shape
        if k != h * wd * c:
            self.fail(label, f"weights have {k} inputs, but the input has {h * wd * c} values")
        if x.chw_flat:  # ONNX flattened (C, H, W); sparsesim flattens (H, W, C)
            w = w.reshape(m, c, h, wd).transpose(0, 2, 3, 1)
        self._new(label, node, "fc", (x.layer,), dict(out_features=m), out_kind="flat", in_tensor=node.input[0],
                  in_ref=x, in_kind="fc", weight=np.ascontiguousarray(w).reshape(m, 1, 1, k),
                  bias=None if bias is None else np.asarray(bias, np.float64).reshape(-1))

    def op_Identity(self, label, node, a):
        self.refs[node.output[0]] = self._feature(label, node, 0, flat_ok=True)

    def op_Transpose(self, label, node, a):
        t = node.input[0]
        ref = self.refs.get(t)
        if ref is None or ref.kind != "nhwc" or list(a.get("perm", [])) != [0, 3, 1, 2]:
            self.fail(label, "only the NHWC -> NCHW transpose of the model input is a layout step sparsesim knows")
        self.refs[node.output[0]] = _Ref(ref.layer, ref.shape, 4, kind="nchw")

    def op_Pad(self, label, node, a):
        """Zero padding of H and W read only by convs: folded into their padding (exact)."""
        mode = a.get("mode", "constant") or "constant"
        pads = a.get("pads")
        if pads is None:
            pads = self._const(label, node, 1, "pads").astype(np.int64).tolist() if len(node.input) > 1 else None
        value = a.get("value", 0.0)
        if len(node.input) > 2 and node.input[2]:
            value = float(self._const(label, node, 2, "constant value").reshape(-1)[0])
        if len(node.input) > 3 and node.input[3]:
            self.fail(label, "Pad with axes")
        x = self._feature(label, node, 0, rank=4)
        readers = [n for n in self.node_of.get(node.output[0], [])]
        if (mode != "constant" or value != 0.0 or pads is None or len(pads) != 8 or pads[0] or pads[1] or pads[4]
                or pads[5] or min(pads) < 0 or not readers or any(n.op_type != "Conv" for n in readers)
                or node.output[0] in self.graph_outputs or x.kind != "nchw"):
            self.fail(label, "only zero padding of H and W that convs alone read folds into their padding")
        self.pad_of[node.output[0]] = (node.input[0], (int(pads[2]), int(pads[3]), int(pads[6]), int(pads[7])))
        self.pad_node[node.output[0]] = (label, node)

    def op_Flatten(self, label, node, a):
        self._reshape(label, node)

    def op_Reshape(self, label, node, a):
        self._reshape(label, node)

    def _reshape(self, label, node) -> None:
        x = self._feature(label, node, 0, flat_ok=True)
        src, dst = self._onnx_shape(node.input[0]), self._onnx_shape(node.output[0])
        n = math.prod(src)
        nb = self.batch
        if dst == src:
            self.refs[node.output[0]] = x
        elif len(dst) == 2 and dst[0] == nb and src[0] == nb and dst[1] * nb == n and x.kind in ("nchw", "flat"):
            h, w, c = x.shape
            self.refs[node.output[0]] = (x if x.rank == 2 else
                                         _Ref(x.layer, x.shape, 2, chw_flat=h * w > 1 and c > 1, kind="flat"))
        elif (len(dst) == 4 and dst[0] == nb and dst[2:] == (1, 1) and x.rank == 2 and not x.chw_flat
              and x.kind == "flat"):
            self.refs[node.output[0]] = _Ref(x.layer, x.shape, 4, kind="nchw")
        else:
            self.fail(label, f"{node.op_type} from {list(src)} to {list(dst)} changes the layout")

    # -- driver -------------------------------------------------------------------------------------------
    def _input_dims(self, inp, given: tuple[int, ...] | None, hw_axes: tuple[int, int] | None = None) -> list[int]:
        """The input's sizes: ``given`` (--input-shape), else the declared ones, a dynamic batch as 1 and,
        for the image input with an image given, dynamic ``hw_axes`` from the image (:meth:`_image_hw`)."""
        tt = inp.type.tensor_type
        dims = list(tt.shape.dim)
        declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
        derived: dict[int, int] = {}
        if (given is None and hw_axes is not None and self.image_arg is not None
                and any(declared[i] is None for i in hw_axes)):
            hw, why = self._image_hw()
            derived = {ax: size for ax, size in zip(hw_axes, hw) if declared[ax] is None}
        if given is not None:
            if len(given) != len(dims):
                raise WorkloadError(f"{self.where}: --input-shape {','.join(map(str, given))} has {len(given)} "
                                    f"dimensions; input {inp.name!r} has {len(dims)} {self._dims_text(declared)}")
            for i, (g, d) in enumerate(zip(given, declared)):
                if d is not None and d != g:
                    raise WorkloadError(f"{self.where}: --input-shape gives {g} for dimension {i} of input "
                                        f"{inp.name!r}, which the model fixes at {d} "
                                        f"{self._dims_text(declared)}")
            return list(given)
        out = []
        for i, d in enumerate(declared):
            if d is None and i == 0 and len(dims) >= 3:
                d = 1   # a dynamic batch: one sample
            if d is None and i in derived:
                d = derived[i]
            if d is None:
                letters = ("NCL" if len(dims) == 3 else "NHWC" if len(dims) == 4 and declared[3] in (1, 3)
                           and declared[1] not in (1, 3) else "NCHW" if len(dims) == 4 else "")
                example = ",".join(str(v) if v is not None else ("1" if j == 0 else
                                                                 letters[j] if j < len(letters) else "SIZE")
                                   for j, v in enumerate(declared))
                raise WorkloadError(f"{self.where}: input {inp.name!r} has dynamic dimensions "
                                    f"{self._dims_text(declared)}; give their sizes with --input-shape "
                                    f"(Python: input_shape=), e.g. --input-shape {example}")
            out.append(d)
        if derived:
            self.derived_shape = tuple(out)
            self.notes.append(f"input {inp.name!r} {self._dims_text(declared)} ran as "
                              f"{'x'.join(map(str, out))}: batch 1, {why}; --input-shape chooses another")
        return out

    def _image_hw(self) -> tuple[tuple[int, int], str]:
        """(H, W) for the dynamic height and width of the image input, and why.

        An image file: its size rounded down to a multiple of 32, at least 32 (32 is the total stride of
        the common detection and segmentation backbones, so their feature pyramids stay whole); the
        image is then center-cropped and resized to it as usual. An array: its own (H, W).
        """
        img = self.image_arg
        if isinstance(img, np.ndarray):
            if img.ndim != 3:
                raise WorkloadError(f"{self.where}: image array has shape {img.shape}; expected (H, W, C)")
            return (int(img.shape[0]), int(img.shape[1])), f"height and width those of the {img.shape} image array"
        h, w = _image_file_hw(img)
        hw = (max(_DYNAMIC_HW_MULTIPLE, h // _DYNAMIC_HW_MULTIPLE * _DYNAMIC_HW_MULTIPLE),
              max(_DYNAMIC_HW_MULTIPLE, w // _DYNAMIC_HW_MULTIPLE * _DYNAMIC_HW_MULTIPLE))
        return hw, (f"dynamic H and W from the {h}x{w} (HxW) image, rounded down to multiples of "
                    f"{_DYNAMIC_HW_MULTIPLE}")

    def _shape_hint(self) -> str:
        """For an error after the input shape was derived from the image: how to choose another."""
        if self.derived_shape is None:
            return ""
        return (f" (the input shape {','.join(map(str, self.derived_shape))} was derived from the image; give "
                "another with --input-shape)")

    @staticmethod
    def _dims_text(declared) -> str:
        return "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"

    def _given_shapes(self, inputs) -> dict[str, tuple[int, ...]]:
        arg = self.input_shape_arg
        if arg is None or (not isinstance(arg, (str, Mapping)) and len(arg) == 0):
            return {}
        if isinstance(arg, str):
            arg = [arg]
        if isinstance(arg, Mapping):
            items = [(k, tuple(int(v) for v in dims)) for k, dims in arg.items()]
        elif all(isinstance(v, (int, np.integer)) for v in arg):
            items = [(None, tuple(int(v) for v in arg))]
        else:
            items = [parse_input_shape(v) if isinstance(v, str) else (None, tuple(v)) for v in arg]
        names = [v.name for v in inputs]
        out: dict[str, tuple[int, ...]] = {}
        for name, dims in items:
            key = names[0] if name is None else name
            if key not in names:
                raise WorkloadError(f"{self.where}: --input-shape names input {name!r}; the model's inputs are "
                                    f"{', '.join(repr(n) for n in names)}")
            out[key] = dims
        return out

    def _prepare(self):
        onnx = self.onnx
        g = self.graph
        init_names = {t.name for t in g.initializer}
        inputs = [v for v in g.input if v.name not in init_names]
        if not inputs:
            raise WorkloadError(f"{self.where}: the model has no input")
        given = self._given_shapes(inputs)
        for node in g.node:
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(node.name)
        inp = inputs[0]
        tt = inp.type.tensor_type
        if tt.elem_type != onnx.TensorProto.FLOAT:
            raise WorkloadError(f"{self.where}: input {inp.name!r} has element type "
                                f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; the image input must be FLOAT")
        if len(tt.shape.dim) not in (3, 4):
            raise WorkloadError(f"{self.where}: input {inp.name!r} has rank {len(tt.shape.dim)}; expected "
                                "(N, C, H, W), (N, H, W, C) or (N, C, L)")
        readers = [n for n in g.node if inp.name in n.input]
        nhwc = len(tt.shape.dim) == 4 and bool(readers) and all(
            n.op_type == "Transpose" and list(self._attrs(n).get("perm", [])) == [0, 3, 1, 2] for n in readers)
        hw_axes = None if len(tt.shape.dim) != 4 else (1, 2) if nhwc else (2, 3)
        dims = self._input_dims(inp, given.get(inp.name), hw_axes)
        self.layout = "nhwc" if nhwc else ("ncl" if len(dims) == 3 else "nchw")
        self.batch = dims[0]
        if self.layout == "nchw":
            self.input_hwc = (dims[2], dims[3], dims[1])
        elif self.layout == "nhwc":
            self.input_hwc = (dims[1], dims[2], dims[3])
        else:
            self.input_hwc = (1, dims[2], dims[1])
        self.input_name = inp.name
        self.input_dims = dims
        self.extra_inputs = []
        for v in inputs[1:]:
            if v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                raise WorkloadError(f"{self.where}: input {v.name!r} is not FLOAT; only float inputs besides the "
                                    "image are supported (they get seeded values)")
            self.extra_inputs.append((v.name, self._input_dims(v, given.get(v.name))))
        fixed = onnx.ModelProto()
        fixed.CopyFrom(self.model)
        for v in fixed.graph.input:
            want = dict([(self.input_name, dims)] + self.extra_inputs).get(v.name)
            if want is not None:
                for d, size in zip(v.type.tensor_type.shape.dim, want):
                    d.Clear()
                    d.dim_value = int(size)
        self.fixed_model = fixed
        try:
            onnx.shape_inference.infer_shapes(fixed, strict_mode=True)
        except Exception as exc:  # onnx raises several types (InferenceError, ValidationError, ...)
            raise WorkloadError(f"{self.where}: ONNX shape inference failed: {exc}{self._shape_hint()}") from None
        for t in g.initializer:
            self.consts[t.name] = onnx.numpy_helper.to_array(t)
        self.graph_outputs = {o.name for o in g.output}

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

    def _feeds(self, image_q: np.ndarray) -> dict[str, np.ndarray]:
        x = image_q.astype(np.float32) / np.float32(256.0)
        if self.layout == "nchw":
            x = x.transpose(2, 0, 1)
        elif self.layout == "ncl":
            x = x[0].T
        x = np.ascontiguousarray(np.repeat(x[None], self.batch, axis=0))
        feeds = {self.input_name: x}
        for name, dims in self.extra_inputs:
            # Inputs besides the image get seeded Q8.8 values (Assumption, docs/bring_your_own.md).
            rng = np.random.default_rng(child_seed(0, "onnx-input", name))
            feeds[name] = (np.rint(rng.standard_normal(dims) * 256) / 256).astype(np.float32)
        return feeds

    def _run_model(self, image_q: np.ndarray) -> None:
        onnx, ort = self.onnx, self.ort
        m = self.fixed_model
        have = {o.name for o in m.graph.output}
        for node in m.graph.node:
            for t in node.output:
                if t and t not in have:
                    m.graph.output.append(onnx.ValueInfoProto(name=t))
                    have.add(t)
        so = ort.SessionOptions()
        # NOTE: no graph optimizations: the captured tensors are the graph's own, not fused variants.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        # Memory: no arena, so every output is its own buffer and those not needed later are freed one by one
        # (an arena chunk is freed only once every output in it is gone).
        so.enable_cpu_mem_arena = False
        # Only fatal log lines: onnxruntime's errors come back as exceptions, which become our one-line error.
        so.log_severity_level = 4
        ort.set_default_logger_severity(4)   # the process-wide logger too
        feeds = self._feeds(image_q)
        try:
            sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            outs = sess.run(names, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise WorkloadError(f"{self.where}: onnxruntime could not run the model: {exc}{self._shape_hint()}") from None
        self.values = dict(zip(names, outs))
        del outs
        self.values.update(feeds)
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self.values[node.output[0]]

    def _nodes(self):
        """The graph's nodes with written-out activations collapsed into one node each."""
        nodes = list(self.graph.node)
        labels = [n.name or f"{n.op_type}#{i}" for i, n in enumerate(nodes)]
        found = _Patterns(self.onnx, nodes, self.consts, self.graph_outputs).find()
        inner = set().union(*(v[2] for v in found.values())) if found else set()
        out = []
        for i, (n, label) in enumerate(zip(nodes, labels)):
            if i in inner:
                continue
            if i in found:
                act, x, _ = found[i]
                n = self.onnx.helper.make_node(act, [x], [n.output[0]], name=n.name or label)
            out.append((label, n))
        # Readers after collapsing (fusion needs "the only reader").
        self.consumers = {}
        for label, n in out:
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(label)
                    self.node_of.setdefault(t, []).append(n)
            if n.op_type == "MatMul" and n.input and n.input[0]:
                self.cl.add(n.input[0])
        return out

    def run(self) -> OnnxImport:
        self._prepare()
        try:
            _check_run_memory(self.onnx, self.fixed_model, self.where)
        except LimitError as exc:
            raise LimitError(f"{exc}{self._shape_hint()}") from None
        image_q = self.image_q = self._image()
        self._run_model(image_q)
        self.layer_shapes: dict[str, Shape] = {}
        nodes = self._nodes()
        in_kind = "nhwc" if self.layout == "nhwc" else self.layout
        self.refs[self.input_name] = _Ref("input", self.input_hwc, len(self.input_dims), kind=in_kind)
        for name, dims in self.extra_inputs:
            kind = self._view_kind(name)
            shape = self._hwc_of(name, kind)
            lname = self._unique(f"input_{name}", "input_2")
            p = _Pending(name=lname, node=name, op="host", inputs=(), kw=dict(host_op="Input", out_shape=shape),
                         onnx_out=name, density=(0.0, _density(self._sample(name))))
            self._register(p, shape, len(dims), kind)
            self.host_reasons[lname] = "a second model input (seeded values)"
        for label, node in nodes:
            ins = [t for t in node.input if t]
            if node.op_type in _SHAPE_OPS or all(t in self.consts for t in ins):
                for t in node.output:
                    if t and t in self.values:
                        self.consts[t] = self.values[t]
                continue
            if node.domain not in ("", "ai.onnx"):
                self._host(label, node, f"{node.domain}.{node.op_type}", "not a default-domain ONNX op")
                continue
            method = getattr(self, f"op_{node.op_type}", None)
            if method is None:
                self._host(label, node, node.op_type, "not a NullHop operation")
                continue
            try:
                method(label, node, self._attrs(node))
            except _ToHost as exc:
                for t in node.input:
                    if t in self.pad_of and t not in self.refs:   # the Pad it folded runs on the host after all
                        pad_label, pad_node = self.pad_node[t]
                        self._host(pad_label, pad_node, "Pad", "a conv reading it does not map")
                self._host(label, node, node.op_type, str(exc))
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
                elif p.op == "concat":
                    b.concat(p.name, p.inputs)
                else:
                    b.host(p.name, p.kw["host_op"], p.inputs, p.kw["out_shape"],
                           reason=self.host_reasons.get(p.name, ""))
            except WorkloadError as exc:
                raise WorkloadError(f"{self.where}: node {p.node!r}: {exc}") from None
        net = b.build()
        out = OnnxImport(network=net, trace=Trace(network=net.name, image=image_q), host_reasons=self.host_reasons)
        tr = out.trace
        # Memory: from here on only the conv/fc layers' own tensors are read; each is dropped after its last use.
        uses = Counter(t for p in self.pending if p.op in ("conv", "fc") for t in self._tensors_of(p))
        self.values = {t: v for t, v in self.values.items() if t in uses}
        self.consts = {}   # (its onnxruntime-computed entries too)
        for p, layer in zip(self.pending, net.layers):
            out.output_tensor[p.name] = p.onnx_out
            if p.op == "host":
                tr.densities[p.name] = np.array(p.density or (0.0, 0.0), dtype=np.float64)
                continue
            if p.op not in ("conv", "fc"):
                continue
            out.float_weights[p.name] = p.weight
            out.input_tensor[p.name] = p.in_tensor
            wq = tr.weights[p.name] = self._q(p.weight, f"weights/{p.name}", p.node)
            bq = None
            if p.bias is not None:
                out.float_biases[p.name] = p.bias
                bq = tr.biases[p.name] = self._q(p.bias, f"bias/{p.name}", p.node)
            x = self._captured(p)
            xq = tr.inputs[p.name] = self._q(x, f"input/{p.name}", p.node)
            self._check_data(tr, p, layer, x, xq, wq, bq)
            for t in self._tensors_of(p):
                uses[t] -= 1
                if not uses[t]:
                    del self.values[t]
        tr.saturated = dict(self.saturated)
        tr.notes = list(self.notes)
        return out

    @staticmethod
    def _tensors_of(p: _Pending) -> tuple[str, str, str]:
        """The ONNX tensors conv/fc ``p`` reads at the end: its input, its model output before and after
        its fused activation (see :meth:`_check_data`)."""
        post = p.model_out or p.onnx_out
        return p.in_tensor, post, p.pre_act or post

    def _captured(self, p: _Pending) -> np.ndarray:
        """The float input of conv/fc ``p`` as onnxruntime computed it, in (H, W, C)."""
        x = self._sample(p.in_tensor)
        ref = p.in_ref
        h, w, c = ref.shape
        if p.in_kind == "fc":
            if ref.chw_flat:
                return x.reshape(c, h, w).transpose(1, 2, 0)
            if ref.kind == "nchw" and x.ndim == 3:
                return x.transpose(1, 2, 0)
            return x.reshape(h, w, c)
        if p.in_tensor == self.input_name and self.layout == "nhwc":
            x = x.transpose(2, 0, 1)
        hwc = self._to_hwc(x, p.in_kind)
        if any(p.in_pad):
            t, l, bt, r = p.in_pad
            hwc = np.pad(hwc, ((t, bt), (l, r), (0, 0)))
        return hwc

    def _check_data(self, tr: Trace, p: _Pending, layer, x, xq, wq, bq) -> None:
        """Reference data of the functional check against onnxruntime (docs/bring_your_own.md).

        ``expected = act(y_model + x_q * dw + dx * w + db)``: the model's own output before the fused
        activation, corrected for the exact Q8.8 rounding of input, weights and bias (``dx = x_q - x``
        etc.). The simulator's output must be within ``tolerance`` of it: 1 LSB for its floor
        rounding, plus a bound on onnxruntime's float32 rounding.
        """
        w = p.weight
        if layer.op == "fc":
            x, xq = x.reshape(1, 1, -1), xq.reshape(1, 1, -1)
            stride, pad, groups = 1, 0, 1
        else:
            stride, pad, groups = layer.stride, layer.padding, layer.groups
        # NOTE: float32 throughout: int16 / 256 and onnxruntime's float32 values are exact in it, and the
        # correction is a few LSB whose own rounding (~2^-24 relative) is far inside the tolerance.
        x32 = x.astype(np.float32, copy=False)   # read only: onnxruntime's float32 tensor as is
        xqf = xq.astype(np.float32) * np.float32(1 / 256)
        wqf = wq.astype(np.float32) * np.float32(1 / 256)
        w32 = w.astype(np.float32)
        corr = _conv_pair(self.onnx, self.ort, xqf, wqf - w32, xqf - x32, w32, stride, pad, groups)
        b = np.zeros(w.shape[0]) if p.bias is None else p.bias
        if bq is not None:
            corr += (bq.astype(np.float64) / 256.0 - b).astype(np.float32)
        _, post_t, pre_t = self._tensors_of(p)
        pre, post = (self._to_hwc(self._sample(t), p.out_kind) for t in (pre_t, post_t))
        shape = layer.out_shape
        sh, sw = p.step
        if (sh, sw) == (1, 1):
            ref = np.ascontiguousarray(post, dtype=np.float32).reshape(shape)
            exp = pre.reshape(shape) + corr.reshape(shape)
        else:
            ref = np.full(shape, np.nan, np.float32)
            exp = np.full(shape, np.nan, np.float32)
            ref[::sh, ::sw] = post.reshape(ref[::sh, ::sw].shape)
            exp[::sh, ::sw] = pre.reshape(exp[::sh, ::sw].shape) + corr[::sh, ::sw].reshape(exp[::sh, ::sw].shape)
        if p.activation == "relu":
            np.maximum(exp, 0.0, out=exp)
        elif p.activation == "relu6":
            np.clip(exp, 0.0, _RELU6_MAX, out=exp)
        # onnxruntime's float32 result differs from exact arithmetic by at most ~K u sum|x w| (K terms
        # per output; the folded constants add a few more roundings): bound sum|x w| per channel.
        k = w.shape[1] * w.shape[2] * w.shape[3]
        s = np.abs(w).reshape(w.shape[0], -1).sum(axis=1) * max(float(np.abs(x32).max(initial=0.0)), 1.0)
        tol = 2.0 ** -8 + (k + 16) * _F32_U * (s + np.abs(b)) + 2.0 ** -14
        tr.reference[p.name] = ref
        tr.expected[p.name] = exp.astype(np.float32, copy=False)
        tr.tolerance[p.name] = tol.astype(np.float32)

    def _q(self, a: np.ndarray, key: str, label: str) -> np.ndarray:
        try:
            q, sat = quantize_q88(a, what=f"{self.where}: node {label!r}: {key}", keep_nonzero=True)
        except TraceError as exc:
            raise WorkloadError(str(exc)) from None
        if sat:
            self.saturated[key] = sat
        return q


def _density(a: np.ndarray) -> float:
    return float(np.count_nonzero(a)) / a.size if a.size else 0.0


def _image_file_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, from its header when Pillow knows the format."""
    _check_image_file(path)
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except Exception:  # noqa: BLE001 - not a format Pillow knows: decode it as _read_image would
        return _decode_image(path).shape[:2]


def _check_image_file(path: str | os.PathLike) -> None:
    try:
        found = Path(path).is_file()
    except OSError as exc:   # e.g. a file name too long
        raise WorkloadError(f"{path}: cannot read the image: {exc.strerror or exc}") from None
    if not found:
        raise WorkloadError(f"{path}: image file not found")


def _decode_image(path: str | os.PathLike) -> np.ndarray:
    import matplotlib.image as mimage

    try:
        return np.asarray(mimage.imread(Path(path)))
    except Exception as exc:  # Pillow and matplotlib raise various types for unreadable files
        raise WorkloadError(f"{path}: not a readable image: {exc}") from None


def _read_image(path: str | os.PathLike, shape: Shape) -> np.ndarray:
    """An image file as normalised real values of ``shape`` (same steps as the bundled photo)."""
    p = Path(path)
    _check_image_file(p)
    _check_image_size(p, shape, where=str(path))
    img = _decode_image(p)
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


# -- resource guards: sizes read from headers and shapes, checked before anything large is allocated ------------

#: Bytes of memory per element of a tensor the import keeps: onnxruntime's float32 output, its numpy copy
#: and a float64 working copy for a captured conv/fc input.
_BYTES_PER_CAPTURED_ELEMENT = 16
#: Bytes of memory per decoded image pixel: the RGBA decode, float64 RGB, and the resized float64 copy.
_BYTES_PER_IMAGE_PIXEL = 64


def _check_model_file_size(p: Path, where: str) -> None:
    """The model file is parsed whole (protobuf) and its initializers copied: about 3x its size."""
    try:
        size = p.stat().st_size
    except OSError:
        return      # _load reports unreadable files itself
    check_memory(3 * size, f"{where}: parsing a {size}-byte model file")


def _check_external_data(onnx, model, base_dir: Path, where: str) -> None:
    """The external data a model names, totalled from its declared lengths (or file sizes) and its tensor
    shapes before any of it is read; onnx itself refuses locations outside the model's folder."""
    helper = onnx.external_data_helper
    total = 0
    for tensor in helper._get_all_tensors(model):   # NOTE: onnx's own walk over every graph's tensors
        if not helper.uses_external_data(tensor):
            continue
        info = helper.ExternalDataInfo(tensor)
        length = info.length or 0
        if not length:
            try:
                length = max(0, os.stat(base_dir / info.location).st_size - (info.offset or 0))
            except (OSError, ValueError, TypeError):
                length = 0      # missing or refused: onnx names the problem when it loads
        total += max(length, math.prod(tensor.dims) * 8)
    if total:
        check_memory(2 * total, f"{where}: loading {total} bytes of external tensor data")


def _check_run_memory(onnx, model, where: str) -> None:
    """Memory the onnxruntime run and the captured activations need, from the inferred tensor shapes."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # _prepare has already run strict inference; this is only an estimate
        return
    g = inferred.graph
    elements = 0
    for v in (*g.input, *g.value_info, *g.output):
        dims = v.type.tensor_type.shape.dim
        elements += math.prod(max(1, d.dim_value) if d.HasField("dim_value") else 1 for d in dims)
    elements += sum(math.prod(t.dims) for t in g.initializer)
    check_memory(_BYTES_PER_CAPTURED_ELEMENT * elements,
                 f"{where}: running the model and capturing its {elements} activation and weight values")


def _check_image_size(p: Path, shape: Shape, where: str) -> None:
    """An image file's pixel count from its header (Pillow reads only the header until asked)."""
    import warnings

    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return
    limit = memory_limit_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # DecompressionBombWarning: our limit decides
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception:   # not an image Pillow knows: imread reports it
            return
        finally:
            Image.MAX_IMAGE_PIXELS = old
    pixels = w * h + shape[0] * shape[1]
    if _BYTES_PER_IMAGE_PIXEL * pixels > limit:
        check_memory(_BYTES_PER_IMAGE_PIXEL * pixels, f"{where}: decoding a {w}x{h} image")
