"""Stage `labels`: public-support spells and the exit_26w and self_sufficient cohorts.

Reads ``<ingested>/benefits.parquet``, ``<ingested>/population.parquet`` and the DREAM span
(``first_week``, ``last_week``) from ``<ingested>/extract.json``. Writes ``<out>/spells.parquet``,
``<out>/cohorts.parquet`` and the small-cell-suppressed summary ``--summary`` (a DVC metric).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.labels import make_labels, summarise

log = logging.getLogger("lyskegle.pipelines.labels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path, help="folder of the ingest stage's tables")
    parser.add_argument("--out", required=True, type=Path, help="folder for spells.parquet and cohorts.parquet")
    parser.add_argument("--summary", required=True, type=Path, help="summary JSON (aggregates only)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_section(args.params, "labels")
    min_cell = load_section(args.params, "privacy").min_cell
    extract = io.read_json(args.ingested / "extract.json")
    for key in ("first_week", "last_week"):
        if not isinstance(extract.get(key), int):
            raise ValueError(f"{args.ingested / 'extract.json'}: '{key}' (the DREAM span) is missing or not an integer")
    benefits = io.read_parquet(args.ingested / "benefits.parquet", columns=["person_id", "code", "first_week", "n_weeks"])
    population = io.read_parquet(args.ingested / "population.parquet", columns=["person_id", "year", "birth_date"])
    log.info("read %d benefit runs and %d population rows", len(benefits), len(population))

    labels = make_labels(benefits, population, params, extract["first_week"], extract["last_week"], params.threads)
    io.write_parquet(labels.spells, args.out / "spells.parquet")
    io.write_parquet(labels.cohorts, args.out / "cohorts.parquet")
    io.write_json(summarise(labels, min_cell), args.summary)


if __name__ == "__main__":
    main()
