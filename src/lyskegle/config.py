"""Typed parameters: one pydantic model per ``params.yaml`` section.

Every model forbids unknown keys, so a misspelt key fails loudly with its name. A stage loads only
the sections it declares in ``dvc.yaml`` with :func:`load_section`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtractParams(Section):
    path: str | None = None


class SynthesizeParams(Section):
    seed: int = Field(2015, ge=0)
    persons: int = Field(50_000, ge=200, le=10_000_000)
    first_year: int = Field(2012, ge=2000, le=2030)
    last_year: int = Field(2024, ge=2000, le=2030)

    @model_validator(mode="after")
    def _years_in_order(self) -> "SynthesizeParams":
        if self.last_year - self.first_year < 2:
            raise ValueError("synthesize.last_year must be at least 2 years after first_year")
        return self


class IngestParams(Section):
    allow_development_key: bool = True


class PrivacyParams(Section):
    min_cell: int = Field(5, ge=3, le=100)


class LabelParams(Section):
    gap_weeks: int = Field(4, ge=1, le=52)
    horizon_weeks: int = Field(26, ge=1, le=104)
    cohort_weeks: int = Field(13, ge=1, le=52)
    min_age: int = Field(18, ge=15, le=70)
    max_age: int = Field(64, ge=15, le=100)
    education_exit_is_success: bool = True
    self_sufficient_min_age: int = Field(20, ge=15, le=100)
    self_sufficient_max_age: int = Field(64, ge=15, le=100)
    self_sufficient_weeks: int = Field(48, ge=1, le=52)
    as_of_dates: list[dt.date] = Field(min_length=2)

    @field_validator("as_of_dates")
    @classmethod
    def _mondays_in_order(cls, dates: list[dt.date]) -> list[dt.date]:
        for date in dates:
            if date.weekday() != 0:
                raise ValueError(f"as-of date {date} is not a Monday (weeks in DREAM start on Mondays)")
        if dates != sorted(set(dates)):
            raise ValueError("labels.as_of_dates must be distinct and in increasing order")
        return dates

    @model_validator(mode="after")
    def _ages_in_order(self) -> "LabelParams":
        if self.min_age > self.max_age or self.self_sufficient_min_age > self.self_sufficient_max_age:
            raise ValueError("labels: a minimum age is above its maximum age")
        return self


class NetworkParams(Section):
    layers: list[str] = ["household", "family", "stairwell", "coworkers", "classmates"]
    max_group_size: int = Field(5000, ge=2)
    support_window_weeks: int = Field(52, ge=1, le=260)


class FeatureParams(Section):
    min_group_persons: int = Field(5, ge=1)
    include_origin: bool = False


class LogisticParams(Section):
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=10)


class GradientBoostingParams(Section):
    learning_rate: float = Field(0.08, gt=0, le=1)
    max_iter: int = Field(300, ge=1)
    max_leaf_nodes: int = Field(31, ge=2)
    min_samples_leaf: int = Field(40, ge=1)
    l2_regularization: float = Field(0.0, ge=0)


class TrainParams(Section):
    targets: list[str] = ["exit_26w", "self_sufficient"]
    test_as_of_count: int = Field(2, ge=1)
    gap_weeks: int = Field(52, ge=0)
    models: list[str] = ["logistic", "hist_gradient_boosting"]
    selection_metric: str = "average_precision"
    calibration: str = "isotonic"
    top_k_percent: list[float] = [5, 10, 20]
    random_state: int = 2015
    logistic: LogisticParams = LogisticParams()
    hist_gradient_boosting: GradientBoostingParams = GradientBoostingParams()


class AuditParams(Section):
    top_k_percent: float = Field(10, gt=0, le=100)
    ratio_bounds: tuple[float, float] = (0.8, 1.25)
    reference_group: str = "largest"
    bootstrap_samples: int = Field(200, ge=0)
    max_train_test_auc_gap: float = Field(0.05, ge=0)
    fail_on_violation: bool = False
    compare_with_origin: bool = True
    random_state: int = 2015


class InsightParams(Section):
    min_subgroup: int = Field(30, ge=1)
    random_state: int = 2015


SECTIONS: dict[str, type[Section]] = {
    "extract": ExtractParams,
    "synthesize": SynthesizeParams,
    "ingest": IngestParams,
    "privacy": PrivacyParams,
    "labels": LabelParams,
    "network": NetworkParams,
    "features": FeatureParams,
    "train": TrainParams,
    "audit": AuditParams,
    "insights": InsightParams,
}


class ParamsError(ValueError):
    """A params file that cannot be used, with the section and key that are wrong."""


def parse_section(name: str, raw: Any) -> Section:
    """Validate one section's raw mapping; the error names ``section.key``."""
    model = SECTIONS[name]
    try:
        return model.model_validate(raw if raw is not None else {})
    except Exception as error:  # pydantic.ValidationError, re-raised with the section's name
        details = getattr(error, "errors", None)
        if callable(details):
            lines = [
                f"{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in details()
            ]
            raise ParamsError("invalid params:\n  " + "\n  ".join(lines)) from None
        raise


def load_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a plain mapping."""
    text = Path(path).read_text(encoding="utf-8")
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return loaded


def load_section(path: str | Path, name: str) -> Section:
    """Load and validate one section of a params file."""
    raw = load_params(path)
    if name not in raw:
        raise ParamsError(f"{path}: section '{name}' is missing")
    return parse_section(name, raw[name])


def validate_all(raw: dict[str, Any]) -> dict[str, Section]:
    """Validate every known section; an unknown top-level section is an error too."""
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"unknown params section(s): {', '.join(unknown)}")
    return {name: parse_section(name, value) for name, value in raw.items()}
