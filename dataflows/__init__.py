"""Dataflows: the accelerator description and what work each dataflow creates from real data.

* The accelerator description: frozen config dataclasses, presets and their
  validation (:class:`AcceleratorConfig`, :func:`load_config`, ...).
* The mapping shared by every dataflow: passes, stripes, where each layer runs
  (:func:`schedule_network`, :func:`map_conv`) and pass plans (:func:`plan_passes`).
* The dataflow plug-in protocol (:class:`Dataflow`) and its registry
  (:func:`register`, :func:`get_dataflow`, :func:`dataflow_names`). The
  built-in dataflows are one module each: ``dense``, ``nullhop``, ``rsnn``,
  ``combined`` and ``nullhop_prefetch``.
"""
from ._protocol import (Action, Buffer, Dataflow, DataflowTraits, LayerWork, Memory, PassWork, dataflow_names,
                        frozen_actions, get_dataflow, register)
from ._accelerator import (DRAM_INTERFACES, DRAM_TYPES, ENERGY_NODES_NM, FIELD_SPECS, MACS_KEY, MAX_BUFFER_KIB,
                           MAX_MACS, FieldSpec, AcceleratorConfig, ArrayConfig, DmaConfig, EnergyConfig,
                           MemoryConfig, PrecisionConfig, closest_key, config_to_dict, field_names, get_preset,
                           list_presets, load_config, parse_set, parse_toml, read_user_file,
                           with_overrides)
from ._mapping import LayerMapping, ScheduledLayer, map_conv, next_pow2, schedule_network
from ._plan import PassPlan, kernel_lane_sizes, plan_passes
from ._handoff import HANDOFF_BUFFERS, Handoff, handoff_columns, input_column_chunks, written_column_chunks
from ._counts import stripe_windows
from ._stripe import STRIPE_UNITS, StripeDataflow, dma_cycles

# The built-in dataflows register themselves on import, in this order.
from . import dense, nullhop, rsnn, combined, nullhop_prefetch  # noqa: E402,F401  isort: skip

__all__ = [
    # accelerator description
    "AcceleratorConfig", "ArrayConfig", "DRAM_TYPES", "DmaConfig", "ENERGY_NODES_NM", "EnergyConfig",
    "MemoryConfig", "PrecisionConfig", "closest_key", "config_to_dict", "field_names", "get_preset",
    "list_presets", "load_config", "parse_set", "parse_toml", "read_user_file", "with_overrides",
    # mapping and pass plans
    "LayerMapping", "PassPlan", "ScheduledLayer", "kernel_lane_sizes", "map_conv", "next_pow2", "plan_passes",
    "schedule_network",
    # the plug-in protocol and registry
    "Action", "Buffer", "Dataflow", "DataflowTraits", "LayerWork", "Memory", "PassWork", "STRIPE_UNITS",
    "StripeDataflow", "dataflow_names", "dma_cycles", "frozen_actions", "get_dataflow", "register",
    "stripe_windows",
    # the hand-off granularity shared by both timing models
    "HANDOFF_BUFFERS", "Handoff", "handoff_columns", "input_column_chunks", "written_column_chunks",
    "DRAM_INTERFACES", "MAX_BUFFER_KIB",
    # every field's unit, range and provenance; the total-MAC shorthand
    "FIELD_SPECS", "FieldSpec", "MACS_KEY", "MAX_MACS",
]
