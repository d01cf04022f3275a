"""Calibration end to end through the command line: recovering known parameters from data the model itself
generated, identical posteriors for 1 and 2 workers and after a stop, a kill and a resume, runs over the
published posterior, and comparisons and sweeps over posterior draws."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareshock.calibration.report import read_meta, weighted_quantile
from rareshock.cli import main
from rareshock.model.config import load_scenario
from rareshock.simulation import run_model, summarise
from tests.conftest import BASELINE, ROOT, SHOCK

TRUE_BUFFER = 25.0
TRUE_REVIEWERS = 10
END = "2025-06-30"
SPREAD = "automakers.US.buffer_days_cv=0.35"  # a narrow spread: the buffer statistic is then informative
WINDOW = (dt.date(2025, 2, 1), dt.date(2025, 3, 31))


def _truth() -> dict:
    """Statistics of the model itself at the true parameter values (seed 1), computed here without the
    calibration code."""
    cfg = load_scenario(
        SHOCK,
        [
            f"scenario.end={END}",
            SPREAD,
            f"automakers.US.buffer_days_mean={TRUE_BUFFER}",
            f"licensing.cn.reviewers={TRUE_REVIEWERS}",
        ],
    )
    model = run_model(cfg, 1)
    s = summarise(model)
    col = model.records.column("auto_cover_days_us")
    first, last = ((d - cfg.scenario.start).days for d in WINDOW)
    return {
        "buffer": float(col[first : last + 1].mean()),
        "wait": s["cn_licences"]["mean_wait_working_days"],
        "approved": s["cn_licences"]["approved"],
        "shutdown": s["first_us_auto_shutdown_day"],
    }


def _config(truth: dict) -> str:
    """Targets: intervals of about one seed-to-seed standard deviation around the truth's statistics (10
    seeds at the true values: cover 1.3 days, wait 0.34 working days, approvals 7), scales the same."""
    return f"""
[calibration]
name = "recovery"
scenario = "{SHOCK}"
overrides = ["scenario.end={END}", "{SPREAD}"]
seed = 11
population = 50
generations = 5
epsilon_quantile = 0.3
predictive_draws = 12

[[parameters]]
path = "automakers.US.buffer_days_mean"
prior = "uniform"
low = 10.0
high = 40.0
source = "test: known value {TRUE_BUFFER}"

[[parameters]]
path = "licensing.cn.reviewers"
prior = "integer"
low = 3
high = 30
source = "test: known value {TRUE_REVIEWERS}"

[[targets]]
series = "auto_cover_days_us"
stat = "mean"
from = {WINDOW[0]}
to = {WINDOW[1]}
low = {truth["buffer"] - 1.3}
high = {truth["buffer"] + 1.3}
scale = 1.3
source = "synthetic: the model at the known values, seed 1"

[[targets]]
metric = "cn_licences.mean_wait_working_days"
low = {truth["wait"] - 0.35}
high = {truth["wait"] + 0.35}
scale = 0.35
source = "synthetic: the model at the known values, seed 1"

[[targets]]
metric = "cn_licences.approved"
low = {truth["approved"] - 7}
high = {truth["approved"] + 7}
scale = 7
source = "synthetic: the model at the known values, seed 1"

[[targets]]
metric = "first_us_auto_shutdown_day"
low = {truth["shutdown"] - 3}
high = {truth["shutdown"] + 3}
scale = 3
null_value = 180
source = "synthetic: the model at the known values, seed 1"
"""


@pytest.fixture(scope="module")
def recovery(tmp_path_factory) -> dict:
    """The recovery calibration on 2 workers, published beside its config."""
    base = tmp_path_factory.mktemp("calibration")
    cfg = base / "recovery.toml"
    cfg.write_text(_config(_truth()))
    out = base / "two_workers"
    t0 = time.perf_counter()
    code = main(["calibrate", str(cfg), "--out", str(out), "--workers", "2", "--publish", "--no-progress"])
    assert code == 0
    return {"dir": base, "config": cfg, "out": out, "seconds": time.perf_counter() - t0}


def _posterior(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "posterior.parquet")


def test_recovers_known_parameters_from_model_generated_data(recovery):
    out = recovery["out"]
    post = _posterior(out)
    w = post["weight"].to_numpy()
    assert len(post) == 50 and w.sum() == pytest.approx(1.0)
    ident = pd.read_csv(out / "identifiability.csv").set_index("parameter")
    for path, truth, tolerance in (
        ("automakers.US.buffer_days_mean", TRUE_BUFFER, 2.5),
        ("licensing.cn.reviewers", TRUE_REVIEWERS, 2.5),
    ):
        x = post[path].to_numpy(dtype=float)
        mean = float(np.sum(w * x))
        lo, hi = weighted_quantile(x, w, 0.05), weighted_quantile(x, w, 0.95)
        assert abs(mean - truth) < tolerance, (path, mean)
        assert lo <= truth <= hi, (path, lo, hi)
        row = ident.loc[path]
        assert row["posterior_mean"] == pytest.approx(mean)
        assert row["width_ratio"] < 0.5, (path, row["width_ratio"])  # much narrower than the prior
        assert row["verdict"] in ("pinned down", "partly informed")
    assert post["licensing.cn.reviewers"].dtype == np.int64


def test_calibration_folder_files_and_manifest(recovery):
    out = recovery["out"]
    expected = {
        ".rareshock",
        "abc.db",
        "calibration_state.json",
        "posterior.parquet",
        "history.csv",
        "identifiability.csv",
        "identifiability.md",
        "predictive.parquet",
        "predictive.csv",
        "figures",
        "manifest.json",
    }
    assert {p.name for p in out.iterdir()} == expected
    assert {p.name for p in (out / "figures").iterdir()} == {
        f"{name}.{fmt}" for name in ("marginals", "pairs", "predictive", "history") for fmt in ("png", "svg")
    }
    svg = (out / "figures" / "marginals.svg").read_text(encoding="utf-8")
    assert "calibration " in svg and "posterior particles" in svg  # the caption line
    hist = pd.read_csv(out / "history.csv")
    assert hist["generation"].tolist() == [0, 1, 2, 3, 4]
    assert np.isinf(hist["epsilon"].iloc[0]) and hist["acceptance_rate"].iloc[0] == 1.0
    assert (np.diff(hist["epsilon"].to_numpy()[1:]) < 0).all()
    assert (hist["accepted"] == 50).all() and (hist["evaluations"] >= 50).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "calibration"
    assert manifest["evaluations"] == int(hist["evaluations"].sum())
    assert manifest["packages"]["pyabc"] == "0.13.0"
    assert manifest["stop_reason"] == "generations = 5 reached"
    assert manifest["calibration"]["targets"][0]["from"] == "2025-02-01"
    pred = pd.read_csv(out / "predictive.csv")
    assert len(pred) == 4 and (pred["draws"] == 12).all()
    assert pred["share_inside"].between(0, 1).all() and pred["share_inside"].max() > 0.3
    draws = pd.read_parquet(out / "predictive.parquet")
    assert len(draws) == 12 and draws["seed"].nunique() == 12
    # every posterior particle can be rerun from its row: its seed gives its statistics
    from rareshock.calibration.config import load_calibration
    from rareshock.calibration.stats import TargetArrays, simulate

    cal = load_calibration(recovery["config"])
    post = _posterior(out)
    for k in (0, 7):
        values = {
            "automakers.US.buffer_days_mean": float(post["automakers.US.buffer_days_mean"].iloc[k]),
            "licensing.cn.reviewers": int(post["licensing.cn.reviewers"].iloc[k]),
        }
        stats = simulate(cal.base, values, int(post["seed"].iloc[k]), TargetArrays.of(cal))
        assert stats.tolist() == [post[f"stat:{label}"].iloc[k] for label in cal.labels]


def test_published_posterior(recovery):
    published = recovery["dir"] / "recovery.posterior.parquet"
    meta = read_meta(published)
    assert meta["calibration"] == "recovery" and meta["generation"] == 4 and meta["population"] == 50
    assert [p["path"] for p in meta["parameters"]] == ["automakers.US.buffer_days_mean", "licensing.cn.reviewers"]
    pd.testing.assert_frame_equal(pd.read_parquet(published), _posterior(recovery["out"]), check_exact=True)


def test_one_worker_stop_kill_and_resume_give_the_same_posterior(recovery):
    """Generations 0-1 on 1 worker instead of 2, stopped by the stop rule; resumed with the config's 5 and
    killed (SIGKILL) during generation 2; resumed again on 2 workers: the same posterior, history and
    posterior predictive check as the uninterrupted calibration."""
    cfg, out = recovery["config"], recovery["dir"] / "interrupted"
    common = ["calibrate", str(cfg), "--out", str(out), "--no-progress"]
    assert main([*common, "--workers", "1", "--set", "calibration.generations=2"]) == 0
    assert len(pd.read_csv(out / "history.csv")) == 2
    state = out / "calibration_state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rareshock.cli", *common, "--workers", "1", "--resume"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while json.loads(state.read_text())["finished"]:  # until the resumed session has started
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(1.5)  # into generation 2
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert main([*common, "--workers", "2", "--resume"]) == 0
    for name in ("posterior.parquet", "predictive.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / name), pd.read_parquet(recovery["out"] / name), check_exact=True
        )
    for name in ("history.csv", "identifiability.csv", "predictive.csv"):
        assert (out / name).read_text() == (recovery["out"] / name).read_text(), name
    sessions = json.loads((out / "manifest.json").read_text())["execution"]["sessions"]
    assert len(sessions) == 2  # the killed session recorded nothing


def test_resume_refuses_a_changed_calibration(recovery, capsys):
    code = main(
        [
            "calibrate",
            str(recovery["config"]),
            "--out",
            str(recovery["out"]),
            "--resume",
            "--set",
            "calibration.seed=12",
        ]
    )
    assert code == 2
    assert "changed since it started; only stop rules may change" in capsys.readouterr().err
    code = main(["calibrate", str(recovery["config"]), "--out", str(recovery["out"])])
    assert code == 2
    assert "holds a calibration already: add --resume" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Runs over the posterior
# --------------------------------------------------------------------------------------------------
def test_run_posterior_writes_medians_and_bands_deterministically(recovery, tmp_path):
    published = str(recovery["dir"] / "recovery.posterior.parquet")
    args = ["run", str(SHOCK), "--set", "scenario.end=2025-05-31", "--posterior", "6", "--calibration", published]
    assert main([*args, "--out", str(tmp_path / "a"), "--workers", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--workers", "1"]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert {p.name for p in a.iterdir()} == {
        ".rareshock",
        "summary.json",
        "timeseries.parquet",
        "draws.parquet",
        "figures",
        "manifest.json",
    }
    for name in ("summary.json",):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for name in ("timeseries.parquet", "draws.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name), check_exact=True)
    summary = json.loads((a / "summary.json").read_text())
    draws = pd.read_parquet(a / "draws.parquet")
    assert len(draws) == 6 and draws["seed"].nunique() == 6
    for metric in ("us_auto_idle_plant_days", "cn_licences.submitted"):
        x = draws[metric].to_numpy()
        node = summary
        lo_node, hi_node = summary["posterior"]["p10"], summary["posterior"]["p90"]
        for key in metric.split("."):
            node, lo_node, hi_node = node[key], lo_node[key], hi_node[key]
        assert node == np.quantile(x, 0.5, method="inverted_cdf")
        assert lo_node == np.quantile(x, 0.1, method="inverted_cdf") <= node <= hi_node
    post = _posterior(recovery["out"])
    assert set(draws["particle"]) <= set(range(len(post)))
    assert (
        draws["automakers.US.buffer_days_mean"].tolist()
        == post["automakers.US.buffer_days_mean"].iloc[draws["particle"]].tolist()
    )
    ts = pd.read_parquet(a / "timeseries.parquet")
    assert len(ts) == 151
    assert (ts["auto_plants_idle_us_p10"] <= ts["auto_plants_idle_us"]).all()
    assert (ts["auto_plants_idle_us"] <= ts["auto_plants_idle_us_p90"]).all()
    assert ts["auto_plants_idle_us"].dtype == np.int64
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["posterior"]["calibration"] == "recovery" and manifest["posterior"]["draws"] == 6
    assert any(p.name.startswith("bands_") for p in (a / "figures").iterdir())


def test_run_posterior_uses_the_default_calibration(recovery, tmp_path, monkeypatch, capsys):
    import rareshock.calibration.posterior as posterior

    root = tmp_path / "repo"
    folder = root / "experiments" / "calibration"
    folder.mkdir(parents=True)
    monkeypatch.setattr(posterior, "ROOT", root)
    import rareshock.resources as resources  # where shipped calibrations are found (checkout or package data)

    monkeypatch.setattr(resources, "experiments_dir", lambda: root / "experiments")
    args = ["run", str(SHOCK), "--set", "scenario.end=2025-04-30", "--posterior", "3", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no calibration in experiments/calibration is marked default = true" in err
    assert not (tmp_path / "o").exists()
    text = recovery["config"].read_text().replace('name = "recovery"', 'name = "recovery"\ndefault = true')
    (folder / "recovery.toml").write_text(text)
    assert main(args) == 2
    assert "has no published posterior" in capsys.readouterr().err
    (folder / "recovery.posterior.parquet").write_bytes((recovery["dir"] / "recovery.posterior.parquet").read_bytes())
    assert main(args) == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["posterior"]["calibration"] == "recovery"
    assert main(["run", str(SHOCK), "--calibration", "recovery"]) == 2
    assert "--calibration and --workers go with --posterior N" in capsys.readouterr().err


def test_comparisons_and_sweeps_over_posterior_draws(recovery, tmp_path):
    from rareshock.compare import run_comparison

    published = recovery["dir"] / "recovery.posterior.parquet"
    comp = tmp_path / "comp.toml"
    comp.write_text(
        f'[comparison]\nname = "c"\nscenarios = ["{SHOCK}", "{BASELINE}"]\nseed = 4\n'
        f'posterior = "{published}"\nposterior_draws = 2\n'
    )
    run_comparison(comp, tmp_path / "comp_out", workers=2)
    runs = pd.read_csv(tmp_path / "comp_out" / "runs.csv")
    assert len(runs) == 4 and {"particle", "automakers.US.buffer_days_mean", "licensing.cn.reviewers"} <= set(runs)
    by = runs.set_index(["scenario", "replicate"])
    for r in range(2):  # the same draw for every scenario
        assert by.loc[("april_2025_shock", r), "particle"] == by.loc[("baseline_2024", r), "particle"]
    assert "draws of posterior recovery" in (tmp_path / "comp_out" / "table.md").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(comp.read_text() + "replications = 3\n")
    from rareshock.compare import load_comparison
    from rareshock.model.config import ConfigError

    with pytest.raises(ConfigError, match="give posterior_draws"):
        load_comparison(bad)

    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'[sweep]\nname = "s"\nscenario = "{SHOCK}"\nmethod = "grid"\nseed = 2\n'
        f'overrides = ["scenario.end=2025-04-30"]\nposterior = "{published}"\nposterior_draws = 2\n\n'
        '[[parameters]]\npath = "licensing.cn.reviewers"\nvalues = [7, 40]\n'
    )
    out = tmp_path / "sweep_out"
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    rows = pd.read_parquet(out / "runs.parquet").sort_values("run_id")
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    assert rows["licensing.cn.reviewers"].tolist() == [7, 7, 40, 40]  # the swept value wins
    post = _posterior(recovery["out"])
    from rareshock.calibration.posterior import load_posterior

    drawn = load_posterior(str(published)).draws(2, 2)
    assert (
        rows["automakers.US.buffer_days_mean"].tolist() == [v["automakers.US.buffer_days_mean"] for _, v in drawn] * 2
    )
    assert rows["automakers.US.buffer_days_mean"].isin(post["automakers.US.buffer_days_mean"]).all()
    assert main(["run", "--from", str(out), "1", "--out", str(tmp_path / "rerun")]) == 0  # reruns exactly


def test_example_calibration_in_experiments_is_valid():
    from rareshock.calibration.config import load_calibration

    for path in sorted((ROOT / "experiments" / "calibration").glob("*.toml")):
        cal = load_calibration(path)
        assert all(t.source.strip() for t in cal.targets)


def test_reproduce_regenerates_and_checks_a_calibration(tmp_path):
    """A calibration marked reproduce = true is regenerated into results/calibration/<name> and checked,
    with its published posterior; a changed number fails the check."""
    from rareshock.reproduce import reproduce

    root = tmp_path / "repo"
    folder = root / "experiments" / "calibration"
    folder.mkdir(parents=True)
    (folder / "small.toml").write_text(
        f'[calibration]\nname = "small"\nscenario = "{SHOCK}"\noverrides = ["scenario.end=2025-05-31"]\n'
        "seed = 1\npopulation = 12\ngenerations = 2\npredictive_draws = 4\nreproduce = true\n\n"
        '[[parameters]]\npath = "automakers.US.buffer_days_mean"\nprior = "uniform"\nlow = 10.0\nhigh = 40.0\n'
        'source = "test"\n\n[[targets]]\nseries = "auto_cover_days_us"\nstat = "mean"\nfrom = 2025-02-01\n'
        'to = 2025-03-31\nlow = 24.0\nhigh = 26.0\nsource = "synthetic"\n'
    )
    results = root / "results"
    ok, lines = reproduce(False, None, results, 2, False, root=root)
    assert ok, lines
    ref = results / "calibration" / "small"
    assert (ref / "manifest.json").exists() and (ref / "posterior.parquet").exists()
    published = folder / "small.posterior.parquet"
    published.write_bytes((ref / "posterior.parquet").read_bytes())
    ok, lines = reproduce(True, ["small"], results, 2, False, root=root)
    assert ok and lines[0].startswith("small: identical"), lines
    from rareshock.reproduce import compare, experiments

    post = pd.read_parquet(published)
    post.loc[3, "weight"] *= 1.001
    post.to_parquet(published)
    (exp,) = experiments(root)
    diffs = compare(exp, ref, ref).diffs
    assert diffs and diffs[0].startswith("small.posterior.parquet (published): column 'weight' row 3"), diffs


def test_a_dask_cluster_gives_the_same_posterior_as_one_local_worker(tmp_path):
    from distributed import LocalCluster

    cfg = tmp_path / "small.toml"
    cfg.write_text(
        f'[calibration]\nname = "small"\nscenario = "{SHOCK}"\noverrides = ["scenario.end=2025-05-31"]\n'
        "seed = 9\npopulation = 12\ngenerations = 2\npredictive_draws = 4\n\n"
        '[[parameters]]\npath = "automakers.US.buffer_days_mean"\nprior = "loguniform"\nlow = 10.0\nhigh = 40.0\n'
        'source = "test"\n\n[[targets]]\nseries = "auto_cover_days_us"\non = 2025-03-01\nlow = 24.0\n'
        'high = 26.0\nsource = "synthetic"\n'
    )
    assert main(["calibrate", str(cfg), "--out", str(tmp_path / "local"), "--workers", "1", "--no-progress"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        args = ["calibrate", str(cfg), "--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]
        assert main([*args, "--no-progress"]) == 0
    for name in ("posterior.parquet", "predictive.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "local" / name), pd.read_parquet(tmp_path / "dask" / name), check_exact=True
        )
    assert (tmp_path / "local" / "history.csv").read_text() == (tmp_path / "dask" / "history.csv").read_text()
