"""The patterns the model must reproduce, with their tolerances and replicate counts.

Calibration inputs (docs/parameters.md) never include these outcomes: no date or day count of the 2025
shutdowns is written in code or config; they follow from buffers, transit times and the licence queue.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHOCK, run_cached

EXPORTS_2024_T_MONTH = 58152 / 12  # Adamas / Reuters (calibration_facts §3)
US_EXPORTS_2024_T_MONTH = 620  # derived, same source
SEEDS = range(50)


def _monthly(ts, col):
    return ts.set_index("date")[col].resample("MS").sum()


# ------------------------------------------------------------------ baseline_2024: a stable world
def test_baseline_no_plant_ever_idles(baseline_run):
    s = baseline_run.summary
    assert s["first_us_auto_shutdown_day"] is None
    assert all(v == 0 for v in s["auto_idle_plant_days_by_region"].values())
    assert s["defense_shortfall_share"] < 1e-9


def test_baseline_exports_stay_at_the_2024_level(baseline_run):
    ts = baseline_run.timeseries
    total, us = _monthly(ts, "cn_magnet_exports_t"), _monthly(ts, "cn_magnet_exports_to_us_t")
    days = total.index.days_in_month
    assert np.all(np.abs(total / days * 365 / 12 / EXPORTS_2024_T_MONTH - 1) < 0.10)
    assert np.all(np.abs(us / days * 365 / 12 / US_EXPORTS_2024_T_MONTH - 1) < 0.10)


def test_baseline_buffers_and_prices_are_stable(baseline_run):
    ts = baseline_run.timeseries
    for col in (
        "price_dy_oxide_cn_usd_kg",
        "price_dy_oxide_ex_cn_usd_kg",
        "price_ndfeb_cn_usd_kg",
        "price_ndfeb_ex_cn_usd_kg",
        "us_auto_buffer_days",
        "ex_cn_makers_dytb_cover_days",
    ):
        x = ts[col]
        assert x.max() / x.min() < 1.10, col


# ------------------------------------------------------------------ april_2025_shock
@pytest.fixture(scope="module")
def shock_runs():
    """50 seeds of the shock, to the end of September (enough for first shutdowns and approvals)."""
    return [run_cached(str(SHOCK), seed, ("scenario.end=2025-09-30",)) for seed in SEEDS]


def test_first_us_plant_idles_40_to_60_days_after_the_controls(shock_runs):
    days = [r.summary["first_us_auto_shutdown_day"] for r in shock_runs]
    assert None not in days
    assert 40 <= np.median(days) <= 60, np.median(days)


def test_other_regions_idle_in_the_order_of_their_buffers(shock_runs):
    first = {
        reg: np.median([r.summary["first_auto_shutdown_day_by_region"][reg] or 10**6 for r in shock_runs])
        for reg in ("US", "EU", "IN", "JP")
    }
    assert first["EU"] < 10**6 and first["IN"] < 10**6  # plants elsewhere idle too
    # Japan's plants hold months of stock (AP 2010): they idle last, if at all
    assert first["JP"] > max(first["US"], first["EU"], first["IN"])


def test_first_approvals_arrive_around_the_statutory_clock(shock_runs):
    for r in shock_runs[:10]:
        lic = r.summary["cn_licences"]
        # 45 working days is about 63-70 calendar days; no approval comes before the clock has run
        assert 60 <= lic["first_approval_day"] <= 90, lic["first_approval_day"]
        assert lic["mean_wait_working_days"] >= 40


def test_military_end_users_get_no_chinese_licences(shock_runs):
    assert all(r.summary["cn_licences"]["approved_military"] == 0 for r in shock_runs)
    assert all(r.summary["us_defense_shortfall_share"] > 0 for r in shock_runs)


def test_exports_fall_after_the_controls_and_partly_recover(shock_run):
    m = _monthly(shock_run.timeseries, "cn_magnet_exports_t")
    march, may, dec = m.iloc[2], m.iloc[4], m.iloc[11]
    assert may < 0.6 * march
    assert may < dec < march
