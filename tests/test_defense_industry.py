"""Defence programmes, the US stockpile and industrial users on their own: ``DefensePrograms.consume``,
``DefensePrograms.ban_chinese_supply`` and ``IndustrialUsers.consume`` driven on stocks set by hand.

Stockpile release (agents/defense.py): gap g_j = max(n_j T - S_j, 0) for US programmes j; the stockpile P_m
gives g_j min(1, P_m / sum_j g_j) to each.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.model.codes import CN, REGIONS, EndUse, Kind, Material
from rareshock.model.config import ConfigError
from rareshock.model.network import M
from tests.popworld import col, tiny_model

NDFEB, SMCO = int(Material.NDFEB), int(Material.SMCO)
EXPORT_REGIONS = ("US", "EU", "JP", "IN", "ROW")


def _defense(*overrides, seed=0):
    model = tiny_model(*overrides, seed=seed)
    return model, model.net, model.defense


# ---------------------------------------------------------------------------------------- programmes
def test_programmes_use_their_need_or_what_they_have_and_record_output_shares():
    model, net, d = _defense("defense.us_national_stockpile_t=0")
    need = net.need.ravel()[d.flat].copy()
    frac = np.linspace(0.0, 3.0, d.flat.size)  # some short, some with plenty
    net.stock.ravel()[d.flat] = need * frac
    ledger = np.zeros(M)
    d.consume(ledger)
    used = np.minimum(need * frac, need)
    np.testing.assert_allclose(d.used, used, rtol=1e-15)
    np.testing.assert_allclose(net.stock.ravel()[d.flat], need * frac - used, rtol=1e-15, atol=1e-15)
    assert ledger[NDFEB] == pytest.approx(used[d.mat == NDFEB].sum(), rel=1e-14)
    assert ledger[SMCO] == pytest.approx(used[d.mat == SMCO].sum(), rel=1e-14)
    assert ledger[[0, 1, 2]].sum() == 0.0
    us = d.group == 0
    assert col(model, "defense_output_share") == pytest.approx(used.sum() / need.sum(), rel=1e-14)
    assert col(model, "us_defense_output_share") == pytest.approx(used[us].sum() / need[us].sum(), rel=1e-14)
    assert 0.0 < col(model, "us_defense_output_share") < 1.0
    assert col(model, "us_national_stockpile_t") == 0.0
    # every programme needs NdFeB and SmCo in its region's mix
    cfg = model.cfg.defense
    for reg in ("US", "EU", "JP"):
        mine = np.array([n for n, r in d.programmes if r == reg])
        dr = getattr(cfg, reg)
        assert mine.size == dr.programmes
        assert net.end_need[mine][:, [NDFEB, SMCO]].sum() * 365 == pytest.approx(dr.magnets_t_per_year, rel=1e-12)
        total = net.end_need[mine][:, [NDFEB, SMCO]].sum(1)
        np.testing.assert_allclose(net.end_need[mine, SMCO], total * dr.smco_share, rtol=1e-14)
        assert net.military[mine].all() and (net.end_use[mine] == EndUse.DEFENSE).all()
        assert (net.cn_share[mine] == dr.cn_supply_share).all() and (net.kind[mine] == Kind.DEFENSE).all()


def test_an_ample_stockpile_tops_us_programmes_up_to_the_trigger_cover():
    model, net, d = _defense("defense.us_national_stockpile_t=100000", "defense.stockpile_release_trigger_days=30")
    us = d.us_nodes
    other = np.array([n for n, r in d.programmes if r != "US"])
    need = net.need.copy()
    net.stock[us, NDFEB] = need[us, NDFEB] * np.array([5.0, 31.0, 60.0])  # one below the trigger after use
    net.stock[us, SMCO] = need[us, SMCO] * np.array([0.0, 10.0, 30.5])
    net.stock[other] = 0.0  # not the US: never released to
    p0 = d.stockpile.copy()
    d.consume(np.zeros(M))
    after_use = {
        NDFEB: need[us, NDFEB] * np.array([4.0, 30.0, 59.0]),
        SMCO: need[us, SMCO] * np.array([0.0, 9.0, 29.5]),
    }
    for m in (NDFEB, SMCO):
        gap = np.maximum(need[us, m] * 30 - after_use[m], 0.0)
        np.testing.assert_allclose(net.stock[us, m], after_use[m] + gap, rtol=1e-14)
        assert d.stockpile[m] == pytest.approx(p0[m] - gap.sum(), rel=1e-14)
    assert net.stock[us[2], NDFEB] == pytest.approx(need[us[2], NDFEB] * 59.0, rel=1e-14)  # above: nothing
    assert (net.stock[other] == 0.0).all()
    assert col(model, "us_national_stockpile_t") == pytest.approx(d.stockpile.sum(), rel=1e-15)
    assert p0[NDFEB] == 100000 * 0.7 and p0[SMCO] == 100000 * 0.3  # split by the US SmCo share


def test_a_scarce_stockpile_is_shared_pro_rata_to_the_gaps_and_runs_out():
    model, net, d = _defense("defense.us_national_stockpile_t=10")
    us = d.us_nodes
    need = net.need.copy()
    net.stock[us] = 0.0
    p0 = d.stockpile.copy()
    d.consume(np.zeros(M))
    for m in (NDFEB, SMCO):
        gap = need[us, m] * 30.0
        assert gap.sum() > p0[m]
        np.testing.assert_allclose(net.stock[us, m], gap * p0[m] / gap.sum(), rtol=1e-14)
        assert net.stock[us, m].sum() == pytest.approx(p0[m], rel=1e-14)
        assert d.stockpile[m] == pytest.approx(0.0, abs=1e-12)
    # empty: nothing more the next day (beyond rounding crumbs)
    held = net.stock[us].copy()
    d.consume(np.zeros(M))
    np.testing.assert_allclose(net.stock[us], np.maximum(held - need[us], 0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("tonnes", [10.0, 50.0, 77.7])
def test_the_stockpile_never_releases_more_than_it_holds(tonnes):
    """The stockpile is a stock: after a release that empties it, nothing is left and nothing is owed.
    (Today ``_release`` subtracts the pairwise sum of the pro-rata gifts, which can exceed the stockpile by
    a rounding error and leave it slightly negative.)"""
    model, net, d = _defense(f"defense.us_national_stockpile_t={tonnes}")
    net.stock[d.us_nodes] = 0.0
    held = d.stockpile.copy()
    d.consume(np.zeros(M))
    given = net.stock[d.us_nodes].sum(axis=0)
    np.testing.assert_allclose(given + d.stockpile, held, rtol=1e-14)  # conserved
    assert (d.stockpile >= 0.0).all(), d.stockpile
    assert col(model, "us_national_stockpile_t") >= 0.0


def test_the_us_sourcing_rule_moves_the_whole_chinese_share_of_us_programmes_at_once():
    model, net, d = _defense()
    src = model.sourcing
    share0 = net.share.copy()
    key = net.buy * M + net.mat
    totals0 = np.bincount(key, share0, minlength=net.n * M)
    d.ban_chinese_supply("US")
    us_mil = np.isin(net.buy, d.us_nodes)
    cn = net.region[net.sup] == CN
    assert share0[us_mil & cn].sum() > 0
    assert (net.share[us_mil & cn] == 0.0).all()
    assert (net.share[us_mil & ~cn] >= share0[us_mil & ~cn]).all()
    np.testing.assert_allclose(np.bincount(key, net.share, minlength=net.n * M), totals0, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(net.share[~us_mil], share0[~us_mil])  # nobody else moves
    groups = np.isin(src.g_buyer, d.us_nodes)
    assert (src.cn_share0[groups] == 0.0).all() and (src.cn_share0[~groups] > 0).any()
    # only to suppliers that exist: moved shares go where the programme already bought outside China
    moved_to = us_mil & ~cn & (net.share > share0)
    assert (net.cap[net.sup[moved_to], net.mat[moved_to]] > 0).all()


# ---------------------------------------------------------------------------------------- industry
def test_industrial_users_use_need_or_stock_and_the_record_is_the_share_outside_china():
    model = tiny_model()
    net, ind = model.net, model.industry
    need = net.need.ravel()[ind.flat].copy()
    frac = np.where(ind.group == 0, np.linspace(0.2, 1.5, ind.flat.size), 0.0)  # China's users get nothing
    net.stock.ravel()[ind.flat] = need * frac
    ledger = np.zeros(M)
    ind.consume(ledger)
    used = np.minimum(need * frac, need)
    np.testing.assert_allclose(ind.used, used, rtol=1e-15)
    ex = ind.group == 0
    assert col(model, "industry_output_share_ex_cn") == pytest.approx(used[ex].sum() / need[ex].sum(), rel=1e-14)
    assert ledger[NDFEB] + ledger[SMCO] == pytest.approx(used.sum(), rel=1e-14)
    nodes_ex = {n for n, r, _ in ind.users if r != "CN"}
    assert set(ind.flat[ex] // M) == nodes_ex


def test_industry_is_the_rest_of_chinas_exports_so_each_regions_chinese_demand_equals_them():
    model = tiny_model()
    net, cfg = model.net, model.cfg
    od = cfg.other_demand
    end = net.kind >= Kind.PLANT
    for reg in EXPORT_REGIONS:
        mine = end & (net.region == REGIONS.index(reg))
        chinese = (net.end_need[mine][:, [NDFEB, SMCO]].sum(1) * net.cn_share[mine]).sum()
        assert chinese * 365 == pytest.approx(od.cn_magnet_exports_t_per_year * od.export_share[reg], rel=1e-12)
    users = model.industry.users
    for reg in EXPORT_REGIONS:
        heavy, light = (n for n, r, g in users if r == reg and g in ("heavy", "light"))
        assert net.end_need[heavy, NDFEB] == pytest.approx(net.end_need[light, NDFEB], rel=1e-15)  # 50/50 grades
        assert net.heavy_grade[heavy] and not net.heavy_grade[light]
        smco = next(n for n, r, g in users if r == reg and g == "smco")
        assert net.end_need[smco, SMCO] * 365 == pytest.approx(od.smco_t_per_year[reg], rel=1e-12)
    cn_users = [n for n, r, _ in users if r == "CN"]
    assert net.end_need[cn_users, NDFEB].sum() * 365 == pytest.approx(od.cn_domestic_t_per_year, rel=1e-12)


def test_on_the_first_day_china_exports_what_2024_says_by_destination():
    model = tiny_model()
    model.step()
    od = model.cfg.other_demand
    total = 0.0
    for reg in EXPORT_REGIONS:
        want = od.cn_magnet_exports_t_per_year * od.export_share[reg] / 365
        assert col(model, f"cn_magnet_exports_to_{reg.lower()}_t") == pytest.approx(want, rel=1e-12)
        total += want
    assert col(model, "cn_magnet_exports_t") == pytest.approx(total, rel=1e-12)


def test_too_small_chinese_exports_for_a_regions_plants_and_programmes_is_a_config_error():
    with pytest.raises(ConfigError, match=r"other_demand\.export_share\.US: China's exports to US"):
        tiny_model("other_demand.cn_magnet_exports_t_per_year=1000")


def test_same_seed_same_programmes_and_same_consumption():
    def run(seed):
        model, net, d = _defense("defense.us_national_stockpile_t=20", seed=seed)
        r = np.random.default_rng(2)
        out = []
        for _ in range(10):
            net.stock[d.us_nodes] *= r.uniform(0.0, 0.9, net.stock[d.us_nodes].shape)
            d.consume(np.zeros(M))
            model.industry.consume(np.zeros(M))
            out.append(np.concatenate([net.stock.ravel(), d.stockpile, model.records.row]))
        return net, np.array(out)

    na, a = run(4)
    _, b = run(4)
    nc, _ = run(5)
    np.testing.assert_array_equal(a, b)
    progs = na.kind == Kind.DEFENSE
    assert not np.array_equal(na.end_need[progs], nc.end_need[progs])
