"""Tests of the .npz trace file format (workloads._trace: save_trace, load_trace, quantize_q88).

Independent expectations: the schema in the module docstring of workloads/_trace.py
and docs/bring_your_own.md; a simulation with a trace must not change when the
trace goes through a file.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from simulator import simulate
from workloads import (TRACE_FORMAT, Trace, TraceError, child_seed, get_network, image_input, load_trace,
                       quantize_q88, save_trace, synthetic_bias, synthetic_weights)


def _facedet_trace(with_inputs: bool = True) -> Trace:
    """Weights, biases and image by hand; captured inputs from a propagated run's observer."""
    net = get_network("facedet")
    tr = Trace(network=net.name, image=image_input(net.input_shape))
    for layer in net.layers:
        if layer.op in ("conv", "fc"):
            tr.weights[layer.name] = synthetic_weights(layer.weight_shape, child_seed(5, layer.name, "w"),
                                                       density=0.6)
            tr.biases[layer.name] = synthetic_bias(layer.out_channels, child_seed(5, layer.name, "b"))
    if with_inputs:
        def grab(s, x, out):
            tr.inputs[s.layer.name] = x.reshape(s.layer.in_shape).copy()
        simulate(net, seed=3, observer=grab)
    return tr


def _npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _base(**extra):
    return {"format": np.array(TRACE_FORMAT), "network": np.array("facedet"), **extra}


def _raises(path, msg, network=None):
    with pytest.raises(TraceError, match=f"^{re.escape(f'{path}: {msg}')}"):
        load_trace(path, network)


def test_round_trip_arrays(tmp_path):
    tr = _facedet_trace()
    assert set(tr.inputs) == {"conv1", "conv2"}          # accelerator layers seen by the observer
    path = save_trace(tr, tmp_path / "f.npz")
    back = load_trace(path, get_network("facedet"))
    assert back.network == "facedet" and np.array_equal(back.image, tr.image)
    for a, b in ((tr.weights, back.weights), (tr.biases, back.biases), (tr.inputs, back.inputs)):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and b[k].dtype == np.int16 for k in a)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["bias/conv1", "bias/conv2", "bias/ip1", "bias/ip2", "format", "image",
                                   "input/conv1", "input/conv2", "network", "weights/conv1", "weights/conv2",
                                   "weights/ip1", "weights/ip2"]
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("with_inputs", [True, False], ids=["captured", "propagated-from-image"])
def test_simulation_identical_after_round_trip(tmp_path, with_inputs):
    net = get_network("facedet")
    tr = _facedet_trace(with_inputs)
    before = simulate(net, trace=tr).to_json()
    back = load_trace(save_trace(tr, tmp_path / "f.npz"), net)
    assert simulate(net, trace=back).to_json() == before
    if with_inputs:   # the captured inputs are what was timed
        seen = {}
        simulate(net, trace=back, observer=lambda s, x, o: seen.setdefault(s.layer.name, x))
        assert all(np.array_equal(seen[k], tr.inputs[k]) for k in seen)


def test_fc_weights_may_be_2d(tmp_path):
    net = get_network("facedet")
    tr = _facedet_trace(False)
    tr.weights["ip1"] = tr.weights["ip1"].reshape(128, -1)
    back = load_trace(save_trace(tr, tmp_path / "f.npz"), net)
    assert back.weights["ip1"].shape == (128, 784)
    assert simulate(net, trace=back).to_json() == simulate(net, trace=_facedet_trace(False)).to_json()


# -- schema errors: TraceError naming the file and the key ----------------------------------------------------

def test_missing_format(tmp_path):
    path = _npz(tmp_path / "t.npz", network=np.array("facedet"))
    _raises(path, f"missing or unknown 'format' entry; expected {TRACE_FORMAT!r}")


def test_unknown_format(tmp_path):
    path = _npz(tmp_path / "t.npz", format=np.array("sparsesim-trace-99"), network=np.array("facedet"))
    _raises(path, f"missing or unknown 'format' entry; expected {TRACE_FORMAT!r}")


def test_missing_network(tmp_path):
    path = _npz(tmp_path / "t.npz", format=np.array(TRACE_FORMAT))
    _raises(path, "missing 'network' entry (a string scalar)")


@pytest.mark.parametrize("key, arr, msg", [
    ("weights/conv1", np.zeros((16, 5, 5, 1), np.float32), "weights/conv1 has dtype float32, expected int16 (Q8.8)"),
    ("bias/conv1", np.zeros(16, np.int32), "bias/conv1 has dtype int32, expected int16 (Q8.8)"),
    ("input/conv2", np.zeros((16, 16, 16), np.uint8), "input/conv2 has dtype uint8, expected int16 (Q8.8)"),
    ("image", np.zeros((36, 36, 1)), "image has dtype float64, expected int16 (Q8.8)"),
    ("input/conv2", np.zeros((16, 16), np.int16), "input/conv2 has 2 dimension(s), expected 3"),
    ("weights/conv1", np.zeros(16, np.int16), "weights/conv1 has 1 dimension(s), expected 4 or 2"),
])
def test_wrong_dtype_or_rank(tmp_path, key, arr, msg):
    _raises(_npz(tmp_path / "t.npz", **_base(**{key: arr})), msg)


def test_unknown_key(tmp_path):
    path = _npz(tmp_path / "t.npz", **_base(**{"activations/conv1": np.zeros((2, 2, 2), np.int16)}))
    _raises(path, "unexpected array 'activations/conv1'; allowed: image, weights/<layer>, bias/<layer>, "
                  "input/<layer>")


def test_wrong_shape_for_network(tmp_path):
    tr = _facedet_trace(False)
    tr.weights["conv2"] = tr.weights["conv2"][:, :, :, :8]
    path = save_trace(tr, tmp_path / "t.npz")
    _raises(path, "weights/conv2 has shape (16, 3, 3, 8), layer 'conv2' expects (16, 3, 3, 16)",
            get_network("facedet"))
    tr = _facedet_trace(False)
    tr.inputs["conv2"] = np.zeros((17, 16, 16), np.int16)
    _raises(save_trace(tr, tmp_path / "t.npz"), "input/conv2 has shape (17, 16, 16), layer 'conv2' expects "
                                                 "(16, 16, 16)", get_network("facedet"))


def test_layer_not_in_network_and_missing_weights(tmp_path):
    tr = _facedet_trace(False)
    tr.biases["conv9"] = np.zeros(3, np.int16)
    _raises(save_trace(tr, tmp_path / "a.npz"), "bias/conv9 names no layer of network 'facedet'",
            get_network("facedet"))
    tr = _facedet_trace(False)
    del tr.weights["ip1"]
    _raises(save_trace(tr, tmp_path / "b.npz"), "no weights for layer(s) ip1 (key 'weights/<layer>')",
            get_network("facedet"))


def test_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arr = np.empty(1, dtype=object)
    arr[0] = Trap()
    path = _npz(tmp_path / "t.npz", **_base(**{"input/conv1": arr}))
    _raises(path, "unreadable array 'input/conv1' (Object arrays cannot be loaded when allow_pickle=False)")
    assert not marker.exists()


def test_pickled_format_entry_is_refused(tmp_path):
    path = _npz(tmp_path / "t.npz", format=np.array([TRACE_FORMAT, None], dtype=object))
    _raises(path, "unreadable array 'format'")


def test_not_a_zip(tmp_path):
    path = tmp_path / "t.npz"
    path.write_text("hello")
    _raises(path, "not a .npz (zip) archive")
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3, np.int16))
    _raises(npy, "not a .npz (zip) archive")


def test_truncated_zip(tmp_path):
    good = save_trace(_facedet_trace(False), tmp_path / "g.npz").read_bytes()
    path = tmp_path / "t.npz"
    path.write_bytes(good[: len(good) - 40])
    with pytest.raises(TraceError, match=f"^{re.escape(str(path))}: "):
        load_trace(path)


def test_missing_file(tmp_path):
    _raises(tmp_path / "none.npz", "trace file not found")


def test_unwritable_destination(tmp_path):
    with pytest.raises(TraceError, match=r"^cannot write trace '.*nodir/t\.npz': "):
        save_trace(_facedet_trace(False), tmp_path / "nodir" / "t.npz")


# -- quantize_q88 --------------------------------------------------------------------------------------------

def test_quantize_rounding_and_saturation():
    q, sat = quantize_q88(np.array([0.0, 1.0, -1.0, 1.5 / 256, 2.5 / 256, 200.0, -200.0, 127.99]))
    assert q.tolist() == [0, 256, -256, 2, 2, 32767, -32768, 32765] and sat == 2
    assert q.dtype == np.int16


def test_quantize_keep_nonzero():
    x = np.array([0.0, -0.0, 1e-6, -1e-6, 2 ** -9, 3e-3, -300.0])
    plain, _ = quantize_q88(x)
    kept, sat = quantize_q88(x, keep_nonzero=True)
    assert plain.tolist() == [0, 0, 0, 0, 0, 1, -32768]
    assert kept.tolist() == [0, 0, 1, -1, 1, 1, -32768] and sat == 1
    assert np.count_nonzero(kept) == np.count_nonzero(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite(bad):
    with pytest.raises(TraceError, match=r"^t\.npz: input/conv1: 1 value\(s\) are NaN or infinite; Q8.8 needs "
                                         r"finite numbers$"):
        quantize_q88(np.array([1.0, bad]), what="t.npz: input/conv1")
