"""Stage `ingest`: read a register extract, validate, pseudonymise, quarantine bad rows.

    python pipelines/ingest.py --params params.yaml --synthetic data/synthetic \
        --out data/ingested --quarantine data/quarantine --quality reports/data_quality.json

The extract is `extract.path` from params.yaml, or the synthetic extract when that is null. The
pseudonymisation key comes from LYSKEGLE_PSEUDONYM_KEY or LYSKEGLE_PSEUDONYM_KEY_FILE; without
one, only a synthetic extract is accepted (with the fixed development key).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.identifier_scan import IDENTIFIERS_FILE, recorded_identifiers
from lyskegle.ingest import (
    IngestResult, check_register_files, dream_column_type, ingest_extract, ingest_order, register_of,
)
from lyskegle.pseudonym import choose_key, load_key

log = logging.getLogger("lyskegle.ingest")


def ingest_folder(folder: str | Path, env: Mapping[str, str] | None = None, allow_development_key: bool = True,
                  sink: Callable[[str, pd.DataFrame], None] | None = None,
                  identifiers: Path | None = None) -> tuple[IngestResult, dict[str, Path]]:
    """Ingest every register file of ``folder``; returns the result and the files read, by name.

    ``sink``: as for :func:`lyskegle.ingest.ingest_extract`, takes each file's rows as it is read.
    ``identifiers``: where to write the extract's PNR values as pseudonyms
    (:func:`lyskegle.identifier_scan.recorded_identifiers`), for the identifier scans of the audit
    and scan stages, which would otherwise read the whole extract again each.
    """
    by_stem, others = io.list_extract_files(folder)
    for name in others:
        log.warning("%s: not a register file (suffix not one of %s); ignored", name, ", ".join(io.RAW_SUFFIXES))
    paths = {path.name: path for path in by_stem.values()}
    names = ingest_order(paths)  # raises for a file name outside the contract
    check_register_files(names)  # a missing register fails before anything is read
    marker = io.read_extract_marker(folder)
    key = choose_key(load_key(env), bool(marker.get("synthetic", False)), allow_development_key)

    def raw_files() -> Iterator[io.RawRegister]:
        for name in tqdm(names, desc="ingest", unit="file", file=sys.stderr):
            is_dream = register_of(name)[0] == "dream"
            yield io.read_raw_register(paths[name], dream_column_type if is_dream else None, arrow=is_dream, lazy=is_dream)

    # the next file is read while this one is ingested
    result = ingest_extract(io.read_ahead(raw_files()), key, bool(marker.get("synthetic", False)), sink)
    if identifiers is not None:
        io.write_arrow_parquet(recorded_identifiers(result.identifiers), identifiers)
    return result, paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--synthetic", required=True, help="the synthetic extract, used when extract.path is null")
    parser.add_argument("--out", required=True)
    parser.add_argument("--quarantine", required=True)
    parser.add_argument("--quality", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    extract = load_section(args.params, "extract")
    params = load_section(args.params, "ingest")
    folder = Path(extract.path) if extract.path else Path(args.synthetic)
    log.info("extract: %s", folder)
    out, quarantine = Path(args.out), Path(args.quarantine)
    # each file's rows are written (one row group per file) as soon as they are read, so the stage
    # holds one file's rows, not the whole extract's; the tables appear only once all are read
    with io.ParquetParts() as tables:
        result, paths = ingest_folder(folder, allow_development_key=params.allow_development_key,
                                      sink=lambda name, rows: tables.write(out / f"{name}.parquet", rows),
                                      identifiers=out / IDENTIFIERS_FILE)
    for stem, frame in result.quarantine.items():
        io.write_parquet(frame, quarantine / f"{stem}.parquet")
    files = {name: io.file_sha256(path) for name, path in sorted(paths.items())}
    io.write_json({**result.extract, "source": str(folder), "files": files}, out / "extract.json")
    io.write_json(result.quality, args.quality)
    totals = result.quality["totals"]
    log.info("ingested %d rows, quarantined %d", totals["rows_accepted"], totals["rows_quarantined"])


if __name__ == "__main__":
    main()
