"""Energy model: per-action energies from a TOML table, charged on the simulator's own counts.

The table (``simulator/energy/default.toml``) holds, per technology node, the
energy of every action the simulator counts, each entry with its provenance
tag and the section of docs/sources.md it comes from. A user TOML file named by
``energy.table`` in the accelerator config overrides single entries.

Accounting is one rule (docs/energy.md): a layer's energy is

    Σ over actions  count(action) × energy(entry of that action)
    + Σ over units  static power(unit) × time of the layer

where the counts are exactly ``LayerTiming.actions`` of the timing model
and every action the dataflow declares maps to exactly one entry
(:func:`action_map`). No energy is computed from shapes or densities here.

Conventions (docs/sources.md §E7): skipped work (zero activations, never fetched)
costs nothing and has no count; gated work (a MAC slot idle while the array
runs) costs ``mac_gated_*``. SM words are stored inline in the data buffers, so
their storage accesses are part of the buffers' word counts; ``sm_metadata``
adds the decode/encode work per SM word.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from dataflows import AcceleratorConfig, get_dataflow, parse_toml, read_user_file
from workloads import ConfigError, SparsesimError, is_number, suggest

__all__ = ["COMPONENTS", "ActionCost", "action_map", "EnergyEntry", "EnergyTable",
           "action_costs", "layer_energy", "load_energy_table", "memory_capacities_kib", "table_report"]

#: Breakdown components of :func:`layer_energy`, in report order.
COMPONENTS = ("mac", "mac_gated", "input_memory", "decoder_fifo", "kernel_memory", "pre_buffer", "encoder_fifo",
              "output_buffer", "sm_metadata", "dram", "static")

def action_map(cfg: AcceleratorConfig) -> Mapping[str, tuple[str, str]]:
    """Each action the configured dataflow counts -> (breakdown component, kind of table entry).

    The kind is resolved to one concrete entry by :func:`action_costs`:
    ``mac`` -> ``mac_<bits>b``; ``mac_gated`` -> ``mac_gated_<bits>b``;
    ``read`` / ``write`` -> the SRAM entry of the component's memory for its capacity;
    ``sm_decode`` / ``sm_encode`` -> ``sm_decode_word`` / ``sm_encode_word``;
    ``dram`` -> ``dram_<type>`` (pJ/bit, x 8 bits per byte).
    """
    return {a.name: (a.component, a.kind) for a in get_dataflow(cfg.array.dataflow).actions.values()}


def _static_names(cfg: AcceleratorConfig) -> tuple[str, ...]:
    """Static-power entries ``static_<name>``: every pipeline unit and memory of the dataflow."""
    flow = get_dataflow(cfg.array.dataflow)
    return (*flow.units, *(m.name for m in flow.memories))


# Entry layout. Each entry has exactly one kind of value field.
_VALUE_FIELDS = {"pj": ("pj",), "mw": ("mw",), "coeff": ("coeff", "exponent"), "factor": ("factor",)}
_META_FIELDS = ("per", "source", "ref")
_BUILTIN_LABEL = "simulator/energy/default.toml"
_BUILTIN_FILE = "built-in"


@dataclass(frozen=True)
class EnergyEntry:
    """One entry of the energy table.

    Attributes
    ----------
    name : str
        Entry key, e.g. ``"mac_16b"`` or ``"sram_read_512kib"``.
    kind : str
        Its value field: ``"pj"`` (pJ per ``per``), ``"mw"`` (static power,
        mW), ``"coeff"`` (power-law fit, pJ per bit = value * S^exponent with
        S in KiB) or ``"factor"`` (dimensionless).
    value : float
        The number in the unit of ``kind``.
    per : str
        What one count is (``"op"``, ``"16-bit word"``, ``"bit"``, ...).
    source : str
        Provenance tag(s) of docs/sources.md §E0 and the derivation.
    ref : str
        Section of docs/sources.md.
    exponent : float or None
        Power-law exponent (``kind == "coeff"`` only).
    """

    name: str
    kind: str
    value: float
    per: str
    source: str
    ref: str
    exponent: float | None = None

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {self.kind: self.value}
        if self.exponent is not None:
            d["exponent"] = self.exponent
        d.update(per=self.per, source=self.source, ref=self.ref)
        return d


@dataclass(frozen=True)
class EnergyTable:
    """The entries of one technology node, after user overrides.

    Attributes
    ----------
    tech_node_nm : int
        Technology node of the entries, in nm.
    dram_type : str
        DRAM type whose pJ/bit entry is charged (``"LPDDR4"``, ...).
    file : str
        ``"built-in"``, or the path of the user override file.
    sram_subbank_kib : int
        0 = SRAM accesses cost the full macro; N = memories above N KiB are
        charged as an N-KiB sub-bank.
    entries : Mapping[str, EnergyEntry]
        Entry name -> entry (treat as read-only; a plain dict so that the
        table pickles for process-pool sweeps).
    overridden : tuple of str
        Names of the entries the user file replaced.
    """

    tech_node_nm: int
    dram_type: str
    file: str
    sram_subbank_kib: int
    entries: Mapping[str, EnergyEntry]
    overridden: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> EnergyEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ConfigError(f"energy table ({self.file}) has no entry {name!r} for "
                              f"n{self.tech_node_nm}") from None

    def sram_listed_kib(self) -> list[int]:
        """Capacities (KiB) with their own ``sram_read_<S>kib`` entry, ascending."""
        sizes = []
        for name in self.entries:
            if name.startswith("sram_read_") and name.endswith("kib"):
                sizes.append(int(name[len("sram_read_"):-len("kib")]))
        return sorted(sizes)

    def sram_word(self, capacity_kib: float, op: str) -> tuple[str, float]:
        """Energy of one 16-bit word access to an SRAM of ``capacity_kib`` KiB.

        Rule (docs/energy.md): with ``sram_subbank_kib = N > 0`` the capacity is
        first capped at N. A capacity below 1 KiB uses the small-RF entry
        (``rf_<op>_16b``); a capacity listed in docs/sources.md §E4.2 uses its row
        (``sram_<op>_<S>kib``); any other uses the §4.3 power-law fit,
        ``coeff * S^exponent`` pJ/bit x 64 bits x ``sram_width_rule_16b``.

        Parameters
        ----------
        capacity_kib : float
            Memory capacity, in KiB.
        op : str
            ``"read"`` or ``"write"``.

        Returns
        -------
        (str, float)
            The entry used (fits are written ``sram_fit_<op>@<S>kib``) and
            its energy in pJ per 16-bit word.
        """
        s = float(capacity_kib)
        if self.sram_subbank_kib > 0:
            s = min(s, float(self.sram_subbank_kib))
        if s < 1.0:
            name = f"rf_{op}_16b"
            return name, self[name].value
        if s.is_integer() and int(s) in self.sram_listed_kib():
            name = f"sram_{op}_{int(s)}kib"
            return name, self[name].value
        fit = self[f"sram_fit_{op}"]
        width = self["sram_width_rule_16b"].value
        return f"sram_fit_{op}@{s:g}kib", fit.value * s ** fit.exponent * 64 * width

    def describe(self) -> dict[str, object]:
        """Which table was used: node, DRAM type, file, SRAM model, overridden entries."""
        return {"tech_node_nm": self.tech_node_nm, "dram_type": self.dram_type, "file": self.file,
                "sram_model": ("full macro" if self.sram_subbank_kib == 0
                               else f"{self.sram_subbank_kib} KiB sub-bank"),
                "overridden": list(self.overridden)}


@dataclass(frozen=True)
class ActionCost:
    """How one counted action is charged.

    Attributes
    ----------
    component : str
        Breakdown component (one of :data:`COMPONENTS`).
    entry : str
        The table entry charged (fits: ``sram_fit_<op>@<S>kib``).
    pj : float
        Energy per count of the action, in pJ (DRAM: per byte = 8 x pJ/bit).
    """

    component: str
    entry: str
    pj: float


# ---------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------

def _parse_entry(label: str, sec: str, key: str, raw: object, default: EnergyEntry | None) -> EnergyEntry:
    """Check one entry; ``default`` is the built-in entry it overrides (None: built-in itself)."""
    dotted = f"{sec}.{key}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: {dotted} must be a table such as {{ pj = 0.5 }}, got {raw!r}")
    kinds = [k for k in _VALUE_FIELDS if k in raw]
    if default is not None:
        kind = default.kind
    elif len(kinds) == 1:
        kind = kinds[0]
    else:
        raise ConfigError(f"{label}: {dotted} must have exactly one of the fields pj, mw, coeff, factor")
    allowed = (*_VALUE_FIELDS[kind], *_META_FIELDS)
    for f in raw:
        if f not in allowed:
            raise ConfigError(f"{label}: {dotted} has unknown field {f!r} (fields are: {', '.join(allowed)})")
    values = {}
    for f in _VALUE_FIELDS[kind]:
        if f not in raw:
            raise ConfigError(f"{label}: {dotted}.{f} is missing")
        v = raw[f]
        if not is_number(v) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{label}: {dotted}.{f} must be a non-negative number, got {v!r}")
        values[f] = float(v)
    meta = {}
    for f in _META_FIELDS:
        if f in raw:
            if not isinstance(raw[f], str):
                raise ConfigError(f"{label}: {dotted}.{f} must be a string, got {raw[f]!r}")
            meta[f] = raw[f]
        elif default is None:
            raise ConfigError(f"{label}: {dotted}.{f} is missing")
    if default is not None:
        if meta.get("per", default.per) != default.per:
            raise ConfigError(f"{label}: {dotted}.per must be {default.per!r} (the unit the simulator "
                              f"counts), got {meta['per']!r}")
        meta.setdefault("per", default.per)
        meta.setdefault("source", f"user table {label}")
        meta.setdefault("ref", "")
    return EnergyEntry(name=key, kind=kind, value=values[_VALUE_FIELDS[kind][0]],
                       exponent=values.get("exponent"), **meta)


@functools.lru_cache(maxsize=1)
def _builtin() -> dict[str, dict[str, EnergyEntry]]:
    """The built-in table, parsed and checked once: section -> entry name -> entry."""
    raw = resources.files("simulator.energy").joinpath("default.toml").read_bytes()
    data = parse_toml(raw, _BUILTIN_LABEL)
    nodes: dict[str, dict[str, EnergyEntry]] = {}
    for sec, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{_BUILTIN_LABEL}: {sec!r} must be a table (a [{sec}] section), got {body!r}")
        nodes[sec] = {k: _parse_entry(_BUILTIN_LABEL, sec, k, v, None) for k, v in body.items()}
    keys = {sec: set(v) for sec, v in nodes.items()}
    first = next(iter(keys.values()))
    if any(k != first for k in keys.values()):
        raise ConfigError(f"{_BUILTIN_LABEL}: every node section must hold the same entries")
    return nodes


def _read_overrides(path: str, nodes: dict[str, dict[str, EnergyEntry]]) -> dict[str, dict[str, EnergyEntry]]:
    """Parse a user table: only known sections and entries, each checked against its built-in entry."""
    raw = read_user_file(path, "energy table")
    data = parse_toml(raw, path)
    out: dict[str, dict[str, EnergyEntry]] = {}
    for sec, body in data.items():
        if sec not in nodes:
            raise ConfigError(f"{path}: unknown section {sec!r} (sections are: {', '.join(sorted(nodes))}, "
                              f"one per technology node)")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {sec!r} must be a table (a [{sec}] section), got {body!r}")
        for key, value in body.items():
            if key not in nodes[sec]:
                raise ConfigError(f"{path}: unknown entry '{sec}.{key}'"
                                  f"{suggest(f'{sec}.{key}', [f'{sec}.{k}' for k in nodes[sec]])}")
            out.setdefault(sec, {})[key] = _parse_entry(path, sec, key, value, nodes[sec][key])
    return out


def load_energy_table(cfg: AcceleratorConfig) -> EnergyTable:
    """Load the energy table for ``cfg``: its node's built-in entries plus user overrides.

    Parameters
    ----------
    cfg : AcceleratorConfig
        Uses ``energy.tech_node_nm``, ``energy.dram_type``, ``energy.table``
        and ``energy.sram_subbank_kib``.

    Returns
    -------
    EnergyTable

    Raises
    ------
    ConfigError
        If the user file is missing or unreadable, is not valid TOML, names an
        unknown section or entry, or gives an entry a negative, non-numeric or
        misnamed value or a different ``per`` unit. Messages start with the
        file's path.
    """
    nodes = _builtin()
    sec = f"n{cfg.energy.tech_node_nm}"
    if sec not in nodes:
        raise ConfigError(f"{_BUILTIN_LABEL}: no section [{sec}] for energy.tech_node_nm = "
                          f"{cfg.energy.tech_node_nm}")
    entries = dict(nodes[sec])
    file, overridden = _BUILTIN_FILE, ()
    if cfg.energy.table:
        file = os.fspath(cfg.energy.table)
        user = _read_overrides(file, nodes).get(sec, {})
        entries.update(user)
        overridden = tuple(user)
    return EnergyTable(tech_node_nm=cfg.energy.tech_node_nm, dram_type=cfg.energy.dram_type, file=file,
                       sram_subbank_kib=cfg.energy.sram_subbank_kib,
                       entries=entries, overridden=overridden)


# ---------------------------------------------------------------------------
# Accounting.
# ---------------------------------------------------------------------------

def memory_capacities_kib(cfg: AcceleratorConfig) -> dict[str, float]:
    """Capacity of each on-chip memory, in KiB, as its SRAM entry is chosen.

    The kernel memory is one macro per MAC: ``kernel_memory_words_per_mac``
    words of ``precision.total_bits`` bits (8 KiB for NullHop). The others are
    single memories of their configured size.
    """
    return {m.name: m.size_kib(cfg) for m in get_dataflow(cfg.array.dataflow).memories}


def action_costs(cfg: AcceleratorConfig, table: EnergyTable) -> dict[str, ActionCost]:
    """Resolve every action of :func:`action_map` to its table entry and energy per count.

    Parameters
    ----------
    cfg : AcceleratorConfig
        Memory capacities, word width and DRAM type.
    table : EnergyTable
        The loaded table (see :func:`load_energy_table`).

    Returns
    -------
    dict of str to ActionCost
        Action name -> component, entry name and pJ per count.
    """
    bits = cfg.precision.total_bits
    caps = memory_capacities_kib(cfg)
    out: dict[str, ActionCost] = {}
    for action, (component, kind) in action_map(cfg).items():
        if kind in ("mac", "mac_gated"):
            name = f"{kind}_{bits}b"
            pj = table[name].value
        elif kind in ("read", "write"):
            name, pj = table.sram_word(caps[component], kind)
        elif kind in ("sm_decode", "sm_encode"):
            name = f"{kind}_word"
            pj = table[name].value
        else:  # dram: pJ/bit x 8 bits per counted byte
            name = f"dram_{table.dram_type.lower()}"
            pj = table[name].value * 8
        out[action] = ActionCost(component=component, entry=name, pj=pj)
    return out


def layer_energy(actions: Mapping[str, int], units: Mapping[str, Mapping[str, int]], cycles: int,
                 cfg: AcceleratorConfig, table: EnergyTable | None = None) -> dict[str, float]:
    """Energy of one accelerator layer by component, in pJ.

    Dynamic energy is Σ count x entry over the layer's actions (:func:`action_map`);
    static energy is Σ ``static_<unit>`` power x the unit's time. A pipeline
    unit's time is the sum of its busy, stall and idle cycles (= the layer's
    cycles; idle units are not power-gated); a memory's time is ``cycles``.

    Parameters
    ----------
    actions : Mapping[str, int]
        ``LayerTiming.actions`` (counts; ``*_words`` are 16-bit words).
    units : Mapping[str, Mapping[str, int]]
        Per-unit cycle accounting (``LayerResult.units``); may be empty.
    cycles : int
        Layer cycles (clock ``array.clock_mhz``).
    cfg : AcceleratorConfig
        The configuration the counts were produced with.
    table : EnergyTable, optional
        Default: ``load_energy_table(cfg)``.

    Returns
    -------
    dict of str to float
        Every name of :data:`COMPONENTS` -> pJ.

    Raises
    ------
    SparsesimError
        If ``actions`` holds an action the dataflow does not declare.
    """
    table = load_energy_table(cfg) if table is None else table
    costs = action_costs(cfg, table)
    out = dict.fromkeys(COMPONENTS, 0.0)
    for action, count in actions.items():
        cost = costs.get(action)
        if cost is None:
            raise SparsesimError(f"energy model has no table entry for action {action!r} "
                                 f"(known actions: {', '.join(costs)})")
        out[cost.component] += count * cost.pj
    us_per_cycle = 1.0 / cfg.array.clock_mhz
    for name in _static_names(cfg):
        mw = table[f"static_{name}"].value
        if mw:
            span = sum(units[name].values()) if name in units else cycles
            out["static"] += mw * span * us_per_cycle * 1e3   # mW x us = nJ = 1e3 pJ
    return out


def table_report(cfg: AcceleratorConfig, table: EnergyTable) -> dict[str, object]:
    """Which table was used and how each action was charged (for reports and JSON).

    Returns
    -------
    dict
        :meth:`EnergyTable.describe` plus ``memories_kib`` (capacity used per
        memory), ``actions`` (action -> component, entry, ``pj_per_count``,
        ``per``, ``source``, ``ref``) and ``static_mw`` (unit -> mW).
    """
    actions: dict[str, dict[str, object]] = {}
    for action, cost in action_costs(cfg, table).items():
        if cost.entry.startswith("sram_fit_"):
            fit = table[cost.entry.partition("@")[0]]
            width = table["sram_width_rule_16b"]
            per, source = "16-bit word", f"{fit.source}; {width.source}"
            ref = f"{fit.ref}; {width.ref}"
        else:
            e = table[cost.entry]
            per, source, ref = e.per, e.source, e.ref
            if cost.component == "dram":
                per = "byte (8 bits)"
        actions[action] = {"component": cost.component, "entry": cost.entry, "pj_per_count": cost.pj,
                           "per": per, "source": source, "ref": ref}
    caps = memory_capacities_kib(cfg)
    if table.sram_subbank_kib:
        caps = {k: min(v, float(table.sram_subbank_kib)) for k, v in caps.items()}
    return {**table.describe(), "memories_kib": caps, "actions": actions,
            "static_mw": {n: table[f"static_{n}"].value for n in _static_names(cfg)}}
