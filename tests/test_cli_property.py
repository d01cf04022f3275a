"""Property: whatever configs, `--set` values and output paths a user throws at `rareshock run` and
`rareshock sweep`, the command exits 0 or 2, never shows a traceback, says what is wrong in one line, and
writes nothing when it refuses.

The one other outcome allowed is the documented one for sweeps: exit 1 with the one-line summary of a
sweep in which more runs failed than ``sweep.max_failed_share`` allows (its folder is written, on purpose).

Examples are derandomized (the same on every machine and CI run); set RARESHOCK_HYPOTHESIS_EXPLORE=1 to
draw new ones (and more of them).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rareshock import outputs
from rareshock.cli import main
from rareshock.outputs import read_marker
from tests.conftest import BASELINE, SHOCK

EXPLORE = os.environ.get("RARESHOCK_HYPOTHESIS_EXPLORE") == "1"


def examples(n: int) -> settings:
    return settings(
        max_examples=2 * n if EXPLORE else n,
        deadline=None,
        derandomize=not EXPLORE,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = ""
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = (
                "" if os.path.islink(p) else hashlib.sha256(Path(p).read_bytes()).hexdigest()
            )
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished run and a finished sweep, copied into each example's sandbox."""
    base = tmp_path_factory.mktemp("made")
    assert main(["run", str(SHOCK), "--set", "scenario.end=2025-01-05", "--out", str(base / "run")]) == 0
    cfg = base / "s.toml"
    cfg.write_text(
        f'[sweep]\nname = "s"\nscenario = "{SHOCK}"\nmethod = "grid"\n'
        f'overrides = ["scenario.end=2025-01-05"]\n[[parameters]]\npath = "licensing.cn.reviewers"\n'
        f"values = [10]\n"
    )
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(base / "sweep"), "--no-progress"]) == 0
    return {"run": base / "run", "sweep": base / "sweep"}


OUT_OK = ["new", "new/deep/er"]
OUT_BAD = [
    "",
    ".",
    "..",
    " ",
    "file",
    "file/sub",
    "foreign",
    "foreign_manifest",
    "run",
    "sweep",
    "n" * 230,
    "/".join(["d" * 200] * 25),
    "a\x00b",
    "link",
    "run/figures",
]


def mix(parts: dict[str, tuple[st.SearchStrategy, st.SearchStrategy | None]]) -> st.SearchStrategy[dict]:
    """Inputs with a valid value for every part except, in three examples of four, one or two parts that get
    an invalid one: so that examples reach every check (and some succeed) instead of all failing on the first."""
    keys = sorted(parts)
    breakable = [k for k in keys if parts[k][1] is not None]
    return st.builds(
        lambda ok, bad, broken: {k: bad[k] if k in broken else ok[k] for k in keys},
        st.fixed_dictionaries({k: parts[k][0] for k in keys}),
        st.fixed_dictionaries({k: parts[k][1] for k in breakable}),
        one(0, 1, 1, 2).flatmap(lambda n: st.sets(st.sampled_from(breakable), min_size=n, max_size=n)),
    )


def one(*values) -> st.SearchStrategy:
    return st.sampled_from(list(values))


def sandbox(made: dict[str, Path]) -> Path:
    box = Path(tempfile.mkdtemp(prefix="prop-"))
    (box / "work").mkdir()
    (box / "work" / "file").write_text("x")
    (box / "work" / "foreign").mkdir()
    (box / "work" / "foreign" / "notes.txt").write_text("mine")
    (box / "work" / "foreign_manifest").mkdir()
    (box / "work" / "foreign_manifest" / "manifest.json").write_text("{}")
    (box / "work" / "foreign_manifest" / "src").mkdir()
    shutil.copytree(made["run"], box / "work" / "run")
    shutil.copytree(made["sweep"], box / "work" / "sweep")
    (box / "work" / "link").symlink_to(box / "work" / "foreign")
    return box


def invoke(argv: list[str], cwd: Path) -> tuple[int, str]:
    err = io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        os.chdir(old)
    return code, err.getvalue()


def check(code: int, err: str, before: dict, box: Path, out: str, kind: str, failure_ok: bool = False) -> None:
    event(f"exit {code}")
    assert "Traceback" not in err, err
    if code == 0:
        assert read_marker(Path(box / "work" / out)) == kind and (box / "work" / out / "manifest.json").is_file()
        return
    lines = [ln for ln in err.splitlines() if ln.startswith("rareshock: error: ")]
    if code == 1 and failure_ok and len(lines) == 1 and "runs failed" in lines[0]:
        return
    assert code == 2, f"exit {code}: {err}"
    assert err.count("\n") == 1 and err.startswith("rareshock: error: "), err
    assert snapshot(box) == before, f"written after refusing: {err}"


# --------------------------------------------------------------------------------------------------
# rareshock run
# --------------------------------------------------------------------------------------------------
FIELDS = [
    "licensing.cn.reviewers",
    "licensing.cn.p_incomplete",
    "licensing.cn.prep_days_min",
    "prices.max_multiple",
    "prices.adjust_days",
    "automakers.US.buffer_days_mean",
    "automakers.US.bev_share",
    "shipping.air_freight",
    "shipping.sea_days.US",
    "policy.deal",
    "scenario.seed",
    "scenario.end",
    "scenario.extends",
    "scenario.name",
    "investment.year_shares",
    "investment.stages.mining.regions",
    "investment.stages.mining.capex",
    "other_demand.export_share.US",
    "events",
    "licensing.cn.nonsense",
    "nosuch.table",
    "automakers.US",
    "chips.bis.reviewers",
    "chips.firms.nvidia.kind",
    "licensing.cn.reviewers.deeper",
    "policy.reactions_from",
]
VALUES = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda x: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(x), repr(x))
    ),
    one(
        "true",
        "false",
        "yes",
        "''",
        '"x"',
        "2025-01-05",
        "2025-02-30",
        "1738281600",
        "[1, 2]",
        "{US=0.0}",
        "[]",
        "{}",
        "2025-01-05T00:00:00",
        "[[1]]",
        "0",
        "1",
        "0.5",
        "-3",
        "1e308",
        '"../x.toml"',
        '"designer"',
    ),
    st.text(max_size=12),
)
SCENARIO = mix(
    {
        "name": (one('"g"'), one('"bad name"', "5", "true", '""')),
        "start": (one("2025-01-01", '"2025-01-01"'), one("20250101", "2025-01-01T00:00:00", "2025-13-01")),
        "end": (one("2025-01-06", '"2025-01-06"'), one("2024-12-01", "1738281600")),
        "extends": (one(None, f'"{SHOCK}"'), one("5", '"missing.toml"', "[1]")),
        "extra": (
            one("", "[[events]]\ndate = 2025-01-03\nkind = 'marker'\nlabel = 'x'", "[licensing.cn]\nreviewers = 30"),
            one(
                "[prices]\nmax_multiple = true",
                "[licensing.cn]\nprep_days_min = 30",
                "[[events]]\nkind = 'nope'",
                "events = 3",
                "[automakers.US]\nvehicles_per_year = inf",
                "garbage = [",
                "[[events]]\ndate = 2025-01-03\nkind = 'deal'\n[[events.terms]]\nkind = 'cn_hire_reviewers'\n"
                "reviewers = 2\nextra = 1",
            ),
        ),
    }
).map(
    lambda p: "\n".join(
        ["[scenario]", f"name = {p['name']}", f"start = {p['start']}", f"end = {p['end']}"]
        + ([f"extends = {p['extends']}"] if p["extends"] else [])
        + [p["extra"]]
    )
)
RUN_INPUTS = mix(
    {
        "config": (
            st.one_of(one(str(SHOCK), str(BASELINE)), SCENARIO),
            st.one_of(one("missing.toml", "", "work", "a\x00b"), st.text(max_size=40)),
        ),
        "sets": (
            one([], ["licensing.cn.reviewers=30"], ["automakers.US.buffer_days_mean=12.5", "policy.deal=false"]),
            st.lists(
                st.one_of(
                    st.tuples(st.sampled_from(FIELDS), VALUES).map(lambda fv: f"{fv[0]}={fv[1]}"), st.text(max_size=20)
                ),
                min_size=1,
                max_size=2,
            ),
        ),
        "out": (one(*OUT_OK), one(*OUT_BAD)),
        "overwrite": (st.booleans(), None),
    }
)


@examples(30)
@given(inputs=RUN_INPUTS)
def test_run_exits_0_or_2_in_one_line_and_writes_nothing_when_refusing(made, inputs):
    box = sandbox(made)
    try:
        with pytest.MonkeyPatch.context() as mp:  # figures are not the point here (test_cli.py draws them)
            mp.setattr(outputs, "write_figures", lambda *a, **k: [])
            run_one_example(box, inputs)
    finally:
        shutil.rmtree(box, ignore_errors=True)


def run_one_example(box: Path, inputs: dict) -> None:
    config = inputs["config"]
    if config not in (str(SHOCK), str(BASELINE), "missing.toml", "", "work", "a\x00b"):
        (box / "work" / "scenario.toml").write_text(config)  # a generated scenario file
        config = "scenario.toml"
    argv = ["run", config, "--set", "scenario.end=2025-01-06"]
    for item in inputs["sets"]:
        argv += ["--set", item]
    argv += ["--out", inputs["out"]] + (["--overwrite"] if inputs["overwrite"] else [])
    before = snapshot(box)
    code, err = invoke(argv, box / "work")
    check(code, err, before, box, inputs["out"], "run")


# --------------------------------------------------------------------------------------------------
# rareshock sweep
# --------------------------------------------------------------------------------------------------
PARAM_OK = [
    ("licensing.cn.reviewers", "low = 5\nhigh = 30\ninteger = true\nlevels = 2"),
    ("policy.deal", "values = [true, false]"),
    ("automakers.US.buffer_days_mean", "low = 10.0\nhigh = 40.0\nlevels = 2"),
    ("automakers.US.bev_share", "values = [0.1, 0.3]"),
]
PARAM_BAD = [
    ("licensing.cn.reviewers", "low = 5\nhigh = 30"),
    ("policy.deal", "low = 0\nhigh = 1"),
    ("automakers.US.buffer_days_mean", "low = 40.0\nhigh = 10.0"),
    ("automakers.US.buffer_days_mean", "low = true\nhigh = 40.0"),
    ("licensing.cn.prep_days_min", "low = 0\nhigh = 30\ninteger = true"),
    ("licensing.cn.nosuch", "low = 0\nhigh = 1"),
    ("shipping.air_freight", 'values = [true, "no"]'),
    ("automakers.US.hev_share", "values = [0.1, 0.95]"),
    ("scenario.end", 'values = ["2025-01-07"]'),
    ("licensing.cn", "low = 1\nhigh = 2"),
    ("magnet_makers.cn_ndfeb_capacity_t_per_year", "values = [1000.0, 300000.0]"),
]
SWEEP_INPUTS = mix(
    {
        "method": (one('"grid"', '"lhs"', '"random"', '"sobol"', '"morris"'), one('"taguchi"', "5")),
        "samples": (one("1", "2"), one("0", "-1", "true")),
        "params": (
            st.lists(st.sampled_from(PARAM_OK), min_size=1, max_size=2, unique_by=lambda p: p[0]),
            st.lists(st.sampled_from(PARAM_OK + PARAM_BAD), min_size=0, max_size=2),
        ),
        "discovery": (
            one(None, 'outcome = "us_auto_idle_plant_days"\nabove = 0.0'),
            one('outcome = "nope"\nbelow = 1.0', 'outcome = "x"'),
        ),
        "override": (
            one("", ', "prices.max_multiple=3.0"'),
            one(', "licensing.cn.reviewers=true"', ', "nosuch=1"', ', "licensing.cn.prep_days_min=30"'),
        ),
        "outputs": (one(None, '["us_auto_idle_plant_days"]'), one('["nope"]', "[]", "5")),
        "timeseries": (one(None, '"weekly"'), one('"daily"')),
        "timeseries_columns": (one(None, '["auto_plants_idle_us"]'), one('["nope"]')),
        "max_failed_share": (one(None, "1.0", "0.0"), one("2.0", "true")),
        "replications": (one(None, "1", "2"), one("0", "true")),
        "batch_size": (one(None, "1", "3"), one("0")),
        "sets": (
            one([], ["sweep.samples=2"], ['sweep.method="grid"']),
            st.lists(
                one("sweep.seed=-1", "sweep.replications=true", "parameters=3", "sweep.nosuch=1", "sweep"),
                min_size=1,
                max_size=2,
            ),
        ),
        "out": (one(*OUT_OK), one(*OUT_BAD)),
        "again": (one([]), one(["--resume"], ["--overwrite"])),
    }
)
OPTIONS = ("outputs", "timeseries", "timeseries_columns", "max_failed_share", "replications", "batch_size")


def sweep_text(p: dict) -> str:
    lines = [
        "[sweep]",
        'name = "p"',
        f'scenario = "{SHOCK}"',
        f"method = {p['method']}",
        f"samples = {p['samples']}",
        f'overrides = ["scenario.end=2025-01-06"{p["override"]}]',
    ]
    lines += [f"{k} = {p[k]}" for k in OPTIONS if p[k] is not None]
    lines += [f'[[parameters]]\npath = "{path}"\n{spec}' for path, spec in p["params"]]
    if p["discovery"]:
        lines.append(f"[discovery]\n{p['discovery']}")
    return "\n".join(lines) + "\n"


@examples(40)
@given(inputs=SWEEP_INPUTS)
def test_sweep_exits_0_or_2_in_one_line_and_writes_nothing_when_refusing(made, inputs):
    box = sandbox(made)
    try:
        (box / "work" / "sweep.toml").write_text(sweep_text(inputs))
        argv = ["sweep", "sweep.toml", "--workers", "1", "--no-progress", "--out", inputs["out"], *inputs["again"]]
        for item in inputs["sets"]:
            argv += ["--set", item]
        before = snapshot(box)
        code, err = invoke(argv, box / "work")
        check(code, err, before, box, inputs["out"], "sweep", failure_ok=True)
    finally:
        shutil.rmtree(box, ignore_errors=True)
