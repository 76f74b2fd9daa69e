"""Cord segmentation speed and memory on a 384x216x52 sagittal T2 (sct-legacy errsm_11).

Measured in one run, on this machine:
  1. SpineAI end to end in a warm process (read, infer, post-process, write mask + sidecar), the
     product's path (networks on ONNX Runtime): median of --runs.
  2. The same through the `spineai segment` command in a fresh process (Python start-up and model
     loading included; morphometry CSV included): median of --runs, with the peak RSS of that process.
  3. Network inference only, in PyTorch: SpineAI's whole-slice batches (8 slices a run, as PyTorch
     inference ran them) vs MONAI's `sliding_window_inference` (the baseline) on the very same
     network (safetensors weights, BatchNorm folded, channels-last: ``torch_reference``), the same
     normalised slices, same threads: median of --runs, ratio. Only the tiling differs.
  4. The product's network inference on ONNX Runtime (``inference.network_for``, its batches sized
     to its memory budget) on the same slices, as an additional figure: median of --runs.

Usage: python benchmarks/cord_speed.py [--data DIR] [--runs 5] [--out PATH]   (needs `pip install -e .[train,bench]`)
Writes benchmarks/results/cord_speed.json (or --out) and prints it.
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
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch_reference  # noqa: E402

from spineai import inference, tiling  # noqa: E402
from spineai.inference import network_spacing, normalise_intensity, resample_to_spacing, slice_axis  # noqa: E402
from spineai.io import OutputSet, read_image  # noqa: E402
from spineai.models.registry import ModelSpec, model_for_task  # noqa: E402
from spineai.orientation import to_canonical  # noqa: E402
from spineai.pipeline import segment  # noqa: E402
from spineai.tiling import with_context  # noqa: E402

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


def network_slices(scan: Path, spec: ModelSpec) -> np.ndarray:
    """The normalised (slices, H, W) stack the network sees for this scan, as SlicePredictor prepares it."""
    canonical = to_canonical(read_image(scan))
    spacing = tuple(reversed(canonical.GetSpacing()))
    axis = slice_axis(spacing, canonical.GetSize()[::-1])
    grid = resample_to_spacing(canonical, network_spacing(spacing, axis, spec.in_plane_spacing_mm))
    volume = normalise_intensity(sitk.GetArrayViewFromImage(grid), spec.percentiles)
    return np.moveaxis(volume, axis, 0)


@contextmanager
def whole_slices_eight_at_a_time():
    """Whole slices 8 per network run, as PyTorch inference ran them (``torch_reference``) and as the
    MONAI baseline below is fed; the product's ONNX path sizes its batches to a memory budget instead."""
    budget = tiling.WHOLE_SLICE_CPU_BUDGET
    tiling.WHOLE_SLICE_CPU_BUDGET = 1 << 40
    try:
        yield
    finally:
        tiling.WHOLE_SLICE_CPU_BUDGET = budget


def monai_sliding_window(slices: np.ndarray, model, context: int, roi: int, overlap: float, mode: str) -> None:
    """MONAI's patch-based inference of the same 2.5D network on the same slices (with their neighbours)."""
    from monai.inferers import sliding_window_inference

    def network(batch: torch.Tensor) -> torch.Tensor:
        # MONAI's patches in the layout SpineAI's TorchRunner feeds the same channels-last network
        return model(batch.contiguous(memory_format=torch.channels_last))

    inputs = torch.from_numpy(with_context(slices, np.arange(len(slices)), context))
    with torch.inference_mode():
        for start in range(0, len(inputs), 8):
            sliding_window_inference(inputs[start : start + 8], (roi, roi), 8, network, overlap=overlap, mode=mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "cord_speed.json", help="results JSON")
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
            "onnxruntime": onnxruntime.__version__,
        },
        "end_to_end_runtime": "ONNX Runtime (the product's path)",
        "inference_runtime": "PyTorch, channels-last, BatchNorm folded (SpineAI and the MONAI baselines alike)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        end_to_end_warm(scan, Path(tmp) / "warmup")
        report["warm_end_to_end_s"], report["warm_runs_s"] = median_seconds(
            lambda: end_to_end_warm(scan, Path(tmp) / "warm"), args.runs
        )
        cold = [cli_cold(scan, Path(tmp) / f"cli{i}") for i in range(args.runs)]
        report["cli_process_s"] = round(statistics.median(t for t, _ in cold), 3)
        report["cli_peak_rss_mb"] = round(max(m for _, m in cold), 1)

    slices = network_slices(scan, model_for_task("cord"))
    predictor = torch_reference.torch_network_for("cord")  # the network in PyTorch behind SpineAI's SlicePredictor
    with whole_slices_eight_at_a_time():
        predictor._predict_slices(slices, None, None, None)  # warm-up
        ours, ours_runs = median_seconds(lambda: predictor._predict_slices(slices, None, None, None), args.runs)
    report["inference_spineai_s"], report["inference_spineai_runs_s"] = ours, ours_runs
    report["baselines"] = []
    context = predictor.spec.context_slices
    for roi, overlap, mode in [(128, 0.25, "constant"), (128, 0.5, "gaussian")]:
        # The very network SpineAI ran, channels-last as its TorchRunner holds it: only the tiling differs.
        seconds, runs = median_seconds(
            lambda r=roi, o=overlap, w=mode: monai_sliding_window(slices, predictor.runner.model, context, r, o, w),
            args.runs,
        )
        report["baselines"].append(
            {
                "name": f"MONAI sliding_window_inference roi={roi} overlap={overlap} mode={mode}",
                "seconds": round(seconds, 3),
                "runs_s": runs,
                "ratio_baseline_over_spineai": round(seconds / ours, 2),
            }
        )

    product = inference.network_for("cord", "cpu")  # ONNX Runtime, batches sized as the product sizes them
    product._predict_slices(slices, None, None, None)  # warm-up
    seconds, runs = median_seconds(lambda: product._predict_slices(slices, None, None, None), args.runs)
    report["inference_onnxruntime_s"], report["inference_onnxruntime_runs_s"] = round(seconds, 3), runs
    report["ratio_onnxruntime_over_spineai_torch"] = round(seconds / ours, 2)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
