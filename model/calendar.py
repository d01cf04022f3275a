"""China's working-day calendar, for the licensing clocks.

Working days come from the maintained ``holidays`` package (``holidays.China``): Monday to Friday, less the
public holidays and their bridging rest days, plus the make-up working weekends (调休) the State Council
publishes each year (2025: 248 working days, as published). For years whose schedule is not yet published
the package gives the statutory holidays by their (lunar) dates without make-up days, which moves a
45-working-day clock by a day or two at most.
"""

from __future__ import annotations

import datetime as dt
import functools

import holidays
import numpy as np


@functools.lru_cache(maxsize=64)
def _working_year(year: int) -> np.ndarray:
    """Whether each day of ``year`` is a Chinese working day."""
    cn = holidays.China(years=year)
    first = dt.date(year, 1, 1)
    n = (dt.date(year + 1, 1, 1) - first).days
    return np.array([cn.is_working_day(first + dt.timedelta(days=i)) for i in range(n)], dtype=bool)


def working_day_index(start: dt.date, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """For each simulated day: is it a Chinese working day, and how many working days have passed
    (the working-day clock, counting the day itself if it is one)."""
    end = start + dt.timedelta(days=n_days - 1)
    years = np.concatenate([_working_year(y) for y in range(start.year, end.year + 1)])
    offset = (start - dt.date(start.year, 1, 1)).days
    working = years[offset : offset + n_days].copy()
    return working, np.cumsum(working)


class Calendar:
    """The run's days: dates, China's working days (and the working-day clock), first days of months."""

    def __init__(self, start: dt.date, end: dt.date):
        self.start = start
        self.n_days = (end - start).days + 1
        self.working, self.wd_clock = working_day_index(start, self.n_days)
        self.working = self.working.tolist()  # plain bools: read once per day
        days = np.array([(start + dt.timedelta(days=i)).day for i in range(self.n_days)])
        month_start = days == 1
        month_start[0] = True
        self.month_start = month_start.tolist()

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)
