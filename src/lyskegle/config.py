"""Typed parameters: one pydantic model per ``params.yaml`` section.

Every model forbids unknown keys, so a misspelt key fails loudly with its name. A stage loads only
the sections it declares in ``dvc.yaml`` with :func:`load_section`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

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
    bad_stairwells_per_area: int = Field(3, ge=0, le=50)
    bad_stairwell_log_odds: float = Field(-1.6, ge=-5, le=0)
    origin_log_odds: float = Field(-0.35, ge=-5, le=5)
    household_log_odds: float = Field(1.2, ge=0, le=5)
    family_log_odds: float = Field(0.6, ge=0, le=5)
    coworkers_log_odds: float = Field(0.8, ge=0, le=5)
    classmates_log_odds: float = Field(0.6, ge=0, le=5)
    subgroup_persons: int = Field(30, ge=0, le=10_000)
    min_subgroup_persons: int = Field(10, ge=0, le=10_000)
    subgroup_log_odds: float = Field(-2.0, ge=-6, le=0)
    dream_chunk_persons: int = Field(200_000, ge=1_000, le=2_000_000)

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
    threads: int = Field(1, ge=1, le=64)  # as-of dates labelled at a time; not a label setting

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
    layers: list[Literal["household", "family", "stairwell", "coworkers", "classmates"]] = Field(
        ["household", "family", "stairwell", "coworkers", "classmates"], min_length=1
    )
    # Largest group formed pairwise (classes, children of one parent); workplaces never are.
    max_group_size: int = Field(5000, ge=2)
    support_window_weeks: int = Field(52, ge=1, le=260)
    threads: int = Field(1, ge=1, le=64)

    @field_validator("layers")
    @classmethod
    def _distinct_layers(cls, layers: list[str]) -> list[str]:
        if len(set(layers)) != len(layers):
            raise ValueError("network.layers names a layer twice")
        return layers


class FeatureParams(Section):
    min_group_persons: int = Field(5, ge=1)
    include_origin: bool = False
    support_windows_weeks: list[int] = Field([13, 52, 156], min_length=1)
    employment_windows_months: list[int] = Field([12, 36], min_length=1)
    moves_years: int = Field(3, ge=1, le=20)
    working_age_min: int = Field(18, ge=15, le=100)
    working_age_max: int = Field(64, ge=15, le=100)
    turnover_days: int = Field(365, ge=1, le=3650)
    encoder_prior_weight: float = Field(20.0, ge=0)
    threads: int = Field(1, ge=1, le=64)

    @field_validator("support_windows_weeks", "employment_windows_months")
    @classmethod
    def _positive_windows(cls, windows: list[int]) -> list[int]:
        if any(w < 1 for w in windows) or len(set(windows)) != len(windows):
            raise ValueError("windows must be distinct positive numbers")
        return windows

    @model_validator(mode="after")
    def _working_ages_in_order(self) -> "FeatureParams":
        if self.working_age_min > self.working_age_max:
            raise ValueError("features.working_age_min is above working_age_max")
        return self


def _as_grid(value: Any) -> Any:
    """A single value is a grid of one, so ``-S train.logistic.C=0.5`` works as well as a list."""
    return value if isinstance(value, (list, tuple)) else [value]


PositiveFloats = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]


class LogisticParams(Section):
    """Grid for the scaled logistic regression: every combination of the listed values is a candidate."""

    C: PositiveFloats = [1.0]
    max_iter: int = Field(1000, ge=10, le=100_000)

    @field_validator("C", mode="before")
    @classmethod
    def _grid(cls, value: Any) -> Any:
        return _as_grid(value)


class GradientBoostingParams(Section):
    """Grid for HistGradientBoostingClassifier: every combination of the listed values is a candidate."""

    learning_rate: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)] = [0.15]
    max_iter: Annotated[list[Annotated[int, Field(ge=1, le=10_000)]], Field(min_length=1)] = [300]
    max_leaf_nodes: Annotated[list[Annotated[int, Field(ge=2, le=4096)]], Field(min_length=1)] = [31]
    min_samples_leaf: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [40]
    l2_regularization: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] = [0.0]

    @field_validator("*", mode="before")
    @classmethod
    def _grid(cls, value: Any) -> Any:
        return _as_grid(value)


class TrainParams(Section):
    targets: list[Literal["exit_26w", "self_sufficient"]] = Field(["exit_26w", "self_sufficient"], min_length=1)
    test_as_of_count: int = Field(2, ge=1)
    gap_weeks: int = Field(52, ge=0, le=520)
    selection_folds: int = Field(3, ge=1, le=20)
    models: list[Literal["logistic", "hist_gradient_boosting"]] = Field(
        ["logistic", "hist_gradient_boosting"], min_length=1
    )
    selection_metric: Literal["roc_auc", "average_precision", "brier", "log_loss"] = "average_precision"
    baseline_feature: str = "support_weeks_52w"
    calibration: Literal["isotonic", "sigmoid", "none"] = "isotonic"
    top_k_percent: list[Annotated[float, Field(gt=0, le=100)]] = Field([5, 10, 20], min_length=1)
    max_fit_rows: int = Field(200_000, ge=1_000)
    calibration_bins: int = Field(10, ge=2, le=100)
    curve_points: int = Field(200, ge=10, le=10_000)
    importance_rows: int = Field(20_000, ge=100)
    importance_repeats: int = Field(3, ge=1, le=50)
    threads: int = Field(1, ge=1, le=256)
    random_state: int = Field(2015, ge=0)
    logistic: LogisticParams = LogisticParams()
    hist_gradient_boosting: GradientBoostingParams = GradientBoostingParams()

    @field_validator("top_k_percent")
    @classmethod
    def _distinct_k(cls, values: list[float]) -> list[float]:
        if len(set(values)) != len(values):
            raise ValueError("train.top_k_percent must not repeat a value")
        return sorted(values)


AuditAttribute = Literal["sex", "age_band", "origin_group", "area", "sex_x_origin_group", "origin_group_x_area"]


class AuditParams(Section):
    """The fairness and privacy gate (see lyskegle.audit for the pass/fail rule)."""

    top_k_percent: float = Field(10, gt=0, le=100)
    # whom the caseworker's list holds: the lowest predicted chance of the good outcome (those to
    # prioritise efforts for), or the highest
    flag: Literal["lowest_chance", "highest_chance"] = "lowest_chance"
    ratio_bounds: tuple[float, float] = (0.8, 1.25)
    # attribute -> reference group; an attribute not named here compares with its largest group
    reference_groups: dict[AuditAttribute, str] = {}
    min_expected_events: float = Field(10, ge=1, le=10_000)
    bootstrap_samples: int = Field(200, ge=0, le=10_000)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    max_train_test_auc_gap: float = Field(0.05, ge=0, le=1)
    fail_on_violation: bool = False
    compare_with_origin: bool = True
    random_state: int = Field(2015, ge=0)

    @field_validator("ratio_bounds")
    @classmethod
    def _bounds_around_one(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not 0 < bounds[0] <= 1 <= bounds[1]:
            raise ValueError("audit.ratio_bounds must be [lower, upper] with 0 < lower <= 1 <= upper")
        return bounds


class ExpectedRateModelParams(Section):
    """The small model that predicts residents' rates without stairwell features."""

    max_iter: int = Field(200, ge=1, le=10_000)
    learning_rate: float = Field(0.1, gt=0, le=1)
    min_samples_leaf: int = Field(40, ge=1)
    max_fit_rows: int = Field(200_000, ge=1_000)


class InsightParams(Section):
    min_subgroup: int = Field(30, ge=1)
    threads: int = Field(1, ge=1, le=64)
    random_state: int = Field(2015, ge=0)
    interval_level: float = Field(0.95, gt=0.5, lt=1)
    importance_metric: Literal["roc_auc", "average_precision"] = "roc_auc"
    importance_rows: int = Field(20_000, ge=100)
    importance_repeats: int = Field(10, ge=2, le=200)
    expected_model: ExpectedRateModelParams = ExpectedRateModelParams()
    subgroup_max_conditions: int = Field(3, ge=1, le=5)
    subgroup_beam_width: int = Field(10, ge=1, le=200)
    subgroup_results: int = Field(10, ge=1, le=100)
    subgroup_top_citizenships: int = Field(8, ge=0, le=100)
    subgroup_attributes: list[
        Literal["age_band", "sex", "origin", "citizenship", "education", "area", "household", "support_last_year"]
    ] = Field(["age_band", "sex", "origin", "citizenship", "education", "area", "household", "support_last_year"], min_length=1)


class AreaParams(Section):
    """Thresholds of the official criteria for particularly vulnerable housing areas (as of 2015)."""

    outside_work_education_share: float = Field(0.40, ge=0, le=1)
    non_western_share: float = Field(0.50, ge=0, le=1)
    convicted_share: float = Field(0.027, ge=0, le=1)
    basic_education_share: float = Field(0.50, ge=0, le=1)
    income_ratio: float = Field(0.55, ge=0, le=10)
    criteria_needed: int = Field(3, ge=1, le=5)
    threads: int = Field(1, ge=1, le=64)  # years computed at a time; not a criterion


class ReportParams(Section):
    risk_bins: int = Field(20, ge=5, le=100)
    calibration_bins: int = Field(10, ge=2, le=50)
    precision_at_k_percent: list[Annotated[float, Field(gt=0, le=100)]] = Field([1, 2, 5, 10, 20, 30, 50], min_length=1)
    stairwells_shown: int = Field(20, ge=1, le=500)
    bootstrap_samples: int = Field(200, ge=0, le=10_000)
    random_state: int = Field(2015, ge=0)


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
    "areas": AreaParams,
    "report": ReportParams,
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
