"""The tutorial notebook (docs/tutorial.py, paired with docs/tutorial.ipynb) runs from a fresh folder with this
environment's Python and shows the numbers the package gives directly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import rareshock

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "tutorial.py"
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

# appended to the notebook under test: what the test checks, read from the kernel's variables
PROBE = """
import json, sys
print(json.dumps({
    "python": sys.executable,
    "idle": [r.summary["us_auto_idle_plant_days"], more_reviewers.summary["us_auto_idle_plant_days"]],
    "monthly_exports": float(monthly["cn_magnet_exports_t"].sum()),
    "sql": by_reviewers.to_dict(orient="list"),
    "band": {k: list(map(int, v)) for k, v in band.items()},
    "draws": len(p.draws),
}))
"""


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_committed_notebook_is_the_jupytext_source_without_outputs():
    """docs/tutorial.ipynb is docs/tutorial.py converted (``jupytext --sync docs/tutorial.py`` after editing
    either), committed without outputs."""
    source = jupytext.read(SOURCE)
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert _cells(committed) == _cells(source), "run: jupytext --sync docs/tutorial.py"
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in committed.cells if c.cell_type == "code"
    )
    nbformat.validate(committed)


def test_tutorial_runs_and_shows_the_packages_numbers(tmp_path, monkeypatch):
    """Executed with nbclient in an empty folder, on a kernel of this environment's Python (a kernel spec in a
    temporary JUPYTER_PATH, ahead of any installed one): its run matches rareshock.run, its DuckDB query
    matches pandas over the sweep's runs.parquet, the posterior band is ordered."""
    from nbclient import NotebookClient

    kernels = tmp_path / "jupyter" / "kernels" / "rareshock-test"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rareshock test",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=120, kernel_name="rareshock-test", resources={"metadata": {"path": str(work)}})
    client.execute()
    out = json.loads(nb.cells[-1].outputs[0]["text"])

    assert Path(out["python"]).resolve() == Path(sys.executable).resolve()
    direct = rareshock.run("april_2025_shock", seed=1, scenario__end="2025-09-30")
    assert out["idle"][0] == direct.summary["us_auto_idle_plant_days"]
    assert out["monthly_exports"] == pytest.approx(float(direct.timeseries["cn_magnet_exports_t"].sum()), rel=1e-12)
    assert out["idle"][1] < out["idle"][0]  # 60 reviewers instead of 30: fewer idle plant-days (seed 1)

    sweep = work / "results" / "runs" / "tutorial_sweep"  # written under the notebook's folder, nowhere else
    assert sorted(p.name for p in work.iterdir()) == ["results"]
    runs = pd.read_parquet(sweep / "runs.parquet")
    assert len(runs) == 8 and (runs["status"] == "ok").all() and set(runs["sweep"]) == {"tutorial_sweep"}
    expected = runs.groupby("licensing.cn.reviewers")["us_auto_idle_plant_days"].mean()
    assert out["sql"]["reviewers"] == [15, 30, 60, 120] and out["sql"]["runs"] == [2, 2, 2, 2]
    assert out["sql"]["idle_plant_days"] == pytest.approx(expected.loc[[15, 30, 60, 120]].tolist(), rel=1e-12)

    assert out["draws"] == 10
    for low, median, high in out["band"].values():
        assert low <= median <= high
