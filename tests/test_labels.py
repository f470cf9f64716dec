import datetime as dt

import numpy as np
import pandas as pd
import pytest

from lyskegle.calendar import week_index
from lyskegle.config import LabelParams
from lyskegle.labels import (
    Labels,
    as_of_fits_data,
    exit_26w_cohort,
    exit_26w_label,
    find_spells,
    make_labels,
    self_sufficient_cohort,
    self_sufficient_label,
    summarise,
)

CASH, SICKNESS, HOLIDAY, SU, EMIGRATED, STATE_PENSION, DEAD = 131, 891, 121, 651, 997, 998, 999


def runs(*rows: tuple[str, int, int, int]) -> pd.DataFrame:
    """Benefit runs from (person, code, first week, last week) with the last week included."""
    return pd.DataFrame({
        "person_id": [r[0] for r in rows],
        "code": np.array([r[1] for r in rows], dtype="int16"),
        "first_week": np.array([r[2] for r in rows], dtype="int32"),
        "n_weeks": np.array([r[3] - r[2] + 1 for r in rows], dtype="int16"),
    })


def plain(values) -> list:
    """Values as plain Python, with None for missing (pd.NA, NaN)."""
    return [None if pd.isna(v) else v.item() if hasattr(v, "item") else v for v in values]


def params(**changes) -> LabelParams:
    return LabelParams(as_of_dates=[dt.date(2016, 1, 4), dt.date(2017, 1, 2)], **changes)


def spells_by_person(benefits: pd.DataFrame, gap_weeks: int = 4, first_week: int = 0, last_week: int = 99):
    spells = find_spells(benefits, gap_weeks, first_week, last_week)
    return {person: rows.drop(columns=["person_id", "spell_id"]).to_dict("records")
            for person, rows in spells.groupby("person_id")}


# ---------------------------------------------------------------- spells (data: weeks 0-99, gap 4)
def test_a_gap_shorter_than_gap_weeks_stays_inside_the_spell():
    # cash benefit weeks 10-19, blank 20-21, again 22-25, then blank: one spell [10, 26)
    spells = spells_by_person(runs(("a", CASH, 10, 19), ("a", CASH, 22, 25)))
    assert spells["a"] == [{"first_week": 10, "end_week": 26, "support_weeks": 14,
                            "end_reason": "gap", "left_censored": False}]


def test_gap_weeks_without_support_start_a_new_spell_whatever_code_they_carry():
    # a: blank weeks 15-18 (4 = gap_weeks) split; b: blank 15-17 (3) does not;
    # c: holiday benefit (not support) 15-20 splits like blank weeks would
    spells = spells_by_person(runs(
        ("a", CASH, 10, 14), ("a", CASH, 19, 22),
        ("b", CASH, 10, 14), ("b", SICKNESS, 18, 22),
        ("c", CASH, 10, 14), ("c", HOLIDAY, 15, 20), ("c", CASH, 21, 25),
    ))
    assert [(s["first_week"], s["end_week"]) for s in spells["a"]] == [(10, 15), (19, 23)]
    assert [(s["first_week"], s["end_week"], s["support_weeks"]) for s in spells["b"]] == [(10, 23, 10)]
    assert [(s["first_week"], s["end_week"]) for s in spells["c"]] == [(10, 15), (21, 26)]


def test_a_spell_that_ends_in_su_ends_in_education_unless_another_code_comes_first():
    spells = spells_by_person(runs(
        ("su", CASH, 30, 39), ("su", SU, 40, 45),
        ("late_su", CASH, 30, 39), ("late_su", SU, 42, 45),  # blank 40-41, SU is still the first code
        ("holiday_first", CASH, 30, 39), ("holiday_first", HOLIDAY, 40, 40), ("holiday_first", SU, 41, 45),
    ))
    assert [(s["end_week"], s["end_reason"]) for s in spells["su"]] == [(40, "education")]
    assert spells["late_su"][0]["end_reason"] == "education"
    assert spells["holiday_first"][0]["end_reason"] == "gap"


def test_emigration_or_death_in_the_ending_gap_censors_the_spell():
    spells = spells_by_person(runs(
        ("dies", SICKNESS, 50, 59), ("dies", DEAD, 62, 99),  # 999 in week 62, inside gap 60-63
        ("emigrates_later", CASH, 50, 59), ("emigrates_later", EMIGRATED, 64, 99),  # after the gap
        ("dies_at_data_end", CASH, 90, 97), ("dies_at_data_end", DEAD, 98, 99),  # gap not complete
    ))
    assert [(s["end_week"], s["end_reason"]) for s in spells["dies"]] == [(60, "censored")]
    assert spells["emigrates_later"][0]["end_reason"] == "gap"
    assert [(s["end_week"], s["end_reason"]) for s in spells["dies_at_data_end"]] == [(98, "censored")]


def test_a_spell_without_gap_weeks_observed_after_it_is_running():
    spells = spells_by_person(runs(("a", CASH, 80, 96), ("b", CASH, 80, 95)))
    assert spells["a"][0]["end_reason"] == "running" and pd.isna(spells["a"][0]["end_week"])
    # b's last support week is 95: weeks 96-99 are four observed blank weeks
    assert (spells["b"][0]["end_week"], spells["b"][0]["end_reason"]) == (96, "gap")


def test_a_spell_starting_within_gap_weeks_of_the_data_start_has_an_unknown_start():
    spells = spells_by_person(runs(("a", CASH, 3, 9), ("b", CASH, 4, 9)), first_week=0)
    assert spells["a"][0]["left_censored"] is True  # week 3: only weeks 0-2 seen before it
    assert spells["b"][0]["left_censored"] is False  # weeks 0-3 seen without support


def test_spells_do_not_depend_on_row_order_and_are_numbered_in_person_week_order():
    benefits = runs(("b", CASH, 10, 14), ("a", CASH, 40, 44), ("a", CASH, 10, 14))
    spells = find_spells(benefits.iloc[::-1], 4, 0, 99)
    assert spells[["person_id", "first_week", "spell_id"]].values.tolist() == [
        ["a", 10, 0], ["a", 40, 1], ["b", 10, 2]]
    assert str(spells["end_week"].dtype) == "Int32" and spells["first_week"].dtype == "int32"


def test_overlapping_runs_are_a_clear_error():
    with pytest.raises(ValueError, match="person a overlap at week 12"):
        find_spells(runs(("a", CASH, 10, 14), ("a", SICKNESS, 12, 20)), 4, 0, 99)


# ---------------------------------------------------------------- exit_26w at 2016-01-04
AS_OF = dt.date(2016, 1, 4)
A = week_index(AS_OF)
ADULT = dt.date(1980, 6, 1)


def population(births: dict[str, dt.date], year: int = 2016) -> pd.DataFrame:
    return pd.DataFrame({"person_id": list(births), "year": np.int16(year), "birth_date": list(births.values())})


def exit_cohort(benefits, births, **changes):
    p = params(**changes)
    spells = find_spells(benefits, p.gap_weeks, A - 100, A + 100)
    members = exit_26w_cohort(spells, benefits, population(births), AS_OF, p)
    spell = spells.set_index("spell_id").loc[members["spell_id"]]
    label, censored = exit_26w_label(spell["end_week"], spell["end_reason"], A, p, A + 100)
    return dict(zip(members["person_id"], zip(plain(label), plain(censored), plain(members["spell_first_week"]))))


def test_exit_26w_label_around_the_horizon_boundary():
    benefits = runs(
        ("ends_at_horizon", CASH, A - 5, A + 25),  # end_week = a + 26
        ("ends_after_horizon", CASH, A - 5, A + 26),  # end_week = a + 27
        ("dies", CASH, A - 5, A + 9), ("dies", DEAD, A + 10, A + 100),
        ("dies_after_horizon", CASH, A - 5, A + 30), ("dies_after_horizon", DEAD, A + 31, A + 100),
    )
    cohort = exit_cohort(benefits, {p: ADULT for p in benefits["person_id"].unique()})
    assert cohort == {
        "ends_at_horizon": (1, False, A - 5),
        "ends_after_horizon": (0, False, A - 5),
        "dies": (None, True, A - 5),
        "dies_after_horizon": (0, False, A - 5),  # still on support at the horizon
    }


@pytest.mark.parametrize("success, label", [(True, 1), (False, 0)])
def test_an_exit_to_education_is_a_success_only_when_the_param_says_so(success, label):
    benefits = runs(("su", CASH, A - 5, A + 4), ("su", SU, A + 5, A + 40))
    assert exit_cohort(benefits, {"su": ADULT}, education_exit_is_success=success) == {"su": (label, False, A - 5)}


def test_exit_26w_cohort_holds_spells_started_in_the_cohort_window_and_running_the_week_before():
    benefits = runs(
        ("window_start", CASH, A - 13, A + 40),  # cohort_weeks = 13: a-13 is the first week in
        ("too_early", CASH, A - 14, A + 40),
        ("left_the_week_before", CASH, A - 8, A - 4),  # blank a-3..a-1: no support code in a-1
        ("starts_at_as_of", CASH, A, A + 40),  # not on support in a-1
        ("second_spell", CASH, A - 40, A - 30), ("second_spell", CASH, A - 3, A + 40),
    )
    cohort = exit_cohort(benefits, {p: ADULT for p in benefits["person_id"].unique()})
    assert {p: first for p, (_, _, first) in cohort.items()} == {"window_start": A - 13, "second_spell": A - 3}


def test_exit_26w_cohort_ages_at_the_boundaries_and_residence():
    people = ["turns_18_on_as_of", "turns_18_next_day", "is_64", "turns_65_on_as_of", "not_resident"]
    benefits = runs(*[(p, CASH, A - 5, A + 40) for p in people])
    births = {
        "turns_18_on_as_of": dt.date(1998, 1, 4), "turns_18_next_day": dt.date(1998, 1, 5),
        "is_64": dt.date(1951, 1, 5), "turns_65_on_as_of": dt.date(1951, 1, 4),
    }
    assert sorted(exit_cohort(benefits, births)) == ["is_64", "turns_18_on_as_of"]


def test_a_running_spell_is_censored_only_when_the_data_end_before_the_outcome_is_known():
    end_week = pd.Series([None], dtype="Int32")
    reason = pd.Series(["running"])
    p = params()
    label, censored = exit_26w_label(end_week, reason, A, p, last_week=A + 26 + 4 - 1)
    assert (plain(label), plain(censored)) == ([0], [False])
    label, censored = exit_26w_label(end_week, reason, A, p, last_week=A + 26 + 4 - 2)
    assert (plain(label), plain(censored)) == ([None], [True])


# ---------------------------------------------------------------- self_sufficient at 2016-01-04
def test_self_sufficient_needs_48_of_52_weeks_without_support():
    benefits = runs(
        ("free_48", CASH, A + 10, A + 13),  # 4 support weeks
        ("free_47", CASH, A + 10, A + 14),  # 5 support weeks
        ("support_before", CASH, A - 10, A + 3),  # only weeks a..a+3 count: 48 free
        ("support_after", CASH, A + 48, A + 60),  # a+48..a+51 inside: 48 free
        ("emigrates", EMIGRATED, A + 30, A + 100),
        ("holiday", HOLIDAY, A, A + 20),  # not public support
    )
    p = params()
    members = self_sufficient_cohort(benefits, population({x: ADULT for x in benefits["person_id"].unique()}), AS_OF, p)
    label, censored = self_sufficient_label(benefits, members, A, p, A + 100)
    assert dict(zip(members, zip(plain(label), plain(censored)))) == {
        "emigrates": (None, True), "free_47": (0, False), "free_48": (1, False),
        "holiday": (1, False), "support_after": (1, False), "support_before": (1, False),
    }


def test_self_sufficient_cohort_leaves_out_the_dead_emigrated_retired_and_ages_outside_20_64():
    benefits = runs(
        ("dead", DEAD, A - 1, A + 100), ("emigrated", EMIGRATED, A - 3, A + 100),
        ("state_pension", STATE_PENSION, A - 1, A + 100), ("came_back", EMIGRATED, A - 30, A - 20),
    )
    births = {
        "dead": ADULT, "emigrated": ADULT, "state_pension": ADULT, "came_back": ADULT,
        "turns_20_on_as_of": dt.date(1996, 1, 4), "is_19": dt.date(1996, 1, 5),
        "is_64": dt.date(1951, 1, 5), "is_65": dt.date(1951, 1, 4),
    }
    members = self_sufficient_cohort(benefits, population(births), AS_OF, params())
    assert sorted(members) == ["came_back", "is_64", "turns_20_on_as_of"]


def test_self_sufficient_is_censored_when_the_data_end_inside_the_year():
    members = pd.Index(["a", "b"])
    benefits = runs(("a", CASH, A, A + 2))
    label, censored = self_sufficient_label(benefits, members, A, params(), last_week=A + 50)
    assert plain(censored) == [True, True] and label.isna().all()


# ---------------------------------------------------------------- as-of dates, the whole stage, summary
def test_as_of_dates_whose_windows_do_not_fit_the_data_are_skipped():
    p = params()
    assert as_of_fits_data("exit_26w", AS_OF, p, A - 17, A + 29) is None  # a-13 >= first+4; a+26+4 <= end
    assert as_of_fits_data("exit_26w", AS_OF, p, A - 17, A + 28) == "label window runs past the data"
    assert as_of_fits_data("exit_26w", AS_OF, p, A - 16, A + 29) == "cohort window starts before spell starts can be known"
    assert as_of_fits_data("self_sufficient", AS_OF, p, A - 1, A + 51) is None
    assert as_of_fits_data("self_sufficient", AS_OF, p, A - 1, A + 50) == "label window runs past the data"


@pytest.mark.parametrize("threads", [1, 2])
def test_make_labels_builds_both_cohorts_and_skips_dates_past_the_data(threads):
    benefits = runs(("a", CASH, A - 5, A + 40), ("b", CASH, A + 10, A + 13))
    pop = pd.concat([population({"a": ADULT, "b": ADULT}, year) for year in (2016, 2017)])
    out = make_labels(benefits, pop, params(), A - 60, A + 60, threads)
    assert out.skipped[["target", "as_of"]].values.tolist() == [
        ["exit_26w", dt.date(2017, 1, 2)], ["self_sufficient", dt.date(2017, 1, 2)]]
    rows = out.cohorts
    assert list(zip(rows["target"], rows["person_id"], plain(rows["label"]), plain(rows["spell_first_week"]))) == [
        ("exit_26w", "a", 0, A - 5),
        ("self_sufficient", "a", 0, None), ("self_sufficient", "b", 1, None),
    ]
    assert str(out.cohorts["label"].dtype) == "Int8" and str(out.cohorts["spell_first_week"].dtype) == "Int32"


@pytest.mark.parametrize("threads", [1, 2])
def test_cohorts_come_in_target_order_then_as_of_order_whatever_order_they_are_computed_in(threads):
    later = dt.date(2017, 1, 2)
    benefits = runs(("a", CASH, A - 5, A + 40), ("b", CASH, A + 45, A + 60))
    pop = pd.concat([population({"a": ADULT, "b": ADULT}, year) for year in (2016, 2017)])
    out = make_labels(benefits, pop, params(), A - 60, A + 120, threads)
    assert out.skipped.empty
    blocks = out.cohorts[["target", "as_of"]].drop_duplicates().values.tolist()
    assert blocks == [["exit_26w", AS_OF], ["exit_26w", later], ["self_sufficient", AS_OF], ["self_sufficient", later]]
    exit_rows = out.cohorts[out.cohorts["target"] == "exit_26w"]
    assert list(zip(exit_rows["as_of"], exit_rows["person_id"])) == [(AS_OF, "a"), (later, "b")]


def test_summary_suppresses_small_counts_and_every_figure_they_could_be_recovered_from():
    def cohort(as_of, positives, negatives, censored):
        n = positives + negatives + censored
        return pd.DataFrame({
            "target": "exit_26w", "as_of": as_of, "person_id": [f"p{i}" for i in range(n)],
            "label": pd.array([1] * positives + [0] * negatives + [None] * censored, dtype="Int8"),
            "censored": [False] * (positives + negatives) + [True] * censored,
            "spell_first_week": pd.array([1] * n, dtype="Int32"),
        })
    dates = [AS_OF, dt.date(2017, 1, 2), dt.date(2018, 1, 1)]
    cohorts = pd.concat([cohort(dates[0], 10, 20, 3), cohort(dates[1], 6, 30, 7), cohort(dates[2], 2, 40, 6)],
                        ignore_index=True)
    spells = pd.DataFrame({"end_reason": ["gap"] * 6 + ["running"] * 2})
    summary = summarise(Labels(spells, cohorts, pd.DataFrame(columns=["target", "as_of", "reason"])), min_cell=5)
    shown = [summary["exit_26w"]["as_of"][str(d)] for d in dates]
    # 3 censored is hidden, and so is the cohort size 33 that would give it away (33 - 30)
    assert shown[0] == {"persons": None, "labelled": 30, "positives": 10, "censored": None, "positive_rate": 0.3333}
    assert shown[1] == {"persons": 43, "labelled": 36, "positives": 6, "censored": 7, "positive_rate": 0.1667}
    # 2 positives are hidden; with 42 labelled shown, the 40 negatives (and the rate) would give them away
    assert shown[2] == {"persons": 48, "labelled": 42, "positives": None, "censored": 6, "positive_rate": None}
    assert summary["exit_26w"]["total"] == {"persons": None, "labelled": 108, "positives": None, "censored": None}
    assert summary["spells"]["by_end_reason"] == {"gap": 6, "education": None, "censored": None, "running": None}
    assert summary["spells"]["total"] is None
