"""Results: per-layer records, network totals, table / JSON / CSV output.

This is the reporting layer: the only place that formats text for people.
Files are written atomically (temporary file in the same directory, then
``os.replace``), so an interrupted run never leaves a half-written result.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workloads import SparsesimError

from ._output import write_atomic

__all__ = ["LayerResult", "Result", "accelerator_label", "csv_text", "data_label", "layer_ratios",
           "safe_output_path", "write_atomic"]

_SAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_output_path(out_dir: str | os.PathLike, name: str, suffix: str = "") -> Path:
    """The path of an output file named after ``name`` (e.g. a model's name) inside ``out_dir``.

    ``name`` may come from a user's file (an ONNX graph or file name), so it is
    reduced to a plain file name: characters other than ``A-Z a-z 0-9 . _ -``
    (path separators included) become ``_`` and leading dots are dropped, so
    ``../../evil`` becomes ``_.._evil`` and ``/etc/passwd`` becomes ``_etc_passwd``.
    The resolved result is checked to lie directly in ``out_dir``.

    Raises :class:`SparsesimError` if nothing usable is left of ``name``.
    """
    base = Path(out_dir).resolve()
    clean = _SAFE_NAME_CHARS.sub("_", str(name)).lstrip(".")
    if clean.strip("._-") == "":
        raise SparsesimError(f"cannot derive an output file name from {name!r}: it has no letters or digits")
    path = (base / f"{clean}{suffix}").resolve()
    if path.parent != base:   # only a suffix with a separator can get here
        raise SparsesimError(f"output file name {name!r} would leave the results directory {str(base)!r}")
    return path


def accelerator_label(name: str, dataflow: str | None) -> str:
    """How reports name an accelerator: its config name, plus the dataflow when the name does not say it.

    ``accelerator_label("nullhop", "combined")`` is ``"nullhop config, combined dataflow"``;
    ``accelerator_label("rsnn", "rsnn")`` is ``"rsnn"``.
    """
    if not dataflow or dataflow == name:
        return str(name)
    return f"{name} config, {dataflow} dataflow"


def data_label(profile: str, trace: str, seed: object) -> str:
    """What data a run used, in words: the density profile, trace mode and seed, or the user's real data."""
    if trace == "trace":   # an ONNX model's or a trace file's weights and activations
        return "real weights and activations (ONNX model or trace file)"
    return f"profile {profile}, trace {trace}, seed {seed}"


def csv_text(rows: list[dict[str, object]]) -> str:
    """CSV text of ``rows``: a header of every key in first-seen order, one line per row."""
    cols: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    wr.writeheader()
    wr.writerows(rows)
    return buf.getvalue()


@dataclass
class LayerResult:
    """What one layer cost. Cycles are accelerator clock cycles.

    ``where`` is ``accelerator``, ``host`` (computed functionally, not timed)
    or ``fused`` (folded into the previous conv). Ratios are 0 for layers that
    take no accelerator cycles.

    ``compute_cycles`` are the cycles the MAC array is busy: the layer's
    cycles if nothing ever stalled it. ``bandwidth_demand_bytes_per_cycle`` is
    the DRAM traffic over those cycles: the bandwidth, in bytes per cycle, the
    layer needs to stay compute-bound (SCALE-Sim's "required bandwidth").
    """

    name: str
    op: str
    where: str
    note: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    input_density: float
    output_density: float
    weight_density: float
    macs_dense: int
    macs_useful: int = 0
    mac_ops: int = 0
    m: int = 0
    passes: int = 0
    input_resident: bool = False
    cycles: int = 0
    latency_us: float = 0.0
    mac_utilization: float = 0.0
    efficiency: float = 0.0
    effective_gops: float = 0.0
    dram_read_bytes: dict[str, int] = field(default_factory=dict)
    dram_write_bytes: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    energy_pj: dict[str, float] = field(default_factory=dict)
    units: dict[str, dict[str, int]] = field(default_factory=dict)
    functional_check: str = "off"
    pu_ops: list[int] = field(default_factory=list)
    pu_imbalance: float = 1.0
    pu_time_imbalance: float = 1.0
    dram_busy_cycles: int = 0
    handoff_columns: int = 0
    compute_cycles: int = 0
    bandwidth_demand_bytes_per_cycle: float = 0.0
    host_op: str = ""
    reference_check: str = ""
    reference_compared: int = 0
    reference_max_error_lsb: float = 0.0

    @property
    def dram_bytes(self) -> int:
        """All DRAM bytes read and written by the layer."""
        return sum(self.dram_read_bytes.values()) + sum(self.dram_write_bytes.values())

    def flat(self) -> dict[str, object]:
        """One flat row (nested counters become ``group.key`` columns)."""
        row: dict[str, object] = {}
        for k, v in asdict(self).items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    if isinstance(vv, dict):
                        for k3, v3 in vv.items():
                            row[f"{k}.{kk}.{k3}"] = v3
                    else:
                        row[f"{k}.{kk}"] = vv
            elif isinstance(v, tuple):
                row[k] = "x".join(str(x) for x in v)
            else:
                row[k] = v
        return row


def layer_ratios(macs_dense: int, macs_useful: int, cycles: int, num_macs: int, clock_mhz: float):
    if cycles <= 0:
        return 0.0, 0.0, 0.0, 0.0
    latency_us = cycles / clock_mhz
    util = macs_useful / (num_macs * cycles)
    eff = macs_dense / (num_macs * cycles)
    gops = 2.0 * macs_dense / (latency_us * 1e3)
    return latency_us, util, eff, gops


@dataclass
class Result:
    """A simulated network: layers, totals, and how it was produced."""

    network: str
    accelerator: str
    config: dict
    profile: str
    trace: str
    seed: int
    layers: list[LayerResult]
    energy_table: dict = field(default_factory=dict)
    #: Values of a user trace that saturated when quantized to Q8.8, per array key
    #: (``"weights/conv1"``); empty for synthetic data and int16 trace files.
    saturated: dict[str, int] = field(default_factory=dict)
    #: Warnings about how the result was obtained, printed under the table (and in the JSON when any).
    notes: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, network: str, results: list["Result"], notes: list[str] | None = None) -> "Result":
        """One result whose layers are those of ``results`` in order (independent
        single-layer networks, e.g. the rows of a SCALE-Sim topology that do not chain)."""
        if not results:
            raise SparsesimError("Result.concat needs at least one result")
        first = results[0]
        merged = cls(network=network, accelerator=first.accelerator, config=first.config, profile=first.profile,
                     trace=first.trace, seed=first.seed, layers=[l for r in results for l in r.layers],
                     notes=list(notes or []))
        for r in results:
            for k, v in getattr(r, "saturated", {}).items():
                merged.saturated[k] = merged.saturated.get(k, 0) + v
        return merged

    @property
    def num_macs(self) -> int:
        a = self.config["array"]
        return int(a["num_clusters"]) * int(a["macs_per_cluster"])

    @property
    def dataflow(self) -> str:
        """The dataflow the array ran (``array.dataflow``), e.g. ``"nullhop"`` or ``"combined"``."""
        return str(self.config.get("array", {}).get("dataflow", ""))

    @property
    def label(self) -> str:
        """The accelerator as reports name it (:func:`accelerator_label`)."""
        return accelerator_label(self.accelerator, self.dataflow)

    @property
    def clock_mhz(self) -> float:
        return float(self.config["array"]["clock_mhz"])

    def layer(self, name: str) -> LayerResult:
        """The record of layer ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def totals(self) -> dict[str, object]:
        """Network totals over accelerator layers (host layers are not timed)."""
        acc = [l for l in self.layers if l.where == "accelerator"]
        cycles = sum(l.cycles for l in acc)
        dense = sum(l.macs_dense for l in acc)
        useful = sum(l.macs_useful for l in acc)
        compute = sum(l.compute_cycles for l in acc)
        lat, util, eff, gops = layer_ratios(dense, useful, cycles, self.num_macs, self.clock_mhz)
        read: dict[str, int] = {}
        write: dict[str, int] = {}
        units: dict[str, dict[str, int]] = {}
        for l in acc:
            for k, v in l.dram_read_bytes.items():
                read[k] = read.get(k, 0) + v
            for k, v in l.dram_write_bytes.items():
                write[k] = write.get(k, 0) + v
            for u, st in l.units.items():
                d = units.setdefault(u, {})
                for k, v in st.items():
                    d[k] = d.get(k, 0) + v
        return {
            "cycles": cycles, "latency_ms": lat / 1e3, "macs_dense": dense, "macs_useful": useful,
            "mac_utilization": util, "efficiency": eff, "effective_gops": gops,
            "dram_read_bytes": read, "dram_write_bytes": write,
            "dram_bytes": sum(read.values()) + sum(write.values()),
            "dram_busy_cycles": sum(l.dram_busy_cycles for l in acc),
            "compute_cycles": compute,
            "bandwidth_demand_bytes_per_cycle": (sum(l.dram_bytes for l in acc) / compute) if compute else 0.0,
            "units": units,
            "host_layers": [l.name for l in self.layers if l.where == "host"],
            "host_macs": sum(l.macs_dense for l in self.layers if l.where == "host"),
            "host_ops": self._host_ops(),
            "mean_input_density": (sum(l.input_density for l in acc) / len(acc)) if acc else 0.0,
            "reference_check": self._reference_totals(),
            **self._energy_totals(acc, dense, useful, lat),
        }

    def _host_ops(self) -> dict[str, dict[str, int]]:
        """Host layers whose values come from the model's run, by op type: layers and output elements."""
        out: dict[str, dict[str, int]] = {}
        for l in self.layers:
            if l.host_op:
                e = out.setdefault(l.host_op, {"layers": 0, "elements": 0})
                e["layers"] += 1
                e["elements"] += l.out_shape[0] * l.out_shape[1] * l.out_shape[2]
        return dict(sorted(out.items(), key=lambda kv: (-kv[1]["elements"], kv[0])))

    def _reference_totals(self) -> dict[str, object]:
        """How many conv/fc layers met the functional check against the model's own outputs."""
        checked = [l for l in self.layers if l.reference_check]
        worst = max(checked, key=lambda l: l.reference_max_error_lsb, default=None)
        return {"layers": len(checked), "ok": sum(l.reference_check == "ok" for l in checked),
                "max_error_lsb": worst.reference_max_error_lsb if worst else 0.0,
                "max_error_layer": worst.name if worst else ""}

    def _energy_totals(self, acc: list[LayerResult], dense: int, useful: int, latency_us: float) -> dict:
        """Energy totals over accelerator layers (docs/energy.md, "What is reported").

        ``*_core`` figures leave out the DRAM component. TOp/s/W = ops / pJ:
        ``dense`` counts 2 x dense-equivalent MACs (the paper's convention),
        ``actual`` counts 2 x MACs performed (``mac_ops``, zeros skipped).
        """
        breakdown: dict[str, float] = {}
        for l in acc:
            for k, v in l.energy_pj.items():
                breakdown[k] = breakdown.get(k, 0.0) + v
        e_pj = sum(breakdown.values())
        core_pj = e_pj - breakdown.get("dram", 0.0)
        mac_ops = sum(l.mac_ops for l in acc)

        def ratio(x: float, y: float) -> float:
            return x / y if y > 0 else 0.0

        info = self.energy_table or {}
        return {
            "mac_ops": mac_ops,
            "energy_uj": e_pj / 1e6,
            "energy_core_uj": core_pj / 1e6,
            "energy_breakdown_uj": {k: v / 1e6 for k, v in breakdown.items()},
            "energy_per_inference_uj": e_pj / 1e6,
            "pj_per_mac_dense": ratio(e_pj, dense),
            "pj_per_mac_useful": ratio(e_pj, useful),
            "average_power_mw": ratio(e_pj, latency_us) / 1e3,        # pJ/us = uW
            "average_power_core_mw": ratio(core_pj, latency_us) / 1e3,
            "tops_per_watt_dense": ratio(2 * dense, e_pj),             # op/pJ = TOp/s/W
            "tops_per_watt_actual": ratio(2 * mac_ops, e_pj),
            "tops_per_watt_dense_core": ratio(2 * dense, core_pj),
            "tops_per_watt_actual_core": ratio(2 * mac_ops, core_pj),
            "energy_table": {k: info[k] for k in ("tech_node_nm", "dram_type", "file", "sram_model") if k in info},
        }

    # ----------------------------------------------------------------- output
    def to_dict(self) -> dict:
        """JSON-ready dictionary (deterministic key order)."""
        return {"network": self.network, "accelerator": self.accelerator, "dataflow": self.dataflow,
                "profile": self.profile,
                "trace": self.trace, "seed": self.seed, "config": self.config,
                "totals": self.totals, "energy_table": self.energy_table, "saturated": dict(self.saturated),
                "layers": [asdict(l) for l in self.layers]} | ({"notes": list(self.notes)} if self.notes else {})

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Return the JSON text; also write it atomically to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        if path is not None:
            write_atomic(path, text)
        return text

    def rows(self) -> list[dict[str, object]]:
        """Flat per-layer rows (the CSV and DataFrame content)."""
        return [{"network": self.network, **l.flat(), "accelerator": self.accelerator, "dataflow": self.dataflow}
                for l in self.layers]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """Return per-layer CSV text; also write it atomically to ``path`` if given."""
        text = csv_text(self.rows())
        if path is not None:
            write_atomic(path, text)
        return text

    def to_dataframe(self):
        """Per-layer pandas DataFrame (needs the ``tables`` extra: pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise SparsesimError("Result.to_dataframe() needs pandas: pip install 'sparsesim[tables]'") from None
        return pd.DataFrame(self.rows())

    def _dram_label(self) -> str:
        """`` (8 B/cycle, shared by reads and writes)`` or `` (8 B/cycle per direction)``, from the config."""
        dma = self.config.get("dma", {})
        bw = dma.get("bandwidth_bytes_per_cycle")
        if not isinstance(bw, (int, float)):
            return ""
        how = {"shared": "shared by reads and writes", "separate": "per direction"}.get(dma.get("interface"), "")
        return f" ({bw:g} B/cycle{', ' + how if how else ''})"

    def format_table(self) -> str:
        """Human-readable per-layer table with totals."""
        hdr = (f"{'layer':<22} {'where':<5} {'m':>2} {'pass':>4} {'in dens':>7} {'cycles':>12} {'lat us':>9} "
               f"{'util':>6} {'effic':>7} {'GOp/s':>7} {'DRAM KiB':>9} {'E uJ':>9}")
        lines = [f"sparsesim: {self.network} on {self.label} ({self.num_macs} MACs @ {self.clock_mhz:g} MHz), "
                 + data_label(self.profile, self.trace, self.seed), hdr, "-" * len(hdr)]
        for l in self.layers:
            where = {"accelerator": "acc", "host": "host", "fused": "fused"}[l.where]
            if l.where == "accelerator":
                lines.append(
                    f"{l.name[:22]:<22} {where:<5} {l.m:>2} {l.passes:>4} {l.input_density:>7.3f} {l.cycles:>12,d} "
                    f"{l.latency_us:>9.1f} {l.mac_utilization:>6.1%} {l.efficiency:>7.1%} {l.effective_gops:>7.1f} "
                    f"{l.dram_bytes / 1024:>9.1f} {sum(l.energy_pj.values()) / 1e6:>9.2f}")
            else:
                lines.append(f"{l.name[:22]:<22} {where:<5} {'':>2} {'':>4} {l.input_density:>7.3f} {'-':>12} "
                             f"{'-':>9} {'':>6} {'':>7} {'':>7} {'':>9} {'':>9}  {l.note}")
        t = self.totals
        lines.append("-" * len(hdr))
        lines.append(
            f"{'total (accelerator)':<22} {'':<5} {'':>2} {'':>4} {'':>7} {t['cycles']:>12,d} "
            f"{t['latency_ms'] * 1e3:>9.1f} {t['mac_utilization']:>6.1%} {t['efficiency']:>7.1%} "
            f"{t['effective_gops']:>7.1f} {t['dram_bytes'] / 1024:>9.1f} {t['energy_uj']:>9.2f}")
        lines.append(f"latency {t['latency_ms']:.3f} ms, {t['macs_dense'] / 1e9:.3f} G dense MACs on the accelerator, "
                     f"{t['macs_useful'] / 1e9:.3f} G useful; DRAM read "
                     f"{sum(t['dram_read_bytes'].values()) / 2**20:.2f} MiB, written "
                     f"{sum(t['dram_write_bytes'].values()) / 2**20:.2f} MiB; DRAM interface{self._dram_label()} "
                     f"busy {t['dram_busy_cycles'] / max(t['cycles'], 1):.0%} of the cycles")
        if t["units"] and t["cycles"]:
            parts = []
            for u, st in t["units"].items():
                parts.append(f"{u} {st['busy'] / t['cycles']:.0%} busy"
                             + "".join(f", {st[k] / t['cycles']:.0%} {k[6:]}-stall"
                                       for k in ("stall_input", "stall_output", "stall_dram", "stall_weights")
                                       if st[k] / t["cycles"] >= 0.005))
            lines.append("units: " + "; ".join(parts))
        if t["energy_uj"] > 0:
            info = t["energy_table"]
            table = (f"{info['tech_node_nm']} nm, {info['dram_type']}, {info['file']} table, "
                     f"SRAM {info['sram_model']}") if info else "table unknown"
            static = self.energy_table.get("static_mw")
            if isinstance(static, dict):
                table += f", static power {sum(static.values()):g} mW"
            lines.append(
                f"energy {t['energy_per_inference_uj']:.2f} uJ per inference ({table}); "
                f"{t['pj_per_mac_dense']:.3f} pJ per dense MAC, {t['pj_per_mac_useful']:.3f} pJ per useful MAC; "
                f"average power {t['average_power_mw']:.1f} mW ({t['average_power_core_mw']:.1f} mW without DRAM)")
            lines.append(
                f"TOp/s/W: dense-equivalent ops {t['tops_per_watt_dense']:.3f} "
                f"(without DRAM {t['tops_per_watt_dense_core']:.3f}); actual ops {t['tops_per_watt_actual']:.3f} "
                f"(without DRAM {t['tops_per_watt_actual_core']:.3f})")
            lines.append("energy breakdown: " + ", ".join(
                f"{k} {v / t['energy_uj']:.1%}" for k, v in t["energy_breakdown_uj"].items()
                if v / t["energy_uj"] >= 0.0005))
        if self.saturated:
            lines.append(f"saturated to Q8.8: {sum(self.saturated.values()):,d} values ("
                         + ", ".join(f"{k} {v:,d}" for k, v in self.saturated.items()) + ")")
        if t["host_layers"]:
            lines.append(f"host (not timed): {len(t['host_layers'])} layers, {t['host_macs'] / 1e6:.1f} M MACs")
        if t["host_ops"]:
            lines.append("host ops with the model's own values (op: layers, output elements): " + "; ".join(
                f"{op} {v['layers']}, {v['elements']:,d}" for op, v in t["host_ops"].items()))
        rc = t["reference_check"]
        if rc["layers"]:
            lines.append(f"functional check against the model's own float outputs: {rc['ok']} of {rc['layers']} "
                         f"conv/fc layers within the Q8.8 tolerance (largest deviation from the float model "
                         f"{rc['max_error_lsb']:.0f} LSB, layer {rc['max_error_layer']})")
        lines.append("m = MACs per output channel, pass = passes over the input, in dens = input density; "
                     "every column: sparsesim run --help")
        lines.extend(f"warning: {n}" for n in self.notes)
        return "\n".join(lines)


