"""Published posteriors and runs over posterior draws.

A calibration publishes its posterior (``rareshock calibrate CAL --publish``) as
``experiments/calibration/<name>.posterior.parquet``: one row per particle of the last generation, the
calibrated parameters by dotted path, ``weight``, and the calibration's provenance in the file's metadata.
Runs use it three ways:

- ``rareshock run CONFIG --posterior N [--calibration NAME]`` runs N draws (this module);
- a comparison (``[comparison] posterior = NAME, posterior_draws = N``) runs each scenario over the same
  N draws;
- a sweep (``[sweep] posterior = NAME, posterior_draws = N``) runs each sample over N draws (replicate r
  is draw r; a swept path that is also calibrated takes the swept value).

Draws are deterministic: systematic resampling by weight with one uniform from ``SeedSequence(seed,
spawn_key=(1000001,))`` (``seed``: the scenario's, the comparison's or the sweep's seed), so each particle
appears ``floor(N w)`` or ``ceil(N w)`` times. In ``run --posterior``, draw d runs with model seed
``SeedSequence(seed, spawn_key=(d,))``; comparisons and sweeps keep their own per-run seeds.

Which posterior: ``--calibration NAME`` (or ``posterior = NAME``) is the calibration named NAME in
``experiments/calibration/`` (its ``[calibration] name`` or file name), or a path to a
``.posterior.parquet`` file; without it, the calibration marked ``default = true``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rareshock.model.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION_DIR = Path("experiments") / "calibration"
QUANTILES = {"median": 0.5, "p10": 0.1, "p90": 0.9}


def portable(path: Path | str) -> str:
    """A posterior file as results record it: relative to the repository when inside it (so committed results
    do not depend on where the checkout is), else as given."""
    path = Path(path).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _shown(path: Path | str) -> str:
    from rareshock.outputs import show_path

    return show_path(str(path))


@dataclass
class Posterior:
    """A published posterior: particles (parameters by dotted path, ``weight``) and their provenance."""

    name: str
    file: Path
    frame: pd.DataFrame = field(repr=False)
    paths: list[str]
    integer: set[str]
    meta: dict = field(repr=False)
    sha256: str

    def values(self, k: int) -> dict:
        row = self.frame.iloc[int(k)]
        return {p: (int(row[p]) if p in self.integer else float(row[p])) for p in self.paths}

    def draws(self, n: int, seed: int) -> list[tuple[int, dict]]:
        """``n`` draws (particle index, parameter values) by systematic resampling (see the module)."""
        from rareshock.calibration.report import systematic_resample

        idx = systematic_resample(self.frame["weight"].to_numpy(dtype=float), n, seed)
        return [(int(k), self.values(int(k))) for k in idx]

    def provenance(self) -> dict:
        return {
            "calibration": self.name,
            "file": portable(self.file),
            "sha256": self.sha256,
            "fingerprint": self.meta.get("fingerprint"),
            "generation": self.meta.get("generation"),
            "epsilon": self.meta.get("epsilon"),
            "git": self.meta.get("git"),
            "parameters": self.paths,
        }


def resolve(ref: str | None, root: Path | None = None, base_dir: Path | None = None, what="--calibration") -> Path:
    """The posterior file that ``ref`` names (see the module), or a one-line ConfigError."""
    from rareshock.calibration.config import find_calibrations

    if root is None:
        from rareshock.resources import experiments_dir

        folder = experiments_dir() / "calibration"
    else:
        folder = root / CALIBRATION_DIR
    if ref is not None and (ref.endswith(".parquet") or "/" in ref or os.sep in ref):
        path = Path(ref) if base_dir is None or Path(ref).is_absolute() else base_dir / ref
        if not path.is_file():
            raise ConfigError(f"{what} {ref}: no such posterior file")
        return path
    found = find_calibrations(folder) if folder.is_dir() else []
    if ref is None:
        defaults = [(p, t) for p, t in found if t.get("default") is True]
        if not defaults:
            raise ConfigError(
                f"--posterior: no calibration in {CALIBRATION_DIR} is marked default = true; give --calibration "
                f"NAME (or a .posterior.parquet file)"
            )
        if len(defaults) > 1:
            names = ", ".join(str(t.get("name", p.stem)) for p, t in defaults)
            raise ConfigError(f"--posterior: more than one default calibration ({names}); keep one default = true")
        path, table = defaults[0]
    else:
        match = [(p, t) for p, t in found if t.get("name") == ref or p.stem == ref]
        if not match:
            names = ", ".join(sorted(str(t.get("name", p.stem)) for p, t in found)) or "none"
            raise ConfigError(f"{what} {ref!r}: no such calibration in {CALIBRATION_DIR} (calibrations: {names})")
        path, table = match[0]
    name = str(table.get("name", path.stem))
    file = path.parent / f"{name}.posterior.parquet"
    if not file.is_file():
        raise ConfigError(
            f"{what}: calibration {name!r} has no published posterior ({CALIBRATION_DIR / file.name}); "
            f"publish it with: rareshock calibrate {CALIBRATION_DIR / path.name} --publish"
        )
    return file


def load_posterior(
    ref: str | None, root: Path | None = None, base_dir: Path | None = None, what="--calibration"
) -> Posterior:
    from rareshock.calibration.report import read_meta

    file = resolve(ref, root, base_dir, what)
    meta = read_meta(file)
    if meta is None:
        raise ConfigError(f"{what} {_shown(file)}: not a posterior published by rareshock calibrate")
    try:
        frame = pd.read_parquet(file)
        data = file.read_bytes()
    except (OSError, ValueError) as err:
        raise ConfigError(f"{what} {_shown(file)}: cannot read it ({str(err)[:200]})") from None
    params = meta.get("parameters") or []
    paths = [p.get("path") for p in params if isinstance(p, dict)]
    missing = [p for p in [*paths, "weight"] if p not in frame.columns]
    if not paths or missing:
        raise ConfigError(f"{what} {_shown(file)}: column {missing[0] if missing else 'parameters'!r} is missing")
    w = frame["weight"].to_numpy(dtype=float)
    if len(frame) == 0 or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"{what} {_shown(file)}: its weights are not a distribution (empty, negative or not finite)")
    integer = {p.get("path") for p in params if isinstance(p, dict) and p.get("prior") == "integer"}
    return Posterior(
        str(meta.get("calibration")),
        file,
        frame,
        paths,
        integer,
        meta,
        hashlib.sha256(data).hexdigest(),
    )


def check_draws(base: dict, draws: list[tuple[int, dict]], where: str) -> None:
    """Every draw must give a valid scenario (before anything runs)."""
    from rareshock.sweeps.spec import scenario_for

    seen = set()
    for d, (k, values) in enumerate(draws):
        if k in seen:
            continue
        seen.add(k)
        try:
            scenario_for(base, values)
        except ConfigError as err:
            raise ConfigError(f"{where}: posterior draw {d} (particle {k}) does not fit this scenario: {err}") from None


def posterior_replications(data):
    """``posterior_draws`` is the number of replicates when runs go over posterior draws (replicate r is
    draw r): it goes with ``posterior`` and replaces ``replications``."""
    if not isinstance(data, dict) or ("posterior" not in data and "posterior_draws" not in data):
        return data
    if "posterior" not in data:
        raise ValueError("posterior_draws goes with posterior = NAME (a calibration)")
    if "posterior_draws" not in data:
        raise ValueError("posterior = NAME needs posterior_draws = N (the number of posterior draws)")
    if "replications" in data:
        raise ValueError(
            "over a posterior, give posterior_draws (each replicate is one posterior draw), not replications"
        )
    draws = data["posterior_draws"]
    return {**data, "replications": draws} if isinstance(draws, int) and not isinstance(draws, bool) else data


def draw_seed(seed: int, d: int) -> int:
    """Model seed of draw ``d`` in ``run --posterior``: ``SeedSequence(seed, spawn_key=(d,))``."""
    ss = np.random.SeedSequence(seed, spawn_key=(d,))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# --------------------------------------------------------------------------------------------------
# run --posterior
# --------------------------------------------------------------------------------------------------
def run_draw(base: dict, values: dict, seed: int):
    """One draw (in a worker): the summary and the daily time series."""
    from rareshock.simulation import run_scenario
    from rareshock.sweeps.spec import scenario_for

    result = run_scenario(scenario_for(base, values), seed)
    return result.summary, result.timeseries


def run_posterior(cfg, post: Posterior, n: int, seed: int, workers: int | None) -> dict:
    """Run ``n`` posterior draws of scenario ``cfg``; returns the aggregated summary, time series and the
    per-draw table (see :func:`aggregate_summary`, :func:`aggregate_timeseries`)."""
    from rareshock.sweeps.executor import new_pool, stop_pool
    from rareshock.sweeps.spec import flatten, metric_frame

    base = cfg.model_dump(mode="json")
    draws = post.draws(n, seed)
    check_draws(base, draws, "--posterior")
    seeds = [draw_seed(seed, d) for d in range(n)]
    pool = new_pool(min(workers or os.cpu_count() or 1, n))
    finished = False
    try:
        results = list(pool.map(run_draw, [base] * n, [v for _, v in draws], seeds))
        finished = True
    finally:
        stop_pool(pool, kill=not finished)
    summaries = [r[0] for r in results]
    rows, flat = [], []
    for d, ((k, values), s, summary) in enumerate(zip(draws, seeds, summaries)):
        rows.append({"draw": d, "particle": k, "seed": s, **values})
        flat.append(flatten({a: b for a, b in summary.items() if a != "scenario"}))
    metrics = list(dict.fromkeys(m for f in flat for m in f))
    draws_table = pd.concat([pd.DataFrame(rows), metric_frame(flat, metrics)], axis=1)  # typed as runs.parquet
    summary = aggregate_summary(summaries)
    summary["posterior"].update(
        {
            "calibration": post.name,
            "file": portable(post.file),
            "sha256": post.sha256,
            "draws": n,
            "seed": seed,
            "parameters": post.paths,
        }
    )
    out = {
        "summary": summary,
        "timeseries": aggregate_timeseries([r[1] for r in results]),
        "draws": draws_table,
        "seeds": seeds,
        "base": base,
    }
    if base["scenario"].get("record_file"):  # compared with the record: quantiles of monthly sums over draws
        from rareshock.record import monthly_quantiles

        out["monthly"] = monthly_quantiles([r[1] for r in results])
    out["fans"] = fan_quantiles([r[1] for r in results])  # for the fan charts
    flow_cols = [c for c in results[0][1].columns if c.startswith("flow_")]
    if flow_cols:
        mean = sum(r[1][flow_cols].to_numpy(dtype=float) for r in results) / n
        out["flows"] = pd.DataFrame({"date": results[0][1]["date"].to_numpy(), **dict(zip(flow_cols, mean.T))})
    return out


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _leaf(vals: list) -> tuple[list, float | None, bool]:
    """(median, p10, p90), null share (numbers only) and whether a non-numeric value varies."""
    present = [v for v in vals if v is not None]
    if not present:
        return [None, None, None], 1.0, False
    if all(_is_number(v) for v in present):
        x = np.array([math.inf if v is None else float(v) for v in vals])
        whole = all(isinstance(v, int) for v in present)
        out = []
        for q in QUANTILES.values():
            y = float(np.quantile(x, q, method="inverted_cdf"))
            out.append(None if math.isinf(y) else (int(y) if whole else y))
        return out, sum(v is None for v in vals) / len(vals), False
    if all(isinstance(v, bool) for v in present) and len(present) == len(vals):
        x = np.array(vals, dtype=float)
        return [bool(np.quantile(x, q, method="inverted_cdf")) for q in QUANTILES.values()], None, False
    same = all(v == vals[0] for v in vals)
    v = vals[0] if same else None
    return [v, v, v], None, not same


def aggregate_summary(summaries: list[dict]) -> dict:
    """The draws' summaries as one: every numeric metric's median under its usual name (so readers of a
    plain run's summary.json work), and a ``posterior`` block with the 10th and 90th percentiles in the
    same nesting (``posterior.p10``, ``posterior.p90``), each metric's share of null draws
    (``posterior.null_share``, dotted names, only where some draw is null) and the non-numeric values
    that differ between draws (``posterior.varies``; null in the summary). Quantiles are empirical
    (inverted CDF: an observed value); a null (e.g. no shutdown) counts as larger than any number."""
    null_share: dict[str, float] = {}
    varies: list[str] = []

    def walk(vals: list, prefix: str):
        if all(isinstance(v, dict) for v in vals):
            keys = list(dict.fromkeys(k for v in vals for k in v))
            trees = ({}, {}, {})
            for k in keys:
                sub = walk([v.get(k) for v in vals], f"{prefix}{k}.")
                for tree, s in zip(trees, sub):
                    tree[k] = s
            return trees
        qs, share, vary = _leaf(vals)
        name = prefix[:-1]
        if share:
            null_share[name] = share
        if vary:
            varies.append(name)
        return tuple(qs)

    median, p10, p90 = walk(summaries, "")
    median["posterior"] = {
        "quantiles": "empirical over draws (inverted CDF: an observed value); null counts as larger than any number",
        "p10": p10,
        "p90": p90,
        "null_share": null_share,
        "varies": varies,
    }
    return median


def aggregate_timeseries(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per day and column: the median over draws under the column's name, and ``<column>_p10``,
    ``<column>_p90`` (empirical quantiles; count columns stay whole numbers)."""
    first = frames[0]
    cols = [c for c in first.columns if c != "date"]
    arr = np.stack([f[cols].to_numpy(dtype=float) for f in frames])
    q = np.quantile(arr, list(QUANTILES.values()), axis=0, method="inverted_cdf")
    out: dict = {"date": first["date"].to_numpy()}
    for j, c in enumerate(cols):
        whole = pd.api.types.is_integer_dtype(first[c].dtype)
        for i, suffix in enumerate(("", "_p10", "_p90")):
            v = q[i, :, j]
            out[c + suffix] = v.astype(np.int64) if whole else v
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------------
# Fan charts
# --------------------------------------------------------------------------------------------------
FAN_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# name -> (title, y label, how (``mean`` levels, ``week`` weekly means of levels, ``month`` flows in t/month),
# {label: column}, y axis kind)
BAND_FIGURES = {
    "bands_idle_plants.png": (
        "Auto assembly plants idled for lack of magnets",
        "Idle plants (weekly mean)",
        "week",
        {
            "US": "auto_plants_idle_us",
            "EU": "auto_plants_idle_eu",
            "JP": "auto_plants_idle_jp",
            "IN": "auto_plants_idle_in",
            "Rest of world": "auto_plants_idle_row",
        },
        "count",
    ),
    "bands_cn_magnet_exports.png": (
        "China's rare-earth magnet exports",
        "Tonnes per month",
        "month",
        {"All destinations": "cn_magnet_exports_t", "To the US": "cn_magnet_exports_to_us_t"},
        "plain",
    ),
    "bands_licences.png": (
        "Chinese export licence applications",
        "Applications",
        "mean",
        {
            "Approved (cumulative)": "cn_licences_approved_cum",
            "Returned (cumulative)": "cn_licences_returned_cum",
            "Pending review": "cn_licences_pending",
        },
        "count",
    ),
    "bands_prices.png": (
        "Prices outside China",
        "USD per kg",
        "mean",
        {"NdFeB magnets": "price_ndfeb_ex_cn_usd_kg", "Dy oxide": "price_dy_oxide_ex_cn_usd_kg"},
        "usd",
    ),
    "bands_plant_cover.png": (
        "Plants' cover of their scarcest Dy/Tb-bearing part (median plant)",
        "Days of need in stock",
        "mean",
        {"US": "auto_cover_days_us", "EU": "auto_cover_days_eu", "IN": "auto_cover_days_in"},
        "plain",
    ),
}


def fan_columns() -> list[str]:
    return sorted({c for spec in BAND_FIGURES.values() for c in spec[3].values()})


def fan_quantiles(frames: list[pd.DataFrame], columns: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """For each figure column (:func:`fan_columns`) and each way it is drawn (``mean``: by day, or by month
    in a run longer than two years; ``month``: t per month), the 10th, 25th, 50th, 75th and 90th percentiles
    over draws, of each draw's series (empirical, inverted CDF), indexed by date. Keys ``"<column>|<how>"``."""
    from rareshock.outputs import resample

    columns = fan_columns() if columns is None else columns
    out: dict[str, pd.DataFrame] = {}
    for spec in BAND_FIGURES.values():
        how = spec[2]
        for c in spec[3].values():
            key = f"{c}|{how}"
            if c not in columns or key in out or c not in frames[0].columns:
                continue
            series = [resample(f, {c: c}, how)[c] for f in frames]
            arr = np.stack([s.to_numpy(dtype=float) for s in series])
            q = np.quantile(arr, FAN_QUANTILES, axis=0, method="inverted_cdf")
            out[key] = pd.DataFrame(q.T, index=series[0].index, columns=[f"q{round(x * 100)}" for x in FAN_QUANTILES])
    return out


def fan(ax, data: pd.DataFrame, colour: str, label: str) -> None:
    """A fan: the 10-90% band, the 25-75% band darker, the median as a line."""
    ax.fill_between(data.index, data["q10"], data["q90"], color=colour, alpha=0.18, lw=0, label="10-90% of draws")
    ax.fill_between(data.index, data["q25"], data["q75"], color=colour, alpha=0.35, lw=0, label="25-75%")
    ax.plot(data.index, data["q50"], color=colour, lw=1.6, label="median")


def write_band_figures(
    ts: pd.DataFrame, fig_dir: Path, n: int, fans: dict | None = None, config: dict | None = None, manifest=None
) -> list[str]:
    """One fan chart per figure of :data:`BAND_FIGURES` (a panel per series with data), events marked and
    keyed, caption naming the scenario, the number of draws and the commit. ``fans`` are
    :func:`fan_quantiles`; without them the panels show the median and the 10-90% band of ``ts``. A figure
    whose series are all zero in every draw (no plant idled) is not drawn. Returns the file names written
    (PNG and SVG)."""
    from rareshock.figstyle import count_axis, flat_note, plain_axis, usd_axis
    from rareshock.outputs import FigureContext, TimeFigure, resample, save_png, use_agg

    use_agg()
    seed = (manifest or {}).get("seed")
    ctx = FigureContext.of(config, manifest, seed=seed, draws=n)
    written = []
    for name, (title, ylabel, how, series, kind) in BAND_FIGURES.items():
        panels = {}
        for label, c in series.items():
            if c not in ts.columns:
                continue
            if fans is not None and f"{c}|{how}" in fans:
                data = fans[f"{c}|{how}"]
            else:
                cols = {"q50": c, "q10": c + "_p10", "q90": c + "_p90"}
                data = resample(ts, cols, how)
                data["q25"], data["q75"] = data["q50"], data["q50"]
            if not data.to_numpy().any() and kind == "count":
                continue  # nothing to show: a count that is zero in every draw
            panels[label] = data
        if not panels:
            continue
        tf = TimeFigure(ctx, ts, f"{title}: fan over {n} posterior draws", panels=len(panels), height=2.2)
        for i, (ax, (label, data)) in enumerate(zip(tf.axes, panels.items())):
            fan(ax, data, f"C{i}", label)
            ax.set_title(label, fontsize=9, loc="left")
            ax.set_ylabel(ylabel + (" (monthly)" if tf.monthly and how == "mean" else ""), fontsize=8)
            if kind == "usd":
                if not flat_note(ax, data.to_numpy().ravel(), "The price"):
                    ax.set_ylim(bottom=0)
                usd_axis(ax, scale=1.0, unit="")
            else:
                ax.set_ylim(bottom=0)
                (count_axis if kind == "count" and not tf.monthly and how != "week" else plain_axis)(ax)
        tf.axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        fig = tf.finish("fan: median, 25-75% and 10-90% of draws")
        save_png(fig, fig_dir / name)
        written += [name, name.replace(".png", ".svg")]
    return written


def write_posterior_run(out: dict, target, manifest: dict) -> None:
    """Write a posterior run's files into ``target``'s stage and put them in place as a whole."""
    from rareshock.outputs import OutputWriteError, _fsync_dir, _write_synced, parquet_bytes, show_path, to_json

    try:
        stage = target.stage()
        (stage / "figures").mkdir()
        _write_synced(stage / "summary.json", to_json(out["summary"]).encode("utf-8"))
        _write_synced(stage / "timeseries.parquet", parquet_bytes(out["timeseries"]))
        _write_synced(stage / "draws.parquet", parquet_bytes(out["draws"]))
        n = len(out["seeds"])
        write_band_figures(out["timeseries"], stage / "figures", n, out.get("fans"), out["base"], manifest)
        if "flows" in out:  # the draws' mean flows (means add up, so the stages balance as in each draw)
            from rareshock.outputs import fig_flows, write_figures

            write_figures(out["flows"], stage / "figures", out["base"], manifest, {"flows.png": fig_flows}, n)
        if "monthly" in out:
            from rareshock.record import write_record_figure

            _write_synced(stage / "monthly.parquet", parquet_bytes(out["monthly"]))
            write_record_figure(out["monthly"], out["base"], stage / "figures", n, manifest=manifest)
        _fsync_dir(stage / "figures")
        _write_synced(stage / "manifest.json", to_json(manifest).encode("utf-8"))
        target.commit()
    except OSError as err:
        where = f" ({show_path(err.filename)})" if err.filename else ""
        raise OutputWriteError(
            f"{target.flag} {show_path(target.raw)}: could not write the run: {err.strerror or err}{where}; "
            f"nothing was changed there"
        ) from None


def posterior_manifest(out: dict, post: Posterior, seed: int, started: dt.datetime, t0: float, command) -> dict:
    from rareshock.outputs import build_manifest

    manifest = build_manifest(out["base"], seed, started, time.perf_counter() - t0, command)
    manifest["posterior"] = {
        **post.provenance(),
        "draws": len(out["seeds"]),
        "resampling": "systematic, one uniform from SeedSequence(seed, spawn_key=(1000001,))",
        "seeds": "draw d: SeedSequence(seed, spawn_key=(d,)).generate_state(1, uint64) >> 1 (in draws.parquet)",
    }
    return manifest
