"""China's limits on how much may leave, other than licences: export quotas and customs holds.

Interface (what the model uses)
-------------------------------
``ExportLimits(model, events)`` with ``events`` every event of the scenario (dated ones, deal terms and
breakdowns, reactions); create it after the network. ``active`` says whether any of them is a quota or
a hold: only then does the component write its record columns and act.
Policy methods (used by :mod:`.government`):
``set_quota(tonnes, until, reference_tonnes, items)``
    A quota batch (event ``cn_export_quota``).
``hold(destinations, items, until, pass_share)``
    A customs hold on shipments of ``items`` to ``destinations`` until the day ``until`` (event
    ``cn_customs_hold``).
``before_production(day)``
    Phase 3, before production: today's cap on each Chinese export relationship (``cap``; ``on`` says if
    any cap applies), which production and shipping respect like the licensed volume.
``after_shipping(day)``
    Phase 4, after shipping: what left against the quota comes off its bank.
``COLUMNS``
    The quota bank left (t), today's exports of quota-bound items (t/day), the number of relationships
    held at customs, China's oxide exports (NdPr, Dy/Tb, Sm) by destination (t/day) and the NdFeB that
    non-Chinese makers ship, by region (t/day): the chain the limits act on.

Mechanism
---------
*Customs hold.* While a hold is in force (from its event's day to the day before ``until``), a Chinese
export relationship whose item is in ``items`` and whose buyer is in ``destinations`` may ship at most
``pass_share`` of its backlog a day. Orders keep arriving and wait in the backlog; nothing is applied for
and nothing expires, so the backlog leaves once the hold ends (as far as the exporter's stock allows).
A hold ending on a day re-opens the relationship that day; another hold still in force keeps it held.

*Export quota.* The quota binds Chinese exports of the modelled raw materials (``items``, default NdPr,
Dy/Tb and Sm oxide). A published quota is in t REO of every rare earth; the model carries three of them,
so each batch is scaled to the modelled items by the world's own baseline: the baseline exports of the
items (t/day, at the start of the run) are taken to use ``reference_tonnes`` of quota a year. A batch of
``tonnes`` for a period of ``P`` days (the event's day to ``until``) then adds
``a = baseline x (tonnes / reference_tonnes) x 365 / P`` tonnes a day of allowance to a bank, every day of
its period (a later batch replaces the accrual of an earlier one from its own day). The bank lapses at the end
of each calendar year (quotas are annual). Each day the bound relationships (after any hold) may ship at
most the bank, pro rata to their backlog: cap ``= backlog x min(1, bank / sum of backlog)``; what ships
comes off the bank. So the items' exports over a year never exceed the allowance accrued in it.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import CONTROLLABLE, REGIONS, Kind, Material

LIMIT_KINDS = ("cn_export_quota", "cn_customs_hold")
EXPORT_REGIONS = ("US", "EU", "JP", "IN", "ROW")
MAKER_REGIONS = ("JP", "EU", "US")


def _all_events(cfg) -> list:
    """Every event a scenario may apply: dated ones, deal terms and breakdowns, and reactions."""
    out = []
    for ev in list(cfg.events) + list(cfg.policy.cn_retaliation) + list(cfg.policy.us_retaliation):
        out.append(ev)
        out += list(getattr(ev, "terms", [])) + list(getattr(ev, "breakdown", []))
    return out


class ExportLimits:
    """China's export quota and customs holds, as a cap on each export relationship's shipments."""

    COLUMNS = (
        ("cn_quota_bank_t", "cn_quota_exports_t", "cn_held_relationships")
        + tuple(f"cn_oxide_exports_to_{r.lower()}_t" for r in EXPORT_REGIONS)
        + tuple(f"{r.lower()}_makers_ndfeb_shipped_t" for r in MAKER_REGIONS)
    )
    INTEGER_COLUMNS = ("cn_held_relationships",)

    def __init__(self, model, cfg):
        self.model = model
        self.net = net = model.net
        self.active = any(ev.kind in LIMIT_KINDS for ev in _all_events(cfg))
        self.cap = np.full(net.e, np.inf)
        self.on = False  # any cap applies today
        # holds: (first day, end day (exclusive), relationship mask, pass share)
        self.holds: list[tuple[int, int, np.ndarray, float]] = []
        self.held = np.zeros(net.e, dtype=bool)
        # quota
        self.quota_on = False
        self.bound = np.zeros(net.e, dtype=bool)  # relationships bound by the quota
        self.base_rate = net.rate().copy()  # baseline flow of each relationship, t/day
        self.accrual = 0.0  # t/day of allowance while a batch's period runs
        self.accrue_until = -1  # last day of the current batch's period
        self.bank = 0.0
        self.shipped_today = 0.0
        self.exported = 0.0  # quota-bound exports so far, t (for tests and the summary)
        self.allowed = 0.0  # allowance accrued so far, t
        self._year = model.calendar.start.year
        # for the record: China's oxide exports by destination, non-Chinese makers' NdFeB shipments by region
        oxide = net.cn_export & (net.mat <= int(Material.SM))
        self.rec_oxide = [np.flatnonzero(oxide & (net.dest == REGIONS.index(r))) for r in EXPORT_REGIONS]
        maker = (net.kind[net.sup] == Kind.MAKER) & (net.mat == int(Material.NDFEB))
        self.rec_makers = [np.flatnonzero(maker & (net.region[net.sup] == REGIONS.index(r))) for r in MAKER_REGIONS]

    # ================================================================== policy (used by governments)
    def _mask(self, items, destinations=None) -> np.ndarray:
        net = self.net
        item_on = np.zeros(len(CONTROLLABLE), dtype=bool)
        item_on[[CONTROLLABLE.index(i) for i in items]] = True
        mask = net.cn_export & item_on[net.item]
        if destinations is not None:
            dest_on = np.zeros(len(REGIONS), dtype=bool)
            dest_on[[REGIONS.index(r) for r in destinations]] = True
            mask &= dest_on[net.dest]
        return mask

    def _day(self, date) -> int:
        return (date - self.model.calendar.start).days

    def hold(self, destinations, items, until, pass_share: float) -> None:
        """Customs hold shipments of ``items`` to ``destinations`` from today until ``until`` (exclusive)."""
        day = self.model.day
        self.holds.append((day, self._day(until), self._mask(items, destinations), float(pass_share)))

    def set_quota(self, tonnes: float, until, reference_tonnes: float, items) -> None:
        """A quota batch of ``tonnes`` (t REO) for today .. ``until``: allowance for the modelled ``items``
        accrues at their baseline rate x ``tonnes / reference_tonnes`` x 365 / period days."""
        day = self.model.day
        self.bound = self._mask(items)
        base = float(self.base_rate[self.bound].sum())
        end = self._day(until)
        period = max(end - day + 1, 1)
        self.accrual = base * (tonnes / reference_tonnes) * 365.0 / period
        self.accrue_until = end
        self.quota_on = True

    # ================================================================== the day
    def before_production(self, day: int) -> None:
        if not self.active:
            return
        if self.model.calendar.date(day).year != self._year:  # quotas are annual: the bank lapses
            self._year = self.model.calendar.date(day).year
            self.bank = 0.0
        net = self.net
        cap = self.cap
        cap[:] = np.inf
        self.held[:] = False
        for first, end, mask, pass_share in self.holds:
            if first <= day < end:
                self.held |= mask
                cap[mask] = np.minimum(cap[mask], net.backlog[mask] * pass_share)
        if self.quota_on:
            if day <= self.accrue_until:
                self.bank += self.accrual
                self.allowed += self.accrual
            b = self.bound
            want = np.minimum(net.backlog[b], cap[b])
            total = float(want.sum())
            f = 1.0 if total <= self.bank else self.bank / total
            cap[b] = want * f
        self.on = bool(self.held.any()) or self.quota_on

    def after_shipping(self, day: int) -> None:
        if not self.quota_on:
            self.shipped_today = 0.0
            return
        x = float(self.model.producers.ship_today[self.bound].sum())
        self.shipped_today = x
        self.exported += x
        self.bank = max(self.bank - x, 0.0)

    def end_of_day(self) -> None:
        self.row[self.at] = self.bank
        self.row[self.at + 1] = self.shipped_today
        self.row[self.at + 2] = int(self.held.sum())
        ship = self.model.producers.ship_today
        k = self.at + 3
        for idx in self.rec_oxide + self.rec_makers:
            self.row[k] = float(ship[idx].sum())
            k += 1
