"""Sweeps: identical results on any executor, failures as rows, clean errors (faults: test_faults.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rareshock.cli import main
from rareshock.sweeps.spec import build_design, load_sweep, run_seed, run_specs
from tests.conftest import SHOCK

SWEEP = f"""
[sweep]
name = "tiny"
scenario = "{SHOCK}"
method = "lhs"
samples = {{samples}}
replications = 2
seed = 3
batch_size = {{batch}}
overrides = ["scenario.end=2025-07-31"]
timeseries = "monthly"

[[parameters]]
path = "automakers.US.buffer_days_mean"
low = 10.0
high = 40.0

[[parameters]]
path = "licensing.cn.reviewers"
low = 5
high = 50
integer = true

[discovery]
outcome = "first_us_auto_shutdown_day"
below = 45.0
"""


def _write(tmp_path: Path, samples=6, batch=4, extra="") -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(SWEEP.format(samples=samples, batch=batch) + extra)
    return p


def _runs(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "runs.parquet").drop(columns="batch")
    return df.sort_values("run_id").reset_index(drop=True)


def test_seeds_depend_only_on_sample_and_replicate(tmp_path):
    sw = load_sweep(_write(tmp_path))
    runs = run_specs(sw, build_design(sw))
    assert len({r.seed for r in runs}) == len(runs)
    assert all(r.seed == run_seed(3, r.sample, r.replicate) for r in runs)
    assert build_design(sw).equals(build_design(load_sweep(_write(tmp_path))))


def test_same_results_on_one_two_workers_and_dask(tmp_path, monkeypatch):
    from distributed import LocalCluster

    cfg = _write(tmp_path)
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(tmp_path / "w1"), "--no-progress"]) == 0
    assert main(["sweep", str(cfg), "--workers", "2", "--out", str(tmp_path / "w2"), "--no-progress"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the Dask workers start (and stay) here
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        monkeypatch.chdir(tmp_path)  # a relative --out means tmp_path/dask, for workers too
        assert (
            main(["sweep", str(cfg), "--scheduler", cluster.scheduler_address, "--out", "dask", "--no-progress"]) == 0
        )
    assert list(elsewhere.iterdir()) == []
    one = _runs(tmp_path / "w1")
    assert len(one) == 12 and (one["status"] == "ok").all()
    pd.testing.assert_frame_equal(one, _runs(tmp_path / "w2"), check_exact=True)
    pd.testing.assert_frame_equal(one, _runs(tmp_path / "dask"), check_exact=True)
    series = pd.read_parquet(tmp_path / "w1" / "timeseries.parquet")
    assert set(series["run_id"]) == set(range(12)) and len(series) == 12 * 7  # monthly, Jan..Jul
    assert (tmp_path / "w1" / "discovery.json").is_file()
    assert (tmp_path / "w1" / "manifest.json").is_file()


def test_a_failing_run_becomes_an_error_row(tmp_path, capsys):
    """A run that raises is a row with status "error" and its message; more failures than
    sweep.max_failed_share (default 0.1) make the sweep exit 1 with a summary, after writing everything."""
    cfg = tmp_path / "fail.toml"
    text = (
        SWEEP.format(samples=1, batch=10).split("[[parameters]]")[0].replace('method = "lhs"', 'method = "grid"')
        + '[[parameters]]\npath = "magnet_makers.cn_ndfeb_capacity_t_per_year"\nvalues = [1000.0, 300000.0]\n'
    )
    cfg.write_text(text)
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 of 4 runs failed (50%; sweep.max_failed_share = 0.1)" in err, err
    assert "exceeds their capacity" in err and "runs.parquet" in err
    df = _runs(tmp_path / "o")
    bad = df[df["magnet_makers.cn_ndfeb_capacity_t_per_year"] == 1000.0]
    assert (bad["status"] == "error").all() and bad["error"].str.contains("exceeds their capacity").all()
    assert (df[df["magnet_makers.cn_ndfeb_capacity_t_per_year"] == 300000.0]["status"] == "ok").all()
    assert (tmp_path / "o" / "manifest.json").is_file()  # the sweep is complete, only not trusted
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["failed_runs"] == 2
    # a stated tolerance lets the same sweep pass
    cfg.write_text(text.replace("[sweep]", "[sweep]\nmax_failed_share = 0.5"))
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(tmp_path / "o2"), "--no-progress"]) == 0


def test_a_sweep_whose_runs_all_fail_exits_1(tmp_path, capsys):
    cfg = tmp_path / "fail.toml"
    cfg.write_text(
        SWEEP.format(samples=1, batch=10)
        .split("[[parameters]]")[0]
        .replace('method = "lhs"', 'method = "grid"')
        .replace("[sweep]", "[sweep]\nmax_failed_share = 1.0")
        + '[[parameters]]\npath = "magnet_makers.cn_ndfeb_capacity_t_per_year"\nvalues = [1000.0]\n'
    )
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "2 of 2 runs failed (all" in capsys.readouterr().err


def test_rerun_a_single_row_gives_the_same_numbers(tmp_path, capsys):
    cfg = _write(tmp_path)
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", "--from", str(tmp_path / "s"), "7", "--out", str(tmp_path / "row7")]) == 0
    assert "reproduced: all" in capsys.readouterr().out
    assert main(["run", "--from", str(tmp_path / "s"), "99"]) == 2


@pytest.mark.parametrize(
    "patch, expected",
    [
        (('method = "lhs"', 'method = "taguchi"'), "sweep.method"),
        (("samples = 6", "samples = 0"), "sweep.samples"),
        (("replications = 2", "replications = -1"), "sweep.replications"),
        (("seed = 3", 'seed = "x"'), "sweep.seed"),
        (("batch_size = 4", "batch_sise = 4"), "did you mean 'batch_size'"),
        (("low = 10.0", "low = 50.0"), "high must be greater than low"),
        (('path = "licensing.cn.reviewers"', 'path = "licensing.cn.reviewrs"'), "is not a scenario"),
        (('path = "licensing.cn.reviewers"', 'path = "licensing.cn"'), "is not a scenario value field"),
        (("low = 5\nhigh = 50", "low = 5\nhigh = 500000"), "licensing.cn.reviewers"),
        (('overrides = ["scenario.end=2025-07-31"]', 'overrides = ["scenario.end=2024-01-01"]'), "sweep.overrides"),
        (('method = "lhs"', 'method = "sobol"'), "power of 2"),
        (("below = 45.0", "below = 45.0\nabove = 3.0"), "exactly one of below or above"),
        (("[discovery]", "[discovery]\nwhat = 1"), "unknown field"),
        (("high = 40.0", "high = 40.0\nvalues = [1.0]"), "not both"),
    ],
)
def test_malformed_sweeps_give_one_line_and_exit_2(tmp_path, capsys, patch, expected):
    text = SWEEP.format(samples=6, batch=4).replace(*patch)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and expected in err, err
    assert not out.exists()
