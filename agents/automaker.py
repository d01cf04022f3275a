"""Automaker assembly plants: where a plant decides how much to build, and when to stop.

Interface (what the model uses)
-------------------------------
``Plants(model, cfg)`` with ``cfg`` the ``automakers`` config section.
``add_nodes(builder)``
    For each region (US, EU, JP, IN, CN, ROW) with plants: ``plants`` plants with output shares drawn from
    ``model.rng`` (gamma(4)). Each plant builds three lines (combustion, hybrid, battery-electric: the
    region's powertrain mix) and needs each magnet-bearing *part* in ``automakers.parts`` (traction
    motors, chassis actuators, small motors...). A part's magnets are Dy/Tb-bearing (``grade = "heavy"``,
    controlled by Announcement No. 18) or not. Each plant holds its parts in *columns*, each a node of the
    network with its own magnet stock, suppliers and buffer (days of cover, drawn lognormal around
    ``buffer_days_mean`` with ``buffer_days_cv``, one draw per plant and part):

    - ``local``: the part's components built near the plant (tier 1 and tier 2) from loose magnets, bought
      from Chinese makers (a portfolio, licence-bound when controlled) and from non-Chinese makers;
    - ``cn_made``: the part's components that arrive inside China-made sub-assemblies, a share
      ``cn_supply_share x cn_assembly_share`` of the part's magnets (not licence-bound under No. 18:
      the licence covers magnets, not motors). Plants in China have no such split.

    The two columns hold *different components*, both needed for every vehicle (a seat motor from China
    does not stand in for a steering motor built in Mexico), so a plant builds what its scarcest column
    allows. Within a column, magnets from different makers are interchangeable (its suppliers are
    qualified for them).
``bind(net)``
    After the network is built: the plants' arrays.
``assemble(ledger)``
    Phase 5 of the day (after arrivals): every plant builds what its parts allow; magnets used go into
    ``ledger`` (t by material, the day's end use).
``COLUMNS``
    Idle plants, plants below plan and vehicles produced by region, and the median plant's cover of its
    scarcest Dy/Tb column (days of that column's need in stock), written by ``assemble`` into the record
    row (``row`` at ``at``).

Decision (per plant, per day)
-----------------------------
Lines get the plant's magnets in ``line_priority`` order (highest margin first). A line with plan v
(vehicles/day) and columns q needing k_q t per vehicle can build a fraction
``f = min(1, min_q S_q / (v k_q))`` of its plan from the stocks S_q left by the lines before it; it runs
whole shifts, ``floor(f s) / s`` of its plan with s = ``shifts_per_day``, so output falls in steps before
the line stops. A stopped line restarts only when its parts cover ``restart_cover_days`` of its plan
(its tier-1 suppliers restart only with several days of parts secured). A plant is *idle* when none of its
lines runs, *below plan* when it builds less than its plan.
"""

from __future__ import annotations

import math

import numpy as np

from rareshock.model.codes import REGIONS, EndUse, Kind, Material
from rareshock.model.draws import lognormal
from rareshock.model.network import M
from rareshock.model.numerics import kernel, psum

from .producers import sizes

NDFEB = int(Material.NDFEB)
PLANT_REGIONS = ("US", "EU", "JP", "IN", "CN", "ROW")
LINES = ("ice", "hev", "bev")


@kernel
def _assemble(
    stock_f, node_flat, plan, kg, priority, shifts, restart_days, line_down, idle, ever_idle, output, used, ledger
):
    n_p, n_q = node_flat.shape
    n_l = plan.shape[1]
    avail = np.empty(n_q)
    k = 0
    for p in range(n_p):
        for q in range(n_q):
            f = node_flat[p, q]
            avail[q] = stock_f[f] if f >= 0 else math.inf
        out = 0.0
        planned = 0.0
        for li in range(n_l):
            line = priority[li]
            v = plan[p, line]
            if v <= 0.0:
                continue
            planned += v
            cover = math.inf  # days of this line's plan its scarcest part covers
            for q in range(n_q):
                if kg[p, q, line] > 0.0:
                    cover = min(cover, avail[q] / (v * kg[p, q, line]))
            if line_down[p, line]:
                runs = shifts if cover >= restart_days - 1e-9 else 0
            else:
                runs = int(math.floor(min(cover, 1.0) * shifts + 1e-9))
            made = v * runs / shifts
            line_down[p, line] = runs == 0
            if made > 0.0:
                for q in range(n_q):
                    if kg[p, q, line] > 0.0:
                        avail[q] = max(avail[q] - made * kg[p, q, line], 0.0)
                out += made
        output[p] = out
        idle[p] = out <= 0.0 and planned > 0.0
        if idle[p]:
            ever_idle[p] = True
        for q in range(n_q):
            f = node_flat[p, q]
            if f >= 0:
                used[k] = stock_f[f] - avail[q]
                stock_f[f] = avail[q]
                k += 1
    ledger[NDFEB] += psum(used)


@kernel
def _record(output, idle, plan_total, region, order, stock_f, need_f, node_flat, heavy, row, at):
    n_r = order.shape[0]
    n_p, n_q = node_flat.shape
    idle_r = np.zeros(n_r)
    low_r = np.zeros(n_r)
    veh_r = np.zeros(n_r)
    cover = np.empty(n_p)
    for p in range(n_p):
        r = region[p]
        if idle[p]:
            idle_r[r] += 1.0
        elif output[p] < plan_total[p] * (1.0 - 1e-9):
            low_r[r] += 1.0
        veh_r[r] += output[p]
        c = math.inf
        for q in range(n_q):
            f = node_flat[p, q]
            if f >= 0 and heavy[q] and need_f[f] > 0.0:
                c = min(c, stock_f[f] / need_f[f])
        cover[p] = c
    for j in range(n_r):
        rj = order[j]
        row[at + j] = idle_r[rj]
        row[at + n_r + j] = low_r[rj]
        row[at + 2 * n_r + j] = veh_r[rj]
        sel = cover[region == rj]
        sel = sel[np.isfinite(sel)]
        row[at + 3 * n_r + j] = np.median(sel) if sel.shape[0] else np.nan


class Plants:
    """The assembly plants of every region, their lines and the magnet-bearing parts they need."""

    IDLE = tuple(f"auto_plants_idle_{r.lower()}" for r in PLANT_REGIONS)
    COLUMNS = (
        IDLE
        + tuple(f"auto_plants_below_plan_{r.lower()}" for r in PLANT_REGIONS)
        + tuple(f"vehicles_produced_{r.lower()}" for r in PLANT_REGIONS)
        + tuple(f"auto_cover_days_{r.lower()}" for r in PLANT_REGIONS)
    )
    INTEGER_COLUMNS = IDLE + tuple(f"auto_plants_below_plan_{r.lower()}" for r in PLANT_REGIONS)

    def __init__(self, model, cfg):
        self.model = model
        self.cfg = cfg
        self.part_names = tuple(sorted(cfg.parts))  # by name: results never depend on a table's key order
        # a plant's stock-holding columns: each part's magnets built into parts near the plant ("local",
        # loose magnets from any supplier) and, for parts with a China-made share, those that arrive inside
        # China-made sub-assemblies ("cn_made"): different components, both needed for every vehicle
        self.columns = tuple(
            (n, route)
            for n in self.part_names
            for route in (("local", "cn_made") if cfg.parts[n].cn_assembly_share > 0 else ("local",))
        )
        self._nodes: list[list[int]] = []  # per plant: its node for each column (-1 if it has none)
        self._kg: list[np.ndarray] = []  # per plant: t per vehicle by column and line
        self._plan: list[list[float]] = []  # per plant: vehicles/day by line
        self._region: list[int] = []

    def add_nodes(self, builder) -> None:
        am, rng = self.cfg, self.model.rng
        parts = [am.parts[n] for n in self.part_names]
        kg_part = {n: np.array([am.parts[n].kg_ice, am.parts[n].kg_hev, am.parts[n].kg_bev]) / 1000.0 for n in am.parts}
        for reg in PLANT_REGIONS:
            rp = getattr(am, reg)
            if rp.plants == 0:
                continue
            mix = np.array([1.0 - rp.bev_share - rp.hev_share, rp.hev_share, rp.bev_share])
            vpd = rp.vehicles_per_year / 365 * sizes(rng, rp.plants)
            cover = lognormal(rng, rp.buffer_days_mean, rp.buffer_days_cv, rp.plants * len(parts))
            r = REGIONS.index(reg)
            cs = rp.cn_supply_share
            for i, v in enumerate(vpd):
                plan = v * mix
                nodes, kg = [], np.zeros((len(self.columns), len(LINES)))
                for c, (name, route) in enumerate(self.columns):
                    part = am.parts[name]
                    # share of the part's magnets that come inside China-made sub-assemblies (not for
                    # plants in China, whose suppliers are all Chinese)
                    made_cn = cs * part.cn_assembly_share if reg != "CN" else 0.0
                    frac = made_cn if route == "cn_made" else 1.0 - made_cn
                    kg[c] = kg_part[name] * frac
                    need = float(plan @ kg[c])
                    if need <= 0:
                        nodes.append(-1)
                        continue
                    q = self.part_names.index(name)
                    local_cn = (cs - made_cn) / (1.0 - made_cn) if made_cn < 1.0 else 0.0
                    nodes.append(
                        builder.add(
                            Kind.PLANT,
                            r,
                            float(cover[i * len(parts) + q]),  # a part's chain keeps one buffer policy
                            need={NDFEB: need},
                            heavy_grade=part.grade == "heavy",
                            end_use=EndUse.AUTO,
                            cn_share=1.0 if route == "cn_made" else local_cn,
                            assembly_share=1.0 if route == "cn_made" else 0.0,
                        )
                    )
                self._nodes.append(nodes)
                self._kg.append(kg)
                self._plan.append([float(x) for x in plan])
                self._region.append(r)

    def bind(self, net) -> None:
        am = self.cfg
        self.net = net
        n_c = len(self.columns)
        nodes = np.array(self._nodes, dtype=np.int64).reshape(len(self._nodes), n_c)
        self.nodes = nodes
        self.node_flat = np.where(nodes >= 0, nodes * M + NDFEB, -1)
        self.plan = np.array(self._plan).reshape(len(self._plan), len(LINES))
        self.plan_total = self.plan.sum(axis=1)
        self.kg = np.array(self._kg).reshape(len(self._kg), n_c, len(LINES))
        self.heavy = np.array([am.parts[n].grade == "heavy" for n, _ in self.columns])
        self.priority = np.array([LINES.index(x) for x in am.line_priority], dtype=np.int64)
        self.region = np.array(self._region, dtype=np.int64)
        n = self.region.size
        self.line_down = np.zeros((n, len(LINES)), dtype=bool)
        self.idle = np.zeros(n, dtype=bool)
        self.ever_idle = np.zeros(n, dtype=bool)
        self.output = self.plan_total.copy()
        self.used = np.zeros(int((nodes >= 0).sum()))
        self.vpd = self.plan_total
        self.vpd_by_region = np.bincount(self.region, self.vpd, minlength=len(REGIONS))
        self.order = np.array([REGIONS.index(r) for r in PLANT_REGIONS], dtype=np.int64)

    def assemble(self, ledger: np.ndarray) -> None:
        net, am = self.net, self.cfg
        _assemble(
            net.stock_f,
            self.node_flat,
            self.plan,
            self.kg,
            self.priority,
            am.shifts_per_day,
            am.restart_cover_days,
            self.line_down,
            self.idle,
            self.ever_idle,
            self.output,
            self.used,
            ledger,
        )
        _record(
            self.output,
            self.idle,
            self.plan_total,
            self.region,
            self.order,
            net.stock_f,
            net.need_f,
            self.node_flat,
            self.heavy,
            self.row,
            self.at,
        )
