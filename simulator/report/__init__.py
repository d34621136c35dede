"""Results and reporting: per-layer records, network totals, text / JSON / CSV, progress bars.

This is the reporting layer, the only place that formats text for people.
"""
from ._records import COUNTERS, STALL_CAUSES, LayerTiming, UnitStats
from ._result import (LayerResult, Result, accelerator_label, csv_text, data_label, layer_ratios, safe_output_path,
                      write_atomic)
from ._progress import ProgressBar, network_progress, progress_bar, progress_lines

__all__ = ["COUNTERS", "LayerResult", "LayerTiming", "ProgressBar", "Result", "STALL_CAUSES", "UnitStats",
           "accelerator_label", "csv_text", "data_label", "layer_ratios", "network_progress", "progress_bar",
           "progress_lines", "safe_output_path", "write_atomic"]
