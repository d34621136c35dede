"""Typed exceptions shared by every sparsesim package.

They live in ``workloads`` because it is the lowest layer of the one-way data
flow (workloads -> dataflows -> simulator); the other packages re-export them.
"""


class SparsesimError(Exception):
    """Base class of every error sparsesim raises on bad input."""


class ConfigError(SparsesimError, ValueError):
    """An accelerator configuration field or file is invalid."""


class WorkloadError(SparsesimError, ValueError):
    """A network, layer or density profile is invalid or unsupported."""


class TraceError(SparsesimError, ValueError):
    """A trace (activations, weights) is missing, malformed or out of range."""


class MappingError(SparsesimError, ValueError):
    """A layer cannot be mapped onto the configured accelerator."""


class LimitError(SparsesimError, ValueError):
    """An input would need more memory than the limit allows (it is refused before allocating)."""


class FunctionalMismatchError(SparsesimError, AssertionError):
    """The compressed-stream math disagrees with the plain reference."""


# Value checks and suggestions shared by every validator (config, energy table, sweep grid).

def is_int(v: object) -> bool:
    """``v`` is an integer and not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> bool:
    """``v`` is an int or float and not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def suggest(word: str, candidates) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``candidates``, or ``""``."""
    import difflib

    match = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_path_arg(path: object, what: str, error: type[SparsesimError]) -> None:
    """Raise ``error`` unless ``path`` is a ``str`` or ``os.PathLike`` (``what`` names the function)."""
    import os

    if isinstance(path, str) or (isinstance(path, os.PathLike) and isinstance(os.fspath(path), str)):
        return
    raise error(f"{what} expects a file path (str or os.PathLike), got {path!r}")
