"""China's export licensing: MOFCOM offices (central and provincial) and the interagency review.

An application is filed by a Chinese exporter for one supply relationship (exporter → foreign end user,
one material) and carries its end-user class, destination and tonnage. It goes through:

1. a document check ``doc_check_working_days`` after filing: incomplete files are returned (and the
   exporter resubmits a new application after ``resubmit_days``);
2. the interagency review: ``effort_reviewer_days`` of reviewer work taken in filing order from the
   offices' pooled daily capacity (one reviewer-day per reviewer per working day), and consultation
   that is not concluded before the statutory clock (``statutory_working_days`` after filing) unless
   the application is fast-tracked;
3. a decision with approval odds by end-user class, destination and the current stance. An approved
   licence carries a volume and a validity; a refused military end user is not applied for again.

Offices hire when the backlog per reviewer is high; new reviewers work after ``training_days``.
Identity that always holds: submitted = approved + denied + pending + returned (returned files are
withdrawn; their resubmission is a new application).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mesa
import numpy as np

DOC_CHECK, REVIEW, CLOSED = 0, 1, 2


@dataclass
class Stance:
    """How the review decides now; changed by ``cn_licensing_stance`` events."""

    p_approve_civil: float
    p_approve_military: float
    p_incomplete: float
    statutory_working_days: int
    customs_days: int
    licence_volume_days: float
    validity_days: int
    destination_factor: np.ndarray  # by region index


@dataclass
class QueueCounts:
    submitted: int = 0
    approved: int = 0
    denied: int = 0
    returned: int = 0
    approved_military: int = 0
    wait_sum_wd: float = 0.0
    first_approval_day: int | None = None
    first_submission_day: int | None = None


_FIELDS = ("edge", "submit_wd", "doc_wd", "due_wd", "effort", "stage", "military", "dest", "tonnage", "validity")


@dataclass
class LicenceQueue:
    """Open applications as parallel arrays, in filing order."""

    edge: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    submit_wd: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    doc_wd: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    due_wd: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    effort: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stage: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    military: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    dest: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tonnage: np.ndarray = field(default_factory=lambda: np.zeros(0))
    validity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: QueueCounts = field(default_factory=QueueCounts)

    @property
    def pending(self) -> int:
        return int(self.edge.size)

    def append(self, **cols: np.ndarray) -> None:
        for name in _FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), cols[name]]))

    def drop(self, keep: np.ndarray) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(self, name)[keep])


class MofcomOffice(mesa.Agent):
    """A MOFCOM licensing office (central or provincial) with reviewers and a hiring pipeline."""

    def __init__(self, model: mesa.Model, level: str, reviewers: int):
        super().__init__(model)
        self.level = level
        self.reviewers = int(reviewers)
        self.trainees: list[tuple[int, int]] = []   # (day they start reviewing, how many)

    def hire(self, day: int, n: int, training_days: int) -> None:
        if n > 0:
            self.trainees.append((day + training_days, n))

    def onboard(self, day: int) -> None:
        if self.trainees and self.trainees[0][0] <= day:
            ready = [t for t in self.trainees if t[0] <= day]
            self.trainees = [t for t in self.trainees if t[0] > day]
            self.reviewers += sum(n for _, n in ready)

    @property
    def in_training(self) -> int:
        return sum(n for _, n in self.trainees)


class InteragencyReview(mesa.Agent):
    """The National Export Control Coordination Mechanism: reviews and decides applications."""

    def __init__(self, model: mesa.Model, params, stance: Stance, n_edges: int):
        super().__init__(model)
        self.p = params
        self.stance = stance
        self.queue = LicenceQueue()
        # fast-track terms per supply relationship (June 2025 temporary licences and the like)
        self.fast = np.zeros(n_edges, dtype=bool)
        self.fast_review_wd = np.zeros(n_edges, dtype=np.int64)
        self.fast_validity = np.zeros(n_edges, dtype=np.int64)
        self.hired = 0.0   # fractional hires carried between working days
        self.first_approval = np.full((6, 4), -1, dtype=np.int64)   # day, by destination and end use

    # ----------------------------------------------------------------- exporters file applications
    def file_applications(self, net, rate: np.ndarray, day: int, wd: int, rng: np.random.Generator) -> None:
        """Chinese exporters file for every licensed relationship that has open orders and too little
        licensed volume left, once their documents are ready."""
        p = self.p
        low = (net.licence_left < rate * p.renew_cover_days) | (net.licence_exp < day)
        want = net.controlled & ~net.app_open & ~net.blocked & (net.ready_day <= day) & low & (net.backlog > 0)
        idx = np.flatnonzero(want)
        if idx.size == 0:
            return
        st = self.stance
        mil = net.military[net.buy[idx]]
        fast = self.fast[idx]
        clock = np.where(fast, self.fast_review_wd[idx], st.statutory_working_days)
        self.queue.append(
            edge=idx, submit_wd=np.full(idx.size, wd), doc_wd=np.full(idx.size, wd + p.doc_check_working_days),
            due_wd=wd + clock,
            effort=np.full(idx.size, float(p.effort_reviewer_days)), stage=np.zeros(idx.size, np.int8),
            military=mil, dest=net.dest[idx],
            tonnage=net.backlog[idx] + rate[idx] * np.where(fast, self.fast_validity[idx], st.licence_volume_days),
            validity=np.where(fast, self.fast_validity[idx], st.validity_days),
        )
        net.app_open[idx] = True
        c = self.queue.counts
        c.submitted += int(idx.size)
        if c.first_submission_day is None:
            c.first_submission_day = day

    # ----------------------------------------------------------------- one working day of review
    def review(self, net, offices: list[MofcomOffice], day: int, wd: int, rng: np.random.Generator) -> None:
        q, p, st, c = self.queue, self.p, self.stance, self.queue.counts
        if q.pending == 0:
            return
        # 1. document check: incomplete files go back to the exporter
        stage = q.stage
        check = np.flatnonzero((stage == DOC_CHECK) & (q.doc_wd <= wd))
        closed = False
        if check.size:
            bad = rng.random(check.size) < st.p_incomplete
            ret = check[bad]
            stage[check] = REVIEW
            if ret.size:
                e = q.edge[ret]
                net.app_open[e] = False
                net.ready_day[e] = day + p.resubmit_days
                c.returned += int(ret.size)
                stage[ret] = CLOSED
                closed = True
        # 2. reviewer work, first filed first served, from the offices' pooled capacity
        in_review = stage == REVIEW
        rev = np.flatnonzero(in_review & (q.effort > 0))
        budget = float(sum(o.reviewers for o in offices))
        if rev.size and budget > 0:
            cs = np.cumsum(q.effort[rev])
            k = int(np.searchsorted(cs, budget, side="right"))      # applications finished today
            q.effort[rev[:k]] = 0.0
            if k < rev.size:
                q.effort[rev[k]] -= budget - (cs[k - 1] if k else 0.0)
        # 3. decisions once the work is done and the consultation clock has run
        dec = np.flatnonzero(in_review & (q.effort <= 0) & (q.due_wd <= wd))
        if dec.size:
            mil = q.military[dec]
            p_ok = np.where(mil, st.p_approve_military, st.p_approve_civil * st.destination_factor[q.dest[dec]])
            ok = rng.random(dec.size) < p_ok
            edges = q.edge[dec]
            e_ok, e_no = edges[ok], edges[~ok]
            # volume adds up; remaining volume of an older licence keeps the later of the two expiries
            net.licence_exp[e_ok] = np.maximum(np.where(net.licence_left[e_ok] > 0, net.licence_exp[e_ok], -1),
                                               day + q.validity[dec[ok]])
            net.licence_left[e_ok] += q.tonnage[dec[ok]]
            net.app_open[edges] = False
            mil_no = mil[~ok]
            net.blocked[e_no[mil_no]] = True            # exporters stop filing for refused military users
            net.ready_day[e_no[~mil_no]] = day + p.reapply_days
            n_ok = int(ok.sum())
            c.approved += n_ok
            c.approved_military += int(mil[ok].sum())
            c.denied += int(dec.size - n_ok)
            c.wait_sum_wd += float(wd * dec.size - q.submit_wd[dec].sum())
            if n_ok:
                if c.first_approval_day is None:
                    c.first_approval_day = day
                d, u = net.dest[e_ok], net.end_use[net.buy[e_ok]]
                new = self.first_approval[d, u] < 0
                self.first_approval[d[new], u[new]] = day
            stage[dec] = CLOSED
            closed = True
        if closed:
            q.drop(stage != CLOSED)

    # ----------------------------------------------------------------- staffing
    def staff(self, offices: list[MofcomOffice], day: int) -> None:
        """Hire into the provincial offices (or the centre if there are none) while the backlog per
        reviewer is above the threshold; new hires review after their training."""
        p = self.p
        for o in offices:
            o.onboard(day)
        staff = sum(o.reviewers + o.in_training for o in offices)
        if self.queue.pending > p.hire_backlog_per_reviewer * staff and staff < p.max_reviewers:
            self.hired += p.hire_per_month * 12 / 250   # per working day
            n = min(int(self.hired), p.max_reviewers - staff)
            if n > 0:
                self.hired -= n
                target = [o for o in offices if o.level == "provincial"] or offices
                target[day % len(target)].hire(day, n, p.training_days)
