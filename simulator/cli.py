"""Command line: ``sparsesim run | compare | validate | sweep | plot | config | list``. Parses arguments and calls the API.

Errors in user input print one line on stderr and exit with status 2
(``--debug`` shows the traceback instead).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import signal
import sys
import threading
import warnings
from pathlib import Path

import json

import numpy as np

from dataflows import dataflow_names, list_presets, load_config, parse_set, with_overrides
from workloads import (MEMORY_LIMIT_ENV, USER_NETWORK_SUFFIXES, SparsesimError, WorkloadError, get_network,
                       list_networks, list_profiles, load_trace, load_user_network, memory_limit_bytes,
                       scalesim_networks)

from .engine import ENGINES
from .oracle import validate_network
from .report import (STDOUT, Result, check_output_dir, check_output_path, check_output_paths, config_table,
                     config_toml, csv_text, glossary_text, network_progress, progress_lines, write_atomic)
from .runner import PRUNING_CHOICES, TRACE_MODES, Simulator, clear_tensor_cache, tensor_cache_info
from .studies import compare_dataflows, parse_grid, plot_file, sweep


class _ArgumentError(SparsesimError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would exit itself; keep one-line errors ours
        raise _ArgumentError(f"{self.prog}: {message}")


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _out_file(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected an output file name, got {text!r}")
    return text


def _looks_like_file(name: str) -> bool:
    """A network argument that is no zoo name but looks like a path (``model.pt``, ``nets/x``)."""
    return name not in list_networks() and ("." in os.path.basename(name) or os.sep in name
                                             or (os.altsep is not None and os.altsep in name))


def _gib(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (0 < v <= 1 << 20):      # also false for nan
        raise argparse.ArgumentTypeError(f"expected a number of GiB in (0, 1048576], got {text!r}")
    return v


def _limit_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", type=_gib, metavar="GIB", default=None,
                   help=f"stop before allocating when an input needs more memory than this, in GiB "
                        f"(default: ${MEMORY_LIMIT_ENV} or 8)")


def _data_options(p: argparse.ArgumentParser) -> None:
    """Options that choose the data a run uses (shared by run and compare)."""
    p.add_argument("--profile", default=None, help="density profile (default: the network's published one)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--trace", choices=TRACE_MODES, default="propagated",
                   help="propagated: real photo through the network; synthetic: independent maps per layer")
    _user_data_options(p)
    p.add_argument("--pruning", choices=PRUNING_CHOICES, default="magnitude",
                   help="how synthetic weights reach the profile's weight density (default: magnitude)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the bit-exact comparison with the numpy reference")
    p.add_argument("--timing-only", action="store_true",
                   help="bitmaps and counts only, no values (fast sweeps); implies --trace synthetic")
    _engine_option(p)


def _engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINES, default="compiled",
                   help="implementation of the event model, same results (default: compiled)")


def _user_data_options(p: argparse.ArgumentParser) -> None:
    """--trace-file, --image and --input-shape, for the commands whose other data options differ from run's."""
    p.add_argument("--trace-file", metavar="NPZ", help="real weights and captured activations (.npz, see "
                                                       "docs/bring_your_own.md)")
    p.add_argument("--image", metavar="FILE", help="input image for an ONNX model (default: bundled photo)")
    p.add_argument("--input-shape", dest="input_shape", action="append", default=[], metavar="DIMS",
                   help="sizes of an ONNX model's dynamic input dimensions, in the model's own order, e.g. "
                        "1,3,640,640 (NAME=DIMS for an input other than the first; repeatable); default with "
                        "--image: a dynamic height and width from the image, rounded down to multiples of 32")


def build_parser() -> argparse.ArgumentParser:
    """The ``sparsesim`` argument parser."""
    p = _Parser(prog="sparsesim", description="Cycle-accurate simulator of sparse CNN accelerators (NullHop).")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="simulate a network and print per-layer results", epilog=glossary_text(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("network", help="zoo network name (see `sparsesim list`), an ONNX model (.onnx) or a "
                                   "SCALE-Sim topology (.csv)")
    r.add_argument("--accel", default="nullhop", help="preset name or TOML file (default: nullhop)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set dma.bandwidth_bytes_per_cycle=4 (repeatable)")
    _data_options(r)
    _limit_option(r)
    r.add_argument("--json", metavar="FILE", type=_out_file, help="write the full result as JSON ('-': stdout)")
    r.add_argument("--csv", metavar="FILE", type=_out_file, help="write per-layer rows as CSV ('-': stdout)")
    r.add_argument("--quiet", action="store_true", help="do not print the table")
    c = sub.add_parser("compare", help="run several dataflows on the same array and trace, side by side")
    c.add_argument("network", help="zoo network name, .onnx model or SCALE-Sim .csv")
    c.add_argument("--accel", default="nullhop", help="base preset or TOML file (default: nullhop)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field for every dataflow (repeatable)")
    c.add_argument("--dataflows", nargs="+", default=list(dataflow_names()), choices=dataflow_names(),
                   help="dataflows to compare (default: all)")
    c.add_argument("--baseline", default=None, choices=dataflow_names(),
                   help="speedups are relative to this (default: the first of --dataflows)")
    _data_options(c)
    _limit_option(c)
    c.add_argument("--json", metavar="FILE", type=_out_file, help="write the comparison rows as JSON ('-': stdout)")
    c.add_argument("--csv", metavar="FILE", type=_out_file, help="write the comparison rows as CSV ('-': stdout)")
    p.add_argument("--version", action="version", version="sparsesim 0.1.0")
    sub.add_parser("list", help="list networks, accelerator presets and density profiles")
    sw = sub.add_parser("sweep", help="simulate a network over a grid of config fields (incremental, resumable)")
    sw.add_argument("network", help="zoo network name, .onnx model or SCALE-Sim .csv (rows that chain)")
    sw.add_argument("--accel", default="nullhop", help="base preset or TOML file (default: nullhop)")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field for every point (repeatable)")
    sw.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                    help="a swept field and its values, e.g. --grid macs=64,128,256 (repeatable)")
    sw.add_argument("-o", "--out", required=True, metavar="DIR", help="results directory (re-runs skip finished points)")
    sw.add_argument("--workers", type=_nonneg_int, default=None, help="local worker processes (default: all cores)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="run the points on a Dask cluster (tcp://host:port)")
    sw.add_argument("--profile", default=None, help="density profile")
    sw.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    sw.add_argument("--trace", choices=TRACE_MODES, default="propagated", help="trace mode (default propagated)")
    sw.add_argument("--timing-only", action="store_true", help="bitmaps and counts only (implies --trace synthetic)")
    sw.add_argument("--pruning", choices=PRUNING_CHOICES, default="magnitude", help="weight pruning method")
    _engine_option(sw)
    _user_data_options(sw)
    _limit_option(sw)
    sw.add_argument("--scale-io", action="store_true",
                    help="scale decoder, PRE and encoder widths and DRAM bandwidth with the MAC count, except "
                         "fields set by --grid or --set (docs/sweeps.md, scaling rule)")
    pl = sub.add_parser("plot", help="plot a result JSON (sparsesim run --json) or a sweep directory")
    pl.add_argument("result", help="result JSON file, sweep directory or sweep CSV")
    pl.add_argument("-o", "--out", required=True, metavar="FILE", help="output image (.png, .pdf, .svg)")
    pl.add_argument("--kind", default=None, help="run result: utilization (default), cycles, dram, energy, "
                                                 "bandwidth (per-layer demand) or roofline; sweep: sweep")
    pl.add_argument("--x", default=None, metavar="FIELD", help="sweep: column on the x axis (default: macs)")
    pl.add_argument("--metric", dest="metrics", action="append", default=None, metavar="NAME",
                    help="sweep: metric to plot, e.g. latency_ms, mac_utilization, energy_uj, dram_busy, "
                         "bandwidth_demand_bytes_per_cycle (repeatable; default latency, utilization, energy)")
    pl.add_argument("--where", action="append", default=None, metavar="FIELD=VALUE",
                    help="sweep: keep only points with FIELD=VALUE (repeatable)")
    pl.add_argument("--logy", action="store_true", help="sweep: log-scale y axes")
    cf = sub.add_parser("config", help="list every config field: value, unit, allowed range and source")
    cf.add_argument("accel", nargs="?", default="nullhop", help="preset name or TOML file (default: nullhop)")
    cf.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field (repeatable); macs=N sets array.num_clusters")
    cf.add_argument("--toml", metavar="FILE", type=_out_file,
                    help="write every field as a commented starter TOML file ('-' for stdout)")
    ca = sub.add_parser("cache", help="where the cache of drawn synthetic weights and maps is, and its size")
    ca.add_argument("--clear", action="store_true", help="delete every cached tensor")
    v = sub.add_parser("validate", help="prove cycle accuracy: event model vs clock-stepped reference, per layer")
    v.add_argument("network", help="zoo network name, .onnx model or SCALE-Sim .csv (rows that chain)")
    v.add_argument("--accel", default="nullhop", help="preset name or TOML file (default: nullhop)")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    v.add_argument("--layers", nargs="+", metavar="LAYER", help="only these layers (default: all accelerator layers)")
    v.add_argument("--max-rows", type=_nonneg_int, default=None, metavar="N",
                   help="crop each layer to its first N input rows (default: full layers)")
    v.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    v.add_argument("--profile", default=None, help="density profile")
    v.add_argument("--trace", choices=TRACE_MODES, default="propagated", help="trace mode (default propagated)")
    _user_data_options(v)
    v.add_argument("--json", metavar="FILE", type=_out_file, help="write the agreement table as JSON ('-': stdout)")
    _limit_option(v)
    return p


def _network_and_trace(args):
    """The network (zoo name or user file) and the trace argument for Simulator.run."""
    network, trace = args.network, args.trace
    input_shape = getattr(args, "input_shape", [])
    if input_shape and not (args.network.lower().endswith(USER_NETWORK_SUFFIXES) or _looks_like_file(args.network)):
        raise _ArgumentError("--input-shape applies only to ONNX models (.onnx)")
    if args.network.lower().endswith(".csv") and not args.image and not input_shape:
        try:
            network = load_user_network(args.network)[0]
        except WorkloadError as exc:
            if "scalesim_networks()" not in str(exc):
                raise
            # Rows that do not chain run as independent single-layer networks; the result says so.
            network = scalesim_networks(args.network)
            args.notes = [f"{args.network}: its rows do not chain, so each row ran as an independent "
                          f"single-layer network with its own input ({str(exc).split(': ', 1)[-1].split('; to ')[0]})"]
        if args.trace_file:
            raise _ArgumentError("--trace-file needs a zoo network or an ONNX model, not a SCALE-Sim topology")
        return network, trace
    if args.network.lower().endswith(USER_NETWORK_SUFFIXES) or _looks_like_file(args.network):
        network, user_trace = load_user_network(args.network, image=args.image, input_shape=input_shape)
        if user_trace is not None:
            trace = user_trace
    elif args.image:
        raise _ArgumentError("--image applies only to ONNX models (.onnx)")
    if args.trace_file:
        net = get_network(network) if isinstance(network, str) else network
        trace = load_trace(args.trace_file, net)
    return network, trace


def _timing_only_trace(args, trace):
    """The trace a --timing-only run uses (synthetic), or ``trace`` unchanged without --timing-only."""
    if args.timing_only:
        if not isinstance(trace, str):
            raise _ArgumentError("--timing-only draws synthetic bitmaps; it cannot use an ONNX model's or "
                                 "--trace-file's real data")
        trace = "synthetic"
    return trace


def _run_kwargs(args, trace) -> dict:
    trace = _timing_only_trace(args, trace)
    return dict(profile=args.profile, seed=args.seed, trace=trace, check=args.check, pruning=args.pruning,
                timing_only=args.timing_only, engine=args.engine)


def _one_network(args):
    """The network and trace of a command that needs one network (sweep, validate, compare)."""
    network, trace = _network_and_trace(args)
    if isinstance(network, list):
        raise _ArgumentError(f"{args.network}: {args.notes[0].split(': ', 1)[1].split(', so ')[0]}; "
                             f"sparsesim {args.command} needs one network (sparsesim run takes the rows one by one)")
    return network, trace


def _outputs(args, *options: str) -> bool:
    """Check the output paths of ``options`` before any work; True if one of them is stdout (``-``)."""
    given = {f"--{o}": getattr(args, o) for o in options}
    check_output_paths(given)
    return STDOUT in given.values()


def _run(args) -> int:
    to_stdout = _outputs(args, "json", "csv")
    sim = Simulator(args.accel, parse_set(args.overrides))
    network, trace = _network_and_trace(args)
    if isinstance(network, list):
        name = Path(args.network).stem
        result = Result.concat(name, [sim.run(n, **_run_kwargs(args, trace)) for n in network],
                               notes=getattr(args, "notes", None))
    else:
        progress, close = network_progress(desc=getattr(network, "name", network))
        try:
            result = sim.run(network, progress=progress, **_run_kwargs(args, trace))
        finally:
            close()
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    if not (args.quiet or to_stdout):
        print(result.format_table())
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM during a sweep: unwinds like Ctrl-C, so the workers are stopped and finished points kept."""


def _raise_interrupt(signum, frame):
    raise _Terminated


def _sweep(args) -> int:
    check_output_dir(args.out)
    if threading.current_thread() is not threading.main_thread():
        return _sweep_points(args)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _sweep_points(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sweep_points(args) -> int:
    options: dict[str, object] = {"pruning": args.pruning, "engine": args.engine}
    network, trace = _one_network(args)
    if args.timing_only:
        options["timing_only"] = True
        trace = _timing_only_trace(args, trace)
    name = getattr(network, "name", network)
    # A bar on a terminal; one line per finished point in logs and pipes.
    progress = None if sys.stderr.isatty() else progress_lines(f"sweep {name}")
    res = sweep(network, args.accel, parse_grid(args.grid), overrides=parse_set(args.overrides),
                out_dir=args.out, workers=args.workers, scheduler=args.scheduler, profile=args.profile,
                seed=args.seed, trace=trace, run_options=options, progress=progress, scale_io=args.scale_io)
    print(res.format_table())
    print(f"sparsesim sweep: {len(res.points)} points of {name} in {args.out}, computed "
          f"{len(res.computed)}, reused {len(res.reused)} (sweep_totals.csv, sweep_layers.csv, points/)")
    return 0


def _plot(args) -> int:
    check_output_path(args.out)
    out = plot_file(args.result, args.out, kind=args.kind, x=args.x, metrics=args.metrics, where=args.where,
                    logy=args.logy)
    print(f"sparsesim plot: wrote {out}")
    return 0


def _compare(args) -> int:
    to_stdout = _outputs(args, "json", "csv")
    network, trace = _one_network(args)
    comp = compare_dataflows(network, args.accel, dataflows=args.dataflows, baseline=args.baseline,
                             overrides=parse_set(args.overrides), **_run_kwargs(args, trace))
    rows = comp.rows()
    if args.json:
        write_atomic(args.json, json.dumps(rows, indent=2) + "\n")
    if args.csv:
        write_atomic(args.csv, csv_text(rows))
    if not to_stdout:
        print(comp.format_table())
    return 0


def _validate(args) -> int:
    to_stdout = _outputs(args, "json")
    network, trace = _one_network(args)
    report = validate_network(network, args.accel, overrides=parse_set(args.overrides), layers=args.layers,
                              max_rows=args.max_rows or None, seed=args.seed, profile=args.profile, trace=trace)
    if args.json:
        write_atomic(args.json, json.dumps(report.to_dict(), indent=2) + "\n")
    if not to_stdout:
        print(report.format_table())
    return 0 if report.all_agree else 1


def _config(args) -> int:
    _outputs(args, "toml")
    base = load_config(args.accel)
    origin = f"preset {args.accel}" if args.accel in list_presets() else args.accel
    cfg = with_overrides(base, parse_set(args.overrides))
    if args.toml:
        write_atomic(args.toml, config_toml(cfg, origin, base))
        if args.toml != STDOUT:
            print(f"sparsesim config: wrote {args.toml}")
        return 0
    print(config_table(cfg, origin, base))
    return 0


def _list() -> int:
    print("networks: " + ", ".join(list_networks()))
    print("presets:  " + ", ".join(list_presets()))
    print("profiles: " + ", ".join(list_profiles()) + ", uniform-<density>")
    return 0


def _cache(args) -> int:
    if args.clear:
        print(f"deleted {clear_tensor_cache()} cached tensor file(s)")
        return 0
    info = tensor_cache_info()
    if info["dir"] is None:
        print("tensor cache: off (SPARSESIM_CACHE_DIR=off)")
    else:
        print(f"tensor cache: {info['dir']}\n{info['files']} file(s), {info['bytes'] / 2**20:.1f} MiB of at most "
              f"{info['max_bytes'] / 2**20:.0f} MiB (SPARSESIM_CACHE_DIR, SPARSESIM_CACHE_MAX_MIB)")
    return 0


def _dispatch(args) -> int:
    commands = {"run": _run, "validate": _validate, "compare": _compare, "sweep": _sweep, "plot": _plot,
                "config": _config, "cache": _cache}
    return commands[args.command](args) if args.command in commands else _list()


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(text: str) -> str:
    """An error message as one line: no terminal colour codes, line breaks folded into spaces, any other
    control character (a carriage return in a file name) escaped."""
    text = re.sub(r"\s*\n\s*", " ", _ANSI.sub("", text)).strip()
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _error(text: str) -> int:
    line = _one_line(f"sparsesim: error: {text}".replace("sparsesim: error: sparsesim: ", "sparsesim: error: "))
    print(line, file=sys.stderr)
    return 2


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as a SIGPIPE'd tool does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # so that the final flush at exit cannot fail again
    except (OSError, ValueError, AttributeError):   # stdout replaced by an object without a descriptor
        pass
    return 128 + signal.SIGPIPE


@contextlib.contextmanager
def _quiet_libraries():
    """Library warnings (numpy RuntimeWarnings, onnx, matplotlib) never reach stderr: errors are ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield


@contextlib.contextmanager
def _memory_limit(gib: float | None):
    """``--max-memory``: the limit for this command (and the sweep workers it starts)."""
    if gib is None:
        yield
        return
    old = os.environ.get(MEMORY_LIMIT_ENV)
    os.environ[MEMORY_LIMIT_ENV] = repr(gib)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(MEMORY_LIMIT_ENV, None)
        else:
            os.environ[MEMORY_LIMIT_ENV] = old


def console_main() -> int:
    """Entry point of the ``sparsesim`` console script and ``python -m simulator``: :func:`main`
    on ``sys.argv``, then the process exits."""
    code = main()
    # NOTE: a speed device for the exit. numba and numpy leave some 10^5 objects (types, typing
    # contexts, dispatchers) that the garbage collections of interpreter shutdown walk again;
    # frozen, they are skipped: 0.03 s instead of 0.19 s after a VGG16 run.
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sparsesim`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        with _memory_limit(getattr(args, "max_memory", None)):
            if debug:
                code = _dispatch(args)
            else:
                with _quiet_libraries():
                    code = _dispatch(args)
        sys.stdout.flush()
        return code
    except SparsesimError as exc:
        if debug:
            raise
        return _error(str(exc))
    except BrokenPipeError:
        return _stdout_closed()
    except MemoryError:
        if debug:
            raise
        return _error("out of memory: the input needs more than this machine or process allows; lower "
                      f"--max-memory (now {memory_limit_bytes() / 2**30:g} GiB) to be stopped before allocating")
    except (OSError, RecursionError) as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return _error(f"{where}{why}")
    except KeyboardInterrupt as exc:
        term = isinstance(exc, _Terminated)
        print("sparsesim: terminated" if term else "sparsesim: interrupted", file=sys.stderr)
        return 128 + (signal.SIGTERM if term else signal.SIGINT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
