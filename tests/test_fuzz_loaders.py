"""Hypothesis fuzzing of the two file loaders.

Property: whatever the input, ``load_config`` either returns an ``AcceleratorConfig``
or raises ``ConfigError``, and ``load_trace`` either returns a ``Trace`` or raises
``TraceError``; no other exception escapes. ``tests/test_config.py`` already fuzzes
flat TOML documents and raw text; this file adds every TOML value type (nested and
inline tables, arrays of tables, dates and times, huge integers, inf/nan),
mutations of the bundled presets, arbitrary path/preset strings and ``--set``
strings, and, for traces, mutated and truncated archives and archives built from
arbitrary keys and arrays.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from simulator import AcceleratorConfig, field_names, load_config, parse_set, with_overrides
from workloads import TRACE_FORMAT, Trace, get_network, load_trace
from workloads import ConfigError, SparsesimError, TraceError

def _fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ====================================================================== config
_FIELDS = field_names()[1:]
_SECTIONS = sorted({k.partition(".")[0] for k in _FIELDS})
_LEAVES = {sec: [k.partition(".")[2] for k in _FIELDS if k.startswith(sec + ".")] for sec in _SECTIONS}

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10)
_scalar = st.one_of(
    st.booleans(),
    st.integers(),                                                   # unbounded: tomllib accepts huge ints
    st.sampled_from([0, 1, 2, 3, 8, 16, 128, 4096, -1, 2**63, 10**400]),
    st.floats(),                                                     # includes inf, -inf, nan
    _text,
    st.sampled_from(["nullhop", "dense", "LPDDR4", "HBM2", "", "8", "true"]),
    st.dates(min_value=dt.date(1, 1, 1)),
    st.times(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(dt.timezone.utc))),
)
_value = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(_text, st.sampled_from(sum(_LEAVES.values(), []))), inner, max_size=3)),
    max_leaves=8)


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (dt.date, dt.time)):          # datetime is a date
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


_plausible = st.sampled_from([0, 1, 2, 4, 7, 8, 16, 28, 45, 100, 512, 4096, 0.5, 8.0, 500.0, True, False, "",
                              "LPDDR4", "HBM2", "nullhop", "rsnn", "combined", "dense"])
_field_value = st.one_of(*[_plausible] * 4, _value)


def _mostly(draw, common, rare):
    return draw(rare) if draw(st.integers(0, 9)) == 0 else draw(common)


@st.composite
def _documents(draw) -> str:
    """A TOML document: sections as ``[headers]``, inline tables, dotted keys or arrays of tables.

    Keys are mostly real (so documents get past the key checks to the value checks), with
    some unknown ones; values are mostly plausible, with some of every other TOML type.
    """
    lines = []
    if draw(st.booleans()):
        lines.append(f"base = {_toml_value(_mostly(draw, st.sampled_from(['nullhop', 'rsnn']), _scalar))}")
    if draw(st.booleans()):
        lines.append(f"name = {_toml_value(_mostly(draw, _text.filter(str.strip), _scalar))}")
    if draw(st.integers(0, 9)) == 0:
        lines.append(f"{_key(draw(_text.filter(bool)))} = {_toml_value(draw(_value))}")
    sections = draw(st.lists(st.sampled_from(_SECTIONS), max_size=4, unique=True))
    if draw(st.integers(0, 9)) == 0:
        sections.append(draw(_text.filter(lambda t: t and t not in _SECTIONS + ["base", "name"])))
    for sec in sections:
        leaves = st.sampled_from(_LEAVES.get(sec, ["x"]))
        body = {}
        for _ in range(draw(st.integers(0, 4))):
            body[_mostly(draw, leaves, _text.filter(bool))] = draw(_field_value)
        style = _mostly(draw, st.sampled_from(["header", "inline", "dotted"]), st.just("array-of-tables"))
        if style == "inline":
            lines.append(f"{_key(sec)} = {_toml_value(body)}")
        elif style == "dotted":
            lines += [f"{_key(sec)}.{_key(k)} = {_toml_value(v)}" for k, v in body.items()]
        else:
            head = f"[[{_key(sec)}]]" if style == "array-of-tables" else f"[{_key(sec)}]"
            lines.append(head)
            lines += [f"{_key(k)} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def _only_config_errors(path_or_preset) -> None:
    try:
        cfg = load_config(path_or_preset)
    except ConfigError:
        return
    assert isinstance(cfg, AcceleratorConfig)


@_fuzz(250)
@given(doc=_documents())
def test_fuzz_config_documents_with_every_toml_type(tmp_path, doc):
    path = tmp_path / "accel.toml"
    path.write_text(doc, encoding="utf-8")
    _only_config_errors(path)


_PRESETS = {p.name: p.read_bytes() for p in resources.files("dataflows").joinpath("presets").iterdir()
            if p.name.endswith(".toml")}


@st.composite
def _mutated(draw, originals: dict[str, bytes]) -> bytes:
    data = bytearray(originals[draw(st.sampled_from(sorted(originals)))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "overwrite"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del data[i:]
        else:
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[i:i + len(chunk)] = chunk
    return bytes(data)


@_fuzz(250)
@given(data=_mutated(_PRESETS))
def test_fuzz_config_mutated_presets(tmp_path, data):
    path = tmp_path / "accel.toml"
    path.write_bytes(data)
    _only_config_errors(path)


@_fuzz(200)
@given(name=st.text(max_size=30))
def test_fuzz_config_path_or_preset_strings(tmp_path, monkeypatch, name):
    assume(not any(s in name for s in ("/dev", "/proc", "/sys")))   # never read device files
    monkeypatch.chdir(tmp_path)
    _only_config_errors(name)


_set_values = st.one_of(
    _text,
    st.sampled_from(["8", " 8 ", "0", "-1", "1e400", "nan", "inf", "8.0", "0x10", "8_0", "true", "False", "", "="]),
    st.integers().map(str), st.floats().map(repr),
)


@settings(max_examples=250, deadline=None)
@given(items=st.lists(st.tuples(st.sampled_from(field_names()) | _text, _set_values)
                      .map(lambda kv: f"{kv[0]}={kv[1]}") | _text, max_size=4))
def test_fuzz_set_overrides(items):
    try:
        cfg = with_overrides(AcceleratorConfig(), parse_set(items))
    except ConfigError:
        return
    assert isinstance(cfg, AcceleratorConfig)


# ====================================================================== traces
_NET = get_network("facedet")


def _archive(arrays: dict, *, compressed: bool = False, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, allow_pickle=allow_pickle, **arrays)
    return buf.getvalue()


def _valid_arrays() -> dict:
    rng = np.random.default_rng(0)
    out = {"format": np.array(TRACE_FORMAT), "network": np.array("facedet"),
           "image": rng.integers(-300, 300, _NET.input_shape).astype(np.int16)}
    for layer in _NET.layers:
        if layer.op in ("conv", "fc"):
            out[f"weights/{layer.name}"] = rng.integers(-50, 50, layer.weight_shape).astype(np.int16)
            out[f"bias/{layer.name}"] = rng.integers(-50, 50, layer.out_channels).astype(np.int16)
    out["input/conv2"] = rng.integers(0, 100, _NET.layer("conv2").in_shape).astype(np.int16)
    return out


_GOOD = {"stored": _archive(_valid_arrays()), "deflated": _archive(_valid_arrays(), compressed=True)}


@pytest.mark.parametrize("kind", sorted(_GOOD))
def test_the_unmutated_archives_load(tmp_path, kind):
    trace = load_trace(_write(tmp_path, _GOOD[kind]), _NET)
    assert isinstance(trace, Trace) and set(trace.weights) == {"conv1", "conv2", "ip1", "ip2"}


def _write(d: Path, data: bytes) -> Path:
    path = d / "trace.npz"
    path.write_bytes(data)
    return path


def _only_trace_errors(path: Path, network) -> None:
    try:
        trace = load_trace(path, network)
    except TraceError:
        return
    assert isinstance(trace, Trace)


@_fuzz(300)
@given(data=_mutated(_GOOD), validate=st.booleans())
def test_fuzz_trace_mutated_archives(tmp_path, data, validate):
    _only_trace_errors(_write(tmp_path, data), _NET if validate else None)


@_fuzz(100)
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b)))
def test_fuzz_trace_random_bytes(tmp_path, data):
    _only_trace_errors(_write(tmp_path, data), _NET)


_DTYPES = st.sampled_from([np.int16] * 6 + [np.int8, np.uint8, np.int32, np.int64, np.uint16, np.float16,
                                             np.float32, np.float64, np.bool_, np.complex64, "U3", "S3",
                                             "datetime64[s]", "timedelta64[ms]", [("a", "<i2"), ("b", "<f4")],
                                             ">i2"])
_array = _DTYPES.flatmap(lambda d: hnp.arrays(np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=4, max_side=4)))
_object_array = st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), min_size=1, max_size=3).map(
    lambda xs: np.array(xs + [None], dtype=object))
_names = st.one_of(
    st.sampled_from(["image", "format", "network"] + [f"{k}/{l.name}" for k in ("weights", "bias", "input")
                                                      for l in _NET.layers] + ["weights/", "weights/nope", "misc", "saturated/", "saturated/weights/conv1"]),
    st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
)
def _expected_shape(key: str):
    kind, _, name = key.partition("/")
    if kind == "image":
        return tuple(_NET.input_shape)
    layer = _NET.layer(name)
    return {"weights": layer.weight_shape, "bias": (layer.out_channels,), "input": tuple(layer.in_shape)}[kind]


_KNOWN_KEYS = ["image"] + [f"{k}/{l.name}" for k in ("weights", "bias", "input") for l in _NET.layers
                           if l.op in ("conv", "fc")]
# Mostly arrays a trace could hold (right key, right shape, int16, maybe off by one dimension), some
# arbitrary ones, and rarely an object array: every check of the loader gets reached.
_exact = st.sampled_from(_KNOWN_KEYS).flatmap(lambda k: st.tuples(st.just(k), hnp.arrays(
    np.int16, st.sampled_from([_expected_shape(k), _expected_shape(k)[:-1], (*_expected_shape(k), 1)]))))
_known_any_shape = st.sampled_from(_KNOWN_KEYS).flatmap(lambda k: st.tuples(st.just(k), hnp.arrays(
    np.int16, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4))))


def _pick(*weighted):
    """``(weight, strategy)`` pairs -> a strategy drawing from each with that weight (one_of is uniform)."""
    table = [strat for w, strat in weighted for _ in range(w)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


_entry = _pick((4, _exact), (2, _known_any_shape), (3, st.tuples(_names, _array)), (1, st.tuples(_names, _object_array)))
_header = st.fixed_dictionaries({}, optional={
    "format": _pick((12, st.just(np.array(TRACE_FORMAT))), (2, _array), (1, _object_array)),
    "network": _pick((12, st.just(np.array("facedet"))), (1, st.just(np.array("vgg16"))), (2, _array)),
})


@_fuzz(300)
@given(header=_header, entries=st.lists(_entry, max_size=5), base=st.booleans(), compressed=st.booleans(),
       validate=st.booleans())
def test_fuzz_trace_archives_of_arbitrary_arrays(tmp_path, header, entries, base, compressed, validate):
    content = {**(_valid_arrays() if base else {}), **header, **dict(entries)}
    if "format" not in header and not base and entries:
        content.setdefault("format", np.array(TRACE_FORMAT))
        content.setdefault("network", np.array("facedet"))
    try:
        data = _archive(content, compressed=compressed, allow_pickle=True)   # writing may pickle; loading never
    except Exception:   # numpy cannot write some key/array combinations; not the loader's concern
        assume(False)
    _only_trace_errors(_write(tmp_path, data), _NET if validate else None)


def test_loader_errors_are_the_documented_types():
    """The property above is worth something only if the types are what the docs promise."""
    assert issubclass(ConfigError, SparsesimError) and issubclass(TraceError, SparsesimError)
    assert not issubclass(ConfigError, TraceError) and not issubclass(TraceError, ConfigError)
