"""Sweep configs, experimental designs, per-run seeds, and running one row of a sweep.

A sweep TOML names a base scenario, fixed overrides, the parameters to vary (by dotted config path),
a method (full grid, random, Latin hypercube, Sobol, Morris), the number of samples and replications,
and which outcomes to analyse. :func:`load_sweep` validates it (one-line :class:`ConfigError`), checks
every swept path against the scenario schema, and :func:`build_design` gives one row per sample.

Seeds (DESIGN.md §5): run (sample, replicate) gets ``SeedSequence(sweep.seed, spawn_key=(sample,
replicate))``, so a run's numbers do not depend on how many workers there are or in which order runs
finish. Sampling itself draws from ``sweep.seed`` through its own generator.

Over a calibration's posterior (``posterior = NAME``, ``posterior_draws = N`` instead of
``replications``): replicate r of every sample runs posterior draw r (drawn by systematic resampling with
``sweep.seed``, :mod:`rareshock.calibration.posterior`), with the seed above; a swept path that is also
calibrated takes the swept value. The drawn values are columns of runs.parquet like the swept ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

from rareshock.model.config import (
    ConfigError,
    ScenarioConfig,
    _resolve_extends,
    _strip,
    apply_override,
    field_at,
    format_error,
    read_toml,
    stable_view,
    validate,
    world_base,
)
from rareshock.model.schema import Share, Strict

DESIGN_CHECK_ROWS = 5000
"""At most this many design rows are validated against the scenario schema before a sweep starts (all of
them up to this size; evenly spaced rows beyond)."""
PROBE_POINTS = 9
"""Values of each ``low``..``high`` parameter validated alone: this many evenly spaced, ends included."""


class Parameter(Strict):
    """One swept parameter: explicit ``values`` (grid), or a ``low``..``high`` range."""

    path: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")]
    values: list[float | int | bool | str] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    levels: Annotated[int, Field(ge=2, le=1000)] | None = None

    @model_validator(mode="after")
    def _range(self) -> Parameter:
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

    def probe_values(self) -> list:
        """Values across the range that are checked against the schema before a sweep starts: every listed
        value, or ``PROBE_POINTS`` evenly spaced from low to high (rounded, and each once, if integer)."""
        if self.values is not None:
            return list(self.values)
        v = np.linspace(self.low, self.high, PROBE_POINTS)
        if self.integer:
            return sorted({int(round(x)) for x in v})
        return [float(x) for x in v]


class Discovery(Strict):
    """Scenario discovery: which parameter regions lead to an outcome (PRIM)."""

    outcome: str
    below: float | None = None
    above: float | None = None
    missing_is_case: bool = False
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.8

    @model_validator(mode="after")
    def _one(self) -> Discovery:
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
    timeseries_columns: list[str] = [
        "auto_plants_idle_us",
        "cn_magnet_exports_t",
        "cn_licences_pending",
        "price_ndfeb_ex_cn_usd_kg",
    ]
    morris_levels: Annotated[int, Field(ge=2, le=20)] = 4
    reproduce: bool = False
    # The sweep exits with code 1 (after writing everything) if more than this share of its runs fail, or
    # all of them; it does not change any number, so it is not part of the fingerprint.
    max_failed_share: Share = 0.1
    posterior: Annotated[str, Field(min_length=1)] | None = None
    posterior_draws: Annotated[int, Field(ge=1, le=10_000)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _draws(cls, data):
        from rareshock.calibration.posterior import posterior_replications

        return posterior_replications(data)

    @model_validator(mode="after")
    def _sobol(self) -> SweepSettings:
        if self.method == "sobol" and self.samples & (self.samples - 1):
            raise ValueError(f"sobol samples must be a power of 2 (got {self.samples})")
        return self


class SweepConfig(Strict):
    sweep: SweepSettings
    parameters: list[Parameter] = Field(min_length=1)
    discovery: Discovery | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
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
    base: dict = field(repr=False)  # resolved base scenario (JSON-able), fixed overrides applied
    posterior: Any = None  # a rareshock.calibration.posterior.Posterior, with posterior = NAME
    draws: list = field(default_factory=list, repr=False)  # (particle, values) of each posterior draw

    @property
    def settings(self) -> SweepSettings:
        return self.config.sweep

    @property
    def param_paths(self) -> list[str]:
        return [p.path for p in self.config.parameters]

    @property
    def record_paths(self) -> list[str]:
        """The parameter columns of runs.parquet: the swept paths, then calibrated paths not swept."""
        swept = self.param_paths
        extra = [] if self.posterior is None else [p for p in self.posterior.paths if p not in swept]
        return swept + extra

    def fingerprint(self) -> str:
        """Hash of everything that decides the runs' numbers (for resuming safely)."""
        payload = {"sweep": self.config.model_dump(mode="json"), "base": stable_view(self.base)}
        if self.posterior is not None:
            payload["posterior_sha256"] = self.posterior.sha256
        payload["sweep"]["sweep"].pop("description", None)
        payload["sweep"]["sweep"].pop("max_failed_share", None)
        for key in ("posterior", "posterior_draws"):  # sweeps from before posteriors keep their fingerprint
            if payload["sweep"]["sweep"].get(key) is None:
                payload["sweep"]["sweep"].pop(key, None)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _set_path(data: dict, path: str, value: Any) -> None:
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read and validate a sweep TOML (or a shipped sweep by name) and its base scenario; ``overrides`` apply
    to the sweep file."""
    from rareshock.resources import locate

    p = locate(path, "sweep")
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
    base = world_base(_resolve_extends(scen_path, scen))
    for item in cfg.sweep.overrides:
        try:
            apply_override(base, item)
        except ConfigError as err:
            raise ConfigError(f"sweep.overrides: {err}") from None
    base_cfg = _validate_prefixed(base, "sweep.overrides")
    base = base_cfg.model_dump(mode="json")
    _check_names(cfg)
    for i, prm in enumerate(cfg.parameters):
        _check_parameter(i, prm, cfg.sweep.method, base)
    sweep = Sweep(cfg, p, base)
    if cfg.sweep.posterior is not None:
        from rareshock.calibration.posterior import check_draws, load_posterior

        sweep.posterior = load_posterior(cfg.sweep.posterior, base_dir=p.parent, what="sweep.posterior")
        sweep.draws = sweep.posterior.draws(cfg.sweep.replications, cfg.sweep.seed)
        check_draws(base, sweep.draws, "sweep.posterior")
    _check_design(sweep)
    return sweep


def _near(name: str, allowed) -> str:
    import difflib

    near = difflib.get_close_matches(name, list(allowed), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def _check_names(cfg: SweepConfig) -> None:
    """Outputs and the discovery outcome must be metrics of runs.parquet, time-series columns columns of
    timeseries.parquet."""
    from rareshock.simulation import metric_kind, timeseries_columns
    from rareshock.sweeps.executor import metric_columns

    metrics = [m for m in metric_columns() if metric_kind(m) != "date"]  # outcomes are numbers
    for j, name in enumerate(cfg.sweep.outputs):
        if name not in metrics:
            raise ConfigError(
                f"sweep.outputs[{j}]: {name!r} is not a metric{_near(name, metrics)} (metrics: the "
                f"dotted names of summary.json, e.g. us_auto_idle_plant_days, cn_licences.approved)"
            )
    if cfg.discovery is not None and cfg.discovery.outcome not in metrics:
        name = cfg.discovery.outcome
        raise ConfigError(f"discovery.outcome: {name!r} is not a metric{_near(name, metrics)}")
    columns = list(timeseries_columns())
    for j, name in enumerate(cfg.sweep.timeseries_columns):
        if name not in columns:
            raise ConfigError(
                f"sweep.timeseries_columns[{j}]: {name!r} is not a column of timeseries.parquet{_near(name, columns)}"
            )


def _leaf(path: str) -> tuple[str, tuple]:
    """What kind of value the scenario field at ``path`` holds: "int", "float", "bool", "choice" (with the
    allowed values), "date", "text" or "other"."""
    _, ann = field_at(ScenarioConfig, tuple(path.split(".")))
    ann = _strip(ann)
    if ann is bool:
        return "bool", ()
    if ann is int:
        return "int", ()
    if ann is float:
        return "float", ()
    if ann is str:
        return "text", ()
    if typing.get_origin(ann) is Literal:
        return "choice", typing.get_args(ann)
    if ann is dt.date:
        return "date", ()
    return "other", ()


def _check_parameter(i: int, prm: Parameter, method: str, base: dict) -> None:
    """A swept path must be a scenario value field, swept in a way its type allows, and accept every value
    across its range (``PROBE_POINTS`` of a low..high range, every listed value)."""
    where = f"parameters[{i}] ({prm.path})"
    node = base
    for k in prm.path.split(".")[:-1]:
        if not isinstance(node, dict) or k not in node:
            raise ConfigError(f"parameters[{i}].path: {prm.path!r} is not a scenario field")
        node = node[k]
    last = prm.path.split(".")[-1]
    if not isinstance(node, dict) or last not in node or isinstance(node[last], dict | list):
        raise ConfigError(f"parameters[{i}].path: {prm.path!r} is not a scenario value field")
    kind, choices = _leaf(prm.path)
    values = prm.values
    if kind == "bool":
        if values is None or not all(isinstance(v, bool) for v in values):
            raise ConfigError(f'{where}: a true/false field; sweep it with method = "grid" and values = [true, false]')
    elif kind in ("choice", "text", "date", "other"):
        allowed = f" (allowed: {', '.join(map(repr, choices))})" if choices else ""
        if values is None:
            raise ConfigError(
                f'{where}: a {"choice" if choices else "text"} field; sweep it with method = "grid" '
                f"and a list of values{allowed}"
            )
        bad = [v for v in values if not isinstance(v, str) or (choices and v not in choices)]
        if bad:
            raise ConfigError(f"{where}: {bad[0]!r} is not allowed{allowed}")
    else:
        if values is not None:
            bad = [v for v in values if isinstance(v, bool | str) or (kind == "int" and not isinstance(v, int))]
            if bad:
                what = "whole numbers" if kind == "int" else "numbers"
                raise ConfigError(f"{where}: {bad[0]!r} is not allowed; this field takes {what}")
        elif kind == "int" and not prm.integer:
            raise ConfigError(f"{where}: a whole-number field; add integer = true to sweep it from low to high")
    for v in prm.probe_values():
        trial = json.loads(json.dumps(base))
        _set_path(trial, prm.path, v)
        _validate_prefixed(trial, f"{where} = {v!r}")


def _check_design(sweep: Sweep) -> None:
    """Validate the design's rows (all parameters together, as the runs will see them) before anything runs:
    a combination the schema rejects is an error here, not a sweep of error rows."""
    design = build_design(sweep)
    paths = sweep.param_paths
    n = len(design)
    rows = (
        range(n) if n <= DESIGN_CHECK_ROWS else np.unique(np.linspace(0, n - 1, DESIGN_CHECK_ROWS).round().astype(int))
    )
    cols = [design[p].to_numpy() for p in paths]
    for r in rows:
        params = {p: _plain(c[r]) for p, c in zip(paths, cols)}
        try:
            scenario_for(sweep.base, params)
        except ConfigError as err:
            shown = ", ".join(f"{p}={v!r}" for p, v in params.items())
            raise ConfigError(f"parameters: sample {r} ({shown}): {err}") from None


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
            drawn = {**sweep.draws[r][1], **params} if sweep.posterior is not None else params
            out.append(RunSpec(sample * reps + r, sample, r, run_seed(sweep.settings.seed, sample, r), drawn))
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
    """Nested summary dicts become dotted columns; None becomes NaN; numbers, booleans and strings (the
    dates) are kept as they are; lists (the policy log) are dropped. :func:`metric_frame` gives the columns
    their types."""
    out = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif v is None:
            out[key] = float("nan")
        elif isinstance(v, bool | int | float | str):
            out[key] = v
    return out


PANDAS_DTYPES = {"int": "Int64", "bool": "boolean", "date": "datetime64[ms]", "float": "float64"}
"""The pandas dtype of each kind of metric (:func:`rareshock.simulation.metric_kind`): whole numbers and
booleans are nullable (missing where a run failed or the event did not happen), dates are NaT there."""


def metric_frame(rows: list[dict], metrics: list[str], legacy: bool = False) -> pd.DataFrame:
    """The ``metrics`` columns of ``rows`` (flattened summaries; a metric a row lacks is missing), each with
    its type (:data:`PANDAS_DTYPES`). A fractional value of a whole-number metric raises TypeError.
    ``legacy``: every metric a float and dates missing, as sweeps started before typed columns wrote them
    (so that resuming one keeps a single schema across its part files)."""
    from rareshock.simulation import metric_kind

    out = {}
    for m in metrics:
        values = pd.Series([r.get(m, np.nan) for r in rows], dtype=object)
        kind = "float" if legacy else metric_kind(m)
        if kind == "date":
            col = pd.to_datetime(values.where(values.map(lambda v: isinstance(v, str)), None), format="ISO8601")
            out[m] = col.astype(PANDAS_DTYPES[kind])
        elif kind == "float":
            out[m] = pd.to_numeric(values.where(values.map(lambda v: not isinstance(v, str)), np.nan)).astype(float)
        else:
            out[m] = pd.Series(pd.array(values.map(lambda v: None if pd.isna(v) else v).tolist(), PANDAS_DTYPES[kind]))
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)))


def run_one(
    base: dict, spec: RunSpec, timeseries: str = "none", ts_columns: tuple = ()
) -> tuple[dict, pd.DataFrame | None]:
    """Run one row of a sweep. Returns its result row and, if asked, its aggregated time series.
    A run that raises becomes an error row (message kept), so the sweep goes on."""
    from rareshock.simulation import run_scenario

    scenario = spec.params.get("scenario.name", base["scenario"]["name"])
    row = {"run_id": spec.run_id, "scenario": scenario, "sample": spec.sample, "replicate": spec.replicate}
    row.update(seed=spec.seed, **spec.params)
    try:
        result = run_scenario(scenario_for(base, spec.params), spec.seed)
    except Exception as err:
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
