"""Sweep analysis (rareshock.sweeps.analysis) on fake sweep directories built from synthetic functions: no model runs.

Each test writes a sweep TOML over real scenario paths, builds its design with ``build_design``, computes
the outputs from a function with known sensitivity, and writes ``design.parquet`` and
``runs.parquet/part-*.parquet`` the way the executor does.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareshock.outputs import atomic_write_bytes, parquet_bytes
from rareshock.sweeps.analysis import analyse_sweep, analysis_seed, choose_box, safe_name
from rareshock.sweeps.spec import Sweep, build_design, load_sweep, run_seed

ROOT = Path(__file__).resolve().parents[1]
SHOCK = ROOT / "experiments" / "scenarios" / "april_2025_shock.toml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BUFFER = "automakers.US.buffer_days_mean"
P_INC = "licensing.cn.p_incomplete"
P_APP = "licensing.cn.p_approve_civil"
REVIEWERS = "licensing.cn.reviewers"
SEA = "shipping.sea_days.US"
RANGES = {BUFFER: (14.0, 42.0), P_INC: (0.0, 1.0), P_APP: (0.6, 1.0), REVIEWERS: (5, 60), SEA: (25, 26)}

IDLE = "us_auto_idle_plant_days"
WAIT = "cn_licences.mean_wait_working_days"
SHUTDOWN = "first_us_auto_shutdown_day"


# --------------------------------------------------------------------------------------------------
# Fake sweeps
# --------------------------------------------------------------------------------------------------
def _toml_value(v) -> str:
    return json.dumps(v)


def make_sweep(
    tmp_path: Path,
    method: str,
    params: list[str] | dict[str, list],
    *,
    samples: int = 1,
    replications: int = 1,
    seed: int = 3,
    outputs: tuple[str, ...] = (IDLE, WAIT, SHUTDOWN),
    integer: tuple[str, ...] = (),
    discovery: dict | None = None,
) -> Sweep:
    lines = [
        "[sweep]",
        f'name = "fake_{method}"',
        f"scenario = {_toml_value(str(SHOCK))}",
        f'method = "{method}"',
        f"samples = {samples}",
        f"replications = {replications}",
        f"seed = {seed}",
        f"outputs = {_toml_value(list(outputs))}",
        "",
    ]
    for p in params:
        lines += ["[[parameters]]", f'path = "{p}"']
        if isinstance(params, dict):
            lines.append(f"values = {_toml_value(params[p])}")
        else:
            lo, hi = RANGES[p]
            lines += [f"low = {lo}", f"high = {hi}"]
        if p in integer:
            lines.append("integer = true")
        lines.append("")
    if discovery:
        lines.append("[discovery]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in discovery.items()]
    path = tmp_path / "sweep.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_sweep(path)


def unit(design: pd.DataFrame, path: str) -> np.ndarray:
    lo, hi = RANGES[path]
    return (design[path].to_numpy(dtype=float) - lo) / (hi - lo)


Metrics = Callable[[pd.DataFrame, int], dict[str, np.ndarray]]


def write_fake(
    out: Path, sweep: Sweep, metrics: Metrics, failed: Callable[[int, int], bool] = lambda sample, rep: False
) -> pd.DataFrame:
    """design.parquet and runs.parquet/ (two part files) for ``metrics(design, replicate)``."""
    design = build_design(sweep)
    reps = sweep.settings.replications
    frames = []
    for r in range(reps):
        df = design.copy()
        df.insert(1, "replicate", np.int64(r))
        for name, values in metrics(design, r).items():
            df[name] = np.asarray(values, dtype=float)
        frames.append(df)
    runs = pd.concat(frames, ignore_index=True).sort_values(["sample", "replicate"], ignore_index=True)
    runs.insert(0, "run_id", (runs["sample"] * reps + runs["replicate"]).astype(np.int64))
    runs.insert(
        3, "seed", [run_seed(sweep.settings.seed, int(s), int(r)) for s, r in zip(runs["sample"], runs["replicate"])]
    )
    bad = np.array([failed(int(s), int(r)) for s, r in zip(runs["sample"], runs["replicate"])], dtype=bool)
    metric_cols = [c for c in runs.columns if c not in ("run_id", "sample", "replicate", "seed", *sweep.param_paths)]
    runs.loc[bad, metric_cols] = np.nan
    runs["status"] = np.where(bad, "error", "ok")
    runs["error"] = np.where(bad, "RuntimeError: synthetic failure", "")
    half = len(runs) // 2
    (out / "runs.parquet").mkdir(parents=True)
    atomic_write_bytes(out / "design.parquet", parquet_bytes(design))
    # the second part first: the analysis must not depend on the order part files are read in
    for k, part in ((1, runs.iloc[half:]), (0, runs.iloc[:half])):
        part = part.assign(batch=np.int64(k))
        atomic_write_bytes(out / "runs.parquet" / f"part-{k:06d}.parquet", parquet_bytes(part))
    return runs


# Ishigami function (a = 7, b = 0.1) on [-pi, pi]^3: analytic first-order and total indices
ISHIGAMI_S1 = (0.3139, 0.4424, 0.0)
ISHIGAMI_ST = (0.5576, 0.4424, 0.2437)


def additive(design: pd.DataFrame, rep: int) -> dict[str, np.ndarray]:
    """IDLE: Y = 2 u1 + u2 (+ 0 u3) on the unit-scaled parameters, so S1 = ST = (0.8, 0.2, 0).
    WAIT: the Ishigami function of the three parameters mapped onto [-pi, pi].
    Replicates add +-0.5, so the per-sample mean is exactly the noise-free value."""
    u1, u2, u3 = unit(design, BUFFER), unit(design, P_INC), unit(design, P_APP)
    x1, x2, x3 = (np.pi * (2 * u - 1) for u in (u1, u2, u3))
    ishigami = np.sin(x1) + 7 * np.sin(x2) ** 2 + 0.1 * x3**4 * np.sin(x1)
    noise = 0.5 if rep == 0 else -0.5
    shutdown = np.where(u1 > 0.9, np.nan, 30 + 50 * u1)  # null: "no shutdown" for long buffers
    return {IDLE: 100 * (2 * u1 + u2) + noise, WAIT: ishigami + noise, SHUTDOWN: shutdown}


# --------------------------------------------------------------------------------------------------
# Sobol
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sobol_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sweep, dict]:
    tmp = tmp_path_factory.mktemp("sobol")
    sweep = make_sweep(tmp, "sobol", [BUFFER, P_INC, P_APP], samples=1024, replications=2, seed=0)
    out = tmp / "out"
    write_fake(out, sweep, additive)
    return out, sweep, analyse_sweep(sweep, out)


def test_sobol_additive_indices_match_analytic(sobol_dir):
    out, sweep, res = sobol_dir
    sens = json.loads((out / "sensitivity.json").read_text())
    assert sens["method"] == "sobol" and sens["parameters"] == [BUFFER, P_INC, P_APP]
    info = sens["outputs"][IDLE]
    assert info["status"] == "ok" and info["base_samples"] == 1024
    idx = {r["parameter"]: r for r in info["indices"]}
    for p, true in ((BUFFER, 0.8), (P_INC, 0.2), (P_APP, 0.0)):
        tol = max(2 * idx[p]["S1_conf"], 0.05)
        assert abs(idx[p]["S1"] - true) < tol, (p, idx[p])
        assert abs(idx[p]["ST"] - true) < max(2 * idx[p]["ST_conf"], 0.05), (p, idx[p])
        assert 0 <= idx[p]["S1_conf"] < 0.15
    assert abs(idx[P_APP]["ST"]) < 1e-9  # no effect: f(A) == f(AB) exactly
    # Ishigami: interactions (x1 with x3), so S1 != ST; x3 acts only through the interaction
    wait = [r for r in sens["outputs"][WAIT]["indices"]]
    for r, s1, st in zip(wait, ISHIGAMI_S1, ISHIGAMI_ST):
        assert abs(r["S1"] - s1) < max(2 * r["S1_conf"], 0.06), r
        assert abs(r["ST"] - st) < max(2 * r["ST_conf"], 0.06), r
    assert wait[2]["ST"] > 0.15 and abs(wait[2]["S1"]) < 0.06
    assert res["sensitivity"][IDLE]["indices"] == info["indices"]
    assert f"{IDLE}: total Sobol index: {BUFFER} 0.8 ±" in "\n".join(res["lines"])  # for the terminal


def test_sobol_files_csv_and_figures(sobol_dir):
    out, _, res = sobol_dir
    csv = pd.read_csv(out / "sensitivity.csv")
    assert list(csv.columns) == ["output", "parameter", "index", "value", "conf"]
    assert set(csv["output"]) == {IDLE, WAIT}  # SHUTDOWN was skipped
    assert set(csv["index"]) == {"S1", "ST"} and len(csv) == 2 * 2 * 3
    row = csv[(csv.output == IDLE) & (csv.parameter == BUFFER) & (csv["index"] == "ST")].iloc[0]
    st = {r["parameter"]: r for r in res["sensitivity"][IDLE]["indices"]}[BUFFER]
    assert row["value"] == pytest.approx(st["ST"], rel=1e-11) and row["conf"] == pytest.approx(st["ST_conf"], rel=1e-11)
    for name in (f"sobol_{safe_name(IDLE)}.png", "sobol_cn_licences_mean_wait_working_days.png"):
        assert (out / "figures" / name).read_bytes().startswith(PNG_MAGIC)
    assert not (out / "figures" / f"sobol_{SHUTDOWN}.png").exists()
    assert set(res["files"]) >= {
        "sensitivity.json",
        "sensitivity.csv",
        "sample_means.csv",
        "figures/sobol_cn_licences_mean_wait_working_days.png",
    }
    means = pd.read_csv(out / "sample_means.csv")
    assert len(means) == 3 * 1024 * 5 and set(means["n_ok"]) == {2}


def test_sobol_null_outcome_is_skipped_with_reason_and_count(sobol_dir):
    out, _, res = sobol_dir
    design = pd.read_parquet(out / "design.parquet")
    n_null = int((unit(design, BUFFER) > 0.9).sum())
    info = json.loads((out / "sensitivity.json").read_text())["outputs"][SHUTDOWN]
    assert info["status"] == "skipped" and info["reason"] == "null_values"
    assert info["null_samples"] == n_null > 0 and info["samples"] == len(design)
    assert f"{n_null} of {len(design)} samples" in info["message"]
    assert info["message"] in res["lines"]


def test_sobol_identical_inputs_identical_bytes(sobol_dir, tmp_path):
    """Seed 0 on purpose: SALib's sobol.analyze treats seed=0 as 'unseeded' (``if seed:``)."""
    out, sweep, _ = sobol_dir
    assert sweep.settings.seed == 0 and analysis_seed(sweep) != 0
    first = {n: (out / n).read_bytes() for n in ("sensitivity.json", "sensitivity.csv", "sample_means.csv")}
    other = tmp_path / "again"
    write_fake(other, sweep, additive)
    analyse_sweep(sweep, other)
    analyse_sweep(sweep, out)
    for n, data in first.items():
        assert (other / n).read_bytes() == data, n
        assert (out / n).read_bytes() == data, n


def test_sobol_failed_runs_give_a_clear_skip_not_an_exception(tmp_path):
    sweep = make_sweep(tmp_path, "sobol", [BUFFER, P_INC, P_APP], samples=64, replications=2)
    out = tmp_path / "out"
    # samples 3 and 10 fail in both replicates; sample 5 in one (its mean uses the other)
    write_fake(out, sweep, additive, failed=lambda s, r: s in (3, 10) or (s == 5 and r == 1))
    res = analyse_sweep(sweep, out)
    sens = json.loads((out / "sensitivity.json").read_text())
    n = 64 * 5
    for o in (IDLE, WAIT, SHUTDOWN):
        info = sens["outputs"][o]
        assert info["status"] == "skipped" and info["reason"] == "failed_runs"
        assert info["missing_samples"] == 2 and info["missing_sample_ids"] == [3, 10]
        assert f"2 of {n} samples have no successful run" in info["message"]
        assert info["message"] in res["lines"]
    assert res["runs"] == {"total": 2 * n, "ok": 2 * n - 5, "failed": 5}
    assert pd.read_csv(out / "sensitivity.csv").empty
    assert not list((out / "figures").glob("sobol_*.png"))
    means = pd.read_csv(out / "sample_means.csv")
    s5 = means[(means["sample"] == 5) & (means["output"] == IDLE)].iloc[0]
    assert (s5["n"], s5["n_ok"], s5["n_runs"]) == (1, 1, 2)


# --------------------------------------------------------------------------------------------------
# Morris
# --------------------------------------------------------------------------------------------------
def test_morris_ranks_the_influential_parameter_first(tmp_path):
    sweep = make_sweep(
        tmp_path, "morris", [P_INC, BUFFER, REVIEWERS], samples=20, integer=(REVIEWERS,), outputs=(IDLE,)
    )
    out = tmp_path / "out"

    def f(design: pd.DataFrame, rep: int) -> dict:
        return {IDLE: 1 * unit(design, P_INC) + 5 * unit(design, BUFFER) ** 2}

    write_fake(out, sweep, f)
    res = analyse_sweep(sweep, out)
    info = json.loads((out / "sensitivity.json").read_text())["outputs"][IDLE]
    assert info["status"] == "ok" and info["trajectories"] == 20
    ranked = sorted(info["indices"], key=lambda r: -r["mu_star"])
    assert [r["parameter"] for r in ranked] == [BUFFER, P_INC, REVIEWERS]
    assert ranked[-1]["mu_star"] == 0 and ranked[-1]["sigma"] == 0
    csv = pd.read_csv(out / "sensitivity.csv")
    assert set(csv["index"]) == {"mu", "mu_star", "sigma"}
    assert (out / "figures" / f"morris_{IDLE}.png").read_bytes().startswith(PNG_MAGIC)
    assert res["sensitivity"][IDLE]["status"] == "ok"


# --------------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------------
def test_grid_two_parameters_heatmap_and_cell_means(tmp_path):
    buffers, reviewers = [14.0, 28.0, 42.0], [5, 15]
    sweep = make_sweep(
        tmp_path, "grid", {BUFFER: buffers, REVIEWERS: reviewers}, replications=3, outputs=(IDLE, SHUTDOWN)
    )

    def f(design: pd.DataFrame, rep: int) -> dict:
        b, r = design[BUFFER].to_numpy(float), design[REVIEWERS].to_numpy(float)
        shutdown = np.where((b == 42.0) & (rep == 0), np.nan, b)  # one null replicate per 42-day cell
        return {IDLE: b + 10 * r + rep, SHUTDOWN: shutdown}

    out = tmp_path / "out"
    write_fake(out, sweep, f, failed=lambda s, r: s == 0 and r == 2)
    res = analyse_sweep(sweep, out)
    g = pd.read_csv(out / "grid_means.csv")
    assert list(g.columns) == [
        "sample",
        BUFFER,
        REVIEWERS,
        "output",
        "mean",
        "std",
        "n",
        "n_ok",
        "n_runs",
        "n_null",
        "p10",
        "median",
        "p90",
    ]
    idle = g[g["output"] == IDLE]
    assert len(idle) == 6
    for row in idle.itertuples():
        expected = row._2 + 10 * row._3 + (0.5 if row.sample == 0 else 1.0)
        assert row.mean == pytest.approx(expected), row
        assert row.n == (2 if row.sample == 0 else 3)
    sd = g[(g["output"] == SHUTDOWN) & (g[BUFFER] == 42.0)]
    assert (sd["n"] == 2).all() and (sd["mean"] == 42.0).all()
    # the null replicate is counted, and as a first day that never came it is later than any day
    assert (sd["n_null"] == 1).all() and (sd["median"] == 42.0).all() and np.isinf(sd["p90"]).all()
    assert any("never happened in 2 of 17 runs" in line for line in res["lines"]), res["lines"]
    for o in (IDLE, SHUTDOWN):
        assert (out / "figures" / f"heatmap_{safe_name(o)}.png").read_bytes().startswith(PNG_MAGIC)
    assert "figures/heatmap_us_auto_idle_plant_days.png" in res["files"]
    assert not (out / "sensitivity.json").exists()


def test_grid_one_parameter_line_plot(tmp_path):
    sweep = make_sweep(tmp_path, "grid", {BUFFER: [14.0, 21.0, 28.0, 42.0]}, replications=2, outputs=(IDLE,))
    out = tmp_path / "out"
    write_fake(out, sweep, lambda d, r: {IDLE: d[BUFFER].to_numpy(float) * (1 + r)})
    res = analyse_sweep(sweep, out)
    assert (out / "figures" / f"line_{IDLE}.png").read_bytes().startswith(PNG_MAGIC)
    g = pd.read_csv(out / "grid_means.csv")
    assert g["mean"].tolist() == pytest.approx([21.0, 31.5, 42.0, 63.0])
    assert g["std"].tolist() == pytest.approx(list(np.array([14.0, 21.0, 28.0, 42.0]) / np.sqrt(2)))
    assert res["files"] == [
        "figures/line_us_auto_idle_plant_days.png",
        "figures/line_us_auto_idle_plant_days.svg",
        "grid_means.csv",
    ]


# --------------------------------------------------------------------------------------------------
# Scenario discovery
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("missing_is_case", [False, True])
def test_prim_finds_the_box_of_the_cases(tmp_path, missing_is_case, capsys, caplog):
    """y = (x1 < 0.3); with missing_is_case the cases report null instead of a low value."""
    caplog.set_level(logging.DEBUG)
    discovery = {"outcome": SHUTDOWN, "below": 30.0, "missing_is_case": missing_is_case, "threshold": 0.8}
    sweep = make_sweep(
        tmp_path,
        "lhs",
        [P_INC, BUFFER, REVIEWERS],
        samples=400,
        integer=(REVIEWERS,),
        outputs=(IDLE,),
        discovery=discovery,
    )

    def f(design: pd.DataFrame, rep: int) -> dict:
        x1 = design[P_INC].to_numpy(float)
        day = np.where(x1 < 0.3, np.nan, 100 * x1) if missing_is_case else 100 * x1
        return {SHUTDOWN: day, IDLE: x1}

    out = tmp_path / "out"
    write_fake(out, sweep, f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = analyse_sweep(sweep, out)
    assert not caught, [str(w.message) for w in caught]
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.name.startswith("EMA")]

    disc = json.loads((out / "discovery.json").read_text())
    assert disc["status"] == "ok" and disc["threshold_met"]
    design = pd.read_parquet(out / "design.parquet")
    assert disc["cases"] == int((design[P_INC] < 0.3).sum())
    assert disc["missing_values"] == (disc["cases"] if missing_is_case else 0)
    box = disc["box"]
    assert set(box["limits"]) == {P_INC}
    # x1 is uniform: a box x1 <= m has density 0.3/m, so density >= 0.8 means 0.3 <= m <= 0.375
    assert 0.28 <= box["limits"][P_INC]["max"] <= 0.3 / 0.8 + 0.01
    assert box["limits"][P_INC]["restricts"] == ["upper"]
    assert box["density"] >= 0.8 and box["coverage"] >= 0.95  # the highest-coverage dense box
    assert box["cases"] == round(box["coverage"] * disc["cases"])
    assert disc["trajectory"][box["index"]]["density"] == box["density"]
    assert (out / "figures" / "prim_tradeoff.png").read_bytes().startswith(PNG_MAGIC)
    assert res["discovery"]["box"] == box
    assert any(m.startswith("discovery:") for m in res["lines"])
    assert not (out / "sensitivity.json").exists()  # lhs: no indices


def test_prim_without_cases_is_skipped(tmp_path):
    discovery = {"outcome": SHUTDOWN, "above": 1000.0}
    sweep = make_sweep(tmp_path, "random", [P_INC, BUFFER], samples=50, outputs=(SHUTDOWN,), discovery=discovery)
    out = tmp_path / "out"
    write_fake(out, sweep, lambda d, r: {SHUTDOWN: 100 * d[P_INC].to_numpy(float)})
    res = analyse_sweep(sweep, out)
    disc = json.loads((out / "discovery.json").read_text())
    assert disc["status"] == "skipped" and disc["reason"] == "no_contrast" and disc["cases"] == 0
    assert "no run is a case" in disc["message"]
    assert not (out / "figures" / "prim_tradeoff.png").exists()
    assert not any(f.startswith("figures/prim_tradeoff") for f in res["files"])
    assert {"discovery.json", "sample_means.csv", "feature_scores.csv"} <= set(res["files"])


def test_choose_box_rule():
    dens = np.array([0.3, 0.5, 0.82, 0.9, 0.85, 0.7])
    cov = np.array([1.0, 0.95, 0.9, 0.8, 0.7, 0.5])
    assert choose_box(dens, 0.8, cov) == (2, True)  # highest coverage among the dense enough
    assert choose_box(dens, 0.95, cov) == (3, False)  # none dense enough: the densest


def test_safe_name():
    assert safe_name("cn_licences.mean_wait_working_days") == "cn_licences_mean_wait_working_days"
    assert safe_name("a b/c") == "a_b_c"


def test_morris_notes_integer_rounding_of_steps(tmp_path):
    """A narrow integer range (25..26) rounds every Morris step to the whole range, 1.5 times SALib's
    nominal step of 2/3: mu* is scaled by 1.5, and the analysis says so."""
    sweep = make_sweep(tmp_path, "morris", [P_INC, SEA], samples=10, integer=(SEA,), outputs=(IDLE,))
    out = tmp_path / "out"
    write_fake(out, sweep, lambda d, r: {IDLE: unit(d, P_INC) + unit(d, SEA)})
    res = analyse_sweep(sweep, out)
    info = res["sensitivity"][IDLE]
    assert info["integer_step_scaling"] == {SEA: 1.5}
    assert f"{SEA} ×1.50" in info["note"] and info["note"] in res["lines"]


# --------------------------------------------------------------------------------------------------
# Figures a paper can use: readable ticks, spread, never-reached cells, robust colours, LHS exploration
# --------------------------------------------------------------------------------------------------
BUDGET, DEAL, YEAR50 = "investment.budget_usd", "policy.deal", "year_us_auto_magnets_non_cn_50"


def _cells(values: dict[tuple, list[float]], output: str) -> pd.DataFrame:
    """Cell statistics as sample_stats writes them, from each cell's run values."""
    from rareshock.sweeps.analysis import quantiles

    rows = []
    for (budget, deal), v in values.items():
        v = np.asarray(v, dtype=float)
        p10, med, p90 = quantiles(v, output.startswith("year_"))
        n = int((~np.isnan(v)).sum())
        rows.append(
            {
                BUDGET: budget,
                DEAL: deal,
                "output": output,
                "mean": np.nanmean(v) if n else np.nan,
                "std": np.nan,
                "n": n,
                "n_ok": len(v),
                "n_runs": len(v),
                "n_null": len(v) - n,
                "p10": p10,
                "median": med,
                "p90": p90,
            }
        )
    return pd.DataFrame(rows)


def test_heatmap_ticks_are_dollars_and_years_and_never_reached_runs_are_counted():
    from rareshock.sweeps.analysis import fig_heatmap

    budgets, deals = [0.0, 1.0e9, 1.0e10, 1.0e12], [True, False]
    values = {(b, d): [2030.0 + k for k in range(10)] for b in budgets for d in deals}
    values[(0.0, False)] = [2031.0, 2032.0, 2033.0] + [np.nan] * 7  # 7 of 10 runs never reach 50%
    st = _cells(values, YEAR50)
    fig = fig_heatmap(YEAR50, st, [BUDGET, DEAL], [budgets, deals], "10 draws of posterior p")
    ax, cbar = fig.axes[0], fig.axes[1]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["$0", "$1bn", "$10bn", "$1,000bn"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["taken", "not taken"]
    years = [t.get_text() for t in cbar.get_yticklabels() if t.get_text()]
    assert years and all(len(y) == 4 and y.isdigit() for y in years), years  # "2031", not "2,031"
    texts = [t.get_text() for t in ax.texts]
    assert "never\n[2031–never]\nnever in 7 of 10" in texts  # median never; counted, not dropped
    assert "2034\n[2030–2039]" in texts  # median [p10–p90] of 2030..2039
    assert "\nnever happened in 7 of 80 runs (1 of 8 cells)" in ax.get_title(loc="left")


def test_one_outlying_cell_does_not_set_the_colour_scale():
    from rareshock.sweeps.analysis import fig_heatmap, robust_limits

    budgets, deals = [0.0, 1.0e9, 3.0e9, 1.0e10], [True, False]
    values = {(b, d): [10.0 + b / 1e9 + (1 if d else 0)] * 3 for b in budgets for d in deals}
    values[(1.0e10, False)] = [5000.0] * 3
    st = _cells(values, IDLE)
    vmin, vmax, extend = robust_limits(st["median"].to_numpy(float))
    assert extend == "max" and vmax < 100 and vmin == 10.0
    fig = fig_heatmap(IDLE, st, [BUDGET, DEAL], [budgets, deals], "3 replicates")
    image = fig.axes[0].images[0]
    assert image.norm.vmax == vmax
    assert fig.axes[1].get_label() == "<colorbar>" and "cut at the arrow" in fig.axes[1].get_ylabel()
    assert "5,000\n[5,000–5,000]" in [t.get_text() for t in fig.axes[0].texts]  # the value is still printed


def test_lhs_sweep_writes_scatter_plots_and_feature_scores_led_by_the_driving_parameter(tmp_path):
    """IDLE depends on p_incomplete alone (the other two are noise-free bystanders); the shutdown day
    depends on the buffer and never comes for long buffers."""
    sweep = make_sweep(tmp_path, "lhs", [BUFFER, P_INC, P_APP], samples=48, outputs=(IDLE, SHUTDOWN), seed=5)

    def f(design: pd.DataFrame, rep: int) -> dict:
        u1, u2 = unit(design, BUFFER), unit(design, P_INC)
        return {IDLE: 1000 * u2**2, SHUTDOWN: np.where(u1 > 0.8, np.nan, 20 + 60 * u1)}

    out = tmp_path / "out"
    write_fake(out, sweep, f)
    res = analyse_sweep(sweep, out)
    for name in (f"scatter_{IDLE}", f"scatter_{SHUTDOWN}", "feature_scores"):
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert f"figures/{name}.svg" in res["files"]
        svg = (out / "figures" / f"{name}.svg").read_text()
        assert "sweep fake_lhs (lhs, 48 samples" in svg and "commit " in svg  # the caption line
    scores = pd.read_csv(out / "feature_scores.csv").set_index("parameter")
    assert list(scores.index) == [BUFFER, P_INC, P_APP]
    assert scores[IDLE].idxmax() == P_INC and scores[IDLE][P_INC] > 0.6
    assert scores[SHUTDOWN].idxmax() == BUFFER
    assert scores.sum().round(6).tolist() == [1.0, 1.0]
    never = int((unit(pd.read_parquet(out / "design.parquet"), BUFFER) > 0.8).sum())
    assert res["feature_scores"][SHUTDOWN] == {
        "runs": 48,
        "null_runs": never,
        "never_counted_as_later": True,
        "status": "ok",
    }
    first = (out / "feature_scores.csv").read_bytes()
    analyse_sweep(sweep, out)
    assert (out / "feature_scores.csv").read_bytes() == first  # seeded: the same scores again
