"""The Danish analyst report: aggregated tables, matplotlib figures and HTML pages.

Everything here is pure: frames and dicts in, strings out. Figures are PNG images embedded in the
page as ``data:`` URIs and the stylesheet is inline, so a page opens offline and makes no request.
Every table and figure is built from aggregates that passed
:func:`lyskegle.privacy.suppress_small_cells`; person-level test predictions only enter
:func:`risk_distribution`, :func:`calibration_bins`, :func:`precision_at_k` and
:func:`metric_intervals`, which return aggregates.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from sklearn.metrics import average_precision_score, roc_auc_score

from lyskegle.evaluation import flagged_count, precision_recall_at_top
from lyskegle.privacy import suppress_small_cells

TEMPLATES = Path(__file__).with_name("templates")

TARGET_TITLES = {
    "exit_26w": "Afgang fra offentlig forsørgelse inden for 26 uger",
    "self_sufficient": "Selvforsørgelse det kommende år",
}
TARGET_QUESTIONS = {
    "exit_26w": "Hvor sandsynligt er det, at et nystartet forløb på offentlig forsørgelse slutter inden for et halvt år?",
    "self_sufficient": "Hvor sandsynligt er det, at en borger er selvforsørgende i mindst 48 af de næste 52 uger?",
}
FAMILY_NAMES = {
    "history": "Forløbshistorik", "demographic": "Demografi", "household": "Husstand", "family": "Familie",
    "stairwell": "Opgang", "coworkers": "Kolleger", "classmates": "Klassekammerater", "area": "Boligområde",
    "origin": "Herkomst", "other": "Andet",
}
CRITERION_NAMES = {
    "outside_work_education_2y": "18-64-årige uden for arbejde og uddannelse (2-års gns.)",
    "non_western_share": "Indvandrere og efterkommere fra ikke-vestlige lande",
    "convicted_share_2y": "Dømte for straffelov, våbenlov eller lov om euforiserende stoffer, 18+ (2-års gns.)",
    "basic_education_share": "30-59-årige med alene grundskoleuddannelse",
    "income_ratio": "Gns. bruttoindkomst for 15-64-årige (ekskl. under uddannelse) i forhold til regionen",
}
ATTRIBUTE_NAMES = {
    "sex": "Køn", "age_band": "Aldersgruppe", "origin_group": "Herkomst", "area": "Boligområde",
    "sex_x_origin_group": "Køn og herkomst", "origin_group_x_area": "Herkomst og boligområde",
}
GROUP_NAMES = {"danish": "dansk", "western": "vestlig", "non_western": "ikke-vestlig", "1": "mand", "2": "kvinde",
               "man": "mand", "woman": "kvinde", "outside housing areas": "uden for boligområder"}
STATUS_NAMES = {"reference": "reference", "pass": "inden for grænserne", "fail": "uden for grænserne",
                "uncertain": "usikker", "too small": "for lille gruppe", "suppressed": "skjult"}
SUPPRESSED_TEXT = "–"

_COLOURS = ["#1f5f8b", "#c8553d", "#588b8b", "#f2a541", "#6c4f77", "#8c8c8c", "#3b8b3b", "#b04d8f"]


@dataclass(frozen=True)
class ReportSettings:
    min_cell: int
    risk_bins: int = 20
    calibration_bins: int = 10
    precision_at_k_percent: Sequence[float] = (1, 2, 5, 10, 20, 30, 50)
    stairwells_shown: int = 20
    bootstrap_samples: int = 200
    interval_level: float = 0.95
    random_state: int = 0


# --------------------------------------------------------------------------------------------------
# Aggregates of the test predictions
# --------------------------------------------------------------------------------------------------

def risk_distribution(scores: np.ndarray, bins: int, min_cell: int) -> pd.DataFrame:
    """Histogram of scores on ``bins`` equal-width bins of [0, 1]: ``bin_low``, ``bin_high``,
    ``persons`` (person x as-of rows), small bins suppressed (the total is shown, so with
    secondary suppression)."""
    counts, edges = np.histogram(np.clip(np.asarray(scores, dtype="float64"), 0, 1), bins=bins, range=(0.0, 1.0))
    table = pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "persons": counts})
    return suppress_small_cells(table, "persons", min_cell, total_groups=())


def calibration_bins(labels: np.ndarray, scores: np.ndarray, bins: int, min_cell: int) -> pd.DataFrame:
    """Mean score against observed rate in score quantile bins: ``mean_score``, ``observed_rate``,
    ``persons``; bins under ``min_cell`` persons suppressed."""
    frame = pd.DataFrame({"label": np.asarray(labels, dtype="float64"), "score": np.asarray(scores, dtype="float64")})
    frame["bin"] = pd.qcut(frame["score"].rank(method="first"), q=min(bins, len(frame)), labels=False) if len(frame) else []
    grouped = frame.groupby("bin")
    table = pd.DataFrame({
        "mean_score": grouped["score"].mean(), "observed_rate": grouped["label"].mean(), "persons": grouped.size(),
    }).reset_index(drop=True)
    return suppress_small_cells(table, "persons", min_cell, ["mean_score", "observed_rate"], total_groups=None)


def precision_at_k(labels: np.ndarray, scores: np.ndarray, percents: Sequence[float], min_cell: int) -> pd.DataFrame:
    """Precision and recall when the top ``k`` % of scores are prioritised: ``k_percent``,
    ``flagged``, ``precision``, ``recall``; a k that flags under ``min_cell`` persons is suppressed."""
    rows = []
    for percent in percents:
        precision, recall = precision_recall_at_top(labels, scores, percent)
        rows.append({"k_percent": float(percent), "flagged": flagged_count(len(labels), percent),
                     "precision": precision, "recall": recall})
    table = pd.DataFrame(rows)
    return suppress_small_cells(table, "flagged", min_cell, ["precision", "recall"], total_groups=None)


def metric_intervals(labels: np.ndarray, scores: np.ndarray, *, samples: int, level: float, random_state: int) -> dict[str, dict[str, float]]:
    """ROC AUC and average precision with percentile bootstrap intervals over rows:
    ``{metric: {value, low, high}}``; ``low``/``high`` are NaN with no bootstrap samples.

    Rows with the same score and label are interchangeable, so the rows are kept as cells (each
    distinct score and label with its count) and a bootstrap sample of all rows is drawn as
    multinomial counts over the cells, the same distribution as drawing rows. Each metric is
    computed on the cells with their counts as weights, which equals computing it on the rows.
    A calibrated model has few distinct scores: at a million rows this is what keeps the page fast.
    """
    labels = np.asarray(labels, dtype="int64")
    scores = np.asarray(scores, dtype="float64")
    metrics = {"roc_auc": roc_auc_score, "average_precision": average_precision_score}
    if labels.min(initial=0) == labels.max(initial=0):
        return {name: {"value": float("nan"), "low": float("nan"), "high": float("nan")} for name in metrics}
    cell_scores, cell_labels, counts = score_cells(labels, scores)
    rng = np.random.default_rng(random_state)
    draws = [rng.multinomial(len(labels), counts / len(labels)) for _ in range(samples)]
    draws = [d for d in draws if 0 < d[cell_labels == 1].sum() < len(labels)]  # both classes drawn
    out = {}
    for name, metric in metrics.items():
        values = [_weighted(metric, cell_labels, cell_scores, weights) for weights in draws]
        low, high = (np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if values else (np.nan, np.nan))
        out[name] = {"value": _weighted(metric, cell_labels, cell_scores, counts), "low": float(low), "high": float(high)}
    return out


def score_cells(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (score, label) pairs of the rows and how many rows hold each: ``(scores, labels, counts)``."""
    distinct, inverse = np.unique(scores, return_inverse=True)
    counts = np.bincount(inverse * 2 + labels, minlength=2 * len(distinct))
    present = np.flatnonzero(counts)
    return distinct[present // 2], present % 2, counts[present]


def _weighted(metric: Any, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    drawn = weights > 0
    return float(metric(labels[drawn], scores[drawn], sample_weight=weights[drawn]))


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------

def png_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (no file, no request)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def _no_data(axes: Any, text: str = "Ingen tal kan vises (for få personer)") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#555555")
    axes.set_xticks([])
    axes.set_yticks([])


def plot_risk_distribution(table: pd.DataFrame, title: str) -> str:
    figure, axes = _figure()
    shown = table[~table["suppressed"]]
    if shown.empty:
        _no_data(axes)
    else:
        axes.bar(shown["bin_low"], shown["persons"].astype(float), width=shown["bin_high"] - shown["bin_low"],
                 align="edge", color=_COLOURS[0], edgecolor="white")
        axes.set_xlim(0, 1)
    axes.set_title(title)
    axes.set_xlabel("Beregnet sandsynlighed")
    axes.set_ylabel("Antal personer")
    return png_data_uri(figure)


def plot_calibration(table: pd.DataFrame) -> str:
    figure, axes = _figure(4.8, 4.2)
    shown = table[~table["suppressed"]]
    axes.plot([0, 1], [0, 1], linestyle="--", color="#888888", label="Perfekt kalibrering")
    if not shown.empty:
        axes.plot(shown["mean_score"].astype(float), shown["observed_rate"].astype(float), marker="o",
                  color=_COLOURS[0], label="Model")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title("Kalibrering: beregnet mod faktisk andel")
    axes.set_xlabel("Gennemsnitlig beregnet sandsynlighed")
    axes.set_ylabel("Faktisk andel")
    axes.legend(loc="upper left", frameon=False)
    return png_data_uri(figure)


def plot_precision_at_k(table: pd.DataFrame, base_rate: float) -> str:
    figure, axes = _figure(5.6, 3.6)
    shown = table[~table["suppressed"]]
    if shown.empty:
        _no_data(axes)
    else:
        axes.plot(shown["k_percent"], shown["precision"].astype(float), marker="o", color=_COLOURS[0], label="Præcision")
        axes.plot(shown["k_percent"], shown["recall"].astype(float), marker="s", color=_COLOURS[1], label="Andel fundet")
        if np.isfinite(base_rate):
            axes.axhline(base_rate, linestyle="--", color="#888888", label="Andel i hele gruppen")
        axes.set_ylim(0, 1)
        axes.legend(frameon=False)
    axes.set_title("Præcision ved prioritering af de top k %")
    axes.set_xlabel("Prioriteret andel af borgerne (%)")
    axes.set_ylabel("Andel")
    return png_data_uri(figure)


def plot_families(table: pd.DataFrame, metric_name: str) -> str:
    figure, axes = _figure(6.0, 0.4 * max(len(table), 3) + 1.2)
    if table.empty:
        _no_data(axes, "Ingen vigtighed beregnet")
    else:
        ordered = table.sort_values("importance")
        names = [FAMILY_NAMES.get(f, f) for f in ordered["family"]]
        values = ordered["importance"].to_numpy(float)
        errors = np.vstack([values - ordered["interval_low"].to_numpy(float), ordered["interval_high"].to_numpy(float) - values])
        axes.barh(names, values, xerr=np.clip(errors, 0, None), color=_COLOURS[2], capsize=3)
        axes.axvline(0, color="#444444", linewidth=0.8)
    axes.set_title("Hvilke slags oplysninger betyder mest?")
    axes.set_xlabel(f"Fald i {metric_name} når gruppen blandes (højere = vigtigere)")
    return png_data_uri(figure)


def plot_stairwells(table: pd.DataFrame, shown: int) -> str:
    ranked = table.dropna(subset=["effect"]).sort_values("rank")
    picked = ranked if len(ranked) <= 2 * shown else pd.concat([ranked.head(shown), ranked.tail(shown)])
    figure, axes = _figure(6.4, 0.25 * max(len(picked), 4) + 1.4)
    if picked.empty:
        _no_data(axes)
    else:
        picked = picked.iloc[::-1]
        positions = np.arange(len(picked))
        effect = picked["effect"].to_numpy(float)
        errors = np.vstack([effect - picked["interval_low"].to_numpy(float), picked["interval_high"].to_numpy(float) - effect])
        colours = [_COLOURS[1] if high < 1 else (_COLOURS[0] if low > 1 else "#777777")
                   for low, high in zip(picked["interval_low"], picked["interval_high"])]
        axes.errorbar(effect, positions, xerr=np.clip(errors, 0, None), fmt="none", ecolor="#999999", capsize=2)
        axes.scatter(effect, positions, c=colours, zorder=3, s=18)
        axes.set_yticks(positions, [f"Opgang {s}" for s in picked["stairwell_id"]], fontsize=7)
        axes.axvline(1, color="#444444", linestyle="--", linewidth=0.8)
    axes.set_title("Opgange: faktisk mod forventet (1 = som forventet ud fra beboerne)")
    axes.set_xlabel("Forhold mellem faktisk og forventet andel (med 95 %-interval)")
    return png_data_uri(figure)


def plot_fairness(table: pd.DataFrame) -> str:
    shown = table[table["selection_rate"].notna()] if not table.empty else table
    figure, axes = _figure(6.4, 0.3 * max(len(shown), 4) + 1.4)
    if shown.empty:
        _no_data(axes)
    else:
        shown = shown.iloc[::-1]
        labels = [f"{attribute_name(a)}: {group_name(g)}" for a, g in zip(shown["attribute"], shown["group"])]
        positions = np.arange(len(shown))
        axes.barh(positions - 0.2, shown["selection_rate"].astype(float), height=0.4, color=_COLOURS[0], label="Andel prioriteret")
        if "tpr" in shown.columns:
            axes.barh(positions + 0.2, shown["tpr"].astype(float).fillna(0), height=0.4, color=_COLOURS[3], label="Andel af de relevante, der prioriteres")
        axes.set_yticks(positions, labels, fontsize=8)
        axes.set_xlim(0, 1)
        axes.legend(frameon=False, fontsize=8, loc="lower right")
    axes.set_title("Retfærdighed: prioritering efter gruppe")
    axes.set_xlabel("Andel")
    return png_data_uri(figure)


def plot_area_criteria(areas: pd.DataFrame, thresholds: Mapping[str, float]) -> str:
    criteria = [c for c in CRITERION_NAMES if c in areas.columns]
    figure = Figure(figsize=(9.6, 2.6 * math.ceil(len(criteria) / 2)))
    for index, criterion in enumerate(criteria):
        axes = figure.add_subplot(math.ceil(len(criteria) / 2), 2, index + 1)
        for colour, (area, rows) in zip(_COLOURS * 10, areas.groupby("area", sort=True)):
            values = pd.to_numeric(rows[criterion], errors="coerce").astype(float)
            if values.notna().any():
                axes.plot(rows["year"], values, marker="o", markersize=3, color=colour, label=f"Område {area}")
        if criterion in thresholds:
            axes.axhline(thresholds[criterion], color="#444444", linestyle="--", linewidth=0.8, label="Grænseværdi")
        axes.set_title(CRITERION_NAMES[criterion], fontsize=8)
        axes.set_xlabel("År", fontsize=8)
        axes.set_ylabel("Andel" if criterion != "income_ratio" else "Forhold", fontsize=8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if criterion != "income_ratio":
            axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
        axes.tick_params(labelsize=7)
        if index == 0:
            axes.legend(fontsize=6, frameon=False)
    figure.suptitle("Boligområdernes kriterier over tid (stiplet linje: grænseværdi)")
    figure.tight_layout()
    return png_data_uri(figure)


def plot_area_movement(areas: pd.DataFrame) -> str:
    figure = Figure(figsize=(9.6, 3.2))
    moves = figure.add_subplot(1, 2, 1)
    elevator = figure.add_subplot(1, 2, 2)
    totals = areas.groupby("year")[["moves_in", "moves_out", "moves_within"]].sum(min_count=1) if not areas.empty else pd.DataFrame()
    for column, name, colour in (("moves_in", "Flyttet ind", _COLOURS[0]), ("moves_out", "Flyttet ud", _COLOURS[1]),
                                 ("moves_within", "Flyttet internt", _COLOURS[2])):
        if column in totals and totals[column].notna().any():
            moves.plot(totals.index, totals[column].astype(float), marker="o", label=name, color=colour)
    for axes in (moves, elevator):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    elevator.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    moves.set_title("Flytninger i boligområderne (alle områder, viste tal)", fontsize=9)
    moves.set_xlabel("År")
    moves.set_ylabel("Antal personer")
    moves.legend(fontsize=7, frameon=False)
    for column, name, colour in (("move_out_rate_left_support", "Forlod offentlig forsørgelse", _COLOURS[3]),
                                 ("move_out_rate_stayed_on_support", "Fortsat på offentlig forsørgelse", _COLOURS[4])):
        if column in areas and pd.to_numeric(areas[column], errors="coerce").notna().any():
            rates = pd.to_numeric(areas[column], errors="coerce").groupby(areas["year"]).mean()
            elevator.plot(rates.index, rates.astype(float), marker="o", label=name, color=colour)
    elevator.set_title("Elevatoreffekt: andel der flytter ud året efter", fontsize=9)
    elevator.set_xlabel("År")
    elevator.set_ylabel("Andel (gns. over områder)")
    elevator.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return png_data_uri(figure)


# --------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------

def danish_number(value: Any, decimals: int = 1) -> str:
    """``1.234,5``; missing (suppressed) values become a dash."""
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return SUPPRESSED_TEXT
    text = f"{float(value):,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def danish_percent(value: Any, decimals: int = 1) -> str:
    """``45,6 %`` for 0.456."""
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return SUPPRESSED_TEXT
    return f"{danish_number(float(value) * 100, decimals)} %"


def attribute_name(attribute: str) -> str:
    """Danish name of an audit attribute (``audit_sex`` and ``sex`` alike)."""
    return ATTRIBUTE_NAMES.get(str(attribute).removeprefix("audit_"), str(attribute))


def group_name(group: Any) -> str:
    """Danish name of a group; intersections (``man x non_western``) part by part."""
    return " og ".join(GROUP_NAMES.get(part, part) for part in str(group).split(" x "))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["tal"] = danish_number
    environment.filters["pct"] = danish_percent
    environment.filters["familie"] = lambda f: FAMILY_NAMES.get(f, f)
    environment.filters["attribut"] = attribute_name
    environment.filters["gruppe"] = group_name
    environment.filters["kriterium"] = lambda c: CRITERION_NAMES.get(c, c)
    environment.filters["status"] = lambda s: STATUS_NAMES.get(str(s), s) if s else ""
    return environment


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    return [{k: (None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


@dataclass
class TargetInputs:
    """What one target's page reads. Optional inputs (audit, fairness, areas) may be missing."""

    target: str
    predictions: pd.DataFrame  # label, score (person level: only aggregated here)
    metrics: Mapping[str, Any]
    model_info: Mapping[str, Any]
    families: pd.DataFrame
    stairwells: pd.DataFrame
    subgroups: pd.DataFrame
    fairness: pd.DataFrame | None = None
    audit: Mapping[str, Any] | None = None
    areas: pd.DataFrame | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    registry: Mapping[str, Any] | None = None
    importance_metric: str = "roc_auc"
    #: :func:`plot_area_criteria` of ``areas`` when already drawn (the overview shows it too)
    area_figure: str | None = None


def target_summary(inputs: TargetInputs, settings: ReportSettings) -> dict[str, Any]:
    """The aggregates one target's page and model card show (nothing person-level)."""
    labels = inputs.predictions["label"].to_numpy(dtype="int64")
    scores = inputs.predictions["score"].to_numpy(dtype="float64")
    stairwells = suppress_small_cells(inputs.stairwells, "persons", settings.min_cell,
                                      [c for c in inputs.stairwells.columns if c not in ("stairwell_id", "persons", "rank", "suppressed")],
                                      total_groups=None) if not inputs.stairwells.empty else inputs.stairwells.assign(suppressed=False)
    stairwells = stairwells[~stairwells["suppressed"]]
    subgroups = inputs.subgroups
    if not subgroups.empty:
        subgroups = suppress_small_cells(subgroups, "persons", settings.min_cell, ["rate", "interval_low", "interval_high"], total_groups=None)
        subgroups = subgroups[~subgroups["suppressed"]]
    rows = len(labels)
    return {
        "rows": rows if rows >= settings.min_cell else None,
        "base_rate": float(labels.mean()) if rows >= settings.min_cell else float("nan"),
        "risk": risk_distribution(scores, settings.risk_bins, settings.min_cell),
        "calibration": calibration_bins(labels, scores, settings.calibration_bins, settings.min_cell),
        "precision_at_k": precision_at_k(labels, scores, settings.precision_at_k_percent, settings.min_cell),
        "intervals": metric_intervals(labels, scores, samples=settings.bootstrap_samples,
                                      level=settings.interval_level, random_state=settings.random_state),
        "stairwells": stairwells,
        "subgroups": subgroups,
    }


def render_target_page(inputs: TargetInputs, summary: Mapping[str, Any], settings: ReportSettings) -> str:
    """The HTML page ``reports/<target>/index.html`` (self-contained, Danish)."""
    title = TARGET_TITLES.get(inputs.target, inputs.target)
    fairness = inputs.fairness if inputs.fairness is not None else pd.DataFrame()
    figures = {
        "risk": plot_risk_distribution(summary["risk"], f"Risikofordeling: {title.lower()}"),
        "calibration": plot_calibration(summary["calibration"]),
        "precision": plot_precision_at_k(summary["precision_at_k"], summary["base_rate"]),
        "families": plot_families(inputs.families, _metric_name(inputs.importance_metric)),
        "stairwells": plot_stairwells(summary["stairwells"], settings.stairwells_shown),
        "fairness": plot_fairness(fairness),
    }
    if inputs.areas is not None and not inputs.areas.empty:
        figures["areas"] = inputs.area_figure or plot_area_criteria(inputs.areas, inputs.thresholds)
    stairwells = summary["stairwells"].sort_values("rank")
    return _environment().get_template("target.html.j2").render(
        title=title,
        target=inputs.target,
        question=TARGET_QUESTIONS.get(inputs.target, ""),
        min_cell=settings.min_cell,
        rows=summary["rows"],
        base_rate=summary["base_rate"],
        intervals=summary["intervals"],
        metrics=_headline_metrics(inputs.metrics),
        model_info=inputs.model_info,
        precision_at_k=_records(summary["precision_at_k"]),
        families=_records(inputs.families),
        importance_metric=_metric_name(inputs.importance_metric),
        stairwells_low=_records(stairwells.head(settings.stairwells_shown)),
        stairwells_count=len(stairwells),
        between_sd=float(stairwells["between_sd"].iloc[0]) if "between_sd" in stairwells and len(stairwells) else None,
        subgroups_low=_records(summary["subgroups"][summary["subgroups"]["direction"] == "lowest"]) if not summary["subgroups"].empty else [],
        subgroups_high=_records(summary["subgroups"][summary["subgroups"]["direction"] == "highest"]) if not summary["subgroups"].empty else [],
        fairness=_records(fairness),
        audit=inputs.audit,
        has_areas="areas" in figures,
        figures=figures,
        interval_percent=round(settings.interval_level * 100),
    )


def render_overview_page(
    targets: Sequence[Mapping[str, Any]],
    areas: pd.DataFrame | None,
    thresholds: Mapping[str, float],
    criteria_needed: int,
    min_cell: int,
    area_figure: str | None = None,
) -> str:
    """The overview page ``reports/index.html``: one card per target (``target``, ``title``,
    ``roc_auc`` {value, low, high}, ``audit_passed``) and the area indicators (``area_figure``:
    :func:`plot_area_criteria` of ``areas`` when already drawn)."""
    figures = {}
    latest: list[dict[str, Any]] = []
    if areas is not None and not areas.empty:
        figures["areas"] = area_figure or plot_area_criteria(areas, thresholds)
        figures["movement"] = plot_area_movement(areas)
        last_year = areas["year"].max()
        latest = _records(areas[areas["year"] == last_year].sort_values("area"))
    return _environment().get_template("overview.html.j2").render(
        targets=targets, figures=figures, latest=latest, criteria=list(CRITERION_NAMES),
        thresholds=thresholds, criteria_needed=criteria_needed, min_cell=min_cell,
        last_year=int(areas["year"].max()) if latest else None,
    )


def _metric_name(metric: str) -> str:
    return {"roc_auc": "ROC AUC", "average_precision": "gennemsnitlig præcision"}.get(metric, metric)


def _headline_metrics(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The scalar test metrics of ``metrics.json`` worth a line on the page, in a fixed order."""
    names = {
        "roc_auc": "ROC AUC", "average_precision": "Gennemsnitlig præcision", "brier": "Brier-score",
        "baseline_roc_auc": "ROC AUC for simpel regel (uger på forsørgelse)",
        "baseline_average_precision": "Gennemsnitlig præcision for simpel regel",
    }
    return [{"name": names[key], "value": metrics[key]} for key in names
            if isinstance(metrics.get(key), (int, float)) and not isinstance(metrics.get(key), bool)]
