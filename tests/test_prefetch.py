"""The weight prefetch thread: values in order, errors handed over, nothing drawn twice."""
import threading
import time

import pytest

from simulator import simulate
from simulator.runner import _network_run
from simulator.runner._prefetch import MISSING, Prefetcher
from workloads import LimitError


def test_values_arrive_in_order_once_each():
    order = []
    jobs = [(k, lambda k=k: order.append(k) or k * 10, 1) for k in range(5)]
    p = Prefetcher(jobs, 100)
    assert [p.get(k) for k in range(5)] == [0, 10, 20, 30, 40]
    assert order == list(range(5))
    assert p.get(2) is MISSING          # handed over once
    assert p.get("other") is MISSING    # never a job


def test_a_failed_job_raises_for_its_key_and_stops_the_rest():
    def fail():
        raise ValueError("draw failed")
    p = Prefetcher([("a", lambda: 1, 1), ("b", fail, 1), ("c", lambda: 3, 1)], 100)
    assert p.get("a") == 1
    with pytest.raises(ValueError, match="draw failed"):
        p.get("b")
    assert p.get("c") is MISSING        # the caller makes it itself


def test_close_stops_further_jobs():
    gate = threading.Event()
    started = []
    p = Prefetcher([("a", lambda: gate.wait(10) and "a", 1), ("b", lambda: started.append("b"), 1)], 100)
    p.close()
    gate.set()
    assert p.get("a") is MISSING and p.get("b") is MISSING
    p._thread.join(10)
    assert started == []


def test_values_not_taken_hold_back_the_next_jobs():
    made = []
    p = Prefetcher([(k, lambda k=k: made.append(k) or k, 40) for k in range(4)], 100)
    time.sleep(0.3)
    assert made == [0, 1]               # a third value of 40 bytes would exceed the 100 allowed
    assert p.get(0) == 0
    assert p.get(1) == 1 and p.get(2) == 2 and p.get(3) == 3
    assert made == [0, 1, 2, 3]


def test_a_key_never_asked_for_does_not_block_the_later_ones():
    p = Prefetcher([(k, lambda k=k: k, 60) for k in range(3)], 100)
    assert p.get(2) == 2                # 0 and 1 were skipped: their room is given back
    assert p.get(0) is MISSING


@pytest.fixture
def fresh_draws(monkeypatch):
    """No per-process or on-disk cached tensors: every weight tensor is drawn in this run."""
    monkeypatch.setenv("SPARSESIM_CACHE_DIR", "off")
    monkeypatch.setattr(_network_run, "_SYNTHETIC", _network_run._SeedCache(512 << 20))
    draws = []
    real = _network_run.synthetic_weights

    def counting(shape, seed, **kw):
        draws.append((shape, threading.current_thread().name))
        return real(shape, seed, **kw)
    monkeypatch.setattr(_network_run, "synthetic_weights", counting)
    return draws


def test_every_weight_tensor_is_drawn_once_on_the_prefetch_thread(fresh_draws):
    res = simulate("roshambonet", "nullhop")
    weighted = [r for r in res.layers if r.op in ("conv", "fc")]
    assert len(fresh_draws) == len(weighted)
    assert {name for _, name in fresh_draws} == {"sparsesim-prefetch"}


def test_a_draw_that_runs_out_of_memory_fails_the_run_cleanly(fresh_draws, monkeypatch):
    real = _network_run.synthetic_weights

    def oom(shape, seed, **kw):
        if shape[0] == 32:          # roshambonet's second conv
            raise MemoryError
        return real(shape, seed, **kw)
    monkeypatch.setattr(_network_run, "synthetic_weights", oom)
    with pytest.raises(LimitError, match="out of memory"):
        simulate("roshambonet", "nullhop")
