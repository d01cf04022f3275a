"""``rareshock reproduce``: regenerate the reference results in ``results/`` from ``experiments/``.

Experiments marked ``reproduce = true`` (``[scenario]``, ``[sweep]`` or ``[comparison]`` table) are the
reference set. Without
``--check`` each is regenerated into ``results/<name>/`` (replacing it atomically). With ``--check`` each
is regenerated into a temporary directory and its numbers compared with the committed ones: a scenario's
``summary.json`` and ``timeseries.parquet``; a sweep's ``runs.parquet`` (sorted by run_id) and its analysis
files. Any difference fails the check. Figures and manifests (which hold times) are not compared.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS_FILES = ("sensitivity.json", "discovery.json", "grid_means.csv")


@dataclass(frozen=True)
class Experiment:
    kind: str          # "scenario" | "sweep"
    name: str
    path: Path


def experiments(root: Path = ROOT) -> list[Experiment]:
    found = []
    for kind, folder in (("scenario", "scenarios"), ("sweep", "sweeps"), ("comparison", "comparisons")):
        for path in sorted((root / "experiments" / folder).glob("*.toml")):
            table = tomllib.loads(path.read_text()).get(kind, {})
            if table.get("reproduce"):
                found.append(Experiment(kind, table.get("name", path.stem), path))
    return found


def regenerate(exp: Experiment, dest: Path, workers: int | None, progress: bool) -> None:
    """Write ``exp``'s results to ``dest`` (which must not exist)."""
    import datetime as dt
    import time

    if exp.kind == "scenario":
        from model.config import load_scenario
        from model.outputs import build_manifest, write_run
        from model.simulation import run_scenario

        started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
        result = run_scenario(load_scenario(exp.path))
        manifest = build_manifest(result.config, result.seed, started, time.perf_counter() - t0,
                                  ["rareshock", "reproduce"])
        write_run(result, dest, manifest)
    elif exp.kind == "sweep":
        from model.sweep import load_sweep
        from model.sweeping import run_sweep

        run_sweep(load_sweep(exp.path), dest, workers, None, False, progress, ["rareshock", "reproduce"])
    else:
        from model.compare import run_comparison

        run_comparison(exp.path, dest, workers)


def _frame_diff(name: str, ref: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    if list(ref.columns) != list(new.columns):
        return [f"{name}: columns differ: {sorted(set(ref.columns) ^ set(new.columns))[:5]}"]
    if len(ref) != len(new):
        return [f"{name}: {len(new)} rows, reference has {len(ref)}"]
    for col in ref.columns:
        a, b = ref[col], new[col]
        same = (a == b) | (a.isna() & b.isna())
        if not same.all():
            i = int((~same).to_numpy().argmax())
            return [f"{name}: column {col!r} row {i}: reference {a.iloc[i]!r}, regenerated {b.iloc[i]!r}"]
    return []


def _json_diff(name: str, ref: object, new: object, path: str = "") -> list[str]:
    if isinstance(ref, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(ref) | set(new)):
            if k not in ref or k not in new:
                out.append(f"{name}: {path}{k} only in {'regenerated' if k in new else 'reference'}")
            else:
                out += _json_diff(name, ref[k], new[k], f"{path}{k}.")
        return out
    if isinstance(ref, list) and isinstance(new, list) and len(ref) == len(new):
        return [d for i, (a, b) in enumerate(zip(ref, new)) for d in _json_diff(name, a, b, f"{path}{i}.")]
    return [] if ref == new else [f"{name}: {path.rstrip('.')}: reference {ref!r}, regenerated {new!r}"]


def compare(exp: Experiment, ref: Path, new: Path) -> list[str]:
    if not ref.is_dir():
        return [f"{exp.name}: no reference results at {ref}"]
    if exp.kind == "scenario":
        diffs = _json_diff(f"{exp.name}/summary.json", json.loads((ref / "summary.json").read_text()),
                           json.loads((new / "summary.json").read_text()))
        diffs += _frame_diff(f"{exp.name}/timeseries.parquet", pd.read_parquet(ref / "timeseries.parquet"),
                             pd.read_parquet(new / "timeseries.parquet"))
        return diffs
    if exp.kind == "comparison":
        diffs = []
        for f in ("runs.csv", "yearly.csv", "table.csv"):
            a, b = pd.read_csv(ref / f), pd.read_csv(new / f)
            diffs += _frame_diff(f"{exp.name}/{f}", a, b)
        return diffs
    key = ["run_id"]
    a = pd.read_parquet(ref / "runs.parquet").drop(columns=["batch"]).sort_values(key).reset_index(drop=True)
    b = pd.read_parquet(new / "runs.parquet").drop(columns=["batch"]).sort_values(key).reset_index(drop=True)
    diffs = _frame_diff(f"{exp.name}/runs.parquet", a, b)
    for f in ANALYSIS_FILES:
        if (ref / f).exists() or (new / f).exists():
            if not (ref / f).exists() or not (new / f).exists():
                diffs.append(f"{exp.name}/{f}: present in only one of reference and regenerated")
            elif f.endswith(".json"):
                diffs += _json_diff(f"{exp.name}/{f}", json.loads((ref / f).read_text()),
                                    json.loads((new / f).read_text()))
            elif (ref / f).read_text() != (new / f).read_text():
                diffs.append(f"{exp.name}/{f}: contents differ")
    return diffs


def reproduce(check: bool, only: list[str] | None = None, results: Path = ROOT / "results",
              workers: int | None = None, progress: bool = True, root: Path = ROOT) -> tuple[bool, list[str]]:
    """Regenerate (or check) the reference results; returns (all good, report lines)."""
    exps = experiments(root)
    if only:
        names = {e.name for e in exps}
        unknown = [n for n in only if n not in names]
        if unknown:
            from model.config import ConfigError
            raise ConfigError(f"--only: unknown experiment {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
        exps = [e for e in exps if e.name in only]
    lines, ok = [], True
    for exp in exps:
        if check:
            with tempfile.TemporaryDirectory(prefix="rareshock-check-") as tmp:
                new = Path(tmp) / exp.name
                regenerate(exp, new, workers, progress)
                diffs = compare(exp, results / exp.name, new)
            ok &= not diffs
            lines.append(f"{exp.name}: {'identical' if not diffs else 'DIFFERS'}")
            lines += [f"  {d}" for d in diffs[:10]]
        else:
            dest = results / exp.name
            stage = results / f".{exp.name}.tmp"
            shutil.rmtree(stage, ignore_errors=True)
            regenerate(exp, stage, workers, progress)
            if dest.exists():
                shutil.rmtree(dest)
            stage.rename(dest)
            lines.append(f"{exp.name}: regenerated in {dest}")
    return ok, lines
