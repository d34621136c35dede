"""Serial numba kernels run in parallel over independent ranges on Python threads.

NOTE: a speed device. ``parallel=True`` compiles a kernel's loop body a second time (as a
parfor gufunc, optimised once on its own and again inside the caller), which made the cold
compile of each large kernel 1 to 1.7 s longer. A ``nogil`` serial kernel over a range of
rows, called on a few Python threads, compiles once and runs as fast. Every range writes
its own rows only, so the result does not depend on the number of threads.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
from queue import SimpleQueue
from typing import Callable

import numba
import numpy as np
from numba.core.compiler import Compiler

__all__ = ["NoAliasCompiler", "count_nonzero", "no_huge_pages", "one_blas_thread", "run_blas_chunks", "run_chunks"]

#: Ranges per thread. One: every further range costs a kernel dispatch, and 1 ran the VGG16 and
#: ResNet-50 convolutions and weight draws faster than 2, 4 or 8.
_CHUNKS_PER_THREAD = 1


class NoAliasCompiler(Compiler):
    """numba pipeline that marks every array argument ``noalias``, as numba's parfor gufuncs are.

    Only for kernels whose array arguments never share memory. It lets LLVM vectorise loops
    that store to one argument while gathering from another (without it, the draw kernel
    ran 22 % slower than its parfor form) and skips the run-time overlap checks.
    """

    def __init__(self, typingctx, targetctx, library, args, return_type, flags, locals):
        flags = flags.copy()
        flags.noalias = True
        super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)


def _bounds(n: int, k: int, cost: np.ndarray | None) -> np.ndarray:
    """``k + 1`` increasing bounds from 0 to ``n``: equal counts (+-1), or equal sums of ``cost``."""
    if cost is None or not np.any(cost > 0):
        return np.arange(k + 1) * n // k
    run = np.cumsum(cost, dtype=np.float64)
    bounds = np.searchsorted(run, run[-1] * np.arange(1, k) / k, side="left") + 1
    return np.concatenate(([0], np.minimum(bounds, n), [n]))


def run_chunks(fn: Callable[[int, int], object], n: int, *, serial: bool = False,
               cost: np.ndarray | None = None) -> None:
    """Call ``fn(lo, hi)`` over ranges that split ``[0, n)``, on ``numba.get_num_threads()`` threads.

    ``fn`` must release the GIL (a ``nogil`` kernel) to run in parallel, and the ranges must be
    independent. The caller's thread takes part; the helper threads are kept for the next call.
    One thread, ``n`` <= 1 or ``serial`` (work too small to share) makes one call ``fn(0, n)``.
    ``cost`` (``n`` non-negative numbers, the work of each index) splits at equal work instead of
    equal counts, so no thread waits long for another at the end.
    An exception raised by any call is raised here, after every thread has stopped.
    """
    threads = min(numba.get_num_threads(), n)
    if serial or threads <= 1:
        fn(0, n)
        return
    k = min(n, _CHUNKS_PER_THREAD * threads)
    bounds = _bounds(n, k, cost)
    chunks = iter(range(k))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while not errors:
                with lock:
                    i = next(chunks, None)
                if i is None:
                    return
                if bounds[i] < bounds[i + 1]:
                    fn(int(bounds[i]), int(bounds[i + 1]))
        except BaseException as e:  # raised in the caller's thread below
            errors.append(e)

    tasks = _helpers(threads - 1)
    done = []
    for _ in range(threads - 1):
        d = threading.Lock()
        d.acquire()
        tasks.put((work, d))
        done.append(d)
    work()
    for d in done:
        d.acquire()
    if errors:
        raise errors[0]


_tasks: SimpleQueue | None = None
_n_helpers = 0
_helpers_pid = -1
_helpers_lock = threading.Lock()


def _helper(tasks: SimpleQueue) -> None:
    while True:
        work, done = tasks.get()
        try:
            work()
        finally:
            done.release()


def _helpers(n: int) -> SimpleQueue:
    """The task queue of the process's helper threads, started as needed (again in a forked child)."""
    global _tasks, _n_helpers, _helpers_pid
    with _helpers_lock:
        if _helpers_pid != os.getpid():
            _tasks, _n_helpers, _helpers_pid = SimpleQueue(), 0, os.getpid()
        while _n_helpers < n:
            threading.Thread(target=_helper, args=(_tasks,), name="sparsesim-kernel", daemon=True).start()
            _n_helpers += 1
        return _tasks


_blas_lock = threading.Lock()
_blas_state: dict = {"controller": None, "users": 0, "limiter": None}


def _hold_blas_to_one_thread() -> None:
    """Enter a section with BLAS on one thread. NOTE: counted, so that sections on several threads
    at once restore the original thread counts when the last one leaves, not the first."""
    with _blas_lock:
        if _blas_state["users"] == 0:
            if _blas_state["controller"] is None:
                from threadpoolctl import ThreadpoolController

                _blas_state["controller"] = ThreadpoolController()
            _blas_state["limiter"] = _blas_state["controller"].limit(limits=1, user_api="blas")
        _blas_state["users"] += 1


def _release_blas() -> None:
    with _blas_lock:
        _blas_state["users"] -= 1
        if _blas_state["users"] == 0:
            _blas_state["limiter"].restore_original_limits()
            _blas_state["limiter"] = None


@contextlib.contextmanager
def one_blas_thread():
    """A section in which the BLAS libraries numpy loaded run on one thread each.

    NOTE: OpenBLAS's own threads spin on their cores for about 0.1 s after every call they help
    with; the convolution kernel that comes next then runs with one core fewer (VGG16, propagated
    and checked: about 0.3 s of 1.9 s). Our helper threads wait without spinning, and a product
    split by rows over them (:func:`run_blas_chunks`) runs as fast as OpenBLAS's threads do.
    Sections may overlap, on one thread or several; the original limits return when the last
    one ends.
    """
    _hold_blas_to_one_thread()
    try:
        yield
    finally:
        _release_blas()


def _numpy_hugepage_setter():
    """numpy's switch for its MADV_HUGEPAGE hint on large arrays, or None where it has none."""
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(mod), "_set_madvise_hugepage", None)
        except ImportError:
            continue
    return None


_hugepage_lock = threading.Lock()
_hugepage_state: dict = {"users": 0, "before": None}


@contextlib.contextmanager
def no_huge_pages():
    """A section in which numpy does not ask the kernel for transparent huge pages for its large
    arrays (``NUMPY_MADVISE_HUGEPAGE=0`` for the section; numpy's own setting returns after it).

    NOTE: a speed device. A run allocates arrays of several MiB layer after layer; with the hint,
    Linux's default transparent-huge-page policy ("madvise", with "defrag" on madvise) may
    compact memory synchronously at the first touch of each: VGG16's first 512 x 512 layer
    stalled 20 ms on its float64 weights alone. Sections may overlap, on one thread or several;
    numpy's setting returns when the last one ends.
    """
    setter = _numpy_hugepage_setter()
    if setter is None:
        yield
        return
    with _hugepage_lock:
        if _hugepage_state["users"] == 0:
            _hugepage_state["before"] = setter(False)
        _hugepage_state["users"] += 1
    try:
        yield
    finally:
        with _hugepage_lock:
            _hugepage_state["users"] -= 1
            if _hugepage_state["users"] == 0:
                setter(_hugepage_state["before"])


def run_blas_chunks(fn: Callable[[int, int], object], n: int, *, serial: bool = False,
                    cost: np.ndarray | None = None) -> None:
    """:func:`run_chunks` for numpy calls that use BLAS (``fn`` splits one large matrix product by
    rows), inside :func:`one_blas_thread`."""
    with one_blas_thread():
        run_chunks(fn, n, serial=serial, cost=cost)


#: Elements below which :func:`count_nonzero` counts on one thread.
_PARALLEL_MIN_COUNT = 1 << 22


def count_nonzero(a: np.ndarray) -> int:
    """``np.count_nonzero(a)``, counted on :func:`run_chunks`'s threads for a large contiguous array
    (numpy releases the GIL while it counts; a VGG16 run counts 0.3 G weights and activations)."""
    if a.size < _PARALLEL_MIN_COUNT or not a.flags.c_contiguous:
        return int(np.count_nonzero(a))
    flat = a.reshape(-1)
    parts: list[int] = []
    run_chunks(lambda lo, hi: parts.append(int(np.count_nonzero(flat[lo:hi]))), flat.size)
    return sum(parts)
