from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from lyskegle import insights, models
from lyskegle.calendar import week_index
from lyskegle.insights import (
    ATTRIBUTE_NAMES,
    ExpectedModelSettings,
    _value_codes,
    discover_subgroups,
    expected_without_stairwell,
    family_importance,
    readable_attributes,
    stairwell_effects,
    wilson_interval,
)


class FirstColumnModel:
    """Scores rows by column ``a`` alone; ``b`` is read but ignored."""

    feature_names_in_ = np.array(["a", "b"])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        assert list(frame.columns) == ["a", "b"]
        p = 1 / (1 + np.exp(-frame["a"].to_numpy()))
        return np.column_stack([1 - p, p])


def test_family_importance_is_zero_for_an_unused_family_and_large_for_the_used_one():
    labels = np.tile([0, 1], 200)
    frame = pd.DataFrame({"a": labels * 4.0 - 2.0, "b": np.arange(400.0), "audit_sex": 1})
    families = {"a": "history", "b": "origin", "audit_sex": "audit"}
    table = family_importance(FirstColumnModel(), frame, labels, families, repeats=5, max_rows=300, random_state=1)
    by_family = table.set_index("family")
    assert list(table["family"]) == ["history", "origin"]  # the audit column is not a model input
    assert by_family.loc["history", "baseline"] == 1.0  # column a separates the labels perfectly
    # shuffling a leaves an AUC near 0.5, a drop near 0.5
    assert 0.35 < by_family.loc["history", "importance"] < 0.65
    assert by_family.loc["history", "interval_low"] <= by_family.loc["history", "importance"] <= by_family.loc["history", "interval_high"]
    assert by_family.loc["origin", "importance"] == 0.0 and by_family.loc["origin", "interval_high"] == 0.0
    assert by_family.loc["history", "rows"] == 300


def test_family_importance_is_reproducible_with_the_same_random_state():
    labels = np.tile([0, 1, 1], 100)
    frame = pd.DataFrame({"a": labels + np.linspace(-1, 1, 300), "b": 0.0})
    families = {"a": "history", "b": "origin"}
    first = family_importance(FirstColumnModel(), frame, labels, families, repeats=3, max_rows=200, random_state=7)
    again = family_importance(FirstColumnModel(), frame, labels, families, repeats=3, max_rows=200, random_state=7)
    pd.testing.assert_frame_equal(first, again)


def test_family_importance_of_a_boosting_model_is_the_same_with_and_without_kept_tree_predictions(monkeypatch):
    """family_importance scores through models.memoised_model; switched off, the table is the same."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600), "c": rng.normal(size=600)})
    labels = (frame["a"] + 0.5 * frame["b"] + rng.normal(size=600) > 0).astype(int).to_numpy()
    model = HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=6, random_state=0).fit(frame, labels)
    families = {"a": "history", "b": "origin", "c": "household"}
    kept = family_importance(model, frame, labels, families, repeats=4, max_rows=400, random_state=3)
    monkeypatch.setattr(insights, "memoised_model", lambda model: None)
    plain = family_importance(model, frame, labels, families, repeats=4, max_rows=400, random_state=3)
    pd.testing.assert_frame_equal(kept, plain, check_exact=True)
    assert kept.set_index("family").loc["history", "importance"] > 0.1


def test_family_importance_prepares_only_the_sampled_rows_and_gives_what_prepared_rows_give():
    labels = np.tile([0, 1, 1], 100)
    raw = pd.DataFrame({"a_text": (labels + np.linspace(-1, 1, 300)).astype(str), "b": 0.0})
    families = {"a": "history", "b": "origin"}
    prepared_sizes = []

    def prepare(rows: pd.DataFrame) -> pd.DataFrame:
        prepared_sizes.append(len(rows))
        return pd.DataFrame({"a": rows["a_text"].astype(float), "b": rows["b"]}, index=rows.index)

    lazily = family_importance(FirstColumnModel(), raw, labels, families, repeats=3, max_rows=200, random_state=7,
                               prepare=prepare)
    at_once = family_importance(FirstColumnModel(), prepare(raw), labels, families, repeats=3, max_rows=200,
                                random_state=7)
    pd.testing.assert_frame_equal(lazily, at_once)
    assert max(prepared_sizes[:-1]) == 200  # the last call is the at-once run's own


def _stairwell_rows(observed_positives: dict[str, tuple[int, int]], expected: float) -> pd.DataFrame:
    rows = []
    for stairwell, (persons, positives) in observed_positives.items():
        for i in range(persons):
            rows.append({"stairwell_id": stairwell, "person_id": f"{stairwell}-{i}", "label": int(i < positives), "expected": expected})
    return pd.DataFrame(rows)


def test_stairwell_doing_worse_than_its_residents_profile_ranks_first_and_is_shrunk():
    rows = _stairwell_rows({"s1": (20, 2), "s2": (20, 10), "s3": (20, 11), "s4": (20, 9), "s5": (3, 0)}, expected=0.5)
    table = stairwell_effects(rows, min_persons=5)
    assert "s5" not in set(table["stairwell_id"])  # 3 persons: under min_cell, not shown
    first = table.iloc[0]
    assert first["stairwell_id"] == "s1" and first["rank"] == 1
    assert first["observed_rate"] == 0.1 and first["expected_rate"] == 0.5
    # raw ratio 2/10 = 0.2; common ratio m = 32/41.5 = 0.771; sampling variance of a 20-person
    # ratio v = 20 * 0.25 / 10^2 = 0.05; between-stairwell variance by moments
    # tau^2 = 0.1427 - 0.0602 = 0.0825; shrunk: m + tau^2 / (tau^2 + v) * (0.2 - m) = 0.415
    assert first["effect"] == pytest.approx(0.4154, abs=1e-3)
    assert first["between_sd"] == pytest.approx(0.0825**0.5, abs=1e-3)
    assert first["interval_low"] < first["effect"] < first["interval_high"] < 1.0
    assert first["shrunk_rate"] == pytest.approx(0.5 * first["effect"])


def test_stairwells_that_look_alike_are_shrunk_to_the_common_ratio():
    rows = _stairwell_rows({"s1": (10, 5), "s2": (10, 5), "s3": (10, 5)}, expected=0.5)
    table = stairwell_effects(rows, min_persons=5)
    assert table["effect"].to_numpy() == pytest.approx([1.0, 1.0, 1.0])
    assert (table["between_sd"] == 0).all()
    assert list(table["stairwell_id"]) == ["s1", "s2", "s3"]  # ties ranked by id


def test_expected_rate_model_does_not_see_stairwell_features(monkeypatch):
    rng = np.random.default_rng(0)
    stairwell_rate = rng.uniform(size=2000)
    train = pd.DataFrame({"stairwell_rate": stairwell_rate, "age": rng.normal(size=2000), "stairwell_id": "s"})
    labels = (rng.uniform(size=2000) < stairwell_rate).astype(int)  # only the stairwell predicts the label
    families = {"stairwell_rate": "stairwell", "age": "demographic"}
    test = train.iloc[:500]
    expected = expected_without_stairwell(train, labels, test, families, ExpectedModelSettings(max_iter=20, random_state=0))
    # without the stairwell column the model can only learn the base rate (about 0.5)
    assert abs(expected.mean() - labels.mean()) < 0.05
    assert expected.std() < 0.1
    # a column outside the candidates (origin, when the main model leaves it out) is not used either
    train_with_origin = train.assign(origin_non_western=stairwell_rate)
    families_with_origin = {**families, "origin_non_western": "origin"}
    limited = expected_without_stairwell(train_with_origin, labels, train_with_origin.iloc[:500], families_with_origin,
                                         ExpectedModelSettings(max_iter=20, random_state=0), candidates=["age", "stairwell_rate"])
    assert limited.std() < 0.1
    # predicted a block of rows at a time, with the same values as all at once
    monkeypatch.setattr(models, "PREDICT_ROWS", 7)
    blocks = expected_without_stairwell(train, labels, test, families, ExpectedModelSettings(max_iter=20, random_state=0))
    np.testing.assert_array_equal(blocks, expected)


def test_wilson_interval_of_zero_in_ten():
    low, high = wilson_interval(np.array([0]), np.array([10]))
    assert low[0] == pytest.approx(0.0, abs=1e-12)
    assert high[0] == pytest.approx(3.8415 / 13.8415, abs=1e-4)  # z^2 / (n + z^2)


def _subgroup_rows() -> pd.DataFrame:
    rows = []
    for i in range(200):
        older, iraqi = i % 2 == 0, i < 80
        special = older and iraqi  # 40 persons: ages 30-39 with Iraqi citizenship
        label = int(i % 20 == 0) if special else i % 2 == 1 or i % 4 == 2  # special: p0, p20, p40, p60
        tiny = 100 <= i < 110  # 10 persons with a PhD, all with label 0: too few to show
        rows.append({
            "person_id": f"p{i}", "label": 0 if tiny else int(label),
            "age_band": "30-39" if older else "20-29", "age_band_en": "30-39" if older else "20-29",
            "citizenship": "Irak" if iraqi else "dansk", "citizenship_en": "Irak" if iraqi else "Danish",
            "education": "ph.d." if tiny else "kun grundskole", "education_en": "PhD" if tiny else "basic school only",
        })
    return pd.DataFrame(rows)


def test_subgroup_discovery_finds_the_low_rate_conjunction():
    table = discover_subgroups(
        _subgroup_rows(), ["age_band", "citizenship", "education"],
        min_subgroup=30, max_conditions=3, beam_width=5, results=3,
    )
    lowest = table[table["direction"] == "lowest"].iloc[0]
    assert lowest["description_da"] == "alder: 30-39, statsborgerskab: Irak"
    assert lowest["description_en"] == "age: 30-39, citizenship: Irak"
    assert lowest["persons"] == 40 and lowest["rate"] == pytest.approx(4 / 40)
    assert lowest["interval_low"] < lowest["rate"] < lowest["interval_high"]
    assert (table["persons"] >= 30).all()
    assert not table["description_da"].str.contains("ph.d.").any()  # 10 persons never make a subgroup
    assert set(table["direction"]) == {"lowest", "highest"}
    highest = table[table["direction"] == "highest"].iloc[0]
    assert highest["rate"] > 0.5


def test_subgroup_refinement_selecting_the_same_rows_is_listed_once():
    rows = _subgroup_rows()
    table = discover_subgroups(rows, ["age_band", "citizenship", "education"], min_subgroup=30, max_conditions=3, beam_width=5, results=10)
    # "30-39 and Irak" and "30-39, Irak, basic school only" select the same 40 rows (no PhD among them)
    lowest = table[table["direction"] == "lowest"]
    assert (lowest["persons"] == 40).sum() == 1


def test_readable_attributes_are_known_at_the_as_of_date():
    as_of = dt.date(2020, 1, 6)
    cohort = pd.DataFrame({"person_id": ["p1", "p2"], "as_of": [as_of, as_of], "label": [1, 0]})
    population = pd.DataFrame({
        "person_id": ["p1", "p2", "p3"], "year": [2020, 2020, 2020],
        "birth_date": [dt.date(1990, 1, 7), dt.date(1960, 1, 1), dt.date(1961, 1, 1)],  # p1 turns 30 the day after
        "sex": [2, 1, 2], "origin_type": [1, 2, 2], "citizenship": ["5100", "5422", "5422"],
        "dwelling_id": ["d1", "d2", "d2"], "family_id": ["f1", "f2", "f2"],
    })
    dwellings = pd.DataFrame({"dwelling_id": ["d1", "d2"], "area": [None, "Vest"]})
    education = pd.DataFrame({"person_id": ["p1", "p1"], "year": [2019, 2020], "education_group": [10, 70]})
    benefits = pd.DataFrame({"person_id": ["p2"], "code": [131], "first_week": [week_index(as_of) - 30], "n_weeks": [40]})
    out = readable_attributes(cohort, population, dwellings, education, benefits, top_citizenships=3).set_index("person_id")
    assert out.loc["p1", "age_band"] == "20-29"
    assert out.loc["p1", "education"] == "kun grundskole"  # the 2020 degree is not known yet
    assert out.loc["p1", "household"] == "bor alene" and out.loc["p2", "household"] == "2 personer"
    assert out.loc["p1", "area"] == "uden for boligområde" and out.loc["p2", "area"] == "område Vest"
    assert out.loc["p2", "citizenship"] == "Irak" and out.loc["p1", "citizenship"] == "dansk"
    assert out.loc["p2", "support_last_year"] == "26-51 uger"  # 30 weeks before the as-of week
    assert out.loc["p1", "support_last_year_en"] == "0 weeks"


def test_attributes_a_year_at_a_time_are_the_attributes_of_all_years_at_once():
    """The stage reads one year's population and education per as-of date; the parts together,
    with the citizenships named once over all of them, are the attributes computed in one go."""
    dates = [dt.date(2020, 1, 6), dt.date(2021, 1, 4)]
    persons = [f"p{i}" for i in range(6)]
    # 2020: Irak most frequent among the foreign citizenships; 2021: Tyrkiet. Over both: Tyrkiet.
    citizenship = {2020: ["5422", "5422", "5100", "5454", "5100", "5100"],
                   2021: ["5454", "5454", "5454", "5422", "5454", "5100"]}
    population = pd.DataFrame([
        {"person_id": p, "year": year, "birth_date": dt.date(1980 + i, 3, 1), "sex": 1 + i % 2, "origin_type": 2,
         "citizenship": citizenship[year][i], "dwelling_id": f"d{i % 3}", "family_id": f"f{(i + year) % 4}"}
        for year in (2019, 2020, 2021) if year in citizenship for i, p in enumerate(persons)
    ])
    dwellings = pd.DataFrame({"dwelling_id": ["d0", "d1", "d2"], "area": ["Vest", None, "Øst"]})
    education = pd.DataFrame({"person_id": ["p0", "p1", "p0"], "year": [2019, 2020, 2020], "education_group": [10, 30, 70]})
    benefits = pd.DataFrame({"person_id": ["p1", "p2", "p9"], "code": [131, 131, 131],
                             "first_week": [week_index(dates[0]) - 10, week_index(dates[1]) - 60, 0], "n_weeks": [5, 30, 3]})
    cohort = pd.DataFrame({"person_id": persons * 2, "as_of": [d for d in dates for _ in persons],
                           "label": [0, 1] * 6})
    whole = readable_attributes(cohort, population, dwellings, education, benefits, top_citizenships=1)

    parts = [insights.attributes_known_at(cohort[cohort["as_of"] == date], population[population["year"] == date.year],
                                          dwellings, education[education["year"] == date.year - 1], benefits)
             for date in dates]
    by_year = insights.with_named_citizenship(insights.concat_attributes(parts), top_citizenships=1)
    pd.testing.assert_frame_equal(by_year, whole)
    assert set(whole["citizenship"]) == {"Tyrkiet", "andet land", "dansk"}
    assert whole.loc[0, "support_last_year"] == "0 uger" and whole.loc[1, "support_last_year"] == "1-25 uger"
    assert all(isinstance(whole[c].dtype, pd.CategoricalDtype) for c in whole.columns[3:])


def _random_subgroup_rows(seed: int) -> pd.DataFrame:
    """Persons with several rows each (as-of dates), categorical attributes with missing values
    and an unused category: the shapes readable_attributes hands to discover_subgroups."""
    rng = np.random.default_rng(seed)
    n = 3000
    person = rng.integers(0, 900, n)
    frame = pd.DataFrame({"person_id": [f"p{i}" for i in person], "label": rng.random(n) < 0.3})
    pools = {"age_band": ["20-29", "30-39", "40-49"], "sex": ["kvinde", "mand"], "area": ["område BO01", "område BO02", "uden for"]}
    for attribute, pool in pools.items():
        values = np.array(pool + [None], dtype=object)[rng.integers(0, len(pool) + 1, n)]
        frame[attribute] = pd.Categorical(values, categories=[*pool, "ubrugt"])
        frame[f"{attribute}_en"] = frame[attribute]
    frame["label"] = frame["label"].astype("int64")
    return frame


@pytest.mark.parametrize("bitmap", [True, False], ids=["bitmap", "sorted-pairs"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subgroup_figures_match_a_direct_count_of_their_rows(seed, bitmap, monkeypatch):
    if not bitmap:  # distinct persons by sorting (person, value) pairs, as for a national extract
        monkeypatch.setattr(insights, "_BITMAP_CELLS", 0)
    rows = _random_subgroup_rows(seed)
    table = discover_subgroups(rows, ["age_band", "sex", "area"], min_subgroup=30, max_conditions=3, beam_width=4, results=5)
    assert len(table) == 10
    danish = {da: attribute for attribute, (da, _) in ATTRIBUTE_NAMES.items()}
    for _, found in table.iterrows():
        inside = np.ones(len(rows), dtype=bool)
        for condition in found["description_da"].split(", "):
            name, value = condition.split(": ")
            inside &= rows[danish[name]].astype("string").fillna("ukendt").to_numpy() == value
        assert found["observations"] == inside.sum()
        assert found["persons"] == rows.loc[inside, "person_id"].nunique()
        assert found["rate"] == pytest.approx(rows.loc[inside, "label"].mean())
        assert found["persons"] >= 30


def test_value_codes_of_categories_equal_factorizing_their_strings():
    rng = np.random.default_rng(3)
    pool = ["b", "a", "ukendt", "æble", "Z", "2 personer"]
    for _ in range(50):
        values = np.array(pool + [None], dtype=object)[rng.integers(0, len(pool) + 1, 40)]
        column = pd.Series(pd.Categorical(values, categories=list(rng.permutation(pool))))
        codes, uniques = _value_codes(column)
        expected_codes, expected_uniques = pd.factorize(column.astype("string").fillna("ukendt"), sort=True)
        assert list(uniques) == list(expected_uniques)
        np.testing.assert_array_equal(codes, expected_codes)


def test_citizenships_are_named_per_code_as_row_by_row():
    """Blanks around a code, missing codes, a code without a name and the pooled rest: the
    citizenship named once per distinct code is, row for row, the name of each row's own code."""
    raw = pd.Series([" 5422", "5422 ", "5100", None, "9999", "5454", "9999", "5422", "5160", None] * 30, dtype="string")
    danish, english = insights._citizenship(insights._stripped(raw), top=2)
    names = {None: "ukendt", "5100": "dansk", "5422": "Irak", "9999": "landekode 9999"}
    expected = [names.get(None if pd.isna(code) else code.strip(), "andet land") for code in raw]
    assert list(danish) == expected  # 5422 (3 rows per 10) and 9999 (2) are the two most frequent
    assert set(english) == {"Irak", "country code 9999", "other country", "Danish", "unknown"}
    assert list(danish.categories) == sorted(set(expected))
