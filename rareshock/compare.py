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
from rareshock.model.schema import Strict

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


class ComparisonSettings(Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    scenarios: list[str] = Field(min_length=1)
    replications: Annotated[int, Field(ge=1, le=10_000)] = 10
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    reproduce: bool = False
    posterior: Annotated[str, Field(min_length=1)] | None = None
    posterior_draws: Annotated[int, Field(ge=1, le=10_000)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _draws(cls, data):
        from rareshock.calibration.posterior import posterior_replications

        return posterior_replications(data)


class ComparisonConfig(Strict):
    comparison: ComparisonSettings


def load_comparison(path: str | Path, root: Path | None = None):
    """The comparison's settings, scenario paths and posterior draws (None without a posterior)."""
    p = Path(path)
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
    if s.posterior is not None:
        from rareshock.calibration.posterior import check_draws, load_posterior

        post = load_posterior(s.posterior, root, p.parent, what="comparison.posterior")
        draws = (post, post.draws(s.replications, s.seed))
        for i, sc in enumerate(scenarios):
            check_draws(sc.model_dump(mode="json"), draws[1], f"comparison.scenarios[{i}]")
    return s, paths, draws


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


def _run(path: str, seed: int, values: dict | None = None) -> tuple[dict, pd.DataFrame]:
    from rareshock.model.config import REGIONS, load_scenario
    from rareshock.simulation import run_model, summarise, timeseries
    from rareshock.sweeps.spec import scenario_for

    cfg = load_scenario(path)
    if values:
        cfg = scenario_for(cfg.model_dump(mode="json"), values)
    model = run_model(cfg, seed)
    summary = summarise(model)
    info = {"us_vehicles_per_day": float(model.plants.vpd_by_region[REGIONS.index("US")])}
    return summary, yearly(timeseries(model), info)


def run_comparison(path: str | Path, out_dir: Path, workers: int | None = None) -> list[str]:
    """Run every scenario x replicate and write the comparison files into ``out_dir`` (a new folder, or the
    stage of an :class:`rareshock.outputs.OutputDir`). Returns lines for the terminal."""
    from rareshock.outputs import atomic_write_text, build_manifest, to_json
    from rareshock.sweeps.spec import run_seed

    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    settings, paths, draws = load_comparison(path)
    jobs = [
        (i, r, str(p), run_seed(settings.seed, i, r)) for i, p in enumerate(paths) for r in range(settings.replications)
    ]
    values = [draws[1][r][1] if draws else None for _i, r, _p, _s in jobs]
    from rareshock.sweeps.executor import new_pool, stop_pool

    pool = new_pool(workers or os.cpu_count() or 1)  # workers die with this process
    finished = False
    try:
        results = list(pool.map(_run, [j[2] for j in jobs], [j[3] for j in jobs], values))
        finished = True
    finally:
        stop_pool(pool, kill=not finished)
    rows, years = [], []
    for (_i, r, _p, seed), (summary, yr) in zip(jobs, results):
        name = summary["scenario"]
        drawn = {"particle": draws[1][r][0], **draws[1][r][1]} if draws else {}
        rows.append(
            {"scenario": name, "replicate": r, "seed": seed, **drawn, **{m: summary.get(m) for m in SUMMARY_METRICS}}
        )
        years.append(yr.assign(scenario=name, replicate=r))
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
    for metric, label in YEARLY.items():
        _figure(yearly_df, metric, label, order, out_dir / "figures" / f"paths_{metric}.png")
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
    return [f"{settings.name}: {len(jobs)} runs of {len(paths)} scenarios -> {out_dir}"]


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


def _figure(df: pd.DataFrame, metric: str, label: str, order: list[str], path: Path) -> None:
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
    ax.set_xlabel("year")
    ax.set_ylabel(label)
    ax.set_title(f"{label}: median and 10-90% band over seeds")
    save_png(fig, path, bbox_inches="tight")
