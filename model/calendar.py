"""China's working-day calendar, for the licensing clocks.

Working days are Monday to Friday except the main public holidays: New Year's Day, the Spring Festival
week (eve plus seven days, from the lunar new year dates below), Qingming (Apr 4-6), Labour Day
(May 1-5) and National Day (Oct 1-7). Make-up working weekends are ignored (an assumption: they shift
single days, not the 45-working-day clock's length by more than a day or two).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

# Lunar new year's day (Gregorian), 2020-2040.
_LUNAR_NEW_YEAR = {
    2020: (1, 25),
    2021: (2, 12),
    2022: (2, 1),
    2023: (1, 22),
    2024: (2, 10),
    2025: (1, 29),
    2026: (2, 17),
    2027: (2, 6),
    2028: (1, 26),
    2029: (2, 13),
    2030: (2, 3),
    2031: (1, 23),
    2032: (2, 11),
    2033: (1, 31),
    2034: (2, 19),
    2035: (2, 8),
    2036: (1, 28),
    2037: (2, 15),
    2038: (2, 4),
    2039: (1, 24),
    2040: (2, 12),
}


def cn_holidays(year: int) -> set[dt.date]:
    days = {dt.date(year, 1, 1)}
    days |= {dt.date(year, 4, d) for d in (4, 5, 6)}
    days |= {dt.date(year, 5, d) for d in range(1, 6)}
    days |= {dt.date(year, 10, d) for d in range(1, 8)}
    if year in _LUNAR_NEW_YEAR:
        ny = dt.date(year, *_LUNAR_NEW_YEAR[year])
        days |= {ny + dt.timedelta(days=k) for k in range(-1, 7)}
    return days


def working_day_index(start: dt.date, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """For each simulated day: is it a Chinese working day, and how many working days have passed
    (the working-day clock, counting the day itself if it is one)."""
    dates = [start + dt.timedelta(days=i) for i in range(n_days)]
    hol: set[dt.date] = set()
    for y in range(start.year, dates[-1].year + 1):
        hol |= cn_holidays(y)
    working = np.array([d.weekday() < 5 and d not in hol for d in dates], dtype=bool)
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
