"""China's export licensing on its own: ``Licensing.file_applications`` and ``Licensing.decide`` driven day
by day on an emptied tiny world where orders, licences and the stance are set by hand.

Every day below is a Chinese working day unless a test says otherwise, so working day w is day w - 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.agents.licensing import CLOSED, DOC_CHECK
from rareshock.model.codes import CN, REGIONS, EndUse, Item, Kind
from tests.popworld import col, empty, tiny_model

ALL = ("dytb_oxide", "sm_oxide", "ndpr_oxide", "ndfeb_heavy", "ndfeb_light", "smco")
SURE = {"p_approve_civil": 1.0, "destination_factor": {r: 1.0 for r in REGIONS[1:]}}
# the clock's parameters, written out: the days below do not move when the defaults are recalibrated
CLOCK = (
    "licensing.cn.statutory_working_days=45",
    "licensing.cn.doc_check_working_days=5",
    "licensing.cn.effort_reviewer_days=5",
    "licensing.cn.consultation_working_days=45",
    "licensing.cn.consult_destinations=[]",
    "licensing.cn.decisions_per_working_day=50",
    "licensing.cn.customs_days=7",
    "licensing.cn.customs_days_uncontrolled=3",
    "licensing.cn.validity_days=365",
    "licensing.cn.licence_volume_days=90",
    "licensing.cn.renew_cover_days=75",
    "licensing.cn.prep_days_min=5",
    "licensing.cn.prep_days_max=20",
    "licensing.cn.hire_per_month=0",
)


def _world(*overrides, seed=0, items=ALL):
    model = tiny_model(*CLOCK, *overrides, seed=seed)
    net, lic = model.net, model.licensing
    empty(net)
    net.order_rate[:] = 0.0
    lic.set_controls(items, True)
    lic.ready_day[:] = 0  # documents ready (the preparation time has its own test)
    return model, net, lic


def _edges(net, region=None, use=None, military=None, n=None):
    """Controlled relationships by destination and end use, in index (= filing) order."""
    sel = net.controlled.copy()
    if region is not None:
        sel &= net.dest == REGIONS.index(region)
    if use is not None:
        sel &= net.end_use[net.buy] == use
    if military is not None:
        sel &= net.military[net.buy] == military
    out = np.flatnonzero(sel)
    return out if n is None else out[:n]


def _order(net, es, backlog=100.0, rate=1.0):
    net.backlog[es] = backlog
    net.order_rate[es] = rate


def _day(lic, d, working=True):
    lic.decide(d, working)
    lic.file_applications(d, working)


def _identity(lic):
    c = lic.counts
    assert c.submitted == c.approved + c.denied + c.returned + lic.pending


def _open(lic):
    q = lic.queue
    return q.edge[: q.n].tolist()


def _effort(lic):
    """Reviewer effort left by relationship, for the open applications."""
    q = lic.queue
    return {int(e): float(x) for e, x in zip(q.edge[: q.n], q.effort[: q.n])}


def _decided(lic, days, working=lambda d: True):
    """Run ``days``; the day each relationship's open application left the queue (decided, with no
    returns when p_incomplete is 0), and the decisions per day."""
    out, per_day = {}, []
    for d in days:
        before = set(_open(lic))
        c0 = lic.counts.approved + lic.counts.denied
        _day(lic, d, working(d))
        for e in before - set(_open(lic)):
            out[int(e)] = d
        per_day.append(lic.counts.approved + lic.counts.denied - c0)
    return out, per_day


# ---------------------------------------------------------------------------------------- what needs a licence
def test_refresh_controls_marks_exactly_the_controlled_relationships():
    model = tiny_model(*CLOCK)
    net, lic = model.net, model.licensing
    assert not net.controlled.any() and not net.any_controlled and (net.extra_lead == 0).all()
    model.day = 12
    lic.set_controls(["ndfeb_heavy", "dytb_oxide"], True)
    expect = net.cn_export & np.isin(net.item, [Item.NDFEB_HEAVY, Item.DYTB])
    np.testing.assert_array_equal(net.controlled, expect)
    assert net.any_controlled and lic.first_control_day == 12
    assert lic.controlled_items() == ["dytb_oxide", "ndfeb_heavy"]
    # customs: 7 days on licensed shipments, 3 on loose Dy/Tb-free NdFeB from China (same customs code)
    light = net.cn_export & (net.item == Item.NDFEB_LIGHT)
    assert light.any()
    np.testing.assert_array_equal(net.extra_lead, np.where(expect, 7, np.where(light, 3, 0)))
    # a first filing waits 5..20 days for documents
    rd = lic.ready_day[expect]
    assert rd.min() >= 12 + 5 and rd.max() <= 12 + 20 and len(set(rd)) > 1
    assert (lic.ready_day[~expect] == 0).all()
    # not China's domestic sales, not other countries' exports, not light-grade magnets, not parts
    assert not net.controlled[net.region[net.sup] != CN].any()
    assert not net.controlled[net.domestic].any()
    assert not net.controlled[net.item == Item.NDFEB_LIGHT].any()
    assert not net.controlled[net.item == Item.NDFEB_IN_PARTS].any()
    # a stance change moves the customs friction on licensed shipments; lifting ends the requirement
    lic.set_stance(customs_days=2)
    np.testing.assert_array_equal(net.extra_lead, np.where(expect, 2, np.where(light, 3, 0)))
    model.day = 40
    lic.set_controls(["ndfeb_heavy", "dytb_oxide"], False)
    assert not net.controlled.any() and not net.any_controlled and (net.extra_lead == 0).all()
    assert lic.first_control_day == 12
    # controlled again: new preparation times from today
    lic.set_controls(["dytb_oxide"], True)
    assert lic.ready_day[net.controlled].min() >= 45


def test_customs_friction_on_dy_tb_free_ndfeb_from_china_only_while_ndfeb_heavy_is_controlled():
    model = tiny_model(*CLOCK)
    net, lic = model.net, model.licensing
    light = net.cn_export & (net.item == Item.NDFEB_LIGHT)
    parts = net.cn_export & (net.item == Item.NDFEB_IN_PARTS)
    assert light.any() and parts.any()
    lic.set_controls(["dytb_oxide", "smco"], True)
    assert (net.extra_lead[light] == 0).all()  # Dy/Tb-bearing magnets move freely: no inspection
    lic.set_controls(["ndfeb_heavy"], True)
    assert (net.extra_lead[light] == 3).all() and not net.controlled[light].any()
    assert (net.extra_lead[~light & ~net.controlled] == 0).all()  # not domestic sales, not parts
    assert (net.extra_lead[parts] == 0).all()
    lic.set_controls(["ndfeb_light"], True)  # licensed itself: the licensed shipments' customs time
    assert net.controlled[light].all() and (net.extra_lead[light] == 7).all()
    lic.set_controls(["ndfeb_light", "ndfeb_heavy"], False)
    assert (net.extra_lead[light] == 0).all() and not net.controlled[light].any()
    assert (net.extra_lead[net.controlled] == 7).all() and net.controlled.any()


def test_an_export_control_on_ndfeb_heavy_leaves_magnets_inside_china_made_parts_uncontrolled():
    model = tiny_model(*CLOCK)
    net, lic = model.net, model.licensing
    parts = net.item == Item.NDFEB_IN_PARTS
    assert parts.any() and net.cn_export[parts].all()  # Chinese parts sold abroad
    lic.set_controls(["dytb_oxide", "sm_oxide", "ndpr_oxide", "ndfeb_heavy", "ndfeb_light", "smco"], True)
    assert not net.controlled[parts].any()
    # a plant's part keeps the China-made-parts share of its Chinese supply while its loose magnets wait
    plant = model.plants.nodes[np.flatnonzero(model.plants.region == REGIONS.index("US"))[0], 0]
    mine = (net.buy == plant) & net.cn_export
    assert net.controlled[mine & ~parts].all() and not net.controlled[mine & parts].any()
    # only a control of ndfeb_in_parts covers them (exports only, not China's own plants)
    lic.set_controls(["ndfeb_in_parts"], True)
    np.testing.assert_array_equal(net.controlled[parts], net.cn_export[parts])
    assert (net.extra_lead[parts] == 7).all()


def test_the_extraterritorial_rule_covers_foreign_magnets_with_chinese_content_crossing_a_border():
    model = tiny_model()
    net, lic, src = model.net, model.licensing, model.sourcing
    x_maker = (net.region[net.sup] != CN) & (net.kind[net.sup] == Kind.MAKER)
    cross = net.region[net.sup] != net.region[net.buy]
    assert (src.non_cn_frac[net.sup[x_maker]] < 1.0).all()  # at the start every foreign maker uses Chinese oxide
    clean = net.sup[x_maker & cross][0]
    src.non_cn_frac[clean] = 1.0  # this one no longer does
    lic.set_controls(["foreign_magnets_cn_content"], True)
    expect = x_maker & cross & (net.sup != clean)
    np.testing.assert_array_equal(net.controlled, expect)
    assert expect.any() and not net.controlled[net.sup == clean].any()
    # together with Chinese items
    lic.set_controls(["smco"], True)
    np.testing.assert_array_equal(net.controlled, expect | (net.cn_export & (net.item == Item.SMCO)))


# ---------------------------------------------------------------------------------------- filing
def test_exporters_file_for_controlled_relationships_with_orders_and_too_little_licence():
    model, net, lic = _world()
    e = _edges(net, military=False, n=4)
    _order(net, e[:3])  # the fourth has no orders
    net.licence_left[e[1]] = 80.0  # 80 >= 75 days at 1 t/day: enough licence
    net.licence_exp[e[1]] = 500
    lic.ready_day[e[2]] = 3  # documents not ready before day 3
    uncontrolled = np.flatnonzero(~net.controlled)[0]
    _order(net, [uncontrolled])
    _day(lic, 0)
    assert _open(lic) == [e[0]]
    q = lic.queue
    assert (q.submit_wd[0], q.doc_wd[0], q.due_wd[0], q.validity[0]) == (1, 6, 46, 365)
    assert q.tonnage[0] == 100.0 + 1.0 * 90 and q.effort[0] == 5.0 and q.stage[0] == DOC_CHECK
    assert not q.flagged[0] and not q.military[0]
    assert lic.counts.submitted == 1 and lic.app_open[e[0]] and lic.counts.first_submission_day == 0
    _day(lic, 1)
    _day(lic, 2)
    assert _open(lic) == [e[0]]  # one open application per relationship
    _day(lic, 3)
    assert _open(lic) == [e[0], e[2]]
    # the licence of e[1] expires: the exporter files again although volume is left
    net.licence_exp[e[1]] = 3
    _day(lic, 4)
    assert _open(lic) == [e[0], e[2], e[1]] and lic.counts.submitted == 3  # in filing order
    # nothing is filed on a non-working day
    _order(net, e[3])
    _day(lic, 5, working=False)
    assert lic.counts.submitted == 3


def test_military_end_users_and_consult_destinations_are_flagged_when_filed():
    model, net, lic = _world("licensing.cn.consult_destinations=['JP']")
    mil = _edges(net, military=True, n=1)
    jp = _edges(net, "JP", military=False, n=1)
    eu = _edges(net, "EU", military=False, n=1)
    _order(net, np.concatenate([mil, jp, eu]))
    _day(lic, 0)
    q = lic.queue
    flags = {int(e): (bool(f), bool(m)) for e, f, m in zip(q.edge[: q.n], q.flagged[: q.n], q.military[: q.n])}
    assert flags == {int(mil[0]): (True, True), int(jp[0]): (True, False), int(eu[0]): (False, False)}


# ---------------------------------------------------------------------------------------- document check
@pytest.mark.parametrize("p_incomplete", [0.0, 1.0])
def test_document_check_returns_incomplete_files_and_exporters_resubmit_later(p_incomplete):
    model, net, lic = _world(
        f"licensing.cn.p_incomplete={p_incomplete}", "licensing.cn.resubmit_days=10", "licensing.cn.reviewers=100"
    )
    e = _edges(net, "EU", military=False, n=4)
    _order(net, e)
    _day(lic, 0)  # filed on working day 1, checked on working day 6
    for d in range(1, 5):
        _day(lic, d)
        assert (lic.queue.stage[:4] == DOC_CHECK).all() and lic.pending == 4
    _day(lic, 5)
    if p_incomplete == 0.0:  # complete: checked, worked and decided on the day of the check
        assert lic.counts.returned == 0 and lic.pending == 0 and lic.counts.approved + lic.counts.denied == 4
        return
    assert lic.counts.returned == 4 and lic.pending == 0 and lic.counts.approved + lic.counts.denied == 0
    assert not lic.app_open[e].any() and (lic.ready_day[e] == 15).all()
    for d in range(6, 15):
        _day(lic, d)
    assert lic.counts.submitted == 4  # resubmission waits resubmit_days
    _day(lic, 15)
    assert lic.counts.submitted == 8 and lic.pending == 4
    assert col(model, "cn_licences_returned_cum") == 4 and col(model, "cn_licences_pending") == 4
    _identity(lic)


# ---------------------------------------------------------------------------------------- the clock
def test_a_short_queue_is_decided_right_after_its_work_long_before_the_statutory_limit():
    model, net, lic = _world("licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0")
    lic.set_stance(**SURE)
    e = _edges(net, "US", EndUse.AUTO, n=2)
    _order(net, e)
    decided, per_day = _decided(lic, range(10))
    assert decided == {int(e[0]): 5, int(e[1]): 5}  # checked on working day 6, worked and decided then
    assert lic.counts.approved == 2 and lic.counts.first_approval_day == 5 and lic.counts.late == 0
    assert lic.first_approval[REGIONS.index("US"), EndUse.AUTO] == 5
    assert lic.counts.wait_sum_wd == 2 * 5  # working days from filing to decision
    # weekends and holidays do not count: the document check is 5 working days after filing
    model, net, lic = _world("licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0")
    lic.set_stance(**SURE)
    _order(net, e)
    working = lambda d: d % 7 < 5
    decided, _ = _decided(lic, range(20), working)
    assert decided[int(e[0])] == 7  # filed Monday (working day 1), decided on working day 6: a Monday
    assert lic.counts.wait_sum_wd == 2 * 5


def test_reviewers_work_in_deadline_order_from_the_offices_pooled_capacity():
    """Five reviewer-days a working day and five per file: one file a day. Three EU files filed on working
    day 1 (deadline 46) and a US automaker's file filed on working day 2 under a fast track (deadline 12):
    once its document check is done it overtakes the two EU files still waiting for work."""
    model, net, lic = _world(
        "licensing.cn.reviewers=5", "licensing.cn.provincial_offices=4", "licensing.cn.p_incomplete=0"
    )
    assert [o.reviewers for o in lic.offices] == [1, 1, 1, 1, 1] and lic.reviewers == 5
    eu = _edges(net, "EU", military=False, n=3)
    us = _edges(net, "US", EndUse.AUTO, n=1)
    _order(net, eu)
    _day(lic, 0)
    lic.fast_track(["US"], "auto", review_working_days=10, validity_days=180)
    _order(net, us)
    decided, _ = _decided(lic, range(1, 12))
    q_days = [decided[int(x)] for x in eu]
    assert q_days == [5, 7, 8]  # working days 6, 8, 9
    assert decided[int(us[0])] == 6  # working day 7: before the two EU files filed before it
    # without the fast track: filing order
    model, net, lic = _world(
        "licensing.cn.reviewers=5", "licensing.cn.provincial_offices=4", "licensing.cn.p_incomplete=0"
    )
    _order(net, eu)
    _day(lic, 0)
    _order(net, us)
    decided, _ = _decided(lic, range(1, 12))
    assert [decided[int(x)] for x in eu] == [5, 6, 7] and decided[int(us[0])] == 8


def test_work_is_pooled_and_split_across_days():
    model, net, lic = _world(
        "licensing.cn.reviewers=7",
        "licensing.cn.provincial_offices=4",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.consult_destinations=['EU']",  # flagged: decided long after the work, so it stays
    )
    assert [o.reviewers for o in lic.offices] == [3, 1, 1, 1, 1] and lic.reviewers == 7
    e = [int(x) for x in _edges(net, "EU", military=False, n=3)]
    _order(net, e)
    for d in range(5):
        _day(lic, d)
    assert _effort(lic) == dict.fromkeys(e, 5.0)  # no work before the document check
    _day(lic, 5)  # 7 reviewer-days today
    assert _effort(lic) == {e[0]: 0.0, e[1]: 3.0, e[2]: 5.0}
    _day(lic, 6)
    assert _effort(lic) == {e[0]: 0.0, e[1]: 0.0, e[2]: 1.0}
    _day(lic, 7, working=False)  # a holiday: no work
    assert _effort(lic) == {e[0]: 0.0, e[1]: 0.0, e[2]: 1.0}
    _day(lic, 8)
    assert _effort(lic) == dict.fromkeys(e, 0.0)
    q = lic.queue
    ready = {int(x): int(r) for x, r in zip(q.edge[: q.n], q.ready_wd[: q.n])}
    assert ready == {e[0]: 6 + 45, e[1]: 7 + 45, e[2]: 8 + 45}  # work done on working days 6, 7, 8
    assert lic.counts.approved + lic.counts.denied == 0


def test_flagged_files_wait_consultation_working_days_after_their_work():
    model, net, lic = _world(
        "licensing.cn.reviewers=100",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.consultation_working_days=10",
        "licensing.cn.consult_destinations=['JP']",
    )
    lic.set_stance(**SURE)
    mil = int(_edges(net, military=True, n=1)[0])
    jp = int(_edges(net, "JP", military=False, n=1)[0])
    eu = int(_edges(net, "EU", military=False, n=1)[0])
    _order(net, [mil, jp, eu])
    decided, _ = _decided(lic, range(30))
    assert decided[eu] == 5  # worked and decided on working day 6
    assert decided[jp] == decided[mil] == 15  # worked on working day 6, consulted until working day 16
    assert lic.counts.approved == 2 and lic.counts.denied == 1  # no licence for military end users
    assert lic.counts.wait_sum_wd == 5 + 15 + 15 and lic.counts.late == 0


def test_at_most_decisions_per_working_day_and_unused_capacity_is_not_banked():
    """Two signatures a working day. Six files filed on working day 1 wait for their document check until
    working day 6: on the working days before, the queue is not empty but nothing can be signed, and that
    unused capacity must not be used later (the docstring: "unused capacity is not banked")."""
    model, net, lic = _world(
        "licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0", "licensing.cn.decisions_per_working_day=2"
    )
    lic.set_stance(**SURE)
    e = _edges(net, military=False, n=6)
    _order(net, e)
    decided, per_day = _decided(lic, range(12))
    assert sum(per_day) == 6
    assert per_day[5:9] == [2, 2, 2, 0], per_day  # not 6 on the first day a file is ready
    assert max(per_day) <= 2
    # decided in deadline (= filing) order
    assert [decided[int(x)] for x in e] == [5, 5, 6, 6, 7, 7]


@pytest.mark.parametrize("per_day", [1.5, 2.5])
def test_fractional_signing_capacity_is_carried_as_a_fraction_only(per_day):
    """Files ready every working day from the first (no document check): over any run of working days the
    decisions stay within the capacity of those days plus one, and the long-run rate is the capacity."""
    model, net, lic = _world(
        "licensing.cn.reviewers=1000",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.doc_check_working_days=0",
        f"licensing.cn.decisions_per_working_day={per_day}",
    )
    lic.set_stance(**SURE)
    e = _edges(net, military=False, n=40)
    _order(net, e)
    _, done = _decided(lic, range(15))
    busy = np.array(done[1:15])  # filed on working day 1, decided from working day 2 on
    assert busy.sum() == int(per_day * 14), done
    assert (busy <= np.ceil(per_day)).all(), done
    for i in range(busy.size):
        for j in range(i + 1, busy.size + 1):
            assert busy[i:j].sum() <= per_day * (j - i) + 1, done


def test_decisions_after_the_statutory_limit_are_counted_as_late():
    """One reviewer-day a working day, five per file: the three files are worked one after another and
    decided on working days 10, 15 and 20 (filed on working day 1)."""
    for statutory, late in ((8, 3), (14, 1), (19, 0)):
        model, net, lic = _world(
            "licensing.cn.reviewers=1",
            "licensing.cn.provincial_offices=0",
            "licensing.cn.p_incomplete=0",
            f"licensing.cn.statutory_working_days={statutory}",
        )
        e = _edges(net, "EU", military=False, n=3)
        _order(net, e)
        decided, _ = _decided(lic, range(25))
        assert [decided[int(x)] for x in e] == [9, 14, 19]
        assert lic.counts.late == late, statutory
        assert lic.counts.wait_sum_wd == 9 + 14 + 19
    # consultation longer than the limit: every flagged file is late
    model, net, lic = _world("licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0")
    _order(net, _edges(net, military=True, n=2))
    _decided(lic, range(60))
    assert lic.counts.denied == 2 and lic.counts.late == 2  # working day 6 + 45 > 1 + 45


def test_the_stance_event_changes_consultation_signatures_and_consult_destinations():
    events = [
        {
            "date": "2025-01-10",
            "kind": "cn_licensing_stance",
            "consultation_working_days": 7,
            "decisions_per_working_day": 3.0,
            "consult_destinations": ["US", "EU"],
        }
    ]
    model = tiny_model(*CLOCK, "licensing.cn.consult_destinations=['JP']", end="2025-01-20", events=events)
    lic = model.licensing
    st = lic.stance
    assert (st.consultation_working_days, st.decisions_per_working_day) == (45, 50.0)
    assert st.consult.tolist() == [r == "JP" for r in REGIONS]
    p_civil, statutory = st.p_approve_civil, st.statutory_working_days
    for _ in range(9):  # 1 to 9 January
        model.step()
    assert (st.consultation_working_days, st.decisions_per_working_day) == (45, 50.0)
    model.step()  # 10 January
    assert (st.consultation_working_days, st.decisions_per_working_day) == (7, 3.0)
    assert st.consult.tolist() == [r in ("US", "EU") for r in REGIONS]
    assert (st.p_approve_civil, st.statutory_working_days) == (p_civil, statutory)  # unset: unchanged
    # files already in the queue keep their flags; new ones follow the new destinations
    model, net, lic = _world("licensing.cn.consult_destinations=['JP']")
    jp, eu = _edges(net, "JP", military=False, n=1), _edges(net, "EU", military=False, n=1)
    _order(net, jp)
    _day(lic, 0)
    lic.set_stance(consult_destinations=["EU"])
    _order(net, eu)
    _day(lic, 1)
    q = lic.queue
    assert dict(zip(q.edge[: q.n].tolist(), q.flagged[: q.n].tolist())) == {int(jp[0]): True, int(eu[0]): True}
    lic.set_stance(consult_destinations=[])
    assert not lic.stance.consult.any()


def test_fast_track_shortens_the_deadline_for_matching_relationships_also_for_queued_applications():
    model, net, lic = _world("licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0")
    lic.set_stance(**SURE)
    us_auto = _edges(net, "US", EndUse.AUTO)
    eu_auto = _edges(net, "EU", EndUse.AUTO, n=1)
    us_ind = _edges(net, "US", EndUse.INDUSTRIAL, n=1)
    us_mil = _edges(net, "US", military=True, n=1)
    queued = [us_auto[0], eu_auto[0], us_ind[0], us_mil[0]]
    _order(net, queued)
    _day(lic, 0)  # filed on working day 1
    tonnage_before = lic.queue.tonnage[:4].copy()
    lic.fast_track(["US"], "auto", review_working_days=10, validity_days=180)
    assert lic.fast[us_auto].all() and not lic.fast[[eu_auto[0], us_ind[0], us_mil[0]]].any()
    q = lic.queue
    at = [_open(lic).index(e) for e in queued]
    assert q.due_wd[at].tolist() == [11, 46, 46, 46]
    assert q.validity[at].tolist() == [180, 365, 365, 365]
    rate = net.rate()[us_auto[0]]
    assert q.tonnage[at[0]] == max(tonnage_before[at[0]], 100.0 + rate * 180)
    np.testing.assert_array_equal(q.tonnage[at[1:]], tonnage_before[at[1:]])
    _day(lic, 1)
    _order(net, [us_auto[1]])  # a new filing on working day 3: due on 13
    _day(lic, 2)
    i = _open(lic).index(us_auto[1])
    assert q.due_wd[i] == 13 and q.validity[i] == 180 and q.tonnage[i] == 100.0 + 1.0 * 180
    decided, _ = _decided(lic, range(3, 60))
    assert decided[int(us_auto[0])] == decided[int(eu_auto[0])] == decided[int(us_ind[0])] == 5
    assert decided[int(us_auto[1])] == 7 and decided[int(us_mil[0])] == 50  # consulted
    assert net.licence_exp[us_auto[0]] == 5 + 180 and net.licence_exp[eu_auto[0]] == 5 + 365


def test_all_civil_fast_track_leaves_military_users_out():
    model, net, lic = _world()
    lic.fast_track(["US", "EU"], "all_civil", 10, 100)
    sel = np.isin(net.dest, [REGIONS.index("US"), REGIONS.index("EU")]) & net.cn_export
    np.testing.assert_array_equal(lic.fast, sel & ~net.military[net.buy])
    assert (sel & net.military[net.buy]).any()


# ---------------------------------------------------------------------------------------- decisions
def test_a_refused_military_user_is_not_applied_for_again_a_refused_civil_one_after_reapply_days():
    model, net, lic = _world(
        "licensing.cn.reviewers=100",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.consultation_working_days=0",
        "licensing.cn.reapply_days=30",
        "licensing.cn.p_approve_civil=0",
        "licensing.cn.p_approve_military=0",
    )
    mil = _edges(net, military=True, n=1)[0]
    civ = _edges(net, "JP", EndUse.AUTO, n=1)[0]
    _order(net, [mil, civ])
    _day(lic, 0)
    for d in range(1, 6):
        _day(lic, d)
    assert lic.counts.denied == 2 and lic.pending == 0
    assert lic.blocked[mil] and not lic.blocked[civ]
    decided = 5  # documents checked on working day 6, worked and decided at once
    assert lic.ready_day[civ] == decided + 30
    for d in range(6, decided + 30):
        _day(lic, d)
    assert lic.counts.submitted == 2
    _day(lic, decided + 30)
    assert _open(lic) == [civ]  # the military user never again
    for d in range(decided + 31, decided + 200):
        _day(lic, d)
    assert not lic.app_open[mil] and lic.counts.approved_military == 0
    assert net.licence_left[mil] == 0.0
    _identity(lic)


# ---------------------------------------------------------------------------------------- staffing
def test_offices_hire_while_the_backlog_per_reviewer_is_high_and_trainees_start_after_training():
    model, net, lic = _world(
        "licensing.cn.reviewers=1",
        "licensing.cn.provincial_offices=0",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.hire_per_month=25",
        "licensing.cn.training_days=3",
        "licensing.cn.max_reviewers=6",
        "licensing.cn.hire_backlog_per_reviewer=5",
        "licensing.cn.consult_destinations=['US', 'JP', 'EU', 'IN', 'ROW']",  # no decisions: the backlog stays
        "licensing.cn.consultation_working_days=300",
    )
    e = _edges(net, n=40)
    assert e.size == 40
    _order(net, e)
    seen = []
    for d in range(12):
        _day(lic, d)
        seen.append((lic.reviewers, lic.in_training))
    # 1.2 hires a working day while 40 > 5 x staff and staff < 6; each starts reviewing 3 days after hire
    assert seen == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (4, 2), (5, 1), (6, 0), (6, 0), (6, 0), (6, 0)]
    assert col(model, "cn_reviewers") == 6
    assert lic.pending == 40 and lic.hired == pytest.approx(1.0)  # at the ceiling the hire counter stops
    assert [o.reviewers for o in lic.offices if o.level == "central"] == [6]


def test_no_hiring_while_the_backlog_is_small_and_hired_reviewers_join_after_training():
    model, net, lic = _world(
        "licensing.cn.reviewers=2", "licensing.cn.provincial_offices=1", "licensing.cn.training_days=4"
    )
    _order(net, _edges(net, n=10))  # 10 = 5 per reviewer: not above the threshold
    for d in range(20):
        _day(lic, d)
    assert lic.reviewers == 2 and lic.in_training == 0
    model.day = 20
    lic.hire(4)  # cn_hire_reviewers: into the provincial office
    assert lic.in_training == 4
    for d in range(20, 24):
        _day(lic, d)
    assert lic.reviewers == 2
    _day(lic, 24)
    assert lic.reviewers == 6 and lic.in_training == 0
    assert [o.reviewers for o in lic.offices] == [1, 5]


# ---------------------------------------------------------------------------------------- accounting
@pytest.mark.parametrize("seed", [0, 1])
def test_submitted_is_approved_plus_denied_plus_returned_plus_pending_every_day(seed):
    model, net, lic = _world(
        "licensing.cn.reviewers=3",
        "licensing.cn.p_incomplete=0.3",
        "licensing.cn.statutory_working_days=8",
        "licensing.cn.validity_days=20",
        "licensing.cn.resubmit_days=3",
        "licensing.cn.reapply_days=5",
        "licensing.cn.decisions_per_working_day=2.5",
        "licensing.cn.consult_destinations=['JP']",
        "licensing.cn.consultation_working_days=6",
        seed=seed,
    )
    lic.set_stance(p_approve_civil=0.5)
    r = np.random.default_rng(seed)
    ctrl = np.flatnonzero(net.controlled)
    for d in range(150):
        if d % 3 == 0:
            _order(net, r.choice(ctrl, 10, replace=False), backlog=float(r.uniform(1, 50)), rate=1.0)
        _day(lic, d, working=d % 7 < 5)
        _identity(lic)
        q = lic.queue
        assert (q.stage[: q.n] != CLOSED).all()
        assert lic.app_open.sum() == q.n  # one open application per relationship
        assert sorted(q.edge[: q.n]) == sorted(np.flatnonzero(lic.app_open))
        c = lic.counts
        row = [col(model, name) for name in lic.COLUMNS]
        assert row == [c.submitted, c.approved, c.denied, c.returned, q.n, lic.reviewers]
    c = lic.counts
    assert c.approved > 10 and c.denied > 10 and c.returned > 10 and lic.pending > 0
    assert 0 < c.late < c.approved + c.denied
    assert lic.blocked.sum() > 0  # military users were refused


def test_same_state_and_seed_same_decisions_other_seed_other_decisions():
    def run(seed):
        model, net, lic = _world("licensing.cn.statutory_working_days=5", "licensing.cn.reviewers=50", seed=seed)
        lic.set_stance(p_approve_civil=0.5)
        _order(net, np.flatnonzero(net.controlled))
        for d in range(40):
            _day(lic, d)
        return (
            net.licence_left.copy(),
            net.licence_exp.copy(),
            lic.blocked.copy(),
            lic.ready_day.copy(),
            lic.queue.ints[:, : lic.queue.n].copy(),
            vars(lic.counts).copy(),
        )

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a[:-1], b[:-1]):
        np.testing.assert_array_equal(x, y)
    assert a[-1] == b[-1]
    assert not np.array_equal(a[0], c[0])
