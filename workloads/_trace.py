"""User-supplied traces: real weights, biases and captured activations.

A :class:`Trace` holds int16 Q8.8 arrays keyed by layer name. It comes from an
ONNX model (``from_onnx``), from a ``.npz`` trace file (:func:`load_trace`), or
is built in Python. The simulator uses a trace's weights and biases for every
conv/fc layer, and a layer's captured input when the trace has one (else the
input is propagated from the previous layers, starting at ``trace.image``).

``.npz`` schema (all arrays int16 unless noted; loaded with
``allow_pickle=False``):

============================  =============================================
key                           contents
============================  =============================================
``format``                    unicode scalar ``"sparsesim-trace-1"``
``network``                   unicode scalar, the network name
``image``                     ``(H, W, C)`` network input (optional)
``weights/<layer>``           ``(C_out, kh, kw, C_in/groups)`` conv/fc weights
``bias/<layer>``              ``(C_out,)`` biases (optional, default 0)
``input/<layer>``             ``(H, W, C)`` the layer's captured input (optional)
``saturated/<key>``           int64 scalar: values of array ``<key>`` that saturated
                              when quantized (optional, :attr:`Trace.saturated`)
``reference/<layer>``         float32 ``(H, W, C)`` the model's own float output of a
                              conv/fc layer (NaN where it has none; optional)
``expected/<layer>``          float32 ``(H, W, C)`` that output corrected for the exact
                              Q8.8 rounding of the layer's inputs and weights (optional)
``tolerance/<layer>``         float32 ``(C,)`` allowed ``|out - expected|`` per channel
``density/<layer>``           float64 ``(2,)`` input and output density of a host layer
                              whose values come from the model's run
============================  =============================================
"""
from __future__ import annotations

import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._errors import SparsesimError, TraceError, check_path_arg
from ._limits import check_memory
from ._network import Network

__all__ = ["Trace", "load_trace", "save_trace", "quantize_q88", "TRACE_FORMAT"]

TRACE_FORMAT = "sparsesim-trace-1"
_Q = 256.0
#: Appended to dtype errors: how to turn real values into a trace's int16.
_DTYPE_FIX = "; convert real values with workloads.quantize_q88()"
#: What numpy's and zipfile's readers raise on a damaged archive (zipfile raises
#: NotImplementedError for unknown versions/compressions and RuntimeError for encryption).
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError,
               RuntimeError, MemoryError, OverflowError)


def quantize_q88(x: np.ndarray, *, what: str = "array", keep_nonzero: bool = False) -> tuple[np.ndarray, int]:
    """Round real values to Q8.8 int16 (nearest, ties to even) and saturate.

    Returns the int16 array and how many values saturated (|x| beyond the Q8.8
    range [-128, 128 - 2**-8]). NaN or inf raise :class:`TraceError` naming ``what``.

    ``keep_nonzero=True`` keeps the zero pattern exact: a non-zero value that
    would round to 0 (``0 < |x| <= 2**-9``) becomes +-1 LSB with its sign, so
    the result has exactly as many non-zeros as ``x`` (saturation never makes a
    value zero). Used for captured activations, whose density is what the
    simulator's timing depends on (``docs/bring_your_own.md``).
    """
    a = np.asarray(x)
    if a.dtype != np.float32:
        # NOTE: float32 (captured activations) stays float32: scaling by 256 and rounding are exact in it.
        a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise TraceError(f"{what}: {bad} value(s) are NaN or infinite; Q8.8 needs finite numbers")
    with np.errstate(over="ignore"):   # |x| near float32's maximum: inf, saturated below like any large value
        q = np.rint(a * _Q)
    if keep_nonzero:
        tiny = (q == 0) & (a != 0)
        q[tiny] = np.sign(a[tiny])
    sat = int(np.count_nonzero((q < -32768) | (q > 32767)))
    return np.clip(q, -32768, 32767).astype(np.int16), sat


@dataclass
class Trace:
    """Per-layer Q8.8 data for one network.

    Attributes
    ----------
    network : network name the trace belongs to.
    image : int16 ``(H, W, C)`` network input, or ``None``.
    weights, biases, inputs : int16 arrays keyed by layer name (see module doc).
    saturated : per array key, how many values saturated when quantizing.
    reference, expected, tolerance : per conv/fc layer, the functional check against the
        model's own float outputs (``docs/bring_your_own.md``, "Functional check"):
        float32 ``(H, W, C)`` arrays (NaN = no value) and a float32 ``(C,)`` tolerance.
    densities : per ``host`` layer, float64 ``(input density, output density)``.
    notes : how an importer chose what the user did not give (e.g. an input shape taken from
        the image); a run reports them. Not stored in trace files.
    """

    network: str
    image: np.ndarray | None = None
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    biases: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    saturated: dict[str, int] = field(default_factory=dict)
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    expected: dict[str, np.ndarray] = field(default_factory=dict)
    tolerance: dict[str, np.ndarray] = field(default_factory=dict)
    densities: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def _float_tables(self):
        return (("reference", self.reference), ("expected", self.expected), ("tolerance", self.tolerance),
                ("density", self.densities))

    def validate(self, network: Network, *, where: str = "trace") -> None:
        """Check names, dtypes and shapes against ``network``; raise :class:`TraceError`."""
        layers = {l.name: l for l in network.layers}

        def arr(key: str, a) -> np.ndarray:
            if not isinstance(a, np.ndarray):
                raise TraceError(f"{where}: {key} must be a numpy array, got {type(a).__name__}")
            if a.dtype != np.int16:
                raise TraceError(f"{where}: {key} has dtype {a.dtype}, expected int16 (Q8.8){_DTYPE_FIX}")
            return a

        if self.image is not None:
            if arr("image", self.image).shape != tuple(network.input_shape):
                raise TraceError(f"{where}: image has shape {self.image.shape}, network {network.name!r} "
                                 f"expects {tuple(network.input_shape)}")
        for kind, table in (("weights", self.weights), ("bias", self.biases), ("input", self.inputs)):
            for name, a in table.items():
                key = f"{kind}/{name}"
                if name not in layers:
                    raise TraceError(f"{where}: {key} names no layer of network {network.name!r}")
                layer = layers[name]
                arr(key, a)
                if kind == "weights":
                    if layer.op not in ("conv", "fc"):
                        raise TraceError(f"{where}: {key}: layer {name!r} is a {layer.op}, which has no weights")
                    want = layer.weight_shape
                    if layer.op == "fc" and a.ndim == 2:
                        want = (want[0], want[3])
                elif kind == "bias":
                    want = (layer.out_channels,)
                else:
                    want = tuple(layer.in_shape)
                if tuple(a.shape) != tuple(want):
                    raise TraceError(f"{where}: {key} has shape {tuple(a.shape)}, layer {name!r} expects {tuple(want)}")
        for kind, table in self._float_tables():
            for name, a in table.items():
                key = f"{kind}/{name}"
                if name not in layers:
                    raise TraceError(f"{where}: {key} names no layer of network {network.name!r}")
                layer = layers[name]
                if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                    raise TraceError(f"{where}: {key} must be a float array")
                want = {"reference": layer.out_shape, "expected": layer.out_shape,
                        "tolerance": (layer.out_channels,), "density": (2,)}[kind]
                if kind in ("reference", "expected", "tolerance") and layer.op not in ("conv", "fc"):
                    raise TraceError(f"{where}: {key}: layer {name!r} is a {layer.op}; only conv and fc are checked")
                if kind == "density" and layer.op != "host":
                    raise TraceError(f"{where}: {key}: layer {name!r} is a {layer.op}, not a host layer")
                if tuple(a.shape) != tuple(want):
                    raise TraceError(f"{where}: {key} has shape {tuple(a.shape)}, layer {name!r} expects {tuple(want)}")
        missing = [l.name for l in network.layers if l.op in ("conv", "fc") and l.name not in self.weights]
        if missing:
            other = (f"; the trace is for network {self.network!r}, not {network.name!r}"
                     if self.network != network.name else "")
            raise TraceError(f"{where}: no weights for layer(s) {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''} (key 'weights/<layer>'){other}")
        if self.image is None:
            first = [l.name for l in network.layers if "input" in l.inputs and l.name not in self.inputs]
            if first:
                raise TraceError(f"{where}: no 'image' and no captured input for layer {first[0]!r}")


def _trace_target(path: str | os.PathLike) -> Path:
    """Where :func:`save_trace` may write: a new or regular file (a link is followed); never a device,
    FIFO or directory, which an atomic replace would destroy."""
    check_path_arg(path, "save_trace", TraceError)
    where = os.fspath(path)
    try:
        real = Path(os.path.realpath(path))
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except (OSError, ValueError) as exc:
        raise TraceError(f"cannot write trace {where!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TraceError(f"cannot write trace {where!r}: it is a directory; give a file name (trace.npz)")
    if not stat.S_ISREG(st.st_mode):
        raise TraceError(f"cannot write trace {where!r}: not a regular file (a trace file is replaced "
                         "atomically, which would destroy a device or FIFO)")
    return real


def save_trace(trace: Trace, path: str | os.PathLike) -> Path:
    """Write ``trace`` as an uncompressed ``.npz`` file (atomically); returns the path.

    ``path`` must be a new or regular file (a symbolic link is followed and kept);
    a directory, device or FIFO is refused with :class:`TraceError`.
    """
    if not isinstance(trace, Trace):
        raise TraceError(f"save_trace expects a Trace, got {type(trace).__name__}")
    shown = Path(path) if isinstance(path, (str, os.PathLike)) else path
    path = _trace_target(path)
    arrays: dict[str, np.ndarray] = {"format": np.array(TRACE_FORMAT), "network": np.array(trace.network)}
    if trace.image is not None:
        arrays["image"] = trace.image
    for kind, table in (("weights", trace.weights), ("bias", trace.biases), ("input", trace.inputs)):
        for name, a in table.items():
            arrays[f"{kind}/{name}"] = a
    for key, count in trace.saturated.items():
        arrays[f"saturated/{key}"] = np.array(int(count), dtype=np.int64)
    for kind, table in trace._float_tables():
        for name, a in table.items():
            arrays[f"{kind}/{name}"] = a
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TraceError(f"cannot write trace {str(shown)!r}: {exc.strerror or exc}") from None
    return shown


_UNEXPECTED = ("allowed: image, weights/<layer>, bias/<layer>, input/<layer>, saturated/<key>, reference/<layer>, "
               "expected/<layer>, tolerance/<layer>, density/<layer>")


def _key_allowed(key: str) -> bool:
    kind, _, name = key.partition("/")
    return key in ("format", "network", "image") or (kind in ("weights", "bias", "input", "saturated", "reference",
                                                              "expected", "tolerance", "density") and bool(name))


def _trace_capacity(network: Network) -> int:
    """The most bytes of arrays a valid trace of ``network`` holds: int16 image, weights, biases and inputs,
    float32 reference, expected output and tolerance, float64 densities."""
    n = 2 * math.prod(network.input_shape)
    for layer in network.layers:
        if layer.op in ("conv", "fc"):
            n += 2 * (math.prod(layer.weight_shape) + layer.out_channels + math.prod(layer.in_shape))
            n += 4 * (2 * math.prod(layer.out_shape) + layer.out_channels)
        n += 16
    return n


def _check_npz_members(path: Path, where: str, network: Network | None) -> None:
    """Names, declared sizes and total size of a trace archive's arrays, from its directory and the
    array headers alone: nothing is inflated before this passes."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                key = info.filename.removesuffix(".npy")
                if not _key_allowed(key):
                    raise TraceError(f"{where}: unexpected array {key!r}; {_UNEXPECTED}")
            total = sum(info.file_size for info in infos)
            if network is not None:
                cap = _trace_capacity(network) + 4096 * (len(infos) + 1)
                if total > cap:
                    raise TraceError(f"{where}: its arrays inflate to {total} bytes, more than any trace of "
                                     f"network {network.name!r} holds ({cap} bytes)")
            check_memory(total, f"{where}: reading {len(infos)} arrays of {total} bytes")
            for info in infos:
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(fh)
                    nbytes = math.prod(shape) * dtype.itemsize
                    if nbytes > info.file_size:
                        key = info.filename.removesuffix(".npy")
                        raise TraceError(f"{where}: array {key!r} declares shape {shape} ({nbytes} bytes) but its "
                                         f"member holds {info.file_size} bytes")
    except SparsesimError:     # our own TraceError or LimitError
        raise
    except _NPZ_ERRORS as exc:
        raise TraceError(f"{where}: not a readable .npz trace ({exc})") from None


def load_trace(path: str | os.PathLike, network: Network | None = None) -> Trace:
    """Read a ``.npz`` trace (never unpickles) and validate it against ``network`` if given.

    Before any array is read, the zip directory and each array's header are checked:
    member names, declared shapes against the member sizes, and the total against the
    memory limit (:func:`~workloads.memory_limit_bytes`) and, with ``network``, against
    what a trace of that network can hold.
    """
    check_path_arg(path, "load_trace", TraceError)
    if network is not None and not isinstance(network, Network):
        raise TraceError(f"load_trace: network must be a Network or None, got {network!r}")
    path = Path(path)
    where = str(path)
    try:
        if path.is_file() and not zipfile.is_zipfile(path):
            raise TraceError(f"{where}: not a .npz (zip) archive")
        if path.is_file():
            _check_npz_members(path, where, network)
        npz = np.load(path, allow_pickle=False)
    except SparsesimError:     # our own TraceError or LimitError
        raise
    except FileNotFoundError:
        raise TraceError(f"{where}: trace file not found") from None
    except _NPZ_ERRORS as exc:
        raise TraceError(f"{where}: not a readable .npz trace ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise TraceError(f"{where}: not a .npz archive (a single .npy array?)")
    data = {}
    with npz:
        for k in npz.files:
            try:
                data[k] = npz[k]
            except _NPZ_ERRORS as exc:
                # Object arrays need pickle, which is refused.
                raise TraceError(f"{where}: unreadable array {k!r} ({exc})") from None
    fmt = data.pop("format", None)
    if fmt is None or fmt.shape != () or str(fmt) != TRACE_FORMAT:
        raise TraceError(f"{where}: missing or unknown 'format' entry; expected {TRACE_FORMAT!r}")
    net_name = data.pop("network", None)
    if net_name is None or net_name.shape != ():
        raise TraceError(f"{where}: missing 'network' entry (a string scalar)")
    trace = Trace(network=str(net_name))
    image = data.pop("image", None)
    trace.image = image
    for key, a in data.items():
        kind, _, name = key.partition("/")
        if kind == "saturated" and name:
            if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
                raise TraceError(f"{where}: {key} must be a non-negative integer scalar (a count of saturated "
                                 f"values), got {a.dtype} array of shape {a.shape}")
            trace.saturated[name] = int(a)
            continue
        floats = dict(trace._float_tables())
        if kind in floats and name:
            ndim = {"reference": 3, "expected": 3, "tolerance": 1, "density": 1}[kind]
            if a.dtype.kind != "f" or a.ndim != ndim:
                raise TraceError(f"{where}: {key} must be a {ndim}-D float array, got {a.dtype} of shape {a.shape}")
            floats[kind][name] = a
            continue
        table = {"weights": trace.weights, "bias": trace.biases, "input": trace.inputs}.get(kind)
        if table is None or not name:
            raise TraceError(f"{where}: unexpected array {key!r}; {_UNEXPECTED}")
        table[name] = a
    arrays = [("image", trace.image)] + [
        (f"{kind}/{k}", v) for kind, table in (("weights", trace.weights), ("bias", trace.biases),
                                                ("input", trace.inputs)) for k, v in table.items()]
    for key, a in arrays:
        if a is None:
            continue
        if a.dtype != np.int16:
            raise TraceError(f"{where}: {key} has dtype {a.dtype}, expected int16 (Q8.8){_DTYPE_FIX}")
        kind = key.partition("/")[0]
        ndims = {"image": (3,), "weights": (4, 2), "bias": (1,), "input": (3,)}[kind]
        if a.ndim not in ndims:
            raise TraceError(f"{where}: {key} has {a.ndim} dimension(s), expected "
                             f"{' or '.join(map(str, ndims))}")
    if network is not None:
        trace.validate(network, where=where)
    return trace
