"""rareshock in the EMA Workbench: 20 scenarios x 2 policies of the April 2025 shock, one year.

    python docs/examples/ema_perform_experiments.py OUT_DIR

The uncertainties are the seven world and behaviour parameters of the sweep ``sobol_april_2025`` (China's
licensing capacity and odds, shipping, switching, ...), sampled by Latin hypercube; the lever is the stock
that US plants hold (``automakers.US.buffer_days_mean``, an uncertainty in the sweep, moved to the levers
here): about 24 days, the calibrated median, against a 60-day stockholding rule. Every run uses the same
seed (common random numbers), so the two policies differ by the lever only. Prints a table and writes
``OUT_DIR/experiments.csv`` and ``OUT_DIR/idle_plants.png`` (monthly US idle plants); refuses to replace
files that are already there (exit 2). About 15-30 seconds on one core after the first run's compilation.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ema_workbench: ipyparallel is optional
    from ema_workbench import Sample, SequentialEvaluator

from rareshock.ema import from_sweep

OUTCOMES = ["us_auto_idle_plant_days", "first_us_auto_shutdown_day", "lost_vehicles_us", "auto_plants_idle_us"]


def main(out: Path) -> None:
    files = [out / "experiments.csv", out / "idle_plants.png"]
    taken = [str(f) for f in files if f.exists()]
    if taken:
        print(f"ema_perform_experiments: {taken[0]} exists; choose a new folder", file=sys.stderr)
        sys.exit(2)
    model = from_sweep(
        "sobol_april_2025",
        levers=["automakers.US.buffer_days_mean"],
        replications=1,  # one seed per experiment (the sweep itself runs two)
        outcomes=OUTCOMES,
        frequency="monthly",
        scenario__end="2025-12-31",  # the whole year (the sweep stops on 31 October)
    )
    policies = [
        Sample("buffers_24d", automakers__US__buffer_days_mean=24.0),
        Sample("buffers_60d", automakers__US__buffer_days_mean=60.0),
    ]
    with SequentialEvaluator(model) as evaluator:
        experiments, outcomes = evaluator.perform_experiments(
            scenarios=20, policies=policies, uncertainty_sampling_kwargs={"rng": 2025}
        )

    table = experiments.drop(columns=["model"]).assign(**{k: v for k, v in outcomes.items() if np.ndim(v) == 1})
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(files[0], index=False)
    summary = table.groupby("policy").agg(
        idle_plant_days_median=("us_auto_idle_plant_days", "median"),
        idle_plant_days_p90=("us_auto_idle_plant_days", lambda s: s.quantile(0.9)),
        scenarios_with_idle_plant=("first_us_auto_shutdown_day", lambda s: int(s.notna().sum())),
        lost_vehicles_median=("lost_vehicles_us", "median"),
    )
    print(summary.to_string(float_format=lambda v: f"{v:,.0f}"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = pd.date_range("2025-01-01", periods=outcomes["auto_plants_idle_us"].shape[1], freq="MS")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for policy, color in zip(["buffers_24d", "buffers_60d"], ["tab:red", "tab:blue"]):
        rows = outcomes["auto_plants_idle_us"][(experiments["policy"] == policy).to_numpy()]
        ax.plot(months, rows.T, color=color, alpha=0.3, lw=1)
        ax.plot(months, np.median(rows, axis=0), color=color, lw=2.5, label=f"{policy} (median of 20)")
    ax.set_ylabel("US plants idle (monthly mean)")
    ax.set_title("April 2025 shock: 20 EMA scenarios under two plant-stock policies")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(files[1], dpi=120)
    print(f"wrote {files[0]} and {files[1]}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python docs/examples/ema_perform_experiments.py OUT_DIR", file=sys.stderr)
        sys.exit(2)
    main(Path(sys.argv[1]))
