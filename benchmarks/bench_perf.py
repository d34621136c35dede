"""Performance targets of sparsesim, measured side by side with PyTorch in one run (not a test).

Usage::

    python benchmarks/bench_perf.py [--repeat 3] [--skip-torch] [--skip-cold]
        [--scalesim] [--scalesim-python .scalesim-venv/bin/python] [--scalesim-timeout 180]
        [--markdown FILE]

Every measurement runs in a fresh subprocess and is repeated ``--repeat`` times; the
minimum is reported (the machine may be shared: the load average is printed at the
start and the end). Measured, each against its target:

* in-process, warm (numba's on-disk cache filled; the kernels loaded by one warm-up
  call on ``roshambonet`` in the same mode, so the per-process seed cache holds nothing
  of the measured network): ``simulate("vgg16")`` full (propagated photo, every layer
  checked bit for bit against the float64 BLAS reference, timing), as a ratio to a
  PyTorch fp32 VGG16 forward measured in the same run; VGG16 timing-only; ResNet-50
  full; MobileNet-v2 full;
* an 8-point ResNet-50 timing-only sweep over ``array.num_clusters`` 1..128 (16 MACs per
  cluster) with ``simulator.sweep``, 1 and 2 workers (the sweep call, imports excluded), and the
  ceiling of its 2-worker ratio on this machine: the same points in 1 and 2 processes forked from
  one that has everything loaded, plus the start-up every sweep process pays before its first point;
* the whole process ``sparsesim run vgg16 --quiet`` warm, and cold (after deleting the
  numba cache files of the sparsesim packages; with the tensor cache filled, emptied, and off),
  with its peak RSS; split into the import of the command line, numba's compile (cold; per
  kernel) or cache load (warm) of the kernels' first calls, and the rest.

Every child runs with Python's bytecode cache, the packages' bytecode compiled once at the start
(as ``pip install`` does; an editable install has none, and compiling the sources again in every
process would add about 0.13 s to each import).

Every warm measurement is made twice: with the on-disk tensor cache empty (the synthetic
weights and maps are drawn: the first run of a network and seed on a machine) and filled
(they are read from disk: every later run). The script uses its own temporary cache
directory (``SPARSESIM_CACHE_DIR``), deleted at the end.

PyTorch (if importable): VGG16 fp32 in plain ``torch.nn`` (torchvision layer shapes),
eval mode, 2 threads, batch 1, 224x224; median of 5 forwards after 2 warm-ups.

SCALE-Sim v3 (``--scalesim``; needs its own venv, numpy 2.3.5 / pandas 2.3.3, see
docs/performance.md): VGG16 at the repo's default 32x32 weight-stationary config (64 kB
SRAMs, CALC bandwidth), the whole network in one process with traces off, killed after
``--scalesim-timeout`` seconds, in a temporary directory that is deleted afterwards.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP_CLUSTERS = (1, 2, 4, 8, 16, 32, 64, 128)   # x 16 MACs per cluster = 16 .. 2048 MACs

# ----------------------------------------------------------------- children
_SIM_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from simulator import simulate
t1 = time.perf_counter()
net, mode = sys.argv[1], sys.argv[2]
kw = dict(trace="propagated", check=True) if mode == "full" else dict(trace="synthetic", timing_only=True)
simulate("roshambonet", "nullhop", **kw)          # loads the numba kernels from their cache
t2 = time.perf_counter()
r = simulate(net, "nullhop", **kw)
t3 = time.perf_counter()
simulate(net, "nullhop", **kw)                    # again: the seeded tensors come from the cache
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "warmup_s": t2 - t1, "run_s": t3 - t2, "repeat_s": t4 - t3,
                  "cycles": int(r.totals["cycles"]),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_SWEEP_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from simulator import sweep
t1 = time.perf_counter()
net, workers = sys.argv[1], int(sys.argv[2])
clusters = [int(x) for x in sys.argv[3].split(",")]
res = sweep(net, "nullhop", grid={"array.num_clusters": clusters}, overrides={"array.macs_per_cluster": 16},
            workers=workers, trace="synthetic", run_options={"timing_only": True}, progress=False)
t2 = time.perf_counter()
cycles = [int(row["cycles"]) for row in res.totals_rows()]
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"import_s": t1 - t0, "run_s": t2 - t1, "cycles": sum(cycles), "points": cycles,
                  "peak_rss_mib": rss / 1024}))
"""

# The most a 2-worker sweep could gain here, process start aside: one process loads the kernels and the
# tensors (one point), then 1 or 2 processes forked from it (nothing left to start or load) take the same
# points from a shared counter, in the sweep's order. Numba's fork-safe threading layer and one thread
# per library, so no idle pool spins on the other process's core.
_SWEEP_CEILING_CHILD = r"""
import json, multiprocessing as mp, sys, time
from simulator import simulate
net = sys.argv[1]
clusters = [int(x) for x in sys.argv[2].split(",")]
repeat = int(sys.argv[3])

def point(c):
    simulate(net, "nullhop", overrides={"array.num_clusters": c, "array.macs_per_cluster": 16},
             trace="synthetic", timing_only=True)

t0 = time.perf_counter()
point(clusters[0])
t1 = time.perf_counter()
point(clusters[0])
t2 = time.perf_counter()
ctx = mp.get_context("fork")

def run(nproc):
    counter = ctx.Value("i", 0)

    def work():
        while True:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            if i >= len(clusters):
                return
            point(clusters[i])

    start = time.perf_counter()
    kids = [ctx.Process(target=work) for _ in range(nproc - 1)]
    for k in kids:
        k.start()
    work()
    for k in kids:
        k.join()
        if k.exitcode != 0:
            raise SystemExit(f"worker exited with {k.exitcode}")
    return time.perf_counter() - start

one, two = [], []
for _ in range(repeat):
    one.append(run(1))
    two.append(run(2))
print(json.dumps({"first_point_s": t1 - t0, "again_s": t2 - t1, "one_s": min(one), "two_s": min(two),
                  "one_all": [round(x, 3) for x in one], "two_all": [round(x, 3) for x in two]}))
"""

# `python -m simulator run ...`, with the import of the command line and numba's compile (cold) or
# cache load (warm) of each kernel's first call timed on the way; the split goes to stderr.
_CLI_INNER = r"""
import json, sys, time
t0 = time.perf_counter()
import simulator.cli
t1 = time.perf_counter()
from numba.core.dispatcher import Dispatcher
kernels, depth, orig = {}, [0], Dispatcher._compile_for_args
def timed(self, *args, **kws):
    depth[0] += 1
    t = time.perf_counter()
    try:
        return orig(self, *args, **kws)
    finally:
        depth[0] -= 1
        if depth[0] == 0:
            name = self.py_func.__qualname__
            kernels[name] = kernels.get(name, 0.0) + time.perf_counter() - t
Dispatcher._compile_for_args = timed
code = simulator.cli.console_main()      # as the `sparsesim` script
t2 = time.perf_counter()
print("BENCH " + json.dumps({"import_s": t1 - t0, "main_s": t2 - t1, "compile_s": sum(kernels.values()),
                             "kernels": kernels}), file=sys.stderr)
sys.exit(code)
"""

_CLI_CHILD = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
out = subprocess.run([sys.executable, "-c", sys.argv[1], "run", "vgg16", "--quiet"], capture_output=True, text=True)
wall = time.perf_counter() - t0
if out.returncode != 0:
    sys.exit(out.stderr[-3000:])
split = json.loads(out.stderr.split("BENCH ")[-1])
print(json.dumps({"wall_s": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  **split}))
"""

_TORCH_CHILD = r"""
import json, resource, statistics, time
import torch
from torch import nn
torch.set_num_threads(2)
cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
layers, c = [], 3
for v in cfg:
    if v == "M":
        layers.append(nn.MaxPool2d(2, 2))
    else:
        layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
        c = v
model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
                      nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                      nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000)).eval()
x = torch.randn(1, 3, 224, 224)
times = []
with torch.inference_mode():
    for i in range(7):
        t = time.perf_counter(); model(x); dt = time.perf_counter() - t
        if i >= 2:
            times.append(dt)
print(json.dumps({"median_s": statistics.median(times), "times": times, "torch": torch.__version__,
                  "threads": torch.get_num_threads(),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_SCALESIM_CHILD = r"""
import sys
from scalesim.scale_sim import scalesim
s = scalesim(save_disk_space=True, verbose=True, config=sys.argv[1], topology=sys.argv[2], layout=sys.argv[3])
s.run_scale(top_path=sys.argv[4])
print("SCALESIM_DONE", flush=True)
"""

_SCALE_CFG = """[general]
run_name = vgg16_32x32

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     32
IfmapSramSzkB:    64
FilterSramSzkB:   64
OfmapSramSzkB:    64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

# name, padded IFMAP H=W, filter, channels, filters, stride (SCALE-Sim does not pad)
_VGG16_TOPO = [
    ("conv1_1", 226, 3, 3, 64, 1), ("conv1_2", 226, 3, 64, 64, 1),
    ("conv2_1", 114, 3, 64, 128, 1), ("conv2_2", 114, 3, 128, 128, 1),
    ("conv3_1", 58, 3, 128, 256, 1), ("conv3_2", 58, 3, 256, 256, 1), ("conv3_3", 58, 3, 256, 256, 1),
    ("conv4_1", 30, 3, 256, 512, 1), ("conv4_2", 30, 3, 512, 512, 1), ("conv4_3", 30, 3, 512, 512, 1),
    ("conv5_1", 16, 3, 512, 512, 1), ("conv5_2", 16, 3, 512, 512, 1), ("conv5_3", 16, 3, 512, 512, 1),
    ("fc6", 7, 7, 512, 4096, 1), ("fc7", 1, 1, 4096, 4096, 1), ("fc8", 1, 1, 4096, 1000, 1),
]


# ----------------------------------------------------------------- helpers
def _load() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def _clear_numba_cache() -> int:
    """Delete numba's on-disk cache (*.nbi, *.nbc) of the sparsesim packages so the next run compiles.

    The packages are those the children import: ``python -c`` looks in the working directory
    first, where this script's own imports look in its directory and the installed packages."""
    code = "import dataflows, simulator, workloads; print('\\n'.join(m.__file__ for m in (dataflows, simulator, workloads)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n = 0
    for init in out.stdout.splitlines():
        root = Path(init).parent
        for f in list(root.rglob("*.nbi")) + list(root.rglob("*.nbc")):
            f.unlink()
            n += 1
    return n


def _clear_tensor_cache() -> None:
    """Empty the script's own tensor cache directory (``SPARSESIM_CACHE_DIR``)."""
    d = Path(os.environ["SPARSESIM_CACHE_DIR"])
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)


def _child(code: str, *args: str, fresh: bool = False, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a new interpreter; ``fresh``: with the tensor cache emptied first; ``env``: extra
    environment variables."""
    if fresh:
        _clear_tensor_cache()
    t0 = time.perf_counter()
    child_env = {**os.environ, **(env or {})}
    # Python's bytecode cache on, as for an installed package (pip compiles it at install).
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=child_env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["wall_s"] = wall
    return rec


def _scalesim(python: str, timeout: float) -> dict:
    """Run SCALE-Sim v3 on VGG16 (32x32 WS) in one process with a time limit."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-scalesim-"))
    try:
        cfg, topo, layout, out = tmp / "scale.cfg", tmp / "vgg16.csv", tmp / "layout.csv", tmp / "out"
        cfg.write_text(_SCALE_CFG)
        rows = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
        rows += [f"{n}, {h}, {h}, {r}, {r}, {c}, {k}, {s}," for n, h, r, c, k, s in _VGG16_TOPO]
        topo.write_text("\n".join(rows) + "\n")
        layout.write_text("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor,\n")
        log = tmp / "stdout.txt"
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            p = subprocess.Popen([python, "-u", "-c", _SCALESIM_CHILD, str(cfg), str(topo), str(layout), str(out)],
                                 stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            finished = True
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                finished = False
                os.killpg(p.pid, 9)     # the process group of the child started just above
                p.wait()
        wall = time.perf_counter() - t0
        text = log.read_text(errors="replace")
        layer_cycles = [int(float(x)) for x in re.findall(r"^Total cycles: ([0-9.]+)", text, re.M)]
        ok = finished and p.returncode == 0 and "SCALESIM_DONE" in text
        if finished and not ok:
            raise RuntimeError(f"SCALE-Sim failed ({p.returncode}):\n{text[-3000:]}")
        return {"finished": ok, "wall_s": wall, "layers_done": len(layer_cycles), "layers": len(_VGG16_TOPO),
                "cycles": sum(layer_cycles)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kernel_list(kernels: dict[str, float]) -> str:
    """``name s, ...`` of the kernels compiled, slowest first."""
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(kernels.items(), key=lambda kv: -kv[1]))


def _fmt_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _best(code: str, args: tuple[str, ...], repeat: int, keys: tuple[str, ...], fresh: bool = False,
          env: dict[str, str] | None = None) -> dict:
    """Run a child ``repeat`` times; per key, the minimum over the runs (the least disturbed)."""
    runs = [_child(code, *args, fresh=fresh, env=env) for _ in range(repeat)]
    best = dict(runs[0])
    for k in keys:
        best[k] = min(r[k] for r in runs)
    best["all"] = {k: [round(r[k], 3) for r in runs] for k in keys}
    return best


# ----------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the minimum is reported")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold run (it deletes the numba cache)")
    ap.add_argument("--scalesim", action="store_true", help="also run SCALE-Sim v3 on VGG16")
    ap.add_argument("--scalesim-python", default=".scalesim-venv/bin/python",
                    help="interpreter of a venv with scalesim==3.0.0, numpy==2.3.5, pandas==2.3.3")
    ap.add_argument("--scalesim-timeout", type=float, default=180.0)
    ap.add_argument("--markdown", metavar="FILE", help="also write the Markdown output to FILE")
    args = ap.parse_args(argv)
    rep = max(1, args.repeat)
    lines: list[str] = []
    tensors = tempfile.mkdtemp(prefix="bench-tensors-")
    os.environ["SPARSESIM_CACHE_DIR"] = tensors        # inherited by every child
    atexit.register(shutil.rmtree, tensors, ignore_errors=True)
    # The packages' bytecode, compiled once as `pip install` does (an editable install has none).
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(root / p) for p in ("simulator", "dataflows", "workloads"))],
                   check=True)

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])
    emit(f"Command: `{cmd}`  ")
    emit(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
         f"{platform.system()} {platform.release()}  ")
    emit(f"Load average (1/5/15 min) at start: {_load()}  ")
    emit(f"Each number: minimum of {rep} runs, each in a fresh process.")
    emit()

    torch_s = None
    if not args.skip_torch:
        try:
            t = _best(_TORCH_CHILD, (), rep, ("median_s",))
        except Exception as e:  # noqa: BLE001 - torch missing or broken: report, keep going
            emit(f"PyTorch: not measured ({type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''})  ")
        else:
            torch_s = t["median_s"]
            emit(f"PyTorch {t['torch']} fp32 VGG16 forward (plain torch.nn, eval, {t['threads']} threads, batch 1, "
                 f"224x224): {torch_s * 1e3:.0f} ms (median of 5 after 2 warm-ups; per run {t['all']['median_s']})  ")

    emit()
    emit("In-process, warm (kernels loaded by a warm-up call on roshambonet; first call for the network), with "
         "the tensor cache empty (weights and maps drawn) and filled (read from disk):")
    emit()
    emit(_fmt_row(["network", "mode", "simulate() s, cache empty", "simulate() s, cache filled",
                   "same call again s (seed cache)", "simulated cycles", "peak RSS MiB",
                   "runs (empty; filled)"]))
    emit(_fmt_row(["---"] * 2 + ["---:"] * 5 + ["---"]))
    sims, sims0 = {}, {}
    for net, mode in (("vgg16", "full"), ("vgg16", "timing-only"), ("resnet50", "full"), ("mobilenet_v2", "full")):
        r0 = _best(_SIM_CHILD, (net, mode), rep, ("run_s", "peak_rss_mib"), fresh=True)
        r = _best(_SIM_CHILD, (net, mode), rep, ("run_s", "repeat_s", "peak_rss_mib"))
        if r0["cycles"] != r["cycles"]:
            raise RuntimeError(f"{net} {mode}: {r0['cycles']} cycles with the tensors drawn, {r['cycles']} from disk")
        sims[(net, mode)], sims0[(net, mode)] = r, r0
        emit(_fmt_row([net, mode, f"{r0['run_s']:.2f}", f"{r['run_s']:.2f}", f"{r['repeat_s']:.2f}",
                       f"{r['cycles']:,}", f"{max(r0['peak_rss_mib'], r['peak_rss_mib']):.0f}",
                       f"{r0['all']['run_s']}; {r['all']['run_s']}"]))
    emit()

    clusters = SWEEP_CLUSTERS
    sweeps, sweeps0 = {}, {}
    for workers in (1, 2):
        sweep_args = ("resnet50", str(workers), ",".join(map(str, clusters)))
        r0 = _best(_SWEEP_CHILD, sweep_args, rep, ("run_s",), fresh=True)
        r = _best(_SWEEP_CHILD, sweep_args, rep, ("run_s",))
        sweeps[workers], sweeps0[workers] = r, r0
        emit(f"ResNet-50 {len(clusters)}-point timing-only sweep (`simulator.sweep`, array.num_clusters "
             f"{list(clusters)} x 16 MACs), {workers} worker(s): tensor cache empty {r0['run_s']:.2f} s "
             f"(runs {r0['all']['run_s']}), filled {r['run_s']:.2f} s (runs {r['all']['run_s']}), "
             f"{r['cycles']:,} cycles in total  ")
    # Numba's layer and the thread counts are read when the child starts.
    single = {k: "1" for k in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    ceil = _child(_SWEEP_CEILING_CHILD, "resnet50", ",".join(map(str, clusters)), str(rep),
                  env={**single, "NUMBA_THREADING_LAYER": "workqueue"})
    startup = ceil["first_point_s"] - ceil["again_s"]
    sweep_ceiling = (startup + ceil["one_s"]) / (startup + ceil["two_s"])
    emit(f"Ceiling of the 2-worker ratio (the same {len(clusters)} points in processes forked from one that has "
         f"loaded everything, so no process starts, imports or loads a kernel): 1 process {ceil['one_s']:.2f} s "
         f"(runs {ceil['one_all']}), 2 processes {ceil['two_s']:.2f} s (runs {ceil['two_all']}), "
         f"{ceil['one_s'] / ceil['two_s']:.2f}x. A fresh process's first point takes {startup:.2f} s longer than "
         f"the same point again (numba's start-up and the kernels' cache loads, the tensors read from disk); "
         f"every sweep process pays it before its first point, so a sweep in a fresh process can reach at most "
         f"({startup:.2f} + {ceil['one_s']:.2f}) / ({startup:.2f} + {ceil['two_s']:.2f}) = {sweep_ceiling:.2f}x "
         f"with 2 workers  ")
    emit()

    cli_cold = None
    if not args.skip_cold:
        colds = []
        for _ in range(rep):
            _clear_numba_cache()
            colds.append(_child(_CLI_CHILD, _CLI_INNER, fresh=True))
        best_cold = min(colds, key=lambda c: c["wall_s"])
        cli_cold = {"wall_s": best_cold["wall_s"], "peak_rss_mib": max(c["peak_rss_mib"] for c in colds)}
        emit(f"`sparsesim run vgg16 --quiet`, cold (numba and tensor caches deleted first): {cli_cold['wall_s']:.2f} s "
             f"(runs {[round(c['wall_s'], 2) for c in colds]}), peak RSS {cli_cold['peak_rss_mib']:.0f} MiB  ")
        emit(f"  of the fastest cold run: import {best_cold['import_s']:.2f} s, numba compile "
             f"{best_cold['compile_s']:.2f} s ({_kernel_list(best_cold['kernels'])}), the rest of the run "
             f"{best_cold['main_s'] - best_cold['compile_s']:.2f} s  ")
        _child(_CLI_CHILD, _CLI_INNER)     # fills the tensor cache
        colds_filled = []
        for _ in range(rep):
            _clear_numba_cache()
            colds_filled.append(_child(_CLI_CHILD, _CLI_INNER)["wall_s"])
        cli_cold["filled_wall_s"] = min(colds_filled)
        emit(f"`sparsesim run vgg16 --quiet`, cold numba cache, tensor cache filled: {min(colds_filled):.2f} s "
             f"(runs {[round(c, 2) for c in colds_filled]})  ")
        off = {"SPARSESIM_CACHE_DIR": "off"}
        colds_off = []
        for _ in range(rep):
            _clear_numba_cache()
            colds_off.append(_child(_CLI_CHILD, _CLI_INNER, env=off)["wall_s"])
        cli_off = _best(_CLI_CHILD, (_CLI_INNER,), rep, ("wall_s",), env=off)
        cli_cold["off_wall_s"], cli_cold["off_warm_s"] = min(colds_off), cli_off["wall_s"]
        emit(f"With the tensor cache off (`SPARSESIM_CACHE_DIR=off`): cold {min(colds_off):.2f} s (runs "
             f"{[round(c, 2) for c in colds_off]}), warm {cli_off['wall_s']:.2f} s (runs {cli_off['all']['wall_s']})  ")
    _child(_CLI_CHILD, _CLI_INNER)     # fills the tensor cache (a no-op after the cold runs)
    cli = _best(_CLI_CHILD, (_CLI_INNER,), rep, ("wall_s", "import_s", "compile_s", "main_s"))
    warm_rss = max(cli["peak_rss_mib"], cli_cold["peak_rss_mib"] if cli_cold else 0)
    cli0 = _best(_CLI_CHILD, (_CLI_INNER,), rep, ("wall_s",), fresh=True)
    emit(f"`sparsesim run vgg16 --quiet`, warm numba cache, tensor cache empty: {cli0['wall_s']:.2f} s "
         f"(runs {cli0['all']['wall_s']})  ")
    emit(f"`sparsesim run vgg16 --quiet`, warm (both caches filled): {cli['wall_s']:.2f} s (runs {cli['all']['wall_s']}), "
         f"peak RSS {cli['peak_rss_mib']:.0f} MiB  ")
    emit(f"  warm, minimum per part: import of the command line {cli['import_s']:.2f} s "
         f"(runs {cli['all']['import_s']}), numba cache loads {cli['compile_s']:.2f} s, the command after the "
         f"import {cli['main_s']:.2f} s, so interpreter start and exit about "
         f"{cli['wall_s'] - cli['import_s'] - cli['main_s']:.2f} s  ")
    emit()

    def status(ok: bool | None) -> str:
        return "–" if ok is None else ("**met**" if ok else "**missed**")

    def target(name: str, value, limit: float, fmt, at_least: bool = False) -> None:
        """A row with the tensor cache filled (``value(0)``) and empty (``value(1)``)."""
        def ok(x):
            return None if x is None else (x >= limit if at_least else x <= limit)
        filled, empty = value(0), value(1)
        rows.append((name, fmt(filled), status(ok(filled)), fmt(empty), status(ok(empty))))

    rows = []
    both = (sims, sims0)
    if torch_s:
        target("VGG16 full <= 5x PyTorch fp32 forward", lambda i: both[i][("vgg16", "full")]["run_s"] / torch_s, 5.0,
               lambda x: f"{x * torch_s:.2f} s / {torch_s:.3f} s = {x:.1f}x")
        target("(moonshot) VGG16 full <= 3x PyTorch", lambda i: both[i][("vgg16", "full")]["run_s"] / torch_s, 3.0,
               lambda x: f"{x:.1f}x")
    else:
        target("VGG16 full <= 5x PyTorch fp32 forward", lambda i: None, 0.0, lambda x: "PyTorch not measured")
    target("VGG16 timing-only <= 0.5 s", lambda i: both[i][("vgg16", "timing-only")]["run_s"], 0.5,
           lambda x: f"{x:.2f} s")
    target("ResNet-50 full <= 1.5 s", lambda i: both[i][("resnet50", "full")]["run_s"], 1.5, lambda x: f"{x:.2f} s")
    target("MobileNet-v2 full <= 1 s", lambda i: both[i][("mobilenet_v2", "full")]["run_s"], 1.0,
           lambda x: f"{x:.2f} s")
    sw = (sweeps, sweeps0)
    rows.append(("8-point ResNet-50 timing-only sweep <= 5 s",
                 f"{sweeps[1]['run_s']:.2f} s (1 worker), {sweeps[2]['run_s']:.2f} s (2 workers)",
                 status(min(sweeps[1]["run_s"], sweeps[2]["run_s"]) <= 5.0),
                 f"{sweeps0[1]['run_s']:.2f} s (1 worker), {sweeps0[2]['run_s']:.2f} s (2 workers)",
                 status(min(sweeps0[1]["run_s"], sweeps0[2]["run_s"]) <= 5.0)))
    target("sweep: 2 workers >= 1.8x faster than 1", lambda i: sw[i][1]["run_s"] / sw[i][2]["run_s"], 1.8,
           lambda x: f"{x:.2f}x", at_least=True)
    rows.append(("(the most a fresh process's sweep can reach here, see above)", f"{sweep_ceiling:.2f}x", "–", "", ""))
    if cli_cold:
        rows.append(("cold (numba compiling) `sparsesim run vgg16` <= 3x warm",
                     f"{cli_cold['filled_wall_s']:.2f} s / {cli['wall_s']:.2f} s = "
                     f"{cli_cold['filled_wall_s'] / cli['wall_s']:.1f}x",
                     status(cli_cold["filled_wall_s"] <= 3 * cli["wall_s"]),
                     f"{cli_cold['wall_s']:.2f} s / {cli0['wall_s']:.2f} s = {cli_cold['wall_s'] / cli0['wall_s']:.1f}x",
                     status(cli_cold["wall_s"] <= 3 * cli0["wall_s"])))
    rss = max(warm_rss, cli0["peak_rss_mib"])
    rows.append(("peak RSS of `sparsesim run vgg16` <= 1 GB", f"{warm_rss:.0f} MiB", status(warm_rss <= 1000),
                 f"{cli0['peak_rss_mib']:.0f} MiB", status(rss <= 1000)))
    target("whole process `sparsesim run vgg16 --quiet` <= 2 s warm", lambda i: (cli, cli0)[i]["wall_s"], 2.0,
           lambda x: f"{x:.2f} s")
    emit("Targets, with the tensor cache filled (every run after a network's first on the machine) and empty "
         "(its first run). A cold run has numba's cache deleted; its ratio is to the warm run in the same state of "
         "the tensor cache.")
    if cli_cold:
        emit(f"A machine's very first run (both caches empty) against a later run (both filled): "
             f"{cli_cold['wall_s']:.2f} s / {cli['wall_s']:.2f} s = {cli_cold['wall_s'] / cli['wall_s']:.1f}x; "
             f"with the tensor cache off in both: {cli_cold['off_wall_s']:.2f} s / {cli_cold['off_warm_s']:.2f} s = "
             f"{cli_cold['off_wall_s'] / cli_cold['off_warm_s']:.1f}x.")
    emit()
    emit("| target | tensor cache filled | | tensor cache empty | |")
    emit("| --- | --- | --- | --- | --- |")
    for row in rows:
        emit(_fmt_row(list(row)))
    emit()

    if args.scalesim:
        if not Path(args.scalesim_python).exists():
            emit(f"SCALE-Sim: not measured ({args.scalesim_python} missing)")
        else:
            s = _scalesim(args.scalesim_python, args.scalesim_timeout)
            if s["finished"]:
                emit(f"SCALE-Sim v3 VGG16 32x32 WS (traces off, one process): finished in {s['wall_s']:.0f} s, "
                     f"{s['cycles']:,} cycles  ")
            else:
                emit(f"SCALE-Sim v3 VGG16 32x32 WS (traces off, one process): did not finish in "
                     f"{args.scalesim_timeout:.0f} s ({s['layers_done']}/{s['layers']} layers done)  ")
        emit()
    emit(f"Load average (1/5/15 min) at end: {_load()}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
