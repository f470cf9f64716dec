"""Area indicators per housing area and year: the five official criteria and the 2015 report's
performance indicators (moves, length of stay, the "elevator effect").

Everything is counted at 1 January of the year (``bef`` of that year) from the ingested tables of
docs/DATA_MODEL.md; a resident belongs to the area of her dwelling (``dwellings.area``, null = not
a housing area). Yearly registers are read for the year before (education and income of year
Y - 1 describe residents at 1 January of Y), and status "in work or education" is taken in
November of the year before, as DST's labour-market status (RAS) is.

The criteria are reported as values next to their thresholds and as a neutral count of criteria
met ("opfylder 3 af 5 kriterier"); this module never names or labels an area.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from lyskegle.calendar import month_index, week_index
from lyskegle.concurrency import map_in_order
from lyskegle.codes import CENSORING_CODES, GROUPS, is_public_support
from lyskegle.countries import DENMARK
from lyskegle.ids import datetimes, float_by_id, is_in, map_by_id, rows_of_years
from lyskegle.privacy import suppress_small_cells
from lyskegle.status import ids_employed_in_month, ids_with_code_in_week

STUDENT_CODES = frozenset(GROUPS["student_grant"])
#: offences that count for the official conviction criterion (criminal code, weapons act, drugs act)
COUNTED_OFFENCES = ("straffelov", "vaabenlov", "euforiserende")


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the official criteria (shares as fractions, income as a fraction of the reference)."""

    outside_work_education_share: float = 0.40
    non_western_share: float = 0.50
    convicted_share: float = 0.027
    basic_education_share: float = 0.50
    income_ratio: float = 0.55
    criteria_needed: int = 3

    @classmethod
    def of(cls, params: object) -> Criteria:
        """The thresholds among ``params`` (the ``areas`` section, which holds other keys too)."""
        return cls(**{field.name: getattr(params, field.name) for field in fields(cls)})


#: criterion value column -> (threshold field, True when the criterion is met above the threshold)
CRITERIA_COLUMNS: dict[str, tuple[str, bool]] = {
    "outside_work_education_2y": ("outside_work_education_share", True),
    "non_western_share": ("non_western_share", True),
    "convicted_share_2y": ("convicted_share", True),
    "basic_education_share": ("basic_education_share", True),
    "income_ratio": ("income_ratio", False),
}

#: count column -> the value columns computed over those persons (the small-cell rule's pairs)
COUNT_OF_VALUES: dict[str, tuple[str, ...]] = {
    "residents": ("non_western_share", "mean_years_in_dwelling", "criteria_met", "criteria_known", "meets_criteria"),
    "persons_18_64": ("outside_work_education_share", "outside_work_education_2y"),
    "persons_18_plus": ("convicted_share", "convicted_share_2y"),
    "persons_30_59_known_education": ("basic_education_share",),
    "persons_15_64_outside_education": ("mean_income", "income_ratio"),
    "moves_in": (),
    "moves_out": (),
    "moves_within": (),
    "persons_left_support": ("move_out_rate_left_support",),
    "persons_stayed_on_support": ("move_out_rate_stayed_on_support",),
}


def residents_by_year(population: pd.DataFrame, dwellings: pd.DataFrame) -> pd.DataFrame:
    """Population rows with the ``area`` of their dwelling and ``age`` at 1 January of ``year``."""
    area_of_dwelling = dwellings.drop_duplicates("dwelling_id").set_index("dwelling_id")["area"]
    people = population.assign(area=map_by_id(population["dwelling_id"], area_of_dwelling),
                               year=population["year"].astype("int64"))
    birth = datetimes(people["birth_date"])
    # on 1 January a person born later in the year than 1 January has not had her birthday yet
    people["age"] = people["year"] - birth.dt.year - ((birth.dt.month > 1) | (birth.dt.day > 1)).astype("int64")
    return people


def area_indicators(
    population: pd.DataFrame,
    dwellings: pd.DataFrame,
    education: pd.DataFrame,
    income: pd.DataFrame,
    convictions: pd.DataFrame,
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    *,
    western_countries: Collection[str],
    criteria: Criteria,
    threads: int = 1,
) -> pd.DataFrame:
    """One row per housing area and year with the criteria and the performance indicators.

    Columns: ``area``, ``year``, ``residents``; per criterion its denominator and value
    (``persons_18_64``, ``outside_work_education_share`` and its two-year mean
    ``outside_work_education_2y``; ``non_western_share``; ``persons_18_plus``,
    ``convicted_share``, ``convicted_share_2y``; ``persons_30_59_known_education``,
    ``basic_education_share``; ``persons_15_64_outside_education``, ``mean_income``,
    ``income_ratio`` against the mean over the whole extract, the reference region);
    ``criteria_met`` (0-5), ``criteria_known`` (criteria with a value; a year before the data
    begin has fewer) and ``meets_criteria`` (at least ``criteria.criteria_needed`` met);
    ``moves_in``, ``moves_out``, ``moves_within``, ``mean_years_in_dwelling``; and the elevator
    effect: ``persons_left_support``, ``move_out_rate_left_support``,
    ``persons_stayed_on_support``, ``move_out_rate_stayed_on_support``. Unknown values are NaN;
    a two-year mean needs both years, the elevator effect needs the next year. Up to ``threads``
    years are computed at a time, as memory allows (:func:`lyskegle.concurrency.map_in_order`).
    """
    people = residents_by_year(population, dwellings)
    years = sorted(people["year"].unique())
    convictions = convictions.assign(decision_date=datetimes(convictions["decision_date"]))  # once, not per year
    # moves and the elevator effect follow persons who live in a housing area in some year; no one
    # else can move in, out or within one, so the lookups hold them only
    ever = people[is_in(people["person_id"], people.loc[people["area"].notna(), "person_id"].unique())]
    area_of = ever.set_index(["year", "person_id"])["area"]
    dwelling_of = ever.set_index(["year", "person_id"])["dwelling_id"]
    del ever
    for lookup in (area_of, dwelling_of):
        # pandas builds an index's lookup tables at first use, not safely from two threads at once
        # (pandas-dev/pandas#21150); the years that run side by side must find them built
        if len(lookup):
            lookup.xs(lookup.index.levels[0][0], level="year")

    def of_year(year: int) -> pd.DataFrame | None:
        everyone = rows_of_years(people, year, first_year=year)
        residents = everyone[everyone["area"].notna()].copy()
        if residents.empty:
            return None
        return _criteria_of_year(
            int(year), residents, everyone, education, income, convictions,
            benefits, employment, western_countries,
        ).join(_moves_of_year(int(year), residents, area_of, dwelling_of, benefits), how="left")

    frames = [frame for frame in map_in_order(of_year, years, threads, what="areas' years") if frame is not None]
    if not frames:
        return pd.DataFrame(columns=["area", "year", "residents"])
    table = pd.concat(frames).reset_index().sort_values(["area", "year"], ignore_index=True)
    table = _two_year_means(table)
    met = pd.DataFrame({
        column: (table[column] > getattr(criteria, name)) if above else (table[column] < getattr(criteria, name))
        for column, (name, above) in CRITERIA_COLUMNS.items()
    })
    table["criteria_met"] = met.sum(axis=1).astype("int64")
    table["criteria_known"] = table[list(CRITERIA_COLUMNS)].notna().sum(axis=1).astype("int64")
    table["meets_criteria"] = table["criteria_met"] >= criteria.criteria_needed
    return table


def _criteria_of_year(
    year: int,
    residents: pd.DataFrame,
    everyone: pd.DataFrame,
    education: pd.DataFrame,
    income: pd.DataFrame,
    convictions: pd.DataFrame,
    benefits: pd.DataFrame,
    employment: pd.DataFrame,
    western_countries: Collection[str],
) -> pd.DataFrame:
    november = dt.date(year - 1, 11, 15)
    employed = ids_employed_in_month(employment, month_index(year - 1, 11))
    students = ids_with_code_in_week(benefits, week_index(november), _is_student)

    def in_education(frame: pd.DataFrame) -> pd.Series:
        return pd.Series(is_in(frame["person_id"], students), index=frame.index)

    residents = residents.assign(
        _working_age=residents["age"].between(18, 64),
        _outside=~(is_in(residents["person_id"], employed) | in_education(residents)),
        _non_western=_non_western(residents, western_countries),
        _adult=residents["age"] >= 18,
    )
    convicted = convictions[
        convictions["offence_type"].isin(COUNTED_OFFENCES)
        & (convictions["decision_date"].dt.year == year - 1)
    ]["person_id"].unique()
    residents["_convicted"] = is_in(residents["person_id"], convicted)

    schooling = education[education["year"].astype("int64") == year - 1].drop_duplicates("person_id")
    residents = residents.merge(schooling[["person_id", "education_group"]], on="person_id", how="left")
    residents["_30_59_known"] = residents["age"].between(30, 59) & residents["education_group"].notna()
    residents["_basic_only"] = residents["_30_59_known"] & (residents["education_group"] == 10)

    earnings = income[income["year"].astype("int64") == year - 1].drop_duplicates("person_id").set_index("person_id")["total_income"]
    residents["_income"] = float_by_id(residents["person_id"], earnings)
    residents["_income_counted"] = residents["age"].between(15, 64) & ~in_education(residents) & residents["_income"].notna()
    reference = everyone.assign(_income=float_by_id(everyone["person_id"], earnings))
    reference = reference[reference["age"].between(15, 64) & ~in_education(reference) & reference["_income"].notna()]
    reference_income = reference["_income"].mean() if len(reference) else np.nan

    residents["_outside_working_age"] = residents["_working_age"] & residents["_outside"]
    residents["_convicted_adult"] = residents["_adult"] & residents["_convicted"]
    grouped = residents.groupby("area")
    out = pd.DataFrame({
        "residents": grouped.size(),
        "persons_18_64": grouped["_working_age"].sum(),
        "_outside_18_64": grouped["_outside_working_age"].sum(),
        "_non_western": grouped["_non_western"].sum(),
        "persons_18_plus": grouped["_adult"].sum(),
        "_convicted_18_plus": grouped["_convicted_adult"].sum(),
        "persons_30_59_known_education": grouped["_30_59_known"].sum(),
        "_basic_only": grouped["_basic_only"].sum(),
        "persons_15_64_outside_education": grouped["_income_counted"].sum(),
        "mean_income": residents["_income"].where(residents["_income_counted"]).groupby(residents["area"]).mean(),
    })
    # before the data begin nobody is seen working or studying: unknown, not "everyone outside"
    dream_known = not benefits.empty and week_index(november) >= int(benefits["first_week"].min())
    convictions_known = not convictions.empty and year - 1 >= convictions["decision_date"].dt.year.min()
    out["outside_work_education_share"] = _known_only(_share(out["_outside_18_64"], out["persons_18_64"]), dream_known)
    out["non_western_share"] = _share(out["_non_western"], out["residents"])
    out["convicted_share"] = _known_only(_share(out["_convicted_18_plus"], out["persons_18_plus"]), convictions_known)
    out["basic_education_share"] = _share(out["_basic_only"], out["persons_30_59_known_education"])
    out["income_ratio"] = out["mean_income"] / reference_income if reference_income else np.nan
    years_in_dwelling = (pd.Timestamp(year, 1, 1) - datetimes(residents["moved_in"])).dt.days / 365.25
    out["mean_years_in_dwelling"] = years_in_dwelling.groupby(residents["area"]).mean()
    out["year"] = year
    out = out.drop(columns=[c for c in out.columns if c.startswith("_")])
    return out.rename_axis("area").set_index("year", append=True)


def _is_student(codes: np.ndarray) -> np.ndarray:
    return np.isin(codes, list(STUDENT_CODES))


def _is_censoring(codes: np.ndarray) -> np.ndarray:
    return np.isin(codes, list(CENSORING_CODES))


def _non_western(residents: pd.DataFrame, western_countries: Collection[str]) -> pd.Series:
    """Immigrants and descendants (IE_TYPE 2, 3) whose country of origin is neither Denmark nor in
    DST's list of Western countries (DST's rule: every country not listed as Western is non-Western)."""
    country = residents["origin_country"].astype("string").str.strip().str.zfill(4)
    foreign = country.notna() & (country != DENMARK) & ~country.isin(list(western_countries))
    return (residents["origin_type"].isin([2, 3]) & foreign).fillna(False).astype(bool)


def _known_only(values: pd.Series, known: bool) -> pd.Series:
    return values if known else values * np.nan


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    return (part / whole.where(whole > 0)).astype("float64")


def _moves_of_year(
    year: int,
    residents: pd.DataFrame,
    area_of: pd.Series,
    dwelling_of: pd.Series,
    benefits: pd.DataFrame,
) -> pd.DataFrame:
    """Moves between 1 January of ``year - 1`` and of ``year``, and the elevator effect of ``year``.

    Moves count only persons in both years' population: births, deaths and migration to or from
    abroad are not moves. Elevator effect: residents aged 18-64 on public support in the week of
    1 January; by the week of 1 January next year some have left support (and are neither
    emigrated nor dead); of each group, the share living outside the area a year later.
    """
    index = pd.MultiIndex.from_product([sorted(residents["area"].unique()), [year]], names=["area", "year"])
    out = pd.DataFrame(index=index)
    before = area_of.xs(year - 1, level="year") if year - 1 in area_of.index.levels[0] else None
    after = area_of.xs(year + 1, level="year") if year + 1 in area_of.index.levels[0] else None
    now = area_of.xs(year, level="year")
    if before is not None:
        both = now.index.intersection(before.index)
        now_b, before_b = now.reindex(both), before.reindex(both)
        moved_in = now_b.notna() & (now_b != before_b).fillna(True)
        moved_out = before_b.notna() & (now_b != before_b).fillna(True)
        dwelling_now = dwelling_of.xs(year, level="year").reindex(both)
        dwelling_before = dwelling_of.xs(year - 1, level="year").reindex(both)
        within = now_b.notna() & (now_b == before_b).fillna(False) & (dwelling_now != dwelling_before).fillna(False)
        out["moves_in"] = _count_by_area(now_b[moved_in], index)
        out["moves_out"] = _count_by_area(before_b[moved_out], index)
        out["moves_within"] = _count_by_area(now_b[within], index)
    else:
        out["moves_in"] = out["moves_out"] = out["moves_within"] = np.nan

    start_week, next_week = week_index(dt.date(year, 1, 1)), week_index(dt.date(year + 1, 1, 1))
    adults = residents[residents["age"].between(18, 64)]
    on_support = adults[is_in(adults["person_id"], ids_with_code_in_week(benefits, start_week, is_public_support))]
    if after is None or benefits.empty or next_week >= int((benefits["first_week"] + benefits["n_weeks"]).max()):
        for column in ("persons_left_support", "move_out_rate_left_support", "persons_stayed_on_support", "move_out_rate_stayed_on_support"):
            out[column] = np.nan
        return out
    still = pd.Series(is_in(on_support["person_id"], ids_with_code_in_week(benefits, next_week, is_public_support)),
                      index=on_support.index)
    gone = pd.Series(is_in(on_support["person_id"], ids_with_code_in_week(benefits, next_week, _is_censoring)),
                     index=on_support.index)
    area_next = on_support["person_id"].map(after)
    present_next = pd.Series(is_in(on_support["person_id"], after.index), index=on_support.index)
    moved = present_next & (area_next != on_support["area"]).fillna(True)
    followed = pd.DataFrame({
        "area": on_support["area"],
        "left": ~still & ~gone & present_next,
        "stayed": still & present_next,
    })
    followed["left_moved"] = followed["left"] & moved
    followed["stayed_moved"] = followed["stayed"] & moved
    sums = followed.groupby("area")[["left", "stayed", "left_moved", "stayed_moved"]].sum()
    sums = sums.reindex(index.get_level_values("area")).fillna(0).astype("float64")
    out["persons_left_support"] = sums["left"].to_numpy()
    out["move_out_rate_left_support"] = _share(sums["left_moved"], sums["left"]).to_numpy()
    out["persons_stayed_on_support"] = sums["stayed"].to_numpy()
    out["move_out_rate_stayed_on_support"] = _share(sums["stayed_moved"], sums["stayed"]).to_numpy()
    return out


def _count_by_area(area_per_person: pd.Series, index: pd.MultiIndex) -> np.ndarray:
    counts = area_per_person.value_counts()
    return counts.reindex(index.get_level_values("area")).fillna(0).to_numpy("float64")


def _two_year_means(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of this year's and last year's share, per area; NaN without last year's value."""
    table = table.sort_values(["area", "year"]).copy()
    for share, mean in (("outside_work_education_share", "outside_work_education_2y"), ("convicted_share", "convicted_share_2y")):
        previous = table.groupby("area")[share].shift(1)
        consecutive = table.groupby("area")["year"].diff() == 1
        table[mean] = ((table[share] + previous) / 2).where(consecutive)
    return table


def suppress_area_table(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The area table as it may be shown: every count under ``min_cell`` and every value computed
    over such a count is missing (``<NA>``). Areas are not summed to a shown total, so there is no
    secondary suppression. A column ``suppressed_cells`` counts the cells hidden in each row."""
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].astype("boolean")
        elif pd.api.types.is_numeric_dtype(out[column]) and column != "year":
            out[column] = out[column].astype("Float64")
    hidden = pd.Series(0, index=out.index, dtype="int64")
    for count, values in COUNT_OF_VALUES.items():
        if count not in out.columns:
            continue
        cells = [count, *(v for v in values if v in out.columns)]
        known = out[count].notna()  # a count that was never computed is missing, not small
        checked = suppress_small_cells(out.loc[known, cells], count, min_cell, value_columns=cells[1:], total_groups=None)
        small = checked.index[checked["suppressed"]]
        out.loc[small, cells] = pd.NA
        hidden.loc[small] += len(cells)
    out["suppressed_cells"] = hidden
    return out


def criteria_long(table: pd.DataFrame, criteria: Criteria, columns: Sequence[str] = tuple(CRITERIA_COLUMNS)) -> pd.DataFrame:
    """The criteria as long rows (``area``, ``year``, ``criterion``, ``value``, ``threshold``) for plots."""
    rows = table.melt(id_vars=["area", "year"], value_vars=list(columns), var_name="criterion", value_name="value")
    rows["threshold"] = rows["criterion"].map({c: getattr(criteria, CRITERIA_COLUMNS[c][0]) for c in columns})
    return rows
