"""NullHop compressed feature-map stream: sparsity map (SM) + non-zero value list.

Follows docs/sources.md §N5.1 [C]:

* an SM word is 16 bits and covers 16 consecutive pixels; bit ``i`` (LSB
  first) is set iff pixel ``i`` of the word is non-zero;
* pixels are ordered channel fastest, then column, then row (HWC);
* the non-zero values follow in the same order; zeros are never stored;
* rows are aligned: every input row starts a new SM word at channel 0,
  column 0, so the last SM word of a row may be partial (its unused high bits
  are 0).

The stream is held in CSR style: ``sm`` (uint16 words of all rows), ``nz``
(int16 non-zeros of all rows) and two ``int64`` offset arrays of length
``H + 1``, ``row_sm_ptr`` into ``sm`` and ``row_nz_ptr`` into ``nz``, so row
``r`` is ``sm[row_sm_ptr[r]:row_sm_ptr[r + 1]]`` and
``nz[row_nz_ptr[r]:row_nz_ptr[r + 1]]``. The interleaved order the hardware
actually sends (each SM word followed by its non-zeros) is produced by
:func:`interleave`.

The kernels are numba ``@njit(cache=True)`` functions; the public names are
thin wrappers that validate their arguments and raise
:class:`~workloads._errors.TraceError` on malformed data.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from workloads import TraceError, run_chunks

__all__ = [
    "SM_WORD_BITS",
    "as_activation",
    "as_stream",
    "sm_words_per_row",
    "encode",
    "decode",
    "check_stream",
    "compressed_row_values",
    "compressed_size_bits",
    "interleave",
]

#: Pixels covered by one sparsity-map word (``SPARSITY_MAP_WORD_NUM_BITS``, docs/sources.md §N5.1 [C]).
SM_WORD_BITS = 16


#: Elements below which a map is encoded on one thread.
_PARALLEL_MIN_ENCODE = 1 << 18


def sm_words_per_row(W: int, C: int) -> int:
    """Number of SM words of one row-aligned input row: ``ceil(W * C / 16)``."""
    return (W * C + SM_WORD_BITS - 1) // SM_WORD_BITS


# ---------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _encode_rows(flat, r0, r1, words_row, row_nz_ptr, sm, nz):
    # Rows r0 .. r1 - 1 of flat, the (H, W, C) map as (H, W * C). With an empty nz: the non-zeros
    # of row r into row_nz_ptr[r + 1]. Else, row_nz_ptr holding the row offsets into nz: the SM
    # words (zero before) and the non-zero values of these rows. Rows are independent either way.
    n_row = flat.shape[1]
    if nz.shape[0] == 0:
        for r in range(r0, r1):
            cnt = 0
            for i in range(n_row):
                if flat[r, i] != 0:
                    cnt += 1
            row_nz_ptr[r + 1] = cnt
        return
    for r in range(r0, r1):
        k = row_nz_ptr[r]
        s0 = r * words_row
        for i in range(n_row):
            v = flat[r, i]
            if v != 0:
                w = s0 + i // 16
                sm[w] = sm[w] | np.uint16(1 << (i % 16))
                nz[k] = v
                k += 1


@njit(cache=True)
def _decode_kernel(sm, nz, row_sm_ptr, row_nz_ptr, H, W, C):
    n_row = W * C
    out = np.zeros((H, n_row), dtype=np.int16)
    for r in range(H):
        k = row_nz_ptr[r]
        base = 0
        for w in range(row_sm_ptr[r], row_sm_ptr[r + 1]):
            word = np.int64(sm[w])
            b = 0
            while word != 0:
                if word & 1:
                    out[r, base + b] = nz[k]
                    k += 1
                word >>= 1
                b += 1
            base += 16
    return out.reshape(H, W, C)


@njit(cache=True)
def _check_kernel(sm, nz, row_sm_ptr, row_nz_ptr, H, n_row):
    """Return 0 if the stream is well formed, else an error code (see ``_CHECK_ERRORS``)."""
    words_row = (n_row + 15) // 16
    tail = n_row - (words_row - 1) * 16  # pixels used in the last word of a row
    if row_sm_ptr[0] != 0 or row_nz_ptr[0] != 0:
        return 1
    if row_sm_ptr[H] != sm.shape[0] or row_nz_ptr[H] != nz.shape[0]:
        return 2
    for r in range(H):
        if row_sm_ptr[r + 1] - row_sm_ptr[r] != words_row:
            return 3
        cnt = 0
        for w in range(row_sm_ptr[r], row_sm_ptr[r + 1]):
            word = np.int64(sm[w])
            if w == row_sm_ptr[r + 1] - 1 and tail < 16 and (word >> tail) != 0:
                return 4
            while word != 0:
                cnt += word & 1
                word >>= 1
        if row_nz_ptr[r + 1] - row_nz_ptr[r] != cnt:
            return 5
    for k in range(nz.shape[0]):
        if nz[k] == 0:
            return 6
    return 0


_CHECK_ERRORS = {
    1: "row pointers must start at 0",
    2: "last row pointers must equal len(sm) and len(nz)",
    3: "every row must hold ceil(W * C / 16) SM words (row alignment)",
    4: "the unused high bits of a row's last, partial SM word must be 0",
    5: "the number of non-zeros of a row must equal the popcount of its SM words",
    6: "the non-zero value list contains a zero",
}


@njit(cache=True)
def _interleave_kernel(sm, nz, row_sm_ptr, row_nz_ptr):
    H = row_sm_ptr.shape[0] - 1
    stream = np.empty(sm.shape[0] + nz.shape[0], dtype=np.uint16)
    row_ptr = np.empty(H + 1, dtype=np.int64)
    j = 0
    for r in range(H):
        row_ptr[r] = j
        k = row_nz_ptr[r]
        for w in range(row_sm_ptr[r], row_sm_ptr[r + 1]):
            stream[j] = sm[w]
            j += 1
            word = np.int64(sm[w])
            while word != 0:
                if word & 1:
                    stream[j] = np.uint16(np.int64(nz[k]) & 0xFFFF)
                    j += 1
                    k += 1
                word >>= 1
    row_ptr[H] = j
    return stream, row_ptr


# ---------------------------------------------------------------------------
# public wrappers
# ---------------------------------------------------------------------------


def as_activation(act: np.ndarray) -> np.ndarray:
    act = np.asarray(act)
    if act.ndim != 3:
        raise TraceError(f"activations must have shape (H, W, C), not {act.shape!r}")
    if act.dtype != np.int16:
        raise TraceError(f"activations must be int16 (Q8.8), not {act.dtype!r}")
    return np.ascontiguousarray(act)


def as_stream(sm, nz, row_sm_ptr, row_nz_ptr):
    sm = np.ascontiguousarray(sm)
    nz = np.ascontiguousarray(nz)
    row_sm_ptr = np.ascontiguousarray(row_sm_ptr)
    row_nz_ptr = np.ascontiguousarray(row_nz_ptr)
    for name, a, dt in (
        ("sm", sm, np.uint16),
        ("nz", nz, np.int16),
        ("row_sm_ptr", row_sm_ptr, np.int64),
        ("row_nz_ptr", row_nz_ptr, np.int64),
    ):
        if a.ndim != 1 or a.dtype != dt:
            raise TraceError(
                f"{name} must be a 1-D {np.dtype(dt).name} array, "
                f"not {a.ndim}-D {a.dtype!r}"
            )
    if row_sm_ptr.shape != row_nz_ptr.shape:
        raise TraceError(
            f"row_sm_ptr and row_nz_ptr must have the same length, "
            f"not {row_sm_ptr.shape[0]!r} and {row_nz_ptr.shape[0]!r}"
        )
    return sm, nz, row_sm_ptr, row_nz_ptr


def encode(act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Compress an activation tensor into the row-aligned SM + non-zero stream.

    Parameters
    ----------
    act : int16 array of shape ``(H, W, C)``, Q8.8.

    Returns
    -------
    sm : uint16 array, ``H * ceil(W * C / 16)`` sparsity-map words.
    nz : int16 array, the non-zero values in stream order.
    row_sm_ptr, row_nz_ptr : int64 arrays of length ``H + 1``; per-row offsets
        into ``sm`` and ``nz``.
    """
    act = as_activation(act)
    H, W, C = act.shape
    words_row = sm_words_per_row(W, C)
    sm = np.zeros(H * words_row, dtype=np.uint16)
    flat = act.reshape(H, W * C)
    row_nz_ptr = np.zeros(H + 1, dtype=np.int64)
    serial = act.size < _PARALLEL_MIN_ENCODE
    # two passes, each over ranges of rows on the threads: the non-zeros per row, then (their
    # offsets known) the SM words and values
    run_chunks(lambda r0, r1: _encode_rows(flat, r0, r1, words_row, row_nz_ptr, sm, sm[:0].view(np.int16)),
               H, serial=serial)
    np.cumsum(row_nz_ptr, out=row_nz_ptr)
    nz = np.empty(row_nz_ptr[H], dtype=np.int16)
    if nz.shape[0]:
        run_chunks(lambda r0, r1: _encode_rows(flat, r0, r1, words_row, row_nz_ptr, sm, nz), H, serial=serial)
    return sm, nz, np.arange(H + 1, dtype=np.int64) * words_row, row_nz_ptr


def check_stream(
    sm: np.ndarray,
    nz: np.ndarray,
    row_sm_ptr: np.ndarray,
    row_nz_ptr: np.ndarray,
    H: int,
    W: int,
    C: int,
) -> None:
    """Raise :class:`TraceError` unless the stream is a well-formed encoding of an ``(H, W, C)`` map.

    Checks the row alignment, the popcount / non-zero count agreement per row,
    that partial words have clear high bits, and that no zero is stored
    (docs/sources.md §N5.1: "reading a zero inside the list is flagged as an error").
    """
    sm, nz, row_sm_ptr, row_nz_ptr = as_stream(sm, nz, row_sm_ptr, row_nz_ptr)
    H, W, C = int(H), int(W), int(C)
    if min(H, W, C) < 1:
        raise TraceError(f"(H, W, C) must be positive, not {(H, W, C)!r}")
    if row_sm_ptr.shape[0] != H + 1:
        raise TraceError(
            f"row pointers must have length H + 1 = {H + 1!r}, not {row_sm_ptr.shape[0]!r}"
        )
    code = _check_kernel(sm, nz, row_sm_ptr, row_nz_ptr, H, W * C)
    if code:
        raise TraceError(f"malformed NullHop stream: {_CHECK_ERRORS[code]}")


def decode(
    sm: np.ndarray,
    nz: np.ndarray,
    row_sm_ptr: np.ndarray,
    row_nz_ptr: np.ndarray,
    H: int,
    W: int,
    C: int,
) -> np.ndarray:
    """Expand a stream produced by :func:`encode` back to an int16 ``(H, W, C)`` tensor.

    The stream is validated first with :func:`check_stream`.
    """
    check_stream(sm, nz, row_sm_ptr, row_nz_ptr, H, W, C)
    sm, nz, row_sm_ptr, row_nz_ptr = as_stream(sm, nz, row_sm_ptr, row_nz_ptr)
    return _decode_kernel(sm, nz, row_sm_ptr, row_nz_ptr, int(H), int(W), int(C))


def compressed_row_values(row_sm_ptr: np.ndarray, row_nz_ptr: np.ndarray) -> np.ndarray:
    """Per-row count of 16-bit stream elements (SM words + non-zeros), int64 of length ``H``."""
    row_sm_ptr = np.asarray(row_sm_ptr, dtype=np.int64)
    row_nz_ptr = np.asarray(row_nz_ptr, dtype=np.int64)
    return np.diff(row_sm_ptr) + np.diff(row_nz_ptr)


def compressed_size_bits(row_sm_ptr: np.ndarray, row_nz_ptr: np.ndarray) -> int:
    """Size of the whole stream in bits: 16 bits per SM word and per non-zero.

    For ``N`` pixels at density ``d`` with ``W * C`` a multiple of 16 this is
    ``N * (1 + 16 d)`` (docs/sources.md §N5.3 [D]); AXI packing is not included.
    """
    return 16 * int(compressed_row_values(row_sm_ptr, row_nz_ptr).sum())


def interleave(
    sm: np.ndarray, nz: np.ndarray, row_sm_ptr: np.ndarray, row_nz_ptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The stream in transmission order: each SM word followed by its non-zeros.

    Returns
    -------
    stream : uint16 array (non-zeros as their two's-complement bit pattern).
    row_ptr : int64 array of length ``H + 1``; ``stream[row_ptr[r]]`` is the
        first SM word of row ``r``, the word that carries the "new row" flag
        (docs/sources.md §N5.1 [C]).
    """
    sm, nz, row_sm_ptr, row_nz_ptr = as_stream(sm, nz, row_sm_ptr, row_nz_ptr)
    return _interleave_kernel(sm, nz, row_sm_ptr, row_nz_ptr)
