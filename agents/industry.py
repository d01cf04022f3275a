"""Other magnet users by region: wind, industrial motors, electronics (NdFeB) and industrial SmCo users.

Interface (what the model uses)
-------------------------------
``IndustrialUsers(model, cfg)`` with ``cfg`` the scenario config (``other_demand``; it also reads the
automakers' and defence programmes' Chinese supply to size itself).
``add_nodes(builder)``
    Per region outside China: the rest of China's 2024 magnet exports to that region (``export_share`` of
    ``cn_magnet_exports_t_per_year``) after the region's plants and defence programmes take their Chinese
    share, grossed up by ``cn_supply_share``, as one Dy/Tb-grade and one light-grade NdFeB buyer
    (``heavy_grade_share``), plus one SmCo buyer; and China's own domestic users. Raises
    :class:`ConfigError` if a region's plants and programmes alone exceed China's exports to it.
``bind(net)``
    After the network is built: the (node, material) pairs that consume, grouped outside / inside China.
``consume(ledger)``
    Phase 5: each user uses what it needs or what it has (the gap is lost output), adding it to ``ledger``.
``adapt(market)``
    Monthly: users outside China buy less NdFeB when its price outside China is high (demand response):
    their need is the baseline times phi, which moves toward ``(P/P0)^(-industry_demand_elasticity)`` with
    time constant ``industry_demand_days`` (and back as the price falls). Output shares stay measured
    against the baseline need, so demand given up counts as lost output.
``COLUMNS``
    Output share of users outside China, written by ``consume``.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import CN, REGIONS, EndUse, Kind, Material
from rareshock.model.schema import ConfigError

from .market import ND_EX

NDFEB, SMCO = int(Material.NDFEB), int(Material.SMCO)
EXPORT_REGIONS = ("US", "EU", "JP", "IN", "ROW")


class IndustrialUsers:
    """Aggregate industrial buyers by region and grade, as arrays."""

    COLUMNS = ("industry_output_share_ex_cn",)

    def __init__(self, model, cfg):
        self.model = model
        self.cfg = cfg
        self.users: list[tuple[int, str, str]] = []  # (node, region, grade)

    def add_nodes(self, builder) -> None:
        od, am, df = self.cfg.other_demand, self.cfg.automakers, self.cfg.defense

        def add(r: int, grade: str, need: dict) -> None:
            if sum(need.values()) > 0:
                node = builder.add(
                    Kind.INDUSTRY,
                    r,
                    od.buffer_days_mean,
                    need=need,
                    heavy_grade=grade != "light",
                    end_use=EndUse.INDUSTRIAL,
                    cn_share=od.cn_supply_share,
                )
                self.users.append((node, REGIONS[r], grade))

        for reg in EXPORT_REGIONS:
            r = REGIONS.index(reg)
            imports = od.cn_magnet_exports_t_per_year * od.export_share.get(reg, 0.0) / 365
            auto = (
                sum(builder.specs[n].need[NDFEB] for n in builder.nodes(Kind.PLANT, r))
                * getattr(am, reg).cn_supply_share
            )
            dfn = 0.0
            if reg in ("US", "EU", "JP"):
                dr = getattr(df, reg)
                dfn = dr.magnets_t_per_year / 365 * dr.cn_supply_share
            smco = od.smco_t_per_year.get(reg, 0.0) / 365
            rest = imports - auto - dfn - smco * od.cn_supply_share
            if rest < 0:
                raise ConfigError(
                    f"other_demand.export_share.{reg}: China's exports to {reg} ({imports * 365:.0f} t/yr) are "
                    f"smaller than its automakers' and defence programmes' Chinese supply "
                    f"({(auto + dfn + smco * od.cn_supply_share) * 365:.0f} t/yr); raise the share or lower those"
                )
            total = rest / od.cn_supply_share if od.cn_supply_share > 0 else 0.0
            add(r, "heavy", {NDFEB: total * od.heavy_grade_share})
            add(r, "light", {NDFEB: total * (1 - od.heavy_grade_share)})
            add(r, "smco", {SMCO: smco})
        add(CN, "heavy", {NDFEB: od.cn_domestic_t_per_year * od.heavy_grade_share / 365})
        add(CN, "light", {NDFEB: od.cn_domestic_t_per_year * (1 - od.heavy_grade_share) / 365})
        add(CN, "smco", {SMCO: od.cn_domestic_smco_t_per_year / 365})

    def bind(self, net) -> None:
        self.net = net
        outside = np.array([n for n, reg, _ in self.users if reg != "CN"], dtype=np.int64)
        inside = np.array([n for n, reg, _ in self.users if reg == "CN"], dtype=np.int64)
        self.flat, self.group, self.mat, self.need_by_group = net.consumption_entries([outside, inside])
        self.respond = self.flat[(self.group == 0) & (self.mat == NDFEB)]  # NdFeB users outside China
        self.phi = 1.0
        self.used = np.zeros(self.flat.size)
        self.used_by_group = np.zeros(2)

    def adapt(self, market, days: float = 30.0) -> None:
        """Monthly demand response of users outside China (module docstring)."""
        p = market.p
        if p.industry_demand_elasticity <= 0 or self.respond.size == 0:
            return
        target = market.ratio(ND_EX) ** (-p.industry_demand_elasticity)
        self.phi += (min(target, 1.0) - self.phi) * min(days / p.industry_demand_days, 1.0)
        self.net.need_f[self.respond] = self.net.end_need.ravel()[self.respond] * self.phi

    def consume(self, ledger: np.ndarray) -> None:
        self.net.consume(self.flat, self.group, self.mat, self.used, self.used_by_group, ledger)
        self.row[self.at] = self.used_by_group[0] / max(self.need_by_group[0], 1e-12)
