"""China's export licensing: what needs a licence, MOFCOM's offices and the interagency review.

Interface (what the model uses)
-------------------------------
``Licensing(model, cfg)`` with ``cfg`` the ``licensing.cn`` config section; create it after the network.
Creates one :class:`MofcomOffice` Mesa agent per office (central + ``provincial_offices``), held in the
AgentSet ``offices``.
``decide(day, working)``
    Phase 2 of the day: on Chinese working days offices onboard trainees and hire, and the review works
    its queue (document checks, reviewer work, decisions); every day, licences past their expiry lapse.
``file_applications(day, working)``
    Phase 5 (after orders): exporters file for licensed relationships that need volume.
Policy methods (used by :mod:`.government`): ``set_controls(items, on, destinations=None)``, ``refresh_controls()``,
``set_stance(**terms)``, ``fast_track(destinations, end_use, review_working_days, validity_days)``,
``general_licence(items, exporter_share, customer_share, end_use, destinations, validity_days, day)``,
``hire(n)``.
``COLUMNS``
    Applications submitted / approved / denied / returned (cumulative), pending, reviewers (written when
    they change).
``counts``, ``first_approval`` (day by destination × end use), ``first_control_day``, ``pending``: for the
summary.

Mechanism
---------
An application is filed by a Chinese exporter for one supply relationship (exporter -> foreign buyer, one
material: licences are per exporter, customer and material) and carries its end-user class, destination
and tonnage. It goes through:

1. a document check ``doc_check_working_days`` after filing (the provincial commerce office's pre-check):
   incomplete files are returned (``p_incomplete``) and the exporter files anew after ``resubmit_days``;
2. the review: ``effort_reviewer_days`` of reviewer work from the offices' pooled daily capacity (one
   reviewer-day per reviewer per working day), taken in order of the applications' deadlines (the
   statutory limit ``statutory_working_days`` after filing, or a fast track's shorter one), then of filing.
   A finished file can be decided at once; a *flagged* file (a military end user, or a destination in
   ``consult_destinations``) first goes to interagency consultation for ``consultation_working_days``;
3. a decision, at most ``decisions_per_working_day`` a day (few officials may sign; unused capacity is not
   banked), in the same order, with approval odds by end-user class, destination and the current stance.
   An approved licence carries a volume and a validity; a refused military end user is not applied for
   again.

So decision times follow from the queue: with few applications a licence comes days after the document
check; the statutory limit bounds nothing by itself, and decisions after it are counted (``late``).

Exporters file when a licensed relationship has open orders and its licensed volume left is below
``renew_cover_days`` of its rate (or the licence has expired), once their documents are ready (a first
filing waits ``prep_days_min``..``prep_days_max`` days after the control). Offices hire when the backlog
per reviewer is high; new reviewers work after ``training_days``. While Dy/Tb-bearing NdFeB is controlled,
Dy/Tb-free NdFeB from China (same customs code) waits ``customs_days_uncontrolled`` at customs; licensed
shipments wait ``customs_days``.

Identity that always holds: submitted = approved + denied + pending + returned (returned files are
withdrawn; their resubmission is a new application).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mesa
import numpy as np
from mesa.agentset import AgentSet

from rareshock.model.codes import CN, CONTROLLABLE, REGIONS, EndUse, Item, Kind
from rareshock.model.numerics import kernel

DOC_CHECK, REVIEW, CLOSED = 0, 1, 2


@dataclass
class Stance:
    """How the review decides now; changed by ``cn_licensing_stance`` events."""

    p_approve_civil: float
    p_approve_military: float
    p_incomplete: float
    statutory_working_days: int
    consultation_working_days: int
    decisions_per_working_day: float
    customs_days: int
    customs_days_uncontrolled: int
    licence_volume_days: float
    validity_days: int
    destination_factor: np.ndarray  # by region index
    consult: np.ndarray  # by region index: applications to it go to interagency consultation


@dataclass
class Counts:
    submitted: int = 0
    approved: int = 0
    denied: int = 0
    returned: int = 0
    approved_military: int = 0
    late: int = 0  # decided after the statutory limit
    wait_sum_wd: float = 0.0
    first_approval_day: int | None = None
    first_submission_day: int | None = None


_INT = ("edge", "submit_wd", "doc_wd", "due_wd", "dest", "validity", "ready_wd")
_FLOAT = ("effort", "tonnage")


class LicenceQueue:
    """Open applications in filing order: the first ``n`` columns of an integer table (edge, filing,
    document-check and statutory due working days, destination, validity, the working day from which it can
    be decided), a float table (reviewer effort left, tonnage), and the military flag, the consultation
    flag and the stage of each."""

    def __init__(self, capacity: int = 256):
        self.n = 0
        self.ints = np.zeros((len(_INT), capacity), np.int64)
        self.floats = np.zeros((len(_FLOAT), capacity))
        self.military = np.zeros(capacity, bool)
        self.flagged = np.zeros(capacity, bool)
        self.stage = np.zeros(capacity, np.int8)
        self._views()

    def _views(self) -> None:
        """Name each row of the tables (``edge``, ``submit_wd``, ..., ``tonnage``)."""
        for i, name in enumerate(_INT):
            setattr(self, name, self.ints[i])
        for i, name in enumerate(_FLOAT):
            setattr(self, name, self.floats[i])

    def reserve(self, size: int) -> None:
        """Room for at least ``size`` open applications (the arrays double as needed)."""
        cap = self.stage.size
        if size > cap:
            new = max(size, 2 * cap)
            self.ints = np.concatenate([self.ints, np.zeros((len(_INT), new - cap), np.int64)], axis=1)
            self.floats = np.concatenate([self.floats, np.zeros((len(_FLOAT), new - cap))], axis=1)
            self.military = np.concatenate([self.military, np.zeros(new - cap, bool)])
            self.flagged = np.concatenate([self.flagged, np.zeros(new - cap, bool)])
            self.stage = np.concatenate([self.stage, np.zeros(new - cap, np.int8)])
            self._views()


# --------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------
@kernel
def _due_checks(n, stage, doc_wd, wd, out):
    """Applications whose document check is due today (indices into ``out``); returns how many."""
    k = 0
    for i in range(n):
        if stage[i] == DOC_CHECK and doc_wd[i] <= wd:
            out[k] = i
            k += 1
    return k


@kernel
def _work(n, stage, effort, due_wd, ready_wd, flagged, wd, budget, consult_wd, signatures, out):
    """One working day of the review, applications in order of their statutory deadline (then of
    filing): reviewer work from today's pooled capacity ``budget`` (a finished file can be decided at
    once, or ``consult_wd`` working days later if it goes to interagency consultation), then at most
    ``signatures`` decisions on files whose work and consultation are done. Returns how many decisions
    are in ``out`` (their indices)."""
    cand = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if stage[i] == REVIEW:
            cand[m] = i
            m += 1
    keys = np.empty(m, np.int64)
    for j in range(m):
        keys[j] = due_wd[cand[j]]
    order = cand[:m][np.argsort(keys, kind="mergesort")]  # deadline first, filing order within
    done = 0.0
    for i in order:
        if not effort[i] > 0.0:
            continue
        if done >= budget:
            break
        if done + effort[i] <= budget:
            done += effort[i]
            effort[i] = 0.0
            ready_wd[i] = wd + (consult_wd if flagged[i] else 0)
        else:
            effort[i] -= budget - done
            done = budget
    k = 0
    for i in order:
        if k >= signatures:
            break
        if effort[i] <= 0.0 and ready_wd[i] <= wd:
            out[k] = i
            k += 1
    return k


@kernel
def _compact(n, stage, cols_i, cols_f, military, flagged):
    """Drop closed applications, keeping filing order; returns the new count."""
    j = 0
    for i in range(n):
        if stage[i] != CLOSED:
            if j != i:
                for c in range(cols_i.shape[0]):
                    cols_i[c, j] = cols_i[c, i]
                for c in range(cols_f.shape[0]):
                    cols_f[c, j] = cols_f[c, i]
                military[j] = military[i]
                flagged[j] = flagged[i]
                stage[j] = stage[i]
            j += 1
    return j


@kernel
def _expire(licence_exp, licence_left, day):
    """Licences past their expiry lapse; returns the next day on which one can (a large number if none)."""
    nxt = 1 << 62
    for e in range(licence_exp.shape[0]):
        if licence_left[e] > 0.0:
            if licence_exp[e] < day:
                licence_left[e] = 0.0
            elif licence_exp[e] < nxt:
                nxt = licence_exp[e]
    return nxt


@kernel
def _file(
    controlled,
    app_open,
    blocked,
    ready_day,
    licence_left,
    licence_exp,
    backlog,
    rate,
    renew_cover_days,
    day,
    wd,
    n,
    ints,
    floats,
    military,
    stage,
    fast,
    fast_review_wd,
    fast_validity,
    statutory_wd,
    volume_days,
    validity_days,
    doc_check_wd,
    effort,
    buy_military,
    dest,
    consult,
    flagged,
):
    """Exporters file for licensed relationships with open orders and too little licensed volume left
    (or an expired licence), once their documents are ready: appended to the queue (columns as in
    ``_INT``/``_FLOAT``). Returns the new number of open applications."""
    for e in range(controlled.shape[0]):
        if (
            controlled[e]
            and not app_open[e]
            and not blocked[e]
            and ready_day[e] <= day
            and backlog[e] > 0.0
            and (licence_left[e] < rate[e] * renew_cover_days or licence_exp[e] < day)
        ):
            f = fast[e]
            ints[0, n] = e
            ints[1, n] = wd
            ints[2, n] = wd + doc_check_wd
            ints[3, n] = wd + (fast_review_wd[e] if f else statutory_wd)
            ints[4, n] = dest[e]
            ints[5, n] = fast_validity[e] if f else validity_days
            ints[6, n] = 1 << 62  # decided once its work (and any consultation) is done
            floats[0, n] = effort
            floats[1, n] = backlog[e] + rate[e] * (float(fast_validity[e]) if f else volume_days)
            military[n] = buy_military[e]
            flagged[n] = buy_military[e] or consult[dest[e]]
            stage[n] = DOC_CHECK
            app_open[e] = True
            n += 1
    return n


@kernel
def _returns(idx, k, u, p_incomplete, stage, edge, app_open, ready_day, ready):
    """Document checks of ``idx[:k]`` with uniforms ``u``: incomplete files go back (returns how many)."""
    returned = 0
    for j in range(k):
        i = idx[j]
        stage[i] = REVIEW
        if u[j] < p_incomplete:
            e = edge[i]
            app_open[e] = False
            ready_day[e] = ready
            stage[i] = CLOSED
            returned += 1
    return returned


@kernel
def _decisions(
    idx,
    k,
    u,
    day,
    wd,
    p_civil,
    p_military,
    destination_factor,
    stage,
    edge,
    military,
    dest,
    validity,
    tonnage,
    submit_wd,
    due_wd,
    licence_left,
    licence_exp,
    app_open,
    blocked,
    ready_day,
    reapply_days,
    end_use,
    buy,
    first_approval,
    tally,
):
    """Decide ``idx[:k]`` with uniforms ``u``. ``tally`` gets (approved, approved military, denied, sum of
    waits in working days, earliest new expiry, decisions after the statutory limit)."""
    approved = approved_mil = denied = wait = late = 0
    nxt = 1 << 62
    for j in range(k):
        i = idx[j]
        e = edge[i]
        mil = military[i]
        p = p_military if mil else p_civil * destination_factor[dest[i]]
        if u[j] < p:
            # volume adds up with an older licence still running (volume left, not past its expiry), and
            # keeps the later of the two expiries; an expired licence's volume lapses
            running = licence_left[e] > 0 and licence_exp[e] >= day
            if not running:
                licence_left[e] = 0.0
            old = licence_exp[e] if running else -1
            exp = max(old, day + validity[i])
            licence_exp[e] = exp
            licence_left[e] += tonnage[i]
            nxt = min(nxt, exp)
            approved += 1
            if mil:
                approved_mil += 1
            use = end_use[buy[e]]
            if first_approval[dest[i], use] < 0:
                first_approval[dest[i], use] = day
        else:
            denied += 1
            if mil:
                blocked[e] = True  # exporters stop filing for refused military users
            else:
                ready_day[e] = day + reapply_days
        if wd > due_wd[i]:
            late += 1
        app_open[e] = False
        wait += wd - submit_wd[i]
        stage[i] = CLOSED
    tally[0] = approved
    tally[1] = approved_mil
    tally[2] = denied
    tally[3] = wait
    tally[4] = nxt
    tally[5] = late


class MofcomOffice(mesa.Agent):
    """A MOFCOM licensing office (central or provincial) with reviewers and a hiring pipeline."""

    def __init__(self, model: mesa.Model, level: str, reviewers: int):
        super().__init__(model)
        self.level = level
        self.reviewers = int(reviewers)
        self.trainees: list[tuple[int, int]] = []  # (day they start reviewing, how many)

    def hire(self, day: int, n: int, training_days: int) -> None:
        if n > 0:
            self.trainees.append((day + training_days, n))

    def onboard(self, day: int) -> int:
        """Trainees whose training is over start reviewing; returns how many."""
        if self.trainees and self.trainees[0][0] <= day:
            ready = [t for t in self.trainees if t[0] <= day]
            self.trainees = [t for t in self.trainees if t[0] > day]
            n = sum(n for _, n in ready)
            self.reviewers += n
            return n
        return 0

    @property
    def in_training(self) -> int:
        return sum(n for _, n in self.trainees)


class Licensing:
    """The licensing regime: controls in force, the offices, the review and its queue."""

    COLUMNS = (
        "cn_licences_submitted_cum",
        "cn_licences_approved_cum",
        "cn_licences_denied_cum",
        "cn_licences_returned_cum",
        "cn_licences_pending",
        "cn_reviewers",
    )
    INTEGER_COLUMNS = COLUMNS

    def __init__(self, model, cfg):
        self.model = model
        self.p = cfg
        net = model.net
        self.net = net
        n_off = 1 + cfg.provincial_offices
        base = cfg.reviewers // n_off
        offices = [MofcomOffice(model, "central", cfg.reviewers - base * cfg.provincial_offices)]
        offices += [MofcomOffice(model, "provincial", base) for _ in range(cfg.provincial_offices)]
        self.offices = AgentSet(offices, random=model.random)
        self._office_list = offices
        self.stance = Stance(
            p_approve_civil=cfg.p_approve_civil,
            p_approve_military=cfg.p_approve_military,
            p_incomplete=cfg.p_incomplete,
            statutory_working_days=cfg.statutory_working_days,
            consultation_working_days=cfg.consultation_working_days,
            decisions_per_working_day=cfg.decisions_per_working_day,
            customs_days=cfg.customs_days,
            customs_days_uncontrolled=cfg.customs_days_uncontrolled,
            licence_volume_days=cfg.licence_volume_days,
            validity_days=cfg.validity_days,
            destination_factor=np.array([cfg.destination_factor.get(r, 1.0) for r in REGIONS]),
            consult=np.array([r in cfg.consult_destinations for r in REGIONS]),
        )
        self.signatures = 0.0  # signing capacity carried between working days (fractions)
        # items that need a licence now, by destination region (item x region; the CN column is what the
        # extraterritorial rule asks of foreign magnets shipped into China)
        self.controls = np.zeros((len(CONTROLLABLE), len(REGIONS)), dtype=bool)
        self.first_control_day: int | None = None
        self.queue = LicenceQueue()
        self.counts = Counts()
        e = net.e
        # per relationship: the exporter's side of licensing
        self.app_open = np.zeros(e, dtype=bool)  # an application is in the queue
        self.blocked = np.zeros(e, dtype=bool)  # the exporter has stopped applying (military refusal)
        self.ready_day = np.zeros(e, dtype=np.int64)  # earliest day the exporter can (re)apply
        # fast-track terms per relationship (June 2025 temporary licences and the like)
        self.fast = np.zeros(e, dtype=bool)
        self.fast_review_wd = np.zeros(e, dtype=np.int64)
        self.fast_validity = np.zeros(e, dtype=np.int64)
        self.general = np.zeros(e, dtype=bool)  # relationships that have held a general licence
        self.hired = 0.0  # fractional hires carried between working days
        self.first_approval = np.full((len(REGIONS), len(EndUse)), -1, dtype=np.int64)
        self.wd = 0  # working days so far (the statutory clock)
        self.next_expiry = 1 << 62
        self._idx = np.zeros(e, dtype=np.int64)
        self._tally = np.zeros(6, dtype=np.int64)
        self._buy_military = net.military[net.buy]
        self.reviewers = sum(o.reviewers for o in offices)  # reviewing now, all offices
        self.in_training = 0  # hired, in training, all offices
        self.foreign_rule = CONTROLLABLE.index("foreign_magnets_cn_content")

    @property
    def pending(self) -> int:
        return self.queue.n

    # ================================================================== policy (used by governments)
    def set_controls(self, items, on: bool, destinations: list[str] | None = None) -> None:
        """Require (``on``) or stop requiring a licence for ``items`` shipped to ``destinations`` (region
        names; ``None``: every destination)."""
        cols = slice(None) if destinations is None else [REGIONS.index(r) for r in destinations]
        for item in items:
            self.controls[CONTROLLABLE.index(item), cols] = on
        if on and self.first_control_day is None:
            self.first_control_day = self.model.day
        self.refresh_controls()

    def refresh_controls(self) -> None:
        """Recompute which relationships need a Chinese licence and the customs friction on them."""
        net, p, model = self.net, self.p, self.model
        was = net.controlled
        controlled = net.cn_export & self.controls[net.item, net.dest]
        if self.controls[self.foreign_rule].any():
            # foreign-made magnets with Chinese material need a Chinese licence to cross a border
            x_maker = (net.region[net.sup] != CN) & (net.kind[net.sup] == Kind.MAKER)
            cross = net.region[net.sup] != net.region[net.buy]
            to = self.controls[self.foreign_rule, net.dest]
            controlled |= x_maker & cross & to & (model.sourcing.non_cn_frac[net.sup] < 1.0)
        net.set_controlled(controlled)
        new = net.controlled & ~was
        if new.any():  # exporters need time to assemble the documents for a first application
            self.ready_day[new] = model.day + model.rng.integers(p.prep_days_min, p.prep_days_max + 1, int(new.sum()))
        # customs friction: on licensed shipments, and (while Dy/Tb-bearing NdFeB is controlled) on loose
        # Dy/Tb-free NdFeB from China, which shares its customs code and is inspected too
        light = net.cn_export & (net.item == Item.NDFEB_LIGHT) & self.controls[Item.NDFEB_HEAVY, net.dest]
        friction = np.where(light, self.stance.customs_days_uncontrolled, 0)
        net.extra_lead = np.where(net.controlled, self.stance.customs_days, friction)

    def controlled_items(self) -> list[str]:
        """Items that need a licence to at least one destination."""
        return [c for c, on in zip(CONTROLLABLE, self.controls.any(axis=1)) if on]

    def controlled_to(self, item: str) -> list[str]:
        """The destinations ``item`` needs a licence to."""
        return [r for r, on in zip(REGIONS, self.controls[CONTROLLABLE.index(item)]) if on]

    def set_stance(
        self, destination_factor: dict | None = None, consult_destinations: list | None = None, **terms
    ) -> None:
        """Change how the review decides (unset terms stay); applications already filed keep their flags."""
        for name, v in terms.items():
            if v is not None:
                setattr(self.stance, name, v)
        if destination_factor:
            for r, v in destination_factor.items():
                self.stance.destination_factor[REGIONS.index(r)] = v
        if consult_destinations is not None:
            self.stance.consult = np.array([r in consult_destinations for r in REGIONS])
        self.refresh_controls()

    def fast_track(self, destinations: list[str], end_use: str, review_working_days: int, validity_days: int) -> None:
        """Temporary licences for suppliers of named end-user groups: a shorter clock and a validity of
        their own for these relationships, applied to applications already in the queue too."""
        net = self.net
        dests = np.isin(net.dest, [REGIONS.index(r) for r in destinations])
        use = net.end_use[net.buy]
        civil = ~net.military[net.buy]
        group = {"auto": use == EndUse.AUTO, "industrial": use == EndUse.INDUSTRIAL, "all_civil": civil}[end_use]
        group &= civil
        sel = dests & group & net.cn_export
        self.fast[sel] = True
        self.fast_review_wd[sel] = review_working_days
        self.fast_validity[sel] = validity_days
        q, n = self.queue, self.queue.n
        hit = np.flatnonzero(sel[q.edge[:n]])
        q.due_wd[hit] = np.minimum(q.due_wd[hit], q.submit_wd[hit] + review_working_days)
        q.validity[hit] = validity_days
        e = q.edge[hit]
        q.tonnage[hit] = np.maximum(q.tonnage[hit], net.backlog[e] + net.rate()[e] * validity_days)

    def general_licence(
        self,
        items: list[str],
        exporter_share: float,
        customer_share: float,
        end_use: str,
        destinations: list[str] | None,
        validity_days: int,
        day: int,
    ) -> int:
        """General licences: the largest Chinese exporters of ``items`` (by capacity, together at least
        ``exporter_share`` of it) may ship these items to ``customer_share`` of their civil customers of
        ``end_use`` in ``destinations`` (drawn once from the model's rng) without volume limit for
        ``validity_days`` from ``day``. Returns how many relationships it covers. Applications already filed for them
        are decided as usual; after expiry exporters apply again."""
        net = self.net
        on_item = net.cn_export & np.isin(net.item, [CONTROLLABLE.index(i) for i in items])
        dests = REGIONS[1:] if destinations is None else destinations
        use = net.end_use[net.buy]
        civil = ~net.military[net.buy]
        group = {"auto": use == EndUse.AUTO, "industrial": use == EndUse.INDUSTRIAL, "all_civil": civil}[end_use]
        cand = on_item & civil & group & np.isin(net.dest, [REGIONS.index(r) for r in dests])
        sellers = np.unique(net.sup[on_item])
        if sellers.size == 0:
            return 0
        cap = net.cap[sellers][:, np.unique(net.mat[on_item])].sum(axis=1)
        order = np.argsort(-cap, kind="stable")
        cum = np.cumsum(cap[order]) / cap.sum()
        chosen = sellers[order[: int(np.searchsorted(cum, exporter_share - 1e-12)) + 1]]
        cand &= np.isin(net.sup, chosen)
        idx = np.flatnonzero(cand)
        if customer_share < 1.0:
            idx = idx[self.model.rng.random(idx.size) < customer_share]
        net.licence_left[idx] = np.inf  # no volume limit while valid
        net.licence_exp[idx] = day + validity_days
        self.next_expiry = min(self.next_expiry, day + validity_days)
        self.general[idx] = True
        return int(idx.size)

    def hire(self, n: int) -> None:
        target = [o for o in self._office_list if o.level == "provincial"] or self._office_list
        target[0].hire(self.model.day, n, self.p.training_days)
        self.in_training += n

    # ================================================================== phase 2: decisions
    def decide(self, day: int, working: bool) -> None:
        if working:
            self.wd += 1
            self._staff(day)
            if self.queue.n:
                self._review(day, self.wd)
            self.start_record()
        if day > self.next_expiry:
            self.next_expiry = _expire(self.net.licence_exp, self.net.licence_left, day)

    def _staff(self, day: int) -> None:
        """Hire into the provincial offices (or the centre if there are none) while the backlog per
        reviewer is above the threshold; new hires review after their training."""
        p, offices = self.p, self._office_list
        if self.in_training:
            started = sum(o.onboard(day) for o in offices)
            self.reviewers += started
            self.in_training -= started
        staff = self.reviewers + self.in_training
        if self.queue.n > p.hire_backlog_per_reviewer * staff and staff < p.max_reviewers:
            self.hired += p.hire_per_month * 12 / 250  # per working day
            n = min(int(self.hired), p.max_reviewers - staff)
            if n > 0:
                self.hired -= n
                target = [o for o in offices if o.level == "provincial"] or offices
                target[day % len(target)].hire(day, n, p.training_days)
                self.in_training += n

    def _review(self, day: int, wd: int) -> None:
        q, p, st, c, net, rng = self.queue, self.p, self.stance, self.counts, self.net, self.model.rng
        n = q.n
        idx = self._idx  # at most one open application per relationship, so n <= edges
        closed = False
        # 1. document check: incomplete files go back to the exporter
        k = _due_checks(n, q.stage, q.doc_wd, wd, idx)
        if k:
            returned = _returns(
                idx,
                k,
                rng.random(k),
                st.p_incomplete,
                q.stage,
                q.edge,
                self.app_open,
                self.ready_day,
                day + p.resubmit_days,
            )
            c.returned += returned
            closed = returned > 0
        # 2. reviewer work, deadline first; 3. decisions on finished files, within today's signatures
        self.signatures += st.decisions_per_working_day
        k = _work(
            n,
            q.stage,
            q.effort,
            q.due_wd,
            q.ready_wd,
            q.flagged,
            wd,
            float(self.reviewers),
            st.consultation_working_days,
            int(self.signatures),
            idx,
        )
        left = self.signatures - k
        self.signatures = left - math.floor(left)  # unused signatures are not banked (only the fraction)
        if k:
            t = self._tally
            _decisions(
                idx,
                k,
                rng.random(k),
                day,
                wd,
                st.p_approve_civil,
                st.p_approve_military,
                st.destination_factor,
                q.stage,
                q.edge,
                q.military,
                q.dest,
                q.validity,
                q.tonnage,
                q.submit_wd,
                q.due_wd,
                net.licence_left,
                net.licence_exp,
                self.app_open,
                self.blocked,
                self.ready_day,
                p.reapply_days,
                net.end_use,
                net.buy,
                self.first_approval,
                t,
            )
            c.approved += int(t[0])
            c.approved_military += int(t[1])
            c.denied += int(t[2])
            c.wait_sum_wd += float(t[3])
            c.late += int(t[5])
            if t[0]:
                self.next_expiry = min(self.next_expiry, int(t[4]))
                if c.first_approval_day is None:
                    c.first_approval_day = day
            closed = True
        if closed:
            q.n = _compact(n, q.stage, q.ints, q.floats, q.military, q.flagged)

    # ================================================================== phase 5: applications
    def file_applications(self, day: int, working: bool) -> None:
        """Chinese exporters file for every licensed relationship that has open orders and too little
        licensed volume left, once their documents are ready (working days)."""
        if not working or not self.net.any_controlled:
            return
        net, p, st, q = self.net, self.p, self.stance, self.queue
        q.reserve(q.n + net.e)
        n = _file(
            net.controlled,
            self.app_open,
            self.blocked,
            self.ready_day,
            net.licence_left,
            net.licence_exp,
            net.backlog,
            net.order_rate,
            p.renew_cover_days,
            day,
            self.wd,
            q.n,
            q.ints,
            q.floats,
            q.military,
            q.stage,
            self.fast,
            self.fast_review_wd,
            self.fast_validity,
            st.statutory_working_days,
            st.licence_volume_days,
            st.validity_days,
            p.doc_check_working_days,
            float(p.effort_reviewer_days),
            self._buy_military,
            net.dest,
            st.consult,
            q.flagged,
        )
        k = n - q.n
        if k == 0:
            return
        q.n = n
        c = self.counts
        c.submitted += k
        if c.first_submission_day is None:
            c.first_submission_day = day
        self.start_record()

    # ================================================================== record
    def start_record(self) -> None:
        """Write the counts into the record row (at the start, and whenever they change)."""
        c = self.counts
        self.row[self.at : self.at + 6] = (c.submitted, c.approved, c.denied, c.returned, self.queue.n, self.reviewers)
