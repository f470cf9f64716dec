"""The synthetic extract: the contract's shape, determinism, calibration and the planted effects.

One small extract (4,000 persons) is written once per module through the stage's own writer and
read back from disk, the way ingest sees it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml

from lyskegle.calendar import dream_week_column, parse_dream_month_column, parse_dream_week_column, week_index
from lyskegle.codes import is_known, is_public_support
from lyskegle.config import ParamsError, SynthesizeParams, parse_section
from lyskegle.countries import COUNTRY_NAMES, NON_WESTERN_COUNTRIES, origin_group
from lyskegle.synthetic import SyntheticExtract, dream_weeks
from lyskegle.synthetic_housing import plan_areas, vaerebro_blocks
from lyskegle.synthetic_people import MEAN_HOUSEHOLD
from lyskegle.synthetic_world import OCCUPANCY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
import synthesize  # noqa: E402  (the stage's entry point: its writer is what ingest reads)

PERSONS = 4_000
FIRST_YEAR, LAST_YEAR = 2012, 2018
PROFILE_YEAR = 2015
BEF_COLUMNS = ["PNR", "FOED_DAG", "KOEN", "IE_TYPE", "OPR_LAND", "STATSB", "KOM", "ADRESSE_ID", "BOP_VFRA",
               "FAMILIE_ID", "E_FAELLE_ID", "MOR_ID", "FAR_ID", "CIVST"]
COLUMNS = {
    "bef": BEF_COLUMNS,
    "adresser": ["ADRESSE_ID", "ADGANGSADRESSE_ID", "BYGNING_ID", "OMRAADE", "ETAGE", "DOER"],
    "idan": ["PNR", "ARBNR", "CVRNR", "TYPE", "JOBKAT"],
    "udda": ["PNR", "HFAUDD", "HF_VFRA"],
    "ind": ["PNR", "PERINDKIALT_13", "LOENMV_13", "DISPON_13"],
    "grundskole": ["PNR", "INSTNR", "KL_BETEGNELSE", "KL_TYPE", "KLASSETRIN"],
    "kraf": ["PNR", "AFG_DATO", "AFG_ART"],
}
YEARLY = {"bef": "csv", "idan": "parquet", "udda": "csv", "ind": "csv", "grundskole": "parquet", "kraf": "xpt"}


def _write(tmp: Path, persons: int = PERSONS, seed: int = 2015) -> tuple[Path, dict]:
    params = SynthesizeParams(persons=persons, seed=seed, first_year=FIRST_YEAR, last_year=LAST_YEAR)
    extract = SyntheticExtract(params)
    synthesize.write_extract(extract, tmp)
    return tmp, extract.truth


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> tuple[Path, dict]:
    return _write(tmp_path_factory.mktemp("synthetic"))


def _csv(path: Path, encoding: str = "utf-8", decimal: str = ".") -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, encoding=encoding, keep_default_na=False, na_values=[""],
                       decimal=decimal)


def _kraf(path: Path) -> pd.DataFrame:
    frame, _ = pyreadstat.read_xport(str(path))
    return frame


@pytest.fixture(scope="module")
def registers(extract):
    folder, _ = extract
    bef = _csv(folder / f"bef{PROFILE_YEAR}.csv")
    adresser = _csv(folder / "adresser.csv")
    dream = pd.read_parquet(folder / "dream.parquet")
    udda = _csv(folder / f"udda{PROFILE_YEAR}.csv")
    return bef, adresser, dream, udda


def _residents(registers, year: int = PROFILE_YEAR) -> pd.DataFrame:
    bef, adresser, _, _ = registers
    frame = bef.merge(adresser, on="ADRESSE_ID", how="left", validate="many_to_one")
    frame["age"] = (pd.Timestamp(f"{year}-01-01") - pd.to_datetime(frame["FOED_DAG"])).dt.days / 365.25
    return frame


def _codes(dream: pd.DataFrame, pnrs: pd.Series, first_week: int, n_weeks: int) -> np.ndarray:
    columns = [dream_week_column(w) for w in range(first_week, first_week + n_weeks)]
    rows = dream.set_index("PNR").loc[pnrs.to_numpy(), columns]
    return rows.astype("Int64").fillna(0).to_numpy(dtype=np.int64)


# -------------------------------------------------------------------------- shape of the extract
def test_the_extract_has_exactly_the_contracts_files(extract):
    folder, _ = extract
    expected = {"adresser.csv", "dream.parquet"} | {
        f"{stem}{year}.{suffix}" for stem, suffix in YEARLY.items() for year in range(FIRST_YEAR, LAST_YEAR + 1)
    }
    assert {p.name for p in folder.iterdir()} == expected


def test_every_register_has_exactly_the_contracts_columns(extract):
    folder, _ = extract
    assert list(_csv(folder / "adresser.csv").columns) == COLUMNS["adresser"]
    for year in (FIRST_YEAR, LAST_YEAR):
        assert list(_csv(folder / f"bef{year}.csv").columns) == COLUMNS["bef"]
        assert list(_csv(folder / f"udda{year}.csv").columns) == COLUMNS["udda"]
        assert list(_csv(folder / f"ind{year}.csv", encoding="latin-1").columns) == COLUMNS["ind"]
        assert list(pd.read_parquet(folder / f"idan{year}.parquet").columns) == COLUMNS["idan"]
        assert list(pd.read_parquet(folder / f"grundskole{year}.parquet").columns) == COLUMNS["grundskole"]
        assert list(_kraf(folder / f"kraf{year}.xpt").columns) == COLUMNS["kraf"]


def test_dream_has_one_column_per_iso_week_and_month_of_the_years(registers):
    _, _, dream, _ = registers
    weeks = [c for c in dream.columns if c.startswith("y_")]
    months = [c for c in dream.columns if c.startswith("branche_")]
    assert dream.columns[0] == "PNR"
    assert [parse_dream_week_column(c) for c in weeks] == dream_weeks(FIRST_YEAR, LAST_YEAR)
    # 2015 has an ISO week 53; every month of 2012..2018 has its work column.
    assert "y_1553" in weeks and "y_1453" not in weeks
    assert [parse_dream_month_column(c) for c in months] == list(range(FIRST_YEAR * 12, (LAST_YEAR + 1) * 12))
    assert str(dream[weeks[0]].dtype) == "int16[pyarrow]" and str(dream[months[0]].dtype) == "int32[pyarrow]"


def test_codes_are_within_the_contracts_sets(extract, registers):
    folder, _ = extract
    bef, adresser, dream, udda = registers
    assert set(bef["KOEN"]) == {"1", "2"}
    assert set(bef["IE_TYPE"]) == {"1", "2", "3"}
    assert set(bef["OPR_LAND"]) | set(bef["STATSB"]) <= set(COUNTRY_NAMES)
    assert set(bef["KOM"]) == {"461", "159"}
    assert set(bef["CIVST"]) <= {"U", "G", "F", "E"}
    assert set(udda["HFAUDD"].str[:2]) <= {"10", "20", "30", "40", "50", "60", "70", "80"}
    assert udda["HFAUDD"].str.fullmatch(r"\d{4}").all()
    codes = dream[[c for c in dream.columns if c.startswith("y_")]].stack().to_numpy(dtype=np.int64)
    assert len(codes) > 0 and is_known(codes).all()
    idan = pd.read_parquet(folder / f"idan{PROFILE_YEAR}.parquet")
    assert set(idan["TYPE"]) == {"H", "B"}
    offences = pd.concat([_kraf(folder / f"kraf{y}.xpt") for y in range(FIRST_YEAR, LAST_YEAR + 1)])
    assert set(offences["AFG_ART"]) <= {"straffelov", "vaabenlov", "euforiserende", "faerdsel", "andet"}
    assert len(offences) > 0
    assert set(adresser["OMRAADE"].dropna()) == {"BO01", "BO02"}


def test_pnrs_are_unique_per_year_synthetic_and_sexed(extract, registers):
    folder, _ = extract
    dream = registers[2]
    assert dream["PNR"].is_unique and dream["PNR"].str[:2].astype(int).between(61, 91).all()
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        bef = _csv(folder / f"bef{year}.csv")
        assert bef["PNR"].is_unique
        assert bef["PNR"].str.fullmatch(r"\d{10}").all()
        day = bef["PNR"].str[:2].astype(int)
        assert day.between(61, 91).all()
        # Day, month and year of the PNR are the birth date's; the serial is odd for men.
        birth = pd.to_datetime(bef["FOED_DAG"])
        assert (day - 60 == birth.dt.day).all() and (bef["PNR"].str[2:4].astype(int) == birth.dt.month).all()
        assert ((bef["PNR"].str[-1].astype(int) % 2 == 1) == (bef["KOEN"] == "1")).all()


def test_family_links_point_to_existing_persons(extract, registers):
    folder, _ = extract
    _, _, dream, _ = registers
    everyone = set(dream["PNR"])
    bef = _csv(folder / f"bef{PROFILE_YEAR}.csv")
    for link in ("MOR_ID", "FAR_ID", "E_FAELLE_ID"):
        given = bef[link].dropna()
        assert len(given) > 100
        assert set(given) <= everyone
    # Partners point at each other when both live here.
    here = bef.set_index("PNR")["E_FAELLE_ID"].dropna()
    both = here[here.isin(here.index)]
    assert (here.loc[both.to_numpy()].to_numpy() == both.index.to_numpy()).all()


def test_kraf_uses_the_dashed_pnr_and_ind_a_decimal_comma_in_latin_1(extract):
    folder, _ = extract
    kraf = _kraf(folder / f"kraf{PROFILE_YEAR}.xpt")
    assert kraf["PNR"].str.fullmatch(r"\d{6}-\d{4}").all()
    raw = (folder / f"ind{PROFILE_YEAR}.csv").read_bytes().decode("latin-1").splitlines()
    assert "," in raw[1] and raw[1].count(";") == 3
    ind = _csv(folder / f"ind{PROFILE_YEAR}.csv", encoding="latin-1")
    total = ind["PERINDKIALT_13"].str.replace(",", ".").astype(float)
    assert total.gt(0).mean() > 0.95


# -------------------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path):
    def digest(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    first, _ = _write(tmp_path / "a", persons=1_000, seed=7)
    again, _ = _write(tmp_path / "b", persons=1_000, seed=7)
    other, _ = _write(tmp_path / "c", persons=1_000, seed=8)
    assert digest(first) == digest(again)
    changed = [name for name, value in digest(first).items() if digest(other)[name] != value]
    assert "dream.parquet" in changed and "bef2012.csv" in changed


# -------------------------------------------------------------------------- calibration
def test_the_vollsmose_like_area_has_the_published_profile(extract, registers):
    _, truth = extract
    _, _, dream, udda = registers
    residents = _residents(registers)
    area = residents[residents["OMRAADE"] == truth["vollsmose_like_area"]]
    others = residents[residents["OMRAADE"].isna()]
    target = truth["vollsmose_like_target_profile"]
    households = area.groupby("ADRESSE_ID").size()
    assert len(area) >= 400
    assert area["age"].mean() == pytest.approx(target["mean_age"], abs=3)
    assert others["age"].mean() == pytest.approx(target["municipality_mean_age"], abs=4)
    assert (area["age"] < 50).mean() == pytest.approx(target["share_under_50"], abs=0.06)
    assert households.mean() == pytest.approx(target["mean_household_size"], abs=0.25)
    assert others.groupby("ADRESSE_ID").size().mean() == pytest.approx(2.0, abs=0.25)
    assert (households == 1).mean() == pytest.approx(target["share_households_living_alone"], abs=0.07)
    assert (area["IE_TYPE"] != "1").mean() == pytest.approx(target["share_immigrants_or_descendants"], abs=0.07)
    non_western = (area["IE_TYPE"] != "1") & area["OPR_LAND"].isin(NON_WESTERN_COUNTRIES)
    assert non_western.mean() == pytest.approx(target["share_non_western"], abs=0.07)
    # Work and benefits in the first week of the year; education at 1 October.
    adults = area[area["age"] >= 18]
    week = _codes(dream, adults["PNR"], week_index(dt.date(PROFILE_YEAR, 1, 5)), 1)[:, 0]
    employed = dream.set_index("PNR").loc[adults["PNR"].to_numpy(), f"branche_{PROFILE_YEAR}_01"].notna().to_numpy()
    assert employed.mean() == pytest.approx(target["share_adults_employed"], abs=0.1)
    on_cash_or_pension = np.isin(week, [131, 701, 721, 783, 811])
    assert on_cash_or_pension.mean() == pytest.approx(target["share_adults_on_cash_benefit_or_disability_pension"], abs=0.12)
    middle = area[(area["age"] >= 30) & (area["age"] < 60)]
    basic = udda.set_index("PNR")["HFAUDD"].reindex(middle["PNR"]).dropna().str[:2] == "10"
    assert basic.mean() == pytest.approx(target["share_30_59_basic_education_only"], abs=0.12)


def test_the_vaerebro_like_area_has_8_blocks_and_1345_dwellings_at_full_size(extract, registers):
    blocks = vaerebro_blocks(1_345)
    assert sum(d for _, _, d in blocks) == 1_345
    assert [s for s, _, _ in blocks] == [8, 8, 8, 4, 4, 4, 4, 4]
    assert all(e >= 5 for _, e, _ in blocks)  # several entrances (stairwells) per block
    # The scaled-down area in the extract keeps the 8 blocks and their heights.
    _, truth = extract
    _, adresser, _, _ = registers
    area = adresser[adresser["OMRAADE"] == truth["vaerebro_like_area"]]
    assert len(area) == truth["vaerebro_like_layout"]["dwellings"]
    top_floor = area["ETAGE"].replace("st", "0").astype(int).groupby(area["BYGNING_ID"]).max()
    assert sorted(top_floor + 1) == [4, 4, 4, 4, 4, 8, 8, 8]
    assert area.groupby("ADGANGSADRESSE_ID")["BYGNING_ID"].nunique().eq(1).all()


def test_areas_reach_full_size_at_50000_persons_and_multiply_beyond():
    rng = np.random.default_rng(0)
    full = plan_areas(50_000, MEAN_HOUSEHOLD, OCCUPANCY, rng)
    vollsmose, vaerebro = full[0], full[1]
    assert vollsmose.dwellings * OCCUPANCY * MEAN_HOUSEHOLD["vollsmose_like"] == pytest.approx(9_100, rel=0.01)
    assert vaerebro.dwellings == 1_345
    assert [a.municipality for a in full[:2]] == ["461", "159"]
    national = plan_areas(1_000_000, MEAN_HOUSEHOLD, OCCUPANCY, rng)
    assert national[0].dwellings == vollsmose.dwellings and national[1].dwellings == 1_345
    assert sum(a.kind == "social_housing" for a in national) == 25
    assert len({a.municipality for a in national}) == 4
    small = plan_areas(4_000, MEAN_HOUSEHOLD, OCCUPANCY, rng)
    assert small[0].dwellings < vollsmose.dwellings / 5 and small[1].dwellings == 150  # a few hundred persons


# -------------------------------------------------------------------------- planted effects
def _spells_ending_within_26_weeks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spells starting in weeks 4..55 of ``codes`` (a support week after 4 without): their rows and
    whether 4 support-free weeks begin within 26 weeks. Disability pension (783) never ends, so it
    is left out."""
    support = is_public_support(codes) & (codes != 783)
    started = support[:, 4:56] & ~np.lib.stride_tricks.sliding_window_view(support, 4, axis=1)[:, :52].any(axis=2)
    rows, offsets = np.nonzero(started)
    ended = [any(not support[r, w + 4 + k:w + 8 + k].any() for k in range(1, 27)) for r, w in zip(rows, offsets)]
    return rows, np.array(ended, dtype=bool)


@pytest.fixture(scope="module")
def spells(extract):
    """Spells started by residents aged 18-59 in each year, with the stairwell lived in at 1 January."""
    folder, _ = extract
    adresser = _csv(folder / "adresser.csv")
    dream = pd.read_parquet(folder / "dream.parquet")
    found = []
    for year in range(FIRST_YEAR + 1, LAST_YEAR):
        bef = _csv(folder / f"bef{year}.csv")
        residents = _residents((bef, adresser, None, None), year)
        residents = residents[(residents["age"] >= 18) & (residents["age"] < 60)]
        codes = _codes(dream, residents["PNR"], week_index(dt.date(year, 1, 5)) - 4, 4 + 52 + 30)
        rows, ended = _spells_ending_within_26_weeks(codes)
        found.append(residents.iloc[rows].reset_index(drop=True).assign(ended=ended, year=year))
    return pd.concat(found, ignore_index=True)


@pytest.fixture(scope="module")
def support_weeks(extract):
    """Per resident aged 18-59 and year: weeks on support (disability pension aside) and how many of
    them were the last week of a spell (4 support-free weeks follow), with the 1 January stairwell."""
    folder, _ = extract
    adresser = _csv(folder / "adresser.csv")
    dream = pd.read_parquet(folder / "dream.parquet")
    found = []
    for year in range(FIRST_YEAR, LAST_YEAR):
        residents = _residents((_csv(folder / f"bef{year}.csv"), adresser, None, None), year)
        residents = residents[(residents["age"] >= 18) & (residents["age"] < 60)]
        codes = _codes(dream, residents["PNR"], week_index(dt.date(year, 1, 5)), 52 + 4)
        support = is_public_support(codes) & (codes != 783)
        ahead = np.lib.stride_tricks.sliding_window_view(support[:, 1:], 4, axis=1)[:, :52].any(axis=2)
        found.append(residents.assign(weeks=support[:, :52].sum(axis=1), exits=(support[:, :52] & ~ahead).sum(axis=1)))
    return pd.concat(found, ignore_index=True)


def _exit_rate(frame: pd.DataFrame) -> float:
    return frame["exits"].sum() / frame["weeks"].sum()


def test_spells_in_the_bad_stairwells_end_far_less_often(extract, support_weeks):
    _, truth = extract
    bad = {s["stairwell_id"] for s in truth["bad_stairwells"]}
    assert len(bad) == 6 and all(s["log_odds"] < -1 for s in truth["bad_stairwells"])
    in_bad = support_weeks["ADGANGSADRESSE_ID"].isin(bad)
    assert support_weeks.loc[in_bad, "weeks"].sum() >= 500
    # Planted odds ratio exp(-1.6) = 0.2; by simple counting the weekly exit rate is well under half.
    assert _exit_rate(support_weeks[in_bad]) < 0.5 * _exit_rate(support_weeks[~in_bad])


def test_the_origin_effect_is_smaller_than_the_stairwell_effect(extract, support_weeks):
    _, truth = extract
    hazard = truth["exit_hazard"]
    assert hazard["non_western_origin"] < 0
    assert abs(hazard["non_western_origin"]) < abs(hazard["bad_stairwell"]) / 2
    bad = support_weeks["ADGANGSADRESSE_ID"].isin({s["stairwell_id"] for s in truth["bad_stairwells"]})
    non_western = support_weeks["OPR_LAND"].isin(NON_WESTERN_COUNTRIES) & (support_weeks["IE_TYPE"] != "1")
    elsewhere = support_weeks[~bad]
    by_origin = _exit_rate(elsewhere[non_western[~bad]]) / _exit_rate(elsewhere[~non_western[~bad]])
    by_stairwell = _exit_rate(support_weeks[bad]) / _exit_rate(support_weeks[~bad])
    assert by_stairwell < by_origin < 1


def test_employed_household_members_raise_the_chance_of_leaving_support(extract, registers, spells):
    _, truth = extract
    assert truth["exit_hazard"]["network_share_employed_minus_half"]["household"] > 0
    _, _, dream, _ = registers
    residents = _residents(registers)
    # Employment of the others in the dwelling in the last November before the spells' window.
    worked = dream.set_index("PNR")[f"branche_{PROFILE_YEAR - 1}_11"].notna()
    residents["worked"] = worked.reindex(residents["PNR"]).fillna(False).to_numpy(dtype=bool)
    adults = residents[(residents["age"] >= 18) & (residents["age"] < 67)]
    employed_by_dwelling = adults.groupby("ADRESSE_ID")["worked"].sum()
    frame = spells.assign(others=employed_by_dwelling.reindex(spells["ADRESSE_ID"]).to_numpy()
                          - worked.reindex(spells["PNR"]).fillna(False).to_numpy(dtype=int))
    with_worker = frame["others"] > 0
    assert with_worker.sum() >= 30 and (~with_worker).sum() >= 30
    assert frame.loc[with_worker, "ended"].mean() > frame.loc[~with_worker, "ended"].mean()


def test_the_planted_subgroup_is_small_and_rarely_self_sufficient(extract, registers):
    _, truth = extract
    _, _, dream, udda = registers
    definition = truth["subgroup"]["definition"]
    residents = _residents(registers)
    residents = residents[(residents["age"] >= 20) & (residents["age"] < 65)]
    codes = _codes(dream, residents["PNR"], week_index(dt.date(PROFILE_YEAR, 1, 5)), 52)
    self_sufficient = (~is_public_support(codes)).sum(axis=1) >= 48
    citizens = residents["STATSB"].isin(definition["citizenships"]).to_numpy(dtype=bool)
    in_area = (residents["OMRAADE"] == definition["area"]).fillna(False).to_numpy(dtype=bool)
    basic = (udda.set_index("PNR")["HFAUDD"].reindex(residents["PNR"]).str[:2] == "10").fillna(False).to_numpy(dtype=bool)
    named = residents["ADGANGSADRESSE_ID"].isin(definition["stairwell_ids"]).to_numpy(dtype=bool)
    wider, subgroup = citizens & in_area, citizens & in_area & basic & named
    assert 5 <= subgroup.sum() <= 30
    assert truth["subgroup"]["size_by_year"][str(PROFILE_YEAR)] >= 5
    assert 0.05 <= self_sufficient[wider].mean() <= 0.35
    assert self_sufficient[subgroup].mean() <= 0.5 * self_sufficient[wider].mean()
    assert self_sufficient[wider].mean() < 0.5 * self_sufficient.mean()


# -------------------------------------------------------------------------- params and countries
def test_a_misspelt_synthesize_key_fails_with_its_name():
    with pytest.raises(ParamsError, match=r"synthesize\.bad_stairwel_log_odds"):
        parse_section("synthesize", {"bad_stairwel_log_odds": -2})
    with pytest.raises(ParamsError, match=r"synthesize\.bad_stairwell_log_odds"):
        parse_section("synthesize", {"bad_stairwell_log_odds": 1.0})


def test_origin_groups_follow_dsts_western_definition():
    assert origin_group("5100") == "danish"
    assert origin_group("5180") == "western"  # Germany
    assert origin_group("5522") == "non_western"  # Somalia
    assert "5100" not in NON_WESTERN_COUNTRIES


def test_the_truth_file_is_read_by_no_stage():
    stages = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert "data/synthetic_truth.json" in stages["synthesize"]["outs"]
    readers = [name for name, stage in stages.items()
               if any("synthetic_truth" in str(dep) for dep in stage.get("deps", stage.get("do", {}).get("deps", [])))]
    assert readers == []


@pytest.mark.slow
def test_ingest_accepts_every_row_of_the_extract(extract, tmp_path):
    import ingest  # the ingest stage's entry point, from pipelines/

    folder = shutil.copytree(extract[0], tmp_path / "synthetic")
    (folder / "EXTRACT.json").write_text(json.dumps({"synthetic": True, "generator": "lyskegle"}))
    result, _ = ingest.ingest_folder(folder)
    assert result.quality["totals"]["rows_quarantined"] == 0
    assert result.quality["totals"]["rows_accepted"] == result.quality["totals"]["rows_read"] > 0


def test_transitions_applied_in_one_pass_give_the_block_of_writing_each_one_forward():
    from lyskegle.synthetic_world import _apply_transitions, _fill_from

    rng = np.random.default_rng(7)
    n_weeks, persons = 53, 400
    initial = rng.integers(0, 9, persons).astype(np.uint8)
    # a person's transitions come in time order, at most one per week; some persons have none
    weeks, who, codes = [], [], []
    for person in range(persons):
        times = np.sort(rng.choice(n_weeks, size=rng.integers(0, 5), replace=False))
        weeks += list(times)
        who += [person] * len(times)
        codes += list(rng.integers(0, 9, len(times)))
    order = np.argsort(rng.random(len(weeks)))  # persons interleaved, each one's own order kept below
    order = order[np.lexsort((np.array(weeks)[order], np.array(who)[order]))]
    weeks, who, codes = (np.asarray(a)[order] for a in (weeks, who, codes))
    one_by_one = np.repeat(initial[None, :], n_weeks, axis=0)
    for w, p, c in zip(weeks, who, codes):
        _fill_from(one_by_one, np.array([w]), np.array([p]), np.array([c], dtype=np.uint8))
    one_pass = np.repeat(initial[None, :], n_weeks, axis=0)
    _apply_transitions(one_pass, weeks.astype(np.int64), who, codes.astype(np.uint8))
    assert len(weeks) > persons  # the draw has transitions to apply
    np.testing.assert_array_equal(one_pass, one_by_one)
