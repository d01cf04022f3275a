"""Chipmakers and toolmakers selling into China under US licensing, and the Chinese buyers.

A US firm earns China revenue at a steady daily rate; ``controlled_share`` of it is in products that a
US licence requirement catches (for Nvidia, the H20). When the requirement lands, that revenue stops and
the inventory and purchase commitments built for China are written off; when licences are granted,
sales resume with ``remit_share`` paid to the US government. Chinese buyers whose US purchases are
blocked buy domestic substitutes instead, which raises China's localisation share.
"""

from __future__ import annotations

import mesa


class ChipFirm(mesa.Agent):
    def __init__(self, model: mesa.Model, name: str, kind: str, china_revenue_usd_per_year: float,
                 controlled_share: float, inventory_at_risk_usd: float):
        super().__init__(model)
        self.name = name
        self.kind = kind
        self.rate = china_revenue_usd_per_year / 365.0
        self.controlled_share = controlled_share
        self.inventory_at_risk = inventory_at_risk_usd
        self.status = "open"            # open | licence_required | licensed
        self.remit_share = 0.0
        self.revenue = 0.0
        self.revenue_lost = 0.0
        self.remitted = 0.0
        self.write_off = 0.0

    def require_licence(self) -> None:
        if self.status == "open" and self.controlled_share > 0:
            self.status = "licence_required"
            self.write_off += self.inventory_at_risk

    def grant_licences(self, remit_share: float) -> None:
        if self.status == "licence_required":
            self.status = "licensed"
            self.remit_share = remit_share

    def trade_day(self) -> float:
        """Book one day's China sales; returns the blocked sales (USD) Chinese buyers must replace."""
        controlled = self.rate * self.controlled_share
        free = self.rate - controlled
        if self.status == "licence_required":
            self.revenue += free
            self.revenue_lost += controlled
            return controlled
        remit = controlled * self.remit_share
        self.revenue += self.rate - remit
        self.remitted += remit
        return 0.0


class ChineseChipBuyer(mesa.Agent):
    """Chinese chipmakers and AI-chip buyers; blocked US purchases go to domestic suppliers."""

    def __init__(self, model: mesa.Model, name: str, us_purchases_share: float):
        super().__init__(model)
        self.name = name
        self.share = us_purchases_share
        self.domestic_substitution_usd = 0.0

    def substitute(self, blocked_usd: float) -> None:
        self.domestic_substitution_usd += blocked_usd * self.share
