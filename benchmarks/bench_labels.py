"""Benchmark of the labels stage: spells and both cohorts for many persons.

Generates random benefit runs (about ``--runs-per-person`` per person over 2012-2024) and a
population for every as-of year, writes them as Parquet in a scratch folder, reads them back the
way the stage does, and times :func:`lyskegle.labels.make_labels` and the summary.
Prints wall and CPU times, the load average, and peak memory (resident set of this process).

    .venv/bin/python benchmarks/bench_labels.py --persons 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from lyskegle import io
from lyskegle.calendar import week_index
from lyskegle.config import LabelParams
from lyskegle.labels import make_labels, summarise

AS_OF_DATES = [dt.date(2016, 1, 4), dt.date(2017, 1, 2), dt.date(2018, 1, 1), dt.date(2019, 1, 7),
               dt.date(2020, 1, 6), dt.date(2021, 1, 4), dt.date(2022, 1, 3), dt.date(2023, 1, 2)]
FIRST_WEEK, LAST_WEEK = week_index(dt.date(2012, 1, 2)), week_index(dt.date(2024, 12, 23))
CODES = np.array([131, 135, 211, 891, 783, 651, 121, 881, 741, 771, 999, 997])
CODE_WEIGHTS = np.array([20, 10, 15, 15, 3, 10, 10, 5, 4, 4, 2, 2], dtype=float)


def random_extract(persons: int, runs_per_person: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(benefits, population) with ``persons`` persons; runs of one person never overlap."""
    ids = np.array([f"p{i:016d}" for i in range(persons)], dtype=object)
    person = np.repeat(np.arange(persons), runs_per_person)
    length = rng.integers(1, 30, size=len(person))
    blank = rng.integers(0, 10, size=len(person)) * rng.integers(0, 2, size=len(person))
    step = length + blank
    ends = np.cumsum(step)
    person_start = np.repeat(ends[::runs_per_person] - step[::runs_per_person], runs_per_person)
    first = FIRST_WEEK + rng.integers(0, 40, size=persons).repeat(runs_per_person) + ends - step - person_start
    keep = first + length <= LAST_WEEK + 1
    codes = rng.choice(CODES, size=len(person), p=CODE_WEIGHTS / CODE_WEIGHTS.sum())
    benefits = pd.DataFrame({
        "person_id": ids[person[keep]], "code": codes[keep].astype("int16"),
        "first_week": first[keep].astype("int32"), "n_weeks": length[keep].astype("int16"),
    })
    births = np.datetime64("1950-01-01") + rng.integers(0, 365 * 60, size=persons).astype("timedelta64[D]")
    population = pd.DataFrame({
        "person_id": np.tile(ids, len(AS_OF_DATES)),
        "year": np.repeat([d.year for d in AS_OF_DATES], persons).astype("int16"),
        "birth_date": np.tile(births, len(AS_OF_DATES)),
    })
    population["birth_date"] = population["birth_date"].dt.date
    return benefits, population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--runs-per-person", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2015)
    args = parser.parse_args()
    process = psutil.Process()

    benefits, population = random_extract(args.persons, args.runs_per_person, np.random.default_rng(args.seed))
    with tempfile.TemporaryDirectory() as scratch:
        io.write_parquet(benefits, Path(scratch) / "benefits.parquet")
        io.write_parquet(population, Path(scratch) / "population.parquet")
        del benefits, population
        start = time.perf_counter()
        benefits = io.read_parquet(Path(scratch) / "benefits.parquet")
        population = io.read_parquet(Path(scratch) / "population.parquet")
        read_seconds = time.perf_counter() - start

    params = LabelParams(as_of_dates=AS_OF_DATES)
    rss_before = process.memory_info().rss
    start, cpu_start = time.perf_counter(), time.process_time()
    labels = make_labels(benefits, population, params, FIRST_WEEK, LAST_WEEK)
    label_seconds, label_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    summarise(labels, min_cell=5)
    summary_seconds = time.perf_counter() - start

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"persons {args.persons:,}  benefit runs {len(benefits):,}  population rows {len(population):,}", file=sys.stderr)
    print(f"spells {len(labels.spells):,}  cohort rows {len(labels.cohorts):,}  skipped {len(labels.skipped)}")
    print(f"read parquet        {read_seconds:7.1f} s")
    print(f"make_labels         {label_seconds:7.1f} s wall, {label_cpu:.1f} s cpu")
    print(f"load average        {' '.join(f'{x:.1f}' for x in psutil.getloadavg())} (other work on the machine slows wall time)")
    print(f"summarise           {summary_seconds:7.1f} s")
    print(f"rss before labels   {rss_before / 2**30:7.2f} GiB")
    print(f"peak rss (process)  {peak_kib / 2**20:7.2f} GiB")


if __name__ == "__main__":
    main()
