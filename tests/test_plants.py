"""Automaker plants on their own: ``Plants.assemble`` driven on part stocks set by hand in a tiny world.

A plant holds its parts in columns (``Plants.columns``: each part's locally built components and, for a
part with a China-made share, the components inside China-made sub-assemblies), each a node with its own
stock and its own t per vehicle and line for that plant (``Plants.kg[plant, column, line]``).

The decision (agents/automaker.py): lines take the plant's column stocks in ``line_priority`` order; a line
with plan v and columns q needing k_q t per vehicle covers ``c = min_q S_q / (v k_q)`` days of its plan and
runs ``floor(min(c, 1) s)`` of its s = ``shifts_per_day`` shifts; a stopped line runs again (all shifts)
only when ``c >= restart_cover_days``. A plant is idle when no line runs, below plan when it builds less
than its plan.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.agents.automaker import LINES, PLANT_REGIONS
from rareshock.model.codes import REGIONS, EndUse, Kind, Material
from rareshock.model.network import M
from tests.popworld import col, tiny_model

NDFEB = int(Material.NDFEB)
ICE, HEV, BEV = (LINES.index(x) for x in ("ice", "hev", "bev"))
# the default parts, written out: the numbers below do not move when the defaults are recalibrated
PARTS = (
    "automakers.parts={"
    "chassis={kg_ice=0.2, kg_hev=0.2, kg_bev=0.2, grade='heavy', cn_assembly_share=0.4}, "
    "small_motors={kg_ice=0.1, kg_hev=0.1, kg_bev=0.1, grade='light', cn_assembly_share=0.5}, "
    "traction={kg_ice=0.0, kg_hev=0.8, kg_bev=1.6, grade='heavy', cn_assembly_share=0.1}}"
)
LINES_US = ("automakers.US.hev_share=0.2", "automakers.US.bev_share=0.1")  # ice 0.7, hev 0.2, bev 0.1
ICE_ONLY_US = ("automakers.US.hev_share=0", "automakers.US.bev_share=0")
BASE = (
    PARTS,
    "automakers.shifts_per_day=2",
    "automakers.restart_cover_days=3",
    "automakers.line_priority=['ice', 'hev', 'bev']",
)


def _fleet(*overrides, seed=0):
    model = tiny_model(*BASE, *overrides, seed=seed)
    return model, model.plants, model.net


def _q(pl, name, route="local"):
    """The column of a part's locally built (or ``cn_made``) components."""
    return pl.columns.index((name, route))


def _us(pl):
    return np.flatnonzero(pl.region == REGIONS.index("US"))


def _need(pl, net):
    """t/day by (plant, part); 0 where the plant has no node for the part."""
    return np.where(pl.nodes >= 0, net.need_f[np.maximum(pl.node_flat, 0)], 0.0)


def _stock(pl, net):
    return np.where(pl.nodes >= 0, net.stock_f[np.maximum(pl.node_flat, 0)], 0.0)


def _set_cover(pl, net, days):
    """Stock of every (plant, part) node = ``days`` (scalar or (plant, part) array) of the node's need."""
    days = np.broadcast_to(np.asarray(days, dtype=float), pl.nodes.shape)
    has = pl.nodes >= 0
    net.stock_f[pl.node_flat[has]] = (days * _need(pl, net))[has]


def _line_need(pl, p, q, line):
    return pl.plan[p, line] * pl.kg[p, q, line]


# ---------------------------------------------------------------------------------------- parts and lines
def test_a_plant_with_enough_of_every_part_runs_all_shifts_and_uses_exactly_plan_times_kg():
    model, pl, net = _fleet()
    _set_cover(pl, net, 5.0)
    before = _stock(pl, net)
    ledger = np.zeros(M)
    ledger[NDFEB] = 1.0  # the ledger accumulates: the day's other users came first
    pl.assemble(ledger)
    np.testing.assert_array_equal(pl.output, pl.plan_total)
    assert not pl.idle.any() and not pl.line_down.any() and not pl.ever_idle.any()
    want = np.einsum("pl,pql->pq", pl.plan, pl.kg)  # t/day by (plant, column): vehicles by line x t/vehicle
    np.testing.assert_allclose(before - _stock(pl, net), want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(want[pl.nodes >= 0], _need(pl, net)[pl.nodes >= 0], rtol=1e-12)  # need = plan x kg
    np.testing.assert_array_equal(pl.used, (before - _stock(pl, net))[pl.nodes >= 0])  # in (plant, part) order
    assert ledger[NDFEB] == 1.0 + np.sum(pl.used)  # NumPy's pairwise sum, bit for bit
    assert np.count_nonzero(ledger) == 1  # only NdFeB
    for reg in PLANT_REGIONS:
        mine = pl.region == REGIONS.index(reg)
        assert col(model, f"auto_plants_idle_{reg.lower()}") == 0
        assert col(model, f"auto_plants_below_plan_{reg.lower()}") == 0
        assert col(model, f"vehicles_produced_{reg.lower()}") == pytest.approx(pl.plan_total[mine].sum(), rel=1e-15)


@pytest.mark.parametrize(
    ("shifts", "cover", "runs"), [(2, 0.75, 1), (2, 0.5, 1), (2, 0.4999, 0), (3, 0.9, 2), (3, 0.34, 1)]
)
def test_a_line_runs_whole_shifts_partial_output_before_idling(shifts, cover, runs):
    """An ice-only plant with stock of its scarcest part for ``cover`` of a day: floor(cover x shifts)
    shifts (e.g. stock for 1.5 of 2 shifts runs 1 shift)."""
    model, pl, net = _fleet(*ICE_ONLY_US, f"automakers.shifts_per_day={shifts}")
    p = _us(pl)[0]
    qc = _q(pl, "chassis")
    days = np.full(pl.nodes.shape, 5.0)
    days[p, qc] = cover
    _set_cover(pl, net, days)
    before = _stock(pl, net)
    pl.assemble(np.zeros(M))
    v = pl.plan[p, ICE]
    assert pl.plan_total[p] == v  # one line
    assert pl.output[p] == v * runs / shifts
    used = before[p] - _stock(pl, net)[p]
    for q in range(len(pl.columns)):
        expect = v * runs / shifts * pl.kg[p, q, ICE]
        assert used[q] == pytest.approx(expect, rel=1e-12, abs=1e-18)
    assert bool(pl.idle[p]) == (runs == 0)
    assert bool(pl.line_down[p, ICE]) == (runs == 0)
    us = REGIONS.index("US")
    assert col(model, "auto_plants_idle_us") == (runs == 0)
    assert col(model, "auto_plants_below_plan_us") == (runs > 0)  # below plan, not idle
    assert col(model, "vehicles_produced_us") == pytest.approx(
        pl.plan_total[pl.region == us].sum() - v + v * runs / shifts
    )


@pytest.mark.parametrize(
    ("priority", "out"),
    [
        (["ice", "hev", "bev"], {ICE: 1.0, HEV: 0.5, BEV: 0.0}),
        (["bev", "hev", "ice"], {BEV: 1.0, HEV: 1.0, ICE: 0.5}),
        (["hev", "ice", "bev"], {HEV: 1.0, ICE: 0.5, BEV: 1.0}),
    ],
)
def test_lines_get_scarce_magnets_in_line_priority_order(priority, out):
    """US plants: ice 70%, hev 20%, bev 10% of vehicles; every line needs 0.2 kg of chassis magnets, the
    other parts are plentiful. Chassis stock for 0.8 of the plant's day, by hand (shares of the day):
    ice-hev-bev: ice 0.7 (full), hev 0.1 of its 0.2 -> 1 of 2 shifts, nothing left for bev;
    bev-hev-ice: bev 0.1, hev 0.2 (full), ice 0.5 of its 0.7 -> 1 shift;
    hev-ice-bev: hev 0.2, ice 0.6 of 0.7 -> 1 shift (uses 0.35), bev 0.25 of its 0.1 -> full."""
    model, pl, net = _fleet(*LINES_US, f"automakers.line_priority={priority}")
    p = _us(pl)[0]
    qc = _q(pl, "chassis")
    np.testing.assert_allclose(pl.plan[p] / pl.plan_total[p], [0.7, 0.2, 0.1], rtol=1e-12)
    days = np.full(pl.nodes.shape, 5.0)
    days[p, qc] = 0.8  # in days of the plant's whole chassis need
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    expect = sum(pl.plan[p, line] * f for line, f in out.items())
    assert pl.output[p] == pytest.approx(expect, rel=1e-12)
    for line, f in out.items():
        assert bool(pl.line_down[p, line]) == (f == 0.0)
    assert not pl.idle[p]
    assert col(model, "auto_plants_below_plan_us") == 1


def test_a_stopped_line_restarts_only_at_restart_cover_days_of_cover_then_runs_on_less():
    model, pl, net = _fleet(*ICE_ONLY_US, "automakers.restart_cover_days=3")
    us = _us(pl)
    a, b, c = us[:3]
    qc = _q(pl, "chassis")
    pl.line_down[:] = True  # every line stopped
    days = np.full(pl.nodes.shape, 5.0)
    days[a, qc] = 2.999  # stopped: more than a day is not enough
    days[b, qc] = 3.0  # stopped: exactly the restart cover restarts it, all shifts
    days[c, qc] = 0.75
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    assert pl.idle[a] and pl.output[a] == 0.0 and pl.line_down[a, ICE]
    assert not pl.idle[b] and pl.output[b] == pl.plan_total[b] and not pl.line_down[b, ICE]
    assert pl.idle[c] and pl.output[c] == 0.0
    others = np.setdiff1d(np.arange(pl.region.size), [a, c])
    assert not pl.idle[others].any()  # 5 days restarts the rest
    # once running, half a day is enough for one shift (hysteresis)
    days[b, qc] = 0.5
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    assert pl.output[b] == pl.plan_total[b] / 2 and not pl.line_down[b, ICE]


def test_restart_cover_is_the_configured_one_and_counts_in_days_of_the_lines_own_plan():
    """Every line stopped, every part node holding 4.5 days of the plant's need of it: a line restarts when
    each of its parts covers 5 days of *its* plan (a small line restarts on what a large one cannot)."""
    model, pl, net = _fleet("automakers.restart_cover_days=5")
    pl.line_down[:] = True
    _set_cover(pl, net, 4.5)
    need = _need(pl, net)
    pl.assemble(np.zeros(M))
    expect = np.zeros(pl.line_down.shape, dtype=bool)  # runs today
    for p in range(pl.region.size):
        avail = 4.5 * need[p]
        for line in (ICE, HEV, BEV):  # the default priority; a running line takes its parts
            uses = pl.plan[p, line] * pl.kg[p, :, line]
            cover = min(avail[q] / uses[q] for q in range(len(pl.columns)) if uses[q] > 0)
            expect[p, line] = cover >= 5.0
            if expect[p, line]:
                avail = avail - uses
    np.testing.assert_array_equal(~pl.line_down, expect)
    assert expect.any() and not expect.all()
    np.testing.assert_array_equal(pl.idle, ~expect.any(axis=1))
    _set_cover(pl, net, 5.0)
    pl.line_down[:] = True
    pl.assemble(np.zeros(M))
    assert not pl.idle.any() and not pl.line_down.any()
    np.testing.assert_array_equal(pl.output, pl.plan_total)


def test_line_states_over_days_follow_the_hand_computed_path():
    """An ice-only plant receiving 0.3 of a day's chassis each day, from nothing: stopped until it holds 3
    days, then full shifts while it holds a day, one shift while it holds half a day, then stopped."""
    model, pl, net = _fleet(*ICE_ONLY_US, "automakers.restart_cover_days=3")
    p = _us(pl)[0]
    qc = _q(pl, "chassis")
    f = pl.node_flat[p, qc]
    n = net.need_f[f]
    _set_cover(pl, net, 1000.0)
    net.stock_f[f] = 0.0
    s, down, path = 0.0, False, []
    for _ in range(40):
        net.stock_f[f] += 0.3 * n
        s += 0.3
        pl.assemble(np.zeros(M))
        cover = s  # days of the (only) line's plan
        if down:
            runs = 2 if cover >= 3.0 - 1e-9 else 0
        else:
            runs = int(np.floor(min(cover, 1.0) * 2 + 1e-9))
        down = runs == 0
        s -= runs / 2
        path.append(runs)
        assert pl.output[p] == pytest.approx(pl.plan_total[p] * runs / 2, rel=1e-12)
        assert net.stock_f[f] == pytest.approx(s * n, rel=1e-9, abs=1e-12)
    # written out: stopped 9 days, restarts at 3.0 days of cover, runs down to partial output, stops
    assert path[:9] == [0] * 9 and path[9] == 2
    assert 1 in path[10:] and path.index(1, 10) < path.index(0, 10)  # one shift before it stops again


def test_a_plant_is_idle_only_when_no_line_runs_and_ever_idle_stays_set():
    """A part only the ice line needs (``exhaust``): without it the ice line stops but hev and bev run
    (below plan, not idle); without chassis, which every line needs, the plant is idle."""
    parts = PARTS[:-1] + ", exhaust={kg_ice=0.02, kg_hev=0.0, kg_bev=0.0, grade='light', cn_assembly_share=0.0}}"
    model, pl, net = _fleet(*LINES_US, parts)
    p = _us(pl)[0]
    days = np.full(pl.nodes.shape, 5.0)
    days[p, _q(pl, "exhaust")] = 0.0
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    assert pl.line_down[p].tolist() == [True, False, False]
    assert pl.output[p] == pytest.approx(pl.plan[p, HEV] + pl.plan[p, BEV], rel=1e-15)
    assert not pl.idle[p] and not pl.ever_idle[p]
    assert col(model, "auto_plants_idle_us") == 0 and col(model, "auto_plants_below_plan_us") == 1
    days[p, _q(pl, "chassis")] = 0.0
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    assert pl.idle[p] and pl.ever_idle[p] and pl.output[p] == 0.0 and pl.line_down[p].all()
    assert col(model, "auto_plants_idle_us") == 1 and col(model, "auto_plants_below_plan_us") == 0
    _set_cover(pl, net, 5.0)  # restocked: it runs again, but it has been idle
    pl.assemble(np.zeros(M))
    assert not pl.idle[p] and pl.ever_idle[p] and pl.ever_idle.sum() == 1


def test_recorded_columns_equal_the_hand_count():
    """Idle and below-plan plants, vehicles and the median plant's cover of its scarcest Dy/Tb part (stock
    after the day over need, days) by region."""
    model, pl, net = _fleet()
    rng = np.random.default_rng(5)
    days = rng.choice([0.0, 0.3, 0.6, 0.9, 2.0, 8.0, 40.0], size=pl.nodes.shape)
    days[_us(pl)[0]] = 0.0  # at least one idle US plant
    days[_us(pl)[1]] = 0.7  # and one below plan
    pl.line_down[:] = rng.random(pl.line_down.shape) < 0.3
    days[_us(pl)[2]] = 40.0  # and one at plan
    pl.line_down[_us(pl)[2]] = False
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    idle = pl.output <= 0.0
    low = ~idle & (pl.output < pl.plan_total)
    heavy = np.array([model.cfg.automakers.parts[n].grade == "heavy" for n, _ in pl.columns])
    after = _stock(pl, net) / np.where(pl.nodes >= 0, _need(pl, net), 1.0)
    scarcest = np.where((pl.nodes >= 0) & heavy, after, np.inf).min(axis=1)
    np.testing.assert_array_equal(pl.idle, idle)
    assert idle.any() and low.any() and (~idle & ~low).any()
    for reg in PLANT_REGIONS:
        mine = pl.region == REGIONS.index(reg)
        r = reg.lower()
        assert col(model, f"auto_plants_idle_{r}") == np.count_nonzero(idle & mine)
        assert col(model, f"auto_plants_below_plan_{r}") == np.count_nonzero(low & mine)
        assert col(model, f"vehicles_produced_{r}") == pytest.approx(pl.output[mine].sum(), rel=1e-15)
        assert col(model, f"auto_cover_days_{r}") == pytest.approx(np.median(scarcest[mine]), rel=1e-14)
    assert set(pl.INTEGER_COLUMNS) == {
        f"auto_plants_{k}_{r.lower()}" for k in ("idle", "below_plan") for r in PLANT_REGIONS
    }


def test_a_region_without_plants_records_nothing_and_no_cover():
    model, pl, net = _fleet("automakers.IN.plants=0")
    _set_cover(pl, net, 5.0)
    pl.assemble(np.zeros(M))
    assert col(model, "auto_plants_idle_in") == 0 and col(model, "vehicles_produced_in") == 0.0
    assert np.isnan(col(model, "auto_cover_days_in"))
    assert col(model, "auto_cover_days_us") == pytest.approx(4.0, rel=1e-12)  # 5 days held, 1 used


# ---------------------------------------------------------------------------------------- nodes from config
def test_plants_from_config_have_one_node_per_column_their_lines_need():
    """Each part is a local column (loose magnets: the rest of the plant's Chinese share, and the
    non-Chinese share) and, if ``cn_assembly_share`` > 0, a China-made column holding ``cn_supply_share x
    cn_assembly_share`` of the part's magnets, all Chinese; the two add up to the part's need. Plants in
    China have no China-made column."""
    model, pl, net = _fleet(*ICE_ONLY_US, "automakers.EU.buffer_days_cv=0", "automakers.IN.plants=0")
    am = model.cfg.automakers
    assert pl.part_names == ("chassis", "small_motors", "traction")
    assert pl.columns == (
        ("chassis", "local"),
        ("chassis", "cn_made"),
        ("small_motors", "local"),
        ("small_motors", "cn_made"),
        ("traction", "local"),
        ("traction", "cn_made"),
    )
    kg = {n: np.array([am.parts[n].kg_ice, am.parts[n].kg_hev, am.parts[n].kg_bev]) / 1000 for n in pl.part_names}
    for reg in PLANT_REGIONS:
        rp = getattr(am, reg)
        mine = np.flatnonzero(pl.region == REGIONS.index(reg))
        assert mine.size == rp.plants
        if rp.plants == 0:
            continue
        mix = np.array([1 - rp.hev_share - rp.bev_share, rp.hev_share, rp.bev_share])
        assert pl.plan_total[mine].sum() == pytest.approx(rp.vehicles_per_year / 365, rel=1e-12)
        np.testing.assert_allclose(pl.plan[mine], pl.plan_total[mine, None] * mix, rtol=1e-12)
        for p in mine:
            for name in pl.part_names:
                part = am.parts[name]
                made_cn = 0.0 if reg == "CN" else rp.cn_supply_share * part.cn_assembly_share
                need = pl.plan[p] @ kg[name]
                local, cn_made = pl.nodes[p, _q(pl, name)], pl.nodes[p, _q(pl, name, "cn_made")]
                if need <= 0:  # no line of this plant uses the part: no node
                    assert local == -1 and cn_made == -1
                    continue
                assert net.need[local, NDFEB] == pytest.approx(need * (1 - made_cn), rel=1e-12)
                np.testing.assert_allclose(pl.kg[p, _q(pl, name)], kg[name] * (1 - made_cn), rtol=1e-12)
                if made_cn == 0:
                    assert cn_made == -1
                    assert net.cn_share[local] == (1.0 if reg == "CN" else rp.cn_supply_share)
                else:
                    assert net.need[cn_made, NDFEB] == pytest.approx(need * made_cn, rel=1e-12)
                    assert net.cn_share[cn_made] == 1.0
                    assert net.cn_share[local] == pytest.approx((rp.cn_supply_share - made_cn) / (1 - made_cn))
                    assert net.cover_days[cn_made] == net.cover_days[local]  # one buffer policy per part
                for node in (local, cn_made):
                    if node < 0:
                        continue
                    assert net.kind[node] == Kind.PLANT and net.end_use[node] == EndUse.AUTO
                    assert net.region[node] == REGIONS.index(reg) and not net.military[node]
                    assert net.heavy_grade[node] == (part.grade == "heavy")
                    assert (net.need[node] > 0).sum() == 1  # NdFeB only
    us = _us(pl)
    assert (pl.nodes[us, _q(pl, "traction")] == -1).all()  # ice-only: no traction motors
    nodes = pl.nodes[pl.nodes >= 0]
    assert len(set(nodes)) == nodes.size and (net.kind == Kind.PLANT).sum() == nodes.size
    eu = pl.nodes[pl.region == REGIONS.index("EU")]
    assert (net.cover_days[eu[eu >= 0]] == am.EU.buffer_days_mean).all()  # cv 0: the mean itself
    jp = pl.nodes[pl.region == REGIONS.index("JP")][:, [_q(pl, n) for n in pl.part_names]].ravel()
    assert len(set(net.cover_days[jp])) == jp.size  # drawn per (plant, part) elsewhere
    # the US example by hand: ice only, 0.2 + 0.1 kg a vehicle over both columns
    assert net.need[pl.nodes[us][pl.nodes[us] >= 0], NDFEB].sum() == pytest.approx(10.2e6 / 365 * 0.3 / 1000, rel=1e-12)


def test_parts_are_processed_in_name_order_whatever_the_tables_key_order():
    reordered = (
        "automakers.parts={"
        "traction={kg_ice=0.0, kg_hev=0.8, kg_bev=1.6, grade='heavy', cn_assembly_share=0.1}, "
        "small_motors={kg_ice=0.1, kg_hev=0.1, kg_bev=0.1, grade='light', cn_assembly_share=0.5}, "
        "chassis={kg_ice=0.2, kg_hev=0.2, kg_bev=0.2, grade='heavy', cn_assembly_share=0.4}}"
    )
    a = tiny_model(*BASE, seed=4)
    b = tiny_model(*BASE, reordered, seed=4)
    assert list(b.cfg.automakers.parts) == ["traction", "small_motors", "chassis"]
    assert a.plants.part_names == b.plants.part_names == ("chassis", "small_motors", "traction")
    for name in ("columns", "nodes", "plan", "kg", "heavy", "region"):
        np.testing.assert_array_equal(getattr(a.plants, name), getattr(b.plants, name))
    for name in ("need", "cover_days", "share", "sup", "buy", "item", "stock"):
        np.testing.assert_array_equal(getattr(a.net, name), getattr(b.net, name))
    r = np.random.default_rng(0)
    for _ in range(5):
        days = r.uniform(0.0, 2.0, a.plants.nodes.shape)
        for m in (a, b):
            _set_cover(m.plants, m.net, days)
            m.plants.assemble(np.zeros(M))
        np.testing.assert_array_equal(a.plants.output, b.plants.output)
        np.testing.assert_array_equal(a.plants.used, b.plants.used)
        np.testing.assert_array_equal(a.records.row, b.records.row)


def test_same_seed_same_plants_and_same_decisions_other_seed_other_plants():
    def run(seed):
        model, pl, net = _fleet(seed=seed)
        r = np.random.default_rng(1)
        need = _need(pl, net)
        out = []
        for _ in range(20):
            net.stock_f[pl.node_flat[pl.nodes >= 0]] += (need * r.uniform(0.0, 2.0, need.shape))[pl.nodes >= 0]
            ledger = np.zeros(M)
            pl.assemble(ledger)
            out.append((pl.idle.copy(), pl.line_down.copy(), _stock(pl, net), ledger.copy(), model.records.row.copy()))
        return pl, out

    a, ra = run(3)
    b, rb = run(3)
    c, _ = run(4)
    np.testing.assert_array_equal(a.plan, b.plan)
    for x, y in zip(ra, rb):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.plan, c.plan)


def test_china_made_components_do_not_stand_in_for_locally_built_ones():
    """A plant flush with China-made chassis components (100 days) but without locally built ones stops
    every line: the two columns are different components, both needed for every vehicle. Given the local
    ones back, its China-made stock is drawn only at its own share of the part."""
    model, pl, net = _fleet(*ICE_ONLY_US)
    p = _us(pl)[0]
    local, cn_made = _q(pl, "chassis"), _q(pl, "chassis", "cn_made")
    assert pl.nodes[p, cn_made] >= 0
    days = np.full(pl.nodes.shape, 5.0)
    days[p, local] = 0.0
    days[p, cn_made] = 100.0
    _set_cover(pl, net, days)
    pl.assemble(np.zeros(M))
    assert pl.idle[p] and pl.output[p] == 0.0
    days[p, local] = 5.0
    _set_cover(pl, net, days)
    before = _stock(pl, net)[p]
    pl.assemble(np.zeros(M))
    assert pl.output[p] == pl.plan_total[p]
    used = before - _stock(pl, net)[p]
    am = model.cfg.automakers
    share = am.US.cn_supply_share * am.parts["chassis"].cn_assembly_share
    total = pl.plan[p, ICE] * am.parts["chassis"].kg_ice / 1000
    assert used[cn_made] == pytest.approx(total * share, rel=1e-12)
    assert used[local] == pytest.approx(total * (1 - share), rel=1e-12)
