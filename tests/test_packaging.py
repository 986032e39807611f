"""A wheel built from the checkout works on its own: installed in a fresh venv, run from
an empty folder, it lists and runs the shipped experiments (package data, not the
repository's ``experiments/`` folder) and carries every module of ``fleet_sim/``.

The fresh venv gets the test environment's third-party packages through a ``.pth``
line (no network); a ``.pth`` line only extends ``sys.path``, so the editable
install's own ``.pth`` hook is not run and its ``fleet_sim`` cannot leak in (asserted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from fleet_sim.results import store

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "fleet_sim", "experiments")
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.toml"))
TIMEOUT_S = 120


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, f"{cmd}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def _package_files(root: Path, pattern: str = "*") -> set[str]:
    """Files below ``root`` (relative paths), without bytecode caches."""
    return {str(p.relative_to(root)) for p in root.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, its site-packages, subprocess environment) with the wheel in."""
    tmp = tmp_path_factory.mktemp("packaging")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["MPLBACKEND"] = "Agg"
    # build from a copy of the checkout: no build/ or egg-info state of the working tree
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--quiet", "-w", tmp / "wheel", src], tmp, env)
    (wheel,) = (tmp / "wheel").glob("fleet_sim-*.whl")

    prefix = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(prefix)
    bin_dir = prefix / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, env).stdout.strip())
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel],
         tmp, env)
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "zz_test_environment.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return bin_dir, site, env


def test_the_wheel_provides_fleet_sim_itself_not_the_editable_checkout(installed):
    bin_dir, site, env = installed
    out = _run([bin_dir / "python", "-c", "import fleet_sim; print(fleet_sim.__file__)"],
               site, env)
    assert Path(out.stdout.strip()).is_relative_to(site / "fleet_sim")


def test_the_wheel_holds_every_file_of_the_package_and_every_scenario_file(installed):
    _, site, _ = installed
    package = site / "fleet_sim"
    missing = _package_files(ROOT / "fleet_sim") - _package_files(package)
    assert not missing, ("not in the wheel (pyproject.toml: [tool.setuptools] packages, "
                         f"or package-data): {sorted(missing)}")
    shipped = _package_files(package / "experiments", "*.toml")
    assert shipped == {f"{name}.toml" for name in EXPERIMENTS}
    drivers = _package_files(ROOT / "experiments", "*/*.py")
    assert drivers and drivers <= _package_files(package / "experiments")


def test_from_an_empty_folder_list_shows_every_experiment_and_demo_runs(installed, tmp_path):
    bin_dir, site, env = installed
    listed = _run([bin_dir / "fleet-sim", "list"], tmp_path, env).stdout
    names = [line.split()[0] for line in listed.splitlines()[:len(EXPERIMENTS)]]
    assert names == EXPERIMENTS
    assert str(site / "fleet_sim" / "experiments") in listed

    _run([bin_dir / "fleet-sim", "run", "demo", "--set", "run.duration_s=300", "-q"],
         tmp_path, env)
    (manifest,) = tmp_path.rglob(store.MANIFEST)
    assert store.read_manifest(manifest.parent)["status"] == store.OK


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_shipped_experiment_validates_from_the_wheel(installed, tmp_path, name):
    bin_dir, site, env = installed
    out = _run([bin_dir / "fleet-sim", "validate", name], tmp_path, env).stdout
    assert out.startswith(f"ok: {site / 'fleet_sim' / 'experiments' / name}.toml: ")
