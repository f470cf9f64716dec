"""Fitted encoders: learnt from the training period's labels, applied forward.

:class:`StairwellRateEncoder` replaces a residence id (``stairwell_id`` by default; ``building_id``
or ``area`` work the same way) by the empirical-Bayes shrunk label rate of that place in the
training rows: ``(sum_y + m * prior) / (n + m)``, where ``prior`` is the training mean and ``m`` the
prior weight (``features.encoder_prior_weight``). A place with fewer than ``min_count`` training
persons, or not seen in training, gets the prior. It follows the scikit-learn transformer contract
so the training engineer can put it in a ``Pipeline`` / ``ColumnTransformer``; :func:`shrunk_group_rates`
is its pure-function twin.

Target leakage: ``fit_transform`` (what a ``Pipeline`` calls on training rows) returns
leave-one-out rates, each training row's own label (and, given ``person_column``, every row of the
same person) taken out of its place's sums; ``transform`` on later rows uses the full training sums.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


def _binary_labels(y) -> np.ndarray:
    labels = np.asarray(pd.Series(y).astype("float64"))
    if np.isnan(labels).any():
        raise ValueError("StairwellRateEncoder: labels contain missing values (drop censored rows before fitting)")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("StairwellRateEncoder: labels must be 0/1")
    return labels


def _place_keys(values: pd.Series) -> pd.Series:
    return values.astype("string").reset_index(drop=True)


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code of each value (-1: missing) and the distinct values: counting by codes is
    many times faster than grouping millions of id strings. One column has one dtype, so two
    values share a code exactly when they share a :func:`_place_keys` string."""
    codes, uniques = pd.factorize(values.reset_index(drop=True), use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), pd.Index(uniques)


def shrunk_group_rates(
    places: pd.Series, y, prior_weight: float, min_count: int, prior: float | None = None
) -> pd.DataFrame:
    """Shrunk label rate per place: ``(sum_y + m * prior) / (n + m)``, the prior below ``min_count``.

    Returns a frame indexed by place with ``n`` (rows), ``positives`` and ``rate``. Rows with a
    missing place are left out. ``prior`` defaults to the mean of ``y``.
    """
    labels = _binary_labels(y)
    prior = float(labels.mean()) if prior is None else float(prior)
    codes, uniques = _codes(places)
    known = codes >= 0
    n = np.bincount(codes[known], minlength=len(uniques))
    positives = np.bincount(codes[known], weights=labels[known], minlength=len(uniques))
    table = pd.DataFrame({"n": n, "positives": positives},
                         index=pd.Index(_place_keys(pd.Series(uniques)), name="place")).sort_index()
    rate = (table["positives"] + prior_weight * prior) / (table["n"] + prior_weight)
    table["rate"] = rate.where(table["n"] >= min_count, prior)
    return table


class StairwellRateEncoder(TransformerMixin, BaseEstimator):
    """Shrunk training-period label rate of each row's stairwell (or building / area).

    Parameters: ``columns`` (the id columns to encode; one output column ``<column>_rate`` each),
    ``prior_weight`` (pseudo-count m), ``min_count`` (fewer training rows: the prior),
    ``person_column`` (optional: leave out all training rows of the same person, not only the row).
    ``X`` is a DataFrame holding ``columns`` (and ``person_column``). Learnt: ``prior_``,
    ``rates_`` (column -> shrunk rate per place with at least ``min_count`` training persons; no counts
are kept, so the fitted encoder holds no small cells), ``feature_names_in_``.
    """

    def __init__(
        self,
        columns: Sequence[str] = ("stairwell_id",),
        prior_weight: float = 20.0,
        min_count: int = 5,
        person_column: str | None = None,
    ):
        self.columns = columns
        self.prior_weight = prior_weight
        self.min_count = min_count
        self.person_column = person_column

    def _check_frame(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("StairwellRateEncoder needs a DataFrame with the id columns by name")
        missing = [c for c in (*self.columns, *([self.person_column] if self.person_column else [])) if c not in X.columns]
        if missing:
            raise KeyError(f"StairwellRateEncoder: columns {missing} are not in X")
        return X

    def fit(self, X, y):
        X = self._check_frame(X)
        if self.prior_weight < 0 or self.min_count < 0:
            raise ValueError("StairwellRateEncoder: prior_weight and min_count must not be negative")
        labels = _binary_labels(y)
        self.prior_ = float(labels.mean())
        # Keep only the shrunk rates of places with at least min_count training persons: the fitted
        # model is pickled into models/ and MLflow, where per-place counts would be small cells.
        self.rates_ = {}
        for column in self.columns:
            table = shrunk_group_rates(X[column], labels, self.prior_weight, self.min_count, self.prior_)
            self.rates_[column] = table.loc[table["n"] >= self.min_count, "rate"]
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "rates_")
        X = self._check_frame(X)
        out = np.empty((len(X), len(self.columns)))
        for j, column in enumerate(self.columns):
            rate = self.rates_[column]
            # each distinct place looked up once, not each of millions of rows
            codes, places = _codes(X[column])
            found = rate.index.get_indexer(_place_keys(pd.Series(places)))  # -1: no rate learnt
            with_prior = np.append(rate.to_numpy("float64"), self.prior_)  # position -1: the prior
            out[:, j] = np.append(with_prior[found], self.prior_)[codes]  # code -1 (no place): the prior
        return out

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """Fit, then encode the training rows leave-one-out (see :func:`leave_one_out_rates`)."""
        if y is None:
            raise ValueError("StairwellRateEncoder needs labels y to fit")
        self.fit(X, y)
        labels = _binary_labels(y)
        persons = X[self.person_column] if self.person_column else None
        return np.column_stack([
            leave_one_out_rates(X[column], labels, self.prior_weight, self.min_count, self.prior_, persons)
            for column in self.columns
        ])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"{column}_rate" for column in self.columns], dtype=object)


def leave_one_out_rates(
    places: pd.Series, y, prior_weight: float, min_count: int, prior: float, persons: pd.Series | None = None
) -> np.ndarray:
    """Each training row's shrunk place rate without its own label (or its person's labels).

    ``(sum_y - own_y + m * prior) / (n - own_n + m)``, the prior when ``n - own_n < min_count`` or
    the place is missing. ``own`` is the row itself, or every row of the same person in the place
    when ``persons`` is given (a person seen at several as-of dates must not describe themself).
    """
    labels = _binary_labels(y)
    place, places_seen = _codes(places)
    known = place >= 0  # a row without a place gets the prior
    at = np.where(known, place, 0)
    slots = max(len(places_seen), 1)
    n_rest = np.bincount(place[known], minlength=slots)[at].astype("float64")
    sum_rest = np.bincount(place[known], weights=labels[known], minlength=slots)[at].astype("float64")
    if persons is None:  # own = the row itself
        n_rest -= 1
        sum_rest -= labels
    else:  # own = every row of the same person in the same place; a row without a person gets the prior
        owner, owners_seen = _codes(persons)
        known &= owner >= 0
        _, pair = np.unique(at * (len(owners_seen) + 1) + np.where(owner >= 0, owner, 0), return_inverse=True)
        pair = np.where(known, pair, -1)
        in_pair = pair >= 0
        pairs = max(int(pair.max()) + 1, 1)
        n_rest -= np.bincount(pair[in_pair], minlength=pairs)[np.where(in_pair, pair, 0)]
        sum_rest -= np.bincount(pair[in_pair], weights=labels[in_pair], minlength=pairs)[np.where(in_pair, pair, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 only where the prior is taken
        rate = (sum_rest + prior_weight * prior) / (n_rest + prior_weight)
    return np.where(known & (n_rest >= min_count), rate, prior).astype("float64")
