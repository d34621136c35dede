"""The catalogue of bad inputs: one table drives these tests and docs/errors.md.

Every entry of ``CASES`` is one bad input: a config file, a network, a trace file,
an ONNX model or a command line. The test feeds it to the library (or to
``simulator.cli.main``) and checks the exact exception type and message. The same
entries are rendered as the table in ``docs/errors.md``; ``test_docs_table_matches``
fails when the two differ. After changing a case, regenerate the table with::

    python tests/test_catalogue.py

Conventions: every case runs in an empty temporary working directory, so file
names in messages are relative (``accel.toml``); ``<dir>`` in a message stands for
that directory's absolute path. A message ending in `` …`` is a prefix: the rest
comes from a third-party parser (tomllib, protobuf) and may vary between versions.
CLI cases give the one line printed on stderr (file descriptors 1 and 2 are captured, so
C-level logging counts too); their exit status must be 2, and ``--debug`` must raise the
listed exception type instead.

Every case runs in one child process whose address space is limited to 2 GiB
(``RLIMIT_AS``), each in its own directory: an input that makes sparsesim allocate
gigabytes fails its case there (the allocation raises and the message differs)
instead of passing slowly. The child also records each case's peak RSS (VmHWM,
reset before each case through ``/proc/self/clear_refs``).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import workloads as errors
from simulator import AcceleratorConfig, load_config, simulate, sweep, with_overrides
from simulator import Simulator
from simulator.cli import main
from workloads import (TRACE_FORMAT, Layer, Network, NetworkBuilder, Trace, from_onnx, get_network, get_profile,
                       load_trace, load_user_network, quantize_q88, read_scalesim_csv, from_scalesim_csv,
                       save_trace)

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
BEGIN, END = "<!-- catalogue:begin -->", "<!-- catalogue:end -->"


@dataclass(frozen=True)
class Case:
    """One bad input.

    kind: ``raise`` (``action(dir)`` must raise), ``cli`` (``action(dir)`` returns the argv
    for ``main``) or ``report`` (``action(dir)`` returns text that must contain ``message``).
    """

    id: str
    area: str
    input: str          # what is wrong, for the docs (Markdown, one line)
    error: str          # exception class name in workloads._errors, or "-" for report cases
    message: str        # exact message (or stderr line); a trailing " …" makes it a prefix
    action: Callable[[Path], object]
    kind: str = "raise"


# ---------------------------------------------------------------- helpers
def _toml(text: str | bytes, name: str = "accel.toml"):
    def go(d: Path):
        p = d / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return load_config(name)
    return go


def _npz(name: str, **arrays) -> str:
    with open(name, "wb") as fh:
        np.savez(fh, **arrays)
    return name


def _trace(**arrays):
    """``load_trace`` of a facedet trace file holding ``format``, ``network`` and ``arrays``."""
    def go(d: Path):
        base = {"format": np.array(TRACE_FORMAT), "network": np.array("facedet")}
        return load_trace(_npz("trace.npz", **{**base, **arrays}), get_network("facedet"))
    return go


def _facedet_weights(**replace) -> dict:
    net = get_network("facedet")
    out = {f"weights/{l.name}": np.ones(l.weight_shape, np.int16) for l in net.layers if l.op in ("conv", "fc")}
    out["image"] = np.zeros(net.input_shape, np.int16)
    out.update(replace)
    return {k: v for k, v in out.items() if v is not None}


def _builder(*steps):
    """Run ``NetworkBuilder`` steps ``(method, args, kwargs)`` on an 8x8x3 input."""
    def go(d: Path):
        b = NetworkBuilder("net", (8, 8, 3))
        for method, args, kwargs in steps:
            getattr(b, method)(*args, **kwargs)
        return b.build()
    return go


def _layer(name, op, inputs, shape=(8, 8, 3), out=(8, 8, 3), **kw) -> Layer:
    return Layer(name=name, op=op, inputs=tuple(inputs), in_shapes=(shape,) * len(inputs), out_shape=out, **kw)


def _csv(text: str, loader=from_scalesim_csv):
    header = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"

    def go(d: Path):
        (d / "topo.csv").write_text(header + text)
        return loader("topo.csv")
    return go


def _onnx_bytes(kind: str) -> bytes:
    """A tiny ONNX model: conv 3->4 3x3 on 1x3x8x8 (+ the op that makes it bad)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w = np.full((4, 3, 3, 3), 0.05, np.float32)
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv", kernel_shape=[3, 3])]
    out = "c"
    if kind == "undefined-tensor":
        nodes.append(helper.make_node("Relu", ["nowhere"], ["s"], name="gate"))
        out = "s"
    elif kind == "nan":
        w[0, 0, 0, 0] = np.nan
    elif kind == "huge":
        w[:2] = 300.0          # beyond Q8.8's 127.996: saturates
    inits = [numpy_helper.from_array(w, "w")]
    if kind == "undefined":
        inits[0].data_type = TensorProto.UNDEFINED
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"] if kind == "dynamic" else
                                      [1, 3, 8, 8])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _onnx(content: bytes | str | None, name: str = "model.onnx"):
    def go(d: Path):
        data = _onnx_bytes(content) if isinstance(content, str) else content
        if data is not None:
            (d / name).write_bytes(data)
        return from_onnx(name)
    return go


def _saturation_report(d: Path) -> str:
    (d / "model.onnx").write_bytes(_onnx_bytes("huge"))
    net, trace = from_onnx("model.onnx")
    result = simulate(net, trace=trace)
    assert result.saturated == {"weights/conv": 54}
    assert result.to_dict()["saturated"] == {"weights/conv": 54}
    back = load_trace(save_trace(trace, "trace.npz"), net)      # the counts survive a trace file
    assert back.saturated == {"weights/conv": 54}
    assert simulate(net, trace=back).to_json() == result.to_json()
    return result.format_table()


def _zip_version_99(d: Path) -> str:
    """A valid trace whose central directory claims zip version 9.9 (zipfile: NotImplementedError)."""
    buf = io.BytesIO()
    np.savez(buf, format=np.array(TRACE_FORMAT), network=np.array("facedet"))
    data = bytearray(buf.getvalue())
    i = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, i + 6, 99)          # "version needed to extract"
    (d / "trace.npz").write_bytes(bytes(data))
    return load_trace("trace.npz")


def _object_array(d: Path):
    arr = np.empty(2, dtype=object)
    arr[:] = [None, "x"]
    with open("trace.npz", "wb") as fh:
        np.savez(fh, format=np.array(TRACE_FORMAT), network=np.array("facedet"), image=arr)
    return load_trace("trace.npz")


def _file(name: str, content: str | bytes = "x"):
    def go(d: Path):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return go


def _cli(*argv, setup=None):
    def go(d: Path):
        if setup is not None:
            setup(d)
        return list(argv)
    return go


_K9 = _builder(("conv", ("c9", 8, 9), {"padding": 4}))
_TOPO_OK = "c1, 8, 8, 3, 3, 3, 4, 1,\n"
_SCALESIM_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\n")

# ------------------------------------------------------------------ cases
CASES: list[Case] = [
    # -- accelerator config files -------------------------------------------------------------------
    Case("config-unknown-key", "config", "`[dma] bandwith_bytes_per_cycle = 4` (misspelt key)", "ConfigError",
         "accel.toml: unknown key 'dma.bandwith_bytes_per_cycle' (did you mean 'dma.bandwidth_bytes_per_cycle'?)",
         _toml("[dma]\nbandwith_bytes_per_cycle = 4\n")),
    Case("config-unknown-section", "config", "`[arrays]` (misspelt section)", "ConfigError",
         "accel.toml: unknown key 'arrays' (did you mean 'array'?)",
         _toml("[arrays]\nnum_clusters = 4\n")),
    Case("config-key-without-section", "config", "`latency_cycles = 50` at the top level", "ConfigError",
         "accel.toml: unknown key 'latency_cycles' (did you mean 'dma.latency_cycles'?)",
         _toml("latency_cycles = 50\n")),
    Case("config-section-not-table", "config", "`array = 3`", "ConfigError",
         "accel.toml: 'array' must be a table (a [array] section), got 3",
         _toml("array = 3\n")),
    Case("config-wrong-type", "config", "`[array] num_clusters = \"8\"` (a string)", "ConfigError",
         "accel.toml: array.num_clusters must be an integer, got '8'",
         _toml("[array]\nnum_clusters = \"8\"\n")),
    Case("config-bool-for-int", "config", "`[memory] input_memory_kib = true`", "ConfigError",
         "accel.toml: memory.input_memory_kib must be an integer, got True",
         _toml("[memory]\ninput_memory_kib = true\n")),
    Case("config-float-for-int", "config", "`[array] num_clusters = 8.5`", "ConfigError",
         "accel.toml: array.num_clusters must be an integer, got 8.5",
         _toml("[array]\nnum_clusters = 8.5\n")),
    Case("config-zero-size", "config", "`[array] num_clusters = 0`", "ConfigError",
         "accel.toml: array.num_clusters must be a positive integer, got 0",
         _toml("[array]\nnum_clusters = 0\n")),
    Case("config-negative-size", "config", "`[memory] input_memory_kib = -512`", "ConfigError",
         "accel.toml: memory.input_memory_kib must be a positive integer, got -512",
         _toml("[memory]\ninput_memory_kib = -512\n")),
    Case("config-negative-latency", "config", "`[dma] latency_cycles = -1`", "ConfigError",
         "accel.toml: dma.latency_cycles must be a non-negative integer, got -1",
         _toml("[dma]\nlatency_cycles = -1\n")),
    Case("config-not-power-of-two", "config", "`[array] macs_per_cluster = 12`", "ConfigError",
         "accel.toml: array.macs_per_cluster must be a power of two, got 12",
         _toml("[array]\nmacs_per_cluster = 12\n")),
    Case("config-macs-per-channel", "config", "`[array] max_macs_per_channel = 3`", "ConfigError",
         "accel.toml: array.max_macs_per_channel must be one of 1, 2, 4, 8, got 3",
         _toml("[array]\nmax_macs_per_channel = 3\n")),
    Case("config-kernel-size-range", "config", "`[array] max_kernel_size = 16`", "ConfigError",
         "accel.toml: array.max_kernel_size must be in 1..15, got 16",
         _toml("[array]\nmax_kernel_size = 16\n")),
    Case("config-zero-bandwidth", "config", "`[dma] bandwidth_bytes_per_cycle = 0`", "ConfigError",
         "accel.toml: dma.bandwidth_bytes_per_cycle must be > 0, got 0.0",
         _toml("[dma]\nbandwidth_bytes_per_cycle = 0\n")),
    Case("config-nan-bandwidth", "config", "`[dma] bandwidth_bytes_per_cycle = nan`", "ConfigError",
         "accel.toml: dma.bandwidth_bytes_per_cycle must be finite, got nan",
         _toml("[dma]\nbandwidth_bytes_per_cycle = nan\n")),
    Case("config-infinite-clock", "config", "`[array] clock_mhz = inf`", "ConfigError",
         "accel.toml: array.clock_mhz must be finite, got inf",
         _toml("[array]\nclock_mhz = inf\n")),
    Case("config-values-per-beat", "config", "`[dma] values_per_beat = 8` with 8-byte beats", "ConfigError",
         "accel.toml: dma.values_per_beat must fit in dma.beat_bytes (8) at 2 bytes per value, i.e. be <= 4, got 8",
         _toml("[dma]\nvalues_per_beat = 8\n")),
    Case("config-num-pus", "config", "`[array] num_pus = 3` (does not divide 128 MACs)", "ConfigError",
         "accel.toml: array.num_pus must divide the 128 MACs (array.num_clusters x array.macs_per_cluster), got 3",
         _toml("[array]\nnum_pus = 3\n")),
    Case("config-dataflow", "config", "`[array] dataflow = \"sparse\"`", "ConfigError",
         "accel.toml: array.dataflow must be one of dense, nullhop, rsnn, combined, nullhop-prefetch, got 'sparse'",
         _toml("[array]\ndataflow = \"sparse\"\n")),
    Case("config-precision", "config", "`[precision] frac_bits = 4`", "ConfigError",
         "accel.toml: precision.frac_bits must be 8 (only Q8.8 is supported), got 4",
         _toml("[precision]\nfrac_bits = 4\n")),
    Case("config-dram-type", "config", "`[energy] dram_type = \"DDR5\"`", "ConfigError",
         "accel.toml: energy.dram_type must be one of LPDDR4, DDR4, HBM2, got 'DDR5'",
         _toml("[energy]\ndram_type = \"DDR5\"\n")),
    Case("config-broken-toml", "config", "`[array` (unclosed table header)", "ConfigError",
         "accel.toml: invalid TOML: …",
         _toml("[array\nnum_clusters = 8\n")),
    Case("config-duplicate-key", "config", "`num_clusters` set twice in `[array]`", "ConfigError",
         "accel.toml: invalid TOML: …",
         _toml("[array]\nnum_clusters = 8\nnum_clusters = 4\n")),
    Case("config-not-utf8", "config", "a file of non-UTF-8 bytes", "ConfigError",
         "accel.toml: invalid TOML: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
         _toml(b"\xff\xfe[array]\n")),
    Case("config-unknown-base", "config", "`base = \"nullhopp\"`", "ConfigError",
         "accel.toml: unknown preset 'nullhopp' (did you mean 'nullhop'?); available presets: combined, dense, "
         "nullhop, nullhop-prefetch, rsnn",
         _toml("base = \"nullhopp\"\n")),
    Case("config-missing-file", "config", "`load_config(\"missing.toml\")`", "ConfigError",
         "missing.toml: config file not found",
         lambda d: load_config("missing.toml")),
    Case("config-null-byte", "config", "a file name containing a NUL byte", "ConfigError",
         "'a\\x00.toml': not a valid file name (embedded null byte)",
         lambda d: load_config("a\x00.toml")),
    Case("config-energy-table-missing", "config", "`[energy] table = \"nope.toml\"` (no such file)", "ConfigError",
         "<dir>/nope.toml: energy table not found",
         lambda d: Simulator(_toml("[energy]\ntable = \"nope.toml\"\n")(d))),
    Case("config-override-unknown-key", "config", "`with_overrides(cfg, {\"array.num_cluster\": 4})`",
         "ConfigError", "unknown key 'array.num_cluster' (did you mean 'array.num_clusters'?)",
         lambda d: with_overrides(AcceleratorConfig(), {"array.num_cluster": 4})),
    # -- mapping a network onto the configured accelerator --------------------------------------------
    Case("mapping-memory-too-small", "config", "`memory.input_memory_kib = 1` (one VGG16 stripe needs 6 KiB)",
         "MappingError",
         "layer 'conv1_1': memory.input_memory_kib=1 is too small for one stripe of 4 input rows, which needs 6 KiB",
         lambda d: simulate("vgg16", overrides={"memory.input_memory_kib": 1}, trace="synthetic", check=False)),
    Case("mapping-kernel-too-large", "config", "a 9x9 conv on NullHop (1x1..7x7)", "MappingError",
         "layer 'c9': kernel 9x9 exceeds array.max_kernel_size=7 (NullHop supports 1x1..7x7)",
         lambda d: simulate(_K9(d), check=False)),
    Case("mapping-kernel-memory", "config", "`memory.kernel_memory_words_per_mac = 1`", "MappingError",
         "layer 'conv1': 5x5x1 = 25 weights per output channel need 26 kernel memories of "
         "memory.kernel_memory_words_per_mac=1, more than array.max_macs_per_channel=8",
         lambda d: simulate("facedet", overrides={"memory.kernel_memory_words_per_mac": 1}, check=False)),
    # -- networks ----------------------------------------------------------------------------------
    Case("network-unknown", "network", "`get_network(\"vgg17\")`", "WorkloadError",
         "unknown network 'vgg17'; choose one of facedet, mobilenet_v1, mobilenet_v2, resnet18, resnet50, "
         "roshambonet, vgg16, vgg19 (did you mean 'vgg19'?)",
         lambda d: get_network("vgg17")),
    Case("network-add-shapes", "network", "`add` of a 6x6x4 and a 6x6x8 tensor", "WorkloadError",
         "layer 'sum': add inputs 'a' (6, 6, 4) and 'b' (6, 6, 8) differ in shape",
         _builder(("conv", ("a", 4, 3), {}), ("conv", ("b", 8, 3), {"inputs": "input"}),
                  ("add", ("sum", ("a", "b")), {}))),
    Case("network-concat-shapes", "network", "`concat` of 6x6 and 8x8 maps", "WorkloadError",
         "layer 'cat': concat inputs differ in height/width: ((6, 6, 4), (8, 8, 3))",
         _builder(("conv", ("a", 4, 3), {}), ("concat", ("cat", ("a", "input")), {}))),
    Case("network-kernel-does-not-fit", "network", "an 11x11 conv on an 8x8 input without padding",
         "WorkloadError", "layer 'big': kernel 11x11 with padding 0 does not fit the 8x8 input",
         _builder(("conv", ("big", 4, 11), {}))),
    Case("network-groups", "network", "`groups=2` on a 3-channel input", "WorkloadError",
         "layer 'g': groups=2 must divide in_channels=3 and out_channels=4",
         _builder(("conv", ("g", 4, 3), {"groups": 2}))),
    Case("network-activation", "network", "`activation=\"gelu\"`", "WorkloadError",
         "layer 'c': activation must be one of (None, 'relu', 'relu6'), got 'gelu'",
         _builder(("conv", ("c", 4, 3), {"activation": "gelu"}))),
    Case("network-unsupported-op", "network", "a `Layer` with `op=\"softmax\"`", "WorkloadError",
         "network 'net', layer 'prob': unsupported op 'softmax'; supported ops: conv, fc, maxpool, avgpool, add, "
         "concat, host",
         lambda d: Network("net", (8, 8, 3), (_layer("prob", "softmax", ["input"]),))),
    Case("network-duplicate-name", "network", "two layers named `c`", "WorkloadError",
         "network 'net': duplicate layer name 'c'",
         lambda d: Network("net", (8, 8, 3), (_layer("c", "maxpool", ["input"]), _layer("c", "maxpool", ["c"])))),
    Case("network-input-order", "network", "a layer reading a later layer", "WorkloadError",
         "network 'net', layer 'a': input 'b' is not an earlier layer or 'input'",
         lambda d: Network("net", (8, 8, 3), (_layer("a", "maxpool", ["b"]), _layer("b", "maxpool", ["input"])))),
    Case("network-input-shape", "network", "`NetworkBuilder(\"net\", (0, 8, 3))`", "WorkloadError",
         "network 'net': input shape must be positive, got (0, 8, 3)",
         lambda d: NetworkBuilder("net", (0, 8, 3))),
    Case("network-profile-unknown", "network", "`--profile han2016`", "WorkloadError",
         "unknown density profile 'han2016'; did you mean 'han2015_vgg16'? known profiles: "
         "distiller_mobilenet_v1_agp, distiller_resnet50_agp80, han2015_alexnet, han2015_vgg16, uniform-<density>",
         lambda d: get_profile("han2016")),
    Case("network-profile-density", "network", "`--profile uniform-1.5`", "WorkloadError",
         "uniform profile density must be in [0, 1], not 1.5",
         lambda d: get_profile("uniform-1.5")),
    Case("network-seed", "network", "`simulate(\"facedet\", seed=-1)`", "WorkloadError",
         "seed must be a non-negative integer, got -1",
         lambda d: simulate("facedet", seed=-1)),
    Case("network-file-type", "network", "`load_user_network(\"model.pt\")`", "WorkloadError",
         "model.pt: unknown network file type '.pt'; expected one of .onnx, .csv (ONNX model or SCALE-Sim "
         "topology)",
         lambda d: load_user_network("model.pt")),
    Case("scalesim-chain", "network", "SCALE-Sim rows whose shapes do not chain (6x6x4 output, then a 6x6x5 IFMAP)",
         "WorkloadError",
         "topo.csv: row 3 ('c2'): IFMAP 6x6x5 does not follow from the previous row's output 6x6x4 (directly, "
         "with symmetric padding, after a 2x2 max pool, or after a global average pool); to simulate the rows as "
         "independent layers use workloads.scalesim_networks()",
         _csv(_TOPO_OK + "c2, 6, 6, 3, 3, 5, 4, 1,\n")),
    Case("scalesim-not-integer", "network", "SCALE-Sim row with `three` as the filter height", "WorkloadError",
         "topo.csv: row 2 ('c1'), column 4 ('Filter Height'): 'three' is not a positive integer",
         _csv("c1, 8, 8, three, 3, 3, 4, 1,\n", read_scalesim_csv)),
    # -- trace files ---------------------------------------------------------------------------------
    Case("trace-missing-weights", "trace", "no `weights/<layer>` arrays", "TraceError",
         "trace.npz: no weights for layer(s) conv1, conv2, ip1, ip2 (key 'weights/<layer>')",
         _trace(image=np.zeros((36, 36, 1), np.int16))),
    Case("trace-other-network", "trace", "a vgg16 trace loaded for facedet", "TraceError",
         "trace.npz: no weights for layer(s) conv1, conv2, ip1, ip2 (key 'weights/<layer>'); the trace is for "
         "network 'vgg16', not 'facedet'",
         _trace(network=np.array("vgg16"))),
    Case("trace-float-dtype", "trace", "float32 weights", "TraceError",
         "trace.npz: weights/conv1 has dtype float32, expected int16 (Q8.8); convert real values with "
         "workloads.quantize_q88()",
         _trace(**_facedet_weights(**{"weights/conv1": np.zeros((16, 5, 5, 1), np.float32)}))),
    Case("trace-nan-float", "trace", "float64 input with NaN", "TraceError",
         "trace.npz: input/conv2 has dtype float64, expected int16 (Q8.8); convert real values with "
         "workloads.quantize_q88()",
         _trace(**_facedet_weights(**{"input/conv2": np.full((16, 16, 16), np.nan)}))),
    Case("trace-wrong-shape", "trace", "3x3 kernels for facedet's 5x5 `conv1`", "TraceError",
         "trace.npz: weights/conv1 has shape (16, 3, 3, 1), layer 'conv1' expects (16, 5, 5, 1)",
         _trace(**_facedet_weights(**{"weights/conv1": np.zeros((16, 3, 3, 1), np.int16)}))),
    Case("trace-wrong-rank", "trace", "a 2-D bias", "TraceError",
         "trace.npz: bias/conv1 has 2 dimension(s), expected 1",
         _trace(**_facedet_weights(**{"bias/conv1": np.zeros((16, 1), np.int16)}))),
    Case("trace-image-shape", "trace", "a 4x4x1 image for a 36x36x1 network", "TraceError",
         "trace.npz: image has shape (4, 4, 1), network 'facedet' expects (36, 36, 1)",
         _trace(**_facedet_weights(image=np.zeros((4, 4, 1), np.int16)))),
    Case("trace-object-array", "trace", "an object array (needs pickle)", "TraceError",
         "trace.npz: unreadable array 'image' (Object arrays cannot be loaded when allow_pickle=False)",
         _object_array),
    Case("trace-unexpected-key", "trace", "an array named `activations/conv1`", "TraceError",
         "trace.npz: unexpected array 'activations/conv1'; allowed: image, weights/<layer>, bias/<layer>, "
         "input/<layer>, saturated/<key>, reference/<layer>, expected/<layer>, tolerance/<layer>, density/<layer>",
         _trace(**{"activations/conv1": np.zeros(3, np.int16)})),
    Case("trace-unknown-layer", "trace", "`weights/conv9` (no such layer)", "TraceError",
         "trace.npz: weights/conv9 names no layer of network 'facedet'",
         _trace(**_facedet_weights(**{"weights/conv9": np.zeros((1, 1, 1, 1), np.int16)}))),
    Case("trace-weights-for-pool", "trace", "`weights/pool1` (a max pool)", "TraceError",
         "trace.npz: weights/pool1: layer 'pool1' is a maxpool, which has no weights",
         _trace(**_facedet_weights(**{"weights/pool1": np.zeros((1, 1, 1, 1), np.int16)}))),
    Case("trace-bad-saturation-count", "trace", "`saturated/weights/conv1` holding -3", "TraceError",
         "trace.npz: saturated/weights/conv1 must be a non-negative integer scalar (a count of saturated values), "
         "got int64 array of shape ()",
         _trace(**_facedet_weights(**{"saturated/weights/conv1": np.array(-3, np.int64)}))),
    Case("trace-missing-format", "trace", "no `format` entry", "TraceError",
         "trace.npz: missing or unknown 'format' entry; expected 'sparsesim-trace-1'",
         _trace(format=np.array("my-trace-2"))),
    Case("trace-not-zip", "trace", "a text file named `trace.npz`", "TraceError",
         "trace.npz: not a .npz (zip) archive",
         lambda d: (_file("trace.npz", "hello")(d), load_trace("trace.npz"))),
    Case("trace-zip-version", "trace", "a zip claiming version 9.9", "TraceError",
         "trace.npz: not a readable .npz trace (zip file version 9.9)",
         _zip_version_99),
    Case("trace-missing-file", "trace", "`load_trace(\"none.npz\")`", "TraceError",
         "none.npz: trace file not found",
         lambda d: load_trace("none.npz")),
    Case("trace-not-an-array", "trace", "`Trace(image=[[1]])` built in Python", "TraceError",
         "trace: image must be a numpy array, got list",
         lambda d: simulate("facedet", trace=Trace(network="facedet", image=[[1]]))),
    Case("trace-nan-quantize", "trace", "`quantize_q88` of NaN or inf", "TraceError",
         "weights/conv1: 2 value(s) are NaN or infinite; Q8.8 needs finite numbers",
         lambda d: quantize_q88(np.array([1.0, np.nan, -np.inf]), what="weights/conv1")),
    Case("trace-saturation", "trace", "ONNX weights of 300.0 (Q8.8 tops out at 127.996)", "-",
         "saturated to Q8.8: 54 values (weights/conv 54)",
         _saturation_report, kind="report"),
    # -- ONNX models -------------------------------------------------------------------------------------
    Case("onnx-empty", "onnx", "an empty `.onnx` file", "WorkloadError",
         "model.onnx: not a readable ONNX model: the file is empty",
         _onnx(b"")),
    Case("onnx-random-bytes", "onnx", "256 random bytes", "WorkloadError",
         "model.onnx: not a readable ONNX model: …",
         _onnx(np.random.default_rng(7).bytes(256))),
    Case("onnx-text", "onnx", "a text file named `model.onnx`", "WorkloadError",
         "model.onnx: not a readable ONNX model: …",
         _onnx(b"this is not a model\n")),
    Case("onnx-malformed", "onnx", "an initializer with element type UNDEFINED", "WorkloadError",
         "model.onnx: not a readable ONNX model: malformed content (TypeError: The element type in the input "
         "tensor is UNDEFINED.)",
         _onnx("undefined")),
    Case("onnx-undefined-tensor", "onnx", "a node `gate` reading a tensor no node produces", "WorkloadError",
         "model.onnx: ONNX shape inference failed: …",
         _onnx("undefined-tensor")),
    Case("onnx-dynamic-shape", "onnx", "input `(1, 3, H, W)` and no `input_shape`", "WorkloadError",
         "model.onnx: input 'image' has dynamic dimensions (1, 3, ?, ?); give their sizes with --input-shape "
         "(Python: input_shape=), e.g. --input-shape 1,3,H,W",
         _onnx("dynamic")),
    Case("onnx-nan-weights", "onnx", "a NaN weight", "WorkloadError",
         "model.onnx: node 'conv': weights/conv: 1 value(s) are NaN or infinite; Q8.8 needs finite numbers",
         _onnx("nan")),
    Case("onnx-missing-file", "onnx", "`from_onnx(\"none.onnx\")`", "WorkloadError",
         "none.onnx: file not found",
         _onnx(None, "none.onnx")),
    # -- command line ------------------------------------------------------------------------------------
    Case("cli-unknown-network", "cli", "`sparsesim run vgg17`", "WorkloadError",
         "sparsesim: error: unknown network 'vgg17'; choose one of facedet, mobilenet_v1, mobilenet_v2, resnet18, "
         "resnet50, roshambonet, vgg16, vgg19 (did you mean 'vgg19'?)",
         _cli("run", "vgg17"), kind="cli"),
    Case("cli-network-file-type", "cli", "`sparsesim run model.pt`", "WorkloadError",
         "sparsesim: error: model.pt: unknown network file type '.pt'; expected one of .onnx, .csv (ONNX model or "
         "SCALE-Sim topology)",
         _cli("run", "model.pt"), kind="cli"),
    Case("cli-bad-seed", "cli", "`--seed -3`", "SparsesimError",
         "sparsesim: error: sparsesim run: argument --seed: expected a non-negative integer, got '-3'",
         _cli("run", "facedet", "--seed", "-3"), kind="cli"),
    Case("cli-bad-trace", "cli", "`--trace real`", "SparsesimError",
         "sparsesim: error: sparsesim run: argument --trace: invalid choice: 'real' (choose from 'propagated', "
         "'synthetic')",
         _cli("run", "facedet", "--trace", "real"), kind="cli"),
    Case("cli-bad-engine", "cli", "`--engine numba`", "SparsesimError",
         "sparsesim: error: sparsesim run: argument --engine: invalid choice: 'numba' (choose from 'compiled', "
         "'simpy')",
         _cli("run", "facedet", "--engine", "numba"), kind="cli"),
    Case("cli-bad-dataflow", "cli", "`compare --dataflows sparse`", "SparsesimError",
         "sparsesim: error: sparsesim compare: argument --dataflows: invalid choice: 'sparse' (choose from "
         "'dense', 'nullhop', 'rsnn', 'combined', 'nullhop-prefetch')",
         _cli("compare", "facedet", "--dataflows", "sparse"), kind="cli"),
    Case("cli-bad-max-rows", "cli", "`validate --max-rows -1`", "SparsesimError",
         "sparsesim: error: sparsesim validate: argument --max-rows: expected a non-negative integer, got '-1'",
         _cli("validate", "facedet", "--max-rows", "-1"), kind="cli"),
    Case("cli-unknown-layer", "cli", "`validate facedet --layers conv9`", "WorkloadError",
         "sparsesim: error: layer 'conv9' is not a layer of the network; accelerator layers of 'facedet' are: "
         "conv1, conv2",
         _cli("validate", "facedet", "--layers", "conv9"), kind="cli"),
    Case("cli-set-syntax", "cli", "`--set dma.latency_cycles` (no `=`)", "ConfigError",
         "sparsesim: error: --set expects key=value, got 'dma.latency_cycles'",
         _cli("run", "facedet", "--set", "dma.latency_cycles"), kind="cli"),
    Case("cli-set-unknown-key", "cli", "`--set array.num_cluster=4`", "ConfigError",
         "sparsesim: error: unknown key 'array.num_cluster' (did you mean 'array.num_clusters'?)",
         _cli("run", "facedet", "--set", "array.num_cluster=4"), kind="cli"),
    Case("cli-set-bad-value", "cli", "`--set array.num_clusters=eight`", "ConfigError",
         "sparsesim: error: array.num_clusters must be an integer, got 'eight'",
         _cli("run", "facedet", "--set", "array.num_clusters=eight"), kind="cli"),
    Case("cli-unknown-preset", "cli", "`--accel nullhopp`", "ConfigError",
         "sparsesim: error: unknown preset 'nullhopp' (did you mean 'nullhop'?); available presets: combined, "
         "dense, nullhop, nullhop-prefetch, rsnn",
         _cli("run", "facedet", "--accel", "nullhopp"), kind="cli"),
    Case("cli-broken-accel-file", "cli", "`--accel accel.toml` with `[array` in it", "ConfigError",
         "sparsesim: error: accel.toml: invalid TOML: …",
         _cli("run", "facedet", "--accel", "accel.toml", setup=_file("accel.toml", "[array\n")), kind="cli"),
    Case("cli-empty-output", "cli", "`--json \"\"`", "SparsesimError",
         "sparsesim: error: sparsesim run: argument --json: expected an output file name, got ''",
         _cli("run", "facedet", "--json", ""), kind="cli"),
    Case("cli-output-under-file", "cli", "`--json notes.txt/r.json` (`notes.txt` is a file)", "SparsesimError",
         "sparsesim: error: cannot write 'notes.txt/r.json': 'notes.txt' is a file, not a directory",
         _cli("run", "facedet", "--quiet", "--no-check", "--json", "notes.txt/r.json", setup=_file("notes.txt")),
         kind="cli"),
    Case("cli-output-is-directory", "cli", "`--csv out` (`out` is a directory)", "SparsesimError",
         "sparsesim: error: cannot write 'out': it is a directory; give a file name",
         _cli("run", "facedet", "--quiet", "--no-check", "--csv", "out", setup=_file("out/keep")), kind="cli"),
    Case("cli-image-for-zoo", "cli", "`run facedet --image cat.png`", "SparsesimError",
         "sparsesim: error: --image applies only to ONNX models (.onnx)",
         _cli("run", "facedet", "--image", "cat.png"), kind="cli"),
    Case("cli-trace-file-missing", "cli", "`--trace-file none.npz`", "TraceError",
         "sparsesim: error: none.npz: trace file not found",
         _cli("run", "facedet", "--trace-file", "none.npz"), kind="cli"),
    Case("cli-corrupt-onnx", "cli", "`sparsesim run model.onnx` (random bytes)", "WorkloadError",
         "sparsesim: error: model.onnx: not a readable ONNX model: …",
         _cli("run", "model.onnx", setup=_file("model.onnx", np.random.default_rng(7).bytes(256))), kind="cli"),
    Case("cli-no-command", "cli", "`sparsesim` (no command)", "SparsesimError",
         "sparsesim: error: the following arguments are required: command",
         _cli(), kind="cli"),
    Case("cli-unknown-option", "cli", "`run facedet --fast`", "SparsesimError",
         "sparsesim: error: unrecognized arguments: --fast",
         _cli("run", "facedet", "--fast"), kind="cli"),
    Case("cli-sweep-unchained", "cli", "`sweep topo.csv` whose rows do not chain", "SparsesimError",
         "sparsesim: error: topo.csv: its rows do not chain; sparsesim sweep needs one network (sparsesim run takes "
         "the rows one by one)",
         _cli("sweep", "topo.csv", "-o", "out", setup=_file("topo.csv", _SCALESIM_HEADER + _TOPO_OK
                                                             + "c2, 6, 6, 3, 3, 5, 4, 1,\n")), kind="cli"),
    Case("cli-plot-where-no-point", "cli", "`plot s.csv --where macs=96` (the sweep has 64 and 128)", "SparsesimError",
         "sparsesim: error: --where macs=96: no sweep point has that value; it has 64, 128",
         _cli("plot", "s.csv", "-o", "p.png", "--where", "macs=96",
              setup=_file("s.csv", "point,macs,network,latency_ms\na,64,n,2.0\nb,128,n,1.0\n")), kind="cli"),
    Case("cli-plot-sweep-option-on-run", "cli", "`plot r.json --logy` (a run result)", "SparsesimError",
         "sparsesim: error: --x, --metric, --where and --logy apply to a sweep; 'r.json' is a run result",
         _cli("plot", "r.json", "-o", "p.png", "--logy", setup=_file("r.json", '{"layers": [], "totals": {}}')),
         kind="cli"),
]


# -- bounds on every numeric config field (TOML, --set and sweep grids alike) --------------------------------
_I64 = 2**63 - 1
CASES += [
    Case("bound-set-clusters-int64", "config", "`--set array.num_clusters=9223372036854775807`", "ConfigError",
         "sparsesim: error: array.num_clusters must be at most 4096 clusters, got 9223372036854775807",
         _cli("run", "facedet", "--set", f"array.num_clusters={_I64}"), kind="cli"),
    Case("bound-set-bandwidth-tiny", "config", "`--set dma.bandwidth_bytes_per_cycle=1e-300`", "ConfigError",
         "sparsesim: error: dma.bandwidth_bytes_per_cycle must be at least 0.015625 bytes/cycle, got 1e-300",
         _cli("run", "facedet", "--set", "dma.bandwidth_bytes_per_cycle=1e-300"), kind="cli"),
    Case("bound-set-latency-int64", "config", "`--set dma.latency_cycles=2**63-1`", "ConfigError",
         "sparsesim: error: dma.latency_cycles must be at most 1000000000 cycles, got 9223372036854775807",
         _cli("run", "facedet", "--set", f"dma.latency_cycles={_I64}"), kind="cli"),
    Case("bound-set-clock-tiny", "config", "`--set array.clock_mhz=1e-300`", "ConfigError",
         "sparsesim: error: array.clock_mhz must be at least 1 MHz, got 1e-300",
         _cli("run", "facedet", "--set", "array.clock_mhz=1e-300"), kind="cli"),
    Case("bound-set-clock-huge", "config", "`--set array.clock_mhz=1e300`", "ConfigError",
         "sparsesim: error: array.clock_mhz must be at most 100000 MHz, got 1e+300",
         _cli("run", "facedet", "--set", "array.clock_mhz=1e300"), kind="cli"),
    Case("bound-set-encoder-rate", "config", "`--set array.encoder_values_per_cycle=1000000000`", "ConfigError",
         "sparsesim: error: array.encoder_values_per_cycle must be at most 4096 values/cycle, got 1000000000",
         _cli("run", "facedet", "--set", "array.encoder_values_per_cycle=1000000000"), kind="cli"),
    Case("bound-set-macs-multiple", "config", "`--set macs=100` (16 MACs per cluster)", "ConfigError",
         "sparsesim: error: macs=100 is not a multiple of array.macs_per_cluster (16)",
         _cli("run", "facedet", "--set", "macs=100"), kind="cli"),
    Case("bound-set-macs-zero", "config", "`--set macs=0`", "ConfigError",
         "sparsesim: error: macs must be an integer in 1..65536 (MACs), got '0'",
         _cli("run", "facedet", "--set", "macs=0"), kind="cli"),
    Case("bound-toml-clusters-int64", "config", "`[array] num_clusters = 9223372036854775807`", "ConfigError",
         "accel.toml: array.num_clusters must be at most 4096 clusters, got 9223372036854775807",
         _toml(f"[array]\nnum_clusters = {_I64}\n")),
    Case("bound-toml-latency-huge", "config", "`[dma] latency_cycles = 10**30` (beyond int64; TOML reads it)",
         "ConfigError",
         "accel.toml: dma.latency_cycles must be at most 1000000000 cycles, got 1000000000000000000000000000000",
         _toml("[dma]\nlatency_cycles = 1000000000000000000000000000000\n")),
    Case("bound-toml-clock-huge", "config", "`[array] clock_mhz = 1e308`", "ConfigError",
         "accel.toml: array.clock_mhz must be at most 100000 MHz, got 1e+308",
         _toml("[array]\nclock_mhz = 1e308\n")),
    Case("bound-toml-kernel-memory", "config", "`[memory] kernel_memory_words_per_mac = 2**40`", "ConfigError",
         "accel.toml: memory.kernel_memory_words_per_mac must be at most 16777216 words, got 1099511627776",
         _toml("[memory]\nkernel_memory_words_per_mac = 1099511627776\n")),
    Case("bound-toml-fifo-tiny", "config", "`[memory] decoder_fifo_kib = 0.0001` (less than a byte)", "ConfigError",
         "accel.toml: memory.decoder_fifo_kib must be at least 0.0009765625 KiB, got 0.0001",
         _toml("[memory]\ndecoder_fifo_kib = 0.0001\n")),
    Case("bound-toml-handoff", "config", "`[array] handoff_columns = 1000000`", "ConfigError",
         "accel.toml: array.handoff_columns must be at most 65536 columns, got 1000000",
         _toml("[array]\nhandoff_columns = 1000000\n")),
    Case("bound-toml-config-beats", "config", "`[dma] config_beats_per_pass = 10000000`", "ConfigError",
         "accel.toml: dma.config_beats_per_pass must be at most 1000000 beats, got 10000000",
         _toml("[dma]\nconfig_beats_per_pass = 10000000\n")),
    Case("bound-toml-subbank", "config", "`[energy] sram_subbank_kib = 2147483648`", "ConfigError",
         "accel.toml: energy.sram_subbank_kib must be at most 1048576 KiB, got 2147483648",
         _toml("[energy]\nsram_subbank_kib = 2147483648\n")),
    Case("bound-toml-beat-bytes", "config", "`[dma] beat_bytes = 65536`", "ConfigError",
         "accel.toml: dma.beat_bytes must be at most 4096 bytes, got 65536",
         _toml("[dma]\nbeat_bytes = 65536\n")),
    Case("bound-toml-total-macs", "config", "4096 clusters of 1024 MACs", "ConfigError",
         "accel.toml: array.num_clusters x array.macs_per_cluster must be at most 65536 MACs, got 4096 x 1024 = "
         "4194304",
         _toml("[array]\nnum_clusters = 4096\nmacs_per_cluster = 1024\nnum_pus = 1\n")),
    Case("bound-override-clock", "config", "`with_overrides(cfg, {\"array.clock_mhz\": 1e-300})`", "ConfigError",
         "array.clock_mhz must be at least 1 MHz, got 1e-300",
         lambda d: with_overrides(AcceleratorConfig(), {"array.clock_mhz": 1e-300})),
    Case("bound-grid-latency-int64", "config", "`sweep --grid dma.latency_cycles=1,2**63-1`", "ConfigError",
         "sparsesim: error: sweep grid: dma.latency_cycles must be at most 1000000000 cycles, got 9223372036854775807",
         _cli("sweep", "facedet", "-o", "out", "--grid", f"dma.latency_cycles=1,{_I64}"), kind="cli"),
    Case("bound-grid-bandwidth-tiny", "config", "`sweep --grid dma.bandwidth_bytes_per_cycle=8,1e-300`",
         "ConfigError",
         "sparsesim: error: sweep grid: dma.bandwidth_bytes_per_cycle must be at least 0.015625 bytes/cycle, got "
         "1e-300",
         _cli("sweep", "facedet", "-o", "out", "--grid", "dma.bandwidth_bytes_per_cycle=8,1e-300"), kind="cli"),
    Case("bound-grid-macs-huge", "config", "`sweep --grid macs=2**70`", "ConfigError",
         "sparsesim: error: sweep grid point macs=1180591620717411303424: array.num_clusters must be at most 4096 "
         "clusters, got 73786976294838206464",
         _cli("sweep", "facedet", "-o", "out", "--grid", f"macs={2**70}"), kind="cli"),
]

# -- output paths: checked before simulating; regular files atomic, devices and FIFOs written through --------
def _fifo(name: str):
    def go(d: Path):
        os.mkfifo(d / name)
    return go


def _socket(name: str):
    def go(d: Path):
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(d / name))
        s.close()
    return go


_LONG = "r" * 300 + ".json"
CASES += [
    Case("out-same-path", "output", "`--json r.json --csv ./r.json`", "SparsesimError",
         "sparsesim: error: --json and --csv both write './r.json'; give each output its own file",
         _cli("run", "facedet", "--json", "r.json", "--csv", "./r.json"), kind="cli"),
    Case("out-both-stdout", "output", "`--json - --csv -`", "SparsesimError",
         "sparsesim: error: --json and --csv both write '-'; give each output its own file",
         _cli("run", "facedet", "--json", "-", "--csv", "-"), kind="cli"),
    Case("out-compare-same-path", "output", "`compare --json c.out --csv c.out`", "SparsesimError",
         "sparsesim: error: --json and --csv both write 'c.out'; give each output its own file",
         _cli("compare", "facedet", "--json", "c.out", "--csv", "c.out"), kind="cli"),
    Case("out-dev-full", "output", "`--json /dev/full` (the device stays a device)", "SparsesimError",
         "sparsesim: error: cannot write '/dev/full': No space left on device",
         _cli("run", "facedet", "--quiet", "--no-check", "--json", "/dev/full"), kind="cli"),
    Case("out-socket", "output", "`--json sock` (a Unix socket)", "SparsesimError",
         "sparsesim: error: cannot write 'sock': it is a socket; sparsesim writes regular files, character devices "
         "and FIFOs only",
         _cli("run", "facedet", "--json", "sock", setup=_socket("sock")), kind="cli"),
    Case("out-fifo-no-reader", "output", "`--json pipe` (a FIFO nobody reads)", "SparsesimError",
         "sparsesim: error: cannot write 'pipe': it is a FIFO and no process is reading it",
         _cli("run", "facedet", "--quiet", "--no-check", "--json", "pipe", setup=_fifo("pipe")), kind="cli"),
    Case("out-name-too-long", "output", "`--json rrr…r.json` (a 305-character file name)", "SparsesimError",
         f"sparsesim: error: cannot write '{_LONG}': file name too long",
         _cli("run", "facedet", "--json", _LONG), kind="cli"),
    Case("out-validate-under-file", "output", "`validate --json notes.txt/v.json`", "SparsesimError",
         "sparsesim: error: cannot write 'notes.txt/v.json': 'notes.txt' is a file, not a directory",
         _cli("validate", "facedet", "--json", "notes.txt/v.json", setup=_file("notes.txt")), kind="cli"),
    Case("out-config-toml-directory", "output", "`config --toml out` (`out` is a directory)", "SparsesimError",
         "sparsesim: error: cannot write 'out': it is a directory; give a file name",
         _cli("config", "--toml", "out", setup=_file("out/keep")), kind="cli"),
    Case("out-plot-under-file", "output", "`plot r.json -o notes.txt/p.png`", "SparsesimError",
         "sparsesim: error: cannot write 'notes.txt/p.png': 'notes.txt' is a file, not a directory",
         _cli("plot", "r.json", "-o", "notes.txt/p.png", setup=_file("notes.txt")), kind="cli"),
    Case("out-sweep-dir-is-file", "output", "`sweep -o notes.txt` (a file)", "SparsesimError",
         "sparsesim: error: cannot write into 'notes.txt': 'notes.txt' is a file, not a directory",
         _cli("sweep", "facedet", "-o", "notes.txt", setup=_file("notes.txt")), kind="cli"),
    Case("out-sweep-dir-under-file", "output", "`sweep -o notes.txt/s`", "SparsesimError",
         "sparsesim: error: cannot write into 'notes.txt/s': 'notes.txt' is a file, not a directory",
         _cli("sweep", "facedet", "-o", "notes.txt/s", setup=_file("notes.txt")), kind="cli"),
    Case("out-null-byte", "output", "`--csv \"a\\0b\"`", "SparsesimError",
         "sparsesim: error: cannot write 'a\\x00b': not a valid file name (embedded null byte)",
         _cli("run", "facedet", "--csv", "a\x00b"), kind="cli"),
]


# -- limits checked before allocating (shapes, headers and zip directories alone) ------------------------------
_TOPO_HEAD = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def _with_env(var: str, value: str, fn):
    """Run ``fn(d)`` with the environment variable ``var`` set to ``value``."""
    def go(d: Path):
        old = os.environ.get(var)
        os.environ[var] = value
        try:
            return fn(d)
        finally:
            if old is None:
                del os.environ[var]
            else:
                os.environ[var] = old
    return go


def _limited(gib: float, fn):
    """Run ``fn(d)`` with the memory limit set to ``gib`` GiB (SPARSESIM_MAX_MEMORY_GIB)."""
    return _with_env("SPARSESIM_MAX_MEMORY_GIB", str(gib), fn)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that is only a signature and an IHDR chunk: its size can be read, its pixels never decoded."""
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + end


def _conv_model(shape=(1, 3, 8, 8), cout: int = 4, k: int = 3, cin: int | None = None, extra=None,
                external_length: int | None = None) -> bytes:
    """An ONNX conv on ``shape`` (NCHW) with ``cout`` k x k filters; ``extra(helper, nodes, inits)`` adds nodes."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((cout, cin or shape[1], k, k), 0.05, np.float32), "w")
    if external_length is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "w.bin"), ("offset", "0"), ("length", str(external_length))):
            e = w.external_data.add()
            e.key, e.value = key, value
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv", kernel_shape=[k, k])]
    inits = [w]
    out = extra(helper, numpy_helper, nodes, inits) if extra else "c"
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def _bn_negative_variance(helper, numpy_helper, nodes, inits) -> str:
    nodes.append(helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn"))
    inits += [numpy_helper.from_array(np.full(4, v, np.float32), n)
              for n, v in (("g", 1.0), ("b", 0.0), ("m", 0.0), ("v", -1.0))]
    return "y"


def _add_mismatch(helper, numpy_helper, nodes, inits) -> str:
    inits.append(numpy_helper.from_array(np.full((5, 3, 1, 1), 0.05, np.float32), "w2"))
    nodes += [helper.make_node("Conv", ["image", "w2"], ["d"], name="c2", kernel_shape=[1, 1]),
              helper.make_node("Add", ["c", "d"], ["y"], name="add")]
    return "y"


def _write(name: str, content):
    """Setup writing ``content`` (bytes, or a callable giving them) to ``name``."""
    def go(d: Path):
        data = content() if callable(content) else content
        (d / name).write_bytes(data)
    return go


def _zip_member(path: str, members: dict[str, bytes], deflate: bool = True) -> str:
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(arr=None, header_shape=None, payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    if header_shape is None:
        np.save(buf, arr)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<i2", "fortran_order": False, "shape": header_shape})
    return buf.getvalue() + payload


_TRACE_HEAD = {"format.npy": _npy(np.array(TRACE_FORMAT)), "network.npy": _npy(np.array("facedet"))}


def _npz_trace(members: dict[str, bytes], network: bool = True):
    def go(d: Path):
        _zip_member("trace.npz", {**_TRACE_HEAD, **members})
        return load_trace("trace.npz", get_network("facedet") if network else None)
    return go


_ZEROS_32M = _npy(header_shape=(16 << 20,), payload=bytes(32 << 20))   # 32 MiB of zeros: 32 KiB deflated
CASES += [
    Case("limit-scalesim-ifmap", "limits", "SCALE-Sim row `c1,100000,100000,3,3,3,4,1,` (a 10^10-pixel map)",
         "LimitError",
         "sparsesim: error: simulating network 'topo' needs about 3,129 GiB of memory, more than the 8 GiB limit; "
         "raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _cli("run", "topo.csv", setup=_file("topo.csv", _TOPO_HEAD + "c1,100000,100000,3,3,3,4,1,\n")), kind="cli"),
    Case("limit-scalesim-filters", "limits", "SCALE-Sim row with 10^9 filters", "LimitError",
         "sparsesim: error: simulating network 'topo' needs about 2,112 GiB of memory, more than the 8 GiB limit; "
         "raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _cli("run", "topo.csv", setup=_file("topo.csv", _TOPO_HEAD + "c1,8,8,3,3,3,1000000000,1,\n")), kind="cli"),
    Case("limit-simulate-api", "limits", "`simulate()` of a 100000x100000x3 SCALE-Sim network", "LimitError",
         "simulating network 'topo' needs about 3,129 GiB of memory, more than the 8 GiB limit; raise it with "
         "--max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         lambda d: simulate(_csv("c1,100000,100000,3,3,3,4,1,\n")(d), check=False)),
    Case("limit-max-memory-option", "limits", "`run vgg16 --max-memory 0.5` (the estimate is 2.4 GiB)", "LimitError",
         "sparsesim: error: simulating network 'vgg16' needs about 2.4 GiB of memory, more than the 0.5 GiB limit; "
         "raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _cli("run", "vgg16", "--max-memory", "0.5"), kind="cli"),
    Case("limit-sweep-point", "limits", "`sweep facedet --max-memory 0.0001 --workers 1`", "LimitError",
         "sparsesim: error: sweep point (base) (id …",
         _cli("sweep", "facedet", "-o", "out", "--workers", "1", "--max-memory", "0.0001"), kind="cli"),
    Case("limit-bad-max-memory", "limits", "`--max-memory 0`", "SparsesimError",
         "sparsesim: error: sparsesim run: argument --max-memory: expected a number of GiB in (0, 1048576], got '0'",
         _cli("run", "facedet", "--max-memory", "0"), kind="cli"),
    Case("limit-bad-env", "limits", "`SPARSESIM_MAX_MEMORY_GIB=lots`", "SparsesimError",
         "SPARSESIM_MAX_MEMORY_GIB must be a number of GiB in (0, 1048576], got 'lots'",
         lambda d: _limited("lots", lambda d: simulate("facedet", check=False))(d)),
    Case("limit-image-pixels", "limits", "`--image big.png`: a 20000x20000 PNG (only its header is read)",
         "LimitError",
         "sparsesim: error: model.onnx: big.png: decoding a 20000x20000 image needs about 24 GiB of memory, more than the 8 GiB "
         "limit; raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _cli("run", "model.onnx", "--image", "big.png",
              setup=lambda d: (_write("big.png", _png_header(20000, 20000))(d),
                               _write("model.onnx", _conv_model)(d))), kind="cli"),
    Case("limit-onnx-wide-input", "limits", "an ONNX model whose input is 1x3x1x1000000", "LimitError",
         "model.onnx: resizing an image to 1x1000000 pixels needs about 19 GiB of memory, more than the 8 GiB "
         "limit; raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         lambda d: (_write("model.onnx", lambda: _conv_model((1, 3, 1, 1_000_000), cout=64, k=1))(d),
                    from_onnx("model.onnx"))[1]),
    Case("limit-onnx-activations", "limits", "a 224x224 conv with 64 filters under a 10 MiB limit", "LimitError",
         "model.onnx: running the model and capturing its 3306432 activation and weight values needs about "
         "0.0493 GiB of memory, more than the 0.00977 GiB limit; raise it with --max-memory GIB (or "
         "SPARSESIM_MAX_MEMORY_GIB)",
         _limited(10 / 1024, lambda d: (_write("model.onnx", lambda: _conv_model((1, 3, 224, 224), cout=64))(d),
                                         from_onnx("model.onnx"))[1])),
    Case("limit-onnx-external-data", "limits", "an initializer whose external data claims 40 GiB", "LimitError",
         "model.onnx: loading 42949672960 bytes of external tensor data needs about 80 GiB of memory, more than the "
         "8 GiB limit; raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         lambda d: ((d / "w.bin").write_bytes(bytes(432)),
                    _write("model.onnx", lambda: _conv_model(external_length=40 << 30))(d),
                    from_onnx("model.onnx"))[2]),
    Case("limit-onnx-file-size", "limits", "a model file under a 1e-6 GiB (1 KiB) limit", "LimitError",
         "model.onnx: parsing a 559-byte model file needs about 1.56e-06 GiB of memory, more than the 9.99e-07 GiB "
         "limit; raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _limited(1e-6, lambda d: (_write("model.onnx", _conv_model)(d), from_onnx("model.onnx"))[1])),
    Case("limit-npz-inflates", "limits", "a 32 KiB trace whose `image` inflates to 32 MiB", "TraceError",
         "trace.npz: its arrays inflate to 33554912 bytes, more than any trace of network 'facedet' holds "
         "(396476 bytes)",
         _npz_trace({"image.npy": _ZEROS_32M})),
    Case("limit-npz-memory", "limits", "the same trace without a network, under a 16 MiB limit", "LimitError",
         "trace.npz: reading 3 arrays of 33554912 bytes needs about 0.0313 GiB of memory, more than the 0.0156 GiB "
         "limit; raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _limited(1 / 64, _npz_trace({"image.npy": _ZEROS_32M}, network=False))),
    Case("limit-npz-bad-name-first", "limits", "a 32 MiB member named `junk/x` (refused unread)", "TraceError",
         "trace.npz: unexpected array 'junk/x'; allowed: image, weights/<layer>, bias/<layer>, input/<layer>, "
         "saturated/<key>, reference/<layer>, expected/<layer>, tolerance/<layer>, density/<layer>",
         _npz_trace({"junk/x.npy": _ZEROS_32M})),
    Case("limit-npz-header-lies", "limits", "an `image` header declaring 3e9 values over 16 bytes", "TraceError",
         "trace.npz: array 'image' declares shape (3000000000,) (6000000000 bytes) but its member holds 144 bytes",
         _npz_trace({"image.npy": _npy(header_shape=(3_000_000_000,), payload=bytes(16))}, network=False)),
    Case("limit-topology-file-size", "limits", "a 2 KiB topology under a 1e-6 GiB (1 KiB) limit", "LimitError",
         "topo.csv: parsing a 2099-byte topology needs about 3.91e-05 GiB of memory, more than the 9.99e-07 GiB "
         "limit; raise it with --max-memory GIB (or SPARSESIM_MAX_MEMORY_GIB)",
         _limited(1e-6, _csv("c1, 8, 8, 3, 3, 3, 4, 1,\n" * 80))),
]

# -- the Python API: wrong argument types raise SparsesimError subclasses --------------------------------------
def _fifo_trace(d: Path):
    os.mkfifo(d / "pipe")
    return save_trace(Trace(network="facedet"), "pipe")


CASES += [
    Case("api-from-onnx-none", "api", "`from_onnx(None)`", "WorkloadError",
         "from_onnx expects a file path (str or os.PathLike), got None",
         lambda d: from_onnx(None)),
    Case("api-from-onnx-int", "api", "`from_onnx(3)`", "WorkloadError",
         "from_onnx expects a file path (str or os.PathLike), got 3",
         lambda d: from_onnx(3)),
    Case("api-load-user-network-none", "api", "`load_user_network(None)`", "WorkloadError",
         "load_user_network expects a file path (str or os.PathLike), got None",
         lambda d: load_user_network(None)),
    Case("api-read-scalesim-bytes", "api", "`read_scalesim_csv(b\"topo.csv\")`", "WorkloadError",
         "read_scalesim_csv expects a file path (str or os.PathLike), got b'topo.csv'",
         lambda d: read_scalesim_csv(b"topo.csv")),
    Case("api-load-trace-none", "api", "`load_trace(None)`", "TraceError",
         "load_trace expects a file path (str or os.PathLike), got None",
         lambda d: load_trace(None)),
    Case("api-load-trace-network-name", "api", "`load_trace(\"t.npz\", \"facedet\")` (a name, not a Network)",
         "TraceError", "load_trace: network must be a Network or None, got 'facedet'",
         lambda d: load_trace("t.npz", "facedet")),
    Case("api-save-trace-directory", "api", "`save_trace(t, \".\")`", "TraceError",
         "cannot write trace '.': it is a directory; give a file name (trace.npz)",
         lambda d: save_trace(Trace(network="facedet"), ".")),
    Case("api-save-trace-fifo", "api", "`save_trace(t, \"pipe\")` (a FIFO is never replaced)", "TraceError",
         "cannot write trace 'pipe': not a regular file (a trace file is replaced atomically, which would destroy "
         "a device or FIFO)",
         _fifo_trace),
    Case("api-save-trace-not-a-trace", "api", "`save_trace({}, \"t.npz\")`", "TraceError",
         "save_trace expects a Trace, got dict",
         lambda d: save_trace({}, "t.npz")),
    Case("api-simulate-profile-object", "api", "`simulate(\"facedet\", profile=object())`", "WorkloadError",
         "profile must be a profile name or a DensityProfile, got <object object at …",
         lambda d: simulate("facedet", profile=object())),
    Case("api-simulate-engine", "api", "`simulate(\"facedet\", engine=\"numba\")`", "ConfigError",
         "engine must be one of compiled, simpy, got 'numba'",
         lambda d: simulate("facedet", engine="numba")),
    Case("api-cache-max-mib", "api", "`SPARSESIM_CACHE_MAX_MIB=lots`, then `simulate(\"facedet\")`", "ConfigError",
         "SPARSESIM_CACHE_MAX_MIB must be a non-negative whole number of MiB, got 'lots'",
         _with_env("SPARSESIM_CACHE_MAX_MIB", "lots", lambda d: simulate("facedet"))),
    Case("api-cache-dir-empty", "api", "`SPARSESIM_CACHE_DIR=\"\"`, then `simulate(\"facedet\")`", "ConfigError",
         "SPARSESIM_CACHE_DIR must be a directory or 'off', got ''",
         _with_env("SPARSESIM_CACHE_DIR", "", lambda d: simulate("facedet"))),
    Case("api-simulate-network-none", "api", "`simulate(None)`", "WorkloadError",
         "network must be a Network or a zoo name, got None",
         lambda d: simulate(None)),
    Case("api-get-profile-none", "api", "`get_profile(None)`", "WorkloadError",
         "profile must be a profile name (str), got None",
         lambda d: get_profile(None)),
    Case("api-with-overrides-list", "api", "`with_overrides(cfg, [\"dma.latency_cycles=5\"])`", "ConfigError",
         "overrides must be a mapping of dotted keys to values, got ['dma.latency_cycles=5']",
         lambda d: with_overrides(AcceleratorConfig(), ["dma.latency_cycles=5"])),
    Case("api-load-config-none", "api", "`load_config(None)`", "ConfigError",
         "config must be a file path or preset name, got None",
         lambda d: load_config(None)),
    Case("api-compile-ahead-switch", "api", "`SPARSESIM_COMPILE_AHEAD=yes`, then `simulate(\"facedet\")`",
         "ConfigError", "SPARSESIM_COMPILE_AHEAD must be 0 (off) or 1 (on), got 'yes'",
         _with_env("SPARSESIM_COMPILE_AHEAD", "yes", lambda d: simulate("facedet"))),
    Case("api-sweep-start", "api", "`SPARSESIM_SWEEP_START=fork`, then `sweep(\"facedet\", workers=1)`",
         "ConfigError", "SPARSESIM_SWEEP_START must be 'auto' (fork where safe) or 'spawn', got 'fork'",
         _with_env("SPARSESIM_SWEEP_START", "fork", lambda d: sweep("facedet", workers=1, progress=False))),
]

# -- one stderr line: library warnings, onnxruntime logs and multi-line messages never reach the terminal --------
_LONG_NAME = "n" * 300
CASES += [
    Case("stderr-batchnorm-warning", "cli", "ONNX batch norm with a negative variance (numpy warns in the fold)",
         "WorkloadError",
         "sparsesim: error: model.onnx: node 'conv': weights/conv: 108 value(s) are NaN or infinite; Q8.8 needs "
         "finite numbers",
         _cli("run", "model.onnx", setup=_write("model.onnx", lambda: _conv_model(extra=_bn_negative_variance))),
         kind="cli"),
    Case("stderr-onnxruntime-log", "cli", "a conv whose kernels have 5 channels for a 3-channel input "
         "(onnxruntime logs a coloured line)", "WorkloadError",
         "sparsesim: error: model.onnx: onnxruntime could not run the model: [ONNXRuntimeError] : 1 : FAIL : …",
         _cli("run", "model.onnx", setup=_write("model.onnx", lambda: _conv_model(cin=5))), kind="cli"),
    Case("stderr-shape-inference", "cli", "`Add` of a 4-channel and a 5-channel map (shape inference text)",
         "WorkloadError",
         "sparsesim: error: model.onnx: ONNX shape inference failed: [ShapeInferenceError] Inference error(s): "
         "(op_type:Add, node name: add): [ShapeInferenceError] Incompatible dimensions",
         _cli("run", "model.onnx", setup=_write("model.onnx", lambda: _conv_model(extra=_add_mismatch))), kind="cli"),
    Case("stderr-long-image-name", "cli", "`--image nnn…n.png` (a 304-character name)", "WorkloadError",
         f"sparsesim: error: {_LONG_NAME}.png: cannot read the image: File name too long",
         _cli("run", "model.onnx", "--image", f"{_LONG_NAME}.png", setup=_write("model.onnx", _conv_model)),
         kind="cli"),
    Case("stderr-long-model-name", "cli", "`run nnn…n.onnx`", "WorkloadError",
         f"sparsesim: error: {_LONG_NAME}.onnx: cannot read the model: File name too long",
         _cli("run", f"{_LONG_NAME}.onnx"), kind="cli"),
    Case("stderr-long-trace-name", "cli", "`--trace-file nnn…n.npz`", "TraceError",
         f"sparsesim: error: {_LONG_NAME}.npz: not a readable .npz trace ([Errno 36] File name too long: "
         f"'{_LONG_NAME}.npz')",
         _cli("run", "facedet", "--trace-file", f"{_LONG_NAME}.npz"), kind="cli"),
    Case("stderr-long-accel-name", "cli", "`--accel nnn…n.toml`", "ConfigError",
         f"sparsesim: error: {_LONG_NAME}.toml: cannot read config file: File name too long",
         _cli("run", "facedet", "--accel", f"{_LONG_NAME}.toml"), kind="cli"),
    Case("stderr-carriage-return", "cli", "`run run \"\\r0\"` (a carriage return in an argument)", "SparsesimError",
         "sparsesim: error: unrecognized arguments: \\r0",
         _cli("run", "run", "\r0"), kind="cli"),
    Case("stderr-long-topology-name", "cli", "`run nnn…n.csv`", "WorkloadError",
         f"sparsesim: error: {_LONG_NAME}.csv: not a readable text file ([Errno 36] File name too long: "
         f"'{_LONG_NAME}.csv')",
         _cli("run", f"{_LONG_NAME}.csv"), kind="cli"),
]


# ------------------------------------------------------------------ tests
def _matches(actual: str, expected: str) -> bool:
    if expected.endswith(" …"):
        return actual.startswith(expected[:-2])
    return actual == expected


def _normalise(text: str, d: Path) -> str:
    for p in {str(d.resolve()), str(d)}:
        text = text.replace(p, "<dir>")
    return text


def test_catalogue_is_big_and_ids_are_unique():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.area for c in CASES} == set(_AREAS)
    for c in CASES:
        assert c.error == "-" or issubclass(getattr(errors, c.error), errors.SparsesimError), c.id


#: Address-space limit every case runs under, in a child process: a case that tries to allocate
#: gigabytes fails there (MemoryError, reported as a different message) instead of passing slowly.
MEMORY_LIMIT_BYTES = 2 << 30


@contextlib.contextmanager
def _captured_fds():
    """Capture file descriptors 1 and 2 (so C-level logging, e.g. onnxruntime's, is seen too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    got: list[str] = []
    try:
        os.dup2(files[0].fileno(), 1)
        os.dup2(files[1].fileno(), 2)
        yield got
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for f in files:
            f.seek(0)
            got.append(f.read().decode("utf-8", "replace"))
            f.close()


def check_case(case: Case, d: Path) -> None:
    """Run one case in directory ``d`` (the working directory); AssertionError if it does not behave."""
    if case.kind == "report":
        text = case.action(d)
        assert any(_matches(line, case.message) for line in text.splitlines()), text
        return
    if case.kind == "cli":
        argv = case.action(d)
        before = set(os.listdir(d))
        with _captured_fds() as got:
            code = main(argv)
        out, err = got
        # Nothing is created but what the command was asked to write (its -o directory, say).
        outputs = {Path(v).parts[0] for k, v in zip(argv, argv[1:]) if k in ("-o", "--out", "--json", "--csv", "--toml")
                   and v and not os.path.isabs(v)}
        assert set(os.listdir(d)) - before <= outputs, sorted(set(os.listdir(d)) - before)
        assert code == 2, (out, err)
        assert "Traceback" not in out + err
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert _matches(_normalise(lines[0], d), case.message), lines[0]
        try:
            with _captured_fds():
                main(["--debug", *argv])
        except getattr(errors, case.error):
            return
        raise AssertionError(f"--debug did not raise {case.error}")
    try:
        case.action(d)
    except errors.SparsesimError as exc:
        assert type(exc).__name__ == case.error or (
            case.error == "SparsesimError" and isinstance(exc, errors.SparsesimError)), type(exc)
        assert _matches(_normalise(str(exc), d), case.message), str(exc)
        return
    raise AssertionError("no SparsesimError raised")


def _peak_rss_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:   # "5": reset the peak RSS (VmHWM) of this process
            fh.write("5")
    except OSError:   # a kernel without it: the peak is then the running maximum, still an upper bound
        pass


def _peak_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _run_cases_here(ids: list[str], base: Path) -> dict[str, dict]:
    """Run the cases ``ids`` in this process, each in a fresh directory under ``base``; a result per case."""
    import traceback

    from _pytest.outcomes import Skipped

    out = {}
    by_id = {c.id: c for c in CASES}
    for i, cid in enumerate(ids):
        d = base / f"case{i}"
        d.mkdir()
        os.chdir(d)
        _peak_rss_reset()
        try:
            check_case(by_id[cid], d)
            status, detail = "ok", ""
        except Skipped as exc:
            status, detail = "skip", str(exc)
        except BaseException as exc:   # a failure of this case, MemoryError included: report it, go on
            status, detail = "fail", "".join(traceback.format_exception_only(type(exc), exc))[-2000:]
        out[cid] = {"status": status, "detail": detail, "peak_rss": _peak_rss()}
    return out


def _limit_address_space() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


@pytest.fixture(scope="module")
def limited_results(request, tmp_path_factory):
    """Every selected case, run once in one child process under ``MEMORY_LIMIT_BYTES`` of address space."""
    import json
    import subprocess

    ids = [item.callspec.params["case"].id for item in request.session.items
           if item.originalname == "test_case" and item.module.__name__ == __name__]
    base = tmp_path_factory.mktemp("catalogue")
    proc = subprocess.run([sys.executable, __file__, "--run", str(base), *ids], capture_output=True, text=True,
                          preexec_fn=_limit_address_space, timeout=900, cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_no_bad_input_reaches_a_large_resident_set(limited_results):
    """Beyond the address-space limit: the peak RSS of every case (imports, numba and onnxruntime included)."""
    if not limited_results:
        pytest.skip("no catalogue case selected")
    worst = max(limited_results, key=lambda cid: limited_results[cid]["peak_rss"])
    assert limited_results[worst]["peak_rss"] < 1 << 30, (worst, limited_results[worst]["peak_rss"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, limited_results):
    r = limited_results[case.id]
    if r["status"] == "skip":
        pytest.skip(r["detail"])
    assert r["status"] == "ok", r["detail"]


_SUBPROCESS_CASES = ["cli-unknown-network", "cli-broken-accel-file", "cli-corrupt-onnx", "cli-output-under-file",
                     "cli-no-command"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in _SUBPROCESS_CASES], ids=_SUBPROCESS_CASES)
def test_console_script_prints_one_line_and_debug_shows_the_traceback(case, tmp_path):
    """The installed ``sparsesim`` script, in a fresh process: exit 2, one stderr line, no traceback."""
    import subprocess

    exe = Path(sys.executable).parent / "sparsesim"
    assert exe.exists(), exe
    argv = case.action(tmp_path)
    proc = subprocess.run([str(exe), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and _matches(lines[0], case.message), proc.stderr
    debug = subprocess.run([str(exe), "--debug", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].endswith(lines[0].removeprefix("sparsesim: error: ").rstrip(" …"))


# ------------------------------------------------------------------ docs
_AREAS = {"config": "Accelerator configuration", "network": "Networks, profiles and SCALE-Sim topologies",
          "trace": "Trace files and Q8.8 data", "onnx": "ONNX models", "cli": "Command line (stderr, exit status 2)",
          "output": "Output paths (command line)", "limits": "Memory limits, checked before allocating",
          "api": "Python API argument types"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def render_table() -> str:
    """The Markdown catalogue, grouped by area, in CASES order."""
    out = []
    n = 0
    for area, title in _AREAS.items():
        out += [f"### {title}", "", "| # | Case | Bad input | Exception | Message |", "|---|---|---|---|---|"]
        for c in CASES:
            if c.area == area:
                n += 1
                exc = "none: counted in the report" if c.error == "-" else f"`{c.error}`"
                out.append(f"| {n} | `{c.id}` | {_cell(c.input)} | {exc} | {_code(c.message)} |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def _doc_block(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n")


def test_docs_table_matches():
    text = DOC.read_text(encoding="utf-8")
    assert _doc_block(text) == render_table(), "docs/errors.md is out of date: run `python tests/test_catalogue.py`"


def test_docs_rows_name_every_case_with_its_message():
    """An independent check of the table: parse the rows back and compare with the cases."""
    rows = {}
    for line in _doc_block(DOC.read_text(encoding="utf-8")).splitlines():
        m = re.fullmatch(r"\| \d+ \| `([^`]+)` \| .* \| (?:`(\w+)`|none: counted in the report) \| `+ ?(.*?) ?`+ \|",
                         line)
        if m:
            rows[m.group(1)] = (m.group(2) or "-", m.group(3).replace("\\|", "|"))
    assert rows == {c.id: (c.error, c.message) for c in CASES}


def _write_docs() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + render_table() + "\n" + text[end:], encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {DOC}")


if __name__ == "__main__":   # pragma: no cover - a maintenance script, and the memory-limited case runner
    if sys.argv[1:2] == ["--run"]:
        import json
        results = _run_cases_here(sys.argv[3:], Path(sys.argv[2]))
        print(json.dumps(results))
        sys.exit(0)
    _write_docs()
    sys.exit(0)
