"""Whole-network runs: traces -> functional math -> timing -> results."""
from ._data_cache import clear_tensor_cache, tensor_cache_info
from ._network_run import PRUNING_CHOICES, TRACE_MODES, Simulator, simulate

__all__ = ["PRUNING_CHOICES", "TRACE_MODES", "Simulator", "clear_tensor_cache", "simulate", "tensor_cache_info"]
