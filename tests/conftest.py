"""Shared fixtures: scenarios cut to the months a test needs, and cached runs."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from rareshock.model.config import load_scenario
from rareshock.simulation import RunResult, run_scenario

ROOT = Path(__file__).resolve().parents[1]
SHOCK = ROOT / "experiments" / "scenarios" / "april_2025_shock.toml"
BASELINE = ROOT / "experiments" / "scenarios" / "baseline_2024.toml"


@cache
def run_cached(path: str, seed: int, overrides: tuple[str, ...] = ()) -> RunResult:
    return run_scenario(load_scenario(path, list(overrides)), seed)


@pytest.fixture(scope="session")
def shock_run() -> RunResult:
    return run_cached(str(SHOCK), 1)


@pytest.fixture(scope="session")
def baseline_run() -> RunResult:
    return run_cached(str(BASELINE), 1)
