"""Cord segmentation speed and memory on a 384x216x52 sagittal T2 (sct-legacy errsm_11).

Measured in one run, on this machine:
  1. SpineAI end to end in a warm process (read, infer, post-process, write mask + sidecar): median of 5.
  2. The same through the `spineai segment` command in a fresh process (Python + torch start-up and
     model loading included; morphometry CSV included): median of 5, with the peak RSS of that process.
  3. Network inference only: SpineAI's whole-slice batches vs MONAI's `sliding_window_inference`
     (the baseline) on the same network, the same normalised slices, same threads: median of 5, ratio.

Usage: python benchmarks/cord_speed.py [--data DIR] [--runs 5]   (needs `pip install -e .[bench]`)
Writes benchmarks/results/cord_speed.json and prints a table.
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

import numpy as np
import SimpleITK as sitk
import torch

from spineai.inference import (
    network_for,
    network_spacing,
    normalise_intensity,
    resample_to_spacing,
    slice_axis,
    with_context,
)
from spineai.io import OutputSet, read_image
from spineai.orientation import to_canonical
from spineai.pipeline import segment

SCAN = "sct-legacy/errsm_11/t2/t2.nii.gz"
RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(function, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), [round(t, 3) for t in times]


def end_to_end_warm(scan: Path, out_dir: Path) -> None:
    image = read_image(scan)
    result = segment(image, device="cpu")
    with OutputSet(out_dir) as out:
        out.write_image(result.mask, "t2_cord_seg.nii.gz")
        out.write_json(result.sidecar, "t2_cord_seg.json")


def cli_cold(scan: Path, out_dir: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one `spineai segment` process."""
    code = (
        "import resource, runpy, sys, time; t = time.perf_counter();"
        f"sys.argv = ['spineai', 'segment', {str(scan)!r}, '--out', {str(out_dir)!r}, '--device', 'cpu'];"
        "from spineai.cli import main; code = main();"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(code)"
    )
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    peak_mb = float(output.strip().splitlines()[-1].split()[1])
    return wall, peak_mb


def network_slices(scan: Path) -> tuple[torch.Tensor, object]:
    """The normalised slice stack the network sees for this scan, padded as SpineAI pads it."""
    predictor = network_for("cord", "cpu")
    canonical = to_canonical(read_image(scan))
    spacing = tuple(reversed(canonical.GetSpacing()))
    axis = slice_axis(spacing, canonical.GetSize()[::-1])
    grid = resample_to_spacing(canonical, network_spacing(spacing, axis, predictor.spec.in_plane_spacing_mm))
    volume = normalise_intensity(sitk.GetArrayViewFromImage(grid), predictor.spec.percentiles)
    return np.moveaxis(volume, axis, 0), predictor


def monai_sliding_window(slices: np.ndarray, model, context: int, roi: int, overlap: float, mode: str) -> None:
    """MONAI's patch-based inference of the same 2.5D network on the same slices (with their neighbours)."""
    from monai.inferers import sliding_window_inference

    def network(batch: torch.Tensor) -> torch.Tensor:
        # MONAI's patches in the layout SpineAI feeds the same channels-last network (spineai.tiling)
        return model(batch.contiguous(memory_format=torch.channels_last))

    inputs = torch.from_numpy(with_context(slices, np.arange(len(slices)), context))
    with torch.inference_mode():
        for start in range(0, len(inputs), 8):
            sliding_window_inference(inputs[start : start + 8], (roi, roi), 8, network, overlap=overlap, mode=mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scan = args.data / SCAN
    torch.set_num_threads(os.cpu_count() or 1)
    report = {
        "scan": SCAN,
        "size": list(read_image(scan).GetSize()),
        "runs": args.runs,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        end_to_end_warm(scan, Path(tmp) / "warmup")
        report["warm_end_to_end_s"], report["warm_runs_s"] = median_seconds(
            lambda: end_to_end_warm(scan, Path(tmp) / "warm"), args.runs
        )
        cold = [cli_cold(scan, Path(tmp) / f"cli{i}") for i in range(args.runs)]
        report["cli_process_s"] = round(statistics.median(t for t, _ in cold), 3)
        report["cli_peak_rss_mb"] = round(max(m for _, m in cold), 1)

    slices, predictor = network_slices(scan)
    ours, ours_runs = median_seconds(lambda: predictor._predict_slices(slices, None, None), args.runs)
    report["inference_spineai_s"], report["inference_spineai_runs_s"] = ours, ours_runs
    report["baselines"] = []
    context = predictor.spec.context_slices
    for roi, overlap, mode in [(128, 0.25, "constant"), (128, 0.5, "gaussian")]:
        # The very network SpineAI ran, channels-last as SlicePredictor holds it: only the tiling differs.
        seconds, runs = median_seconds(
            lambda r=roi, o=overlap, w=mode: monai_sliding_window(slices, predictor.model, context, r, o, w), args.runs
        )
        report["baselines"].append(
            {
                "name": f"MONAI sliding_window_inference roi={roi} overlap={overlap} mode={mode}",
                "seconds": round(seconds, 3),
                "runs_s": runs,
                "ratio_baseline_over_spineai": round(seconds / ours, 2),
            }
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cord_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
