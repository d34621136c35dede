"""Whole-network performance of sparsesim, side by side with PyTorch and SCALE-Sim (not a test).

Usage::

    python benchmarks/bench_perf.py [--networks vgg16 resnet50 mobilenet_v2] [--quick]
        [--skip-torch] [--skip-scalesim] [--scalesim-python .scalesim-venv/bin/python]
        [--scalesim-timeout 180] [--markdown FILE]

Measures, for every network, the full mode (``trace="propagated", check=True``,
what ``sparsesim run`` does) and the timing-only mode (``trace="synthetic",
timing_only=True``), each "cold" (after deleting the numba on-disk cache of
the sparsesim packages, so numba compiles) and "warm" (cache filled), plus an
8-point ResNet-50 timing-only sweep over 16..2048 MACs
(``array.num_clusters`` 1..128 at 16 MACs per cluster), serially and with 2
workers. Every measurement runs in a fresh subprocess, so its peak RSS
(``ru_maxrss`` of that process and of its own children) is its own.

PyTorch (if importable): VGG16 fp32 in plain ``torch.nn`` (torchvision layer
shapes), eval mode, 2 threads, batch 1, 224x224; median of 5 forwards after 2
warm-ups. The ratio printed is sparsesim VGG16 full warm wall / torch forward.

SCALE-Sim v3 (needs its own venv, numpy 2.3.5 / pandas 2.3.3, see
docs/performance.md): VGG16 at the repo's default 32x32 weight-stationary
config (64 kB SRAMs, CALC bandwidth), the whole network in one process with
traces off, killed after ``--scalesim-timeout`` seconds. Its config, topology
(padded inputs 226/114/58/30/16, fc6 as a 7x7 conv) and outputs live in a
temporary directory that is deleted afterwards.

Numbers depend on the machine and its load; the 1-minute load average is
printed at the start and the end.
"""
from __future__ import annotations

import argparse
import importlib.util
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

NETWORKS = ("vgg16", "resnet50", "mobilenet_v2")
SWEEP_CLUSTERS = (1, 2, 4, 8, 16, 32, 64, 128)   # x 16 MACs per cluster = 16 .. 2048 MACs

# ----------------------------------------------------------------- children
_SIM_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from simulator import simulate
t1 = time.perf_counter()
net, mode = sys.argv[1], sys.argv[2]
if mode == "full":
    r = simulate(net, "nullhop", trace="propagated", check=True)
else:
    r = simulate(net, "nullhop", trace="synthetic", timing_only=True)
t2 = time.perf_counter()
# The same call again in the same process: what every run after the first costs (kernels loaded).
if mode == "full":
    simulate(net, "nullhop", trace="propagated", check=True)
else:
    simulate(net, "nullhop", trace="synthetic", timing_only=True)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "run_s": t2 - t1, "repeat_s": t3 - t2, "cycles": int(r.totals["cycles"]),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_SWEEP_CHILD = r"""
import inspect, json, resource, sys, time
from concurrent.futures import ProcessPoolExecutor
t0 = time.perf_counter()
import simulator
from simulator import simulate
t1 = time.perf_counter()
net, workers = sys.argv[1], int(sys.argv[2])
clusters = [int(x) for x in sys.argv[3].split(",")]

def point(n):
    r = simulate(net, "nullhop", overrides={"array.num_clusters": n, "array.macs_per_cluster": 16},
                 trace="synthetic", timing_only=True)
    return int(r.totals["cycles"])

how = ""
if "timing_only" in inspect.signature(simulator.sweep).parameters:
    res = simulator.sweep(net, "nullhop", grid={"array.num_clusters": clusters},
                          overrides={"array.macs_per_cluster": 16}, workers=workers, trace="synthetic",
                          timing_only=True, progress=False)
    cycles = [int(row["cycles"]) for row in res.totals_rows()]
    how = "simulator.sweep(timing_only=True)"
elif workers == 1:
    cycles = [point(n) for n in clusters]
    how = "sequential simulate(timing_only=True)"
else:
    with ProcessPoolExecutor(workers) as ex:
        cycles = list(ex.map(point, clusters))
    how = f"ProcessPoolExecutor({workers}) of simulate(timing_only=True)"
t2 = time.perf_counter()
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"import_s": t1 - t0, "run_s": t2 - t1, "cycles": sum(cycles), "points": cycles, "how": how,
                  "peak_rss_mib": rss / 1024}))
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
    """Delete numba's on-disk cache (*.nbi, *.nbc) of the sparsesim packages so the next run compiles."""
    n = 0
    for pkg in ("simulator", "workloads", "dataflows"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or spec.origin is None:
            continue
        root = Path(spec.origin).parent
        for f in list(root.rglob("*.nbi")) + list(root.rglob("*.nbc")):
            f.unlink()
            n += 1
    return n


def _child(code: str, *args: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
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


def _fmt_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ----------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-scalesim", action="store_true")
    ap.add_argument("--scalesim-python", default=".scalesim-venv/bin/python",
                    help="interpreter of a venv with scalesim==3.0.0, numpy==2.3.5, pandas==2.3.3")
    ap.add_argument("--scalesim-timeout", type=float, default=180.0)
    ap.add_argument("--quick", action="store_true",
                    help="warm runs only (no cold), 4-point sweep, SCALE-Sim limit 60 s")
    ap.add_argument("--markdown", metavar="FILE", help="also write the Markdown output to FILE")
    args = ap.parse_args(argv)
    if args.quick:
        args.scalesim_timeout = min(args.scalesim_timeout, 60.0)
    clusters = SWEEP_CLUSTERS[::2] if args.quick else SWEEP_CLUSTERS
    labels = ("warm",) if args.quick else ("cold", "warm")

    lines: list[str] = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])
    emit(f"Command: `{cmd}`  ")
    emit(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
         f"{platform.system()} {platform.release()}  ")
    emit(f"Load average (1/5/15 min) at start: {_load()}  ")
    emit()
    emit(_fmt_row(["network", "mode", "run", "wall s (process)", "sim s (simulate call)",
                   "sim s (2nd call, same process)", "simulated cycles", "Mcycles/s", "peak RSS MiB"]))
    emit(_fmt_row(["---"] * 3 + ["---:"] * 6))

    res: dict[tuple, dict] = {}
    for net in args.networks:
        for mode in ("full", "timing-only"):
            for label in labels:
                if label == "cold":
                    _clear_numba_cache()
                r = _child(_SIM_CHILD, net, mode)
                r["wall_s"] -= r["repeat_s"]      # the process as one run: the second call is extra
                res[(net, mode, label)] = r
                emit(_fmt_row([net, mode, label, f"{r['wall_s']:.2f}", f"{r['run_s']:.2f}", f"{r['repeat_s']:.2f}",
                               f"{r['cycles']:,}", f"{r['cycles'] / r['run_s'] / 1e6:.1f}",
                               f"{r['peak_rss_mib']:.0f}"]))
    sweep_net = "resnet50"
    sweep_runs = [(label, 1) for label in labels] + [("warm", 2)]
    how = set()
    for label, workers in sweep_runs:
        if label == "cold":
            _clear_numba_cache()
        r = _child(_SWEEP_CHILD, sweep_net, str(workers), ",".join(map(str, clusters)))
        res[("sweep", workers, label)] = r
        how.add(r["how"])
        emit(_fmt_row([sweep_net, f"{len(clusters)}-point timing-only sweep, {workers} worker(s)", label,
                       f"{r['wall_s']:.2f}", f"{r['run_s']:.2f}", "–", f"{r['cycles']:,}",
                       f"{r['cycles'] / r['run_s'] / 1e6:.1f}", f"{r['peak_rss_mib']:.0f}"]))
    emit()
    emit(f"Sweep: {len(clusters)} points, MACs = 16 x array.num_clusters {list(clusters)}; run as: "
         f"{'; '.join(sorted(how))}. Sweep peak RSS = max of the process and its worker processes.")
    emit()

    vgg_full = res.get(("vgg16", "full", "warm"))
    vgg_to = res.get(("vgg16", "timing-only", "warm"))
    if not args.skip_torch:
        try:
            t = _child(_TORCH_CHILD)
        except Exception as e:  # noqa: BLE001 - torch missing or broken: report, keep going
            emit(f"PyTorch: not measured ({type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''})")
        else:
            emit(f"PyTorch {t['torch']} fp32 VGG16 forward (plain torch.nn, eval, {t['threads']} threads, batch 1, "
                 f"224x224): median of 5 after 2 warm-ups = {t['median_s'] * 1e3:.0f} ms "
                 f"(peak RSS {t['peak_rss_mib']:.0f} MiB)  ")
            if vgg_full:
                emit(f"Ratio sparsesim VGG16 full (warm, whole process) / torch forward = "
                     f"{vgg_full['wall_s'] / t['median_s']:.1f}x "
                     f"(simulate call only: {vgg_full['run_s'] / t['median_s']:.1f}x)  ")
    if not args.skip_scalesim:
        if not Path(args.scalesim_python).exists():
            emit(f"SCALE-Sim: not measured ({args.scalesim_python} missing)")
        else:
            s = _scalesim(args.scalesim_python, args.scalesim_timeout)
            if s["finished"]:
                msg = f"SCALE-Sim v3 VGG16 32x32 WS (traces off, one process): finished in {s['wall_s']:.0f} s, " \
                      f"{s['cycles']:,} cycles"
                cmp = "="
            else:
                msg = (f"SCALE-Sim v3 VGG16 32x32 WS (traces off, one process): did not finish in "
                       f"{args.scalesim_timeout:.0f} s ({s['layers_done']}/{s['layers']} layers done, "
                       f"{s['cycles']:,} cycles simulated by then)")
                cmp = "≥"
            emit(msg + "  ")
            for name, r in (("timing-only", vgg_to), ("full", vgg_full)):
                if r:
                    emit(f"Ratio SCALE-Sim / sparsesim VGG16 {name} (warm, whole process) {cmp} "
                         f"{s['wall_s'] / r['wall_s']:.0f}x  ")
    emit()
    emit(f"Load average (1/5/15 min) at end: {_load()}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
