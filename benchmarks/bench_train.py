"""Benchmark: train and evaluate both targets (selection folds, calibration, test, importance).

    .venv/bin/python benchmarks/bench_train.py --persons 1000000
    .venv/bin/python benchmarks/bench_train.py --features data/features/features.parquet \
        --families data/features/feature_families.json --cohorts data/labels/cohorts.parquet

Without paths it builds a features-shaped table in memory: 8 yearly as-of dates, an exit_26w cohort
of about 4 % of persons and a self_sufficient cohort of about 60 % per date, 40 numeric features,
stairwell ids, a planted signal. Prints wall time per step and peak memory (the goal: both targets
at 1,000,000 persons within 5 minutes). MLflow logging is not timed (it does not grow with persons).

``--max-fit-rows N`` (repeat it) trains each target once per value of ``train.max_fit_rows``: the
learning curve that shows what a larger sample of fitting rows buys in test ROC AUC and average
precision, and what it costs in time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.encoders import StairwellRateEncoder
from lyskegle.evaluation import label_horizon_weeks
from lyskegle.features import model_feature_columns
from lyskegle.models import column_roles, labelled_rows, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
AS_OF = [dt.date(2016, 1, 4) + dt.timedelta(weeks=52 * i) for i in range(8)]
COHORT_SHARE = {"exit_26w": 0.04, "self_sufficient": 0.60}
N_NUMERIC = 40


def synthetic_tables(persons: int, seed: int) -> tuple[pd.DataFrame, dict[str, str], pd.DataFrame]:
    """Features (union of both cohorts), families and cohorts for ``persons`` residents."""
    rng = np.random.default_rng(seed)
    stairwells = np.array([f"s{i:06d}" for i in range(max(persons // 12, 10))], dtype=object)
    person_ids = np.array([f"p{i:08d}" for i in range(persons)], dtype=object)
    features, cohorts = [], []
    for as_of in AS_OF:
        members = {t: rng.random(persons) < share for t, share in COHORT_SHARE.items()}
        union = np.flatnonzero(members["exit_26w"] | members["self_sufficient"])
        n = len(union)
        numeric = rng.normal(size=(n, N_NUMERIC)).astype("float64")
        numeric[rng.random((n, N_NUMERIC)) < 0.05] = np.nan
        support = rng.integers(0, 53, n).astype("float64")
        stairwell_index = rng.integers(0, len(stairwells), n)
        frame = pd.DataFrame(numeric, columns=[f"f{j:02d}" for j in range(N_NUMERIC)])
        frame.insert(0, "as_of", as_of)
        frame.insert(1, "person_id", person_ids[union])
        frame["support_weeks_52w"] = support
        frame["stairwell_id"] = stairwells[stairwell_index]
        for column, values in (("audit_sex", ["man", "woman"]), ("audit_age_band", ["18-29", "30-39", "40-49"]),
                               ("audit_origin_group", ["danish", "western", "non_western"]),
                               ("audit_area", ["A1", "A2", "none"])):
            frame[column] = rng.choice(values, n)
        features.append(frame)
        signal = np.nan_to_num(numeric[:, 0]) + 0.5 * np.nan_to_num(numeric[:, 1])
        for target, shift in (("exit_26w", 0.0), ("self_sufficient", -1.0)):
            inside = members[target][union]
            logit = shift + signal - 0.03 * (support - 26) - 1.5 * (stairwell_index % 10 == 0)
            label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
            censored = rng.random(n) < 0.02
            cohorts.append(pd.DataFrame({
                "target": target, "as_of": as_of, "person_id": person_ids[union][inside],
                "label": pd.array(np.where(censored, 0, label)[inside], dtype="Int8"), "censored": censored[inside],
            }))
    cohort_table = pd.concat(cohorts, ignore_index=True)
    cohort_table.loc[cohort_table["censored"], "label"] = pd.NA
    families = {f"f{j:02d}": "history" for j in range(N_NUMERIC)} | {
        "support_weeks_52w": "history", "stairwell_id": "stairwell",
        "audit_sex": "audit", "audit_age_band": "audit", "audit_origin_group": "audit", "audit_area": "audit"}
    return pd.concat(features, ignore_index=True), families, cohort_table


def peak_rss_gb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def boosting_trees(model) -> int | str:
    """Trees in the chosen model's boosting step (what prediction costs grow with), or "no" when it
    has none: the calibrated pipeline's first frozen estimator is looked into."""
    inner = getattr(model, "calibrated_classifiers_", [model])[0]
    inner = getattr(inner, "estimator", inner)
    inner = getattr(inner, "estimator", inner)  # FrozenEstimator
    step = inner.steps[-1][1] if hasattr(inner, "steps") else inner
    return int(step.n_iter_) if hasattr(step, "n_iter_") and not hasattr(step, "coef_") else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--features", type=Path)
    parser.add_argument("--families", type=Path)
    parser.add_argument("--cohorts", type=Path)
    parser.add_argument("--max-fit-rows", type=int, action="append", default=[], metavar="N",
                        help="train with train.max_fit_rows = N (repeat for a learning curve)")
    args = parser.parse_args()

    params = load_section(args.params, "train")
    min_cell = load_section(args.params, "privacy").min_cell
    features_params = load_section(args.params, "features")
    labels_params = load_section(args.params, "labels")

    started = time.perf_counter()
    if args.features:
        features = io.read_parquet(args.features)
        families = io.read_json(args.families)
        cohorts = io.read_parquet(args.cohorts, columns=["target", "as_of", "person_id", "label", "censored"])
        source = str(args.features)
    else:
        features, families, cohorts = synthetic_tables(args.persons, args.seed)
        source = f"synthetic, {args.persons:,} persons"
    print(f"input ({source}): {len(features):,} feature rows, {len(cohorts):,} cohort rows, "
          f"{time.perf_counter() - started:.1f} s", flush=True)

    columns = model_feature_columns(families, features_params.include_origin)
    total = 0.0
    for target in params.targets:
        step = time.perf_counter()
        rows, counts = labelled_rows(features, cohorts, target)
        joined = time.perf_counter() - step
        roles = column_roles(rows, columns, use_stairwell="stairwell_id" in families)
        encoder = StairwellRateEncoder(columns=("stairwell_id",), prior_weight=features_params.encoder_prior_weight,
                                       min_count=max(features_params.min_group_persons, min_cell))
        for fit_rows in args.max_fit_rows or [params.max_fit_rows]:
            step = time.perf_counter()
            result = train_and_evaluate(rows, roles, params.model_copy(update={"max_fit_rows": fit_rows}),
                                        label_horizon_weeks(target, labels_params.horizon_weeks),
                                        params.baseline_feature, min_cell, stairwell_encoder=encoder,
                                        progress=lambda m, t0=step: print(f"  {time.perf_counter() - t0:7.1f} s  {m}",
                                                                          flush=True))
            seconds = time.perf_counter() - step
            total += seconds
            m = result.metrics
            print(f"{target}: {len(rows):,} labelled rows ({counts['censored']:,} censored), join {joined:.1f} s, "
                  f"max_fit_rows {fit_rows:,}: train+evaluate {seconds:.1f} s; chose {result.chosen.name}; "
                  f"roc_auc {m.get('roc_auc', float('nan')):.4f} vs baseline "
                  f"{m.get('baseline_roc_auc', float('nan')):.3f}, average_precision "
                  f"{m.get('average_precision', float('nan')):.4f} vs "
                  f"{m.get('baseline_average_precision', float('nan')):.3f}, brier {m.get('brier', float('nan')):.4f}; "
                  f"{boosting_trees(result.model)} trees", flush=True)
            del result
        del rows
    print(f"all runs: {total:.1f} s (goal, both targets once at 1,000,000 persons: 300 s); peak memory {peak_rss_gb():.2f} GB; "
          f"{psutil.cpu_count()} cores")


if __name__ == "__main__":
    main()
