"""Typed scenario configuration: TOML in, validated :class:`ScenarioConfig` out.

Every parameter has a default here; ``docs/parameters.md`` gives its meaning, unit and source (or marks
it as an assumption). Scenario files under ``experiments/scenarios/`` override defaults and list dated
policy events. ``--set dotted.path=value`` overrides any field from the command line.

Bad input raises :class:`ConfigError`, whose message is one line naming the field path, the value given
and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from rareshock.model.chips_config import CHIP_EVENT_KINDS, CHIP_EVENTS, ChipsConfig
from rareshock.model.codes import CONTROLLABLE, CONTROLLED_ELEMENTS, MATERIALS, REGIONS, STAGES
from rareshock.model.schema import ConfigError, Date, Days, NonNeg, Pos, Share, Strict, Tonnes, Vehicles

PosShare = Annotated[float, Field(gt=0, le=1)]

StageName = Literal[STAGES]  # type: ignore[valid-type]

__all__ = ["CONTROLLABLE", "MATERIALS", "REGIONS", "STAGES", "ConfigError", "ScenarioConfig", "load_scenario"]


def _ex_cn_keys(v: dict) -> dict:
    bad = sorted(set(v) - set(REGIONS[1:]))
    if bad:
        raise ValueError(f"unknown region {bad[0]!r}; allowed: {', '.join(REGIONS[1:])}")
    return v


def _all_ex_cn_keys(v: dict) -> dict:
    _ex_cn_keys(v)
    missing = [r for r in REGIONS[1:] if r not in v]
    if missing:
        raise ValueError(f"missing region {missing[0]!r}; give all of: {', '.join(REGIONS[1:])}")
    return v


# --------------------------------------------------------------------------------------------------
# Populations
# --------------------------------------------------------------------------------------------------
class RegionalPlants(Strict):
    """Automaker assembly plants of one region."""

    plants: Annotated[int, Field(ge=0, le=2000)]
    vehicles_per_year: Vehicles
    bev_share: Share
    hev_share: Share
    cn_supply_share: Share
    buffer_days_mean: Pos
    buffer_days_cv: Annotated[float, Field(ge=0, le=2)] = 0.35

    @model_validator(mode="after")
    def _powertrains(self) -> RegionalPlants:
        if self.bev_share + self.hev_share > 1:
            raise ValueError("bev_share + hev_share must be at most 1")
        return self


def _plants(n, vpy, bev, hev, cn, buf) -> RegionalPlants:
    return RegionalPlants(
        plants=n, vehicles_per_year=vpy, bev_share=bev, hev_share=hev, cn_supply_share=cn, buffer_days_mean=buf
    )


PartName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Line = Literal["ice", "hev", "bev"]


class Part(Strict):
    """A magnet-bearing part of a vehicle (its tier-1 and tier-2 chain's magnets): how much NdFeB each
    powertrain needs, whether that NdFeB is Dy/Tb-bearing, and how much of its Chinese magnet supply
    arrives inside China-made parts rather than as loose magnets."""

    kg_ice: NonNeg
    kg_hev: NonNeg
    kg_bev: NonNeg
    grade: Literal["heavy", "light"]  # heavy: Dy/Tb-bearing NdFeB (listed in Announcement No. 18); light: Dy/Tb-free
    cn_assembly_share: Share  # of the Chinese-sourced magnets, the share embedded in China-made parts


def _part(ice, hev, bev, grade, assembly) -> Part:
    return Part(kg_ice=ice, kg_hev=hev, kg_bev=bev, grade=grade, cn_assembly_share=assembly)


class Automakers(Strict):
    parts: dict[PartName, Part] = {
        # cn_assembly_share of traction and chassis: posterior medians of the april_2025 calibration
        "traction": _part(0.0, 0.8, 1.6, "heavy", 0.251),
        "chassis": _part(0.2, 0.2, 0.2, "heavy", 0.345),
        "small_motors": _part(0.1, 0.1, 0.1, "light", 0.5),
    }
    line_priority: list[Line] = ["ice", "hev", "bev"]  # which lines get scarce magnets first (highest margin first)
    shifts_per_day: Annotated[int, Field(ge=1, le=3)] = 2  # a line runs whole shifts
    restart_cover_days: Pos = 3.0

    @model_validator(mode="after")
    def _lines(self) -> Automakers:
        if sorted(self.line_priority) != ["bev", "hev", "ice"]:
            raise ValueError("line_priority must list each of ice, hev, bev once")
        if not self.parts:
            raise ValueError("parts: give at least one magnet-bearing part")
        return self

    # buffers of US, EU, IN (and the US spread): posterior medians of the april_2025 calibration
    US: RegionalPlants = _plants(40, 10.2e6, 0.08, 0.12, 0.85, 23.9).model_copy(update={"buffer_days_cv": 1.16})
    EU: RegionalPlants = _plants(60, 11.5e6, 0.15, 0.30, 0.85, 53.9)
    JP: RegionalPlants = _plants(30, 8.2e6, 0.02, 0.45, 0.5, 60.0)
    IN: RegionalPlants = _plants(20, 5.5e6, 0.03, 0.05, 0.85, 75.8)
    CN: RegionalPlants = _plants(30, 30e6, 0.30, 0.20, 1.0, 21.0)
    ROW: RegionalPlants = _plants(20, 12e6, 0.05, 0.10, 0.85, 24.5)


class Sourcing(Strict):
    """Who supplies whom: a portfolio of Chinese suppliers per buyer, and how buyers move orders from
    stalled Chinese suppliers to non-Chinese ones (within those suppliers' spare capacity, after
    qualifying them) and back."""

    cn_suppliers_per_buyer: Annotated[int, Field(ge=1, le=10)] = 2
    qualification_days: Days = 150
    switch_share_per_day: Annotated[float, Field(ge=0, le=0.1)] = 0.002
    switch_back_share_per_day: Annotated[float, Field(ge=0, le=0.1)] = 0.001
    switch_max_share: Share = 0.3
    switch_trigger_days: Pos = 21.0
    review_days: Annotated[int, Field(ge=1, le=90)] = 7
    derisk_share_per_month: Share = 0.1


class DefenseRegion(Strict):
    programmes: Annotated[int, Field(ge=0, le=500)]
    magnets_t_per_year: Tonnes
    smco_share: Share
    cn_supply_share: Share
    buffer_days_mean: Pos
    buffer_days_cv: Annotated[float, Field(ge=0, le=2)] = 0.35


class Defense(Strict):
    US: DefenseRegion = DefenseRegion(
        programmes=12, magnets_t_per_year=1000, smco_share=0.3, cn_supply_share=0.03, buffer_days_mean=90
    )
    EU: DefenseRegion = DefenseRegion(
        programmes=4, magnets_t_per_year=1000, smco_share=0.3, cn_supply_share=0.6, buffer_days_mean=90
    )
    JP: DefenseRegion = DefenseRegion(
        programmes=3, magnets_t_per_year=500, smco_share=0.3, cn_supply_share=0.5, buffer_days_mean=120
    )
    us_national_stockpile_t: Tonnes = 50.0
    stockpile_release_trigger_days: Pos = 30.0


class OtherDemand(Strict):
    """Non-auto, non-defence magnet users (wind, industrial motors, electronics) by region."""

    cn_magnet_exports_t_per_year: Tonnes = 58152.0
    export_share: dict[str, Share] = {"US": 0.128, "EU": 0.25, "JP": 0.08, "IN": 0.07, "ROW": 0.472}
    heavy_grade_share: Share = 0.5
    cn_supply_share: Share = 0.9
    buffer_days_mean: Pos = 30.0
    smco_t_per_year: dict[str, NonNeg] = {"US": 150.0, "EU": 150.0, "JP": 100.0, "IN": 30.0, "ROW": 70.0}
    cn_domestic_t_per_year: Tonnes = 120000.0
    cn_domestic_smco_t_per_year: Tonnes = 1500.0

    @field_validator("export_share")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        _ex_cn_keys(v)
        if abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1 (got {sum(v.values()):.4f})")
        return v

    _regions = field_validator("smco_t_per_year")(_ex_cn_keys)


class MagnetMakers(Strict):
    """Magnet makers per region: count, NdFeB and SmCo capacity (t/yr)."""

    cn_makers: Annotated[int, Field(ge=1, le=500)] = 40
    cn_ndfeb_capacity_t_per_year: Pos = 300000.0
    cn_smco_capacity_t_per_year: Pos = 6000.0
    ndfeb_capacity_t_per_year: dict[str, NonNeg] = {"JP": 10000.0, "EU": 1000.0, "US": 1000.0}
    smco_capacity_t_per_year: dict[str, NonNeg] = {"JP": 400.0, "EU": 600.0, "US": 700.0}
    makers_per_region: dict[str, Annotated[int, Field(ge=1, le=50)]] = {"JP": 4, "EU": 2, "US": 3}
    ndpr_per_t_ndfeb: Share = 0.31
    dytb_per_t_ndfeb: Share = 0.02
    sm_per_t_smco: Share = 0.30
    target_stock_days: Pos = 43.3  # posterior median of the april_2025 calibration
    input_cover_days_cn: Pos = 30.0
    input_cover_days_ex_cn: Pos = 120.0
    ex_cn_dytb_cn_share: Share = 0.95
    ex_cn_ndpr_cn_share: Share = 0.5
    ex_cn_headroom: Share = 0.1  # share of a non-Chinese maker's capacity not committed at the start

    _regions = field_validator("ndfeb_capacity_t_per_year", "smco_capacity_t_per_year", "makers_per_region")(
        _ex_cn_keys
    )


class Separators(Strict):
    """Upstream separation capacity (t oxide/yr) by region and element group."""

    cn_separators: Annotated[int, Field(ge=1, le=100)] = 6
    cn_ndpr_t_per_year: Pos = 110000.0
    cn_dytb_t_per_year: Pos = 6000.0
    cn_sm_t_per_year: Pos = 4000.0
    ex_cn_ndpr_t_per_year: dict[str, NonNeg] = {"ROW": 10500.0, "US": 1300.0}
    ex_cn_dytb_t_per_year: dict[str, NonNeg] = {"ROW": 0.0}
    target_stock_days: Pos = 30.0

    _regions = field_validator("ex_cn_ndpr_t_per_year", "ex_cn_dytb_t_per_year")(_ex_cn_keys)


class Shipping(Strict):
    sea_days: dict[str, Annotated[int, Field(ge=1, le=90)]] = {"US": 32, "EU": 38, "JP": 7, "IN": 20, "ROW": 18}
    air_days: Annotated[int, Field(ge=1, le=30)] = 4
    domestic_days: Annotated[int, Field(ge=1, le=30)] = 3
    ex_cn_days: Annotated[int, Field(ge=1, le=90)] = 21
    air_freight: bool = True
    air_trigger_cover_days: NonNeg = 10.0

    _regions = field_validator("sea_days")(_all_ex_cn_keys)


class CnLicensing(Strict):
    reviewers: Annotated[int, Field(ge=1, le=100000)] = 30
    provincial_offices: Annotated[int, Field(ge=0, le=31)] = 4
    effort_reviewer_days: Pos = 1.76  # posterior median of the april_2025 calibration
    decisions_per_working_day: Pos = 50.0  # signing capacity (few officials may sign a licence)
    statutory_working_days: Annotated[int, Field(ge=1, le=365)] = 45
    consultation_working_days: Annotated[int, Field(ge=0, le=365)] = 45  # interagency consultation, flagged cases
    consult_destinations: list[Literal["US", "JP", "EU", "IN", "ROW"]] = []
    doc_check_working_days: Annotated[int, Field(ge=0, le=60)] = 5
    p_incomplete: Share = 0.3
    prep_days_min: Days = 5
    prep_days_max: Days = 18  # posterior median of the april_2025 calibration
    resubmit_days: Days = 10
    reapply_days: Days = 30
    renew_cover_days: Pos = 75.0
    licence_volume_days: Pos = 90.0
    validity_days: Annotated[int, Field(ge=1, le=1096)] = 365
    p_approve_civil: Share = 0.85
    p_approve_military: Share = 0.0
    destination_factor: dict[str, Annotated[float, Field(ge=0, le=1)]] = {
        "US": 0.9,
        "EU": 1.0,
        "JP": 1.0,
        "IN": 0.9,
        "ROW": 1.0,
    }
    customs_days: Annotated[int, Field(ge=0, le=60)] = 7
    customs_days_uncontrolled: Annotated[int, Field(ge=0, le=60)] = 3  # Dy/Tb-free NdFeB, same HS code
    hire_backlog_per_reviewer: Pos = 5.0
    hire_per_month: Annotated[float, Field(ge=0, le=10000)] = 15.0
    training_days: Days = 60
    max_reviewers: Annotated[int, Field(ge=1, le=100000)] = 200

    _regions = field_validator("destination_factor")(_ex_cn_keys)

    @model_validator(mode="after")
    def _prep_range(self) -> CnLicensing:
        if self.prep_days_min > self.prep_days_max:
            raise ValueError(
                f"prep_days_min ({self.prep_days_min}) must not exceed prep_days_max ({self.prep_days_max})"
            )
        return self


class Licensing(Strict):
    cn: CnLicensing = CnLicensing()


class Prices(Strict):
    """Prices on each side of the border and the quantities that respond to them."""

    ndpr_oxide_usd_kg: Pos = 51.0
    ndpr_oxide_cn_usd_kg: Pos | None = None  # China's domestic NdPr price at the start (None: ndpr_oxide_usd_kg)
    dy_oxide_cn_usd_kg: Pos = 224.0
    dy_oxide_ex_cn_usd_kg: Pos = 250.0
    ndfeb_usd_kg: Pos = 48.7
    elasticity_dy: Pos = 0.35
    elasticity_ndfeb: Pos = 0.5
    elasticity_ndpr: Pos = 0.5
    adjust_days: Pos = 20.0
    max_multiple: Annotated[float, Field(gt=1)] = 50.0  # numerical guard only; days at it are counted
    maker_margin_share: Annotated[float, Field(ge=0, lt=1)] = 0.1  # non-Chinese makers' margin at start prices
    ndpr_makers_bid: bool = False  # the ex-China NdPr price is capped by the makers' bid too (agents/market.py)
    dy_thrift_max: Annotated[float, Field(ge=0, lt=1)] = 0.4  # most Dy/Tb per t of magnet makers can save
    dy_thrift_elasticity: NonNeg = 0.3
    dy_thrift_days: Pos = 180.0  # time constant of thrifting
    industry_demand_elasticity: NonNeg = 0.2  # other magnet users outside China
    industry_demand_days: Pos = 90.0


class Stage(Strict):
    """One stage of the non-Chinese mine-to-magnet chain (capacity in t of the stage's output per year:
    mining and recycling in t of NdPr+Dy/Tb oxide equivalent, separation in t oxide, metal in t alloy,
    magnets in t NdFeB)."""

    capex_usd_per_tpa: Pos
    lead_years: Pos  # permitting + construction
    lead_cv: Annotated[float, Field(ge=0, le=2)] = 0.3
    ramp_years: NonNeg
    failure_per_year: Share
    project_tpa: Pos
    staff_per_1000_tpa: NonNeg
    unit_cost_usd_kg: NonNeg  # cost per kg of NdFeB-equivalent output at first-of-a-kind scale
    regions: dict[str, Share]

    @field_validator("regions")
    @classmethod
    def _region_shares(cls, v: dict[str, float]) -> dict[str, float]:
        _ex_cn_keys(v)
        if not any(share > 0 for share in v.values()):
            raise ValueError("give at least one region a share above 0")
        return v


def _stage(capex, lead, ramp, fail, size, staff, cost, regions) -> Stage:
    return Stage(
        capex_usd_per_tpa=capex,
        lead_years=lead,
        ramp_years=ramp,
        failure_per_year=fail,
        project_tpa=size,
        staff_per_1000_tpa=staff,
        unit_cost_usd_kg=cost,
        regions=regions,
    )


class AnnouncedProject(Strict):
    """A project already announced before the programme (built whatever the budget)."""

    name: str
    stage: StageName
    region: Literal["US", "JP", "EU", "IN", "ROW"]
    tpa: Pos
    online: Date
    heavy_share: Share | None = None  # separation only: share of output that is Dy/Tb (else the default)
    samarium_tpa: NonNeg = 0.0  # separation only: Sm oxide capacity
    floor: bool = False  # offtake / price floor (e.g. MP-DoD)
    source: str = ""


def _announced() -> list[AnnouncedProject]:
    A = AnnouncedProject
    return [
        A(
            name="e-VAC South Carolina",
            stage="magnets",
            region="US",
            tpa=1000,
            online=dt.date(2025, 7, 1),
            floor=True,
            source="InvestorIntel: DoD $94.1M; GM order 1,000 t/yr from mid-2025",
        ),
        A(
            name="Lynas first Dy/Tb",
            stage="separation",
            region="ROW",
            tpa=50,
            heavy_share=1.0,
            online=dt.date(2025, 5, 16),
            source="Australian Mining 2025-05-16 (tonnage: assumption)",
        ),
        A(
            name="Neo Narva",
            stage="magnets",
            region="EU",
            tpa=2000,
            online=dt.date(2025, 9, 19),
            source="Automotive World 2025-09-19",
        ),
        A(
            name="Lynas Malaysia HREE",
            stage="separation",
            region="ROW",
            tpa=250,
            heavy_share=1.0,
            samarium_tpa=200,
            online=dt.date(2026, 4, 1),
            source="Fastmarkets/SMM: 5,000 t/yr feed, Sm from Apr 2026 (outputs: assumption)",
        ),
        A(
            name="MP Fort Worth Apple lines",
            stage="magnets",
            region="US",
            tpa=1000,
            online=dt.date(2027, 1, 1),
            source="MP / Apple releases",
        ),
        A(
            name="MP Fort Worth Apple recycling",
            stage="recycling",
            region="US",
            tpa=300,
            online=dt.date(2027, 1, 1),
            source="MP / Apple releases: recycled feedstock (tonnage: assumption)",
        ),
        A(
            name="Vulcan Elements",
            stage="magnets",
            region="US",
            tpa=10000,
            online=dt.date(2027, 7, 1),
            floor=True,
            source="PR Newswire 2025-11-03: $1.4bn package, 10,000 t/yr, first operations 2027",
        ),
        A(
            name="MP heavy REE separation",
            stage="separation",
            region="US",
            tpa=200,
            heavy_share=1.0,
            online=dt.date(2027, 7, 1),
            floor=True,
            source="MP 8-K: $150M DoD loan for heavy-REE separation (t, date: assumption)",
        ),
        A(
            name="MP 10X",
            stage="magnets",
            region="US",
            tpa=7000,
            online=dt.date(2028, 1, 1),
            floor=True,
            source="MP release: commissioning 2028, US magnet capacity then ~10,000 t/yr; DoD buys 100% for 10 years",
        ),
        A(
            name="MP 10X metal",
            stage="metal",
            region="US",
            tpa=7000,
            online=dt.date(2028, 1, 1),
            floor=True,
            source="assumption: 10X is integrated metal-to-magnet",
        ),
        A(
            name="Lynas Texas HREE",
            stage="separation",
            region="US",
            tpa=300,
            heavy_share=1.0,
            online=dt.date(2028, 7, 1),
            floor=True,
            source="Fastmarkets/SMM: plan 2,500-3,000 t/yr HREE feed, DoD $351M (outputs, date: assumption)",
        ),
    ]


class Investment(Strict):
    """The derisking programme: budget, stages, projects, workforce, floors, China's price response."""

    budget_usd: Annotated[float, Field(ge=0, le=5e12)] = 0.0
    start: Date = dt.date(2026, 1, 1)
    years: Annotated[int, Field(ge=1, le=30)] = 10
    year_shares: list[Share] = []
    stage_shares: dict[StageName, Share] = {
        "mining": 0.3,
        "separation": 0.3,
        "metal": 0.1,
        "magnets": 0.2,
        "recycling": 0.1,
    }
    target_share: Annotated[float, Field(ge=0, le=2)] = 1.0
    target_regions: list[Literal["US", "JP", "EU", "IN", "ROW"]] = ["US", "EU", "JP"]
    stages: dict[StageName, Stage] = {
        "mining": _stage(60_000, 8.0, 3.0, 0.08, 5000, 20, 12.0, {"US": 0.4, "ROW": 0.6}),
        "separation": _stage(120_000, 4.0, 2.0, 0.07, 3000, 60, 15.0, {"US": 0.5, "ROW": 0.5}),
        "metal": _stage(30_000, 2.5, 1.0, 0.05, 3000, 30, 5.0, {"US": 0.6, "EU": 0.2, "JP": 0.2}),
        "magnets": _stage(140_000, 2.5, 2.0, 0.05, 5000, 40, 30.0, {"US": 0.6, "EU": 0.2, "JP": 0.2}),
        "recycling": _stage(50_000, 3.0, 2.0, 0.05, 1000, 30, 10.0, {"US": 0.5, "EU": 0.3, "JP": 0.2}),
    }
    separation_heavy_share: Share = 0.06
    separation_sm_share: Share = 0.03
    metal_base_headroom: Annotated[float, Field(ge=0, le=10)] = 0.5
    ore_oxide_share: Share = 1.0
    recycling_scrap_share: Share = 0.1
    learning_rate: Annotated[float, Field(ge=0, lt=1)] = 0.15
    workforce_start: NonNeg = 3000.0
    trained_per_year: NonNeg = 600.0
    training_share: Share = 0.01
    usd_per_trainee: Pos = 150_000.0
    floors: bool = True
    floor_ndfeb_usd_kg: Pos = 80.0
    unviable_cancel_per_year: Share = 0.3
    cn_price_response: Annotated[float, Field(ge=0, le=1)] = 0.5
    announced_projects: bool = True
    announced: list[AnnouncedProject] = _announced()

    @model_validator(mode="after")
    def _shares(self) -> Investment:
        if self.year_shares and len(self.year_shares) != self.years:
            raise ValueError(
                f"year_shares has {len(self.year_shares)} entries but years = {self.years}; give one "
                f"share per programme year (or none for equal shares)"
            )
        if self.year_shares and abs(sum(self.year_shares) - 1) > 1e-6:
            raise ValueError(f"year_shares must sum to 1 (got {sum(self.year_shares):.4f})")
        if abs(sum(self.stage_shares.values()) - 1) > 1e-6:
            raise ValueError(f"stage_shares must sum to 1 (got {sum(self.stage_shares.values()):.4f})")
        return self


class Scenario(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    start: Date
    end: Date
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    reproduce: bool = False
    # reference results (``rareshock reproduce``) over this many draws of a published posterior (0: one run
    # at the defaults); ``calibration`` names it (default: the calibration marked default)
    posterior_draws: Annotated[int, Field(ge=0, le=100_000)] = 0
    calibration: str | None = None
    extends: str = ""
    # observations to compare the run with (repo-relative CSV; outcomes, never fitted): the run's results
    # then include figures/exports_vs_record.png (rareshock/record.py)
    record_file: str = ""

    # the world the scenario starts in: a dated data set in model/worlds/<world>.toml (sizes, structure,
    # prices) layered under the scenario's own tables (see :func:`load_scenario`)
    world: Annotated[str, Field(min_length=1, max_length=40)] = "2024"

    @model_validator(mode="after")
    def _dates(self) -> Scenario:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        if (self.end - self.start).days > 366 * 30:
            raise ValueError("horizon longer than 30 years")
        return self


# --------------------------------------------------------------------------------------------------
# Events: dated policy changes, each a typed record (new episodes need no code)
# --------------------------------------------------------------------------------------------------
class _Event(Strict):
    date: Date | None = None  # required for scenario events; terms of a deal take the deal's date
    source: str = ""
    note: str = ""


Destination = Literal["US", "JP", "EU", "IN", "ROW"]
ElementName = Literal[tuple(CONTROLLED_ELEMENTS)]  # type: ignore[valid-type]


class _Controls(_Event):
    """Items (modelled items) and/or elements and products by name (``model/controlled_elements.toml``,
    which maps each to the modelled items it touches), to ``destinations`` (default: every destination)."""

    items: list[Literal[CONTROLLABLE]] = []  # type: ignore[valid-type]
    elements: list[ElementName] = []
    destinations: list[Destination] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something(self) -> _Controls:
        if not self.items and not self.elements:
            raise ValueError("give items or elements (at least one)")
        return self

    def modelled_items(self) -> list[str]:
        """``items`` and the items ``elements`` map to, in CONTROLLABLE order (may be empty: an element
        the modelled chain has no node for)."""
        named = set(self.items).union(*(CONTROLLED_ELEMENTS[e]["items"] for e in self.elements))
        return [c for c in CONTROLLABLE if c in named]


class CnExportControls(_Controls):
    """China requires a licence to export the listed items, to the listed ``destinations`` (default:
    every destination, e.g. Announcement No. 18; ``["JP"]`` for a measure aimed at one country)."""

    kind: Literal["cn_export_controls"]


class CnLiftControls(_Controls):
    """China stops requiring a licence for the listed items, to the listed ``destinations`` (default:
    every destination)."""

    kind: Literal["cn_lift_controls"]


class CnGeneralLicence(_Event):
    """General licences (one licence for many shipments over ``validity_days``) to the largest Chinese
    exporters of ``items`` (together ``exporter_share`` of the Chinese capacity for them), for their
    customers of ``end_use`` in ``destinations``, of which ``customer_share`` are named (drawn once)."""

    kind: Literal["cn_general_licence"]
    items: list[Literal[CONTROLLABLE]] = Field(default=["ndfeb_heavy"], min_length=1)  # type: ignore[valid-type]
    exporter_share: PosShare
    customer_share: PosShare = 1.0
    end_use: Literal["auto", "industrial", "all_civil"] = "auto"
    destinations: list[Destination] | None = Field(default=None, min_length=1)
    validity_days: Annotated[int, Field(ge=1, le=1096)] = 365


class CnTechnologyControls(_Event):
    """Controls on rare-earth production technology and equipment (e.g. Announcements No. 56 and 62): while
    in force, non-Chinese projects in ``stages`` develop at ``progress_share`` of their normal pace
    (1.0 ends the effect)."""

    kind: Literal["cn_technology_controls"]
    stages: list[StageName] = Field(default=list(STAGES), min_length=1)
    progress_share: Share


class CnChipImportBan(_Event):
    """China's own block on buying the named US firms' chips (regulators' purchase guidance, customs): Chinese
    buyers do not buy ``share`` of the firms' China sales (0 ends it)."""

    kind: Literal["cn_chip_import_ban"]
    firms: list[str] = Field(min_length=1)
    share: Share


class CnProductionQuota(_Event):
    """China's production quota on separation: Chinese separators' capacity for ``materials`` becomes
    ``capacity_share`` of the configured capacity (1.0 restores it)."""

    kind: Literal["cn_production_quota"]
    materials: list[Literal["ndpr_oxide", "dytb_oxide", "sm_oxide"]] = Field(min_length=1)
    capacity_share: Annotated[float, Field(ge=0, le=2)]


class _Stockpiling(_Event):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    material: Literal["ndpr_oxide", "dytb_oxide", "ndfeb"]
    tonnes: Tonnes | None = None
    cover_days: Pos | None = None  # target as days of the buying region's civil end users' need
    days: Annotated[int, Field(ge=1, le=3650)]  # buying window: at most (target / days) t a day

    @model_validator(mode="after")
    def _target(self) -> _Stockpiling:
        if (self.tonnes is None) == (self.cover_days is None):
            raise ValueError("give exactly one of tonnes or cover_days")
        return self


class CnStateStockpile(_Stockpiling):
    """State purchases for China's reserve: Chinese sellers' stock above their target goes into the reserve,
    at most target / ``days`` t a day, paid at the Chinese price."""

    kind: Literal["cn_state_stockpile"]
    budget_usd: Pos | None = None  # unset: no budget limit (China's reserve budget is not published)


class UsStockpileProgramme(_Stockpiling):
    """A US civil or defence stockpile programme with a budget (e.g. Project Vault): buys from non-Chinese
    producers (Chinese supply abroad goes through export licensing, on the network), at most target /
    ``days`` t a day, at the price outside China, until the target or the budget is reached; held (not
    released) in the run."""

    kind: Literal["us_stockpile_programme"]
    budget_usd: Pos
    region: Destination = "US"


class CnExportQuota(_Event):
    """China's export quota for rare-earth raw materials (oxides, salts, metals; t REO): a batch of
    ``tonnes`` allocated for the period from the event's date to ``until`` (e.g. the 2010 second-half
    batch of 7,976 t). Only the modelled ``items`` are bound: the world's baseline exports of them are
    taken to use ``reference_tonnes`` of quota a year (e.g. the previous year's exports), so the batch lets
    them leave at ``tonnes / reference_tonnes`` of their baseline rate over its period. Allowance accrues
    evenly over the period; what exporters do not use is banked and lapses at the end of the calendar year
    (:class:`rareshock.agents.exports.ExportLimits`)."""

    kind: Literal["cn_export_quota"]
    tonnes: Annotated[float, Field(ge=0, le=1e7)]
    until: Date
    reference_tonnes: Annotated[float, Field(gt=0, le=1e7)]
    items: list[Literal["ndpr_oxide", "dytb_oxide", "sm_oxide"]] = Field(
        default=["ndpr_oxide", "dytb_oxide", "sm_oxide"], min_length=1
    )


class CnCustomsHold(_Event):
    """Chinese customs hold shipments of the listed ``items`` to the listed ``destinations`` from the
    event's date until ``until`` (exclusive: shipments leave again that day): a de facto stop, not a
    licensing regime (no applications, nothing announced; e.g. Japan, 21 Sep - 19 Nov 2010). Orders wait
    in the exporters' backlog; ``pass_share`` of what would have left still leaves (routes around the
    hold, exempt forms such as alloys)."""

    kind: Literal["cn_customs_hold"]
    destinations: list[Destination] = Field(min_length=1)
    items: list[Literal[CONTROLLABLE]] = Field(min_length=1)  # type: ignore[valid-type]
    until: Date
    pass_share: Share = 0.0


class CnLicensingStance(_Event):
    """Changes to how MOFCOM and the interagency review decide (unset fields stay as they are)."""

    kind: Literal["cn_licensing_stance"]
    p_approve_civil: Share | None = None
    p_approve_military: Share | None = None
    p_incomplete: Share | None = None
    statutory_working_days: Annotated[int, Field(ge=1, le=365)] | None = None
    consultation_working_days: Annotated[int, Field(ge=0, le=365)] | None = None
    decisions_per_working_day: Pos | None = None
    consult_destinations: list[Literal["US", "JP", "EU", "IN", "ROW"]] | None = None
    customs_days: Annotated[int, Field(ge=0, le=60)] | None = None
    customs_days_uncontrolled: Annotated[int, Field(ge=0, le=60)] | None = None
    licence_volume_days: Pos | None = None
    validity_days: Annotated[int, Field(ge=1, le=1096)] | None = None
    destination_factor: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None


class CnFastTrack(_Event):
    """Temporary licences for suppliers of named end-user groups (e.g. major US automakers)."""

    kind: Literal["cn_fast_track"]
    destinations: list[Literal["US", "JP", "EU", "IN", "ROW"]] = Field(min_length=1)
    end_use: Literal["auto", "industrial", "all_civil"] = "auto"
    review_working_days: Annotated[int, Field(ge=1, le=365)]
    validity_days: Annotated[int, Field(ge=1, le=1096)]


class CnHireReviewers(_Event):
    kind: Literal["cn_hire_reviewers"]
    reviewers: Annotated[int, Field(ge=1, le=100000)]


class UsDefenseSourcingRule(_Event):
    """US defence programmes may no longer use Chinese magnets (e.g. the 2027 DFARS rule)."""

    kind: Literal["us_defense_sourcing_rule"]


class Marker(_Event):
    """An event with no model effect, kept for the record and the figures (e.g. a summit)."""

    kind: Literal["marker"]
    label: str


_BASE_EVENTS = (
    CnExportControls,
    CnLiftControls,
    CnLicensingStance,
    CnFastTrack,
    CnHireReviewers,
    CnGeneralLicence,
    CnTechnologyControls,
    CnChipImportBan,
    CnProductionQuota,
    CnStateStockpile,
    UsStockpileProgramme,
    CnExportQuota,
    CnCustomsHold,
    UsDefenseSourcingRule,
    Marker,
) + CHIP_EVENTS
BaseEvent = Annotated[typing.Union[_BASE_EVENTS], Field(discriminator="kind")]  # noqa: UP007


class _Suspension(_Event):
    """Measures suspended until a date, after which they apply again by themselves: on its date the
    ``lift`` events apply (measures in force that stop), and on ``until`` the ``measures`` apply (the
    suspended measures, whether they were in force or only scheduled). A later suspension with the same
    ``name`` extends it: its ``until`` replaces the pending one (and, if it gives no ``measures``, the
    earlier ones stay pending)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    until: Date
    lift: list[BaseEvent] = []
    measures: list[BaseEvent] = []


class CnSuspension(_Suspension):
    kind: Literal["cn_suspension"]


class UsSuspension(_Suspension):
    kind: Literal["us_suspension"]


SUSPENSIONS = (CnSuspension, UsSuspension)


class Deal(_Event):
    """A bargain: both sides' ``terms`` apply at once; it may break down (at ``breakdown_per_year``, or
    when either side escalates), and then the ``breakdown`` measures apply."""

    kind: Literal["deal"]
    terms: list[BaseEvent] = Field(min_length=1)
    breakdown: list[BaseEvent] = []
    breakdown_per_year: Share = 0.0


Event = Annotated[typing.Union[_BASE_EVENTS + SUSPENSIONS + (Deal,)], Field(discriminator="kind")]  # noqa: UP007


class Policy(Strict):
    """Reactive rules: retaliation for the other side's escalation, and whether deals take effect."""

    deal: bool = True
    reactions_from: Date | None = None  # reactive rules apply to escalations on or after this date
    retaliation_lag_days: Days = 30
    retaliate_once: bool = True
    cn_retaliation: list[BaseEvent] = []
    us_retaliation: list[BaseEvent] = []


class ScenarioConfig(Strict):
    scenario: Scenario
    automakers: Automakers = Automakers()
    sourcing: Sourcing = Sourcing()
    defense: Defense = Defense()
    other_demand: OtherDemand = OtherDemand()
    magnet_makers: MagnetMakers = MagnetMakers()
    separators: Separators = Separators()
    shipping: Shipping = Shipping()
    licensing: Licensing = Licensing()
    prices: Prices = Prices()
    chips: ChipsConfig = ChipsConfig()
    investment: Investment = Investment()
    policy: Policy = Policy()
    events: list[Event] = []

    @model_validator(mode="after")
    def _events_in_order(self) -> ScenarioConfig:
        for i, ev in enumerate(self.events):
            if ev.date is None:
                raise ValueError(f"events[{i}].date: required for a scenario event")
            if i and ev.date < self.events[i - 1].date:
                raise ValueError(f"events[{i}].date: events must be in date order")
            nested = [getattr(ev, f, []) for f in ("terms", "breakdown", "lift", "measures")]
            for e in [ev] + [x for group in nested for x in group]:
                until = getattr(e, "until", None)
                if until is not None and until <= ev.date:
                    raise ValueError(f"events[{i}].until: must be after the event's date {ev.date} (got {until})")
            for j, e in enumerate([ev] + [x for group in nested for x in group]):
                msg = (
                    self.chips.event_error(e) if e.kind in CHIP_EVENT_KINDS or e.kind == "cn_chip_import_ban" else None
                )
                if msg:
                    raise ValueError(f"events[{i}]{'' if j == 0 else f' ({ev.kind})'}: {msg}")
            if ev.kind in ("cn_suspension", "us_suspension"):
                if ev.until <= ev.date:
                    raise ValueError(f"events[{i}].until: must be after the event's date ({ev.date})")
                earlier = {e.name for e in self.events[:i] if e.kind == ev.kind}
                if not ev.lift and not ev.measures and ev.name not in earlier:
                    raise ValueError(
                        f"events[{i}]: give lift or measures, or extend an earlier {ev.kind} of the same name"
                    )
        return self


# --------------------------------------------------------------------------------------------------
# Loading, overrides and one-line errors
# --------------------------------------------------------------------------------------------------
def _strip(ann: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None`` wrappers."""
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(members) != 1:
                return ann
            ann = members[0]
        else:
            return ann


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _member_name(member: Any) -> str:
    """How pydantic names a union member in an error location: an event's kind, else its type name."""
    member = _strip(member)
    if _is_model(member) and "kind" in member.model_fields:
        return typing.get_args(member.model_fields["kind"].annotation)[0]
    return getattr(member, "__name__", "")


def _step(ann: Any, part: str | int) -> tuple[Any, bool]:
    """The type one location ``part`` below ``ann``, and whether ``part`` only names a union member (an
    event's kind tag, or ``float`` in ``float | str``) rather than a field, key or index."""
    ann = _strip(ann)
    origin = typing.get_origin(ann)
    if isinstance(part, int):
        return (typing.get_args(ann)[0], False) if origin is list else (None, False)
    if _is_model(ann):
        field = ann.model_fields.get(part)
        return (field.annotation if field else None), False
    if origin is dict:
        return typing.get_args(ann)[1], False
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(ann):
            if _member_name(member) == part:
                return member, True
    return None, False


def field_at(root: type[BaseModel], loc: tuple | list) -> tuple[list, Any]:
    """Walk an error location (or a dotted path's parts) from ``root``: the parts a user sees (union tags
    dropped) and the annotation found there (None if the location is not in the schema)."""
    shown, ann = [], root
    for i, part in enumerate(loc):
        if ann is None:
            tag = isinstance(part, str) and part in _EVENT_KINDS and i and isinstance(loc[i - 1], int)
        else:
            ann, tag = _step(ann, part)
        if not tag:
            shown.append(part)
    return shown, ann


def _fields_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at ``loc`` (for a "did you mean")."""
    ann = _strip(field_at(root, loc)[1])
    return sorted(ann.model_fields) if _is_model(ann) else []


def _dotted(parts: list) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in parts).replace(".[", "[")


def _given(value: Any) -> str:
    """`` (got VALUE)`` for a message, shortened; nothing for tables and arrays."""
    if isinstance(value, dict | list):
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:40] + '...' + text[-12:]})"


def format_error(err: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first validation error: the field path, what is wrong, the value given."""
    e = err.errors(include_url=False)[0]
    shown, _ = field_at(root, tuple(e["loc"]))
    path = _dotted(shown)
    msg = e["msg"].removeprefix("Value error, ")
    given = e.get("input")
    kind = e["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(root, tuple(e["loc"])[:-1])
        given_key = str(e["loc"][-1])
        near = (
            [a for a in allowed if a.startswith(given_key)] if len(given_key) >= 3 else []
        ) or difflib.get_close_matches(given_key, allowed, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"{path}: unknown field{hint or '.'} Allowed: {', '.join(allowed) or '(none)'}"
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind in ("int_type", "float_type") and isinstance(given, bool):
        msg = "expected a number, not true/false"
    else:
        msg = _TYPE_MESSAGES.get(kind, msg)
    return f"{path or 'config'}: {msg}{_given(given)}"


_TYPE_MESSAGES = {
    "int_type": "expected a whole number",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "string_type": "expected text (in quotes)",
    "list_type": "expected an array [...]",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}


_EVENT_KINDS = {typing.get_args(c.model_fields["kind"].annotation)[0] for c in _BASE_EVENTS + SUSPENSIONS + (Deal,)}


def _parse_value(text: str) -> Any:
    """Parse an override value as a TOML value; bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` to nested ``data`` in place (creating tables as needed)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected path=value, e.g. licensing.cn.reviewers=120")
    path, _, raw = assignment.partition("=")
    keys = [k.strip() for k in path.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"--set {assignment!r}: empty path segment")
    node = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"--set {path}: {key!r} is not an index of a list of {len(node)}")
            node = node[int(key)]
            continue
        nxt = node.setdefault(key, {})
        if not isinstance(nxt, dict | list):
            raise ConfigError(f"--set {path}: {'.'.join(keys[: i + 1])} is a value, not a table")
        node = nxt
    if isinstance(node, list):
        raise ConfigError(f"--set {path}: cannot replace a list element wholesale")
    node[keys[-1]] = _parse_value(raw.strip())


def _merge(base: dict, top: dict) -> dict:
    """Tables in ``top`` merge into ``base`` recursively; values and arrays replace."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def defaults() -> dict:
    """Every section's default values (what a scenario file's tables are merged into)."""
    probe = ScenarioConfig(scenario=Scenario(name="defaults", start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 1)))
    d = probe.model_dump(mode="json")
    del d["scenario"], d["events"]
    return d


def validate(data: dict) -> ScenarioConfig:
    try:
        return ScenarioConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_error(err, ScenarioConfig)) from None


def _shown(path: str | Path) -> str:
    """A path for a one-line message (long ones keep their start and end)."""
    text = str(path)
    return text if len(text) <= 100 else f"{text[:40]}...{text[-57:]}"


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict, or a one-line :class:`ConfigError`."""
    shown = _shown(path)
    try:
        if not str(path).strip():
            raise ConfigError("config: empty file name; give a .toml file")
        if "\x00" in str(path):
            raise ConfigError(f"{shown!r}: the file name contains a NUL character")
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a directory, expected a .toml file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{shown}: invalid TOML: {err}") from None
    except OSError as err:
        raise ConfigError(f"{shown}: cannot read it ({err.strerror or err})") from None


def _resolve_extends(path: Path, data: dict, seen: tuple = ()) -> dict:
    """A scenario that ``extends`` another: the base's tables are merged under it (this file wins) and
    the base's events come first (then all events are put in date order, stably)."""
    base_name = (data.get("scenario") or {}).get("extends")
    if not base_name:
        return data
    if not isinstance(base_name, str):
        raise ConfigError(
            f"{path}: scenario.extends: expected the file name of a scenario in quotes, e.g. "
            f'extends = "status_quo.toml" (got {base_name!r})'
        )
    if not isinstance(data.get("events", []), list):
        raise ConfigError(f"{path}: events: expected an array of tables ([[events]])")
    base_path = (path.parent / base_name).resolve()
    if base_path in seen:
        raise ConfigError(f"{path}: scenario.extends: circular ({base_name})")
    base = read_toml(base_path)
    if not isinstance(base.get("scenario"), dict):
        raise ConfigError(f"{path}: scenario.extends: {base_name} has no [scenario] table")
    base = _resolve_extends(base_path, base, seen + (base_path,))
    if not isinstance(base.get("events", []), list):
        raise ConfigError(f"{base_path}: events: expected an array of tables ([[events]])")
    events = list(base.get("events", [])) + list(data.get("events", []))
    merged = _merge({k: v for k, v in base.items() if k != "events"}, {k: v for k, v in data.items() if k != "events"})
    merged["events"] = sorted(events, key=lambda e: str(e.get("date", "")) if isinstance(e, dict) else "")
    return merged


# --------------------------------------------------------------------------------------------------
# Worlds: the world of a year as data (model/worlds/<name>.toml)
# --------------------------------------------------------------------------------------------------
WORLDS_DIR = Path(__file__).resolve().parent / "worlds"
WORLD_SECTIONS = (
    "automakers",
    "sourcing",
    "defense",
    "other_demand",
    "magnet_makers",
    "separators",
    "shipping",
    "prices",
    "investment",
)
"""The config sections a world file may set: who the buyers and producers are, their sizes and buffers,
who supplies whom, start prices, and what non-Chinese capacity exists or is announced."""


def available_worlds() -> list[str]:
    return sorted(p.stem for p in WORLDS_DIR.glob("*.toml"))


def read_world(name: str) -> dict:
    """The tables of world ``name`` (its ``[world]`` description table removed), or a one-line
    :class:`ConfigError` naming the available worlds or the bad field."""
    if not isinstance(name, str) or name not in available_worlds():
        raise ConfigError(
            f"scenario.world: unknown world {name!r}; available: {', '.join(available_worlds())} "
            f"(files in {WORLDS_DIR.name}/)"
        )
    path = WORLDS_DIR / f"{name}.toml"
    data = read_toml(path)
    data.pop("world", None)
    bad = sorted(set(data) - set(WORLD_SECTIONS))
    if bad:
        raise ConfigError(
            f"world {name} ({path.name}): {bad[0]}: not a world section; allowed: {', '.join(WORLD_SECTIONS)}"
        )
    probe = {"scenario": {"name": "world", "start": dt.date(2025, 1, 1), "end": dt.date(2025, 1, 1)}}
    try:
        ScenarioConfig.model_validate(_merge(defaults(), {**data, **probe}))
    except ValidationError as err:
        raise ConfigError(f"world {name} ({path.name}): {format_error(err, ScenarioConfig)}") from None
    return data


def world_base(data: dict, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The defaults with the world of scenario ``data`` (``scenario.world``, or a ``scenario.world`` among
    ``overrides``) laid over them, and ``data`` over that; a world named by a year may be a number."""
    probe = {"scenario": dict(data["scenario"])}
    for item in overrides:
        if item.partition("=")[0].strip() == "scenario.world":
            apply_override(probe, item)
    world = probe["scenario"].get("world", "2024")
    if isinstance(world, int) and not isinstance(world, bool):  # a year: world = 2010, --set scenario.world=2010
        world = str(world)
    out = _merge(_merge(defaults(), read_world(world)), data)
    if "world" in out["scenario"]:
        out["scenario"]["world"] = world
    return out


NEW_DEFAULTS = (
    ("scenario", "world", "2024"),
    ("prices", "ndpr_oxide_cn_usd_kg", None),
    ("prices", "ndpr_makers_bid", False),
    ("scenario", "record_file", ""),
)
"""Fields added with worlds and the record, and their defaults: :func:`stable_view` leaves them out of
fingerprints when they are at their defaults, so sweeps and calibrations from before keep their
fingerprints."""
NEW_EVENT_DEFAULTS = (("destinations", None), ("elements", []))
"""Event fields added with controls by destination and elements as data (left out at their defaults)."""


def stable_view(resolved: dict) -> dict:
    """A resolved scenario (JSON dump) without the fields of :data:`NEW_DEFAULTS` that are at their default."""
    out = json.loads(json.dumps(resolved, default=str))
    for section, key, default in NEW_DEFAULTS:
        table = out.get(section)
        if isinstance(table, dict) and key in table and table[key] == default:
            del table[key]
    events = [e for e in out.get("events", []) if isinstance(e, dict)]
    nested = [t for ev in events for f in ("terms", "breakdown", "lift", "measures") for t in ev.get(f) or []]
    for e in events + nested:
        if e.get("kind") in ("cn_export_controls", "cn_lift_controls"):
            for key, default in NEW_EVENT_DEFAULTS:
                if key in e and e[key] == default:
                    del e[key]
    return out


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ScenarioConfig:
    """Read a scenario TOML (and any scenario it ``extends``), lay it over its world (``scenario.world``,
    default "2024") and the defaults, apply ``--set`` overrides, validate.

    Layers, each overriding the one before: config defaults, the world file, the scenario file (and what it
    extends), ``--set``. A ``--set scenario.world=...`` selects the world too. ``path`` may be the name of a
    shipped scenario (:func:`rareshock.resources.locate`)."""
    from rareshock.resources import locate

    path = locate(path, "scenario")
    data = read_toml(path)
    if not isinstance(data.get("scenario"), dict):
        raise ConfigError(f"{path}: missing [scenario] table (name, start, end, seed)")
    data = world_base(_resolve_extends(Path(path), data), overrides)
    for item in overrides:
        apply_override(data, item)
    if isinstance(data["scenario"].get("world"), int):
        data["scenario"]["world"] = str(data["scenario"]["world"])
    return validate(data)
