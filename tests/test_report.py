"""Tests for simulator.report: Result output formats and write_atomic."""
from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

from simulator import Result, Simulator, SparsesimError
from simulator.report import write_atomic

FACEDET_LAYERS = ["conv1", "pool1", "conv2", "pool2", "ip1", "ip2"]
UNITS = ("dma_read", "decoder", "mac_array", "pre", "encoder", "dma_write")


@pytest.fixture(scope="module")
def result() -> Result:
    return Simulator("nullhop").run("facedet", seed=4)


# ----------------------------------------------------------------------- JSON
def test_to_json_parses_and_round_trips(result):
    d = json.loads(result.to_json())
    assert d["network"] == "facedet"
    assert d["accelerator"] == "nullhop"
    assert d["profile"] == result.profile == "uniform-0.5"
    assert d["trace"] == "propagated"
    assert d["seed"] == 4
    assert d["config"]["array"]["num_clusters"] == 8
    assert d["config"]["memory"]["input_memory_kib"] == 512
    assert [l["name"] for l in d["layers"]] == FACEDET_LAYERS
    assert d["totals"]["cycles"] == result.totals["cycles"]
    assert d["totals"]["dram_bytes"] == result.totals["dram_bytes"]
    for l_json, l in zip(d["layers"], result.layers):
        assert l_json["where"] == l.where
        assert l_json["cycles"] == l.cycles
        assert l_json["macs_dense"] == l.macs_dense
        assert l_json["efficiency"] == l.efficiency
        assert l_json["units"] == l.units
        assert tuple(l_json["out_shape"]) == l.out_shape
    # a second serialisation is byte-identical
    assert result.to_json() == result.to_json()


def test_to_json_writes_file(result, tmp_path):
    path = tmp_path / "sub" / "r.json"
    text = result.to_json(path)
    assert path.read_text(encoding="utf-8") == text
    assert json.loads(text)["network"] == "facedet"


# ------------------------------------------------------------------------ CSV
def test_to_csv_header_and_rows(result, tmp_path):
    text = result.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    assert len(rows) == len(result.layers) == len(FACEDET_LAYERS)
    assert header[0] == "network"
    for col in ("name", "op", "where", "cycles", "m", "passes", "macs_dense", "efficiency",
                "mac_utilization", "in_shape", "out_shape", "dram_read_bytes.weights",
                "dram_write_bytes.activations", "units.mac_array.busy", "units.dma_read.idle"):
        assert col in header, col
    assert len(header) == len(set(header))
    assert [r["name"] for r in rows] == FACEDET_LAYERS
    assert all(r["network"] == "facedet" for r in rows)
    conv1 = rows[0]
    assert int(conv1["cycles"]) == result.layer("conv1").cycles
    assert conv1["in_shape"] == "36x36x1"
    assert int(conv1["units.mac_array.busy"]) == result.layer("conv1").units["mac_array"]["busy"]
    # host rows have empty cells for accelerator-only counters
    assert rows[4]["where"] == "host" and rows[4]["units.mac_array.busy"] == ""
    path = tmp_path / "r.csv"
    assert result.to_csv(path) == text
    assert path.read_text(encoding="utf-8") == text


# ------------------------------------------------------------------ DataFrame
def test_to_dataframe(result):
    df = result.to_dataframe()
    assert len(df) == len(result.layers)
    assert list(df["name"]) == FACEDET_LAYERS
    for col in ("network", "name", "where", "cycles", "latency_us", "efficiency", "mac_utilization",
                "dram_read_bytes.weights", "units.mac_array.busy"):
        assert col in df.columns, col
    acc = df[df["where"] == "accelerator"]
    assert int(acc["cycles"].sum()) == result.totals["cycles"]
    for u in UNITS:
        assert (acc[f"units.{u}.busy"] + acc[f"units.{u}.stall_input"] + acc[f"units.{u}.stall_output"]
                + acc[f"units.{u}.stall_dram"] + acc[f"units.{u}.stall_weights"] + acc[f"units.{u}.idle"]
                == acc["cycles"]).all()


# ---------------------------------------------------------------------- table
def test_format_table(result):
    text = result.format_table()
    lines = text.splitlines()
    for name in FACEDET_LAYERS:
        assert any(line.startswith(name) for line in lines), name
    total = [line for line in lines if line.startswith("total")]
    assert len(total) == 1
    assert f"{result.totals['cycles']:,d}" in total[0]
    assert "facedet" in lines[0] and "nullhop" in lines[0]
    assert "host" in text  # host layers listed as not timed


# ---------------------------------------------------------------- write_atomic
def test_write_atomic_writes_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    assert write_atomic(target, "hello\n") == target
    assert target.read_text() == "hello\n"
    write_atomic(target, "second\n")  # replaces in place
    assert target.read_text() == "second\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_write_atomic_file_mode_like_a_plain_write(tmp_path):
    # A result file written atomically should get the same permissions as one written
    # with open() (0o666 minus the umask), not mkstemp's private 0o600.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "atomic.txt"
    write_atomic(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_write_atomic_creates_parent_dirs(tmp_path):
    target = tmp_path / "a" / "b" / "c.json"
    write_atomic(str(target), "{}")
    assert target.read_text() == "{}"


def test_write_atomic_under_a_regular_file_names_the_path(tmp_path):
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    target = blocker / "out.json"
    with pytest.raises(SparsesimError) as info:
        write_atomic(target, "{}")
    assert str(target) in str(info.value)
    assert blocker.read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["plainfile"]


def test_write_atomic_failed_replace_removes_temp(tmp_path):
    # The target is an existing directory: the temp file is written, os.replace fails.
    target = tmp_path / "adir"
    target.mkdir()
    with pytest.raises(SparsesimError) as info:
        write_atomic(target, "data")
    assert str(target) in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["adir"]
    assert os.listdir(target) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_write_atomic_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(SparsesimError) as info:
            write_atomic(ro / "x.json", "{}")
        assert str(ro / "x.json") in str(info.value)
    finally:
        ro.chmod(stat.S_IRWXU)
    assert os.listdir(ro) == []


def _fsync_interrupted(fd):
    raise KeyboardInterrupt


@pytest.mark.parametrize("case", ["interrupted", "unencodable"])
def test_failed_write_keeps_previous_content_and_leaves_no_temp(tmp_path, monkeypatch, case):
    # Any failure while the temporary file is written must leave the old file intact
    # and remove the temporary file, not only OSError (module docstring: "an
    # interrupted run never leaves a half-written result").
    target = tmp_path / "keep.txt"
    write_atomic(target, "old")
    if case == "interrupted":
        monkeypatch.setattr(os, "fsync", _fsync_interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_atomic(target, "new")
    else:
        with pytest.raises((SparsesimError, UnicodeError)):
            write_atomic(target, "lone surrogate \udc80")  # not encodable as UTF-8
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
