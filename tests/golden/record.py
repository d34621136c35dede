"""Record (or re-check) the golden results of every zoo network on every preset.

The fixture ``tests/golden/results.json.gz`` pins what the simulator computes:
per-layer cycles, every unit counter, DRAM bytes, action counts and energy,
plus network totals, for every zoo network on every bundled preset, both with
a propagated trace and timing-only. ``tests/test_golden.py`` re-runs the same
cases and requires identical numbers.

Regenerate (only when a change is *meant* to alter results)::

    python tests/golden/record.py
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).with_name("results.json.gz")

#: Per-layer fields that pin behaviour (ratios and densities follow from them,
#: but are pinned too so a reporting change cannot slip through).
LAYER_KEYS = ("name", "where", "m", "passes", "input_resident", "cycles", "macs_useful", "mac_ops",
              "input_density", "output_density", "weight_density", "dram_read_bytes", "dram_write_bytes",
              "units", "actions", "energy_pj", "pu_ops", "pu_imbalance", "pu_time_imbalance",
              "functional_check", "dram_busy_cycles", "handoff_columns")
MODES = ("propagated", "timing-only")


def case_ids(networks, presets):
    return [(n, p, mode) for n in networks for p in presets for mode in MODES]


def run_case(network: str, preset: str, mode: str) -> dict:
    """The pinned numbers of one (network, preset, mode) run, seed 0, default profile."""
    from simulator import simulate

    if mode == "propagated":
        res = simulate(network, preset, trace="propagated", check=False)
    else:
        res = simulate(network, preset, trace="synthetic", timing_only=True)
    d = json.loads(res.to_json())
    layers = [{k: layer.get(k) for k in LAYER_KEYS if k in layer} for layer in d["layers"]]
    return {"layers": layers, "totals": d["totals"]}


def record(networks, presets) -> dict:
    out = {}
    for n, p, mode in case_ids(networks, presets):
        out[f"{n}/{p}/{mode}"] = run_case(n, p, mode)
        print(f"recorded {n}/{p}/{mode}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    from simulator import list_presets
    from workloads import list_networks

    data = record(list_networks(), list_presets())
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    FIXTURE.write_bytes(gzip.compress(raw, mtime=0))
    print(f"wrote {FIXTURE} ({len(data)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
