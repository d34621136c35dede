"""Runs a whole network: traces -> functional math -> timing -> results.

The loop is plain Python over layers. For each layer it obtains the input
activations (propagated from the previous layers, or synthetic), computes the
output on the compressed stream with the numba kernels, optionally checks it
bit for bit against the plain numpy reference, and, for accelerator layers,
asks the event model (``simulator.engine``) for cycles and action counts.
"""
from __future__ import annotations

import functools
import inspect
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numba
import numpy as np

from dataflows import AcceleratorConfig, ScheduledLayer, config_to_dict, load_config, schedule_network, with_overrides
from workloads import (DensityProfile, FunctionalMismatchError, Layer, LimitError, Network, Trace, WorkloadError,
                       check_memory, child_seed, count_nonzero, default_profile_for, get_network, get_profile, image_input,
                       network_memory_bytes, no_huge_pages, one_blas_thread, prune_weights, run_chunks, sample_photo_id,
                       synthetic_activation, synthetic_bias, synthetic_weights)

from .. import numerics as fn
from ..energy import layer_energy, load_energy_table, table_report
from ..engine import check_engine, time_layer
from ..report import LayerResult, Result, layer_ratios
from ._compile_ahead import CompileAhead, start_compile_ahead
from ._data_cache import cached_tensor, check_cache_environment
from ._prefetch import MISSING, Prefetcher

__all__ = ["Simulator", "simulate", "TRACE_MODES", "PRUNING_CHOICES"]

#: How synthetic weights are pruned to the profile's density.
PRUNING_CHOICES = ("magnitude", "balanced", "balanced-kernel")

#: Where layer inputs come from: the previous layers' real outputs, or
#: independent synthetic maps at the profile's density.
TRACE_MODES = ("propagated", "synthetic")


def _density(a: np.ndarray) -> float:
    return float(count_nonzero(a)) / a.size if a.size else 0.0


#: Bytes of input and output maps that a run holds for timings left for its end; past them the
#: timings start at once, beside the layers that follow.
_DEFERRED_MAX_BYTES = 256 << 20

#: Maps whose density a run remembers (see _NetworkRun._map_density).
_DENSITIES_KEPT = 4

#: Below this many output positions per channel, bias calibration uses one
#: threshold for the whole layer instead of one per channel.
_MIN_CHANNEL_SAMPLES = 16
#: Accumulators below which bias calibration runs on one thread.
_PARALLEL_MIN_SELECT = 1 << 18
#: Accumulators per block of channels that bias calibration selects in (2 MiB of int64).
_SELECT_BLOCK_ELEMENTS = 1 << 18


def _calibrate_bias(acc: np.ndarray, target: float) -> np.ndarray:
    """Per-channel Q8.8 bias so that about ``target`` of each channel's outputs are > 0.

    An output is positive iff ``acc + 256 * b >= 256`` (floor shift by 8), so
    ``b = ceil((256 - q) / 256)`` where ``q`` is the k-th largest accumulator,
    ``k = round(target * n)``. Biases saturate to int16.
    """
    cout = acc.shape[-1]
    flat = acc.reshape(-1, cout)       # int64, or int32 (compact accumulators)
    if flat.shape[0] < _MIN_CHANNEL_SAMPLES:
        # Too few positions per channel (FC, tiny maps): one layer-wide threshold.
        flat = flat.reshape(-1, 1)
    n = flat.shape[0]
    k = int(round(target * n))
    if k <= 0:
        # Everything must be <= 0: push below the maximum.
        q = flat.max(axis=0).astype(np.int64) + 256
    else:
        # NOTE: a channel-major copy partitioned in place along its rows: contiguous selections,
        # 1.7x faster than partitioning the strided columns (the k-th value is the same). The copy
        # is made a block of channels at a time (at least 8, a cache line of each row) into one
        # buffer of about 2 MiB per thread (fresh memory for a whole layer's copy costs its page
        # faults), and within that in blocks of rows (a whole-array transpose walks memory with a
        # stride of the row and is about 4x slower). Ranges of channels run on the kernel threads
        # (numpy releases the GIL for the copies and the partition).
        q = np.empty(flat.shape[1], dtype=flat.dtype)
        per_block = max(8, _SELECT_BLOCK_ELEMENTS // n // 8 * 8)    # whole 64-byte lines of a row

        def channels(c0: int, c1: int) -> None:
            buf = np.empty((min(per_block, c1 - c0), n), dtype=flat.dtype)
            for b0 in range(c0, c1, per_block):
                b1 = min(c1, b0 + per_block)
                cm = buf[:b1 - b0]
                rows = max(1, 16384 // (b1 - b0))
                for r0 in range(0, n, rows):
                    cm[:, r0:r0 + rows] = flat[r0:r0 + rows, b0:b1].T
                cm.partition(n - k, axis=1)
                q[b0:b1] = cm[:, n - k]
        run_chunks(channels, flat.shape[1], serial=flat.size < _PARALLEL_MIN_SELECT)
    b = -((q.astype(np.int64) - 256) // 256)  # ceil((256 - q) / 256)
    return np.broadcast_to(np.clip(b, -32768, 32767).astype(np.int16), (cout,)).copy()


class _SeedCache:
    """Synthetic tensors by the arguments that determine them, least recently used first out.

    A sweep (or a notebook re-running a cell) draws the same seeded weights and maps at
    every point; the generators are deterministic, so a hit returns the very same array.
    A miss asks the on-disk cache (:mod:`._data_cache`), shared by every process, before it
    draws. Cached arrays are read-only: nothing downstream writes into its inputs.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.derived: dict[tuple, dict[str, object]] = {}    # of the items, made once
        self.nbytes = 0
        # The layer loop and the weight prefetch thread (._prefetch) share the cache.
        self.lock = threading.Lock()

    def get(self, key: tuple, make: Callable[[], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                return hit
        a = cached_tensor(key, make, shape)
        with self.lock:
            if a.nbytes <= self.max_bytes and key not in self.items:
                self.items[key] = a
                self.nbytes += a.nbytes
                while self.nbytes > self.max_bytes:
                    old, arr = self.items.popitem(last=False)
                    self.nbytes -= arr.nbytes
                    self.derived.pop(old, None)
        return a

    def of(self, key: tuple, a: np.ndarray, what: str, make: Callable[[], object],
           stored: Callable[[], object] | None = None) -> object:
        """``make()``, a value that depends only on the cached array ``a`` of ``key`` (its
        non-zeros, its weight layout), made once while ``a`` is cached; for the cached array,
        by ``stored()`` when given (the same value through the tensor cache)."""
        with self.lock:
            cached = self.items.get(key) is a
            v = self.derived.get(key, {}).get(what) if cached else None
        if v is None:
            v = stored() if cached and stored is not None else make()
            with self.lock:
                if self.items.get(key) is a:
                    self.derived.setdefault(key, {})[what] = v
        return v

    def density(self, key: tuple, a: np.ndarray) -> float:
        """``_density(a)`` of the cached array ``a`` of ``key``, counted once while it is cached (and
        once per machine: the count is kept in the tensor cache beside the array)."""
        def stored() -> int:
            return int(cached_tensor(("nonzeros",) + key, lambda: np.array([count_nonzero(a)], dtype=np.int64),
                                     (1,))[0])
        n = self.of(key, a, "nonzeros", lambda: count_nonzero(a), stored)
        return n / a.size if a.size else 0.0

    def pairs(self, key: tuple, w: np.ndarray) -> fn.PairTable:
        """``fn.pair_table(w)`` of the cached weights ``w`` of ``key``, made once while they are
        cached (and once per machine, through the tensor cache)."""
        def stored() -> fn.PairTable:
            made: list[fn.PairTable] = []

            def table() -> np.ndarray:
                made.append(fn.pair_table(w))
                return made[0].table
            tkey = ("pairs", fn.PAIR_TABLE_VERSION) + key
            t = cached_tensor(tkey, table, fn.pair_table_shape(w.shape))
            l1 = cached_tensor(("pairs l1",) + tkey[1:],
                               lambda: np.array([(made[0] if made else fn.pair_table(w)).l1_max], dtype=np.int64), (1,))
            return fn.PairTable(t, int(l1[0]), tuple(int(v) for v in w.shape))
        return self.of(key, w, "pairs", lambda: fn.pair_table(w), stored)


#: Per process. 512 MiB holds every synthetic tensor of a VGG16 run (fc6's weights are 196 MiB).
_SYNTHETIC = _SeedCache(512 << 20)


def _synthetic_map(shape: tuple[int, int, int], density: float, keys: tuple) -> np.ndarray:
    """``synthetic_activation(shape, density, child_seed(*keys))``, cached per process."""
    shape = tuple(int(v) for v in shape)
    return _SYNTHETIC.get(("map", shape, float(density)) + keys,
                          lambda: synthetic_activation(shape, density, child_seed(*keys)), shape)


class Simulator:
    """Simulates networks on one accelerator configuration.

    Parameters
    ----------
    accel : preset name, path to a TOML file, or an :class:`AcceleratorConfig`.
    overrides : dotted-key overrides applied on top (``{"dma.latency_cycles": 50}``).

    Examples
    --------
    >>> sim = Simulator("nullhop")
    >>> result = sim.run("roshambonet")
    >>> result.totals["cycles"] > 0
    True
    """

    def __init__(self, accel: AcceleratorConfig | str | os.PathLike = "nullhop",
                 overrides: Mapping[str, object] | None = None) -> None:
        cfg = accel if isinstance(accel, AcceleratorConfig) else load_config(accel)
        if overrides:
            cfg = with_overrides(cfg, overrides)
        self.config = cfg
        self.energy_table = load_energy_table(cfg)   # fail early on a bad energy table

    def run(self, network: Network | str, *, profile: str | DensityProfile | None = None, seed: int = 0,
            trace: str | Trace = "propagated", check: bool = True, pruning: str = "magnitude",
            timing_only: bool = False, engine: str = "compiled",
            progress: Callable[[int, int, str], None] | None = None,
            observer: Callable[[ScheduledLayer, np.ndarray, np.ndarray], None] | None = None) -> Result:
        """Simulate ``network`` layer by layer.

        Parameters
        ----------
        network : a :class:`Network` or a zoo name (``sparsesim list``).
        profile : density profile name or object; default depends on the network.
        seed : seeds weights, biases and synthetic activations (same seed, same result).
        trace : ``"propagated"`` (real photo through the network), ``"synthetic"``, or a
            :class:`~workloads.Trace` with the network's real weights (and, optionally,
            captured per-layer inputs; other inputs are propagated from ``trace.image``).
        check : compare every layer's output bit for bit with the numpy reference.
        pruning : how synthetic weights reach the profile's weight density: ``"magnitude"``
            (largest |w| of the layer), ``"balanced"`` (equal non-zeros per kernel and input
            channel) or ``"balanced-kernel"`` (equal non-zeros per kernel); see
            :func:`workloads.prune_weights`. Ignored for user traces (their weights are real).
        timing_only : compute bitmaps and counts only, no activation values and no functional
            math (fast sweeps). Needs ``trace="synthetic"``; gives the same cycles as the full
            synthetic run with the same seed.
        engine : implementation of the event model that times each pass: ``"compiled"``
            (default) or ``"simpy"``; both give identical results (docs/architecture.md §3).
        progress : optional callback ``(done, total, layer_name)``.
        observer : optional callback ``(scheduled_layer, act_in, out_written)`` called for
            every accelerator layer with exactly the data its timing is computed from; a
            callback that takes a 4th argument also receives the layer's int16 weights.
        """
        net = get_network(network) if isinstance(network, str) else network
        if not isinstance(net, Network):
            raise WorkloadError(f"network must be a Network or a zoo name, got {network!r}")
        if profile is not None and not isinstance(profile, (str, DensityProfile)):
            raise WorkloadError(f"profile must be a profile name or a DensityProfile, got {profile!r}")
        if pruning not in PRUNING_CHOICES:
            raise WorkloadError(f"pruning must be one of {', '.join(PRUNING_CHOICES)}, got {pruning!r}")
        user = None
        if isinstance(trace, Trace):
            trace.validate(net)
            user, trace = trace, "trace"
        elif trace not in TRACE_MODES:
            raise WorkloadError(f"trace must be one of {', '.join(TRACE_MODES)} or a Trace, got {trace!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise WorkloadError(f"seed must be a non-negative integer, got {seed!r}")
        check_engine(engine)
        check_cache_environment()
        prof = profile if isinstance(profile, DensityProfile) else get_profile(
            profile or default_profile_for(net.name))
        schedule = schedule_network(net, self.config)
        run = _NetworkRun(net, schedule, self.config, prof, int(seed), trace, check, observer)
        run.user = user
        run.pruning = pruning
        run.engine = engine
        if timing_only:
            if trace != "synthetic":
                raise WorkloadError(f"timing_only needs trace='synthetic' (layer outputs must be drawn, not "
                                    f"computed), got trace={trace!r}")
            run.timing_only = True
            run.check = False
        run.energy_table = self.energy_table
        check_memory(network_memory_bytes(net), f"simulating network {net.name!r}")
        try:
            records = run.run(progress)
        except MemoryError:
            raise LimitError(f"simulating network {net.name!r}: out of memory (the machine or the process limit "
                             "gave less than the run needed)") from None
        finally:
            # The reference's work arrays serve the layers of one run; none outlives it.
            fn.release_work_arrays()
        # A user trace brings its own weights, biases and activations: no density profile is drawn from.
        return Result(network=net.name, accelerator=self.config.name, config=config_to_dict(self.config),
                      profile="none (real data)" if user is not None else prof.name, trace=trace, seed=int(seed), layers=records,
                      energy_table=table_report(self.config, self.energy_table),
                      saturated=dict(user.saturated) if user is not None else {},
                      notes=list(user.notes) if user is not None else [])


def simulate(network: Network | str, accel: AcceleratorConfig | str | os.PathLike = "nullhop", *,
             overrides: Mapping[str, object] | None = None, **kwargs) -> Result:
    """One-call form of ``Simulator(accel, overrides).run(network, **kwargs)``."""
    return Simulator(accel, overrides).run(network, **kwargs)


def _call_observer(observer, s: ScheduledLayer, x: np.ndarray, written: np.ndarray, w: np.ndarray) -> None:
    """``observer(s, x, written, w)`` if it accepts the weights as a 4th argument, else ``observer(s, x, written)``."""
    try:
        inspect.signature(observer).bind(s, x, written, w)
    except (TypeError, ValueError):   # 3-argument callback, or no introspectable signature
        observer(s, x, written)
    else:
        observer(s, x, written, w)


class _NetworkRun:
    """State of one network run (tensors alive for later consumers)."""

    def __init__(self, net: Network, schedule: list[ScheduledLayer], cfg: AcceleratorConfig,
                 prof: DensityProfile, seed: int, trace: str, check: bool, observer=None) -> None:
        self.net, self.schedule, self.cfg, self.prof = net, schedule, cfg, prof
        self.observer = observer
        self.user: Trace | None = None
        self.pruning = "magnitude"
        self.engine = "compiled"
        self.timing_only = False
        self.energy_table = load_energy_table(cfg)
        self.seed, self.trace, self.check = seed, trace, check
        self.prefetch: Prefetcher | None = None
        self.compile_ahead: CompileAhead | None = None
        # timings left for the end, and those started (see _run_timed)
        self.pool: ThreadPoolExecutor | None = None
        self.deferred: list[tuple] = []
        self.deferred_bytes = 0
        self.timed: list[tuple[int, Future]] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.fused_out: dict[str, tuple[np.ndarray, float]] = {}
        self.densities: dict[int, tuple[np.ndarray, float]] = {}
        consumers = net.consumers()
        self.remaining = {k: len(v) for k, v in consumers.items()}

    # -- data -----------------------------------------------------------------
    def _map_density(self, a: np.ndarray) -> float:
        """``_density(a)``, counted once for a map that serves as one layer's output and the next
        one's input (the few most recent maps are remembered, with the arrays themselves, so
        that an id is not reused while it is remembered)."""
        hit = self.densities.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        d = _density(a)
        self.densities[id(a)] = (a, d)
        while len(self.densities) > _DENSITIES_KEPT:
            del self.densities[next(iter(self.densities))]
        return d

    def _inputs(self, layer: Layer) -> list[np.ndarray]:
        if self.user is not None and len(layer.inputs) == 1 and layer.name in self.user.inputs:
            return [self.user.inputs[layer.name]]
        if self.trace in ("propagated", "trace"):
            out = []
            for src in layer.inputs:
                if src == "input" and "input" not in self.tensors:
                    self.tensors["input"] = (self.user.image if self.user is not None
                                             else self._network_input())
                out.append(self.tensors[src])
            return out
        d = self.prof.input_density_for(self.net, layer)
        return [self._network_input() if src == "input"
                else _synthetic_map(tuple(shape), d, (self.seed, layer.name, "input", i))
                for i, (src, shape) in enumerate(zip(layer.inputs, layer.in_shapes))]

    def _network_input(self) -> np.ndarray:
        """The photo for image-shaped inputs (1 or 3 channels); otherwise (a network
        that starts mid-way, e.g. a SCALE-Sim topology) a synthetic map at the
        profile's default density (Assumption, docs/traces.md)."""
        h, w, c = self.net.input_shape
        if c in (1, 3):
            # cached like the synthetic tensors: no decode and resize of the photo after the first run
            shape = (int(h), int(w), int(c))
            return _SYNTHETIC.get(("image", shape, sample_photo_id()), lambda: image_input(shape), shape)
        d = self.prof.default_output_density if self.prof.default_output_density is not None else 0.5
        return _synthetic_map((h, w, c), d, (self.seed, "input"))

    def _release(self, layer: Layer) -> None:
        for src in layer.inputs:
            self.remaining[src] -= 1
            if self.remaining[src] == 0:
                self.tensors.pop(src, None)

    def _mismatch(self, layer: Layer, got: np.ndarray, want: np.ndarray) -> None:
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = int(np.count_nonzero(got != want)) if got.shape == want.shape else -1
            raise FunctionalMismatchError(
                f"layer {layer.name!r}: compressed-stream output differs from the numpy reference "
                f"({bad} of {want.size} values; shapes {got.shape} vs {want.shape})")

    # -- layers ---------------------------------------------------------------
    def _weights(self, layer: Layer) -> np.ndarray:
        """The layer's int16 weights: the user's, or synthetic pruned to the profile's density."""
        if self.user is not None:
            return self.user.weights[layer.name].reshape(layer.weight_shape)
        if self.prefetch is not None:
            w = self.prefetch.get(layer.name)
            if w is not MISSING:
                return w
        return self._synthetic_weights(layer)

    def _weight_density(self, layer: Layer, w: np.ndarray) -> float:
        """``_density(w)`` of the layer's weights ``w`` (synthetic ones: counted once, when drawn)."""
        if self.user is not None:
            return _density(w)
        return _SYNTHETIC.density(self._weight_key(layer), w)

    def _weight_key(self, layer: Layer) -> tuple:
        shape = tuple(int(v) for v in layer.weight_shape)
        return ("weights", self.seed, layer.name, shape, float(self.prof.weight_density_for(layer)), self.pruning)

    def _synthetic_weights(self, layer: Layer) -> np.ndarray:
        """The layer's synthetic weights, with what derives from them (their count of non-zeros,
        the convolution's weight layout): the weight prefetch thread calls this ahead of the
        layer loop, which then finds them made."""
        key = self._weight_key(layer)
        wd, shape = key[4], key[3]

        def make() -> np.ndarray:
            seed = child_seed(self.seed, layer.name, "weights")
            if self.pruning == "magnitude":
                return synthetic_weights(shape, seed, density=wd)
            return prune_weights(synthetic_weights(shape, seed), wd, method="balanced",
                                 granularity="kernel" if self.pruning == "balanced-kernel" else "kernel_channel")
        w = _SYNTHETIC.get(key, make, shape)
        _SYNTHETIC.density(key, w)
        if self._pairs_kept(layer):
            _SYNTHETIC.pairs(key, w)
        return w

    def _pairs_kept(self, layer: Layer) -> bool:
        """Whether the layer's weights are kept in the channel-pair layout of the accelerator's
        convolution kernel (made once per cached tensor, as the prefetch thread draws them)."""
        return self.user is None and layer.op == "conv" and layer.groups == 1 and not self.timing_only

    def _start_prefetch(self) -> None:
        """Draw the synthetic weights of every layer that will ask for them, in schedule order,
        on a background thread (:mod:`._prefetch`)."""
        if self.user is not None:
            return
        jobs = [(s.layer.name, functools.partial(self._synthetic_weights, s.layer),
                 2 * int(np.prod(s.layer.weight_shape))) for s in self.schedule
                if s.layer.op in ("conv", "fc") and s.where in ("accelerator", "host")
                and not (self.timing_only and s.where == "host")]
        if jobs:
            # Ahead by at most what the seed cache holds anyway (every weight of a VGG16 run).
            self.prefetch = Prefetcher(jobs, _SYNTHETIC.max_bytes)

    def _synthetic_written(self, s: ScheduledLayer) -> np.ndarray:
        """Synthetic trace: the map the PRE writes, drawn at the layer's output density.

        In synthetic mode every layer's input and output maps are part of the
        trace (drawn independently at the profile's densities), so a
        timing-only run that never computes values sees the same bitmaps.
        """
        layer = s.layer
        if layer.op == "fc":
            shape = (1, 1, layer.out_channels)
        else:
            h, w, _ = layer.in_shape
            kh, kw = layer.kernel
            shape = (h + 2 * layer.padding - kh + 1, w + 2 * layer.padding - kw + 1, layer.out_channels)
            if s.fused_pool is not None:
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
        d = self.prof.output_density_for(layer.name) if layer.activation is not None else 1.0
        return _synthetic_map(shape, d, (self.seed, layer.name, "output"))

    def _weighted(self, layer: Layer, x: np.ndarray):
        """Weights, bias, int64 accumulators and the Q8.8 output of a conv/fc layer."""
        w = self._weights(layer)
        wd = self._weight_density(layer, w)
        if layer.op == "fc":
            x = x.reshape(1, 1, -1)
            acc = fn.fc_accumulators(x, w).reshape(1, 1, -1)
        else:
            pairs = _SYNTHETIC.pairs(self._weight_key(layer), w) if self._pairs_kept(layer) else None
            acc = fn.conv2d_accumulators(x, w, 1, layer.padding, layer.groups, pairs, compact=True)
        dec = acc[::layer.stride, ::layer.stride] if layer.stride > 1 else acc
        if self.user is not None:
            bias = self.user.biases.get(layer.name, np.zeros(layer.out_channels, dtype=np.int16))
        elif self.trace == "propagated" and layer.activation is not None:
            bias = _calibrate_bias(dec, self.prof.output_density_for(layer.name))
        else:
            bias = synthetic_bias(layer.out_channels, child_seed(self.seed, layer.name, "bias"))
        out1 = fn.requantize(acc, bias, layer.activation)
        return w, bias, x, out1, wd

    def _conv_timing_only(self, s: ScheduledLayer, x: np.ndarray) -> tuple[LayerResult, None]:
        layer = s.layer
        w = self._weights(layer)
        x_arr = x.reshape(1, 1, -1) if layer.op == "fc" else x
        written = self._synthetic_written(s)
        rec = LayerResult(name=layer.name, op=layer.op, where=s.where, note=s.reason,
                          in_shape=layer.in_shape, out_shape=layer.out_shape, input_density=self._map_density(x),
                          output_density=self._map_density(written), weight_density=self._weight_density(layer, w),
                          macs_dense=layer.macs, functional_check="timing-only")
        self._time(s, rec, x_arr, written, w)
        if s.fused_pool is not None:
            self.fused_out[s.fused_pool.name] = (written, self._map_density(written))
        return rec, None

    def _time(self, s: ScheduledLayer, rec: LayerResult, x_arr: np.ndarray, written: np.ndarray,
              w: np.ndarray) -> None:
        """Cycles, counts and energy of an accelerator layer, into ``rec``: here, or on the threads
        after the functional work (see :meth:`_run_timed`)."""
        if self.observer is not None:
            _call_observer(self.observer, s, x_arr, written, w)
        if self.pool is None:
            self._time_layer(s, rec, x_arr, written, w)
            return
        for _, f in self.timed:     # a timing started early that failed stops the run here
            if f.done() and f.exception() is not None:
                raise f.exception()
        self.deferred.append((len(self.deferred) + len(self.timed), s, rec, x_arr, written, w))
        self.deferred_bytes += x_arr.nbytes + written.nbytes
        if self.deferred_bytes > _DEFERRED_MAX_BYTES:
            self._start_timings()

    def _wait_compile_ahead(self) -> None:
        """If the child is compiling the timing kernels, wait for it: load them, do not compile
        them twice (meanwhile this process compiles the kernels of the later layers)."""
        if self.compile_ahead is not None:
            self.compile_ahead.wait()
            self.compile_ahead = None

    def _time_layer(self, s: ScheduledLayer, rec: LayerResult, x_arr: np.ndarray, written: np.ndarray,
                    w: np.ndarray) -> None:
        layer = s.layer
        self._wait_compile_ahead()
        t = time_layer(s, x_arr, written, self.cfg, weights=w, engine=self.engine)
        a = self.cfg.array
        lat, util, eff, gops = layer_ratios(layer.macs, t.macs_useful, t.cycles, a.num_macs, a.clock_mhz)
        rec.m, rec.passes, rec.input_resident = s.mapping.m, t.passes, t.resident
        rec.macs_useful, rec.mac_ops, rec.cycles = t.macs_useful, t.mac_ops, t.cycles
        rec.latency_us, rec.mac_utilization, rec.efficiency, rec.effective_gops = lat, util, eff, gops
        rec.dram_read_bytes, rec.dram_write_bytes = t.dram_read_bytes, t.dram_write_bytes
        rec.pu_ops, rec.pu_imbalance, rec.pu_time_imbalance = t.pu_ops, t.pu_imbalance, t.pu_time_imbalance
        rec.dram_busy_cycles, rec.handoff_columns = t.dram_busy_cycles, t.handoff_columns
        rec.actions = dict(t.actions)
        rec.units = {u: st.as_dict() for u, st in t.units.items()}
        rec.compute_cycles = rec.units.get("mac_array", {}).get("busy", t.cycles)
        rec.bandwidth_demand_bytes_per_cycle = rec.dram_bytes / rec.compute_cycles if rec.compute_cycles else 0.0
        rec.energy_pj = layer_energy(t.actions, rec.units, t.cycles, self.cfg, self.energy_table)

    def _conv_like(self, s: ScheduledLayer, x: np.ndarray) -> tuple[LayerResult, np.ndarray]:
        layer = s.layer
        if self.timing_only and s.where == "accelerator":
            return self._conv_timing_only(s, x)
        w, bias, x_arr, out1, wd = self._weighted(layer, x)
        written = out1
        if s.fused_pool is not None:
            written = fn.maxpool(out1, 2, 2, 0)
        out = out1[::layer.stride, ::layer.stride] if layer.stride > 1 else out1
        status = "off"
        if self.check:
            if layer.op == "fc":
                want = fn.ref_fc(x_arr, w, bias, layer.activation)
            else:
                want = fn.ref_conv2d(x_arr, w, bias, stride=layer.stride, padding=layer.padding,
                                      groups=layer.groups, activation=layer.activation)
            self._mismatch(layer, out, want)
            if s.fused_pool is not None:
                self._mismatch(s.fused_pool, written, fn.ref_maxpool(out1, 2, 2, 0))
            status = "bit-exact"
        if layer.op == "fc":
            out = out.reshape(layer.out_shape)
        rec = LayerResult(name=layer.name, op=layer.op, where=s.where, note=s.reason,
                          in_shape=layer.in_shape, out_shape=layer.out_shape, input_density=self._map_density(x),
                          output_density=self._map_density(out), weight_density=wd,
                          macs_dense=layer.macs, functional_check=status)
        if self.check and self.user is not None and layer.name in self.user.expected:
            self._reference_check(rec, out)
        if s.where == "accelerator":
            if self.trace == "synthetic":
                written = self._synthetic_written(s)
                rec.output_density = self._map_density(written)
            self._time(s, rec, x_arr, written, w)
        if s.fused_pool is not None:
            self.fused_out[s.fused_pool.name] = (written, self._map_density(out1))
        return rec, out

    def _reference_check(self, rec: LayerResult, out: np.ndarray) -> None:
        """Compare a conv/fc output with the model's own float output (ONNX import traces).

        ``expected`` is the model's float output corrected for the exact Q8.8 rounding of
        the layer's inputs, weights and bias; the simulated output must lie within the
        per-channel ``tolerance`` of it (docs/bring_your_own.md, "Functional check").
        Outputs the simulator saturated are not compared.
        """
        name = rec.name
        got = out.astype(np.float64) / 256.0
        exp = self.user.expected[name].astype(np.float64)
        ref = self.user.reference.get(name)
        tol = self.user.tolerance[name].astype(np.float64)
        valid = ~np.isnan(exp) & (out > -32768) & (out < 32767)
        err = np.abs(got - exp)
        bad = int(np.count_nonzero(valid & (err > tol)))
        rec.reference_check = "ok" if bad == 0 else f"{bad} outside"
        rec.reference_compared = int(np.count_nonzero(valid))
        if ref is not None:
            dev = np.abs(got - ref.astype(np.float64))[valid]
            rec.reference_max_error_lsb = float(dev.max() * 256.0) if dev.size else 0.0

    def _onnx_host(self, s: ScheduledLayer) -> LayerResult:
        """A host layer whose values come from the model's own run: recorded, not computed."""
        layer = s.layer
        d = self.user.densities.get(layer.name) if self.user is not None else None
        if d is None and not self.timing_only:
            raise WorkloadError(f"layer {layer.name!r} ({layer.host_op}) runs on the host with values from the "
                                "model's own run; simulate it with the trace of its ONNX import")
        din, dout = (float(d[0]), float(d[1])) if d is not None else (0.0, 0.0)
        return LayerResult(name=layer.name, op=layer.op, where="host", note=s.reason, in_shape=layer.in_shape,
                           out_shape=layer.out_shape, input_density=din, output_density=dout, weight_density=0.0,
                           macs_dense=0, functional_check="onnxruntime", host_op=layer.host_op)

    def _host(self, s: ScheduledLayer, xs: list[np.ndarray]) -> tuple[LayerResult, np.ndarray]:
        layer = s.layer
        if layer.op in ("conv", "fc"):
            return self._conv_like(s, xs[0])
        if layer.op == "maxpool":
            out = fn.maxpool(xs[0], layer.kernel, layer.stride, layer.padding)
            want = (lambda: fn.ref_maxpool(xs[0], layer.kernel, layer.stride, layer.padding))
        elif layer.op == "avgpool":
            out = fn.avgpool(xs[0], layer.kernel, layer.stride, layer.padding)
            want = (lambda: fn.ref_avgpool(xs[0], layer.kernel, layer.stride, layer.padding))
        elif layer.op == "add":
            out = fn.add(xs[0], xs[1], layer.activation)
            want = (lambda: fn.ref_add(xs[0], xs[1], layer.activation))
        elif layer.op == "concat":
            out = np.concatenate(xs, axis=2)
            want = (lambda: np.concatenate([np.asarray(x) for x in xs], axis=2))
        else:  # pragma: no cover - Network validates ops
            raise WorkloadError(f"layer {layer.name!r}: unsupported op {layer.op!r}")
        status = "off"
        if self.check:
            self._mismatch(layer, out, want())
            status = "bit-exact"
        rec = LayerResult(name=layer.name, op=layer.op, where=s.where, note=s.reason, in_shape=layer.in_shape,
                          out_shape=layer.out_shape, input_density=self._map_density(xs[0]), output_density=self._map_density(out),
                          weight_density=0.0, macs_dense=layer.macs, functional_check=status)
        return rec, out

    def run(self, progress) -> list[LayerResult]:
        if self.engine == "compiled":
            self.compile_ahead = start_compile_ahead(self.cfg)
        self._start_prefetch()
        try:
            # every BLAS call of the run on one thread, and no huge-page hints for its arrays: see
            # workloads.one_blas_thread and workloads.no_huge_pages
            with one_blas_thread(), no_huge_pages():
                return self._run_timed(progress)
        finally:
            if self.prefetch is not None:
                self.prefetch.close()

    def _run_timed(self, progress) -> list[LayerResult]:
        """:meth:`_run_layers`, with the timing of the accelerator layers after the functional
        work, the layers on the threads side by side, when this process has more than one core.

        NOTE: a speed device. The functional work keeps both cores busy on its own; a timing
        thread beside it took their time in turns and left one idle while the other finished
        its share (VGG16: the run took as long as with every timing inline). A layer's timing
        depends only on its own tensors, so the results do not change; an error is raised for
        the earliest layer. Timings wait for the end only up to ``_DEFERRED_MAX_BYTES`` of
        tensors held for them (then they start at once). The compile-ahead child is waited for
        (and the kernels of the later layers compiled meanwhile) on a thread while the layers run.
        """
        threads = numba.get_num_threads()
        if threads < 2:
            return self._run_layers(progress)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sparsesim-timing") as pool:
            self.pool = pool
            try:
                waited = pool.submit(self._wait_compile_ahead) if self.compile_ahead is not None else None
                try:
                    records = self._run_layers(progress)
                except Exception:            # (an interrupt goes straight through)
                    self._start_timings()    # an earlier layer's timing error comes first
                    for _, f in sorted(self.timed, key=lambda t: t[0]):
                        if f.exception() is not None:
                            raise f.exception() from None
                    raise
                finally:
                    if waited is not None:
                        waited.result()
                self._start_timings()
                for _, f in sorted(self.timed, key=lambda t: t[0]):   # the earliest layer's error first
                    f.result()
            finally:
                for _, f in self.timed:
                    f.cancel()
                self.pool, self.deferred, self.timed = None, [], []
        return records

    def _start_timings(self) -> None:
        """Start the deferred timings, the largest layers first (no thread is then left with a
        large one at the end)."""
        for job in sorted(self.deferred, key=lambda j: -j[3].size - j[4].size):
            self.timed.append((job[0], self.pool.submit(self._time_layer, *job[1:])))
        self.deferred, self.deferred_bytes = [], 0

    def _run_layers(self, progress) -> list[LayerResult]:
        records: list[LayerResult] = []
        total = len(self.schedule)
        for i, s in enumerate(self.schedule):
            layer = s.layer
            if s.where == "fused":
                out, in_density = self.fused_out.pop(layer.name)
                records.append(LayerResult(
                    name=layer.name, op=layer.op, where="fused", note=s.reason, in_shape=layer.in_shape,
                    out_shape=layer.out_shape, input_density=in_density, output_density=self._map_density(out), weight_density=0.0, macs_dense=0,
                    functional_check="bit-exact" if self.check else "off"))
            elif layer.op == "host":
                records.append(self._onnx_host(s))
                out = None
            elif self.timing_only and s.where == "host":
                d = self.prof.input_density_for(self.net, layer)
                records.append(LayerResult(
                    name=layer.name, op=layer.op, where="host", note=s.reason, in_shape=layer.in_shape,
                    out_shape=layer.out_shape, input_density=d, output_density=0.0, weight_density=0.0,
                    macs_dense=layer.macs, functional_check="timing-only"))
                out = None
            else:
                xs = self._inputs(layer)
                rec, out = self._conv_like(s, xs[0]) if s.where == "accelerator" else self._host(s, xs)
                records.append(rec)
            if self.trace != "synthetic":
                self.tensors[layer.name] = out
                self._release(layer)
            if progress is not None:
                progress(i + 1, total, layer.name)

        return records
