"""The floor of the functional path, layer by layer (not a test).

Usage::

    python benchmarks/bench_kernels.py [--network vgg16] [--repeat 5] [--layers conv1_2,conv4_2]

For every convolution on the accelerator of a propagated run (the real layer inputs and pruned
weights, captured with the run's observer), in one process, alternating, the minimum of
``--repeat`` calls of:

* ``gemm``: the float64 matrix products inside :func:`simulator.numerics.blas_conv2d_accumulators`
  alone: the very calls it makes (same operand views, shapes and outputs), replayed as it runs
  them: shared among the threads, BLAS held to one thread each (``workloads.run_blas_chunks``);
* ``blas``: the whole :func:`~simulator.numerics.blas_conv2d_accumulators` (so ``blas - gemm`` is
  the operand building around the GEMMs and the cast of the result);
* ``kernel``: :func:`~simulator.numerics.conv2d_accumulators`, the compressed-stream numba path
  (encode + accumulate over the non-zeros);
* ``torch``: ``torch.nn.functional.conv2d`` in fp32 on the same layer (if torch is importable),
  with as many threads as OpenBLAS.

Wall times (``time.perf_counter``) and the process CPU time of each column are printed, with the
load average at the start and the end: the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from simulator import simulate
from workloads import run_blas_chunks
from simulator import numerics as fn


def _gemm_calls(x, w, stride, padding, groups):
    """The ``np.matmul`` calls (operands and outputs) one reference call makes."""
    calls = []
    matmul = np.matmul

    def recording(a, b, out=None):
        calls.append((a, b, out))
        return matmul(a, b, out=out)
    np.matmul = recording
    try:
        fn.blas_conv2d_accumulators(x, w, stride, padding, groups)
    finally:
        np.matmul = matmul
    return calls


def _capture(network: str, names: set[str] | None):
    layers = []

    def observer(s, x, written, w):
        L = s.layer
        if L.op == "conv" and (names is None or L.name in names):
            layers.append((L.name, np.array(x), np.array(w), L.stride, L.padding, L.groups))
    simulate(network, "nullhop", trace="propagated", check=False, observer=observer)
    return layers


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="vgg16")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--layers", default=None, help="comma-separated layer names (default: all convolutions)")
    args = ap.parse_args(argv)
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1)))
    except ImportError:
        torch = None
    print(f"load average at start: {os.getloadavg()}")
    layers = _capture(args.network, set(args.layers.split(",")) if args.layers else None)

    cols = ["gemm", "blas", "kernel"] + (["torch"] if torch is not None else [])
    wall = {c: 0.0 for c in cols}
    cpu = {c: 0.0 for c in cols}
    print(f"{'layer':10s} {'in (H,W,C)':>16s} {'C_out':>5s} {'dense GMAC':>10s} {'in dens':>7s} "
          + " ".join(f"{c + ' ms':>10s}" for c in cols))
    dense_total = 0.0
    for name, x, w, stride, padding, groups in layers:
        calls = _gemm_calls(x, w, stride, padding, groups)
        fns = {
            "gemm": lambda: run_blas_chunks(lambda lo, hi: [np.matmul(a, b, out=o) for a, b, o in calls[lo:hi]],
                                            len(calls)),
            "blas": lambda: fn.blas_conv2d_accumulators(x, w, stride, padding, groups),
            "kernel": lambda: fn.conv2d_accumulators(x, w, stride, padding, groups),
        }
        if torch is not None:
            xt = torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1)[None].copy())
            wt = torch.from_numpy(w.astype(np.float32).transpose(0, 3, 1, 2).copy())

            def conv_torch(xt=xt, wt=wt, stride=stride, padding=padding, groups=groups):
                with torch.inference_mode():
                    return F.conv2d(xt, wt, stride=stride, padding=padding, groups=groups)
            fns["torch"] = conv_torch
        best_w = {c: float("inf") for c in cols}
        best_c = {c: float("inf") for c in cols}
        for _ in range(args.repeat):
            for c in cols:
                t0, c0 = time.perf_counter(), time.process_time()
                fns[c]()
                best_w[c] = min(best_w[c], time.perf_counter() - t0)
                best_c[c] = min(best_c[c], time.process_time() - c0)
        for c in cols:
            wall[c] += best_w[c]
            cpu[c] += best_c[c]
        Ho = (x.shape[0] + 2 * padding - w.shape[1]) // stride + 1
        Wo = (x.shape[1] + 2 * padding - w.shape[2]) // stride + 1
        dense = Ho * Wo * w.size / 1e9
        dense_total += dense
        print(f"{name:10s} {str(x.shape):>16s} {w.shape[0]:5d} {dense:10.2f} {np.count_nonzero(x) / x.size:7.2f} "
              + " ".join(f"{best_w[c] * 1e3:10.1f}" for c in cols))
    print(f"{'total wall':10s} {'':>16s} {'':>5s} {dense_total:10.2f} {'':>7s} "
          + " ".join(f"{wall[c] * 1e3:10.1f}" for c in cols))
    print(f"{'total CPU':10s} {'':>16s} {'':>5s} {'':>10s} {'':>7s} " + " ".join(f"{cpu[c] * 1e3:10.1f}" for c in cols))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
