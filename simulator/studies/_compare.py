"""Side-by-side dataflow comparison on one trace (``sparsesim compare``).

Every dataflow runs with the same network, seed, profile, pruning and trace,
so weights and activations are identical and only what the array skips and
how data is stored differ. Plain orchestration over :class:`Simulator`.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dataflows import AcceleratorConfig, dataflow_names, load_config, with_overrides
from workloads import ConfigError, Network

from ..report import Result, data_label
from ..runner import Simulator

__all__ = ["Comparison", "compare_dataflows"]


@dataclass
class Comparison:
    """Results of one network under several dataflows; ``baseline`` is the reference for speedups.

    ``setup`` records what every dataflow shared: network, base config name, MAC
    count, clock (MHz), DRAM bandwidth (bytes/cycle) and interface, the config
    overrides, density profile, trace mode and seed. :meth:`rows` repeats it in
    every row, so a CSV or JSON file says what was compared.
    """

    network: str
    baseline: str
    results: dict[str, Result]
    setup: dict[str, object] = field(default_factory=dict)

    def rows(self) -> list[dict[str, object]]:
        """One row per dataflow: cycles, speedup over the baseline, utilization, imbalance, DRAM, energy."""
        base = self.results[self.baseline].totals
        out = []
        for name, res in self.results.items():
            t = res.totals
            acc = [l for l in res.layers if l.where == "accelerator"]
            ops = sum(sum(l.pu_ops) for l in acc) or 1
            imbalance = sum(l.pu_imbalance * sum(l.pu_ops) for l in acc) / ops
            time_imb = sum(l.pu_time_imbalance * sum(l.pu_ops) for l in acc) / ops
            row = {
                "dataflow": name, "cycles": t["cycles"], "latency_ms": t["latency_ms"],
                "speedup": base["cycles"] / t["cycles"] if t["cycles"] else 0.0,
                "mac_utilization": t["mac_utilization"], "efficiency": t["efficiency"],
                "pu_imbalance": imbalance, "pu_time_imbalance": time_imb,
                "passes": sum(l.passes for l in acc),
                "dram_bytes": t["dram_bytes"],
            }
            if "energy_uj" in t:
                row["energy_uj"] = t["energy_uj"]
                row["energy_ratio"] = (t["energy_uj"] / base["energy_uj"]) if base.get("energy_uj") else 0.0
            row["baseline"] = self.baseline
            row.update(self.setup)
            out.append(row)
        return out

    def to_dataframe(self):
        """The rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd
        return pd.DataFrame(self.rows())

    def format_table(self) -> str:
        """Text table, one line per dataflow."""
        rows = self.rows()
        has_e = all("energy_uj" in r for r in rows)
        nw = max([10] + [len(r["dataflow"]) for r in rows])
        hdr = (f"{'dataflow':<{nw}} {'cycles':>13} {'lat ms':>9} {'speedup':>8} {'util':>6} {'effic':>7} "
               f"{'PU imb':>7} {'passes':>6} {'DRAM MiB':>9}" + (f" {'energy uJ':>10}" if has_e else ""))
        st = self.setup
        head = f"sparsesim compare: {self.network}"
        if st:
            head += (f" on {st['config']} config ({st['macs']} MACs @ {st['clock_mhz']:g} MHz, DRAM "
                     f"{st['dram_bandwidth_bytes_per_cycle']:g} B/cycle {st['dram_interface']})"
                     + (f" with {st['overrides']}" if st.get("overrides") else "")
                     + f", {data_label(st['profile'], st['trace'], st['seed'])}")
        lines = [head, f"speedup and energy ratio over {self.baseline}", hdr, "-" * len(hdr)]
        for r in rows:
            lines.append(
                f"{r['dataflow']:<{nw}} {r['cycles']:>13,d} {r['latency_ms']:>9.3f} {r['speedup']:>7.2f}x "
                f"{r['mac_utilization']:>6.1%} {r['efficiency']:>7.1%} {r['pu_imbalance']:>7.3f} {r['passes']:>6d} "
                f"{r['dram_bytes'] / 2**20:>9.2f}" + (f" {r['energy_uj']:>10.1f}" if has_e else ""))
        lines.append("PU imbalance = slowest / mean PU work (MAC operations), weighted over layers; "
                     "1.000 for dataflows without PUs")
        return "\n".join(lines)


def compare_dataflows(network: Network | str, accel: AcceleratorConfig | str | os.PathLike = "nullhop", *,
                      dataflows: Sequence[str] | None = None, baseline: str | None = None,
                      overrides: Mapping[str, object] | None = None,
                      progress: Callable[[str], None] | None = None, **run_kwargs) -> Comparison:
    """Run ``network`` under each dataflow on the same array, memories and trace.

    Parameters
    ----------
    network : zoo name or :class:`Network`.
    accel : base configuration (its ``array.dataflow`` is replaced per run).
    dataflows : dataflows to run (default: every registered dataflow); ``baseline`` must be among them.
    baseline : the dataflow speedups and energy ratios are relative to (default: the first of ``dataflows``).
    overrides : config overrides applied to every run.
    run_kwargs : passed to :meth:`Simulator.run` (``seed``, ``profile``, ``trace``, ``pruning``, ``check``).
    """
    base_cfg = accel if isinstance(accel, AcceleratorConfig) else load_config(accel)
    if overrides:
        base_cfg = with_overrides(base_cfg, overrides)
    known = dataflow_names()
    dataflows = list(known if dataflows is None else dataflows)
    unknown = [d for d in dataflows if d not in known]
    if unknown or not dataflows:
        raise ConfigError(f"dataflows must be chosen from {', '.join(known)}, got {list(dataflows)!r}")
    if baseline is None:
        baseline = dataflows[0]
    if baseline not in dataflows:
        raise ConfigError(f"baseline {baseline!r} must be one of the compared dataflows {list(dataflows)!r}")
    results: dict[str, Result] = {}
    name = network if isinstance(network, str) else network.name
    for df in dataflows:
        if progress is not None:
            progress(df)
        cfg = with_overrides(base_cfg, {"array.dataflow": df})
        results[df] = Simulator(cfg).run(network, **run_kwargs)
    first = results[dataflows[0]]
    setup = {"network": first.network, "config": base_cfg.name, "macs": base_cfg.array.num_macs,
             "clock_mhz": base_cfg.array.clock_mhz,
             "dram_bandwidth_bytes_per_cycle": base_cfg.dma.bandwidth_bytes_per_cycle,
             "dram_interface": base_cfg.dma.interface,
             "overrides": ";".join(f"{k}={v}" for k, v in (overrides or {}).items()),
             "profile": first.profile, "trace": first.trace, "seed": first.seed}
    return Comparison(network=first.network if results else name, baseline=baseline, results=results, setup=setup)
