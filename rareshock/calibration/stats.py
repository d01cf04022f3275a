"""The statistics of one simulation and their distance to the record.

A target's statistic is a dotted ``summary.json`` metric (null becomes NaN) or a statistic of one
``timeseries.parquet`` column: its value on a date, or its mean, min, max or sum over a window of days
(both ends included). The record is an interval ``[low, high]`` (either end may be open). A statistic
inside the interval is at distance 0; outside, at ``gap / scale``. A null statistic (NaN) is at
``null_distance`` (default :data:`~rareshock.calibration.config.NULL_DISTANCE`), unless the target gives a
``null_value`` to use instead (e.g. the horizon, for "no shutdown before the end of the run"). The distance
of a simulation is the weighted p-norm of the per-target distances, ``(sum_i w_i d_i^p)^(1/p)`` (``p =
norm``, 1 by default: a weighted sum), or ``max_i w_i d_i`` for ``norm = "max"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rareshock.calibration.config import NULL_DISTANCE, Calibration


@dataclass(frozen=True)
class TargetArrays:
    """The targets as arrays, for fast distances (picklable; no pydantic objects in the workers' loop)."""

    labels: tuple[str, ...]
    low: np.ndarray  # -inf where open
    high: np.ndarray  # +inf where open
    scale: np.ndarray
    weight: np.ndarray
    null_value: np.ndarray  # NaN where not given
    null_distance: np.ndarray
    norm: float  # p, or inf for "max"
    # how to read each statistic: ("metric", name) or ("series", column, stat, first_day, last_day)
    readers: tuple[tuple, ...]

    @classmethod
    def of(cls, cal: Calibration) -> TargetArrays:
        ts = cal.targets
        readers = []
        for t in ts:
            if t.metric is not None:
                readers.append(("metric", t.metric))
            else:
                stat = t.stat or "value"
                first = (t.on if stat == "value" else t.from_) - cal.start
                last = (t.on if stat == "value" else t.to) - cal.start
                readers.append(("series", t.series, stat, first.days, last.days))
        norm = cal.settings.norm
        return cls(
            labels=tuple(t.label for t in ts),
            low=np.array([-np.inf if t.low is None else float(t.low) for t in ts]),
            high=np.array([np.inf if t.high is None else float(t.high) for t in ts]),
            scale=np.array([float(t.scale) for t in ts]),
            weight=np.array([float(t.weight) for t in ts]),
            null_value=np.array([np.nan if t.null_value is None else float(t.null_value) for t in ts]),
            null_distance=np.array([NULL_DISTANCE if t.null_distance is None else float(t.null_distance) for t in ts]),
            norm=np.inf if norm == "max" else float(norm),
            readers=tuple(readers),
        )

    def per_target(self, values: np.ndarray) -> np.ndarray:
        """Per-target distances of statistics ``values`` (shape (..., targets); NaN = null)."""
        x = np.asarray(values, dtype=float)
        x = np.where(np.isnan(x), self.null_value, x)
        gap = np.maximum(np.maximum(self.low - x, x - self.high), 0.0)
        with np.errstate(invalid="ignore"):
            d = gap / self.scale
        return np.where(np.isnan(x), self.null_distance, d)

    def combine(self, d: np.ndarray) -> np.ndarray | float:
        """The distance of a simulation from its per-target distances (last axis)."""
        d = np.asarray(d, dtype=float)
        if np.isinf(self.norm):
            return np.max(self.weight * d, axis=-1)
        p = self.norm
        if p == 1.0:
            return np.sum(self.weight * d, axis=-1)
        return np.sum(self.weight * d**p, axis=-1) ** (1.0 / p)

    def distance(self, values: np.ndarray) -> float:
        return float(self.combine(self.per_target(values)))


def read_statistics(model, summary_flat: dict, arrays: TargetArrays) -> np.ndarray:
    """The targets' statistics of a finished model (NaN where a metric is null)."""
    out = np.empty(len(arrays.readers))
    for i, r in enumerate(arrays.readers):
        if r[0] == "metric":
            out[i] = float(summary_flat.get(r[1], np.nan))
        else:
            _, column, stat, first, last = r
            x = model.records.column(column)[first : last + 1]
            out[i] = float({"value": np.mean, "mean": np.mean, "min": np.min, "max": np.max, "sum": np.sum}[stat](x))
    return out


def simulate(base: dict, values: dict, seed: int, arrays: TargetArrays) -> np.ndarray:
    """Run the calibration scenario with parameter ``values`` (dotted path -> value) and ``seed``; returns
    the targets' statistics."""
    from rareshock.simulation import run_model, summarise
    from rareshock.sweeps.spec import flatten, scenario_for

    model = run_model(scenario_for(base, values), seed)
    flat = {}
    if any(r[0] == "metric" for r in arrays.readers):
        flat = flatten({k: v for k, v in summarise(model).items() if k != "scenario"})
    return read_statistics(model, flat, arrays)
