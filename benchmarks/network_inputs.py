"""Random but realistically sized inputs for the network stage, in the data-model shape.

:func:`build_network_inputs` returns the ingested tables the network stage reads (population,
dwellings, jobs, classes, benefits, employment) and a cohort of every resident at one as-of date:
households of about 2 persons (a couple and their children), stairwells of about 15 persons,
housing areas of about 100 stairwells, workplaces with a heavy tail up to ``max_workplace``
persons, school classes of about 22 pupils over up to 10 school years (re-mixed once, at grade 6),
grandparents through the parents' ``mother_id``, and public support / work around the as-of date.
Only for benchmarks: it is fast and vectorised, not a model of any municipality.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from lyskegle.calendar import month_of_week, week_index


def build_network_inputs(
    persons: int, as_of: dt.date, rng: np.random.Generator, max_workplace: int = 5000,
) -> dict[str, pd.DataFrame]:
    """Tables keyed by name: ``population`` (years ``as_of.year - 1`` and ``as_of.year``),
    ``dwellings``, ``jobs``, ``classes``, ``benefits``, ``employment`` and ``cohorts``."""
    year = as_of.year
    ids = pd.array([f"p{i:016x}" for i in range(persons)], dtype="string[pyarrow]")
    order = rng.permutation(persons)

    # Households: consecutive runs of a random permutation, sizes geometric with mean 2.
    sizes = _sizes(rng.geometric(0.5, persons), persons)
    dwelling = np.repeat(np.arange(len(sizes)), sizes)
    person = order  # person order[k] lives in dwelling[k]
    rank = np.arange(persons) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # 0 first adult, 1 partner, 2+ children
    head = np.repeat(np.cumsum(sizes) - sizes, sizes)
    first_adult = order[head]
    second_adult = np.where(sizes[dwelling] >= 2, order[np.minimum(head + 1, persons - 1)], -1)

    partner = np.full(persons, -1)
    mother = np.full(persons, -1)
    father = np.full(persons, -1)
    couple = (rank <= 1) & (sizes[dwelling] >= 2)
    partner[person[couple & (rank == 0)]] = second_adult[couple & (rank == 0)]
    partner[person[couple & (rank == 1)]] = first_adult[couple & (rank == 1)]
    child = rank >= 2
    mother[person[child]] = first_adult[child]
    father[person[child]] = second_adult[child]
    adults = person[rank <= 1]
    with_mother = adults[rng.random(len(adults)) < 0.3]  # a grandparent somewhere in the municipality
    mother[with_mother] = rng.integers(0, persons, len(with_mother))

    dwelling_of = np.empty(persons, dtype="int64")
    dwelling_of[person] = dwelling
    n_dwellings = len(sizes)
    stairwell_of_dwelling = np.arange(n_dwellings) // 7 + rng.integers(0, 2, n_dwellings)
    area_of_stairwell = np.arange(stairwell_of_dwelling.max() + 1) // 100

    def text(prefix: str, values: np.ndarray) -> pd.arrays.ArrowStringArray:
        out = pd.Series(values).map(lambda v: None if v < 0 else f"{prefix}{v}")
        return out.astype("string[pyarrow]").array

    def person_text(values: np.ndarray):
        out = pd.Series(ids).take(np.maximum(values, 0)).reset_index(drop=True)
        return out.where(values >= 0, pd.NA).astype("string[pyarrow]").array

    current = pd.DataFrame({
        "person_id": ids, "year": np.int16(year), "dwelling_id": text("d", dwelling_of),
        "family_id": text("f", dwelling_of), "partner_id": person_text(partner),
        "mother_id": person_text(mother), "father_id": person_text(father),
    })
    population = pd.concat([current.assign(year=np.int16(year - 1)), current], ignore_index=True)
    dwellings = pd.DataFrame({
        "dwelling_id": text("d", np.arange(n_dwellings)),
        "stairwell_id": text("s", stairwell_of_dwelling),
        "building_id": text("b", stairwell_of_dwelling // 4),
        "area": text("a", area_of_stairwell[stairwell_of_dwelling]),
    })

    # Workplaces: 60 % have a primary job; sizes Zipf-like with a heavy tail capped at max_workplace.
    workers = rng.permutation(persons)[: int(0.6 * persons)]
    work_sizes = _sizes(np.minimum(rng.zipf(2.0, len(workers)), max_workplace), len(workers))
    workplace = np.repeat(np.arange(len(work_sizes)), work_sizes)
    secondary = rng.permutation(persons)[: int(0.1 * persons)]
    jobs = pd.DataFrame({
        "person_id": pd.concat([pd.Series(ids).take(workers), pd.Series(ids).take(secondary)], ignore_index=True).array,
        "year": np.int16(year - 1),
        "workplace_id": text("w", np.concatenate([workplace, rng.integers(0, len(work_sizes), len(secondary))])),
        "job_type": ["H"] * len(workers) + ["B"] * len(secondary),
    })

    # Classes: a quarter of the residents went to school here within the last 10 years, in classes of
    # 22 that keep together through grades 0-5 and are mixed again for grades 6-9.
    pupils = rng.permutation(persons)[: persons // 4]
    first_grade_year = rng.integers(year - 16, year, len(pupils))
    rows_person, rows_year, rows_class = [], [], []
    for stage, grades in ((0, range(0, 6)), (1, range(6, 10))):
        shuffle = rng.permutation(len(pupils)) if stage else np.arange(len(pupils))
        mixed, start = pupils[shuffle], first_grade_year[shuffle]
        cohort_order = np.lexsort((rng.random(len(mixed)), start))  # same first year, then by chance
        class_of = np.empty(len(mixed), dtype="int64")
        class_of[cohort_order] = np.arange(len(mixed)) // 22 + stage * len(mixed)
        for grade in grades:
            school_year = start + grade
            known = (school_year >= year - 10) & (school_year <= year - 1)
            rows_person.append(mixed[known])
            rows_year.append(school_year[known])
            rows_class.append(class_of[known])
    class_person = np.concatenate(rows_person)
    classes = pd.DataFrame({
        "person_id": pd.Series(ids).take(class_person).array,
        "year": np.concatenate(rows_year).astype("int16"),
        "school_id": text("k", np.concatenate(rows_class) // 40),
        "class_name": text("c", np.concatenate(rows_class)),
    })

    # Status: 20 % had a public-support run and 5 % SU around the as-of date; 60 % worked.
    week = week_index(as_of)
    supported = rng.permutation(persons)[: persons // 5]
    students = rng.permutation(persons)[: persons // 20]
    benefit_person = np.concatenate([supported, students])
    benefits = pd.DataFrame({
        "person_id": pd.Series(ids).take(benefit_person).array,
        "code": np.concatenate([rng.choice([131, 891, 783, 211], len(supported)), np.full(len(students), 651)]).astype("int16"),
        "first_week": (week - rng.integers(1, 80, len(benefit_person))).astype("int32"),
        "n_weeks": rng.integers(1, 60, len(benefit_person)).astype("int16"),
    })
    month = int(month_of_week(week - 1))
    employment = pd.DataFrame({
        "person_id": pd.Series(ids).take(workers).array,
        "first_month": (month - rng.integers(0, 24, len(workers))).astype("int32"),
        "n_months": rng.integers(1, 36, len(workers)).astype("int16"),
    })
    cohorts = pd.DataFrame({"target": "self_sufficient", "as_of": as_of, "person_id": ids})
    return {
        "population": population, "dwellings": dwellings, "jobs": jobs, "classes": classes,
        "benefits": benefits, "employment": employment, "cohorts": cohorts,
    }


def _sizes(draws: np.ndarray, total: int) -> np.ndarray:
    """Group sizes from ``draws`` cut so that they add up to exactly ``total``."""
    ends = np.cumsum(draws)
    count = int(np.searchsorted(ends, total)) + 1
    sizes = draws[:count].copy()
    sizes[-1] -= ends[count - 1] - total
    return sizes[sizes > 0]
