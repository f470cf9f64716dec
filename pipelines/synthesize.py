"""Stage `synthesize`: write a synthetic register extract and its ground truth.

    python pipelines/synthesize.py --params params.yaml --out data/synthetic --truth data/synthetic_truth.json

Formats follow the contract and exercise every reader: `befYYYY.csv` and `uddaYYYY.csv` (`;`,
UTF-8), `indYYYY.csv` (`;`, decimal comma, Latin-1), `adresser.csv`, `dream.parquet`,
`idanYYYY.parquet`, `grundskoleYYYY.parquet`, `krafYYYY.xpt` (SAS transport), and the marker
`EXTRACT.json`. The truth file is for tests only; no stage reads it.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.synthetic import SyntheticExtract

log = logging.getLogger("lyskegle.synthesize")

CSV_STEMS = ("bef", "udda", "ind", "adresser")
LATIN_1_STEMS = ("ind",)
# Pieces simulated ahead of the one being written. Writing a year's CSV files and the DREAM parts
# is slow where simulating the next piece is quick, and the other way round; three ahead even
# that out (1M persons: 70.1 s with one ahead, 67.0 s with two, 63.8 s with three; peak 2.52, 2.87
# and 3.14 GB, an extra 0.2 GB per million persons for each piece waiting).
AHEAD = 3


def register_name(stem: str) -> str:
    """``bef2019`` -> ``bef``."""
    return stem.rstrip("0123456789")


def write_extract(extract: SyntheticExtract, out: Path) -> dict[str, int]:
    """Write every piece of ``extract`` into ``out``; returns rows written per file name."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():  # a smaller run must not leave an earlier run's years behind
        if stale.is_file():
            stale.unlink()
    rows: dict[str, int] = {}
    # the next pieces are simulated while this one is written (Arrow writes without Python's lock)
    pieces = tqdm(io.read_ahead(extract.pieces(), ahead=AHEAD), desc="synthesize", unit="file", file=sys.stderr)
    for stem, group in itertools.groupby(pieces, key=lambda piece: piece[0]):
        register = register_name(stem)
        if stem == "dream":
            name = "dream.parquet"
            rows[name] = io.write_parquet_parts((frame for _, frame in group), out / name)
            continue
        frames = [frame for _, frame in group]
        if len(frames) != 1:
            raise ValueError(f"synthesize: register {stem} came in {len(frames)} pieces; only dream may")
        frame = frames[0]
        if register in CSV_STEMS:
            name = f"{stem}.csv"
            latin = register in LATIN_1_STEMS
            io.write_extract_csv(frame, out / name, encoding="latin-1" if latin else "utf-8", decimal_comma=latin)
        elif register == "kraf":
            name = f"{stem}.xpt"
            io.write_extract_xport(frame, out / name, table_name=stem.upper())
        else:
            name = f"{stem}.parquet"
            io.write_parquet(frame, out / name)
        rows[name] = len(frame)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--truth", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    params = load_section(args.params, "synthesize")
    extract = SyntheticExtract(params)
    out = Path(args.out)
    rows = write_extract(extract, out)
    io.write_json({"synthetic": True, "generator": "lyskegle", "seed": params.seed, "persons": params.persons},
                  out / io.EXTRACT_MARKER)
    io.write_json(extract.truth, args.truth)
    log.info("wrote %d files, %d rows, into %s", len(rows), sum(rows.values()), out)


if __name__ == "__main__":
    main()
