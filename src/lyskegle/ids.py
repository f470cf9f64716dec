"""Ids at a million persons: text ids as Arrow, hashed once into int codes, and cohort members by
as-of date.

Pandas' hash tables over Python strings take about a minute to look up a million-row column of ids;
Arrow's dictionary encoding and ``index_in`` do it in about a second. The network and features
stages code their registers with these functions once, then work on ints.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

KEYS = ("as_of", "person_id")


def arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """``values`` as an Arrow ``large_string`` column (no copy when it already is one)."""
    array = pa.array(values.astype("string[pyarrow]"))
    return pa.chunked_array([array] if isinstance(array, pa.Array) else array.chunks, type=pa.large_string())


def shared_codes(columns: Sequence[pd.Series], threads: int = 1) -> tuple[list[np.ndarray], pa.Array]:
    """Int32 codes of the values of several text columns in one shared code space (-1 for missing),
    and the value of each code, numbered in order of first appearance. One Arrow hash pass over all
    columns, without concatenating them.

    With ``threads`` > 1 and columns long enough, the first column is encoded alone and the others
    are looked up in its values side by side (:func:`codes_of`); the values it lacks are numbered
    after its own, in order of first appearance. The codes and values are the same either way.
    """
    if threads > 1 and len(columns) > 1 and sum(len(column) for column in columns[1:]) >= MIN_SLICE_ROWS:
        return _shared_codes_side_by_side(columns, threads)
    texts = [arrow_text(column) for column in columns]
    chunks = [chunk for text in texts for chunk in text.chunks]
    encoded = pc.dictionary_encode(pa.chunked_array(chunks, type=pa.large_string()))
    if encoded.num_chunks == 0:
        return [np.zeros(0, dtype="int32") for _ in columns], pa.array([], type=pa.large_string())
    # int32 halves the memory of a million persons' registers; lookups widen to int64 where needed.
    indices = np.concatenate([pc.fill_null(chunk.indices, -1).to_numpy().astype("int32") for chunk in encoded.chunks])
    bounds = np.cumsum([0, *(len(text) for text in texts)])
    # Every chunk's dictionary is a prefix of the last one.
    return [indices[a:b] for a, b in zip(bounds[:-1], bounds[1:])], encoded.chunks[-1].dictionary


def _shared_codes_side_by_side(columns: Sequence[pd.Series], threads: int) -> tuple[list[np.ndarray], pa.Array]:
    """:func:`shared_codes` with the columns after the first looked up on ``threads`` threads."""
    [first], known = shared_codes(columns[:1])
    codes = [first, *codes_of(columns[1:], known, threads)]
    # the values the first column lacks, in the order the other columns bring them
    unknown = [(coded < 0) & _valid(column) for column, coded in zip(columns[1:], codes[1:])]
    [new_codes], new_values = shared_codes([pd.concat(
        [column[lacking] for column, lacking in zip(columns[1:], unknown)], ignore_index=True,
    ).astype("string[pyarrow]")])
    start = 0
    for coded, lacking in zip(codes[1:], unknown):
        count = int(lacking.sum())
        coded[lacking] = new_codes[start:start + count] + len(known)
        start += count
    return codes, pa.concat_arrays([known.cast(pa.large_string()), new_values.cast(pa.large_string())])


def _valid(column: pd.Series) -> np.ndarray:
    return pc.is_valid(arrow_text(column)).to_numpy(zero_copy_only=False)


def sorted_codes(columns: Sequence[pd.Series]) -> tuple[list[np.ndarray], pa.Array]:
    """Int32 codes of the values of text columns in their sorted distinct non-missing values (-1
    for missing), and those values (a vocabulary whose codes follow the ids): one Arrow hash pass
    over the columns, not one to find the values and one more per column to look them up."""
    codes, dictionary = shared_codes(columns)
    order = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(order) + 1, dtype="int32")  # the extra last slot answers code -1 (missing)
    rank[order] = np.arange(len(order), dtype="int32")
    rank[-1] = -1
    return [rank[column] for column in codes], dictionary.take(pa.array(order)).cast(pa.large_string())


def codes_in(values: pd.Series, dictionary: pa.Array) -> np.ndarray:
    """Int64 position of each of ``values`` in ``dictionary`` (-1 where absent or missing)."""
    return _positions_in(values, dictionary.cast(pa.large_string())).astype("int64")


def _positions_in(values: pd.Series, dictionary: pa.Array) -> np.ndarray:
    """:func:`codes_in` as Arrow gives it (int32), ``dictionary`` already ``large_string``."""
    return pc.fill_null(pc.index_in(arrow_text(values), value_set=dictionary), -1).to_numpy()


def codes_of(columns: Sequence[pd.Series], dictionary: pa.Array, threads: int) -> list[np.ndarray]:
    """:func:`codes_in` of each column as int32 (half the memory), up to ``threads`` look-ups at a time.

    Arrow looks up outside Python's lock, so the columns are coded side by side, and a long column
    in as many slices as there are threads per column. Each look-up first builds its own hash table
    of ``dictionary`` (0.4 s for the 1.5M ids of a million persons), so a column shorter than
    :data:`MIN_SLICE_ROWS` a slice is not cut.
    """
    dictionary = dictionary.cast(pa.large_string())
    per_column = max(1, threads // max(len(columns), 1))
    slices = [[column.iloc[bounds[0]:bounds[1]] for bounds in _slices(len(column), per_column)] for column in columns]
    if threads < 2:
        return [np.concatenate([_positions_in(part, dictionary) for part in parts]) for parts in slices]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lyskegle-codes") as pool:
        coded = [[pool.submit(_positions_in, part, dictionary) for part in parts] for parts in slices]
        return [np.concatenate([part.result() for part in parts]) for parts in coded]


#: the fewest rows of a slice :func:`codes_of` looks up on its own thread
MIN_SLICE_ROWS = 2_000_000


def _slices(rows: int, most: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of up to ``most`` equal slices of ``rows`` rows, none below
    :data:`MIN_SLICE_ROWS` (one slice, possibly empty, at the least)."""
    count = max(1, min(most, rows // MIN_SLICE_ROWS))
    bounds = np.linspace(0, rows, count + 1).astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of integers (dates, booleans) by a sort: NumPy 2.3 and later find the
    distinct values of a plain ``np.unique`` through a hash set, which is many times slower than a
    sort when most of millions of values are distinct (4.3M int64: 8.2 s against 0.1 s here)."""
    values = np.asarray(values)
    if values.dtype.kind not in "iubmM":
        raise TypeError(f"sorted_unique: integers, booleans or dates, not {values.dtype}")
    ordered = np.sort(values, axis=None)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def on_persons(values: pd.Series | pd.DataFrame, persons: pd.Index) -> pd.Series | pd.DataFrame:
    """``values.reindex(persons)`` (the same result) for ``values`` indexed by person codes.

    Where both indexes are non-negative integer codes and ``values``' index is strictly increasing
    (a groupby result, a table set by sorted codes), each person's position comes from a dense
    table of the codes instead of a hash lookup: the features stage reindexes by a million persons
    some 30 times per as-of date, and pandas builds and probes a new hash table each time (50-100
    ms each; the dense table takes a third of that). Anything else is left to pandas' ``reindex``.
    """
    if not (_plain_codes(values.index) and _plain_codes(persons)) \
            or (isinstance(values, pd.DataFrame) and not values.columns.is_unique):
        return values.reindex(persons)
    codes, wanted = values.index.to_numpy(), persons.to_numpy()
    if not (codes[1:] > codes[:-1]).all():  # not unique, or not sorted: pandas' way
        return values.reindex(persons)
    at = positions_of_codes(codes, max(codes.max(initial=-1), wanted.max(initial=-1)) + 1)[wanted]
    if isinstance(values, pd.Series):
        return pd.Series(_taken(values, at), index=persons, name=values.name)
    return pd.DataFrame({column: _taken(values[column], at) for column in values.columns}, index=persons,
                        columns=values.columns)


def positions_of_codes(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """A dense table of the position of each code in ``codes`` (distinct, each below ``n_codes``):
    -1 for a code not among them; the extra last slot answers the code -1 (missing)."""
    table = np.full(n_codes + 1, -1, dtype="int64")
    table[codes] = np.arange(len(codes))
    return table


#: a dense table larger than this many entries per row looked up is not worth it (sparse codes)
_DENSE_ENTRIES_PER_ROW = 8


def _plain_codes(index: pd.Index) -> bool:
    """Whether an index holds non-negative NumPy integers, few enough apart for a dense table."""
    if isinstance(index, pd.MultiIndex) or not (isinstance(index.dtype, np.dtype) and index.dtype.kind in "iu"):
        return False
    codes = index.to_numpy()
    return not len(codes) or (codes.min() >= 0 and codes.max() < _DENSE_ENTRIES_PER_ROW * max(len(codes), 1 << 16))


def _taken(column: pd.Series, at: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """``column``'s values at positions ``at``, missing where ``at`` is -1, in the dtype ``reindex``
    would give (NumPy ints become floats, booleans objects, only when a value is missing)."""
    values = column.array if isinstance(column.dtype, pd.api.extensions.ExtensionDtype) else column.to_numpy()
    return pd.api.extensions.take(values, at, allow_fill=True)


def is_in(values: pd.Series, members: Iterable | pd.Index | pd.Series) -> np.ndarray:
    """Which of the text ``values`` are among ``members``, as a boolean array (missing: False).

    One Arrow hash lookup. Pandas' ``isin`` on Arrow text makes an Arrow scalar of each member in
    Python first: half a second per call with a million members, dozens of calls per stage.
    """
    found = pc.is_in(arrow_text(values), value_set=_value_set(members))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def float_by_id(values: pd.Series, table: pd.Series) -> np.ndarray:
    """``table`` (float values indexed by distinct text ids) looked up for each of ``values``:
    NaN where absent. :func:`map_by_id` as a float array."""
    return map_by_id(values, table.astype("float64")).to_numpy("float64", na_value=np.nan)


def map_by_id(values: pd.Series, table: pd.Series) -> pd.Series:
    """``values.map(table)`` for text ids (``table`` indexed by distinct ids; NA where absent), by
    Arrow's ``index_in`` and one take: pandas maps Arrow text value by value in Python, 4 s for the
    12.6M population rows of a million persons."""
    positions = codes_in(values, _value_set(table.index))
    return pd.Series(table.array.take(positions, allow_fill=True), index=values.index, name=values.name)


def _value_set(members: Iterable | pd.Index | pd.Series) -> pa.Array:
    if isinstance(members, set | frozenset):
        members = list(members)
    return arrow_text(pd.Series(members, dtype=object) if not isinstance(members, pd.Series | pd.Index)
                      else pd.Series(members)).combine_chunks()


def days(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates (Arrow dates or timestamps, datetime64 or Python dates) as ``datetime64[D]``, NaT where
    missing. Arrow columns are cast by Arrow: pandas turns each value into a Python date first,
    about 4 s for the four million rows of a million persons' features."""
    if isinstance(values, np.ndarray):
        values = pd.Series(values, copy=False)
    if isinstance(values.dtype, pd.ArrowDtype) and (
            pa.types.is_date(values.dtype.pyarrow_dtype) or pa.types.is_timestamp(values.dtype.pyarrow_dtype)):
        return pc.cast(pa.array(values.array), pa.date32()).to_numpy(zero_copy_only=False)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.to_numpy("datetime64[D]")
    return pd.to_datetime(values).to_numpy("datetime64[D]")


def datetimes(values: pd.Series) -> pd.Series:
    """``pd.to_datetime(values)`` (datetime64[ns], same index) by way of :func:`days`: fast for
    Arrow date columns. Times of day are dropped."""
    return pd.Series(days(values).astype("datetime64[ns]"), index=values.index, name=values.name)


def on_dates(values: pd.Series, dates: Iterable) -> np.ndarray:
    """Which of the dates in ``values`` (any kind :func:`days` reads) are among ``dates``."""
    return np.isin(days(values), np.array([np.datetime64(d, "D") for d in dates], dtype="datetime64[D]"))


def rows_of_years(table: pd.DataFrame, last_year: int, first_year: int | None = None) -> pd.DataFrame:
    """The rows of ``table`` with ``first_year <= year <= last_year`` (no lower bound when
    ``first_year`` is None). Ingest writes the yearly registers in year order, and then these rows
    are one run of them: a slice that shares the table's memory instead of a copy of millions of
    rows per as-of date or year. In any other order, a copy of the rows."""
    years = table["year"].to_numpy()
    if (years[1:] >= years[:-1]).all():
        start = 0 if first_year is None else int(np.searchsorted(years, first_year, "left"))
        return table.iloc[start:int(np.searchsorted(years, last_year, "right"))]
    return table[(years <= last_year) & (True if first_year is None else years >= first_year)]


def cohort_members(cohorts: pd.DataFrame) -> pd.DataFrame:
    """The distinct ``as_of`` x ``person_id`` of cohorts (any target), sorted by both: ``as_of`` as
    Arrow dates, ``person_id`` as Arrow text (:func:`coded_members`)."""
    [codes], vocabulary = sorted_codes([cohorts["person_id"]])
    return coded_members(cohorts["as_of"], codes, vocabulary)[0]


def coded_members(as_of: pd.Series, codes: np.ndarray, vocabulary: pa.Array) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`cohort_members` of cohort rows given by ``as_of`` and their person ids' ``codes`` in the
    sorted ``vocabulary`` (:func:`sorted_codes`; -1 for a missing id), and each member's code.

    The same frame, found on one integer key per row (the date, then the code, which follows the
    ids): de-duplicating and sorting millions of (date, text) rows in pandas took 6 s at a million
    persons. Missing ids sort last within their date, as pandas sorts them.
    """
    slot = len(vocabulary)  # a missing id's place: after every id
    day = days(as_of)
    if np.isnat(day).any():
        raise ValueError("coded_members: a cohort row has no as_of date")
    key = sorted_unique(day.astype("int64") * (slot + 1) + np.where(np.asarray(codes) >= 0, codes, slot))
    member_day, member_code = np.divmod(key, slot + 1)
    missing = member_code == slot
    person_id = vocabulary.cast(pa.large_string()).take(pa.array(member_code, mask=missing))
    members = pd.DataFrame({
        "as_of": pd.Series(pa.array(member_day.astype("int32"), type=pa.date32()), dtype="date32[pyarrow]"),
        "person_id": pd.Series(pd.arrays.ArrowStringArray(person_id), dtype="string[pyarrow]"),
    })
    return members, np.where(missing, -1, member_code)


def as_of_runs(as_of: pd.Series) -> Iterator[tuple[dt.date, int, int]]:
    """``(date, start, stop)`` of each run of equal dates in a sorted ``as_of`` column (none when
    empty); ``date`` is a ``datetime.date``."""
    dates = days(as_of)
    if len(dates) == 0:
        return
    bounds = np.flatnonzero(np.concatenate([[True], dates[1:] != dates[:-1], [True]]))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        yield dates[start].item(), int(start), int(stop)
