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


class FunctionalMismatchError(SparsesimError, AssertionError):
    """The compressed-stream math disagrees with the plain reference."""
