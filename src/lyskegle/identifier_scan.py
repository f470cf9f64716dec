"""The identifier scan: walk the files the pipeline wrote and hand their contents to lyskegle.privacy.

Used by the ``audit`` stage (before a model is promoted) and by the final ``scan`` stage (after the
report, so that the pages, model cards and MLflow artifacts written after the audit are covered
too). Reads files only. The extract's raw PNR values are looked for by their digests: the
pseudonyms ingest recorded for them (:func:`read_recorded_identifiers`, when the stage holds the
same key), or else SHA-256 digests of the values read from the extract again, held in memory only.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from lyskegle import io, privacy
from lyskegle.concurrency import map_in_order
from lyskegle.pseudonym import PseudonymKeyError, choose_key, load_key, pseudonym_of_normalised

PNR_COLUMNS = ("PNR", "MOR_ID", "FAR_ID", "E_FAELLE_ID")
#: count columns of a shown CSV table that must never hold 1..min_cell-1 persons
COUNT_COLUMNS = ("persons", "residents", "n_persons", "count")
HITS_LISTED = 5  # offsets listed per file in the record; the count says how many there were

log = logging.getLogger("lyskegle.identifier_scan")


def extract_pnr_values(folder: Path, key: bytes | None = None) -> privacy.ExtractIdentifiers:
    """Digests of every raw PNR (and parent/partner PNR) value in the extract folder's registers,
    keyed with the pseudonymisation ``key`` when one is given.

    Two files are read at a time: Arrow reads and de-duplicates without holding the GIL, so the
    second core does half the work (the files' order, and so the result, does not change)."""
    files, _ = io.list_extract_files(folder)
    paths = [path for _, path in sorted(files.items())]
    distinct: list[pa.Array] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for arrays in tqdm(pool.map(_distinct_pnr_values, paths), total=len(paths), desc="extract PNR values",
                           unit="file", file=sys.stderr):
            distinct.extend(arrays)
    return privacy.extract_identifiers_of(pa.chunked_array(distinct, type=pa.large_string()), key)


def _distinct_pnr_values(path: Path) -> list[pa.Array]:
    # only the PNR columns: a whole DREAM file is gigabytes at a million persons
    raw = io.read_raw_register(path, arrow=True, lazy=True, wanted=_is_pnr_column)
    distinct = []
    for name in (n for n in raw.column_names if _is_pnr_column(str(n))):
        column = raw.read_column(name)
        # a PNR comes back in every year's file: each file's distinct values, kept as Arrow. Text
        # is de-duplicated by Arrow (pandas' unique of the same column takes four times as long);
        # a column of another type takes pandas' way to text, as ingest reads it.
        if io.is_text_type(column.type):
            distinct.append(pc.unique(pc.drop_null(column)).cast(pa.large_string()))
        else:
            distinct.append(pa.array(column.to_pandas().dropna().astype("string[pyarrow]").unique(),
                                     type=pa.large_string()))
    return distinct


# --- the extract's identifiers, recorded by ingest ------------------------------------------------

#: the file ingest writes the extract's identifiers to, in its output folder
IDENTIFIERS_FILE = "extract_identifiers.parquet"
#: what the key check of a recorded set is the pseudonym of (a fixed text, no person's)
_KEY_CHECK_TEXT = "lyskegle: the key these pseudonyms were made with"


def recorded_identifiers(known: privacy.ExtractIdentifiers) -> pa.Table:
    """The extract's identifiers as ingest records them (:meth:`lyskegle.ingest.PersonKeys.identifiers`:
    keyed digests, that is the pseudonyms of every person key) as a table of one sorted column
    ``pseudonym``. Its schema metadata holds the keys' lengths, whether all are digits, and a key
    check (the key's pseudonym of a fixed text), so a reader with another key knows the set is not
    for it. Unkeyed digests are refused: they must never be written."""
    if known.key is None:
        raise ValueError("only identifiers keyed with the pseudonymisation key may be written")
    column = pa.array(sorted(d.decode("ascii") for d in known.digests), type=pa.string())
    metadata = {"lengths": sorted(known.lengths), "digits_only": known.digits_only,
                "key_check": pseudonym_of_normalised(_KEY_CHECK_TEXT, known.key)}
    return pa.table({"pseudonym": column}).replace_schema_metadata({"lyskegle": json.dumps(metadata)})


def stage_identifiers(recorded: Path, extract_folder: Path,
                      allow_development_key: bool) -> privacy.ExtractIdentifiers | None:
    """The identifiers ingest recorded at ``recorded``, when this stage holds the key they were made
    with (the same environment as ingest, or the development key for a synthetic extract); None
    otherwise, and the extract is read instead (:func:`privacy_checks` does that)."""
    marker = io.read_extract_marker(extract_folder)
    try:
        key = choose_key(load_key(), bool(marker.get("synthetic", False)), allow_development_key)
    except PseudonymKeyError:
        log.info("no pseudonymisation key in this stage's environment: the extract's PNR values are read again")
        return None
    known = read_recorded_identifiers(recorded, key)
    if known is None:
        log.warning("%s was not made with this stage's pseudonymisation key (or is missing): the extract's PNR "
                    "values are read again", recorded)
    return known


def read_recorded_identifiers(path: Path, key: bytes) -> privacy.ExtractIdentifiers | None:
    """The set :func:`recorded_identifiers` wrote to ``path``, or None when it was made with another
    key (or there is none): then the caller reads the extract itself."""
    if not path.exists():
        return None
    table = pq.read_table(path)
    metadata = json.loads((table.schema.metadata or {}).get(b"lyskegle", b"{}"))
    if metadata.get("key_check") != pseudonym_of_normalised(_KEY_CHECK_TEXT, key):
        return None
    column = table.column("pseudonym").combine_chunks().cast(pa.string())  # int32 offsets, as read below
    digests = frozenset(v.encode("ascii") for v in column.to_pylist())
    # the column is sorted and its text buffer holds the values back to back: the sorted digests, joined
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset:column.offset + len(column) + 1]
    joined = column.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]] if len(column) else b""
    return privacy.ExtractIdentifiers(digests, frozenset(metadata["lengths"]), bool(metadata["digits_only"]), key=key,
                                      sorted_joined=joined)


def _is_pnr_column(name: str) -> bool:
    return name.strip().upper() in PNR_COLUMNS


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
    In a Parquet file's pages only the extract's own PNR values count as hits: compressed bytes
    are not text, and a run of ten digits that reads as a date turns up in them by chance (one
    did in a million-row ``population.parquet``). The values those pages hold are scanned
    decoded, with every pattern, and so is the footer (schema, column names, statistics, metadata).
    """
    return _name_hits(path, known) + _content_hits(path, known)


def _name_hits(path: Path, known: privacy.ExtractIdentifiers | None) -> list[dict]:
    return [{"where": "file name", "kind": kind} for _, kind in privacy.find_identifiers(str(path), known)]


def _content_hits(path: Path, known: privacy.ExtractIdentifiers | None) -> list[dict]:
    blocks = _gunzip_blocks(path) if path.suffix == ".gz" else io.read_blocks(path)
    in_bytes = privacy.scan_blocks(blocks, known)
    if path.suffix == ".parquet":
        pages_end = io.parquet_footer_offset(path)
        in_bytes = [(offset, kind) for offset, kind in in_bytes if offset >= pages_end or kind == privacy.EXTRACT_PNR]
    hits = [{"where": byte_location(offset), "kind": kind} for offset, kind in in_bytes]
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


class ScanCache:
    """What earlier scans found in a file's contents, by the contents' digest.

    The audit of each target and the final ``scan`` stage scan the same outputs; most of them
    (features, network, labels, models) are byte for byte the same each time. A file's findings
    are reused only when its BLAKE2b digest and suffix, the extract's identifier digests and the scanning
    code (this module, ``privacy`` and ``io``) are all the same as when they were recorded: the
    same bytes scanned for the same values by the same code give the same findings. An entry holds
    only offsets and kinds (``byte 12``, ``cpr_shaped``), never a value. Entries are written
    atomically, so a killed scan leaves none half-written.
    """

    def __init__(self, folder: Path, known: privacy.ExtractIdentifiers | None):
        self.folder = folder
        context = hashlib.blake2b(digest_size=16)
        for module in (privacy, io, sys.modules[__name__]):
            context.update(Path(module.__file__).read_bytes())
        if known is not None:
            context.update(known.joined())
            context.update(repr((sorted(known.lengths), known.digits_only)).encode())
        self._context = context.digest()

    def key(self, path: Path) -> str:
        # the suffix too: it decides how the bytes are read (.gz decompressed, .parquet decoded)
        return hashlib.blake2b(self._context + content_digest(path) + path.suffix.encode(), digest_size=32).hexdigest()

    def get(self, key: str) -> list[dict] | None:
        try:
            return json.loads(self._entry(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, hits: list[dict]) -> None:
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(hits))
        partial.replace(entry)

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"


#: content digests this process took, by the file's identity and state (see content_digest)
_DIGESTS: dict[tuple, bytes] = {}
_DIGESTS_LOCK = threading.Lock()


def content_digest(path: Path) -> bytes:
    """The BLAKE2b digest of a file's bytes. Taken once per process for a file whose inode, size,
    modification and change times stay the same: a stage that warms its scan cache early
    (:func:`warm_scan_cache`) does not read each unchanged file again for its closing scan. Any
    write changes the change time, which no program can set back."""
    state = path.stat()
    # device and inode name the file (resolving its path would add system calls and name no more)
    identity = (state.st_dev, state.st_ino, state.st_size, state.st_mtime_ns, state.st_ctime_ns)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(identity)
    if known is not None:
        return known
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=32)).digest()
    with _DIGESTS_LOCK:
        _DIGESTS[identity] = digest
    return digest


def byte_location(offset: int) -> str:
    """Where in a file's bytes a hit is, as the scan records it: ``byte 1,234,567``. Digits
    grouped, because an offset past the first gigabyte has ten of them and may read as a CPR
    number (see :func:`scanned_megabytes`)."""
    return f"byte {offset:,}"


def scanned_megabytes(size: int) -> float:
    """The scanned volume as the scan records it: megabytes to one decimal. A byte count of 1 to
    10 GB has ten digits, and many of them read as a CPR number (a day, a month, a year, four digits):
    written into a report, the next scan would find it and fail the audit."""
    return round(size / 1e6, 1)


def scan_outputs(roots: list[Path], exclude: list[Path], known: privacy.ExtractIdentifiers | None,
                 cache: ScanCache | None = None, threads: int = 2) -> dict:
    """The ``checks.identifier_scan`` record: files and bytes scanned, and hits by file.

    With a ``cache``, a file whose contents were scanned before (see :class:`ScanCache`) takes its
    recorded findings; the record counts those files in ``files_from_cache``. The other files are
    scanned up to ``threads`` at a time, as memory allows (:func:`lyskegle.concurrency.map_in_order`):
    largest first, so that the scan measured before any run side by side is the one that needs the
    most. The record is the same in any case.
    """
    paths = list(files_to_scan([r for r in roots if r.exists()], exclude))
    content, from_cache = _contents(paths, known, cache, threads)
    by_file, files, scanned_bytes = [], 0, 0
    for path in paths:
        if content.get(path) is None:
            continue  # gone before it could be read
        try:
            hits = _name_hits(path, known) + content[path]
            scanned_bytes += path.stat().st_size
        except FileNotFoundError:
            continue
        files += 1
        if hits:
            kinds = sorted({h["kind"] for h in hits})
            by_file.append({"file": str(path), "kinds": kinds, "hits": len(hits),
                            "where": [h["where"] for h in hits[:HITS_LISTED]]})
    return {
        "ran": True, "roots": [str(r) for r in roots], "roots_missing": [str(r) for r in roots if not r.exists()],
        "excluded": [str(e) for e in exclude], "files": files, "files_from_cache": from_cache,
        "megabytes": scanned_megabytes(scanned_bytes),
        "extract_pnr_values": known.size if known else 0, "files_with_hits": by_file, "passed": not by_file,
    }


def warm_scan_cache(roots: list[Path], exclude: list[Path], known: privacy.ExtractIdentifiers,
                    cache: ScanCache, threads: int = 2) -> int:
    """Scan into ``cache`` the files under the roots it does not hold yet, and keep no record.

    What the audit runs beside its other work: its closing scan (:func:`privacy_checks` with the
    same cache folder and identifiers) then reads only the files written meanwhile, and takes the
    findings of the others from the cache, as it would from an earlier stage's scan. Returns how
    many files were scanned."""
    paths = list(files_to_scan([r for r in roots if r.exists()], exclude))
    content, from_cache = _contents(paths, known, cache, threads)
    return len(content) - from_cache


def _contents(paths: list[Path], known: privacy.ExtractIdentifiers | None, cache: ScanCache | None,
              threads: int) -> tuple[dict[Path, list[dict] | None], int]:
    """Each file's content hits (None for a file gone meanwhile), from the cache where it holds
    them, else scanned (largest first, see :func:`scan_outputs`) and put into it; and how many
    came from the cache."""
    content: dict[Path, list[dict] | None] = {}  # None: not in the cache (or no cache)
    keys: dict[Path, str] = {}
    if cache is None:
        content = dict.fromkeys(paths)
    else:  # digests on both cores: hashlib hashes outside Python's lock
        with ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="lyskegle-digest") as pool:
            for path, key in zip(paths, pool.map(functools.partial(_key_if_there, cache), paths)):
                if key is not None:  # else a temporary file that another writer renamed away meanwhile
                    keys[path], content[path] = key, cache.get(key)
    from_cache = sum(found is not None for found in content.values())
    sizes = {path: _size(path) for path, found in content.items() if found is None}
    to_scan = sorted(sizes, key=lambda path: -sizes[path])
    # a file's findings are small: finished files may wait for a large one still read (ahead)
    scans = map_in_order(functools.partial(_content_hits_if_there, known=known), to_scan, threads,
                         sizes=[sizes[path] for path in to_scan], what="files scanned", ahead=len(to_scan))
    for path, found in zip(to_scan, tqdm(scans, total=len(to_scan), desc="identifier scan", unit="file", file=sys.stderr)):
        content[path] = found
        if found is not None and path in keys:
            cache.put(keys[path], found)
    return content, from_cache


def _key_if_there(cache: ScanCache, path: Path) -> str | None:
    try:
        return cache.key(path)
    except FileNotFoundError:
        return None


def _content_hits_if_there(path: Path, known: privacy.ExtractIdentifiers | None) -> list[dict] | None:
    """:func:`_content_hits`, or None for a file that is gone."""
    try:
        return _content_hits(path, known)
    except FileNotFoundError:
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


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
                   min_cell: int, cache_folder: Path | None = None,
                   known: privacy.ExtractIdentifiers | None = None) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """The identifier scan and the shown-small-cells check over ``roots``: ``(checks, reasons)``.

    ``checks`` has the records ``identifier_scan`` and ``small_cells``; ``reasons`` the failure
    reasons of each (empty lists when they pass). The extract folder itself is never scanned; its
    raw PNR values are what the scan looks for. An extract without PNR values fails, since a scan
    for nothing would pass silently. With ``cache_folder``, findings are reused by contents
    (:class:`ScanCache`). ``known``: the extract's PNR digests when the caller has read them
    already (:func:`extract_pnr_values` of ``extract_folder``); otherwise they are read here.
    """
    if known is None:
        known = extract_pnr_values(extract_folder)
    exclude = [*exclude, extract_folder]
    cache = ScanCache(cache_folder, known) if cache_folder is not None else None
    checks = {"identifier_scan": scan_outputs(roots, exclude, known, cache)}
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
