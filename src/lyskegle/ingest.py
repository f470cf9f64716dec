"""Ingest: register files in, typed and pseudonymised tables out, bad rows quarantined.

:func:`ingest_extract` takes the raw files of one extract (as :class:`lyskegle.io.RawRegister`, read
by the stage's entry point) and returns the tables of docs/DATA_MODEL.md (``population``,
``dwellings``, ``benefits``, ``employment``, ``jobs``, ``education``, ``income``, ``classes``,
``convictions``), one quarantine frame per file and the data-quality summary.

What happens to bad input:

* **File-level problems** raise :class:`lyskegle.io.ExtractError`, whose message names the file and,
  where it applies, the row and the column. Rows are counted as a person reads the file: row 1 is
  the first data row, the header not counted (row N of a CSV file is on line N + 1). File-level
  problems are: a missing register file or a missing year between two present years, an empty,
  truncated or undecodable file, a missing or misspelt column, a DREAM week column that is not a
  real ISO week (or a gap in the weeks or months), and a column that does not parse in any row.
* **Row-level problems** send the row to the quarantine with the column (DST name) and the reason:
  missing or malformed PNR, duplicate person in a register with one row per person and year,
  unparsable date or number, a code outside the contract (sex, origin type, education, job type,
  offence type, grade), unknown or unparsable DREAM code, birth date after the register's
  1 January, negative wage income, a dwelling without stairwell, a duplicate dwelling, a malformed
  parent or partner link. A row with several problems is quarantined once, under its first problem
  in column order. The quarantine keeps the row's values as text, person keys pseudonymised.
* **Links to persons who are not in the extract** are normal (parents who died before the first
  year, partners outside the municipality, persons who moved out before the first ``bef`` year) and
  are kept. They are counted per file in the quality summary: ``unresolved_links`` per link column
  of ``bef`` (links to nobody in any ``bef`` year), and ``rows_with_person_outside_population``
  for the other person registers (rows whose PNR is in no ``bef`` year); dwellings named in ``bef``
  but missing from ``adresser`` are counted as ``dwellings_not_in_adresser``.
* **Changed values are counted too**: a DREAM code ``0`` is read as a blank week
  (``zero_codes_read_as_blank``); columns outside the contract are dropped and listed
  (``ignored_columns``).

For every file ``rows_read == rows_accepted + rows_quarantined`` (asserted).

Person keys: a file is in *CPR mode* when most of its PNR values have the 10-digit CPR shape; then
every PNR and link must be a valid CPR number (day 01-31 or 61-91, month 01-12, optional dash).
Otherwise (DST's pseudonymous ids) any non-blank PNR is accepted. The development key is only
ever applied to synthetic numbers: with it, every person key is first checked to hold no CPR number
with a real day-of-month (01-31), and the first one raises PseudonymKeyError naming file, row and
column (never the number). ``extract.json`` calls the extract synthetic when its ``EXTRACT.json``
marker says so and no person key had a real day-of-month; malformed keys (quarantined) can be no
one's CPR number and do not count against it.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc

from lyskegle.calendar import parse_dream_month_column, parse_dream_week_column
from lyskegle.codes import is_known
from lyskegle.io import ExtractError, RawRegister, is_text_type
from lyskegle.privacy import MAX_TOKEN, ExtractIdentifiers
from lyskegle.pseudonym import DEVELOPMENT_KEY, PseudonymKeyError, pseudonyms_of_normalised
from lyskegle.schemas import (
    AMOUNT, DATE, DREAM_STEM, INTEGER, LINK, PERSON, REGISTERS, RegisterSpec,
    blank_reason, row_schema,
)

__all__ = ["ExtractError", "IngestResult", "PersonKeys", "ingest_extract", "ingest_register", "ingest_dream",
           "register_of", "dream_column_type"]

log = logging.getLogger(__name__)

_STEM = re.compile(r"^([a-z]+?)(\d{4})?$")
# A CPR number with a real day-of-month anywhere in a value (RE2 syntax: no look-arounds)
_REAL_CPR = r"(?:^|\D)(?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])\d{2}-?\d{4}(?:\D|$)"
_DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%d%b%Y", "%Y%m%d")
_ROW_BLOCK = 1 << 16  # DREAM rows per batch when its weeks and months become runs (bounds memory)
# Files are ingested in this order so that the dwelling register is known when bef is checked,
# and DREAM's wide frame is gone before the yearly registers pile up.
_ORDER = ["adresser", DREAM_STEM, "bef", "idan", "udda", "ind", "grundskole", "kraf"]


class PersonKeys:
    """Keyed pseudonyms with a memo, so a person seen in many files is hashed once per run.

    Every distinct person key gets a *slot*: a small integer, stable for the whole run, that
    stands for the person (equal keys, equal slot). Files keep their persons as slots, so checks
    across files ("is this person in any ``bef`` year?") are array look-ups instead of string
    hashing. Person keys of up to 17 digits (CPR numbers, DST's numeric ids) are looked up as
    integers (digits plus length, so ``0123`` and ``123`` stay apart), which is many times faster
    than hashing strings; other keys go through an Arrow string lookup.
    """

    def __init__(self, key: bytes):
        self.key = key
        self.uses_development_key = key == DEVELOPMENT_KEY
        self.real_cpr_numbers = 0  # person keys seen with a real day-of-month: the extract is not synthetic
        self._pseudonyms = pa.array([], pa.string())  # by slot, in the order first seen
        self._numbers = np.array([], dtype=np.int64)  # person codes, sorted
        self._number_slots = np.array([], dtype=np.int64)  # the slot of each sorted code
        self._texts = pa.array([], pa.string())  # other keys, in the order first seen
        self._text_slots = np.array([], dtype=np.int64)

    @property
    def n_slots(self) -> int:
        """Number of distinct person keys seen so far (slots are 0 .. n_slots - 1)."""
        return len(self._pseudonyms)

    def __call__(self, normalised: pa.Array, codes: np.ndarray | None = None) -> pd.Series:
        """Pseudonyms (Arrow-backed strings) of normalised person keys; blank stays missing.

        ``codes``: :func:`person_codes` of ``normalised``, when the caller has them already.
        """
        return self.pseudonyms(self.slots(normalised, codes))

    def slots(self, normalised: pa.Array, codes: np.ndarray | None = None) -> np.ndarray:
        """Slot (int64) of each normalised person key, -1 for blank; new keys are hashed and added."""
        normalised = pc.cast(normalised, pa.string())
        codes = person_codes(normalised) if codes is None else codes
        numeric = codes >= 0
        slots = np.full(len(normalised), -1, dtype=np.int64)
        if numeric.any():
            slots[numeric] = self._lookup_numbers(codes[numeric])
        other = _mask(pc.is_valid(normalised)) & ~numeric
        if other.any():
            slots[other] = self._lookup_texts(normalised.filter(other))
        return slots

    def pseudonyms(self, slots: np.ndarray) -> pd.Series:
        """Pseudonyms (Arrow-backed strings) of slots from :meth:`slots`; -1 gives missing."""
        return _series(self._pseudonyms.take(pa.array(slots, mask=slots < 0)))

    def identifiers(self, max_length: int = MAX_TOKEN) -> ExtractIdentifiers:
        """Every person key seen, as the identifier scans look for them: their pseudonyms (keys over
        ``max_length`` characters left out, as the scans leave them out), lengths and whether all
        are digits. Nothing is hashed again: the pseudonyms are those the keys were given."""
        lengths = np.zeros(self.n_slots, dtype=np.int64)
        digits = np.ones(self.n_slots, dtype=bool)
        lengths[self._number_slots] = self._numbers // _DIGITS_SCALE
        if len(self._texts):
            lengths[self._text_slots] = pc.utf8_length(self._texts).to_numpy(zero_copy_only=False)
            digits[self._text_slots] = _mask(pc.match_substring_regex(self._texts, "^[0-9]+$"))
        kept = lengths <= max_length
        pseudonyms = self._pseudonyms.filter(pa.array(kept)).to_pylist()
        return ExtractIdentifiers(frozenset(p.encode("ascii") for p in pseudonyms),
                                  frozenset(np.unique(lengths[kept]).tolist()), bool(digits[kept].all()), key=self.key)

    def _add(self, values: list[str]) -> np.ndarray:
        """Hash new keys; returns their slots."""
        first = len(self._pseudonyms)
        self._pseudonyms = pa.concat_arrays([self._pseudonyms, pseudonyms_of_normalised(values, self.key)])
        return np.arange(first, len(self._pseudonyms), dtype=np.int64)

    def _lookup_numbers(self, codes: np.ndarray) -> np.ndarray:
        """Slot of each code; new codes are hashed and added."""
        # searching sorted queries keeps the search in cache: several times faster at 1M keys
        order = np.argsort(codes, kind="stable")
        ordered = codes[order]
        position = np.searchsorted(self._numbers, ordered)
        inside = np.minimum(position, max(len(self._numbers) - 1, 0))
        found = (position < len(self._numbers)) & (self._numbers[inside] == ordered) if len(self._numbers) \
            else np.zeros(len(codes), dtype=bool)
        if not found.all():
            new = np.unique(ordered[~found])
            slots = self._add([str(code % _DIGITS_SCALE).zfill(int(code // _DIGITS_SCALE)) for code in new.tolist()])
            numbers = np.concatenate([self._numbers, new])
            resort = np.argsort(numbers, kind="stable")
            self._numbers, self._number_slots = numbers[resort], np.concatenate([self._number_slots, slots])[resort]
            position = np.searchsorted(self._numbers, ordered)
        slots = np.empty(len(codes), dtype=np.int64)
        slots[order] = self._number_slots[position]
        return slots

    def _lookup_texts(self, texts: pa.Array) -> np.ndarray:
        """Slot of each text key; new keys are hashed and added."""
        uniques = pc.unique(texts)
        new = uniques.filter(pc.is_null(pc.index_in(uniques, value_set=self._texts)))
        if len(new):
            self._texts = pa.concat_arrays([self._texts, new])
            self._text_slots = np.concatenate([self._text_slots, self._add(new.to_pylist())])
        return self._text_slots[pc.index_in(texts, value_set=self._texts).to_numpy(zero_copy_only=False).astype(np.int64)]


_DIGITS_SCALE = 10 ** 17
def person_codes(normalised: pa.Array) -> np.ndarray:
    """int64 code of each key of 1-17 digits (digits + length * 10**17); -1 for other keys and blanks."""
    lengths = pc.fill_null(pc.binary_length(normalised), 0).to_numpy(zero_copy_only=False)
    if only_digits(normalised):  # the usual column of CPR numbers: no regex over every value
        digits = _mask(pc.is_valid(normalised)) & (lengths >= 1) & (lengths <= 17)
    else:
        digits = _mask(pc.match_substring_regex(normalised, r"^\d{1,17}$"))
    codes = np.full(len(normalised), -1, dtype=np.int64)
    if digits.any():
        values = pc.cast(normalised.filter(digits), pa.int64()).to_numpy(zero_copy_only=False)
        codes[digits] = values + lengths[digits].astype(np.int64) * _DIGITS_SCALE
    return codes


def only_digits(text: pa.Array) -> bool:
    """Whether the values of an Arrow string array hold ASCII digits and nothing else (blank and
    null values pass): one pass over its bytes, about five times faster than a regex per value."""
    if not is_text_type(text.type):
        raise TypeError(f"only_digits needs Arrow text, not {text.type}")
    if len(text) == 0:
        return True
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)[text.offset:text.offset + len(text) + 1]
    data = text.buffers()[2]
    if data is None:
        return True
    # bytes under null slots are read too; a null whose slot is not empty only sends the caller the slow way
    values = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]
    return bool(((values - ord("0")) <= 9).all())  # uint8: bytes below "0" wrap round above 9


@dataclass
class FileResult:
    name: str
    register: str
    year: int | None
    # the accepted rows' table (DREAM: "benefits" and "employment"), persons as PersonKeys slots
    compact: pd.DataFrame | dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    quality: dict[str, Any]
    keys: PersonKeys
    # PersonKeys slots of the accepted rows, by English person or link column (checks across files)
    person_slots: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """The accepted rows' table(s) with persons as pseudonyms, as they are written."""
        persons = _person_columns(self.register)
        if isinstance(self.compact, dict):
            return {name: _pseudonymised(part, persons, self.keys) for name, part in self.compact.items()}
        return _pseudonymised(self.compact, persons, self.keys)


def _pseudonymised(table: pd.DataFrame, person_columns: list[str], keys: PersonKeys) -> pd.DataFrame:
    """``table`` with the PersonKeys slots of ``person_columns`` replaced by pseudonyms (a new frame)."""
    return pd.DataFrame({
        name: keys.pseudonyms(values.to_numpy()).array if name in person_columns else values.array
        for name, values in table.items()
    }, copy=False)


class OutputTables(Mapping[str, pd.DataFrame]):
    """The tables of docs/DATA_MODEL.md by name, each put together from its files' parts when asked for.

    The parts keep their persons as PersonKeys slots (int32); a table's person and link columns
    become pseudonyms only when it is asked for. At a million persons the pseudonyms are most of
    the tables' memory, so a caller that takes one table at a time holds only that one's as text.
    Each access builds the table anew.
    """

    def __init__(self, parts: dict[str, list[pd.DataFrame]], person_columns: dict[str, list[str]], keys: PersonKeys):
        self._parts = parts
        self._person_columns = person_columns
        self._keys = keys

    def __getitem__(self, name: str) -> pd.DataFrame:
        # part by part: the pseudonyms come in one Arrow chunk per file, as Parquet was always given them
        persons = self._person_columns[name]
        return pd.concat([_pseudonymised(part, persons, self._keys) for part in self._parts[name]], ignore_index=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)


@dataclass
class IngestResult:
    """Tables of docs/DATA_MODEL.md by name, quarantine frames by file stem, quality, extract facts."""

    tables: Mapping[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    quality: dict[str, Any]
    extract: dict[str, Any] = field(default_factory=dict)
    #: every person key of the extract as its pseudonym, for the identifier scans (PersonKeys.identifiers)
    identifiers: ExtractIdentifiers | None = None


def register_of(file_name: str) -> tuple[str, int | None]:
    """Register stem and year of a file name (``bef2019.csv`` -> ``('bef', 2019)``); ExtractError if unknown."""
    stem = file_name.rsplit(".", 1)[0].lower()
    match = _STEM.match(stem)
    known = [*REGISTERS, DREAM_STEM]
    if match and match.group(1) in known:
        register, year = match.group(1), match.group(2)
        yearly = register != DREAM_STEM and REGISTERS[register].yearly
        if yearly and year is None:
            raise ExtractError(f"{file_name}: register '{register}' comes one file per year ({register}YYYY)")
        if not yearly and year is not None:
            raise ExtractError(f"{file_name}: register '{register}' is one file without a year")
        return register, int(year) if year else None
    guess = difflib.get_close_matches(match.group(1) if match else stem, known, n=1)
    hint = f"; did you mean '{guess[0]}'?" if guess else ""
    raise ExtractError(f"{file_name}: not a register of the contract{hint}")


def dream_column_type(name: str) -> pa.DataType | None:
    """Arrow type to read a DREAM CSV column as: codes as int16, work months as dictionary text."""
    lowered = name.strip().lower()
    if lowered.startswith("y_"):
        return pa.int16()
    if lowered.startswith("branche_"):
        return pa.dictionary(pa.int32(), pa.string())
    return None


# --- whole extract ------------------------------------------------------------------------------

def check_register_files(file_names: Iterable[str]) -> None:
    """Every register of the contract is present, and yearly registers have no missing year."""
    years: dict[str, list[int]] = {}
    for name in file_names:
        register, year = register_of(name)
        years.setdefault(register, []).extend([year] if year is not None else [])
    for register in _ORDER:
        if register not in years:
            spelled = f"{register}YYYY" if register in REGISTERS and REGISTERS[register].yearly else register
            raise ExtractError(
                f"{spelled}: file not found (expected {spelled}.csv, .parquet, .sas7bdat or .xpt in the extract)"
            )
        present = sorted(years[register])
        if present:
            missing = sorted(set(range(present[0], present[-1] + 1)) - set(present))
            if missing:
                raise ExtractError(
                    f"{register}{missing[0]}: file not found, but {register}{present[0]} and "
                    f"{register}{present[-1]} are there (a yearly register must not skip a year)"
                )


def ingest_order(file_names: Iterable[str]) -> list[str]:
    """File names in the order :func:`ingest_extract` wants them."""
    def rank(name: str) -> tuple[int, int, str]:
        register, year = register_of(name)
        return _ORDER.index(register), year or 0, name
    return sorted(file_names, key=rank)


def ingest_extract(
    files: Iterable[RawRegister],
    key: bytes,
    marked_synthetic: bool,
    sink: Callable[[str, pd.DataFrame], None] | None = None,
) -> IngestResult:
    """Ingest every file of one extract (best given in :func:`ingest_order`).

    ``key`` is the pseudonymisation key already chosen with :func:`lyskegle.pseudonym.choose_key`;
    with the development key every person key is checked to be synthetic first, and a real-looking
    CPR number raises :class:`lyskegle.pseudonym.PseudonymKeyError` before anything is returned.
    ``files`` may be a generator, so only one raw file needs to be in memory at a time.

    ``sink``: when given, each file's accepted rows are handed to ``sink(table name, rows)`` as soon
    as the file is ingested, persons already pseudonymised, and are not kept; ``tables`` of the
    result is then empty. A table's parts come in the order of its files, and concatenated they
    are the table that ``tables`` would hold. A person key is checked (see above) before its file's
    rows are handed on, but the checks across files (quality) need every file, so a caller should
    keep what it writes out of sight until this function has returned.
    """
    keys = PersonKeys(key)
    results: list[FileResult] = []
    dwelling_ids: pa.Array | None = None
    for raw in files:
        register, year = register_of(raw.name)
        log.info("ingest %s (%d rows, %s)", raw.name, raw.num_rows, raw.file_format)
        if register == DREAM_STEM:
            result = ingest_dream(raw, keys)
        else:
            result = ingest_register(raw, keys, year)
        result.quality["format"] = raw.file_format
        if raw.encoding:
            result.quality["encoding"] = raw.encoding
        if register == "adresser":
            dwelling_ids = _arrow_strings(result.compact["dwelling_id"])
        if register == "bef" and dwelling_ids is not None:
            result.quality["dwellings_not_in_adresser"] = _count_outside(result.compact["dwelling_id"], dwelling_ids)
        if sink is not None:
            for name, part in _output_parts(result):
                sink(name, _pseudonymised(part, _person_columns(register), keys))
            result.compact = {}  # handed on: not held until every file is read
        results.append(result)
        log.info(
            "  %s: %d accepted, %d quarantined %s", raw.name, result.quality["rows_accepted"],
            result.quality["rows_quarantined"], result.quality["quarantined_by_reason"] or "",
        )
    check_register_files(result.name for result in results)
    return _combine(results, keys, marked_synthetic)


def _combine(results: list[FileResult], keys: PersonKeys, marked_synthetic: bool) -> IngestResult:
    parts: dict[str, list[pd.DataFrame]] = {}
    person_columns: dict[str, list[str]] = {}
    first_week = last_week = None
    for result in results:
        for name, part in _output_parts(result):
            parts.setdefault(name, []).append(part)
            person_columns[name] = _person_columns(result.register)
        if result.register == DREAM_STEM:
            first_week, last_week = result.quality.pop("first_week"), result.quality.pop("last_week")

    # a person is in the population when in any bef year; slots stand for persons across files
    in_population = np.zeros(keys.n_slots, dtype=bool)
    for result in results:
        if result.register == "bef":
            slots = result.person_slots["person_id"]
            in_population[slots[slots >= 0]] = True
    for result in results:
        if result.register == "bef":
            result.quality["unresolved_links"] = {
                source: _count_slots_outside(result.person_slots[name], in_population)
                for source, name in (("E_FAELLE_ID", "partner_id"), ("MOR_ID", "mother_id"), ("FAR_ID", "father_id"))
            }
        elif result.register != "adresser":
            result.quality["rows_with_person_outside_population"] = _count_slots_outside(
                result.person_slots["person_id"], in_population)

    files = {result.name: result.quality for result in results}
    totals = {
        name: sum(quality[name] for quality in files.values())
        for name in ("rows_read", "rows_accepted", "rows_quarantined")
    }
    by_reason: dict[str, int] = {}
    for quality in files.values():
        for reason, count in quality["quarantined_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    totals["quarantined_by_reason"] = dict(sorted(by_reason.items()))
    assert totals["rows_read"] == totals["rows_accepted"] + totals["rows_quarantined"]
    extract = {
        # the marker alone does not make an extract synthetic: no person key may be a CPR number
        # with a real day-of-month (malformed keys, quarantined, can be no one's CPR number)
        "synthetic": bool(marked_synthetic and keys.real_cpr_numbers == 0),
        "first_week": first_week,
        "last_week": last_week,
    }
    quarantine = {result.name.rsplit(".", 1)[0]: result.quarantine for result in results}
    return IngestResult(OutputTables(parts, person_columns, keys), quarantine, {"files": files, "totals": totals}, extract,
                        keys.identifiers())


def _output_parts(result: FileResult) -> list[tuple[str, pd.DataFrame]]:
    """The file's accepted rows as (output table name, compact part); none once handed to a sink."""
    if isinstance(result.compact, dict):
        return list(result.compact.items())
    return [(REGISTERS[result.register].output, result.compact)]


def _arrow_strings(values: pd.Series) -> pa.Array:
    array = pa.array(values, from_pandas=True)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return pc.cast(array, pa.string())


def _count_outside(values: pd.Series, known: pa.Array) -> int:
    """Non-missing values that are not in ``known`` (Arrow's hash lookup: pandas' isin on Arrow
    strings goes through Python objects and takes minutes at a million rows)."""
    array = _arrow_strings(values)
    return int(pc.sum(pc.and_(pc.is_valid(array), pc.invert(pc.is_in(array, value_set=known)))).as_py() or 0)


def _count_slots_outside(slots: np.ndarray, known: np.ndarray) -> int:
    """Persons (PersonKeys slots, -1 for blank) whose ``known[slot]`` is False, blanks not counted."""
    present = slots[slots >= 0]
    return int(len(present) - np.count_nonzero(known[present]))


# --- one register file --------------------------------------------------------------------------

def _match_columns(spec_sources: list[str], columns: Iterable[str], file_name: str) -> tuple[dict[str, str], list[str]]:
    """Contract name -> the file's column name (case and space insensitive), and the ignored columns."""
    found: dict[str, str] = {}
    for column in columns:
        normal = str(column).strip().upper()
        if normal in found:
            raise ExtractError(f"{file_name}: column '{normal}' appears twice")
        found[normal] = column
    missing = [source for source in spec_sources if source not in found]
    extra = sorted(name for name in found if name not in spec_sources)
    if missing:
        guess = difflib.get_close_matches(missing[0], extra, n=1, cutoff=0.6)
        hint = f" (found '{found[guess[0]]}'; did you mean it?)" if guess else f" (columns found: {', '.join(map(str, columns))})"
        more = f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise ExtractError(f"{file_name}: column '{missing[0]}' is missing{hint}{more}")
    return {source: found[source] for source in spec_sources}, [str(found[name]) for name in extra]


def _to_arrow_text(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Values as an Arrow string array, stripped, blanks null; integral floats lose their ``.0``."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_floating(values.type) or pa.types.is_temporal(values.type):
            values = values.to_pandas()
        else:
            values = pd.Series(pd.arrays.ArrowExtensionArray(values))
    if pd.api.types.is_float_dtype(values):
        whole = values.notna() & (values == values.round())
        if (whole | values.isna()).all():
            values = values.astype("Int64")
        else:
            text = values.astype("string")
            text[whole] = values[whole].astype("Int64").astype("string")
            values = text
    elif pd.api.types.is_datetime64_any_dtype(values):
        values = values.dt.strftime("%Y-%m-%d")
    array = pa.array(values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    array = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def _series(array: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([array])))


def _as_text(values: pd.Series) -> pd.Series:
    """Values as stripped Arrow-backed text, blanks missing."""
    return _series(_to_arrow_text(values))


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow booleans as a numpy mask, null read as False."""
    filled = pc.fill_null(array, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return filled.to_numpy(zero_copy_only=False)


def _parse_dates(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """(dates as datetime64, mask of non-blank values that are no date, mask of non-blank values)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        present = values.notna().to_numpy()
        return pd.Series(values.to_numpy(dtype="datetime64[ns]")), np.zeros(len(values), bool), present
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_date(values.dtype.pyarrow_dtype):
        present = values.notna().to_numpy()
        return pd.Series(values.astype("datetime64[ns]").to_numpy()), np.zeros(len(values), bool), present
    text = _to_arrow_text(values)
    parsed = pa.nulls(len(text), pa.timestamp("s"))
    for pattern in _DATE_FORMATS:
        if parsed.null_count == text.null_count:
            break
        attempt = pc.strptime(text, format=pattern, unit="s", error_is_null=True)
        parsed = pc.coalesce(parsed, attempt)
    present = _mask(pc.is_valid(text))
    dates = parsed.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
    return pd.Series(dates), present & np.isnat(dates), present


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """(numbers as float64, mask of non-blank values that are no number, mask of non-blank values).

    Decimal comma allowed; a thousands separator is not (``1.234,50`` is no number).
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        return numbers.reset_index(drop=True), np.zeros(len(values), bool), numbers.notna().to_numpy()
    text = pc.replace_substring(_to_arrow_text(values), ",", ".")
    present = _mask(pc.is_valid(text))
    try:
        numbers = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # some value is no number: find which, the slow way
        numbers = pd.to_numeric(_series(text), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    numbers = np.asarray(numbers, dtype="float64")
    return pd.Series(numbers), present & np.isnan(numbers), present


@dataclass(frozen=True)
class _PersonColumn:
    """A person-key column read once: normalised text, integer codes (-1: not digits), masks."""

    normalised: pa.Array
    codes: np.ndarray
    present: np.ndarray
    malformed: np.ndarray
    real_cpr_numbers: int  # CPR numbers with a real day-of-month (01-31)


def _read_person_column(values: pd.Series, file_name: str, source: str, cpr_mode: bool | None,
                        refuse_real_numbers: bool) -> tuple[_PersonColumn, bool]:
    """Normalise a PNR or link column and find its malformed values; returns it and the CPR mode.

    Normalising strips white space and the dash of ``DDMMYY-SSSS``. ``cpr_mode`` None: decided
    from these values (most of them have the 10-digit CPR shape). ``refuse_real_numbers``: raise
    PseudonymKeyError at the first CPR number with a real day-of-month (the development key is in use).
    """
    text = _to_arrow_text(values)
    if not only_digits(text) and pc.any(pc.match_substring(text, "-")).as_py():
        text = pc.replace_substring_regex(text, r"^(\d{6})-(\d{4})$", r"\1\2")
    codes = person_codes(text)
    present = _mask(pc.is_valid(text))
    ten_digits = codes // _DIGITS_SCALE == 10
    number = codes % _DIGITS_SCALE
    day, month = number // 10**8, number // 10**6 % 100
    month_ok = ten_digits & (month >= 1) & (month <= 12)
    real_day = month_ok & (day >= 1) & (day <= 31)
    if refuse_real_numbers:
        real = real_day.copy()
        other = present & (codes < 0)
        if other.any():  # a CPR number inside some longer text
            real[other] = _mask(pc.match_substring_regex(text.filter(other), _REAL_CPR))
        if real.any():
            row = int(np.flatnonzero(real)[0]) + 1
            raise PseudonymKeyError(
                f"{file_name}: row {row}, column '{source}' holds a CPR number with a real day-of-month "
                "(01-31), so this extract is not synthetic and the development key may not be used: set "
                "LYSKEGLE_PSEUDONYM_KEY or LYSKEGLE_PSEUDONYM_KEY_FILE"
            )
    if cpr_mode is None:
        cpr_mode = bool(present.any() and ten_digits[present].mean() >= 0.5)
    if cpr_mode:
        valid = real_day | (month_ok & (day >= 61) & (day <= 91))
        malformed = present & ~valid
    else:
        malformed = np.zeros(len(text), dtype=bool)
    return _PersonColumn(text, codes, present, malformed, int(real_day.sum())), cpr_mode


def _duplicated(column: _PersonColumn, valid: np.ndarray) -> np.ndarray:
    """Rows whose (valid, non-blank) person key appears more than once among the valid rows."""
    candidates = valid & column.present
    if (column.codes[candidates] >= 0).all():
        keys = pd.Series(column.codes[candidates])
    else:
        keys = _series(column.normalised.filter(candidates))
    duplicated = np.zeros(len(candidates), dtype=bool)
    duplicated[candidates] = keys.duplicated(keep=False).to_numpy()
    return duplicated


def _all_unparsable(bad: np.ndarray, present: np.ndarray, file_name: str, source: str, what: str) -> None:
    """A column that parses in no row is a file-level error, not a quarantine of the whole file."""
    if bad.any() and bad.sum() == present.sum():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise ExtractError(
            f"{file_name}: row {row}, column '{source}': no value in this column can be read as {what} "
            f"(wrong type or format?)"
        )


@dataclass
class _Problems:
    """Row-level problems in the order found: positions, column (DST name), reason."""

    rows: list[np.ndarray] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, mask: pd.Series | np.ndarray, column: str, reason: str) -> None:
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if len(positions):
            self.rows.append(positions)
            self.columns.append(column)
            self.reasons.append(reason)

    def mask_of(self, column: str, n: int) -> np.ndarray:
        """Rows with a problem in ``column`` so far."""
        mask = np.zeros(n, dtype=bool)
        for rows, name in zip(self.rows, self.columns):
            if name == column:
                mask[rows] = True
        return mask

    def first_per_row(self) -> pd.DataFrame:
        """One problem per row: the first added. Columns ``position``, ``column``, ``reason``."""
        if not self.rows:
            return pd.DataFrame({"position": np.array([], dtype="int64"), "column": [], "reason": []})
        sizes = [len(rows) for rows in self.rows]
        frame = pd.DataFrame({
            "position": np.concatenate(self.rows),
            "column": np.repeat(self.columns, sizes),
            "reason": np.repeat(self.reasons, sizes),
        })
        return frame.drop_duplicates("position", keep="first").sort_values("position", kind="stable")


def ingest_register(raw: RawRegister, keys: PersonKeys, year: int | None) -> FileResult:
    """Validate, type and pseudonymise one file of a long register (every register but DREAM).

    Returns the accepted rows with the English columns of docs/DATA_MODEL.md (``year`` added for
    yearly registers but ``kraf``), the quarantined rows and the file's quality summary.
    """
    register, _ = register_of(raw.name)
    spec = REGISTERS[register]
    frame = raw.frame.reset_index(drop=True)
    names, ignored = _match_columns(spec.sources, frame.columns, raw.name)
    problems = _Problems()
    parsed: dict[str, pd.Series] = {}
    person_columns: dict[str, _PersonColumn] = {}
    cpr_mode: bool | None = None  # links follow the mode of the file's own PNR column
    for column in spec.columns:
        values = frame[names[column.source]]
        if column.kind in (PERSON, LINK):
            person, mode = _read_person_column(
                values, raw.name, column.source, cpr_mode, keys.uses_development_key)
            keys.real_cpr_numbers += person.real_cpr_numbers
            cpr_mode = mode if column.kind == PERSON else cpr_mode
            reason = "malformed_pnr" if column.kind == PERSON else "malformed_link"
            problems.add(person.malformed, column.source, reason)
            person_columns[column.source] = person
            parsed[column.source] = _series(person.normalised).mask(person.malformed)
        elif column.kind == DATE:
            dates, bad, present = _parse_dates(values)
            _all_unparsable(bad, present, raw.name, column.source, "a date")
            problems.add(bad, column.source, "unparsable_date")
            parsed[column.source] = dates
        elif column.kind in (INTEGER, AMOUNT):
            numbers, bad, present = _parse_numbers(values)
            _all_unparsable(bad, present, raw.name, column.source, "a number")
            problems.add(bad, column.source, "unparsable_number")
            parsed[column.source] = numbers
        else:
            parsed[column.source] = _as_text(values)
    typed = pd.DataFrame(parsed)

    try:
        row_schema(spec, year).validate(typed, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for (source, check), group in cases.groupby(["column", "check"], sort=False):
            reason = blank_reason(spec, source) if check == "not_nullable" else str(check)
            mask = np.zeros(len(typed), dtype=bool)
            mask[group["index"].astype("int64").to_numpy()] = True
            problems.add(mask, source, reason)
    if spec.one_row_per_person:
        problems.add(_duplicated(person_columns["PNR"], ~problems.mask_of("PNR", len(typed))), "PNR", "duplicate_person")
    if register == "adresser":
        dwelling = typed["ADRESSE_ID"]
        problems.add(dwelling.notna() & dwelling.duplicated(keep=False), "ADRESSE_ID", "duplicate_dwelling")

    first = problems.first_per_row()
    quarantined = np.zeros(len(typed), dtype=bool)
    quarantined[first["position"].to_numpy()] = True
    slots = {source: keys.slots(person.normalised, person.codes) for source, person in person_columns.items()}
    if quarantined.any():
        table = _english_table(spec, typed.loc[~quarantined], {s: p[~quarantined] for s, p in slots.items()}, year)
    else:  # no copy of a million rows when none is quarantined
        table = _english_table(spec, typed, slots, year)
    positions = first["position"].to_numpy()
    quarantine = _quarantine_frame(frame, names, first, {s: keys.pseudonyms(p[positions]) for s, p in slots.items()})
    quality = _quality(len(frame), len(table), first, ignored)
    person_slots = {name: table[name].to_numpy() for name in _person_columns(register)}
    return FileResult(raw.name, register, year, table, quarantine, quality, keys, person_slots)


def _person_columns(register: str) -> list[str]:
    """English names of the person and link columns of a register's output tables."""
    if register == DREAM_STEM:
        return ["person_id"]
    return [column.name for column in REGISTERS[register].columns if column.kind in (PERSON, LINK)]


def _english_table(spec: RegisterSpec, typed: pd.DataFrame, slots: dict[str, np.ndarray], year: int | None) -> pd.DataFrame:
    """The register's English columns; person and link columns hold PersonKeys slots (int32, -1 blank)."""
    out: dict[str, Any] = {}
    for column in spec.columns:
        values = typed[column.source]
        if column.kind in (PERSON, LINK):
            out[column.name] = slots[column.source].astype(np.int32)
        elif column.kind == DATE:
            out[column.name] = pd.array(
                pa.array(values.to_numpy(dtype="datetime64[D]"), type=pa.date32(), from_pandas=True),
                dtype=pd.ArrowDtype(pa.date32()),
            )
        elif column.kind == INTEGER:
            out[column.name] = values.to_numpy("int8") if column.required else values.astype("Int8").array
        elif column.kind == AMOUNT:
            out[column.name] = values.to_numpy("float64")
        else:
            out[column.name] = values.astype(pd.StringDtype("pyarrow")).array
        if column.kind == PERSON and year is not None and spec.stem != "kraf":
            out["year"] = np.full(len(typed), year, dtype="int16")
        if spec.stem == "udda" and column.source == "HFAUDD":
            out["education_group"] = values.str.slice(0, 2).astype("int8").to_numpy()
    return pd.DataFrame(out)


def _quarantine_frame(frame: pd.DataFrame, names: dict[str, str], first: pd.DataFrame,
                      pseudonyms: dict[str, pd.Series]) -> pd.DataFrame:
    """Quarantined rows: source row, column, reason, then the row's contract values as text.

    ``pseudonyms``: by DST name, the person keys of the quarantined rows (in ``first``'s order).
    """
    positions = first["position"].to_numpy()
    out = pd.DataFrame({
        "source_row": positions.astype("int64") + 1,
        "column": pd.array(first["column"].to_numpy(), dtype=pd.StringDtype("pyarrow")),
        "reason": pd.array(first["reason"].to_numpy(), dtype=pd.StringDtype("pyarrow")),
    })
    for source, name in names.items():
        if source in pseudonyms:
            values = pseudonyms[source]
        else:
            values = _as_text(frame[name].iloc[positions])
        out[source] = pd.array(values.to_numpy(dtype=object), dtype=pd.StringDtype("pyarrow"))
    return out


def _quality(rows_read: int, rows_accepted: int, first: pd.DataFrame, ignored: list[str]) -> dict[str, Any]:
    by_reason = first["reason"].value_counts().sort_index()
    quality = {
        "rows_read": int(rows_read),
        "rows_accepted": int(rows_accepted),
        "rows_quarantined": int(len(first)),
        "quarantined_by_reason": {str(reason): int(n) for reason, n in by_reason.items()},
        "ignored_columns": ignored,
    }
    assert quality["rows_read"] == quality["rows_accepted"] + quality["rows_quarantined"], quality
    return quality


# --- DREAM: wide weeks and months to runs -------------------------------------------------------

def ingest_dream(raw: RawRegister, keys: PersonKeys) -> FileResult:
    """DREAM's wide rows become ``benefits`` (runs of one code) and ``employment`` (runs of months).

    Expects ``PNR``, one ``y_YYWW`` column per ISO week (3-digit code or blank) and optional
    ``branche_YYYY_MM`` columns (non-blank: worked that month). Weeks and months must be
    contiguous. Returns ``table`` as ``{"benefits": ..., "employment": ...}``; runs come in file
    order (by source row, then week).
    """
    by_upper = {str(column).strip().upper(): column for column in raw.column_names}
    if "PNR" not in by_upper:
        guess = difflib.get_close_matches("PNR", list(by_upper), n=1, cutoff=0.6)
        hint = f" (found '{by_upper[guess[0]]}'; did you mean it?)" if guess else ""
        raise ExtractError(f"{raw.name}: column 'PNR' is missing{hint}")
    weeks, months, ignored = _dream_columns(raw.column_names, raw.name)
    week_names, month_names = list(weeks), list(months)

    problems = _Problems()
    person, _ = _read_person_column(raw.read_column(by_upper["PNR"]), raw.name, "PNR", None, keys.uses_development_key)
    keys.real_cpr_numbers += person.real_cpr_numbers
    problems.add(~person.present, "PNR", "missing_pnr")
    problems.add(person.malformed, "PNR", "malformed_pnr")
    duplicate = _duplicated(person, ~person.malformed)
    person_problem = ~person.present | person.malformed | duplicate  # known before any week is read

    # A million persons x 680 weeks do not fit in memory at once: the weeks and months are read in
    # row batches, and each batch is reduced to its runs. Every row-level check is row-local, so the
    # runs of all rows are kept and the quarantined rows' runs dropped at the end.
    n = raw.num_rows
    unparsable_at = np.full(n, -1, dtype=np.int64)  # first week column that does not parse
    unknown_rows = np.zeros(n, dtype=bool)
    first_unknown = np.zeros(n, dtype=np.int64)  # first week column with an unknown code
    zero_codes = 0
    benefit_parts: list[tuple[np.ndarray, ...]] = []
    work_parts: list[tuple[np.ndarray, ...]] = []
    quarantined_rows: list[pa.Table] = []
    # week x person (a column is a row), allocated once: fresh pages for every batch cost more than the copying
    week_codes = np.empty((len(weeks), _ROW_BLOCK), dtype=np.int16)
    month_worked = np.empty((len(months), _ROW_BLOCK), dtype=np.int8)
    start = 0
    for batch in raw.row_batches(_ROW_BLOCK):
        rows = slice(start, start + batch.num_rows)
        codes = week_codes[:, :batch.num_rows]
        for j, column in enumerate(weeks.values()):
            codes[j], bad, zeros = _dream_codes(batch.column(column))
            zero_codes += zeros
            if bad.any():
                unparsable_at[rows] = np.where((unparsable_at[rows] < 0) & bad, j, unparsable_at[rows])
        row, first, length, code = _runs(codes)
        unknown = _UNKNOWN_CODE[code]
        persons_with_unknown, first_run = np.unique(row[unknown], return_index=True)
        unknown_rows[start + persons_with_unknown] = True
        first_unknown[start + persons_with_unknown] = first[unknown][first_run]
        benefit_parts.append((row + start, first, length, code))

        worked = month_worked[:, :batch.num_rows]
        for j, column in enumerate(months.values()):
            worked[j] = _worked(batch.column(column))
        row, first, length, _ = _runs(worked)
        work_parts.append((row + start, first, length))

        quarantined = person_problem[rows] | (unparsable_at[rows] >= 0) | unknown_rows[rows]
        quarantined_rows.append(batch.take(pa.array(np.flatnonzero(quarantined), type=pa.int64())))
        start += batch.num_rows

    if n and (unparsable_at >= 0).all():
        raise ExtractError(
            f"{raw.name}: row 1, column '{week_names[unparsable_at[0]]}': DREAM codes cannot be read as numbers in any row"
        )
    for j in np.unique(unparsable_at[unparsable_at >= 0]):
        problems.add(unparsable_at == j, week_names[j], "unparsable_dream_code")
    for j in np.unique(first_unknown[unknown_rows]):
        problems.add(unknown_rows & (first_unknown == j), week_names[j], "unknown_dream_code")
    problems.add(duplicate, "PNR", "duplicate_person")

    first = problems.first_per_row()
    accepted = np.ones(n, dtype=bool)
    accepted[first["position"].to_numpy()] = False
    slots = keys.slots(person.normalised, person.codes)
    week_index = np.array([parse_dream_week_column(name) for name in week_names], dtype=np.int32)
    month_index = [parse_dream_month_column(name) for name in month_names]
    benefits = _runs_frame(benefit_parts, accepted, slots, week_index[0] if len(week_index) else 0,
                           "code", "first_week", "n_weeks")
    employment = _runs_frame(work_parts, accepted, slots, month_index[0] if month_index else 0,
                             None, "first_month", "n_months")

    names = {"PNR": by_upper["PNR"], **{name: name for name in week_names}, **{name: name for name in month_names}}
    positions = first["position"].to_numpy()
    rows = _arrow_to_text_frame(pa.concat_tables(quarantined_rows))
    quarantine = _quarantine_frame(rows, names, first.assign(position=np.arange(len(first))),
                                   {"PNR": keys.pseudonyms(slots[positions])})
    quarantine["source_row"] = positions.astype("int64") + 1
    quality = _quality(n, int(accepted.sum()), first, ignored)
    quality["zero_codes_read_as_blank"] = int(zero_codes)
    quality["first_week"] = int(week_index[0]) if len(week_index) else None
    quality["last_week"] = int(week_index[-1]) if len(week_index) else None
    return FileResult(raw.name, DREAM_STEM, None, {"benefits": benefits, "employment": employment}, quarantine,
                      quality, keys, {"person_id": slots[accepted].astype(np.int32)})


# Codes after _dream_codes are 0 (blank) .. 32767: a table says which of them are unknown
_UNKNOWN_CODE = (np.arange(1 << 15) != 0) & ~is_known(np.arange(1 << 15))


def _dream_columns(columns: Iterable[Any], file_name: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Week columns and month columns (canonical name -> file's name) in time order; ignored names.

    Raises ExtractError for a column that is not a real ISO week or month, or a gap in either.
    """
    weeks: dict[int, tuple[str, Any]] = {}
    months: dict[int, tuple[str, Any]] = {}
    ignored: list[str] = []
    for column in columns:
        name = str(column).strip().lower()
        try:
            if name.startswith("y_"):
                weeks[parse_dream_week_column(name)] = (name, column)
            elif name.startswith("branche_"):
                months[parse_dream_month_column(name)] = (name, column)
            elif name != "pnr":
                ignored.append(str(column))
        except ValueError as error:
            raise ExtractError(f"{file_name}: column '{column}' is not a real ISO week or month ({error})") from None
    if not weeks:
        raise ExtractError(f"{file_name}: no DREAM week columns (y_YYWW) found")
    for label, found in (("week", weeks), ("month", months)):
        if found:
            order = sorted(found)
            gaps = np.flatnonzero(np.diff(order) != 1)
            if len(gaps):
                before, after = found[order[gaps[0]]][0], found[order[gaps[0] + 1]][0]
                raise ExtractError(
                    f"{file_name}: the {label} columns jump from '{before}' to '{after}' "
                    f"({order[gaps[0] + 1] - order[gaps[0]] - 1} {label}(s) missing)"
                )
    week_columns = {found[0]: found[1] for _, found in sorted(weeks.items())}
    month_columns = {found[0]: found[1] for _, found in sorted(months.items())}
    return week_columns, month_columns, ignored


def _dream_codes(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """(codes as int16 with 0 for blank, mask of unparsable values, number of zeros read as blank)."""
    if pa.types.is_integer(values.type):  # the usual case, kept in integers all the way
        number = _integers_or_zero(values)
        bad = (number < 0) | (number > 32767)
        zeros = int(np.count_nonzero(number == 0)) - values.null_count  # blanks were filled with 0
        if bad.any():
            number = np.where(bad, 0, number)
        return number.astype(np.int16, copy=False), bad, zeros
    if pa.types.is_floating(values.type):
        number = np.asarray(pc.fill_null(values, np.nan).to_numpy(), dtype="float64")
        bad = ~np.isnan(number) & ((number != np.round(number)) | (number < 0) | (number > 32767))
    else:
        text = _as_text(values.to_pandas())
        number = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        present = text.notna().to_numpy()
        bad = present & (np.isnan(number) | (number != np.round(number)) | (number < 0) | (number > 32767))
    codes = np.where(np.isnan(number) | bad, 0, number).astype(np.int16)
    zeros = int(((number == 0) & ~bad).sum())
    return codes, bad, zeros


def _integers_or_zero(values: pa.ChunkedArray) -> np.ndarray:
    """An Arrow integer column as a numpy array of its own type, 0 where blank.

    Reads each chunk's value buffer and validity bitmap directly: Arrow's fill_null costs about
    eight times more, and DREAM holds a billion week values at a million persons.
    """
    dtype = np.dtype(values.type.to_pandas_dtype())
    parts = [np.zeros(0, dtype=dtype)]
    for chunk in values.chunks:
        if not len(chunk):
            continue
        number = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        if chunk.null_count:
            bits = np.unpackbits(np.frombuffer(chunk.buffers()[0], dtype=np.uint8), count=chunk.offset + len(chunk),
                                 bitorder="little")
            number = np.where(bits[chunk.offset:].view(bool), number, 0)
        parts.append(number)
    return np.concatenate(parts)


def _worked(values: pa.ChunkedArray) -> np.ndarray:
    """Non-blank ``branche`` values: the person had work that month."""
    if pa.types.is_dictionary(values.type) or is_text_type(values.type):
        text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        return _mask(pc.and_(pc.is_valid(text), pc.not_equal(text, "")))
    return _mask(pc.is_valid(values))


def _arrow_to_text_frame(table: pa.Table) -> pd.DataFrame:
    return pd.DataFrame({name: _as_text(table.column(name).to_pandas()) for name in table.column_names})


def _runs(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of identical non-zero values along each column of ``matrix`` (consecutive periods x persons).

    Returns ``(person, first period, length, value)`` per run, ordered by person, then period.
    """
    periods, persons = matrix.shape
    changed = np.empty(matrix.shape, dtype=bool)  # a run starts in the first period and at every change
    changed[:1] = True
    np.not_equal(matrix[1:], matrix[:-1], out=changed[1:])
    where = np.flatnonzero(changed)  # one index array: half the work of np.nonzero's two
    del changed
    period, person = where // persons, where % persons
    order = np.argsort(person * periods + period)  # the keys are distinct: no need for a stable sort
    period, person = period[order], person[order]
    value = matrix[period, person]
    # a run lasts until the person's next run starts, or to the last period
    end = np.full(len(period), periods, dtype=period.dtype)
    same_person = person[1:] == person[:-1]
    end[:-1][same_person] = period[1:][same_person]
    keep = value != 0
    return person[keep], period[keep], (end - period)[keep], value[keep]


def _runs_frame(parts: list[tuple[np.ndarray, ...]], accepted: np.ndarray, slots: np.ndarray,
                first_index: int, value_name: str | None, start_name: str, length_name: str) -> pd.DataFrame:
    """The accepted rows' runs as a table: ``person_id`` (PersonKeys slot, int32), ``value_name``
    (int16, when given), ``start_name`` (int32), ``length_name`` (int16).

    ``parts``: ``(row, first period, length[, value])`` per batch from :func:`_runs`, rows counted
    in the file; ``slots``: each row's person.
    """
    row, first, length = (np.concatenate([part[i] for part in parts]) for i in range(3))
    keep = accepted[row]
    out = {"person_id": slots[row[keep]].astype(np.int32)}
    if value_name:
        out[value_name] = np.concatenate([part[3] for part in parts])[keep].astype(np.int16)
    out[start_name] = (first[keep] + first_index).astype(np.int32)
    out[length_name] = length[keep].astype(np.int16)
    return pd.DataFrame(out)
