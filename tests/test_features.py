"""Features on a hand-made neighbourhood whose right answers can be read off by eye.

As-of date 2016-01-04 is week a = 2400 and month 24192 (January 2016); the last known month is 24191.

Dwellings: d1, d2, d3 are stairwell s1; d4 is stairwell s2; s1 and s2 are building b1 in housing area
"Parken". d5 (stairwell s3, building b2) is outside any housing area.

  d1  anna (35, Danish) + partner bo (38, immigrant since 2014) + their son carl (5)
  d2  dina (25, descendant) alone; she moved in on 2015-03-01, before that she lived in d5
  d3  emil (45) with his daughter fie (3)
  d4  gorm (20) with his mother hanne (55)
  d5  ida (65, immigrant from a western country, in the register since its first year) alone

Support before week 2400 (codes: 131 cash benefit, 891 sickness, 783 disability pension, 651 SU):
  anna  131 in [2340, 2350) and [2380, 2410): an earlier 10-week spell, a current one of 20 weeks
  bo    891 in [2390, 2392) and [2394, 2397): one spell (its 2-week gap is shorter than 4), still running
  dina  131 in [2300, 2395), then SU: her spell ended 5 weeks before the as-of date
  emil  891 from 2398: on support in week 2399
  hanne 783 from 2000: on support in week 2399
Work: bo months [24100, 24300), dina [24189, 24195), gorm [24180, 24185).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from lyskegle.config import FeatureParams
from lyskegle.features import (
    Registers,
    build_features,
    feature_families,
    known_at,
    merge_network,
    model_feature_columns,
    side_by_side,
)
from lyskegle.features_area import leave_one_out_mean
from lyskegle.features_individual import country_group, first_year_seen, latest_known, support_spells

AS_OF = dt.date(2016, 1, 4)
WESTERN = frozenset({"5180"})
PARAMS = FeatureParams(min_group_persons=2)
GAP_WEEKS = 4


def _person(pid, born, sex, origin, country, citizenship, moved_in, partner=None, mother=None, father=None):
    return dict(person_id=pid, birth_date=dt.date.fromisoformat(born), sex=sex, origin_type=origin,
                origin_country=country, citizenship=citizenship, municipality="461",
                moved_in=dt.date.fromisoformat(moved_in), family_id="f_" + pid, partner_id=partner,
                mother_id=mother, father_id=father, civil_status="U")


PEOPLE = [
    _person("anna", "1980-03-10", 2, 1, "5100", "5100", "2010-06-01", partner="bo"),
    _person("bo", "1978-01-02", 1, 2, "5432", "5432", "2014-02-01", partner="anna"),
    _person("carl", "2010-05-05", 1, 1, "5100", "5100", "2010-06-01", mother="anna", father="bo"),
    _person("dina", "1990-01-05", 2, 3, "5432", "5100", "2015-03-01"),
    _person("emil", "1970-07-07", 1, 1, "5100", "5100", "2000-01-01"),
    _person("fie", "2012-02-02", 2, 1, "5100", "5100", "2012-02-02", father="emil"),
    _person("gorm", "1995-04-04", 1, 1, "5100", "5100", "1995-04-04", mother="hanne"),
    _person("hanne", "1960-01-01", 2, 1, "5100", "5100", "1990-01-01"),
    _person("ida", "1950-06-06", 2, 2, "5180", "5180", "2005-05-05"),
]
#: person -> {year: dwelling}; 2017 is after the as-of date and must never matter.
DWELLING_BY_YEAR = {
    "anna": {2013: "d1", 2014: "d1", 2015: "d1", 2016: "d1", 2017: "d5"},
    "bo": {2014: "d1", 2015: "d1", 2016: "d1"},
    "carl": {2013: "d1", 2014: "d1", 2015: "d1", 2016: "d1"},
    "dina": {2013: "d5", 2014: "d5", 2015: "d5", 2016: "d2"},
    "emil": {2013: "d3", 2014: "d3", 2015: "d3", 2016: "d3"},
    "fie": {2013: "d3", 2014: "d3", 2015: "d3", 2016: "d3"},
    "gorm": {2013: "d4", 2014: "d4", 2015: "d4", 2016: "d4"},
    "hanne": {2013: "d4", 2014: "d4", 2015: "d4", 2016: "d4"},
    "ida": {2013: "d5", 2014: "d5", 2015: "d5", 2016: "d5"},
}


def _registers() -> Registers:
    people = {p["person_id"]: p for p in PEOPLE}
    population = pd.DataFrame([
        {**people[pid], "year": year, "dwelling_id": dwelling}
        for pid, years in DWELLING_BY_YEAR.items() for year, dwelling in years.items()
    ])
    dwellings = pd.DataFrame({
        "dwelling_id": ["d1", "d2", "d3", "d4", "d5"],
        "stairwell_id": ["s1", "s1", "s1", "s2", "s3"],
        "building_id": ["b1", "b1", "b1", "b1", "b2"],
        "area": ["Parken", "Parken", "Parken", "Parken", None],
        "floor": "1", "door": "th",
    })
    benefits = pd.DataFrame(
        [("anna", 131, 2340, 10), ("anna", 131, 2380, 30), ("bo", 891, 2390, 2), ("bo", 891, 2394, 3),
         ("dina", 131, 2300, 95), ("dina", 651, 2395, 5), ("emil", 891, 2398, 12), ("hanne", 783, 2000, 500),
         ("ida", 998, 2300, 200)],
        columns=["person_id", "code", "first_week", "n_weeks"],
    )
    employment = pd.DataFrame(
        [("bo", 24100, 200), ("dina", 24189, 6), ("gorm", 24180, 5)],
        columns=["person_id", "first_month", "n_months"],
    )
    education = pd.DataFrame(
        [("anna", 2014, "5080", 50), ("anna", 2016, "7080", 70), ("dina", 2015, "1090", 10)],
        columns=["person_id", "year", "education_code", "education_group"],
    )
    income = pd.DataFrame(
        [("anna", 2015, 300_000.0, 250_000.0, 200_000.0), ("anna", 2016, 999_999.0, 999_999.0, 999_999.0),
         ("emil", 2015, -5_000.0, 0.0, -5_000.0)],
        columns=["person_id", "year", "total_income", "wage_income", "disposable_income"],
    )
    return Registers(population, dwellings, benefits, employment, education, income)


COHORT_PERSONS = ["anna", "bo", "dina", "emil", "gorm", "hanne", "ida"]


def _cohorts() -> pd.DataFrame:
    rows = [("self_sufficient", AS_OF, p, 1, False, None) for p in COHORT_PERSONS]
    rows += [("exit_26w", AS_OF, p, 0, False, 2380) for p in ("anna", "bo")]  # anna and bo are in both cohorts
    return pd.DataFrame(rows, columns=["target", "as_of", "person_id", "label", "censored", "spell_first_week"])


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    table = build_features(_registers(), _cohorts(), PARAMS, GAP_WEEKS, WESTERN)
    return table.set_index("person_id")


def test_one_row_per_cohort_member_and_no_label_columns(features):
    assert sorted(features.index) == sorted(COHORT_PERSONS)
    assert not {"label", "censored", "target", "spell_first_week"} & set(features.columns)
    assert set(features["as_of"]) == {AS_OF}


def test_support_history_counts_weeks_before_the_as_of_date_only(features):
    anna = features.loc["anna"]
    assert anna["support_weeks_13w"] == 13
    assert anna["support_weeks_52w"] == 22       # 20 of the current spell, weeks 2348-2349 of the earlier one
    assert anna["support_weeks_156w"] == 30
    assert features.loc["hanne", "support_weeks_156w"] == 156
    assert features.loc["bo", "support_weeks_13w"] == 5
    assert features.loc["ida", "support_weeks_156w"] == 0   # state pension is not public support


def test_spells_current_and_earlier(features):
    assert features.loc["anna", ["current_spell_weeks", "earlier_spells", "earlier_spell_mean_weeks"]].tolist() == [20, 1, 10]
    assert features.loc["anna", "weeks_since_last_spell"] == 50
    assert features.loc["bo", "current_spell_weeks"] == 10     # 2-week gap does not end a spell
    assert features.loc["bo", "earlier_spells"] == 0
    assert features.loc["dina", "current_spell_weeks"] == 0    # 5 weeks without support ended it
    assert features.loc["dina", ["earlier_spells", "earlier_spell_longest_weeks", "weeks_since_last_spell"]].tolist() == [1, 95, 5]
    assert math.isnan(features.loc["gorm", "weeks_since_last_spell"])


def test_benefit_group_of_the_last_week(features):
    assert features.loc["anna", "last_week_cash_benefit"] == 1
    assert features.loc["emil", "last_week_sickness_benefit"] == 1
    assert features.loc["hanne", "last_week_disability_pension"] == 1
    assert features.loc["bo", "on_support_last_week"] == 0
    assert features.loc["dina", "on_support_last_week"] == 0   # SU is not public support


def test_employment_months_stop_before_the_as_of_month(features):
    assert features.loc["bo", ["employed_months_12m", "employed_months_36m"]].tolist() == [12, 36]
    assert features.loc["dina", "employed_months_12m"] == 3    # 24189..24191; 24192 on is the as-of month
    assert features.loc["gorm", "employed_months_12m"] == 5


def test_demographics(features):
    assert features.loc["anna", "age"] == 35
    assert features.loc["bo", "age"] == 38       # birthday 2 January passed
    assert features.loc["dina", "age"] == 25     # birthday 5 January not yet
    assert features.loc["anna", "woman"] == 1 and features.loc["bo", "woman"] == 0
    assert features.loc["anna", "education_level"] == 5         # 2014 record; the 2016 one is not known yet
    assert features.loc["dina", ["education_level", "basic_education_only"]].tolist() == [1, 1]
    assert math.isnan(features.loc["bo", "education_level"])
    assert features.loc["anna", "total_income"] == 300_000      # 2015, not 2016
    assert features.loc["anna", "log_wage_income"] == pytest.approx(math.log1p(250_000))
    assert features.loc["emil", "log_total_income"] == 0        # negative income: log1p of 0


def test_moves_and_time_at_address(features):
    assert features.loc["dina", "moves_3y"] == 1
    assert features.loc["anna", "moves_3y"] == 0                # the 2017 move is in the future
    assert features.loc["hanne", "years_at_address"] == pytest.approx((AS_OF - dt.date(1990, 1, 1)).days / 365.25)


def test_household_types_and_family(features):
    expected = {"anna": "couple_with_children", "bo": "couple_with_children", "dina": "single",
                "emil": "single_parent", "gorm": "other", "hanne": "other", "ida": "single"}
    for person, kind in expected.items():
        assert features.loc[person, f"household_{kind}"] == 1, person
        assert features.loc[person, [c for c in features.columns if c.startswith("household_") and c != "household_size"]].sum() == 1
    assert features.loc["anna", ["household_size", "children_in_household"]].tolist() == [3, 1]
    assert features.loc["emil", "own_children_under_18"] == 1
    assert features.loc["hanne", "own_children_under_18"] == 0  # gorm is 20
    assert features.loc["gorm", "lives_with_parent"] == 1 and features.loc["anna", "lives_with_parent"] == 0


def test_origin_and_time_in_denmark(features):
    assert features.loc["bo", ["origin_immigrant", "origin_non_western", "citizenship_non_western"]].tolist() == [1, 1, 1]
    assert features.loc["dina", ["origin_descendant", "origin_non_western", "citizenship_non_danish"]].tolist() == [1, 1, 0]
    assert features.loc["ida", ["origin_western", "origin_non_western"]].tolist() == [1, 0]
    assert features.loc["bo", "years_in_denmark"] == 2          # first in the register in 2014
    assert math.isnan(features.loc["ida", "years_in_denmark"])  # there since the register's first year: unknown
    assert features.loc["dina", "years_in_denmark"] == 25       # born in Denmark: her age


def test_audit_attributes(features):
    assert features.loc["anna", ["audit_sex", "audit_age_band", "audit_origin_group", "audit_area"]].tolist() == [
        "woman", "30-39", "danish", "Parken"]
    assert features.loc["ida", ["audit_age_band", "audit_origin_group", "audit_area"]].tolist() == [
        "65+", "western", "outside housing areas"]
    assert features.loc["gorm", "audit_age_band"] == "18-29"


def test_stairwell_aggregates_leave_the_person_out(features):
    # s1 working-age residents: anna (support), bo (work), dina (work), emil (support)
    assert features.loc["anna", "stairwell_neighbours_on_support_share"] == pytest.approx(1 / 3)
    assert features.loc["bo", "stairwell_neighbours_on_support_share"] == pytest.approx(2 / 3)
    assert features.loc["anna", "stairwell_neighbours_employed_share"] == pytest.approx(2 / 3)
    assert features.loc["dina", "stairwell_neighbours_employed_share"] == pytest.approx(1 / 3)
    # s1 has 6 residents; of anna's 5 neighbours only dina moved in during the last year
    assert features.loc["anna", "stairwell_residents"] == 6
    assert features.loc["anna", "stairwell_turnover"] == pytest.approx(1 / 5)
    assert features.loc["dina", "stairwell_turnover"] == 0


def test_small_groups_give_missing_aggregates_not_rates(features):
    # s2 holds gorm and hanne: one neighbour is fewer than min_group_persons = 2
    assert math.isnan(features.loc["gorm", "stairwell_neighbours_on_support_share"])
    assert math.isnan(features.loc["ida", "stairwell_turnover"])
    # building b1: gorm's 5 working-age neighbours anna, bo, dina, emil, hanne; 3 on support
    assert features.loc["gorm", "building_neighbours_on_support_share"] == pytest.approx(3 / 5)
    assert features.loc["gorm", "area_neighbours_on_support_share"] == pytest.approx(3 / 5)
    assert math.isnan(features.loc["ida", "area_neighbours_on_support_share"])  # outside any housing area
    assert features.loc["ida", "lives_in_housing_area"] == 0


def test_mean_years_of_stay_of_the_one_neighbour():
    table = build_features(_registers(), _cohorts(), FeatureParams(min_group_persons=1), GAP_WEEKS, WESTERN)
    gorm = table.set_index("person_id").loc["gorm"]
    assert gorm["stairwell_mean_years_of_stay"] == pytest.approx((AS_OF - dt.date(1990, 1, 1)).days / 365.25)


def test_leave_one_out_mean_by_hand():
    groups = pd.Series(["x", "x", "x", "y", None])
    values = np.array([1.0, 0.0, np.nan, 1.0, 1.0])   # the third member of x does not count
    out = leave_one_out_mean(groups, values, min_others=1)
    assert out[0] == 0.0 and out[1] == 1.0 and out[2] == 0.5
    assert np.isnan(out[3]) and np.isnan(out[4])       # alone in y; no group
    assert np.isnan(leave_one_out_mean(pd.Series([None, None]), np.array([1.0, 0.0]), min_others=1)).all()


def test_spells_from_runs_merge_short_gaps():
    runs = pd.DataFrame({"person_id": ["p", "p", "p", "q"], "code": [131, 131, 131, 121],
                         "first_week": [10, 15, 30, 10], "n_weeks": [3, 2, 1, 5]})
    spells = support_spells(runs, gap_weeks=4)
    # gap 13..15 is 2 weeks: one spell 10..17; gap 17..30 ends it; q's holiday benefit is not support
    assert spells[["first_week", "end_week", "support_weeks"]].values.tolist() == [[10, 17, 5], [30, 31, 1]]


def test_country_groups():
    groups = country_group(pd.Series(["5100", "5432", "5180", None]), WESTERN)
    assert groups.tolist()[:3] == ["danish", "non_western", "western"] and pd.isna(groups.iloc[3])


def test_known_at_does_not_modify_its_input():
    registers = _registers()
    before = registers.benefits.copy()
    cut = known_at(registers, AS_OF)
    pd.testing.assert_frame_equal(registers.benefits, before)
    assert (cut.benefits["first_week"] + cut.benefits["n_weeks"]).max() == 2400


def test_every_column_has_a_family_and_origin_enters_models_only_on_request(features):
    families = feature_families(features.reset_index().columns)
    assert families["stairwell_neighbours_on_support_share"] == "stairwell"
    assert families["building_turnover"] == "area"
    assert families["years_in_denmark"] == "origin"
    assert families["audit_sex"] == "audit"
    without = model_feature_columns(families, include_origin=False)
    with_origin = model_feature_columns(families, include_origin=True)
    assert "origin_non_western" not in without and "origin_non_western" in with_origin
    assert "support_weeks_13w" in without
    assert not {"stairwell_id", "area", "audit_area", "as_of", "person_id"} & set(with_origin)


def test_network_columns_join_on_as_of_and_person(features):
    table = features.reset_index()
    network = pd.DataFrame({"as_of": [pd.Timestamp(AS_OF)], "person_id": ["anna"], "stairwell_contacts": [5]})
    merged = merge_network(table, network).set_index("person_id")
    assert merged.loc["anna", "stairwell_contacts"] == 5 and math.isnan(merged.loc["bo", "stairwell_contacts"])
    with pytest.raises(ValueError, match="same names"):
        merge_network(table, network.rename(columns={"stairwell_contacts": "age"}))


def test_network_join_by_position_gives_the_join_by_key(features):
    table = features.reset_index()
    network = table[["as_of", "person_id"]].assign(stairwell_contacts=np.arange(len(table)))
    by_position = merge_network(table, network)  # same rows in the same order
    by_key = merge_network(table, network.iloc[::-1].reset_index(drop=True))
    pd.testing.assert_frame_equal(by_position, by_key)
    assert by_position["stairwell_contacts"].tolist() == list(range(len(table)))
    assert by_position["person_id"].tolist() == table["person_id"].tolist()


def test_side_by_side_shares_the_columns_and_equals_concat():
    left = pd.DataFrame({"age": [30.0, 41.0, 52.0], "area": pd.array(["BO01", None, "BO02"], dtype="string[pyarrow]")},
                        index=[7, 3, 9])
    right = pd.DataFrame({"moves": pd.array([1, None, 0], dtype="Int8"), "employed": [True, False, True]})
    together = side_by_side([left, right])
    # rows by position, whatever the frames' own indexes; the data is the frames' own, not a copy
    expected = pd.concat([left.reset_index(drop=True), right], axis=1)
    pd.testing.assert_frame_equal(together, expected)
    assert np.shares_memory(together["age"].to_numpy(), left["age"].to_numpy())
    assert side_by_side([left], index=left.index).index.equals(left.index)
    with pytest.raises(ValueError, match=r"\['age'\] come from more than one frame"):
        side_by_side([left, right.rename(columns={"moves": "age"})])
    with pytest.raises(ValueError, match=r"\[2, 3\] rows"):
        side_by_side([left, right.iloc[:2]])


def test_feature_params_fail_loudly_with_the_key():
    from lyskegle.config import ParamsError, parse_section

    with pytest.raises(ParamsError, match=r"features\.min_group_person"):
        parse_section("features", {"min_group_person": 5})
    with pytest.raises(ParamsError, match="working_age_min"):
        parse_section("features", {"working_age_min": 70, "working_age_max": 64})
    assert parse_section("features", {"support_windows_weeks": [26]}).support_windows_weeks == [26]


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-year-order", "shuffled"])
def test_known_at_keeps_the_years_known_then_in_any_row_order(shuffled):
    rng = np.random.default_rng(6)
    income = pd.DataFrame({"person_id": rng.integers(0, 50, 300), "year": np.sort(rng.integers(2010, 2024, 300)).astype("int16"),
                           "total_income": rng.normal(size=300)})
    if shuffled:
        income = income.sample(frac=1, random_state=1)
    registers = dataclasses.replace(_registers(), income=income)
    for as_of in (dt.date(2010, 1, 4), dt.date(2016, 1, 4), dt.date(2030, 1, 7)):
        cut = known_at(registers, as_of).income
        pd.testing.assert_frame_equal(cut, income[income["year"] <= as_of.year - 1])
        if not shuffled and len(cut):  # in year order the cut is the table's first rows, not a copy
            assert np.shares_memory(cut["total_income"].to_numpy(), income["total_income"].to_numpy())


def test_features_of_a_date_do_not_depend_on_the_dates_computed_before_it():
    by_year = {name: frame.sort_values("year", kind="stable", ignore_index=True) if "year" in frame else frame
               for name, frame in dataclasses.asdict(_registers()).items()}
    registers = Registers(**by_year)  # in year order, as ingest writes them: the cuts share memory
    later = AS_OF + dt.timedelta(weeks=52)
    cohorts = _cohorts()
    both = pd.concat([cohorts.assign(as_of=later), cohorts], ignore_index=True)
    together = build_features(registers, both, PARAMS, GAP_WEEKS, WESTERN)
    for date in (AS_OF, later):
        alone = build_features(registers, cohorts.assign(as_of=date), PARAMS, GAP_WEEKS, WESTERN)
        pd.testing.assert_frame_equal(together[together["as_of"] == date].reset_index(drop=True), alone)


def test_dates_computed_two_at_a_time_give_the_same_table():
    cohorts = _cohorts()
    dates = [AS_OF + dt.timedelta(weeks=52 * k) for k in range(4)]
    several = pd.concat([cohorts.assign(as_of=date) for date in dates], ignore_index=True)
    one_by_one = build_features(_registers(), several, PARAMS.model_copy(update={"threads": 1}), GAP_WEEKS, WESTERN)
    two_at_a_time = build_features(_registers(), several, PARAMS.model_copy(update={"threads": 2}), GAP_WEEKS, WESTERN)
    assert one_by_one["as_of"].nunique() == 4
    pd.testing.assert_frame_equal(two_at_a_time, one_by_one, check_exact=True)


def test_latest_known_takes_each_persons_latest_year_in_any_row_order():
    register = pd.DataFrame({"person_id": [1, 2, 1, 3, 2, 1], "year": np.array([2015, 2015, 2016, 2016, 2017, 2017], dtype="int16"),
                             "education_group": [10, 20, 30, 40, 50, 60]})
    persons = pd.Index([1, 2, 3, 4], name="person_id")
    for frame in (register, register.iloc[::-1], register.sample(frac=1, random_state=2)):
        latest = latest_known(frame, persons)
        assert latest["education_group"].tolist()[:3] == [60, 50, 40] and pd.isna(latest["education_group"].iloc[3])


def test_first_year_seen_by_int_code_is_the_groupby_minimum_and_unknown_codes_are_never_seen():
    rng = np.random.default_rng(2)
    population = pd.DataFrame({"person_id": rng.integers(-1, 50, 400).astype("int32"),
                               "year": rng.integers(2012, 2024, 400)})
    persons = pd.Index(np.r_[np.arange(0, 70), -1].astype("int32"))  # codes 50-69 and -1 never appear
    by_code = first_year_seen(population, persons)
    by_text = first_year_seen(population.assign(person_id=population["person_id"].map("p{}".format)),
                              pd.Index(persons.map("p{}".format)))
    minimum = population.loc[population["person_id"] >= 0].groupby("person_id")["year"].min()
    assert np.array_equal(by_code[:50], minimum.reindex(range(50)).to_numpy("float64"), equal_nan=True)
    assert np.isnan(by_code[50:]).all() and np.array_equal(by_code[:50], by_text[:50], equal_nan=True)
