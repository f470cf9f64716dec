"""The feature table: one row per as-of date x cohort member, every column tagged with a family.

:func:`build_features` cuts the ingested registers to what was known at each as-of date
(:func:`known_at`, the one place that decides it) and then computes, from the cut registers only:
support history (``lyskegle.features_individual``), demographics, household and family,
origin, audit attributes, and stairwell/building/area aggregates (``lyskegle.features_area``).
Because every feature is computed from the cut, changing anything after an as-of date cannot change
a feature of that date. :func:`merge_network` adds the network stage's columns;
:func:`model_feature_columns` says which columns a model may use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from lyskegle.calendar import month_of_week, week_index
from lyskegle.concurrency import map_in_order
from lyskegle.config import FeatureParams
from lyskegle.features_area import ID_COLUMNS, LEVELS, neighbourhood_features
from lyskegle.features_individual import (
    audit_attributes,
    demographic_features,
    history_features,
    household_features,
    origin_features,
)
from lyskegle.ids import KEYS, as_of_runs, coded_members, codes_of, days, rows_of_years, shared_codes, sorted_codes
from lyskegle.status import employed_in_month, on_support_in_week

log = logging.getLogger(__name__)

FAMILIES = ("history", "demographic", "household", "family", "stairwell", "coworkers", "classmates", "area", "origin")
AUDIT_FAMILY = "audit"


@dataclasses.dataclass(frozen=True)
class Registers:
    """The ingested tables the features read (columns as in ``docs/DATA_MODEL.md``)."""

    population: pd.DataFrame
    dwellings: pd.DataFrame
    benefits: pd.DataFrame
    employment: pd.DataFrame
    education: pd.DataFrame
    income: pd.DataFrame


def known_at(registers: Registers, as_of: dt.date) -> Registers:
    """The registers as they were known at ``as_of`` (a Monday; week index ``a``).

    Benefit runs are cut to weeks before ``a``; employment runs to months before the month of week
    ``a``; the population keeps years up to the as-of year (status 1 January); education and
    income keep years before it. Dwellings carry no time and stay as they are. Inputs are not
    modified.
    """
    week = week_index(as_of)
    month = int(month_of_week(week))
    benefits = registers.benefits[registers.benefits["first_week"] < week].copy()
    benefits["n_weeks"] = np.minimum(benefits["n_weeks"].to_numpy("int64"), week - benefits["first_week"].to_numpy("int64"))
    employment = registers.employment[registers.employment["first_month"] < month].copy()
    employment["n_months"] = np.minimum(
        employment["n_months"].to_numpy("int64"), month - employment["first_month"].to_numpy("int64")
    )
    return Registers(
        population=rows_of_years(registers.population, as_of.year),
        dwellings=registers.dwellings,
        benefits=benefits,
        employment=employment,
        education=rows_of_years(registers.education, as_of.year - 1),
        income=rows_of_years(registers.income, as_of.year - 1),
    )


def _coded_population(population: pd.DataFrame, dwellings: pd.DataFrame, person: np.ndarray,
                      vocabulary: pa.Array, threads: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Population and dwellings of :func:`code_registers`: person ids (``person``, their codes
    already) and links as codes in ``vocabulary``, dwelling ids as codes shared by both, country
    codes as categories."""
    unused = [column for column in UNUSED_POPULATION_COLUMNS if column in population.columns]
    population = population.drop(columns=unused).assign(person_id=person)
    links = ("partner_id", "mother_id", "father_id")
    for link, codes in zip(links, codes_of([population[link] for link in links], vocabulary, threads)):
        population[link] = _nullable(codes)
    # Dwellings get int codes too, and country codes become categories: every per-date cut of
    # twelve million population rows then moves fixed-width columns only.
    (resident_dwelling, listed_dwelling), _ = shared_codes([population["dwelling_id"], dwellings["dwelling_id"]])
    population["dwelling_id"] = _nullable(resident_dwelling)
    for column in ("origin_country", "citizenship"):
        population[column] = population[column].astype("category")
    return population, dwellings.assign(dwelling_id=_nullable(listed_dwelling))


def _coded_persons(frame: pd.DataFrame, vocabulary: pa.Array, threads: int) -> pd.DataFrame:
    """A person-level register with ``person_id`` as codes in ``vocabulary``; rows of other persons dropped."""
    [code] = codes_of([frame["person_id"]], vocabulary, threads)
    # a fresh RangeIndex: the kept rows' labels would be another 8 bytes a row, used by nothing
    return frame.loc[code >= 0].assign(person_id=code[code >= 0].astype("int32")).reset_index(drop=True)


#: Population columns no feature reads (dropped when coding, so that they are not cut per date).
UNUSED_POPULATION_COLUMNS = ("family_id", "municipality", "civil_status")


def _nullable(codes: np.ndarray) -> pd.arrays.IntegerArray:
    """Int codes with -1 as missing, as a nullable integer array (``notna`` and joins see NA)."""
    codes = np.asarray(codes, dtype="int32")
    return pd.arrays.IntegerArray(codes, codes < 0)


def _features_at(
    coded: Registers,
    as_of: dt.date,
    persons: pd.Index,
    params: FeatureParams,
    gap_weeks: int,
    western_countries: Collection[str],
) -> list[pd.DataFrame]:
    """Every own feature of ``persons`` (person codes of :func:`code_registers`) at ``as_of``,
    computed from what was known then: frames of features, each indexed by ``persons``."""
    known = known_at(coded, as_of)
    week = week_index(as_of)
    month = int(month_of_week(week))
    population_now = (
        known.population[(known.population["year"] == as_of.year) & (known.population["person_id"] >= 0)]
        # sorted (codes follow the sorted ids), so that sums over neighbours do not depend on row order
        .sort_values("person_id", kind="stable")
        .drop_duplicates("person_id", keep="last")
        .set_index("person_id")
    )
    history = history_features(
        known.benefits, known.employment, week, month, persons,
        params.support_windows_weeks, params.employment_windows_months, gap_weeks,
    )
    demographic = demographic_features(
        population_now, known.population, known.education, known.income, as_of, persons, params.moves_years,
    )
    household, family = household_features(population_now, as_of, persons)
    origin = origin_features(population_now, known.population, as_of, persons, western_countries)
    neighbourhood = neighbourhood_features(
        population_now, known.dwellings,
        on_support=on_support_in_week(known.benefits, week - 1),
        employed=employed_in_month(known.employment, month - 1),
        as_of=as_of, persons=persons, min_group_persons=params.min_group_persons,
        working_ages=(params.working_age_min, params.working_age_max), turnover_days=params.turnover_days,
    )
    audit = audit_attributes(population_now, neighbourhood["area"], as_of, persons, western_countries)
    parts = [history, demographic, household, family, origin, neighbourhood, audit]
    misplaced = [i for i, part in enumerate(parts) if not part.index.equals(persons)]
    if misplaced:
        raise ValueError(f"features at {as_of}: parts {misplaced} are not on the persons' rows in order")
    return parts


@dataclasses.dataclass(frozen=True)
class CohortRegisters:
    """The registers coded for the cohort members (:func:`code_registers`): ``registers`` with int
    person codes, ``members`` (``as_of`` as Arrow dates, ``person_id``: distinct and sorted) and
    each member's code in ``member_codes``."""

    registers: Registers
    members: pd.DataFrame
    member_codes: np.ndarray


def code_registers(read: Callable[[str], pd.DataFrame], cohorts: pd.DataFrame, threads: int = 1) -> CohortRegisters:
    """The registers with int person codes, and the distinct cohort members to describe.

    ``read(name)`` gives one ingested table by its :class:`Registers` field name. Each table is
    read when it is coded and let go once coded, so only one uncoded table is held at a time (at a
    million persons the uncoded tables together take more memory than all the coded ones).

    Person ids become their position in the sorted distinct ids of the population and the cohort
    members (int32): hashing and sorting millions of string ids is most of the work otherwise, and
    integer codes keep every groupby and lookup cheap. Rows of persons outside them are dropped
    from the person-level registers (which get a fresh RangeIndex); in ``population`` they are kept
    with code -1 (the register's first year still counts) and links to them (``partner_id``,
    ``mother_id``, ``father_id``, nullable Int32) become NA. Dwelling ids (population and
    dwellings) become shared nullable Int32 codes. Up to ``threads`` columns (or slices of one)
    are looked up at a time (:func:`lyskegle.ids.codes_of`); the codes are the same either way.

    ``cohorts`` needs ``as_of`` and ``person_id`` (labels' ``cohorts.parquet``; other columns are
    ignored, so no label reaches the features).
    """
    if cohorts.empty:
        raise ValueError("build_features: the cohorts table has no rows, so there is nothing to describe")
    population = read("population")
    # one hash pass finds the ids, their sorted codes and the cohort rows' codes
    (person, cohort_person), vocabulary = sorted_codes([population["person_id"], cohorts["person_id"]])
    members, member_codes = coded_members(cohorts["as_of"], cohort_person, vocabulary)
    del cohort_person
    population, dwellings = _coded_population(population, read("dwellings"), person, vocabulary, threads)
    del person
    persons = {name: _coded_persons(read(name), vocabulary, threads)
               for name in ("benefits", "employment", "education", "income")}
    return CohortRegisters(Registers(population=population, dwellings=dwellings, **persons), members, member_codes)


def features_by_date(
    coded: CohortRegisters,
    params: FeatureParams,
    gap_weeks: int,
    western_countries: Collection[str],
) -> Iterator[pd.DataFrame]:
    """The feature table one as-of date at a time (in date order): rows sorted by ``person_id``;
    columns ``as_of``, ``person_id`` and the features of :func:`feature_families`.

    ``gap_weeks`` is ``labels.gap_weeks``, so that spells here end where the labels' spells end.
    ``western_countries`` are the country codes counted as Western
    (``lyskegle.countries.WESTERN_COUNTRIES``; every other non-Danish code is non-Western).
    Up to ``params.threads`` dates are computed at a time, as memory allows
    (:func:`lyskegle.concurrency.map_in_order`); the rows are the same either way.
    """

    def at(run: tuple[dt.date, int, int]) -> pd.DataFrame:
        as_of, start, stop = run
        log.info("features at %s: %d persons", as_of, stop - start)
        persons = pd.Index(coded.member_codes[start:stop], name="person_id")
        keys = pd.DataFrame({
            # Python dates, as the labels' cohorts carry them, so that every stage reads one kind of as_of.
            "as_of": np.full(stop - start, as_of, dtype=object),
            "person_id": coded.members["person_id"].array[start:stop],
        })
        parts = _features_at(coded.registers, as_of, persons, params, gap_weeks, western_countries)
        return side_by_side([keys, *parts])

    runs = list(as_of_runs(coded.members["as_of"]))
    yield from map_in_order(at, runs, params.threads, sizes=[stop - start for _, start, stop in runs],
                            what="features' as-of dates")


def build_features(
    registers: Registers,
    cohorts: pd.DataFrame,
    params: FeatureParams,
    gap_weeks: int,
    western_countries: Collection[str],
) -> pd.DataFrame:
    """The whole feature table of :func:`features_by_date`: one row per ``as_of`` x ``person_id``
    of the union of cohorts, sorted by both. (The stage streams the dates to disk instead.)"""
    coded = code_registers(lambda name: getattr(registers, name), cohorts)
    return pd.concat(features_by_date(coded, params, gap_weeks, western_countries), ignore_index=True)


def feature_families(columns: Collection[str]) -> dict[str, str]:
    """Family of each own feature column (keys excluded); a column without a family is an error.

    The id columns ``stairwell_id`` (``stairwell``), ``building_id`` and ``area`` (``area``) are
    tagged too; they are kept for fitted encoders and the insights stage, not as raw model inputs.
    """
    families: dict[str, str] = {}
    for column in columns:
        if column in KEYS:
            continue
        families[column] = _family_of(column)
    return families


def _family_of(column: str) -> str:
    if column.startswith("audit_"):
        return AUDIT_FAMILY
    if column == "stairwell_id" or column.startswith("stairwell_"):
        return "stairwell"
    if column in ("building_id", "area", "lives_in_housing_area") or column.startswith(("building_", "area_")):
        return "area"
    if column.startswith(("origin_", "citizenship_")) or column == "years_in_denmark":
        return "origin"
    if column.startswith(("household_", "children_in_household")):
        return "household"
    if column in ("own_children_under_18", "lives_with_parent"):
        return "family"
    if column.startswith(("support_weeks_", "employed_months_", "last_week_", "earlier_spell", "current_spell")) or column in (
        "on_support_last_week", "weeks_since_last_spell",
    ):
        return "history"
    if column in ("age", "woman", "education_level", "basic_education_only", "years_at_address") or column.startswith(
        ("moves_", "total_income", "wage_income", "disposable_income", "log_")
    ):
        return "demographic"
    raise KeyError(f"feature column '{column}' has no family: add it to lyskegle.features._family_of")


def merge_network(features: pd.DataFrame, network: pd.DataFrame) -> pd.DataFrame:
    """``features`` with the network stage's columns joined on ``as_of`` x ``person_id``.

    Persons missing from ``network`` get NaN. A network column with the same name as an own
    feature is an error (it would silently replace one of them).
    """
    clash = sorted((set(network.columns) & set(features.columns)) - set(KEYS))
    if clash:
        raise ValueError(f"network features {clash} have the same names as individual/area features")
    if _same_keys(features, network):
        # The usual case (both stages cover the union of cohorts, sorted): a join by position,
        # without a merge's hash table of millions of keys.
        return side_by_side([features, network.drop(columns=list(KEYS))], index=features.index)
    keys = {
        "as_of": lambda frame: pd.to_datetime(frame["as_of"]).astype("date32[pyarrow]"),
        "person_id": lambda frame: frame["person_id"].astype("string[pyarrow]"),
    }
    network = network.assign(**keys)
    if network.duplicated(list(KEYS)).any():
        raise ValueError("network features: more than one row for an as_of x person_id")
    merged = features.assign(**keys).merge(network, on=list(KEYS), how="left", validate="one_to_one")
    return merged.assign(as_of=features["as_of"].array, person_id=features["person_id"].array)


def side_by_side(frames: Sequence[pd.DataFrame], index: pd.Index | None = None) -> pd.DataFrame:
    """The columns of ``frames`` as one frame, row by row in position (their own indexes are not
    looked at: the caller knows the rows line up), on ``index`` (a RangeIndex when None), with the
    columns' data shared, not copied. A column name in two frames is an error.

    ``pd.concat(axis=1, copy=False)`` copies every column into one block per dtype, for a table
    that is only written to Parquet: 0.4-0.6 GB of the features stage's peak at a million persons.
    """
    twice = sorted(name for name, count in Counter(name for frame in frames for name in frame.columns).items()
                   if count > 1)
    if twice:
        raise ValueError(f"columns {twice} come from more than one frame")
    rows = {len(frame) for frame in frames}
    if len(rows) > 1:
        raise ValueError(f"frames of {sorted(rows)} rows cannot stand side by side")
    index = pd.RangeIndex(rows.pop() if rows else 0) if index is None else index
    # a dict of arrays with copy=False keeps each column's memory (pandas consolidates only on copy)
    return pd.DataFrame({name: frame[name].array for frame in frames for name in frame.columns},
                        index=index, copy=False)


def _same_keys(features: pd.DataFrame, network: pd.DataFrame) -> bool:
    """Whether both tables hold the same ``as_of`` x ``person_id`` rows in the same order."""
    if len(features) != len(network):
        return False
    dates = [days(frame["as_of"]) for frame in (features, network)]
    ids = [frame["person_id"].astype("string[pyarrow]") for frame in (features, network)]
    return bool(np.array_equal(dates[0], dates[1]) and ids[0].reset_index(drop=True).equals(ids[1].reset_index(drop=True)))


def model_feature_columns(families: Mapping[str, str], include_origin: bool) -> list[str]:
    """The columns a model may use: every tagged feature except audit attributes, the raw id
    columns (``stairwell_id``, ``building_id``, ``area``: encoded by a fitted encoder instead),
    and, unless ``include_origin`` (``features.include_origin``), the ``origin`` family."""
    excluded_families = {AUDIT_FAMILY} | (set() if include_origin else {"origin"})
    return [
        column for column, family in families.items()
        if family not in excluded_families and column not in ID_COLUMNS and column not in KEYS
    ]


__all__ = [
    "FAMILIES", "ID_COLUMNS", "KEYS", "LEVELS", "CohortRegisters", "Registers", "build_features", "code_registers",
    "feature_families", "features_by_date", "known_at", "merge_network", "model_feature_columns", "side_by_side",
]
