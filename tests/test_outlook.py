"""Branched comparisons (``[comparison] branch = DATE``) and the outlook experiment: each draw's trunk is
simulated once and forked into every outlook, and each fork equals the unbroken run of its outlook."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from rareshock import compare
from rareshock.model.config import ConfigError, load_scenario
from rareshock.state import trunk_part

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "experiments" / "scenarios"
SHOCK = SCEN / "april_2025_shock.toml"
POSTERIOR = ROOT / "experiments" / "calibration" / "synthetic_recovery.posterior.parquet"
BRANCH = dt.date(2025, 6, 1)

# two futures of april_2025_shock cut at 2025-06-01: one tightens, one hires reviewers and runs longer
TIGHT = """
[scenario]
name = "tight"
extends = "{shock}"
end = 2025-09-30
[[events]]
date = 2025-06-20
kind = "cn_licensing_stance"
p_approve_civil = 0.5
"""
HIRE = """
[scenario]
name = "hire"
extends = "{shock}"
end = 2025-10-31
[[events]]
date = 2025-06-02
kind = "cn_hire_reviewers"
reviewers = 60
"""


@pytest.fixture(scope="module")
def futures(tmp_path_factory):
    d = tmp_path_factory.mktemp("futures")
    paths = []
    for name, text in (("tight", TIGHT), ("hire", HIRE)):
        p = d / f"{name}.toml"
        # the shock's events after the branch date stay in both futures (they are the same there)
        p.write_text(text.format(shock=SHOCK))
        paths.append(p)
    return d, paths


def test_forked_runs_equal_unbroken_runs_of_each_future(futures):
    from rareshock.calibration.posterior import load_posterior
    from rareshock.simulation import run_model, timeseries

    _, paths = futures
    (_, values), *_ = load_posterior(str(POSTERIOR)).draws(1, 3)
    forked = compare._run_branched([str(p) for p in paths], 99, values, BRANCH)
    assert len(forked) == 2
    for p, (summary, yearly, monthly) in zip(paths, forked):
        s, y = compare._run(str(p), 99, values)
        assert summary == s
        pd.testing.assert_frame_equal(yearly, y, check_exact=True)
        unbroken = compare.monthly(timeseries(run_model(compare._config(str(p), values), 99)))
        pd.testing.assert_frame_equal(monthly, unbroken, check_exact=True)
    assert forked[0][0] != forked[1][0]  # two different futures


def test_a_branched_comparison_writes_monthly_bands_and_is_deterministic(futures):
    d, paths = futures
    comp = d / "comp.toml"
    comp.write_text(
        f'[comparison]\nname = "c"\nscenarios = ["{paths[0]}", "{paths[1]}"]\nseed = 4\nbranch = {BRANCH}\n'
        f'posterior = "{POSTERIOR}"\nposterior_draws = 2\n'
    )
    compare.run_comparison(comp, d / "one", workers=1)
    compare.run_comparison(comp, d / "two", workers=2)
    for f in ("runs.csv", "yearly.csv", "monthly.csv", "table.csv"):
        assert (d / "one" / f).read_bytes() == (d / "two" / f).read_bytes(), f
    runs = pd.read_csv(d / "one" / "runs.csv")
    by = runs.set_index(["scenario", "replicate"])
    for r in range(2):  # one trunk per draw: the same seed and particle in every future
        assert by.loc[("tight", r), "seed"] == by.loc[("hire", r), "seed"]
        assert by.loc[("tight", r), "particle"] == by.loc[("hire", r), "particle"]
    monthly = pd.read_csv(d / "one" / "monthly.csv")
    assert set(monthly["month"][monthly["scenario"] == "hire"]) >= {"2025-01", "2025-10"}
    assert monthly["month"][monthly["scenario"] == "tight"].max() == "2025-09"
    figures = {p.name for p in (d / "one" / "figures").iterdir()}
    assert {f"outlook_{m}.png" for m in compare.MONTHLY} <= figures
    assert {f"outlook_{m}.svg" for m in compare.MONTHLY} <= figures  # vector beside every PNG
    svg = (d / "one" / "figures" / "outlook_price_ndfeb_ex_cn_usd_kg.svg").read_text()
    assert "comparison c: tight, hire · 2 draws of posterior" in svg and "commit " in svg  # the caption line
    assert "p_approve_civil 0.5" in svg and "[tight]" in svg  # the event after the branch, keyed to its scenario
    # the trunk is the same in both futures up to the branch month
    pre = monthly[monthly["month"] < "2025-06"].pivot_table(index=["replicate", "month"], columns="scenario")
    for m in compare.MONTHLY:
        assert (pre[(m, "tight")] == pre[(m, "hire")]).all(), m


def test_futures_that_differ_before_the_branch_are_refused(futures, tmp_path):
    _, paths = futures
    other = tmp_path / "other.toml"
    other.write_text(TIGHT.format(shock=SHOCK) + "[licensing.cn]\nreviewers = 31\n")
    comp = tmp_path / "comp.toml"
    comp.write_text(
        f'[comparison]\nname = "c"\nscenarios = ["{paths[1]}", "{other}"]\nbranch = {BRANCH}\nreplications = 1\n'
    )
    with pytest.raises(ConfigError, match=r"scenarios\[1\]: differs from scenarios\[0\] up to the branch date"):
        compare.load_comparison(comp)
    comp.write_text(f'[comparison]\nname = "c"\nscenarios = ["{paths[0]}"]\nbranch = 2025-12-01\nreplications = 1\n')
    with pytest.raises(ConfigError, match=r"comparison.branch: 2025-12-01 is outside comparison.scenarios\[0\]"):
        compare.load_comparison(comp)


def test_the_outlooks_share_the_trunk_and_add_only_later_events():
    from rareshock.reproduce import experiments

    table = tomllib.loads((ROOT / "experiments" / "comparisons" / "outlook.toml").read_text())["comparison"]
    branch = table["branch"]
    trunk_cfg = load_scenario(SCEN / "record_2025_2026.toml")
    assert trunk_cfg.scenario.end == branch  # the outlooks branch from the end of the record
    trunk = trunk_part(trunk_cfg.model_dump(mode="json"), branch)
    outlooks = [load_scenario((ROOT / "experiments" / "comparisons" / s).resolve()) for s in table["scenarios"]]
    compare._check_trunk(outlooks, branch)
    for cfg in outlooks:
        assert trunk_part(cfg.model_dump(mode="json"), branch) == trunk
        assert cfg.scenario.end > branch
    assert table["reproduce"] is True and table["posterior"] == "april_2025"
    assert any(e.kind == "comparison" and e.name == "outlook" for e in experiments())


def test_reproduce_regenerates_and_checks_a_branched_comparison(futures, tmp_path):
    """A branched comparison marked reproduce = true is regenerated and checked by `rareshock reproduce`,
    monthly.csv included: a changed monthly number fails the check."""
    from rareshock.reproduce import reproduce

    _, paths = futures
    (tmp_path / "experiments" / "comparisons").mkdir(parents=True)
    (tmp_path / "experiments" / "comparisons" / "fork.toml").write_text(
        f'[comparison]\nname = "fork"\nscenarios = ["{paths[0]}", "{paths[1]}"]\nseed = 5\nbranch = {BRANCH}\n'
        f'posterior = "{POSTERIOR}"\nposterior_draws = 2\nreproduce = true\n'
    )
    results = tmp_path / "results"
    results.mkdir()
    ok, lines = reproduce(False, None, results, 1, False, root=tmp_path)
    assert ok and (results / "fork" / "monthly.csv").exists(), lines
    ok, lines = reproduce(True, None, results, 1, False, root=tmp_path, exact=True)
    assert ok and lines == ["fork: identical"], lines
    monthly = pd.read_csv(results / "fork" / "monthly.csv")
    monthly.loc[len(monthly) - 1, "price_ndfeb_ex_cn_usd_kg"] *= 1.01
    monthly.to_csv(results / "fork" / "monthly.csv", index=False, float_format="%.10g")
    ok, lines = reproduce(True, None, results, 1, False, root=tmp_path)
    assert not ok and any("fork/monthly.csv: column 'price_ndfeb_ex_cn_usd_kg'" in line for line in lines), lines
