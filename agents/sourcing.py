"""How every magnet buyer splits its orders between Chinese and non-Chinese suppliers.

Plants, defence programmes, industrial users and non-Chinese magnet makers each buy one material from
one or more Chinese suppliers and (usually) one or more non-Chinese suppliers. When the buyer's Chinese
orders have waited longer than ``switch_trigger_days`` of their flow, it moves ``switch_share_per_day``
of its orders to its non-Chinese suppliers (qualification and redesign take time), up to
``switch_max_share`` of its original Chinese share. A sourcing rule (e.g. the 2027 US defence rule)
moves the whole Chinese share at once. Moved shares are split over the non-Chinese suppliers in
proportion to their original shares, and taken from the Chinese suppliers in proportion to theirs.
"""

from __future__ import annotations

import numpy as np

from model.network import CN, M


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
        self.x_weight = x0 / np.bincount(self.group, x0, minlength=self.n_groups)[self.group]

    def _move(self, net, moved: np.ndarray) -> None:
        e, g = self.edges, self.group
        cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
        moved = np.minimum(moved, cn_share)
        frac = np.divide(moved, cn_share, out=np.zeros_like(moved), where=cn_share > 0)
        net.share[e] += moved[g] * self.x_weight - net.share[e] * frac[g] * self.cnf

    def switch(self, net, rate: np.ndarray) -> None:
        """Buyers whose Chinese orders are stalled move part of them to non-Chinese suppliers."""
        e, g, p = self.edges, self.group, self.p
        waiting = np.bincount(g, net.backlog[e] * self.cnf, minlength=self.n_groups)
        flow = np.bincount(g, rate[e] * self.cnf, minlength=self.n_groups)
        stalled = waiting > flow * p.switch_trigger_days
        if not stalled.any():
            return
        cn_share = np.bincount(g, net.share[e] * self.cnf, minlength=self.n_groups)
        allowance = np.maximum(cn_share - (self.cn_share0 - p.switch_max_share), 0.0)
        self._move(net, np.where(stalled, np.minimum(p.switch_share_per_day, allowance), 0.0))

    def ban_china(self, net, groups: np.ndarray) -> None:
        """Move the whole Chinese share of the selected groups (boolean mask) to non-Chinese suppliers."""
        self._move(net, np.where(groups, np.inf, 0.0))
        self.cn_share0[groups] = 0.0
