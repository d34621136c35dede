"""The on-disk cache of seeded synthetic tensors (weights and activation maps) and photo inputs.

Drawing a network's synthetic data is deterministic: the same generator code, seed, shape and
density always give the same array. A run therefore looks a tensor up on disk before drawing
it, and stores what it draws. Sweep workers, later processes and notebook kernels all share
the files, so a network's data is drawn once per machine instead of once per process.

A file is named by a hash of its key and of a *generator version*: the source of the modules
that draw the data plus the versions of numpy (whose random streams feed them) and numba
(which compiles the float kernels of the maps). Any change to the
generators therefore misses the old files instead of reading stale data. Files are ``.npy``
(read with ``allow_pickle=False``), written to a temporary name and renamed, so a reader never
sees half a file; a file that cannot be read or has the wrong shape is drawn again.

Environment (read at every lookup):

``SPARSESIM_CACHE_DIR``
    The directory; ``off`` disables the cache. Default: ``$XDG_CACHE_HOME/sparsesim/tensors``,
    else ``~/.cache/sparsesim/tensors``.
``SPARSESIM_CACHE_MAX_MIB``
    Size bound in MiB (default 2048). After a write, the least recently used files go until
    the directory fits.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

import workloads
from workloads import ConfigError

__all__ = ["cache_dir", "cached_tensor", "check_cache_environment", "clear_tensor_cache", "tensor_cache_info",
           "DEFAULT_MAX_MIB"]

ENV_DIR = "SPARSESIM_CACHE_DIR"
ENV_MAX = "SPARSESIM_CACHE_MAX_MIB"
#: Default size bound of the directory (a VGG16 run's weights take 265 MiB).
DEFAULT_MAX_MIB = 2048

#: Modules of ``workloads`` whose code decides the synthetic tensors' values.
_GENERATORS = ("_synthetic.py", "_field.py", "_topk.py", "_draw.py", "_pruning.py")
_VERSION: str | None = None


def _generator_version() -> str:
    global _VERSION
    if _VERSION is None:
        h = hashlib.sha256(f"numpy {np.__version__} numba {numba.__version__}\n".encode())
        root = Path(workloads.__file__).parent
        for name in _GENERATORS:
            h.update(name.encode() + b"\n" + (root / name).read_bytes())
        _VERSION = h.hexdigest()
    return _VERSION


def cache_dir() -> Path | None:
    """The cache directory from the environment, or ``None`` when ``SPARSESIM_CACHE_DIR=off``."""
    v = os.environ.get(ENV_DIR)
    if v is not None:
        if v.strip().lower() == "off":
            return None
        if not v.strip():
            raise ConfigError(f"{ENV_DIR} must be a directory or 'off', got {v!r}")
        return Path(v).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sparsesim" / "tensors"


def _max_bytes() -> int:
    v = os.environ.get(ENV_MAX)
    if v is None:
        return DEFAULT_MAX_MIB << 20
    try:
        mib = int(v)
    except ValueError:
        mib = -1
    if mib < 0:
        raise ConfigError(f"{ENV_MAX} must be a non-negative whole number of MiB, got {v!r}")
    return mib << 20


def check_cache_environment() -> None:
    """Raise :class:`ConfigError` for a bad ``SPARSESIM_CACHE_DIR`` or ``SPARSESIM_CACHE_MAX_MIB``."""
    if cache_dir() is not None:
        _max_bytes()


def _path(d: Path, key: tuple) -> Path:
    name = hashlib.sha256(f"{_generator_version()}\n{key!r}".encode()).hexdigest()[:40]
    return d / f"{name}.npy"


def _load(path: Path, shape: tuple[int, ...] | None) -> np.ndarray | None:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if shape is not None and a.shape != tuple(shape):
        return None
    try:
        os.utime(path)   # marks it recently used for the size bound
    except OSError:
        pass
    # NOTE: a plain read-only ndarray view of the mapped file: the pages load on first touch, and
    # the kernels see the same array type as for a freshly drawn (read-only) tensor.
    return np.asarray(a)


def _store(d: Path, path: Path, a: np.ndarray, max_bytes: int) -> None:
    if a.nbytes > max_bytes:
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(a), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        _trim(d, max_bytes, path.stat().st_size)
    except OSError:
        # NOTE: the cache is an optimisation: a read-only or full disk must not fail the run.
        pass


#: A temporary file older than this (s) belongs to a process that died while writing it.
_STALE_TMP_S = 3600.0


def _entries(d: Path) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of every cached tensor in ``d``; stale temporary files are deleted."""
    out = []
    now = time.time()
    for e in os.scandir(d):
        if not e.name.endswith(".npy"):
            continue
        try:
            st = e.stat()
            if e.name.startswith(".tmp-"):
                if now - st.st_mtime > _STALE_TMP_S:
                    os.unlink(e.path)
                continue
        except OSError:
            continue
        out.append((st.st_mtime, st.st_size, Path(e.path)))
    return out


#: Per directory, its size in bytes as this process last counted it plus what it wrote since.
_counted: dict[Path, int] = {}


def _trim(d: Path, max_bytes: int, added: int) -> None:
    """Drop the least recently used files until ``d`` fits ``max_bytes``, after a write of ``added`` bytes.

    NOTE: the directory is listed only when this process's running count says it may be over
    the bound (and on its first write), not on every write: a cache of many thousands of files
    (sweeps over seeds) would otherwise cost a listing per tensor. Files other processes write
    in the meantime are counted at the next listing, so the bound is kept up to that.
    """
    known = _counted.get(d)
    if known is not None and known + added <= max_bytes:
        _counted[d] = known + added
        return
    entries = sorted(_entries(d), key=lambda t: t[0])
    total = sum(size for _, size, _ in entries)
    for _, size, path in entries:
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
    _counted[d] = total


def cached_tensor(key: tuple, make: Callable[[], np.ndarray], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``make()``, or the array an earlier ``make()`` with the same ``key`` stored on disk.

    ``key`` must determine the array completely together with the generator code (a tuple of
    str, int, float and tuples of them). ``shape``, when given, is checked on load. The result
    is read-only.
    """
    d = cache_dir()
    if d is None:
        a = make()
        a.setflags(write=False)
        return a
    max_bytes = _max_bytes()
    path = _path(d, key)
    a = _load(path, shape)
    if a is None:
        a = make()
        a.setflags(write=False)
        _store(d, path, a, max_bytes)
    return a


def tensor_cache_info() -> dict[str, object]:
    """Where the tensor cache is and what it holds: ``dir`` (None if off), ``files``, ``bytes``,
    ``max_bytes``."""
    d = cache_dir()
    max_bytes = _max_bytes()
    if d is None or not d.is_dir():
        return {"dir": None if d is None else str(d), "files": 0, "bytes": 0, "max_bytes": max_bytes}
    entries = _entries(d)
    return {"dir": str(d), "files": len(entries), "bytes": sum(s for _, s, _ in entries), "max_bytes": max_bytes}


def clear_tensor_cache() -> int:
    """Delete every cached tensor file; returns how many were deleted."""
    d = cache_dir()
    if d is None or not d.is_dir():
        return 0
    _counted.pop(d, None)
    n = 0
    for e in os.scandir(d):
        if e.name.endswith(".npy"):
            try:
                os.unlink(e.path)
                n += 1
            except OSError:
                pass
    return n
