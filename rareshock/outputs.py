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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

PACKAGES = ("rareshock", "mesa", "numpy", "scipy", "pandas", "pyarrow", "seaborn", "matplotlib", "pydantic")
REPO_DIR = Path(__file__).resolve().parents[1]
PARQUET_COMPRESSION = "zstd"
# Destinations of China's magnet exports shown separately; the rest of the total is "other".
EXPORT_DESTINATIONS = {"US": "us", "EU": "eu", "JP": "jp", "IN": "in"}
IDLE_REGIONS = {"US": "us", "EU": "eu", "JP": "jp", "IN": "in"}


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

    parts = [
        pd.DataFrame({"x": x.to_numpy(), "value": df[col].to_numpy(dtype=float), var: label})
        for label, col in series.items()
        if col in df.columns
    ]
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
    data = _long(
        x,
        {
            "Submitted (cumulative)": "cn_licences_submitted_cum",
            "Approved (cumulative)": "cn_licences_approved_cum",
            "Denied (cumulative)": "cn_licences_denied_cum",
            "Pending": "cn_licences_pending",
        },
        df,
        "Series",
    )
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


def fig_export_limits(df: pd.DataFrame) -> Figure | None:
    """Scenarios with an export quota or a customs hold (columns of ``agents/exports.py``): China's oxide
    exports by destination and non-Chinese makers' NdFeB shipments by region (t per month), and the NdPr
    oxide price in and outside China (USD/kg)."""
    import pandas as pd

    if "cn_oxide_exports_to_jp_t" not in df.columns or "date" not in df.columns:
        return None
    x, xlabel = _time(df)
    month = x.dt.to_period("M").dt.to_timestamp().to_numpy()

    def monthly(cols: dict[str, str], var: str) -> pd.DataFrame:
        m = pd.DataFrame({label: df[c].to_numpy(dtype=float) for label, c in cols.items() if c in df.columns})
        m["x"] = month
        return m.groupby("x", sort=True).sum().reset_index().melt(id_vars="x", var_name=var, value_name="value")

    oxide = monthly({r: f"cn_oxide_exports_to_{r.lower()}_t" for r in ("JP", "EU", "US", "IN", "ROW")}, "Destination")
    makers = monthly({r: f"{r.lower()}_makers_ndfeb_shipped_t" for r in ("JP", "EU", "US")}, "Makers in")
    ndpr = _long(
        x, {"China domestic": "price_ndpr_oxide_cn_usd_kg", "Ex-China": "price_ndpr_oxide_ex_cn_usd_kg"}, df, "Market"
    )
    fig, axes = _new_figure(nrows=3, height=3.2)
    _lines(axes[0], oxide, "Destination", True, marker="o")
    axes[0].set(
        title="China's oxide exports (NdPr, Dy/Tb, Sm) by destination", xlabel=xlabel, ylabel="Tonnes per month"
    )
    _lines(axes[1], makers, "Makers in", True, marker="o")
    axes[1].set(title="NdFeB shipped by non-Chinese magnet makers", xlabel=xlabel, ylabel="Tonnes per month")
    for ax in axes[:2]:
        ax.set_ylim(bottom=0)
    _lines(axes[2], ndpr, "Market", True)
    axes[2].set(title="NdPr oxide price", xlabel=xlabel, ylabel="USD/kg")
    fig.suptitle("Export quota and customs holds: oxide flows, makers outside China, NdPr price")
    return fig


FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "cn_magnet_exports.png": fig_exports,
    "licences.png": fig_licences,
    "idle_plants.png": fig_idle_plants,
    "prices.png": fig_prices,
    "export_limits.png": fig_export_limits,
}


def png_bytes(fig: Figure, **kw: Any) -> bytes:
    """PNG bytes of ``fig`` at the project's dpi, with no "Software" text chunk, so the bytes depend only
    on the drawing (figstyle.figure_bytes)."""
    from rareshock.figstyle import figure_bytes

    return figure_bytes(fig, "png", **kw)


def save_png(fig: Figure, path: Path, **kw: Any) -> None:
    """Write ``fig`` as a PNG and, beside it, an SVG of the same drawing, atomically (figstyle.save_figure)."""
    from rareshock.figstyle import save_figure

    save_figure(fig, path, **kw)


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
        write_figures(result.timeseries, stage / "figures")
        if (result.config.get("scenario") or {}).get("record_file"):  # compared with the record
            from rareshock.record import monthly_quantiles, write_record_figure

            write_record_figure(monthly_quantiles([result.timeseries]), result.config, stage / "figures", 1)
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
