"""What each register of the contract (shared/REGISTERS.md) must hold, as pandera schemas.

A :class:`RegisterSpec` lists a register's columns: the DST name, the English name it gets inside
the pipeline (docs/DATA_MODEL.md), how its text is parsed and whether it may be blank. The pandera
schema of a register (:func:`row_schema`) checks the *parsed* values, so every check works on typed
columns; its lazy failure cases (column, row index, check name) become quarantine reasons. The check
names below are those reasons, as they appear in ``data/quarantine`` and ``reports/data_quality.json``.

Parsing (text to number or date) happens in :mod:`lyskegle.ingest` before the schema runs, because a
value that does not parse is a reason of its own (``unparsable_date``, ``unparsable_number``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

#: Offence types of ``krafYYYY.AFG_ART`` (the project's own classification).
OFFENCE_TYPES = ("straffelov", "vaabenlov", "euforiserende", "faerdsel", "andet")
EDUCATION_GROUPS = (10, 20, 30, 40, 50, 60, 70, 80)

# Kinds of column: how its text is parsed and what it becomes.
PERSON = "person"    # the row's own PNR: pseudonymised; malformed -> quarantine
LINK = "link"        # PNR of another person (parent, partner): pseudonymised; may be blank
TEXT = "text"        # opaque id or code, kept as a string
INTEGER = "integer"  # small integer code
DATE = "date"
AMOUNT = "amount"    # DKK, decimal comma allowed


@dataclass(frozen=True)
class Column:
    source: str          # DST's name, as in the file
    name: str            # English name inside the pipeline
    kind: str
    required: bool = False  # blank is a row-level problem (reason ``missing_value`` or ``reason_if_blank``)
    reason_if_blank: str = "missing_value"


@dataclass(frozen=True)
class RegisterSpec:
    stem: str            # ``bef``, ``adresser``, ...
    yearly: bool         # one file per year (``befYYYY``)
    columns: tuple[Column, ...]
    one_row_per_person: bool = False  # duplicates of a PNR are quarantined (reason ``duplicate_person``)
    output: str = ""     # table in data/ingested

    @property
    def sources(self) -> list[str]:
        return [column.source for column in self.columns]

    def column(self, source: str) -> Column:
        return next(column for column in self.columns if column.source == source)


_PNR = Column("PNR", "person_id", PERSON, required=True, reason_if_blank="missing_pnr")

REGISTERS: dict[str, RegisterSpec] = {spec.stem: spec for spec in (
    RegisterSpec("adresser", False, (
        Column("ADRESSE_ID", "dwelling_id", TEXT, required=True),
        Column("ADGANGSADRESSE_ID", "stairwell_id", TEXT, required=True,
               reason_if_blank="dwelling_without_stairwell"),
        Column("BYGNING_ID", "building_id", TEXT),
        Column("OMRAADE", "area", TEXT),
        Column("ETAGE", "floor", TEXT),
        Column("DOER", "door", TEXT),
    ), output="dwellings"),
    RegisterSpec("bef", True, (
        _PNR,
        Column("FOED_DAG", "birth_date", DATE, required=True),
        Column("KOEN", "sex", INTEGER, required=True),
        Column("IE_TYPE", "origin_type", INTEGER),
        Column("OPR_LAND", "origin_country", TEXT),
        Column("STATSB", "citizenship", TEXT),
        Column("KOM", "municipality", TEXT),
        Column("ADRESSE_ID", "dwelling_id", TEXT),
        Column("BOP_VFRA", "moved_in", DATE),
        Column("FAMILIE_ID", "family_id", TEXT),
        Column("E_FAELLE_ID", "partner_id", LINK),
        Column("MOR_ID", "mother_id", LINK),
        Column("FAR_ID", "father_id", LINK),
        Column("CIVST", "civil_status", TEXT),
    ), one_row_per_person=True, output="population"),
    RegisterSpec("idan", True, (
        _PNR,
        Column("ARBNR", "workplace_id", TEXT, required=True),
        Column("CVRNR", "firm_id", TEXT),
        Column("TYPE", "job_type", TEXT, required=True),
        Column("JOBKAT", "job_category", TEXT),
    ), output="jobs"),
    RegisterSpec("udda", True, (
        _PNR,
        Column("HFAUDD", "education_code", TEXT, required=True),
        Column("HF_VFRA", "since", DATE),
    ), one_row_per_person=True, output="education"),
    RegisterSpec("ind", True, (
        _PNR,
        Column("PERINDKIALT_13", "total_income", AMOUNT),
        Column("LOENMV_13", "wage_income", AMOUNT),
        Column("DISPON_13", "disposable_income", AMOUNT),
    ), one_row_per_person=True, output="income"),
    RegisterSpec("grundskole", True, (
        _PNR,
        Column("INSTNR", "school_id", TEXT, required=True),
        Column("KL_BETEGNELSE", "class_name", TEXT, required=True),
        Column("KL_TYPE", "class_type", TEXT),
        Column("KLASSETRIN", "grade", INTEGER),
    ), output="classes"),
    RegisterSpec("kraf", True, (
        _PNR,
        Column("AFG_DATO", "decision_date", DATE, required=True),
        Column("AFG_ART", "offence_type", TEXT, required=True),
    ), output="convictions"),
)}

#: DREAM is wide (one column per week and month) and is checked by lyskegle.ingest with numpy;
#: only its person key is declared here.
DREAM_STEM = "dream"


def _check(test, reason: str) -> pa.Check:
    return pa.Check(test, error=reason, ignore_na=True)


def row_schema(spec: RegisterSpec, year: int | None) -> pa.DataFrameSchema:
    """Pandera schema of one parsed register file (DST column names, parsed values).

    Expects the frame :func:`lyskegle.ingest.parse_register` returns: person keys normalised to
    text, dates as ``datetime64``, integers and amounts as floats (NaN where blank or unparsable).
    Each failing check's ``error`` is the quarantine reason.
    """
    # a fractional value is reported as such before any check of which codes are allowed
    checks: dict[str, list[pa.Check]] = {
        column.source: [_check(lambda s: s == s.round(), "not_an_integer")] if column.kind == INTEGER else []
        for column in spec.columns
    }
    if spec.stem == "bef":
        checks["KOEN"].append(_check(lambda s: s.isin([1, 2]), "invalid_sex"))
        checks["IE_TYPE"].append(_check(lambda s: s.isin([1, 2, 3]), "invalid_origin_type"))
        checks["OPR_LAND"].append(_check(lambda s: s.str.fullmatch(r"\d{4}"), "invalid_country_code"))
        checks["STATSB"].append(_check(lambda s: s.str.fullmatch(r"\d{4}"), "invalid_country_code"))
        if year is not None:
            # bef is the status at 1 January: nobody in it can be born after that day
            first_of_year = pd.Timestamp(dt.date(year, 1, 1))
            checks["FOED_DAG"].append(_check(lambda s: s <= first_of_year, "birth_date_in_future"))
        checks["FOED_DAG"].append(_check(lambda s: s >= pd.Timestamp("1880-01-01"), "birth_date_too_early"))
    if spec.stem == "idan":
        checks["TYPE"].append(_check(lambda s: s.isin(["H", "B"]), "invalid_job_type"))
    if spec.stem == "udda":
        checks["HFAUDD"].append(_check(
            lambda s: s.str.fullmatch(r"[1-8]0\d{2}"), "invalid_education_code"))
    if spec.stem == "ind":
        # losses make total and disposable income negative; a wage cannot be
        checks["LOENMV_13"].append(_check(lambda s: s >= 0, "negative_wage_income"))
    if spec.stem == "grundskole":
        checks["KLASSETRIN"].append(_check(lambda s: s.between(0, 10), "invalid_grade"))
    if spec.stem == "kraf":
        checks["AFG_ART"].append(_check(lambda s: s.isin(OFFENCE_TYPES), "invalid_offence_type"))
    return pa.DataFrameSchema(
        {
            column.source: pa.Column(
                checks=checks[column.source], nullable=not column.required, required=True,
            )
            for column in spec.columns
        },
        strict=False,
        coerce=False,
    )


def blank_reason(spec: RegisterSpec, source: str) -> str:
    """Reason for a required value that is blank in ``source``."""
    return spec.column(source).reason_if_blank
