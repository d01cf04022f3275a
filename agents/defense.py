"""Defence programmes: military end users with NdFeB and SmCo needs, deep stocks and a national stockpile.

Interface (what the model uses)
-------------------------------
``DefensePrograms(model, cfg)`` with ``cfg`` the ``defense`` config section.
``add_nodes(builder)``
    For the US, the EU and Japan: ``programmes`` military nodes with sizes drawn from ``model.rng``
    (gamma(4)) and buffers drawn lognormal around ``buffer_days_mean``; each needs NdFeB and SmCo
    (``smco_share``) and buys ``cn_supply_share`` of it from Chinese makers at the start.
``bind(net)``
    After the network is built: the (node, material) pairs that consume, grouped US / other.
``consume(ledger)``
    Phase 5: programmes use what they need or what they have (the gap is output they cannot deliver),
    adding what they used to ``ledger``; then the US government releases National Defense Stockpile
    magnets to US programmes whose cover has fallen below ``stockpile_release_trigger_days``.
``ban_chinese_supply(region)``
    A sourcing rule (e.g. the 2027 DFARS rule): the region's programmes may no longer buy Chinese magnets
    (their whole Chinese share moves at once, through :mod:`.sourcing`).
``COLUMNS``
    Output shares (all programmes; US programmes) and the stockpile left, written by ``consume``.

Stockpile release (per material m, US programmes j with need n_j, stock S_j, trigger T days): the gap
``g_j = max(n_j T - S_j, 0)``; the stockpile P_m gives ``g_j min(1, P_m / sum_j g_j)`` to each.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import REGIONS, EndUse, Kind, Material
from rareshock.model.draws import lognormal
from rareshock.model.network import M, consume_kernel
from rareshock.model.numerics import kernel, psum

from .producers import sizes

NDFEB, SMCO = int(Material.NDFEB), int(Material.SMCO)
DEFENSE_REGIONS = ("US", "EU", "JP")


@kernel
def _consume(
    stock, need, flat, group, mat, used, used_by_group, need_by_group, ledger, nodes, stockpile, trigger_days, row, at
):
    """Programmes use what they have (entries ``flat``), the stockpile releases, and the record."""
    consume_kernel(stock.ravel(), need.ravel(), flat, group, mat, used, used_by_group, ledger)
    _release(stock, need, nodes, stockpile, trigger_days)
    g, n = used_by_group, need_by_group
    row[at] = (g[0] + g[1]) / max(n[0] + n[1], 1e-12)
    row[at + 1] = g[0] / max(n[0], 1e-12)
    left = 0.0
    for m in range(stockpile.shape[0]):
        left += stockpile[m]
    row[at + 2] = left


@kernel
def _release(stock, need, nodes, stockpile, trigger_days):
    total_left = 0.0
    for m in range(stockpile.shape[0]):
        total_left += stockpile[m]
    if nodes.shape[0] == 0 or total_left <= 0.0:
        return
    gap = np.empty(nodes.shape[0])
    give = np.empty(nodes.shape[0])
    for m in (NDFEB, SMCO):
        if stockpile[m] <= 0.0:
            continue
        for k in range(nodes.shape[0]):
            g = need[nodes[k], m] * trigger_days - stock[nodes[k], m]
            gap[k] = g if not g < 0.0 else 0.0
        total = psum(gap)
        if total <= 0.0:
            continue
        f = min(1.0, stockpile[m] / total)
        for k in range(nodes.shape[0]):
            give[k] = gap[k] * f
            stock[nodes[k], m] += give[k]
        if f < 1.0:
            stockpile[m] = 0.0  # all of it went out (the gifts' sum can round a hair above what it held)
        else:
            stockpile[m] -= psum(give)


class DefensePrograms:
    """Defence programmes of the US, the EU and Japan, as arrays."""

    COLUMNS = ("defense_output_share", "us_defense_output_share", "us_national_stockpile_t")

    def __init__(self, model, cfg):
        self.model = model
        self.cfg = cfg
        self.programmes: list[tuple[int, str]] = []  # (node, region)

    def add_nodes(self, builder) -> None:
        rng = self.model.rng
        for reg in DEFENSE_REGIONS:
            dr = getattr(self.cfg, reg)
            if dr.programmes == 0:
                continue
            w = sizes(rng, dr.programmes) * dr.magnets_t_per_year / 365
            cover = lognormal(rng, dr.buffer_days_mean, dr.buffer_days_cv, dr.programmes)
            for x, c in zip(w, cover):
                node = builder.add(
                    Kind.DEFENSE,
                    REGIONS.index(reg),
                    float(c),
                    military=True,
                    end_use=EndUse.DEFENSE,
                    need={NDFEB: x * (1 - dr.smco_share), SMCO: x * dr.smco_share},
                    cn_share=dr.cn_supply_share,
                )
                self.programmes.append((node, reg))

    def bind(self, net) -> None:
        self.net = net
        self.us_nodes = np.array([n for n, r in self.programmes if r == "US"], dtype=np.int64)
        other = np.array([n for n, r in self.programmes if r != "US"], dtype=np.int64)
        self.flat, self.group, self.mat, self.need_by_group = net.consumption_entries([self.us_nodes, other])
        self.used = np.zeros(self.flat.size)
        self.used_by_group = np.zeros(2)
        us = self.cfg.US
        self.stockpile = np.zeros(M)  # US National Defense Stockpile magnets, t by material
        self.stockpile[NDFEB] = self.cfg.us_national_stockpile_t * (1 - us.smco_share)
        self.stockpile[SMCO] = self.cfg.us_national_stockpile_t * us.smco_share
        self.us_need = float(net.end_need[self.us_nodes][:, [NDFEB, SMCO]].sum())

    def consume(self, ledger: np.ndarray) -> None:
        net = self.net
        _consume(
            net.stock,
            net.need,
            self.flat,
            self.group,
            self.mat,
            self.used,
            self.used_by_group,
            self.need_by_group,
            ledger,
            self.us_nodes,
            self.stockpile,
            self.cfg.stockpile_release_trigger_days,
            self.row,
            self.at,
        )

    def ban_chinese_supply(self, region: str) -> None:
        net, src = self.net, self.model.sourcing
        sel = (net.region[src.g_buyer] == REGIONS.index(region)) & net.military[src.g_buyer]
        src.ban_china(net, sel)
