"""China's export licensing on its own: ``Licensing.file_applications`` and ``Licensing.decide`` driven day
by day on an emptied tiny world where orders, licences and the stance are set by hand.

Every day below is a Chinese working day unless a test says otherwise, so working day w is day w - 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.agents.licensing import CLOSED, DOC_CHECK, REVIEW
from rareshock.model.codes import CN, REGIONS, EndUse, Item, Kind
from tests.popworld import col, empty, tiny_model

ALL = ("dytb_oxide", "sm_oxide", "ndpr_oxide", "ndfeb_heavy", "ndfeb_light", "smco")
SURE = {"p_approve_civil": 1.0, "destination_factor": {r: 1.0 for r in REGIONS[1:]}}


def _world(*overrides, seed=0, items=ALL):
    model = tiny_model(*overrides, seed=seed)
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


# ---------------------------------------------------------------------------------------- what needs a licence
def test_refresh_controls_marks_exactly_the_controlled_relationships():
    model = tiny_model()
    net, lic = model.net, model.licensing
    assert not net.controlled.any() and not net.any_controlled
    model.day = 12
    lic.set_controls(["ndfeb_heavy", "dytb_oxide"], True)
    expect = net.cn_export & np.isin(net.item, [Item.NDFEB_HEAVY, Item.DYTB])
    np.testing.assert_array_equal(net.controlled, expect)
    assert net.any_controlled and lic.first_control_day == 12
    assert lic.controlled_items() == ["dytb_oxide", "ndfeb_heavy"]
    # customs friction only on controlled relationships; a first filing waits 5..20 days for documents
    np.testing.assert_array_equal(net.extra_lead, np.where(expect, 7, 0))
    rd = lic.ready_day[expect]
    assert rd.min() >= 12 + 5 and rd.max() <= 12 + 20 and len(set(rd)) > 1
    assert (lic.ready_day[~expect] == 0).all()
    # not China's domestic sales, not other countries' exports, not light-grade magnets
    assert not net.controlled[net.region[net.sup] != CN].any()
    assert not net.controlled[net.domestic].any()
    assert not net.controlled[net.item == Item.NDFEB_LIGHT].any()
    # a stance change moves the customs friction; lifting ends the requirement (first day stays)
    lic.set_stance(customs_days=3)
    np.testing.assert_array_equal(net.extra_lead, np.where(expect, 3, 0))
    model.day = 40
    lic.set_controls(["ndfeb_heavy", "dytb_oxide"], False)
    assert not net.controlled.any() and not net.any_controlled and (net.extra_lead == 0).all()
    assert lic.first_control_day == 12
    # controlled again: new preparation times from today
    lic.set_controls(["dytb_oxide"], True)
    assert lic.ready_day[net.controlled].min() >= 45


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
    e = _edges(net, n=4)
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


# ---------------------------------------------------------------------------------------- document check
@pytest.mark.parametrize("p_incomplete", [0.0, 1.0])
def test_document_check_returns_incomplete_files_and_exporters_resubmit_later(p_incomplete):
    model, net, lic = _world(f"licensing.cn.p_incomplete={p_incomplete}", "licensing.cn.resubmit_days=10")
    e = _edges(net, "EU", n=4)
    _order(net, e)
    _day(lic, 0)  # filed on working day 1, checked on working day 6
    for d in range(1, 5):
        _day(lic, d)
        assert (lic.queue.stage[:4] == DOC_CHECK).all()
    _day(lic, 5)
    if p_incomplete == 0.0:
        assert lic.counts.returned == 0 and lic.pending == 4 and (lic.queue.stage[:4] == REVIEW).all()
        return
    assert lic.counts.returned == 4 and lic.pending == 0
    assert not lic.app_open[e].any() and (lic.ready_day[e] == 15).all()
    for d in range(6, 15):
        _day(lic, d)
    assert lic.counts.submitted == 4  # resubmission waits resubmit_days
    _day(lic, 15)
    assert lic.counts.submitted == 8 and lic.pending == 4
    assert col(model, "cn_licences_returned_cum") == 4 and col(model, "cn_licences_pending") == 4
    _identity(lic)


# ---------------------------------------------------------------------------------------- review work
def test_reviewers_work_first_filed_first_from_the_offices_pooled_capacity():
    model, net, lic = _world(
        "licensing.cn.reviewers=7", "licensing.cn.provincial_offices=4", "licensing.cn.p_incomplete=0"
    )
    assert [o.reviewers for o in lic.offices] == [3, 1, 1, 1, 1] and lic.reviewers == 7
    assert len(lic.offices) == 5
    e = _edges(net, n=3)
    _order(net, e)
    _day(lic, 0)
    for d in range(1, 5):
        _day(lic, d)
    np.testing.assert_array_equal(lic.queue.effort[:3], [5.0, 5.0, 5.0])  # no work before the check
    _day(lic, 5)  # 7 reviewer-days today
    np.testing.assert_array_equal(lic.queue.effort[:3], [0.0, 3.0, 5.0])
    _day(lic, 6)
    np.testing.assert_array_equal(lic.queue.effort[:3], [0.0, 0.0, 1.0])
    _day(lic, 7, working=False)  # a holiday: no work
    np.testing.assert_array_equal(lic.queue.effort[:3], [0.0, 0.0, 1.0])
    _day(lic, 8)
    np.testing.assert_array_equal(lic.queue.effort[:3], [0.0, 0.0, 0.0])
    assert lic.counts.approved + lic.counts.denied == 0  # the clock has not run


def test_no_decision_before_the_statutory_clock_and_then_on_its_day():
    model, net, lic = _world("licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0")
    lic.set_stance(**SURE)
    e = _edges(net, "US", EndUse.AUTO, n=2)
    _order(net, e)
    _day(lic, 0)  # filed on working day 1: due on working day 46
    for d in range(1, 45):
        _day(lic, d)
    assert lic.pending == 2 and lic.counts.approved == 0
    assert (lic.queue.effort[:2] == 0).all()  # the work was done long ago
    _day(lic, 45)
    assert lic.pending == 0 and lic.counts.approved == 2
    assert lic.counts.first_approval_day == 45
    assert lic.first_approval[REGIONS.index("US"), EndUse.AUTO] == 45
    assert lic.counts.wait_sum_wd == 2 * 45
    # weekends and holidays do not count: the clock is in working days
    model, net, lic = _world(
        "licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0", "licensing.cn.statutory_working_days=10"
    )
    lic.set_stance(**SURE)
    _order(net, e)
    _day(lic, 0)
    d, decided = 1, None
    while decided is None:
        _day(lic, d, working=d % 7 < 5)
        if lic.counts.approved:
            decided = d
        d += 1
    assert sum(1 for x in range(1, decided + 1) if x % 7 < 5) == 10


def test_fast_track_shortens_the_clock_for_matching_relationships_also_for_queued_applications():
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
    for d in range(1, 3):
        _day(lic, d)
    _order(net, [us_auto[1]])  # a new filing on working day 4: due on 14
    _day(lic, 3)
    assert q.due_wd[4] == 14 and q.validity[4] == 180 and q.tonnage[4] == 100.0 + 1.0 * 180
    decided = {}
    for d in range(4, 50):
        before = set(_open(lic))
        _day(lic, d)
        for e in before - set(_open(lic)):
            decided[int(e)] = d
    assert decided[us_auto[0]] == 10 and decided[us_auto[1]] == 13
    assert decided[eu_auto[0]] == decided[us_ind[0]] == decided[us_mil[0]] == 45
    assert net.licence_exp[us_auto[0]] == 10 + 180 and net.licence_exp[eu_auto[0]] == 45 + 365


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
        "licensing.cn.statutory_working_days=3",
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
    decided = 5  # documents checked on working day 6, clock 3 done
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


def test_approval_adds_volume_and_validity_keeping_the_later_expiry():
    model, net, lic = _world(
        "licensing.cn.reviewers=100",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.statutory_working_days=3",
        "licensing.cn.validity_days=365",
        "licensing.cn.licence_volume_days=90",
    )
    lic.set_stance(**SURE)
    a, b, c = _edges(net, "EU", EndUse.INDUSTRIAL, n=3)
    _order(net, [a, b, c], backlog=40.0, rate=2.0)
    net.licence_left[b], net.licence_exp[b] = 10.0, 2000  # an older licence running longer
    net.licence_left[c], net.licence_exp[c] = 10.0, 100  # an older licence running shorter
    _day(lic, 0)
    for d in range(1, 6):
        _day(lic, d)
    assert lic.counts.approved == 3
    ton = 40.0 + 2.0 * 90
    assert net.licence_left[a] == ton and net.licence_exp[a] == 5 + 365
    assert net.licence_left[b] == 10.0 + ton and net.licence_exp[b] == 2000
    assert net.licence_left[c] == 10.0 + ton and net.licence_exp[c] == 5 + 365
    assert lic.next_expiry == 5 + 365


def test_a_licence_lapses_the_day_after_its_expiry():
    model, net, lic = _world(
        "licensing.cn.reviewers=100",
        "licensing.cn.p_incomplete=0",
        "licensing.cn.statutory_working_days=3",
        "licensing.cn.validity_days=5",
    )
    lic.set_stance(**SURE)
    a = _edges(net, "JP", n=1)[0]
    _order(net, [a])
    _day(lic, 0)
    for d in range(1, 6):
        _day(lic, d)
    assert net.licence_exp[a] == 10 and net.licence_left[a] == 190.0
    net.backlog[a] = 0.0  # no new orders: no new application
    for d in range(6, 11):
        lic.decide(d, working=d % 2 == 0)  # working or not, expiry runs every day
        assert net.licence_left[a] == 190.0
    lic.decide(11, working=False)
    assert net.licence_left[a] == 0.0


def test_volume_of_an_expired_licence_is_not_carried_into_a_new_one():
    """A licence valid through day 9 has 50 t left; a new licence for the same relationship is approved
    on day 10. The old volume lapsed at the end of day 9: the relationship holds the new tonnage only.
    (Today ``_decisions`` runs before ``_expire`` in ``Licensing.decide`` and treats the old licence as
    still running because its volume has not been zeroed yet, so the 50 t are merged.)"""
    model, net, lic = _world(
        "licensing.cn.reviewers=100", "licensing.cn.p_incomplete=0", "licensing.cn.statutory_working_days=10"
    )
    lic.set_stance(**SURE)
    a = _edges(net, "EU", n=1)[0]
    _order(net, [a])  # 100 t of orders, 1 t/day
    net.licence_left[a], net.licence_exp[a] = 50.0, 9  # 50 < 75 days of rate: the exporter renews
    lic.next_expiry = 9
    _day(lic, 0)  # filed on working day 1, decided on working day 11
    for d in range(1, 10):
        _day(lic, d)
    assert net.licence_left[a] == 50.0 and lic.counts.approved == 0
    _day(lic, 10)
    assert lic.counts.approved == 1
    assert net.licence_exp[a] == 10 + 365
    assert net.licence_left[a] == 100.0 + 90.0  # the new licence only


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
