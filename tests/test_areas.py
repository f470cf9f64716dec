"""Area indicators on a hand-made town: area A (dwellings dA1, dA2), area B (dB1), dX outside any area.

2019: p1, p2, p3 in dA1, p4 in dA2; p5, p6 in dB1.
2020: p1 moved to dA2 (a move within A), p5 moved from B to A; p6 still in B.
2021: p3 moved to dX (outside the areas); everyone else stays.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from lyskegle.areas import Criteria, area_indicators, criteria_long, suppress_area_table
from lyskegle.calendar import month_index, week_index
from lyskegle.config import AreaParams

WESTERN = {"5110", "5120"}  # Norway, Sweden: p3's 5432 (Iran) is non-Western

HOMES = {
    2019: {"p1": "dA1", "p2": "dA1", "p3": "dA1", "p4": "dA2", "p5": "dB1", "p6": "dB1"},
    2020: {"p1": "dA2", "p2": "dA1", "p3": "dA1", "p4": "dA2", "p5": "dA1", "p6": "dB1"},
    2021: {"p1": "dA2", "p2": "dA1", "p3": "dX", "p4": "dA2", "p5": "dA1", "p6": "dB1"},
}


def _town(data_from_2018: bool = True):
    """The town's tables; ``data_from_2018`` adds a 2018 benefit run and a 2018 traffic conviction
    for p6, so DREAM and the conviction register are known to cover 2018."""
    population = pd.DataFrame([
        {
            "person_id": person, "year": year, "birth_date": dt.date(1985, 6, 1), "sex": 1,
            "origin_type": 2 if person == "p3" else 1, "origin_country": "5432" if person == "p3" else "5100",
            "citizenship": "5100", "dwelling_id": dwelling, "moved_in": dt.date(2015, 1, 1),
            "family_id": f"f{person}",
        }
        for year, homes in HOMES.items() for person, dwelling in homes.items()
    ])
    dwellings = pd.DataFrame({
        "dwelling_id": ["dA1", "dA2", "dB1", "dX"], "stairwell_id": ["s1", "s2", "s3", "s4"],
        "area": ["A", "A", "B", None],
    })
    education = pd.DataFrame({
        "person_id": ["p1", "p2", "p3", "p5", "p6"], "year": [2019] * 5, "education_group": [30, 10, 10, 20, 30],
    })
    income = pd.DataFrame({
        "person_id": ["p1", "p3", "p4", "p5", "p6"], "year": [2019] * 5,
        "total_income": [300_000.0, 100_000.0, 200_000.0, 400_000.0, 50_000.0],
    })
    convictions = pd.DataFrame({
        "person_id": ["p3", "p4", "p6"], "decision_date": [dt.date(2019, 5, 1), dt.date(2019, 6, 1), dt.date(2018, 3, 1)],
        "offence_type": ["straffelov", "faerdsel", "faerdsel"],  # a traffic offence does not count
    })
    benefits = pd.DataFrame({
        "person_id": ["p2", "p3", "p4"],
        "code": [651, 131, 131],  # p2 on SU in November 2019; p3 and p4 on cash benefit from New Year 2020
        "first_week": [week_index(dt.date(2019, 11, 11)), week_index(dt.date(2019, 12, 30)), week_index(dt.date(2019, 12, 30))],
        "n_weeks": [4, 10, 60],  # p3 leaves support in March 2020, p4 is still on it at New Year 2021
    })
    if data_from_2018:
        benefits = pd.concat([benefits, pd.DataFrame({"person_id": ["p6"], "code": [131], "first_week": [week_index(dt.date(2018, 1, 1))], "n_weeks": [2]})])
    else:
        convictions = convictions[convictions["person_id"] != "p6"]
    employment = pd.DataFrame({"person_id": ["p1", "p5"], "first_month": [month_index(2019, 11)] * 2, "n_months": [2, 2]})
    return population, dwellings, education, income, convictions, benefits, employment


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return area_indicators(*_town(), western_countries=WESTERN, criteria=Criteria())


def _row(table: pd.DataFrame, area: str, year: int) -> pd.Series:
    return table[(table["area"] == area) & (table["year"] == year)].iloc[0]


def test_criteria_values_of_area_a_in_2020(table):
    row = _row(table, "A", 2020)
    assert row["residents"] == 5
    assert row["outside_work_education_share"] == pytest.approx(2 / 5)  # p3, p4: p1, p5 work, p2 studies
    assert row["non_western_share"] == pytest.approx(1 / 5)  # p3
    assert row["convicted_share"] == pytest.approx(1 / 5)  # p3's criminal-code conviction of 2019
    assert row["basic_education_share"] == pytest.approx(2 / 4)  # p2, p3 of four with a known education
    # residents 15-64 not in education with an income: p1, p3, p4, p5 (mean 250,000);
    # the reference adds p6 in B: mean 210,000
    assert row["income_ratio"] == pytest.approx(250_000 / 210_000)


def test_two_year_means_use_last_year(table):
    row = _row(table, "A", 2020)
    # 2019: nobody of p1-p4 worked or studied in November 2018 (share 1.0), and nobody was convicted in 2018
    assert row["outside_work_education_2y"] == pytest.approx((0.4 + 1.0) / 2)
    assert row["convicted_share_2y"] == pytest.approx((0.2 + 0.0) / 2)
    assert np.isnan(_row(table, "A", 2019)["outside_work_education_2y"])


def test_a_year_before_the_data_begin_is_unknown_not_everyone_outside(table):
    early = area_indicators(*_town(data_from_2018=False), western_countries=WESTERN, criteria=Criteria())
    row = _row(early, "A", 2019)
    assert np.isnan(row["outside_work_education_share"])  # DREAM here begins in November 2019
    assert np.isnan(row["convicted_share"])  # no conviction decided before 2019
    assert row["criteria_known"] == 1  # only the origin share: no 2018 education or income either


def test_criteria_met_counts_strictly_above_thresholds(table):
    # outside work/education (0.7 > 0.40) and convictions (0.10 > 0.027) are met;
    # basic education at exactly 0.50 is not above 0.50
    row = _row(table, "A", 2020)
    assert row["criteria_met"] == 2
    assert not row["meets_criteria"]
    lowered = area_indicators(*_town(), western_countries=WESTERN, criteria=Criteria(basic_education_share=0.45))
    assert _row(lowered, "A", 2020)["criteria_met"] == 3 and _row(lowered, "A", 2020)["meets_criteria"]


def test_moves_in_out_and_within(table):
    a, b = _row(table, "A", 2020), _row(table, "B", 2020)
    assert (a["moves_in"], a["moves_out"], a["moves_within"]) == (1, 0, 1)  # p5 in; p1 dA1 -> dA2
    assert (b["moves_in"], b["moves_out"], b["moves_within"]) == (0, 1, 0)
    assert _row(table, "A", 2021)["moves_out"] == 1  # p3 to a dwelling outside the areas


def test_elevator_effect_compares_leavers_with_stayers(table):
    row = _row(table, "A", 2020)
    assert row["persons_left_support"] == 1 and row["move_out_rate_left_support"] == 1.0  # p3 left and moved
    assert row["persons_stayed_on_support"] == 1 and row["move_out_rate_stayed_on_support"] == 0.0  # p4
    assert np.isnan(_row(table, "A", 2021)["move_out_rate_left_support"])  # no 2022 to follow into


def test_suppression_hides_small_counts_and_what_was_computed_over_them(table):
    shown = suppress_area_table(table, min_cell=5)
    row = shown[(shown["area"] == "A") & (shown["year"] == 2020)].iloc[0]
    assert row["residents"] == 5 and row["non_western_share"] == pytest.approx(0.2)
    assert pd.isna(row["moves_in"])  # one person
    assert pd.isna(row["persons_left_support"]) and pd.isna(row["move_out_rate_left_support"])
    assert pd.isna(row["basic_education_share"])  # over 4 persons with a known education
    b = shown[(shown["area"] == "B") & (shown["year"] == 2020)].iloc[0]
    assert pd.isna(b["residents"]) and pd.isna(b["criteria_met"])  # one resident
    assert row["suppressed_cells"] > 0


def test_criteria_long_pairs_each_value_with_its_threshold(table):
    rows = criteria_long(table, Criteria())
    income = rows[(rows["area"] == "A") & (rows["year"] == 2020) & (rows["criterion"] == "income_ratio")].iloc[0]
    assert income["threshold"] == 0.55 and income["value"] == pytest.approx(250 / 210)


def test_population_rows_out_of_year_order_give_the_same_table(table):
    """Each year's rows are a slice of the year-ordered population (as ingest writes it); in any
    other order they are found by a mask, with the same result."""
    population, *rest = _town()
    shuffled = population.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled["year"].is_monotonic_increasing
    pd.testing.assert_frame_equal(area_indicators(shuffled, *rest, western_countries=WESTERN, criteria=Criteria()),
                                  table)


def test_years_computed_two_at_a_time_give_the_same_table(table):
    town = _town()
    assert table["year"].nunique() > 2
    pd.testing.assert_frame_equal(area_indicators(*town, western_countries=WESTERN, criteria=Criteria(), threads=2),
                                  table, check_exact=True)


def test_the_criteria_are_the_thresholds_of_the_areas_params_and_nothing_else():
    params = AreaParams(income_ratio=0.6, criteria_needed=2, threads=2)
    assert Criteria.of(params) == Criteria(income_ratio=0.6, criteria_needed=2)


def test_age_is_counted_at_1_january_of_each_year():
    from lyskegle.areas import residents_by_year

    population = pd.DataFrame({
        "person_id": ["a", "b", "c", "a"], "year": [2020, 2020, 2020, 2021], "dwelling_id": ["dA1", "dX", "dA1", "dA1"],
        "birth_date": [dt.date(2000, 1, 1), dt.date(2000, 1, 2), dt.date(2000, 12, 31), dt.date(2000, 1, 1)],
    })
    dwellings = pd.DataFrame({"dwelling_id": ["dA1", "dX"], "area": ["A", None]})
    people = residents_by_year(population, dwellings)
    # born on 1 January: a birthday that day; born any later day of the year: not yet
    assert people["age"].tolist() == [20, 19, 19, 21]
    assert people["area"].tolist() == ["A", None, "A", "A"]
