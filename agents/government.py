"""The two governments: dated policy events, reactive rules, and deals.

China's government sets export controls (including the extraterritorial rule on foreign magnets with
Chinese content), the licensing stance, fast-track terms and MOFCOM hiring; the US government sets chip
licence requirements and grants and the defence sourcing rule. Events are data (``[[events]]`` in a
scenario); this module turns each kind into changes of the model's state.

:class:`Diplomacy` adds the reactive side: an escalation by one side (new US chip controls, new Chinese
export controls) is answered by the other side's configured retaliation after
``policy.retaliation_lag_days``; a ``deal`` applies both sides' terms at once, and breaks down at its
hazard rate or as soon as either side escalates, when its ``breakdown`` measures apply.
"""

from __future__ import annotations

import datetime as dt

import mesa
import numpy as np

from rareshock.model.chips_config import CHIP_EVENT_KINDS
from rareshock.model.codes import CONTROLLABLE, REGIONS

US_ESCALATIONS = {"us_chip_licence_requirement", "us_entity_list", "us_is_informed"}
CN_ESCALATIONS = {"cn_export_controls"}


def actor(kind: str) -> str:
    return "CN" if kind.startswith("cn_") else "US"


class Government(mesa.Agent):
    def __init__(self, model: mesa.Model, country: str, events: list):
        super().__init__(model)
        self.country = country
        self.events = events          # (day index, event) in date order
        self.next = 0
        self.applied: list[tuple[int, str]] = []

    def act(self, day: int) -> bool:
        """Apply every event due today (dated ones and reactions); True if anything changed."""
        changed = False
        while self.next < len(self.events) and self.events[self.next][0] <= day:
            self.model.diplomacy.apply(self.events[self.next][1], day)
            self.next += 1
            changed = True
        return changed

    def handle(self, ev, day: int) -> None:
        if ev.kind in CHIP_EVENT_KINDS:
            self.model.chips.apply(ev, day)      # US chip controls, licences, Entity List, BIS stance
        else:
            getattr(self, "_" + ev.kind)(ev)
        self.applied.append((day, ev.kind))

    # ---------------------------------------------------------------- China
    def schedule(self, day: int, ev) -> None:
        """Add a reaction to this government's agenda, keeping it in day order."""
        self.events.insert(next((i for i in range(self.next, len(self.events)) if self.events[i][0] > day),
                                len(self.events)), (day, ev))

    def _cn_export_controls(self, ev) -> None:
        m = self.model
        for item in ev.items:
            m.controls[CONTROLLABLE.index(item)] = True
        if m.first_control_day is None:
            m.first_control_day = m.day
        m.refresh_controls()

    def _cn_lift_controls(self, ev) -> None:
        for item in ev.items:
            self.model.controls[CONTROLLABLE.index(item)] = False
        self.model.refresh_controls()

    def _cn_licensing_stance(self, ev) -> None:
        st = self.model.review.stance
        for name in ("p_approve_civil", "p_approve_military", "p_incomplete", "statutory_working_days",
                     "customs_days", "licence_volume_days", "validity_days"):
            v = getattr(ev, name)
            if v is not None:
                setattr(st, name, v)
        if ev.destination_factor:
            for r, v in ev.destination_factor.items():
                st.destination_factor[REGIONS.index(r)] = v
        self.model.refresh_controls()

    def _cn_fast_track(self, ev) -> None:
        m = self.model
        net = m.net
        dests = np.isin(net.dest, [REGIONS.index(r) for r in ev.destinations])
        use = net.end_use[net.buy]
        civil = ~net.military[net.buy]
        group = {"auto": use == 0, "industrial": use == 1, "all_civil": civil}[ev.end_use] & civil
        sel = dests & group & net.cn_export
        rv = m.review
        rv.fast[sel] = True
        rv.fast_review_wd[sel] = ev.review_working_days
        rv.fast_validity[sel] = ev.validity_days
        # applications already in the queue for these relationships move to the shorter clock
        q = rv.queue
        hit = sel[q.edge]
        q.due_wd[hit] = np.minimum(q.due_wd[hit], q.submit_wd[hit] + ev.review_working_days)
        q.validity[hit] = ev.validity_days
        e = q.edge[hit]
        q.tonnage[hit] = np.maximum(q.tonnage[hit], net.backlog[e] + net.rate()[e] * ev.validity_days)

    def _cn_hire_reviewers(self, ev) -> None:
        m = self.model
        target = [o for o in m.offices if o.level == "provincial"] or m.offices
        target[0].hire(m.day, ev.reviewers, m.cfg.licensing.cn.training_days)

    # ---------------------------------------------------------------- United States
    def _us_defense_sourcing_rule(self, ev) -> None:
        self.model.ban_cn_defense_supply("US")

    def _marker(self, ev) -> None:
        """Recorded only."""


class Diplomacy:
    """Routes events to the right government, schedules retaliation, and runs deals."""

    def __init__(self, model, policy):
        self.model = model
        self.p = policy
        self.deal = None
        self.deal_day: int | None = None
        self.log: list[tuple[int, str]] = []
        self.retaliated = {"CN": False, "US": False}

    def _gov(self, country: str) -> Government:
        return next(g for g in self.model.governments if g.country == country)

    def apply(self, ev, day: int) -> None:
        if ev.kind == "deal":
            if not self.p.deal:
                self.log.append((day, "deal not taken (policy.deal = false)"))
                return
            for term in ev.terms:
                self._gov(actor(term.kind)).handle(term, day)
            self.deal, self.deal_day = ev, day
            self.log.append((day, "deal"))
            return
        self._gov(actor(ev.kind)).handle(ev, day)
        if ev.kind in US_ESCALATIONS:
            self._escalation("US", day)
        elif ev.kind in CN_ESCALATIONS:
            self._escalation("CN", day)

    def _escalation(self, by: str, day: int) -> None:
        start = self.p.reactions_from
        if start is not None and day < (start - self.model.start).days:
            return
        if self.deal is not None:
            self.break_deal(day, f"{by} escalation")
        responder = "CN" if by == "US" else "US"
        rules = self.p.cn_retaliation if responder == "CN" else self.p.us_retaliation
        if rules and not (self.p.retaliate_once and self.retaliated[responder]):
            self.retaliated[responder] = True
            when = day + self.p.retaliation_lag_days
            for ev in rules:
                self._gov(actor(ev.kind)).schedule(when, ev)
            on = self.model.start + dt.timedelta(days=when)
            self.log.append((day, f"{responder} retaliation scheduled for {on}"))

    def monthly(self, day: int, rng: np.random.Generator) -> None:
        """A deal may break down: hazard ``breakdown_per_year``, drawn monthly."""
        if self.deal is not None and self.deal.breakdown_per_year > 0:
            if rng.random() < 1.0 - (1.0 - self.deal.breakdown_per_year) ** (30 / 365):
                self.break_deal(day, "breakdown")

    def break_deal(self, day: int, reason: str) -> None:
        deal, self.deal = self.deal, None
        self.log.append((day, f"deal broke down ({reason})"))
        for ev in deal.breakdown:
            self.apply(ev, day)
