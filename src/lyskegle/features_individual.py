"""Features of one person at an as-of date: support history, demographics, household, family, origin.

Every function here takes registers already cut to what was known at the as-of date
(:func:`lyskegle.features.known_at`) and a ``persons`` index of the ``person_id`` values to describe;
it returns a frame indexed by ``person_id`` in that order. Nothing is looped over persons: each
feature is one groupby or one vectorised expression, so 1,000,000 persons take seconds.

Columns expected (``docs/DATA_MODEL.md``): ``benefits`` (``person_id``, ``code``, ``first_week``,
``n_weeks``), ``employment`` (``person_id``, ``first_month``, ``n_months``), ``population`` of the
as-of year (``person_id``, ``birth_date``, ``sex``, ``origin_type``, ``origin_country``,
``citizenship``, ``dwelling_id``, ``moved_in``, ``partner_id``, ``mother_id``, ``father_id``),
``education`` and ``income`` (``person_id``, ``year``, ...).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from lyskegle.codes import CODE_GROUP, PUBLIC_SUPPORT_GROUPS, is_public_support
from lyskegle.ids import datetimes, on_persons
from lyskegle.labels import age_at, spell_breaks
from lyskegle.status import code_in_week, employed_months_between, support_weeks_between

DANISH_COUNTRY = "5100"
HOUSEHOLD_TYPES = ("single", "couple_no_children", "couple_with_children", "single_parent", "other")
#: Audit age bands as (label, first age, last age); ages below the first band are "under 18".
AGE_BANDS = (("18-29", 18, 29), ("30-39", 30, 39), ("40-49", 40, 49), ("50-64", 50, 64), ("65+", 65, 200))
#: Education groups (first two digits of HFAUDD, DISCED main group) in increasing order of level.
EDUCATION_GROUPS = (10, 20, 30, 40, 50, 60, 70, 80)
DAYS_PER_YEAR = 365.25


# --- time helpers -----------------------------------------------------------------------------

def years_since(date: pd.Series, as_of: dt.date) -> pd.Series:
    """Years from ``date`` to ``as_of`` (float, NaN where unknown, never negative)."""
    days = (pd.Timestamp(as_of) - datetimes(date)).dt.days.astype("float64")
    return (days / DAYS_PER_YEAR).clip(lower=0.0)


# --- support and employment history ------------------------------------------------------------

def support_spells(benefits: pd.DataFrame, gap_weeks: int) -> pd.DataFrame:
    """Public-support spells from benefit runs: a gap of ``gap_weeks`` or more weeks ends a spell.

    Returns one row per spell: ``person_id``, ``first_week``, ``end_week`` (the week after the last
    week on support, so ``end_week - first_week`` is the spell's length) and ``support_weeks``.
    Runs must already be cut at the as-of week, so a spell running at the as-of date ends there.
    """
    runs = benefits.loc[is_public_support(benefits["code"].to_numpy()), ["person_id", "first_week", "n_weeks"]]
    # sort on integer codes: sorting millions of string ids is the slow part otherwise
    person_code, _ = pd.factorize(runs["person_id"])
    order = np.lexsort((runs["first_week"].to_numpy("int64"), person_code))
    person = runs["person_id"].to_numpy()[order]
    first = runs["first_week"].to_numpy("int64")[order]
    length = runs["n_weeks"].to_numpy("int64")[order]
    end = first + length
    # The labels stage's own rule, so a spell here starts and ends where the labels' spell does.
    starts = np.flatnonzero(spell_breaks(person, first, end, gap_weeks))
    if len(starts) == 0:
        return pd.DataFrame({"person_id": person[:0], "first_week": first[:0], "end_week": end[:0], "support_weeks": length[:0]})
    return pd.DataFrame({
        "person_id": person[starts],
        "first_week": first[starts],
        "end_week": np.maximum.reduceat(end, starts),
        "support_weeks": np.add.reduceat(length, starts),
    })


def spell_features(spells: pd.DataFrame, as_of_week: int, gap_weeks: int, persons: pd.Index) -> pd.DataFrame:
    """Current spell and earlier spells of each person at ``as_of_week``.

    A spell whose last support week is less than ``gap_weeks`` before the as-of week is still
    running (its gap has not yet reached the length that ends it). Columns: ``current_spell_weeks``
    (0 when none is running), ``earlier_spells``, ``earlier_spell_mean_weeks`` and
    ``earlier_spell_longest_weeks`` (0 when none), ``weeks_since_last_spell`` (NaN when none ended).
    """
    length = spells["end_week"] - spells["first_week"]
    running = (as_of_week - spells["end_week"]) < gap_weeks
    current = (as_of_week - spells.loc[running, "first_week"]).groupby(spells.loc[running, "person_id"]).max()
    ended = spells.loc[~running].assign(length=length[~running])
    by_person = ended.groupby("person_id")
    out = pd.DataFrame(index=persons)
    out["current_spell_weeks"] = on_persons(current, persons).fillna(0).to_numpy("float64")
    out["earlier_spells"] = on_persons(by_person.size(), persons).fillna(0).to_numpy("float64")
    out["earlier_spell_mean_weeks"] = on_persons(by_person["length"].mean(), persons).fillna(0).to_numpy("float64")
    out["earlier_spell_longest_weeks"] = on_persons(by_person["length"].max(), persons).fillna(0).to_numpy("float64")
    out["weeks_since_last_spell"] = on_persons(as_of_week - by_person["end_week"].max(), persons).to_numpy("float64")
    return out


def history_features(
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    as_of_week: int,
    as_of_month: int,
    persons: pd.Index,
    support_windows_weeks: Sequence[int],
    employment_windows_months: Sequence[int],
    gap_weeks: int,
) -> pd.DataFrame:
    """Support and work history before the as-of date (family ``history``).

    Columns: ``support_weeks_<w>w`` (weeks on public support in the ``w`` weeks before the as-of
    week), ``employed_months_<m>m`` (months with work in the ``m`` months before the as-of month),
    ``on_support_last_week`` and ``last_week_<group>`` (the benefit group of week ``a - 1``, one
    column per public-support group), then the spell columns of :func:`spell_features`.
    """
    out = pd.DataFrame(index=persons)
    for weeks in support_windows_weeks:
        counted = support_weeks_between(benefits, as_of_week - weeks, as_of_week)
        out[f"support_weeks_{weeks}w"] = on_persons(counted, persons).fillna(0).to_numpy("float64")
    for months in employment_windows_months:
        counted = employed_months_between(employment, as_of_month - months, as_of_month)
        out[f"employed_months_{months}m"] = on_persons(counted, persons).fillna(0).to_numpy("float64")

    last_code = on_persons(code_in_week(benefits, as_of_week - 1), persons)
    last_group = last_code.map(CODE_GROUP)
    out["on_support_last_week"] = last_group.isin(PUBLIC_SUPPORT_GROUPS).to_numpy("float64")
    for group in sorted(PUBLIC_SUPPORT_GROUPS):
        out[f"last_week_{group}"] = (last_group == group).to_numpy("float64")

    spells = support_spells(benefits, gap_weeks)
    return out.join(spell_features(spells, as_of_week, gap_weeks, persons))


# --- demographics -------------------------------------------------------------------------------

def latest_known(register: pd.DataFrame, persons: pd.Index) -> pd.DataFrame:
    """Each person's row of the latest year in ``register`` (already cut to known years)."""
    latest = register[register["person_id"].isin(persons)].sort_values("year", kind="stable")
    return on_persons(latest.drop_duplicates("person_id", keep="last").set_index("person_id"), persons)


def demographic_features(
    population_now: pd.DataFrame,
    population_history: pd.DataFrame,
    education: pd.DataFrame,
    income: pd.DataFrame,
    as_of: dt.date,
    persons: pd.Index,
    moves_years: int,
) -> pd.DataFrame:
    """Age, sex, education, income, moves and time at the address (family ``demographic``).

    ``population_now`` is the population of the as-of year indexed by ``person_id``;
    ``population_history`` all known years (``person_id``, ``year``, ``dwelling_id``).
    Columns: ``age``, ``woman``, ``education_level`` (1 basic school .. 8 PhD, NaN unknown),
    ``basic_education_only``, ``total_income``, ``wage_income``, ``disposable_income`` and their
    ``log_*`` (log1p of the positive part), ``moves_<n>y``, ``years_at_address``.
    """
    now = on_persons(population_now, persons)
    out = pd.DataFrame(index=persons)
    out["age"] = age_at(now["birth_date"], as_of)
    out["woman"] = np.where(now["sex"].isna(), np.nan, (now["sex"] == 2).astype("float64"))

    group = pd.to_numeric(latest_known(education, persons)["education_group"], errors="coerce").to_numpy("float64")
    level = np.searchsorted(EDUCATION_GROUPS, group) + 1.0
    known_group = np.isin(group, EDUCATION_GROUPS)
    out["education_level"] = np.where(known_group, level, np.nan)
    out["basic_education_only"] = np.where(known_group, (group == 10).astype("float64"), np.nan)

    latest_income = latest_known(income, persons)
    for column in ("total_income", "wage_income", "disposable_income"):
        values = pd.to_numeric(latest_income[column], errors="coerce").to_numpy("float64")
        out[column] = values
        out[f"log_{column}"] = np.log1p(np.clip(values, 0.0, None))

    out[f"moves_{moves_years}y"] = moves_between_years(population_history, as_of.year - moves_years, as_of.year, persons)
    out["years_at_address"] = years_since(now["moved_in"], as_of).to_numpy("float64")
    return out


def moves_between_years(population: pd.DataFrame, first_year: int, last_year: int, persons: pd.Index) -> np.ndarray:
    """Changes of ``dwelling_id`` between consecutive known years in ``[first_year, last_year]``.

    A year missing from the register is skipped (the change is counted once across it). NaN for a
    person with fewer than two known years in the span: no history to count moves in.
    """
    moves = np.zeros(len(persons))
    known_years = np.zeros(len(persons))
    previous = np.full(len(persons), None, dtype=object)  # last known dwelling so far
    for year in range(first_year, last_year + 1):
        rows = population.loc[population["year"] == year, ["person_id", "dwelling_id"]]
        rows = rows.drop_duplicates("person_id", keep="last").set_index("person_id")["dwelling_id"]
        present = persons.isin(rows.index)
        dwelling = on_persons(rows, persons).to_numpy(dtype=object)
        # a known year without a dwelling counts as a dwelling of its own ("unknown")
        dwelling = np.where(pd.isna(dwelling), "\x00unknown", dwelling)
        moves += present & (known_years > 0) & (dwelling != previous)
        known_years += present
        previous = np.where(present, dwelling, previous)
    return np.where(known_years >= 2, moves, np.nan)


# --- household and family -----------------------------------------------------------------------

def household_features(population_now: pd.DataFrame, as_of: dt.date, persons: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Who the person lives with (family ``household``) and family links (family ``family``).

    Household type from the residents of the person's dwelling at the as-of date:
    ``single`` (alone), ``couple_no_children`` / ``couple_with_children`` (the partner lives in the
    dwelling, no other adult, with or without children under 18), ``single_parent`` (the only adult,
    children under 18), ``other`` (any other mix, e.g. adult children living with parents).
    Household columns: ``household_size``, ``children_in_household``, ``household_<type>`` (one-hot).
    Family columns: ``own_children_under_18`` (persons whose mother or father is this person),
    ``lives_with_parent``. All NaN for a person without a known dwelling.
    """
    residents = population_now[["dwelling_id", "partner_id", "mother_id", "father_id"]].copy()
    residents["child"] = age_at(population_now["birth_date"], as_of) < 18
    residents = residents.reset_index()
    housed = residents[residents["dwelling_id"].notna()]
    size = housed.groupby("dwelling_id").size()
    children = housed.groupby("dwelling_id")["child"].sum()

    dwelling_of = housed.set_index("person_id")["dwelling_id"]
    me = on_persons(residents.set_index("person_id"), persons)
    my_dwelling = me["dwelling_id"]
    known = my_dwelling.notna().to_numpy()
    n = my_dwelling.map(size).to_numpy("float64")
    n_children = my_dwelling.map(children).to_numpy("float64")
    partner_home = (me["partner_id"].map(dwelling_of) == my_dwelling).fillna(False).to_numpy(bool)
    i_am_adult = ~me["child"].to_numpy(dtype=object, na_value=True).astype(bool)  # a non-resident counts as adult
    adults = n - n_children

    kind = np.full(len(persons), "other", dtype=object)
    kind[(n == 1) & i_am_adult] = "single"
    couple = partner_home & i_am_adult & (adults == 2)
    kind[couple & (n_children == 0)] = "couple_no_children"
    kind[couple & (n_children > 0)] = "couple_with_children"
    kind[~partner_home & i_am_adult & (adults == 1) & (n_children > 0)] = "single_parent"

    household = pd.DataFrame(index=persons)
    household["household_size"] = np.where(known, n, np.nan)
    household["children_in_household"] = np.where(known, n_children, np.nan)
    for name in HOUSEHOLD_TYPES:
        household[f"household_{name}"] = np.where(known, (kind == name).astype("float64"), np.nan)

    child_rows = residents[residents["child"].fillna(False).astype(bool)]
    parents = pd.concat([child_rows["mother_id"], child_rows["father_id"]]).dropna()
    family = pd.DataFrame(index=persons)
    family["own_children_under_18"] = on_persons(parents.value_counts(), persons).fillna(0).to_numpy("float64")
    with_mother = (me["mother_id"].map(dwelling_of) == my_dwelling).fillna(False).to_numpy(bool)
    with_father = (me["father_id"].map(dwelling_of) == my_dwelling).fillna(False).to_numpy(bool)
    family["lives_with_parent"] = np.where(known, (with_mother | with_father).astype("float64"), np.nan)
    return household, family


# --- origin and audit attributes ----------------------------------------------------------------

def country_group(country: pd.Series, western_countries: Collection[str]) -> pd.Series:
    """``danish`` (5100), ``western`` (in ``western_countries``), else ``non_western``; NA if unknown.

    DST lists the Western countries and counts every other country as non-Western
    (``lyskegle.countries.WESTERN_COUNTRIES``), so a code missing from the list is non-Western.
    """
    code = country.astype("string")
    # few distinct codes: classify each once, then map
    distinct = pd.Series(code.dropna().unique(), dtype="string")
    tidy = distinct.str.strip().str.zfill(4)
    named = np.where(tidy == DANISH_COUNTRY, "danish", np.where(tidy.isin(list(western_countries)), "western", "non_western"))
    return code.map(dict(zip(distinct, named))).astype("string")


def origin_group(origin_type: pd.Series, origin_country: pd.Series, western_countries: Collection[str]) -> pd.Series:
    """``danish`` for Danish origin (IE_TYPE 1), else the group of the country of origin."""
    by_country = country_group(origin_country, western_countries)
    return by_country.where(origin_type != 1, "danish").where(origin_type.notna() | by_country.notna(), pd.NA)


def first_year_seen(population: pd.DataFrame, persons: pd.Index) -> np.ndarray:
    """The first ``year`` each of ``persons`` is in ``population`` (float, NaN where never).

    With int person codes (as the features stage codes them; -1 for persons it does not describe)
    the minimum is taken in one array indexed by code, not by a groupby that hashes twelve million
    rows at every as-of date."""
    ids, wanted = population["person_id"].to_numpy(), persons.to_numpy()
    if ids.dtype.kind not in "iu" or wanted.dtype.kind not in "iu":
        return population.groupby("person_id")["year"].min().reindex(persons).to_numpy("float64")
    known = ids >= 0
    size = int(max(ids.max(initial=-1), wanted.max(initial=-1))) + 1
    first = np.full(size + 1, np.inf)  # the spare last slot answers the code -1
    np.minimum.at(first, ids[known], population["year"].to_numpy("float64")[known])
    seen = first[np.where(wanted >= 0, wanted, size)]
    return np.where(np.isinf(seen), np.nan, seen)


def origin_features(
    population_now: pd.DataFrame,
    population_history: pd.DataFrame,
    as_of: dt.date,
    persons: pd.Index,
    western_countries: Collection[str],
) -> pd.DataFrame:
    """Origin and citizenship (family ``origin``: enters models only when a param says so).

    Columns: ``origin_immigrant``, ``origin_descendant``, ``origin_western``,
    ``origin_non_western``, ``citizenship_non_danish``, ``citizenship_non_western``,
    ``years_in_denmark``. ``years_in_denmark`` is the age for persons born in Denmark (Danish
    origin, descendants); for immigrants the years since the first year they appear in the
    population register, NaN when that is the register's first year (arrived before the data
    starts: unknown). It is tagged ``origin`` because it tells immigrants apart as surely as
    ``origin_immigrant`` does.
    """
    now = on_persons(population_now, persons)
    origin_type = pd.to_numeric(now["origin_type"], errors="coerce")
    group = origin_group(origin_type, now["origin_country"], western_countries)
    citizenship = country_group(now["citizenship"], western_countries)

    def flag(condition: pd.Series, known: pd.Series) -> np.ndarray:
        return np.where(known.to_numpy(bool), condition.fillna(False).to_numpy("float64"), np.nan)

    out = pd.DataFrame(index=persons)
    out["origin_immigrant"] = flag(origin_type == 2, origin_type.notna())
    out["origin_descendant"] = flag(origin_type == 3, origin_type.notna())
    out["origin_western"] = flag(group == "western", group.notna())
    out["origin_non_western"] = flag(group == "non_western", group.notna())
    out["citizenship_non_danish"] = flag(citizenship != "danish", citizenship.notna())
    out["citizenship_non_western"] = flag(citizenship == "non_western", citizenship.notna())

    first_seen = first_year_seen(population_history, persons)
    register_start = float(population_history["year"].min()) if len(population_history) else np.nan
    arrived_years = np.where(first_seen > register_start, as_of.year - first_seen, np.nan)
    age = age_at(now["birth_date"], as_of)
    out["years_in_denmark"] = np.where(origin_type.to_numpy("float64", na_value=np.nan) == 2, arrived_years, age)
    return out


def audit_attributes(
    population_now: pd.DataFrame,
    area_of_person: pd.Series,
    as_of: dt.date,
    persons: pd.Index,
    western_countries: Collection[str],
) -> pd.DataFrame:
    """Protected attributes for the fairness audit (family ``audit``, never model inputs).

    Columns (strings): ``audit_sex`` (``man``/``woman``), ``audit_age_band`` (:data:`AGE_BANDS`,
    ``under 18`` below), ``audit_origin_group`` (``danish``/``western``/``non_western``),
    ``audit_area`` (housing area or ``outside housing areas``). Unknown values are NA.
    """
    now = on_persons(population_now, persons)
    out = pd.DataFrame(index=persons)
    out["audit_sex"] = now["sex"].map({1: "man", 2: "woman"}).astype("string").to_numpy()
    age = age_at(now["birth_date"], as_of)
    band = np.full(len(persons), None, dtype=object)
    band[age < AGE_BANDS[0][1]] = "under 18"
    for label, first, last in AGE_BANDS:
        band[(age >= first) & (age <= last)] = label
    out["audit_age_band"] = pd.array(band, dtype="string")
    origin_type = pd.to_numeric(now["origin_type"], errors="coerce")
    out["audit_origin_group"] = origin_group(origin_type, now["origin_country"], western_countries).to_numpy()
    area = on_persons(area_of_person, persons).astype("string")
    out["audit_area"] = area.fillna("outside housing areas").where(now["dwelling_id"].notna(), pd.NA).to_numpy()
    for column in out.columns:
        out[column] = out[column].astype("string[pyarrow]")
    return out
