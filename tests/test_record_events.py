"""Event kinds of the 2025-2026 record: controls by destination, element lists as data, general licences,
suspensions that lapse on a date, technology controls, China's import-side chip bans, stockpile
programmes, production quotas and state stockpiling. Each acts through its population's policy method;
behaviour is checked on tiny worlds and, where it depends on chance, over several seeds.

Day d is ``2025-01-01 + d``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rareshock.agents.investment import OPERATING
from rareshock.model.codes import CN, CONTROLLED_ELEMENTS, REGIONS, Item
from rareshock.model.config import ConfigError
from tests.popworld import tiny_config, tiny_model
from tests.test_government import ev, on, run

JP = REGIONS.index("JP")
SEEDS = (0, 1, 2, 3, 4)


def step(model) -> None:
    for _ in range(model.n_days):
        model.step()


def _bad(events) -> str:
    with pytest.raises(ConfigError) as err:
        tiny_config(events=events)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------- by destination
def test_controls_for_one_destination_need_licences_to_it_only():
    model = tiny_model(events=[ev("cn_export_controls", 1, items=["ndfeb_heavy", "dytb_oxide"], destinations=["JP"])])
    net, lic = model.net, model.licensing
    run(model, 2)
    items = np.isin(net.item, [Item.NDFEB_HEAVY, Item.DYTB]) & net.cn_export
    assert (items & (net.dest == JP)).any() and (items & (net.dest != JP)).any()
    np.testing.assert_array_equal(net.controlled, items & (net.dest == JP))
    assert lic.controlled_to("ndfeb_heavy") == ["JP"] and lic.controlled_items() == ["dytb_oxide", "ndfeb_heavy"]
    # customs friction on loose Dy/Tb-free NdFeB follows the heavy-grade control's destinations
    light = net.cn_export & (net.item == Item.NDFEB_LIGHT)
    assert (net.extra_lead[light & (net.dest == JP)] == 3).all()
    assert (net.extra_lead[light & (net.dest != JP)] == 0).all()


def test_lifting_for_one_destination_keeps_the_others():
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy"]),
        ev("cn_lift_controls", 3, items=["ndfeb_heavy"], destinations=["US", "EU"]),
    ]
    model = tiny_model(events=events)
    net, lic = model.net, model.licensing
    run(model, 4)
    heavy = net.cn_export & (net.item == Item.NDFEB_HEAVY)
    us_eu = np.isin(net.dest, [REGIONS.index("US"), REGIONS.index("EU")])
    np.testing.assert_array_equal(net.controlled, heavy & ~us_eu)
    assert lic.controlled_to("ndfeb_heavy") == ["CN", "JP", "IN", "ROW"]


def test_default_destinations_are_every_destination():
    a = tiny_model(events=[ev("cn_export_controls", 1, items=["smco", "foreign_magnets_cn_content"])])
    b = tiny_model(
        events=[
            ev("cn_export_controls", 1, items=["smco", "foreign_magnets_cn_content"], destinations=list(REGIONS[1:]))
        ]
    )
    run(a, 2)
    run(b, 2)
    np.testing.assert_array_equal(a.net.controlled, b.net.controlled)
    assert a.licensing.controls.all(axis=1).sum() == 2  # every column, China's too (extraterritorial rule)


@pytest.mark.parametrize("seed", SEEDS)
def test_only_shipments_to_the_controlled_destination_are_applied_for(seed):
    model = tiny_model(
        seed=seed, end="2025-04-30", events=[ev("cn_export_controls", 5, items=["ndfeb_heavy"], destinations=["JP"])]
    )
    step(model)
    lic, net = model.licensing, model.net
    assert lic.counts.submitted > 0
    first = lic.first_approval  # day of the first approval by destination x end use (-1: none)
    assert (first[np.arange(len(REGIONS)) != JP] < 0).all() and (first[JP] >= 0).any()
    c = lic.counts
    assert c.submitted == c.approved + c.denied + c.returned + lic.pending
    assert not net.controlled[net.dest != JP].any()


def test_bad_destination_is_one_line_naming_the_field_and_allowed_values():
    msg = _bad([ev("cn_export_controls", 1, items=["smco"], destinations=["KR"])])
    assert "events[0].destinations[0]" in msg and "'JP'" in msg and "KR" in msg


# ---------------------------------------------------------------------------------------- elements as data
def test_elements_map_to_the_items_of_the_data_table_and_unmodelled_ones_do_nothing():
    table = CONTROLLED_ELEMENTS
    assert {"Ho", "Er", "Tm", "Eu", "Yb", "Dy", "Tb", "Sm"} <= set(table)
    assert all(table[e]["items"] == [] for e in ("Ho", "Er", "Tm", "Eu", "Yb", "Gd", "Lu", "Sc", "Y"))
    # No. 18 by name gives the same controls as No. 18 by item
    by_name = ["Sm", "Gd", "Tb", "Dy", "Lu", "Sc", "Y", "smco_magnets", "tb_dy_magnet_materials"]
    a = tiny_model(events=[ev("cn_export_controls", 1, elements=by_name)])
    b = tiny_model(events=[ev("cn_export_controls", 1, items=["dytb_oxide", "sm_oxide", "ndfeb_heavy", "smco"])])
    run(a, 2)
    run(b, 2)
    np.testing.assert_array_equal(a.licensing.controls, b.licensing.controls)
    np.testing.assert_array_equal(a.net.controlled, b.net.controlled)
    # No. 57's five elements: recorded, no modelled effect (no node), and nothing else changes
    c = tiny_model(events=[ev("cn_export_controls", 1, elements=["Ho", "Er", "Tm", "Eu", "Yb"])])
    run(c, 2)
    assert not c.licensing.controls.any() and not c.net.controlled.any() and c.licensing.first_control_day is None
    assert c.governments.cn.applied == [(1, "cn_export_controls")]


def test_a_new_element_needs_only_a_row_in_the_table(monkeypatch):
    monkeypatch.setitem(CONTROLLED_ELEMENTS, "Dy", {"items": ["dytb_oxide", "ndfeb_heavy"], "source": "x"})
    model = tiny_model(events=[ev("cn_export_controls", 1, elements=["Dy"])])
    run(model, 2)
    assert model.licensing.controlled_items() == ["dytb_oxide", "ndfeb_heavy"]


@pytest.mark.parametrize(
    "event, expected",
    [
        (ev("cn_export_controls", 1, elements=["Unobtainium"]), "events[0].elements[0]"),
        (ev("cn_export_controls", 1), "give items or elements"),
        (ev("cn_general_licence", 1, exporter_share=0), "events[0].exporter_share"),
        (ev("cn_technology_controls", 1, progress_share=1.5), "events[0].progress_share"),
        (ev("cn_chip_import_ban", 1, firms=["intel"], share=1.0), "unknown firm 'intel'"),
        (ev("cn_production_quota", 1, materials=["ndfeb"], capacity_share=0.9), "events[0].materials[0]"),
        (ev("us_stockpile_programme", 1, name="v", material="ndfeb", days=60, budget_usd=1e9), "exactly one of"),
        (ev("cn_suspension", 5, name="s", until="2025-01-03", lift=[]), "events[0].until: must be after"),
        (ev("cn_suspension", 5, name="s", until="2025-03-01"), "give lift or measures"),
    ],
)
def test_bad_new_event_data_is_one_line_naming_the_field(event, expected):
    assert expected in _bad([event])


def test_bad_event_data_exits_2_from_the_cli(tmp_path, capsys):
    from rareshock.cli import main
    from tests.conftest import SHOCK

    text = SHOCK.read_text() + '\n[[events]]\ndate = 2025-12-01\nkind = "cn_export_controls"\nelements = ["Xx"]\n'
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "elements[0]" in err and "'Ho'" in err


# ---------------------------------------------------------------------------------------- general licences
@pytest.mark.parametrize("seed", SEEDS)
def test_general_licences_cover_the_largest_exporters_named_customers_only(seed):
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy"]),
        ev("cn_general_licence", 3, exporter_share=0.5, customer_share=0.6, end_use="auto", destinations=["US", "EU"]),
    ]
    model = tiny_model(seed=seed, events=events)
    net, lic = model.net, model.licensing
    run(model, 4)
    g = lic.general
    assert g.any()
    # only controlled heavy NdFeB from China to auto buyers in the US and the EU
    assert (net.item[g] == Item.NDFEB_HEAVY).all() and net.cn_export[g].all()
    assert np.isin(net.dest[g], [REGIONS.index("US"), REGIONS.index("EU")]).all()
    assert (net.end_use[net.buy[g]] == 0).all() and not net.military[net.buy[g]].any()
    # the exporters are the largest, together at least half of the capacity, and no more than needed
    sellers = np.unique(net.sup[net.cn_export & (net.item == Item.NDFEB_HEAVY)])
    cap = net.cap[sellers, 3]
    chosen = np.unique(net.sup[g])
    assert cap[np.isin(sellers, chosen)].sum() >= 0.5 * cap.sum()
    smallest = cap[np.isin(sellers, chosen)].min()
    assert (cap[~np.isin(sellers, chosen)] <= smallest).all()
    # open-ended volume for a year; the rest of the relationships are untouched
    assert np.isinf(net.licence_left[g]).all() and (net.licence_exp[g] == 3 + 365).all()
    assert (net.licence_left[~g] == 0).all()


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_covered_relationships_do_not_apply_and_ship_while_others_queue(seed):
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy"]),
        ev("cn_general_licence", 1, exporter_share=1.0, end_use="all_civil", validity_days=60),
    ]
    model = tiny_model(seed=seed, end="2025-05-31", events=events)
    net, lic = model.net, model.licensing
    g0 = None
    for d in range(model.n_days):
        model.step()
        if d == 1:
            g0 = lic.general.copy()
        if 1 <= d <= 60:  # while valid: no application for a covered relationship
            q = lic.queue
            assert not g0[q.edge[: q.n]].any()
    c = lic.counts
    assert c.submitted == c.approved + c.denied + c.returned + lic.pending
    # after expiry (day 61) the covered relationships need ordinary licences again
    assert g0.any() and (net.licence_exp[g0] >= 61).all() and not np.isinf(net.licence_left[g0]).any()


# ---------------------------------------------------------------------------------------- suspensions
def test_a_suspension_lifts_now_and_the_measures_return_on_their_date_by_themselves():
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy"]),
        ev(
            "cn_suspension",
            3,
            name="No. 70",
            until=on(20),
            lift=[{"kind": "cn_lift_controls", "items": ["ndfeb_heavy"]}],
            measures=[
                {"kind": "cn_export_controls", "items": ["ndfeb_heavy"]},
                {"kind": "cn_export_controls", "elements": ["Ho"], "destinations": ["JP"]},
                {"kind": "cn_technology_controls", "progress_share": 0.5},
            ],
        ),
    ]
    model = tiny_model(events=events)
    lic = model.licensing
    run(model, 3)
    assert lic.controlled_items() == ["ndfeb_heavy"]
    run(model, 20, 3)
    assert lic.controlled_items() == [] and model.investment.programme.tech_progress["magnets"] == 1.0
    run(model, 21, 20)
    assert lic.controlled_items() == ["ndfeb_heavy"] and model.investment.programme.tech_progress["magnets"] == 0.5
    assert model.governments.diplomacy.suspended == {}
    log = [w for _, w in model.governments.diplomacy.log]
    assert log == ["No. 70 suspended until 2025-01-21", "No. 70 lapsed"]


def test_an_extension_moves_the_lapse_and_keeps_the_measures():
    measures = [{"kind": "cn_export_controls", "items": ["smco"]}]
    events = [
        ev("cn_suspension", 2, name="No. 70", until=on(10), measures=measures),
        ev("cn_suspension", 10, name="No. 70", until=on(30)),  # extended on the day it would lapse
        ev("us_suspension", 11, name="No. 70", until=on(12), measures=[{"kind": "marker", "label": "us"}]),
    ]
    model = tiny_model(events=events)
    run(model, 30)
    assert model.licensing.controlled_items() == []
    assert [k for _, k in model.governments.us.applied] == ["us_suspension", "marker"]  # a separate US one
    run(model, 31, 30)
    assert model.licensing.controlled_items() == ["smco"]
    assert [d for d, k in model.governments.cn.applied if k == "cn_export_controls"] == [30]


# ---------------------------------------------------------------------------------------- technology controls
def test_technology_controls_slow_non_chinese_projects_in_the_listed_stages_only():
    from tests.test_investment import NO_FAIL, _prog, _project

    model, inv, prog = _prog(*NO_FAIL, "investment.workforce_start=1e6")
    mag = _project(prog, stage="magnets", ready=300)
    sep = _project(prog, stage="separation", ready=300)
    inv.set_technology_controls(["magnets"], 0.5)
    for day in range(0, 300, 30):
        prog.monthly(day, 100.0)
    assert mag.ready_day == 300 + 10 * 15 and sep.ready_day == 300
    inv.set_technology_controls(["magnets"], 1.0)
    prog.monthly(300, 100.0)
    assert mag.ready_day == 450 and sep.status == OPERATING
    assert prog.spent <= prog.committed


# ---------------------------------------------------------------------------------------- chips
def test_chinas_import_ban_stops_sales_and_the_revenue_books_still_close():
    from tests.test_chips import identities

    events = [
        ev("cn_chip_import_ban", 10, firms=["nvidia"], share=1.0),
        ev("cn_chip_import_ban", 40, firms=["nvidia"], share=0.25),
    ]
    model, free = tiny_model(events=events), tiny_model()
    chips, nv = model.chips, model.chips.by_name["nvidia"]
    for d in range(60):
        for m in (model, free):
            m.governments.act(d)
            m.chips.step(d, m.calendar.working[d])
        if d == 20:
            assert nv.revenue_rate == 0.0 and nv.banned_rate > 0
            identities(chips)
        if d == 50:
            assert nv.revenue_rate == pytest.approx(0.75 * nv.demand, rel=1e-12)
    identities(chips)
    a, b = chips.accounting(), free.chips.accounting()
    # the lost sales are exactly the banned orders: 30 days of all of them, 20 days of a quarter
    assert a["cn_import_ban_usd"] == pytest.approx(b["actual_usd"] - a["actual_usd"], rel=1e-9)
    assert a["submitted"] == b["submitted"] and sum(nv.pending) == 0  # banned orders are not filed with BIS


# ---------------------------------------------------------------------------------------- quotas
def test_a_production_quota_caps_chinese_separation_and_survives_capacity_updates():
    model = tiny_model(events=[ev("cn_production_quota", 1, materials=["dytb_oxide"], capacity_share=0.6)])
    net, pr = model.net, model.producers
    cap0 = net.cap[pr.cn_seps].copy()
    run(model, 2)
    np.testing.assert_allclose(net.cap[pr.cn_seps, 1], 0.6 * cap0[:, 1], rtol=1e-15)
    np.testing.assert_array_equal(net.cap[pr.cn_seps, 0], cap0[:, 0])
    model.investment.month(31)  # capacities are recomputed monthly from the base
    np.testing.assert_allclose(net.cap[pr.cn_seps, 1], 0.6 * cap0[:, 1], rtol=1e-15)
    assert (pr.cap[np.isin(pr.node, pr.cn_seps) & (pr.mat == 1)] <= 0.6 * cap0[:, 1].max() + 1e-15).all()


# ---------------------------------------------------------------------------------------- stockpiles
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_a_stockpile_programme_buys_within_target_and_budget_and_conserves_material_and_money(seed):
    events = [
        ev("us_stockpile_programme", 10, name="vault", material="ndfeb", cover_days=60, days=30, budget_usd=5e8),
        ev("cn_state_stockpile", 10, name="reserve", material="dytb_oxide", tonnes=200, days=50),
    ]
    model = tiny_model(seed=seed, end="2025-06-30", events=events)
    for _ in range(model.n_days):
        model.step()
    s = model.stockpiles
    reserve, vault = s.programmes  # China acts first on a day
    assert (vault.name, reserve.name) == ("vault", "reserve")
    assert 0 < vault.bought_t <= vault.target_t + 1e-9 and vault.spent_usd <= vault.budget_usd + 1e-6
    assert 0 < reserve.bought_t <= 200 + 1e-9
    assert (model.net.region[vault.sellers] != CN).all() and (model.net.region[reserve.sellers] == CN).all()
    assert s.reserve[3] == pytest.approx(vault.bought_t, rel=1e-12)
    assert s.reserve[1] == pytest.approx(reserve.bought_t, rel=1e-12)
    summary = s.summary()["stockpile_programmes"]["vault"]
    assert summary["budget_left_usd"] == pytest.approx(5e8 - vault.spent_usd, abs=0.01)
    # material conservation with the reserves in stock
    ts = model.records.frame(model.start)
    for m in ("ndfeb", "dytb_oxide"):
        held = ts[f"stock_{m}_t"] + ts[f"transit_{m}_t"]
        flow = (ts[f"produced_{m}_t"] - ts[f"consumed_{m}_t"]).cumsum()
        residual = (held - (held.iloc[0] - flow.iloc[0]) - flow).abs()
        assert residual.max() <= 1e-9 * max(held.max(), 1.0)
    assert (model.net.stock >= -1e-9).all()


def test_a_budget_stops_the_buying():
    events = [ev("us_stockpile_programme", 5, name="v", material="ndfeb", tonnes=1e6, days=10, budget_usd=2e6)]
    model = tiny_model(end="2025-04-30", events=events)
    for _ in range(model.n_days):
        model.step()
    (p,) = model.stockpiles.programmes
    assert p.spent_usd == pytest.approx(2e6, rel=1e-9) and p.bought_t < 1e6 and not model.stockpiles.active


# ---------------------------------------------------------------------------------------- the record scenario
RECORD = "experiments/scenarios/record_2025_2026.toml"


def test_the_record_file_cites_outcome_sources_only_and_its_derived_values_add_up():
    from tests.conftest import ROOT

    rec = pd.read_csv(ROOT / "experiments" / "validation" / "china_exports_2025.csv", dtype={"month": str})
    sources = (ROOT / "docs" / "sources.md").read_text()
    outcomes = sources.split("## Outcome observations (not used to set parameters)", 1)[1]
    for key in set(rec["source"]) - {"adamas-2025-exports"}:  # the 2024 mean is the calibration input
        assert f"**[{key}]**" in outcomes, key
    m = rec[rec["series"] == "magnets"].set_index("month")["tonnes"]
    assert m["2025-07"] == 27897 - 22319 and m["2025-10"] == 45290 - 39817
    assert m["2025-04"] == round(1238 / (1 - 0.529))
    assert 3 * m["2025-01"] == pytest.approx(19132 - 1238 - m["2025-04"], abs=3)


def test_the_record_runs_with_conservation_licence_identity_and_automatic_lapses():
    from tests.conftest import ROOT, run_cached

    res = run_cached(str(ROOT / RECORD), 3)
    ts, summary = res.timeseries, res.summary
    for m in ("ndpr_oxide", "dytb_oxide", "sm_oxide", "ndfeb", "smco"):
        held = ts[f"stock_{m}_t"] + ts[f"transit_{m}_t"]
        flow = (ts[f"produced_{m}_t"] - ts[f"consumed_{m}_t"]).cumsum()
        residual = (held - (held.iloc[0] - flow.iloc[0]) - flow).abs()
        assert residual.max() <= 1e-9 * max(held.max(), 1.0), m
    lhs = ts["cn_licences_submitted_cum"]
    rhs = ts["cn_licences_approved_cum"] + ts["cn_licences_denied_cum"]
    rhs = rhs + ts["cn_licences_pending"] + ts["cn_licences_returned_cum"]
    assert (lhs == rhs).all() and lhs.iloc[-1] > 100
    log = summary["policy_log"]
    assert "2025-11-07: Announcement No. 70 suspended until 2026-11-10" in log
    assert "2026-11-10: Announcement No. 70 lapsed" in log and "2026-11-10: Affiliates Rule lapsed" in log
    vault = summary["stockpile_programmes"]["Project Vault"]
    assert 0 < vault["bought_t"] <= vault["target_t"] + 1e-6
    assert vault["budget_left_usd"] == pytest.approx(12e9 - vault["spent_usd"], abs=0.05)
    assert summary["cn_licences"]["approved_military"] == 0 and summary["price_guard_days"] == 0
