"""The identifier scan: walk the files the pipeline wrote and hand their contents to lyskegle.privacy.

Used by the ``audit`` stage (before a model is promoted) and by the final ``scan`` stage (after the
report, so that the pages, model cards and MLflow artifacts written after the audit are covered
too). Reads files only; the raw PNR values of the extract are kept as digests in memory.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from lyskegle import io, privacy

PNR_COLUMNS = ("PNR", "MOR_ID", "FAR_ID", "E_FAELLE_ID")
#: count columns of a shown CSV table that must never hold 1..min_cell-1 persons
COUNT_COLUMNS = ("persons", "residents", "n_persons", "count")
HITS_LISTED = 5  # offsets listed per file in the record; the count says how many there were


def extract_pnr_values(folder: Path) -> privacy.ExtractIdentifiers:
    """Digests of every raw PNR (and parent/partner PNR) value in the extract folder's registers."""
    files, _ = io.list_extract_files(folder)
    distinct: list[pa.Array] = []
    for stem, path in tqdm(sorted(files.items()), desc="extract PNR values", unit="file", file=sys.stderr):
        # only the PNR columns: a whole DREAM file is gigabytes at a million persons
        frame = io.read_raw_columns(path, lambda name: name.strip().upper() in PNR_COLUMNS)
        for column in frame.columns:
            # a PNR comes back in every year's file: each file's distinct values, kept as Arrow
            values = frame[column].dropna().astype("string[pyarrow]").unique()
            distinct.append(pa.array(values, type=pa.large_string()))
    values = pc.unique(pa.chunked_array(distinct, type=pa.large_string())).to_pylist() if distinct else []
    return privacy.extract_identifiers(values)


def files_to_scan(roots: Iterable[Path], exclude: Iterable[Path]) -> Iterator[Path]:
    """Every file under the roots (a root may be a file), except under an excluded path."""
    excluded = [p.resolve() for p in exclude]
    for root in roots:
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            resolved = path.resolve()
            if not any(resolved == e or e in resolved.parents for e in excluded):
                yield path


def scan_file(path: Path, known: privacy.ExtractIdentifiers | None) -> list[dict]:
    """Hits in one file: ``{where, kind}`` with ``where`` a byte offset or ``column C, row R``.

    The file's name, its bytes (decompressed for ``.gz``) and, for Parquet, its decoded text and
    integer columns are scanned: Parquet pages are compressed, so their bytes alone hide values.
    """
    hits = [{"where": "file name", "kind": kind} for _, kind in privacy.find_identifiers(str(path), known)]
    blocks = _gunzip_blocks(path) if path.suffix == ".gz" else io.read_blocks(path)
    hits += [{"where": f"byte {offset}", "kind": kind} for offset, kind in privacy.scan_blocks(blocks, known)]
    if path.suffix == ".parquet":
        for column, first_row, values in io.parquet_value_batches(path):
            found = (privacy.scan_integers(values, known) if isinstance(values, np.ndarray)
                     else privacy.scan_strings(values, known))
            hits += [{"where": f"column {column}, row {first_row + row}", "kind": kind} for row, kind in found]
    return hits


def _gunzip_blocks(path: Path, block_bytes: int = 1 << 22) -> Iterator[bytes]:
    with gzip.open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            yield block


def scan_outputs(roots: list[Path], exclude: list[Path], known: privacy.ExtractIdentifiers | None) -> dict:
    """The ``checks.identifier_scan`` record: files and bytes scanned, and hits by file."""
    by_file, files, scanned_bytes = [], 0, 0
    paths = list(files_to_scan([r for r in roots if r.exists()], exclude))
    for path in tqdm(paths, desc="identifier scan", unit="file", file=sys.stderr):
        try:
            hits = scan_file(path, known)
            scanned_bytes += path.stat().st_size
        except FileNotFoundError:
            continue  # a temporary file that another writer renamed away meanwhile
        files += 1
        if hits:
            kinds = sorted({h["kind"] for h in hits})
            by_file.append({"file": str(path), "kinds": kinds, "hits": len(hits),
                            "where": [h["where"] for h in hits[:HITS_LISTED]]})
    return {
        "ran": True, "roots": [str(r) for r in roots], "roots_missing": [str(r) for r in roots if not r.exists()],
        "excluded": [str(e) for e in exclude], "files": files, "bytes": scanned_bytes,
        "extract_pnr_values": known.size if known else 0, "files_with_hits": by_file, "passed": not by_file,
    }


def shown_small_cells(paths: Iterable[Path], min_cell: int) -> list[dict]:
    """CSV tables whose person-count columns hold a count from 1 to ``min_cell - 1``."""
    found = []
    for path in paths:
        if path.suffix != ".csv":
            continue
        try:
            table = pd.read_csv(path)  # the project's tables are written by io.write_csv: commas
        except pd.errors.EmptyDataError:
            continue
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            found.append({"file": str(path), "column": None, "rows": 0, "unreadable": str(error)[:200]})
            continue
        for column in (c for c in table.columns if str(c).lower() in COUNT_COLUMNS):
            counts = pd.to_numeric(table[column], errors="coerce")
            small = int(((counts >= 1) & (counts < min_cell)).sum())
            if small:
                found.append({"file": str(path), "column": str(column), "rows": small})
    return found


def privacy_checks(roots: list[Path], exclude: list[Path], extract_folder: Path,
                   min_cell: int) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """The identifier scan and the shown-small-cells check over ``roots``: ``(checks, reasons)``.

    ``checks`` has the records ``identifier_scan`` and ``small_cells``; ``reasons`` the failure
    reasons of each (empty lists when they pass). The extract folder itself is never scanned; its
    raw PNR values are what the scan looks for. An extract without PNR values fails, since a scan
    for nothing would pass silently.
    """
    known = extract_pnr_values(extract_folder)
    exclude = [*exclude, extract_folder]
    checks = {"identifier_scan": scan_outputs(roots, exclude, known)}
    reasons = {"identifier_scan": [
        f"privacy: {hit['file']} holds {' and '.join(k.replace('_', ' ') for k in hit['kinds'])} value(s) "
        f"({hit['hits']} hit(s), first at {hit['where'][0]})"
        for hit in checks["identifier_scan"]["files_with_hits"]
    ]}
    if not known.size:
        reasons["identifier_scan"].append(f"privacy: no PNR values found in the extract {extract_folder}")

    scanned_csv = [p for p in files_to_scan([r for r in roots if r.exists()], exclude) if "reports" in p.parts]
    small = shown_small_cells(scanned_csv, min_cell)
    checks["small_cells"] = {"ran": True, "tables": len(scanned_csv), "violations": small, "passed": not small}
    reasons["small_cells"] = [
        f"privacy: {s['file']} could not be read to check its counts ({s['unreadable']})" if "unreadable" in s
        else f"privacy: {s['file']} shows {s['rows']} count(s) under {min_cell} in '{s['column']}'"
        for s in small
    ]
    return checks, reasons
