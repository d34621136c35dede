"""Parameter sweeps: the Cartesian product of config values, run in parallel, cached on disk.

:func:`sweep` builds every point's configuration first (so a bad key or value
fails before anything runs), then simulates the points that have no finished
result yet: serially in this process, on a local process pool, or on a Dask
distributed cluster. All three give byte-identical point files.

With ``out_dir`` the sweep is a small on-disk database::

    out_dir/sweep.json              grid, network, accelerator, point ids (written first)
    out_dir/points/<id>.json        one finished point: parameters + Result.to_dict()
    out_dir/sweep_layers.csv        one row per point x layer   (written at the end)
    out_dir/sweep_totals.csv        one row per point           (written at the end)
    out_dir/sweep-<id>.json, ...    an earlier, different sweep's summary, kept (see docs/sweeps.md)

Every file is written atomically (:func:`~simulator.report.write_atomic`), a
point file as soon as its point finishes. Re-running the same sweep loads the
point files that parse and re-runs only the others, so a killed sweep loses
no finished point. A point's id is a SHA-256 over its network, full
accelerator configuration, density profile, seed, trace mode and ``check``
flag; it does not cover the simulator's code, so use a fresh ``out_dir``
after changing the timing model.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import hashlib
import inspect
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue

from dataflows import (AcceleratorConfig, closest_key, config_to_dict, field_names, load_config, schedule_network,
                       with_overrides)
from workloads import (ConfigError, DensityProfile, MappingError, Network, SparsesimError, Trace, WorkloadError,
                       default_profile_for, get_network, get_profile)

from ..engine import check_engine
from ..report import LayerResult, Result, accelerator_label, csv_text, progress_bar, write_atomic
from ..runner import TRACE_MODES, Simulator

__all__ = ["SweepResult", "load_sweep", "parse_grid", "sweep", "GRID_SHORTHANDS", "SCALE_IO_FIELDS"]

#: Grid keys besides the dotted config fields of :func:`~simulator.field_names`.
GRID_SHORTHANDS = ("macs", "dataflow", "profile", "seed", "trace")

#: Version tag of the point-file and sweep.json layout (part of every point id).
_FORMAT = "sparsesim-sweep/1"

_DATAFLOW_FIELD = "array.dataflow"

#: Fields ``scale_io`` scales with the MAC count: the widths of the streams around the array.
SCALE_IO_FIELDS = ("array.decoder_values_per_cycle", "array.pre_words_per_cycle", "array.encoder_values_per_cycle",
                   "dma.bandwidth_bytes_per_cycle")


def _scaled_io(cfg: AcceleratorConfig, base: AcceleratorConfig, fixed: set[str]) -> AcceleratorConfig:
    """``cfg`` with every :data:`SCALE_IO_FIELDS` field not in ``fixed`` scaled by cfg's / base's MAC count.

    Integer widths are rounded to the nearest integer, at least 1; the DRAM
    bandwidth (bytes per cycle) scales exactly.
    """
    factor = cfg.array.num_macs / base.array.num_macs
    updates: dict[str, object] = {}
    for key in SCALE_IO_FIELDS:
        if key in fixed:
            continue
        v = _config_value(base, key)
        updates[key] = v * factor if isinstance(v, float) else max(1, round(v * factor))
    return with_overrides(cfg, updates) if updates and factor != 1 else cfg


# --------------------------------------------------------------------- points
@dataclass(frozen=True)
class _Point:
    """One fully resolved sweep point (internal)."""

    id: str
    params: dict                  # grid key -> canonical value, in grid order
    config: AcceleratorConfig
    profile: str | DensityProfile
    seed: int
    trace: str | Trace


def _trace_key(trace: str | Trace) -> object:
    """A trace mode as is; a user :class:`Trace` (real data) as a SHA-256 over its arrays."""
    if isinstance(trace, str):
        return trace
    h = hashlib.sha256(trace.network.encode("utf-8"))
    tables = {"image": {"": trace.image} if trace.image is not None else {}, "weights": trace.weights,
              "biases": trace.biases, "inputs": trace.inputs}
    for kind, table in tables.items():
        for name in sorted(table):
            a = table[name]
            h.update(f"{kind}/{name}:{a.dtype.str}:{a.shape}".encode("utf-8"))
            h.update(a.tobytes())
    return {"data": h.hexdigest()}


def _canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _profile_key(prof: DensityProfile) -> dict:
    """A stable description of a density profile (its rule function by name, not address)."""
    rule = prof.weight_rule
    return {"name": prof.name, "source": prof.source, "output_density": dict(prof.output_density),
            "weight_density": dict(prof.weight_density), "default_output_density": prof.default_output_density,
            "default_weight_density": prof.default_weight_density,
            "weight_rule": None if rule is None else f"{rule.__module__}.{rule.__qualname__}"}


def _point_id(net: Network, cfg: AcceleratorConfig, prof: DensityProfile, seed: int, trace: object,
              check: bool, run_options: Mapping[str, object] | None = None) -> str:
    key = {"format": _FORMAT, "network": repr(net), "config": config_to_dict(cfg), "profile": _profile_key(prof),
           "seed": seed, "trace": trace, "check": bool(check)}
    if run_options:   # only when given, so that plain sweeps keep their ids
        key["run_options"] = dict(run_options)
    return hashlib.sha256(_canonical_json(key).encode("ascii")).hexdigest()[:16]


def _config_value(cfg: AcceleratorConfig, key: str) -> object:
    if key == "name":
        return cfg.name
    sec, _, fname = key.partition(".")
    return getattr(getattr(cfg, sec), fname)


def _grid_keys() -> list[str]:
    return list(GRID_SHORTHANDS) + field_names()


def _unknown_grid_key(key: object) -> ConfigError:
    candidates = _grid_keys()
    match = closest_key(str(key), candidates)
    if match:
        return ConfigError(f"unknown grid key {key!r} (did you mean {match!r}?)")
    return ConfigError(f"unknown grid key {key!r}; valid keys are {', '.join(candidates)}")


def _parse_int(key: str, value: object, *, minimum: int, what: str) -> int:
    v = value
    if isinstance(v, str):
        try:
            v = int(v.strip())
        except ValueError:
            raise ConfigError(f"sweep grid: {key} must be {what}, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        try:
            import numpy as np
            if isinstance(v, np.integer) and v >= minimum:
                return int(v)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass
        raise ConfigError(f"sweep grid: {key} must be {what}, got {value!r}")
    return int(v)


def _canonical_values(key: str, values: object, base: AcceleratorConfig) -> list:
    """Validate one grid key's values on their own; return them in canonical form."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"sweep grid: values of {key} must be a list, got {values!r}")
    if len(values) == 0:
        raise ConfigError(f"sweep grid: {key} has no values")
    out = []
    for v in values:
        if key == "macs":
            c = _parse_int(key, v, minimum=1, what="a positive integer")
        elif key == "seed":
            c = _parse_int(key, v, minimum=0, what="a non-negative integer")
        elif key == "trace":
            if v not in TRACE_MODES:
                raise ConfigError(f"sweep grid: trace must be one of {', '.join(TRACE_MODES)}, got {v!r}")
            c = v
        elif key == "profile":
            if not isinstance(v, str):
                raise ConfigError(f"sweep grid: profile must be a profile name, got {v!r}")
            try:
                get_profile(v)
            except WorkloadError as exc:
                raise WorkloadError(f"sweep grid: {exc}") from None
            c = v
        else:
            field_key = _DATAFLOW_FIELD if key == "dataflow" else key
            try:
                c = _config_value(with_overrides(base, {field_key: v}), field_key)
            except ConfigError as exc:
                raise ConfigError(f"sweep grid: {exc}") from None
        if c in out:
            raise ConfigError(f"sweep grid: {key} lists {c!r} more than once")
        out.append(c)
    return out


def _expand(net: Network, base: AcceleratorConfig, grid: Mapping[str, Sequence], *, profile, seed: int,
            trace: str | Trace, check: bool, run_options: Mapping[str, object] | None = None,
            scale_io_from: AcceleratorConfig | None = None, fixed: set[str] = frozenset()
            ) -> tuple[dict[str, list], list[_Point]]:
    """Validate ``grid`` and build every point (config, id); nothing is simulated."""
    if not isinstance(grid, Mapping):
        raise ConfigError(f"sweep grid must be a mapping of key -> list of values, got {grid!r}")
    valid = set(_grid_keys())
    for key in grid:
        if key not in valid:
            raise _unknown_grid_key(key)
    clashes = [("macs", "array.num_clusters"), ("dataflow", _DATAFLOW_FIELD)]
    for a, b in clashes:
        if a in grid and b in grid:
            raise ConfigError(f"sweep grid: {a} and {b} set the same field; use one of them")
    canon = {key: _canonical_values(key, values, base) for key, values in grid.items()}

    profiles: dict[str, DensityProfile] = {}
    trace_keys: dict[int, object] = {}
    schedules_ok: set[str] = set()
    points: list[_Point] = []
    keys = list(canon)
    for combo in itertools.product(*(canon[k] for k in keys)):
        params = dict(zip(keys, combo))
        label = _params_label(params)
        updates = {(_DATAFLOW_FIELD if k == "dataflow" else k): v for k, v in params.items()
                   if k not in ("macs", "profile", "seed", "trace")}
        try:
            cfg = with_overrides(base, updates) if updates else base
            if "macs" in params:
                macs, mpc = params["macs"], cfg.array.macs_per_cluster
                if macs % mpc:
                    raise ConfigError(f"macs={macs} is not a multiple of array.macs_per_cluster ({mpc})")
                cfg = with_overrides(cfg, {"array.num_clusters": macs // mpc})
            if scale_io_from is not None:
                cfg = _scaled_io(cfg, scale_io_from, fixed | set(updates))
        except ConfigError as exc:
            raise ConfigError(f"sweep grid point {label}: {exc}") from None
        p = params.get("profile", profile)
        prof = p if isinstance(p, DensityProfile) else profiles.setdefault(p, get_profile(p))
        s = params.get("seed", seed)
        t = params.get("trace", trace)
        # Map every distinct configuration now, so that a layer that does not fit fails fast.
        ckey = _canonical_json(config_to_dict(cfg))
        if ckey not in schedules_ok:
            try:
                schedule_network(net, cfg)
            except MappingError as exc:
                raise MappingError(f"sweep grid point {label}: {exc}") from None
            schedules_ok.add(ckey)
        tkey = trace_keys.setdefault(id(t), _trace_key(t))
        points.append(_Point(id=_point_id(net, cfg, prof, s, tkey, check, run_options), params=params, config=cfg,
                             profile=p, seed=s, trace=t))
    return canon, points


def _params_label(params: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "(base)"


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """Parse command-line ``--grid key=v1,v2,...`` items into a grid for :func:`sweep`.

    Parameters
    ----------
    items : sequence of str
        Strings ``"key=v1,v2,..."``; whitespace around keys and values is
        stripped. Values stay strings; :func:`sweep` parses them to each
        field's type.

    Returns
    -------
    dict of str to list of str
        Keys in the order given.

    Raises
    ------
    ConfigError
        If an item has no ``=``, an empty key or an empty value, or a key is
        given twice.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid expects key=v1,v2,..., got {item!r}")
        if key in grid:
            raise ConfigError(f"--grid key {key!r} is given twice; list all its values in one --grid")
        vals = [v.strip() for v in values.split(",")]
        if any(not v for v in vals):
            raise ConfigError(f"--grid {key}: empty value in {values.strip()!r}")
        grid[key] = vals
    return grid


# ---------------------------------------------------------------- results
def _flatten(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = ";".join(str(v) for v in value)
    else:
        out[prefix] = value


def _totals_row(pid: str, params: Mapping[str, object], result: Result) -> dict[str, object]:
    row: dict[str, object] = {"point": pid, **params}
    desc = {"network": result.network, "accelerator": result.accelerator, "dataflow": result.dataflow,
            "profile": result.profile, "trace": result.trace, "seed": result.seed, "macs": result.num_macs,
            "clock_mhz": result.clock_mhz}
    for k, v in desc.items():
        row.setdefault(k, v)
    flat: dict[str, object] = {}
    _flatten("", result.totals, flat)
    for k, v in flat.items():
        row.setdefault(k, v)
    return row


@dataclass
class SweepResult:
    """The outcome of :func:`sweep`: one :class:`Result` per point.

    Attributes
    ----------
    network : str
        Network name.
    accelerator : str
        Name of the base accelerator configuration.
    grid : dict
        Grid key -> canonical values (parsed to the fields' types).
    ids : list of str
        Stable point ids (16 hex digits of a SHA-256), in point order.
    points : list of dict
        Each point's grid parameters (grid key -> value), in point order: the
        Cartesian product, last key varying fastest.
    results : list of Result
        Each point's result, in point order (loaded ones are rebuilt from their files).
    computed : list of str
        Ids simulated by this call.
    reused : list of str
        Ids loaded from finished point files in ``out_dir``.
    out_dir : Path or None
        Where the sweep's files are.
    """

    network: str
    accelerator: str
    grid: dict
    ids: list[str]
    points: list[dict]
    results: list[Result]
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def label(self) -> str:
        """The accelerator as reports name it: the base config and the dataflow(s) of the points."""
        flows = list(dict.fromkeys(r.dataflow for r in self.results))
        if len(flows) == 1:
            return accelerator_label(self.accelerator, flows[0])
        return f"{self.accelerator} config, dataflows {', '.join(flows)}" if flows else self.accelerator

    def rows(self) -> list[dict[str, object]]:
        """Tidy per point x layer rows: ``point``, the grid parameters, then the layer's columns."""
        return [{"point": pid, **params, **row}
                for pid, params, res in zip(self.ids, self.points, self.results) for row in res.rows()]

    def totals_rows(self) -> list[dict[str, object]]:
        """One row per point: ``point``, the grid parameters, ``macs``, ``clock_mhz``, and the flattened totals.

        Nested totals become dotted columns (``dram_read_bytes.weights``,
        ``units.mac_array.busy``); lists (``host_layers``) are joined with ``;``.
        """
        return [_totals_row(pid, params, res) for pid, params, res in zip(self.ids, self.points, self.results)]

    def to_dataframe(self, level: str = "layer"):
        """A pandas DataFrame of :meth:`rows` (``level="layer"``) or :meth:`totals_rows` (``"point"``)."""
        if level not in ("layer", "point"):
            raise SparsesimError(f"level must be 'layer' or 'point', got {level!r}")
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise SparsesimError("SweepResult.to_dataframe() needs pandas: pip install 'sparsesim[tables]'") from None
        return pd.DataFrame(self.rows() if level == "layer" else self.totals_rows())

    def format_table(self) -> str:
        """Human-readable table, one line per point: parameters, latency, utilization, DRAM, energy."""
        keys = list(self.grid) or ["point"]
        cells = [[str(p.get(k, pid)) for k in keys] for pid, p in zip(self.ids, self.points)]
        widths = [max(len(k), *(len(c[i]) for c in cells)) if cells else len(k) for i, k in enumerate(keys)]
        has_energy = any(r.totals.get("energy_uj") for r in self.results)
        hdr = ("  ".join(f"{k:>{w}}" for k, w in zip(keys, widths))
               + f"  {'MACs':>5} {'latency ms':>11} {'util':>6} {'effic':>7} {'GOp/s':>8} {'DRAM MiB':>9}"
               + f" {'MAC busy':>8} {'DRAM busy':>9} {'need B/c':>8}"
               + (f" {'energy mJ':>10} {'TOP/s/W':>8}" if has_energy else ""))
        lines = [f"sweep: {self.network} on {self.label}, {len(self)} point{'s' if len(self) != 1 else ''}"
                 + (f" ({len(self.reused)} loaded from {self.out_dir})" if self.reused else ""), hdr, "-" * len(hdr)]
        for c, r in zip(cells, self.results):
            t = r.totals
            line = ("  ".join(f"{v:>{w}}" for v, w in zip(c, widths))
                    + f"  {r.num_macs:>5} {t['latency_ms']:>11.3f} {t['mac_utilization']:>6.1%} "
                      f"{t['efficiency']:>7.1%} {t['effective_gops']:>8.1f} {t['dram_bytes'] / 2**20:>9.2f}"
                      f" {t['units'].get('mac_array', {}).get('busy', 0) / max(t['cycles'], 1):>8.1%}"
                      f" {t['dram_busy_cycles'] / max(t['cycles'], 1):>9.1%}"
                      f" {t.get('bandwidth_demand_bytes_per_cycle', 0.0):>8.1f}")
            if has_energy:
                line += f" {t.get('energy_uj', 0.0) / 1e3:>10.3f} {t.get('tops_per_watt_dense', 0.0):>8.3f}"
            lines.append(line)
        lines.append("MAC busy, DRAM busy = cycles the MAC array computes / the DRAM interface transfers, over all "
                     "cycles; need B/c = DRAM bytes per MAC-busy cycle, the bandwidth needed to stay compute-bound")
        return "\n".join(lines)

    def to_csv(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``sweep_layers.csv`` and ``sweep_totals.csv`` atomically into ``directory``; return both paths."""
        d = Path(directory)
        layers = write_atomic(d / "sweep_layers.csv", csv_text(self.rows()))
        totals = write_atomic(d / "sweep_totals.csv", csv_text(self.totals_rows()))
        return layers, totals


# ------------------------------------------------------------- point files
def _point_text(point: _Point, result: Result) -> str:
    doc = {"format": _FORMAT, "id": point.id, "params": point.params, "result": result.to_dict()}
    return json.dumps(doc, indent=1) + "\n"


def _result_from_dict(d: Mapping) -> Result:
    """Rebuild a :class:`Result` from ``Result.to_dict()`` output (unknown keys are ignored)."""
    layer_fields = {f.name for f in dataclasses.fields(LayerResult)}
    layers = []
    for ld in d["layers"]:
        kw = {k: v for k, v in ld.items() if k in layer_fields}
        kw["in_shape"], kw["out_shape"] = tuple(kw["in_shape"]), tuple(kw["out_shape"])
        layers.append(LayerResult(**kw))
    kw = {f.name: d[f.name] for f in dataclasses.fields(Result) if f.name != "layers" and f.name in d}
    return Result(**kw, layers=layers)


def _load_point(path: Path, pid: str) -> tuple[dict, Result] | None:
    """The parameters and result of a finished point file, or None if it is missing, partial or stale."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != _FORMAT or doc.get("id") != pid:
            return None
        result = _result_from_dict(doc["result"])
        # Stale layout (fields added or removed since it was written): re-run.
        if json.loads(json.dumps(result.to_dict())) != doc["result"]:
            return None
        return doc["params"], result
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _run_point(network: str | Network, config: AcceleratorConfig, profile, seed: int, trace: str | Trace,
               check: bool, run_options: Mapping[str, object] | None = None) -> Result:
    """Simulate one point (runs in a worker process or a Dask worker)."""
    return Simulator(config).run(network, profile=profile, seed=seed, trace=trace, check=check,
                                 **(run_options or {}))


#: Simulator.run arguments that sweep sets itself (not allowed in ``run_options``).
_OWN_RUN_ARGS = ("network", "profile", "seed", "trace", "check", "progress", "observer")


def _check_run_options(run_options: Mapping[str, object] | None) -> dict[str, object]:
    """Validated ``run_options`` without the ones that equal :meth:`Simulator.run`'s defaults.

    Dropping defaults normalizes the options, so that ``{"pruning": "magnitude"}`` (what the
    command line passes) and ``{}`` (a Python call) give the same point ids.
    """
    if run_options is None:
        return {}
    if not isinstance(run_options, Mapping):
        raise SparsesimError(f"run_options must be a mapping of Simulator.run arguments, got {run_options!r}")
    params = inspect.signature(Simulator.run).parameters
    allowed = [n for n in params if n != "self" and n not in _OWN_RUN_ARGS]
    out = {}
    for k, v in run_options.items():
        if k in _OWN_RUN_ARGS:
            raise SparsesimError(f"run_options cannot set {k!r}; pass it to sweep() or put it in the grid")
        if k not in allowed:
            raise SparsesimError(f"unknown run option {k!r}; Simulator.run also takes: {', '.join(allowed)}")
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise SparsesimError(f"run option {k!r} must be a plain JSON value (str, number, bool), "
                                 f"got {v!r}") from None
        if k == "engine":
            check_engine(v)
        default = params[k].default
        if default is not inspect.Parameter.empty and type(v) is type(default) and v == default:
            continue
        out[k] = v
    return out


# ---------------------------------------------------------------- executors
class _PointFailed(Exception):
    """Internal: point ``index`` raised ``error`` (re-raised by :func:`sweep` with the point named)."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _named_error(point: _Point, exc: BaseException) -> BaseException:
    """``exc`` with the failing point named: in the message for our errors, as a note otherwise."""
    label = f"sweep point {_params_label(point.params)} (id {point.id})"
    if isinstance(exc, SparsesimError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        try:
            new = type(exc)(f"{label}: {exc.args[0]}")
        except Exception:  # pragma: no cover - an exception class with another signature
            new = None
        if new is not None:
            return new
    if hasattr(exc, "add_note"):
        exc.add_note(f"in {label}")
    return exc


#: Thread-count variables of numba and the BLAS/OpenMP runtimes numpy may load; a worker's are set
#: in its environment before it starts (they are read once, when the library loads).
_THREAD_ENV = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _worker_env(threads: int):
    """``os.environ`` with every :data:`_THREAD_ENV` variable set to ``threads`` for the block.

    NOTE: "spawn" workers copy the parent's environment when they start, and they import numpy
    and numba before any initializer runs, so the only way to give a worker fewer BLAS and numba
    pool threads is its environment at start. Without it, N workers each start a pool of every
    core's threads; OpenBLAS's spin-waiting threads then compete with the other worker.
    """
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: str(threads) for k in _THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: Environment variable: how pool workers start, "auto" (fork where safe) or "spawn" (always).
START_ENV = "SPARSESIM_SWEEP_START"
#: Libraries with native thread pools that do not survive a fork (their sessions or pools, copied
#: into the child, hang or crash it); a process that imported one spawns its workers.
_FORK_UNSAFE_MODULES = ("onnxruntime", "torch", "tensorflow", "jax")


def _start_setting() -> str:
    """:data:`START_ENV`, checked: ``"auto"`` (the default) or ``"spawn"``."""
    value = os.environ.get(START_ENV, "auto")
    if value not in ("auto", "spawn"):
        raise ConfigError(f"{START_ENV} must be 'auto' (fork where safe) or 'spawn', got {value!r}")
    return value


def _start_method() -> str:
    """How the sweep starts its workers: ``"fork"`` where that is safe, else ``"spawn"``.

    NOTE: a forked worker starts with this process's imports, so it begins its first point at once
    instead of after about 0.3 s of interpreter start and imports. Forking is safe only on Linux,
    with no other thread in this process (a thread holding a lock at the fork leaves it held for
    ever in the child), no GNU OpenMP pool launched by numba (its child aborts on the next
    parallel region; numba's ``workqueue`` and ``tbb`` layers survive a fork) and none of
    :data:`_FORK_UNSAFE_MODULES` imported (their threads are not Python's, so not counted).
    """
    if _start_setting() == "spawn":
        return "spawn"
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    if threading.active_count() > 1 or any(m in sys.modules for m in _FORK_UNSAFE_MODULES):
        return "spawn"
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:       # no parallel kernel has run in this process: no pool yet
        layer = None
    return "fork" if layer in (None, "workqueue", "tbb") else "spawn"


@contextlib.contextmanager
def _blas_threads(n: int):
    """The BLAS libraries numpy loaded limited to ``n`` threads for the block.

    NOTE: an idle OpenBLAS thread spins on its core for about 0.1 s after every call; in a sweep,
    that is the core another worker computes on.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _init_worker(numba_threads: int) -> None:
    """Pool worker initializer: share the cores, and exit as soon as the sweep's process dies.

    NOTE: some numba kernels are ``parallel=True`` and would each use every core;
    N workers x all cores oversubscribes the machine and runs slower than one
    process, so each worker gets ``cores // N`` numba threads (also its pool size and
    its BLAS threads, set through :func:`_worker_env` when a spawned worker starts; a
    forked one has this process's pools, so its BLAS threads are limited here).

    NOTE: ``ProcessPoolExecutor`` workers otherwise outlive a killed parent,
    blocked on their task queue forever. The parent's sentinel becomes ready
    only when the parent exits.
    """
    import numba

    numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=numba_threads, user_api="blas")
    # NOTE: the sweep waits for its workers to exit. Frozen, the objects numba and numpy made are
    # skipped by the collections of interpreter shutdown (0.03 s instead of about 0.2 s).
    atexit.register(gc.freeze)
    # Ctrl-C reaches the whole process group: the sweep's process stops the workers itself (_stop_workers),
    # so a worker neither prints a KeyboardInterrupt traceback nor finishes its point first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker has this process's handlers: the command line's SIGTERM handler raises, and the
    # pool worker would report that as the point's error instead of ending when the sweep stops it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always set in a pool worker
        return

    def wait_for_parent() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=wait_for_parent, name="sparsesim-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _numba_threads(n: int):
    """numba's thread count of this thread set to ``n`` for the block (a sweep's own share of the cores)."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _run_here(task: tuple) -> Result:
    """``_run_point(*task)`` in this process; a signal that lands inside a numba kernel stays an interrupt.

    NOTE: Ctrl-C (or the CLI's SIGTERM handler) raising while a compiled kernel runs comes out of
    the kernel's call as a ``SystemError`` whose cause is the ``KeyboardInterrupt``.
    """
    try:
        return _run_point(*task)
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


def _run_pool(tasks: list[tuple[int, tuple]], workers: int, finish: Callable[[int, Result], None]) -> None:
    """Run ``tasks`` (longest first) on ``workers`` processes: this one and ``workers - 1`` spawned ones.

    NOTE: this process takes points itself instead of only waiting: it is already started, imported
    and has its kernels loaded, while a spawned worker needs about 0.6 s for that. A feeder thread
    hands each spawned worker its next point the moment it finishes one, so neither side waits for
    the other to reach the end of a point; this thread takes the rest from the same list and
    finishes every point (writes its file, shows progress) between its own.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    method = _start_method()
    ex = ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context(method),
                             initializer=_init_worker, initargs=(threads,))
    pending = list(reversed(tasks))          # pop() takes the longest
    lock = threading.Lock()
    state: dict = {"error": None, "stop": False}
    done: SimpleQueue = SimpleQueue()        # (index, finished future) from the feeder

    def take() -> tuple[int, tuple] | None:
        with lock:
            if pending and state["error"] is None and not state["stop"]:
                return pending.pop()
            return None

    def fail(i: int, exc: BaseException) -> None:
        with lock:
            if state["error"] is None:
                state["error"] = (i, exc)

    def feed(running: dict) -> None:
        while running:
            for fut in wait(running, return_when=FIRST_COMPLETED).done:
                i = running.pop(fut)
                if not fut.cancelled() and fut.exception() is not None:
                    fail(i, fut.exception())     # no further point starts
                done.put((i, fut))
                nxt = take()
                if nxt is not None:
                    try:
                        running[ex.submit(_run_point, *nxt[1])] = nxt[0]
                    except Exception as exc:   # the pool broke or shut down
                        fail(nxt[0], exc)

    def drain() -> None:
        while not done.empty():
            i, fut = done.get()
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                fail(i, exc)
                continue
            finish(i, fut.result())

    try:
        mine = take()        # the longest point: this process starts on it at once
        # The workers start during these submits (the pool spawns one per submit), with their
        # share of the cores in their environment; later submits go to the running workers.
        # (A forked worker keeps this environment: numba refuses a thread count changed under it.)
        with _worker_env(threads) if method == "spawn" else contextlib.nullcontext():
            first = [t for t in (take() for _ in range(workers - 1)) if t is not None]
            running = {ex.submit(_run_point, *task): i for i, task in first}
        feeder = threading.Thread(target=feed, args=(running,), name="sparsesim-sweep-feeder", daemon=True)
        feeder.start()
        with _numba_threads(threads), _blas_threads(threads):
            while mine is not None:
                try:
                    result = _run_here(mine[1])
                except Exception as exc:
                    fail(mine[0], exc)
                    break
                finish(mine[0], result)
                drain()
                mine = take()
        feeder.join()
        drain()
    except BaseException:
        with lock:
            state["stop"] = True
        _stop_workers(ex)
        raise
    ex.shutdown(wait=True)
    if state["error"] is not None:
        raise _PointFailed(*state["error"])


def _stop_workers(ex: ProcessPoolExecutor) -> None:
    """Interrupted (Ctrl-C, SIGTERM): end the workers now; finished points are already on disk.

    NOTE: ``shutdown(wait=False)`` alone lets every worker finish its running point, and the
    interpreter waits for that at exit (tens of seconds on a large network).
    """
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, ValueError, AttributeError):   # already gone
            pass
    ex.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.join(timeout=1)


def _dask_client(scheduler):
    try:
        import distributed
    except ImportError:
        raise SparsesimError("running a sweep on a Dask scheduler needs dask.distributed: "
                             "pip install 'sparsesim[dask]'") from None
    if isinstance(scheduler, distributed.Client):
        return distributed, scheduler, False
    address = scheduler if isinstance(scheduler, str) else getattr(scheduler, "scheduler_address", None)
    if not isinstance(address, str):
        raise SparsesimError(f"scheduler must be a Dask scheduler address (tcp://host:port), a "
                             f"distributed.Client or a cluster object, got {scheduler!r}")
    try:
        client = distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SparsesimError(f"cannot connect to the Dask scheduler at {address!r}: {exc}") from None
    return distributed, client, True


def _run_dask(tasks: list[tuple[int, tuple]], ids: list[str], scheduler,
              finish: Callable[[int, Result], None]) -> None:
    distributed, client, owned = _dask_client(scheduler)
    try:
        futures = {}
        for i, task in tasks:
            fut = client.submit(_run_point, *task, key=f"sparsesim-point-{ids[i]}", pure=False)
            futures[fut] = i
        error: tuple[int, BaseException] | None = None
        try:
            for fut in distributed.as_completed(list(futures), loop=client.loop):
                if fut.status == "cancelled":
                    continue
                if fut.status == "error":
                    if error is None:
                        error = (futures[fut], fut.exception())
                        client.cancel([f for f in futures if not f.done()])
                    continue
                finish(futures[fut], fut.result())
        except BaseException:
            client.cancel(list(futures))
            raise
        if error is not None:
            raise _PointFailed(*error)
    finally:
        if owned:
            client.close()


# -------------------------------------------------------------------- sweep
def sweep(network: Network | str, accel: AcceleratorConfig | str | os.PathLike = "nullhop",
          grid: Mapping[str, Sequence] | None = None, *, overrides: Mapping[str, object] | None = None,
          out_dir: str | os.PathLike | None = None, workers: int | None = None, scheduler=None,
          profile: str | DensityProfile | None = None, seed: int = 0, trace: str | Trace = "propagated",
          check: bool = False, run_options: Mapping[str, object] | None = None,
          progress: bool | Callable[[int, int, str], None] | None = None, scale_io: bool = False) -> SweepResult:
    """Simulate ``network`` at every point of a parameter grid.

    Parameters
    ----------
    network : Network or str
        A network or a zoo name.
    accel : AcceleratorConfig, str or path
        Base configuration: preset name, TOML file or config object.
    grid : mapping of str to sequence
        Key -> values. Keys are dotted config fields (:func:`~simulator.field_names`,
        e.g. ``"array.clock_mhz"`` in MHz, ``"dma.bandwidth_bytes_per_cycle"``,
        ``"memory.input_memory_kib"``) or the shorthands ``macs`` (total MAC
        count, realised as ``array.num_clusters = macs / array.macs_per_cluster``),
        ``dataflow`` (``array.dataflow``), ``profile``,
        ``seed`` and ``trace``. Values may be strings (``"16"``), parsed to the
        field's type. Points are the Cartesian product, last key varying fastest.
        ``None`` or ``{}`` is one point, the base configuration.
    overrides : mapping, optional
        Dotted-key overrides applied to ``accel`` before the grid.
    out_dir : str or path, optional
        Directory for point files and CSVs (see the module docstring); points
        already finished there are loaded, not re-run.
    workers : int, optional
        Local processes computing points: this one and ``workers - 1`` worker
        processes (forked on Linux where safe, else spawned; ``SPARSESIM_SWEEP_START=spawn``
        always spawns them, docs/sweeps.md); ``None`` uses every core, ``1`` runs
        serially in this process.
        Not allowed together with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Run the points on a Dask cluster: a scheduler address
        (``"tcp://host:8786"``), a ``distributed.Client`` or a cluster object
        (needs ``pip install 'sparsesim[dask]'``).
    profile, seed, trace, check
        As for :meth:`Simulator.run`, for every point whose grid does not set them.
        ``trace`` may be a :class:`~workloads.Trace` (an ONNX model's or a trace
        file's real data); its arrays' SHA-256 is part of the point ids.
        ``check`` defaults to False here (sweeps are about timing).
    run_options : mapping, optional
        Further :meth:`Simulator.run` arguments for every point, as plain JSON
        values, e.g. ``{"timing_only": True}`` (with ``trace="synthetic"``) or
        ``{"pruning": "balanced"}``. They are part of the point ids.
    progress : bool or callable, optional
        ``None`` shows a tqdm bar when stderr is a terminal, ``True``/``False``
        force it on/off; a callable is called as ``progress(done, total, label)``
        after every point (loaded points are counted up front).
    scale_io : bool
        Scale the streams around the MAC array with it (docs/sweeps.md, "Scaling
        rule"): every field of :data:`SCALE_IO_FIELDS` (decoder, PRE and encoder
        widths, DRAM bandwidth) is multiplied by the point's MAC count over the
        base configuration's, except fields the grid or ``overrides`` set.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        Unknown grid key (with a suggestion), a bad value (naming the key and
        value), ``macs`` not a multiple of ``array.macs_per_cluster``, a bad
        ``SPARSESIM_SWEEP_START``.
    MappingError
        A point's configuration cannot map a layer of the network.
    SparsesimError
        Bad ``workers``/``scheduler``; any error of a point is re-raised after
        the points already running have finished and been written.

    Examples
    --------
    >>> res = sweep("facedet", grid={"macs": [64, 128]}, workers=1, progress=False)
    >>> [row["macs"] for row in res.totals_rows()]
    [64, 128]
    """
    if workers is not None and scheduler is not None:
        raise SparsesimError("pass either workers (local processes) or scheduler (Dask), not both")
    _start_setting()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SparsesimError(f"workers must be a positive integer or None, got {workers!r}")
    if not isinstance(trace, Trace) and trace not in TRACE_MODES:
        raise WorkloadError(f"sweep: trace must be one of {', '.join(TRACE_MODES)} or a Trace, got {trace!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WorkloadError(f"sweep: seed must be a non-negative integer, got {seed!r}")
    net = get_network(network) if isinstance(network, str) else network
    if not isinstance(net, Network):
        raise WorkloadError(f"network must be a Network or a zoo name, got {network!r}")
    if isinstance(trace, Trace):
        trace.validate(net)
    if profile is None:
        profile = default_profile_for(net.name)
    elif not isinstance(profile, (str, DensityProfile)):
        raise WorkloadError(f"profile must be a profile name or a DensityProfile, got {profile!r}")
    if isinstance(profile, str):
        get_profile(profile)
    base = accel if isinstance(accel, AcceleratorConfig) else load_config(accel)
    if overrides:
        base = with_overrides(base, overrides)
    run_options = _check_run_options(run_options)
    io_base = None
    if scale_io:
        io_base = accel if isinstance(accel, AcceleratorConfig) else load_config(accel)
    canon, points = _expand(net, base, grid or {}, profile=profile, seed=seed, trace=trace, check=check,
                            run_options=run_options, scale_io_from=io_base, fixed=set(overrides or {}))
    ids = [p.id for p in points]

    results: list[Result | None] = [None] * len(points)
    reused: list[str] = []
    points_dir = Path(out_dir) / "points" if out_dir is not None else None
    if out_dir is not None:
        head = {"format": _FORMAT, "network": net.name, "accelerator": base.name, "grid": canon,
                "base": {"config": config_to_dict(base),
                         "profile": profile if isinstance(profile, str) else profile.name,
                         "seed": seed, "trace": _trace_key(trace), "check": bool(check), "run_options": run_options,
                         "scale_io": bool(scale_io)},
                "points": [{"id": p.id, "params": p.params} for p in points]}
        _keep_other_sweep(Path(out_dir), head)
        write_atomic(Path(out_dir) / "sweep.json", json.dumps(head, indent=1) + "\n")
        for i, p in enumerate(points):
            loaded = _load_point(points_dir / f"{p.id}.json", p.id)
            if loaded is not None:
                results[i] = loaded[1]
                reused.append(p.id)

    todo = [i for i, r in enumerate(results) if r is None]
    computed: list[str] = []
    net_arg = network if isinstance(network, str) else net
    tasks = [(i, (net_arg, points[i].config, points[i].profile, points[i].seed, points[i].trace, bool(check),
                  run_options)) for i in todo]

    callback = progress if callable(progress) else None
    bar = progress_bar(len(points), f"sweep {net.name}", unit="point", initial=len(points) - len(todo),
                       enabled=None if progress is None else (bool(progress) and callback is None))
    done = len(points) - len(todo)
    if callback is not None and done:
        callback(done, len(points), "loaded")

    def finish(i: int, result: Result) -> None:
        nonlocal done
        p = points[i]
        if points_dir is not None:
            write_atomic(points_dir / f"{p.id}.json", _point_text(p, result))
        results[i] = result
        computed.append(p.id)
        done += 1
        label = _params_label(p.params)
        bar.update(1, label)
        if callback is not None:
            callback(done, len(points), label)

    with bar:
        try:
            if not todo:
                pass
            elif scheduler is not None:
                _run_dask(tasks, ids, scheduler, finish)
            else:
                n = min(workers or os.cpu_count() or 1, len(todo))
                if n <= 1:
                    for i, task in tasks:
                        try:
                            result = _run_here(task)
                        except Exception as exc:
                            raise _PointFailed(i, exc) from None
                        finish(i, result)
                else:
                    # NOTE: longest first (MACs per array MAC, a cheap stand-in for the work units), so that no
                    # long point starts last while the other workers idle; results keep the grid order.
                    tasks.sort(key=lambda t: -net.macs / points[t[0]].config.array.num_macs)
                    _run_pool(tasks, n, finish)
        except _PointFailed as failed:
            named = _named_error(points[failed.index], failed.error)
            # Chain the original (with its traceback) or keep its own cause; hide _PointFailed.
            raise named from (failed.error if named is not failed.error else failed.error.__cause__)

    res = SweepResult(network=net.name, accelerator=base.name, grid=canon, ids=ids,
                      points=[dict(p.params) for p in points], results=results, computed=computed,
                      reused=reused, out_dir=Path(out_dir) if out_dir is not None else None)
    if out_dir is not None:
        res.to_csv(out_dir)
    return res


def _sweep_identity(head: Mapping) -> str:
    return _canonical_json({k: head.get(k) for k in ("format", "network", "grid", "base")})


#: Summary files of a sweep directory; a different sweep's are kept under ``<stem>-<sweep id><suffix>``.
_SUMMARY_FILES = ("sweep.json", "sweep_layers.csv", "sweep_totals.csv")


def _keep_other_sweep(out_dir: Path, head: Mapping) -> str | None:
    """Before a sweep writes its summary into ``out_dir``: if the summary there is a different sweep's, keep it
    as ``sweep-<id>.json``, ``sweep_layers-<id>.csv``, ``sweep_totals-<id>.csv`` (the point files are shared by
    id). Returns that id, or None. A ``sweep.json`` that is no sparsesim sweep is never touched: refused."""
    path = out_dir / "sweep.json"
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise SparsesimError(f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        old = json.loads(text)
        if not isinstance(old, dict) or old.get("format") != _FORMAT:
            raise ValueError
    except ValueError:
        raise SparsesimError(f"{str(path)!r} is not a sparsesim sweep file; give the sweep another directory") from None
    if _sweep_identity(old) == _sweep_identity(head):
        return None
    sid = hashlib.sha256(_sweep_identity(old).encode("ascii")).hexdigest()[:12]
    for name in _SUMMARY_FILES:
        stem, _, suffix = name.partition(".")
        try:
            os.replace(out_dir / name, out_dir / f"{stem}-{sid}.{suffix}")
        except FileNotFoundError:   # a sweep that never finished has no CSVs
            pass
        except OSError as exc:
            raise SparsesimError(f"cannot keep the earlier sweep's {name} in {str(out_dir)!r}: "
                                 f"{exc.strerror or exc}") from None
    return sid


def load_sweep(out_dir: str | os.PathLike) -> SweepResult:
    """Load a sweep directory written by :func:`sweep` (finished points only).

    Points whose files are missing or unreadable (a sweep still running or
    killed) are left out; ``ids``, ``points`` and ``results`` stay aligned.

    Raises
    ------
    SparsesimError
        If ``out_dir/sweep.json`` is missing or unreadable (naming the file).
    """
    d = Path(out_dir)
    head_path = d / "sweep.json"
    try:
        head = json.loads(head_path.read_text(encoding="utf-8"))
        if head.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} file")
        entries = [(e["id"], e["params"]) for e in head["points"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SparsesimError(f"cannot read sweep file {str(head_path)!r}: {exc}") from None
    ids, params, results = [], [], []
    for pid, prm in entries:
        loaded = _load_point(d / "points" / f"{pid}.json", pid)
        if loaded is not None:
            ids.append(pid)
            params.append(prm)
            results.append(loaded[1])
    return SweepResult(network=head.get("network", ""), accelerator=head.get("accelerator", ""),
                       grid=head.get("grid", {}), ids=ids, points=params, results=results, reused=list(ids),
                       out_dir=d)
