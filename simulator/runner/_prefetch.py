"""Draws a run's synthetic weights ahead of the layer loop, on one background thread.

A draw is a pure function of its key (seed, layer, shape, density), so drawing ahead changes
no result: it only overlaps the draws with the layer loop. That matters on a first run, where
numba compiles the kernels of each layer's first use on one core for seconds while the weights
of the layers ahead are drawn on the other. With a filled tensor cache a "draw" is a memory map
of a file and costs next to nothing.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

__all__ = ["Prefetcher", "MISSING"]

#: What :meth:`Prefetcher.get` returns for a key the thread will not deliver.
MISSING = object()


class Prefetcher:
    """Calls ``make()`` for each ``(key, make, nbytes)`` job, in order, on a daemon thread.

    :meth:`get` waits for a key's value (or re-raises what its ``make`` raised). After a job
    fails or :meth:`close` is called, the thread starts no further job; :meth:`get` of a key it
    will not deliver returns :data:`MISSING` and the caller makes the value itself. A job starts
    only while the values made and not yet taken, with its own ``nbytes``, stay within
    ``max_bytes`` (or none are held), so drawing ahead never holds a large network's every weight.
    """

    def __init__(self, jobs: list[tuple[Hashable, Callable[[], object], int]], max_bytes: int) -> None:
        self._jobs = list(jobs)
        self._keys = {key for key, _, _ in self._jobs}
        self._size = {key: nbytes for key, _, nbytes in self._jobs}
        self._order = {key: n for n, (key, _, _) in enumerate(self._jobs)}
        self._asked = -1          # the job index of the latest key asked for
        self._max_bytes = max_bytes
        self._held = 0
        self._done: dict[Hashable, tuple[object, BaseException | None]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._finished = False
        # NOTE: a daemon thread, not an executor: an interrupted run must not wait at exit for
        # the draws of layers it will never reach.
        self._thread = threading.Thread(target=self._work, name="sparsesim-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            for key, make, nbytes in self._jobs:
                with self._cond:
                    while not self._stopped and self._held and self._held + nbytes > self._max_bytes:
                        self._cond.wait()
                    if self._stopped:
                        return
                try:
                    res: tuple[object, BaseException | None] = (make(), None)
                except BaseException as e:  # handed to the thread that asks for the key
                    res = (None, e)
                with self._cond:
                    if not self._stopped and self._order[key] >= self._asked:
                        self._done[key] = res
                        self._held += nbytes
                    self._cond.notify_all()
                if res[1] is not None:
                    return
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def get(self, key: Hashable) -> object:
        """The value of ``key``'s job (once, then forgotten), or :data:`MISSING`. Keys are asked
        for in job order; asking for one forgets the values of the earlier ones not taken."""
        if key not in self._keys:
            return MISSING
        with self._cond:
            if self._order[key] < self._asked:      # passed over: dropped, or never made
                return MISSING
            # Values of earlier keys nobody took will not be asked for (keys come in job order):
            # drop them, and those still to be made, so that their room never keeps this key
            # from being made.
            self._asked = max(self._asked, self._order[key])
            for k in [k for k in self._done if self._order[k] < self._asked]:
                del self._done[k]
                self._held -= self._size[k]
            self._cond.notify_all()
            while key not in self._done and not self._finished:
                self._cond.wait()
            self._keys.discard(key)
            res = self._done.pop(key, None)
            if res is not None:
                self._held -= self._size[key]
                self._cond.notify_all()
        if res is None:
            return MISSING
        value, exc = res
        if exc is not None:
            raise exc
        return value

    def close(self) -> None:
        """Start no further job and drop the values nobody asked for (a job under way finishes)."""
        with self._cond:
            self._stopped = True
            self._done.clear()
            self._keys.clear()
            self._held = 0
            self._cond.notify_all()
