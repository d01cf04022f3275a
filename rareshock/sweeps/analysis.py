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
        parts.append(part)
    cols = ["sample", *params, "output", "mean", "std", "n", "n_ok", "n_runs"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


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
def _cells_note(st: pd.DataFrame, replications: int) -> str:
    short = int((st["n"] < replications).sum())
    empty = int((st["n"] == 0).sum())
    if not short:
        return ""
    return f"\n{short} of {len(st)} cells have fewer values (failed runs or null results)" + (
        f", {empty} none" if empty else ""
    )


def fig_heatmap(output: str, st: pd.DataFrame, params: list[str], levels: list[list], replications: int) -> Figure:
    """Annotated heatmap of the per-cell mean; first parameter on the y axis, second on the x axis."""
    import seaborn as sns

    p0, p1 = params
    grid = st.pivot_table(index=p0, columns=p1, values="mean", aggfunc="first", dropna=False)
    grid = grid.reindex(index=levels[0], columns=levels[1])
    annot = np.vectorize(_fmt, otypes=[str])(grid.to_numpy(dtype=float))
    with sns.axes_style("white"):
        fig, ax = _new_figure(1.8 + 1.1 * len(levels[1]) + 1.5, 1.6 + 0.6 * len(levels[0]) + 0.8)
        sns.heatmap(
            grid,
            annot=annot,
            fmt="",
            cmap="viridis",
            ax=ax,
            linewidths=0.5,
            linecolor="white",
            cbar_kws={"label": output},
        )
    ax.invert_yaxis()
    ax.set_xlabel(p1)
    ax.set_ylabel(p0)
    ax.set_title(
        f"{output}\nmean of {replications} replicate{'s' if replications != 1 else ''}{_cells_note(st, replications)}"
    )
    return fig


def fig_line(output: str, st: pd.DataFrame, param: str, replications: int) -> Figure:
    """Per-value mean of one parameter's grid with a band of ±1 standard deviation."""
    import seaborn as sns

    numeric = pd.api.types.is_numeric_dtype(st[param]) and not pd.api.types.is_bool_dtype(st[param])
    if numeric:
        st = st.sort_values(param, kind="stable")
    xv = st[param]
    x = xv.to_numpy(dtype=float) if numeric else np.arange(len(xv), dtype=float)
    mean = st["mean"].to_numpy(dtype=float)
    std = st["std"].to_numpy(dtype=float)
    with sns.axes_style("whitegrid"):
        fig, ax = _new_figure(8.5, 5.0)
        ax.plot(x, mean, marker="o", color="#4C72B0", label="mean")
        ax.fill_between(x, mean - std, mean + std, color="#4C72B0", alpha=0.2, label="±1 std")
    if not numeric:
        ax.set_xticks(x, [str(v) for v in xv])
    ax.set_xlabel(param)
    ax.set_ylabel(output)
    ax.set_title(
        f"{output}\nmean of {replications} replicate{'s' if replications != 1 else ''}{_cells_note(st, replications)}"
    )
    ax.legend(loc="best")
    return fig


def grid_figures(
    sweep: Sweep, stats: pd.DataFrame, out_dir: Path, stems: dict[str, str]
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
        if st["n"].sum() == 0:
            path.unlink(missing_ok=True)
            messages.append(f"{out}: no grid figure: no run reported a value.")
            continue
        if kind == "heatmap":
            fig = fig_heatmap(out, st, params, [p.grid_values() for p in sweep.config.parameters], reps)
        else:
            fig = fig_line(out, st, params[0], reps)
        save_png(fig, path)
        files.append(f"{FIG_DIR}/{path.name}")
    return files, messages


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
                save_png(fig, path)
                files.append(f"{FIG_DIR}/{path.name}")
                lines.append(_top_line(s.method, o, info))
                if info.get("note"):
                    lines.append(info["note"])
            else:
                path.unlink(missing_ok=True)  # no stale figure from an earlier analysis
                lines.append(info["message"])
        summary["sensitivity"] = sens["outputs"]
    elif s.method == "grid":
        got, msgs = grid_figures(sweep, stats, out_dir, stems)
        files += got
        lines += msgs
        if got:
            lines.append(
                f"grid: {len(got)} figure{'s' if len(got) != 1 else ''} in {FIG_DIR}/, cell means in grid_means.csv"
            )
        else:
            lines.append(
                "grid: cell means in grid_means.csv"
                + (f" (figures only for one or two parameters, not {len(params)})" if len(params) > 2 else "")
            )

    if sweep.config.discovery is not None:
        disc, traj = scenario_discovery(sweep, runs)
        disc = _rounded(disc)
        atomic_write_text(out_dir / "discovery.json", to_json(disc))
        files.append("discovery.json")
        fig_path = out_dir / FIG_DIR / "prim_tradeoff.png"
        if traj is not None:
            save_png(fig_prim_tradeoff(disc, traj), fig_path)
            files.append(f"{FIG_DIR}/prim_tradeoff.png")
        else:
            fig_path.unlink(missing_ok=True)
        lines.append(disc["message"])
        summary["discovery"] = disc

    summary["files"] = sorted(files)
    summary["lines"] = lines
    return json.loads(to_json(_rounded(summary)))
