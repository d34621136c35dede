"""Bias calibration of propagated runs: the per-channel threshold equals the plain numpy formula.

The runner finds the k-th largest accumulator of every channel (``k = round(target * n)``) on a
channel-major copy made in blocks; this checks it against the direct formula on the strided
columns, ties, ``k = n``, ``k = 1``, one channel and the layer-wide path of small maps included.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.runner._network_run import _MIN_CHANNEL_SAMPLES, _calibrate_bias


def _plain_bias(acc: np.ndarray, target: float) -> np.ndarray:
    """``b = ceil((256 - q) / 256)`` saturated, ``q`` the k-th largest per channel, by sorting."""
    cout = acc.shape[-1]
    flat = acc.reshape(-1, cout)
    if flat.shape[0] < _MIN_CHANNEL_SAMPLES:
        flat = flat.reshape(-1, 1)
    n = flat.shape[0]
    k = int(round(target * n))
    if k <= 0:
        q = flat.max(axis=0) + 256
    else:
        q = np.sort(flat, axis=0)[n - k]
    b = -((q - 256) // 256)
    return np.broadcast_to(np.clip(b, -32768, 32767).astype(np.int16), (cout,)).copy()


@st.composite
def _accumulators(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 12))
    c = draw(st.sampled_from([1, 2, 3, 17, 64, 300, 1100]))
    # A few distinct values give many ties; wide ones reach the int16 saturation of the bias.
    span = draw(st.sampled_from([3, 600, 2**20, 2**47]))
    seed = draw(st.integers(0, 2**32 - 1))
    acc = np.random.default_rng(seed).integers(-span, span, size=(h, w, c), dtype=np.int64)
    n = h * w if h * w >= _MIN_CHANNEL_SAMPLES else h * w * c
    k = draw(st.sampled_from(["zero", "one", "all", "any"]))
    target = {"zero": 0.0, "one": 1.0 / n, "all": 1.0,
              "any": draw(st.floats(0.0, 1.0, allow_nan=False))}[k]
    return acc, target


@settings(max_examples=300, deadline=None)
@given(_accumulators())
def test_bias_equals_plain_formula(case):
    acc, target = case
    got = _calibrate_bias(acc, target)
    assert got.dtype == np.int16 and got.shape == (acc.shape[-1],)
    np.testing.assert_array_equal(got, _plain_bias(acc, target))


def test_fc_accumulators_one_layer_wide_threshold():
    acc = np.arange(-2000, 2096, dtype=np.int64).reshape(1, 1, 4096) * 300
    b = _calibrate_bias(acc, 0.25)
    assert np.all(b == b[0])
    np.testing.assert_array_equal(b, _plain_bias(acc, 0.25))
    # About a quarter of the outputs are positive after the shift by 8.
    assert abs(np.count_nonzero((acc.reshape(-1) + 256 * int(b[0])) // 256 > 0) - 1024) <= 1


@pytest.mark.parametrize("shape", [(300, 300, 20), (230, 230, 64), (40, 41, 1100)])
def test_bias_of_large_layers_in_channel_blocks(shape):
    # Large maps select a few channels at a time (blocks of 8, the last one shorter), split over
    # the threads: the same biases as the plain formula.
    acc = np.random.default_rng(shape[2]).integers(-2**40, 2**40, size=shape, dtype=np.int64)
    np.testing.assert_array_equal(_calibrate_bias(acc, 0.37), _plain_bias(acc, 0.37))


@settings(max_examples=100, deadline=None)
@given(_accumulators())
def test_int32_accumulators_give_the_same_bias(case):
    # Compact (int32) accumulators, as the int32 convolution returns them: the same biases as
    # their int64 values, at the ends of the int32 range too (no wrap in q - 256 or max + 256).
    acc, target = case
    acc = np.clip(acc, -2**31, 2**31 - 1)
    acc.reshape(-1)[:3] = [-2**31, 2**31 - 1, -2**31 + 100][:acc.size]
    got = _calibrate_bias(acc.astype(np.int32), target)
    np.testing.assert_array_equal(got, _calibrate_bias(acc, target))
    np.testing.assert_array_equal(got, _plain_bias(acc, target))
