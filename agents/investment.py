"""The derisking investment programme and its projects: non-Chinese mine-to-magnet capacity.

Interface (what the model uses)
-------------------------------
``Investment(model, cfg)`` with ``cfg`` the scenario config (``investment``; also ``magnet_makers`` and
``sourcing``); create it after the network, the producers, sourcing and the market. It creates the
:class:`InvestmentProgramme` and one :class:`Project` per announced project (Mesa agents).
``month(day)``
    Phase 7, on the first day of each month: the programme starts and advances projects; the chain's
    non-Chinese capacities follow the operating projects (bounded by feed and metal); offtakes move
    orders to new capacity; China's price response; the suppliers' non-Chinese content.
``set_technology_controls(stages, progress_share)``
    Policy method (``cn_technology_controls``): non-Chinese projects developing in these stages advance at
    that share of their normal pace.
``COLUMNS``
    Written monthly: money spent, committed, floor payments, announced projects' spending (USD, cumulative); non-Chinese
    NdFeB, NdPr and Dy/Tb capacity (t/yr); the workforce; projects operating and developing.

Programme
---------

The programme (run by the US and its allies) has a budget spread over ``years`` (``year_shares``, flat by
default) and over the five stages of the chain (``stage_shares``). Each month it starts projects in the
stages whose planned non-Chinese capacity (operating plus under way) is short of its target, if the
year's uncommitted budget covers a project's capex. A project then:

- spends its capex evenly over its development time (permitting + construction), which is drawn around
  the stage's ``lead_years`` (lognormal, ``lead_cv``);
- may fail each month at the stage's ``failure_per_year`` hazard (money spent is lost, the rest is
  released);
- without a price floor or offtake, a programme project stalls while the ex-China magnet price does not
  cover the chain's unit cost, and is then cancelled at ``unviable_cancel_per_year``: China's price
  response (cheaper Chinese supply as non-Chinese capacity grows) can delay or stop it. Announced
  projects are financed and committed: they face the failure hazard but not this test;
- on completion needs its staff (``staff_per_1000_tpa``) from the trained workforce; until enough people
  are trained it waits, so capacity cannot appear faster than the workforce pipeline allows;
- ramps up linearly over ``ramp_years``, with unit costs falling with cumulative output (learning).

Projects already announced (calibration facts) are built whatever the budget, outside the programme's
money. The programme's accounting closes: committed = spent + still to spend, and spent never exceeds
the budget. Capacity reaches the supply network through :meth:`InvestmentProgramme.capacity_by`.
"""

from __future__ import annotations

import math

import mesa
import numpy as np

from rareshock.model.codes import CN, REGIONS, STAGES, Kind, Material
from rareshock.model.draws import lognormal
from rareshock.model.schema import ConfigError

NDPR, DYTB, SM, NDFEB = int(Material.NDPR), int(Material.DYTB), int(Material.SM), int(Material.NDFEB)
_SEPARATION_MATERIAL = {"separation_ndpr": NDPR, "separation_dytb": DYTB, "separation_sm": SM}

DEVELOPING, STAFFING, OPERATING, FAILED, CANCELLED = "developing", "staffing", "operating", "failed", "cancelled"


class Project(mesa.Agent):
    def __init__(
        self,
        model: mesa.Model,
        name: str,
        stage: str,
        region: str,
        tpa: float,
        start_day: int,
        ready_day: int,
        capex: float,
        floor: bool,
        heavy_share: float,
        samarium_tpa: float,
        announced: bool,
    ):
        super().__init__(model)
        self.name, self.stage, self.region = name, stage, region
        self.tpa, self.heavy_share, self.samarium_tpa = tpa, heavy_share, samarium_tpa
        self.start_day, self.ready_day = start_day, ready_day
        self.dev_days = max(ready_day - start_day, 1)
        self.capex, self.spent, self.floor, self.announced = capex, 0.0, floor, announced
        self.status = DEVELOPING
        self.online_day: int | None = None
        self.stalled_days = 0

    def ramp(self, day: int, ramp_days: float) -> float:
        """Share of nameplate capacity available on ``day``."""
        if self.status != OPERATING or self.online_day is None:
            return 0.0
        if ramp_days <= 0:
            return 1.0
        return min(1.0, (day - self.online_day + 1) / ramp_days)


class InvestmentProgramme(mesa.Agent):
    """The allies' programme: budget, project starts, the workforce pool and accounting."""

    def __init__(
        self,
        model: mesa.Model,
        cfg,
        start_day: int,
        horizon_days: int,
        target_tpa: dict[str, float],
        base_tpa: dict[str, float],
    ):
        super().__init__(model)
        self.cfg = cfg
        self.start_day = start_day
        self.budget = cfg.budget_usd
        shares = cfg.year_shares or [1.0 / cfg.years] * cfg.years
        self.year_budget = [self.budget * s for s in shares]
        self.committed = 0.0  # capex of projects started by the programme (not failed/cancelled parts)
        self.spent = 0.0
        self.training_spent = 0.0
        self.released = 0.0  # capex never spent because projects failed or were cancelled
        self.announced_spent = 0.0
        self.floor_payments = 0.0
        self.workforce = cfg.workforce_start
        self.staff_in_use = 0.0
        self.target = target_tpa  # planned capacity wanted by stage (t/yr)
        self.base = base_tpa  # non-Chinese capacity that existed before (t/yr)
        self.projects: list[Project] = []
        self.cum_output = {s: 0.0 for s in STAGES}
        self.horizon_days = horizon_days
        self._n = 0
        # every project draws from its own stream (derived from the model's rng), so that a project's
        # fate does not depend on how many other projects the programme starts (common random numbers)
        self.tech_progress = {s: 1.0 for s in STAGES}  # development pace under China's technology controls
        self.seed = int(model.rng.integers(2**62))
        self.region_rng = np.random.default_rng([self.seed, 2**32])

    # ------------------------------------------------------------------ budget
    def year_index(self, day: int) -> int:
        return (day - self.start_day) // 365

    def available(self, day: int) -> float:
        """Budget released so far (by programme year) and not yet committed."""
        if day < self.start_day:
            return 0.0
        y = self.year_index(day)
        released = sum(self.year_budget[: y + 1])
        return max(0.0, released - self.committed - self.training_spent)

    # ------------------------------------------------------------------ projects
    def add_project(
        self,
        day: int,
        name: str,
        stage: str,
        region: str,
        tpa: float,
        ready_day: int,
        capex: float,
        floor: bool,
        heavy_share: float,
        samarium_tpa: float,
        announced: bool,
    ) -> Project:
        p = Project(
            self.model, name, stage, region, tpa, day, ready_day, capex, floor, heavy_share, samarium_tpa, announced
        )
        p.fate_rng = self.project_rng(len(self.projects), 1)
        self.projects.append(p)
        return p

    def project_rng(self, index: int, purpose: int = 0) -> np.random.Generator:
        """Project ``index``'s stream for one purpose (0: its lead time, 1: its fate)."""
        return np.random.default_rng([self.seed, index, purpose])

    def planned(self, stage: str) -> float:
        return self.base[stage] + sum(
            p.tpa for p in self.projects if p.stage == stage and p.status in (DEVELOPING, STAFFING, OPERATING)
        )

    def start_projects(self, day: int) -> None:
        """Start projects where planned capacity is short of target, within the year's money."""
        cfg = self.cfg
        if day < self.start_day or self.budget <= 0 or self.year_index(day) >= cfg.years:
            return
        for stage in STAGES:
            sp = cfg.stages[stage]
            share = cfg.stage_shares.get(stage, 0.0)
            if share <= 0:
                continue
            while self.planned(stage) < self.target[stage]:
                size = min(sp.project_tpa, self.target[stage] - self.planned(stage))
                size = max(size, 0.25 * sp.project_tpa)
                capex = size * sp.capex_usd_per_tpa
                stage_room = share * self.released_budget(day) - self.stage_committed(stage)
                if capex > min(self.available(day), stage_room):
                    break
                regions = sorted(sp.regions)  # by name: not the config table's key order
                w = np.array([sp.regions[r] for r in regions], dtype=float)
                region = regions[int(self.region_rng.choice(len(regions), p=w / w.sum()))]
                lead = sp.lead_years * 365 * float(lognormal(self.project_rng(len(self.projects)), 1.0, sp.lead_cv))
                self._n += 1
                self.add_project(
                    day,
                    f"programme-{stage}-{self._n}",
                    stage,
                    region,
                    size,
                    day + int(round(lead)),
                    capex,
                    cfg.floors,
                    cfg.separation_heavy_share,
                    size * cfg.separation_sm_share if stage == "separation" else 0.0,
                    announced=False,
                )
                self.committed += capex

    def released_budget(self, day: int) -> float:
        y = min(self.year_index(day), self.cfg.years - 1)
        return sum(self.year_budget[: y + 1])

    def stage_committed(self, stage: str) -> float:
        """Capex the stage has used: all of it for live projects, what was spent for closed ones."""
        return sum(
            p.spent if p.status in (FAILED, CANCELLED) else p.capex
            for p in self.projects
            if p.stage == stage and not p.announced
        )

    def monthly(self, day: int, price_ex_cn: float) -> None:
        """One month: spending, failures, viability, staffing and commissioning, training."""
        cfg = self.cfg
        month = 30.0
        fail_p = {s: 1.0 - (1.0 - cfg.stages[s].failure_per_year) ** (month / 365) for s in STAGES}
        cancel_p = 1.0 - (1.0 - cfg.unviable_cancel_per_year) ** (month / 365)
        chain_cost = self.chain_unit_cost()
        viable = price_ex_cn >= chain_cost
        for p in self.projects:
            if p.status == DEVELOPING:
                if not p.floor and not p.announced and not viable:
                    p.stalled_days += int(month)
                    p.ready_day += int(month)  # no progress this month
                    if p.fate_rng.random() < cancel_p:
                        self._close(p, CANCELLED)
                    continue
                if p.fate_rng.random() < fail_p[p.stage]:
                    self._close(p, FAILED)
                    continue
                slow = self.tech_progress[p.stage]
                if slow < 1.0:  # China's technology and equipment controls: part of the month is lost
                    p.ready_day += int(round(month * (1.0 - slow)))
                spend = min(p.capex - p.spent, p.capex * month / p.dev_days)
                p.spent += spend
                if p.announced:
                    self.announced_spent += spend
                else:
                    self.spent += spend
                if day >= p.ready_day:
                    p.status = STAFFING
            if p.status == STAFFING:
                need = cfg.stages[p.stage].staff_per_1000_tpa * p.tpa / 1000
                if self.workforce - self.staff_in_use >= need:
                    self.staff_in_use += need
                    rest = p.capex - p.spent
                    p.spent = p.capex
                    if p.announced:
                        self.announced_spent += rest
                    else:
                        self.spent += rest
                    p.status = OPERATING
                    p.online_day = day
        # the workforce pipeline: a base flow of graduates plus training paid from the programme
        trainees = cfg.trained_per_year * month / 365
        if self.budget > 0 and day >= self.start_day and self.year_index(day) < cfg.years:
            money = min(
                cfg.training_share * self.year_budget[self.year_index(day)] * month / 365,
                max(0.0, self.released_budget(day) - self.committed - self.training_spent),
            )
            self.training_spent += money
            trainees += money / cfg.usd_per_trainee
        self.workforce += trainees

    def _close(self, p: Project, status: str) -> None:
        p.status = status
        if not p.announced:
            self.committed -= p.capex - p.spent
            self.released += p.capex - p.spent

    # ------------------------------------------------------------------ capacity and costs
    def capacity_by(self, day: int) -> dict[tuple[str, str], float]:
        """Operating capacity added by projects, t/yr, by (stage, region); separation also by element."""
        out: dict[tuple[str, str], float] = {}
        for p in self.projects:
            if p.status != OPERATING:
                continue
            f = p.ramp(day, self.cfg.stages[p.stage].ramp_years * 365)
            if p.stage == "separation":
                for key, v in (
                    ("separation_ndpr", p.tpa * (1 - p.heavy_share)),
                    ("separation_dytb", p.tpa * p.heavy_share),
                    ("separation_sm", p.samarium_tpa),
                ):
                    out[(key, p.region)] = out.get((key, p.region), 0.0) + v * f
            else:
                out[(p.stage, p.region)] = out.get((p.stage, p.region), 0.0) + p.tpa * f
        return out

    def learn(self, output_t: dict[str, float]) -> None:
        for s, v in output_t.items():
            self.cum_output[s] += v

    def chain_unit_cost(self) -> float:
        """Mine-to-magnet unit cost of new non-Chinese supply, USD/kg NdFeB, after learning."""
        cfg = self.cfg
        b = -math.log2(1.0 - cfg.learning_rate) if cfg.learning_rate > 0 else 0.0
        cost = 0.0
        for s in STAGES:
            if s == "recycling":
                continue
            sp = cfg.stages[s]
            doublings = math.log2(1.0 + self.cum_output[s] / max(sp.project_tpa, 1.0))
            cost += sp.unit_cost_usd_kg * (2.0 ** (-b * doublings))
        return cost

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.projects:
            out[p.status] = out.get(p.status, 0) + 1
        return out


class Investment:
    """The programme, the projects already announced, and the non-Chinese chain's capacities by stage."""

    COLUMNS = (
        "investment_spent_usd_cum",
        "investment_committed_usd",
        "floor_payments_usd_cum",
        "announced_spent_usd_cum",
        "ex_cn_ndfeb_capacity_tpa",
        "ex_cn_ndpr_capacity_tpa",
        "ex_cn_dytb_capacity_tpa",
        "rare_earth_workforce",
        "projects_operating",
        "projects_developing",
    )

    def __init__(self, model, cfg):
        self.model, self.cfg = model, cfg
        net = model.net
        self.net = net
        inv = cfg.investment
        x = net.region != CN
        self.x_ndfeb = np.flatnonzero(x & (net.kind == Kind.MAKER) & (net.cap[:, NDFEB] > 0))
        self.x_seps = np.flatnonzero(x & (net.kind == Kind.SEPARATOR))
        self.base_cap = net.cap.copy()
        base_sep = float(net.cap[self.x_seps][:, [NDPR, DYTB]].sum() * 365)
        base_mag = float(net.cap[self.x_ndfeb, NDFEB].sum() * 365)
        base = {"mining": base_sep, "separation": base_sep, "metal": base_mag, "magnets": base_mag, "recycling": 0.0}
        self.base_feed, self.base_metal = base_sep, base_mag * (1 + inv.metal_base_headroom)
        regions = [REGIONS.index(r) for r in inv.target_regions]
        demand = float(net.end_need[np.isin(net.region, regions) & (net.kind >= Kind.PLANT)][:, NDFEB].sum() * 365)
        mm = cfg.magnet_makers
        mag_t = base_mag + inv.target_share * demand
        h = inv.separation_heavy_share
        sep_t = base_sep + max(
            mm.ndpr_per_t_ndfeb * inv.target_share * demand / max(1 - h, 1e-9),
            mm.dytb_per_t_ndfeb * inv.target_share * demand / max(h, 1e-9),
        )
        target = {
            "magnets": mag_t,
            "metal": mag_t,
            "separation": sep_t,
            "mining": sep_t / max(inv.ore_oxide_share, 1e-9),
            "recycling": inv.recycling_scrap_share * inv.target_share * demand,
        }
        for stage in STAGES:  # every stage must be buildable where its projects go
            for reg in inv.stages[stage].regions:
                self._stage_nodes(stage, reg, f"investment.stages.{stage}.regions")
        start = model.calendar.start
        self.programme = InvestmentProgramme(model, inv, (inv.start - start).days, model.calendar.n_days, target, base)
        if inv.announced_projects:
            for i, a in enumerate(inv.announced):
                self._stage_nodes(a.stage, a.region, f"investment.announced[{i}].region")
                sp = inv.stages[a.stage]
                online = (a.online - start).days
                self.programme.add_project(
                    min(online, 0) - 1,
                    a.name,
                    a.stage,
                    a.region,
                    a.tpa,
                    online,
                    a.tpa * sp.capex_usd_per_tpa,
                    a.floor,
                    inv.separation_heavy_share if a.heavy_share is None else a.heavy_share,
                    a.samarium_tpa,
                    announced=True,
                )
        self.ex_cn_ndfeb_demand = float(net.end_need[x & (net.kind >= Kind.PLANT), NDFEB].sum())
        self.caps = (0.0, 0.0, 0.0)
        self.n_operating = self.n_developing = 0

    def set_technology_controls(self, stages: list[str], progress_share: float) -> None:
        """China's controls on rare-earth technology and equipment: non-Chinese projects developing in
        ``stages`` advance at ``progress_share`` of their normal pace (each month, ``1 - progress_share`` of
        it is added to their completion date) until changed again (1.0 ends it)."""
        for stage in stages:
            self.programme.tech_progress[stage] = progress_share

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
            raise ConfigError(
                f"{where}: no non-Chinese {stage} plant can be built in {region}; allowed: {', '.join(have)}"
            )
        return nodes

    def month(self, day: int) -> None:
        """Investment, the chain's capacities, offtakes moving orders, China's price response and the
        suppliers' non-Chinese content."""
        model, net, prog, inv = self.model, self.net, self.programme, self.cfg.investment
        market, sourcing = model.market, model.sourcing
        prog.start_projects(day)
        prog.monthly(day, market.price_ex_cn_ndfeb)
        add = prog.capacity_by(day)
        cap = self.base_cap.copy()

        def by(key: str) -> float:
            return sum(v for (k, _), v in add.items() if k == key)

        for (key, reg), v in add.items():
            if key == "magnets":
                nodes = self._stage_nodes("magnets", reg, "")
                w = self.base_cap[nodes, NDFEB]
                w = w / w.sum() if w.sum() > 0 else np.full(nodes.size, 1 / nodes.size)
                cap[nodes, NDFEB] += v / 365 * w
            elif key.startswith("separation_"):
                node = self._stage_nodes("separation", reg, "")[0]
                cap[node, _SEPARATION_MATERIAL[key]] += v / 365
        feed = self.base_feed + by("mining") + by("recycling")
        sep_total = float(cap[self.x_seps][:, [NDPR, DYTB]].sum() * 365)
        if sep_total > feed > 0:
            cap[np.ix_(self.x_seps, [NDPR, DYTB])] *= feed / sep_total
        metal = self.base_metal + by("metal")
        mag_total = float(cap[self.x_ndfeb, NDFEB].sum() * 365)
        if mag_total > metal > 0:
            cap[self.x_ndfeb, NDFEB] *= metal / mag_total
        net.cap[:] = cap
        model.producers.refresh_capacity(net)
        sourcing.refresh(net)
        self.caps = (
            cap[self.x_ndfeb, NDFEB].sum() * 365,
            cap[self.x_seps, NDPR].sum() * 365,
            cap[self.x_seps, DYTB].sum() * 365,
        )
        prog.learn(
            {
                "magnets": by("magnets") / 12,
                "separation": (by("separation_ndpr") + by("separation_dytb")) / 12,
                "metal": by("metal") / 12,
                "mining": by("mining") / 12,
            }
        )
        # floors: the programme pays the gap between the floor and the market on floor projects' output
        floor_t = (
            sum(
                p.tpa * p.ramp(day, inv.stages["magnets"].ramp_years * 365)
                for p in prog.projects
                if p.floor and p.stage == "magnets" and p.status == "operating"
            )
            / 12
        )
        prog.floor_payments += floor_t * 1000 * max(0.0, inv.floor_ndfeb_usd_kg - market.price_ex_cn_ndfeb)
        # offtakes: new capacity beyond suppliers' normal operating point finds buyers
        sourcing.derisk(net, self.cfg.sourcing.derisk_share_per_month)
        # China's price response to non-Chinese capacity, and non-Chinese content of each supplier
        counts = prog.counts()
        self.n_operating = counts.get(OPERATING, 0)
        self.n_developing = counts.get(DEVELOPING, 0) + counts.get(STAFFING, 0)
        added = by("magnets") / 365 / max(self.ex_cn_ndfeb_demand, 1e-9)
        market.set_cn_discount(inv.cn_price_response * min(1.0, added))
        sourcing.update_content()
        self.start_record()

    def start_record(self) -> None:
        """Write the programme's figures into the record row (at the start and after each month)."""
        prog = self.programme
        self.row[self.at : self.at + 10] = (
            prog.spent + prog.training_spent,
            prog.committed,
            prog.floor_payments,
            prog.announced_spent,
            *self.caps,
            prog.workforce,
            self.n_operating,
            self.n_developing,
        )
