"""Stage `audit`: the fairness and privacy gate of one target's model.

Reads the test predictions, ``registry.json``, the model and its ``model_info.json`` of one target,
the features and cohorts (to score the training period and to re-fit with origin), the extract's raw
PNR values (hashed in memory, never written) and every file under the ``--scan`` roots. Writes
``--fairness`` (fairness.csv), ``--origin-comparison`` (JSON) and ``--audit`` (audit.json, a DVC
metric: ``{passed, reasons, warnings, checks}``), records the verdict on the training run in MLflow
and gives a passing model the registry alias ``champion``. A failed audit exits 0 unless
``audit.fail_on_violation`` is true; the reports say plainly that the model failed and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from lyskegle import audit, io, privacy, tracking
from lyskegle.config import load_section
from lyskegle.encoders import StairwellRateEncoder
from lyskegle.models import Candidate, ColumnRoles, labelled_rows

log = logging.getLogger("lyskegle.pipelines.audit")

PNR_COLUMNS = ("PNR", "MOR_ID", "FAR_ID", "E_FAELLE_ID")
#: count columns of a shown CSV table that must never hold 1..min_cell-1 persons
COUNT_COLUMNS = ("persons", "residents", "n_persons", "count")
HITS_LISTED = 5  # offsets listed per file in audit.json; the count says how many there were


# --- identifier scan: walk files, hand their contents to lyskegle.privacy ------------------------

def extract_pnr_values(folder: Path) -> privacy.ExtractIdentifiers:
    """Digests of every raw PNR (and parent/partner PNR) value in the extract folder's registers."""
    files, _ = io.list_extract_files(folder)
    digests: set[bytes] = set()
    lengths: set[int] = set()
    for stem, path in tqdm(sorted(files.items()), desc="extract PNR values", unit="file", file=sys.stderr):
        frame = io.read_raw_register(path).frame
        columns = [c for c in frame.columns if str(c).strip().upper() in PNR_COLUMNS]
        for column in columns:
            found = privacy.extract_identifiers(frame[column].dropna().astype(str))
            digests |= found.digests
            lengths |= found.lengths
    return privacy.ExtractIdentifiers(frozenset(digests), frozenset(lengths))


def files_to_scan(roots: Iterable[Path], exclude: Iterable[Path]) -> Iterator[Path]:
    """Every file under the roots (a root may be a file), except under an excluded path."""
    excluded = [p.resolve() for p in exclude]
    for root in roots:
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            resolved = path.resolve()
            if not any(resolved == e or e in resolved.parents for e in excluded):
                yield path


def scan_file(path: Path, known: privacy.ExtractIdentifiers | None) -> list[dict]:
    """Hits in one file: ``{where, kind}`` with ``where`` a byte offset or ``column C, row R``.

    The file's name, its bytes (decompressed for ``.gz``) and, for Parquet, its decoded text and
    integer columns are scanned: Parquet pages are compressed, so their bytes alone hide values.
    """
    hits = [{"where": "file name", "kind": kind} for _, kind in privacy.find_identifiers(str(path), known)]
    blocks = _gunzip_blocks(path) if path.suffix == ".gz" else io.read_blocks(path)
    hits += [{"where": f"byte {offset}", "kind": kind} for offset, kind in privacy.scan_blocks(blocks, known)]
    if path.suffix == ".parquet":
        for column, first_row, values in io.parquet_value_batches(path):
            texts = privacy.integer_texts(values) if isinstance(values, np.ndarray) else values
            hits += [{"where": f"column {column}, row {first_row + row}", "kind": kind}
                     for row, kind in privacy.scan_strings(texts, known)]
    return hits


def _gunzip_blocks(path: Path, block_bytes: int = 1 << 22) -> Iterator[bytes]:
    with gzip.open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            yield block


def scan_outputs(roots: list[Path], exclude: list[Path], known: privacy.ExtractIdentifiers | None) -> dict:
    """The ``checks.identifier_scan`` record: files and bytes scanned, and hits by file."""
    by_file, files, scanned_bytes = [], 0, 0
    paths = list(files_to_scan([r for r in roots if r.exists()], exclude))
    for path in tqdm(paths, desc="identifier scan", unit="file", file=sys.stderr):
        try:
            hits = scan_file(path, known)
            scanned_bytes += path.stat().st_size
        except FileNotFoundError:
            continue  # a temporary file that another writer renamed away meanwhile
        files += 1
        if hits:
            kinds = sorted({h["kind"] for h in hits})
            by_file.append({"file": str(path), "kinds": kinds, "hits": len(hits),
                            "where": [h["where"] for h in hits[:HITS_LISTED]]})
    return {
        "ran": True, "roots": [str(r) for r in roots], "roots_missing": [str(r) for r in roots if not r.exists()],
        "excluded": [str(e) for e in exclude], "files": files, "bytes": scanned_bytes,
        "extract_pnr_values": known.size if known else 0, "files_with_hits": by_file, "passed": not by_file,
    }


def shown_small_cells(paths: Iterable[Path], min_cell: int) -> list[dict]:
    """CSV tables whose person-count columns hold a count from 1 to ``min_cell - 1``."""
    found = []
    for path in paths:
        if path.suffix != ".csv":
            continue
        try:
            table = pd.read_csv(path)  # the project's tables are written by io.write_csv: commas
        except pd.errors.EmptyDataError:
            continue
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            found.append({"file": str(path), "column": None, "rows": 0, "unreadable": str(error)[:200]})
            continue
        for column in (c for c in table.columns if str(c).lower() in COUNT_COLUMNS):
            counts = pd.to_numeric(table[column], errors="coerce")
            small = int(((counts >= 1) & (counts < min_cell)).sum())
            if small:
                found.append({"file": str(path), "column": str(column), "rows": small})
    return found


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
                        help="the synthetic extract, read for its PNR values when extract.path is null")
    parser.add_argument("--scan", action="append", default=[], type=Path, help="a file or folder to scan (repeat)")
    parser.add_argument("--scan-exclude", action="append", default=[], type=Path, help="not scanned (repeat)")
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
    table = audit.fairness_table(audit.as_priority_list(predictions, params.flag), rule, rng)
    shown = audit.shown_fairness_table(table, min_cell)
    io.write_csv(shown, args.fairness)
    reasons["fairness"], checks["fairness"] = audit.fairness_summary(table, rule)
    warnings += [f"fairness: {g} is outside the ratio bounds, but its interval reaches inside"
                 for g in checks["fairness"]["uncertain"]]

    checks["k_anonymity"] = _k_anonymity(predictions, min_cell, args.predictions)
    if not checks["k_anonymity"]["passed"]:
        warnings.append(
            f"k-anonymity: {args.predictions} has {checks['k_anonymity']['classes_below_k']} combination(s) of "
            f"the audit columns with fewer than {min_cell} persons (a DVC-internal file, so a warning)"
        )

    training = _training_inputs(args)
    checks["overfitting"], reasons["overfitting"] = _overfitting(training, predictions, params.max_train_test_auc_gap)
    origin = _origin_comparison(params.compare_with_origin, training, rule, args.params)
    io.write_json(origin, args.origin_comparison)
    checks["origin_comparison"] = {"ran": origin["ran"], "file": str(args.origin_comparison)}
    if params.compare_with_origin and not origin["ran"]:
        warnings.append(f"origin comparison did not run: {origin['reason']}")

    extract_folder = Path(extract_path) if extract_path else args.synthetic
    known = extract_pnr_values(extract_folder)
    exclude = [*args.scan_exclude, extract_folder, args.audit]
    checks["identifier_scan"] = scan_outputs(args.scan, exclude, known)
    reasons["identifier_scan"] = [
        f"privacy: {hit['file']} holds {' and '.join(k.replace('_', ' ') for k in hit['kinds'])} value(s) "
        f"({hit['hits']} hit(s), first at {hit['where'][0]})"
        for hit in checks["identifier_scan"]["files_with_hits"]
    ]
    if not known.size:
        reasons["identifier_scan"].append(f"privacy: no PNR values found in the extract {extract_folder}")

    scanned_csv = [p for p in files_to_scan([r for r in args.scan if r.exists()], exclude) if "reports" in p.parts]
    small = shown_small_cells(scanned_csv, min_cell)
    checks["small_cells"] = {"ran": True, "tables": len(scanned_csv), "violations": small, "passed": not small}
    reasons["small_cells"] = [
        f"privacy: {s['file']} could not be read to check its counts ({s['unreadable']})" if "unreadable" in s
        else f"privacy: {s['file']} shows {s['rows']} count(s) under {min_cell} in '{s['column']}'"
        for s in small
    ]

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
    features = io.read_parquet(args.features)
    cohorts = io.read_parquet(args.cohorts, columns=["target", "as_of", "person_id", "label", "censored"])
    rows, _ = labelled_rows(features, cohorts, args.target)
    inputs = info["inputs"]
    return {
        "model": io.read_model(args.model), "info": info, "rows": rows, "families": io.read_json(args.families),
        "roles": ColumnRoles(tuple(inputs["numeric"]), tuple(inputs["categorical"]), inputs.get("stairwell")),
        "train_as_of": [dt.date.fromisoformat(str(d)) for d in info["train_as_of"]],
        "test_as_of": [dt.date.fromisoformat(str(d)) for d in info["test_as_of"]],
    }


def _overfitting(training: dict | None, predictions: pd.DataFrame, max_gap: float) -> tuple[dict, list[str]]:
    if training is None:
        why = "the stage was not given the model, model info, features, families and cohorts"
        return {"ran": False, "passed": False, "why": why}, [f"overfitting: could not be checked: {why}"]
    log.info("scoring the training period for the overfitting check")
    train_auc = audit.training_period_auc(training["model"], training["rows"], training["roles"],
                                          training["train_as_of"])
    labels = predictions["label"].to_numpy("int64")
    test_auc = float(roc_auc_score(labels, predictions["score"].to_numpy("float64")))
    check = {"ran": True, **audit.train_test_gap(train_auc, test_auc, max_gap)}
    reason = [] if check["passed"] else [
        f"overfitting: training-period ROC AUC {check['train_auc']:.3f} is {check['gap']:.3f} above the test "
        f"ROC AUC {check['test_auc']:.3f} (audit.max_train_test_auc_gap = {max_gap})"
    ]
    return check, reason


def _origin_comparison(wanted: bool, training: dict | None, rule: audit.FairnessRule, params_path: Path) -> dict:
    if not wanted:
        return {"ran": False, "reason": "audit.compare_with_origin is false"}
    if training is None:
        return {"ran": False, "reason": "the stage was not given the model info, features, families and cohorts"}
    features = load_section(params_path, "features")
    random_state = load_section(params_path, "train").random_state
    chosen = training["info"]["chosen"]
    # the same stairwell encoder the train stage builds, so only the inputs differ
    encoder = StairwellRateEncoder(columns=("stairwell_id",), prior_weight=features.encoder_prior_weight,
                                   min_count=max(features.min_group_persons, rule.min_cell))
    log.info("re-fitting %s without and with the origin features", chosen["name"])
    return audit.origin_comparison(
        training["rows"], training["families"], Candidate(chosen["kind"], dict(chosen["settings"])),
        training["train_as_of"], training["test_as_of"], random_state, encoder,
        dataclasses.replace(rule, bootstrap_samples=0),
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
