import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyskegle import ids
from lyskegle.ids import (
    as_of_runs,
    coded_members,
    codes_in,
    codes_of,
    cohort_members,
    days,
    on_persons,
    shared_codes,
    sorted_codes,
    sorted_unique,
)


def test_shared_codes_number_values_across_columns_in_order_of_first_appearance():
    (first, second), values = shared_codes([pd.Series(["b", None, "a"]), pd.Series(["a", "c"], dtype="string[pyarrow]")])
    assert first.tolist() == [0, -1, 1] and second.tolist() == [1, 2]
    assert values.to_pylist() == ["b", "a", "c"]


def test_codes_in_finds_positions_and_marks_the_unknown():
    vocabulary = pa.array(["p", "q", "r"])
    assert codes_in(pd.Series(["r", "x", None, "p"]), vocabulary).tolist() == [2, -1, -1, 0]
    assert codes_in(pd.Series(["q"]), pa.array(["q"], type=pa.string())).tolist() == [0]


def test_cohort_members_are_distinct_sorted_and_run_by_date():
    day, later = dt.date(2020, 1, 6), dt.date(2021, 1, 4)
    members = cohort_members(pd.DataFrame({"as_of": [later, day, day, day], "person_id": ["a", "b", "a", "b"]}))
    assert members["person_id"].tolist() == ["a", "b", "a"]
    assert list(as_of_runs(members["as_of"])) == [(day, 0, 2), (later, 2, 3)]
    assert all(type(date) is dt.date for date, _, _ in as_of_runs(members["as_of"]))
    assert list(as_of_runs(members["as_of"].iloc[:0])) == []


_IDS = st.lists(st.one_of(st.none(), st.sampled_from(["p", "q", "r", "pq", "Å", "æ", "b2", "10", "9"])), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(_IDS, min_size=1, max_size=4), st.integers(2, 3), st.integers(1, 5), st.booleans())
def test_shared_codes_side_by_side_are_the_one_pass_codes(columns, threads, slice_rows, arrow):
    columns = [pd.Series(values, dtype="string[pyarrow]" if arrow else object) for values in columns]
    expected_codes, expected_values = shared_codes(columns)
    original = ids.MIN_SLICE_ROWS
    try:
        ids.MIN_SLICE_ROWS = slice_rows  # these short columns take the threaded way
        codes, values = shared_codes(columns, threads)
    finally:
        ids.MIN_SLICE_ROWS = original
    assert values.to_pylist() == expected_values.to_pylist() and values.type == pa.large_string()
    assert [coded.dtype for coded in codes] == [np.dtype("int32")] * len(columns)
    assert [coded.tolist() for coded in codes] == [coded.tolist() for coded in expected_codes]


@settings(max_examples=200, deadline=None)
@given(_IDS, _IDS, st.booleans())
def test_sorted_codes_are_codes_in_the_sorted_distinct_values(first, second, arrow):
    columns = [pd.Series(first, dtype="string[pyarrow]" if arrow else object), pd.Series(second, dtype="string[pyarrow]")]
    codes, vocabulary = sorted_codes(columns)
    assert vocabulary.type == pa.large_string()
    # Python orders text by code point, as Arrow orders UTF-8 bytes
    assert vocabulary.to_pylist() == sorted({value for values in (first, second) for value in values if value is not None})
    for column, coded in zip(columns, codes):
        assert coded.dtype == np.int32
        assert coded.tolist() == codes_in(column, vocabulary).tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(_IDS, min_size=1, max_size=4), st.integers(1, 4), st.integers(1, 7))
def test_codes_of_slices_columns_across_threads_and_gives_codes_in(columns, threads, slice_rows):
    columns = [pd.Series(values, dtype="string[pyarrow]") for values in columns]
    vocabulary = pa.array(sorted({value for value in columns[0] if value is not None and value is not pd.NA}),
                          type=pa.string())
    expected = [codes_in(column, vocabulary).tolist() for column in columns]
    original = ids.MIN_SLICE_ROWS
    try:
        ids.MIN_SLICE_ROWS = slice_rows  # short slices, so that these columns are cut
        coded = codes_of(columns, vocabulary, threads)
        assert [codes.tolist() for codes in coded] == expected
        assert all(codes.dtype == np.int32 for codes in coded)
    finally:
        ids.MIN_SLICE_ROWS = original


def test_codes_of_cuts_a_long_column_into_a_slice_per_thread(monkeypatch):
    seen = []
    monkeypatch.setattr(ids, "MIN_SLICE_ROWS", 3)
    positions_in = ids._positions_in
    monkeypatch.setattr(ids, "_positions_in", lambda values, dictionary: seen.append(len(values)) or positions_in(values, dictionary))
    column = pd.Series(list("pqrpqrpq"), dtype="string[pyarrow]")
    assert codes_of([column], pa.array(["q", "r"]), 2)[0].tolist() == [-1, 0, 1, -1, 0, 1, -1, 0]
    assert sorted(seen) == [4, 4]
    seen.clear()
    codes_of([column, column.iloc[:2]], pa.array(["q"]), 2)
    assert sorted(seen) == [2, 8]  # one thread per column: none is cut


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([dt.date(2020, 1, 6), dt.date(2021, 1, 4), dt.date(2019, 1, 7)]),
                          st.one_of(st.none(), st.sampled_from(["a", "b", "c", "ab", "Ø"]))), max_size=30),
       st.lists(st.sampled_from(["a", "b", "c", "d", "ab", "Ø", "Ø2"]), max_size=6), st.booleans())
def test_coded_members_are_the_distinct_sorted_cohort_rows_with_their_codes(rows, others, arrow_dates):
    cohorts = pd.DataFrame(rows, columns=["as_of", "person_id"]).astype({"person_id": "string[pyarrow]"})
    if arrow_dates:
        cohorts["as_of"] = cohorts["as_of"].astype("date32[pyarrow]")
    (cohort_codes, _), vocabulary = sorted_codes([cohorts["person_id"], pd.Series(others, dtype=object)])
    members, member_codes = coded_members(cohorts["as_of"], cohort_codes, vocabulary)
    expected = pd.DataFrame({  # distinct and sorted by pandas
        "as_of": pd.to_datetime(cohorts["as_of"]).astype("date32[pyarrow]"),
        "person_id": cohorts["person_id"].astype("string[pyarrow]"),
    }).drop_duplicates().sort_values(["as_of", "person_id"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(members, expected, check_exact=True)
    pd.testing.assert_frame_equal(cohort_members(cohorts), expected, check_exact=True)
    assert member_codes.tolist() == codes_in(expected["person_id"], vocabulary).tolist()


def test_coded_members_refuse_a_row_without_a_date():
    with pytest.raises(ValueError, match="no as_of date"):
        coded_members(pd.Series([dt.date(2020, 1, 6), None]), np.array([0, 0]), pa.array(["a"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 5), max_size=30), st.sampled_from(["int64", "int32", "uint8", "bool", "datetime64[D]"]))
def test_sorted_unique_is_numpys_unique(values, dtype):
    values = np.abs(np.array(values, dtype="int64")).astype(dtype) if dtype in ("uint8", "bool") else np.array(values).astype(dtype)
    expected = np.unique(values)
    assert sorted_unique(values).dtype == expected.dtype
    np.testing.assert_array_equal(sorted_unique(values), expected)
    np.testing.assert_array_equal(sorted_unique(values.reshape(-1, 1)), expected)  # flattened, as np.unique does


def test_sorted_unique_refuses_floats_and_text():
    for values in (np.array([1.0, np.nan, np.nan]), np.array(["a", "b"])):
        with pytest.raises(TypeError, match="integers"):
            sorted_unique(values)


def test_is_in_and_float_by_id_agree_with_pandas_on_arrow_text():
    values = pd.Series(["b", None, "a", "c", "a"], dtype="string[pyarrow]")
    for members in ({"a", "x"}, pd.Index(["c"]), pd.Series(["b", "a"], dtype="string[pyarrow]"), []):
        expected = values.isin(list(members)).fillna(False).to_numpy(bool)
        assert ids.is_in(values, members).tolist() == expected.tolist()
    table = pd.Series([2.5, 1.0], index=pd.Index(["a", "c"], dtype="string[pyarrow]"))
    np.testing.assert_array_equal(ids.float_by_id(values, table), values.map(table).to_numpy("float64", na_value=np.nan))
    assert np.isnan(ids.float_by_id(values, table.iloc[:0])).all()


def test_days_agrees_with_pandas_for_every_kind_of_date_column():
    dates = [dt.date(2016, 1, 4), None, dt.date(2023, 1, 2), dt.date(1958, 12, 31)]
    expected = pd.to_datetime(pd.Series(dates)).to_numpy("datetime64[D]")
    two_chunks = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([pa.array(dates[:2], pa.date32()),
                                                                          pa.array(dates[2:], pa.date32())])))
    kinds = {
        "python dates": pd.Series(dates, dtype=object),
        "arrow dates": pd.Series(dates).astype("date32[pyarrow]"),
        "arrow dates in two chunks": two_chunks,
        "arrow timestamps": pd.Series(pd.to_datetime(pd.Series(dates))).astype("timestamp[ns][pyarrow]"),
        "datetime64": pd.to_datetime(pd.Series(dates)),
    }
    for kind, values in kinds.items():
        got = days(values)
        assert got.dtype == np.dtype("datetime64[D]"), kind
        np.testing.assert_array_equal(got, expected, err_msg=kind)


def test_on_dates_picks_the_rows_on_the_given_dates():
    values = pd.Series([dt.date(2016, 1, 4), dt.date(2017, 1, 2), None, dt.date(2016, 1, 4)]).astype("date32[pyarrow]")
    assert ids.on_dates(values, [dt.date(2016, 1, 4)]).tolist() == [True, False, False, True]
    assert ids.on_dates(values, {dt.date(2017, 1, 2), dt.date(2020, 1, 6)}).tolist() == [False, True, False, False]
    assert not ids.on_dates(values, []).any()


def test_datetimes_equals_pandas_to_datetime_and_keeps_the_index():
    values = pd.Series([dt.date(2016, 1, 4), None, dt.date(1958, 12, 31)], index=[7, 3, 5], name="birth_date")
    for column in (values, values.astype("date32[pyarrow]")):
        pd.testing.assert_series_equal(ids.datetimes(column), pd.to_datetime(values).astype("datetime64[ns]"))


def test_map_by_id_is_pandas_map_with_its_dtype_and_name():
    values = pd.Series(["d2", None, "d9", "d1", "d2"], dtype="string[pyarrow]", name="dwelling_id", index=[5, 4, 3, 2, 1])
    table = pd.Series(["A", "B"], index=pd.Index(["d1", "d2"], dtype="string[pyarrow]"), dtype="string[pyarrow]")
    mapped = ids.map_by_id(values, table)
    pd.testing.assert_series_equal(mapped, values.map(table))
    assert mapped.tolist() == ["B", pd.NA, pd.NA, "A", "B"]


def test_rows_of_years_are_the_masked_rows_and_a_slice_of_a_year_ordered_table():
    table = pd.DataFrame({"year": [2012, 2012, 2013, 2014, 2014, 2015], "v": np.arange(6.0)})
    for last, first in ((2014, None), (2014, 2013), (2013, 2013), (2011, None), (2016, 2016)):
        mask = (table["year"] <= last) & (table["year"] >= (first or 0))
        pd.testing.assert_frame_equal(ids.rows_of_years(table, last, first), table[mask])
        shuffled = table.iloc[[3, 0, 5, 2, 1, 4]]
        pd.testing.assert_frame_equal(ids.rows_of_years(shuffled, last, first), shuffled[mask.loc[shuffled.index]])
    assert np.shares_memory(ids.rows_of_years(table, 2014, 2013)["v"].to_numpy(), table["v"].to_numpy())


def _typed_columns(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One column of each dtype the features stage reindexes."""
    letters = np.array(list("abcdefghij"), dtype=object)[rng.integers(0, 10, n)]
    return pd.DataFrame({
        "float": rng.random(n), "int": rng.integers(0, 9, n), "bool": rng.random(n) > 0.5, "object": letters,
        "arrow_text": pd.array(letters, dtype="string[pyarrow]"), "nullable_int": pd.array(rng.integers(0, 9, n), dtype="Int32"),
        "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "category": pd.Categorical(letters),
    })


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 300), max_size=60), st.lists(st.integers(0, 320), max_size=80),
       st.sampled_from(["int32", "int64"]), st.sampled_from(["int32", "int64"]), st.integers(0, 2**32 - 1))
def test_on_persons_is_pandas_reindex(codes, wanted, code_dtype, wanted_dtype, seed):
    """Through the dense table (sorted codes) or not, the result is reindex's, dtypes and all."""
    rng = np.random.default_rng(seed)
    index = pd.Index(np.array(sorted(codes), dtype=code_dtype), name="person_id")
    persons = pd.Index(np.array(wanted, dtype=wanted_dtype), name="person_id")
    frame = _typed_columns(len(index), rng).set_axis(index)
    pd.testing.assert_frame_equal(on_persons(frame, persons), frame.reindex(persons), check_exact=True)
    for column in frame.columns:
        pd.testing.assert_series_equal(on_persons(frame[column], persons), frame[column].reindex(persons),
                                       check_exact=True)


def test_on_persons_takes_positions_from_a_dense_table_only_for_sorted_unique_codes(monkeypatch):
    rng = np.random.default_rng(1)
    persons = pd.Index(np.arange(0, 200, 3, dtype="int32"))
    by_pandas = []
    reindex = pd.Series.reindex
    monkeypatch.setattr(pd.Series, "reindex", lambda self, *a, **k: by_pandas.append(1) or reindex(self, *a, **k))
    values = pd.Series(rng.random(100), index=pd.Index(np.arange(100) * 2))
    on_persons(values, persons)
    assert by_pandas == []  # sorted, unique, non-negative codes: the dense table
    shuffled = values.sample(frac=1.0, random_state=0)
    pd.testing.assert_series_equal(on_persons(shuffled, persons), reindex(shuffled, persons))
    negative = values.set_axis(values.index - 50)
    pd.testing.assert_series_equal(on_persons(negative, persons), reindex(negative, persons))
    assert len(by_pandas) == 2  # an unsorted or negative index goes to pandas
    twice = pd.Series([1.0, 2.0], index=[4, 4])
    with pytest.raises(ValueError, match="duplicate"):
        on_persons(twice, persons)  # as reindex does
