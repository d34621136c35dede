"""Plots of results and sweeps (matplotlib, object-oriented API).

Every ``plot_*`` function draws into ``ax`` (or ``axes``) when given one;
otherwise it makes a new figure with ``matplotlib.pyplot``, so plots show up
in notebooks as usual. :func:`plot_file` (behind ``sparsesim plot``) never
touches pyplot or the backend: it draws on a bare
:class:`matplotlib.figure.Figure` and writes the image atomically.

Results may be :class:`~simulator.Result` objects or their ``to_dict()``
form (the JSON written by ``sparsesim run --json``). Only accelerator layers
are drawn per layer; host layers take no accelerator time.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from workloads import SparsesimError, is_number

from ..report import COUNTERS, Result, accelerator_label, write_atomic
from ._sweep import SweepResult, load_sweep

__all__ = ["RESULT_PLOT_KINDS", "SWEEP_PLOT_KINDS", "plot_bandwidth_demand", "plot_cycle_breakdown",
           "plot_dram_traffic", "plot_energy_breakdown", "plot_file", "plot_roofline", "plot_sweep",
           "plot_utilization"]

#: ``kind`` values of :func:`plot_file` for a run result; the first is the default.
RESULT_PLOT_KINDS = ("utilization", "cycles", "dram", "energy", "bandwidth", "roofline")
#: ``kind`` values of :func:`plot_file` for a sweep.
SWEEP_PLOT_KINDS = ("sweep",)

#: Cycle categories of one unit, with their colours (a unit's categories sum to the layer's cycles).
_CAUSES = tuple(zip(COUNTERS, ("#2ca02c", "#ff7f0e", "#d62728", "#8c564b", "#9467bd", "#c7c7c7"), strict=True))

_MIB = 2.0 ** 20

#: Axis label and scale of each sweep metric (column of ``SweepResult.totals_rows()``).
#: ``latency_ms`` and ``energy_uj`` pick µs/ms and µJ/mJ by the values' size (:func:`_metric_axis`).
_METRICS: dict[str, tuple[str, float]] = {
    "latency_ms": ("latency (ms)", 1.0),
    "cycles": ("cycles", 1.0),
    "mac_utilization": ("MAC utilization (%)", 100.0),
    "efficiency": ("efficiency (%)", 100.0),
    "effective_gops": ("effective throughput (GOp/s)", 1.0),
    "dram_bytes": ("DRAM traffic (MiB)", 1.0 / _MIB),
    "energy_uj": ("energy (µJ)", 1.0),
    "tops_per_watt_dense": ("dense-equivalent efficiency (TOP/s/W)", 1.0),
    "bandwidth_demand_bytes_per_cycle": ("DRAM bandwidth to stay compute-bound (B/cycle)", 1.0),
    "dram_busy": ("DRAM interface busy (% of cycles)", 100.0),
    "mac_busy": ("MAC array busy (% of cycles)", 100.0),
    "speedup": ("speedup over the baseline (x)", 1.0),
    "energy_ratio": ("energy relative to the baseline", 1.0),
}
_DEFAULT_METRICS = ("latency_ms", "mac_utilization", "energy_uj")
#: Default metrics of a ``sparsesim compare`` file.
_COMPARE_METRICS = ("latency_ms", "speedup", "energy_uj")
#: Axis labels of sweep x keys.
_X_LABELS = {"macs": "MAC count", "array.clock_mhz": "clock (MHz)", "array.num_clusters": "MAC clusters",
             "array.macs_per_cluster": "MACs per cluster", "dma.bandwidth_bytes_per_cycle":
             "DRAM bandwidth (bytes/cycle)", "memory.input_memory_kib": "input memory (KiB)",
             "memory.kernel_memory_words_per_mac": "kernel memory (words per MAC)", "dataflow": "dataflow",
             "seed": "seed", "profile": "density profile", "trace": "trace"}


# ------------------------------------------------------------------ helpers
def _result_dict(result: Result | Mapping) -> dict:
    """The ``to_dict()`` form of a result, a result dict, or a sweep point file's dict."""
    if isinstance(result, Result):
        return result.to_dict()
    if isinstance(result, Mapping):
        if "result" in result and isinstance(result["result"], Mapping):
            result = result["result"]
        if "layers" in result and "totals" in result:
            return dict(result)
    raise SparsesimError(f"expected a Result or its to_dict() form, got {type(result).__name__}")


def _acc_layers(d: Mapping) -> list[Mapping]:
    layers = [l for l in d["layers"] if l.get("where") == "accelerator"]
    if not layers:
        raise SparsesimError(f"result of {d.get('network', '?')!r} has no accelerator layers to plot")
    return layers


def _num_macs(d: Mapping) -> int:
    a = d.get("config", {}).get("array", {})
    try:
        return int(a["num_clusters"]) * int(a["macs_per_cluster"])
    except (KeyError, TypeError, ValueError):
        return 0


def _title(d: Mapping, what: str) -> str:
    macs = _num_macs(d)
    clock = d.get("config", {}).get("array", {}).get("clock_mhz")
    hw = f" ({macs} MACs @ {clock:g} MHz)" if macs and isinstance(clock, (int, float)) else ""
    label = accelerator_label(d.get("accelerator", "?"), d.get("config", {}).get("array", {}).get("dataflow"))
    return f"{d.get('network', '?')} on {label}{hw}: {what}"


def _fit(text: str, width_in: float, fontsize: float = 12.0) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points (never clipped)."""
    import textwrap

    chars = max(20, int(width_in * 72.0 / (0.6 * fontsize)))
    # A parenthesised group such as "(1024 MACs @ 500 MHz)" reads as one unit: break around it, not in it.
    glued = (re.sub(r"\([^()]*\)", lambda m: m.group(0).replace(" ", "\u00a0"), part) for part in text.split("\n"))
    return "\n".join(textwrap.fill(part, chars) for part in glued).replace("\u00a0", " ")


def _set_title(ax, text: str, share: float = 0.9) -> None:
    """Title wrapped to ``share`` of the figure width (the axes' share when a legend sits beside it)."""
    ax.set_title(_fit(text, ax.figure.get_figwidth() * share))


def _layer_figsize(n: int) -> tuple[float, float]:
    return (min(max(8.5, 0.28 * n + 4.0), 22.0), 4.8)


def _new_axes(figsize: tuple[float, float]):
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _layer_xticks(ax, names: Sequence[str]) -> None:
    n = len(names)
    ax.set_xticks(range(n))
    if n > 8:
        ax.set_xticklabels(names, rotation=90, fontsize=7 if n > 24 else 8)
    else:
        ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("layer")


def _legend_right(ax) -> None:
    """Legend outside the axes, on the right (per-layer plots are dense)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)


def _eng_formatter():
    from matplotlib.ticker import EngFormatter

    return EngFormatter(sep=" ")


# ------------------------------------------------------------- result plots
def plot_utilization(result: Result | Mapping, ax=None):
    """Per-layer MAC utilization and efficiency, in percent, as grouped bars.

    Utilization is useful MACs / (MACs x cycles); efficiency is dense MACs /
    (MACs x cycles), the NullHop paper's metric, which exceeds 100 % when
    sparsity is skipped. A dashed line marks the network's utilization.

    Parameters
    ----------
    result : Result or dict
        A result or its ``to_dict()`` form.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _result_dict(result)
    layers = _acc_layers(d)
    ax = ax if ax is not None else _new_axes(_layer_figsize(len(layers)))
    xs = range(len(layers))
    w = 0.4
    ax.bar([x - w / 2 for x in xs], [100.0 * l["mac_utilization"] for l in layers], w,
           label="MAC utilization", color="#1f77b4")
    ax.bar([x + w / 2 for x in xs], [100.0 * l["efficiency"] for l in layers], w,
           label="efficiency (dense-equivalent)", color="#aec7e8")
    total = d["totals"].get("mac_utilization")
    if isinstance(total, (int, float)):
        ax.axhline(100.0 * total, color="#1f77b4", linestyle="--", linewidth=1,
                   label=f"network utilization {100.0 * total:.1f} %")
    ax.axhline(100.0, color="0.5", linewidth=0.8, linestyle=":")
    _layer_xticks(ax, [l["name"] for l in layers])
    ax.set_ylabel("MAC utilization / efficiency (%)")
    _set_title(ax, _title(d, "per-layer MAC utilization"), 0.6)
    _legend_right(ax)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_cycle_breakdown(result: Result | Mapping, ax=None, *, unit: str | None = None):
    """Cycles by unit and cause: busy, stalled on input, output room, the DRAM interface or weights, idle.

    Parameters
    ----------
    result : Result or dict
        A result or its ``to_dict()`` form.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    unit : str, optional
        ``None`` (default): one stacked bar per pipeline unit over the whole
        network. A unit name of the result's dataflow (e.g. ``"mac_array"``):
        one stacked bar per layer for that unit.

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _result_dict(result)
    layers = _acc_layers(d)
    if unit is None:
        units = d["totals"].get("units") or {}
        names = list(units)   # the dataflow's pipeline order, as the result records it
        if not names:
            raise SparsesimError(f"result of {d.get('network', '?')!r} has no per-unit cycle counts")
        ax = ax if ax is not None else _new_axes((8.0, 4.2))
        left = [0.0] * len(names)
        for cause, color in _CAUSES:
            vals = [float(units[u].get(cause, 0)) for u in names]
            ax.barh(range(len(names)), vals, left=left, color=color, label=cause.replace("_", " "))
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([u.replace("_", " ") for u in names])
        ax.invert_yaxis()
        ax.set_xlabel("cycles")
        ax.set_ylabel("unit")
        ax.xaxis.set_major_formatter(_eng_formatter())
        _set_title(ax, _title(d, "cycles by unit and stall cause"))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(_CAUSES), frameon=False)
        return ax
    else:
        known = sorted({u for l in layers for u in l.get("units", {})})
        if unit not in known:
            raise SparsesimError(f"unknown unit {unit!r}; units are {', '.join(known) or '(none)'}")
        ax = ax if ax is not None else _new_axes(_layer_figsize(len(layers)))
        bottom = [0.0] * len(layers)
        for cause, color in _CAUSES:
            vals = [float(l["units"][unit].get(cause, 0)) for l in layers]
            ax.bar(range(len(layers)), vals, 0.8, bottom=bottom, color=color, label=cause.replace("_", " "))
            bottom = [a + b for a, b in zip(bottom, vals)]
        _layer_xticks(ax, [l["name"] for l in layers])
        ax.set_ylabel("cycles")
        ax.yaxis.set_major_formatter(_eng_formatter())
        _set_title(ax, _title(d, f"{unit.replace('_', ' ')} cycles by cause"), 0.6)
        ax.grid(axis="y", alpha=0.3)
    _legend_right(ax)
    return ax


def plot_dram_traffic(result: Result | Mapping, ax=None):
    """Per-layer DRAM traffic in MiB, stacked by direction and kind (weights, activations, ...).

    Parameters
    ----------
    result : Result or dict
        A result or its ``to_dict()`` form.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _result_dict(result)
    layers = _acc_layers(d)
    series: list[tuple[str, str, str]] = []   # (label, direction field, kind)
    for direction, field in (("read", "dram_read_bytes"), ("write", "dram_write_bytes")):
        kinds: list[str] = []
        for l in layers:
            kinds.extend(k for k in l.get(field, {}) if k not in kinds)
        series.extend((f"{direction}: {k}", field, k) for k in kinds)
    if not series:
        raise SparsesimError(f"result of {d.get('network', '?')!r} has no DRAM traffic counts")
    ax = ax if ax is not None else _new_axes(_layer_figsize(len(layers)))
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    bottom = [0.0] * len(layers)
    for i, (label, field, kind) in enumerate(series):
        vals = [l.get(field, {}).get(kind, 0) / _MIB for l in layers]
        ax.bar(range(len(layers)), vals, 0.8, bottom=bottom, label=label, color=cmap(i % 10),
               hatch="//" if label.startswith("write") else None, edgecolor="white", linewidth=0.3)
        bottom = [a + b for a, b in zip(bottom, vals)]
    _layer_xticks(ax, [l["name"] for l in layers])
    ax.set_ylabel("DRAM traffic (MiB)")
    total = d["totals"].get("dram_bytes")
    what = "DRAM traffic per layer" + (f" (total {total / _MIB:.1f} MiB)" if isinstance(total, (int, float)) else "")
    _set_title(ax, _title(d, what), 0.6)
    _legend_right(ax)
    ax.grid(axis="y", alpha=0.3)
    return ax


def _energy_breakdown(d: Mapping) -> dict[str, float]:
    raw = d.get("totals", {}).get("energy_breakdown_uj")
    if not isinstance(raw, Mapping) or not raw:
        raise SparsesimError("this result has no energy figures (its totals have no 'energy_breakdown_uj'; "
                             "it was simulated without the energy model)")
    flat: dict[str, float] = {}

    def walk(prefix: str, v: object) -> None:
        if isinstance(v, Mapping):
            for k, vv in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), vv)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[prefix] = float(v)

    walk("", raw)
    if not flat:
        raise SparsesimError("this result has no energy figures ('energy_breakdown_uj' holds no numbers)")
    return flat


def plot_energy_breakdown(result: Result | Mapping, ax=None):
    """Network energy by component, in µJ (mJ from 1000 µJ up), as horizontal bars, largest first.

    Components with no energy are left out; each bar has its own colour and its share.

    Parameters
    ----------
    result : Result or dict
        A result or its ``to_dict()`` form, simulated with the energy model
        (``totals["energy_breakdown_uj"]``).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    SparsesimError
        If the result has no energy figures.
    """
    d = _result_dict(result)
    items = _energy_items(d)
    ax = ax if ax is not None else _new_axes(_energy_figsize(len(items)))
    total = sum(v for _, v in items)
    unit, scale = _energy_unit(total)
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if len(items) > 10 else "tab10"]
    ax.barh(range(len(items)), [v * scale for _, v in items], color=[cmap(i) for i in range(len(items))])
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([k.replace("_", " ") for k, _ in items])
    ax.invert_yaxis()
    for i, (_, v) in enumerate(items):
        pct = 100.0 * v / total if total > 0 else None
        share = "" if pct is None else (f" ({pct:.1f} %)" if pct >= 0.05 else " (<0.1 %)")
        ax.annotate(f"{v * scale:,.3g}{share}", (v * scale, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_xlabel(f"energy ({unit})")
    ax.set_ylabel("component")
    ax.margins(x=0.25)
    t = d["totals"]
    what = "energy breakdown"
    if isinstance(t.get("energy_uj"), (int, float)):
        what += f"\ntotal {t['energy_uj'] * scale:,.3f} {unit} per inference"
        if isinstance(t.get("tops_per_watt_dense"), (int, float)):
            what += f", {t['tops_per_watt_dense']:.2f} TOP/s/W (dense-equivalent)"
    _set_title(ax, _title(d, what))
    ax.grid(axis="x", alpha=0.3)
    return ax


def _energy_items(d: Mapping) -> list[tuple[str, float]]:
    """Energy components with a non-zero share, largest first (µJ)."""
    return sorted(((k, v) for k, v in _energy_breakdown(d).items() if v > 0), key=lambda kv: kv[1], reverse=True)


def _energy_figsize(n: int) -> tuple[float, float]:
    return (8.0, max(3.0, 0.4 * n + 1.8))


def _energy_unit(uj: float) -> tuple[str, float]:
    """("mJ", 1e-3) from 1000 µJ up, else ("µJ", 1)."""
    return ("mJ", 1e-3) if abs(uj) >= 1000.0 else ("µJ", 1.0)


def _layer_bandwidth(l: Mapping) -> tuple[float, float]:
    """(needed, achieved) DRAM bytes per cycle of one layer record."""
    dram = sum(l.get("dram_read_bytes", {}).values()) + sum(l.get("dram_write_bytes", {}).values())
    need = l.get("bandwidth_demand_bytes_per_cycle")
    if not isinstance(need, (int, float)):
        busy = l.get("units", {}).get("mac_array", {}).get("busy", 0)
        need = dram / busy if busy else 0.0
    return float(need), (dram / l["cycles"] if l.get("cycles") else 0.0)


def plot_bandwidth_demand(result: Result | Mapping, ax=None):
    """Per-layer DRAM bandwidth demand: bytes per cycle each layer needs to stay compute-bound.

    A layer's demand is its DRAM traffic over the cycles its MAC array is busy
    (``bandwidth_demand_bytes_per_cycle``, SCALE-Sim's "required bandwidth").
    Bars above the configured bandwidth (the dashed line,
    ``dma.bandwidth_bytes_per_cycle``) mark layers the DRAM holds back; dots
    show the bandwidth each layer actually used (bytes over all its cycles).

    Parameters
    ----------
    result : Result or dict
        A result or its ``to_dict()`` form.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _result_dict(result)
    layers = _acc_layers(d)
    ax = ax if ax is not None else _new_axes(_layer_figsize(len(layers)))
    bw = d.get("config", {}).get("dma", {}).get("bandwidth_bytes_per_cycle")
    need, used = zip(*(_layer_bandwidth(l) for l in layers))
    over = [isinstance(bw, (int, float)) and n > bw for n in need]
    xs = range(len(layers))
    ax.bar(xs, need, 0.8, color=["#d62728" if o else "#1f77b4" for o in over])
    ax.plot(xs, used, linestyle="none", marker="o", markersize=4, color="black", label="used (bytes / all cycles)")
    if isinstance(bw, (int, float)):
        ax.axhline(bw, color="0.3", linestyle="--", linewidth=1, label=f"configured {bw:g} B/cycle")
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles = [Patch(color="#1f77b4"), Patch(color="#d62728")] + handles
    labels = ["needed, within the bandwidth", "needed, above it (DRAM-bound)"] + labels
    _layer_xticks(ax, [l["name"] for l in layers])
    ax.set_ylabel("DRAM bytes per cycle")
    if max(need) > 0 and min(n for n in need if n > 0) * 50 < max(need):
        ax.set_yscale("log")
    tot = d["totals"]
    demand = tot.get("bandwidth_demand_bytes_per_cycle")
    what = "DRAM bandwidth needed to stay compute-bound, per layer"
    if isinstance(demand, (int, float)):
        what += f" (network {demand:.1f} B/cycle)"
    _set_title(ax, _title(d, what), 0.6)
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_roofline(result: Result | Mapping, ax=None):
    """Roofline of the accelerator layers: attained throughput against operational intensity.

    Intensity is operations performed (2 x ``mac_ops``, skipped zeros not
    counted) per DRAM byte; throughput is those operations per second. The roof
    is the lower of the MAC array's peak (2 x MACs x clock) and the DRAM
    bandwidth (``dma.bandwidth_bytes_per_cycle`` x clock) times the intensity.
    A layer far below the roof is held back by something else: the decoder,
    encoder, pipeline fill or load imbalance. Marker area follows the layer's
    share of the network's cycles.

    Parameters
    ----------
    result : Result or dict
        A result or its ``to_dict()`` form.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _result_dict(result)
    layers = [l for l in _acc_layers(d) if l.get("cycles") and l.get("mac_ops")]
    if not layers:
        raise SparsesimError(f"result of {d.get('network', '?')!r} has no timed layers for a roofline")
    ax = ax if ax is not None else _new_axes((8.0, 5.0))
    cfg = d.get("config", {})
    clock = float(cfg.get("array", {}).get("clock_mhz", 0.0))
    bw = float(cfg.get("dma", {}).get("bandwidth_bytes_per_cycle", 0.0))
    peak = 2.0 * _num_macs(d) * clock / 1e3                   # GOp/s
    total = sum(l["cycles"] for l in layers)
    xs, ys, sizes = [], [], []
    for l in layers:
        dram = sum(l.get("dram_read_bytes", {}).values()) + sum(l.get("dram_write_bytes", {}).values())
        ops = 2.0 * l["mac_ops"]
        xs.append(ops / dram if dram else float("nan"))
        ys.append(ops / (l["cycles"] / clock) / 1e3)          # ops per us / 1e3 = GOp/s
        sizes.append(12.0 + 400.0 * l["cycles"] / total)
    finite = [x for x in xs if math.isfinite(x) and x > 0]
    lo, hi = (min(finite) / 3.0, max(finite) * 3.0) if finite else (0.1, 1000.0)
    ridge = peak / (bw * clock / 1e3) if bw > 0 and clock > 0 else None
    if ridge is not None:
        lo, hi = min(lo, ridge / 3.0), max(hi, ridge * 3.0)
        grid = [lo * (hi / lo) ** (i / 200.0) for i in range(201)]
        ax.plot(grid, [min(peak, bw * clock / 1e3 * g) for g in grid], color="black", linewidth=1.5,
                label=f"roof: {peak:,.0f} GOp/s peak, {bw * clock / 1e3:,.1f} GB/s DRAM")
        ax.axvline(ridge, color="0.6", linestyle=":", linewidth=1, label=f"ridge point {ridge:,.1f} op/B")
    sc = ax.scatter(xs, ys, s=sizes, c=range(len(layers)), cmap="viridis", alpha=0.8, edgecolors="black",
                    linewidths=0.4, label="layers (area ~ share of cycles)")
    cb = ax.figure.colorbar(sc, ax=ax, pad=0.01)
    cb.set_label("layer index (network order)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("operational intensity (ops performed per DRAM byte)")
    ax.set_ylabel("attained throughput (GOp/s, ops performed)")
    _set_title(ax, _title(d, "roofline per layer"), 0.8)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    return ax


# --------------------------------------------------------------- sweep plot
def _coerce(text: object) -> object:
    """CSV cell -> int, float or str (empty -> None)."""
    if not isinstance(text, str):
        return text
    if text == "":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    return text


def _read_csv_rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [{k: _coerce(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SparsesimError(f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise SparsesimError(f"cannot plot {str(path)!r}: it has no rows")
    return rows


def _sweep_rows(data) -> tuple[list[dict], list[str]]:
    """Totals rows and the names of the grid-parameter columns."""

    if isinstance(data, SweepResult):
        return data.totals_rows(), list(data.grid)
    if isinstance(data, (str, os.PathLike)):
        return _load_sweep_rows(Path(data))
    if hasattr(data, "to_dict") and hasattr(data, "columns"):   # a pandas DataFrame
        rows = data.to_dict("records")
    elif isinstance(data, Sequence) and all(isinstance(r, Mapping) for r in data):
        rows = [dict(r) for r in data]
    else:
        raise SparsesimError(f"plot_sweep expects a SweepResult, totals rows, a DataFrame or a sweep "
                             f"directory, got {type(data).__name__}")
    if not rows:
        raise SparsesimError("plot_sweep: no sweep points to plot")
    # Grid parameters sit between "point" and "network" in SweepResult.totals_rows().
    keys = list(rows[0])
    params = keys[1:keys.index("network")] if keys[:1] == ["point"] and "network" in keys else []
    return rows, params


def _load_sweep_rows(path: Path) -> tuple[list[dict], list[str]]:

    if path.is_dir():
        if (path / "sweep.json").is_file():
            res = load_sweep(path)
            if res.ids:
                return res.totals_rows(), list(res.grid)
            # Point files written by an older result layout do not load; the CSV of a finished sweep still does.
            if not (path / "sweep_totals.csv").is_file():
                raise SparsesimError(f"cannot plot {str(path)!r}: the sweep has no finished points yet")
        if (path / "sweep_totals.csv").is_file():
            path = path / "sweep_totals.csv"
        else:
            raise SparsesimError(f"cannot plot {str(path)!r}: a directory must hold sweep.json or "
                                 "sweep_totals.csv (from `sparsesim sweep -o DIR`)")
    rows = _read_csv_rows(path)
    keys = list(rows[0])
    if keys[:1] != ["point"]:
        raise SparsesimError(f"cannot plot {str(path)!r}: not a sweep totals CSV (no 'point' column); "
                             "plot a run's JSON (`sparsesim run --json`) instead")
    params = keys[1:keys.index("network")] if "network" in keys else []
    return rows, params


def _finite_number(v: object) -> bool:
    return is_number(v) and math.isfinite(v)


def plot_sweep(data, x: str = "macs", metrics: Sequence[str] | None = None, *, axes=None,
               where: Mapping[str, object] | Sequence[str] | None = None, logy: bool = False):
    """Sweep curves: one subplot per metric against ``x``, one series per setting of the other grid keys.

    Series differ by colour (the grid key with the most values), line style
    (the next) and marker (the next), so 12 or more combinations stay
    distinguishable; one legend beside the plots lists each key's values. A
    numeric ``x`` is drawn as lines; a categorical ``x`` (``dataflow``,
    ``profile``) as grouped bars. Against ``macs``, latency and cycles get a
    dotted ideal-scaling reference (time proportional to 1 / MACs, from the
    fastest point at the smallest MAC count).

    Parameters
    ----------
    data : SweepResult, list of dict, DataFrame, or path
        A :class:`~simulator.SweepResult`, its ``totals_rows()`` (or a
        DataFrame of them), or a sweep directory / ``sweep_totals.csv``.
    x : str
        Column on the x axis; default ``"macs"`` (total MAC count). A numeric
        x spanning 8x or more gets a log2 axis.
    metrics : sequence of str, optional
        Columns on the y axes, e.g. ``"latency_ms"`` (drawn in ms, or µs below
        1 ms), ``"mac_utilization"`` (%), ``"efficiency"``, ``"effective_gops"``,
        ``"dram_bytes"`` (MiB), ``"energy_uj"`` (µJ, or mJ from 1000 µJ),
        ``"tops_per_watt_dense"``, ``"bandwidth_demand_bytes_per_cycle"``,
        ``"dram_busy"`` and ``"mac_busy"`` (% of cycles the DRAM interface /
        MAC array is busy). Default ``("latency_ms", "mac_utilization",
        "energy_uj")``, without those the rows lack.
    axes : sequence of matplotlib Axes, optional
        One per metric; default a new figure with a row of subplots.
    where : mapping or sequence of ``"FIELD=VALUE"``, optional
        Keep only the rows whose ``FIELD`` equals ``VALUE`` (numbers compare
        by value: ``8`` matches ``8.0``).
    logy : bool
        Log-scale y axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows, params = _sweep_rows(data)
    return _plot_sweep(_select(rows, where), params, x, metrics, axes, logy=logy, where=where)


def _with_derived(rows: list[dict]) -> list[dict]:
    """Rows with the busy fractions ``dram_busy`` and ``mac_busy`` added where the counts allow."""
    out = []
    for r in rows:
        r = dict(r)
        cyc = r.get("cycles")
        if _finite_number(cyc) and cyc > 0:
            if _finite_number(r.get("dram_busy_cycles")):
                r.setdefault("dram_busy", r["dram_busy_cycles"] / cyc)
            if _finite_number(r.get("units.mac_array.busy")):
                r.setdefault("mac_busy", r["units.mac_array.busy"] / cyc)
        out.append(r)
    return out


def _same(a: object, b: object) -> bool:
    if _finite_number(a) and _finite_number(b):
        return float(a) == float(b)
    return str(a) == str(b)


def _select(rows: list[dict], where) -> list[dict]:
    """The rows matching every ``FIELD=VALUE`` condition of ``where``."""
    if not where:
        return rows
    if isinstance(where, Mapping):
        conds = list(where.items())
    else:
        conds = []
        for item in [where] if isinstance(where, str) else where:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise SparsesimError(f"--where expects FIELD=VALUE, got {item!r}")
            conds.append((key.strip(), _coerce(value.strip())))
    for key, value in conds:
        if not any(key in r for r in rows):
            raise SparsesimError(f"--where: the sweep rows have no column {key!r}; grid columns and totals "
                                 f"such as {', '.join(list(rows[0])[1:6])} are")
        kept = [r for r in rows if _same(r.get(key), value)]
        if not kept:
            have = ", ".join(dict.fromkeys(str(r.get(key)) for r in rows))
            raise SparsesimError(f"--where {key}={value}: no sweep point has that value; it has {have}")
        rows = kept
    return rows


def _default_metrics(rows: list[dict]) -> list[str]:
    """The default metrics the rows have (energy only when the energy model produced some)."""
    return [m for m in _DEFAULT_METRICS if any(_finite_number(r.get(m)) and r.get(m) != 0 for r in rows)]


def _metric_axis(m: str, values: Sequence[float]) -> tuple[str, float]:
    """Axis label and scale of metric ``m`` for these values (ms/µs, µJ/mJ chosen by size)."""
    top = max((abs(v) for v in values), default=0.0)
    if m == "latency_ms" and 0 < top < 1.0:
        return "latency (µs)", 1e3
    if m == "energy_uj":
        unit, scale = _energy_unit(top)
        return f"energy ({unit})", scale
    return _METRICS.get(m, (m, 1.0))


_LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_HATCHES = ("", "//", "..", "xx", "\\\\", "--", "++", "oo")


def _series_styles(groups: list[tuple], hue: list[str]):
    """Colour, line style and marker per series, and the keys each one encodes.

    The hue key with the most values gets colours, the next line styles, the
    next markers; any further keys share the colours (as combinations).
    """
    import matplotlib

    values = [list(dict.fromkeys(g[i] for g in groups)) for i in range(len(hue))]
    order = sorted(range(len(hue)), key=lambda i: -len(values[i]))
    ls_i = order[1] if len(order) > 1 and len(values[order[1]]) <= len(_LINESTYLES) else None
    mk_i = order[2] if len(order) > 2 and len(values[order[2]]) <= len(_MARKERS) else None
    col_keys = [i for i in order if i not in (ls_i, mk_i)]
    col_vals = list(dict.fromkeys(tuple(g[i] for i in col_keys) for g in groups))
    cmap = matplotlib.colormaps["tab10" if len(col_vals) <= 10 else "tab20"]
    colours = {v: cmap(j % cmap.N) for j, v in enumerate(col_vals)}
    styles = {}
    for g in groups:
        styles[g] = (colours[tuple(g[i] for i in col_keys)],
                     _LINESTYLES[values[ls_i].index(g[ls_i])] if ls_i is not None else "-",
                     _MARKERS[values[mk_i].index(g[mk_i])] if mk_i is not None else "o",
                     _HATCHES[values[ls_i].index(g[ls_i]) % len(_HATCHES)] if ls_i is not None else "")
    return styles, (col_keys, col_vals, colours), (ls_i, values[ls_i] if ls_i is not None else []), \
        (mk_i, values[mk_i] if mk_i is not None else [])


def _key_label(keys: list[str]) -> str:
    return ", ".join(_X_LABELS.get(k, k) for k in keys)


def _legend_handles(hue, col, ls, mk, bars: bool):
    """Legend entries: a title line per grid key, then one entry per value."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    blank = Patch(visible=False)
    handles, labels = [], []
    col_keys, col_vals, colours = col
    if col_keys:
        handles.append(blank)
        labels.append(_key_label([hue[i] for i in col_keys]) + ":")
        for v in col_vals:
            handles.append(Patch(color=colours[v]) if bars else Line2D([], [], color=colours[v], marker="o"))
            labels.append(", ".join(str(x) for x in v))
    for idx, vals, kind in ((ls[0], ls[1], "ls"), (mk[0], mk[1], "mk")):
        if idx is None:
            continue
        handles.append(blank)
        labels.append(_key_label([hue[idx]]) + ":")
        for j, v in enumerate(vals):
            if bars and kind == "ls":
                handles.append(Patch(facecolor="white", edgecolor="black", hatch=_HATCHES[j % len(_HATCHES)]))
            elif kind == "ls":
                handles.append(Line2D([], [], color="black", linestyle=_LINESTYLES[j]))
            else:
                handles.append(Line2D([], [], color="black", linestyle="none", marker=_MARKERS[j]))
            labels.append(str(v))
    return handles, labels


def _sweep_title(rows: list[dict], xlabel: str) -> str:
    first = rows[0]
    flows = list(dict.fromkeys(str(r["dataflow"]) for r in rows if r.get("dataflow") not in (None, "")))
    acc = str(first.get("accelerator", "?"))
    label = accelerator_label(acc, flows[0]) if len(flows) == 1 else (
        f"{acc} config, dataflows {', '.join(flows)}" if flows else acc)
    return f"{first.get('network', '?')} on {label}: sweep over {xlabel}"


def _plot_sweep(rows: list[dict], params: list[str], x: str, metrics, axes, *, logy: bool = False,
                where=None, compare: bool = False, grow: bool = False):
    rows = _with_derived(rows)
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    if x not in cols:
        raise SparsesimError(f"plot_sweep: the sweep rows have no column {x!r}; grid columns: "
                             f"{', '.join(params) or '(none)'}")
    if metrics is None:
        metrics = _default_metrics(rows)
    else:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        missing = [m for m in metrics if not any(_finite_number(r.get(m)) for r in rows)]
        if missing:
            numeric = [c for c in cols if any(_finite_number(r.get(c)) for r in rows)]
            raise SparsesimError(f"plot_sweep: no numeric column {missing[0]!r} in the sweep rows; "
                                 f"available: {', '.join(numeric)}")
    if not metrics:
        raise SparsesimError("plot_sweep: nothing to plot (no metric columns)")

    # Series: every combination of the other grid parameters that vary independently of x
    # (a grid over array.num_clusters plotted against macs is one line, not one per point).
    hue = []
    for p in params:
        if p == x:
            continue
        by_x: dict[str, set[str]] = {}
        for r in rows:
            by_x.setdefault(repr(r.get(x)), set()).add(repr(r.get(p)))
        if any(len(v) > 1 for v in by_x.values()):
            hue.append(p)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(p) for p in hue), []).append(r)
    styles, col, ls, mk = _series_styles(list(groups), hue)

    xs_all = [r.get(x) for r in rows]
    numeric_x = all(_finite_number(v) for v in xs_all)
    categories: list = list(dict.fromkeys(xs_all)) if not numeric_x else []

    if axes is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=_sweep_figsize(len(metrics), bool(hue)), layout="constrained")
        axes = list(fig.subplots(1, len(metrics), squeeze=False)[0])
        grow = True
    else:
        axes = list(axes)
        if len(axes) != len(metrics):
            raise SparsesimError(f"plot_sweep: got {len(axes)} axes for {len(metrics)} metrics")
        fig = axes[0].figure

    xlabel = _X_LABELS.get(x, x)
    width = 0.8 / max(1, len(groups))
    for ax, m in zip(axes, metrics):
        label, scale = _metric_axis(m, [r[m] for r in rows if _finite_number(r.get(m))])
        for gi, (key, grp) in enumerate(groups.items()):
            colour, linestyle, marker, hatch = styles[key]
            pts = [(r.get(x), r.get(m)) for r in grp if _finite_number(r.get(m))]
            name = ", ".join(f"{p}={v}" for p, v in zip(hue, key)) if hue else None
            if numeric_x:
                pts.sort(key=lambda p: p[0])
                ax.plot([p[0] for p in pts], [p[1] * scale for p in pts], color=colour, linestyle=linestyle,
                        marker=marker, markersize=4, label=name)
            else:
                ax.bar([categories.index(p[0]) - 0.4 + width * (gi + 0.5) for p in pts], [p[1] * scale for p in pts],
                       width, color=colour, hatch=hatch or None, edgecolor="black" if hatch else None,
                       linewidth=0.4, label=name)
        if numeric_x and x == "macs" and m in ("latency_ms", "cycles"):
            x0 = min(float(v) for v in xs_all)
            at0 = [r[m] * scale for r in rows if float(r[x]) == x0 and _finite_number(r.get(m))]
            xv = sorted({float(v) for v in xs_all})
            if at0:
                ax.plot(xv, [min(at0) * x0 / v for v in xv], color="0.45", linestyle=":", linewidth=1.2,
                        label="ideal scaling (1 / MACs)")
                ax.legend(handles=[ax.get_lines()[-1]], fontsize=7, loc="upper right")
        if numeric_x:
            xv = sorted({float(v) for v in xs_all})
            if xv[0] > 0 and xv[-1] / xv[0] >= 8:
                from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

                ax.set_xscale("log", base=2)
                ax.xaxis.set_major_locator(FixedLocator(xv))
                ax.xaxis.set_minor_locator(NullLocator())
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                if len(xv) > 6:
                    ax.tick_params(axis="x", labelrotation=45)
        else:
            ax.set_xticks(range(len(categories)))
            # Long names side by side would run into each other: slant them.
            per_label_in = ax.figure.get_figwidth() / max(1, len(metrics)) / max(1, len(categories))
            if max(len(str(c)) for c in categories) * 0.09 > per_label_in:
                ax.set_xticklabels([str(c) for c in categories], rotation=30, ha="right")
            else:
                ax.set_xticklabels([str(c) for c in categories])
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_title(_fit(label.split(" (")[0], ax.figure.get_figwidth() / max(1, len(metrics)), 10.0),
                     fontsize=10)
        ax.grid(alpha=0.3, axis="y" if not numeric_x else "both")
    if hue:
        handles, labels = _legend_handles(hue, col, ls, mk, bars=not numeric_x)
        # Bottom-aligned beside the plots, clear of the title; a tall legend makes its figure taller.
        fig.legend(handles, labels, loc="outside right lower", fontsize=8, frameon=False)
        if grow:
            w, h = fig.get_size_inches()
            fig.set_size_inches(w, max(h, 0.2 * len(labels) + 1.4))
    title = _sweep_title(rows, xlabel)
    if compare:
        first = rows[0]
        title = (f"{first.get('network', '?')} on the {first.get('accelerator', '?')} config"
                 + (f" ({first['macs']} MACs)" if first.get("macs") else "")
                 + f": dataflows compared, baseline {first.get('baseline', '?')}")
    if where:
        conds = [f"{k}={v}" for k, v in where.items()] if isinstance(where, Mapping) else (
            [where] if isinstance(where, str) else list(where))
        title += f" ({', '.join(conds)})"
    fig.suptitle(_fit(title, fig.get_figwidth() * 0.9))
    return fig


def _sweep_figsize(n_metrics: int, legend: bool) -> tuple[float, float]:
    return (4.2 * n_metrics + (2.6 if legend else 0.6), 4.2)


# ---------------------------------------------------------------- plot_file
def _write_figure(fig, out: Path) -> Path:
    fmt = out.suffix[1:].lower() or "png"
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=150)
    except ValueError as exc:
        raise SparsesimError(f"cannot write {str(out)!r}: {exc}") from None
    return write_atomic(out, buf.getvalue())


def _compare_rows(doc: object) -> list[dict] | None:
    """The rows of a ``sparsesim compare`` JSON or CSV (one per dataflow), ready to plot; None if it is not one."""
    if not (isinstance(doc, list) and doc and all(isinstance(r, Mapping) and "dataflow" in r and "speedup" in r
                                                  for r in doc)):
        return None
    return [{**r, "accelerator": r.get("config", r.get("accelerator", "?"))} for r in doc]


def _load_plot_input(path: Path) -> tuple[str, object]:
    """``("result", result_dict)``, ``("sweep", (rows, params))`` or ``("compare", rows)`` for a file or directory."""
    if path.suffix.lower() == ".csv" and path.is_file():
        rows = _compare_rows(_read_csv_rows(path))
        if rows is not None:
            return "compare", rows
    if path.is_dir() or path.suffix.lower() == ".csv":
        return "sweep", _load_sweep_rows(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SparsesimError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SparsesimError(f"cannot read {str(path)!r}: not a JSON result ({exc})") from None
    if isinstance(doc, dict) and "points" in doc and "grid" in doc:   # a sweep.json
        return "sweep", _load_sweep_rows(path.parent)
    rows = _compare_rows(doc)
    if rows is not None:
        return "compare", rows
    try:
        return "result", _result_dict(doc)
    except SparsesimError:
        raise SparsesimError(f"cannot plot {str(path)!r}: not a result (from `sparsesim run --json`), "
                             "a sweep point, a sweep.json or a comparison (`sparsesim compare --json`)") from None


_RESULT_PLOTS = {"utilization": plot_utilization, "cycles": plot_cycle_breakdown, "dram": plot_dram_traffic,
                 "energy": plot_energy_breakdown, "bandwidth": plot_bandwidth_demand, "roofline": plot_roofline}


def _figure(path: Path, kind: str | None = None, *, x: str | None = None, metrics: Sequence[str] | None = None,
            where: Sequence[str] | None = None, logy: bool = False):
    """The figure :func:`plot_file` writes (a bare Figure, not pyplot's)."""
    from matplotlib.figure import Figure

    if not path.exists():
        raise SparsesimError(f"cannot read {str(path)!r}: no such file or directory")
    what, payload = _load_plot_input(path)
    if what == "compare":
        if kind not in (None, "compare"):
            raise SparsesimError(f"plot kind {kind!r} does not apply to the comparison {str(path)!r} (kinds: compare)")
        rows = _select(payload, where)
        metrics = list(metrics) if metrics else [m for m in _COMPARE_METRICS if any(_finite_number(r.get(m)) for r in rows)]
        fig = Figure(figsize=_sweep_figsize(len(metrics), False), layout="constrained")
        axs = fig.subplots(1, len(metrics), squeeze=False)
        _plot_sweep(rows, [], x or "dataflow", metrics, list(axs[0]), logy=logy, where=where, compare=True)
        return fig
    kinds = RESULT_PLOT_KINDS if what == "result" else SWEEP_PLOT_KINDS
    kind = kinds[0] if kind is None else kind
    if kind not in kinds:
        other = "sweep" if what == "result" else "run result"
        if kind in RESULT_PLOT_KINDS + SWEEP_PLOT_KINDS:
            raise SparsesimError(f"plot kind {kind!r} is for a {other}; {str(path)!r} is a "
                                 f"{'run result' if what == 'result' else 'sweep'} (kinds: {', '.join(kinds)})")
        raise SparsesimError(f"unknown plot kind {kind!r}; for {str(path)!r} use one of {', '.join(kinds)}")
    if what == "result" and (x is not None or metrics or where or logy):
        raise SparsesimError(f"--x, --metric, --where and --logy apply to a sweep; {str(path)!r} is a run result")
    if what == "sweep":
        rows, params = payload
        rows = _select(_with_derived(rows), where)
        metrics = list(metrics) if metrics else None
        n = len(metrics) if metrics else max(1, len(_default_metrics(rows)))
        fig = Figure(figsize=_sweep_figsize(n, True), layout="constrained")
        axs = fig.subplots(1, n, squeeze=False)
        _plot_sweep(rows, params, x or "macs", metrics, list(axs[0]), logy=logy, where=where, grow=True)
        return fig
    d = payload
    if kind == "energy":
        fig = Figure(figsize=_energy_figsize(len(_energy_items(d))), layout="constrained")
    elif kind == "cycles":
        fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    elif kind == "roofline":
        fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    else:
        fig = Figure(figsize=_layer_figsize(len(_acc_layers(d))), layout="constrained")
    _RESULT_PLOTS[kind](d, ax=fig.subplots())
    return fig


def plot_file(path: str | os.PathLike, out: str | os.PathLike, kind: str | None = None, *,
              x: str | None = None, metrics: Sequence[str] | None = None, where: Sequence[str] | None = None,
              logy: bool = False) -> Path:
    """Plot a saved result or sweep and write the image (PNG unless ``out`` ends in .svg/.pdf).

    Parameters
    ----------
    path : str or path
        A run result JSON (``sparsesim run --json``), a sweep point file, a
        sweep directory (``sparsesim sweep -o DIR``), its ``sweep.json`` or
        its ``sweep_totals.csv``.
    out : str or path
        Image file to write (atomically); parent directories are created.
    kind : str, optional
        For a run result: ``"utilization"`` (default), ``"cycles"``, ``"dram"``,
        ``"energy"``, ``"bandwidth"`` (per-layer bandwidth demand) or
        ``"roofline"``; for a sweep: ``"sweep"`` (default).
    x, metrics, where, logy
        For a sweep, as for :func:`plot_sweep`: the x column (default
        ``"macs"``), the metrics, ``"FIELD=VALUE"`` filters and log y axes.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    SparsesimError
        If ``path`` cannot be read or is not a result or sweep (naming the
        file), ``kind`` does not apply to it, or ``out`` cannot be written.
    """
    fig = _figure(Path(path), kind, x=x, metrics=metrics, where=where, logy=logy)
    return _write_figure(fig, Path(out))
