"""The two governments and their diplomacy on their own: ``Governments.act`` and ``Governments.month`` driven
day by day on tiny worlds with events and reactive rules given as a scenario file would give them.

Day d is ``2025-01-01 + d``.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import typing
from types import SimpleNamespace

import numpy as np
import pytest

from rareshock.agents import government
from rareshock.agents.government import HANDLERS, actor
from rareshock.model import config
from rareshock.model.codes import CN, Kind
from tests.popworld import tiny_model

START = dt.date(2025, 1, 1)


def on(day: int) -> str:
    return (START + dt.timedelta(days=day)).isoformat()


def ev(kind: str, day: int | None = None, **fields) -> dict:
    out = {"kind": kind, **fields}
    if day is not None:
        out["date"] = on(day)
    return out


def controls(model) -> set[str]:
    return set(model.licensing.controlled_items())


def run(model, days, start=0):
    for d in range(start, days):
        model.governments.act(d)


NVIDIA = {"firms": ["nvidia"]}


# ---------------------------------------------------------------------------------------- the table
def _event_kinds() -> set[str]:
    union = typing.get_args(config.Event)[0]
    return {typing.get_args(cls.model_fields["kind"].annotation)[0] for cls in typing.get_args(union)}


def test_every_event_kind_of_the_config_has_a_handler_and_nothing_else_does():
    kinds = _event_kinds()
    assert "deal" in kinds and len(kinds) > 10
    assert set(HANDLERS) == kinds - {"deal"}  # a deal is diplomacy: its terms go through the table
    assert all(callable(h) for h in HANDLERS.values())
    assert {actor(k) for k in HANDLERS if k.startswith("cn_")} == {"CN"}
    assert {actor(k) for k in HANDLERS if not k.startswith("cn_")} == {"US"}


def test_events_are_dispatched_through_the_table_not_looked_up_by_name(monkeypatch):
    model = tiny_model()
    calls = []
    for kind in HANDLERS:
        monkeypatch.setitem(HANDLERS, kind, lambda m, e, d, kind=kind: calls.append((kind, m, e, d)))
    gov = model.governments.cn
    for i, kind in enumerate(sorted(HANDLERS)):
        e = SimpleNamespace(kind=kind)
        gov.handle(e, i)
        assert calls[-1] == (kind, model, e, i)
        assert gov.applied[-1] == (i, kind)
    with pytest.raises(KeyError):
        gov.handle(SimpleNamespace(kind="cn_not_a_kind"), 99)
    tree = ast.parse(inspect.getsource(government))
    names = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "getattr" not in names


# ---------------------------------------------------------------------------------------- what each kind does
def test_each_kind_acts_through_its_populations_policy_method():
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy", "dytb_oxide"]),
        ev("cn_licensing_stance", 2, p_approve_civil=0.4, customs_days=12, destination_factor={"US": 0.5}),
        ev("cn_fast_track", 3, destinations=["EU"], end_use="auto", review_working_days=7, validity_days=200),
        ev("cn_hire_reviewers", 4, reviewers=9),
        ev("us_defense_sourcing_rule", 5),
        ev("marker", 6, label="a summit"),
        ev("us_chip_licence_requirement", 7, **NVIDIA),
        ev("cn_lift_controls", 8, items=["dytb_oxide"]),
    ]
    model = tiny_model(events=events)
    net, lic = model.net, model.licensing
    run(model, 2)
    assert controls(model) == {"ndfeb_heavy", "dytb_oxide"} and net.controlled.any()
    run(model, 3, 2)
    st = lic.stance
    assert st.p_approve_civil == 0.4 and st.customs_days == 12 and st.p_approve_military == 0.0
    assert st.destination_factor[1] == 0.5 and st.destination_factor[3] == 1.0
    assert set(net.extra_lead[net.controlled]) == {12}
    run(model, 4, 3)
    assert lic.fast.any() and (lic.fast_review_wd[lic.fast] == 7).all()
    run(model, 5, 4)
    assert lic.in_training == 9
    share = net.share.copy()
    run(model, 6, 5)
    us_mil = np.isin(net.buy, model.defense.us_nodes) & (net.region[net.sup] == CN)
    assert (net.share[us_mil] == 0).all() and (share[us_mil] > 0).all()
    state = (net.share.copy(), lic.controls.copy(), vars(lic.stance).copy())
    run(model, 7, 6)  # a marker changes nothing
    np.testing.assert_array_equal(net.share, state[0])
    np.testing.assert_array_equal(lic.controls, state[1])
    assert model.chips.by_name["nvidia"].revenue_rate > 0
    run(model, 8, 7)
    assert model.chips.by_name["nvidia"].revenue_rate == 0.0
    run(model, 9, 8)
    assert controls(model) == {"ndfeb_heavy"}
    assert [k for _, k in model.governments.cn.applied] == [
        "cn_export_controls",
        "cn_licensing_stance",
        "cn_fast_track",
        "cn_hire_reviewers",
        "cn_lift_controls",
    ]
    assert [k for _, k in model.governments.us.applied] == [
        "us_defense_sourcing_rule",
        "marker",
        "us_chip_licence_requirement",
    ]


def test_events_apply_on_their_day_china_first(monkeypatch):
    events = [ev("us_chip_licence_requirement", 3, **NVIDIA), ev("cn_export_controls", 3, items=["smco"])]
    model = tiny_model(events=events)
    order = []
    for kind in ("cn_export_controls", "us_chip_licence_requirement"):
        real = HANDLERS[kind]
        monkeypatch.setitem(HANDLERS, kind, lambda m, e, d, real=real: (order.append((d, e.kind)), real(m, e, d)))
    run(model, 3)
    assert order == [] and not controls(model)
    run(model, 4, 3)
    assert order == [(3, "cn_export_controls"), (3, "us_chip_licence_requirement")]
    assert controls(model) == {"smco"} and model.chips.by_name["nvidia"].revenue_rate == 0.0


# ---------------------------------------------------------------------------------------- deals
DEAL_TERMS = [
    ev("cn_lift_controls", items=["ndfeb_heavy"]),
    ev("cn_licensing_stance", p_incomplete=0.05),
    ev("us_chip_rollback", firms=["nvidia"]),
]
BREAKDOWN = [ev("cn_export_controls", items=["ndfeb_heavy", "ndfeb_light"]), ev("us_bis_stance", p_approve=0.3)]


def _deal_world(extra=(), policy=None, hazard=0.0, seed=0):
    events = [
        ev("cn_export_controls", 1, items=["ndfeb_heavy"]),
        ev("us_chip_licence_requirement", 2, **NVIDIA),
        ev("deal", 5, terms=DEAL_TERMS, breakdown=BREAKDOWN, breakdown_per_year=hazard),
        *extra,
    ]
    events.sort(key=lambda e: e["date"])
    return tiny_model(events=events, policy=policy, seed=seed, end="2030-12-31")


def test_a_deal_applies_both_sides_terms_on_its_day():
    model = _deal_world()
    dip = model.governments.diplomacy
    run(model, 5)
    assert controls(model) == {"ndfeb_heavy"} and model.chips.by_name["nvidia"].revenue_rate == 0.0
    assert dip.deal is None
    run(model, 6, 5)
    assert controls(model) == set()
    assert model.licensing.stance.p_incomplete == 0.05
    assert model.chips.by_name["nvidia"].revenue_rate > 0
    assert dip.deal is not None and dip.deal_day == 5 and (5, "deal") in dip.log
    assert (5, "cn_lift_controls") in model.governments.cn.applied
    assert (5, "us_chip_rollback") in model.governments.us.applied
    # not taken when the policy says no
    model = _deal_world(policy={"deal": False})
    run(model, 6)
    assert controls(model) == {"ndfeb_heavy"} and model.governments.diplomacy.deal is None
    assert (5, "deal not taken (policy.deal = false)") in model.governments.diplomacy.log


def test_an_escalation_breaks_an_active_deal_and_its_breakdown_measures_apply():
    model = _deal_world(extra=[ev("us_entity_list", 20, share=0.1)])
    dip = model.governments.diplomacy
    run(model, 20)
    assert dip.deal is not None and controls(model) == set()
    run(model, 21, 20)
    assert dip.deal is None
    assert (20, "deal broke down (US escalation)") in dip.log
    assert controls(model) == {"ndfeb_heavy", "ndfeb_light"}
    assert model.chips.p_approve == 0.3
    # a marker or a stance change is no escalation
    model = _deal_world(extra=[ev("marker", 20, label="talks"), ev("cn_licensing_stance", 21, p_approve_civil=0.5)])
    run(model, 30)
    assert model.governments.diplomacy.deal is not None


@pytest.mark.parametrize("hazard, broken", [(1.0, True), (0.0, False)])
def test_a_deal_breaks_down_at_its_monthly_hazard(hazard, broken):
    model = _deal_world(hazard=hazard)
    run(model, 6)
    model.governments.month(31)
    dip = model.governments.diplomacy
    assert (dip.deal is None) == broken
    assert ((31, "deal broke down (breakdown)") in dip.log) == broken
    assert (controls(model) == {"ndfeb_heavy", "ndfeb_light"}) == broken


def test_the_same_seed_breaks_a_deal_on_the_same_month():
    def day_broken(seed):
        model = _deal_world(hazard=0.5, seed=seed)
        run(model, 6)
        for day in range(31, 3000, 30):
            model.governments.month(day)
            if model.governments.diplomacy.deal is None:
                return day
        return None

    days = [day_broken(s) for s in range(6)]
    assert days == [day_broken(s) for s in range(6)]
    assert len(set(days)) > 1


# ---------------------------------------------------------------------------------------- retaliation
RETALIATE = {
    "cn_retaliation": [ev("cn_export_controls", items=["ndfeb_light"])],
    "us_retaliation": [ev("us_entity_list", share=0.2)],
    "retaliation_lag_days": 30,
}


def test_retaliation_is_scheduled_after_the_lag_and_once():
    events = [ev("us_chip_licence_requirement", 10, **NVIDIA), ev("us_is_informed", 50, share=0.1, **NVIDIA)]
    model = tiny_model(events=events, policy=RETALIATE, end="2025-12-31")
    run(model, 40)
    assert "ndfeb_light" not in controls(model)
    assert (10, "CN retaliation scheduled for 2025-02-10") in model.governments.diplomacy.log
    run(model, 41, 40)
    assert controls(model) == {"ndfeb_light"}
    assert (40, "cn_export_controls") in model.governments.cn.applied
    run(model, 120, 41)  # the second escalation brings no second reaction
    assert [k for _, k in model.governments.cn.applied] == ["cn_export_controls"]
    # China's controls are an escalation too: the US answers (and China's retaliation was one)
    assert (70, "us_entity_list") in model.governments.us.applied


def test_retaliation_every_time_when_not_once_and_none_before_reactions_from():
    events = [ev("cn_export_controls", 10, items=["smco"]), ev("cn_export_controls", 20, items=["sm_oxide"])]
    model = tiny_model(events=events, policy={**RETALIATE, "retaliate_once": False}, end="2025-12-31")
    run(model, 60)
    assert [d for d, k in model.governments.us.applied] == [40, 50]
    model = tiny_model(events=events, policy={**RETALIATE, "reactions_from": on(15)}, end="2025-12-31")
    run(model, 60)
    assert [d for d, k in model.governments.us.applied] == [50]


# ---------------------------------------------------------------------------------------- monthly
def test_while_the_extraterritorial_rule_is_in_force_monthly_content_decides_what_needs_a_licence():
    model = tiny_model(events=[ev("cn_export_controls", 0, items=["foreign_magnets_cn_content"])])
    net, src = model.net, model.sourcing
    run(model, 1)
    x_makers = np.flatnonzero((net.region != CN) & (net.kind == Kind.MAKER))
    crossing = x_makers[[(net.sup == s).any() and net.controlled[net.sup == s].any() for s in x_makers]]
    assert crossing.size > 0
    clean = crossing[0]
    src.non_cn_frac[clean] = 1.0  # its inputs are now all from outside China
    assert net.controlled[net.sup == clean].any()  # until the monthly review
    model.governments.month(31)
    assert not net.controlled[net.sup == clean].any()
    assert net.controlled[np.isin(net.sup, crossing[1:])].any()
    # lifted: the monthly review does not bring it back
    model.licensing.set_controls(["foreign_magnets_cn_content"], False)
    src.non_cn_frac[clean] = 0.0
    model.governments.month(61)
    assert not net.controlled.any()
