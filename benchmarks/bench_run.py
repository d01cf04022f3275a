"""Speed of one simulated run, beside a plain Mesa loop (benchmark, not a test).

Two measurements, in one process:

1. A 10-year daily run of the default world against the yardstick from Mesa's own examples: a plain model
   with the same number of agents (``RareShockModel.actor_count()``: every network node plus the Mesa
   agents), each with a trivial ``step``, driven by ``shuffle_do`` for the same number of days. Runs are
   interleaved (model, plain, model, plain, ...) so that machine noise hits both; the ratio of agent-steps
   per second is reported per pair (median and range).
2. A one-year ``april_2025_shock`` run as a calibration would use it: building the model, simulating the
   year, and the summary, without files or figures.

    .venv/bin/python benchmarks/bench_run.py [--scenario PATH] [--years 10] [--repeat 7]

Kernels are compiled (or loaded from Numba's cache) before timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import mesa

from rareshock.model.config import load_scenario
from rareshock.model.model import RareShockModel
from rareshock.simulation import summarise


class _Trivial(mesa.Agent):
    def step(self) -> None:
        self.x = 1


class _PlainModel(mesa.Model):
    def __init__(self, n: int, rng=None):
        super().__init__(rng=rng)
        _Trivial.create_agents(self, n)

    def step(self) -> None:
        self.agents.shuffle_do("step")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="experiments/scenarios/april_2025_shock.toml")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    start = dt.date(2025, 1, 1)
    end = dt.date(start.year + a.years, 1, 1) - dt.timedelta(days=1)
    cfg = load_scenario(a.scenario, [f"scenario.end={end.isoformat()}"])

    def run_model():
        m = RareShockModel(cfg, rng=1)
        for _ in range(m.n_days):
            m.step()
        return m

    m = run_model()  # compile or load the kernels
    n_agents, days = m.actor_count(), m.n_days

    def run_plain():
        p = _PlainModel(n_agents, rng=1)
        for _ in range(days):
            p.step()

    t_model, t_plain = [], []
    for _ in range(a.repeat):
        t_model.append(_timed(run_model))
        t_plain.append(_timed(run_plain))
    steps = n_agents * days
    print(f"scenario {cfg.scenario.name}, {a.years} years: {n_agents} agents x {days} days = {steps:,} agent-steps")
    for name, t in (("rareshock", t_model), ("plain Mesa shuffle_do loop", t_plain)):
        print(
            f"{name:28s} best {min(t):.3f} s  median {statistics.median(t):.3f} s  "
            f"{steps / min(t) / 1e6:.2f} M agent-steps/s (best)"
        )
    ratios = sorted(p / r for p, r in zip(t_plain, t_model))
    print(
        f"ratio rareshock/plain agent-steps per second, interleaved pairs: median {statistics.median(ratios):.2f} "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )

    one = load_scenario("experiments/scenarios/april_2025_shock.toml")
    build, sim, summ = [], [], []
    for i in range(a.repeat):
        t0 = time.perf_counter()
        model = RareShockModel(one, rng=i)
        t1 = time.perf_counter()
        for _ in range(model.n_days):
            model.step()
        t2 = time.perf_counter()
        summarise(model)
        t3 = time.perf_counter()
        build.append(t1 - t0)
        sim.append(t2 - t1)
        summ.append(t3 - t2)
    med = statistics.median
    print(
        f"one-year april_2025_shock: build {1e3 * med(build):.1f} ms, simulation {1e3 * med(sim):.1f} ms, "
        f"summary {1e3 * med(summ):.1f} ms (medians of {a.repeat})"
    )


if __name__ == "__main__":
    main()
