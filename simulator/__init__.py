"""sparsesim simulator: configuration, engine, functional kernels, results.

Public API::

    from simulator import simulate
    result = simulate("vgg16", "nullhop")
    print(result.format_table())
"""
from workloads._errors import (ConfigError, FunctionalMismatchError, MappingError, SparsesimError, TraceError,
                               WorkloadError)

from ._config import (AcceleratorConfig, ArrayConfig, DmaConfig, MemoryConfig, PrecisionConfig, config_to_dict,
                      field_names, get_preset, list_presets, load_config, parse_set, with_overrides)
from ._report import LayerResult, Result
from ._runner import TRACE_MODES, Simulator, simulate

__all__ = [
    "AcceleratorConfig", "ArrayConfig", "ConfigError", "DmaConfig", "FunctionalMismatchError", "LayerResult",
    "MappingError", "MemoryConfig", "PrecisionConfig", "Result", "Simulator", "SparsesimError", "TRACE_MODES",
    "TraceError", "WorkloadError", "config_to_dict", "field_names", "get_preset", "list_presets", "load_config",
    "parse_set", "simulate", "with_overrides",
]
