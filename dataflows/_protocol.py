"""The dataflow plug-in protocol and the registry every other module reads.

A dataflow says what work an accelerator layer creates from real data. It is
an object with:

* ``name`` and ``description``;
* ``traits`` (:class:`DataflowTraits`): what it skips, what it stores
  compressed, how many kernel-memory banks it has;
* ``units``: the pipeline units, upstream first (the names reports use), and
  ``buffers``: the bounded buffer after each unit but the last
  (:class:`Buffer`), and ``memories``: the on-chip memories whose accesses it
  counts (:class:`Memory`);
* ``actions``: every countable action, mapped to the energy component it is
  charged to and the kind of energy-table entry (:class:`Action`);
* ``plan(sched, cfg, weights)``: its pass plans (:class:`~dataflows.PassPlan`);
* ``layer_work(sched, act_in, out_written, cfg, weights)``: the per-pass work
  (:class:`LayerWork`) computed from the real bitmaps: for each pass, the
  cycles every unit spends on every work unit, the buffer capacities, the
  kernel-load cycles, DRAM bytes and action counts.

The event model (``simulator.engine``) times any dataflow's work through a
linear pipeline of its units; energy, reports, plots, sweeps, ``compare`` and
the CLI read names, units and actions from the registry. The clock-stepped
reference (``simulator.oracle``) re-derives the work of the stripe pipeline
on its own from the traits, so it never sees ``layer_work``.

A new dataflow is one module that builds such an object and calls
:func:`register`, plus a preset in ``dataflows/presets``.
"""
from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from workloads import ConfigError, suggest

if TYPE_CHECKING:   # type hints only; the config module validates against this registry
    from ._accelerator import AcceleratorConfig
    from ._mapping import ScheduledLayer
    from ._plan import PassPlan

__all__ = ["Action", "Buffer", "Dataflow", "DataflowTraits", "LayerWork", "Memory", "PassWork",
           "dataflow_names", "get_dataflow", "register"]


@dataclass(frozen=True)
class DataflowTraits:
    """What a dataflow skips, how it stores data, and its kernel-memory banking.

    Attributes
    ----------
    skip_activations : zero activations cost no MAC cycle.
    skip_weights : zero-weight taps cost no MAC cycle; the array runs as PUs.
    compressed_activations : activations move in sparsity-map + non-zero form.
    compressed_weights : kernels move and are stored in sparsity-map form.
    kernel_banks : kernel-memory banks per MAC. With 2, the next pass's kernels
        load into the idle bank while the current pass computes.
    """

    skip_activations: bool
    skip_weights: bool
    compressed_activations: bool
    compressed_weights: bool
    kernel_banks: int = 1

    @property
    def uses_pus(self) -> bool:
        """The MAC array is split into independently scheduled processing units."""
        return self.skip_weights


@dataclass(frozen=True)
class Buffer:
    """A bounded hand-off buffer between two consecutive units.

    ``capacity_key`` is the config field that sizes it (dotted key, in KiB).
    """

    name: str
    capacity_key: str = ""


@dataclass(frozen=True)
class Memory:
    """An on-chip memory whose accesses are counted.

    ``size_kib(cfg)`` is the capacity of one macro in KiB, as its SRAM energy
    entry is chosen.
    """

    name: str
    description: str
    size_kib: Callable[["AcceleratorConfig"], float]


@dataclass(frozen=True)
class Action:
    """A countable action: the energy component it is charged to and the kind of table entry.

    Kinds: ``mac`` / ``mac_gated`` (per operation or idle MAC slot), ``read`` /
    ``write`` (one 16-bit word of the component's memory), ``sm_decode`` /
    ``sm_encode`` (one sparsity-map word), ``dram`` (one byte off chip).
    """

    name: str
    component: str
    kind: str
    description: str = ""


@dataclass
class PassWork:
    """The work of one pass, as the event model consumes it (cycles are clock cycles).

    Attributes
    ----------
    service : per unit (``Dataflow.units``), int64 cycles of each work unit.
    capacities : per buffer (``Dataflow.buffers``), its capacity in bytes.
    alloc : per buffer, int64 bytes each work unit takes in it when its
        producer starts the work unit.
    free : per buffer, int64 bytes its consumer frees when it finishes each
        work unit (equal to ``alloc`` except where data outlives one work
        unit, as rows of the input memory do).
    dram_units : indices of the units that transfer to or from DRAM, read side
        first (the first is also the load unit).
    shared_dram : those units take turns on one DRAM interface.
    load_cycles : cycles the load unit (the first unit) spends loading this
        pass's kernels, biases and configuration.
    prefetched : the load may be issued while the previous pass runs (a second
        kernel bank): the load unit starts it right after its last work unit of
        the previous pass, and this pass waits only for the part not yet done.
    channels : output channels computed in this pass.
    actions, dram_read_bytes, dram_write_bytes : counts of this pass.
    mac_ops : multiply-accumulates performed; macs_useful : those with a
        non-zero activation and weight that feed kept outputs.
    pu_ops : (P,) operations per PU; pu_busy_max, pu_busy_mean : per-stripe
        slowest and mean PU busy cycles, summed over stripes.
    """

    service: list[np.ndarray]
    capacities: list[int]
    load_cycles: int
    alloc: list[np.ndarray] = field(default_factory=list)
    free: list[np.ndarray] = field(default_factory=list)
    dram_units: tuple[int, ...] = ()
    shared_dram: bool = False
    prefetched: bool = False
    channels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    actions: dict[str, int] = field(default_factory=dict)
    dram_read_bytes: dict[str, int] = field(default_factory=dict)
    dram_write_bytes: dict[str, int] = field(default_factory=dict)
    mac_ops: int = 0
    macs_useful: int = 0
    pu_ops: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pu_busy_max: int = 0
    pu_busy_mean: float = 0.0


@dataclass
class LayerWork:
    """All passes of one layer; ``resident``: the input image stays on chip for every pass;
    ``handoff_columns``: stride-1 output columns per work unit (docs/architecture.md §3)."""

    passes: list[PassWork]
    resident: bool
    handoff_columns: int = 0


@runtime_checkable
class Dataflow(Protocol):
    """What a dataflow plug-in provides (see the module docstring)."""

    name: str
    description: str
    traits: DataflowTraits
    units: tuple[str, ...]
    buffers: tuple[Buffer, ...]
    memories: tuple[Memory, ...]
    actions: Mapping[str, Action]

    def plan(self, sched: "ScheduledLayer", cfg: "AcceleratorConfig",
             weights: np.ndarray | None) -> list["PassPlan"]:
        """Pass plans of an accelerator layer."""

    def layer_work(self, sched: "ScheduledLayer", act_in: np.ndarray, out_written: np.ndarray,
                   cfg: "AcceleratorConfig", weights: np.ndarray | None) -> LayerWork:
        """Per-pass work of an accelerator layer from its real data."""


_REGISTRY: dict[str, Dataflow] = {}


def register(dataflow: Dataflow) -> Dataflow:
    """Add ``dataflow`` to the registry (by ``dataflow.name``) and return it.

    Raises :class:`ConfigError` if the object lacks part of the protocol, its
    buffers do not sit between its units, or the name is taken.
    """
    if not isinstance(dataflow, Dataflow):
        raise ConfigError(f"a dataflow must provide name, description, traits, units, buffers, memories, "
                          f"actions, plan() and layer_work(); got {dataflow!r}")
    name = dataflow.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise ConfigError(f"dataflow name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not dataflow:
        raise ConfigError(f"dataflow {name!r} is already registered")
    if len(dataflow.buffers) != len(dataflow.units) - 1:
        raise ConfigError(f"dataflow {name!r}: {len(dataflow.units)} units need {len(dataflow.units) - 1} "
                          f"buffers between them, got {len(dataflow.buffers)}")
    _REGISTRY[name] = dataflow
    return dataflow


def dataflow_names() -> tuple[str, ...]:
    """Names of the registered dataflows, in registration order."""
    return tuple(_REGISTRY)


def get_dataflow(name: object) -> Dataflow:
    """The registered dataflow called ``name``.

    Raises :class:`ConfigError` naming ``array.dataflow``, the bad value and the
    registered names.
    """
    try:
        return _REGISTRY[name]   # type: ignore[index]
    except (KeyError, TypeError):
        hint = suggest(name, list(_REGISTRY)) if isinstance(name, str) else ""
        raise ConfigError(f"array.dataflow must be one of {', '.join(_REGISTRY)}, got {name!r}{hint}") from None


def frozen_actions(*actions: Action) -> Mapping[str, Action]:
    """A read-only name -> :class:`Action` mapping, in the given order."""
    return types.MappingProxyType({a.name: a for a in actions})
