"""Typed configuration and policy events of the chip side (US designers and toolmakers, Chinese buyers, BIS).

Self-contained so that :mod:`model.config` can embed it: ``chips: ChipsConfig = ChipsConfig()`` in the
scenario, and ``CHIP_EVENTS`` added to the scenario's discriminated event union (``kind`` is the
discriminator). The mechanism that uses these numbers is :mod:`agents.chips`.

Every field has a default. Its comment names the publication and date (the full references are in
``docs/sources.md``; "§8" is the chips section of the project's calibration facts, listed there) or says
"assumption" (prior ranges in ``docs/parameters.md``). Units: USD, shares in [0, 1], days (calendar) or working days.

Chain of the main numbers:

- Designers: Nvidia ~$17bn China revenue FY ending Jan 2025 (FT/Reuters, §8); H20 charge $4.5bn (Nvidia
  Q1 FY26, §8); AMD China revenue $6.2bn in 2024 (FT, §8).
- Toolmakers: China bought ~$38bn of equipment in 2024, ~39% of AMAT+Lam+KLA+ASML+TEL sales (House Select
  Committee Oct 2025, §8), so those five sold ~$97bn in all. Split of that total among the five
  (assumption, from their 2024 scale: AMAT ~$27bn, Lam ~$15bn, KLA ~$10bn, the rest ASML+TEL) times the
  China shares (AMAT 45%, TrendForce FQ1 2024; KLA 42%, Nikkei Jan-Mar 2024; Lam 42% is an assumption:
  same as KLA) gives AMAT ~$12bn, Lam ~$7bn (rounded up for Lam's 2024 China mix; assumption), KLA ~$4bn.
  The three US toolmakers then hold ~$23bn of China's ~$38bn, ASML and TEL the rest.
- Chinese buyers: equipment localisation ~25% in 2024 (SCMP/Jiemian, §8); IC self-sufficiency 16.7% of
  China's IC market in 2021 (IC Insights, §8), used as the 2025 start value for chips (assumption: no later
  sourced figure). Ceilings, baseline trend and design-out speed are assumptions.
- BIS: "thousands" of applications pending in Aug 2025, the longest backlog in 30+ years (Reuters
  2025-08-02, §8); "tens of billions of dollars in licenses" and toolmakers' pending licences "totaling
  multiple billions" (seed paper 003). Queue sizes, reviewer capacity and odds are assumptions anchored on
  those.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rareshock.model.schema import Date, NonNeg, Pos, PosShare, Share, Strict

Reviewers = Annotated[int, Field(ge=0, le=100_000)]

FIRM_KINDS = ("designer", "toolmaker")


# --------------------------------------------------------------------------------------------------
# Populations
# --------------------------------------------------------------------------------------------------
class ChipFirmConfig(Strict):
    """A US chip designer or toolmaker selling into China."""

    kind: Literal["designer", "toolmaker"]
    # China revenue per year before the 2025 measures, USD: the run-rate under the controls already in
    # force in 2024 (those are part of the no-controls counterfactual). Sources per firm in ChipsConfig.
    china_revenue_usd_per_year: NonNeg = 0.0
    # Share of China sales caught when a ``us_chip_licence_requirement`` lands on the firm (assumption
    # per firm, see ChipsConfig defaults).
    controlled_share: Share = 0.0
    # China-specific inventory and purchase commitments written off when the controlled products are
    # blocked (in proportion to the blocked share, up to this amount; see agents/chips.py).
    inventory_at_risk_usd: NonNeg = 0.0
    # Value of China sales covered by one BIS licence application, USD (assumption per firm).
    application_usd: Pos = 10e6
    # Which Chinese buyer (key of ``ChipsConfig.buyers``) buys from this firm; None: the one buyer whose
    # ``buys`` equals this firm's kind.
    buyer: str | None = None


class ChipBuyerConfig(Strict):
    """A population of Chinese buyers (AI-chip users, or chipmakers buying tools) and its localisation.

    Localisation L is the share of the buyers' needs met by Chinese suppliers. It closes the gap to
    ``localisation_ceiling`` at a rate per year of (baseline + design_out x blocked share), where the two
    rates are given below as share points per year at the start (they slow as the gap closes). L never
    falls. US firms' China sales scale with (1 - L) / (1 - L_start).
    """

    buys: Literal["designer", "toolmaker"]
    localisation_start: Share = 0.2
    localisation_ceiling: Share = 0.7
    # Share points per year gained with no controls, at the start (slow trend of the counterfactual).
    baseline_gain_per_year: NonNeg = 0.01
    # Extra share points per year gained at the start while all US purchases are blocked ("design-out");
    # proportional to the share of purchases blocked.
    design_out_gain_per_year: NonNeg = 0.08
    # Entity List at the start: share of the buyers' US purchases from listed entities (assumption: 0,
    # i.e. the listings in force in 2024 are already in the 2024 revenue).
    entity_listed_share_start: Share = 0.0
    # Whether those start listings carry a presumption of denial.
    entity_presumption_of_denial_start: bool = True

    @model_validator(mode="after")
    def _ceiling(self) -> ChipBuyerConfig:
        if self.localisation_ceiling < self.localisation_start:
            raise ValueError("localisation_ceiling must not be below localisation_start")
        if self.localisation_start >= 1.0:
            raise ValueError("localisation_start must be below 1")
        return self


class BisConfig(Strict):
    """The BIS licensing queue for these firms' China applications (US Commerce Department)."""

    # Licensing officers working these applications (assumption). With 0.5 applications per reviewer
    # per working day this is ~2,500 decisions a year, below the inflow a broad Entity List action or a
    # freeze creates, which is how "thousands" pending (Reuters 2025-08-02, §8) can build up.
    reviewers: Reviewers = 20
    # Applications one reviewer completes per working day (assumption).
    applications_per_reviewer_day: Pos = 0.5
    # Earliest decision after filing, working days (assumption: interagency referral, ~30 calendar days).
    min_review_working_days: Annotated[int, Field(ge=0, le=1000)] = 20
    # Approval odds for ordinary (case-by-case) applications (assumption).
    p_approve: Share = 0.7
    # Approval odds under a presumption of denial (Entity List, or a requirement that carries one)
    # (assumption).
    p_approve_presumption_of_denial: Share = 0.05
    # Applications pending at the start, spread over the toolmakers by China revenue (assumption: below
    # the Aug-2025 "thousands", Reuters 2025-08-02 §8, so that 2025's measures produce that level; at the
    # toolmakers' application size this is ~$5bn, the seed paper's "multiple billions" pending for
    # toolmakers).
    backlog_start: Annotated[int, Field(ge=0, le=1_000_000)] = 1000


def _default_firms() -> dict[str, ChipFirmConfig]:
    return {
        # ~$17bn China revenue FY ending Jan 2025 (FT/Reuters, §8). controlled_share 1.0: assumption, the
        # whole China line treated as H20-class product caught by the 2025-04-09 rule (Nvidia's "~$8bn
        # lost in Q2", Nvidia Q1 FY26 §8, is a run-rate at least this large). Inventory: the $4.5bn H20
        # charge (Nvidia Q1 FY26, §8). Application size: assumption (large hyperscaler orders).
        "nvidia": ChipFirmConfig(
            kind="designer",
            china_revenue_usd_per_year=17e9,
            controlled_share=1.0,
            inventory_at_risk_usd=4.5e9,
            application_usd=100e6,
        ),
        # $6.2bn China revenue 2024 (FT, §8). controlled_share 0.13 (MI308 share) and $0.8bn inventory:
        # assumptions (not in the facts). Application size: assumption.
        "amd": ChipFirmConfig(
            kind="designer",
            china_revenue_usd_per_year=6.2e9,
            controlled_share=0.13,
            inventory_at_risk_usd=0.8e9,
            application_usd=100e6,
        ),
        # ~$12bn: ~$38bn China equipment purchases, 39% of the big five (House Select Committee Oct 2025,
        # §8) and AMAT China 45% (TrendForce, §8); see the module docstring. controlled_share 0.2:
        # assumption (share of China tool sales a further tool-control tightening catches).
        # inventory_at_risk 0: assumption (tools are not China-specific and can be redeployed).
        # Application size $5m: assumption (a few tools per licence).
        "applied_materials": ChipFirmConfig(
            kind="toolmaker", china_revenue_usd_per_year=12e9, controlled_share=0.2, application_usd=5e6
        ),
        # ~$7bn: assumption anchored on the ~$38bn total (House Select Committee Oct 2025, §8).
        "lam_research": ChipFirmConfig(
            kind="toolmaker", china_revenue_usd_per_year=7e9, controlled_share=0.2, application_usd=5e6
        ),
        # ~$4bn: ~$38bn total (House Select Committee, §8) and KLA China 42% (Nikkei Jan-Mar 2024, §8).
        "kla": ChipFirmConfig(
            kind="toolmaker", china_revenue_usd_per_year=4e9, controlled_share=0.2, application_usd=5e6
        ),
    }


def _default_buyers() -> dict[str, ChipBuyerConfig]:
    return {
        # Chinese users of US-designed chips (cloud, AI, OEMs). Start 16.7%: China IC self-sufficiency
        # 2021 (IC Insights, §8). Ceiling 0.75, baseline +1 point/yr, design-out +10 points/yr at full
        # blocking: assumptions.
        "cn_chip_users": ChipBuyerConfig(
            buys="designer",
            localisation_start=0.167,
            localisation_ceiling=0.75,
            baseline_gain_per_year=0.01,
            design_out_gain_per_year=0.10,
        ),
        # Chinese chipmakers buying tools. Start 25%: equipment localisation 2024 (SCMP/Jiemian, §8).
        # Ceiling 0.7 (lithography and metrology stay foreign longest), baseline +1.5 points/yr,
        # design-out +8 points/yr at full blocking: assumptions.
        "cn_fabs": ChipBuyerConfig(
            buys="toolmaker",
            localisation_start=0.25,
            localisation_ceiling=0.7,
            baseline_gain_per_year=0.015,
            design_out_gain_per_year=0.08,
        ),
    }


class ChipsConfig(Strict):
    """US chip designers and toolmakers, the Chinese buyers, and the BIS licensing queue."""

    firms: dict[str, ChipFirmConfig] = Field(default_factory=_default_firms)
    buyers: dict[str, ChipBuyerConfig] = Field(default_factory=_default_buyers)
    bis: BisConfig = Field(default_factory=BisConfig)
    # Localisation and sales rates are recomputed every this many days, and at every chip event
    # (numerical step; design-out is slow, so monthly is enough). Assumption.
    update_days: Annotated[int, Field(ge=1, le=365)] = 30

    @model_validator(mode="after")
    def _buyers_of_firms(self) -> ChipsConfig:
        for name, f in self.firms.items():
            self.buyer_of(name, f)
        return self

    def buyer_of(self, name: str, firm: ChipFirmConfig | None = None) -> str:
        """The buyer key a firm sells to (explicit ``buyer``, else the only buyer of its kind)."""
        f = firm if firm is not None else self.firms[name]
        if f.buyer is not None:
            if f.buyer not in self.buyers:
                raise ValueError(
                    f"firms.{name}.buyer: unknown buyer {f.buyer!r}; allowed: {', '.join(sorted(self.buyers))}"
                )
            return f.buyer
        match = [b for b, c in self.buyers.items() if c.buys == f.kind]
        if len(match) != 1:
            raise ValueError(f"firms.{name}: {len(match)} buyers buy from {f.kind}s; set firms.{name}.buyer")
        return match[0]

    def event_error(self, ev) -> str | None:
        """A one-line message if a chip event names a firm or buyer this config does not have, else None."""
        for attr, known in (("firms", self.firms), ("buyers", self.buyers)):
            for name in getattr(ev, attr, None) or []:
                if name not in known:
                    return f"{attr}: unknown {attr[:-1]} {name!r}; allowed: {', '.join(sorted(known))}"
        return None


# --------------------------------------------------------------------------------------------------
# Events (US side). Each has kind, date, source, note and typed parameters.
# --------------------------------------------------------------------------------------------------
class _ChipEvent(Strict):
    date: Date | None = None  # required for scenario events (checked there); deal terms take the deal's
    source: str = ""
    note: str = ""


class UsChipLicenceRequirement(_ChipEvent):
    """A licence is required for the named firms' controlled products to China (their
    ``controlled_share``), e.g. the H20 rule of 2025-04-09. Their inventory at risk is written off."""

    kind: Literal["us_chip_licence_requirement"]
    firms: list[str] = Field(min_length=1)
    # True: applications under this requirement are decided with the presumption-of-denial odds.
    presumption_of_denial: bool = False


class UsChipLicencesGranted(_ChipEvent):
    """Licences granted for the named firms' licence-bound products (requirements and is-informed
    letters): their pending applications are approved and sales resume, ``remit_share`` of them paid to
    the US government (the 15% of Aug 2025: FT 2025-08-11, §1)."""

    kind: Literal["us_chip_licences_granted"]
    firms: list[str] = Field(min_length=1)
    remit_share: Share = 0.0


class UsEntityList(_ChipEvent):
    """Chinese buyers added to the Entity List: ``share`` of their US purchases (of all products of the
    firms that sell to them) newly needs a licence (e.g. 140 additions on 2024-12-02, §1)."""

    kind: Literal["us_entity_list"]
    share: PosShare
    # Buyer keys of ``chips.buyers``; empty: all buyers.
    buyers: list[str] = []
    presumption_of_denial: bool = True


class UsEntityListRemoval(_ChipEvent):
    """Chinese buyers removed from the Entity List: ``share`` of their US purchases no longer listed
    (capped at what is listed). Pending applications for them are returned without action and ship."""

    kind: Literal["us_entity_list_removal"]
    share: PosShare
    buyers: list[str] = []


class UsIsInformed(_ChipEvent):
    """ "Is-informed" letters: ``share`` of the named firms' China sales newly needs a licence (combined
    with earlier letters as independent shares). Inventory at risk is written off pro rata."""

    kind: Literal["us_is_informed"]
    firms: list[str] = Field(min_length=1)
    share: PosShare
    presumption_of_denial: bool = False


class UsBisStance(_ChipEvent):
    """How BIS decides from now on (unset fields stay as they are); reviewers 0 freezes the queue."""

    kind: Literal["us_bis_stance"]
    p_approve: Share | None = None
    p_approve_presumption_of_denial: Share | None = None
    reviewers: Reviewers | None = None

    @model_validator(mode="after")
    def _something(self) -> UsBisStance:
        if self.p_approve is None and self.p_approve_presumption_of_denial is None and self.reviewers is None:
            raise ValueError("set at least one of p_approve, p_approve_presumption_of_denial, reviewers")
        return self


class UsChipRollback(_ChipEvent):
    """The US side of a deal: licence requirements and is-informed letters lifted for ``firms`` (their
    pending applications returned without action, sales resume without remittance), ``entity_list_removed
    _share`` of the listed buyers' purchases delisted, and BIS decisions eased (unset: unchanged)."""

    kind: Literal["us_chip_rollback"]
    firms: list[str] = []
    entity_list_removed_share: Share = 0.0
    buyers: list[str] = []
    p_approve: Share | None = None
    p_approve_presumption_of_denial: Share | None = None
    reviewers: Reviewers | None = None


CHIP_EVENTS = (
    UsChipLicenceRequirement,
    UsChipLicencesGranted,
    UsEntityList,
    UsEntityListRemoval,
    UsIsInformed,
    UsBisStance,
    UsChipRollback,
)
CHIP_EVENT_KINDS = tuple(c.model_fields["kind"].annotation.__args__[0] for c in CHIP_EVENTS)
ChipEvent = (
    UsChipLicenceRequirement
    | UsChipLicencesGranted
    | UsEntityList
    | UsEntityListRemoval
    | UsIsInformed
    | UsBisStance
    | UsChipRollback
)
