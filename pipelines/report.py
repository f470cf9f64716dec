"""Stage `report`: the Danish analyst pages and the model cards.

For every ``--target``: reads ``<models>/<target>/`` (test predictions, model info, registry) and
``<reports>/<target>/`` (metrics, insights CSVs, and the audit's fairness table and verdict when they
exist); writes ``<reports>/<target>/index.html`` and ``<reports>/<target>/model_card.md`` and logs
both to the model's MLflow run when ``registry.json`` names one. Then writes the overview
``<reports>/index.html`` with the area indicators of ``--areas``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from lyskegle import io
from lyskegle.areas import CRITERIA_COLUMNS, Criteria
from lyskegle.config import load_section
from lyskegle.model_card import model_card
from lyskegle.report import (
    TARGET_TITLES,
    ReportSettings,
    TargetInputs,
    plot_area_criteria,
    render_overview_page,
    render_target_page,
    target_summary,
)

log = logging.getLogger("lyskegle.pipelines.report")


def _optional_csv(path: Path) -> pd.DataFrame | None:
    if path.exists():
        return io.read_csv(path)
    log.warning("%s is missing; its section of the report says so", path)
    return None


def _optional_json(path: Path) -> Any:
    if path.exists():
        return io.read_json(path)
    log.warning("%s is missing; its section of the report says so", path)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--targets", required=True, nargs="+", choices=["exit_26w", "self_sufficient"])
    parser.add_argument("--models", required=True, type=Path, help="folder with models/<target>/")
    parser.add_argument("--reports", required=True, type=Path, help="folder with reports/<target>/; the overview goes here")
    parser.add_argument("--areas", required=True, type=Path, help="areas.csv of the areas stage")
    parser.add_argument("--extract", required=True, type=Path, help="extract.json of the ingest stage (the data version)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the model cards to MLflow")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    report = load_section(args.params, "report")
    insights = load_section(args.params, "insights")
    criteria = Criteria.of(load_section(args.params, "areas"))
    min_cell = load_section(args.params, "privacy").min_cell
    settings = ReportSettings(
        min_cell=min_cell, risk_bins=report.risk_bins, calibration_bins=report.calibration_bins,
        precision_at_k_percent=report.precision_at_k_percent, stairwells_shown=report.stairwells_shown,
        bootstrap_samples=report.bootstrap_samples, interval_level=insights.interval_level,
        random_state=report.random_state,
    )
    thresholds = {column: getattr(criteria, name) for column, (name, _) in CRITERIA_COLUMNS.items()}
    areas = io.read_csv(args.areas)
    extract = io.read_json(args.extract)
    # drawn once: every target's page and the overview show it
    area_figure = plot_area_criteria(areas, thresholds) if not areas.empty else None

    cards = []
    for target in args.targets:
        models, reports = args.models / target, args.reports / target
        predictions = io.read_parquet(models / "test_predictions.parquet", columns=["label", "score"])
        inputs = TargetInputs(
            target=target,
            predictions=predictions,
            metrics=io.read_json(reports / "metrics.json"),
            model_info=io.read_json(models / "model_info.json"),
            families=io.read_csv(reports / "feature_families.csv"),
            stairwells=io.read_csv(reports / "stairwells.csv"),
            subgroups=io.read_csv(reports / "subgroups.csv"),
            fairness=_optional_csv(reports / "fairness.csv"),
            audit=_optional_json(reports / "audit.json"),
            areas=areas,
            thresholds=thresholds,
            registry=_optional_json(models / "registry.json"),
            importance_metric=insights.importance_metric,
            area_figure=area_figure,
        )
        summary = target_summary(inputs, settings)
        io.write_text(render_target_page(inputs, summary, settings), reports / "index.html")
        card = model_card(
            target, model_info=inputs.model_info, metrics=inputs.metrics, intervals=summary["intervals"],
            audit=inputs.audit, families=inputs.families, extract=extract, registry=inputs.registry,
            min_cell=min_cell, interval_level=settings.interval_level,
        )
        io.write_text(card, reports / "model_card.md")
        log.info("%s: wrote %s and %s", target, reports / "index.html", reports / "model_card.md")
        if inputs.registry and inputs.registry.get("run_id") and not args.no_mlflow:
            from lyskegle import tracking  # only this branch needs MLflow

            tracking.log_artifacts(inputs.registry["run_id"], [reports / "model_card.md", reports / "index.html"],
                                   "report", inputs.registry.get("tracking_uri"))
            log.info("%s: logged the model card to MLflow run %s", target, inputs.registry["run_id"])
        cards.append({
            "target": target, "title": TARGET_TITLES.get(target, target), "roc_auc": summary["intervals"]["roc_auc"],
            "audit_passed": None if inputs.audit is None else bool(inputs.audit.get("passed")),
        })

    overview = render_overview_page(cards, areas, thresholds, criteria.criteria_needed, min_cell, area_figure)
    io.write_text(overview, args.reports / "index.html")
    log.info("wrote %s", args.reports / "index.html")


if __name__ == "__main__":
    main()
