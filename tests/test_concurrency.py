import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from lyskegle import concurrency
from lyskegle.concurrency import MEMORY_MARGIN, PeakMemory, concurrent_items, free_memory, map_in_order

GB = 2**30


class _InFlight:
    """Counts calls running at once; the calls after the first wait at a barrier of ``parties``."""

    def __init__(self, parties: int = 0) -> None:
        self.most = self.now = 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(parties) if parties else None

    def __call__(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        if self.barrier is not None and item > 0:
            self.barrier.wait(timeout=10)  # breaks (an error) unless `parties` calls run at once
        time.sleep(0.01 * (5 - item % 5))  # later items finish first
        with self.lock:
            self.now -= 1
        return item * 10


def test_results_come_in_order_and_two_items_run_at_once_when_memory_allows():
    calls = _InFlight(parties=2)
    out = list(map_in_order(calls, list(range(7)), threads=2, available_memory=lambda: 100 * GB))
    assert out == [0, 10, 20, 30, 40, 50, 60]
    assert calls.most == 2


def test_items_run_one_at_a_time_when_the_first_ones_memory_does_not_fit_again():
    calls = _InFlight()
    out = list(map_in_order(calls, list(range(5)), threads=2, available_memory=lambda: 0))
    assert out == [0, 10, 20, 30, 40] and calls.most == 1


def test_one_thread_never_starts_a_second_item():
    calls = _InFlight()
    assert list(map_in_order(calls, [3, 1, 2], threads=1)) == [30, 10, 20] and calls.most == 1


def test_how_many_at_a_time_follows_the_first_items_peak_scaled_by_size():
    # the first item took 1 GB: each further one needs MEMORY_MARGIN GB free
    assert concurrent_items(2, GB, 1.0, int(2 * MEMORY_MARGIN * GB)) == 2
    assert concurrent_items(2, GB, 1.0, int(2 * MEMORY_MARGIN * GB) - 1) == 1
    assert concurrent_items(4, GB, 1.0, int(3 * MEMORY_MARGIN * GB)) == 3
    # the largest later item is twice the first
    assert concurrent_items(2, GB, 2.0, int(2 * MEMORY_MARGIN * GB)) == 1
    assert concurrent_items(2, GB, 1.0, 0) == 1


def test_work_goes_beside_the_rest_only_when_the_free_memory_holds_it_with_the_margin():
    assert concurrency.room_for(GB, available_memory=lambda: int(MEMORY_MARGIN * GB))
    assert not concurrency.room_for(GB, available_memory=lambda: int(MEMORY_MARGIN * GB) - 1)
    assert concurrency.room_for(0, available_memory=lambda: 0)


def test_an_error_comes_where_its_item_would_have_and_later_items_are_not_yielded():
    def function(item: int) -> int:
        if item == 3:
            raise ValueError("item 3 is bad")
        return item

    out = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for value in map_in_order(function, list(range(8)), threads=2, available_memory=lambda: 100 * GB):
            out.append(value)
    assert out == [0, 1, 2]


@pytest.mark.parametrize("ahead", [0, 8])
def test_finished_items_wait_for_a_slow_earlier_one_only_as_far_as_ahead_allows(ahead):
    started, finished, lock = {}, {}, threading.Lock()
    running = _InFlight()

    def function(item: int) -> int:
        with lock:
            started[item] = time.monotonic()
        running(0)
        time.sleep(0.6 if item == 1 else 0.02)  # item 1 is a large file, the rest small ones
        with lock:
            finished[item] = time.monotonic()
        return item

    out = list(map_in_order(function, list(range(8)), threads=2, available_memory=lambda: 100 * GB, ahead=ahead))
    assert out == list(range(8)) and running.most <= 2
    behind = [item for item in range(2, 8) if started[item] < finished[1]]
    # with room ahead the second thread goes through every small item while the large one runs
    assert behind == ([2] if ahead == 0 else list(range(2, 8)))


def test_sizes_must_match_the_items():
    with pytest.raises(ValueError, match="2 sizes for 3 dates"):
        list(map_in_order(lambda item: item, [1, 2, 3], threads=2, sizes=[1, 2], what="dates"))


def test_peak_memory_sees_an_allocation_that_is_freed_again():
    with PeakMemory(interval_seconds=0.01) as peak:
        block = np.ones(300 * 2**20 // 8)  # 300 MB, touched
        time.sleep(0.1)
        del block
    assert peak.increase > 200 * 2**20
    with PeakMemory(interval_seconds=0.01) as quiet:
        time.sleep(0.05)
    assert quiet.increase < 50 * 2**20


def _cgroup(folder, proc_line: str, files: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    proc = folder / "cgroup"
    proc.write_text(proc_line + "\n")
    for name, text in files.items():
        (folder / "sys" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "sys" / name).write_text(text)
    return proc, folder / "sys"


@pytest.fixture
def machine_has_10_gb(monkeypatch):
    monkeypatch.setattr(concurrency.psutil, "virtual_memory", lambda: SimpleNamespace(available=10 * GB))


def test_free_memory_is_what_a_cgroup_v2_limit_leaves(tmp_path, machine_has_10_gb):
    proc, root = _cgroup(tmp_path, "0::/job/7", {"job/7/memory.max": f"{3 * GB}\n", "job/7/memory.current": f"{GB}\n"})
    assert free_memory(proc, root) == 2 * GB


def test_free_memory_is_what_a_cgroup_v1_limit_leaves(tmp_path, machine_has_10_gb):
    proc, root = _cgroup(tmp_path, "4:memory:/job/7", {"memory/job/7/memory.limit_in_bytes": str(5 * GB),
                                                       "memory/job/7/memory.usage_in_bytes": str(4 * GB)})
    assert free_memory(proc, root) == GB


def test_free_memory_is_the_machines_without_a_cgroup_limit_or_under_a_larger_one(tmp_path, machine_has_10_gb):
    v1, root = _cgroup(tmp_path / "v1", "4:memory:/", {"memory/memory.limit_in_bytes": "9223372036854771712",
                                                       "memory/memory.usage_in_bytes": str(GB)})
    v2, root2 = _cgroup(tmp_path / "v2", "0::/", {"memory.max": "max\n", "memory.current": str(GB)})
    larger, root3 = _cgroup(tmp_path / "larger", "0::/", {"memory.max": str(64 * GB), "memory.current": str(GB)})
    assert free_memory(v1, root) == free_memory(v2, root2) == free_memory(larger, root3) == 10 * GB
    assert free_memory(tmp_path / "no-such-file", root) == 10 * GB
