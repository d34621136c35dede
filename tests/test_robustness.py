"""Pipes, signals, sweep directories and fuzzing of the command line and the ONNX importer.

* A closed stdout (``| head``) ends every command quietly: no traceback, status 141.
* SIGINT or SIGTERM on a sweep stops its workers and exits within 2 s, keeping every finished point.
* A different sweep never overwrites the summary of the one already in a directory.
* Hypothesis: whatever the argument list, ``main`` returns 0, 1 or 2 (or argparse's help exits 0) with
  at most one stderr line on failure and no traceback; whatever the ONNX bytes, ``from_onnx``
  returns or raises a ``SparsesimError``.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import sweep
from simulator.cli import main
from workloads import SparsesimError, from_onnx

EXE = str(Path(sys.executable).parent / "sparsesim")


def _fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("argv", [["list"], ["config"], ["run", "facedet", "--timing-only"]])
def test_closed_stdout_exits_quietly(tmp_path, argv):
    r, w = os.pipe()
    os.close(r)                       # the reader is gone before anything is written
    try:
        proc = subprocess.run([EXE, *argv], stdout=w, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300)
    finally:
        os.close(w)
    assert proc.returncode == 128 + signal.SIGPIPE
    assert proc.stderr == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_a_sweep_within_two_seconds_keeping_finished_points(tmp_path, sig):
    out = tmp_path / "sw"
    proc = subprocess.Popen([EXE, "sweep", "resnet50", "--grid", "macs=64,128,256,512,1024,2048", "--timing-only",
                             "--workers", "2", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not glob.glob(str(out / "points" / "*.json")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        finished = sorted(os.listdir(out / "points"))
        t0 = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)      # Ctrl-C reaches the whole process group, workers included
        else:
            proc.send_signal(sig)         # SIGTERM, e.g. from a job scheduler, reaches the sweep only
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert elapsed < 2.0, elapsed
    assert proc.returncode == 128 + sig
    assert "Traceback" not in err
    assert err.splitlines()[-1] == ("sparsesim: interrupted" if sig == signal.SIGINT else "sparsesim: terminated")
    kept = sorted(p for p in os.listdir(out / "points") if p.endswith(".json"))
    assert set(finished) <= set(kept)
    for name in kept:
        assert json.loads((out / "points" / name).read_text())["id"] == name[:-5]
    # No worker outlives the sweep (multiprocessing's resource tracker ends once its pipe closes).
    for _ in range(50):
        ps = subprocess.run(["ps", "-o", "pid=,args=", "--sid", str(proc.pid)], capture_output=True,
                            text=True).stdout.strip()
        if not ps:
            break
        time.sleep(0.1)
    assert ps == ""


def test_a_different_sweep_keeps_the_earlier_summary(tmp_path):
    first = sweep("facedet", grid={"macs": [64, 128]}, out_dir=tmp_path, workers=1, trace="synthetic",
                  progress=False)
    before = {n: (tmp_path / n).read_text() for n in ("sweep.json", "sweep_totals.csv", "sweep_layers.csv")}
    second = sweep("facedet", grid={"macs": [128, 256]}, out_dir=tmp_path, workers=1, trace="synthetic",
                   progress=False)
    assert (len(second.reused), len(second.computed)) == (1, 1)        # points are still shared
    kept = sorted(p.name for p in tmp_path.glob("sweep-*.json"))
    assert len(kept) == 1
    sid = kept[0][len("sweep-"):-len(".json")]
    assert (tmp_path / f"sweep-{sid}.json").read_text() == before["sweep.json"]
    assert (tmp_path / f"sweep_totals-{sid}.csv").read_text() == before["sweep_totals.csv"]
    assert (tmp_path / f"sweep_layers-{sid}.csv").read_text() == before["sweep_layers.csv"]
    assert json.loads((tmp_path / "sweep.json").read_text())["grid"] == {"macs": [128, 256]}
    # The same sweep again leaves everything where it is.
    again = sweep("facedet", grid={"macs": [128, 256]}, out_dir=tmp_path, workers=1, trace="synthetic",
                  progress=False)
    assert len(again.reused) == 2 and sorted(p.name for p in tmp_path.glob("sweep-*.json")) == kept
    assert first.ids[1] == second.ids[0]


def test_a_foreign_sweep_json_is_never_touched(tmp_path):
    (tmp_path / "sweep.json").write_text('{"mine": true}')
    with pytest.raises(SparsesimError, match="is not a sparsesim sweep file"):
        sweep("facedet", grid={"macs": [64]}, out_dir=tmp_path, workers=1, progress=False)
    assert (tmp_path / "sweep.json").read_text() == '{"mine": true}'
    assert sorted(os.listdir(tmp_path)) == ["sweep.json"]


# ------------------------------------------------------------------ fuzzing the command line
_WORDS = ["run", "compare", "validate", "sweep", "plot", "config", "list", "facedet", "vgg16", "nullhop", "rsnn",
          "--accel", "--set", "--grid", "--json", "--csv", "--seed", "--profile", "--trace", "--trace-file",
          "--image", "--input-shape", "--pruning", "--timing-only", "--no-check", "--quiet", "--layers",
          "--max-rows", "--workers", "--max-memory", "--toml", "--kind", "--dataflows", "--baseline", "-o", "-",
          "macs=64", "macs=0", "macs=-1", "macs=99999999999999999999", "array.num_clusters=9223372036854775807",
          "dma.bandwidth_bytes_per_cycle=1e-300", "array.clock_mhz=nan", "dma.latency_cycles=1e400",
          "memory.input_memory_kib=", "=", "x=y", "uniform-2", "uniform-nan", "synthetic", "1e9", "-5", "0",
          "99999999999999999999999", "1,2,3", "nosuch.onnx", "a.csv", "out.json", "out.json", "\x00", "é", ""]
# No "/" or ".": a fuzzed output path stays inside the test's directory.
_ARG = st.one_of(st.sampled_from(_WORDS), st.text(st.characters(blacklist_characters="/."), max_size=12))


@_fuzz(150)
@given(argv=st.lists(_ARG, max_size=7))
def test_fuzz_command_line(tmp_path, monkeypatch, argv):
    """Any argument list: a clean exit status, at most one stderr line on error, never a traceback."""
    monkeypatch.chdir(tmp_path)
    # The few argument lists that would run a whole network are cut short: the parser and the
    # checks before simulating are what is fuzzed.
    argv = ["facedet" if a == "vgg16" else a for a in argv]
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:            # --help / --version
            code = exc.code
    assert code in (0, 1, 2), (argv, code)
    text = err.getvalue()
    assert "Traceback" not in text
    if code == 2:
        assert len(text.splitlines()) == 1 and text.startswith("sparsesim: error: "), (argv, text)


# ------------------------------------------------------------------ fuzzing the ONNX importer
def _tiny_model() -> bytes:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.05, np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("p", TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


@_fuzz(120)
@given(data=st.data())
def test_fuzz_onnx_importer(tmp_path, data):
    """Mutated, truncated and spliced ONNX files: ``from_onnx`` returns or raises a SparsesimError only."""
    base = bytearray(_tiny_model())
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "random", "dims"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(base) - 1))
            base[i] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        base = base[:data.draw(st.integers(0, len(base)))]
    elif kind == "splice":
        i = data.draw(st.integers(0, len(base)))
        base[i:i] = data.draw(st.binary(max_size=64))
    elif kind == "random":
        base = bytearray(data.draw(st.binary(max_size=512)))
    else:                                # rewrite the input's dims: huge, zero, negative
        onnx = pytest.importorskip("onnx")
        m = onnx.load_from_string(bytes(base))
        dims = m.graph.input[0].type.tensor_type.shape.dim
        for d in dims:
            d.dim_value = data.draw(st.sampled_from([0, 1, 3, 8, 2**31 - 1, 10**6, 10**12]))
        base = bytearray(m.SerializeToString())
    path = tmp_path / "m.onnx"
    path.write_bytes(bytes(base))
    try:
        from_onnx(path)
    except SparsesimError:
        pass
