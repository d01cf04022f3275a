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


def produce(net, producers: np.ndarray, shippable_by_node: np.ndarray, smooth: float) -> tuple[np.ndarray, np.ndarray]:
    """Production of all producers (separators and makers) for one day. Returns (t made, t of inputs
    used) by material, and updates stocks and the producers' input need (what they order)."""
    cap = net.cap[producers]
    stock = net.stock[producers]
    want = np.clip(net.out_rate[producers] * net.target_stock_days[producers, None]
                   + shippable_by_node[producers] - stock, 0.0, cap)
    need_in = want @ net.recipe                              # inputs the plan would use
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(need_in > 0, stock / need_in, np.inf).min(axis=1)
    frac = np.minimum(frac, 1.0)
    made = want * frac[:, None]
    used = made @ net.recipe
    net.stock[producers] = stock - used + made
    # input orders follow smoothed production
    net.prod_rate[producers] += (made - net.prod_rate[producers]) * smooth
    net.need[producers] = net.prod_rate[producers] @ net.recipe
    return made.sum(axis=0), used.sum(axis=0)
