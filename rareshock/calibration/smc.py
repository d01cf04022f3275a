"""ABC-SMC with pyabc: the model, distance and epsilon pyabc needs, and running or resuming a calibration.

- :class:`ScenarioModel` turns a latent parameter vector into scenario values, runs the calibration
  scenario with the evaluation's seed and returns the targets' statistics (plus the seed, so every
  particle can be rerun).
- :class:`IntervalDistance` is the weighted p-norm of per-target interval distances
  (:mod:`rareshock.calibration.stats`).
- :class:`OrderedQuantileEpsilon` is pyabc's quantile epsilon (the weighted ``epsilon_quantile`` of the
  previous generation's distances) with two changes: generation 0 is a sample of the prior (epsilon =
  infinity, every particle accepted: no separate calibration sample is simulated), and the quantile is
  computed in a canonical order (by distance, then weight), so a resumed calibration, which reads the
  previous generation back from the database, gets the very same epsilon as an uninterrupted one.
- the perturbation kernel is pyabc's multivariate normal (Silverman's bandwidth) in the latent space.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyabc
from pyabc.epsilon import QuantileEpsilon

from rareshock.calibration.config import Calibration, ParamSpec
from rareshock.calibration.sampler import SimulationFailed, current_seed
from rareshock.calibration.stats import TargetArrays, simulate

DB_NAME = "abc.db"


class ScenarioModel(pyabc.Model):
    """The calibration scenario as a pyabc model (runs in the workers)."""

    def __init__(self, base: dict, params: list[ParamSpec], arrays: TargetArrays, on_error: str):
        super().__init__(name="rareshock")
        self.base, self.params, self.arrays, self.on_error = base, params, arrays, on_error

    def values(self, pars) -> dict:
        return {p.path: p.value(pars[p.key]) for p in self.params}

    def sample(self, pars) -> dict:
        seed, (t, i) = current_seed()
        values = self.values(pars)
        try:
            stats = simulate(self.base, values, seed, self.arrays)
            failed = 0
        except Exception as err:
            if self.on_error == "stop":
                shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
                raise SimulationFailed(
                    f"generation {t}, evaluation {i}: the simulation failed ({shown}, seed {seed}): "
                    f'{type(err).__name__}: {str(err)[:300]}; set calibration.on_error = "reject" to reject '
                    f"such particles instead"
                ) from None
            stats = np.full(len(self.arrays.labels), np.nan)
            failed = 1
        out = {label: float(v) for label, v in zip(self.arrays.labels, stats)}
        out["_seed"] = np.int64(seed)
        out["_evaluation"] = np.int64(i)
        out["_failed"] = np.int64(failed)
        return out


class IntervalDistance(pyabc.Distance):
    """Weighted p-norm of per-target interval distances (x_0 is not used: the record is the intervals)."""

    def __init__(self, arrays: TargetArrays):
        super().__init__()
        self.arrays = arrays

    def __call__(self, x: dict, x_0: dict, t: int | None = None, par: dict | None = None) -> float:
        values = np.array([float(np.asarray(x[label]).item()) for label in self.arrays.labels])
        return self.arrays.distance(values)

    def get_config(self) -> dict:
        return {"name": "IntervalDistance", "labels": list(self.arrays.labels), "norm": self.arrays.norm}


class OrderedQuantileEpsilon(QuantileEpsilon):
    """Quantile epsilon with generation 0 = the prior and an order-independent quantile."""

    def __init__(self, alpha: float):
        super().__init__(initial_epsilon="from_sample", alpha=alpha, weighted=True)

    def requires_calibration(self) -> bool:
        return False

    def initialize(self, t, get_weighted_distances, get_all_records, max_nr_populations, acceptor_config):
        if t == 0:
            self._look_up = {0: math.inf}
        else:  # resuming: the previous generation, as stored
            self._update(t, get_weighted_distances())

    def _update(self, t: int, weighted_distances) -> None:
        d = weighted_distances["distance"].to_numpy(dtype=float)
        w = weighted_distances["w"].to_numpy(dtype=float)
        order = np.lexsort((w, d))
        d, w = d[order], w[order]
        w = w / w.sum()
        cs = np.cumsum(w)
        self._look_up[t] = float(np.interp(self.alpha, cs - 0.5 * w, d)) * self.quantile_multiplier


def quiet_pyabc() -> None:
    """pyabc logs every generation at INFO; rareshock prints its own lines."""
    for name in ("ABC", "pyabc"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_abc(cal: Calibration, sampler) -> pyabc.ABCSMC:
    arrays = TargetArrays.of(cal)
    model = ScenarioModel(cal.base, cal.params, arrays, cal.settings.on_error)
    prior = pyabc.Distribution(**{p.key: p.rv() for p in cal.params})
    return pyabc.ABCSMC(
        models=model,
        parameter_priors=prior,
        distance_function=IntervalDistance(arrays),
        population_size=cal.settings.population,
        transitions=pyabc.MultivariateNormalTransition(),
        eps=OrderedQuantileEpsilon(cal.settings.epsilon_quantile),
        sampler=sampler,
    )


def db_url(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / DB_NAME).resolve()}"


def generations_done(history) -> int:
    return int(history.max_t) + 1 if history.n_populations else 0


def stop_reason(cal: Calibration, history, sample_failed: bool = False) -> str | None:
    """Why the calibration stops after its last stored generation (pyabc's rules, read from the
    database), or None if it would go on."""
    s = cal.settings
    done = generations_done(history)
    if sample_failed:
        return (
            f"acceptance rate below min_acceptance_rate = {s.min_acceptance_rate:g} "
            f"(generation {done} stopped unfinished)"
        )
    if done == 0:
        return None
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0].sort_values("t")
    last = pops.iloc[-1]
    eps = float(last["epsilon"])
    n = history.get_nr_particles_per_population()
    rate = float(n.loc[int(last["t"])]) / float(last["samples"])
    if done >= s.generations:
        return f"generations = {s.generations} reached"
    if eps <= s.min_epsilon:
        return f"epsilon {eps:.6g} at or below min_epsilon = {s.min_epsilon:g}"
    if rate < s.min_acceptance_rate:
        return f"acceptance rate {rate:.4g} below min_acceptance_rate = {s.min_acceptance_rate:g}"
    total = int(pops["samples"].sum())
    if s.max_evaluations is not None and total >= s.max_evaluations:
        return f"{total:,} evaluations, at or above max_evaluations = {s.max_evaluations:,}"
    return None


def run_abc(cal: Calibration, folder: Path, sampler, resume: bool, on_generation=None) -> tuple[object, str]:
    """Start (or continue) the calibration whose database is in ``folder``; returns (history, why it
    stopped). Generations already in the database are kept; the next one starts from the last stored."""
    quiet_pyabc()
    s = cal.settings
    # pyabc's own draws in this process, if any (the workers' draws are seeded per evaluation)
    np.random.seed(np.random.SeedSequence(s.seed).generate_state(8))  # noqa: NPY002
    abc = build_abc(cal, sampler)
    url = db_url(folder)
    if resume and (Path(folder) / DB_NAME).exists():
        history = abc.load(url, 1)
    else:
        history = abc.new(url, observed_sum_stat=_observed(cal), meta_info={"calibration": s.name})
    reason = stop_reason(cal, history)
    while reason is None:
        done = generations_done(history)
        # One generation per call: each starts from the database (transitions and epsilon from the stored
        # previous generation), exactly as a resumed calibration does.
        abc._initial_population = None
        history = abc.run(
            minimum_epsilon=s.min_epsilon,
            max_nr_populations=1,
            min_acceptance_rate=s.min_acceptance_rate,
            max_total_nr_simulations=np.inf,  # checked by stop_reason, after each generation
        )
        if generations_done(history) == done:  # the sample was not completed (max evaluations per generation)
            reason = stop_reason(cal, history, sample_failed=True)
            break
        if on_generation is not None:
            on_generation(history, done)
        reason = stop_reason(cal, history)
    return history, reason


def _observed(cal: Calibration) -> dict:
    """What the database records as the "observed" statistics: each target's interval (the distance uses
    the intervals directly)."""
    out = {}
    for t in cal.targets:
        lo = -np.inf if t.low is None else float(t.low)
        hi = np.inf if t.high is None else float(t.high)
        out[t.label] = np.array([lo, hi])
    return out
