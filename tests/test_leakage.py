"""Nothing a later stage uses for an as-of date may come from after that date.

Each test builds a small extract, rewrites everything after the as-of date (benefit weeks from the
as-of week on: changed, removed, added; the population of later years: changed) and checks that
what is known at the as-of date comes out the same. Labels look forward by design, so they may
differ (and the last test shows that they do, so the rewrite really reaches the future).

``extract`` and ``FUTURES`` are meant to be reused by checks of other stages (features, network).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from lyskegle.calendar import week_index
from lyskegle.config import LabelParams
from lyskegle.labels import exit_26w_cohort, find_spells, make_labels, self_sufficient_cohort

AS_OF = dt.date(2016, 1, 4)
A = week_index(AS_OF)
FIRST_WEEK, LAST_WEEK = A - 80, A + 80
CASH, SICKNESS, HOLIDAY, SU, EMIGRATED, DEAD = 131, 891, 121, 651, 997, 999
PARAMS = LabelParams(as_of_dates=[AS_OF, dt.date(2017, 1, 2)])


def _runs(rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    """Benefit runs from (person, code, first week, last week included)."""
    return pd.DataFrame({
        "person_id": [r[0] for r in rows],
        "code": np.array([r[1] for r in rows], dtype="int16"),
        "first_week": np.array([r[2] for r in rows], dtype="int32"),
        "n_weeks": np.array([r[3] - r[2] + 1 for r in rows], dtype="int16"),
    })


@pytest.fixture
def extract() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(benefits, population) of eight adults around 2016-01-04, with runs that cross the as-of week."""
    benefits = _runs([
        ("on_cash", CASH, A - 6, A + 10),  # exit_26w member, exits after 11 weeks
        ("long_spell", SICKNESS, A - 10, A + 60),  # member, still on support at the horizon
        ("back_soon", CASH, A - 3, A - 1), ("back_soon", CASH, A + 1, A + 5),  # member, a blank week at a
        ("old_spell", CASH, A - 40, A + 20),  # on support, but the spell started too early
        ("to_school", CASH, A - 12, A - 1), ("to_school", SU, A, A + 30),  # member, exits to education
        ("worker", HOLIDAY, A - 30, A - 28),  # self_sufficient only
        ("emigrant", CASH, A - 60, A - 50), ("emigrant", EMIGRATED, A - 2, LAST_WEEK),  # out of both
        ("returner", EMIGRATED, A - 70, A - 60), ("returner", CASH, A - 5, A + 2),  # member
    ])
    people = sorted(set(benefits["person_id"]))
    births = dict(zip(people, [dt.date(1960 + 4 * i, 3 + i, 10 + i) for i in range(len(people))]))
    population = pd.concat([
        pd.DataFrame({"person_id": people, "year": np.int16(year), "birth_date": [births[p] for p in people]})
        for year in (2015, 2016, 2017)
    ], ignore_index=True)
    return benefits, population


def _cut_at(benefits: pd.DataFrame, week: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs before ``week`` and from ``week`` on, a run crossing it split in two."""
    first = benefits["first_week"].to_numpy("int64")
    end = first + benefits["n_weeks"].to_numpy("int64")
    before = benefits.loc[first < week].assign(n_weeks=(np.minimum(end, week) - first)[first < week].astype("int16"))
    after = benefits.loc[end > week].assign(
        first_week=np.maximum(first, week)[end > week].astype("int32"),
        n_weeks=(end - np.maximum(first, week))[end > week].astype("int16"),
    )
    return before, after


def _everyone(population: pd.DataFrame) -> list[str]:
    return sorted(population["person_id"].unique())


def _future_removed(benefits, population):
    before, _ = _cut_at(benefits, A)
    return before, population


def _future_all_on_support(benefits, population):
    before, _ = _cut_at(benefits, A)
    added = _runs([(p, CASH, A, LAST_WEEK) for p in _everyone(population)])
    return pd.concat([before, added], ignore_index=True), population


def _future_all_dead(benefits, population):
    before, _ = _cut_at(benefits, A)
    added = _runs([(p, DEAD, A, LAST_WEEK) for p in _everyone(population)])
    return pd.concat([before, added], ignore_index=True), population


def _future_codes_changed(benefits, population):
    before, after = _cut_at(benefits, A)
    swapped = after["code"].map({CASH: SU, SICKNESS: EMIGRATED, SU: CASH, EMIGRATED: CASH}).fillna(HOLIDAY)
    return pd.concat([before, after.assign(code=swapped.astype("int16"))], ignore_index=True), population


def _future_population_changed(benefits, population):
    later = population["year"] > AS_OF.year
    moved = population.loc[later].iloc[::2].assign(birth_date=dt.date(2000, 1, 1))
    newcomer = pd.DataFrame({"person_id": ["newcomer"], "year": np.int16(2017), "birth_date": [dt.date(1990, 1, 1)]})
    return benefits, pd.concat([population.loc[~later], moved, newcomer], ignore_index=True)


FUTURES = {
    "removed": _future_removed,
    "all_on_support": _future_all_on_support,
    "all_dead": _future_all_dead,
    "codes_changed": _future_codes_changed,
    "population_changed": _future_population_changed,
}


def _exit_members(benefits, population) -> list[tuple[str, int]]:
    spells = find_spells(benefits, PARAMS.gap_weeks, FIRST_WEEK, LAST_WEEK)
    members = exit_26w_cohort(spells, benefits, population, AS_OF, PARAMS)
    return list(zip(members["person_id"], members["spell_first_week"].tolist()))


def test_the_fixture_has_members_worth_protecting(extract):
    benefits, population = extract
    assert _exit_members(benefits, population) == [
        ("back_soon", A - 3), ("long_spell", A - 10), ("on_cash", A - 6), ("returner", A - 5), ("to_school", A - 12)]
    assert list(self_sufficient_cohort(benefits, population, AS_OF, PARAMS)) == [
        "back_soon", "long_spell", "old_spell", "on_cash", "returner", "to_school", "worker"]


@pytest.mark.parametrize("future", FUTURES)
def test_cohort_membership_does_not_change_when_the_future_does(extract, future):
    benefits, population = extract
    changed_benefits, changed_population = FUTURES[future](benefits, population)
    assert _exit_members(changed_benefits, changed_population) == _exit_members(benefits, population)
    assert list(self_sufficient_cohort(changed_benefits, changed_population, AS_OF, PARAMS)) == list(
        self_sufficient_cohort(benefits, population, AS_OF, PARAMS))


@pytest.mark.parametrize("future", FUTURES)
def test_the_stage_output_for_the_as_of_date_keeps_its_members(extract, future):
    benefits, population = extract
    keys = ["target", "as_of", "person_id", "spell_first_week"]

    def members(b, p):
        cohorts = make_labels(b, p, PARAMS, FIRST_WEEK, LAST_WEEK).cohorts
        return cohorts.loc[cohorts["as_of"] == AS_OF, keys].astype(object).to_numpy().tolist()

    original = members(benefits, population)
    assert len(original) == 5 + 7
    assert members(*FUTURES[future](benefits, population)) == original


def test_labels_do_see_the_future(extract):
    benefits, population = extract
    labels = {
        name: make_labels(*FUTURES[name](benefits, population), PARAMS, FIRST_WEEK, LAST_WEEK).cohorts
        for name in ("all_on_support", "all_dead")
    }
    assert (labels["all_on_support"]["label"] == 0).all()  # nobody exits, nobody is self-sufficient
    assert labels["all_dead"]["censored"].all()
