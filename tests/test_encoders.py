"""The stairwell rate encoder: shrunk training rates, leave-one-out on training rows, prior elsewhere.

Training rows (period 1), prior weight m = 2, min_count = 2:
  stairwell s1: labels 1, 1, 0, 0  -> n 4, sum 2
  stairwell s2: labels 1, 1        -> n 2, sum 2
  stairwell s3: label 0            -> n 1 (< min_count: prior)
Prior = 4 / 7. Rate s1 = (2 + 2 * 4/7) / (4 + 2), rate s2 = (2 + 2 * 4/7) / (2 + 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from lyskegle.encoders import StairwellRateEncoder, leave_one_out_rates, shrunk_group_rates

TRAIN = pd.DataFrame({
    "person_id": ["a", "b", "c", "d", "e", "f", "g"],
    "stairwell_id": ["s1", "s1", "s1", "s1", "s2", "s2", "s3"],
})
Y = np.array([1, 1, 0, 0, 1, 1, 0])
PRIOR = 4 / 7
RATE_S1 = (2 + 2 * PRIOR) / 6
RATE_S2 = (2 + 2 * PRIOR) / 4


def test_transform_uses_shrunk_training_rates_and_the_prior_for_unknown_or_small_stairwells():
    encoder = StairwellRateEncoder(prior_weight=2, min_count=2).fit(TRAIN, Y)
    later = pd.DataFrame({"stairwell_id": ["s1", "s2", "s3", "s9", None]})
    assert encoder.transform(later)[:, 0] == pytest.approx([RATE_S1, RATE_S2, PRIOR, PRIOR, PRIOR])
    assert list(encoder.get_feature_names_out()) == ["stairwell_id_rate"]


def test_ids_of_any_dtype_encode_like_their_text():
    # places are counted by integer codes and looked up once per distinct place; the rates are
    # keyed by the ids' text, so int, pyarrow-string and object ids give the same rates
    text = StairwellRateEncoder(prior_weight=2, min_count=2)
    expected_fit = text.fit_transform(TRAIN, Y)[:, 0]
    later = pd.Series(["s1", "s2", None, "s3", "s9", "s1"])
    expected = text.transform(pd.DataFrame({"stairwell_id": later}))[:, 0]
    as_numbers = {"s1": 1, "s2": 2, "s3": 3, "s9": 9}
    for dtype, convert in (("Int64", lambda s: s.map(as_numbers).astype("Int64")),
                           ("string[pyarrow]", lambda s: s.astype("string[pyarrow]"))):
        encoder = StairwellRateEncoder(prior_weight=2, min_count=2)
        fitted = encoder.fit_transform(TRAIN.assign(stairwell_id=convert(TRAIN["stairwell_id"])), Y)[:, 0]
        assert fitted == pytest.approx(expected_fit), dtype
        assert encoder.transform(pd.DataFrame({"stairwell_id": convert(later)}))[:, 0] == pytest.approx(expected), dtype


def test_fit_transform_leaves_each_training_row_out():
    encoded = StairwellRateEncoder(prior_weight=2, min_count=2).fit_transform(TRAIN, Y)[:, 0]
    # row a (label 1) in s1: the other three rows have sum 1
    assert encoded[0] == pytest.approx((1 + 2 * PRIOR) / (3 + 2))
    # row c (label 0) in s1: others sum 2
    assert encoded[2] == pytest.approx((2 + 2 * PRIOR) / (3 + 2))
    # row e in s2: one other row is fewer than min_count -> prior
    assert encoded[4] == pytest.approx(PRIOR)


def test_a_person_seen_at_several_dates_is_left_out_entirely():
    places = pd.Series(["s1"] * 4)
    persons = pd.Series(["a", "a", "b", "c"])
    y = np.array([1, 1, 0, 0])
    rates = leave_one_out_rates(places, y, prior_weight=0, min_count=1, prior=0.5, persons=persons)
    assert rates.tolist() == [0.0, 0.0, 2 / 3, 2 / 3]  # a's rows see only b and c; b sees a, a, c


def test_fit_on_period_one_uses_only_period_one_labels():
    period_2 = pd.DataFrame({"stairwell_id": ["s1", "s1", "s2"]})
    encoder = StairwellRateEncoder(prior_weight=2, min_count=2).fit(TRAIN, Y)
    before = encoder.transform(period_2)
    # period 2's own labels are not passed to fit, so flipping them (or anything else about
    # period 2) cannot change its encoding; refitting on period 1 gives the same numbers
    again = clone(encoder).fit(TRAIN, Y).transform(period_2)
    assert before.tolist() == again.tolist()
    assert before[:, 0] == pytest.approx([RATE_S1, RATE_S1, RATE_S2])
    # while changing a period-1 label does change it
    changed = clone(encoder).fit(TRAIN, 1 - Y).transform(period_2)
    assert changed[0, 0] != pytest.approx(before[0, 0])


def test_pure_function_twin_matches_the_encoder():
    table = shrunk_group_rates(TRAIN["stairwell_id"], Y, prior_weight=2, min_count=2)
    assert table.loc["s1", "rate"] == pytest.approx(RATE_S1)
    assert table.loc["s3", "rate"] == pytest.approx(PRIOR)
    assert table["n"].to_dict() == {"s1": 4, "s2": 2, "s3": 1}


def test_works_inside_a_pipeline_and_refuses_missing_labels():
    frame = TRAIN.assign(age=[20, 30, 40, 50, 60, 25, 35])
    model = make_pipeline(
        ColumnTransformer([("stairwell", StairwellRateEncoder(prior_weight=2, min_count=2), ["stairwell_id"])],
                          remainder="passthrough"),
        LogisticRegression(),
    )
    model.fit(frame[["stairwell_id", "age"]], Y)
    assert model.predict_proba(frame[["stairwell_id", "age"]]).shape == (7, 2)
    with pytest.raises(ValueError, match="missing"):
        StairwellRateEncoder().fit(TRAIN, [1, 0, None, 0, 1, 1, 0])
    assert StairwellRateEncoder(prior_weight=3).get_params()["prior_weight"] == 3


def test_the_fitted_encoder_keeps_no_counts_and_no_small_places():
    X = pd.DataFrame({"stairwell_id": ["a"] * 6 + ["b"] * 2})
    y = np.array([1, 1, 1, 0, 0, 0, 1, 1])
    encoder = StairwellRateEncoder(columns=["stairwell_id"], prior_weight=2.0, min_count=5).fit(X, y)
    kept = encoder.rates_["stairwell_id"]
    assert list(kept.index) == ["a"]  # b has 2 training persons: not kept, it gets the prior
    assert kept["a"] == pytest.approx((3 + 2 * 5 / 8) / (6 + 2))
    assert encoder.transform(pd.DataFrame({"stairwell_id": ["b"]}))[0, 0] == pytest.approx(5 / 8)
