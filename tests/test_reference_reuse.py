"""The float64 BLAS reference keeps its work memory between calls: no call may see another's data.

A large dense call fills the work arrays with non-zero values; every later call, smaller or
strided or padded differently, must still equal the plain int64 definition (so the padding rows
and columns are zeroed again each time), and results already returned must stay as they were.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from simulator.numerics import (blas_conv2d_accumulators, ref_conv2d, ref_conv2d_accumulators, ref_maxpool,
                                requantize)


def _dense(rng, shape):
    return rng.integers(-32768, 32768, size=shape, dtype=np.int16)


CASES = [  # (H, W, C, C_out, k, stride, padding)
    (9, 11, 5, 7, 3, 1, 1),
    (12, 10, 3, 4, 3, 2, 1),
    (8, 8, 6, 6, 5, 1, 2),
    (13, 7, 4, 9, 7, 2, 3),
    (6, 9, 2, 3, 1, 1, 0),
    (70, 40, 8, 8, 3, 1, 1),     # enough GEMM rows for the column phases
    (70, 41, 8, 8, 3, 2, 0),
]


@pytest.mark.parametrize("first", CASES)
def test_calls_after_a_larger_dense_call_equal_the_plain_definition(first):
    rng = np.random.default_rng(3)
    big_x, big_w = _dense(rng, (80, 80, 16)), _dense(rng, (16, 5, 5, 16))
    blas_conv2d_accumulators(big_x, big_w, 1, 2)
    earlier = None
    for H, W, C, cout, k, s, p in [first] + CASES:
        x, w = _dense(rng, (H, W, C)), _dense(rng, (cout, k, k, C))
        got = blas_conv2d_accumulators(x, w, s, p)
        np.testing.assert_array_equal(got, ref_conv2d_accumulators(x, w, s, p))
        if earlier is not None:
            np.testing.assert_array_equal(earlier[0], earlier[1])   # an earlier result is untouched
        earlier = (got, got.copy())


@pytest.mark.parametrize("activation", [0, 1, 2])
def test_ref_conv2d_is_the_requantized_plain_definition(activation):
    rng = np.random.default_rng(activation)
    x, w = _dense(rng, (20, 17, 6)), _dense(rng, (5, 3, 3, 6))
    b = _dense(rng, (5,))
    want = requantize(ref_conv2d_accumulators(x, w, 1, 1), b, activation)
    blas_conv2d_accumulators(_dense(rng, (40, 40, 8)), _dense(rng, (8, 3, 3, 8)))
    np.testing.assert_array_equal(ref_conv2d(x, w, b, padding=1, activation=activation), want)


def test_threads_do_not_share_work_memory():
    rng = np.random.default_rng(11)
    jobs = [(_dense(rng, (30 + i, 25, 6)), _dense(rng, (7, 3, 3, 6))) for i in range(4)]
    want = [ref_conv2d_accumulators(x, w, 1, 1) for x, w in jobs]
    bad = []

    def work(i):
        x, w = jobs[i]
        for _ in range(20):
            if not np.array_equal(blas_conv2d_accumulators(x, w, 1, 1), want[i]):
                bad.append(i)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


@pytest.mark.parametrize("padding", [0, 1])
def test_maxpool_against_a_loop(padding):
    rng = np.random.default_rng(5)
    x = _dense(rng, (9, 8, 3))
    x[0, 0] = -32768
    got = ref_maxpool(x, 3, 2, padding)
    H, W, _ = x.shape
    Ho, Wo = (H + 2 * padding - 3) // 2 + 1, (W + 2 * padding - 3) // 2 + 1
    want = np.empty((Ho, Wo, 3), dtype=np.int16)
    for i in range(Ho):
        for j in range(Wo):
            y0, x0 = 2 * i - padding, 2 * j - padding
            win = x[max(0, y0):y0 + 3, max(0, x0):x0 + 3]
            want[i, j] = win.reshape(-1, 3).max(axis=0)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, want)


def test_a_network_run_keeps_no_work_memory():
    from simulator import simulate
    from simulator.numerics import _reference

    rng = np.random.default_rng(5)
    blas_conv2d_accumulators(_dense(rng, (40, 40, 8)), _dense(rng, (8, 3, 3, 8)), 1, 1)
    assert getattr(_reference._scratch, "bufs", None)            # the arrays are kept between calls ...
    simulate("roshambonet", "nullhop")
    assert not getattr(_reference._scratch, "bufs", None)        # ... but not after a network run
