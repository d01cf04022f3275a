"""Defence programmes: military end users with NdFeB and SmCo needs and deep stocks.

A programme consumes what its stock allows (:meth:`model.network.Network.consume`); the rest is shortfall
(output the programme cannot deliver).
When US programmes' cover falls below ``stockpile_release_trigger_days`` the US government releases
magnets from the National Defense Stockpile, pro rata to each programme's shortfall against that
cover, until the stockpile is empty.
"""

from __future__ import annotations

import mesa
import numpy as np

from rareshock.model.network import NDFEB, SMCO


class DefenseProgramme(mesa.Agent):
    def __init__(self, model: mesa.Model, node: int, region: str, name: str):
        super().__init__(model)
        self.node = node
        self.region = region
        self.name = name


def release_stockpile(net, nodes: np.ndarray, stockpile: np.ndarray, trigger_days: float) -> None:
    """Release national-stockpile magnets (``stockpile``: t by material, drawn down in place) to
    programmes whose cover is below ``trigger_days``, pro rata to their gap."""
    if nodes.size == 0 or stockpile.sum() <= 0:
        return
    for m in (NDFEB, SMCO):
        if stockpile[m] <= 0:
            continue
        gap = np.maximum(net.need[nodes, m] * trigger_days - net.stock[nodes, m], 0.0)
        total = gap.sum()
        if total <= 0:
            continue
        give = gap * min(1.0, stockpile[m] / total)
        net.stock[nodes, m] += give
        stockpile[m] -= float(give.sum())
