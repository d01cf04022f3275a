"""Validation that means what it says: strict types, cross-field rules, sweep parameters over their whole
range, names checked against the metrics, and exit 2 with one line (naming the right field) for every user
error of issue 8."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rareshock.cli import main
from rareshock.model.config import ConfigError, load_scenario, validate
from tests.conftest import ROOT, SHOCK

SWEEPS = ROOT / "experiments" / "sweeps"


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rareshock: error: ") and "Traceback" not in err, err
    return lines[0]


def scenario_error(tmp_path: Path, overrides: list[str] = (), text: str | None = None) -> str:
    path = SHOCK
    if text is not None:
        path = tmp_path / "s.toml"
        path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path, list(overrides))
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------------------------------
# Strict types: no bool as a number, no number as a date, no inf or NaN, no float as a whole number
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, expected",
    [
        ("licensing.cn.reviewers=true", "licensing.cn.reviewers: expected a number, not true/false"),
        ("prices.max_multiple=true", "prices.max_multiple: expected a number, not true/false"),
        ("other_demand.export_share.US=true", "other_demand.export_share.US: expected a number, not true/false"),
        ("scenario.end=1738281600", "scenario.end: expected a date (YYYY-MM-DD)"),
        ('scenario.end="1738281600"', "scenario.end: expected a date (YYYY-MM-DD)"),
        ("scenario.end=2025-02-30", "scenario.end: expected a date"),
        ("scenario.end=2025-03-01T00:00:00", "not a date with a time"),
        ("prices.adjust_days=inf", "prices.adjust_days: Input should be a finite number"),
        ("automakers.US.vehicles_per_year=inf", "automakers.US.vehicles_per_year: Input should be a finite number"),
        ("licensing.cn.p_incomplete=nan", "licensing.cn.p_incomplete: Input should be a finite number"),
        ("licensing.cn.reviewers=15.0", "licensing.cn.reviewers: expected a whole number"),
        ('licensing.cn.reviewers="15"', "licensing.cn.reviewers: expected a whole number"),
        ("shipping.air_freight=1", "shipping.air_freight: expected true or false"),
        ("shipping.air_freight=yes", "shipping.air_freight: expected true or false"),
        ("scenario.extends=5", "scenario.extends: expected text"),
        ("policy.deal=5", "policy.deal: expected true or false"),
        ("investment.start=20260101", "investment.start: expected a date"),
    ],
)
def test_values_of_the_wrong_type_are_rejected(override, expected, tmp_path):
    assert expected in scenario_error(tmp_path, [override])


def test_configs_still_round_trip_through_json():
    """Sweeps and `run --from` validate configs again from their JSON dumps (dates as ISO strings)."""
    for name in ("april_2025_shock", "managed_derisking"):
        cfg = load_scenario(ROOT / "experiments" / "scenarios" / f"{name}.toml")
        assert validate(json.loads(json.dumps(cfg.model_dump(mode="json")))) == cfg


@pytest.mark.parametrize(
    "override, expected",
    [
        ("licensing.cn.prep_days_min=19", "prep_days_min (19) must not exceed prep_days_max (18)"),
        ("investment.year_shares=[0.5, 0.5]", "year_shares has 2 entries but years = 10"),
        ("investment.stages.mining.regions={US=0.0}", "investment.stages.mining.regions: give at least one region"),
    ],
)
def test_cross_field_rules_are_errors_not_clamps(override, expected, tmp_path):
    assert expected in scenario_error(tmp_path, [override])


# --------------------------------------------------------------------------------------------------
# The right field in every message
# --------------------------------------------------------------------------------------------------
DEAL = (
    SHOCK.read_text()
    + """
[[events]]
date = 2025-12-01
kind = "deal"
[[events.terms]]
kind = "cn_hire_reviewers"
reviewers = 3
{term_extra}
"""
)


@pytest.mark.parametrize(
    "override, text, expected",
    [
        (
            ["investment.stages.mining.capex=1"],
            None,
            "investment.stages.mining.capex: unknown field; did you mean 'capex_usd_per_tpa'? "
            "Allowed: capex_usd_per_tpa,",
        ),
        (
            [],
            DEAL.format(term_extra="reviewrs = 4"),
            "].terms[0].reviewrs: unknown field; did you mean 'reviewers'? "
            "Allowed: date, kind, note, reviewers, source",
        ),
        ([], DEAL.format(term_extra="") + "sorce = 'x'\n", "].sorce: unknown field; did you mean 'source'?"),
        (
            [],
            SHOCK.read_text() + "\n[[policy.cn_retaliation]]\nkind = 'cn_hire_reviewers'\nreviewers = 1\nfoo = 2\n",
            "policy.cn_retaliation[0].foo: unknown field. Allowed: date, kind, note, reviewers, source",
        ),
    ],
)
def test_unknown_keys_name_the_allowed_fields(override, text, expected, tmp_path):
    msg = scenario_error(tmp_path, override, text)
    assert expected in msg and "(none)" not in msg, msg


def test_extends_that_is_not_a_file_name_exits_2(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text("[scenario]\nname = 'x'\nstart = 2025-01-01\nend = 2025-01-10\nextends = 5\n")
    assert main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "scenario.extends: expected the file name" in one_line(capsys)
    p.write_text("events = 3\n[scenario]\nname = 'x'\nstart = 2025-01-01\nend = 2025-01-10\nextends = 'a.toml'\n")
    assert main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "events: expected an array of tables" in one_line(capsys)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["s.toml"]


# --------------------------------------------------------------------------------------------------
# Sweeps: parameters over their whole range and type, names against the metrics
# --------------------------------------------------------------------------------------------------
def sweep_toml(params: str, method: str = "lhs", extra: str = "", samples: int = 4) -> str:
    return (
        f'[sweep]\nname = "v"\nscenario = "{SHOCK}"\nmethod = "{method}"\nsamples = {samples}\n'
        f'overrides = ["scenario.end=2025-01-10"]\n{extra}\n{params}'
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            sweep_toml('[[parameters]]\npath = "licensing.cn.reviewers"\nlow = 5\nhigh = 50\n'),
            "parameters[0] (licensing.cn.reviewers): a whole-number field; add integer = true",
        ),
        (
            sweep_toml('[[parameters]]\npath = "policy.deal"\nlow = 0\nhigh = 1\n'),
            'parameters[0] (policy.deal): a true/false field; sweep it with method = "grid" and values = [true, false]',
        ),
        (
            sweep_toml('[[parameters]]\npath = "policy.deal"\nvalues = [0, 1]\n', method="grid"),
            "parameters[0] (policy.deal): a true/false field",
        ),
        (
            sweep_toml('[[parameters]]\npath = "licensing.cn.reviewers"\nvalues = [5, 7.5]\n', method="grid"),
            "parameters[0] (licensing.cn.reviewers): 7.5 is not allowed; this field takes whole numbers",
        ),
        (
            sweep_toml('[[parameters]]\npath = "shipping.air_freight"\nvalues = [true, "no"]\n', method="grid"),
            "parameters[0] (shipping.air_freight): a true/false field",
        ),
        (
            sweep_toml('[[parameters]]\npath = "licensing.cn.prep_days_min"\nlow = 0\nhigh = 30\ninteger = true\n'),
            "parameters[0] (licensing.cn.prep_days_min) = 19: licensing.cn: prep_days_min (19) must not exceed",
        ),
        (
            sweep_toml(
                '[[parameters]]\npath = "automakers.US.bev_share"\nvalues = [0.1, 0.8]\n'
                '[[parameters]]\npath = "automakers.US.hev_share"\nvalues = [0.1, 0.8]\n',
                method="grid",
            ),
            "parameters: sample 3 (automakers.US.bev_share=0.8, automakers.US.hev_share=0.8): automakers.US: "
            "bev_share + hev_share must be at most 1",
        ),
        (
            sweep_toml(
                '[[parameters]]\npath = "automakers.US.bev_share"\nlow = 0.0\nhigh = 0.5\n',
                extra='outputs = ["us_auto_idle_plant_dayz"]',
            ),
            "sweep.outputs[0]: 'us_auto_idle_plant_dayz' is not a metric; did you mean 'us_auto_idle_plant_days'?",
        ),
        (
            sweep_toml(
                '[[parameters]]\npath = "automakers.US.bev_share"\nlow = 0.0\nhigh = 0.5\n'
                '[discovery]\noutcome = "first_shutdown"\nbelow = 3.0\n'
            ),
            "discovery.outcome: 'first_shutdown' is not a metric",
        ),
        (
            sweep_toml(
                '[[parameters]]\npath = "automakers.US.bev_share"\nlow = 0.0\nhigh = 0.5\n',
                extra='timeseries = "weekly"\ntimeseries_columns = ["auto_plants_idle_usa"]',
            ),
            "sweep.timeseries_columns[0]: 'auto_plants_idle_usa' is not a column of timeseries.parquet; did you mean "
            "'auto_plants_idle_us'?",
        ),
        (
            sweep_toml('[[parameters]]\npath = "automakers.US.bev_share"\nlow = true\nhigh = 0.5\n'),
            "parameters[0].low: expected a number, not true/false",
        ),
        (
            sweep_toml(
                '[[parameters]]\npath = "automakers.US.bev_share"\nlow = 0.1\nhigh = 0.5\n',
                extra="max_failed_share = 1.5",
            ),
            "sweep.max_failed_share",
        ),
    ],
)
def test_bad_sweeps_are_refused_before_anything_runs(text, expected, tmp_path, capsys):
    p = tmp_path / "v.toml"
    p.write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 2
    line = one_line(capsys)
    assert expected in line, line
    assert sorted(q.name for q in tmp_path.iterdir()) == ["v.toml"]


def test_a_bool_swept_as_a_grid_of_true_and_false_is_fine():
    from rareshock.sweeps.spec import load_sweep

    sweep = load_sweep(SWEEPS / "budget_x_deal.toml")
    assert sweep.config.parameters[1].values == [True, False]


def test_max_failed_share_does_not_change_the_fingerprint(tmp_path):
    """Only what decides the numbers is in the fingerprint: an interrupted sweep stays resumable."""
    from rareshock.sweeps.spec import load_sweep

    a = load_sweep(SWEEPS / "buffer_x_reviewers.toml")
    b = load_sweep(SWEEPS / "buffer_x_reviewers.toml", ["sweep.max_failed_share=0.5"])
    c = load_sweep(SWEEPS / "buffer_x_reviewers.toml", ["sweep.seed=2"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert (
        json.loads((ROOT / "results" / "buffer_x_reviewers" / "sweep_state.json").read_text())["fingerprint"]
        == a.fingerprint()
    )


# --------------------------------------------------------------------------------------------------
# Exit 2 and one line for the rest of the list
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("small")
    cfg = base / "s.toml"
    cfg.write_text(sweep_toml('[[parameters]]\npath = "licensing.cn.reviewers"\nvalues = [10, 20]\n', method="grid"))
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(base / "done"), "--no-progress"]) == 0
    return base / "done"


@pytest.mark.parametrize(
    "remove, run_id, expected",
    [
        (None, str(2**70), "RUN_ID: expected a run_id"),
        (None, "-1", "RUN_ID: expected a run_id"),
        (None, "2", "RUN_ID: 2 is not a run of this sweep (run_ids 0..1)"),
        ("sweep_state.json", "0", "no sweep_state.json"),
        ("runs.parquet", "0", "no runs.parquet"),
        ("manifest.json", "0", "no manifest.json"),
    ],
)
def test_run_from_a_broken_sweep_folder_exits_2(remove, run_id, expected, small_sweep, tmp_path, capsys):
    folder = tmp_path / "sweep"
    shutil.copytree(small_sweep, folder)
    if remove:
        p = folder / remove
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert main(["run", "--from", str(folder), run_id, "--out", str(tmp_path / "row")]) == 2
    assert expected in one_line(capsys)
    assert not (tmp_path / "row").exists()


def test_run_from_reproduces_a_row(small_sweep, tmp_path, capsys):
    assert main(["run", "--from", str(small_sweep), "1", "--out", str(tmp_path / "row")]) == 0
    assert "reproduced: all" in capsys.readouterr().out


def test_reproduce_results_problems_are_found_before_regenerating(tmp_path, monkeypatch, capsys):
    import rareshock.reproduce

    def refuse(*a, **k):
        raise AssertionError("regenerated before checking --results")

    monkeypatch.setattr(rareshock.reproduce, "regenerate", refuse)
    assert main(["reproduce", "--check", "--results", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "--results" in one_line(capsys)
    (tmp_path / "f").write_text("x")
    assert main(["reproduce", "--results", str(tmp_path / "f"), "--no-progress"]) == 2
    assert "is a file" in one_line(capsys)
    mine = tmp_path / "results" / "sobol_april_2025"  # the last experiment: every one is checked first
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep")
    assert main(["reproduce", "--results", str(tmp_path / "results"), "--no-progress"]) == 2
    assert "--results" in one_line(capsys)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["sobol_april_2025"]


def test_sweep_out_on_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["sweep", str(SWEEPS / "buffer_x_reviewers.toml"), "--out", str(tmp_path / "f"), "--no-progress"]) == 2
    assert "exists and is a file" in one_line(capsys)
    assert (
        main(["sweep", str(SWEEPS / "buffer_x_reviewers.toml"), "--out", str(tmp_path / "f" / "s"), "--no-progress"])
        == 2
    )
    assert "is a file, not a folder" in one_line(capsys)
    assert main(["sweep", str(SWEEPS / "buffer_x_reviewers.toml"), "--resume", "--overwrite"]) == 2
    one_line(capsys)
