import pandas as pd
import pytest

from lyskegle.privacy import suppress_small_cells


def test_small_cell_and_its_rate_are_suppressed_and_flagged():
    table = pd.DataFrame({"group": ["a", "b", "c"], "persons": [40, 3, 12], "rate": [0.5, 0.33, 0.25]})
    out = suppress_small_cells(table, "persons", min_cell=5, value_columns=["rate"], total_groups=None)
    assert out["suppressed"].tolist() == [False, True, False]
    assert pd.isna(out.loc[1, "persons"]) and pd.isna(out.loc[1, "rate"])
    assert out.loc[0, "persons"] == 40 and out.loc[2, "rate"] == 0.25


def test_secondary_suppression_hides_the_next_smallest_row_when_a_total_is_shown():
    # with a shown total of 55, the hidden 3 could be recovered from 55 - 40 - 12
    table = pd.DataFrame({"group": ["a", "b", "c"], "persons": [40, 3, 12]})
    out = suppress_small_cells(table, "persons", min_cell=5)
    assert out["suppressed"].tolist() == [False, True, True]


def test_secondary_suppression_continues_until_hidden_cells_hold_min_cell_persons():
    table = pd.DataFrame({"persons": [1, 2, 3, 50, 60]})
    out = suppress_small_cells(table, "persons", min_cell=10)
    # 1 + 2 + 3 = 6 < 10, so the next smallest (50) goes too
    assert out["suppressed"].tolist() == [True, True, True, True, False]


def test_secondary_suppression_works_within_each_table():
    table = pd.DataFrame({"sex": ["m", "m", "m", "w", "w"], "persons": [2, 30, 40, 30, 40]})
    out = suppress_small_cells(table, "persons", min_cell=5, total_groups=["sex"])
    assert out["suppressed"].tolist() == [True, True, False, False, False]


def test_unknown_count_column_is_a_clear_error():
    with pytest.raises(KeyError, match="persons"):
        suppress_small_cells(pd.DataFrame({"n": [1]}), "persons", min_cell=5)
