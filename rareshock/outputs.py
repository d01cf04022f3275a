"""Result files of one run: ``summary.json``, ``timeseries.parquet``, ``figures/*.png``, ``manifest.json``.

A run directory is written atomically as a whole: everything goes into a hidden sibling directory, which
is renamed into place only once complete (``manifest.json`` last). A crash therefore never leaves a
directory that looks like a finished run but is not.

Identical inputs give byte-identical ``summary.json`` and ``timeseries.parquet``; the manifest differs only
in its start time and duration (and in the git dirty flag if the working tree changed in between).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

PACKAGES = ("rareshock", "mesa", "numpy", "scipy", "pandas", "pyarrow", "seaborn", "matplotlib", "pydantic")
REPO_DIR = Path(__file__).resolve().parents[1]
PARQUET_COMPRESSION = "zstd"
FIGURE_DPI = 120
# Destinations of China's magnet exports shown separately; the rest of the total is "other".
EXPORT_DESTINATIONS = {"US": "us", "EU": "eu", "JP": "jp", "IN": "in"}
IDLE_REGIONS = {"US": "us", "EU": "eu", "JP": "jp", "IN": "in"}


class RunResultLike(Protocol):
    """What :func:`write_run` needs from ``rareshock.simulation.RunResult``."""

    summary: dict
    timeseries: pd.DataFrame
    config: dict
    seed: int


class OutputDirError(ValueError):
    """The output path cannot hold a run (a file, or a non-empty directory that is not a run)."""


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
    canonical = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"), allow_nan=False,
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------
def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_provenance(repo_dir: str | Path = REPO_DIR) -> dict[str, str | bool | None]:
    """``{"commit": sha | None, "dirty": bool | None}`` for the checkout at ``repo_dir``; never raises.

    Both are None outside a git checkout (or without git); ``commit`` alone is None in a repository
    without commits yet. Changes under ``results/`` (what rareshock itself writes there) do not make the
    tree dirty: regenerating the reference results one after another from a clean commit records that
    commit as clean in every manifest.
    """
    repo_dir = Path(repo_dir)
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


def build_manifest(config: dict, seed: int, started_at: dt.datetime, duration_s: float,
                   command: list[str]) -> dict[str, Any]:
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
def use_agg() -> None:
    """Select the non-interactive Agg backend unless pyplot is already in use (e.g. in a notebook)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


def _time(df: pd.DataFrame) -> tuple[pd.Series, str]:
    """The x axis: the ``date`` column, or the day number if there is none."""
    import pandas as pd

    if "date" in df.columns:
        return pd.to_datetime(df["date"]), "Date"
    return pd.Series(range(len(df)), index=df.index, name="day"), "Day of run"


def _long(x: pd.Series, series: dict[str, str], df: pd.DataFrame, var: str) -> pd.DataFrame:
    """Long-format frame (x, value, ``var``) of the columns in ``series`` (label -> column) that exist."""
    import pandas as pd

    parts = [pd.DataFrame({"x": x.to_numpy(), "value": df[col].to_numpy(dtype=float), var: label})
             for label, col in series.items() if col in df.columns]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _new_figure(nrows: int = 1, height: float = 4.5) -> tuple[Figure, list]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, height * nrows), layout="constrained")
    return fig, [fig.add_subplot(nrows, 1, i + 1) for i in range(nrows)]


def _lines(ax: Any, data: pd.DataFrame, var: str, dates: bool, **kw: Any) -> None:
    import seaborn as sns
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    sns.lineplot(data=data, x="x", y="value", hue=var, ax=ax, errorbar=None, **kw)
    if dates:
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.legend(title=None, loc="best", frameon=True)


def fig_exports(df: pd.DataFrame) -> Figure | None:
    """Monthly magnet exports from China by destination (US, EU, JP, IN, other), tonnes per month."""
    import pandas as pd

    x, xlabel = _time(df)
    cols = {label: f"cn_magnet_exports_to_{code}_t" for label, code in EXPORT_DESTINATIONS.items()}
    monthly = pd.DataFrame({label: df[c].to_numpy(dtype=float) for label, c in cols.items() if c in df.columns})
    if "cn_magnet_exports_t" in df.columns:
        total = df["cn_magnet_exports_t"].to_numpy(dtype=float)
        monthly["Other"] = (total - monthly.sum(axis=1).to_numpy()).clip(min=0.0) if len(monthly.columns) else total
    if monthly.empty:
        return None
    dates = "date" in df.columns
    if dates:
        monthly["x"] = x.dt.to_period("M").dt.to_timestamp().to_numpy()
    else:
        monthly["x"] = (x.to_numpy() // 30) + 1
        xlabel = "Month of run (30-day blocks)"
    monthly = monthly.groupby("x", sort=True).sum().reset_index()
    data = monthly.melt(id_vars="x", var_name="Destination", value_name="value")
    fig, (ax,) = _new_figure()
    _lines(ax, data, "Destination", dates, marker="o")
    ax.set(title="China's rare-earth magnet exports by destination", xlabel=xlabel, ylabel="Tonnes per month")
    ax.set_ylim(bottom=0)
    return fig


def fig_licences(df: pd.DataFrame) -> Figure | None:
    """Chinese export licences over time: cumulative submitted/approved/denied and pending."""
    x, xlabel = _time(df)
    data = _long(x, {"Submitted (cumulative)": "cn_licences_submitted_cum",
                     "Approved (cumulative)": "cn_licences_approved_cum",
                     "Denied (cumulative)": "cn_licences_denied_cum",
                     "Pending": "cn_licences_pending"}, df, "Series")
    if data.empty:
        return None
    fig, (ax,) = _new_figure()
    _lines(ax, data, "Series", "date" in df.columns)
    ax.set(title="Chinese export licence applications", xlabel=xlabel, ylabel="Applications (count)")
    ax.set_ylim(bottom=0)
    return fig


def fig_idle_plants(df: pd.DataFrame) -> Figure | None:
    """Idle automotive assembly plants by region over time."""
    x, xlabel = _time(df)
    data = _long(x, {label: f"auto_plants_idle_{code}" for label, code in IDLE_REGIONS.items()}, df, "Region")
    if data.empty:
        return None
    fig, (ax,) = _new_figure()
    _lines(ax, data, "Region", "date" in df.columns)
    ax.set(title="Auto assembly plants idled for lack of magnets", xlabel=xlabel, ylabel="Idle plants (count)")
    ax.set_ylim(bottom=0)
    return fig


def fig_prices(df: pd.DataFrame) -> Figure | None:
    """Prices in China vs ex-China: Dy oxide (top) and NdFeB magnets (bottom), USD/kg."""
    x, xlabel = _time(df)
    panels = {
        "Dysprosium oxide": {"China domestic": "price_dy_oxide_cn_usd_kg", "Ex-China": "price_dy_oxide_ex_cn_usd_kg"},
        "NdFeB magnets": {"China domestic": "price_ndfeb_cn_usd_kg", "Ex-China": "price_ndfeb_ex_cn_usd_kg"},
    }
    data = {title: _long(x, cols, df, "Market") for title, cols in panels.items()}
    if all(d.empty for d in data.values()):
        return None
    fig, axes = _new_figure(nrows=2, height=3.5)
    for ax, (title, d) in zip(axes, data.items(), strict=True):
        if d.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            _lines(ax, d, "Market", "date" in df.columns)
        ax.set(title=f"{title} price", xlabel=xlabel, ylabel="USD/kg")
    fig.suptitle("Rare-earth prices: China domestic vs ex-China")
    return fig


FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "cn_magnet_exports.png": fig_exports,
    "licences.png": fig_licences,
    "idle_plants.png": fig_idle_plants,
    "prices.png": fig_prices,
}


def png_bytes(fig: Figure, **kw: Any) -> bytes:
    """PNG bytes of ``fig`` at the project's dpi, with no "Software" text chunk, so the bytes depend only
    on the drawing."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None}, **kw)
    return buf.getvalue()


def save_png(fig: Figure, path: Path, **kw: Any) -> None:
    """Write ``fig`` as a PNG, atomically."""
    atomic_write_bytes(path, png_bytes(fig, **kw))


def write_figures(df: pd.DataFrame, fig_dir: Path) -> list[str]:
    """Draw every figure whose data is present into ``fig_dir``; return the file names written."""
    if df.empty:
        return []
    use_agg()
    import seaborn as sns

    written = []
    for name, draw in FIGURES.items():
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
            fig = draw(df)
            if fig is None:
                continue
            data = png_bytes(fig)
        _write_synced(fig_dir / name, data)
        written.append(name)
    return written


# --------------------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------------------
def check_out_dir(out_dir: str | Path) -> Path:
    """The resolved ``out_dir`` if a run may be written there, else :class:`OutputDirError`.

    Allowed: a path that does not exist, an empty directory, or an earlier run's directory (it has a
    ``manifest.json``). Anything else is refused so that a mistyped ``--out`` cannot delete unrelated files.
    """
    path = Path(out_dir).resolve()
    if path.parent == path:
        raise OutputDirError(f"{out_dir}: cannot write a run to the filesystem root")
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise OutputDirError(f"{out_dir}: exists and is not a directory")
        if any(path.iterdir()) and not (path / "manifest.json").is_file():
            raise OutputDirError(f"{out_dir}: directory is not empty and is not a rareshock run (no manifest.json)")
    return path


def write_run(result: RunResultLike, out_dir: str | Path, manifest: dict) -> None:
    """Write one run's files to ``out_dir``, atomically as a whole, replacing an earlier run there."""
    out = check_out_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    stage = out.parent / f".{out.name}.tmp-{pid}"
    old = out.parent / f".{out.name}.old-{pid}"
    for leftover in (stage, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    try:
        stage.mkdir()
        (stage / "figures").mkdir()
        _write_synced(stage / "summary.json", to_json(result.summary).encode("utf-8"))
        _write_synced(stage / "timeseries.parquet", parquet_bytes(result.timeseries))
        write_figures(result.timeseries, stage / "figures")
        _fsync_dir(stage / "figures")
        _write_synced(stage / "manifest.json", to_json(manifest).encode("utf-8"))
        _fsync_dir(stage)
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)  # put the earlier run back
        raise
    shutil.rmtree(old, ignore_errors=True)
