"""What one accelerator layer cost in time: the record both timing models fill.

The event model (``simulator.engine``) and the clock-stepped reference
(``simulator.oracle``) each produce a :class:`LayerTiming`, so that comparing
them is comparing two records field by field.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["COUNTERS", "STALL_CAUSES", "LayerTiming", "UnitStats"]

#: Why a unit was not busy: waiting for its input, for room in its output
#: buffer, for the shared DRAM interface, or for the pass's kernels and biases to load.
STALL_CAUSES = ("input", "output", "dram", "weights")

#: Per-unit cycle classes, in report order; they add up to the span of the layer.
COUNTERS = ("busy", "stall_input", "stall_output", "stall_dram", "stall_weights", "idle")


@dataclass
class UnitStats:
    """Cycle accounting of one unit. busy + stalls + idle = span of the pass."""

    busy: int = 0
    stall_input: int = 0
    stall_output: int = 0
    stall_dram: int = 0
    stall_weights: int = 0
    idle: int = 0

    def add(self, other: "UnitStats") -> None:
        """Accumulate ``other`` into this record."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        """The counters by name (:data:`COUNTERS` order)."""
        return {name: getattr(self, name) for name in COUNTERS}


def _dram_read() -> dict[str, int]:
    return {"activations": 0, "weights": 0, "biases": 0, "config": 0}


@dataclass
class LayerTiming:
    """Cycles and counts of one accelerator layer (all passes).

    Attributes
    ----------
    cycles : clock cycles of all passes (kernel loads included).
    units : per pipeline unit (the dataflow's ``units``, upstream first), its cycle classes.
    passes, pass_cycles, pass_channels : number of passes, cycles and output channels of each.
    macs_useful : multiply-accumulates with a non-zero activation and a non-zero weight
        that feed outputs kept after stride decimation.
    mac_ops : multiply-accumulates performed.
    pu_ops : operations per PU (one PU for dataflows without PUs).
    pu_imbalance : max / mean of ``pu_ops`` over the PUs that had work (1.0 if none).
    pu_time_imbalance : sum over work units of the slowest PU's busy cycles / the mean PU's.
    resident : the input image stays in the input memory for all passes.
    handoff_columns : stride-1 output columns per work unit (docs/architecture.md §3).
    dram_busy_cycles : cycles in which at least one transfer occupies the DRAM interface.
    dram_read_bytes, dram_write_bytes : DRAM traffic by kind, in bytes.
    actions : countable actions for the energy model (event model only; empty from the reference).
    """

    units: dict[str, UnitStats]
    cycles: int = 0
    passes: int = 0
    pass_cycles: list[int] = field(default_factory=list)
    pass_channels: list[list[int]] = field(default_factory=list)
    macs_useful: int = 0
    mac_ops: int = 0
    pu_ops: list[int] = field(default_factory=list)
    pu_imbalance: float = 1.0
    pu_time_imbalance: float = 1.0
    resident: bool = False
    handoff_columns: int = 0
    dram_busy_cycles: int = 0
    dram_read_bytes: dict[str, int] = field(default_factory=_dram_read)
    dram_write_bytes: dict[str, int] = field(default_factory=lambda: {"activations": 0})
    actions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_units(cls, units, **kwargs) -> "LayerTiming":
        """An empty record for a pipeline of ``units``."""
        return cls(units={u: UnitStats() for u in units}, **kwargs)
