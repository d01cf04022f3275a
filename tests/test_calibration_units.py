"""Calibration pieces without a calibration run: config errors, statistics and distances, the ordered
sampler, identifiability verdicts, posterior draws and their aggregation (end to end: test_calibration.py)."""

from __future__ import annotations

import math
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareshock.calibration import report
from rareshock.calibration.config import NULL_DISTANCE, load_calibration
from rareshock.calibration.posterior import aggregate_summary, aggregate_timeseries
from rareshock.calibration.stats import TargetArrays
from rareshock.cli import main
from tests.conftest import SHOCK

CONFIG = f"""
[calibration]
name = "unit"
scenario = "{SHOCK}"
overrides = ["scenario.end=2025-06-30"]
seed = 3
population = 20
generations = 2

[[parameters]]
path = "automakers.US.buffer_days_mean"
prior = "uniform"
low = 10.0
high = 40.0
source = "test prior"

[[parameters]]
path = "licensing.cn.reviewers"
prior = "integer"
low = 3
high = 30
source = "test prior"

[[targets]]
metric = "first_us_auto_shutdown_day"
low = 40
high = 50
scale = 5
source = "test"

[[targets]]
series = "auto_cover_days_us"
stat = "mean"
from = 2025-02-01
to = 2025-03-31
low = 20
high = 22
scale = 0.5
weight = 2.0
null_value = 0
source = "test"
"""


def _write(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "unit.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------
# Config errors: exit 2, one line, nothing written
# --------------------------------------------------------------------------------------------------
BAD = [
    (["--set", "calibration.populaton=30"], "unknown field; did you mean 'population'"),
    (["--set", "parameters.0.colour=1"], "parameters[0].colour: unknown field"),
    (["--set", "parameters.0.low=40.0"], "high must be greater than low"),
    (["--set", "parameters.0.low=50.0"], "high must be greater than low"),
    (["--set", "parameters.1.low=3.5"], "whole-number low and high"),
    (["--set", "parameters.0.prior=loguniform", "--set", "parameters.0.low=0.0"], "loguniform prior needs low > 0"),
    (["--set", "parameters.0.prior=normal"], "normal prior needs mean and sd"),
    (["--set", "parameters.0.sd=2.0"], "mean and sd are for normal priors"),
    (["--set", "parameters.0.path=automakers.US.bufer_days_mean"], "did you mean 'automakers.US.buffer_days_mean'"),
    (["--set", "parameters.0.path=automakers.US.plants_per_region"], "is not a scenario value field"),
    (["--set", "parameters.0.path=shipping.air_freight"], "only number fields can be calibrated"),
    (["--set", "parameters.1.prior=uniform"], 'give it prior = "integer"'),
    (["--set", "parameters.0.path=scenario.seed"], "is not calibrated"),
    (
        ["--set", "parameters.0.path=automakers.US.buffer_days_cv", "--set", "parameters.0.low=0.5"]
        + ["--set", "parameters.0.high=3.0"],
        "parameters[0] (automakers.US.buffer_days_cv) = 2.0625: automakers.US.buffer_days_cv: Input should be less",
    ),
    (["--set", "parameters.1.path=automakers.US.buffer_days_mean"], "listed twice"),
    (["--set", "targets.0.metric=first_us_auto_shutdwn_day"], "did you mean 'first_us_auto_shutdown_day'"),
    (["--set", "targets.1.series=auto_cover_day_us"], "did you mean 'auto_cover_days_us'"),
    (["--set", "targets.1.to=2025-08-01"], "outside the calibration run"),
    (["--set", "targets.1.on=2025-03-01"], 'stat = "mean" needs from and to'),
    (["--set", "targets.0.low=60"], "low must not exceed high"),
    (["--set", "targets.0.source="], "targets[0].source"),
    (["--set", "targets.0.null_distance=5.0", "--set", "targets.0.null_value=1"], "not both"),
    (["--set", "targets.0.series=cn_reviewers"], "exactly one of metric"),
    (["--set", "calibration.norm=0.5"], "calibration.norm: "),
    (["--set", "calibration.overrides=['scenario.end=2024-01-01']"], "calibration.overrides"),
]


@pytest.mark.parametrize("args,expected", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_configs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, expected):
    cfg = _write(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["calibrate", str(cfg), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rareshock: error: ") and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even parents


def test_a_missing_source_is_an_error(tmp_path, capsys):
    cfg = _write(tmp_path, CONFIG.replace('source = "test"\n', "", 1))
    assert main(["calibrate", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "targets[0].source: required field is missing" in capsys.readouterr().err


def test_the_valid_config_loads_and_fingerprints_ignore_stop_rules(tmp_path):
    cal = load_calibration(_write(tmp_path))
    assert [p.path for p in cal.params] == ["automakers.US.buffer_days_mean", "licensing.cn.reviewers"]
    assert cal.labels == ["first_us_auto_shutdown_day", "auto_cover_days_us.mean[2025-02-01..2025-03-31]"]
    more = load_calibration(_write(tmp_path), ["calibration.generations=9", "calibration.min_epsilon=0.5"])
    assert more.fingerprint() == cal.fingerprint()
    other = load_calibration(_write(tmp_path), ["calibration.seed=4"])
    assert other.fingerprint() != cal.fingerprint()


# --------------------------------------------------------------------------------------------------
# Statistics and distances
# --------------------------------------------------------------------------------------------------
def test_interval_distances_nulls_and_norms(tmp_path):
    cal = load_calibration(_write(tmp_path))
    arr = TargetArrays.of(cal)
    # inside both intervals -> 0; below/above -> gap / scale
    assert arr.per_target(np.array([45.0, 21.0])).tolist() == [0.0, 0.0]
    assert arr.per_target(np.array([35.0, 23.0])).tolist() == [1.0, 2.0]
    # a null metric without null_value gets the default null distance; with null_value, that value is used
    d = arr.per_target(np.array([np.nan, np.nan]))
    assert d[0] == NULL_DISTANCE and d[1] == pytest.approx((20 - 0) / 0.5)
    # weighted sum (norm 1), p = 2, max
    assert arr.distance(np.array([35.0, 23.0])) == pytest.approx(1.0 + 2.0 * 2.0)
    p2 = load_calibration(_write(tmp_path), ["calibration.norm=2.0"])
    assert TargetArrays.of(p2).distance(np.array([35.0, 23.0])) == pytest.approx(math.sqrt(1.0 + 2.0 * 4.0))
    mx = load_calibration(_write(tmp_path), ['calibration.norm="max"'])
    assert TargetArrays.of(mx).distance(np.array([35.0, 23.0])) == pytest.approx(4.0)


def test_statistics_are_read_as_documented(tmp_path):
    import datetime as dt

    from rareshock.calibration.stats import simulate
    from rareshock.simulation import run_model, summarise

    cal = load_calibration(_write(tmp_path))
    values = {"automakers.US.buffer_days_mean": 22.0, "licensing.cn.reviewers": 12}
    stats = simulate(cal.base, values, 5, TargetArrays.of(cal))
    from rareshock.sweeps.spec import scenario_for

    model = run_model(scenario_for(cal.base, values), 5)
    col = model.records.column("auto_cover_days_us")
    first, last = (dt.date(2025, 2, 1) - cal.start).days, (dt.date(2025, 3, 31) - cal.start).days
    assert stats[1] == col[first : last + 1].mean()
    shutdown = summarise(model)["first_us_auto_shutdown_day"]
    assert (np.isnan(stats[0]) and shutdown is None) or stats[0] == shutdown


# --------------------------------------------------------------------------------------------------
# The ordered sampler: the first n acceptances in index order, whatever the completion order
# --------------------------------------------------------------------------------------------------
def _fake_simulate_one():
    """A pyabc-like simulate_one: accepts with probability 0.3 from NumPy's global generator (seeded per
    evaluation by the sampler) and fails one evaluation in 7 (by the model seed)."""
    from pyabc.population import Particle

    from rareshock.calibration.sampler import current_seed

    seed, (t, i) = current_seed()
    u = np.random.random()  # noqa: NPY002 (pyabc draws from NumPy's global generator; the sampler seeds it)
    return Particle(
        m=0,
        parameter={"x": u},
        weight=1.0,
        sum_stat={"_failed": np.int64(seed % 7 == 0), "_seed": np.int64(seed)},
        distance=u,
        accepted=bool(u < 0.3),
        proposal_id=0,
        preliminary=False,
    )


class _ScrambledBackend:
    """Runs chunks in-process at once but hands them back in a random order."""

    dask = False

    def __init__(self, workers: int, rng: int):
        self.workers = workers
        self.rng = np.random.default_rng(rng)

    def submit(self, fn, *args):
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def wait_any(self, futures):
        futures = list(futures)
        k = int(self.rng.integers(1, len(futures) + 1))
        return {futures[i] for i in self.rng.permutation(len(futures))[:k]}

    def cancel(self, futures):
        """Futures here are already done: there is nothing to cancel."""


def test_the_sampler_takes_the_first_acceptances_in_index_order_whatever_the_workers():
    from rareshock.calibration.sampler import OrderedSampler, eval_seed, evaluate_chunk

    n, t, seed = 25, 3, 99
    reference = evaluate_chunk("ref", __import__("cloudpickle").dumps(_fake_simulate_one), seed, t, 0, 400)
    expected, accepted = [], 0
    for i, p in enumerate(reference):
        failed = eval_seed(seed, t, i) % 7 == 0
        ok = p.accepted and not failed
        expected.append((p.parameter["x"], ok))
        accepted += ok
        if accepted == n:
            break
    results = []
    for workers, rng in ((1, 0), (2, 1), (7, 2)):
        sampler = OrderedSampler(seed, _ScrambledBackend(workers, rng))
        sample = sampler.sample_until_n_accepted(n, _fake_simulate_one, t)
        got = [(p.parameter["x"], p.accepted) for p in sample.accepted_particles]
        assert got == [e for e in expected if e[1]]
        assert sampler.nr_evaluations_ == len(expected)
        assert sampler.generation_stats[t]["failed"] == sum(
            eval_seed(seed, t, i) % 7 == 0 for i in range(len(expected))
        )
        results.append(got)
    assert results[0] == results[1] == results[2]


def test_the_sampler_stops_at_the_evaluation_limit():
    from rareshock.calibration.sampler import OrderedSampler

    sampler = OrderedSampler(1, _ScrambledBackend(2, 0))
    sample = sampler.sample_until_n_accepted(1000, _fake_simulate_one, 0, max_eval=50)
    assert not sample.ok and sampler.nr_evaluations_ == 50


# --------------------------------------------------------------------------------------------------
# Identifiability verdicts follow the documented thresholds
# --------------------------------------------------------------------------------------------------
def test_verdict_thresholds():
    assert report.PINNED == 0.25 and report.PARTLY == 0.75
    assert report.verdict(0.0) == "pinned down"
    assert report.verdict(0.25) == "pinned down"
    assert report.verdict(0.2501) == "partly informed"
    assert report.verdict(0.75) == "partly informed"
    assert report.verdict(0.7501) == "stays at prior"
    assert report.verdict(1.3) == "stays at prior"
    assert report.verdict(float("nan")) == "stays at prior"


def test_identifiability_of_synthetic_posteriors(tmp_path):
    cal = load_calibration(_write(tmp_path))
    n = 2000
    rng = np.random.default_rng(0)
    post = pd.DataFrame(
        {
            # the prior itself: stays at prior
            "automakers.US.buffer_days_mean": rng.uniform(10, 40, n),
            # a tenth of the prior's range: pinned down
            "licensing.cn.reviewers": rng.integers(15, 18, n),
            "weight": np.full(n, 1.0 / n),
        }
    )
    ident = report.identifiability(cal, post).set_index("parameter")
    buf, rev = ident.loc["automakers.US.buffer_days_mean"], ident.loc["licensing.cn.reviewers"]
    assert buf["prior_q05"] == pytest.approx(11.5) and buf["prior_q95"] == pytest.approx(38.5)
    assert buf["width_ratio"] == pytest.approx(1.0, abs=0.05) and buf["verdict"] == "stays at prior"
    assert rev["prior_q05"] == 4 and rev["prior_q95"] == 29
    assert rev["posterior_q05"] == 15 and rev["posterior_q95"] == 17
    assert rev["width_ratio"] == pytest.approx(2 / 25) and rev["verdict"] == "pinned down"
    # half of the prior's range, weighted: partly informed
    post["automakers.US.buffer_days_mean"] = np.linspace(10, 40, n)
    post["weight"] = np.where(np.abs(post["automakers.US.buffer_days_mean"] - 25) < 7.5, 1.0, 1e-9)
    post["weight"] /= post["weight"].sum()
    partly = report.identifiability(cal, post).set_index("parameter").loc["automakers.US.buffer_days_mean"]
    assert partly["width_ratio"] == pytest.approx(13.5 / 27, abs=0.01) and partly["verdict"] == "partly informed"


def test_weighted_quantiles_and_systematic_resampling():
    x = np.array([3.0, 1.0, 2.0, 4.0])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    assert report.weighted_quantile(x, w, 0.05) == 1.0
    assert report.weighted_quantile(x, w, 0.2) == 1.0
    assert report.weighted_quantile(x, w, 0.21) == 2.0
    assert report.weighted_quantile(x, w, 0.95) == 4.0
    idx = report.systematic_resample(w, 10, seed=5)
    assert np.bincount(idx, minlength=4).tolist() == [1, 2, 3, 4]
    assert (idx == report.systematic_resample(w, 10, seed=5)).all()
    counts = np.bincount(report.systematic_resample(w, 7, seed=8), minlength=4)
    assert all(math.floor(7 * wi) <= c <= math.ceil(7 * wi) for c, wi in zip(counts, w))


# --------------------------------------------------------------------------------------------------
# Aggregating draws
# --------------------------------------------------------------------------------------------------
def test_summary_aggregation_keeps_names_and_adds_bands():
    draws = [
        {"a": 1, "b": {"c": 0.5, "d": None}, "e": True, "s": "x", "l": [1]},
        {"a": 3, "b": {"c": 0.1, "d": 4}, "e": True, "s": "x", "l": [2]},
        {"a": 2, "b": {"c": 0.3, "d": 2}, "e": False, "s": "x", "l": [1]},
        {"a": 5, "b": {"c": 0.2, "d": None}, "e": True, "s": "x", "l": [1]},
    ]
    s = aggregate_summary(draws)
    assert s["a"] == 2 and isinstance(s["a"], int)  # inverted CDF: an observed value
    assert s["b"]["c"] == 0.2
    assert s["b"]["d"] == 4  # null is larger than any number: [2, 4, null, null]
    assert s["posterior"]["p10"]["a"] == 1 and s["posterior"]["p90"]["a"] == 5
    assert s["posterior"]["p90"]["b"]["d"] is None
    assert s["posterior"]["null_share"] == {"b.d": 0.5}
    assert s["e"] is True and s["s"] == "x"
    assert s["l"] is None and s["posterior"]["varies"] == ["l"]


def test_timeseries_aggregation_bands():
    dates = pd.date_range("2025-01-01", periods=3)
    frames = [
        pd.DataFrame({"date": dates, "n": np.array([k, k + 1, k + 2], dtype=np.int64), "x": [0.1 * k] * 3})
        for k in range(10)
    ]
    ts = aggregate_timeseries(frames)
    assert list(ts.columns) == ["date", "n", "n_p10", "n_p90", "x", "x_p10", "x_p90"]
    assert ts["n"].dtype == np.int64 and ts["n"].tolist() == [4, 5, 6]
    assert ts["n_p10"].tolist() == [0, 1, 2] and ts["n_p90"].tolist() == [8, 9, 10]
    assert (ts["x_p10"] <= ts["x"]).all() and (ts["x"] <= ts["x_p90"]).all()


def test_rejected_failures_are_counted_and_too_many_stop_the_calibration():
    from rareshock.calibration.sampler import CalibrationAborted, OrderedSampler

    def always_fails():
        from pyabc.population import Particle

        return Particle(
            m=0,
            parameter={"x": 0.0},
            weight=1.0,
            sum_stat={"_failed": np.int64(1)},
            distance=0.0,
            accepted=True,
            proposal_id=0,
            preliminary=False,
        )

    with pytest.raises(CalibrationAborted, match="simulations failed"):
        OrderedSampler(1, _ScrambledBackend(2, 0)).sample_until_n_accepted(10, always_fails, 0)


def test_a_simulation_that_raises_stops_or_is_rejected(tmp_path, monkeypatch):
    from rareshock.calibration import sampler, smc
    from rareshock.calibration.sampler import SimulationFailed

    cal = load_calibration(_write(tmp_path))
    arr = TargetArrays.of(cal)

    def broken(*args):
        raise RuntimeError("capacity too small")

    monkeypatch.setattr(smc, "simulate", broken)
    monkeypatch.setitem(sampler._CURRENT, "seed", 123)
    monkeypatch.setitem(sampler._CURRENT, "where", (2, 17))
    pars = {p.key: 20.0 for p in cal.params}
    with pytest.raises(SimulationFailed, match=r"generation 2, evaluation 17: .*seed 123\): RuntimeError: capacity"):
        smc.ScenarioModel(cal.base, cal.params, arr, "stop").sample(pars)
    out = smc.ScenarioModel(cal.base, cal.params, arr, "reject").sample(pars)
    assert out["_failed"] == 1 and np.isnan(out["first_us_auto_shutdown_day"]) and out["_seed"] == 123
