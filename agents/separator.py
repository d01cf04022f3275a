"""Upstream mine-and-separation capacity: NdPr, Dy/Tb and Sm oxides.

A separator produces to keep ``target_stock_days`` of its smoothed shipments on hand plus what its
customers may take now, within its capacity (for China, capacities are set within the 2024 separation
quota). Production runs through :class:`agents.magnet_maker.Production`, which serves every producer.
"""

from __future__ import annotations

import mesa


class Separator(mesa.Agent):
    def __init__(self, model: mesa.Model, node: int, region: str, name: str):
        super().__init__(model)
        self.node = node
        self.region = region
        self.name = name
