"""What a calibration writes once its generations are done: the posterior, the history, identifiability,
the posterior predictive check, figures, and the published posterior.

Quantiles of weighted samples are empirical (inverted CDF): the smallest value whose cumulative weight
reaches q. Identifiability compares each parameter's posterior 5-95% interval with its prior's:

- ``width_ratio`` = posterior interval width / prior interval width;
- "pinned down" if ``width_ratio <= PINNED`` (0.25), "partly informed" if ``<= PARTLY`` (0.75), else
  "stays at prior".
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rareshock.calibration.config import PREDICTIVE_KEY, RESAMPLE_KEY, Calibration
from rareshock.calibration.stats import TargetArrays

PINNED = 0.25
"""A parameter is "pinned down" if its posterior 5-95% interval is at most this share of its prior's."""
PARTLY = 0.75
"""... "partly informed" if at most this share, and "stays at prior" above it."""
QUANTILES = (0.05, 0.95)
POSTERIOR_KIND = "rareshock-posterior"
STAT = "stat:"
DIST = "distance:"


# --------------------------------------------------------------------------------------------------
# Weighted statistics
# --------------------------------------------------------------------------------------------------
def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Empirical quantile of a weighted sample: the smallest x whose cumulative normalised weight >= q."""
    x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)
    order = np.lexsort((w, x))
    x, w = x[order], w[order]
    c = np.cumsum(w) / w.sum()
    i = int(np.searchsorted(c, q - 1e-12, side="left"))
    return float(x[min(i, len(x) - 1)])


def effective_sample_size(w: np.ndarray) -> float:
    w = np.asarray(w, dtype=float)
    w = w / w.sum()
    return float(1.0 / np.sum(w**2))


def systematic_resample(weights: np.ndarray, n: int, seed: int, key: int = RESAMPLE_KEY) -> np.ndarray:
    """``n`` particle indices drawn by systematic resampling (one uniform from ``SeedSequence(seed,
    spawn_key=(key,))``): each particle appears ``floor(n w)`` or ``ceil(n w)`` times, in particle order."""
    w = np.asarray(weights, dtype=float)
    if n <= 0 or w.size == 0:
        return np.zeros(0, dtype=np.int64)
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    u = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,))).random()
    points = (u + np.arange(n)) / n
    return np.searchsorted(c, points, side="right").astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Frames from the pyabc database
# --------------------------------------------------------------------------------------------------
def particles_frame(cal: Calibration, history, t: int) -> pd.DataFrame:
    """Generation ``t``'s particles: parameter values by dotted path, weight, distance, seed, each
    statistic (``stat:<target>``) and per-target distance (``distance:<target>``)."""
    arrays = TargetArrays.of(cal)
    pop = history.get_population(t=t)
    rows = []
    for k, particle in enumerate(pop.particles):
        ss = particle.sum_stat
        values = np.array([float(np.asarray(ss[label]).item()) for label in arrays.labels])
        per = arrays.per_target(values)
        row = {
            "particle": k,
            "generation": int(t),
            "evaluation": int(np.asarray(ss["_evaluation"]).item()),
            "seed": int(np.asarray(ss["_seed"]).item()),
        }
        for p in cal.params:
            row[p.path] = p.value(particle.parameter[p.key])
        row["weight"] = float(particle.weight)
        row["distance"] = float(particle.distance)
        for label, v in zip(arrays.labels, values):
            row[STAT + label] = float(v)
        for label, d in zip(arrays.labels, per):
            row[DIST + label] = float(d)
        rows.append(row)
    df = pd.DataFrame(rows)
    w = df["weight"].to_numpy()
    df["weight"] = w / w.sum()
    for p in cal.params:
        if p.prior == "integer":
            df[p.path] = df[p.path].astype(np.int64)
    return df


def history_frame(history, generation_stats: dict) -> pd.DataFrame:
    """One row per generation: epsilon, evaluations, accepted, acceptance rate, effective sample size,
    failed simulations (``on_error = "reject"``), cumulative evaluations. No times (they are in the
    manifest), so the file is reproducible."""
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0].sort_values("t")
    n = history.get_nr_particles_per_population()
    rows = []
    cum = 0
    for _, r in pops.iterrows():
        t = int(r["t"])
        _, w = history.get_distribution(m=0, t=t)
        evals = int(r["samples"])
        cum += evals
        rows.append(
            {
                "generation": t,
                "epsilon": float(r["epsilon"]),
                "evaluations": evals,
                "accepted": int(n.loc[t]),
                "acceptance_rate": int(n.loc[t]) / evals,
                "ess": effective_sample_size(w),
                "failed": int(generation_stats.get(str(t), {}).get("failed", 0)),
                "evaluations_cumulative": cum,
            }
        )
    return pd.DataFrame(rows)


def identifiability(cal: Calibration, post: pd.DataFrame) -> pd.DataFrame:
    """Per parameter: prior and posterior mean, 5-95% intervals, their width ratio and the verdict."""
    rows = []
    w = post["weight"].to_numpy(dtype=float)
    for p in cal.params:
        prior = p.prior_dist()
        x = post[p.path].to_numpy(dtype=float)
        lo0, hi0 = (float(prior.ppf(q)) for q in QUANTILES)
        lo1, hi1 = (weighted_quantile(x, w, q) for q in QUANTILES)
        width0, width1 = hi0 - lo0, hi1 - lo1
        ratio = width1 / width0 if width0 > 0 else math.nan
        rows.append(
            {
                "parameter": p.path,
                "prior": p.prior,
                "prior_mean": float(prior.mean()),
                "prior_q05": lo0,
                "prior_q95": hi0,
                "posterior_mean": float(np.sum(w * x) / w.sum()),
                "posterior_q05": lo1,
                "posterior_q95": hi1,
                "width_ratio": ratio,
                "verdict": verdict(ratio),
            }
        )
    return pd.DataFrame(rows)


def verdict(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "stays at prior"
    if ratio <= PINNED:
        return "pinned down"
    if ratio <= PARTLY:
        return "partly informed"
    return "stays at prior"


def identifiability_md(cal: Calibration, ident: pd.DataFrame, post: pd.DataFrame) -> str:
    ess = effective_sample_size(post["weight"].to_numpy())
    lines = [
        f"# Identifiability: {cal.settings.name}",
        "",
        f"Posterior: the last generation's {len(post)} particles (effective sample size {ess:.0f}). Intervals "
        f"are 5-95%; width ratio = posterior interval width / prior interval width. Verdicts: pinned down "
        f"if the ratio is at most {PINNED}, partly informed if at most {PARTLY}, otherwise stays at prior.",
        "",
        "| parameter | prior | prior mean [5-95%] | posterior mean [5-95%] | width ratio | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in ident.itertuples(index=False):
        lines.append(
            f"| {r.parameter} | {r.prior} | {_g(r.prior_mean)} [{_g(r.prior_q05)}-{_g(r.prior_q95)}] | "
            f"{_g(r.posterior_mean)} [{_g(r.posterior_q05)}-{_g(r.posterior_q95)}] | {r.width_ratio:.2f} | "
            f"{r.verdict} |"
        )
    return "\n".join(lines) + "\n"


def _g(x: float) -> str:
    return f"{x:.4g}"


# --------------------------------------------------------------------------------------------------
# Posterior predictive check
# --------------------------------------------------------------------------------------------------
def predictive_jobs(cal: Calibration, post: pd.DataFrame) -> list[tuple[int, int, int, dict]]:
    """(draw, particle, seed, values) for ``predictive_draws`` draws of the posterior (systematic
    resampling), each with a new model seed."""
    from rareshock.sweeps.spec import run_seed

    s = cal.settings
    idx = systematic_resample(post["weight"].to_numpy(), s.predictive_draws, s.seed)
    jobs = []
    for d, k in enumerate(idx):
        row = post.iloc[int(k)]
        values = {p.path: (int(row[p.path]) if p.prior == "integer" else float(row[p.path])) for p in cal.params}
        jobs.append((d, int(k), run_seed(s.seed, PREDICTIVE_KEY, d), values))
    return jobs


def predictive_one(base: dict, values: dict, seed: int, arrays: TargetArrays) -> np.ndarray:
    """One posterior predictive simulation (in a worker); a failure gives NaN statistics."""
    from rareshock.calibration.stats import simulate

    try:
        return simulate(base, values, seed, arrays)
    except Exception:
        return np.full(len(arrays.labels), np.nan)


def predictive_frames(cal: Calibration, jobs: list, stats: list[np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    arrays = TargetArrays.of(cal)
    rows = []
    for (d, k, seed, values), x in zip(jobs, stats):
        per = arrays.per_target(x)
        row = {"draw": d, "particle": k, "seed": seed, **values}
        row.update({STAT + label: float(v) for label, v in zip(arrays.labels, x)})
        row.update({DIST + label: float(v) for label, v in zip(arrays.labels, per)})
        row["distance"] = float(arrays.combine(per))
        rows.append(row)
    draws = pd.DataFrame(rows)
    summary = []
    for j, t in enumerate(cal.targets):
        label = t.label
        x = draws[STAT + label].to_numpy(dtype=float) if len(draws) else np.zeros(0)
        ok = x[~np.isnan(x)]
        q = {
            f"q{int(100 * p):02d}": (float(np.quantile(ok, p, method="inverted_cdf")) if ok.size else math.nan)
            for p in (0.05, 0.5, 0.95)
        }
        summary.append(
            {
                "target": label,
                "low": math.nan if t.low is None else float(t.low),
                "high": math.nan if t.high is None else float(t.high),
                "median": q["q50"],
                "q05": q["q05"],
                "q95": q["q95"],
                "share_inside": float(np.mean(draws[DIST + label].to_numpy() == 0.0)) if len(draws) else math.nan,
                "share_null": float(np.mean(np.isnan(x))) if x.size else math.nan,
                "draws": int(x.size),
                "source": t.source,
            }
        )
        del j
    return draws, pd.DataFrame(summary)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def _grid(k: int, width: float = 4.0, height: float = 3.2):
    from matplotlib.figure import Figure

    cols = min(k, 3)
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(k)]
    return fig, axes


def fig_marginals(cal: Calibration, post: pd.DataFrame):
    """Each parameter's posterior (weighted histogram) over its prior density."""
    fig, axes = _grid(len(cal.params))
    w = post["weight"].to_numpy(dtype=float)
    for ax, p in zip(axes, cal.params):
        prior = p.prior_dist()
        x = post[p.path].to_numpy(dtype=float)
        if p.prior == "integer":
            ks = np.arange(int(p.low), int(p.high) + 1)
            ax.step(ks, prior.pmf(ks), where="mid", color="0.4", label="prior")
            counts = np.array([w[x == k].sum() for k in ks])
            ax.bar(ks, counts / counts.sum(), width=0.8, alpha=0.6, color="C0", label="posterior")
            ax.set_ylabel("probability")
        else:
            grid = np.linspace(p.low, p.high, 200)
            bins = np.linspace(p.low, p.high, 31)
            ax.hist(x, bins=bins, weights=w, density=True, alpha=0.6, color="C0", label="posterior")
            ax.plot(grid, prior.pdf(grid), color="0.4", label="prior")
            ax.set_ylabel("density")
        ax.set_title(p.path, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"{cal.settings.name}: posterior marginals over priors")
    return fig


def fig_pairs(cal: Calibration, post: pd.DataFrame):
    """Pairwise scatter of the posterior particles (marker area proportional to weight)."""
    from matplotlib.figure import Figure

    k = len(cal.params)
    fig = Figure(figsize=(2.6 * k + 1, 2.6 * k + 1), layout="constrained")
    w = post["weight"].to_numpy(dtype=float)
    size = 4 + 400 * w / w.max() / max(len(w) ** 0.5, 1)
    for i, pi in enumerate(cal.params):
        for j, pj in enumerate(cal.params):
            ax = fig.add_subplot(k, k, i * k + j + 1)
            if i == j:
                if pi.prior == "integer":
                    bins = np.arange(int(pi.low), int(pi.high) + 2) - 0.5
                else:
                    bins = np.linspace(pi.low, pi.high, 31)
                ax.hist(post[pi.path], bins=bins, weights=w, color="C0", alpha=0.7)
                ax.set_xlim(
                    pi.low - (0.5 if pi.prior == "integer" else 0), pi.high + (0.5 if pi.prior == "integer" else 0)
                )
                ax.set_yticks([])
            elif i > j:
                ax.scatter(post[pj.path], post[pi.path], s=size, alpha=0.5, color="C0", linewidths=0)
                ax.set_xlim(pj.low, pj.high)
                ax.set_ylim(pi.low, pi.high)
            else:
                ax.axis("off")
                continue
            if i == k - 1:
                ax.set_xlabel(pj.path, fontsize=8)
            if j == 0 and i != j:
                ax.set_ylabel(pi.path, fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{cal.settings.name}: posterior, pairwise")
    return fig


def fig_predictive(cal: Calibration, draws: pd.DataFrame):
    """For each target: the statistic under re-simulated posterior draws vs the target interval."""
    fig, axes = _grid(len(cal.targets))
    for ax, t in zip(axes, cal.targets):
        x = draws[STAT + t.label].to_numpy(dtype=float) if len(draws) else np.zeros(0)
        ok = x[~np.isnan(x)]
        lo = -np.inf if t.low is None else float(t.low)
        hi = np.inf if t.high is None else float(t.high)
        if ok.size and np.ptp(ok) == 0:  # one value: a histogram bar would be too thin to see
            ax.axvline(ok[0], color="C0", lw=4, alpha=0.8, label=f"posterior draws (all {ok[0]:g})")
        elif ok.size:
            ax.hist(ok, bins=min(30, max(5, ok.size // 3)), color="C0", alpha=0.7, label="posterior draws")
        if ok.size and np.ptp(ok) == 0 and not (np.isfinite(lo) and np.isfinite(hi)):  # one-sided target, one value
            edge = hi if np.isfinite(hi) else lo
            pad = max(1.0, abs(edge - ok[0]))
            ax.set_xlim(min(ok[0], edge) - pad, max(ok[0], edge) + pad)
        # the target drawn over the final x range: an open side runs to the edge of the axis
        x0, x1 = ax.get_xlim()
        span_lo = lo if np.isfinite(lo) else min(x0, np.nanmin(ok) if ok.size else x0)
        span_hi = hi if np.isfinite(hi) else max(x1, np.nanmax(ok) if ok.size else x1)
        ax.axvspan(span_lo, span_hi if span_hi > span_lo else span_lo + 1e-9, color="C2", alpha=0.25, label="target")
        ax.set_xlim(min(x0, span_lo), max(x1, span_hi))  # the whole target stays in view
        inside = float(np.mean(draws[DIST + t.label].to_numpy() == 0.0)) if len(draws) else math.nan
        nulls = int(np.isnan(x).sum())
        note = f"inside: {inside:.0%}" + (f"; null: {nulls}" if nulls else "")
        ax.set_title(f"{t.label}\n{note}", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"{cal.settings.name}: posterior predictive check ({len(draws)} draws)")
    return fig


def fig_history(hist: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    finite = hist[np.isfinite(hist["epsilon"])]
    ax1.plot(finite["generation"], finite["epsilon"], marker="o")
    ax1.set(title="epsilon by generation (generation 0: prior, epsilon = inf)", xlabel="generation", ylabel="epsilon")
    ax1.title.set_fontsize(9)
    ax2.plot(hist["generation"], hist["acceptance_rate"], marker="o", color="C1")
    ax2.set(title="acceptance rate", xlabel="generation", ylabel="accepted / evaluations", ylim=(0, 1.05))
    return fig


def figure_caption(cal: Calibration, post: pd.DataFrame, commit: str | None = None) -> str:
    """The caption line of a calibration's figures: calibration and scenario, particles and seed, commit
    (default: this checkout's, as its manifest records it)."""
    from rareshock.figstyle import caption_text, commit_of
    from rareshock.outputs import git_provenance

    if commit is None:
        commit = commit_of({"git": git_provenance()})
    scenario = (cal.base.get("scenario") or {}).get("name")
    extra = f"calibration {cal.settings.name} · {len(post):,} posterior particles"
    return caption_text(scenario, cal.settings.seed, None, commit, extra)


def write_figures(
    cal: Calibration,
    post: pd.DataFrame,
    hist: pd.DataFrame,
    draws: pd.DataFrame | None,
    fig_dir: Path,
    commit: str | None = None,
):
    """Marginals, pairs, history and (with ``draws``) the predictive check, as PNG and SVG, each with a
    caption line naming the calibration, its scenario and seed, and the commit."""
    from rareshock.figstyle import caption
    from rareshock.outputs import save_png, use_agg

    use_agg()
    fig_dir.mkdir(exist_ok=True)
    figures = {
        "marginals.png": fig_marginals(cal, post),
        "pairs.png": fig_pairs(cal, post),
        "history.png": fig_history(hist),
    }
    if draws is not None and len(draws):
        figures["predictive.png"] = fig_predictive(cal, draws)
    text = figure_caption(cal, post, commit)
    for name, fig in figures.items():
        caption(fig, text)
        save_png(fig, fig_dir / name)
    return list(figures)


# --------------------------------------------------------------------------------------------------
# The published posterior
# --------------------------------------------------------------------------------------------------
def published_path(cal: Calibration) -> Path:
    return cal.path.parent / f"{cal.settings.name}.posterior.parquet"


def posterior_meta(cal: Calibration, hist: pd.DataFrame, reason: str) -> dict:
    from rareshock.outputs import git_provenance

    last = hist.iloc[-1]
    return {
        "kind": POSTERIOR_KIND,
        "calibration": cal.settings.name,
        "calibration_file": cal.path.name,
        "fingerprint": cal.fingerprint(),
        "seed": cal.settings.seed,
        "scenario": cal.settings.scenario,
        "overrides": list(cal.settings.overrides),
        "generation": int(last["generation"]),
        "population": int(last["accepted"]),
        "epsilon": float(last["epsilon"]),
        "evaluations": int(last["evaluations_cumulative"]),
        "stop_reason": reason,
        "parameters": [p.model_dump(mode="json") for p in cal.config.parameters],
        "targets": [t.model_dump(mode="json", by_alias=True) for t in cal.config.targets],
        "git": git_provenance(),
    }


def posterior_bytes(post: pd.DataFrame, meta: dict) -> bytes:
    """The published posterior as Parquet: the particles' columns, and ``meta`` as JSON in the file's
    key-value metadata (key ``rareshock``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rareshock.outputs import PARQUET_COMPRESSION

    table = pa.Table.from_pandas(post, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[b"rareshock"] = json.dumps(meta, sort_keys=True).encode()
    table = table.replace_schema_metadata(md)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=PARQUET_COMPRESSION)
    return buf.getvalue()


def read_meta(path: Path) -> dict | None:
    """The rareshock metadata of a published posterior, or None (not one, or unreadable)."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_schema(path).metadata or {}
        meta = json.loads(md.get(b"rareshock", b"null"))
    except (OSError, ValueError, TypeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("kind") == POSTERIOR_KIND else None


def check_publishable(cal: Calibration) -> Path:
    """The published posterior's path, if ``--publish`` may write it (absent, or a posterior rareshock
    published for this calibration); else a one-line ConfigError (checked before the calibration runs)."""
    from rareshock.model.config import ConfigError
    from rareshock.outputs import show_path

    dest = published_path(cal)
    from rareshock.resources import is_installed_copy

    if is_installed_copy(dest):
        raise ConfigError(
            f"--publish: calibration {cal.settings.name!r} is the copy shipped in the installed package "
            f"({show_path(dest.parent)}); rareshock does not write into an installation: copy the calibration "
            f"TOML (and its scenario) to a folder of yours and calibrate that file"
        )
    if dest.is_symlink() or (dest.exists() and not dest.is_file()):
        raise ConfigError(f"--publish: {show_path(dest)} is not a regular file; nothing was published")
    if dest.exists():
        meta = read_meta(dest)
        if meta is None or meta.get("calibration") != cal.settings.name:
            raise ConfigError(
                f"--publish: {show_path(dest)} exists and is not the published posterior of calibration "
                f"{cal.settings.name!r}; rareshock never replaces it (move it away)"
            )
    if not dest.parent.is_dir():
        raise ConfigError(f"--publish: {show_path(dest.parent)} is not a folder")
    return dest
