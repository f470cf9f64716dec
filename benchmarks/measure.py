"""Run a command as a child process and measure it: the one timer the benchmark scripts share."""

from __future__ import annotations

import collections
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its children (a `dvc repro` runs the stage as a child)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
                 interval: float = 0.1, limit: int | None = None,
                 log: Path | None = None) -> tuple[float, float, int, int]:
    """Run ``args``: (wall seconds, CPU seconds, peak resident bytes, exit code).

    CPU time (user + system) comes from the kernel's account of waited-for children, so it counts
    every thread and grows less than wall time when other jobs share the machine. The peak is the
    largest sampled resident size of the process tree, or the kernel's largest single child
    (``ru_maxrss``) when that is larger, which also catches a peak between two samples.
    ``ru_maxrss`` covers every child this process has waited for, so it counts only when this run
    raised it: otherwise it is an earlier run's peak (that made later stages report the peak of the
    largest stage before them).

    ``limit`` (bytes): a process tree found above it is killed (exit code -9), so a run that would
    not fit stops before the machine runs out of memory. Its stderr is read while it runs (a full
    pipe would stall it) and the last 4,000 characters are shown when it fails. With ``log``, all
    of it is also written to that file (a stage's log says what it decided, e.g. how many as-of
    dates it ran at a time).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail: collections.deque[str] = collections.deque(maxlen=8)  # the last few 1,024-character reads
    log_file = log.open("w", buffering=1) if log is not None else None  # line-buffered: readable while it runs

    def read() -> None:
        for chunk in iter(lambda: child.stderr.read(1024), ""):
            tail.append(chunk)
            if log_file is not None:
                log_file.write(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    watched = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            resident = tree_rss(watched)
        except psutil.NoSuchProcess:
            break
        peak = max(peak, resident)
        if limit is not None and resident > limit:
            _kill_tree(watched)
            sys.stderr.write(f"stopped: {resident / 2**30:.2f} GiB is over the limit of {limit / 2**30:.2f} GiB\n")
            break
        time.sleep(interval)
    child.wait()
    reader.join()
    if log_file is not None:
        log_file.close()
    if child.returncode:
        sys.stderr.write("".join(tail)[-4000:])
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    kernel_peak = after.ru_maxrss * 1024 if after.ru_maxrss > before.ru_maxrss else 0
    return wall, cpu, max(peak, kernel_peak), child.returncode


def _kill_tree(process: psutil.Process) -> None:
    """SIGKILL a process and every process under it, children first."""
    for member in [*process.children(recursive=True), process]:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


def reference_seconds(repeats: int = 3) -> float:
    """Seconds this machine takes, at best of ``repeats``, for a fixed single-threaded piece of the
    kind of work the stages do: a NumPy sort, a pandas group-by on integer keys and an Arrow hash
    lookup of text ids, each on a few million values drawn with a fixed seed.

    The development machine's speed swings by up to half between days, so a stage's time only means
    something beside the reference measured in the same run: two runs whose references differ by
    a third cannot be compared by their wall times.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(2015)
    values = rng.random(8_000_000)
    keys = rng.integers(0, 200_000, 8_000_000)
    ids = pa.array(np.char.add("p", rng.integers(0, 1_000_000, 2_000_000).astype("U7")).tolist(), pa.large_string())
    vocabulary = pc.unique(ids)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.sort(values, kind="stable")
        pd.Series(values).groupby(keys).sum()
        pc.index_in(ids, value_set=vocabulary)
        best = min(best, time.perf_counter() - started)
    return best
