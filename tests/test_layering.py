"""The layout rules: one-way imports, public faces only, a self-contained tree.

* Imports flow workloads -> dataflows -> simulator: no package imports one above it.
* No module imports another package's ``_private`` module or another module's
  ``_private`` name (a package's own ``__init__`` may gather its private modules).
* The tree cites no path outside the repository, no machine path, no issue number.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workloads", "dataflows", "simulator")
RANK = {name: i for i, name in enumerate(PACKAGES)}
CODE = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _package_of(path: Path) -> str:
    """Dotted name of the package that contains ``path``."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def _imports(path: Path):
    """(absolute module imported, names taken from it) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = _package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, tuple(a.name for a in node.names)


def _violations(path: Path) -> list[str]:
    out = []
    own_pkg = _package_of(path)
    own_top = own_pkg.split(".")[0]
    for mod, names in _imports(path):
        top = mod.split(".")[0]
        if top in RANK and own_top in RANK and RANK[top] > RANK[own_top]:
            out.append(f"{own_top} imports {mod} (imports flow workloads -> dataflows -> simulator)")
        parts = mod.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                home = ".".join(parts[:i])          # the package that owns the private module
                if home != own_pkg:
                    out.append(f"imports private module {mod} of package {home}")
                break
        else:
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    out.append(f"imports private name {name} from {mod}")
        # A sibling package's private module named through a plain "from pkg import _mod".
        for name in names:
            if name.startswith("_") and not name.startswith("__") and mod != own_pkg and top in RANK:
                out.append(f"imports private {name} from {mod}")
    return sorted(set(out))


def test_the_checker_sees_the_whole_tree():
    names = {_module_of(p) for p in CODE}
    assert {"dataflows._protocol", "dataflows.nullhop_prefetch", "simulator.oracle._clocked",
            "simulator.engine._timing", "workloads._onnx"} <= names


@pytest.mark.parametrize("path", CODE, ids=[str(p.relative_to(ROOT)) for p in CODE])
def test_no_upward_or_private_imports(path):
    assert _violations(path) == []


def test_the_checker_catches_what_it_looks_for(tmp_path, monkeypatch):
    fake = ROOT / "dataflows" / "_layering_probe.py"
    fake.write_text("from simulator import simulate\nfrom workloads._errors import ConfigError\n"
                    "from ._accelerator import AcceleratorConfig\nfrom workloads._synthetic import _crop_resize\n"
                    "from .nullhop import _hidden\n")
    try:
        found = _violations(fake)
    finally:
        fake.unlink()
    assert any("dataflows imports simulator" in f for f in found)
    assert any("private module workloads._errors" in f for f in found)
    assert any("private module workloads._synthetic" in f for f in found)
    assert any("private name _hidden" in f for f in found)
    assert not any("_accelerator" in f for f in found)      # a package's own private module is fine


# ------------------------------------------------------------------ self-contained tree
# Built from pieces so that this file does not itself hold the paths it forbids.
_OUTSIDE = "|".join(re.escape(p) for p in ("/" + "work/", "/" + "root/", "shared" + "/reference"))
_FORBIDDEN = [
    (re.compile(_OUTSIDE + r"|/home/\w+"), "a path outside the repository"),
    (re.compile(r"\bissue\s*#?\d+|#\d+\b(?!\s*[,)])"), "an issue number"),
    (re.compile(r"\bthis build\b|\bthe build has\b", re.I), "a note on how the project was built"),
    (re.compile(r"\b(nullhop|energy|sparsity|rsnn|peers)\.md §"), "a citation of a reference file outside the repository"),
]


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:   # not a checkout (e.g. an sdist): every text file
        files = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()]
    else:
        files = out.stdout.splitlines()
    keep = (".py", ".md", ".toml", ".ipynb", ".cfg", ".txt")
    return [ROOT / f for f in files if f.endswith(keep) and not f.startswith(".") and (ROOT / f).is_file()]


def test_the_tree_speaks_of_the_project_only():
    bad = []
    for path in _tracked_text_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for pattern, what in _FORBIDDEN:
                if pattern.search(line):
                    bad.append(f"{path.relative_to(ROOT)}:{i}: {what}: {line.strip()[:100]}")
    assert bad == [], "\n".join(bad)


def test_every_cited_source_section_exists_in_docs_sources():
    headings = set(re.findall(r"^#+ (§[NESRP][0-9.]*[0-9])", (ROOT / "docs" / "sources.md").read_text(), re.M))
    cited = set()
    for path in _tracked_text_files():
        cited.update(re.findall(r"sources\.md[^§\n]{0,3}(§[NESRP][0-9.]*[0-9])", path.read_text(errors="replace")))
    assert cited and cited <= headings, sorted(cited - headings)
