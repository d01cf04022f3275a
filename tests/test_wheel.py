"""A wheel of rareshock installed outside the checkout runs the shipped experiments by name.

The wheel is built from a copy of the package's sources (so the build leaves nothing in the checkout) with
``pip wheel --no-deps`` (pip fetches setuptools from the index the lock uses), installed with ``--no-deps``
into a fresh venv whose dependencies come from this environment's site-packages (a ``.pth`` line), and run
from a folder outside the repository. The installed package must not import from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "rareshock", "model", "agents", "experiments")


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the venv's bin folder, a working folder outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, src / name)
    venv = base / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(venv)], base))
    bindir = venv / "bin"
    py = str(bindir / "python")
    _ok(_run([py, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(base / "dist"), "-q"], base))
    wheels = list((base / "dist").glob("rareshock-*.whl"))
    assert len(wheels) == 1, wheels
    _ok(_run([py, "-m", "pip", "install", "--no-deps", "-q", str(wheels[0])], base))
    purelib = _ok(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base)).strip()
    # the dependencies: this environment's site-packages, after the venv's own (its rareshock comes first)
    (Path(purelib) / "zz_rareshock_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = base / "work"
    work.mkdir()
    return bindir, work


@pytest.mark.slow
def test_wheel_runs_outside_the_checkout(installed: tuple[Path, Path]) -> None:
    bindir, work = installed
    rs = str(bindir / "rareshock")
    where = _ok(
        _run(
            [
                str(bindir / "python"),
                "-c",
                "import rareshock, rareshock.model, rareshock.agents; from rareshock.resources import experiments_dir;"
                "print(rareshock.__file__); print(rareshock.model.__file__); print(experiments_dir());"
                "print(rareshock.__version__)",
            ],
            work,
        )
    ).splitlines()
    venv = bindir.parent.resolve()
    for line in where[:3]:
        assert Path(line).resolve().is_relative_to(venv), where  # the installed copy, not the checkout
        assert not Path(line).resolve().is_relative_to(ROOT), where
    assert Path(where[2], "calibration", "april_2025.posterior.parquet").is_file()
    assert Path(where[2], "validation", "china_exports_2025.csv").is_file()

    assert _ok(_run([rs, "--version"], work)).strip() == f"rareshock {where[3]}"
    listing = _ok(_run([rs, "list"], work))
    for name in ("april_2025_shock", "buffer_x_reviewers", "policy_paths", "april_2025", "cn_customs_hold"):
        assert f"  {name}" in listing

    # the main experiment by name, cut to three months
    _ok(_run([rs, "run", "april_2025_shock", "--out", "shock", "--set", "scenario.end=2025-06-30"], work))
    summary = json.loads((work / "shock" / "summary.json").read_text())
    assert summary["cn_licences"]["submitted"] > 0
    assert (work / "shock" / "timeseries.parquet").is_file() and list((work / "shock" / "figures").glob("*.png"))

    # without --out: results/runs/<name>-seed<seed> under the current folder, never in site-packages
    _ok(_run([rs, "run", "baseline_2024", "--seed", "1", "--set", "scenario.end=2025-02-28"], work))
    assert (work / "results" / "runs" / "baseline_2024-seed1" / "summary.json").is_file()
    assert not list(Path(where[2]).parent.rglob("results"))

    # a tiny sweep by name: 20 grid cells, one replicate, two months
    sweep = [rs, "sweep", "buffer_x_reviewers", "--out", "sweep", "--workers", "1", "--no-progress"]
    sweep += ["--set", "sweep.replications=1"]
    sweep += ["--set", 'sweep.overrides=["scenario.end=2025-05-31", "licensing.cn.hire_per_month=0"]']
    assert "20 runs (0 failed)" in _ok(_run(sweep, work))
    assert (work / "sweep" / "runs.parquet").exists() and (work / "sweep" / "grid_means.csv").is_file()

    # an unknown name: exit 2, one line
    bad = _run([rs, "run", "april_2025_shok"], work)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "did you mean" in bad.stderr

    # a calibration by name is found, but --publish never writes into the installation
    pub = _run([rs, "calibrate", "april_2025", "--publish", "--out", "cal"], work)
    assert pub.returncode == 2 and "installed package" in pub.stderr and len(pub.stderr.splitlines()) == 1
    assert not (work / "cal").exists()

    # reproduce --check with the wheel's shipped configs against the committed reference results
    # (results/ is not package data: a copy of the checkout's baseline_2024 folder)
    ref = work / "reference"
    shutil.copytree(ROOT / "results" / "baseline_2024", ref / "baseline_2024")
    check = [rs, "reproduce", "--check", "--only", "baseline_2024", "--results", str(ref), "--workers", "1"]
    assert "baseline_2024: identical" in _ok(_run([*check, "--no-progress"], work))
