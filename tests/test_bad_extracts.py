"""The bad-input corpus: each case in tests/data/bad_extracts is the tiny extract with one defect.

Each case folder holds the defective file(s), laid over a copy of tests/data/extract_tiny, and
``expected.json`` with the outcome (tests/data/make_bad_extracts.py explains the fields):

* ``error``: ingest raises ExtractError whose message names the file, and the row and column
  where the case gives them;
* ``quarantine``: ingest succeeds and the file's rows with that reason are in its quarantine;
* ``accepted``: ingest succeeds, nothing in the file is quarantined, and the quality counts match.

In every case that ingests, ``rows_read == rows_accepted + rows_quarantined`` for every file, and
the PNR values ingest records for the identifier scans are those the scans would read themselves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lyskegle.identifier_scan import extract_pnr_values, read_recorded_identifiers
from lyskegle.io import ExtractError
from lyskegle.pseudonym import DEVELOPMENT_KEY, find_cpr_numbers

from conftest import BAD_EXTRACTS, TINY_EXTRACT

CASES = sorted(path.name for path in BAD_EXTRACTS.iterdir() if path.is_dir())


def _overlay(case: str, tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / case
    shutil.copytree(TINY_EXTRACT, folder)
    expected = json.loads((BAD_EXTRACTS / case / "expected.json").read_text(encoding="utf-8"))
    for name in expected.get("remove", []):
        (folder / name).unlink()
    for path in (BAD_EXTRACTS / case).iterdir():
        if path.name != "expected.json":
            shutil.copyfile(path, folder / path.name)
    return folder, expected


def test_the_corpus_covers_every_defect_of_the_issue():
    assert len(CASES) >= 20
    outcomes = {json.loads((BAD_EXTRACTS / c / "expected.json").read_text())["outcome"] for c in CASES}
    assert outcomes == {"error", "quarantine", "accepted"}


@pytest.mark.parametrize("case", CASES)
def test_bad_extract(case, tmp_path, ingest_stage):
    folder, expected = _overlay(case, tmp_path)

    if expected["outcome"] == "error":
        with pytest.raises(ExtractError) as raised:
            ingest_stage.ingest_folder(folder, env={})
        message = str(raised.value)
        assert message.startswith(expected["file"]), message
        if "row" in expected:
            assert f"row {expected['row']}" in message, message
        if "column" in expected:
            assert f"'{expected['column']}'" in message, message
        if "message_contains" in expected:
            assert expected["message_contains"] in message, message
        assert find_cpr_numbers(message) == []  # an error message never repeats a person number
        return

    recorded = tmp_path / "extract_identifiers.parquet"
    result, _ = ingest_stage.ingest_folder(folder, env={}, identifiers=recorded)
    # what ingest records for the identifier scans is what reading the extract again gives
    assert read_recorded_identifiers(recorded, DEVELOPMENT_KEY) == extract_pnr_values(folder, DEVELOPMENT_KEY)
    for name, quality in result.quality["files"].items():
        assert quality["rows_read"] == quality["rows_accepted"] + quality["rows_quarantined"], name
        assert sum(quality["quarantined_by_reason"].values()) == quality["rows_quarantined"], name
    quality = result.quality["files"][expected["file"]]
    quarantine = result.quarantine[expected["file"].rsplit(".", 1)[0]]

    if expected["outcome"] == "accepted":
        assert quality["rows_quarantined"] == 0
        for key, value in expected.get("quality", {}).items():
            assert quality[key] == value, key
        return

    assert quality["quarantined_by_reason"] == {expected["reason"]: expected["rows"]}
    assert len(quarantine) == expected["rows"]
    assert set(quarantine["reason"]) == {expected["reason"]}
    assert set(quarantine["column"]) == {expected["column"]}
    assert quarantine["source_row"].tolist() == expected["source_rows"]
    # the quarantine keeps the row's values, but never a raw person number
    for column in quarantine.columns:
        for value in quarantine[column].dropna().astype(str):
            assert find_cpr_numbers(value) == [], (column, "holds a CPR-shaped number")
