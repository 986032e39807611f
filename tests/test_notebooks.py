"""The notebooks in notebooks/ are committed without outputs and run top to bottom.

Each is executed with nbclient on the ``python3`` kernel of this environment, shrunk
by ``FLEET_SIM_QUICK=1`` (each then takes well under a minute on a laptop). A cell
that raises fails the test; so does a warning printed by any cell, and a notebook
that draws no figure.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ("01_quickstart", "02_contention", "03_density_and_rollout", "04_sweeps")
#: per-cell limit (s): generous, for a loaded CI machine; the notebooks are sized far below
CELL_TIMEOUT_S = 600


def notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_four_notebooks_are_there():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_committed_without_outputs(name):
    nb = notebook(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_SIM_QUICK", "1")
    # the kernel picks its backend as in Jupyter (`%matplotlib inline`), not the suite's Agg
    monkeypatch.delenv("MPLBACKEND", raising=False)
    # the notebooks store their runs in tempfile folders: keep them in this test's folder
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = notebook(name)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    warnings = [o.text for o in outputs
                if o.output_type == "stream" and o.name == "stderr" and "Warning" in o.text]
    assert warnings == []
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
