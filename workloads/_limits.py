"""Memory limits checked before allocating: inputs whose shapes alone say they would not fit are refused.

A small file can describe a huge tensor (a 0.4 MB PNG of 20000 x 20000 pixels, a
SCALE-Sim row with a 100000 x 100000 feature map, a zip member that inflates to
gigabytes). Every loader estimates, from shapes and sizes it can read without
allocating, the memory it is about to use, and raises :class:`LimitError` naming
the limit and how to raise it when the estimate is over it.

The limit is ``SPARSESIM_MAX_MEMORY_GIB`` from the environment (a number of GiB),
8 GiB if unset; ``sparsesim --max-memory GIB`` sets it for one command. The
estimates are deliberately generous (about 2x the measured peak of the zoo
networks, docs/errors.md), so a run that passes the check fits in its limit.
"""
from __future__ import annotations

import math
import os

from ._errors import LimitError, SparsesimError

__all__ = ["DEFAULT_MEMORY_LIMIT_GIB", "MEMORY_LIMIT_ENV", "check_memory", "memory_limit_bytes",
           "network_memory_bytes"]

#: Environment variable holding the memory limit, in GiB.
MEMORY_LIMIT_ENV = "SPARSESIM_MAX_MEMORY_GIB"
#: The limit when the variable is unset, in GiB.
DEFAULT_MEMORY_LIMIT_GIB = 8.0

_GIB = 1 << 30


def memory_limit_bytes() -> int:
    """The memory limit in bytes (``SPARSESIM_MAX_MEMORY_GIB``, default 8 GiB).

    Raises :class:`SparsesimError` if the variable is not a positive number.
    """
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_MEMORY_LIMIT_GIB * _GIB)
    try:
        gib = float(text)
    except ValueError:
        gib = float("nan")
    if not (math.isfinite(gib) and 0 < gib <= 1 << 20):
        raise SparsesimError(f"{MEMORY_LIMIT_ENV} must be a number of GiB in (0, 1048576], got {text!r}")
    return int(gib * _GIB)


def _gib(n: float) -> str:
    g = n / _GIB
    return f"{g:.3g} GiB" if g < 10 else f"{g:,.0f} GiB" if g < 1e9 else f"{g:.3g} GiB"


def check_memory(need_bytes: int | float, what: str) -> None:
    """Raise :class:`LimitError` if ``need_bytes`` exceeds :func:`memory_limit_bytes`.

    ``what`` names the input, e.g. ``"cat.png: a 20000x20000 image"``; the message
    adds the estimate, the limit and how to raise it.
    """
    limit = memory_limit_bytes()
    if need_bytes > limit:
        raise LimitError(f"{what} needs about {_gib(need_bytes)} of memory, more than the {_gib(limit)} limit; "
                         f"raise it with --max-memory GIB (or {MEMORY_LIMIT_ENV})")


def network_memory_bytes(network) -> int:
    """Estimated peak memory of simulating ``network``, in bytes, from its layer shapes alone.

    The sum of every tensor kept as int16 plus float64 working copies of the
    largest layer's input, output and weights; about 2x the measured peak of the
    zoo networks (VGG16: 1.4 GiB measured, 2.4 GiB estimated).
    """
    total_w = max_w = acts = max_io = 0
    for layer in network.layers:
        out = math.prod(layer.out_shape)
        acts += out
        max_io = max(max_io, sum(math.prod(s) for s in layer.in_shapes) + out)
        if layer.op in ("conv", "fc"):
            w = math.prod(layer.weight_shape)
            total_w += w
            max_w = max(max_w, w)
    return 16 * max_w + 4 * total_w + 8 * acts + 40 * max_io + 8 * math.prod(network.input_shape)
