"""Sweep configs, experimental designs, per-run seeds, and running one row of a sweep.

A sweep TOML names a base scenario, fixed overrides, the parameters to vary (by dotted config path),
a method (full grid, random, Latin hypercube, Sobol, Morris), the number of samples and replications,
and which outcomes to analyse. :func:`load_sweep` validates it (one-line :class:`ConfigError`), checks
every swept path against the scenario schema, and :func:`build_design` gives one row per sample.

Seeds (DESIGN.md §5): run (sample, replicate) gets ``SeedSequence(sweep.seed, spawn_key=(sample,
replicate))``, so a run's numbers do not depend on how many workers there are or in which order runs
finish. Sampling itself draws from ``sweep.seed`` through its own generator.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

from rareshock.model.schema import Strict
from rareshock.model.config import (ConfigError, ScenarioConfig, _merge, _resolve_extends, apply_override, defaults, format_error, read_toml,
                          validate)

class Parameter(Strict):
    """One swept parameter: explicit ``values`` (grid), or a ``low``..``high`` range."""

    path: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")]
    values: list[float | int | bool | str] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    levels: Annotated[int, Field(ge=2, le=1000)] | None = None

    @model_validator(mode="after")
    def _range(self) -> "Parameter":
        if self.values is None:
            if self.low is None or self.high is None:
                raise ValueError("give either values = [...] or low and high")
            if not math.isfinite(self.low) or not math.isfinite(self.high) or self.high <= self.low:
                raise ValueError(f"high must be greater than low (got low={self.low}, high={self.high})")
        elif not self.values:
            raise ValueError("values must not be empty")
        elif self.low is not None or self.high is not None:
            raise ValueError("give either values or low/high, not both")
        return self

    def grid_values(self) -> list:
        if self.values is not None:
            return list(self.values)
        n = self.levels or 5
        v = np.linspace(self.low, self.high, n)
        return [int(round(x)) for x in v] if self.integer else [float(x) for x in v]


class Discovery(Strict):
    """Scenario discovery: which parameter regions lead to an outcome (PRIM)."""

    outcome: str
    below: float | None = None
    above: float | None = None
    missing_is_case: bool = False
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.8

    @model_validator(mode="after")
    def _one(self) -> "Discovery":
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below or above")
        return self


class SweepSettings(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    scenario: str
    method: Literal["grid", "random", "lhs", "sobol", "morris"]
    samples: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    replications: Annotated[int, Field(ge=1, le=10_000)] = 1
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 20
    overrides: list[str] = []
    outputs: list[str] = ["first_us_auto_shutdown_day", "us_auto_idle_plant_days"]
    timeseries: Literal["none", "weekly", "monthly"] = "none"
    timeseries_columns: list[str] = ["auto_plants_idle_us", "cn_magnet_exports_t", "cn_licences_pending",
                                     "price_ndfeb_ex_cn_usd_kg"]
    morris_levels: Annotated[int, Field(ge=2, le=20)] = 4
    reproduce: bool = False

    @model_validator(mode="after")
    def _sobol(self) -> "SweepSettings":
        if self.method == "sobol" and self.samples & (self.samples - 1):
            raise ValueError(f"sobol samples must be a power of 2 (got {self.samples})")
        return self


class SweepConfig(Strict):
    sweep: SweepSettings
    parameters: list[Parameter] = Field(min_length=1)
    discovery: Discovery | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SweepConfig":
        paths = [p.path for p in self.parameters]
        dup = {p for p in paths if paths.count(p) > 1}
        if dup:
            raise ValueError(f"parameter {sorted(dup)[0]!r} is listed twice")
        method = self.sweep.method
        for i, p in enumerate(self.parameters):
            if method != "grid" and p.values is not None:
                raise ValueError(f"parameters[{i}]: method {method!r} needs low and high, not values")
        return self


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: which sample and replicate, its seed and its parameter values."""

    run_id: int
    sample: int
    replicate: int
    seed: int
    params: dict


@dataclass
class Sweep:
    """A validated sweep, with the resolved base scenario every run starts from."""

    config: SweepConfig
    path: Path
    base: dict = field(repr=False)        # resolved base scenario (JSON-able), fixed overrides applied

    @property
    def settings(self) -> SweepSettings:
        return self.config.sweep

    @property
    def param_paths(self) -> list[str]:
        return [p.path for p in self.config.parameters]

    def fingerprint(self) -> str:
        """Hash of everything that decides the runs' numbers (for resuming safely)."""
        payload = {"sweep": self.config.model_dump(mode="json"), "base": self.base}
        payload["sweep"]["sweep"].pop("description", None)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _set_path(data: dict, path: str, value: Any) -> None:
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read and validate a sweep TOML and its base scenario; ``overrides`` apply to the sweep file."""
    p = Path(path)
    data = read_toml(p)
    for item in overrides:
        apply_override(data, item)
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_error(err, SweepConfig)) from None
    scen_path = (p.parent / cfg.sweep.scenario).resolve()
    scen = read_toml(scen_path)
    if not isinstance(scen.get("scenario"), dict):
        raise ConfigError(f"sweep.scenario: {cfg.sweep.scenario} has no [scenario] table")
    base = _merge(defaults(), _resolve_extends(scen_path, scen))
    for item in cfg.sweep.overrides:
        try:
            apply_override(base, item)
        except ConfigError as err:
            raise ConfigError(f"sweep.overrides: {err}") from None
    base_cfg = _validate_prefixed(base, "sweep.overrides")
    base = base_cfg.model_dump(mode="json")
    # every swept path must exist in the scenario schema and accept its values
    for i, prm in enumerate(cfg.parameters):
        node = base
        for k in prm.path.split(".")[:-1]:
            if not isinstance(node, dict) or k not in node:
                raise ConfigError(f"parameters[{i}].path: {prm.path!r} is not a scenario field")
            node = node[k]
        last = prm.path.split(".")[-1]
        if not isinstance(node, dict) or last not in node or isinstance(node[last], dict | list):
            raise ConfigError(f"parameters[{i}].path: {prm.path!r} is not a scenario value field")
        for v in (prm.grid_values() if prm.values is not None else [prm.low, prm.high]):
            trial = json.loads(json.dumps(base))
            _set_path(trial, prm.path, int(round(v)) if prm.integer and v is not None else v)
            _validate_prefixed(trial, f"parameters[{i}] ({prm.path}={v!r})")
    return Sweep(cfg, p, base)


def _validate_prefixed(data: dict, where: str) -> ScenarioConfig:
    try:
        return validate(data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


# --------------------------------------------------------------------------------------------------
# Designs
# --------------------------------------------------------------------------------------------------
def salib_problem(sweep: Sweep) -> dict:
    ps = sweep.config.parameters
    return {"num_vars": len(ps), "names": [p.path for p in ps], "bounds": [[p.low, p.high] for p in ps]}


def _scale(unit: np.ndarray, sweep: Sweep) -> np.ndarray:
    ps = sweep.config.parameters
    lo = np.array([p.low for p in ps])
    hi = np.array([p.high for p in ps])
    return lo + unit * (hi - lo)


def build_design(sweep: Sweep) -> pd.DataFrame:
    """One row per sample: ``sample`` and one column per swept path (in the order SALib expects)."""
    s, ps = sweep.settings, sweep.config.parameters
    rng = np.random.default_rng(np.random.SeedSequence(s.seed, spawn_key=(2**31 - 1,)))
    if s.method == "grid":
        rows = list(itertools.product(*(p.grid_values() for p in ps)))
        df = pd.DataFrame(rows, columns=[p.path for p in ps])
    else:
        if s.method == "random":
            x = _scale(rng.random((s.samples, len(ps))), sweep)
        elif s.method == "lhs":
            from scipy.stats import qmc
            x = _scale(qmc.LatinHypercube(d=len(ps), rng=rng).random(s.samples), sweep)
        elif s.method == "sobol":
            from SALib.sample import sobol
            x = sobol.sample(salib_problem(sweep), s.samples, calc_second_order=False, seed=rng)
        else:
            from SALib.sample import morris
            x = morris.sample(salib_problem(sweep), s.samples, num_levels=s.morris_levels, seed=rng)
        df = pd.DataFrame(x, columns=[p.path for p in ps])
        for p in ps:
            if p.integer:
                df[p.path] = df[p.path].round().astype(np.int64)
    df.insert(0, "sample", np.arange(len(df), dtype=np.int64))
    return df


def run_seed(sweep_seed: int, sample: int, replicate: int) -> int:
    """The run's seed: a 63-bit integer from ``SeedSequence(sweep_seed, spawn_key=(sample, replicate))``."""
    ss = np.random.SeedSequence(sweep_seed, spawn_key=(sample, replicate))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def run_specs(sweep: Sweep, design: pd.DataFrame) -> list[RunSpec]:
    reps = sweep.settings.replications
    paths = sweep.param_paths
    out = []
    for row in design.itertuples(index=False):
        sample = int(row[0])
        params = {p: _plain(v) for p, v in zip(paths, row[1:])}
        for r in range(reps):
            out.append(RunSpec(sample * reps + r, sample, r, run_seed(sweep.settings.seed, sample, r), params))
    return out


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------
def scenario_for(base: dict, params: dict) -> ScenarioConfig:
    data = json.loads(json.dumps(base))
    for path, value in params.items():
        _set_path(data, path, value)
    return validate(data)


def flatten(summary: dict, prefix: str = "") -> dict:
    """Nested summary dicts become dotted columns; None becomes NaN; strings are dropped."""
    out = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif v is None:
            out[key] = float("nan")
        elif isinstance(v, bool | int | float):
            out[key] = float(v)
    return out


def run_one(base: dict, spec: RunSpec, timeseries: str = "none", ts_columns: tuple = ()) -> tuple[dict, pd.DataFrame | None]:
    """Run one row of a sweep. Returns its result row and, if asked, its aggregated time series.
    A run that raises becomes an error row (message kept), so the sweep goes on."""
    from rareshock.simulation import run_scenario

    row = {"run_id": spec.run_id, "sample": spec.sample, "replicate": spec.replicate, "seed": spec.seed,
           **spec.params}
    try:
        result = run_scenario(scenario_for(base, spec.params), spec.seed)
    except Exception as err:  # noqa: BLE001 - the sweep records any failure of one run and goes on
        row.update(status="error", error=f"{type(err).__name__}: {err}"[:2000])
        return row, None
    row.update(flatten({k: v for k, v in result.summary.items() if k != "scenario"}))
    row.update(status="ok", error="")
    ts = None
    if timeseries != "none":
        freq = {"weekly": "W-SUN", "monthly": "MS"}[timeseries]
        cols = [c for c in ts_columns if c in result.timeseries.columns]
        ts = result.timeseries.set_index("date")[cols].resample(freq).mean().reset_index()
        ts.insert(0, "run_id", spec.run_id)
    return row, ts
