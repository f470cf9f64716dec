"""Shared fixtures. The ingest fixtures read the tiny hand-made extract in tests/data/extract_tiny."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY_EXTRACT = TESTS / "data" / "extract_tiny"
BAD_EXTRACTS = TESTS / "data" / "bad_extracts"


def load_pipeline(name: str) -> ModuleType:
    """Import ``pipelines/<name>.py`` (the stage entry points are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", REPO / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ingest_stage() -> ModuleType:
    return load_pipeline("ingest")


@pytest.fixture
def tiny_extract(tmp_path: Path) -> Path:
    """A writable copy of the tiny valid extract (six persons, synthetic CPR numbers)."""
    folder = tmp_path / "extract"
    shutil.copytree(TINY_EXTRACT, folder)
    return folder


@pytest.fixture(scope="session")
def tiny_ingested(ingest_stage):
    """The tiny extract ingested once with the development key: (IngestResult, files read)."""
    return ingest_stage.ingest_folder(TINY_EXTRACT, env={})
