"""Policy paths over a decade: directions that follow from mechanisms, and accounting that closes."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from rareshock.model.config import load_scenario
from rareshock.simulation import run_model, summarise, timeseries
from tests.conftest import ROOT

SCEN = ROOT / "experiments" / "scenarios"


@cache
def _run(name: str, seed: int, overrides: tuple[str, ...] = ()):
    model = run_model(load_scenario(SCEN / f"{name}.toml", list(overrides)), seed)
    return model, summarise(model), timeseries(model)


def _share_in(ts, year: int) -> float:
    y = ts[ts["date"].dt.year == year]
    return float(y["us_magnets_non_cn_t"].sum() / max(y["us_magnets_received_t"].sum(), 1e-9))


def test_more_investment_brings_non_chinese_supply_forward():
    """Paired seeds, with and without the programme. On average over seeds, by 2034 more of US supply is
    free of Chinese material and the year in which half of US automakers' magnets are free of Chinese
    material comes earlier (never later in any seed); in every seed more non-Chinese magnet and heavy-REE
    capacity exists. (Not more content in every seed: the few heavy-REE projects may fail, and programme
    magnet plants can come before heavy-REE separation and dilute non-Chinese Dy/Tb.)"""
    short = ("scenario.end=2034-12-31",)
    gains, years0, years1 = [], [], []
    for seed in range(4):
        _, s0, ts0 = _run("decoupling", seed, short + ("investment.budget_usd=0",))
        _, s1, ts1 = _run("decoupling", seed, short)
        gains.append(_share_in(ts1, 2034) - _share_in(ts0, 2034))
        years0.append(s0["year_us_auto_magnets_non_cn_50"] or 2035)  # 2035: not by the end
        years1.append(s1["year_us_auto_magnets_non_cn_50"] or 2035)
        assert years1[-1] <= years0[-1]
        assert ts1["ex_cn_ndfeb_capacity_tpa"].iloc[-1] > ts0["ex_cn_ndfeb_capacity_tpa"].iloc[-1] + 5000
        assert ts1["ex_cn_dytb_capacity_tpa"].iloc[-1] > ts0["ex_cn_dytb_capacity_tpa"].iloc[-1] + 100
    assert np.mean(gains) > 0.02, gains
    assert np.mean(years1) < np.mean(years0), (years0, years1)


def test_no_budget_means_no_capacity_beyond_announced_projects():
    model, summary, ts = _run("status_quo", 0, ("scenario.end=2031-12-31",))
    inv = model.cfg.investment
    announced_magnets = sum(a.tpa for a in inv.announced if a.stage == "magnets")
    base = model.investment.programme.base["magnets"]
    assert all(p.announced for p in model.investment.programme.projects)
    assert summary["investment_spent_usd"] == 0.0
    assert ts["ex_cn_ndfeb_capacity_tpa"].max() <= base + announced_magnets + 1e-6


def test_capacity_waits_for_lead_times_and_workforce():
    base = ("scenario.end=2030-12-31", "investment.announced_projects=false")
    no_staff = base + ("investment.workforce_start=0", "investment.trained_per_year=0", "investment.training_share=0")
    model, _, ts = _run("decoupling", 0, no_staff)
    assert model.investment.programme.projects and not any(
        p.status == "operating" for p in model.investment.programme.projects
    )
    assert ts["ex_cn_ndfeb_capacity_tpa"].iloc[-1] == pytest.approx(ts["ex_cn_ndfeb_capacity_tpa"].iloc[0])
    slow = base + tuple(
        f"investment.stages.{s}.lead_years=20" for s in ("mining", "separation", "metal", "magnets", "recycling")
    )
    model, _, ts = _run("decoupling", 0, slow)
    assert not any(p.status == "operating" for p in model.investment.programme.projects)
    model, _, _ = _run("decoupling", 0, base)
    for p in model.investment.programme.projects:
        if p.status == "operating":
            assert p.online_day >= p.ready_day >= p.start_day + 1  # never before its development time


DEAL_SEEDS = range(5)
EX_CN = ("us", "eu", "jp", "in", "row")


def _after_deal(ts):
    """Shortages from the deal's date on: plant-days below plan or idle outside China, and the output share
    of industrial magnet users outside China."""
    after = ts["date"] >= "2026-01-15"
    short = sum(ts[f"auto_plants_below_plan_{r}"] + ts[f"auto_plants_idle_{r}"] for r in EX_CN)
    return int(short[after].sum()), float(ts["industry_output_share_ex_cn"][after].mean())


def test_a_deal_reduces_shortages_against_status_quo_and_escalation():
    """Paired seeds, from the deal's date on: with the deal, plants outside China are short (below plan
    or idle) on no more plant-days than in the status quo (fewer on average) and on fewer than under
    escalation, in every seed; industrial users outside China get at least as much of what they need as
    in the status quo (more on average) and more than under escalation."""
    short = ("scenario.end=2028-12-31",)
    out = {
        name: np.array([_after_deal(_run(name, s, short)[2]) for s in DEAL_SEEDS])
        for name in ("licensing_deal", "status_quo", "escalation")
    }
    deal, quo, esc = out["licensing_deal"], out["status_quo"], out["escalation"]
    assert (deal[:, 0] <= quo[:, 0]).all() and deal[:, 0].mean() < quo[:, 0].mean(), (deal, quo)
    assert (deal[:, 0] < esc[:, 0]).all(), (deal, esc)
    # industrial users: never less than in the status quo (equal in seeds where neither is short after the
    # deal's date), more on average, and more than under escalation in every seed
    assert (deal[:, 1] >= quo[:, 1]).all() and deal[:, 1].mean() > quo[:, 1].mean(), out
    assert (deal[:, 1] > esc[:, 1]).all(), out


def test_without_floors_chinas_price_response_delays_or_stops_projects():
    """Where new non-Chinese supply costs about what it sells for, floors keep every project going
    whatever China does; without floors, China's price response stalls and cancels projects and fewer
    operate, more than without that response.

    "About what it sells for" is measured, not assumed, so that recalibrated prices do not move the test
    off the margin: without learning (so that costs stay put while China's response grows), the magnet
    stage's unit cost is set so that the mine-to-magnet cost is 98% of the lowest monthly ex-China magnet
    price of 2026-2031 in the run with floors and no price response (with floors, unit costs change
    nothing in that run). Without China's response every project then covers its cost; once China
    undercuts new supply by more than 2%, they do not."""
    base = ("scenario.end=2031-12-31", "investment.announced_projects=false", "investment.learning_rate=0")
    stalled = lambda m: sum(p.stalled_days for p in m.investment.programme.projects)
    stopped = lambda m: sum(p.status == "cancelled" for p in m.investment.programme.projects)
    operating = lambda m: sum(p.status == "operating" for p in m.investment.programme.projects)
    for seed in range(2):
        ref, _, ts = _run(
            "managed_derisking", seed, base + ("investment.cn_price_response=0.0", "investment.floors=true")
        )
        after = ts[ts["date"].dt.year >= 2026]
        low = after.groupby(after["date"].dt.to_period("M"))["price_ndfeb_ex_cn_usd_kg"].mean().min()
        stages = ref.cfg.investment.stages
        others = sum(stages[s].unit_cost_usd_kg for s in ("mining", "separation", "metal"))
        cost = 0.98 * low - others
        assert cost > 5.0, cost
        runs = {
            (r, f): _run(
                "managed_derisking",
                seed,
                base
                + (
                    f"investment.stages.magnets.unit_cost_usd_kg={cost:.6f}",
                    f"investment.cn_price_response={r}",
                    f"investment.floors={f}",
                ),
            )[0]
            for r in ("0.0", "0.8")
            for f in ("true", "false")
        }
        for r in ("0.0", "0.8"):
            assert stalled(runs[(r, "true")]) == 0 and stopped(runs[(r, "true")]) == 0
            assert operating(runs[(r, "true")]) > 10
        assert stalled(runs[("0.0", "false")]) == 0  # covers its cost without China's response
        assert stalled(runs[("0.8", "false")]) > 0
        assert stopped(runs[("0.8", "false")]) > stopped(runs[("0.0", "false")])
        assert operating(runs[("0.8", "false")]) < operating(runs[("0.8", "true")])
        assert operating(runs[("0.8", "false")]) < operating(runs[("0.0", "false")])


def test_money_never_exceeds_the_budget_and_capacity_is_what_projects_delivered():
    budget = 2.0e9
    model, summary, ts = _run(
        "decoupling",
        1,
        ("scenario.end=2033-12-31", f"investment.budget_usd={budget}", "investment.metal_base_headroom=10"),
    )
    prog = model.investment.programme
    assert summary["investment_spent_usd"] <= budget + 1e-3
    assert (ts["investment_spent_usd_cum"].diff().dropna() >= -1e-6).all()
    assert prog.spent <= prog.committed + prog.released + 1e-3
    started = sum(p.capex for p in prog.projects if not p.announced)
    assert prog.committed + prog.released == pytest.approx(started)
    # separation and magnet capacity in the network = the base + every operating project's ramped output
    day = model.n_days - 1
    added = prog.capacity_by(day)
    magnets = sum(v for (k, _), v in added.items() if k == "magnets")
    assert ts["ex_cn_ndfeb_capacity_tpa"].iloc[-1] == pytest.approx(prog.base["magnets"] + magnets, rel=1e-6)


def test_licence_queues_conserve_applications_over_a_decade():
    _, s, ts = _run("escalation", 0)
    lhs = ts["cn_licences_submitted_cum"]
    rhs = (
        ts["cn_licences_approved_cum"]
        + ts["cn_licences_denied_cum"]
        + ts["cn_licences_pending"]
        + ts["cn_licences_returned_cum"]
    )
    assert (lhs == rhs).all()


def test_comparison_figures_name_repeated_lines_mark_the_price_guard_and_format_money(tmp_path):
    """Drawn from a constructed yearly table: two scenarios with the same numbers are both visible (the second
    named "same as"), a band that reaches the model's price guard shows it, dollars are in $bn."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from rareshock import compare

    rows = []
    for name, level in (("a", 1.0), ("b", 1.0), ("c", 3.0)):
        for r in range(5):
            for year in range(2025, 2031):
                v = level * (year - 2024) * (1 + 0.1 * r)
                rows.append({"scenario": name, "replicate": r, "year": year, "spent_usd": v * 1e9, "price": v * 1000})
    df = pd.DataFrame(rows)
    marks = [(dt.date(2026, 3, 1), "deal", ("b",)), (dt.date(2027, 1, 1), "rule", (compare.ALL,))]
    cap = "rareshock · comparison test: a, b, c · 5 seeds (seed 1) · commit 0123456"
    path = tmp_path / "paths_money.png"
    assert (
        compare.band_figure(df, "year", "spent_usd", "Money", "US$", ["a", "b", "c"], marks, "5 seeds", cap, path)
        is None
    )
    svg = path.with_suffix(".svg").read_text()
    assert path.read_bytes().startswith(b"\x89PNG") and cap.replace("·", "&#183;") in svg or cap in svg
    assert "b (same as a)" in svg and "$5bn" in svg and "5,000,000,000" not in svg
    assert "2026-03-01  deal  [b]" in svg and "2027-01-01  rule  [all]" in svg
    guard = {20000.0: ["a", "b", "c"]}
    out = tmp_path / "paths_price.png"
    compare.band_figure(df, "year", "price", "Price", "USD/kg", ["a", "b", "c"], [], "5 seeds", cap, out, guards=guard)
    assert "price guard: prices.max_multiple × start price = 20,000 USD/kg" in out.with_suffix(".svg").read_text()
    compare.band_figure(
        df, "year", "price", "Price", "USD/kg", ["a", "b", "c"], [], "5 seeds", cap, out, guards={1e6: ["a"]}
    )
    assert "price guard" not in out.with_suffix(".svg").read_text()  # far above every band: not drawn
    flat = df.assign(spent_usd=0.0)
    note = compare.band_figure(flat, "year", "spent_usd", "Money", "US$", ["a"], [], "5 seeds", cap, tmp_path / "z.png")
    assert note == "z.png: not drawn: spent_usd is $0 in every scenario, year and run"
    assert not (tmp_path / "z.png").exists()
    assert np.isfinite(df["spent_usd"]).all()


def test_short_comparisons_draw_points_the_lower_guard_and_leave_out_figures(tmp_path):
    """Two yearly values are points with 10-90% bars, not a line between two points; a band that reaches the
    lower price guard shows it as an artefact; `leave_out` names only known figure metrics."""
    import pandas as pd
    from matplotlib.figure import Figure

    from rareshock import compare

    rows = [
        {"scenario": name, "replicate": r, "year": year, "price": level * (1 + 0.1 * r) / (year - 2008)}
        for name, level in (("a", 10.0), ("b", 20.0))
        for r in range(5)
        for year in (2010, 2011)
    ]
    df = pd.DataFrame(rows)
    drawn: list = []
    real_savefig = Figure.savefig

    def spy(fig, *args, **kwargs):
        drawn.append(fig)
        return real_savefig(fig, *args, **kwargs)

    Figure.savefig = spy
    try:
        out = tmp_path / "paths_price.png"
        floors = {5.0: ["a", "b"]}
        assert (
            compare.band_figure(df, "year", "price", "P", "USD/kg", ["a", "b"], [], "5", "c", out, floors=floors)
            is None
        )
    finally:
        Figure.savefig = real_savefig
    ax = drawn[0].axes[0]
    assert len(ax.containers) == 2  # one errorbar container per scenario
    assert not [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"]
    assert "lower price guard: start price / prices.max_multiple = 5.0 USD/kg" in out.with_suffix(".svg").read_text()
    base = {"name": "x", "scenarios": ["a.toml"]}
    assert compare.ComparisonSettings(**base, leave_out=["cn_chip_localisation"]).leave_out == ["cn_chip_localisation"]
    with pytest.raises(ValueError, match="unknown figure metric 'chips'; allowed: cn_chip_localisation"):
        compare.ComparisonSettings(**base, leave_out=["chips"])
