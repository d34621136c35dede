"""Seeded synthetic activations, weights and biases, and the sample photo input.

Everything here is deterministic: the same arguments and seed give
bit-identical arrays on every run and for any number of threads (the large
tensors are drawn by the counter-based numba kernels of ``_draw`` and ``_field``). Tensors use sparsesim's layout and
number format: activations ``(H, W, C)`` (channel fastest), weights
``(C_out, kh, kw, C_in / groups)``, all int16 Q8.8 (1.0 = 256 LSB).

How the synthetic activations get their structure is described in
``docs/traces.md``; in short, zeros form spatial blobs (a thresholded smooth
random field per channel), channel densities vary around the target, and the
overall non-zero count is exact.
"""
from __future__ import annotations

import functools
import math
import zlib
from pathlib import Path

import numpy as np
from statistics import NormalDist

from ._draw import half_normal_table, log_table, he_weights_q88
from ._field import activation_values, field_kernel, score_pass, score_sample
from ._topk import MARGIN_SIGMAS, SAMPLE, select_top_k
from ._errors import TraceError

__all__ = [
    "FRAC_BITS",
    "child_seed",
    "image_input",
    "sample_image",
    "synthetic_activation",
    "synthetic_bias",
    "synthetic_weights",
]

#: Fractional bits of the Q8.8 format (docs/sources.md §N4): 1.0 == 256 LSB.
FRAC_BITS = 8
_ONE = 1 << FRAC_BITS
_I16_MIN, _I16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max

#: Mean non-zero activation magnitude, in units of 1.0 (= 256 LSB). **Assumption**:
#: post-BN/ReLU activations are O(1); exact scale does not affect sparsity.
_ACT_MEAN = 1.0
#: Spread (log-space std) of the per-channel activation scale. **Assumption**.
_ACT_CHANNEL_LOG_STD = 0.5
#: Std of synthetic biases, in units of 1.0 (0.05 = ~13 LSB). **Assumption**.
_BIAS_STD = 0.05
#: channel_spread below this is treated as 0 (the Beta concentration would overflow).
_MIN_SPREAD = 1e-6
#: Gaussian kernel support used for padding the random field, in sigmas.
_FIELD_PAD_SIGMAS = 3.0

#: ImageNet normalisation (torchvision convention), per RGB channel.
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
_IMAGENET_STD = np.array([0.229, 0.224, 0.225])
#: ITU-R BT.601 luma weights, used for 1-channel inputs.
_LUMA = np.array([0.299, 0.587, 0.114])
#: The photo bundled with matplotlib (``mpl-data/sample_data``).
_SAMPLE_PHOTO = "grace_hopper.jpg"

Seed = int | np.random.SeedSequence


# -- seeding --------------------------------------------------------------------------------------------------

def _key_word(key: str | int) -> int:
    """Stable 32-bit word for one key (``zlib.crc32``, never Python's salted ``hash()``)."""
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TraceError(f"seed keys must be str or int, not {key!r}")
    tag = "i" if isinstance(key, int) else "s"  # 3 and "3" are different keys
    return zlib.crc32(f"{tag}:{key}".encode())


def child_seed(seed: Seed, *keys: str | int) -> np.random.SeedSequence:
    """Derive an independent, reproducible seed for e.g. one layer's trace.

    ``child_seed(7, "vgg16", "conv1_2", "act")`` always gives the same
    :class:`numpy.random.SeedSequence`; different keys give statistically
    independent streams. Keys are appended to the sequence's ``spawn_key``, so
    ``child_seed(child_seed(s, "a"), "b") == child_seed(s, "a", "b")``.
    """
    if isinstance(seed, np.random.SeedSequence):
        base_entropy, base_key, pool = seed.entropy, tuple(seed.spawn_key), seed.pool_size
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        base_entropy, base_key, pool = int(seed), (), 4
    else:
        raise TraceError(f"seed must be a non-negative int or a SeedSequence, not {seed!r}")
    words = tuple(_key_word(k) for k in keys)
    return np.random.SeedSequence(base_entropy, spawn_key=base_key + words, pool_size=pool)


def _keys(rng: np.random.Generator) -> np.ndarray:
    """Two uint64 key words for the counter-based draws (workloads/_draw.py)."""
    return rng.integers(0, 2**64, size=2, dtype=np.uint64, endpoint=False)


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(child_seed(seed))


# -- validation -----------------------------------------------------------------------------------------------

def _check_shape(shape, n: int, what: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(s) for s in shape)
        ok = len(dims) == n and all(d >= 1 and d == s for d, s in zip(dims, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TraceError(f"{what} must be {n} positive ints, not {shape!r}")
    return dims


def _check_density(density: object) -> float:
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating, np.integer)):
        raise TraceError(f"density must be a number in [0, 1], not {density!r}")
    d = float(density)
    if not 0.0 <= d <= 1.0:
        raise TraceError(f"density must be in [0, 1], not {density!r}")
    return d


def _target_count(density: float, n: int) -> int:
    """``round(density * n)`` with halves rounded up (not banker's rounding)."""
    return min(n, int(np.floor(density * n + 0.5)))


def _to_q88(x: np.ndarray) -> np.ndarray:
    """Round to nearest Q8.8 and saturate to int16."""
    return np.clip(np.rint(x * _ONE), _I16_MIN, _I16_MAX).astype(np.int16)


# -- activations ----------------------------------------------------------------------------------------------

def _gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    """The ``2 radius + 1`` weights of a Gaussian of std ``sigma`` px truncated at ``radius``,
    normalised to sum 1, float32 (``math.exp``, a correctly rounded libm call, not NumPy's SIMD exp)."""
    if radius == 0:
        return np.ones(1, dtype=np.float32)
    g = np.array([math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)])
    return (g / g.sum()).astype(np.float32)


def _smooth_field(keys: np.ndarray, h: int, w: int, c: int, sigma: float) -> tuple[np.ndarray, ...]:
    """White Gaussian noise per channel, blurred spatially with a Gaussian of std ``sigma`` px.

    The blur is separable and truncated at ``3 sigma`` (the kernel's support); the
    noise is drawn that much larger on every side, so every output pixel sees a full
    kernel and opposite edges are not connected. ``sigma = 0`` gives white noise.
    Returns the field ``(h, w * c)`` float32 and the per-channel mean and std
    (float64) of the field.
    """
    # Capped at the tensor size: for sigma >> H, W the field is nearly flat anyway.
    radius = min(int(np.ceil(_FIELD_PAD_SIGMAS * sigma)), max(h, w))
    field = np.empty((h, w * c), dtype=np.float32)
    row_sum = np.empty((h, c))
    row_sq = np.empty((h, c))
    field_kernel(np.uint64(keys[0]), np.uint64(keys[1]), half_normal_table(), _gaussian_taps(sigma, radius),
                 h, w, c, field, row_sum, row_sq)
    # Per-row partial sums added in a fixed order: the same for any number of threads.
    n = h * w
    mu = row_sum.sum(axis=0) / n
    var = np.maximum(row_sq.sum(axis=0) / n - mu * mu, 0.0)
    return field, mu, np.sqrt(var)


def _channel_densities(rng: np.random.Generator, density: float, c: int, spread: float) -> np.ndarray:
    """Per-channel target densities ~ Beta with mean ``density``.

    ``spread`` is the std of a channel's density as a fraction of the largest
    possible std ``sqrt(d (1 - d))``: the Beta concentration is
    ``1 / spread**2 - 1``. At ``spread = 0.5`` and ``d < 1/3`` the Beta has
    an integrable peak at 0, which produces near-dead channels, as seen in real
    ReLU networks (at d = 0.3, 3-9 % of channels have < 2 % non-zeros; at
    d = 0.19, 15-23 %; 56x56x256 maps, six seeds). The draws are then rescaled so their mean is exactly ``d``.
    """
    kappa = 1.0 / spread**2 - 1.0 if spread > _MIN_SPREAD else np.inf
    if not (0.0 < density * kappa < np.inf and 0.0 < (1.0 - density) * kappa < np.inf):
        return np.full(c, density)  # no spread (or a degenerate Beta): every channel at the target
    d_c = rng.beta(density * kappa, (1.0 - density) * kappa, size=c)
    # Rescale so the channel mean is the target: the final exact-count step then only moves
    # a few pixels and does not shift (and so revive) the near-dead channels. Scaling keeps
    # dead channels at ~0; a few passes absorb the mass lost by clipping at 1.
    for _ in range(4):
        m = d_c.mean()
        if m <= 0.0 or abs(m - density) < 1e-12:
            break
        d_c = np.minimum(1.0, d_c * (density / m))
    return d_c


def synthetic_activation(shape: tuple[int, int, int], density: float, seed: Seed, *,
                         correlation_px: float = 2.0, channel_spread: float = 0.5) -> np.ndarray:
    """A post-ReLU activation tensor with spatially clustered zeros.

    Parameters
    ----------
    shape : ``(H, W, C)``.
    density : fraction of non-zeros in [0, 1]. The result has exactly
        ``round(density * H * W * C)`` non-zeros (halves round up).
    seed : int or :class:`numpy.random.SeedSequence` (see :func:`child_seed`).
    correlation_px : std, in pixels, of the Gaussian blur of each channel's
        random field; sets the size of the zero / non-zero blobs. ``0`` gives
        spatially independent zeros (the i.i.d. fallback).
    channel_spread : in [0, 1); std of the per-channel density relative to
        ``sqrt(density (1 - density))``. ``0`` gives every channel the same density.

    Returns
    -------
    ``(H, W, C)`` int16 Q8.8 array; non-zeros are positive, >= 1 LSB,
    exponential with mean ~1.0 (256 LSB) times a log-normal per-channel scale.

    Method
    ------
    Per channel a smooth Gaussian random field is ranked, giving each pixel its
    within-channel quantile ``u`` in (0, 1). A pixel is non-zero when
    ``u + d_c`` exceeds a threshold, ``d_c`` being the channel's drawn density
    (Beta around ``density``, rescaled to mean exactly ``density``): with
    threshold 1 each channel has density ``d_c`` and its zeros are the low
    regions of the field (blobs). The global threshold is then set so that
    exactly ``round(density * N)`` pixels pass; this moves every channel's
    threshold by the same small amount (typically under one pixel per channel), so the pixels flipped are the
    ones closest to their channel's threshold.
    """
    h, w, c = _check_shape(shape, 3, "activation shape")
    d = _check_density(density)
    if not correlation_px >= 0.0 or not np.isfinite(correlation_px):
        raise TraceError(f"correlation_px must be a finite number >= 0, not {correlation_px!r}")
    if not 0.0 <= channel_spread < 1.0:
        raise TraceError(f"channel_spread must be in [0, 1), not {channel_spread!r}")
    n = h * w * c
    k = _target_count(d, n)
    if k == 0:
        return np.zeros((h, w, c), dtype=np.int16)

    rng = _rng(seed)
    d_c = _channel_densities(rng, d, c, channel_spread)
    field, mu, sd = _smooth_field(_keys(rng), h, w, c, float(correlation_px))

    # Pixel p of channel c is non-zero when its standardised field value z exceeds the
    # Gaussian quantile q_c = Phi^-1(1 - d_c), shifted by one global offset so that the
    # count is exact: the k highest scores z - q_c (ties to the lowest flat index).
    sd[sd == 0] = 1.0
    inv = NormalDist().inv_cdf
    q = np.array([inv(min(max(1.0 - float(x), 1e-9), 1.0 - 1e-9)) for x in d_c])
    a32 = (1.0 / sd).astype(np.float32)
    b32 = (-mu / sd - q).astype(np.float32)

    flat = field.reshape(-1)

    def sample_fn(idx: np.ndarray) -> np.ndarray:
        return score_sample(flat, c, a32, b32, idx)

    bracket_hi = np.inf

    def pass_fn(lo: float, hi: float, mid_frac: float):
        nonlocal bracket_hi
        bracket_hi = hi
        cap = min(n, int(n * mid_frac + 8.0 * np.sqrt(n * mid_frac) + 16))
        while True:
            cand_val = np.empty(cap, dtype=np.float32)
            cand_idx = np.empty(cap, dtype=np.int64)
            above, mid = score_pass(flat, c, a32, b32, np.float32(lo), np.float32(hi),
                                    cand_val, cand_idx)
            if mid <= cap:
                return above, cand_val[:mid], cand_idx[:mid], None
            cap = mid

    above, keys_, idxs, _, order = select_top_k(n, k, sample_fn, pass_fn, sample=SAMPLE,
                                                margin_sigmas=MARGIN_SIGMAS)
    if k > above:
        last = order[k - above - 1]                  # the k-th score: keep it and all before it
        thr, thr_idx = keys_[last], idxs[last]
    else:
        thr, thr_idx = bracket_hi, -1                # exactly the scores above the bracket
    scale = _ACT_MEAN * np.exp(rng.normal(-0.5 * _ACT_CHANNEL_LOG_STD**2, _ACT_CHANNEL_LOG_STD, size=c))
    out = np.empty((h, w * c), dtype=np.int16)
    mk = _keys(rng)
    activation_values(field, c, a32, b32, np.float32(thr), np.int64(thr_idx), np.uint64(mk[0]),
                      np.uint64(mk[1]), log_table(), scale, out)
    return out.reshape(h, w, c)


# -- weights and biases ---------------------------------------------------------------------------------------

def synthetic_weights(shape: tuple[int, int, int, int], seed: Seed, *, density: float = 1.0,
                      scale_spread: float = 0.5) -> np.ndarray:
    """He-normal weights in Q8.8, magnitude-pruned to ``density``.

    Parameters
    ----------
    shape : ``(C_out, kh, kw, C_in / groups)``; fan-in is ``kh * kw * C_in / groups``.
    seed : int or :class:`numpy.random.SeedSequence`.
    density : fraction of non-zero weights in [0, 1]; exactly
        ``round(density * size)`` weights are non-zero (halves round up).
    scale_spread : sigma of the log-normal per-output-kernel and per-input-channel
        scale factors (0 = i.i.d. He weights). Trained networks' filters differ in
        norm, which is what makes magnitude pruning unbalanced across kernels
        (**Assumption**; normalised so the mean square stays He's).

    Returns
    -------
    int16 array of ``shape``. Real values ``w ~ N(0, 2 / fan_in)`` are rounded
    to the nearest Q8.8 step and saturated. The ``round(density * size)``
    largest ``|w|`` are kept (ties by flat index, lowest first) and the rest are
    set to 0.

    Notes
    -----
    With a large fan-in the He std is only a few LSB (fc6 of VGG16:
    ``256 * sqrt(2 / 25088) = 2.3`` LSB), so some kept weights round to 0.
    Each such weight is set to ``+-1`` LSB with the sign of its real value, so
    kept weights are never zero and the density is exact. This slightly widens
    the distribution of tiny weights; the std stays within a few percent of He.
    The normal values are counter-based (a hash of the seed and the flat index),
    so the pruning threshold is found without sorting and no float copy of the
    tensor is ever made (docs/traces.md §3); peak memory is ~2.5 bytes per weight.
    """
    cout, kh, kw, cin = _check_shape(shape, 4, "weight shape")
    d = _check_density(density)
    k = _target_count(d, cout * kh * kw * cin)
    rng = _rng(seed)
    std = np.sqrt(2.0 / (kh * kw * cin))
    sk, sc = np.ones(cout), np.ones(cin)
    if scale_spread > 0:
        # Trained filters differ in norm per output kernel and per input channel
        # (Assumption: log-normal spread, normalised so the mean square stays He's).
        sk = np.exp(rng.normal(0.0, scale_spread, cout))
        sc = np.exp(rng.normal(0.0, scale_spread, cin))
        sk /= np.sqrt(np.mean(sk ** 2))
        sc /= np.sqrt(np.mean(sc ** 2))
    return he_weights_q88((cout, kh, kw, cin), _keys(rng), std, sk, sc, k)


def synthetic_bias(n: int, seed: Seed) -> np.ndarray:
    """``n`` small biases, ``N(0, 0.05^2)`` in Q8.8 (std ~13 LSB), as int16."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise TraceError(f"bias length must be a non-negative int, not {n!r}")
    return _to_q88(_rng(seed).normal(0.0, _BIAS_STD, size=int(n)))


# -- sample photo ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
@functools.lru_cache(maxsize=1)
def _photo_path() -> Path:
    import importlib.util

    # NOTE: the file is found without importing matplotlib itself (a quarter of a second).
    spec = importlib.util.find_spec("matplotlib")
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "sample_data" / _SAMPLE_PHOTO
    if not path.is_file():
        import matplotlib.cbook as cbook
        path = Path(cbook.get_sample_data(_SAMPLE_PHOTO, asfileobj=False))
    return path


def sample_photo_id() -> tuple[str, int, int]:
    """``(file name, size in bytes, modification time in ns)`` of the photo behind
    :func:`image_input`: with the shape, a key for a cached copy of an input."""
    st = _photo_path().stat()
    return _SAMPLE_PHOTO, int(st.st_size), int(st.st_mtime_ns)


def _load_photo() -> np.ndarray:
    """The bundled photo as float64 RGB in [0, 1], shape (H, W, 3); cached, read-only."""
    from PIL import Image

    # NOTE: PIL is what matplotlib.image.imread decodes JPEGs with, so the pixels are the same.
    with Image.open(_photo_path()) as image:
        img = np.asarray(image.convert("RGB") if image.mode not in ("RGB", "RGBA", "L") else image)
    if img.dtype == np.uint8:
        img = img / 255.0
    img = np.asarray(img, dtype=np.float64)[..., :3]
    img.setflags(write=False)
    return img


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` box-filter resampling matrix: output pixel i averages the input
    interval ``[i, i + 1) * n_in / n_out`` with fractional overlaps (area resize)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _check_resize_memory(ch: int, cw: int, h: int, w: int) -> None:
    """Refuse, before allocating, a resize whose dense area matrices and float64 result would not fit."""
    from ._limits import check_memory

    # _area_matrix holds about five (n_out, n_in) float64 temporaries; the result is (h, w, 3) float64,
    # normalised once more.
    need = 40 * (h * ch + w * cw) + 48 * h * w
    check_memory(need, f"resizing an image to {h}x{w} pixels")


def _crop_resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Center-crop ``img`` to the aspect ratio ``h : w``, then area-resize to ``(h, w)``."""
    ih, iw = img.shape[:2]
    if ih * w > iw * h:  # too tall
        ch, cw = max(1, round(iw * h / w)), iw
    else:
        ch, cw = ih, max(1, round(ih * w / h))
    top, left = (ih - ch) // 2, (iw - cw) // 2
    _check_resize_memory(ch, cw, h, w)
    crop = img[top:top + ch, left:left + cw]
    return np.einsum("ij,jkc,lk->ilc", _area_matrix(ch, h), crop, _area_matrix(cw, w), optimize=True)


def normalized_image(img: np.ndarray, h: int, w: int, c: int) -> np.ndarray:
    """An RGB float image in [0, 1] as a real-valued ``(h, w, c)`` network input.

    Center-cropped to the ``h : w`` aspect ratio, area-resized and normalised
    with the ImageNet mean/std; ``c == 1`` gives BT.601 luma normalised with the
    luma-weighted mean/std (**Assumption**).
    """
    rgb = _crop_resize(img, h, w)
    if c == 3:
        return (rgb - _IMAGENET_MEAN) / _IMAGENET_STD
    return ((rgb @ _LUMA - _LUMA @ _IMAGENET_MEAN) / (_LUMA @ _IMAGENET_STD))[..., None]


def image_input(shape: tuple[int, int, int]) -> np.ndarray:
    """The sample photo as a network input of ``shape = (H, W, C)``, int16 Q8.8.

    ``C == 3`` gives RGB, ``C == 1`` grayscale (BT.601 luma); other channel
    counts raise :class:`TraceError`. The photo is center-cropped to the
    ``H : W`` aspect ratio, area-resized, normalised with the ImageNet
    mean/std (for grayscale, the luma-weighted mean/std - **Assumption**) and
    rounded to Q8.8. Deterministic.
    """
    h, w, c = _check_shape(shape, 3, "image input shape")
    if c not in (1, 3):
        raise TraceError(f"image input must have 1 (grayscale) or 3 (RGB) channels, not {c!r}")
    return _image_q88(h, w, c).copy()


# NOTE: kept per shape. The resize is a float64 matrix product: each one leaves OpenBLAS's helper
# threads spinning for about 0.1 s of CPU, which a sweep's other worker needed, on every point.
@functools.lru_cache(maxsize=4)
def _image_q88(h: int, w: int, c: int) -> np.ndarray:
    img = _to_q88(normalized_image(_load_photo(), h, w, c))
    img.flags.writeable = False
    return img


def sample_image(size: int = 224, *, grayscale: bool = False) -> np.ndarray:
    """matplotlib's bundled photo (Grace Hopper) as a ``(size, size, 3)`` int16 Q8.8 input.

    ``grayscale=True`` gives ``(size, size, 1)``. See :func:`image_input`.
    """
    return image_input((size, size, 1 if grayscale else 3))
