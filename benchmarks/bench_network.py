"""Whole-network wall time and peak memory (not a test: numbers vary by machine).

Usage::

    python benchmarks/bench_network.py vgg16 resnet50 [--no-check] [--trace synthetic]

Each network runs in a fresh subprocess so that peak RSS is its own. The first
run of a fresh checkout includes numba compilation (cached afterwards), so the
script reports the first ("cold") and a second ("warm") run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from simulator import simulate
t1 = time.perf_counter()
r = simulate(sys.argv[1], "nullhop", check=sys.argv[2] == "1", trace=sys.argv[3])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "run_s": t2 - t1, "cycles": r.totals["cycles"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _clear_numba_cache() -> int:
    """Delete numba's on-disk cache of the sparsesim packages so the next run compiles."""
    import importlib.util
    from pathlib import Path
    n = 0
    for pkg in ("simulator", "workloads", "dataflows"):
        spec = importlib.util.find_spec(pkg)
        root = Path(spec.origin).parent
        for f in list(root.rglob("*.nbi")) + list(root.rglob("*.nbc")):
            f.unlink()
            n += 1
    return n


def _one(network: str, check: bool, trace: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, network, "1" if check else "0", trace],
                         check=True, capture_output=True, text=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["wall_s"] = time.perf_counter() - t0
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("networks", nargs="*", default=["vgg16", "resnet50"])
    ap.add_argument("--no-check", dest="check", action="store_false")
    ap.add_argument("--trace", default="propagated", choices=["propagated", "synthetic"])
    args = ap.parse_args()
    print(f"{'network':<14} {'run':<5} {'wall s':>8} {'sim s':>8} {'peak RSS MiB':>13} {'Mcycles/s':>10}")
    for net in args.networks:
        for label in ("cold", "warm"):
            if label == "cold":
                _clear_numba_cache()
            r = _one(net, args.check, args.trace)
            print(f"{net:<14} {label:<5} {r['wall_s']:>8.2f} {r['run_s']:>8.2f} {r['peak_rss_mib']:>13.0f} "
                  f"{r['cycles'] / r['run_s'] / 1e6:>10.1f}")


if __name__ == "__main__":
    main()
