"""Stage `train@<target>`: select, calibrate and test a model for one target; log it to MLflow.

Reads the features table, its column families and the label cohorts. Writes, for the target:
``<model-dir>/model.joblib``, ``model_info.json``, ``test_predictions.parquet`` (person level: it
stays in the DVC workspace) and ``registry.json`` (where the MLflow run and registered model are);
``<reports>/metrics.json`` (a DVC metric), ``<reports>/plots/*.csv`` (DVC plots),
``<reports>/figures/*.png``, ``<reports>/selection.csv`` and ``<reports>/feature_importance.csv``.
Everything under ``<reports>`` and in MLflow is aggregate.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

from lyskegle import io, tracking
from lyskegle.config import load_section
from lyskegle.encoders import StairwellRateEncoder
from lyskegle.evaluation import importance_figure, label_horizon_weeks, plot_figures
from lyskegle.features import model_feature_columns
from lyskegle.models import (
    LabelledRows,
    column_roles,
    labelled_rows,
    model_grid,
    model_info,
    stage_metrics,
    synthetic_input_row,
    train_and_evaluate,
)

log = logging.getLogger("lyskegle.pipelines.train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--target", required=True, choices=["exit_26w", "self_sufficient"])
    parser.add_argument("--features", required=True, type=Path, help="features.parquet")
    parser.add_argument("--families", required=True, type=Path, help="feature_families.json")
    parser.add_argument("--cohorts", required=True, type=Path, help="cohorts.parquet of the labels stage")
    parser.add_argument("--model-dir", required=True, type=Path, help="models/<target>")
    parser.add_argument("--reports", required=True, type=Path, help="reports/<target>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, str]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = load_section(args.params, "train")
    privacy = load_section(args.params, "privacy")
    features_params = load_section(args.params, "features")
    labels_params = load_section(args.params, "labels")
    if args.target not in params.targets:
        raise ValueError(f"target '{args.target}' is not in train.targets {params.targets}")

    families = io.read_json(args.families)
    feature_columns = model_feature_columns(families, features_params.include_origin)
    cohorts = io.read_parquet(args.cohorts, columns=["target", "as_of", "person_id", "label", "censored"])
    # Only the keys and the baseline of every row are held; the other columns are read for the
    # rows the fits sample and, piece by piece, for the dates scored (the table is tens of GB at 6M).
    if params.baseline_feature not in io.parquet_columns(args.features):
        raise KeyError(f"baseline column '{params.baseline_feature}' (train.baseline_feature) "
                       f"is not in {args.features}")
    keys = io.read_parquet(args.features, columns=["as_of", "person_id", params.baseline_feature])
    keys["file_row"] = np.arange(len(keys))
    keys, label_counts = labelled_rows(keys, cohorts, args.target)
    del cohorts
    file_rows = keys["file_row"].to_numpy()
    rows = LabelledRows(keys, take=lambda at: io.read_parquet_rows(args.features, file_rows[at]),
                        parts=lambda at: io.parquet_row_parts(args.features, file_rows[at]))
    log.info("%s: %d labelled rows (%d censored excluded, %d without features)", args.target, len(keys),
             label_counts["censored"], label_counts["without_features"])

    first_rows = rows.take(np.arange(min(len(keys), 100_000)))
    roles = column_roles(first_rows, feature_columns, use_stairwell="stairwell_id" in families)
    encoder = StairwellRateEncoder(columns=("stairwell_id",), prior_weight=features_params.encoder_prior_weight,
                                   min_count=max(features_params.min_group_persons, privacy.min_cell))
    horizon = label_horizon_weeks(args.target, labels_params.horizon_weeks)
    result = train_and_evaluate(rows, roles, params, horizon, params.baseline_feature, privacy.min_cell,
                                stairwell_encoder=encoder, progress=lambda m: log.info("%s: %s", args.target, m))
    log.info("%s: chose %s; test roc_auc %.3f (baseline %.3f), average precision %.3f (baseline %.3f)",
             args.target, result.chosen.name, result.metrics.get("roc_auc", np.nan),
             result.metrics.get("baseline_roc_auc", np.nan), result.metrics.get("average_precision", np.nan),
             result.metrics.get("baseline_average_precision", np.nan))

    models, reports = args.model_dir, args.reports
    metrics = stage_metrics(result, label_counts, params.selection_metric)
    info = model_info(result, args.target, params, params.baseline_feature)
    io.write_model(result.model, models / "model.joblib")
    io.write_json(info, models / "model_info.json")
    io.write_parquet(result.test_predictions, models / "test_predictions.parquet")
    io.write_json(metrics, reports / "metrics.json")

    curves, rule, at_k = result.curves, result.baseline_curves, result.precision_at_k
    tables = {
        "plots/roc.csv": curves[["fpr", "tpr"]],
        "plots/baseline_roc.csv": rule[["fpr", "tpr"]],
        "plots/pr.csv": curves.loc[curves["flagged"] > 0, ["recall", "precision"]],
        "plots/baseline_pr.csv": rule.loc[rule["flagged"] > 0, ["recall", "precision"]],
        "plots/calibration.csv": result.calibration[["mean_predicted", "observed_rate", "persons"]],
        "plots/precision_at_k.csv": at_k.loc[at_k["scorer"] == "model", ["k_percent", "precision", "recall"]],
        "plots/baseline_precision_at_k.csv": at_k.loc[at_k["scorer"] == "baseline", ["k_percent", "precision", "recall"]],
        "selection.csv": result.selection,
        "feature_importance.csv": result.importance,
    }
    for name, table in tables.items():
        io.write_csv(table, reports / name)
    figures = plot_figures(curves, rule, result.calibration, result.precision_at_k, args.target)
    figures["feature_importance"] = importance_figure(result.importance, args.target)
    for name, figure in figures.items():
        io.write_figure(figure, reports / "figures" / f"{name}.png")

    sections = {"train": params, "privacy": privacy,
                "features": {"include_origin": features_params.include_origin,
                             "encoder_prior_weight": features_params.encoder_prior_weight,
                             "min_group_persons": features_params.min_group_persons},
                "labels": {"horizon_weeks": labels_params.horizon_weeks}}
    tags = {**tracking.data_version({"features": args.features, "feature_families": args.families,
                                     "cohorts": args.cohorts}),
            "git.commit": tracking.git_commit()}
    registry = tracking.log_training_run(
        target=args.target,
        params=tracking.flatten_params(sections),
        tags=tags,
        metrics={k: v for k, v in metrics.items() if not isinstance(v, dict)},
        metrics_by_as_of=result.metrics_by_as_of,
        selection=result.selection,
        candidates=model_grid(params),
        chosen_name=result.chosen.name,
        model=result.model,
        signature_row=synthetic_input_row(first_rows, roles),
        artifacts={
            "plots": sorted((reports / "plots").glob("*.csv")) + sorted((reports / "figures").glob("*.png")),
            "evaluation": [reports / "metrics.json", reports / "selection.csv", reports / "feature_importance.csv",
                           models / "model_info.json"],
        },
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}",
                          f"pandas=={pd.__version__}"],
    )
    io.write_json(registry, models / "registry.json")
    log.info("%s: MLflow run %s, %s version %s", args.target, registry["run_id"], registry["model_name"],
             registry["model_version"])
    return registry


if __name__ == "__main__":
    main()
