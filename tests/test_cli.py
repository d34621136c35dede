"""Tests for simulator.cli: ``sparsesim list`` and ``sparsesim run``, in-process and as a console script."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator import ConfigError, list_presets, simulate
from simulator.cli import main
from workloads import WorkloadError, list_networks, list_profiles


def _one_error_line(capsys, argv, *needles):
    """Run ``main(argv)``: exit status 2, one stderr line ``sparsesim: error: ...`` containing needles."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sparsesim: error: "), err
    assert not lines[0].startswith("sparsesim: error: sparsesim: error:")
    assert "Traceback" not in err and "Traceback" not in out
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ----------------------------------------------------------------------- list
def test_list(capsys):
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    nets = next(l for l in lines if l.startswith("networks:"))
    presets = next(l for l in lines if l.startswith("presets:"))
    profiles = next(l for l in lines if l.startswith("profiles:"))
    for n in list_networks():
        assert n in nets
    assert "roshambonet" in nets and "facedet" in nets and "vgg16" in nets
    for p in list_presets():
        assert p in presets
    assert "nullhop" in presets
    for p in list_profiles():
        assert p in profiles
    assert "uniform-" in profiles


# ------------------------------------------------------------------------ run
def test_run_writes_json_and_csv_quietly(capsys, tmp_path):
    j, c = tmp_path / "r.json", tmp_path / "out" / "r.csv"
    assert main(["run", "roshambonet", "--json", str(j), "--csv", str(c), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    d = json.loads(j.read_text())
    assert d["network"] == "roshambonet" and d["seed"] == 0 and d["trace"] == "propagated"
    assert len(d["layers"]) == 11
    assert d["totals"]["cycles"] == sum(l["cycles"] for l in d["layers"] if l["where"] == "accelerator") > 0
    rows = list(csv.DictReader(io.StringIO(c.read_text())))
    assert [r["name"] for r in rows] == [l["name"] for l in d["layers"]]
    assert all(r["network"] == "roshambonet" for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.json"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.csv"]


def test_run_prints_table(capsys):
    assert main(["run", "facedet", "--seed", "2", "--set", "dma.latency_cycles=50", "--no-check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for name in ("conv1", "pool1", "conv2", "pool2", "ip1", "ip2"):
        assert name in out
    assert "seed 2" in out
    assert any(line.startswith("total") for line in out.splitlines())


def test_run_options_reach_the_simulator(capsys, tmp_path):
    j = tmp_path / "r.json"
    argv = ["run", "facedet", "--quiet", "--json", str(j), "--seed", "3", "--trace", "synthetic",
            "--profile", "uniform-0.25", "--set", "dma.bandwidth_bytes_per_cycle=4", "--set", " dma.latency_cycles = 7 "]
    assert main(argv) == 0
    capsys.readouterr()
    d = json.loads(j.read_text())
    assert (d["seed"], d["trace"], d["profile"]) == (3, "synthetic", "uniform-0.25")
    assert d["config"]["dma"]["bandwidth_bytes_per_cycle"] == 4.0
    assert d["config"]["dma"]["latency_cycles"] == 7


def test_run_accel_file(capsys, tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text('base = "nullhop"\n[dma]\nlatency_cycles = 10\n')
    j = tmp_path / "r.json"
    assert main(["run", "facedet", "--quiet", "--accel", str(cfg), "--json", str(j)]) == 0
    d = json.loads(j.read_text())
    assert d["accelerator"] == "mine" and d["config"]["dma"]["latency_cycles"] == 10


# --------------------------------------------------------------------- errors
def test_unknown_network(capsys):
    _one_error_line(capsys, ["run", "nosuchnet"], "nosuchnet")


def test_set_without_equals(capsys):
    _one_error_line(capsys, ["run", "facedet", "--set", "dma.latency_cycles"], "key=value", "dma.latency_cycles")


def test_unknown_config_key(capsys):
    _one_error_line(capsys, ["run", "facedet", "--set", "dma.nosuch=3"], "dma.nosuch")


def test_bad_config_value(capsys):
    _one_error_line(capsys, ["run", "facedet", "--set", "dma.latency_cycles=fast"], "dma.latency_cycles", "fast")


@pytest.mark.parametrize("seed", ["-1", "abc"])
def test_bad_seed(capsys, seed):
    _one_error_line(capsys, ["run", "facedet", "--seed", seed], "--seed", seed)


def test_missing_accel_file(capsys, tmp_path):
    missing = tmp_path / "nope.toml"
    _one_error_line(capsys, ["run", "facedet", "--accel", str(missing)], str(missing))


def test_unknown_preset(capsys):
    _one_error_line(capsys, ["run", "facedet", "--accel", "nosuchpreset"], "nosuchpreset")


def test_unknown_trace(capsys):
    _one_error_line(capsys, ["run", "facedet", "--trace", "bogus"], "--trace", "bogus")


def test_unknown_profile(capsys):
    _one_error_line(capsys, ["run", "facedet", "--profile", "nosuchprofile"], "nosuchprofile")


def test_unwritable_json_path(capsys, tmp_path):
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    target = blocker / "r.json"
    _one_error_line(capsys, ["run", "facedet", "--quiet", "--json", str(target)], str(target))
    assert blocker.read_text() == "x"


def test_unwritable_csv_path(capsys, tmp_path):
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    target = blocker / "r.csv"
    _one_error_line(capsys, ["run", "facedet", "--quiet", "--csv", str(target)], str(target))


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["run"], ["run", "facedet", "--nosuchflag"]])
def test_usage_errors(capsys, argv):
    _one_error_line(capsys, argv)


def test_debug_reraises(capsys):
    with pytest.raises(WorkloadError, match="nosuchnet"):
        main(["--debug", "run", "nosuchnet"])
    with pytest.raises(ConfigError, match="dma.nosuch"):
        main(["--debug", "run", "facedet", "--set", "dma.nosuch=1"])


# ------------------------------------------------------------ console script
def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).parent / "sparsesim"
    assert exe.exists(), exe
    proc = subprocess.run([str(exe), "run", "facedet", "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    # Same result in another process with another string-hash seed (no hash()-based seeding).
    j = tmp_path / "r.json"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run([str(exe), "run", "facedet", "--quiet", "--seed", "3", "--json", str(j)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert j.read_text(encoding="utf-8") == simulate("facedet", seed=3).to_json()
    bad = subprocess.run([str(exe), "run", "nosuchnet"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("sparsesim: error: ") and len(bad.stderr.splitlines()) == 1


def test_console_entry_points_exit_with_mains_status():
    # `python -m simulator` and the `sparsesim` script (pyproject) go through console_main.
    import tomllib
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["sparsesim"] == "simulator.cli:console_main"
    ok = subprocess.run([sys.executable, "-m", "simulator", "list"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "vgg16" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "simulator", "run", "no-such-net"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
