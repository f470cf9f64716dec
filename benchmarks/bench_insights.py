"""Wall time and peak memory of the insights on made-up test-period rows.

    .venv/bin/python benchmarks/bench_insights.py --rows 200000

Prints one line per step: grouped permutation importance (a fitted logistic regression on 40
columns in 8 families), stairwell effects (one stairwell per 25 rows), subgroup discovery (eight
attributes, beam search of depth 3).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import psutil
from sklearn.linear_model import LogisticRegression

from lyskegle.insights import discover_subgroups, family_importance, stairwell_effects

FAMILIES = ["history", "demographic", "household", "family", "stairwell", "coworkers", "classmates", "area"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step(name: str, started: float) -> None:
    print(f"{name:<28} {time.perf_counter() - started:8.2f} s   peak RSS {_peak_mb():8.0f} MB   "
          f"now {psutil.Process().memory_info().rss / 2**20:8.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.rows

    columns = {f"{family}_{i}": rng.normal(size=n) for family in FAMILIES for i in range(5)}
    frame = pd.DataFrame(columns)
    families = {column: column.rsplit("_", 1)[0] for column in frame.columns}
    logit = frame["history_0"] + 0.5 * frame["stairwell_0"] - 0.3 * frame["area_1"]
    labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int8")
    model = LogisticRegression(max_iter=200).fit(frame.iloc[:20_000], labels[:20_000])
    model.feature_names_in_ = np.array(frame.columns)

    started = time.perf_counter()
    family_importance(model, frame, labels, families, repeats=10, max_rows=20_000, random_state=1)
    _step("family_importance (20k rows)", started)

    rows = pd.DataFrame({
        "stairwell_id": rng.integers(0, max(n // 25, 1), n).astype(str), "person_id": np.arange(n).astype(str),
        "label": labels, "expected": 1 / (1 + np.exp(-frame["history_0"].to_numpy())),
    })
    started = time.perf_counter()
    stairwell_effects(rows, min_persons=5)
    _step("stairwell_effects", started)

    values = {"age_band": 5, "sex": 2, "origin": 3, "citizenship": 9, "education": 8, "area": 12, "household": 3,
              "support_last_year": 4}
    attributes = pd.DataFrame({"person_id": rows["person_id"], "label": labels})
    for attribute, count in values.items():
        codes = rng.integers(0, count, n).astype(str)
        attributes[attribute] = codes
        attributes[f"{attribute}_en"] = codes
    started = time.perf_counter()
    discover_subgroups(attributes, list(values), min_subgroup=30, max_conditions=3, beam_width=10, results=10)
    _step("discover_subgroups", started)


if __name__ == "__main__":
    main()
