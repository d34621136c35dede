"""Tests for simulator.studies (sweeps) (grid expansion, execution back-ends, on-disk cache, crash safety)
and the progress bars."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import simulator.studies._sweep as sweep_mod
from simulator import (ConfigError, MappingError, Result, SparsesimError, SweepResult, load_sweep,
                       network_progress, parse_grid, progress_bar, simulate, sweep)
from workloads import WorkloadError

FACEDET_LAYERS = 6
ROSHAMBO_LAYERS = 11


def _point_files(out: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((out / "points").glob("*.json"))}


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------ grid expansion
def test_grid_is_the_cartesian_product_in_grid_order():
    res = sweep("facedet", grid={"macs": [64, 128], "seed": [0, 1, 2]}, workers=1, progress=False)
    assert res.points == [{"macs": m, "seed": s} for m in (64, 128) for s in (0, 1, 2)]
    assert len(res) == len(res.ids) == len(res.results) == 6
    assert [r.seed for r in res.results] == [0, 1, 2] * 2
    assert [r.num_macs for r in res.results] == [64] * 3 + [128] * 3
    assert len(set(res.ids)) == 6
    assert res.computed == res.ids and res.reused == []


def test_macs_shorthand_sets_num_clusters():
    res = sweep("facedet", grid={"macs": [32, 256]}, workers=1, progress=False)
    assert [r.config["array"]["num_clusters"] for r in res.results] == [2, 16]
    assert [r.config["array"]["macs_per_cluster"] for r in res.results] == [16, 16]


def test_macs_shorthand_with_macs_per_cluster_in_the_grid():
    res = sweep("facedet", grid={"array.macs_per_cluster": [8, 32], "macs": [128]}, workers=1, progress=False)
    assert [(r.config["array"]["num_clusters"], r.config["array"]["macs_per_cluster"]) for r in res.results] == \
        [(16, 8), (4, 32)]
    assert all(r.num_macs == 128 for r in res.results)


def test_string_values_are_parsed_to_the_field_types():
    res = sweep("facedet", grid=parse_grid(["macs=64,128", "dma.bandwidth_bytes_per_cycle=4", "seed=3"]),
                workers=1, progress=False)
    assert res.grid == {"macs": [64, 128], "dma.bandwidth_bytes_per_cycle": [4.0], "seed": [3]}
    assert res.points[0] == {"macs": 64, "dma.bandwidth_bytes_per_cycle": 4.0, "seed": 3}
    assert res.results[0].config["dma"]["bandwidth_bytes_per_cycle"] == 4.0
    # Same canonical parameters -> same point id as the typed grid.
    typed = sweep("facedet", grid={"macs": [64, 128], "dma.bandwidth_bytes_per_cycle": [4.0], "seed": [3]},
                  workers=1, progress=False)
    assert typed.ids == res.ids


def test_profile_trace_and_overrides_reach_the_points():
    res = sweep("facedet", grid={"profile": ["uniform-0.3", "uniform-0.7"], "trace": ["synthetic"]},
                overrides={"dma.latency_cycles": 50}, workers=1, progress=False)
    assert [r.profile for r in res.results] == ["uniform-0.3", "uniform-0.7"]
    assert all(r.trace == "synthetic" for r in res.results)
    assert all(r.config["dma"]["latency_cycles"] == 50 for r in res.results)


def test_empty_grid_is_one_point_equal_to_simulate():
    res = sweep("facedet", workers=1, progress=False)
    assert res.points == [{}]
    assert res.results[0].to_dict() == simulate("facedet", check=False).to_dict()


def test_dataflow_key_maps_to_array_dataflow():
    res = sweep("facedet", grid={"dataflow": ["nullhop", "rsnn"]}, workers=1, progress=False)
    assert [r.config["array"]["dataflow"] for r in res.results] == ["nullhop", "rsnn"]


# --------------------------------------------------------------- validation
@pytest.mark.parametrize("grid, exc, message", [
    ({"array.num_cluster": [1]}, ConfigError,
     "unknown grid key 'array.num_cluster' (did you mean 'array.num_clusters'?)"),
    ({"num_clusters": [1]}, ConfigError, "unknown grid key 'num_clusters' (did you mean 'array.num_clusters'?)"),
    ({"mac": [16]}, ConfigError, "unknown grid key 'mac' (did you mean 'macs'?)"),
    ({"array.num_clusters": [2, -1]}, ConfigError,
     "sweep grid: array.num_clusters must be a positive integer, got -1"),
    ({"dma.latency_cycles": ["abc"]}, ConfigError, "sweep grid: dma.latency_cycles must be an integer, got 'abc'"),
    ({"macs": [0]}, ConfigError, "sweep grid: macs must be a positive integer, got 0"),
    ({"macs": ["lots"]}, ConfigError, "sweep grid: macs must be a positive integer, got 'lots'"),
    ({"macs": [100]}, ConfigError,
     "sweep grid point macs=100: macs=100 is not a multiple of array.macs_per_cluster (16)"),
    ({"macs": [16, "16"]}, ConfigError, "sweep grid: macs lists 16 more than once"),
    ({"macs": []}, ConfigError, "sweep grid: macs has no values"),
    ({"macs": 16}, ConfigError, "sweep grid: values of macs must be a list, got 16"),
    ({"macs": "16,32"}, ConfigError, "sweep grid: values of macs must be a list, got '16,32'"),
    ({"macs": [64], "array.num_clusters": [4]}, ConfigError,
     "sweep grid: macs and array.num_clusters set the same field; use one of them"),
    ({"seed": [-1]}, ConfigError, "sweep grid: seed must be a non-negative integer, got -1"),
    ({"trace": ["real"]}, ConfigError, "sweep grid: trace must be one of propagated, synthetic, got 'real'"),
    ({"array.max_kernel_size": [3]}, MappingError,
     "sweep grid point array.max_kernel_size=3: layer 'conv1': kernel 5x5 exceeds array.max_kernel_size=3 "
     "(NullHop supports 1x1..7x7)"),
])
def test_bad_grids_fail_fast_with_pinned_messages(tmp_path, grid, exc, message):
    out = tmp_path / "out"
    with pytest.raises(exc) as info:
        sweep("facedet", grid=grid, out_dir=out, workers=1, progress=False)
    assert str(info.value) == message
    assert not out.exists()   # nothing was written, nothing ran


def test_unknown_key_without_a_close_match_lists_the_valid_keys():
    with pytest.raises(ConfigError, match=r"^unknown grid key 'zzzz'; valid keys are macs, .*array\.num_clusters"):
        sweep("facedet", grid={"zzzz": [1]}, workers=1, progress=False)


def test_unknown_profile_fails_fast():
    with pytest.raises(WorkloadError, match=r"^sweep grid: unknown density profile 'nope'"):
        sweep("facedet", grid={"profile": ["nope"]}, workers=1, progress=False)


def test_bad_value_is_found_before_any_point_runs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_mod, "_run_point", lambda *a: calls.append(a))
    with pytest.raises(ConfigError, match=r"^sweep grid: dma.beat_bytes must be >= 2, got 1$"):
        sweep("facedet", grid={"macs": [64, 128], "dma.beat_bytes": [8, 1]}, workers=1, progress=False)
    assert calls == []


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers must be a positive integer or None, got 0"),
    ({"workers": True}, "workers must be a positive integer or None, got True"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"},
     "pass either workers (local processes) or scheduler (Dask), not both"),
    ({"scheduler": 42}, "scheduler must be a Dask scheduler address (tcp://host:port), a distributed.Client or a "
                        "cluster object, got 42"),
])
def test_bad_execution_arguments(kwargs, message):
    with pytest.raises(SparsesimError) as info:
        sweep("facedet", grid={"macs": [64]}, progress=False, **kwargs)
    assert str(info.value) == message


def test_run_options_reach_simulator_run_and_the_ids():
    grid = {"macs": [64, 128]}
    full = sweep("facedet", grid=grid, trace="synthetic", workers=1, progress=False)
    fast = sweep("facedet", grid=grid, trace="synthetic", run_options={"timing_only": True}, workers=1,
                 progress=False)
    assert set(fast.ids).isdisjoint(full.ids)
    assert [r.totals["cycles"] for r in fast.results] == [r.totals["cycles"] for r in full.results]


@pytest.mark.parametrize("options, message", [
    ({"seed": 1}, "run_options cannot set 'seed'; pass it to sweep() or put it in the grid"),
    ({"fast": True}, "unknown run option 'fast'; Simulator.run also takes: "),
    ({"pruning": object}, "run option 'pruning' must be a plain JSON value (str, number, bool), got "),
])
def test_bad_run_options(options, message):
    with pytest.raises(SparsesimError) as info:
        sweep("facedet", grid={"macs": [64]}, run_options=options, workers=1, progress=False)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("items, message", [
    (["macs"], "--grid expects key=v1,v2,..., got 'macs'"),
    (["=1,2"], "--grid expects key=v1,v2,..., got '=1,2'"),
    (["macs=16,,32"], "--grid macs: empty value in '16,,32'"),
    (["macs=16", "macs=32"], "--grid key 'macs' is given twice; list all its values in one --grid"),
])
def test_parse_grid_errors(items, message):
    with pytest.raises(ConfigError) as info:
        parse_grid(items)
    assert str(info.value) == message


def test_parse_grid_keeps_order_and_strips():
    assert parse_grid([" macs = 16, 32 ", "dma.latency_cycles=0"]) == \
        {"macs": ["16", "32"], "dma.latency_cycles": ["0"]}


# ------------------------------------------------------------------- ids
def test_point_ids_are_stable_sha256_prefixes_independent_of_grid_order():
    a = sweep_mod._expand
    from simulator import load_config
    from workloads import get_network

    net, cfg = get_network("facedet"), load_config("nullhop")
    _, p1 = a(net, cfg, {"macs": [64, 128], "seed": [0, 1]}, profile="uniform-0.5", seed=0,
              trace="propagated", check=False)
    _, p2 = a(net, cfg, {"seed": [1, 0], "macs": [128, 64]}, profile="uniform-0.5", seed=0,
              trace="propagated", check=False)
    assert {p.id for p in p1} == {p.id for p in p2}
    assert all(len(p.id) == 16 and int(p.id, 16) >= 0 for p in p1)
    # Different seed, trace or check -> different id.
    _, p3 = a(net, cfg, {"macs": [64]}, profile="uniform-0.5", seed=0, trace="synthetic", check=False)
    _, p4 = a(net, cfg, {"macs": [64]}, profile="uniform-0.5", seed=0, trace="propagated", check=True)
    assert len({p1[0].id, p3[0].id, p4[0].id}) == 3
    # The id is a SHA-256 (not Python's salted hash()): recomputed in a fresh interpreter it is the same.
    code = ("from simulator import load_config; from simulator.studies._sweep import _expand; "
            "from workloads import get_network; "
            "print(_expand(get_network('facedet'), load_config('nullhop'), {'macs': [64]}, profile='uniform-0.5', "
            "seed=0, trace='propagated', check=False)[1][0].id)")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"})
    assert fresh.stdout.strip() == p1[0].id


# ------------------------------------------------- back-ends give identical files
GRIDS = {
    "facedet": {"macs": [64, 128], "seed": [0, 1]},
    "roshambonet": {"macs": [64, 256]},
}


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def serial_runs(tmp_path_factory):
    out = {}
    for net, grid in GRIDS.items():
        d = tmp_path_factory.mktemp(f"serial-{net}")
        out[net] = (sweep(net, grid=grid, out_dir=d, workers=1, progress=False), d)
    return out


@pytest.mark.parametrize("net", list(GRIDS))
def test_process_pool_matches_serial_byte_for_byte(serial_runs, tmp_path, net):
    serial, sdir = serial_runs[net]
    pooled = sweep(net, grid=GRIDS[net], out_dir=tmp_path, workers=2, progress=False)
    assert pooled.ids == serial.ids
    assert sorted(pooled.computed) == sorted(serial.ids)
    files = _point_files(tmp_path)
    assert set(files) == set(serial.ids)
    assert files == _point_files(sdir)
    assert pooled.rows() == serial.rows()
    assert (tmp_path / "sweep_totals.csv").read_bytes() == (sdir / "sweep_totals.csv").read_bytes()
    assert (tmp_path / "sweep_layers.csv").read_bytes() == (sdir / "sweep_layers.csv").read_bytes()


def test_the_sweep_process_takes_points_as_well_as_its_workers(tmp_path, monkeypatch):
    here = []
    real = sweep_mod._run_here
    monkeypatch.setattr(sweep_mod, "_run_here", lambda task: here.append(task[1].array.num_macs) or real(task))
    res = sweep("facedet", grid={"macs": [64, 128, 256, 512]}, out_dir=tmp_path, workers=2, progress=False)
    assert sorted(res.computed) == sorted(res.ids)
    # Longest first: this process starts at once on the fewest MACs; the spawned worker takes the next ones.
    assert here[0] == 64 and 1 <= len(here) < 4


_FORK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numba
    from threadpoolctl import threadpool_info
    import simulator.studies._sweep as sweep_mod
    from simulator import sweep

    real_point, real_method, methods = sweep_mod._run_point, sweep_mod._start_method, []

    def traced(*task):
        blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        with open(os.path.join(sys.argv[1], "workers.jsonl"), "a") as fh:
            fh.write(json.dumps([os.getpid(), blas, numba.get_num_threads()]) + "\\n")
        return real_point(*task)

    sweep_mod._run_point = traced
    sweep_mod._start_method = lambda: methods.append(real_method()) or methods[-1]
    sweep("facedet", grid=json.loads(sys.argv[2]), out_dir=os.path.join(sys.argv[1], "out"), workers=2,
          progress=False)
    print(json.dumps({"methods": methods, "pid": os.getpid()}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_fresh_process_forks_its_workers_with_their_share_of_the_threads(serial_runs, tmp_path):
    serial, sdir = serial_runs["facedet"]
    out = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, str(tmp_path), json.dumps(GRIDS["facedet"])],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["methods"] == ["fork"]
    assert _point_files(tmp_path / "out") == _point_files(sdir)
    share = max(1, (os.cpu_count() or 1) // 2)
    seen = [json.loads(line) for line in (tmp_path / "workers.jsonl").read_text().splitlines()]
    assert len(seen) == len(serial.ids)
    assert {pid for pid, _, _ in seen} - {info["pid"]}          # the forked worker computed points too
    for pid, blas, numba_threads in seen:                       # both processes: their share only
        assert blas and max(blas) <= share and numba_threads <= share


def test_workers_are_spawned_where_a_fork_would_be_unsafe(monkeypatch):
    import threading

    import numba
    real_count = threading.active_count
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    # Other tests import onnxruntime into this process: a stand-in name for the unsafe libraries.
    monkeypatch.setattr(sweep_mod, "_FORK_UNSAFE_MODULES", ("sparsesim_stand_in_runtime",))
    if sys.platform.startswith("linux"):
        assert sweep_mod._start_method() == "fork"
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")      # GNU OpenMP's pool cannot be forked
    assert sweep_mod._start_method() == "spawn"
    monkeypatch.setattr(numba, "threading_layer", lambda: "tbb")
    monkeypatch.setattr(threading, "active_count", real_count)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert sweep_mod._start_method() == "spawn"                   # another thread may hold a lock
    finally:
        stop.set()
        other.join()
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setitem(sys.modules, "sparsesim_stand_in_runtime", object())
    assert sweep_mod._start_method() == "spawn"                       # its thread pools are not Python's
    monkeypatch.delitem(sys.modules, "sparsesim_stand_in_runtime")
    if sys.platform.startswith("linux"):
        assert sweep_mod._start_method() == "fork"
    monkeypatch.setenv("SPARSESIM_SWEEP_START", "spawn")               # the user's choice
    assert sweep_mod._start_method() == "spawn"
    monkeypatch.delenv("SPARSESIM_SWEEP_START")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert sweep_mod._start_method() == "spawn"


def test_an_interrupt_inside_a_kernel_stays_an_interrupt(monkeypatch):
    def interrupted(*task):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:   # what a compiled call returns when a signal handler raised in it
            raise SystemError("CPUDispatcher(...) returned a result with an exception set") from exc
    monkeypatch.setattr(sweep_mod, "_run_point", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep("facedet", grid={"macs": [64, 128]}, workers=1, progress=False)


@pytest.mark.parametrize("net", list(GRIDS))
def test_dask_matches_serial_byte_for_byte(serial_runs, dask_cluster, tmp_path, net):
    from distributed import Client

    serial, sdir = serial_runs[net]
    with Client(dask_cluster, set_as_default=False) as client:
        res = sweep(net, grid=GRIDS[net], out_dir=tmp_path / "client", scheduler=client, progress=False)
    assert res.ids == serial.ids
    assert _point_files(tmp_path / "client") == _point_files(sdir)
    # A scheduler address works too (the sweep opens and closes its own client).
    res2 = sweep(net, grid=GRIDS[net], out_dir=tmp_path / "address", scheduler=dask_cluster.scheduler_address,
                 progress=False)
    assert _point_files(tmp_path / "address") == _point_files(sdir)
    assert res2.totals_rows() == serial.totals_rows()


def test_serial_results_equal_plain_simulate(serial_runs):
    serial, _ = serial_runs["facedet"]
    for params, result in zip(serial.points, serial.results):
        direct = simulate("facedet", overrides={"array.num_clusters": params["macs"] // 16}, seed=params["seed"],
                          check=False)
        assert result.to_dict() == direct.to_dict()


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(SparsesimError, match=r"^cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'"):
            sweep("facedet", grid={"macs": [64]}, scheduler="tcp://127.0.0.1:9", progress=False)


# ------------------------------------------------------------ files, resume
def test_files_are_complete_and_parse(serial_runs):
    serial, d = serial_runs["facedet"]
    head = json.loads((d / "sweep.json").read_text())
    assert head["network"] == "facedet" and head["accelerator"] == "nullhop"
    assert head["grid"] == {"macs": [64, 128], "seed": [0, 1]}
    assert [p["id"] for p in head["points"]] == serial.ids
    assert [p["params"] for p in head["points"]] == serial.points
    for pid, params in zip(serial.ids, serial.points):
        doc = json.loads((d / "points" / f"{pid}.json").read_text())
        assert doc["id"] == pid and doc["params"] == params
        assert doc["result"]["totals"]["cycles"] > 0
    layers = _csv_rows(d / "sweep_layers.csv")
    totals = _csv_rows(d / "sweep_totals.csv")
    assert len(layers) == 4 * FACEDET_LAYERS
    assert [r["point"] for r in totals] == serial.ids
    assert [int(r["macs"]) for r in totals] == [64, 64, 128, 128]
    assert [int(r["cycles"]) for r in totals] == [r.totals["cycles"] for r in serial.results]
    assert not [p for p in d.rglob("*") if p.name.endswith(".tmp")]


def test_resume_skips_finished_points_and_reruns_missing_and_corrupt_ones(tmp_path):
    grid = {"macs": [64, 128, 256]}
    first = sweep("facedet", grid=grid, out_dir=tmp_path, workers=1, progress=False)
    files = {pid: tmp_path / "points" / f"{pid}.json" for pid in first.ids}
    keep, gone, bad = first.ids
    keep_stat = files[keep].stat()
    files[gone].unlink()
    text = files[bad].read_text()
    files[bad].write_text(text[: len(text) // 2])   # a partial file
    second = sweep("facedet", grid=grid, out_dir=tmp_path, workers=1, progress=False)
    assert second.reused == [keep]
    assert sorted(second.computed) == sorted([gone, bad])
    assert files[keep].stat().st_mtime_ns == keep_stat.st_mtime_ns   # not rewritten
    assert json.loads(files[bad].read_text())["id"] == bad           # rewritten whole
    assert [r.to_dict() for r in second.results] == [r.to_dict() for r in first.results]
    assert second.rows() == first.rows()
    third = sweep("facedet", grid=grid, out_dir=tmp_path, workers=2, progress=False)
    assert third.computed == [] and third.reused == first.ids
    # load_sweep reads the same thing back
    loaded = load_sweep(tmp_path)
    assert loaded.ids == first.ids and loaded.totals_rows() == first.totals_rows()


def test_a_point_file_from_another_layout_is_rerun(tmp_path):
    first = sweep("facedet", grid={"macs": [64]}, out_dir=tmp_path, workers=1, progress=False)
    path = tmp_path / "points" / f"{first.ids[0]}.json"
    doc = json.loads(path.read_text())
    doc["result"]["layers"][0]["no_such_field"] = 1
    path.write_text(json.dumps(doc))
    again = sweep("facedet", grid={"macs": [64]}, out_dir=tmp_path, workers=1, progress=False)
    assert again.computed == first.ids
    assert "no_such_field" not in path.read_text()


def test_a_failing_point_is_named_and_earlier_points_are_kept(tmp_path, monkeypatch):
    real = sweep_mod._run_point

    def flaky(network, config, *rest):
        if config.array.num_clusters == 8:
            raise MappingError("boom")
        return real(network, config, *rest)

    monkeypatch.setattr(sweep_mod, "_run_point", flaky)
    with pytest.raises(MappingError) as info:
        sweep("facedet", grid={"macs": [64, 128, 256]}, out_dir=tmp_path, workers=1, progress=False)
    assert str(info.value).startswith("sweep point macs=128 (id ")
    assert str(info.value).endswith("): boom")
    assert len(list((tmp_path / "points").glob("*.json"))) == 1   # macs=64 finished and was kept


def test_sweep_result_tables(serial_runs, tmp_path):
    serial, _ = serial_runs["facedet"]
    rows = serial.rows()
    assert len(rows) == 4 * FACEDET_LAYERS
    assert list(rows[0])[:4] == ["point", "macs", "seed", "network"]
    assert rows[0]["name"] == "conv1"
    totals = serial.totals_rows()
    assert list(totals[0])[:3] == ["point", "macs", "seed"]
    assert totals[0]["units.mac_array.busy"] == serial.results[0].totals["units"]["mac_array"]["busy"]
    assert totals[0]["dram_read_bytes.weights"] == serial.results[0].totals["dram_read_bytes"]["weights"]
    df = serial.to_dataframe()
    assert df.shape[0] == 4 * FACEDET_LAYERS and "mac_utilization" in df.columns
    dp = serial.to_dataframe(level="point")
    assert list(dp["macs"]) == [64, 64, 128, 128]
    with pytest.raises(SparsesimError, match=r"^level must be 'layer' or 'point', got 'net'$"):
        serial.to_dataframe(level="net")
    table = serial.format_table().splitlines()
    assert table[0] == "sweep: facedet on nullhop, 4 points"
    assert table[1].split()[:6] == ["macs", "seed", "MACs", "latency", "ms", "util"]
    assert len(table) == 3 + 4 + 1 and table[3].split()[:3] == ["64", "0", "64"]
    assert table[-1].startswith("MAC busy, DRAM busy = ")
    lpath, tpath = serial.to_csv(tmp_path)
    assert len(_csv_rows(lpath)) == 4 * FACEDET_LAYERS and len(_csv_rows(tpath)) == 4
    assert isinstance(serial, SweepResult) and all(isinstance(r, Result) for r in serial.results)


# ------------------------------------------------------------- crash safety
CRASH_POINTS = 12   # roshambonet points take ~0.5 s each: the sweep is still running when the first file lands
_CRASH_SCRIPT = textwrap.dedent(f"""
    import sys
    from simulator import sweep
    sweep("roshambonet", grid={{"seed": list(range({CRASH_POINTS}))}}, out_dir=sys.argv[1], workers=2,
          progress=False)
""")


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


def test_killed_sweep_loses_no_finished_point(tmp_path):
    out = tmp_path / "crash"
    proc = subprocess.Popen([sys.executable, "-c", _CRASH_SCRIPT, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [c for c in _children(proc.pid) if c not in workers] + workers
            if (out / "points").is_dir() and any((out / "points").glob("*.json")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        workers = list(dict.fromkeys(workers + _children(proc.pid)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    before = _point_files(out)
    assert 1 <= len(before) < CRASH_POINTS
    for text in before.values():
        json.loads(text)
    # The pool's workers notice their parent is gone and exit (no orphans left running).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)]

    res = sweep("roshambonet", grid={"seed": list(range(CRASH_POINTS))}, out_dir=out, workers=2, progress=False)
    assert set(res.reused) >= set(before)   # every point finished before the kill was kept
    assert sorted(res.reused + res.computed) == sorted(res.ids)
    assert len(set(res.ids)) == CRASH_POINTS
    after = _point_files(out)
    assert sorted(after) == sorted(res.ids)   # each point exactly once
    for pid, text in after.items():
        assert json.loads(text)["id"] == pid
    for pid in before:
        assert after[pid] == before[pid]
    assert len(_csv_rows(out / "sweep_totals.csv")) == CRASH_POINTS


def test_sigterm_stops_a_command_line_sweep_and_its_workers(tmp_path):
    # SIGTERM ends a command-line sweep: its message, its exit status, and no worker left running.
    out = tmp_path / "term"
    grid = "seed=" + ",".join(map(str, range(CRASH_POINTS)))
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "sweep", "roshambonet", "--grid", grid, "-o",
                             str(out), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = list(dict.fromkeys(workers + _children(proc.pid)))
            if (out / "points").is_dir() and any((out / "points").glob("*.json")):
                break
            time.sleep(0.02)
        assert proc.poll() is None and workers, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "sparsesim: terminated" and "Traceback" not in err
    assert not [w for w in workers if _alive(w)]


# ----------------------------------------------------------------- progress
def test_progress_callback_counts_points(tmp_path):
    calls = []
    sweep("facedet", grid={"macs": [64, 128]}, out_dir=tmp_path, workers=1, progress=lambda *a: calls.append(a))
    assert calls == [(1, 2, "macs=64"), (2, 2, "macs=128")]
    calls.clear()
    sweep("facedet", grid={"macs": [64, 128, 256]}, out_dir=tmp_path, workers=1,
          progress=lambda *a: calls.append(a))
    assert calls == [(2, 3, "loaded"), (3, 3, "macs=256")]


def test_progress_bar_is_silent_when_stderr_is_not_a_terminal(capsys):
    sweep("facedet", grid={"macs": [64]}, workers=1)   # progress=None: auto
    with progress_bar(3, "x") as bar:
        bar.update(1, "a")
        assert not bar.enabled
    callback, close = network_progress()
    simulate("facedet", check=False, progress=callback)
    close()
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_bar_draws_when_enabled(capsys):
    import threading
    threads = {t.ident for t in threading.enumerate()}
    with progress_bar(2, "points", enabled=True, unit="point") as bar:
        bar.update(1, "macs=64")
        # no thread of its own (tqdm's monitor), which would make a sweep spawn its workers
        assert {t.ident for t in threading.enumerate()} <= threads
        bar.update(1, "macs=128")
    err = capsys.readouterr().err
    assert "points" in err and "2/2" in err and "macs=128" in err


def test_network_progress_follows_the_runner(capsys):
    callback, close = network_progress(desc="facedet", enabled=True)
    try:
        simulate("facedet", check=False, progress=callback)
    finally:
        close()
    err = capsys.readouterr().err
    assert "facedet" in err and f"{FACEDET_LAYERS}/{FACEDET_LAYERS}" in err and "layer" in err
