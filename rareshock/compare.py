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
- ``figures/paths_<metric>.png``: the median by year with a 10-90% band, one line per scenario;
- ``manifest.json``.

With ``branch = DATE`` the scenarios are futures of one trunk (they must be equal up to DATE: see
:mod:`rareshock.state`, "What must match"). Replicate r (seed ``run_seed(seed, 0, r)``, posterior draw r)
simulates the trunk ONCE through DATE and forks the saved state into every scenario; each fork equals an
unbroken run of its scenario with that seed (tested), so the scenarios differ only by what happens after
DATE. It also writes ``monthly.csv`` (scenario, replicate, month, the :data:`MONTHLY` metrics) and
``figures/outlook_<metric>.png``: the monthly median with a 10-90% band per scenario over the whole period,
the branch date and each scenario's events after it marked.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

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
    "us_non_cn_share": "non-Chinese share of US magnet supply",
    "us_idle_plant_days": "US idle plant-days",
    "us_lost_vehicles": "US vehicles lost",
    "us_defense_shortfall": "US defence shortfall (share of need)",
    "price_ndfeb_ex_cn_usd_kg": "NdFeB price outside China (USD/kg)",
    "price_dy_oxide_ex_cn_usd_kg": "Dy oxide price outside China (USD/kg)",
    "us_chip_revenue_lost_usd": "US chip revenue lost in the year (USD)",
    "cn_chip_localisation": "China's chip localisation (share)",
    "investment_spent_usd_cum": "programme money spent, cumulative (USD)",
}
MONTHLY = {
    "cn_magnet_exports_to_us_t": ("China's magnet exports to the US", "tonnes per month"),
    "us_idle_plant_days": ("US auto plants idled for lack of magnets", "idle plant-days per month"),
    "price_ndfeb_ex_cn_usd_kg": ("NdFeB magnet price outside China", "USD/kg (monthly mean)"),
    "price_dy_oxide_ex_cn_usd_kg": ("Dy oxide price outside China", "USD/kg (monthly mean)"),
    "cn_licences_pending": ("Chinese export licence applications pending", "applications (monthly mean)"),
    "us_non_cn_share": ("Non-Chinese share of US magnet supply", "share of tonnes received"),
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


def _run(path: str, seed: int, values: dict | None = None) -> tuple[dict, pd.DataFrame]:
    from rareshock.simulation import run_model

    return _results(run_model(_config(path, values), seed))


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
            results = list(pool.map(_run, [j[2] for j in jobs], [j[3] for j in jobs], values))
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
    what = f"{settings.replications} draws of posterior {draws[0].name}" if draws else f"{settings.replications} seeds"
    for metric, label in YEARLY.items():
        _figure(yearly_df, metric, label, order, out_dir / "figures" / f"paths_{metric}.png", what)
    if months:
        monthly_df = pd.concat(months, ignore_index=True)[["scenario", "replicate", "month", *MONTHLY]]
        atomic_write_text(out_dir / "monthly.csv", monthly_df.to_csv(index=False, float_format="%.10g"))
        events = _future_events(paths, order, settings.branch)
        for metric, (title, unit) in MONTHLY.items():
            _outlook_figure(
                monthly_df,
                metric,
                title,
                unit,
                order,
                settings.branch,
                events,
                what,
                out_dir / "figures" / f"outlook_{metric}.png",
            )
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
    atomic_write_text(out_dir / "manifest.json", to_json(manifest))
    how = f" ({settings.replications} trunks through {settings.branch}, forked)" if settings.branch else ""
    return [f"{settings.name}: {len(jobs)} runs of {len(paths)} scenarios{how} -> {out_dir}"]


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


def _figure(df: pd.DataFrame, metric: str, label: str, order: list[str], path: Path, over: str = "seeds") -> None:
    from rareshock.outputs import save_png, use_agg

    use_agg()
    import seaborn as sns
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    sns.lineplot(
        data=df,
        x="year",
        y=metric,
        hue="scenario",
        hue_order=order,
        estimator="median",
        errorbar=("pi", 80),
        ax=ax,
        marker="o",
    )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("year")
    ax.set_ylabel(label)
    ax.set_title(f"{label}: median and 10-90% band over {over}")
    save_png(fig, path, bbox_inches="tight")


def _event_label(ev) -> str:
    """A short label: a marker's text, else the event's note and kind, else the kind and the fields it sets."""
    if ev.kind == "marker":
        return ev.label
    if getattr(ev, "note", ""):
        return f"{ev.note} ({ev.kind})"
    if ev.kind == "deal":
        return f"deal: {', '.join(t.kind for t in ev.terms)}"
    shown = []
    for k, v in ev.model_dump(exclude={"kind", "date", "source", "note"}, exclude_defaults=True).items():
        if v in ([], {}):
            continue
        shown.append(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}")
    text = f"{ev.kind}" + (f" ({'; '.join(shown)})" if shown else "")
    return text if len(text) <= 100 else text[:97] + "..."


def _future_events(paths: list[Path], order: list[str], date: dt.date) -> dict[str, list[tuple[dt.date, str]]]:
    """Each scenario's events dated after the branch date (what the outlooks add)."""
    from rareshock.model.config import load_scenario

    out = {}
    for name, p in zip(order, paths):
        out[name] = [(ev.date, _event_label(ev)) for ev in load_scenario(p).events if ev.date > date]
    return out


def _outlook_figure(
    df: pd.DataFrame,
    metric: str,
    title: str,
    unit: str,
    order: list[str],
    date: dt.date,
    events: dict,
    over: str,
    path: Path,
) -> None:
    """Monthly median and 10-90% band per scenario (one trunk, then the futures), the branch date and
    each scenario's later events marked."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, PercentFormatter

    from rareshock.outputs import save_png, use_agg

    use_agg()
    # events after the branch: those of every scenario once (black), the others in their scenario's colour;
    # numbered in date order on the plot, listed under it
    common = set.intersection(*(set(events.get(n, [])) for n in order)) if order else set()
    grouped: dict[tuple, list[str]] = {}
    for d, lab in sorted(common):
        grouped.setdefault((d, -1), []).append(lab)
    for k, n in enumerate(order):
        for d, lab in events.get(n, []):
            if (d, lab) not in common:
                grouped.setdefault((d, k), []).append(lab)
    marks = sorted(((d, "; ".join(labs), k) for (d, k), labs in grouped.items()), key=lambda m: (m[0], m[2]))
    lines = max(1, len(marks))
    fig = Figure(figsize=(10, 5.0 + 0.16 * lines), layout="constrained")
    ax, notes = fig.subplots(2, 1, height_ratios=[5.0, 0.16 * lines + 0.2])
    for k, name in enumerate(order):
        sub = df[df["scenario"] == name]
        g = sub.groupby("month")[metric]
        q = pd.DataFrame(
            {
                "p10": g.quantile(0.1, interpolation="lower"),
                "median": g.median(),
                "p90": g.quantile(0.9, interpolation="higher"),
            }
        )
        x = pd.to_datetime(q.index) + pd.Timedelta(days=14)  # mid-month
        cut = pd.Timestamp(date)
        trunk, after = x <= cut, x >= cut - pd.Timedelta(days=31)  # futures start from the branch month
        if k == 0:  # the trunk is the same in every scenario: drawn once, in grey
            ax.fill_between(x[trunk], q["p10"][trunk], q["p90"][trunk], color="0.5", alpha=0.2, linewidth=0)
            ax.plot(
                x[trunk], q["median"][trunk], color="0.3", lw=1.6, label="trunk to the branch date (shared), median"
            )
        ax.fill_between(x[after], q["p10"][after], q["p90"][after], color=f"C{k}", alpha=0.18, linewidth=0)
        ax.plot(x[after], q["median"][after], color=f"C{k}", lw=1.8, label=f"{name}, median")
    ax.axvline(pd.Timestamp(date), color="k", ls="--", lw=1)
    ax.annotate(
        f"branch {date}",
        (pd.Timestamp(date), 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -4),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=8,
    )
    text, last = [], {}
    for i, (day, label, k) in enumerate(marks, start=1):
        near = k in last and (day - last[k][0]).days < 20  # a close mark in the same row: move the number on
        last[k] = (day, last[k][1] + 1 if near else 0)
        colour = "k" if k < 0 else f"C{k}"
        y = 0.03 + 0.05 * (k + 1)
        ax.plot([pd.Timestamp(day)], [y], marker="v", color=colour, ms=6, ls="none", transform=ax.get_xaxis_transform())
        ax.annotate(
            str(i),
            (pd.Timestamp(day), y),
            xycoords=("data", "axes fraction"),
            xytext=(4 + 8 * last[k][1], -2),
            textcoords="offset points",
            fontsize=7,
            color=colour,
            fontweight="bold",
        )
        who = "all outlooks" if k < 0 else order[k]
        text.append((f"{i}  {day}  {label}  [{who}]", colour))
    notes.axis("off")
    for j, (t, colour) in enumerate(text):
        notes.text(0.0, 1.0 - j / lines, t, transform=notes.transAxes, fontsize=7, color=colour, va="top")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if "share" in metric:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_ylim(bottom=0)
    ax.set_ylabel(unit)
    ax.set_title(f"{title}: median and 10-90% band over {over}")
    ax.legend(loc="upper left", fontsize=8)
    save_png(fig, path)
