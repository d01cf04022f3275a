"""The rareshock model: the world, its actors and the order of one simulated day.

``RareShockModel.step`` is the one place that says what happens in a day, in this order:
policy → licence decisions → production → allocation and shipping → arrivals and consumption
(idling, orders, switching, applications) → prices → investment → chips → record.
"""

from __future__ import annotations

import datetime as dt
import math

import mesa
import numpy as np

from rareshock.agents import defense, magnet_maker
from rareshock.agents.automaker import AutomakerPlant, PlantFleet
from rareshock.agents.chips import ChipSector
from rareshock.agents.defense import DefenseProgramme
from rareshock.agents.government import Diplomacy, Government
from rareshock.agents.industry import IndustrialBuyer
from rareshock.agents.licensing import InteragencyReview, MofcomOffice, Stance
from rareshock.agents.investment import InvestmentProgramme
from rareshock.agents.magnet_maker import MagnetMaker
from rareshock.agents.sourcing import Sourcing
from rareshock.agents.separator import Separator
from rareshock.model.calendar import working_day_index
from rareshock.model.draws import lognormal
from rareshock.model.codes import CONTROLLABLE, REGIONS, STAGES
from rareshock.model.config import ConfigError, ScenarioConfig
from rareshock.model.network import (
    CN, DEFENSE, DYTB, INDUSTRY, ITEM_DYTB, ITEM_NDFEB_HEAVY, ITEM_NDFEB_LIGHT, ITEM_NDPR, ITEM_SM, ITEM_SMCO,
    MAKER, NDFEB, NDPR, PLANT, SEPARATOR, SM, SMCO, M, Network, NodeSpec,
)

R = len(REGIONS)
MAT_NAMES = ("ndpr_oxide", "dytb_oxide", "sm_oxide", "ndfeb", "smco")
_ITEM_OF_MATERIAL = {NDPR: ITEM_NDPR, DYTB: ITEM_DYTB, SM: ITEM_SM, SMCO: ITEM_SMCO}
EXPORT_REGIONS = ("US", "EU", "JP", "IN", "ROW")
PLANT_REGIONS = ("US", "EU", "JP", "IN", "CN", "ROW")

COLUMNS = (
    ["cn_magnet_exports_t"] + [f"cn_magnet_exports_to_{r.lower()}_t" for r in EXPORT_REGIONS]
    + ["cn_dytb_oxide_exports_t",
       "price_dy_oxide_cn_usd_kg", "price_dy_oxide_ex_cn_usd_kg", "price_ndfeb_cn_usd_kg", "price_ndfeb_ex_cn_usd_kg",
       "cn_licences_submitted_cum", "cn_licences_approved_cum", "cn_licences_denied_cum",
       "cn_licences_returned_cum", "cn_licences_pending", "cn_reviewers"]
    + [f"auto_plants_idle_{r.lower()}" for r in PLANT_REGIONS]
    + [f"vehicles_produced_{r.lower()}" for r in PLANT_REGIONS]
    + ["us_auto_buffer_days", "defense_output_share", "us_defense_output_share",
       "us_national_stockpile_t", "industry_output_share_ex_cn", "ex_cn_makers_dytb_cover_days",
       "price_ndpr_oxide_cn_usd_kg", "price_ndpr_oxide_ex_cn_usd_kg",
       "us_defense_non_cn_t", "us_auto_non_cn_t", "us_magnets_non_cn_t", "us_magnets_received_t",
       "investment_spent_usd_cum", "investment_committed_usd", "floor_payments_usd_cum", "announced_spent_usd_cum",
       "ex_cn_ndfeb_capacity_tpa", "ex_cn_ndpr_capacity_tpa", "ex_cn_dytb_capacity_tpa", "rare_earth_workforce",
       "projects_operating", "projects_developing"]
    + list(ChipSector.COLUMNS)
    + [f"{k}_{m}_t" for m in MAT_NAMES for k in ("produced", "consumed", "stock", "transit")]
)
COL = {c: i for i, c in enumerate(COLUMNS)}
_N_HEAD = len(COLUMNS) - 4 * len(MAT_NAMES)
_EXPORT_ORDER = np.array([REGIONS.index(r) for r in EXPORT_REGIONS])
_PLANT_ORDER = np.array([REGIONS.index(r) for r in PLANT_REGIONS])
assert COLUMNS[29] == "us_auto_buffer_days" and COLUMNS[11] == "cn_licences_submitted_cum"


def _sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Relative sizes of n units (shares summing to 1), moderately unequal."""
    w = rng.gamma(4.0, 1.0, n)
    return w / w.sum()


class _Assigner:
    """Assigns buyers' needs to suppliers: suppliers in the buyer's own region first while they have
    spare capacity, otherwise those with the most spare capacity; needs larger than half a typical
    supplier's capacity are split across several suppliers in proportion to their spare capacity."""

    def __init__(self, nodes: list[int], capacity: list[float], regions: list[int]):
        self.nodes = nodes
        self.cap = np.array(capacity, dtype=float)
        self.region = np.array(regions, dtype=np.int64)
        self.load = np.zeros(len(nodes))

    def assign(self, need: float, region: int) -> list[tuple[int, float]]:
        if need <= 0 or not self.nodes:
            return []
        chunk = max(0.5 * float(self.cap.mean()), 1e-9)
        spare = self.cap - self.load
        home = (self.region == region) & (spare > 0)
        pool = np.flatnonzero(home) if spare[home].sum() >= need else np.arange(len(self.nodes))
        k = min(pool.size, max(1, math.ceil(need / chunk)))
        order = pool[np.argsort(-spare[pool], kind="stable")]
        room = np.cumsum(np.maximum(spare[order], 0.0))
        k = max(k, min(int(np.searchsorted(room, need)) + 1, order.size))   # enough suppliers to hold it
        picks = order[:k]
        room = np.maximum(spare[picks], 0.0)
        w = room / room.sum() if room.sum() > 0 else np.full(k, 1.0 / k)   # in proportion to spare room
        self.load[picks] += need * w
        return [(self.nodes[i], float(x)) for i, x in zip(picks, w)]


class RareShockModel(mesa.Model):
    """Rare earths, magnets and chips under export controls, one day per step.

    Args:
        config: a validated :class:`model.config.ScenarioConfig`.
        rng: seed (int or ``SeedSequence``) for the model's random number generator.
    """

    def __init__(self, config: ScenarioConfig, rng=None):
        super().__init__(rng=rng)
        self.cfg = config
        sc = config.scenario
        self.start = sc.start
        self.n_days = (sc.end - sc.start).days + 1
        self.working, self.wd_clock = working_day_index(sc.start, self.n_days)
        self.day = 0
        self.first_control_day: int | None = None
        self.controls = np.zeros(len(CONTROLLABLE), dtype=bool)
        self._build_world()
        self._build_institutions()
        self._build_investment()
        self.rec = np.zeros((self.n_days, len(COLUMNS)))
        self.running = True

    # ================================================================== building the world
    def _build_world(self) -> None:
        cfg, rng = self.cfg, self.rng
        specs: list[NodeSpec] = []
        mm, sp, am = cfg.magnet_makers, cfg.separators, cfg.automakers

        def add(spec: NodeSpec) -> int:
            specs.append(spec)
            return len(specs) - 1

        # --- upstream separators: (node, region, name)
        seps: list[tuple[int, str, str]] = []
        for i, w in enumerate(_sizes(rng, sp.cn_separators)):
            cap = {NDPR: sp.cn_ndpr_t_per_year * w / 365, DYTB: sp.cn_dytb_t_per_year * w / 365,
                   SM: sp.cn_sm_t_per_year * w / 365}
            seps.append((add(NodeSpec(SEPARATOR, CN, 0.0, capacity=cap, end_use=3)), "CN", f"cn_separator_{i}"))
        for reg in sorted(set(sp.ex_cn_ndpr_t_per_year) | set(sp.ex_cn_dytb_t_per_year)):
            cap = {NDPR: sp.ex_cn_ndpr_t_per_year.get(reg, 0) / 365, DYTB: sp.ex_cn_dytb_t_per_year.get(reg, 0) / 365}
            if sum(cap.values()) > 0:
                seps.append((add(NodeSpec(SEPARATOR, REGIONS.index(reg), 0.0, capacity=cap, end_use=3)), reg,
                             f"{reg.lower()}_separator"))

        # --- magnet makers: (node, region, product)
        makers: list[tuple[int, str, str]] = []
        for i, w in enumerate(_sizes(rng, mm.cn_makers)):
            makers.append((add(NodeSpec(MAKER, CN, mm.input_cover_days_cn, end_use=3,
                                        capacity={NDFEB: mm.cn_ndfeb_capacity_t_per_year * w / 365})), "CN", "ndfeb"))
        n_cn_smco = max(1, mm.cn_makers // 10)
        for _ in range(n_cn_smco):
            makers.append((add(NodeSpec(MAKER, CN, mm.input_cover_days_cn, end_use=3,
                                        capacity={SMCO: mm.cn_smco_capacity_t_per_year / n_cn_smco / 365})), "CN", "smco"))
        for reg in sorted(set(mm.ndfeb_capacity_t_per_year) | set(mm.smco_capacity_t_per_year)):
            if reg == "CN" or reg not in REGIONS:
                raise ConfigError(f"magnet_makers: region {reg!r} not allowed; allowed: US, JP, EU, IN, ROW")
            k = mm.makers_per_region.get(reg, 1)
            cap = mm.ndfeb_capacity_t_per_year.get(reg, 0.0)
            if cap > 0:
                for _ in range(k):
                    makers.append((add(NodeSpec(MAKER, REGIONS.index(reg), mm.input_cover_days_ex_cn, end_use=3,
                                                capacity={NDFEB: cap / k / 365})), reg, "ndfeb"))
            cap = mm.smco_capacity_t_per_year.get(reg, 0.0)
            if cap > 0:
                makers.append((add(NodeSpec(MAKER, REGIONS.index(reg), mm.input_cover_days_ex_cn, end_use=3,
                                            capacity={SMCO: cap / 365})), reg, "smco"))

        # --- end users
        plants: list[tuple[int, str, float, float]] = []     # node, region, vehicles/day, kg/vehicle
        for reg in PLANT_REGIONS:
            rp = getattr(am, reg)
            if rp.plants == 0:
                continue
            kg = (1 - rp.bev_share - rp.hev_share) * am.magnet_kg_ice + rp.hev_share * am.magnet_kg_hev \
                + rp.bev_share * am.magnet_kg_bev
            vpd = rp.vehicles_per_year / 365 * _sizes(rng, rp.plants)
            cover = lognormal(rng, rp.buffer_days_mean, rp.buffer_days_cv, rp.plants)
            for v, c in zip(vpd, cover):
                node = add(NodeSpec(PLANT, REGIONS.index(reg), float(c), need={NDFEB: v * kg / 1000}, end_use=0))
                plants.append((node, reg, float(v), kg))
        progs: list[tuple[int, str]] = []
        for reg in ("US", "EU", "JP"):
            dr = getattr(cfg.defense, reg)
            if dr.programmes == 0:
                continue
            w = _sizes(rng, dr.programmes) * dr.magnets_t_per_year / 365
            cover = lognormal(rng, dr.buffer_days_mean, dr.buffer_days_cv, dr.programmes)
            for x, c in zip(w, cover):
                node = add(NodeSpec(DEFENSE, REGIONS.index(reg), float(c), military=True, end_use=2,
                                    need={NDFEB: x * (1 - dr.smco_share), SMCO: x * dr.smco_share}))
                progs.append((node, reg))

        # other users: the rest of each region's Chinese imports (2024 exports by destination)
        od = cfg.other_demand
        cn_share_of = {}
        industry_nodes: list[tuple[int, str, str]] = []
        for reg in EXPORT_REGIONS:
            r = REGIONS.index(reg)
            imports = od.cn_magnet_exports_t_per_year * od.export_share.get(reg, 0.0) / 365
            auto = sum(specs[n].need[NDFEB] for n, rg, _, _ in plants if rg == reg) * getattr(am, reg).cn_supply_share
            dfn = 0.0
            if reg in ("US", "EU", "JP"):
                dr = getattr(cfg.defense, reg)
                dfn = dr.magnets_t_per_year / 365 * dr.cn_supply_share
            smco = od.smco_t_per_year.get(reg, 0.0) / 365
            rest = imports - auto - dfn - smco * od.cn_supply_share
            if rest < 0:
                raise ConfigError(
                    f"other_demand.export_share.{reg}: China's exports to {reg} ({imports * 365:.0f} t/yr) are "
                    f"smaller than its automakers' and defence programmes' Chinese supply "
                    f"({(auto + dfn + smco * od.cn_supply_share) * 365:.0f} t/yr); raise the share or lower those")
            total = rest / od.cn_supply_share if od.cn_supply_share > 0 else 0.0
            for grade, need in (("heavy", {NDFEB: total * od.heavy_grade_share}),
                                ("light", {NDFEB: total * (1 - od.heavy_grade_share)}), ("smco", {SMCO: smco})):
                if sum(need.values()) > 0:
                    node = add(NodeSpec(INDUSTRY, r, od.buffer_days_mean, need=need, heavy_grade=grade != "light",
                                        end_use=1))
                    industry_nodes.append((node, reg, grade))
        for grade, need in (("heavy", {NDFEB: od.cn_domestic_t_per_year * od.heavy_grade_share / 365}),
                            ("light", {NDFEB: od.cn_domestic_t_per_year * (1 - od.heavy_grade_share) / 365}),
                            ("smco", {SMCO: od.cn_domestic_smco_t_per_year / 365})):
            if sum(need.values()) > 0:
                node = add(NodeSpec(INDUSTRY, CN, od.buffer_days_mean, need=need, heavy_grade=grade != "light",
                                    end_use=1))
                industry_nodes.append((node, "CN", grade))

        for n, rg, _, _ in plants:
            cn_share_of[n] = getattr(am, rg).cn_supply_share
        for n, rg in progs:
            cn_share_of[n] = getattr(cfg.defense, rg).cn_supply_share
        for n, rg, _ in industry_nodes:
            cn_share_of[n] = od.cn_supply_share

        # --- network arrays
        recipe = np.zeros((M, M))
        recipe[NDFEB, NDPR] = mm.ndpr_per_t_ndfeb
        recipe[NDFEB, DYTB] = mm.dytb_per_t_ndfeb
        recipe[SMCO, SM] = mm.sm_per_t_smco
        tsd = np.array([mm.target_stock_days if s.kind == MAKER else sp.target_stock_days if s.kind == SEPARATOR
                        else 0.0 for s in specs])
        net = Network(specs, recipe, tsd)

        # --- supply relationships: end users first, then makers' inputs from the loads they carry
        sh = cfg.shipping

        def lead(s: int, b: int) -> int:
            rs, rb = specs[s].region, specs[b].region
            if rs == rb:
                return sh.domestic_days
            if rs == CN:
                return sh.sea_days[REGIONS[rb]]
            return sh.ex_cn_days

        def item(m: int, b: int) -> int:
            if m == NDFEB:
                return ITEM_NDFEB_HEAVY if specs[b].heavy_grade else ITEM_NDFEB_LIGHT
            return _ITEM_OF_MATERIAL[m]

        def pool(kind: int, m: int, cn: bool) -> _Assigner:
            ns = [i for i, s in enumerate(specs) if s.kind == kind and m in s.capacity and (s.region == CN) == cn
                  and s.capacity[m] > 0]
            return _Assigner(ns, [specs[i].capacity[m] for i in ns], [specs[i].region for i in ns])

        edges: list[tuple[int, int, int, float]] = []
        pools = {(m, cn): pool(MAKER, m, cn) for m in (NDFEB, SMCO) for cn in (True, False)}
        end_users = [n for n, *_ in plants] + [n for n, _ in progs] + [n for n, *_ in industry_nodes]
        order = sorted(((specs[b].need[m], b, m) for b in end_users for m in specs[b].need), reverse=True)
        for need, b, m in order:
            cs = 1.0 if specs[b].region == CN else cn_share_of[b]
            x_pool = pools[(m, False)]
            if not x_pool.nodes:
                cs = 1.0
            rb = specs[b].region
            for s, w in pools[(m, True)].assign(need * cs, rb):
                edges.append((s, b, m, cs * w))
            if cs < 1.0:
                for s, w in x_pool.assign(need * (1 - cs), rb):
                    edges.append((s, b, m, (1 - cs) * w))
        # makers' input needs follow the demand assigned to them
        for (m, cn), p in pools.items():
            for s, load, cap in zip(p.nodes, p.load, p.cap):
                if load > cap * (1 + 1e-9):
                    where = "CN" if cn else REGIONS[specs[s].region]
                    raise ConfigError(
                        f"magnet_makers: baseline demand on {where} {MAT_NAMES[m]} makers exceeds their capacity "
                        f"({load * 365:.0f} > {cap * 365:.0f} t/yr); raise the capacity or lower demand")
                net.need[s] = load * recipe[m]
        sep_pools = {(m, cn): pool(SEPARATOR, m, cn) for m in (NDPR, DYTB, SM) for cn in (True, False)}
        cn_in_share = {NDPR: mm.ex_cn_ndpr_cn_share, DYTB: mm.ex_cn_dytb_cn_share, SM: 1.0}
        for s_node, reg, _ in makers:
            for m in (NDPR, DYTB, SM):
                need = net.need[s_node, m]
                if need <= 0:
                    continue
                cs = 1.0 if reg == "CN" or not sep_pools[(m, False)].nodes else cn_in_share[m]
                rb = specs[s_node].region
                for s, w in sep_pools[(m, True)].assign(need * cs, rb):
                    edges.append((s, s_node, m, cs * w))
                if cs < 1.0:
                    for s, w in sep_pools[(m, False)].assign(need * (1 - cs), rb):
                        edges.append((s, s_node, m, (1 - cs) * w))
        for (m, cn), p in sep_pools.items():
            for s, load, cap in zip(p.nodes, p.load, p.cap):
                if load > cap * (1 + 1e-9):
                    raise ConfigError(
                        f"separators: baseline demand for {MAT_NAMES[m]} on {'CN' if cn else 'ex-CN'} separators "
                        f"exceeds capacity ({load * 365:.0f} > {cap * 365:.0f} t/yr)")

        # Potential non-Chinese supply, at zero share until capacity appears (agents/sourcing.py moves
        # orders there): every non-Chinese maker can buy each input from a non-Chinese separator, and
        # every end user outside China from a maker in its own region.
        have = {(s, b, m) for s, b, m, _ in edges}
        x_seps = [i for i, sp_ in enumerate(specs) if sp_.kind == SEPARATOR and sp_.region != CN]
        for s_node, reg, prod in makers:
            if reg == "CN" or not x_seps:
                continue
            home = [c for c in x_seps if specs[c].region == specs[s_node].region] or \
                   [c for c in x_seps if specs[c].region == REGIONS.index("ROW")] or x_seps
            for m in np.flatnonzero(recipe[NDFEB if prod == "ndfeb" else SMCO] > 0):
                if not any((c, s_node, m) in have for c in x_seps):
                    edges.append((home[0], s_node, int(m), 0.0))
        home_makers: dict[tuple[int, int], list[int]] = {}
        for n_, reg, prod in makers:
            if reg != "CN":
                home_makers.setdefault((REGIONS.index(reg), NDFEB if prod == "ndfeb" else SMCO), []).append(n_)
        for b in end_users:
            for m in specs[b].need:
                hm = home_makers.get((specs[b].region, m), [])
                if hm and not any((h, b, m) in have for h in hm):
                    edges.append((hm[0], b, m, 0.0))
        sup, buy, mat, share = (list(c) for c in zip(*edges))
        net.set_edges(sup, buy, mat, share, [lead(s, b) for s, b, _, _ in edges],
                      [item(m, b) for _, b, m, _ in edges])
        net.end_need = net.need.copy()
        net.prod_rate = np.zeros((net.n, M))
        for (m, _), p in pools.items():
            net.prod_rate[p.nodes, m] = p.load
        for (m, _), p in sep_pools.items():
            net.prod_rate[p.nodes, m] = p.load
        net.fill_steady_state(0)
        self.net = net
        self.sourcing = Sourcing(net, cfg.sourcing)
        self.producers = np.flatnonzero((net.kind == SEPARATOR) | (net.kind == MAKER))
        potential = net.cap > 0
        x_sep_nodes = np.flatnonzero((net.kind == SEPARATOR) & (net.region != CN))
        potential[np.ix_(x_sep_nodes, [NDPR, DYTB, SM])] = True
        self.production = magnet_maker.Production(net, self.producers, potential)

        # --- Mesa agents, one per actor
        self.separators = [Separator(self, n, reg, name) for n, reg, name in seps]
        self.magnet_makers = [MagnetMaker(self, n, reg, prod) for n, reg, prod in makers]
        self.plant_agents = [AutomakerPlant(self, n, reg, v, kg) for n, reg, v, kg in plants]
        self.programmes = [DefenseProgramme(self, n, reg, f"{reg.lower()}_programme_{i}")
                           for i, (n, reg) in enumerate(progs)]
        self.industry = [IndustrialBuyer(self, n, reg, g) for n, reg, g in industry_nodes]
        pn = np.array([n for n, *_ in plants], dtype=np.int64)
        self.plants = PlantFleet(pn, np.array([v for _, _, v, _ in plants]),
                                 np.array([REGIONS.index(r) for _, r, _, _ in plants]), am.restart_cover_days)
        self.plant_region_masks = {r: self.plants.region == REGIONS.index(r) for r in PLANT_REGIONS}
        self.vpd_by_region = np.bincount(self.plants.region, self.plants.vpd, minlength=R)
        self.us_def_nodes = np.array([n for n, r in progs if r == "US"], dtype=np.int64)
        self.other_def_nodes = np.array([n for n, r in progs if r != "US"], dtype=np.int64)
        # programmes and industrial users: (node, material) pairs that consume, with their group
        groups = [(self.us_def_nodes, 0), (self.other_def_nodes, 1),
                  (np.array([n for n, reg, _ in industry_nodes if reg != "CN"], dtype=np.int64), 2),
                  (np.array([n for n, reg, _ in industry_nodes if reg == "CN"], dtype=np.int64), 3)]
        flat, grp = [], []
        for nodes, g in groups:
            for n in nodes:
                for m in np.flatnonzero(net.end_need[n] > 0):
                    flat.append(n * M + m)
                    grp.append(g)
        self.cons_flat = np.array(flat, dtype=np.int64)
        self.cons_group = np.array(grp, dtype=np.int64)
        self.cons_mat = self.cons_flat % M
        self.cons_need = np.bincount(self.cons_group, net.end_need.ravel()[self.cons_flat], minlength=4)
        self.stockpile = np.zeros(M)   # US National Defense Stockpile magnets, t by material
        self.stockpile[NDFEB] = cfg.defense.us_national_stockpile_t * (1 - cfg.defense.US.smco_share)
        self.stockpile[SMCO] = cfg.defense.us_national_stockpile_t * cfg.defense.US.smco_share

        # masks for recording and prices
        e_mag = (net.mat == NDFEB) | (net.mat == SMCO)
        self.export_mag = net.cn_export & e_mag
        self.export_dytb = net.cn_export & (net.mat == DYTB)
        exn = net.region != CN
        self.ex_cn_end_ndfeb = np.flatnonzero(exn & (net.kind >= PLANT) & (net.end_need[:, NDFEB] > 0))
        # stock users hold after a normal day's use: the reference for ex-China scarcity
        self.ex_cn_ndfeb_target = float((net.end_need[self.ex_cn_end_ndfeb, NDFEB]
                                         * (net.cover_days[self.ex_cn_end_ndfeb] - 1)).sum())
        us_plants = self.plants.nodes[self.plant_region_masks["US"]]
        self.us_plant_flat = us_plants * M + NDFEB
        self.us_plant_need = max(float(net.end_need[us_plants, NDFEB].sum()), 1e-12)
        self.ex_cn_makers_dytb = np.flatnonzero(exn & (net.kind == MAKER) & (net.need[:, DYTB] > 0))
        self.export_dytb = self.export_dytb.astype(float)
        self.export_mag = self.export_mag.astype(float)
        self.cn_ndfeb_makers = np.flatnonzero((net.region == CN) & (net.cap[:, NDFEB] > 0))
        self.cn_dytb_seps = np.flatnonzero((net.region == CN) & (net.cap[:, DYTB] > 0))
        self._p_ex_nd = self.ex_cn_end_ndfeb * M + NDFEB
        self._p_mk = self.ex_cn_makers_dytb * M + DYTB
        self._p_mk_cover = net.cover_days[self.ex_cn_makers_dytb] - 1
        self._p_cn_nd = self.cn_ndfeb_makers * M + NDFEB
        self._p_cn_dy = self.cn_dytb_seps * M + DYTB
        mk_nd = np.flatnonzero(exn & (net.kind == MAKER) & (net.need[:, NDPR] > 0))
        self._p_mk_nd = mk_nd * M + NDPR
        self._p_mk_nd_cover = net.cover_days[mk_nd] - 1
        self.cn_ndpr_seps = np.flatnonzero((net.region == CN) & (net.cap[:, NDPR] > 0))
        self._p_cn_ndpr = self.cn_ndpr_seps * M + NDPR
        self.base_cn_ndpr_sales = float(net.out_rate[self.cn_ndpr_seps, NDPR].sum())
        self.base_cn_ndfeb_sales = float(net.out_rate[self.cn_ndfeb_makers, NDFEB].sum())
        self.base_cn_dytb_sales = float(net.out_rate[self.cn_dytb_seps, DYTB].sum())
        pr = cfg.prices
        self.price = np.array([pr.dy_oxide_cn_usd_kg, pr.dy_oxide_ex_cn_usd_kg, pr.ndfeb_usd_kg, pr.ndfeb_usd_kg,
                               pr.ndpr_oxide_usd_kg, pr.ndpr_oxide_usd_kg])
        self.price0 = self.price.copy()

    def _build_institutions(self) -> None:
        cfg, net = self.cfg, self.net
        lc = cfg.licensing.cn
        n_off = 1 + lc.provincial_offices
        base = lc.reviewers // n_off
        self.offices = [MofcomOffice(self, "central", lc.reviewers - base * lc.provincial_offices)]
        self.offices += [MofcomOffice(self, "provincial", base) for _ in range(lc.provincial_offices)]
        stance = Stance(lc.p_approve_civil, lc.p_approve_military, lc.p_incomplete, lc.statutory_working_days,
                        lc.customs_days, lc.licence_volume_days, lc.validity_days,
                        np.array([lc.destination_factor.get(r, 1.0) for r in REGIONS]))
        self.review = InteragencyReview(self, lc, stance, net.e)
        self.chips = ChipSector(self, cfg.chips)
        dated = [((ev.date - self.start).days, ev) for ev in cfg.events]
        self.governments = [
            Government(self, "CN", [(d, ev) for d, ev in dated if ev.kind.startswith("cn_")]),
            Government(self, "US", [(d, ev) for d, ev in dated if not ev.kind.startswith("cn_")]),
        ]
        self.diplomacy = Diplomacy(self, cfg.policy)

    def _build_investment(self) -> None:
        """The derisking programme, the projects already announced, and the non-Chinese chain's
        capacities by stage that new projects add to."""
        cfg, net = self.cfg, self.net
        inv = cfg.investment
        days = np.array([(self.start + dt.timedelta(days=i)).day for i in range(self.n_days)])
        self.month_start = days == 1
        self.month_start[0] = True
        x = net.region != CN
        self.x_ndfeb = np.flatnonzero(x & (net.kind == MAKER) & (net.cap[:, NDFEB] > 0))
        self.x_seps = np.flatnonzero(x & (net.kind == SEPARATOR))
        self.base_cap = net.cap.copy()
        base_sep = float(net.cap[self.x_seps][:, [NDPR, DYTB]].sum() * 365)
        base_mag = float(net.cap[self.x_ndfeb, NDFEB].sum() * 365)
        base = {"mining": base_sep, "separation": base_sep, "metal": base_mag, "magnets": base_mag, "recycling": 0.0}
        self.base_feed, self.base_metal = base_sep, base_mag * (1 + inv.metal_base_headroom)
        regions = [REGIONS.index(r) for r in inv.target_regions]
        demand = float(net.end_need[np.isin(net.region, regions) & (net.kind >= PLANT)][:, NDFEB].sum() * 365)
        mm = cfg.magnet_makers
        mag_t = base_mag + inv.target_share * demand
        h = inv.separation_heavy_share
        sep_t = base_sep + max(mm.ndpr_per_t_ndfeb * inv.target_share * demand / max(1 - h, 1e-9),
                               mm.dytb_per_t_ndfeb * inv.target_share * demand / max(h, 1e-9))
        target = {"magnets": mag_t, "metal": mag_t, "separation": sep_t, "mining": sep_t / max(inv.ore_oxide_share, 1e-9),
                  "recycling": inv.recycling_scrap_share * inv.target_share * demand}
        for stage in STAGES:                       # every stage must be buildable where its projects go
            for reg in inv.stages[stage].regions:
                self._stage_nodes(stage, reg, "investment.stages.{}.regions".format(stage))
        start_day = (inv.start - self.start).days
        self.programme = InvestmentProgramme(self, inv, start_day, self.n_days, target, base)
        if inv.announced_projects:
            for i, a in enumerate(inv.announced):
                self._stage_nodes(a.stage, a.region, f"investment.announced[{i}].region")
                sp = inv.stages[a.stage]
                online = (a.online - self.start).days
                self.programme.add_project(min(online, 0) - 1, a.name, a.stage, a.region, a.tpa, online,
                                           a.tpa * sp.capex_usd_per_tpa, a.floor,
                                           inv.separation_heavy_share if a.heavy_share is None else a.heavy_share,
                                           a.samarium_tpa, announced=True)
        # utilisation at which suppliers normally run: capacity beyond it is spare for new offtakes
        demand_on = np.bincount(net.sup_flat, net.rate(), minlength=net.n * M)
        cap = net.cap.ravel()
        self.base_util = np.divide(demand_on, cap, out=np.ones_like(cap), where=cap > 0)
        self.non_cn_frac = np.zeros(net.n)
        self.cn_discount = 0.0
        self._x_added_mag = 0.0
        self.ex_cn_ndfeb_demand = float(net.end_need[x & (net.kind >= PLANT), NDFEB].sum())
        us = REGIONS.index("US")
        into_us_def = (net.region[net.buy] == us) & (net.kind[net.buy] == DEFENSE)
        into_us_auto = (net.region[net.buy] == us) & (net.kind[net.buy] == PLANT)
        into_us = (net.region[net.buy] == us) & (net.kind[net.buy] >= PLANT)
        self.e_us_def, self.e_us_auto, self.e_us = (np.flatnonzero(m) for m in (into_us_def, into_us_auto, into_us))
        self.us_defense_need = float(net.end_need[(net.region == us) & (net.kind == DEFENSE)][:, [NDFEB, SMCO]].sum())
        self.us_auto_need = float(net.end_need[(net.region == us) & (net.kind == PLANT), NDFEB].sum())
        self.w_us_def = np.zeros(self.e_us_def.size)
        self.w_us_auto = np.zeros(self.e_us_auto.size)
        self.w_us = np.zeros(self.e_us.size)
        self._arrivals = np.zeros(net.e)
        self._n_operating = self._n_developing = 0
        self._update_content()

    def _stage_nodes(self, stage: str, region: str, where: str) -> np.ndarray:
        """The supply-network nodes a stage's capacity in ``region`` goes to (pooled stages: none)."""
        r = REGIONS.index(region)
        net = self.net
        if stage == "magnets":
            nodes = self.x_ndfeb[net.region[self.x_ndfeb] == r]
        elif stage == "separation":
            nodes = self.x_seps[net.region[self.x_seps] == r]
        else:
            return np.zeros(0, dtype=np.int64)
        if nodes.size == 0:
            have = sorted({REGIONS[i] for i in net.region[self.x_ndfeb if stage == "magnets" else self.x_seps]})
            raise ConfigError(f"{where}: no non-Chinese {stage} plant can be built in {region}; allowed: {', '.join(have)}")
        return nodes

    def _monthly(self, day: int) -> None:
        """Investment, the chain's capacities, offtakes moving orders, and non-Chinese content."""
        net, prog, inv = self.net, self.programme, self.cfg.investment
        prog.start_projects(day)
        prog.monthly(day, self.price[3])
        add = prog.capacity_by(day)
        cap = self.base_cap.copy()
        by = lambda key: sum(v for (k, _), v in add.items() if k == key)  # noqa: E731
        for (key, reg), v in add.items():
            if key == "magnets":
                nodes = self._stage_nodes("magnets", reg, "")
                w = self.base_cap[nodes, NDFEB]
                w = w / w.sum() if w.sum() > 0 else np.full(nodes.size, 1 / nodes.size)
                cap[nodes, NDFEB] += v / 365 * w
            elif key.startswith("separation_"):
                node = self._stage_nodes("separation", reg, "")[0]
                cap[node, {"separation_ndpr": NDPR, "separation_dytb": DYTB, "separation_sm": SM}[key]] += v / 365
        feed = self.base_feed + by("mining") + by("recycling")
        sep_total = float(cap[self.x_seps][:, [NDPR, DYTB]].sum() * 365)
        if sep_total > feed > 0:
            cap[np.ix_(self.x_seps, [NDPR, DYTB])] *= feed / sep_total
        metal = self.base_metal + by("metal")
        mag_total = float(cap[self.x_ndfeb, NDFEB].sum() * 365)
        if mag_total > metal > 0:
            cap[self.x_ndfeb, NDFEB] *= metal / mag_total
        net.cap[:] = cap
        self.production.refresh_capacity(net)
        self.sourcing.refresh(net)
        self._caps = (cap[self.x_ndfeb, NDFEB].sum() * 365, cap[self.x_seps, NDPR].sum() * 365,
                      cap[self.x_seps, DYTB].sum() * 365)
        prog.learn({"magnets": by("magnets") / 12, "separation": (by("separation_ndpr") + by("separation_dytb")) / 12,
                    "metal": by("metal") / 12, "mining": by("mining") / 12})
        # floors: the programme pays the gap between the floor and the market on floor projects' output
        floor_t = sum(p.tpa * p.ramp(day, inv.stages["magnets"].ramp_years * 365) for p in prog.projects
                      if p.floor and p.stage == "magnets" and p.status == "operating") / 12
        prog.floor_payments += floor_t * 1000 * max(0.0, inv.floor_ndfeb_usd_kg - self.price[3])
        # offtakes: new capacity beyond suppliers' normal operating point finds buyers
        demand_on = np.bincount(net.sup_flat, net.rate(), minlength=net.n * M)
        spare = np.maximum(net.cap.ravel() * np.minimum(self.base_util, 1.0) - demand_on, 0.0)
        spare[(net.region == CN).repeat(M)] = 0.0
        self.sourcing.derisk(net, spare, self.cfg.sourcing.derisk_share_per_month)
        # China's price response to non-Chinese capacity, and non-Chinese content of each supplier
        self._x_added_mag = by("magnets")
        counts = prog.counts()
        self._n_operating, self._n_developing = counts.get("operating", 0), counts.get("developing", 0) + counts.get("staffing", 0)
        self.cn_discount = inv.cn_price_response * min(1.0, self._x_added_mag / 365 / max(self.ex_cn_ndfeb_demand, 1e-9))
        self._update_content()
        self.diplomacy.monthly(day, self.rng)
        if self.controls[CONTROLLABLE.index("foreign_magnets_cn_content")]:
            self.refresh_controls()

    def _update_content(self) -> None:
        """Share of each supplier's output that is free of Chinese material: for a non-Chinese maker the
        smallest non-Chinese share among its inputs (a magnet needs all of them); for a non-Chinese
        separator 1; for Chinese nodes 0."""
        net = self.net
        frac = np.zeros(net.n)
        x = net.region != CN
        frac[x & (net.kind == SEPARATOR)] = 1.0
        key = net.buy * M + net.mat
        cn = (net.region[net.sup] == CN).astype(float)
        tot = np.bincount(key, net.share, minlength=net.n * M).reshape(net.n, M)
        cns = np.bincount(key, net.share * cn, minlength=net.n * M).reshape(net.n, M)
        non = np.divide(tot - cns, tot, out=np.ones_like(tot), where=tot > 0)
        mk = np.flatnonzero(x & (net.kind == MAKER))
        uses = net.recipe[np.argmax(net.cap[mk] + self.base_cap[mk], axis=1)] > 0
        frac[mk] = np.where(uses, non[mk], 1.0).min(axis=1)
        self.non_cn_frac = frac
        self.w_us_def = frac[net.sup[self.e_us_def]]
        self.w_us_auto = frac[net.sup[self.e_us_auto]]
        self.w_us = frac[net.sup[self.e_us]]

    # ================================================================== policy hooks used by governments
    def refresh_controls(self) -> None:
        """Recompute which relationships need a Chinese licence and the customs friction on them."""
        net, lc = self.net, self.cfg.licensing.cn
        was = net.controlled
        controlled = net.cn_export & self.controls[net.item]
        if self.controls[CONTROLLABLE.index("foreign_magnets_cn_content")]:
            # foreign-made magnets with Chinese material need a Chinese licence to cross a border
            x_maker = (net.region[net.sup] != CN) & (net.kind[net.sup] == MAKER)
            cross = net.region[net.sup] != net.region[net.buy]
            controlled |= x_maker & cross & (self.non_cn_frac[net.sup] < 1.0)
        net.set_controlled(controlled)
        new = net.controlled & ~was
        if new.any():   # exporters need time to assemble the documents for a first application
            net.ready_day[new] = self.day + self.rng.integers(lc.prep_days_min, max(lc.prep_days_min, lc.prep_days_max) + 1,
                                                              int(new.sum()))
        net.extra_lead = np.where(net.controlled, self.review.stance.customs_days, 0)

    def ban_cn_defense_supply(self, region: str) -> None:
        """The region's defence programmes may no longer use Chinese magnets."""
        net, src = self.net, self.sourcing
        sel = (net.region[src.g_buyer] == REGIONS.index(region)) & net.military[src.g_buyer]
        src.ban_china(net, sel)

    # ================================================================== one day
    def step(self) -> None:
        net, day, rng = self.net, self.day, self.rng
        working, wd = bool(self.working[day]), int(self.wd_clock[day])
        cfg = self.cfg

        # 1. policy: governments apply the day's events
        for g in self.governments:
            g.act(day)

        # 2. licence decisions (Chinese working days), expiry of licences
        if working:
            self.review.staff(self.offices, day)
            self.review.review(net, self.offices, day, wd, rng)
        expired = (net.licence_exp < day) & (net.licence_left > 0)
        if expired.any():
            net.licence_left[expired] = 0.0

        # 3. production: separators and magnet makers
        shippable = net.shippable()
        ship_demand = np.bincount(net.sup_flat, shippable, minlength=net.n * M)
        made, used_in = self.production.run(net, ship_demand, 1.0 / 30.0)

        # 4. allocation under scarcity and shipping (air when the buyer is short)
        ship = net.allocate(shippable)
        sea = net.lead_sea + net.extra_lead
        if cfg.shipping.air_freight:
            cover = net.stock.ravel()[net.buy_flat] < cfg.shipping.air_trigger_cover_days * net.need.ravel()[net.buy_flat]
            air = cover & (net.lead_sea > cfg.shipping.air_days)
            lead = np.where(air, net.extra_lead + cfg.shipping.air_days, sea)
        else:
            lead = sea
        net.send(ship, lead, day)
        out = np.bincount(net.sup_flat, ship, minlength=net.n * M)
        rate_out = net.out_rate.ravel()
        pf = self.production.flat
        rate_out[pf] += (out[pf] - rate_out[pf]) / 30.0

        # 5. arrivals and consumption: plants idle or run, programmes and industry use what they have
        self._arrivals = net.receive(day)
        running, plant_used = self.plants.run(net)
        used = net.consume(self.cons_flat)
        used_by_group = np.bincount(self.cons_group, used, minlength=4)
        end_used = np.bincount(self.cons_mat, used, minlength=M)
        end_used[NDFEB] += plant_used
        defense.release_stockpile(net, self.us_def_nodes, self.stockpile, cfg.defense.stockpile_release_trigger_days)
        rate = net.rate()
        net.place_orders(rate)
        if day % cfg.sourcing.review_days == 0:
            self.sourcing.switch(net, rate)
        if working:
            self.review.file_applications(net, rate, day, wd, rng)

        # 6. prices
        self._update_prices()

        # 7. investment (monthly): projects, the chain's capacities, offtakes, China's price response
        if self.month_start[day]:
            self._monthly(day)

        # 8. chips
        self.chips.step(day, working)

        # 9. record
        self._record(day, ship, running, made, used_in + end_used, used_by_group)
        self.day += 1
        if self.day >= self.n_days:
            self.running = False

    # ================================================================== prices and records
    def _update_prices(self) -> None:
        """Prices move toward the level their side of the border's scarcity implies: ex-China, users'
        stock relative to target (less cover, higher price); in China, sellers' sales relative to
        2024 (trapped supply, lower price). Partial adjustment over ``adjust_days``."""
        net, pr = self.net, self.cfg.prices
        stock, need, out = net.stock.ravel(), net.need.ravel(), net.out_rate.ravel()
        cover_nd = stock[self._p_ex_nd].sum() / max(self.ex_cn_ndfeb_target, 1e-12)
        cover_dy = stock[self._p_mk].sum() / max(float((need[self._p_mk] * self._p_mk_cover).sum()), 1e-12) \
            if self._p_mk.size else 1.0
        sales_nd = out[self._p_cn_nd].sum() / max(self.base_cn_ndfeb_sales, 1e-12)
        sales_dy = out[self._p_cn_dy].sum() / max(self.base_cn_dytb_sales, 1e-12)
        cover_pr = stock[self._p_mk_nd].sum() / max(float((need[self._p_mk_nd] * self._p_mk_nd_cover).sum()), 1e-12) \
            if self._p_mk_nd.size else 1.0
        sales_pr = out[self._p_cn_ndpr].sum() / max(self.base_cn_ndpr_sales, 1e-12)
        lo, hi = 1.0 / pr.max_multiple, pr.max_multiple
        signal = (max(sales_dy, 1e-9) ** (1 / pr.elasticity_dy), max(cover_dy, 1e-9) ** (-1 / pr.elasticity_dy),
                  max(sales_nd, 1e-9) ** (1 / pr.elasticity_ndfeb), max(cover_nd, 1e-9) ** (-1 / pr.elasticity_ndfeb),
                  max(sales_pr, 1e-9) ** (1 / pr.elasticity_ndpr), max(cover_pr, 1e-9) ** (-1 / pr.elasticity_ndpr))
        # China's price response: cheaper Chinese supply abroad as non-Chinese capacity grows
        undercut = (1.0, 1.0, 1.0, 1.0 - self.cn_discount, 1.0, 1.0 - self.cn_discount)
        for i in range(6):
            target = self.price0[i] * min(max(signal[i], lo), hi) * undercut[i]
            self.price[i] += (target - self.price[i]) / pr.adjust_days
        dy_need = need[self._p_mk].sum()
        self._dy_days = stock[self._p_mk].sum() / dy_need if dy_need > 0 else 0.0

    def _record(self, day, ship, running, made, consumed, used_by_group) -> None:
        net, q = self.net, self.review.queue
        arr, prog = self._arrivals, self.programme
        c = q.counts
        exp = np.bincount(net.dest, ship * self.export_mag, minlength=R)
        idle = np.bincount(self.plants.region, ~running, minlength=R)
        veh = np.bincount(self.plants.region, running * self.plants.vpd, minlength=R)
        need = self.cons_need
        row = self.rec[day]
        row[0] = exp.sum()
        row[1:6] = exp[_EXPORT_ORDER]
        row[6] = (ship * self.export_dytb).sum()
        row[7:11] = self.price[:4]
        row[11:17] = (c.submitted, c.approved, c.denied, c.returned, q.pending, self.reviewer_count())
        row[17:23] = idle[_PLANT_ORDER]
        row[23:29] = veh[_PLANT_ORDER]
        row[29:_N_HEAD] = (
            net.stock.ravel()[self.us_plant_flat].sum() / self.us_plant_need,
            (used_by_group[0] + used_by_group[1]) / max(need[0] + need[1], 1e-12),
            used_by_group[0] / max(need[0], 1e-12), self.stockpile.sum(), used_by_group[2] / max(need[2], 1e-12),
            self._dy_days, self.price[4], self.price[5],
            (arr[self.e_us_def] * self.w_us_def).sum(), (arr[self.e_us_auto] * self.w_us_auto).sum(),
            (arr[self.e_us] * self.w_us).sum(),
            arr[self.e_us].sum(), prog.spent + prog.training_spent, prog.committed, prog.floor_payments, prog.announced_spent,
            *self._caps,
            prog.workforce, self._n_operating, self._n_developing, *self.chips.record_row())
        tail = row[_N_HEAD:]
        tail[0::4] = made
        tail[1::4] = consumed
        tail[2::4] = net.stock.sum(axis=0) + self.stockpile
        tail[3::4] = net.transit_by_material()

    def reviewer_count(self) -> int:
        return sum(o.reviewers for o in self.offices)
