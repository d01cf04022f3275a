"""How every magnet buyer splits its orders between Chinese and non-Chinese suppliers, and how much of
what it receives is free of Chinese material.

Interface (what the model uses)
-------------------------------
``Sourcing(model, cfg)`` with ``cfg`` the ``sourcing`` config section; create it after the network.
``review(day)``
    Phase 5 (after orders): every ``review_days`` stalled buyers move part of their Chinese orders.
``derisk(net, spare, rate)``, ``refresh(net)``, ``update_content()``
    Monthly, from :mod:`.investment`: offtakes for new capacity, where moved orders can go, and each
    supplier's non-Chinese content.
``ban_china(net, groups)``
    A sourcing rule moves the whole Chinese share of the selected groups (used by :mod:`.defense`).
``non_cn_frac``
    Share of each node's output free of Chinese material (read by :mod:`.licensing` for the
    extraterritorial rule).
``COLUMNS``
    US arrivals (t/day) free of Chinese material: defence, automakers, all; and all US arrivals (written at
    the end of the day).
``us_need``
    US defence (NdFeB + SmCo) and automaker (NdFeB) baseline need, t/day, for the summary's
    self-sufficiency years.

Mechanism
---------

Plants, defence programmes, industrial users and non-Chinese magnet makers each buy one material from
one or more Chinese suppliers and (usually) one or more non-Chinese suppliers. When the buyer's Chinese
orders have waited longer than ``switch_trigger_days`` of their flow, it moves ``switch_share_per_day``
of its orders to its non-Chinese suppliers (qualification and redesign take time; buyers review their
sourcing every ``review_days``), up to
``switch_max_share`` of its original Chinese share. A sourcing rule (e.g. the 2027 US defence rule)
moves the whole Chinese share at once. New non-Chinese capacity finds buyers each month
(:meth:`Sourcing.derisk`): offtakes move orders from Chinese suppliers to it, defence first. Moved shares
are split over the non-Chinese suppliers in proportion to their original shares, and taken from the
Chinese suppliers in proportion to theirs.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import CN, REGIONS, Kind, Material
from rareshock.model.network import M
from rareshock.model.numerics import kernel, pdot_at, psum_at

NDFEB, SMCO = int(Material.NDFEB), int(Material.SMCO)


@kernel
def _us_arrivals(arrivals, e_def, w_def, e_auto, w_auto, e_us, w_us, row, at):
    row[at] = pdot_at(arrivals, e_def, w_def)
    row[at + 1] = pdot_at(arrivals, e_auto, w_auto)
    row[at + 2] = pdot_at(arrivals, e_us, w_us)
    row[at + 3] = psum_at(arrivals, e_us)


@kernel
def _stalled(edges, group, cnf, backlog, rate, trigger_days, n_groups, stalled):
    """Groups whose Chinese orders have waited longer than ``trigger_days`` of their flow; returns how many."""
    waiting = np.zeros(n_groups)
    flow = np.zeros(n_groups)
    for k in range(edges.shape[0]):
        e = edges[k]
        waiting[group[k]] += backlog[e] * cnf[k]
        flow[group[k]] += rate[e] * cnf[k]
    n = 0
    for g in range(n_groups):
        stalled[g] = waiting[g] > flow[g] * trigger_days
        n += stalled[g]
    return n


@kernel
def _derisk(edges, group, is_cn, cnf, military_g, sup_flat, share, need_f, g_need, spare, rate, n_groups):
    """Offtakes (see :meth:`Sourcing.derisk`); returns False, changing nothing, if no group can move."""
    n_e = edges.shape[0]
    cn_share = np.zeros(n_groups)
    for k in range(n_e):
        cn_share[group[k]] += share[edges[k]] * cnf[k]
    need_g = np.empty(n_groups)
    want_g = np.empty(n_groups)
    for g in range(n_groups):
        need_g[g] = need_f[g_need[g]]
        want_g[g] = cn_share[g] * need_g[g] * rate
    n_elig = np.zeros(n_groups)
    eligible = np.zeros(n_e, dtype=np.bool_)
    any_elig = False
    for k in range(n_e):
        eligible[k] = (not is_cn[k]) and spare[sup_flat[edges[k]]] > 1e-12 and want_g[group[k]] > 0
        if eligible[k]:
            n_elig[group[k]] += 1.0
            any_elig = True
    if not any_elig:
        return False
    demand = np.zeros(n_e)
    for k in range(n_e):
        if eligible[k]:
            demand[k] = want_g[group[k]] / max(n_elig[group[k]], 1.0)
    n_s = spare.shape[0]
    d = np.empty(n_e)
    d_share = np.empty(n_e)
    for tier in range(2):  # defence programmes first
        for k in range(n_e):
            d[k] = demand[k] * (1.0 if military_g[group[k]] == (tier == 0) else 0.0)
        total = np.zeros(n_s)
        for k in range(n_e):
            total[sup_flat[edges[k]]] += d[k]
        taken = np.zeros(n_s)
        moved = np.zeros(n_groups)
        for k in range(n_e):
            f = sup_flat[edges[k]]
            r = spare[f] / total[f] if total[f] > 0 else 0.0
            if r > 1.0:
                r = 1.0
            shift = d[k] * r
            taken[f] += shift
            g = group[k]
            d_share[k] = shift / need_g[g] if need_g[g] > 0 else 0.0
            moved[g] += d_share[k]
        for i in range(n_s):
            spare[i] -= taken[i]
        frac = np.empty(n_groups)
        for g in range(n_groups):
            if moved[g] > cn_share[g]:
                moved[g] = cn_share[g]
            frac[g] = moved[g] / cn_share[g] if cn_share[g] > 0 else 0.0
        for k in range(n_e):
            e = edges[k]
            share[e] += d_share[k] - share[e] * frac[group[k]] * cnf[k]
        for g in range(n_groups):
            cn_share[g] = cn_share[g] - moved[g]
    return True


@kernel
def _content(n, region, kind, buy, mat, sup, share, cn_region, separator, maker, recipe, cap, base_cap, frac):
    """Non-Chinese share of each node's output (see :meth:`Sourcing.update_content`)."""
    m_count = recipe.shape[0]
    tot = np.zeros(n * m_count)
    cns = np.zeros(n * m_count)
    for e in range(share.shape[0]):
        key = buy[e] * m_count + mat[e]
        tot[key] += share[e]
        cns[key] += share[e] * (1.0 if region[sup[e]] == cn_region else 0.0)
    for i in range(n):
        frac[i] = 0.0
        if region[i] == cn_region:
            continue
        if kind[i] == separator:
            frac[i] = 1.0
        elif kind[i] == maker:
            best = 0  # the maker's product: its largest capacity
            for j in range(1, m_count):
                if cap[i, j] + base_cap[i, j] > cap[i, best] + base_cap[i, best]:
                    best = j
            low = 1.0
            first = True
            for j in range(m_count):
                t = tot[i * m_count + j]
                v = (t - cns[i * m_count + j]) / t if t > 0 else 1.0
                x = v if recipe[best, j] > 0 else 1.0
                if first or x < low:
                    low = x
                    first = False
            frac[i] = low


class Sourcing:
    """The (buyer, material) groups that have both Chinese and non-Chinese suppliers."""

    COLUMNS = ("us_defense_non_cn_t", "us_auto_non_cn_t", "us_magnets_non_cn_t", "us_magnets_received_t")

    def __init__(self, model, params):
        net = model.net
        self.model, self.net = model, net
        self.p = params
        key = net.buy * M + net.mat
        cn = net.region[net.sup] == CN
        n = net.n * M
        both = (np.bincount(key, cn, minlength=n) > 0) & (np.bincount(key, ~cn, minlength=n) > 0)
        self.edges = np.flatnonzero(both[key])
        keys, self.group = np.unique(key[self.edges], return_inverse=True)
        self.g_buyer, self.g_mat = keys // M, keys % M
        self.n_groups = keys.size
        self.is_cn = cn[self.edges]
        self.cnf = self.is_cn.astype(float)
        share0 = net.share[self.edges]
        self.cn_share0 = np.bincount(self.group, share0 * self.cnf, minlength=self.n_groups)
        x0 = share0 * (1.0 - self.cnf)
        x_sum = np.bincount(self.group, x0, minlength=self.n_groups)[self.group]
        n_x = np.bincount(self.group, 1.0 - self.cnf, minlength=self.n_groups)[self.group]
        # moved shares go where the buyer already buys outside China; a buyer that does not yet (only
        # potential suppliers at zero share) spreads them evenly over its potential suppliers
        self.x_weight = np.where(x_sum > 0, x0 / np.where(x_sum > 0, x_sum, 1.0), (1.0 - self.cnf) / np.maximum(n_x, 1))
        self.military = net.military[self.g_buyer]
        self._stalled = np.zeros(self.n_groups, dtype=bool)
        self.changes = 0  # how often shares have moved (content is recomputed only after a move)
        self._content_at = (-1, None)
        self.refresh(net)
        self._init_content()

    def refresh(self, net) -> None:
        """Capacities changed: where moved orders can go (only to suppliers that have capacity for the
        material; a buyer cannot move orders to a plant that does not exist)."""
        has_cap = net.cap_f[net.sup_flat[self.edges]] > 0
        if getattr(self, "_has_cap", None) is not None and np.array_equal(has_cap, self._has_cap):
            return
        self._has_cap = has_cap
        g = self.group
        w = self.x_weight * has_cap
        w_sum = np.bincount(g, w, minlength=self.n_groups)
        self.can_move = w_sum > 0
        self.w_move = np.divide(w, w_sum[g], out=np.zeros_like(w), where=w_sum[g] > 0)

    def _move(self, net, moved: np.ndarray) -> None:
        """Move ``moved`` share per group from its Chinese suppliers to the non-Chinese ones that have
        capacity (weights from :meth:`refresh`)."""
        e, g = self.edges, self.group
        moved = np.where(self.can_move, moved, 0.0)
        w = self.w_move
        cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
        moved = np.minimum(moved, cn_share)
        frac = np.divide(moved, cn_share, out=np.zeros_like(moved), where=cn_share > 0)
        net.share[e] += moved[g] * w - net.share[e] * frac[g] * self.cnf
        self.changes += 1

    def switch(self, net, rate: np.ndarray) -> None:
        """Buyers whose Chinese orders are stalled move part of them to non-Chinese suppliers. Buyers
        review their sourcing every ``review_days``, moving ``switch_share_per_day`` for each day since."""
        e, g, p = self.edges, self.group, self.p
        stalled = self._stalled
        if not _stalled(e, g, self.cnf, net.backlog, rate, p.switch_trigger_days, self.n_groups, stalled):
            return
        cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
        allowance = np.maximum(cn_share - (self.cn_share0 - p.switch_max_share), 0.0)
        step = p.switch_share_per_day * p.review_days
        self._move(net, np.where(stalled, np.minimum(step, allowance), 0.0))

    def derisk(self, net, spare: np.ndarray, rate: float) -> None:
        """New non-Chinese capacity finds buyers (offtakes): each month, groups move up to ``rate`` of
        their Chinese share to non-Chinese suppliers that have ``spare`` capacity (t/day, flat by
        supplier*M + material, drawn down in place) beyond their normal operating point; defence
        programmes first. Within a tier, each supplier's spare is shared pro rata to what groups want
        from it (each group asks its eligible suppliers equally)."""
        if _derisk(
            self.edges,
            self.group,
            self.is_cn,
            self.cnf,
            self.military,
            net.sup_flat,
            net.share,
            net.need_f,
            self.g_buyer * M + self.g_mat,
            spare,
            rate,
            self.n_groups,
        ):
            self.changes += 1

    def ban_china(self, net, groups: np.ndarray) -> None:
        """Move the whole Chinese share of the selected groups (boolean mask) to non-Chinese suppliers."""
        self._move(net, np.where(groups, np.inf, 0.0))
        self.cn_share0[groups] = 0.0

    # ------------------------------------------------------------------ phase 5
    def review(self, day: int) -> None:
        """Every ``review_days`` buyers review their sourcing (against the rates of today's orders)."""
        if day % self.p.review_days == 0:
            self.switch(self.net, self.net.order_rate)

    def end_of_day(self) -> None:
        """Record today's US arrivals by origin, with the content shares as they stand tonight."""
        _us_arrivals(
            self.net.arrivals,
            self.e_us_def,
            self.w_us_def,
            self.e_us_auto,
            self.w_us_auto,
            self.e_us,
            self.w_us,
            self.row,
            self.at,
        )

    # ------------------------------------------------------------------ non-Chinese content
    def _init_content(self) -> None:
        net = self.net
        us = REGIONS.index("US")
        into_us = (net.region[net.buy] == us) & (net.kind[net.buy] >= Kind.PLANT)
        self.e_us_def = np.flatnonzero(into_us & (net.kind[net.buy] == Kind.DEFENSE))
        self.e_us_auto = np.flatnonzero(into_us & (net.kind[net.buy] == Kind.PLANT))
        self.e_us = np.flatnonzero(into_us)
        self.us_need = {
            "defense": float(net.end_need[(net.region == us) & (net.kind == Kind.DEFENSE)][:, [NDFEB, SMCO]].sum()),
            "auto": float(net.end_need[(net.region == us) & (net.kind == Kind.PLANT), NDFEB].sum()),
        }
        self.base_cap = net.cap.copy()
        self.update_content()

    def update_content(self) -> None:
        """Share of each supplier's output that is free of Chinese material: for a non-Chinese maker the
        smallest non-Chinese share among its inputs (a magnet needs all of them); for a non-Chinese
        separator 1; for Chinese nodes 0. Recomputed only when shares or capacities have changed."""
        net = self.net
        state = (self.changes, net.cap.tobytes())
        if state == self._content_at:
            return
        self._content_at = state
        frac = np.zeros(net.n)
        _content(
            net.n,
            net.region,
            net.kind,
            net.buy,
            net.mat,
            net.sup,
            net.share,
            CN,
            int(Kind.SEPARATOR),
            int(Kind.MAKER),
            net.recipe,
            net.cap,
            self.base_cap,
            frac,
        )
        self.non_cn_frac = frac
        self.w_us_def = frac[net.sup[self.e_us_def]]
        self.w_us_auto = frac[net.sup[self.e_us_auto]]
        self.w_us = frac[net.sup[self.e_us]]
