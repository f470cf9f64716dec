"""dvc.yaml against the code: every module a stage runs is one of its deps.

DVC re-runs a stage when one of its declared deps changes, and only then. A module that a stage
imports, directly or through another module, but does not declare can change without the stage
running again, and `dvc repro` then reports as up to date outputs that the code no longer gives.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "lyskegle"


def _stages() -> dict[str, dict]:
    """Each stage's ``cmd`` and ``deps`` (a foreach stage's template)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def _imported_modules(path: Path) -> set[str]:
    """Names of the lyskegle modules that ``path`` imports itself."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "lyskegle":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lyskegle."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("lyskegle.")}
    return {name for name in found if (PACKAGE / f"{name}.py").exists()}


def modules_run_by(entry_point: Path) -> set[str]:
    """Repository paths of every lyskegle module ``entry_point`` imports, directly or not."""
    pending, seen = list(_imported_modules(entry_point)), set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_imported_modules(PACKAGE / f"{name}.py") - seen)
    return {f"src/lyskegle/{name}.py" for name in seen}


def test_the_import_walk_follows_imports_through_other_modules(tmp_path):
    entry = tmp_path / "stage.py"
    entry.write_text("from lyskegle import labels\n")
    # labels imports ids itself; the entry point does not
    assert {"src/lyskegle/labels.py", "src/lyskegle/ids.py"} <= modules_run_by(entry)


def _entry_point(spec: dict) -> str:
    return next(word for word in spec["cmd"].split() if word.startswith("pipelines/"))


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_module_a_stage_runs_is_one_of_its_deps(stage):
    spec = _stages()[stage]
    entry = _entry_point(spec)
    deps = {dep if isinstance(dep, str) else next(iter(dep)) for dep in spec["deps"]}
    assert entry in deps
    missing = sorted(modules_run_by(REPO / entry) - deps)
    assert not missing, f"dvc.yaml: stage {stage} runs {missing} but does not list them as deps"


def test_every_stage_that_fits_or_scores_models_lets_waiting_openmp_threads_sleep():
    # OMP_WAIT_POLICY is read once, when scikit-learn loads libgomp: it has to be in the stage's
    # environment before Python starts (see the comment above the train stage in dvc.yaml)
    model_stages = {name: spec for name, spec in _stages().items()
                    if "src/lyskegle/models.py" in modules_run_by(REPO / _entry_point(spec))}
    assert {"train", "audit", "insights"} <= set(model_stages)
    spinning = [name for name, spec in model_stages.items() if spec["cmd"].split()[0] != "OMP_WAIT_POLICY=PASSIVE"]
    assert not spinning, f"dvc.yaml: stage(s) {spinning} fit or score models without OMP_WAIT_POLICY=PASSIVE"
