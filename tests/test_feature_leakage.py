"""Leakage: rewriting every register after an as-of date leaves every feature of that date unchanged.

A small random municipality (fixed seed) is built in the ingested shape; then everything that
happens after the as-of date is replaced by something else (benefit and work runs after it,
population of later years, education and income of the as-of year and later). Each feature column
of the as-of date must be identical; the same rewrite must change features of a later date, which
shows that the rewrite touched what features read.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from lyskegle.calendar import month_of_week, week_index
from lyskegle.config import FeatureParams
from lyskegle.features import Registers, build_features

AS_OF = dt.date(2016, 1, 4)
LATER = dt.date(2017, 1, 2)
YEARS = range(2013, 2019)
PERSONS = 300
WESTERN = frozenset({"5180"})
SUPPORT_AND_OTHER_CODES = np.array([131, 211, 721, 783, 891, 651, 121, 998])


def _runs(rng, persons, first, last, per_person, max_length, codes=None):
    owner = np.repeat(persons, per_person)
    start = rng.integers(first, last, len(owner))
    frame = pd.DataFrame({"person_id": owner, "first": start, "length": rng.integers(1, max_length, len(owner))})
    frame = frame.sort_values(["person_id", "first"]).drop_duplicates(["person_id", "first"])
    # runs of one person never overlap: cut each run at the next one's start
    next_start = frame.groupby("person_id")["first"].shift(-1).fillna(np.iinfo("int32").max).to_numpy("int64")
    frame["length"] = np.minimum(frame["length"].to_numpy(), next_start - frame["first"].to_numpy())
    if codes is not None:
        frame["code"] = rng.choice(codes, len(frame))
    return frame


def _world(seed: int = 7) -> Registers:
    rng = np.random.default_rng(seed)
    persons = np.array([f"p{i:04d}" for i in range(PERSONS)])
    n_dwellings = 90
    dwellings = pd.DataFrame({
        "dwelling_id": [f"d{i}" for i in range(n_dwellings)],
        "stairwell_id": [f"s{i // 6}" for i in range(n_dwellings)],
        "building_id": [f"b{i // 24}" for i in range(n_dwellings)],
        "area": [f"area{i // 48}" if i < 80 else None for i in range(n_dwellings)],
        "floor": "1", "door": "tv",
    })
    birth = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 60, PERSONS), unit="D")
    rows = []
    for year in YEARS:
        present = rng.random(PERSONS) < 0.95
        rows.append(pd.DataFrame({
            "person_id": persons[present], "year": year,
            "birth_date": birth[present].date, "sex": rng.integers(1, 3, present.sum()),
            "origin_type": rng.choice([1, 2, 3], present.sum()),
            "origin_country": rng.choice(["5100", "5432", "5180", "5500"], present.sum()),
            "citizenship": rng.choice(["5100", "5432", "5180"], present.sum()),
            "municipality": "461",
            "dwelling_id": rng.choice(dwellings["dwelling_id"], present.sum()),
            "moved_in": (pd.Timestamp(f"{year - 1}-06-01") - pd.to_timedelta(rng.integers(0, 4000, present.sum()), unit="D")).date,
            "family_id": rng.choice([f"f{i}" for i in range(120)], present.sum()),
            "partner_id": np.where(rng.random(present.sum()) < 0.3, rng.choice(persons, present.sum()), None),
            "mother_id": np.where(rng.random(present.sum()) < 0.3, rng.choice(persons, present.sum()), None),
            "father_id": None, "civil_status": "U",
        }))
    population = pd.concat(rows, ignore_index=True)
    benefits = _runs(rng, persons, 2200, 2700, 4, 60, SUPPORT_AND_OTHER_CODES).rename(
        columns={"first": "first_week", "length": "n_weeks"})[["person_id", "code", "first_week", "n_weeks"]]
    employment = _runs(rng, persons, 24100, 24250, 3, 20).rename(
        columns={"first": "first_month", "length": "n_months"})
    education = pd.DataFrame({
        "person_id": np.repeat(persons, len(YEARS)), "year": np.tile(list(YEARS), PERSONS),
        "education_code": "0000",
        "education_group": rng.choice([10, 20, 30, 50, 70], PERSONS * len(YEARS)),
    })
    income = pd.DataFrame({
        "person_id": np.repeat(persons, len(YEARS)), "year": np.tile(list(YEARS), PERSONS),
        "total_income": rng.normal(250_000, 100_000, PERSONS * len(YEARS)),
        "wage_income": rng.normal(200_000, 100_000, PERSONS * len(YEARS)),
        "disposable_income": rng.normal(180_000, 60_000, PERSONS * len(YEARS)),
    })
    return Registers(population, dwellings, benefits, employment, education, income)


def _rewrite_after(registers: Registers, as_of: dt.date, seed: int = 99) -> Registers:
    """Everything from ``as_of`` on replaced by other random history; everything before kept."""
    rng = np.random.default_rng(seed)
    week, month = week_index(as_of), int(month_of_week(week_index(as_of)))
    persons = registers.population["person_id"].unique()

    kept = registers.benefits[registers.benefits["first_week"] < week].copy()
    kept["n_weeks"] = np.minimum(kept["n_weeks"], week - kept["first_week"])
    future = _runs(rng, persons, week, week + 300, 3, 80, SUPPORT_AND_OTHER_CODES).rename(
        columns={"first": "first_week", "length": "n_weeks"})
    benefits = pd.concat([kept, future[["person_id", "code", "first_week", "n_weeks"]]], ignore_index=True)

    kept_work = registers.employment[registers.employment["first_month"] < month].copy()
    kept_work["n_months"] = np.minimum(kept_work["n_months"], month - kept_work["first_month"])
    future_work = _runs(rng, persons, month, month + 60, 2, 30).rename(columns={"first": "first_month", "length": "n_months"})
    employment = pd.concat([kept_work, future_work], ignore_index=True)

    population = registers.population.copy()
    later = population["year"] > as_of.year
    population.loc[later, "dwelling_id"] = rng.choice(registers.dwellings["dwelling_id"], later.sum())
    population.loc[later, "moved_in"] = dt.date(as_of.year, 6, 1)
    population.loc[later, "partner_id"] = rng.choice(persons, later.sum())
    population.loc[later, "origin_type"] = 2
    population = population.sample(frac=1.0, random_state=1)  # row order must not matter either

    education = registers.education.copy()
    education.loc[education["year"] >= as_of.year, "education_group"] = 80
    income = registers.income.copy()
    income.loc[income["year"] >= as_of.year, ["total_income", "wage_income", "disposable_income"]] = 1e7
    return Registers(population, registers.dwellings, benefits, employment, education, income)


@pytest.fixture(scope="module")
def worlds():
    original = _world()
    return original, _rewrite_after(original, AS_OF)


def _features(registers: Registers, as_of: dt.date) -> pd.DataFrame:
    persons = registers.population.loc[registers.population["year"] == as_of.year, "person_id"].sort_values()
    cohorts = pd.DataFrame({"as_of": as_of, "person_id": persons.to_numpy()})
    return build_features(registers, cohorts, FeatureParams(min_group_persons=3), 4, WESTERN)


def test_every_feature_of_the_as_of_date_ignores_what_happens_after_it(worlds):
    original, rewritten = worlds
    before, after = _features(original, AS_OF), _features(rewritten, AS_OF)
    assert len(before) > 250
    changed = [c for c in before.columns if not before[c].equals(after[c])]
    assert changed == []


def test_the_rewrite_does_change_features_of_a_later_date(worlds):
    original, rewritten = worlds
    before, after = _features(original, LATER), _features(rewritten, LATER)
    changed = {c for c in before.columns if not before[c].equals(after[c])}
    # the rewrite reaches history, demographics (income), household and neighbourhood features
    assert {"support_weeks_52w", "total_income", "household_size", "stairwell_neighbours_on_support_share"} <= changed
