"""The derisking investment programme and its projects: non-Chinese mine-to-magnet capacity.

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

from rareshock.model.codes import STAGES
from rareshock.model.draws import lognormal

DEVELOPING, STAFFING, OPERATING, FAILED, CANCELLED = "developing", "staffing", "operating", "failed", "cancelled"


class Project(mesa.Agent):
    def __init__(self, model: mesa.Model, name: str, stage: str, region: str, tpa: float, start_day: int,
                 ready_day: int, capex: float, floor: bool, heavy_share: float, samarium_tpa: float,
                 announced: bool):
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

    def __init__(self, model: mesa.Model, cfg, start_day: int, horizon_days: int, target_tpa: dict[str, float],
                 base_tpa: dict[str, float]):
        super().__init__(model)
        self.cfg = cfg
        self.start_day = start_day
        self.budget = cfg.budget_usd
        shares = cfg.year_shares or [1.0 / cfg.years] * cfg.years
        self.year_budget = [self.budget * s for s in shares]
        self.committed = 0.0         # capex of projects started by the programme (not failed/cancelled parts)
        self.spent = 0.0
        self.training_spent = 0.0
        self.released = 0.0          # capex never spent because projects failed or were cancelled
        self.announced_spent = 0.0
        self.floor_payments = 0.0
        self.workforce = cfg.workforce_start
        self.staff_in_use = 0.0
        self.target = target_tpa     # planned capacity wanted by stage (t/yr)
        self.base = base_tpa         # non-Chinese capacity that existed before (t/yr)
        self.projects: list[Project] = []
        self.cum_output = {s: 0.0 for s in STAGES}
        self.horizon_days = horizon_days
        self._n = 0
        # every project draws from its own stream (derived from the model's rng), so that a project's
        # fate does not depend on how many other projects the programme starts (common random numbers)
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
    def add_project(self, day: int, name: str, stage: str, region: str, tpa: float, ready_day: int, capex: float,
                    floor: bool, heavy_share: float, samarium_tpa: float, announced: bool) -> Project:
        p = Project(self.model, name, stage, region, tpa, day, ready_day, capex, floor, heavy_share, samarium_tpa,
                    announced)
        p.fate_rng = self.project_rng(len(self.projects), 1)
        self.projects.append(p)
        return p

    def project_rng(self, index: int, purpose: int = 0) -> np.random.Generator:
        """Project ``index``'s stream for one purpose (0: its lead time, 1: its fate)."""
        return np.random.default_rng([self.seed, index, purpose])

    def planned(self, stage: str) -> float:
        return self.base[stage] + sum(p.tpa for p in self.projects
                                      if p.stage == stage and p.status in (DEVELOPING, STAFFING, OPERATING))

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
                regions = list(sp.regions)
                w = np.array([sp.regions[r] for r in regions], dtype=float)
                region = regions[int(self.region_rng.choice(len(regions), p=w / w.sum()))]
                lead = sp.lead_years * 365 * float(lognormal(self.project_rng(len(self.projects)), 1.0, sp.lead_cv))
                self._n += 1
                self.add_project(day, f"programme-{stage}-{self._n}", stage, region, size, day + int(round(lead)),
                                 capex, cfg.floors, cfg.separation_heavy_share,
                                 size * cfg.separation_sm_share if stage == "separation" else 0.0, announced=False)
                self.committed += capex

    def released_budget(self, day: int) -> float:
        y = min(self.year_index(day), self.cfg.years - 1)
        return sum(self.year_budget[: y + 1])

    def stage_committed(self, stage: str) -> float:
        """Capex the stage has used: all of it for live projects, what was spent for closed ones."""
        return sum(p.spent if p.status in (FAILED, CANCELLED) else p.capex
                   for p in self.projects if p.stage == stage and not p.announced)

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
                    p.ready_day += int(month)              # no progress this month
                    if p.fate_rng.random() < cancel_p:
                        self._close(p, CANCELLED)
                    continue
                if p.fate_rng.random() < fail_p[p.stage]:
                    self._close(p, FAILED)
                    continue
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
            money = min(cfg.training_share * self.year_budget[self.year_index(day)] * month / 365,
                        max(0.0, self.released_budget(day) - self.committed - self.training_spent))
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
                for key, v in (("separation_ndpr", p.tpa * (1 - p.heavy_share)), ("separation_dytb", p.tpa * p.heavy_share),
                               ("separation_sm", p.samarium_tpa)):
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
