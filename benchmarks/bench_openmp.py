"""Benchmark: a boosting fit with spinning and with sleeping OpenMP threads, alone and beside a busy process.

    .venv/bin/python benchmarks/bench_openmp.py [--rows 200000] [--columns 60] [--iterations 100]

The stages that fit or score models run with ``OMP_WAIT_POLICY=PASSIVE`` (dvc.yaml). This prints
why: the wall time of one ``HistGradientBoostingClassifier`` fit on two OpenMP threads (the
``train.threads`` default), each in a fresh process, with libgomp's default wait policy (threads
spin a while before they sleep) and with ``PASSIVE`` (they sleep at once), in three settings:

* ``idle``: nothing else runs;
* ``busy``: a process that keeps one core busy runs beside it (another job, a second
  ``dvc exp run`` worker);
* ``busy, nice 19``: the same, with the fit started under ``nice -n 19`` (a batch job).

A fit that takes longer than ``--timeout`` seconds is stopped and shown as ``> timeout``. Run it on
an otherwise idle machine: the point is the difference between the rows, and anything else running
is a third process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

FIT = """
import sys, time
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

rows, columns, iterations = (int(v) for v in sys.argv[1:4])
rng = np.random.default_rng(0)
X = rng.normal(size=(rows, columns))
y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(size=rows) > 0.8).astype(int)
model = HistGradientBoostingClassifier(learning_rate=0.08, max_iter=iterations, early_stopping=False,
                                       max_leaf_nodes=31, min_samples_leaf=40, random_state=0)
with threadpool_limits(2):
    start = time.perf_counter()
    model.fit(X, y)
    print(time.perf_counter() - start)
"""

BUSY = "while True: pass"


def fit_seconds(policy: str | None, nice: bool, args: argparse.Namespace) -> float | None:
    """Wall seconds of one fit in a fresh process; None when it ran past ``args.timeout``."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    command = [*(["nice", "-n", "19"] if nice else []), sys.executable, "-c", FIT,
               str(args.rows), str(args.columns), str(args.iterations)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=60)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=2, help="fits per cell; the best is shown")
    args = parser.parse_args()

    print(f"HistGradientBoostingClassifier, {args.rows:,} rows x {args.columns} columns, {args.iterations} "
          f"trees, 2 OpenMP threads, best of {args.repeats}; {os.cpu_count()} cores")
    print(f"{'setting':<18}{'default (spin)':>16}{'PASSIVE (sleep)':>17}")
    for setting, busy, nice in (("idle", False, False), ("busy", True, False), ("busy, nice 19", True, True)):
        beside = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
        try:
            time.sleep(0.5 if busy else 0)
            cells = []
            for policy in (None, "PASSIVE"):
                runs = [fit_seconds(policy, nice, args) for _ in range(args.repeats)]
                finished = [r for r in runs if r is not None]
                cells.append(f"{min(finished):.1f} s" if finished else f"> {args.timeout:.0f} s")
            print(f"{setting:<18}{cells[0]:>16}{cells[1]:>17}", flush=True)
        finally:
            if beside is not None:
                beside.kill()
                beside.wait()


if __name__ == "__main__":
    main()
