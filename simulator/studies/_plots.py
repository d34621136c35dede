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
from collections.abc import Mapping, Sequence
from pathlib import Path

from workloads import SparsesimError, is_number

from ..report import COUNTERS, Result, accelerator_label, write_atomic
from ._sweep import SweepResult, load_sweep

__all__ = ["RESULT_PLOT_KINDS", "SWEEP_PLOT_KINDS", "plot_cycle_breakdown", "plot_dram_traffic",
           "plot_energy_breakdown", "plot_file", "plot_sweep", "plot_utilization"]

#: ``kind`` values of :func:`plot_file` for a run result; the first is the default.
RESULT_PLOT_KINDS = ("utilization", "cycles", "dram", "energy")
#: ``kind`` values of :func:`plot_file` for a sweep.
SWEEP_PLOT_KINDS = ("sweep",)

#: Cycle categories of one unit, with their colours (a unit's categories sum to the layer's cycles).
_CAUSES = tuple(zip(COUNTERS, ("#2ca02c", "#ff7f0e", "#d62728", "#8c564b", "#9467bd", "#c7c7c7"), strict=True))

_MIB = 2.0 ** 20

#: Axis label and scale of each sweep metric (column of ``SweepResult.totals_rows()``).
_METRICS: dict[str, tuple[str, float]] = {
    "latency_ms": ("latency (ms)", 1.0),
    "cycles": ("cycles", 1.0),
    "mac_utilization": ("MAC utilization (%)", 100.0),
    "efficiency": ("efficiency (%)", 100.0),
    "effective_gops": ("effective throughput (GOp/s)", 1.0),
    "dram_bytes": ("DRAM traffic (MiB)", 1.0 / _MIB),
    "energy_uj": ("energy (µJ)", 1.0),
    "tops_per_watt_dense": ("dense-equivalent efficiency (TOP/s/W)", 1.0),
}
_DEFAULT_METRICS = ("latency_ms", "mac_utilization", "energy_uj")
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


def _layer_figsize(n: int) -> tuple[float, float]:
    return (min(max(6.0, 0.28 * n + 2.0), 22.0), 4.8)


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
    ax.set_title(_title(d, "per-layer MAC utilization"))
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
        ax.set_title(_title(d, "cycles by unit and stall cause"))
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
        ax.set_title(_title(d, f"{unit.replace('_', ' ')} cycles by cause"))
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
    ax.set_title(_title(d, what))
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
    """Network energy by component, in µJ, as horizontal bars (largest first).

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
    parts = _energy_breakdown(d)
    items = sorted(parts.items(), key=lambda kv: kv[1], reverse=True)
    ax = ax if ax is not None else _new_axes((8.0, max(3.0, 0.45 * len(items) + 1.5)))
    ax.barh(range(len(items)), [v for _, v in items], color="#ff7f0e")
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([k.replace("_", " ") for k, _ in items])
    ax.invert_yaxis()
    total = sum(v for _, v in items)
    for i, (_, v) in enumerate(items):
        share = f" ({100.0 * v / total:.0f} %)" if total > 0 else ""
        ax.annotate(f"{v:,.1f}{share}", (v, i), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=8)
    ax.set_xlabel("energy (µJ)")
    ax.set_ylabel("component")
    ax.margins(x=0.2)
    t = d["totals"]
    what = "energy breakdown"
    if isinstance(t.get("energy_uj"), (int, float)):
        what += f"\ntotal {t['energy_uj']:,.1f} µJ per inference"
        if isinstance(t.get("tops_per_watt_dense"), (int, float)):
            what += f", {t['tops_per_watt_dense']:.2f} TOP/s/W (dense-equivalent)"
    ax.set_title(_title(d, what))
    ax.grid(axis="x", alpha=0.3)
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
            if not res.ids:
                raise SparsesimError(f"cannot plot {str(path)!r}: the sweep has no finished points yet")
            return res.totals_rows(), list(res.grid)
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


def plot_sweep(data, x: str = "macs", metrics: Sequence[str] | None = None, *, axes=None):
    """Sweep curves: one subplot per metric against ``x``, one line per other grid setting.

    Parameters
    ----------
    data : SweepResult, list of dict, DataFrame, or path
        A :class:`~simulator.SweepResult`, its ``totals_rows()`` (or a
        DataFrame of them), or a sweep directory / ``sweep_totals.csv``.
    x : str
        Column on the x axis; default ``"macs"`` (total MAC count). A numeric
        x spanning 8x or more gets a log2 axis.
    metrics : sequence of str, optional
        Columns on the y axes, e.g. ``"latency_ms"``, ``"mac_utilization"``
        (drawn in %), ``"efficiency"``, ``"effective_gops"``, ``"dram_bytes"``
        (MiB), ``"energy_uj"``, ``"tops_per_watt_dense"``. Default
        ``("latency_ms", "mac_utilization", "energy_uj")``, without those the
        rows lack (energy needs the energy model).
    axes : sequence of matplotlib Axes, optional
        One per metric; default a new figure with a row of subplots.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows, params = _sweep_rows(data)
    return _plot_sweep(rows, params, x, metrics, axes)


def _default_metrics(rows: list[dict]) -> list[str]:
    """The default metrics the rows have (energy only when the energy model produced some)."""
    return [m for m in _DEFAULT_METRICS if any(_finite_number(r.get(m)) and r.get(m) != 0 for r in rows)]


def _plot_sweep(rows: list[dict], params: list[str], x: str, metrics, axes):
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    if x not in cols:
        raise SparsesimError(f"plot_sweep: the sweep rows have no column {x!r}")
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

    # Lines: every combination of the other grid parameters that vary independently of x
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

    xs_all = [r.get(x) for r in rows]
    numeric_x = all(_finite_number(v) for v in xs_all)
    categories: list = []
    if not numeric_x:
        for v in xs_all:
            if v not in categories:
                categories.append(v)

    if axes is None:
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics) + 0.6, 3.9), layout="constrained",
                                squeeze=False)
        axes = list(axs[0])
    else:
        axes = list(axes)
        if len(axes) != len(metrics):
            raise SparsesimError(f"plot_sweep: got {len(axes)} axes for {len(metrics)} metrics")
        fig = axes[0].figure

    xlabel = _X_LABELS.get(x, x)
    for ax, m in zip(axes, metrics):
        label, scale = _METRICS.get(m, (m, 1.0))
        for key, grp in groups.items():
            pts = [(r.get(x), r.get(m)) for r in grp if _finite_number(r.get(m))]
            if numeric_x:
                pts.sort(key=lambda p: p[0])
                xv = [p[0] for p in pts]
            else:
                xv = [categories.index(p[0]) for p in pts]
            name = ", ".join(f"{p}={v}" for p, v in zip(hue, key)) if hue else None
            ax.plot(xv, [p[1] * scale for p in pts], marker="o", label=name)
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
            ax.set_xticklabels([str(c) for c in categories])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0])
        ax.grid(alpha=0.3)
        if hue:
            ax.legend(fontsize=7)
    first = rows[0]
    fig.suptitle(f"{first.get('network', '?')} on {first.get('accelerator', '?')}: sweep over {xlabel}")
    return fig


# ---------------------------------------------------------------- plot_file
def _write_figure(fig, out: Path) -> Path:
    fmt = out.suffix[1:].lower() or "png"
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=150)
    except ValueError as exc:
        raise SparsesimError(f"cannot write {str(out)!r}: {exc}") from None
    return write_atomic(out, buf.getvalue())


def _load_plot_input(path: Path) -> tuple[str, object]:
    """``("result", result_dict)`` or ``("sweep", (rows, params))`` for a file or directory."""
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
    try:
        return "result", _result_dict(doc)
    except SparsesimError:
        raise SparsesimError(f"cannot plot {str(path)!r}: not a result (from `sparsesim run --json`), "
                             "a sweep point or a sweep.json") from None


def plot_file(path: str | os.PathLike, out: str | os.PathLike, kind: str | None = None) -> Path:
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
        For a run result: ``"utilization"`` (default), ``"cycles"``, ``"dram"``
        or ``"energy"``; for a sweep: ``"sweep"`` (default; latency,
        utilization and, when present, energy against MAC count).

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
    from matplotlib.figure import Figure

    path, out = Path(path), Path(out)
    if not path.exists():
        raise SparsesimError(f"cannot read {str(path)!r}: no such file or directory")
    what, payload = _load_plot_input(path)
    kinds = RESULT_PLOT_KINDS if what == "result" else SWEEP_PLOT_KINDS
    kind = kinds[0] if kind is None else kind
    if kind not in kinds:
        other = "sweep" if what == "result" else "run result"
        if kind in RESULT_PLOT_KINDS + SWEEP_PLOT_KINDS:
            raise SparsesimError(f"plot kind {kind!r} is for a {other}; {str(path)!r} is a "
                                 f"{'run result' if what == 'result' else 'sweep'} (kinds: {', '.join(kinds)})")
        raise SparsesimError(f"unknown plot kind {kind!r}; for {str(path)!r} use one of {', '.join(kinds)}")
    if what == "sweep":
        rows, params = payload
        metrics = _default_metrics(rows)
        fig = Figure(figsize=(4.4 * len(metrics) + 0.6, 3.9), layout="constrained")
        axs = fig.subplots(1, len(metrics), squeeze=False)
        _plot_sweep(rows, params, "macs", metrics, list(axs[0]))
    else:
        d = payload
        if kind == "energy":
            _energy_breakdown(d)   # fail before drawing anything
            n = len(_energy_breakdown(d))
            fig = Figure(figsize=(8.0, max(3.0, 0.45 * n + 1.5)), layout="constrained")
        elif kind == "cycles":
            fig = Figure(figsize=(8.0, 4.2), layout="constrained")
        else:
            fig = Figure(figsize=_layer_figsize(len(_acc_layers(d))), layout="constrained")
        ax = fig.subplots()
        {"utilization": plot_utilization, "cycles": plot_cycle_breakdown, "dram": plot_dram_traffic,
         "energy": plot_energy_breakdown}[kind](d, ax=ax)
    return _write_figure(fig, out)
