"""Benchmark the `synthesize` stage (and `ingest` on its output): wall time and peak memory.

    .venv/bin/python benchmarks/bench_synthesize.py --persons 1000000 [--skip-ingest] [--keep DIR]

Generation and ingest each run in a fresh child process, so each peak resident memory (the child's
ru_maxrss) is its own. Target: 1,000,000 persons generated and ingested in at most 3 minutes and
6 GB peak memory on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue as queue_module
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def _usage() -> dict[str, float]:
    """Peak resident memory and CPU seconds of this (child) process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_gb": usage.ru_maxrss / 2**20, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def _generate(persons: int, seed: int, out: str, truth: str, queue) -> None:
    sys.path.insert(0, str(ROOT / "pipelines"))
    import synthesize  # the stage's own entry point

    from lyskegle import io
    from lyskegle.config import SynthesizeParams
    from lyskegle.synthetic import SyntheticExtract

    started = time.perf_counter()
    params = SynthesizeParams(persons=persons, seed=seed)
    extract = SyntheticExtract(params)
    rows = synthesize.write_extract(extract, Path(out))
    io.write_json({"synthetic": True, "generator": "lyskegle", "seed": seed, "persons": persons},
                  Path(out) / io.EXTRACT_MARKER)
    io.write_json(extract.truth, truth)
    queue.put({"seconds": time.perf_counter() - started, "rows": sum(rows.values()),
               "persons_ever": extract.truth["persons_ever"], **_usage()})


def _ingest(folder: str, out: str, queue) -> None:
    sys.path.insert(0, str(ROOT / "pipelines"))
    import ingest  # the stage's own entry point

    from lyskegle import io

    started = time.perf_counter()
    result, _ = ingest.ingest_folder(folder)
    for name, table in result.tables.items():
        io.write_parquet(table, Path(out) / f"{name}.parquet")
    queue.put({"seconds": time.perf_counter() - started,
               "rows_accepted": result.quality["totals"]["rows_accepted"],
               "rows_quarantined": result.quality["totals"]["rows_quarantined"], **_usage()})


def _run(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:  # poll, so a child killed by the OOM killer ends the benchmark instead of hanging it
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not process.is_alive():
                raise SystemExit(f"{target.__name__} died with exit code {process.exitcode} "
                                 "(-9: killed, most often by the out-of-memory killer)") from None
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--keep", help="write the extract here and keep it (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_synthesize_"))
    extract, ingested = work / "synthetic", work / "ingested"
    print(f"persons={args.persons:,} cores={psutil.cpu_count()} memory={psutil.virtual_memory().total / 2**30:.0f} GB "
          f"load average={psutil.getloadavg()[0]:.1f} (wall time grows with other jobs' load; CPU time less so)")
    try:
        generated = _run(_generate, args.persons, args.seed, str(extract), str(work / "truth.json"))
        size = sum(p.stat().st_size for p in extract.iterdir()) / 2**20
        print(f"synthesize: {generated['seconds']:.1f} s wall, {generated['cpu_seconds']:.1f} s CPU, "
              f"peak {generated['peak_rss_gb']:.2f} GB, "
              f"{generated['rows']:,} rows, {generated['persons_ever']:,} persons ever, {size:,.0f} MB on disk")
        total = generated["seconds"]
        if not args.skip_ingest:
            ingest = _run(_ingest, str(extract), str(ingested))
            print(f"ingest:     {ingest['seconds']:.1f} s wall, {ingest['cpu_seconds']:.1f} s CPU, "
                  f"peak {ingest['peak_rss_gb']:.2f} GB, "
                  f"{ingest['rows_accepted']:,} rows accepted, {ingest['rows_quarantined']:,} quarantined")
            total += ingest["seconds"]
        print(f"total:      {total:.1f} s")
        print(json.dumps({"persons": args.persons, "synthesize": generated,
                          "ingest": None if args.skip_ingest else ingest}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
