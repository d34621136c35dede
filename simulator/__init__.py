"""sparsesim simulator: configuration, engine, functional kernels, results.

Public API::

    from simulator import simulate
    result = simulate("vgg16", "nullhop")
    print(result.format_table())
"""
from workloads._errors import (ConfigError, FunctionalMismatchError, MappingError, SparsesimError, TraceError,
                               WorkloadError)

from ._config import (AcceleratorConfig, ArrayConfig, DmaConfig, EnergyConfig, MemoryConfig, PrecisionConfig,
                      config_to_dict, field_names, get_preset, list_presets, load_config, parse_set, with_overrides)
from ._energy import EnergyTable, layer_energy, load_energy_table
from ._report import LayerResult, Result
from ._runner import TRACE_MODES, Simulator, simulate
from ._plots import (plot_cycle_breakdown, plot_dram_traffic, plot_energy_breakdown, plot_file, plot_sweep,
                     plot_utilization)
from ._progress import network_progress, progress_bar
from ._sweep import SweepResult, load_sweep, parse_grid, sweep
from ._validate import ValidationReport, validate_network

__all__ = [
    "AcceleratorConfig", "ArrayConfig", "ConfigError", "DmaConfig", "EnergyConfig", "EnergyTable",
    "FunctionalMismatchError", "LayerResult", "layer_energy", "load_energy_table",
    "MappingError", "MemoryConfig", "PrecisionConfig", "Result", "Simulator", "SparsesimError", "TRACE_MODES",
    "TraceError", "ValidationReport", "WorkloadError", "config_to_dict", "field_names", "get_preset", "list_presets", "load_config",
    "parse_set", "simulate", "validate_network", "with_overrides",
    # sweeps, plots, progress bars
    "SweepResult", "load_sweep", "network_progress", "parse_grid", "plot_cycle_breakdown", "plot_dram_traffic",
    "plot_energy_breakdown", "plot_file", "plot_sweep", "plot_utilization", "progress_bar", "sweep",
]
