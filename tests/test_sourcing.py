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


# the switching parameters, written out: the numbers below do not move when the defaults are recalibrated
SRC = (
    "sourcing.qualification_days=28",
    "sourcing.switch_share_per_day=0.002",
    "sourcing.switch_back_share_per_day=0.001",
    "sourcing.switch_max_share=0.3",
    "sourcing.switch_trigger_days=21",
    "sourcing.review_days=7",
    "magnet_makers.ex_cn_headroom=0.05",
)
STEP = 0.002 * 7  # share of need asked for at each review
BACK = 0.001 * 7


def _world(*overrides, seed=0):
    model = tiny_model(*SRC, *overrides, seed=seed)
    net, src = model.net, model.sourcing
    net.backlog[:] = 0.0
    net.order_rate[:] = net.rate()
    return model, net, src


def _group(net, src, kind, region, mat, military=None, sole=None):
    """A (buyer, material) group of the given kind whose switched orders can go to non-Chinese suppliers
    (with ``sole``: only to that supplier)."""
    for g in range(src.n_groups):
        b = src.g_buyer[g]
        es = src.edges[src.group == g]
        to = set(net.sup[es[src.w_move[src.group == g] > 0]])
        if (
            net.kind[b] == kind
            and net.region[b] == REGIONS.index(region)
            and src.g_mat[g] == mat
            and src.can_move[g]
            and (military is None or src.military[g] == military)
            and (sole is None or to == {sole})
        ):
            return g, es
    raise AssertionError("no such group in the tiny world")


def _cn_share(net, src):
    return np.bincount(src.group, net.share[src.edges] * src.cnf, minlength=src.n_groups)


def _totals(net):
    return np.bincount(net.buy * M + net.mat, net.share, minlength=net.n * M)


def _stall(net, src, g, days=22.0):
    """Chinese orders of group g wait ``days`` of their flow (stalled above 21); 0 clears them."""
    es = src.edges[src.group == g]
    cn = es[net.region[net.sup[es]] == CN]
    net.backlog[cn] = net.order_rate[cn] * days
    return cn


def _loads(net):
    return np.bincount(net.sup_flat, net.rate(), minlength=net.n * M)


def _ample(net, src, headroom=0.05):
    """Every non-Chinese maker gets ten times its capacity: spare far above any request."""
    x = (net.region != CN) & (net.kind == Kind.MAKER)
    net.cap[x] *= 10.0
    assert (src.spare(headroom).reshape(net.n, M)[x][net.cap[x] > 0] > 1.0).all()


def _set_spare(net, src, node, mat, spare, headroom=0.05):
    """Set a supplier's capacity so that its spare capacity (``Sourcing.spare``) is ``spare`` t/day."""
    f = node * M + mat
    usable = min(src.base_util[f] + headroom, 1.0)
    net.cap_f[f] = (_loads(net)[f] + spare) / usable
    assert src.spare(headroom)[f] == pytest.approx(spare, rel=1e-9, abs=1e-15)


# ---------------------------------------------------------------------------------------- switching
def test_a_stalled_buyer_qualifies_suppliers_first_and_moves_nothing_before_qualification_days():
    model, net, src = _world()
    _ample(net, src)
    g, es = _group(net, src, Kind.PLANT, "JP", NDFEB)
    share0, cn0 = net.share.copy(), _cn_share(net, src)
    assert (src.qualified_day == -1).all()
    _stall(net, src, g, days=20.9)  # waiting less than 21 days of flow: not stalled
    src.review(0)
    assert (src.qualified_day == -1).all()
    _stall(net, src, g, days=21.5)
    src.review(3)  # not a review day
    assert (src.qualified_day == -1).all()
    src.review(7)  # stalled: qualification starts, qualified 28 days later
    assert src.qualified_day[g] == 35 and (np.delete(src.qualified_day, g) == -1).all()
    for day in (7, 14, 21, 28):
        src.review(day)
        np.testing.assert_array_equal(net.share, share0)  # nothing moves while qualifying
    src.review(35)
    cn_now = _cn_share(net, src)
    assert cn_now[g] == pytest.approx(cn0[g] - STEP, rel=1e-12)
    np.testing.assert_array_equal(np.delete(cn_now, g), np.delete(cn0, g))
    assert src.switched[g] == pytest.approx(STEP, rel=1e-12)
    # the moved share goes to the buyer's non-Chinese suppliers in proportion to what each had
    x = es[net.region[net.sup[es]] != CN]
    gain = net.share[x] - share0[x]
    np.testing.assert_allclose(gain / gain.sum(), share0[x] / share0[x].sum(), rtol=1e-12)
    # and is taken from its Chinese suppliers in proportion to theirs
    cn = es[net.region[net.sup[es]] == CN]
    np.testing.assert_allclose(net.share[cn] / share0[cn], 1 - STEP / cn0[g], rtol=1e-12)


def test_once_qualified_a_buyer_moves_at_most_the_step_per_review_up_to_switch_max_share():
    model, net, src = _world("sourcing.qualification_days=0")
    _ample(net, src)
    g, es = _group(net, src, Kind.PLANT, "US", NDFEB)
    totals0, cn0 = _totals(net), _cn_share(net, src)[g]
    assert cn0 > 0.3
    path = []
    for k in range(40):
        _stall(net, src, g, days=1e6)
        src.review(7 * k)
        path.append(_cn_share(net, src)[g])
        assert path[-1] >= cn0 - 0.3 - 1e-12
    np.testing.assert_allclose(-np.diff([cn0, *path[:21]]), STEP, rtol=1e-9)
    assert path[-1] == pytest.approx(cn0 - 0.3, rel=1e-12)
    assert path[-1] == path[-10]  # and stays there
    assert src.switched[g] == pytest.approx(0.3, rel=1e-12)
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-13, atol=1e-16)


def test_switching_never_exceeds_the_suppliers_spare_capacity_and_serves_defence_first():
    """A Japanese maker that is the only non-Chinese supplier a defence programme and two civil buyers
    can move to. Its spare capacity is first half of what defence asks (defence gets all of it, pro
    rata; civil buyers nothing), then what defence asks plus half of what the civil buyers ask."""
    model, net, src = _world("sourcing.qualification_days=0")
    for s in makers(net, NDFEB, "JP"):
        groups = [
            g
            for g in range(src.n_groups)
            if src.can_move[g] and set(net.sup[src.edges[(src.group == g) & (src.w_move > 0)]]) == {s}
        ]
        mil = [g for g in groups if src.military[g]]
        civ = [g for g in groups if not src.military[g]]
        if mil and len(civ) >= 2:
            break
    else:
        raise AssertionError("no such maker in the tiny world")
    asking = np.array(mil + civ)
    need_g = net.need_f[src.g_need]
    ask = STEP * need_g  # t/day each group asks of s
    for case, spare in (("short", 0.5 * ask[mil].sum()), ("some", ask[mil].sum() + 0.5 * ask[civ].sum())):
        model, net, src = _world("sourcing.qualification_days=0")
        _set_spare(net, src, s, NDFEB, spare)
        cn0, load0 = _cn_share(net, src), _loads(net)
        for g in asking:
            _stall(net, src, g, days=1e6)
        src.review(0)
        moved = (cn0 - _cn_share(net, src)) * need_g  # t/day
        gained = _loads(net)[s * M + NDFEB] - load0[s * M + NDFEB]
        assert gained == pytest.approx(spare, rel=1e-9)  # all of the spare, no more
        np.testing.assert_allclose(moved[asking].sum(), gained, rtol=1e-9)
        if case == "short":
            np.testing.assert_allclose(moved[mil], 0.5 * ask[mil], rtol=1e-9)  # pro rata
            np.testing.assert_array_equal(moved[civ], 0.0)
        else:
            np.testing.assert_allclose(moved[mil], ask[mil], rtol=1e-9)
            np.testing.assert_allclose(moved[civ], 0.5 * ask[civ], rtol=1e-9)
        others = np.setdiff1d(np.arange(src.n_groups), asking)
        np.testing.assert_array_equal(moved[others], 0.0)
        assert src.spare(0.05)[s * M + NDFEB] == pytest.approx(0.0, abs=1e-12)
    # no spare at all: a qualified, stalled buyer moves nothing
    model, net, src = _world("sourcing.qualification_days=0")
    _set_spare(net, src, s, NDFEB, 0.0)
    share0 = net.share.copy()
    for g in asking:
        _stall(net, src, g, days=1e6)
    src.review(0)
    np.testing.assert_array_equal(net.share, share0)
    assert (src.qualified_day[asking] == 0).all() and (src.switched[asking] == 0).all()


def test_spare_capacity_is_capacity_at_start_utilisation_plus_headroom_less_what_is_supplied():
    model, net, src = _world()
    load = _loads(net)
    for h in (0.0, 0.05, 0.5):
        usable = net.cap_f * np.minimum(src.base_util + h, 1.0)
        expect = np.where((net.region != CN).repeat(M), np.maximum(usable - load, 0.0), 0.0)
        np.testing.assert_allclose(src.spare(h), expect, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(src.spare(0.0), 0.0, atol=1e-12)  # at the start everyone runs at u0
    assert (src.spare(0.05)[(net.region == CN).repeat(M)] == 0).all()  # China has none to offer
    jp = makers(net, NDFEB, "JP")[0] * M + NDFEB
    assert src.spare(0.05)[jp] == pytest.approx(net.cap_f[jp] * min(src.base_util[jp] + 0.05, 1) - load[jp])


def test_buyers_move_back_once_chinese_supply_flows_again_but_never_past_their_original_share():
    model, net, src = _world("sourcing.qualification_days=0")
    _ample(net, src)
    g, es = _group(net, src, Kind.PLANT, "US", NDFEB)
    totals0, cn0 = _totals(net), _cn_share(net, src)[g]
    for k in range(5):
        _stall(net, src, g, days=1e6)
        src.review(7 * k)
    assert _cn_share(net, src)[g] == pytest.approx(cn0 - 5 * STEP, rel=1e-12)
    _stall(net, src, g, days=0.0)  # orders flow again
    path = []
    for k in range(5, 20):
        src.review(7 * k)
        path.append(_cn_share(net, src)[g])
        assert path[-1] <= cn0 + 1e-12
    np.testing.assert_allclose(np.diff([cn0 - 5 * STEP, *path[:10]]), BACK, rtol=1e-9)
    assert path[-1] == pytest.approx(cn0, rel=1e-12) and src.switched[g] == pytest.approx(0.0, abs=1e-15)
    # back to the Chinese suppliers in proportion to their original shares
    share0 = tiny_model(*SRC).net.share
    cn = es[net.region[net.sup[es]] == CN]
    np.testing.assert_allclose(net.share[cn], share0[cn], rtol=1e-9)
    assert src.qualified_day[g] == 0  # qualification is kept
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-13, atol=1e-16)


def test_offtakes_and_sourcing_rules_do_not_move_back():
    model, net, src = _world("sourcing.qualification_days=0")
    g, es = _group(net, src, Kind.PLANT, "US", NDFEB)
    x = es[(net.region[net.sup[es]] != CN) & (src.w_move[src.group == g] > 0)]
    cn0 = _cn_share(net, src)[g]
    # an offtake: the buyer's supplier gets new capacity beyond its start-of-run operating point
    net.cap[net.sup[x], NDFEB] *= 3.0
    src.derisk(net, 0.1)
    after_offtake = _cn_share(net, src)[g]
    assert after_offtake == pytest.approx(0.9 * cn0, rel=1e-9)
    assert src.switched[g] == 0.0
    _ample(net, src)
    for k in range(3):
        _stall(net, src, g, days=1e6)
        src.review(7 * k)
    assert _cn_share(net, src)[g] == pytest.approx(after_offtake - 3 * STEP, rel=1e-9)
    _stall(net, src, g, days=0.0)
    for k in range(3, 30):
        src.review(7 * k)
    assert _cn_share(net, src)[g] == pytest.approx(after_offtake, rel=1e-9)  # not back to cn0
    # a sourcing rule moves the whole Chinese share; nothing moves back
    d, _ = _group(net, src, Kind.DEFENSE, "EU", NDFEB)
    src.ban_china(net, np.arange(src.n_groups) == d)
    assert _cn_share(net, src)[d] == 0.0 and src.cn_share0[d] == 0.0
    for k in range(30, 40):
        src.review(7 * k)
    assert _cn_share(net, src)[d] == 0.0


def test_switching_keeps_each_buyers_total_share():
    """Random stalls and recoveries over a year of reviews, every buyer qualified at once and ample spare
    capacity: each (buyer, material) keeps a total share of 1 (what it orders is its need), and no share
    is negative. Buyers whose original Chinese share is at least ``switch_max_share``."""
    model, net, src = _world("sourcing.qualification_days=0", "sourcing.switch_share_per_day=0.01")
    _ample(net, src)
    totals0 = _totals(net)
    big = np.flatnonzero(src.cn_share0 >= 0.3)
    r = np.random.default_rng(2)
    for k in range(52):
        for g in big:
            _stall(net, src, g, days=float(r.choice([0.0, 1e6])))
        src.review(7 * k)
        np.testing.assert_allclose(_totals(net), totals0, rtol=1e-12, atol=1e-15)
        assert (net.share >= -1e-15).all()
        assert (_cn_share(net, src)[big] >= src.cn_share0[big] - 0.3 - 1e-12).all()
    assert src.switched[big].max() > 0.1 and src.changes > 10


def test_a_buyer_with_a_small_chinese_share_keeps_its_total_share_when_it_switches():
    """US defence programmes buy 3% of their magnets in China, less than ``switch_max_share`` (30%). A
    stalled, qualified programme asks for 1.4% of its need at each review: after three reviews its whole
    Chinese share has moved, and its orders must still add up to its need (total share 1)."""
    model, net, src = _world("sourcing.qualification_days=0", "defense.US.cn_supply_share=0.03")
    _ample(net, src)
    g, es = _group(net, src, Kind.DEFENSE, "US", NDFEB)
    assert src.cn_share0[g] == pytest.approx(0.03) and src.military[g]
    total0 = net.share[es].sum()
    for k in range(4):
        _stall(net, src, g, days=1e6)
        src.review(7 * k)
        assert net.share[es].sum() == pytest.approx(total0, rel=1e-12), k
    assert _cn_share(net, src)[g] == pytest.approx(0.0, abs=1e-12)
    assert src.switched[g] == pytest.approx(0.03, rel=1e-12)


def test_buyers_cannot_move_to_suppliers_without_capacity():
    model, net, src = _world("sourcing.qualification_days=14")
    g, es = next((g, src.edges[src.group == g]) for g in range(src.n_groups) if src.g_mat[g] == DYTB)
    assert not src.can_move[g]  # outside China nobody separates Dy/Tb yet
    share0 = net.share.copy()
    _stall(net, src, g, days=1e6)
    src.review(0)
    np.testing.assert_array_equal(net.share, share0)
    assert src.qualified_day[g] == -1  # nobody to qualify
    # capacity appears at the potential supplier: qualification starts, then the buyer can move there
    x = es[net.region[net.sup[es]] != CN][0]
    net.cap[net.sup[x], DYTB] = 1.0
    src.refresh(net)
    assert src.can_move[g]
    src.review(7)
    assert src.qualified_day[g] == 21 and net.share[x] == 0.0
    src.review(14)
    assert net.share[x] == 0.0
    src.review(21)
    assert net.share[x] == pytest.approx(STEP, rel=1e-12)
    assert net.share[es].sum() == pytest.approx(share0[es].sum(), rel=1e-14)


def test_switching_in_a_run_never_exceeds_spare_capacity_on_any_review_day():
    """A shock run with short qualification: on every review day, what each non-Chinese supplier gains
    is within the spare capacity it had before the review, and the review moves something."""
    model = tiny_model(
        *SRC,
        "sourcing.qualification_days=14",
        "licensing.cn.p_approve_civil=0.3",
        end="2025-12-31",
        events=[{"date": "2025-01-15", "kind": "cn_export_controls", "items": ["ndfeb_heavy", "dytb_oxide"]}],
    )
    net, src = model.net, model.sourcing
    review = src.review
    x_sup = (net.region != CN).repeat(M)
    seen = {"days": 0, "moved": 0, "binding": 0}

    def checked(day):
        before_spare = src.spare(0.05)
        before = _loads(net)
        switched = src.switched.copy()
        review(day)
        gain = np.where(x_sup, _loads(net) - before, 0.0)  # Chinese suppliers gain only from moves back
        assert (gain <= before_spare * (1 + 1e-9) + 1e-12).all(), day
        if day % 7 == 0:
            seen["days"] += 1
            seen["moved"] += bool((src.switched > switched).any())
            seen["binding"] += bool(((gain > 0) & (gain >= before_spare * (1 - 1e-9))).any())

    src.review = checked
    for _ in range(model.n_days):
        model.step()
    assert seen["days"] >= 50 and seen["moved"] >= 5 and seen["binding"] >= 1, seen


# ---------------------------------------------------------------------------------------- offtakes
def _us_maker_with_buyers(net, src):
    """A US NdFeB maker that both defence programmes and civil buyers can move to."""
    for s in makers(net, NDFEB, "US"):
        on = np.isin(src.edges, np.flatnonzero(net.sup == s))
        mil = src.military[src.group[on]]
        if mil.any() and (~mil).any():
            return s
    raise AssertionError


def _offtake_spare(net, src, s, spare):
    """New capacity at s: ``spare`` t/day beyond its start-of-run operating point (``spare(0)``)."""
    f = s * M + NDFEB
    net.cap_f[f] = (_loads(net)[f] + spare) / min(src.base_util[f], 1.0)
    assert src.spare(0.0)[f] == pytest.approx(spare, rel=1e-9)


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
    _offtake_spare(net, src, s, 0.5 * want_mil)  # half of what defence alone wants
    src.derisk(net, rate)
    gained = (net.share[on_s] - share0[on_s]) * net.need.ravel()[net.buy_flat[on_s]]
    assert gained.sum() == pytest.approx(0.5 * want_mil, rel=1e-9)  # all of the spare, no more
    assert src.spare(0.0)[s * M + NDFEB] == pytest.approx(0.0, abs=1e-12)
    civil = ~src.military[src.group]
    np.testing.assert_array_equal(net.share[src.edges[civil]], share0[src.edges[civil]])
    # each programme got its request times the same ratio (pro rata)
    cn_now = _cn_share(net, src)
    np.testing.assert_allclose((cn0[mil] - cn_now[mil]) * need_g[mil], 0.5 * cn0[mil] * need_g[mil] * rate, rtol=1e-9)
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-14, atol=1e-16)
    assert (net.share[net.region[net.sup] == CN] <= share0[net.region[net.sup] == CN]).all()
    assert (src.switched == 0).all()  # offtakes are not switches


def test_ample_spare_capacity_moves_rate_of_every_eligible_groups_chinese_share():
    model, net, src = _world()
    s = _us_maker_with_buyers(net, src)
    share0, totals0, cn0 = net.share.copy(), _totals(net), _cn_share(net, src)
    need_g = net.need.ravel()[src.g_buyer * M + src.g_mat]
    _offtake_spare(net, src, s, 100.0)
    src.derisk(net, 0.1)
    on = np.isin(src.group, src.group[net.sup[src.edges] == s])
    moved = np.unique(src.group[on])
    cn_now = _cn_share(net, src)
    np.testing.assert_allclose(cn_now[moved], 0.9 * cn0[moved], rtol=1e-12)
    rest = np.setdiff1d(np.arange(src.n_groups), moved)
    np.testing.assert_array_equal(cn_now[rest], cn0[rest])
    assert src.spare(0.0)[s * M + NDFEB] == pytest.approx(100.0 - (0.1 * cn0[moved] * need_g[moved]).sum(), rel=1e-9)
    np.testing.assert_allclose(_totals(net), totals0, rtol=1e-14, atol=1e-16)
    assert src.military[moved].any() and (~src.military[moved]).any()
    cn = net.region[net.sup] == CN
    assert (net.share[cn] <= share0[cn]).all() and (net.share[~cn] >= share0[~cn]).all()
    # no spare anywhere else: a second round moves only what s has left, and none if nothing
    model, net, src = _world()
    before, changes = net.share.copy(), src.changes
    src.derisk(net, 0.1)
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
        model, net, src = _world("sourcing.qualification_days=7")
        for s in makers(net, NDFEB, "US"):
            _offtake_spare(net, src, s, 0.05)
        _ample(net, src)
        for k in range(10):
            for g in range(0, src.n_groups, 3):
                _stall(net, src, g, days=30 if k < 7 else 0)
            src.review(7 * k)
            src.derisk(net, 0.1)
        src.update_content()
        return net.share.copy(), src.non_cn_frac.copy(), src.switched.copy()

    (a, fa, sa), (b, fb, sb) = run(), run()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(sa, sb)
    assert sa.max() > 0
