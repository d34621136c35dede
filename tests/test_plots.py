"""Tests for simulator.studies (plots): every plot draws labelled, non-empty axes; plot_file writes images."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")   # test path only: the library never selects a backend

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from simulator.report import COUNTERS  # noqa: E402
from simulator import (SparsesimError, plot_cycle_breakdown, plot_dram_traffic, plot_energy_breakdown,  # noqa: E402
                       plot_file, plot_sweep, plot_utilization, simulate, sweep)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def result():
    return simulate("roshambonet", check=False)


@pytest.fixture(scope="module")
def result_json(result, tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "roshambonet.json"
    result.to_json(path)
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return sweep("facedet", grid={"macs": [32, 64, 128, 256]}, out_dir=out, workers=1, progress=False), out


def _no_energy(result) -> dict:
    d = result.to_dict()
    d["totals"].pop("energy_breakdown_uj", None)
    d["totals"].pop("energy_uj", None)
    return d


def _bars(ax: Axes) -> int:
    return sum(len(c) for c in ax.containers)


def test_utilization(result):
    ax = plot_utilization(result)
    assert isinstance(ax, Axes)
    assert ax.get_ylabel() == "MAC utilization / efficiency (%)"
    assert ax.get_xlabel() == "layer"
    assert "roshambonet on nullhop (128 MACs @ 500 MHz)" in ax.get_title().replace("\n", " ")
    acc = [l.name for l in result.layers if l.where == "accelerator"]
    assert [t.get_text() for t in ax.get_xticklabels()] == acc
    assert _bars(ax) == 2 * len(acc)
    heights = [p.get_height() for p in ax.containers[0]]
    assert heights == pytest.approx([100 * l.mac_utilization for l in result.layers if l.where == "accelerator"])


def test_utilization_accepts_the_json_dict_and_an_existing_axes(result_json):
    fig = Figure()
    ax = fig.subplots()
    assert plot_utilization(json.loads(result_json.read_text()), ax=ax) is ax
    assert _bars(ax) > 0


def test_cycle_breakdown_by_unit(result):
    ax = plot_cycle_breakdown(result)
    assert ax.get_xlabel() == "cycles" and ax.get_ylabel() == "unit"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dma read", "decoder", "mac array", "pre", "encoder",
                                                           "dma write"]
    assert _bars(ax) == 6 * len(COUNTERS)
    # Every unit's stacked bar spans the network's cycles.
    ends = [0.0] * 6
    for container in ax.containers:
        for i, patch in enumerate(container):
            ends[i] = max(ends[i], patch.get_x() + patch.get_width())
    assert ends == pytest.approx([result.totals["cycles"]] * 6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["busy", "stall input", "stall output",
                                                                  "stall dram", "stall weights", "idle"]


def test_cycle_breakdown_of_one_unit_per_layer(result):
    ax = plot_cycle_breakdown(result, unit="mac_array")
    assert ax.get_ylabel() == "cycles" and ax.get_xlabel() == "layer"
    acc = [l for l in result.layers if l.where == "accelerator"]
    tops = [0.0] * len(acc)
    for container in ax.containers:
        for i, patch in enumerate(container):
            tops[i] = max(tops[i], patch.get_y() + patch.get_height())
    assert tops == pytest.approx([l.cycles for l in acc])
    with pytest.raises(SparsesimError, match=r"^unknown unit 'mac'; units are decoder, dma_read, dma_write, "
                                             r"encoder, mac_array, pre$"):
        plot_cycle_breakdown(result, unit="mac")


def test_dram_traffic(result):
    ax = plot_dram_traffic(result)
    assert ax.get_ylabel() == "DRAM traffic (MiB)" and ax.get_xlabel() == "layer"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "read: weights" in labels and "write: activations" in labels
    acc = [l for l in result.layers if l.where == "accelerator"]
    tops = [0.0] * len(acc)
    for container in ax.containers:
        for i, patch in enumerate(container):
            tops[i] = max(tops[i], patch.get_y() + patch.get_height())
    assert tops == pytest.approx([l.dram_bytes / 2**20 for l in acc])


def test_energy_breakdown(result):
    ax = plot_energy_breakdown(result)
    assert ax.get_xlabel() == "energy (µJ)" and ax.get_ylabel() == "component"
    widths = sorted((p.get_width() for p in ax.containers[0]), reverse=True)
    # Components without energy are left out.
    assert widths == pytest.approx(sorted((v for v in result.totals["energy_breakdown_uj"].values() if v > 0),
                                          reverse=True))
    assert len({p.get_facecolor() for p in ax.containers[0]}) == len(widths)
    assert "energy breakdown" in ax.get_title()


def test_energy_breakdown_without_energy_figures(result):
    with pytest.raises(SparsesimError, match=r"^this result has no energy figures"):
        plot_energy_breakdown(_no_energy(result))


def test_not_a_result():
    with pytest.raises(SparsesimError, match=r"^expected a Result or its to_dict\(\) form, got list$"):
        plot_utilization([1, 2])


def test_sweep_curves(swept):
    res, _ = swept
    fig = plot_sweep(res)
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    # facedet runs in well under 1 ms: latency is drawn in µs.
    want = ["latency (µs)", "MAC utilization (%)"] + (
        ["energy (µJ)"] if any(r.get("energy_uj") for r in res.totals_rows()) else [])
    assert [a.get_ylabel() for a in axes] == want
    assert all(a.get_xlabel() == "MAC count" for a in axes)
    line = axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [32, 64, 128, 256]
    assert list(line.get_ydata()) == pytest.approx([1e3 * r.totals["latency_ms"] for r in res.results])
    assert axes[0].get_xscale() == "log"
    assert "facedet on nullhop" in fig._suptitle.get_text()


def test_sweep_curves_one_line_per_other_parameter():
    res = sweep("facedet", grid={"seed": [0, 1], "macs": [64, 128]}, workers=1, progress=False)
    fig = plot_sweep(res.totals_rows(), metrics=("latency_ms", "efficiency", "dram_bytes"))
    axes = fig.get_axes()
    assert [a.get_ylabel() for a in axes] == ["latency (µs)", "efficiency (%)", "DRAM traffic (MiB)"]
    assert [l.get_label() for l in axes[0].get_lines()] == ["seed=0", "seed=1", "ideal scaling (1 / MACs)"]
    with pytest.raises(SparsesimError, match=r"^plot_sweep: no numeric column 'watts' in the sweep rows; available: "):
        plot_sweep(res, metrics=["watts"])
    with pytest.raises(SparsesimError,
                       match=r"^plot_sweep: the sweep rows have no column 'clock'; grid columns: seed, macs$"):
        plot_sweep(res, x="clock")


def test_sweep_curves_from_a_dataframe(swept):
    res, _ = swept
    fig = plot_sweep(res.to_dataframe(level="point"), metrics=["latency_ms"])
    assert [l.get_label() for l in fig.get_axes()[0].get_lines()] == ["_child0", "ideal scaling (1 / MACs)"]


# ---------------------------------------------------------------- plot_file
@pytest.mark.parametrize("kind", [None, "utilization", "cycles", "dram", "energy"])
def test_plot_file_of_a_run_json(result, result_json, tmp_path, kind):
    out = plot_file(result_json, tmp_path / "img" / "plot.png", kind=kind)
    assert out == tmp_path / "img" / "plot.png"
    assert out.read_bytes()[:8] == PNG
    assert not [p for p in out.parent.iterdir() if p.name != "plot.png"]   # no temp files left


@pytest.mark.parametrize("which", ["dir", "sweep.json", "sweep_totals.csv", "point"])
def test_plot_file_of_a_sweep(swept, tmp_path, which):
    res, d = swept
    src = {"dir": d, "sweep.json": d / "sweep.json", "sweep_totals.csv": d / "sweep_totals.csv",
           "point": d / "points" / f"{res.ids[0]}.json"}[which]
    out = plot_file(src, tmp_path / "sweep.png")
    assert out.read_bytes()[:8] == PNG


def test_plot_file_svg(result_json, tmp_path):
    out = plot_file(result_json, tmp_path / "u.svg")
    assert out.read_text().lstrip().startswith("<?xml")


def test_plot_file_does_not_touch_pyplot(result_json, tmp_path):
    before = plt.get_fignums()
    plot_file(result_json, tmp_path / "u.png")
    assert plt.get_fignums() == before


def test_plot_file_errors(result, result_json, swept, tmp_path):
    _, d = swept
    missing = tmp_path / "nope.json"
    with pytest.raises(SparsesimError, match=rf"^cannot read '{missing}': no such file or directory$"):
        plot_file(missing, tmp_path / "x.png")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SparsesimError, match=rf"^cannot read '{bad}': not a JSON result"):
        plot_file(bad, tmp_path / "x.png")
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(SparsesimError, match=rf"^cannot plot '{other}': not a result"):
        plot_file(other, tmp_path / "x.png")
    with pytest.raises(SparsesimError, match=r"^plot kind 'sweep' is for a sweep; .* is a run result "
                                             r"\(kinds: utilization, cycles, dram, energy, bandwidth, roofline\)$"):
        plot_file(result_json, tmp_path / "x.png", kind="sweep")
    with pytest.raises(SparsesimError, match=r"^plot kind 'dram' is for a run result; .* is a sweep "
                                             r"\(kinds: sweep\)$"):
        plot_file(d, tmp_path / "x.png", kind="dram")
    with pytest.raises(SparsesimError, match=r"^unknown plot kind 'pie'; for .* use one of utilization, cycles, "
                                             r"dram, energy, bandwidth, roofline$"):
        plot_file(result_json, tmp_path / "x.png", kind="pie")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SparsesimError, match=r"^cannot plot .*: a directory must hold sweep.json or sweep_totals.csv"):
        plot_file(empty, tmp_path / "x.png")
    layer_csv = tmp_path / "layers.csv"
    result.to_csv(layer_csv)
    with pytest.raises(SparsesimError, match=r"^cannot plot .*: not a sweep totals CSV"):
        plot_file(layer_csv, tmp_path / "x.png")
    no_energy = tmp_path / "no_energy.json"
    no_energy.write_text(json.dumps(_no_energy(result)))
    with pytest.raises(SparsesimError, match=r"^this result has no energy figures"):
        plot_file(no_energy, tmp_path / "x.png", kind="energy")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SparsesimError, match=rf"^cannot write '{blocker}/x.png': "):
        plot_file(result_json, blocker / "x.png")


def test_importing_simulator_does_not_import_pyplot():
    import subprocess
    import sys

    code = "import sys, simulator; print('matplotlib.pyplot' in sys.modules, 'tqdm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
