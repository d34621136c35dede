"""The hand-off granularity of the stripe pipeline: how many output columns one work unit holds.

Both timing models use this rule (docs/architecture.md §3), so the work units
they time are the same; how the units then move through time is each model's
own code. Plain Python and numpy: no timing, no data.
"""
from __future__ import annotations

import numpy as np

from ._accelerator import AcceleratorConfig
from ._mapping import ScheduledLayer

__all__ = ["HANDOFF_BUFFERS", "buffer_bytes", "Handoff", "handoff_columns", "input_column_chunks", "written_column_chunks"]

#: The byte-sized buffers the chunk width must fit, with their config fields.
HANDOFF_BUFFERS = (("decoder_fifo", "memory.decoder_fifo_kib"), ("pre_buffer", "memory.pre_buffer_kib"),
                   ("encoder_fifo", "memory.encoder_fifo_kib"), ("output_buffer", "memory.output_buffer_kib"))


def buffer_bytes(cfg: AcceleratorConfig) -> dict[str, int]:
    """Capacity of each hand-off buffer of :data:`HANDOFF_BUFFERS`, in bytes (its ``memory.*_kib`` x 1024)."""
    return {name: int(getattr(cfg.memory, key.split(".")[1]) * 1024) for name, key in HANDOFF_BUFFERS}


def input_column_chunks(w: int, kw: int, pad: int, cols: int, n_chunks: int) -> np.ndarray:
    """Chunk of each input column: the chunk of the leftmost stride-1 output column it feeds,
    clamped to ``0 .. n_chunks - 1`` (int64, shape ``(w,)``)."""
    x = np.arange(w, dtype=np.int64)
    return np.clip((x + pad - kw + 1) // cols, 0, n_chunks - 1)


def written_column_chunks(w_written: int, pooled: bool, cols: int, n_chunks: int) -> np.ndarray:
    """Chunk of each written output column (a 2x2-pooled column ``q`` waits for stride-1 column ``2q + 1``)."""
    q = np.arange(w_written, dtype=np.int64)
    return np.minimum((2 * q + 1 if pooled else q) // cols, n_chunks - 1)


class Handoff:
    """The hand-off of one layer: ``columns`` stride-1 output columns per work unit, ``chunks`` per stripe."""

    def __init__(self, columns: int, chunks: int) -> None:
        self.columns = columns
        self.chunks = chunks

    def __repr__(self) -> str:
        return f"Handoff(columns={self.columns}, chunks={self.chunks})"


def _largest_items(sched: ScheduledLayer, in_shape: tuple[int, int, int], cols: int, max_slots: int,
                   max_channels: int) -> dict[str, int]:
    """Bytes of the largest work unit each buffer can receive at ``cols`` columns, every pixel non-zero."""
    mp = sched.mapping
    h, w, c = in_shape
    kh, kw = mp.kernel
    pad = mp.padding
    ho1, wo1 = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    n_chunks = -(-wo1 // cols)
    pooled = sched.fused_pool is not None
    in_cols = int(np.bincount(input_column_chunks(w, kw, pad, cols, n_chunks), minlength=n_chunks).max())
    window = min(h, min(2, ho1) + kh - 1)
    w_written = wo1 // 2 if pooled else wo1
    out_cols = int(np.bincount(written_column_chunks(w_written, pooled, cols, n_chunks), minlength=n_chunks).max())
    out_rows = 1 if pooled else min(2, ho1)
    values = out_cols * max_channels
    return {"decoder_fifo": 2 * in_cols * window * c,
            "pre_buffer": 2 * min(2, ho1) * min(cols, wo1) * max_slots,
            "encoder_fifo": 2 * out_rows * values,
            "output_buffer": 2 * out_rows * (values + -(-values // 16) + 1)}


def handoff_columns(sched: ScheduledLayer, in_shape: tuple[int, int, int], cfg: AcceleratorConfig,
                    max_slots: int, max_channels: int) -> Handoff:
    """The chunk width of a layer (docs/architecture.md §3).

    Starts at ``min(array.handoff_columns, Wo1 // array.min_handoffs_per_stripe)`` (at least 1)
    and lowers it until the largest work unit of every buffer fits twice, or one
    column is left.

    Parameters
    ----------
    sched : the scheduled layer; in_shape : ``(H, W, C)`` of its input as the array sees it.
    cfg : the configuration (``array.handoff_columns``, ``array.min_handoffs_per_stripe`` and
        the ``memory.*_kib`` buffers).
    max_slots, max_channels : most MAC slots and most output channels of any of the layer's passes.

    A buffer too small for even one column's work unit is not an error: such a work
    unit enters only an empty buffer (docs/architecture.md §3.1), so its producer and
    consumer take turns, and the stall counters show what that costs.
    """
    mp = sched.mapping
    h, w, _ = in_shape
    wo1 = w + 2 * mp.padding - mp.kernel[1] + 1
    caps = buffer_bytes(cfg)
    cols = max(1, min(cfg.array.handoff_columns, wo1 // cfg.array.min_handoffs_per_stripe))
    while True:
        need = _largest_items(sched, in_shape, cols, max_slots, max_channels)
        if cols == 1 or all(2 * need[b] <= caps[b] for b in caps):
            break
        cols -= 1
    return Handoff(cols, -(-wo1 // cols))
