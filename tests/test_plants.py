"""Automaker plants on their own: ``Plants.assemble`` driven on stocks set by hand in a tiny world.

The decision (agents/automaker.py): a plant of need n and stock S runs if S >= n h - 1e-12, with h = 1 while
running and h = ``restart_cover_days`` once idle; a running plant uses n, an idle one nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.agents.automaker import PLANT_REGIONS
from rareshock.model.codes import REGIONS, EndUse, Kind, Material
from rareshock.model.network import M
from tests.popworld import col, tiny_model

NDFEB = int(Material.NDFEB)


def _fleet(*overrides, seed=0):
    model = tiny_model(*overrides, seed=seed)
    pl, net = model.plants, model.net
    need = net.need[pl.nodes, NDFEB].copy()
    return model, pl, net, need


def test_a_plant_with_a_days_need_runs_and_uses_exactly_it_below_it_idles_and_uses_nothing():
    model, pl, net, need = _fleet()
    k = need.size
    stock = need * 5.0
    stock[0] = need[0]  # exactly one day: runs
    stock[1] = need[1] * (1 - 1e-6)  # a hair below: idles
    stock[2] = 0.0
    net.stock[pl.nodes, NDFEB] = stock
    ledger = np.zeros(M)
    ledger[NDFEB] = 1.0  # the ledger accumulates: the day's other users came first
    pl.assemble(ledger)
    expect_used = need.copy()
    expect_used[[1, 2]] = 0.0
    assert pl.idle.tolist() == [False, True, True] + [False] * (k - 3)
    np.testing.assert_array_equal(pl.used, expect_used)
    np.testing.assert_array_equal(net.stock[pl.nodes, NDFEB], stock - expect_used)
    assert net.stock[pl.nodes[0], NDFEB] == 0.0
    assert ledger[NDFEB] == 1.0 + np.sum(expect_used)  # NumPy's pairwise sum, bit for bit
    assert np.count_nonzero(ledger) == 1  # only NdFeB


def test_an_idle_plant_restarts_only_at_restart_cover_days_of_cover():
    model, pl, net, need = _fleet()
    restart = model.cfg.automakers.restart_cover_days
    assert restart == 3.0
    pl.idle[:] = True
    stock = need * 5.0
    stock[0] = need[0] * 2.999  # idle: more than a day is not enough
    stock[1] = need[1] * 3.0  # idle: exactly the restart cover restarts it
    net.stock[pl.nodes, NDFEB] = stock
    pl.assemble(np.zeros(M))
    assert pl.idle[0] and not pl.idle[1] and not pl.idle[2:].any()
    assert pl.used[0] == 0.0 and pl.used[1] == need[1]
    # once running, one day's need is enough (hysteresis)
    net.stock[pl.nodes[1], NDFEB] = need[1]
    pl.assemble(np.zeros(M))
    assert not pl.idle[1] and net.stock[pl.nodes[1], NDFEB] == 0.0


def test_idle_and_restart_over_days_follow_the_hand_computed_path():
    """An idle plant receiving half a day's need each day: idle until 3 days' cover, then runs while it
    holds a day, then idles again."""
    model, pl, net, need = _fleet("automakers.restart_cover_days=3")
    n = need[0]
    node = pl.nodes[0]
    pl.idle[:] = False
    net.stock[pl.nodes, NDFEB] = need * 100
    net.stock[node, NDFEB] = 0.0
    s, idle, path = 0.0, False, []
    for _ in range(16):
        net.stock[node, NDFEB] += 0.5 * n
        s += 0.5 * n
        pl.assemble(np.zeros(M))
        idle = not s >= n * (3.0 if idle else 1.0) - 1e-12
        s -= 0.0 if idle else n
        path.append(idle)
        assert bool(pl.idle[0]) == idle
        assert net.stock[node, NDFEB] == pytest.approx(s, rel=1e-12, abs=1e-12)
    # written out: idle while it builds up to 3 days' cover, runs 5 days down to zero, idles 5 days again
    assert path == [True] * 5 + [False] * 5 + [True] * 5 + [False]


def test_restart_cover_is_the_configured_one():
    model, pl, net, need = _fleet("automakers.restart_cover_days=5")
    pl.idle[:] = True
    net.stock[pl.nodes, NDFEB] = need * 4.5
    pl.assemble(np.zeros(M))
    assert pl.idle.all() and (pl.used == 0).all()
    net.stock[pl.nodes, NDFEB] = need * 5.0
    pl.assemble(np.zeros(M))
    assert not pl.idle.any()


def test_recorded_idle_counts_vehicles_and_us_buffer_by_region_equal_the_hand_count():
    model, pl, net, need = _fleet()
    rng = np.random.default_rng(5)
    short = rng.random(need.size) < 0.5
    short[0] = True  # at least one idle US plant
    stock = np.where(short, need * 0.3, need * rng.uniform(1.0, 40.0, need.size))
    net.stock[pl.nodes, NDFEB] = stock
    pl.assemble(np.zeros(M))
    assert (pl.idle == short).all()
    for reg in PLANT_REGIONS:
        mine = pl.region == REGIONS.index(reg)
        assert col(model, f"auto_plants_idle_{reg.lower()}") == np.count_nonzero(short & mine)
        assert col(model, f"vehicles_produced_{reg.lower()}") == pytest.approx(pl.vpd[mine & ~short].sum(), rel=1e-15)
    us = pl.region == REGIONS.index("US")
    after = stock - np.where(short, 0.0, need)
    assert col(model, "us_auto_buffer_days") == pytest.approx(
        after[us].sum() / net.end_need[pl.nodes[us], NDFEB].sum(), rel=1e-14
    )
    assert set(pl.INTEGER_COLUMNS) == {f"auto_plants_idle_{r.lower()}" for r in PLANT_REGIONS}


def test_plants_from_config_need_their_regions_magnets_per_vehicle():
    model, pl, net, need = _fleet("automakers.US.buffer_days_cv=0", "automakers.IN.plants=0")
    am = model.cfg.automakers
    for reg in PLANT_REGIONS:
        rp = getattr(am, reg)
        mine = pl.region == REGIONS.index(reg)
        assert np.count_nonzero(mine) == rp.plants
        if rp.plants == 0:
            continue
        kg = (
            (1 - rp.bev_share - rp.hev_share) * am.magnet_kg_ice
            + rp.hev_share * am.magnet_kg_hev
            + rp.bev_share * am.magnet_kg_bev
        )
        assert pl.vpd[mine].sum() == pytest.approx(rp.vehicles_per_year / 365, rel=1e-12)
        np.testing.assert_allclose(need[mine], pl.vpd[mine] * kg / 1000, rtol=1e-15)
        assert (net.cn_share[pl.nodes[mine]] == rp.cn_supply_share).all()
    us = pl.region == REGIONS.index("US")
    assert (net.cover_days[pl.nodes[us]] == am.US.buffer_days_mean).all()  # cv 0: the mean itself
    assert len(set(net.cover_days[pl.nodes[~us]])) == np.count_nonzero(~us)  # drawn elsewhere
    assert (net.kind[pl.nodes] == Kind.PLANT).all() and (net.end_use[pl.nodes] == EndUse.AUTO).all()
    assert not net.military[pl.nodes].any()
    # no plants in India: nothing idles or is produced there
    pl.assemble(np.zeros(M))
    assert col(model, "auto_plants_idle_in") == 0 and col(model, "vehicles_produced_in") == 0.0
    # the US example by hand: 8% BEV, 12% HEV -> 0.448 kg a vehicle
    kg_us = 0.80 * 0.25 + 0.12 * 1.0 + 0.08 * 1.6
    assert need[us].sum() == pytest.approx(10.2e6 / 365 * kg_us / 1000, rel=1e-12)


def test_same_seed_same_plants_and_same_decisions_other_seed_other_plants():
    def run(seed):
        model, pl, net, need = _fleet(seed=seed)
        r = np.random.default_rng(1)
        out = []
        for _ in range(20):
            net.stock[pl.nodes, NDFEB] += need * r.uniform(0.0, 2.0, need.size)
            ledger = np.zeros(M)
            pl.assemble(ledger)
            out.append((pl.idle.copy(), net.stock[pl.nodes, NDFEB].copy(), ledger.copy(), model.records.row.copy()))
        return pl, out

    a, ra = run(3)
    b, rb = run(3)
    c, _ = run(4)
    np.testing.assert_array_equal(a.vpd, b.vpd)
    for x, y in zip(ra, rb):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.vpd, c.vpd)
