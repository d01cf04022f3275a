"""How every magnet buyer splits its orders between Chinese and non-Chinese suppliers, and how much of
what it receives is free of Chinese material.

Interface (what the model uses)
-------------------------------
``Sourcing(model, cfg)`` with ``cfg`` the ``sourcing`` config section; create it after the network.
``review(day)``
    Phase 5 (after orders): every ``review_days`` stalled buyers move part of their Chinese orders.
``derisk(net, rate)``, ``refresh(net)``, ``update_content()``
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
Plants' part chains, defence programmes, industrial users and non-Chinese magnet makers each buy one
material from a portfolio of Chinese suppliers (``cn_suppliers_per_buyer``, set by the builder) and usually
one or more non-Chinese suppliers (potential suppliers start at zero share).

Switching (weekly, every ``review_days``). A buyer's Chinese orders are *stalled* when what waits on its
Chinese relationships exceeds ``switch_trigger_days`` of their flow. A stalled buyer starts qualifying
non-Chinese suppliers; only ``qualification_days`` later can it move orders (first articles, PPAP). A
qualified, stalled buyer then asks for ``switch_share_per_day`` x ``review_days`` of its need, up to
``switch_max_share`` of its original Chinese share in all; it gets only what the non-Chinese suppliers can
make: each supplier's *spare capacity* is its capacity at ``min(1, u0 + headroom)`` utilisation (u0 its
utilisation at the start, headroom ``magnet_makers.ex_cn_headroom``) minus what it already supplies, shared
pro rata among the buyers asking (defence programmes first). When a buyer's Chinese orders flow again (not
stalled) it moves switched orders back at ``switch_back_share_per_day`` (Chinese supply is cheaper);
qualification is kept.

Offtakes (monthly, :meth:`Sourcing.derisk`): capacity beyond suppliers' start-of-run operating point (new
projects) finds buyers, ``derisk_share_per_month`` of their Chinese share at most, defence first; offtake
moves are contracts and do not move back. A sourcing rule (:meth:`ban_china`, e.g. the 2027 US defence rule)
moves the whole Chinese share at once, whatever the capacity. Moved shares are taken from the Chinese
suppliers in proportion to their shares.
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
def _to_spare(edges, group, cnf, military_g, sup_flat, share, need_f, g_need, spare, want_g, weight, moved_g):
    """Move up to ``want_g`` (share of need) per group from its Chinese suppliers to non-Chinese ones,
    asking each non-Chinese relationship in proportion to ``weight``, granted within each supplier's
    ``spare`` (t/day, drawn down in place), defence programmes first; ``moved_g`` gets what moved."""
    n_e = edges.shape[0]
    n_g = want_g.shape[0]
    cn_share = np.zeros(n_g)
    for k in range(n_e):
        cn_share[group[k]] += share[edges[k]] * cnf[k]
    need_g = np.empty(n_g)
    for g in range(n_g):
        need_g[g] = need_f[g_need[g]]
        moved_g[g] = 0.0
    n_s = spare.shape[0]
    d = np.empty(n_e)
    d_share = np.empty(n_e)
    for tier in range(2):
        total = np.zeros(n_s)
        for k in range(n_e):
            g = group[k]
            ask = want_g[g] > 0.0 and (military_g[g] == (tier == 0))
            d[k] = want_g[g] * need_g[g] * weight[k] if ask else 0.0
            total[sup_flat[edges[k]]] += d[k]
        taken = np.zeros(n_s)
        moved = np.zeros(n_g)
        for k in range(n_e):
            if d[k] <= 0.0:
                d_share[k] = 0.0
                continue
            f = sup_flat[edges[k]]
            r = min(spare[f] / total[f], 1.0) if total[f] > 0 else 0.0
            shift = d[k] * r
            taken[f] += shift
            g = group[k]
            d_share[k] = shift / need_g[g] if need_g[g] > 0 else 0.0
            moved[g] += d_share[k]
        for i in range(n_s):
            spare[i] = max(spare[i] - taken[i], 0.0)
        frac = np.empty(n_g)
        scale = np.ones(n_g)  # a group moves at most the Chinese share it has left
        for g in range(n_g):
            left = max(cn_share[g], 0.0)
            if moved[g] > left:
                scale[g] = left / moved[g]
                moved[g] = left
            frac[g] = moved[g] / cn_share[g] if cn_share[g] > 0 else 0.0
        for k in range(n_e):
            e = edges[k]
            share[e] += d_share[k] * scale[group[k]] - share[e] * frac[group[k]] * cnf[k]
        for g in range(n_g):
            cn_share[g] -= moved[g]
            moved_g[g] += moved[g]


@kernel
def _back(edges, group, cnf, cn_weight, share, back_g):
    """Move ``back_g`` share per group from its non-Chinese suppliers (in proportion to their shares) back
    to its Chinese ones (in proportion to their original shares)."""
    n_g = back_g.shape[0]
    x_share = np.zeros(n_g)
    for k in range(edges.shape[0]):
        x_share[group[k]] += share[edges[k]] * (1.0 - cnf[k])
    for k in range(edges.shape[0]):
        g = group[k]
        b = min(back_g[g], x_share[g])
        if b <= 0.0:
            continue
        e = edges[k]
        if cnf[k] > 0.0:
            share[e] += b * cn_weight[k]
        else:
            share[e] -= share[e] * (b / x_share[g])


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
        self.g_need = self.g_buyer * M + self.g_mat
        self.n_groups = keys.size
        self.is_cn = cn[self.edges]
        self.cnf = self.is_cn.astype(float)
        share0 = net.share[self.edges]
        self.cn_share0 = np.bincount(self.group, share0 * self.cnf, minlength=self.n_groups)
        cn_sum = self.cn_share0[self.group]
        self.cn_weight = np.where(self.is_cn & (cn_sum > 0), share0 / np.where(cn_sum > 0, cn_sum, 1.0), 0.0)
        x0 = share0 * (1.0 - self.cnf)
        x_sum = np.bincount(self.group, x0, minlength=self.n_groups)[self.group]
        n_x = np.bincount(self.group, 1.0 - self.cnf, minlength=self.n_groups)[self.group]
        # moved shares go where the buyer already buys outside China; a buyer that does not yet (only
        # potential suppliers at zero share) spreads them evenly over its potential suppliers
        self.x_weight = np.where(x_sum > 0, x0 / np.where(x_sum > 0, x_sum, 1.0), (1.0 - self.cnf) / np.maximum(n_x, 1))
        self.military = net.military[self.g_buyer]
        self._stalled = np.zeros(self.n_groups, dtype=bool)
        self.qualified_day = np.full(self.n_groups, -1, dtype=np.int64)  # when a buyer's new suppliers are qualified
        self.switched = np.zeros(self.n_groups)  # share moved by switching (reversible)
        self._moved = np.zeros(self.n_groups)
        self.changes = 0  # how often shares have moved (content is recomputed only after a move)
        self._content_at = (-1, None)
        # utilisation at which suppliers normally run: the reference for spare capacity
        demand_on = np.bincount(net.sup_flat, net.rate(), minlength=net.n * M)
        cap = net.cap_f
        self.base_util = np.divide(demand_on, cap, out=np.ones_like(cap), where=cap > 0)
        self.x_supplier = (net.region != CN).repeat(M)
        self.refresh(net)
        self._init_content()

    def spare(self, headroom: float) -> np.ndarray:
        """Non-Chinese suppliers' capacity not in use (t/day, flat by node*M + material) at utilisation
        ``min(1, u0 + headroom)``; Chinese suppliers have none to offer here."""
        net = self.net
        load = np.bincount(net.sup_flat, net.rate(), minlength=net.n * M)
        usable = net.cap_f * np.minimum(self.base_util + headroom, 1.0)
        return np.where(self.x_supplier, np.maximum(usable - load, 0.0), 0.0)

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

    def switch(self, net, rate: np.ndarray, day: int) -> None:
        """The weekly review (see the module docstring): stalled buyers qualify non-Chinese suppliers and,
        once qualified, move orders to them within their spare capacity; buyers whose Chinese orders flow
        again move switched orders back."""
        e, g, p = self.edges, self.group, self.p
        stalled = self._stalled
        _stalled(e, g, self.cnf, net.backlog, rate, p.switch_trigger_days, self.n_groups, stalled)
        start = stalled & (self.qualified_day < 0) & self.can_move
        self.qualified_day[start] = day + p.qualification_days
        ready = stalled & (self.qualified_day >= 0) & (self.qualified_day <= day)
        if ready.any():
            cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
            allowance = np.minimum(np.maximum(cn_share - (self.cn_share0 - p.switch_max_share), 0.0), cn_share)
            want = np.where(ready, np.minimum(p.switch_share_per_day * p.review_days, allowance), 0.0)
            _to_spare(
                e,
                g,
                self.cnf,
                self.military,
                net.sup_flat,
                net.share,
                net.need_f,
                self.g_need,
                self.spare(self.model.cfg.magnet_makers.ex_cn_headroom),
                want,
                self.w_move,
                self._moved,
            )
            if self._moved.any():
                self.switched += self._moved
                self.changes += 1
        back = np.where(
            ~stalled & (self.switched > 0), np.minimum(p.switch_back_share_per_day * p.review_days, self.switched), 0.0
        )
        if back.any():
            _back(e, g, self.cnf, self.cn_weight, net.share, back)
            self.switched -= back
            self.changes += 1

    def derisk(self, net, rate: float) -> None:
        """New non-Chinese capacity finds buyers (offtakes): each month, groups move up to ``rate`` of
        their Chinese share to non-Chinese suppliers that have spare capacity beyond their start-of-run
        operating point (new projects); defence programmes first. Each group asks its suppliers that have
        such spare equally. Offtakes are contracts: they do not move back."""
        spare = self.spare(0.0)
        e, g = self.edges, self.group
        cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
        eligible = ~self.is_cn & (spare[net.sup_flat[e]] > 1e-12)
        n_elig = np.bincount(g, eligible, minlength=self.n_groups)
        weight = np.where(eligible, 1.0 / np.maximum(n_elig[g], 1), 0.0)
        want = np.where(n_elig > 0, cn_share * rate, 0.0)
        if not (want > 0).any():
            return
        _to_spare(
            e,
            g,
            self.cnf,
            self.military,
            net.sup_flat,
            net.share,
            net.need_f,
            self.g_need,
            spare,
            want,
            weight,
            self._moved,
        )
        if self._moved.any():
            self.changes += 1

    def ban_china(self, net, groups: np.ndarray) -> None:
        """Move the whole Chinese share of the selected groups (boolean mask) to non-Chinese suppliers."""
        self._move(net, np.where(groups, np.inf, 0.0))
        self.cn_share0[groups] = 0.0
        self.switched[groups] = 0.0  # a rule, not a switch: nothing moves back

    # ------------------------------------------------------------------ phase 5
    def review(self, day: int) -> None:
        """Every ``review_days`` buyers review their sourcing (against the rates of today's orders)."""
        if day % self.p.review_days == 0:
            self.switch(self.net, self.net.order_rate, day)

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
