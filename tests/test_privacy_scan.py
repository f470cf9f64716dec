"""The identifier scan and the k-anonymity check (lyskegle.privacy) and the scan's file walker.

Every CPR-shaped number here uses a synthetic day of month (61-91), never a real person's.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyskegle import identifier_scan, io, privacy
from lyskegle.pseudonym import DEVELOPMENT_KEY, pseudonyms_of_normalised
from lyskegle.privacy import (
    CPR_SHAPED,
    EXTRACT_PNR,
    extract_identifiers,
    extract_identifiers_of,
    find_identifiers,
    find_identifiers_in_bytes,
    scan_blocks,
    scan_integers,
    scan_strings,
    small_equivalence_classes,
)

SYNTHETIC_CPR = "6101701234"  # day 61: synthetic


def test_cpr_shaped_numbers_are_found_with_and_without_dash():
    text = "a;6101701234;b\nc;910285-4321;d"
    assert find_identifiers(text) == [(2, CPR_SHAPED), (17, CPR_SHAPED)]


def test_numbers_that_are_not_cpr_shaped_are_not_hits():
    # day 60 and 92, month 13, 11 digits, inside a hexadecimal run id, the tail of a float
    text = "6001701234 9201701234 6113701234 61017012345 a6101701234f 0.6101701234"
    assert find_identifiers(text) == []


def test_raw_pnr_values_of_the_extract_are_found_even_when_not_cpr_shaped():
    # on DST machines PNR is already an opaque id; it must not leak either
    known = extract_identifiers(["QX7ZK2PA", "6101701234"])
    hits = find_identifiers("x QX7ZK2PA y QX7ZK2PAB 610170-1234", known)
    assert hits == [(2, EXTRACT_PNR), (23, EXTRACT_PNR)]  # the longer token is another value


def test_the_known_values_are_held_as_digests_only():
    known = extract_identifiers(["6101701234"])
    assert known.size == 1 and all(b"6101701234" not in digest for digest in known.digests)


def test_a_number_split_across_two_blocks_is_found_once_at_its_byte_offset():
    data = b" " * 95 + SYNTHETIC_CPR.encode() + b";" * 301
    blocks = [data[i:i + 100] for i in range(0, len(data), 100)]
    assert scan_blocks(blocks) == [(95, CPR_SHAPED)]
    assert scan_blocks([data]) == [(95, CPR_SHAPED)]


def test_a_number_at_the_start_of_a_file_read_in_small_blocks_is_found():
    data = SYNTHETIC_CPR.encode() + b";" + b" " * 30
    assert scan_blocks([data[i:i + 7] for i in range(0, len(data), 7)]) == [(0, CPR_SHAPED)]


def test_a_longer_digit_run_split_across_blocks_is_not_a_hit():
    data = b" " * 90 + b"610170123456789" + b";" * 200  # 15 digits: not a CPR number
    assert scan_blocks([data[i:i + 100] for i in range(0, len(data), 100)]) == []


def test_scan_strings_names_the_value_that_holds_the_number():
    values = ["p3k5", None, f"note {SYNTHETIC_CPR}", "", "clean"]
    assert scan_strings(values) == [(2, CPR_SHAPED)]


def test_integers_of_cpr_length_are_scanned_as_ten_digit_text():
    # 101701234 is 0101701234 stored as a number: its leading zero is gone
    values = np.array([6101701234, 12, 2015, 101701234, 6101701234, 99], dtype="int64")
    assert scan_integers(values) == [(0, CPR_SHAPED), (3, CPR_SHAPED), (4, CPR_SHAPED)]
    assert scan_integers(np.array([12, 2015], dtype="int64")) == []


def test_a_repeated_value_is_reported_at_every_row_that_holds_it():
    values = pa.array(["x", f"id {SYNTHETIC_CPR}", "y", f"id {SYNTHETIC_CPR}", None, "QX7ZK2PA"], type=pa.large_string())
    known = extract_identifiers(["QX7ZK2PA"])
    assert scan_strings(values, known) == [(1, CPR_SHAPED), (3, CPR_SHAPED), (5, EXTRACT_PNR)]


def test_digit_pnr_values_do_not_make_every_id_of_their_length_a_candidate():
    digits = extract_identifiers([SYNTHETIC_CPR, "1234567890"])
    letters = extract_identifiers([SYNTHETIC_CPR, "QX7ZK2PA12"])
    assert digits.digits_only and not letters.digits_only
    assert find_identifiers("A123456789 1234567890", digits) == [(11, EXTRACT_PNR)]
    assert find_identifiers("QX7ZK2PA12 A123456789", letters) == [(0, EXTRACT_PNR)]


# Pieces that make texts full of near misses: CPR numbers with and without dash, a decimal point
# or letter beside them, longer digit runs, PNR-like tokens, Arabic-Indic digits, line breaks.
_PIECES = [SYNTHETIC_CPR, "610170-1234", "9102854321", "0.", ".", "a", "Z", "-", " ", ";", "\n", "12", "123",
           "QX7ZK2PA", "1234567890", "12345", "\u0666\u0661", "\u00e6", "x" * 70]
_KNOWN = extract_identifiers(["QX7ZK2PA", "1234567890", "9102854321"])
# an extract of digits only, one id shorter than a CPR number's first six digits (then a run of
# five digits may be a hit: the byte prefilter must look for runs that short)
_KNOWN_DIGITS = extract_identifiers(["1234567890", "9102854321", "12345"])


def _reference_scan_strings(values, known):
    """The scan before the Arrow prefilter: every value joined and scanned in Python."""
    texts = ["" if v is None else v for v in values]
    ends = np.cumsum([len(t) + 1 for t in texts])
    hits = {}
    for offset, kind in find_identifiers("\n".join(texts), known):
        hits.setdefault(int(np.searchsorted(ends, offset, side="right")), kind)
    return sorted(hits.items())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), max_size=25),
       st.sampled_from([None, _KNOWN, _KNOWN_DIGITS]), st.integers(0, 25))
def test_the_fast_scans_find_exactly_what_the_plain_regular_expressions_find(values, known, cut):
    data = "".join(values).encode("utf-8")
    expected = find_identifiers(data.decode("latin-1"), known)
    assert find_identifiers_in_bytes(data, known) == expected
    with pytest.MonkeyPatch.context() as patch:  # windows even where runs are dense
        patch.setattr(privacy, "_DENSE_BYTES", 0)
        assert find_identifiers_in_bytes(data, known) == expected
    assert scan_strings(values, known) == _reference_scan_strings(values, known)
    assert scan_strings(pa.array(values, type=pa.large_string()), known) == _reference_scan_strings(values, known)
    # in chunks that are slices of one array (as Parquet batches come), with 32-bit offsets too
    for kind in (pa.string(), pa.large_string()):
        whole = pa.array([*values, None], type=kind)
        chunked = pa.chunked_array([whole.slice(0, cut), whole.slice(cut)], type=kind)
        assert scan_strings(chunked, known) == _reference_scan_strings([*values, None], known)
    with pytest.MonkeyPatch.context() as patch:  # every array through its distinct values, nulls too
        patch.setattr(privacy, "FEW_DISTINCT_MIN_ROWS", 1)
        with_null = [*values, None]
        assert (scan_strings(pa.array(with_null, type=pa.large_string()), known)
                == _reference_scan_strings(with_null, known))


def test_digit_runs_close_together_are_each_found_window_by_window(monkeypatch):
    monkeypatch.setattr(privacy, "_DENSE_BYTES", 0)  # windows, however dense the runs
    known = extract_identifiers(["12345"])  # shorter than a CPR number's first six digits
    dashed = f"{SYNTHETIC_CPR[:6]}-{SYNTHETIC_CPR[6:]}"
    text = ";".join(["x 12345", " 12345", "12345", "y12345", "a.12345", dashed, f"{dashed}7", "x"])
    assert find_identifiers_in_bytes(text.encode(), known) == find_identifiers(text, known)
    assert len(find_identifiers(text, known)) == 5
    # a digit right after the last group: no CPR number there
    assert find_identifiers_in_bytes(text.encode()) == find_identifiers(text) == [(text.index(dashed), CPR_SHAPED)]


def test_a_missing_value_is_no_hit_even_with_a_number_behind_its_slot():
    # Arrow lets a null slot span bytes; what they hold is not a value of the column
    text = f"abc{SYNTHETIC_CPR}x{SYNTHETIC_CPR}".encode()
    offsets = np.array([0, 3, 13, 14, 24], dtype="int32")
    validity = pa.array([True, False, True, True]).buffers()[1]
    array = pa.Array.from_buffers(pa.string(), 4, [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(text)])
    assert array.to_pylist() == ["abc", None, "x", SYNTHETIC_CPR]
    assert scan_strings(array) == [(3, CPR_SHAPED)]


def test_a_long_column_of_few_codes_is_scanned_through_its_distinct_values(monkeypatch):
    rng = np.random.default_rng(2)
    codes = np.array(["5100", "5466", "0461", "G", "U", None, SYNTHETIC_CPR, "1234567890"], dtype=object)
    values = list(codes[rng.choice(len(codes), size=200_000, p=[0.3, 0.3, 0.3, 0.05, 0.0498, 0.0001, 0.00005, 0.00005])])
    array = pa.array(values, type=pa.large_string())
    through = []
    monkeypatch.setattr(privacy, "_scan_dictionary",
                        lambda encoded, known: through.append(len(encoded.dictionary)) or scan_dictionary(encoded, known))
    found = scan_strings(array, _KNOWN)
    assert through == [len(set(values) - {None})]  # the distinct values (not null), once
    assert found == _reference_scan_strings(values, _KNOWN)
    assert {kind for _, kind in found} == {CPR_SHAPED, EXTRACT_PNR} and len(found) > 2


scan_dictionary = privacy._scan_dictionary


def test_ids_of_a_table_sorted_by_person_are_not_taken_for_few_codes():
    persons = [f"p{i:016d}" for i in range(20_000)]
    by_person = pa.array([p for p in persons for _ in range(12)], type=pa.large_string())  # 12 years each
    assert not privacy._few_distinct(by_person)
    assert privacy._few_distinct(pa.array(["461", "751", None] * 30_000, type=pa.large_string()))
    assert not privacy._few_distinct(pa.array(["461"] * 1000, type=pa.large_string()))  # short: scanned as it is


def test_small_equivalence_classes_count_distinct_persons_per_combination():
    frame = pd.DataFrame({
        "person_id": ["a", "a", "b", "c", "d", "e", "f"],
        "sex": ["1", "1", "1", "1", "2", "2", "2"],
        "area": ["X", "X", "X", "X", "X", "X", None],
    })
    # (1, X) holds persons a, b, c (a twice) = 3; (2, X) holds d, e = 2; (2, missing) holds f = 1
    found = small_equivalence_classes(frame, ["sex", "area"], k=3, person_column="person_id")
    assert found == {"classes": 3, "classes_below_k": 2, "rows_in_small_classes": 3}


def test_k_anonymity_of_an_unknown_column_is_a_clear_error():
    with pytest.raises(KeyError, match="audit_sex"):
        small_equivalence_classes(pd.DataFrame({"sex": [1]}), ["audit_sex"], k=5)


@pytest.fixture
def written_outputs(tmp_path):
    """A data/, reports/ and MLflow-like tree with a CPR number planted in a CSV, a Parquet string
    column and a JSON file, and clean files beside them."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "table.csv").write_text(f"group;persons\nA;40\n{SYNTHETIC_CPR};12\n", encoding="utf-8")
    (tmp_path / "reports" / "clean.csv").write_text("group;persons\nA;40\n", encoding="utf-8")
    io.write_json({"run": "a6101701234f", "auc": 0.6101701234}, tmp_path / "reports" / "clean.json")
    io.write_json({"note": f"person 910285-{SYNTHETIC_CPR[-4:]}"}, tmp_path / "mlartifacts" / "run" / "audit.json")
    frame = pd.DataFrame({"person_id": [f"p{i:03d}" for i in range(500)] + [SYNTHETIC_CPR], "week": np.arange(501)})
    io.write_parquet(frame, tmp_path / "data" / "features" / "leaky.parquet")
    io.write_parquet(frame.iloc[:500], tmp_path / "data" / "features" / "clean.parquet")
    io.write_parquet(frame.iloc[:500], tmp_path / "data" / "synthetic" / "excluded.parquet")
    (tmp_path / "data" / "synthetic" / "bef2020.csv").write_text(f"PNR;KOEN\n{SYNTHETIC_CPR};1\n", encoding="utf-8")
    return tmp_path


def test_the_sizes_and_offsets_it_records_are_never_found_by_the_next_scan():
    """A ten-digit byte count (1-10 GB scanned) often reads as a CPR number: the scan of a million
    persons' outputs recorded 1608497076 bytes, and the other target's audit failed on it. A hit's
    byte offset past the first gigabyte would do the same."""
    size = 1_608_497_076
    assert privacy.find_identifiers(json.dumps({"bytes": size, "where": f"byte {size}"}))  # the old record
    assert identifier_scan.scanned_megabytes(size) == 1608.5
    assert identifier_scan.byte_location(size) == "byte 1,608,497,076" and identifier_scan.byte_location(19) == "byte 19"
    for size in range(1_000_000_000, 10_000_000_000, 7_777_777):
        record = {"megabytes": identifier_scan.scanned_megabytes(size), "where": identifier_scan.byte_location(size)}
        assert not privacy.find_identifiers(json.dumps(record))


def test_the_package_code_holds_nothing_the_scan_would_find():
    """MLflow keeps a copy of the package with every logged model, and the audits scan the artifact
    store: a CPR-shaped example number in a docstring failed every audit of the 50k pipeline."""
    package = Path(identifier_scan.__file__).parent
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        assert not privacy.find_identifiers(path.read_text(errors="replace")), path


def test_the_walker_names_each_file_with_a_planted_number(written_outputs):
    stage = identifier_scan
    root = written_outputs
    record = stage.scan_outputs([root / "data", root / "reports", root / "mlartifacts", root / "mlflow.db"],
                                [root / "data" / "synthetic"], None)
    by_file = {Path(hit["file"]).relative_to(root).as_posix(): hit for hit in record["files_with_hits"]}
    assert sorted(by_file) == ["data/features/leaky.parquet", "mlartifacts/run/audit.json", "reports/table.csv"]
    assert by_file["reports/table.csv"]["where"] == ["byte 19"]
    assert "column person_id, row 500" in by_file["data/features/leaky.parquet"]["where"]
    assert record["files"] == 6 and record["roots_missing"] == [str(root / "mlflow.db")]
    assert record["passed"] is False


def test_files_scanned_two_at_a_time_give_the_same_record_in_the_walkers_order(written_outputs):
    root = written_outputs
    roots, exclude = [root / "data", root / "reports", root / "mlartifacts"], [root / "data" / "synthetic"]
    one_by_one = identifier_scan.scan_outputs(roots, exclude, None, threads=1)
    two_at_a_time = identifier_scan.scan_outputs(roots, exclude, None, threads=2)
    assert two_at_a_time == one_by_one
    walked = [str(p) for p in identifier_scan.files_to_scan(roots, exclude)]
    hit_files = [hit["file"] for hit in two_at_a_time["files_with_hits"]]
    assert len(hit_files) == 3 and hit_files == [p for p in walked if p in hit_files]


def test_a_cpr_number_stored_as_an_integer_in_parquet_is_found_at_its_row(tmp_path):
    # 101701234 is 0101701234 without its leading zero; rows past the first batch are numbered on
    frame = pd.DataFrame({"amount": np.arange(2_000_000, dtype="int64"), "code": ["x"] * 2_000_000})
    frame.loc[3, "amount"] = 101701234
    frame.loc[1_500_000, "code"] = f"note {SYNTHETIC_CPR}"
    io.write_parquet(frame, tmp_path / "numbers.parquet")
    hits = identifier_scan.scan_file(tmp_path / "numbers.parquet", None)
    assert [h["where"] for h in hits if h["where"].startswith("column")] == [
        "column amount, row 3", "column code, row 1500000"]


def test_parquet_text_columns_are_scanned_whatever_their_arrow_type_and_floats_are_not_read(tmp_path, monkeypatch):
    frame = pd.DataFrame({"share": np.linspace(0, 1, 6), "band": pd.Categorical(["a", "b"] * 3),
                          "note": ["x"] * 6, "year": np.arange(2015, 2021, dtype="int16")})
    frame.loc[4, "band"] = "a"
    frame["band"] = frame["band"].cat.add_categories([SYNTHETIC_CPR])
    frame.loc[5, "band"] = SYNTHETIC_CPR
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(2, "note", table.column("note").cast(pa.large_string()))
    assert pa.types.is_dictionary(table.schema.field("band").type)
    pq.write_table(table, tmp_path / "mixed.parquet")
    read = []
    iter_batches = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches",
                        lambda self, *a, **k: (read.extend(b.schema.names) or b for b in iter_batches(self, *a, **k)))
    assert [(name, first) for name, first, _ in io.parquet_value_batches(tmp_path / "mixed.parquet")] == [
        ("band", 0), ("note", 0), ("year", 0)]
    assert read == ["band", "note", "year"]
    hits = identifier_scan.scan_file(tmp_path / "mixed.parquet", None)
    assert [h["where"] for h in hits if h["where"].startswith("column")] == ["column band, row 5"]


def test_the_walker_reports_no_hit_value_only_where_it_is(written_outputs):
    stage = identifier_scan
    record = stage.scan_outputs([written_outputs / "reports"], [], None)
    assert SYNTHETIC_CPR not in json.dumps(record)


def test_extract_pnr_values_are_read_from_every_register_file(written_outputs):
    stage = identifier_scan
    known = stage.extract_pnr_values(written_outputs / "data" / "synthetic")
    assert known.size == 1
    assert find_identifiers(f"x {SYNTHETIC_CPR}", known) == [(2, EXTRACT_PNR)]


def test_privacy_checks_use_digests_read_before_and_do_not_read_the_extract_again(written_outputs, monkeypatch):
    root = written_outputs
    known = identifier_scan.extract_pnr_values(root / "data" / "synthetic")
    monkeypatch.setattr(identifier_scan, "extract_pnr_values", lambda folder: pytest.fail("read the extract again"))
    roots, exclude = [root / "data", root / "reports", root / "mlartifacts"], [root / "data" / "synthetic"]
    checks, reasons = identifier_scan.privacy_checks(roots, exclude, root / "data" / "synthetic", 5, known=known)
    assert checks["identifier_scan"]["extract_pnr_values"] == known.size == 1
    # the PNR hidden in a hex-like word is found only with the extract's own values
    assert "reports/clean.json" in _hits_by_file(checks["identifier_scan"], root)
    assert any("clean.json" in reason for reason in reasons["identifier_scan"])


def test_the_identifiers_ingest_records_are_pseudonyms_usable_only_with_the_same_key(tmp_path):
    values = pa.array(["610170-1234", "6101701235", None, "6101701234", "QX7ZK2PA"])
    path = tmp_path / "extract_identifiers.parquet"
    io.write_arrow_parquet(identifier_scan.recorded_identifiers(extract_identifiers_of(values, DEVELOPMENT_KEY)), path)
    known = identifier_scan.read_recorded_identifiers(path, DEVELOPMENT_KEY)
    assert known.size == 3 and known.lengths == {8, 10} and not known.digits_only
    assert known == extract_identifiers(["6101701234", "6101701235", "QX7ZK2PA"], DEVELOPMENT_KEY)
    # read from the sorted file, the digests come joined as a scan cache keys by them
    assert known.joined() == b"".join(sorted(known.digests)) and known.sorted_joined is not None
    table = identifier_scan.recorded_identifiers(extract_identifiers_of(values, DEVELOPMENT_KEY))
    wide = tmp_path / "wide.parquet"  # the same column with 64-bit offsets joins the same
    io.write_arrow_parquet(table.cast(pa.schema([pa.field("pseudonym", pa.large_string())], metadata=table.schema.metadata)), wide)
    assert identifier_scan.read_recorded_identifiers(wide, DEVELOPMENT_KEY).joined() == known.joined()
    hits = find_identifiers("a QX7ZK2PA b 610170-1235 c 6101701236", known)
    assert [(offset, kind) for offset, kind in hits if kind == EXTRACT_PNR] == [(2, EXTRACT_PNR), (13, EXTRACT_PNR)]
    # the file holds pseudonyms, never a value, and nothing a scan would take for one
    stored = pq.read_table(path).column("pseudonym").to_pylist()
    assert stored == sorted(pseudonyms_of_normalised(["6101701234", "6101701235", "QX7ZK2PA"], DEVELOPMENT_KEY).to_pylist())
    assert identifier_scan.scan_file(path, known) == []
    # another key cannot test a value against them: the stage reads the extract instead
    assert identifier_scan.read_recorded_identifiers(path, b"another key of at least 16 bytes") is None
    assert identifier_scan.read_recorded_identifiers(tmp_path / "missing.parquet", DEVELOPMENT_KEY) is None
    with pytest.raises(ValueError, match="only identifiers keyed"):
        identifier_scan.recorded_identifiers(extract_identifiers_of(values))


def test_a_stage_with_another_key_than_ingest_reads_the_extract_itself(written_outputs, monkeypatch):
    root = written_outputs
    recorded = root / "data" / "ingested" / "extract_identifiers.parquet"
    synthetic = root / "data" / "synthetic"
    known = identifier_scan.extract_pnr_values(synthetic, DEVELOPMENT_KEY)
    io.write_arrow_parquet(identifier_scan.recorded_identifiers(known), recorded)
    io.write_json({"synthetic": True}, synthetic / io.EXTRACT_MARKER)
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY_FILE", raising=False)
    assert identifier_scan.stage_identifiers(recorded, synthetic, allow_development_key=True).key == DEVELOPMENT_KEY
    # the development key is not this stage's: no key at all, or another one in the environment
    assert identifier_scan.stage_identifiers(recorded, synthetic, allow_development_key=False) is None
    monkeypatch.setenv("LYSKEGLE_PSEUDONYM_KEY", "another key of at least 16 bytes")
    assert identifier_scan.stage_identifiers(recorded, synthetic, allow_development_key=True) is None


def _scan_stage():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scan_stage", Path(__file__).resolve().parents[1] / "pipelines" / "scan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("recorded", [False, True], ids=["extract-read", "recorded-by-ingest"])
def test_the_final_scan_stage_catches_a_pnr_in_a_page_written_after_the_audit(written_outputs, recorded, monkeypatch):
    root = written_outputs
    (root / "params.yaml").write_text(
        "extract:\n  path: null\nprivacy:\n  min_cell: 5\naudit:\n  fail_on_violation: true\n", encoding="utf-8")
    # clean.json holds the PNR inside a hex-like word: not CPR-shaped, but the raw value all the same
    for leaky in ("reports/table.csv", "reports/clean.json", "data/features/leaky.parquet", "mlartifacts/run/audit.json"):
        (root / leaky).unlink()
    argv = ["--params", str(root / "params.yaml"), "--synthetic", str(root / "data" / "synthetic"),
            "--scan", str(root / "data"), "--scan", str(root / "reports"), "--scan", str(root / "mlartifacts"),
            "--out", str(root / "reports" / "privacy_scan.json")]
    if recorded:  # the extract's values as ingest recorded them, not read from the extract again
        (root / "params.yaml").write_text((root / "params.yaml").read_text() + "ingest:\n  allow_development_key: true\n")
        io.write_json({"synthetic": True}, root / "data" / "synthetic" / io.EXTRACT_MARKER)
        known = identifier_scan.extract_pnr_values(root / "data" / "synthetic", DEVELOPMENT_KEY)
        path = root / "data" / "ingested" / "extract_identifiers.parquet"
        io.write_arrow_parquet(identifier_scan.recorded_identifiers(known), path)
        argv += ["--extract-identifiers", str(path)]
        monkeypatch.setattr(identifier_scan, "extract_pnr_values", lambda *a: pytest.fail("read the extract again"))
    assert _scan_stage().main(argv) == 0
    assert io.read_json(root / "reports" / "privacy_scan.json")["passed"] is True

    page = root / "reports" / "exit_26w" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f"<p>borger {SYNTHETIC_CPR}</p>", encoding="utf-8")
    assert _scan_stage().main(argv) == 1
    result = io.read_json(root / "reports" / "privacy_scan.json")
    assert result["passed"] is False
    assert any("exit_26w/index.html" in reason for reason in result["reasons"])
    assert SYNTHETIC_CPR not in json.dumps(result)


def _hits_by_file(record: dict, root: Path) -> dict[str, dict]:
    return {Path(hit["file"]).relative_to(root).as_posix(): hit for hit in record["files_with_hits"]}


def test_the_scan_cache_reuses_findings_only_for_unchanged_contents(written_outputs, tmp_path_factory):
    root, cache_folder = written_outputs, tmp_path_factory.mktemp("scan-cache")
    known = identifier_scan.extract_pnr_values(root / "data" / "synthetic")
    roots, exclude = [root / "data", root / "reports", root / "mlartifacts"], [root / "data" / "synthetic"]
    uncached = identifier_scan.scan_outputs(roots, exclude, known)

    first = identifier_scan.scan_outputs(roots, exclude, known, identifier_scan.ScanCache(cache_folder, known))
    second = identifier_scan.scan_outputs(roots, exclude, known, identifier_scan.ScanCache(cache_folder, known))
    assert first["files_from_cache"] == 0 and second["files_from_cache"] == second["files"] == 6
    assert first["files_with_hits"] == second["files_with_hits"] == uncached["files_with_hits"]

    # a clean file that now holds a CPR number is scanned again, not taken from the cache
    (root / "reports" / "clean.csv").write_text(f"group;persons\nA;40\nB;{SYNTHETIC_CPR}\n", encoding="utf-8")
    third = identifier_scan.scan_outputs(roots, exclude, known, identifier_scan.ScanCache(cache_folder, known))
    assert third["files_from_cache"] == 5
    assert _hits_by_file(third, root)["reports/clean.csv"]["where"] == ["byte 21"]
    # entries hold where and what kind, never the value
    entries = [p.read_text() for p in cache_folder.rglob("*.json")]
    assert entries and not any(SYNTHETIC_CPR in e or SYNTHETIC_CPR[:6] in e for e in entries)


def test_the_scan_cache_misses_when_the_identifiers_or_the_reading_differ(written_outputs, tmp_path_factory):
    root, cache_folder = written_outputs, tmp_path_factory.mktemp("scan-cache")
    known = identifier_scan.extract_pnr_values(root / "data" / "synthetic")
    reports = [root / "reports"]
    # clean.json holds the raw PNR inside a hex-like word: a hit only when this extract's values are
    # known, not another extract's values of the same length
    other = extract_identifiers(["6101709999"])
    without = identifier_scan.scan_outputs(reports, [], other, identifier_scan.ScanCache(cache_folder, other))
    assert "reports/clean.json" not in _hits_by_file(without, root)
    with_known = identifier_scan.scan_outputs(reports, [], known, identifier_scan.ScanCache(cache_folder, known))
    assert with_known["files_from_cache"] == 0
    assert _hits_by_file(with_known, root)["reports/clean.json"]["kinds"] == [EXTRACT_PNR]

    # the same bytes as .parquet are decoded column by column; as .bin they are only bytes
    leaky = (root / "data" / "features" / "leaky.parquet").read_bytes()
    (root / "other").mkdir()
    (root / "other" / "leaky.bin").write_bytes(leaky)
    (root / "other" / "leaky.parquet").write_bytes(leaky)
    record = identifier_scan.scan_outputs([root / "other"], [], known, identifier_scan.ScanCache(cache_folder, known))
    assert record["files_from_cache"] == 0
    assert "column person_id, row 500" in _hits_by_file(record, root)["other/leaky.parquet"]["where"]


def test_a_cache_warmed_before_the_last_files_are_written_leaves_the_closing_scan_only_those(
        written_outputs, tmp_path_factory, monkeypatch):
    root, cache_folder = written_outputs, tmp_path_factory.mktemp("scan-cache")
    known = identifier_scan.extract_pnr_values(root / "data" / "synthetic")
    roots, exclude = [root / "data", root / "reports", root / "mlartifacts"], [root / "data" / "synthetic"]
    assert identifier_scan.warm_scan_cache(roots, exclude, known, identifier_scan.ScanCache(cache_folder, known)) == 6
    (root / "reports" / "late.csv").write_text(f"group;persons\nB;{SYNTHETIC_CPR}\n", encoding="utf-8")

    scanned, digested = [], []
    content_hits, file_digest = identifier_scan._content_hits, identifier_scan.hashlib.file_digest
    monkeypatch.setattr(identifier_scan, "_content_hits",
                        lambda path, known: scanned.append(path.name) or content_hits(path, known))
    monkeypatch.setattr(identifier_scan.hashlib, "file_digest",
                        lambda handle, digest: digested.append(Path(handle.name).name) or file_digest(handle, digest))
    closing = identifier_scan.scan_outputs(roots, exclude, known, identifier_scan.ScanCache(cache_folder, known))
    # the files there before are neither scanned nor read for their digests again
    assert scanned == digested == ["late.csv"]
    assert closing["files"] == 7 and closing["files_from_cache"] == 6
    monkeypatch.undo()
    assert closing == {**identifier_scan.scan_outputs(roots, exclude, known), "files_from_cache": 6}


def test_a_file_rewritten_with_other_bytes_of_the_same_length_gets_a_new_digest(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("group;persons\nA;40\n", encoding="utf-8")
    first = identifier_scan.content_digest(path)
    path.write_text("group;persons\nB;41\n", encoding="utf-8")  # the same size, in place
    assert identifier_scan.content_digest(path) != first
    assert identifier_scan.content_digest(path) == identifier_scan.hashlib.blake2b(path.read_bytes(), digest_size=32).digest()


_ID_PIECES = ["6101701234", "610170-1234", "QX7ZK2PA", "0123", "123", "-", " ", "\t", "\x1c", "\u00a0", "\u0661\u0662",
              "abc-def", "x" * 70, "", "æ", "1234567890"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.sampled_from(_ID_PIECES), min_size=1, max_size=3).map("".join)),
                max_size=30))
def test_extract_identifiers_of_an_arrow_array_equals_the_python_path(values):
    # whitespace (ASCII, \x1c, no-break space), Arabic-Indic digits, dashes, tokens over 64
    # characters: the values Arrow does not normalise itself must give the same digests too
    assert extract_identifiers_of(pa.array(values, type=pa.string())) == extract_identifiers(values)


def test_extract_identifiers_of_plain_ids_normalises_dashed_cpr_numbers():
    found = extract_identifiers_of(pa.array(["610170-1234", "6101701234", "QX7ZK2PA", None]))
    assert found.size == 2 and found.lengths == {8, 10} and not found.digits_only
    assert extract_identifiers_of(pa.array(["610170-1234"])).digits_only


def _pages_with_ten_ones(path: Path, column: str = "x") -> None:
    """A Parquet file whose page bytes hold ``1111111111`` (a CPR number's shape) between spaces,
    while its decoded values are four small floats: what compressed pages can hold by chance."""
    words = np.array([0x20202020, 0x31313131, 0x31313131, 0x20203131], dtype="<u4")
    table = pa.table({column: pa.array(words.view("<f4"))})
    pq.write_table(table, path, compression="none", use_dictionary=False)
    assert b" 1111111111 " in path.read_bytes()[:io.parquet_footer_offset(path)]


def test_a_cpr_shape_in_parquet_page_bytes_is_not_a_hit_but_an_extract_pnr_there_is(tmp_path):
    _pages_with_ten_ones(tmp_path / "pages.parquet")
    assert identifier_scan.scan_file(tmp_path / "pages.parquet", None) == []
    known = privacy.extract_identifiers(["1111111111"])
    hits = identifier_scan.scan_file(tmp_path / "pages.parquet", known)
    assert [hit["kind"] for hit in hits] == [privacy.EXTRACT_PNR]


def test_a_cpr_number_in_a_parquet_footer_is_a_hit(tmp_path):
    _pages_with_ten_ones(tmp_path / "named.parquet", column=f"note {SYNTHETIC_CPR}")
    hits = identifier_scan.scan_file(tmp_path / "named.parquet", None)
    footer = io.parquet_footer_offset(tmp_path / "named.parquet")
    assert hits and all(hit["kind"] == privacy.CPR_SHAPED for hit in hits)
    assert all(int(hit["where"].split()[1]) >= footer for hit in hits)


def test_the_footer_offset_of_a_file_that_is_not_parquet_is_a_clear_error(tmp_path):
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ValueError, match="fake.parquet: not a Parquet file"):
        io.parquet_footer_offset(tmp_path / "fake.parquet")
