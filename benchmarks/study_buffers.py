"""Buffer-size study: what the PRE buffer and the output buffer cost in cycles, and why.

For VGG16 and ResNet-50 on the ``nullhop`` preset (timing-only, synthetic traces,
seed 0), each of ``memory.pre_buffer_kib`` and ``memory.output_buffer_kib`` is
swept from 0.5 to 64 KiB with every other field at its default. For every point
it records the network's cycles and each unit's cycle classes (busy, stall
causes), writes them to ``study_buffers.json`` and draws
``docs/img/buffer_study.png``. It also measures the dense preset's fill/drain
overhead with ample DMA (512 B/cycle, latency 0) on VGG16 conv5_x and ResNet-50
layer4 against the real-tap ideal (MACs on non-padding pixels / num_MACs), at
the default hand-off and at one work unit per stripe.

    python benchmarks/study_buffers.py [--out DIR] [--workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from simulator import simulate, sweep  # noqa: E402
from workloads import get_network  # noqa: E402

SIZES_KIB = [0.5, 1, 2, 4, 8, 16, 32, 64]
NETWORKS = ("vgg16", "resnet50")
BUFFERS = ("memory.pre_buffer_kib", "memory.output_buffer_kib")
UNITS = ("decoder", "mac_array", "pre", "encoder")
CAUSES = ("stall_input", "stall_output", "stall_dram", "stall_weights")
AMPLE_DMA = {"dma.bandwidth_bytes_per_cycle": 512, "dma.latency_cycles": 0}
PER_STRIPE = {"array.handoff_columns": 4096, "array.min_handoffs_per_stripe": 1,
              "memory.decoder_fifo_kib": 1 << 20, "memory.pre_buffer_kib": 1 << 20,
              "memory.encoder_fifo_kib": 1 << 20, "memory.output_buffer_kib": 1 << 20}


def _unit_sums(result) -> dict[str, dict[str, int]]:
    out = {u: dict.fromkeys(("busy", *CAUSES), 0) for u in UNITS}
    for layer in result.layers:
        for u in UNITS:
            for k in out[u]:
                out[u][k] += layer.units.get(u, {}).get(k, 0) if layer.units else 0
    return out


def buffer_points(net: str, key: str, out_dir: Path, workers: int) -> list[dict]:
    res = sweep(net, "nullhop", grid={key: SIZES_KIB}, out_dir=out_dir / f"{net}-{key.split('.')[1]}",
                workers=workers, trace="synthetic", run_options={"timing_only": True}, progress=False)
    rows = []
    for point, result in zip(res.points, res.results):
        rows.append({"network": net, "buffer": key, "kib": float(point[key]),
                     "cycles": result.totals["cycles"], "units": _unit_sums(result)})
    return rows


def _real_taps(layer) -> float:
    def taps(n: int, k: int, p: int) -> int:
        return sum(1 for o in range(n + 2 * p - k + 1) for t in range(k) if 0 <= o - p + t < n)
    h, w, c = layer.in_shape
    kh, kw = layer.kernel
    return taps(h, kh, layer.padding) * taps(w, kw, layer.padding) * (c // layer.groups) * layer.out_channels


def fill_drain(net: str, prefix: str) -> list[dict]:
    layers = {x.name: x for x in get_network(net).layers}
    rows = []
    for label, extra in (("default hand-off", {}), ("one work unit per stripe", PER_STRIPE)):
        r = simulate(net, "dense", overrides={**AMPLE_DMA, **extra}, timing_only=True, trace="synthetic")
        for l in r.layers:
            if l.where == "accelerator" and l.name.startswith(prefix) and layers[l.name].stride == 1:
                ideal = _real_taps(layers[l.name]) / r.config["array"]["num_clusters"] \
                    / r.config["array"]["macs_per_cluster"]
                rows.append({"network": net, "layer": l.name, "model": label, "cycles": l.cycles,
                             "ideal": ideal, "overhead_pct": 100 * (l.cycles / ideal - 1)})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    for col, net in enumerate(NETWORKS):
        for row, key in enumerate(BUFFERS):
            ax = axes[row][col]
            pts = sorted((r for r in rows if r["network"] == net and r["buffer"] == key), key=lambda r: r["kib"])
            kib = [p["kib"] for p in pts]
            base = min(p["cycles"] for p in pts)
            ax.plot(kib, [100 * (p["cycles"] / base - 1) for p in pts], "k-o", label="cycles over the best point")
            for unit, style in (("mac_array", "s--"), ("pre", "^:"), ("encoder", "v-.")):
                ax.plot(kib, [100 * p["units"][unit]["stall_output"] / p["cycles"] for p in pts], style,
                        label=f"{unit.replace('_', ' ')} stalled on a full buffer")
            ax.set_xscale("log", base=2)
            ax.set_xticks(kib)
            ax.set_xticklabels([f"{k:g}" for k in kib])
            ax.set_title(f"{net}: {key.split('.')[1].replace('_kib', '').replace('_', ' ')} size", fontsize=10)
            ax.set_ylabel("% of network cycles")
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("buffer size (KiB)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("nullhop preset, timing-only synthetic traces (seed 0): buffer size against cycles and stalls")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/buffer-study", help="sweep cache and JSON directory")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--plot", default="docs/img/buffer_study.png")
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = [r for net in NETWORKS for key in BUFFERS for r in buffer_points(net, key, out, args.workers)]
    fd = fill_drain("vgg16", "conv5_") + fill_drain("resnet50", "layer4.")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "study_buffers.json.tmp"
    tmp.write_text(json.dumps({"buffers": rows, "fill_drain": fd}, indent=1))
    os.replace(tmp, out / "study_buffers.json")
    plot(rows, Path(args.plot))
    print("| network | buffer | KiB | cycles | MAC array stall_output | PRE stall_output | encoder stall_output |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        u = r["units"]
        print(f"| {r['network']} | {r['buffer']} | {r['kib']:g} | {r['cycles']:,} | "
              f"{u['mac_array']['stall_output']:,} | {u['pre']['stall_output']:,} | {u['encoder']['stall_output']:,} |")
    print()
    print("| network | layer | model | cycles | ideal | over ideal |")
    print("|---|---|---|---|---|---|")
    for r in fd:
        print(f"| {r['network']} | {r['layer']} | {r['model']} | {r['cycles']:,} | {r['ideal']:,.0f} | "
              f"{r['overhead_pct']:+.2f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
