"""The README's Python snippet runs, and its commands are the ones CI and users need."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_commands_at_top():
    bash = _blocks("bash")
    assert bash[0].strip() == (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
        "pnp deblur --demo --denoiser rk-averaged --out restored.png --report report.json"
    )
    assert bash[1].strip() == 'pip install -e ".[dev]" && python -m pytest -q'
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci


def test_readme_python_snippet_runs(capsys):
    snippet = _blocks("python")[0]
    namespace: dict = {}
    exec(compile(snippet, str(README), "exec"), namespace)
    result = namespace["result"]
    assert result.iterations >= 1 and result.x.shape == (1, 1, 64, 64)
    assert "guarantee" in capsys.readouterr().out
