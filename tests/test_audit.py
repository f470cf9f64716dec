"""The fairness audit (lyskegle.audit) and the audit stage's gate (pipelines/audit.py)."""

import datetime as dt
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aequitas.group import Group
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import precision_score, roc_auc_score

from lyskegle import io
from lyskegle.features import model_feature_columns
from lyskegle.identifier_scan import shown_small_cells
from lyskegle.models import Candidate, ColumnRoles, build_pipeline, column_roles, model_inputs
from lyskegle.audit import (
    AUDIT_COLUMNS,
    AuditInputError,
    FairnessRule,
    audit_groups,
    bootstrap_replicates,
    fairness_summary,
    fairness_table,
    flag_top_k,
    group_figures,
    person_classes,
    shown_fairness_table,
    train_test_gap,
    training_period_auc,
    verdict,
    weighted_figures,
)

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2022, 1, 3)


def rule(**changes) -> FairnessRule:
    settings = dict(top_k_percent=10, ratio_bounds=(0.8, 1.25), min_cell=5, min_expected_events=5,
                    bootstrap_samples=50, confidence=0.95, reference_groups={})
    settings.update(changes)
    return FairnessRule(**settings)


def predictions(groups: list[tuple[str, int, int, int]], area: str = "A") -> pd.DataFrame:
    """One as-of date. ``groups``: (sex, persons, flagged, positives among the flagged and among the
    rest alike: the first ``positives`` of the flagged and of the unflagged rows have label 1).
    Flagged rows score above every unflagged row, so the operating point flags exactly them when
    ``top_k_percent`` = 100 * flagged / persons overall. Age band, origin and area alternate so that
    every attribute has two groups."""
    rows = []
    for sex, persons, flagged, positives in groups:
        for i in range(persons):
            is_flagged = i < flagged
            position = i if is_flagged else i - flagged
            rows.append({"sex": sex, "flagged": is_flagged, "label": int(position < positives)})
    frame = pd.DataFrame(rows)
    n = len(frame)
    frame["person_id"] = [f"p{i:04d}" for i in range(n)]
    frame["as_of"] = AS_OF
    frame["score"] = np.where(frame["flagged"], 0.9, 0.1) - np.arange(n) * 1e-5
    frame["audit_sex"] = frame.pop("sex")
    frame["audit_age_band"] = np.where(np.arange(n) % 2 == 0, "18-29", "30-64")
    frame["audit_origin_group"] = np.where(np.arange(n) % 2 == 0, "danish", "non_western")
    frame["audit_area"] = np.where(np.arange(n) % 2 == 0, area, None)
    return frame.drop(columns="flagged")


# --- operating point --------------------------------------------------------------------------------

def test_top_k_flags_the_highest_scores_per_as_of_date_with_ties_broken_by_person():
    frame = pd.DataFrame({
        "as_of": ["2022", "2022", "2022", "2022", "2023", "2023", "2023"],
        "person_id": ["d", "c", "b", "a", "x", "y", "z"],
        "score": [0.9, 0.5, 0.5, 0.1, 0.2, 0.3, 0.1],
    })
    flagged = flag_top_k(frame, 50)
    # 2022: ceil(2) = 2 -> d (0.9) and b (0.5, before c); 2023: ceil(1.5) = 2 -> y, x
    assert flagged.tolist() == [True, False, True, False, True, True, False]


# --- figures against fairlearn and aequitas ---------------------------------------------------------

@pytest.fixture
def random_predictions():
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame({
        "person_id": [f"p{i:04d}" for i in range(n)],
        "as_of": np.where(np.arange(n) < 200, "2022-01-03", "2023-01-02"),
        "label": rng.integers(0, 2, n),
        "audit_sex": rng.choice(["1", "2"], n),
        "audit_age_band": rng.choice(["18-29", "30-49", "50-64"], n),
        "audit_origin_group": rng.choice(["danish", "western", "non_western"], n, p=[0.6, 0.2, 0.2]),
        "audit_area": rng.choice(["A", "B", None], n),
    })
    frame["score"] = np.clip(0.3 * frame["label"] + rng.random(n) * 0.7, 0, 1)
    return frame


@pytest.mark.parametrize("attribute", ["sex", "origin_group", "sex_x_origin_group"])
def test_group_figures_agree_with_fairlearn_and_aequitas(random_predictions, attribute):
    flagged = flag_top_k(random_predictions, 20)
    groups = audit_groups(random_predictions)[attribute]
    ours = group_figures(random_predictions["label"], flagged, random_predictions["score"], groups)

    y, f = random_predictions["label"].to_numpy(), flagged.to_numpy().astype(int)
    theirs = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
                 "precision": precision_score},
        y_true=y, y_pred=f, sensitive_features=groups.to_numpy(),
    ).by_group
    crosstabs, _ = Group().get_crosstabs(
        pd.DataFrame({"score": f, "label_value": y, attribute: groups.to_numpy()}), attr_cols=[attribute])
    crosstabs = crosstabs.set_index("attribute_value")
    for group in ours.index:
        assert ours.loc[group, "selection_rate"] == pytest.approx(theirs.loc[group, "selection_rate"])
        assert ours.loc[group, "selection_rate"] == pytest.approx(crosstabs.loc[group, "pprev"])
        for figure in ("tpr", "fpr", "precision"):
            assert ours.loc[group, figure] == pytest.approx(theirs.loc[group, figure])
            assert ours.loc[group, figure] == pytest.approx(crosstabs.loc[group, figure])
        assert ours.loc[group, "predictions"] == crosstabs.loc[group, "group_size"]
        assert ours.loc[group, "flagged"] == crosstabs.loc[group, "pp"]
        inside = (groups == group).to_numpy()
        assert ours.loc[group, "roc_auc"] == pytest.approx(roc_auc_score(y[inside], random_predictions["score"][inside]))


def test_unit_bootstrap_weights_reproduce_the_metricframe_figures(random_predictions):
    # the bootstrap recomputes the figures from weights; with weights of one it must give the data's own
    flagged = flag_top_k(random_predictions, 20)
    y, f, s = (random_predictions["label"].to_numpy(), flagged.to_numpy(), random_predictions["score"].to_numpy())
    expected = group_figures(random_predictions["label"], flagged, random_predictions["score"],
                             pd.Series("all", index=random_predictions.index)).loc["all"]
    got = weighted_figures(np.ones((1, len(y))), y, f, s)
    for figure in ("selection_rate", "tpr", "fpr", "precision", "roc_auc", "mean_score", "observed_rate"):
        assert got[figure][0] == pytest.approx(expected[figure])


def _persons_with_repeated_rows(rng: np.random.Generator, persons: int) -> tuple[np.ndarray, ...]:
    """1 to 3 rows per person with the person's score (so a person's rows move together: a
    bootstrap of rows would be too narrow), coarse scores (few cells), labels and flags tied to them."""
    person = np.repeat(np.arange(persons), rng.integers(1, 4, size=persons))
    score = (rng.integers(0, 6, size=persons) / 5)[person]
    label = (rng.random(len(person)) < 0.2 + 0.5 * score).astype(np.int8)
    flag = (score >= 0.8).astype(np.int8)
    return person, label, flag, score


def test_person_classes_hold_every_row_once():
    rng = np.random.default_rng(1)
    person = np.repeat(np.arange(2_000), rng.integers(1, 4, size=2_000))
    cell = rng.integers(0, 7, size=len(person))
    incidence, sizes = person_classes(person, cell)
    assert sizes.sum() == 2_000
    np.testing.assert_array_equal(incidence.T @ sizes, np.bincount(cell, minlength=7))
    assert len(sizes) < 2_000  # persons with the same cells share a class


def test_the_class_bootstrap_has_the_distribution_of_a_weight_per_person():
    # reference: a Poisson(1) weight for every person, spread over that person's rows
    rng = np.random.default_rng(5)
    person, label, flag, score = _persons_with_repeated_rows(rng, 3_000)
    samples = 3_000
    per_person = weighted_figures(rng.poisson(1.0, size=(samples, 3_000)).astype(float)[:, person], label, flag, score)
    by_class = bootstrap_replicates(pd.Series(person), label, flag, score, samples, np.random.default_rng(6))
    for figure in ("selection_rate", "tpr", "precision", "roc_auc", "observed_rate"):
        expected, got = per_person[figure], by_class[figure]
        assert abs(got.mean() - expected.mean()) < 4 * expected.std() / np.sqrt(samples), figure
        assert got.std() == pytest.approx(expected.std(), rel=0.08), figure


def test_a_group_without_positives_has_no_tpr_rather_than_zero():
    figures = group_figures(pd.Series([0, 0, 1, 0]), pd.Series([True, False, True, False]),
                            pd.Series([0.9, 0.1, 0.8, 0.2]), pd.Series(["a", "a", "b", "b"]))
    assert np.isnan(figures.loc["a", "tpr"]) and figures.loc["b", "tpr"] == 1.0


# --- the pass/fail rule -----------------------------------------------------------------------------

def test_a_group_never_flagged_fails_on_its_selection_rate_ratio():
    # 100 men with 20 flagged, 100 women with none: the ratio is 0, its whole interval too
    frame = predictions([("1", 100, 20, 10), ("2", 100, 0, 10)])
    table = fairness_table(frame, rule(), np.random.default_rng(0))
    women = table.set_index(["attribute", "group"]).loc[("sex", "2")]
    assert women["reference_group"] == "1"  # equal sizes: the first by name
    assert women["selection_rate"] == 0 and women["selection_rate_ratio"] == 0
    assert women["status"] == "fail" and not women["passed"]
    reasons, checks = fairness_summary(table, rule())
    assert any(r.startswith("fairness: sex = 2 vs 1: selection_rate_ratio") for r in reasons)
    assert checks["passed"] is False


def test_a_ratio_outside_the_bounds_with_an_interval_reaching_inside_is_uncertain_not_failed():
    # 200 men, 20 flagged (0.10); 60 women, 10 flagged (0.17): ratio 1.67, but resamples of 60 women
    # flag from about 4 to 16 of them, so the interval reaches into [0.8, 1.25]
    frame = predictions([("1", 200, 20, 5), ("2", 60, 10, 1)])
    table = fairness_table(frame, rule(top_k_percent=100 * 30 / 260), np.random.default_rng(0))
    women = table.set_index(["attribute", "group"]).loc[("sex", "2")]
    assert women["selection_rate_ratio"] == pytest.approx((10 / 60) / (20 / 200))
    assert women["selection_rate_ratio_low"] <= 1.25 < women["selection_rate_ratio"]
    assert women["status"] == "uncertain" and bool(women["passed"]) is True
    assert not women["tpr_checked"]  # 2 positives: under min_cell, no TPR is judged


def test_without_bootstrap_the_point_estimate_decides():
    frame = predictions([("1", 200, 20, 5), ("2", 60, 10, 1)])
    table = fairness_table(frame, rule(top_k_percent=100 * 30 / 260, bootstrap_samples=0), np.random.default_rng(0))
    assert table.set_index(["attribute", "group"]).loc[("sex", "2"), "status"] == "fail"


def test_a_small_group_with_none_flagged_is_not_judged_when_that_could_be_chance():
    # 200 men with 20 flagged (0.10); 20 women with none: 2 expected, so 0 is no evidence
    frame = predictions([("1", 200, 20, 5), ("2", 20, 0, 1)])
    table = fairness_table(frame, rule(top_k_percent=100 * 20 / 220), np.random.default_rng(0))
    women = table.set_index(["attribute", "group"]).loc[("sex", "2")]
    assert women["selection_rate_ratio"] == 0 and women["status"] == "not_judged" and pd.isna(women["passed"])
    reasons, _ = fairness_summary(table, rule())
    assert "fairness: no sex group besides the reference could be judged" in reasons[0]


def test_tpr_is_judged_only_with_enough_positives_in_group_and_reference():
    frame = predictions([("1", 100, 20, 12), ("2", 100, 20, 12)])
    table = fairness_table(frame, rule(top_k_percent=20), np.random.default_rng(0)).set_index(["attribute", "group"])
    assert table.loc[("sex", "2"), "tpr_checked"]
    assert table.loc[("sex", "2"), "tpr_ratio"] == pytest.approx(1.0)
    assert table.loc[("sex", "2"), "status"] == "pass"


def test_a_named_reference_group_is_used():
    frame = predictions([("1", 100, 20, 10), ("2", 60, 12, 6)])
    table = fairness_table(frame, rule(top_k_percent=20, reference_groups={"sex": "2"}), np.random.default_rng(0))
    assert set(table.loc[table["attribute"] == "sex", "reference_group"]) == {"2"}


def test_a_group_under_min_cell_is_shown_as_too_small_never_as_a_number():
    frame = predictions([("1", 100, 10, 5), ("2", 90, 9, 5)])
    frame.loc[frame.index[:3], "audit_area"] = "Tiny"  # 3 persons in area Tiny
    table = fairness_table(frame, rule(), np.random.default_rng(0))
    shown = shown_fairness_table(table, min_cell=5).set_index(["attribute", "group"])
    tiny = shown.loc[("area", "Tiny")]
    assert tiny["note"] == "too small" and tiny["status"] == "too_small"
    figures = ["persons", "predictions", "selection_rate", "tpr", "fpr", "precision", "roc_auc", "selection_rate_ratio"]
    assert tiny[figures].isna().all()
    # its 3 persons could be recovered from the total of the area table, so one more group is hidden
    assert (shown.loc["area", "note"] == "suppressed").sum() == 1
    assert table.set_index(["attribute", "group"]).loc[("area", "Tiny"), "persons"] == 3  # raw table keeps it


def test_a_rate_over_few_positives_is_suppressed_on_its_own():
    frame = predictions([("1", 100, 10, 20), ("2", 100, 10, 2)])  # women: 4 positives in all
    shown = shown_fairness_table(fairness_table(frame, rule(), np.random.default_rng(0)), 5).set_index(["attribute", "group"])
    assert pd.isna(shown.loc[("sex", "2"), "tpr"]) and not pd.isna(shown.loc[("sex", "2"), "selection_rate"])


def test_the_shown_table_has_the_required_columns(random_predictions):
    shown = shown_fairness_table(fairness_table(random_predictions, rule(), np.random.default_rng(0)), 5)
    for column in ("attribute", "group", "persons", "selection_rate", "tpr", "fpr", "precision",
                   "selection_rate_ratio", "passed"):
        assert column in shown.columns
    assert set(shown["attribute"]) == {"overall", "sex", "age_band", "origin_group", "area",
                                       "sex_x_origin_group", "origin_group_x_area"}
    assert (shown["persons"].dropna() >= 5).all()


def test_bootstrap_intervals_hold_the_estimate_and_repeat_with_the_seed(random_predictions):
    first = fairness_table(random_predictions, rule(), np.random.default_rng(3))
    again = fairness_table(random_predictions, rule(), np.random.default_rng(3))
    pd.testing.assert_frame_equal(first, again)
    sized = first.loc[first["persons"] >= 30]
    assert ((sized["selection_rate_low"] <= sized["selection_rate"]) & (sized["selection_rate"] <= sized["selection_rate_high"])).all()
    assert (sized["selection_rate_high"] > sized["selection_rate_low"]).all()


def _persons_seen_twice(random_predictions: pd.DataFrame) -> pd.DataFrame:
    """The random predictions with persons seen at both dates, tied scores, categorical columns and
    an area spelt as the missing areas are named: what the coded fairness table must get right."""
    frame = random_predictions.copy()
    frame["person_id"] = [f"p{i % 250:04d}" for i in range(len(frame))]
    frame["score"] = (frame["score"] * 20).round() / 20
    frame["audit_age_band"] = frame["audit_age_band"].astype("category")
    frame.loc[frame.index[::37], "audit_area"] = "outside_areas"
    return frame


def test_audit_groups_are_the_attributes_as_text_joined_for_the_intersections(random_predictions):
    frame = _persons_seen_twice(random_predictions)
    text = {a: frame[c].astype("string") for a, c in AUDIT_COLUMNS.items()}
    text["area"] = text["area"].fillna("outside_areas")
    text["sex_x_origin_group"] = text["sex"] + " x " + text["origin_group"]
    text["origin_group_x_area"] = text["origin_group"] + " x " + text["area"]
    pd.testing.assert_frame_equal(audit_groups(frame), pd.DataFrame(text), check_names=False)


@pytest.mark.parametrize("k", [15, 97])
def test_the_top_k_flags_are_those_of_a_sort_by_date_score_and_person(random_predictions, k):
    frame = _persons_seen_twice(random_predictions).sample(frac=1, random_state=2)
    # a missing score comes last, as pandas sorts it (the fairness table refuses one): at 97 %,
    # whether it or a lowest score is flagged tells
    frame.loc[frame.index[::50], "score"] = np.nan
    order = frame.sort_values(["as_of", "score", "person_id"], ascending=[True, False, True], kind="mergesort")
    rank = order.groupby("as_of").cumcount()
    expected = rank < np.ceil(order.groupby("as_of")["score"].transform("size") * k / 100)
    pd.testing.assert_series_equal(flag_top_k(frame, k), expected.reindex(frame.index).rename("flagged"))


def test_the_fairness_table_is_that_of_each_group_taken_on_its_own(random_predictions):
    # the table codes groups and cells once for all rows; taking each group's rows by its name,
    # in name order, with the same generator must give the same figures and intervals
    frame = _persons_seen_twice(random_predictions)
    table = fairness_table(frame, rule(), np.random.default_rng(4)).set_index(["attribute", "group"])
    groups = audit_groups(frame)
    groups.insert(0, "overall", "all")
    flagged = flag_top_k(frame, rule().top_k_percent)
    rng = np.random.default_rng(4)
    for attribute in groups.columns:
        figures = group_figures(frame["label"], flagged, frame["score"], groups[attribute])
        for group in sorted(figures.index):
            inside = (groups[attribute] == group).to_numpy()
            replicates = bootstrap_replicates(frame["person_id"][inside], frame["label"].to_numpy()[inside],
                                              flagged.to_numpy()[inside], frame["score"].to_numpy()[inside],
                                              rule().bootstrap_samples, rng)
            row = table.loc[(attribute, group)]
            assert row["persons"] == frame.loc[inside, "person_id"].nunique()
            for figure in ("selection_rate", "tpr", "roc_auc", "mean_score"):
                assert row[figure] == figures.loc[group, figure] or np.isnan(row[figure]), (attribute, group, figure)
                finite = replicates[figure][np.isfinite(replicates[figure])]
                if len(finite) >= 0.9 * len(replicates[figure]):
                    assert row[f"{figure}_low"] == np.percentile(finite, (1 - 0.95) / 2 * 100), (attribute, group, figure)


# --- input errors -----------------------------------------------------------------------------------

def test_a_missing_sensitive_column_is_a_clear_error():
    frame = predictions([("1", 20, 2, 1), ("2", 20, 2, 1)]).drop(columns="audit_origin_group")
    with pytest.raises(AuditInputError, match="audit_origin_group"):
        fairness_table(frame, rule(), np.random.default_rng(0))


def test_a_missing_sex_value_is_an_error_not_a_silent_pass():
    frame = predictions([("1", 20, 2, 1), ("2", 20, 2, 1)])
    frame.loc[3, "audit_sex"] = None
    with pytest.raises(AuditInputError, match="audit_sex: 1 row"):
        fairness_table(frame, rule(), np.random.default_rng(0))


def test_an_attribute_with_one_group_is_an_error():
    frame = predictions([("1", 40, 4, 2)])
    with pytest.raises(AuditInputError, match="audit_sex: only one group"):
        fairness_table(frame, rule(), np.random.default_rng(0))


def test_an_empty_categorical_group_is_an_error():
    frame = predictions([("1", 20, 2, 1), ("2", 20, 2, 1)])
    frame["audit_sex"] = pd.Categorical(frame["audit_sex"], categories=["1", "2", "9"])
    with pytest.raises(AuditInputError, match=r"\['9'\] have no persons"):
        audit_groups(frame)


def test_empty_predictions_and_a_missing_reference_group_are_errors():
    frame = predictions([("1", 20, 2, 1), ("2", 20, 2, 1)])
    with pytest.raises(AuditInputError, match="empty"):
        fairness_table(frame.iloc[:0], rule(), np.random.default_rng(0))
    with pytest.raises(AuditInputError, match="reference_groups.origin_group"):
        fairness_table(frame, rule(reference_groups={"origin_group": "western"}), np.random.default_rng(0))


# --- other checks and the verdict -------------------------------------------------------------------

def test_train_test_gap_flags_a_gap_above_the_bound():
    assert train_test_gap(0.90, 0.80, 0.05)["passed"] is False
    assert train_test_gap(0.82, 0.80, 0.05) == pytest.approx(
        {"train_auc": 0.82, "test_auc": 0.80, "gap": 0.02, "max_gap": 0.05, "passed": True})


def test_the_verdict_passes_only_without_reasons():
    assert verdict({"fairness": [], "privacy": []}, {})["passed"] is True
    failed = verdict({"fairness": ["a"], "privacy": ["b"]}, {"fairness": {"ran": True}}, ["w"])
    assert failed == {"passed": False, "reasons": ["a", "b"], "warnings": ["w"], "checks": {"fairness": {"ran": True}}}


# --- the stage --------------------------------------------------------------------------------------

def _audit_stage():
    spec = importlib.util.spec_from_file_location("audit_stage", ROOT / "pipelines" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN_AS_OF = [dt.date(2020, 1, 6), dt.date(2021, 1, 4)]
TEST_AS_OF = [dt.date(2023, 1, 2)]


def _write_training_inputs(root: Path) -> None:
    """Features, families, cohorts, a fitted logistic model and its model_info, the way train leaves them."""
    rng = np.random.default_rng(5)
    frames = []
    for as_of in (*TRAIN_AS_OF, *TEST_AS_OF):
        n = np.arange(200)
        x = rng.normal(size=len(n))
        frames.append(pd.DataFrame({
            "as_of": as_of, "person_id": [f"p{i:04d}" for i in n], "x1": x,
            "origin_non_western": (n % 3 == 0).astype("float64"),
            "audit_sex": np.where(n % 2 == 0, "1", "2"), "audit_age_band": np.where(n % 4 < 2, "18-29", "30-64"),
            "audit_origin_group": np.where(n % 3 == 0, "non_western", "danish"),
            "audit_area": np.where(n % 5 == 0, "A", None),
            "label": (x + rng.normal(size=len(n)) > 0.5).astype("int8"),
        }))
    rows = pd.concat(frames, ignore_index=True)
    families = {"x1": "history", "origin_non_western": "origin",
                **{c: "audit" for c in ("audit_sex", "audit_age_band", "audit_origin_group", "audit_area")}}
    roles = column_roles(rows, model_feature_columns(families, False), use_stairwell=False)
    train = rows.loc[rows["as_of"].isin(TRAIN_AS_OF)]
    chosen = Candidate("logistic", {"C": 1.0, "max_iter": 200})
    model = build_pipeline(chosen, roles, 0).fit(model_inputs(train, roles), train["label"])
    io.write_parquet(rows.drop(columns="label"), root / "features.parquet")
    io.write_parquet(rows[["as_of", "person_id", "label"]].assign(target="exit_26w", censored=False), root / "cohorts.parquet")
    io.write_json(families, root / "families.json")
    io.write_model(model, root / "models" / "model.joblib")
    io.write_json({"chosen": {"name": chosen.name, "kind": chosen.kind, "settings": chosen.settings},
                   "inputs": {"numeric": list(roles.numeric), "categorical": [], "stairwell": None},
                   "train_as_of": TRAIN_AS_OF, "test_as_of": TEST_AS_OF}, root / "models" / "model_info.json")


@pytest.fixture
def stage_files(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "extract:\n  path: null\nprivacy:\n  min_cell: 5\nfeatures: {}\ntrain: {}\n"
        "audit:\n  top_k_percent: 20\n  flag: highest_chance\n  bootstrap_samples: 50\n  fail_on_violation: true\n", encoding="utf-8")
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "bef2020.csv").write_text("PNR;KOEN\n6101701234;1\n", encoding="utf-8")
    io.write_json({"run_id": "r1", "model_name": "lyskegle-exit_26w", "model_version": "1",
                   "tracking_uri": "sqlite:///unused.db"}, tmp_path / "models" / "registry.json")
    (tmp_path / "reports").mkdir()
    _write_training_inputs(tmp_path)
    return tmp_path


def _argv(root: Path) -> list[str]:
    return ["--params", str(root / "params.yaml"), "--target", "exit_26w",
            "--predictions", str(root / "models" / "test_predictions.parquet"),
            "--registry", str(root / "models" / "registry.json"),
            "--model", str(root / "models" / "model.joblib"), "--model-info", str(root / "models" / "model_info.json"),
            "--features", str(root / "features.parquet"), "--families", str(root / "families.json"),
            "--cohorts", str(root / "cohorts.parquet"),
            "--synthetic", str(root / "synthetic"), "--scan", str(root / "models"), "--scan", str(root / "reports"),
            "--fairness", str(root / "reports" / "fairness.csv"),
            "--origin-comparison", str(root / "reports" / "origin_comparison.json"),
            "--audit", str(root / "reports" / "audit.json"), "--no-mlflow"]


def test_the_stage_writes_a_failed_verdict_with_every_reason_and_exits_non_zero(stage_files):
    frame = predictions([("1", 100, 40, 20), ("2", 100, 0, 20)])  # women never flagged
    io.write_parquet(frame, stage_files / "models" / "test_predictions.parquet")
    (stage_files / "reports" / "leak.txt").write_text("id 6101701234\n", encoding="utf-8")
    code = _audit_stage().main(_argv(stage_files))
    result = json.loads((stage_files / "reports" / "audit.json").read_text(encoding="utf-8"))
    assert code == 1 and result["passed"] is False and result["promoted_to"] is None
    assert any(r.startswith("fairness: sex = 2 vs 1") for r in result["reasons"])
    assert any("leak.txt holds extract pnr" in r and "byte 3" in r for r in result["reasons"])
    assert "6101701234" not in json.dumps(result)
    assert set(result["checks"]) == {"fairness", "k_anonymity", "overfitting", "origin_comparison",
                                     "identifier_scan", "small_cells"}
    shown = pd.read_csv(stage_files / "reports" / "fairness.csv", dtype={"group": str})
    assert shown.loc[(shown["attribute"] == "sex") & (shown["group"] == "2"), "passed"].item() == False  # noqa: E712


@pytest.mark.parametrize("room", [True, False], ids=["side-by-side", "one-after-the-other"])
def test_the_verdict_is_the_same_whether_the_audits_parts_run_side_by_side_or_one_after_the_other(
        stage_files, monkeypatch, room):
    frame = predictions([("1", 100, 40, 20), ("2", 100, 0, 20)])
    io.write_parquet(frame, stage_files / "models" / "test_predictions.parquet")
    (stage_files / "reports" / "leak.txt").write_text("id 6101701234\n", encoding="utf-8")
    assert _audit_stage().main(_argv(stage_files)) == 1
    reports = {name: (stage_files / "reports" / name).read_bytes() for name in ("audit.json", "fairness.csv")}

    decided = []
    monkeypatch.setattr("lyskegle.concurrency.room_for", lambda need: decided.append(need) or room)
    assert _audit_stage().main(_argv(stage_files)) == 1
    # the PNR read and the fairness table beside the rest, the origin comparison's second fit beside the first
    assert len(decided) == 3 and min(decided) > 0
    assert {name: (stage_files / "reports" / name).read_bytes() for name in reports} == reports


def test_with_a_scan_cache_the_files_there_before_are_scanned_beside_the_rest_and_the_verdict_is_the_same(
        stage_files, monkeypatch, caplog):
    from lyskegle import identifier_scan
    from lyskegle.pseudonym import DEVELOPMENT_KEY

    io.write_parquet(predictions([("1", 100, 40, 20), ("2", 100, 0, 20)]), stage_files / "models" / "test_predictions.parquet")
    (stage_files / "reports" / "leak.txt").write_text("id 6101701234\n", encoding="utf-8")
    # the extract's identifiers as ingest records them, with the development key of a synthetic extract
    (stage_files / "params.yaml").write_text((stage_files / "params.yaml").read_text() + "ingest:\n  allow_development_key: true\n")
    io.write_json({"synthetic": True}, stage_files / "synthetic" / io.EXTRACT_MARKER)
    recorded = stage_files / "extract_identifiers.parquet"
    known = identifier_scan.extract_pnr_values(stage_files / "synthetic", DEVELOPMENT_KEY)
    io.write_arrow_parquet(identifier_scan.recorded_identifiers(known), recorded)
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("LYSKEGLE_PSEUDONYM_KEY_FILE", raising=False)
    argv = [*_argv(stage_files), "--extract-identifiers", str(recorded)]
    assert _audit_stage().main(argv) == 1
    plain = io.read_json(stage_files / "reports" / "audit.json")

    warmed = []
    warm = identifier_scan.warm_scan_cache
    monkeypatch.setattr(identifier_scan, "warm_scan_cache", lambda *a, **k: warmed.append(1) or warm(*a, **k))
    with caplog.at_level("INFO"):
        assert _audit_stage().main([*argv, "--scan-cache", str(stage_files / ".scan-cache")]) == 1
    result = io.read_json(stage_files / "reports" / "audit.json")
    scan = result["checks"]["identifier_scan"]
    # all but the two files the stage wrote meanwhile (fairness.csv, origin_comparison.json)
    assert warmed == [1] and scan["files_from_cache"] == scan["files"] - 2 == 5
    assert f"scan cache: {scan['files'] - 2} file(s) scanned beside the audit" in caplog.text
    assert any("leak.txt holds extract pnr" in r and "byte 3" in r for r in result["reasons"])
    assert result == {**plain, "checks": {**plain["checks"], "identifier_scan": {**plain["checks"]["identifier_scan"],
                                                                                 "files_from_cache": 5}}}


def test_the_stage_passes_a_fair_model_and_compares_with_origin(stage_files):
    frame = predictions([("1", 100, 20, 20), ("2", 100, 20, 20)])
    io.write_parquet(frame, stage_files / "models" / "test_predictions.parquet")
    assert _audit_stage().main(_argv(stage_files)) == 0
    result = io.read_json(stage_files / "reports" / "audit.json")
    assert result["passed"] is True and result["promoted_to"] == "champion"

    # the training-period AUC is the model's own on the training rows
    model = io.read_model(stage_files / "models" / "model.joblib")
    train = io.read_parquet(stage_files / "features.parquet").merge(io.read_parquet(stage_files / "cohorts.parquet"))
    train = train.loc[pd.to_datetime(train["as_of"]).dt.date.isin(TRAIN_AS_OF)]
    expected = roc_auc_score(train["label"], model.predict_proba(train[["x1"]].astype("float64"))[:, 1])
    overfitting = result["checks"]["overfitting"]
    assert overfitting["train_auc"] == pytest.approx(expected)
    assert overfitting["gap"] == pytest.approx(expected - overfitting["test_auc"])

    origin = io.read_json(stage_files / "reports" / "origin_comparison.json")
    assert origin["ran"] is True and origin["origin_columns"] == ["origin_non_western"]
    assert origin["with_origin"]["inputs"] == origin["without_origin"]["inputs"] + 1
    assert origin["difference"]["roc_auc"] == pytest.approx(
        origin["with_origin"]["roc_auc"] - origin["without_origin"]["roc_auc"])
    assert set(origin["with_origin"]["origin_groups"]) == {"danish", "non_western"}
    assert f"the same {len(train)} training rows" in origin["fit"]


def _origin_inputs(root: Path) -> tuple[pd.DataFrame, dict, FairnessRule]:
    """The stage files' labelled exit_26w rows, feature families and a rule without bootstrap."""
    from lyskegle.models import labelled_rows

    rows, _ = labelled_rows(io.read_parquet(root / "features.parquet"), io.read_parquet(root / "cohorts.parquet"),
                            "exit_26w")
    rule = FairnessRule(top_k_percent=20, ratio_bounds=(0.8, 1.25), min_cell=5, min_expected_events=10,
                        bootstrap_samples=0, confidence=0.95, reference_groups={})
    return rows, io.read_json(root / "families.json"), rule


def test_the_origin_refits_use_at_most_the_training_sample_size(stage_files):
    from lyskegle.audit import origin_comparison

    rows, families, rule = _origin_inputs(stage_files)
    chosen = Candidate("logistic", {"C": 1.0, "max_iter": 200})
    sampled = origin_comparison(rows, families, chosen, TRAIN_AS_OF, TEST_AS_OF, 0, None, rule, max_fit_rows=100)
    every = origin_comparison(rows, families, chosen, TRAIN_AS_OF, TEST_AS_OF, 0, None, rule)
    assert "the same 100 training rows" in sampled["fit"] and "the same 400 training rows" in every["fit"]


@pytest.mark.parametrize("kind, settings", [("logistic", {"C": 1.0, "max_iter": 200}),
                                            ("hist_gradient_boosting", {"max_iter": 20})])
def test_the_origin_refits_give_the_same_comparison_side_by_side(stage_files, kind, settings):
    from lyskegle.audit import origin_comparison

    rows, families, rule = _origin_inputs(stage_files)
    compare = [origin_comparison(rows, families, Candidate(kind, settings), TRAIN_AS_OF, TEST_AS_OF, 0, None, rule,
                                 side_by_side=side) for side in (False, True)]
    assert compare[0]["ran"] and compare[0]["with_origin"]["inputs"] == compare[0]["without_origin"]["inputs"] + 1
    assert compare[1] == compare[0]


def test_without_the_training_inputs_the_overfitting_check_fails_plainly(stage_files):
    io.write_parquet(predictions([("1", 100, 20, 20), ("2", 100, 20, 20)]), stage_files / "models" / "test_predictions.parquet")
    argv = _argv(stage_files)
    del argv[argv.index("--model"):argv.index("--synthetic")]
    assert _audit_stage().main(argv) == 1
    result = io.read_json(stage_files / "reports" / "audit.json")
    assert result["reasons"] == ["overfitting: could not be checked: the stage was not given the model, "
                                 "model info, features, families and cohorts"]
    assert io.read_json(stage_files / "reports" / "origin_comparison.json")["ran"] is False


@pytest.mark.slow  # creates a real MLflow store (schema migrations take seconds)
def test_the_gate_tags_the_run_and_promotes_only_a_passing_model(stage_files):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{stage_files / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("lyskegle", artifact_location=(stage_files / "mlartifacts").as_uri())
    run = client.create_run(experiment)
    client.create_registered_model("lyskegle-exit_26w")
    version = client.create_model_version("lyskegle-exit_26w", source=(stage_files / "mlartifacts").as_uri(),
                                          run_id=run.info.run_id).version
    client.set_terminated(run.info.run_id)
    io.write_json({"run_id": run.info.run_id, "model_name": "lyskegle-exit_26w", "model_version": str(version),
                   "tracking_uri": uri}, stage_files / "models" / "registry.json")
    argv = [a for a in _argv(stage_files) if a != "--no-mlflow"] + ["--scan", str(stage_files / "mlflow.db")]

    io.write_parquet(predictions([("1", 100, 40, 20), ("2", 100, 0, 20)]), stage_files / "models" / "test_predictions.parquet")
    assert _audit_stage().main(argv) == 1
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["audit.passed"] == "false" and "sex = 2 vs 1" in tags["audit.reasons"]
    assert "champion" not in client.get_registered_model("lyskegle-exit_26w").aliases
    assert "audit/audit.json" in [a.path for a in client.list_artifacts(run.info.run_id, "audit")]

    io.write_parquet(predictions([("1", 100, 20, 20), ("2", 100, 20, 20)]), stage_files / "models" / "test_predictions.parquet")
    assert _audit_stage().main(argv) == 0
    assert client.get_run(run.info.run_id).data.tags["audit.passed"] == "true"
    assert str(client.get_registered_model("lyskegle-exit_26w").aliases["champion"]) == str(version)
    # a fresh MLflow store holds run ids and timestamps, none of which is a CPR-shaped hit
    assert io.read_json(stage_files / "reports" / "audit.json")["checks"]["identifier_scan"]["passed"] is True


def test_shown_tables_with_a_small_person_count_are_named(tmp_path):
    io.write_csv(pd.DataFrame({"group": ["a", "b"], "persons": [40, 3]}), tmp_path / "small.csv")
    io.write_csv(pd.DataFrame({"group": ["a", "b"], "persons": [40, None]}), tmp_path / "suppressed.csv")
    found = shown_small_cells([tmp_path / "small.csv", tmp_path / "suppressed.csv"], min_cell=5)
    assert found == [{"file": str(tmp_path / "small.csv"), "column": "persons", "rows": 1}]


def test_audit_params_reject_bounds_that_exclude_one_and_unknown_attributes():
    from lyskegle.config import ParamsError, parse_section

    with pytest.raises(ParamsError, match=r"audit\.ratio_bounds"):
        parse_section("audit", {"ratio_bounds": [1.1, 1.25]})
    with pytest.raises(ParamsError, match=r"audit\.reference_groups\.origin"):
        parse_section("audit", {"reference_groups": {"origin": "danish"}})
    assert parse_section("audit", {"reference_groups": {"origin_group": "danish"}}).reference_groups == {"origin_group": "danish"}


def test_the_priority_list_turns_chances_into_risk_of_the_adverse_outcome():
    from lyskegle.audit import as_priority_list

    predictions = pd.DataFrame({"score": [0.9, 0.2], "label": [1, 0]})
    turned = as_priority_list(predictions, "lowest_chance")
    assert turned["score"].tolist() == pytest.approx([0.1, 0.8])
    assert turned["label"].tolist() == [0, 1]
    assert predictions["score"].tolist() == [0.9, 0.2]  # input untouched
    assert as_priority_list(predictions, "highest_chance").equals(predictions)
    with pytest.raises(ValueError, match="audit.flag"):
        as_priority_list(predictions, "middle")


class _CountingModel:
    """Scores x1 as the probability and counts the rows it was asked to score."""

    def __init__(self):
        self.rows = 0

    def predict_proba(self, frame):
        self.rows += len(frame)
        p = frame["x1"].to_numpy("float64")
        return np.column_stack([1 - p, p])


def test_the_training_period_auc_scores_at_most_max_rows():
    rng = np.random.default_rng(0)
    dates = [dt.date(2018, 1, 1), dt.date(2019, 1, 7), dt.date(2023, 1, 2)]
    rows = pd.DataFrame({"as_of": pd.to_datetime(np.repeat(dates, 1000)), "label": rng.integers(0, 2, 3000)})
    rows["x1"] = np.clip(0.3 * rows["label"] + rng.uniform(0, 0.7, 3000), 0, 1)
    roles = ColumnRoles(("x1",), (), None)
    train_rows = rows[rows["as_of"].dt.year < 2023]
    everything = roc_auc_score(train_rows["label"], train_rows["x1"])

    model = _CountingModel()
    assert training_period_auc(model, rows, roles, dates[:2]) == pytest.approx(everything)
    assert model.rows == 2000  # the training dates only, not the test date

    model = _CountingModel()
    sampled = training_period_auc(model, rows, roles, dates[:2], max_rows=500, random_state=1)
    assert model.rows == 500
    assert sampled == pytest.approx(everything, abs=0.06) and sampled != everything


def test_a_fairness_table_of_some_attributes_has_their_rows_of_the_full_table():
    frame = predictions([("1", 200, 40, 20), ("2", 200, 20, 10)])
    full = fairness_table(frame, rule(top_k_percent=15, bootstrap_samples=0), np.random.default_rng(0))
    origin = fairness_table(frame, rule(top_k_percent=15, bootstrap_samples=0), np.random.default_rng(0),
                            attributes=["origin_group"])
    assert set(origin["attribute"]) == {"overall", "origin_group"}
    expected = full[full["attribute"].isin(["overall", "origin_group"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(origin.reset_index(drop=True), expected)


def test_distinct_rows_are_numpys_unique_rows_in_the_same_order():
    from lyskegle.audit import _distinct_rows

    rng = np.random.default_rng(3)
    for width, high in ((1, 5), (3, 40), (2, 2**40)):  # the last does not pack into int64: NumPy's own way
        matrix = rng.integers(-1, high, size=(500, width))
        matrix[rng.random(500) < 0.3, -1] = -1  # persons with fewer rows than the widest
        classes, sizes = _distinct_rows(matrix)
        expected_classes, expected_sizes = np.unique(matrix, axis=0, return_counts=True)
        np.testing.assert_array_equal(classes, expected_classes)
        np.testing.assert_array_equal(sizes, expected_sizes)
