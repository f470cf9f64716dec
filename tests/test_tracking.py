"""MLflow tracking: provenance helpers, the train stage against a local store and against a real server."""

import datetime as dt
import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lyskegle import io, tracking

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines"))
import train as train_stage  # noqa: E402  (the stage's entry point, run in-process)

AS_OF = [dt.date(2016, 1, 4) + dt.timedelta(weeks=52 * i) for i in range(8)]


def write_inputs(folder: Path, persons: int = 800, seed: int = 7) -> dict[str, Path]:
    """A small features / families / cohorts trio in the stages' shape, with a planted signal.

    Both labels rise with ``coworkers_employed_share`` and fall with weeks on support; residents of
    stairwells s0-s3 rarely exit. About 3 % of cohort rows are censored.
    """
    rng = np.random.default_rng(seed)
    frames, cohorts = [], []
    for as_of in AS_OF:
        ids = [f"p{i:05d}" for i in range(persons)]
        stairwell = rng.integers(0, 40, persons)
        support = rng.integers(0, 53, persons).astype("float64")
        share = rng.random(persons)
        frames.append(pd.DataFrame({
            "as_of": as_of, "person_id": ids,
            "support_weeks_52w": support,
            "support_weeks_13w": np.minimum(support, rng.integers(0, 14, persons)),
            "age": rng.integers(20, 65, persons).astype("float64"),
            "coworkers_employed_share": np.where(rng.random(persons) < 0.1, np.nan, share),
            "stairwell_id": [f"s{s}" for s in stairwell], "building_id": [f"b{s // 4}" for s in stairwell],
            "area": "A1",
            "audit_sex": rng.choice(["man", "woman"], persons), "audit_age_band": "30-39",
            "audit_origin_group": rng.choice(["danish", "non_western"], persons), "audit_area": "A1",
        }))
        for target, shift in (("exit_26w", 0.0), ("self_sufficient", -0.5)):
            logit = shift + 3.0 * (share - 0.5) - 0.04 * (support - 26) - 2.0 * (stairwell < 4)
            label = (rng.random(persons) < 1 / (1 + np.exp(-logit))).astype("float64")
            censored = rng.random(persons) < 0.03
            cohorts.append(pd.DataFrame({
                "target": target, "as_of": as_of, "person_id": ids,
                "label": pd.array(np.where(censored, np.nan, label), dtype="Float64").astype("Int8"),
                "censored": censored,
            }))
    features = pd.concat(frames, ignore_index=True)
    families = {"support_weeks_52w": "history", "support_weeks_13w": "history", "age": "demographic",
                "coworkers_employed_share": "coworkers", "stairwell_id": "stairwell", "building_id": "area",
                "area": "area", "audit_sex": "audit", "audit_age_band": "audit", "audit_origin_group": "audit",
                "audit_area": "audit"}
    paths = {"features": folder / "features.parquet", "families": folder / "feature_families.json",
             "cohorts": folder / "cohorts.parquet"}
    io.write_parquet(features, paths["features"])
    io.write_json(families, paths["families"])
    io.write_parquet(pd.concat(cohorts, ignore_index=True), paths["cohorts"])
    return paths


def write_params(folder: Path) -> Path:
    """The project's params with a small, fast grid."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["hist_gradient_boosting"]["max_iter"] = [40]
    raw["train"]["importance_rows"] = 1000
    raw["train"]["importance_repeats"] = 1
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_stage(tmp_path: Path, target: str = "exit_26w") -> dict:
    paths = write_inputs(tmp_path / "in")
    params = write_params(tmp_path)
    return train_stage.main([
        "--params", str(params), "--target", target, "--features", str(paths["features"]),
        "--families", str(paths["families"]), "--cohorts", str(paths["cohorts"]),
        "--model-dir", str(tmp_path / "models" / target), "--reports", str(tmp_path / "reports" / target),
    ])


def test_file_md5_is_the_md5_of_the_bytes(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")
    assert tracking.file_md5(path, chunk_bytes=2) == "900150983cd24fb0d6963f7d28e17f72"
    assert tracking.data_version({"cohorts": path}) == {"data.cohorts_md5": hashlib.md5(b"abc").hexdigest()}


def test_flatten_params_joins_nested_keys_with_dots():
    flat = tracking.flatten_params({"train": {"logistic": {"C": [1.0]}, "gap_weeks": 52}, "privacy": {"min_cell": 5}})
    assert flat == {"train.logistic.C": "[1.0]", "train.gap_weeks": "52", "privacy.min_cell": "5"}


def test_git_commit_outside_a_checkout_is_unknown(tmp_path):
    assert tracking.git_commit(tmp_path) == "unknown"


def test_audit_reasons_become_one_line_whatever_their_shape():
    assert tracking._reason_text({"fairness": ["ratio 0.7 < 0.8"], "privacy": [], "gap": "auc gap 0.09"}) == (
        "ratio 0.7 < 0.8; auc gap 0.09")
    assert tracking._reason_text(["a", "b"]) == "a; b"


def test_tracking_uri_prefers_the_environment(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking.tracking_uri() == "http://127.0.0.1:1"


@pytest.mark.slow
def test_train_stage_logs_registers_and_takes_an_audit_verdict(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store lands in the working folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry = run_stage(tmp_path)

    assert registry == io.read_json(tmp_path / "models" / "exit_26w" / "registry.json")
    client = MlflowClient(registry["tracking_uri"])
    run = client.get_run(registry["run_id"])
    assert run.data.params["train.gap_weeks"] == "52"
    assert run.data.tags["data.cohorts_md5"] == tracking.file_md5(tmp_path / "in" / "cohorts.parquet")
    assert run.data.metrics["roc_auc"] > run.data.metrics["baseline_roc_auc"]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == 2  # one nested run per grid candidate
    version = client.get_model_version_by_alias("lyskegle-exit_26w", "candidate")
    assert str(version.version) == registry["model_version"]

    predictions = io.read_parquet(tmp_path / "models" / "exit_26w" / "test_predictions.parquet")
    assert set(pd.to_datetime(predictions["as_of"]).dt.date) == set(AS_OF[-2:])
    assert {"person_id", "label", "score", "audit_sex", "audit_area"} <= set(predictions.columns)
    metrics = io.read_json(tmp_path / "reports" / "exit_26w" / "metrics.json")
    assert metrics["rows"]["censored"] > 0
    assert metrics["rows"]["test_rows"] == len(predictions)

    report = tmp_path / "verdict.json"
    report.write_text(json.dumps({"passed": False}))
    tracking.log_audit(registry["run_id"], {"passed": False, "reasons": ["ratio out of bounds"]}, [report])
    tagged = client.get_run(registry["run_id"]).data.tags
    assert (tagged["audit.passed"], tagged["audit.reasons"]) == ("false", "ratio out of bounds")
    assert [a.path for a in client.list_artifacts(registry["run_id"], "audit")] == ["audit/verdict.json"]
    tracking.promote(registry["model_name"], registry["model_version"], "champion")
    assert str(client.get_model_version_by_alias("lyskegle-exit_26w", "champion").version) == registry["model_version"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on loopback over a SQLite store in tmp_path; yields its URL."""
    port = _free_port()
    executable = Path(sys.executable).parent / "mlflow"
    log_file = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [str(executable), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()


def _get(url: str, path: str, **query) -> dict:
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(query)}", timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.server
def test_train_stage_against_a_real_mlflow_server(tmp_path, monkeypatch, mlflow_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    registry = run_stage(tmp_path, target="self_sufficient")
    assert registry["tracking_uri"] == mlflow_server

    experiment = _get(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="lyskegle")
    runs = _post(mlflow_server, "/api/2.0/mlflow/runs/search", {
        "experiment_ids": [experiment["experiment"]["experiment_id"]],
        "filter": "tags.target = 'self_sufficient' and attributes.run_name = 'train-self_sufficient'"})["runs"]
    assert [r["info"]["run_id"] for r in runs] == [registry["run_id"]]
    metrics = {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]}
    assert metrics["roc_auc"] > metrics["baseline_roc_auc"] + 0.05
    assert {"average_precision", "brier", "precision_at_10pct"} <= set(metrics)

    model = _get(mlflow_server, "/api/2.0/mlflow/registered-models/get", name="lyskegle-self_sufficient")
    assert model["registered_model"]["name"] == "lyskegle-self_sufficient"
    alias = _get(mlflow_server, "/api/2.0/mlflow/registered-models/alias", name="lyskegle-self_sufficient",
                 alias="candidate")
    assert alias["model_version"]["version"] == registry["model_version"]
    assert alias["model_version"]["run_id"] == registry["run_id"]
