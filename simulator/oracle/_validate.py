"""Validate the event-driven timing against the clock-stepped reference on real networks.

:func:`validate_network` runs a network through :class:`~simulator.Simulator`
(real propagated activations) and, for each selected accelerator layer,
times exactly the data the simulator times (input, written output and the
layer's weights) with both models: :func:`simulator.engine.time_layer`
(event-driven) and :func:`clocked_layer` (one clock at a time), under the
configured dataflow. Total cycles,
every per-unit counter (docs/architecture.md §3.2), useful MACs, MAC operations
(in total and per PU), DRAM traffic and residency must be identical.

The reference steps some 30-110 million cycles per second, so whole zoo
networks validate at full size in seconds (the default). For larger inputs or
starved configurations each layer can be cropped to its first ``max_rows``
input rows (and the matching stride-1 output rows); the crop is recorded in
the report. A layer that streams its input at full size but would fit the
input memory once cropped gets a smaller ``memory.input_memory_kib`` for the
cropped comparison, so the streaming path (windowed input memory, re-reads per
pass) is still exercised; the report notes it.
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from dataflows import (AcceleratorConfig, ScheduledLayer, get_dataflow, schedule_network, stripe_windows,
                       with_overrides)
from workloads import DensityProfile, MappingError, Network, NetworkBuilder, Trace, WorkloadError, get_network

from ..engine import time_layer
from ..report import COUNTERS, LayerTiming, accelerator_label
from ..runner import Simulator
from ._clocked import clocked_layer, row_elements

__all__ = ["ValidationRow", "ValidationReport", "crop_layer", "validate_layer", "validate_network"]


@dataclass
class ValidationRow:
    """One layer compared under both timing models.

    Attributes
    ----------
    layer : layer name.
    shape : ``"full"`` or the crop, e.g. ``"rows 0..15 of 224"``.
    input_shape : ``(H, W, C)`` of the input actually timed.
    event_cycles, reference_cycles : total cycles of the layer from each model.
    agree : cycles, every per-unit counter, useful MACs, MAC operations (total and per PU),
        DRAM traffic and residency identical.
    first_difference : the first differing quantity (``"cycles"``, ``"mac_array.busy"``,
        ``"pu_ops"``, ...), or None.
    reference_seconds : wall-clock seconds of the reference model on this layer.
    reference_cycles_per_second : simulated cycles per wall-clock second of the reference.
    event_seconds : wall-clock seconds of the event model on this layer.
    note : remarks (memory override kept for a streamed layer, errors).
    """

    layer: str
    shape: str
    input_shape: tuple[int, int, int]
    event_cycles: int
    reference_cycles: int
    agree: bool
    first_difference: str | None
    reference_seconds: float
    reference_cycles_per_second: float
    event_seconds: float
    note: str = ""


@dataclass
class ValidationReport:
    """Per-layer comparison of the event model with the clock-stepped reference.

    Attributes
    ----------
    network, accelerator : what was run (the network's name, the config's name).
    dataflow : the array's dataflow (``array.dataflow``).
    max_rows : the crop limit in input rows (None: full layers).
    rows : one :class:`ValidationRow` per validated layer, in network order.
    wall_seconds : wall-clock seconds of the whole validation (network run included).
    """

    network: str
    accelerator: str
    max_rows: int | None
    rows: list[ValidationRow] = field(default_factory=list)
    wall_seconds: float = 0.0
    dataflow: str = ""

    @property
    def all_agree(self) -> bool:
        """True when every validated layer agrees exactly (and at least one was validated)."""
        return bool(self.rows) and all(r.agree for r in self.rows)

    @property
    def reference_cycles(self) -> int:
        """Cycles the reference stepped, summed over layers."""
        return sum(r.reference_cycles for r in self.rows)

    @property
    def reference_seconds(self) -> float:
        """Wall-clock seconds spent in the reference model."""
        return sum(r.reference_seconds for r in self.rows)

    @property
    def reference_cycles_per_second(self) -> float:
        """Overall reference speed, in simulated cycles per wall-clock second."""
        s = self.reference_seconds
        return self.reference_cycles / s if s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary of the report."""
        return {"network": self.network, "accelerator": self.accelerator, "dataflow": self.dataflow,
                "max_rows": self.max_rows,
                "all_agree": self.all_agree, "wall_seconds": self.wall_seconds,
                "reference_cycles": self.reference_cycles, "reference_seconds": self.reference_seconds,
                "reference_cycles_per_second": self.reference_cycles_per_second,
                "rows": [asdict(r) for r in self.rows]}

    def format_table(self) -> str:
        """Text table: one line per layer, then a summary line."""
        head = ("layer", "timed", "event cycles", "ref cycles", "agree", "first difference", "ref s", "ref Mcyc/s")
        body = [(r.layer, r.shape, f"{r.event_cycles:,}", f"{r.reference_cycles:,}", "yes" if r.agree else "NO",
                 r.first_difference or "-", f"{r.reference_seconds:.2f}",
                 f"{r.reference_cycles_per_second / 1e6:.1f}") for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
        right = {2, 3, 6, 7}

        def line(cells):
            return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        out = [f"validate {self.network} on {accelerator_label(self.accelerator, self.dataflow)}: event model vs clock-stepped reference "
               f"(max_rows={self.max_rows})", line(head), line(["-" * w for w in widths])]
        out += [line(b) for b in body]
        notes = [f"  {r.layer}: {r.note}" for r in self.rows if r.note]
        if notes:
            out += ["notes:"] + notes
        n_ok = sum(r.agree for r in self.rows)
        out.append(f"{n_ok}/{len(self.rows)} layers agree; reference stepped {self.reference_cycles:,} cycles in "
                   f"{self.reference_seconds:.1f} s ({self.reference_cycles_per_second / 1e6:.1f} M cycles/s); "
                   f"total {self.wall_seconds:.1f} s")
        return "\n".join(out)


def _window_bytes(act: np.ndarray, compressed: bool, kh: int, pad: int) -> tuple[int, int]:
    """(image bytes, largest stripe-window bytes) of an input, per docs/architecture.md §4.2."""
    el = row_elements(act, compressed)
    lo, hi = stripe_windows(act.shape[0], kh, pad)
    best = max((int(el[a:b + 1].sum()) * 2 for a, b in zip(lo, hi)), default=0)
    return int(el.sum()) * 2, best


def crop_layer(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray, cfg: AcceleratorConfig,
               max_rows: int | None) -> tuple[np.ndarray, np.ndarray, AcceleratorConfig, str, str]:
    """Keep the first ``max_rows`` input rows of a layer and the output rows they produce.

    The stride-1 output of ``r`` input rows has ``r + 2p - kh + 1`` rows (halved
    by a fused pool, whose input height must stay even). If the full layer
    streams its input but the crop would fit the input memory, the memory is
    shrunk (whole KiB) so the crop streams too, when one window still fits.
    Input sizes follow the dataflow: ``dense`` and ``rsnn`` keep activations raw.

    Returns
    -------
    act, out : the cropped arrays (views); cfg : the configuration to time them with;
    shape : ``"full"`` or a description of the crop; note : the memory change, if any.
    """
    h = act_in.shape[0]
    if max_rows is None or h <= max_rows:
        return act_in, out_written, cfg, "full", ""
    mp = sched.mapping
    kh, pad = mp.kernel[0], mp.padding
    pooled = sched.fused_pool is not None
    rows = max(int(max_rows), kh - 2 * pad + (1 if pooled else 0), 1)
    if pooled and (rows + 2 * pad - kh + 1) % 2:
        rows += 1 if rows + 1 <= h else -1
    if rows >= h:
        return act_in, out_written, cfg, "full", ""
    ho1 = rows + 2 * pad - kh + 1
    act = act_in[:rows]
    out = out_written[:ho1 // 2] if pooled else out_written[:ho1]
    shape = f"rows 0..{rows - 1} of {h}"
    note = ""
    mem = cfg.memory.input_memory_kib * 1024
    compressed = sched.compressed_input and get_dataflow(cfg.array.dataflow).traits.compressed_activations
    full_image, _ = _window_bytes(act_in, compressed, kh, pad)
    image, window = _window_bytes(act, compressed, kh, pad)
    if full_image > mem >= image:
        kib = (image - 1) // 1024
        if kib >= 1 and kib * 1024 >= window:
            note = (f"memory.input_memory_kib {cfg.memory.input_memory_kib} -> {kib} so the crop streams "
                    "like the full layer")
            cfg = with_overrides(cfg, {"memory.input_memory_kib": kib})
        else:
            note = "streams at full size, resident once cropped"
    return act, out, cfg, shape, note


def _first_difference(ev: LayerTiming, ref: LayerTiming) -> str | None:
    if ev.cycles != ref.cycles:
        return "cycles"
    if list(ev.units) != list(ref.units):
        return "units"
    for u in ev.units:
        evd, refd = ev.units[u].as_dict(), ref.units[u].as_dict()
        for c in COUNTERS:
            if evd[c] != refd[c]:
                return f"{u}.{c}"
    for name in ("macs_useful", "mac_ops", "pu_ops", "dram_read_bytes", "dram_write_bytes", "resident",
                 "dram_busy_cycles", "handoff_columns"):
        if getattr(ev, name) != getattr(ref, name):
            return name
    return None


def validate_layer(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray, cfg: AcceleratorConfig, *,
                   max_rows: int | None = None, weights: np.ndarray | None = None) -> ValidationRow:
    """Compare both timing models on one accelerator layer (cropped to ``max_rows`` input rows).

    Parameters
    ----------
    sched, act_in, out_written, weights : exactly what ``Simulator.run`` hands its observer
        (``weights`` is required by dataflows that skip zero weights).
    cfg : the accelerator configuration.
    max_rows : crop limit in input rows; None times the full layer.
    """
    act, out, ccfg, shape, note = crop_layer(sched, act_in, out_written, cfg, max_rows)
    t0 = time.perf_counter()
    try:
        ev = time_layer(sched, act, out, ccfg, weights=weights)
    except MappingError as exc:
        ev = exc
    t1 = time.perf_counter()
    try:
        ref = clocked_layer(sched, act, out, ccfg, weights=weights)
    except MappingError as exc:
        ref = exc
    t2 = time.perf_counter()
    if isinstance(ev, Exception) or isinstance(ref, Exception):
        both = isinstance(ev, Exception) and isinstance(ref, Exception)
        msg = (f"event: {ev if isinstance(ev, Exception) else 'ok'}; "
               f"reference: {ref if isinstance(ref, Exception) else 'ok'}")
        return ValidationRow(layer=sched.layer.name, shape=shape, input_shape=tuple(int(v) for v in act.shape),
                             event_cycles=0,
                             reference_cycles=0, agree=both, first_difference=None if both else "MappingError",
                             reference_seconds=t2 - t1, reference_cycles_per_second=0.0, event_seconds=t1 - t0,
                             note=(note + "; " if note else "") + msg)
    diff = _first_difference(ev, ref)
    secs = t2 - t1
    return ValidationRow(layer=sched.layer.name, shape=shape, input_shape=tuple(int(v) for v in act.shape),
                         event_cycles=int(ev.cycles), reference_cycles=int(ref.cycles), agree=diff is None,
                         first_difference=diff, reference_seconds=secs,
                         reference_cycles_per_second=ref.cycles / secs if secs > 0 else 0.0,
                         event_seconds=t1 - t0, note=note)


@functools.cache
def _warm_up() -> None:
    """Load (or compile) the reference's numba kernels once, so timings measure stepping only."""
    b = NetworkBuilder("warm", (4, 4, 2))
    b.conv("prev", 2, 1)
    b.conv("c", 2, 3, padding=1)
    cfg = AcceleratorConfig()
    sched = next(s for s in schedule_network(b.build(), cfg) if s.layer.name == "c")
    x = np.ones((4, 4, 2), dtype=np.int16)
    clocked_layer(sched, x, x, cfg, weights=np.ones((2, 3, 3, 2), dtype=np.int16))


class _Done(Exception):
    """Raised from the observer once the last selected layer is validated (stops the run early)."""


def validate_network(network: str | Network, accel: AcceleratorConfig | str | os.PathLike = "nullhop", *,
                     overrides: Mapping[str, object] | None = None, layers: list[str] | None = None,
                     max_rows: int | None = None, seed: int = 0,
                     profile: str | DensityProfile | None = None,
                     trace: str | Trace = "propagated") -> ValidationReport:
    """Run ``network`` and compare the event model with the clock-stepped reference layer by layer.

    Parameters
    ----------
    network : zoo name or :class:`Network`.
    accel, overrides : the accelerator, as for :class:`~simulator.Simulator` (a preset such as
        ``"nullhop"``, ``"dense"``, ``"rsnn"``, ``"combined"``, or a TOML file).
    layers : names of accelerator layers to validate (default: all of them).
    max_rows : crop each layer to its first ``max_rows`` input rows; None (default) times
        full layers (VGG16 at the NullHop defaults: 84 M cycles, about 1 s of reference time).
    seed, profile, trace : as for :meth:`Simulator.run`: ``"propagated"`` (default), ``"synthetic"``
        or a :class:`~workloads.Trace` with real data (an ONNX model's, a trace file's).

    Returns
    -------
    ValidationReport (``all_agree`` is the verdict).

    Raises
    ------
    WorkloadError : a name in ``layers`` is not an accelerator layer of the network,
        or ``max_rows`` is not a positive integer.
    """
    t_start = time.perf_counter()
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer))
                                 or max_rows < 1):
        raise WorkloadError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    sim = Simulator(accel, overrides)
    net = get_network(network) if isinstance(network, str) else network
    on_acc = [s.layer.name for s in schedule_network(net, sim.config) if s.where == "accelerator"]
    if layers is None:
        wanted = set(on_acc)
    else:
        all_names = {layer.name for layer in net.layers}
        for name in layers:
            if name not in on_acc:
                why = "runs on the host or is fused" if name in all_names else "is not a layer of the network"
                raise WorkloadError(f"layer {name!r} {why}; accelerator layers of {net.name!r} are: "
                                    f"{', '.join(on_acc)}")
        wanted = set(layers)
    _warm_up()
    report = ValidationReport(network=net.name, accelerator=sim.config.name, max_rows=max_rows,
                              dataflow=sim.config.array.dataflow)
    remaining = set(wanted)

    def observe(sched: ScheduledLayer, act_in: np.ndarray, out_written: np.ndarray,
                weights: np.ndarray | None = None) -> None:
        # Runners that hand the observer only (sched, act_in, out_written) leave weights None.
        name = sched.layer.name
        if name not in wanted:
            return
        report.rows.append(validate_layer(sched, act_in, out_written, sim.config, max_rows=max_rows,
                                          weights=weights))
        remaining.discard(name)
        if not remaining:
            raise _Done

    try:
        sim.run(net, seed=seed, profile=profile, trace=trace, check=False, observer=observe)
    except _Done:
        pass
    report.wall_seconds = time.perf_counter() - t_start
    return report

