"""The ``rareshock run`` command, in-process through ``rareshock.cli.main``, and the run directory it writes."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareshock import outputs
from rareshock.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHOCK = ROOT / "experiments" / "scenarios" / "april_2025_shock.toml"
BASELINE = ROOT / "experiments" / "scenarios" / "baseline_2024.toml"
SHORT = ["--set", "scenario.end=2025-06-30"]
FIGURES = {"cn_magnet_exports.png", "licences.png", "idle_plants.png", "prices.png"}


def pngs(folder: Path) -> set[str]:
    """The PNG figures in ``folder``; each has an SVG of the same drawing beside it."""
    names = {p.name for p in folder.iterdir()}
    assert names == {n for n in names if n.endswith(".png")} | {n[:-4] + ".svg" for n in names if n.endswith(".png")}
    return {n for n in names if n.endswith(".png")}


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rareshock: error: ")
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------------------------------
# Real runs (short horizon)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shock_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The April 2025 scenario run twice with the same seed into two directories."""
    base = tmp_path_factory.mktemp("runs")
    dirs = base / "a", base / "b"
    for d in dirs:
        assert main(["run", str(SHOCK), "--seed", "7", "--out", str(d), *SHORT]) == 0
    return dirs


def test_run_writes_result_files(shock_runs: tuple[Path, Path]) -> None:
    out = shock_runs[0]
    summary = json.loads((out / "summary.json").read_text())
    assert {"first_us_auto_shutdown_day", "us_auto_idle_plant_days", "cn_licences"} <= summary.keys()

    manifest = json.loads((out / "manifest.json").read_text())
    start = dt.date.fromisoformat(manifest["config"]["scenario"]["start"])
    end = dt.date.fromisoformat(manifest["config"]["scenario"]["end"])
    assert end == dt.date(2025, 6, 30)

    ts = pd.read_parquet(out / "timeseries.parquet")
    assert len(ts) == (end - start).days + 1
    dates = pd.to_datetime(ts["date"])
    assert dates.iloc[0] == pd.Timestamp(start) and dates.iloc[-1] == pd.Timestamp(end)
    assert (dates.diff().dropna() == pd.Timedelta(days=1)).all()
    assert not isinstance(ts.index, pd.MultiIndex) and ts.index.equals(pd.RangeIndex(len(ts)))

    figs = pngs(out / "figures")
    assert figs == FIGURES | {"flows.png"}
    for name in figs:
        assert (out / "figures" / name).read_bytes().startswith(PNG_MAGIC)

    assert manifest["config_sha256"] == outputs.config_hash(manifest["config"])
    assert manifest["seed"] == 7
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert set(outputs.PACKAGES) <= manifest["packages"].keys()
    assert manifest["packages"]["mesa"] is not None
    assert manifest["command"][:2] == ["rareshock", "run"]
    assert manifest["started_at"].endswith("Z") and manifest["duration_s"] >= 0
    for key in ("python", "platform"):
        assert manifest[key]

    # Nothing but the two run directories next to them: no staging or old directories left behind.
    assert sorted(p.name for p in out.parent.iterdir()) == ["a", "b"]


def test_same_seed_gives_identical_files(shock_runs: tuple[Path, Path]) -> None:
    a, b = shock_runs
    for name in ("summary.json", "timeseries.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in shock_runs)
    for key in ("config", "config_sha256", "seed", "packages", "python", "platform"):
        assert ma[key] == mb[key], key


def test_headline_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "baseline"
    assert main(["run", str(BASELINE), "--out", str(out), *SHORT]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "baseline_2024" in captured.out and "seed" in captured.out
    assert "CN licences" in captured.out and str(out) in captured.out
    assert (out / "manifest.json").is_file()


def test_default_out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(BASELINE), "--seed", "3", *SHORT]) == 0
    assert (tmp_path / "results" / "runs" / "baseline_2024-seed3" / "manifest.json").is_file()


# --------------------------------------------------------------------------------------------------
# Errors: exit code, one line on stderr, nothing written
# --------------------------------------------------------------------------------------------------
def _bad_toml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text('[scenario\nname = "x"\n')
    return path


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda tmp: [str(SHOCK), "--set", "licensing.cn.reviewrs=3"], id="unknown-key"),
        pytest.param(lambda tmp: [str(SHOCK), "--set", "licensing.cn.reviewers=abc"], id="bad-type"),
        pytest.param(lambda tmp: [str(SHOCK), "--set", "licensing.cn.reviewers"], id="override-without-value"),
        pytest.param(lambda tmp: [str(SHOCK), "--seed", "-1"], id="negative-seed"),
        pytest.param(lambda tmp: [str(SHOCK), "--seed", "abc"], id="non-integer-seed"),
        pytest.param(lambda tmp: [str(tmp / "missing.toml")], id="missing-config"),
        pytest.param(lambda tmp: [str(_bad_toml(tmp))], id="malformed-toml"),
    ],
)
def test_bad_input_exits_2_with_one_line(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", *case(tmp_path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    _one_error_line(captured.err)
    assert captured.out == ""
    assert not out.exists()


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    _one_error_line(capsys.readouterr().err)
    assert main(["frobnicate"]) == 2
    _one_error_line(capsys.readouterr().err)
    assert main(["run"]) == 2
    _one_error_line(capsys.readouterr().err)
    assert main(["run", "--help"]) == 0
    assert "--set" in capsys.readouterr().out


def test_unexpected_failure_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rareshock.simulation

    def boom(cfg, seed=None):
        raise RuntimeError("model blew up")

    monkeypatch.setattr(rareshock.simulation, "run_scenario", boom)
    monkeypatch.delenv("RARESHOCK_DEBUG", raising=False)
    out = tmp_path / "out"
    assert main(["run", str(SHOCK), "--out", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line == "rareshock: error: RuntimeError: model blew up"
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_directory_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["run", str(SHOCK), "--out", str(out), *SHORT]) == 2
    _one_error_line(capsys.readouterr().err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# --------------------------------------------------------------------------------------------------
# The run directory, with a synthetic result (no model needed)
# --------------------------------------------------------------------------------------------------
@dataclass
class FakeResult:
    summary: dict
    timeseries: pd.DataFrame
    config: dict
    seed: int


def _fake(seed: int = 1, drop: tuple[str, ...] = ()) -> FakeResult:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-01", "2025-03-31", freq="D")
    n = len(dates)
    df = pd.DataFrame({"date": dates, "cn_magnet_exports_t": rng.gamma(2, 40, n)})
    for code in ("us", "eu", "jp", "in"):
        df[f"cn_magnet_exports_to_{code}_t"] = df["cn_magnet_exports_t"] / 8
        df[f"auto_plants_idle_{code}"] = rng.integers(0, 5, n)
    for kind in ("submitted", "approved", "denied"):
        df[f"cn_licences_{kind}_cum"] = np.cumsum(rng.poisson(2, n))
    df["cn_licences_pending"] = rng.integers(0, 50, n)
    for col in (
        "price_dy_oxide_cn_usd_kg",
        "price_dy_oxide_ex_cn_usd_kg",
        "price_ndfeb_cn_usd_kg",
        "price_ndfeb_ex_cn_usd_kg",
    ):
        df[col] = 100 + np.cumsum(rng.normal(0, 1, n))
    summary = {
        "first_us_auto_shutdown_day": None,
        "us_auto_idle_plant_days": np.int64(12),
        "cn_licences": {"submitted": 3, "mean_wait_working_days": float("nan")},
    }
    config = {"scenario": {"name": "fake", "seed": seed}}
    return FakeResult(summary, df.drop(columns=list(drop)), config, seed)


def _manifest(r: FakeResult) -> dict:
    return outputs.build_manifest(r.config, r.seed, dt.datetime(2025, 1, 1, tzinfo=dt.UTC), 0.5, ["test"])


def test_write_run_is_deterministic_and_replaces_a_previous_run(tmp_path: Path) -> None:
    r = _fake()
    outputs.write_run(r, tmp_path / "a", _manifest(r))
    outputs.write_run(r, tmp_path / "b", _manifest(r))
    for name in ("summary.json", "timeseries.parquet", *(f"figures/{f}" for f in FIGURES)):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    ma, mb = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ab")
    ma.pop("git"), mb.pop("git")  # the working tree may change in between
    assert ma == mb
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["cn_licences"]["mean_wait_working_days"] is None
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a" / "timeseries.parquet"), r.timeseries, check_dtype=False
    )

    r2 = _fake(seed=2)
    outputs.write_run(r2, tmp_path / "a", _manifest(r2))
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_write_run_failure_keeps_the_previous_run(tmp_path: Path) -> None:
    r = _fake()
    outputs.write_run(r, tmp_path / "a", _manifest(r))
    bad = _fake(seed=2)
    bad.summary = {"x": object()}
    with pytest.raises(TypeError):
        outputs.write_run(bad, tmp_path / "a", _manifest(bad))
    with pytest.raises(TypeError):
        outputs.write_run(bad, tmp_path / "new", _manifest(bad))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["seed"] == 1


def test_figures_skip_missing_columns(tmp_path: Path) -> None:
    r = _fake(
        drop=(
            "auto_plants_idle_us",
            "auto_plants_idle_eu",
            "auto_plants_idle_jp",
            "auto_plants_idle_in",
            "price_ndfeb_cn_usd_kg",
            "cn_magnet_exports_t",
        )
    )
    outputs.write_run(r, tmp_path / "run", _manifest(r))
    assert pngs(tmp_path / "run" / "figures") == FIGURES - {"idle_plants.png"}


def test_config_hash_is_canonical() -> None:
    assert outputs.config_hash({"b": 1, "a": [1, 2]}) == outputs.config_hash({"a": [1, 2], "b": 1})
    assert outputs.config_hash({"a": 1}) != outputs.config_hash({"a": 2})


def test_git_provenance_outside_a_checkout(tmp_path: Path) -> None:
    assert outputs.git_provenance(tmp_path) == {"commit": None, "dirty": None}


def test_git_provenance_ignores_results_but_not_code(tmp_path: Path) -> None:
    import subprocess

    def git(*a: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "start")
    assert outputs.git_provenance(tmp_path)["dirty"] is False
    (tmp_path / "results" / "x").mkdir(parents=True)
    (tmp_path / "results" / "x" / "summary.json").write_text("{}")
    assert outputs.git_provenance(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 1")
    assert outputs.git_provenance(tmp_path)["dirty"] is True
