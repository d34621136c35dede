"""run_chunks: the ranges cover [0, n) once, and a cost splits them at equal work."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import simulate
from workloads import run_blas_chunks, run_chunks
from workloads._parallel import _bounds


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=300), st.integers(1, 8))
def test_cost_bounds_split_at_equal_work(costs, k):
    cost = np.array(costs)
    n = len(cost)
    k = min(k, n)
    b = _bounds(n, k, cost)
    assert b[0] == 0 and b[-1] == n and np.all(np.diff(b) >= 0)
    sums = [cost[b[i]:b[i + 1]].sum() for i in range(k)]
    # no chunk holds more than its share plus one index's cost
    assert max(sums) <= cost.sum() / k + cost.max()


def test_every_index_is_visited_once_with_a_cost():
    seen = np.zeros(1000, dtype=np.int64)
    lock = threading.Lock()

    def visit(lo, hi):
        with lock:
            seen[lo:hi] += 1
    cost = np.zeros(1000)
    cost[900:] = 1.0            # all the work at the end
    run_chunks(visit, 1000, cost=cost)
    assert np.all(seen == 1)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


def test_blas_chunks_hold_blas_to_one_thread_and_give_it_back():
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        inside = []
        run_blas_chunks(lambda lo, hi: inside.append(_blas_threads()), 4)
        assert before and len(inside) >= 1 and all(t == [1] for t in inside)
        assert _blas_threads() == before


def test_a_network_run_keeps_blas_on_one_thread_and_gives_it_back():
    # The timing model's tap counts are BLAS products too: no BLAS thread may spin after them.
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        inside = []
        simulate("roshambonet", "nullhop", observer=lambda s, x, written: inside.append(_blas_threads()))
        assert before and inside and all(t == [1] for t in inside)
        assert _blas_threads() == before


def test_overlapping_blas_sections_limit_once_and_the_last_one_restores(monkeypatch):
    # Thread A enters, then B; A leaves first, then B. One limit for both, lifted when B leaves:
    # each section restoring what it found would leave B's "1 thread" behind for good.
    import workloads._parallel as par
    events = []

    class Limiter:
        def restore_original_limits(self):
            events.append("restore")

    class Controller:
        def limit(self, limits, user_api):
            events.append(("limit", limits, user_api))
            return Limiter()
    monkeypatch.setitem(par._blas_state, "controller", Controller())
    a_in, b_in, a_done = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        run_blas_chunks(lambda lo, hi: (a_in.set(), b_in.wait(10)), 1)
        events.append("A left")
        a_done.set()

    def b() -> None:
        run_blas_chunks(lambda lo, hi: (b_in.set(), a_done.wait(10)), 1)
    ta = threading.Thread(target=a)
    ta.start()
    assert a_in.wait(10)
    tb = threading.Thread(target=b)
    tb.start()
    ta.join(20)
    tb.join(20)
    assert not ta.is_alive() and not tb.is_alive()
    assert events == [("limit", 1, "blas"), "A left", "restore"]
    assert par._blas_state["users"] == 0 and par._blas_state["limiter"] is None


@pytest.mark.parametrize("shape, cout, stride", [((100, 100, 16), 16, 1), ((130, 130, 24), 24, 2),
                                                 ((40, 40, 32), 32, 1), ((60, 60, 64), 64, 2),
                                                 ((160, 160, 32), 8, 1), ((171, 171, 32), 8, 2)])
def test_split_blas_reference_equals_the_plain_one(monkeypatch, shape, cout, stride):
    # Large enough to be split over the threads: phased GEMMs (the first two) and summed column
    # taps (the next two); the last two also copy their input rows on the threads.
    import simulator.numerics._reference as ref
    from simulator.numerics import blas_conv2d_accumulators, ref_conv2d_accumulators
    split = []
    real = ref.run_blas_chunks
    monkeypatch.setattr(ref, "run_blas_chunks", lambda fn, n, serial=False: split.append(not serial) or
                        real(fn, n, serial=serial))
    rng = np.random.default_rng(sum(shape) + cout + stride)
    x = rng.integers(-32768, 32768, shape, dtype=np.int16)
    x[rng.random(shape) < 0.4] = 0
    w = rng.integers(-32768, 32768, (cout, 3, 3, shape[2]), dtype=np.int16)
    np.testing.assert_array_equal(blas_conv2d_accumulators(x, w, stride, 1),
                                  ref_conv2d_accumulators(x, w, stride, 1))
    assert split == [True]


def test_split_blas_fc_reference_equals_the_kernel():
    from simulator.numerics import fc, ref_fc
    from simulator.numerics._reference import _PARALLEL_MIN_PRODUCTS    # split over the threads
    rng = np.random.default_rng(7)
    x = rng.integers(-32768, 32768, (1, 1, 4096), dtype=np.int16)
    x[rng.random(x.shape) < 0.5] = 0
    w = rng.integers(-32768, 32768, (2048, 1, 1, 4096), dtype=np.int16)
    assert w.size > _PARALLEL_MIN_PRODUCTS
    np.testing.assert_array_equal(ref_fc(x, w, None, 0), fc(x, w, None, 0))


def _hugepage_hint() -> bool:
    import numpy._core.multiarray as ma
    return bool(ma._get_madvise_hugepage())


def test_a_network_run_asks_for_no_huge_pages_and_gives_the_setting_back():
    # numpy's huge-page hint is off while a run allocates, and back as it was after it, whether
    # it was on or off before.
    import numpy._core.multiarray as ma
    from workloads import no_huge_pages
    first = ma._set_madvise_hugepage(True)
    try:
        for before in (True, False):
            ma._set_madvise_hugepage(before)
            inside = []
            simulate("roshambonet", "nullhop", observer=lambda s, x, written: inside.append(_hugepage_hint()))
            assert inside and not any(inside)
            assert _hugepage_hint() is before
        # overlapping sections: the setting returns when the last one ends
        ma._set_madvise_hugepage(True)
        a, b = no_huge_pages(), no_huge_pages()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert _hugepage_hint() is False
        b.__exit__(None, None, None)
        assert _hugepage_hint() is True
    finally:
        ma._set_madvise_hugepage(first)
