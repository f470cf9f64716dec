import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import TargetEncoder
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance

from lyskegle.config import TrainParams
from lyskegle.encoders import StairwellRateEncoder
from lyskegle.models import (
    Candidate,
    LabelledRows,
    choose_candidate,
    cohort_filter,
    column_roles,
    build_pipeline,
    labelled_rows,
    memoised_model,
    median_or_zero,
    model_grid,
    model_inputs,
    permutation_importance_table,
    synthetic_input_row,
    train_and_evaluate,
)

AS_OF = [dt.date(2016, 1, 4) + dt.timedelta(weeks=52 * i) for i in range(6)]
FAST = {"hist_gradient_boosting": {"max_iter": 20}, "importance_rows": 500, "importance_repeats": 1,
        "test_as_of_count": 1, "selection_folds": 2}


def planted(persons: int = 600, seed: int = 3) -> pd.DataFrame:
    """Labelled rows with a planted signal: the label rises with ``signal`` and is rare in stairwells
    s0-s2; ``noise`` carries nothing; weeks on support lower the label a little (the baseline)."""
    rng = np.random.default_rng(seed)
    frames = []
    for as_of in AS_OF:
        signal, stairwell = rng.normal(size=persons), rng.integers(0, 20, persons)
        support = rng.integers(0, 53, persons).astype("float64")
        logit = 1.5 * signal - 0.03 * (support - 26) - 2.5 * (stairwell < 3)
        frames.append(pd.DataFrame({
            "as_of": pd.Timestamp(as_of), "person_id": [f"p{i:04d}" for i in range(persons)],
            "label": (rng.random(persons) < 1 / (1 + np.exp(-logit))).astype("int8"),
            "signal": signal, "noise": rng.normal(size=persons), "support_weeks_52w": support,
            "stairwell_id": [f"s{s}" for s in stairwell],
            "audit_sex": rng.choice(["man", "woman"], persons), "audit_age_band": "30-39",
            "audit_origin_group": "danish", "audit_area": "A1",
        }))
    return pd.concat(frames, ignore_index=True)


def test_the_grid_is_every_combination():
    params = TrainParams(logistic={"C": [0.1, 1.0]}, hist_gradient_boosting={"max_iter": [10, 20]})
    names = [c.name for c in model_grid(params)]
    assert len(names) == 4
    assert names[0] == "logistic(C=0.1,max_iter=1000)"
    assert "max_iter=20" in names[3]


def test_only_the_listed_model_kinds_are_in_the_grid():
    assert {c.kind for c in model_grid(TrainParams(models=["logistic"]))} == {"logistic"}


def test_selection_takes_the_best_mean_and_lower_is_better_for_brier():
    a, b = Candidate("logistic", {"C": 1.0}), Candidate("hist_gradient_boosting", {"max_iter": 5})
    folds = pd.DataFrame({"candidate": [a.name, a.name, b.name, b.name],
                          "average_precision": [0.5, 0.7, 0.65, 0.6], "brier": [0.2, 0.2, 0.1, 0.3]})
    assert choose_candidate(folds, "average_precision", [a, b]) == b  # mean 0.625 beats 0.60
    assert choose_candidate(folds, "brier", [a, b]) == a  # both 0.20: a tie goes to the earlier candidate
    assert choose_candidate(folds.assign(brier=[0.3, 0.3, 0.1, 0.2]), "brier", [a, b]) == b  # 0.15 < 0.30


def test_censored_rows_are_excluded_and_counted():
    features = pd.DataFrame({"as_of": [dt.date(2020, 1, 6)] * 3, "person_id": ["p1", "p2", "p3"], "x": [1.0, 2.0, 3.0]})
    cohorts = pd.DataFrame({
        "target": ["exit_26w"] * 4 + ["self_sufficient"],
        "as_of": [dt.date(2020, 1, 6)] * 5,
        "person_id": ["p1", "p2", "p3", "p4", "p1"],
        "label": pd.array([1, None, 0, 1, 0], dtype="Int8"),
        "censored": [False, True, False, False, False],
    })
    rows, counts = labelled_rows(features, cohorts, "exit_26w")
    assert list(rows["person_id"]) == ["p1", "p3"]
    assert list(rows["label"]) == [1, 0]
    assert counts == {"cohort_rows": 4, "censored": 1, "without_features": 1}


def test_labelled_rows_follow_the_features_order_and_each_key_must_be_one_row():
    d1, d2 = dt.date(2020, 1, 6), dt.date(2021, 1, 4)
    features = pd.DataFrame({"as_of": [d1, d1, d2, d2], "person_id": ["p1", "p2", "p1", "p2"], "x": [1.0, 2.0, 3.0, 4.0]})
    # cohort rows in another order than the features; the same person at two dates is two keys
    cohorts = pd.DataFrame({"target": ["exit_26w"] * 3, "as_of": [d2, d1, d2], "person_id": ["p2", "p1", "p1"],
                            "label": pd.array([1, 0, 0], dtype="Int8"), "censored": [False] * 3})
    rows, counts = labelled_rows(features, cohorts, "exit_26w")
    assert list(zip(rows["as_of"].dt.date, rows["person_id"], rows["x"], rows["label"])) == [
        (d1, "p1", 1.0, 0), (d2, "p1", 3.0, 0), (d2, "p2", 4.0, 1)]
    assert counts == {"cohort_rows": 3, "censored": 0, "without_features": 0}
    with pytest.raises(ValueError, match="features table has more than one row"):
        labelled_rows(pd.concat([features, features.iloc[[1]]], ignore_index=True), cohorts, "exit_26w")
    with pytest.raises(ValueError, match="cohorts hold more than one usable row .* 'exit_26w'"):
        labelled_rows(features, pd.concat([cohorts, cohorts.iloc[[0]]], ignore_index=True), "exit_26w")


def test_reading_only_the_cohort_rows_changes_no_labelled_row(tmp_path):
    from lyskegle import io

    dates = [dt.date(2020, 1, 6), dt.date(2021, 1, 4)]
    parts = [pd.DataFrame({"as_of": [day] * 3, "person_id": ["p1", "p2", "p3"], "x": [1.0 + i, 2.0, 3.0]})
             for i, day in enumerate(dates)]
    io.write_parquet_parts(iter(parts), tmp_path / "features.parquet")
    cohorts = pd.DataFrame({
        "target": ["exit_26w", "exit_26w", "self_sufficient", "exit_26w"],
        "as_of": [dates[0], dates[1], dates[0], dates[1]],
        "person_id": ["p1", "p1", "p2", "p9"],
        "label": pd.array([1, 0, 1, 1], dtype="Int8"),
        "censored": [False] * 4,
    })
    read = io.read_parquet_where(tmp_path / "features.parquet", cohort_filter(cohorts, "exit_26w"), ["as_of", "person_id"])
    assert read["person_id"].tolist() == ["p1", "p1"] and read["x"].tolist() == [1.0, 2.0]
    every = io.read_parquet(tmp_path / "features.parquet")
    assert labelled_rows(read, cohorts, "exit_26w")[1] == labelled_rows(every, cohorts, "exit_26w")[1]
    pd.testing.assert_frame_equal(labelled_rows(read, cohorts, "exit_26w")[0], labelled_rows(every, cohorts, "exit_26w")[0])


def test_the_cohort_filter_matches_a_person_only_at_the_cohorts_own_date():
    dates = [dt.date(2020, 1, 6), dt.date(2021, 1, 4), dt.date(2022, 1, 3)]
    cohorts = pd.DataFrame({
        "target": ["exit_26w"] * 4 + ["self_sufficient"],
        "as_of": [dates[0], dates[1], dates[1], dates[0], dates[2]],
        "person_id": ["p1", "p2", "p3", "p4", "p1"],
        "label": pd.array([1, 0, 1, None, 1], dtype="Int8"),  # p4: no label, so not usable
        "censored": [False, False, True, False, False],  # p3 censored
    })
    # one part holding several dates, in no order, with Arrow text as the features table has
    features = pd.DataFrame({
        "as_of": pd.array([dates[1], dates[0], dates[0], dates[1], dates[2], dates[0], dates[1]], dtype="date32[pyarrow]"),
        "person_id": pd.array(["p1", "p1", "p2", "p2", "p1", "p4", "p3"], dtype="string[pyarrow]"),
    })
    keep = cohort_filter(cohorts, "exit_26w")(features)
    assert keep.tolist() == [False, True, False, True, False, False, False]
    assert not cohort_filter(cohorts.iloc[:0], "exit_26w")(features).any()


def test_model_inputs_are_plain_floats_and_strings_and_leave_the_input_alone():
    rows = pd.DataFrame({"x": pd.array([1, None], dtype="Int16"), "stairwell_id": pd.array(["s1", None], dtype="string")})
    before = rows.copy()
    roles = column_roles(rows, ["x"], use_stairwell=True)
    inputs = model_inputs(rows, roles)
    assert inputs["x"].dtype == "float64" and np.isnan(inputs["x"].iloc[1])
    assert list(inputs["stairwell_id"]) == ["s1", "missing"]
    pd.testing.assert_frame_equal(rows, before)


def test_a_missing_feature_column_is_named():
    with pytest.raises(KeyError, match="signl"):
        column_roles(planted(10), ["signl"], use_stairwell=False)


@pytest.fixture(scope="module")
def result():
    rows = planted()
    roles = column_roles(rows, ["signal", "noise", "support_weeks_52w"], use_stairwell=True)
    encoder = StairwellRateEncoder(columns=("stairwell_id",), prior_weight=10, min_count=5)
    params = TrainParams(**FAST)
    return train_and_evaluate(rows, roles, params, horizon_weeks=52, baseline_column="support_weeks_52w",
                              min_cell=5, stairwell_encoder=encoder)


def test_the_model_finds_the_planted_signal_and_beats_the_rule(result):
    assert result.metrics["roc_auc"] > result.metrics["baseline_roc_auc"] + 0.15
    assert result.metrics["precision_at_10pct"] > result.metrics["baseline_precision_at_10pct"]
    importance = result.importance.set_index("feature")["importance_mean"]
    assert importance.idxmax() == "signal"
    assert importance["stairwell_id"] > importance["noise"]


def test_training_and_test_periods_are_a_gap_apart(result):
    assert result.test_as_of == (AS_OF[-1],)
    assert max(result.train_as_of) <= AS_OF[-1] - dt.timedelta(weeks=52)
    assert set(result.test_predictions["as_of"]) == {AS_OF[-1]}
    assert len(result.test_predictions) == 600


def test_every_candidate_is_scored_on_every_fold(result):
    assert len(result.selection) == 2 * 2
    assert list(result.selection["validate_as_of"].unique()) == [AS_OF[3], AS_OF[4]]


def test_calibrated_scores_are_probabilities_near_the_observed_rate(result):
    scores = result.test_predictions["score"]
    assert scores.between(0, 1).all()
    rate = result.test_predictions["label"].mean()
    assert result.metrics["brier"] < rate * (1 - rate) - 0.03  # clearly better than a constant guess
    curve = result.calibration
    assert curve["mean_predicted"].is_monotonic_increasing
    assert np.corrcoef(curve["mean_predicted"], curve["observed_rate"])[0, 1] > 0.9


def test_test_predictions_carry_the_audit_attributes(result):
    assert list(result.test_predictions.columns) == [
        "person_id", "as_of", "label", "score", "baseline_score",
        "audit_sex", "audit_age_band", "audit_origin_group", "audit_area"]


def test_rows_read_on_demand_give_the_same_model_and_only_the_sampled_rows_are_taken():
    """As the train stage reads a large table: only the rows the fits sample are taken at once, and
    the test and calibration dates come in pieces with fresh indexes (as from Parquet row groups)."""
    rows = planted(persons=1500)
    roles = column_roles(rows, ["signal", "noise", "support_weeks_52w"], use_stairwell=True)
    params = TrainParams(**{**FAST, "max_fit_rows": 1000, "importance_rows": 600})
    taken, pieces = [], []

    def take(at):
        taken.append(at)
        return rows.iloc[at].reset_index(drop=True)

    def parts(at):
        pieces.append(at)
        for start in range(0, len(at), 400):
            yield slice(start, min(start + 400, len(at))), rows.iloc[at[start:start + 400]].reset_index(drop=True)

    keys = rows[["as_of", "person_id", "label", "support_weeks_52w"]]
    train = lambda source: train_and_evaluate(source, roles, params, horizon_weeks=52,  # noqa: E731
                                              baseline_column="support_weeks_52w", min_cell=5)
    on_demand, held = train(LabelledRows(keys, take, parts)), train(rows)

    pd.testing.assert_frame_equal(on_demand.test_predictions, held.test_predictions)
    pd.testing.assert_frame_equal(on_demand.selection, held.selection)
    pd.testing.assert_frame_equal(on_demand.importance, held.importance)
    assert on_demand.metrics == held.metrics and on_demand.thresholds == held.thresholds
    # 2 candidates x 2 folds x (fit + validation sample) + the calibration sample, 1000 rows each at most
    test_rows = np.flatnonzero(rows["as_of"] == pd.Timestamp(AS_OF[-1]))
    assert len(taken) == 1 and len(np.unique(taken[0])) == len(taken[0])
    assert len(taken[0]) < len(rows) - len(test_rows) and not np.isin(test_rows, taken[0]).any()
    calibration_rows = np.flatnonzero(rows["as_of"] == pd.Timestamp(AS_OF[-2]))
    assert [list(at) for at in pieces] == [list(test_rows), list(calibration_rows)]


def test_a_baseline_column_that_is_not_there_is_named():
    rows = planted(50)
    roles = column_roles(rows, ["signal"], use_stairwell=False)
    with pytest.raises(KeyError, match="support_weeks_26w"):
        train_and_evaluate(rows, roles, TrainParams(**FAST), horizon_weeks=52, baseline_column="support_weeks_26w",
                           min_cell=5)


def test_the_signature_row_is_made_of_medians():
    rows = pd.DataFrame({"x": [1.0, 2.0, 10.0], "stairwell_id": ["s1", "s2", "s3"]})
    row = synthetic_input_row(rows, column_roles(rows, ["x"], use_stairwell=True))
    assert row.to_dict("records") == [{"x": 2.0, "stairwell_id": "example-stairwell"}]


def test_the_signature_row_of_a_column_missing_in_every_row_is_zero_without_a_warning():
    # the first rows of a national extract lack whole feature layers (the early as-of dates)
    rows = pd.DataFrame({"x": pd.array([None, None], dtype="double[pyarrow]"), "y": [3.0, np.nan]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = synthetic_input_row(rows, column_roles(rows, ["x", "y"], use_stairwell=False))
    assert row.to_dict("records") == [{"x": 0.0, "y": 3.0}]


def test_gradient_boosting_trains_when_a_column_is_missing_in_every_row():
    from lyskegle.models import DropEmptyColumns, build_pipeline

    rows = planted(persons=200).assign(empty_layer=np.nan)
    roles = column_roles(rows, ["signal", "noise", "support_weeks_52w", "empty_layer"], use_stairwell=False)
    pipeline = build_pipeline(Candidate("hist_gradient_boosting", {"max_iter": 5}), roles, random_state=0)
    fitted = pipeline.fit(model_inputs(rows, roles), rows["label"])
    scores = fitted.predict_proba(model_inputs(rows, roles))[:, 1]
    assert scores.shape == (len(rows),) and np.isfinite(scores).all()
    dropped = DropEmptyColumns().fit(pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, np.nan]}))
    assert dropped.get_feature_names_out().tolist() == ["a"]


def test_sampled_cohort_keeps_every_other_row_and_a_sample_of_the_sampled_dates():
    from lyskegle.models import sampled_cohort

    dates = [dt.date(2018, 1, 1), dt.date(2019, 1, 7), dt.date(2023, 1, 2)]
    cohorts = pd.DataFrame({
        "target": ["t"] * 30 + ["other"] * 5, "as_of": [d for d in dates for _ in range(10)] + [dates[0]] * 5,
        "person_id": [f"p{i}" for i in range(35)], "label": [1.0] * 35, "censored": [False] * 35,
    })
    cohorts.loc[0, "censored"] = True  # never kept: not usable
    kept = sampled_cohort(cohorts, "t", dates[:2], max_rows=4, random_state=0)
    assert set(kept["target"]) == {"t"} and "p0" not in set(kept["person_id"])
    assert (kept["as_of"] == dates[2]).sum() == 10  # outside the sampled dates: all
    assert kept["as_of"].isin(dates[:2]).sum() == 4
    again = sampled_cohort(cohorts, "t", dates[:2], max_rows=4, random_state=0)
    assert kept["person_id"].tolist() == again["person_id"].tolist()
    assert len(sampled_cohort(cohorts, "t", dates[:2], max_rows=100, random_state=0)) == 29


def test_median_or_zero_imputes_as_scikit_learns_median():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(401, 6))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 2] = np.nan                       # no value at all: imputed as 0 and kept
    X[:, 3] = np.round(X[:, 3])            # ties
    X[1:, 4] = np.nan                      # one value
    X[::2, 5] = np.nan                     # an even count of values: the mean of the middle two
    ours = SimpleImputer(strategy=median_or_zero, add_indicator=True, keep_empty_features=True).fit(X)
    theirs = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True).fit(X)
    np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    assert ours.transform(X).shape[1] == 6 + 6  # every column kept, each with a missing indicator


def test_importance_on_two_processes_is_the_importance_on_one(result):
    """train.threads processes share permutation importance's columns; the shuffles, and so the
    table, stay those of one process."""
    rows = planted(persons=300, seed=8)
    roles = column_roles(rows, ["signal", "noise", "support_weeks_52w"], use_stairwell=True)
    inputs, labels = model_inputs(rows, roles), rows["label"].to_numpy()
    one, two = (permutation_importance_table(result.model, inputs, labels, n_repeats=3, random_state=5, n_jobs=n)
                for n in (1, 2))
    pd.testing.assert_frame_equal(one, two)
    assert one["importance_mean"].iloc[0] > 0 and one["feature"].iloc[0] == "signal"


@pytest.fixture(scope="module")
def boosted():
    """A calibrated gradient-boosting pipeline, as train builds it, with a column no tree splits on
    (``constant``), and model inputs of other rows than it was fitted on, with their labels."""
    rows = planted(persons=400, seed=11).assign(constant=1.0)
    roles = column_roles(rows, ["signal", "noise", "support_weeks_52w", "constant"], use_stairwell=True)
    fit_rows, score_rows = rows.iloc[:1600], rows.iloc[1600:]
    candidate = Candidate("hist_gradient_boosting", {"max_iter": 30, "max_leaf_nodes": 8})
    pipeline = build_pipeline(candidate, roles, random_state=0).fit(model_inputs(fit_rows, roles), fit_rows["label"])
    model = CalibratedClassifierCV(FrozenEstimator(pipeline), method="isotonic")
    model.fit(model_inputs(score_rows, roles), score_rows["label"])
    return model, model_inputs(score_rows, roles), score_rows["label"].to_numpy()


def _counted(monkeypatch, cls: type, method: str, key: str) -> dict[str, int]:
    """How many times ``cls.method`` has been called, counted from now on, under ``key``."""
    calls = {key: 0}
    original = getattr(cls, method)

    def counted(self, *args, **kwargs):
        calls[key] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    return calls


@pytest.fixture
def tree_predictions(monkeypatch):
    """How many times a boosting tree has predicted, counted from now on."""
    return _counted(monkeypatch, TreePredictor, "predict", "trees")


def test_memoised_trees_score_bit_for_bit_and_predict_only_where_a_column_changed(boosted, tree_predictions):
    model, inputs, _ = boosted
    memoised = memoised_model(model)
    pipeline = model.calibrated_classifiers_[0].estimator.estimator
    split_on = [set(tree.nodes["feature_idx"][tree.nodes["is_leaf"] == 0])
                for (tree,) in pipeline.steps[-1][1]._predictors]
    trees = len(split_on)
    np.testing.assert_array_equal(memoised.predict_proba(inputs), model.predict_proba(inputs))
    assert tree_predictions["trees"] == 2 * trees  # the first input: every tree, in both models

    prepared = pipeline[:-1].transform(inputs)
    order = np.random.default_rng(0).permutation(len(inputs))
    for column in ("signal", "noise", "constant", "stairwell_id"):
        shuffled = inputs.assign(**{column: inputs[column].to_numpy()[order]})
        changed = set(np.flatnonzero((pipeline[:-1].transform(shuffled) != prepared).any(axis=0)))
        before = tree_predictions["trees"]
        np.testing.assert_array_equal(memoised.predict_proba(shuffled), model.predict_proba(shuffled))
        again = tree_predictions["trees"] - before - trees  # the plain model predicted with every tree
        assert again == sum(bool(columns & changed) for columns in split_on)
        assert (again == 0) == (column == "constant")  # no tree splits on it: only kept predictions

    # another number of rows: every tree predicts, and the scores are still the model's
    before = tree_predictions["trees"]
    np.testing.assert_array_equal(memoised.predict_proba(inputs.iloc[:50]), model.predict_proba(inputs.iloc[:50]))
    assert tree_predictions["trees"] - before == 2 * trees


def test_the_memoised_text_encoders_encode_again_only_a_changed_text_column(boosted, monkeypatch):
    model, inputs, _ = boosted
    memoised = memoised_model(model)
    calls = _counted(monkeypatch, TargetEncoder, "transform", "encoded")
    memoised.predict_proba(inputs)
    assert calls["encoded"] == 1  # the first input
    order = np.random.default_rng(1).permutation(len(inputs))
    for column, encoded in (("signal", 0), ("stairwell_id", 1), ("noise", 0)):
        shuffled = inputs.assign(**{column: inputs[column].to_numpy()[order]})
        before = calls["encoded"]
        np.testing.assert_array_equal(memoised.predict_proba(shuffled), model.predict_proba(shuffled))
        assert calls["encoded"] - before == 1 + encoded  # the plain model's, and the memoised one's if changed


def test_importance_through_memoised_trees_is_scikit_learns_on_the_plain_model(boosted):
    model, inputs, labels = boosted
    ours = permutation_importance_table(model, inputs, labels, n_repeats=4, random_state=7, n_jobs=2)
    theirs = permutation_importance(model, inputs, labels, scoring="average_precision", n_repeats=4,
                                    random_state=7)
    by_feature = ours.set_index("feature").loc[list(inputs.columns)]
    np.testing.assert_array_equal(by_feature["importance_mean"].to_numpy(), theirs.importances_mean)
    np.testing.assert_array_equal(by_feature["importance_std"].to_numpy(), theirs.importances_std)
    assert by_feature.loc["constant", "importance_mean"] == 0


def test_a_model_without_boosting_or_text_encoders_is_not_memoised(result):
    assert memoised_model(result.model) is not None  # its stairwell rate, and trees if boosting
    rows = planted(persons=200, seed=3)
    plain = build_pipeline(Candidate("logistic", {"C": 1.0, "max_iter": 100}),
                           roles := column_roles(rows, ["signal"], use_stairwell=False), 0)
    assert memoised_model(plain.fit(model_inputs(rows, roles), rows["label"])) is None


def test_importance_of_a_logistic_model_through_its_memoised_encoders_is_scikit_learns(monkeypatch):
    rows = planted(persons=400, seed=12)
    roles = column_roles(rows, ["signal", "noise", "support_weeks_52w"], use_stairwell=True)
    fit_rows, score_rows = rows.iloc[:1600], rows.iloc[1600:]
    model = build_pipeline(Candidate("logistic", {"C": 1.0, "max_iter": 100}), roles, random_state=0)
    model.fit(model_inputs(fit_rows, roles), fit_rows["label"])
    inputs, labels = model_inputs(score_rows, roles), score_rows["label"].to_numpy()
    theirs = permutation_importance(model, inputs, labels, scoring="average_precision", n_repeats=3, random_state=7)
    calls = _counted(monkeypatch, TargetEncoder, "transform", "encoded")
    ours = permutation_importance_table(model, inputs, labels, n_repeats=3, random_state=7, n_jobs=1)
    by_feature = ours.set_index("feature").loc[list(inputs.columns)]
    np.testing.assert_array_equal(by_feature["importance_mean"].to_numpy(), theirs.importances_mean)
    np.testing.assert_array_equal(by_feature["importance_std"].to_numpy(), theirs.importances_std)
    assert calls["encoded"] == 1 + 3  # the unshuffled sample, then only the stairwell's own shuffles
