"""Running a sweep's runs in batches on local processes or a Dask cluster, resumably.

Runs are cut into fixed batches (batch k holds runs ``k*batch_size .. (k+1)*batch_size - 1``). A worker
runs one batch and writes its rows as ``runs.parquet/part-<k>.parquet`` (and, when asked, its aggregated
time series as ``timeseries.parquet/part-<k>.parquet``), each to a hidden temporary name renamed into
place, so a part is either complete or absent. Nothing else writes into the dataset and no file is
shared between writers. Resuming runs exactly the batches whose part is missing, so after any
interruption (Ctrl-C, a killed worker, a killed main process) every run appears once.

The main process keeps only counters and a bounded number of batches in flight, so its memory does not
grow with the number of runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from rareshock.model.config import ConfigError
from rareshock.outputs import atomic_write_bytes, atomic_write_text, parquet_bytes
from rareshock.sweeps.spec import RunSpec, Sweep, flatten, run_one

STATE = "sweep_state.json"
RUNS = "runs.parquet"
SERIES = "timeseries.parquet"


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    batches_run: int = 0
    seconds: float = 0.0


def metric_columns() -> list[str]:
    """The flattened summary metrics every row carries (NaN where a run failed or a metric is null)."""
    import datetime as dt

    from rareshock.model.config import Scenario, ScenarioConfig
    from rareshock.simulation import run_scenario

    probe = ScenarioConfig(scenario=Scenario(name="probe", start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 2)))
    summary = run_scenario(probe).summary
    return sorted(flatten({k: v for k, v in summary.items() if k != "scenario"}))


def part_name(k: int) -> str:
    return f"part-{k:06d}.parquet"


def batches(runs: list[RunSpec], size: int) -> list[list[RunSpec]]:
    return [runs[i:i + size] for i in range(0, len(runs), size)]


def run_batch(base: dict, specs: list[RunSpec], k: int, out_dir: str, param_paths: list[str], metrics: list[str],
              timeseries: str, ts_columns: tuple) -> tuple[int, int, int, float]:
    """Run one batch in a worker and write its part files. Returns (k, runs, failures, seconds)."""
    t0 = time.perf_counter()
    rows, series = [], []
    for spec in specs:
        row, ts = run_one(base, spec, timeseries, ts_columns)
        rows.append(row)
        if ts is not None:
            series.append(ts)
    df = pd.DataFrame(rows)
    cols = ["run_id", "sample", "replicate", "seed", *param_paths, *metrics, "status", "error"]
    for c in metrics:
        if c not in df:
            df[c] = np.nan
    df = df.reindex(columns=cols)
    df[metrics] = df[metrics].astype(float)
    df["batch"] = np.int64(k)
    out = Path(out_dir)
    if series:
        atomic_write_bytes(out / SERIES / part_name(k), parquet_bytes(pd.concat(series, ignore_index=True)))
    atomic_write_bytes(out / RUNS / part_name(k), parquet_bytes(df))   # last: the batch's completion mark
    failed = int((df["status"] != "ok").sum())
    return k, len(df), failed, time.perf_counter() - t0


def completed_batches(out_dir: Path) -> set[int]:
    d = out_dir / RUNS
    if not d.is_dir():
        return set()
    return {int(p.name[5:11]) for p in d.glob("part-*.parquet")}


def prepare(sweep: Sweep, out_dir: Path, runs: list[RunSpec], resume: bool, design: pd.DataFrame) -> dict:
    """Create or check the sweep directory; returns its state (fingerprint, batching, columns)."""
    state_path = out_dir / STATE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if not resume:
            raise ConfigError(f"--out {out_dir}: holds a sweep already; add --resume to finish it or choose "
                              f"another directory")
        if state["fingerprint"] != sweep.fingerprint():
            raise ConfigError(f"--resume {out_dir}: the sweep config or its scenario changed since this sweep "
                              f"started; start a new sweep in another directory")
        return state
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir}: directory exists and is not a rareshock sweep; choose another")
    if resume:
        raise ConfigError(f"--resume {out_dir}: no sweep to resume there")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RUNS).mkdir(exist_ok=True)
    if sweep.settings.timeseries != "none":
        (out_dir / SERIES).mkdir(exist_ok=True)
    state = {"fingerprint": sweep.fingerprint(), "batch_size": sweep.settings.batch_size, "runs": len(runs),
             "metrics": metric_columns(), "params": sweep.param_paths}
    atomic_write_bytes(out_dir / "design.parquet", parquet_bytes(design))
    atomic_write_text(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    return state


def execute(sweep: Sweep, runs: list[RunSpec], out_dir: Path, state: dict, workers: int | None = None,
            scheduler: str | None = None, progress: bool = True) -> Progress:
    """Run every batch whose part file is missing. Local processes by default, or a Dask cluster."""
    todo_all = batches(runs, state["batch_size"])
    done = completed_batches(out_dir)
    todo = [k for k in range(len(todo_all)) if k not in done]
    prog = Progress(total=len(runs), done=sum(len(todo_all[k]) for k in done if k < len(todo_all)))
    s = sweep.settings
    args = (str(out_dir), state["params"], state["metrics"], s.timeseries, tuple(s.timeseries_columns))
    bar = _bar(prog, progress)
    t0 = time.perf_counter()
    try:
        results = (_dask(scheduler, sweep.base, todo_all, todo, args) if scheduler
                   else _local(sweep.base, todo_all, todo, args, workers or os.cpu_count() or 1))
        for _k, n, failed, _sec in results:
            prog.done += n
            prog.failed += failed
            prog.batches_run += 1
            if bar is not None:
                bar.update(n)
                bar.set_postfix(failed=prog.failed, refresh=False)
    finally:
        prog.seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return prog


def _bar(prog: Progress, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=prog.total, initial=prog.done, unit="run", dynamic_ncols=True, smoothing=0.1,
                desc="sweep", postfix={"failed": 0})


def _local(base, all_batches, todo, args, workers: int) -> Iterator[tuple]:
    """Batches on a local process pool, a bounded number in flight; a crashed worker's batches are
    run again on a fresh pool (up to three times)."""
    pending = list(todo)
    restarts = 0
    while pending:
        ctx = get_context("forkserver")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        in_flight: dict = {}
        try:
            while pending or in_flight:
                while pending and len(in_flight) < 2 * workers:
                    k = pending.pop(0)
                    in_flight[pool.submit(run_batch, base, all_batches[k], k, *args)] = k
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    k = in_flight.pop(fut)
                    yield fut.result()
        except BrokenProcessPool:
            restarts += 1
            if restarts > 3:
                raise
            pending = sorted(set(pending) | set(in_flight.values()))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _dask(address: str, base, all_batches, todo, args) -> Iterator[tuple]:
    """The same batches on an existing Dask distributed cluster (work on a lost worker is re-run)."""
    from distributed import Client, as_completed

    with Client(address, timeout="20s") as client:
        base_f = client.scatter(base, broadcast=True)
        futures = [client.submit(run_batch, base_f, all_batches[k], k, *args, key=f"rareshock-{_token(args[0])}-batch-{k}",
                                 retries=3, pure=False) for k in todo]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            client.cancel(futures)


def check_complete(out_dir: Path, n_runs: int) -> pd.Series:
    """Every run_id exactly once, or a clear error."""
    ids = pd.read_parquet(out_dir / RUNS, columns=["run_id"])["run_id"]
    dup = ids[ids.duplicated()]
    missing = n_runs - ids.nunique()
    if len(dup) or missing:
        raise RuntimeError(f"runs.parquet: {missing} runs missing, {len(dup)} duplicated")
    return ids


def _token(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]
