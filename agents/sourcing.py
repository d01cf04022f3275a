"""How every magnet buyer splits its orders between Chinese and non-Chinese suppliers.

Plants, defence programmes, industrial users and non-Chinese magnet makers each buy one material from
one or more Chinese suppliers and (usually) one or more non-Chinese suppliers. When the buyer's Chinese
orders have waited longer than ``switch_trigger_days`` of their flow, it moves ``switch_share_per_day``
of its orders to its non-Chinese suppliers (qualification and redesign take time; buyers review their
sourcing every ``review_days``), up to
``switch_max_share`` of its original Chinese share. A sourcing rule (e.g. the 2027 US defence rule)
moves the whole Chinese share at once. New non-Chinese capacity finds buyers each month
(:meth:`Sourcing.derisk`): offtakes move orders from Chinese suppliers to it, defence first. Moved shares are split over the non-Chinese suppliers in
proportion to their original shares, and taken from the Chinese suppliers in proportion to theirs.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.network import CN, M


class Sourcing:
    """The (buyer, material) groups that have both Chinese and non-Chinese suppliers."""

    def __init__(self, net, params):
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
        self.refresh(net)

    def refresh(self, net) -> None:
        """Capacities changed: where moved orders can go (only to suppliers that have capacity for the
        material; a buyer cannot move orders to a plant that does not exist)."""
        g = self.group
        w = self.x_weight * (net.cap.ravel()[net.sup_flat[self.edges]] > 0)
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

    def switch(self, net, rate: np.ndarray) -> None:
        """Buyers whose Chinese orders are stalled move part of them to non-Chinese suppliers. Buyers
        review their sourcing every ``review_days``, moving ``switch_share_per_day`` for each day since."""
        e, g, p = self.edges, self.group, self.p
        waiting = np.bincount(g, net.backlog[e] * self.cnf, minlength=self.n_groups)
        flow = np.bincount(g, rate[e] * self.cnf, minlength=self.n_groups)
        stalled = waiting > flow * p.switch_trigger_days
        if not stalled.any():
            return
        cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
        allowance = np.maximum(cn_share - (self.cn_share0 - p.switch_max_share), 0.0)
        step = p.switch_share_per_day * p.review_days
        self._move(net, np.where(stalled, np.minimum(step, allowance), 0.0))

    def derisk(self, net, spare: np.ndarray, rate: float) -> np.ndarray:
        """New non-Chinese capacity finds buyers (offtakes): each month, groups move up to ``rate`` of
        their Chinese share to non-Chinese suppliers that have ``spare`` capacity (t/day, flat by
        supplier*M + material) beyond their normal operating point; defence programmes first. Returns
        the spare capacity left."""
        e, g = self.edges, self.group
        share = net.share[e]
        cn_share = np.bincount(g, share * self.cnf, minlength=self.n_groups)
        need_g = net.need.ravel()[self.g_buyer * M + self.g_mat]
        want_g = cn_share * need_g * rate
        sup_flat = net.sup_flat[e]
        eligible = ~self.is_cn & (spare[sup_flat] > 1e-12) & (want_g[g] > 0)
        if not eligible.any():
            return spare
        n_elig = np.bincount(g, eligible, minlength=self.n_groups)
        demand = np.where(eligible, want_g[g] / np.maximum(n_elig[g], 1), 0.0)
        spare = spare.copy()
        for tier in (self.military[g], ~self.military[g]):
            d = demand * tier
            total = np.bincount(sup_flat, d, minlength=spare.size)
            ratio = np.minimum(np.divide(spare, total, out=np.zeros_like(spare), where=total > 0), 1.0)
            shift = d * ratio[sup_flat]
            spare -= np.bincount(sup_flat, shift, minlength=spare.size)
            d_share = np.divide(shift, need_g[g], out=np.zeros_like(shift), where=need_g[g] > 0)
            moved = np.minimum(np.bincount(g, d_share, minlength=self.n_groups), cn_share)
            frac = np.divide(moved, cn_share, out=np.zeros_like(moved), where=cn_share > 0)
            net.share[e] += d_share - net.share[e] * frac[g] * self.cnf
            cn_share = cn_share - moved
        return spare

    def ban_china(self, net, groups: np.ndarray) -> None:
        """Move the whole Chinese share of the selected groups (boolean mask) to non-Chinese suppliers."""
        self._move(net, np.where(groups, np.inf, 0.0))
        self.cn_share0[groups] = 0.0
