"""Golden results: every zoo network on every preset gives exactly the recorded numbers.

``tests/golden/results.json.gz`` was recorded with ``tests/golden/record.py``
before the code was reorganised into plug-in dataflows; every per-layer
cycle count, unit counter, DRAM byte, action count and energy figure must
stay identical. A new preset that is not in the fixture is not checked here.
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import record  # noqa: E402

GOLDEN = json.loads(gzip.decompress(record.FIXTURE.read_bytes()))


def _diff(want, got, path="") -> str | None:
    """First difference between the recorded value and the new one (new keys are allowed)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: {want!r} became {got!r}"
        for k, v in want.items():
            if k not in got:
                return f"{path}.{k}: missing"
            d = _diff(v, got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path}: {want!r} became {got!r}"
        for i, (a, b) in enumerate(zip(want, got)):
            d = _diff(a, b, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if want == got and type(want) is type(got) else f"{path}: {want!r} became {got!r}"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_results_match_the_golden_fixture(case):
    network, preset, mode = case.split("/")
    got = json.loads(json.dumps(record.run_case(network, preset, mode)))
    diff = _diff(GOLDEN[case], got, case)
    assert diff is None, diff


def test_the_fixture_covers_every_zoo_network_on_the_recorded_presets():
    from simulator import list_presets
    from workloads import list_networks

    nets = {c.split("/")[0] for c in GOLDEN}
    presets = {c.split("/")[1] for c in GOLDEN}
    assert nets == set(list_networks())
    assert presets == set(list_presets()) == {"dense", "nullhop", "rsnn", "combined", "nullhop-prefetch"}
    assert len(GOLDEN) == len(nets) * len(presets) * len(record.MODES)
