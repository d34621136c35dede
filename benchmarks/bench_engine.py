"""The two implementations of the event model side by side, in one process (not a test).

Usage::

    python benchmarks/bench_engine.py [--repeat 3] [--networks vgg16 resnet50-1cluster] [--skip-cold]

For each network (timing-only, synthetic trace) the passes of every accelerator layer are
collected once through the public API (``Simulator.run``'s observer and the dataflow's
``layer_work``); then every pass is timed with ``simulate_pipeline(..., engine=...)``,
the engines alternating, ``--repeat`` times; the minimum CPU time (``time.process_time``)
is reported, and every pass must give the same ``PassTiming`` under both engines.
``resnet50-1cluster`` is ResNet-50 on one 16-MAC cluster (the sweep's slowest point).
Without ``--skip-cold`` the compiled kernel's compile time is measured in a fresh process
with an empty ``NUMBA_CACHE_DIR``. The load average is printed at the start and the end.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time

from dataflows import get_dataflow
from simulator import Simulator
from simulator.engine import ENGINES, simulate_pipeline

NETWORKS = {"vgg16": ("vgg16", {}),
            "resnet50-1cluster": ("resnet50", {"array.num_clusters": 1, "array.macs_per_cluster": 16})}

_COLD = """
import time, numpy as np
from simulator.engine import simulate_pipeline
c0 = time.process_time()
simulate_pipeline(["a", "b"], [np.array([1, 2]), np.array([2, 1])], [4], dram_units=(0, 1), shared_dram=True)
print(time.process_time() - c0)
"""


def _passes(name: str) -> list:
    """Every pass of every accelerator layer of ``name``, as simulate_pipeline's arguments."""
    network, overrides = NETWORKS[name]
    sim = Simulator("nullhop", overrides)
    flow = get_dataflow(sim.config.array.dataflow)
    runs = []

    def observe(sched, x, written, w):
        work = flow.layer_work(sched, x, written, sim.config, w)
        units = list(flow.units)
        carry = 0
        for i, pw in enumerate(work.passes):
            nxt = work.passes[i + 1] if i + 1 < len(work.passes) else None
            prefetch = nxt.load_cycles if nxt is not None and nxt.prefetched else 0
            args = dict(units=units, service=pw.service, capacities=pw.capacities, alloc=pw.alloc or None,
                        free=pw.free or None, load_cycles=carry if pw.prefetched else pw.load_cycles,
                        load_unit=units[0], prefetch_cycles=prefetch, dram_units=pw.dram_units,
                        shared_dram=pw.shared_dram)
            carry = simulate_pipeline(**args).carry_cycles
            runs.append(args)

    sim.run(network, trace="synthetic", timing_only=True, observer=observe)
    return runs


def _time(passes: list, engine: str) -> tuple[float, list]:
    t0 = time.process_time()
    out = [simulate_pipeline(**a, engine=engine) for a in passes]
    return time.process_time() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--skip-cold", action="store_true")
    args = ap.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in args.networks:
        passes = _passes(name)
        best = dict.fromkeys(ENGINES, float("inf"))
        for _ in range(args.repeat):
            results = {}
            for engine in ENGINES:
                cpu, results[engine] = _time(passes, engine)
                best[engine] = min(best[engine], cpu)
            same = all(dataclasses.asdict(a) == dataclasses.asdict(b)
                       for a, b in zip(results["compiled"], results["simpy"]))
            if not same:
                print(f"{name}: the engines disagree", file=sys.stderr)
                return 1
        items = sum(len(a["service"][0]) for a in passes)
        print(f"{name}: {len(passes)} passes, {items} work units; simulate_pipeline CPU s (min of {args.repeat}): "
              + ", ".join(f"{e} {best[e]:.3f}" for e in ENGINES)
              + f"; simpy / compiled = {best['simpy'] / best['compiled']:.1f}x; identical results")
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            cold = float(subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True,
                                        check=True).stdout)
            warm = float(subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True,
                                        check=True).stdout)
        print(f"compiled kernel, first call in a process: {cold:.2f} s CPU with an empty numba cache, "
              f"{warm:.2f} s CPU from the cache")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
