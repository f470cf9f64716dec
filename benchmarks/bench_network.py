"""Network stage speed and memory, and the fast path against the networkx reference.

    python benchmarks/bench_network.py [--persons 250000 500000 1000000] [--compare-persons 100000]
    python benchmarks/bench_network.py --ingested DIR --cohorts FILE [--as-of 2020-01-06] --persons --compare-persons 0

1. Scaling: for each size, random inputs from :mod:`network_inputs` (households ~2, stairwells ~15,
   workplaces up to 5,000, classes ~22 over 10 years, family links) are written as Parquet, and the
   stage itself (``pipelines/network.py``, one as-of date, all layers, every resident in the cohort)
   runs in a child process whose wall time and peak resident memory are measured. Target at 1M
   persons: at most 60 s and 4 GB, growing linearly with persons.
   With ``--ingested`` and ``--cohorts`` (an ingested synthetic extract and its labels' cohorts),
   the stage runs on the real extract's shape instead: once for the cohorts of ``--as-of`` alone,
   once for every as-of date.
2. Side by side at ``--compare-persons``: the same memberships and status through the fast path
   (:func:`lyskegle.network.exposure_features`) and through the networkx neighbour loop
   (:func:`lyskegle.network_reference.reference_exposure_features`); prints both times, the ratio
   (target at least 100x) and whether every value agrees.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

from lyskegle import io
from lyskegle.config import load_params
from lyskegle.network import contact_status, exposure_features, layer_memberships
from lyskegle.network_reference import reference_exposure_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402
from network_inputs import build_network_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2020, 1, 6)
GB = 1024**3


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled in a thread)."""

    def __enter__(self) -> "PeakMemory":
        self.process, self.peak, self._running = psutil.Process(), 0, True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def scaling(sizes: list[int], workdir: Path, params_path: Path) -> None:
    print(f"{'persons':>10} {'wall s':>8} {'CPU s':>8} {'peak GB':>8} {'persons/wall s':>15}   "
          "(pipelines/network.py: read, 1 as-of, all layers, write)")
    for persons in sizes:
        folder = workdir / f"n{persons}"
        inputs = build_network_inputs(persons, AS_OF, np.random.default_rng(persons), max_workplace=5000)
        for name, frame in inputs.items():
            io.write_parquet(frame, folder / f"{name}.parquet")
        del inputs
        seconds, cpu, peak, code = run_measured([
            sys.executable, str(REPO / "pipelines" / "network.py"), "--params", str(params_path),
            "--ingested", str(folder), "--cohorts", str(folder / "cohorts.parquet"), "--out", str(folder / "out"),
        ], interval=0.05)
        status = "" if code == 0 else f"  FAILED (exit {code})"
        print(f"{persons:>10,} {seconds:>8.1f} {cpu:>8.1f} {peak / GB:>8.2f} {persons / seconds:>15,.0f}{status}", flush=True)


def real_extract(ingested: Path, cohorts: Path, as_of: dt.date, workdir: Path, params_path: Path) -> None:
    """The stage on an ingested extract: the cohorts of one as-of date, then of every date."""
    everyone = io.read_parquet(cohorts)
    one_date = everyone[pd.to_datetime(everyone["as_of"]) == pd.Timestamp(as_of)]
    if one_date.empty:
        raise SystemExit(f"--as-of {as_of}: no cohort rows at that date in {cohorts}")
    io.write_parquet(one_date, workdir / "cohorts_one_date.parquet")
    residents = len(io.read_parquet(ingested / "population.parquet", ["year"]).query("year == @as_of.year"))
    print(f"real extract {ingested}: {residents:,} residents in {as_of.year}")
    print(f"{'as-of dates':>12} {'cohort rows':>12} {'wall s':>8} {'CPU s':>8} {'peak GB':>8}")
    for label, path, rows in (("1", workdir / "cohorts_one_date.parquet", len(one_date)),
                              (str(everyone["as_of"].nunique()), cohorts, len(everyone))):
        seconds, cpu, peak, code = run_measured([
            sys.executable, str(REPO / "pipelines" / "network.py"), "--params", str(params_path),
            "--ingested", str(ingested), "--cohorts", str(path), "--out", str(workdir / "real_out"),
        ], interval=0.05)
        status = "" if code == 0 else f"  FAILED (exit {code})"
        print(f"{label:>12} {rows:>12,} {seconds:>8.1f} {cpu:>8.1f} {peak / GB:>8.2f}{status}", flush=True)


def side_by_side(persons: int) -> None:
    inputs = build_network_inputs(persons, AS_OF, np.random.default_rng(7), max_workplace=persons // 200)
    memberships = layer_memberships(inputs["population"], inputs["dwellings"], inputs["jobs"], inputs["classes"], AS_OF)
    status = contact_status(inputs["benefits"], inputs["employment"], memberships.residents["person_id"], AS_OF, 52)
    pairs = sum(
        int((sizes * (sizes - 1) // 2).sum())
        for sizes in (frame.groupby("group").size().to_numpy() for frame in memberships.groups.values())
    )
    print(f"\nside by side at {persons:,} persons ({pairs:,} group pairs before de-duplication, "
          f"largest workplace {persons // 200})")

    with PeakMemory() as fast_memory:
        start, cpu_start = time.perf_counter(), time.process_time()
        fast = exposure_features(memberships, status)
        fast_seconds, fast_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    with PeakMemory() as reference_memory:
        start, cpu_start = time.perf_counter(), time.process_time()
        reference = reference_exposure_features(memberships, status)
        reference_seconds, reference_cpu = time.perf_counter() - start, time.process_time() - cpu_start

    differing = [
        column for column in fast.columns
        if not np.allclose(fast[column].to_numpy("float64"), reference[column].to_numpy("float64"), equal_nan=True)
    ]
    print(f"  fast path (scipy.sparse):  {fast_seconds:8.2f} s wall {fast_cpu:8.2f} s CPU   "
          f"peak RSS {fast_memory.peak / GB:5.2f} GB")
    print(f"  networkx neighbour loop:   {reference_seconds:8.2f} s wall {reference_cpu:8.2f} s CPU   "
          f"peak RSS {reference_memory.peak / GB:5.2f} GB")
    print(f"  ratio: {reference_seconds / fast_seconds:,.0f}x wall, {reference_cpu / fast_cpu:,.0f}x CPU (target >= 100x)")
    print(f"  values equal in all {len(fast.columns)} columns x {len(fast):,} persons: {not differing}"
          + (f" (differ: {differing})" if differing else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="*", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--compare-persons", type=int, default=100_000, help="0 skips the side-by-side run")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary folder)")
    parser.add_argument("--ingested", type=Path, help="an ingest stage's folder: also run on this extract")
    parser.add_argument("--cohorts", type=Path, help="the labels stage's cohorts.parquet for --ingested")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=AS_OF, help="the one as-of date (a Monday)")
    args = parser.parse_args()
    if (args.ingested is None) != (args.cohorts is None):
        parser.error("--ingested and --cohorts go together")

    with tempfile.TemporaryDirectory(prefix="lyskegle-bench-network-") as scratch:
        workdir = args.workdir or Path(scratch)
        raw = load_params(REPO / "params.yaml")
        params_path = workdir / "params.yaml"
        params_path.parent.mkdir(parents=True, exist_ok=True)
        params_path.write_text(yaml.safe_dump({"network": raw["network"], "privacy": raw["privacy"]}))
        if args.ingested:
            real_extract(args.ingested, args.cohorts, args.as_of, workdir, params_path)
        if args.persons:
            scaling(args.persons, workdir, params_path)
        if args.compare_persons:
            side_by_side(args.compare_persons)


if __name__ == "__main__":
    main()
