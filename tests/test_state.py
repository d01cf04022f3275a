"""Branching from a state (``rareshock.state``, ``run --until/--save-state/--from-state``): a state saved at any
date and continued gives byte-identical results to an unbroken run; a different future replaces the events
after the date and keeps the trunk's reactions; bad state files and configs that do not match are exit 2
with one line and nothing written."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rareshock.cli import main
from rareshock.model.config import load_scenario
from rareshock.simulation import run_model, summarise
from rareshock.state import (
    MAGIC,
    StateError,
    branch,
    check_continuation,
    dumps_model,
    load_state,
    loads_model,
    run_until,
    save_state,
    step_to_end,
)

ROOT = Path(__file__).resolve().parents[1]
SHOCK = ROOT / "experiments" / "scenarios" / "april_2025_shock.toml"
SHORT = ("scenario.end=2025-07-31",)
SEED = 11


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rareshock: error: ")
    return lines[0]


def _fork(cfg, seed, date, new=None):
    """Run ``cfg`` through ``date``, pickle and unpickle it, continue it as ``new`` (default ``cfg``)."""
    model = loads_model(dumps_model(run_until(cfg, seed, date)))
    branch(model, new or cfg)
    step_to_end(model)
    return model


def _same(a, b) -> None:
    assert a.records.data.shape == b.records.data.shape
    assert a.records.data.tobytes() == b.records.data.tobytes()
    assert json.dumps(summarise(a), sort_keys=True) == json.dumps(summarise(b), sort_keys=True)


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def short():
    cfg = load_scenario(SHOCK, list(SHORT))
    return cfg, run_model(cfg, SEED)


# the first day, a day with an event (the 4 April controls), the day before a month start (the next
# step runs investment and diplomacy), a month start itself, and the day before the end
@pytest.mark.parametrize("date", ["2025-01-01", "2025-04-04", "2025-05-31", "2025-06-01", "2025-07-30"])
def test_a_state_continued_equals_the_unbroken_run(short, date):
    cfg, full = short
    _same(_fork(cfg, SEED, dt.date.fromisoformat(date)), full)


def test_views_stay_views_after_loading(short):
    cfg, _ = short
    model = loads_model(dumps_model(run_until(cfg, SEED, dt.date(2025, 2, 1))))
    net = model.producers.net
    assert np.shares_memory(net.stock_f, net.stock)
    net.stock_f[0] += 1.0
    assert net.stock.ravel()[0] == net.stock_f[0]
    assert model.records.row is model.plants.row  # one row shared by every population
    import pickle

    plain = pickle.loads(pickle.dumps(run_until(cfg, SEED, dt.date(2025, 2, 1))))
    assert not np.shares_memory(plain.producers.net.stock_f, plain.producers.net.stock)  # why _Pickler exists


def test_a_posterior_draw_continued_equals_its_unbroken_run():
    from rareshock.calibration.posterior import draw_seed, load_posterior
    from rareshock.sweeps.spec import scenario_for

    post = load_posterior("synthetic_recovery")
    (_, values), (_, other) = post.draws(2, 5)
    base = load_scenario(SHOCK, list(SHORT)).model_dump(mode="json")
    cfg = scenario_for(base, values)
    seed = draw_seed(5, 0)
    _same(_fork(cfg, seed, dt.date(2025, 5, 10)), run_model(cfg, seed))
    # a draw with other parameter values cannot continue it
    header = {"date": "2025-05-10", "seed": seed, "config": cfg.model_dump(mode="json")}
    if values != other:
        with pytest.raises(StateError, match="differs from the state's up to 2025-05-10"):
            check_continuation(header, scenario_for(base, other), None)


TRUNK = """
[scenario]
name = "trunk"
extends = "{shock}"
end = 2025-08-31
seed = 3

[policy]
retaliation_lag_days = 80
[[policy.cn_retaliation]]
kind = "cn_licensing_stance"
p_approve_civil = 0.5
source = "test: China answers the April US chip rule 80 days later (2025-06-28)"

[[events]]
date = 2025-07-01
kind = "cn_lift_controls"
items = ["sm_oxide", "smco"]
"""

FUTURE = """
[scenario]
name = "future"
extends = "{trunk}"
end = 2025-10-31

[[events]]
date = 2025-06-20
kind = "cn_hire_reviewers"
reviewers = 40
"""


def test_a_different_future_replaces_later_events_and_keeps_scheduled_reactions(tmp_path):
    trunk_file = _write(tmp_path, "trunk.toml", TRUNK.format(shock=SHOCK))
    trunk = load_scenario(trunk_file)
    # the future drops the trunk's 1 July lift (events after the date are replaced) and adds a hire
    text = FUTURE.format(trunk=trunk_file)
    future = load_scenario(_write(tmp_path, "future.toml", text))
    future = future.model_copy(update={"events": [e for e in future.events if e.kind != "cn_lift_controls"]})
    date = dt.date(2025, 6, 1)
    forked = _fork(trunk, 3, date, future)
    unbroken = run_model(future, 3)
    _same(forked, unbroken)
    assert forked.n_days == (dt.date(2025, 10, 31) - dt.date(2025, 1, 1)).days + 1
    applied = forked.governments.cn.applied
    assert (178, "cn_licensing_stance") in applied  # the reaction the trunk scheduled for 28 June
    assert (170, "cn_hire_reviewers") in applied and not any(k == "cn_lift_controls" for _, k in applied)
    # the test can fail: continuing the trunk's own future gives another run
    own = _fork(trunk, 3, date)
    assert own.records.data.shape != unbroken.records.data.shape or not np.array_equal(
        own.records.data, unbroken.records.data
    )


def test_what_must_match(tmp_path):
    cfg = load_scenario(SHOCK, list(SHORT))
    date = dt.date(2025, 5, 1)
    header = {"date": date.isoformat(), "seed": 9, "config": cfg.model_dump(mode="json")}
    ok = [
        ["scenario.name=other", "scenario.end=2026-03-31", "scenario.description=x", "scenario.reproduce=false"],
        ["scenario.end=2025-05-01"],  # an end on the date itself: nothing left to run, still valid
    ]
    for sets in ok:
        check_continuation(header, load_scenario(SHOCK, [*SHORT, *sets]), None)
    check_continuation(header, cfg, 9)
    bad = {
        "licensing.cn.reviewers=31": "licensing.cn.reviewers: state has 30, new config has 31",
        "scenario.start=2025-01-02": 'scenario.start: state has "2025-01-01"',
        "events.0.date=2025-04-05": "events dated on or before 2025-05-01 differ: events[0].date",
        "scenario.end=2025-04-30": "scenario.end: 2025-04-30 is before the state's date 2025-05-01",
        "policy.deal=false": "policy.deal: state has true, new config has false",
    }
    for override, message in bad.items():
        with pytest.raises(StateError) as err:
            check_continuation(header, load_scenario(SHOCK, [*SHORT, override]), None)
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(StateError, match="seed 9; give that seed or none"):
        check_continuation(header, cfg, 10)
    extra = tmp_path / "extra.toml"
    extra.write_text(
        f'[scenario]\nname = "x"\nextends = "{SHOCK}"\nend = 2025-07-31\n'
        '[[events]]\ndate = 2025-04-20\nkind = "cn_hire_reviewers"\nreviewers = 5\n'
    )
    with pytest.raises(StateError, match="the new config has 1 more \\(2025-04-20 cn_hire_reviewers first\\)"):
        check_continuation(header, load_scenario(extra), None)


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    base = tmp_path_factory.mktemp("state")
    state = base / "trunk.state"
    assert main(["run", str(SHOCK), *_sets(), "--seed", "4", "--until", "2025-04-20", "--save-state", str(state)]) == 0
    return state


def _sets(*extra: str) -> list[str]:
    out = []
    for s in (*SHORT, *extra):
        out += ["--set", s]
    return out


def test_cli_save_and_continue_gives_the_unbroken_files(saved, tmp_path, capsys):
    assert saved.read_bytes().startswith(MAGIC)
    header, _ = load_state(saved)
    assert header["date"] == "2025-04-20" and header["day"] == 109 and header["seed"] == 4 and header["format"] == 1
    assert main(["run", str(SHOCK), *_sets(), "--from-state", str(saved), "--out", str(tmp_path / "a")]) == 0
    assert main(["run", str(SHOCK), *_sets(), "--seed", "4", "--out", str(tmp_path / "b")]) == 0
    for f in ("summary.json", "timeseries.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["branch"]["date"] == "2025-04-20"
    assert manifest["branch"]["payload_sha256"] == header["payload_sha256"]


def test_cli_chained_states_and_a_replaced_state(saved, tmp_path, capsys):
    later = tmp_path / "later.state"
    args = ["run", str(SHOCK), *_sets(), "--from-state", str(saved), "--until", "2025-06-10", "--save-state"]
    assert main([*args, str(later)]) == 0
    data = later.read_bytes()
    later.write_bytes(data[: data.index(b"\n", len(MAGIC)) + 100])  # a cut state of rareshock's is replaced
    assert main([*args, str(later)]) == 0
    assert "replaced the earlier state" in capsys.readouterr().err
    assert load_state(later)[0]["date"] == "2025-06-10"
    assert main(["run", str(SHOCK), *_sets(), "--from-state", str(later), "--out", str(tmp_path / "a")]) == 0
    assert main(["run", str(SHOCK), *_sets(), "--seed", "4", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "timeseries.parquet").read_bytes() == (tmp_path / "b" / "timeseries.parquet").read_bytes()


def _refused(args: list[str], capsys, tmp_path: Path, expect: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert expect in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_cli_bad_state_files_exit_2(saved, tmp_path, capsys):
    run = ["run", str(SHOCK), *_sets(), "--out", str(tmp_path / "out"), "--from-state"]
    data = saved.read_bytes()
    cases = {
        "notes.txt": (b"just some notes\n", "not a rareshock state file"),
        "cut.state": (data[: len(data) // 2], "truncated or extended"),
        "flipped.state": (data[:-10] + bytes(b ^ 1 for b in data[-10:]), "damaged"),
        "old.state": (data.replace(b'"format":1', b'"format":0', 1), "state format 0, this rareshock reads format 1"),
        "other.state": (data.replace(b'"rareshock":"', b'"rareshock":"9', 1), "written by rareshock 9"),
        "empty.state": (b"", "not a rareshock state file"),
    }
    for name, (content, expect) in cases.items():
        (tmp_path / name).write_bytes(content)
        _refused([*run, str(tmp_path / name)], capsys, tmp_path, expect)
    _refused([*run, str(tmp_path / "missing.state")], capsys, tmp_path, "no such file")
    _refused([*run, str(tmp_path)], capsys, tmp_path, "is a folder")


def test_cli_mismatches_and_bad_arguments_exit_2(saved, tmp_path, capsys):
    base = ["run", str(SHOCK)]
    cases = [
        ([*_sets("licensing.cn.reviewers=99"), "--from-state", str(saved)], "licensing.cn.reviewers: state has 30"),
        ([*_sets(), "--seed", "5", "--from-state", str(saved)], "--seed: the state continues the random stream"),
        ([*_sets("scenario.end=2025-03-01"), "--from-state", str(saved)], "scenario.end: 2025-03-01 is before"),
        ([*_sets(), "--from-state", str(saved), "--until", "2025-04-20", "--save-state", "x"], "is not after"),
        ([*_sets(), "--until", "2026-01-01", "--save-state", "x"], "--until: 2026-01-01 is outside the scenario"),
        ([*_sets(), "--until", "2025-02-30", "--save-state", "x"], "expected a date YYYY-MM-DD"),
        ([*_sets(), "--until", "2025-02-01"], "--until DATE and --save-state FILE go together"),
        ([*_sets(), "--save-state", "x"], "--until DATE and --save-state FILE go together"),
        ([*_sets(), "--until", "2025-02-01", "--save-state", "x", "--out", "o"], "--out and --overwrite do not apply"),
        ([*_sets(), "--from-state", str(saved), "--posterior", "2"], "do not go with --posterior"),
        ([*_sets(), "--until", "2025-02-01", "--save-state", str(tmp_path / "no" / "x")], "does not exist"),
    ]
    for extra, expect in cases:
        _refused([*base, *extra], capsys, tmp_path, expect)


def test_save_state_never_overwrites_a_file_rareshock_did_not_write(saved, tmp_path, capsys):
    mine = tmp_path / "results.pkl"
    mine.write_bytes(b"my own pickle")
    args = ["run", str(SHOCK), *_sets(), "--until", "2025-02-01", "--save-state"]
    _refused([*args, str(mine)], capsys, tmp_path, "exists and is not a rareshock state file")
    assert mine.read_bytes() == b"my own pickle"
    link = tmp_path / "link.state"
    link.symlink_to(saved)
    _refused([*args, str(link)], capsys, tmp_path, "is a symbolic link")
    # the file changed into a foreign one while the model ran: still not replaced
    cfg = load_scenario(SHOCK, list(SHORT))
    model = run_until(cfg, 1, dt.date(2025, 1, 5))
    with pytest.raises(StateError, match="not a rareshock state file"):
        save_state(model, 1, mine)
    assert mine.read_bytes() == b"my own pickle"


def test_the_same_state_gives_the_same_file_in_two_processes(tmp_path):
    """Sets are written sorted: Python's string hashes (and so set order) differ between processes."""
    files = []
    for i, hashseed in enumerate(("1", "2")):
        files.append(tmp_path / f"s{i}.state")
        cmd = [sys.executable, "-m", "rareshock", "run", str(SHOCK), *_sets(), "--until", "2025-02-01"]
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run([*cmd, "--save-state", str(files[-1])], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert files[0].read_bytes() == files[1].read_bytes()


def test_the_record_continued_across_its_suspension_lapse_and_into_an_extension():
    """The record's suspensions lapse by themselves on 2026-11-10 (pending in the diplomacy's state, not
    on an agenda): states saved the day before and on the day continue bit-identically; the extension
    outlook forked from the record's end equals its unbroken run."""
    record = load_scenario(ROOT / "experiments" / "scenarios" / "record_2025_2026.toml")
    full = run_model(record, 8)
    for date in ("2026-11-09", "2026-11-10"):
        _same(_fork(record, 8, dt.date.fromisoformat(date)), full)
    extended = load_scenario(ROOT / "experiments" / "scenarios" / "outlook_extended.toml", ["scenario.end=2027-02-28"])
    forked = _fork(record, 8, dt.date(2026, 11, 29), extended)
    _same(forked, run_model(extended, 8))
    assert any("Announcement No. 70 suspended until 2027-11-10" in what for _, what in forked.governments.diplomacy.log)


def test_a_state_from_another_commit_is_continued_with_a_note(saved, tmp_path, capsys):
    data = saved.read_bytes()
    header, _ = load_state(saved)
    commit = header["git"]["commit"]
    assert commit and len(commit) == 40
    other = tmp_path / "other.state"
    other.write_bytes(data.replace(commit.encode(), b"0" * 40, 1))
    assert main(["run", str(SHOCK), *_sets(), "--from-state", str(other), "--out", str(tmp_path / "o")]) == 0
    assert "the state was written at commit 0000000000, this is" in capsys.readouterr().err


def test_empty_arrays_survive_a_state():
    """Populations may hold empty arrays (no quota-bound edges, no stockpile programme); the Python pickler
    memoizes every empty buffer as the one shared b"" and failed on the second. They must round-trip."""
    import numpy as np

    from rareshock.state import dumps_model, loads_model

    obj = {"a": np.zeros(0), "b": np.zeros(0, dtype=np.int64), "c": np.arange(3.0), "d": np.zeros((0, 4))}
    back = loads_model(dumps_model(obj))
    for k, v in obj.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and back[k].flags.writeable
    assert back["c"].tolist() == [0.0, 1.0, 2.0]
