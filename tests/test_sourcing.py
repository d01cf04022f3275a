"""How buyers split orders between Chinese and other suppliers, on their own: ``Sourcing.review`` (switching
when stalled), ``Sourcing.derisk`` (offtakes for spare capacity), ``Sourcing.update_content`` (non-Chinese
content) and the US arrival columns, on a tiny world with backlogs and spare capacity set by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.model.codes import CN, REGIONS, Kind, Material
from rareshock.model.network import M
from tests.popworld import col, makers, tiny_model

NDPR, DYTB, SM, NDFEB, SMCO = (int(m) for m in Material)


def _world(*overrides, seed=0):
    model = tiny_model(*overrides, seed=seed)
    net, src = model.net, model.sourcing
    net.backlog[:] = 0.0
    net.order_rate[:] = net.rate()
    return model, net, src


def _group(net, src, kind, region, mat, min_x=1):
    """A (buyer, material) group of the given kind with at least ``min_x`` non-Chinese suppliers it buys from."""
    for g in range(src.n_groups):
        b = src.g_buyer[g]
        es = src.edges[src.group == g]
        x = es[(net.region[net.sup[es]] != CN) & (net.share[es] > 0)]
        if net.kind[b] == kind and net.region[b] == REGIONS.index(region) and src.g_mat[g] == mat and x.size >= min_x:
            return g, es
    raise AssertionError("no such group in the tiny world")


def _cn_share(net, src):
    return np.bincount(src.group, net.share[src.edges] * src.cnf, minlength=src.n_groups)


def _totals(net):
    return np.bincount(net.buy * M + net.mat, net.share, minlength=net.n * M)


def _stall(net, src, g, days=22.0):
    es = src.edges[src.group == g]
    cn = es[net.region[net.sup[es]] == CN]
    net.backlog[cn] = net.order_rate[cn] * days
    return cn


# ---------------------------------------------------------------------------------------- switching
def test_a_stalled_buyer_moves_switch_share_per_day_times_review_days_at_each_review():
    model, net, src = _world(
        "sourcing.switch_share_per_day=0.002", "sourcing.review_days=7", "sourcing.switch_trigger_days=21"
    )
    g, es = _group(net, src, Kind.PLANT, "JP", NDFEB, min_x=3)
    share0, totals0, cn0 = net.share.copy(), _totals(net), _cn_share(net, src)
    _stall(net, src, g, days=20.9)  # waiting less than 21 days of flow: not stalled
    src.review(0)
    np.testing.assert_array_equal(net.share, share0)
    _stall(net, src, g, days=21.5)
    src.review(3)  # not a review day
    np.testing.assert_array_equal(net.share, share0)
    src.review(7)
    cn_now = _cn_share(net, src)
    assert cn_now[g] == pytest.approx(cn0[g] - 0.014, rel=1e-14)
    others = np.arange(src.n_groups) != g
    np.testing.assert_array_equal(cn_now[others], cn0[others])
    # the moved share goes to the buyer's non-Chinese suppliers in proportion to what each had
    x = es[(net.region[net.sup[es]] != CN)]
    gain = net.share[x] - share0[x]
    np.testing.assert_allclose(gain / gain.sum(), share0[x] / share0[x].sum(), rtol=1e-12)
    assert gain.sum() == pytest.approx(0.014, rel=1e-12)
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-14, atol=1e-16)
    assert src.changes == 1


def test_switching_stops_at_switch_max_share_of_the_original_chinese_share():
    model, net, src = _world("sourcing.switch_max_share=0.3")
    g, es = _group(net, src, Kind.PLANT, "US", NDFEB)
    totals0, cn0 = _totals(net), _cn_share(net, src)[g]
    path = []
    for k in range(40):
        _stall(net, src, g, days=1e6)
        src.review(7 * k)
        path.append(_cn_share(net, src)[g])
        assert path[-1] >= cn0 - 0.3 - 1e-12
    np.testing.assert_allclose(np.diff(path[:21]), -0.014, rtol=1e-9)
    assert path[-1] == pytest.approx(cn0 - 0.3, rel=1e-12)
    assert path[-1] == path[-10]  # and stays there
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-13, atol=1e-16)


def test_buyers_cannot_move_to_suppliers_without_capacity():
    model, net, src = _world()
    g, es = next((g, src.edges[src.group == g]) for g in range(src.n_groups) if src.g_mat[g] == DYTB)
    assert not src.can_move[g]  # outside China nobody separates Dy/Tb yet
    share0 = net.share.copy()
    _stall(net, src, g, days=1e6)
    src.review(0)
    np.testing.assert_array_equal(net.share, share0)
    # capacity appears at the potential supplier: now the buyer can move there
    x = es[net.region[net.sup[es]] != CN][0]
    net.cap[net.sup[x], DYTB] = 1.0
    src.refresh(net)
    assert src.can_move[g]
    src.review(7)
    assert net.share[x] == pytest.approx(0.014, rel=1e-12)
    assert net.share[es].sum() == pytest.approx(share0[es].sum(), rel=1e-14)


# ---------------------------------------------------------------------------------------- offtakes
def _us_maker_with_buyers(net, src):
    """A US NdFeB maker that both defence programmes and civil buyers can move to."""
    for s in makers(net, NDFEB, "US"):
        on = np.isin(src.edges, np.flatnonzero(net.sup == s))
        mil = src.military[src.group[on]]
        if mil.any() and (~mil).any():
            return s
    raise AssertionError


def test_offtakes_serve_defence_first_and_never_take_more_than_the_spare_capacity():
    model, net, src = _world()
    s = _us_maker_with_buyers(net, src)
    rate = 0.1
    share0, totals0, cn0 = net.share.copy(), _totals(net), _cn_share(net, src)
    need_g = net.need.ravel()[src.g_buyer * M + src.g_mat]
    on_s = src.edges[net.sup[src.edges] == s]
    groups = src.group[np.isin(src.edges, on_s)]
    mil = groups[src.military[groups]]
    want_mil = (cn0[mil] * need_g[mil] * rate).sum()
    spare = np.zeros(net.n * M)
    spare[s * M + NDFEB] = 0.5 * want_mil  # half of what defence alone wants
    src.derisk(net, spare, rate)
    gained = (net.share[on_s] - share0[on_s]) * net.need.ravel()[net.buy_flat[on_s]]
    assert gained.sum() == pytest.approx(0.5 * want_mil, rel=1e-12)  # all of the spare, no more
    assert spare[s * M + NDFEB] == pytest.approx(0.0, abs=1e-15)
    civil = ~src.military[src.group]
    np.testing.assert_array_equal(net.share[src.edges[civil]], share0[src.edges[civil]])
    # each programme got its request times the same ratio (pro rata)
    cn_now = _cn_share(net, src)
    np.testing.assert_allclose((cn0[mil] - cn_now[mil]) * need_g[mil], 0.5 * cn0[mil] * need_g[mil] * rate, rtol=1e-12)
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-14, atol=1e-16)
    assert (net.share[net.region[net.sup] == CN] <= share0[net.region[net.sup] == CN]).all()


def test_ample_spare_capacity_moves_rate_of_every_eligible_groups_chinese_share():
    model, net, src = _world()
    s = _us_maker_with_buyers(net, src)
    share0, totals0, cn0 = net.share.copy(), _totals(net), _cn_share(net, src)
    need_g = net.need.ravel()[src.g_buyer * M + src.g_mat]
    spare = np.zeros(net.n * M)
    spare[s * M + NDFEB] = 1e6
    src.derisk(net, spare, 0.1)
    on = np.isin(src.group, src.group[net.sup[src.edges] == s])
    moved = np.unique(src.group[on])
    cn_now = _cn_share(net, src)
    np.testing.assert_allclose(cn_now[moved], 0.9 * cn0[moved], rtol=1e-13)
    rest = np.setdiff1d(np.arange(src.n_groups), moved)
    np.testing.assert_array_equal(cn_now[rest], cn0[rest])
    assert spare[s * M + NDFEB] == pytest.approx(1e6 - (0.1 * cn0[moved] * need_g[moved]).sum(), rel=1e-15)
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-14, atol=1e-16)
    assert src.military[moved].any() and (~src.military[moved]).any()
    cn = net.region[net.sup] == CN
    assert (net.share[cn] <= share0[cn]).all() and (net.share[~cn] >= share0[~cn]).all()
    # no spare anywhere: nothing happens, and nothing is counted as a change
    before, changes = net.share.copy(), src.changes
    src.derisk(net, np.zeros(net.n * M), 0.1)
    np.testing.assert_array_equal(net.share, before)
    assert src.changes == changes


# ---------------------------------------------------------------------------------------- content
def test_non_chinese_content_separators_one_chinese_nodes_zero_makers_their_scarcest_input():
    model, net, src = _world()
    frac = src.non_cn_frac
    x_sep = (net.kind == Kind.SEPARATOR) & (net.region != CN)
    assert (frac[x_sep] == 1.0).all()
    assert (frac[net.region == CN] == 0.0).all()
    assert (frac[net.kind >= Kind.PLANT] == 0.0).all()
    # every foreign maker buys all its Dy/Tb (or Sm) from China at the start
    assert (frac[(net.kind == Kind.MAKER) & (net.region != CN)] == 0.0).all()
    # a Japanese NdFeB maker gets Dy/Tb outside China: its content is its scarcest input's
    jp = makers(net, NDFEB, "JP")[0]
    row = REGIONS.index("ROW")
    net.cap[np.flatnonzero((net.kind == Kind.SEPARATOR) & (net.region == row)), DYTB] = 10.0
    src.refresh(net)
    g_dy = np.flatnonzero((src.g_buyer == jp) & (src.g_mat == DYTB))
    nd = np.flatnonzero((net.buy == jp) & (net.mat == NDPR))
    x_nd = net.share[nd][net.region[net.sup[nd]] != CN].sum() / net.share[nd].sum()
    assert x_nd == pytest.approx(0.5, rel=1e-12)  # half its NdPr from outside China
    moved = np.zeros(src.n_groups)
    moved[g_dy] = 0.3
    src._move(net, moved)  # 30% of its Dy/Tb now from outside China: the scarcest
    src.update_content()
    assert src.non_cn_frac[jp] == pytest.approx(0.3, rel=1e-12)
    moved[g_dy] = 0.6  # 90%: now NdPr is the scarcest
    src._move(net, moved)
    src.update_content()
    assert src.non_cn_frac[jp] == pytest.approx(0.5, rel=1e-12)
    others = (net.kind == Kind.MAKER) & (net.region != CN) & (np.arange(net.n) != jp)
    assert (src.non_cn_frac[others] == 0.0).all()


def test_us_arrivals_are_recorded_with_their_non_chinese_content():
    model, net, src = _world()
    us = REGIONS.index("US")
    src.non_cn_frac[:] = 0.0
    src.non_cn_frac[net.region != CN] = 0.25  # pretend every foreign node is 25% clean
    src.non_cn_frac[(net.kind == Kind.SEPARATOR) & (net.region != CN)] = 1.0
    src.w_us_def = src.non_cn_frac[net.sup[src.e_us_def]]
    src.w_us_auto = src.non_cn_frac[net.sup[src.e_us_auto]]
    src.w_us = src.non_cn_frac[net.sup[src.e_us]]
    net.arrivals[:] = np.arange(net.e, dtype=float)
    src.end_of_day()
    into_us = (net.region[net.buy] == us) & (net.kind[net.buy] >= Kind.PLANT)
    w = np.where(net.region[net.sup] != CN, 0.25, 0.0)
    a = net.arrivals
    dfn = into_us & (net.kind[net.buy] == Kind.DEFENSE)
    auto = into_us & (net.kind[net.buy] == Kind.PLANT)
    assert col(model, "us_defense_non_cn_t") == pytest.approx((a * w)[dfn].sum(), rel=1e-14)
    assert col(model, "us_auto_non_cn_t") == pytest.approx((a * w)[auto].sum(), rel=1e-14)
    assert col(model, "us_magnets_non_cn_t") == pytest.approx((a * w)[into_us].sum(), rel=1e-14)
    assert col(model, "us_magnets_received_t") == pytest.approx(a[into_us].sum(), rel=1e-14)
    us_plants = model.plants.nodes[model.plants.region == us]
    assert src.us_need["auto"] == pytest.approx(net.end_need[us_plants, NDFEB].sum(), rel=1e-15)


def test_same_state_same_moves():
    def run():
        model, net, src = _world()
        for k in range(10):
            for g in range(0, src.n_groups, 3):
                _stall(net, src, g, days=30)
            src.review(7 * k)
            spare = np.zeros(net.n * M)
            spare[makers(net, NDFEB, "US") * M + NDFEB] = 0.05
            src.derisk(net, spare, 0.1)
        src.update_content()
        return net.share.copy(), src.non_cn_frac.copy()

    (a, fa), (b, fb) = run(), run()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)
