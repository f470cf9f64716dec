"""Full pipeline at a given size: wall time and peak memory per stage.

    python benchmarks/bench_pipeline.py --persons 1000000 [--workdir /tmp/lyskegle-bench]
    python benchmarks/bench_pipeline.py --persons 1000000 --only audit@self_sufficient [--only ...]
    python benchmarks/bench_pipeline.py --persons 6000000 --until features [--max-gib 23]

Copies the repository's tracked files to a scratch workspace, sets `synthesize.persons`, and runs
`dvc repro --single-item` stage by stage in pipeline order, sampling the resident memory of the
whole process tree every 0.2 s. Prints one line per stage and the totals; targets (issue 7): 1M
persons end to end in at most 10 minutes and 8 GB peak; 6M persons within 24 GB.

The stages import the workspace's own copy of the package (``PYTHONPATH``), so editing the
repository while a benchmark runs does not change what it measures. ``--only`` measures the named
stages again in an existing workspace, after copying the repository's current files into it (its
data stay). ``--until`` stops after the named stage. A stage whose process tree grows beyond
``--max-gib`` (default: the machine's memory less 1 GiB) is killed and reported as over the limit,
so a size that does not fit stops before the machine runs out of memory. Each stage's log (its
stderr: what it read, wrote and decided, such as how many as-of dates ran at a time) is kept in
``WORKDIR/logs-persons-N/STAGE.log``.

Before the first stage and after the last, it times a fixed reference workload
(``measure.reference_seconds``): this machine's speed swings by up to half between days, so
compare two runs' stage times only where their references agree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import reference_seconds, run_measured  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def stage_order(workspace: Path, env: dict[str, str]) -> list[str]:
    """Stage names (foreach items expanded) in the order `dvc repro` runs them."""
    listed = subprocess.run(
        [str(VENV_BIN / "dvc"), "repro", "--dry", "--force"], cwd=workspace, env=env,
        capture_output=True, text=True, check=True,
    ).stdout
    return [line.split("'")[1] for line in listed.splitlines() if line.startswith("Running stage")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lyskegle-bench"))
    parser.add_argument("--only", action="append", default=[], metavar="STAGE",
                        help="measure only this stage, in the existing workspace (repeat)")
    parser.add_argument("--until", metavar="STAGE", help="stop after this stage")
    parser.add_argument("--max-gib", type=float, default=psutil.virtual_memory().total / 2**30 - 1,
                        help="kill a stage whose processes hold more than this (default: memory less 1 GiB)")
    args = parser.parse_args()

    workspace = args.workdir / f"persons-{args.persons}"
    if args.only and not (workspace / "dvc.yaml").exists():
        sys.exit(f"--only needs an existing workspace: {workspace} has none (run without --only first)")
    if workspace.exists() and not args.only:
        shutil.rmtree(workspace)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, workspace / name)
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["synthesize"]["persons"] = args.persons
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(workspace / "src"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
    init = [["git", "init", "-q"]] if not args.only else []
    # the workspace has the repository's .dvc/config, so DVC caches outputs as `make pipeline` does
    for command in (*init, ["git", "add", "-A"], ["git", "commit", "-qm", "bench", "--allow-empty"]):
        subprocess.run(command, cwd=workspace, env=env, check=True, capture_output=True)

    print(f"lyskegle pipeline benchmark: {args.persons:,} persons, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB")
    # the machine's speed varies between days: compare runs only beside their reference
    reference_before = reference_seconds()
    print(f"machine reference workload (measure.reference_seconds): {reference_before:.2f} s")
    # cores = CPU seconds (user + system, every thread) per wall second: how much of the machine a
    # stage keeps busy; 1.0 on two cores means the second core mostly idles
    print(f"{'stage':<28}{'wall s':>10}{'cpu s':>10}{'cores':>7}{'peak GiB':>10}")
    total, total_cpu, overall_peak = 0.0, 0.0, 0
    stages = stage_order(workspace, env)
    unknown = [stage for stage in args.only if stage not in stages]
    if unknown:
        sys.exit(f"unknown stage(s) {unknown}; the stages are {stages}")
    if args.until and args.until not in stages:
        sys.exit(f"unknown stage {args.until!r}; the stages are {stages}")
    chosen = [s for s in stages if s in args.only] if args.only else stages
    if args.until:
        chosen = chosen[:chosen.index(args.until) + 1] if args.until in chosen else chosen
    limit = int(args.max_gib * 2**30)
    logs = args.workdir / f"logs-persons-{args.persons}"  # beside the workspace: not in its git or DVC
    logs.mkdir(parents=True, exist_ok=True)
    for stage in chosen:
        force = ["--force"] if args.only else []  # measured again even where nothing it reads changed
        seconds, cpu, peak, code = run_measured([str(VENV_BIN / "dvc"), "repro", "--single-item", *force, stage],
                                              workspace, env, 0.2, limit, logs / f"{stage}.log")
        total += seconds
        total_cpu += cpu
        overall_peak = max(overall_peak, peak)
        failed = f"  FAILED: over {args.max_gib:.1f} GiB" if peak > limit else "  FAILED" if code else ""
        print(f"{stage:<28}{seconds:>10.1f}{cpu:>10.1f}{cpu / seconds:>7.2f}{peak / 2**30:>10.2f}{failed}", flush=True)
        if code:
            sys.exit(f"{stage} failed; its log: {logs / f'{stage}.log'}")
    print(f"{'total':<28}{total:>10.1f}{total_cpu:>10.1f}{total_cpu / total:>7.2f}{overall_peak / 2**30:>10.2f}")
    print(f"machine reference workload: {reference_before:.2f} s before, {reference_seconds():.2f} s after")
    print(f"stage logs: {logs}")


if __name__ == "__main__":
    main()
