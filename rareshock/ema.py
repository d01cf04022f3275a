"""rareshock as an EMA Workbench model: ``perform_experiments`` and many-objective search on a scenario.

>>> from ema_workbench import RealParameter, SequentialEvaluator, perform_experiments
>>> from rareshock.ema import ema_model, from_sweep
>>> model = from_sweep("sobol_april_2025", levers=["automakers.US.buffer_days_mean"])
>>> with SequentialEvaluator(model) as evaluator:
...     experiments, outcomes = evaluator.perform_experiments(scenarios=20, policies=2)

:func:`ema_model` wraps a scenario (a shipped name or a TOML path, with fixed overrides given as keyword
arguments as in :func:`rareshock.run`) in an :class:`ema_workbench.Model` whose function runs rareshock;
:func:`from_sweep` takes the scenario, fixed overrides, parameters, outputs, seed and replications of a
sweep file and sorts its parameters into uncertainties and policy levers.

**Names.** An EMA parameter, constant or outcome is named by its rareshock path with ``__`` for each dot,
as the keyword arguments of :func:`rareshock.run`: ``licensing__cn__reviewers`` is
``--set licensing.cn.reviewers=...``, ``cn_licences__approved`` is the summary metric
``cn_licences.approved``. A :class:`~ema_workbench.ScalarOutcome` names a summary metric (``null``, e.g. no
shutdown before the run ended, is NaN), a :class:`~ema_workbench.TimeSeriesOutcome` a column of the run's
time series (daily, or weekly or monthly means with ``frequency``).

**Types.** A whole-number field takes an :class:`~ema_workbench.IntegerParameter`, a number field a
:class:`~ema_workbench.RealParameter` (or integer), a true/false field a
:class:`~ema_workbench.BooleanParameter`; any field a :class:`~ema_workbench.CategoricalParameter` of
allowed values. A sweep's ``low``/``high`` becomes a real (``integer = true``: an integer) parameter over
that range, its list of ``values`` a categorical parameter over them (``[true, false]``: a boolean one),
and a single value a constant.

**Checked when set.** Each parameter, constant and outcome is checked when it is given to the model
(``ema_model(...)``, or ``model.uncertainties = [...]`` etc. afterwards), not in the middle of the
experiments: a path that is not a scenario field, a type the field does not take, a value across the
range that the scenario schema rejects (checked at 9 points, ends included, like a sweep's), a name used
twice, an outcome that is not a metric or column: each raises :class:`ConfigError` with the command line's
one-line message. (Adding to ``model.uncertainties.extend(...)`` directly bypasses the check.)

**Failed runs.** A run that still raises (a combination of values the schema rejects, e.g. shares that
sum above 1, or an error in the model) does not stop the experiments: its outcomes are NaN (a time
series of NaN of the usual length), and a :class:`RunFailedWarning` (also logged on the ``EMA.rareshock``
logger) names its parameters, seed and error. The function never raises, so no evaluator waits on a dead
worker (ema_workbench's multiprocessing evaluator hangs when a model raises); filter the NaN rows out.

**Seeds.** Every experiment runs with the same model seed (``seed``, default the scenario's or the
sweep's): common random numbers, so two policies differ by their levers and not by chance, and the same
experiments give the same outcomes under any evaluator and in any order. With ``replications=N`` the
model is an :class:`~ema_workbench.ReplicatorModel`: replicate r runs with seed
``SeedSequence(seed, spawn_key=(r,))`` (as draw r of ``rareshock run --posterior``); outcomes named
by string are the median over the replicates (:func:`replicate_median`, NaN ignored; per time step for a
time series). To keep every replicate, pass ``ArrayOutcome(name)`` or ``TimeSeriesOutcome(name)``; a
:class:`~ema_workbench.ScalarOutcome` there needs a ``function`` that aggregates the replicates. A sweep
over a calibration's posterior (``posterior = NAME``), or ``ema_model(..., posterior=N)``, gives replicate
r posterior draw r with that seed; a path that is a parameter and also calibrated takes the parameter's
value.

**Levers and uncertainties** (:func:`from_sweep`): a path is a policy lever if it is, or lies under, one
of :data:`LEVER_PATHS` (what the US government and its partners decide: whether deals take effect, the
derisking programme's money, floors and targets, the national stockpile, BIS chip licensing); everything
else (behaviour of firms, China's licensing, technology, prices, the world) is an uncertainty. Pass
``levers=[...]`` or ``uncertainties=[...]`` to move a path to the other side.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from rareshock.model.config import ConfigError, apply_override, load_scenario, validate

with warnings.catch_warnings():  # ema_workbench warns on import that the optional ipyparallel is missing
    warnings.filterwarnings("ignore", message="ipyparallel not installed")
    import ema_workbench as ema
    from ema_workbench.em_framework.parameters import ParameterMapDescriptor
    from ema_workbench.em_framework.util import NamedObjectMapDescriptor

__all__ = [
    "DEFAULT_OUTCOMES",
    "LEVER_PATHS",
    "RunFailedWarning",
    "ema_model",
    "from_sweep",
    "is_lever",
    "replicate_median",
]

LEVER_PATHS = (
    "policy",  # whether deals take effect; retaliation rules
    "investment.budget_usd",  # the derisking programme: its money, timing, allocation, floors, targets
    "investment.start",
    "investment.years",
    "investment.year_shares",
    "investment.stage_shares",
    "investment.target_share",
    "investment.target_regions",
    "investment.training_share",
    "investment.floors",
    "investment.floor_ndfeb_usd_kg",
    "defense.us_national_stockpile_t",  # the National Defense Stockpile and when it releases
    "defense.stockpile_release_trigger_days",
    "chips.bis",  # BIS licensing of US chip exports: reviewers, approval odds
)
"""Config paths that are policy levers in :func:`from_sweep` (a path at or under one of them)."""

DEFAULT_OUTCOMES = ("first_us_auto_shutdown_day", "us_auto_idle_plant_days", "lost_vehicles_us")
"""Summary metrics that :func:`ema_model` reports unless ``outcomes`` is given."""

FREQUENCIES = {"daily": None, "weekly": "W-SUN", "monthly": "MS"}  # as a sweep's timeseries setting
RUN_KEYS = ("seed", "posterior_draw")  # keyword arguments of a run that are not config paths
PROBE_POINTS = 9  # as rareshock.sweeps.spec.PROBE_POINTS

_logger = logging.getLogger("EMA.rareshock")


def is_lever(path: str) -> bool:
    """Whether a dotted config path is a policy lever under :data:`LEVER_PATHS`."""
    return any(path == p or path.startswith(p + ".") for p in LEVER_PATHS)


def _path(name: str) -> str:
    return name.replace("__", ".")


def _name(path: str) -> str:
    return path.replace(".", "__")


def _plain(v: Any) -> Any:
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@functools.lru_cache(maxsize=1)
def _metrics() -> tuple[str, ...]:
    from rareshock.sweeps.executor import metric_columns

    return tuple(_name(m) for m in metric_columns())


@functools.lru_cache(maxsize=1)
def _columns() -> tuple[str, ...]:
    from rareshock.simulation import timeseries_columns

    return timeseries_columns()


def _near(name: str, allowed: Iterable[str]) -> str:
    from rareshock.sweeps.spec import _near as near

    return near(name, allowed)


# --------------------------------------------------------------------------------------------------
# One run: the model's function
# --------------------------------------------------------------------------------------------------
class RunFailedWarning(RuntimeWarning):
    """A run of an EMA experiment failed; its outcomes are NaN (see the module)."""


class _Outputs(Mapping):
    """What a run returns to EMA: summary metrics by ``__`` name and time-series columns, computed when
    EMA asks for them. ``summary`` None (a failed run): NaN, and time series of NaN."""

    def __init__(self, summary: dict | None, timeseries, frequency: str, n: int):
        self._summary, self._ts, self._freq, self._n = summary, timeseries, frequency, n

    def __getitem__(self, key: str):
        if key in _metrics():
            return math.nan if self._summary is None else self._summary.get(key, math.nan)
        if key in _columns():
            if self._ts is None:
                return np.full(self._n, np.nan)
            return _aggregate(self._ts.set_index("date")[key], self._freq).to_numpy(dtype=float)
        raise KeyError(key)

    def __iter__(self):
        return iter(_metrics() + _columns())

    def __len__(self) -> int:
        return len(_metrics()) + len(_columns())


def _aggregate(series, frequency: str):
    rule = FREQUENCIES[frequency]
    return series if rule is None else series.resample(rule).mean()


class RunScenario:
    """The function of a rareshock EMA model: ``RunScenario(base)(seed=..., licensing__cn__reviewers=40)``
    runs the resolved scenario ``base`` with those values (``__`` for dots) and returns its outcomes.
    A module-level class, so that the multiprocessing evaluator can pickle it."""

    def __init__(self, base: dict, frequency: str = "daily", draws: list[dict] | None = None):
        self.base = base
        self.frequency = frequency
        self.draws = draws or []  # values of posterior draw r, by dotted path

    def length(self) -> int:
        """Entries of each time-series outcome (days, weeks or months of the run)."""
        import pandas as pd

        start, end = (dt.date.fromisoformat(self.base["scenario"][k]) for k in ("start", "end"))
        days = pd.Series(0.0, index=pd.date_range(start, end, freq="D"))
        return len(_aggregate(days, self.frequency))

    def __call__(self, seed: int, posterior_draw: int | None = None, **values: Any) -> _Outputs:
        from rareshock.simulation import run_scenario
        from rareshock.sweeps.spec import flatten, scenario_for

        params = {_path(k): _plain(v) for k, v in values.items()}
        if posterior_draw is not None:
            params = {**self.draws[posterior_draw], **params}
        try:
            result = run_scenario(scenario_for(self.base, params), seed=int(seed))
        except Exception as err:  # the experiments go on; see the module on failed runs
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            message = f"rareshock run failed ({shown}, seed={seed}): {type(err).__name__}: {err}"
            _logger.warning(message)
            warnings.warn(message, RunFailedWarning, stacklevel=2)
            return _Outputs(None, None, self.frequency, self.length())
        summary = {_name(k): v for k, v in flatten(result.summary).items()}
        return _Outputs(summary, result.timeseries, self.frequency, self.length())


# --------------------------------------------------------------------------------------------------
# Checks when parameters, constants and outcomes are given to the model
# --------------------------------------------------------------------------------------------------
def _kind(path: str, base: dict, where: str) -> tuple[str, tuple]:
    """The kind of the scenario value field at ``path`` (as rareshock.sweeps.spec._leaf), or ConfigError."""
    from rareshock.sweeps.spec import _leaf

    node = base
    keys = path.split(".")
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node:
            known = [".".join([*keys[:i], c]) for c in node] if isinstance(node, dict) else []
            hint = _near(".".join(keys[: i + 1]), known)
            raise ConfigError(f"{where}: {path!r} is not a scenario field{hint}")
        node = node[k]
    if isinstance(node, dict | list):
        raise ConfigError(f"{where}: {path!r} is a table or a list, not a scenario value field")
    if path in ("scenario.world", "scenario.extends", "scenario.name"):
        raise ConfigError(f"{where}: {path!r} cannot vary between experiments; make one model per value")
    return _leaf(path)


def _probe(par: ema.em_framework.parameters.Parameter, kind: str) -> list:
    """The values of ``par`` checked against the schema: its categories, or points across its range."""
    if isinstance(par, ema.CategoricalParameter):
        return [_plain(c.value) for c in par.categories]
    v = np.linspace(par.lower_bound, par.upper_bound, PROBE_POINTS)
    if isinstance(par, ema.IntegerParameter):
        return sorted({int(round(x)) for x in v})
    return [float(x) for x in v]


def _check_parameter(par, base: dict, where: str) -> None:
    from rareshock.sweeps.spec import scenario_for

    if not isinstance(par, ema.em_framework.parameters.Parameter):
        raise ConfigError(f"{where}: expected an ema_workbench parameter (RealParameter, ...), got {par!r}")
    where = f"{where} {par.name!r}"
    if par.shape is not None:
        raise ConfigError(f"{where}: parameters with a shape are not supported; give one parameter per path")
    values_bool = isinstance(par, ema.CategoricalParameter) and all(isinstance(c.value, bool) for c in par.categories)
    for var in par.variable_name:
        path = _path(var)
        kind, choices = _kind(path, base, where)
        cls = type(par).__name__
        if kind == "bool" and not values_bool:
            raise ConfigError(f"{where}: {path} is a true/false field; use BooleanParameter")
        if kind != "bool" and isinstance(par, ema.BooleanParameter):
            raise ConfigError(f"{where}: {path} is not a true/false field (BooleanParameter is for those)")
        if kind == "int" and type(par) is ema.RealParameter:
            raise ConfigError(f"{where}: {path} is a whole-number field; use IntegerParameter, not {cls}")
        if kind in ("choice", "text", "date", "other") and not isinstance(par, ema.CategoricalParameter):
            allowed = f" (allowed: {', '.join(map(repr, choices))})" if choices else ""
            raise ConfigError(f"{where}: {path} is a {kind} field; use CategoricalParameter{allowed}")
        for v in _probe(par, kind):
            try:
                scenario_for(base, {path: v})
            except ConfigError as err:
                raise ConfigError(f"{where} = {v!r}: {err}") from None


def _check_outcome(out, where: str, replicated: bool) -> None:
    metric = "a summary metric (dotted names with __, e.g. cn_licences__approved)"
    column = "a column of the run's time series (timeseries.parquet)"
    if isinstance(out, ema.ScalarOutcome):
        allowed, what = _metrics(), metric
        if replicated and out.function is None:
            raise ConfigError(
                f"{where} {out.name!r}: each experiment has several replicates; give the ScalarOutcome a "
                f"function that aggregates them (e.g. function=np.nanmean), or use ArrayOutcome"
            )
    elif isinstance(out, ema.TimeSeriesOutcome):
        allowed, what = _columns(), column
    elif isinstance(out, ema.ArrayOutcome):
        allowed, what = _metrics() + _columns(), f"{metric} or {column}"
    else:
        raise ConfigError(f"{where}: {out!r}: use ScalarOutcome (a metric) or TimeSeriesOutcome (a column)")
    for var in out.variable_name:
        if var not in allowed:
            raise ConfigError(f"{where} {out.name!r}: {var!r} is not {what}{_near(var, allowed)}")


class _CheckedParameters(ParameterMapDescriptor):
    def __set__(self, instance, values):
        values = [values] if isinstance(values, ema.em_framework.parameters.Parameter) else list(values)
        instance._check(self.name, values)
        super().__set__(instance, values)


class _CheckedNamed(NamedObjectMapDescriptor):
    def __set__(self, instance, values):
        values = [values] if isinstance(values, ema.em_framework.util.NamedObject) else list(values)
        instance._check(self.name, values)
        super().__set__(instance, values)


class _Checks:
    """Checks parameters, constants and outcomes when they are set (see the module)."""

    uncertainties = _CheckedParameters()
    levers = _CheckedParameters()
    constants = _CheckedNamed(ema.Constant)
    outcomes = _CheckedNamed(ema.em_framework.outcomes.Outcome)

    def run_model(self, scenario, policy, constants) -> None:
        # ema_workbench 3.0.0's DefaultCallback stores an experiment as ``scenario | policy``, whose shallow
        # copy writes the policy's levers into the scenario's dict; a model without uncertainties then
        # sees them twice in its next experiment ("Parameters exist in both"). Drop them from this copy.
        levers = {var for par in self.levers for var in par.variable_name} | {par.name for par in self.levers}
        scenario.data = {k: v for k, v in scenario.items() if k not in levers}
        super().run_model(scenario, policy, constants)

    def _taken(self, attribute: str) -> dict[str, str]:
        """Variable names already in use by the other inputs, and where."""
        out = {}
        for other in ("uncertainties", "levers", "constants"):
            if other == attribute:
                continue
            for obj in getattr(self, other):
                for var in obj.variable_name:
                    out[var] = other
        return out

    def _check(self, attribute: str, values: list) -> None:
        base = self.function.base
        if attribute == "outcomes":
            for out in values:
                _check_outcome(out, attribute, isinstance(self, ema.ReplicatorModel))
            return
        taken = self._taken(attribute)
        for obj in values:
            for var in getattr(obj, "variable_name", [getattr(obj, "name", "")]):
                if var in taken:
                    raise ConfigError(f"{attribute} {obj.name!r}: {var} is already one of the {taken[var]}")
                if var in RUN_KEYS and attribute != "constants":
                    raise ConfigError(f"{attribute} {obj.name!r}: {var} is set by the model ({var} argument)")
        if attribute == "constants":
            for c in values:
                if not isinstance(c, ema.Constant):
                    raise ConfigError(f"constants: expected ema_workbench.Constant, got {c!r}")
                if c.name in RUN_KEYS and isinstance(self, ema.ReplicatorModel):
                    raise ConfigError(f"constants {c.name!r}: set by the replications of this model")
                if c.name == "seed":
                    if not isinstance(c.value, int) or isinstance(c.value, bool) or c.value < 0:
                        raise ConfigError(f"constants 'seed': expected a whole number >= 0 (got {c.value!r})")
                    continue
                for var in c.variable_name:
                    path = _path(var)
                    _kind(path, base, f"constants {c.name!r}")
                    try:
                        validate(_with(base, path, _plain(c.value)))
                    except ConfigError as err:
                        raise ConfigError(f"constants {c.name!r} = {c.value!r}: {err}") from None
            return
        for par in values:
            _check_parameter(par, base, attribute)
        if any(isinstance(o, ema.TimeSeriesOutcome) for o in self.outcomes):
            for par in values:
                if any(_path(v) in ("scenario.start", "scenario.end") for v in par.variable_name):
                    raise ConfigError(f"{attribute} {par.name!r}: time-series outcomes need fixed dates")


def _with(base: dict, path: str, value: Any) -> dict:
    from rareshock.sweeps.spec import _set_path

    data = json.loads(json.dumps(base))
    _set_path(data, path, value)
    return data


class RareshockModel(_Checks, ema.Model):
    """An :class:`ema_workbench.Model` running a rareshock scenario with one seed (see the module)."""


class RareshockReplicatorModel(_Checks, ema.ReplicatorModel):
    """An :class:`ema_workbench.ReplicatorModel` running each experiment over seeds or posterior draws."""


# --------------------------------------------------------------------------------------------------
# Building models
# --------------------------------------------------------------------------------------------------
def _identifier(name: str) -> str:
    out = re.sub(r"\W", "_", name)
    return out if out.isidentifier() else f"m_{out}"


def replicate_median(values) -> float | np.ndarray:
    """The median over an experiment's replicates, ignoring NaN (null metrics, failed runs); NaN if all
    are NaN. Per time step for a time series. The aggregate of outcomes named by string in a replicated
    model; rareshock reports runs over posterior draws by their medians too."""
    arr = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        out = np.nanmedian(arr, axis=0)
    return float(out) if np.ndim(out) == 0 else out


def _outcome(item: Any, replicated: bool) -> Any:
    """An outcome given as a name: a metric (dots or __) becomes a ScalarOutcome, a column a
    TimeSeriesOutcome; in a replicated model, of the median over the replicates."""
    if not isinstance(item, str):
        return item
    name = _name(item)
    function = replicate_median if replicated else None
    if name in _metrics():
        return ema.ScalarOutcome(name, function=function)
    if name in _columns():
        return ema.TimeSeriesOutcome(name, function=function)
    allowed = _metrics() + _columns()
    raise ConfigError(f"outcomes: {item!r} is not a summary metric or time-series column{_near(name, allowed)}")


def _build(
    base: dict,
    name: str,
    *,
    uncertainties: Iterable,
    levers: Iterable,
    constants: Iterable,
    outcomes: Iterable,
    seed: int,
    replications: int | None,
    draws: list[dict] | None,
    frequency: str,
) -> RareshockModel | RareshockReplicatorModel:
    from rareshock.calibration.posterior import draw_seed

    if frequency not in FREQUENCIES:
        raise ConfigError(f"frequency: {frequency!r} is not allowed (allowed: {', '.join(FREQUENCIES)})")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed: expected a whole number from 0 to 2**63-1 (got {seed!r})")
    if replications is not None and (isinstance(replications, bool) or not isinstance(replications, int)):
        raise ConfigError(f"replications: expected a whole number >= 1 (got {replications!r})")
    if replications is not None and replications < 1:
        raise ConfigError(f"replications: expected a whole number >= 1 (got {replications})")
    function = RunScenario(base, frequency, draws)
    ident = _identifier(name)
    if replications is None:
        model = RareshockModel(ident, function=function)
        model.constants = [ema.Constant("seed", seed)]
    else:
        model = RareshockReplicatorModel(ident, function=function)
        reps = [{"seed": draw_seed(seed, r)} for r in range(replications)]
        if draws:
            reps = [{**rep, "posterior_draw": r} for r, rep in enumerate(reps)]
        model.replications = reps
    model.outcomes = [_outcome(o, replications is not None) for o in outcomes]
    model.constants = list(constants)
    model.uncertainties = list(uncertainties)
    model.levers = list(levers)
    return model


def ema_model(
    scenario: str,
    *,
    uncertainties: Iterable = (),
    levers: Iterable = (),
    outcomes: Iterable = DEFAULT_OUTCOMES,
    constants: Iterable = (),
    seed: int | None = None,
    replications: int | None = None,
    posterior: int | None = None,
    calibration: str | None = None,
    frequency: str = "daily",
    name: str | None = None,
    **overrides: Any,
) -> RareshockModel | RareshockReplicatorModel:
    """An EMA Workbench model of ``scenario`` (a shipped name or a TOML path) with fixed ``overrides``
    (keyword arguments as in :func:`rareshock.run`, ``__`` for dots).

    ``uncertainties``, ``levers`` and ``constants`` are ema_workbench parameters and constants named by
    config path (``__`` for dots); ``outcomes`` are ema_workbench outcomes or names (a summary metric
    becomes a ScalarOutcome, a time-series column a TimeSeriesOutcome sampled at ``frequency``: "daily",
    "weekly" or "monthly" means). ``seed`` (default the scenario's) is every experiment's model seed;
    ``replications=N`` runs each experiment with N seeds, ``posterior=N`` over N draws of a published
    posterior (``calibration``, default the default one), each with its seed. The name of the model is
    ``name`` or the scenario's. Bad input raises :class:`ConfigError` (one line). See the module."""
    from rareshock.api import overrides_from_kwargs

    cfg = load_scenario(scenario, overrides_from_kwargs(overrides))
    base = cfg.model_dump(mode="json")
    draws = None
    if posterior is not None:
        from rareshock.calibration.posterior import check_draws, load_posterior

        if replications is not None:
            raise ConfigError("replications: give replications or posterior, not both")
        if isinstance(posterior, bool) or not isinstance(posterior, int) or posterior < 1:
            raise ConfigError(f"posterior: expected a whole number of draws >= 1 (got {posterior!r})")
        post = load_posterior(calibration)
        picked = post.draws(posterior, cfg.scenario.seed if seed is None else seed)
        check_draws(base, picked, "posterior")
        draws, replications = [values for _, values in picked], posterior
    elif calibration is not None:
        raise ConfigError("calibration: goes with posterior=N")
    return _build(
        base,
        name or cfg.scenario.name,
        uncertainties=uncertainties,
        levers=levers,
        constants=constants,
        outcomes=outcomes,
        seed=cfg.scenario.seed if seed is None else seed,
        replications=replications,
        draws=draws,
        frequency=frequency,
    )


def _sweep_parameter(prm, name: str):
    """A sweep's parameter as an ema_workbench parameter (or a Constant, for a single value)."""
    if prm.values is None:
        cls = ema.IntegerParameter if prm.integer else ema.RealParameter
        low, high = (int(prm.low), int(prm.high)) if prm.integer else (prm.low, prm.high)
        return cls(name, low, high)
    values = list(dict.fromkeys(prm.values))
    if len(values) == 1:
        return ema.Constant(name, values[0])
    if sorted(values, key=str) == [False, True] and all(isinstance(v, bool) for v in values):
        return ema.BooleanParameter(name)
    return ema.CategoricalParameter(name, values)


def from_sweep(
    sweep: str,
    *,
    levers: Iterable[str] = (),
    uncertainties: Iterable[str] = (),
    outcomes: Iterable | None = None,
    seed: int | None = None,
    replications: int | None = None,
    frequency: str | None = None,
    name: str | None = None,
    **overrides: Any,
) -> RareshockModel | RareshockReplicatorModel:
    """An EMA Workbench model from a sweep file (a shipped name or a path): its scenario and fixed
    overrides, its parameters as uncertainties and levers (the rule of :data:`LEVER_PATHS`; the paths in
    ``levers`` / ``uncertainties`` go to that side instead), its ``outputs`` as scalar outcomes and, with
    ``timeseries = "weekly"`` or ``"monthly"``, its ``timeseries_columns`` as time-series outcomes. Seed
    and replications are the sweep's (a posterior sweep: replicate r is posterior draw r) unless given;
    ``overrides`` apply on top of the sweep's. See :func:`ema_model` and the module."""
    from rareshock.api import overrides_from_kwargs
    from rareshock.sweeps.spec import load_sweep

    sw = load_sweep(sweep)
    s = sw.settings
    base = json.loads(json.dumps(sw.base))
    for item in overrides_from_kwargs(overrides):
        apply_override(base, item)
    base = validate(base).model_dump(mode="json")
    paths = sw.param_paths
    moved = {}
    for side, given in (("levers", levers), ("uncertainties", uncertainties)):
        for p in given:
            path = _path(p)
            if path not in paths:
                raise ConfigError(f"{side}: {p!r} is not a parameter of sweep {s.name}{_near(path, paths)}")
            if path in moved:
                raise ConfigError(f"{side}: {p!r} is also given as one of the {moved[path]}")
            moved[path] = side
    sides: dict[str, list] = {"uncertainties": [], "levers": [], "constants": []}
    for prm in sw.config.parameters:
        obj = _sweep_parameter(prm, _name(prm.path))
        side = moved.get(prm.path, "levers" if is_lever(prm.path) else "uncertainties")
        sides["constants" if isinstance(obj, ema.Constant) else side].append(obj)
    draws = [values for _, values in sw.draws] if sw.posterior is not None else None
    if draws and replications is not None and replications != len(draws):
        raise ConfigError(f"replications: a posterior sweep runs its {len(draws)} posterior draws")
    reps = len(draws) if draws else (replications if replications is not None else s.replications)
    freq = frequency or ("daily" if s.timeseries == "none" else s.timeseries)
    if outcomes is None:
        outcomes = list(s.outputs) + (list(s.timeseries_columns) if s.timeseries != "none" else [])
    return _build(
        base,
        name or s.name,
        uncertainties=sides["uncertainties"],
        levers=sides["levers"],
        constants=sides["constants"],
        outcomes=outcomes,
        seed=s.seed if seed is None else seed,
        replications=None if reps == 1 and not draws else reps,
        draws=draws,
        frequency=freq,
    )
