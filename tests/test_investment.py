"""The derisking programme and its projects on their own: ``InvestmentProgramme`` driven month by month with
projects and prices set by hand, and ``Investment.month`` mapping operating projects into the network's
capacities. (Decade-long policy paths are in tests/test_policy_paths.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rareshock.agents.investment import CANCELLED, DEVELOPING, FAILED, OPERATING, STAFFING
from rareshock.model.codes import STAGES, Material
from rareshock.model.network import M
from tests.popworld import col, tiny_model

NDPR, DYTB, NDFEB = int(Material.NDPR), int(Material.DYTB), int(Material.NDFEB)
NO_FAIL = tuple(f"investment.stages.{s}.failure_per_year=0" for s in STAGES)


def _prog(*overrides, seed=0):
    model = tiny_model("investment.announced_projects=false", *overrides, seed=seed, end="2035-12-31")
    return model, model.investment, model.investment.programme


def _project(
    prog,
    stage="magnets",
    region="US",
    tpa=1000.0,
    start=0,
    ready=100,
    capex=1.4e8,
    floor=True,
    announced=False,
    heavy=0.06,
    sm=0.0,
):
    p = prog.add_project(
        start, f"test-{len(prog.projects)}", stage, region, tpa, ready, capex, floor, heavy, sm, announced
    )
    if not announced:
        prog.committed += capex
    return p


MONTHS = range(0, 30 * 120, 30)


# ---------------------------------------------------------------------------------------- one project
def test_capacity_appears_only_after_the_development_time_and_the_staff():
    model, inv, prog = _prog(
        *NO_FAIL,
        "investment.workforce_start=0",
        "investment.trained_per_year=0",
        "investment.stages.magnets.ramp_years=1",
    )
    p = _project(prog, ready=100, capex=1.4e8)
    spent = []
    for day in (0, 30, 60, 90):
        prog.monthly(day, 100.0)
        spent.append(p.spent)
        assert p.status == DEVELOPING and prog.capacity_by(day) == {}
    np.testing.assert_allclose(spent, [0.3 * 1.4e8, 0.6 * 1.4e8, 0.9 * 1.4e8, 1.4e8], rtol=1e-14)  # capex/100 a day
    prog.monthly(120, 100.0)
    assert p.status == STAFFING  # built, but nobody to run it
    prog.monthly(150, 100.0)
    assert p.status == STAFFING and prog.capacity_by(150) == {} and p.online_day is None
    prog.workforce = 39.0  # 40 staff per 1,000 t/yr
    prog.monthly(180, 100.0)
    assert p.status == STAFFING
    prog.workforce = 40.0
    prog.monthly(210, 100.0)
    assert p.status == OPERATING and p.online_day == 210 and prog.staff_in_use == 40.0
    assert prog.capacity_by(210) == {("magnets", "US"): pytest.approx(1000.0 / 365, rel=1e-15)}
    assert prog.capacity_by(210 + 182)[("magnets", "US")] == pytest.approx(1000.0 * 183 / 365, rel=1e-15)
    assert prog.capacity_by(210 + 364)[("magnets", "US")] == 1000.0
    assert prog.capacity_by(5000)[("magnets", "US")] == 1000.0
    assert prog.spent == 1.4e8 == p.spent and prog.committed == 1.4e8


def test_a_project_never_operates_before_its_ready_day_whatever_the_workforce():
    model, inv, prog = _prog(*NO_FAIL, "investment.workforce_start=1e6")
    ps = [_project(prog, ready=r) for r in (1, 29, 31, 200, 365)]
    for day in MONTHS[:16]:
        prog.monthly(day, 100.0)
        for p in ps:
            assert (p.status == OPERATING) == (day >= p.ready_day)
            if p.status == OPERATING:
                assert p.online_day == min(d for d in MONTHS if d >= p.ready_day)


def test_separation_capacity_splits_into_ndpr_dytb_and_samarium():
    model, inv, prog = _prog(*NO_FAIL, "investment.stages.separation.ramp_years=0")
    _project(prog, stage="separation", region="ROW", tpa=1000, ready=0, heavy=0.06, sm=30.0)
    prog.monthly(0, 100.0)
    cap = prog.capacity_by(0)
    assert cap == {
        ("separation_ndpr", "ROW"): pytest.approx(940.0),
        ("separation_dytb", "ROW"): pytest.approx(60.0),
        ("separation_sm", "ROW"): 30.0,
    }


# ---------------------------------------------------------------------------------------- failure, viability
def test_a_failed_project_loses_what_it_spent_and_releases_the_rest():
    model, inv, prog = _prog(*NO_FAIL)
    p = _project(prog, ready=300, capex=3e8)
    prog.monthly(0, 100.0)
    prog.monthly(30, 100.0)
    spent = p.spent
    assert spent == pytest.approx(2 * 3e8 * 30 / 300, rel=1e-15)
    prog.cfg.stages["magnets"].failure_per_year = 1.0  # certain failure from now on
    prog.monthly(60, 100.0)
    assert p.status == FAILED and p.spent == spent
    assert prog.committed == pytest.approx(spent, rel=1e-15)
    assert prog.released == pytest.approx(3e8 - spent, rel=1e-15)
    assert prog.capacity_by(60) == {}
    prog.monthly(90, 100.0)
    assert p.spent == spent  # nothing more is spent on it


def test_without_a_floor_an_unviable_project_stalls_and_may_be_cancelled():
    model, inv, prog = _prog(*NO_FAIL, "investment.unviable_cancel_per_year=0")
    cost = prog.chain_unit_cost()
    assert cost == pytest.approx(12.0 + 15.0 + 5.0 + 30.0)  # mining, separation, metal, magnets
    plain = _project(prog, ready=100, floor=False)
    floored = _project(prog, ready=100, floor=True)
    announced = _project(prog, ready=100, floor=False, announced=True)
    for day in (0, 30, 60):
        prog.monthly(day, cost - 0.01)  # the market does not pay the chain
    assert plain.spent == 0.0 and plain.stalled_days == 90 and plain.ready_day == 190
    assert plain.status == DEVELOPING
    assert floored.spent > 0 and floored.stalled_days == 0 and floored.ready_day == 100
    assert announced.spent == floored.spent and announced.stalled_days == 0
    prog.monthly(90, cost)  # viable again: it moves on
    assert plain.spent > 0 and plain.stalled_days == 90
    # certain cancellation while unviable
    model, inv, prog = _prog(*NO_FAIL, "investment.unviable_cancel_per_year=1")
    p = _project(prog, ready=100, floor=False, capex=2e8)
    prog.monthly(0, 10.0)
    assert p.status == CANCELLED and prog.committed == 0.0 and prog.released == 2e8


def test_learning_lowers_the_chains_unit_cost():
    model, inv, prog = _prog("investment.learning_rate=0.15")
    assert prog.chain_unit_cost() == pytest.approx(62.0, rel=1e-15)
    prog.learn({"magnets": 5000.0})  # one doubling of the magnet stage (project size 5000)
    assert prog.chain_unit_cost() == pytest.approx(12.0 + 15.0 + 5.0 + 30.0 * 0.85, rel=1e-14)
    prog.learn({"magnets": 10000.0})  # two doublings
    assert prog.chain_unit_cost() == pytest.approx(12.0 + 15.0 + 5.0 + 30.0 * 0.85**2, rel=1e-14)
    prog.learn({"mining": 5000.0 * 3})
    assert prog.chain_unit_cost() == pytest.approx(12.0 * 0.85**2 + 15.0 + 5.0 + 30.0 * 0.85**2, rel=1e-14)
    assert math.isclose(prog.cum_output["magnets"], 15000.0)


# ---------------------------------------------------------------------------------------- money
def test_projects_start_only_where_the_years_and_the_stages_money_covers_them():
    """Budget 1e9 over two years: 5e8 released in year one. Capex: mining 300M (stage room 150M), separation
    360M (150M), metal 90M (50M), magnets 700M (100M), recycling 50M (50M): only one recycling project fits."""
    model, inv, prog = _prog("investment.budget_usd=1e9", "investment.years=2", "investment.start=2025-01-01")
    prog.start_projects(0)
    assert [(p.stage, p.tpa, p.capex) for p in prog.projects] == [("recycling", 1000.0, 5e7)]
    assert prog.committed == 5e7 and prog.available(0) == 4.5e8
    prog.start_projects(31)
    assert len(prog.projects) == 1  # the stage's money is used up this year
    assert prog.available(364) == 4.5e8 and prog.available(365) == 9.5e8
    prog.start_projects(365)  # year two: stage rooms of 300M, 300M, 100M, 200M, 100M
    assert [p.stage for p in prog.projects] == ["recycling", "mining", "metal", "recycling"]
    assert prog.committed == 5e7 + 3e8 + 9e7 + 5e7
    # before the programme starts, nothing
    model, inv, prog = _prog("investment.budget_usd=1e9", "investment.start=2026-01-01")
    prog.start_projects(100)
    assert prog.projects == [] and prog.available(100) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_budget_is_never_exceeded_and_the_books_close_every_month(seed):
    budget = 6e9
    model, inv, prog = _prog(
        f"investment.budget_usd={budget}",
        "investment.years=4",
        "investment.start=2025-01-01",
        "investment.stages.magnets.failure_per_year=0.3",
        seed=seed,
    )
    for day in MONTHS:
        prog.start_projects(day)
        prog.monthly(day, 60.0 if (day // 360) % 2 else 100.0)  # unviable every other year
        live = [p for p in prog.projects if p.status not in (FAILED, CANCELLED)]
        closed = [p for p in prog.projects if p.status in (FAILED, CANCELLED)]
        assert prog.committed == pytest.approx(sum(p.capex for p in live) + sum(p.spent for p in closed), rel=1e-12)
        assert prog.released == pytest.approx(sum(p.capex - p.spent for p in closed), rel=1e-12)
        assert prog.spent == pytest.approx(sum(p.spent for p in prog.projects), rel=1e-12)
        assert prog.committed + prog.training_spent <= prog.released_budget(day) * (1 + 1e-12)
        assert prog.spent + prog.training_spent <= budget * (1 + 1e-12)
        assert all(p.spent <= p.capex * (1 + 1e-12) for p in prog.projects)
    statuses = {p.status for p in prog.projects}
    assert OPERATING in statuses and (FAILED in statuses or CANCELLED in statuses)
    assert prog.spent > 0.5 * budget


def test_announced_projects_are_built_whatever_the_budget():
    model = tiny_model(*NO_FAIL, "investment.budget_usd=0", end="2029-12-31")
    prog = model.investment.programme
    assert prog.projects and all(p.announced for p in prog.projects)
    start = model.calendar.start
    for day in MONTHS[:50]:
        prog.start_projects(day)
        prog.monthly(day, 20.0)  # far below the chain's cost: announced ones go on
    assert prog.spent == 0.0 and prog.committed == 0.0
    for p, a in zip(prog.projects, model.cfg.investment.announced):
        online = (a.online - start).days
        assert p.status == OPERATING and p.online_day >= online and p.online_day - online < 30
        assert p.spent == p.capex == a.tpa * model.cfg.investment.stages[a.stage].capex_usd_per_tpa
    assert prog.announced_spent == pytest.approx(sum(p.capex for p in prog.projects), rel=1e-12)


# ---------------------------------------------------------------------------------------- into the network
def test_operating_magnet_capacity_reaches_the_network_within_the_metal_bound():
    model, inv, prog = _prog(
        *NO_FAIL,
        "investment.stages.magnets.ramp_years=0",
        "investment.stages.metal.ramp_years=0",
        "investment.metal_base_headroom=0.5",
    )
    net = model.net
    us = inv.x_ndfeb[net.region[inv.x_ndfeb] == 1]
    base = inv.base_cap[us, NDFEB].copy()
    base_total = inv.base_cap[inv.x_ndfeb, NDFEB].sum() * 365
    _project(prog, stage="magnets", region="US", tpa=1000, ready=0)
    inv.month(0)
    np.testing.assert_allclose(net.cap[us, NDFEB], base + 1000 / 365 * base / base.sum(), rtol=1e-14)
    np.testing.assert_array_equal(model.producers.cap, net.cap_f[model.producers.flat])
    assert col(model, "ex_cn_ndfeb_capacity_tpa") == pytest.approx(base_total + 1000, rel=1e-14)
    assert col(model, "projects_operating") == 1 and col(model, "investment_committed_usd") == 1.4e8
    # China's price response: cheaper Chinese supply abroad in proportion to the new capacity
    share = 1000 / 365 / inv.ex_cn_ndfeb_demand
    assert model.market.cn_discount == pytest.approx(0.5 * share, rel=1e-12)
    # more than the metal allows: scaled back to base metal (1.5 x base magnets)
    _project(prog, stage="magnets", region="US", tpa=20000, ready=0)
    inv.month(30)
    assert col(model, "ex_cn_ndfeb_capacity_tpa") == pytest.approx(1.5 * base_total, rel=1e-12)
    _project(prog, stage="metal", region="US", tpa=25000, ready=0)  # metal for all of it
    inv.month(60)
    assert col(model, "ex_cn_ndfeb_capacity_tpa") == pytest.approx(base_total + 21000, rel=1e-12)


def test_new_separation_needs_feed_from_mining_or_recycling():
    model, inv, prog = _prog(
        *NO_FAIL, "investment.stages.separation.ramp_years=0", "investment.stages.mining.ramp_years=0"
    )
    net = model.net
    base_sep = inv.base_feed
    _project(prog, stage="separation", region="US", tpa=1000, ready=0, heavy=0.1)
    inv.month(0)
    seps = net.cap[inv.x_seps][:, [NDPR, DYTB]].sum() * 365
    assert seps == pytest.approx(base_sep, rel=1e-12)  # no more ore: scaled back
    assert net.cap[inv.x_seps, DYTB].sum() > 0  # but heavy separation exists now
    _project(prog, stage="mining", region="US", tpa=1000, ready=0)
    inv.month(30)
    seps = net.cap[inv.x_seps][:, [NDPR, DYTB]].sum() * 365
    assert seps == pytest.approx(base_sep + 1000, rel=1e-12)
    us_sep = inv.x_seps[net.region[inv.x_seps] == 1][0]
    assert net.cap[us_sep, DYTB] * 365 == pytest.approx(100.0, rel=1e-12)


def test_new_capacity_finds_buyers_through_offtakes():
    model, inv, prog = _prog(*NO_FAIL, "investment.stages.magnets.ramp_years=0")
    net, src = model.net, model.sourcing
    _project(prog, stage="magnets", region="US", tpa=3000, ready=0)
    share0 = net.share.copy()
    inv.month(0)
    us = inv.x_ndfeb[net.region[inv.x_ndfeb] == 1]
    to_us = np.isin(net.sup, us)
    assert (net.share[to_us] >= share0[to_us]).all() and (net.share[to_us] > share0[to_us]).any()
    key = net.buy * M + net.mat
    np.testing.assert_allclose(
        np.bincount(key, net.share, minlength=net.n * M),
        np.bincount(key, share0, minlength=net.n * M),
        rtol=1e-13,
        atol=1e-16,
    )
    assert src.changes >= 1


def test_a_stage_that_cannot_be_built_in_a_region_is_a_config_error():
    from rareshock.model.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"investment.stages.magnets.regions: no non-Chinese magnets plant can be "
        r"built in IN; allowed: EU, JP, US",
    ):
        tiny_model("investment.stages.magnets.regions={IN = 1.0}")


def test_same_seed_same_programme():
    def run(seed):
        model, inv, prog = _prog("investment.budget_usd=5e9", "investment.start=2025-01-01", seed=seed)
        for day in MONTHS[:60]:
            prog.start_projects(day)
            prog.monthly(day, 100.0)
        return [(p.name, p.region, p.ready_day, p.status, p.spent) for p in prog.projects]

    assert run(3) == run(3)
    assert run(3) != run(4)
