"""Temporal evaluation: which as-of dates train and which test, and how well a score ranks and predicts.

The design follows how a model is used: at an as-of date a caseworker ranks the people in a cohort
by a score learnt from earlier as-of dates whose labels were already known. So

* the last ``test_as_of_count`` as-of dates are the **test period**;
* a training as-of date must lie at least ``gap_weeks`` before the first test as-of date, and
  ``gap_weeks`` must be at least the target's label horizon, so no training label was still in the
  future at the first test date;
* model selection uses **expanding-window folds** inside the training period: each fold validates
  on one training as-of date and fits on every earlier date at least ``gap_weeks`` before it.

Metrics are computed for the model and for a simple rule (weeks on public support in the last
year) on the same rows, so the value over the rule is visible. Curves are thinned so that every
step between two points covers at least ``min_cell`` persons: a curve point is a count, too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from lyskegle.privacy import suppress_small_cells

# How far ahead each target's label looks from its as-of date. exit_26w's horizon is a labels
# parameter; self_sufficient counts self-sufficient weeks among the next 52 by definition.
SELF_SUFFICIENT_HORIZON_WEEKS = 52

# Metrics where a lower value is better; the selection rule flips its direction for them.
LOWER_IS_BETTER = frozenset({"brier", "log_loss"})


def label_horizon_weeks(target: str, exit_horizon_weeks: int) -> int:
    """Weeks after the as-of date that the label of ``target`` depends on."""
    if target == "exit_26w":
        return exit_horizon_weeks
    if target == "self_sufficient":
        return SELF_SUFFICIENT_HORIZON_WEEKS
    raise ValueError(f"unknown target '{target}' (expected exit_26w or self_sufficient)")


@dataclass(frozen=True)
class TemporalSplit:
    """As-of dates of the training period and of the test period, each in increasing order."""

    train_as_of: tuple[dt.date, ...]
    test_as_of: tuple[dt.date, ...]


@dataclass(frozen=True)
class Fold:
    """One expanding-window selection fold: fit on ``fit_as_of``, validate on ``validate_as_of``."""

    fit_as_of: tuple[dt.date, ...]
    validate_as_of: dt.date


def _weeks_between(earlier: dt.date, later: dt.date) -> int:
    return (later - earlier).days // 7


def temporal_split(
    as_of_dates: Sequence[dt.date], test_as_of_count: int, gap_weeks: int, horizon_weeks: int
) -> TemporalSplit:
    """Split the as-of dates into a training and a test period.

    The last ``test_as_of_count`` dates are the test period; training dates are those at least
    ``gap_weeks`` before the first test date. Raises ValueError when the gap is shorter than the
    label horizon (a training label would not be known at test time) or when no date is left to
    train on, naming the params keys to change.
    """
    if gap_weeks < horizon_weeks:
        raise ValueError(
            f"train.gap_weeks={gap_weeks} is shorter than the label horizon of {horizon_weeks} weeks: "
            "training labels would not be known at the first test as-of date"
        )
    dates = sorted(set(as_of_dates))
    if len(dates) <= test_as_of_count:
        raise ValueError(
            f"train.test_as_of_count={test_as_of_count} leaves no training as-of date "
            f"(the data has {len(dates)}: {', '.join(map(str, dates))})"
        )
    test = dates[-test_as_of_count:]
    train = [d for d in dates[:-test_as_of_count] if _weeks_between(d, test[0]) >= gap_weeks]
    if not train:
        raise ValueError(
            f"no training as-of date lies train.gap_weeks={gap_weeks} weeks before the first test "
            f"as-of date {test[0]}; lower train.test_as_of_count or add earlier as-of dates"
        )
    return TemporalSplit(tuple(train), tuple(test))


def selection_folds(train_as_of: Sequence[dt.date], gap_weeks: int, n_folds: int) -> list[Fold]:
    """Expanding-window folds over the training period, latest last.

    Each of the last ``n_folds`` training dates that has at least one date ``gap_weeks`` before it
    is validated once, fitting on every such earlier date. Raises ValueError when no fold fits.
    """
    dates = sorted(set(train_as_of))
    folds = []
    for validate in dates:
        fit = tuple(d for d in dates if _weeks_between(d, validate) >= gap_weeks)
        if fit:
            folds.append(Fold(fit, validate))
    if not folds:
        raise ValueError(
            f"the training period ({', '.join(map(str, dates))}) has no two as-of dates "
            f"train.gap_weeks={gap_weeks} weeks apart, so no model can be selected on it"
        )
    return folds[-n_folds:]


def flagged_count(persons: int, percent: float) -> int:
    """How many of ``persons`` the top ``percent`` % flags: ``ceil``, and at least one."""
    return max(1, int(np.ceil(percent / 100 * persons)))


def precision_recall_at_top(y: np.ndarray, score: np.ndarray, percent: float) -> tuple[float, float]:
    """Precision and recall when the ``percent`` % highest scores are flagged.

    At least one person is flagged; ties at the cut are broken by row order (a stable sort), so
    the number flagged is exactly ``ceil(percent / 100 * n)``.
    """
    y = np.asarray(y, dtype="int64")
    n_flagged = flagged_count(len(y), percent)
    order = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")
    hits = int(y[order[:n_flagged]].sum())
    positives = int(y.sum())
    return hits / n_flagged, (hits / positives if positives else float("nan"))


def metric_key(name: str, percent: float) -> str:
    """``precision_at_10pct`` for ``("precision", 10.0)``."""
    return f"{name}_at_{percent:g}pct"


def score_metrics(y: np.ndarray, score: np.ndarray, top_k_percent: Sequence[float], probability: bool = True) -> dict:
    """Ranking and (for probabilities) calibration metrics of ``score`` against labels ``y``.

    Returns ``roc_auc``, ``average_precision``, ``precision_at_<k>pct`` and ``recall_at_<k>pct``
    for every k, and, when ``probability``, ``brier`` and ``log_loss``. Ranking metrics are NaN
    when ``y`` holds only one class.
    """
    y = np.asarray(y, dtype="int64")
    score = np.asarray(score, dtype="float64")
    both_classes = 0 < y.sum() < len(y)
    out = {
        "roc_auc": float(roc_auc_score(y, score)) if both_classes else float("nan"),
        "average_precision": float(average_precision_score(y, score)) if both_classes else float("nan"),
    }
    if probability:
        clipped = np.clip(score, 1e-6, 1 - 1e-6)
        out["brier"] = float(brier_score_loss(y, score))
        out["log_loss"] = float(log_loss(y, clipped, labels=[0, 1]))
    for percent in top_k_percent:
        precision, recall = precision_recall_at_top(y, score, percent)
        out[metric_key("precision", percent)] = precision
        out[metric_key("recall", percent)] = recall
    return out


def baseline_sign(y: np.ndarray, support_weeks: np.ndarray) -> int:
    """+1 or -1: the direction in which weeks on support ranks ``y`` best on the given (training) rows.

    More weeks on support in the last year usually means a *lower* chance of leaving support and
    of being self-sufficient, but the rule is oriented on the training rows rather than assumed,
    so the baseline is never handicapped by a wrong sign.
    """
    y = np.asarray(y, dtype="int64")
    if not 0 < y.sum() < len(y):
        return -1
    weeks = np.nan_to_num(np.asarray(support_weeks, dtype="float64"), nan=0.0)
    return 1 if roc_auc_score(y, weeks) >= 0.5 else -1


def baseline_score(support_weeks: np.ndarray, sign: int) -> np.ndarray:
    """The rule's score: ``sign`` x weeks on support in the last year (missing read as 0)."""
    return sign * np.nan_to_num(np.asarray(support_weeks, dtype="float64"), nan=0.0)


def _cut_positions(score: np.ndarray, n_points: int, min_cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Order by descending score and pick cut positions (persons flagged) for curve points.

    Cuts fall only between distinct scores (a threshold cannot split a tie) and at least
    ``min_cell`` persons apart, and the last cut before "everyone" leaves at least ``min_cell``
    persons unflagged, so no step of the curve describes fewer than ``min_cell`` persons.
    """
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    n = len(ordered)
    tie_ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True]) + 1  # persons flagged at each distinct threshold
    step = max(min_cell, int(np.ceil(n / n_points)))
    wanted = tie_ends[np.minimum(np.searchsorted(tie_ends, np.arange(step, n + 1, step)), len(tie_ends) - 1)]
    kept: list[int] = []
    for cut in np.unique(np.r_[wanted, n]):
        if cut - (kept[-1] if kept else 0) >= min_cell:
            kept.append(int(cut))
    if kept and kept[-1] != n:
        kept.append(n)
    if len(kept) >= 2 and kept[-1] - kept[-2] < min_cell:
        kept.pop(-2)
    return order, np.asarray(kept, dtype="int64")


def curve_points(y: np.ndarray, score: np.ndarray, n_points: int, min_cell: int) -> pd.DataFrame:
    """ROC and precision-recall points at thresholds of ``score``, thinned for privacy.

    Returns one row per threshold (most persons flagged last) with ``flagged`` (persons above
    the threshold), ``fpr``, ``tpr``, ``recall`` and ``precision``; a first row (0, 0) for the ROC
    curve is included. Steps between rows cover at least ``min_cell`` persons.
    """
    y = np.asarray(y, dtype="int64")
    score = np.asarray(score, dtype="float64")
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        raise ValueError("curve_points needs both positive and negative labels")
    order, cuts = _cut_positions(score, n_points, min_cell)
    hits = np.cumsum(y[order])[cuts - 1]
    points = pd.DataFrame({
        "flagged": cuts,
        "fpr": (cuts - hits) / negatives,
        "tpr": hits / positives,
        "recall": hits / positives,
        "precision": hits / cuts,
    })
    start = pd.DataFrame({"flagged": [0], "fpr": [0.0], "tpr": [0.0], "recall": [0.0], "precision": [np.nan]})
    return pd.concat([start, points], ignore_index=True)


def calibration_table(y: np.ndarray, probability: np.ndarray, n_bins: int, min_cell: int) -> pd.DataFrame:
    """Calibration curve over quantile bins of the predicted probability.

    Returns ``bin``, ``persons``, ``mean_predicted`` and ``observed_rate`` for every bin with at
    least ``min_cell`` persons (after :func:`lyskegle.privacy.suppress_small_cells`, bins that
    could be recovered from the total are dropped too).
    """
    frame = pd.DataFrame({"y": np.asarray(y, dtype="float64"), "p": np.asarray(probability, dtype="float64")})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(n_bins, len(frame)), labels=False)
    table = (
        frame.groupby("bin")
        .agg(persons=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
        .reset_index()
    )
    shown = suppress_small_cells(table, "persons", min_cell, ["mean_predicted", "observed_rate"], total_groups=())
    shown = shown.loc[~shown["suppressed"]].drop(columns="suppressed")
    return shown.astype({"persons": "int64", "mean_predicted": "float64", "observed_rate": "float64"}).reset_index(drop=True)


def precision_at_k_table(
    y: np.ndarray, model_score: np.ndarray, rule_score: np.ndarray, top_k_percent: Sequence[float]
) -> pd.DataFrame:
    """Long table ``k_percent``, ``scorer`` (``model``/``baseline``), ``precision``, ``recall``."""
    rows = []
    for percent in top_k_percent:
        for scorer, score in (("model", model_score), ("baseline", rule_score)):
            precision, recall = precision_recall_at_top(y, score, percent)
            rows.append({"k_percent": float(percent), "scorer": scorer, "precision": precision, "recall": recall})
    return pd.DataFrame(rows)


def plot_figures(curves: pd.DataFrame, baseline_curves: pd.DataFrame, calibration: pd.DataFrame,
                 precision_at_k: pd.DataFrame, title: str) -> dict:
    """Matplotlib figures (Agg) of the four evaluation plots, keyed ``roc``, ``precision_recall``,
    ``calibration``, ``precision_at_k``. Only the aggregate tables above go in."""
    # Figure objects draw on their own Agg canvas: no pyplot, no global backend state.
    from matplotlib.figure import Figure

    figures = {}
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(curves["fpr"], curves["tpr"], label="model")
    ax.plot(baseline_curves["fpr"], baseline_curves["tpr"], label="baseline (weeks on support)", linestyle="--")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    ax.legend(loc="lower right")
    figures["roc"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(curves["recall"][1:], curves["precision"][1:], label="model")
    ax.plot(baseline_curves["recall"][1:], baseline_curves["precision"][1:], label="baseline", linestyle="--")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall: {title}", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    figures["precision_recall"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(calibration["mean_predicted"], calibration["observed_rate"], marker="o", label="model")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5, label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=f"Calibration: {title}")
    ax.legend(loc="upper left")
    figures["calibration"] = fig

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    wide = precision_at_k.pivot(index="k_percent", columns="scorer", values="precision")
    positions = np.arange(len(wide))
    for offset, scorer in ((-0.2, "model"), (0.2, "baseline")):
        ax.bar(positions + offset, wide[scorer], width=0.4, label=scorer)
    ax.set_xticks(positions, [f"top {k:g} %" for k in wide.index])
    ax.set(ylabel="precision", title=f"Precision at top k: {title}")
    ax.legend()
    figures["precision_at_k"] = fig
    return figures


def importance_figure(importance: pd.DataFrame, title: str):
    """Horizontal bar chart of the 20 largest permutation importances (``feature``,
    ``importance_mean``, ``importance_std``)."""
    from matplotlib.figure import Figure

    top = importance.head(20).iloc[::-1]
    figure = Figure(figsize=(6, max(2.5, 0.3 * len(top) + 1)))
    ax = figure.subplots()
    ax.barh(top["feature"], top["importance_mean"], xerr=top["importance_std"])
    ax.set(xlabel="drop in average precision when permuted", title=f"Permutation importance: {title}")
    return figure
