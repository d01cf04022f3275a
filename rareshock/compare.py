"""Comparing policy paths: each scenario over replicated seeds, yearly metrics with uncertainty bands.

A comparison TOML (``experiments/comparisons/*.toml``) lists scenario files, a number of replications
and a seed. Run (scenario i, replicate r) gets ``run_seed(seed, i, r)`` (the sweep rule), so results do
not depend on the number of workers. With ``posterior = NAME`` and ``posterior_draws = N`` (instead of
``replications``), replicate r of every scenario runs posterior draw r of calibration NAME (the same N
draws for every scenario, drawn by systematic resampling with the comparison's seed; see
:mod:`rareshock.calibration.posterior`), still with seed ``run_seed(seed, i, r)``. It writes, atomically:

- ``runs.csv``: one row per scenario and replicate with its seed and summary metrics (and, over a
  posterior, the draw's particle and parameter values);
- ``yearly.csv``: one row per scenario, replicate and calendar year with the yearly metrics below;
- ``table.csv`` and ``table.md``: per scenario, the median and 10th-90th percentile over replicates of
  each summary metric;
- ``monthly.csv``: one row per scenario, replicate and month with the :data:`MONTHLY` metrics;
- ``figures/paths_<metric>.png`` (and ``.svg``): the median by year with a 10-90% band, one line per scenario,
  and ``figures/monthly_<metric>.png`` the same by month (:func:`band_figure`: every scenario's events
  numbered and keyed, shared events once; a scenario that repeats another is named "same as" and drawn dashed
  over it; the price guard where a band reaches it; a caption with comparison, scenarios, draws and commit).
  A metric missing or constant in every run is not drawn; the command says so;
- ``manifest.json``.

With ``branch = DATE`` the scenarios are futures of one trunk (they must be equal up to DATE: see
:mod:`rareshock.state`, "What must match"). Replicate r (seed ``run_seed(seed, 0, r)``, posterior draw r)
simulates the trunk ONCE through DATE and forks the saved state into every scenario; each fork equals an
unbroken run of its scenario with that seed (tested), so the scenarios differ only by what happens after
DATE. Its monthly figures are ``figures/outlook_<metric>.png``: the shared trunk once, in grey, then each
future's median and 10-90% band, the branch date and each scenario's events after it marked.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from rareshock.model.config import ConfigError, format_error, read_toml
from rareshock.model.schema import Date, Strict

SUMMARY_METRICS = (
    "us_auto_idle_plant_days",
    "lost_vehicles_us",
    "shutdown_episodes_us",
    "defense_shortfall_share",
    "year_us_auto_magnets_non_cn_50",
    "year_us_auto_magnets_non_cn_80",
    "year_us_defense_magnets_non_cn",
    "investment_spent_usd",
    "floor_payments_usd",
    "us_chip_revenue_lost_usd",
    "cn_chip_localisation_end",
)
YEARLY = {
    "us_non_cn_share": ("Non-Chinese share of US magnet supply", "share of tonnes received in the year"),
    "us_idle_plant_days": ("US auto plants idled for lack of magnets", "idle plant-days per year"),
    "us_lost_vehicles": ("US vehicles short of plan", "vehicles per year"),
    "us_defense_shortfall": ("US defence shortfall", "share of need (yearly mean)"),
    "price_ndfeb_ex_cn_usd_kg": ("NdFeB magnet price outside China", "USD/kg (yearly mean)"),
    "price_dy_oxide_ex_cn_usd_kg": ("Dy oxide price outside China", "USD/kg (yearly mean)"),
    "us_chip_revenue_lost_usd": ("US chip revenue lost", "US$ per year"),
    "cn_chip_localisation": ("China's chip localisation", "share of demand (end of year)"),
    "investment_spent_usd_cum": ("Programme money spent", "US$, cumulative"),
}
MONTHLY = {
    "cn_magnet_exports_to_us_t": ("China's magnet exports to the US", "tonnes per month"),
    "us_idle_plant_days": ("US auto plants idled for lack of magnets", "idle plant-days per month"),
    "price_ndfeb_ex_cn_usd_kg": ("NdFeB magnet price outside China", "USD/kg (monthly mean)"),
    "price_dy_oxide_ex_cn_usd_kg": ("Dy oxide price outside China", "USD/kg (monthly mean)"),
    "cn_licences_pending": ("Chinese export licence applications pending", "applications (monthly mean)"),
    "us_non_cn_share": ("Non-Chinese share of US magnet supply", "share of tonnes received"),
}
PRICE_START = {  # price column -> its start price in [prices] (the model's guard is max_multiple times it)
    "price_ndfeb_ex_cn_usd_kg": "ndfeb_usd_kg",
    "price_dy_oxide_ex_cn_usd_kg": "dy_oxide_ex_cn_usd_kg",
}


class ComparisonSettings(Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    scenarios: list[str] = Field(min_length=1)
    replications: Annotated[int, Field(ge=1, le=10_000)] = 10
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    reproduce: bool = False
    posterior: Annotated[str, Field(min_length=1)] | None = None
    posterior_draws: Annotated[int, Field(ge=1, le=10_000)] | None = None
    branch: Date | None = None  # the scenarios are futures of one trunk simulated through this date
    # figures not drawn: metrics of YEARLY or MONTHLY that mean nothing in these scenarios (the 2024 chip
    # sector in a 2010 world)
    leave_out: list[str] = []

    @field_validator("leave_out")
    @classmethod
    def _known_figures(cls, names: list[str]) -> list[str]:
        known = sorted(set(YEARLY) | set(MONTHLY))
        for n in names:
            if n not in known:
                raise ValueError(f"unknown figure metric {n!r}; allowed: {', '.join(known)}")
        return names

    @model_validator(mode="before")
    @classmethod
    def _draws(cls, data):
        from rareshock.calibration.posterior import posterior_replications

        return posterior_replications(data)


class ComparisonConfig(Strict):
    comparison: ComparisonSettings


def load_comparison(path: str | Path, root: Path | None = None):
    """The comparison's settings, scenario paths and posterior draws (None without a posterior)."""
    from rareshock.resources import locate

    p = locate(path, "comparison")
    try:
        cfg = ComparisonConfig.model_validate(read_toml(p))
    except ValidationError as err:
        raise ConfigError(format_error(err, ComparisonConfig)) from None
    paths = [(p.parent / s).resolve() for s in cfg.comparison.scenarios]
    from rareshock.model.config import load_scenario

    scenarios = []
    for i, sp in enumerate(paths):
        try:
            scenarios.append(load_scenario(sp))
        except ConfigError as err:
            raise ConfigError(f"comparison.scenarios[{i}]: {err}") from None
    draws = None
    s = cfg.comparison
    if s.branch is not None:
        _check_trunk(scenarios, s.branch)
    if s.posterior is not None:
        from rareshock.calibration.posterior import check_draws, load_posterior

        post = load_posterior(s.posterior, root, p.parent, what="comparison.posterior")
        draws = (post, post.draws(s.replications, s.seed))
        for i, sc in enumerate(scenarios):
            check_draws(sc.model_dump(mode="json"), draws[1], f"comparison.scenarios[{i}]")
    return s, paths, draws


def _check_trunk(scenarios: list, date: dt.date) -> None:
    """Every scenario runs through ``date`` and equals the first one up to it (one trunk)."""
    from rareshock.state import first_difference, trunk_part

    for i, sc in enumerate(scenarios):
        if not sc.scenario.start <= date <= sc.scenario.end:
            raise ConfigError(
                f"comparison.branch: {date} is outside comparison.scenarios[{i}] ({sc.scenario.start} to "
                f"{sc.scenario.end})"
            )
    first = trunk_part(scenarios[0].model_dump(mode="json"), date)
    for i, sc in enumerate(scenarios[1:], start=1):
        diff = first_difference(first, trunk_part(sc.model_dump(mode="json"), date))
        if diff:
            raise ConfigError(
                f"comparison.scenarios[{i}]: differs from scenarios[0] up to the branch date {date} ({diff}); "
                f"branched scenarios share one trunk: only events after {date} may differ"
            )


def monthly(ts: pd.DataFrame) -> pd.DataFrame:
    """Monthly metrics of one run (:data:`MONTHLY`) from its daily time series."""
    d = ts.set_index("date")
    g = d.groupby(d.index.to_period("M"))
    out = pd.DataFrame(index=g.size().index)
    out["cn_magnet_exports_to_us_t"] = g["cn_magnet_exports_to_us_t"].sum()
    out["us_idle_plant_days"] = g["auto_plants_idle_us"].sum()
    out["price_ndfeb_ex_cn_usd_kg"] = g["price_ndfeb_ex_cn_usd_kg"].mean()
    out["price_dy_oxide_ex_cn_usd_kg"] = g["price_dy_oxide_ex_cn_usd_kg"].mean()
    out["cn_licences_pending"] = g["cn_licences_pending"].mean()
    received = g["us_magnets_received_t"].sum()
    out["us_non_cn_share"] = (g["us_magnets_non_cn_t"].sum() / received.where(received > 0)).fillna(0.0)
    out.index = out.index.strftime("%Y-%m")
    out.index.name = "month"
    return out.reset_index()


def yearly(ts: pd.DataFrame, model_info: dict) -> pd.DataFrame:
    """Yearly metrics of one run from its daily time series."""
    d = ts.set_index("date")
    y = d.index.year
    g = d.groupby(y)
    out = pd.DataFrame(index=g.size().index)
    received = g["us_magnets_received_t"].sum()
    out["us_non_cn_share"] = (g["us_magnets_non_cn_t"].sum() / received.where(received > 0)).fillna(0.0)
    out["us_idle_plant_days"] = g["auto_plants_idle_us"].sum()
    out["us_lost_vehicles"] = model_info["us_vehicles_per_day"] * g.size() - g["vehicles_produced_us"].sum()
    out["us_defense_shortfall"] = 1.0 - g["us_defense_output_share"].mean()
    out["price_ndfeb_ex_cn_usd_kg"] = g["price_ndfeb_ex_cn_usd_kg"].mean()
    out["price_dy_oxide_ex_cn_usd_kg"] = g["price_dy_oxide_ex_cn_usd_kg"].mean()
    lost = d["us_chip_revenue_lost_usd_cum"]
    out["us_chip_revenue_lost_usd"] = lost.groupby(y).last() - lost.groupby(y).last().shift(fill_value=0.0)
    out["cn_chip_localisation"] = g["cn_chip_localisation"].last() if "cn_chip_localisation" in d else np.nan
    out["investment_spent_usd_cum"] = g["investment_spent_usd_cum"].last()
    out.index.name = "year"
    return out.reset_index()


def _config(path: str, values: dict | None):
    from rareshock.model.config import load_scenario
    from rareshock.sweeps.spec import scenario_for

    cfg = load_scenario(path)
    return scenario_for(cfg.model_dump(mode="json"), values) if values else cfg


def _results(model, with_monthly: bool = False) -> tuple:
    from rareshock.model.config import REGIONS
    from rareshock.simulation import summarise, timeseries

    ts = timeseries(model)
    info = {"us_vehicles_per_day": float(model.plants.vpd_by_region[REGIONS.index("US")])}
    out = (summarise(model), yearly(ts, info))
    return (*out, monthly(ts)) if with_monthly else out


def _run(path: str, seed: int, values: dict | None = None, with_monthly: bool = False) -> tuple:
    """(summary, yearly) of one run, and its monthly metrics with ``with_monthly``."""
    from rareshock.simulation import run_model

    return _results(run_model(_config(path, values), seed), with_monthly)


def _run_monthly(path: str, seed: int, values: dict | None = None) -> tuple:
    return _run(path, seed, values, with_monthly=True)


def _run_branched(paths: list[str], seed: int, values: dict | None, date: dt.date) -> list[tuple]:
    """One replicate of a branched comparison: the trunk (the first scenario) simulated once through
    ``date``, its state forked into every scenario. Returns (summary, yearly, monthly) per scenario."""
    from rareshock.state import branch, dumps_model, loads_model, run_until, step_to_end

    cfgs = [_config(p, values) for p in paths]
    state = dumps_model(run_until(cfgs[0], seed, date))
    out = []
    for cfg in cfgs:
        model = loads_model(state)
        branch(model, cfg)
        step_to_end(model)
        out.append(_results(model, with_monthly=True))
    return out


def run_comparison(path: str | Path, out_dir: Path, workers: int | None = None) -> list[str]:
    """Run every scenario x replicate and write the comparison files into ``out_dir`` (a new folder, or the
    stage of an :class:`rareshock.outputs.OutputDir`). Returns lines for the terminal."""
    from rareshock.outputs import atomic_write_text, build_manifest, to_json
    from rareshock.sweeps.spec import run_seed

    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    settings, paths, draws = load_comparison(path)
    reps = range(settings.replications)
    from rareshock.sweeps.executor import new_pool, stop_pool

    pool = new_pool(min(workers or os.cpu_count() or 1, len(paths) * settings.replications))  # die with us
    finished = False
    try:
        if settings.branch is None:
            jobs = [(i, r, str(p), run_seed(settings.seed, i, r)) for i, p in enumerate(paths) for r in reps]
            values = [draws[1][r][1] if draws else None for _i, r, _p, _s in jobs]
            results = list(pool.map(_run_monthly, [j[2] for j in jobs], [j[3] for j in jobs], values))
        else:  # one trunk per replicate, forked into every scenario
            seeds = [run_seed(settings.seed, 0, r) for r in reps]
            values = [draws[1][r][1] if draws else None for r in reps]
            n = len(paths)
            forked = list(
                pool.map(
                    _run_branched, [[str(p) for p in paths]] * len(seeds), seeds, values, [settings.branch] * len(seeds)
                )
            )
            jobs = [(i, r, str(p), seeds[r]) for i, p in enumerate(paths) for r in reps]
            results = [forked[r][i] for i in range(n) for r in reps]
        finished = True
    finally:
        stop_pool(pool, kill=not finished)
    rows, years, months = [], [], []
    for (_i, r, _p, seed), (summary, yr, *mo) in zip(jobs, results):
        name = summary["scenario"]
        drawn = {"particle": draws[1][r][0], **draws[1][r][1]} if draws else {}
        rows.append(
            {"scenario": name, "replicate": r, "seed": seed, **drawn, **{m: summary.get(m) for m in SUMMARY_METRICS}}
        )
        years.append(yr.assign(scenario=name, replicate=r))
        if mo:
            months.append(mo[0].assign(scenario=name, replicate=r))
    runs = pd.DataFrame(rows)
    yearly_df = pd.concat(years, ignore_index=True)[["scenario", "replicate", "year", *YEARLY]]
    order = list(dict.fromkeys(runs["scenario"]))
    table = _table(runs, order)
    from rareshock.outputs import read_marker, write_marker

    out_dir.mkdir(parents=True, exist_ok=True)
    if read_marker(out_dir) is None:
        write_marker(out_dir, "comparison")
    (out_dir / "figures").mkdir(exist_ok=True)
    atomic_write_text(out_dir / "runs.csv", runs.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(out_dir / "yearly.csv", yearly_df.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(out_dir / "table.csv", table.to_csv(index=False))
    over = f"{settings.replications} draws of posterior {draws[0].name} (one seed each)" if draws else None
    atomic_write_text(out_dir / "table.md", _markdown(table, settings.replications, over))
    config = {"comparison": settings.model_dump(mode="json"), "scenarios": [str(p) for p in paths]}
    if draws:
        config["posterior"] = draws[0].provenance()
    manifest = build_manifest(
        config,
        settings.seed,
        started,
        time.perf_counter() - t0,
        ["rareshock", "reproduce"],
    )
    manifest["kind"] = "comparison"
    monthly_df = pd.concat(months, ignore_index=True)[["scenario", "replicate", "month", *MONTHLY]]
    atomic_write_text(out_dir / "monthly.csv", monthly_df.to_csv(index=False, float_format="%.10g"))
    notes = write_figures(settings, paths, order, yearly_df, monthly_df, out_dir / "figures", draws, manifest)
    atomic_write_text(out_dir / "manifest.json", to_json(manifest))
    how = f" ({settings.replications} trunks through {settings.branch}, forked)" if settings.branch else ""
    return [f"{settings.name}: {len(jobs)} runs of {len(paths)} scenarios{how} -> {out_dir}", *notes]


def _fmt(x: float, metric: str) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "never"
    if metric.startswith("year_"):
        return f"{x:.0f}"
    if metric.endswith("_usd"):
        return f"{x / 1e9:.1f}bn"
    if metric.endswith("share"):
        return f"{100 * x:.0f}%"
    if metric.endswith("_end"):
        return f"{x:.2f}"
    return f"{x:,.0f}"


def _table(runs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Median [p10-p90] over replicates; for first-year metrics 'never' counts as later than any year."""
    rows = []
    for name in order:
        sub = runs[runs["scenario"] == name]
        row = {"scenario": name}
        for m in SUMMARY_METRICS:
            x = pd.to_numeric(sub[m], errors="coerce").to_numpy(dtype=float)
            never = 10**6  # "never" sorts after every year
            if m.startswith("year_"):
                x = np.where(np.isnan(x), never, x)
            if np.isnan(x).all():
                row[m] = "n/a"
                continue
            lo, med, hi = np.nanpercentile(x, [10, 50, 90], method="lower")
            is_year = m.startswith("year_")
            med, lo, hi = (float("nan") if is_year and v >= never else v for v in (med, lo, hi))
            row[m] = f"{_fmt(med, m)} [{_fmt(lo, m)}-{_fmt(hi, m)}]"
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame, reps: int, over: str | None = None) -> str:
    cols = list(table.columns)
    lines = [
        f"Median [10th-90th percentile] over {over or f'{reps} seeds'} per path.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
ALL = "all"  # the scenarios an event belongs to, when it is every scenario's


def _over(settings: ComparisonSettings, draws) -> str:
    n = settings.replications
    return f"{n} draws of posterior {draws[0].name}" if draws else f"{n} seed{'s' if n != 1 else ''}"


def caption_line(settings: ComparisonSettings, order: list[str], draws, manifest: dict | None) -> str:
    """The figures' caption: comparison, scenarios, seeds or posterior draws, commit."""
    from rareshock.figstyle import caption_text, commit_of

    what = f"{_over(settings, draws)} (seed {settings.seed})"
    if settings.branch is not None:
        what += f", one trunk each forked on {settings.branch}"
    return caption_text(
        extra=f"comparison {settings.name}: {', '.join(order)} · {what}", commit=commit_of(manifest) or "unknown"
    )


def scenario_marks(
    configs: list, order: list[str], after: dt.date | None = None
) -> list[tuple[dt.date, str, tuple[str, ...]]]:
    """Every scenario's events (and the lapse of its suspensions) within its own period and after ``after``,
    as (date, label, scenarios it belongs to): an event of every scenario once, with ``(ALL,)``.
    ``configs`` are the scenarios' validated configs, in the order of ``order``."""
    from rareshock.figstyle import event_marks

    owners: dict[tuple[dt.date, str], list[str]] = {}
    for name, cfg in zip(order, configs):
        start = cfg.scenario.start if after is None else max(cfg.scenario.start, after + dt.timedelta(days=1))
        for day, label in event_marks(cfg.events, start, cfg.scenario.end, detail=True):
            owners.setdefault((day, label), []).append(name)
    out = []
    for (day, label), names in sorted(owners.items()):
        out.append((day, label, (ALL,) if len(names) == len(order) and len(order) > 1 else tuple(names)))
    return out


def price_limits(configs: list, metric: str) -> tuple[dict[float, list[str]], dict[float, list[str]]]:
    """For a price column, the model's numerical price guards, each -> the scenarios that have it: upper
    (``prices.max_multiple`` x the start price) and lower (the start price / ``prices.max_multiple``).
    ``configs`` are the scenarios' validated configs. Both empty for any other column."""
    upper: dict[float, list[str]] = {}
    lower: dict[float, list[str]] = {}
    if metric not in PRICE_START:
        return upper, lower
    for cfg in configs:
        start = getattr(cfg.prices, PRICE_START[metric])
        upper.setdefault(float(cfg.prices.max_multiple * start), []).append(cfg.scenario.name)
        lower.setdefault(float(start / cfg.prices.max_multiple), []).append(cfg.scenario.name)
    return upper, lower


def _bands(df: pd.DataFrame, period: str, metric: str, name: str) -> pd.DataFrame:
    """p10 (lower), median and p90 (higher) of ``metric`` per period over one scenario's replicates."""
    g = df[df["scenario"] == name].groupby(period)[metric]
    return pd.DataFrame(
        {
            "p10": g.quantile(0.1, interpolation="lower"),
            "median": g.median(),
            "p90": g.quantile(0.9, interpolation="higher"),
        }
    )


def _x(index: pd.Index, period: str) -> pd.DatetimeIndex:
    if period == "year":
        return pd.to_datetime([f"{int(y)}-07-01" for y in index])  # a year's value mid-year
    return pd.to_datetime(index) + pd.Timedelta(days=14)  # a month's value mid-month


def _same_as(bands: dict[str, pd.DataFrame], order: list[str], since: pd.Timestamp | None, period: str) -> dict:
    """Scenario -> the earlier scenario whose median and band it repeats (to 1e-6), over the periods after
    ``since``: lines drawn on top of each other would hide a scenario."""
    out: dict[str, str] = {}
    for k, name in enumerate(order):
        a = bands[name]
        if since is not None:
            a = a[_x(a.index, period) > since]
        for other in order[:k]:
            if other in out:
                continue
            b = bands[other]
            if since is not None:
                b = b[_x(b.index, period) > since]
            aligned = a.shape == b.shape and len(a) and (a.index == b.index).all()
            if aligned and np.allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6, atol=1e-12, equal_nan=True):
                out[name] = other
                break
    return out


def band_figure(
    df: pd.DataFrame,
    period: str,
    metric: str,
    title: str,
    unit: str,
    order: list[str],
    marks: list[tuple[dt.date, str, tuple[str, ...]]],
    over: str,
    caption: str,
    path: Path,
    branch: dt.date | None = None,
    guards: dict[float, list[str]] | None = None,
    floors: dict[float, list[str]] | None = None,
) -> str | None:
    """The median and 10-90% band of ``metric`` per scenario by ``period`` ("year" or "month"), each
    scenario's events numbered and keyed, a line that repeats another's drawn dashed over it and named in
    the legend, the price guard where a band reaches it (``guards`` above, ``floors`` below), and the caption;
    written as PNG and SVG. With ``branch``, the shared trunk before it is drawn once, in grey. Yearly values of
    a run of three years or fewer are drawn as points with 10-90% bars, side by side, not as lines between
    two or three points. Returns why nothing was drawn, or None."""
    from matplotlib.figure import Figure

    from rareshock import figstyle
    from rareshock.outputs import save_png, use_agg

    values = df[metric].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return f"{path.name}: not drawn: no run has a value of {metric}"
    if np.ptp(finite) == 0:
        shown = figstyle.format_value(metric, float(finite[0]))
        return f"{path.name}: not drawn: {metric} is {shown} in every scenario, {period} and run"
    use_agg()
    bands = {name: _bands(df, period, metric, name) for name in order}
    cut = pd.Timestamp(branch) if branch is not None else None
    same = _same_as(bands, order, cut, period)
    colour = {name: f"C{k}" for k, name in enumerate(order)}
    mark_colour = [
        "0.25" if names == (ALL,) else (colour[names[0]] if len(names) == 1 else "0.5") for _d, _t, names in marks
    ]
    key_lines = [(d, f"{t}  [{', '.join(names)}]") for d, t, names in marks]
    key_h = figstyle.key_height(len(marks))
    fig = Figure(figsize=(11.0, 4.8 + key_h), layout="constrained")
    if marks:
        ax, key = fig.subplots(2, 1, height_ratios=[4.8, key_h])
    else:
        ax, key = fig.subplots(1, 1), None
    yearly = period == "year"
    style = {"marker": "o", "ms": 4} if yearly else {}
    dup_count: dict[str, int] = {}
    few = yearly and cut is None and max(len(b) for b in bands.values()) <= 3
    # lines that coincide over part of the run (a deal path equal to the status quo until it differs) stay
    # visible: each scenario's median is drawn wider than the ones drawn after it, so it edges them
    distinct = [n for n in order if n not in same]
    width = {n: 1.3 + 0.6 * (len(distinct) - 1 - j) for j, n in enumerate(distinct)}
    for k, name in enumerate(order):
        q = bands[name]
        x = _x(q.index, period)
        keep = np.ones(len(x), dtype=bool)
        if cut is not None:
            if k == 0:  # the trunk is the same in every scenario: drawn once, in grey
                trunk = x <= cut
                ax.fill_between(x[trunk], q["p10"][trunk], q["p90"][trunk], color="0.5", alpha=0.2, lw=0)
                ax.plot(x[trunk], q["median"][trunk], color="0.3", lw=1.6, label="shared trunk to the branch date")
            keep = x >= cut - pd.Timedelta(days=31)  # each future starts from the branch month
        label = name
        shift = pd.Timedelta(days=round(40 * (k - (len(order) - 1) / 2)))  # few points: scenarios side by side
        if name in same:
            m = dup_count[same[name]] = dup_count.get(same[name], 0) + 1
            label = f"{name} (same as {same[name]})"
            if few:  # hollow points beside the scenario it repeats
                ax.plot(x[keep] + shift, q["median"][keep], "o", ms=5, color=colour[name], mfc="white", label=label)
                continue
            ls = (3.5 * (m - 1), (3.5, 3.5 * (len(order) - 1)))  # dashes of each copy between the others'
            ax.plot(x[keep], q["median"][keep], color=colour[name], lw=1.8, ls=ls, mfc="white", **style)
            ax.plot([], [], color=colour[name], lw=1.8, ls="--", label=label, mfc="white", **style)  # legend
            continue
        if few:  # two or three yearly values: points with 10-90% bars
            med = q["median"][keep].to_numpy(float)
            err = [med - q["p10"][keep].to_numpy(float), q["p90"][keep].to_numpy(float) - med]
            ax.errorbar(x[keep] + shift, med, yerr=err, fmt="o", ms=5, capsize=3, color=colour[name], label=label)
            continue
        ax.fill_between(x[keep], q["p10"][keep], q["p90"][keep], color=colour[name], alpha=0.15, lw=0)
        ax.plot(x[keep], q["median"][keep], color=colour[name], lw=width[name], label=label, **style)
    if cut is not None:
        ax.axvline(cut, color="k", ls="--", lw=1)
        ax.annotate(
            f"branch {branch}",
            (cut, 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7.5,
        )
    top = max(float(np.nanmax(b["p90"].to_numpy(float))) for b in bands.values())
    for guard, names in sorted((guards or {}).items()):
        if top >= 0.8 * guard:  # a band reaches the model's price guard: show where it is
            who = "" if len(names) == len(order) else f" ({', '.join(names)})"
            ax.axhline(guard, color="#C44E52", lw=1.0, ls=":", label=f"model price guard{who}")
            ax.annotate(
                f"price guard: prices.max_multiple × start price = {guard:,.0f} USD/kg{who}",
                (0.0, guard),
                xycoords=("axes fraction", "data"),
                xytext=(4, -3),
                textcoords="offset points",
                va="top",
                fontsize=7.5,
                color="#C44E52",
            )
    bottom = min(float(np.nanmin(b["p10"].to_numpy(float))) for b in bands.values())
    for floor, names in sorted((floors or {}).items()):
        if bottom <= 1.5 * floor:  # a band reaches the lower guard: a price there is a model artefact
            who = "" if len(names) == len(order) else f" ({', '.join(names)})"
            ax.axhline(floor, color="#C44E52", lw=1.0, ls=":", label=f"model price guard, lower{who}")
            ax.annotate(
                f"lower price guard: start price / prices.max_multiple = {floor:,.1f} USD/kg{who}; "
                "a price here is a model artefact (README, Policy paths)",
                (1.0, floor),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 3),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7.5,
                color="#C44E52",
                bbox={"facecolor": "white", "alpha": 0.85, "linewidth": 0, "pad": 1.5},
            )
    lo = float(np.nanmin(finite))
    if lo >= 0:
        ax.set_ylim(bottom=0)
    figstyle.flat_note(ax, finite, title)
    figstyle.value_axis(ax, metric)
    first, last = pd.Timestamp(str(df[period].min())), pd.Timestamp(str(df[period].max()))
    last += pd.DateOffset(years=1) if yearly else pd.DateOffset(months=1)
    ax.set_xlim(first, last)  # whole periods, so events at their ends stay on the chart
    figstyle.date_axis(ax, years=(last - first).days / 365.25)
    figstyle.mark_events(ax, [(d, t) for d, t, _ in marks], colours=mark_colour)
    ax.set_ylabel(unit)
    ax.set_xlabel("calendar year (each point: the year's value, drawn mid-year)" if yearly else "")
    ax.set_title(f"{title}, by {period}: median and 10-90% band over {over}", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.25)
    if key is not None:
        what = "after the branch date" if cut is not None else "of each scenario"
        figstyle.event_key(
            key,
            key_lines,
            colours=mark_colour,
            title=f"Policy events {what} (numbered dashed lines above; [scenarios], 'all' = every scenario)",
        )
    figstyle.caption(fig, caption, reserve=True)
    save_png(fig, path)
    return None


def write_figures(
    settings: ComparisonSettings,
    paths: list[Path],
    order: list[str],
    yearly_df: pd.DataFrame,
    monthly_df: pd.DataFrame,
    fig_dir: Path,
    draws=None,
    manifest: dict | None = None,
) -> list[str]:
    """``paths_<metric>`` (yearly) and, by month, ``outlook_<metric>`` (a branched comparison: the futures
    after the branch date) or ``monthly_<metric>``; returns a line for each figure not drawn and why."""
    from rareshock.model.config import load_scenario

    over, cap = _over(settings, draws), caption_line(settings, order, draws, manifest)
    configs = [load_scenario(p) for p in paths]  # each scenario read once, for its events and price guards
    all_marks = scenario_marks(configs, order)
    notes = []
    left_out = set(settings.leave_out)
    notes += [f"{metric}: not drawn: left out by the comparison (leave_out)" for metric in sorted(left_out)]
    for metric, (title, unit) in YEARLY.items():
        if metric in left_out:
            continue
        guards, floors = price_limits(configs, metric)
        note = band_figure(
            yearly_df,
            "year",
            metric,
            title,
            unit,
            order,
            all_marks,
            over,
            cap,
            fig_dir / f"paths_{metric}.png",
            guards=guards,
            floors=floors,
        )
        notes += [note] if note else []
    prefix, marks = ("monthly", all_marks) if settings.branch is None else ("outlook", None)
    if settings.branch is not None:
        marks = scenario_marks(configs, order, after=settings.branch)
    for metric, (title, unit) in MONTHLY.items():
        if metric in left_out:
            continue
        guards, floors = price_limits(configs, metric)
        note = band_figure(
            monthly_df,
            "month",
            metric,
            title,
            unit,
            order,
            marks,
            over,
            cap,
            fig_dir / f"{prefix}_{metric}.png",
            branch=settings.branch,
            guards=guards,
            floors=floors,
        )
        notes += [note] if note else []
    return notes
