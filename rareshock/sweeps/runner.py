"""A whole sweep from the command line's point of view: start or resume, execute, check, analyse, record.

The sweep folder is an :class:`rareshock.outputs.OutputDir` the caller has opened (checked and locked).
A new sweep's folder appears under its name only once the sweep can start: its design, resume state and
dataset folders are written into a marked stage that is renamed into place in one step, so an
interruption at any moment leaves either no folder or one that ``--resume`` finishes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rareshock.model.config import ConfigError
from rareshock.outputs import (
    OutputDir,
    atomic_write_text,
    build_manifest,
    read_marker,
    show_path,
    to_json,
    write_marker,
)
from rareshock.sweeps.executor import RUNS, STATE, _note, check_complete, execute, resume_state, start_folder
from rareshock.sweeps.spec import Sweep, _plain, build_design, flatten, metric_frame, run_specs, scenario_for


def run_sweep(
    sweep: Sweep,
    target: OutputDir,
    workers: int | None,
    client,
    progress: bool,
    command: list[str],
    in_stage: bool = False,
    notify: Callable[[str], None] = _note,
) -> dict:
    """Run (or finish) a sweep in the opened folder ``target`` and analyse it. Returns a small report.

    With ``in_stage`` (``reproduce``) the whole sweep runs in the hidden stage and replaces the folder only
    once complete; otherwise the folder is in place from the start, so that an interrupted sweep can be
    resumed."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    design = build_design(sweep)
    runs = run_specs(sweep, design)
    resumed = target.state == "resume"
    if resumed:
        folder = target.path
        state = resume_state(sweep, folder, runs)
        if read_marker(folder) is None:  # a sweep from before the marker: mark it now
            write_marker(folder, "sweep")
    else:
        folder = target.stage()
        state = start_folder(sweep, folder, runs, design)
        if not in_stage:
            target.commit()
            folder = target.path
    for note in target.notes:
        notify(note)
    prog = execute(sweep, runs, folder, state, workers=workers, client=client, progress=progress, notify=notify)
    check_complete(folder, len(runs))
    from rareshock.sweeps.analysis import analyse_sweep

    analysis = analyse_sweep(sweep, folder)
    status = pd.read_parquet(folder / RUNS, columns=["run_id", "status", "error"])
    failed = status[status["status"] != "ok"]
    s = sweep.settings
    manifest = build_manifest(sweep.base, s.seed, started, time.perf_counter() - t0, command)
    manifest.update(
        {
            "kind": "sweep",
            "sweep": sweep.config.model_dump(mode="json"),
            "sweep_file": str(sweep.path),
            "sweep_fingerprint": sweep.fingerprint(),
            "runs": len(runs),
            "failed_runs": len(failed),
            "seeds": "run seed = SeedSequence(sweep.seed, spawn_key=(sample, replicate)).generate_state(1, uint64)"
            " >> 1; per-run seeds are in runs.parquet",
            "execution": {
                "workers": workers,
                "scheduler": None if client is None else str(client.scheduler.address),
                "resumed": resumed,
                "batches_run_now": prog.batches_run,
                "pool_restarts": prog.restarts,
                "seconds_this_session": round(prog.seconds, 3),
            },
        }
    )
    atomic_write_text(folder / "manifest.json", to_json(manifest))
    if in_stage:
        target.commit()
    return {
        "runs": len(runs),
        "failed": len(failed),
        "seconds": prog.seconds,
        "analysis": analysis,
        "failure": failure_summary(sweep, target.path, len(runs), failed),
    }


def failure_summary(sweep: Sweep, out: Path, n_runs: int, failed: pd.DataFrame) -> str | None:
    """One line if more runs failed than ``max_failed_share`` allows (or all of them), else None."""
    limit = sweep.settings.max_failed_share
    n = len(failed)
    if n == 0 or (n < n_runs and n <= math.floor(limit * n_runs + 1e-9)):
        return None
    top = failed["error"].value_counts()
    common = (
        f"; most common error ({top.iloc[0]} run{'s' if top.iloc[0] != 1 else ''}): {str(top.index[0])[:200]}"
        if len(top)
        else ""
    )
    share = "all" if n == n_runs else f"{n / n_runs:.0%}"
    return (
        f"sweep {sweep.settings.name}: {n} of {n_runs} runs failed ({share}; sweep.max_failed_share = {limit:g})"
        f"{common}; every row is in {show_path(out / RUNS)} (columns status, error)"
    )


def _sweep_file(sweep_dir: Path, name: str) -> Path:
    path = sweep_dir / name
    if not path.exists():
        raise ConfigError(f"--from {show_path(sweep_dir)}: no {name} (not a finished rareshock sweep)")
    return path


def _read_json(path: Path, sweep_dir: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"--from {show_path(sweep_dir)}: cannot read {path.name} ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--from {show_path(sweep_dir)}: {path.name} is not a sweep's")
    return data


def rerun_row(sweep_dir: Path, run_id: int) -> tuple[dict, dict, object, list[str]]:
    """Run one row of a finished sweep again from its manifest; returns (stored row, fresh row, result,
    metric names). Every problem with the folder or the run_id is a one-line :class:`ConfigError`."""
    from rareshock.simulation import run_scenario

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"--from {show_path(sweep_dir)}: no such folder")
    manifest = _read_json(_sweep_file(sweep_dir, "manifest.json"), sweep_dir)
    if manifest.get("kind") != "sweep":
        raise ConfigError(f"--from {show_path(sweep_dir)}: manifest.json is not a sweep's")
    state = _read_json(_sweep_file(sweep_dir, STATE), sweep_dir)
    runs_path = _sweep_file(sweep_dir, RUNS)
    n_runs = manifest.get("runs")
    if (
        not isinstance(n_runs, int)
        or not isinstance(state.get("params"), list)
        or not isinstance(state.get("metrics"), list)
    ):
        raise ConfigError(f"--from {show_path(sweep_dir)}: manifest.json or {STATE} is incomplete")
    if not 0 <= run_id < n_runs:
        raise ConfigError(f"RUN_ID: {run_id} is not a run of this sweep (run_ids 0..{n_runs - 1})")
    try:
        rows = pd.read_parquet(runs_path, filters=[("run_id", "==", run_id)])
    except (OSError, ValueError) as err:
        raise ConfigError(f"--from {show_path(sweep_dir)}: cannot read {RUNS} ({str(err)[:200]})") from None
    if rows.empty:
        raise ConfigError(f"RUN_ID {run_id}: not in {show_path(runs_path)} (the sweep did not finish; resume it)")
    stored = rows.iloc[0].to_dict()
    params = {p: _plain(stored[p]) for p in state["params"]}
    try:
        cfg = scenario_for(manifest["config"], params)
    except (KeyError, TypeError) as err:
        raise ConfigError(f"--from {show_path(sweep_dir)}: manifest.json has no usable config ({err})") from None
    result = run_scenario(cfg, int(stored["seed"]))
    metrics = list(state["metrics"])
    flat = flatten({k: v for k, v in result.summary.items() if k != "scenario"})
    # typed as the sweep wrote its rows (a sweep started before typed columns has no "sweep" in its state)
    fresh = metric_frame([flat], metrics, legacy="sweep" not in state).iloc[0].to_dict()
    return stored, fresh, result, metrics


def differences(stored: dict, fresh: dict, metrics: list[str]) -> list[str]:
    out = []
    for m in metrics:
        a, b = stored.get(m), fresh.get(m)
        missing_a, missing_b = a is None or bool(pd.isna(a)), b is None or bool(pd.isna(b))
        if missing_a != missing_b or (not missing_a and a != b):
            out.append(f"{m}: sweep {_shown(a)} vs rerun {_shown(b)}")
    return out


def _shown(v) -> str:
    return "missing" if v is None or pd.isna(v) else repr(_plain(v))
