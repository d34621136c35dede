"""The compiled event loop against the simpy processes: one event model, identical results.

Random pipelines (buffers small enough for back-pressure and for work units larger
than a whole buffer, many zero durations and ties, bytes freed unlike bytes taken,
kernel loads and prefetches, DRAM units on one shared interface or on separate
channels) must give the same PassTiming, every field of every unit, from both
implementations; so must a whole network, layer by layer.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import simulate
from simulator.engine import ENGINES, simulate_pipeline
from workloads import ConfigError


@st.composite
def _pipelines(draw):
    n_units = draw(st.integers(1, 7))
    n_items = draw(st.integers(0, 60))
    durations = st.one_of(st.just(0), st.just(0), st.integers(1, 3), st.integers(0, 40))
    service = [np.array(draw(st.lists(durations, min_size=n_items, max_size=n_items)), dtype=np.int64)
               for _ in range(n_units)]
    caps = [draw(st.integers(1, 12)) for _ in range(n_units - 1)]
    sizes = st.integers(0, 14)
    alloc = [np.array(draw(st.lists(sizes, min_size=n_items, max_size=n_items)), dtype=np.int64)
             for _ in range(n_units - 1)]
    free_mode = draw(st.sampled_from(["same", "permuted", "random", "none"]))
    if free_mode == "same":
        free = None
    elif free_mode == "permuted":         # the same bytes in total, freed in other amounts
        free = [a[np.random.default_rng(n_items).permutation(n_items)] for a in alloc]
    elif free_mode == "random":
        free = [np.array(draw(st.lists(sizes, min_size=n_items, max_size=n_items)), dtype=np.int64)
                for _ in range(n_units - 1)]
    else:
        alloc = free = None
    dram = draw(st.sampled_from([(), (0, n_units - 1), (0,)]))
    return dict(units=[f"u{k}" for k in range(n_units)], service=service, capacities=caps,
                alloc=alloc, free=free,
                load_cycles=draw(st.sampled_from([0, 0, 1, 7, 30])),
                load_unit=draw(st.sampled_from(["u0", None])),
                prefetch_cycles=draw(st.sampled_from([0, 0, 1, 5, 50, 400])),
                dram_units=dram, shared_dram=draw(st.booleans()))


def _as_dict(t):
    return dataclasses.asdict(t)


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pipelines())
def test_compiled_engine_equals_simpy(case):
    compiled = simulate_pipeline(**case, engine="compiled")
    reference = simulate_pipeline(**case, engine="simpy")
    assert _as_dict(compiled) == _as_dict(reference)


def test_compiled_engine_on_a_buffer_that_never_drains():
    # The consumer frees less than the producer takes: the producer stalls for good
    # once the buffer holds bytes; both engines report the same partial pass.
    case = dict(units=["a", "b"], service=[np.array([2, 2, 2]), np.array([1, 1, 1])], capacities=[3],
                alloc=[np.array([2, 2, 2])], free=[np.array([1, 0, 0])], load_cycles=4, load_unit="a",
                prefetch_cycles=9, dram_units=(0, 1), shared_dram=True)
    compiled = simulate_pipeline(**case, engine="compiled")
    assert _as_dict(compiled) == _as_dict(simulate_pipeline(**case, engine="simpy"))


@pytest.mark.parametrize("engine", ["numba", "", None])
def test_unknown_engine_is_refused(engine):
    with pytest.raises(ConfigError, match=r"engine must be one of compiled, simpy, got"):
        simulate_pipeline(["a"], [np.array([1])], [], engine=engine)


def test_a_network_times_the_same_under_both_engines():
    kw = dict(trace="synthetic", timing_only=True, overrides={"array.num_clusters": 2})
    runs = {e: simulate("roshambonet", "nullhop", engine=e, **kw) for e in ENGINES}
    compiled, reference = runs["compiled"], runs["simpy"]
    assert compiled.to_dict() == reference.to_dict()


def test_cli_and_sweep_take_the_engine(tmp_path):
    from simulator import sweep
    from simulator.cli import main

    outs = {}
    for e in ENGINES:
        path = tmp_path / f"{e}.json"
        assert main(["run", "facedet", "--timing-only", "--engine", e, "--quiet", "--json", str(path)]) == 0
        outs[e] = path.read_text()
    assert outs["compiled"] == outs["simpy"]
    points = {e: sweep("facedet", grid={"macs": [64]}, workers=1, progress=False, trace="synthetic",
                       run_options={"timing_only": True, "engine": e}).results[0].to_dict() for e in ENGINES}
    assert points["compiled"] == points["simpy"]
    with pytest.raises(ConfigError, match="engine must be one of compiled, simpy, got 'fast'"):
        sweep("facedet", grid={"macs": [64]}, workers=1, progress=False, run_options={"engine": "fast"})
