# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # rareshock in a notebook: a scenario, a sweep, and SQL over the results
#
# This tutorial runs the model's main scenario from Python, reads its results with pandas, runs a small
# parameter sweep and queries it with pandas and DuckDB, and ends with the uncertainty from the calibrated
# posterior. It takes well under a minute. The notebook is `docs/tutorial.ipynb`; its reviewable source is
# `docs/tutorial.py` (a jupytext "percent" script), and the tests execute it.
#
# It needs the `notebook` extra (DuckDB, Jupyter's kernel): `pip install -e '.[notebook]'`, or the lock file.

# %%
import subprocess
import sys
from pathlib import Path

import pandas as pd

import rareshock

rareshock.__version__

# %% [markdown]
# ## 1. Run a scenario
#
# `rareshock.run` takes a shipped scenario by name (`rareshock list` prints them) or a path to a TOML file,
# and a seed: the same scenario, overrides and seed always give the same numbers. Any config field can be
# overridden with a keyword argument, writing `__` for each dot of its path: here the run stops at the end
# of September 2025, and in a second run MOFCOM has 60 licence reviewers on 4 April instead of its 30.

# %%
r = rareshock.run("april_2025_shock", seed=1, scenario__end="2025-09-30")
more_reviewers = rareshock.run("april_2025_shock", seed=1, scenario__end="2025-09-30", licensing__cn__reviewers=60)

# %% [markdown]
# `r.summary` is a dict with the run's outcome metrics, the contents of `summary.json` (days are counted
# from the first export control, `first_control_date`). Doubling the reviewers clears licences faster, so
# US assembly plants lose fewer days.

# %% tags=["idle-days"]
keys = ["first_control_date", "first_us_auto_shutdown_day", "us_auto_idle_plant_days", "first_us_auto_licence_day"]
pd.DataFrame(
    {"30 reviewers": [r.summary[k] for k in keys], "60 reviewers": [more_reviewers.summary[k] for k in keys]},
    index=keys,
)

# %% [markdown]
# `r.timeseries` is a pandas DataFrame with one row per simulated day (the file `timeseries.parquet`).
# Monthly figures are a `resample` away: China's magnet exports summed over the month, the most US plants
# idle on one day, and the average MOFCOM licence queue.

# %%
ts = r.timeseries.set_index("date")
monthly = ts.resample("MS").agg(
    {
        "cn_magnet_exports_t": "sum",
        "cn_magnet_exports_to_us_t": "sum",
        "auto_plants_idle_us": "max",
        "cn_licences_pending": "mean",
    }
)
monthly.round(1)

# %% [markdown]
# `r.plot()` draws the figures `rareshock run` writes, as matplotlib Figures: China's magnet exports by
# destination (the default), or `"licences"`, `"idle_plants"`, `"prices"`, `"export_limits"`.

# %%
fig = r.plot()

# %%
fig = r.plot("idle_plants")

# %% [markdown]
# ## 2. A small sweep
#
# A sweep runs a scenario over a design of parameter values, several seeds each, in parallel worker
# processes, and writes one row per run to `runs.parquet`. It is described by a TOML file; this one crosses
# four reviewer counts with two replications (8 runs, each stopped at the end of July 2025). The scenario
# is the shipped file, which `rareshock.resources.locate` finds by name.

# %%
from rareshock.resources import locate

sweep_file = Path("results/runs/tutorial_sweep.toml")
sweep_file.parent.mkdir(parents=True, exist_ok=True)
_ = sweep_file.write_text(f"""
[sweep]
name = "tutorial_sweep"
scenario = "{locate("april_2025_shock", "scenario").as_posix()}"
method = "grid"
replications = 2
seed = 1
overrides = ["scenario.end=2025-07-31"]
outputs = ["first_us_auto_shutdown_day", "us_auto_idle_plant_days"]

[[parameters]]
path = "licensing.cn.reviewers"
values = [15, 30, 60, 120]
""")

# %% [markdown]
# The sweep runs with the command line, `rareshock sweep` (here through this notebook's Python, so the
# same installation). `--overwrite` replaces the folder of an earlier run of this notebook; rareshock never
# replaces a folder it did not write. The output lists what the sweep wrote and its analysis.

# %%
out = Path("results/runs/tutorial_sweep")
cmd = [sys.executable, "-m", "rareshock", "sweep", str(sweep_file), "--out", str(out), "--workers", "2"]
done = subprocess.run([*cmd, "--overwrite", "--no-progress"], capture_output=True, text=True)
print(done.stdout or done.stderr)
done.check_returncode()
sorted(p.name for p in out.iterdir())

# %% [markdown]
# ## 3. Read the sweep with pandas
#
# `runs.parquet` is a folder of part files (one per batch of runs) that pandas reads as one table. Each
# row has the run's sweep and scenario, its sample, replicate and seed, the swept parameters under their
# config paths, every summary metric (nested ones with dotted names, e.g. `cn_licences.approved`), and its
# status. Counts and days are whole numbers, missing (`<NA>`) where the event did not happen within the run.

# %%
runs = pd.read_parquet(out / "runs.parquet").sort_values("run_id")
runs[
    [
        "run_id",
        "sweep",
        "scenario",
        "licensing.cn.reviewers",
        "seed",
        "first_us_auto_shutdown_day",
        "us_auto_idle_plant_days",
        "first_control_date",
    ]
]

# %% [markdown]
# Averages by reviewer count, over the two seeds of each value. Two seeds are too few to tell the effect of
# reviewers from the noise of plants' draws: a real study would use more replications (or the posterior).

# %%
by_reviewers_pandas = runs.groupby("licensing.cn.reviewers")[["us_auto_idle_plant_days", "cn_licences.approved"]].mean()
by_reviewers_pandas

# %% [markdown]
# ## 4. Query it with SQL (DuckDB)
#
# `rareshock.sql.connect(folder)` opens a DuckDB connection with a view per table of a result folder
# (`runs`, `design`, `timeseries`, ...). In the views, the dots of column names are `__`, as in the
# keyword arguments of `rareshock.run`, so `licensing.cn.reviewers` is `licensing__cn__reviewers`.

# %%
import rareshock.sql

con = rareshock.sql.connect(out)
by_reviewers = con.sql("""
    SELECT licensing__cn__reviewers AS reviewers,
           count(*) AS runs,
           avg(us_auto_idle_plant_days) AS idle_plant_days,
           min(first_us_auto_shutdown_day) AS earliest_shutdown_day
    FROM runs
    WHERE status = 'ok'
    GROUP BY reviewers
    ORDER BY reviewers
""").df()
by_reviewers

# %% [markdown]
# Reading the parquet files directly works too; then the dotted names must be double-quoted in SQL
# (`"licensing.cn.reviewers"`), since a bare dot means table.column.

# %%
con.sql(f"""
    SELECT "licensing.cn.reviewers", avg("cn_licences.approved") AS approved
    FROM read_parquet('{(out / "runs.parquet").as_posix()}/*.parquet')
    GROUP BY 1 ORDER BY 1
""").df()

# %% [markdown]
# ## 5. Uncertainty: runs over the calibrated posterior
#
# Nine parameters that no source pins down were calibrated on dated facts of 2025. `posterior=10` runs 10
# draws of that posterior (each with its own seed): `summary` then holds each metric's median and a
# `posterior` block with the 10th and 90th percentiles, and `draws` one row per draw. The reference results
# use 100 draws; 10 keep this quick.

# %%
p = rareshock.run("april_2025_shock", posterior=10, scenario__end="2025-09-30")
band = {
    k: (p.summary["posterior"]["p10"][k], p.summary[k], p.summary["posterior"]["p90"][k])
    for k in ("first_us_auto_shutdown_day", "us_auto_idle_plant_days")
}
pd.DataFrame(band, index=["p10", "median", "p90"])

# %% [markdown]
# The draws show where the spread comes from: the calibrated parameters are columns beside the outcomes.
# US plants' mean stock cover on 4 April is one of the parameters the 2025 facts leave widest open.

# %%
p.draws[["draw", "automakers.US.buffer_days_mean", "first_us_auto_shutdown_day", "us_auto_idle_plant_days"]].round(1)

# %% [markdown]
# The time series of a posterior run holds per-day medians with `_p10` and `_p90` bands; the same plots
# work on it.

# %%
fig = p.plot("idle_plants")

# %% [markdown]
# From here: `rareshock list` for the other scenarios, sweeps and calibrations; `docs/ODD.md` for the
# model's mechanisms; the README for reproducing the reference results.
