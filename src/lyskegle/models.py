"""The model grid, its scikit-learn pipelines, selection across folds, calibration and the test run.

One call, :func:`train_and_evaluate`, takes the labelled rows of one target and returns everything
the train stage writes: the chosen, calibrated model, per-fold selection scores, test predictions
and the aggregate metrics and curves.

Calibration (decided here): the chosen model is fitted on every training as-of date at least
``train.gap_weeks`` before the *last* training as-of date (that is the last selection fold's fit,
so it is reused, not refitted), and a calibrator (isotonic or sigmoid) is fitted on the scores it
gives the last training as-of date, out of time, as in use; the base model is frozen
(``CalibratedClassifierCV(FrozenEstimator(...))``). The calibrator thus maps exactly the scores of
the model it wraps. The price is that the base model does not see the last training as-of date;
with ``train.calibration: none`` the chosen model is instead refitted on the whole training period.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from lyskegle.config import TrainParams
from lyskegle.evaluation import (
    LOWER_IS_BETTER,
    Fold,
    baseline_score,
    baseline_sign,
    calibration_table,
    curve_points,
    metric_key,
    precision_at_k_table,
    score_metrics,
    selection_folds,
    temporal_split,
)
from lyskegle.ids import days, is_in, on_dates, shared_codes, sorted_unique

log = logging.getLogger(__name__)

STAIRWELL_COLUMN = "stairwell_id"
AUDIT_COLUMNS = ("audit_sex", "audit_age_band", "audit_origin_group", "audit_area")
MISSING_CATEGORY = "missing"


@dataclass(frozen=True)
class Candidate:
    """One point of the model grid: a model kind and its hyperparameters."""

    kind: str
    settings: dict[str, Any]

    @property
    def name(self) -> str:
        inside = ",".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                          for key, value in self.settings.items())
        return f"{self.kind}({inside})"


def model_grid(params: TrainParams) -> list[Candidate]:
    """Every combination of the listed hyperparameter values, for every model kind in ``train.models``."""
    candidates = []
    for kind in params.models:
        grid = getattr(params, kind).model_dump()
        keys = list(grid)
        values = [grid[key] if isinstance(grid[key], list) else [grid[key]] for key in keys]
        candidates.extend(Candidate(kind, dict(zip(keys, combo))) for combo in itertools.product(*values))
    return candidates


@dataclass(frozen=True)
class ColumnRoles:
    """Which model input columns are numeric, which is the stairwell id, which are other categories."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    stairwell: str | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *([self.stairwell] if self.stairwell else [])]


def column_roles(features: pd.DataFrame, feature_columns: Sequence[str], use_stairwell: bool) -> ColumnRoles:
    """Sort ``feature_columns`` (and ``stairwell_id`` when ``use_stairwell``) by how they enter a model."""
    missing = [c for c in feature_columns if c not in features.columns]
    if missing:
        raise KeyError(f"feature columns {missing} are not in the features table")
    numeric = tuple(c for c in feature_columns
                    if pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))
    categorical = tuple(c for c in feature_columns if c not in numeric and c != STAIRWELL_COLUMN)
    stairwell = STAIRWELL_COLUMN if use_stairwell and STAIRWELL_COLUMN in features.columns else None
    return ColumnRoles(numeric, categorical, stairwell)


def model_inputs(rows: pd.DataFrame, roles: ColumnRoles) -> pd.DataFrame:
    """The model's input frame: numeric columns as float64 with NaN, categories as str with ``missing``.

    Plain NumPy dtypes, so scikit-learn and the MLflow signature see the same types whatever
    backend (pyarrow, nullable) the features table was read with.
    """
    out = {}
    for column in roles.numeric:
        out[column] = pd.to_numeric(rows[column], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    for column in (*roles.categorical, *([roles.stairwell] if roles.stairwell else [])):
        out[column] = rows[column].astype("string").fillna(MISSING_CATEGORY).to_numpy(dtype=object)
    return pd.DataFrame(out, index=rows.index)


class DropEmptyColumns(TransformerMixin, BaseEstimator):
    """Drops the columns that have no observed value in the training rows.

    HistGradientBoosting handles missing values itself, but scikit-learn 1.9 fails to bin a column
    that is missing in every row ("window shape cannot be larger than input array shape"); on a
    small fold that happens, e.g. for a network layer in which nobody has contacts yet.
    """

    def fit(self, X, y=None):  # noqa: N803 (scikit-learn's names)
        values = np.asarray(X, dtype="float64")
        self.keep_ = ~np.isnan(values).all(axis=0)
        self.n_features_in_ = values.shape[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X):  # noqa: N803
        check_is_fitted(self, "keep_")
        return np.asarray(X, dtype="float64")[:, self.keep_]

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "keep_")
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray(input_features, dtype=object)[self.keep_]


def median_or_zero(values: np.ndarray) -> float:
    """The median of a column's non-missing values, 0 for a column without any: scikit-learn's
    ``strategy="median"`` with ``keep_empty_features=True``. Given to ``SimpleImputer`` as its
    strategy, it takes one column at a time, about three times faster on 300,000 rows than the
    built-in median, which sorts a masked copy of the whole matrix."""
    return float(np.median(values)) if len(values) else 0.0


def build_pipeline(candidate: Candidate, roles: ColumnRoles, random_state: int,
                   stairwell_encoder: BaseEstimator | None = None) -> Pipeline:
    """An unfitted pipeline for ``candidate``.

    Logistic regression: median imputation (:func:`median_or_zero`) with missing indicators, then
    standard scaling.
    Gradient boosting: numeric columns pass through (it handles NaN itself). Both: the stairwell
    id becomes a rate through ``stairwell_encoder`` (scikit-learn's cross-fitted ``TargetEncoder``
    when none is given), fitted inside the pipeline on training rows only; other categories are
    one-hot encoded with rare levels pooled.
    """
    linear = candidate.kind == "logistic"
    numeric = (
        Pipeline([("impute", SimpleImputer(strategy=median_or_zero, add_indicator=True, keep_empty_features=True)),
                  ("scale", StandardScaler())])
        if linear else DropEmptyColumns()
    )
    parts: list[tuple[str, Any, list[str]]] = [("numeric", numeric, list(roles.numeric))]
    if roles.categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20,
                                                   sparse_output=False), list(roles.categorical)))
    if roles.stairwell:
        encoder = clone(stairwell_encoder) if stairwell_encoder is not None else TargetEncoder(
            target_type="binary", cv=StratifiedKFold(5, shuffle=True, random_state=random_state))
        steps = [("rate", encoder), ("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if linear:
            steps.append(("scale", StandardScaler()))
        parts.append(("stairwell", Pipeline(steps), [roles.stairwell]))
    prepare = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    if linear:
        # Newton-Cholesky: scikit-learn's choice when rows far outnumber columns. On 300,000 rows of
        # 130 inputs it reaches a lower penalised loss in 8 Newton steps (3.8 s) than lbfgs does in
        # the 118 steps after which its tolerance stops it (7.7 s; probabilities up to 0.2 apart).
        estimator = LogisticRegression(C=candidate.settings["C"], max_iter=candidate.settings["max_iter"],
                                       solver="newton-cholesky")
    elif candidate.kind == "hist_gradient_boosting":
        estimator = HistGradientBoostingClassifier(**candidate.settings, random_state=random_state)
    else:
        raise ValueError(f"unknown model kind '{candidate.kind}' in train.models")
    return Pipeline([("prepare", prepare), ("model", estimator)])


def cohort_filter(cohorts: pd.DataFrame, target: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """A row mask for parts of a features table: which rows belong to a person in ``target``'s
    cohort at their ``as_of`` with a usable (uncensored) label. For reading only those rows of a large table
    (:func:`lyskegle.io.read_parquet_where`); :func:`labelled_rows` then does the join.

    The persons are matched date by date with Arrow's hash lookup: pandas' index of date x text id
    pairs cost 6 s of the audit's read of a million persons' features."""
    usable = _usable(cohorts, target)
    usable_days = _day_numbers(usable["as_of"])
    members = {day: usable["person_id"].iloc[np.flatnonzero(usable_days == day)] for day in np.unique(usable_days)}

    def keep(features: pd.DataFrame) -> np.ndarray:
        feature_days = _day_numbers(features["as_of"])
        found = np.zeros(len(features), dtype=bool)
        for day in np.unique(feature_days):
            if day in members:
                rows = np.flatnonzero(feature_days == day)
                found[rows] = is_in(features["person_id"].iloc[rows], members[day])
        return found

    return keep


def _day_numbers(as_of: pd.Series) -> np.ndarray:
    """Dates as int64 day numbers (missing: one number of their own, so they match each other)."""
    return days(as_of).astype("int64")


def sampled_cohort(cohorts: pd.DataFrame, target: str, sample_as_of: Sequence[dt.date], max_rows: int,
                   random_state: int) -> pd.DataFrame:
    """``target``'s usable cohort rows: all of them, except that of the rows at the ``sample_as_of``
    dates a random ``max_rows`` are kept. A stage that fits or scores only a sample of the training
    period reads the features of these rows alone (:func:`cohort_filter`), not of millions more."""
    cohort = _usable(cohorts, target)
    at = np.flatnonzero(on_dates(cohort["as_of"], sample_as_of))
    keep = np.ones(len(cohort), dtype=bool)
    keep[at] = False
    keep[sample_positions(at, max_rows, np.random.default_rng(random_state))] = True
    return cohort.iloc[np.flatnonzero(keep)]


def _usable(cohorts: pd.DataFrame, target: str) -> pd.DataFrame:
    """``target``'s cohort rows with a usable (uncensored) label."""
    return cohorts.loc[(cohorts["target"] == target) & ~_censored(cohorts)]


def _censored(cohort: pd.DataFrame) -> pd.Series:
    """Rows that cannot be used: flagged censored, or without a label."""
    return cohort["censored"].fillna(True).astype(bool) | cohort["label"].isna()


def labelled_rows(features: pd.DataFrame, cohorts: pd.DataFrame, target: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Features of the cohort members of ``target`` with their label, censored rows excluded.

    ``cohorts`` has ``target``, ``as_of``, ``person_id``, ``label``, ``censored``; ``features`` one
    row per ``as_of`` x ``person_id``. Returns the joined rows in the order of ``features``
    (``as_of`` as datetime64, ``label`` as int8) and counts: ``cohort_rows``, ``censored`` (label
    missing or flagged censored), ``without_features`` (cohort rows with no features row; excluded
    too).
    """
    cohort = cohorts.loc[cohorts["target"] == target, ["as_of", "person_id", "label", "censored"]].copy()
    if cohort.empty:
        raise ValueError(f"cohorts hold no rows for target '{target}'")
    censored = _censored(cohort)
    cohort = cohort.loc[~censored]
    cohort["as_of"] = days(cohort["as_of"]).astype("datetime64[ns]")
    cohort["label"] = cohort["label"].astype("int8")
    # Join on the keys alone, then take the matching feature rows once (or none, when every row
    # matches in order): at a million persons each copy of the wide table costs gigabytes. Each
    # key is one int64, day number x persons + person code (person ids as shared int codes): a
    # merge on millions of (date, string) pairs hashes each again and took 3 s of the 6 s.
    cohort["person_id"] = cohort["person_id"].astype("string[pyarrow]")
    (cohort_person, feature_person), vocabulary = shared_codes([cohort["person_id"], features["person_id"]])
    width = len(vocabulary) + 1  # codes run -1 (no id) .. len - 1

    def key(dates: pd.Series, persons: np.ndarray) -> np.ndarray:
        return days(dates).astype("int64") * width + (persons.astype("int64") + 1)

    feature_keys = pd.Index(key(features["as_of"], feature_person))
    if not feature_keys.is_unique:
        raise ValueError("labelled_rows: the features table has more than one row for an as_of x person_id")
    cohort_keys = key(cohort["as_of"], cohort_person)
    if not pd.Index(cohort_keys).is_unique:
        raise ValueError(f"labelled_rows: the cohorts hold more than one usable row for an as_of x person_id "
                         f"of target '{target}'")
    at = feature_keys.get_indexer(cohort_keys)
    # Rows in the order of the features table (as_of, person_id), which lets the usual case, where
    # every row matches (see cohort_filter), share the table's memory instead of copying it.
    found = np.flatnonzero(at >= 0)
    if np.any(np.diff(at[found]) < 0):  # cohorts come sorted like the features, mostly
        found = found[np.argsort(at[found], kind="stable")]
    matched, rows = cohort.iloc[found], at[found]
    keys_first = list(features.columns[:2]) == ["as_of", "person_id"]
    if keys_first and np.array_equal(rows, np.arange(len(features))):
        joined = features.copy(deep=False)
    else:
        others = [c for c in features.columns if c not in ("as_of", "person_id")]
        joined = features.take(rows)
        joined = joined if keys_first else joined[["as_of", "person_id", *others]]
    joined.index = pd.RangeIndex(len(rows))  # in place: set_axis or reset_index would copy the table again
    joined["as_of"] = matched["as_of"].to_numpy()
    joined["person_id"] = matched["person_id"].array
    joined.insert(2, "label", matched["label"].to_numpy())
    counts = {
        "cohort_rows": int(len(censored)),
        "censored": int(censored.sum()),
        "without_features": int(len(cohort) - len(joined)),
    }
    return joined, counts


def sample_positions(positions: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_rows`` of ``positions``, drawn without replacement, in their original order."""
    if len(positions) <= max_rows:
        return positions
    return np.sort(rng.choice(positions, size=max_rows, replace=False))


@dataclass
class TrainingResult:
    """What :func:`train_and_evaluate` returns; every frame except ``test_predictions`` is aggregate."""

    chosen: Candidate
    model: Any
    roles: ColumnRoles
    train_as_of: tuple[dt.date, ...]
    test_as_of: tuple[dt.date, ...]
    folds: list[Fold]
    selection: pd.DataFrame          # candidate x fold metrics
    metrics: dict[str, Any]          # test metrics of the model and of the baseline, overall
    metrics_by_as_of: pd.DataFrame   # the same per test as-of date
    test_predictions: pd.DataFrame   # person level: stays in the DVC workspace
    curves: pd.DataFrame
    baseline_curves: pd.DataFrame
    calibration: pd.DataFrame
    precision_at_k: pd.DataFrame
    thresholds: dict[str, float]
    baseline_sign: int
    importance: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


#: Rows predicted at a time (memory of the model's input copies, not a statistical choice).
PREDICT_ROWS = 100_000


def predict_scores(model: Any, rows: pd.DataFrame, roles: ColumnRoles, positions: np.ndarray | None = None) -> np.ndarray:
    """The model's probability of the positive class for the ``rows`` at ``positions`` (all rows
    when None), from their :func:`model_inputs`, :data:`PREDICT_ROWS` at a time."""
    return predict_in_blocks(model, rows, lambda block: model_inputs(block, roles), positions)


def predict_in_blocks(model: Any, rows: pd.DataFrame, inputs: Callable[[pd.DataFrame], Any],
                      positions: np.ndarray | None = None) -> np.ndarray:
    """``model``'s probability of the positive class for the ``rows`` at ``positions`` (all rows
    when None), :data:`PREDICT_ROWS` at a time, each block turned into model input by ``inputs``:
    the model's input copies of a million rows would otherwise cost gigabytes at once."""
    positions = np.arange(len(rows)) if positions is None else np.asarray(positions)
    return np.concatenate([
        model.predict_proba(inputs(rows.iloc[positions[start:start + PREDICT_ROWS]]))[:, 1]
        for start in range(0, len(positions), PREDICT_ROWS)
    ] or [np.zeros(0)])


@dataclass(frozen=True)
class LabelledRows:
    """A target's labelled rows (:func:`labelled_rows`), held in memory or read on demand.

    ``keys`` has ``as_of``, ``person_id``, ``label`` and the baseline column of every row, in order.
    ``take(positions)`` gives every column of the rows at ascending ``positions``, in order;
    ``parts(positions)`` gives the same in pieces ``(where, frame)``, where ``positions[where]`` are
    the rows of ``frame``. Training takes only the rows its samples draw, and scores the test and
    calibration dates piece by piece, so a target's whole table need never be in memory.
    """

    keys: pd.DataFrame
    take: Callable[[np.ndarray], pd.DataFrame]
    parts: Callable[[np.ndarray], Iterable[tuple[slice, pd.DataFrame]]]

    @classmethod
    def held(cls, rows: pd.DataFrame) -> LabelledRows:
        """Rows already in memory, taken in one piece."""
        return cls(rows, lambda at: rows.iloc[at], lambda at: [(slice(0, len(at)), rows.iloc[at])])


def train_and_evaluate(rows: pd.DataFrame | LabelledRows, roles: ColumnRoles, params: TrainParams,
                       horizon_weeks: int, baseline_column: str, min_cell: int,
                       stairwell_encoder: BaseEstimator | None = None, progress: Any = None) -> TrainingResult:
    """Select, calibrate and test a model on the labelled rows of one target.

    ``rows`` comes from :func:`labelled_rows` (or is read on demand, :class:`LabelledRows`):
    ``as_of``, ``person_id``, ``label``, the model input columns of ``roles``, ``baseline_column``
    and the audit columns. ``progress`` (optional) is called with a short message before each fit.
    OpenMP (gradient boosting) and BLAS (the logistic fits' Newton steps) are held to
    ``train.threads``: on a shared machine, oversubscribed OpenMP makes gradient boosting many times
    slower. Returns a :class:`TrainingResult`.
    """
    source = rows if isinstance(rows, LabelledRows) else LabelledRows.held(rows)
    with threadpool_limits(params.threads):  # OpenMP and BLAS alike
        return _train_and_evaluate(source, roles, params, horizon_weeks, baseline_column, min_cell,
                                   stairwell_encoder, progress)


def _train_and_evaluate(
    rows: LabelledRows,
    roles: ColumnRoles,
    params: TrainParams,
    horizon_weeks: int,
    baseline_column: str,
    min_cell: int,
    stairwell_encoder: BaseEstimator | None = None,
    progress: Any = None,
) -> TrainingResult:
    keys = rows.keys
    if baseline_column not in keys.columns:
        raise KeyError(f"baseline column '{baseline_column}' (train.baseline_feature) is not in the features table")
    rng = np.random.default_rng(params.random_state)
    notify = progress or (lambda message: None)
    # Dates as integer codes: comparing millions of date objects is slow.
    day_codes, as_of_code = np.unique(keys["as_of"].to_numpy("datetime64[D]"), return_inverse=True)
    dates = [d.item() for d in day_codes]
    split = temporal_split(dates, params.test_as_of_count, params.gap_weeks, horizon_weeks)
    folds = selection_folds(split.train_as_of, params.gap_weeks, params.selection_folds)
    labels = keys["label"].to_numpy("int64")
    baseline = keys[baseline_column].to_numpy("float64", na_value=np.nan)
    order = np.argsort(as_of_code, kind="stable")
    bounds = np.searchsorted(as_of_code[order], np.arange(len(dates) + 1))
    positions_of = {d: np.sort(order[bounds[i]:bounds[i + 1]]) for i, d in enumerate(dates)}
    as_of = np.asarray(dates, dtype=object)[as_of_code]

    def positions(dates: Sequence[dt.date]) -> np.ndarray:
        return np.sort(np.concatenate([positions_of[d] for d in dates]))

    # Every sample is drawn first, in the order the fits use them, so that only the rows drawn
    # are taken from the table: at national scale the training period is tens of millions of rows.
    candidates = model_grid(params)
    draws = {(candidate.name, number): (sample_positions(positions(fold.fit_as_of), params.max_fit_rows, rng),
                                        sample_positions(positions_of[fold.validate_as_of], params.max_fit_rows, rng))
             for candidate in candidates for number, fold in enumerate(folds, start=1)}
    calibration_rows = positions_of[folds[-1].validate_as_of]
    final_at = sample_positions(positions(split.train_as_of) if params.calibration == "none" else calibration_rows,
                                params.max_fit_rows, rng)
    held_at = sorted_unique(np.concatenate([final_at, *(at for pair in draws.values() for at in pair)]))
    held = rows.take(held_at)

    def inputs(at: np.ndarray) -> pd.DataFrame:
        return model_inputs(held.iloc[np.searchsorted(held_at, at)], roles)

    def fit(candidate: Candidate, at: np.ndarray) -> Pipeline:
        return build_pipeline(candidate, roles, params.random_state, stairwell_encoder).fit(inputs(at), labels[at])

    def predict(model: Any, at: np.ndarray) -> np.ndarray:
        return predict_scores(model, held, roles, np.searchsorted(held_at, at))

    selection_rows, last_fold_models = [], {}
    for candidate in candidates:
        for number, fold in enumerate(folds, start=1):
            notify(f"{candidate.name}: fold {number}/{len(folds)} (validate {fold.validate_as_of})")
            fit_at, validate = draws[candidate.name, number]
            model = fit(candidate, fit_at)
            # a sample scores a fold as precisely as all rows, at a fraction of the prediction time
            scores = score_metrics(labels[validate], predict(model, validate), params.top_k_percent)
            selection_rows.append({"candidate": candidate.name, "kind": candidate.kind, "fold": number,
                                   "validate_as_of": fold.validate_as_of, "rows": len(validate), **scores})
            if fold is folds[-1]:
                last_fold_models[candidate.name] = model
    selection = pd.DataFrame(selection_rows)
    chosen = choose_candidate(selection, params.selection_metric, candidates)

    if params.calibration == "none":
        notify(f"{chosen.name}: refit on the whole training period")
        model = fit(chosen, final_at)
    else:
        notify(f"{chosen.name}: {params.calibration} calibration on {folds[-1].validate_as_of}")
        model = CalibratedClassifierCV(FrozenEstimator(last_fold_models[chosen.name]), method=params.calibration)
        model.fit(inputs(final_at), labels[final_at])
    del held

    train_at = positions(split.train_as_of)
    sign = baseline_sign(labels[train_at], baseline[train_at])
    test_at = positions(split.test_as_of)
    notify(f"{chosen.name}: scoring {len(test_at)} test rows")
    importance_at = sample_positions(np.arange(len(test_at)), params.importance_rows,
                                     np.random.default_rng(params.random_state))
    test_score, audit_parts, importance_inputs = [], [], []
    for where, part in rows.parts(test_at):
        test_score.append(predict_scores(model, part, roles))
        audit_parts.append(part[[c for c in AUDIT_COLUMNS if c in part.columns]])
        inside = importance_at[(importance_at >= where.start) & (importance_at < where.stop)] - where.start
        importance_inputs.append(model_inputs(part.iloc[inside], roles))
    test_score = np.concatenate(test_score or [np.zeros(0)])
    rule_score = baseline_score(baseline[test_at], sign)
    y_test = labels[test_at]

    metrics = _compare(y_test, test_score, rule_score, params.top_k_percent, min_cell)
    by_as_of = []
    for date in split.test_as_of:
        inside = as_of[test_at] == date
        by_as_of.append({"as_of": date, **_compare(y_test[inside], test_score[inside], rule_score[inside],
                                                   params.top_k_percent, min_cell)})
    calibration_scores = np.concatenate([predict_scores(model, part, roles)
                                         for _, part in rows.parts(calibration_rows)] or [np.zeros(0)])
    thresholds = {metric_key("threshold", k): float(np.quantile(calibration_scores, 1 - k / 100))
                  for k in params.top_k_percent}

    notify(f"{chosen.name}: permutation importance on up to {params.importance_rows} test rows")
    importance = permutation_importance_table(model, pd.concat(importance_inputs, ignore_index=True),
                                              y_test[importance_at], params.importance_repeats, params.random_state,
                                              n_jobs=params.threads)

    audit_columns = pd.concat(audit_parts, ignore_index=True) if audit_parts else pd.DataFrame()
    test_predictions = pd.DataFrame({
        "person_id": keys["person_id"].iloc[test_at].to_numpy(),
        "as_of": as_of[test_at],
        "label": y_test.astype("int8"),
        "score": test_score,
        "baseline_score": rule_score,
        **{c: audit_columns[c].to_numpy() for c in audit_columns.columns},
    })
    return TrainingResult(
        chosen=chosen, model=model, roles=roles, train_as_of=split.train_as_of, test_as_of=split.test_as_of,
        folds=folds, selection=selection, metrics=metrics, metrics_by_as_of=pd.DataFrame(by_as_of),
        test_predictions=test_predictions,
        curves=curve_points(y_test, test_score, params.curve_points, min_cell),
        baseline_curves=curve_points(y_test, rule_score, params.curve_points, min_cell),
        calibration=calibration_table(y_test, test_score, params.calibration_bins, min_cell),
        precision_at_k=precision_at_k_table(y_test, test_score, rule_score, params.top_k_percent),
        thresholds=thresholds, baseline_sign=sign, importance=importance,
        counts={"train_rows": int(len(train_at)), "test_rows": int(len(test_at)),
                "test_positives": int(y_test.sum()), "calibration_rows": int(len(calibration_rows))},
    )


def _compare(y: np.ndarray, score: np.ndarray, rule: np.ndarray, top_k_percent: Sequence[float],
             min_cell: int) -> dict[str, Any]:
    """Model metrics, ``baseline_``-prefixed rule metrics and ``persons``/``positives``.

    Metrics over fewer than ``min_cell`` persons, positives or negatives are left out (None):
    with so few, a precision or a rate describes identifiable people.
    """
    positives = int(y.sum())
    out: dict[str, Any] = {"persons": int(len(y)), "positives": positives}
    if min(positives, len(y) - positives) < min_cell:
        return out
    out.update(score_metrics(y, score, top_k_percent))
    out.update({f"baseline_{k}": v for k, v in score_metrics(y, rule, top_k_percent, probability=False).items()})
    for name in ("roc_auc", "average_precision", *(metric_key("precision", k) for k in top_k_percent)):
        out[f"gain_{name}"] = out[name] - out[f"baseline_{name}"]
    return out


def choose_candidate(selection: pd.DataFrame, metric: str, candidates: Sequence[Candidate]) -> Candidate:
    """The candidate with the best mean ``metric`` across folds (lowest for brier/log_loss).

    ``selection`` has one row per candidate x fold with a ``candidate`` column. Ties go to the
    earlier candidate in the grid (logistic first: the simpler model wins a tie).
    """
    means = selection.groupby("candidate", sort=False)[metric].mean()
    if means.isna().all():
        raise ValueError(f"train.selection_metric '{metric}' could not be computed on any fold")
    order = [c.name for c in candidates]
    means = means.reindex(order)
    best = means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax()
    return candidates[order.index(best)]


def permutation_importance_table(model: Any, inputs: pd.DataFrame, labels: np.ndarray, n_repeats: int,
                                 random_state: int, n_jobs: int = 1) -> pd.DataFrame:
    """Permutation importance (drop in average precision) per input column of ``inputs`` (model
    inputs, :func:`model_inputs`, of a sample of rows; ``labels`` are theirs, in that order).

    Returns ``feature``, ``importance_mean``, ``importance_std``, largest first. The values are
    aggregates over the whole sample. The model is scored through :func:`memoised_model` (the same
    numbers; its text encoders, and a gradient-boosting model's trees, work again only where a
    shuffle changed their columns). A gradient-boosting model is scored in this process: its trees'
    kept predictions are what makes it fast, and a worker process would start without them. Any
    other model runs on ``n_jobs`` processes, which share the columns (each keeps its own
    encoders' outputs). Either way the shuffles of a column do not depend on ``n_jobs``
    (scikit-learn draws one seed for all columns), so neither does the table.
    """
    memoised = memoised_model(model)
    boosting = any(True for _ in _steps(model, HistGradientBoostingClassifier))
    result = permutation_importance(memoised or model, inputs, np.asarray(labels), scoring="average_precision",
                                    n_repeats=n_repeats, random_state=random_state,
                                    n_jobs=1 if boosting else n_jobs)
    table = pd.DataFrame({"feature": inputs.columns, "importance_mean": result.importances_mean,
                          "importance_std": result.importances_std})
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)


def memoised_model(model: Any) -> Any | None:
    """A copy of ``model`` whose text encoders and gradient-boosting trees keep what they made of
    the first input they are given; None when ``model`` has neither.

    Made for permutation importance, where each scoring shuffles one input of the same sample. The
    encoders of :func:`build_pipeline`'s text columns (one-hot, the stairwell rate) give a later
    input whose columns hold the same values the output they kept (:class:`_MemoisedTransform`):
    they cost more per scoring than the rest of a boosting model's work. Each tree of a
    gradient-boosting step predicts the first input as usual and keeps the result; for a later
    input of the same shape it predicts again only if a column it splits on differs from the first
    input's (:func:`_changed_columns`), as a tree reads each row's values of its own columns only:
    at a million persons a column of the self_sufficient model is split on by a quarter of the
    trees. scikit-learn sums the trees as before, in the same order, so scores are bit for bit the
    model's. The copy is for that use only; it uses scikit-learn's private ``_predictors`` (one
    list of ``TreePredictor`` per iteration), ``TreePredictor.nodes`` and the fitted
    ``ColumnTransformer.transformers_``, so a scikit-learn version that changes them fails the
    tests that compare it with the plain model.
    """
    copied = copy.deepcopy(model)
    boosting = list(_steps(copied, HistGradientBoostingClassifier))
    prepares = [prepare for prepare in _steps(copied, ColumnTransformer)
                if any(name in _TEXT_TRANSFORMERS for name, _, _ in getattr(prepare, "transformers_", ()))]
    if not boosting and not prepares:
        return None
    for step in boosting:
        first = _FirstInput()
        step._predictors = [[_MemoisedTree(tree, first) for tree in trees] for trees in step._predictors]
    for prepare in prepares:
        prepare.transformers_ = [
            (name, _MemoisedTransform(transformer) if name in _TEXT_TRANSFORMERS else transformer, columns)
            for name, transformer, columns in prepare.transformers_
        ]
    return copied


#: the parts of :func:`build_pipeline`'s ColumnTransformer that read text columns
_TEXT_TRANSFORMERS = ("categorical", "stairwell")


def _steps(model: Any, kind: type) -> Iterable[Any]:
    """The steps of type ``kind`` inside a calibrated, frozen or pipelined ``model``."""
    if isinstance(model, kind):
        yield model
    elif isinstance(model, CalibratedClassifierCV):
        for calibrated in model.calibrated_classifiers_:
            yield from _steps(calibrated.estimator, kind)
    elif isinstance(model, FrozenEstimator):
        yield from _steps(model.estimator, kind)
    elif isinstance(model, Pipeline):
        for _, step in model.steps:
            yield from _steps(step, kind)


class _MemoisedTransform:
    """A fitted transformer that keeps its output of the first input (see :func:`memoised_model`):
    a later input with the same columns and the same values, value for value, gets that output back;
    any other is transformed as usual. Compared by ``==``, so a missing value (never equal to itself)
    only costs a transform again."""

    def __init__(self, transformer: Any) -> None:
        self.transformer, self.first, self.kept = transformer, None, None

    def transform(self, X: pd.DataFrame, **kwargs: Any) -> Any:  # noqa: N803
        if self.first is not None and _same_values(X, self.first):
            return self.kept
        out = self.transformer.transform(X, **kwargs)
        if self.first is None:
            self.first, self.kept = X.copy(), out
        return out

    def __getattr__(self, name: str) -> Any:
        if name == "transformer":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.transformer, name)


def _same_values(X: Any, first: pd.DataFrame) -> bool:  # noqa: N803
    if not isinstance(X, pd.DataFrame) or X.shape != first.shape or list(X.columns) != list(first.columns):
        return False
    try:
        return all(bool((X[column].to_numpy() == first[column].to_numpy()).all()) for column in X.columns)
    except (TypeError, ValueError):  # values that do not compare (pd.NA): transform again
        return False


class _FirstInput:
    """The first input the trees of one model saw, and which columns of the latest input differ."""

    def __init__(self) -> None:
        self.first: np.ndarray | None = None
        self.latest: np.ndarray | None = None  # held, so that its id cannot be reused
        self.changed: np.ndarray | None = None  # per column; None: not comparable (another shape)
        self.is_first = False

    def compare(self, X: np.ndarray) -> bool:  # noqa: N803 (scikit-learn's names)
        """Note ``X`` (once per input: every tree gets the same array); True when it is the first."""
        if X is not self.latest:
            self.latest = X
            if self.first is None:
                self.first = X.copy()
                self.changed = np.zeros(X.shape[1], dtype=bool)
                self.is_first = True
            else:
                self.is_first = False
                self.changed = _changed_columns(X, self.first)
        return self.is_first


def _changed_columns(X: np.ndarray, first: np.ndarray) -> np.ndarray | None:  # noqa: N803
    """Per column, whether any value of ``X`` differs from ``first``'s, bit for bit: a NaN moved by a
    shuffle equals the NaN it was, and where bits differ for equal values (-0.0 and 0.0, NaNs of
    other payloads) the trees predict again, which is slower, never wrong. None when the two
    cannot be compared."""
    if X.shape != first.shape or X.dtype != first.dtype or X.dtype.kind != "f":
        return None
    bits = np.dtype(f"u{X.dtype.itemsize}")
    return (X.view(bits) != first.view(bits)).any(axis=0)


class _MemoisedTree:
    """A ``TreePredictor`` that keeps its prediction of the first input (see :func:`memoised_model`)."""

    def __init__(self, tree: Any, first: _FirstInput) -> None:
        self.tree, self.first, self.kept = tree, first, None
        nodes = tree.nodes
        self.columns = np.unique(nodes["feature_idx"][nodes["is_leaf"] == 0])

    def predict(self, X: np.ndarray, **kwargs: Any) -> np.ndarray:  # noqa: N803
        if self.first.compare(X):
            self.kept = self.tree.predict(X, **kwargs)
            return self.kept
        changed = self.first.changed
        if changed is None or changed[self.columns].any():
            return self.tree.predict(X, **kwargs)
        return self.kept

    def __getattr__(self, name: str) -> Any:
        if name == "tree":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.tree, name)


def synthetic_input_row(rows: pd.DataFrame, roles: ColumnRoles) -> pd.DataFrame:
    """One made-up input row for the model signature: column medians and a placeholder stairwell.

    Built from aggregates, so it is no person's row (no person-level rows go to MLflow).
    """
    row = {}
    for column in roles.numeric:
        values = pd.to_numeric(rows[column], errors="coerce").to_numpy("float64", na_value=np.nan)
        # not Series.median: on a column missing in every row it warns "Mean of empty slice"
        row[column] = [median_or_zero(values[~np.isnan(values)])]
    row.update({c: np.array([MISSING_CATEGORY], dtype=object) for c in roles.categorical})
    if roles.stairwell:
        row[roles.stairwell] = np.array(["example-stairwell"], dtype=object)
    return pd.DataFrame(row)[roles.columns]


def _plain(value: Any) -> Any:
    """JSON-safe: NaN becomes None, NumPy scalars become Python numbers, dates become ISO strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.isoformat()[:10]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def stage_metrics(result: TrainingResult, label_counts: dict[str, int], selection_metric: str) -> dict[str, Any]:
    """What ``reports/<target>/metrics.json`` holds (a DVC metric): the test metrics of the model
    and of the baseline (``baseline_*``) and their differences (``gain_*``) at the top level, the
    same per test as-of date under ``by_as_of``, the chosen candidate's mean selection score, and
    row counts (censored rows excluded and counted)."""
    chosen = result.selection.loc[result.selection["candidate"] == result.chosen.name, selection_metric]
    # Per date only the headline figures, so `dvc metrics show` stays readable.
    headline = ("persons", "positives", "roc_auc", "baseline_roc_auc", "average_precision",
                "baseline_average_precision", "brier", "precision_at_10pct", "baseline_precision_at_10pct")
    by_as_of = {
        row["as_of"].isoformat(): {k: row[k] for k in headline if k in row}
        for row in result.metrics_by_as_of.to_dict("records")
    }
    return _plain({
        **result.metrics,
        f"selection_{selection_metric}": float(chosen.mean()),
        "baseline_sign": result.baseline_sign,
        "by_as_of": by_as_of,
        "rows": {**label_counts, **result.counts},
    })


def model_info(result: TrainingResult, target: str, params: TrainParams, baseline_column: str) -> dict[str, Any]:
    """What ``models/<target>/model_info.json`` holds: the chosen model and its settings, the
    calibration, the input columns by role, the as-of dates, score thresholds of the top k %
    (from the calibration as-of date, so known before the test period) and the baseline rule."""
    means = result.selection.groupby("candidate", sort=False)[params.selection_metric].mean()
    return _plain({
        "target": target,
        "chosen": {"name": result.chosen.name, "kind": result.chosen.kind, "settings": result.chosen.settings},
        "calibration": params.calibration,
        "selection": {"metric": params.selection_metric, "mean_by_candidate": means.to_dict(),
                      "folds": [{"fit_as_of": list(f.fit_as_of), "validate_as_of": f.validate_as_of}
                                for f in result.folds]},
        "inputs": {"numeric": list(result.roles.numeric), "categorical": list(result.roles.categorical),
                   "stairwell": result.roles.stairwell, "columns": result.roles.columns},
        "train_as_of": list(result.train_as_of),
        "test_as_of": list(result.test_as_of),
        "thresholds": result.thresholds,
        "baseline": {"feature": baseline_column, "sign": result.baseline_sign},
        "random_state": params.random_state,
    })
