"""What every reported column means, with its unit: one table for the README, ``--help`` and the tables.

Column names carry their unit where they have one (``latency_us``, ``dram_bytes``,
``energy_uj``, ``bandwidth_demand_bytes_per_cycle``); counts (cycles, MACs, passes)
and fractions (0..1, not percent) are named here.
"""
from __future__ import annotations

__all__ = ["COLUMN_GLOSSARY", "TABLE_HEADER_GLOSSARY", "glossary_text"]

#: Per-layer CSV / JSON column -> (unit, meaning). Nested counters are ``group.key`` columns.
COLUMN_GLOSSARY: dict[str, tuple[str, str]] = {
    "network, accelerator, dataflow": ("-", "what ran: the network, the config's name and the array's dataflow"),
    "name, op": ("-", "layer name and operation (conv, fc, maxpool, avgpool, add, concat)"),
    "where": ("-", "accelerator (timed), host (computed on the host CPU, not timed) or fused (a 2x2 max pool "
                   "done in the previous conv's PRE)"),
    "note": ("-", "why a layer is on the host or fused"),
    "in_shape, out_shape": ("pixels x pixels x channels", "H x W x C of the layer's input and output"),
    "input_density, output_density, weight_density": ("fraction 0..1", "share of non-zero values"),
    "macs_dense": ("MACs", "multiply-accumulates of the dense layer"),
    "macs_useful": ("MACs", "MACs with a non-zero activation and a non-zero weight"),
    "mac_ops": ("MACs", "MACs the array performed (zeros it skips are not counted)"),
    "m": ("MACs per output channel", "MACs that share one output channel (1, 2, 4 or 8)"),
    "passes": ("count", "passes over the input, one kernel-memory load each"),
    "input_resident": ("bool", "the compressed input stays in the input memory for all passes"),
    "cycles": ("clock cycles", "accelerator cycles of the layer (all passes)"),
    "latency_us": ("µs", "cycles / clock"),
    "mac_utilization": ("fraction 0..1", "useful MACs / (MACs x cycles)"),
    "efficiency": ("fraction, may exceed 1", "dense MACs / (MACs x cycles), the NullHop paper's metric"),
    "effective_gops": ("GOp/s", "2 x dense MACs per second (dense-equivalent throughput)"),
    "dram_read_bytes.KIND, dram_write_bytes.KIND": ("bytes", "DRAM traffic by kind (activations, weights, "
                                                             "biases, config)"),
    "dram_busy_cycles": ("clock cycles", "cycles in which the DRAM interface transfers"),
    "compute_cycles": ("clock cycles", "cycles the MAC array is busy"),
    "bandwidth_demand_bytes_per_cycle": ("bytes per cycle", "DRAM bytes / compute_cycles: the bandwidth needed "
                                                            "to stay compute-bound"),
    "units.UNIT.CAUSE": ("clock cycles", "per pipeline unit: busy, stall_input, stall_output, stall_dram, "
                                         "stall_weights, idle (they add up to cycles)"),
    "actions.ACTION": ("count", "countable actions the energy model charges"),
    "energy_pj.PART": ("pJ", "energy by component"),
    "pu_ops, pu_imbalance, pu_time_imbalance": ("MACs; ratio", "work per processing unit; slowest / mean PU "
                                                               "(1.0 without PUs)"),
    "handoff_columns": ("output columns", "width of a work unit handed between units"),
    "functional_check": ("-", "bit-exact (checked against the numpy reference), off, timing-only, or onnxruntime "
                              "(a host layer whose values come from the ONNX model's own run)"),
    "host_op": ("-", "for such a host layer, the ONNX op it stands for; empty otherwise"),
    "reference_check": ("-", "ONNX models: ok, or how many outputs of a conv/fc fall outside the tolerance of "
                             "the model's own float output; empty otherwise"),
    "reference_compared": ("count", "outputs compared in that check"),
    "reference_max_error_lsb": ("Q8.8 LSB", "largest deviation from the model's output in that check"),
}

#: Header of the ``sparsesim run`` table -> meaning (units in the header or here).
TABLE_HEADER_GLOSSARY: dict[str, str] = {
    "where": "acc (accelerator), host or fused",
    "m": "MACs per output channel",
    "pass": "passes over the input (kernel-memory loads)",
    "in dens": "input density (non-zero fraction)",
    "cycles": "clock cycles",
    "lat us": "latency in µs",
    "util": "useful MACs / (MACs x cycles)",
    "effic": "dense MACs / (MACs x cycles)",
    "GOp/s": "dense-equivalent throughput",
    "DRAM KiB": "DRAM bytes read and written, in KiB",
    "E uJ": "energy in µJ",
}


def glossary_text(width: int = 100) -> str:
    """The glossary as plain text (``--help`` epilog): table header, then CSV/JSON columns."""
    import textwrap

    lines = ["table columns:"]
    lines += textwrap.wrap(", ".join(f"{k} = {v}" for k, v in TABLE_HEADER_GLOSSARY.items()), width,
                           initial_indent="  ", subsequent_indent="  ")
    lines.append("CSV / JSON columns (unit; meaning):")
    for k, (unit, meaning) in COLUMN_GLOSSARY.items():
        lines += textwrap.wrap(f"{k} ({unit}): {meaning}", width, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)
