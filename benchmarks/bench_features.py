"""Benchmark of the features stage's core: persons x one as-of date, wall time and peak memory.

Builds a random municipality in the ingested shape (docs/DATA_MODEL.md) with numpy (no Python loop
over persons), then times ``lyskegle.features.build_features`` for every resident at one as-of date.

    .venv/bin/python benchmarks/bench_features.py --persons 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import resource
import time

import numpy as np
import pandas as pd
import psutil

from lyskegle.calendar import month_of_week, week_index
from lyskegle.config import FeatureParams
from lyskegle.countries import WESTERN_COUNTRIES
from lyskegle.features import Registers, build_features

AS_OF = dt.date(2016, 1, 4)
YEARS = (2013, 2014, 2015, 2016)


def _ids(prefix: str, n: int) -> np.ndarray:
    return (prefix + pd.Series(np.arange(n)).astype(str)).to_numpy(object)


def random_registers(persons: int, seed: int = 1) -> Registers:
    """A random municipality of ``persons`` residents, years 2013-2016, DREAM weeks around 2016."""
    rng = np.random.default_rng(seed)
    person_id = _ids("p", persons)
    n_dwellings = max(persons * 10 // 22, 1)
    dwelling_number = np.arange(n_dwellings)
    dwellings = pd.DataFrame({
        "dwelling_id": _ids("d", n_dwellings),
        "stairwell_id": ("s" + pd.Series(dwelling_number // 8).astype(str)).to_numpy(object),
        "building_id": ("b" + pd.Series(dwelling_number // 32).astype(str)).to_numpy(object),
        "area": np.where(dwelling_number // 32 % 5 == 0, ("a" + pd.Series(dwelling_number // 640).astype(str)).to_numpy(object), None),
        "floor": "1", "door": "th",
    })
    home = rng.integers(0, n_dwellings, persons)
    birth = (np.datetime64("1940-01-01") + rng.integers(0, 365 * 75, persons)).astype("datetime64[D]")
    partner = np.where(rng.random(persons) < 0.3, person_id[np.arange(persons) ^ 1], None)
    mother = np.where(rng.random(persons) < 0.2, person_id[rng.integers(0, persons, persons)], None)
    frames = []
    for year in YEARS:
        moved = rng.random(persons) < 0.1
        home = np.where(moved, rng.integers(0, n_dwellings, persons), home)
        present = rng.random(persons) < 0.97
        frames.append(pd.DataFrame({
            "person_id": person_id[present], "year": np.int16(year), "birth_date": birth[present],
            "sex": rng.integers(1, 3, present.sum()).astype("int8"),
            "origin_type": rng.choice(np.array([1, 2, 3], dtype="int8"), present.sum(), p=[0.8, 0.15, 0.05]),
            "origin_country": rng.choice(np.array(["5100", "5180", "5432", "5522"], dtype=object), present.sum()),
            "citizenship": rng.choice(np.array(["5100", "5180", "5432"], dtype=object), present.sum()),
            "municipality": "461",
            "dwelling_id": dwellings["dwelling_id"].to_numpy()[home[present]],
            "moved_in": np.datetime64(f"{year - 1}-12-31") - rng.integers(0, 8000, present.sum()).astype("timedelta64[D]"),
            "family_id": person_id[present], "partner_id": partner[present], "mother_id": mother[present],
            "father_id": None, "civil_status": "U",
        }))
    population = pd.concat(frames, ignore_index=True)

    runs_per_person = 4
    owner = np.repeat(np.arange(persons), runs_per_person)
    gaps = rng.integers(1, 60, owner.size)
    lengths = rng.integers(1, 40, owner.size)
    starts = 2000 + np.cumsum((gaps + lengths).reshape(persons, runs_per_person), axis=1).ravel() - lengths
    benefits = pd.DataFrame({
        "person_id": person_id[owner],
        "code": rng.choice(np.array([131, 211, 721, 783, 891, 651, 121], dtype="int16"), owner.size),
        "first_week": starts.astype("int32"), "n_weeks": lengths.astype("int16"),
    })
    work_owner = np.repeat(np.arange(persons), 2)
    employment = pd.DataFrame({
        "person_id": person_id[work_owner],
        "first_month": (24100 + np.array([0, 60] * persons) + rng.integers(0, 30, work_owner.size)).astype("int32"),
        "n_months": rng.integers(1, 30, work_owner.size).astype("int16"),
    })
    yearly_owner = np.repeat(np.arange(persons), 3)
    yearly_years = np.tile(np.array([2013, 2014, 2015], dtype="int16"), persons)
    education = pd.DataFrame({
        "person_id": person_id[yearly_owner], "year": yearly_years, "education_code": "5080",
        "education_group": rng.choice(np.array([10, 20, 30, 50, 70], dtype="int8"), yearly_owner.size),
    })
    income = pd.DataFrame({
        "person_id": person_id[yearly_owner], "year": yearly_years,
        "total_income": rng.normal(250_000, 100_000, yearly_owner.size),
        "wage_income": rng.normal(200_000, 100_000, yearly_owner.size),
        "disposable_income": rng.normal(180_000, 60_000, yearly_owner.size),
    })
    assert month_of_week(week_index(AS_OF)) == 24192
    return Registers(population, dwellings, benefits, employment, education, income)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    started = time.perf_counter()
    registers = random_registers(args.persons)
    built = time.perf_counter()
    residents = registers.population.loc[registers.population["year"] == AS_OF.year, "person_id"]
    cohorts = pd.DataFrame({"as_of": AS_OF, "person_id": residents.to_numpy()})
    rss_before = psutil.Process().memory_info().rss
    cpu_before = time.process_time()
    features = build_features(registers, cohorts, FeatureParams(), 4, WESTERN_COUNTRIES)
    done = time.perf_counter()
    cpu = time.process_time() - cpu_before
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"persons in population: {args.persons:,}; feature rows (one as-of date): {len(features):,}; columns: {features.shape[1]}")
    print(f"benefit runs: {len(registers.benefits):,}; population rows: {len(registers.population):,}")
    print(f"generate registers: {built - started:.1f} s")
    print(f"build_features, one as-of date: {done - built:.1f} s wall, {cpu:.1f} s CPU (the machine is shared: CPU time is the steadier figure)")
    print(f"memory before build_features: {rss_before / 2**20:,.0f} MB; peak RSS of the process: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
