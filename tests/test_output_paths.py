"""Output paths and the ``config`` command.

What sits at an output path is never destroyed: regular files are replaced
atomically, symbolic links are followed (the link stays), character devices and
FIFOs are written through, ``-`` is stdout, and every output is checked before
anything is simulated. ``sparsesim config`` lists every field with its unit, range
and source, and its ``--toml`` file loads back to the same configuration.
"""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from dataflows import FIELD_SPECS, MAX_MACS
from simulator import AcceleratorConfig, field_names, load_config, with_overrides
from simulator.cli import main
from simulator.report import check_output_paths, write_atomic
from workloads import ConfigError, SparsesimError

FAST = ["--no-check", "--quiet", "--trace", "synthetic"]


def test_regular_file_is_replaced_atomically_keeping_its_mode(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("old")
    os.chmod(p, 0o640)
    write_atomic(p, "new")
    assert p.read_text() == "new" and stat.S_IMODE(p.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["r.json"]          # no temporary file left


def test_symlink_is_followed_and_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("target.json").write_text("old")
    os.symlink("target.json", "link.json")
    assert main(["run", "facedet", *FAST, "--json", "link.json"]) == 0
    assert os.path.islink("link.json") and os.readlink("link.json") == "target.json"
    assert json.loads(Path("target.json").read_text())["network"] == "facedet"


def test_device_is_written_through_not_replaced(tmp_path, capsys):
    assert main(["run", "facedet", *FAST, "--json", "/dev/full"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_fifo_with_a_reader_receives_the_result(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []

    def read():
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    t = threading.Thread(target=read)
    t.start()
    try:
        for _ in range(200):            # wait until the reader has opened its end
            try:
                write_atomic(fifo, b"payload")
                break
            except SparsesimError as exc:
                assert "no process is reading it" in str(exc)
                threading.Event().wait(0.01)
    finally:
        t.join(timeout=10)
    assert got == [b"payload"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dash_is_stdout_and_replaces_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "facedet", "--no-check", "--trace", "synthetic", "--json", "-"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["network"] == "facedet"          # the whole of stdout is the JSON
    assert os.listdir(tmp_path) == []
    assert main(["run", "facedet", "--no-check", "--trace", "synthetic", "--csv", "-"]) == 0
    assert capsys.readouterr().out.startswith("network,name,op,")


@pytest.mark.parametrize("argv", [
    ["run", "facedet", "--json", "r.json", "--csv", "r.json"],
    ["run", "facedet", "--json", "notes.txt/r.json"],
    ["compare", "facedet", "--json", "/dev/full/x"],
    ["validate", "facedet", "--json", "out"],
    ["sweep", "facedet", "-o", "notes.txt"],
])
def test_outputs_are_checked_before_anything_runs(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("keep")
    Path("out").mkdir()
    import simulator.cli as cli

    def boom(*a, **k):
        raise AssertionError("simulated before checking the outputs")

    for name in ("Simulator", "compare_dataflows", "validate_network", "sweep", "load_user_network"):
        monkeypatch.setattr(cli, name, boom)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparsesim: error: ") and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "out"] and Path("notes.txt").read_text() == "keep"
    assert os.listdir("out") == []


def test_check_output_paths_names_both_options():
    with pytest.raises(SparsesimError, match="--json and --csv both write 'a'"):
        check_output_paths({"--json": "a", "--csv": "a", "--other": None})


# ------------------------------------------------------------------ config command
def test_config_lists_every_field_with_unit_range_and_source(capsys):
    assert main(["config", "rsnn", "--set", "macs=256"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[3:-1]}
    assert set(rows) == set(field_names()[1:]) == set(FIELD_SPECS)
    assert "--set" in rows["array.num_clusters"] and " 16 " in rows["array.num_clusters"]
    assert "preset rsnn" in rows["array.dataflow"]
    assert "[C]" in rows["array.macs_per_cluster"] and "1..1024" in rows["array.macs_per_cluster"]
    assert "MHz" in rows["array.clock_mhz"] and "[P]" in rows["array.clock_mhz"]
    assert "Assumption" in rows["dma.bandwidth_bytes_per_cycle"]
    assert "256 MACs" in out.splitlines()[0]


def test_every_numeric_field_has_both_bounds_and_they_are_enforced():
    cfg = AcceleratorConfig()
    for key, spec in FIELD_SPECS.items():
        value = getattr(getattr(cfg, key.partition(".")[0]), key.partition(".")[2])
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        assert spec.choices is not None or (spec.minimum is not None and spec.maximum is not None), key
        if spec.choices is not None:
            continue
        assert spec.minimum <= value <= spec.maximum, key
        assert spec.maximum < 2**62, key
        with pytest.raises(ConfigError) as info:
            with_overrides(cfg, {key: type(value)(spec.maximum * 2)})
        assert str(info.value).startswith(f"{key} must "), str(info.value)
        if key not in ("array.num_clusters", "array.num_pus", "dma.values_per_beat"):   # cross-field rules
            with_overrides(cfg, {key: spec.maximum})


def test_config_toml_round_trips_with_overrides(tmp_path, capsys):
    out = tmp_path / "starter.toml"
    assert main(["config", "combined", "--set", "macs=512", "--set", "dma.latency_cycles=7",
                 "--toml", str(out)]) == 0
    cfg = load_config(out)
    want = with_overrides(load_config("combined"), {"macs": 512, "dma.latency_cycles": 7})
    assert cfg == want and cfg.array.num_macs == 512
    text = out.read_text()
    assert "latency_cycles = 7" in text and "# cycles; 0..1000000000; --set" in text


def test_set_macs_in_run_matches_grid_macs(capsys):
    assert main(["run", "facedet", "--no-check", "--trace", "synthetic", "--set", "macs=256"]) == 0
    assert "256 MACs" in capsys.readouterr().out.splitlines()[0]
    assert with_overrides(AcceleratorConfig(), {"macs": MAX_MACS}).array.num_macs == MAX_MACS
