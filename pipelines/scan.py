"""Stage `scan`: the last privacy check, over everything the pipeline wrote, after the report.

The audit scans before a model is promoted; the report pages, model cards and the MLflow artifacts
logged after it are written later, so this stage scans again at the end: every file under the
``--scan`` roots for CPR-shaped numbers and the extract's raw PNR values, and every shown CSV table
for person counts under ``privacy.min_cell``. Writes ``--out`` (a DVC metric:
``{passed, reasons, checks}``). A failed scan exits 1 when ``audit.fail_on_violation`` is true.

    python pipelines/scan.py --params params.yaml --synthetic data/synthetic \
        --scan data --scan models --scan reports --scan mlflow.db --scan mlartifacts \
        --scan-exclude data/synthetic --out reports/privacy_scan.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lyskegle import io
from lyskegle.config import load_section
from lyskegle.identifier_scan import privacy_checks, stage_identifiers

log = logging.getLogger("lyskegle.pipelines.scan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--synthetic", required=True, type=Path, help="the synthetic extract (used unless extract.path is set)")
    parser.add_argument("--extract-identifiers", type=Path,
                        help="data/ingested/extract_identifiers.parquet: the extract's PNR values as pseudonyms")
    parser.add_argument("--scan", action="append", default=[], type=Path, help="a file or folder to scan (repeat)")
    parser.add_argument("--scan-exclude", action="append", default=[], type=Path, help="not scanned (repeat)")
    parser.add_argument("--scan-cache", type=Path,
                        help="folder of earlier scans' findings by file contents, reused for unchanged files")
    parser.add_argument("--out", required=True, type=Path, help="reports/privacy_scan.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    min_cell = load_section(args.params, "privacy").min_cell
    extract_path = load_section(args.params, "extract").path
    fail_on_violation = load_section(args.params, "audit").fail_on_violation
    extract_folder = Path(extract_path) if extract_path else args.synthetic

    known = stage_identifiers(args.extract_identifiers, extract_folder,
                              load_section(args.params, "ingest").allow_development_key) \
        if args.extract_identifiers else None
    checks, reasons = privacy_checks(args.scan, [*args.scan_exclude, args.out], extract_folder, min_cell,
                                    args.scan_cache, known=known)
    every_reason = [reason for check in sorted(reasons) for reason in reasons[check]]
    io.write_json({"passed": not every_reason, "reasons": every_reason, "checks": checks}, args.out)
    if every_reason:
        log.error("privacy scan FAILED:\n  %s", "\n  ".join(every_reason))
        return 1 if fail_on_violation else 0
    log.info("privacy scan passed: %d files, %.1f MB", checks["identifier_scan"]["files"],
             checks["identifier_scan"]["megabytes"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
