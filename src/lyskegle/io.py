"""Every file the pipeline reads or writes goes through this module.

Writers are atomic: they write a temporary file beside the target and rename it into place, so a
stage killed half-way never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    os.chmod(temporary, 0o644)  # mkstemp creates 0600; outputs are meant to be read by colleagues
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a frame without its index, atomically, with deterministic bytes for equal input."""
    write_arrow_parquet(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_arrow_parquet(table: pa.Table, path: str | Path) -> None:
    """Write an Arrow table (with its schema metadata), atomically, with deterministic bytes."""
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, compression="zstd")


def write_parquet_parts(frames: Iterable[pd.DataFrame], path: str | Path) -> int:
    """Write frames with the same columns as one Parquet file, one row group each, atomically.

    For tables too large to hold twice: each frame can be dropped once written. The first frame
    fixes the schema; a later frame whose columns differ is an error. Returns the rows written.
    A part is written while the caller computes the next one (see :class:`ParquetParts`).
    """
    with ParquetParts() as parts:
        for frame in frames:
            parts.write(path, frame)
        if not parts.rows:
            raise ValueError(f"{path}: no parts to write")
    return parts.rows[Path(path)]


class ParquetParts:
    """Parquet files written part by part (one row group each), made visible only together.

    ``write(path, frame)`` appends a part to ``path``, which is opened at its first part. Parts of
    several files may come in any order, so a stage can hand on each table's rows as soon as it
    has them and drop them. The first part of a file fixes its schema; a later part whose columns
    differ is an error. On leaving the ``with`` block without an error, every file is renamed into
    place; after an error, none is, and no temporary file is left.

    Each part is compressed and written on a second thread while the caller computes the next one
    (Arrow writes without the GIL). One part is written at a time, so at most one more part than
    the caller's is held. The bytes are the same as writing one part after the other.
    ``rows`` counts the rows written, by path.
    """

    def __init__(self) -> None:
        self.rows: dict[Path, int] = {}
        self._files = ExitStack()  # the temporary files, renamed or removed on exit
        self._writers: dict[Path, pq.ParquetWriter] = {}
        self._writing = ThreadPoolExecutor(max_workers=1)
        self._written: Future | None = None  # the part being written

    def __enter__(self) -> ParquetParts:
        return self

    def write(self, path: str | Path, frame: pd.DataFrame) -> None:
        path = Path(path)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = self._writers.get(path)
        if writer is None:
            temporary = self._files.enter_context(atomic_path(path))
            writer = self._writers[path] = pq.ParquetWriter(temporary, table.schema, compression="zstd")
        elif table.column_names != writer.schema.names:
            raise ValueError(f"{path}: a part has columns {table.column_names}, the first had {writer.schema.names}")
        table = table.cast(writer.schema)
        if self._written is not None:
            self._written.result()
        self._written = self._writing.submit(writer.write_table, table)
        self.rows[path] = self.rows.get(path, 0) + len(frame)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> bool:
        try:
            self._writing.shutdown(wait=True)  # never close a writer under a part still being written
            if kind is None and self._written is not None:
                self._written.result()
            for writer in self._writers.values():
                writer.close()
        except BaseException as failure:  # noqa: BLE001 - the files are removed, the failure re-raised
            if not self._files.__exit__(type(failure), failure, failure.__traceback__):
                raise
        return self._files.__exit__(kind, error, trace)


def read_parquet_where(
    path: str | Path, keep: Callable[[pd.DataFrame], np.ndarray], key_columns: list[str],
) -> pd.DataFrame:
    """The rows of a Parquet file for which ``keep(keys)`` is true, where ``keys`` holds the
    ``key_columns`` of one row group. Read one row group at a time and converted to pandas once,
    column by column, so a table much larger than the rows wanted is never in memory twice."""
    parquet = pq.ParquetFile(path)
    kept = []
    for index in range(parquet.num_row_groups):
        table = parquet.read_row_group(index)
        keys = table.select(key_columns).to_pandas(types_mapper=_ARROW_STRINGS.get)
        kept.append(table.filter(pa.array(np.asarray(keep(keys), dtype=bool))))
    table = pa.concat_tables(kept) if kept else parquet.schema_arrow.empty_table()
    del kept
    return _to_pandas_freeing(table)


def read_parquet_equal(path: str | Path, column: str, value: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of a Parquet file whose ``column`` equals ``value``, in file order (only
    ``columns``, which must include ``column``, when given).

    Only the row groups whose statistics allow ``value`` are read (all, where a row group has no
    statistics), so a file written one row group per value (:func:`write_parquet_parts`) gives one
    value's rows without the rest of the file ever being in memory.
    """
    parquet = pq.ParquetFile(path)
    if column not in parquet.schema_arrow.names:
        raise KeyError(f"{path}: no column '{column}'")
    leaf = parquet.metadata.schema.names.index(column)
    groups = []
    for group in range(parquet.num_row_groups):
        statistics = parquet.metadata.row_group(group).column(leaf).statistics
        if statistics is None or not statistics.has_min_max or statistics.min <= value <= statistics.max:
            groups.append(group)
    table = parquet.read_row_groups(groups, columns=columns) if groups else parquet.schema_arrow.empty_table()
    if columns is not None:
        table = table.select(columns)
    table = table.filter(pc.equal(table[column], pa.scalar(value, table.schema.field(column).type)))
    return table.to_pandas(types_mapper=_ARROW_STRINGS.get)


def parquet_row_parts(path: str | Path, rows: np.ndarray, columns: list[str] | None = None,
                      ) -> Iterator[tuple[slice, pd.DataFrame]]:
    """The ``rows`` of a Parquet file (numbers from 0 in file order, ascending), one row group at
    a time: ``(where, frame)``, where ``rows[where]`` are the rows ``frame`` holds, in order.

    Only the row groups that hold one of ``rows`` are read, and each once, so a model can score
    millions of rows of a wide table with one row group in memory at a time.
    """
    for where, table in _row_group_takes(path, rows, columns):
        yield where, _to_pandas_freeing(table)


def read_parquet_rows(path: str | Path, rows: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """The ``rows`` of a Parquet file (numbers from 0 in file order, ascending) as one frame; each
    row group that holds one of them is read once, and only the rows wanted are kept."""
    tables = [table for _, table in _row_group_takes(path, rows, columns)]
    table = pa.concat_tables(tables) if tables else pq.read_schema(path).empty_table()
    if not tables and columns is not None:
        table = table.select(columns)
    del tables
    return _to_pandas_freeing(table)


def _to_pandas_freeing(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas (text as Arrow-backed strings), converted column by column with each
    Arrow column let go once converted, so that a large table is never in memory twice."""
    return table.to_pandas(types_mapper=_ARROW_STRINGS.get, split_blocks=True, self_destruct=True)


def _row_group_takes(path: str | Path, rows: np.ndarray, columns: list[str] | None) -> Iterator[tuple[slice, pa.Table]]:
    """``(where, table)`` for each row group that holds some of ``rows``: ``table`` holds ``rows[where]``."""
    rows = np.asarray(rows, dtype="int64")
    if len(rows) and (rows[0] < 0 or np.any(np.diff(rows) <= 0)):
        raise ValueError(f"{path}: row numbers must be ascending and unique, from 0")
    parquet = pq.ParquetFile(path)
    metadata = parquet.metadata
    starts = np.cumsum([0, *(metadata.row_group(group).num_rows for group in range(metadata.num_row_groups))])
    if len(rows) and rows[-1] >= starts[-1]:
        raise ValueError(f"{path}: row {rows[-1]} asked for, but the file has {starts[-1]} rows")
    bounds = np.searchsorted(rows, starts)
    for group in range(metadata.num_row_groups):
        first, last = int(bounds[group]), int(bounds[group + 1])
        if first < last:
            table = parquet.read_row_group(group, columns=columns)
            yield slice(first, last), table.take(pa.array(rows[first:last] - starts[group]))


def parquet_columns(path: str | Path) -> list[str]:
    """The column names of a Parquet file, from its footer (no data is read)."""
    return pq.read_schema(path).names


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_parquet`.

    Text columns come back Arrow-backed (``string[pyarrow]``) whatever string storage wrote them:
    at a million persons the Python-object strings the file's pandas metadata asks for take four
    times the memory (7.8 GB instead of 1.9 GB for ``population``) and ten times as long to build.
    """
    table = pq.read_table(path, columns=columns)
    return table.to_pandas(types_mapper=_ARROW_STRINGS.get)


_ARROW_STRINGS = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- Raw register extracts (the contract in shared/REGISTERS.md) ---------------------------------
# Readers for the formats a municipality or DST delivers. They only read: every value is checked
# and typed by lyskegle.ingest. A file that cannot be read as a whole raises ExtractError.

RAW_SUFFIXES = (".csv", ".parquet", ".sas7bdat", ".xpt")
EXTRACT_MARKER = "EXTRACT.json"
_SNIFF_BYTES = 1 << 16


class ExtractError(ValueError):
    """A register file (or extract folder) that cannot be used as a whole.

    The message names the file and, where it applies, the row and the column. Rows are counted the
    way a person reads the file: row 1 is the first data row, the header not counted (so row N of
    a CSV file is on line N + 1).
    """


@dataclass(frozen=True)
class RawRegister:
    """One register file as read: ``frame`` with the file's own column names, ``encoding`` of a CSV.

    ``frame`` is an Arrow table when read with ``arrow=True`` (DREAM: too wide for a pandas copy),
    and an open :class:`pyarrow.parquet.ParquetFile` when a Parquet file is read with ``lazy=True``
    (DREAM at a million persons: read in row batches, never whole). Whatever the frame, the
    methods below read it the same way.
    """

    name: str
    frame: pd.DataFrame | pa.Table | pq.ParquetFile
    file_format: str
    encoding: str | None = None

    @property
    def num_rows(self) -> int:
        if isinstance(self.frame, pq.ParquetFile):
            return self.frame.metadata.num_rows
        return len(self.frame)

    @property
    def column_names(self) -> list[Any]:
        """The file's column names, as they are spelt in it."""
        if isinstance(self.frame, pq.ParquetFile):
            return self.frame.schema_arrow.names
        return list(self.frame.column_names if isinstance(self.frame, pa.Table) else self.frame.columns)

    def read_column(self, name: Any) -> pa.ChunkedArray:
        """One whole column as Arrow."""
        if isinstance(self.frame, pq.ParquetFile):
            with self._parquet_errors():
                return self.frame.read(columns=[name]).column(0)
        if isinstance(self.frame, pa.Table):
            return self.frame.column(name)
        return _pandas_to_arrow(self.frame[[name]]).column(0)

    def row_batches(self, rows: int) -> Iterator[pa.Table]:
        """The file as consecutive Arrow tables of at most ``rows`` rows, in file order (at least one,
        maybe empty, so every column's type is seen)."""
        if isinstance(self.frame, pq.ParquetFile):
            with self._parquet_errors():
                # the next batch is decoded (by Arrow, beside Python) while the caller works on this one
                batches = read_ahead(self.frame.iter_batches(batch_size=rows))
                first = next(batches, None)
                if first is None:
                    yield self.frame.read()
                    return
                yield pa.Table.from_batches([first])
                for batch in batches:
                    yield pa.Table.from_batches([batch])
            return
        # a pandas frame is converted whole, so every batch gets the same column types
        table = self.frame if isinstance(self.frame, pa.Table) else _pandas_to_arrow(self.frame)
        for start in range(0, max(table.num_rows, 1), rows):
            yield table.slice(start, rows)

    @contextmanager
    def _parquet_errors(self) -> Iterator[None]:
        """A Parquet file read lazily can still turn out unreadable half-way: say so as for a whole read."""
        try:
            yield
        except (pa.ArrowException, OSError) as error:
            raise ExtractError(f"{self.name}: not a readable Parquet file ({error})") from None


def _pandas_to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


T = TypeVar("T")


def read_ahead(items: Iterable[T], ahead: int = 1) -> Iterator[T]:
    """The items of ``items`` in order, up to ``ahead`` next ones produced in a background thread meanwhile.

    For readers: Arrow parses CSV and decodes Parquet outside Python's lock, so reading the next
    file (or batch) runs on the second core while the caller works on the current one. With
    ``ahead`` above 1 the producer goes on past an item the caller is slow with, so pieces that are
    quick to produce but slow to consume, and the other way round, even out; each item waiting
    holds its memory. An error while producing an item is raised where that item would have come.
    """
    if ahead < 1:
        raise ValueError(f"read_ahead: ahead must be at least 1, not {ahead}")
    iterator = iter(items)
    end = object()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_READ_AHEAD_THREAD)
    try:
        # one worker: the submitted next() calls run in order, never two at once
        upcoming = deque(pool.submit(next, iterator, end) for _ in range(ahead))
        while (item := upcoming.popleft().result()) is not end:
            upcoming.append(pool.submit(next, iterator, end))
            yield item
    finally:
        # An abandoned generator can be finalised on the pool's own thread, which cannot join itself.
        in_pool = threading.current_thread().name.startswith(_READ_AHEAD_THREAD)
        pool.shutdown(wait=not in_pool, cancel_futures=True)


_READ_AHEAD_THREAD = "lyskegle-read-ahead"


def list_extract_files(folder: str | Path) -> tuple[dict[str, Path], list[str]]:
    """Register files of an extract folder by stem, and the names of the other files in it.

    Raises ExtractError when the folder is missing or one stem comes in two formats.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExtractError(f"{folder}: the extract folder does not exist")
    by_stem: dict[str, Path] = {}
    others: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in RAW_SUFFIXES:
            stem = path.stem.lower()
            if stem in by_stem:
                raise ExtractError(f"{path.name}: register '{stem}' is also in {by_stem[stem].name}; keep one")
            by_stem[stem] = path
        elif path.is_file() and path.name != EXTRACT_MARKER:
            others.append(path.name)
    return by_stem, others


def read_extract_marker(folder: str | Path) -> dict[str, Any]:
    """The extract's ``EXTRACT.json`` marker, or an empty mapping when there is none."""
    path = Path(folder) / EXTRACT_MARKER
    if not path.exists():
        return {}
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ExtractError(f"{path.name}: not valid JSON ({error})") from None
    if not isinstance(marker, dict):
        raise ExtractError(f"{path.name}: expected a JSON object")
    return marker


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


ColumnTyper = Callable[[str], "pa.DataType | None"]


def read_raw_register(path: str | Path, column_type: ColumnTyper | None = None, arrow: bool = False,
                      lazy: bool = False, wanted: Callable[[str], bool] | None = None) -> RawRegister:
    """Read one register file in any allowed format (CSV, Parquet, SAS ``.sas7bdat``/``.xpt``).

    CSV: ``;`` separator, UTF-8 or else Latin-1; every column is read as text unless
    ``column_type(name)`` gives an Arrow type for it (used for DREAM's many code columns); when a
    typed column does not convert, the file is read again as text so ingest can find the bad rows.
    ``arrow``: keep a CSV or Parquet file as an Arrow table (SAS files always come as pandas).
    ``lazy`` (with ``arrow``): open a Parquet file without reading it; ``frame`` is then a
    ``ParquetFile`` to read with :meth:`RawRegister.row_batches` (other formats are read whole).
    ``wanted`` (CSV only): keep only the columns whose (stripped) names it accepts. Every row is still
    parsed and checked for its number of fields, but only those columns are converted, and the
    encoding is the one those columns read in.
    """
    path = Path(path)
    if not path.exists():
        raise ExtractError(f"{path.name}: file not found in {path.parent}")
    if path.stat().st_size == 0:
        raise ExtractError(f"{path.name}: the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, column_type, arrow, wanted)
    if suffix == ".parquet":
        try:
            # text columns the caller wants as dictionaries (DREAM's months) are read as such:
            # a million rows of repeated industry codes take a quarter of the memory
            dictionary = [
                name for name in pq.read_schema(path).names
                if column_type and (kind := column_type(name)) is not None and pa.types.is_dictionary(kind)
            ]
            if arrow and lazy:
                return RawRegister(path.name, pq.ParquetFile(path, read_dictionary=dictionary or None), "parquet")
            table = pq.read_table(path, read_dictionary=dictionary or None)
        except (pa.ArrowException, OSError) as error:
            raise ExtractError(f"{path.name}: not a readable Parquet file ({error})") from None
        return RawRegister(path.name, table if arrow else _arrow_to_pandas(table), "parquet")
    if suffix in (".sas7bdat", ".xpt"):
        import pyreadstat

        reader = pyreadstat.read_sas7bdat if suffix == ".sas7bdat" else pyreadstat.read_xport
        try:
            frame, _ = reader(str(path))
        except Exception as error:  # pyreadstat raises its own and plain exceptions
            kind = "SAS7BDAT" if suffix == ".sas7bdat" else "SAS transport (XPORT)"
            raise ExtractError(f"{path.name}: not a readable {kind} file ({error})") from None
        return RawRegister(path.name, frame, suffix.lstrip("."))
    raise ExtractError(f"{path.name}: unknown format '{suffix}' (expected one of {', '.join(RAW_SUFFIXES)})")


def _read_csv(path: Path, column_type: ColumnTyper | None, arrow: bool,
              wanted: Callable[[str], bool] | None = None) -> RawRegister:
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise ExtractError(
            f"{path.name}: neither UTF-8 nor Latin-1 text (it holds NUL bytes: UTF-16 or a binary file?)"
        )
    if re.search(rb"[\x01-\x08\x0b\x0c\x0e-\x1f]", head):
        raise ExtractError(f"{path.name}: neither UTF-8 nor Latin-1 text (it holds control characters)")
    header_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    header_text = header_line.decode("utf-8-sig", errors="replace")
    names = [name.strip().strip('"') for name in header_text.split(";")]
    if not header_text.strip():
        raise ExtractError(f"{path.name}: the first line is empty; expected a header of column names")
    if len(names) == 1 and ("," in header_text or "\t" in header_text):
        raise ExtractError(f"{path.name}: the header has one column; the separator must be ';'")

    typed = {name: column_type(name) for name in names} if column_type else {}
    typed = {name: kind for name, kind in typed.items() if kind is not None}
    # the header's fields as Arrow names them (quotes off, spaces kept)
    fields = [f[1:-1] if len(f) > 1 and f[0] == f[-1] == '"' else f for f in header_text.split(";")]
    keep = [field for field, name in zip(fields, names) if wanted(name)] if wanted else None

    def read(types: dict[str, Any], encoding: str) -> pa.Table:
        try:
            return _arrow_csv(path, fields, names, types, encoding, keep)
        except KeyError:  # a header that Arrow names otherwise: every column, then the wanted ones
            table = _arrow_csv(path, fields, names, types, encoding)
            return table.select([name for name in table.column_names if wanted(name)])

    for encoding in ("utf-8", "latin-1"):
        try:
            table = read(typed, encoding)
        except pa.ArrowInvalid as error:
            message = str(error)
            if "invalid UTF8" in message and encoding == "utf-8":
                continue
            if typed and "conversion error" in message:
                table = read({}, encoding)
            else:
                raise ExtractError(f"{path.name}: cannot be read as ';'-separated text ({message})") from None
        return RawRegister(path.name, table if arrow else _arrow_to_pandas(table), "csv", encoding)
    raise AssertionError("unreachable: Latin-1 decodes every byte")


def _arrow_csv(path: Path, fields: list[str], names: list[str], typed: dict[str, Any], encoding: str,
               include: list[str] | None = None) -> pa.Table:
    """The CSV as Arrow: ``fields`` are the header's names as Arrow reads them, ``names`` the same
    stripped (what ``typed`` and the returned table use); ``include``: only these fields."""
    import pyarrow.csv as pacsv

    bad_rows: list[int] = []

    def note_bad_row(row: Any) -> str:
        bad_rows.append(row.actual_columns)
        return "skip"

    column_types = {field: typed.get(name, pa.string()) for field, name in zip(fields, names)}
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding),
        parse_options=pacsv.ParseOptions(delimiter=";", invalid_row_handler=note_bad_row),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=True,
            include_columns=include,
        ),
    )
    if bad_rows:
        row, found = _first_ragged_row(path, len(names), encoding)
        raise ExtractError(
            f"{path.name}: row {row} (line {row + 1}) has {found} fields but the header has {len(names)} "
            f"({len(bad_rows)} such row(s)): the file looks truncated, or a value holds a ';'"
        )
    return table.rename_columns([name.strip() for name in table.column_names])


def _first_ragged_row(path: Path, n_fields: int, encoding: str) -> tuple[int, int]:
    """Data row (1-based) and field count of the first row whose field count is wrong."""
    import csv

    with open(path, encoding=encoding, newline="") as handle:
        for line_number, fields in enumerate(csv.reader(handle, delimiter=";")):
            if line_number > 0 and len(fields) != n_fields:
                return line_number, len(fields)
    return 0, n_fields


def _arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Text as pandas' Arrow-backed strings; integers with missing values as nullable integers."""
    mapping = {
        pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow"),
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
    }
    return table.to_pandas(types_mapper=mapping.get, self_destruct=True)


def write_graphml(graph: Any, path: str | Path) -> None:
    """Write a networkx graph as GraphML, atomically (the network export for analysts)."""
    import networkx as nx  # only the export needs networkx's writer

    with atomic_path(path) as temporary:
        nx.write_graphml(graph, temporary)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a small aggregate table as CSV (comma-separated, point decimals: DVC plots read it)."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")


def write_model(model: Any, path: str | Path) -> None:
    """Pickle a fitted scikit-learn model with joblib, atomically."""
    import joblib  # only the train stage writes models

    with atomic_path(path) as temporary:
        joblib.dump(model, temporary)


def read_model(path: str | Path) -> Any:
    """Load a model written by :func:`write_model` (trusted files of this workspace only)."""
    import joblib

    return joblib.load(path)


def write_figure(figure: Any, path: str | Path) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")


# --- Reading written files back for the privacy scan (lyskegle.privacy scans what these yield) ---

def read_blocks(path: str | Path, block_bytes: int = 1 << 22) -> Iterator[bytes]:
    """A file's bytes as consecutive blocks, so a large file is never held whole."""
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            yield block


def parquet_footer_offset(path: str | Path) -> int:
    """Byte offset where a Parquet file's footer (file metadata) starts; the pages come before it.

    A Parquet file ends with the footer, its length (4 bytes, little-endian) and ``PAR1``.
    """
    with Path(path).open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size < 12:
            raise ValueError(f"{path}: too short to be a Parquet file")
        handle.seek(size - 8)
        tail = handle.read(8)
    if tail[4:] != b"PAR1":
        raise ValueError(f"{path}: not a Parquet file (no PAR1 at its end)")
    return size - 8 - int.from_bytes(tail[:4], "little")


def parquet_value_batches(path: str | Path, batch_rows: int = 1 << 20) -> Iterator[tuple[str, int, Any]]:
    """``(column, first row, values)`` for every text and integer column of a Parquet file, in batches.

    Text values come as an Arrow string array (dictionary-encoded text decoded); integer values as
    an int64 NumPy array with missing values as 0. Other column types are not yielded, nor read:
    the features table is mostly floats.
    """
    parquet = pq.ParquetFile(path)
    value_types = {field.name: _value_type(field.type) for field in parquet.schema_arrow}
    wanted = [name for name, kind in value_types.items() if is_text_type(kind) or pa.types.is_integer(kind)]
    if not wanted:
        return
    first_row = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
        for name, column in zip(batch.schema.names, batch.columns):
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            if is_text_type(column.type):
                yield name, first_row, column
            else:  # an integer column: only those and text are read
                yield name, first_row, column.fill_null(0).to_numpy(zero_copy_only=False).astype("int64")
        first_row += batch.num_rows


def _value_type(kind: pa.DataType) -> pa.DataType:
    """A dictionary type's value type; any other type itself."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def is_text_type(kind: pa.DataType) -> bool:
    """Whether an Arrow type is text (``string`` or ``large_string``; not dictionary-encoded text)."""
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


# --- Report tables and pages -------------------------------------------------------------------------

def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_csv` (the report reads the aggregate CSVs back)."""
    return pd.read_csv(path, keep_default_na=True)


def write_text(text: str, path: str | Path) -> None:
    """Write a UTF-8 text file (an HTML page, a markdown model card), atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


# --- Writing a register extract (the synthesize stage writes the contract's formats) -----------------

def write_extract_csv(frame: pd.DataFrame, path: str | Path, encoding: str = "utf-8",
                      decimal_comma: bool = False) -> None:
    """Write a register as DST/municipal CSV: ``;`` separator, ISO dates, blank for missing.

    ``decimal_comma`` writes floats with a decimal comma; ``encoding`` is ``utf-8`` or ``latin-1``.
    """
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    if decimal_comma:
        for position, field in enumerate(table.schema):
            if pa.types.is_floating(field.type):
                text = pc.replace_substring(pc.cast(table.column(position), pa.string()), ".", ",")
                table = table.set_column(position, field.name, text)
    # Register values never hold ";", quotes or line breaks; a value that does fails loudly here.
    options = pa_csv.WriteOptions(delimiter=";", quoting_style="none")
    with atomic_path(path) as temporary:
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            pa_csv.write_csv(table, temporary, write_options=options)
        else:
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(table, sink, write_options=options)
            temporary.write_bytes(sink.getvalue().to_pybytes().decode("utf-8").encode(encoding))


def write_extract_xport(frame: pd.DataFrame, path: str | Path, table_name: str) -> None:
    """Write a register as a SAS transport file (version 8), with date columns as SAS dates.

    The header's creation and modification times are fixed (01JAN70:00:00:00) so equal frames give
    equal bytes.
    """
    import re

    import pyreadstat

    plain = pd.DataFrame({name: column.to_numpy(dtype=object) for name, column in frame.items()})
    formats = {name: "DATE9" for name, column in frame.items() if "date" in str(column.dtype)}
    with atomic_path(path) as temporary:
        pyreadstat.write_xport(plain, temporary, table_name=table_name, file_format_version=8,
                               variable_format=formats or None)
        stamp = re.compile(rb"\d{2}[A-Z]{3}\d{2}:\d{2}:\d{2}:\d{2}")
        temporary.write_bytes(stamp.sub(b"01JAN70:00:00:00", temporary.read_bytes(), count=4))
