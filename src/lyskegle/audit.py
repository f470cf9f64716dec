"""Fairness audit of one model's test predictions at its operating point, and the gate's verdict.

Input: a prediction frame with the columns of ``models/<target>/test_predictions.parquet``:
``person_id``, ``as_of``, ``label`` (0/1), ``score`` and the audit attributes ``audit_sex``,
``audit_age_band``, ``audit_origin_group``, ``audit_area`` (area missing = not in a housing area).

The operating point flags the top ``top_k_percent`` % of scores per as-of date, the way a caseworker
would get a list of the highest-risk persons each time the model is run. By default (``audit.flag``)
the list holds the lowest predicted chance of the good outcome: :func:`as_priority_list` turns the
predictions into risk of the adverse outcome first.

Group figures come from fairlearn's :class:`~fairlearn.metrics.MetricFrame`. Their confidence
intervals come from a bootstrap that resamples *persons* within each group (a person seen at two
as-of dates moves as one) and recomputes the same figures from resampling weights in one matrix
product per group: MetricFrame's own bootstrap resamples rows, ignores groups and takes about a
minute per attribute at 200 samples. A test checks that unit weights reproduce MetricFrame's figures.

Pass/fail rule (written into ``audit.json`` as well): for each group other than the reference group
with at least ``min_cell`` persons, the selection-rate ratio and the true-positive-rate ratio (equal
opportunity) against the reference group must lie within ``ratio_bounds``. A ratio is judged only
where the group would have at least ``min_expected_events`` events at the reference group's rate
(flagged persons for the selection rate, flagged positives for the TPR; for the TPR both groups also
need ``min_cell`` positives): a group of 20 with none flagged, where the reference flags 10 %, is
chance as often as not, and its bootstrap interval ([0, 0]) cannot show that. A group *fails* only
when the whole bootstrap interval of a judged ratio lies outside the bounds; a point estimate outside
with an interval that reaches inside is ``uncertain`` (a warning, not a failure). Without bootstrap
samples the point estimate decides. Groups with nothing to judge are ``not_judged``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from scipy import sparse
from sklearn.metrics import average_precision_score, precision_score, roc_auc_score

from lyskegle.features import model_feature_columns
from lyskegle.ids import on_dates
from lyskegle.models import (
    Candidate,
    ColumnRoles,
    build_pipeline,
    column_roles,
    model_inputs,
    predict_scores,
    sample_positions,
)
from lyskegle.privacy import suppress_small_cells

#: attribute name -> prediction column. Intersections are built from these.
AUDIT_COLUMNS: dict[str, str] = {
    "sex": "audit_sex",
    "age_band": "audit_age_band",
    "origin_group": "audit_origin_group",
    "area": "audit_area",
}
INTERSECTIONS: tuple[tuple[str, str], ...] = (("sex", "origin_group"), ("origin_group", "area"))
ORIGIN_GROUPS = ("danish", "western", "non_western")
#: the group of persons whose ``audit_area`` is missing: they live outside the housing areas
OUTSIDE_AREAS = "outside_areas"
OVERALL = "overall"

FIGURES = ("selection_rate", "tpr", "fpr", "precision", "roc_auc", "mean_score", "observed_rate")
RATIOS = ("selection_rate_ratio", "tpr_ratio")
#: which count a figure is computed over; a figure over fewer than min_cell persons is suppressed
DENOMINATORS = {
    "selection_rate": "persons", "mean_score": "persons", "observed_rate": "persons",
    "tpr": "positives", "fpr": "negatives", "precision": "flagged", "roc_auc": "minority_class",
}
_MAX_WEIGHT_CELLS = 4_000_000  # bootstrap weights held in memory at once (32 MB of float64)


class AuditInputError(ValueError):
    """Predictions that cannot be audited: a missing column, a missing value, an empty group."""


@dataclass(frozen=True)
class FairnessRule:
    """The numbers that decide the fairness part of the gate (from ``audit`` and ``privacy``)."""

    top_k_percent: float
    ratio_bounds: tuple[float, float]
    min_cell: int
    min_expected_events: float
    bootstrap_samples: int
    confidence: float
    reference_groups: Mapping[str, str]


# --- operating point and groups -------------------------------------------------------------------

def as_priority_list(predictions: pd.DataFrame, flag: str) -> pd.DataFrame:
    """Predictions turned the way the operating point reads them.

    The models predict the chance of a good outcome (leaving support, being self-sufficient). A
    municipality prioritises efforts for those with the *lowest* chance, so with
    ``flag="lowest_chance"`` the returned ``score`` is the chance of the adverse outcome
    (``1 - score``) and ``label`` is 1 where the adverse outcome happened; the fairness figures (TPR,
    precision, ...) then speak of the persons the list is meant to find. ``"highest_chance"``
    returns a copy unchanged.
    """
    _require(predictions, ["score", "label"])
    out = predictions.copy()
    if flag == "lowest_chance":
        out["score"] = 1.0 - out["score"]
        out["label"] = 1 - out["label"]
    elif flag != "highest_chance":
        raise ValueError(f"audit.flag must be 'lowest_chance' or 'highest_chance', not {flag!r}")
    return out


def flag_top_k(predictions: pd.DataFrame, top_k_percent: float) -> pd.Series:
    """Boolean Series (same index): the top ``top_k_percent`` % of ``score`` within each ``as_of``.

    ``ceil(k % of the persons)`` are flagged per as-of date, so a non-empty date flags at least one.
    Ties are broken by ``person_id`` (ascending), so the same predictions always flag the same persons.
    """
    _require(predictions, ["as_of", "person_id", "score"])
    flagged = _top_k(_sort_codes(predictions["as_of"]), predictions["score"].to_numpy("float64"),
                     _sort_codes(predictions["person_id"]), top_k_percent)
    return pd.Series(flagged, index=predictions.index, name="flagged")


def _sort_codes(values: pd.Series) -> np.ndarray:
    """Codes that sort as the values do (missing last), as pandas sorts a column."""
    codes, uniques = pd.factorize(values, sort=True)
    return np.where(codes < 0, len(uniques), codes)


def _top_k(as_of: np.ndarray, score: np.ndarray, person: np.ndarray, top_k_percent: float) -> np.ndarray:
    """:func:`flag_top_k` of sort codes of the as-of dates and persons (:func:`_sort_codes`): rows in
    the order of (as-of date, score descending, person), ties in row order, and the first
    ``ceil(k %)`` of each date flagged."""
    score_codes = _sort_codes(pd.Series(score))
    top = score_codes.max(initial=0)
    descending = np.where(np.isnan(score), top + 1, top - score_codes)  # a missing score last, as pandas sorts
    order = np.lexsort((person, descending, as_of))
    sizes = np.bincount(as_of)
    starts = np.cumsum(sizes) - sizes
    rank = np.arange(len(order)) - starts[as_of[order]]
    flagged = np.empty(len(order), dtype=bool)
    flagged[order] = rank < np.ceil(sizes[as_of[order]] * top_k_percent / 100.0)
    return flagged


def audit_groups(predictions: pd.DataFrame) -> pd.DataFrame:
    """One string column per audited attribute (``sex``, ``age_band``, ``origin_group``, ``area``,
    ``sex_x_origin_group``, ``origin_group_x_area``), same index as ``predictions``.

    Raises :class:`AuditInputError` for a missing audit column, a missing value (other than area),
    an origin group outside danish/western/non_western, or an attribute with fewer than two groups.
    """
    return pd.DataFrame({attribute: pd.Series(names[codes], index=predictions.index, dtype="string")
                         for attribute, (codes, names) in coded_groups(predictions).items()})


def coded_groups(predictions: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`audit_groups` as ``(codes, names)`` per attribute: each row's group as an integer code
    into the group names, which are sorted (so code order is name order). Grouping a million rows by
    integer codes instead of text is what keeps the fairness table quick at national scale."""
    _require(predictions, list(AUDIT_COLUMNS.values()))
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for attribute, column in AUDIT_COLUMNS.items():
        values = predictions[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            empty = [str(c) for c, n in values.value_counts().items() if n == 0]
            if empty:
                raise AuditInputError(f"{column}: group(s) {empty} have no persons")
        codes, uniques = pd.factorize(values)
        names = [str(value) for value in uniques]
        missing = codes < 0
        if attribute == "area":
            codes = np.where(missing, len(names), codes)
            names.append(OUTSIDE_AREAS)
        elif missing.any():
            raise AuditInputError(
                f"{column}: {int(missing.sum())} row(s) have no value; "
                "persons without a value would escape the audit"
            )
        groups[attribute] = _sorted_names(codes, names)
    unknown = sorted(set(groups["origin_group"][1]) - set(ORIGIN_GROUPS))
    if unknown:
        raise AuditInputError(f"audit_origin_group: unknown group(s) {unknown}; expected {list(ORIGIN_GROUPS)}")
    for first, second in INTERSECTIONS:
        (a, a_names), (b, b_names) = groups[first], groups[second]
        pairs, codes = np.unique(a * len(b_names) + b, return_inverse=True)
        names = [f"{a_names[pair // len(b_names)]} x {b_names[pair % len(b_names)]}" for pair in pairs]
        groups[f"{first}_x_{second}"] = _sorted_names(codes, names)
    for attribute in AUDIT_COLUMNS:
        codes, names = groups[attribute]
        if len(names) < 2:
            raise AuditInputError(
                f"{AUDIT_COLUMNS[attribute]}: only one group ({names[0]!r}), so there is nothing to compare it with"
            )
    return groups


def _sorted_names(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes and names renumbered so that the names are sorted and each one occurs (equal names,
    e.g. the value ``outside_areas`` beside missing areas, become one group)."""
    distinct, new_code = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    present = np.bincount(new_code[codes], minlength=len(distinct)) > 0
    renumber = np.cumsum(present) - 1
    return renumber[new_code[codes]], distinct[present].astype(object)


# --- group figures ----------------------------------------------------------------------------------

def _tpr(y_true, y_pred, sample_weight=None) -> float:
    # fairlearn returns 0 for a group without positives; undefined is the honest answer
    if not np.any(np.asarray(y_true) == 1):
        return np.nan
    return float(true_positive_rate(y_true, y_pred, sample_weight=sample_weight))


def _fpr(y_true, y_pred, sample_weight=None) -> float:
    if not np.any(np.asarray(y_true) == 0):
        return np.nan
    return float(false_positive_rate(y_true, y_pred, sample_weight=sample_weight))


def _precision(y_true, y_pred, sample_weight=None) -> float:
    return float(precision_score(y_true, y_pred, zero_division=np.nan, sample_weight=sample_weight))


def _roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    if len(np.unique(y_true)) != 2:
        return np.nan
    return float(roc_auc_score(y_true, y_score))


#: Figures of the flags (the list a caseworker gets), then the one of the scores.
RATE_METRICS = {"selection_rate": selection_rate, "tpr": _tpr, "fpr": _fpr, "precision": _precision}
METRICS = (*RATE_METRICS, "roc_auc")


def group_figures(labels: pd.Series, flagged: pd.Series, scores: pd.Series, groups: pd.Series) -> pd.DataFrame:
    """Figures per group, indexed by group: fairlearn MetricFrame's ``selection_rate``, ``tpr``,
    ``fpr`` and ``precision``, scikit-learn's ``roc_auc``; beside them the counts ``predictions``
    (rows), ``positives`` and ``flagged`` and the calibration pair ``mean_score`` and
    ``observed_rate``.

    Counts and means are plain group sums. MetricFrame costs about a microsecond per row per metric
    (it re-stacks every value): minutes for a million test rows. So it is given each distinct
    (group, label, flag) once, weighted by how often it occurs: at most four per group. Every rate
    is a weighted count, so it is exactly that of the rows themselves. The ROC AUC is not: with an
    uncalibrated model nearly every score is distinct, so it is computed on each group's rows.
    """
    codes, uniques = pd.factorize(groups.astype(str), sort=True)
    return _group_figures(labels.to_numpy(dtype="int8"), flagged.to_numpy(dtype="int8"), scores.to_numpy("float64"),
                          codes, np.asarray(uniques, dtype=object), _rows_of(codes))


def _group_figures(y: np.ndarray, flag: np.ndarray, score: np.ndarray, codes: np.ndarray,
                   names: np.ndarray, rows_of: dict[int, np.ndarray]) -> pd.DataFrame:
    """:func:`group_figures` of each row's group as a code into ``names`` (sorted, each present);
    ``rows_of`` is :func:`_rows_of` of ``codes``."""
    cells = pd.DataFrame({"group": codes, "y": y, "flag": flag})
    distinct = cells.value_counts(["group", "y", "flag"], sort=False).reset_index(name="weight")
    weight = distinct["weight"].to_numpy("float64")
    figures = MetricFrame(
        metrics=RATE_METRICS,
        y_true=distinct["y"].to_numpy(),
        y_pred=distinct["flag"].to_numpy(),
        sensitive_features=names[distinct["group"].to_numpy()],
        sample_params={name: {"sample_weight": weight} for name in RATE_METRICS},
    ).by_group
    figures["roc_auc"] = pd.Series({names[code]: _roc_auc(y[at], score[at]) for code, at in rows_of.items()})
    figures = figures[list(METRICS)]
    figures.index = figures.index.astype(str).rename("group")
    sums = pd.DataFrame({"predictions": 1, "positives": y.astype("int64"), "flagged": flag.astype("int64"),
                         "score": score}).groupby(codes).sum()
    sums.index = pd.Index(names[sums.index.to_numpy()].astype(str), name="group")
    sums["mean_score"] = sums.pop("score") / sums["predictions"]
    sums["observed_rate"] = sums["positives"] / sums["predictions"]
    return sums[["predictions", "positives", "flagged"]].join(figures).join(sums[["mean_score", "observed_rate"]])


def _rows_of(codes: np.ndarray) -> dict[int, np.ndarray]:
    """The rows of each code, in row order, by code (ascending)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return {int(codes[part[0]]): part for part in np.split(order, bounds) if len(part)}


def score_levels(labels: np.ndarray, scores: np.ndarray) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Rows x distinct score levels, one matrix for the positives and one for the negatives: what
    :func:`weighted_figures` needs for the ROC AUC. Built once per group, not once per replicate."""
    y = labels.astype(bool)
    levels, level_of_row = np.unique(scores, return_inverse=True)
    rows = np.arange(len(scores))
    ones = np.ones(len(scores))
    shape = (len(scores), len(levels))
    return (sparse.csr_matrix((ones * y, (rows, level_of_row)), shape=shape),
            sparse.csr_matrix((ones * ~y, (rows, level_of_row)), shape=shape))


def weighted_figures(
    weights: np.ndarray, labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray,
    levels: tuple[sparse.csr_matrix, sparse.csr_matrix] | None = None,
) -> dict[str, np.ndarray]:
    """The figures of :func:`group_figures` for each row of ``weights`` (replicates x rows).

    Row weights of one (a single replicate of ones) give the figures of the data itself; bootstrap
    resampling counts give a bootstrap replicate. Used for the bootstrap only. ``levels`` are
    :func:`score_levels` of the same rows (computed here when not given).
    """
    y = labels.astype(bool)
    f = flagged.astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = weights.sum(axis=1)
        tp, fp = weights @ (y & f), weights @ (~y & f)
        positives, negatives = weights @ y.astype(float), weights @ (~y).astype(float)
        figures = {
            "selection_rate": (tp + fp) / total,
            "tpr": np.where(positives > 0, tp / positives, np.nan),
            "fpr": np.where(negatives > 0, fp / negatives, np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "mean_score": (weights @ scores) / total,
            "observed_rate": positives / total,
        }
        # ROC AUC = P(score of a positive > score of a negative) + half the ties, by score level
        by_level_pos, by_level_neg = levels if levels is not None else score_levels(labels, scores)
        pos = np.asarray((by_level_pos.T @ weights.T).T)
        neg = np.asarray((by_level_neg.T @ weights.T).T)
        below = np.cumsum(neg, axis=1) - neg
        pairs = positives * negatives
        figures["roc_auc"] = np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / pairs, np.nan)
    return figures


def bootstrap_replicates(
    person_ids: pd.Series | np.ndarray, labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray,
    samples: int, rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``samples`` bootstrap replicates of each figure for one group, resampling its persons.

    Poisson bootstrap: each person's weight is drawn from Poisson(1) (as in a resample of the same
    size drawn with replacement, approximately), which vectorises where a multinomial draw over
    every person does not. The figures depend on a row only through its cell (label, flag, score),
    so persons whose rows fall in the same cells form one class (:func:`person_classes`); the
    summed weight of a class of n persons is Poisson(n), drawn once. That is the same distribution
    as a weight per person, at a draw per class: a few thousand instead of a million.
    """
    cells, cell_of_row = _cells(labels, flagged, scores)
    return _bootstrap_cells(pd.factorize(person_ids)[0], cells, cell_of_row, samples, rng)


def _bootstrap_cells(person_of_row: np.ndarray, cells: dict[str, np.ndarray], cell_of_row: np.ndarray, samples: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """:func:`bootstrap_replicates` of the group's rows as cells (:func:`_cells`) and dense person codes."""
    incidence, sizes = person_classes(person_of_row, cell_of_row)
    levels = score_levels(cells["label"], cells["score"])
    parts: list[dict[str, np.ndarray]] = []
    step = max(1, _MAX_WEIGHT_CELLS // max(len(sizes), 1))
    for start in range(0, samples, step):
        draws = min(step, samples - start)
        class_weights = rng.poisson(sizes, size=(draws, len(sizes))).astype(float)
        cell_weights = np.asarray((incidence.T @ class_weights.T).T)
        parts.append(weighted_figures(cell_weights, cells["label"], cells["flag"], cells["score"], levels))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _cells(labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The distinct (label, flag, score) cells, as arrays, and the cell of each row."""
    rows = pd.DataFrame({"label": labels, "flag": flagged, "score": scores})
    cell_of_row = rows.groupby(["label", "flag", "score"], sort=True).ngroup().to_numpy()
    first = np.unique(cell_of_row, return_index=True)[1]
    return {name: rows[name].to_numpy()[first] for name in rows.columns}, cell_of_row


def person_classes(person_of_row: np.ndarray, cell_of_row: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Persons grouped by the cells their rows fall in: ``(incidence, sizes)``.

    ``incidence`` is classes x cells, how many rows one person of the class has in each cell;
    ``sizes`` the number of persons in each class. ``incidence.T @ sizes`` is the rows per cell.
    """
    persons = int(person_of_row.max()) + 1 if len(person_of_row) else 0
    order = np.lexsort((cell_of_row, person_of_row))
    person, cell = person_of_row[order], cell_of_row[order]
    rows_per_person = np.bincount(person, minlength=persons)
    rank = np.arange(len(person)) - np.repeat(np.cumsum(rows_per_person) - rows_per_person, rows_per_person)
    signature = np.full((persons, int(rows_per_person.max(initial=0))), -1, dtype=np.int64)
    signature[person, rank] = cell
    classes, sizes = _distinct_rows(signature)
    held = classes >= 0
    incidence = sparse.csr_matrix(
        (np.ones(int(held.sum())), (np.nonzero(held)[0], classes[held])),
        shape=(len(classes), int(cell_of_row.max(initial=-1)) + 1),
    )
    return incidence, sizes


def _distinct_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(matrix, axis=0, return_counts=True)`` for a matrix of integers of at least -1.

    Where a row's values fit, each row is packed into one int64 that sorts as the row does: NumPy
    sorts rows as records, about 7 s of a million persons' fairness table, and int64 keys in a
    fraction of that.
    """
    width = matrix.shape[1]
    base = int(matrix.max(initial=-1)) + 2
    if width == 0 or base ** width >= 2 ** 63:
        return np.unique(matrix, axis=0, return_counts=True)
    keys = np.zeros(len(matrix), dtype=np.int64)
    for column in matrix.T:
        keys = keys * base + (column + 1)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return matrix[first], counts


# --- the fairness table ---------------------------------------------------------------------------

def fairness_table(predictions: pd.DataFrame, rule: FairnessRule, rng: np.random.Generator,
                   attributes: Sequence[str] | None = None) -> pd.DataFrame:
    """Unsuppressed fairness figures: one row per attribute x group (and an ``overall`` row).

    ``attributes`` limits the table to those attributes of :func:`audit_groups` (all when None).

    Columns: ``attribute``, ``group``, ``persons`` (distinct), ``predictions``, ``positives``,
    ``negatives``, ``flagged``, each of :data:`FIGURES` with ``_low``/``_high`` interval bounds,
    ``calibration_gap`` (mean score minus observed rate), ``reference_group``,
    ``selection_rate_ratio`` and ``tpr_ratio`` with bounds, ``status`` (``reference``,
    ``too_small``, ``pass``, ``uncertain``, ``fail``), ``passed`` (nullable bool), ``reason``.
    Only :func:`shown_fairness_table` of this may be written where a person can read it.
    """
    _require(predictions, ["person_id", "as_of", "label", "score"])
    if predictions.empty:
        raise AuditInputError("the prediction frame is empty: there is nothing to audit")
    if predictions["label"].isna().any() or not predictions["label"].isin([0, 1]).all():
        raise AuditInputError("label: every prediction must have a label of 0 or 1 (censored rows belong out)")
    if predictions["score"].isna().any():
        raise AuditInputError(f"score: {int(predictions['score'].isna().sum())} row(s) have no score")

    # every group as an integer code, every person too: grouping a million rows by text, once per
    # attribute, was most of the table's time
    groups = coded_groups(predictions)
    if attributes is not None:
        groups = {attribute: groups[attribute] for attribute in attributes}
    groups = {OVERALL: (np.zeros(len(predictions), dtype=np.int64), np.array(["all"], dtype=object)), **groups}
    person_codes = _sort_codes(predictions["person_id"])
    label_values = predictions["label"].to_numpy("int8")
    score_values = predictions["score"].to_numpy("float64")
    flag_values = _top_k(_sort_codes(predictions["as_of"]), score_values, person_codes, rule.top_k_percent)
    flag_values = flag_values.astype("int8")
    quantiles = [(1 - rule.confidence) / 2 * 100, (1 + rule.confidence) / 2 * 100]
    if rule.bootstrap_samples > 0:
        # the (label, flag, score) cells once for all rows; a group's cells are those its rows fall in
        all_cells, cell_of_row = _cells(label_values, flag_values, score_values)

    tables = []
    for attribute, (codes, names) in groups.items():
        rows_of = _rows_of(codes)  # each group's rows, by code: for its ROC AUC and its bootstrap
        figures = _group_figures(label_values, flag_values, score_values, codes, names, rows_of)
        figures["persons"] = pd.Series(pd.Series(person_codes).groupby(codes).nunique().to_numpy(),
                                       index=names.astype(str))
        figures["negatives"] = figures["predictions"] - figures["positives"]
        replicates = {}
        if rule.bootstrap_samples > 0:
            for code, rows in rows_of.items():  # code order is name order
                present, group_cell = np.unique(cell_of_row[rows], return_inverse=True)
                cells = {name: values[present] for name, values in all_cells.items()}
                replicates[str(names[code])] = _bootstrap_cells(
                    pd.factorize(person_codes[rows])[0], cells, group_cell, rule.bootstrap_samples, rng)
        for figure in FIGURES:
            low, high = _interval(replicates, figures.index, figure, quantiles)
            figures[f"{figure}_low"], figures[f"{figure}_high"] = low, high
        reference = _reference_group(attribute, figures, rule.reference_groups)
        figures["reference_group"] = reference
        for ratio, figure in (("selection_rate_ratio", "selection_rate"), ("tpr_ratio", "tpr")):
            with np.errstate(divide="ignore", invalid="ignore"):
                figures[ratio] = figures[figure] / figures.loc[reference, figure]
            low, high = _ratio_interval(replicates, figures.index, reference, figure, quantiles)
            figures[f"{ratio}_low"], figures[f"{ratio}_high"] = low, high
        figures = figures.reset_index()
        figures.insert(0, "attribute", attribute)
        tables.append(figures)

    table = pd.concat(tables, ignore_index=True)
    table["calibration_gap"] = table["mean_score"] - table["observed_rate"]
    table["minority_class"] = table[["positives", "negatives"]].min(axis=1)
    return _judge(table, rule)


def _reference_group(attribute: str, figures: pd.DataFrame, named: Mapping[str, str]) -> str:
    if attribute in named:
        if named[attribute] not in figures.index:
            raise AuditInputError(
                f"audit.reference_groups.{attribute}: group {named[attribute]!r} is not in the predictions "
                f"(groups: {sorted(figures.index)})"
            )
        return named[attribute]
    # the largest group; ties by name, so the choice does not depend on row order
    persons = figures["persons"].sort_index()
    return str(persons.idxmax())


def _interval(replicates, index, figure, quantiles) -> tuple[list[float], list[float]]:
    low, high = [], []
    for group in index:
        values = replicates.get(group, {}).get(figure)
        bounds = _percentiles(values, quantiles)
        low.append(bounds[0])
        high.append(bounds[1])
    return low, high


def _ratio_interval(replicates, index, reference, figure, quantiles) -> tuple[list[float], list[float]]:
    low, high = [], []
    for group in index:
        values = None
        if group in replicates and reference in replicates:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = replicates[group][figure] / replicates[reference][figure]
        bounds = _percentiles(values, quantiles)
        low.append(bounds[0])
        high.append(bounds[1])
    return low, high


def _percentiles(values: np.ndarray | None, quantiles: Sequence[float]) -> tuple[float, float]:
    if values is None:
        return np.nan, np.nan
    finite = values[np.isfinite(values)]
    # an interval from a handful of defined replicates would look more certain than it is
    if len(finite) < 0.9 * len(values):
        return np.nan, np.nan
    return tuple(float(q) for q in np.percentile(finite, quantiles))


def _judge(table: pd.DataFrame, rule: FairnessRule) -> pd.DataFrame:
    """Add ``status``, ``passed``, ``tpr_checked`` and ``reason`` to the raw table."""
    lower, upper = rule.ratio_bounds
    reference = table.loc[table["group"] == table["reference_group"]].set_index("attribute")
    status, reasons, tpr_checked = [], [], []
    for row in table.itertuples(index=False):
        if row.attribute == OVERALL or row.group == row.reference_group:
            status.append("reference")
            reasons.append("")
            tpr_checked.append(False)
            continue
        if row.persons < rule.min_cell:
            status.append("too_small")
            reasons.append("")
            tpr_checked.append(False)
            continue
        ref = reference.loc[row.attribute]
        checks = []
        if row.predictions * ref["selection_rate"] >= rule.min_expected_events:
            checks.append(("selection_rate_ratio", row.selection_rate_ratio, row.selection_rate_ratio_low,
                           row.selection_rate_ratio_high))
        checked_tpr = bool(row.positives >= rule.min_cell and ref["positives"] >= rule.min_cell
                           and row.positives * np.nan_to_num(ref["tpr"]) >= rule.min_expected_events)
        if checked_tpr:
            checks.append(("tpr_ratio", row.tpr_ratio, row.tpr_ratio_low, row.tpr_ratio_high))
        tpr_checked.append(checked_tpr)
        if not checks:
            status.append("not_judged")
            reasons.append(f"fewer than {rule.min_expected_events:g} expected events at the reference rate")
            continue
        verdicts = [_ratio_verdict(value, low, high, lower, upper, rule.bootstrap_samples > 0)
                    for _, value, low, high in checks]
        failing = [name for (name, *_), v in zip(checks, verdicts) if v == "fail"]
        doubtful = [name for (name, *_), v in zip(checks, verdicts) if v == "uncertain"]
        if failing:
            status.append("fail")
            reasons.append(", ".join(failing) + f" outside [{lower}, {upper}]")
        elif doubtful:
            status.append("uncertain")
            reasons.append(", ".join(doubtful) + f" outside [{lower}, {upper}] but its interval reaches inside")
        else:
            status.append("pass")
            reasons.append("")
    out = table.copy()
    out["status"] = status
    out["passed"] = pd.array(
        [None if s in ("reference", "too_small", "not_judged") else s != "fail" for s in status], dtype="boolean"
    )
    out["tpr_checked"] = tpr_checked
    out["reason"] = reasons
    return out


def _ratio_verdict(value, low, high, lower, upper, has_interval) -> str:
    if not np.isfinite(value):
        # a ratio against a reference with a rate of 0 cannot be judged; report it, do not pass it
        return "fail"
    if lower <= value <= upper:
        return "pass"
    if not has_interval or not (np.isfinite(low) and np.isfinite(high)):
        return "fail"
    return "fail" if high < lower or low > upper else "uncertain"


FAIRNESS_COLUMNS = [
    "attribute", "group", "persons", "predictions", "selection_rate", "selection_rate_low", "selection_rate_high",
    "tpr", "tpr_low", "tpr_high", "fpr", "fpr_low", "fpr_high", "precision", "precision_low", "precision_high",
    "roc_auc", "roc_auc_low", "roc_auc_high", "mean_score", "observed_rate", "observed_rate_low",
    "observed_rate_high", "calibration_gap", "reference_group", "selection_rate_ratio", "selection_rate_ratio_low",
    "selection_rate_ratio_high", "tpr_ratio", "tpr_ratio_low", "tpr_ratio_high", "tpr_checked", "status",
    "passed", "note",
]


def shown_fairness_table(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The fairness table as it may be shown: :data:`FAIRNESS_COLUMNS`, small cells suppressed.

    A group under ``min_cell`` persons, and any group whose count would reveal it through the
    attribute's total, loses every figure; its ``note`` says ``too small`` (or ``suppressed`` for the
    secondary case). A figure whose own denominator (positives for TPR, negatives for FPR, flagged for
    precision, the smaller class for ROC AUC) is under ``min_cell`` is suppressed on its own.
    Raw counts of positives, negatives and flagged persons are not shown at all.
    """
    out = table.copy()
    for figure, denominator in DENOMINATORS.items():
        columns = [c for c in (figure, f"{figure}_low", f"{figure}_high") if c in out.columns]
        if figure == "tpr":
            columns += ["tpr_ratio", "tpr_ratio_low", "tpr_ratio_high"]
        if figure == "mean_score":
            columns += ["calibration_gap"]
        part = suppress_small_cells(out[[denominator, *columns]], denominator, min_cell, columns, total_groups=None)
        for column in columns:
            out[column] = part[column]
    figures = [c for c in FAIRNESS_COLUMNS if c not in ("attribute", "group", "persons", "reference_group",
                                                       "tpr_checked", "status", "passed", "note")]
    suppressed = suppress_small_cells(out, "persons", min_cell, figures, total_groups=["attribute"])
    primary = table["persons"] < min_cell
    suppressed["note"] = np.where(primary, "too small", np.where(suppressed["suppressed"], "suppressed", ""))
    return suppressed[FAIRNESS_COLUMNS].reset_index(drop=True)


def fairness_summary(table: pd.DataFrame, rule: FairnessRule) -> tuple[list[str], dict]:
    """Failure reasons and the ``checks.fairness`` record of ``audit.json`` from the raw table.

    Figures are quoted only for groups whose figures the shown table shows.
    A base attribute where no group besides the reference could be judged is a failure: an audit
    that checked nothing must not pass.
    """
    shown = shown_fairness_table(table, rule.min_cell).set_index(["attribute", "group"])["note"]
    reasons = []
    for row in table.loc[table["status"] == "fail"].itertuples(index=False):
        if shown[(row.attribute, row.group)] == "":
            figures = f"selection-rate ratio {row.selection_rate_ratio:.2f} " \
                      f"[{row.selection_rate_ratio_low:.2f}, {row.selection_rate_ratio_high:.2f}]"
            if row.tpr_checked:
                figures += f", TPR ratio {row.tpr_ratio:.2f} [{row.tpr_ratio_low:.2f}, {row.tpr_ratio_high:.2f}]"
        else:
            figures = "figures suppressed to protect a small group"
        reasons.append(
            f"fairness: {row.attribute} = {row.group} vs {row.reference_group}: {row.reason} ({figures})"
        )
    unchecked = []
    for attribute in AUDIT_COLUMNS:
        rows = table.loc[table["attribute"] == attribute]
        if not rows["status"].isin(["pass", "uncertain", "fail"]).any():
            unchecked.append(attribute)
            reasons.append(f"fairness: no {attribute} group besides the reference could be judged (fewer than "
                           f"{rule.min_cell} persons or {rule.min_expected_events:g} expected events), so {attribute} "
                           "was not checked")
    judged = table.loc[table["status"] != "reference"]
    checks = {
        "ran": True,
        "operating_point": f"top {rule.top_k_percent:g} % of scores per as-of date",
        "ratio_bounds": list(rule.ratio_bounds),
        "rule": ("selection-rate and TPR ratios against the reference group for every group of at least "
                 f"{rule.min_cell} persons, each judged where the group would have at least "
                 f"{rule.min_expected_events:g} events (flagged persons, flagged positives) at the reference "
                 f"rate and, for the TPR, both groups have {rule.min_cell} positives; "
                 "a group fails only when the whole "
                 f"{rule.confidence:.0%} bootstrap interval of a ratio is outside the bounds"
                 if rule.bootstrap_samples > 0 else "the point estimate decides (no bootstrap)"),
        "bootstrap_samples": rule.bootstrap_samples,
        "groups": int(len(judged)),
        "by_status": {k: int(v) for k, v in judged["status"].value_counts().sort_index().items()},
        "uncertain": [f"{r.attribute} = {r.group}" for r in table.itertuples(index=False)
                      if r.status == "uncertain" and shown[(r.attribute, r.group)] == ""],
        "unchecked_attributes": unchecked,
        "passed": not reasons,
    }
    return reasons, checks


# --- other checks and the verdict -------------------------------------------------------------------

def train_test_gap(train_auc: float, test_auc: float, max_gap: float) -> dict:
    """The overfitting check: ``{train_auc, test_auc, gap, max_gap, passed}``; gap = train - test."""
    gap = float(train_auc) - float(test_auc)
    return {"train_auc": float(train_auc), "test_auc": float(test_auc), "gap": gap,
            "max_gap": float(max_gap), "passed": bool(gap <= max_gap)}


def training_period_auc(model, rows: pd.DataFrame, roles: ColumnRoles, train_as_of: Sequence[dt.date],
                        max_rows: int | None = None, random_state: int = 0) -> float:
    """ROC AUC of the trained ``model`` on the training period's rows (the data it learnt from).

    ``rows`` comes from :func:`lyskegle.models.labelled_rows` (``as_of``, ``label`` and the model
    inputs of ``roles``). Compared with the test ROC AUC, it shows how much the model memorised.
    With ``max_rows``, a random sample of that many training rows is scored (training fits on such
    a sample too; at 200,000 rows the AUC's standard error is about 0.001).
    """
    inside = _training_positions(rows, train_as_of, max_rows, random_state)
    if not len(inside):
        raise AuditInputError(f"no labelled rows on the training as-of dates {list(train_as_of)}")
    scores = predict_scores(model, rows, roles, inside)
    return float(roc_auc_score(rows["label"].to_numpy("int64")[inside], scores))


def origin_comparison(
    rows: pd.DataFrame, families: Mapping[str, str], chosen: Candidate, train_as_of: Sequence[dt.date],
    test_as_of: Sequence[dt.date], random_state: int, stairwell_encoder, rule: FairnessRule,
    max_fit_rows: int | None = None, side_by_side: bool = False,
) -> dict:
    """What including origin and citizenship as model inputs would change.

    The chosen model configuration is fitted twice on the training period, without and with the
    ``origin`` feature family (both uncalibrated and on the same training rows, so the two differ
    only in the inputs: all of them, or a random ``max_fit_rows`` as in training), and scored on
    the test period. Returns ``ran``, the test ``roc_auc`` and
    ``average_precision`` of both fits and their differences, and per origin group the shown
    (small-cell suppressed) selection rate, TPR and their ratios against the reference group.
    ``side_by_side``: the two fits run on two threads, holding two fits' inputs and test scores at
    once; the result is the same.
    """
    origin_columns = [c for c, family in families.items() if family == "origin"]
    if not origin_columns:
        return {"ran": False, "reason": "the features have no origin family to include"}
    train_rows = rows.iloc[_training_positions(rows, train_as_of, max_fit_rows, random_state)]
    # positions, not a copy: the test period's rows are millions at national scale
    test_at = np.flatnonzero(on_dates(rows["as_of"], test_as_of))
    test_columns = rows[["person_id", "as_of", "label", *AUDIT_COLUMNS.values()]].iloc[test_at]
    labels = train_rows["label"].to_numpy("int64")
    y = test_columns["label"].to_numpy("int64")

    def fit_and_score(include: bool) -> dict:
        roles = column_roles(rows, model_feature_columns(families, include), "stairwell_id" in families)
        pipeline = build_pipeline(chosen, roles, random_state, stairwell_encoder)
        pipeline.fit(model_inputs(train_rows, roles), labels)
        scores = predict_scores(pipeline, rows, roles, test_at)
        predictions = test_columns.assign(score=scores)
        # the origin groups only: the other attributes' figures (most of the cost) are not reported
        table = fairness_table(predictions, rule, np.random.default_rng(random_state), attributes=["origin_group"])
        shown = shown_fairness_table(table, rule.min_cell)
        origin = shown.loc[shown["attribute"] == "origin_group"].set_index("group")
        return {
            "inputs": len(roles.columns),
            "roc_auc": float(roc_auc_score(y, scores)),
            "average_precision": float(average_precision_score(y, scores)),
            "origin_groups": {
                group: {k: (None if pd.isna(origin.loc[group, k]) else float(origin.loc[group, k]))
                        for k in ("selection_rate", "tpr", "selection_rate_ratio", "tpr_ratio")}
                | {"status": str(origin.loc[group, "status"])}
                for group in origin.index
            },
        }

    # The two fits are independent: side by side, one's input preparation (pandas, one core) runs
    # while the other's boosting or prediction (OpenMP) runs; each gives the same result either way.
    with ThreadPoolExecutor(max_workers=2 if side_by_side else 1, thread_name_prefix="lyskegle-origin") as pool:
        without, with_ = pool.map(fit_and_score, (False, True))
    fits = {"without_origin": without, "with_origin": with_}
    return {
        "ran": True, "model": chosen.name, "origin_columns": origin_columns,
        "fit": f"both fits uncalibrated on the same {len(train_rows)} training rows; the shipped model is calibrated",
        **fits,
        "difference": {
            "roc_auc": with_["roc_auc"] - without["roc_auc"],
            "average_precision": with_["average_precision"] - without["average_precision"],
        },
    }


def _training_positions(rows: pd.DataFrame, train_as_of: Sequence[dt.date], max_rows: int | None,
                        random_state: int) -> np.ndarray:
    """Positions of the rows on the training as-of dates: all, or a random ``max_rows`` of them."""
    inside = np.flatnonzero(on_dates(rows["as_of"], train_as_of))
    return inside if max_rows is None else sample_positions(inside, max_rows, np.random.default_rng(random_state))


def verdict(reasons_by_check: Mapping[str, Sequence[str]], checks: Mapping[str, dict],
            warnings: Sequence[str] = ()) -> dict:
    """``audit.json``: ``{passed, reasons, warnings, checks}``; passes only when no check gave a reason."""
    reasons = [reason for name in reasons_by_check for reason in reasons_by_check[name]]
    return {"passed": not reasons, "reasons": reasons, "warnings": list(warnings), "checks": dict(checks)}


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AuditInputError(f"the predictions lack column(s) {missing}; they have {list(frame.columns)}")
