"""Progress bars for sweeps and whole-network runs (tqdm, on stderr).

A bar is shown only when it is asked for, or when ``enabled`` is left at
``None`` and ``sys.stderr`` is a terminal. Otherwise nothing is printed, so
redirected output, CI logs and notebooks stay clean. The library prints
nothing else.

Examples
--------
>>> with progress_bar(3, "points", enabled=False) as bar:
...     for i in range(3):
...         bar.update(1, f"point {i}")
>>> callback, close = network_progress(enabled=False)
>>> callback(1, 2, "conv1"); callback(2, 2, "conv2"); close()
"""
from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable

__all__ = ["ProgressBar", "network_progress", "progress_bar", "progress_lines"]


def _is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for anything odd)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@functools.lru_cache(maxsize=1)
def _bar_class():
    """tqdm without its monitor thread.

    NOTE: the monitor only redraws bars whose steps come far apart after fast ones; ours are
    redrawn on every step. A thread alive in the process would make a sweep spawn its workers
    instead of forking them (see the sweep's start method).
    """
    from tqdm.std import tqdm

    return type("SparsesimBar", (tqdm,), {"monitor_interval": 0})


class ProgressBar:
    """A tqdm bar on stderr, or a silent stand-in when disabled.

    Use :func:`progress_bar` to make one. It is a context manager; leaving the
    ``with`` block closes the bar.

    Parameters
    ----------
    total : int or None
        Number of steps; ``None`` if not known yet (see :meth:`set_total`).
    desc : str
        Label shown to the left of the bar.
    enabled : bool or None
        ``True`` always shows the bar, ``False`` never does, ``None`` shows it
        only when ``sys.stderr`` is a terminal.
    unit : str
        Name of one step (``"point"``, ``"layer"``).
    initial : int
        Steps already done when the bar starts (e.g. points loaded from disk).
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool | None = None, unit: str = "it",
                 initial: int = 0) -> None:
        if enabled is None:
            enabled = _is_terminal(sys.stderr)
        self.n = initial
        self.total = total
        self._bar = None
        if enabled:
            self._bar = _bar_class()(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr,
                                     dynamic_ncols=True, leave=True)

    @property
    def enabled(self) -> bool:
        """Whether a bar is actually drawn."""
        return self._bar is not None

    def set_total(self, total: int) -> None:
        """Set the number of steps once it is known."""
        self.total = total
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """Advance by ``n`` steps; ``postfix`` (e.g. the item just finished) is shown after the bar."""
        self.n += n
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int | None, desc: str, *, enabled: bool | None = None, unit: str = "it",
                 initial: int = 0) -> ProgressBar:
    """Return a :class:`ProgressBar` context manager with ``.update(n, postfix)``.

    Parameters
    ----------
    total : int or None
        Number of steps (``None``: unknown for now).
    desc : str
        Label of the bar.
    enabled : bool or None
        ``None`` (default) draws the bar only when ``sys.stderr`` is a terminal.
    unit : str
        Name of one step.
    initial : int
        Steps already done.
    """
    return ProgressBar(total, desc, enabled=enabled, unit=unit, initial=initial)


def network_progress(total_layers: int | None = None, *, desc: str = "layers",
                     enabled: bool | None = None) -> tuple[Callable[[int, int, str], None], Callable[[], None]]:
    """A progress callback for ``Simulator.run(..., progress=callback)`` and its closer.

    Parameters
    ----------
    total_layers : int or None
        Number of layers; ``None`` takes it from the first callback.
    desc : str
        Label of the bar (e.g. the network's name).
    enabled : bool or None
        ``None`` (default) draws the bar only when ``sys.stderr`` is a terminal.

    Returns
    -------
    (callback, close)
        ``callback(done, total, layer_name)`` advances the bar to ``done`` of
        ``total`` layers; ``close()`` finishes it (call it in a ``finally``).

    Examples
    --------
    >>> from simulator import Simulator
    >>> callback, close = network_progress(desc="facedet", enabled=False)
    >>> try:
    ...     result = Simulator("nullhop").run("facedet", progress=callback)
    ... finally:
    ...     close()
    """
    bar = ProgressBar(total_layers, desc, enabled=enabled, unit="layer")

    def callback(done: int, total: int, layer_name: str) -> None:
        if bar.total != total:
            bar.set_total(total)
        if done > bar.n:
            bar.update(done - bar.n, layer_name)

    return callback, bar.close


def progress_lines(desc: str, *, stream=None, every: int = 1,
                   clock: Callable[[], float] = time.monotonic) -> Callable[[int, int, str], None]:
    """A ``progress(done, total, label)`` callback that writes one plain line per finished step.

    For logs and pipes, where a tqdm bar cannot redraw: every ``every``-th step
    (and the last) writes ``desc: done/total label (elapsed, about N left)`` to
    ``stream`` (default ``sys.stderr``), flushed at once. The remaining time is
    extrapolated from the steps computed so far (``label == "loaded"`` marks
    steps loaded from disk, which are reported once and not timed).

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> cb = progress_lines("sweep", stream=buf, clock=iter([0.0, 10.0, 20.0]).__next__)
    >>> cb(1, 2, "macs=64"); cb(2, 2, "macs=128")
    >>> print(buf.getvalue(), end="")
    sweep: 1/2 macs=64 (10 s, about 10 s left)
    sweep: 2/2 macs=128 (20 s)
    """
    start = clock()
    first = {"done": None}

    def fmt(seconds: float) -> str:
        seconds = int(round(seconds))
        return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60:02d} s"

    def callback(done: int, total: int, label: str) -> None:
        out = stream if stream is not None else sys.stderr
        if label == "loaded":
            first["done"] = done
            print(f"{desc}: {done}/{total} loaded from earlier runs", file=out, flush=True)
            return
        if first["done"] is None:
            first["done"] = 0
        if done % max(1, every) and done != total:
            return
        elapsed = clock() - start
        ran = done - first["done"]
        left = f", about {fmt(elapsed / ran * (total - done))} left" if ran and done < total else ""
        print(f"{desc}: {done}/{total} {label} ({fmt(elapsed)}{left})", file=out, flush=True)

    return callback
