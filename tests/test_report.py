"""The analyst pages and the model card, from small hand-made aggregates.

The browser test opens the pages in headless Chromium (Debian's ``chromium``) and watches them
through the DevTools protocol (websocket client: aiohttp, already a dependency of DVC): no console
error, no uncaught exception, no failed request and no request to anything but the page's own
``file://`` URL and ``data:`` images. It keeps a screenshot of each page in
``$LYSKEGLE_SCREENSHOT_DIR`` (default ``reports/screenshots/``) and prints the path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyskegle.areas import CRITERIA_COLUMNS, Criteria
from lyskegle.model_card import model_card
from lyskegle.report import (
    ReportSettings,
    TargetInputs,
    calibration_bins,
    danish_number,
    danish_percent,
    metric_intervals,
    plot_area_criteria,
    precision_at_k,
    render_overview_page,
    render_target_page,
    risk_distribution,
    target_summary,
)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ["om", "model", "familier", "opgange", "undergrupper", "retfaerdighed", "omraader", "modelkort", "forbehold"]
FIGURES = ["risk", "calibration", "precision", "families", "stairwells", "fairness", "areas"]


# --- aggregates --------------------------------------------------------------------------------------

def test_risk_distribution_hides_small_bins_and_one_more_because_the_total_is_shown():
    scores = np.array([0.05] * 10 + [0.15] * 2 + [0.95] * 6)
    table = risk_distribution(scores, bins=10, min_cell=5)
    shown = table[~table["suppressed"]]
    # 2 persons at 0.15 are hidden; with a total of 18 shown they could be recovered, so the next
    # smallest bin (6 persons at 0.95) goes too; empty bins stay shown as 0
    assert shown["persons"].max() == 10
    assert table.loc[table["bin_low"].round(2) == 0.1, "suppressed"].item()
    assert table.loc[table["bin_low"].round(2) == 0.9, "suppressed"].item()


def test_precision_at_k_counts_hits_among_the_highest_scores():
    labels = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    scores = np.linspace(1, 0, 10)  # already in score order
    table = precision_at_k(labels, scores, [20, 50], min_cell=2).set_index("k_percent")
    assert table.loc[20.0, "flagged"] == 2 and table.loc[20.0, "precision"] == 1.0
    assert table.loc[50.0, "precision"] == pytest.approx(3 / 5) and table.loc[50.0, "recall"] == 1.0
    small = precision_at_k(labels, scores, [10], min_cell=2)
    assert small["suppressed"].item() and pd.isna(small["precision"].item())  # one person flagged


def test_calibration_bins_compare_mean_score_with_observed_rate():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.1, 0.2, 0.2, 0.8, 0.8, 0.9, 0.9])
    table = calibration_bins(labels, scores, bins=2, min_cell=4)
    assert table["mean_score"].tolist() == pytest.approx([0.15, 0.85])
    assert table["observed_rate"].tolist() == pytest.approx([0.25, 1.0])


def test_metric_intervals_bracket_the_value():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = labels * 0.3 + rng.uniform(size=400)
    found = metric_intervals(labels, scores, samples=50, level=0.95, random_state=1)
    assert found["roc_auc"]["low"] < found["roc_auc"]["value"] < found["roc_auc"]["high"]
    assert 0.6 < found["roc_auc"]["value"] < 0.9


def test_metrics_on_score_cells_equal_the_metrics_on_the_rows():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from lyskegle.report import _weighted, score_cells

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(labels * 0.2 + rng.uniform(size=3000), 1)  # few distinct scores, many ties
    cell_scores, cell_labels, counts = score_cells(labels, scores)
    assert counts.sum() == 3000 and len(counts) <= 2 * len(np.unique(scores))
    weights = rng.multinomial(3000, counts / 3000)  # one bootstrap draw, as counts per cell
    rows_labels, rows_scores = np.repeat(cell_labels, weights), np.repeat(cell_scores, weights)
    for metric in (roc_auc_score, average_precision_score):
        assert _weighted(metric, cell_labels, cell_scores, counts) == pytest.approx(metric(labels, scores), abs=1e-12)
        assert _weighted(metric, cell_labels, cell_scores, weights) == pytest.approx(metric(rows_labels, rows_scores), abs=1e-12)


def test_metric_intervals_match_a_bootstrap_over_rows():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 2000)
    scores = np.round(labels * 0.3 + rng.uniform(size=2000), 2)
    found = metric_intervals(labels, scores, samples=400, level=0.9, random_state=5)["roc_auc"]
    draws = [rng.integers(0, 2000, 2000) for _ in range(400)]
    by_rows = np.quantile([roc_auc_score(labels[d], scores[d]) for d in draws], [0.05, 0.95])
    # two bootstraps of the same data: their 90 % bounds agree to well within the interval's width
    width = by_rows[1] - by_rows[0]
    assert found["low"] == pytest.approx(by_rows[0], abs=0.15 * width)
    assert found["high"] == pytest.approx(by_rows[1], abs=0.15 * width)


def test_danish_number_formats():
    assert danish_number(1234.5) == "1.234,5"
    assert danish_percent(0.456) == "45,6 %"
    assert danish_number(pd.NA) == "–" and danish_percent(float("nan")) == "–"


# --- pages -------------------------------------------------------------------------------------------

def _areas() -> pd.DataFrame:
    rows = []
    for area, shift in (("Nord", 0.0), ("Syd", 0.1)):
        for year in (2019, 2020, 2021):
            rows.append({
                "area": area, "year": year, "residents": 1200 + year - 2019,
                "outside_work_education_2y": 0.35 + shift, "non_western_share": 0.45 + shift,
                "convicted_share_2y": 0.02 + shift / 10, "basic_education_share": 0.48 + shift, "income_ratio": 0.6 - shift,
                "criteria_met": 0 if shift == 0 else 4, "criteria_known": 5 if year > 2019 else 4, "moves_in": 40.0, "moves_out": 35.0, "moves_within": None,
                "mean_years_in_dwelling": 7.5, "move_out_rate_left_support": 0.2 if year < 2021 else None,
                "move_out_rate_stayed_on_support": 0.1 if year < 2021 else None,
            })
    return pd.DataFrame(rows)


def _inputs() -> TargetInputs:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    predictions = pd.DataFrame({"label": labels, "score": np.clip(labels * 0.3 + rng.uniform(0, 0.7, 300), 0, 1)})
    families = pd.DataFrame({
        "family": ["stairwell", "history", "origin"], "columns": [4, 10, 3],
        "importance": [0.06, 0.04, 0.001], "interval_low": [0.05, 0.03, -0.002], "interval_high": [0.07, 0.05, 0.004],
        "baseline": 0.7, "rows": 300,
    })
    stairwells = pd.DataFrame({
        "stairwell_id": ["A7", "B2", "C1"], "persons": [12, 30, 3], "observations": [12, 30, 3],
        "observed_rate": [0.08, 0.5, 0.0], "expected_rate": [0.4, 0.45, 0.3],
        "effect": [0.45, 1.05, 0.9], "interval_low": [0.2, 0.8, 0.5], "interval_high": [0.9, 1.3, 1.4],
        "shrunk_rate": [0.18, 0.47, 0.27], "rank": [1, 2, 3],
    })
    subgroups = pd.DataFrame({
        "direction": ["lowest", "highest"], "rank": [1, 1],
        "description_da": ["alder: 20-29, statsborgerskab: Somalia", "uddannelse: lang videregående"],
        "description_en": ["age: 20-29, citizenship: Somalia", "education: long higher"], "conditions": [2, 1],
        "persons": [31, 40], "observations": [35, 44], "rate": [0.03, 0.8], "interval_low": [0.01, 0.65], "interval_high": [0.15, 0.9],
    })
    fairness = pd.DataFrame({
        "attribute": ["sex", "sex", "origin_group_x_area"], "group": ["man", "woman", "non_western x BO01"],
        "persons": [150, 150, None], "selection_rate": [0.1, 0.12, None], "tpr": [0.2, 0.25, None],
        "fpr": [0.05, 0.06, None], "precision": [0.6, 0.55, None], "selection_rate_ratio": [1.0, 1.2, None],
        "status": ["reference", "pass", None], "passed": [True, True, None], "note": ["", "", "too small"],
    })
    thresholds = {column: getattr(Criteria(), name) for column, (name, _) in CRITERIA_COLUMNS.items()}
    return TargetInputs(
        target="exit_26w", predictions=predictions,
        metrics={"roc_auc": 0.71, "average_precision": 0.6, "brier": 0.2, "baseline_roc_auc": 0.6,
                 "precision_at_10pct": 0.7, "rows": {"cohort_rows": 400, "censored": 20}},
        model_info={"chosen": {"name": "hist_gradient_boosting", "kind": "hist_gradient_boosting"},
                    "calibration": "isotonic", "train_as_of": ["2016-01-04", "2017-01-02"],
                    "test_as_of": ["2022-01-03", "2023-01-02"], "inputs": {"numeric": ["a"], "categorical": [], "stairwell": "stairwell_id"}},
        families=families, stairwells=stairwells, subgroups=subgroups, fairness=fairness,
        audit={"passed": False, "reasons": ["fairness: audit_sex = 2 vs 1: ratio too high"]},
        areas=_areas(), thresholds=thresholds,
        registry={"run_id": "abc", "model_name": "lyskegle-exit_26w", "model_version": "1", "experiment": "lyskegle"},
    )


SETTINGS = ReportSettings(min_cell=5, bootstrap_samples=20, stairwells_shown=10, random_state=0)


def _write_pages(root: Path) -> tuple[Path, Path]:
    inputs = _inputs()
    summary = target_summary(inputs, SETTINGS)
    target_page = root / "exit_26w" / "index.html"
    target_page.parent.mkdir(parents=True, exist_ok=True)
    target_page.write_text(render_target_page(inputs, summary, SETTINGS), encoding="utf-8")
    card = {"target": "exit_26w", "title": "Afgang", "roc_auc": summary["intervals"]["roc_auc"], "audit_passed": False}
    overview = root / "index.html"
    overview.write_text(render_overview_page([card], _areas(), inputs.thresholds, 3, 5), encoding="utf-8")
    return overview, target_page


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> tuple[Path, Path]:
    return _write_pages(tmp_path_factory.mktemp("reports"))


def test_target_page_has_every_section_and_figure_in_danish(pages):
    html = pages[1].read_text(encoding="utf-8")
    assert '<html lang="da">' in html
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
    for figure in FIGURES:
        assert re.search(rf'data-figure="{figure}">\s*<img src="data:image/png;base64,', html), figure
    assert "ikke en automatisk afgørelse" in html and "konsekvensanalyse" in html
    assert "alder: 20-29, statsborgerskab: Somalia" in html
    assert 'href="model_card.md"' in html
    assert "ikke bestået" in html  # the audit verdict
    assert "<td>Herkomst og boligområde</td><td>ikke-vestlig og BO01</td>" in html  # attribute and group in Danish
    assert "(for lille gruppe)" in html


def test_an_area_figure_drawn_once_gives_the_pages_drawn_each_on_their_own():
    import dataclasses

    inputs = _inputs()
    summary = target_summary(inputs, SETTINGS)
    drawn = plot_area_criteria(inputs.areas, inputs.thresholds)
    shared = dataclasses.replace(inputs, area_figure=drawn)
    assert render_target_page(shared, summary, SETTINGS) == render_target_page(inputs, summary, SETTINGS)
    card = {"target": "exit_26w", "title": "Afgang", "roc_auc": summary["intervals"]["roc_auc"], "audit_passed": False}
    assert (render_overview_page([card], inputs.areas, inputs.thresholds, 3, 5, drawn)
            == render_overview_page([card], inputs.areas, inputs.thresholds, 3, 5))
    # and the figure given is the one shown, not drawn again
    marker = "data:image/png;base64,bWFya2Vy"
    assert marker in render_target_page(dataclasses.replace(inputs, area_figure=marker), summary, SETTINGS)
    assert marker in render_overview_page([card], inputs.areas, inputs.thresholds, 3, 5, marker)


def test_pages_show_no_figure_over_fewer_than_min_cell_persons(pages):
    html = pages[1].read_text(encoding="utf-8")
    assert "<td>C1</td>" not in html  # a stairwell of 3 persons
    assert "<td>A7</td>" in html


def test_pages_make_no_external_request_and_run_no_script(pages):
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html.lower()
        assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html), "an external link or resource"
        assert "default-src 'none'" in html  # the page's own policy blocks any request it might still make


def test_overview_states_criteria_neutrally(pages):
    html = pages[0].read_text(encoding="utf-8")
    assert "opfylder 4 af 5 kriterier" in html and "opfylder 0 af 5 kriterier" in html
    assert "kan ikke opgøres" not in html  # the latest year (2021) has every criterion
    for word in ("ghetto", "udsat boligområde", "hårde ghetto"):
        assert word not in html.lower()
    assert 'data-figure="areas"' in html and 'data-figure="movement"' in html
    assert 'href="exit_26w/index.html"' in html


def test_model_card_covers_what_reviewers_need():
    inputs = _inputs()
    intervals = {"roc_auc": {"value": 0.71, "low": 0.66, "high": 0.75}, "average_precision": {"value": 0.6, "low": 0.55, "high": 0.65}}
    text = model_card("exit_26w", model_info=inputs.model_info, metrics=inputs.metrics, intervals=intervals,
                      audit=inputs.audit, families=inputs.families, extract={"synthetic": True, "first_week": 2000, "last_week": 2600},
                      registry=inputs.registry, min_cell=5, interval_level=0.95)
    for heading in ("## Intended use", "## Misuse", "## Target", "## Data and period", "## Metrics on the test period",
                    "## Fairness", "## Privacy checks", "## Feature families", "## Known limits"):
        assert heading in text
    assert "| ROC AUC | 0.710 | 0.660 - 0.750 |" in text
    assert "**not passed**" in text and "ratio too high" in text
    assert "2022-01-03, 2023-01-02" in text
    assert "synthetic extract" in text
    assert "| stairwell (Opgang) | 0.0600 | 0.0500 - 0.0700 |" in text


# --- the browser test ----------------------------------------------------------------------------------

def _chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: install Debian's chromium (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); CI runs this test")


class DevToolsPage:
    """A minimal DevTools-protocol client for one page: send commands, collect events."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.events: list[dict] = []
        self._next_id = 0

    async def send(self, method: str, params: dict | None = None) -> dict:
        self._next_id += 1
        await self.socket.send_json({"id": self._next_id, "method": method, "params": params or {}})
        while True:
            message = json.loads((await self.socket.receive(timeout=30)).data)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads((await self.socket.receive(timeout=remaining)).data))

    async def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads((await self.socket.receive(timeout=remaining)).data))
            except (asyncio.TimeoutError, TimeoutError):
                return


async def _inspect(chromium: Path, page: Path, profile: Path) -> tuple[dict, list[str], bytes]:
    import aiohttp

    process = subprocess.Popen(
        [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*",
         f"--user-data-dir={profile}", "--window-size=1280,2000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                target = next(t for t in await response.json() if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                devtools = DevToolsPage(socket)
                for domain in ("Network", "Runtime", "Log", "Page"):
                    await devtools.send(f"{domain}.enable")
                url = page.resolve().as_uri()
                await devtools.send("Page.navigate", {"url": url})
                await devtools.wait_for("Page.loadEventFired", timeout=60)
                await devtools.drain(1.0)  # late console messages or requests
                found = await devtools.send("Runtime.evaluate", {"returnByValue": True, "expression": """({
                    sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
                    figures: [...document.querySelectorAll('figure[data-figure]')].map(f => {
                        const img = f.querySelector('img');
                        return {name: f.dataset.figure, loaded: !!img && img.complete && img.naturalWidth > 100};
                    }),
                    title: document.title, lang: document.documentElement.lang,
                    text: document.body.innerText})"""})
                shot = await devtools.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        problems = _problems(devtools.events, url)
        return found["result"]["value"], problems, base64.b64decode(shot["data"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _problems(events: list[dict], url: str) -> list[str]:
    """Console errors, uncaught exceptions, failed requests and requests that leave the page."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            problems.append(f"log error: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            problems.append(f"failed request: {params.get('errorText')} ({params.get('type')})")
        elif method == "Network.requestWillBeSent":
            requested = params["request"]["url"]
            if not (requested == url or requested.startswith("data:")):
                problems.append(f"request outside the page: {requested[:120]}")
    return problems


@pytest.mark.browser
def test_pages_open_in_headless_chromium_without_errors_or_requests(tmp_path):
    chromium = _chromium_or_skip()
    overview, target_page = _write_pages(tmp_path / "reports")
    shots = Path(os.environ.get("LYSKEGLE_SCREENSHOT_DIR", REPO / "reports" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    for page, sections, figures in ((target_page, SECTIONS, FIGURES), (overview, ["om", "modeller", "omraader", "forbehold"], ["areas", "movement"])):
        profile = tmp_path / f"profile-{page.parent.name}"
        profile.mkdir()
        found, problems, png = asyncio.run(asyncio.wait_for(_inspect(chromium, page, profile), timeout=120))
        assert problems == [], f"{page}: {problems}"
        assert found["lang"] == "da"
        assert [s for s in sections if s not in found["sections"]] == []
        loaded = {f["name"]: f["loaded"] for f in found["figures"]}
        assert all(loaded.get(name) for name in figures), f"figures not drawn: {loaded}"
        assert "Forbehold" in found["text"]
        screenshot = shots / f"report_{page.parent.name}.png"
        screenshot.write_bytes(png)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot of {page.name}: {screenshot}", file=sys.stderr)


def test_chromium_check_is_skipped_only_outside_ci(monkeypatch):
    # the skip rule itself: outside CI a missing browser skips, in CI it fails
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        _chromium_or_skip()



def test_report_stage_writes_pages_and_model_card_from_stage_files(tmp_path, monkeypatch):
    from conftest import load_pipeline

    from lyskegle import io

    inputs = _inputs()
    models, reports = tmp_path / "models" / "exit_26w", tmp_path / "reports" / "exit_26w"
    io.write_parquet(inputs.predictions, models / "test_predictions.parquet")
    io.write_json(dict(inputs.model_info), models / "model_info.json")
    io.write_json(dict(inputs.registry), models / "registry.json")
    io.write_json(dict(inputs.metrics), reports / "metrics.json")
    io.write_csv(inputs.families, reports / "feature_families.csv")
    io.write_csv(inputs.stairwells, reports / "stairwells.csv")
    io.write_csv(inputs.subgroups, reports / "subgroups.csv")
    io.write_csv(inputs.fairness, reports / "fairness.csv")  # no audit.json: the page says the audit did not run
    io.write_csv(_areas(), tmp_path / "reports" / "areas.csv")
    io.write_json({"synthetic": True, "first_week": 2191, "last_week": 2868}, tmp_path / "extract.json")
    monkeypatch.setattr(sys, "argv", [
        "report.py", "--params", str(REPO / "params.yaml"), "--targets", "exit_26w", "--models", str(tmp_path / "models"),
        "--reports", str(tmp_path / "reports"), "--areas", str(tmp_path / "reports" / "areas.csv"),
        "--extract", str(tmp_path / "extract.json"), "--no-mlflow",
    ])
    load_pipeline("report").main()
    page = (reports / "index.html").read_text(encoding="utf-8")
    assert "Revisionen (audit) er ikke kørt" in page
    assert "<td>A7</td>" in page and "<td>C1</td>" not in page
    assert "## Fairness\n- The audit has not run for this model." in (reports / "model_card.md").read_text(encoding="utf-8")
    assert 'href="exit_26w/index.html"' in (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
