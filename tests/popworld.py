"""Tiny worlds for the population unit tests: the default config with few actors, built without a
scenario file, and helpers to put the network into a state set by hand.

A tiny world has the default regions, capacities and demand totals (so the builder's checks pass) but only a
handful of plants, programmes and Chinese producers: building one takes milliseconds, so every test builds
its own and drives one population's phase method directly.
"""

from __future__ import annotations

import numpy as np

from rareshock.model.codes import CN, REGIONS, Kind
from rareshock.model.config import ScenarioConfig, apply_override, defaults, validate
from rareshock.model.model import RareShockModel

SMALL = (
    "automakers.US.plants=3",
    "automakers.EU.plants=2",
    "automakers.JP.plants=2",
    "automakers.IN.plants=1",
    "automakers.CN.plants=2",
    "automakers.ROW.plants=1",
    "defense.US.programmes=3",
    "defense.EU.programmes=1",
    "defense.JP.programmes=1",
    "magnet_makers.cn_makers=4",
    "separators.cn_separators=2",
)


def tiny_config(
    *overrides: str,
    start: str = "2025-01-01",
    end: str = "2025-06-30",
    events: list | None = None,
    policy: dict | None = None,
) -> ScenarioConfig:
    """Defaults with few actors (``SMALL``), then ``overrides`` (``--set`` syntax); ``events`` and ``policy``
    as a scenario file would give them (dicts)."""
    data = defaults()
    data["scenario"] = {"name": "unit", "start": start, "end": end}
    if events:
        data["events"] = list(events)
    if policy:
        data["policy"] = {**data["policy"], **policy}
    for item in SMALL + tuple(overrides):
        apply_override(data, item)
    return validate(data)


def tiny_model(*overrides: str, seed: int = 0, **kw) -> RareShockModel:
    return RareShockModel(tiny_config(*overrides, **kw), rng=seed)


def empty(net) -> None:
    """No stock, no orders, nothing in transit (capacities, needs and shares stay)."""
    net.stock[:] = 0.0
    net.backlog[:] = 0.0
    net.transit[:] = 0.0
    net.pipe[:] = 0.0
    net.out_rate[:] = 0.0


def nodes(net, kind: int, region: str | None = None) -> np.ndarray:
    sel = net.kind == kind
    if region is not None:
        sel &= net.region == REGIONS.index(region)
    return np.flatnonzero(sel)


def cn_nodes(net, kind: int) -> np.ndarray:
    return np.flatnonzero((net.kind == kind) & (net.region == CN))


def edges(net, sup=None, buy=None, mat=None) -> np.ndarray:
    sel = np.ones(net.e, dtype=bool)
    if sup is not None:
        sel &= np.isin(net.sup, np.atleast_1d(sup))
    if buy is not None:
        sel &= np.isin(net.buy, np.atleast_1d(buy))
    if mat is not None:
        sel &= net.mat == mat
    return np.flatnonzero(sel)


def col(model, name: str) -> float:
    """Today's value of a record column (the row the populations write into)."""
    return float(model.records.row[model.records.index[name]])


def makers(net, product: int, region: str | None = None) -> np.ndarray:
    sel = (net.kind == Kind.MAKER) & (net.cap[:, product] > 0)
    if region is not None:
        sel &= net.region == REGIONS.index(region)
    return np.flatnonzero(sel)
