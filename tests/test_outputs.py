"""Outputs never destroy: what `--out` may replace, the lock, leftovers of killed writers, writability.

The data-deleting cases of issue 8 come first. Each asserts exit code 2, one error line, and that every
file that was there is still there with the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rareshock import outputs
from rareshock.cli import main
from rareshock.outputs import MARKER, OutputDir, OutputDirError, read_marker
from tests.conftest import ROOT, SHOCK

TINY = ["--set", "scenario.end=2025-01-10"]


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """These tests are about folders, not drawings: skip the figures (test_cli.py draws them)."""
    monkeypatch.setattr(outputs, "write_figures", lambda *a, **k: [])


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones too) with a hash of its bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = ""
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rareshock: error: ") and "Traceback" not in err, err
    return lines[0]


def run(*args: str) -> int:
    return main(["run", str(SHOCK), *TINY, *args])


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) finished sweep folder, to point other commands at."""
    base = tmp_path_factory.mktemp("sweep")
    cfg = base / "s.toml"
    cfg.write_text(
        f'[sweep]\nname = "s"\nscenario = "{SHOCK}"\nmethod = "grid"\nseed = 1\n'
        f'overrides = ["scenario.end=2025-01-10"]\n[[parameters]]\npath = "licensing.cn.reviewers"\n'
        f"values = [10, 20]\n"
    )
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(base / "done"), "--no-progress"]) == 0
    return base / "done"


# --------------------------------------------------------------------------------------------------
# The cases that deleted data on main
# --------------------------------------------------------------------------------------------------
def test_run_out_on_a_finished_sweep_keeps_the_sweep(finished_sweep, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    import shutil

    shutil.copytree(finished_sweep, sweep)
    before = snapshot(tmp_path)
    assert run("--out", str(sweep)) == 2
    assert "holds a rareshock sweep, not a run" in error_line(capsys)
    assert snapshot(tmp_path) == before
    # --overwrite replaces rareshock's own sweep folder (and only then)
    assert run("--out", str(sweep), "--overwrite") == 0
    assert read_marker(sweep) == "run" and not (sweep / "runs.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]


def test_run_out_on_a_project_folder_with_a_manifest_deletes_nothing(tmp_path, capsys):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "model.py").write_text("x = 1\n")
    (proj / "manifest.json").write_text("{}")
    (proj / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        assert run("--out", str(proj), *extra) == 2
        assert "not written by rareshock" in error_line(capsys)
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("out", ["", ".", "  "])
def test_out_empty_or_current_folder_is_refused(out, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("1,2\n")
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    assert run("--out", out) == 2
    error_line(capsys)
    assert snapshot(tmp_path) == before


def test_out_that_contains_the_current_folder_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert run("--out", "..") == 2
    assert "current folder" in error_line(capsys)


def test_files_added_to_an_earlier_run_are_never_replaced(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("--out", str(out)) == 0
    (out / "my_analysis.ipynb").write_text("{}")
    (out / "figures" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        assert run("--out", str(out), *extra) == 2
        line = error_line(capsys)
        assert "figures/notes.txt" in line and "my_analysis.ipynb" in line
        assert snapshot(tmp_path) == before


def test_an_earlier_run_is_replaced_with_a_note(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("--out", str(out), "--seed", "1") == 0
    capsys.readouterr()
    assert run("--out", str(out), "--seed", "2") == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert "replaced the earlier run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stage, old copy or lock left


def test_a_run_folder_without_the_marker_is_not_replaced(tmp_path, capsys):
    """Results written before the marker existed look like runs (manifest.json) but are not replaced."""
    out = tmp_path / "old"
    assert run("--out", str(out)) == 0
    (out / MARKER).unlink()
    before = snapshot(tmp_path)
    assert run("--out", str(out), "--overwrite") == 2
    assert "no .rareshock marker" in error_line(capsys)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------------
# Concurrent writers
# --------------------------------------------------------------------------------------------------
HOLD = """
import sys, time
from pathlib import Path
from rareshock.outputs import OutputDir
with OutputDir(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
"""


def _holder(tmp_path: Path, out: Path, kind: str) -> tuple[subprocess.Popen, Path]:
    """Another process holding the output folder's lock until the returned file is created."""
    release = tmp_path / "release"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out), kind, str(release)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc, release


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_second_writer_fails_at_once(command, finished_sweep, tmp_path, capsys):
    out = tmp_path / "out"
    proc, release = _holder(tmp_path, out, command)
    try:
        t0 = time.perf_counter()
        if command == "run":
            code = run("--out", str(out))
        else:
            code = main(
                [
                    "sweep",
                    str(ROOT / "experiments" / "sweeps" / "buffer_x_reviewers.toml"),
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
        assert code == 2 and time.perf_counter() - t0 < 10
        line = error_line(capsys)
        assert "another rareshock process is writing there" in line and f"pid {proc.pid}" in line
        assert not out.exists()
    finally:
        release.touch()
        proc.wait(timeout=30)
    assert run("--out", str(out)) == 0  # free again once released
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "release"]


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    out = tmp_path / "out"
    proc, _ = _holder(tmp_path, out, "run")
    proc.kill()
    proc.wait()
    assert run("--out", str(out)) == 0


# --------------------------------------------------------------------------------------------------
# What killed writers leave
# --------------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_runs_stage_is_cleaned_and_reported(tmp_path, capsys):
    out = tmp_path / "run"
    stage = tmp_path / f".run.tmp-{_dead_pid()}"
    stage.mkdir()
    outputs.write_marker(stage, "run")
    (stage / "summary.json").write_text("{")  # half-written
    assert run("--out", str(out)) == 0
    assert "removed .run.tmp-" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_legacy_unmarked_stage_of_a_dead_process_is_cleaned(tmp_path):
    stage = tmp_path / f".run.tmp-{_dead_pid()}"
    (stage / "figures").mkdir(parents=True)
    (stage / "summary.json").write_text("{}")
    assert run("--out", str(tmp_path / "run")) == 0
    assert not stage.exists()


def test_a_foreign_folder_named_like_a_stage_is_left_alone(tmp_path, capsys):
    odd = tmp_path / ".run.tmp-1"
    odd.mkdir()
    (odd / "thesis.tex").write_text("mine")
    assert run("--out", str(tmp_path / "run")) == 0
    assert "left alone" in capsys.readouterr().err
    assert (odd / "thesis.tex").read_text() == "mine"


def test_an_interrupted_replacement_puts_the_earlier_run_back(tmp_path, capsys):
    """Killed between moving the earlier run aside and renaming the new one into place: the earlier run is
    restored before anything else happens."""
    out = tmp_path / "run"
    assert run("--out", str(out), "--seed", "5") == 0
    old = tmp_path / f".run.old-{_dead_pid()}"
    out.rename(old)
    with OutputDir(out, "run") as target:
        assert target.state == "replace" and any("restored" in n for n in target.notes)
        assert json.loads((out / "manifest.json").read_text())["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --------------------------------------------------------------------------------------------------
# Writability and paths, checked before the simulation
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if the model runs: output problems must be found before it."""
    import rareshock.simulation

    def refuse(*a, **k):
        raise AssertionError("the simulation ran before the output folder was checked")

    monkeypatch.setattr(rareshock.simulation, "run_scenario", refuse)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A folder that cannot be written: a read-only tmpfs where mounting is allowed (root), else a folder
    without write permission (non-root), else one whose writes fail with EROFS."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted and os.geteuid() != 0:
        ro.chmod(0o555)
    elif not mounted:
        real_open, real_mkdir = os.open, os.mkdir

        def guard(fn):
            def wrapped(path, *a, **k):
                if os.fspath(path).startswith(str(ro) + os.sep):
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
                return fn(path, *a, **k)

            return wrapped

        monkeypatch.setattr(os, "open", guard(real_open))
        monkeypatch.setattr(os, "mkdir", guard(real_mkdir))
    yield ro
    if mounted:
        subprocess.run(["umount", str(ro)], check=True)
    else:
        ro.chmod(0o755)


@pytest.mark.parametrize("sub", ["x", "x/y/z"])
def test_read_only_filesystem_is_found_before_the_simulation(sub, read_only_dir, no_simulation, capsys):
    assert run("--out", str(read_only_dir / sub)) == 2
    line = error_line(capsys)
    assert "cannot" in line and ("Read-only" in line or "Permission denied" in line)


def test_read_only_sweep_folder_is_refused_before_anything_runs(read_only_dir, capsys):
    sweep = ROOT / "experiments" / "sweeps" / "buffer_x_reviewers.toml"
    assert main(["sweep", str(sweep), "--out", str(read_only_dir / "s"), "--no-progress"]) == 2
    error_line(capsys)


def _file(t: Path) -> Path:
    (t / "f").write_text("x")
    return t / "f"


def _link(t: Path) -> Path:
    (t / "real").mkdir()
    (t / "link").symlink_to(t / "real")
    return t / "link"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda t: _file(t) / "sub", "is a file, not a folder"),
        (lambda t: _file(t), "exists and is a file"),
        (lambda t: t / ("n" * 300), "255"),
        (lambda t: t.joinpath(*["d" * 200] * 25), "bytes long"),
        (lambda t: t / ("n" * 240), "at most 200"),
        (_link, "symbolic link"),
        (lambda t: str(t / "a\x00b"), "NUL"),
    ],
)
def test_bad_paths_give_one_short_line(make, expected, tmp_path, no_simulation, capsys):
    out = make(tmp_path)
    before = snapshot(tmp_path)
    assert run("--out", str(out)) == 2
    line = error_line(capsys)
    assert expected in line and len(line) < 300, line
    assert snapshot(tmp_path) == before


def test_a_full_disk_while_writing_leaves_nothing_and_keeps_the_earlier_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "deep" / "run"
    real = outputs._write_synced

    def full(path, data):
        if path.name == "timeseries.parquet":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(outputs, "_write_synced", full)
    assert run("--out", str(out)) == 1
    assert "No space left on device" in error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # not even the parent folder it created
    monkeypatch.setattr(outputs, "_write_synced", real)
    assert run("--out", str(out), "--seed", "1") == 0
    monkeypatch.setattr(outputs, "_write_synced", full)
    assert run("--out", str(out), "--seed", "2") == 1
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]


def test_sigterm_during_a_run_leaves_nothing(tmp_path, monkeypatch, capsys):
    """SIGTERM is handled like Ctrl-C: exit 143, the stage, lock and created parents removed."""
    import signal

    import rareshock.simulation

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(rareshock.simulation, "run_scenario", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert run("--out", str(tmp_path / "a" / "run")) == 143
    assert error_line(capsys) == "rareshock: error: terminated"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


def test_output_dir_api_refuses_and_creates_nothing(tmp_path):
    target = OutputDir(tmp_path / "a" / "b" / "c", "run")
    target.open()
    assert (tmp_path / "a" / "b").is_dir()
    target.close(ok=False)  # refused/failed later: nothing left
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        OutputDir(tmp_path, "notakind")
    with pytest.raises(OutputDirError, match="empty path"):
        OutputDir("", "run").open()
