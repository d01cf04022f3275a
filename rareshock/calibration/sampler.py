"""A pyabc sampler whose results do not depend on the number of workers or the order they finish in.

pyabc's own parallel samplers accept whichever particles finish first, and draw their proposals from
each worker's global random state, so two runs of the same calibration differ. :class:`OrderedSampler`
instead numbers the evaluations of a generation 0, 1, 2, ... and gives evaluation ``i`` of generation
``t`` its own random state:

- its proposal (which particle is perturbed, and how) is drawn from NumPy's global generator seeded with
  ``SeedSequence(seed, spawn_key=(t + 1, i, 1))``;
- its simulation runs with model seed ``SeedSequence(seed, spawn_key=(t + 1, i))`` (as a 63-bit integer,
  the rule of :func:`rareshock.sweeps.spec.run_seed`).

Evaluations go to the workers in chunks of consecutive indices; the generation's population is the
first ``n`` accepted particles *in index order*, and its evaluation count is the index of the n-th
accepted one plus one. Chunks that finish early are held until every lower index is in; evaluations
beyond the n-th acceptance are discarded (counted as ``simulations_run``, not as evaluations). So the
accepted particles, their weights and the acceptance rate are the same for 1 worker, 2 workers or a Dask
cluster. Taking the first ``n`` acceptances in index order is unbiased: each evaluation's acceptance is
independent of the others' (ABC-SMC with a fixed epsilon per generation).

Local workers come from :func:`rareshock.sweeps.executor.new_pool` (they die with the main process); a
worker that dies breaks the pool and every unfinished chunk is run again on a new pool (a chunk caught in
three broken pools stops the calibration). With Dask each worker process evaluates one particle at a
time (a lock), since proposals use the process-wide NumPy generator.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
from pyabc.sampler import Sampler

MAX_ATTEMPTS = 3
MAX_CHUNK = 32
FAILED_MIN, FAILED_SHARE = 50, 0.5
"""With ``on_error = "reject"``, a generation stops the calibration once at least FAILED_MIN of its
simulations failed and they are more than FAILED_SHARE of those evaluated (else it might never finish)."""


class CalibrationAborted(RuntimeError):
    """The calibration stopped (a simulation failed with ``on_error = "stop"``, a chunk kept killing its
    worker, a write failed). Finished generations are kept in the database for ``--resume``; ``str(err)``
    is one line."""


class SimulationFailed(RuntimeError):
    """A simulation raised (``on_error = "stop"``): the message names the generation, evaluation,
    parameters and seed, so the failure can be rerun."""


# --------------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------------
_LOCK = threading.Lock()
_CACHE: dict[str, Callable] = {}
_CURRENT: dict = {"seed": None, "where": None}


def eval_seed(seed: int, t: int, i: int) -> int:
    """Model seed of evaluation ``i`` of generation ``t``."""
    from rareshock.sweeps.spec import run_seed

    return run_seed(seed, t + 1, i)


def proposal_state(seed: int, t: int, i: int) -> np.ndarray:
    """State for NumPy's global generator before evaluation ``i`` of generation ``t`` draws its proposal."""
    return np.random.SeedSequence(seed, spawn_key=(t + 1, i, 1)).generate_state(8)


def current_seed() -> tuple[int, tuple[int, int]]:
    """The model seed and (generation, evaluation) of the evaluation running now (set by the sampler)."""
    if _CURRENT["seed"] is None:
        raise RuntimeError("the calibration model runs only under rareshock's OrderedSampler")
    return _CURRENT["seed"], _CURRENT["where"]


def _simulate_one(token: str, payload: bytes) -> Callable:
    fn = _CACHE.get(token)
    if fn is None:
        import cloudpickle

        _CACHE.clear()  # one generation at a time
        fn = cloudpickle.loads(payload)
        _CACHE[token] = fn
    return fn


def evaluate_chunk(token: str, payload: bytes, seed: int, t: int, start: int, count: int) -> list:
    """Evaluations ``start .. start + count - 1`` of generation ``t``, each with its own random state;
    returns pyabc particles in index order."""
    with _LOCK:
        fn = _simulate_one(token, payload)
        out = []
        for i in range(start, start + count):
            state = proposal_state(seed, t, i)
            np.random.seed(state)  # noqa: NPY002 (pyabc draws proposals from NumPy's global generator)
            random.seed(int(state[0]))
            _CURRENT["seed"], _CURRENT["where"] = eval_seed(seed, t, i), (t, i)
            try:
                out.append(fn())
            finally:
                _CURRENT["seed"] = _CURRENT["where"] = None
        return out


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------
class LocalBackend:
    """The project's process pool (workers die with the main process)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        self.dask = False

    def start(self) -> None:
        from multiprocessing import get_context

        from rareshock.sweeps.executor import PRELOAD, new_pool

        if self.pool is None:
            self.pool = new_pool(self.workers)
            # Workers start at the first task: if the forkserver is not running yet, it also imports pyabc
            # (about 2 s) once, instead of in each worker.
            get_context("forkserver").set_forkserver_preload([*PRELOAD, __name__, "rareshock.calibration.smc"])

    def submit(self, fn, *args):
        self.start()
        return self.pool.submit(fn, *args)

    def wait_any(self, futures) -> set:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
        return set(done)

    def cancel(self, futures) -> None:
        for f in futures:
            f.cancel()

    def restart(self) -> None:
        from rareshock.sweeps.executor import stop_pool

        if self.pool is not None:
            stop_pool(self.pool, kill=True)
        self.pool = None
        self.start()

    def close(self, kill: bool) -> None:
        from rareshock.sweeps.executor import stop_pool

        if self.pool is not None:
            stop_pool(self.pool, kill=kill)
            self.pool = None

    def map(self, fn, *iterables) -> list:
        self.start()
        return list(self.pool.map(fn, *iterables))


class DaskBackend:
    """An existing Dask cluster (``--scheduler``). Work on a lost worker is rerun by Dask."""

    def __init__(self, client):
        self.client = client
        self.dask = True
        self.paused: dict | None = None
        info = client.scheduler_info()
        self.workers = max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def start(self) -> None:
        from rareshock.sweeps.executor import _pause_profiler

        if self.paused is None:  # Dask's sampling profiler costs a simulation ~25 ms (as for sweeps)
            self.paused = self.client.run(_pause_profiler)

    def submit(self, fn, *args):
        self.start()
        return self.client.submit(fn, *args, pure=False, retries=MAX_ATTEMPTS)

    def wait_any(self, futures) -> set:
        from distributed import wait

        return set(wait(list(futures), return_when="FIRST_COMPLETED").done)

    def cancel(self, futures) -> None:
        if futures:
            self.client.cancel(list(futures))

    def restart(self) -> None:
        """Nothing to rebuild: the scheduler reruns a task whose worker died (``retries`` at submit)."""

    def close(self, kill: bool) -> None:
        import contextlib

        from rareshock.sweeps.executor import _resume_profiler

        if self.paused is not None:
            with contextlib.suppress(Exception):  # a worker that died meanwhile has nothing to restart
                self.client.run(_resume_profiler, names=self.paused)
            self.paused = None

    def map(self, fn, *iterables) -> list:
        self.start()
        futures = self.client.map(fn, *iterables, pure=False, retries=MAX_ATTEMPTS)
        try:
            return self.client.gather(futures)
        finally:
            self.client.cancel(futures)


# --------------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------------
class OrderedSampler(Sampler):
    """Evaluates particles in a fixed order with per-evaluation seeds (see the module docstring)."""

    def __init__(self, seed: int, backend, progress: bool = False, notify: Callable[[str], None] | None = None):
        super().__init__()
        self.seed = int(seed)
        self.backend = backend
        self.progress = progress
        self.notify = notify
        self.rate_hint = 1.0
        self.simulations_run = 0
        self.generation_stats: dict[int, dict] = {}
        self.on_sampled: Callable[[int, dict], None] | None = None

    def __getstate__(self):  # never shipped to workers
        raise TypeError("OrderedSampler is not picklable")

    def _chunk(self, n: int, accepted: int) -> int:
        need = (n - accepted) / max(self.rate_hint, 1e-3)
        return int(max(1, min(MAX_CHUNK, math.ceil(need / (4 * self.backend.workers)))))

    def sample_until_n_accepted(self, n, simulate_one, t, *, max_eval=np.inf, all_accepted=False, ana_vars=None):
        import cloudpickle

        t0 = time.perf_counter()
        payload = cloudpickle.dumps(simulate_one)
        token = hashlib.sha256(payload).hexdigest()
        limit = math.inf if not np.isfinite(max_eval) else math.ceil(max_eval)
        sample = self._create_empty_sample()
        held: dict[int, list] = {}
        in_flight: dict = {}  # future -> (start, count)
        attempts: dict[int, int] = {}
        next_index = prefix = accepted = failures = 0
        cutoff = None
        bar = self._bar(n, t)
        backend = self.backend
        try:
            while cutoff is None:
                while len(in_flight) < 2 * backend.workers and next_index < limit:
                    count = int(min(self._chunk(n, accepted), limit - next_index))
                    fut = backend.submit(evaluate_chunk, token, payload, self.seed, t, next_index, count)
                    in_flight[fut] = (next_index, count)
                    next_index += count
                if not in_flight:  # the evaluation limit is reached
                    cutoff = prefix
                    break
                for fut in backend.wait_any(in_flight):
                    start, count = in_flight.pop(fut)
                    try:
                        held[start] = fut.result()
                    except Exception as err:
                        if _broken(err) and not backend.dask:
                            self._rerun_after_crash(in_flight, start, count, attempts, token, payload, t)
                            break
                        raise CalibrationAborted(_describe(err, t, start)) from err
                    self.simulations_run += count
                while cutoff is None and prefix in held:
                    chunk = held.pop(prefix)
                    for j, particle in enumerate(chunk):
                        failed = bool(np.asarray(particle.sum_stat.get("_failed", 0)).item())
                        if failed:
                            failures += 1
                            particle.accepted = False
                            particle.weight = 0.0
                        sample.append(particle)
                        if particle.accepted:
                            accepted += 1
                            if bar is not None:
                                bar.update(1)
                        if accepted == n or prefix + j + 1 >= limit:
                            cutoff = prefix + j + 1
                            break
                    prefix += len(chunk)
                    if failures >= FAILED_MIN and failures > FAILED_SHARE * prefix:
                        raise CalibrationAborted(
                            f"generation {t}: {failures} of the first {prefix} simulations failed "
                            f'(on_error = "reject" stops above {FAILED_SHARE:.0%}); check the priors and the scenario'
                        )
        finally:
            backend.cancel(list(in_flight))
            if bar is not None:
                bar.close()
        self.nr_evaluations_ = int(cutoff)
        if accepted < n:
            sample.ok = False
        if cutoff:
            self.rate_hint = max(accepted / cutoff, 1e-3)
        self.generation_stats[int(t)] = {
            "evaluations": int(cutoff),
            "failed": failures,
            "simulations_run": next_index,
            "seconds": time.perf_counter() - t0,
        }
        if self.on_sampled is not None and t >= 0:
            self.on_sampled(int(t), self.generation_stats[int(t)])
        return sample

    def _rerun_after_crash(self, in_flight: dict, start: int, count: int, attempts: dict, token, payload, t):
        """A worker died: run every unfinished chunk again on a new pool (up to MAX_ATTEMPTS times each)."""
        lost = [(start, count)] + list(in_flight.values())
        in_flight.clear()
        for s, _ in lost:
            attempts[s] = attempts.get(s, 0) + 1
            if attempts[s] >= MAX_ATTEMPTS:
                raise CalibrationAborted(
                    f"generation {t}: evaluations {s}.. were running each time a worker process died "
                    f"({attempts[s]} times; killed, or out of memory?)"
                )
        if self.notify is not None:
            self.notify(f"a worker process died; running {len(lost)} unfinished chunks again on new workers")
        self.backend.restart()
        for s, c in lost:
            in_flight[self.backend.submit(evaluate_chunk, token, payload, self.seed, t, s, c)] = (s, c)

    def _bar(self, n: int, t: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=n, desc=f"generation {t}", unit="particle", leave=False, file=sys.stderr, dynamic_ncols=True)


def _broken(err: BaseException) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(err, BrokenProcessPool)


def _describe(err: BaseException, t: int, start: int) -> str:
    import re

    if isinstance(err, SimulationFailed):
        return str(err)
    text = re.sub(r"\s+", " ", str(err)).strip()
    return f"generation {t}, evaluations from {start}: {type(err).__name__}: {text[:300]}"
