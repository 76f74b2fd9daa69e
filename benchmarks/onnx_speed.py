"""`spineai segment` (cord) in a fresh process: ONNX Runtime against PyTorch, wall time and peak RSS (issue 19).

The scan is the 384x216x52 sagittal T2 sct-legacy errsm_11. Each run is one new Python process
running `spineai segment --device cpu` (read, reorient, network, post-processing, morphometry CSV,
mask and sidecar), timed from the parent from start to exit; its peak RSS is the process's own
ru_maxrss. Variants, interleaved run by run so that a busy machine slows them alike:

  onnx    the product: the networks' ONNX graphs on ONNX Runtime, no torch imported;
  torch   the same code with the networks in PyTorch (``torch_reference``: safetensors weights,
          BatchNorm folded, channels_last, as inference ran before);
  before  (with --before COMMIT) the engine as it was at COMMIT, extracted with git archive.

Then one fresh process per path times the steps of a segmentation apart (imports, model load,
network, post-processing, morphometry, writing), median of --runs.

Usage: python benchmarks/onnx_speed.py [--data DIR] [--runs 7] [--before 3dc4223] [--result PATH]  (torch: [train])
Writes benchmarks/results/onnx_speed.json (or --result) and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_load import children_cpu_seconds, machine_busy_seconds  # benchmarks/ is on the path as a script

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RESULTS = BENCHMARKS / "results"
SCAN = "sct-legacy/errsm_11/t2/t2.nii.gz"

RUN_CLI = """
import resource, sys, time
started = time.perf_counter()
if {torch}:
    sys.path.insert(0, {benchmarks!r})
    import torch_reference
    torch_reference.use_torch_networks()
from spineai.cli import main
code = main(['segment', {scan!r}, '--out', {out!r}, '--device', 'cpu'])
print('RESULT', time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(code)
"""

# The steps of `segment_file` for the cord, timed apart in one fresh process.
STEPS = """
import json, resource, sys, time
marks = [('start', time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
if {torch}:
    sys.path.insert(0, {benchmarks!r})
    import torch_reference
    torch_reference.use_torch_networks()
    import torch
from spineai import inference, pipeline
from spineai.io import OutputSet, read_image
from spineai.measure.cord import cord_morphometry
from spineai.orientation import canonical_array, from_canonical, to_canonical
from spineai.postprocess import clean_cord_mask
import SimpleITK as sitk
mark('imports')
image = read_image({scan!r})
canonical = to_canonical(image)
mark('read + reorient')
network = inference.network_for('cord', 'cpu')
mark('model load')
probability = canonical_array(network.probability(canonical))
mark('network')
labels = sitk.GetImageFromArray(clean_cord_mask(probability, network.spec.threshold))
labels.CopyInformation(canonical)
mask = from_canonical(labels, image)
mark('post-processing')
rows = cord_morphometry(mask)
mark('morphometry')
with OutputSet({out!r}) as out:
    out.write_image(mask, 't2_cord_seg.nii.gz')
    out.write_csv(rows, 't2_cord_morphometry.csv', list(rows[0]))
    out.write_json({{'rows': len(rows)}}, 't2_cord_seg.json')
mark('writing')
steps = {{b[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}}
print('RESULT', json.dumps(steps), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


OTHER_CPU: list[float] = []  # CPU seconds other processes used during each fresh-process run


def fresh_process(template: str, pythonpath: Path, torch: bool, scan: Path, out: Path) -> tuple[float, str, float]:
    """(wall seconds seen by the parent, what the child reported, its peak RSS in MB); the CPU time
    other processes used meanwhile goes to OTHER_CPU (the contention of a shared machine, measured)."""
    code = template.format(torch=torch, benchmarks=str(BENCHMARKS), scan=str(scan), out=str(out))
    environment = {**os.environ, "PYTHONPATH": str(pythonpath)}
    busy, ours = machine_busy_seconds(), children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    OTHER_CPU.append(machine_busy_seconds() - busy - (children_cpu_seconds() - ours))
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    reported, _, peak = done.stdout.strip().splitlines()[-1].split(" ", 1)[1].rpartition(" ")
    return wall, reported.strip(), float(peak)


def extract_engine(commit: str, folder: Path) -> Path:
    """The SpineAI/ folder of ``commit`` (engine and models) under ``folder``, for PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "SpineAI"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "SpineAI"


def summarise(runs: list[tuple[float, float]]) -> dict:
    walls, peaks = [w for w, _ in runs], [p for _, p in runs]
    return {
        "median_wall_s": round(statistics.median(walls), 3),
        "median_peak_rss_mb": round(statistics.median(peaks), 1),
        "wall_s": [round(w, 3) for w in walls],
        "peak_rss_mb": [round(p, 1) for p in peaks],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", help="also time the engine as it was at this git commit")
    parser.add_argument("--result", type=Path, default=RESULTS / "onnx_speed.json")
    args = parser.parse_args()
    import onnxruntime
    import torch

    scan = (args.data / SCAN).resolve()
    report = {
        "benchmark": "onnx_speed",
        "scan": SCAN,
        "runs": args.runs,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {"onnx": (REPO / "SpineAI", False), "torch": (REPO / "SpineAI", True)}
        if args.before:
            variants["before"] = (extract_engine(args.before, tmp), False)
            report["before_commit"] = args.before
        runs = {name: [] for name in variants}
        for index in range(args.runs + 1):  # the first round warms the file cache and is not counted
            for name, (path, torch_path) in variants.items():
                wall, _, peak = fresh_process(RUN_CLI, path, torch_path, scan, tmp / f"{name}{index}")
                if index:
                    runs[name].append((wall, peak))
            print(f"round {index}: " + ", ".join(f"{n} {r[-1][0]:.2f} s" for n, r in runs.items() if r), flush=True)
        report["segment_cli"] = {name: summarise(values) for name, values in runs.items()}
        report["steps"] = {}
        for name in ("onnx", "torch"):
            path, torch_path = variants[name]
            measured = [
                json.loads(fresh_process(STEPS, path, torch_path, scan, tmp / f"steps-{name}{i}")[1])
                for i in range(args.runs)
            ]
            report["steps"][name] = {s: round(statistics.median(m[s] for m in measured), 3) for s in measured[0]}
    onnx, reference = report["segment_cli"]["onnx"], report["segment_cli"]["torch"]
    report["onnx_wall_fraction_of_torch"] = round(onnx["median_wall_s"] / reference["median_wall_s"], 3)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["other_processes_cpu_s"] = {
        "total": round(sum(OTHER_CPU), 1),
        "largest_in_one_run": round(max(OTHER_CPU), 1),
        "runs": len(OTHER_CPU),
    }
    report["note"] = (
        "2-core machine shared with other work: runs are interleaved so that contention slows every "
        "variant alike; other_processes_cpu_s says how much CPU other processes took during the runs"
    )
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("segment_cli", "steps", "onnx_wall_fraction_of_torch")}, indent=2))


if __name__ == "__main__":
    main()
