"""Ingest on the tiny hand-made extract (tests/data/extract_tiny, written by make_bad_extracts.py).

Six persons P1..P6 (synthetic CPR numbers, day-of-month 61-91). DREAM covers ISO weeks 2019-50 to
2020-03 and the months December 2019 and January 2020:

    P1  131 131  .  891  .   .    work: -    Jan      P4  131 651 651 131  .   .
    P2   .   .   .   .   .   .    work: Dec  Jan      P5   .   .   .   .   .  997
    P3  783 783 783 783 783 783   work: -    -        P6   .   .   .   .   .   .
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from lyskegle.calendar import iso_week_index, month_index
from lyskegle.ingest import PersonKeys, ingest_dream, ingest_register, register_of
from lyskegle.io import ExtractError, RawRegister
from lyskegle.pseudonym import DEVELOPMENT_KEY, PseudonymKeyError, find_cpr_numbers, pseudonymise

from conftest import TINY_EXTRACT

P1, P2, P3, P4, P5, P6 = "6503801234", "7012851235", "8107901236", "6611951237", "7702601238", "6904101239"
FIRST_WEEK = iso_week_index(2019, 50)
DECEMBER_2019 = month_index(2019, 12)
OTHER_KEY = "another-key-of-at-least-sixteen-bytes"


def pid(number: str, key: bytes = DEVELOPMENT_KEY) -> str:
    return pseudonymise(pd.Series([number]), key).iloc[0]


def runs_of(table: pd.DataFrame, number: str, columns: list[str]) -> list[tuple]:
    rows = table[table["person_id"] == pid(number)]
    return [tuple(int(v) for v in row) for row in rows[columns].itertuples(index=False)]


# --- the tables, checked by eye -------------------------------------------------------------------

def test_dream_weeks_become_runs_of_identical_codes(tiny_ingested):
    benefits = tiny_ingested[0].tables["benefits"]
    w = FIRST_WEEK
    assert runs_of(benefits, P1, ["code", "first_week", "n_weeks"]) == [(131, w, 2), (891, w + 3, 1)]
    assert runs_of(benefits, P3, ["code", "first_week", "n_weeks"]) == [(783, w, 6)]
    assert runs_of(benefits, P4, ["code", "first_week", "n_weeks"]) == [(131, w, 1), (651, w + 1, 2), (131, w + 3, 1)]
    assert runs_of(benefits, P5, ["code", "first_week", "n_weeks"]) == [(997, w + 5, 1)]
    assert runs_of(benefits, P2, ["code"]) == []  # blank weeks are no run
    assert benefits.dtypes.astype(str).to_dict() == {
        "person_id": "string", "code": "int16", "first_week": "int32", "n_weeks": "int16"}


def test_branche_months_become_runs_of_work(tiny_ingested):
    employment = tiny_ingested[0].tables["employment"]
    assert runs_of(employment, P2, ["first_month", "n_months"]) == [(DECEMBER_2019, 2)]
    assert runs_of(employment, P1, ["first_month", "n_months"]) == [(DECEMBER_2019 + 1, 1)]
    assert len(employment) == 2


def test_population_has_english_columns_and_the_data_model_types(tiny_ingested):
    population = tiny_ingested[0].tables["population"]
    assert list(population.columns) == [
        "person_id", "year", "birth_date", "sex", "origin_type", "origin_country", "citizenship",
        "municipality", "dwelling_id", "moved_in", "family_id", "partner_id", "mother_id", "father_id",
        "civil_status",
    ]
    assert str(population["birth_date"].dtype) == "date32[day][pyarrow]"
    assert (population["year"].dtype, population["sex"].dtype) == (np.int16, np.int8)
    assert population.groupby("year").size().to_dict() == {2019: 6, 2020: 5}  # P5 emigrated in 2019
    child = population[(population["person_id"] == pid(P6)) & (population["year"] == 2019)].iloc[0]
    assert child["mother_id"] == pid(P2) and child["father_id"] == pid(P1)
    assert child["birth_date"] == dt.date(2010, 4, 9)


def test_other_registers(tiny_ingested):
    tables = tiny_ingested[0].tables
    income = tables["income"].set_index("person_id")
    assert income.loc[pid(P1), "total_income"] == 180000.5  # decimal comma
    assert income.loc[pid(P3), "total_income"] == -12000.5  # a loss is allowed
    education = tables["education"].set_index("person_id")
    assert education.loc[pid(P2), ["education_code", "education_group"]].tolist() == ["5080", 50]
    convictions = tables["convictions"]  # from a SAS transport file
    assert convictions["decision_date"].tolist() == [dt.date(2019, 5, 3), dt.date(2019, 8, 1)]
    assert list(convictions.columns) == ["person_id", "decision_date", "offence_type"]
    assert tables["classes"][["class_name", "grade"]].values.tolist() == [["4b", 4]]  # from Parquet
    dwellings = tables["dwellings"]
    assert dwellings.set_index("dwelling_id").loc["D2", "stairwell_id"] == "S1"
    assert dwellings["area"].isna().tolist() == [False, False, False, True]


def test_quality_summary_counts_every_row_and_unresolved_links(tiny_ingested):
    quality = tiny_ingested[0].quality
    bef = quality["files"]["bef2019.csv"]
    assert (bef["rows_read"], bef["rows_accepted"], bef["rows_quarantined"]) == (6, 6, 0)
    assert bef["unresolved_links"] == {"E_FAELLE_ID": 0, "MOR_ID": 0, "FAR_ID": 1}  # P3's father is absent
    assert quality["totals"]["rows_read"] == 6 + 5 + 4 + 6 + 3 + 5 + 5 + 1 + 2
    assert quality["files"]["dream.csv"]["encoding"] == "utf-8"
    assert quality["files"]["dream.csv"]["rows_with_person_outside_population"] == 0
    assert tiny_ingested[0].extract == {"synthetic": True, "first_week": FIRST_WEEK, "last_week": FIRST_WEEK + 5}


# --- DREAM in other shapes ------------------------------------------------------------------------

def _dream(codes: dict[str, list]) -> RawRegister:
    return RawRegister("dream.parquet", pd.DataFrame({"PNR": [P1, P2], **codes}), "parquet")


def test_dream_codes_as_numbers_as_text_and_with_zero_give_the_same_runs():
    weeks = ["y_1952", "y_2001", "y_2002"]
    as_float = _dream({w: c for w, c in zip(weeks, [[131.0, np.nan], [131.0, 891.0], [np.nan, 891.0]])})
    as_text = _dream({w: c for w, c in zip(weeks, [["131", None], ["131", " 891"], ["", "891"]])})
    with_zero = _dream({w: c for w, c in zip(weeks, [[131, 0], [131, 891], [0, 891]])})
    results = [ingest_dream(raw, PersonKeys(DEVELOPMENT_KEY)) for raw in (as_float, as_text, with_zero)]
    expected = [(131, iso_week_index(2019, 52), 2), (891, iso_week_index(2020, 1), 2)]
    for result in results:
        runs = result.table["benefits"][["code", "first_week", "n_weeks"]]
        assert [tuple(int(v) for v in row) for row in runs.itertuples(index=False)] == expected
    assert results[2].quality["zero_codes_read_as_blank"] == 2
    assert results[0].quality["zero_codes_read_as_blank"] == 0


def test_a_dashed_pnr_is_the_same_person():
    raw = RawRegister("udda2019.csv", pd.DataFrame({
        "PNR": [P1[:6] + "-" + P1[6:]], "HFAUDD": ["1010"], "HF_VFRA": ["1996-06-30"]}), "csv")
    result = ingest_register(raw, PersonKeys(DEVELOPMENT_KEY), 2019)
    assert result.table["person_id"].tolist() == [pid(P1)]


def test_pseudonymous_dst_ids_are_accepted_as_they_are():
    raw = RawRegister("udda2019.csv", pd.DataFrame({
        "pnr": ["A17", "B22"], "hfaudd": ["1010", "2010"], "hf_vfra": [None, None]}), "sas7bdat")
    result = ingest_register(raw, PersonKeys(DEVELOPMENT_KEY), 2019)
    assert result.quality["rows_accepted"] == 2  # lower-case column names are DST's too


def test_a_file_name_outside_the_contract_is_named():
    assert register_of("bef2019.csv") == ("bef", 2019)
    assert register_of("dream.sas7bdat") == ("dream", None)
    with pytest.raises(ExtractError, match="did you mean 'grundskole'"):
        register_of("grundskol2019.csv")
    with pytest.raises(ExtractError, match="one file per year"):
        register_of("bef.csv")


# --- pseudonyms and keys --------------------------------------------------------------------------

def test_same_key_same_pseudonym_other_key_other_pseudonym(ingest_stage, tiny_extract):
    with_key, _ = ingest_stage.ingest_folder(tiny_extract, env={"LYSKEGLE_PSEUDONYM_KEY": OTHER_KEY})
    again, _ = ingest_stage.ingest_folder(tiny_extract, env={"LYSKEGLE_PSEUDONYM_KEY": OTHER_KEY})
    ids = with_key.tables["population"]["person_id"]
    assert ids.tolist() == again.tables["population"]["person_id"].tolist()
    assert pid(P1, OTHER_KEY.encode()) in set(ids)
    assert pid(P1) not in set(ids)  # not the development key's pseudonym
    assert with_key.extract["synthetic"] is True  # marked so, and every number has a synthetic day


def test_a_non_synthetic_extract_without_a_key_is_refused(ingest_stage, tiny_extract):
    (tiny_extract / "EXTRACT.json").write_text(json.dumps({"synthetic": False}))
    with pytest.raises(PseudonymKeyError, match="LYSKEGLE_PSEUDONYM_KEY"):
        ingest_stage.ingest_folder(tiny_extract, env={})
    (tiny_extract / "EXTRACT.json").unlink()  # no marker at all: not synthetic either
    with pytest.raises(PseudonymKeyError):
        ingest_stage.ingest_folder(tiny_extract, env={})


def test_the_development_key_can_be_switched_off(ingest_stage, tiny_extract):
    with pytest.raises(PseudonymKeyError):
        ingest_stage.ingest_folder(tiny_extract, env={}, allow_development_key=False)


def test_the_development_key_refuses_a_number_with_a_real_day_of_month():
    # 31 February: the shape of a real CPR number (day 01-31) that belongs to nobody
    impossible = "31" + "02" + "99" + "0000"
    raw = RawRegister("udda2019.csv", pd.DataFrame({
        "PNR": [P1, impossible], "HFAUDD": ["1010", "1010"], "HF_VFRA": [None, None]}), "csv")
    with pytest.raises(PseudonymKeyError) as refused:
        ingest_register(raw, PersonKeys(DEVELOPMENT_KEY), 2019)
    assert "row 2, column 'PNR'" in str(refused.value)
    assert impossible not in str(refused.value)
    real_key = PersonKeys(OTHER_KEY.encode())
    accepted = ingest_register(raw, real_key, 2019)  # a real key may see it
    assert accepted.quality["rows_accepted"] == 2
    assert real_key.real_cpr_numbers == 1  # and the extract will not count as synthetic


# --- the stage end to end -------------------------------------------------------------------------

def _run_stage(ingest_stage, tmp_path, extract, name):
    params = tmp_path / f"{name}.yaml"
    params.write_text(yaml.safe_dump({"extract": {"path": str(extract)}, "ingest": {"allow_development_key": True}}))
    out = tmp_path / name
    ingest_stage.main([
        "--params", str(params), "--synthetic", str(tmp_path / "unused"), "--out", str(out / "ingested"),
        "--quarantine", str(out / "quarantine"), "--quality", str(out / "data_quality.json"),
    ])
    return out


def test_stage_writes_no_cpr_number_and_the_same_bytes_twice(ingest_stage, tmp_path, tiny_extract, monkeypatch):
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY_FILE", raising=False)
    # one row to quarantine, so the quarantine files are scanned with content in them
    bef = tiny_extract / "bef2019.csv"
    bef.write_text(bef.read_text().replace("1990-07-21", "1990-13-45"))
    first = _run_stage(ingest_stage, tmp_path, tiny_extract, "first")
    second = _run_stage(ingest_stage, tmp_path, tiny_extract, "second")

    written = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert {str(p) for p in written} >= {
        "ingested/population.parquet", "ingested/benefits.parquet", "ingested/extract.json",
        "quarantine/bef2019.parquet", "data_quality.json"}
    for relative in written:
        data = (first / relative).read_bytes()
        assert find_cpr_numbers(data.decode("latin-1")) == [], relative
        assert data == (second / relative).read_bytes(), relative

    quarantine = pd.read_parquet(first / "quarantine" / "bef2019.parquet")
    assert quarantine[["source_row", "column", "reason"]].values.tolist() == [[3, "FOED_DAG", "unparsable_date"]]
    assert quarantine["PNR"].tolist() == [pid(P3)]
    extract = json.loads((first / "ingested" / "extract.json").read_text())
    assert extract["synthetic"] is True
    assert len(extract["files"]) == 9 and all(len(h) == 64 for h in extract["files"].values())
    quality = json.loads((first / "data_quality.json").read_text())
    assert quality["totals"]["rows_quarantined"] == 1


def test_a_sink_takes_each_files_rows_as_read_and_together_they_are_the_tables(ingest_stage, tiny_ingested):
    handed: list[tuple[str, pd.DataFrame]] = []
    result, _ = ingest_stage.ingest_folder(TINY_EXTRACT, env={}, sink=lambda name, rows: handed.append((name, rows)))
    assert len(result.tables) == 0
    assert result.quality == tiny_ingested[0].quality and result.extract == tiny_ingested[0].extract
    names = [name for name, _ in handed]
    assert names[:3] == ["dwellings", "benefits", "employment"]  # in the order the files are read
    assert set(names) == set(tiny_ingested[0].tables)
    for name, expected in tiny_ingested[0].tables.items():
        parts = [rows for part_name, rows in handed if part_name == name]
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), expected)


def test_a_file_that_fails_late_leaves_no_table_written(ingest_stage, tmp_path, tiny_extract, monkeypatch):
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY_FILE", raising=False)
    (tiny_extract / "kraf2019.xpt").write_bytes(b"")  # convictions are read last: every other table is written by then
    with pytest.raises(ExtractError, match="kraf"):
        _run_stage(ingest_stage, tmp_path, tiny_extract, "failed")
    folder = tmp_path / "failed" / "ingested"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_real_key_file_is_read(ingest_stage, tmp_path, tiny_extract):
    key_file = tmp_path / "key"
    key_file.write_text(OTHER_KEY + "\n")
    result, _ = ingest_stage.ingest_folder(tiny_extract, env={"LYSKEGLE_PSEUDONYM_KEY_FILE": str(key_file)})
    assert pid(P2, OTHER_KEY.encode()) in set(result.tables["population"]["person_id"])


def test_numeric_person_keys_keep_leading_zeros_apart():
    import pyarrow as pa

    keys = PersonKeys(DEVELOPMENT_KEY)
    pseudonyms = keys(pa.array(["0123", "123", None, "A17", "0123"]))
    assert pseudonyms.tolist()[:2] == [pid("0123"), pid("123")]
    assert pseudonyms.isna().tolist() == [False, False, True, False, False]
    assert pseudonyms[3] == pid("A17") and pseudonyms[4] == pseudonyms[0]
    again = keys(pa.array(["123", "A17"]))  # from the memo, in a later file
    assert again.tolist() == [pid("123"), pid("A17")]


@pytest.mark.parametrize("values", [
    ["0123", "123", None, "6503801234", "12345678901234567", "123456789012345678"],  # digits only: the fast way
    ["0123", "A17", None, "12-34", " 12", "", "١٢", "6503801234"],  # anything else: the regex
])
def test_person_codes_are_digits_and_length_whichever_way_they_are_found(values):
    import pyarrow as pa

    from lyskegle.ingest import _DIGITS_SCALE, only_digits, person_codes

    def expected(value):
        if value is None or not (1 <= len(value) <= 17) or not all("0" <= c <= "9" for c in value):
            return -1
        return int(value) + len(value) * _DIGITS_SCALE

    array = pa.array(values, type=pa.string())
    assert person_codes(array).tolist() == [expected(value) for value in values]
    assert person_codes(array.slice(1)).tolist() == [expected(value) for value in values[1:]]
    assert only_digits(array) == (values[1] == "123")


def test_only_digits_reads_the_bytes_of_the_values_it_holds():
    import pyarrow as pa

    from lyskegle.ingest import only_digits

    assert only_digits(pa.array(["12", None, "", "0"])) and only_digits(pa.array([], type=pa.large_string()))
    assert not only_digits(pa.array(["12", "1a"])) and not only_digits(pa.array(["12", "/"]))  # "/" is "0" - 1
    assert only_digits(pa.array(["x1", "23", "45"]).slice(1))  # a slice's own values only
    assert not only_digits(pa.array(["12", "3:"], type=pa.large_string()))  # ":" is "9" + 1
    with pytest.raises(TypeError, match="Arrow text"):
        only_digits(pa.array([1, 2]))
