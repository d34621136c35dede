"""Tests for simulator.energy: the table, the accounting rule, scaling, overrides and reports.

Expected energies are recomputed here from ``simulator/energy/default.toml``
read with ``tomllib`` and the action -> entry mapping written in docs/energy.md,
never through the module under test.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows import schedule_network
from simulator import Simulator, with_overrides
from dataflows import AcceleratorConfig
from simulator.energy import COMPONENTS, action_map, layer_energy, load_energy_table
from simulator.engine import time_layer
from dataflows import get_dataflow
from workloads import ConfigError
from workloads import NetworkBuilder

#: The stripe pipeline's units and actions, as the nullhop dataflow declares them.
UNITS = get_dataflow("nullhop").units
ACTIONS = tuple(get_dataflow("nullhop").actions)
ACTION_MAP = action_map(AcceleratorConfig())

REPO = pathlib.Path(__file__).resolve().parents[1]
TABLE = REPO / "simulator" / "energy" / "default.toml"
RAW = tomllib.loads(TABLE.read_text(encoding="utf-8"))
TAGS = ("[H]", "[HAN]", "[EY]", "[TL]", "[ALD]", "[ACC]", "[EX]", "[CACTI]", "[SB]", "[SL]", "[D]", "Assumption")
LISTED_KIB = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


# ---------------------------------------------------------------------------
# The independent model (docs/energy.md, "Action -> entry").
# ---------------------------------------------------------------------------

def _cfg(**over) -> AcceleratorConfig:
    return with_overrides(AcceleratorConfig(), over)


def _node(cfg, raw=RAW):
    return raw[f"n{cfg.energy.tech_node_nm}"]


def _sram(node, cap_kib, op, subbank=0):
    s = min(cap_kib, subbank) if subbank else cap_kib
    if s < 1:
        return node[f"rf_{op}_16b"]["pj"]
    if float(s).is_integer() and int(s) in LISTED_KIB:
        return node[f"sram_{op}_{int(s)}kib"]["pj"]
    fit = node[f"sram_fit_{op}"]
    return fit["coeff"] * s ** fit["exponent"] * 64 * node["sram_width_rule_16b"]["factor"]


def expected_costs(cfg, raw=RAW) -> dict[str, tuple[str, float]]:
    """Action -> (component, pJ per count), from the TOML text and the documented mapping."""
    n = _node(cfg, raw)
    m, sub = cfg.memory, cfg.energy.sram_subbank_kib
    cap = {"input_memory": m.input_memory_kib, "kernel_memory": m.kernel_memory_words_per_mac * 2 / 1024,
           "pre_buffer": m.pre_buffer_kib, "output_buffer": m.output_buffer_kib,
           "decoder_fifo": m.decoder_fifo_kib, "encoder_fifo": m.encoder_fifo_kib}
    dram = n[f"dram_{cfg.energy.dram_type.lower()}"]["pj"] * 8
    out = {"mac_ops": ("mac", n["mac_16b"]["pj"]),
           "mac_gated_slots": ("mac_gated", n["mac_gated_16b"]["pj"]),
           "sm_read_words": ("sm_metadata", n["sm_decode_word"]["pj"]),
           "sm_write_words": ("sm_metadata", n["sm_encode_word"]["pj"]),
           "dram_read_bytes": ("dram", dram), "dram_write_bytes": ("dram", dram)}
    for mem in cap:
        for op in ("read", "write"):
            out[f"{mem}_{op}_words"] = (mem, _sram(n, cap[mem], op, sub))
    return out


def expected_energy(actions, cycles, cfg, raw=RAW) -> dict[str, float]:
    costs = expected_costs(cfg, raw)
    out = dict.fromkeys(COMPONENTS, 0.0)
    for a, count in actions.items():
        comp, pj = costs[a]
        out[comp] += count * pj
    n = _node(cfg, raw)
    mw = sum(e["mw"] for k, e in n.items() if k.startswith("static_"))
    out["static"] = mw * 1e-3 * (cycles / (cfg.array.clock_mhz * 1e6)) * 1e12
    return out


def approx(d):
    return {k: pytest.approx(v, rel=1e-12, abs=1e-9) for k, v in d.items()}


# ---------------------------------------------------------------------------
# The data file.
# ---------------------------------------------------------------------------

def test_both_nodes_have_the_same_entries_each_sourced():
    assert set(RAW) == {"n45", "n28"}
    assert set(RAW["n45"]) == set(RAW["n28"])
    for sec, entries in RAW.items():
        for key, e in entries.items():
            assert isinstance(e["per"], str) and e["per"], (sec, key)
            assert any(t in e["source"] for t in TAGS), (sec, key, e["source"])
            assert e["ref"].startswith("docs/sources.md §E"), (sec, key)
            values = [v for f, v in e.items() if f in ("pj", "mw", "coeff", "exponent", "factor")]
            assert values and all(isinstance(v, float) and v >= 0 for v in values), (sec, key)


def test_issue_entries_are_present():
    # MAC 8/16-bit, register, SRAM read/write by capacity, DRAM by type, metadata, gated vs skipped, static
    n = RAW["n28"]
    for key in ("mac_8b", "mac_16b", "register_bit", "dram_lpddr4", "dram_ddr4", "dram_hbm2",
                "sm_decode_word", "sm_encode_word", "mac_gated_16b", "mac_skipped", "static_mac_array"):
        assert key in n, key
    for s in LISTED_KIB:
        assert f"sram_read_{s}kib" in n and f"sram_write_{s}kib" in n


@pytest.mark.parametrize("key, n45, n28", [
    ("mac_16b", 0.90, 0.46),            # docs/sources.md §E1
    ("mac_8b", 0.25, 0.13),
    ("register_bit", 0.010, 0.0053),
    ("sram_read_512kib", 32.47, 12.83),   # §E4.2, input memory
    ("sram_write_512kib", 24.39, 10.63),
    ("sram_read_8kib", 2.92, 1.28),       # §E4.2, per-MAC kernel memory
    ("sram_write_8kib", 3.74, 1.55),
    ("dram_lpddr4", 8.0, 8.0),            # §E5
    ("dram_ddr4", 15.0, 15.0),
    ("dram_hbm2", 3.9, 3.9),
    ("mac_skipped", 0.0, 0.0),            # §E7.6: skipped work costs nothing
])
def test_pinned_values_from_energy_md(key, n45, n28):
    assert RAW["n45"][key]["pj"] == n45 and RAW["n28"][key]["pj"] == n28


def test_gated_mac_is_three_percent_of_a_mac():
    for sec in RAW.values():
        for bits in (8, 16):
            assert sec[f"mac_gated_{bits}b"]["pj"] == pytest.approx(0.03 * sec[f"mac_{bits}b"]["pj"], rel=1e-9)


def test_static_power_defaults_to_zero():
    for sec in RAW.values():
        statics = {k: e["mw"] for k, e in sec.items() if k.startswith("static_")}
        assert set(statics) == {f"static_{u}" for u in (*UNITS, "input_memory", "decoder_fifo", "kernel_memory",
                                                        "pre_buffer", "encoder_fifo", "output_buffer")}
        assert all(v == 0.0 for v in statics.values())


def test_every_action_maps_to_exactly_one_entry():
    assert set(ACTION_MAP) == set(ACTIONS)
    assert {comp for comp, _ in ACTION_MAP.values()} | {"static"} == set(COMPONENTS)


def test_sram_fit_reproduces_the_listed_rows_within_25_percent():
    # docs/sources.md §E4.3: the power law is within about 25% of the CACTI rows.
    for sec in RAW.values():
        for s in LISTED_KIB:
            for op in ("read", "write"):
                fit = sec[f"sram_fit_{op}"]
                fitted = fit["coeff"] * s ** fit["exponent"] * 64 * sec["sram_width_rule_16b"]["factor"]
                assert fitted == pytest.approx(sec[f"sram_{op}_{s}kib"]["pj"], rel=0.3), (s, op)


# ---------------------------------------------------------------------------
# Accounting: energy == Σ counts × entries.
# ---------------------------------------------------------------------------

_counts = st.integers(0, 10**9)


@settings(max_examples=200, deadline=None)
@given(actions=st.fixed_dictionaries({a: _counts for a in ACTIONS}),
       cycles=st.integers(0, 10**9),
       node=st.sampled_from([28, 45]), dram=st.sampled_from(["LPDDR4", "DDR4", "HBM2"]),
       in_kib=st.sampled_from([1, 100, 512, 700, 4096]), kwords=st.sampled_from([128, 1000, 4096, 16384]),
       pre=st.sampled_from([1, 3, 4, 64]), outb=st.sampled_from([2, 8, 33]),
       sub=st.sampled_from([0, 0, 4, 64]))
def test_layer_energy_is_sum_of_counts_times_entries(actions, cycles, node, dram, in_kib, kwords, pre, outb,
                                                      sub):
    cfg = _cfg(**{"energy.tech_node_nm": node, "energy.dram_type": dram, "memory.input_memory_kib": in_kib,
                  "memory.kernel_memory_words_per_mac": kwords, "memory.pre_buffer_kib": pre,
                  "memory.output_buffer_kib": outb, "energy.sram_subbank_kib": sub})
    got = layer_energy(actions, {}, cycles, cfg, load_energy_table(cfg))
    assert list(got) == list(COMPONENTS)
    assert got == approx(expected_energy(actions, cycles, cfg))


@pytest.fixture(scope="module")
def rosh():
    return Simulator("nullhop").run("roshambonet", seed=0)


@pytest.fixture(scope="module")
def rosh45():
    return Simulator("nullhop", {"energy.tech_node_nm": 45}).run("roshambonet", seed=0)


@pytest.fixture(scope="module")
def rosh_hbm2():
    return Simulator("nullhop", {"energy.dram_type": "HBM2"}).run("roshambonet", seed=0)


def _acc(result):
    return [l for l in result.layers if l.where == "accelerator"]


def test_network_energy_is_sum_of_counts_times_entries(rosh):
    cfg = AcceleratorConfig()
    for l in _acc(rosh):
        assert set(l.actions) == set(ACTIONS)
        assert l.energy_pj == approx(expected_energy(l.actions, l.cycles, cfg))
    for l in rosh.layers:
        if l.where != "accelerator":
            assert l.energy_pj == {}
    total = sum(sum(l.energy_pj.values()) for l in _acc(rosh))
    assert rosh.totals["energy_uj"] == pytest.approx(total / 1e6, rel=1e-12)
    assert sum(rosh.totals["energy_breakdown_uj"].values()) == pytest.approx(rosh.totals["energy_uj"], rel=1e-12)


def test_node_change_scales_each_component_as_the_table_says(rosh, rosh45):
    n28, n45 = RAW["n28"], RAW["n45"]
    for a, b in zip(_acc(rosh), _acc(rosh45)):
        assert a.actions == b.actions and a.cycles == b.cycles   # the node changes energy, not timing
        if b.energy_pj["mac"]:
            assert a.energy_pj["mac"] / b.energy_pj["mac"] == pytest.approx(
                n28["mac_16b"]["pj"] / n45["mac_16b"]["pj"], rel=1e-12)
        if b.energy_pj["mac_gated"]:
            assert a.energy_pj["mac_gated"] / b.energy_pj["mac_gated"] == pytest.approx(
                n28["mac_gated_16b"]["pj"] / n45["mac_gated_16b"]["pj"], rel=1e-12)
        assert a.energy_pj["dram"] == pytest.approx(b.energy_pj["dram"], rel=1e-12)   # DRAM is node-free
        # Memories: each read/write term scales by its own entry ratio.
        kr, kw = a.actions["kernel_memory_read_words"], a.actions["kernel_memory_write_words"]
        assert a.energy_pj["kernel_memory"] == pytest.approx(
            (kr * n45["sram_read_8kib"]["pj"] * n28["sram_read_8kib"]["pj"] / n45["sram_read_8kib"]["pj"]
             + kw * n45["sram_write_8kib"]["pj"] * n28["sram_write_8kib"]["pj"] / n45["sram_write_8kib"]["pj"]),
            rel=1e-12)
        assert b.energy_pj == approx(expected_energy(b.actions, b.cycles, _cfg(**{"energy.tech_node_nm": 45})))
    assert rosh.totals["energy_table"]["tech_node_nm"] == 28
    assert rosh45.totals["energy_table"]["tech_node_nm"] == 45
    assert rosh45.totals["energy_uj"] > rosh.totals["energy_uj"]


def test_dram_type_scales_only_the_dram_component(rosh, rosh_hbm2):
    ratio = RAW["n28"]["dram_hbm2"]["pj"] / RAW["n28"]["dram_lpddr4"]["pj"]
    for a, b in zip(_acc(rosh), _acc(rosh_hbm2)):
        for comp in COMPONENTS:
            if comp == "dram":
                assert b.energy_pj[comp] == pytest.approx(a.energy_pj[comp] * ratio, rel=1e-12)
            else:
                assert b.energy_pj[comp] == a.energy_pj[comp]
    assert rosh_hbm2.totals["energy_table"]["dram_type"] == "HBM2"
    assert rosh_hbm2.totals["energy_core_uj"] == pytest.approx(rosh.totals["energy_core_uj"], rel=1e-12)


# ---------------------------------------------------------------------------
# A zero-input layer costs only its fixed overheads.
# ---------------------------------------------------------------------------

def _one_layer(h, w, cin, cout, k, pad, pool, cfg):
    """A 1x1 conv followed by the layer under test (so its input is compressed, not the first layer)."""
    b = NetworkBuilder("zero", (h, w, cin))
    b.conv("prev", cin, 1)
    b.conv("layer", cout, k, padding=pad)
    if pool:
        b.maxpool("pool")
    return next(s for s in schedule_network(b.build(), cfg) if s.layer.name == "layer")


def _fixed_counts(sched, h, w, cin, cfg) -> dict[str, int]:
    """Action counts of an all-zero compressed input, from docs/architecture.md §4 and §5."""
    mp = sched.mapping
    kh, _ = mp.kernel
    p = mp.padding
    ho1, wo1 = h + 2 * p - kh + 1, w + 2 * p - kh + 1
    pooled = sched.fused_pool is not None
    out_h, out_w = (ho1 // 2, wo1 // 2) if pooled else (ho1, wo1)
    sm_row = math.ceil(w * cin / 16)                       # an all-zero row is only SM words
    resident = h * sm_row * 2 <= cfg.memory.input_memory_kib * 1024
    window_rows = 0
    for s in range((ho1 + 1) // 2):
        rows = min(2, ho1 - 2 * s)
        window_rows += min(h - 1, 2 * s + rows - 1 - p + kh - 1) - max(0, 2 * s - p) + 1
    c = dict.fromkeys(ACTIONS, 0)
    vpb, bb = cfg.dma.values_per_beat, cfg.dma.beat_bytes
    for q in range(mp.passes):
        count = min(mp.out_per_pass, mp.out_channels - q * mp.out_per_pass)
        streamed = q == 0 or not resident
        out_sm = math.ceil(out_w * count / 16)
        c["input_memory_write_words"] += h * sm_row if streamed else 0
        c["input_memory_read_words"] += window_rows * sm_row
        c["sm_read_words"] += window_rows * sm_row
        c["kernel_memory_write_words"] += count * mp.m * mp.contiguous_kernels
        c["pre_buffer_write_words"] += ho1 * wo1 * count * mp.m
        c["pre_buffer_read_words"] += ho1 * wo1 * count * mp.m
        c["encoder_fifo_write_words"] += out_h * out_w * count     # raw values before encoding
        c["encoder_fifo_read_words"] += out_h * out_w * count       # (an all-zero input decodes no pixels)
        c["output_buffer_write_words"] += out_h * out_sm
        c["output_buffer_read_words"] += out_h * out_sm
        c["sm_write_words"] += out_h * out_sm
        load_beats = (cfg.dma.config_beats_per_pass + math.ceil(cfg.array.num_macs / vpb)
                      + count * mp.m * math.ceil(mp.contiguous_kernels / vpb))
        c["dram_read_bytes"] += (load_beats + (h * math.ceil(sm_row / vpb) if streamed else 0)) * bb
        c["dram_write_bytes"] += out_h * math.ceil(out_sm / vpb) * bb
    return c


@pytest.mark.parametrize("h, w, cin, cout, k, pad, pool", [
    (8, 8, 16, 32, 3, 1, False),
    (12, 10, 64, 256, 3, 1, True),       # 2 passes, fused pool
    (9, 7, 33, 16, 5, 2, False),         # m = 8, odd output rows
    (6, 6, 512, 64, 3, 0, False),        # kernel-memory bound m
])
def test_zero_input_layer_costs_only_fixed_overheads(tmp_path, h, w, cin, cout, k, pad, pool):
    user = tmp_path / "static.toml"
    user.write_text('[n28]\nstatic_mac_array = { mw = 12.5 }\nstatic_input_memory = { mw = 3.0 }\n')
    cfg = _cfg(**{"energy.table": str(user)})
    sched = _one_layer(h, w, cin, cout, k, pad, pool, cfg)
    x = np.zeros((h, w, cin), dtype=np.int16)
    ho1, wo1 = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    out = np.zeros(((ho1 // 2, wo1 // 2) if sched.fused_pool else (ho1, wo1)) + (cout,), dtype=np.int16)
    t = time_layer(sched, x, out, cfg)
    units = {u: t.units[u].as_dict() for u in UNITS}
    e = layer_energy(t.actions, units, t.cycles, cfg, load_energy_table(cfg))
    fixed = _fixed_counts(sched, h, w, cin, cfg)
    assert t.actions == fixed
    # No work on data: no MAC, no gated slot, no weight read, no non-zero read.
    assert e["mac"] == e["mac_gated"] == 0.0
    assert t.actions["kernel_memory_read_words"] == 0
    assert t.actions["input_memory_read_words"] == t.actions["sm_read_words"]
    # What remains: kernel loading, SM words, PRE and encoder traffic, weight DRAM, static power.
    for comp in ("kernel_memory", "input_memory", "sm_metadata", "pre_buffer", "output_buffer", "dram", "static"):
        assert e[comp] > 0, comp
    raw = tomllib.loads(TABLE.read_text())
    raw["n28"]["static_mac_array"]["mw"] = 12.5
    raw["n28"]["static_input_memory"]["mw"] = 3.0
    assert e == approx(expected_energy(fixed, t.cycles, cfg, raw))
    assert e["static"] == pytest.approx(15.5e-3 * t.cycles / 500e6 * 1e12, rel=1e-12)


# ---------------------------------------------------------------------------
# User override files and their errors.
# ---------------------------------------------------------------------------

def _write(tmp_path, text, name="energy.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_user_table_overrides_one_entry(tmp_path, rosh):
    path = _write(tmp_path, '[n28]\nmac_16b = { pj = 1.0, source = "my 28 nm synthesis" }\n'
                            '[n45.sram_read_8kib]\npj = 9.0\n')
    cfg = _cfg(**{"energy.table": path})
    base, user = load_energy_table(AcceleratorConfig()), load_energy_table(cfg)
    assert user.overridden == ("mac_16b",)                  # the n45 entry does not apply at 28 nm
    assert user["mac_16b"].value == 1.0 and user["mac_16b"].source == "my 28 nm synthesis"
    assert user["mac_16b"].per == "op"
    for name, entry in base.entries.items():
        if name != "mac_16b":
            assert user[name] == entry, name
    assert load_energy_table(with_overrides(cfg, {"energy.tech_node_nm": 45}))["sram_read_8kib"].value == 9.0
    result = Simulator(cfg).run("roshambonet", seed=0)
    for a, b in zip(_acc(rosh), _acc(result)):
        assert b.energy_pj["mac"] == pytest.approx(a.energy_pj["mac"] / 0.46, rel=1e-12)
        assert {k: v for k, v in b.energy_pj.items() if k != "mac"} == \
            {k: v for k, v in a.energy_pj.items() if k != "mac"}
    assert result.totals["energy_table"]["file"] == path
    d = json.loads(result.to_json())
    assert d["energy_table"]["overridden"] == ["mac_16b"]
    assert d["energy_table"]["actions"]["mac_ops"]["source"] == "my 28 nm synthesis"


def test_user_table_from_a_config_file_is_relative_to_it(tmp_path):
    (tmp_path / "e.toml").write_text("[n28]\ndram_lpddr4 = { pj = 4.0 }\n")
    accel = _write(tmp_path, 'base = "nullhop"\n[energy]\ntable = "e.toml"\n', "accel.toml")
    sim = Simulator(accel)
    assert sim.energy_table["dram_lpddr4"].value == 4.0
    assert sim.energy_table.file == str(tmp_path / "e.toml")


def raises(message):
    return pytest.raises(ConfigError, match="^" + re.escape(message) + "$")


@pytest.mark.parametrize("text, message", [
    ("[n28\n", "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 5)"),
    ("[n65]\nmac_16b = { pj = 1.0 }\n", "unknown section 'n65' (sections are: n28, n45, one per technology node)"),
    ("n28 = 3\n", "'n28' must be a table (a [n28] section), got 3"),
    ("[n28]\nmac16 = { pj = 1.0 }\n", "unknown entry 'n28.mac16' (did you mean 'n28.mac_16b'?)"),
    ("[n28]\nzzzzzz = { pj = 1.0 }\n", "unknown entry 'n28.zzzzzz'"),
    ("[n28]\nmac_16b = 1.0\n", "n28.mac_16b must be a table such as { pj = 0.5 }, got 1.0"),
    ("[n28]\nmac_16b = { pj = -0.46 }\n", "n28.mac_16b.pj must be a non-negative number, got -0.46"),
    ("[n28]\nmac_16b = { pj = \"0.46\" }\n", "n28.mac_16b.pj must be a non-negative number, got '0.46'"),
    ("[n28]\nmac_16b = { pj = nan }\n", "n28.mac_16b.pj must be a non-negative number, got nan"),
    ("[n28]\nmac_16b = { pj = true }\n", "n28.mac_16b.pj must be a non-negative number, got True"),
    ("[n28]\nmac_16b = { source = \"x\" }\n", "n28.mac_16b.pj is missing"),
    ("[n28]\nmac_16b = { pJ = 0.5 }\n", "n28.mac_16b has unknown field 'pJ' (fields are: pj, per, source, ref)"),
    ("[n28]\nstatic_pre = { pj = 0.5 }\n",
     "n28.static_pre has unknown field 'pj' (fields are: mw, per, source, ref)"),
    ("[n28]\nsram_fit_read = { coeff = 0.01 }\n", "n28.sram_fit_read.exponent is missing"),
    ("[n28]\nmac_16b = { pj = 0.5, per = \"bit\" }\n",
     "n28.mac_16b.per must be 'op' (the unit the simulator counts), got 'bit'"),
    ("[n28]\nmac_16b = { pj = 0.5, ref = 7 }\n", "n28.mac_16b.ref must be a string, got 7"),
])
def test_bad_user_table_messages(tmp_path, text, message):
    path = _write(tmp_path, text)
    with raises(f"{path}: {message}"):
        load_energy_table(_cfg(**{"energy.table": path}))
    with raises(f"{path}: {message}"):
        Simulator("nullhop", {"energy.table": path})      # fails before any layer runs


def test_missing_and_unreadable_table_messages(tmp_path):
    missing = str(tmp_path / "nope.toml")
    with raises(f"{missing}: energy table not found"):
        load_energy_table(_cfg(**{"energy.table": missing}))
    with pytest.raises(ConfigError, match=r"^.*: cannot read energy table: "):
        load_energy_table(_cfg(**{"energy.table": str(tmp_path)}))


def test_sram_subbank_choice(tmp_path):
    cfg = _cfg(**{"energy.sram_subbank_kib": 4})
    table = load_energy_table(cfg)
    assert table.sram_word(512, "read") == ("sram_read_4kib", RAW["n28"]["sram_read_4kib"]["pj"])
    assert table.sram_word(1, "write") == ("sram_write_1kib", RAW["n28"]["sram_write_1kib"]["pj"])
    full = load_energy_table(AcceleratorConfig())
    assert full.sram_word(512, "read") == ("sram_read_512kib", 12.83)
    assert full.sram_word(0.25, "read") == ("rf_read_16b", 0.33)
    name, pj = full.sram_word(700, "write")
    fit = RAW["n28"]["sram_fit_write"]
    assert name == "sram_fit_write@700kib"
    assert pj == pytest.approx(fit["coeff"] * 700 ** fit["exponent"] * 64 * 0.475, rel=1e-12)
    assert table.describe()["sram_model"] == "4 KiB sub-bank"


# ---------------------------------------------------------------------------
# Reports.
# ---------------------------------------------------------------------------

def test_totals_and_json_report_energy_and_both_tops_per_watt(rosh, tmp_path):
    t = rosh.totals
    e_pj = t["energy_uj"] * 1e6
    dense = t["macs_dense"]
    mac_ops = sum(l.mac_ops for l in _acc(rosh))
    assert e_pj > 0 and t["mac_ops"] == mac_ops
    assert t["energy_per_inference_uj"] == t["energy_uj"]
    assert t["tops_per_watt_dense"] == pytest.approx(2 * dense / e_pj, rel=1e-12)
    assert t["tops_per_watt_actual"] == pytest.approx(2 * mac_ops / e_pj, rel=1e-12)
    core = e_pj - t["energy_breakdown_uj"]["dram"] * 1e6
    assert t["energy_core_uj"] * 1e6 == pytest.approx(core, rel=1e-12)
    assert t["tops_per_watt_dense_core"] == pytest.approx(2 * dense / core, rel=1e-12)
    assert t["tops_per_watt_actual_core"] == pytest.approx(2 * mac_ops / core, rel=1e-12)
    assert t["pj_per_mac_dense"] == pytest.approx(e_pj / dense, rel=1e-12)
    assert t["pj_per_mac_useful"] == pytest.approx(e_pj / t["macs_useful"], rel=1e-12)
    # uJ / ms = mW
    assert t["average_power_mw"] == pytest.approx(t["energy_uj"] / t["latency_ms"], rel=1e-12)
    assert t["energy_table"] == {"tech_node_nm": 28, "dram_type": "LPDDR4", "file": "built-in",
                                 "sram_model": "full macro"}
    assert list(t["energy_breakdown_uj"]) == list(COMPONENTS)

    d = json.loads(rosh.to_json())
    for key in ("energy_uj", "energy_breakdown_uj", "tops_per_watt_dense", "tops_per_watt_actual",
                "average_power_mw", "pj_per_mac_dense", "pj_per_mac_useful", "energy_table"):
        assert d["totals"][key] == t[key], key
    assert d["config"]["energy"] == {"tech_node_nm": 28, "dram_type": "LPDDR4", "table": "",
                                     "sram_subbank_kib": 0}
    et = d["energy_table"]
    assert et["file"] == "built-in" and et["tech_node_nm"] == 28
    assert et["actions"]["mac_ops"] == {"component": "mac", "entry": "mac_16b", "pj_per_count": 0.46,
                                        "per": "op", "source": RAW["n28"]["mac_16b"]["source"],
                                        "ref": RAW["n28"]["mac_16b"]["ref"]}
    assert et["actions"]["input_memory_read_words"]["entry"] == "sram_read_512kib"
    assert et["actions"]["kernel_memory_read_words"]["entry"] == "sram_read_8kib"
    assert et["actions"]["dram_read_bytes"]["pj_per_count"] == 64.0
    for l_json, l in zip(d["layers"], rosh.layers):
        assert l_json["energy_pj"] == l.energy_pj
    header = rosh.to_csv().splitlines()[0].split(",")
    assert "energy_pj.mac" in header and "energy_pj.dram" in header


def test_format_table_shows_energy_and_named_tops_per_watt(rosh):
    text = rosh.format_table()
    lines = text.splitlines()
    assert "E uJ" in lines[1]
    t = rosh.totals
    total = [line for line in lines if line.startswith("total")]
    assert len(total) == 1 and f"{t['energy_uj']:.2f}" in total[0]
    layer1 = next(line for line in lines if line.startswith("layer1"))
    assert f"{sum(rosh.layer('layer1').energy_pj.values()) / 1e6:.2f}" in layer1
    energy = next(line for line in lines if line.startswith("energy "))
    assert "28 nm, LPDDR4, built-in table" in energy
    assert f"average power {t['average_power_mw']:.1f} mW" in energy
    tops = next(line for line in lines if line.startswith("TOp/s/W"))
    assert f"dense-equivalent ops {t['tops_per_watt_dense']:.3f}" in tops
    assert f"actual ops {t['tops_per_watt_actual']:.3f}" in tops
    assert "without DRAM" in tops
    assert any(line.startswith("energy breakdown: mac ") for line in lines)


def test_result_without_energy_still_reports():
    # A Result built by hand (no energy) keeps working and shows no energy lines.
    r = Simulator("nullhop").run("facedet", seed=0)
    bare = dataclasses.replace(r, energy_table={},
                               layers=[dataclasses.replace(l, energy_pj={}) for l in r.layers])
    assert bare.totals["energy_uj"] == 0 and bare.totals["tops_per_watt_dense"] == 0.0
    assert not any(line.startswith("TOp/s/W") for line in bare.format_table().splitlines())
