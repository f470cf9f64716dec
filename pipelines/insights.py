"""Stage `insights`: feature families, stairwell effects and subgroups for one target.

Reads the features and their family tags, the cohorts, the ingested tables that describe residents
(population, dwellings, education, benefits) and the trained model with its ``model_info.json``.
Writes to ``--reports`` (``reports/<target>``): ``feature_families.csv``, ``stairwells.csv`` and
``subgroups.csv``, every row covering at least ``privacy.min_cell`` persons.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from lyskegle import io
from lyskegle.concurrency import map_in_order
from lyskegle.config import load_section
from lyskegle.insights import (
    ATTRIBUTE_SOURCES,
    ExpectedModelSettings,
    attributes_known_at,
    concat_attributes,
    discover_subgroups,
    expected_without_stairwell,
    family_importance,
    stairwell_effects,
    with_named_citizenship,
)
from lyskegle.ids import on_dates
from lyskegle.models import ColumnRoles, labelled_rows, model_inputs, sampled_cohort
from lyskegle.privacy import suppress_small_cells

log = logging.getLogger("lyskegle.pipelines.insights")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--target", required=True, choices=["exit_26w", "self_sufficient"])
    parser.add_argument("--features", required=True, type=Path, help="features.parquet")
    parser.add_argument("--families", required=True, type=Path, help="feature_families.json")
    parser.add_argument("--cohorts", required=True, type=Path, help="cohorts.parquet of the labels stage")
    parser.add_argument("--ingested", required=True, type=Path, help="folder of the ingest stage's tables")
    parser.add_argument("--model-dir", required=True, type=Path, help="models/<target> (model.joblib, model_info.json)")
    parser.add_argument("--reports", required=True, type=Path, help="reports/<target>")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_section(args.params, "insights")
    min_cell = load_section(args.params, "privacy").min_cell
    families = io.read_json(args.families)
    info = io.read_json(args.model_dir / "model_info.json")
    model = io.read_model(args.model_dir / "model.joblib")
    for key in ("train_as_of", "test_as_of", "inputs"):
        if key not in info:
            raise KeyError(f"{args.model_dir / 'model_info.json'}: '{key}' is missing")

    cohorts = io.read_parquet(args.cohorts, columns=["target", "as_of", "person_id", "label", "censored"])
    # every labelled row's keys and label, for the subgroups; features only for the test rows and
    # the random sample of training rows the expected-rate model fits on (all of them in a small
    # extract): a copy of every training row would be gigabytes at national scale
    keys = io.read_parquet(args.features, columns=["as_of", "person_id"])
    keys["file_row"] = np.arange(len(keys))
    labelled, _ = labelled_rows(keys, cohorts, args.target)
    train_as_of = [dt.date.fromisoformat(str(d)) for d in info["train_as_of"]]
    test_as_of = [dt.date.fromisoformat(str(d)) for d in info["test_as_of"]]
    sampled = sampled_cohort(cohorts, args.target, train_as_of, params.expected_model.max_fit_rows, params.random_state)
    picked, _ = labelled_rows(keys, sampled, args.target)
    del cohorts, sampled, keys
    roles = ColumnRoles(
        numeric=tuple(info["inputs"]["numeric"]),
        categorical=tuple(info["inputs"].get("categorical", [])),
        stairwell=info["inputs"].get("stairwell"),
    )
    # The subgroups need only the labelled rows' keys and the residents' registers: they are found
    # on a thread beside the model work (reading the features, the permutation importance, the
    # model without stairwells), which one after the other left much of the second core idle.
    # Their per-date attributes run as many at a time as the memory then free allows.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lyskegle-subgroups") as pool:
        subgroups_found = pool.submit(_subgroups, labelled, args.ingested, params, min_cell, args.target)
        test = _features_of(args.features, picked[on_dates(picked["as_of"], test_as_of)])
        train = _features_of(args.features, picked[on_dates(picked["as_of"], train_as_of)])
        del picked
        if test.empty or train.empty:
            raise ValueError(f"{args.target}: no labelled rows at the model's training or test as-of dates "
                             f"({info['train_as_of']} / {info['test_as_of']})")
        log.info("%s: %d labelled rows; the expected-rate model fits on %d training rows; %d test rows",
                 args.target, len(labelled), len(train), len(test))
        importance = _family_importance(model, test, families, roles, params, min_cell, args.target)
        io.write_csv(importance, args.reports / "feature_families.csv")
        stairwells = _stairwells(train, test, families, roles, params, min_cell, args.target)
        io.write_csv(stairwells, args.reports / "stairwells.csv")
        subgroups = subgroups_found.result()
    io.write_csv(subgroups, args.reports / "subgroups.csv")
    log.info("%s: %d families, %d stairwells shown, %d subgroups", args.target, len(importance), len(stairwells),
             len(subgroups))


def _family_importance(model, test: pd.DataFrame, families: dict[str, str], roles: ColumnRoles, params,
                       min_cell: int, target: str) -> pd.DataFrame:
    """Grouped permutation importance on the test rows, as shown (too few rows: suppressed)."""
    log.info("%s: grouped permutation importance (%d repeats)", target, params.importance_repeats)
    importance = family_importance(
        model, test, test["label"].to_numpy(), families,
        repeats=params.importance_repeats, max_rows=params.importance_rows, metric=params.importance_metric,
        level=params.interval_level, random_state=params.random_state, prepare=lambda rows: model_inputs(rows, roles),
    )
    # an importance is an aggregate over the sampled rows: it is shown only if they are enough
    importance = suppress_small_cells(importance, "rows", min_cell, ["importance", "interval_low", "interval_high"],
                                      total_groups=None)
    return importance.drop(columns="suppressed")


def _stairwells(train: pd.DataFrame, test: pd.DataFrame, families: dict[str, str], roles: ColumnRoles, params,
                min_cell: int, target: str) -> pd.DataFrame:
    """Stairwell effects on the test rows against a model without stairwell features."""
    log.info("%s: stairwell effects against a model without stairwell features", target)
    settings = ExpectedModelSettings(**params.expected_model.model_dump(exclude={"max_fit_rows"}),
                                     random_state=params.random_state)
    expected = expected_without_stairwell(train, train["label"].to_numpy(), test, families, settings,
                                          candidates=roles.numeric)
    return stairwell_effects(test[["stairwell_id", "person_id", "label"]].assign(expected=expected),
                             min_persons=min_cell, level=params.interval_level)


def _subgroups(labelled: pd.DataFrame, ingested: Path, params, min_cell: int, target: str) -> pd.DataFrame:
    """Subgroup discovery on the readable attributes of the labelled rows."""
    log.info("%s: subgroup discovery (at least %d persons each)", target, params.min_subgroup)
    attributes = _readable_attributes(labelled, ingested, params.subgroup_top_citizenships, params.threads)
    return discover_subgroups(
        attributes, params.subgroup_attributes, min_subgroup=max(params.min_subgroup, min_cell),
        max_conditions=params.subgroup_max_conditions, beam_width=params.subgroup_beam_width,
        results=params.subgroup_results, level=params.interval_level,
    )


def _readable_attributes(labelled: pd.DataFrame, ingested: Path, top_citizenships: int, threads: int) -> pd.DataFrame:
    """:func:`readable_attributes` of the labelled rows, by as-of date: only that year's population
    and the year before's education are read (each tens of millions of rows at 6M). Up to
    ``threads`` dates at a time, as memory allows."""
    def read(name: str) -> pd.DataFrame:
        return io.read_parquet(ingested / f"{name}.parquet", columns=list(ATTRIBUTE_SOURCES[name]))

    def read_year(name: str, year: int) -> pd.DataFrame:
        return io.read_parquet_equal(ingested / f"{name}.parquet", "year", year, columns=list(ATTRIBUTE_SOURCES[name]))

    dwellings, benefits = read("dwellings"), read("benefits")

    def at_date(date_rows: tuple[object, np.ndarray]) -> pd.DataFrame:
        as_of, at = date_rows
        year = pd.Timestamp(as_of).year
        log.info("attributes of %d rows at %s", len(at), pd.Timestamp(as_of).date())
        return attributes_known_at(labelled.iloc[at], read_year("population", year), dwellings,
                                   read_year("education", year - 1), benefits)

    dates = sorted(labelled.groupby("as_of").indices.items())
    parts = list(map_in_order(at_date, dates, threads, sizes=[len(at) for _, at in dates], what="attributes' as-of dates"))
    attributes = with_named_citizenship(concat_attributes(parts), top_citizenships)
    order = np.concatenate([at for _, at in dates])
    if np.any(np.diff(order) < 0):  # back in the labelled rows' order
        attributes = attributes.take(np.argsort(order, kind="stable")).reset_index(drop=True)
    return attributes


def _features_of(path: Path, picked: pd.DataFrame) -> pd.DataFrame:
    """The features of the ``picked`` labelled rows (:func:`labelled_rows` of keys with a
    ``file_row``), as :func:`labelled_rows` gives them: read by row number, so the rows of other
    dates are never held (the test period alone is millions of rows at national scale)."""
    rows = io.read_parquet_rows(path, picked["file_row"].to_numpy())
    rows["as_of"] = picked["as_of"].to_numpy()
    rows.insert(2, "label", picked["label"].to_numpy())
    return rows


if __name__ == "__main__":
    main()
