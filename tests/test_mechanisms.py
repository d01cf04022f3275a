"""The mechanisms respond the right way, each compared over the same replicated seeds."""

from __future__ import annotations

import numpy as np

from tests.conftest import SHOCK, run_cached

SEEDS = range(12)


def _runs(*overrides: str):
    return [run_cached(str(SHOCK), s, ("scenario.end=2025-10-31", *overrides)) for s in SEEDS]


def _median(runs, key):
    vals = [r.summary[key] for r in runs]
    return float(np.median([np.inf if v is None else v for v in vals]))


def test_larger_buffers_delay_the_first_idling():
    small = _runs("automakers.US.buffer_days_mean=14")
    large = _runs("automakers.US.buffer_days_mean=35")
    d_small = np.array([r.summary["first_us_auto_shutdown_day"] for r in small], dtype=float)
    d_large = np.array([r.summary["first_us_auto_shutdown_day"] or np.inf for r in large], dtype=float)
    assert (d_large > d_small).mean() >= 0.9  # paired by seed
    assert np.median(d_large) >= np.median(d_small) + 10


def test_more_reviewers_shorten_waits_and_bring_recovery_forward():
    few = _runs("licensing.cn.reviewers=5", "licensing.cn.hire_per_month=0")
    many = _runs("licensing.cn.reviewers=60", "licensing.cn.hire_per_month=0")
    wait = lambda runs: np.median([r.summary["cn_licences"]["mean_wait_working_days"] for r in runs])
    assert wait(many) < wait(few) - 5
    assert _median(many, "us_auto_idle_plant_days") < _median(few, "us_auto_idle_plant_days")


def test_hiring_responds_to_the_backlog():
    runs = _runs("licensing.cn.reviewers=5")
    assert all(r.summary["cn_reviewers_end"] > 5 for r in runs)
    no_shock = run_cached(str(SHOCK), 0, ("scenario.end=2025-03-31",))
    assert no_shock.summary["cn_reviewers_end"] == 15  # no applications, no hiring


def test_air_freight_shortens_the_gap_between_approval_and_restart():
    air = _runs("shipping.air_freight=true")
    sea = _runs("shipping.air_freight=false")
    assert _median(air, "us_auto_half_recovery_days") < _median(sea, "us_auto_half_recovery_days")
    assert _median(air, "us_auto_idle_plant_days") < _median(sea, "us_auto_idle_plant_days")


def test_without_controls_nothing_happens_in_the_licensing_system():
    run = run_cached(str(SHOCK), 3, ("scenario.end=2025-04-03",))
    assert run.summary["cn_licences"]["submitted"] == 0
    assert run.summary["first_us_auto_shutdown_day"] is None
