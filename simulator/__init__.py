"""sparsesim simulator: event engine, numerics, oracle, energy, reports, studies.

Public API::

    from simulator import simulate
    result = simulate("vgg16", "nullhop")
    print(result.format_table())

Subpackages (each exports its public names from its ``__init__``):
``numerics`` (Q8.8 codec, kernels and numpy reference), ``engine`` (the
event-driven timing model), ``oracle`` (the clock-stepped reference and
validation), ``energy``, ``report`` (results, output files, progress),
``runner`` (whole-network runs), ``studies`` (sweeps, compare, plots).
The accelerator description and the dataflows live in the ``dataflows``
package; the most used names are re-exported here.
"""
from dataflows import (AcceleratorConfig, ArrayConfig, DmaConfig, EnergyConfig, MemoryConfig, PrecisionConfig,
                       config_to_dict, dataflow_names, field_names, get_dataflow, get_preset, list_presets,
                       load_config, parse_set, with_overrides)
from workloads import (ConfigError, FunctionalMismatchError, LimitError, MappingError, SparsesimError, TraceError,
                       WorkloadError)

from .energy import EnergyTable, layer_energy, load_energy_table
from .oracle import ValidationReport, validate_network
from .report import LayerResult, Result, network_progress, progress_bar
from .runner import TRACE_MODES, Simulator, clear_tensor_cache, simulate, tensor_cache_info
from .studies import (Comparison, SweepResult, compare_dataflows, load_sweep, parse_grid, plot_bandwidth_demand,
                      plot_cycle_breakdown, plot_dram_traffic, plot_energy_breakdown, plot_file, plot_roofline,
                      plot_sweep, plot_utilization, sweep)

__all__ = [
    "AcceleratorConfig", "ArrayConfig", "ConfigError", "DmaConfig", "EnergyConfig", "EnergyTable",
    "FunctionalMismatchError", "LayerResult", "LimitError", "layer_energy", "load_energy_table",
    "MappingError", "MemoryConfig", "PrecisionConfig", "Result", "Simulator", "SparsesimError", "TRACE_MODES",
    "TraceError", "ValidationReport", "WorkloadError", "config_to_dict", "dataflow_names", "field_names",
    "get_dataflow", "get_preset", "list_presets", "load_config", "parse_set", "simulate", "validate_network",
    "with_overrides", "tensor_cache_info", "clear_tensor_cache",
    # sweeps, comparisons, plots, progress bars
    "Comparison", "SweepResult", "compare_dataflows", "load_sweep", "network_progress", "parse_grid",
    "plot_bandwidth_demand", "plot_cycle_breakdown", "plot_dram_traffic", "plot_energy_breakdown", "plot_file",
    "plot_roofline", "plot_sweep", "plot_utilization", "progress_bar", "sweep",
]
