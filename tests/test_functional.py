"""Bit-exactness of the compressed-stream kernels against the plain numpy reference.

Covers simulator/numerics/_codec.py (SM + non-zero stream), simulator/numerics/_kernels.py
(numba kernels) and simulator/numerics/_reference.py (numpy), plus hand-computed Q8.8
cases that do not depend on either implementation.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from simulator.numerics import (
    check_stream,
    compressed_row_values,
    compressed_size_bits,
    decode,
    encode,
    interleave,
    sm_words_per_row,
)
from simulator.numerics import (
    add,
    avgpool,
    conv2d,
    conv2d_accumulators,
    conv_accumulate,
    fc,
    fc_accumulators,
    maxpool,
    pair_table,
    requantize,
)
from simulator.numerics import (
    ref_add,
    ref_avgpool,
    ref_conv2d,
    blas_conv2d_accumulators,
    ref_conv2d_accumulators,
    ref_fc,
    ref_maxpool,
)
from simulator.numerics import _codec, _kernels
from workloads import TraceError, WorkloadError

Q = 256  # 1.0 in Q8.8

# ---------------------------------------------------------------------------
# random data
# ---------------------------------------------------------------------------

#: Densities: all zero, all non-zero, and in between.
DENSITIES = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.05, 0.95))
#: "full" spans the whole int16 range (saturation), "small" stays near 0 (no saturation).
VALUE_MODES = st.sampled_from(["full", "small", "mid"])
SEEDS = st.integers(0, 2**32 - 1)
CHANNELS = st.sampled_from([1, 2, 3, 5, 8, 16, 17, 24, 33, 64])


def _values(rng: np.random.Generator, shape, density: float, mode: str) -> np.ndarray:
    """int16 array of the given density (exact for 0 and 1) and value range."""
    lim = {"full": 2**15, "small": 9, "mid": 2 * Q}[mode]
    v = rng.integers(-lim, lim, size=shape, dtype=np.int64)
    v[v == 0] = 1
    keep = rng.random(shape) < density
    return np.where(keep, v, 0).astype(np.int16)


@st.composite
def conv_layers(draw):
    kh = draw(st.integers(1, 7))
    kw = draw(st.integers(1, 7))
    stride = draw(st.sampled_from([1, 2]))
    padding = draw(st.integers(0, 3))
    C = draw(CHANNELS)
    gmode = draw(st.sampled_from(["one", "depthwise", "middle"]))
    middle = [g for g in range(2, C) if C % g == 0]
    if gmode == "depthwise":
        groups = C
    elif gmode == "middle" and middle:
        groups = draw(st.sampled_from(middle))
    else:
        groups = 1
    if groups == 1:
        cout = draw(st.sampled_from([1, 3, 16, 19, 32]))
    else:
        cout = groups * draw(st.integers(1, 3))
    H = draw(st.integers(max(1, kh - 2 * padding), max(1, kh - 2 * padding) + 7))
    W = draw(st.integers(max(1, kw - 2 * padding), max(1, kw - 2 * padding) + 7))
    return dict(
        H=H, W=W, C=C, cout=cout, kh=kh, kw=kw, stride=stride, padding=padding,
        groups=groups, act_density=draw(DENSITIES), act_mode=draw(VALUE_MODES),
        w_density=draw(DENSITIES), w_mode=draw(VALUE_MODES),
        activation=draw(st.sampled_from([0, 1, 2])), seed=draw(SEEDS),
    )


@st.composite
def activations(draw, max_hw=9):
    H = draw(st.integers(1, max_hw))
    W = draw(st.integers(1, max_hw))
    C = draw(CHANNELS)
    rng = np.random.default_rng(draw(SEEDS))
    return _values(rng, (H, W, C), draw(DENSITIES), draw(VALUE_MODES))


# ---------------------------------------------------------------------------
# compressed format
# ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(x=activations(max_hw=12))
def test_encode_decode_round_trip(x):
    H, W, C = x.shape
    sm, nz, rsp, rnp = encode(x)
    assert sm.dtype == np.uint16 and nz.dtype == np.int16
    assert rsp.dtype == np.int64 and rnp.dtype == np.int64
    assert rsp.shape == rnp.shape == (H + 1,)
    assert np.count_nonzero(nz) == nz.size == np.count_nonzero(x)
    np.testing.assert_array_equal(decode(sm, nz, rsp, rnp, H, W, C), x)
    # non-zeros are listed in HWC stream order
    np.testing.assert_array_equal(nz, x.reshape(-1)[x.reshape(-1) != 0])


@settings(max_examples=100, deadline=None)
@given(x=activations(max_hw=12))
def test_encode_on_threads_gives_the_same_stream(x):
    # Large maps are encoded in ranges of rows on the threads: here every map is, against the
    # round trip and the single-thread stream.
    one = encode(x)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_codec, "_PARALLEL_MIN_ENCODE", 0)
        many = encode(x)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(decode(*many, *x.shape), x)


def test_encode_large_map_on_threads():
    rng = np.random.default_rng(5)
    x = _values(rng, (75, 70, 64), 0.4, "full")
    x[10:13] = 0                                       # empty rows in the middle
    assert x.size >= _codec._PARALLEL_MIN_ENCODE
    sm, nz, rsp, rnp = encode(x)
    check_stream(sm, nz, rsp, rnp, *x.shape)
    np.testing.assert_array_equal(np.diff(rnp), np.count_nonzero(x.reshape(75, -1), axis=1))
    np.testing.assert_array_equal(decode(sm, nz, rsp, rnp, *x.shape), x)
    z = encode(np.zeros((80, 70, 64), dtype=np.int16))
    assert z[1].size == 0 and not z[0].any() and not z[3].any()


@settings(max_examples=100, deadline=None)
@given(x=activations(max_hw=12))
def test_rows_are_aligned(x):
    H, W, C = x.shape
    sm, nz, rsp, rnp = encode(x)
    words = -(-(W * C) // 16)
    assert sm_words_per_row(W, C) == words
    assert len(sm) == H * words
    np.testing.assert_array_equal(np.diff(rsp), np.full(H, words))
    for r in range(H):
        row = x[r].reshape(-1)
        bits = np.zeros(words * 16, dtype=bool)
        bits[: row.size] = row != 0
        want = (bits.reshape(words, 16) * (1 << np.arange(16))).sum(axis=1)
        np.testing.assert_array_equal(sm[rsp[r]:rsp[r + 1]], want)
        assert rnp[r + 1] - rnp[r] == np.count_nonzero(row)
    np.testing.assert_array_equal(
        compressed_row_values(rsp, rnp), words + np.count_nonzero(x.reshape(H, -1), axis=1)
    )


@settings(max_examples=50, deadline=None)
@given(H=st.integers(1, 6), W=st.integers(1, 6), C=st.sampled_from([16, 32, 48, 64]),
       density=DENSITIES, seed=SEEDS)
def test_compressed_size_matches_nullhop_formula(H, W, C, density, seed):
    # docs/sources.md §N5.3 [D]: N * (1 + 16 d) bits when rows fill whole SM words.
    x = _values(np.random.default_rng(seed), (H, W, C), density, "full")
    sm, nz, rsp, rnp = encode(x)
    n = x.size
    d = np.count_nonzero(x) / n
    assert compressed_size_bits(rsp, rnp) == pytest.approx(n * (1 + 16 * d))
    assert compressed_size_bits(rsp, rnp) == n + 16 * np.count_nonzero(x)


def test_encode_small_hand_example():
    # one row, W=2, C=3: pixels 0, 5, 0 | -7, 0, 0  -> bits 1 and 3
    x = np.array([[[0, 5, 0], [-7, 0, 0]]], dtype=np.int16)
    sm, nz, rsp, rnp = encode(x)
    assert sm.tolist() == [0b1010]
    assert nz.tolist() == [5, -7]
    assert rsp.tolist() == [0, 1] and rnp.tolist() == [0, 2]
    stream, row_ptr = interleave(sm, nz, rsp, rnp)
    assert stream.tolist() == [0b1010, 5, (-7) & 0xFFFF]
    assert row_ptr.tolist() == [0, 3]


def test_every_row_starts_a_new_word():
    # W*C = 17: each row has a full word and a 1-pixel word.
    x = np.ones((3, 1, 17), dtype=np.int16)
    sm, nz, rsp, rnp = encode(x)
    assert sm.tolist() == [0xFFFF, 1] * 3
    assert rsp.tolist() == [0, 2, 4, 6]
    assert rnp.tolist() == [0, 17, 34, 51]
    stream, row_ptr = interleave(sm, nz, rsp, rnp)
    assert row_ptr.tolist() == [0, 19, 38, 57]
    assert stream[row_ptr[:-1]].tolist() == [0xFFFF] * 3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: (s[0], np.where(np.arange(s[1].size) == 0, 0, s[1]).astype(np.int16), s[2], s[3]),
         "malformed NullHop stream: the non-zero value list contains a zero"),
        (lambda s: (s[0] ^ np.uint16(1 << 15), s[1], s[2], s[3]),
         "malformed NullHop stream: the number of non-zeros of a row must equal the popcount of its SM words"),
        (lambda s: (s[0], s[1], s[2] - np.int64(1), s[3]),
         "malformed NullHop stream: row pointers must start at 0"),
    ],
)
def test_decode_rejects_malformed_streams(mutate, message):
    x = np.arange(1, 2 * 2 * 16 + 1, dtype=np.int16).reshape(2, 2, 16)
    bad = mutate(encode(x))
    with pytest.raises(TraceError, match=f"^{message}$"):
        decode(*bad, 2, 2, 16)


def test_partial_word_high_bits_rejected():
    x = np.ones((1, 1, 3), dtype=np.int16)
    sm, nz, rsp, rnp = encode(x)
    sm = sm | np.uint16(1 << 9)
    nz = np.ones(4, dtype=np.int16)
    rnp = np.array([0, 4], dtype=np.int64)
    with pytest.raises(TraceError, match="unused high bits"):
        check_stream(sm, nz, rsp, rnp, 1, 1, 3)


def test_encode_rejects_wrong_dtype():
    with pytest.raises(TraceError, match=r"^activations must be int16 \(Q8.8\), not dtype\('float64'\)$"):
        encode(np.zeros((1, 1, 1)))


# ---------------------------------------------------------------------------
# convolution: property test against the reference
# ---------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(layer=conv_layers())
def test_conv2d_bit_exact(layer):
    L = layer
    rng = np.random.default_rng(L["seed"])
    x = _values(rng, (L["H"], L["W"], L["C"]), L["act_density"], L["act_mode"])
    w = _values(rng, (L["cout"], L["kh"], L["kw"], L["C"] // L["groups"]), L["w_density"], L["w_mode"])
    b = _values(rng, (L["cout"],), 0.8, L["w_mode"])
    kw_ = dict(stride=L["stride"], padding=L["padding"], groups=L["groups"])

    acc = conv2d_accumulators(x, w, L["stride"], L["padding"], L["groups"])
    want_acc = ref_conv2d_accumulators(x, w, L["stride"], L["padding"], L["groups"])
    assert acc.dtype == np.int64
    np.testing.assert_array_equal(acc, want_acc)

    q = (acc + (b.astype(np.int64) << 8)) >> 8
    event(f"groups: {'1' if L['groups'] == 1 else 'depthwise' if L['groups'] == L['C'] else 'middle'}")
    event(f"saturates: {bool((q > 32767).any() or (q < -32768).any())}")

    got = conv2d(x, w, b, activation=L["activation"], **kw_)
    want = ref_conv2d(x, w, b, activation=L["activation"], **kw_)
    assert got.dtype == np.int16 and got.shape == want.shape
    Ho = (L["H"] + 2 * L["padding"] - L["kh"]) // L["stride"] + 1
    Wo = (L["W"] + 2 * L["padding"] - L["kw"]) // L["stride"] + 1
    assert got.shape == (Ho, Wo, L["cout"])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(layer=conv_layers())
def test_conv_accumulate_is_stride1_and_decimation(layer):
    L = layer
    rng = np.random.default_rng(L["seed"])
    x = _values(rng, (L["H"], L["W"], L["C"]), L["act_density"], L["act_mode"])
    w = _values(rng, (L["cout"], L["kh"], L["kw"], L["C"] // L["groups"]), 0.7, L["w_mode"])
    acc1 = conv_accumulate(*encode(x), *x.shape, w, L["groups"], L["padding"])
    assert acc1.shape == (L["H"] + 2 * L["padding"] - L["kh"] + 1,
                          L["W"] + 2 * L["padding"] - L["kw"] + 1, L["cout"])
    np.testing.assert_array_equal(acc1, ref_conv2d_accumulators(x, w, 1, L["padding"], L["groups"]))
    np.testing.assert_array_equal(
        acc1[::2, ::2], conv2d_accumulators(x, w, 2, L["padding"], L["groups"])
    )


@settings(max_examples=150, deadline=None)
@given(layer=conv_layers())
def test_blas_reference_equals_plain_integer_reference(layer):
    # The simulator checks layers with the float64 BLAS path; it must equal the plain int64
    # definition bit for bit (exact because every sum stays below 2**53, docs/numerics.md).
    L = layer
    rng = np.random.default_rng(L["seed"])
    x = _values(rng, (L["H"], L["W"], L["C"]), L["act_density"], L["act_mode"])
    w = _values(rng, (L["cout"], L["kh"], L["kw"], L["C"] // L["groups"]), L["w_density"], L["w_mode"])
    args = (L["stride"], L["padding"], L["groups"])
    np.testing.assert_array_equal(blas_conv2d_accumulators(x, w, *args), ref_conv2d_accumulators(x, w, *args))


@pytest.mark.parametrize("value", [-32768, 32767])
def test_blas_reference_is_exact_at_the_largest_sums(value):
    # The largest fan-in NullHop allows (7 x 7 x 4096) at the int16 extremes: sums of
    # 200,704 products of 2**30, about 2**47.6, where a float32 or a rounding path would fail.
    x = np.full((7, 7, 4096), value, dtype=np.int16)
    w = np.full((2, 7, 7, 4096), -32768, dtype=np.int16)
    w[1, 3, 3, 5] = 32767                       # one product differs by 2**15: must not round away
    want = ref_conv2d_accumulators(x, w)
    assert abs(int(want[0, 0, 0])) > 2**47
    np.testing.assert_array_equal(blas_conv2d_accumulators(x, w), want)
    xf = x.reshape(1, 1, -1)
    wf = w.reshape(2, 1, 1, -1)
    np.testing.assert_array_equal(fc_accumulators(xf, wf), want.reshape(-1))


def test_conv_accumulate_zero_rows_give_zeros():
    rng = np.random.default_rng(7)
    w = _values(rng, (8, 3, 3, 17), 1.0, "full")
    x = np.zeros((6, 5, 17), dtype=np.int16)
    sm, nz, rsp, rnp = encode(x)
    assert nz.size == 0 and not sm.any()
    acc = conv_accumulate(sm, nz, rsp, rnp, 6, 5, 17, w, 1, 1)
    assert acc.shape == (6, 5, 8) and not acc.any()
    # only row 3 is non-zero: with a 1x1 kernel every other output row is 0
    x[3] = _values(rng, (5, 17), 1.0, "full")
    w1 = _values(rng, (8, 1, 1, 17), 1.0, "full")
    acc = conv_accumulate(*encode(x), 6, 5, 17, w1, 1, 0)
    assert not np.delete(acc, 3, axis=0).any()
    np.testing.assert_array_equal(acc, ref_conv2d_accumulators(x, w1))


def test_conv_vgg_like_layer():
    # a larger, realistic layer: 3x3, pad 1, 64 -> 64, density 0.5
    rng = np.random.default_rng(3)
    x = _values(rng, (20, 20, 64), 0.5, "mid")
    w = _values(rng, (64, 3, 3, 64), 1.0, "small")
    b = _values(rng, (64,), 1.0, "mid")
    np.testing.assert_array_equal(
        conv2d(x, w, b, padding=1, activation="relu"), ref_conv2d(x, w, b, padding=1, activation="relu")
    )



@pytest.mark.parametrize("C, cout, density, kw", [(300, 512, 0.6, 2), (37, 13, 1.0, 2), (45, 700, 0.3, 2),
                                                  (40, 16, 0.7, 3)])
def test_conv_accumulate_channel_blocks_at_the_extremes(C, cout, density, kw):
    # Wide layers split the input channels into blocks (C_out = 512 and 700 give several) and add
    # the non-zeros of a pixel 4 channel pairs at a time (3 output pixels at once for kw = 3); large
    # same-sign values give sums far above 2**31, in float64.
    rng = np.random.default_rng(C)
    x = np.abs(_values(rng, (5, 6, C), density, "full").astype(np.int32)).clip(0, 32767).astype(np.int16)
    w = -np.abs(_values(rng, (cout, 3, kw, C), 1.0, "full").astype(np.int32)).astype(np.int16)
    acc = conv_accumulate(*encode(x), *x.shape, w, 1, 1)
    np.testing.assert_array_equal(acc, ref_conv2d_accumulators(x, w, 1, 1))
    assert acc.min() < -2**34


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("w_row, x_value, arithmetic", [
    ([32767, 32767, 4], 32767, np.int32),          # 32767 * (2 * 32767 + 4) = 2**31 - 2: the largest int32 sum
    ([32767, 32767, 5], 32767, np.float32),        # 2**31 + 32765: past int32, float64 sums
    ([3, 2, 1], -32768, np.int32),                 # |v| = 2**15 is an int16 value like any other
    ([-32768, 1, 1], 1, np.int32),                 # so is the weight -32768
    ([-32768, -32768, 0], -32768, np.float32),     # 2 * (-32768)**2 = 2**31: one pair's sum would wrap
])
def test_conv_accumulate_picks_an_exact_arithmetic(sign, w_row, x_value, arithmetic):
    # The compressed-stream kernel sums in int32 only when no partial sum can reach 2**31 (the
    # largest |v| times the largest sum of one output's |w|), else in float64; both are exact.
    x = np.full((2, 2, 3), x_value if x_value == -32768 else sign * x_value, dtype=np.int16)
    w = np.array(w_row, dtype=np.int16).reshape(1, 1, 1, 3)
    w = np.concatenate([w, -w.astype(np.int32).clip(-32768, 32767).astype(np.int16)])
    t = np.empty((1, 1, 2, 2, 2), dtype=np.int16)
    l1_max = max(_kernels._pair_weight_table(w, t, 0, 1), _kernels._pair_weight_table(w, t, 1, 2))
    np.testing.assert_array_equal(t[0, 0, :, :, 0], w[:, 0, 0, 0::2].T)     # channels 0 and 2
    np.testing.assert_array_equal(t[0, 0, 0, :, 1], w[:, 0, 0, 1])           # channel 1
    np.testing.assert_array_equal(t[0, 0, 1, :, 1], 0)                       # past C_in
    assert l1_max == int(np.abs(w.astype(np.int64)).sum(axis=(1, 2, 3)).max())
    v_max = abs(int(x.flat[0]))
    table = _kernels._exact_weight_table(t, l1_max, v_max, 3)
    assert table.dtype == arithmetic
    if arithmetic == np.int32:    # each lane holds a channel pair's weights, the even one low
        lanes = table.astype(np.int64)
        np.testing.assert_array_equal((lanes << 48) >> 48, t[..., 0])
        np.testing.assert_array_equal(lanes >> 16, t[..., 1])
    acc = conv_accumulate(*encode(x), *x.shape, w, 1, 0)
    want = ref_conv2d_accumulators(x, w)
    np.testing.assert_array_equal(acc, want)
    if w_row[2] == 4:
        assert abs(int(want[0, 0, 0])) == 2**31 - 2


@pytest.mark.parametrize("C, cout", [(1, 1), (2, 8), (3, 7), (17, 24), (64, 13), (130, 40)])
def test_conv_accumulate_channel_pairs_in_int32(C, cout, monkeypatch):
    # The non-zeros are taken in channel pairs (one of the two may be zero, an odd C leaves the last
    # channel alone) and the outputs 8 at a time with a rest (C_out % 8); values of both signs near
    # the int32 bound. Every case must take the int32 table and give the reference's sums.
    rng = np.random.default_rng(C * 100 + cout)
    taken = []
    pick = _kernels._exact_weight_table
    monkeypatch.setattr(_kernels, "_exact_weight_table", lambda *a: taken.append(pick(*a)) or taken[-1])
    for density in (0.25, 0.6, 1.0):
        x = _values(rng, (9, 8, C), density, "full")
        x[0, 0, 0] = -32768
        # weights as large as the int32 bound allows: max|v| * max sum |w| = 2**15 * 65535 < 2**31
        lim = min(32767, 2 * 65535 // (9 * C))
        w = rng.integers(-lim, lim + 1, size=(cout, 3, 3, C)).astype(np.int64)
        l1 = int(np.abs(w).sum(axis=(1, 2, 3)).max())
        w = (np.sign(w) * (np.abs(w) * 65535 // max(l1, 65535))).astype(np.int16)
        assert 2**30 < 32768 * int(np.abs(w.astype(np.int64)).sum(axis=(1, 2, 3)).max()) < 2**31
        acc = conv_accumulate(*encode(x), *x.shape, w, 1, 1)
        np.testing.assert_array_equal(acc, ref_conv2d_accumulators(x, w, 1, 1))
        assert taken[-1].dtype == np.int32


@pytest.mark.parametrize("lim, want", [(300, np.int32), (32767, np.int64)])
def test_compact_accumulators(lim, want):
    # compact=True: int32 accumulators when the kernel's int32 arithmetic covers the layer (small
    # weights), int64 when its sums may not fit (full-range weights: the float64 path); the same
    # values either way, and requantize gives the same outputs from both.
    rng = np.random.default_rng(12)
    x = _values(rng, (7, 9, 21), 0.6, "full")
    w = rng.integers(-lim, lim, (16, 3, 3, 21)).astype(np.int16)
    acc = conv2d_accumulators(x, w, 2, 1, compact=True)
    assert acc.dtype == want
    wide = conv2d_accumulators(x, w, 2, 1)
    assert wide.dtype == np.int64
    np.testing.assert_array_equal(acc, wide)
    np.testing.assert_array_equal(acc, ref_conv2d_accumulators(x, w, 2, 1))
    b = rng.integers(-900, 900, 16).astype(np.int16)
    np.testing.assert_array_equal(requantize(acc, b, "relu"), requantize(wide, b, "relu"))


def test_pair_table_made_ahead_gives_the_same_sums():
    # The weight layout of the channel-pair kernel may be made once ahead (pair_table) and passed
    # in; it must be the table of these weights (shape checked) and of a groups = 1 convolution.
    rng = np.random.default_rng(11)
    x = _values(rng, (9, 8, 13), 0.5, "mid")
    w = rng.integers(-300, 300, (10, 3, 3, 13)).astype(np.int16)
    pairs = pair_table(w)
    assert pairs.shape == w.shape and pairs.l1_max == int(np.abs(w.astype(np.int64)).sum(axis=(1, 2, 3)).max())
    got = conv2d_accumulators(x, w, 1, 1, 1, pairs)
    np.testing.assert_array_equal(got, ref_conv2d_accumulators(x, w, 1, 1))
    np.testing.assert_array_equal(conv_accumulate(*encode(x), *x.shape, w, 1, 1, pairs), got)
    with pytest.raises(TraceError, match=r"pairs must be the pair_table\(\) of these \(10, 3, 3, 13\) weights"):
        conv2d_accumulators(x, w, 1, 1, 1, pair_table(w[:8]))
    with pytest.raises(TraceError, match="groups=1"):
        conv2d_accumulators(x.repeat(2, axis=2)[:, :, :26], w[:, :, :, :13], 1, 1, 2, pairs)


@pytest.mark.parametrize("cpu", ["generic", "haswell"])
def test_conv_accumulate_on_other_cpus(tmp_path, cpu):
    # The pair products are one vpdpwssd on a CPU with VNNI (this test's own process on such a
    # machine), one vpmaddwd and an add on one with AVX2 only (haswell), and plain vector arithmetic
    # without AVX2 (generic): the same sums (C_out = 24: the 3 output pixels at once).
    code = (
        "import numpy as np\n"
        "from simulator.numerics import conv_accumulate, encode, ref_conv2d_accumulators\n"
        "rng = np.random.default_rng(3)\n"
        "x = (rng.integers(-32768, 32768, (6, 7, 37)) * (rng.random((6, 7, 37)) < .5)).astype(np.int16)\n"
        "for cout in (19, 24):\n"
        "    w = rng.integers(-64, 64, (cout, 3, 3, 37)).astype(np.int16)\n"
        "    got = conv_accumulate(*encode(x), 6, 7, 37, w, 1, 1)\n"
        "    assert np.array_equal(got, ref_conv2d_accumulators(x, w, 1, 1))\n"
    )
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------
# hand-computed Q8.8 cases (independent of both implementations)
# ---------------------------------------------------------------------------


def _one(x: int, w: int, b: int = 0, activation=0) -> int:
    """1x1 conv of a 1x1x1 input: the simplest multiply-accumulate."""
    xa = np.array([[[x]]], dtype=np.int16)
    wa = np.array([[[[w]]]], dtype=np.int16)
    ba = np.array([b], dtype=np.int16)
    got = int(conv2d(xa, wa, ba, activation=activation)[0, 0, 0])
    assert got == int(ref_conv2d(xa, wa, ba, activation=activation)[0, 0, 0])
    return got


@pytest.mark.parametrize(
    "x, w, b, activation, want",
    [
        (384, 512, 0, 0, 768),          # 1.5 * 2.0 = 3.0
        (-384, 512, 0, 0, -768),        # -1.5 * 2.0 = -3.0
        (1, 1, 0, 0, 0),                # 2**-16 floors to 0
        (-1, 1, 0, 0, -1),              # -2**-16 floors to -1 LSB, not 0
        (-1, 255, 0, 0, -1),            # -255 / 256 -> -1
        (-1, 256, 0, 0, -1),            # exactly -1 LSB
        (-1, 257, 0, 0, -2),            # -257 / 256 -> -2
        (0, 0, 256, 0, 256),            # bias 1.0 enters as bias << 8
        (1, 255, -1, 0, -1),            # (255 - 256) / 256 -> -1
        (384, 512, -1024, 0, -256),     # 3.0 - 4.0 = -1.0
        (384, 512, -1024, 1, 0),        # ReLU
        (1024, 512, 0, 2, 1536),        # 4.0 * 2.0 = 8.0, ReLU6 clips to 6.0
        (1024, 256, 512, 2, 1536),      # 4.0 + 2.0 = 6.0 exactly
        (-1024, 512, 0, 2, 0),          # ReLU6 lower bound
        (32767, 32767, 0, 0, 32767),    # positive saturation
        (-32768, 32767, 0, 0, -32768),  # negative saturation
        (-32768, -32768, 0, 1, 32767),  # saturate before ReLU
        (-32768, 32767, 0, 2, 0),
        (32767, 256, 32767, 0, 32767),  # bias pushes past int16
    ],
)
def test_hand_computed_q88(x, w, b, activation, want):
    assert _one(x, w, b, activation) == want


def test_requantize_rule():
    acc = np.array([[255, 256, -1, -256, -257, 2**40, -(2**40)]], dtype=np.int64).T
    out = requantize(acc.reshape(-1, 1), np.array([0], dtype=np.int16), 0).ravel()
    assert out.tolist() == [0, 1, -1, -1, -2, 32767, -32768]
    out = requantize(acc.reshape(-1, 1), None, "relu6").ravel()
    assert out.tolist() == [0, 1, 0, 0, 0, 1536, 0]


def test_stride2_is_decimated_stride1():
    x = np.arange(1, 26, dtype=np.int16).reshape(5, 5, 1) * Q
    w = np.full((1, 3, 3, 1), Q, dtype=np.int16)  # 3x3 box sum
    y = conv2d(x, w, None, stride=2, padding=1)
    y1 = conv2d(x, w, None, stride=1, padding=1)
    np.testing.assert_array_equal(y, y1[::2, ::2])
    assert y.shape == (3, 3, 1)
    assert y[0, 0, 0] == (1 + 2 + 6 + 7) * Q


def test_grouped_conv_hand_example():
    # 2 groups, 2 -> 2 channels, 1x1: each output only sees its own input channel
    x = np.array([[[Q, 2 * Q]]], dtype=np.int16)
    w = np.array([[[[3 * Q]]], [[[5 * Q]]]], dtype=np.int16)
    assert conv2d(x, w, None, groups=2)[0, 0].tolist() == [3 * Q, 10 * Q]


def test_conv_errors_are_specific():
    x = np.zeros((2, 2, 4), dtype=np.int16)
    with pytest.raises(WorkloadError, match=r"^kernel 3x3 with padding 0 does not fit the 2x2 input$"):
        conv2d(x, np.zeros((1, 3, 3, 4), dtype=np.int16), None)
    with pytest.raises(WorkloadError, match=r"^groups=3 must divide C_in=4 and C_out=3$"):
        conv2d(x, np.zeros((3, 1, 1, 1), dtype=np.int16), None, groups=3)
    with pytest.raises(WorkloadError, match=r"^activation must be 0, 1, 2, None, 'relu' or 'relu6', not 'tanh'$"):
        conv2d(x, np.zeros((1, 1, 1, 4), dtype=np.int16), None, activation="tanh")


# ---------------------------------------------------------------------------
# pooling, add, fc
# ---------------------------------------------------------------------------

POOLS = st.sampled_from([(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), ((2, 3), 2, 1)])


@settings(max_examples=400, deadline=None)
@given(x=activations(max_hw=11), pool=POOLS)
def test_pooling_bit_exact(x, pool):
    k, s, p = pool
    kh, kw = k if isinstance(k, tuple) else (k, k)
    if kh > x.shape[0] + 2 * p or kw > x.shape[1] + 2 * p:
        return
    np.testing.assert_array_equal(maxpool(x, k, s, p), ref_maxpool(x, k, s, p))
    np.testing.assert_array_equal(avgpool(x, k, s, p), ref_avgpool(x, k, s, p))


@settings(max_examples=60, deadline=None)
@given(C=CHANNELS, density=DENSITIES, mode=VALUE_MODES, seed=SEEDS)
def test_global_avgpool_7x7(C, density, mode, seed):
    x = _values(np.random.default_rng(seed), (7, 7, C), density, mode)
    got = avgpool(x, 7)
    assert got.shape == (1, 1, C)
    np.testing.assert_array_equal(got, ref_avgpool(x, 7))
    # round half up of the exact mean, computed with Python integers
    sums = x.astype(np.int64).sum(axis=(0, 1))
    assert got.ravel().tolist() == [(2 * int(t) + 49) // 98 for t in sums]


def test_pooling_hand_cases():
    x = np.array([[[1], [2]], [[-5], [-9]]], dtype=np.int16)
    assert maxpool(x, 2, 2, 0).ravel().tolist() == [2]
    assert avgpool(np.array([[[1], [2]]], dtype=np.int16), (1, 2)).ravel().tolist() == [2]    # 1.5 -> 2
    assert avgpool(np.array([[[-1], [-2]]], dtype=np.int16), (1, 2)).ravel().tolist() == [-1]  # -1.5 -> -1
    assert avgpool(np.array([[[-1], [-1], [-2]]], dtype=np.int16), (1, 3)).ravel().tolist() == [-1]  # -4/3
    # 3x3/2 pad 1 on an all-negative map: padding must not win the max nor count in the mean
    neg = np.full((4, 4, 1), -100, dtype=np.int16)
    assert (maxpool(neg, 3, 2, 1) == -100).all()
    assert (avgpool(neg, 3, 2, 1) == -100).all()
    with pytest.raises(WorkloadError, match=r"^pooling padding must be smaller than the kernel 2x2, not 2$"):
        maxpool(neg, 2, 2, 2)


@settings(max_examples=200, deadline=None)
@given(x=activations(), mode=VALUE_MODES, activation=st.sampled_from([0, 1, 2, None, "relu", "relu6"]),
       seed=SEEDS)
def test_add_bit_exact(x, mode, activation, seed):
    y = _values(np.random.default_rng(seed), x.shape, 0.6, mode)
    np.testing.assert_array_equal(add(x, y, activation), ref_add(x, y, activation))


def test_add_saturates():
    a = np.array([[[32767, -32768, 1000, -3]]], dtype=np.int16)
    b = np.array([[[1, -1, 1000, 1]]], dtype=np.int16)
    assert add(a, b).ravel().tolist() == [32767, -32768, 2000, -2]
    assert add(a, b, 1).ravel().tolist() == [32767, 0, 2000, 0]
    assert add(a, b, 2).ravel().tolist() == [1536, 0, 1536, 0]


@settings(max_examples=200, deadline=None)
@given(x=activations(max_hw=5), cout=st.sampled_from([1, 2, 10, 33]), w_density=DENSITIES,
       mode=VALUE_MODES, activation=st.sampled_from([0, 1, 2]), seed=SEEDS)
def test_fc_bit_exact(x, cout, w_density, mode, activation, seed):
    rng = np.random.default_rng(seed)
    w = _values(rng, (cout, 1, 1, x.size), w_density, mode)
    b = _values(rng, (cout,), 0.8, mode)
    got = fc(x, w, b, activation)
    assert got.shape == (1, 1, cout) and got.dtype == np.int16
    np.testing.assert_array_equal(got, ref_fc(x, w, b, activation))
    # same as a 1x1 convolution on the HWC-flattened input
    flat = x.reshape(1, 1, -1)
    np.testing.assert_array_equal(got, conv2d(flat, w, b, activation=activation))


def test_fc_hand_case():
    x = np.zeros((1, 2, 2), dtype=np.int16)
    x[0, 1, 0] = 2 * Q  # flattened HWC index 2
    w = np.zeros((2, 1, 1, 4), dtype=np.int16)
    w[0, 0, 0, 2] = 3 * Q
    w[1, 0, 0, 2] = -Q
    assert fc(x, w, np.array([Q, 0], dtype=np.int16), 0).ravel().tolist() == [7 * Q, -2 * Q]


def test_conv_accumulate_rejects_mismatched_stream():
    sm, nz, rsp, rnp = encode(np.ones((2, 2, 8), dtype=np.int16))
    w = np.ones((1, 1, 1, 16), dtype=np.int16)
    with pytest.raises(TraceError, match=r"^stream has 2 SM words, expected H \* ceil\(W \* C / 16\) = 4"):
        conv_accumulate(sm, nz, rsp, rnp, 2, 2, 16, w, 1, 0)


def test_pair_table_version_without_source(monkeypatch):
    # The layout's version names the code that makes it; an install without source files (only
    # compiled code) still gets one, and the same one each time.
    import inspect
    a = _kernels._code_version(_kernels._pair_weight_table, _kernels.pair_table_shape)
    assert a == _kernels.PAIR_TABLE_VERSION and len(a) == 16
    monkeypatch.setattr(inspect, "getsource", lambda f: (_ for _ in ()).throw(OSError("no source")))
    b = _kernels._code_version(_kernels._pair_weight_table, _kernels.pair_table_shape)
    assert b == _kernels._code_version(_kernels._pair_weight_table, _kernels.pair_table_shape) and b != a
