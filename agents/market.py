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
``ratio(i)``
    Today's price i relative to its start (read monthly by the buyers that respond to prices:
    :meth:`rareshock.agents.producers.Producers.adapt`, :meth:`rareshock.agents.industry.IndustrialUsers.adapt`).
``price_ex_cn_ndfeb``
    Today's ex-China NdFeB price (USD/kg), read by the investment programme (viability, floor payments).
``guard_days``
    Days on which a price target was cut off by the numerical guard ``max_multiple`` (a calibrated run has
    none).
``COLUMNS``
    The six prices (USD/kg) and non-Chinese makers' Dy/Tb cover (days), written by ``update``.

Maths
-----
Each side of the border prices its own traded margin.

- Outside China (buyers' side): cover ``C = S / S*`` is buyers' stock relative to the stock they hold after
  a normal day's use of what they need *today* (NdFeB: end users outside China, S* = sum n_b (c_b - 1);
  Dy/Tb and NdPr oxide: non-Chinese makers' input stock against the same reference). Less cover, higher
  price: signal ``C^(-1/e)``. What limits the rise is the buyers' response to it: magnet makers thrift
  Dy/Tb and industrial users buy less when prices are high (their ``adapt`` methods), which raises cover;
  a user who needs less also means to hold less, so its smaller stock is not read as scarcity.
- In China (the whole Chinese market): ``U = S / S_t`` is the stock of Chinese sellers and Chinese buyers
  of the material relative to what they aim to hold: sellers ``ō_i D_i`` (smoothed shipments times target
  days), buyers ``n_b (c_b - 1)``. When exports stall, sellers make less (production follows orders) and
  aim to hold less, so trapped supply shows as lower output, and as unsold stock (a lower price) only
  while stock exceeds the target; licensed shipments that draw the market's stock down raise the price.
  Signal ``U^(-1/e)``.

- A magnet maker outside China bids for Dy/Tb at most what a tonne of magnet leaves for it: the ex-China
  magnet price less its other costs, per tonne of Dy/Tb the standard recipe uses,
  ``W = (P_mag - c0 - a_NdPr P_NdPr) / a_Dy``, with c0 the processing cost implied by the start prices and
  the makers' margin m (``prices.maker_margin_share``): ``c0 = P0_mag (1 - m) - a_NdPr P0_NdPr - a_Dy P0_Dy``.
  At start prices the bid is ``P0_Dy + m P0_mag / a_Dy``: a maker can give up its margin before Dy/Tb
  prices it out. Makers that have thrifted could pay more per kg, and are
  served first; the price of scarce Dy/Tb is set by the marginal buyer, whose grades still need the full
  content. The ex-China Dy signal is ``min(C^(-1/e), W / P0)``: the demand curve's choke price, which rises
  with the magnet price (and may lie below the start price when magnets are cheap and NdPr is dear). Days
  at it (the bid below the cover signal by more than 1%) are reported (``dy_at_margin_days``); it is part
  of the demand curve, not a guard.
- With ``prices.ndpr_makers_bid`` (on in the 2010 world, off in 2024's, whose calibrated market predates it),
  the ex-China NdPr price has the same choke price: ``W_NdPr = (P_mag - c0 - a_Dy P_Dy) / a_NdPr``, with
  today's Dy/Tb price; the NdPr signal is ``min(C^(-1/e), W_NdPr / P0)`` (days at it:
  ``ndpr_at_margin_days``). Together the two bids keep the makers' rare-earth bill within what the magnet
  price leaves after processing: a shortage of oxide outside China raises the oxide prices until the magnet
  price (which rises as end users run short) pays for them, rather than without bound.

With elasticity e (per material), the target of price i is

    P*_i = P0_i * clip(signal_i, 1/k, k) * (1 - d_i),

with k = ``max_multiple`` a numerical guard (days at it are counted in ``guard_days``) and d_i China's
discount abroad (NdFeB and NdPr ex-China). Each day ``P_i += (P*_i - P_i) / adjust_days``.
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
    out_rate,
    ex_nd,
    ex_nd_cover,
    mk_dy,
    mk_dy_cover,
    mk_nd,
    mk_nd_cover,
    cn_nd,
    cn_dy,
    cn_pr,
    cn_nd_days,
    cn_dy_days,
    cn_pr_days,
    cn_nd_hold,
    cn_dy_hold,
    cn_pr_hold,
    cn_nd_cover,
    cn_dy_cover,
    cn_pr_cover,
    el_dy,
    el_nd,
    el_pr,
    max_multiple,
    discount,
    adjust_days,
    price0,
    price,
    a_ndpr,
    a_dy,
    c0,
    row,
    at,
    ndpr_bid,
):
    """Move the prices (see the module docstring); returns the sum of 1 if the guard cut a target off today,
    2 if the Dy price target was the makers' bid, 4 if the NdPr price target was (with ``ndpr_bid``)."""
    cover_nd = psum_at(stock, ex_nd) / max(pdot_at(need, ex_nd, ex_nd_cover), 1e-12)
    cover_dy = 1.0
    if mk_dy.shape[0]:
        cover_dy = psum_at(stock, mk_dy) / max(pdot_at(need, mk_dy, mk_dy_cover), 1e-12)
    cover_pr = 1.0
    if mk_nd.shape[0]:
        cover_pr = psum_at(stock, mk_nd) / max(pdot_at(need, mk_nd, mk_nd_cover), 1e-12)
    unsold_nd = (psum_at(stock, cn_nd) + psum_at(stock, cn_nd_hold)) / max(
        pdot_at(out_rate, cn_nd, cn_nd_days) + pdot_at(need, cn_nd_hold, cn_nd_cover), 1e-12
    )
    unsold_dy = (psum_at(stock, cn_dy) + psum_at(stock, cn_dy_hold)) / max(
        pdot_at(out_rate, cn_dy, cn_dy_days) + pdot_at(need, cn_dy_hold, cn_dy_cover), 1e-12
    )
    unsold_pr = (psum_at(stock, cn_pr) + psum_at(stock, cn_pr_hold)) / max(
        pdot_at(out_rate, cn_pr, cn_pr_days) + pdot_at(need, cn_pr_hold, cn_pr_cover), 1e-12
    )
    lo, hi = 1.0 / max_multiple, max_multiple
    signal = np.empty(6)
    signal[DY_CN] = max(unsold_dy, 1e-9) ** (-1 / el_dy)
    signal[DY_EX] = max(cover_dy, 1e-9) ** (-1 / el_dy)
    bid = (price[ND_EX] - c0 - a_ndpr * price[PR_EX]) / a_dy  # what a tonne of magnet leaves for its Dy/Tb
    want = signal[DY_EX] * price0[DY_EX]
    at_bid = want > bid * 1.01  # reported when the bid cuts the price by more than 1%
    if want > bid:
        signal[DY_EX] = bid / price0[DY_EX]
    pr_at_bid = False
    bid_pr = 0.0
    if ndpr_bid:  # the same choke price for NdPr: what a tonne of magnet leaves for its NdPr
        bid_pr = (price[ND_EX] - c0 - a_dy * price[DY_EX]) / a_ndpr
        want_pr = max(cover_pr, 1e-9) ** (-1 / el_pr) * price0[PR_EX]
        pr_at_bid = want_pr > bid_pr * 1.01
    signal[ND_CN] = max(unsold_nd, 1e-9) ** (-1 / el_nd)
    signal[ND_EX] = max(cover_nd, 1e-9) ** (-1 / el_nd)
    signal[PR_CN] = max(unsold_pr, 1e-9) ** (-1 / el_pr)
    signal[PR_EX] = max(cover_pr, 1e-9) ** (-1 / el_pr)
    if ndpr_bid and signal[PR_EX] * price0[PR_EX] > bid_pr:
        signal[PR_EX] = bid_pr / price0[PR_EX]
    guarded = False
    for i in range(6):
        s = signal[i]
        if s < lo or s > hi:
            guarded = True
        s = lo if s < lo else s
        s = hi if s > hi else s
        undercut = 1.0 - discount if i in (ND_EX, PR_EX) else 1.0
        target = price0[i] * s * undercut
        price[i] += (target - price[i]) / adjust_days
    dy_need = psum_at(need, mk_dy)
    for i in range(6):
        row[at + i] = price[i]
    row[at + 6] = psum_at(stock, mk_dy) / dy_need if dy_need > 0 else 0.0
    return (1 if guarded else 0) + (2 if at_bid else 0) + (4 if pr_at_bid else 0)


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
        # stock users hold after a normal day's use of what they need today: the reference for ex-China
        # scarcity (users who buy less also mean to hold less)
        self.ex_nd_cover = net.cover_days[ex_end] - 1
        mk_dy = np.flatnonzero(exn & (net.kind == Kind.MAKER) & (net.need[:, DYTB] > 0))
        self.mk_dy, self.mk_dy_cover = mk_dy * M + DYTB, net.cover_days[mk_dy] - 1
        mk_nd = np.flatnonzero(exn & (net.kind == Kind.MAKER) & (net.need[:, NDPR] > 0))
        self.mk_nd, self.mk_nd_cover = mk_nd * M + NDPR, net.cover_days[mk_nd] - 1
        sellers = {m: np.flatnonzero((net.region == CN) & (net.cap[:, m] > 0)) for m in (NDFEB, DYTB, NDPR)}
        self.cn_nd, self.cn_dy, self.cn_pr = (sellers[m] * M + m for m in (NDFEB, DYTB, NDPR))
        # China's market: sellers' stock against their target (days of their smoothed shipments) plus Chinese
        # buyers' stock against what they hold after a normal day's use
        self.cn_days = {m: net.target_stock_days[sellers[m]].astype(float) for m in (NDFEB, DYTB, NDPR)}
        hold = {m: np.flatnonzero((net.region == CN) & (net.need[:, m] > 0)) for m in (NDFEB, DYTB, NDPR)}
        self.cn_hold = {m: hold[m] * M + m for m in hold}
        self.cn_hold_cover = {m: net.cover_days[hold[m]] - 1 for m in hold}
        self.price = np.array(
            [
                cfg.dy_oxide_cn_usd_kg,
                cfg.dy_oxide_ex_cn_usd_kg,
                cfg.ndfeb_usd_kg,
                cfg.ndfeb_usd_kg,
                cfg.ndpr_oxide_usd_kg if cfg.ndpr_oxide_cn_usd_kg is None else cfg.ndpr_oxide_cn_usd_kg,
                cfg.ndpr_oxide_usd_kg,
            ]
        )
        self.price0 = self.price.copy()
        self.cn_discount = 0.0
        self.guard_days = 0
        self.dy_at_margin_days = 0
        self.ndpr_at_margin_days = 0
        mm = model.cfg.magnet_makers
        self.a_ndpr, self.a_dy = mm.ndpr_per_t_ndfeb, mm.dytb_per_t_ndfeb
        # processing cost per kg of magnet implied by the start prices: the magnet price less the makers'
        # margin and its rare-earth inputs
        self.c0 = (
            cfg.ndfeb_usd_kg * (1.0 - cfg.maker_margin_share)
            - self.a_ndpr * cfg.ndpr_oxide_usd_kg
            - self.a_dy * cfg.dy_oxide_ex_cn_usd_kg
        )

    @property
    def price_ex_cn_ndfeb(self) -> float:
        return float(self.price[ND_EX])

    def ratio(self, i: int) -> float:
        return float(self.price[i] / self.price0[i])

    def set_cn_discount(self, x: float) -> None:
        self.cn_discount = x

    def update(self) -> None:
        net, p = self.net, self.p
        state = _update(
            net.stock_f,
            net.need_f,
            net.out_rate_f,
            self.ex_nd,
            self.ex_nd_cover,
            self.mk_dy,
            self.mk_dy_cover,
            self.mk_nd,
            self.mk_nd_cover,
            self.cn_nd,
            self.cn_dy,
            self.cn_pr,
            self.cn_days[NDFEB],
            self.cn_days[DYTB],
            self.cn_days[NDPR],
            self.cn_hold[NDFEB],
            self.cn_hold[DYTB],
            self.cn_hold[NDPR],
            self.cn_hold_cover[NDFEB],
            self.cn_hold_cover[DYTB],
            self.cn_hold_cover[NDPR],
            p.elasticity_dy,
            p.elasticity_ndfeb,
            p.elasticity_ndpr,
            p.max_multiple,
            self.cn_discount,
            p.adjust_days,
            self.price0,
            self.price,
            self.a_ndpr,
            self.a_dy,
            self.c0,
            self.row,
            self.at,
            p.ndpr_makers_bid,
        )
        self.guard_days += state & 1
        self.dy_at_margin_days += (state >> 1) & 1
        self.ndpr_at_margin_days += state >> 2
