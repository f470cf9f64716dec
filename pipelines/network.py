"""Stage `network`: each cohort member's exposure through the household, family, stairwell,
coworker and classmate networks at every as-of date.

Writes ``<out>/network_features.parquet`` (one row per as_of x person_id of the union of cohorts,
one row group per as-of date, each written as soon as it is computed),
``<out>/feature_families.json`` (column -> layer) and, with ``--summary``, an aggregate and
small-cell-suppressed layer summary (a DVC metric).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.network import (
    REGISTER_COLUMNS,
    feature_columns,
    layer_figures,
    network_feature_families,
    network_features_by_date,
    network_registers,
    shown_layer_summary,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path, help="folder of the ingest stage's tables")
    parser.add_argument("--cohorts", required=True, type=Path, help="labels' cohorts.parquet")
    parser.add_argument("--out", required=True, type=Path, help="folder for network_features.parquet")
    parser.add_argument("--summary", type=Path, help="layer summary JSON (aggregates only)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_section(args.params, "network")
    min_cell = load_section(args.params, "privacy").min_cell

    def read(name: str) -> pd.DataFrame:
        return io.read_parquet(args.ingested / f"{name}.parquet", REGISTER_COLUMNS[name])

    # Coded once; the tables they were coded from are let go at once.
    registers = network_registers(read("population"), read("dwellings"), read("jobs"), read("classes"),
                                  params.threads)
    by_date = network_features_by_date(
        registers, read("benefits"), read("employment"), io.read_parquet(args.cohorts, columns=["as_of", "person_id"]),
        layers=params.layers,
        max_group_size=params.max_group_size, support_window_weeks=params.support_window_weeks,
        threads=params.threads,
    )
    figures: list[dict] = []

    def summarised() -> Iterator[pd.DataFrame]:
        for features in by_date:  # one as-of date at a time: written and let go
            figures.extend(layer_figures(features, params.layers))
            yield features

    io.write_parquet_parts(summarised(), args.out / "network_features.parquet")
    io.write_json(network_feature_families(feature_columns(params.layers)), args.out / "feature_families.json")
    if args.summary:
        io.write_json({"layers": shown_layer_summary(figures, min_cell)}, args.summary)


if __name__ == "__main__":
    main()
