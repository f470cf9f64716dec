"""The benchmarks' measuring helper: each run reports its own peak, not an earlier run's."""

import importlib.util
import sys
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
