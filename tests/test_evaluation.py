import datetime as dt

import numpy as np
import pytest

from lyskegle.evaluation import (
    baseline_score,
    baseline_sign,
    calibration_table,
    curve_points,
    label_horizon_weeks,
    precision_at_k_table,
    precision_recall_at_top,
    score_metrics,
    selection_folds,
    temporal_split,
)

# The first Monday of each year 2016..2023 (52 or 53 weeks apart).
YEARLY = [dt.date(2016, 1, 4), dt.date(2017, 1, 2), dt.date(2018, 1, 1), dt.date(2019, 1, 7),
          dt.date(2020, 1, 6), dt.date(2021, 1, 4), dt.date(2022, 1, 3), dt.date(2023, 1, 2)]


def test_the_last_dates_test_and_training_stops_a_gap_before_them():
    split = temporal_split(YEARLY, test_as_of_count=2, gap_weeks=52, horizon_weeks=52)
    assert split.test_as_of == (dt.date(2022, 1, 3), dt.date(2023, 1, 2))
    # 2021-01-04 is exactly 52 weeks before 2022-01-03, so it still trains
    assert split.train_as_of == tuple(YEARLY[:6])


def test_a_longer_gap_drops_the_last_training_date():
    split = temporal_split(YEARLY, test_as_of_count=2, gap_weeks=53, horizon_weeks=52)
    assert split.train_as_of[-1] == dt.date(2020, 1, 6)


def test_a_gap_shorter_than_the_label_horizon_is_refused():
    with pytest.raises(ValueError, match="train.gap_weeks=26.*horizon of 52"):
        temporal_split(YEARLY, test_as_of_count=2, gap_weeks=26, horizon_weeks=52)


def test_no_training_date_left_names_the_params_key():
    with pytest.raises(ValueError, match="train.test_as_of_count"):
        temporal_split(YEARLY[:2], test_as_of_count=2, gap_weeks=52, horizon_weeks=26)


def test_label_horizons_per_target():
    assert label_horizon_weeks("exit_26w", 26) == 26
    assert label_horizon_weeks("self_sufficient", 26) == 52
    with pytest.raises(ValueError, match="exit_26"):
        label_horizon_weeks("exit_62w", 26)


def test_selection_folds_expand_and_respect_the_gap():
    folds = selection_folds(YEARLY[:5], gap_weeks=52, n_folds=2)
    assert [f.validate_as_of for f in folds] == [dt.date(2019, 1, 7), dt.date(2020, 1, 6)]
    assert folds[0].fit_as_of == tuple(YEARLY[:3])
    assert folds[1].fit_as_of == tuple(YEARLY[:4])
    # with a two-year gap, 2020 learns only from 2016-2018: 2019 is too close
    wide = selection_folds(YEARLY[:5], gap_weeks=104, n_folds=1)
    assert wide[0].fit_as_of == tuple(YEARLY[:3])


def test_precision_and_recall_in_the_top_fifth():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    score = np.arange(10, 0, -1)  # already ranked: the first two are flagged
    assert precision_recall_at_top(y, score, 20) == (0.5, pytest.approx(1 / 3))


def test_score_metrics_of_a_perfect_ranking():
    metrics = score_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), [50])
    assert metrics["roc_auc"] == 1.0
    assert metrics["precision_at_50pct"] == 1.0
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)


def test_the_rule_is_oriented_on_training_rows():
    weeks = np.array([50, 40, 5, 0])
    assert baseline_sign(np.array([0, 0, 1, 1]), weeks) == -1  # more support, fewer exits
    assert baseline_sign(np.array([1, 1, 0, 0]), weeks) == 1
    assert list(baseline_score(np.array([3.0, np.nan]), -1)) == [-3.0, -0.0]


def test_curve_steps_cover_at_least_min_cell_persons():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 103)
    score = rng.random(103)
    points = curve_points(y, score, n_points=200, min_cell=5)
    steps = np.diff(points["flagged"].to_numpy())
    assert steps.min() >= 5
    last = points.iloc[-1]
    assert (last["flagged"], last["fpr"], last["tpr"]) == (103, 1.0, 1.0)


def test_a_curve_never_splits_tied_scores():
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0])
    score = np.array([0.9] * 7 + [0.1] * 5)
    points = curve_points(y, score, n_points=100, min_cell=2)
    assert list(points["flagged"]) == [0, 7, 12]
    assert points["tpr"].iloc[1] == 1.0


def test_calibration_drops_bins_under_min_cell():
    y = np.array([0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1])
    p = np.linspace(0.05, 0.95, 12)
    shown = calibration_table(y, p, n_bins=2, min_cell=5)
    assert list(shown["persons"]) == [6, 6]
    assert list(shown["observed_rate"]) == pytest.approx([1 / 6, 5 / 6])
    assert calibration_table(y, p, n_bins=3, min_cell=5).empty  # 4 persons per bin


def test_precision_at_k_table_has_model_and_baseline():
    y = np.array([1, 1, 0, 0])
    table = precision_at_k_table(y, np.array([0.9, 0.8, 0.1, 0.2]), np.array([0, 0, 1, 1]), [50])
    assert table.set_index("scorer")["precision"].to_dict() == {"model": 1.0, "baseline": 0.0}
