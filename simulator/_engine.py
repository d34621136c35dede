"""Discrete-event timing of one pass: a pipeline of units joined by bounded FIFOs.

Each unit is a simpy process that takes a work unit (a stripe) from its input
FIFO, is busy for that work unit's exact cycle count, then puts it into its
output FIFO, waiting while that FIFO is full (back-pressure). Hand-offs take
zero cycles: a work unit finished at cycle ``t`` can start downstream at
``t``, and a FIFO slot freed at ``t`` can be filled at ``t``. The processes
only orchestrate time; every duration is computed beforehand by the numba
kernels in ``_cycles.py``. Event count is proportional to work units x units,
never to cycles.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

__all__ = ["UnitStats", "PassTiming", "simulate_pipeline", "STALL_CAUSES"]

#: Why a unit was not busy: waiting for its input FIFO, blocked by a full
#: output FIFO, or waiting for the pass's kernels and biases to load.
STALL_CAUSES = ("input", "output", "weights")


@dataclass
class UnitStats:
    """Cycle accounting of one unit. busy + stalls + idle = span of the pass."""

    busy: int = 0
    stall_input: int = 0
    stall_output: int = 0
    stall_weights: int = 0
    idle: int = 0

    def add(self, other: "UnitStats") -> None:
        """Accumulate ``other`` into this record."""
        self.busy += other.busy
        self.stall_input += other.stall_input
        self.stall_output += other.stall_output
        self.stall_weights += other.stall_weights
        self.idle += other.idle

    def as_dict(self) -> dict[str, int]:
        return {"busy": self.busy, "stall_input": self.stall_input, "stall_output": self.stall_output,
                "stall_weights": self.stall_weights, "idle": self.idle}


@dataclass
class PassTiming:
    """Result of one pass: total cycles and per-unit accounting."""

    cycles: int
    units: dict[str, UnitStats] = field(default_factory=dict)


def simulate_pipeline(units: list[str], service: list[np.ndarray], capacities: list[int],
                      load_cycles: int = 0, load_unit: str | None = None) -> PassTiming:
    """Run one pass through a linear pipeline in simpy.

    Parameters
    ----------
    units : unit names, upstream first.
    service : per unit, int64 array of cycles for each work unit (all equal length).
    capacities : FIFO depth (work units) after each unit except the last.
    load_cycles : cycles spent loading kernels and biases before any work unit
        starts; charged as busy to ``load_unit`` and as a weight stall to the others.

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
    for k, name in enumerate(units):
        st = stats[name]
        if name == load_unit:
            st.busy += load_cycles
        else:
            st.stall_weights += load_cycles
        st.idle = total - (st.busy + st.stall_input + st.stall_output + st.stall_weights)
    return PassTiming(cycles=int(total), units=stats)
