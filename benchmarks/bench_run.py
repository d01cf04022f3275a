"""Speed of one 10-year daily run of the default world, beside a plain Mesa loop.

The plain loop is the yardstick from Mesa's own examples: the same number of agents, each with a
trivial ``step``, driven by ``shuffle_do`` for the same number of days, in the same process.

    .venv/bin/python benchmarks/bench_run.py [--scenario PATH] [--years 10] [--repeat 5]

Prints wall time (best and median of the repeats) and agent-steps per second for both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import mesa

from rareshock.model.config import load_scenario
from rareshock.model.model import RareShockModel


class _Trivial(mesa.Agent):
    def step(self) -> None:
        self.x = 1


class _PlainModel(mesa.Model):
    def __init__(self, n: int, rng=None):
        super().__init__(rng=rng)
        _Trivial.create_agents(self, n)

    def step(self) -> None:
        self.agents.shuffle_do("step")


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="experiments/scenarios/april_2025_shock.toml")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    start = dt.date(2025, 1, 1)
    end = dt.date(start.year + a.years, 1, 1) - dt.timedelta(days=1)
    cfg = load_scenario(a.scenario, [f"scenario.end={end.isoformat()}"])

    def run_model():
        m = RareShockModel(cfg, rng=1)
        for _ in range(m.n_days):
            m.step()
        return m

    m = run_model()
    n_agents, days = len(m.agents), m.n_days

    def run_plain():
        p = _PlainModel(n_agents, rng=1)
        for _ in range(days):
            p.step()

    t_model = _time(run_model, a.repeat)
    t_plain = _time(run_plain, a.repeat)
    steps = n_agents * days
    print(f"scenario {cfg.scenario.name}: {n_agents} agents x {days} days = {steps:,} agent-steps")
    for name, t in (("rareshock", t_model), ("plain Mesa shuffle_do loop", t_plain)):
        print(f"{name:28s} best {min(t):.3f} s  median {statistics.median(t):.3f} s  "
              f"{steps / min(t) / 1e6:.2f} M agent-steps/s (best)")
    print(f"ratio rareshock/plain agent-steps per second: {min(t_plain) / min(t_model):.2f}")


if __name__ == "__main__":
    main()
