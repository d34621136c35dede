"""Results and reporting: per-layer records, network totals, text / JSON / CSV, progress bars.

This is the reporting layer, the only place that formats text for people.
"""
from ._records import COUNTERS, STALL_CAUSES, LayerTiming, UnitStats
from ._result import (LayerResult, Result, accelerator_label, csv_text, data_label, layer_ratios, safe_output_path,
                      write_atomic)
from ._glossary import COLUMN_GLOSSARY, TABLE_HEADER_GLOSSARY, glossary_text
from ._progress import ProgressBar, network_progress, progress_bar, progress_lines
from ._output import STDOUT, check_output_dir, check_output_path, check_output_paths
from ._config_text import config_rows, config_table, config_toml

__all__ = ["COLUMN_GLOSSARY", "COUNTERS", "LayerResult", "LayerTiming", "ProgressBar", "Result", "STALL_CAUSES",
           "TABLE_HEADER_GLOSSARY", "UnitStats", "glossary_text",
           "accelerator_label", "csv_text", "data_label", "layer_ratios", "network_progress", "progress_bar",
           "progress_lines", "safe_output_path", "write_atomic",
           "config_rows", "config_table", "config_toml", "STDOUT", "check_output_dir", "check_output_path",
           "check_output_paths"]
