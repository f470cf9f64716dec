import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lyskegle import io


def _part(as_of: str, ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "as_of": pd.Series([as_of] * len(ids)).astype("date32[pyarrow]"),
        "person_id": pd.Series(ids, dtype="string[pyarrow]"),
        "age": [float(len(i)) for i in ids],
    })


def test_parts_are_written_as_one_table(tmp_path):
    parts = [_part("2020-01-06", ["a", "bb"]), _part("2021-01-04", ["ccc"])]
    assert io.write_parquet_parts(iter(parts), tmp_path / "t.parquet") == 3
    back = io.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, pd.concat(parts, ignore_index=True), check_dtype=False)
    assert back["person_id"].dtype == "string[pyarrow]"


def test_a_part_with_other_columns_fails_and_leaves_no_file(tmp_path):
    parts = [_part("2020-01-06", ["a"]), _part("2021-01-04", ["b"]).rename(columns={"age": "alder"})]
    with pytest.raises(ValueError, match="alder"):
        io.write_parquet_parts(iter(parts), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_no_parts_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no parts"):
        io.write_parquet_parts(iter([]), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_text_is_read_arrow_backed_whatever_wrote_it(tmp_path):
    frame = pd.DataFrame({"person_id": pd.Series(["a", None], dtype="string[python]"), "n": [1, 2]})
    io.write_parquet(frame, tmp_path / "t.parquet")
    back = io.read_parquet(tmp_path / "t.parquet")
    assert back["person_id"].dtype == "string[pyarrow]" and back["person_id"].isna().tolist() == [False, True]
    assert back["n"].dtype == "int64"


def test_parts_written_while_the_next_is_computed_give_the_bytes_of_one_after_the_other(tmp_path):
    parts = [_part(f"20{20 + i}-01-06", [f"p{j}" for j in range(i * 50, i * 50 + 40)]) for i in range(4)]
    io.write_parquet_parts(iter(parts), tmp_path / "overlapped.parquet")
    with pq.ParquetWriter(tmp_path / "serial.parquet", pa.Table.from_pandas(parts[0], preserve_index=False).schema,
                          compression="zstd") as writer:
        for part in parts:
            writer.write_table(pa.Table.from_pandas(part, preserve_index=False))
    assert (tmp_path / "overlapped.parquet").read_bytes() == (tmp_path / "serial.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "overlapped.parquet").metadata.num_row_groups == 4


def test_a_failure_while_computing_a_part_leaves_no_file(tmp_path):
    def parts():
        yield _part("2020-01-06", ["a"])
        yield _part("2021-01-04", ["b"])
        raise RuntimeError("the third part could not be computed")

    with pytest.raises(RuntimeError, match="third part"):
        io.write_parquet_parts(parts(), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_parts_of_several_files_in_any_order_each_give_their_own_table(tmp_path):
    a = [_part("2020-01-06", ["a", "bb"]), _part("2021-01-04", ["ccc"])]
    b = [_part("2020-01-06", ["x"]), _part("2022-01-03", ["yy", "z"])]
    with io.ParquetParts() as parts:
        for path, part in ((tmp_path / "a.parquet", a[0]), (tmp_path / "b.parquet", b[0]),
                           (tmp_path / "b.parquet", b[1]), (tmp_path / "a.parquet", a[1])):
            parts.write(path, part)
        assert not (tmp_path / "a.parquet").exists() and not (tmp_path / "b.parquet").exists()
    assert parts.rows == {tmp_path / "a.parquet": 3, tmp_path / "b.parquet": 3}
    for name, expected in (("a", a), ("b", b)):
        back = io.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, pd.concat(expected, ignore_index=True), check_dtype=False)
        assert pq.ParquetFile(tmp_path / f"{name}.parquet").metadata.num_row_groups == 2


def test_a_failure_after_several_files_were_opened_leaves_none_of_them(tmp_path):
    with pytest.raises(RuntimeError, match="later file"):
        with io.ParquetParts() as parts:
            parts.write(tmp_path / "a.parquet", _part("2020-01-06", ["a"]))
            parts.write(tmp_path / "b.parquet", _part("2020-01-06", ["b"]))
            raise RuntimeError("a later file could not be read")
    assert list(tmp_path.iterdir()) == []


def test_a_part_that_does_not_fit_the_first_parts_types_fails_and_leaves_no_file(tmp_path):
    first = _part("2020-01-06", ["a"])
    with pytest.raises((pa.ArrowInvalid, pa.ArrowNotImplementedError)):
        with io.ParquetParts() as parts:
            parts.write(tmp_path / "a.parquet", first)
            parts.write(tmp_path / "a.parquet", first.assign(age=["not a number"]))
    assert list(tmp_path.iterdir()) == []


def test_rows_by_number_are_read_from_the_row_groups_that_hold_them_each_once(tmp_path, monkeypatch):
    parts = [_part("2020-01-06", ["a", "bb"]), _part("2021-01-04", ["ccc"]), _part("2022-01-03", ["d", "ee", "f"])]
    io.write_parquet_parts(iter(parts), tmp_path / "by_date.parquet")
    every = pd.concat(parts, ignore_index=True)
    read = []
    original = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, group, *a, **k: read.append(group) or original(self, group, *a, **k))
    rows = np.array([1, 3, 5])
    pd.testing.assert_frame_equal(io.read_parquet_rows(tmp_path / "by_date.parquet", rows),
                                  every.iloc[rows].reset_index(drop=True))
    assert read == [0, 2]
    pieces = list(io.parquet_row_parts(tmp_path / "by_date.parquet", rows, columns=["person_id"]))
    assert [(where.start, where.stop) for where, _ in pieces] == [(0, 1), (1, 3)]
    assert [piece["person_id"].tolist() for _, piece in pieces] == [["bb"], ["d", "f"]]
    nothing = io.read_parquet_rows(tmp_path / "by_date.parquet", np.array([], dtype="int64"), columns=["age"])
    assert nothing.empty and list(nothing.columns) == ["age"]


@pytest.mark.parametrize("rows, message", [([3, 1], "ascending"), ([1, 1], "ascending"), ([-1], "ascending"),
                                           ([6], "row 6 asked for, but the file has 6 rows")])
def test_row_numbers_out_of_order_or_beyond_the_file_are_a_clear_error(tmp_path, rows, message):
    io.write_parquet_parts(iter([_part("2020-01-06", ["a", "b", "c"]), _part("2021-01-04", ["d", "e", "f"])]),
                           tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=message):
        io.read_parquet_rows(tmp_path / "t.parquet", np.array(rows))


def test_rows_equal_to_a_value_are_read_from_its_row_groups_only(tmp_path, monkeypatch):
    parts = [_part("2020-01-06", ["a", "bb"]), _part("2021-01-04", ["ccc"]), _part("2022-01-03", ["d"])]
    io.write_parquet_parts(iter(parts), tmp_path / "by_date.parquet")
    mixed = pd.concat(parts, ignore_index=True).iloc[[2, 0, 3, 1]]
    io.write_parquet(mixed, tmp_path / "mixed.parquet")  # one row group holding every date
    read = []
    original = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups",
                        lambda self, groups, *a, **k: read.append(list(groups)) or original(self, groups, *a, **k))
    date = parts[1]["as_of"].iloc[0]
    pd.testing.assert_frame_equal(io.read_parquet_equal(tmp_path / "by_date.parquet", "as_of", date), parts[1])
    assert read == [[1]]
    on_first = io.read_parquet_equal(tmp_path / "mixed.parquet", "as_of", parts[0]["as_of"].iloc[0])
    assert on_first["person_id"].tolist() == ["a", "bb"]  # in file order
    only_ids = io.read_parquet_equal(tmp_path / "by_date.parquet", "as_of", date, columns=["as_of", "person_id"])
    pd.testing.assert_frame_equal(only_ids, parts[1][["as_of", "person_id"]])
    nobody = io.read_parquet_equal(tmp_path / "by_date.parquet", "as_of", pd.Timestamp("2030-01-07").date())
    assert nobody.empty and list(nobody.columns) == ["as_of", "person_id", "age"]
    with pytest.raises(KeyError, match="when"):
        io.read_parquet_equal(tmp_path / "by_date.parquet", "when", date)


def test_a_csv_read_for_some_columns_gives_those_columns_as_the_whole_read_does(tmp_path):
    path = tmp_path / "bef2020.csv"
    # a quoted name, a name with spaces, Latin-1 text in a wanted column and in one not wanted
    path.write_bytes('"PNR";KOEN; MOR_PID ;FOED_DAG\n1;1;Ø3;2000-01-01\n2;2;;Ærø\n'.encode("latin-1"))
    wanted = {"PNR", "MOR_PID"}.__contains__
    whole = io.read_raw_register(path, arrow=True)
    some = io.read_raw_register(path, arrow=True, wanted=wanted)
    assert some.column_names == ["PNR", "MOR_PID"]
    assert some.encoding == whole.encoding == "latin-1"
    for name in some.column_names:
        assert some.read_column(name).equals(whole.read_column(name))


def test_a_ragged_row_is_an_error_when_only_some_columns_are_read(tmp_path):
    path = tmp_path / "ind2020.csv"
    path.write_text("PNR;PERINDKIALT_13\n1;100\n2\n")
    with pytest.raises(io.ExtractError, match=r"ind2020.csv: row 2 .* 1 fields but the header has 2"):
        io.read_raw_register(path, arrow=True, wanted={"PNR"}.__contains__)


@pytest.mark.parametrize("ahead", [1, 3])
def test_read_ahead_produces_at_most_ahead_items_past_the_one_consumed_and_keeps_their_order(ahead):
    produced = []

    def items():
        for i in range(8):
            produced.append(i)
            yield i

    consumed = []
    for item in io.read_ahead(items(), ahead=ahead):
        consumed.append(item)
        if item == 2:
            deadline = time.monotonic() + 10
            while len(produced) < 3 + ahead and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)  # time to run further ahead, were it allowed to
            assert max(produced) == 2 + ahead
    assert consumed == list(range(8))


def test_read_ahead_raises_a_failure_where_its_item_would_have_come():
    def items():
        yield 1
        yield 2
        raise RuntimeError("the third item could not be produced")

    seen = []
    with pytest.raises(RuntimeError, match="third item"):
        for item in io.read_ahead(items(), ahead=3):
            seen.append(item)
    assert seen == [1, 2]


def test_read_ahead_needs_at_least_one_item_ahead():
    with pytest.raises(ValueError, match="at least 1"):
        list(io.read_ahead(iter([1]), ahead=0))
