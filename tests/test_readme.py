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


def _shown_output(command: str) -> list[str]:
    """The lines the README shows a command printing (its ``text`` block after ``$ command``)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"```text\n\$ {re.escape(command)}\n(.*?)```", text, re.S)
    assert match, f"the README shows no output of {command!r}"
    return match[1].splitlines()


def test_the_readme_lists_the_experiments_fleet_sim_list_prints(capsys):
    from fleet_sim import cli

    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = _shown_output("fleet-sim list")
    # every line as printed but the folder, which is where fleet_sim is installed
    assert shown[:-1] == printed[:-1]
    assert printed[-1].endswith("/experiments; run one with: fleet-sim run NAME)")
    assert shown[-1] == "(…/experiments; run one with: fleet-sim run NAME)"


def test_the_readme_shows_what_fleet_sim_run_demo_prints(tmp_path, capsys):
    from fleet_sim import cli

    assert cli.main(["run", "demo", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = _shown_output("fleet-sim run demo")
    run_id = printed[0].split()[1]
    assert shown[0].split()[:2] == ["run", run_id]  # the same run: same config, same seed
    summary = shown.index("summary")
    assert shown[summary:] == printed[printed.index("summary"):]
