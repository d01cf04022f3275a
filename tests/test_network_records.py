"""The network's order book, transit and consumption, the record registry and the material balance, on tiny
worlds.

Maths (model/network.py): rate r_e = n_{b,m} σ_e; position P_e = S_{b,m} σ_e + B_e + T_e; order
max(r_e (c_b + L_e) - P_e, 0) added to the backlog; a shipment sent on day t with lead ℓ arrives on t + ℓ.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rareshock.model.builder import Pool
from rareshock.model.codes import CN, MATERIALS, REGIONS, Item, Kind, Material
from rareshock.model.config import ConfigError
from rareshock.model.network import M
from rareshock.model.records import Records
from tests.popworld import edges, empty, tiny_model

NDFEB = int(Material.NDFEB)


# ---------------------------------------------------------------------------------------- who supplies whom
def test_pool_assigns_home_suppliers_first_and_splits_large_needs_by_spare_room():
    us, jp = REGIONS.index("US"), REGIONS.index("JP")
    pool = Pool([10, 11, 12], [10.0, 10.0, 10.0], [us, jp, us])
    assert pool.assign(3.0, us) == [(10, 1.0)]  # small: one home supplier
    out = pool.assign(12.0, us)  # above half a supplier: split over home ones
    assert [n for n, _ in out] == [12, 10]  # most spare room first
    assert [w for _, w in out] == pytest.approx([10 / 17, 7 / 17], rel=1e-15)
    np.testing.assert_allclose(pool.load, [3 + 12 * 7 / 17, 0.0, 12 * 10 / 17], rtol=1e-15)
    out = pool.assign(6.0, us)  # home has 5 left: everyone, by spare room
    assert [n for n, _ in out] == [11, 12]
    assert [w for _, w in out] == pytest.approx(
        [10 / 12.94117647058824, 2.94117647058824 / 12.94117647058824], rel=1e-12
    )
    assert pool.assign(0.0, us) == [] and Pool([], [], []).assign(1.0, us) == []


def test_buyers_outside_china_buy_their_chinese_share_from_china_and_chinese_buyers_only_there():
    model = tiny_model()
    net = model.net
    cn_sup = net.region[net.sup] == CN
    key = net.buy * M + net.mat
    total = np.bincount(key, net.share, minlength=net.n * M).reshape(net.n, M)
    chinese = np.bincount(key, net.share * cn_sup, minlength=net.n * M).reshape(net.n, M)
    end = net.kind >= Kind.PLANT
    needs = net.end_need > 0
    np.testing.assert_allclose(total[end][needs[end]], 1.0, rtol=1e-12)
    for i in np.flatnonzero(end):
        for m in np.flatnonzero(needs[i]):
            want = 1.0 if net.region[i] == CN else net.cn_share[i]
            assert chinese[i, m] == pytest.approx(want, rel=1e-12)
    # makers outside China: half their NdPr from China, all their Dy/Tb (nobody else separates it yet)
    x_nd = (net.kind == Kind.MAKER) & (net.region != CN) & (net.cap[:, int(Material.NDFEB)] > 0)
    np.testing.assert_allclose(chinese[x_nd, int(Material.NDPR)], 0.5, rtol=1e-12)
    np.testing.assert_allclose(chinese[x_nd, int(Material.DYTB)], 1.0, rtol=1e-12)
    assert not (net.region[net.buy][~cn_sup] == CN).any()  # nobody outside China supplies China


def test_pool_gives_a_buyer_at_least_min_suppliers_by_spare_room():
    us = REGIONS.index("US")
    pool = Pool([10, 11, 12, 13], [10.0, 20.0, 10.0, 10.0], [us, us, us, us], min_suppliers=3)
    out = pool.assign(1.0, us)  # small, but a portfolio of three: the three with most room
    assert [n for n, _ in out] == [11, 10, 12]
    assert [w for _, w in out] == pytest.approx([0.5, 0.25, 0.25], rel=1e-15)
    assert sum(w for _, w in out) == pytest.approx(1.0, rel=1e-15)
    # never more suppliers than there are
    assert len(Pool([1, 2], [5.0, 5.0], [us, us], min_suppliers=5).assign(1.0, us)) == 2


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_each_buyers_chinese_need_is_spread_over_a_portfolio_of_chinese_makers(k):
    """``sourcing.cn_suppliers_per_buyer``: every end user's Chinese magnet supply (loose magnets, and
    separately what comes inside China-made parts) comes from at least k Chinese makers, or from all of
    them when there are fewer (4 NdFeB makers and 1 SmCo maker in the tiny world)."""
    model = tiny_model(f"sourcing.cn_suppliers_per_buyer={k}")
    net = model.net
    cn_sup = net.region[net.sup] == CN
    n_makers = {
        m: np.count_nonzero((net.kind == Kind.MAKER) & (net.region == CN) & (net.cap[:, m] > 0)) for m in (3, 4)
    }
    assert n_makers == {int(Material.NDFEB): 4, int(Material.SMCO): 1}
    seen = 0
    for b in np.flatnonzero(net.kind >= Kind.PLANT):
        for m in np.flatnonzero(net.end_need[b] > 0):
            mine = (net.buy == b) & (net.mat == m) & cn_sup & (net.share > 0)
            for chunk in (mine & (net.item == Item.NDFEB_IN_PARTS), mine & (net.item != Item.NDFEB_IN_PARTS)):
                if chunk.any():
                    sups = set(net.sup[chunk])
                    assert len(sups) == np.count_nonzero(chunk)  # one relationship per supplier and route
                    assert len(sups) >= min(k, n_makers[m]), (b, m)
                    seen += 1
    assert seen > 40


def test_portfolios_change_who_supplies_whom_not_how_much():
    a, b = tiny_model("sourcing.cn_suppliers_per_buyer=1"), tiny_model("sourcing.cn_suppliers_per_buyer=3")
    for net in (a.net, b.net):
        key = net.buy * M + net.mat
        total = np.bincount(key, net.share, minlength=net.n * M)
        cn = np.bincount(key, net.share * (net.region[net.sup] == CN), minlength=net.n * M)
        end = np.flatnonzero((net.end_need.ravel() > 0) & np.repeat(net.kind >= Kind.PLANT, M))
        np.testing.assert_allclose(total[end], 1.0, rtol=1e-12)
        np.testing.assert_allclose(
            cn[end], np.where(net.region[end // M] == CN, 1.0, net.cn_share[end // M]), rtol=1e-12
        )
    end = a.net.kind >= Kind.PLANT
    np.testing.assert_array_equal(a.net.need[end], b.net.need[end])
    # a portfolio of Chinese suppliers: who supplies outside China does not change
    x_rel = lambda net: sorted(
        (int(s), int(b), int(m), float(w))
        for s, b, m, w in zip(net.sup, net.buy, net.mat, net.share)
        if net.region[s] != CN and net.kind[b] >= Kind.PLANT
    )
    assert x_rel(a.net) == x_rel(b.net)
    cn_edges = lambda net: np.count_nonzero(
        (net.region[net.sup] == CN) & (net.share > 0) & (net.kind[net.buy] >= Kind.PLANT)
    )
    assert cn_edges(b.net) > cn_edges(a.net)


def test_china_made_parts_carry_the_parts_cn_assembly_share_of_its_chinese_supply():
    """A plant's part outside China: its China-made column buys only ``ndfeb_in_parts`` from Chinese makers
    (standing orders), ``cn_supply_share x cn_assembly_share`` of the part's magnets; its local column buys
    the rest of the Chinese share loose (``ndfeb_heavy`` or ``ndfeb_light`` by the part's grade) and the
    non-Chinese share loose. Chinese plants, programmes and industrial users buy loose magnets only."""
    model = tiny_model()
    net, pl, am = model.net, model.plants, model.cfg.automakers
    cn_sup = net.region[net.sup] == CN
    checked = 0
    for p in range(pl.region.size):
        reg = REGIONS[pl.region[p]]
        cs = getattr(am, reg).cn_supply_share
        for name in pl.part_names:
            part = am.parts[name]
            loose_item = Item.NDFEB_HEAVY if part.grade == "heavy" else Item.NDFEB_LIGHT
            local = pl.nodes[p, pl.columns.index((name, "local"))]
            cn_made = pl.nodes[p, pl.columns.index((name, "cn_made"))]
            es = net.buy == local
            assert not (es & (net.item == Item.NDFEB_IN_PARTS)).any() and not net.standing[es].any()
            assert (net.item[es] == loose_item).all()
            if reg == "CN":
                assert cn_made == -1
                continue
            made = cs * part.cn_assembly_share
            need = net.need[local, NDFEB] + net.need[cn_made, NDFEB]
            assert net.need[cn_made, NDFEB] == pytest.approx(need * made, rel=1e-12)
            mine = (net.buy == cn_made) & (net.share > 0)  # (a zero-share edge to a home maker, for derisking)
            assert (net.item[mine] == Item.NDFEB_IN_PARTS).all() and cn_sup[mine].all() and net.standing[mine].all()
            assert net.share[mine].sum() == pytest.approx(1.0, rel=1e-12)
            # the local column: the rest of the Chinese share, and the non-Chinese share, as loose magnets
            assert net.need[local, NDFEB] * net.share[es & cn_sup].sum() == pytest.approx(need * (cs - made), rel=1e-9)
            assert net.need[local, NDFEB] * net.share[es & ~cn_sup].sum() == pytest.approx(need * (1 - cs), rel=1e-9)
            checked += 1
    assert checked == 3 * np.count_nonzero(pl.region != CN)
    others = np.isin(net.buy, np.flatnonzero(net.kind > Kind.PLANT)) | (net.kind[net.buy] <= Kind.MAKER)
    assert not (others & (net.item == Item.NDFEB_IN_PARTS)).any()
    # no assembly share: every Chinese magnet travels loose
    model = tiny_model(
        "automakers.parts.chassis.cn_assembly_share=0",
        "automakers.parts.small_motors.cn_assembly_share=0",
        "automakers.parts.traction.cn_assembly_share=0",
    )
    assert not (model.net.item == Item.NDFEB_IN_PARTS).any()
    assert all(route == "local" for _, route in model.plants.columns)


def test_demand_beyond_capacity_is_a_config_error():
    with pytest.raises(ConfigError, match="magnet_makers: baseline demand for ndfeb on CN magnet_makers exceeds"):
        tiny_model("magnet_makers.cn_ndfeb_capacity_t_per_year=100000")
    with pytest.raises(ConfigError, match="separators: baseline demand for dytb_oxide on CN separators exceeds"):
        tiny_model("separators.cn_dytb_t_per_year=1000")


# ---------------------------------------------------------------------------------------- order book
def test_orders_are_order_up_to_by_the_formula_on_every_edge():
    model = tiny_model()
    net = model.net
    r = np.random.default_rng(3)
    net.stock[:] *= r.uniform(0.0, 2.0, net.stock.shape)
    net.backlog[:] = r.uniform(0.0, 5.0, net.e)
    net.transit[:] *= r.uniform(0.0, 2.0, net.e)
    net.need[:] *= r.uniform(0.5, 1.5, net.need.shape)
    net.lead_now[:] = np.where(r.random(net.e) < 0.3, 4, net.lead_sea)  # some edges ship by air today
    b0, s0, t0 = net.backlog.copy(), net.stock.copy(), net.transit.copy()
    rate = net.need.ravel()[net.buy_flat] * net.share
    position = s0.ravel()[net.buy_flat] * net.share + b0 + t0
    order = np.maximum(rate * (net.cover_days[net.buy] + net.lead_now) - position, 0.0)
    # standing orders (magnets inside China-made parts): the edge's rate, less what still waits to ship
    order = np.where(net.standing, np.maximum(rate - b0, 0.0), order)
    assert net.standing.any() and (net.standing == (net.item == Item.NDFEB_IN_PARTS)).all()
    net.place_orders()
    np.testing.assert_array_equal(net.order_rate, rate)
    np.testing.assert_array_equal(net.backlog, b0 + order)
    np.testing.assert_array_equal(net.stock, s0)  # ordering moves nothing
    np.testing.assert_array_equal(net.transit, t0)
    np.testing.assert_array_equal(net.rate(), rate)
    assert (order > 0).any() and (order == 0).any()


def test_one_order_by_hand():
    model = tiny_model()
    net = model.net
    empty(net)
    plant = model.plants.nodes[0, 0]
    e = edges(net, buy=plant, mat=NDFEB)
    e = e[net.share[e] > 0][0]
    n, c, L, sigma = net.need[plant, NDFEB], net.cover_days[plant], net.lead_sea[e], net.share[e]
    net.stock[plant, NDFEB] = 2.0 * n
    net.backlog[e] = 0.5 * n
    net.transit[e] = 3.0 * n
    net.place_orders()
    expect = n * sigma * (c + L) - (2.0 * n * sigma + 0.5 * n + 3.0 * n)
    assert expect > 0
    assert net.backlog[e] == pytest.approx(0.5 * n + expect, rel=1e-14)
    # an over-supplied position orders nothing
    net.transit[e] = 1e6
    before = net.backlog[e]
    net.place_orders()
    assert net.backlog[e] == before


# ---------------------------------------------------------------------------------------- transit
def test_a_shipment_arrives_exactly_after_its_lead_time_and_transit_is_the_pipe():
    model = tiny_model()
    net, prod = model.net, model.producers
    empty(net)
    plant = model.plants.nodes[0, 0]
    e = edges(net, buy=plant, mat=NDFEB)
    e = e[net.share[e] > 0][0]
    s = net.sup[e]
    net.backlog[e] = 4.0
    net.stock[s, NDFEB] = 4.0
    net.stock[plant, NDFEB] = 1e6  # not short: by sea
    lead = int(net.lead_sea[e])
    day0 = 158  # sent just before the ring wraps
    prod.produce()
    prod.ship(day0)
    assert net.transit[e] == 4.0
    for d in range(day0, day0 + lead + 2):
        net.receive(d)
        arrived = d == day0 + lead
        assert net.arrivals[e] == (4.0 if arrived else 0.0)
        assert net.transit[e] == (0.0 if d >= day0 + lead else 4.0)
        np.testing.assert_array_equal(net.pipe.sum(axis=0), net.transit)
    assert net.stock[plant, NDFEB] == 1e6 + 4.0
    assert net.arrivals.sum() == 0.0


def test_steady_state_start_pipeline_stock_and_orders():
    model = tiny_model()
    net = model.net
    rate = net.rate()
    end = net.kind >= Kind.PLANT
    np.testing.assert_array_equal(net.stock[end], net.need[end] * (net.cover_days[end] - 1.0)[:, None])
    np.testing.assert_array_equal(net.transit, rate * net.lead_sea)
    np.testing.assert_array_equal(net.backlog, rate)
    h = net.pipe.shape[0]
    for e in range(0, net.e, 7):
        due = np.flatnonzero(net.pipe[:, e])
        if rate[e] > 0:
            assert due.tolist() == list(range(net.lead_sea[e]))  # one day's rate for each of the days
            assert (net.pipe[due, e] == rate[e]).all()
        else:
            assert due.size == 0
    assert h > net.lead_sea.max() + 60
    flow = np.bincount(net.sup_flat, rate, minlength=net.n * M).reshape(net.n, M)
    np.testing.assert_array_equal(net.out_rate, flow)
    prod = net.kind <= Kind.MAKER
    np.testing.assert_allclose(
        net.stock[prod],
        net.need[prod] * np.maximum(net.cover_days[prod] - 1, 0)[:, None]
        + flow[prod] * net.target_stock_days[prod][:, None],
        rtol=1e-15,
    )


def test_a_day_without_events_leaves_the_steady_state_where_it_was():
    model = tiny_model("shipping.air_freight=false")
    net = model.net
    s0, b0, t0 = net.stock.copy(), net.backlog.copy(), net.transit.copy()
    for _ in range(3):
        model.step()
    np.testing.assert_allclose(net.stock, s0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(net.backlog, b0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(net.transit, t0, rtol=1e-9, atol=1e-9)
    assert model.records.column("auto_plants_idle_us")[:3].tolist() == [0, 0, 0]


def test_consumption_is_the_smaller_of_stock_and_need():
    model = tiny_model()
    net, ind = model.net, model.industry
    flat = ind.flat
    need = net.need.ravel()[flat].copy()
    stock = need * np.linspace(0.0, 2.0, flat.size)
    net.stock.ravel()[flat] = stock
    used, by_group, ledger = np.zeros(flat.size), np.zeros(2), np.zeros(M)
    net.consume(flat, ind.group, ind.mat, used, by_group, ledger)
    np.testing.assert_array_equal(used, np.minimum(stock, need))
    np.testing.assert_array_equal(net.stock.ravel()[flat], stock - used)
    assert by_group[0] == pytest.approx(used[ind.group == 0].sum(), rel=1e-15)
    assert by_group[1] == pytest.approx(used[ind.group == 1].sum(), rel=1e-15)
    for m in range(M):
        assert ledger[m] == pytest.approx(used[ind.mat == m].sum(), rel=1e-15, abs=0)


# ---------------------------------------------------------------------------------------- records
class _Owner:
    def __init__(self, cols, integer=(), start=None):
        self.COLUMNS = cols
        if integer:
            self.INTEGER_COLUMNS = integer
        self._start = start

    def start_record(self):
        if self._start is not None:
            self.row[self.at] = self._start


def test_the_registry_refuses_a_column_registered_twice():
    with pytest.raises(ValueError, match=r"registered twice: \['b'\]"):
        Records(3, [_Owner(("a", "b")), _Owner(("b", "c"))])
    with pytest.raises(ValueError, match="registered twice"):
        Records(3, [_Owner(("a", "a"))])


def test_owners_write_at_their_offset_and_the_frame_has_dates_and_integer_counts():
    a, b, c = _Owner(("x", "n"), integer=("n",), start=7.0), _Owner(("y",)), _Owner(("k", "z"), integer=("k",))
    rec = Records(4, [a, b, c])
    assert (a.at, b.at, c.at) == (0, 2, 3)
    assert a.row is rec.row is c.row
    assert rec.row[0] == 7.0  # start_record wrote at registration
    for day in range(4):
        a.row[a.at + 1] = day + 0.0
        b.row[b.at] = 0.5 * day
        c.row[c.at] = 2.0 * day
        c.row[c.at + 1] = -day
        rec.write(day)
    df = rec.frame(dt.date(2025, 12, 30))
    assert list(df.columns) == ["date", "x", "n", "y", "k", "z"]
    assert df["date"].tolist() == list(pd.date_range("2025-12-30", periods=4, freq="D"))
    assert df["n"].dtype == np.int64 and df["k"].dtype == np.int64
    assert df["x"].dtype == np.float64 and df["y"].dtype == np.float64
    assert df["n"].tolist() == [0, 1, 2, 3] and df["k"].tolist() == [0, 2, 4, 6]
    assert df["x"].tolist() == [7.0] * 4  # columns not rewritten keep their value
    np.testing.assert_array_equal(rec.column("y"), [0.0, 0.5, 1.0, 1.5])
    assert len(rec.frame(dt.date(2025, 1, 1), days=2)) == 2


def test_the_models_frame_keeps_counts_as_integers():
    model = tiny_model(end="2025-01-10")
    for _ in range(model.n_days):
        model.step()
    df = model.records.frame(model.start)
    assert df.columns[0] == "date" and df["date"].iloc[-1] == pd.Timestamp("2025-01-10")
    for c in (*model.plants.INTEGER_COLUMNS, *model.licensing.COLUMNS):
        assert df[c].dtype == np.int64, c
    assert df["cn_reviewers"].iloc[0] == model.cfg.licensing.cn.reviewers
    assert set(df.columns[1:]) == set(model.records.columns) and len(df.columns) == len(model.records.columns) + 1


# ---------------------------------------------------------------------------------------- material balance
def test_the_material_balance_closes_every_day_under_a_shock():
    """produced - consumed = change of (stock + stockpile + transit), by material, every day; the record's
    stock is the network's plus the stockpile."""
    cfg_overrides = (
        "defense.us_national_stockpile_t=500",
        "defense.stockpile_release_trigger_days=200",
        "licensing.cn.p_approve_civil=0",  # no licences: plants run short within the quarter
    )
    model = tiny_model(*cfg_overrides, end="2025-03-31")
    net = model.net
    model.licensing.set_controls(["dytb_oxide", "ndfeb_heavy", "smco"], True)
    held0 = net.stock.sum(axis=0) + model.defense.stockpile + np.bincount(net.mat, net.transit, minlength=M)
    flow = np.zeros(M)
    for day in range(model.n_days):
        model.step()
        rec = model.records
        made = np.array([rec.data[day, rec.index[f"produced_{m}_t"]] for m in MATERIALS])
        used = np.array([rec.data[day, rec.index[f"consumed_{m}_t"]] for m in MATERIALS])
        stock = np.array([rec.data[day, rec.index[f"stock_{m}_t"]] for m in MATERIALS])
        moving = np.array([rec.data[day, rec.index[f"transit_{m}_t"]] for m in MATERIALS])
        flow += made - used
        np.testing.assert_allclose(stock + moving, held0 + flow, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(stock, net.stock.sum(axis=0) + model.defense.stockpile, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(moving, np.bincount(net.mat, net.transit, minlength=M), rtol=1e-12, atol=1e-12)
    assert model.defense.stockpile.sum() < 500  # the stockpile was drawn on
    short = model.records.column("auto_plants_idle_us") + model.records.column("auto_plants_below_plan_us")
    assert short.max() > 0  # and scarcity was real
    assert model.balance.end_use.sum() == 0.0  # the ledger is reset each night


def test_the_ledger_counts_every_end_users_use():
    model = tiny_model()
    for _ in range(2):
        model.step()
    day = 1
    rec = model.records
    consumed = rec.data[day, rec.index["consumed_ndfeb_t"]]
    ends = (
        model.plants.used.sum()
        + model.defense.used[model.defense.mat == NDFEB].sum()
        + model.industry.used[model.industry.mat == NDFEB].sum()
    )
    assert consumed == pytest.approx(ends + model.producers.used_in[NDFEB], rel=1e-12)
    assert model.plants.used.sum() > 0 and model.defense.used.sum() > 0 and model.industry.used.sum() > 0
