"""Security: no pickle, no eval/exec of input, no writing outside the results directory.

* The sources of the three packages are parsed (``ast``), not grepped, so comments
  and docstrings that mention pickle do not count and aliased imports do.
* A trace file holding a pickled object is refused without being unpickled: the
  object's ``__reduce__`` would create a marker file, which must never appear.
* Names that come from user files (ONNX graph and file names, SCALE-Sim file names,
  ``Network.name``) never choose where a file is written.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.report import safe_output_path
from simulator.cli import main
from workloads import TRACE_FORMAT, NetworkBuilder, TraceError, load_trace
from workloads import SparsesimError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simulator", "workloads", "dataflows")
SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))

_BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
_BANNED_CALLS = {"eval", "exec", "compile", "__import__", "input"}
_BANNED_ATTRS = {("yaml", "load"), ("yaml", "unsafe_load"), ("torch", "load"), ("os", "system"), ("os", "popen")}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"{where}:{node.lineno}: import {a.name}" for a in node.names
                    if a.name.split(".")[0] in _BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in _BANNED_MODULES:
                out.append(f"{where}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in _BANNED_CALLS:
                out.append(f"{where}:{node.lineno}: {name}()")
            parts = name.split(".")
            if len(parts) >= 2 and (parts[-2], parts[-1]) in _BANNED_ATTRS:
                out.append(f"{where}:{node.lineno}: {name}()")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    out.append(f"{where}:{node.lineno}: {name}(allow_pickle=<not False>)")
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    out.append(f"{where}:{node.lineno}: {name}(shell=...)")
            if parts[-1] == "load" and parts[0] in ("np", "numpy"):
                if not any(kw.arg == "allow_pickle" for kw in node.keywords):
                    out.append(f"{where}:{node.lineno}: {name}() without allow_pickle=False")
    return out


def test_sources_were_found():
    names = {p.name for p in SOURCES}
    assert {"_trace.py", "_onnx.py", "_accelerator.py", "cli.py", "_sweep.py", "_result.py", "_stripe.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_pickle_eval_exec_or_unsafe_loaders(path):
    assert _findings(path) == []


def test_the_checker_catches_what_it_looks_for(tmp_path):
    """The AST checker itself: every banned form in a sample file is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport numpy as np\nfrom marshal import loads\nimport yaml, os\n"
        "eval('1')\nexec('x = 1')\nyaml.load(s)\nnp.load(f)\nnp.load(f, allow_pickle=True)\n"
        "os.system('ls')\nsubprocess.run(c, shell=True)\n"
        "# pickle.loads in a comment is fine\n'''eval( in a docstring is fine'''\n")
    found = [f.split(": ", 1)[1] for f in _findings(bad)]
    assert found == ["import pickle", "from marshal import ...", "eval()", "exec()", "yaml.load()",
                     "np.load() without allow_pickle=False", "np.load(allow_pickle=<not False>)", "os.system()",
                     "subprocess.run(shell=...)"], found
    ok = tmp_path / "ok.py"
    ok.write_text("import numpy as np\nnp.load(f, allow_pickle=False)\n# import pickle\nx = 'eval(1)'\n")
    assert _findings(ok) == []


# ------------------------------------------------------- pickled trace files
class _Trap:
    """Unpickling this creates ``path``: proof that the loader ran pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_npz(path: Path, marker: Path, key: str) -> Path:
    arr = np.empty(2, dtype=object)
    arr[:] = [_Trap(marker), 1]
    content = {"format": np.array(TRACE_FORMAT), "network": np.array("facedet"), key: arr}
    with open(path, "wb") as fh:
        np.savez(fh, allow_pickle=True, **content)   # writing a pickle is fine; loading one is not
    return path


@pytest.mark.parametrize("key", ["image", "weights/conv1", "bias/ip2", "input/conv2", "format", "network", "extra"])
def test_load_trace_never_unpickles(tmp_path, key):
    marker = tmp_path / "unpickled"
    path = _evil_npz(tmp_path / "evil.npz", marker, key)
    # A name no trace has is refused from the zip directory, before its array is even opened.
    why = ("unexpected array 'extra'; allowed: " if key == "extra" else
           f"unreadable array '{key}' \\(Object arrays cannot be loaded when allow_pickle=False\\)$")
    with pytest.raises(TraceError, match=f"^{path}: {why}"):
        load_trace(path)
    assert not marker.exists()
    # The trap is real: numpy with pickling allowed does run it.
    with np.load(path, allow_pickle=True) as z:
        z[key]
    assert marker.exists()


def test_cli_trace_file_never_unpickles(tmp_path, capsys):
    marker = tmp_path / "unpickled"
    path = _evil_npz(tmp_path / "evil.npz", marker, "weights/conv1")
    assert main(["run", "facedet", "--trace-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sparsesim: error: {path}: unreadable array 'weights/conv1'") and err.count("\n") == 1
    assert not marker.exists()


# ------------------------------------------------------- output file names
@pytest.mark.parametrize("name, expected", [
    ("resnet50", "resnet50.json"),
    ("../../evil", "_.._evil.json"),
    ("/etc/passwd", "_etc_passwd.json"),
    ("..\\..\\win", "_.._win.json"),
    ("a/../../b", "a_.._.._b.json"),
    ("~/.ssh/id_rsa", "_.ssh_id_rsa.json"),
    (".hidden", "hidden.json"),
    ("модель v2", "_v2.json"),
    ("name\x00.onnx", "name_.onnx.json"),
    ("C:\\Windows\\x", "C_Windows_x.json"),
])
def test_safe_output_path_stays_inside(tmp_path, name, expected):
    out = tmp_path / "results"
    p = safe_output_path(out, name, ".json")
    assert p == (out / expected).resolve()
    assert p.parent == out.resolve()


@pytest.mark.parametrize("name", ["", ".", "..", "...", "/", "../..", "___", " ", "-"])
def test_safe_output_path_refuses_names_without_letters_or_digits(tmp_path, name):
    with pytest.raises(SparsesimError, match=r"^cannot derive an output file name from "):
        safe_output_path(tmp_path, name, ".json")


def test_safe_output_path_refuses_a_suffix_that_leaves(tmp_path):
    with pytest.raises(SparsesimError, match=r"would leave the results directory"):
        safe_output_path(tmp_path / "out", "model", "/../../x")


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=40))
def test_safe_output_path_fuzz(name):
    base = Path("/tmp/sparsesim-results-dir").resolve()
    try:
        p = safe_output_path(base, name, ".csv")
    except SparsesimError:
        return
    assert p.parent == base and p.name.endswith(".csv")
    assert "/" not in p.name and not p.name.startswith(".") and os.sep not in p.name


def test_names_from_model_files_are_sanitised(tmp_path):
    """ONNX and SCALE-Sim importers reduce file and node names to [A-Za-z0-9_.-]."""
    from workloads import from_scalesim_csv
    from workloads._onnx import _sanitize

    assert _sanitize("../../evil") == "evil" and _sanitize("/layer1/conv/Conv") == "layer1_conv_Conv"
    csv = tmp_path / "..a b;c.csv"
    csv.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                   "Strides,\n../../c1, 8, 8, 3, 3, 3, 4, 1,\n")
    assert from_scalesim_csv(csv).name == "a_b_c"


def test_sweep_files_of_a_network_named_like_a_path_stay_in_out_dir(tmp_path):
    """Sweep point files are named by a hash, never by the (user-chosen) network name."""
    from simulator import sweep

    b = NetworkBuilder("../../escaped", (8, 8, 4))
    b.conv("../c1", 8, 3, padding=1)
    out = tmp_path / "a" / "results"
    before = set(tmp_path.rglob("*"))
    res = sweep(b.build(), grid={"seed": [0]}, out_dir=out, workers=1, progress=False)
    assert len(res.ids) == 1
    written = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    assert len(written) == 4 and all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    assert not list(tmp_path.rglob("escaped*")) and not (tmp_path.parent / "escaped").exists()
