"""The model card for model reviewers: one markdown page per registered model.

Built from the stage outputs (model info, metrics with intervals, audit verdict, feature families,
data version), never from person-level rows. Figures that came through the report's small-cell
suppression stay suppressed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from lyskegle.report import FAMILY_NAMES, TARGET_TITLES

TARGET_DEFINITIONS = {
    "exit_26w": "A public-support spell that started at most `labels.cohort_weeks` weeks before the as-of "
                "date ends within `labels.horizon_weeks` (26) weeks of it (an exit into SU education counts "
                "when `labels.education_exit_is_success`).",
    "self_sufficient": "A resident aged `labels.self_sufficient_min_age`-`labels.self_sufficient_max_age` is "
                       "self-sufficient (no public-support code) in at least `labels.self_sufficient_weeks` "
                       "of the 52 weeks after the as-of date.",
}


def _number(value: Any, decimals: int = 3) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{decimals}f}"


def model_card(
    target: str,
    *,
    model_info: Mapping[str, Any],
    metrics: Mapping[str, Any],
    intervals: Mapping[str, Mapping[str, float]],
    audit: Mapping[str, Any] | None,
    families: pd.DataFrame,
    extract: Mapping[str, Any] | None,
    registry: Mapping[str, Any] | None,
    min_cell: int,
    interval_level: float,
    report_link: str = "index.html",
) -> str:
    """Markdown text of the model card for ``target``.

    ``intervals`` is :func:`lyskegle.report.metric_intervals`' output; ``families`` has ``family``,
    ``importance``, ``interval_low``, ``interval_high``; ``model_info`` and ``metrics`` are the train
    stage's JSON; ``audit`` is ``audit.json`` (or None when the audit did not run); ``extract`` is
    ``extract.json`` (the data version); ``registry`` is ``registry.json`` (or None).
    """
    chosen = model_info.get("chosen", {})
    level = f"{interval_level:.0%}"
    lines = [
        f"# Model card: {target}",
        "",
        f"*{TARGET_TITLES.get(target, target)}* - analyst report: [{report_link}]({report_link})",
        "",
        "## Model",
        f"- Model: `{chosen.get('name', 'unknown')}` ({chosen.get('kind', 'unknown')}), "
        f"calibration: {model_info.get('calibration', 'unknown')}",
    ]
    if registry:
        lines.append(f"- Registered as `{registry.get('model_name')}` version {registry.get('model_version')} "
                     f"(MLflow run `{registry.get('run_id')}`, experiment `{registry.get('experiment')}`)")
    lines += [
        "",
        "## Intended use",
        "- A **prioritisation aid** for municipal efforts: which groups, stairwells and areas to look at "
        "first, and which residents a caseworker might contact earlier.",
        "- Reports show aggregates only; every figure covers at least "
        f"{min_cell} persons (`privacy.min_cell`).",
        "",
        "## Misuse (out of scope)",
        "- Any **automatic decision** about a person (benefits, sanctions, control, child protection).",
        "- Use on real data **without a specific legal basis and a data protection impact assessment**; "
        "consent is not a valid basis for profiling job seekers (Danish DPA).",
        "- Reading a stairwell, group or area result as a cause, or naming areas with stigmatising labels.",
        "",
        "## Target",
        f"- `{target}`: {TARGET_DEFINITIONS.get(target, 'see params.yaml')}",
        "",
        "## Data and period",
    ]
    if extract:
        kind = "synthetic extract (generated, no real persons)" if extract.get("synthetic") else "register extract"
        lines.append(f"- Source: {kind}; DREAM weeks {extract.get('first_week')}-{extract.get('last_week')} (week index)")
    lines += [
        f"- Training as-of dates: {', '.join(str(d) for d in model_info.get('train_as_of', [])) or 'unknown'}",
        f"- Test as-of dates: {', '.join(str(d) for d in model_info.get('test_as_of', [])) or 'unknown'}",
        f"- Rows: {_rows(metrics.get('rows'), min_cell)}",
        "",
        f"## Metrics on the test period ({level} bootstrap intervals)",
        "| metric | value | interval |",
        "|---|---|---|",
    ]
    for name, label in (("roc_auc", "ROC AUC"), ("average_precision", "Average precision")):
        found = intervals.get(name, {})
        lines.append(f"| {label} | {_number(found.get('value'))} | {_number(found.get('low'))} - {_number(found.get('high'))} |")
    for key in sorted(metrics):
        value = metrics[key]
        if key.startswith(("precision_at_", "recall_at_", "baseline_roc_auc", "baseline_average_precision", "brier")) \
                and isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"| {key} | {_number(value)} | |")
    lines += ["", "## Fairness"]
    if audit is None:
        lines.append("- The audit has not run for this model.")
    else:
        lines.append(f"- Verdict: **{'passed' if audit.get('passed') else 'not passed'}**")
        lines += [f"- {reason}" for reason in audit.get("reasons", [])]
        lines += [f"- Warning: {warning}" for warning in audit.get("warnings", [])]
    lines += [
        "",
        "## Privacy checks",
        "- Person keys are keyed pseudonyms (HMAC) from ingest on; no CPR number or name in any output.",
        f"- Every table, rate, chart point and subgroup shown covers at least {min_cell} persons; smaller cells "
        "are suppressed, with secondary suppression where a total is shown.",
        "- No person-level rows are logged to MLflow (no input examples from real rows).",
        "",
        f"## Feature families (grouped permutation importance, {level} intervals)",
        "| family | importance | interval |",
        "|---|---|---|",
    ]
    for row in families.itertuples(index=False):
        lines.append(f"| {row.family} ({FAMILY_NAMES.get(row.family, row.family)}) | {_number(row.importance, 4)} | "
                     f"{_number(row.interval_low, 4)} - {_number(row.interval_high, 4)} |")
    inputs = model_info.get("inputs", {})
    lines += [
        "",
        f"- Inputs: {len(inputs.get('numeric', []))} numeric, {len(inputs.get('categorical', []))} categorical"
        f"{', stairwell id (encoded on training rows only)' if inputs.get('stairwell') else ''}.",
        "",
        "## Known limits",
        "- Associations in register data, not effects: a high importance or a low stairwell ratio says where to look, not why.",
        "- The test period is the last as-of dates; the world after it (rules, labour market) may differ.",
        "- Stairwell effects are estimated against a model without stairwell features, fitted on the training period; "
        "they inherit that model's errors, and small stairwells are shrunk towards the mean.",
        "- Origin and citizenship enter the model only when `features.include_origin` is true; they are audit attributes either way.",
        "- On the synthetic extract the planted effects, not real-world patterns, drive every number.",
    ]
    return "\n".join(lines) + "\n"


def _rows(rows: Any, min_cell: int) -> str:
    if not isinstance(rows, Mapping):
        return "unknown"
    parts = [f"{key} {value}" for key, value in sorted(rows.items())
             if isinstance(value, (int, float)) and (value == 0 or value >= min_cell)]
    return ", ".join(parts) or "unknown"

