"""Studies over many runs: parameter sweeps, dataflow comparisons, and plots."""
from ._compare import Comparison, compare_dataflows
from ._sweep import GRID_SHORTHANDS, SCALE_IO_FIELDS, SweepResult, load_sweep, parse_grid, sweep
from ._plots import (RESULT_PLOT_KINDS, SWEEP_PLOT_KINDS, plot_bandwidth_demand, plot_cycle_breakdown,
                     plot_dram_traffic, plot_energy_breakdown, plot_file, plot_roofline, plot_sweep, plot_utilization)

__all__ = ["Comparison", "GRID_SHORTHANDS", "RESULT_PLOT_KINDS", "SCALE_IO_FIELDS", "SWEEP_PLOT_KINDS",
           "SweepResult", "compare_dataflows", "load_sweep", "parse_grid", "plot_bandwidth_demand",
           "plot_cycle_breakdown", "plot_dram_traffic", "plot_energy_breakdown", "plot_file", "plot_roofline",
           "plot_sweep", "plot_utilization", "sweep"]
