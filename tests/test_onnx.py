"""Tests of workloads._onnx (from_onnx, load_user_network) on ONNX models built here.

Independent expectations: every check against the model's own numbers runs the
model in onnxruntime separately (all intermediate tensors exposed as outputs) and
compares with what the importer produced; float folds are checked by running an
equivalent un-fused ONNX graph. No downloads.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from simulator import simulate  # noqa: E402
from workloads import (Trace, WorkloadError, from_onnx, load_trace, load_user_network, quantize_q88,  # noqa: E402
                       save_trace)
from workloads import SUPPORTED_ONNX_OPS, import_onnx  # noqa: E402

OPSET = 17


class _Graph:
    """Builds a small ONNX model node by node; every node ``name`` outputs ``name + ':0'``."""

    def __init__(self, in_shape=(1, 3, 16, 16), seed=0, batch="N"):
        self.nodes, self.inits = [], []
        self.rng = np.random.default_rng(seed)
        self.in_shape = in_shape
        self.batch = batch

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def node(self, op, inputs, name, **attrs):
        out = f"{name}:0"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        return out

    def conv(self, x, name, cin, cout, k, *, group=1, stride=1, pad=0, dil=1, bias=True, gain=1.0, **attrs):
        fan_in = cin // group * k * k
        w = self.rng.normal(0, gain * math.sqrt(2.0 / fan_in), (cout, cin // group, k, k))
        ins = [x, self.init(f"{name}.w", w)]
        if bias:
            ins.append(self.init(f"{name}.b", self.rng.normal(0, 0.1 * gain, cout)))
        attrs.setdefault("pads", [pad] * 4)
        return self.node("Conv", ins, name, kernel_shape=[k, k], group=group, strides=[stride] * 2,
                         dilations=[dil] * 2, **attrs)

    def bn(self, x, name, c):
        r = self.rng
        ins = [x] + [self.init(f"{name}.{k}", v) for k, v in (
            ("scale", r.uniform(0.5, 1.5, c)), ("bias", r.normal(0, 0.2, c)), ("mean", r.normal(0, 0.3, c)),
            ("var", r.uniform(0.5, 2.0, c)))]
        return self.node("BatchNormalization", ins, name, epsilon=1e-3)

    def relu6(self, x, name):
        return self.node("Clip", [x, self.init(f"{name}.min", np.float32(0)),
                                  self.init(f"{name}.max", np.float32(6))], name)

    def model(self, output):
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [self.batch, *self.in_shape[1:]])
        y = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
        g = helper.make_graph(self.nodes, "test", [x], [y], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        return m

    def save(self, path, output):
        onnx.save(self.model(output), str(path))
        return path


def _all_outputs(model_or_path, x_nchw: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime's own value of every node output for input ``x_nchw`` (independent of the importer)."""
    m = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for t in n.output:
            if t not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=t))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {m.graph.input[0].name: x_nchw.astype(np.float32)})))


def _nchw(image_q: np.ndarray) -> np.ndarray:
    return (image_q.astype(np.float32) / 256).transpose(2, 0, 1)[None]


def _full_model(tmp_path):
    """Residual, depthwise-separable (ReLU6), concat, tiny and huge activations, dilation, stride,
    all three pools, flatten + Gemm and MatMul + Add bias."""
    g = _Graph()
    x = g.node("Relu", [g.bn(g.conv("image", "stem", 3, 8, 3, pad=1), "stem_bn", 8)], "stem_relu")
    p1 = g.node("MaxPool", [x], "pool1", kernel_shape=[2, 2], strides=[2, 2])             # 8x8x8, fusable
    a = g.node("Relu", [g.bn(g.conv(p1, "res_a", 8, 8, 3, pad=1), "res_a_bn", 8)], "res_a_relu")
    b = g.bn(g.conv(a, "res_b", 8, 8, 3, pad=1), "res_b_bn", 8)
    r = g.node("Relu", [g.node("Add", [b, p1], "res_add")], "res_relu")
    dw = g.relu6(g.bn(g.conv(r, "dw", 8, 8, 3, group=8, pad=1, bias=False), "dw_bn", 8), "dw_relu6")
    pw = g.relu6(g.conv(dw, "pw", 8, 16, 1), "pw_relu6")
    cat = g.node("Concat", [pw, r], "cat", axis=1)                                         # 8x8x24
    tiny = g.conv(cat, "tiny", 24, 8, 1, gain=2e-3)                  # |x| ~ 1e-3: many below 2**-9
    amp = g.node("Relu", [g.conv(tiny, "amp", 8, 8, 3, pad=1, gain=3e4)], "amp_relu")     # >> 128
    avg = g.node("AveragePool", [amp], "avg", kernel_shape=[2, 2], strides=[2, 2])        # 4x4
    dil = g.node("Relu", [g.conv(avg, "dil", 8, 8, 3, dil=2, pad=2, gain=1e-2)], "dil_relu")
    s2 = g.node("Relu", [g.conv(dil, "s2", 8, 8, 3, stride=2, pad=1)], "s2_relu")         # 2x2
    mp = g.node("MaxPool", [s2], "pool3", kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4)
    gap = g.node("GlobalAveragePool", [mp], "gap")
    flat = g.node("Flatten", [gap], "flatten", axis=1)
    fc1 = g.node("Relu", [g.node("Gemm", [flat, g.init("fc1.w", g.rng.normal(0, 0.5, (10, 8))),
                                           g.init("fc1.b", g.rng.normal(0, 0.1, 10))], "fc1", transB=1)],
                 "fc1_relu")
    mm = g.node("MatMul", [fc1, g.init("fc2.w", g.rng.normal(0, 0.5, (10, 4)))], "fc2")
    out = g.node("Add", [mm, g.init("fc2.b", g.rng.normal(0, 0.1, 4))], "fc2_bias")
    return g.save(tmp_path / "full.onnx", out)


#: layer -> ONNX tensor it reads, from the graph built in _full_model.
FULL_INPUTS = {"stem": "image", "res_a": "pool1:0", "res_b": "res_a_relu:0", "dw": "res_relu:0",
               "pw": "dw_relu6:0", "tiny": "cat:0", "amp": "tiny:0", "dil": "avg:0", "s2": "dil_relu:0",
               "fc1": "flatten:0", "fc2": "fc1_relu:0"}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    path = _full_model(tmp_path_factory.mktemp("onnx"))
    imp = import_onnx(path)
    return path, imp, _all_outputs(path, _nchw(imp.trace.image))


def test_full_network_shapes_and_fusion(full):
    _, imp, _ = full
    net = imp.network
    got = [(l.name, l.op, l.inputs, l.out_shape, l.activation) for l in net.layers]
    assert got == [
        ("stem", "conv", ("input",), (16, 16, 8), "relu"),
        ("pool1", "maxpool", ("stem",), (8, 8, 8), None),
        ("res_a", "conv", ("pool1",), (8, 8, 8), "relu"),
        ("res_b", "conv", ("res_a",), (8, 8, 8), None),
        ("res_add", "add", ("res_b", "pool1"), (8, 8, 8), "relu"),
        ("dw", "conv", ("res_add",), (8, 8, 8), "relu6"),
        ("pw", "conv", ("dw",), (8, 8, 16), "relu6"),
        ("cat", "concat", ("pw", "res_add"), (8, 8, 24), None),
        ("tiny", "conv", ("cat",), (8, 8, 8), None),
        ("amp", "conv", ("tiny",), (8, 8, 8), "relu"),
        ("avg", "avgpool", ("amp",), (4, 4, 8), None),
        ("dil", "conv", ("avg",), (4, 4, 8), "relu"),
        ("s2", "conv", ("dil",), (2, 2, 8), "relu"),
        ("pool3", "maxpool", ("s2",), (2, 2, 8), None),
        ("gap", "avgpool", ("pool3",), (1, 1, 8), None),
        ("fc1", "fc", ("gap",), (1, 1, 10), "relu"),
        ("fc2", "fc", ("fc1",), (1, 1, 4), None),
    ]
    assert net.name == "full" and net.input_shape == (16, 16, 3)
    dw = net.layer("dw")
    assert dw.is_depthwise and dw.groups == 8 and dw.weight_shape == (8, 3, 3, 1)
    dil = net.layer("dil")
    assert dil.kernel == (5, 5) and dil.padding == 2      # 3x3 dilated by 2 -> zero-stuffed 5x5
    assert net.layer("s2").stride == 2 and net.layer("pool3").padding == 1
    assert imp.input_tensor == FULL_INPUTS
    assert net.layer("dw").bias and "dw" in imp.trace.biases    # the bias-less conv gets BN's bias
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(full[0])).graph.initializer}
    np.testing.assert_array_equal(imp.float_biases["fc2"], inits["fc2.b"])      # MatMul + Add -> bias
    np.testing.assert_array_equal(imp.float_weights["fc2"].reshape(4, 10), inits["fc2.w"].T)
    np.testing.assert_array_equal(imp.float_weights["fc1"].reshape(10, 8), inits["fc1.w"])  # Gemm transB=1


def test_captured_densities_match_onnxruntime_exactly(full):
    _, imp, ort_out = full
    tr = imp.trace
    assert set(tr.inputs) == set(FULL_INPUTS)
    image_nchw = _nchw(tr.image)
    for layer, tensor in FULL_INPUTS.items():
        ref = image_nchw if tensor == "image" else ort_out[tensor]
        got = tr.inputs[layer]
        assert got.dtype == np.int16 and got.size == ref.size
        assert np.count_nonzero(got) == np.count_nonzero(ref), layer
        # And element by element: zero exactly where onnxruntime has zero, same sign elsewhere.
        ref_hwc = ref[0].transpose(1, 2, 0) if ref.ndim == 4 else ref.reshape(got.shape)
        assert np.array_equal(np.sign(got), np.sign(ref_hwc)), layer
    # The test is meaningful: plain rounding would lose non-zeros of 'amp's input ...
    plain, _ = quantize_q88(ort_out["tiny:0"])
    assert np.count_nonzero(plain) < np.count_nonzero(ort_out["tiny:0"])
    # ... and 'dil' reads values far beyond Q8.8 (the average of 'amp'), which saturate (counted)
    # but stay non-zero. 'amp's own huge weights and biases saturate too.
    big = ort_out["avg:0"]
    assert tr.saturated["input/dil"] == np.count_nonzero(np.abs(big) >= 128 - 1 / 512) > 0
    assert set(tr.saturated) == {"weights/amp", "bias/amp", "input/dil"}


def test_captured_values_are_rounded_onnxruntime_values(full):
    _, imp, ort_out = full
    x = ort_out["res_relu:0"][0].transpose(1, 2, 0)
    want, _ = quantize_q88(x, keep_nonzero=True)
    assert np.array_equal(imp.trace.inputs["dw"], want)
    assert np.abs(imp.trace.inputs["dw"] / 256 - x).max() <= 1 / 512


def test_end_to_end_simulation_is_bit_exact(full):
    _, imp, ort_out = full
    seen = {}
    result = simulate(imp.network, trace=imp.trace, check=True,
                      observer=lambda s, x, out: seen.setdefault(s.layer.name, x.copy()))
    assert [r.functional_check for r in result.layers] == ["bit-exact"] * len(imp.network)
    where = {r.name: r.where for r in result.layers}
    assert where["pool1"] == "fused" and where["stem"] == "accelerator" and where["fc1"] == "host"
    assert result.totals["cycles"] > 0
    # The accelerator timed exactly the captured inputs, at onnxruntime's densities.
    for name, x in seen.items():
        ref = _nchw(imp.trace.image) if FULL_INPUTS[name] == "image" else ort_out[FULL_INPUTS[name]]
        assert np.count_nonzero(x) == np.count_nonzero(ref), name
        rec = next(r for r in result.layers if r.name == name)
        assert rec.input_density == np.count_nonzero(ref) / ref.size


def test_trace_round_trips_through_npz(full, tmp_path):
    _, imp, _ = full
    path = save_trace(imp.trace, tmp_path / "t.npz")
    back = load_trace(path, imp.network)
    a = simulate(imp.network, trace=imp.trace).to_json()
    b = simulate(imp.network, trace=back).to_json()
    assert a == b


@pytest.mark.parametrize("flatten", ["Flatten", "Reshape"])
def test_fc_weights_are_reordered_from_chw_to_hwc(tmp_path, flatten):
    g = _Graph(in_shape=(1, 3, 6, 5))
    x = g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r")
    if flatten == "Flatten":
        flat = g.node("Flatten", [x], "flat")
    else:
        g.inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
        flat = g.node("Reshape", [x, "shape"], "flat")
    y = g.node("Gemm", [flat, g.init("fc.w", g.rng.normal(0, 0.3, (7, 4 * 6 * 5)))], "fc", transB=1)
    path = g.save(tmp_path / "flat.onnx", y)
    imp = import_onnx(path)
    fc = imp.network.layer("fc")
    assert fc.in_shape == (6, 5, 4) and fc.weight_shape == (7, 1, 1, 120)
    out = _all_outputs(path, _nchw(imp.trace.image))
    x_hwc = out["r:0"][0].transpose(1, 2, 0).astype(np.float64)
    ours = imp.float_weights["fc"].reshape(7, -1) @ x_hwc.reshape(-1)     # sparsesim's HWC flatten
    np.testing.assert_allclose(ours, out["fc:0"][0], rtol=1e-5, atol=1e-5)
    assert np.count_nonzero(imp.trace.inputs["fc"]) == np.count_nonzero(out["flat:0"])
    assert [r.functional_check for r in simulate(imp.network, trace=imp.trace).layers] == ["bit-exact"] * 2


def _single_conv_model(w_oihw, b, pad, in_shape):
    g = _Graph(in_shape=in_shape)
    y = g.node("Conv", ["image", g.init("w", w_oihw), g.init("b", b)], "conv", pads=[pad] * 4)
    return g.model(y), y


def test_batchnorm_fold_matches_onnxruntime(tmp_path):
    g = _Graph(in_shape=(1, 3, 9, 9), seed=3)
    y = g.bn(g.conv("image", "c", 3, 5, 3, pad=1), "bn", 5)
    path = g.save(tmp_path / "bn.onnx", y)
    imp = import_onnx(path)
    assert [l.name for l in imp.network.layers] == ["c"]
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 9, 9)).astype(np.float32)
    want = _all_outputs(path, x)["bn:0"]
    folded, out = _single_conv_model(imp.float_weights["c"].transpose(0, 3, 1, 2), imp.float_biases["c"], 1,
                                     (1, 3, 9, 9))
    got = _all_outputs(folded, x)[out]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.array_equal(imp.trace.weights["c"], quantize_q88(imp.float_weights["c"], keep_nonzero=True)[0])


def test_dilation_is_a_zero_stuffed_kernel(tmp_path):
    g = _Graph(in_shape=(1, 1, 11, 11), seed=4)
    y = g.conv("image", "c", 1, 3, 3, dil=3, pad=3)
    path = g.save(tmp_path / "dil.onnx", y)
    imp = import_onnx(path)
    layer = imp.network.layer("c")
    assert layer.kernel == (7, 7) and layer.out_shape == (11, 11, 3)
    w = imp.float_weights["c"]
    assert np.count_nonzero(w[:, 1::3, :, :]) == 0 and np.count_nonzero(w[:, :, 1::3, :]) == 0
    x = np.random.default_rng(2).normal(0, 1, (1, 1, 11, 11)).astype(np.float32)
    stuffed, out = _single_conv_model(w.transpose(0, 3, 1, 2), imp.float_biases["c"], 3, (1, 1, 11, 11))
    np.testing.assert_allclose(_all_outputs(stuffed, x)[out], _all_outputs(path, x)["c:0"], rtol=1e-5, atol=1e-5)


def test_pruned_weights_stay_zero_and_tiny_weights_stay_nonzero(tmp_path):
    g = _Graph(in_shape=(1, 3, 6, 6))
    w = g.rng.normal(0, 0.5, (4, 3, 3, 3))
    w[:, :1] = 0.0                 # pruned
    w[0, 2, 0, 0] = 1e-4           # rounds to 0 in plain Q8.8
    y = g.bn(g.node("Conv", ["image", g.init("w", w)], "c", pads=[1] * 4), "bn", 4)
    imp = import_onnx(g.save(tmp_path / "pruned.onnx", y))
    q = imp.trace.weights["c"]     # (C_out, kh, kw, C_in)
    assert np.count_nonzero(q) == np.count_nonzero(w) == 4 * 2 * 9
    assert q[0, 0, 0, 2] in (-1, 1)


def test_image_sources(tmp_path):
    import matplotlib.image as mimage

    g = _Graph(in_shape=(1, 3, 8, 8))
    path = g.save(tmp_path / "m.onnx", g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r"))
    _, t_default = from_onnx(path)
    from workloads import image_input
    assert np.array_equal(t_default.image, image_input((8, 8, 3)))
    photo = np.random.default_rng(0).uniform(0, 1, (20, 30, 3))
    mimage.imsave(tmp_path / "p.png", photo)
    _, t_file = from_onnx(path, image=tmp_path / "p.png")
    assert t_file.image.shape == (8, 8, 3) and not np.array_equal(t_file.image, t_default.image)
    arr = np.full((8, 8, 3), 1e-4)
    _, t_arr = from_onnx(path, image=arr)
    assert np.array_equal(t_arr.image, np.ones((8, 8, 3), np.int16))    # non-zero kept as 1 LSB
    _, t_q = from_onnx(path, image=np.full((8, 8, 3), 300, np.int16))
    assert np.all(t_q.image == 300) and np.all(t_q.inputs["c"] == 300)
    with pytest.raises(WorkloadError, match=r"image array has shape \(8, 8\); the model input needs"):
        from_onnx(path, image=np.zeros((8, 8)))
    with pytest.raises(WorkloadError, match=r"nope\.png: image file not found$"):
        from_onnx(path, image=tmp_path / "nope.png")


def test_batch_and_name(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8), batch=1)
    path = g.save(tmp_path / "my model!.onnx", g.conv("image", "conv/1:x", 3, 4, 1))
    net, trace = from_onnx(path)
    assert net.name == "my_model" and [l.name for l in net.layers] == ["conv_1_x"]
    net2, trace2 = from_onnx(path, name="other")
    assert net2.name == trace2.network == "other"


@pytest.mark.parametrize("opset, bounds, act", [(17, (0.0, 6.0), "relu6"), (17, (0.0, None), "relu"),
                                                 (10, (0.0, 6.0), "relu6")])
def test_clip_forms(tmp_path, opset, bounds, act):
    g = _Graph(in_shape=(1, 3, 8, 8))
    c = g.conv("image", "c", 3, 4, 3)
    lo, hi = bounds
    if opset >= 11:
        ins = [c, g.init("lo", np.float32(lo)), g.init("hi", np.float32(hi)) if hi is not None else ""]
        y = g.node("Clip", ins, "clip")
    else:
        y = g.node("Clip", [c], "clip", min=lo, max=hi)
    m = g.model(y)
    m.opset_import[0].version = opset
    onnx.save(m, str(tmp_path / "clip.onnx"))
    net, trace = from_onnx(tmp_path / "clip.onnx")
    assert [(l.name, l.activation) for l in net.layers] == [("c", act)]


def test_missing_optional_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)     # makes `import onnxruntime` fail
    with pytest.raises(WorkloadError, match=r"m\.onnx: ONNX import needs the optional extra: pip install "
                                            r"'sparsesim\[onnx\]'"):
        from_onnx(tmp_path / "m.onnx")


# -- errors ------------------------------------------------------------------------------------------------

def test_unsupported_op_names_op_and_node(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Sigmoid", [g.conv("image", "c", 3, 4, 3)], "gate")
    path = g.save(tmp_path / "sig.onnx", y)
    msg = (f"{path}: node 'gate': op type 'Sigmoid' is not supported; supported: "
           f"{', '.join(SUPPORTED_ONNX_OPS)}")
    with pytest.raises(WorkloadError, match=f"^{re.escape(msg)}$"):
        from_onnx(path)


@pytest.mark.parametrize("content", [b"", b"\x08\x07\x12\x04junk" * 3, np.random.default_rng(7).bytes(256)],
                         ids=["empty", "corrupt", "random"])
def test_unreadable_files(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(WorkloadError, match=f"^{re.escape(str(path))}: not a readable ONNX model: "):
        from_onnx(path)


def test_truncated_model(tmp_path):
    good = _Graph(in_shape=(1, 3, 8, 8))
    data = good.model(good.conv("image", "c", 3, 4, 3)).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkloadError, match=f"^{re.escape(str(path))}: not a readable ONNX model: "):
        from_onnx(path)


def test_missing_file(tmp_path):
    with pytest.raises(WorkloadError, match=r"nothere\.onnx: file not found$"):
        from_onnx(tmp_path / "nothere.onnx")


def _err(tmp_path, g, out, pattern):
    path = g.save(tmp_path / "e.onnx", out)
    with pytest.raises(WorkloadError, match=f"^{re.escape(str(path))}: node {pattern}"):
        from_onnx(path)


def test_asymmetric_pads(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.conv("image", "c", 3, 4, 3, pads=[0, 0, 1, 1])
    _err(tmp_path, g, y, re.escape("'c': pads [0, 0, 1, 1] are not the same on all four sides; sparsesim "
                                   "supports one symmetric padding (pads [p, p, p, p])"))


def test_same_upper_padding_is_symmetric_when_possible(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.conv("image", "c", 3, 4, 3, pads=None, auto_pad="SAME_UPPER")
    net, _ = from_onnx(g.save(tmp_path / "same.onnx", y))
    assert net.layer("c").padding == 1 and net.layer("c").out_shape == (8, 8, 4)


def test_unequal_strides(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Conv", ["image", g.init("w", np.ones((2, 3, 1, 1)))], "c", strides=[1, 2])
    _err(tmp_path, g, y, re.escape("'c': strides [1, 2] differ between height and width; sparsesim has one "
                                   "stride"))


def test_clip_range(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Clip", [g.conv("image", "c", 3, 4, 3), g.init("lo", np.float32(-1)), g.init("hi", np.float32(1))],
               "clip")
    _err(tmp_path, g, y, re.escape("'clip': Clip(-1, 1) is not supported; only Clip(0, 6) (ReLU6) and "
                                   "Clip(0, inf) (ReLU)"))


def test_relu_on_shared_tensor(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    c = g.conv("image", "c", 3, 4, 3, pad=1)
    r = g.node("Relu", [c], "r")
    y = g.node("Add", [r, c], "add")
    _err(tmp_path, g, y, re.escape("'r': Relu is fused into 'c', but its input 'c:0' is also read by 'add'; "
                                   "the pre-Relu tensor cannot be shared"))


def test_relu_after_pool(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    p = g.node("MaxPool", [g.conv("image", "c", 3, 4, 3)], "p", kernel_shape=[2, 2], strides=[2, 2])
    y = g.node("Relu", [p], "r")
    _err(tmp_path, g, y, re.escape("'r': Relu is fused into the conv/fc/add that produces its input 'p:0', but "
                                   "that input comes from layer 'p' (maxpool)"))


def test_double_activation(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Relu", [g.node("Relu", [g.conv("image", "c", 3, 4, 3)], "r1")], "r2")
    _err(tmp_path, g, y, re.escape("'r2': Relu follows 'c', which already has activation 'relu'"))


def test_standalone_batchnorm(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.bn("image", "bn", 3)
    _err(tmp_path, g, y, re.escape("'bn': BatchNormalization is fused into the conv that produces its input "
                                   "'image', but that input comes from no conv, fc or add"))


def test_layout_changing_reshape(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Reshape", [g.conv("image", "c", 3, 4, 1), g.init("shape", np.array([1, 4, 64]))], "rs")
    g.inits[-1] = numpy_helper.from_array(np.array([1, 4, 64], np.int64), "shape")
    _err(tmp_path, g, y, re.escape("'rs': Reshape from [1, 4, 8, 8] to [1, 4, 64] is not supported"))


def test_flattened_map_read_by_add(tmp_path):
    g = _Graph(in_shape=(1, 3, 4, 4))
    f = g.node("Flatten", [g.node("Relu", [g.conv("image", "c", 3, 4, 1)], "r")], "f")
    y = g.node("Add", [f, f], "add")
    _err(tmp_path, g, y, re.escape("'add': input 'f:0' is a flattened (C, H, W) feature map; only Gemm/MatMul "
                                   "may read a Flatten/Reshape of a feature map"))


def test_batch_and_input_checks(tmp_path):
    g = _Graph(in_shape=(4, 3, 8, 8), batch=4)
    path = g.save(tmp_path / "b.onnx", g.conv("image", "c", 3, 4, 1))
    with pytest.raises(WorkloadError, match=r"input 'image' has batch size 4; sparsesim simulates one image"):
        from_onnx(path)
    g = _Graph(in_shape=(1, 3, 8, 8))
    m = g.model(g.conv("image", "c", 3, 4, 1))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(m, str(tmp_path / "h.onnx"))
    with pytest.raises(WorkloadError, match=r"input 'image' has no fixed height; export the model with a fixed"):
        from_onnx(tmp_path / "h.onnx")


# -- load_user_network -------------------------------------------------------------------------------------

def test_load_user_network_dispatch(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    path = g.save(tmp_path / "m.ONNX", g.conv("image", "c", 3, 4, 1))
    net, trace = load_user_network(path)
    assert isinstance(trace, Trace) and net.layers[0].name == "c"
    csv = tmp_path / "t.csv"
    csv.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                   "Strides,\nc1, 8, 8, 3, 3, 3, 4, 1,\n")
    net, trace = load_user_network(csv)
    assert trace is None and net.layers[0].out_shape == (6, 6, 4)
    with pytest.raises(WorkloadError, match=r"t\.csv: an input image only applies to ONNX models"):
        load_user_network(csv, image=tmp_path / "x.png")
    with pytest.raises(WorkloadError, match=r"model\.pt: unknown network file type '\.pt'; expected one of "
                                            r"\.onnx, \.csv \(ONNX model or SCALE-Sim topology\)$"):
        load_user_network(tmp_path / "model.pt")
