"""Stage `audit`: the fairness and privacy gate of one target's model.

Reads the test predictions, ``registry.json``, the model and its ``model_info.json`` of one target,
the features and cohorts (to score the training period and to re-fit with origin), the extract's PNR
values as the pseudonyms ingest recorded (``--extract-identifiers``; without the key they were made
with, the raw values from the extract, hashed in memory, never written) and every file under the
``--scan`` roots. Writes
``--fairness`` (fairness.csv), ``--origin-comparison`` (JSON) and ``--audit`` (audit.json, a DVC
metric: ``{passed, reasons, warnings, checks}``), records the verdict on the training run in MLflow
and gives a passing model the registry alias ``champion``. A failed audit exits 0 unless
``audit.fail_on_violation`` is true; the reports say plainly that the model failed and why.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import logging
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lyskegle import audit, concurrency, io, privacy, tracking
from lyskegle.config import load_section
from lyskegle.encoders import StairwellRateEncoder
from lyskegle.identifier_scan import ScanCache, extract_pnr_values, privacy_checks, stage_identifiers, warm_scan_cache
from lyskegle.models import Candidate, ColumnRoles, cohort_filter, labelled_rows, sampled_cohort

log = logging.getLogger("lyskegle.pipelines.audit")

#: What reading the extract's PNR values and the fairness table held at their peaks at a million
#: persons (2.27 GB of extract, 1.04M test predictions): 1.5 GB and 1.0 GB, rounded up.
PNR_READ_BYTES_PER_EXTRACT_BYTE = 1.0
FAIRNESS_BYTES_PER_PREDICTION = 1_000


# --- the stage -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--target", required=True)
    parser.add_argument("--predictions", required=True, type=Path, help="models/<target>/test_predictions.parquet")
    parser.add_argument("--registry", required=True, type=Path, help="models/<target>/registry.json")
    parser.add_argument("--model", type=Path, help="models/<target>/model.joblib")
    parser.add_argument("--model-info", type=Path, help="models/<target>/model_info.json")
    parser.add_argument("--features", type=Path, help="data/features/features.parquet")
    parser.add_argument("--families", type=Path, help="data/features/feature_families.json")
    parser.add_argument("--cohorts", type=Path, help="data/labels/cohorts.parquet")
    parser.add_argument("--synthetic", required=True, type=Path,
                        help="the synthetic extract (its marker; its PNR values when not recorded) when extract.path is null")
    parser.add_argument("--extract-identifiers", type=Path,
                        help="data/ingested/extract_identifiers.parquet: the extract's PNR values as pseudonyms")
    parser.add_argument("--scan", action="append", default=[], type=Path, help="a file or folder to scan (repeat)")
    parser.add_argument("--scan-exclude", action="append", default=[], type=Path, help="not scanned (repeat)")
    parser.add_argument("--scan-cache", type=Path,
                        help="folder of earlier scans' findings by file contents, reused for unchanged files")
    parser.add_argument("--fairness", required=True, type=Path)
    parser.add_argument("--origin-comparison", required=True, type=Path)
    parser.add_argument("--audit", required=True, type=Path)
    parser.add_argument("--no-mlflow", action="store_true", help="write the reports only (tests, dry runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = load_section(args.params, "audit")
    min_cell = load_section(args.params, "privacy").min_cell
    extract_path = load_section(args.params, "extract").path
    rng = np.random.default_rng(params.random_state)
    rule = audit.FairnessRule(
        top_k_percent=params.top_k_percent, ratio_bounds=tuple(params.ratio_bounds), min_cell=min_cell,
        min_expected_events=params.min_expected_events, bootstrap_samples=params.bootstrap_samples,
        confidence=params.confidence, reference_groups=dict(params.reference_groups),
    )
    reasons: dict[str, list[str]] = {}
    warnings: list[str] = []
    checks: dict[str, dict] = {}

    predictions = io.read_parquet(args.predictions)
    log.info("auditing %d test predictions of %s (list: %s)", len(predictions), args.target, params.flag)
    extract_folder = Path(extract_path) if extract_path else args.synthetic
    # The identifier scan needs the extract's PNR values: the pseudonyms ingest recorded, or else
    # read from the extract, beside the audit's other work when the memory free holds it and the
    # fairness table.
    known = stage_identifiers(args.extract_identifiers, extract_folder,
                              load_section(args.params, "ingest").allow_development_key) \
        if args.extract_identifiers else None
    side_by_side = known is None and concurrency.room_for(_fairness_and_pnr_bytes(extract_folder, len(predictions)))
    with _scan_cache_warmed(args, known, extract_folder):
        # The fairness table (one core: NumPy and pandas) runs beside the reading of the training
        # rows and the re-fits (Arrow and OpenMP on both cores), when the memory free holds it.
        priority = audit.as_priority_list(predictions, params.flag)
        beside = concurrency.room_for(FAIRNESS_BYTES_PER_PREDICTION * len(predictions))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lyskegle-audit-side") as pool:
            known_pnr = pool.submit(extract_pnr_values, extract_folder) if side_by_side else None
            fairness = pool.submit(audit.fairness_table, priority, rule, rng) if beside else None
            k_anonymity = _k_anonymity(predictions, min_cell, args.predictions)
            training = _training_inputs(args)
            overfitting = _overfitting(training, predictions, params.max_train_test_auc_gap)
            origin = _origin_comparison(params.compare_with_origin, training, rule, args.params, len(predictions))
            del training  # millions of feature rows at national scale; the scan below needs its own memory
            table = fairness.result() if fairness is not None else audit.fairness_table(priority, rule, rng)
            known = known_pnr.result() if known_pnr is not None else known
        shown = audit.shown_fairness_table(table, min_cell)
        io.write_csv(shown, args.fairness)
        reasons["fairness"], checks["fairness"] = audit.fairness_summary(table, rule)
        warnings += [f"fairness: {g} is outside the ratio bounds, but its interval reaches inside"
                     for g in checks["fairness"]["uncertain"]]

        checks["k_anonymity"] = k_anonymity
        if not k_anonymity["passed"]:
            warnings.append(
                f"k-anonymity: {args.predictions} has {k_anonymity['classes_below_k']} combination(s) of "
                f"the audit columns with fewer than {min_cell} persons (a DVC-internal file, so a warning)"
            )
        checks["overfitting"], reasons["overfitting"] = overfitting
        io.write_json(origin, args.origin_comparison)
        checks["origin_comparison"] = {"ran": origin["ran"], "file": str(args.origin_comparison)}
        if params.compare_with_origin and not origin["ran"]:
            warnings.append(f"origin comparison did not run: {origin['reason']}")

    scan_checks, scan_reasons = privacy_checks(args.scan, [*args.scan_exclude, args.audit], extract_folder, min_cell,
                                                args.scan_cache, known=known)
    checks.update(scan_checks)
    reasons.update(scan_reasons)

    result = audit.verdict(reasons, checks, warnings)
    result["target"] = args.target
    registry = io.read_json(args.registry)
    result["model"] = {k: registry.get(k) for k in ("model_name", "model_version", "run_id")}
    result["promoted_to"] = "champion" if result["passed"] else None
    io.write_json(result, args.audit)
    _log(result, args.target)

    if not args.no_mlflow:
        tracking.log_audit(registry["run_id"], result, [args.audit, args.fairness, args.origin_comparison],
                           uri=registry.get("tracking_uri"))
        if result["passed"]:
            tracking.promote(registry["model_name"], registry["model_version"], tracking.CHAMPION_ALIAS,
                             uri=registry.get("tracking_uri"))
            log.info("%s version %s is now 'champion'", registry["model_name"], registry["model_version"])
    if not result["passed"] and params.fail_on_violation:
        return 1
    return 0


@contextlib.contextmanager
def _scan_cache_warmed(args: argparse.Namespace, known: privacy.ExtractIdentifiers | None,
                       extract_folder: Path) -> Iterator[None]:
    """While the block runs, the files already under the scan roots are scanned into the scan cache
    on a side thread (:func:`warm_scan_cache`); leaving the block waits for that. The closing scan
    then reads only what the audit wrote meanwhile. At the first audit after the data stages this
    is most of the stage's reading (1.6 GB at a million persons), and it overlaps the fairness
    table, the training rows and the re-fits instead of following them. Not without a cache folder,
    nor when the extract's identifiers are read from the extract beside the audit's other work (they
    are what the scan looks for)."""
    if known is None or args.scan_cache is None:
        yield
        return
    exclude = [*args.scan_exclude, args.audit, args.fairness, args.origin_comparison, extract_folder]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lyskegle-scan-cache") as pool:
        warming = pool.submit(warm_scan_cache, args.scan, exclude, known, ScanCache(args.scan_cache, known))
        yield
        if not warming.done():
            log.info("waiting for the scan of the files written before the audit")
        scanned = warming.result()
    log.info("scan cache: %d file(s) scanned beside the audit", scanned)


def _fairness_and_pnr_bytes(extract_folder: Path, predictions: int) -> int:
    """The memory the fairness table and the PNR read take side by side (see the constants)."""
    files, _ = io.list_extract_files(extract_folder)
    extract_bytes = sum(path.stat().st_size for path in files.values())
    return int(PNR_READ_BYTES_PER_EXTRACT_BYTE * extract_bytes + FAIRNESS_BYTES_PER_PREDICTION * predictions)


def _k_anonymity(predictions: pd.DataFrame, k: int, path: Path) -> dict:
    quasi = list(audit.AUDIT_COLUMNS.values())
    found = privacy.small_equivalence_classes(predictions, quasi, k, person_column="person_id")
    return {"ran": True, "file": str(path), "k": k, "quasi_identifiers": quasi, **found,
            "passed": found["classes_below_k"] == 0, "gate": False,
            "why_not_gate": "the file stays in the DVC workspace; nothing person-level is shown or logged"}


def _training_inputs(args: argparse.Namespace) -> dict | None:
    """The model, its info, the labelled rows of the target and the feature families; None when
    the stage was not given them (then the overfitting check cannot run)."""
    paths = (args.model, args.model_info, args.features, args.families, args.cohorts)
    if any(p is None for p in paths):
        return None
    info = io.read_json(args.model_info)
    train = load_section(args.params, "train")
    cohorts = io.read_parquet(args.cohorts, columns=["target", "as_of", "person_id", "label", "censored"])
    train_as_of = [dt.date.fromisoformat(str(d)) for d in info["train_as_of"]]
    # the target's rows only, and of the training period only the random train.max_fit_rows that
    # the overfitting check scores and the origin comparison fits on
    cohorts = sampled_cohort(cohorts, args.target, train_as_of, train.max_fit_rows, train.random_state)
    features = io.read_parquet_where(args.features, cohort_filter(cohorts, args.target), ["as_of", "person_id"])
    rows, _ = labelled_rows(features, cohorts, args.target)
    del features
    inputs = info["inputs"]
    return {
        "model": io.read_model(args.model), "info": info, "rows": rows, "families": io.read_json(args.families),
        "max_fit_rows": train.max_fit_rows, "random_state": train.random_state,
        "roles": ColumnRoles(tuple(inputs["numeric"]), tuple(inputs["categorical"]), inputs.get("stairwell")),
        "train_as_of": train_as_of,
        "test_as_of": [dt.date.fromisoformat(str(d)) for d in info["test_as_of"]],
    }


def _overfitting(training: dict | None, predictions: pd.DataFrame, max_gap: float) -> tuple[dict, list[str]]:
    if training is None:
        why = "the stage was not given the model, model info, features, families and cohorts"
        return {"ran": False, "passed": False, "why": why}, [f"overfitting: could not be checked: {why}"]
    log.info("scoring the training period for the overfitting check")
    train_auc = audit.training_period_auc(training["model"], training["rows"], training["roles"],
                                          training["train_as_of"], max_rows=training["max_fit_rows"],
                                          random_state=training["random_state"])
    labels = predictions["label"].to_numpy("int64")
    test_auc = float(roc_auc_score(labels, predictions["score"].to_numpy("float64")))
    check = {"ran": True, **audit.train_test_gap(train_auc, test_auc, max_gap)}
    reason = [] if check["passed"] else [
        f"overfitting: training-period ROC AUC {check['train_auc']:.3f} is {check['gap']:.3f} above the test "
        f"ROC AUC {check['test_auc']:.3f} (audit.max_train_test_auc_gap = {max_gap})"
    ]
    return check, reason


def _origin_comparison(wanted: bool, training: dict | None, rule: audit.FairnessRule, params_path: Path,
                       test_rows: int) -> dict:
    if not wanted:
        return {"ran": False, "reason": "audit.compare_with_origin is false"}
    if training is None:
        return {"ran": False, "reason": "the stage was not given the model info, features, families and cohorts"}
    features = load_section(params_path, "features")
    train = load_section(params_path, "train")
    chosen = training["info"]["chosen"]
    # the same stairwell encoder the train stage builds, so only the inputs differ
    encoder = StairwellRateEncoder(columns=("stairwell_id",), prior_weight=features.encoder_prior_weight,
                                   min_count=max(features.min_group_persons, rule.min_cell))
    log.info("re-fitting %s without and with the origin features", chosen["name"])
    return audit.origin_comparison(
        training["rows"], training["families"], Candidate(chosen["kind"], dict(chosen["settings"])),
        training["train_as_of"], training["test_as_of"], train.random_state, encoder,
        dataclasses.replace(rule, bootstrap_samples=0), max_fit_rows=train.max_fit_rows,
        # a second fit in flight holds its test scores and origin figures: under what a fairness
        # table of the test rows takes
        side_by_side=concurrency.room_for(FAIRNESS_BYTES_PER_PREDICTION * test_rows),
    )


def _log(result: dict, target: str) -> None:
    if result["passed"]:
        log.info("audit of %s: PASSED", target)
        return
    log.warning("audit of %s: FAILED", target)
    for reason in result["reasons"]:
        log.warning("  %s", reason)


if __name__ == "__main__":
    sys.exit(main())
