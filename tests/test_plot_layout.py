"""Plots a reader can use: nothing clipped, series told apart, units that read well, roofline invariants.

Independent expectations: the saved figure's drawn artists lie inside the figure (measured on the
rendered image's layout, not assumed); every series has its own colour / line style pair; a layer can
never run above its roof (a MAC does at most one operation per cycle, the DRAM moves at most its
bandwidth per cycle); a layer's bandwidth demand is its DRAM bytes over its MAC array's busy cycles.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")   # test path only: the library never selects a backend

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from simulator import plot_bandwidth_demand, plot_roofline, plot_sweep, simulate, sweep  # noqa: E402
from simulator.cli import main  # noqa: E402
from simulator.studies._plots import _figure  # noqa: E402
from workloads import SparsesimError  # noqa: E402

BANDWIDTHS = [2, 4, 8, 16, 32, 64]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def result_json(tmp_path_factory):
    res = simulate("roshambonet", check=False, overrides={"dma.bandwidth_bytes_per_cycle": 2})
    path = tmp_path_factory.mktemp("run") / "roshambonet.json"
    res.to_json(path)
    return res, path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """24 points, 12 series against macs: 2 dataflows x 6 bandwidths."""
    out = tmp_path_factory.mktemp("study")
    res = sweep("facedet", grid={"macs": [64, 128], "dataflow": ["nullhop", "combined"],
                                 "dma.bandwidth_bytes_per_cycle": BANDWIDTHS},
                trace="synthetic", run_options={"timing_only": True}, out_dir=out, workers=1, progress=False)
    return res, out


def _clipped(fig) -> list:
    """Bounding box of everything drawn, in inches, when it leaves the figure (empty list when inside)."""
    FigureCanvasAgg(fig)
    fig.set_dpi(150)          # plot_file saves at 150 dpi
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    tol = 0.01
    return [] if box.x0 >= -tol and box.y0 >= -tol and box.x1 <= w + tol and box.y1 <= h + tol else [box.bounds, (w, h)]


@pytest.mark.parametrize("kind", ["utilization", "cycles", "dram", "energy", "bandwidth", "roofline"])
def test_result_plots_are_not_clipped(result_json, kind):
    assert _clipped(_figure(result_json[1], kind)) == []


@pytest.mark.parametrize("opts", [
    {},
    {"x": "dataflow"},
    {"x": "dma.bandwidth_bytes_per_cycle", "metrics": ["latency_ms", "dram_busy", "mac_busy"], "logy": True},
    {"where": ["dataflow=combined", "macs=128"], "x": "dma.bandwidth_bytes_per_cycle"},
])
def test_sweep_plots_are_not_clipped(study, opts):
    assert _clipped(_figure(study[1], "sweep", **opts)) == []


def test_twelve_series_differ_in_colour_or_line_style(study):
    fig = plot_sweep(study[0], metrics=["latency_ms"])
    lines = [l for l in fig.axes[0].get_lines() if not l.get_label().startswith("ideal")]
    assert len(lines) == 12
    styles = {(matplotlib.colors.to_hex(l.get_color()), str(l.get_linestyle())) for l in lines}
    assert len(styles) == 12
    # One legend for the figure: a heading per grid key, then its values.
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == (["DRAM bandwidth (bytes/cycle):"] + [str(float(b)) for b in BANDWIDTHS]
                     + ["dataflow:", "nullhop", "combined"])
    assert not any(ax.get_legend() and len(ax.get_legend().get_texts()) > 1 for ax in fig.axes)


def test_a_categorical_x_is_drawn_as_bars(study):
    fig = plot_sweep(study[0], x="dataflow", metrics=["latency_ms"], where={"macs": 64})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["nullhop", "combined"]
    assert len(ax.containers) == len(BANDWIDTHS) and not ax.get_lines()
    heights = sorted(p.get_height() for c in ax.containers for p in c)
    want = sorted(1e3 * r.totals["latency_ms"] for p, r in zip(study[0].points, study[0].results) if p["macs"] == 64)
    assert heights == pytest.approx(want)
    assert fig._suptitle.get_text().endswith("(macs=64)")


def test_cli_plot_chooses_x_metrics_subset_and_log_axis(study, tmp_path, capsys):
    out = tmp_path / "p.png"
    args = ["plot", str(study[1]), "-o", str(out), "--x", "dma.bandwidth_bytes_per_cycle", "--metric", "latency_ms",
            "--metric", "dram_busy", "--where", "macs=64", "--logy"]
    assert main(args) == 0 and out.read_bytes()[:4] == b"\x89PNG"
    fig = _figure(study[1], None, x="dma.bandwidth_bytes_per_cycle", metrics=["latency_ms", "dram_busy"],
                  where=["macs=64"], logy=True)
    ax_lat, ax_busy = fig.axes
    assert ax_lat.get_yscale() == "log" and ax_lat.get_xlabel() == "DRAM bandwidth (bytes/cycle)"
    assert ax_busy.get_ylabel() == "DRAM interface busy (% of cycles)"
    busy = [l for l in ax_busy.get_lines()]
    assert len(busy) == 2     # one per dataflow
    rows = [r for r in study[0].totals_rows() if r["macs"] == 64 and r["dataflow"] == "nullhop"]
    assert list(busy[0].get_ydata()) == pytest.approx([100 * r["dram_busy_cycles"] / r["cycles"] for r in rows])
    assert main(["plot", str(study[1]), "-o", str(out), "--where", "macs=96"]) == 2
    assert capsys.readouterr().err.strip() == ("sparsesim: error: --where macs=96: no sweep point has that value; "
                                               "it has 64, 128")


def test_energy_reads_in_mj_and_short_latency_in_us():
    rows = [{"point": "a", "macs": 64, "network": "n", "accelerator": "nullhop", "latency_ms": 0.25,
             "energy_uj": 2500.0},
            {"point": "b", "macs": 128, "network": "n", "accelerator": "nullhop", "latency_ms": 0.5,
             "energy_uj": 1500.0}]
    fig = plot_sweep(rows, metrics=["latency_ms", "energy_uj"])
    lat, energy = fig.axes
    assert (lat.get_ylabel(), energy.get_ylabel()) == ("latency (µs)", "energy (mJ)")
    assert list(energy.get_lines()[0].get_ydata()) == pytest.approx([2.5, 1.5])
    assert list(lat.get_lines()[0].get_ydata()) == pytest.approx([250.0, 500.0])


def test_bandwidth_demand_is_dram_bytes_over_mac_busy_cycles(result_json):
    res = result_json[0]
    acc = [l for l in res.layers if l.where == "accelerator"]
    for l in acc:
        assert l.compute_cycles == l.units["mac_array"]["busy"]
        assert l.bandwidth_demand_bytes_per_cycle == pytest.approx(l.dram_bytes / l.units["mac_array"]["busy"])
    t = res.totals
    assert t["bandwidth_demand_bytes_per_cycle"] == pytest.approx(
        sum(l.dram_bytes for l in acc) / sum(l.units["mac_array"]["busy"] for l in acc))
    ax = plot_bandwidth_demand(res)
    bars = list(ax.containers[0])
    assert [b.get_height() for b in bars] == pytest.approx([l.bandwidth_demand_bytes_per_cycle for l in acc])
    red = [matplotlib.colors.to_hex(b.get_facecolor()) == "#d62728" for b in bars]
    assert red == [l.bandwidth_demand_bytes_per_cycle > 2 for l in acc]
    assert any(red)   # at 2 B/cycle some roshambonet layers are DRAM-bound


def test_every_layer_sits_under_its_roof(result_json):
    res = result_json[0]
    ax = plot_roofline(res)
    pts = ax.collections[0].get_offsets()
    acc = [l for l in res.layers if l.where == "accelerator" and l.cycles and l.mac_ops]
    assert len(pts) == len(acc)
    peak = 2 * 128 * 500 / 1e3            # GOp/s
    for (intensity, gops), l in zip(pts, acc):
        assert intensity == pytest.approx(2 * l.mac_ops / l.dram_bytes)
        assert gops == pytest.approx(2 * l.mac_ops / l.latency_us / 1e3)
        assert gops <= peak * (1 + 1e-9)
        assert gops <= 2 * 0.5 * intensity * (1 + 1e-9)      # 2 B/cycle at 500 MHz = 1 GB/s


def test_plot_options_do_not_apply_to_a_run_result(result_json, tmp_path):
    with pytest.raises(SparsesimError, match=r"^--x, --metric, --where and --logy apply to a sweep; "):
        _figure(result_json[1], None, logy=True)


def test_long_category_names_do_not_run_into_each_other():
    from simulator import dataflow_names

    rows = [{"point": str(i), "dataflow": d, "network": "n", "accelerator": "nullhop", "latency_ms": 1.0 + i,
             "dram_bytes": 2.0 ** 20, "energy_uj": 10.0} for i, d in enumerate(dataflow_names())]
    fig = plot_sweep(rows, x="dataflow", metrics=["latency_ms", "dram_bytes", "energy_uj"])
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = ax.get_xticklabels()
        boxes = [t.get_window_extent(r) for t in labels]
        assert len(boxes) == len(rows)
        # Side by side they would overlap, so they are slanted (their boxes then share corners only).
        assert any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])) == False or all(  # noqa: E712
            t.get_rotation() == 30 for t in labels)
        assert all(b.x1 > a.x1 and b.y1 >= a.y1 - 1 for a, b in zip(boxes, boxes[1:]))
    assert _clipped(fig) == []
    # Two short names stay horizontal and apart.
    fig = plot_sweep(rows[:2], x="dataflow", metrics=["latency_ms"])
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    labels = fig.axes[0].get_xticklabels()
    a, b = (t.get_window_extent(fig.canvas.get_renderer()) for t in labels)
    assert labels[0].get_rotation() == 0 and not a.overlaps(b)


def test_a_comparison_plots_as_bars_per_dataflow(tmp_path, capsys):
    js, cs = tmp_path / "c.json", tmp_path / "c.csv"
    assert main(["compare", "facedet", "--dataflows", "nullhop", "combined", "rsnn", "--timing-only",
                 "--json", str(js), "--csv", str(cs)]) == 0
    capsys.readouterr()
    import json

    rows = json.loads(js.read_text())
    for src in (js, cs):
        fig = _figure(src)
        lat, speed, energy = fig.axes
        assert [t.get_text() for t in lat.get_xticklabels()] == ["nullhop", "combined", "rsnn"]
        assert [p.get_height() for p in speed.containers[0]] == pytest.approx([r["speedup"] for r in rows])
        assert [p.get_height() for p in lat.containers[0]] == pytest.approx([1e3 * r["latency_ms"] for r in rows])
        assert fig._suptitle.get_text() == ("facedet on the nullhop config (128 MACs): dataflows compared, "
                                            "baseline nullhop")
        assert _clipped(fig) == []
    assert main(["plot", str(js), "-o", str(tmp_path / "c.png"), "--kind", "dram"]) == 2
    assert "does not apply to the comparison" in capsys.readouterr().err


def _collisions(fig) -> list:
    """Pairs among the figure title, the legends and the axes that overlap on the rendered figure."""
    FigureCanvasAgg(fig)
    fig.set_dpi(150)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [("title", fig._suptitle.get_window_extent(r))] if fig._suptitle else []
    boxes += [(f"legend{i}", lg.get_window_extent(r)) for i, lg in enumerate(fig.legends)]
    boxes += [(f"axes{i}", ax.get_window_extent(r)) for i, ax in enumerate(fig.axes)]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
            if (a.startswith("legend") or b.startswith("legend") or a == "title") and ba.overlaps(bb)]


@pytest.mark.parametrize("metrics", [["latency_ms"], ["latency_ms", "mac_busy"]])
def test_the_legend_clears_the_title_and_the_plots(study, metrics):
    fig = _figure(study[1], None, metrics=metrics, logy=True)
    assert _collisions(fig) == []
    assert _clipped(fig) == []
