"""Same config and seed give bit-identical results; different seeds differ."""

from __future__ import annotations

import pandas as pd

from rareshock.model.config import load_scenario
from rareshock.simulation import run_scenario
from tests.conftest import SHOCK


def _run(seed):
    return run_scenario(load_scenario(SHOCK, ["scenario.end=2025-08-31"]), seed)


def test_same_seed_is_bit_identical():
    a, b = _run(11), _run(11)
    assert a.summary == b.summary
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries, check_exact=True)


def test_different_seeds_differ():
    a, b = _run(11), _run(12)
    assert not a.timeseries.equals(b.timeseries)


def test_config_seed_is_the_default_seed():
    cfg = load_scenario(SHOCK, ["scenario.end=2025-05-31"])
    assert run_scenario(cfg).seed == cfg.scenario.seed
