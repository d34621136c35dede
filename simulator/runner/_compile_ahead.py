"""On a first run, compile the timing kernels in a second process while this one compiles the rest.

numba compiles one kernel at a time per process (a process-wide lock), and on a first run
(empty numba cache) the compiles are most of the wall time. The timing path's kernels (the
count kernels of the dataflow and the pass pipeline, about 3 s of compile) do not depend on the
functional path's, so a child process compiles them into numba's on-disk cache, on the other
core, while this process compiles the functional kernels; this process then loads them from
the cache. Results cannot change: the cached machine code is what this process would have
compiled. Any failure of the child only costs this process the compile it would have done
anyway.

Off with ``SPARSESIM_COMPILE_AHEAD=0``; never started when the timing kernels are already in
the cache, when numba cannot cache, in a sweep's worker process or inside the child itself.
"""
from __future__ import annotations

import multiprocessing
import os
import select
import subprocess
import sys

import numpy as np

from dataflows import AcceleratorConfig, list_presets, load_config, schedule_network
from workloads import ConfigError, get_network

from .. import numerics as fn
from ..engine import compiled_engine_cached, time_layer

__all__ = ["CompileAhead", "start_compile_ahead"]

#: Environment variable: "0" turns the child off.
ENV = "SPARSESIM_COMPILE_AHEAD"
#: Longest wait for the child before this process compiles the kernels itself, seconds.
_WAIT_S = 30.0
#: Network whose first layers the child times (small maps: the compile is all of its work).
_NETWORK = "roshambonet"


class CompileAhead:
    """A running child process; :meth:`wait` before the first call of a timing kernel."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def _ready(self, timeout_s: float) -> bool:
        """Whether the child has said it is done (or ended) within ``timeout_s``."""
        out = self.proc.stdout
        try:
            if out is not None and os.name == "posix":
                if select.select([out], [], [], timeout_s)[0]:
                    out.readline()      # the line _child writes, or "" when it ended
                    return True
                return False
            self.proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
        except (OSError, ValueError):
            return True

    def wait(self, timeout_s: float = _WAIT_S) -> None:
        """Until the child has cached the timing kernels, has ended, or ``timeout_s`` passed;
        after that this process carries on regardless. While the child works, this process
        compiles the functional kernels a run needs after its first layer (max pool, fully
        connected) instead of idling."""
        for warm in _WARM_UPS:
            if self._ready(0.0):
                break
            warm()
        else:
            self._ready(timeout_s)
        _running.append(self.proc)


def _warm_maxpool() -> None:
    # A fresh (writable) map, as a layer's output is.
    fn.maxpool(np.zeros((4, 4, 2), dtype=np.int16), 2, 2, 0)


def _warm_fc() -> None:
    # A writable input and read-only weights, as the seed cache holds them.
    w = np.zeros((2, 1, 1, 4), dtype=np.int16)
    w.setflags(write=False)
    fn.fc_accumulators(np.ones((1, 1, 4), dtype=np.int16), w)


#: Calls that compile (or load) the kernels a run needs next, with a real run's argument types.
_WARM_UPS = (_warm_maxpool, _warm_fc)


#: Children that may still run, kept referenced until they end (a Popen collected while its
#: process runs warns).
_running: list[subprocess.Popen] = []


def start_compile_ahead(cfg: AcceleratorConfig) -> CompileAhead | None:
    """Start the child if it can shorten this run (see the module docstring), else None."""
    flag = os.environ.get(ENV, "1")
    if flag not in ("0", "1"):
        raise ConfigError(f"{ENV} must be 0 (off) or 1 (on), got {flag!r}")
    if flag == "0" or os.environ.get("NUMBA_DISABLE_JIT", "0") != "0":
        return None
    if not sys.executable or getattr(sys, "frozen", False):    # no interpreter to start
        return None
    if multiprocessing.parent_process() is not None or compiled_engine_cached():
        return None
    _running[:] = [p for p in _running if p.poll() is None]
    preset = cfg.name if cfg.name in list_presets() else "nullhop"
    env = dict(os.environ, **{ENV: "0"})
    # The child must compile this very code (numba's cache is per source file): it gets this
    # process's module search path, not one that starts with its working directory, and checks.
    code = (f"import sys; sys.path[:] = {sys.path!r}; from {__name__} import _child; "
            f"_child({preset!r}, {os.path.abspath(__file__)!r})")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None
    return CompileAhead(proc)


def _child(preset: str, parent_file: str | None = None) -> None:
    """Time a conv (with its fused pool) of a small network on random maps, which compiles every
    timing kernel with the argument types of a real run (``dataflows`` normalises them), and say
    so on stdout. Nothing, if this is not the parent's copy of the package (``parent_file``)."""
    if parent_file is not None and os.path.abspath(__file__) != parent_file:
        return
    cfg = load_config(preset)
    rng = np.random.default_rng(0)
    s = next(s for s in schedule_network(get_network(_NETWORK), cfg) if s.where == "accelerator")
    layer = s.layer
    x = (rng.integers(-64, 64, layer.in_shape) * (rng.random(layer.in_shape) < 0.5)).astype(np.int16)
    h, w, c = layer.in_shape
    kh, kw = layer.kernel
    out = (h + 2 * layer.padding - kh + 1, w + 2 * layer.padding - kw + 1, layer.out_channels)
    pooled = (out[0] // 2, out[1] // 2, out[2]) if s.fused_pool is not None else out
    written = np.maximum(rng.integers(-64, 64, pooled), 0).astype(np.int16)
    weights = rng.integers(-64, 64, layer.weight_shape).astype(np.int16)
    time_layer(s, x, written, cfg, weights=weights)
    print("timing kernels cached", flush=True)
