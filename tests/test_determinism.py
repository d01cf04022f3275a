"""Same config and seed give bit-identical results; different seeds differ; the key order of config tables
does not matter (manifests store configs with sorted keys, so a rerun from a manifest must not differ)."""

from __future__ import annotations

import json

import pandas as pd

from rareshock.model.config import load_scenario, validate
from rareshock.simulation import run_scenario
from tests.conftest import ROOT, SHOCK

DECOUPLING = ROOT / "experiments" / "scenarios" / "decoupling.toml"


def _run(seed, path=SHOCK, overrides=("scenario.end=2025-08-31",)):
    return run_scenario(load_scenario(path, list(overrides)), seed)


def _same(a, b):
    assert a.summary == b.summary
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries, check_exact=True)


def test_same_seed_is_bit_identical():
    _same(_run(11), _run(11))


def test_different_seeds_differ():
    a, b = _run(11), _run(12)
    assert not a.timeseries.equals(b.timeseries)


def test_config_seed_is_the_default_seed():
    cfg = load_scenario(SHOCK, ["scenario.end=2025-05-31"])
    assert run_scenario(cfg).seed == cfg.scenario.seed


def _reversed_tables(cfg):
    """The same config with the parts, chip firms and buyers, and each investment stage's regions listed
    in reverse order."""
    data = cfg.model_dump(mode="json")
    flip = lambda d: dict(reversed(list(d.items())))
    data["automakers"]["parts"] = flip(data["automakers"]["parts"])
    data["chips"]["firms"] = flip(data["chips"]["firms"])
    data["chips"]["buyers"] = flip(data["chips"]["buyers"])
    for stage in data["investment"]["stages"].values():
        stage["regions"] = flip(stage["regions"])
    out = validate(data)
    assert list(out.automakers.parts) == list(reversed(cfg.automakers.parts))
    assert list(out.chips.firms) == list(reversed(cfg.chips.firms))
    assert list(out.investment.stages["magnets"].regions) == list(reversed(cfg.investment.stages["magnets"].regions))
    return out


def test_the_key_order_of_parts_and_chip_firms_does_not_change_the_results():
    cfg = load_scenario(SHOCK, ["scenario.end=2025-09-30", "automakers.shifts_per_day=3"])
    _same(run_scenario(cfg, 5), run_scenario(_reversed_tables(cfg), 5))


def test_the_key_order_of_investment_stage_regions_does_not_change_the_results():
    """The programme draws a region for each new project from its stage's region shares."""
    cfg = load_scenario(DECOUPLING, ["scenario.end=2028-12-31"])
    a, b = run_scenario(cfg, 1), run_scenario(_reversed_tables(cfg), 1)
    assert a.summary["investment_spent_usd"] > 0  # projects were started (and regions drawn)
    _same(a, b)


def test_a_config_with_sorted_keys_gives_the_same_results():
    """What a manifest stores: the config as JSON with every table's keys sorted."""
    cfg = load_scenario(SHOCK, ["scenario.end=2025-09-30"])
    sorted_cfg = validate(json.loads(json.dumps(cfg.model_dump(mode="json"), sort_keys=True)))
    assert list(sorted_cfg.automakers.parts) == sorted(cfg.automakers.parts) != list(cfg.automakers.parts)
    _same(run_scenario(cfg, 2), run_scenario(sorted_cfg, 2))
