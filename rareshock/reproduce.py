"""``rareshock reproduce``: regenerate the reference results in ``results/`` from ``experiments/``.

Experiments marked ``reproduce = true`` (``[scenario]``, ``[sweep]``, ``[comparison]`` or ``[calibration]``
table) are the reference set; a calibration's results go to ``results/calibration/<name>/``. Without
``--check`` each is regenerated into ``results/<name>/`` (replacing it atomically). With ``--check`` each
is regenerated into a temporary directory and its numbers compared with the committed ones: a scenario's
``summary.json`` and ``timeseries.parquet``; a sweep's ``runs.parquet`` (sorted by run_id) and its analysis
files; a comparison's tables (and ``monthly.csv`` of a branched one); a calibration's posterior, history,
identifiability and posterior predictive tables, and its published posterior
(``experiments/calibration/<name>.posterior.parquet``) if there is one.
Figures, manifests and a calibration's pyabc database (which hold times) are not compared.

What "the same" means: integers, booleans, strings and dates must be equal; floats must agree to
:data:`RTOL` relative (see there why), and the largest difference found is reported. ``--exact`` asks
for bit-identical floats, which holds for reruns on one machine but not across CPUs.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS_FILES = ("sensitivity.json", "discovery.json", "grid_means.csv")


@dataclass(frozen=True)
class Experiment:
    kind: str  # "scenario" | "sweep" | "comparison" | "calibration"
    name: str
    path: Path


def default_results() -> Path:
    """The reference results: ``results/`` of the repository in a checkout; for an installed package (which
    ships no results) ``results/`` of the current folder."""
    return ROOT / "results" if (ROOT / "results").is_dir() and (ROOT / "pyproject.toml").is_file() else Path("results")


def experiments(root: Path | None = None) -> list[Experiment]:
    """The experiments marked ``reproduce = true``: the shipped ones (:mod:`rareshock.resources`), or those
    under ``root/experiments``."""
    from rareshock.resources import experiments_dir

    base = experiments_dir() if root is None else Path(root) / "experiments"
    found = []
    for kind, folder in (
        ("scenario", "scenarios"),
        ("sweep", "sweeps"),
        ("comparison", "comparisons"),
        ("calibration", "calibration"),
    ):
        for path in sorted((base / folder).glob("*.toml")):
            table = tomllib.loads(path.read_text()).get(kind, {})
            if table.get("reproduce"):
                found.append(Experiment(kind, table.get("name", path.stem), path))
    return found


OUTPUT_KIND = {"scenario": "run", "sweep": "sweep", "comparison": "comparison", "calibration": "calibration"}
CALIBRATION_TABLES = ("posterior.parquet", "history.csv", "identifiability.csv", "predictive.csv")


def destination(results: Path, exp: Experiment) -> Path:
    """Where ``exp``'s reference results live: ``results/<name>``, a calibration's in ``results/calibration/``."""
    return Path(results) / "calibration" / exp.name if exp.kind == "calibration" else Path(results) / exp.name


def regenerate(exp: Experiment, target, workers: int | None, progress: bool) -> None:
    """Write ``exp``'s results into the opened :class:`rareshock.outputs.OutputDir` ``target``; they replace
    what is there only once complete."""
    import datetime as dt
    import time

    command = ["rareshock", "reproduce"]
    if exp.kind == "scenario":
        from rareshock.model.config import load_scenario
        from rareshock.outputs import build_manifest, write_run_files
        from rareshock.simulation import run_scenario

        started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
        cfg = load_scenario(exp.path)
        if cfg.scenario.posterior_draws:
            from rareshock.calibration.posterior import (
                load_posterior,
                posterior_manifest,
                run_posterior,
                write_posterior_run,
            )

            post = load_posterior(cfg.scenario.calibration)
            seed = cfg.scenario.seed
            out = run_posterior(cfg, post, cfg.scenario.posterior_draws, seed, workers)
            write_posterior_run(out, target, posterior_manifest(out, post, seed, started, t0, command))
            return
        result = run_scenario(cfg)
        manifest = build_manifest(result.config, result.seed, started, time.perf_counter() - t0, command)
        write_run_files(result, target, manifest)
    elif exp.kind == "sweep":
        from rareshock.sweeps.runner import run_sweep
        from rareshock.sweeps.spec import load_sweep

        report = run_sweep(load_sweep(exp.path), target, workers, None, progress, command, in_stage=True)
        if report["failure"]:
            from rareshock.sweeps.executor import SweepAborted

            raise SweepAborted(report["failure"])
    elif exp.kind == "calibration":
        from rareshock.calibration.config import load_calibration
        from rareshock.calibration.runner import run_calibration

        run_calibration(load_calibration(exp.path), target, workers, None, progress, command, in_stage=True)
    else:
        from rareshock.compare import run_comparison

        run_comparison(exp.path, target.stage(), workers)
        target.commit()


# --------------------------------------------------------------------------------------------------
# Comparing numbers: exact for integers, booleans, strings and dates; floats to a relative tolerance
# --------------------------------------------------------------------------------------------------
RTOL = 1e-9
"""Floats agree when ``|a - b| <= RTOL * max(|a|, |b|, scale)``, where ``scale`` is the largest magnitude in
the reference column (time series, tables) or the value itself (JSON). Different CPUs (SIMD width, the
BLAS kernel NumPy picks at run time) change the last bits of sums and dot products, at most a few 1e-16
relative; 1e-9 is six orders of magnitude above that and far below any modelled effect. With ``exact``
every float must be bit-identical (the promise for reruns on one machine)."""


LOCATION_KEYS = {"posterior.file"}
"""JSON fields that hold where a shipped file sits (a checkout, another worktree, site-packages): compared by
file name only; the file's content is pinned by the ``sha256`` beside it."""


@dataclass
class Comparison:
    """What one comparison found: differences beyond tolerance, and the largest difference seen."""

    exact: bool = False
    diffs: list[str] = field(default_factory=list)
    worst: float = 0.0  # largest relative float difference seen (0 if all identical)
    worst_at: str = ""

    def floats(self, name: str, ref: np.ndarray, new: np.ndarray, scale: float | None = None) -> None:
        """Compare float arrays of the same shape (NaN equals NaN); record the first real difference."""
        ref, new = np.asarray(ref, dtype=float), np.asarray(new, dtype=float)
        both_nan = np.isnan(ref) & np.isnan(new)
        same = (ref == new) | both_nan
        if same.all():
            return
        if scale is None:
            scale = 0.0
        with np.errstate(invalid="ignore"):
            denom = np.maximum(np.maximum(np.abs(ref), np.abs(new)), scale)
            rel = np.where(same, 0.0, np.abs(ref - new) / np.where(denom > 0, denom, 1.0))
        rel = np.where(np.isnan(rel), np.inf, rel)  # NaN on one side only, or inf vs finite
        i = int(np.argmax(rel))
        if rel.flat[i] > self.worst:
            self.worst, self.worst_at = float(rel.flat[i]), name
        bad = rel > (0.0 if self.exact else RTOL)
        if bad.any():
            j = int(np.flatnonzero(bad.ravel())[0])
            where = f" row {j}" if ref.ndim else ""
            self.diffs.append(
                f"{name}{where}: reference {ref.flat[j]!r}, regenerated {new.flat[j]!r} "
                f"(relative difference {rel.flat[j]:.1e})"
            )

    def frame(self, name: str, ref: pd.DataFrame, new: pd.DataFrame) -> None:
        """Compare two tables column by column (by name, in any order). Columns in only one are reported and
        the others still compared; a column that changed between float and a whole-number or boolean type
        (runs.parquet before and after typed metrics) is reported and its values compared exactly."""
        only = sorted(set(ref.columns) ^ set(new.columns))
        if only:
            self.diffs.append(
                f"{name}: columns only in the {'regenerated' if only[0] in new.columns else 'reference'} "
                f"results: {', '.join(map(repr, only[:5]))}{' ...' if len(only) > 5 else ''}"
            )
        if len(ref) != len(new):
            self.diffs.append(f"{name}: {len(new)} rows, reference has {len(ref)}")
            return
        retyped = []
        for col in [c for c in ref.columns if c in new.columns]:
            a, b = ref[col], new[col]
            where = f"{name}: column {col!r}"
            if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
                x, y = a.to_numpy(dtype=float, na_value=np.nan), b.to_numpy(dtype=float, na_value=np.nan)
                finite = np.abs(x[np.isfinite(x)])
                self.floats(where, x, y, float(finite.max()) if finite.size else 0.0)
                continue
            retype = a.dtype != b.dtype
            if retype:
                if not (_whole_or_float(a) and _whole_or_float(b)):
                    self.diffs.append(f"{where}: reference type {a.dtype}, regenerated {b.dtype}")
                    continue
                retyped.append(f"{col!r} ({a.dtype} -> {b.dtype})")
            x, y = (a.astype(float), b.astype(float)) if retype else (a, b)  # whole numbers < 2**53 are exact
            both = (x.notna() & y.notna()).to_numpy(dtype=bool)
            same = (x.isna() & y.isna()).to_numpy(dtype=bool) | (both & (x == y).to_numpy(dtype=bool, na_value=False))
            if not same.all():
                i = int((~same).argmax())
                self.diffs.append(f"{where} row {i}: reference {_py(a.iloc[i])!r}, regenerated {_py(b.iloc[i])!r}")
        if retyped:
            self.diffs.append(
                f"{name}: {len(retyped)} columns changed type (values compared exactly): {', '.join(retyped[:3])}"
                f"{' ...' if len(retyped) > 3 else ''}"
            )

    def json(self, name: str, ref: object, new: object, path: str = "") -> None:
        where = f"{name}: {path.rstrip('.')}"
        if isinstance(ref, dict) and isinstance(new, dict):
            for k in sorted(set(ref) | set(new)):
                if k not in ref or k not in new:
                    self.diffs.append(f"{name}: {path}{k} only in {'regenerated' if k in new else 'reference'}")
                else:
                    self.json(name, ref[k], new[k], f"{path}{k}.")
        elif isinstance(ref, list) and isinstance(new, list) and len(ref) == len(new):
            for i, (a, b) in enumerate(zip(ref, new)):
                self.json(name, a, b, f"{path}{i}.")
        elif isinstance(ref, float) and isinstance(new, float) and not isinstance(ref, bool):
            self.floats(where, np.array(ref), np.array(new))
        elif path.rstrip(".") in LOCATION_KEYS and isinstance(ref, str) and isinstance(new, str):
            if Path(ref).name != Path(new).name:  # where the file sits differs by checkout or install
                self.diffs.append(f"{where}: reference {Path(ref).name!r}, regenerated {Path(new).name!r}")
        elif type(ref) is not type(new) or ref != new:
            self.diffs.append(f"{where}: reference {ref!r}, regenerated {new!r}")

    def summary(self) -> str:
        if self.diffs:
            return "DIFFERS"
        if self.worst == 0.0:
            return "identical"
        return f"equal within tolerance (largest relative difference {self.worst:.1e}, {self.worst_at})"


def _py(v: object) -> object:
    """A NumPy scalar as the Python value (for messages)."""
    return v.item() if isinstance(v, np.generic) else v


def _whole_or_float(s: pd.Series) -> bool:
    """Float, integer (nullable too) or boolean: a column whose values compare as numbers."""
    return pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def compare(exp: Experiment, ref: Path, new: Path, exact: bool = False) -> Comparison:
    """Compare ``exp``'s regenerated results in ``new`` with the reference in ``ref``."""
    cmp = Comparison(exact=exact)
    if not ref.is_dir():
        cmp.diffs.append(f"{exp.name}: no reference results at {ref}")
        return cmp
    if exp.kind == "scenario":
        cmp.json(
            f"{exp.name}/summary.json",
            json.loads((ref / "summary.json").read_text()),
            json.loads((new / "summary.json").read_text()),
        )
        cmp.frame(
            f"{exp.name}/timeseries.parquet",
            pd.read_parquet(ref / "timeseries.parquet"),
            pd.read_parquet(new / "timeseries.parquet"),
        )
        return cmp
    if exp.kind == "comparison":
        for f in ("runs.csv", "yearly.csv", "table.csv"):
            cmp.frame(f"{exp.name}/{f}", pd.read_csv(ref / f), pd.read_csv(new / f))
        if (ref / "monthly.csv").exists() or (new / "monthly.csv").exists():  # a branched comparison
            if not (ref / "monthly.csv").exists() or not (new / "monthly.csv").exists():
                cmp.diffs.append(f"{exp.name}/monthly.csv: present in only one of reference and regenerated")
            else:
                cmp.frame(f"{exp.name}/monthly.csv", pd.read_csv(ref / "monthly.csv"), pd.read_csv(new / "monthly.csv"))
        return cmp
    if exp.kind == "calibration":
        read = lambda p: pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        for f in CALIBRATION_TABLES:
            cmp.frame(f"{exp.name}/{f}", read(ref / f), read(new / f))
        published = exp.path.parent / f"{exp.name}.posterior.parquet"
        if published.exists():
            regenerated = pd.read_parquet(new / CALIBRATION_TABLES[0])
            cmp.frame(f"{published.name} (published)", pd.read_parquet(published), regenerated)
        return cmp
    key = ["run_id"]
    a = pd.read_parquet(ref / "runs.parquet").drop(columns=["batch"]).sort_values(key).reset_index(drop=True)
    b = pd.read_parquet(new / "runs.parquet").drop(columns=["batch"]).sort_values(key).reset_index(drop=True)
    cmp.frame(f"{exp.name}/runs.parquet", a, b)
    for f in ANALYSIS_FILES:
        if (ref / f).exists() or (new / f).exists():
            if not (ref / f).exists() or not (new / f).exists():
                cmp.diffs.append(f"{exp.name}/{f}: present in only one of reference and regenerated")
            elif f.endswith(".json"):
                cmp.json(f"{exp.name}/{f}", json.loads((ref / f).read_text()), json.loads((new / f).read_text()))
            else:
                cmp.frame(f"{exp.name}/{f}", pd.read_csv(ref / f), pd.read_csv(new / f))
    return cmp


def reproduce(
    check: bool,
    only: list[str] | None = None,
    results: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    root: Path | None = None,
    exact: bool = False,
) -> tuple[bool, list[str]]:
    """Regenerate (or check) the reference results; returns (all good, report lines).

    Every problem with ``results`` (not a folder, not writable, a result folder rareshock did not write, in
    use by another process) is found before anything is regenerated. Without ``check`` each experiment's
    folder is replaced only once its new results are complete."""
    from rareshock.model.config import ConfigError
    from rareshock.outputs import OutputDir, show_path

    results = default_results() if results is None else results
    exps = experiments(root)
    if only:
        names = {e.name for e in exps}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(f"--only: unknown experiment {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
        exps = [e for e in exps if e.name in only]
    lines, ok = [], True
    if check:
        if "\x00" in str(results) or not Path(results).is_dir():
            raise ConfigError(
                f"--results {show_path(results)}: no such folder (the reference results to check against)"
            )
        for exp in exps:
            with tempfile.TemporaryDirectory(prefix="rareshock-check-") as tmp:
                new = Path(tmp) / exp.name
                with OutputDir(new, OUTPUT_KIND[exp.kind]) as target:
                    regenerate(exp, target, workers, progress)
                cmp = compare(exp, destination(results, exp), new, exact)
            ok &= not cmp.diffs
            lines.append(f"{exp.name}: {cmp.summary()}")
            lines += [f"  {d}" for d in cmp.diffs[:10]]
        return ok, lines
    targets = []
    try:
        for exp in exps:  # check and lock every destination before regenerating any
            # reproduce replaces its own reference folders (rareshock's, of the same kind) by design
            dest = OutputDir(destination(results, exp), OUTPUT_KIND[exp.kind], overwrite=True, flag="--results")
            targets.append(dest.open())
        for exp, target in zip(exps, targets):
            regenerate(exp, target, workers, progress)
            target.close(ok=True)
            lines += [f"note: {n}" for n in target.notes]
            lines.append(f"{exp.name}: regenerated in {target.path}")
    finally:
        for target in targets:
            target.close(ok=False)
    return ok, lines
