"""Output paths: what sparsesim does with whatever already sits at a path it writes.

* ``-``: standard output.
* A regular file, or nothing: written atomically (a temporary file in the same
  directory, then ``os.replace``), so an interrupted run never leaves half a file.
* A symbolic link: followed; its target is treated by these same rules, and the
  link itself stays (``--json /dev/stdout`` reaches stdout).
* A character device (``/dev/null``, a terminal) or a FIFO: written through,
  not atomically (there is nothing to replace); a FIFO must already have a reader.
* A directory, block device or socket: refused with an error; nothing is touched.

:func:`check_output_paths` applies the same rules without writing, so a command
can refuse a bad output before it spends minutes simulating.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from workloads import SparsesimError

__all__ = ["STDOUT", "check_output_dir", "check_output_path", "check_output_paths", "write_atomic"]

#: The output path that means standard output.
STDOUT = "-"


def _fail(path: object, why: str) -> SparsesimError:
    return SparsesimError(f"cannot write {str(path)!r}: {why}")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _target(path: Path) -> tuple[Path, os.stat_result | None]:
    """The path a write goes to (symbolic links followed) and its status, or None if nothing is there."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):   # the parent check names a file in the way
        return path, None
    except (OSError, ValueError) as exc:
        raise _fail(path, _reason(exc)) from None
    try:
        st = os.stat(path)     # follows links, /proc's /dev/stdout -> pipe:[...] too
    except FileNotFoundError:
        return Path(os.path.realpath(path)), None      # a dangling link: its target is created
    except OSError as exc:
        raise _fail(path, _reason(exc)) from None
    # A regular file is replaced where it really is (the link stays); anything else is opened as given.
    return (Path(os.path.realpath(path)) if stat.S_ISREG(st.st_mode) else path), st


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValueError):       # "embedded null byte"
        return f"not a valid file name ({exc})"
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def check_output_path(path: str | os.PathLike) -> None:
    """Raise :class:`SparsesimError` if ``path`` cannot be written by :func:`write_atomic`; write nothing.

    Checks that the path is not a directory, block device or socket (following
    symbolic links), that its first existing parent is a directory, and that
    this directory is writable.
    """
    if os.fspath(path) == STDOUT:
        return
    p = Path(path)
    if not os.fspath(p).strip():
        raise SparsesimError(f"cannot write {os.fspath(path)!r}: expected a file name")
    real, st = _target(p)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise _fail(path, "it is a directory; give a file name")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise _fail(path, f"it is a {_kind(st.st_mode)}; sparsesim writes regular files, character "
                              "devices and FIFOs only")
        if not stat.S_ISREG(st.st_mode):
            return                          # written through: the device or FIFO decides
    parent = real.parent
    for anc in (parent, *parent.parents):
        try:
            st_anc = os.stat(anc)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _fail(path, _reason(exc)) from None
        if not stat.S_ISDIR(st_anc.st_mode):
            blocker = str(anc) if p.is_absolute() else os.path.relpath(anc)
            raise _fail(path, f"{blocker!r} is a file, not a directory")
        if not os.access(anc, os.W_OK | os.X_OK):
            raise _fail(path, f"no permission to write in {str(anc)!r}")
        return


def check_output_dir(path: str | os.PathLike) -> None:
    """Raise :class:`SparsesimError` if ``path`` cannot be (or be made) a writable directory; create nothing."""
    p = Path(path)
    if not os.fspath(p).strip():
        raise SparsesimError(f"cannot write into {os.fspath(path)!r}: expected a directory name")
    for anc in (p, *p.parents):
        try:
            st = os.stat(anc)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError) as exc:
            raise SparsesimError(f"cannot write into {os.fspath(path)!r}: {_reason(exc)}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise SparsesimError(f"cannot write into {os.fspath(path)!r}: {os.fspath(anc)!r} is a "
                                 f"{'file' if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)}, not a directory")
        if not os.access(anc, os.W_OK | os.X_OK):
            raise SparsesimError(f"cannot write into {os.fspath(path)!r}: no permission to write in "
                                 f"{os.fspath(anc)!r}")
        return


def check_output_paths(outputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Check every output (option name -> path; None = not given) and that no two are the same.

    Raises :class:`SparsesimError` naming the option and path. Two options writing
    standard output (``-``) are the same output too.
    """
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        check_output_path(path)
        key = STDOUT if os.fspath(path) == STDOUT else os.path.realpath(path)
        if key in seen:
            raise SparsesimError(f"{seen[key]} and {option} both write {os.fspath(path)!r}; give each output "
                                 "its own file")
        seen[key] = option


def _write_through(path: Path, shown: object, data: bytes, fifo: bool) -> None:
    flags = os.O_WRONLY | (os.O_NONBLOCK if fifo else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if fifo and exc.errno == errno.ENXIO:
            raise _fail(shown, "it is a FIFO and no process is reading it") from None
        raise _fail(shown, _reason(exc)) from None
    try:
        if fifo:
            os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        raise _fail(shown, _reason(exc)) from None
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write ``text`` (str as UTF-8, or bytes) to ``path``; returns the path.

    A regular file (or a new one) is written atomically; ``-`` is standard
    output; a symbolic link is followed; a character device or FIFO is written
    through; anything else is refused (see the module docstring).

    Raises :class:`SparsesimError` naming the path when it cannot be written.
    """
    try:
        data = text.encode("utf-8") if isinstance(text, str) else text
    except UnicodeError as exc:
        raise _fail(path, f"text is not valid UTF-8 ({exc.reason})") from None
    if os.fspath(path) == STDOUT:
        out = sys.stdout
        out.flush()
        if hasattr(out, "buffer"):
            out.buffer.write(data)
        else:                                # e.g. a captured or redirected text stream
            out.write(data.decode("utf-8", errors="replace"))
        out.flush()
        return Path(STDOUT)
    shown = path
    path = Path(path)
    check_output_path(path)
    real, st = _target(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_through(real, shown, data, fifo=stat.S_ISFIFO(st.st_mode))
        return path
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name[:200]}.", suffix=".tmp")
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in real.parents if p.exists() and not p.is_dir()), real.parent)
        raise _fail(shown, f"{str(blocker)!r} is a file, not a directory") from None
    except (OSError, ValueError) as exc:
        raise _fail(shown, _reason(exc)) from None
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would, or keep the existing file's.
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)
        else:
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, real)
    except BaseException as exc:
        # Never leave the temporary file behind, whatever interrupted us.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _fail(shown, _reason(exc)) from None
        raise
    return path
