"""Automaker assembly plants: where a plant decides to run or to idle.

Interface (what the model uses)
-------------------------------
``Plants(model, cfg)`` with ``cfg`` the ``automakers`` config section.
``add_nodes(builder)``
    For each region (US, EU, JP, IN, CN, ROW) with plants: ``plants`` nodes, output shares drawn from
    ``model.rng`` (gamma(4)), magnet buffers (days of cover) drawn lognormal around ``buffer_days_mean``
    with ``buffer_days_cv``. Each plant's NdFeB need is its vehicles per day times the magnet mass per
    vehicle of its region's powertrain mix.
``bind(net)``
    After the network is built: the plants' node indices and their arrays.
``assemble(ledger)``
    Phase 5 of the day (after arrivals): every plant runs or idles; magnets used are added to ``ledger``
    (t by material, the day's end-use consumption).
``COLUMNS``
    Idle plants and vehicles produced by region, and the US plants' magnet buffer in days of need, written
    by ``assemble`` into the record row (``row`` at ``at``, set by the registry).

Decision
--------
A plant of need n (t NdFeB/day) and stock S runs today if ``S >= n h - 1e-12``, where h = 1 while it is
running and h = ``restart_cover_days`` once it is idle (a plant restarts only when its buffer, which stands
for its own stock and its tier-1 suppliers', holds a few days again). A running plant uses n; an idle one
uses nothing. How plants move orders away from stalled Chinese suppliers is in :mod:`.sourcing` (shared by
every magnet buyer).
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import REGIONS, EndUse, Kind, Material
from rareshock.model.draws import lognormal
from rareshock.model.network import M
from rareshock.model.numerics import kernel, psum

from .producers import sizes

NDFEB = int(Material.NDFEB)
PLANT_REGIONS = ("US", "EU", "JP", "IN", "CN", "ROW")


@kernel
def _assemble(
    stock_flat, need_flat, flat, idle, restart_days, used, ledger, vpd, region, order, us_flat, us_need, row, at
):
    for k in range(flat.shape[0]):
        i = flat[k]
        need = need_flat[i]
        stock = stock_flat[i]
        threshold = need * (restart_days if idle[k] else 1.0) - 1e-12
        idle[k] = (not stock >= threshold) and need > 0.0
        u = 0.0 if idle[k] else need
        used[k] = u
        stock_flat[i] = stock - u
    ledger[NDFEB] += psum(used)
    # record: idle plants and vehicles by region, the US plants' buffer
    n_r = order.shape[0]
    idle_r = np.zeros(n_r)
    veh_r = np.zeros(n_r)
    for k in range(idle.shape[0]):
        r = region[k]
        if idle[k]:
            idle_r[r] += 1.0
        else:
            veh_r[r] += vpd[k]
    for j in range(n_r):
        row[at + j] = idle_r[order[j]]
        row[at + n_r + j] = veh_r[order[j]]
    tmp = np.empty(us_flat.shape[0])
    for k in range(us_flat.shape[0]):
        tmp[k] = stock_flat[us_flat[k]]
    row[at + 2 * n_r] = psum(tmp) / us_need


class Plants:
    """The assembly plants of every region, as arrays."""

    COLUMNS = (
        tuple(f"auto_plants_idle_{r.lower()}" for r in PLANT_REGIONS)
        + tuple(f"vehicles_produced_{r.lower()}" for r in PLANT_REGIONS)
        + ("us_auto_buffer_days",)
    )
    INTEGER_COLUMNS = tuple(f"auto_plants_idle_{r.lower()}" for r in PLANT_REGIONS)

    def __init__(self, model, cfg):
        self.model = model
        self.cfg = cfg
        self._nodes: list[int] = []
        self._vpd: list[float] = []
        self._region: list[int] = []

    def add_nodes(self, builder) -> None:
        am, rng = self.cfg, self.model.rng
        for reg in PLANT_REGIONS:
            rp = getattr(am, reg)
            if rp.plants == 0:
                continue
            kg = (
                (1 - rp.bev_share - rp.hev_share) * am.magnet_kg_ice
                + rp.hev_share * am.magnet_kg_hev
                + rp.bev_share * am.magnet_kg_bev
            )
            vpd = rp.vehicles_per_year / 365 * sizes(rng, rp.plants)
            cover = lognormal(rng, rp.buffer_days_mean, rp.buffer_days_cv, rp.plants)
            r = REGIONS.index(reg)
            for v, c in zip(vpd, cover):
                self._nodes.append(
                    builder.add(
                        Kind.PLANT,
                        r,
                        float(c),
                        need={NDFEB: v * kg / 1000},
                        end_use=EndUse.AUTO,
                        cn_share=rp.cn_supply_share,
                    )
                )
                self._vpd.append(float(v))
                self._region.append(r)

    def bind(self, net) -> None:
        self.net = net
        self.nodes = np.array(self._nodes, dtype=np.int64)
        self.flat = self.nodes * M + NDFEB
        self.vpd = np.array(self._vpd)
        self.region = np.array(self._region, dtype=np.int64)
        self.idle = np.zeros(self.nodes.size, dtype=bool)
        self.used = np.zeros(self.nodes.size)
        self.vpd_by_region = np.bincount(self.region, self.vpd, minlength=len(REGIONS))
        self.order = np.array([REGIONS.index(r) for r in PLANT_REGIONS], dtype=np.int64)
        us = self.region == REGIONS.index("US")
        self.us_flat = self.flat[us]
        self.us_need = max(float(net.end_need[self.nodes[us], NDFEB].sum()), 1e-12)

    def assemble(self, ledger: np.ndarray) -> None:
        _assemble(
            self.net.stock_f,
            self.net.need_f,
            self.flat,
            self.idle,
            self.cfg.restart_cover_days,
            self.used,
            ledger,
            self.vpd,
            self.region,
            self.order,
            self.us_flat,
            self.us_need,
            self.row,
            self.at,
        )
