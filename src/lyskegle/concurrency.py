"""Per-date work on both cores, when the machine's memory allows it.

The features and network stages compute one as-of date at a time from registers they hold once;
the areas stage one year at a time, the insights stage its subgroup attributes by date, and the
identifier scan one file at a time. Most of that work is in NumPy, pandas' typed kernels and
Arrow, which run outside Python's lock, so two items on two threads take about two thirds of the
time of one after the other. Each item in flight holds its own working set, though: at national
scale two of them may not fit beside the registers. :func:`map_in_order` therefore computes the
first item alone, measures what it took, and runs the rest side by side only when the memory the
machine has free holds each item in flight, at :data:`MEMORY_MARGIN` times that measure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import psutil
import pyarrow as pa

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Memory that must be free per extra item in flight, as a multiple of the first item's measured
#: peak (scaled to the largest item). At a million persons a second date in flight added 1.1 to
#: 1.3 times the first date's measured peak to the stage's peak (each thread allocates from its own
#: arenas, and the peak is sampled); the rest is room for the caller's own work meanwhile.
MEMORY_MARGIN = 2.5


class PeakMemory:
    """Samples this process's resident memory on a thread while the ``with`` block runs.

    ``increase``: the highest sample less the memory at the start, in bytes. Memory that was freed
    but kept for reuse is given back to the system first, so the block cannot hide its own needs
    in it.
    """

    def __init__(self, interval_seconds: float = 0.05) -> None:
        self._interval = interval_seconds
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._start = self._peak = 0
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        _release_free_memory()
        self._start = self._peak = self._process.memory_info().rss
        self._sampler = threading.Thread(target=self._sample, name="lyskegle-peak-memory", daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._sampler.join()
        self._peak = max(self._peak, self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, self._process.memory_info().rss)

    @property
    def increase(self) -> int:
        return self._peak - self._start


def _release_free_memory() -> None:
    """Give memory that was freed but kept for reuse back to the system. Without this, an item can
    reuse what the code before it freed and seem to need almost nothing (the areas stage's first
    year looked like 0.04 GB at a million persons)."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def free_memory(proc_cgroup: Path = Path("/proc/self/cgroup"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Bytes this process can still take: the machine's available memory, or less where a memory
    cgroup limits it (a container or a batch job's share; ``/proc/meminfo``, which psutil reads,
    shows the whole machine). Cgroup v2 (``memory.max``) and v1 (``memory.limit_in_bytes``); a
    cgroup's usage counts its page cache too, so this errs on the small side."""
    available = psutil.virtual_memory().available
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return available
    for line in lines:
        _, controllers, path = line.split(":", 2)
        folder = path.lstrip("/")
        if controllers == "":
            limit_file, usage_file = cgroup_root / folder / "memory.max", cgroup_root / folder / "memory.current"
        elif "memory" in controllers.split(","):
            limit_file = cgroup_root / "memory" / folder / "memory.limit_in_bytes"
            usage_file = cgroup_root / "memory" / folder / "memory.usage_in_bytes"
        else:
            continue
        try:
            limit, usage = limit_file.read_text().strip(), int(usage_file.read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 2**60:  # v1 writes "no limit" as a number near 2**63
            available = min(available, max(int(limit) - usage, 0))
    return available


def concurrent_items(threads: int, first_increase: int, scale: float, available: int) -> int:
    """How many items to compute at a time after the first: ``threads`` when that many more items
    (each taking ``first_increase`` bytes times ``scale``, with :data:`MEMORY_MARGIN`) fit into
    ``available`` bytes, else as many as fit, at least one."""
    need = max(max(first_increase, 1) * max(scale, 0.0) * MEMORY_MARGIN, 1.0)
    return max(1, min(threads, int(available // need)))


def room_for(need: int, available_memory: Callable[[], int] = free_memory) -> bool:
    """True when the memory free now holds ``need`` bytes of extra work, with :data:`MEMORY_MARGIN`."""
    available = available_memory()
    fits = available >= max(need, 0) * MEMORY_MARGIN
    log.info("%.1f GB of work beside the rest, %.1f GB free: %s", need / 2**30, available / 2**30,
             "side by side" if fits else "one after the other")
    return fits


def map_in_order(
    function: Callable[[T], R],
    items: Sequence[T],
    threads: int,
    sizes: Sequence[float] | None = None,
    available_memory: Callable[[], int] = free_memory,
    what: str = "items",
    ahead: int = 0,
) -> Iterator[R]:
    """``function(item)`` for each of ``items``, yielded in order, up to ``threads`` at a time.

    The first item runs alone while its peak memory is measured (:class:`PeakMemory`). The others
    then run as many at a time as :func:`concurrent_items` allows: with ``sizes`` (one per item,
    e.g. persons per date), the first item's peak is scaled to the largest of the rest. At most that
    many items are in flight beside the one the caller holds, and up to ``ahead`` finished ones may
    wait for an earlier item that still runs: by default none, as a finished item's result (a
    date's rows) may be large; where results are small and items' times differ (files of many
    sizes) more keep every thread busy. ``function`` must not modify what the items share. An error
    is raised where its item would have come; the items not yet started are then cancelled.

    Running the first item alone also warms what the items share: pandas builds an index's hash
    table at its first lookup, and two threads doing that at once can see it half built
    (pandas-dev/pandas#21150, #25870). After the first item, the items that run side by side only
    read what it built, as long as they look up the same shared tables it did.
    """
    if not items:
        return
    if sizes is not None and len(sizes) != len(items):
        raise ValueError(f"map_in_order: {len(sizes)} sizes for {len(items)} {what}")
    if threads < 2 or len(items) < 2:
        for item in items:
            yield function(item)
        return
    with PeakMemory() as first:
        result = function(items[0])
    scale = max(sizes[1:]) / max(sizes[0], 1) if sizes is not None else 1.0
    available = available_memory()
    at_a_time = concurrent_items(threads, first.increase, scale, available)
    log.info("%s: the first took %.2f GB at peak; the other %d run %d at a time (%.1f GB free)",
             what, first.increase / 2**30, len(items) - 1, at_a_time, available / 2**30)
    yield result
    del result
    rest = iter(items[1:])
    if at_a_time == 1:
        for item in rest:
            yield function(item)
        return
    # the pool runs at_a_time items; up to `ahead` more wait in its queue, and run as threads free up
    pool = ThreadPoolExecutor(max_workers=at_a_time, thread_name_prefix="lyskegle-by-date")
    pending: deque[Future] = deque()  # submitted and not yet yielded, in order
    try:
        for item in rest:
            pending.append(pool.submit(function, item))
            if len(pending) == at_a_time + ahead:
                break
        while pending:
            done = pending.popleft().result()
            for item in rest:  # one submitted for the one that finished
                pending.append(pool.submit(function, item))
                break
            yield done
            del done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
