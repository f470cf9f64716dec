"""The benchmarks' measuring helper: each run reports its own peak, not an earlier run's."""

import importlib.util
import sys
import threading
from pathlib import Path

MEASURE = Path(__file__).resolve().parents[1] / "benchmarks" / "measure.py"


def _measure_module():
    spec = importlib.util.spec_from_file_location("bench_measure", MEASURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_small_run_after_a_large_one_reports_its_own_peak():
    measure = _measure_module()
    large = [sys.executable, "-c", "import time; block = bytearray(400 * 2**20); time.sleep(0.3)"]
    small = [sys.executable, "-c", "pass"]
    _, _, large_peak, large_code = measure.run_measured(large, interval=0.05)
    _, _, small_peak, small_code = measure.run_measured(small, interval=0.05)
    assert large_code == small_code == 0
    assert large_peak > 400 * 2**20
    assert small_peak < 200 * 2**20


def test_a_run_over_the_memory_limit_is_stopped_before_it_finishes():
    measure = _measure_module()
    grows = [sys.executable, "-c", "import time\nblocks = []\nfor _ in range(40):\n"
             "    blocks.append(bytearray(50 * 2**20)); time.sleep(0.05)\nprint('finished')"]
    wall, _, peak, code = measure.run_measured(grows, interval=0.02, limit=300 * 2**20)
    assert code == -9
    assert 300 * 2**20 < peak < 1000 * 2**20  # stopped long before the 2 GB it would have reached


def test_a_run_writing_more_than_a_pipe_holds_to_stderr_is_not_stalled():
    measure = _measure_module()
    chatty = [sys.executable, "-c", "import sys\nfor i in range(20000): sys.stderr.write('progress %d\\n' % i)"]
    done = []
    worker = threading.Thread(target=lambda: done.append(measure.run_measured(chatty, interval=0.02)), daemon=True)
    worker.start()
    worker.join(60)  # a stalled child would wait for ever on its full pipe
    assert done and done[0][3] == 0


def test_a_runs_stderr_is_kept_whole_in_its_log(tmp_path):
    measure = _measure_module()
    lines = [f"as-of date {i}: 2 at a time" for i in range(5000)]  # more than the tail keeps
    chatty = [sys.executable, "-c", "import sys\nfor i in range(5000): sys.stderr.write(f'as-of date {i}: 2 at a time\\n')"]
    _, _, _, code = measure.run_measured(chatty, interval=0.02, log=tmp_path / "stage.log")
    assert code == 0
    assert (tmp_path / "stage.log").read_text().splitlines() == lines
