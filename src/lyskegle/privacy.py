"""Small-cell suppression (the one function every shown or logged table goes through), the
identifier scan of written files and the k-anonymity check of person-level tables.

A count, rate or mean computed over fewer than ``min_cell`` persons is suppressed (set to missing and
flagged). Secondary suppression: where rows of a table add up to a total that is shown, a single
suppressed row (or suppressed rows that together hold fewer than ``min_cell`` persons) could be
recovered by subtraction, so the smallest remaining rows of that table are suppressed too.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SUPPRESSED_FLAG = "suppressed"


def suppress_small_cells(
    table: pd.DataFrame,
    count_column: str,
    min_cell: int,
    value_columns: Sequence[str] = (),
    total_groups: Sequence[str] | None = (),
) -> pd.DataFrame:
    """Copy of ``table`` with small cells suppressed.

    ``count_column`` holds the number of persons behind each row; it and every column in
    ``value_columns`` become missing where the row is suppressed, and a boolean column
    ``suppressed`` says which rows were. ``total_groups`` names the columns that define the tables
    whose rows add up to a shown total (empty: the whole frame is one table; None: no totals are
    shown, so no secondary suppression).
    """
    if count_column not in table.columns:
        raise KeyError(f"suppress_small_cells: count column '{count_column}' is not in the table")
    missing = [c for c in value_columns if c not in table.columns]
    if missing:
        raise KeyError(f"suppress_small_cells: value columns {missing} are not in the table")

    counts = pd.to_numeric(table[count_column], errors="raise").to_numpy(dtype="float64")
    suppressed = ~(counts >= min_cell)  # NaN counts are suppressed too
    if total_groups is not None:
        keys = (
            table[list(total_groups)].astype("string").agg("\x1f".join, axis=1)
            if total_groups else pd.Series("", index=table.index)
        )
        for _, positions in pd.Series(np.arange(len(table)), index=table.index).groupby(keys.to_numpy()):
            _secondary(counts, suppressed, positions.to_numpy(), min_cell)

    out = table.copy()
    for column in (count_column, *value_columns):
        out[column] = out[column].astype("Float64") if _is_numeric(out[column]) else out[column]
        out.loc[suppressed, column] = pd.NA
    out[SUPPRESSED_FLAG] = suppressed
    return out


def _secondary(counts: np.ndarray, suppressed: np.ndarray, positions: np.ndarray, min_cell: int) -> None:
    """Suppress the smallest open cells of one table until no suppressed cell can be recovered."""
    while True:
        hidden = positions[suppressed[positions]]
        open_ = positions[~suppressed[positions]]
        hidden_total = np.nansum(counts[hidden])
        exposed = len(hidden) == 1 or (len(hidden) > 0 and hidden_total < min_cell)
        if not exposed or len(open_) == 0:
            return
        suppressed[open_[np.argmin(counts[open_])]] = True


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def is_shown(persons: int | float, min_cell: int) -> bool:
    """True when a figure over ``persons`` persons may be shown."""
    return bool(persons >= min_cell)


# --- Identifier scan ---------------------------------------------------------------------------------
# Every file the pipeline writes after ingest is scanned for CPR-shaped numbers and for the raw PNR
# values of the extract. The functions here look at text (decoded bytes or decoded Parquet strings)
# and return where a hit is, never what it is, so a report of hits cannot itself leak a number.

#: A CPR number as it would be written out: ``DDMMYYSSSS`` or ``DDMMYY-SSSS``, day 01-31 (real) or
#: 61-91 (synthetic), standing alone. Stricter at its edges than pseudonym.CPR_PATTERN (which finds
#: numbers in a CPR column): a letter on either side (hexadecimal run ids and hashes in the MLflow
#: store) or a decimal point before it (the tail of a float in a report) is not a CPR number.
SCAN_CPR_PATTERN = re.compile(
    r"(?<![0-9A-Za-z.])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])(?:0[1-9]|1[0-2])\d{2}-?\d{4}(?![0-9A-Za-z])"
)
_MAX_TOKEN = 64
#: text carried from one block of a file into the next, so a number split by a block edge is found
_CARRY = 2 * _MAX_TOKEN + 16
CPR_SHAPED = "cpr_shaped"
EXTRACT_PNR = "extract_pnr"


@dataclass(frozen=True)
class ExtractIdentifiers:
    """SHA-256 digests of the extract's normalised PNR values (never the values) and their lengths."""

    digests: frozenset[bytes]
    lengths: frozenset[int]

    @property
    def size(self) -> int:
        return len(self.digests)


def extract_identifiers(values: Iterable[str]) -> ExtractIdentifiers:
    """Digests of the distinct PNR values given (``DDMMYY-SSSS`` counts as ``DDMMYYSSSS``)."""
    distinct = {_normalise_token(str(v).strip()) for v in values if v is not None and str(v).strip()}
    distinct = {v for v in distinct if len(v) <= _MAX_TOKEN}
    return ExtractIdentifiers(frozenset(_digest(v) for v in distinct), frozenset(len(v) for v in distinct))


def find_identifiers(text: str, known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(offset, kind)`` of every identifier in ``text``, by offset: ``extract_pnr`` for a raw PNR
    value of the extract, else ``cpr_shaped`` for anything with a CPR number's shape."""
    hits: dict[int, str] = {m.start(): CPR_SHAPED for m in SCAN_CPR_PATTERN.finditer(text)}
    if known is not None and known.digests:
        for match in _token_pattern(known.lengths).finditer(text):
            if _digest(_normalise_token(match.group())) in known.digests:
                hits[match.start()] = EXTRACT_PNR
    return sorted(hits.items())


def scan_blocks(blocks: Iterable[bytes], known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(byte offset, kind)`` of the identifiers in a file given as consecutive blocks of its bytes.

    Bytes are read as Latin-1 (one character per byte, so offsets are byte offsets). A hit that
    touches the end of a block is left to the next block, which starts with the carried tail.
    """
    hits: dict[int, str] = {}
    carry, start = "", 0  # start: byte offset of the first character of carry
    blocks = iter(blocks)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        text = carry + block.decode("latin-1")
        last = following is None
        for offset, kind in find_identifiers(text, known):
            if offset == 0 and start > 0:
                continue  # the carried text starts mid-file: what stands left of it is unknown
            if last or offset + _MAX_TOKEN + 16 < len(text):  # else it lies in the carry: found next time
                hits.setdefault(start + offset, kind)
        keep = min(len(text), _CARRY)
        start += len(text) - keep
        carry = text[len(text) - keep:]
        block = following
    return sorted(hits.items())


def scan_strings(values: Sequence[str | None], known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(position, kind)`` of the values (e.g. one decoded Parquet string column) holding an identifier.

    The values are joined with a line break and scanned in one pass; each hit is mapped back to its value.
    """
    texts = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    if not texts:
        return []
    ends = np.cumsum([len(t) + 1 for t in texts])
    hits: dict[int, str] = {}
    for offset, kind in find_identifiers("\n".join(texts), known):
        hits.setdefault(int(np.searchsorted(ends, offset, side="right")), kind)
    return sorted(hits.items())


def integer_texts(values: np.ndarray) -> list[str | None]:
    """Integers with 9 or 10 digits as 10-digit text (a CPR number stored as a number loses its
    leading zero); other integers as None, so :func:`scan_strings` skips them."""
    values = np.asarray(values)
    out: list[str | None] = [None] * len(values)
    candidates = np.flatnonzero((values >= 100_000_000) & (values < 10_000_000_000))
    for position in candidates:
        out[position] = f"{int(values[position]):010d}"
    return out


@functools.lru_cache(maxsize=8)
def _token_pattern(lengths: frozenset[int]) -> re.Pattern[str]:
    """Standalone letter-and-digit runs of the extract's PNR lengths (and ``DDMMYY-SSSS``): only
    these are hashed, so a scan costs one regex pass plus a hash per candidate."""
    runs = "|".join(f"[0-9A-Za-z]{{{n}}}" for n in sorted(lengths, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:\d{{6}}-\d{{4}}|{runs})(?![0-9A-Za-z])")


def _normalise_token(value: str) -> str:
    return value.replace("-", "") if re.fullmatch(r"\d{6}-\d{4}", value) else value


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


# --- k-anonymity -------------------------------------------------------------------------------------

def small_equivalence_classes(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], k: int, person_column: str | None = None,
) -> dict[str, int]:
    """How far a person-level table is from k-anonymity over its quasi-identifiers.

    An equivalence class is one combination of the quasi-identifier values (a missing value is a
    value of its own); its size is its number of distinct persons (``person_column``) or rows.
    Returns counts only: ``classes``, ``classes_below_k`` and ``rows_in_small_classes``.
    """
    missing = [c for c in (*quasi_identifiers, *([person_column] if person_column else [])) if c not in frame.columns]
    if missing:
        raise KeyError(f"small_equivalence_classes: column(s) {missing} are not in the table")
    if not quasi_identifiers:
        raise ValueError("small_equivalence_classes: name at least one quasi-identifier")
    keys = [frame[c].astype("string").fillna("\x00missing") for c in quasi_identifiers]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    sizes = grouped[person_column].nunique() if person_column else grouped.size()
    rows = grouped.size()
    small = sizes < k
    return {"classes": int(len(sizes)), "classes_below_k": int(small.sum()),
            "rows_in_small_classes": int(rows[small].sum())}
