"""Cohort throughput of `spineai batch`: 1 vs 2 Dask workers, and a killed-and-restarted run.

The cohort cycles through the labelled scans of SpineAI/spineai/training/cord_cases.csv (real scans
from ../shared/data: sagittal and axial, T1w/T2w/T2*w/MT, 3 to 52 slices) until it holds --cases
cases (repeats are symlinks under new names, so each is a separate case). Each measurement is one
`spineai batch` process, timed from start to exit as a user sees it: Dask cluster start-up,
segmentation + morphometry of every case, the cohort tables and the QC report.

  1. workers = 1 and workers = 2 (then 3, ... with --workers), interleaved and repeated (--repeats,
     default 3): cases per minute of the median run and the ratio to 1 worker.
  2. A run with 2 workers killed (SIGKILL to its process group, as a job scheduler would) once a
     quarter of the cases are finished, then restarted: every case must be in the summary exactly
     once, and the restarted run must recompute none of the cases finished before the kill.

Usage: python benchmarks/cohort_throughput.py [--data DIR] [--cases 20] [--workers 1 2] [--repeats 3] [--start ROW]
Writes benchmarks/results/cohort_throughput.json (or --result PATH) and prints it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
from machine_load import children_cpu_seconds, machine_busy_seconds  # benchmarks/ is on the path as a script

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "SpineAI" / "spineai" / "training" / "cord_cases.csv"
RESULTS = REPO / "benchmarks" / "results"


def build_cohort(data: Path, count: int, folder: Path, start: int = 0) -> list[str]:
    """Symlinks 00_<name>.nii.gz ... cycling through the manifest's scans from row ``start``; returns the ids."""
    with open(MANIFEST, newline="") as handle:
        scans = [row["image"] for row in csv.DictReader(handle)]
    folder.mkdir(parents=True)
    ids = []
    for index in range(count):
        source = data / scans[(start + index) % len(scans)]
        case_id = f"{index:02d}_{source.name.split('.')[0]}"
        (folder / f"{case_id}.nii.gz").symlink_to(source)
        ids.append(case_id)
    return ids


def batch_command(cohort: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "spineai", "batch", str(cohort), "--out", str(out), "--workers", str(workers)]


def timed_batch(cohort: Path, out: Path, workers: int) -> dict:
    """One `spineai batch` process: wall seconds, and when its first and last case finished (from the
    sidecars' modification times), which splits off the fixed start-up and wind-down costs."""
    before = finished(out) if out.exists() else {}
    busy_before, ours_before = machine_busy_seconds(), children_cpu_seconds()
    started_wall, started = time.time_ns(), time.perf_counter()
    done = subprocess.run([*batch_command(cohort, out, workers), "--device", "cpu"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    ours = children_cpu_seconds() - ours_before
    if done.returncode != 0:
        raise SystemExit(f"spineai batch failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    new = sorted(t for k, t in finished(out).items() if before.get(k) != t)
    record = {"workers": workers, "seconds": round(seconds, 2), "summary": summary_line(done.stdout)}
    # Our own processes load the machine up to about workers + 0.5; much more means someone else ran too.
    record["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    # CPU time the machine spent on other processes during the run: a shared machine's contention, measured.
    record["other_processes_cpu_s"] = round(machine_busy_seconds() - busy_before - ours, 1)
    if new:
        record["first_case_done_after_s"] = round((new[0] - started_wall) / 1e9, 2)
        record["last_case_done_after_s"] = round((new[-1] - started_wall) / 1e9, 2)
    return record


def summary_line(printed: str) -> str:
    match = re.search(r"spineai batch: (.*)", printed)
    return match.group(1) if match else printed.strip()[-200:]


def finished(out: Path) -> dict[str, int]:
    """Case id -> sidecar modification time (ns) of every finished case."""
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/[!.]*_cord_seg.json")}  # not .partial-*


def case_seconds(out: Path) -> list[float]:
    return [json.loads(p.read_text())["seconds"] for p in out.glob("*/[!.]*_cord_seg.json")]


def measured_run(cohort: Path, out: Path, workers: int, cases: int) -> dict:
    """One timed batch run with its throughput over the whole run and between first and last case."""
    run = timed_batch(cohort, out, workers)
    run["cases_per_minute"] = round(cases / run["seconds"] * 60, 2)
    span = run["last_case_done_after_s"] - run["first_case_done_after_s"]
    # Between the first and the last finished case: throughput without the fixed costs.
    run["steady_cases_per_minute"] = round((cases - 1) / span * 60, 2) if span > 0 else None
    seconds = case_seconds(out)  # the sidecar's seconds: segmentation only, not morphometry
    run["mean_segmentation_seconds"] = round(sum(seconds) / len(seconds), 3)
    return run


def killed_and_restarted(cohort: Path, out: Path, ids: list[str], workers: int = 2) -> dict:
    command = [*batch_command(cohort, out, workers), "--device", "cpu"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = max(1, len(ids) // 4)
    while len(finished(out)) < target and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = finished(out)
    restart = timed_batch(cohort, out, workers)
    after = finished(out)
    with open(out / "cord_summary.csv", newline="") as handle:
        summary_ids = [row["case_id"] for row in csv.DictReader(handle)]
    return {
        "finished_before_kill": len(before),
        "restart": restart,
        "recomputed_after_restart": sorted(k for k in before if after.get(k) != before[k]),
        "summary_rows": len(summary_ids),
        "every_case_exactly_once": sorted(summary_ids) == sorted(ids),
    }


def training_running() -> bool:
    """A model training on the same CPU would make every figure here meaningless: say so in the result."""
    return bool(subprocess.run(["pgrep", "-f", "spineai train"], capture_output=True, text=True).stdout.split())


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "competing_training_process": training_running(),
    }


def caveat(report: dict) -> str:
    """Say when the figures are not the benchmark's (a smoke size, or a machine busy with other work)."""
    problems = []
    if report["cases"] < 20:
        problems.append(f"smoke run of {report['cases']} cases (the benchmark is 20)")
    if report["machine"]["competing_training_process"]:
        problems.append("a model training process competed for the CPU: timings are not representative")
    return "; ".join(problems) or "representative"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", REPO.parent / "shared/data")))
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count; the median run is reported")
    parser.add_argument("--start", type=int, default=0, help="first manifest row of the cycle (smoke runs)")
    parser.add_argument("--result", type=Path, default=RESULTS / "cohort_throughput.json")
    args = parser.parse_args()

    report = {"benchmark": "cohort_throughput", "cases": args.cases, "first_manifest_row": args.start}
    report |= {"machine": machine(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "cohort"
        ids = build_cohort(args.data, args.cases, cohort, args.start)
        # Worker counts interleaved, each repeated: a drift in the machine's load hits all alike.
        attempts = {workers: [] for workers in args.workers}
        for repeat in range(args.repeats):
            for workers in args.workers:
                out = Path(tmp) / f"out-{workers}-{repeat}"
                attempts[workers].append(measured_run(cohort, out, workers, args.cases))
        for runs in attempts.values():
            run = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median run
            run["all_runs_seconds"] = [r["seconds"] for r in runs]
            report["runs"].append(run)
        base = report["runs"][0]["cases_per_minute"]
        steady = report["runs"][0]["steady_cases_per_minute"]
        for run in report["runs"]:
            run["speed_up_vs_first"] = round(run["cases_per_minute"] / base, 2)
            if steady and run["steady_cases_per_minute"]:
                run["steady_speed_up_vs_first"] = round(run["steady_cases_per_minute"] / steady, 2)
        report["killed_and_restarted"] = killed_and_restarted(cohort, Path(tmp) / "out-killed", ids)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["competing_training_process"] |= training_running()
    report["note"] = caveat(report)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
