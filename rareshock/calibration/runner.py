"""A whole calibration from the command line's point of view: start or resume, run the generations,
write the report, record, publish.

The calibration folder is an :class:`rareshock.outputs.OutputDir` (kind "calibration") the caller has
opened (checked and locked). Like a sweep's, a new calibration's folder appears under its name once the
calibration can start (its state file is written into a marked stage renamed into place), so an
interruption at any moment leaves either no folder or one that ``--resume`` continues: pyabc stores each
finished generation in ``abc.db`` (SQLite, transactional), and a resumed calibration starts from the last
stored generation with the same numbers as an uninterrupted one. The report files are written once the
generations are done, ``manifest.json`` last: a calibration folder without it is unfinished.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rareshock.calibration.config import Calibration
from rareshock.model.config import ConfigError
from rareshock.outputs import OutputDir, atomic_write_bytes, atomic_write_text, parquet_bytes, show_path, to_json

STATE = "calibration_state.json"


def _note(message: str) -> None:
    print(f"rareshock: note: {message}", file=sys.stderr, flush=True)


def stop_rules(cal: Calibration) -> dict:
    s = cal.settings
    return {
        "generations": s.generations,
        "min_epsilon": s.min_epsilon,
        "min_acceptance_rate": s.min_acceptance_rate,
        "max_evaluations": s.max_evaluations,
    }


def _write_state(folder: Path, state: dict) -> None:
    atomic_write_text(folder / STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _resume_state(cal: Calibration, folder: Path) -> dict:
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        ok = isinstance(state, dict) and {"fingerprint", "generations", "sessions"} <= state.keys()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"--resume {show_path(folder)}: {STATE} is missing or unreadable; this folder cannot be resumed "
            f"(start the calibration in another folder, or replace it with --overwrite)"
        )
    if state["fingerprint"] != cal.fingerprint():
        raise ConfigError(
            f"--resume {show_path(folder)}: the calibration (its scenario, priors, targets, distance, population "
            f"or seed) changed since it started; only stop rules may change: start a new calibration in another "
            f"folder (or replace it with --overwrite)"
        )
    return state


def run_calibration(
    cal: Calibration,
    target: OutputDir,
    workers: int | None,
    client,
    progress: bool,
    command: list[str],
    publish: bool = False,
    in_stage: bool = False,
    notify: Callable[[str], None] = _note,
) -> dict:
    """Run (or continue) a calibration in the opened folder ``target`` and write its report. Returns a
    small report for the terminal. With ``in_stage`` (``reproduce``) everything is written in the hidden
    stage, which replaces the folder only once complete."""
    from rareshock.calibration import report as rp
    from rareshock.calibration.sampler import DaskBackend, LocalBackend, OrderedSampler
    from rareshock.calibration.smc import DB_NAME, run_abc
    from rareshock.calibration.stats import TargetArrays

    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    dest = rp.check_publishable(cal) if publish else None
    resumed = target.state == "resume"
    if resumed:
        folder = target.path
        state = _resume_state(cal, folder)
    else:
        folder = target.stage()
        state = {
            "fingerprint": cal.fingerprint(),
            "calibration": cal.settings.name,
            "generations": {},
            "sessions": [],
            "finished": False,
        }
        _write_state(folder, state)
        if not in_stage:
            target.commit()
            folder = target.path
    for note in target.notes:
        notify(note)
    backend = DaskBackend(client) if client is not None else LocalBackend(workers or os.cpu_count() or 1)
    sampler = OrderedSampler(cal.settings.seed, backend, progress=progress, notify=notify)
    session = {
        "started_at": started.isoformat(timespec="seconds"),
        "workers": backend.workers,
        "scheduler": None if client is None else str(client.scheduler.address),
    }
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)

    def sampled(t: int, stats: dict) -> None:  # before pyabc stores the generation
        state["generations"][str(t)] = {k: stats[k] for k in ("evaluations", "failed", "simulations_run")}
        _write_state(folder, state)

    def finished(history, t: int) -> None:
        g = state["generations"][str(t)]
        pops = history.get_all_populations().set_index("t")
        eps = float(pops.loc[t, "epsilon"])
        say(
            f"generation {t}: epsilon {eps:.4g}, {cal.settings.population:,} accepted of {g['evaluations']:,} "
            f"evaluations ({cal.settings.population / g['evaluations']:.1%})"
            + (f", {g['failed']} failed" if g["failed"] else "")
            + f", {sampler.generation_stats[t]['seconds']:.1f} s"
        )

    sampler.on_sampled = sampled
    ok = False
    try:
        if state.get("finished") and state.get("stop_rules") == stop_rules(cal) and (folder / DB_NAME).exists():
            import pyabc

            from rareshock.calibration.smc import db_url, quiet_pyabc

            quiet_pyabc()
            history = pyabc.History(db_url(folder), _id=1)
            reason = state["stop_reason"]
            notify(f"{cal.settings.name}: already finished ({reason}); regenerating its report")
        else:
            state["finished"] = False
            _write_state(folder, state)
            history, reason = run_abc(cal, folder, sampler, resume=resumed, on_generation=finished)
            state.update(finished=True, stop_reason=reason, stop_rules=stop_rules(cal))
        if not history.n_populations:
            raise ConfigError(f"{cal.settings.name}: no generation finished; nothing to report")
        post = rp.particles_frame(cal, history, int(history.max_t))
        hist = rp.history_frame(history, state["generations"])
        ident = rp.identifiability(cal, post)
        jobs = rp.predictive_jobs(cal, post)
        arrays = TargetArrays.of(cal)
        n = len(jobs)
        stats = backend.map(rp.predictive_one, [cal.base] * n, [j[3] for j in jobs], [j[2] for j in jobs], [arrays] * n)
        draws, pred = rp.predictive_frames(cal, jobs, stats)
        ok = True
    finally:
        backend.close(kill=not ok)
    session.update(
        seconds=round(time.perf_counter() - t0, 3),
        simulations_run=sampler.simulations_run,
        generations_run=sorted(int(t) for t in sampler.generation_stats),
    )
    state["sessions"].append(session)
    _write_state(folder, state)
    rp.write_figures(cal, post, hist, draws, folder / "figures")
    atomic_write_bytes(folder / "posterior.parquet", parquet_bytes(post))
    atomic_write_text(folder / "history.csv", hist.to_csv(index=False, float_format="%.12g"))
    atomic_write_text(folder / "identifiability.csv", ident.to_csv(index=False, float_format="%.12g"))
    atomic_write_text(folder / "identifiability.md", rp.identifiability_md(cal, ident, post))
    atomic_write_bytes(folder / "predictive.parquet", parquet_bytes(draws))
    atomic_write_text(folder / "predictive.csv", pred.to_csv(index=False, float_format="%.12g"))
    meta = rp.posterior_meta(cal, hist, reason)
    posterior_file = rp.posterior_bytes(post, meta)
    manifest = _manifest(cal, state, hist, reason, started, time.perf_counter() - t0, command, resumed, session)
    manifest["posterior_sha256"] = _sha256(parquet_bytes(post))
    manifest["published"] = None if dest is None else str(dest)
    atomic_write_text(folder / "manifest.json", to_json(manifest))
    if in_stage:
        target.commit()
    if dest is not None:
        atomic_write_bytes(dest, posterior_file)
    return {
        "name": cal.settings.name,
        "generations": len(hist),
        "evaluations": int(hist["evaluations"].sum()),
        "epsilon": float(hist["epsilon"].iloc[-1]),
        "reason": reason,
        "seconds": session["seconds"],
        "simulations_run": sampler.simulations_run,
        "identifiability": ident,
        "predictive": pred,
        "published": dest,
    }


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _manifest(cal, state, hist, reason, started, seconds, command, resumed, session) -> dict:
    from rareshock.outputs import build_manifest, package_versions

    s = cal.settings
    manifest = build_manifest(cal.base, s.seed, started, seconds, command)
    manifest["packages"].update(package_versions(("pyabc", "sqlalchemy")))
    manifest.update(
        {
            "kind": "calibration",
            "calibration": cal.config.model_dump(mode="json", by_alias=True),
            "calibration_file": str(cal.path),
            "calibration_fingerprint": cal.fingerprint(),
            "generations": int(len(hist)),
            "evaluations": int(hist["evaluations"].sum()),
            "epsilon_final": float(hist["epsilon"].iloc[-1]),
            "stop_reason": reason,
            "seeds": "generation t, evaluation i: proposal from NumPy's global generator seeded with "
            "SeedSequence(seed, spawn_key=(t + 1, i, 1)).generate_state(8); model seed "
            "SeedSequence(seed, spawn_key=(t + 1, i)).generate_state(1, uint64) >> 1 (in posterior.parquet); "
            "posterior predictive draw d: systematic resampling with SeedSequence(seed, spawn_key=(1000001,)), "
            "model seed SeedSequence(seed, spawn_key=(1000000, d))",
            "execution": {
                "resumed": resumed,
                "this_session": session,
                "sessions": state["sessions"],
                "seconds_all_sessions": round(sum(x.get("seconds", 0.0) for x in state["sessions"]), 3),
                "simulations_run_all_sessions": int(sum(x.get("simulations_run", 0) for x in state["sessions"])),
            },
        }
    )
    return manifest


def summary_lines(report: dict, out: str) -> list[str]:
    lines = [
        f"{report['name']}: {report['generations']} generations, {report['evaluations']:,} evaluations, "
        f"final epsilon {report['epsilon']:.4g} ({report['reason']}); {report['seconds']:.1f} s -> {out}"
    ]
    for r in report["identifiability"].itertuples(index=False):
        lines.append(
            f"  {r.parameter}: {r.posterior_mean:.4g} [{r.posterior_q05:.4g}-{r.posterior_q95:.4g}] "
            f"(prior {r.prior_q05:.4g}-{r.prior_q95:.4g}): {r.verdict}"
        )
    for r in report["predictive"].itertuples(index=False):
        if not np.isnan(r.share_inside):
            lines.append(f"  target {r.target}: {r.share_inside:.0%} of posterior draws inside")
    if report["published"] is not None:
        lines.append(f"  published: {report['published']}")
    return lines
