"""Tests for the accelerator description (dataflows): presets, TOML files, overrides and exact error messages."""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflows import (
    AcceleratorConfig,
    ArrayConfig,
    DmaConfig,
    MemoryConfig,
    PrecisionConfig,
    config_to_dict,
    field_names,
    get_preset,
    list_presets,
    load_config,
    parse_set,
    with_overrides,
)
from workloads import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# A tiny TOML writer (enough for flat top-level keys plus one level of tables).
# ---------------------------------------------------------------------------

def _toml_key(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return _toml_value(key)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        out = []
        for c in v:
            if c in '"\\':
                out.append("\\" + c)
            elif ord(c) < 0x20 or ord(c) == 0x7F:
                out.append(f"\\u{ord(c):04x}")
            else:
                out.append(c)
        return '"' + "".join(out) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(doc: dict) -> str:
    """Write ``doc``: scalar/list values first, then each dict value as a ``[table]``."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"\n[{_toml_key(k)}]")
            lines.extend(f"{_toml_key(fk)} = {_toml_value(fv)}" for fk, fv in v.items())
    return "\n".join(lines) + "\n"


def write(tmp_path: pathlib.Path, text: str, name: str = "cfg.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------
# Presets and published facts.
# ---------------------------------------------------------------------------

def test_nullhop_preset_matches_published_facts():
    cfg = get_preset("nullhop")
    assert cfg.name == "nullhop"
    assert (cfg.array.num_clusters, cfg.array.macs_per_cluster) == (8, 16)
    assert cfg.array.num_macs == 128
    assert cfg.array.clock_mhz == 500.0
    assert cfg.array.max_macs_per_channel == 8
    assert cfg.array.max_kernel_size == 7
    assert cfg.array.sm_word_pixels == 16
    assert cfg.array.run_fc_on_accelerator is False
    assert cfg.memory.input_memory_kib == 512
    assert cfg.memory.kernel_memory_words_per_mac == 4096
    assert (cfg.dma.beat_bytes, cfg.dma.values_per_beat) == (8, 2)
    assert (cfg.precision.total_bits, cfg.precision.frac_bits) == (16, 8)
    assert cfg.energy.tech_node_nm == 28          # [P] 28-nm process
    assert cfg.energy.dram_type == "LPDDR4" and cfg.energy.table == ""
    assert (cfg.memory.pre_buffer_kib, cfg.memory.output_buffer_kib) == (4, 8)


def test_nullhop_preset_equals_defaults():
    assert get_preset("nullhop") == AcceleratorConfig()


def test_float_fields_load_as_float():
    cfg = get_preset("nullhop")
    assert type(cfg.array.clock_mhz) is float
    assert type(cfg.dma.bandwidth_bytes_per_cycle) is float


def test_list_presets():
    assert "nullhop" in list_presets()
    assert list_presets() == sorted(list_presets())


def test_load_config_by_preset_name():
    assert load_config("nullhop") == get_preset("nullhop")


def test_every_preset_field_has_a_provenance_comment():
    text = (REPO / "dataflows" / "presets" / "nullhop.toml").read_text()
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("name"):
            assert "[C]" in line or "[P]" in line or "Assumption" in line, line


def test_example_config():
    cfg = load_config(REPO / "configs" / "example.toml")
    assert cfg.name == "nullhop-256mac"
    assert cfg.array.num_clusters == 16
    assert cfg.array.num_macs == 256
    assert cfg.dma.bandwidth_bytes_per_cycle == 8.0
    preset = get_preset("nullhop")
    assert dataclasses.replace(cfg, name="nullhop", array=preset.array) == preset


# ---------------------------------------------------------------------------
# Files: base, name, round trip.
# ---------------------------------------------------------------------------

def test_file_without_base_uses_defaults_and_stem_as_name(tmp_path):
    path = write(tmp_path, "[dma]\nlatency_cycles = 7\n", name="mine.toml")
    cfg = load_config(path)
    assert cfg.name == "mine"
    assert cfg == dataclasses.replace(AcceleratorConfig(name="mine"),
                                      dma=DmaConfig(latency_cycles=7))


def test_file_with_base_and_dotted_keys(tmp_path):
    path = write(tmp_path, 'base = "nullhop"\nname = "x"\narray.num_clusters = 4\n')
    cfg = load_config(pathlib.Path(path))
    assert cfg.name == "x"
    assert cfg.array.num_macs == 64


def test_energy_table_path_is_relative_to_the_config_file(tmp_path):
    sub = tmp_path / "cfgs"
    sub.mkdir()
    cfg = load_config(write(sub, '[energy]\ntable = "my_energy.toml"\ndram_type = "HBM2"\n'))
    assert cfg.energy.table == str(sub / "my_energy.toml")
    assert cfg.energy.dram_type == "HBM2"
    absolute = load_config(write(sub, f'[energy]\ntable = "{tmp_path / "x.toml"}"\n', "abs.toml"))
    assert absolute.energy.table == str(tmp_path / "x.toml")
    # --set keeps the string as given (relative to the working directory)
    assert with_overrides(AcceleratorConfig(), {"energy.table": "e.toml"}).energy.table == "e.toml"


def test_int_accepted_for_float_field(tmp_path):
    cfg = load_config(write(tmp_path, "[dma]\nbandwidth_bytes_per_cycle = 4\n"))
    assert cfg.dma.bandwidth_bytes_per_cycle == 4.0
    assert type(cfg.dma.bandwidth_bytes_per_cycle) is float


@pytest.mark.parametrize("cfg", [
    AcceleratorConfig(),
    AcceleratorConfig(
        name='odd "name" \\ with escapes',
        array=ArrayConfig(num_clusters=3, macs_per_cluster=32, clock_mhz=123.456,
                          max_macs_per_channel=2, max_kernel_size=15,
                          run_fc_on_accelerator=True),
        memory=MemoryConfig(input_memory_kib=1, decoder_fifo_kib=0.75),
        dma=DmaConfig(bandwidth_bytes_per_cycle=0.5, latency_cycles=0, beat_bytes=16,
                      values_per_beat=8, config_beats_per_pass=0, interface="separate"),
        precision=PrecisionConfig(),
    ),
])
def test_round_trip_dict_file_load(tmp_path, cfg):
    d = config_to_dict(cfg)
    json.dumps(d)  # the report format must be JSON-serialisable
    assert set(d) == {"name", "array", "memory", "dma", "precision", "energy"}
    assert load_config(write(tmp_path, to_toml(d))) == cfg


def test_field_names():
    names = field_names()
    assert names[0] == "name"
    assert "array.macs_per_cluster" in names
    assert "dma.bandwidth_bytes_per_cycle" in names
    assert len(names) == len(set(names)) == 1 + 15 + 6 + 6 + 2 + 4
    d = config_to_dict(AcceleratorConfig())
    assert names[1:] == [f"{s}.{k}" for s in ("array", "memory", "dma", "precision", "energy") for k in d[s]]


# ---------------------------------------------------------------------------
# Overrides and --set.
# ---------------------------------------------------------------------------

def test_with_overrides_changes_only_named_field():
    cfg = get_preset("nullhop")
    new = with_overrides(cfg, {"dma.latency_cycles": "50"})
    assert new.dma.latency_cycles == 50
    assert cfg.dma.latency_cycles == 100
    assert dataclasses.replace(new, dma=cfg.dma) == cfg
    assert new.array is cfg.array and new.memory is cfg.memory
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.dma.latency_cycles = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.name = "x"  # type: ignore[misc]


def test_with_overrides_parses_types():
    cfg = with_overrides(AcceleratorConfig(), {
        "array.clock_mhz": "250",
        "array.run_fc_on_accelerator": "True",
        "dma.bandwidth_bytes_per_cycle": 16,
        "memory.input_memory_kib": 1024,
        "name": "sweep-1",
    })
    assert cfg.array.clock_mhz == 250.0 and type(cfg.array.clock_mhz) is float
    assert cfg.array.run_fc_on_accelerator is True
    assert cfg.dma.bandwidth_bytes_per_cycle == 16.0
    assert cfg.memory.input_memory_kib == 1024
    assert cfg.name == "sweep-1"


def test_parse_set_then_override():
    sets = parse_set(["dma.latency_cycles=50", " array.clock_mhz = 250.5 ", "name=a=b"])
    assert sets == {"dma.latency_cycles": "50", "array.clock_mhz": "250.5", "name": "a=b"}
    cfg = with_overrides(AcceleratorConfig(), sets)
    assert (cfg.dma.latency_cycles, cfg.array.clock_mhz, cfg.name) == (50, 250.5, "a=b")


# ---------------------------------------------------------------------------
# Exact error messages.
# ---------------------------------------------------------------------------

def raises(match_exact: str):
    return pytest.raises(ConfigError, match="^" + __import__("re").escape(match_exact) + "$")


@pytest.mark.parametrize("text, message", [
    ("[dma]\nbandwith_bytes_per_cycle = 4\n",
     "unknown key 'dma.bandwith_bytes_per_cycle' (did you mean 'dma.bandwidth_bytes_per_cycle'?)"),
    ("[arrays]\nnum_clusters = 4\n",
     "unknown key 'arrays' (did you mean 'array'?)"),
    ("latency_cycles = 4\n",
     "unknown key 'latency_cycles' (did you mean 'dma.latency_cycles'?)"),
    ("[dma]\nzzzzzzzzzzzzzzzzz = 4\n",
     "unknown key 'dma.zzzzzzzzzzzzzzzzz' (dma keys are: bandwidth_bytes_per_cycle, "
     "latency_cycles, beat_bytes, values_per_beat, config_beats_per_pass, interface)"),
    ("dma = 5\n",
     "'dma' must be a table (a [dma] section), got 5"),
    ("[dma]\nlatency_cycles = \"10\"\n",
     "dma.latency_cycles must be an integer, got '10'"),
    ("[array]\nnum_clusters = true\n",
     "array.num_clusters must be an integer, got True"),
    ("[array]\nclock_mhz = \"fast\"\n",
     "array.clock_mhz must be a number, got 'fast'"),
    ("[array]\nclock_mhz = inf\n",
     "array.clock_mhz must be finite, got inf"),
    ("[array]\nrun_fc_on_accelerator = 1\n",
     "array.run_fc_on_accelerator must be a boolean (true or false), got 1"),
    ("[memory]\ninput_memory_kib = -1\n",
     "memory.input_memory_kib must be a positive integer, got -1"),
    ("[memory]\nkernel_memory_words_per_mac = 0\n",
     "memory.kernel_memory_words_per_mac must be a positive integer, got 0"),
    ("[array]\nmacs_per_cluster = 12\n",
     "array.macs_per_cluster must be a power of two, got 12"),
    ("[array]\nmax_macs_per_channel = 3\n",
     "array.max_macs_per_channel must be one of 1, 2, 4, 8, got 3"),
    ("[array]\nmax_kernel_size = 16\n",
     "array.max_kernel_size must be in 1..15, got 16"),
    ("[array]\nsm_word_pixels = 8\n",
     "array.sm_word_pixels must be 16 (the only supported value), got 8"),
    ("[dma]\nbandwidth_bytes_per_cycle = 0.0\n",
     "dma.bandwidth_bytes_per_cycle must be > 0, got 0.0"),
    ("[dma]\nlatency_cycles = -1\n",
     "dma.latency_cycles must be a non-negative integer, got -1"),
    ("[dma]\nbeat_bytes = 1\n",
     "dma.beat_bytes must be >= 2, got 1"),
    ("[dma]\nvalues_per_beat = 5\n",
     "dma.values_per_beat must fit in dma.beat_bytes (8) at 2 bytes per value, i.e. be <= 4, got 5"),
    ("[precision]\ntotal_bits = 8\n",
     "precision.total_bits must be 16 (only Q8.8 is supported), got 8"),
    ("[precision]\nfrac_bits = 4\n",
     "precision.frac_bits must be 8 (only Q8.8 is supported), got 4"),
    ("[memory]\npre_buffer_kib = 0\n",
     "memory.pre_buffer_kib must be > 0, got 0.0"),
    ("[memory]\noutput_buffer_kib = -8\n",
     "memory.output_buffer_kib must be > 0, got -8.0"),
    ("[memory]\ndecoder_fifo_kib = \"big\"\n",
     "memory.decoder_fifo_kib must be a number, got 'big'"),
    ("[memory]\nencoder_fifo_kib = 2e9\n",
     "memory.encoder_fifo_kib must be at most 1048576 KiB, got 2000000000.0"),
    ("[dma]\ninterface = \"dual\"\n",
     "dma.interface must be one of shared, separate, got 'dual'"),
    ("[array]\nhandoff_columns = 0\n",
     "array.handoff_columns must be a positive integer, got 0"),
    ("[energy]\ntech_node_nm = 65\n",
     "energy.tech_node_nm must be 28 or 45, got 65"),
    ("[energy]\ntech_node_nm = 28.0\n",
     "energy.tech_node_nm must be an integer, got 28.0"),
    ("[energy]\ndram_type = \"DDR5\"\n",
     "energy.dram_type must be one of LPDDR4, DDR4, HBM2, got 'DDR5'"),
    ("[energy]\ntable = 3\n",
     "energy.table must be a file path string (\"\" for the built-in table), got 3"),
    ("[energy]\nsram_subbank_kib = true\n",
     "energy.sram_subbank_kib must be an integer, got True"),
    ("name = \"\"\n",
     "name must be a non-empty string, got ''"),
    ("base = \"nullhp\"\n",
     "unknown preset 'nullhp' (did you mean 'nullhop'?); available presets: combined, dense, nullhop, nullhop-prefetch, rsnn"),
    ("base = 3\n",
     "base must be a preset name (one of combined, dense, nullhop, nullhop-prefetch, rsnn), got 3"),
    ("[dma\n",
     "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 5)"),
])
def test_file_error_messages(tmp_path, text, message):
    path = write(tmp_path, text)
    with raises(f"{path}: {message}"):
        load_config(path)


def test_invalid_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"name = \"\xff\"\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML: "):
        load_config(path)


def test_missing_file_message():
    with raises("configs/nope.toml: config file not found"):
        load_config("configs/nope.toml")


def test_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^.*: cannot read config file: "):
        load_config(tmp_path)


def test_unknown_preset_message():
    with raises("unknown preset 'nullhp' (did you mean 'nullhop'?); available presets: combined, dense, nullhop, nullhop-prefetch, rsnn"):
        get_preset("nullhp")
    with raises("unknown preset 'qqq'; available presets: combined, dense, nullhop, nullhop-prefetch, rsnn"):
        load_config("qqq")


@pytest.mark.parametrize("overrides, message", [
    ({"dma.bandwith_bytes_per_cycle": "4"},
     "unknown key 'dma.bandwith_bytes_per_cycle' (did you mean 'dma.bandwidth_bytes_per_cycle'?)"),
    ({"base": "nullhop"},
     "unknown key 'base' (valid keys are: name, array.<field>, memory.<field>, dma.<field>, "
     "precision.<field>, energy.<field>)"),
    ({"precision": "8"},
     "unknown key 'precision' (precision is a section; use precision.<field>, one of: "
     "total_bits, frac_bits)"),
    ({"dma.latency_cycles": "fifty"}, "dma.latency_cycles must be an integer, got 'fifty'"),
    ({"dma.latency_cycles": "5.0"}, "dma.latency_cycles must be an integer, got '5.0'"),
    ({"array.clock_mhz": "fast"}, "array.clock_mhz must be a number, got 'fast'"),
    ({"array.run_fc_on_accelerator": "yes"},
     "array.run_fc_on_accelerator must be a boolean (true or false), got 'yes'"),
    ({"array.macs_per_cluster": "12"}, "array.macs_per_cluster must be a power of two, got 12"),
    ({"dma.bandwidth_bytes_per_cycle": 0}, "dma.bandwidth_bytes_per_cycle must be > 0, got 0.0"),
    ({"dma.latency_cycles": True}, "dma.latency_cycles must be an integer, got True"),
    ({"precision.total_bits": "32"},
     "precision.total_bits must be 16 (only Q8.8 is supported), got 32"),
    ({"energy.tech_node_nm": "65"}, "energy.tech_node_nm must be 28 or 45, got 65"),
    ({"energy.dram_type": "lpddr4"},
     "energy.dram_type must be one of LPDDR4, DDR4, HBM2, got 'lpddr4'"),
    ({"energy.sram_subbank_kib": "-4"}, "energy.sram_subbank_kib must be a non-negative integer, got -4"),
])
def test_override_error_messages(overrides, message):
    with raises(message):
        with_overrides(AcceleratorConfig(), overrides)


@pytest.mark.parametrize("item", ["dma.latency_cycles", "=5", " =5", ""])
def test_parse_set_syntax_error(item):
    with raises(f"--set expects key=value, got {item!r}"):
        parse_set(["name=x", item])


def test_direct_construction_is_validated():
    with raises("array.macs_per_cluster must be a power of two, got 12"):
        AcceleratorConfig(array=ArrayConfig(macs_per_cluster=12))
    with raises("memory.input_memory_kib must be a positive integer, got -1"):
        AcceleratorConfig(memory=MemoryConfig(input_memory_kib=-1))
    with raises("dma.bandwidth_bytes_per_cycle must be > 0, got 0.0"):
        AcceleratorConfig(dma=DmaConfig(bandwidth_bytes_per_cycle=0.0))
    with raises("array must be an instance of ArrayConfig, got 5"):
        AcceleratorConfig(array=5)  # type: ignore[arg-type]


def test_error_type_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------------------
# Fuzzing: the loader only ever succeeds or raises ConfigError.
# ---------------------------------------------------------------------------

_KEYS = field_names()[1:]
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 32, 4096, 2**62]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))
_section_names = st.sampled_from(["array", "memory", "dma", "precision", "energy"])
_field_keys = st.one_of(
    st.sampled_from([k.partition(".")[2] for k in _KEYS]),
    st.text(min_size=1, max_size=12),
)
_plausible = st.one_of(
    st.sampled_from([0, 1, 2, 4, 7, 8, 16, 100, 512, 4096]),
    st.sampled_from([28, 45, "LPDDR4", "HBM2", "", "e.toml"]),
    st.sampled_from([0.5, 8.0, 500.0]),
    st.booleans(),
)
# Mostly-valid sections (known keys, plausible values) so that many documents load ...
_good_sections = {
    sec: st.dictionaries(st.sampled_from([k.partition(".")[2] for k in _KEYS if k.startswith(sec + ".")]),
                         st.one_of(*[_plausible] * 9, _values), max_size=4)
    for sec in ("array", "memory", "dma", "precision", "energy")
}
_good_docs = st.fixed_dictionaries({}, optional={
    **_good_sections,
    "base": st.sampled_from(["nullhop"] * 9 + ["nope"]),
    "name": st.one_of(*[st.text(min_size=1, max_size=8)] * 9, _scalars),
})
# ... and arbitrary ones, so that structural errors are exercised too.
_field_keys = st.one_of(
    st.sampled_from([k.partition(".")[2] for k in _KEYS]),
    st.text(min_size=1, max_size=12),
)
_sections = st.dictionaries(_field_keys, _values, max_size=5)
_wild_docs = st.dictionaries(
    st.one_of(_section_names, st.sampled_from(["base", "name"]), st.text(min_size=1, max_size=8)),
    st.one_of(_sections, _values, st.sampled_from(["nullhop", "nope"])),
    max_size=6,
)
_docs = st.one_of(_good_docs, _wild_docs)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_docs)
def test_fuzz_toml_documents(tmp_path, doc):
    path = write(tmp_path, to_toml(doc))
    try:
        cfg = load_config(path)
    except ConfigError:
        return
    assert isinstance(cfg, AcceleratorConfig)
    assert load_config(write(tmp_path, to_toml(config_to_dict(cfg)), "rt.toml")) == cfg


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_fuzz_raw_text(tmp_path, text):
    path = write(tmp_path, text)
    try:
        load_config(path)
    except ConfigError:
        pass


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=100))
def test_fuzz_raw_bytes(tmp_path, data):
    path = tmp_path / "b.toml"
    path.write_bytes(data)
    try:
        load_config(path)
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(overrides=st.dictionaries(
    st.one_of(st.sampled_from(field_names()), st.text(max_size=12)),
    st.one_of(_scalars, st.text(max_size=8)),
    max_size=4,
))
def test_fuzz_overrides(overrides):
    try:
        cfg = with_overrides(AcceleratorConfig(), overrides)
    except ConfigError:
        return
    assert isinstance(cfg, AcceleratorConfig)
