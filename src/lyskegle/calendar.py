"""Weeks and months as integer indices, the way the pipeline counts time.

DREAM counts ISO weeks (Monday to Sunday, some years have week 53) and months. Inside the pipeline
a week is an ``int`` counting Mondays since 1970-01-05 and a month is ``year * 12 + month - 1``, so
that spans are plain subtraction and intervals are half-open ``[first, last + 1)``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH_MONDAY = dt.date(1970, 1, 5)


def week_index(date: dt.date) -> int:
    """Index of the ISO week that contains ``date``."""
    return (date - EPOCH_MONDAY).days // 7


def week_start(index: int) -> dt.date:
    """Monday of week ``index``."""
    return EPOCH_MONDAY + dt.timedelta(weeks=int(index))


def iso_week_index(year: int, week: int) -> int:
    """Index of ISO week ``week`` of ISO year ``year``; raises ValueError for a week that does not exist."""
    return week_index(dt.date.fromisocalendar(year, week, 1))


def iso_weeks_in_year(year: int) -> int:
    """52 or 53."""
    return dt.date(year, 12, 28).isocalendar().week


def dream_week_column(index: int) -> str:
    """DREAM's column name ``y_YYWW`` for week ``index``."""
    iso = week_start(index).isocalendar()
    return f"y_{iso.year % 100:02d}{iso.week:02d}"


def parse_dream_week_column(name: str) -> int:
    """Week index of a DREAM column ``y_YYWW``; ValueError when it is not a real ISO week."""
    if len(name) != 6 or not name.startswith("y_") or not name[2:].isdigit():
        raise ValueError(f"'{name}' is not a DREAM week column (y_YYWW)")
    year, week = 2000 + int(name[2:4]), int(name[4:6])
    if not 1 <= week <= iso_weeks_in_year(year):
        raise ValueError(f"'{name}': {year} has no ISO week {week}")
    return iso_week_index(year, week)


def month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def month_of_week(index: int | np.ndarray) -> int | np.ndarray:
    """Month index of the Thursday of each week (ISO's rule for which year/month a week belongs to)."""
    thursday = np.datetime64(EPOCH_MONDAY, "D") + np.asarray(index, dtype="int64") * 7 + 3
    months = thursday.astype("datetime64[M]").astype("int64") + 1970 * 12
    return months if np.ndim(index) else int(months)


def dream_month_column(index: int) -> str:
    """DREAM's monthly work column ``branche_YYYY_MM`` for month ``index``."""
    return f"branche_{index // 12:04d}_{index % 12 + 1:02d}"


def parse_dream_month_column(name: str) -> int:
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != "branche" or not (parts[1].isdigit() and parts[2].isdigit()):
        raise ValueError(f"'{name}' is not a DREAM month column (branche_YYYY_MM)")
    year, month = int(parts[1]), int(parts[2])
    if not 1 <= month <= 12:
        raise ValueError(f"'{name}': month {month} does not exist")
    return month_index(year, month)
