"""Running one scenario: build the model, step it to the end, turn its records into results."""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rareshock.agents.automaker import PLANT_REGIONS
from rareshock.model.codes import REGIONS, EndUse
from rareshock.model.config import ScenarioConfig
from rareshock.model.model import RareShockModel


@dataclass
class RunResult:
    summary: dict
    timeseries: pd.DataFrame
    config: dict
    seed: int


def run_model(cfg: ScenarioConfig, seed: int | None = None) -> RareShockModel:
    """Build and run the model to its end date; returns the finished model."""
    seed = cfg.scenario.seed if seed is None else seed
    model = RareShockModel(cfg, rng=seed)
    for _ in range(model.n_days):
        model.step()
    return model


@functools.lru_cache(maxsize=1)
def timeseries_columns() -> tuple[str, ...]:
    """The columns of ``timeseries.parquet`` after ``date`` (each population's registered columns)."""
    from rareshock.model.config import Scenario

    probe = ScenarioConfig(scenario=Scenario(name="probe", start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 1)))
    return RareShockModel(probe, rng=0).records.columns


def timeseries(model: RareShockModel) -> pd.DataFrame:
    return model.records.frame(model.start)


def _first_day(mask: np.ndarray, origin: int | None) -> int | None:
    if origin is None:
        return None
    hit = np.flatnonzero(mask[origin:])
    return int(hit[0]) if hit.size else None


def _days_after(day: int, origin: int | None) -> int | None:
    """Days from the first control to ``day`` (-1: never), or None."""
    return None if day < 0 or origin is None else day - origin


def _first_year(dates: pd.DatetimeIndex, supplied: np.ndarray, need_per_day: float, level: float) -> int | None:
    """First calendar year in which ``supplied`` (t/day, free of Chinese material) reaches ``level`` of
    the need over that year."""
    if need_per_day <= 0:
        return None
    by_year = pd.Series(supplied, index=dates).groupby(dates.year)
    for year, x in by_year:
        if x.sum() >= level * need_per_day * len(x):
            return int(year)
    return None


def _episodes(idle: np.ndarray) -> int:
    """Number of distinct spells with at least one idle plant."""
    on = idle > 0
    return int(on[0]) + int((on[1:] & ~on[:-1]).sum())


def _chip_metrics(model: RareShockModel) -> dict:
    m = model.chips.metrics()
    keep = (
        "us_chip_revenue_lost_usd",
        "us_chip_write_off_usd",
        "us_chip_remitted_usd",
        "cn_chip_localisation_end",
        "bis_applications",
        "bis_mean_wait_working_days",
    )
    return {k: m[k] for k in keep if k in m}


# What each metric of the summary is, for the tables that hold one row per run (a sweep's runs.parquet, the
# draws.parquet of a posterior run): whole numbers (counts, days, years; missing where the event did not
# happen) are nullable Int64, booleans nullable boolean, dates datetime64; every other metric is a float.
# Dotted names as in runs.parquet; * matches the regions of a by-region metric. summary.json keeps its JSON
# numbers. tests/test_sweep.py checks these against a run's summary.
WHOLE_METRICS = (
    "first_us_auto_shutdown_day",
    "first_auto_shutdown_day_by_region.*",
    "us_auto_idle_plant_days",
    "auto_idle_plant_days_by_region.*",
    "peak_auto_plants_idle_by_region.*",
    "auto_plants_ever_idle_by_region.*",
    "auto_plants_by_region.*",
    "cn_licences.submitted",
    "cn_licences.approved",
    "cn_licences.denied",
    "cn_licences.returned",
    "cn_licences.pending_end",
    "cn_licences.approved_military",
    "cn_licences.decided_after_statutory_limit",
    "cn_licences.first_approval_day",
    "first_us_auto_licence_day",
    "first_auto_licence_day_by_region.*",
    "first_cn_licence_approval_day",
    "us_auto_half_recovery_days",
    "cn_reviewers_end",
    "price_guard_days",
    "dy_price_at_makers_bid_days",
    "bis_applications.*",
    "year_us_defense_magnets_non_cn",
    "year_us_auto_magnets_non_cn_50",
    "year_us_auto_magnets_non_cn_80",
    "shutdown_episodes_us",
)
BOOLEAN_METRICS = ("deal_active_end",)
DATE_METRICS = ("first_control_date",)


def metric_kind(name: str) -> str:
    """``"int"``, ``"bool"``, ``"date"`` or ``"float"``: the type of the dotted summary metric ``name`` in
    per-run tables (see ``WHOLE_METRICS``)."""
    for kind, patterns in (("int", WHOLE_METRICS), ("bool", BOOLEAN_METRICS), ("date", DATE_METRICS)):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return kind
    return "float"


def summarise(model: RareShockModel) -> dict:
    """The outcome metrics of one run (names fixed: users and checks rely on them)."""
    col = model.records.column
    dates = pd.date_range(model.start, periods=model.n_days, freq="D")
    prog = model.investment.programme
    lic = model.licensing
    origin = lic.first_control_day
    idle = {r: col(f"auto_plants_idle_{r.lower()}") for r in PLANT_REGIONS}
    vpd = model.plants.vpd_by_region
    lost = {
        r: float(vpd[REGIONS.index(r)] * model.n_days - col(f"vehicles_produced_{r.lower()}").sum())
        for r in PLANT_REGIONS
    }
    c = lic.counts
    us_auto = int(lic.first_approval[REGIONS.index("US"), EndUse.AUTO])
    us_need = model.sourcing.us_need
    diplomacy = model.governments.diplomacy
    half_recovery = None
    if us_auto >= 0:
        after = idle["US"][us_auto:]
        hit = np.flatnonzero(after <= after[0] / 2)
        half_recovery = int(hit[0]) if hit.size else None
    decided = c.approved + c.denied
    start = 0 if origin is None else origin
    def_share = col("defense_output_share")[start:]
    return {
        "scenario": model.cfg.scenario.name,
        "first_control_date": None if origin is None else str(model.start + dt.timedelta(days=origin)),
        "first_us_auto_shutdown_day": _first_day(idle["US"] > 0, origin),
        "first_auto_shutdown_day_by_region": {r: _first_day(idle[r] > 0, origin) for r in PLANT_REGIONS},
        "us_auto_idle_plant_days": int(idle["US"].sum()),
        "auto_idle_plant_days_by_region": {r: int(idle[r].sum()) for r in PLANT_REGIONS},
        "peak_auto_plants_idle_by_region": {r: int(idle[r].max()) for r in PLANT_REGIONS},
        "auto_plants_ever_idle_by_region": {
            r: int(model.plants.ever_idle[model.plants.region == REGIONS.index(r)].sum()) for r in PLANT_REGIONS
        },
        "auto_plants_by_region": {r: int((model.plants.region == REGIONS.index(r)).sum()) for r in PLANT_REGIONS},
        "lost_vehicles_by_region": {r: round(v, 1) for r, v in lost.items()},
        "lost_production_share_by_region": {
            r: (round(lost[r] / (vpd[REGIONS.index(r)] * model.n_days), 6) if vpd[REGIONS.index(r)] > 0 else None)
            for r in PLANT_REGIONS
        },
        "defense_shortfall_share": float(1.0 - def_share.mean()) if def_share.size else 0.0,
        "us_defense_shortfall_share": float(1.0 - col("us_defense_output_share")[start:].mean())
        if def_share.size
        else 0.0,
        "cn_licences": {
            "submitted": c.submitted,
            "approved": c.approved,
            "denied": c.denied,
            "returned": c.returned,
            "pending_end": lic.pending,
            "mean_wait_working_days": round(c.wait_sum_wd / decided, 2) if decided else None,
            "approved_military": c.approved_military,
            "decided_after_statutory_limit": c.late,
            "first_approval_day": None
            if c.first_approval_day is None or origin is None
            else c.first_approval_day - origin,
        },
        "first_us_auto_licence_day": None if us_auto < 0 or origin is None else us_auto - origin,
        "first_auto_licence_day_by_region": {
            r: _days_after(int(lic.first_approval[REGIONS.index(r), EndUse.AUTO]), origin)
            for r in PLANT_REGIONS
            if r != "CN"
        },
        "first_cn_licence_approval_day": None
        if c.first_approval_day is None or origin is None
        else c.first_approval_day - origin,
        "us_auto_half_recovery_days": half_recovery,
        "cn_reviewers_end": int(col("cn_reviewers")[-1]),
        "price_dy_oxide_ex_cn_peak_usd_kg": round(float(col("price_dy_oxide_ex_cn_usd_kg").max()), 2),
        "price_ndfeb_ex_cn_peak_usd_kg": round(float(col("price_ndfeb_ex_cn_usd_kg").max()), 2),
        "price_guard_days": model.market.guard_days,
        "dy_price_at_makers_bid_days": model.market.dy_at_margin_days,
        **_chip_metrics(model),
        "year_us_defense_magnets_non_cn": _first_year(dates, col("us_defense_non_cn_t"), us_need["defense"], 0.95),
        "year_us_auto_magnets_non_cn_50": _first_year(dates, col("us_auto_non_cn_t"), us_need["auto"], 0.50),
        "year_us_auto_magnets_non_cn_80": _first_year(dates, col("us_auto_non_cn_t"), us_need["auto"], 0.80),
        "investment_spent_usd": float(prog.spent + prog.training_spent),
        "investment_budget_usd": float(prog.budget),
        "announced_projects_spent_usd": float(prog.announced_spent),
        "floor_payments_usd": float(prog.floor_payments),
        "lost_vehicles_us": round(lost["US"], 1),
        "shutdown_episodes_us": _episodes(idle["US"]),
        "deal_active_end": diplomacy.deal is not None,
        "policy_log": [f"{model.start + dt.timedelta(days=d)}: {what}" for d, what in diplomacy.log],
        **model.stockpiles.summary(),  # only if the scenario has stockpile programmes
    }


def run_scenario(cfg: ScenarioConfig, seed: int | None = None) -> RunResult:
    seed = cfg.scenario.seed if seed is None else seed
    model = run_model(cfg, seed)
    return RunResult(summarise(model), timeseries(model), cfg.model_dump(mode="json"), seed)
