"""Comparing a run with the record: China's monthly exports from the model against observed monthly values.

A scenario names its observations with ``[scenario] record_file`` (a CSV under the repository, e.g.
``experiments/validation/china_exports_2025.csv``; columns ``month`` (YYYY-MM, or ``2024-mean`` for the
pre-shock monthly mean), ``series`` (``magnets``: China's magnet exports; ``rare_earths``: China's customs
"rare earths" exports, 17 elements, mostly light rare earths), ``tonnes``, ``how`` (stated or how it was
derived) and ``source`` (a key of docs/sources.md)). The observations are outcomes: they are compared with,
never fitted to.

``monthly_quantiles(frames)``
    For each whole calendar month of the run, the median and 10th/90th percentiles over posterior draws
    of the monthly sums of the compared model columns (quantiles of monthly sums, not sums of daily
    quantiles).
``fig_exports_vs_record(monthly, record, events, n, caption)``
    The figure: magnet exports (t/month) and the model's Dy/Tb oxide exports against the customs
    rare-earth series, every policy event marked and numbered, with a key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rareshock.figstyle import event_marks

ROOT = Path(__file__).resolve().parents[1]
MODEL_SERIES = {"magnets": "cn_magnet_exports_t", "dytb_oxide": "cn_dytb_oxide_exports_t"}
QUANTILES = {"": 0.5, "_p10": 0.1, "_p90": 0.9}


def load_record(path: str | Path) -> pd.DataFrame:
    """The observations (repo-relative path): one row per month and series."""
    from rareshock.resources import shipped_file

    rec = pd.read_csv(shipped_file(path), dtype={"month": str, "series": str, "how": str, "source": str})
    bad = sorted(set(rec["series"]) - {"magnets", "rare_earths"})
    if bad:
        raise ValueError(f"{path}: unknown series {bad[0]!r}; allowed: magnets, rare_earths")
    return rec


def _monthly(ts: pd.DataFrame) -> pd.DataFrame:
    """Monthly sums (t/month) of the compared columns over whole calendar months only."""
    dates = pd.to_datetime(ts["date"])
    month = dates.dt.to_period("M")
    cols = [c for c in MODEL_SERIES.values() if c in ts.columns]
    sums = ts[cols].groupby(month.to_numpy()).sum()
    days = month.value_counts().sort_index()
    whole = days.index[days.to_numpy() == days.index.days_in_month]
    return sums.loc[sums.index.isin(whole)]


def monthly_quantiles(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Median, p10 and p90 over draws of each whole month's sum (one row per month)."""
    sums = [_monthly(f) for f in frames]
    arr = np.stack([s.to_numpy(dtype=float) for s in sums])
    out = {"month": [str(p) for p in sums[0].index]}
    for j, c in enumerate(sums[0].columns):
        for suffix, q in QUANTILES.items():
            out[c + suffix] = np.quantile(arr[:, :, j], q, axis=0, method="inverted_cdf")
    return pd.DataFrame(out)


def fig_exports_vs_record(
    monthly: pd.DataFrame, record: pd.DataFrame, events: list[dict], n: int, caption: str | None = None
):
    """Two panels and an event key (see the module docstring); ``n`` posterior draws (1: a single run);
    ``caption``: the figure's caption line (scenario, seed or draws, commit)."""
    from matplotlib.figure import Figure

    from rareshock import figstyle

    x = pd.PeriodIndex(monthly["month"], freq="M").to_timestamp() + pd.Timedelta(days=14)
    labels = event_marks(events, detail=True)
    lo = x.min() - pd.Timedelta(days=20)
    hi = max(x.max(), max((pd.Timestamp(d) for d, _ in labels), default=x.max())) + pd.Timedelta(days=20)
    labels = [(d, t) for d, t in labels if lo <= pd.Timestamp(d) <= hi]
    columns = 1 if len(labels) <= 8 else 2
    key_h = figstyle.key_height(len(labels), columns)
    fig = Figure(figsize=(12, 8.6 + key_h), layout="constrained")
    grid = fig.add_gridspec(3 if labels else 2, 1, height_ratios=[4.6, 3.6] + ([key_h] if labels else []))
    ax1, ax2 = fig.add_subplot(grid[0]), fig.add_subplot(grid[1], sharex=None)
    band = f"model: median and 10-90% band over {n} posterior draws" if n > 1 else "model: one run"

    def _series(ax, col, color, label):
        ax.plot(x, monthly[col], color=color, marker="o", ms=3, label=label)
        if col + "_p10" in monthly.columns and n > 1:
            ax.fill_between(x, monthly[col + "_p10"], monthly[col + "_p90"], color=color, alpha=0.2, lw=0)

    def _points(ax, series, color, label):
        r = record[(record["series"] == series) & (record["month"] != "2024-mean")]
        stated = r["how"].str.startswith("stated")
        when = pd.PeriodIndex(r["month"], freq="M").to_timestamp() + pd.Timedelta(days=14)
        ax.scatter(when[stated.to_numpy()], r["tonnes"][stated], color=color, s=36, zorder=5, label=label)
        ax.scatter(
            when[~stated.to_numpy()],
            r["tonnes"][~stated],
            facecolors="none",
            edgecolors=color,
            s=36,
            zorder=5,
            label=f"{label.split(':')[0]}: derived (sums less months, means)",
        )
        mean = record[(record["series"] == series) & (record["month"] == "2024-mean")]
        if len(mean):
            ax.axhline(float(mean["tonnes"].iloc[0]), color=color, ls=":", lw=1, label="record: 2024 monthly mean")

    _series(ax1, "cn_magnet_exports_t", "C0", f"{band}")
    _points(ax1, "magnets", "k", "record: customs, stated")
    ax1.set_title("China's rare-earth magnet exports: model and record", loc="left")
    ax1.set(ylabel="Tonnes per month")
    _series(ax2, "cn_dytb_oxide_exports_t", "C1", f"Dy/Tb oxide exports, {band}")
    ax2.set(ylabel="Model Dy/Tb oxide, t/month")
    ax2b = ax2.twinx()
    _points(ax2b, "rare_earths", "C3", "record: customs 'rare earths' (17 elements), stated")
    ax2b.set(ylabel="Customs 'rare earths', t/month")
    ax2.set_title(
        "Rare earths: not like for like. The model carries Dy/Tb, Sm and NdPr oxides only; the customs series is "
        "mostly La/Ce",
        fontsize=10,
        loc="left",
    )
    ax2b.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.set_xlim(lo, hi)
        figstyle.date_axis(ax)
        figstyle.plain_axis(ax)
        ax.grid(True, color="0.9", lw=0.6)
        figstyle.mark_events(ax, labels)
    figstyle.plain_axis(ax2b)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax2b.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8)
    ax1.legend(loc="lower right", fontsize=8)
    if labels:
        key = fig.add_subplot(grid[2])
        width = 150 if columns == 1 else 80
        figstyle.event_key(key, [(d, figstyle._short(t, width)) for d, t in labels], columns=columns)
    if caption:
        figstyle.caption(fig, caption)
    return fig


def write_record_figure(
    monthly: pd.DataFrame, config: dict, fig_dir: Path, n: int, manifest: dict | None = None
) -> str | None:
    """Draw ``exports_vs_record.png`` (and its SVG) if the scenario names a record file; returns the PNG's
    name. The caption names the scenario, the seed or number of draws and the commit of ``manifest``."""
    from rareshock.outputs import FigureContext, save_png, use_agg

    path = (config.get("scenario") or {}).get("record_file")
    if not path:
        return None
    use_agg()
    ctx = FigureContext.of(config, manifest, seed=(manifest or {}).get("seed"), draws=n)
    fig = fig_exports_vs_record(monthly, load_record(path), config.get("events", []), n, ctx.caption())
    save_png(fig, fig_dir / "exports_vs_record.png")
    return "exports_vs_record.png"
