"""The two governments: each applies its dated policy events from the scenario config.

China's government sets export controls, the licensing stance, fast-track terms and MOFCOM hiring;
the US government sets chip licence requirements and grants, and the defence sourcing rule. Events are
data (``[[events]]`` in a scenario); this module turns each kind into changes of the model's state.
"""

from __future__ import annotations

import mesa
import numpy as np

from model.config import CONTROLLABLE, REGIONS

CN_KINDS = {"cn_export_controls", "cn_lift_controls", "cn_licensing_stance", "cn_fast_track", "cn_hire_reviewers"}
US_KINDS = {"us_chip_licence_requirement", "us_chip_licences_granted", "us_defense_sourcing_rule"}


class Government(mesa.Agent):
    def __init__(self, model: mesa.Model, country: str, events: list):
        super().__init__(model)
        self.country = country
        self.events = events          # (day index, event) in date order
        self.next = 0
        self.applied: list[tuple[int, str]] = []

    def act(self, day: int) -> bool:
        """Apply every event due today; True if anything changed."""
        changed = False
        while self.next < len(self.events) and self.events[self.next][0] <= day:
            ev = self.events[self.next][1]
            getattr(self, "_" + ev.kind)(ev)
            self.applied.append((day, ev.kind))
            self.next += 1
            changed = True
        return changed

    # ---------------------------------------------------------------- China
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
    def _us_chip_licence_requirement(self, ev) -> None:
        for f in self.model.chip_firms:
            if f.name in ev.firms:
                f.require_licence()

    def _us_chip_licences_granted(self, ev) -> None:
        for f in self.model.chip_firms:
            if f.name in ev.firms:
                f.grant_licences(ev.remit_share)

    def _us_defense_sourcing_rule(self, ev) -> None:
        self.model.ban_cn_defense_supply("US")

    def _marker(self, ev) -> None:
        """Recorded only."""
