"""The Python API: run a scenario from a notebook or a script.

>>> import rareshock
>>> r = rareshock.run("april_2025_shock", seed=1, licensing__cn__reviewers=40, scenario__end="2025-06-30")
>>> r.summary["us_auto_idle_plant_days"], r.timeseries.shape
>>> fig = r.plot()  # China's magnet exports by destination, a matplotlib Figure

The scenario is a shipped name (``rareshock list``) or a path to a TOML file. Overrides are keyword arguments:
the dotted path of a config field with ``__`` for each dot (``licensing__cn__reviewers=40`` is
``--set licensing.cn.reviewers=40``); values are Python numbers, booleans, strings, dates or lists. They apply
like ``--set`` on the command line, so the same seed and overrides give the same numbers as ``rareshock run``.
``posterior=N`` runs N draws of a published calibration posterior (``rareshock run --posterior N``): the
summary holds medians with a ``posterior`` block, the time series per-day medians and bands, ``draws`` one
row per draw.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from typing import Any

FIGURES = ("exports", "licences", "idle_plants", "prices", "export_limits", "flows")


@dataclass
class Result:
    """One run (or the aggregate of posterior draws) of a scenario."""

    name: str
    seed: int
    summary: dict
    timeseries: Any = field(repr=False)  # pandas.DataFrame, one row per day
    config: dict = field(repr=False)  # the validated config, as written to manifest.json
    draws: Any = field(default=None, repr=False)  # with posterior=N: one row per draw (pandas.DataFrame)

    def plot(self, which: str = "exports"):
        """A matplotlib Figure of the run, drawn by the figure code of ``rareshock run`` (rareshock.outputs):
        ``exports`` (the main timeline: China's magnet exports by destination, the default), ``licences``,
        ``idle_plants``, ``prices``, ``export_limits`` or ``flows`` (material flows by stage and region). The
        figure marks the scenario's events and its caption names the scenario, seed (or posterior draws) and
        the commit of this checkout. Raises ValueError if the run has nothing to show (e.g. ``idle_plants``
        when no plant idled)."""
        from rareshock import outputs

        if which not in FIGURES:
            raise ValueError(f"plot: unknown figure {which!r}; choose one of {', '.join(FIGURES)}")
        outputs.use_agg()
        draws = len(self.draws) if self.draws is not None else None
        manifest = {"git": outputs.git_provenance(), "seed": self.seed}
        ctx = outputs.FigureContext.of(self.config, manifest, draws=draws)
        fig = getattr(outputs, f"fig_{which}")(self.timeseries, ctx)
        if fig is None:
            raise ValueError(f"plot: {self.name} has nothing to show in the {which} figure")
        return fig


def _toml_value(value: Any) -> str:
    """A Python value as the TOML text of a ``--set`` value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"override value {value!r}: expected a number, boolean, string, date or list")


def overrides_from_kwargs(overrides: dict[str, Any]) -> list[str]:
    """``{"licensing__cn__reviewers": 40}`` -> ``["licensing.cn.reviewers=40"]`` (the ``--set`` form)."""
    return [f"{key.replace('__', '.')}={_toml_value(value)}" for key, value in overrides.items()]


def run(
    scenario: str | os.PathLike,
    seed: int | None = None,
    *,
    posterior: int | None = None,
    calibration: str | None = None,
    workers: int | None = None,
    **overrides: Any,
) -> Result:
    """Run ``scenario`` (a shipped name or a TOML path) with ``seed`` (default: the scenario's) and
    ``overrides`` (dotted paths with ``__`` for dots); see the module. Bad input raises
    :class:`rareshock.model.config.ConfigError` with the same one-line message as the command line."""
    from rareshock.model.config import load_scenario

    cfg = load_scenario(scenario, overrides_from_kwargs(overrides))
    seed = cfg.scenario.seed if seed is None else int(seed)
    if posterior is None:
        if calibration is not None or workers is not None:
            raise TypeError("run: calibration and workers go with posterior=N")
        from rareshock.simulation import run_scenario

        res = run_scenario(cfg, seed=seed)
        return Result(cfg.scenario.name, res.seed, res.summary, res.timeseries, res.config)
    from rareshock.calibration.posterior import load_posterior, run_posterior

    post = load_posterior(calibration)
    out = run_posterior(cfg, post, int(posterior), seed, workers)
    return Result(cfg.scenario.name, seed, out["summary"], out["timeseries"], out["base"], out["draws"])
