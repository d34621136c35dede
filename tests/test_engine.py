"""Tests for simulator.engine.simulate_pipeline against the timing contract.

docs/architecture.md §3.1 (hand-off semantics) and §3.2 (per-unit accounting).
The hand-written cases spell out their timelines; the hypothesis test compares
the engine with a closed-form recurrence written here from §3.1. Every test runs
under both implementations of the event model (the compiled loop and simpy).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine import ENGINES, simulate_pipeline

ENGINE = ENGINES[0]


@pytest.fixture(autouse=True, params=ENGINES)
def _engine(request, monkeypatch):
    """Run the test under each engine (``_run`` and direct calls read ``ENGINE``)."""
    monkeypatch.setitem(globals(), "ENGINE", request.param)


def _run(service, caps, load=0, load_unit=None, sizes=None, dram=(), shared=False, prefetch=0):
    names = [f"u{k}" for k in range(len(service))]
    arrays = [np.asarray(s, dtype=np.int64) for s in service]
    alloc = None if sizes is None else [np.asarray(s, dtype=np.int64) for s in sizes]
    return simulate_pipeline(names, arrays, caps, alloc, load_cycles=load, load_unit=load_unit,
                             prefetch_cycles=prefetch, dram_units=dram, shared_dram=shared, engine=ENGINE)


def _stats(timing, k):
    return timing.units[f"u{k}"].as_dict()


def _check_identity(timing):
    for name, st_ in timing.units.items():
        d = st_.as_dict()
        assert all(v >= 0 for v in d.values()), (name, d)
        assert sum(d.values()) == timing.cycles, (name, d, timing.cycles)


# ----------------------------------------------------------------- hand timelines
# Buffers below count work units of one byte each unless sizes are given: a producer
# reserves a work unit's bytes when it starts it, the consumer frees them when it
# finishes it (docs/architecture.md §3.1).
def test_starvation_slow_producer():
    # u0 (5 cycles/item) -> buffer(2) -> u1 (1 cycle/item), 3 items, no load.
    #   u0: [0,5) item0  [5,10) item1  [10,15) item2        finished at 5, 10, 15
    #   u1: waits 0..5, [5,6) item0, waits 6..10, [10,11) item1, waits 11..15, [15,16) item2
    # total 16; u0 idle in the last cycle; u1 starved 5 + 4 + 4 = 13 cycles.
    t = _run([[5, 5, 5], [1, 1, 1]], [2])
    assert t.cycles == 16
    assert _stats(t, 0) == dict(busy=15, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=1)
    assert _stats(t, 1) == dict(busy=3, stall_input=13, stall_output=0, stall_dram=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_a_one_item_buffer_serialises_producer_and_consumer():
    # u0 (1 cycle) -> buffer(1) -> u1 (4 cycles), 3 items.
    #   u0 item0 [0,1) holds the only slot; u1 item0 [1,5) frees it at 5
    #   u0 item1 waits for room 1..5, [5,6); u1 item1 waits 5..6, [6,10)
    #   u0 item2 waits 6..10, [10,11); u1 item2 waits 10..11, [11,15) -> total 15
    t = _run([[1, 1, 1], [4, 4, 4]], [1])
    assert t.cycles == 15
    assert _stats(t, 0) == dict(busy=3, stall_input=0, stall_output=8, stall_dram=0, stall_weights=0, idle=4)
    assert _stats(t, 1) == dict(busy=12, stall_input=3, stall_output=0, stall_dram=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_a_two_item_buffer_double_buffers():
    # Same pipeline with buffer(2): u0 item1 [1,2) fits beside item0; item2 waits 2..5 until
    # u1 frees item0, [5,6). u1 runs back to back from 1: [1,5) [5,9) [9,13) -> total 13.
    t = _run([[1, 1, 1], [4, 4, 4]], [2])
    assert t.cycles == 13
    assert _stats(t, 0) == dict(busy=3, stall_input=0, stall_output=3, stall_dram=0, stall_weights=0, idle=7)
    assert _stats(t, 1) == dict(busy=12, stall_input=1, stall_output=0, stall_dram=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_work_units_take_their_bytes():
    # u0 (1 cycle) -> buffer of 10 bytes -> u1 (4 cycles); work units of 6, 6 and 3 bytes.
    #   u0 item0 [0,1) takes 6; item1 needs 6 more (12 > 10): waits 1..5 until u1 frees item0
    #   u0 item1 [5,6); item2 needs 3 (6 + 3 <= 10): [6,7) at once
    #   u1: [1,5), waits 5..6, [6,10), [10,14) -> total 14
    t = _run([[1, 1, 1], [4, 4, 4]], [10], sizes=[[6, 6, 3]])
    assert t.cycles == 14
    assert _stats(t, 0) == dict(busy=3, stall_input=0, stall_output=4, stall_dram=0, stall_weights=0, idle=7)
    assert _stats(t, 1) == dict(busy=12, stall_input=2, stall_output=0, stall_dram=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_a_work_unit_larger_than_its_buffer_enters_only_an_empty_one():
    # buffer of 4 bytes, work units of 6 and 1 bytes: item0 enters the empty buffer at 0;
    # item1 (6 + 1 > 4) waits until u1 frees item0 at 5.
    t = _run([[1, 1], [4, 4]], [4], sizes=[[6, 1]])
    assert t.cycles == 10
    assert _stats(t, 0)["stall_output"] == 4
    _check_identity(t)


def test_zero_duration_items_pass_straight_through():
    # u0 [0, 2, 0] -> buffer(1) -> u1 [0, 0, 0] -> buffer(1) -> u2 [3, 0, 1]
    #   t=0: item0 passes u0 and u1 at once; u2 busy [0,3) and holds buffer 1 until 3
    #        u0 item1 busy [0,2)
    #   t=2: u1 has item1 but buffer 1 is full until 3 -> u1 waits 2..3 (output);
    #        u0 item2 needs buffer 0, which item1 holds until u1 finishes it at 3 -> waits 2..3
    #   t=3: item1 passes u1 and u2; item2 passes u0 and u1; u2 item2 [3,4) -> total 4
    t = _run([[0, 2, 0], [0, 0, 0], [3, 0, 1]], [1, 1])
    assert t.cycles == 4
    assert _stats(t, 0) == dict(busy=2, stall_input=0, stall_output=1, stall_dram=0, stall_weights=0, idle=1)
    assert _stats(t, 1) == dict(busy=0, stall_input=2, stall_output=1, stall_dram=0, stall_weights=0, idle=1)
    assert _stats(t, 2) == dict(busy=4, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_shared_dram_interface_reads_first_on_a_tie():
    # u0 (DMA read) [4, 4] -> u1 [0, 0] -> u2 (DMA write) [3, 3], one shared interface.
    #   u0 item0 [0,4). At 4 u0 asks for item1 and u2 for item0: a tie, the read goes first [4,8)
    #   u2 waits 4..8 for the interface, [8,11); item1 [11,14) -> total 14 (11 on separate channels)
    service = [[4, 4], [0, 0], [3, 3]]
    t = _run(service, [8, 8], dram=(0, 2), shared=True)
    assert t.cycles == 14
    assert _stats(t, 0) == dict(busy=8, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=6)
    assert _stats(t, 2) == dict(busy=6, stall_input=4, stall_output=0, stall_dram=4, stall_weights=0, idle=0)
    assert t.dram_busy_cycles == 14
    _check_identity(t)
    sep = _run(service, [8, 8], dram=(0, 2), shared=False)
    assert sep.cycles == 11
    assert sep.dram_busy_cycles == 11          # [0,8) and [4,7), [8,11) overlap on separate channels
    assert sep.units["u2"].stall_dram == 0


def test_shared_dram_interface_is_first_come_first_served():
    # u0 [4, 4, 4] -> u1 [1, 1, 1] -> u2 [2, 2, 2] on one interface, buffers never full.
    #   u0 [0,4) [4,8); u1 item0 [4,5); u2 asks at 5 while u0 holds the interface
    #   at 8 u0 asks for item2, but u2 asked first (5): u2 [8,10), u0 waits 8..10, [10,14)
    #   u2 asks for item1 at 10: waits 10..14, [14,16); item2 (ready at 15) [16,18) -> total 18
    t = _run([[4, 4, 4], [1, 1, 1], [2, 2, 2]], [8, 8], dram=(0, 2), shared=True)
    assert t.cycles == 18
    assert _stats(t, 0) == dict(busy=12, stall_input=0, stall_output=0, stall_dram=2, stall_weights=0, idle=4)
    assert _stats(t, 1) == dict(busy=3, stall_input=12, stall_output=0, stall_dram=0, stall_weights=0, idle=3)
    assert _stats(t, 2) == dict(busy=6, stall_input=5, stall_output=0, stall_dram=7, stall_weights=0, idle=0)
    assert t.dram_busy_cycles == 18
    _check_identity(t)


def test_prefetch_takes_its_turn_on_a_shared_interface():
    # u0 [2] -> u1 [0] -> u2 [3], the next pass's 4-cycle load prefetched after u0's last item.
    #   shared: at 2 the prefetch and u2 tie; the read side goes first: prefetch [2,6), u2 [6,9)
    #   separate: u2 [2,5); the prefetch runs 2..5 and 1 cycle carries into the next pass
    t = _run([[2], [0], [3]], [8, 8], dram=(0, 2), shared=True, prefetch=4)
    assert (t.cycles, t.carry_cycles) == (9, 0)
    assert _stats(t, 0) == dict(busy=6, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=3)
    assert _stats(t, 2) == dict(busy=3, stall_input=2, stall_output=0, stall_dram=4, stall_weights=0, idle=0)
    sep = _run([[2], [0], [3]], [8, 8], dram=(0, 2), shared=False, prefetch=4)
    assert (sep.cycles, sep.carry_cycles) == (5, 1)
    assert _stats(sep, 0)["busy"] == 5
    _check_identity(t)
    _check_identity(sep)


def test_all_zero_durations_take_no_time():
    t = _run([[0, 0, 0], [0, 0, 0]], [1])
    assert t.cycles == 0
    _check_identity(t)


def test_load_phase_is_charged_to_the_load_unit():
    # load 10 cycles on u0; then u0 [3,3] -> FIFO(2) -> u1 [2,2] -> FIFO(2) -> u2 [1,1]
    #   u0: load [0,10), item0 [10,13), item1 [13,16)
    #   u1: weights 0..10, waits 10..13, [13,15), waits 15..16, [16,18)
    #   u2: weights 0..10, waits 10..15, [15,16), waits 16..18, [18,19) -> total 19
    t = _run([[3, 3], [2, 2], [1, 1]], [2, 2], load=10, load_unit="u0")
    assert t.cycles == 19
    assert _stats(t, 0) == dict(busy=16, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=3)
    assert _stats(t, 1) == dict(busy=4, stall_input=4, stall_output=0, stall_dram=0, stall_weights=10, idle=1)
    assert _stats(t, 2) == dict(busy=2, stall_input=7, stall_output=0, stall_dram=0, stall_weights=10, idle=0)
    _check_identity(t)


def test_load_only_pass():
    # No work units: the pass is just the load.
    t = _run([[], []], [1], load=7, load_unit="u0")
    assert t.cycles == 7
    assert _stats(t, 0) == dict(busy=7, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=0)
    assert _stats(t, 1) == dict(busy=0, stall_input=0, stall_output=0, stall_dram=0, stall_weights=7, idle=0)


def test_single_unit_pipeline():
    t = _run([[2, 0, 5]], [], load=3, load_unit="u0")
    assert t.cycles == 10
    assert _stats(t, 0) == dict(busy=10, stall_input=0, stall_output=0, stall_dram=0, stall_weights=0, idle=0)


# ------------------------------------------------------- closed-form recurrence
def recurrence(service, sizes, caps, load):
    """Start and finish times of a linear pipeline with byte-sized buffers (docs/architecture.md §3.1).

    A[k][i] = max(F[k][i-1], F[k-1][i])    (unit free; upstream has finished item i)
    R[k][i] = F[k+1][j], j the first item whose release leaves room for item i: the bytes of
              items j+1 .. i fit in buffer k, or items j+1 .. i-1 hold no bytes (an empty
              buffer takes any item)
    S[k][i] = max(A[k][i], R[k][i]),  F[k][i] = S[k][i] + d[k][i]
    with F[k][-1] = load and F[-1][i] = load (nothing starts before the load ends).
    """
    n_units, n = len(service), len(service[0])
    A = [[0] * n for _ in range(n_units)]
    S = [[0] * n for _ in range(n_units)]
    F = [[0] * n for _ in range(n_units)]
    for i in range(n):
        for k in range(n_units):
            prev = F[k][i - 1] if i > 0 else load
            A[k][i] = max(prev, F[k - 1][i] if k > 0 else load)
            room = load
            if k < n_units - 1:
                j = -1
                while j < i - 1 and sum(sizes[k][j + 1:i + 1]) > caps[k] and sum(sizes[k][j + 1:i]) > 0:
                    j += 1
                room = F[k + 1][j] if j >= 0 else load
            S[k][i] = max(A[k][i], room)
            F[k][i] = S[k][i] + int(service[k][i])
    return A, S, F


def expected_stats(service, sizes, caps, load):
    n_units, n = len(service), len(service[0])
    A, S, F = recurrence(service, sizes, caps, load)
    total = F[-1][-1] if n else load
    out = []
    for k in range(n_units):
        prev = [F[k][i - 1] if i > 0 else load for i in range(n)]
        d = dict(busy=sum(int(x) for x in service[k]) + (load if k == 0 else 0),
                 stall_input=sum(A[k][i] - prev[i] for i in range(n)),
                 stall_output=sum(S[k][i] - A[k][i] for i in range(n)), stall_dram=0,
                 stall_weights=0 if k == 0 else load)
        d["idle"] = total - (F[k][-1] if n else load)
        out.append(d)
    return total, out


@st.composite
def pipelines(draw):
    n_units = draw(st.integers(1, 6))
    n_items = draw(st.integers(0, 10))
    hi = draw(st.sampled_from([0, 1, 3, 20]))
    service = [draw(st.lists(st.integers(0, hi), min_size=n_items, max_size=n_items)) for _ in range(n_units)]
    sizes = [draw(st.lists(st.integers(0, 9), min_size=n_items, max_size=n_items)) for _ in range(n_units - 1)]
    caps = draw(st.lists(st.integers(1, 20), min_size=n_units - 1, max_size=n_units - 1))
    load = draw(st.sampled_from([0, 0, 1, 17]))
    return service, sizes, caps, load


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pipelines())
def test_engine_matches_closed_form_recurrence(case):
    service, sizes, caps, load = case
    t = _run(service, caps, load=load, load_unit="u0", sizes=sizes)
    total, expect = expected_stats(service, sizes, caps, load)
    assert t.cycles == total
    for k, d in enumerate(expect):
        assert _stats(t, k) == d, (k, service, sizes, caps, load)
    _check_identity(t)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pipelines())
def test_bigger_buffers_never_slow_the_pipeline(case):
    service, sizes, caps, load = case
    t = _run(service, caps, load=load, load_unit="u0", sizes=sizes)
    t_big = _run(service, [c + 5 for c in caps], load=load, load_unit="u0", sizes=sizes)
    assert t_big.cycles <= t.cycles
    # the slowest unit is a lower bound; the serial sum an upper bound
    if service[0]:
        assert t.cycles >= load + max(sum(s) for s in service)
        assert t.cycles <= load + sum(sum(s) for s in service)


def test_no_load_unit_charges_every_unit_weights():
    t = simulate_pipeline(["a", "b"], [np.array([1]), np.array([1])], [1], load_cycles=5, load_unit=None,
                          engine=ENGINE)
    assert t.cycles == 7
    assert t.units["a"].stall_weights == 5 and t.units["b"].stall_weights == 5
    _check_identity(t)


@pytest.mark.parametrize("cap", [2, 5])
def test_balanced_pipeline_throughput(cap):
    # Equal 2-cycle stages with double buffering: fill (2 per stage) then one item every 2 cycles.
    n, k = 8, 4
    t = _run([[2] * n] * k, [cap] * (k - 1))
    assert t.cycles == 2 * k + 2 * (n - 1)
    _check_identity(t)
