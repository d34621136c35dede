"""Tests for simulator.engine.simulate_pipeline against the timing contract.

docs/architecture.md §3.1 (hand-off semantics) and §3.2 (per-unit accounting).
The hand-written cases spell out their timelines; the hypothesis test compares
the simpy engine with a closed-form recurrence written here from §3.1.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine import simulate_pipeline

FIELDS = ("busy", "stall_input", "stall_output", "stall_weights", "idle")


def _run(service, caps, load=0, load_unit=None):
    names = [f"u{k}" for k in range(len(service))]
    arrays = [np.asarray(s, dtype=np.int64) for s in service]
    return simulate_pipeline(names, arrays, caps, load_cycles=load, load_unit=load_unit)


def _stats(timing, k):
    return timing.units[f"u{k}"].as_dict()


def _check_identity(timing):
    for name, st_ in timing.units.items():
        d = st_.as_dict()
        assert all(v >= 0 for v in d.values()), (name, d)
        assert sum(d.values()) == timing.cycles, (name, d, timing.cycles)


# ----------------------------------------------------------------- hand timelines
def test_starvation_slow_producer():
    # u0 (5 cycles/item) -> FIFO(2) -> u1 (1 cycle/item), 3 items, no load.
    #   u0: [0,5) item0  [5,10) item1  [10,15) item2        hand-offs at 5, 10, 15
    #   u1: waits 0..5, [5,6) item0, waits 6..10, [10,11) item1, waits 11..15, [15,16) item2
    # total 16; u0 idle in the last cycle; u1 starved 5 + 4 + 4 = 13 cycles.
    t = _run([[5, 5, 5], [1, 1, 1]], [2])
    assert t.cycles == 16
    assert _stats(t, 0) == dict(busy=15, stall_input=0, stall_output=0, stall_weights=0, idle=1)
    assert _stats(t, 1) == dict(busy=3, stall_input=13, stall_output=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_back_pressure_capacity_one():
    # u0 (1 cycle) -> FIFO(1) -> u1 (4 cycles), 3 items.
    #   t=1: u0 hands item0 off; u1 takes it at once (FIFO empty again), u1 busy [1,5)
    #   t=2: u0 hands item1 off (FIFO: item1, now full)
    #   t=3: u0 finishes item2 but the FIFO is full -> blocked
    #   t=5: u1 takes item1, freeing the slot; u0 hands item2 off in the same cycle (stall 3..5 = 2)
    #   u1: [5,9) item1, [9,13) item2 -> total 13
    t = _run([[1, 1, 1], [4, 4, 4]], [1])
    assert t.cycles == 13
    assert _stats(t, 0) == dict(busy=3, stall_input=0, stall_output=2, stall_weights=0, idle=8)
    assert _stats(t, 1) == dict(busy=12, stall_input=1, stall_output=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_back_pressure_propagates_through_a_chain():
    # u0 (1) -> FIFO(1) -> u1 (1) -> FIFO(1) -> u2 (3), 6 items.
    # start S, finish F, hand-off H per item (u2 hands off at F):
    #   item  u0 S F H   u1 S F H    u2 S  F
    #   0        0 1 1      1 2 2       2  5
    #   1        1 2 2      2 3 3       5  8     (u1 hands item1 off at 3: FIFO empty, u2 took item0 at 2)
    #   2        2 3 3      3 4 5       8 11     (u1 blocked 4..5 until u2 takes item1 at 5)
    #   3        3 4 4      5 6 8      11 14     (u1 blocked 6..8)
    #   4        4 5 5      8 9 11     14 17     (u1 takes item4 at 8, after handing item3 off)
    #   5        5 6 8     11 12 14    17 20     (u0 blocked 6..8 until u1 takes item4 at 8)
    t = _run([[1] * 6, [1] * 6, [3] * 6], [1, 1])
    assert t.cycles == 20
    # u0: busy 6, blocked 6..8 = 2, idle 8..20 = 12
    assert _stats(t, 0) == dict(busy=6, stall_input=0, stall_output=2, stall_weights=0, idle=12)
    # u1: waits 0..1; blocked 4..5, 6..8, 9..11, 12..14 = 1+2+2+2 = 7; idle 14..20
    assert _stats(t, 1) == dict(busy=6, stall_input=1, stall_output=7, stall_weights=0, idle=6)
    # u2: waits 0..2, then always busy
    assert _stats(t, 2) == dict(busy=18, stall_input=2, stall_output=0, stall_weights=0, idle=0)
    _check_identity(t)


def test_zero_duration_items_pass_straight_through():
    # u0 [0, 2, 0] -> FIFO(1) -> u1 [0, 0, 0] -> FIFO(1) -> u2 [3, 0, 1]
    #   item0: u0 done at 0, u1 done at 0, u2 busy [0,3)
    #   item1: u0 busy [0,2), hands off at 2; u1 passes it at 2 into FIFO(u1->u2), which is empty
    #          (u2 took item0 at 0); u2 takes it at 3 (after item0), zero cycles, done at 3
    #   item2: u0 done at 2 (zero cycles), hands off at 2 (u1 took item1 at 2);
    #          u1 takes it at 2 but FIFO(u1->u2) still holds item1 until 3 -> u1 blocked 2..3
    #          u2 takes item2 at 3, busy [3,4) -> total 4
    t = _run([[0, 2, 0], [0, 0, 0], [3, 0, 1]], [1, 1])
    assert t.cycles == 4
    assert _stats(t, 0) == dict(busy=2, stall_input=0, stall_output=0, stall_weights=0, idle=2)
    assert _stats(t, 1) == dict(busy=0, stall_input=2, stall_output=1, stall_weights=0, idle=1)
    assert _stats(t, 2) == dict(busy=4, stall_input=0, stall_output=0, stall_weights=0, idle=0)
    _check_identity(t)


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
    assert _stats(t, 0) == dict(busy=16, stall_input=0, stall_output=0, stall_weights=0, idle=3)
    assert _stats(t, 1) == dict(busy=4, stall_input=4, stall_output=0, stall_weights=10, idle=1)
    assert _stats(t, 2) == dict(busy=2, stall_input=7, stall_output=0, stall_weights=10, idle=0)
    _check_identity(t)


def test_load_only_pass():
    # No work units: the pass is just the load.
    t = _run([[], []], [1], load=7, load_unit="u0")
    assert t.cycles == 7
    assert _stats(t, 0) == dict(busy=7, stall_input=0, stall_output=0, stall_weights=0, idle=0)
    assert _stats(t, 1) == dict(busy=0, stall_input=0, stall_output=0, stall_weights=7, idle=0)


def test_single_unit_pipeline():
    t = _run([[2, 0, 5]], [], load=3, load_unit="u0")
    assert t.cycles == 10
    assert _stats(t, 0) == dict(busy=10, stall_input=0, stall_output=0, stall_weights=0, idle=0)


# ------------------------------------------------------- closed-form recurrence
def recurrence(service, caps, load):
    """Start, finish and hand-off times of a linear pipeline (docs/architecture.md §3.1).

    S[k][i] = max(H[k][i-1], H[k-1][i])      (unit free after handing i-1 off; item i in its input FIFO)
    F[k][i] = S[k][i] + d[k][i]
    H[k][i] = max(F[k][i], S[k+1][i-c_k])    (FIFO k has a free slot once item i-c_k was taken)
    H[last][i] = F[last][i]
    with H[k][-1] = load and H[-1][i] = load (nothing starts before the load ends).
    """
    n_units, n = len(service), len(service[0])
    S = [[0] * n for _ in range(n_units)]
    F = [[0] * n for _ in range(n_units)]
    H = [[0] * n for _ in range(n_units)]
    for i in range(n):
        for k in range(n_units):
            free = H[k][i - 1] if i > 0 else load
            avail = H[k - 1][i] if k > 0 else load
            S[k][i] = max(free, avail)
            F[k][i] = S[k][i] + int(service[k][i])
            if k < n_units - 1 and i - caps[k] >= 0:
                H[k][i] = max(F[k][i], S[k + 1][i - caps[k]])
            else:
                H[k][i] = F[k][i]
    return S, F, H


def expected_stats(service, caps, load):
    n_units, n = len(service), len(service[0])
    S, F, H = recurrence(service, caps, load)
    total = F[-1][-1] if n else load
    out = []
    for k in range(n_units):
        free = [H[k][i - 1] if i > 0 else load for i in range(n)]
        d = dict(busy=sum(int(x) for x in service[k]) + (load if k == 0 else 0),
                 stall_input=sum(S[k][i] - free[i] for i in range(n)),
                 stall_output=sum(H[k][i] - F[k][i] for i in range(n)),
                 stall_weights=0 if k == 0 else load)
        d["idle"] = total - (H[k][-1] if n else load)
        out.append(d)
    return total, out


@st.composite
def pipelines(draw):
    n_units = draw(st.integers(1, 6))
    n_items = draw(st.integers(0, 10))
    hi = draw(st.sampled_from([0, 1, 3, 20]))
    service = [draw(st.lists(st.integers(0, hi), min_size=n_items, max_size=n_items)) for _ in range(n_units)]
    caps = draw(st.lists(st.integers(1, 3), min_size=n_units - 1, max_size=n_units - 1))
    load = draw(st.sampled_from([0, 0, 1, 17]))
    return service, caps, load


@settings(max_examples=300, deadline=None)
@given(pipelines())
def test_engine_matches_closed_form_recurrence(case):
    service, caps, load = case
    t = _run(service, caps, load=load, load_unit="u0")
    total, expect = expected_stats(service, caps, load)
    assert t.cycles == total
    for k, d in enumerate(expect):
        assert _stats(t, k) == d, (k, service, caps, load)
    _check_identity(t)


@settings(max_examples=100, deadline=None)
@given(pipelines())
def test_bigger_fifos_never_slow_the_pipeline(case):
    service, caps, load = case
    t = _run(service, caps, load=load, load_unit="u0")
    t_big = _run(service, [c + 1 for c in caps], load=load, load_unit="u0")
    assert t_big.cycles <= t.cycles
    # the slowest unit is a lower bound; the serial sum an upper bound
    if service[0]:
        assert t.cycles >= load + max(sum(s) for s in service)
        assert t.cycles <= load + sum(sum(s) for s in service)


def test_no_load_unit_charges_every_unit_weights():
    t = simulate_pipeline(["a", "b"], [np.array([1]), np.array([1])], [1], load_cycles=5, load_unit=None)
    assert t.cycles == 7
    assert t.units["a"].stall_weights == 5 and t.units["b"].stall_weights == 5
    _check_identity(t)


@pytest.mark.parametrize("cap", [1, 2, 5])
def test_balanced_pipeline_throughput(cap):
    # Equal 2-cycle stages: fill (2 per stage) then one item every 2 cycles.
    n, k = 8, 4
    t = _run([[2] * n] * k, [cap] * (k - 1))
    assert t.cycles == 2 * k + 2 * (n - 1)
    _check_identity(t)
