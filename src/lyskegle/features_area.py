"""Stairwell, building and area aggregates over a person's neighbours, leaving the person out.

At an as-of date every resident of the population (status 1 January of the as-of year) is placed
in a dwelling, and through ``dwellings`` in a stairwell (opgang), a building and possibly a housing
area. For each level, each person gets the mean of a measure over the *other* residents of that
level: ``(sum - own) / (n - 1)``, so the person's own status never describes their surroundings.
With fewer than ``min_group_persons`` others the aggregate is missing rather than a small-number
rate. Persons outside any housing area have no area aggregate (NaN): the rest of the municipality
is not an area.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from lyskegle.features_individual import years_since
from lyskegle.ids import on_persons
from lyskegle.labels import age_at

#: Residence level -> the dwellings column that names it.
LEVELS = {"stairwell": "stairwell_id", "building": "building_id", "area": "area"}
ID_COLUMNS = tuple(LEVELS.values())


def leave_one_out_mean(groups: pd.Series | np.ndarray, values: np.ndarray, min_others: int) -> np.ndarray:
    """Mean of ``values`` over the other members of each row's group.

    ``groups`` holds each row's group (NA: no group, result NaN), or integer group codes from
    ``pd.factorize`` (-1: no group); ``values`` is float, NaN where a row does not count (outside
    the measure's population). NaN where fewer than ``min_others`` other rows count.
    """
    is_codes = isinstance(groups, np.ndarray) and groups.dtype.kind == "i"
    codes = groups if is_codes else pd.factorize(groups, use_na_sentinel=True)[0]
    values = np.asarray(values, dtype="float64")
    counted = ~np.isnan(values) & (codes >= 0)
    in_group = codes >= 0
    size = int(codes.max(initial=-1)) + 2  # at least one bin, so that indexing by 0 always works
    own = np.where(counted, values, 0.0)
    sums = np.bincount(codes[in_group], weights=own[in_group], minlength=size)
    counts = np.bincount(codes[in_group], weights=counted[in_group].astype("float64"), minlength=size)
    safe = np.where(in_group, codes, 0)
    others = np.where(in_group, counts[safe] - counted, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums[safe] - own) / others
    return np.where(in_group & (others >= min_others), mean, np.nan)


def residence_of(population_now: pd.DataFrame, dwellings: pd.DataFrame) -> pd.DataFrame:
    """Each resident's ``stairwell_id``, ``building_id`` and ``area`` (strings, NA when unknown).

    ``population_now`` is indexed by ``person_id`` with a ``dwelling_id`` column.
    """
    places = dwellings.drop_duplicates("dwelling_id").set_index("dwelling_id")[list(ID_COLUMNS)]
    placed = places.reindex(pd.Index(population_now["dwelling_id"]))
    placed.index = population_now.index
    return placed.astype("string[pyarrow]")


def neighbourhood_features(
    population_now: pd.DataFrame,
    dwellings: pd.DataFrame,
    on_support: pd.Index,
    employed: pd.Index,
    as_of: dt.date,
    persons: pd.Index,
    min_group_persons: int,
    working_ages: tuple[int, int],
    turnover_days: int,
) -> pd.DataFrame:
    """Aggregates over the other residents of the person's stairwell, building and area.

    ``on_support`` are the persons on public support in the week before the as-of date,
    ``employed`` those with work in the month before it. Per level ``L`` (``stairwell``,
    ``building``, ``area``) the columns are ``L_residents`` (all residents, the person included),
    ``L_neighbours_on_support_share`` and ``L_neighbours_employed_share`` (over other residents of
    working age), ``L_turnover`` (share of other residents who moved in within ``turnover_days``)
    and ``L_mean_years_of_stay`` (over other residents with a known move-in date). Also the id
    columns ``stairwell_id``, ``building_id``, ``area`` (strings) and ``lives_in_housing_area``.
    """
    residents = residence_of(population_now, dwellings)
    age = age_at(population_now["birth_date"], as_of)
    working = (age >= working_ages[0]) & (age <= working_ages[1])
    ids = population_now.index
    support_share = np.where(working, ids.isin(on_support).astype("float64"), np.nan)
    employed_share = np.where(working, ids.isin(employed).astype("float64"), np.nan)
    stay = years_since(population_now["moved_in"], as_of).to_numpy("float64")
    moved_in_lately = np.where(np.isnan(stay), np.nan, (stay * 365.25 < turnover_days).astype("float64"))

    columns: dict[str, np.ndarray] = {}
    for level, id_column in LEVELS.items():
        group, _ = pd.factorize(residents[id_column], use_na_sentinel=True)  # once per level: hashing ids is the cost
        size = np.bincount(group[group >= 0], minlength=int(group.max(initial=-1)) + 2)
        columns[f"{level}_residents"] = np.where(group >= 0, size[np.maximum(group, 0)], np.nan)
        columns[f"{level}_neighbours_on_support_share"] = leave_one_out_mean(group, support_share, min_group_persons)
        columns[f"{level}_neighbours_employed_share"] = leave_one_out_mean(group, employed_share, min_group_persons)
        columns[f"{level}_turnover"] = leave_one_out_mean(group, moved_in_lately, min_group_persons)
        columns[f"{level}_mean_years_of_stay"] = leave_one_out_mean(group, stay, min_group_persons)
    aggregates = on_persons(pd.DataFrame(columns, index=ids), persons)
    placed = on_persons(residents, persons)
    known_dwelling = on_persons(population_now["dwelling_id"], persons).notna()
    placed["lives_in_housing_area"] = np.where(known_dwelling, placed["area"].notna().astype("float64"), np.nan)
    return placed.join(aggregates)
