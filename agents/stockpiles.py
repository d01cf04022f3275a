"""Stockpile programmes: state and civil reserves that buy material off the market with a budget.

Interface (what the model uses)
-------------------------------
``Stockpiles(model)``; create it after the network, the producers and the market.
``start(name, material, sellers, region, tonnes, cover_days, days, budget_usd)``
    Policy method (``cn_state_stockpile``, ``us_stockpile_programme``): a programme starts buying today.
``buy(day)``
    Phase 4b of the day (after shipping): every active programme buys.
``reserve``
    t held by the programmes, by material (part of the material balance's stock, so material is conserved).
``summary()``
    Per programme: target, bought (t), spent and budget left (USD); empty if there was none.

Mechanism
---------
A programme buys ``material`` from sellers: Chinese producers (China's state reserve) or non-Chinese producers
(US programmes: Chinese supply abroad goes through export licensing on the network, which a programme does not
bypass). Its target is ``tonnes``, or ``cover_days`` of the need (t/day, on its start day) of the buying
region's civil buyers of the material (end users for NdFeB; magnet makers for oxides). Each day, after the
day's shipments (it is served last), it buys at most ``target / days`` t from what the sellers hold above one
day of their smoothed shipments, pro rata to that. The sellers then produce to restore their finished-goods
target, within their spare capacity (their production rule), so the programme is extra demand: it draws down
the stock that would otherwise meet the next orders, and prices see the scarcity it makes. It pays today's
price of the material on the sellers' side of the border (China's price for Chinese sellers, the price outside
China otherwise), and stops when the target is reached or the budget would be exceeded. Material moves from
the sellers' stock into ``reserve``; money: budget = spent + left, for each programme. Reserves are held to
the end of the run: release rules (e.g. Project Vault's 60-day emergency supply for manufacturers) are not
published in a form the model can use, and are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rareshock.model.codes import CN, REGIONS, Kind, Material
from rareshock.model.network import M

from .market import DY_CN, DY_EX, ND_CN, ND_EX, PR_CN, PR_EX

NDPR, DYTB, NDFEB = int(Material.NDPR), int(Material.DYTB), int(Material.NDFEB)
_MATERIAL = {"ndpr_oxide": NDPR, "dytb_oxide": DYTB, "ndfeb": NDFEB}
_PRICE = {NDPR: (PR_CN, PR_EX), DYTB: (DY_CN, DY_EX), NDFEB: (ND_CN, ND_EX)}  # (China, outside China)


@dataclass
class Programme:
    name: str
    material: int
    sellers: np.ndarray  # node indices
    price_index: int
    target_t: float
    per_day_t: float
    budget_usd: float  # inf: no budget limit
    bought_t: float = 0.0
    spent_usd: float = 0.0
    start_day: int = 0

    @property
    def active(self) -> bool:
        return self.bought_t < self.target_t and self.spent_usd < self.budget_usd


class Stockpiles:
    """Every stockpile programme of the run, and what they hold."""

    def __init__(self, model):
        self.model = model
        self.net = model.net
        self.reserve = np.zeros(M)
        self.programmes: list[Programme] = []
        self.active = False

    def start(
        self,
        name: str,
        material: str,
        sellers: str,
        region: str,
        tonnes: float | None,
        cover_days: float | None,
        days: int,
        budget_usd: float | None,
    ) -> Programme:
        net, m = self.net, _MATERIAL[material]
        producer = (net.kind == Kind.SEPARATOR) | (net.kind == Kind.MAKER)
        where = {"cn": net.region == CN, "ex_cn": net.region != CN, "all": np.ones(net.n, bool)}[sellers]
        nodes = np.flatnonzero(producer & where & (net.cap[:, m] > 0))
        if tonnes is None:
            buyers = net.kind >= Kind.PLANT if m == NDFEB else net.kind == Kind.MAKER
            civil = buyers & ~net.military & (net.region == REGIONS.index(region))
            tonnes = float(cover_days * net.need[civil, m].sum())
        p = Programme(
            name=name,
            material=m,
            sellers=nodes,
            price_index=_PRICE[m][0 if sellers == "cn" else 1],
            target_t=float(tonnes),
            per_day_t=float(tonnes) / days,
            budget_usd=float("inf") if budget_usd is None else float(budget_usd),
            start_day=self.model.day,
        )
        self.programmes.append(p)
        self.active = True
        return p

    def buy(self, day: int) -> None:
        """Each active programme buys today's tonnage from the sellers' surplus stock."""
        net, price = self.net, self.model.market.price
        for p in self.programmes:
            if not p.active or p.sellers.size == 0:
                continue
            m, s = p.material, p.sellers
            surplus = np.maximum(net.stock[s, m] - net.out_rate[s, m], 0.0)  # sellers keep a day's shipments
            usd_per_t = float(price[p.price_index]) * 1000.0
            want = min(p.per_day_t, p.target_t - p.bought_t, (p.budget_usd - p.spent_usd) / usd_per_t)
            total = float(surplus.sum())
            take = min(want, total)
            if take <= 0.0:
                continue
            got = surplus * (take / total)
            net.stock[s, m] -= got
            moved = float(got.sum())
            self.reserve[m] += moved
            p.bought_t += moved
            p.spent_usd += moved * usd_per_t
        self.active = any(p.active for p in self.programmes)

    def summary(self) -> dict:
        if not self.programmes:
            return {}
        return {
            "stockpile_programmes": {
                p.name: {
                    "target_t": round(p.target_t, 3),
                    "bought_t": round(p.bought_t, 3),
                    "spent_usd": round(p.spent_usd, 2),
                    "budget_usd": None if np.isinf(p.budget_usd) else p.budget_usd,
                    "budget_left_usd": None if np.isinf(p.budget_usd) else round(p.budget_usd - p.spent_usd, 2),
                }
                for p in self.programmes
            }
        }
