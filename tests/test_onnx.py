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
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from simulator import simulate  # noqa: E402
from workloads import (Trace, WorkloadError, from_onnx, load_trace, load_user_network, quantize_q88,  # noqa: E402
                       save_trace)
from workloads import import_onnx, normalized_image  # noqa: E402

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
        attrs.setdefault("strides", [stride] * 2)
        return self.node("Conv", ins, name, kernel_shape=[k, k], group=group, dilations=[dil] * 2, **attrs)

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


def test_node_reading_an_undefined_tensor(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Relu", ["nowhere"], "r")
    path = g.save(tmp_path / "e.onnx", y)
    with pytest.raises(WorkloadError, match=f"^{re.escape(str(path))}: ONNX shape inference failed: "):
        from_onnx(path)


def test_dynamic_input_needs_input_shape(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    m = g.model(g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r"))
    for i, name in ((2, "H"), (3, "W")):
        m.graph.input[0].type.tensor_type.shape.dim[i].dim_param = name
    path = tmp_path / "dyn.onnx"
    onnx.save(m, str(path))
    msg = (f"{path}: input 'image' has dynamic dimensions (?, 3, ?, ?); give their sizes with --input-shape "
           "(Python: input_shape=), e.g. --input-shape 1,3,H,W")
    with pytest.raises(WorkloadError, match=f"^{re.escape(msg)}$"):
        from_onnx(path)
    net, trace = from_onnx(path, input_shape=(1, 3, 12, 20))
    assert net.input_shape == (12, 20, 3) and net.layer("c").out_shape == (12, 20, 4)
    assert from_onnx(path, input_shape=["image=1,3,12,20"])[0].input_shape == (12, 20, 3)
    with pytest.raises(WorkloadError, match=r"--input-shape gives 4 for dimension 1 of input 'image', which the "
                                            r"model fixes at 3 \(\?, 3, \?, \?\)$"):
        from_onnx(path, input_shape=(1, 4, 12, 20))
    with pytest.raises(WorkloadError, match=r"--input-shape names input 'img'; the model's inputs are 'image'$"):
        from_onnx(path, input_shape={"img": (1, 3, 8, 8)})


# -- everything runs: host layers with onnxruntime's values ---------------------------------------------------

def _run(path, **kw):
    """Import and simulate with every check on; every conv/fc must meet the check against onnxruntime."""
    imp = import_onnx(path, **kw)
    result = simulate(imp.network, trace=imp.trace, check=True)
    weighted = [r for r in result.layers if r.op in ("conv", "fc")]
    assert weighted and all(r.functional_check == "bit-exact" for r in weighted)
    assert [r.name for r in weighted if r.reference_check != "ok"] == []
    rc = result.totals["reference_check"]
    assert (rc["layers"], rc["ok"]) == (len(weighted), len(weighted))
    worst = max(weighted, key=lambda r: r.reference_max_error_lsb)
    assert (rc["max_error_lsb"], rc["max_error_layer"]) == (worst.reference_max_error_lsb, worst.name)
    assert f"functional check against the model's own float outputs: {rc['ok']} of {rc['layers']} conv/fc " \
           f"layers within the Q8.8 tolerance (largest deviation from the float model " \
           f"{rc['max_error_lsb']:.0f} LSB, layer {worst.name})" in result.format_table()
    return imp, result


def _summary(net):
    return [(l.name, l.op if l.op != "host" else f"host:{l.host_op}", l.activation) for l in net.layers]


def test_host_rows_say_why_the_node_did_not_map(tmp_path):
    g = _Graph(in_shape=(1, 3, 9, 9))
    x = g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r")
    y = g.node("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    path = g.save(tmp_path / "ceil.onnx", y)
    imp, result = _run(path)
    assert imp.host_reasons["pool"] == "ceil_mode=1"
    note = "MaxPool on the host (values from onnxruntime): ceil_mode=1"
    assert imp.network.layer("pool").host_reason == "ceil_mode=1"
    assert {r.name: r.note for r in result.layers}["pool"] == note
    assert any(line.startswith("pool ") and line.endswith(note) for line in result.format_table().splitlines())
    assert {r["name"]: r["note"] for r in result.to_dict()["layers"]}["pool"] == note
    # The trace file format is unchanged: the reason lives in the network, the file loads as before.
    trace_path = save_trace(imp.trace, tmp_path / "t.npz")
    again = simulate(imp.network, trace=load_trace(trace_path, imp.network))
    assert {r.name: r.note for r in again.layers}["pool"] == note
    kinds = {k.split("/")[0] for k in np.load(trace_path, allow_pickle=False).files}
    assert kinds <= {"format", "network", "image", "weights", "bias", "input", "saturated", "reference", "expected",
                     "tolerance", "density"}


def test_other_ops_run_on_the_host(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Sigmoid", [g.conv("image", "c", 3, 4, 3)], "gate")
    path = g.save(tmp_path / "sig.onnx", y)
    imp, result = _run(path)
    assert _summary(imp.network) == [("c", "conv", None), ("gate", "host:Sigmoid", None)]
    rec = {r.name: r for r in result.layers}
    assert rec["gate"].where == "host" and rec["gate"].functional_check == "onnxruntime"
    assert imp.host_reasons["gate"] == "not a NullHop operation"
    assert rec["gate"].note == "Sigmoid on the host (values from onnxruntime): not a NullHop operation"
    out = _all_outputs(path, _nchw(imp.trace.image))
    assert rec["gate"].output_density == np.count_nonzero(out["gate:0"]) / out["gate:0"].size
    assert result.totals["host_ops"] == {"Sigmoid": {"layers": 1, "elements": 6 * 6 * 4}}
    assert "host ops with the model's own values (op: layers, output elements): Sigmoid 1, 144" in \
        result.format_table()
    # The conv before a host activation writes its output dense (no ReLU: no output compression).
    assert simulate(imp.network, trace=imp.trace).layers[0].output_density > 0.9
    # Host densities and the check data survive a trace file.
    back = load_trace(save_trace(imp.trace, tmp_path / "t.npz"), imp.network)
    assert simulate(imp.network, trace=back).to_json() == result.to_json()
    with pytest.raises(WorkloadError, match=r"layer 'gate' \(Sigmoid\) runs on the host with values from the "
                                            r"model's own run; simulate it with the trace of its ONNX import"):
        simulate(imp.network)


@pytest.mark.parametrize("act", ["LeakyRelu", "PRelu", "HardSigmoid", "Elu", "Tanh", "ClipRange", "HardSwish"])
def test_activations_the_pre_lacks(tmp_path, act):
    g = _Graph(in_shape=(1, 3, 8, 8))
    c = g.conv("image", "c", 3, 4, 3, pad=1)
    if act == "PRelu":
        y = g.node("PRelu", [c, g.init("slope", np.full((4, 1, 1), 0.25))], "act")
    elif act == "ClipRange":
        y = g.node("Clip", [c, g.init("lo", np.float32(-1)), g.init("hi", np.float32(1))], "act")
    else:
        y = g.node(act, [c], "act")
    imp, _ = _run(g.save(tmp_path / "a.onnx", y))
    op = "Clip" if act == "ClipRange" else act
    assert _summary(imp.network) == [("c", "conv", None), ("act", f"host:{op}", None)]


def _hswish_clip(g, x, name, order):
    a = g.node("Add", [x, g.init(f"{name}.three", np.float32(3))], f"{name}_add")
    c = g.node("Clip", [a, g.init(f"{name}.lo", np.float32(0)), g.init(f"{name}.hi", np.float32(6))], f"{name}_clip")
    if order == "mul-div":
        return g.node("Div", [g.node("Mul", [x, c], f"{name}_mul"), g.init(f"{name}.six", np.float32(6))], name)
    d = g.node("Div", [c, g.init(f"{name}.six", np.float32(6))], f"{name}_div")
    return g.node("Mul", [d, x], name)


@pytest.mark.parametrize("form", ["hardsigmoid", "clip-mul-div", "clip-div-mul", "sigmoid", "sigmoid-mul1"])
def test_written_out_activations_are_one_host_layer(tmp_path, form):
    g = _Graph(in_shape=(1, 3, 8, 8))
    x = g.conv("image", "c", 3, 4, 3, pad=1)
    if form == "hardsigmoid":
        y = g.node("Mul", [x, g.node("HardSigmoid", [x], "hs", alpha=1 / 6, beta=0.5)], "act")
    elif form.startswith("clip"):
        y = _hswish_clip(g, x, "act", form[5:])
    elif form == "sigmoid":
        y = g.node("Mul", [g.node("Sigmoid", [x], "sg"), x], "act")
    else:   # Paddle's swish: x * Sigmoid(x * 1)
        one = g.node("Mul", [x, g.init("one", np.float32(1))], "one_mul")
        y = g.node("Mul", [x, g.node("Sigmoid", [one], "sg")], "act")
    y = g.node("Relu", [g.conv(y, "c2", 4, 4, 1)], "r2")
    imp, _ = _run(g.save(tmp_path / "w.onnx", y))
    want = "SiLU" if form.startswith("sigmoid") else "HardSwish"
    assert _summary(imp.network) == [("c", "conv", None), ("act", f"host:{want}", None), ("c2", "conv", "relu")]


def test_gate_of_another_tensor_stays_two_ops(tmp_path):
    """A squeeze-excitation gate multiplies a different tensor: HardSigmoid and Mul stay separate host ops."""
    g = _Graph(in_shape=(1, 3, 8, 8))
    x = g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r")
    gate = g.node("HardSigmoid", [g.conv(g.node("GlobalAveragePool", [x], "gap"), "se", 4, 4, 1)], "hs",
                  alpha=1 / 6, beta=0.5)
    y = g.node("Mul", [x, gate], "scale")
    imp, _ = _run(g.save(tmp_path / "se.onnx", y))
    assert _summary(imp.network) == [("c", "conv", "relu"), ("gap", "avgpool", None), ("se", "conv", None),
                                     ("hs", "host:HardSigmoid", None), ("scale", "host:Mul", None)]


def test_constant_scale_and_shift_fold_into_the_conv(tmp_path):
    """Paddle's learnable affine block (x * s + b after a conv) folds into weights and bias."""
    g = _Graph(in_shape=(1, 3, 8, 8))
    c = g.conv("image", "c", 3, 4, 3, pad=1)
    y = g.node("Add", [g.node("Mul", [g.init("s", np.float32(1.7)), c], "mul"), g.init("b", np.float32(0.3))],
               "add")
    y = g.node("Relu", [g.node("Div", [y, g.init("d", np.full((1, 4, 1, 1), 2.0))], "div")], "r")
    y = g.node("Relu", [g.node("Sub", [g.conv(y, "c2", 4, 4, 1), g.init("m", np.float32(0.1))], "sub")], "r2")
    path = g.save(tmp_path / "lab.onnx", y)
    imp, _ = _run(path)
    assert _summary(imp.network) == [("c", "conv", "relu"), ("c2", "conv", "relu")]
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    np.testing.assert_allclose(imp.float_weights["c"], inits["c.w"].transpose(0, 2, 3, 1) * 1.7 / 2, rtol=1e-6)
    np.testing.assert_allclose(imp.float_biases["c"], (inits["c.b"] * 1.7 + 0.3) / 2, rtol=1e-6)
    np.testing.assert_allclose(imp.float_biases["c2"], inits["c2.b"] - 0.1, rtol=1e-6)


def test_asymmetric_pads_are_host_zeros(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Relu", [g.conv("image", "c", 3, 4, 3, stride=2, pads=[0, 0, 1, 1])], "r")
    imp, result = _run(g.save(tmp_path / "e.onnx", y))
    assert _summary(imp.network) == [("c_pad", "host:Pad", None), ("c", "conv", "relu")]
    assert imp.network.layer("c").padding == 0 and imp.network.layer("c").in_shape == (9, 9, 3)
    x = imp.trace.inputs["c"]
    assert np.all(x[8] == 0) and np.all(x[:, 8] == 0) and np.array_equal(x[:8, :8], imp.trace.image)


def test_pad_node_folds_into_the_conv(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    g.inits.append(numpy_helper.from_array(np.array([0, 0, 2, 1, 0, 0, 2, 1], np.int64), "pads"))
    p = g.node("Pad", ["image", "pads"], "pad")
    y = g.node("Relu", [g.conv(p, "c", 3, 4, 3, pad=0)], "r")
    imp, _ = _run(g.save(tmp_path / "pad.onnx", y))
    assert _summary(imp.network) == [("c_pad", "host:Pad", None), ("c", "conv", "relu")]
    assert imp.network.layer("c").padding == 1 and imp.network.layer("c").out_shape == (10, 8, 4)
    g = _Graph(in_shape=(1, 3, 8, 8))
    g.inits.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
    y = g.node("Relu", [g.conv(g.node("Pad", ["image", "pads"], "pad"), "c", 3, 4, 3, pad=0)], "r")
    imp, _ = _run(g.save(tmp_path / "pad1.onnx", y))
    assert _summary(imp.network) == [("c", "conv", "relu")] and imp.network.layer("c").padding == 1
    g = _Graph(in_shape=(1, 3, 8, 8))   # reflect padding is no conv padding: the host pads
    g.inits.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
    y = g.conv(g.node("Pad", ["image", "pads"], "pad", mode="reflect"), "c", 3, 4, 3)
    imp, _ = _run(g.save(tmp_path / "pad2.onnx", y))
    assert _summary(imp.network) == [("pad", "host:Pad", None), ("c", "conv", None)]


def test_unequal_strides_decimate_on_the_host(tmp_path):
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.conv("image", "c", 3, 4, 3, pad=1, strides=[2, 1])
    imp, result = _run(g.save(tmp_path / "e.onnx", y))
    assert _summary(imp.network) == [("c", "conv", None), ("c_stride", "host:StrideDecimation", None)]
    assert imp.network.layer("c").out_shape == (8, 8, 4) and imp.network.layer("c_stride").out_shape == (4, 8, 4)
    assert np.isnan(imp.trace.expected["c"][1::2]).all() and not np.isnan(imp.trace.expected["c"][::2]).any()


def test_folds_and_relu_pass_the_hosts_decimation(tmp_path):
    """BN, a constant scale and ReLU after a (2, 1)-strided conv still fold into it: the host's decimation
    commutes with them, so the conv keeps its ReLU (compressed output) and the host decimates after."""
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.bn(g.conv("image", "c", 3, 4, 3, pad=1, strides=[2, 1]), "bn", 4)
    y = g.node("Relu", [g.node("Mul", [g.init("s", np.float32(0.5)), y], "scale")], "r")
    y = g.conv(y, "c2", 4, 4, 1)
    path = g.save(tmp_path / "s.onnx", y)
    imp, result = _run(path)
    assert _summary(imp.network) == [("c", "conv", "relu"), ("c_stride", "host:StrideDecimation", None),
                                     ("c2", "conv", None)]
    assert imp.output_tensor["c_stride"] == "r:0" and imp.input_tensor["c2"] == "r:0"
    out = _all_outputs(path, _nchw(imp.trace.image))
    rec = {r.name: r for r in result.layers}
    assert rec["c_stride"].output_density == np.count_nonzero(out["r:0"]) / out["r:0"].size
    np.testing.assert_array_equal(imp.trace.reference["c"][::2], out["r:0"][0].transpose(1, 2, 0))


@pytest.mark.parametrize("case", ["shared", "after-pool", "double", "batchnorm", "reshape", "flat-add"])
def test_unmappable_patterns_run_on_the_host(tmp_path, case):
    g = _Graph(in_shape=(1, 3, 8, 8))
    c = g.conv("image", "c", 3, 4, 3, pad=1)
    if case == "shared":
        y = g.node("Add", [g.node("Relu", [c], "r"), c], "add")
        want = [("c", "conv", None), ("r", "host:Relu", None), ("add", "host:Add", None)]
    elif case == "after-pool":
        y = g.node("Relu", [g.node("MaxPool", [c], "p", kernel_shape=[2, 2], strides=[2, 2])], "r")
        want = [("c", "conv", None), ("p", "maxpool", None), ("r", "host:Relu", None)]
    elif case == "double":
        y = g.node("Relu", [g.node("Relu", [c], "r1")], "r2")
        want = [("c", "conv", "relu"), ("r2", "host:Relu", None)]
    elif case == "batchnorm":
        y = g.conv(g.bn("image", "bn", 3), "c2", 3, 4, 1)
        want = [("c", "conv", None), ("bn", "host:BatchNormalization", None), ("c2", "conv", None)]
    elif case == "reshape":
        g.inits.append(numpy_helper.from_array(np.array([1, 4, 64], np.int64), "shape"))
        y = g.node("Reshape", [c, "shape"], "rs")
        want = [("c", "conv", None), ("rs", "host:Reshape", None)]
    else:
        f = g.node("Flatten", [g.node("Relu", [c], "r")], "f")
        y = g.node("Add", [f, f], "add")
        want = [("c", "conv", "relu"), ("add", "host:Add", None)]
    imp, _ = _run(g.save(tmp_path / "e.onnx", y))
    assert _summary(imp.network) == want


def test_nhwc_input_behind_a_transpose(tmp_path):
    g = _Graph(in_shape=(1, 10, 12, 3))
    t = g.node("Transpose", ["image"], "to_nchw", perm=[0, 3, 1, 2])
    y = g.node("Relu", [g.conv(t, "c", 3, 4, 3, pad=1)], "r")
    y = g.node("Transpose", [y], "to_nhwc", perm=[0, 2, 3, 1])
    path = g.save(tmp_path / "nhwc.onnx", y)
    imp, _ = _run(path)
    assert imp.network.input_shape == (10, 12, 3)
    assert _summary(imp.network) == [("c", "conv", "relu"), ("to_nhwc", "host:Transpose", None)]
    assert np.array_equal(imp.trace.inputs["c"], imp.trace.image)
    from workloads import image_input
    assert np.array_equal(imp.trace.image, image_input((10, 12, 3)))


def test_batch_larger_than_one_simulates_sample_0(tmp_path):
    g = _Graph(in_shape=(4, 3, 8, 8), batch=4)
    y = g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r")
    y = g.node("Softmax", [g.conv(y, "c2", 4, 2, 1)], "sm", axis=1)
    imp4, r4 = _run(g.save(tmp_path / "b4.onnx", y))
    g.batch, g.in_shape = 1, (1, 3, 8, 8)
    imp1, r1 = _run(g.save(tmp_path / "b1.onnx", y))
    assert r4.totals["cycles"] == r1.totals["cycles"]
    assert all(np.array_equal(imp4.trace.inputs[k], imp1.trace.inputs[k]) for k in imp1.trace.inputs)
    g.batch = "N"
    _, r3 = _run(g.save(tmp_path / "bn.onnx", y), input_shape=(3, 3, 8, 8))
    assert r3.totals["cycles"] == r1.totals["cycles"]


def test_conv1d_is_a_conv_of_height_one(tmp_path):
    g = _Graph(in_shape=(1, 3, 20))
    w = g.rng.normal(0, 0.5, (6, 3, 5))
    c = g.node("Conv", ["image", g.init("w", w), g.init("b", g.rng.normal(0, 0.1, 6))], "c", pads=[2, 2])
    c = g.node("Relu", [c], "r")
    w2 = g.rng.normal(0, 0.5, (4, 6, 3))
    y = g.node("Conv", [c, g.init("w2", w2)], "c2", strides=[2], dilations=[2], pads=[1, 1])
    imp, _ = _run(g.save(tmp_path / "c1d.onnx", y))
    assert imp.network.input_shape == (1, 20, 3)
    net = imp.network
    assert _summary(net)[-1] == ("c2", "conv", None)
    assert net.layer("c").kernel == (1, 5) and net.layer("c").out_shape == (1, 20, 6)
    assert net.layer("c2").out_shape == (1, 9, 4)


def test_token_matmul_is_a_1x1_conv(tmp_path):
    """(N, C, H, W) -> tokens (N, H*W, C) -> MatMul + Add bias: a 1x1 conv over the tokens."""
    g = _Graph(in_shape=(1, 3, 4, 6))
    c = g.node("Relu", [g.conv("image", "c", 3, 8, 3, pad=1)], "r")
    g.inits.append(numpy_helper.from_array(np.array([1, 8, 24], np.int64), "shape"))
    tok = g.node("Transpose", [g.node("Reshape", [c, "shape"], "flat")], "tok", perm=[0, 2, 1])
    y = g.node("Add", [g.node("MatMul", [tok, g.init("w", g.rng.normal(0, 0.3, (8, 5)))], "mm"),
                       g.init("bias", g.rng.normal(0, 0.1, 5))], "mm_bias")
    y = g.node("Softmax", [y], "sm", axis=-1)
    imp, _ = _run(g.save(tmp_path / "tok.onnx", y))
    assert _summary(imp.network) == [("c", "conv", "relu"), ("flat", "host:Reshape", None),
                                     ("tok", "host:Transpose", None), ("mm", "conv", None),
                                     ("sm", "host:Softmax", None)]
    assert imp.network.layer("mm").in_shape == (1, 24, 8) and imp.network.layer("mm").out_shape == (1, 24, 5)


def test_branches_multiple_inputs_and_outputs(tmp_path):
    """A small U-Net/FPN: Split, ConvTranspose, Resize, Concat of host tensors, a second input, two outputs."""
    g = _Graph(in_shape=(1, 3, 16, 16))
    e1 = g.node("Relu", [g.conv("image", "e1", 3, 8, 3, pad=1)], "e1r")
    p = g.node("MaxPool", [e1], "pool", kernel_shape=[2, 2], strides=[2, 2])
    e2 = g.node("Relu", [g.conv(p, "e2", 8, 8, 3, pad=1)], "e2r")
    g.inits.append(numpy_helper.from_array(np.array([4, 4], np.int64), "split"))
    g.nodes.append(helper.make_node("Split", [e2, "split"], ["s0", "s1"], name="split", axis=1))
    up = g.node("ConvTranspose", ["s0", g.init("up.w", g.rng.normal(0, 0.3, (4, 4, 2, 2)))], "up", strides=[2, 2])
    g.inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    rs = g.node("Resize", ["s1", "", "scales"], "resize", mode="nearest")
    cat = g.node("Concat", [e1, up, rs], "cat", axis=1)
    mix = g.node("Add", [cat, "extra"], "mix")
    out1 = g.node("Sigmoid", [g.conv(mix, "head", 16, 1, 1)], "prob")
    out2 = g.node("GlobalAveragePool", [e2], "gap")
    m = g.model(out1)
    m.graph.output.append(helper.make_tensor_value_info(out2, TensorProto.FLOAT, None))
    m.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 16, 16, 16]))
    path = tmp_path / "unet.onnx"
    onnx.save(m, str(path))
    imp, result = _run(path)
    summary = _summary(imp.network)
    assert summary == [("input_extra", "host:Input", None), ("e1", "conv", "relu"), ("pool", "maxpool", None),
                       ("e2", "conv", "relu"), ("split", "host:Split", None), ("split_1", "host:Split", None),
                       ("up", "host:ConvTranspose", None), ("resize", "host:Resize", None),
                       ("cat", "host:Concat", None), ("mix", "host:Add", None), ("head", "conv", None),
                       ("prob", "host:Sigmoid", None), ("gap", "avgpool", None)]
    assert {r.name: r.where for r in result.layers}["pool"] == "host"    # e1 is read by the concat too
    assert imp.network.layer("cat").inputs == ("e1", "up", "resize")


def test_functional_check_catches_wrong_weights(tmp_path):
    """The check against onnxruntime is not circular: wrong weights pass the bit-exact check
    (the simulator and the numpy reference get the same data) but fail against the model."""
    g = _Graph(in_shape=(1, 3, 8, 8))
    y = g.node("Relu", [g.conv("image", "c", 3, 8, 3, pad=1)], "r")
    imp = import_onnx(g.save(tmp_path / "m.onnx", y))
    w = imp.trace.weights["c"]
    imp.trace.weights["c"] = w[:, :, :, ::-1].copy()      # input channels in the wrong order
    rec = simulate(imp.network, trace=imp.trace).layers[0]
    assert rec.functional_check == "bit-exact" and rec.reference_check.endswith("outside")
    imp.trace.weights["c"] = w.copy()
    imp.trace.weights["c"][0, 1, 1, 0] += 3               # one weight off by 3 LSB
    rec = simulate(imp.network, trace=imp.trace).layers[0]
    assert rec.reference_check.endswith("outside")


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


def _dynamic_hw_model(tmp_path, *, nhwc=False, fixed_h=None, reshape_to=None):
    """Conv + ReLU on an input whose H and W (or only W) are dynamic; optionally a Reshape to a fixed size."""
    g = _Graph(in_shape=(1, 16, 16, 3) if nhwc else (1, 3, 16, 16))
    x = g.node("Transpose", ["image"], "to_nchw", perm=[0, 3, 1, 2]) if nhwc else "image"
    out = g.node("Relu", [g.conv(x, "c", 3, 4, 3, pad=1)], "r")
    if reshape_to is not None:
        out = g.node("Reshape", [out, g.init("shape", np.array(reshape_to))], "flat")
        g.inits[-1] = numpy_helper.from_array(np.array(reshape_to, np.int64), "shape")
    m = g.model(out)
    axes = (1, 2) if nhwc else (2, 3)
    for i, name in zip(axes, ("H", "W")):
        if not (fixed_h and name == "H"):
            m.graph.input[0].type.tensor_type.shape.dim[i].dim_param = name
    path = tmp_path / "dyn.onnx"
    onnx.save(m, str(path))
    return path


def _photo_file(tmp_path, h, w, name="photo.png"):
    """An RGB photo of ``h x w`` pixels (matplotlib's sample photo resized, so it has real structure)."""
    from PIL import Image
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    out = tmp_path / name
    with Image.open(src) as im:
        im.convert("RGB").resize((w, h)).save(out)
    return out


@pytest.mark.parametrize("nhwc", [False, True])
def test_dynamic_hw_from_the_image(tmp_path, nhwc):
    path = _dynamic_hw_model(tmp_path, nhwc=nhwc)
    photo = _photo_file(tmp_path, 75, 130)              # H 75 -> 64, W 130 -> 128
    imp = import_onnx(path, image=photo)
    assert imp.network.input_shape == (64, 128, 3)
    dims = "1x64x128x3" if nhwc else "1x3x64x128"
    declared = "(?, ?, ?, 3)" if nhwc else "(?, 3, ?, ?)"
    assert imp.trace.notes == [f"input 'image' {declared} ran as {dims}: batch 1, dynamic H and W from the 75x130 "
                               "(HxW) image, rounded down to multiples of 32; --input-shape chooses another"]
    # The image is the one the existing normaliser gives for that shape.
    import matplotlib.image as mimage

    rgb = np.asarray(mimage.imread(photo), np.float64)[..., :3]       # a PNG reads as floats in [0, 1]
    want, _ = quantize_q88(normalized_image(rgb, 64, 128, 3), keep_nonzero=True)
    assert np.array_equal(imp.trace.image, want)
    # and the run reports how the shape was chosen
    result = simulate(imp.network, trace=imp.trace)
    assert result.notes == imp.trace.notes
    assert f"warning: {imp.trace.notes[0]}" in result.format_table().splitlines()
    # --input-shape still decides
    given = (1, 32, 48, 3) if nhwc else (1, 3, 32, 48)
    imp2 = import_onnx(path, image=photo, input_shape=given)
    assert imp2.network.input_shape == (32, 48, 3) and imp2.trace.notes == []


def test_dynamic_hw_from_the_image_keeps_fixed_dims(tmp_path):
    path = _dynamic_hw_model(tmp_path, fixed_h=True)          # (?, 3, 16, ?)
    imp = import_onnx(path, image=_photo_file(tmp_path, 20, 70))
    assert imp.network.input_shape == (16, 64, 3)             # H fixed; W 70 -> 64
    imp = import_onnx(path, image=_photo_file(tmp_path, 20, 20, "tiny.png"))
    assert imp.network.input_shape == (16, 32, 3)             # never below 32
    # an (H, W, C) array gives its own size
    arr = np.zeros((16, 40, 3), np.float32)
    imp = import_onnx(path, image=arr)
    assert imp.network.input_shape == (16, 40, 3)
    assert "height and width those of the (16, 40, 3) image array" in imp.trace.notes[0]
    # no image: the clear error stays (tested in full above)
    with pytest.raises(WorkloadError, match=r"has dynamic dimensions \(\?, 3, 16, \?\); give their sizes"):
        import_onnx(path)


def test_dynamic_hw_from_the_image_rejected_names_input_shape(tmp_path, capsys):
    from simulator.cli import main

    path = _dynamic_hw_model(tmp_path, reshape_to=(1, 4 * 16 * 16))   # only 16x16 fits the Reshape
    photo = _photo_file(tmp_path, 40, 40)
    assert main(["run", str(path), "--image", str(photo), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"sparsesim: error: {path}: ")
    assert err.endswith("(the input shape 1,3,32,32 was derived from the image; give another with --input-shape)")
    assert main(["run", str(path), "--image", str(photo), "--input-shape", "1,3,16,16", "--quiet"]) == 0
    # a photo too large for the memory limit: the limit's message says the shape came from the image
    big = _photo_file(tmp_path, 512, 512, "big.png")
    assert main(["run", str(_dynamic_hw_model(tmp_path)), "--image", str(big), "--max-memory", "0.01", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "more than the 0.01 GiB limit" in err
    assert err.endswith("(the input shape 1,3,512,512 was derived from the image; give another with --input-shape)")


def test_cli_input_shape(tmp_path, capsys):
    from simulator.cli import main

    g = _Graph(in_shape=(1, 3, 8, 8))
    m = g.model(g.node("Relu", [g.conv("image", "c", 3, 4, 3, pad=1)], "r"))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    path = tmp_path / "dyn.onnx"
    onnx.save(m, str(path))
    assert main(["run", str(path), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"sparsesim: error: {path}: input 'image' has dynamic dimensions (?, 3, ?, 8); give their sizes with "
        "--input-shape (Python: input_shape=), e.g. --input-shape 1,3,H,8")
    assert main(["run", str(path), "--input-shape", "1,3,10,8", "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    import json
    assert json.loads((tmp_path / "r.json").read_text())["layers"][0]["in_shape"] == [10, 8, 3]
    assert main(["run", str(path), "--input-shape", "1,3,x,8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sparsesim: error: --input-shape: expected positive integers such as 1,3,640,640 (optionally "
        "NAME=1,3,640,640), got '1,3,x,8'")
    assert main(["run", "facedet", "--input-shape", "1,1,36,36"]) == 2
    assert capsys.readouterr().err.strip() == "sparsesim: error: --input-shape applies only to ONNX models (.onnx)"


def test_quantize_float32_input_matches_float64():
    """Captured activations are float32; quantizing them in float32 gives the float64 result exactly."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(20000) * 60).astype(np.float32)
    x[:6] = [1e-4, -1e-4, 3e38, -3e38, 0.5 / 256, 1.5 / 256]
    for keep in (False, True):
        a, sa = quantize_q88(x, keep_nonzero=keep)
        b, sb = quantize_q88(x.astype(np.float64), keep_nonzero=keep)
        assert np.array_equal(a, b) and sa == sb > 0
