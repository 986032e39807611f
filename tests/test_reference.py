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
    "apps[].workloads[].rate_per_s", "apps[].workloads[].trace", "rollouts[].strategy",
    "rollouts[].at_s", "images.cache_mb", "fleet.hosts[].nic_mb_s",
])
def test_known_keys_appear(page: str, key: str) -> None:
    assert f"| `{key}` |" in page


def test_one_table_per_workload_kind(page: str) -> None:
    for kind in ("constant", "spiky", "diurnal", "replay", "jobs"):
        assert f'### `apps[].workloads[]` (kind = "{kind}")' in page
    assert "| `run.duration_s` | number | `3600` | > 0 | simulated time, s |" in page


def _rows(page: str) -> list[list[str]]:
    """Cells of every table row that documents a key or a column."""
    return [[c.strip() for c in line.strip("|").split(" | ")]
            for line in page.splitlines() if line.startswith("| `")]


def test_every_key_and_column_has_a_description(page: str) -> None:
    rows = _rows(page)
    assert len(rows) > 100
    empty = [row[0] for row in rows if not row[-1]]
    assert not empty, f"no description (a Field description in config.py or schema.py): {empty}"


def test_array_entries_show_their_key_paths_by_name(page: str) -> None:
    assert "`fleet.hosts.<type>.count` or `fleet.hosts[0].count`" in page
    assert "`apps.<name>.replicas` or `apps[0].replicas`" in page
    assert "`apps.<name>.workloads.<name>.rate_per_s`" in page


def test_guest_containers_describes_itself_not_the_host_runtime(page: str) -> None:
    (row,) = [r for r in _rows(page) if r[0] == "`hosting.vm.guest_containers`"]
    assert 'guest = "container"' in row[-1] and "[hosting.container]" not in row[-1]
