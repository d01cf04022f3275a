"""The package face of rareshock: shipped experiments found by name, ``rareshock list``, ``--version`` and the
Python API (``rareshock.run``). The wheel installed outside the checkout is tested in test_wheel.py."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rareshock
from rareshock.cli import main
from rareshock.model.config import ConfigError
from rareshock.resources import KINDS, catalogue, event_kinds, experiments_dir, locate, shipped_file

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["--set", "scenario.end=2025-06-30"]


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rareshock: error: ") and "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------------------------------
# The resolver
# --------------------------------------------------------------------------------------------------
def test_shipped_experiments_are_the_checkouts_files() -> None:
    assert experiments_dir().resolve() == (ROOT / "experiments").resolve()


@pytest.mark.parametrize(
    ("kind", "name", "file"),
    [
        ("scenario", "april_2025_shock", "scenarios/april_2025_shock.toml"),
        ("scenario", "baseline_2024", "scenarios/baseline_2024.toml"),
        ("sweep", "buffer_x_reviewers", "sweeps/buffer_x_reviewers.toml"),
        ("comparison", "policy_paths", "comparisons/policy_paths.toml"),
        ("calibration", "april_2025", "calibration/april_2025.toml"),
    ],
)
def test_names_resolve_to_shipped_files(kind: str, name: str, file: str) -> None:
    assert locate(name, kind).resolve() == (ROOT / "experiments" / file).resolve()


def test_every_shipped_experiment_resolves_by_its_name() -> None:
    for kind, folder in KINDS.items():
        entries = catalogue(kind)
        assert entries, folder
        for name, path, description in entries:
            assert locate(name, kind) == path
            assert description, f"{path}: no description"


def test_paths_are_used_as_given() -> None:
    assert locate("experiments/scenarios/april_2025_shock.toml", "scenario") == Path(
        "experiments/scenarios/april_2025_shock.toml"
    )
    assert locate("mine.toml", "scenario") == Path("mine.toml")  # a path even if it does not exist
    assert locate(ROOT / "x" / "y.toml", "sweep") == ROOT / "x" / "y.toml"


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"no scenario named 'april_2025_shok' \(did you mean april_2025_shock"):
        locate("april_2025_shok", "scenario")
    with pytest.raises(
        ConfigError, match=r"sweeps: budget_x_deal, buffer_x_reviewers, lhs_april_2025, sobol_april_2025"
    ):
        locate("zzz", "sweep")


def test_record_file_and_posteriors_are_shipped() -> None:
    from rareshock.calibration.posterior import resolve

    assert shipped_file("experiments/validation/china_exports_2025.csv").is_file()
    assert resolve("april_2025").resolve() == (ROOT / "experiments/calibration/april_2025.posterior.parquet").resolve()


def test_package_data_covers_every_experiment_file() -> None:
    """Every file under experiments/ that git tracks matches a package-data pattern of rareshock.experiments."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["rareshock.experiments"]
    for path in (ROOT / "experiments").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py":
            rel = path.relative_to(ROOT / "experiments")
            assert any(rel.match(p) for p in shipped), f"{rel} is not shipped"


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------
def test_run_by_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "april_2025_shock", "--seed", "3", "--out", str(out), *SHORT]) == 0
    assert (out / "summary.json").is_file()
    assert "april_2025_shock (seed 3)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["run", "april_2025_shok"], "did you mean april_2025_shock"),
        (["sweep", "buffer_x_reviewer"], "did you mean buffer_x_reviewers"),
        (["calibrate", "april2025"], "did you mean april_2025"),
        (["run", "nothing_like_it"], "scenarios: april_2025_shock, baseline_2010"),
    ],
)
def test_unknown_name_exit_2_one_line(
    argv: list[str], expect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert expect in _one_error_line(captured.err)
    assert not captured.out and not list(tmp_path.iterdir())  # nothing written


def test_list(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for header in ("scenarios (", "sweeps (", "comparisons (", "calibrations (", "event kinds ("):
        assert header in out
    for name in ("april_2025_shock", "baseline_2024", "buffer_x_reviewers", "policy_paths", "april_2025"):
        assert f"  {name} " in out
    assert "MOFCOM/GAC Announcement No. 18" in out  # descriptions
    kinds = event_kinds()
    assert {"cn_customs_hold", "cn_chip_import_ban"} <= set(kinds)
    for kind in kinds:
        assert f"\n  {kind}\n" in out + "\n"


def test_version(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rareshock {rareshock.__version__}"
    assert rareshock.__version__ != "0+unknown"


def test_import_is_light() -> None:
    heavy = "('numpy', 'pandas', 'mesa', 'rareshock.model')"
    code = f"import sys, rareshock; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------------
# The Python API
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_run() -> rareshock.Result:
    return rareshock.run("april_2025_shock", seed=5, scenario__end="2025-06-30", licensing__cn__reviewers=40)


def test_api_equals_cli(api_run: rareshock.Result, tmp_path: Path) -> None:
    from rareshock.outputs import to_json

    out = tmp_path / "cli"
    argv = ["run", "april_2025_shock", "--seed", "5", "--out", str(out), *SHORT, "--set", "licensing.cn.reviewers=40"]
    assert main(argv) == 0
    assert json.loads(to_json(api_run.summary)) == json.loads((out / "summary.json").read_text())
    pd.testing.assert_frame_equal(api_run.timeseries, pd.read_parquet(out / "timeseries.parquet"), check_dtype=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert json.loads(to_json(api_run.config)) == manifest["config"]


def test_api_overrides_applied(api_run: rareshock.Result) -> None:
    assert api_run.name == "april_2025_shock" and api_run.seed == 5
    assert api_run.config["licensing"]["cn"]["reviewers"] == 40
    assert api_run.config["scenario"]["end"] == "2025-06-30"
    assert len(api_run.timeseries) == 181
    assert {"us_auto_idle_plant_days", "cn_licences"} <= api_run.summary.keys()


def test_api_override_values() -> None:
    from rareshock.api import overrides_from_kwargs

    got = overrides_from_kwargs({"a__b": 1, "c": True, "d__e__f": "x y", "g": [1.5, 2], "scenario__end": "2025-06-30"})
    assert got == ["a.b=1", "c=true", 'd.e.f="x y"', "g=[1.5, 2]", 'scenario.end="2025-06-30"']


def test_api_bad_override_is_config_error() -> None:
    with pytest.raises(ConfigError, match="reviewrs"):
        rareshock.run("april_2025_shock", licensing__cn__reviewrs=3)
    with pytest.raises(ConfigError, match="did you mean"):
        rareshock.run("april_2025_shok")


def test_api_plot(api_run: rareshock.Result) -> None:
    from matplotlib.figure import Figure

    fig = api_run.plot()
    assert isinstance(fig, Figure) and "exports" in fig.get_suptitle()
    assert "scenario april_2025_shock" in " ".join(t.get_text() for t in fig.texts)  # the caption line
    assert isinstance(api_run.plot("licences"), Figure)
    with pytest.raises(ValueError, match="unknown figure"):
        api_run.plot("nope")


def test_api_posterior() -> None:
    r = rareshock.run("april_2025_shock", seed=2, posterior=2, workers=1, scenario__end="2025-05-31")
    assert r.summary["posterior"]["draws"] == 2 and r.summary["posterior"]["calibration"] == "april_2025"
    assert len(r.draws) == 2 and np.isfinite(r.draws["us_auto_idle_plant_days"]).all()


def test_reproduce_compares_a_shipped_files_location_by_name_only() -> None:
    from rareshock.reproduce import Comparison

    cmp = Comparison()
    cmp.json("summary.json", {"posterior": {"file": "/work/a/x.parquet"}}, {"posterior": {"file": "/site/x.parquet"}})
    assert not cmp.diffs
    cmp.json("summary.json", {"posterior": {"file": "/work/a/x.parquet"}}, {"posterior": {"file": "/a/y.parquet"}})
    assert len(cmp.diffs) == 1


def test_git_provenance_only_for_the_top_of_a_repository(tmp_path: Path) -> None:
    """An installed rareshock inside another project's repository does not record that project's commit."""
    from rareshock import outputs

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    inner = tmp_path / ".venv" / "lib"
    inner.mkdir(parents=True)
    assert outputs.git_provenance(inner) == {"commit": None, "dirty": None}
    assert outputs.git_provenance(tmp_path)["dirty"] is not None
    assert outputs.git_provenance(ROOT)["commit"]
