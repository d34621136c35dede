"""Synthetic activations / weights / biases, seeding and the sample photo."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import TraceError
from workloads import (
    child_seed,
    image_input,
    sample_image,
    synthetic_activation,
    synthetic_bias,
    synthetic_weights,
)


def target(density, n):
    return int(np.floor(density * n + 0.5))


def zero_right_neighbour_zero(a):
    """P(pixel right of a zero is zero), pooled over all channels."""
    z = a == 0
    pairs = z[:, :-1, :]
    return np.count_nonzero(pairs & z[:, 1:, :]) / np.count_nonzero(pairs)


# -- seeding ---------------------------------------------------------------------------------------

def test_child_seed_is_stable_and_independent():
    # Pinned: crc32-based keys must not change between runs or Python versions.
    assert child_seed(0, "a").generate_state(2).tolist() == [3553649693, 2728199522]
    assert child_seed(12345, "vgg16", "conv1_2", 3).generate_state(2).tolist() == [430494558, 1547810395]
    states = {tuple(child_seed(1, *k).generate_state(4)) for k in [(), ("a",), ("b",), (3,), ("3",), ("a", "b")]}
    assert len(states) == 6
    nested = child_seed(child_seed(9, "net"), "layer").generate_state(4)
    assert nested.tolist() == child_seed(9, "net", "layer").generate_state(4).tolist()


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, None])
def test_child_seed_rejects_bad_seeds(seed):
    with pytest.raises(TraceError, match=f"^seed must be a non-negative int or a SeedSequence, not "
                                         f"{re.escape(repr(seed))}$"):
        child_seed(seed, "x")


def test_child_seed_rejects_bad_keys():
    with pytest.raises(TraceError, match=r"^seed keys must be str or int, not 1.5$"):
        child_seed(1, 1.5)


# -- activations -----------------------------------------------------------------------------------

def test_activation_determinism():
    a = synthetic_activation((20, 24, 8), 0.4, 11)
    b = synthetic_activation((20, 24, 8), 0.4, 11)
    c = synthetic_activation((20, 24, 8), 0.4, 12)
    d = synthetic_activation((20, 24, 8), 0.4, child_seed(11, "layer"))
    e = synthetic_activation((20, 24, 8), 0.4, child_seed(11, "layer"))
    assert a.dtype == np.int16 and a.shape == (20, 24, 8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(d, e) and not np.array_equal(a, d)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 6), density=st.floats(0.0, 1.0),
       corr=st.sampled_from([0.0, 0.7, 2.0, 5.0]), spread=st.floats(0.0, 0.95), seed=st.integers(0, 2**32))
def test_activation_density_is_exact(h, w, c, density, corr, spread, seed):
    a = synthetic_activation((h, w, c), density, seed, correlation_px=corr, channel_spread=spread)
    assert a.shape == (h, w, c) and a.dtype == np.int16
    assert np.count_nonzero(a) == target(density, a.size)
    assert a.min() >= 0  # post-ReLU


def test_activation_extremes():
    assert not synthetic_activation((8, 8, 4), 0.0, 1).any()
    assert synthetic_activation((8, 8, 4), 1.0, 1).min() >= 1
    assert np.count_nonzero(synthetic_activation((8, 8, 4), 0.5 / 256, 1)) == 1  # half rounds up


def test_activation_zeros_are_spatially_clustered():
    d = 0.5
    shape = (64, 64, 16)
    smooth = synthetic_activation(shape, d, 5, correlation_px=2.0, channel_spread=0.0)
    iid = synthetic_activation(shape, d, 5, correlation_px=0.0, channel_spread=0.0)
    p_smooth, p_iid = zero_right_neighbour_zero(smooth), zero_right_neighbour_zero(iid)
    assert p_iid == pytest.approx(1 - d, abs=0.02)  # i.i.d. fallback: neighbour independent
    assert p_smooth > 0.8  # blobs: a zero's neighbour is mostly zero
    assert p_smooth > p_iid + 0.25
    # larger correlation length -> larger blobs
    big = synthetic_activation(shape, d, 5, correlation_px=5.0, channel_spread=0.0)
    assert zero_right_neighbour_zero(big) > p_smooth


def test_activation_structure_holds_at_low_density():
    a = synthetic_activation((56, 56, 32), 0.19, 2)
    assert zero_right_neighbour_zero(a) > 0.81 + 0.08


def test_channel_spread():
    shape = (32, 32, 256)
    flat = synthetic_activation(shape, 0.3, 3, channel_spread=0.0)
    per_ch = np.count_nonzero(flat, axis=(0, 1)) / (32 * 32)
    # Without spread every channel aims at the same density; only the smooth
    # field's sampling noise remains (thresholds are Gaussian quantiles).
    assert per_ch.std() < 0.03
    spread = synthetic_activation(shape, 0.3, 3, channel_spread=0.5)
    per_ch = np.count_nonzero(spread, axis=(0, 1)) / (32 * 32)
    assert per_ch.mean() == pytest.approx(0.3, abs=1e-3)
    assert per_ch.std() > 0.15
    assert np.count_nonzero(per_ch < 0.02) >= 3  # occasional near-dead channels
    assert np.count_nonzero(per_ch < 0.02) < 0.25 * 256


def test_activation_magnitudes_are_q88_typical():
    a = synthetic_activation((32, 32, 64), 0.6, 4)
    nz = a[a != 0].astype(np.float64)
    assert nz.min() >= 1
    assert 200 < nz.mean() < 320  # ~1.0 in Q8.8 = 256 LSB


def _zero_zero_at_lag(a, lag):
    """P(pixel ``lag`` px right of a zero is zero), pooled over all channels."""
    z = a == 0
    pairs = z[:, :-lag, :]
    return np.count_nonzero(pairs & z[:, lag:, :]) / np.count_nonzero(pairs)


def _fft_reference_map(shape, density, sigma, seed):
    """An independent reference: white noise blurred by the exact Gaussian transfer function
    in the FFT domain (3 sigma padding), each channel thresholded at its own quantile."""
    h, w, c = shape
    pad = int(np.ceil(3 * sigma))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((c, h + 2 * pad, w + 2 * pad))
    fy = np.fft.fftfreq(h + 2 * pad)[:, None]
    fx = np.fft.fftfreq(w + 2 * pad)[None, :]
    field = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * np.pi**2 * sigma**2 * (fy**2 + fx**2))).real
    field = field[:, pad:pad + h, pad:pad + w]
    thr = np.quantile(field.reshape(c, -1), 1 - density, axis=1)
    return (field > thr[:, None, None]).transpose(1, 2, 0).astype(np.int16)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 5.0])
def test_activation_blobs_match_an_fft_gaussian_blur(sigma):
    # The separable truncated blur gives the same blob statistics as the exact Gaussian filter:
    # P(zero | zero at lag 1..3 px) agree within sampling noise.
    shape, d = (64, 64, 32), 0.5
    new = synthetic_activation(shape, d, 8, correlation_px=sigma, channel_spread=0.0)
    ref = _fft_reference_map(shape, d, sigma, 8)
    for lag in (1, 2, 3):
        assert _zero_zero_at_lag(new, lag) == pytest.approx(_zero_zero_at_lag(ref, lag), abs=0.03), lag


def test_synthetic_values_do_not_depend_on_the_thread_count():
    import numba
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            runs.append((synthetic_activation((40, 36, 24), 0.37, 3),
                         synthetic_activation((9, 9, 16), 0.6, 4, correlation_px=0.0),
                         synthetic_weights((64, 3, 3, 48), 5, density=0.3)))
    finally:
        numba.set_num_threads(before)
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("sample, sigmas", [(64, 0.0), (64, 8.0), (4096, 8.0)])
def test_activation_bracketed_count_equals_the_exact_top_k(monkeypatch, sample, sigmas):
    # Large maps find the count's threshold through a bracket on a sample; small ones rank every
    # score. Both keep the same exact top-k (ties to the lowest flat index), also when the
    # bracket misses and is widened (no margin).
    import workloads._synthetic as syn
    monkeypatch.setattr(syn, "MARGIN_SIGMAS", sigmas)
    for seed, d in ((21, 0.03), (1, 0.3), (2, 0.55), (21, 0.97)):
        monkeypatch.setattr(syn, "SAMPLE", 1 << 30)
        direct = synthetic_activation((30, 28, 20), d, seed)
        monkeypatch.setattr(syn, "SAMPLE", sample)
        np.testing.assert_array_equal(synthetic_activation((30, 28, 20), d, seed), direct)
        assert np.count_nonzero(direct) == target(d, direct.size)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(shape=(4, 4, 4), density=1.5), "density must be in [0, 1], not 1.5"),
    (dict(shape=(4, 4, 4), density=float("nan")), "density must be in [0, 1], not nan"),
    (dict(shape=(4, 4, 4), density="0.5"), "density must be a number in [0, 1], not '0.5'"),
    (dict(shape=(4, 0, 4), density=0.5), "activation shape must be 3 positive ints, not (4, 0, 4)"),
    (dict(shape=(4, 4), density=0.5), "activation shape must be 3 positive ints, not (4, 4)"),
    (dict(shape=(4, 4, 4), density=0.5, channel_spread=1.0), "channel_spread must be in [0, 1), not 1.0"),
    (dict(shape=(4, 4, 4), density=0.5, correlation_px=-1.0),
     "correlation_px must be a finite number >= 0, not -1.0"),
])
def test_activation_errors(kwargs, msg):
    with pytest.raises(TraceError, match=f"^{re.escape(msg)}$"):
        synthetic_activation(seed=0, **kwargs)


# -- weights and biases ----------------------------------------------------------------------------

def test_weight_determinism():
    a = synthetic_weights((16, 3, 3, 8), 1, density=0.3)
    assert a.dtype == np.int16 and a.shape == (16, 3, 3, 8)
    assert np.array_equal(a, synthetic_weights((16, 3, 3, 8), 1, density=0.3))
    assert not np.array_equal(a, synthetic_weights((16, 3, 3, 8), 2, density=0.3))


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 8), st.integers(1, 3), st.integers(1, 3), st.integers(1, 300)),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32))
def test_weight_density_is_exact(shape, density, seed):
    w = synthetic_weights(shape, seed, density=density)
    assert np.count_nonzero(w) == target(density, w.size)


def test_weights_have_he_scale():
    cout, kh, kw, cin = 256, 3, 3, 64
    w = synthetic_weights((cout, kh, kw, cin), 7).astype(np.float64) / 256
    he = np.sqrt(2 / (kh * kw * cin))
    assert w.std() == pytest.approx(he, rel=0.03)
    assert abs(w.mean()) < 0.02 * he
    assert np.count_nonzero(w) == w.size


def test_pruning_keeps_the_largest_magnitudes():
    shape = (32, 3, 3, 32)
    dense = synthetic_weights(shape, 3)
    pruned = synthetic_weights(shape, 3, density=0.27)
    kept = pruned != 0
    assert np.array_equal(pruned[kept], dense[kept])  # same draw, same values
    assert np.abs(dense[kept]).min() >= np.abs(dense[~kept]).max()


def test_large_fan_in_weights_never_round_to_zero():
    # fc6-like fan-in: He std is ~2.3 LSB, so many values round to 0 and are bumped to +-1 LSB
    w = synthetic_weights((8, 1, 1, 25088), 5)
    assert np.count_nonzero(w) == w.size
    assert np.count_nonzero(np.abs(w) == 1) > 0.3 * w.size
    p = synthetic_weights((8, 1, 1, 25088), 5, density=0.04)
    assert np.count_nonzero(p) == target(0.04, p.size)


def test_weight_draws_are_normal():
    # Without the per-kernel spread and with a small fan-in (std = 121 LSB) the Q8.8 values are
    # fine-grained He-normal draws: the tail fractions match the normal's within 5 binomial sigma.
    w = synthetic_weights((8192, 3, 3, 1), 11, scale_spread=0.0).astype(np.float64)
    z = w / (256 * np.sqrt(2 / 9))
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    for t, p in ((1.0, 0.31731), (2.0, 0.04550), (3.0, 0.00270), (4.0, 0.0000633)):
        assert abs(np.mean(np.abs(z) > t) - p) < 5 * np.sqrt(p * (1 - p) / z.size) + 1 / z.size, t


def test_weight_filter_norms_spread_log_normally():
    # scale_spread is the log-space std of the per-kernel scale: the log of each kernel's RMS
    # spreads by about that much (plus the small sampling noise of 576 weights per kernel).
    w = synthetic_weights((512, 3, 3, 64), 2, scale_spread=0.5).astype(np.float64)
    log_rms = np.log(np.sqrt((w.reshape(512, -1) ** 2).mean(axis=1)))
    assert 0.42 < log_rms.std() < 0.58
    flat = synthetic_weights((512, 3, 3, 64), 2, scale_spread=0.0).astype(np.float64)
    assert np.log(np.sqrt((flat.reshape(512, -1) ** 2).mean(axis=1))).std() < 0.06


@pytest.mark.parametrize("sample, sigmas", [(64, 0.0), (64, 8.0), (4096, 8.0)])
def test_bracketed_pruning_equals_the_exact_top_k(monkeypatch, sample, sigmas):
    # Large tensors are pruned through a threshold bracketed on a sample; small ones rank every
    # value. Both must give the same exact top-k (ties to the lowest flat index). A tiny sample
    # also exercises the kernels with more candidates than room; no margin, a bracket that
    # misses the threshold and is widened.
    import workloads._draw as draw
    monkeypatch.setattr(draw, "_MARGIN_SIGMAS", sigmas)
    shape = (48, 3, 3, 40)
    for seed, d in ((21, 0.03), (1, 0.3), (2, 0.3), (21, 0.97)):   # (1, 2: bracket widened up, down)
        monkeypatch.setattr(draw, "_SAMPLE", 1 << 30)
        direct = synthetic_weights(shape, seed, density=d)
        monkeypatch.setattr(draw, "_SAMPLE", sample)
        np.testing.assert_array_equal(synthetic_weights(shape, seed, density=d), direct)
        assert np.count_nonzero(direct) == target(d, direct.size)


def test_weight_errors():
    with pytest.raises(TraceError, match=r"^weight shape must be 4 positive ints, not \(3, 3, 8\)$"):
        synthetic_weights((3, 3, 8), 0)
    with pytest.raises(TraceError, match=r"^density must be in \[0, 1\], not -0.5$"):
        synthetic_weights((3, 3, 3, 8), 0, density=-0.5)


def test_bias():
    b = synthetic_bias(1000, 4)
    assert b.dtype == np.int16 and b.shape == (1000,)
    assert np.array_equal(b, synthetic_bias(1000, 4))
    assert 8 < b.std() < 18  # ~13 LSB = 0.05
    assert synthetic_bias(0, 4).shape == (0,)
    with pytest.raises(TraceError, match=r"^bias length must be a non-negative int, not -3$"):
        synthetic_bias(-3, 0)


# -- sample photo ----------------------------------------------------------------------------------

def test_sample_image():
    img = sample_image()
    assert img.shape == (224, 224, 3) and img.dtype == np.int16
    assert np.array_equal(img, sample_image())
    x = img / 256
    assert -2.2 < x.min() and x.max() < 2.7  # ImageNet-normalised range
    assert np.count_nonzero(img) > 0.99 * img.size  # the image input is dense (docs/sources.md §S1)
    assert len(np.unique(img)) > 500  # a photo, not a constant


def test_sample_image_grayscale_and_sizes():
    gray = sample_image(64, grayscale=True)
    assert gray.shape == (64, 64, 1) and gray.dtype == np.int16
    rgb = sample_image(64).astype(np.float64)
    # the luma of the normalised colour image and the grayscale image agree roughly
    assert np.corrcoef(rgb.mean(axis=2).ravel(), gray[..., 0].ravel())[0, 1] > 0.95
    assert sample_image(7).shape == (7, 7, 3)
    assert sample_image(600).shape == (600, 600, 3)  # upsampling works


def test_image_input_shapes():
    assert image_input((48, 80, 3)).shape == (48, 80, 3)
    assert image_input((64, 64, 1)).shape == (64, 64, 1)
    assert np.array_equal(image_input((224, 224, 3)), sample_image(224))
    with pytest.raises(TraceError, match=r"^image input must have 1 \(grayscale\) or 3 \(RGB\) channels, not 2$"):
        image_input((32, 32, 2))
    with pytest.raises(TraceError, match=r"^image input shape must be 3 positive ints, not \(0, 32, 3\)$"):
        image_input((0, 32, 3))


def test_image_input_is_computed_once_per_shape_and_each_call_gets_its_own_array(monkeypatch):
    import workloads._synthetic as syn
    first = image_input((40, 56, 3))
    expected = first.copy()
    first[...] = 0                                   # the caller's array is its own
    calls = []
    monkeypatch.setattr(syn, "normalized_image", lambda *a: calls.append(a))
    again = image_input((40, 56, 3))                 # from the per-shape cache: no resize
    assert calls == [] and again.flags.writeable
    assert np.array_equal(again, expected)


def test_packed_ranking_equals_the_full_sort():
    # float32 keys are ranked by one partition of (key, index) packed into uint64; the kept set
    # and the last kept element must be those of the full sort, with ties (and -0.0 == 0.0) to
    # the lowest index.
    from workloads._topk import _rank
    rng = np.random.default_rng(1)
    for t in range(200):
        m = int(rng.integers(1, 400))
        keys = rng.integers(-5, 5, m).astype(np.float32) * np.float32(0.5)
        keys[rng.random(m) < 0.1] = -0.0
        idxs = rng.choice(10**6, m, replace=False)
        full = np.lexsort((idxs, -keys))
        kk = int(rng.integers(1, m + 1))
        order = _rank(keys, idxs, kk)
        assert set(order[:kk].tolist()) == set(full[:kk].tolist()) and order[kk - 1] == full[kk - 1], t
