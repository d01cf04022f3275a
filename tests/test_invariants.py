"""Invariants that must hold on every simulated day: conservation, non-negativity, licence accounting."""

from __future__ import annotations

import numpy as np
import pytest

from rareshock.model.codes import MATERIALS
from rareshock.model.config import load_scenario
from rareshock.model.model import RareShockModel
from tests.conftest import SHOCK


@pytest.fixture(scope="module")
def stepped():
    """Step the shock scenario day by day, checking state after every step."""
    cfg = load_scenario(SHOCK, ["scenario.end=2025-12-31"])
    model = RareShockModel(cfg, rng=7)
    worst = {"stock": 0.0, "transit": 0.0, "pipe": 0.0, "backlog": 0.0, "licence": 0.0}
    military_licensed = 0.0
    for _ in range(model.n_days):
        model.step()
        net = model.net
        worst["stock"] = min(worst["stock"], float(net.stock.min()))
        worst["transit"] = min(worst["transit"], float(net.transit.min()))
        worst["pipe"] = min(worst["pipe"], float(net.pipe.min()))
        worst["backlog"] = min(worst["backlog"], float(net.backlog.min()))
        worst["licence"] = min(worst["licence"], float(net.licence_left.min()))
        mil = net.military[net.buy] & net.cn_export
        military_licensed = max(military_licensed, float(net.licence_left[mil].max(initial=0.0)))
    return model, worst, military_licensed


@pytest.mark.parametrize("material", MATERIALS)
def test_material_is_conserved_every_day(shock_run, material):
    """produced - consumed = change in stocks + change in transit, for each material, each day."""
    ts = shock_run.timeseries
    held = ts[f"stock_{material}_t"] + ts[f"transit_{material}_t"]
    net_flow = (ts[f"produced_{material}_t"] - ts[f"consumed_{material}_t"]).cumsum()
    initial = held.iloc[0] - net_flow.iloc[0]
    residual = (held - initial - net_flow).abs()
    assert residual.max() <= 1e-9 * max(held.max(), 1.0), residual.max()


def test_transit_matches_the_pipeline(stepped):
    model, _, _ = stepped
    net = model.net
    np.testing.assert_allclose(net.pipe.sum(axis=0), net.transit, rtol=1e-9, atol=1e-9)


def test_no_stock_is_ever_negative(stepped):
    _, worst, _ = stepped
    for name, value in worst.items():
        assert value >= -1e-9, f"{name} went negative: {value}"


def test_military_end_users_never_hold_a_chinese_licence(stepped, shock_run):
    _, _, military_licensed = stepped
    assert military_licensed == 0.0
    assert shock_run.summary["cn_licences"]["approved_military"] == 0


def test_licences_add_up_every_day(shock_run):
    ts = shock_run.timeseries
    lhs = ts["cn_licences_submitted_cum"]
    rhs = (
        ts["cn_licences_approved_cum"]
        + ts["cn_licences_denied_cum"]
        + ts["cn_licences_pending"]
        + ts["cn_licences_returned_cum"]
    )
    assert (lhs == rhs).all()
    assert lhs.iloc[-1] > 100  # the queue was really used


def test_plants_idle_only_when_their_buffer_cannot_cover_a_day(stepped):
    model, _, _ = stepped
    fleet, net = model.plants, model.net
    from rareshock.model.codes import Material

    # after the last step: running plants had a day's magnets; idle plants hold less than the restart level
    idle = fleet.idle
    stock = net.stock[fleet.nodes, Material.NDFEB]
    need = net.need[fleet.nodes, Material.NDFEB]
    restart = model.cfg.automakers.restart_cover_days
    assert (stock[idle] < need[idle] * restart + need[idle] + 1e-9).all()


def test_records_are_finite(shock_run, baseline_run):
    for run in (shock_run, baseline_run):
        values = run.timeseries.drop(columns="date").to_numpy(dtype=float)
        assert np.isfinite(values).all()
