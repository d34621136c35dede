"""Accelerator configuration: frozen dataclasses, TOML presets and user files.

A configuration is an :class:`AcceleratorConfig` holding four sections that
mirror the TOML file layout::

    base = "nullhop"          # optional: start from a preset (default: built-in defaults)
    name = "my-design"        # optional: defaults to the file's stem

    [array]                   # -> ArrayConfig
    [memory]                  # -> MemoryConfig
    [dma]                     # -> DmaConfig
    [precision]               # -> PrecisionConfig
    [energy]                  # -> EnergyConfig

Every default is the published NullHop design. Each field's comment carries
its provenance tag from docs/sources.md (``[C]`` driver code, ``[P]`` paper
text) or says ``Assumption`` where no public source gives the value.

All checks live in :func:`_validate`, which ``AcceleratorConfig.__post_init__``
calls. A section built on its own (``ArrayConfig(...)``) is therefore checked
only once it is placed in an :class:`AcceleratorConfig`. Error messages name
the dotted key (``"array.macs_per_cluster"``), the bad value and what is
allowed; errors that come from a file are prefixed with the file's path.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

from workloads import ConfigError, is_int, is_number, suggest

from ._protocol import dataflow_names

__all__ = [
    "AcceleratorConfig",
    "ArrayConfig",
    "DmaConfig",
    "EnergyConfig",
    "MemoryConfig",
    "PrecisionConfig",
    "config_to_dict",
    "field_names",
    "get_preset",
    "list_presets",
    "load_config",
    "parse_set",
    "with_overrides",
    "closest_key",
    "parse_toml",
    "read_user_file",
    "DRAM_INTERFACES",
    "ENERGY_NODES_NM",
    "MAX_BUFFER_KIB",
    "DRAM_TYPES",
    "FIELD_SPECS",
    "FieldSpec",
    "MACS_KEY",
    "MAX_MACS",
]


#: Choices of ``dma.interface``.
DRAM_INTERFACES = ("shared", "separate")

#: Largest hand-off buffer a configuration may ask for, in KiB (1 GiB).
MAX_BUFFER_KIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ArrayConfig:
    """The MAC array and the pipeline stages around it (TOML section ``[array]``).

    Attributes
    ----------
    num_clusters : int
        Number of MAC clusters. [C] ``NUM_MACS / NUM_MACS_PER_CLUSTER`` = 128 / 16 = 8.
    macs_per_cluster : int
        MAC units per cluster; a power of two. [C] ``NUM_MACS_PER_CLUSTER = 16``.
    clock_mhz : float
        Core clock, in MHz. [P] 500 MHz (28 nm post-synthesis).
    max_macs_per_channel : int
        Largest number m of MACs that may share one output channel, one of
        1, 2, 4, 8. [C] ``set_derived_config`` rounds m up to 1, 2, 4 or 8.
    max_kernel_size : int
        Largest supported square kernel side, in pixels (1..15). [P] 1x1 to 7x7.
    sm_word_pixels : int
        Pixels covered by one sparsity-map word. [C] 16; the only supported value.
    decoder_values_per_cycle : int
        16-bit stream elements each IDP manager reads per clock cycle.
        Assumption: each of the kh+1 IDP managers reads one element per cycle.
    pre_words_per_cycle : int
        16-channel output words the PRE stage handles per clock cycle.
        Assumption: one word per cycle.
    encoder_values_per_cycle : int
        16-bit values (SM words or non-zero pixels) the output encoder emits
        per clock cycle. Assumption: 2, matching two values per AXI beat.
    run_fc_on_accelerator : bool
        Whether fully connected layers run on the accelerator.
        [C] False: the driver computes FC layers on the host ARM.
    dataflow : str
        What the MAC array skips: ``dense`` (nothing), ``nullhop`` (zero
        activations [P]), ``rsnn`` (zero weights) or ``combined`` (both); see
        docs/architecture.md §8. The RSNN-style dataflows are Assumptions.
    num_pus : int
        Processing units of the weight-skipping dataflows; must divide the MAC
        count. Assumption: one PU per cluster (8), RSNN's PU count is [NF].
    kernel_merging : bool
        Weight-skipping dataflows pack several sparse kernels into one MAC's
        kernel memory and balance them over PUs (Assumption, RSNN-style).
    handoff_columns : int
        Widest work unit handed between units, in stride-1 output columns of a
        stripe (lowered per layer until two fit every buffer,
        docs/architecture.md §3). The MAC array retires one accumulator column
        at a time [S]; Assumption: 4 columns per hand-off, to bound the event count.
    min_handoffs_per_stripe : int
        Fewest hand-offs per stripe: a work unit is at most ``Wo1 // min_handoffs_per_stripe``
        columns wide (at least one), so that grouping columns adds little pipeline
        fill on narrow layers. Assumption: 16.
    """

    num_clusters: int = 8                 # [C] NUM_MACS / NUM_MACS_PER_CLUSTER = 128 / 16
    macs_per_cluster: int = 16            # [C] NUM_MACS_PER_CLUSTER
    clock_mhz: float = 500.0              # [P] 28 nm post-synthesis clock
    max_macs_per_channel: int = 8         # [C] m in {1, 2, 4, 8}; power of two
    max_kernel_size: int = 7              # [P] kernels 1x1 .. 7x7
    sm_word_pixels: int = 16              # [C] SPARSITY_MAP_WORD_NUM_BITS; only 16 supported
    decoder_values_per_cycle: int = 1     # Assumption: each of the kh+1 IDP managers reads one
    #                                       16-bit stream element per cycle
    pre_words_per_cycle: int = 1          # Assumption: PRE handles one 16-channel word per cycle
    encoder_values_per_cycle: int = 2     # Assumption: two 16-bit values per cycle, one AXI beat's payload
    run_fc_on_accelerator: bool = False   # [C] FC layers run on the host ARM in the driver
    dataflow: str = "nullhop"             # [P] NullHop skips zero activations; others are Assumptions
    num_pus: int = 8                      # Assumption: one RSNN-style PU per cluster (RSNN's count is [NF])
    kernel_merging: bool = False          # Assumption: RSNN-style kernel merging off by default
    handoff_columns: int = 4              # Assumption: columns per hand-off (the hardware retires 1 at a time [S])
    min_handoffs_per_stripe: int = 16     # Assumption: narrow layers hand off at least 16 times per stripe

    @property
    def num_macs(self) -> int:
        """Total MAC units, ``num_clusters * macs_per_cluster`` (128 for NullHop)."""
        return self.num_clusters * self.macs_per_cluster


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    """On-chip memories and hand-off buffers (TOML section ``[memory]``).

    Attributes
    ----------
    input_memory_kib : int
        Input (IDP) memory for the compressed input image, in KiB.
        [C] ``IDP_MEMORY_SIZE_KB = 512``.
    kernel_memory_words_per_mac : int
        Kernel memory of each MAC, in 16-bit weight words.
        [C] 4096, from ``k*k*Cin/4096 + 1`` in ``set_derived_config``.
    decoder_fifo_kib : float
        Buffer between the input decoder and the MAC array, in KiB: decoded
        pixels, 2 bytes each. Assumption: 16 KiB (the size is [NF]).
    pre_buffer_kib : float
        PRE buffer between the MAC array and the PRE, in KiB: retired
        accumulator columns, one 16-bit partial sum per MAC slot and output
        pixel. Timing and the SRAM energy per access both use it.
        Assumption: 4 KiB, eight columns of 2 output rows x 128 MACs x 16 bits
        (the size is [NF]).
    encoder_fifo_kib : float
        Buffer between the PRE and the output encoder, in KiB: raw output
        values, 2 bytes each. Assumption: 4 KiB (the size is [NF]).
    output_buffer_kib : float
        Output buffer between the encoder and the output DMA, in KiB: encoded
        output. Timing and the SRAM energy per access both use it.
        Assumption: 8 KiB (the size is [NF]; the driver reads the output in
        1 KB transfers [C]).
    """

    input_memory_kib: int = 512           # [C] IDP_MEMORY_SIZE_KB
    kernel_memory_words_per_mac: int = 4096   # [C] k*k*Cin/4096 + 1 in set_derived_config
    decoder_fifo_kib: float = 16          # Assumption: decoded pixels between decoder and MAC array ([NF])
    pre_buffer_kib: float = 4             # Assumption: 8 accumulator columns of 2 rows x 128 MACs x 16 bit ([NF])
    encoder_fifo_kib: float = 4           # Assumption: raw output values between PRE and encoder ([NF])
    output_buffer_kib: float = 8          # Assumption: size is [NF]; driver reads output in 1 KB transfers [C]


@dataclass(frozen=True, kw_only=True)
class DmaConfig:
    """The off-chip AXI-Stream DMA interface (TOML section ``[dma]``).

    Attributes
    ----------
    bandwidth_bytes_per_cycle : float
        Sustained DRAM bandwidth, in bytes per core clock cycle: of the one
        interface when ``interface = "shared"``, of each direction when
        ``"separate"``. Assumption: one 64-bit AXI beat per clock (bandwidth is [NF]).
    latency_cycles : int
        Fixed latency of one DMA transfer, in core clock cycles. Assumption ([NF]).
    beat_bytes : int
        Size of one AXI beat, in bytes. [C] 64-bit AXI words.
    values_per_beat : int
        16-bit payload values carried per beat. [C] 2 (bits 0-15 and 16-31).
    config_beats_per_pass : int
        Register-write beats sent before each pass, in beats.
        Assumption: 16 register writes per pass.
    interface : str
        ``"shared"``: read and write transfers take turns on one DRAM interface
        (first come, first served; the read side first on a tie), or
        ``"separate"``: two independent channels, each at the full bandwidth.
        Assumption: shared, since the Zynq-7100 board that hosts NullHop reaches
        one DDR memory through its one memory controller (docs/architecture.md §4.2).
    """

    bandwidth_bytes_per_cycle: float = 8.0    # Assumption: one 64-bit AXI beat per clock ([NF])
    latency_cycles: int = 100             # Assumption ([NF])
    beat_bytes: int = 8                   # [C] 64-bit AXI beats
    values_per_beat: int = 2              # [C] 2 x 16-bit payload per beat
    config_beats_per_pass: int = 16       # Assumption: register writes per pass
    interface: str = "shared"             # Assumption: one DDR interface for both directions


@dataclass(frozen=True, kw_only=True)
class PrecisionConfig:
    """Fixed-point format of activations and weights (TOML section ``[precision]``).

    Only Q8.8 (16 bits, 8 fractional) is supported.

    Attributes
    ----------
    total_bits : int
        Word width, in bits. [C] ``ACTIVATIONS_NUM_BITS = 16``.
    frac_bits : int
        Fractional bits, in bits. [C] ``MANTISSA_NUM_BITS = 8``.
    """

    total_bits: int = 16                  # [C] ACTIVATIONS_NUM_BITS
    frac_bits: int = 8                    # [C] MANTISSA_NUM_BITS / m_nFracBits


#: Technology nodes with an energy table (``simulator/energy/default.toml``).
ENERGY_NODES_NM = (28, 45)
#: DRAM types with a pJ/bit entry in the energy table.
DRAM_TYPES = ("LPDDR4", "DDR4", "HBM2")


@dataclass(frozen=True, kw_only=True)
class EnergyConfig:
    """Energy model choices (TOML section ``[energy]``); see docs/energy.md.

    Attributes
    ----------
    tech_node_nm : int
        Logic/SRAM technology node of the per-action energy table, in nm; 28 or
        45. [P] NullHop: "28-nm process" (post-synthesis simulation).
    dram_type : str
        Off-chip memory whose pJ/bit is charged for DMA traffic: ``"LPDDR4"``,
        ``"DDR4"`` or ``"HBM2"``. Assumption: the NullHop papers do not name
        an ASIC DRAM ([NF]); LPDDR4 is the mobile-class default.
    table : str
        Path of a user TOML file that overrides entries of the built-in table
        ``simulator/energy/default.toml``; ``""`` uses the built-in table
        alone. A relative path in a config file is relative to that file;
        one given with ``--set`` is relative to the working directory.
    sram_subbank_kib : int
        ``0`` charges every SRAM access at the energy of the whole memory
        macro (CACTI, one bank). ``N > 0`` charges accesses to memories larger
        than N KiB at the energy of an N-KiB sub-bank, the Eyeriss-like view
        (docs/sources.md §E1.1). Assumption: 0, full macro.
    """

    tech_node_nm: int = 28                # [P] "28-nm process"
    dram_type: str = "LPDDR4"             # Assumption: DRAM of the ASIC is [NF]
    table: str = ""                       # "" = built-in table simulator/energy/default.toml
    sram_subbank_kib: int = 0             # Assumption: 0 = charge the full macro (docs/sources.md §E1.1)


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig:
    """A complete, validated accelerator configuration.

    The defaults are the published NullHop design (see ``presets/nullhop.toml``).
    Construction validates every field (see :func:`_validate`) and raises
    :class:`~workloads._errors.ConfigError` on the first bad one.

    Attributes
    ----------
    name : str
        Non-empty label used in reports.
    array : ArrayConfig
        MAC array and pipeline throughputs.
    memory : MemoryConfig
        On-chip memory sizes (KiB, words, stripes).
    dma : DmaConfig
        Off-chip interface (bytes per cycle, cycles, beats).
    precision : PrecisionConfig
        Fixed-point format (bits).
    energy : EnergyConfig
        Technology node, DRAM type and energy table (docs/energy.md).
    """

    name: str = "nullhop"
    array: ArrayConfig = field(default_factory=ArrayConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    dma: DmaConfig = field(default_factory=DmaConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)

    def __post_init__(self) -> None:
        _validate(self)


# ---------------------------------------------------------------------------
# Field specs: unit, allowed range and provenance of every field, in one table.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    """What one config field holds: its unit, allowed values and where its default comes from.

    Attributes
    ----------
    key : str
        Dotted key, e.g. ``"dma.latency_cycles"``.
    unit : str
        Unit of the value (``"MHz"``, ``"KiB"``, ``"bytes/cycle"``, ...); ``""`` for none.
    minimum, maximum : int or float or None
        Inclusive bounds of a numeric field (both set for every numeric field);
        None for strings and booleans.
    choices : tuple or None
        The allowed values, when only a few are.
    source : str
        Provenance tag of the default (docs/sources.md): ``[C]`` driver code,
        ``[P]`` paper text, or ``Assumption`` (docs/architecture.md).
    """

    key: str
    unit: str
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple | None = None
    source: str = "Assumption"

    def allowed(self) -> str:
        """The allowed values in words: ``"1..4096"``, ``"one of 28, 45"``, ``"true or false"``."""
        if self.key == "array.dataflow":   # plug-ins register themselves: ask the registry
            return "one of " + ", ".join(dataflow_names())
        if self.key == "energy.table":
            return 'a TOML file; "" = built-in table'
        if self.choices == (False, True):
            return "true or false"
        if self.choices is not None:
            return (f"{self.choices[0]} only" if len(self.choices) == 1
                    else "one of " + ", ".join(str(c) for c in self.choices))
        if self.minimum is not None:
            return f"{_num(self.minimum)}..{_num(self.maximum)}"
        return ""


def _num(v: int | float) -> str:
    """A bound in words: ``4096``, ``0.015625``, ``100000`` (never ``1e+05``)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:.10g}" if isinstance(v, float) else str(v)


#: Most MAC units one array may have (``array.num_clusters x array.macs_per_cluster``).
MAX_MACS = 1 << 16

# NOTE: every numeric field has an upper bound, chosen so that no product the models form
# (bytes x cycles per byte, transfers x latency, MACs x columns) can leave int64: the largest
# cycle count these bounds allow stays below 2**62 for any network that fits in memory.
_SPECS: tuple[FieldSpec, ...] = (
    FieldSpec("array.num_clusters", "clusters", 1, 4096, source="[C]"),
    FieldSpec("array.macs_per_cluster", "MACs", 1, 1024, source="[C]"),
    FieldSpec("array.clock_mhz", "MHz", 1.0, 100_000.0, source="[P]"),
    FieldSpec("array.max_macs_per_channel", "MACs", choices=(1, 2, 4, 8), source="[C]"),
    FieldSpec("array.max_kernel_size", "pixels", 1, 15, source="[P]"),
    FieldSpec("array.sm_word_pixels", "pixels", choices=(16,), source="[C]"),
    FieldSpec("array.decoder_values_per_cycle", "values/cycle", 1, 4096),
    FieldSpec("array.pre_words_per_cycle", "words/cycle", 1, 4096),
    FieldSpec("array.encoder_values_per_cycle", "values/cycle", 1, 4096),
    FieldSpec("array.run_fc_on_accelerator", "", choices=(False, True), source="[C]"),
    FieldSpec("array.dataflow", "", source="[P]"),
    FieldSpec("array.num_pus", "PUs", 1, MAX_MACS),
    FieldSpec("array.kernel_merging", "", choices=(False, True)),
    FieldSpec("array.handoff_columns", "columns", 1, 1 << 16),
    FieldSpec("array.min_handoffs_per_stripe", "hand-offs", 1, 1 << 16),
    FieldSpec("memory.input_memory_kib", "KiB", 1, MAX_BUFFER_KIB, source="[C]"),
    FieldSpec("memory.kernel_memory_words_per_mac", "words", 1, 1 << 24, source="[C]"),
    FieldSpec("memory.decoder_fifo_kib", "KiB", 1 / 1024, float(MAX_BUFFER_KIB)),
    FieldSpec("memory.pre_buffer_kib", "KiB", 1 / 1024, float(MAX_BUFFER_KIB)),
    FieldSpec("memory.encoder_fifo_kib", "KiB", 1 / 1024, float(MAX_BUFFER_KIB)),
    FieldSpec("memory.output_buffer_kib", "KiB", 1 / 1024, float(MAX_BUFFER_KIB)),
    FieldSpec("dma.bandwidth_bytes_per_cycle", "bytes/cycle", 1 / 64, 65_536.0),
    FieldSpec("dma.latency_cycles", "cycles", 0, 1_000_000_000),
    FieldSpec("dma.beat_bytes", "bytes", 2, 4096, source="[C]"),
    FieldSpec("dma.values_per_beat", "values", 1, 2048, source="[C]"),
    FieldSpec("dma.config_beats_per_pass", "beats", 0, 1_000_000),
    FieldSpec("dma.interface", "", choices=("shared", "separate")),
    FieldSpec("precision.total_bits", "bits", choices=(16,), source="[C]"),
    FieldSpec("precision.frac_bits", "bits", choices=(8,), source="[C]"),
    FieldSpec("energy.tech_node_nm", "nm", choices=(28, 45), source="[P]"),
    FieldSpec("energy.dram_type", "", choices=("LPDDR4", "DDR4", "HBM2")),
    FieldSpec("energy.table", "file", source="-"),
    FieldSpec("energy.sram_subbank_kib", "KiB", 0, MAX_BUFFER_KIB),
)
FIELD_SPECS: dict[str, FieldSpec] = {s.key: s for s in _SPECS}


# Section name -> section class, in file and report order.
_SECTIONS: dict[str, type] = {
    "array": ArrayConfig,
    "memory": MemoryConfig,
    "dma": DmaConfig,
    "precision": PrecisionConfig,
    "energy": EnergyConfig,
}
# Keys allowed at the top level of a TOML file besides the sections.
_TOP_LEVEL_KEYS = ("base", "name")


def _field_types(cls: type) -> dict[str, type]:
    """Map each field of a section class to its (resolved) Python type."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_TYPES: dict[str, dict[str, type]] = {sec: _field_types(cls) for sec, cls in _SECTIONS.items()}


# ---------------------------------------------------------------------------
# Validation: the one place where field values are checked.
# ---------------------------------------------------------------------------

def _validate(cfg: AcceleratorConfig) -> None:
    """Check every field of ``cfg``; raise :class:`ConfigError` on the first bad one.

    Types are strict: ``bool`` is not accepted as an integer, an ``int`` is
    accepted where a ``float`` is expected, strings are never converted here.
    """

    def integer(key: str, v: object) -> None:
        if not is_int(v):
            raise ConfigError(f"{key} must be an integer, got {v!r}")

    def positive_int(key: str, v: object) -> None:
        integer(key, v)
        if v < 1:
            raise ConfigError(f"{key} must be a positive integer, got {v!r}")

    def non_negative_int(key: str, v: object) -> None:
        integer(key, v)
        if v < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {v!r}")

    def positive_number(key: str, v: object) -> None:
        if not is_number(v):
            raise ConfigError(f"{key} must be a number, got {v!r}")
        if not math.isfinite(v):
            raise ConfigError(f"{key} must be finite, got {v!r}")
        if v <= 0:
            raise ConfigError(f"{key} must be > 0, got {v!r}")

    def boolean(key: str, v: object) -> None:
        if not isinstance(v, bool):
            raise ConfigError(f"{key} must be a boolean (true or false), got {v!r}")

    if not isinstance(cfg.name, str):
        raise ConfigError(f"name must be a string, got {cfg.name!r}")
    if not cfg.name.strip():
        raise ConfigError(f"name must be a non-empty string, got {cfg.name!r}")
    for sec, cls in _SECTIONS.items():
        value = getattr(cfg, sec)
        if not isinstance(value, cls):
            raise ConfigError(f"{sec} must be an instance of {cls.__name__}, got {value!r}")

    a = cfg.array
    positive_int("array.num_clusters", a.num_clusters)
    positive_int("array.macs_per_cluster", a.macs_per_cluster)
    if a.macs_per_cluster & (a.macs_per_cluster - 1):
        raise ConfigError(f"array.macs_per_cluster must be a power of two, got {a.macs_per_cluster!r}")
    positive_number("array.clock_mhz", a.clock_mhz)
    integer("array.max_macs_per_channel", a.max_macs_per_channel)
    if a.max_macs_per_channel not in (1, 2, 4, 8):
        raise ConfigError(
            f"array.max_macs_per_channel must be one of 1, 2, 4, 8, got {a.max_macs_per_channel!r}"
        )
    integer("array.max_kernel_size", a.max_kernel_size)
    if not 1 <= a.max_kernel_size <= 15:
        raise ConfigError(f"array.max_kernel_size must be in 1..15, got {a.max_kernel_size!r}")
    integer("array.sm_word_pixels", a.sm_word_pixels)
    if a.sm_word_pixels != 16:
        raise ConfigError(
            f"array.sm_word_pixels must be 16 (the only supported value), got {a.sm_word_pixels!r}"
        )
    positive_int("array.decoder_values_per_cycle", a.decoder_values_per_cycle)
    positive_int("array.pre_words_per_cycle", a.pre_words_per_cycle)
    positive_int("array.encoder_values_per_cycle", a.encoder_values_per_cycle)
    boolean("array.run_fc_on_accelerator", a.run_fc_on_accelerator)
    if not isinstance(a.dataflow, str) or a.dataflow not in dataflow_names():
        hint = suggest(a.dataflow, dataflow_names()) if isinstance(a.dataflow, str) else ""
        raise ConfigError(f"array.dataflow must be one of {', '.join(dataflow_names())}, got {a.dataflow!r}{hint}")
    positive_int("array.num_pus", a.num_pus)
    if a.num_macs % a.num_pus:
        raise ConfigError(f"array.num_pus must divide the {a.num_macs} MACs "
                          f"(array.num_clusters x array.macs_per_cluster), got {a.num_pus!r}")
    boolean("array.kernel_merging", a.kernel_merging)
    positive_int("array.handoff_columns", a.handoff_columns)
    positive_int("array.min_handoffs_per_stripe", a.min_handoffs_per_stripe)

    m = cfg.memory
    positive_int("memory.input_memory_kib", m.input_memory_kib)
    positive_int("memory.kernel_memory_words_per_mac", m.kernel_memory_words_per_mac)
    for name in ("decoder_fifo_kib", "pre_buffer_kib", "encoder_fifo_kib", "output_buffer_kib"):
        positive_number(f"memory.{name}", getattr(m, name))

    d = cfg.dma
    positive_number("dma.bandwidth_bytes_per_cycle", d.bandwidth_bytes_per_cycle)
    non_negative_int("dma.latency_cycles", d.latency_cycles)
    integer("dma.beat_bytes", d.beat_bytes)
    if d.beat_bytes < 2:
        raise ConfigError(f"dma.beat_bytes must be >= 2, got {d.beat_bytes!r}")
    positive_int("dma.values_per_beat", d.values_per_beat)
    if d.values_per_beat * 2 > d.beat_bytes:
        raise ConfigError(
            f"dma.values_per_beat must fit in dma.beat_bytes ({d.beat_bytes}) at 2 bytes per "
            f"value, i.e. be <= {d.beat_bytes // 2}, got {d.values_per_beat!r}"
        )
    non_negative_int("dma.config_beats_per_pass", d.config_beats_per_pass)
    if not isinstance(d.interface, str) or d.interface not in DRAM_INTERFACES:
        raise ConfigError(f"dma.interface must be one of {', '.join(DRAM_INTERFACES)}, got {d.interface!r}")

    p = cfg.precision
    integer("precision.total_bits", p.total_bits)
    if p.total_bits != 16:
        raise ConfigError(
            f"precision.total_bits must be 16 (only Q8.8 is supported), got {p.total_bits!r}"
        )
    integer("precision.frac_bits", p.frac_bits)
    if p.frac_bits != 8:
        raise ConfigError(
            f"precision.frac_bits must be 8 (only Q8.8 is supported), got {p.frac_bits!r}"
        )

    e = cfg.energy
    integer("energy.tech_node_nm", e.tech_node_nm)
    if e.tech_node_nm not in ENERGY_NODES_NM:
        raise ConfigError(f"energy.tech_node_nm must be 28 or 45, got {e.tech_node_nm!r}")
    if e.dram_type not in DRAM_TYPES:
        raise ConfigError(
            f"energy.dram_type must be one of {', '.join(DRAM_TYPES)}, got {e.dram_type!r}"
        )
    if not isinstance(e.table, str):
        raise ConfigError(f"energy.table must be a file path string (\"\" for the built-in table), "
                          f"got {e.table!r}")
    non_negative_int("energy.sram_subbank_kib", e.sram_subbank_kib)

    # Every numeric field within its bounds (FIELD_SPECS); the types were checked above.
    for spec in _SPECS:
        if spec.minimum is None:
            continue
        sec, _, fname = spec.key.partition(".")
        v = getattr(getattr(cfg, sec), fname)
        unit = f" {spec.unit}" if spec.unit else ""
        if v < spec.minimum:
            raise ConfigError(f"{spec.key} must be at least {_num(spec.minimum)}{unit}, got {v!r}")
        if v > spec.maximum:
            raise ConfigError(f"{spec.key} must be at most {_num(spec.maximum)}{unit}, got {v!r}")
    if a.num_macs > MAX_MACS:
        raise ConfigError(f"array.num_clusters x array.macs_per_cluster must be at most {MAX_MACS} MACs, "
                          f"got {a.num_clusters} x {a.macs_per_cluster} = {a.num_macs}")


# ---------------------------------------------------------------------------
# Keys, suggestions and building a config from flat dotted updates.
# ---------------------------------------------------------------------------

def field_names() -> list[str]:
    """Return every settable key, in report order.

    Returns
    -------
    list of str
        ``"name"`` followed by the dotted ``"section.field"`` keys, e.g.
        ``"array.clock_mhz"`` (MHz) or ``"dma.bandwidth_bytes_per_cycle"``
        (bytes per cycle). These are the keys :func:`with_overrides` and
        ``--set`` accept.
    """
    return ["name"] + [f"{sec}.{f}" for sec, types in _TYPES.items() for f in types]


def closest_key(key: str, candidates: list[str]) -> str | None:
    """The candidate key closest to ``key``, also matching a field written without
    its section (``latency_cycles`` -> ``dma.latency_cycles``); None if none is close."""
    match = difflib.get_close_matches(key, candidates, n=1)
    if not match and "." not in key:
        by_leaf = {c.rpartition(".")[2]: c for c in candidates if "." in c}
        leaf = difflib.get_close_matches(key, list(by_leaf), n=1)
        match = [by_leaf[leaf[0]]] if leaf else []
    return match[0] if match else None


def _unknown_key(key: str, *, allow_base: bool) -> str:
    """Build the "unknown key" message for ``key``, with a suggestion if one is close."""
    if key in _TYPES:
        return (f"unknown key {key!r} ({key} is a section; use {key}.<field>, one of: "
                f"{', '.join(_TYPES[key])})")
    candidates = field_names() + (["base"] if allow_base else []) + list(_SECTIONS)
    match = closest_key(key, candidates)
    if match:
        return f"unknown key {key!r} (did you mean {match!r}?)"
    sec = key.partition(".")[0]
    if "." in key and sec in _TYPES:
        return f"unknown key {key!r} ({sec} keys are: {', '.join(_TYPES[sec])})"
    top = (["base"] if allow_base else []) + ["name"] + [f"{s}.<field>" for s in _SECTIONS]
    return f"unknown key {key!r} (valid keys are: {', '.join(top)})"


def _coerce_number(key: str, ftype: type, value: object) -> object:
    """Turn an ``int`` into a ``float`` for float fields; leave everything else to validation."""
    if ftype is float and is_int(value):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{key} must be finite, got {value!r}") from None
    return value


def _apply(base: AcceleratorConfig, updates: Mapping[str, object]) -> AcceleratorConfig:
    """Return ``base`` with already-checked dotted ``updates`` applied, re-validated."""
    name = updates.get("name", base.name)
    sections: dict[str, object] = {}
    for sec, types in _TYPES.items():
        changes = {}
        for fname, ftype in types.items():
            key = f"{sec}.{fname}"
            if key in updates:
                changes[fname] = _coerce_number(key, ftype, updates[key])
        current = getattr(base, sec)
        sections[sec] = dataclasses.replace(current, **changes) if changes else current
    return AcceleratorConfig(name=name, **sections)


# ---------------------------------------------------------------------------
# Presets and files.
# ---------------------------------------------------------------------------

def _presets_dir():
    return resources.files("dataflows").joinpath("presets")


def list_presets() -> list[str]:
    """Return the names of the bundled presets, sorted.

    Returns
    -------
    list of str
        Preset names, i.e. the stems of ``simulator/presets/*.toml``.
    """
    return sorted(
        entry.name[: -len(".toml")]
        for entry in _presets_dir().iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    )


def get_preset(name: str) -> AcceleratorConfig:
    """Load a bundled preset by name.

    Parameters
    ----------
    name : str
        Preset name, e.g. ``"nullhop"`` (see :func:`list_presets`).

    Returns
    -------
    AcceleratorConfig
        The validated configuration.

    Raises
    ------
    ConfigError
        If no preset has that name; the message lists the available presets
        and suggests the closest name.
    """
    return _get_preset(name, ())


def _get_preset(name: object, stack: tuple[str, ...]) -> AcceleratorConfig:
    available = list_presets()
    if not isinstance(name, str) or name not in available:
        hint = suggest(name, available) if isinstance(name, str) else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; available presets: {', '.join(available)}")
    if name in stack:
        chain = " -> ".join((*stack, name))
        raise ConfigError(f"preset {name!r}: 'base' presets form a cycle: {chain}")
    resource = _presets_dir().joinpath(f"{name}.toml")
    label = f"presets/{name}.toml"
    return _from_text(resource.read_bytes(), label, default_name=name, stack=(*stack, name))


def read_user_file(path: str, what: str) -> bytes:
    """The bytes of a user's file; :class:`ConfigError` naming the file and ``what`` it is otherwise."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except ValueError as exc:   # e.g. "embedded null byte"
        raise ConfigError(f"{path!r}: not a valid file name ({exc})") from None


def parse_toml(raw: bytes, label: str) -> dict[str, object]:
    """A TOML document (never executed, never YAML); :class:`ConfigError` prefixed with ``label``."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None


def _from_text(
    raw: bytes, label: str, *, default_name: str, stack: tuple[str, ...]
) -> AcceleratorConfig:
    """Parse TOML bytes and build a config; every error is prefixed with ``label``."""
    data = parse_toml(raw, label)
    try:
        return _from_mapping(data, default_name=default_name, stack=stack)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _from_mapping(
    data: Mapping[str, object], *, default_name: str, stack: tuple[str, ...]
) -> AcceleratorConfig:
    """Check the key layout of a parsed TOML document and build the config."""
    updates: dict[str, object] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key!r} must be a table (a [{key}] section), got {value!r}")
            for fname, fvalue in value.items():
                dotted = f"{key}.{fname}"
                if fname not in _TYPES[key]:
                    raise ConfigError(_unknown_key(dotted, allow_base=True))
                updates[dotted] = fvalue
        elif key in _TOP_LEVEL_KEYS:
            updates[key] = value
        else:
            raise ConfigError(_unknown_key(key, allow_base=True))

    base_name = updates.pop("base", None)
    if base_name is None:
        base = AcceleratorConfig()
    elif isinstance(base_name, str):
        base = _get_preset(base_name, stack)
    else:
        raise ConfigError(
            f"base must be a preset name (one of {', '.join(list_presets())}), got {base_name!r}"
        )
    updates.setdefault("name", default_name)
    return _apply(base, updates)


def load_config(path_or_preset: str | os.PathLike[str]) -> AcceleratorConfig:
    """Load a configuration from a TOML file or a preset name.

    A path-like object, a string ending in ``.toml``, a string containing a
    path separator, or a string naming an existing file is read as a TOML
    file; any other string is looked up with :func:`get_preset`.

    The file may set ``base = "<preset>"`` at the top level (default: the
    built-in defaults, which equal the ``nullhop`` preset) and override any
    field in its ``[array]``, ``[memory]``, ``[dma]``, ``[precision]`` and
    ``[energy]`` sections. ``name`` defaults to the file's stem. Integers are
    accepted for float fields (``bandwidth_bytes_per_cycle = 8``). A relative
    ``energy.table`` path is taken relative to the file's directory and
    stored as an absolute path.

    Parameters
    ----------
    path_or_preset : str or os.PathLike
        A TOML file path or a preset name.

    Returns
    -------
    AcceleratorConfig
        The validated configuration.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, is not valid TOML, has an unknown
        section or key (with a "did you mean" suggestion), has a value of the
        wrong type or out of range, or names an unknown preset. Messages from a
        file start with its path.
    """
    if isinstance(path_or_preset, os.PathLike):
        path = os.fspath(path_or_preset)
    elif isinstance(path_or_preset, str):
        path = path_or_preset
        looks_like_file = (
            path.endswith(".toml")
            or os.sep in path
            or (os.altsep is not None and os.altsep in path)
            or os.path.isfile(path)
        )
        if not looks_like_file:
            return get_preset(path)
    else:
        raise ConfigError(f"config must be a file path or preset name, got {path_or_preset!r}")
    raw = read_user_file(path, "config file")
    stem = os.path.splitext(os.path.basename(path))[0] or "config"
    cfg = _from_text(raw, path, default_name=stem, stack=())
    table = cfg.energy.table
    if table and not os.path.isabs(table):
        # Presets never set a table, so a relative one was written in this file.
        resolved = os.path.abspath(os.path.join(os.path.dirname(path), table))
        cfg = dataclasses.replace(cfg, energy=dataclasses.replace(cfg.energy, table=resolved))
    return cfg


# ---------------------------------------------------------------------------
# Overrides (``--set``) and export.
# ---------------------------------------------------------------------------

def _parse_string(key: str, ftype: type, raw: str) -> object:
    """Parse a command-line string into ``ftype``; raise ConfigError if it does not parse."""
    if ftype is str:
        return raw
    text = raw.strip()
    if ftype is bool:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ConfigError(f"{key} must be a boolean (true or false), got {raw!r}")
    if ftype is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if ftype is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    raise AssertionError(f"unhandled field type {ftype!r} for {key}")  # pragma: no cover


def with_overrides(cfg: AcceleratorConfig, overrides: Mapping[str, object]) -> AcceleratorConfig:
    """Return a copy of ``cfg`` with some fields replaced.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The starting configuration; it is not modified.
    overrides : Mapping[str, object]
        Dotted keys from :func:`field_names` (``"dma.latency_cycles"``, or
        ``"name"``) mapped to new values in the field's unit, or ``"macs"``:
        the total MAC count, set as ``array.num_clusters = macs /
        array.macs_per_cluster`` after the other keys. String values
        (e.g. from ``--set``) are parsed to the field's type: ``int``,
        ``float``, or ``bool`` written ``true``/``false``. Other values must
        already have the field's type (an ``int`` is accepted for a float).

    Returns
    -------
    AcceleratorConfig
        A new validated configuration; unnamed fields keep their values.

    Raises
    ------
    ConfigError
        On an unknown key (with a "did you mean" suggestion), a string that
        does not parse, or a value that fails validation.
    """
    if not isinstance(cfg, AcceleratorConfig):
        raise ConfigError(f"with_overrides expects an AcceleratorConfig, got {cfg!r}")
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a mapping of dotted keys to values, got {overrides!r}")
    updates: dict[str, object] = {}
    macs = None
    for key, value in overrides.items():
        if key == MACS_KEY:
            macs = value
            continue
        if key == "name":
            ftype: type = str
        else:
            sec, _, fname = key.partition(".") if isinstance(key, str) else ("", "", "")
            if sec not in _TYPES or fname not in _TYPES[sec]:
                raise ConfigError(_unknown_key(str(key), allow_base=False))
            ftype = _TYPES[sec][fname]
        updates[key] = _parse_string(key, ftype, value) if isinstance(value, str) else value
    cfg = _apply(cfg, updates)
    if macs is not None:
        cfg = _apply(cfg, {"array.num_clusters": _clusters_for(macs, cfg)})
    return cfg


#: Shorthand key for the total MAC count, realised as ``array.num_clusters``.
MACS_KEY = "macs"


def _clusters_for(value: object, cfg: AcceleratorConfig) -> int:
    """``array.num_clusters`` giving ``value`` MACs with ``cfg``'s ``array.macs_per_cluster``."""
    macs = _parse_string(MACS_KEY, int, value) if isinstance(value, str) else value
    if not is_int(macs) or not 1 <= macs <= MAX_MACS:
        raise ConfigError(f"macs must be an integer in 1..{MAX_MACS} (MACs), got {value!r}")
    mpc = cfg.array.macs_per_cluster
    if macs % mpc:
        raise ConfigError(f"macs={macs} is not a multiple of array.macs_per_cluster ({mpc})")
    return macs // mpc


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse ``--set key=value`` strings into a dict for :func:`with_overrides`.

    Parameters
    ----------
    items : list of str
        Strings of the form ``"section.field=value"``; whitespace around the
        key and the value is stripped. A later item for the same key wins.

    Returns
    -------
    dict of str to str
        Keys mapped to their (still unparsed) value strings.

    Raises
    ------
    ConfigError
        If an item has no ``=`` or an empty key.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def config_to_dict(cfg: AcceleratorConfig) -> dict[str, object]:
    """Return ``cfg`` as a nested, TOML-shaped dict (for JSON reports and files).

    Parameters
    ----------
    cfg : AcceleratorConfig
        The configuration to export.

    Returns
    -------
    dict
        ``{"name": ..., "array": {...}, "memory": {...}, "dma": {...},
        "precision": {...}, "energy": {...}}`` with plain ``int``/``float``/``bool``/``str``
        values in the fields' units. Derived values such as
        ``ArrayConfig.num_macs`` are not included, so the dict written as TOML
        loads back to an equal config.
    """
    out: dict[str, object] = {"name": cfg.name}
    for sec in _SECTIONS:
        out[sec] = dataclasses.asdict(getattr(cfg, sec))
    return out
