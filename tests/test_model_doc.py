"""Citations of the model documentation point at sections that exist: every
``docs/model.md §N`` (or ``§N.M``) in the code, tests, experiments and README names a
numbered heading of docs/model.md, and nothing cites notes outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "docs" / "model.md"
CITATION = re.compile(r"docs/model\.md((?:[ ,;–-]*§\d+(?:\.\d+)?)+)")
SOURCES = [*(ROOT / "fleet_sim").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
           *(ROOT / "experiments").rglob("*.py"), *(ROOT / "experiments").glob("*.toml"),
           ROOT / "README.md", ROOT / "pyproject.toml"]


def _sections() -> set[str]:
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", MODEL.read_text(encoding="utf-8"),
                          re.MULTILINE))


def test_every_citation_names_a_section_of_the_model_doc():
    sections = _sections()
    assert {"1", "2", "2.1", "2.5", "3.2", "8", "9.2"} <= sections
    cited: dict[str, list[str]] = {}
    for path in SOURCES:
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for number in re.findall(r"§(\d+(?:\.\d+)?)", match[1]):
                cited.setdefault(number, []).append(str(path.relative_to(ROOT)))
    assert len(cited) >= 8
    missing = {n: files for n, files in cited.items() if n not in sections}
    assert not missing, f"cited sections that docs/model.md does not have: {missing}"


def test_nothing_cites_design_or_style_notes_outside_the_repository():
    here = {Path(__file__), ROOT / "tests" / "test_help.py"}
    citing = [str(p.relative_to(ROOT)) for p in SOURCES
              if p not in here and re.search(r"\b(DESIGN|STYLE §)", p.read_text(encoding="utf-8"))]
    assert not citing
