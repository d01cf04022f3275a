"""Fault injection: a sweep survives its workers, its own death, Ctrl-C, SIGTERM, a full disk and a second
writer. Real signals go to real processes; each case ends with every run exactly once and numbers equal
to an uninterrupted sweep's.

The interrupted sweeps run as `python -m rareshock.cli` subprocesses with ``tests/inject`` on PYTHONPATH,
which slows each run a little (``run_delay``) so there is time to interrupt a sweep half-way, and can make
part writes fail with ENOSPC where no small tmpfs can be mounted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest

from rareshock.cli import main
from tests.conftest import ROOT, SHOCK

INJECT = Path(__file__).parent / "inject"
BATCHES = 10
SWEEP = f"""
[sweep]
name = "faults"
scenario = "{SHOCK}"
method = "lhs"
samples = {BATCHES}
replications = 2
seed = 5
batch_size = 2
overrides = ["scenario.end=2025-04-30"]
timeseries = "monthly"

[[parameters]]
path = "automakers.US.buffer_days_mean"
low = 10.0
high = 40.0

[[parameters]]
path = "licensing.cn.reviewers"
low = 5
high = 50
integer = true
"""


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "faults.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def reference(sweep_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs.parquet and timeseries.parquet of the same sweep, uninterrupted."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    assert main(["sweep", str(sweep_file), "--workers", "2", "--out", str(out), "--no-progress"]) == 0
    return read(out)


def read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.read_parquet(out / "runs.parquet").drop(columns="batch").sort_values("run_id").reset_index(drop=True)
    series = pd.read_parquet(out / "timeseries.parquet").sort_values(["run_id", "date"]).reset_index(drop=True)
    return runs, series


def assert_same_as_reference(out: Path, reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    runs, series = read(out)
    assert runs["run_id"].tolist() == list(range(2 * BATCHES))  # every run once
    assert (runs["status"] == "ok").all()
    pd.testing.assert_frame_equal(runs, reference[0], check_exact=True)
    pd.testing.assert_frame_equal(series, reference[1], check_exact=True)
    assert (out / "manifest.json").is_file()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def start(sweep_file: Path, out: Path, *extra: str, inject: dict | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(INJECT), str(ROOT)]),
        "RARESHOCK_TEST_INJECT": json.dumps({"run_delay": 0.08, **(inject or {})}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rareshock.cli",
            "sweep",
            str(sweep_file),
            "--workers",
            "2",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a user's Ctrl-C: SIGINT at its default disposition, whatever the test runner inherited (a shell
        # starts background jobs with SIGINT ignored, and Python then keeps ignoring it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def parts(out: Path) -> list[str]:
    d = out / "runs.parquet"
    return sorted(p.name for p in d.glob("part-*.parquet")) if d.is_dir() else []


def workers(pid: int) -> list[psutil.Process]:
    """The pool workers of the sweep with main process ``pid`` (children of its forkserver)."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    servers = [k for k in kids if "forkserver" in " ".join(k.cmdline())]
    return [w for s in servers for w in s.children()]


def wait_until(cond: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"sweep ended before {what}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def half_way(proc: subprocess.Popen, out: Path) -> None:
    wait_until(lambda: len(parts(out)) >= 2 and len(workers(proc.pid)) == 2, proc, "two batches")
    assert len(parts(out)) < BATCHES


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if not ln.startswith("rareshock: note:")]
    assert len(lines) == 1 and lines[0].startswith("rareshock: error: ") and "Traceback" not in err, err
    return lines[0]


def resume(sweep_file: Path, out: Path) -> int:
    return main(["sweep", str(sweep_file), "--workers", "2", "--out", str(out), "--resume", "--no-progress"])


# --------------------------------------------------------------------------------------------------
def test_a_killed_workers_batches_are_run_again(sweep_file, reference, tmp_path):
    out = tmp_path / "s"
    proc = start(sweep_file, out)
    half_way(proc, out)
    victim = workers(proc.pid)[0]
    victim.send_signal(signal.SIGKILL)
    code, err = finish(proc)
    assert code == 0, err
    assert "a worker process died; running" in err
    assert not victim.is_running()
    assert_same_as_reference(out, reference)


def test_a_batch_that_keeps_killing_its_worker_stops_the_sweep(sweep_file, reference, tmp_path):
    """A batch whose worker dies every time (a crash, or out of memory) is tried three times; then the sweep
    stops with a message naming it instead of looping, and keeps every other batch."""
    out = tmp_path / "s"
    code, err = finish(start(sweep_file, out, inject={"kill_run_id": 9}))  # run 9 is in batch 4
    assert code == 1
    line = one_error_line(err)
    assert "batch 4 was running each time a worker process died (3 times" in line and "--resume" in line
    assert "part-000004.parquet" not in parts(out)
    assert resume(sweep_file, out) == 0  # the cause removed, it finishes
    assert_same_as_reference(out, reference)


def test_killing_the_main_process_takes_its_workers_and_resume_finishes(sweep_file, reference, tmp_path, capsys):
    out = tmp_path / "s"
    proc = start(sweep_file, out)
    half_way(proc, out)
    family = psutil.Process(proc.pid).children(recursive=True)  # forkserver, workers, tracker
    assert len(family) >= 3
    os.kill(proc.pid, signal.SIGKILL)  # the main process only
    proc.wait()
    gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, f"still running after the main process was killed: {alive}"
    written = parts(out)
    time.sleep(0.3)
    assert parts(out) == written  # nothing writes any more
    assert main(["sweep", str(sweep_file), "--out", str(out), "--no-progress"]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert resume(sweep_file, out) == 0
    assert_same_as_reference(out, reference)


def test_ctrl_c_stops_workers_and_resume_finishes(sweep_file, reference, tmp_path):
    """SIGINT to the main process (SIGTERM takes the same path, exit 143: test_outputs.py)."""
    out = tmp_path / "s"
    proc = start(sweep_file, out, inject={"run_delay": 0.3})  # slow runs: the signal lands while batches remain
    half_way(proc, out)
    family = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGINT)
    rc, err = finish(proc)
    assert rc == 130
    assert "--resume" in one_error_line(err)
    _, alive = psutil.wait_procs(family, timeout=5)
    assert not alive
    assert not (out / "manifest.json").exists()  # does not look finished
    assert resume(sweep_file, out) == 0
    assert_same_as_reference(out, reference)


@pytest.fixture
def disk(tmp_path: Path):
    """A small filesystem that a test can fill and free: a real 8 MiB tmpfs where mounting is allowed,
    else a folder whose part writes fail with ENOSPC (via tests/inject) while a flag file exists."""

    class Disk:
        def __init__(self, root: Path, real: bool):
            self.root, self.real = root, real
            self.flag = tmp_path / "disk_full"
            self.filler = root / "filler"

        @property
        def inject(self) -> dict:
            return {} if self.real else {"disk_full_flag": str(self.flag)}

        def fill(self) -> None:
            if not self.real:
                self.flag.touch()
                return
            with open(self.filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError:
                    pass

        def free(self) -> None:
            self.flag.unlink(missing_ok=True)
            self.filler.unlink(missing_ok=True)

    root = tmp_path / "disk"
    root.mkdir()
    real = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)], capture_output=True
        ).returncode
        == 0
    )
    yield Disk(root, real)
    if real:
        subprocess.run(["umount", "-l", str(root)], check=True)


def test_a_full_disk_stops_the_sweep_cleanly_and_resume_finishes(sweep_file, reference, disk):
    out = disk.root / "s"
    proc = start(sweep_file, out, inject=disk.inject)
    half_way(proc, out)
    disk.fill()
    code, err = finish(proc)
    assert code == 1
    line = one_error_line(err)
    assert "No space left on device" in line and "--resume" in line
    assert not (out / "manifest.json").exists()
    kept = parts(out)
    assert 2 <= len(kept) < BATCHES
    for name in kept:  # every kept part is whole
        assert len(pd.read_parquet(out / "runs.parquet" / name)) == 2
    disk.free()
    assert resume(sweep_file, out) == 0
    assert_same_as_reference(out, reference)


def test_two_sweeps_into_one_folder_one_refused_the_other_complete(sweep_file, reference, tmp_path):
    out = tmp_path / "s"
    first, second = start(sweep_file, out), start(sweep_file, out)
    results = sorted([finish(first), finish(second)], key=lambda r: r[0])
    assert [r[0] for r in results] == [0, 2], results
    assert "another rareshock process is writing there" in one_error_line(results[1][1])
    assert_same_as_reference(out, reference)


def test_a_start_interrupted_before_the_folder_existed_is_resumable(sweep_file, reference, tmp_path, capsys):
    """A kill while the sweep folder is being started leaves only its hidden, marked stage; both a fresh
    sweep and --resume then start cleanly."""
    from rareshock import outputs

    dead = subprocess.Popen(["true"])
    dead.wait()
    stage = tmp_path / f".s.tmp-{dead.pid}"
    (stage / "runs.parquet").mkdir(parents=True)
    outputs.write_marker(stage, "sweep")
    (stage / "design.parquet").write_bytes(b"PAR1")  # cut short
    out = tmp_path / "s"
    assert resume(sweep_file, out) == 0
    err = capsys.readouterr().err
    assert "removed .s.tmp-" in err and "starting it" in err
    assert_same_as_reference(out, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_a_sweep_from_before_the_marker_can_be_resumed(sweep_file, reference, tmp_path):
    """Sweep folders written before the .rareshock marker existed are resumed (and marked), never replaced."""
    import shutil

    from rareshock.outputs import MARKER, read_marker

    out = tmp_path / "s"
    assert main(["sweep", str(sweep_file), "--workers", "2", "--out", str(out), "--no-progress"]) == 0
    for name in (MARKER, "manifest.json", "runs.parquet/part-000003.parquet", "timeseries.parquet/part-000003.parquet"):
        (out / name).unlink()
    shutil.rmtree(out / "figures", ignore_errors=True)
    assert main(["sweep", str(sweep_file), "--out", str(out), "--overwrite", "--no-progress"]) == 2
    assert resume(sweep_file, out) == 0
    assert read_marker(out) == "sweep"
    assert_same_as_reference(out, reference)


def test_an_unreachable_scheduler_writes_nothing(sweep_file, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "deep" / "s"
    assert (
        main(["sweep", str(sweep_file), "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(out), "--no-progress"])
        == 2
    )
    assert "no Dask scheduler reachable" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
