"""The ``rareshock`` command line.

``rareshock run CONFIG [--seed N] [--out DIR] [--overwrite] [--set path=value ...]`` runs one scenario and
writes ``summary.json``, ``timeseries.parquet``, ``figures/`` and ``manifest.json`` to DIR (atomically).
``rareshock run --from SWEEP_DIR RUN_ID`` reruns one row of a finished sweep and checks its numbers.
``rareshock sweep SWEEP [--workers N | --scheduler ADDRESS] [--out DIR] [--resume | --overwrite]`` runs a sweep.
``rareshock run CONFIG --posterior N [--calibration NAME] [--workers N]`` runs N draws of a published posterior.
``rareshock run CONFIG --until DATE --save-state FILE`` saves the model's state at the end of DATE;
``rareshock run CONFIG --from-state FILE [--out DIR]`` continues it, possibly into another future
(:mod:`rareshock.state`).
``rareshock calibrate CALIBRATION [--workers N | --scheduler ADDRESS] [--out DIR] [--resume | --overwrite]
[--publish]`` calibrates by ABC-SMC (docs/calibration.md).
``rareshock reproduce [--check] [--only NAME ...]`` regenerates (or checks) the reference results.
``rareshock explore [--port N] [--host H]`` serves the browser explorer (Mesa's SolaraViz; the ``explore``
extra) for one scenario at a time.
``rareshock list`` prints the shipped scenarios, sweeps, comparisons and calibrations (with their descriptions)
and the event kinds; ``rareshock --version`` prints the version.

CONFIG, SWEEP and CALIBRATION are the name of a shipped experiment (``april_2025_shock``; see ``rareshock
list``) or a path to a TOML file (anything with a ``/`` or ending in ``.toml``); :mod:`rareshock.resources`.

Exit codes: 0 success; 1 the run failed (an unexpected error, a write that failed, a sweep with more failed
runs than ``sweep.max_failed_share``, a calibration whose simulation failed);
2 bad input (command line, config, output folder); 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM). Every error is one line on stderr, ``rareshock: error: ...``, with no
traceback (set ``RARESHOCK_DEBUG=1`` to see one); after bad input nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

PROG = "rareshock"
SEED_MAX = 2**63 - 1
DEFAULT_RUNS_DIR = Path("results") / "runs"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
    return code


def _interrupted(err: KeyboardInterrupt, target: Any, what: str, kept: str) -> int:
    """Ctrl-C (130) or SIGTERM (143) during a resumable command: what is kept, and how to go on (``kept``),
    or that nothing was written if the folder was never committed."""
    code, how = (143, "terminated") if isinstance(err, Terminated) else (130, "interrupted")
    if not target.committed and target.state != "resume":
        return _fail(f"{how} before the {what} started; nothing was written", code)
    return _fail(f"{how}; {kept}", code)


def _notes(notes: list[str]) -> None:
    for note in notes:
        print(f"{PROG}: note: {_one_line(note)}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (workers stopped, unfinished output removed) but exit code 143."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    """argparse type: an integer in ``low..high``, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} in {low}..{high}, got {value}")
        return value

    return parse


_seed = _int_in(0, SEED_MAX, "a non-negative integer")
_workers = _int_in(1, 1024, "a positive integer")


# --------------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------------
def _add_set(p: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable ``--set PATH=VALUE`` override every config-reading command takes."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help=help_text)


def _add_where(p: argparse.ArgumentParser) -> None:
    """Where batches run: local worker processes or a Dask scheduler (one or the other)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_workers, metavar="N", help="local worker processes (default: all cores)")
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler, e.g. tcp://host:8786"
    )


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run one scenario and write its result files",
        description="Run one scenario and write summary.json, timeseries.parquet, figures/ "
        "and manifest.json to the output directory. With --until DATE --save-state FILE, stop at the end of "
        "DATE and save the model's state instead; with --from-state FILE, continue a saved state (possibly "
        "into another future: a config whose events after the state's date differ) to CONFIG's end.",
    )
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="scenario name (e.g. april_2025_shock, see 'rareshock list') or file (TOML), e.g. "
        "experiments/scenarios/april_2025_shock.toml; "
        "with --from, the RUN_ID of the sweep row to rerun",
    )
    p.add_argument(
        "--from",
        dest="from_dir",
        metavar="SWEEP_DIR",
        help="rerun one row of the finished sweep in SWEEP_DIR (CONFIG is then its run_id) and "
        "check that every metric equals the sweep's",
    )
    p.add_argument("--seed", type=_seed, metavar="N", help="random seed (default: scenario.seed from the config)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help=f"output directory (default: {DEFAULT_RUNS_DIR}/<scenario name>-seed<seed>); an earlier "
        f"run there is replaced, any other folder that is not empty is refused",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="also replace a rareshock sweep or comparison folder at --out (never a folder rareshock did not write)",
    )
    _add_set(p, "override a config field, e.g. --set licensing.cn.reviewers=120 (repeatable)")
    p.add_argument(
        "--posterior",
        type=_int_in(1, 100_000, "a number of draws"),
        metavar="N",
        help="run N draws of a published calibration posterior; summary.json holds medians and a "
        "posterior block with 10th/90th percentiles, timeseries.parquet per-day medians and bands, "
        "draws.parquet one row per draw (docs/calibration.md)",
    )
    p.add_argument(
        "--calibration",
        metavar="NAME",
        help="with --posterior: the calibration in experiments/calibration/ (its name), or a "
        ".posterior.parquet file (default: the calibration marked default = true)",
    )
    p.add_argument(
        "--workers", type=_workers, metavar="N", help="with --posterior: worker processes (default: all cores)"
    )
    p.add_argument(
        "--until",
        type=_date,
        metavar="DATE",
        help="with --save-state: stop at the end of DATE (YYYY-MM-DD, that day's step included) and write the "
        "model's state instead of the run files",
    )
    p.add_argument(
        "--save-state",
        metavar="FILE",
        help="with --until: the state file to write (a new file, or a state file rareshock wrote, which is "
        "replaced); a pickle: load only state files you made",
    )
    p.add_argument(
        "--from-state",
        metavar="FILE",
        help="continue the state in FILE to CONFIG's end and write the usual run files (the time series "
        "covers the whole period). CONFIG must equal the state's config up to its date (events dated after "
        "it may differ and replace the saved ones; scenario.end may differ); the seed is the state's "
        "(docs/reliability.md, 'Branching from a state')",
    )
    p.set_defaults(handler=_cmd_run)


def _date(text: str) -> dt.date:
    """argparse type: an ISO date, with a one-line message otherwise."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD that exists, got {text[:40]!r}") from None


def _fmt(value: Any) -> str:
    """A number or small dict for the headline."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "n/a"
    return str(value)


def headline(summary: dict, name: str, seed: int, out: Path) -> str:
    """A few lines summarising a run for the terminal."""
    lic = summary.get("cn_licences") or {}
    pending = lic.get("pending_end", lic.get("pending"))
    share = summary.get("defense_shortfall_share")
    lines = [
        f"{name} (seed {seed})",
        f"  first US auto shutdown: day {_fmt(summary.get('first_us_auto_shutdown_day'))} after the first control"
        if summary.get("first_us_auto_shutdown_day") is not None
        else "  first US auto shutdown: none",
        f"  US idle plant-days:     {_fmt(summary.get('us_auto_idle_plant_days'))}",
        f"  lost vehicles:          {_fmt(summary.get('lost_vehicles_by_region'))}",
        f"  defense shortfall:      {'n/a' if share is None else f'{100 * share:.1f}%'}",
        f"  CN licences:            submitted {_fmt(lic.get('submitted'))}, approved {_fmt(lic.get('approved'))}, "
        f"denied {_fmt(lic.get('denied'))}, pending {_fmt(pending)}, "
        f"mean wait {_fmt(lic.get('mean_wait_working_days'))} working days",
        f"  results:                {out}",
    ]
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.model.config import ConfigError, load_scenario
    from rareshock.outputs import OutputDir, OutputDirError, OutputWriteError, build_manifest, write_run_files
    from rareshock.simulation import run_scenario

    if args.posterior is None and (args.calibration is not None or args.workers is not None):
        return _fail("--calibration and --workers go with --posterior N", 2)
    branching = args.until is not None or args.save_state is not None or args.from_state is not None
    if branching:
        if args.from_dir is not None or args.posterior is not None:
            which = "--from" if args.from_dir is not None else "--posterior"
            return _fail(f"--until, --save-state and --from-state do not go with {which}", 2)
        if (args.until is None) != (args.save_state is None):
            return _fail("--until DATE and --save-state FILE go together (the date to stop at, the file to write)", 2)
        if args.save_state is not None and (args.out is not None or args.overwrite):
            return _fail("--save-state writes only the state file; --out and --overwrite do not apply", 2)
        return _cmd_run_branch(args, argv)
    if args.from_dir is not None:
        if args.posterior is not None:
            return _fail("--from: --posterior does not apply (the sweep row fixes parameters and seed)", 2)
        return _cmd_rerun(args, argv)
    if args.posterior is not None:
        return _cmd_run_posterior(args, argv)
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    try:
        cfg = load_scenario(args.config, args.overrides)
    except ConfigError as err:
        return _fail(str(err), 2)
    seed = cfg.scenario.seed if args.seed is None else args.seed
    out = args.out if args.out is not None else str(DEFAULT_RUNS_DIR / f"{cfg.scenario.name}-seed{seed}")
    target = OutputDir(out, "run", overwrite=args.overwrite)
    try:
        target.open()  # checked, writable and locked before the simulation
    except OutputDirError as err:
        return _fail(str(err), 2)
    ok = False
    try:
        try:
            result = run_scenario(cfg, seed=seed)
        except ConfigError as err:  # a semantic problem only the model can see
            return _fail(str(err), 2)
        manifest = build_manifest(result.config, result.seed, started_at, time.perf_counter() - t0, [PROG, *argv])
        try:
            write_run_files(result, target, manifest)
        except OutputDirError as err:
            return _fail(str(err), 2)
        except OutputWriteError as err:
            return _fail(str(err), 1)
        ok = True
    finally:
        target.close(ok=ok)
    _notes(target.notes)
    print(headline(result.summary, cfg.scenario.name, result.seed, Path(out)))
    return 0


def _cmd_run_branch(args: argparse.Namespace, argv: list[str]) -> int:
    """``--until DATE --save-state FILE`` and ``--from-state FILE`` (both: continue a state, save a later one)."""
    from rareshock.model.config import ConfigError, load_scenario
    from rareshock.outputs import (
        OutputDir,
        OutputDirError,
        OutputWriteError,
        build_manifest,
        show_path,
        write_run_files,
    )
    from rareshock.simulation import RunResult, summarise, timeseries
    from rareshock.state import branch, check_continuation, check_target, day_of, load_state, run_until, save_state

    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    header = model = None
    notes: list[str] = []
    try:
        cfg = load_scenario(args.config, args.overrides)
        if args.from_state is not None:
            header, model = load_state(args.from_state)
            check_continuation(header, cfg, args.seed)
            seed = int(header["seed"])
            notes += _commit_note(header)
        else:
            seed = cfg.scenario.seed if args.seed is None else args.seed
        if args.until is not None:
            day = day_of(cfg, args.until)
            if header is not None and day <= header["day"]:
                return _fail(f"--until: {args.until} is not after the state's date {header['date']}", 2)
            check_target(args.save_state)
    except ConfigError as err:
        return _fail(str(err), 2)
    if args.until is not None:
        try:
            if model is None:
                model = run_until(cfg, seed, args.until)
            else:
                branch(model, cfg)
                while model.day <= day:
                    model.step()
        except ConfigError as err:  # a semantic problem only the model can see
            return _fail(str(err), 2)
        try:
            path, size, replaced = save_state(model, seed, args.save_state)
        except ConfigError as err:  # the target changed while the model ran
            return _fail(str(err), 2)
        except OSError as err:
            return _fail(f"--save-state {show_path(args.save_state)}: could not write it: {err.strerror or err}", 1)
        if replaced:
            notes.append(f"replaced the earlier state in {show_path(args.save_state)}")
        _notes(notes)
        print(
            f"{cfg.scenario.name} (seed {seed}): state at the end of {args.until} (day {model.day - 1}) saved to "
            f"{show_path(args.save_state)} ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s; continue with: "
            f"{PROG} run CONFIG --from-state {show_path(args.save_state)}"
        )
        return 0
    out = args.out if args.out is not None else str(DEFAULT_RUNS_DIR / f"{cfg.scenario.name}-seed{seed}")
    target = OutputDir(out, "run", overwrite=args.overwrite)
    try:
        target.open()
    except OutputDirError as err:
        return _fail(str(err), 2)
    ok = False
    try:
        try:
            branch(model, cfg)
            while model.day < model.n_days:
                model.step()
        except ConfigError as err:
            return _fail(str(err), 2)
        result = RunResult(summarise(model), timeseries(model), cfg.model_dump(mode="json"), seed)
        manifest = build_manifest(result.config, seed, started_at, time.perf_counter() - t0, [PROG, *argv])
        manifest["branch"] = {
            "state": str(args.from_state),
            "date": header["date"],
            "payload_sha256": header["payload_sha256"],
            "trunk_fingerprint": header.get("fingerprint"),
            "trunk_scenario": header.get("scenario"),
            "trunk_git": header.get("git"),
        }
        try:
            write_run_files(result, target, manifest)
        except OutputDirError as err:
            return _fail(str(err), 2)
        except OutputWriteError as err:
            return _fail(str(err), 1)
        ok = True
    finally:
        target.close(ok=ok)
    _notes(notes + target.notes)
    print(headline(result.summary, f"{cfg.scenario.name} from the state of {header['date']}", seed, Path(out)))
    return 0


def _commit_note(header: dict) -> list[str]:
    """A note when the state was written by another commit of rareshock (same version): the continuation
    equals an unbroken run only if the model's code did not change in between."""
    from rareshock.outputs import git_provenance

    here, there = git_provenance().get("commit"), (header.get("git") or {}).get("commit")
    if here and there and here != there:
        return [
            f"the state was written at commit {there[:10]}, this is {here[:10]}: the continuation equals an "
            f"unbroken run only if the model's code is the same"
        ]
    return []


def _cmd_run_posterior(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.calibration.posterior import load_posterior, posterior_manifest, run_posterior, write_posterior_run
    from rareshock.model.config import ConfigError, load_scenario
    from rareshock.outputs import OutputDir, OutputDirError, OutputWriteError

    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    try:
        cfg = load_scenario(args.config, args.overrides)
        post = load_posterior(args.calibration)
    except ConfigError as err:
        return _fail(str(err), 2)
    seed = cfg.scenario.seed if args.seed is None else args.seed
    out = (
        args.out
        if args.out is not None
        else str(DEFAULT_RUNS_DIR / f"{cfg.scenario.name}-seed{seed}-{post.name}-{args.posterior}")
    )
    target = OutputDir(out, "run", overwrite=args.overwrite)
    try:
        target.open()
    except OutputDirError as err:
        return _fail(str(err), 2)
    ok = False
    try:
        try:
            result = run_posterior(cfg, post, args.posterior, seed, args.workers)
        except ConfigError as err:
            return _fail(str(err), 2)
        manifest = posterior_manifest(result, post, seed, started_at, t0, [PROG, *argv])
        try:
            write_posterior_run(result, target, manifest)
        except OutputDirError as err:
            return _fail(str(err), 2)
        except OutputWriteError as err:
            return _fail(str(err), 1)
        ok = True
    finally:
        target.close(ok=ok)
    _notes(target.notes)
    name = f"{cfg.scenario.name}: median of {args.posterior} draws of posterior {post.name}"
    print(headline(result["summary"], name, seed, Path(out)))
    return 0


def _cmd_rerun(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.model.config import ConfigError
    from rareshock.outputs import OutputDir, OutputDirError, OutputWriteError, build_manifest, write_run_files
    from rareshock.sweeps.runner import differences, rerun_row

    if args.overrides or args.seed is not None:
        return _fail("--from: --set and --seed do not apply (the sweep row fixes config and seed)", 2)
    if not re.fullmatch(r"\d{1,19}", args.config.strip()):
        return _fail(f"RUN_ID: expected a run_id (a whole number from 0), got {args.config[:40]!r}", 2)
    run_id = int(args.config)
    if not args.from_dir.strip() or "\x00" in args.from_dir:
        return _fail("--from: give the folder of a finished sweep", 2)
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    target = OutputDir(args.out, "run", overwrite=args.overwrite) if args.out is not None else None
    try:
        if target is not None:
            target.open()
    except OutputDirError as err:
        return _fail(str(err), 2)
    ok = False
    try:
        try:
            stored, fresh, result, metrics = rerun_row(Path(args.from_dir), run_id)
        except ConfigError as err:
            return _fail(str(err), 2)
        if stored.get("status") != "ok":
            print(f"run {run_id} failed in the sweep ({stored.get('error')}); rerun finished without error")
        diffs = differences(stored, fresh, metrics) if stored.get("status") == "ok" else []
        if target is not None:
            manifest = build_manifest(result.config, result.seed, started_at, time.perf_counter() - t0, [PROG, *argv])
            try:
                write_run_files(result, target, manifest)
            except OutputDirError as err:
                return _fail(str(err), 2)
            except OutputWriteError as err:
                return _fail(str(err), 1)
        ok = True
    finally:
        if target is not None:
            target.close(ok=ok)
    if target is not None:
        _notes(target.notes)
    name = Path(args.from_dir).name
    print(headline(result.summary, f"{name} run {run_id}", result.seed, Path(args.out or "-")))
    if diffs:
        for d in diffs:
            print(f"  differs: {d}")
        return _fail(f"run {run_id}: {len(diffs)} metrics differ from the sweep", 1)
    print(f"  reproduced: all {len(metrics)} metrics equal the sweep's row {run_id}")
    return 0


# --------------------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------------------
def _add_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a parameter sweep (grid, random, LHS, Sobol, Morris)",
        description="Run every (sample, replicate) of a sweep in batches, write runs.parquet, "
        "sensitivity results, scenario discovery and figures.",
    )
    p.add_argument(
        "sweep",
        metavar="SWEEP",
        help="sweep name (e.g. sobol_april_2025) or file (TOML), e.g. experiments/sweeps/sobol_april_2025.toml",
    )
    _add_where(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: results/sweeps/<sweep name>)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="finish an interrupted sweep in DIR")
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the rareshock sweep (or run) in DIR with a new sweep (never a folder rareshock did not write)",
    )
    _add_set(p, "override a field of the sweep file, e.g. --set sweep.replications=2")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.model.config import ConfigError
    from rareshock.outputs import OutputDir, OutputDirError, show_path
    from rareshock.sweeps.executor import SweepAborted, connect
    from rareshock.sweeps.runner import run_sweep
    from rareshock.sweeps.spec import load_sweep

    try:
        sweep = load_sweep(args.sweep, args.overrides)
    except ConfigError as err:
        return _fail(str(err), 2)
    out = args.out if args.out is not None else str(Path("results") / "sweeps" / sweep.settings.name)
    client = None
    target = OutputDir(out, "sweep", overwrite=args.overwrite, resume=args.resume)
    ok = False
    try:
        try:
            client = connect(args.scheduler) if args.scheduler else None
            target.open()
            report = run_sweep(sweep, target, args.workers, client, not args.no_progress, [PROG, *argv])
        except (ConfigError, OutputDirError) as err:
            return _fail(str(err), 2)
        except SweepAborted as err:
            return _fail(str(err), 1)
        except KeyboardInterrupt as err:
            return _interrupted(
                err,
                target,
                "sweep",
                f"finished batches are kept in {show_path(out)}; finish with: {PROG} sweep "
                f"{show_path(args.sweep)} --out {show_path(out)} --resume",
            )
        ok = True
    finally:
        target.close(ok=ok)
        if client is not None:
            client.close()
    print(
        f"{sweep.settings.name}: {report['runs']:,} runs ({report['failed']} failed) in {report['seconds']:.1f} s "
        f"-> {out}"
    )
    for line in report["analysis"].get("lines", []):
        print(f"  {line}")
    if report["failure"]:
        return _fail(report["failure"], 1)
    return 0


# --------------------------------------------------------------------------------------------------
# calibrate
# --------------------------------------------------------------------------------------------------
def _add_calibrate(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate",
        help="calibrate parameters by approximate Bayesian computation (ABC-SMC)",
        description="Run ABC-SMC (pyabc) for a calibration file: priors on scenario fields, targets on what a "
        "run produces. Writes the pyabc database, posterior.parquet, history.csv, identifiability.csv/.md, "
        "the posterior predictive check, figures/ and manifest.json (docs/calibration.md).",
    )
    p.add_argument(
        "calibration",
        metavar="CALIBRATION",
        help="calibration name (e.g. april_2025) or file (TOML), e.g. experiments/calibration/NAME.toml",
    )
    _add_where(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: results/calibration/<name>)")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted calibration in DIR (or one with more generations); on a finished one, "
        "regenerate its report",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the rareshock calibration (or run, sweep) in DIR (never a folder rareshock did not write)",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="also write the posterior to experiments/calibration/<name>.posterior.parquet (beside the "
        "calibration file), the file 'run --posterior' uses",
    )
    _add_set(p, "override a field of the calibration file, e.g. --set calibration.generations=10")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(handler=_cmd_calibrate)


def _cmd_calibrate(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.calibration.config import load_calibration
    from rareshock.model.config import ConfigError
    from rareshock.outputs import OutputDir, OutputDirError, OutputWriteError, show_path
    from rareshock.sweeps.executor import connect

    try:
        cal = load_calibration(args.calibration, args.overrides)
        if args.publish:
            from rareshock.calibration.report import check_publishable

            check_publishable(cal)
    except ConfigError as err:
        return _fail(str(err), 2)
    from rareshock.calibration.runner import run_calibration, summary_lines
    from rareshock.calibration.sampler import CalibrationAborted

    out = args.out if args.out is not None else str(Path("results") / "calibration" / cal.settings.name)
    client = None
    target = OutputDir(out, "calibration", overwrite=args.overwrite, resume=args.resume)
    ok = False
    try:
        try:
            client = connect(args.scheduler) if args.scheduler else None
            target.open()
            report = run_calibration(
                cal, target, args.workers, client, not args.no_progress, [PROG, *argv], publish=args.publish
            )
        except (ConfigError, OutputDirError) as err:
            return _fail(str(err), 2)
        except CalibrationAborted as err:
            return _fail(f"{err}; finished generations are kept in {show_path(out)}", 1)
        except OutputWriteError as err:
            return _fail(str(err), 1)
        except OSError as err:
            where = f" ({show_path(err.filename)})" if err.filename else ""
            return _fail(f"calibration {cal.settings.name}: a write failed: {err.strerror or err}{where}", 1)
        except KeyboardInterrupt as err:
            return _interrupted(
                err,
                target,
                "calibration",
                f"finished generations are kept in {show_path(out)}; continue with: {PROG} calibrate "
                f"{show_path(args.calibration)} --out {show_path(out)} --resume",
            )
        ok = True
    finally:
        target.close(ok=ok)
        if client is not None:
            client.close()
    print("\n".join(summary_lines(report, out)))
    return 0


# --------------------------------------------------------------------------------------------------
# reproduce
# --------------------------------------------------------------------------------------------------
def _add_reproduce(sub: Any) -> None:
    p = sub.add_parser(
        "reproduce",
        help="regenerate (or check) the reference results in results/",
        description="Regenerate every experiment marked reproduce = true into results/<name>/; "
        "with --check, compare the regenerated numbers with the committed ones.",
    )
    p.add_argument(
        "--check", action="store_true", help="compare with results/ instead of replacing it; exit 1 on any difference"
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="with --check: floats must be bit-identical (the "
        "promise on one machine; across CPUs floats agree to "
        "a relative 1e-9)",
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these experiments")
    p.add_argument(
        "--results",
        default=None,
        metavar="DIR",
        help="reference results folder (default: results/ of the repository; for an installed package, "
        "results/ of the current folder)",
    )
    p.add_argument("--workers", type=_workers, metavar="N", help="local worker processes for sweeps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.model.config import ConfigError
    from rareshock.outputs import OutputDirError, OutputWriteError
    from rareshock.reproduce import reproduce
    from rareshock.sweeps.executor import SweepAborted

    if args.exact and not args.check:
        return _fail("--exact: only with --check", 2)
    if args.results is not None and not args.results.strip():
        return _fail("--results: empty path; give the folder of the reference results", 2)
    try:
        ok, lines = reproduce(
            args.check,
            args.only,
            Path(args.results) if args.results else None,
            args.workers,
            not args.no_progress,
            exact=args.exact,
        )
    except (ConfigError, OutputDirError) as err:
        return _fail(str(err), 2)
    except (OutputWriteError, SweepAborted) as err:
        return _fail(str(err), 1)
    print("\n".join(lines))
    if not ok:
        return _fail("reproduce --check: regenerated results differ from the reference", 1)
    return 0


# --------------------------------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------------------------------
def _add_list(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list the shipped scenarios, sweeps, comparisons, calibrations and the event kinds",
        description="List the experiments shipped with rareshock (run any of them by name, e.g. "
        "'rareshock run april_2025_shock') with their one-line descriptions, and the kinds of [[events]] a "
        "scenario can use.",
    )
    p.set_defaults(handler=_cmd_list)


def _cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    from rareshock.resources import KINDS, catalogue, event_kinds

    lines = []
    for kind in KINDS:
        entries = catalogue(kind)
        lines.append(f"{kind}s ({len(entries)}):")
        width = max((len(name) for name, _, _ in entries), default=0)
        lines += [f"  {name:<{width}}  {desc}".rstrip() for name, _, desc in entries]
    kinds = event_kinds()
    lines.append(f"event kinds ({len(kinds)}):")
    lines += [f"  {k}" for k in kinds]
    print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------------------------------
# explore
# --------------------------------------------------------------------------------------------------
def _add_explore(sub: Any) -> None:
    p = sub.add_parser(
        "explore",
        help="open the browser explorer (Mesa SolaraViz) for one scenario",
        description="Serve the explorer (rareshock/explore.py) with solara: pick a scenario, change buffers, "
        "reviewers, approval odds, the deal and the programme budget, press Reset, and watch the timeline beside "
        "the scenario as shipped. Needs the explore extra: pip install 'rareshock[explore]'. Stop with Ctrl-C.",
    )
    p.add_argument("--port", type=_int_in(1, 65535, "a port number"), default=8765, help="port (default: 8765)")
    p.add_argument("--host", default="localhost", help="host to listen on (default: localhost)")
    p.set_defaults(handler=_cmd_explore)


def _cmd_explore(args: argparse.Namespace, argv: list[str]) -> int:
    import importlib.util
    import subprocess

    if any(importlib.util.find_spec(m) is None for m in ("solara", "altair")):
        return _fail("explore needs the explore extra (solara, mesa[viz]): pip install 'rareshock[explore]'", 2)
    print(f"{PROG} explore: serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    return subprocess.call(explore_command(args.host, args.port), env=explore_env())


def explore_command(host: str, port: int) -> list[str]:
    """``solara run`` on rareshock.explore, offline: production mode, no browser, no version check."""
    return [sys.executable, "-m", "solara", "run", "rareshock.explore", "--host", host, "--port", str(port)] + [
        "--production",
        "--no-open",
        "--no-check-version",
    ]


def explore_env() -> dict[str, str]:
    """The server's environment: solara's usage telemetry off unless the user set it, and a fixed server id
    (otherwise solara writes a random one to ~/.solara/server_user_id.txt)."""
    defaults = {"SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "SOLARA_TELEMETRY_SERVER_USER_ID": "rareshock-explore"}
    return {**defaults, **os.environ}


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``rareshock`` parser; each subcommand sets ``handler(args, argv) -> exit code``."""
    parser = _Parser(
        prog=PROG,
        description="Agent-based model of the 2025 US-China standoff over rare earths, magnets and semiconductors.",
    )
    from rareshock import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(sub)
    _add_sweep(sub)
    _add_calibrate(sub)
    _add_reproduce(sub)
    _add_list(sub)
    _add_explore(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
    previous = _sigterm_handler()
    try:
        return handler(args, argv)
    except Terminated:
        return _fail("terminated", 143)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as err:
        if os.environ.get("RARESHOCK_DEBUG") == "1":
            traceback.print_exc()
        return _fail(f"{type(err).__name__}: {str(err)[:1000]}", 1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_handler() -> Any:
    """Treat SIGTERM like Ctrl-C while a command runs (main thread only); returns the handler to restore."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


if __name__ == "__main__":
    raise SystemExit(main())
