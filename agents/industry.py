"""Other magnet users by region (wind, industrial motors, electronics, SmCo industrial users).

Each is an aggregate buyer for one region and one grade (Dy/Tb-bearing NdFeB, light-grade NdFeB, or
SmCo); it consumes what it needs or what it has, and the gap is lost output.
"""

from __future__ import annotations

import mesa
import numpy as np


class IndustrialBuyer(mesa.Agent):
    def __init__(self, model: mesa.Model, node: int, region: str, grade: str):
        super().__init__(model)
        self.node = node
        self.region = region
        self.grade = grade


def consume(net, nodes: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Use what is needed or what is there; returns t used by material."""
    stock = net.stock[nodes, mats]
    used = np.minimum(stock, net.need[nodes, mats])
    net.stock[nodes, mats] = stock - used
    return np.bincount(mats, used, minlength=net.stock.shape[1])
