"""Magnet makers (NdFeB and SmCo) in China, Japan, Europe and the US.

A maker turns oxides into magnets by a fixed recipe (t of NdPr, Dy/Tb or Sm per t of magnet), produces
to keep ``target_stock_days`` of its smoothed shipments plus its customers' shippable orders, within its
capacity and within what its input stocks allow. It orders inputs from its oxide suppliers to cover its
smoothed production; non-Chinese makers hold months of Dy/Tb because they depend on China for it.
"""

from __future__ import annotations

import mesa
import numpy as np


class MagnetMaker(mesa.Agent):
    def __init__(self, model: mesa.Model, node: int, region: str, product: str):
        super().__init__(model)
        self.node = node
        self.region = region
        self.product = product


class Production:
    """Index arrays for one vectorised production step over every (producer, output material) pair.

    Each output needs at most two inputs (NdFeB: NdPr and Dy/Tb; SmCo: Sm; oxides: none)."""

    def __init__(self, net, producers: np.ndarray, potential: np.ndarray | None = None):
        from rareshock.model.network import M
        mask = (net.cap > 0) if potential is None else potential
        pn, pm = np.nonzero(mask[producers])
        self.node = producers[pn]
        self.mat = pm
        self.flat = self.node * M + pm
        self.cap = net.cap[self.node, pm]
        self.tsd = net.target_stock_days[self.node]
        ins = [np.flatnonzero(net.recipe[m]) for m in pm]
        pad = [list(i) + [-1] * (2 - len(i)) for i in ins]
        in_mat = np.array(pad, dtype=np.int64).reshape(-1, 2)
        self.coef = np.where(in_mat >= 0, net.recipe[pm[:, None], np.maximum(in_mat, 0)], 0.0)
        self.in_flat = self.node[:, None] * M + np.maximum(in_mat, 0)
        self.has_in = self.coef > 0
        self.in_idx = self.in_flat[self.has_in]          # unique: one output per maker
        self.in_mat = np.maximum(in_mat, 0)
        self.M = M

    def refresh_capacity(self, net) -> None:
        """Capacities changed (new projects): read them again."""
        self.cap = net.cap.ravel()[self.flat]

    def run(self, net, shippable_flat: np.ndarray, smooth: float) -> tuple[np.ndarray, np.ndarray]:
        """One day's production. Returns (t made, t of inputs used) by material and updates stocks and
        the producers' input need (what they order)."""
        stock = net.stock.ravel()
        rate = net.out_rate.ravel()[self.flat]
        want = np.clip(rate * self.tsd + shippable_flat[self.flat] - stock[self.flat], 0.0, self.cap)
        need_in = want[:, None] * self.coef
        frac = np.divide(stock[self.in_flat], need_in, out=np.ones_like(need_in), where=need_in > 0).min(axis=1)
        made = want * np.minimum(frac, 1.0)
        used = made[:, None] * self.coef
        stock[self.in_idx] -= used[self.has_in]
        stock[self.flat] += made
        prod = net.prod_rate.ravel()
        prod[self.flat] += (made - prod[self.flat]) * smooth
        need = net.need.ravel()
        need[self.in_idx] = (prod[self.flat][:, None] * self.coef)[self.has_in]
        return (np.bincount(self.mat, made, minlength=self.M),
                np.bincount(self.in_mat.ravel(), used.ravel(), minlength=self.M))
