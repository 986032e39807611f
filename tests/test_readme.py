"""The README's Python API snippet works as written, saved as a script and run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The Python API"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has no python code block"
    return match[1]


def test_the_readme_api_snippet_runs_as_a_script_without_a_main_guard(tmp_path):
    snippet = _api_snippet()
    assert "__main__" not in snippet  # the point: a script as a new user saves it
    script = tmp_path / "tour.py"
    script.write_text(snippet + "\nprint('runs:', len(runs))\n", encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env={"MPLBACKEND": "Agg", "PATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "runs: 9" in out.stdout
    assert "freeze_support" not in out.stderr and "BrokenProcessPool" not in out.stderr
