"""Golden outputs: a tiny seeded variant of every shipped experiment.

Each experiment in ``experiments/`` is run small (short, few hosts and replicas) with a
fixed seed; the numeric columns of its one-row summary must match
``tests/golden/<name>.json``. The simulator is deterministic for a seed, so the
tolerance only guards float formatting. A missing golden file fails: the files are
written only when ``FLEET_SIM_UPDATE_GOLDEN=1`` is set (and are then read back and
compared, so an update run still checks the round trip). NaN is stored as ``null``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

import fleet_sim as fs

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("FLEET_SIM_UPDATE_GOLDEN") == "1"
SEED = 3
IDENTIFIERS = {"run_id", "seed", "replication"}
"""Summary columns that name the run rather than measure it."""

TINY: dict[str, dict[str, object]] = {
    "demo": {"run.duration_s": 600, "run.warmup_s": 120, "fleet.hosts.std.count": 2,
             "apps.web.replicas": 2, "apps.batch.replicas": 1, "apps.cache.replicas": 1},
    "noisy_neighbor": {"run.duration_s": 1000, "run.warmup_s": 700, "apps.batch.replicas": 1},
    "density": {"run.duration_s": 900, "run.warmup_s": 700, "fleet.hosts.std.count": 2,
                "apps.large.replicas": 1, "apps.medium.replicas": 4,
                "apps.small-a.replicas": 4, "apps.small-b.replicas": 4},
    "rollout": {"fleet.hosts.host.count": 8, "apps.web.replicas": 8,
                "apps.batch.replicas": 8, "apps.web.workloads.requests.rate_per_s": 16},
    "image_distribution": {"fleet.hosts.host.count": 8, "apps.web.replicas": 8,
                           "rollouts.web.distribution": "p2p"},
    "consolidation": {"traces.vms": 40, "fleet.hosts.g4.count": 15,
                      "fleet.hosts.g5.count": 15, "run.duration_s": 7200},
    "fleet_consolidation": {"run.duration_s": 1500, "fleet.hosts.std.count": 4,
                            "apps.web.replicas": 6, "apps.cache.replicas": 2},
}
"""The ``--set`` overrides that make each experiment run in about a second."""


def _metrics(res: fs.Results) -> dict[str, float | None]:
    """The numeric columns of the run's one-row summary, its rollout's if it has one
    (NaN as None)."""
    rollout = "rollout_summary" in res.manifest["tables"]
    summary = res.rollout_summary if rollout else res.summary
    assert len(summary) == 1, f"expected a one-row summary, got {len(summary)} rows"
    row = summary.iloc[0]
    out: dict[str, float | None] = {}
    for name, value in row.items():
        if name in IDENTIFIERS or isinstance(value, str | bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        out[str(name)] = None if math.isnan(number) else number
    return out


def _compare(name: str, actual: dict[str, float | None],
             golden: dict[str, float | None]) -> None:
    missing = sorted(set(golden) - set(actual))
    extra = sorted(set(actual) - set(golden))
    assert not missing and not extra, (
        f"{name}: summary metrics differ from tests/golden/{name}.json: "
        f"missing {missing}, extra {extra} (rerun with FLEET_SIM_UPDATE_GOLDEN=1 if intended)")
    wrong = {}
    for key, expected in golden.items():
        got = actual[key]
        if expected is None or got is None:
            if expected is not got:
                wrong[key] = (expected, got)
        elif got != pytest.approx(expected, rel=1e-9, abs=1e-12):
            wrong[key] = (expected, got)
    assert not wrong, (
        f"{name}: metrics differ from tests/golden/{name}.json (golden, actual): {wrong} "
        f"(rerun with FLEET_SIM_UPDATE_GOLDEN=1 if the change is intended)")


def test_every_shipped_experiment_has_a_golden_variant():
    shipped = {p.stem for p in (Path(__file__).resolve().parents[1] / "experiments").glob("*.toml")}
    assert shipped == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_golden_summary(name, tmp_path):
    res = fs.run(name, seed=SEED, set=TINY[name], out=tmp_path, progress=False)
    actual = _metrics(res)
    assert actual, f"{name}: the summary has no numeric metrics"
    path = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert path.exists(), (
        f"{name}: no golden file {path}; generate it with FLEET_SIM_UPDATE_GOLDEN=1")
    golden = json.loads(path.read_text())
    _compare(name, actual, golden)
