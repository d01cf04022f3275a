"""Calibration configs: priors on scenario fields, targets on what a run produces, stop rules.

A calibration TOML (``experiments/calibration/<name>.toml``) has a ``[calibration]`` table (the scenario
and its overrides, the seed, the population size and the stop rules), ``[[parameters]]`` (a prior on a
scenario field, by dotted path) and ``[[targets]]`` (a statistic of a run, and the record as an interval).
:func:`load_calibration` validates it strictly (one-line :class:`ConfigError`, exit code 2 on the command
line) before anything runs:

- unknown keys, wrong types, bad bounds (``low >= high``, a log-uniform prior that reaches 0, an integer
  prior with fractional bounds) are errors;
- every parameter path must be a numeric value field of the scenario; a whole-number field needs an
  ``integer`` prior; the prior's whole box (each parameter at 9 points of its range, then every corner of
  the box and 64 draws from the prior together) must pass the scenario schema, so no proposal the sampler
  can make is refused by the model;
- every target metric must be a dotted ``summary.json`` metric, every series a ``timeseries.parquet``
  column, every date inside the calibration run's ``start..end``.

Statistics and distances are in :mod:`rareshock.calibration.stats`; see ``docs/calibration.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from rareshock.model.config import (
    ConfigError,
    _resolve_extends,
    apply_override,
    format_error,
    read_toml,
    stable_view,
    validate,
    world_base,
)
from rareshock.model.schema import Date, NonNeg, Pos, Share, Strict

SEED_MAX = 2**63 - 1
PROBE_POINTS = 9
"""Values of each parameter's range validated alone against the scenario schema (ends included)."""
JOINT_DRAWS = 64
"""Draws from the joint prior validated together (besides every corner of the prior box, up to 2**10)."""
MAX_CORNERS_DIM = 10
NULL_DISTANCE = 100.0
"""Default per-target distance of a statistic that is null (e.g. no shutdown before the end of the run):
100 scale units, beyond any simulation that produced a value, so such particles rank last and are never
accepted once epsilon falls below it. ``null_value`` instead substitutes a number (e.g. the horizon)."""

# SeedSequence spawn keys (see docs/calibration.md, "Determinism"):
PRIOR_SAMPLE_KEY = 0
"""Generation t uses spawn keys (t + 1, i); key 0 is what pyabc calls t = -1 (a prior calibration
sample, which this calibration never asks for)."""
PREDICTIVE_KEY = 1_000_000
"""Posterior predictive draw d: model seed from SeedSequence(seed, spawn_key=(PREDICTIVE_KEY, d))."""
RESAMPLE_KEY = 1_000_001
"""The uniform of systematic resampling: SeedSequence(seed, spawn_key=(RESAMPLE_KEY,))."""


def _fix_alias(message: str) -> str:
    """Pydantic names the ``from`` field ``from_`` and tags union members in locations (``norm.constrained-
    float``); show the names the user writes."""
    import re

    message = re.sub(r"\.(?:constrained-float|constrained-int|literal\[[^\]]*\]|int|float|str)(?=[:.\[ ])", "", message)
    return message.replace("from_", "from")


# --------------------------------------------------------------------------------------------------
# The TOML schema
# --------------------------------------------------------------------------------------------------
Number = int | float


class Prior(Strict):
    """A prior on one scenario field (by dotted path)."""

    path: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")]
    prior: Literal["uniform", "loguniform", "normal", "integer"]
    low: Number | None = None
    high: Number | None = None
    mean: Number | None = None
    sd: Number | None = None
    source: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _bounds(self) -> Prior:
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.prior} prior needs low and high")
        low, high = float(self.low), float(self.high)
        if not low < high:
            raise ValueError(f"high must be greater than low (got low={self.low}, high={self.high})")
        if self.prior == "normal":
            if self.mean is None or self.sd is None:
                raise ValueError("a normal prior needs mean and sd (and low, high: where it is truncated)")
            if not self.sd > 0:
                raise ValueError(f"sd must be greater than 0 (got {self.sd})")
            if _mass(self) < 1e-9:
                raise ValueError("low..high holds no mass of the normal prior (check mean, sd, low, high)")
        elif self.mean is not None or self.sd is not None:
            raise ValueError(f"mean and sd are for normal priors, not {self.prior}")
        if self.prior == "loguniform" and not low > 0:
            raise ValueError(f"a loguniform prior needs low > 0 (got {self.low})")
        if self.prior == "integer" and not (isinstance(self.low, int) and isinstance(self.high, int)):
            raise ValueError(f"an integer prior needs whole-number low and high (got {self.low}, {self.high})")
        return self


def _mass(p: Prior) -> float:
    from scipy import stats

    z = stats.norm(loc=float(p.mean), scale=float(p.sd))
    return float(z.cdf(float(p.high)) - z.cdf(float(p.low)))


class Target(Strict):
    """A statistic of a calibration run and the record it is compared with (an interval)."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    metric: Annotated[str, Field(min_length=1)] | None = None
    series: Annotated[str, Field(min_length=1)] | None = None
    stat: Literal["value", "mean", "min", "max", "sum"] | None = None
    on: Date | None = None
    from_: Date | None = Field(default=None, alias="from")
    to: Date | None = None
    low: Number | None = None
    high: Number | None = None
    scale: Pos = 1.0
    weight: NonNeg = 1.0
    null_value: Number | None = None
    null_distance: NonNeg | None = None
    source: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        if (self.metric is None) == (self.series is None):
            raise ValueError("give exactly one of metric (a summary.json metric) or series (a timeseries column)")
        window = self.from_ is not None or self.to is not None
        if self.metric is not None:
            if self.stat is not None or self.on is not None or window:
                raise ValueError("stat, on, from and to are for series targets, not metric targets")
        else:
            stat = self.stat or "value"
            if stat == "value":
                if self.on is None or window:
                    raise ValueError('stat = "value" needs on = YYYY-MM-DD (and no from/to)')
            else:
                if self.on is not None or self.from_ is None or self.to is None:
                    raise ValueError(f'stat = "{stat}" needs from and to (a window of days, both included), not on')
                if self.to < self.from_:
                    raise ValueError(f"to ({self.to}) is before from ({self.from_})")
        if self.low is None and self.high is None:
            raise ValueError("give low, high or both (the record as an interval)")
        if self.low is not None and self.high is not None and float(self.low) > float(self.high):
            raise ValueError(f"low must not exceed high (got low={self.low}, high={self.high})")
        if self.null_value is not None and self.null_distance is not None:
            raise ValueError("give null_value or null_distance, not both")
        return self

    @property
    def label(self) -> str:
        """The statistic's name in posterior.parquet and the reports."""
        if self.name is not None:
            return self.name
        if self.metric is not None:
            return self.metric
        stat = self.stat or "value"
        if stat == "value":
            return f"{self.series}@{self.on}"
        return f"{self.series}.{stat}[{self.from_}..{self.to}]"


class CalibrationSettings(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    scenario: Annotated[str, Field(min_length=1)]
    overrides: list[str] = []
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] = 0
    population: Annotated[int, Field(ge=2, le=1_000_000)]
    generations: Annotated[int, Field(ge=1, le=1000)]
    min_epsilon: NonNeg = 0.0
    min_acceptance_rate: Share = 0.0
    max_evaluations: Annotated[int, Field(ge=1)] | None = None
    epsilon_quantile: Annotated[float, Field(gt=0, le=1)] = 0.5
    norm: Annotated[float, Field(ge=1, le=100)] | Literal["max"] = 1.0
    on_error: Literal["stop", "reject"] = "stop"
    predictive_draws: Annotated[int, Field(ge=0, le=100_000)] = 100
    default: bool = False
    reproduce: bool = False


class CalibrationConfig(Strict):
    calibration: CalibrationSettings
    parameters: list[Prior] = Field(min_length=1)
    targets: list[Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CalibrationConfig:
        paths = [p.path for p in self.parameters]
        dup = sorted({p for p in paths if paths.count(p) > 1})
        if dup:
            raise ValueError(f"parameter {dup[0]!r} is listed twice")
        labels = [t.label for t in self.targets]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"target {dup[0]!r} is listed twice (give the targets different names)")
        return self


# --------------------------------------------------------------------------------------------------
# Parameters: the latent space the sampler works in, and the values the model gets
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    """A prior as pyabc sees it (a latent variable ``key``) and as the model sees it (``path`` = value).

    The sampler works in a latent space where each prior is simple: a log-uniform prior is uniform in
    log(value); an integer prior is uniform on ``low - 0.5 .. high + 0.5`` and rounded to the nearest whole
    number (so each integer has equal prior mass and the perturbation kernel stays continuous); uniform
    and truncated-normal priors are their value."""

    index: int
    path: str
    prior: str
    low: float
    high: float
    mean: float | None
    sd: float | None
    integer_field: bool

    @property
    def key(self) -> str:
        return f"p{self.index:02d}_" + self.path.replace(".", "__")

    def rv(self):
        """The latent prior as a :class:`pyabc.RV`."""
        import pyabc

        if self.prior == "uniform":
            return pyabc.RV("uniform", self.low, self.high - self.low)
        if self.prior == "loguniform":
            a, b = math.log(self.low), math.log(self.high)
            return pyabc.RV("uniform", a, b - a)
        if self.prior == "integer":
            return pyabc.RV("uniform", self.low - 0.5, self.high - self.low + 1.0)
        a, b = (self.low - self.mean) / self.sd, (self.high - self.mean) / self.sd
        return pyabc.RV("truncnorm", a, b, self.mean, self.sd)

    def value(self, latent: float) -> int | float:
        """The scenario value for a latent value."""
        x = float(latent)
        if self.prior == "loguniform":
            return float(min(max(math.exp(x), self.low), self.high))
        if self.prior == "integer":
            return int(min(max(math.floor(x + 0.5), self.low), self.high))
        return float(x)

    def values(self, latent: np.ndarray) -> np.ndarray:
        x = np.asarray(latent, dtype=float)
        if self.prior == "loguniform":
            return np.clip(np.exp(x), self.low, self.high)
        if self.prior == "integer":
            return np.clip(np.floor(x + 0.5), self.low, self.high).astype(np.int64)
        return x

    def prior_dist(self):
        """The prior of the scenario value (scipy), for means and intervals."""
        from scipy import stats

        if self.prior == "uniform":
            return stats.uniform(self.low, self.high - self.low)
        if self.prior == "loguniform":
            return stats.loguniform(self.low, self.high)
        if self.prior == "integer":
            return stats.randint(int(self.low), int(self.high) + 1)
        a, b = (self.low - self.mean) / self.sd, (self.high - self.mean) / self.sd
        return stats.truncnorm(a, b, loc=self.mean, scale=self.sd)

    def probe_values(self) -> list:
        if self.prior == "integer":
            return sorted({int(round(x)) for x in np.linspace(self.low, self.high, PROBE_POINTS)})
        return [float(x) for x in np.linspace(self.low, self.high, PROBE_POINTS)]


@dataclass
class Calibration:
    """A validated calibration, with the resolved scenario every simulation starts from."""

    config: CalibrationConfig
    path: Path
    base: dict = field(repr=False)  # resolved scenario (JSON-able), overrides applied
    params: list[ParamSpec] = field(default_factory=list)
    start: dt.date = dt.date(2025, 1, 1)
    end: dt.date = dt.date(2025, 1, 1)

    @property
    def settings(self) -> CalibrationSettings:
        return self.config.calibration

    @property
    def targets(self) -> list[Target]:
        return self.config.targets

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.config.targets]

    def fingerprint(self) -> str:
        """Hash of everything that decides the particles' numbers: the scenario run, priors, targets and
        distance, the population size and seed. Stop rules (generations, min_epsilon, min_acceptance_rate,
        max_evaluations), texts (description, source), ``default``, ``reproduce`` and
        ``predictive_draws`` are not part of it: a calibration may be resumed with more generations."""
        cfg = self.config.model_dump(mode="json", by_alias=True)
        s = cfg["calibration"]
        for k in (
            "description",
            "generations",
            "min_epsilon",
            "min_acceptance_rate",
            "max_evaluations",
            "default",
            "reproduce",
            "predictive_draws",
            "name",
            "scenario",
        ):
            s.pop(k, None)
        for item in cfg["parameters"] + cfg["targets"]:
            item.pop("source", None)
        payload = {"calibration": cfg, "base": stable_view(self.base)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------------
def load_calibration(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Calibration:
    """Read and validate a calibration TOML and its scenario; ``overrides`` (``--set``) apply to the
    calibration file. Every problem is a one-line :class:`ConfigError`. ``path`` may be the name of a shipped
    calibration."""
    from rareshock.resources import locate

    p = locate(path, "calibration")
    data = read_toml(p)
    for item in overrides:
        apply_override(data, item)
    try:
        cfg = CalibrationConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_fix_alias(format_error(err, CalibrationConfig))) from None
    scen_path = (p.parent / cfg.calibration.scenario).resolve()
    scen = read_toml(scen_path)
    if not isinstance(scen.get("scenario"), dict):
        raise ConfigError(f"calibration.scenario: {cfg.calibration.scenario} has no [scenario] table")
    base = world_base(_resolve_extends(scen_path, scen))
    for item in cfg.calibration.overrides:
        try:
            apply_override(base, item)
        except ConfigError as err:
            raise ConfigError(f"calibration.overrides: {err}") from None
    base_cfg = _validated(base, "calibration.overrides")
    base = base_cfg.model_dump(mode="json")
    params = [_check_parameter(i, prm, base) for i, prm in enumerate(cfg.parameters)]
    cal = Calibration(cfg, p, base, params, base_cfg.scenario.start, base_cfg.scenario.end)
    _check_joint(cal)
    _check_targets(cal)
    return cal


def _validated(data: dict, where: str):
    try:
        return validate(data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _near(name: str, allowed) -> str:
    import difflib

    near = difflib.get_close_matches(name, list(allowed), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def _check_parameter(i: int, prm: Prior, base: dict) -> ParamSpec:
    """A prior's path must be a numeric value field of the scenario that accepts its whole range."""
    from rareshock.sweeps.spec import _leaf, _set_path

    where = f"parameters[{i}] ({prm.path})"
    if prm.path.split(".")[0] == "scenario":
        raise ConfigError(
            f"parameters[{i}].path: {prm.path!r}: the scenario table (name, dates, seed) is not calibrated"
        )
    node = base
    for k in prm.path.split(".")[:-1]:
        if not isinstance(node, dict) or k not in node:
            raise ConfigError(f"parameters[{i}].path: {prm.path!r} is not a scenario field{_near_path(prm.path, base)}")
        node = node[k]
    last = prm.path.split(".")[-1]
    if not isinstance(node, dict) or last not in node or isinstance(node[last], dict | list):
        raise ConfigError(
            f"parameters[{i}].path: {prm.path!r} is not a scenario value field{_near_path(prm.path, base)}"
        )
    kind, _ = _leaf(prm.path)
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}: a {kind} field; only number fields can be calibrated")
    if kind == "int" and prm.prior != "integer":
        raise ConfigError(f'{where}: a whole-number field; give it prior = "integer"')
    spec = ParamSpec(
        i,
        prm.path,
        prm.prior,
        float(prm.low),
        float(prm.high),
        None if prm.mean is None else float(prm.mean),
        None if prm.sd is None else float(prm.sd),
        kind == "int",
    )
    for v in spec.probe_values():
        trial = json.loads(json.dumps(base))
        _set_path(trial, prm.path, v)
        _validated(trial, f"{where} = {v!r}")
    return spec


def _near_path(path: str, base: dict) -> str:
    flat = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif not isinstance(node, list):
            flat.append(prefix[:-1])

    walk(base, "")
    return _near(path, flat)


def joint_probe(cal: Calibration) -> list[dict]:
    """Parameter sets validated together before a calibration starts: every corner of the prior box (up
    to 2**10) and :data:`JOINT_DRAWS` draws from the prior (a fixed generator)."""
    specs = cal.params
    rows: list[dict] = []
    if len(specs) <= MAX_CORNERS_DIM:
        for corner in itertools.product(*((s.low, s.high) for s in specs)):
            rows.append({s.path: s.value(_latent_of(s, v)) for s, v in zip(specs, corner)})
    rng = np.random.default_rng(np.random.SeedSequence(cal.settings.seed, spawn_key=(RESAMPLE_KEY + 1,)))
    dists = [s.prior_dist() for s in specs]
    for _ in range(JOINT_DRAWS):
        rows.append({s.path: _plain(s, d.rvs(random_state=rng)) for s, d in zip(specs, dists)})
    return rows


def _latent_of(spec: ParamSpec, value: float) -> float:
    return math.log(value) if spec.prior == "loguniform" else value


def _plain(spec: ParamSpec, v) -> int | float:
    return int(v) if spec.prior == "integer" else float(v)


def _check_joint(cal: Calibration) -> None:
    from rareshock.sweeps.spec import scenario_for

    for row in joint_probe(cal):
        try:
            scenario_for(cal.base, row)
        except ConfigError as err:
            shown = ", ".join(f"{p}={v!r}" for p, v in row.items())
            raise ConfigError(
                f"parameters: the prior box holds values the scenario refuses ({shown}): {err}; narrow the priors"
            ) from None


def _check_targets(cal: Calibration) -> None:
    """Metric names must be summary.json metrics, series timeseries.parquet columns, dates inside the run."""
    from rareshock.simulation import timeseries_columns
    from rareshock.sweeps.executor import metric_columns

    metrics = [m for m in metric_columns() if m != "first_control_date"]
    columns = list(timeseries_columns())
    for j, t in enumerate(cal.targets):
        if t.metric is not None and t.metric not in metrics:
            raise ConfigError(
                f"targets[{j}].metric: {t.metric!r} is not a metric{_near(t.metric, metrics)} (metrics: the "
                f"dotted numeric names of summary.json, e.g. first_us_auto_shutdown_day, cn_licences.approved)"
            )
        if t.series is not None:
            if t.series not in columns:
                raise ConfigError(
                    f"targets[{j}].series: {t.series!r} is not a column of timeseries.parquet{_near(t.series, columns)}"
                )
            for what, day in (("on", t.on), ("from", t.from_), ("to", t.to)):
                if day is not None and not cal.start <= day <= cal.end:
                    raise ConfigError(
                        f"targets[{j}].{what}: {day} is outside the calibration run ({cal.start}..{cal.end}; "
                        f"scenario.end can be set in calibration.overrides)"
                    )


def find_calibrations(folder: Path) -> list[tuple[Path, dict]]:
    """The calibration TOMLs in ``folder`` with their raw ``[calibration]`` table (not validated)."""
    import tomllib

    found = []
    for path in sorted(folder.glob("*.toml")):
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("calibration")
        except (OSError, ValueError):
            continue
        if isinstance(table, dict):
            found.append((path, table))
    return found
