"""The event model of one accelerator layer: the dataflow's per-pass work, timed pass by pass.

The layer's dataflow (``array.dataflow``, from the ``dataflows`` registry)
turns the real data into per-pass work: cycles per work unit for each of its
units, buffer capacities, kernel-load cycles and action counts. This module
runs each pass through :func:`simulate_pipeline` and sums the passes into one
:class:`~simulator.report.LayerTiming`. It knows no dataflow and no unit by
name.
"""
from __future__ import annotations

import numpy as np

from dataflows import AcceleratorConfig, ScheduledLayer, get_dataflow

from ..report import LayerTiming
from ._pipeline import check_engine, simulate_pipeline

__all__ = ["time_layer"]


def time_layer(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray,
               cfg: AcceleratorConfig, weights: np.ndarray | None = None, engine: str = "compiled") -> LayerTiming:
    """Simulate one accelerator layer under the configured dataflow.

    The arguments are those of the dataflow's ``layer_work`` (``dataflows.StripeDataflow``
    documents them): the scheduled layer, its int16 input as the array sees it, its
    stride-1 output as the PRE writes it, the configuration (``array.dataflow`` picks
    the dataflow) and the int16 weights (required by dataflows that skip zero weights
    or compress kernels). ``engine`` picks the implementation of the event model
    (:func:`simulate_pipeline`): ``"compiled"`` or ``"simpy"``, identical results.

    Returns
    -------
    LayerTiming; cycles are accelerator clock cycles.
    """
    check_engine(engine)
    flow = get_dataflow(cfg.array.dataflow)
    work = flow.layer_work(sched, act_in, out_written, cfg, weights)
    units = list(flow.units)
    t = LayerTiming.for_units(units, passes=len(work.passes), resident=work.resident,
                              handoff_columns=work.handoff_columns)
    t.actions = dict.fromkeys(flow.actions, 0)
    n_pu = max((len(pw.pu_ops) for pw in work.passes), default=0)
    pu_ops_total = np.zeros(n_pu, dtype=np.int64)
    pu_max = pu_sum = 0
    carry = 0
    for i, pw in enumerate(work.passes):
        nxt = work.passes[i + 1] if i + 1 < len(work.passes) else None
        prefetch = nxt.load_cycles if nxt is not None and nxt.prefetched else 0
        load = carry if pw.prefetched else pw.load_cycles
        timing = simulate_pipeline(units, pw.service, pw.capacities, pw.alloc or None, pw.free or None,
                                   load_cycles=load, load_unit=units[0], prefetch_cycles=prefetch,
                                   dram_units=pw.dram_units, shared_dram=pw.shared_dram,
                                   engine=engine)
        carry = timing.carry_cycles
        t.cycles += timing.cycles
        t.dram_busy_cycles += timing.dram_busy_cycles
        t.pass_cycles.append(timing.cycles)
        t.pass_channels.append(np.asarray(pw.channels).tolist())
        for u in units:
            t.units[u].add(timing.units[u])
        for k, v in pw.dram_read_bytes.items():
            t.dram_read_bytes[k] = t.dram_read_bytes.get(k, 0) + v
        for k, v in pw.dram_write_bytes.items():
            t.dram_write_bytes[k] = t.dram_write_bytes.get(k, 0) + v
        for k, v in pw.actions.items():
            t.actions[k] += v
        t.mac_ops += pw.mac_ops
        t.macs_useful += pw.macs_useful
        pu_ops_total += pw.pu_ops
        pu_max += pw.pu_busy_max
        pu_sum += pw.pu_busy_mean
    t.pu_ops = [int(x) for x in pu_ops_total]
    worked = pu_ops_total[pu_ops_total > 0]
    t.pu_imbalance = float(worked.max() / worked.mean()) if len(worked) else 1.0
    t.pu_time_imbalance = (pu_max / pu_sum) if pu_sum > 0 else 1.0
    return t
