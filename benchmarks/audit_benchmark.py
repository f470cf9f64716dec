"""How long the audit takes: the fairness table (MetricFrame figures and the person bootstrap) on
made-up test predictions, and the identifier scan over a large CSV and a Parquet string column.

Usage: ``.venv/bin/python benchmarks/audit_benchmark.py --rows 200000 --bootstrap 200 --scan-mb 200``
Prints wall time and peak resident memory of each part.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from lyskegle import io
from lyskegle.audit import FairnessRule, fairness_table
from lyskegle.privacy import extract_identifiers, scan_blocks, scan_strings


def made_up_predictions(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    persons = max(rows * 3 // 5, 1)  # most persons appear at one of the two test as-of dates
    frame = pd.DataFrame({
        "person_id": pd.Series([f"p{i:016d}" for i in rng.integers(0, persons, rows)], dtype="string"),
        "as_of": np.where(np.arange(rows) % 2 == 0, "2022-01-03", "2023-01-02"),
        "label": rng.integers(0, 2, rows).astype("int8"),
        "audit_sex": rng.choice(["1", "2"], rows),
        "audit_age_band": rng.choice(["18-29", "30-39", "40-49", "50-64"], rows),
        "audit_origin_group": rng.choice(["danish", "western", "non_western"], rows, p=[0.7, 0.1, 0.2]),
        "audit_area": rng.choice([f"area{i}" for i in range(25)] + [None], rows),
    })
    frame["score"] = np.clip(frame["label"] * 0.2 + rng.random(rows) * 0.8, 0, 1)
    return frame


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="test predictions")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--scan-mb", type=int, default=200, help="size of the CSV to scan")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    process = psutil.Process()

    predictions = made_up_predictions(args.rows, rng)
    rule = FairnessRule(10, (0.8, 1.25), 5, 10.0, args.bootstrap, 0.95, {})
    start = time.perf_counter()
    table = fairness_table(predictions, rule, np.random.default_rng(1))
    print(f"fairness table: {args.rows} rows, {len(table)} groups, {args.bootstrap} bootstrap samples: "
          f"{time.perf_counter() - start:.1f} s, peak RSS {peak_mb():.0f} MB")

    known = extract_identifiers(f"{61 + i % 30:02d}{1 + i % 12:02d}70{i % 10000:04d}" for i in range(100_000))
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "big.csv"
        line = b"p3k5ab7cdefghjk2;0.123456;2022-01-03;some text 12345\n"
        with open(csv, "wb") as handle:
            for _ in range(args.scan_mb):
                handle.write(line * (1_000_000 // len(line)))
        size = csv.stat().st_size
        start = time.perf_counter()
        hits = scan_blocks(io.read_blocks(csv), known)
        seconds = time.perf_counter() - start
        print(f"byte scan: {size / 1e6:.0f} MB, {len(hits)} hits: {seconds:.1f} s "
              f"({size / 1e6 / seconds:.0f} MB/s), RSS now {process.memory_info().rss / 2**20:.0f} MB")

        values = predictions["person_id"].astype(str).tolist()
        start = time.perf_counter()
        hits = scan_strings(values, known)
        print(f"string scan: {len(values)} values, {len(hits)} hits: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
