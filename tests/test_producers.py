"""Separators and magnet makers on their own: ``Producers.produce`` and ``Producers.ship`` driven on an
emptied tiny world with stocks, orders and licences set by hand.

Maths (agents/producers.py): wanted output w = clip(ō D + Q - S, 0, K); made = w min(1, min_k S_k / (w a_k));
allocation: domestic buyers first (r0 = min(1, S/d0)), then the rest pro rata (r1 = min(1, (S - d0 r0)/d1)).
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.model.codes import CN, REGIONS, Kind, Material
from rareshock.model.network import M
from tests.popworld import cn_nodes, col, edges, empty, makers, tiny_model

NDPR, DYTB, SM, NDFEB, SMCO = (int(m) for m in Material)


def _world(*overrides, seed=0):
    model = tiny_model(*overrides, seed=seed)
    empty(model.net)
    return model, model.net, model.producers


def _cn_maker(net):
    """A Chinese NdFeB maker with a domestic buyer and at least two foreign ones."""
    for p in makers(net, NDFEB, "CN"):
        es = edges(net, sup=p, mat=NDFEB)
        if net.domestic[es].sum() >= 1 and (~net.domestic[es]).sum() >= 2:
            return p, es[net.domestic[es]], es[~net.domestic[es]]
    raise AssertionError("no suitable maker in the tiny world")


def _pos(prod, node, mat):
    return int(np.flatnonzero(prod.flat == node * M + mat)[0])


# ---------------------------------------------------------------------------------------- production
def test_output_is_limited_by_capacity_and_inputs_are_drawn_by_the_recipe():
    model, net, prod = _world()
    p, dom, exp = _cn_maker(net)
    cap = net.cap[p, NDFEB]
    net.backlog[exp[0]] = 10 * cap  # customers want ten days of capacity
    net.stock[p, NDPR], net.stock[p, DYTB] = 1000.0, 1000.0
    before = net.prod_rate[p, NDFEB]
    prod.produce()
    assert net.stock[p, NDFEB] == cap
    assert net.stock[p, NDPR] == 1000.0 - cap * 0.31 and net.stock[p, DYTB] == 1000.0 - cap * 0.02
    assert prod.made[NDFEB] == cap and prod.made.sum() == cap  # nobody else made anything
    assert prod.used_in[NDPR] == cap * 0.31 and prod.used_in[DYTB] == cap * 0.02
    assert prod.used_in[[SM, NDFEB, SMCO]].sum() == 0.0
    # smoothed production moves 1/30 of the way; the input need (what it orders) follows it
    p_bar = before + (cap - before) * (1 / 30)
    assert net.prod_rate[p, NDFEB] == p_bar
    assert net.need[p, NDPR] == p_bar * 0.31 and net.need[p, DYTB] == p_bar * 0.02


def test_the_scarcest_input_limits_output():
    model, net, prod = _world()
    p, dom, exp = _cn_maker(net)
    q = 20.0
    net.backlog[exp[0]] = q
    net.stock[p, NDPR] = 1000.0
    net.stock[p, DYTB] = 0.25 * q * 0.02  # a quarter of the Dy/Tb for the order
    prod.produce()
    assert net.stock[p, NDFEB] == pytest.approx(0.25 * q, rel=1e-15)
    assert net.stock[p, DYTB] == pytest.approx(0.0, abs=1e-15)
    assert net.stock[p, NDPR] == pytest.approx(1000.0 - 0.25 * q * 0.31, rel=1e-15)
    # the other input scarcer: NdPr for 40%
    model, net, prod = _world()
    net.backlog[exp[0]] = q
    net.stock[p, NDPR] = 0.4 * q * 0.31
    net.stock[p, DYTB] = 1000.0
    prod.produce()
    assert net.stock[p, NDFEB] == pytest.approx(0.4 * q, rel=1e-15)
    # no input at all, nothing made
    model, net, prod = _world()
    net.backlog[exp[0]] = q
    net.stock[p, NDPR] = 1000.0
    prod.produce()
    assert net.stock[p, NDFEB] == 0.0 and prod.made.sum() == 0.0 and net.stock[p, NDPR] == 1000.0


def test_makers_produce_to_their_target_stock_plus_orders_never_less_than_zero():
    model, net, prod = _world()
    p, dom, exp = _cn_maker(net)
    tsd = model.cfg.magnet_makers.target_stock_days
    net.out_rate[p, NDFEB] = 2.0
    net.backlog[exp[0]] = 5.0
    net.stock[p, NDFEB] = 50.0
    net.stock[p, NDPR] = net.stock[p, DYTB] = 1000.0
    prod.produce()
    made = 2.0 * tsd + 5.0 - 50.0  # target 2 x tsd, plus orders, less stock
    assert net.stock[p, NDFEB] == 2.0 * tsd + 5.0
    assert prod.made[NDFEB] == made
    # stock above target and orders: nothing made, nothing drawn
    net.stock[p, NDFEB] = 100.0
    prod.produce()
    assert prod.made.sum() == 0.0 and net.stock[p, NDFEB] == 100.0
    assert net.stock[p, NDPR] == pytest.approx(1000.0 - made * 0.31, rel=1e-15)


def test_separators_need_no_inputs_and_produce_within_capacity():
    model, net, prod = _world()
    s = cn_nodes(net, Kind.SEPARATOR)[0]
    es = edges(net, sup=s, mat=DYTB)
    net.backlog[es[0]] = 3.0
    net.backlog[edges(net, sup=s, mat=NDPR)[0]] = 1e6
    prod.produce()
    assert net.stock[s, DYTB] == 3.0
    assert net.stock[s, NDPR] == net.cap[s, NDPR]
    assert prod.used_in.sum() == 0.0


# ---------------------------------------------------------------------------------------- allocation
@pytest.mark.parametrize(
    "stock, expect",
    [
        (100.0, (10.0, 20.0, 30.0)),  # enough for all
        (35.0, (10.0, 10.0, 15.0)),  # domestic in full, exports half each (pro rata)
        (5.0, (5.0, 0.0, 0.0)),  # domestic first: half of it, exports nothing
    ],
)
def test_allocation_serves_domestic_buyers_first_then_the_rest_pro_rata(stock, expect):
    model, net, prod = _world()
    p, dom, exp = _cn_maker(net)
    e = [dom[0], exp[0], exp[1]]
    net.backlog[e] = (10.0, 20.0, 30.0)
    net.stock[p, NDFEB] = stock  # no inputs: nothing is produced today
    prod.produce()
    assert prod.made.sum() == 0.0
    prod.ship(0)
    np.testing.assert_allclose(prod.ship_today[e], expect, rtol=1e-15)
    assert prod.ship_today.sum() == pytest.approx(sum(expect), rel=1e-15)
    np.testing.assert_allclose(net.backlog[e], np.array([10.0, 20.0, 30.0]) - expect, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(net.transit[e], expect, rtol=1e-15)
    assert net.stock[p, NDFEB] == pytest.approx(max(stock - 60.0, 0.0), abs=1e-14)
    # smoothed shipments move 1/30 of the way to today's
    assert net.out_rate[p, NDFEB] == pytest.approx(sum(expect) / 30, rel=1e-15)


def test_licensed_relationships_ship_at_most_the_licensed_volume_left():
    model, net, prod = _world()
    p, dom, exp = _cn_maker(net)
    lic, free = exp[0], exp[1]
    controlled = np.zeros(net.e, dtype=bool)
    controlled[lic] = True
    net.set_controlled(controlled)
    net.licence_left[lic] = 5.0
    net.licence_left[free] = 3.0  # a licence on an uncontrolled edge does not bind
    net.backlog[[lic, free]] = 20.0
    net.stock[p, NDFEB] = 100.0
    prod.produce()
    assert prod.shippable[lic] == 5.0 and prod.shippable[free] == 20.0
    prod.ship(0)
    assert prod.ship_today[lic] == 5.0 and prod.ship_today[free] == 20.0
    assert net.licence_left[lic] == 0.0 and net.backlog[lic] == 15.0
    assert net.licence_left[free] == 3.0 and net.backlog[free] == 0.0
    # the next day nothing more leaves on the licensed edge
    prod.produce()
    prod.ship(1)
    assert prod.ship_today[lic] == 0.0 and net.backlog[lic] == 15.0


def test_production_only_answers_orders_that_may_ship():
    model, net, prod = _world()
    p, dom, exp = _cn_maker(net)
    controlled = np.zeros(net.e, dtype=bool)
    controlled[exp[0]] = True
    net.set_controlled(controlled)
    net.licence_left[exp[0]] = 4.0
    net.backlog[exp[0]] = 50.0
    net.stock[p, NDPR] = net.stock[p, DYTB] = 1000.0
    prod.produce()
    assert prod.made[NDFEB] == 4.0 and prod.demand[_pos(prod, p, NDFEB)] == 4.0


# ---------------------------------------------------------------------------------------- shipping
def test_short_buyers_get_air_freight_when_it_is_faster_others_wait_for_the_ship():
    model, net, prod = _world("shipping.air_days=4", "shipping.air_trigger_cover_days=10")
    p, dom, exp = _cn_maker(net)
    sea = exp[net.lead_sea[exp] > 4]
    short, long_ = sea[0], sea[1]
    h = net.pipe.shape[0]
    need = lambda e: net.need[net.buy[e], NDFEB]
    net.stock[net.buy[short], NDFEB] = 9.99 * need(short)  # below 10 days: air
    net.stock[net.buy[long_], NDFEB] = 10.0 * need(long_)  # at 10 days: sea
    net.backlog[[short, long_, dom[0]]] = 7.0
    net.stock[p, NDFEB] = 100.0
    day = 150  # the ring wraps
    prod.produce()
    prod.ship(day)
    assert net.pipe[(day + 4) % h, short] == 7.0
    assert net.pipe[(day + net.lead_sea[long_]) % h, long_] == 7.0
    assert net.pipe[(day + net.lead_sea[dom[0]]) % h, dom[0]] == 7.0  # domestic: 3 days, sea
    assert net.pipe.sum() == 21.0
    # customs friction on a licensed edge is added either way
    model, net, prod = _world("shipping.air_days=4", "licensing.cn.customs_days=7")
    model.licensing.set_controls(["ndfeb_heavy", "ndfeb_light"], True)
    assert net.extra_lead[short] == 7 and net.extra_lead[long_] == 7
    net.licence_left[[short, long_]] = 100.0
    net.stock[net.buy[short], NDFEB] = 0.0
    net.stock[net.buy[long_], NDFEB] = 1e6
    net.backlog[[short, long_]] = 7.0
    net.stock[p, NDFEB] = 100.0
    prod.produce()
    prod.ship(0)
    assert net.pipe[4 + 7, short] == 7.0
    assert net.pipe[net.lead_sea[long_] + 7, long_] == 7.0
    # without air freight, short buyers wait for the ship too
    model, net, prod = _world("shipping.air_freight=false")
    net.backlog[short] = 7.0
    net.stock[p, NDFEB] = 100.0
    prod.produce()
    prod.ship(0)
    assert net.pipe[net.lead_sea[short], short] == 7.0


def test_exports_are_recorded_by_destination():
    model, net, prod = _world()
    cn_exp = net.cn_export & ((net.mat == NDFEB) | (net.mat == SMCO))
    x = np.linspace(1.0, 2.0, net.e)
    net.backlog[:] = x  # every relationship has orders
    net.stock[:] = 1e6  # and every supplier plenty of stock
    prod.produce()
    prod.ship(0)
    np.testing.assert_array_equal(prod.ship_today, x)
    total = 0.0
    for reg in ("US", "EU", "JP", "IN", "ROW"):
        sel = cn_exp & (net.region[net.buy] == REGIONS.index(reg))
        assert sel.any()
        assert col(model, f"cn_magnet_exports_to_{reg.lower()}_t") == pytest.approx(x[sel].sum(), rel=1e-14)
        total += x[sel].sum()
    assert col(model, "cn_magnet_exports_t") == pytest.approx(total, rel=1e-14)
    dy = net.cn_export & (net.mat == DYTB)
    assert col(model, "cn_dytb_oxide_exports_t") == pytest.approx(x[dy].sum(), rel=1e-14)
    # non-Chinese suppliers' shipments and China's domestic ones are no exports
    assert total < x[(net.mat == NDFEB) | (net.mat == SMCO)].sum()


# ---------------------------------------------------------------------------------------- conservation
@pytest.mark.parametrize("scarce", [False, True])
def test_produce_and_ship_conserve_material(scarce):
    """stock + transit changes by made - inputs used, by material (also on the scarce path)."""
    model = tiny_model()
    net, prod = model.net, model.producers
    if scarce:
        net.stock[cn_nodes(net, Kind.MAKER)] *= 0.01  # Chinese makers short of everything
        net.backlog *= 3.0
    for day in range(3):
        before = net.stock.sum(axis=0) + np.bincount(net.mat, net.transit, minlength=M)
        prod.produce()
        prod.ship(day)
        after = net.stock.sum(axis=0) + np.bincount(net.mat, net.transit, minlength=M)
        np.testing.assert_allclose(after - before, prod.made - prod.used_in, rtol=0, atol=1e-9)
        np.testing.assert_allclose(net.pipe.sum(axis=0), net.transit, rtol=1e-12, atol=1e-12)
        assert net.stock.min() >= 0.0 and net.backlog.min() >= 0.0
        net.receive(day)


# ---------------------------------------------------------------------------------------- building
def test_producers_from_config_capacity_totals_and_recipe():
    model = tiny_model("magnet_makers.cn_makers=12")
    net, prod, mm, sp = model.net, model.producers, model.cfg.magnet_makers, model.cfg.separators
    cn_sep = cn_nodes(net, Kind.SEPARATOR)
    assert cn_sep.size == sp.cn_separators
    for m, total in ((NDPR, sp.cn_ndpr_t_per_year), (DYTB, sp.cn_dytb_t_per_year), (SM, sp.cn_sm_t_per_year)):
        assert net.cap[cn_sep, m].sum() * 365 == pytest.approx(total, rel=1e-12)
    cn_nd, cn_smco = makers(net, NDFEB, "CN"), makers(net, SMCO, "CN")
    assert cn_nd.size == 12 and cn_smco.size == 1  # one SmCo maker per ten
    assert net.cap[cn_nd, NDFEB].sum() * 365 == pytest.approx(mm.cn_ndfeb_capacity_t_per_year, rel=1e-12)
    for reg, total in mm.ndfeb_capacity_t_per_year.items():
        mine = makers(net, NDFEB, reg)
        assert mine.size == mm.makers_per_region[reg]
        np.testing.assert_allclose(net.cap[mine, NDFEB] * 365, total / mine.size, rtol=1e-12)
    r = prod.recipe()
    assert r[NDFEB, NDPR] == 0.31 and r[NDFEB, DYTB] == 0.02 and r[SMCO, SM] == 0.30
    assert np.count_nonzero(r) == 3
    assert (net.cover_days[cn_nd] == mm.input_cover_days_cn).all()
    assert (net.target_stock_days[cn_sep] == sp.target_stock_days).all()
    assert (net.region[cn_sep] == CN).all()


def test_same_state_same_shipments_and_seeds_change_chinese_sizes_only():
    def run(seed):
        model = tiny_model(seed=seed)
        net, prod = model.net, model.producers
        net.stock[cn_nodes(net, Kind.MAKER)] *= 0.2
        out = []
        for day in range(5):
            prod.produce()
            prod.ship(day)
            net.receive(day)
            net.place_orders()
            out.append(
                np.concatenate([net.stock.ravel(), net.backlog, net.transit, prod.ship_today, model.records.row])
            )
        return net, np.array(out)

    na, a = run(1)
    _, b = run(1)
    nc, _ = run(2)
    np.testing.assert_array_equal(a, b)
    x_producers = (na.region != CN) & (na.kind <= Kind.MAKER)  # same layout in both worlds
    np.testing.assert_array_equal(na.cap[x_producers], nc.cap[x_producers])
    assert not np.array_equal(na.cap[na.region == CN], nc.cap[nc.region == CN])
