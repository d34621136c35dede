"""Determinism: the same inputs and seed give byte-identical JSON.

In this process, in a fresh interpreter with another ``PYTHONHASHSEED`` (so nothing
may depend on Python's salted ``hash()`` or on set/dict iteration of strings), and
through the ``sparsesim`` console script, for ``run`` and ``compare``, for every
bundled preset and both synthetic trace modes, and for an imported ONNX model.

Sweeps (serial vs process pool vs Dask, byte for byte) and crash safety (SIGKILL,
then resume) are tested in ``tests/test_sweep.py``; see docs/errors.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator import list_presets, simulate
from simulator.studies import compare_dataflows

#: Small zoo networks, so every preset and trace mode fits in a few seconds.
NETWORKS = ("facedet", "roshambonet")
TRACES = ("propagated", "synthetic")


def _run_json(network: str, preset: str, trace: str, seed: int) -> str:
    return simulate(network, preset, seed=seed, trace=trace).to_json()


def _compare_json(network: str, seed: int) -> str:
    comp = compare_dataflows(network, "nullhop", seed=seed, check=False)
    return json.dumps({"rows": comp.rows(), "results": {k: r.to_dict() for k, r in comp.results.items()}},
                      indent=1) + "\n"


# The script a fresh interpreter runs: the same calls, printed as one JSON document.
_FRESH = """
import json, sys
sys.path.insert(0, {tests!r})
from test_determinism import _compare_json, _run_json, NETWORKS, TRACES
from simulator import list_presets
out = {{"run": {{f"{{n}}/{{p}}/{{t}}": _run_json(n, p, t, 7) for n in NETWORKS for p in list_presets() for t in TRACES}},
        "compare": _compare_json("facedet", 2)}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def here() -> dict:
    return {"run": {f"{n}/{p}/{t}": _run_json(n, p, t, 7) for n in NETWORKS for p in list_presets() for t in TRACES},
            "compare": _compare_json("facedet", 2)}


def test_every_preset_and_trace_mode_repeats_byte_for_byte(here):
    assert len(here["run"]) == len(NETWORKS) * len(list_presets()) * len(TRACES)
    for key, text in here["run"].items():
        n, p, t = key.split("/")
        assert _run_json(n, p, t, 7) == text, key
        doc = json.loads(text)
        assert doc["seed"] == 7 and doc["trace"] == t and doc["totals"]["cycles"] > 0


def test_compare_repeats_byte_for_byte(here):
    assert _compare_json("facedet", 2) == here["compare"]


def test_the_seed_matters(here):
    """Guards the tests above against comparing constants: another seed changes the data."""
    assert _run_json("facedet", "nullhop", "synthetic", 8) != here["run"]["facedet/nullhop/synthetic"]


def test_fresh_interpreter_with_another_hash_seed_gives_the_same_bytes(here):
    code = _FRESH.format(tests=str(Path(__file__).resolve().parent))
    outs = []
    for hash_seed in ("1", "2718"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for fresh in outs:
        assert fresh["run"].keys() == here["run"].keys()
        for key in here["run"]:
            assert fresh["run"][key] == here["run"][key], key
        assert fresh["compare"] == here["compare"]


def test_console_script_run_and_compare_files_are_byte_identical(tmp_path):
    exe = Path(sys.executable).parent / "sparsesim"
    files = {}
    for hash_seed in ("3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run_json, cmp_json = tmp_path / f"run{hash_seed}.json", tmp_path / f"cmp{hash_seed}.json"
        for argv in (["run", "roshambonet", "--seed", "5", "--trace", "synthetic", "--quiet", "--json", str(run_json)],
                     ["compare", "facedet", "--seed", "5", "--no-check", "--json", str(cmp_json)]):
            proc = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=600, env=env)
            assert proc.returncode == 0, proc.stderr
        files[hash_seed] = (run_json.read_bytes(), cmp_json.read_bytes())
    assert files["3"] == files["4"]
    assert files["3"][0].decode() == simulate("roshambonet", seed=5, trace="synthetic").to_json()
    comp = compare_dataflows("facedet", "nullhop", seed=5, check=False)
    assert files["3"][1].decode() == json.dumps(comp.rows(), indent=2) + "\n"


def test_onnx_import_and_run_are_deterministic(tmp_path):
    """Importing a model runs onnxruntime; the captured Q8.8 trace and the result repeat exactly."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from workloads import from_onnx

    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="c2", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c2"], ["r2"], name="r2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("r2", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    texts = []
    for _ in range(2):
        net, trace = from_onnx(path)
        texts.append(simulate(net, trace=trace).to_json())
    assert texts[0] == texts[1]


def test_docs_name_existing_sweep_tests():
    """docs/errors.md points to the sweep equality and SIGKILL tests; they must exist under those names."""
    import re

    root = Path(__file__).resolve().parent.parent
    refs = re.findall(r"tests/(test_\w+\.py)::(test_\w+)", (root / "docs" / "errors.md").read_text(encoding="utf-8"))
    assert {name for _, name in refs} >= {"test_process_pool_matches_serial_byte_for_byte",
                                          "test_dask_matches_serial_byte_for_byte",
                                          "test_killed_sweep_loses_no_finished_point"}
    for file, name in refs:
        assert re.search(rf"^def {name}\(", (root / "tests" / file).read_text(encoding="utf-8"), re.M), (file, name)
