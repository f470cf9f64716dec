"""Regenerate the tiny valid extract and the bad-input corpus used by the ingest tests.

    .venv/bin/python tests/data/make_bad_extracts.py

`extract_tiny/` is a complete extract of six persons (CPR numbers with synthetic days 61-91).
`bad_extracts/<case>/` holds only the defective file(s), laid over `extract_tiny/` by the tests,
and `expected.json`: the outcome (`error`, `quarantine` or `accepted`), the file, and for an error
the row (1-based data row, header not counted) and column the message must name; for a quarantine
the reason, column and number of rows. `"remove": [...]` lists files of `extract_tiny/` to leave out.
The files are committed; this script only documents how they were made.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat

HERE = Path(__file__).resolve().parent
TINY = HERE / "extract_tiny"
BAD = HERE / "bad_extracts"

# Synthetic CPR numbers (day-of-month 61-91): never a real person's.
P1, P2, P3, P4, P5, P6 = "6503801234", "7012851235", "8107901236", "6611951237", "7702601238", "6904101239"
ABSENT_FATHER = "6101501111"  # a father who is not in the extract: a normal unresolved link

BEF_HEADER = "PNR;FOED_DAG;KOEN;IE_TYPE;OPR_LAND;STATSB;KOM;ADRESSE_ID;BOP_VFRA;FAMILIE_ID;E_FAELLE_ID;MOR_ID;FAR_ID;CIVST"
BEF_ROWS_2019 = [
    f"{P1};1980-03-05;1;1;5100;5100;159;D1;2015-04-01;F1;{P2};;;G",
    f"{P2};1985-12-10;2;2;5170;5170;159;D1;2015-04-01;F1;{P1};;;G",
    f"{P3};1990-07-21;1;3;5100;5100;159;D2;2018-09-15;F2;;;{ABSENT_FATHER};U",
    f"{P4};1995-11-06;2;1;5100;5100;159;D3;2019-01-01;F3;;;;U",
    f"{P5};1960-02-17;1;2;5170;5120;159;D4;2001-06-30;F4;;;;F",
    f"{P6};2010-04-09;2;3;5100;5100;159;D1;2015-04-01;F1;;{P2};{P1};U",
]
BEF_ROWS_2020 = [*BEF_ROWS_2019[:4], BEF_ROWS_2019[5]]  # P5 emigrated during 2019

ADRESSER = [
    "ADRESSE_ID;ADGANGSADRESSE_ID;BYGNING_ID;OMRAADE;ETAGE;DOER",
    "D1;S1;B1;Vaerebro Park;2;th",
    "D2;S1;B1;Vaerebro Park;3;tv",
    "D3;S2;B1;Vaerebro Park;1;th",
    "D4;S3;B2;;st;",
]

WEEKS = ["y_1950", "y_1951", "y_1952", "y_2001", "y_2002", "y_2003"]
MONTHS = ["branche_2019_12", "branche_2020_01"]
DREAM = [
    "PNR;" + ";".join(WEEKS + MONTHS),
    f"{P1};131;131;;891;;;;4711",        # runs (131, w, 2), (891, w+3, 1); work in January
    f"{P2};;;;;;;4711;4711",             # no benefit; work both months
    f"{P3};783;783;783;783;783;783;;",   # one run of disability pension
    f"{P4};131;651;651;131;;;;",         # cash benefit, SU, cash benefit
    f"{P5};;;;;;997;;",                  # emigrated in the last week
    f"{P6};;;;;;;;",
]

UDDA = ["PNR;HFAUDD;HF_VFRA", f"{P1};1010;1996-06-30", f"{P2};5080;2010-06-30",
        f"{P3};3020;2012-01-31", f"{P4};2010;2014-06-30", f"{P5};6020;1985-06-30"]
IND = ["PNR;PERINDKIALT_13;LOENMV_13;DISPON_13", f"{P1};180000,50;0;150000,25",
       f"{P2};320000;300000;240000,75", f"{P3};-12000,5;0;-9000", f"{P4};95000;60000;80000",
       f"{P5};210000;0;170000"]


def _write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def make_tiny() -> None:
    shutil.rmtree(TINY, ignore_errors=True)
    TINY.mkdir(parents=True)
    _write_lines(TINY / "bef2019.csv", [BEF_HEADER, *BEF_ROWS_2019])
    _write_lines(TINY / "bef2020.csv", [BEF_HEADER, *BEF_ROWS_2020])
    _write_lines(TINY / "adresser.csv", ADRESSER)
    _write_lines(TINY / "dream.csv", DREAM)
    _write_lines(TINY / "udda2019.csv", UDDA)
    _write_lines(TINY / "ind2019.csv", IND)
    idan = pa.table({
        "PNR": [P2, P2, P4], "ARBNR": ["W1", "W2", "W1"], "CVRNR": ["C1", "C2", "C1"],
        "TYPE": ["H", "B", "H"], "JOBKAT": ["5", "9", "5"],
    })
    pq.write_table(idan, TINY / "idan2019.parquet")
    grundskole = pa.table({
        "PNR": [P6], "INSTNR": ["I1"], "KL_BETEGNELSE": ["4b"], "KL_TYPE": ["40"],
        "KLASSETRIN": pa.array([4], type=pa.int8()),
    })
    pq.write_table(grundskole, TINY / "grundskole2019.parquet")
    kraf = pd.DataFrame({
        "PNR": [P3, P4],
        "AFG_DATO": [dt.date(2019, 5, 3), dt.date(2019, 8, 1)],
        "AFG_ART": ["straffelov", "faerdsel"],
    })
    pyreadstat.write_xport(kraf, str(TINY / "kraf2019.xpt"), table_name="KRAF2019")
    (TINY / "EXTRACT.json").write_text(json.dumps({"synthetic": True}) + "\n", encoding="utf-8")


def _case(name: str, expected: dict, files: dict[str, bytes | str] | None = None) -> None:
    folder = BAD / name
    folder.mkdir(parents=True)
    for file_name, content in (files or {}).items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / file_name).write_bytes(data)
    (folder / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _csv(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _bef(rows: list[str], header: str = BEF_HEADER) -> str:
    return _csv([header, *rows])


def _replace_row(rows: list[str], index: int, old: str, new: str) -> list[str]:
    changed = list(rows)
    assert old in changed[index]
    changed[index] = changed[index].replace(old, new, 1)
    return changed


def _set_field(row: str, index: int, value: str) -> str:
    fields = row.split(";")
    fields[index] = value
    return ";".join(fields)


def make_bad() -> None:
    shutil.rmtree(BAD, ignore_errors=True)
    BAD.mkdir(parents=True)
    rows = BEF_ROWS_2019

    _case("missing_file", {"outcome": "error", "file": "adresser", "message_contains": "file not found",
                           "remove": ["adresser.csv"]})
    _case("misspelt_file_name", {"outcome": "error", "file": "addresser.csv", "message_contains": "did you mean 'adresser'",
                                 "remove": ["adresser.csv"]},
          {"addresser.csv": _csv(ADRESSER)})
    _case("missing_column", {"outcome": "error", "file": "bef2019.csv", "column": "CIVST"},
          {"bef2019.csv": _bef([r.rsplit(";", 1)[0] for r in rows], BEF_HEADER.rsplit(";", 1)[0])})
    _case("misspelt_column", {"outcome": "error", "file": "bef2019.csv", "column": "KOEN",
                              "message_contains": "found 'KON'; did you mean it?"},
          {"bef2019.csv": _bef(rows, BEF_HEADER.replace("KOEN", "KON"))})
    _case("wrong_type_every_row", {"outcome": "error", "file": "bef2019.csv", "row": 1, "column": "KOEN"},
          {"bef2019.csv": _bef([_set_field(r, 2, {"1": "M", "2": "K"}[r.split(";")[2]]) for r in rows])})
    _case("wrong_type_one_row", {"outcome": "quarantine", "file": "ind2019.csv", "column": "LOENMV_13",
                                 "reason": "unparsable_number", "rows": 1, "source_rows": [2]},
          {"ind2019.csv": _csv(_replace_row(IND, 2, ";300000;", ";mange;"))})
    _case("unparsable_date", {"outcome": "quarantine", "file": "bef2019.csv", "column": "FOED_DAG",
                              "reason": "unparsable_date", "rows": 1, "source_rows": [3]},
          {"bef2019.csv": _bef(_replace_row(rows, 2, "1990-07-21", "1990-13-45"))})
    _case("unparsable_dates_every_row", {"outcome": "error", "file": "udda2019.csv", "row": 1, "column": "HF_VFRA"},
          {"udda2019.csv": _csv([UDDA[0], *[r.rsplit(";", 1)[0] + ";sommer" for r in UDDA[1:]]])})
    _case("duplicate_person", {"outcome": "quarantine", "file": "bef2019.csv", "column": "PNR",
                               "reason": "duplicate_person", "rows": 2, "source_rows": [3, 7]},
          {"bef2019.csv": _bef([*rows, rows[2]])})
    _case("malformed_pnr_short", {"outcome": "quarantine", "file": "bef2019.csv", "column": "PNR",
                                  "reason": "malformed_pnr", "rows": 1, "source_rows": [4]},
          {"bef2019.csv": _bef(_replace_row(rows, 3, P4, P4[:8]))})
    _case("malformed_pnr_month", {"outcome": "quarantine", "file": "dream.csv", "column": "PNR",
                                  "reason": "malformed_pnr", "rows": 1, "source_rows": [5]},
          {"dream.csv": _csv(_replace_row(DREAM, 5, P5, "7713601238"))})
    _case("missing_pnr", {"outcome": "quarantine", "file": "udda2019.csv", "column": "PNR",
                          "reason": "missing_pnr", "rows": 1, "source_rows": [1]},
          {"udda2019.csv": _csv(_replace_row(UDDA, 1, P1, ""))})
    _case("link_to_absent_person", {"outcome": "accepted", "file": "bef2019.csv",
                                    "quality": {"unresolved_links": {"E_FAELLE_ID": 0, "FAR_ID": 1, "MOR_ID": 1}}},
          {"bef2019.csv": _bef(_replace_row(rows, 3, ";;;;U", f";;6202551240;;U"))})
    _case("malformed_link", {"outcome": "quarantine", "file": "bef2019.csv", "column": "FAR_ID",
                             "reason": "malformed_link", "rows": 1, "source_rows": [6]},
          {"bef2019.csv": _bef(_replace_row(rows, 5, f";{P1};U", ";12345;U"))})
    _case("unknown_dream_code", {"outcome": "quarantine", "file": "dream.csv", "column": "y_1951",
                                 "reason": "unknown_dream_code", "rows": 1, "source_rows": [2]},
          {"dream.csv": _csv(_replace_row(DREAM, 2, f"{P2};;", f"{P2};;555"))})
    _case("unparsable_dream_code", {"outcome": "quarantine", "file": "dream.csv", "column": "y_1950",
                                    "reason": "unparsable_dream_code", "rows": 1, "source_rows": [1]},
          {"dream.csv": _csv(_replace_row(DREAM, 1, f"{P1};131;", f"{P1};13x;"))})
    _case("dream_week_not_iso", {"outcome": "error", "file": "dream.csv", "column": "y_1953",
                                 "message_contains": "no ISO week 53"},
          {"dream.csv": _csv([DREAM[0].replace("y_1952", "y_1953"), *DREAM[1:]])})
    _case("dream_week_gap", {"outcome": "error", "file": "dream.csv", "message_contains": "jump from 'y_1950' to 'y_1952'"},
          {"dream.csv": _csv([";".join(p for i, p in enumerate(line.split(";")) if i != 2) for line in DREAM])})
    latin = _replace_row(ADRESSER, 1, "Vaerebro Park", "V\u00e6rebro Park")
    _case("latin1_encoding", {"outcome": "accepted", "file": "adresser.csv", "quality": {"encoding": "latin-1"}},
          {"adresser.csv": _csv(latin).encode("latin-1")})
    _case("utf16_encoding", {"outcome": "error", "file": "bef2019.csv", "message_contains": "neither UTF-8 nor Latin-1"},
          {"bef2019.csv": _bef(rows).encode("utf-16")})
    _case("binary_garbage", {"outcome": "error", "file": "dream.csv", "message_contains": "neither UTF-8 nor Latin-1"},
          {"dream.csv": bytes(range(256)) * 4})
    _case("decimal_comma_in_integer", {"outcome": "quarantine", "file": "bef2019.csv", "column": "KOEN",
                                       "reason": "not_an_integer", "rows": 1, "source_rows": [1]},
          {"bef2019.csv": _bef(_replace_row(rows, 0, "-05;1;1;", "-05;1,5;1;"))})
    _case("thousands_separator", {"outcome": "quarantine", "file": "ind2019.csv", "column": "PERINDKIALT_13",
                                  "reason": "unparsable_number", "rows": 1, "source_rows": [2]},
          {"ind2019.csv": _csv(_replace_row(IND, 2, ";320000;", ";320.000,00;"))})
    _case("wrong_separator", {"outcome": "error", "file": "bef2019.csv", "message_contains": "separator must be ';'"},
          {"bef2019.csv": _bef([r.replace(";", ",") for r in rows], BEF_HEADER.replace(";", ","))})
    _case("empty_file", {"outcome": "error", "file": "udda2019.csv", "message_contains": "empty"},
          {"udda2019.csv": b""})
    truncated = _bef(BEF_ROWS_2020)
    _case("truncated_csv", {"outcome": "error", "file": "bef2020.csv", "row": 5, "message_contains": "truncated"},
          {"bef2020.csv": truncated[: truncated.rindex(";2010-04-09")]})
    parquet = (TINY / "idan2019.parquet").read_bytes()
    _case("truncated_parquet", {"outcome": "error", "file": "idan2019.parquet", "message_contains": "Parquet"},
          {"idan2019.parquet": parquet[: len(parquet) // 2]})
    _case("sas_file_not_sas", {"outcome": "error", "file": "kraf2019.sas7bdat", "message_contains": "SAS7BDAT",
                               "remove": ["kraf2019.xpt"]},
          {"kraf2019.sas7bdat": _csv(["PNR;AFG_DATO;AFG_ART", f"{P3};2019-05-03;straffelov"])})
    _case("negative_wage_income", {"outcome": "quarantine", "file": "ind2019.csv", "column": "LOENMV_13",
                                   "reason": "negative_wage_income", "rows": 1, "source_rows": [4]},
          {"ind2019.csv": _csv(_replace_row(IND, 4, ";60000;", ";-60000;"))})
    _case("birth_date_in_future", {"outcome": "quarantine", "file": "bef2020.csv", "column": "FOED_DAG",
                                   "reason": "birth_date_in_future", "rows": 1, "source_rows": [4]},
          {"bef2020.csv": _bef(_replace_row(BEF_ROWS_2020, 3, "1995-11-06", "2020-11-06"))})
    _case("dwelling_without_stairwell", {"outcome": "quarantine", "file": "adresser.csv", "column": "ADGANGSADRESSE_ID",
                                         "reason": "dwelling_without_stairwell", "rows": 1, "source_rows": [4]},
          {"adresser.csv": _csv(_replace_row(ADRESSER, 4, "D4;S3;", "D4;;"))})
    _case("invalid_sex_code", {"outcome": "quarantine", "file": "bef2019.csv", "column": "KOEN",
                               "reason": "invalid_sex", "rows": 1, "source_rows": [5]},
          {"bef2019.csv": _bef(_replace_row(rows, 4, "-17;1;", "-17;3;"))})
    # bef2019 and bef2021 present, bef2020 absent
    _case("missing_year", {"outcome": "error", "file": "bef2020", "message_contains": "must not skip a year",
                           "remove": ["bef2020.csv"]},
          {"bef2021.csv": _bef(BEF_ROWS_2020)})


if __name__ == "__main__":
    make_tiny()
    make_bad()
    print(f"wrote {TINY} and {len(list(BAD.iterdir()))} cases in {BAD}")
