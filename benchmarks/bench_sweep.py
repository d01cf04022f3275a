"""Sweep throughput, parallel efficiency, Dask overhead and memory of the sweep process.

    .venv/bin/python benchmarks/bench_sweep.py [--runs 1000] [--workers 2] [--memory]

1. ``--runs`` runs of april_2025_shock (2025-01-01 to 2026-06-30, random design over two parameters) on
   ``--workers`` local processes, and a quarter of them on one worker. Per-run costs are marginal: each
   setting also runs a sweep of a fifth the size and the difference of the two wall times is divided by
   the difference in runs, so start-up (imports, the pool, the metric probe, analysis) is excluded from
   both sides. Parallel efficiency = serial cost per run / (workers x parallel cost per run).
2. The same runs on a Dask LocalCluster with as many workers (the workers' sampling profiler off, as
   rareshock recommends for clusters): marginal per-run cost against local processes.
3. With ``--memory``: peak resident memory of the sweep process (the parent, which holds the bookkeeping)
   for 1,000 and 10,000 runs of a one-month scenario (run length does not matter for the parent's memory).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOCK = ROOT / "experiments" / "scenarios" / "april_2025_shock.toml"


def sweep_file(d: Path, runs: int, end: str, batch: int) -> Path:
    p = d / f"bench_{runs}_{end}.toml"
    p.write_text(f"""
[sweep]
name = "bench"
scenario = "{SHOCK}"
method = "random"
samples = {runs}
seed = 11
batch_size = {batch}
overrides = ["scenario.end={end}"]
outputs = ["first_us_auto_shutdown_day"]

[[parameters]]
path = "automakers.US.buffer_days_mean"
low = 10.0
high = 40.0

[[parameters]]
path = "licensing.cn.reviewers"
low = 5
high = 60
integer = true
""")
    return p


def timed(args: list[str]) -> float:
    from rareshock.cli import main

    t = time.perf_counter()
    assert main(args + ["--no-progress"]) == 0
    return time.perf_counter() - t


def peak_rss_mb(args: list[str]) -> float:
    """Run the sweep in a fresh process and report its own peak RSS (the parent, not the workers)."""
    code = (
        "import resource, sys; from rareshock.cli import main; rc = main(sys.argv[1:] + ['--no-progress']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--memory", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rareshock-bench-"))
    try:

        def marginal(n: int, extra: list[str], tag: str) -> tuple[float, float]:
            """(seconds per run excluding start-up, wall time of the n-run sweep)."""
            small = max(n // 5, 10)
            t_small = timed(
                [
                    "sweep",
                    str(sweep_file(tmp, small, "2026-06-30", a.batch)),
                    *extra,
                    "--out",
                    str(tmp / f"{tag}-small"),
                ]
            )
            t_full = timed(["sweep", str(sweep_file(tmp, n, "2026-06-30", a.batch)), *extra, "--out", str(tmp / tag)])
            return (t_full - t_small) / (n - small), t_full

        serial_n = max(a.runs // 4, 200)
        per_run, t1 = marginal(serial_n, ["--workers", "1"], "serial")
        par_run, tn = marginal(a.runs, ["--workers", str(a.workers)], "parallel")
        eff = per_run / (a.workers * par_run)
        print(f"serial: {serial_n} runs in {t1:.1f} s; {per_run * 1000:.0f} ms/run marginal (start-up excluded)")
        print(
            f"local : {a.runs} runs on {a.workers} workers in {tn:.1f} s ({a.runs / tn:.1f} runs/s); "
            f"{par_run * 1000:.0f} ms/run marginal; parallel efficiency {eff:.0%}"
        )
        import dask
        from distributed import LocalCluster

        with (
            dask.config.set({"distributed.worker.profile.enabled": False}),
            LocalCluster(n_workers=a.workers, threads_per_worker=1, dashboard_address=None) as cluster,
        ):
            dask_run, td = marginal(a.runs, ["--scheduler", cluster.scheduler_address], "dask")
        print(
            f"dask  : {a.runs} runs on a {a.workers}-worker LocalCluster in {td:.1f} s; "
            f"{dask_run * 1000:.0f} ms/run marginal, {(dask_run - par_run) * 1000:+.1f} ms/run vs local processes"
        )
        if a.memory:
            for n in (1000, 10000):
                mb = peak_rss_mb(
                    [
                        "sweep",
                        str(sweep_file(tmp, n, "2025-01-31", 100)),
                        "--workers",
                        str(a.workers),
                        "--out",
                        str(tmp / f"mem{n}"),
                    ]
                )
                print(f"memory: {n:>6} runs -> peak RSS of the sweep process {mb:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
