"""Automaker assembly plants.

A plant builds ``vehicles_per_day`` and needs NdFeB magnets for each vehicle (kg by powertrain). Its
magnet buffer (days of cover) stands for the plant's own stock and its tier-1 supply network. The plant
runs a day only if the buffer holds that day's magnets; once idle it restarts when the buffer is back to
``restart_cover_days``. How it moves orders away from stalled Chinese suppliers is in
:mod:`agents.sourcing` (shared by every magnet buyer).
"""

from __future__ import annotations

import mesa
import numpy as np

from rareshock.model.network import NDFEB


class AutomakerPlant(mesa.Agent):
    def __init__(self, model: mesa.Model, node: int, region: str, vehicles_per_day: float, kg_per_vehicle: float):
        super().__init__(model)
        self.node = node
        self.region = region
        self.vehicles_per_day = vehicles_per_day
        self.kg_per_vehicle = kg_per_vehicle

    @property
    def buffer_days(self) -> float:
        net = self.model.net
        need = net.need[self.node, NDFEB]
        return float(net.stock[self.node, NDFEB] / need) if need > 0 else float("inf")

    @property
    def idle(self) -> bool:
        return bool(self.model.plants.idle[self.model.plants.pos[self.node]])


class PlantFleet:
    """The plants' arrays: which node each is, their output, and whether they are idle."""

    def __init__(self, nodes: np.ndarray, vehicles_per_day: np.ndarray, region: np.ndarray, restart_days: float):
        self.nodes = nodes
        self.vpd = vehicles_per_day
        self.region = region
        self.idle = np.zeros(nodes.size, dtype=bool)
        self.restart_days = restart_days
        self.pos = {int(n): i for i, n in enumerate(nodes)}

    def run(self, net) -> tuple[np.ndarray, float]:
        """One day of assembly: idle or run, consume magnets. Returns (running mask, magnets used t)."""
        stock = net.stock[self.nodes, NDFEB]
        need = net.need[self.nodes, NDFEB]
        can = stock >= need * np.where(self.idle, self.restart_days, 1.0) - 1e-12
        self.idle = ~can & (need > 0)
        used = np.where(self.idle, 0.0, need)
        net.stock[self.nodes, NDFEB] = stock - used
        return ~self.idle, float(used.sum())
