import copy
from pathlib import Path

import pytest

from lyskegle.config import ParamsError, load_params, parse_section, validate_all

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_the_shipped_params_file_is_valid():
    sections = validate_all(load_params(PARAMS))
    assert sections["privacy"].min_cell == 5
    assert sections["labels"].horizon_weeks == 26


def test_a_misspelt_key_fails_and_names_the_key():
    raw = copy.deepcopy(load_params(PARAMS)["labels"])
    raw["gap_weks"] = raw.pop("gap_weeks")
    with pytest.raises(ParamsError, match=r"labels\.gap_weks"):
        parse_section("labels", raw)


def test_a_value_out_of_bounds_fails_and_names_the_key():
    with pytest.raises(ParamsError, match=r"privacy\.min_cell"):
        parse_section("privacy", {"min_cell": 1})


def test_an_as_of_date_that_is_not_a_monday_fails():
    raw = copy.deepcopy(load_params(PARAMS)["labels"])
    raw["as_of_dates"] = ["2016-01-05", "2017-01-02"]
    with pytest.raises(ParamsError, match="not a Monday"):
        parse_section("labels", raw)


def test_an_unknown_section_fails():
    with pytest.raises(ParamsError, match="trian"):
        validate_all({"trian": {}})
