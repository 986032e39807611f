"""The committed reference page is generated from the config models and the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sim.results import schema
from fleet_sim.scenarios.reference import reference_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


@pytest.fixture(scope="module")
def page() -> str:
    return reference_markdown()


def test_committed_page_is_up_to_date(page: str) -> None:
    committed = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    assert committed == page, "run python -m fleet_sim.scenarios.reference > docs/reference.md"


def test_deterministic(page: str) -> None:
    assert reference_markdown() == page


def test_every_column_appears(page: str) -> None:
    for table in schema.TABLES.values():
        assert f"### `{table.name}`" in page
        for column in table.columns:
            assert f"| `{column.name}` | {column.dtype} |" in page, (table.name, column.name)
    for column in schema.RUN_COLUMNS:
        assert f"| `{column.name}` | {column.dtype} |" in page


@pytest.mark.parametrize("key", [
    "run.duration_s", "run.record", "hosting.mode", "hosting.vm.boot_s",
    "fleet.hosts[].cores", "fleet.hosts[].power.idle_w", "apps[].replicas",
    "apps[].workloads[].rate_per_s", "apps[].workloads[].trace", "rollout.strategy",
])
def test_known_keys_appear(page: str, key: str) -> None:
    assert f"| `{key}` |" in page


def test_one_table_per_workload_kind(page: str) -> None:
    for kind in ("constant", "spiky", "diurnal", "replay", "jobs"):
        assert f'### `apps[].workloads[]` (kind = "{kind}")' in page
    assert "| `run.duration_s` | number | `3600` | > 0 | simulated time, s |" in page
