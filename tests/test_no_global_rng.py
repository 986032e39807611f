"""Randomness only from named streams (docs/model.md §8): no global RNGs in the package."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fleet_sim"
FORBIDDEN = re.compile(r"^\s*(import random\b|from random import|.*np\.random\.seed\(|"
                       r".*np\.random\.(rand|randn|random|normal|exponential|choice)\()",
                       re.MULTILINE)


def test_package_draws_only_from_named_streams():
    offenders = [f"{p.relative_to(PACKAGE.parent)}: {m.group(0).strip()}"
                 for p in sorted(PACKAGE.rglob("*.py"))
                 for m in FORBIDDEN.finditer(p.read_text())]
    assert offenders == []
