"""A whole sweep from the command line's point of view: prepare, execute, check, analyse, record."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rareshock.model.config import ConfigError
from rareshock.sweeps.executor import RUNS, STATE, check_complete, execute, prepare
from rareshock.outputs import atomic_write_text, build_manifest, to_json
from rareshock.sweeps.spec import Sweep, _plain, build_design, flatten, run_specs, scenario_for


def run_sweep(sweep: Sweep, out_dir: Path, workers: int | None, scheduler: str | None, resume: bool,
              progress: bool, command: list[str]) -> dict:
    """Run (or finish) a sweep in ``out_dir`` and analyse it. Returns a small report for the terminal."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    design = build_design(sweep)
    runs = run_specs(sweep, design)
    state = prepare(sweep, out_dir, runs, resume, design)
    prog = execute(sweep, runs, out_dir, state, workers=workers, scheduler=scheduler, progress=progress)
    check_complete(out_dir, len(runs))
    from rareshock.sweeps.analysis import analyse_sweep

    analysis = analyse_sweep(sweep, out_dir)
    manifest = build_manifest(sweep.base, sweep.settings.seed, started, time.perf_counter() - t0, command)
    manifest.update({
        "kind": "sweep",
        "sweep": sweep.config.model_dump(mode="json"),
        "sweep_file": str(sweep.path),
        "sweep_fingerprint": sweep.fingerprint(),
        "runs": len(runs),
        "seeds": "run seed = SeedSequence(sweep.seed, spawn_key=(sample, replicate)).generate_state(1, uint64) >> 1;"
                 " per-run seeds are in runs.parquet",
        "execution": {"workers": workers, "scheduler": scheduler, "resumed": resume,
                      "batches_run_now": prog.batches_run, "seconds_this_session": round(prog.seconds, 3)},
    })
    atomic_write_text(out_dir / "manifest.json", to_json(manifest))
    failed = int((pd.read_parquet(out_dir / RUNS, columns=["status"])["status"] != "ok").sum())
    return {"runs": len(runs), "failed": failed, "seconds": prog.seconds, "analysis": analysis}


def rerun_row(sweep_dir: Path, run_id: int) -> tuple[dict, dict, object]:
    """Run one row of a finished sweep again from its manifest; returns (stored row, fresh row, result)."""
    from rareshock.simulation import run_scenario

    man_path = sweep_dir / "manifest.json"
    if not man_path.is_file():
        raise ConfigError(f"--from {sweep_dir}: no manifest.json (not a finished rareshock sweep)")
    manifest = json.loads(man_path.read_text())
    if manifest.get("kind") != "sweep":
        raise ConfigError(f"--from {sweep_dir}: manifest.json is not a sweep's")
    state = json.loads((sweep_dir / STATE).read_text())
    rows = pd.read_parquet(sweep_dir / RUNS, filters=[("run_id", "==", run_id)])
    if rows.empty:
        raise ConfigError(f"RUN_ID {run_id}: not in {sweep_dir / RUNS} (run_ids 0..{manifest['runs'] - 1})")
    stored = rows.iloc[0].to_dict()
    params = {p: _plain(stored[p]) for p in state["params"]}
    cfg = scenario_for(manifest["config"], params)
    result = run_scenario(cfg, int(stored["seed"]))
    fresh = flatten({k: v for k, v in result.summary.items() if k != "scenario"})
    return stored, fresh, result


def differences(stored: dict, fresh: dict, metrics: list[str]) -> list[str]:
    out = []
    for m in metrics:
        a, b = stored.get(m), fresh.get(m, float("nan"))
        same = (a == b) or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))
        if not same:
            out.append(f"{m}: sweep {a!r} vs rerun {b!r}")
    return out
