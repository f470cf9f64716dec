"""MLflow tracking and the model registry: the only module that imports mlflow.

Default store: ``sqlite:///mlflow.db`` in the folder the stage runs in (the project root under
``dvc repro``), with artifacts under ``./mlartifacts``; both are git-ignored. ``MLFLOW_TRACKING_URI``
overrides it (a server, another database). Reviewers open the same store with ``make ui``
(``mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts
--host 127.0.0.1 --port 5000``).

Only aggregates go to MLflow: params, hashes, metrics, curves and tables that passed the
small-cell rule, the model and a synthetic signature row. Person-level predictions never do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlartifacts"
EXPERIMENT = "lyskegle"
CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"


def tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI: ``explicit``, else ``MLFLOW_TRACKING_URI``, else the project's SQLite store."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def registered_model_name(target: str) -> str:
    """``lyskegle-exit_26w`` for ``exit_26w``."""
    return f"lyskegle-{target}"


def file_md5(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """MD5 of a file's bytes: the same hash DVC records for a file in ``dvc.lock``."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def data_version(inputs: Mapping[str, str | Path]) -> dict[str, str]:
    """``data.<name>_md5`` for every named input file, hashed now.

    Hashed rather than read from ``dvc.lock``: the lock's entry for this stage still holds the
    previous run's hashes while the stage runs, and a file's MD5 is what DVC records for it.
    """
    return {f"data.{name}_md5": file_md5(path) for name, path in inputs.items()}


def git_commit(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD``, or ``unknown`` outside a git checkout or without git."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def flatten_params(sections: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train.logistic.C": "[1.0]", ...}`` from nested mappings or pydantic sections."""
    flat: dict[str, str] = {}
    for key, value in sections.items():
        name = f"{prefix}{key}"
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def _numbers(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numeric entries of ``metrics`` (suppressed or undefined metrics are left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def _experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A SQLite store keeps its artifacts beside it in mlartifacts/ (for the project's default
    # store: ./mlartifacts, which `make ui` serves); a server decides for itself.
    location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        location = (database.parent / DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def log_training_run(
    *,
    target: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    metrics: Mapping[str, Any],
    metrics_by_as_of: pd.DataFrame,
    selection: pd.DataFrame,
    candidates: Iterable[Any],
    chosen_name: str,
    model: Any,
    signature_row: pd.DataFrame,
    artifacts: Mapping[str, Iterable[Path]],
    pip_requirements: list[str],
    uri: str | None = None,
    experiment: str = EXPERIMENT,
) -> dict[str, str]:
    """Log one training run of ``target`` with a nested run per grid candidate; register the model.

    ``selection`` has one row per candidate x fold (``candidate``, ``fold`` and metric columns);
    ``candidates`` are :class:`lyskegle.models.Candidate`; ``artifacts`` maps an artifact folder to
    the files to log there. The model is registered as ``lyskegle-<target>`` and gets the alias
    ``candidate``. Returns ``tracking_uri``, ``experiment``, ``run_id``, ``model_name``,
    ``model_version`` (what ``models/<target>/registry.json`` holds).
    """
    uri = tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, uri, experiment)
    model_name = registered_model_name(target)
    metric_columns = [c for c in selection.columns
                      if c not in {"candidate", "kind", "fold", "validate_as_of", "rows"}]

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{target}") as run:
        mlflow.set_tags({"target": target, "chosen_model": chosen_name, **tags})
        mlflow.log_params(dict(params))
        for candidate in candidates:
            folds = selection.loc[selection["candidate"] == candidate.name]
            with mlflow.start_run(experiment_id=experiment_id, run_name=candidate.name, nested=True):
                mlflow.set_tags({"target": target, "kind": candidate.kind,
                                 "chosen": str(candidate.name == chosen_name).lower()})
                mlflow.log_params({"kind": candidate.kind, **{k: str(v) for k, v in candidate.settings.items()}})
                for _, fold in folds.iterrows():
                    mlflow.log_metrics(_numbers(fold[metric_columns].to_dict()), step=int(fold["fold"]))
                mlflow.log_metrics(_numbers(folds[metric_columns].mean().to_dict(), prefix="mean_"))
        mlflow.log_metrics(_numbers(metrics))
        for _, row in metrics_by_as_of.iterrows():
            mlflow.log_metrics(_numbers(row.drop("as_of").to_dict(), prefix=f"as_of_{row['as_of']}."))
        for folder, paths in artifacts.items():
            for path in paths:
                mlflow.log_artifact(str(path), artifact_path=folder)

        output = model.predict_proba(signature_row)[:, 1]
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(signature_row, output),
            input_example=signature_row,
            registered_model_name=model_name,
            pip_requirements=[*pip_requirements, f"cloudpickle=={cloudpickle.__version__}"],
            # skops (the safe default) cannot store the pandas tables inside lyskegle's fitted
            # StairwellRateEncoder, so the model is cloudpickled; load it only from a trusted store.
            serialization_format="cloudpickle",
            # The pipeline holds lyskegle's own encoder, so the package's code travels with the model.
            code_paths=[str(Path(__file__).resolve().parent)],
        )
        version = str(info.registered_model_version)
        run_id = run.info.run_id
    client.set_registered_model_alias(model_name, CANDIDATE_ALIAS, version)
    client.set_model_version_tag(model_name, version, "run_id", run_id)
    log.info("logged run %s; registered %s version %s as '%s'", run_id, model_name, version, CANDIDATE_ALIAS)
    return {"tracking_uri": uri, "experiment": experiment, "run_id": run_id,
            "model_name": model_name, "model_version": version}


def promote(model_name: str, version: str, alias: str, uri: str | None = None) -> None:
    """Give registered model version ``version`` of ``model_name`` the alias ``alias`` (e.g. ``champion``)."""
    MlflowClient(tracking_uri(uri)).set_registered_model_alias(model_name, alias, str(version))


def log_artifacts(run_id: str, paths: Iterable[str | Path], artifact_dir: str, uri: str | None = None) -> None:
    """Log files to an existing (possibly finished) run under ``artifact_dir``."""
    client = MlflowClient(tracking_uri(uri))
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_dir)


def log_audit(run_id: str, verdict: Mapping[str, Any], artifact_paths: Iterable[str | Path],
              uri: str | None = None) -> None:
    """Record an audit verdict on a training run.

    ``verdict`` has ``passed`` (bool) and ``reasons`` (a string, a list of strings, or a mapping of
    check name to such). Sets the tags
    ``audit.passed`` (``true``/``false``) and ``audit.reasons``, and logs the files under ``audit/``.
    """
    client = MlflowClient(tracking_uri(uri))
    text = _reason_text(verdict.get("reasons", []))
    client.set_tag(run_id, "audit.passed", str(bool(verdict["passed"])).lower())
    # MLflow tag values are limited in length; the full reasons live in the audit artifacts.
    client.set_tag(run_id, "audit.reasons", text[:4900])
    log_artifacts(run_id, artifact_paths, "audit", uri)


def _reason_text(reasons: Any) -> str:
    """One line from a string, a list of reasons, or a mapping of check name to reasons."""
    if isinstance(reasons, str):
        return reasons
    if isinstance(reasons, Mapping):
        return "; ".join(_reason_text(value) for value in reasons.values() if value)
    return "; ".join(_reason_text(value) for value in reasons)
