"""The figures of a run: PNG and SVG, events marked and keyed, a caption naming scenario, seed and commit,
nothing empty or blown up, monthly values for long runs, and a flow chart whose stages balance."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareshock import outputs
from rareshock.api import Result
from rareshock.figstyle import event_marks
from rareshock.flows import flow_table, stage_totals
from tests.conftest import BASELINE, SHOCK, run_cached

SHORT = ("scenario.end=2025-06-30",)


def _manifest(result) -> dict:
    return outputs.build_manifest(result.config, result.seed, dt.datetime(2025, 1, 1, tzinfo=dt.UTC), 0.1, ["test"])


def _svg_text(path: Path) -> str:
    """The text of an SVG figure (written with svg.fonttype none, so its words are text elements)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def shock_figures(tmp_path_factory) -> tuple[Path, list[str], object, dict]:
    result = run_cached(str(SHOCK), 7, SHORT)
    manifest = _manifest(result)
    manifest["git"] = {"commit": "0123456789abcdef", "dirty": False}  # what the caption must name
    folder = tmp_path_factory.mktemp("figs")
    return folder, outputs.write_figures(result.timeseries, folder, result.config, manifest), result, manifest


def test_a_run_writes_png_and_svg_of_each_figure(shock_figures):
    folder, written, _, _ = shock_figures
    pngs = {n for n in written if n.endswith(".png")}
    assert pngs == {"cn_magnet_exports.png", "licences.png", "idle_plants.png", "prices.png", "flows.png"}
    for name in pngs:
        assert (folder / name).read_bytes().startswith(b"\x89PNG")
        assert (folder / name.replace(".png", ".svg")).read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert sorted(written) == sorted(p.name for p in folder.iterdir())


def test_time_charts_key_the_scenarios_events_and_captions_name_scenario_seed_commit(shock_figures):
    folder, written, result, _ = shock_figures
    start, end = result.timeseries["date"].iloc[[0, -1]]
    marks = event_marks(result.config["events"], start.date(), end.date())
    assert len(marks) >= 3  # controls on 4 April, the chip rule, the Geneva truce ... up to the end of June
    for name in ("cn_magnet_exports.svg", "licences.svg", "idle_plants.svg", "prices.svg"):
        text = _svg_text(folder / name)
        for i, (day, label) in enumerate(marks, start=1):
            assert f"{i} {day.isoformat()} {label}" in text, (name, label)
        assert "scenario april_2025_shock" in text and "seed 7" in text and "commit 0123456" in text, name
    assert "commit 0123456" in _svg_text(folder / "flows.svg")


def test_a_baseline_run_writes_no_empty_chart_and_draws_a_flat_price_from_zero(baseline_run, tmp_path):
    ts = baseline_run.timeseries
    assert not ts.filter(like="auto_plants_idle_").to_numpy().any()  # no plant idles without controls
    written = outputs.write_figures(ts, tmp_path, baseline_run.config, _manifest(baseline_run))
    # no idle-plant or licence chart: nothing idled, no licence was filed (skipped, not drawn empty)
    assert "idle_plants.png" not in written and "licences.png" not in written
    assert {"cn_magnet_exports.png", "prices.png", "flows.png"} <= set(written)
    text = _svg_text(tmp_path / "prices.svg")
    assert "The price varies by less than 2% over the run" in text
    with pytest.raises(ValueError, match="nothing to show in the idle_plants figure"):
        Result("b", 1, {}, ts, baseline_run.config).plot("idle_plants")


def test_a_flat_price_axis_starts_at_zero():
    fig = outputs.fig_prices(_frame(60, price=lambda n: 100 + np.linspace(0, 0.8, n)))
    for ax in fig.axes[:3]:
        lo, hi = ax.get_ylim()
        assert lo == 0 and hi > 100  # a 0.8% drift is not blown up to full height


def _frame(days: int, price=None, start: str = "2025-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(3)
    dates = pd.date_range(start, periods=days, freq="D")
    df = pd.DataFrame({"date": dates, "cn_magnet_exports_t": rng.gamma(2, 40, days)})
    for code in ("us", "eu", "jp", "in", "row"):
        df[f"cn_magnet_exports_to_{code}_t"] = df["cn_magnet_exports_t"] / 6
        df[f"auto_plants_idle_{code}"] = rng.integers(0, 5, days)
    for m in ("ndpr_oxide", "dy_oxide", "ndfeb"):
        for side in ("cn", "ex_cn"):
            df[f"price_{m}_{side}_usd_kg"] = price(days) if price else 100 + np.cumsum(rng.normal(0, 1, days))
    return df


def test_decade_runs_are_drawn_monthly():
    df = _frame(3 * 365, start="2026-01-01")  # 36 calendar months
    for draw in (outputs.fig_idle_plants, outputs.fig_prices):
        fig = draw(df)
        lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() and ln.get_linestyle() == "-"]
        assert lines and all(len(ln.get_xdata()) == 36 for ln in lines), draw.__name__
    short = outputs.fig_idle_plants(_frame(200))
    assert {len(ln.get_xdata()) for ln in short.axes[0].get_lines() if ln.get_linestyle() == "-"} == {200}


def test_the_flow_chart_balances_against_the_recorded_totals(shock_figures):
    ts = shock_figures[2].timeseries
    t = stage_totals(ts)

    def total(prefix: str, materials: tuple[str, ...]) -> np.ndarray:
        return ts[[f"{prefix}_{m}_t" for m in materials]].sum(axis=1).to_numpy()

    for materials, made_key, out_keys in (
        (("ndpr_oxide", "dytb_oxide", "sm_oxide"), "oxide_separated", ("oxide_shipped",)),
        (("ndfeb", "smco"), "magnets_made", ("magnets_shipped", "magnets_used")),
    ):
        produced, consumed = total("produced", materials), total("consumed", materials)
        held = total("stock", materials) + total("transit", materials)
        at_start = consumed.sum() + held[-1] - produced.sum()  # production + start = use + end stock + transit
        assert t[made_key] == pytest.approx(produced.sum(), rel=1e-12)
        for key in out_keys:  # what leaves a stage is at most what it made plus what was held at the start
            assert 0 < t[key] <= produced.sum() + at_start + 1e-6, key
    assert t["magnets_used"] == pytest.approx(total("consumed", ("ndfeb", "smco")).sum(), rel=1e-12)
    table = flow_table(ts)  # the chart's links carry the same tonnes, per year
    per_year = 365.25 / len(ts)
    for stage, key in ((0, "oxide_shipped"), (1, "magnets_shipped"), (2, "magnets_used")):
        assert table.links.loc[table.links["stage"] == stage, "tonnes"].sum() == pytest.approx(t[key] * per_year)


def test_fan_charts_of_posterior_draws(tmp_path):
    from rareshock.calibration.posterior import fan_quantiles, write_band_figures

    frames = []
    for k in range(5):
        df = _frame(120)
        df["cn_magnet_exports_t"] *= 1 + k / 10
        df["cn_licences_pending"] = k
        frames.append(df)
    fans = fan_quantiles(frames)
    q = fans["cn_magnet_exports_t|month"]
    assert len(q) == 4 and (q.diff(axis=1).iloc[:, 1:] >= 0).all().all()  # months; q10 <= ... <= q90
    assert fans["cn_licences_pending|mean"]["q50"].eq(2).all()
    ts = frames[0].assign(**{f"{c}_p10": frames[0][c] for c in frames[0].columns if c != "date"})
    ts = ts.assign(**{f"{c}_p90": frames[0][c] for c in frames[0].columns if c != "date"})
    config = {"scenario": {"name": "fans"}, "events": [{"kind": "marker", "date": "2025-02-01", "label": "truce"}]}
    written = write_band_figures(ts, tmp_path, 5, fans, config, {"seed": 3, "git": {"commit": "abcdef0123"}})
    assert "bands_cn_magnet_exports.png" in written and "bands_cn_magnet_exports.svg" in written
    text = _svg_text(tmp_path / "bands_cn_magnet_exports.svg")
    assert "1 2025-02-01 truce" in text and "5 posterior draws (seed 3)" in text and "commit abcdef0" in text


def test_the_api_plot_draws_the_flow_chart():
    r = run_cached(str(BASELINE), 1, ("scenario.end=2025-02-28",))
    res = Result("baseline_2024", 1, r.summary, r.timeseries, r.config)
    fig = res.plot("flows")
    assert "scenario baseline_2024" in " ".join(t.get_text() for t in fig.texts)
