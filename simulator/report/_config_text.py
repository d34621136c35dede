"""An accelerator configuration as text: a table of every field, or a starter TOML file.

Both list each field with its value, unit, allowed range (``dataflows.FIELD_SPECS``)
and where the value comes from: the default's provenance tag from docs/sources.md
(``[C]`` driver code, ``[P]`` paper text, ``Assumption``) when the value is the
published default, otherwise the preset, file or ``--set`` that changed it.
"""
from __future__ import annotations

import json

from dataflows import FIELD_SPECS, AcceleratorConfig, config_to_dict

__all__ = ["config_rows", "config_table", "config_toml"]


def config_rows(cfg: AcceleratorConfig, origin: str = "preset",
                before_overrides: AcceleratorConfig | None = None) -> list[dict[str, object]]:
    """One row per field: ``key``, ``value``, ``unit``, ``allowed``, ``source``.

    Parameters
    ----------
    cfg : the configuration to describe.
    origin : what set the values that differ from the published defaults
        (``"preset rsnn"``, ``"accel.toml"``).
    before_overrides : ``cfg`` before ``--set`` overrides, if any: fields that
        differ from it are sourced ``--set``.
    """
    default = config_to_dict(AcceleratorConfig())
    mine = config_to_dict(cfg)
    pre = config_to_dict(before_overrides) if before_overrides is not None else mine
    rows: list[dict[str, object]] = []
    for sec, values in mine.items():
        if not isinstance(values, dict):
            continue
        for fname, value in values.items():
            spec = FIELD_SPECS[f"{sec}.{fname}"]
            if value != pre[sec][fname]:
                source = "--set"
            elif value != default[sec][fname]:
                source = origin
            else:
                source = spec.source
            rows.append({"key": spec.key, "value": value, "unit": spec.unit, "allowed": spec.allowed(),
                         "source": source})
    return rows


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def config_table(cfg: AcceleratorConfig, origin: str = "preset",
                 before_overrides: AcceleratorConfig | None = None) -> str:
    """Human-readable table of :func:`config_rows`, headed by the config's name and MAC count."""
    rows = config_rows(cfg, origin, before_overrides)
    cols = ("key", "value", "unit", "allowed", "source")
    cells = [[r["key"], _text(r["value"]), r["unit"], r["allowed"], r["source"]] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    head = "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    lines = [f"sparsesim config: {cfg.name} ({cfg.array.num_macs} MACs @ {cfg.array.clock_mhz:g} MHz, "
             f"dataflow {cfg.array.dataflow}); macs = array.num_clusters x array.macs_per_cluster",
             head, "-" * len(head)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.append("sources: [C] authors' driver code, [P] paper text, Assumption: no public source "
                 "(docs/sources.md, docs/architecture.md)")
    return "\n".join(lines)


def config_toml(cfg: AcceleratorConfig, origin: str = "preset",
                before_overrides: AcceleratorConfig | None = None) -> str:
    """A starter TOML file setting every field of ``cfg``, each commented with unit, range and source.

    Loading the text back (``load_config``) gives a configuration equal to ``cfg``.
    """
    rows = {r["key"]: r for r in config_rows(cfg, origin, before_overrides)}
    lines = ["# sparsesim accelerator configuration (every field; delete the ones you do not change).",
             "# Use it with:  sparsesim run vgg16 --accel THIS_FILE.toml",
             "# Each comment gives the unit, the allowed values and the source of the value:",
             "# [C] authors' driver code, [P] paper text, Assumption: no public source (docs/sources.md).",
             f"name = {_text(cfg.name)}"]
    for sec, values in config_to_dict(cfg).items():
        if not isinstance(values, dict):
            continue
        lines += ["", f"[{sec}]"]
        assigns = [f"{fname} = {_text(value)}" for fname, value in values.items()]
        width = max(len(a) for a in assigns)
        for fname, assign in zip(values, assigns):
            r = rows[f"{sec}.{fname}"]
            notes = [str(x) for x in (r["unit"], r["allowed"], r["source"]) if x]
            lines.append(f"{assign.ljust(width)}   # {'; '.join(notes)}")
    return "\n".join(lines) + "\n"
