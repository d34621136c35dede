"""Workloads: layers, networks, the model zoo, density profiles and synthetic data."""
from ._errors import (ConfigError, FunctionalMismatchError, LimitError, MappingError, SparsesimError, TraceError,
                      WorkloadError, is_int, is_number, suggest)
from ._limits import (DEFAULT_MEMORY_LIMIT_GIB, MEMORY_LIMIT_ENV, check_memory, memory_limit_bytes,
                      network_memory_bytes)
from ._network import ACTIVATIONS, OPS, Layer, Network, NetworkBuilder
from ._parallel import NoAliasCompiler, count_nonzero, no_huge_pages, one_blas_thread, run_blas_chunks, run_chunks
from ._onnx import (SUPPORTED_ONNX_OPS, USER_NETWORK_SUFFIXES, OnnxImport, from_onnx, import_onnx, load_user_network,
                    parse_input_shape)
from ._pruning import PRUNING_METHODS, prune_weights
from ._profiles import DensityProfile, default_profile_for, get_profile, list_profiles, uniform_profile
from ._synthetic import (child_seed, image_input, normalized_image, sample_image, sample_photo_id, synthetic_activation, synthetic_bias,
                         synthetic_weights)
from ._scalesim import SCALESIM_COLUMNS, ScaleSimRow, from_scalesim_csv, read_scalesim_csv, scalesim_networks
from ._trace import TRACE_FORMAT, Trace, load_trace, quantize_q88, save_trace
from ._zoo import get_network, list_networks

__all__ = [
    "ACTIVATIONS", "OPS", "PRUNING_METHODS", "prune_weights", "ConfigError", "DensityProfile", "FunctionalMismatchError", "Layer", "MappingError",
    "Network", "NetworkBuilder", "SparsesimError", "TraceError", "WorkloadError", "child_seed",
    "default_profile_for", "get_network", "get_profile", "image_input", "list_networks", "normalized_image", "list_profiles",
    "is_int", "is_number", "suggest", "TRACE_FORMAT", "Trace", "load_trace", "quantize_q88", "save_trace", "sample_image", "sample_photo_id", "synthetic_activation", "synthetic_bias", "synthetic_weights", "uniform_profile",
    # bring your own network (docs/bring_your_own.md)
    "SCALESIM_COLUMNS", "SUPPORTED_ONNX_OPS", "ScaleSimRow", "USER_NETWORK_SUFFIXES", "from_onnx", "from_scalesim_csv",
    "OnnxImport", "import_onnx", "load_user_network", "parse_input_shape", "read_scalesim_csv", "scalesim_networks",
    # memory limits checked before allocating
    "DEFAULT_MEMORY_LIMIT_GIB", "LimitError", "MEMORY_LIMIT_ENV", "check_memory", "memory_limit_bytes",
    "network_memory_bytes",
    # serial numba kernels run in parallel (shared with the simulator's kernels)
    "NoAliasCompiler", "count_nonzero", "no_huge_pages", "one_blas_thread", "run_blas_chunks", "run_chunks",
]
