"""US chip designers and toolmakers selling into China under US licensing, the Chinese buyers who design
them out, and the BIS licensing queue between them.

Interface (what the model uses)
-------------------------------
``ChipSector(model, cfg: model.chips_config.ChipsConfig)``
    Creates one :class:`ChipFirm` per ``cfg.firms`` entry and one :class:`ChineseChipBuyer` per
    ``cfg.buyers`` entry (Mesa agents, registered with ``model``), the BIS queue, and the start backlog.
    Randomness: approval draws only, from ``model.rng``.
``sector.apply(event, day=None)``
    Applies one chip event (any class in ``model.chips_config.CHIP_EVENTS``). ``day`` defaults to the day
    after the last ``step``: call it in the policy phase of the event's day, before ``step(day)``.
``sector.step(day: int, working: bool)``
    One calendar day. ``working``: whether BIS works that day (the Chinese working-day flag of the model is
    an acceptable proxy). Days must be stepped in order 0, 1, 2, ...
``sector.record_row() -> tuple[float, ...]``
    Today's values of the daily columns named in ``ChipSector.COLUMNS`` (in that order), after ``step``.
``sector.metrics() -> dict``
    End-of-run outcomes after the last ``step``: ``us_chip_revenue_lost_usd``, ``us_chip_write_off_usd``,
    ``us_chip_remitted_usd``, ``cn_chip_localisation_end``, ``bis_applications`` {submitted, approved,
    denied, returned, pending_end} and more (see the method).
``sector.set_import_ban(firms, share, day)``
    Policy method (``cn_chip_import_ban``, China's side): Chinese buyers do not buy ``share`` of the firms'
    China sales from ``day``.
``sector.accounting() -> dict``
    The stocks and flows behind the identities below (for tests and checks).

Integration (model side): ``ScenarioConfig.chips: ChipsConfig``; add ``CHIP_EVENTS`` to the event union and
check names with ``cfg.chips.event_error(ev)``; in the model ``self.chips = ChipSector(self, cfg.chips)``,
the US government forwards every kind in ``CHIP_EVENT_KINDS`` to ``self.chips.apply(ev)``, the chips phase
of the day calls ``self.chips.step(day, working)``, the record appends ``record_row()`` under
``ChipSector.COLUMNS``, and the summary takes ``metrics()``.

Mechanism
---------
Firm f sells to one buyer b. Its potential China sales per day are
``base_f x (1 - L_b) / (1 - L_b0)``, where ``base_f = china_revenue_usd_per_year / 365`` and L_b is the
buyer's localisation. The counterfactual (no new controls) is the same with the buyer's baseline
localisation path L*_b. Of the potential sales:

- the Entity-Listed share of the buyer's purchases (case-by-case or presumption of denial) needs a
  licence ("entity" applications);
- of the rest, the firm's licence-bound product share ``1 - (1 - controlled_share x required) x (1 -
  informed)`` needs a licence ("product" applications) unless covered by licences granted
  (``us_chip_licences_granted``), which ship with ``remit_share`` paid to the US government;
- everything else ships.

Blocked sales are orders waiting for a licence. Firms file one BIS application per ``application_usd``
of blocked orders on working days. BIS works the queue first-filed-first-served with ``reviewers x
applications_per_reviewer_day`` applications per working day (unused capacity is not banked), decides an
application no earlier than ``min_review_working_days`` after filing, and approves it with ``p_approve``
(or ``p_approve_presumption_of_denial`` for Entity-Listed buyers under that presumption and for firms
whose requirement carries it). An approval releases the order's value as revenue; a denial loses it.
Lifting a requirement or delisting returns pending applications without action and the orders ship.
The start backlog is applications filed under the controls in force before the start (toolmakers, by
China revenue); in the counterfactual those orders ship at the start. No new applications arise under
those older controls: their effect is in the 2024 revenue.

Design-out: a buyer's localisation closes the gap to its ceiling C at the rate
``(baseline + design_out x blocked share) / (C - L_b0)`` per year, where the blocked share is the share of
its US purchases needing a licence not granted (whether or not it is approved later). The path is exact:
``C - L(t) = (C - L(t0)) exp(-(baseline rate x dt + design-out rate x integral of the blocked share))``.
Sales rates use L from a fixed grid of updates every ``cfg.update_days`` days (piecewise constant), so the
counterfactual does not depend on when events happen. L never falls: when controls are lifted, US sales
recover only to ``(1 - L) / (1 - L*) = 1 - (L - L*) / (1 - L*)`` of the counterfactual, and the
counterfactual's slower baseline catches up only over the years.

Write-offs: when a requirement or is-informed letter raises a firm's licence-bound product share above
its previous high-water mark s, ``inventory_at_risk_usd x (min(1, s_new/c) - min(1, s_old/c))`` is
written off (c = ``controlled_share``, or 1 if 0): the full amount when the controlled products are
blocked, pro rata for partial letters, at most once per episode. Lifting the firm's controls ends the
episode (the firm rebuilds China inventory: assumption).

Accounting (identities that ``accounting()`` exposes and the tests check):

- counterfactual revenue = actual revenue + denied + design-out shortfall + pending (orders in the queue
  and not yet filed) + orders China's own import block stopped (``cn_chip_import_ban``: those orders are
  never placed); ``us_chip_revenue_lost_usd`` = counterfactual - actual = the last three.
  Actual revenue is gross: remittances are part of it and reported separately.
- BIS: submitted (incl. the start backlog) = approved + denied + returned (without action) + pending.

Cost: rates change only at events and every ``update_days``; on other days ``step`` does nothing but
(on working days) file and review, with plain floats for the handful of firms, and the queue is kept as
cohorts (one per firm, origin and filing day).
"""

from __future__ import annotations

import math

import mesa

from rareshock.model.chips_config import ChipBuyerConfig, ChipFirmConfig, ChipsConfig

# Origins of blocked orders and applications.
PRODUCT, ENTITY_CASE, ENTITY_DENIAL, OLD = 0, 1, 2, 3
ORIGINS = ("product", "entity_case", "entity_denial", "start_backlog")
# Columns of a queue cohort (a small list, mutated in place).
_F, _O, _N, _W, _S = 0, 1, 2, 3, 4


class ChipFirm(mesa.Agent):
    """A US chip designer or toolmaker: China sales, licence-bound shares, BIS filings, write-offs."""

    def __init__(self, model: mesa.Model, name: str, cfg: ChipFirmConfig, buyer: ChineseChipBuyer, index: int):
        super().__init__(model)
        self.name, self.cfg, self.kind, self.index, self.buyer = name, cfg, cfg.kind, index, buyer
        self.base_rate = cfg.china_revenue_usd_per_year / 365.0
        self.app_usd = cfg.application_usd
        # controls on this firm
        self.required = False  # licence requirement on its controlled products
        self.informed = 0.0  # share of China sales caught by is-informed letters
        self.licensed_share = 0.0  # part of the licence-bound share covered by granted licences
        self.remit_share = 0.0
        self.product_denial = False  # product applications decided with presumption-of-denial odds
        self.cn_ban = 0.0  # share of its China sales Chinese buyers may not buy (China's own block)
        self.written_share = 0.0  # high-water licence-bound share already written off
        # per-day rates (set by ChipSector._rates)
        self.demand = self.cf_rate = self.revenue_rate = self.remit_rate = self.banned_rate = 0.0
        self.blocked = [0.0, 0.0, 0.0]  # by origin PRODUCT, ENTITY_CASE, ENTITY_DENIAL
        self.blocked_share = 0.0
        # stocks: blocked orders not yet filed (USD), pending applications (count) by origin
        self.unfiled = [0.0, 0.0, 0.0]
        self.pending = [0, 0, 0, 0]
        # cumulative USD (flows accrued up to the sector's last rate change)
        self.sales_usd = 0.0  # shipped at the flow rate
        self.released_usd = 0.0  # shipped when a licence was approved/granted or not needed
        self.remitted_usd = 0.0
        self.cf_usd = 0.0
        self.design_out_usd = 0.0
        self.denied_usd = 0.0
        self.write_off_usd = 0.0
        self.banned_usd = 0.0  # orders not placed because of China's own block

    # ----------------------------------------------------------------- state
    @property
    def product_share(self) -> float:
        """Share of non-listed China sales that needs a licence (requirement and letters)."""
        return 1.0 - (1.0 - self.cfg.controlled_share * self.required) * (1.0 - self.informed)

    def set_rates(self) -> None:
        b = self.buyer
        d = self.base_rate * b.factor
        self.banned_rate = d * self.cn_ban
        d = d - self.banned_rate  # China's own block: those orders are never placed
        ne = d * (1.0 - b.listed_case - b.listed_denial)
        p, lic = self.product_share, self.licensed_share
        self.demand, self.cf_rate = d + self.banned_rate, self.base_rate * b.cf_factor
        self.blocked = [ne * (p - lic), d * b.listed_case, d * b.listed_denial]
        self.revenue_rate = ne * (1.0 - p + lic)
        self.remit_rate = ne * lic * self.remit_share
        # share of this firm's demand blocked (independent of L)
        self.blocked_share = (1.0 - b.listed_case - b.listed_denial) * (p - lic) + b.listed_case + b.listed_denial

    # ----------------------------------------------------------------- decisions
    def write_off(self) -> float:
        """Write off China-specific inventory for a newly licence-bound share; returns the amount."""
        c = self.cfg.controlled_share or 1.0
        s = self.product_share
        new, old = min(1.0, s / c), min(1.0, self.written_share / c)
        self.written_share = max(self.written_share, s)
        if new <= old:
            return 0.0
        amount = self.cfg.inventory_at_risk_usd * (new - old)
        self.write_off_usd += amount
        return amount

    def lift(self) -> None:
        """All licence requirements and letters on this firm end; the write-off episode ends too."""
        self.required, self.informed, self.licensed_share, self.remit_share = False, 0.0, 0.0, 0.0
        self.product_denial = False
        self.written_share = 0.0


class ChineseChipBuyer(mesa.Agent):
    """Chinese buyers of one kind of US product (chips, or tools), their Entity-List status and their
    localisation (share of needs met by Chinese suppliers), which rises faster while US supply is blocked."""

    def __init__(self, model: mesa.Model, name: str, cfg: ChipBuyerConfig):
        super().__init__(model)
        self.name, self.cfg, self.buys = name, cfg, cfg.buys
        self.L0, self.ceiling = cfg.localisation_start, cfg.localisation_ceiling
        self.L = self.L_cf = self.L0
        gap = self.ceiling - self.L0
        # gap-closing rates per day
        self.base_rate = cfg.baseline_gain_per_year / gap / 365.0 if gap > 0 else 0.0
        self.design_rate = cfg.design_out_gain_per_year / gap / 365.0 if gap > 0 else 0.0
        self.listed_case = 0.0 if cfg.entity_presumption_of_denial_start else cfg.entity_listed_share_start
        self.listed_denial = cfg.entity_listed_share_start if cfg.entity_presumption_of_denial_start else 0.0
        self.blocked_share = 0.0  # share of US purchases blocked (set by ChipSector._rates)
        self.t = 0  # day up to which L and L_cf are advanced
        self.beta_days = 0.0  # integral of blocked_share (days) from t to t_beta
        self.t_beta = 0
        self.factor = self.cf_factor = 1.0
        self.firms: list[ChipFirm] = []
        self.weight = 0.0

    def accrue(self, day: int) -> None:
        """Add the blocked share since the last change to its time integral (before the share changes)."""
        self.beta_days += self.blocked_share * (day - self.t_beta)
        self.t_beta = day

    def advance(self, day: int) -> None:
        """Localisation at ``day``, from the time integral of the blocked share since the last update:
        C - L(t) = (C - L(t0)) exp(-(baseline x dt + design_out x integral of blocked share)), exact."""
        self.accrue(day)
        dt = day - self.t
        if dt > 0:
            c = self.ceiling
            self.L = c - (c - self.L) * math.exp(-(self.base_rate * dt + self.design_rate * self.beta_days))
            self.L_cf = c - (c - self.L_cf) * math.exp(-self.base_rate * dt)
            self.t, self.beta_days = day, 0.0
        self.factor = (1.0 - self.L) / (1.0 - self.L0)
        self.cf_factor = (1.0 - self.L_cf) / (1.0 - self.L0)

    def localisation_at(self, day: int) -> tuple[float, float]:
        """(L, L_cf) at the start of ``day`` without changing state."""
        dt = day - self.t
        if dt <= 0:
            return self.L, self.L_cf
        c = self.ceiling
        bd = self.beta_days + self.blocked_share * (day - self.t_beta)
        return (
            c - (c - self.L) * math.exp(-(self.base_rate * dt + self.design_rate * bd)),
            c - (c - self.L_cf) * math.exp(-self.base_rate * dt),
        )

    def list(self, share: float, denial: bool) -> None:
        add = min(share, 1.0 - self.listed_case - self.listed_denial)
        if denial:
            self.listed_denial += add
        else:
            self.listed_case += add

    def delist(self, share: float) -> float:
        """Remove ``share`` of purchases from the list; returns the fraction of listed purchases removed."""
        listed = self.listed_case + self.listed_denial
        if listed <= 0:
            return 0.0
        phi = min(share, listed) / listed
        self.listed_case *= 1.0 - phi
        self.listed_denial *= 1.0 - phi
        return phi


class ChipSector:
    """Owns the chip firms, the Chinese buyers and the BIS queue; see the module docstring."""

    COLUMNS = (
        "us_chip_china_revenue_usd_day",  # shipped today (flow plus licences released today)
        "us_chip_counterfactual_revenue_usd_day",  # no new controls, baseline localisation
        "us_chip_revenue_lost_usd_cum",  # counterfactual - actual, cumulative
        "us_chip_write_off_usd_cum",
        "us_chip_remitted_usd_cum",
        "us_chip_blocked_share",  # share of US firms' China demand waiting for a licence
        "cn_chip_localisation",  # buyers' localisation, weighted by start US revenue
        "cn_chip_localisation_baseline",  # the same on the counterfactual path
        "bis_submitted_cum",
        "bis_approved_cum",
        "bis_denied_cum",
        "bis_returned_cum",
        "bis_pending",
    )

    def __init__(self, model: mesa.Model, cfg: ChipsConfig):
        self.model, self.cfg = model, cfg
        # by name: results never depend on the key order of a config table (manifests sort keys)
        self.buyers = {name: ChineseChipBuyer(model, name, cfg.buyers[name]) for name in sorted(cfg.buyers)}
        self.firms = [
            ChipFirm(model, name, f, self.buyers[cfg.buyer_of(name)], i)
            for i, (name, f) in enumerate(sorted(cfg.firms.items()))
        ]
        self.by_name = {f.name: f for f in self.firms}
        for f in self.firms:
            f.buyer.firms.append(f)
            f.buyer.weight += f.base_rate
        wsum = sum(b.weight for b in self.buyers.values())
        self._w = [(b, b.weight / wsum if wsum > 0 else 1.0 / len(self.buyers)) for b in self.buyers.values()]
        # BIS stance
        bis = cfg.bis
        self.reviewers = bis.reviewers
        self.per_reviewer = bis.applications_per_reviewer_day
        self.min_wd = bis.min_review_working_days
        self.p_approve = bis.p_approve
        self.p_denial = bis.p_approve_presumption_of_denial
        # queue of cohorts [firm index, origin, n pending, n worked, filing working day]
        self.queue: list[list[int]] = []
        self.head = 0  # first cohort that may still be pending
        self.wp = 0  # first cohort not fully worked
        self.carry = 0.0  # fractional reviewer capacity carried to the next working day
        self.wd = 0  # working days so far
        self.submitted = self.approved = self.denied = self.returned = 0
        self.wait_sum_wd = 0.0
        # clocks: flows accrued up to t_r, unfiled orders up to t_u; last stepped day
        self.day = -1
        self.t_r = self.t_u = 0
        self._tick = cfg.update_days
        # sector totals (USD) accrued up to t_r, plus releases
        self.sales_usd = self.released_usd = self.remitted_usd = self.cf_usd = 0.0
        self.design_out_usd = self.denied_usd = self.write_off_usd = 0.0
        self.banned_usd = self.banned_rate = 0.0  # China's own block (cn_chip_import_ban)
        self.ban_used = False
        self._rel_day, self._rel_today = -1, 0.0
        self._u: list[float] = []
        self._ui = 0
        self._start_backlog()
        for b in self.buyers.values():
            b.advance(0)
        self._rates()

    # ================================================================== set-up
    def _start_backlog(self) -> None:
        n = self.cfg.bis.backlog_start
        owners = [f for f in self.firms if f.kind == "toolmaker" and f.base_rate > 0] or [
            f for f in self.firms if f.base_rate > 0
        ]
        if n == 0 or not owners:
            return
        tot = sum(f.base_rate for f in owners)
        quota = [n * f.base_rate / tot for f in owners]
        counts = [int(q) for q in quota]
        for i in sorted(range(len(owners)), key=lambda i: counts[i] - quota[i])[: n - sum(counts)]:
            counts[i] += 1  # largest remainder
        for f, k in zip(owners, counts):
            if k:
                self.queue.append([f.index, OLD, k, 0, -self.min_wd])
                f.pending[OLD] += k
                self.submitted += k
                v = k * f.app_usd
                f.cf_usd += v  # in the counterfactual these orders ship at the start
                self.cf_usd += v

    # ================================================================== rates and clocks
    def _rates(self) -> None:
        """Per-day rates of every firm and the sector totals; constant until the next update."""
        for f in self.firms:
            f.set_rates()
        for b in self.buyers.values():
            w = sum(f.base_rate for f in b.firms)
            b.blocked_share = sum(f.base_rate * f.blocked_share for f in b.firms) / w if w > 0 else 0.0
        fs = self.firms
        self.rev_rate = sum(f.revenue_rate for f in fs)
        self.remit_rate = sum(f.remit_rate for f in fs)
        self.cf_rate = sum(f.cf_rate for f in fs)
        self.demand_rate = sum(f.demand for f in fs)
        self.banned_rate = sum(f.banned_rate for f in fs)
        self.blocked_rate = sum(sum(f.blocked) for f in fs)
        self._active = [(f, o) for f in fs for o in (PRODUCT, ENTITY_CASE, ENTITY_DENIAL) if f.blocked[o] > 0]

    def _close(self, day: int, update: bool = False) -> None:
        """Accrue flows and unfiled orders up to the start of ``day``; with ``update``, also move
        localisation (and so sales rates) to ``day``. Updates fall on a fixed grid (every
        ``update_days``), so the counterfactual does not depend on when events happen."""
        dt = day - self.t_r
        if dt > 0:
            for f in self.firms:
                f.sales_usd += f.revenue_rate * dt
                f.remitted_usd += f.remit_rate * dt
                f.cf_usd += f.cf_rate * dt
                f.design_out_usd += (f.cf_rate - f.demand) * dt
                f.banned_usd += f.banned_rate * dt
            self.sales_usd += self.rev_rate * dt
            self.remitted_usd += self.remit_rate * dt
            self.cf_usd += self.cf_rate * dt
            self.design_out_usd += (self.cf_rate - self.demand_rate) * dt
            self.banned_usd += self.banned_rate * dt
            self.t_r = day
        du = day - self.t_u
        if du > 0:
            for f, o in self._active:
                f.unfiled[o] += f.blocked[o] * du
            self.t_u = day
        for b in self.buyers.values():
            if update:
                b.advance(day)
            else:
                b.accrue(day)

    # ================================================================== one day
    def step(self, day: int, working: bool) -> None:
        self.day = day
        if day >= self._tick:
            self._close(day, update=True)
            self._rates()
            self._tick = day + self.cfg.update_days
        if working:
            self._working_day(day)

    def _working_day(self, day: int) -> None:
        self.wd += 1
        wd = self.wd
        du = day + 1 - self.t_u
        q = self.queue
        for f, o in self._active:  # firms file for today's blocked orders
            u = f.unfiled[o] + f.blocked[o] * du
            n = int(u / f.app_usd)
            if n:
                q.append([f.index, o, n, 0, wd])
                f.pending[o] += n
                self.submitted += n
                u -= n * f.app_usd
            f.unfiled[o] = u
        self.t_u = day + 1
        if self.head < len(q):
            self._review(day, wd)

    def _review(self, day: int, wd: int) -> None:
        q, n_q = self.queue, len(self.queue)
        # reviewer work, first filed first served
        budget = self.carry + self.reviewers * self.per_reviewer
        i = max(self.wp, self.head)
        while i < n_q and budget >= 1.0:
            c = q[i]
            left = c[_N] - c[_W]
            if left > 0:
                take = min(left, int(budget))
                c[_W] += take
                budget -= take
                if take < left:
                    break
            i += 1
        self.wp = i
        self.carry = budget if i < n_q else 0.0
        # decisions on worked applications whose minimum review time has passed
        lim = wd - self.min_wd
        h = self.head
        while h < n_q:
            c = q[h]
            if c[_N] == 0:
                h += 1
                continue
            d = c[_W]
            if d == 0 or c[_S] > lim:
                break
            self._decide(c, d, day, wd)
            c[_N] -= d
            c[_W] = 0
            if c[_N]:
                break
            h += 1
        self.head = h
        if h > 4096 and 2 * h > n_q:
            del q[:h]
            self.wp -= h
            self.head = 0

    def _decide(self, c: list[int], d: int, day: int, wd: int) -> None:
        f, o = self.firms[c[_F]], c[_O]
        deny = o == ENTITY_DENIAL or (o == PRODUCT and f.product_denial)
        a = self._bernoulli(d, self.p_denial if deny else self.p_approve)
        f.pending[o] -= d
        self.approved += a
        self.denied += d - a
        self.wait_sum_wd += d * (wd - c[_S])
        if a:
            self._release(f, a * f.app_usd, 0.0, day)
        if d - a:
            v = (d - a) * f.app_usd
            f.denied_usd += v
            self.denied_usd += v

    def _bernoulli(self, n: int, p: float) -> int:
        if p >= 1.0:
            return n
        if p <= 0.0:
            return 0
        i, u = self._ui, self._u
        if i + n > len(u):
            u = self._u = self.model.rng.random(max(4096, n)).tolist()
            i = 0
        self._ui = i + n
        return sum(1 for x in u[i : i + n] if x < p)

    def _release(self, f: ChipFirm, value: float, remit: float, day: int) -> None:
        """Orders worth ``value`` ship now; ``remit`` of them is paid to the US government."""
        f.released_usd += value
        self.released_usd += value
        if remit:
            f.remitted_usd += value * remit
            self.remitted_usd += value * remit
        if self._rel_day != day:
            self._rel_day, self._rel_today = day, 0.0
        self._rel_today += value

    # ================================================================== events
    def apply(self, event, day: int | None = None) -> None:
        """Apply one chip event on ``day`` (default: the day after the last step, before its step)."""
        day = self.day + 1 if day is None else day
        if day <= self.day:
            raise ValueError(f"chip event on day {day} after day {self.day} was stepped")
        self._close(day)
        self.HANDLERS[event.kind](self, event, day)
        self._rates()

    def set_import_ban(self, firms: list[str], share: float, day: int) -> None:
        """China's own block on buying the named firms' chips (``cn_chip_import_ban``): from ``day``, Chinese
        buyers do not place ``share`` of those firms' China orders (0 ends it). Those orders are lost to the
        firm (``cn_import_ban_usd``), not filed with BIS; localisation is not sped up by them (assumption)."""
        if day <= self.day:
            raise ValueError(f"chip import ban on day {day} after day {self.day} was stepped")
        self._close(day)
        for name in firms:
            self.by_name[name].cn_ban = share
        self.ban_used = True
        self._rates()

    def _us_chip_licence_requirement(self, ev, day: int) -> None:
        for name in ev.firms:
            f = self.by_name[name]
            if f.cfg.controlled_share <= 0:
                continue
            f.required = True
            f.licensed_share = 0.0  # (re)imposed: licences granted earlier are revoked
            f.product_denial = ev.presumption_of_denial
            self.write_off_usd += f.write_off()

    def _us_is_informed(self, ev, day: int) -> None:
        for name in ev.firms:
            f = self.by_name[name]
            f.informed = 1.0 - (1.0 - f.informed) * (1.0 - ev.share)
            f.product_denial = ev.presumption_of_denial
            self.write_off_usd += f.write_off()

    def _us_chip_licences_granted(self, ev, day: int) -> None:
        for name in ev.firms:
            f = self.by_name[name]
            if f.product_share <= 0:
                continue
            f.licensed_share = f.product_share
            f.remit_share = ev.remit_share
            n, wait = self._take_pending(f, PRODUCT, f.pending[PRODUCT])
            self.approved += n
            self.wait_sum_wd += wait
            self._release(f, n * f.app_usd + f.unfiled[PRODUCT], ev.remit_share, day)
            f.unfiled[PRODUCT] = 0.0

    def _us_entity_list(self, ev, day: int) -> None:
        for b in self._buyers(ev.buyers):
            b.list(ev.share, ev.presumption_of_denial)

    def _us_entity_list_removal(self, ev, day: int) -> None:
        self._delist(ev.buyers, ev.share, day)

    def _us_bis_stance(self, ev, day: int) -> None:
        self._stance(ev)

    def _us_chip_rollback(self, ev, day: int) -> None:
        for name in ev.firms:
            f = self.by_name[name]
            n, _ = self._take_pending(f, PRODUCT, f.pending[PRODUCT])
            self.returned += n
            self._release(f, n * f.app_usd + f.unfiled[PRODUCT], 0.0, day)
            f.unfiled[PRODUCT] = 0.0
            f.lift()
        if ev.entity_list_removed_share > 0:
            self._delist(ev.buyers, ev.entity_list_removed_share, day)
        self._stance(ev)

    # what each chip event kind does (explicit dispatch: kind -> handler)
    HANDLERS = {
        "us_chip_licence_requirement": _us_chip_licence_requirement,
        "us_is_informed": _us_is_informed,
        "us_chip_licences_granted": _us_chip_licences_granted,
        "us_entity_list": _us_entity_list,
        "us_entity_list_removal": _us_entity_list_removal,
        "us_bis_stance": _us_bis_stance,
        "us_chip_rollback": _us_chip_rollback,
    }

    # ----------------------------------------------------------------- event helpers
    def _buyers(self, names: list[str]) -> list[ChineseChipBuyer]:
        return [self.buyers[n] for n in names] if names else list(self.buyers.values())

    def _stance(self, ev) -> None:
        if ev.p_approve is not None:
            self.p_approve = ev.p_approve
        if ev.p_approve_presumption_of_denial is not None:
            self.p_denial = ev.p_approve_presumption_of_denial
        if ev.reviewers is not None:
            self.reviewers = ev.reviewers

    def _delist(self, names: list[str], share: float, day: int) -> None:
        for b in self._buyers(names):
            phi = b.delist(share)
            if phi <= 0:
                continue
            for f in b.firms:
                for o in (ENTITY_CASE, ENTITY_DENIAL):
                    n, _ = self._take_pending(f, o, round(f.pending[o] * phi))
                    self.returned += n
                    v = f.unfiled[o] * phi
                    f.unfiled[o] -= v
                    self._release(f, n * f.app_usd + v, 0.0, day)

    def _take_pending(self, f: ChipFirm, o: int, n: int) -> tuple[int, float]:
        """Remove up to ``n`` pending applications of firm ``f`` and origin ``o``, oldest first; returns
        how many, and their summed wait in working days."""
        left, wait = n, 0.0
        if left <= 0:
            return 0, 0.0
        for c in self.queue[self.head :]:
            if c[_F] == f.index and c[_O] == o and c[_N]:
                k = min(left, c[_N])
                c[_N] -= k
                c[_W] = min(c[_W], c[_N])
                wait += k * (self.wd - c[_S])
                left -= k
                if not left:
                    break
        took = n - left
        f.pending[o] -= took
        return took, wait

    # ================================================================== outputs
    def _totals(self, day: int) -> tuple[float, float, float]:
        """(actual, counterfactual, remitted) cumulative USD up to the end of ``day``."""
        el = day + 1 - self.t_r
        return (
            self.sales_usd + self.rev_rate * el + self.released_usd,
            self.cf_usd + self.cf_rate * el,
            self.remitted_usd + self.remit_rate * el,
        )

    def _localisation(self, day: int) -> tuple[float, float]:
        L = Lcf = 0.0
        for b, w in self._w:
            x, y = b.localisation_at(day)
            L += w * x
            Lcf += w * y
        return L, Lcf

    def end_of_day(self) -> None:
        """Write today's values of ``COLUMNS`` into the record row (``row`` at ``at``, set by the registry)."""
        self.row[self.at : self.at + len(self.COLUMNS)] = self.record_row()

    def record_row(self) -> tuple[float, ...]:
        day = self.day
        el = day + 1 - self.t_r
        actual = self.sales_usd + self.rev_rate * el + self.released_usd
        L = Lcf = 0.0
        exp = math.exp
        for b, w in self._w:  # localisation at the end of today (inlined for speed)
            dt = day + 1 - b.t
            c = b.ceiling
            L += w * (
                c
                - (c - b.L)
                * exp(-(b.base_rate * dt + b.design_rate * (b.beta_days + b.blocked_share * (day + 1 - b.t_beta))))
            )
            Lcf += w * (c - (c - b.L_cf) * exp(-b.base_rate * dt))
        dr = self.demand_rate
        sub, ok, no, ret = self.submitted, self.approved, self.denied, self.returned
        return (
            self.rev_rate + (self._rel_today if self._rel_day == day else 0.0),
            self.cf_rate,
            self.cf_usd + self.cf_rate * el - actual,
            self.write_off_usd,
            self.remitted_usd + self.remit_rate * el,
            self.blocked_rate / dr if dr > 0 else 0.0,
            L,
            Lcf,
            float(sub),
            float(ok),
            float(no),
            float(ret),
            float(sub - ok - no - ret),
        )

    @property
    def pending_count(self) -> int:
        return sum(sum(f.pending) for f in self.firms)

    def accounting(self) -> dict:
        """Cumulative stocks and flows up to the end of the last stepped day (USD and counts)."""
        day = self.day
        actual, cf, remitted = self._totals(day)
        el, eu = day + 1 - self.t_r, day + 1 - self.t_u
        design_out = self.design_out_usd + (self.cf_rate - self.demand_rate) * el
        pending_usd = sum(sum(f.pending[o] for o in range(4)) * f.app_usd for f in self.firms)
        unfiled_usd = sum(f.unfiled[o] + f.blocked[o] * eu for f in self.firms for o in range(3))
        return {
            "counterfactual_usd": cf,
            "actual_usd": actual,
            "denied_usd": self.denied_usd,
            "design_out_usd": design_out,
            "pending_usd": pending_usd,
            "unfiled_usd": unfiled_usd,
            "remitted_usd": remitted,
            "write_off_usd": self.write_off_usd,
            "cn_import_ban_usd": self.banned_usd + self.banned_rate * el,
            "submitted": self.submitted,
            "approved": self.approved,
            "denied": self.denied,
            "returned": self.returned,
            "pending": self.pending_count,
        }

    def metrics(self) -> dict:
        """Outcomes at the end of the last stepped day."""
        a = self.accounting()
        end = self.day + 1
        L, Lcf = self._localisation(end)
        lost = a["counterfactual_usd"] - a["actual_usd"]
        decided = self.approved + self.denied
        firms = {}
        for f in self.firms:
            el = end - self.t_r
            actual = f.sales_usd + f.revenue_rate * el + f.released_usd
            cf = f.cf_usd + f.cf_rate * el
            firms[f.name] = {
                "revenue_usd": actual,
                "revenue_lost_usd": cf - actual,
                "write_off_usd": f.write_off_usd,
                "remitted_usd": f.remitted_usd + f.remit_rate * el,
                "denied_usd": f.denied_usd,
            }
        return {
            "us_chip_revenue_lost_usd": lost,
            "us_chip_write_off_usd": a["write_off_usd"],
            "us_chip_remitted_usd": a["remitted_usd"],
            "us_chip_revenue_usd": a["actual_usd"],
            "us_chip_counterfactual_revenue_usd": a["counterfactual_usd"],
            "us_chip_revenue_lost_parts_usd": {
                "denied": a["denied_usd"],
                "design_out": a["design_out_usd"],
                "pending": a["pending_usd"] + a["unfiled_usd"],
                **({"cn_import_ban": a["cn_import_ban_usd"]} if self.ban_used else {}),
            },
            "cn_chip_localisation_end": L,
            "cn_chip_localisation_baseline_end": Lcf,
            "cn_chip_localisation_by_buyer": {b.name: b.localisation_at(end)[0] for b in self.buyers.values()},
            "bis_applications": {
                "submitted": self.submitted,
                "approved": self.approved,
                "denied": self.denied,
                "returned": self.returned,
                "pending_end": a["pending"],
            },
            "bis_mean_wait_working_days": self.wait_sum_wd / decided if decided else None,
            "firms": firms,
        }
