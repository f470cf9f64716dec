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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lyskegle.pseudonym import pseudonym_of_normalised, pseudonyms_of_normalised

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
#: the longest PNR value the scan looks for (longer ones are not ids of any extract)
MAX_TOKEN = 64
#: text carried from one block of a file into the next, so a number split by a block edge is found
_CARRY = 2 * MAX_TOKEN + 16
CPR_SHAPED = "cpr_shaped"
EXTRACT_PNR = "extract_pnr"


@dataclass(frozen=True)
class ExtractIdentifiers:
    """Digests of the extract's normalised PNR values (never the values), their lengths and whether
    every value is ASCII digits (then only digit runs are hashed, not every id of that length).

    Without a ``key`` a digest is the value's SHA-256, held in memory only: ten-digit numbers are
    few enough to hash them all, so such digests must never be written. With the pseudonymisation
    ``key`` a digest is the value's pseudonym (as ASCII bytes), exactly what ingest writes in place
    of every PNR: such a set may be kept with the other pseudonymised data, and only a holder of the
    key can test a value against it.
    """

    digests: frozenset[bytes]
    lengths: frozenset[int]
    digits_only: bool = False
    key: bytes | None = field(default=None, repr=False)
    #: the digests sorted and joined, when the maker has them so already (see :meth:`joined`)
    sorted_joined: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.digests)

    def joined(self) -> bytes:
        """The digests, sorted, as one byte string: what a scan cache keys its findings by."""
        return self.sorted_joined if self.sorted_joined is not None else b"".join(sorted(self.digests))

    def digest(self, value: str) -> bytes:
        """The digest of one normalised value, as the set holds them."""
        if self.key is None:
            return hashlib.sha256(value.encode("utf-8")).digest()
        return pseudonym_of_normalised(value, self.key).encode("ascii")


def extract_identifiers(values: Iterable[str], key: bytes | None = None) -> ExtractIdentifiers:
    """Digests of the distinct PNR values given (``DDMMYY-SSSS`` counts as ``DDMMYYSSSS``), keyed
    with the pseudonymisation ``key`` when one is given (see :class:`ExtractIdentifiers`)."""
    distinct = {_normalise_token(str(v).strip()) for v in values if v is not None and str(v).strip()}
    distinct = sorted(v for v in distinct if len(v) <= MAX_TOKEN)
    return ExtractIdentifiers(frozenset(_digests(distinct, key)), frozenset(len(v) for v in distinct),
                              digits_only=all(_DIGITS.fullmatch(v) for v in distinct), key=key)


def _digests(values: list[str], key: bytes | None) -> list[bytes]:
    if key is None:
        return [hashlib.sha256(v.encode("utf-8")).digest() for v in values]
    return [v.encode("ascii") for v in pseudonyms_of_normalised(values, key).to_pylist()]


#: ids of ASCII letters, digits and dashes only (every PNR of a real or synthetic extract): for
#: them stripping does nothing and ``\d`` means ``[0-9]``, so Arrow can normalise them
_PLAIN_ID = "^[0-9A-Za-z-]+$"


def extract_identifiers_of(values: pa.Array | pa.ChunkedArray, key: bytes | None = None) -> ExtractIdentifiers:
    """:func:`extract_identifiers` of an Arrow string array, with the same result.

    Plain ids (:data:`_PLAIN_ID`) are normalised and de-duplicated by Arrow; only their SHA-256
    runs in Python. Any other value (with whitespace, other characters) takes the Python path.
    At a million persons this is about 1.6M values per scan.
    """
    # distinct first: a register repeats each person's PNR in every year's file
    values = pc.drop_null(pc.unique(pa.chunked_array([values]) if isinstance(values, pa.Array) else values))
    values = values.cast(pa.large_string())
    plain = pc.match_substring_regex(values, _PLAIN_ID)
    other = extract_identifiers(pc.filter(values, pc.invert(plain)).to_pylist(), key)
    ids = pc.filter(values, plain)
    ids = pc.if_else(pc.match_substring_regex(ids, "^[0-9]{6}-[0-9]{4}$"), pc.replace_substring(ids, "-", ""), ids)
    ids = pc.unique(pc.filter(ids, pc.less_equal(pc.utf8_length(ids), MAX_TOKEN)))
    lengths = frozenset(pc.unique(pc.utf8_length(ids)).to_pylist())
    digits_only = len(ids) == 0 or pc.all(pc.match_substring_regex(ids, "^[0-9]+$")).as_py()
    if key is None:
        digests = frozenset(hashlib.sha256(v).digest() for v in pc.cast(ids, pa.large_binary()).to_pylist())
    else:
        digests = frozenset(v.encode("ascii") for v in pseudonyms_of_normalised(ids.to_pylist(), key).to_pylist())
    return ExtractIdentifiers(digests | other.digests, lengths | other.lengths,
                              digits_only=bool(digits_only and other.digits_only), key=key)


def find_identifiers(text: str, known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(offset, kind)`` of every identifier in ``text``, by offset: ``extract_pnr`` for a raw PNR
    value of the extract, else ``cpr_shaped`` for anything with a CPR number's shape."""
    hits: dict[int, str] = {m.start(): CPR_SHAPED for m in SCAN_CPR_PATTERN.finditer(text)}
    if known is not None and known.digests:
        for match in _token_pattern(known.lengths, known.digits_only).finditer(text):
            if known.digest(_normalise_token(match.group())) in known.digests:
                hits[match.start()] = EXTRACT_PNR
    return sorted(hits.items())


def scan_blocks(blocks: Iterable[bytes], known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(byte offset, kind)`` of the identifiers in a file given as consecutive blocks of its bytes.

    Bytes are read as Latin-1 (one character per byte, so offsets are byte offsets). A hit that
    touches the end of a block is left to the next block, which starts with the carried tail.
    """
    hits: dict[int, str] = {}
    carry, start = b"", 0  # start: byte offset of the first byte of carry
    blocks = iter(blocks)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        data = carry + block
        last = following is None
        for offset, kind in find_identifiers_in_bytes(data, known):
            if offset == 0 and start > 0:
                continue  # the carried text starts mid-file: what stands left of it is unknown
            if last or offset + MAX_TOKEN + 16 < len(data):  # else it lies in the carry: found next time
                hits.setdefault(start + offset, kind)
        keep = min(len(data), _CARRY)
        start += len(data) - keep
        carry = data[len(data) - keep:]
        block = following
    return sorted(hits.items())


#: The characters an identifier is made of (a CPR number's digits and dash, a PNR token's letters
#: and digits). Every hit of :func:`find_identifiers` lies inside a run of them at least as long as
#: the shortest identifier, and its patterns look at most one character beyond the hit.
_RUN_CHARACTERS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
_RUN_TABLE = bytes(0x61 if byte in _RUN_CHARACTERS else 0x20 for byte in range(256))
_CPR_LENGTH = 10
#: a CPR number's first six digits (DDMMYY) stand together, with or without the dash after them
_CPR_DIGIT_RUN = 6
_DIGIT_TABLE = bytes(0x61 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
#: how far a hit reaches past its first run of digits: "-SSSS" of a DDMMYY-SSSS, and the character
#: after it that its pattern looks at
_AFTER_DIGIT_RUN = 6
_WINDOW_GAP = 256  # runs closer than this are scanned as one window
_DENSE_BYTES = 4096  # more than one run per this many bytes: scan the text whole


def find_identifiers_in_bytes(data: bytes, known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """:func:`find_identifiers` on ``data`` read as Latin-1, in a fraction of the time.

    The regular expressions run only on windows around runs of identifier characters long enough
    to hold an identifier, with one character of context on either side. Where every hit starts
    with a run of digits (a CPR number, a PNR of an all-digit extract) the runs are of digits, and a
    window reaches far enough past one for a dash, four digits and the character after them. In
    compressed bytes such runs are rare (runs of six digits almost never occur), so most of a
    Parquet file never reaches a regular expression. Text dense with such runs (a CSV of ids) is
    scanned whole: windows would cover it anyway, one by one.
    """
    lengths = known.lengths if known is not None and known.digests else frozenset()
    if not lengths or known.digits_only:
        table, shortest, after = _DIGIT_TABLE, min([_CPR_DIGIT_RUN, *lengths]), _AFTER_DIGIT_RUN
    else:
        table, shortest, after = _RUN_TABLE, min([_CPR_LENGTH, *lengths]), 1
    mask = data.translate(table)
    needle = b"a" * shortest
    if mask.count(needle) * _DENSE_BYTES > len(data):
        return find_identifiers(data.decode("latin-1"), known)
    windows: list[list[int]] = []
    position = mask.find(needle)
    while position >= 0:  # the start of a run: each search resumes after the run before
        end = mask.find(b" ", position)
        end = len(mask) if end < 0 else end
        first, stop = max(position - 1, 0), min(end + after, len(mask))
        if windows and first <= windows[-1][1] + _WINDOW_GAP:
            windows[-1][1] = stop
        else:
            windows.append([first, stop])
        position = mask.find(needle, end)
    return [(first + offset, kind) for first, stop in windows
            for offset, kind in find_identifiers(data[first:stop].decode("latin-1"), known)]


def scan_strings(values: Sequence[str | None] | pa.Array | pa.ChunkedArray,
                 known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(position, kind)`` of the values (e.g. one decoded Parquet string column) holding an identifier.

    Arrow's RE2 first picks the values the patterns could match (:func:`_arrow_prefilter`, never
    fewer than :func:`find_identifiers` would find). Only their distinct values are scanned in
    Python, joined by line breaks; each hit is mapped back to every position holding that value.
    A long array of few distinct values (:func:`_few_distinct`) is dictionary-encoded first, and
    only its dictionary goes through all this.
    """
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values],
                          type=pa.large_string())
    if not len(values):
        return []
    if isinstance(values, pa.Array) and _few_distinct(values):
        return _scan_dictionary(pc.dictionary_encode(values), known)
    return _scan_each(values, known)


def _scan_each(values: pa.Array | pa.ChunkedArray, known: ExtractIdentifiers | None) -> list[tuple[int, str]]:
    """:func:`scan_strings` value by value (after the prefilter)."""
    tokens = (known.lengths, known.digits_only) if known is not None and known.digests else (frozenset(), False)
    maybe = pc.match_substring_regex(values, _arrow_prefilter(*tokens)).fill_null(False)
    positions = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    if not len(positions):
        return []
    candidates = values.take(positions)
    distinct = pc.unique(candidates).to_pylist()
    ends = np.cumsum([len(text) + 1 for text in distinct])
    kinds: dict[int, str] = {}
    for offset, kind in find_identifiers("\n".join(distinct), known):
        kinds.setdefault(int(np.searchsorted(ends, offset, side="right")), kind)
    if not kinds:
        return []
    hit_values = pa.array([distinct[i] for i in kinds], type=candidates.type)
    hit_kinds = list(kinds.values())
    which = pc.index_in(candidates, value_set=hit_values)
    return [(int(positions[i]), hit_kinds[which[i].as_py()])
            for i in np.flatnonzero(which.is_valid().to_numpy(zero_copy_only=False))]


#: a text array at least this long is looked at for few distinct values (below it the scan is quick anyway)
FEW_DISTINCT_MIN_ROWS = 1 << 16
#: values sampled, evenly spread, to decide; "few" is at most one in 16 of them distinct
FEW_DISTINCT_SAMPLE = 4096


def _few_distinct(values: pa.Array) -> bool:
    """Whether a text array seems to repeat a few values (codes, categories, bands): then scanning
    its distinct values and mapping hits back costs a fifth or less of scanning every value. Spread
    samples, not the first rows: a table sorted by person repeats each person's id a few times."""
    if len(values) < FEW_DISTINCT_MIN_ROWS:
        return False
    sample = values.take(np.linspace(0, len(values) - 1, FEW_DISTINCT_SAMPLE).astype("int64"))
    return len(pc.unique(sample)) * 16 <= FEW_DISTINCT_SAMPLE


def _scan_dictionary(encoded: pa.DictionaryArray, known: ExtractIdentifiers | None) -> list[tuple[int, str]]:
    """:func:`scan_strings` of a dictionary-encoded array: its distinct values are scanned, and every
    position holding a hit is listed with the kind its value got (the same list as scanning each value)."""
    kind_of = dict(_scan_each(encoded.dictionary, known))
    if not kind_of:
        return []
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return [(int(p), kind_of[int(indices[p])]) for p in np.flatnonzero(np.isin(indices, list(kind_of)))]


def scan_integers(values: np.ndarray, known: ExtractIdentifiers | None = None) -> list[tuple[int, str]]:
    """``(position, kind)`` of the integers holding an identifier. Integers of 9 or 10 digits are
    read as 10-digit text (a CPR number stored as a number loses its leading zero); others cannot be."""
    values = np.asarray(values)
    in_range = (values >= 100_000_000) & (values < 10_000_000_000)
    if not in_range.any():
        return []
    distinct = np.unique(values[in_range])
    hits = scan_strings([f"{int(value):010d}" for value in distinct], known)
    kind_of = {int(distinct[i]): kind for i, kind in hits}
    if not kind_of:
        return []
    positions = np.flatnonzero(in_range & np.isin(values, list(kind_of)))
    return [(int(p), kind_of[int(values[p])]) for p in positions]


@functools.lru_cache(maxsize=8)
def _arrow_prefilter(lengths: frozenset[int], digits_only: bool) -> str:
    """One RE2 pattern (for Arrow's ``match_substring_regex``) that matches every value in which
    :data:`SCAN_CPR_PATTERN` or :func:`_token_pattern` has a hit. RE2 has no lookaround: a
    lookbehind for "not one of these" becomes "start of value or a character not among these", a
    lookahead likewise, and Python's ``\\d`` (any Unicode decimal digit) becomes ``\\p{Nd}``."""
    def re2(pattern: str) -> str:
        pattern = re.sub(r"\(\?<!\[([^\]]*)\]\)", lambda m: f"(?:^|[^{m.group(1)}])", pattern)
        pattern = re.sub(r"\(\?!\[([^\]]*)\]\)", lambda m: f"(?:$|[^{m.group(1)}])", pattern)
        return pattern.replace(r"\d", r"\p{Nd}")

    patterns = [SCAN_CPR_PATTERN.pattern, *([_token_pattern(lengths, digits_only).pattern] if lengths else [])]
    return "|".join(f"(?:{re2(pattern)})" for pattern in patterns)


@functools.lru_cache(maxsize=8)
def _token_pattern(lengths: frozenset[int], digits_only: bool = False) -> re.Pattern[str]:
    """Standalone letter-and-digit runs of the extract's PNR lengths (and ``DDMMYY-SSSS``): only
    these are hashed, so a scan costs one regex pass plus a hash per candidate. When every PNR value
    is digits, only digit runs can be one (a letter-and-digit run of digits alone is a digit run)."""
    character = "[0-9]" if digits_only else "[0-9A-Za-z]"
    runs = "|".join(f"{character}{{{n}}}" for n in sorted(lengths, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:\d{{6}}-\d{{4}}|{runs})(?![0-9A-Za-z])")


_DASHED_CPR = re.compile(r"\d{6}-\d{4}")
_DIGITS = re.compile(r"[0-9]+")


def _normalise_token(value: str) -> str:
    return value.replace("-", "") if _DASHED_CPR.fullmatch(value) else value


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
