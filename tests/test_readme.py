"""The README's example output is what the command prints, and its Python example runs."""
import re
from pathlib import Path

import pytest

from simulator import simulate

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str, lang: str = "") -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    m = re.compile(r"```" + lang + r"\n(.*?)```", re.S).search(text, start)
    assert m, f"no code block after {heading!r}"
    return m.group(1)


@pytest.mark.slow
def test_readme_vgg16_table_is_what_sparsesim_run_vgg16_prints():
    shown = _block_after("## What `sparsesim run vgg16` prints").rstrip("\n")
    assert shown == simulate("vgg16", "nullhop").format_table()


def test_readme_quick_start_has_exactly_two_commands():
    quick = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("The same from Python", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert len(commands) == 2
    assert commands[0].strip().endswith("sparsesim run vgg16")
    assert commands[1].strip().endswith("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1].strip() in ci             # CI runs the README's test command verbatim


def test_readme_python_example_runs(monkeypatch, capsys):
    code = _block_after("The same from Python", "python")
    assert 'simulate("vgg16", "nullhop")' in code
    # Same lines on a small network (the VGG16 run itself is checked above).
    exec(compile(code.replace('"vgg16"', '"facedet"'), "README.md", "exec"), {})  # our own file, not user input
    out = capsys.readouterr().out
    assert "facedet on nullhop" in out
