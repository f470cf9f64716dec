"""What the models say about the study's questions: feature families, stairwells and subgroups.

Three pure analyses, each returning one table for ``reports/<target>/``:

- :func:`family_importance` - grouped permutation importance: all columns of a feature family are
  permuted together (one row permutation shared by the family), and the drop in ROC AUC on the test
  period says how much the model leans on that family ("does the network matter more than origin?").
- :func:`stairwell_effects` - observed label rate per stairwell against the rate a model *without*
  stairwell features expects for its residents (indirect standardisation), the observed/expected
  ratio shrunk by normal-normal empirical Bayes with binomial sampling variances.
- :func:`discover_subgroups` - beam search over conjunctions of up to three readable conditions for
  the groups with the lowest and highest rates, each with at least ``min_subgroup`` persons.

Rates are over person x as-of rows; ``persons`` counts distinct persons, the figure small-cell rules
apply to. Intervals are 95 % unless the caller asks for another level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from lyskegle.calendar import week_index
from lyskegle.countries import COUNTRY_NAMES, DENMARK
from lyskegle.ids import datetimes, shared_codes, sorted_unique
from lyskegle.models import memoised_model, predict_in_blocks
from lyskegle.status import runs_in_windows, support_weeks_by_code

#: feature families that never enter a model (audit attributes ride along for fairness checks only)
NON_MODEL_FAMILIES = frozenset({"audit"})
ID_COLUMNS = ("person_id", "as_of", "stairwell_id", "building_id", "area")
#: a model may read an id column itself (the stairwell id, target-encoded inside its pipeline)
ID_FAMILIES = {"stairwell_id": "stairwell", "building_id": "stairwell", "area": "area"}

METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": roc_auc_score,
    "average_precision": average_precision_score,
}


# --------------------------------------------------------------------------------------------------
# Grouped permutation importance
# --------------------------------------------------------------------------------------------------

def model_columns(model: object, families: Mapping[str, str], frame: pd.DataFrame) -> list[str]:
    """The columns a fitted model reads: its ``feature_names_in_`` when it has them, else every
    column of ``frame`` tagged with a non-audit family."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(name) for name in names]
    return [c for c in frame.columns if families.get(c) not in (None, *NON_MODEL_FAMILIES)]


def family_importance(
    model: object,
    frame: pd.DataFrame,
    labels: np.ndarray,
    families: Mapping[str, str],
    *,
    repeats: int,
    max_rows: int,
    metric: str = "roc_auc",
    level: float = 0.95,
    random_state: int = 0,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Drop in ``metric`` when the columns of one family are shuffled together.

    ``model`` has ``predict_proba``; ``frame`` holds (at least) the model's columns, or, with
    ``prepare``, rows that ``prepare`` turns into them (applied to the sampled rows only, e.g.
    :func:`lyskegle.models.model_inputs`, so that millions of rows are not converted for a sample);
    ``labels`` is 0/1 per row. At most ``max_rows`` rows are used (a random sample, for speed). Returns one row
    per family the model reads, most important first: ``family``, ``columns`` (how many),
    ``importance`` (mean drop over ``repeats`` shuffles), ``interval_low``, ``interval_high``
    (t-interval over the repeats), ``baseline`` (the metric unshuffled), ``rows``.
    """
    if metric not in METRICS:
        raise ValueError(f"insights: unknown importance metric '{metric}' (one of {sorted(METRICS)})")
    labels = np.asarray(labels, dtype="int8")
    if len(labels) != len(frame):
        raise ValueError(f"insights: {len(labels)} labels for {len(frame)} rows")
    if len(np.unique(labels)) < 2:
        raise ValueError("insights: permutation importance needs both label values in the test period")
    rng = np.random.default_rng(random_state)
    prepare = prepare or (lambda rows: rows)
    prepared = prepare(frame.iloc[:0])
    columns = model_columns(model, families, prepared)
    missing = [c for c in columns if c not in prepared.columns]
    if missing:
        raise KeyError(f"insights: the model reads columns the features frame lacks: {missing[:5]}")
    rows = np.sort(rng.choice(len(frame), size=min(max_rows, len(frame)), replace=False))
    sample = prepare(frame.iloc[rows])[columns].reset_index(drop=True)
    y = labels[rows]
    if len(np.unique(y)) < 2:  # a sample of one class cannot be scored; fall back to every row
        sample, y = prepare(frame)[columns].reset_index(drop=True), labels
    score = METRICS[metric]
    # each shuffle changes one family's columns of the same sample: the text encoders and a boosting
    # model's trees that do not read them keep their outputs (bit for bit the same scores, less work)
    model = memoised_model(model) or model
    baseline = float(score(y, model.predict_proba(sample)[:, 1]))

    by_family: dict[str, list[str]] = {}
    for column in columns:
        by_family.setdefault(families.get(column, ID_FAMILIES.get(column, "other")), []).append(column)

    records = []
    for family, family_columns in sorted(by_family.items()):
        drops = np.empty(repeats)
        for repeat in range(repeats):
            order = rng.permutation(len(sample))
            shuffled = sample.copy()
            # the same permutation for every column keeps the family's joint distribution intact
            for column in family_columns:  # column by column, so each keeps its dtype
                shuffled[column] = sample[column].to_numpy()[order]
            drops[repeat] = baseline - score(y, model.predict_proba(shuffled)[:, 1])
        low, high = _t_interval(drops, level)
        records.append({
            "family": family, "columns": len(family_columns), "importance": float(drops.mean()),
            "interval_low": low, "interval_high": high, "baseline": baseline, "rows": len(sample),
        })
    table = pd.DataFrame.from_records(records)
    return table.sort_values(["importance", "family"], ascending=[False, True], ignore_index=True)


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return mean - float(half), mean + float(half)


# --------------------------------------------------------------------------------------------------
# Stairwell effects
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExpectedModelSettings:
    """Knobs of the small model that predicts a resident's rate without stairwell features."""

    max_iter: int = 200
    learning_rate: float = 0.1
    min_samples_leaf: int = 40
    random_state: int = 0


def expected_without_stairwell(
    train: pd.DataFrame,
    train_labels: np.ndarray,
    test: pd.DataFrame,
    families: Mapping[str, str],
    settings: ExpectedModelSettings,
    candidates: Sequence[str] | None = None,
) -> np.ndarray:
    """Probability of the label for each ``test`` row from a model fitted on ``train`` only, without
    the ``stairwell`` family (and without audit attributes and id columns).

    Fitting on the training period and predicting the test period keeps the test labels out of
    the expectation; leaving the stairwell family out means the expectation reflects the residents'
    own profile, so what remains per stairwell is the stairwell's own effect. ``candidates``
    (e.g. the main model's numeric inputs) limits the columns further, so that a family the main
    model leaves out (origin, unless ``features.include_origin``) stays out here too.
    """
    columns = [
        c for c, family in families.items()
        if family not in ("stairwell", *NON_MODEL_FAMILIES) and c not in ID_COLUMNS
        and c in train.columns and _is_numeric(train[c]) and (candidates is None or c in candidates)
    ]
    # a column without two distinct values in the training period carries no information (and
    # the gradient-boosting binner rejects it)
    columns = [c for c in columns if train[c].nunique(dropna=True) >= 2]
    if not columns:
        raise ValueError("insights: no informative numeric non-stairwell feature columns to fit the expected-rate model")
    model = HistGradientBoostingClassifier(
        max_iter=settings.max_iter, learning_rate=settings.learning_rate,
        min_samples_leaf=settings.min_samples_leaf, random_state=settings.random_state,
    )
    model.fit(_numeric(train[columns]), np.asarray(train_labels, dtype="int8"))
    return predict_in_blocks(model, test, lambda block: _numeric(block[columns]))


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _numeric(frame: pd.DataFrame) -> np.ndarray:
    return frame.astype("float64").to_numpy(na_value=np.nan)


def stairwell_effects(
    rows: pd.DataFrame,
    *,
    min_persons: int,
    level: float = 0.95,
) -> pd.DataFrame:
    """Empirical-Bayes ratio of observed to expected label rate, per stairwell.

    ``rows`` has one row per person x as-of in the test period with ``stairwell_id``,
    ``person_id``, ``label`` (0/1) and ``expected`` (the probability from a model without
    stairwell features). Per stairwell the raw ratio is r = observed positives / expected
    positives, with binomial sampling variance v = sum p(1 - p) / E^2 from the expected
    probabilities (a Poisson variance would hide real differences when rates are high). The ratios
    are shrunk by normal-normal empirical Bayes (Morris 1983): the between-stairwell variance
    tau^2 is estimated by moments from all stairwells, and each ratio moves towards the common
    ratio m by the factor v / (v + tau^2), so a small stairwell needs a large difference to stand
    out. The interval adds the uncertainty of m. A ratio below 1 means residents reach the outcome
    less often than their own profiles predict.

    Returns one row per stairwell with at least ``min_persons`` distinct persons, ranked from the
    lowest shrunk ratio (``rank`` 1): ``stairwell_id``, ``persons``, ``observations``,
    ``observed_rate``, ``expected_rate``, ``effect`` (shrunk ratio), ``interval_low``,
    ``interval_high``, ``shrunk_rate`` (expected rate times the shrunk ratio), ``between_sd``
    (tau, the same on every row: 0 means no stairwell differences beyond chance), ``rank``.
    """
    needed = {"stairwell_id", "person_id", "label", "expected"}
    if missing := needed - set(rows.columns):
        raise KeyError(f"stairwell_effects: rows lack columns {sorted(missing)}")
    known = rows[rows["stairwell_id"].notna()]
    grouped = known.groupby("stairwell_id", sort=True)
    expected = known["expected"].astype("float64")
    table = pd.DataFrame({
        "persons": grouped["person_id"].nunique(),
        "observations": grouped.size(),
        "observed": grouped["label"].sum().astype("float64"),
        "expected_count": grouped["expected"].sum().astype("float64"),
        "binomial_variance": (expected * (1 - expected)).groupby(known["stairwell_id"]).sum(),
    })
    table = table[table["expected_count"] > 0]
    observed, expected_count = table["observed"].to_numpy(), table["expected_count"].to_numpy()
    ratio = observed / expected_count
    noise = table["binomial_variance"].to_numpy() / expected_count**2
    common = observed.sum() / expected_count.sum() if len(table) else np.nan
    weights = expected_count / expected_count.sum() if len(table) else expected_count
    # moments: the spread of the ratios around the common ratio, minus what sampling alone gives
    between = max(float(np.sum(weights * (ratio - common) ** 2) - np.sum(weights * noise)), 0.0)
    shrink = noise / (noise + between) if between > 0 else np.ones_like(noise)
    common_variance = 1.0 / np.sum(1.0 / (noise + between)) if len(table) else np.nan
    z = stats.norm.ppf(0.5 + level / 2)
    effect = common + (1 - shrink) * (ratio - common)
    spread = np.sqrt((1 - shrink) * noise + shrink**2 * common_variance)

    table["observed_rate"] = table["observed"] / table["observations"]
    table["expected_rate"] = table["expected_count"] / table["observations"]
    table["effect"] = effect
    table["interval_low"] = np.clip(effect - z * spread, 0, None)
    table["interval_high"] = effect + z * spread
    table["shrunk_rate"] = (table["expected_rate"] * table["effect"]).clip(0.0, 1.0)
    table["between_sd"] = np.sqrt(between)
    # the common ratio and tau come from every stairwell; only those big enough are shown
    shown = table[table["persons"] >= min_persons].drop(columns=["observed", "expected_count", "binomial_variance"])
    shown = shown.reset_index().sort_values(["effect", "stairwell_id"], ignore_index=True)
    shown["rank"] = np.arange(1, len(shown) + 1)
    return shown


# --------------------------------------------------------------------------------------------------
# Readable attributes and subgroup discovery
# --------------------------------------------------------------------------------------------------

AGE_BANDS = ((18, 19, "18-19"), (20, 29, "20-29"), (30, 39, "30-39"), (40, 49, "40-49"), (50, 200, "50+"))
EDUCATION_NAMES = {
    10: ("kun grundskole", "basic school only"),
    20: ("gymnasial", "upper secondary"),
    30: ("erhvervsfaglig", "vocational"),
    40: ("kort videregående", "short higher"),
    50: ("mellemlang videregående", "medium higher"),
    60: ("bachelor", "bachelor"),
    70: ("lang videregående", "long higher"),
    80: ("ph.d.", "PhD"),
}
ORIGIN_NAMES = {1: ("dansk oprindelse", "Danish origin"), 2: ("indvandrer", "immigrant"), 3: ("efterkommer", "descendant")}
SEX_NAMES = {1: ("mand", "man"), 2: ("kvinde", "woman")}

#: attribute -> (Danish label, English label) used to build descriptions
ATTRIBUTE_NAMES = {
    "age_band": ("alder", "age"),
    "sex": ("køn", "sex"),
    "origin": ("herkomst", "origin"),
    "citizenship": ("statsborgerskab", "citizenship"),
    "education": ("uddannelse", "education"),
    "area": ("boligområde", "housing area"),
    "household": ("husstand", "household"),
    "support_last_year": ("uger på offentlig forsørgelse sidste år", "weeks on public support last year"),
}


#: the columns of the ingested tables :func:`readable_attributes` reads (the stage reads no others)
ATTRIBUTE_SOURCES = {
    "population": ("person_id", "year", "birth_date", "sex", "origin_type", "citizenship", "dwelling_id", "family_id"),
    "dwellings": ("dwelling_id", "area"),
    "education": ("person_id", "year", "education_group"),
    "benefits": ("person_id", "code", "first_week", "n_weeks"),
}


def readable_attributes(
    cohort: pd.DataFrame,
    population: pd.DataFrame,
    dwellings: pd.DataFrame,
    education: pd.DataFrame,
    benefits: pd.DataFrame,
    *,
    top_citizenships: int,
) -> pd.DataFrame:
    """Readable attributes of each cohort row, known at its as-of date, for subgroup discovery.

    ``cohort`` has ``person_id``, ``as_of`` (dates or datetime64) and ``label``; the other frames
    are the ingested tables of docs/DATA_MODEL.md (at least the columns of
    :data:`ATTRIBUTE_SOURCES`). Uses ``bef`` of the as-of year, education of the year before and
    benefit weeks of the 52 weeks before the as-of week. Returns ``person_id``, ``as_of``,
    ``label`` and one categorical column per attribute in :data:`ATTRIBUTE_NAMES`, each value
    already a Danish phrase, with the English phrase in a twin column ``<attribute>_en``.

    The same as :func:`attributes_known_at` on the cohort's rows of each as-of date (with that
    year's ``population`` and the year before's ``education``), :func:`concat_attributes` of the
    parts and :func:`with_named_citizenship`: that is how a national extract is done, a year at a time.
    """
    return with_named_citizenship(attributes_known_at(cohort, population, dwellings, education, benefits),
                                  top_citizenships)


def attributes_known_at(
    cohort: pd.DataFrame,
    population: pd.DataFrame,
    dwellings: pd.DataFrame,
    education: pd.DataFrame,
    benefits: pd.DataFrame,
) -> pd.DataFrame:
    """:func:`readable_attributes` except that ``citizenship`` is still the DST country code (the
    most frequent citizenships are named only once every as-of date's rows are together).

    ``population`` and ``education`` need only hold the years used (the as-of years and the years
    before them); rows of other years are ignored.
    """
    out = cohort[["person_id", "as_of", "label"]].reset_index(drop=True).copy()
    as_of = datetimes(out["as_of"])
    out["_year"] = as_of.dt.year.astype("int64")

    people = population[list(ATTRIBUTE_SOURCES["population"])]
    people = people[people["year"].astype("int64").isin(out["_year"].unique())]
    people = people.assign(_year=people["year"].astype("int64")).drop(columns="year")
    # household sizes count every resident; the attributes are needed for the cohort's persons only
    household_size = people.groupby(["_year", "family_id"]).size().rename("_household_size")
    schooling = education.assign(_year=education["year"].astype("int64") + 1)[["person_id", "_year", "education_group"]]
    schooling = schooling[schooling["_year"].isin(out["_year"].unique())]
    ends = [week_index(pd.Timestamp(date).date()) for date in as_of.unique()]
    benefits = benefits[runs_in_windows(benefits, [(end - 52, end) for end in ends])]  # the others count for no one
    # person ids as int codes shared by all four tables: a merge or lookup on millions of strings
    # hashes each again
    (persons, people_codes, schooling_codes, benefit_codes), vocabulary = shared_codes(
        [out["person_id"], people["person_id"], schooling["person_id"], benefits["person_id"]])
    out["_person"] = persons
    in_cohort = np.zeros(len(vocabulary) + 1, dtype=bool)  # the extra last slot: code -1 (no id)
    in_cohort[persons] = True
    in_cohort[-1] = False
    keep = in_cohort[people_codes]
    people = people[keep].drop(columns="person_id").assign(_person=people_codes[keep])
    people = people.join(household_size, on=["_year", "family_id"])
    people = people.merge(dwellings[["dwelling_id", "area"]], on="dwelling_id", how="left")
    out = out.merge(people, on=["_person", "_year"], how="left")
    del people, household_size
    schooling = schooling.drop(columns="person_id").assign(_person=schooling_codes)
    out = out.merge(schooling.drop_duplicates(["_person", "_year"]), on=["_person", "_year"], how="left")
    support_weeks = _support_weeks_last_year(out, as_of, benefits, benefit_codes, len(vocabulary))

    result = out[["person_id", "as_of", "label"]].copy()

    def put(attribute: str, danish: pd.Series | np.ndarray, english: pd.Series | np.ndarray) -> None:
        # one attribute at a time, as categories: millions of rows of repeated phrases
        result[attribute] = pd.Categorical(np.asarray(danish, dtype=object))
        result[f"{attribute}_en"] = pd.Categorical(np.asarray(english, dtype=object))

    birth = datetimes(out["birth_date"])
    age = as_of.dt.year - birth.dt.year - ((as_of.dt.month < birth.dt.month) | ((as_of.dt.month == birth.dt.month) & (as_of.dt.day < birth.dt.day))).astype("int64")
    put("age_band", *_bands(age, AGE_BANDS))
    put("sex", *_named(out["sex"], SEX_NAMES))
    put("origin", *_named(out["origin_type"], ORIGIN_NAMES))
    result["citizenship"] = _stripped(out["citizenship"])
    put("education", *_named(out["education_group"], EDUCATION_NAMES))
    area = out["area"].astype("string")
    put("area", ("område " + area).fillna("uden for boligområde"), ("area " + area).fillna("outside housing areas"))
    size = out["_household_size"]
    put("household", np.select([size == 1, size == 2, size >= 3], ["bor alene", "2 personer", "3 eller flere"], "ukendt"),
        np.select([size == 1, size == 2, size >= 3], ["lives alone", "2 persons", "3 or more"], "unknown"))
    put("support_last_year", *_support_bands(support_weeks))
    return result


def concat_attributes(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Parts of :func:`attributes_known_at` (e.g. one per as-of date) as one frame, numbered from
    0, with every categorical column still categorical (its categories the union of the parts')."""
    if not parts:
        raise ValueError("concat_attributes: no parts")
    columns = {}
    for column in parts[0].columns:
        if isinstance(parts[0][column].dtype, pd.CategoricalDtype):
            columns[column] = union_categoricals([part[column] for part in parts], sort_categories=True)
        else:
            columns[column] = pd.concat([part[column] for part in parts], ignore_index=True)
    return pd.DataFrame(columns)


def with_named_citizenship(attributes: pd.DataFrame, top_citizenships: int) -> pd.DataFrame:
    """``attributes`` (:func:`attributes_known_at`) with the country codes of ``citizenship`` named:
    the ``top_citizenships`` most frequent foreign ones by name, the rest as one group, and the
    English twin ``citizenship_en``. Columns in :data:`ATTRIBUTE_NAMES` order."""
    result = attributes.copy(deep=False)
    result["citizenship"], result["citizenship_en"] = _citizenship(result["citizenship"], top_citizenships)
    return result[["person_id", "as_of", "label", *(c for a in ATTRIBUTE_NAMES for c in (a, f"{a}_en"))]]


def _bands(values: pd.Series, bands: Sequence[tuple[int, int, str]]) -> tuple[pd.Series, pd.Series]:
    labels = pd.Series("ukendt", index=values.index, dtype="object")
    for low, high, name in bands:
        labels[(values >= low) & (values <= high)] = name
    english = labels.replace({"ukendt": "unknown"})
    return labels, english


def _named(values: pd.Series, names: Mapping[int, tuple[str, str]]) -> tuple[pd.Series, pd.Series]:
    codes = pd.to_numeric(values, errors="coerce")
    da = codes.map({k: v[0] for k, v in names.items()}).fillna("ukendt")
    en = codes.map({k: v[1] for k, v in names.items()}).fillna("unknown")
    return da, en


def _stripped_codes(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``values`` as text without surrounding blanks, coded: each row's position among the distinct
    stripped texts (-1 where missing), and those texts in order of first appearance. Each distinct
    value is stripped once, not each of millions of rows."""
    row_code, distinct = pd.factorize(values)
    stripped = pd.Series(np.asarray(distinct, dtype=object), dtype="string").str.strip()
    code_of_distinct, texts = pd.factorize(stripped)  # values that differ only in blanks become one
    return np.where(row_code >= 0, code_of_distinct[row_code], -1), pd.Series(texts, dtype="string")


def _stripped(values: pd.Series) -> pd.Categorical:
    """``values`` as text without surrounding blanks, categorical (missing stays missing)."""
    row_code, texts = _stripped_codes(values)
    categories = pd.Categorical(texts.array)
    return pd.Categorical.from_codes(np.where(row_code >= 0, categories.codes[row_code], -1), dtype=categories.dtype)


def _citizenship(values: pd.Series, top: int) -> tuple[pd.Categorical, pd.Categorical]:
    """The ``top`` most frequent foreign citizenships by name, the rest as one group; Danish and
    English, as categoricals. Each distinct country code is named once, not each row."""
    row_code, codes = _stripped_codes(values)
    # rows per code, the codes in order of first appearance: the order value_counts breaks ties in
    rows = pd.Series(np.bincount(row_code[row_code >= 0], minlength=len(codes)), index=codes.to_numpy(dtype=object))
    foreign = rows[rows.index != DENMARK]
    kept = set(foreign.sort_values(ascending=False).index[:top])
    danish = np.array([
        "dansk" if code == DENMARK else COUNTRY_NAMES.get(code, f"landekode {code}") if code in kept else "andet land"
        for code in codes
    ] + ["ukendt"], dtype=object)  # the last: rows without a code
    english = pd.Series(danish).replace({"dansk": "Danish", "andet land": "other country", "ukendt": "unknown"})
    english = english.str.replace("landekode", "country code").to_numpy(dtype=object)
    at = np.where(row_code >= 0, row_code, len(codes))
    present = np.bincount(at, minlength=len(danish)) > 0  # a category only for a name some row has
    return tuple(_categorical_of(names, present, at) for names in (danish, english))


def _categorical_of(names: np.ndarray, present: np.ndarray, at: np.ndarray) -> pd.Categorical:
    """``pd.Categorical(names[at])``, made from the few distinct ``names`` (``present``: those that
    ``at`` takes) instead of from millions of rows."""
    distinct = pd.Categorical(names[present])
    code_of_name = np.full(len(names), -1)
    code_of_name[present] = distinct.codes
    return pd.Categorical.from_codes(code_of_name[at], dtype=distinct.dtype)


def _support_weeks_last_year(
    out: pd.DataFrame, as_of: pd.Series, benefits: pd.DataFrame, benefit_codes: np.ndarray, n_codes: int
) -> np.ndarray:
    """Weeks on public support in the 52 weeks before each row's as-of week (``out["_person"]``
    and ``benefit_codes`` are person codes in one code space of ``n_codes``)."""
    weeks = np.zeros(len(out), dtype="int64")
    groups = as_of.groupby(as_of.to_numpy()).indices
    ends = [week_index(pd.Timestamp(date).date()) for date in groups]
    # a benefits row without a person id (code -1) counts for no one
    has_person = benefit_codes >= 0
    counted = support_weeks_by_code(benefits[has_person], benefit_codes[has_person], n_codes,
                                    [(end - 52, end) for end in ends])
    persons = out["_person"].to_numpy()
    for rows, by_person in zip(groups.values(), counted):
        weeks[rows] = by_person[persons[rows]]
    return weeks


def _support_bands(weeks: np.ndarray) -> tuple[pd.Series, pd.Series]:
    da = pd.Series(np.select([weeks == 0, weeks < 26, weeks < 52], ["0 uger", "1-25 uger", "26-51 uger"], "hele året"))
    en = pd.Series(np.select([weeks == 0, weeks < 26, weeks < 52], ["0 weeks", "1-25 weeks", "26-51 weeks"], "all year"))
    return da, en


def wilson_interval(positives: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (arrays in, arrays out)."""
    positives, n = np.asarray(positives, dtype="float64"), np.asarray(n, dtype="float64")
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = positives / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def discover_subgroups(
    rows: pd.DataFrame,
    attributes: Sequence[str],
    *,
    min_subgroup: int,
    max_conditions: int,
    beam_width: int,
    results: int,
    level: float = 0.95,
) -> pd.DataFrame:
    """Subgroups with the lowest and highest label rates, by beam search.

    ``rows`` has ``person_id``, ``label`` (0/1) and, per attribute, a Danish value column
    ``<attribute>`` and an English twin ``<attribute>_en``. A subgroup is a conjunction of up to
    ``max_conditions`` conditions ``attribute = value`` on distinct attributes with at least
    ``min_subgroup`` distinct persons. Candidates are ranked by the Wilson bound on the far side
    (upper bound for the lowest rates, lower bound for the highest) so that a small group needs a
    clear rate to rank high. Returns up to ``results`` rows per ``direction`` (``lowest``,
    ``highest``): ``direction``, ``rank``, ``description_da``, ``description_en``,
    ``conditions``, ``persons``, ``observations``, ``rate``, ``interval_low``, ``interval_high``.
    """
    missing = [c for a in attributes for c in (a, f"{a}_en") if c not in rows.columns]
    if missing:
        raise KeyError(f"discover_subgroups: rows lack columns {missing}")
    labelled = rows[rows["label"].notna()].reset_index(drop=True)
    labels = labelled["label"].to_numpy(dtype="int64")
    codes, values = {}, {}
    for attribute in attributes:
        codes[attribute], values[attribute] = _value_codes(labelled[attribute])
    person_codes, person_ids = pd.factorize(labelled["person_id"])
    n_persons = len(person_ids)

    def mask_of(key: tuple) -> np.ndarray:
        # masks are rebuilt from their conditions rather than stored: thousands of candidates
        # times millions of rows would not fit in memory
        mask = np.ones(len(labelled), dtype=bool)
        for attribute, value in key:
            mask &= codes[attribute] == value
        return mask

    seen: dict[tuple, dict | None] = {}
    records = []
    for direction in ("lowest", "highest"):
        beam: list[tuple] = [()]
        for _ in range(max_conditions):
            candidates = []
            for conditions in beam:
                inside = np.flatnonzero(mask_of(conditions))
                used = {a for a, _ in conditions}
                for attribute in attributes:
                    if attribute in used:
                        continue
                    # every value of the attribute at once: one pass over the rows inside the parent
                    refined = _refinement_figures(codes[attribute][inside], len(values[attribute]), labels[inside],
                                                  person_codes[inside], n_persons, min_subgroup, level)
                    for value, figures in refined.items():
                        key = tuple(sorted((*conditions, (attribute, value))))
                        if key not in seen:
                            seen[key] = figures
                        if seen[key] is not None:
                            candidates.append(key)
            candidates = list(dict.fromkeys(candidates))
            if not candidates:
                break
            beam = _rank(candidates, seen, direction)[:beam_width]

        evaluated = [key for key, found in seen.items() if found is not None]
        kept: list[tuple] = []
        covered: set[bytes] = set()
        for key in _rank(evaluated, seen, direction):
            # a refinement that selects exactly the same rows adds words, not information
            signature = np.packbits(mask_of(key)).tobytes()
            if signature in covered:
                continue
            covered.add(signature)
            kept.append(key)
            if len(kept) == results:
                break
        for rank, key in enumerate(kept, start=1):
            records.append({
                "direction": direction, "rank": rank,
                "description_da": _describe(key, values, labelled, "da"),
                "description_en": _describe(key, values, labelled, "en"),
                "conditions": len(key),
                **seen[key],
            })
    columns = ["direction", "rank", "description_da", "description_en", "conditions", "persons",
               "observations", "rate", "interval_low", "interval_high"]
    return pd.DataFrame.from_records(records, columns=columns)


def _value_codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize(column.astype("string").fillna("ukendt"), sort=True)``, without turning
    millions of categorical rows into strings first: the categories are factorized instead."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return pd.factorize(column.astype("string").fillna("ukendt"), sort=True)
    category_codes = column.cat.codes.to_numpy()
    names = np.append(column.cat.categories.astype("string").to_numpy(dtype=object), "ukendt")
    category_codes = np.where(category_codes < 0, len(names) - 1, category_codes)
    present = np.flatnonzero(np.bincount(category_codes, minlength=len(names)))
    # a category "ukendt" and missing values become one value, as after fillna
    uniques, position = np.unique(names[present].astype(str), return_inverse=True)
    to_value = np.zeros(len(names), dtype="int64")
    to_value[present] = position
    return to_value[category_codes], pd.Index(uniques, dtype=object)


#: distinct persons per value are counted in a persons x values bitmap up to this many cells (a
#: sort of the (person, value) pairs beyond it): a sort of millions of pairs per candidate parent
#: was most of the search's time
_BITMAP_CELLS = 2**28


def _refinement_figures(
    values: np.ndarray, n_values: int, labels: np.ndarray, persons: np.ndarray, n_persons: int,
    min_subgroup: int, level: float,
) -> dict[int, dict | None]:
    """Persons, rows, rate and Wilson interval of each refinement ``attribute = value`` of a parent
    subgroup, given the parent's rows: the attribute's value codes, labels and person codes
    (``0 .. n_persons - 1``).

    Values with fewer than ``min_subgroup`` rows are left out (rows >= persons: a cheap pre-filter);
    a value with enough rows but too few distinct persons maps to None.
    """
    observations = np.bincount(values, minlength=n_values)
    kept = np.flatnonzero(observations >= min_subgroup)
    if not len(kept):
        return {}
    positives = np.bincount(values, weights=labels, minlength=n_values)[kept]
    # distinct (person, value) pairs, counted per value
    pairs = persons.astype("int64") * n_values + values
    if n_persons * n_values <= _BITMAP_CELLS:
        present = np.zeros(n_persons * n_values, dtype=bool)
        present[pairs] = True
        distinct = np.count_nonzero(present.reshape(n_persons, n_values), axis=0)[kept]
    else:
        distinct = np.bincount(sorted_unique(pairs) % n_values, minlength=n_values)[kept]
    low, high = wilson_interval(positives, observations[kept], level)
    refined: dict[int, dict | None] = {}
    for i, value in enumerate(kept.tolist()):
        if distinct[i] < min_subgroup:
            refined[value] = None
            continue
        n, k = int(observations[value]), int(positives[i])
        refined[value] = {"persons": int(distinct[i]), "observations": n, "rate": k / n,
                          "interval_low": float(low[i]), "interval_high": float(high[i])}
    return refined


def _rank(keys: list[tuple], seen: Mapping[tuple, dict], direction: str) -> list[tuple]:
    if direction == "lowest":
        return sorted(keys, key=lambda k: (seen[k]["interval_high"], seen[k]["rate"], len(k), k))
    return sorted(keys, key=lambda k: (-seen[k]["interval_low"], -seen[k]["rate"], len(k), k))


def _describe(key: tuple, values: Mapping[str, pd.Index], rows: pd.DataFrame, language: str) -> str:
    parts = []
    for attribute, value in key:
        da_value = values[attribute][value]
        if language == "da":
            parts.append(f"{ATTRIBUTE_NAMES.get(attribute, (attribute, attribute))[0]}: {da_value}")
        else:
            english = rows.loc[rows[attribute] == da_value, f"{attribute}_en"]
            en_value = english.iloc[0] if len(english) else da_value
            parts.append(f"{ATTRIBUTE_NAMES.get(attribute, (attribute, attribute))[1]}: {en_value}")
    return ", ".join(parts)
