"""Running a sweep's runs in batches on local processes or a Dask cluster, resumably.

Runs are cut into fixed batches (batch k holds runs ``k*batch_size .. (k+1)*batch_size - 1``). A worker
runs one batch and writes its rows as ``runs.parquet/part-<k>.parquet`` (and, when asked, its aggregated
time series as ``timeseries.parquet/part-<k>.parquet``), each to a hidden temporary name renamed into
place, so a part is either complete or absent, and writing it again gives the same bytes. Nothing else
writes into the dataset and no file is shared between writers. Resuming runs exactly the batches whose
part is missing, so after any interruption (Ctrl-C, a killed worker, a killed main process, a full disk)
every run appears once.

Local workers (:func:`_local`):

- a worker that dies (killed, out of memory) breaks the process pool; every batch that had not finished
  is run again on a fresh pool, and a batch that was running in three broken pools stops the sweep with a
  message (finished batches are kept for ``--resume``);
- workers die with the main process: each asks the kernel for SIGKILL when its parent (the forkserver)
  dies and watches the main process itself, so ``kill -9`` of the sweep leaves no worker running;
- workers ignore Ctrl-C; the main process stops them (SIGKILL) and waits for them before it exits.

The main process keeps only counters and a bounded number of batches in flight, so its memory does not
grow with the number of runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from rareshock.model.config import ConfigError
from rareshock.outputs import atomic_write_bytes, atomic_write_text, parquet_bytes, pid_alive, show_path
from rareshock.sweeps.spec import RunSpec, Sweep, flatten, metric_frame, run_one

STATE = "sweep_state.json"
RUNS = "runs.parquet"
SERIES = "timeseries.parquet"
MAX_ATTEMPTS = 3  # a batch running in this many broken pools stops the sweep
PRELOAD = ["rareshock.sweeps.executor", "rareshock.simulation"]  # imported once in the forkserver


class SweepAborted(RuntimeError):
    """The sweep stopped before every batch was written (a write failed, a batch kept killing its worker).
    Finished batches are kept; ``str(err)`` is one line."""


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    batches_run: int = 0
    seconds: float = 0.0
    restarts: int = 0


@functools.lru_cache(maxsize=1)
def metric_columns() -> tuple[str, ...]:
    """The flattened summary metrics every row carries (missing where a run failed or a metric is null)."""
    import datetime as dt

    from rareshock.model.config import Scenario, ScenarioConfig
    from rareshock.simulation import run_scenario

    probe = ScenarioConfig(scenario=Scenario(name="probe", start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 2)))
    summary = run_scenario(probe).summary
    return tuple(sorted(flatten({k: v for k, v in summary.items() if k != "scenario"})))


def part_name(k: int) -> str:
    return f"part-{k:06d}.parquet"


_PART = re.compile(r"part-(\d{6})\.parquet")


def batches(runs: list[RunSpec], size: int) -> list[list[RunSpec]]:
    return [runs[i : i + size] for i in range(0, len(runs), size)]


def run_batch(
    base: dict,
    specs: list[RunSpec],
    k: int,
    out_dir: str,
    param_paths: list[str],
    metrics: list[str],
    timeseries: str,
    ts_columns: tuple,
    sweep_name: str | None = None,
) -> tuple[int, int, int, float]:
    """Run one batch in a worker and write its part files. Returns (k, runs, failures, seconds).

    A row is ``run_id``, ``sweep``, ``scenario``, ``sample``, ``replicate``, ``seed``, the parameters, the
    metrics (typed: :func:`~rareshock.sweeps.spec.metric_frame`), ``status``, ``error``, ``batch``.
    Without ``sweep_name`` (a sweep started before typed columns, being resumed) the row keeps that
    sweep's layout: no ``sweep`` and ``scenario`` columns, every metric a float."""
    t0 = time.perf_counter()
    rows, series = [], []
    for spec in specs:
        row, ts = run_one(base, spec, timeseries, ts_columns)
        rows.append(row)
        if ts is not None:
            series.append(ts)
    legacy = sweep_name is None
    head = ["run_id", "sample", "replicate", "seed", *param_paths]
    if not legacy:
        head[1:1] = ["sweep", "scenario"]
        for row in rows:
            row["sweep"] = sweep_name
    df = pd.DataFrame(rows).reindex(columns=[*head, "status", "error"])
    df = pd.concat([df[head], metric_frame(rows, metrics, legacy), df[["status", "error"]]], axis=1)
    df["batch"] = np.int64(k)
    out = Path(out_dir)
    if series:
        atomic_write_bytes(out / SERIES / part_name(k), parquet_bytes(pd.concat(series, ignore_index=True)))
    atomic_write_bytes(out / RUNS / part_name(k), parquet_bytes(df))  # last: the batch's completion mark
    failed = int((df["status"] != "ok").sum())
    return k, len(df), failed, time.perf_counter() - t0


def completed_batches(out_dir: Path) -> set[int]:
    d = out_dir / RUNS
    if not d.is_dir():
        return set()
    return {int(m[1]) for p in d.iterdir() if (m := _PART.fullmatch(p.name))}


# --------------------------------------------------------------------------------------------------
# The sweep folder: started as a whole, checked before resuming
# --------------------------------------------------------------------------------------------------
def start_folder(sweep: Sweep, folder: Path, runs: list[RunSpec], design: pd.DataFrame) -> dict:
    """Write what a sweep needs before its first batch into ``folder`` (a fresh stage): the design, the
    resume state and the dataset folders. Returns the state."""
    (folder / RUNS).mkdir()
    if sweep.settings.timeseries != "none":
        (folder / SERIES).mkdir()
    state = {
        "fingerprint": sweep.fingerprint(),
        "batch_size": sweep.settings.batch_size,
        "runs": len(runs),
        "metrics": list(metric_columns()),
        "params": sweep.record_paths,
        "sweep": sweep.settings.name,  # also marks runs.parquet with typed metrics and sweep/scenario columns
    }
    atomic_write_bytes(folder / "design.parquet", parquet_bytes(design))
    atomic_write_text(folder / STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")
    return state


def resume_state(sweep: Sweep, folder: Path, runs: list[RunSpec]) -> dict:
    """The state of the sweep in ``folder`` if ``sweep`` may be resumed there (else :class:`ConfigError`);
    removes temporary part files that killed workers left."""
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        ok = isinstance(state, dict) and {"fingerprint", "batch_size", "runs", "metrics", "params"} <= state.keys()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"--resume {show_path(folder)}: {STATE} is missing or unreadable; this folder cannot be "
            f"resumed (start the sweep in another folder, or replace it with --overwrite)"
        )
    if state["fingerprint"] != sweep.fingerprint():
        raise ConfigError(
            f"--resume {show_path(folder)}: the sweep config or its scenario changed since this sweep "
            f"started; start a new sweep in another folder (or replace it with --overwrite)"
        )
    if state["runs"] != len(runs) or state["batch_size"] != sweep.settings.batch_size:
        raise ConfigError(
            f"--resume {show_path(folder)}: {STATE} records {state['runs']} runs in batches of "
            f"{state['batch_size']}, the sweep has {len(runs)} in batches of "
            f"{sweep.settings.batch_size}"
        )
    for sub in (RUNS, SERIES):
        d = folder / sub
        if sub == RUNS or sweep.settings.timeseries != "none":
            d.mkdir(exist_ok=True)
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith(".part-") and p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)  # a part a killed worker was writing
    return state


# --------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------
def _note(message: str) -> None:
    print(f"rareshock: note: {message}", file=sys.stderr, flush=True)


def execute(
    sweep: Sweep,
    runs: list[RunSpec],
    out_dir: Path,
    state: dict,
    workers: int | None = None,
    client=None,
    progress: bool = True,
    notify: Callable[[str], None] = _note,
) -> Progress:
    """Run every batch whose part file is missing: on local processes, or on a Dask cluster (``client``).

    Raises :class:`SweepAborted` if a batch cannot be written; what finished is kept for ``--resume``."""
    out_dir = Path(out_dir).resolve()  # workers may run elsewhere (Dask): never relative
    todo_all = batches(runs, state["batch_size"])
    done = completed_batches(out_dir)
    todo = [k for k in range(len(todo_all)) if k not in done]
    prog = Progress(total=len(runs), done=sum(len(todo_all[k]) for k in done if k < len(todo_all)))
    s = sweep.settings
    # a sweep started before typed columns has no "sweep" in its state: its new parts keep its layout
    layout = (s.timeseries, tuple(s.timeseries_columns), state.get("sweep"))
    args = (str(out_dir), state["params"], state["metrics"], *layout)
    bar = _bar(prog, progress)
    say = notify if bar is None else (lambda m: bar.write(f"rareshock: note: {m}", file=sys.stderr))
    t0 = time.perf_counter()
    try:
        results = (
            _dask(client, sweep.base, todo_all, todo, args)
            if client is not None
            else _local(sweep.base, todo_all, todo, args, workers or os.cpu_count() or 1, prog, say)
        )
        for _k, n, failed, _sec in results:
            prog.done += n
            prog.failed += failed
            prog.batches_run += 1
            if bar is not None:
                bar.update(n)
                bar.set_postfix(failed=prog.failed, refresh=False)
    except _BatchFailed as err:
        kept = len(completed_batches(out_dir))
        raise SweepAborted(
            f"{err.what}; {kept} of {len(todo_all)} batches are written in {show_path(out_dir)}; "
            f"fix the cause and finish with --resume"
        ) from None
    finally:
        prog.seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return prog


class _BatchFailed(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _describe(k: int, err: BaseException) -> str:
    if isinstance(err, OSError):
        where = f" ({show_path(err.filename)})" if err.filename else ""
        return f"batch {k} could not be written: {err.strerror or err}{where}"
    text = re.sub(r"\s+", " ", str(err)).strip()
    return f"batch {k} failed: {type(err).__name__}: {text[:300]}"


def _bar(prog: Progress, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(
        total=prog.total,
        initial=prog.done,
        unit="run",
        dynamic_ncols=True,
        smoothing=0.1,
        desc="sweep",
        postfix={"failed": 0},
    )


# --------------------------------------------------------------------------------------------------
# Local process pool: workers that die with the sweep, batches that survive their workers
# --------------------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1


def worker_init(main_pid: int) -> None:
    """Pool initializer: ignore Ctrl-C (the main process stops the workers) and die with the main process.

    Two independent guards: the kernel sends SIGKILL when the worker's parent (the forkserver, which exits
    when the main process goes) dies (``prctl(PR_SET_PDEATHSIG)``, Linux), and a thread that waits on the
    main process (a pidfd on Linux, else polling) kills the worker when it has gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            parent = os.getppid()
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch, args=(main_pid,), name="rareshock-watch-main", daemon=True).start()


def _watch(main_pid: int) -> None:
    """Kill this worker as soon as the main process has exited."""
    try:
        fd = os.pidfd_open(main_pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()  # readable once the process has exited
    else:
        while pid_alive(main_pid):
            time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


def new_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool (forkserver, rareshock preloaded) whose workers die with this process."""
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),))


def stop_pool(pool: ProcessPoolExecutor, kill: bool) -> None:
    """Shut ``pool`` down; with ``kill``, SIGKILL its workers first and wait until they have exited."""
    workers = dict(getattr(pool, "_processes", None) or {})  # pid -> Process (no public API before 3.14)
    if kill:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    pool.shutdown(wait=not kill, cancel_futures=True)
    for proc in workers.values():
        proc.join(timeout=10)


def _local(
    base, all_batches, todo, args, workers: int, prog: Progress, notify: Callable[[str], None]
) -> Iterator[tuple]:
    """Batches on a local process pool, a bounded number in flight. A crashed worker breaks the pool: every
    batch that had not finished is run again on a fresh pool; a batch caught in MAX_ATTEMPTS broken pools
    stops the sweep."""
    pending = list(todo)
    attempts: dict[int, int] = {}
    out_dir = Path(args[0])
    while pending:
        pool = new_pool(workers)
        in_flight: dict = {}
        broken = False
        try:
            while pending or in_flight:
                while pending and len(in_flight) < 2 * workers:
                    k = pending.pop(0)
                    in_flight[pool.submit(run_batch, base, all_batches[k], k, *args)] = k
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    k = in_flight[fut]
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        raise
                    except Exception as err:
                        raise _BatchFailed(_describe(k, err)) from err
                    del in_flight[fut]
                    yield result
        except BrokenProcessPool:
            broken = True
            lost = sorted(set(in_flight.values()) - completed_batches(out_dir))
            for k in lost:
                attempts[k] = attempts.get(k, 0) + 1
            worst = max(lost, key=lambda k: attempts[k], default=None)
            if worst is not None and attempts[worst] >= MAX_ATTEMPTS:
                raise _BatchFailed(
                    f"batch {worst} was running each time a worker process died "
                    f"({attempts[worst]} times; killed, or out of memory?)"
                ) from None
            prog.restarts += 1
            done_meanwhile = sorted(set(in_flight.values()) - set(lost))
            for k in done_meanwhile:  # written before the pool broke: count them
                yield (k, len(all_batches[k]), _failed_in(out_dir, k), 0.0)
            pending = sorted(set(pending) | set(lost))
            notify(
                f"a worker process died; running {len(lost)} unfinished batch{'es' if len(lost) != 1 else ''} "
                f"again on new workers"
            )
        finally:
            stop_pool(pool, kill=not broken and (bool(in_flight) or bool(pending)))


def _failed_in(out_dir: Path, k: int) -> int:
    df = pd.read_parquet(out_dir / RUNS / part_name(k), columns=["status"])
    return int((df["status"] != "ok").sum())


# --------------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------------
def connect(address: str, timeout_s: float = 20.0):
    """A Dask client for the scheduler at ``address``, or a one-line :class:`ConfigError` if there is none
    (checked before anything is written)."""
    text = address.strip()
    scheme = text.split("://", 1)[0] if "://" in text else "tcp"
    if scheme in ("tcp", "tls"):
        m = re.fullmatch(r"(?:(?:tcp|tls)://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.\-]+):(\d{1,5})/?", text)
        if not m or not 0 < int(m[2]) < 65536:
            raise ConfigError(f"--scheduler {address!r}: expected a scheduler address like tcp://host:8786")
        if scheme == "tcp":
            import socket

            try:
                socket.create_connection((m[1].strip("[]"), int(m[2])), timeout=min(timeout_s, 5.0)).close()
            except OSError as err:
                raise ConfigError(
                    f"--scheduler {address}: no Dask scheduler reachable there "
                    f"({err.strerror or err}); start one with 'dask scheduler'"
                ) from None
    from distributed import Client

    try:
        return Client(text, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(
            f"--scheduler {address}: cannot connect to a Dask scheduler ({re.sub(r'\s+', ' ', str(err))[:200]})"
        ) from None


_PROFILER = ("profile", "profile-cycle")


def _pause_profiler(dask_worker) -> list[str]:
    """On a Dask worker: stop its sampling profiler (Dask's statistical profiler samples every thread's
    stack every 10 ms, which costs a simulation run ~25 ms); returns what was running, to restart."""
    running = [
        n for n in _PROFILER if n in dask_worker.periodic_callbacks and dask_worker.periodic_callbacks[n].is_running()
    ]
    for n in running:
        dask_worker.periodic_callbacks[n].stop()
    return running


def _resume_profiler(dask_worker, names: dict) -> None:
    """On a Dask worker: restart the profiler callbacks :func:`_pause_profiler` stopped there."""
    for n in names.get(dask_worker.address, []):
        dask_worker.periodic_callbacks[n].start()


def _dask(client, base, all_batches, todo, args) -> Iterator[tuple]:
    """The same batches on an existing Dask distributed cluster (work on a lost worker is re-run). The
    workers' sampling profiler is paused while the sweep runs and restarted afterwards."""

    paused = client.run(_pause_profiler)
    try:
        yield from _dask_batches(client, base, all_batches, todo, args)
    finally:
        with contextlib.suppress(Exception):  # a worker that died meanwhile has nothing to restart
            client.run(_resume_profiler, names=paused)


def _dask_batches(client, base, all_batches, todo, args) -> Iterator[tuple]:
    from distributed import as_completed

    base_f = client.scatter(base, broadcast=True)
    futures = {
        client.submit(
            run_batch,
            base_f,
            all_batches[k],
            k,
            *args,
            key=f"rareshock-{_token(args[0])}-batch-{k}",
            retries=MAX_ATTEMPTS,
            pure=False,
        ): k
        for k in todo
    }
    try:
        for fut in as_completed(list(futures)):
            try:
                result = fut.result()
            except Exception as err:
                raise _BatchFailed(_describe(futures[fut], err)) from err
            yield result
    finally:
        client.cancel(list(futures))


def check_complete(out_dir: Path, n_runs: int) -> pd.Series:
    """Every run_id exactly once, or a clear error."""
    ids = pd.read_parquet(out_dir / RUNS, columns=["run_id"])["run_id"]
    dup = ids[ids.duplicated()]
    missing = n_runs - ids.nunique()
    if len(dup) or missing:
        raise SweepAborted(f"{RUNS}: {missing} runs missing, {len(dup)} duplicated in {show_path(out_dir)}")
    return ids


def _token(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]
