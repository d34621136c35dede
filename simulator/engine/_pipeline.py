"""Discrete-event timing of one pass: a pipeline of units joined by bounded buffers.

Each unit is a simpy process that takes a work unit (a stripe) from its input
buffer, is busy for that work unit's exact cycle count, then puts it into its
output buffer, waiting while that buffer is full (back-pressure). Hand-offs
take zero cycles: a work unit finished at cycle ``t`` can start downstream at
``t``, and a buffer slot freed at ``t`` can be filled at ``t``. The processes
only orchestrate time; every duration comes from the dataflow's per-pass work.
Event count is proportional to work units x units, never to cycles.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from ..report import UnitStats

__all__ = ["PassTiming", "simulate_pipeline"]


@dataclass
class PassTiming:
    """Result of one pass: total cycles, per-unit accounting, and the part of the
    next pass's prefetched load still to do when this pass ends (``carry_cycles``)."""

    cycles: int
    units: dict[str, UnitStats] = field(default_factory=dict)
    carry_cycles: int = 0


def simulate_pipeline(units: list[str], service: list[np.ndarray], capacities: list[int],
                      load_cycles: int = 0, load_unit: str | None = None,
                      prefetch_cycles: int = 0) -> PassTiming:
    """Run one pass through a linear pipeline in simpy.

    Parameters
    ----------
    units : unit names, upstream first.
    service : per unit, int64 array of cycles for each work unit (all equal length).
    capacities : buffer depth (work units) after each unit except the last.
    load_cycles : cycles spent loading kernels and biases before any work unit
        starts; charged as busy to ``load_unit`` and as a weight stall to the others.
    prefetch_cycles : the next pass's load, issued on the first unit right after
        its last work unit (a second kernel bank). The pass still ends when its
        last work unit drains; the part of the load done by then is busy time of
        the first unit, the rest is returned as ``carry_cycles``.

    Returns
    -------
    PassTiming with total cycles (load + pipeline drain) and per-unit stats.
    """
    n_units = len(units)
    n_items = len(service[0]) if service else 0
    env = simpy.Environment()
    fifos = [simpy.Store(env, capacity=int(c)) for c in capacities]
    stats = {u: UnitStats() for u in units}
    finish = [0] * n_units

    def unit(k: int):
        st = stats[units[k]]
        durations = [int(x) for x in service[k]]
        for i in range(n_items):
            t0 = env.now
            if k > 0:
                yield fifos[k - 1].get()
            st.stall_input += env.now - t0
            if durations[i]:
                yield env.timeout(durations[i])
            st.busy += durations[i]
            if k < n_units - 1:
                t1 = env.now
                yield fifos[k].put(i)
                st.stall_output += env.now - t1
        finish[k] = env.now

    def start():
        if load_cycles:
            yield env.timeout(load_cycles)
        for k in range(n_units):
            env.process(unit(k))

    env.process(start())
    env.run()
    total = max(finish) if n_items else load_cycles  # finish times are absolute, load included
    carry = 0
    if prefetch_cycles:
        # The first unit has been free since finish[0]; the pass ends at ``total``.
        done_in_pass = min(prefetch_cycles, total - finish[0])
        stats[units[0]].busy += done_in_pass
        carry = prefetch_cycles - done_in_pass
    for k, name in enumerate(units):
        st = stats[name]
        if name == load_unit:
            st.busy += load_cycles
        else:
            st.stall_weights += load_cycles
        st.idle = total - (st.busy + st.stall_input + st.stall_output + st.stall_weights)
    return PassTiming(cycles=int(total), units=stats, carry_cycles=int(carry))
