"""Other magnet users by region (wind, industrial motors, electronics, SmCo industrial users).

Each is an aggregate buyer for one region and one grade (Dy/Tb-bearing NdFeB, light-grade NdFeB, or
SmCo); it consumes what it needs or what it has (:meth:`model.network.Network.consume`), and the gap
is lost output.
"""

from __future__ import annotations

import mesa


class IndustrialBuyer(mesa.Agent):
    def __init__(self, model: mesa.Model, node: int, region: str, grade: str):
        super().__init__(model)
        self.node = node
        self.region = region
        self.grade = grade
