import numpy as np
import pandas as pd

from lyskegle.codes import is_public_support
from lyskegle.status import (
    code_in_week,
    employed_in_month,
    employed_months_between,
    ids_employed_in_month,
    ids_with_code_in_week,
    on_support_in_week,
    runs_in_windows,
    support_weeks_between,
    support_weeks_by_code,
)

# person a: cash benefit (131) weeks 10-14, then SU (651) weeks 15-16
# person b: sickness benefit (891) weeks 12-13, then holiday benefit (121, not support) week 20
BENEFITS = pd.DataFrame({
    "person_id": ["a", "a", "b", "b"],
    "code": [131, 651, 891, 121],
    "first_week": [10, 15, 12, 20],
    "n_weeks": [5, 2, 2, 1],
})


def test_support_weeks_count_only_the_part_of_a_run_inside_the_window():
    counted = support_weeks_between(BENEFITS, 13, 30)
    assert counted.to_dict() == {"a": 2, "b": 1}  # a: weeks 13, 14; b: week 13; SU and holiday do not count


def test_a_window_before_any_run_counts_nothing():
    assert support_weeks_between(BENEFITS, 0, 10).empty


def test_code_and_support_in_a_week():
    assert code_in_week(BENEFITS, 15).to_dict() == {"a": 651}
    assert list(on_support_in_week(BENEFITS, 12)) == ["a", "b"]
    assert list(on_support_in_week(BENEFITS, 15)) == []


def test_employment_months():
    employment = pd.DataFrame({"person_id": ["a", "c"], "first_month": [100, 98], "n_months": [3, 1]})
    assert employed_months_between(employment, 99, 101).to_dict() == {"a": 1}
    assert list(employed_in_month(employment, 98)) == ["c"]


def test_support_weeks_by_code_equal_the_weeks_by_id_in_every_window():
    rng = np.random.default_rng(4)
    n = 400
    benefits = pd.DataFrame({
        "person_id": [f"p{i}" for i in rng.integers(0, 60, n)],
        "code": rng.choice([131, 651, 891, 121, 111], n),
        "first_week": rng.integers(0, 200, n),
        "n_weeks": rng.integers(1, 30, n),
    })
    ids = sorted(set(benefits["person_id"]) | {"never"})
    codes = np.searchsorted(ids, benefits["person_id"].to_numpy())
    windows = [(0, 10), (40, 92), (150, 250), (300, 310)]
    for (start, end), weeks in zip(windows, support_weeks_by_code(benefits, codes, len(ids), windows)):
        by_id = support_weeks_between(benefits, start, end)
        assert dict(zip(ids, weeks.tolist())) == {i: int(by_id.get(i, 0)) for i in ids}


def test_weeks_and_months_by_int_person_code_equal_those_by_text_id():
    """The stages pass int person codes (summed by bincount); text ids are summed by groupby."""
    rng = np.random.default_rng(6)
    n = 500
    codes = rng.integers(0, 80, n).astype("int32")
    runs = pd.DataFrame({"code": rng.choice([131, 651, 891, 121], n), "first_week": rng.integers(0, 200, n),
                         "n_weeks": rng.integers(1, 30, n), "first_month": rng.integers(0, 50, n),
                         "n_months": rng.integers(1, 12, n)})
    by_code, by_id = runs.assign(person_id=codes), runs.assign(person_id=[f"p{c:03d}" for c in codes])
    for start, end in [(0, 10), (40, 92), (150, 250), (300, 310)]:
        weeks = support_weeks_between(by_code, start, end)
        assert weeks.index.dtype == "int32" and weeks.index.is_monotonic_increasing
        assert {f"p{c:03d}": w for c, w in weeks.items()} == support_weeks_between(by_id, start, end).to_dict()
    months = employed_months_between(by_code, 20, 30)
    assert {f"p{c:03d}": m for c, m in months.items()} == employed_months_between(by_id, 20, 30).to_dict()
    assert len(months) and months.dtype == "int64"


def test_ids_in_a_week_or_month_are_the_persons_of_the_sorted_lookups():
    for week in (9, 10, 12, 15, 20, 21):
        assert set(ids_with_code_in_week(BENEFITS, week)) == set(code_in_week(BENEFITS, week).index)
        assert set(ids_with_code_in_week(BENEFITS, week, is_public_support)) == set(on_support_in_week(BENEFITS, week))
    assert list(ids_with_code_in_week(BENEFITS, 12, lambda codes: codes == 891)) == ["b"]
    employment = pd.DataFrame({"person_id": ["a", "c", "a"], "first_month": [100, 98, 110], "n_months": [3, 1, 2]})
    for month in (97, 98, 100, 102, 103, 111):
        assert set(ids_employed_in_month(employment, month)) == set(employed_in_month(employment, month))


def test_runs_in_windows_are_those_with_a_week_inside_a_half_open_window():
    # runs [first, first + n): ends at 10 (before), covers 10, starts at 19 (last week in), starts at 20 (after)
    runs = pd.DataFrame({"first_week": [5, 8, 19, 20, 40], "n_weeks": [5, 3, 4, 2, 1]})
    assert runs_in_windows(runs, [(10, 20)]).tolist() == [False, True, True, False, False]
    assert runs_in_windows(runs, [(10, 20), (40, 41)]).tolist() == [False, True, True, False, True]
    assert not runs_in_windows(runs, []).any()
