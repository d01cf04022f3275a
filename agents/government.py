"""The two governments: dated policy events, reactive rules, and deals.

Interface (what the model uses)
-------------------------------
``Governments(model, cfg)`` with ``cfg`` the scenario config (``events``, ``policy``); create it after
every population it acts on. It creates the Chinese and US :class:`Government` Mesa agents and the
:class:`Diplomacy` between them.
``act(day)``
    Phase 1 of the day: each government applies the events on its agenda for today (dated events from
    the config and scheduled reactions), China first.
``month(day)``
    Monthly (after investment): an active deal may break down at its hazard; while the extraterritorial
    rule is in force, which foreign magnets need a Chinese licence follows their non-Chinese content.
``diplomacy``
    The active deal, pending suspensions and the policy log (for the summary).

Events are data (``[[events]]`` in a scenario, typed in :mod:`rareshock.model.config`). :data:`HANDLERS`
says, for each kind, what it does; a government never changes another population's arrays itself but
calls that population's policy methods (:mod:`.licensing`, :mod:`.defense`, :mod:`.chips`,
:mod:`.investment`, :mod:`.producers`, :mod:`.stockpiles`).

Suspensions (``cn_suspension``, ``us_suspension``) lift measures now and apply the suspended measures on
their ``until`` date by themselves, unless a later suspension of the same name has moved that date.

Diplomacy adds the reactive side: an escalation by one side (new US chip controls, new Chinese export
controls) is answered by the other side's configured retaliation after ``policy.retaliation_lag_days``; a
``deal`` applies both sides' terms at once, and breaks down at its hazard rate or as soon as either side
escalates, when its ``breakdown`` measures apply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import mesa

from rareshock.model.chips_config import CHIP_EVENT_KINDS

US_ESCALATIONS = {"us_chip_licence_requirement", "us_entity_list", "us_is_informed"}
CN_ESCALATIONS = {"cn_export_controls"}


def actor(kind: str) -> str:
    """Which government acts on an event kind: China for ``cn_*``, the US for everything else."""
    return "CN" if kind.startswith("cn_") else "US"


# --------------------------------------------------------------------------------------------------
# What each event kind does (model, event, day) -> None
# --------------------------------------------------------------------------------------------------
def _cn_export_controls(model, ev, day: int) -> None:
    items = ev.modelled_items()  # items, and what named elements map to (controlled_elements.toml)
    if items:  # an element the chain has no node for: recorded, no modelled effect
        model.licensing.set_controls(items, True, ev.destinations)


def _cn_lift_controls(model, ev, day: int) -> None:
    items = ev.modelled_items()
    if items:
        model.licensing.set_controls(items, False, ev.destinations)


def _cn_general_licence(model, ev, day: int) -> None:
    model.licensing.general_licence(
        ev.items, ev.exporter_share, ev.customer_share, ev.end_use, ev.destinations, ev.validity_days, day
    )


def _cn_technology_controls(model, ev, day: int) -> None:
    model.investment.set_technology_controls(ev.stages, ev.progress_share)


def _cn_chip_import_ban(model, ev, day: int) -> None:
    model.chips.set_import_ban(ev.firms, ev.share, day)


def _cn_production_quota(model, ev, day: int) -> None:
    model.producers.set_cn_quota(ev.materials, ev.capacity_share)


def _stockpile(model, ev, day: int) -> None:
    """China's state reserve or a US programme: buying starts today (:mod:`.stockpiles`)."""
    if ev.kind == "cn_state_stockpile":
        model.stockpiles.start(ev.name, ev.material, "cn", "CN", ev.tonnes, ev.cover_days, ev.days, ev.budget_usd)
    else:
        model.stockpiles.start(
            ev.name, ev.material, "ex_cn", ev.region, ev.tonnes, ev.cover_days, ev.days, ev.budget_usd
        )


def _suspension(model, ev, day: int) -> None:
    """Measures suspended until ``ev.until``; they apply again on that day by themselves."""
    model.governments.diplomacy.suspend(ev, day)


def _cn_licensing_stance(model, ev, day: int) -> None:
    model.licensing.set_stance(
        destination_factor=ev.destination_factor,
        p_approve_civil=ev.p_approve_civil,
        p_approve_military=ev.p_approve_military,
        p_incomplete=ev.p_incomplete,
        statutory_working_days=ev.statutory_working_days,
        consultation_working_days=ev.consultation_working_days,
        decisions_per_working_day=ev.decisions_per_working_day,
        consult_destinations=ev.consult_destinations,
        customs_days=ev.customs_days,
        customs_days_uncontrolled=ev.customs_days_uncontrolled,
        licence_volume_days=ev.licence_volume_days,
        validity_days=ev.validity_days,
    )


def _cn_fast_track(model, ev, day: int) -> None:
    model.licensing.fast_track(ev.destinations, ev.end_use, ev.review_working_days, ev.validity_days)


def _cn_hire_reviewers(model, ev, day: int) -> None:
    model.licensing.hire(ev.reviewers)


def _us_defense_sourcing_rule(model, ev, day: int) -> None:
    model.defense.ban_chinese_supply("US")


def _marker(model, ev, day: int) -> None:
    """Recorded only (a summit, a statement): kept for the record and the figures."""


def _chips(model, ev, day: int) -> None:
    model.chips.apply(ev, day)  # US chip controls, licences, Entity List, BIS stance


HANDLERS: dict[str, Callable] = {
    "cn_export_controls": _cn_export_controls,
    "cn_lift_controls": _cn_lift_controls,
    "cn_licensing_stance": _cn_licensing_stance,
    "cn_fast_track": _cn_fast_track,
    "cn_hire_reviewers": _cn_hire_reviewers,
    "cn_general_licence": _cn_general_licence,
    "cn_technology_controls": _cn_technology_controls,
    "cn_chip_import_ban": _cn_chip_import_ban,
    "cn_production_quota": _cn_production_quota,
    "cn_state_stockpile": _stockpile,
    "us_stockpile_programme": _stockpile,
    "cn_suspension": _suspension,
    "us_suspension": _suspension,
    "us_defense_sourcing_rule": _us_defense_sourcing_rule,
    "marker": _marker,
    **{kind: _chips for kind in CHIP_EVENT_KINDS},
}


class Government(mesa.Agent):
    """One government's agenda: (day, event) in day order, with reactions scheduled into it."""

    def __init__(self, model: mesa.Model, country: str, events: list):
        super().__init__(model)
        self.country = country
        self.events = events
        self.next = 0
        self.applied: list[tuple[int, str]] = []

    def act(self, day: int, diplomacy: Diplomacy) -> None:
        """Apply every event due today (dated ones and reactions)."""
        while self.next < len(self.events) and self.events[self.next][0] <= day:
            diplomacy.apply(self.events[self.next][1], day)
            self.next += 1

    def handle(self, ev, day: int) -> None:
        HANDLERS[ev.kind](self.model, ev, day)
        self.applied.append((day, ev.kind))

    def schedule(self, day: int, ev) -> None:
        """Add a reaction to the agenda, keeping it in day order."""
        self.events.insert(
            next((i for i in range(self.next, len(self.events)) if self.events[i][0] > day), len(self.events)),
            (day, ev),
        )


class Diplomacy:
    """Routes events to the right government, schedules retaliation, and runs deals."""

    def __init__(self, model, policy, governments: dict[str, Government]):
        self.model = model
        self.p = policy
        self.gov = governments
        self.deal = None
        self.deal_day: int | None = None
        self.log: list[tuple[int, str]] = []
        self.retaliated = {"CN": False, "US": False}
        self.suspended: dict[tuple[str, str], tuple[int, list]] = {}  # (kind, name) -> (lapse day, measures)

    def apply(self, ev, day: int) -> None:
        if ev.kind == "deal":
            if not self.p.deal:
                self.log.append((day, "deal not taken (policy.deal = false)"))
                return
            for term in ev.terms:
                self.gov[actor(term.kind)].handle(term, day)
            self.deal, self.deal_day = ev, day
            self.log.append((day, "deal"))
            return
        self.gov[actor(ev.kind)].handle(ev, day)
        if ev.kind in US_ESCALATIONS:
            self._escalation("US", day)
        elif ev.kind in CN_ESCALATIONS:
            self._escalation("CN", day)

    def suspend(self, ev, day: int) -> None:
        """A suspension: its ``lift`` events apply now; its ``measures`` are due on ``until``. The same name
        again extends a pending suspension (new end; its measures if it gives none of its own)."""
        for lifted in ev.lift:
            self.apply(lifted, day)
        key = (ev.kind, ev.name)
        measures = list(ev.measures) or (self.suspended[key][1] if key in self.suspended else [])
        self.suspended[key] = ((ev.until - self.model.calendar.start).days, measures)
        self.log.append((day, f"{ev.name} suspended until {ev.until}"))

    def lapse(self, day: int) -> None:
        """Suspensions whose end is today lapse: their measures apply (reimposed controls are escalations
        like any other), in the order the suspensions were made."""
        due = [key for key, (end, _) in self.suspended.items() if end <= day]
        for key in due:
            _, measures = self.suspended.pop(key)
            self.log.append((day, f"{key[1]} lapsed"))
            for ev in measures:
                self.apply(ev, day)

    def _escalation(self, by: str, day: int) -> None:
        start = self.p.reactions_from
        if start is not None and day < (start - self.model.calendar.start).days:
            return
        if self.deal is not None:
            self.break_deal(day, f"{by} escalation")
        responder = "CN" if by == "US" else "US"
        rules = self.p.cn_retaliation if responder == "CN" else self.p.us_retaliation
        if rules and not (self.p.retaliate_once and self.retaliated[responder]):
            self.retaliated[responder] = True
            when = day + self.p.retaliation_lag_days
            for ev in rules:
                self.gov[actor(ev.kind)].schedule(when, ev)
            on = self.model.calendar.start + dt.timedelta(days=when)
            self.log.append((day, f"{responder} retaliation scheduled for {on}"))

    def monthly(self, day: int) -> None:
        """A deal may break down: hazard ``breakdown_per_year``, drawn monthly."""
        hazard = 0.0 if self.deal is None else self.deal.breakdown_per_year
        if hazard > 0 and self.model.rng.random() < 1.0 - (1.0 - hazard) ** (30 / 365):
            self.break_deal(day, "breakdown")

    def break_deal(self, day: int, reason: str) -> None:
        deal, self.deal = self.deal, None
        self.log.append((day, f"deal broke down ({reason})"))
        for ev in deal.breakdown:
            self.apply(ev, day)


class Governments:
    """China's and the US government, and the diplomacy between them."""

    def __init__(self, model, cfg):
        self.model = model
        start = model.calendar.start
        dated = [((ev.date - start).days, ev) for ev in cfg.events]
        self.cn = Government(model, "CN", [(d, ev) for d, ev in dated if actor(ev.kind) == "CN"])
        self.us = Government(model, "US", [(d, ev) for d, ev in dated if actor(ev.kind) == "US"])
        self.diplomacy = Diplomacy(model, cfg.policy, {"CN": self.cn, "US": self.us})

    def act(self, day: int) -> None:
        self.cn.act(day, self.diplomacy)
        self.us.act(day, self.diplomacy)
        if self.diplomacy.suspended:  # after the day's agendas, so an extension dated today comes first
            self.diplomacy.lapse(day)

    def month(self, day: int) -> None:
        self.diplomacy.monthly(day)
        licensing = self.model.licensing
        if licensing.controls[licensing.foreign_rule].any():
            licensing.refresh_controls()
