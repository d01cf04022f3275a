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


# --------------------------------------------------------------------------------------------------
# runs.parquet as a researcher queries it: typed columns, names, SQL
# --------------------------------------------------------------------------------------------------
TYPED = (
    SWEEP.format(samples=1, batch=10).split("[[parameters]]")[0].replace('method = "lhs"', 'method = "grid"')
    + '[[parameters]]\npath = "magnet_makers.cn_ndfeb_capacity_t_per_year"\nvalues = [1000.0, 300000.0]\n'
).replace("[sweep]", "[sweep]\nmax_failed_share = 0.5")  # the 1000 t sample fails: error rows


@pytest.fixture(scope="module")
def typed_sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("typed")
    (tmp / "typed.toml").write_text(TYPED)
    assert main(["sweep", str(tmp / "typed.toml"), "--workers", "1", "--out", str(tmp / "s"), "--no-progress"]) == 0
    return tmp / "s"


def test_runs_parquet_has_typed_metrics_names_and_the_first_control_date(typed_sweep):
    """Counts and days are whole numbers (missing, not NaN, where a run failed or the event did not happen),
    booleans are booleans, the first control is a date; every row names its sweep and scenario."""
    from rareshock.model.config import load_scenario

    df = _runs(typed_sweep)
    types = df.dtypes.astype(str)
    for col in (
        "us_auto_idle_plant_days",
        "cn_licences.approved",
        "first_us_auto_shutdown_day",
        "bis_applications.denied",
    ):
        assert types[col] == "Int64", col
    assert types["deal_active_end"] == "boolean" and types["first_control_date"] == "datetime64[ms]"
    assert types["lost_vehicles_us"] == "float64" and types["cn_licences.mean_wait_working_days"] == "float64"
    assert list(df.columns[:6]) == ["run_id", "sweep", "scenario", "sample", "replicate", "seed"]
    assert set(df["sweep"]) == {"tiny"} and set(df["scenario"]) == {"april_2025_shock"}
    ok, bad = df[df["status"] == "ok"], df[df["status"] == "error"]
    assert len(ok) == 2 and len(bad) == 2
    controls = [e.date for e in load_scenario(SHOCK).events if e.kind == "cn_export_controls"]
    assert (ok["first_control_date"] == pd.Timestamp(min(controls))).all()  # 2025-04-04, in every ok row
    assert bad["first_control_date"].isna().all() and bad["us_auto_idle_plant_days"].isna().all()
    assert (ok["us_auto_idle_plant_days"] > 0).all() and ok["deal_active_end"].eq(False).all()


def test_first_control_date_is_missing_only_without_controls(baseline_run):
    from rareshock.sweeps.spec import flatten, metric_frame

    summary = baseline_run.summary  # baseline_2024: no export controls
    assert summary["first_control_date"] is None
    frame = metric_frame([flatten(summary)], ["first_control_date", "us_auto_idle_plant_days"])
    assert frame["first_control_date"].isna().all() and frame["us_auto_idle_plant_days"].tolist() == [0]


def test_metric_types_match_what_a_run_reports(shock_run):
    """Every whole-number metric of a run's summary is declared whole (WHOLE_METRICS), every float one is a
    float, and every declared pattern names a metric of runs.parquet (none is stale)."""
    import fnmatch

    from rareshock.simulation import BOOLEAN_METRICS, DATE_METRICS, WHOLE_METRICS, metric_kind
    from rareshock.sweeps.executor import metric_columns
    from rareshock.sweeps.spec import flatten

    flat = flatten({k: v for k, v in shock_run.summary.items() if k != "scenario"})
    kind = {bool: "bool", int: "int", float: "float", str: "date"}
    for name, value in flat.items():
        if value == value:  # not NaN (a metric whose event did not happen)
            want = "float" if isinstance(value, float) else kind[type(value)]
            assert metric_kind(name) == want, name
    for pattern in (*WHOLE_METRICS, *BOOLEAN_METRICS, *DATE_METRICS):
        assert any(fnmatch.fnmatchcase(m, pattern) for m in metric_columns()), pattern


def test_sql_views_have_underscore_names_and_the_same_numbers(typed_sweep, tmp_path):
    import duckdb

    import rareshock.sql

    con = rareshock.sql.connect(typed_sweep)
    got = con.sql(
        "SELECT magnet_makers__cn_ndfeb_capacity_t_per_year AS cap, count(*) AS n, "
        "avg(us_auto_idle_plant_days) AS idle, max(first_control_date) AS first FROM runs GROUP BY cap ORDER BY cap"
    ).df()
    df = _runs(typed_sweep)
    want = df.groupby("magnet_makers.cn_ndfeb_capacity_t_per_year")["us_auto_idle_plant_days"].mean()
    assert got["cap"].tolist() == [1000.0, 300000.0] and got["n"].tolist() == [2, 2]
    assert got["idle"].isna().tolist() == [True, False] and got["idle"].iloc[1] == want.loc[300000.0]
    assert str(got["first"].iloc[1])[:10] == "2025-04-04"
    columns = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE runs)").fetchall())
    assert columns["cn_licences__approved"] == "BIGINT" and columns["deal_active_end"] == "BOOLEAN"
    assert "cn_licences.approved" not in columns
    assert con.sql("SELECT count(*) FROM design").fetchall() == [(2,)]
    # the files themselves keep dotted names, double-quoted in SQL
    raw = duckdb.sql(
        f"""SELECT sum("cn_licences.approved") FROM read_parquet('{typed_sweep}/runs.parquet/*.parquet')"""
    )
    assert raw.fetchall()[0][0] == df["cn_licences.approved"].sum()
    with pytest.raises(FileNotFoundError, match="no rareshock results"):
        rareshock.sql.connect(tmp_path)


def test_a_sweep_started_before_typed_columns_resumes_in_its_own_layout(tmp_path):
    """A batch of a sweep whose state has no "sweep" (started by an older rareshock) is written as that
    sweep's other parts were: float metrics, no sweep/scenario columns; so its parts read as one table."""
    from rareshock.sweeps.executor import metric_columns, run_batch

    sw = load_sweep(_write(tmp_path))
    specs = run_specs(sw, build_design(sw))[:1]
    (tmp_path / "runs.parquet").mkdir()
    args = (str(tmp_path), sw.record_paths, list(metric_columns()), "none", ())
    run_batch(sw.base, specs, 0, *args, None)
    run_batch(sw.base, specs, 1, *args, "tiny")
    old = pd.read_parquet(tmp_path / "runs.parquet" / "part-000000.parquet")
    new = pd.read_parquet(tmp_path / "runs.parquet" / "part-000001.parquet")
    assert "sweep" not in old and "scenario" not in old and new["sweep"].tolist() == ["tiny"]
    assert (old[list(metric_columns())].dtypes == "float64").all()
    assert old["us_auto_idle_plant_days"].iloc[0] == new["us_auto_idle_plant_days"].iloc[0]
