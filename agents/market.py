"""The market: where the prices of Dy/Tb oxide, NdPr oxide and NdFeB magnets are set, in China and outside.

Interface (what the model uses)
-------------------------------
``Market(model, cfg)`` with ``cfg`` the ``prices`` config section; create it after the network.
``update()``
    Phase 6 of the day: every price moves part of the way toward the level its side of the border's
    scarcity implies.
``set_cn_discount(x)``
    China's price response to non-Chinese capacity (set monthly by :mod:`.investment`): Chinese supply
    abroad is offered ``x`` cheaper.
``price_ex_cn_ndfeb``
    Today's ex-China NdFeB price (USD/kg), read by the investment programme (viability, floor payments).
``COLUMNS``
    The six prices (USD/kg) and non-Chinese makers' Dy/Tb cover (days), written by ``update``.

Maths
-----
Ex-China (buyers' side): cover ``C = S / S*`` is users' stock relative to the stock they hold after a
normal day's use (NdFeB: end users outside China, S* = n (c - 1); Dy/Tb and NdPr oxide: non-Chinese
makers' input stock against the same reference). In China (sellers' side): sales ``Q = ō / ō_2024`` are
Chinese producers' smoothed shipments relative to the start. With elasticity ε, the target of price i is

    P*_i = P0_i * clip(signal_i, 1/k, k) * (1 - d_i),   signal = C^(-1/ε) outside China, Q^(1/ε) in China,

with k = ``max_multiple`` (a numerical guard) and d_i China's discount abroad (NdFeB and NdPr ex-China).
Each day ``P_i += (P*_i - P_i) / adjust_days``.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import CN, Kind, Material
from rareshock.model.network import M
from rareshock.model.numerics import kernel, pdot_at, psum_at

NDPR, DYTB, NDFEB = int(Material.NDPR), int(Material.DYTB), int(Material.NDFEB)
# price index: Dy oxide CN, Dy oxide ex-CN, NdFeB CN, NdFeB ex-CN, NdPr oxide CN, NdPr oxide ex-CN
DY_CN, DY_EX, ND_CN, ND_EX, PR_CN, PR_EX = range(6)


@kernel
def _update(
    stock,
    need,
    out,
    ex_nd,
    ex_nd_target,
    mk_dy,
    mk_dy_cover,
    mk_nd,
    mk_nd_cover,
    cn_nd,
    cn_dy,
    cn_pr,
    base_nd,
    base_dy,
    base_pr,
    el_dy,
    el_nd,
    el_pr,
    max_multiple,
    discount,
    adjust_days,
    price0,
    price,
    row,
    at,
):
    cover_nd = psum_at(stock, ex_nd) / max(ex_nd_target, 1e-12)
    cover_dy = 1.0
    if mk_dy.shape[0]:
        cover_dy = psum_at(stock, mk_dy) / max(pdot_at(need, mk_dy, mk_dy_cover), 1e-12)
    sales_nd = psum_at(out, cn_nd) / max(base_nd, 1e-12)
    sales_dy = psum_at(out, cn_dy) / max(base_dy, 1e-12)
    cover_pr = 1.0
    if mk_nd.shape[0]:
        cover_pr = psum_at(stock, mk_nd) / max(pdot_at(need, mk_nd, mk_nd_cover), 1e-12)
    sales_pr = psum_at(out, cn_pr) / max(base_pr, 1e-12)
    lo, hi = 1.0 / max_multiple, max_multiple
    signal = np.empty(6)
    signal[DY_CN] = max(sales_dy, 1e-9) ** (1 / el_dy)
    signal[DY_EX] = max(cover_dy, 1e-9) ** (-1 / el_dy)
    signal[ND_CN] = max(sales_nd, 1e-9) ** (1 / el_nd)
    signal[ND_EX] = max(cover_nd, 1e-9) ** (-1 / el_nd)
    signal[PR_CN] = max(sales_pr, 1e-9) ** (1 / el_pr)
    signal[PR_EX] = max(cover_pr, 1e-9) ** (-1 / el_pr)
    for i in range(6):
        s = signal[i]
        s = lo if s < lo else s
        s = hi if s > hi else s
        undercut = 1.0 - discount if i in (ND_EX, PR_EX) else 1.0
        target = price0[i] * s * undercut
        price[i] += (target - price[i]) / adjust_days
    dy_need = psum_at(need, mk_dy)
    for i in range(6):
        row[at + i] = price[i]
    row[at + 6] = psum_at(stock, mk_dy) / dy_need if dy_need > 0 else 0.0


class Market:
    """Prices on both sides of the border."""

    COLUMNS = (
        "price_dy_oxide_cn_usd_kg",
        "price_dy_oxide_ex_cn_usd_kg",
        "price_ndfeb_cn_usd_kg",
        "price_ndfeb_ex_cn_usd_kg",
        "price_ndpr_oxide_cn_usd_kg",
        "price_ndpr_oxide_ex_cn_usd_kg",
        "ex_cn_makers_dytb_cover_days",
    )

    def __init__(self, model, cfg):
        self.model = model
        self.p = cfg
        net = model.net
        self.net = net
        exn = net.region != CN
        ex_end = np.flatnonzero(exn & (net.kind >= Kind.PLANT) & (net.end_need[:, NDFEB] > 0))
        self.ex_nd = ex_end * M + NDFEB
        # stock users hold after a normal day's use: the reference for ex-China scarcity
        self.ex_nd_target = float((net.end_need[ex_end, NDFEB] * (net.cover_days[ex_end] - 1)).sum())
        mk_dy = np.flatnonzero(exn & (net.kind == Kind.MAKER) & (net.need[:, DYTB] > 0))
        self.mk_dy, self.mk_dy_cover = mk_dy * M + DYTB, net.cover_days[mk_dy] - 1
        mk_nd = np.flatnonzero(exn & (net.kind == Kind.MAKER) & (net.need[:, NDPR] > 0))
        self.mk_nd, self.mk_nd_cover = mk_nd * M + NDPR, net.cover_days[mk_nd] - 1
        sellers = {m: np.flatnonzero((net.region == CN) & (net.cap[:, m] > 0)) for m in (NDFEB, DYTB, NDPR)}
        self.cn_nd, self.cn_dy, self.cn_pr = (sellers[m] * M + m for m in (NDFEB, DYTB, NDPR))
        self.base = {m: float(net.out_rate[sellers[m], m].sum()) for m in (NDFEB, DYTB, NDPR)}
        self.price = np.array(
            [
                cfg.dy_oxide_cn_usd_kg,
                cfg.dy_oxide_ex_cn_usd_kg,
                cfg.ndfeb_usd_kg,
                cfg.ndfeb_usd_kg,
                cfg.ndpr_oxide_usd_kg,
                cfg.ndpr_oxide_usd_kg,
            ]
        )
        self.price0 = self.price.copy()
        self.cn_discount = 0.0

    @property
    def price_ex_cn_ndfeb(self) -> float:
        return float(self.price[ND_EX])

    def set_cn_discount(self, x: float) -> None:
        self.cn_discount = x

    def update(self) -> None:
        net, p = self.net, self.p
        _update(
            net.stock_f,
            net.need_f,
            net.out_rate_f,
            self.ex_nd,
            self.ex_nd_target,
            self.mk_dy,
            self.mk_dy_cover,
            self.mk_nd,
            self.mk_nd_cover,
            self.cn_nd,
            self.cn_dy,
            self.cn_pr,
            self.base[NDFEB],
            self.base[DYTB],
            self.base[NDPR],
            p.elasticity_dy,
            p.elasticity_ndfeb,
            p.elasticity_ndpr,
            p.max_multiple,
            self.cn_discount,
            p.adjust_days,
            self.price0,
            self.price,
            self.row,
            self.at,
        )
