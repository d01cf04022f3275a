"""What `rareshock reproduce --check` promises: the committed numbers come back on any machine of this kind.

Integers, booleans and strings must be equal; floats agree to a relative 1e-9 (RTOL) because CPUs differ in
the last bits of sums and dot products; `--exact` demands bit-identical floats (reruns on one machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rareshock.cli import main
from rareshock.reproduce import RTOL, Comparison
from tests.conftest import ROOT


def _ref_copy(tmp_path, name="baseline_2024"):
    ref = tmp_path / "results"
    shutil.copytree(ROOT / "results" / name, ref / name)
    return ref


def test_reproduce_check_passes_and_catches_a_changed_number(tmp_path, capsys):
    assert main(["reproduce", "--check", "--only", "baseline_2024", "--no-progress"]) == 0
    ref = _ref_copy(tmp_path)
    summary = ref / "baseline_2024" / "summary.json"
    data = json.loads(summary.read_text())
    data["us_auto_idle_plant_days"] += 1
    summary.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["reproduce", "--check", "--only", "baseline_2024", "--results", str(ref), "--no-progress"]) == 1
    assert "us_auto_idle_plant_days" in capsys.readouterr().out


def test_last_bit_differences_pass_but_fail_with_exact(tmp_path, capsys):
    """Against a reference made on this machine, --exact passes; a float moved by one ulp then passes the
    default check (and is reported) and fails --exact; a float moved by 1e-6 relative fails both."""
    ref = tmp_path / "results"
    assert main(["reproduce", "--only", "baseline_2024", "--results", str(ref), "--no-progress"]) == 0
    args = ["reproduce", "--check", "--only", "baseline_2024", "--results", str(ref), "--no-progress"]
    assert main(args + ["--exact"]) == 0
    path = ref / "baseline_2024" / "timeseries.parquet"
    df = pd.read_parquet(path)
    col = "price_ndfeb_ex_cn_usd_kg"
    df.loc[100, col] = np.nextafter(df.loc[100, col], np.inf)
    df.to_parquet(path, index=False)
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "equal within tolerance" in out and col in out
    assert main(args + ["--exact"]) == 1
    assert col in capsys.readouterr().out
    df.loc[100, col] *= 1 + 1e-6
    df.to_parquet(path, index=False)
    assert main(args) == 1


def test_integer_columns_compare_exactly():
    cmp = Comparison()
    a = pd.DataFrame({"n": np.array([1, 2, 3], dtype=np.int64), "x": [1.0, 2.0, 3.0]})
    b = a.copy()
    b.loc[2, "n"] = 4
    cmp.frame("t", a, b)
    assert cmp.diffs and "'n' row 2" in cmp.diffs[0]


def test_float_tolerance_is_relative_to_the_column_scale():
    """A near-zero value next to large ones in the same column may differ by RTOL of the column's scale."""
    cmp = Comparison()
    cmp.frame("t", pd.DataFrame({"x": [1e4, 0.0]}), pd.DataFrame({"x": [1e4, 1e-9]}))
    assert not cmp.diffs and 0 < cmp.worst <= RTOL
    cmp.frame("t", pd.DataFrame({"x": [1e4, 0.0]}), pd.DataFrame({"x": [1e4, 1e-3]}))
    assert cmp.diffs


def test_json_types_must_match():
    cmp = Comparison()
    cmp.json("s", {"a": 1, "b": True, "c": None, "d": 0.1}, {"a": 1.0, "b": 1, "c": 0.0, "d": 0.1})
    assert len(cmp.diffs) == 3


def test_exact_needs_check(capsys):
    assert main(["reproduce", "--exact", "--only", "baseline_2024", "--no-progress"]) == 2
    assert "--exact" in capsys.readouterr().err


def _other_cpu_env() -> dict[str, str]:
    """Environment that makes NumPy and OpenBLAS take other code paths than this CPU's best: no AVX-512
    dispatch in NumPy and a different OpenBLAS kernel, as on another x86-64 machine."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    env = dict(os.environ)
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(f for f in __cpu_dispatch__ if f != "X86_V3")
    env["OPENBLAS_CORETYPE"] = "Sandybridge"
    return env


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="x86-64 code paths")
def test_check_passes_on_an_emulated_other_cpu():
    """The committed reference results pass `--check` when NumPy and OpenBLAS are forced onto the code
    paths of an older CPU: what a user on another machine gets."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rareshock.cli",
            "reproduce",
            "--check",
            "--only",
            "baseline_2024",
            "april_2025_shock",
            "--no-progress",
        ],
        cwd=ROOT,
        env=_other_cpu_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DIFFERS" not in proc.stdout


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def test_committed_reference_results_come_from_a_clean_commit():
    """Every committed reference result is marked as rareshock's and its manifest records a clean commit
    (`dirty: false`) of this repository's history, so the code that made it can be checked out. (In a
    shallow clone that lacks the commit, only the record itself can be checked.)"""
    from rareshock.outputs import read_marker
    from rareshock.reproduce import OUTPUT_KIND, destination, experiments

    shallow = _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    exps = experiments()
    results = ROOT / "results"
    expected = {destination(results, e) for e in exps}
    found = {p for p in results.iterdir() if p.is_dir() and p.name not in ("calibration", "runs")}
    found |= (
        {p for p in (results / "calibration").iterdir() if p.is_dir()} if (results / "calibration").is_dir() else set()
    )
    assert expected == found, {p.relative_to(results).as_posix() for p in expected ^ found}
    for exp in exps:
        folder = destination(results, exp)
        assert read_marker(folder) == OUTPUT_KIND[exp.kind], exp.name
        git = json.loads((folder / "manifest.json").read_text())["git"]
        assert git["dirty"] is False, f"{exp.name}: regenerated from a dirty working tree"
        assert isinstance(git["commit"], str) and len(git["commit"]) == 40, exp.name
        known = _git("cat-file", "-e", f"{git['commit']}^{{commit}}").returncode == 0
        assert known or shallow, f"{exp.name}: commit {git['commit']} is not in this repository"
        if known:
            assert _git("merge-base", "--is-ancestor", git["commit"], "HEAD").returncode == 0, exp.name


def test_regenerating_replaces_reproduce_s_own_sweep_folder(tmp_path):
    """`reproduce` without --check replaces the reference folders it wrote itself (here a sweep), twice in
    a row; a folder it did not write stays refused."""
    from rareshock.reproduce import reproduce

    (tmp_path / "experiments" / "sweeps").mkdir(parents=True)
    (tmp_path / "experiments" / "sweeps" / "tiny.toml").write_text(
        f"""
[sweep]
name = "tiny"
scenario = "{ROOT / "experiments" / "scenarios" / "april_2025_shock.toml"}"
method = "grid"
seed = 3
reproduce = true
overrides = ["scenario.end=2025-02-01"]
outputs = ["us_auto_idle_plant_days"]

[[parameters]]
path = "licensing.cn.reviewers"
values = [10, 20]
"""
    )
    results = tmp_path / "results"
    results.mkdir()
    for _ in range(2):
        ok, lines = reproduce(False, results=results, workers=1, progress=False, root=tmp_path)
        assert ok and any("tiny: regenerated" in line for line in lines)
    first = pd.read_parquet(results / "tiny" / "runs.parquet")
    assert len(first) == 2
    (results / "tiny" / ".rareshock").unlink()  # no longer rareshock's: protected
    from rareshock.outputs import OutputDirError

    with pytest.raises(OutputDirError, match="not written by rareshock"):
        reproduce(False, results=results, workers=1, progress=False, root=tmp_path)


def test_the_committed_calibration_stays_resumable():
    """New config fields at their defaults are left out of fingerprints, so the committed april_2025
    calibration (made before worlds, destinations and record files existed) still matches its file and can be
    resumed or extended with more generations."""
    from rareshock.calibration.config import load_calibration

    cal = load_calibration(ROOT / "experiments" / "calibration" / "april_2025.toml")
    state = json.loads((ROOT / "results" / "calibration" / "april_2025" / "calibration_state.json").read_text())
    assert state["fingerprint"] == cal.fingerprint()


def test_committed_numbers_do_not_depend_on_where_the_checkout_is():
    """No summary of a reference result records an absolute path: `--check` compares summaries, and a path
    such as the posterior file's would differ in every other clone."""

    def strings(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from strings(v)
        elif isinstance(x, list):
            for v in x:
                yield from strings(v)
        elif isinstance(x, str):
            yield x

    for summary in (ROOT / "results").glob("*/summary.json"):
        absolute = [s for s in strings(json.loads(summary.read_text())) if s.startswith(("/", "\\")) or ":\\" in s]
        assert not absolute, (summary.parent.name, absolute)


def test_runs_tables_compare_whole_numbers_exactly_across_a_float_to_int_change():
    """A missing value against a number is a difference in whole-number columns too; a reference written
    with float counts (before typed runs.parquet) still compares value by value, exactly, and the type change
    and new columns are reported rather than hiding every number."""
    ints = lambda *v: pd.array(list(v), dtype="Int64")
    cmp = Comparison()
    cmp.frame("t", pd.DataFrame({"n": ints(1, None)}), pd.DataFrame({"n": ints(1, 2)}))
    assert cmp.diffs == ["t: column 'n' row 1: reference <NA>, regenerated 2"]
    cmp = Comparison()
    cmp.frame("t", pd.DataFrame({"n": ints(1, None)}), pd.DataFrame({"n": ints(1, None)}))
    assert cmp.diffs == []
    old = pd.DataFrame({"n": [3.0, np.nan], "flag": [0.0, 1.0], "x": [0.5, 0.25]})
    new = pd.DataFrame(
        {"n": ints(3, None), "flag": pd.array([False, True], dtype="boolean"), "x": [0.5, 0.25], "sweep": ["s", "s"]}
    )
    cmp = Comparison()
    cmp.frame("runs", old, new)
    assert len(cmp.diffs) == 2, cmp.diffs
    assert "only in the regenerated results: 'sweep'" in cmp.diffs[0]
    assert "2 columns changed type (values compared exactly)" in cmp.diffs[1] and "float64 -> Int64" in cmp.diffs[1]
    new.loc[0, "n"] = 4
    cmp = Comparison()
    cmp.frame("runs", old, new)
    assert "column 'n' row 0: reference 3.0, regenerated 4" in cmp.diffs[1]
