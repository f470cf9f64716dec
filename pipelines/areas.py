"""Stage `areas`: the official criteria and the 2015 report's indicators per housing area and year.

Reads the ingested population, dwellings, education, income, convictions, benefits and employment
tables; writes ``--out`` (``reports/areas.csv``) with every count under ``privacy.min_cell`` and
every figure computed over such a count suppressed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lyskegle import io
from lyskegle.areas import Criteria, area_indicators, suppress_area_table
from lyskegle.config import load_section
from lyskegle.countries import WESTERN_COUNTRIES

log = logging.getLogger("lyskegle.pipelines.areas")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path, help="folder of the ingest stage's tables")
    parser.add_argument("--out", required=True, type=Path, help="areas.csv (aggregates only)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_section(args.params, "areas")
    criteria = Criteria.of(params)
    min_cell = load_section(args.params, "privacy").min_cell
    read = lambda name, columns=None: io.read_parquet(args.ingested / f"{name}.parquet", columns=columns)  # noqa: E731
    tables = {
        "population": read("population", ["person_id", "year", "birth_date", "origin_type", "origin_country", "dwelling_id", "moved_in"]),
        "dwellings": read("dwellings", ["dwelling_id", "area"]),
        "education": read("education", ["person_id", "year", "education_group"]),
        "income": read("income", ["person_id", "year", "total_income"]),
        "convictions": read("convictions", ["person_id", "decision_date", "offence_type"]),
        "benefits": read("benefits", ["person_id", "code", "first_week", "n_weeks"]),
        "employment": read("employment", ["person_id", "first_month", "n_months"]),
    }
    log.info("read %d population rows, %d benefit runs", len(tables["population"]), len(tables["benefits"]))
    table = area_indicators(**tables, western_countries=WESTERN_COUNTRIES, criteria=criteria, threads=params.threads)
    shown = suppress_area_table(table, min_cell)
    log.info("%d area-years; %d cells suppressed", len(shown), int(shown["suppressed_cells"].sum()))
    io.write_csv(shown, args.out)


if __name__ == "__main__":
    main()
