"""Compiling the timing kernels in a child process on a first run."""
import json
import os
import subprocess
import sys
import time

import pytest

from simulator.runner import _compile_ahead as ca
from workloads import ConfigError


def test_off_when_disabled_or_already_cached(monkeypatch):
    monkeypatch.setattr(ca, "compiled_engine_cached", lambda: False)
    monkeypatch.setenv(ca.ENV, "0")
    assert ca.start_compile_ahead(None) is None
    monkeypatch.setenv(ca.ENV, "1")
    monkeypatch.setattr(ca, "compiled_engine_cached", lambda: True)
    assert ca.start_compile_ahead(None) is None
    monkeypatch.setattr(ca, "compiled_engine_cached", lambda: False)
    monkeypatch.setattr(ca.sys, "frozen", True, raising=False)     # a bundled app: no interpreter
    assert ca.start_compile_ahead(None) is None


def test_bad_switch_is_a_config_error(monkeypatch):
    monkeypatch.setenv(ca.ENV, "yes")
    with pytest.raises(ConfigError, match=r"SPARSESIM_COMPILE_AHEAD must be 0 \(off\) or 1 \(on\), got 'yes'"):
        ca.start_compile_ahead(None)


def _child(code):
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)


def test_wait_returns_when_the_child_fails_or_is_slow(monkeypatch):
    warmed = []
    monkeypatch.setattr(ca, "_WARM_UPS", (lambda: warmed.append(1),))
    t = time.perf_counter()
    ca.CompileAhead(_child("import sys; sys.exit(3)")).wait()       # ended without its line
    assert time.perf_counter() - t < 20
    warmed.clear()
    slow = _child("import time; time.sleep(60)")
    try:
        t = time.perf_counter()
        ca.CompileAhead(slow).wait(timeout_s=0.5)
        assert time.perf_counter() - t < 20
        assert warmed == [1]            # it compiled the next kernels while the child worked
    finally:
        slow.kill()
        slow.wait()


_MISSES = r"""
import json
from simulator import simulate
from simulator.engine import compiled_engine_cached
from simulator.engine._pipeline_kernel import pipeline_kernel
from simulator.numerics import _kernels
from dataflows import _counts
cached = compiled_engine_cached()
simulate("roshambonet", "nullhop")
kernels = [pipeline_kernel, _counts._lane_mac_stripes, _counts._row_chunk_elements, _kernels._maxpool_kernel,
           _kernels._fc_acc_rows]
print(json.dumps({"cached": cached, "misses": {k.py_func.__name__: sum(k.stats.cache_misses.values()) for k in kernels},
                  "hits": {k.py_func.__name__: sum(k.stats.cache_hits.values()) for k in kernels}}))
"""


def test_the_child_compiles_what_a_real_run_loads(tmp_path):
    # A fresh numba cache: the child and the warm-ups the run makes while waiting for it compile;
    # a real run then finds every kernel they compiled in the cache, for the very argument types
    # it passes (no compile of its own).
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), **{ca.ENV: "0"})
    child = subprocess.run([sys.executable, "-c", "from simulator.runner._compile_ahead import _WARM_UPS, _child; "
                            "_child('nullhop'); [w() for w in _WARM_UPS]"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr
    assert child.stdout == "timing kernels cached\n"
    run = subprocess.run([sys.executable, "-c", _MISSES], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["cached"] is True
    assert all(v == 0 for v in got["misses"].values()), got
    assert all(v >= 1 for v in got["hits"].values()), got


def test_the_child_imports_this_copy_of_the_package(tmp_path, monkeypatch):
    # A working directory holding another "simulator" must not change what the child compiles.
    decoy = tmp_path / "simulator"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy package was imported')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setenv(ca.ENV, "1")
    monkeypatch.setattr(ca, "compiled_engine_cached", lambda: False)
    monkeypatch.setattr(ca.multiprocessing, "parent_process", lambda: None)
    from dataflows import load_config
    child = ca.start_compile_ahead(load_config("nullhop"))
    assert child is not None
    out, _ = child.proc.communicate(timeout=600)
    assert child.proc.returncode == 0
    assert out == b"timing kernels cached\n"


def test_another_copy_of_the_package_does_nothing(capsys):
    ca._child("nullhop", "/elsewhere/simulator/runner/_compile_ahead.py")
    assert capsys.readouterr().out == ""
