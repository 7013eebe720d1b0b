"""Every notebook runs top to bottom on a small data set; they are committed executed, with outputs.

``python notebooks/execute.py`` runs them at full size and stores the outputs.
"""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: What each notebook must print and write (beyond its own asserts, which fail the run).
EXPECTED = {
    "01_quickstart.ipynb": ("max |served - in-memory|", "export/quickstart/1/saved_model.pb"),
    "02_features.ipynb": ("best click AUC", None),
    "03_architectures.ipynb": ("oracle", None),
    "04_task_balancing.ipynb": ("click/gauc", None),
    "06_census_income.ipynb": ("paper income", None),
    "05_export_and_serve.ipynb": ('{"predictions": [', "export/serving_demo/1/saved_model.pb"),
    "07_distill_and_cold_start.ipynb": ("share of the gap closed", "export/student/1/saved_model.pb"),
    "08_training_over_time.ipynb": ("warm start - full retrain", "export/daily/2/saved_model.pb"),
}
#: The test's data size (TFMTL_NOTEBOOK_ROWS): small, and large enough for each notebook's own asserts.
ROWS = {"02_features.ipynb": 15_000, "04_task_balancing.ipynb": 15_000, "06_census_income.ipynb": 15_000,
        "07_distill_and_cold_start.ipynb": 6_000, "08_training_over_time.ipynb": 10_000}


def test_every_notebook_has_expectations():
    assert sorted(EXPECTED) == [p.name for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_executed_without_errors(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), f"{path.name} has cells that were not run"
    assert any(cell.outputs for cell in code), f"{path.name} has no stored outputs"
    errors = [out for cell in code for out in cell.outputs if out.get("output_type") == "error"]
    assert not errors, f"{path.name} stores an error output: {errors[0].get('ename')}"
    printed, _ = EXPECTED[path.name]
    stored = "".join(out.get("text", "") for cell in code for out in cell.outputs)
    assert printed in stored, f"{path.name}'s stored outputs lack {printed!r}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TFMTL_NOTEBOOK_ROWS", str(ROWS.get(path.name, 30_000)))
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)  # the notebook's `import tfmtl` must set it
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
    )
    printed, written = EXPECTED[path.name]
    assert printed in outputs
    if written:
        assert (tmp_path / written).exists()
