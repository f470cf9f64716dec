"""Who was on public support, and who worked, in a window: counts from the ingested runs.

``benefits`` has one row per run of identical DREAM codes (``person_id``, ``code``, ``first_week``,
``n_weeks``); ``employment`` one row per run of months with work (``person_id``, ``first_month``,
``n_months``). Windows are half-open ``[start, end)``. Only the part of a run inside the window
counts, so a window that ends before an as-of date never sees anything after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from lyskegle.codes import is_public_support


def _overlap(first: np.ndarray, length: np.ndarray, start: int, end: int) -> np.ndarray:
    last = first + length
    return np.clip(np.minimum(last, end) - np.maximum(first, start), 0, None)


def _covers(first: pd.Series, length: pd.Series, at: int) -> np.ndarray:
    """Which runs (first week or month, length) cover ``at``."""
    first = first.to_numpy("int64")
    return (first <= at) & (at < first + length.to_numpy("int64"))


def runs_in_windows(benefits: pd.DataFrame, windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which benefit runs have a week in one of the ``windows`` ``[start, end)``: the other runs
    add nothing to any count over them."""
    first, length = benefits["first_week"].to_numpy("int64"), benefits["n_weeks"].to_numpy("int64")
    inside = np.zeros(len(benefits), dtype=bool)
    for start, end in windows:
        inside |= _overlap(first, length, start, end) > 0
    return inside


def support_weeks_between(benefits: pd.DataFrame, start_week: int, end_week: int) -> pd.Series:
    """Weeks with a public-support code in ``[start_week, end_week)``, per ``person_id``.

    Persons without any such week are absent from the result (read them as 0).
    """
    weeks = _overlap(benefits["first_week"].to_numpy("int64"), benefits["n_weeks"].to_numpy("int64"), start_week, end_week)
    counted = (weeks > 0) & is_public_support(benefits["code"].to_numpy())
    return _sum_by_person(weeks, benefits["person_id"], counted).rename("support_weeks")


def support_weeks_by_code(
    benefits: pd.DataFrame, person_codes: np.ndarray, n_codes: int, windows: Sequence[tuple[int, int]]
) -> list[np.ndarray]:
    """:func:`support_weeks_between` for each window ``[start, end)``, with persons as int codes.

    ``person_codes`` holds the code (``0 .. n_codes - 1``) of each benefits row's person. Returns,
    per window, the weeks of every code: an array of ``n_codes``, 0 where there are none. Summing
    by code needs no hashing of the ids, however many windows are counted.
    """
    person_codes = np.asarray(person_codes)
    support = is_public_support(benefits["code"].to_numpy())
    first, length = benefits["first_week"].to_numpy("int64")[support], benefits["n_weeks"].to_numpy("int64")[support]
    codes = person_codes[support]
    counts = []
    for start, end in windows:
        weeks = _overlap(first, length, start, end)
        counts.append(np.bincount(codes, weights=weeks, minlength=n_codes).astype("int64"))
    return counts


def code_in_week(benefits: pd.DataFrame, week: int) -> pd.Series:
    """The DREAM code each person carried in ``week`` (persons with a blank week are absent)."""
    hits = benefits.loc[_covers(benefits["first_week"], benefits["n_weeks"], week), ["person_id", "code"]]
    return hits.drop_duplicates("person_id").set_index("person_id")["code"].sort_index()


def ids_with_code_in_week(
    benefits: pd.DataFrame, week: int, which: Callable[[np.ndarray], np.ndarray] | None = None
) -> pd.Series:
    """The ``person_id`` of every run that covers ``week`` (and whose code ``which`` accepts:
    a function of the code array, such as :func:`~lyskegle.codes.is_public_support`),
    as they are in ``benefits``: neither sorted nor made unique, so Arrow ids stay Arrow. For
    :func:`~lyskegle.ids.is_in` look-ups; a person has one code per week, so one run at most.

    ``code_in_week`` builds a sorted, de-duplicated index of Python strings instead: about a
    second a call at a million persons."""
    inside = _covers(benefits["first_week"], benefits["n_weeks"], week)
    if which is not None:
        inside &= which(benefits["code"].to_numpy())
    return benefits["person_id"][inside]


def ids_employed_in_month(employment: pd.DataFrame, month: int) -> pd.Series:
    """The ``person_id`` of every run of work that covers ``month``, as in ``employment`` (neither
    sorted nor unique): :func:`employed_in_month` for :func:`~lyskegle.ids.is_in` look-ups."""
    return employment["person_id"][_covers(employment["first_month"], employment["n_months"], month)]


def on_support_in_week(benefits: pd.DataFrame, week: int) -> pd.Index:
    """Persons with a public-support code in ``week``."""
    codes = code_in_week(benefits, week)
    return codes.index[is_public_support(codes.to_numpy())]


def employed_months_between(employment: pd.DataFrame, start_month: int, end_month: int) -> pd.Series:
    """Months with work in ``[start_month, end_month)``, per ``person_id`` (absent: 0)."""
    months = _overlap(
        employment["first_month"].to_numpy("int64"), employment["n_months"].to_numpy("int64"),
        start_month, end_month,
    )
    return _sum_by_person(months, employment["person_id"], months > 0).rename("employed_months")


def employed_in_month(employment: pd.DataFrame, month: int) -> pd.Index:
    """Persons with work in ``month``."""
    return employed_months_between(employment, month, month + 1).index


def _sum_by_person(values: np.ndarray, person_id: pd.Series, counted: np.ndarray) -> pd.Series:
    """Sum of the counted ``values`` per person, indexed by sorted ``person_id``. Only the counted
    runs' ids are turned into index values: at a million persons most runs lie outside a window."""
    persons = person_id.array[counted].to_numpy()
    if persons.dtype.kind in "iu" and (not len(persons) or persons.min() >= 0):
        # int person codes, as the stages code their registers: two bincounts instead of a
        # hash groupby, a third of the features stage's summing at a million persons
        sums = np.bincount(persons, weights=values[counted])
        present = np.flatnonzero(np.bincount(persons))
        return pd.Series(sums[present].astype(values.dtype), index=present.astype(persons.dtype))
    return pd.Series(values[counted], index=persons).groupby(level=0, sort=True).sum()
