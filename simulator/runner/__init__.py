"""Whole-network runs: traces -> functional math -> timing -> results."""
from ._network_run import PRUNING_CHOICES, TRACE_MODES, Simulator, simulate

__all__ = ["PRUNING_CHOICES", "TRACE_MODES", "Simulator", "simulate"]
