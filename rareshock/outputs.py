"""Result files of one run: ``summary.json``, ``timeseries.parquet``, ``figures/*.png``, ``manifest.json``,
and the rules for every folder rareshock writes (:class:`OutputDir`).

A run directory is written atomically as a whole: everything goes into a hidden sibling directory, which
is renamed into place only once complete (``manifest.json`` last). A crash therefore never leaves a
directory that looks like a finished run but is not. Every output folder carries a marker (``.rareshock``,
with its kind); rareshock replaces only folders it marked that hold nothing else, takes a lock so that two
writers never share a folder, and cleans up what killed writers left.

Identical inputs give byte-identical ``summary.json`` and ``timeseries.parquet``; the manifest differs only
in its start time and duration (and in the git dirty flag if the working tree changed in between).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

PACKAGES = ("rareshock", "mesa", "numpy", "scipy", "pandas", "pyarrow", "seaborn", "matplotlib", "pydantic")
REPO_DIR = Path(__file__).resolve().parents[1]
PARQUET_COMPRESSION = "zstd"


class RunResultLike(Protocol):
    """What :func:`write_run` needs from ``rareshock.simulation.RunResult``."""

    summary: dict
    timeseries: pd.DataFrame
    config: dict
    seed: int


# --------------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (renames) to disk where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory, fsync and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _write_synced(path: Path, data: bytes) -> None:
    """Write and fsync a file inside a private staging directory (no rename needed there)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    """Plain JSON values from nested containers, NumPy scalars/arrays, dates and paths; NaN/inf -> None."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # NumPy scalars and arrays
    if callable(tolist):
        return _jsonable(tolist())
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """Stable, pretty JSON text (indent 2, sorted keys, trailing newline); NaN/inf become null."""
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def config_hash(config: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of a resolved config (sorted keys, no whitespace)."""
    canonical = json.dumps(
        _jsonable(config), sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------
def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_provenance(repo_dir: str | Path = REPO_DIR) -> dict[str, str | bool | None]:
    """``{"commit": sha | None, "dirty": bool | None}`` for the checkout at ``repo_dir``; never raises.

    Both are None outside a git checkout (or without git); ``commit`` alone is None in a repository
    without commits yet. Changes under ``results/`` (what rareshock itself writes there) do not make the
    tree dirty: regenerating the reference results one after another from a clean commit records that
    commit as clean in every manifest. Both are None too when ``repo_dir`` is not the top of its repository:
    an installed rareshock inside someone else's repository (a project's ``.venv``) is not that project's
    commit.
    """
    repo_dir = Path(repo_dir)
    top = _git(repo_dir, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != repo_dir.resolve():
        return {"commit": None, "dirty": None}
    status = _git(repo_dir, "status", "--porcelain", "--", ".", ":(exclude)results")
    if status is None:
        return {"commit": None, "dirty": None}
    head = _git(repo_dir, "rev-parse", "--verify", "--quiet", "HEAD")
    commit = (head or "").strip() or None
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None where it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _iso_utc(when: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix; naive datetimes are taken to be UTC already."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_manifest(
    config: dict, seed: int, started_at: dt.datetime, duration_s: float, command: list[str]
) -> dict[str, Any]:
    """Provenance of one run: resolved config and its hash, seed, git state, versions, platform, timing."""
    return {
        "config": _jsonable(config),
        "config_sha256": config_hash(config),
        "seed": int(seed),
        "git": git_provenance(REPO_DIR),
        "packages": package_versions(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "started_at": _iso_utc(started_at),
        "duration_s": round(float(duration_s), 3),
        "command": [str(c) for c in command],
    }


# --------------------------------------------------------------------------------------------------
# Time series
# --------------------------------------------------------------------------------------------------
def parquet_bytes(df: pd.DataFrame) -> bytes:
    """Parquet file contents for ``df`` (no index, zstd); the same frame always gives the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=PARQUET_COMPRESSION)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
LONG_RUN_DAYS = 731
"""A run longer than this (about two years) is drawn as monthly values with year ticks, not daily noise."""
IDLE_REGIONS = {"US": "us", "EU": "eu", "JP": "jp", "IN": "in", "CN": "cn", "Rest of world": "row"}
EXPORT_DESTINATIONS = {"US": "us", "EU": "eu", "JP": "jp", "IN": "in", "Rest of world": "row"}
PANEL_HEIGHT = 2.9  # inches per chart panel
FIG_WIDTH = 9.0


def use_agg() -> None:
    """Select the non-interactive Agg backend unless pyplot is already in use (e.g. in a notebook)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


@dataclass(frozen=True)
class FigureContext:
    """What every figure of a run names and marks: the scenario, its seed (or number of posterior draws),
    the commit that ran it, and the scenario's events (config dicts)."""

    scenario: str | None = None
    seed: int | None = None
    draws: int | None = None
    commit: str | None = None
    events: tuple = ()
    config: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        config: dict | None = None,
        manifest: dict | None = None,
        seed: int | None = None,
        draws: int | None = None,
        commit: str | None = None,
    ) -> FigureContext:
        """The context of a run from its resolved config and manifest (either may be missing); ``commit``
        defaults to the manifest's git commit (``+dirty`` if the tree was not clean)."""
        from rareshock.figstyle import commit_of

        config = config or (manifest or {}).get("config") or {}
        scenario = config.get("scenario") or {}
        if seed is None:
            seed = (manifest or {}).get("seed", scenario.get("seed"))
        if commit is None:
            commit = commit_of(manifest)
        return cls(scenario.get("name"), seed, draws, commit, tuple(config.get("events") or ()), config)

    def caption(self, extra: str | None = None) -> str:
        from rareshock.figstyle import caption_text

        return caption_text(self.scenario, self.seed, self.draws, self.commit, extra)

    def marks(self, start: Any, end: Any) -> list[tuple[dt.date, str]]:
        from rareshock.figstyle import event_marks

        return event_marks(self.events, pd_date(start), pd_date(end), detail=True)


def pd_date(x: Any) -> dt.date:
    """A date from a pandas Timestamp, a datetime64 or a date."""
    import pandas as pd

    return pd.Timestamp(x).date()


def monthly_view(df: pd.DataFrame) -> bool:
    """Whether a run is drawn monthly (longer than :data:`LONG_RUN_DAYS`)."""
    return len(df) > LONG_RUN_DAYS


def resample(df: pd.DataFrame, cols: dict[str, str], how: str = "mean", monthly: bool | None = None) -> pd.DataFrame:
    """The columns ``cols`` (label -> column; absent ones left out) by day or, for a long run (or with
    ``monthly``), by calendar month, indexed by the day each value is drawn at (a month's middle).

    ``how``: ``mean`` (levels: prices, counts), ``week`` (weekly means of a level, for daily counts that
    flicker; monthly means in a long run), ``last`` (cumulative counts) or ``month`` (flows: the
    month's total, t per month; a partial month at either end of the run is its daily mean times the
    month's days, so it does not show as a fall)."""
    import pandas as pd

    present = {label: c for label, c in cols.items() if c in df.columns}
    dates = pd.to_datetime(df["date"])
    data = pd.DataFrame({label: df[c].to_numpy(dtype=float) for label, c in present.items()}, index=dates)
    if how == "week" and not monthly_view(df):  # daily counts that flicker: weekly means (Monday-Sunday)
        weeks = dates.dt.to_period("W-SUN")
        out = data.groupby(weeks.to_numpy()).mean()
        out.index = pd.PeriodIndex(out.index, freq="W-SUN").start_time + pd.Timedelta(days=3)  # mid-week
        return out
    how = "mean" if how == "week" else how
    if monthly is None:
        monthly = monthly_view(df) or how == "month"
    if not monthly:
        return data
    grouped = data.groupby(dates.dt.to_period("M").to_numpy())
    out = {"mean": grouped.mean, "last": grouped.last, "month": grouped.mean}[how]()
    periods = pd.PeriodIndex(out.index, freq="M")
    if how == "month":
        out = out.mul(periods.days_in_month.to_numpy(), axis=0)
    out.index = periods.to_timestamp() + pd.Timedelta(days=14)
    return out


class TimeFigure:
    """A figure of time charts stacked over a shared date axis, the scenario's events marked on each and
    listed in a key below, and a caption line (see :mod:`rareshock.figstyle`)."""

    def __init__(self, ctx: FigureContext, df: pd.DataFrame, title: str, panels: int = 1, height: float = PANEL_HEIGHT):
        import pandas as pd
        from matplotlib.figure import Figure

        from rareshock.figstyle import key_height

        dates = pd.to_datetime(df["date"])
        self.ctx, self.start, self.end = ctx, dates.iloc[0], dates.iloc[-1]
        self.monthly = monthly_view(df)
        self.marks = ctx.marks(self.start, self.end)
        self.key_columns = 1 if len(self.marks) <= 8 else 2
        key_h = key_height(len(self.marks), self.key_columns)
        heights = [height] * panels + ([key_h] if self.marks else [])
        self.fig = Figure(figsize=(FIG_WIDTH, sum(heights) + 0.8), layout="constrained")
        grid = self.fig.add_gridspec(len(heights), 1, height_ratios=heights)
        self.axes = [self.fig.add_subplot(grid[i]) for i in range(panels)]
        for ax in self.axes[1:]:
            ax.sharex(self.axes[0])
        self.key = self.fig.add_subplot(grid[panels]) if self.marks else None
        self.fig.suptitle(title, fontsize=12, x=0.01, ha="left")

    def lines(self, ax: Any, data: pd.DataFrame, ylabel: str, markers: bool = False, **kw: Any) -> None:
        """One line per column of ``data`` (indexed by date), with a legend if there is more than one."""
        style = {"marker": "o", "ms": 3} if markers and len(data) <= 30 else {}
        for i, (label, s) in enumerate(data.items()):
            ax.plot(data.index, s.to_numpy(), color=f"C{i}", lw=1.6, label=label, **style, **kw)
        ax.set_ylabel(ylabel)
        if data.shape[1] > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    def finish(self, extra: str | None = None) -> Figure:
        """Date axis over the run, events marked and keyed, caption; returns the figure."""
        import pandas as pd

        from rareshock.figstyle import _short, caption, date_axis, event_key, mark_events

        years = (self.end - self.start).days / 365.25
        for ax in self.axes:
            ax.set_xlim(self.start - pd.Timedelta(days=2), self.end + pd.Timedelta(days=2))
            date_axis(ax, years)
            ax.grid(True, color="0.9", lw=0.6)
            ax.set_axisbelow(True)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            mark_events(ax, self.marks)
        for ax in self.axes[:-1]:
            ax.tick_params(labelbottom=False)
        if self.key is not None:
            width = 150 if self.key_columns == 1 else 46
            event_key(self.key, [(d, _short(t, width)) for d, t in self.marks], columns=self.key_columns)
        note = "monthly values" if self.monthly else None
        caption(self.fig, self.ctx.caption(", ".join(x for x in (extra, note) if x) or None))
        return self.fig


def _ctx(ctx: FigureContext | None) -> FigureContext:
    return ctx if ctx is not None else FigureContext()


def _nonzero(data: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``data`` that are not zero throughout."""
    return data.loc[:, (data.abs() > 0).any()]


def fig_exports(df: pd.DataFrame, ctx: FigureContext | None = None) -> Figure | None:
    """China's magnet exports by destination (US, EU, JP, IN, rest of world), tonnes per month."""
    from rareshock.figstyle import plain_axis

    cols = {label: f"cn_magnet_exports_to_{code}_t" for label, code in EXPORT_DESTINATIONS.items()}
    if "date" not in df.columns or not any(c in df.columns for c in [*cols.values(), "cn_magnet_exports_t"]):
        return None
    ctx = _ctx(ctx)
    monthly = resample(df, cols, "month")
    if "cn_magnet_exports_t" in df.columns:
        total = resample(df, {"Total": "cn_magnet_exports_t"}, "month")["Total"]
    else:
        total = monthly.sum(axis=1)
    other = (total - monthly.sum(axis=1)).clip(lower=0.0)
    if other.max() > 1e-6 * max(total.max(), 1e-12):
        monthly["Other"] = other
    tf = TimeFigure(ctx, df, "China's rare-earth magnet exports by destination", panels=2)
    tf.lines(tf.axes[0], total.to_frame("All destinations"), "Tonnes per month", markers=True)
    tf.axes[0].set_title("All destinations", fontsize=9, loc="left")
    tf.lines(tf.axes[1], _nonzero(monthly), "Tonnes per month", markers=True)
    tf.axes[1].set_title("By destination", fontsize=9, loc="left")
    for ax in tf.axes:
        ax.set_ylim(bottom=0)
        plain_axis(ax)
    return tf.finish()


def fig_licences(df: pd.DataFrame, ctx: FigureContext | None = None) -> Figure | None:
    """Chinese export licence applications: cumulative submitted, approved, denied and returned (top);
    pending and reviewers (bottom). None if no application was ever filed."""
    if "cn_licences_submitted_cum" not in df.columns or not df["cn_licences_submitted_cum"].any():
        return None
    from rareshock.figstyle import count_axis

    ctx = _ctx(ctx)
    cum = resample(
        df,
        {
            "Submitted": "cn_licences_submitted_cum",
            "Approved": "cn_licences_approved_cum",
            "Denied": "cn_licences_denied_cum",
            "Returned": "cn_licences_returned_cum",
        },
        "last",
    )
    now = resample(df, {"Pending review": "cn_licences_pending", "Reviewers": "cn_reviewers"}, "mean")
    tf = TimeFigure(ctx, df, "Chinese export licence applications", panels=2)
    tf.lines(tf.axes[0], cum, "Applications (cumulative)")
    tf.axes[0].set_title("Decided since the start of the run", fontsize=9, loc="left")
    tf.lines(tf.axes[1], now, "Count")
    tf.axes[1].set_title("Waiting for a decision, and MOFCOM's reviewers", fontsize=9, loc="left")
    for ax in tf.axes:
        ax.set_ylim(bottom=0)
        count_axis(ax)
    return tf.finish()


def fig_idle_plants(df: pd.DataFrame, ctx: FigureContext | None = None) -> Figure | None:
    """Auto assembly plants idled for lack of magnets, by region (only regions where a plant idled).
    None if no plant idled in the run: an empty chart would say nothing."""
    from rareshock.figstyle import count_axis, plain_axis

    ctx = _ctx(ctx)
    cols = {label: f"auto_plants_idle_{code}" for label, code in IDLE_REGIONS.items()}
    cols = {label: c for label, c in cols.items() if c in df.columns and df[c].any()}
    if not cols:
        return None
    plants = {
        label: ((ctx.config.get("automakers") or {}).get(code.upper()) or {}).get("plants")
        for label, code in IDLE_REGIONS.items()
    }
    data = resample(df, cols, "mean")
    data.columns = [f"{label} (of {plants[label]})" if plants.get(label) else label for label in data.columns]
    tf = TimeFigure(ctx, df, "Auto assembly plants idled for lack of magnets")
    tf.lines(tf.axes[0], data, "Idle plants" + (" (monthly mean)" if tf.monthly else ""))
    tf.axes[0].set_ylim(bottom=0)
    (plain_axis if tf.monthly else count_axis)(tf.axes[0])  # a monthly mean is not a whole number
    return tf.finish()


def _price_panel(tf: TimeFigure, ax: Any, df: pd.DataFrame, cols: dict[str, str], title: str) -> None:
    from rareshock.figstyle import flat_note, usd_axis

    data = resample(df, cols, "mean")
    tf.lines(ax, data, "USD per kg")
    ax.set_title(title, fontsize=9, loc="left")
    if not flat_note(ax, data.to_numpy().ravel(), "The price"):
        lo, hi = float(data.min().min()), float(data.max().max())
        ax.set_ylim(0 if lo < 0.5 * hi else lo * 0.9, hi * 1.08)
    usd_axis(ax, scale=1.0, unit="")


def fig_prices(df: pd.DataFrame, ctx: FigureContext | None = None) -> Figure | None:
    """Prices in China and outside it, USD/kg: NdPr oxide, Dy oxide, NdFeB magnets (those present). A price
    that hardly moves is drawn from zero and said to be flat, not blown up to full height."""
    panels = {
        "NdPr oxide": ("price_ndpr_oxide_cn_usd_kg", "price_ndpr_oxide_ex_cn_usd_kg"),
        "Dysprosium oxide": ("price_dy_oxide_cn_usd_kg", "price_dy_oxide_ex_cn_usd_kg"),
        "NdFeB magnets": ("price_ndfeb_cn_usd_kg", "price_ndfeb_ex_cn_usd_kg"),
    }
    panels = {t: c for t, c in panels.items() if any(x in df.columns for x in c)}
    if not panels or "date" not in df.columns:
        return None
    tf = TimeFigure(
        _ctx(ctx), df, "Rare-earth prices: China domestic and outside China", panels=len(panels), height=2.4
    )
    for ax, (title, (cn, ex)) in zip(tf.axes, panels.items(), strict=True):
        _price_panel(tf, ax, df, {"China domestic": cn, "Outside China": ex}, title)
    return tf.finish()


def fig_export_limits(df: pd.DataFrame, ctx: FigureContext | None = None) -> Figure | None:
    """Scenarios with an export quota or a customs hold (columns of ``agents/exports.py``): China's oxide
    exports by destination and non-Chinese makers' NdFeB shipments by region (t per month), and the NdPr
    oxide price in and outside China (USD/kg)."""
    from rareshock.figstyle import plain_axis

    if "cn_oxide_exports_to_jp_t" not in df.columns or "date" not in df.columns:
        return None
    tf = TimeFigure(
        _ctx(ctx),
        df,
        "Export quota and customs holds: oxide flows, makers outside China, NdPr price",
        panels=3,
        height=2.5,
    )
    regions = {"JP": "jp", "EU": "eu", "US": "us", "IN": "in", "Rest of world": "row"}
    oxide = resample(df, {r: f"cn_oxide_exports_to_{c}_t" for r, c in regions.items()}, "month")
    tf.lines(tf.axes[0], _nonzero(oxide), "Tonnes per month", markers=True)
    tf.axes[0].set_title("China's oxide exports (NdPr, Dy/Tb, Sm) by destination", fontsize=9, loc="left")
    makers = resample(df, {r: f"{r.lower()}_makers_ndfeb_shipped_t" for r in ("JP", "EU", "US")}, "month")
    tf.lines(tf.axes[1], _nonzero(makers), "Tonnes per month", markers=True)
    tf.axes[1].set_title("NdFeB shipped by magnet makers outside China", fontsize=9, loc="left")
    for ax in tf.axes[:2]:
        ax.set_ylim(bottom=0)
        plain_axis(ax)
    _price_panel(
        tf,
        tf.axes[2],
        df,
        {"China domestic": "price_ndpr_oxide_cn_usd_kg", "Outside China": "price_ndpr_oxide_ex_cn_usd_kg"},
        "NdPr oxide price",
    )
    return tf.finish()


def fig_flows(df: pd.DataFrame, ctx: FigureContext | None = None) -> Figure | None:
    """Material flows through the chain by region, an alluvial chart (see :mod:`rareshock.flows`)."""
    from rareshock.flows import fig_flows as draw

    return draw(df, _ctx(ctx))


FIGURES: dict[str, Callable[..., Figure | None]] = {
    "cn_magnet_exports.png": fig_exports,
    "licences.png": fig_licences,
    "idle_plants.png": fig_idle_plants,
    "prices.png": fig_prices,
    "export_limits.png": fig_export_limits,
    "flows.png": fig_flows,
}
"""The figures of a run (PNG, with an SVG of the same drawing beside each). A figure with nothing to show
(no licence filed, no plant idled, no export limit) is not written."""


def png_bytes(fig: Figure, **kw: Any) -> bytes:
    """PNG bytes of ``fig`` at the project's dpi, with no "Software" text chunk, so the bytes depend only
    on the drawing (figstyle.figure_bytes)."""
    from rareshock.figstyle import figure_bytes

    return figure_bytes(fig, "png", **kw)


def save_png(fig: Figure, path: Path, **kw: Any) -> None:
    """Write ``fig`` as a PNG and, beside it, an SVG of the same drawing, atomically (figstyle.save_figure)."""
    from rareshock.figstyle import save_figure

    save_figure(fig, path, **kw)


def write_figures(
    df: pd.DataFrame,
    fig_dir: Path,
    config: dict | None = None,
    manifest: dict | None = None,
    figures: dict[str, Callable[..., Figure | None]] | None = None,
    draws: int | None = None,
) -> list[str]:
    """Draw every figure of ``figures`` (default :data:`FIGURES`) whose data is present into ``fig_dir`` as
    PNG and SVG, each captioned with the run's scenario, seed (or ``draws`` posterior draws) and commit (from
    ``config`` and ``manifest``) and marking the scenario's events; return the file names written."""
    if df.empty:
        return []
    use_agg()
    from rareshock.figstyle import figure_bytes

    ctx = FigureContext.of(config, manifest, draws=draws)
    written = []
    for name, draw in (FIGURES if figures is None else figures).items():
        fig = draw(df, ctx)
        if fig is None:
            continue
        for fmt in ("png", "svg"):
            path = (fig_dir / name).with_suffix(f".{fmt}")
            _write_synced(path, figure_bytes(fig, fmt))
            written.append(path.name)
    return written


# --------------------------------------------------------------------------------------------------
# Output folders: what rareshock owns, one writer at a time, replaced only as a whole
# --------------------------------------------------------------------------------------------------
MARKER = ".rareshock"
"""File rareshock writes first into every output folder it creates, recording the folder's kind. A folder
without it is never replaced or deleted (delete the marker to protect a result from being replaced)."""
KINDS = ("run", "sweep", "comparison", "calibration")
RESUMABLE = ("sweep", "calibration")
"""Kinds of folder that are in place while they are being written, so that ``--resume`` can finish them."""
_OWNED: dict[str, frozenset[str]] = {
    "run": frozenset(
        {"summary.json", "timeseries.parquet", "draws.parquet", "monthly.parquet", "figures", "manifest.json"}
    ),
    "sweep": frozenset(
        {
            "runs.parquet",
            "timeseries.parquet",
            "design.parquet",
            "sweep_state.json",
            "manifest.json",
            "sensitivity.json",
            "sensitivity.csv",
            "discovery.json",
            "grid_means.csv",
            "sample_means.csv",
            "feature_scores.csv",
            "figures",
        }
    ),
    "comparison": frozenset(
        {"runs.csv", "yearly.csv", "monthly.csv", "table.csv", "table.md", "figures", "manifest.json"}
    ),
    "calibration": frozenset(
        {
            "abc.db",
            "abc.db-journal",
            "calibration_state.json",
            "posterior.parquet",
            "history.csv",
            "identifiability.csv",
            "identifiability.md",
            "predictive.parquet",
            "predictive.csv",
            "figures",
            "manifest.json",
        }
    ),
}
_PNG = re.compile(r"[^/]+\.(png|svg)")  # each figure as PNG and SVG (rareshock.figstyle)
_PART = re.compile(r"part-\d{6}\.parquet")
_SUBDIRS: dict[str, dict[str, re.Pattern]] = {
    "run": {"figures": _PNG},
    "sweep": {"figures": _PNG, "runs.parquet": _PART, "timeseries.parquet": _PART},
    "comparison": {"figures": _PNG},
    "calibration": {"figures": _PNG},
}
_ATOMIC_TMP = re.compile(r"\..+\.tmp")  # atomic_write_bytes' temporary files, ".NAME.XXXXXXXX.tmp"
NAME_MAX = 200
"""Longest output folder name in bytes: its stage ``.NAME.tmp-PID`` and lock ``.NAME.rareshock-lock`` sit
beside it and must fit the usual 255-byte limit of a file name."""
PATH_MAX = 3800
"""Longest output path in bytes, leaving room below Linux's 4096 for the files inside it."""
SHOWN_PATH = 100  # characters of a path shown in a message


class OutputDirError(ValueError):
    """The output folder cannot be used (bad path, not rareshock's, in use, not writable): a user error,
    exit code 2, nothing written. ``str(err)`` is one line."""


class OutputWriteError(RuntimeError):
    """Writing the results failed part-way (e.g. the disk filled up); nothing that looks complete is left.
    ``str(err)`` is one line."""


def show_path(path: str | os.PathLike) -> str:
    """A path for a one-line message: long ones keep their start and end."""
    text = os.fspath(path)
    if len(text) <= SHOWN_PATH:
        return text
    return f"{text[:40]}...{text[-(SHOWN_PATH - 43) :]}"


def read_marker(folder: Path) -> str | None:
    """The kind recorded in ``folder``'s rareshock marker, or None if it has none (or an unreadable one)."""
    marker = Path(folder) / MARKER
    try:
        if marker.is_symlink() or not marker.is_file():
            return None
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in KINDS else None


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as written by rareshock, of ``kind``."""
    version = package_versions(("rareshock",))["rareshock"]
    atomic_write_text(
        Path(folder) / MARKER,
        to_json(
            {
                "kind": kind,
                "written_by": f"rareshock {version}",
                "created_at": _iso_utc(dt.datetime.now(dt.UTC)),
                "note": "rareshock wrote this folder and may replace it with a new result of the same kind "
                "(see docs/reliability.md). Delete this file to protect the folder from being replaced.",
            }
        ),
    )


def foreign_entries(folder: Path, kind: str) -> list[str]:
    """What in ``folder`` rareshock did not write for a result of ``kind`` (names relative to ``folder``;
    sub-folders end with ``/``). Symbolic links are always foreign."""
    found: list[str] = []
    owned, subdirs = _OWNED[kind], _SUBDIRS[kind]
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name, is_dir = entry.name, entry.is_dir(follow_symlinks=False)
        shown = name + ("/" if is_dir else "")
        if entry.is_symlink():
            found.append(shown)
        elif name == MARKER or _ATOMIC_TMP.fullmatch(name):
            if is_dir:
                found.append(shown)
        elif name not in owned or is_dir != (name in subdirs):
            found.append(shown)
        elif is_dir:
            with os.scandir(entry.path) as sub_it:
                for sub in sorted(sub_it, key=lambda e: e.name):
                    ok = sub.is_file(follow_symlinks=False) and (
                        subdirs[name].fullmatch(sub.name) or _ATOMIC_TMP.fullmatch(sub.name)
                    )
                    if not ok:
                        found.append(f"{name}/{sub.name}" + ("/" if sub.is_dir(follow_symlinks=False) else ""))
    return found


def _listing(names: list[str], k: int = 3) -> str:
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lock:
    """An exclusive, non-blocking ``flock`` on a lock file; the file is removed on release.

    A lock file removed by its last holder may be recreated by the next writer, so after locking we check
    that the path still names the file we locked (else we retry): two writers can never both hold it.
    The kernel drops the lock when its holder dies, so a killed process never leaves a folder locked.
    """

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        """Lock, or raise :class:`BlockingIOError` (held by another process, whose note is in ``args``)."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no locking
            return
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise BlockingIOError(holder) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv[:6])[:200]}\n".encode(), 0)
                self.fd = fd
                return
            os.close(fd)
        raise BlockingIOError("lock file keeps changing")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


class OutputDir:
    """A result folder of one ``kind`` ("run", "sweep", "comparison" or "calibration") that this process may
    write.

    :meth:`open` checks the path (not empty, not a file or inside one, not the current folder, not too
    long, writable), creates missing parent folders, takes a lock beside the folder (a second writer gets
    :class:`OutputDirError` at once), deals with what earlier, killed writers left (see
    :meth:`_clean_leftovers`) and decides what to do with what is there (:attr:`state`):

    - nothing, or an empty folder: ``"new"``;
    - a folder marked as rareshock's (:data:`MARKER`) of the same kind and holding nothing rareshock did not
      write: ``"replace"`` for runs and comparisons; for sweeps ``"resume"`` with ``resume``, ``"replace"``
      with ``overwrite``, otherwise refused;
    - rareshock's folder of another kind: ``"replace"`` only with ``overwrite``;
    - anything else (no marker, or files rareshock did not write): refused, also with ``overwrite``.

    Results are written into :meth:`stage` (a hidden sibling, marked first) and put in place by
    :meth:`commit` in one rename; a replaced folder is moved aside first and deleted only once the new one
    is in place. :meth:`close` removes the stage if it was not committed, releases the lock and, if nothing
    was committed, removes the parent folders :meth:`open` created: a refused or failed command leaves
    nothing behind.
    """

    def __init__(
        self, out: str | os.PathLike, kind: str, *, overwrite: bool = False, resume: bool = False, flag: str = "--out"
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown output kind {kind!r}")
        self.raw = os.fspath(out) if not isinstance(out, str) else out
        self.kind, self.overwrite, self.resume, self.flag = kind, overwrite, resume, flag
        self.path: Path = Path()
        self.state = ""
        self.notes: list[str] = []
        self.committed = False
        self._created: list[Path] = []
        self._lock: _Lock | None = None
        self._stage: Path | None = None

    # -- context manager ----------------------------------------------------------------------------
    def __enter__(self) -> OutputDir:
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(ok=exc_type is None)

    def _err(self, what: str) -> OutputDirError:
        return OutputDirError(f"{self.flag} {show_path(self.raw)}: {what}")

    def _os_err(self, doing: str, err: OSError, name_file: bool = True) -> OutputDirError:
        shown = show_path(err.filename) if err.filename else ""
        where = f" ({shown})" if name_file and shown and shown not in doing and shown != show_path(self.path) else ""
        return self._err(f"cannot {doing}: {err.strerror or err}{where}")

    # -- opening --------------------------------------------------------------------------------------
    def open(self) -> OutputDir:
        self.path = self._checked_path()
        try:
            self._make_parents()
            lock = _Lock(self.path.parent / f".{self.path.name}.rareshock-lock")
            try:
                lock.acquire()
            except BlockingIOError as err:
                holder = f" ({err.args[0]})" if err.args and err.args[0] else ""
                raise self._err(
                    f"another rareshock process is writing there{holder}; wait for it to finish "
                    f"or choose another folder"
                ) from None
            except OSError as err:
                raise self._os_err(f"write in {show_path(self.path.parent)}", err, name_file=False) from None
            self._lock = lock
            self._clean_leftovers()
            self._classify()
        except BaseException:
            self.close(ok=False)
            raise
        return self

    def _checked_path(self) -> Path:
        text = self.raw
        if not text.strip():
            raise OutputDirError(f"{self.flag}: empty path; give the folder to write to")
        if "\x00" in text:
            raise OutputDirError(f"{self.flag}: the path contains a NUL character")
        absolute = Path(os.path.abspath(text))
        if absolute.parent == absolute:
            raise self._err("is the filesystem root; give a folder below it")
        encoded = os.fsencode(str(absolute))
        if len(encoded) > PATH_MAX:
            raise self._err(f"the path is {len(encoded):,} bytes long; at most {PATH_MAX:,} are allowed")
        long_parts = [p for p in absolute.parts if len(os.fsencode(p)) > 255]
        if long_parts:
            raise self._err(
                f"a folder name in the path is {len(os.fsencode(long_parts[0])):,} bytes long; at most 255 are allowed"
            )
        if len(os.fsencode(absolute.name)) > NAME_MAX:
            raise self._err(
                f"the folder name is {len(os.fsencode(absolute.name)):,} bytes long; at most {NAME_MAX} are allowed"
            )
        try:
            path = absolute.parent.resolve() / absolute.name
        except (OSError, RuntimeError) as err:
            raise self._err(f"cannot resolve the path ({err})") from None
        try:
            cwd = Path.cwd().resolve()
        except OSError:
            cwd = None
        if cwd is not None and (path == cwd or path in cwd.parents):
            raise self._err("is the current folder or contains it; give a new or empty folder")
        probe = path.parent
        while not os.path.lexists(probe):
            probe = probe.parent
        if not probe.is_dir():
            raise self._err(f"{show_path(probe)} is a file, not a folder")
        if os.path.lexists(path):
            if path.is_symlink():
                raise self._err("is a symbolic link; give the folder itself")
            if not path.is_dir():
                raise self._err("exists and is a file, not a folder")
            if os.path.ismount(path):
                raise self._err("is a mount point; give a folder inside it")
        return path

    def _make_parents(self) -> None:
        missing = []
        parent = self.path.parent
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as err:
                raise self._os_err(f"create {show_path(folder)}", err) from None
            self._created.append(folder)

    def _clean_leftovers(self) -> None:
        """Deal with what killed writers left beside the folder (we hold the lock, so they are dead): a
        moved-aside earlier result whose replacement was interrupted is put back; a stage marked as
        rareshock's (or holding only rareshock's files, from a writer that is gone) is removed; anything else
        is left alone and reported in :attr:`notes`."""
        name = self.path.name
        pattern = re.compile(rf"\.{re.escape(name)}\.(tmp|old)(?:-(\d+))?")
        parent = self.path.parent
        with os.scandir(parent) as it:
            leftovers = sorted(
                (e.name, pattern.fullmatch(e.name))
                for e in it
                if e.is_dir(follow_symlinks=False) and pattern.fullmatch(e.name)
            )
        for entry, m in leftovers:
            folder = parent / entry
            pid = int(m[2]) if m[2] else None
            kind = read_marker(folder)
            try:
                ours = kind is not None or (
                    (pid is None or not pid_alive(pid)) and any(not foreign_entries(folder, k) for k in KINDS)
                )
            except OSError:
                ours = False
            if not ours:
                self.notes.append(f"left alone {show_path(folder)}: not written by rareshock")
                continue
            try:
                if m[1] == "old" and not os.path.lexists(self.path):
                    os.replace(folder, self.path)
                    self.notes.append(f"restored {show_path(self.path)} from {entry} (its replacement was interrupted)")
                else:
                    shutil.rmtree(folder)
                    what = "an unfinished result" if m[1] == "tmp" else "a replaced result"
                    self.notes.append(f"removed {entry}, {what} left by a process that was stopped")
            except OSError as err:
                raise self._os_err(f"clean up {entry}", err) from None

    def _classify(self) -> None:
        path = self.path
        if not os.path.lexists(path):
            self.state = "new"
        else:
            try:
                empty = not any(path.iterdir())
            except OSError as err:
                raise self._os_err("read it", err) from None
            self.state = "new" if empty else self._existing()
        if self.resume and self.state == "new":
            self.notes.append(f"no {self.kind} in {show_path(self.raw)} to resume; starting it")
        if self.state == "resume":
            self._probe(path)
            for sub in ("runs.parquet", "timeseries.parquet"):
                if (path / sub).is_dir():
                    self._probe(path / sub)

    def _existing(self) -> str:
        path, kind = self.path, self.kind
        have = read_marker(path)
        if have is None:
            if kind == "sweep" and self.resume and _legacy_sweep(path):
                return "resume"
            hint = (
                (
                    ", though it has a manifest.json: a result of a rareshock older than the marker? Delete it "
                    "yourself to reuse the name"
                )
                if (path / "manifest.json").exists()
                else ""
            )
            raise self._err(
                f"folder is not empty and was not written by rareshock (no {MARKER} marker{hint}); "
                f"rareshock never replaces such a folder, even with --overwrite: choose another folder"
            )
        if have == kind and kind in RESUMABLE and self.resume:
            return "resume"
        if self.resume:
            raise self._err(f"holds a rareshock {have}, not a {kind if kind in RESUMABLE else 'sweep'} to resume")
        try:
            foreign = foreign_entries(path, have)
        except OSError as err:
            raise self._os_err("read it", err) from None
        if foreign:
            raise self._err(
                f"holds files rareshock did not write ({_listing(foreign)}); rareshock replaces only "
                f"folders holding nothing else, even with --overwrite: move them or choose another "
                f"folder"
            )
        if have == kind and kind not in RESUMABLE:
            return "replace"
        if self.overwrite:
            return "replace"
        if have == kind:
            raise self._err(
                f"holds a {kind} already: add --resume to finish it or --overwrite to replace it, or "
                f"choose another folder"
            )
        raise self._err(
            f"holds a rareshock {have}, not a {kind}: add --overwrite to replace it, or choose another folder"
        )

    def _probe(self, folder: Path) -> None:
        try:
            with tempfile.TemporaryFile(dir=folder, prefix=".rareshock-probe-"):
                pass
        except OSError as err:
            raise self._os_err("write there", err) from None

    # -- writing --------------------------------------------------------------------------------------
    def stage(self) -> Path:
        """A new, marked, hidden folder beside the output to write the results into."""
        stage = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        if stage.exists():
            shutil.rmtree(stage)
        self._stage = stage
        stage.mkdir()
        write_marker(stage, self.kind)
        return stage

    def commit(self) -> None:
        """Put the stage in place of the output folder, in one rename."""
        stage = self._stage
        if stage is None:
            raise RuntimeError("nothing staged")
        _fsync_dir(stage)
        if self.state == "replace":
            have = read_marker(self.path)
            foreign = foreign_entries(self.path, have) if have else ["(its marker is gone)"]
            if foreign:  # something arrived since open(); never replace it
                raise self._err(
                    f"files rareshock did not write appeared there ({_listing(foreign)}); nothing was replaced"
                )
            old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
            os.replace(self.path, old)
            try:
                os.replace(stage, self.path)
            except BaseException:
                os.replace(old, self.path)
                raise
            self._stage = None
            _fsync_dir(self.path.parent)
            shutil.rmtree(old, ignore_errors=True)
            self.notes.append(f"replaced the earlier {have} in {show_path(self.raw)}")
        else:
            os.replace(stage, self.path)  # the path is absent or an empty folder
            self._stage = None
            _fsync_dir(self.path.parent)
        self.committed = True
        self.state = "resume" if self.kind in RESUMABLE else "replace"

    def close(self, ok: bool = True) -> None:
        """Remove an uncommitted stage, release the lock and, after a failure with nothing committed, the
        parent folders :meth:`open` created."""
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if not ok and not self.committed:
            for folder in reversed(self._created):
                try:
                    folder.rmdir()
                except OSError:
                    break
            self._created = []


def _legacy_sweep(path: Path) -> bool:
    """A sweep folder from before the marker (it has a readable sweep_state.json); it may be resumed."""
    try:
        state = json.loads((path / "sweep_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "fingerprint" in state and not foreign_entries(path, "sweep")


# --------------------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------------------
def write_run_files(result: RunResultLike, target: OutputDir, manifest: dict) -> None:
    """Write one run's files into ``target``'s stage and put them in place as a whole."""
    try:
        stage = target.stage()
        (stage / "figures").mkdir()
        _write_synced(stage / "summary.json", to_json(result.summary).encode("utf-8"))
        _write_synced(stage / "timeseries.parquet", parquet_bytes(result.timeseries))
        write_figures(result.timeseries, stage / "figures", result.config, manifest)
        if (result.config.get("scenario") or {}).get("record_file"):  # compared with the record
            from rareshock.record import monthly_quantiles, write_record_figure

            write_record_figure(
                monthly_quantiles([result.timeseries]), result.config, stage / "figures", 1, manifest=manifest
            )
        _fsync_dir(stage / "figures")
        _write_synced(stage / "manifest.json", to_json(manifest).encode("utf-8"))
        target.commit()
    except OSError as err:
        where = f" ({show_path(err.filename)})" if err.filename else ""
        raise OutputWriteError(
            f"{target.flag} {show_path(target.raw)}: could not write the run: "
            f"{err.strerror or err}{where}; nothing was changed there"
        ) from None


def write_run(result: RunResultLike, out_dir: str | Path, manifest: dict, overwrite: bool = False) -> None:
    """Write one run's files to ``out_dir``, atomically as a whole (see :class:`OutputDir` for what may be
    replaced)."""
    with OutputDir(out_dir, "run", overwrite=overwrite) as target:
        write_run_files(result, target, manifest)
