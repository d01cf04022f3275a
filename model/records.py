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
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rareshock.model.codes import MATERIALS


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
