"""Analysis of a finished sweep directory: per-sample means, Sobol or Morris indices, grid heatmaps, PRIM.

:func:`analyse_sweep` reads ``design.parquet`` and ``runs.parquet/`` and writes, each file atomically:

* every method: ``sample_means.csv`` (``grid_means.csv`` for a grid): per sample and output the mean over
  the successful replicates that reported a value, its standard deviation and the counts;
* ``sobol``: ``sensitivity.json``/``.csv`` with S1 and ST and their bootstrap confidence intervals, and
  ``figures/sobol_<output>.png``;
* ``morris``: ``sensitivity.json``/``.csv`` with mu, mu*, its confidence interval and sigma, and
  ``figures/morris_<output>.png``;
* ``grid``: a heatmap per output for two parameters (``figures/heatmap_<output>.png``), a line with a
  band of one standard deviation for one parameter (``figures/line_<output>.png``);
* with a ``[discovery]`` table (any method): ``discovery.json`` and ``figures/prim_tradeoff.png``.

Sobol and Morris read the outputs in the design's sample order, so they need a value for every sample
(SALib#665). Rows are never dropped: an output with failed samples, or with samples where the model
reported null (e.g. no shutdown before the run ended), is skipped with a message that says why and how
many samples are affected. Identical inputs give identical JSON and CSV bytes: bootstrap seeds derive
from the sweep seed, keys are sorted and floats are rounded to 12 significant digits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rareshock.outputs import atomic_write_text, save_png, to_json, use_agg
from rareshock.sweeps.spec import Sweep, salib_problem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DESIGN = "design.parquet"
RUNS = "runs.parquet"
FIG_DIR = "figures"
CONF_LEVEL = 0.95
SIG_DIGITS = 12
WIDE_CI = 0.1  # a Sobol CI half-width above this is reported as wide (library notes: aim ~0.1)
PRIM_SETTINGS = {"peel_alpha": 0.05, "paste_alpha": 0.05, "mass_min": 0.05, "obj_function": "lenient1"}
MAX_LISTED = 20  # sample ids listed in a skip message


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------
def safe_name(name: str) -> str:
    """A file-name-safe form of an output name: dots (and anything unusual) become underscores."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def round_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (NaN and inf unchanged)."""
    if not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.{digits}g}")


def _rounded(obj: Any) -> Any:
    """Nested containers with every float (NumPy ones too) rounded to 12 significant digits."""
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return round_sig(float(obj))
    if isinstance(obj, dict):
        return {str(k): _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_rounded(v) for v in obj]
    return obj


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format=f"%.{SIG_DIGITS}g", na_rep="", lineterminator="\n")


def analysis_seed(sweep: Sweep) -> int:
    """Seed of the bootstrap confidence intervals, derived from the sweep seed.

    Never 0: ``SALib.analyze.sobol.analyze`` tests ``if seed:`` and falls back to the unseeded global
    NumPy generator for a seed of 0 (the sweep's default seed).
    """
    ss = np.random.SeedSequence(sweep.settings.seed, spawn_key=(2**31 - 2,))
    return int(ss.generate_state(1, dtype=np.uint32)[0]) or 1


def _output_files(outputs: list[str]) -> dict[str, str]:
    """Output name -> unique file-name stem."""
    out, used = {}, set()
    for name in outputs:
        stem, k = safe_name(name), 2
        while stem in used:
            stem = f"{safe_name(name)}_{k}"
            k += 1
        used.add(stem)
        out[name] = stem
    return out


def _new_figure(width: float, height: float) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return ""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


@contextlib.contextmanager
def _quiet_ema() -> Iterator[None]:
    """Silence ema_workbench's import warnings (ipyparallel, altair), pandas deprecation warnings from
    its code and its INFO logging (which would reach a root logger the CLI configures)."""
    logger = logging.getLogger("EMA")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------------------------------
# Inputs and per-sample outcomes
# --------------------------------------------------------------------------------------------------
def read_results(out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``design.parquet`` sorted by sample, and ``runs.parquet/`` sorted by run id."""
    design = pd.read_parquet(out_dir / DESIGN).sort_values("sample", kind="stable").reset_index(drop=True)
    runs = pd.read_parquet(out_dir / RUNS).sort_values("run_id", kind="stable").reset_index(drop=True)
    return design, runs


def sample_stats(design: pd.DataFrame, runs: pd.DataFrame, params: list[str], outputs: list[str]) -> pd.DataFrame:
    """Per sample and output (long format): ``mean`` and ``std`` (ddof 1) over the ``ok`` replicates that
    reported a value, ``n`` of them, ``n_ok`` successful replicates, ``n_runs`` recorded runs.
    Every design sample appears, with NaN mean and zero counts if it has no run."""
    samples = design["sample"].to_numpy()
    n_runs = runs.groupby("sample").size().reindex(samples, fill_value=0)
    ok = runs[runs["status"] == "ok"]
    n_ok = ok.groupby("sample").size().reindex(samples, fill_value=0)
    parts = []
    for out in outputs:
        g = ok.groupby("sample")[out]
        agg = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reindex(samples)
        part = design[["sample", *params]].copy()
        part["output"] = out
        part["mean"] = agg["mean"].to_numpy(dtype=float)
        part["std"] = agg["std"].to_numpy(dtype=float)
        part["n"] = agg["n"].fillna(0).to_numpy(dtype=np.int64)
        part["n_ok"] = n_ok.to_numpy(dtype=np.int64)
        part["n_runs"] = n_runs.to_numpy(dtype=np.int64)
        part["n_null"] = part["n_ok"] - part["n"]
        censored = is_first_time(out)
        q = g.apply(lambda v, c=censored: pd.Series(quantiles(v.to_numpy(dtype=float), c), index=QUANTILES))
        q = q.unstack() if isinstance(q.index, pd.MultiIndex) else pd.DataFrame(columns=QUANTILES)
        q = q.reindex(samples)
        for c in QUANTILES:
            part[c] = q[c].to_numpy(dtype=float)
        parts.append(part)
    cols = ["sample", *params, "output", "mean", "std", "n", "n_ok", "n_runs", "n_null", *QUANTILES]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


QUANTILES = ("p10", "median", "p90")


def is_first_time(output: str) -> bool:
    """Whether ``output`` is the first year or day something happened (``year_*``, ``first_*_day``): null
    then means it never happened in the run, which is later than any value, not a missing number."""
    from rareshock.figstyle import metric_kind

    return metric_kind(output) in ("year", "day")


def quantiles(values: np.ndarray, censored: bool) -> tuple[float, float, float]:
    """10th percentile (the value at or below it), median, 90th percentile (at or above it) of one cell's
    runs. With ``censored`` a null counts as never (+inf, later than any value); otherwise nulls are left
    out. NaN if no value is left."""
    v = np.where(np.isnan(values), np.inf, values) if censored else values[~np.isnan(values)]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    v = np.sort(v)
    mid = v.size // 2
    median = v[mid] if v.size % 2 else (v[mid] if v[mid] == v[mid - 1] else (v[mid - 1] + v[mid]) / 2)
    return (
        float(np.quantile(v, 0.1, method="lower")),
        float(median),
        float(np.quantile(v, 0.9, method="higher")),
    )


def _usable(stats: pd.DataFrame, output: str, method: str) -> tuple[np.ndarray | None, dict]:
    """Per-sample means of ``output`` in design order if every sample has one, else (None, skip info).

    Failed samples (no successful replicate) are checked first; then samples where the model reported
    null in any successful replicate (a mean over the other replicates would mix censored and
    uncensored runs); then a constant output (indices undefined)."""
    st = stats[stats["output"] == output]
    total = len(st)
    label = method.capitalize()
    failed = st.loc[st["n_ok"] == 0, "sample"].to_numpy()
    partly_failed = int(((st["n_ok"] > 0) & (st["n_ok"] < st["n_runs"])).sum())
    null = st.loc[(st["n_ok"] > 0) & (st["n"] < st["n_ok"]), "sample"].to_numpy()
    all_null = int(((st["n_ok"] > 0) & (st["n"] == 0)).sum())
    if failed.size:
        ids = ", ".join(str(int(s)) for s in failed[:MAX_LISTED]) + (" ..." if failed.size > MAX_LISTED else "")
        return None, {
            "status": "skipped",
            "reason": "failed_runs",
            "missing_samples": int(failed.size),
            "samples": total,
            "missing_sample_ids": [int(s) for s in failed[:MAX_LISTED]],
            "message": (
                f"{output}: {label} analysis skipped: {failed.size} of {total} samples have no "
                f"successful run (failed or missing; samples {ids}). {label} needs every sample of "
                f"the design, in order; re-run the failed runs and analyse again."
            ),
        }
    if null.size:
        return None, {
            "status": "skipped",
            "reason": "null_values",
            "null_samples": int(null.size),
            "all_null_samples": all_null,
            "samples": total,
            "message": (
                f"{output}: {label} analysis skipped: the model reported no value (null, e.g. "
                f"no shutdown before the run ended) in {null.size} of {total} samples "
                f"({all_null} in every replicate). {label} needs a value for every sample; no "
                f"rows were dropped. Analyse a metric that is always defined, or use "
                f"[discovery] with missing_is_case."
            ),
        }
    y = st["mean"].to_numpy(dtype=float)
    if y.size and np.ptp(y) == 0:
        return None, {
            "status": "skipped",
            "reason": "constant",
            "samples": total,
            "message": f"{output}: {label} analysis skipped: the output is {_fmt(y[0])} in "
            f"every sample, so its indices are undefined.",
        }
    return y, {"status": "ok", "samples": total, "samples_with_failed_replicates": partly_failed}


# --------------------------------------------------------------------------------------------------
# Sobol and Morris
# --------------------------------------------------------------------------------------------------
def sobol_indices(sweep: Sweep, stats: pd.DataFrame) -> dict:
    """First-order and total Sobol indices per output (``calc_second_order=False``)."""
    from SALib.analyze import sobol

    problem = salib_problem(sweep)
    seed = analysis_seed(sweep)
    result: dict[str, dict] = {}
    for out in sweep.settings.outputs:
        y, info = _usable(stats, out, "sobol")
        if y is not None:
            try:
                si = sobol.analyze(problem, y, calc_second_order=False, conf_level=CONF_LEVEL, seed=seed)
            except (RuntimeError, ValueError) as err:
                info = {
                    "status": "skipped",
                    "reason": "salib_error",
                    "message": f"{out}: Sobol analysis failed: {err}".strip(),
                }
            else:
                info["base_samples"] = len(y) // (problem["num_vars"] + 2)
                info["indices"] = [
                    {
                        "parameter": name,
                        "S1": si["S1"][j],
                        "S1_conf": si["S1_conf"][j],
                        "ST": si["ST"][j],
                        "ST_conf": si["ST_conf"][j],
                    }
                    for j, name in enumerate(problem["names"])
                ]
                widest = max(max(r["S1_conf"], r["ST_conf"]) for r in info["indices"])
                info["max_conf"] = widest
                if widest > WIDE_CI:
                    info["note"] = (
                        f"{out}: wide Sobol confidence intervals (up to ±{widest:.2f}); more "
                        f"samples or replications would narrow them."
                    )
        result[out] = info
    return result


def _morris_zero_steps(x: np.ndarray, d: int) -> int:
    """Morris steps in which no parameter changed (an integer parameter's step rounded away)."""
    if d == 0 or x.shape[0] % (d + 1):
        return 0
    traj = x.reshape(-1, d + 1, d)
    changed = (np.diff(traj, axis=1) != 0).sum(axis=2)
    return int((changed == 0).sum())


def _morris_step_bias(sweep: Sweep, x: np.ndarray) -> dict[str, float]:
    """Integer parameters whose rounded Morris steps differ from SALib's nominal step
    ``delta = levels / (2 (levels - 1))`` (share of the range) by more than 5%: parameter -> mean
    actual step / delta. SALib divides by delta, so such a parameter's mu and mu* are scaled by it."""
    ps = sweep.config.parameters
    d, levels = len(ps), sweep.settings.morris_levels
    if d == 0 or x.shape[0] % (d + 1):
        return {}
    delta = levels / (2 * (levels - 1))
    steps = np.abs(np.diff(x.reshape(-1, d + 1, d), axis=1)).reshape(-1, d)
    out = {}
    for j, p in enumerate(ps):
        moved = steps[:, j][steps[:, j] > 0]
        if p.integer and moved.size:
            ratio = float(moved.mean() / (p.high - p.low) / delta)
            if abs(ratio - 1) > 0.05:
                out[p.path] = ratio
    return out


def morris_indices(sweep: Sweep, design: pd.DataFrame, stats: pd.DataFrame) -> dict:
    """Morris elementary-effect statistics per output: mu, mu*, mu* confidence interval, sigma."""
    from SALib.analyze import morris

    problem = salib_problem(sweep)
    x = design[sweep.param_paths].to_numpy(dtype=float)  # SALib rejects integer arrays
    seed = analysis_seed(sweep)
    zero_steps = _morris_zero_steps(x, problem["num_vars"])
    bias = _morris_step_bias(sweep, x)
    notes = []
    if zero_steps:
        notes.append(
            f"{zero_steps} Morris steps changed no parameter (integer parameters rounded to the "
            f"same value); their effects count as 0"
        )
    if bias:
        notes.append(
            "integer rounding changes the step size, scaling mu and mu* by "
            + ", ".join(f"{p} ×{r:.2f}" for p, r in bias.items())
        )
    result: dict[str, dict] = {}
    for out in sweep.settings.outputs:
        y, info = _usable(stats, out, "morris")
        if y is not None:
            try:
                si = morris.analyze(
                    problem, x, y, num_levels=sweep.settings.morris_levels, conf_level=CONF_LEVEL, seed=seed
                )
            except (RuntimeError, ValueError) as err:
                info = {
                    "status": "skipped",
                    "reason": "salib_error",
                    "message": f"{out}: Morris analysis failed: {err}".strip(),
                }
            else:
                info["trajectories"] = len(y) // (problem["num_vars"] + 1)
                info["indices"] = [
                    {
                        "parameter": name,
                        "mu": si["mu"][j],
                        "mu_star": si["mu_star"][j],
                        "mu_star_conf": si["mu_star_conf"][j],
                        "sigma": si["sigma"][j],
                    }
                    for j, name in enumerate(problem["names"])
                ]
                if notes:
                    info["note"] = f"{out}: " + "; ".join(notes) + "."
                    info["integer_step_scaling"] = bias
        result[out] = info
    return result


def _tidy(method: str, result: dict) -> pd.DataFrame:
    spec = {
        "sobol": [("S1", "S1_conf"), ("ST", "ST_conf")],
        "morris": [("mu", None), ("mu_star", "mu_star_conf"), ("sigma", None)],
    }[method]
    rows = []
    for out, info in result.items():
        for r in info.get("indices", []):
            for index, conf in spec:
                rows.append(
                    {
                        "output": out,
                        "parameter": r["parameter"],
                        "index": index,
                        "value": float(r[index]),
                        "conf": float(r[conf]) if conf else np.nan,
                    }
                )
    return pd.DataFrame(rows, columns=["output", "parameter", "index", "value", "conf"])


def fig_sobol(output: str, info: dict, replications: int) -> Figure:
    """S1 and ST per parameter as horizontal bars with their confidence intervals."""
    rows = info["indices"]
    names = [r["parameter"] for r in rows]
    pos = np.arange(len(rows))
    fig, ax = _new_figure(8.5, 1.6 + 0.5 * len(rows))
    h = 0.38
    for off, key, colour in ((-h / 2, "S1", "#4C72B0"), (h / 2, "ST", "#DD8452")):
        vals = np.array([r[key] for r in rows], dtype=float)
        conf = np.array([r[f"{key}_conf"] for r in rows], dtype=float)
        ax.barh(
            pos + off,
            vals,
            height=h,
            xerr=conf,
            capsize=3,
            color=colour,
            label={"S1": "first order (S1)", "ST": "total (ST)"}[key],
            error_kw={"elinewidth": 1, "ecolor": "0.2"},
        )
    ax.set_yticks(pos, names)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(f"Sobol index (bars: {CONF_LEVEL:.0%} bootstrap CI)")
    ax.set_title(
        f"Sobol indices: {output}\nN = {info.get('base_samples')} base samples, "
        f"mean of {replications} replicate{'s' if replications != 1 else ''} per sample"
    )
    ax.legend(loc="best")
    ax.grid(axis="x", alpha=0.3)
    return fig


def fig_morris(output: str, info: dict, replications: int) -> Figure:
    """mu* against sigma, one labelled point per parameter, with mu*'s confidence interval."""
    rows = info["indices"]
    mu_star = np.array([r["mu_star"] for r in rows], dtype=float)
    sigma = np.array([r["sigma"] for r in rows], dtype=float)
    conf = np.array([r["mu_star_conf"] for r in rows], dtype=float)
    fig, ax = _new_figure(8.5, 6.0)
    ax.errorbar(mu_star, sigma, xerr=conf, fmt="o", color="#4C72B0", ecolor="0.5", capsize=3)
    top = float(np.nanmax(np.r_[mu_star + conf, sigma, 0.0])) * 1.1 or 1.0
    # labels of nearby points are staggered vertically so that they do not overprint
    order = np.lexsort((sigma, mu_star))
    for k, j in enumerate(order):
        near = k > 0 and abs(mu_star[j] - mu_star[order[k - 1]]) < 0.12 * top
        ax.annotate(
            rows[j]["parameter"],
            (mu_star[j], sigma[j]),
            xytext=(5, 4 + (12 * (k % 3) if near else 0)),
            textcoords="offset points",
            fontsize=8,
        )
    ax.plot([0, top], [0, top], ls="--", color="0.6", lw=0.8, label="σ = μ*")
    ax.set_xlim(-0.02 * top, top)
    ax.set_ylim(-0.02 * top, top)
    ax.set_xlabel(f"μ* (mean absolute elementary effect; bars: {CONF_LEVEL:.0%} CI)")
    ax.set_ylabel("σ (standard deviation of elementary effects)")
    ax.set_title(
        f"Morris screening: {output}\n{info.get('trajectories')} trajectories, "
        f"mean of {replications} replicate{'s' if replications != 1 else ''} per sample"
    )
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------------
def _runs_word(sweep: Sweep) -> str:
    """What a cell's runs are: "10 draws of posterior april_2025" or "8 replicates"."""
    n = sweep.settings.replications
    if sweep.settings.posterior is not None:
        return f"{n} draw{'s' if n != 1 else ''} of posterior {sweep.settings.posterior}"
    return f"{n} replicate{'s' if n != 1 else ''}"


def sweep_caption(sweep: Sweep) -> str:
    """The caption of a sweep's figures: sweep, method and size, scenario, seed, commit."""
    from rareshock.figstyle import caption_text, commit_of
    from rareshock.outputs import REPO_DIR, git_provenance

    s = sweep.settings
    size = f"{s.method}, {s.samples} samples" if s.method != "grid" else "grid"
    return caption_text(
        scenario=str(sweep.base.get("scenario", {}).get("name", "")) or None,
        seed=s.seed,
        extra=f"sweep {s.name} ({size} × {_runs_word(sweep)})",
        commit=commit_of({"git": git_provenance(REPO_DIR)}) or "unknown",
    )


def _save(fig: Figure, path: Path, caption: str | None) -> None:
    from rareshock.figstyle import caption as put_caption

    if caption:
        put_caption(fig, caption, reserve=True)
    save_png(fig, path)


def robust_limits(values: np.ndarray) -> tuple[float, float, str]:
    """Colour limits that one outlying cell cannot stretch: the data's range, cut at 3 interquartile ranges
    beyond the quartiles (Tukey's far-out fences); returns (vmin, vmax, colour bar ``extend``)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 0.0, 1.0, "neither"
    lo, hi = float(v.min()), float(v.max())
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    vmin, vmax = (max(lo, q1 - 3 * iqr), min(hi, q3 + 3 * iqr)) if iqr > 0 else (lo, hi)
    if vmax <= vmin:
        vmin, vmax = (vmin - 0.5, vmax + 0.5) if vmin == 0 else (vmin * 0.99, vmax * 1.01)
        vmin, vmax = min(vmin, vmax), max(vmin, vmax)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (lo < vmin, hi > vmax)
    ]
    return vmin, vmax, extend


def _cell_text(output: str, row: Any, runs: int) -> str:
    """ "2031\n[2029–never]\nnever in 3 of 10" for one cell."""
    from rareshock.figstyle import format_value

    if row is None or row["n_runs"] == 0:
        return "no run"
    if row["n_ok"] == 0:
        return f"all {int(row['n_runs'])} runs failed"
    none = "never" if is_first_time(output) else "no value"
    med = format_value(output, row["median"], never=none)
    lines = [med, f"[{format_value(output, row['p10'], never=none)}–{format_value(output, row['p90'], never=none)}]"]
    if row["n_null"]:
        lines.append(f"{none} in {int(row['n_null'])} of {int(row['n_ok'])}")
    failed = int(row["n_runs"] - row["n_ok"])
    if failed:
        lines.append(f"{failed} failed")
    return "\n".join(lines).replace("$", r"\$")  # a literal dollar, not mathtext between two of them


def _null_note(output: str, st: pd.DataFrame) -> str:
    nulls, ok = int(st["n_null"].sum()), int(st["n_ok"].sum())
    failed = int((st["n_runs"] - st["n_ok"]).sum())
    parts = []
    if nulls:
        what = "never happened" if is_first_time(output) else "reported no value"
        cells = int((st["n_null"] > 0).sum())
        parts.append(f"{what} in {nulls} of {ok} runs ({cells} of {len(st)} cells)")
    if failed:
        parts.append(f"{failed} runs failed")
    return ("\n" + "; ".join(parts)) if parts else ""


def fig_heatmap(
    output: str, st: pd.DataFrame, params: list[str], levels: list[list], runs: str, replications: int = 0
) -> Figure:
    """Heatmap of each cell's median over its runs, annotated "median [p10–p90]" and, where runs never
    reached it, how many; first parameter on the y axis, second on the x axis. Colours are cut at robust
    limits (:func:`robust_limits`, the colour bar's arrow marks the cut); a cell whose median is "never"
    is grey."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    from rareshock import figstyle

    p0, p1 = params
    by = {(a, b): r for a, b, r in zip(st[p0], st[p1], st.to_dict("records"))}
    med = np.full((len(levels[0]), len(levels[1])), np.nan)
    for i, a in enumerate(levels[0]):
        for j, b in enumerate(levels[1]):
            r = by.get((a, b))
            med[i, j] = np.nan if r is None else r["median"]
    vmin, vmax, extend = robust_limits(med)
    cmap = colormaps["viridis"].with_extremes(bad="0.82")
    norm = Normalize(vmin, vmax)
    shown = np.where(np.isfinite(med), med, np.nan)
    width = 2.4 + 1.55 * len(levels[1]) + 1.2
    height = 1.9 + 0.62 * len(levels[0])
    fig, ax = _new_figure(max(width, 8.5), max(height, 3.8))
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, norm=norm, origin="lower", aspect="auto")
    for i, a in enumerate(levels[0]):
        for j, b in enumerate(levels[1]):
            r = by.get((a, b))
            v = med[i, j]
            if np.isfinite(v):
                red, green, blue, _ = cmap(norm(v))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            else:
                dark = False
            ax.text(
                j,
                i,
                _cell_text(output, r, replications),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
                linespacing=1.15,
            )
    ax.set_xticks(range(len(levels[1])), [figstyle.parameter_text(p1, v) for v in levels[1]])
    ax.set_yticks(range(len(levels[0])), [figstyle.parameter_text(p0, v) for v in levels[0]])
    ax.set_xticks(np.arange(len(levels[1]) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(levels[0]) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel(p1)
    ax.set_ylabel(p0)
    if not np.isfinite(med).any():  # every cell "never" (or empty): there is no scale to show
        ax.set_title(
            f"{output}\nmedian [10th–90th percentile] over {runs} per cell{_null_note(output, st)}",
            fontsize=9.5,
            loc="left",
        )
        return fig
    cbar = fig.colorbar(
        im,
        ax=ax,
        extend=extend,
        label=f"{output}\n(median; colour scale cut at the arrow)" if extend != "neither" else f"{output} (median)",
    )
    figstyle.value_axis(cbar.ax, output, "y")
    ax.set_title(
        f"{output}\nmedian [10th–90th percentile] over {runs} per cell{_null_note(output, st)}",
        fontsize=9.5,
        loc="left",
    )
    return fig


def fig_line(output: str, st: pd.DataFrame, param: str, runs: str, replications: int = 0) -> Figure:
    """Median of each value of one parameter's grid with its 10th–90th percentile band; how many runs never
    reached the output is written above each point where some did not."""
    from rareshock import figstyle

    numeric = pd.api.types.is_numeric_dtype(st[param]) and not pd.api.types.is_bool_dtype(st[param])
    if numeric:
        st = st.sort_values(param, kind="stable")
    xv = st[param]
    x = xv.to_numpy(dtype=float) if numeric else np.arange(len(xv), dtype=float)
    med, lo, hi = (st[c].to_numpy(dtype=float) for c in QUANTILES[1:2] + QUANTILES[:1] + QUANTILES[2:])
    top = np.nanmax(np.r_[hi[np.isfinite(hi)], med[np.isfinite(med)], 0.0])
    fig, ax = _new_figure(8.5, 5.0)
    ax.plot(x, np.where(np.isfinite(med), med, np.nan), marker="o", color="#4C72B0", label="median")
    ax.fill_between(
        x,
        lo,
        np.where(np.isfinite(hi), hi, top),
        color="#4C72B0",
        alpha=0.2,
        lw=0,
        label="10th–90th percentile" + (" (open-ended where never)" if np.isinf(hi).any() else ""),
    )
    none = "never" if is_first_time(output) else "no value"
    for xi, row in zip(x, st.to_dict("records")):
        if row["n_null"]:
            ax.annotate(
                f"{none}\n{int(row['n_null'])}/{int(row['n_ok'])}",
                (xi, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, -3),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=7,
                color="0.3",
            )
    ax.set_xticks(x, [figstyle.parameter_text(param, v) for v in xv])
    figstyle.value_axis(ax, output)
    ax.set_xlabel(param)
    ax.set_ylabel(output)
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{output}\nmedian and 10th–90th percentile over {runs} per value{_null_note(output, st)}",
        fontsize=9.5,
        loc="left",
    )
    ax.legend(loc="best", fontsize=8)
    return fig


def grid_figures(
    sweep: Sweep, stats: pd.DataFrame, out_dir: Path, stems: dict[str, str], caption: str | None = None
) -> tuple[list[str], list[str]]:
    """Heatmaps (two parameters) or line plots (one parameter); returns (files written, lines)."""
    params = sweep.param_paths
    reps = sweep.settings.replications
    files, messages = [], []
    if len(params) not in (1, 2):
        return files, messages
    kind = "heatmap" if len(params) == 2 else "line"
    for out in sweep.settings.outputs:
        if out not in stems:
            continue
        st = stats[stats["output"] == out]
        path = out_dir / FIG_DIR / f"{kind}_{stems[out]}.png"
        if st["n_ok"].sum() == 0:
            for stale in (path, path.with_suffix(".svg")):
                stale.unlink(missing_ok=True)
            messages.append(f"{out}: no grid figure: no run succeeded.")
            continue
        if kind == "heatmap":
            levels = [p.grid_values() for p in sweep.config.parameters]
            fig = fig_heatmap(out, st, params, levels, _runs_word(sweep), reps)
        else:
            fig = fig_line(out, st, params[0], _runs_word(sweep), reps)
        _save(fig, path, caption)
        files += [f"{FIG_DIR}/{path.name}", f"{FIG_DIR}/{path.with_suffix('.svg').name}"]
        nulls = int(st["n_null"].sum())
        if nulls:
            what = "never happened" if is_first_time(out) else "reported no value"
            messages.append(f"{out}: {what} in {nulls} of {int(st['n_ok'].sum())} runs (shown per cell in the figure)")
    return files, messages


# --------------------------------------------------------------------------------------------------
# Random and Latin hypercube sweeps: scatter plots and feature scores
# --------------------------------------------------------------------------------------------------
FEATURE_MIN_RUNS = 10  # fewer runs with a value: no feature scores for that output
EXPLORE_METHODS = ("lhs", "random")


def _binned(x: np.ndarray, y: np.ndarray, censored: bool, bins: int) -> tuple[np.ndarray, ...]:
    """Bin centres (equal-count bins of ``x``) and the median, 10th and 90th percentile of ``y`` in each."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        return (np.array([]),) * 4
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    centre, med, lo, hi = [], [], [], []
    for k in range(edges.size - 1):
        sel = idx == k
        if not sel.any():
            continue
        q10, q50, q90 = quantiles(y[sel], censored)
        centre.append(float(np.median(x[sel])))
        med.append(q50)
        lo.append(q10)
        hi.append(q90)
    return tuple(np.array(a, dtype=float) for a in (centre, med, lo, hi))


def fig_scatter(output: str, ok: pd.DataFrame, params: list[str], title: str) -> Figure:
    """``output`` against each swept parameter, one point per run, with the median (and 10th–90th
    percentile) in equal-count bins of the parameter; runs in which it never happened (or that reported no
    value) are ticks along the top, counted in each panel's title."""
    from matplotlib.figure import Figure

    from rareshock import figstyle

    cols = min(4, len(params))
    rows = -(-len(params) // cols)
    fig = Figure(figsize=(3.4 * cols + 0.6, 2.9 * rows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    y = ok[output].to_numpy(dtype=float)
    censored = is_first_time(output)
    none = "never" if censored else "no value"
    missing = np.isnan(y)
    bins = int(np.clip(len(y) // 12, 3, 12))
    for ax, param in zip(axes, params):
        x = ok[param].to_numpy(dtype=float)
        ax.scatter(x[~missing], y[~missing], s=9, alpha=0.45, color="#4C72B0", lw=0, label="one run")
        c, med, lo, hi = _binned(x, y, censored, bins)
        if c.size:
            ax.fill_between(c, lo, hi, color="#DD8452", alpha=0.18, lw=0, label="10th–90th percentile (bins)")
            ax.plot(c, np.where(np.isfinite(med), med, np.nan), color="#C44E52", lw=2, label="binned median")
        if missing.any():
            ax.plot(
                x[missing],
                np.full(int(missing.sum()), 0.985),
                transform=ax.get_xaxis_transform(),
                ls="none",
                marker="|",
                ms=7,
                color="0.35",
                label=f"{none} (tick at top)",
            )
        shown = param if len(param) <= 34 else "…" + param[-33:]
        ax.set_title(
            shown + (f"\n{none} in {int(missing.sum())} of {len(y)} runs" if missing.any() else ""), fontsize=8.5
        )
        if param.rsplit(".", 1)[-1].endswith("_usd"):
            figstyle.usd_axis(ax, "x")
        else:
            figstyle.plain_axis(ax, "x")
        ax.grid(alpha=0.25)
    for ax in axes[len(params) :]:
        ax.axis("off")
    figstyle.value_axis(axes[0], output)
    for ax in axes[::cols]:
        ax.set_ylabel(output, fontsize=8.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    return fig


def feature_scores(sweep: Sweep, runs: pd.DataFrame, outputs: list[str]) -> tuple[pd.DataFrame, dict]:
    """Extra-trees feature scores (EMA Workbench ``get_feature_scores_all``, regression) of each output
    against the swept parameters, over the successful runs: a parameter x output table (each column sums
    to 1) and per output how many runs were used. A first-time output's "never" runs count as later than
    any run that had one (a value one range above the largest, which keeps the order trees split on);
    other outputs' null runs are left out. Seeded from the sweep seed, so the scores are reproducible."""
    params = sweep.param_paths
    ok = runs[runs["status"] == "ok"].reset_index(drop=True)
    x_all = _prim_inputs(ok, params)
    table = pd.DataFrame(index=pd.Index(params, name="parameter"))
    info: dict[str, dict] = {}
    for out in outputs:
        y = ok[out].to_numpy(dtype=float)
        null = np.isnan(y)
        keep = ~null
        if is_first_time(out) and null.any() and (~null).any():
            finite = y[~null]
            y = np.where(null, finite.max() + max(np.ptp(finite), 1.0), y)
            keep = np.ones_like(null)
        n = int(keep.sum())
        entry = {"runs": n, "null_runs": int(null.sum()), "never_counted_as_later": bool(is_first_time(out))}
        if n < FEATURE_MIN_RUNS or np.ptp(y[keep]) == 0:
            why = f"only {n} runs with a value" if n < FEATURE_MIN_RUNS else "it is the same in every run"
            info[out] = {**entry, "status": "skipped", "message": f"{out}: no feature scores: {why}."}
            table[out] = np.nan
            continue
        with _quiet_ema():
            from ema_workbench.analysis.feature_scoring import get_feature_scores_all

            scores = get_feature_scores_all(
                x_all[keep].reset_index(drop=True),
                {out: y[keep]},
                alg="extra trees",
                random_state=analysis_seed(sweep) % (2**32 - 1),
                max_features=max(1, round(len(params) / 3)),
            )
        table[out] = scores[out].reindex(params).to_numpy(dtype=float)
        info[out] = {**entry, "status": "ok"}
    return table.reset_index(), info


def fig_feature_scores(table: pd.DataFrame, title: str) -> Figure:
    """Feature scores as an annotated heatmap: parameters (most influential first) x outputs."""
    from matplotlib import colormaps

    t = table.set_index("parameter")
    t = t.loc[t.max(axis=1).fillna(-1).sort_values(ascending=False, kind="stable").index]
    vals = t.to_numpy(dtype=float)
    fig, ax = _new_figure(2.6 + 1.7 * t.shape[1] + 2.4, 1.6 + 0.42 * t.shape[0])
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    top = float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=0, vmax=max(top, 1e-9), aspect="auto")
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            v = vals[i, j]
            text = f"{v:.2f}" if np.isfinite(v) else "n/a"
            dark = np.isfinite(v) and v < 0.55 * top
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(t.shape[1]), list(t.columns), rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(t.shape[0]), list(t.index), fontsize=8)
    fig.colorbar(im, ax=ax, label="feature score (share of the output's explained variation)")
    ax.set_title(title, fontsize=9.5, loc="left")
    return fig


def exploration(
    sweep: Sweep, runs: pd.DataFrame, out_dir: Path, stems: dict[str, str], outputs: list[str], caption: str | None
) -> tuple[list[str], list[str], dict]:
    """Scatter plots and feature scores of a random or Latin hypercube sweep; returns (files, lines,
    feature-score info per output)."""
    s = sweep.settings
    params = sweep.param_paths
    ok = runs[runs["status"] == "ok"].reset_index(drop=True)
    files, lines = [], []
    if ok.empty:
        return files, ["no successful run: no scatter plots or feature scores."], {}
    design = f"{s.method.upper() if s.method == 'lhs' else 'random'} design"
    for out in outputs:
        path = out_dir / FIG_DIR / f"scatter_{stems[out]}.png"
        title = (
            f"{out} against each swept parameter\n{len(ok)} runs ({design}, {s.samples} samples × "
            f"{_runs_word(sweep)}); line: median in equal-count bins"
        )
        _save(fig_scatter(out, ok, params, title), path, caption)
        files += [f"{FIG_DIR}/{path.name}", f"{FIG_DIR}/{path.with_suffix('.svg').name}"]
    table, info = feature_scores(sweep, runs, outputs)
    table_out = table.copy()
    for c in table_out.columns[1:]:
        table_out[c] = [round_sig(float(v)) for v in table_out[c]]
    atomic_write_text(out_dir / "feature_scores.csv", _csv(table_out))
    files.append("feature_scores.csv")
    lines += [i["message"] for i in info.values() if i["status"] != "ok"]
    scored = [o for o, i in info.items() if i["status"] == "ok"]
    path = out_dir / FIG_DIR / "feature_scores.png"
    if scored:
        title = (
            f"Feature scores (extra trees, EMA Workbench) of each output against the swept parameters\n"
            f"{len(ok)} successful runs of a {design}; a 'never' counts as later than any value"
        )
        _save(fig_feature_scores(table, title), path, caption)
        files += [f"{FIG_DIR}/feature_scores.png", f"{FIG_DIR}/feature_scores.svg"]
        for o in scored:
            col = table.set_index("parameter")[o]
            top = col.sort_values(ascending=False, kind="stable").head(3)
            lines.append(f"{o}: feature scores: " + ", ".join(f"{k} {v:.2f}" for k, v in top.items()))
    else:
        for stale in (path, path.with_suffix(".svg")):
            stale.unlink(missing_ok=True)
    return files, lines, info


# --------------------------------------------------------------------------------------------------
# Scenario discovery (PRIM)
# --------------------------------------------------------------------------------------------------
def _prim_inputs(runs: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Parameter columns as float (EMA's PRIM fails on integer columns under pandas 3, ema#451);
    text columns stay categorical."""
    x = runs[params].reset_index(drop=True).copy()
    for c in params:
        if pd.api.types.is_numeric_dtype(x[c]) or pd.api.types.is_bool_dtype(x[c]):
            x[c] = x[c].astype(float)
        else:
            x[c] = x[c].astype(str)
    return x


def choose_box(density: np.ndarray, threshold: float, coverage: np.ndarray | None = None) -> tuple[int, bool]:
    """Index on the peeling trajectory: among boxes with density ≥ threshold, the one with the highest
    coverage (the earliest on the trajectory among equals: fewer restrictions, less overfitting); if
    none meets the threshold, the densest. Returns (index, threshold met)."""
    meets = np.flatnonzero(density >= threshold)
    if meets.size:
        if coverage is None:
            return int(meets[0]), True
        return int(meets[np.argmax(coverage[meets])]), True
    return int(np.argmax(density)), False


def _limit_value(v: Any) -> Any:
    if isinstance(v, set | frozenset):
        return sorted(str(e) for e in v)
    return float(v)


def _describe_limit(name: str, e: dict) -> str:
    if not isinstance(e["min"], float):
        return f"{name} in {e['min']}"
    side = e.get("restricts", ["lower", "upper"])
    if side == ["upper"]:
        return f"{name} ≤ {_fmt(e['max'])}"
    if side == ["lower"]:
        return f"{name} ≥ {_fmt(e['min'])}"
    return f"{_fmt(e['min'])} ≤ {name} ≤ {_fmt(e['max'])}"


def scenario_discovery(sweep: Sweep, runs: pd.DataFrame) -> tuple[dict, Any]:
    """PRIM on the successful runs; returns (result dict, peeling trajectory or None)."""
    d = sweep.config.discovery
    params = sweep.param_paths
    rule = f"{d.outcome} < {d.below:g}" if d.below is not None else f"{d.outcome} > {d.above:g}"
    head = {
        "outcome": d.outcome,
        "rule": rule,
        "missing_is_case": d.missing_is_case,
        "threshold": d.threshold,
        "prim": dict(PRIM_SETTINGS),
    }
    if d.outcome not in runs.columns:
        return {
            **head,
            "status": "skipped",
            "reason": "unknown_outcome",
            "message": f"discovery: {d.outcome!r} is not a metric in runs.parquet.",
        }, None
    ok = runs[runs["status"] == "ok"].reset_index(drop=True)
    failed = int(len(runs) - len(ok))
    v = ok[d.outcome].to_numpy(dtype=float)
    missing = np.isnan(v)
    with np.errstate(invalid="ignore"):
        hit = v < d.below if d.below is not None else v > d.above
    y = np.where(missing, d.missing_is_case, hit).astype(np.int64)
    head.update(runs=len(ok), failed_runs_excluded=failed, missing_values=int(missing.sum()), cases=int(y.sum()))
    if len(ok) == 0 or y.sum() == 0 or y.sum() == len(y):
        what = "no successful run" if len(ok) == 0 else ("no run is a case" if y.sum() == 0 else "every run is a case")
        return {
            **head,
            "status": "skipped",
            "reason": "no_contrast",
            "message": f"discovery: skipped: {what} ({rule}); there is no region to find.",
        }, None

    use_agg()
    with _quiet_ema():
        from ema_workbench.analysis import prim

        p = prim.Prim(
            _prim_inputs(ok, params),
            y,
            peel_alpha=PRIM_SETTINGS["peel_alpha"],
            paste_alpha=PRIM_SETTINGS["paste_alpha"],
            mass_min=PRIM_SETTINGS["mass_min"],
        )
        box = p.find_box()
        traj = box.peeling_trajectory.reset_index(drop=True)
        i, met = choose_box(traj["density"].to_numpy(dtype=float), d.threshold, traj["coverage"].to_numpy(dtype=float))
        _, lims = box.inspect(i, style="data")[0]
        init = p.box_init
    limits = {}
    for unc in lims.index:
        lo, hi, qp_lo, qp_hi = lims.loc[unc].tolist()
        entry = {"min": _limit_value(lo), "max": _limit_value(hi)}
        if unc in init.columns and not isinstance(lo, set | frozenset):
            entry["restricts"] = [
                s for s, a, b in (("lower", lo, init.loc[0, unc]), ("upper", hi, init.loc[1, unc])) if a != b
            ]
        entry["qp_lower"] = None if pd.isna(qp_lo) else float(qp_lo)
        entry["qp_upper"] = None if pd.isna(qp_hi) else float(qp_hi)
        limits[str(unc)] = entry
    row = traj.iloc[i]
    chosen = {
        "index": i,
        "coverage": float(row["coverage"]),
        "density": float(row["density"]),
        "mass": float(row["mass"]),
        "runs": int(row["n"]),
        "cases": int(row["k"]),
        "restricted_dimensions": int(row["res_dim"]),
        "limits": limits,
    }
    trajectory = [
        {
            "index": int(k),
            "coverage": float(r["coverage"]),
            "density": float(r["density"]),
            "mass": float(r["mass"]),
            "runs": int(r["n"]),
            "cases": int(r["k"]),
            "restricted_dimensions": int(r["res_dim"]),
        }
        for k, r in traj.iterrows()
    ]
    desc = "; ".join(_describe_limit(u, e) for u, e in limits.items()) or "no restriction"
    msg = (
        f"discovery: {rule}: box {i} ({desc}) covers {chosen['coverage']:.0%} of the "
        f"{head['cases']} cases with density {chosen['density']:.0%}"
    )
    if not met:
        msg += f" (no box reaches the density threshold {d.threshold:g}; the densest is shown)"
    result = {**head, "status": "ok", "threshold_met": met, "box": chosen, "trajectory": trajectory, "message": msg}
    return result, traj


def fig_prim_tradeoff(result: dict, traj: pd.DataFrame) -> Figure:
    """Coverage against density along the peeling trajectory, coloured by restricted dimensions."""
    from matplotlib import colormaps

    cov = traj["coverage"].to_numpy(dtype=float)
    den = traj["density"].to_numpy(dtype=float)
    res = traj["res_dim"].to_numpy(dtype=int)
    box = result["box"]
    fig, ax = _new_figure(8.0, 6.0)
    ax.plot(cov, den, color="0.75", lw=1, zorder=1)
    top = max(int(res.max()), 1)
    cmap = colormaps["viridis"].resampled(top + 1)
    sc = ax.scatter(cov, den, c=res, cmap=cmap, vmin=-0.5, vmax=top + 0.5, s=28, zorder=2)
    fig.colorbar(sc, ax=ax, label="restricted parameters", ticks=range(top + 1))
    ax.scatter(
        [box["coverage"]],
        [box["density"]],
        s=180,
        facecolors="none",
        edgecolors="#C44E52",
        linewidths=2,
        zorder=3,
        label=f"chosen: box {box['index']}",
    )
    ax.annotate(
        f"box {box['index']}\ncoverage {box['coverage']:.2f}\ndensity {box['density']:.2f}",
        (box["coverage"], box["density"]),
        xytext=(-12, -14),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=8,
    )
    ax.axhline(
        result["threshold"], ls="--", color="#C44E52", lw=0.8, label=f"density threshold {result['threshold']:g}"
    )
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("coverage (share of all cases inside the box)")
    ax.set_ylabel("density (share of runs in the box that are cases)")
    ax.set_title(f"PRIM peeling trajectory: {result['rule']}\n{result['cases']} cases in {result['runs']} runs")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------------
def _top_line(method: str, output: str, info: dict, k: int = 3) -> str:
    """One terminal line with the ``k`` most influential parameters (ST for Sobol, mu* for Morris)."""
    key, conf, label = (
        ("ST", "ST_conf", "total Sobol index") if method == "sobol" else ("mu_star", "mu_star_conf", "Morris mu*")
    )
    rows = sorted(info["indices"], key=lambda r: -r[key])[:k]
    return f"{output}: {label}: " + ", ".join(f"{r['parameter']} {r[key]:.3g} ±{r[conf]:.2g}" for r in rows)


def analyse_sweep(sweep: Sweep, out_dir: Path) -> dict:
    """Analyse the finished sweep in ``out_dir``; write the files described in the module docstring.

    Returns a JSON-able summary: ``method``, ``samples``, ``replications``, ``runs`` (total/ok/failed),
    ``sensitivity`` (sobol/morris: per output its indices or why it was skipped), ``discovery`` (if
    configured), ``files`` written (relative to ``out_dir``) and ``lines`` to print on the terminal."""
    out_dir = Path(out_dir)
    s = sweep.settings
    params = sweep.param_paths
    design, runs = read_results(out_dir)
    lines: list[str] = []
    files: list[str] = []

    known = [o for o in s.outputs if o in runs.columns]
    for o in s.outputs:
        if o not in runs.columns:
            lines.append(f"{o}: not a metric in runs.parquet; not analysed.")
    stems = _output_files(known)
    stats = sample_stats(design, runs, params, known)
    (out_dir / FIG_DIR).mkdir(exist_ok=True)
    use_agg()
    caption = sweep_caption(sweep)

    name = "grid_means.csv" if s.method == "grid" else "sample_means.csv"
    atomic_write_text(out_dir / name, _csv(stats))
    files.append(name)

    n_ok = int((runs["status"] == "ok").sum())
    summary: dict[str, Any] = {
        "method": s.method,
        "samples": len(design),
        "replications": s.replications,
        "runs": {"total": len(runs), "ok": n_ok, "failed": len(runs) - n_ok},
        "outcome": "per sample: mean over the successful replicates that reported a value",
    }
    if len(runs) - n_ok:
        lines.append(f"{len(runs) - n_ok} of {len(runs)} runs failed (status 'error' in runs.parquet).")

    if s.method in ("sobol", "morris"):
        import seaborn as sns

        if s.method == "sobol":
            result, draw, prefix = sobol_indices(sweep, stats), fig_sobol, "sobol"
        else:
            result, draw, prefix = morris_indices(sweep, design, stats), fig_morris, "morris"
        for o in s.outputs:
            if o not in result:
                result[o] = {
                    "status": "skipped",
                    "reason": "unknown_output",
                    "message": f"{o}: not a metric in runs.parquet.",
                }
        sens = {
            "method": s.method,
            "conf_level": CONF_LEVEL,
            "seed": analysis_seed(sweep),
            "parameters": params,
            "samples": len(design),
            "replications": s.replications,
            "outcome": summary["outcome"],
            "outputs": result,
        }
        if s.method == "morris":
            sens["num_levels"] = s.morris_levels
        sens = _rounded(sens)
        atomic_write_text(out_dir / "sensitivity.json", to_json(sens))
        atomic_write_text(out_dir / "sensitivity.csv", _csv(_tidy(s.method, sens["outputs"])))
        files += ["sensitivity.json", "sensitivity.csv"]
        for o in known:
            info = sens["outputs"][o]
            path = out_dir / FIG_DIR / f"{prefix}_{stems[o]}.png"
            if info["status"] == "ok":
                with sns.axes_style("whitegrid"):
                    fig = draw(o, info, s.replications)
                _save(fig, path, caption)
                files += [f"{FIG_DIR}/{path.name}", f"{FIG_DIR}/{path.with_suffix('.svg').name}"]
                lines.append(_top_line(s.method, o, info))
                if info.get("note"):
                    lines.append(info["note"])
            else:
                for stale in (path, path.with_suffix(".svg")):  # no stale figure from an earlier analysis
                    stale.unlink(missing_ok=True)
                lines.append(info["message"])
        summary["sensitivity"] = sens["outputs"]
    elif s.method == "grid":
        got, msgs = grid_figures(sweep, stats, out_dir, stems, caption)
        files += got
        lines += msgs
        n_fig = sum(f.endswith(".png") for f in got)
        if got:
            lines.append(
                f"grid: {n_fig} figure{'s' if n_fig != 1 else ''} (PNG and SVG) in {FIG_DIR}/, cell medians, "
                f"percentiles and means in grid_means.csv"
            )
        else:
            lines.append(
                "grid: cell means in grid_means.csv"
                + (f" (figures only for one or two parameters, not {len(params)})" if len(params) > 2 else "")
            )
    elif s.method in EXPLORE_METHODS:
        got, msgs, scores = exploration(sweep, runs, out_dir, stems, known, caption)
        files += got
        lines += msgs
        summary["feature_scores"] = scores

    if sweep.config.discovery is not None:
        disc, traj = scenario_discovery(sweep, runs)
        disc = _rounded(disc)
        atomic_write_text(out_dir / "discovery.json", to_json(disc))
        files.append("discovery.json")
        fig_path = out_dir / FIG_DIR / "prim_tradeoff.png"
        if traj is not None:
            _save(fig_prim_tradeoff(disc, traj), fig_path, caption)
            files += [f"{FIG_DIR}/prim_tradeoff.png", f"{FIG_DIR}/prim_tradeoff.svg"]
        else:
            for stale in (fig_path, fig_path.with_suffix(".svg")):
                stale.unlink(missing_ok=True)
        lines.append(disc["message"])
        summary["discovery"] = disc

    summary["files"] = sorted(files)
    summary["lines"] = lines
    return json.loads(to_json(_rounded(summary)))
