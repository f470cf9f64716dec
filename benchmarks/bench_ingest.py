"""Stage `ingest` at scale: wall time and peak memory on a generated extract of N persons.

    .venv/bin/python benchmarks/bench_ingest.py --persons 1000000 [--first-year 2012 --last-year 2024]

Writes an extract in the contract's shape (its own quick generator, independent of the synthetic
stage: every person in every `bef` year, weekly DREAM over all years as Parquet with 3-digit codes
in runs, monthly `branche`, yearly `idan`/`grundskole` as Parquet, `udda`/`ind` as CSV with decimal
comma, `kraf` as SAS transport), then runs `pipelines/ingest.py` on it as a subprocess, sampling the
resident memory every 0.1 s (and the child's ru_maxrss) and its CPU time. Budget (issue): 1M persons in
well under 90 s and under 5 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyreadstat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

from lyskegle.calendar import dream_month_column, dream_week_column, iso_week_index, month_index

REPO = Path(__file__).resolve().parents[1]
CODES = np.array([131, 891, 783, 651, 111, 211, 715, 741, 881, 121], dtype=np.int16)


def _pnr(index: np.ndarray) -> pa.Array:
    """Synthetic CPR numbers (day 61-88), unique for index < 336 million."""
    day = 61 + index % 28
    month = 1 + (index // 28) % 12
    year = (index // 336) % 100
    serial = index // 33_600
    return pc_string(day * 10**8 + month * 10**6 + year * 10**4 + serial)


def pc_string(numbers: np.ndarray) -> pa.Array:
    return pa.compute.cast(pa.array(numbers), pa.string())


def _csv(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(table, path, pacsv.WriteOptions(delimiter=";", quoting_style="none"))


def generate(folder: Path, persons: int, first_year: int, last_year: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index = np.arange(persons, dtype=np.int64)
    pnr = _pnr(index)
    birth = pd.Timestamp("1940-01-01") + pd.to_timedelta(rng.integers(0, 25_000, persons), unit="D")
    birth_text = pa.array(birth.strftime("%Y-%m-%d"))
    dwellings = persons // 2
    stairwells = np.arange(dwellings) // 8
    _csv(pa.table({
        "ADRESSE_ID": pc_string(np.arange(dwellings)), "ADGANGSADRESSE_ID": pc_string(stairwells),
        "BYGNING_ID": pc_string(stairwells // 4), "OMRAADE": pc_string(stairwells // 200),
        "ETAGE": pc_string(np.arange(dwellings) % 4), "DOER": pa.array(np.where(index[:dwellings] % 2, "th", "tv")),
    }), folder / "adresser.csv")

    def maybe_person(share: float) -> pa.Array:
        chosen = _pnr(rng.integers(0, persons, persons))
        return pa.compute.if_else(pa.array(rng.random(persons) < share), chosen, pa.scalar(None, pa.string()))

    sex = pc_string(rng.integers(1, 3, persons))
    origin = pc_string(rng.integers(1, 4, persons))
    for year in range(first_year, last_year + 1):
        _csv(pa.table({
            "PNR": pnr, "FOED_DAG": birth_text, "KOEN": sex, "IE_TYPE": origin,
            "OPR_LAND": pa.array(np.full(persons, "5100")), "STATSB": pa.array(np.full(persons, "5100")),
            "KOM": pa.array(np.full(persons, "159")), "ADRESSE_ID": pc_string(index // 2),
            "BOP_VFRA": pa.array(np.full(persons, "2010-04-01")), "FAMILIE_ID": pc_string(index // 3),
            "E_FAELLE_ID": maybe_person(0.4), "MOR_ID": maybe_person(0.7), "FAR_ID": maybe_person(0.6),
            "CIVST": pa.array(np.full(persons, "G")),
        }), folder / f"bef{year}.csv")
        workers = rng.random(persons) < 0.5
        pq.write_table(pa.table({
            "PNR": pnr.filter(pa.array(workers)), "ARBNR": pc_string(rng.integers(0, persons // 20, workers.sum())),
            "CVRNR": pc_string(rng.integers(0, persons // 50, workers.sum())),
            "TYPE": pa.array(np.full(workers.sum(), "H")), "JOBKAT": pa.array(np.full(workers.sum(), "5")),
        }), folder / f"idan{year}.parquet")
        _csv(pa.table({"PNR": pnr, "HFAUDD": pc_string(rng.integers(1, 9, persons) * 1000 + 10),
                       "HF_VFRA": pa.array(np.full(persons, "2005-06-30"))}), folder / f"udda{year}.csv")
        wage = rng.integers(0, 600_000, persons)
        _csv(pa.table({"PNR": pnr, "PERINDKIALT_13": pa.array([f"{w},50" for w in (wage + 20_000).tolist()]),
                       "LOENMV_13": pc_string(wage), "DISPON_13": pa.array([f"{w},25" for w in (wage * 3 // 4).tolist()])}),
             folder / f"ind{year}.csv")
        pupils = rng.random(persons) < 0.1
        pq.write_table(pa.table({
            "PNR": pnr.filter(pa.array(pupils)), "INSTNR": pc_string(rng.integers(0, 300, pupils.sum())),
            "KL_BETEGNELSE": pa.array(np.full(pupils.sum(), "4b")), "KL_TYPE": pa.array(np.full(pupils.sum(), "40")),
            "KLASSETRIN": pa.array(rng.integers(0, 10, pupils.sum()).astype(np.int8)),
        }), folder / f"grundskole{year}.parquet")
        convicted = np.flatnonzero(rng.random(persons) < 0.01)
        pyreadstat.write_xport(pd.DataFrame({
            "PNR": pa.compute.take(pnr, pa.array(convicted)).to_pylist(),
            "AFG_DATO": [dt.date(year, 6, 1)] * len(convicted), "AFG_ART": ["straffelov"] * len(convicted),
        }), str(folder / f"kraf{year}.xpt"))

    first_week = iso_week_index(first_year, 1)
    last_week = iso_week_index(last_year, 52)
    weeks = last_week - first_week + 1
    columns = {"PNR": pnr}
    # each person changes state about every 20 weeks; two in three states are blank
    state = np.zeros(persons, dtype=np.int16)
    for offset in range(weeks):
        change = rng.random(persons) < 0.05
        new = np.where(rng.random(persons) < 0.66, 0, CODES[rng.integers(0, len(CODES), persons)])
        state = np.where(change, new, state).astype(np.int16)
        columns[dream_week_column(first_week + offset)] = pa.array(state, mask=state == 0)
    works = rng.random(persons) < 0.5
    for month in range(month_index(first_year, 1), month_index(last_year, 12) + 1):
        works = np.where(rng.random(persons) < 0.05, ~works, works)
        columns[dream_month_column(month)] = pa.array(np.where(works, "4711", None))
    pq.write_table(pa.table(columns), folder / "dream.parquet")
    (folder / "EXTRACT.json").write_text(json.dumps({"synthetic": True}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--first-year", type=int, default=2012)
    parser.add_argument("--last-year", type=int, default=2024)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lyskegle-bench-ingest-"))
    extract = workdir / "extract"
    if not extract.exists():  # a finished extract is reused; a half-written one is not
        started = time.perf_counter()
        partial = workdir / "extract.partial"
        shutil.rmtree(partial, ignore_errors=True)
        generate(partial, args.persons, args.first_year, args.last_year, np.random.default_rng(2015))
        partial.rename(extract)
        print(f"generated {args.persons} persons, {args.first_year}-{args.last_year} in {time.perf_counter() - started:.0f} s")
    params = workdir / "params.yaml"
    params.write_text(yaml.safe_dump({"extract": {"path": str(extract)}, "ingest": {"allow_development_key": True}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSKEGLE_PSEUDONYM_KEY")}
    seconds, cpu, peak, code = run_measured([
        sys.executable, "pipelines/ingest.py", "--params", str(params), "--synthetic", str(extract),
        "--out", str(workdir / "ingested"), "--quarantine", str(workdir / "quarantine"),
        "--quality", str(workdir / "data_quality.json"),
    ], cwd=REPO, env=env)
    if code:
        raise SystemExit(f"ingest failed with exit code {code}")
    totals = json.loads((workdir / "data_quality.json").read_text())["totals"]
    print(f"ingest: {args.persons} persons, {totals['rows_read']} rows read, "
          f"{seconds:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak / 2**30:.2f} GB (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
