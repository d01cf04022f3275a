"""The daily record: a column registry that every population contributes to, and the material balance.

Each population declares its record columns (``COLUMNS``, and which of them are counts in
``INTEGER_COLUMNS``). The registry gives it the current row (``row``) and the position of its first
column (``at``); the population writes its values there whenever it computes them in its own phases
(most every day, some only when they change: licence counts, monthly investment figures). Owners with an
``end_of_day()`` method write then. At the end of each day the registry stores the row; at the end of a
run it turns the days x columns array into a DataFrame (a ``date`` column, counts as integers).

The material balance is the accounting the invariants check: by material, what was produced, consumed
(producers' inputs plus end users' use), held in stock (including the national stockpile and the stockpile
programmes' reserves) and in transit.
Production + start stock = consumption + end stock + transit, every day.

The material flows are the same material by stage of the chain and region (:class:`MaterialFlows`), what
a flow chart of mine → separation → magnets → products needs: oxide separated in each region, oxide shipped
from separators in one region to magnet makers in another, magnets made in each region, magnets shipped
from makers in one region to end users in another, and magnets used by end users, by sector and region.
The model has no mining stage (separators produce oxide within their capacity; ore is not modelled), so
the chain starts at separation.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rareshock.model.codes import MATERIALS, REGIONS, Kind, Material
from rareshock.model.numerics import kernel


class Records:
    """Column registry and the daily record of one run."""

    def __init__(self, n_days: int, owners: list):
        self.owners: list[tuple[object, int]] = []
        columns: list[str] = []
        integer: set[str] = set()
        for owner in owners:
            self.owners.append((owner, len(columns)))
            columns += list(owner.COLUMNS)
            integer |= set(getattr(owner, "INTEGER_COLUMNS", ()))
        if len(set(columns)) != len(columns):
            dup = sorted({c for c in columns if columns.count(c) > 1})
            raise ValueError(f"record columns registered twice: {dup}")
        self.columns = tuple(columns)
        self.index = {c: i for i, c in enumerate(columns)}
        self.integer = integer
        self.data = np.zeros((n_days, len(columns)))
        self.row = np.zeros(len(columns))
        for owner, at in self.owners:
            owner.row, owner.at = self.row, at
            if hasattr(owner, "start_record"):
                owner.start_record()
        self._end_of_day = [o.end_of_day for o, _ in self.owners if hasattr(o, "end_of_day")]

    def write(self, day: int) -> None:
        """Store today's row (after the owners that record at the end of the day have written)."""
        for hook in self._end_of_day:
            hook()
        self.data[day] = self.row

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.index[name]]

    def frame(self, start: dt.date, days: int | None = None) -> pd.DataFrame:
        """The record as a DataFrame: ``date``, then every column (counts as int64)."""
        n = self.data.shape[0] if days is None else days
        df = pd.DataFrame(self.data[:n], columns=list(self.columns))
        for c in self.integer:
            df[c] = df[c].astype(np.int64)
        df.insert(0, "date", pd.date_range(start, periods=n, freq="D"))
        return df


class MaterialBalance:
    """Production, consumption, stock and transit by material, each day."""

    COLUMNS = tuple(f"{k}_{m}_t" for m in MATERIALS for k in ("produced", "consumed", "stock", "transit"))

    def __init__(self, net, producers, stockpile: np.ndarray, reserve: np.ndarray | None = None):
        self.net, self.producers, self.stockpile = net, producers, stockpile
        self.reserve = np.zeros(len(MATERIALS)) if reserve is None else reserve  # stockpile programmes' holdings
        self.end_use = np.zeros(len(MATERIALS))  # today's use by end users, t by material (the ledger)

    def end_of_day(self) -> None:
        held = self.stockpile + self.reserve if self.reserve.any() else self.stockpile
        self.net.record_balance(held, self.producers.made, self.producers.used_in, self.end_use, self.row, self.at)


FLOW_SECTORS = ("auto", "defense", "industry")
"""End uses of magnets in the flow record: assembly plants, defence programmes, other industrial users."""


def flow_columns(regions: tuple[str, ...] = REGIONS) -> tuple[str, ...]:
    """The flow record's columns (t/day), in the order :class:`MaterialFlows` writes them."""
    rs = [r.lower() for r in regions]
    return (
        tuple(f"flow_separated_{r}_t" for r in rs)
        + tuple(f"flow_oxide_{a}_to_{b}_t" for a in rs for b in rs)
        + tuple(f"flow_magnets_made_{r}_t" for r in rs)
        + tuple(f"flow_magnets_{a}_to_{b}_t" for a in rs for b in rs)
        + tuple(f"flow_used_{s}_{r}_t" for s in FLOW_SECTORS for r in rs)
    )


@kernel
def _flows(made, p_region, p_maker, ship, e_sup, e_buy, e_magnet, used, u_region, u_sector, nr, row, at):
    """Today's flows into ``row`` from ``at`` (layout of :func:`flow_columns`)."""
    n_cols = 2 * nr + 2 * nr * nr + 3 * nr
    for k in range(n_cols):
        row[at + k] = 0.0
    made_at = at + nr + nr * nr
    for p in range(made.shape[0]):
        if p_maker[p]:
            row[made_at + p_region[p]] += made[p]
        else:
            row[at + p_region[p]] += made[p]
    oxide_at = at + nr
    magnets_at = made_at + nr
    for e in range(ship.shape[0]):
        if e_magnet[e]:
            row[magnets_at + e_sup[e] * nr + e_buy[e]] += ship[e]
        else:
            row[oxide_at + e_sup[e] * nr + e_buy[e]] += ship[e]
    used_at = magnets_at + nr * nr
    for k in range(used.shape[0]):
        row[used_at + u_sector[k] * nr + u_region[k]] += used[k]


class MaterialFlows:
    """Material flows by stage and region, each day (t/day; see the module docstring and
    :func:`flow_columns`). Written at the end of the day from arrays the day's phases already hold: each
    producer's output (``Producers.made_by_pair``), each relationship's shipment (``ship_today``) and each
    end user's use (the populations' ``used``). Oxides (NdPr, Dy/Tb, Sm) are summed, and so are magnets
    (NdFeB, SmCo)."""

    COLUMNS = flow_columns()

    def __init__(self, net, producers, plants, defense, industry):
        self.net, self.producers = net, producers
        self.populations = (plants, defense, industry)
        self.p_region = net.region[producers.node].astype(np.int64)
        self.p_maker = net.kind[producers.node] == Kind.MAKER
        self.e_sup = net.region[net.sup].astype(np.int64)
        self.e_buy = net.region[net.buy].astype(np.int64)
        self.e_magnet = net.mat >= int(Material.NDFEB)
        plant_nodes = plants.node_flat[plants.node_flat >= 0] // len(MATERIALS)  # the order of plants.used
        nodes = [plant_nodes, defense.flat // len(MATERIALS), industry.flat // len(MATERIALS)]
        self.u_region = np.concatenate([net.region[n] for n in nodes]).astype(np.int64)
        self.u_sector = np.concatenate([np.full(n.size, s, dtype=np.int64) for s, n in enumerate(nodes)])
        self.used = np.zeros(self.u_region.size)

    def end_of_day(self) -> None:
        plants, defense, industry = self.populations
        k = 0
        for pop in (plants, defense, industry):  # today's use, in the order of u_region
            self.used[k : k + pop.used.size] = pop.used
            k += pop.used.size
        _flows(
            self.producers.made_by_pair,
            self.p_region,
            self.p_maker,
            self.producers.ship_today,
            self.e_sup,
            self.e_buy,
            self.e_magnet,
            self.used,
            self.u_region,
            self.u_sector,
            len(REGIONS),
            self.row,
            self.at,
        )
