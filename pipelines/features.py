"""Stage `features`: individual, household, family, origin and stairwell/building/area features of
every cohort member at every as-of date, joined with the network stage's features.

Writes ``<out>/features.parquet`` (one row per as_of x person_id of the union of cohorts, one row
group per as-of date) and ``<out>/feature_families.json`` (feature column -> family; audit
attributes -> ``audit``). Dates are computed, joined and written one at a time, so the stage never
holds the whole table.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.countries import WESTERN_COUNTRIES
from lyskegle.features import (
    UNUSED_POPULATION_COLUMNS, code_registers, feature_families, features_by_date, merge_network,
)
from lyskegle.network import network_feature_families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path, help="folder of the ingest stage's tables")
    parser.add_argument("--cohorts", required=True, type=Path, help="labels' cohorts.parquet")
    parser.add_argument("--network", required=True, type=Path, help="network stage's network_features.parquet")
    parser.add_argument("--out", required=True, type=Path, help="folder for features.parquet and feature_families.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_section(args.params, "features")
    # spells here must end exactly where the labels' spells end
    gap_weeks = load_section(args.params, "labels").gap_weeks

    def read(name: str) -> pd.DataFrame:
        path = args.ingested / f"{name}.parquet"
        if name != "population":
            return io.read_parquet(path)
        return io.read_parquet(path, columns=[c for c in io.parquet_columns(path) if c not in UNUSED_POPULATION_COLUMNS])

    # each register is read when it is coded and let go once coded
    coded = code_registers(read, io.read_parquet(args.cohorts, columns=["as_of", "person_id"]), params.threads)
    network_columns = io.parquet_columns(args.network)
    network_families = network_feature_families(c for c in network_columns if c not in ("as_of", "person_id"))
    untagged = sorted(set(network_columns) - set(network_families) - {"as_of", "person_id"})
    if untagged:
        raise ValueError(f"{args.network}: network columns {untagged} have no family")

    families: dict[str, str] = {}

    def joined() -> Iterator[pd.DataFrame]:
        for own in features_by_date(coded, params, gap_weeks, WESTERN_COUNTRIES):
            families.update(feature_families(own.columns))
            # the network stage writes one row group per date: only this date's rows are read
            yield merge_network(own, io.read_parquet_equal(args.network, "as_of", own["as_of"].iloc[0]))

    io.write_parquet_parts(joined(), args.out / "features.parquet")
    io.write_json({**families, **network_families}, args.out / "feature_families.json")


if __name__ == "__main__":
    main()
