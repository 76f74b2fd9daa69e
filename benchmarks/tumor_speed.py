"""Patch-based (sliding-window) inference speed and memory on a 512 x 512 x 40 volume (issue #6).

The volume is a real T1w scan (ivadomed-unf01 sub-unf01_T1w, 131 x 141 x 16 at 1 mm) resampled
(linear) onto a 512 x 512 x 40 grid and given 0.5 x 0.5 x 3 mm voxels: real MR intensities and
texture at the size of a large-field-of-view tumour series. Arrays are (slices, H, W), slices first.

The network is the tumour model (``models/tumor.json``) when it exists, else a UNet2D of its
architecture (3 input slices, channels 8-16-32-64-128) with fixed random weights (seed 0); the
output says which. Patches of 256 pixels, overlap 0.25, Gaussian blending (or the model's own
``inference`` settings).

Each side runs in its own fresh process, so each peak RSS is that side's alone:
  1. SpineAI in PyTorch: ``SlicePredictor.probability`` end to end on the canonical image (normalise,
     tile, infer, blend), then the network inference alone (``_predict_slices`` on the prepared
     slices); one warm-up run, then the median of ``--runs``. The network is the model's safetensors
     weights in PyTorch, BatchNorm folded, channels-last (``training.weights.TorchRunner``), as
     inference ran before ONNX Runtime.
  2. MONAI: ``monai.inferers.sliding_window_inference`` on the same PyTorch network (the same module,
     fused, same weights, channels-last), the same normalised 2.5D inputs (each slice with its
     neighbours as channels), the same patch, overlap, Gaussian mode (sigma 0.125) and batch size,
     blending probabilities as SpineAI does.
  3. The product: the same as 1 with the model's ONNX graph on ONNX Runtime (``inference.OnnxRunner``,
     no torch imported in that process), as an additional figure; left out for the random network,
     which has no graph.
The ratio is MONAI's inference time over SpineAI's in PyTorch (same runtime, same memory layout:
only the tiling differs). Target: SpineAI end to end within 30 s and 2 GB peak RSS on the 2-core
CPU, judged on the product's path (ONNX Runtime) when it runs, else on the PyTorch path.

Usage: python benchmarks/tumor_speed.py [--data DIR] [--runs 3] [--threads N] [--quick] [--out PATH]
(needs `pip install -e .[train,bench]`)
Writes benchmarks/results/tumor_speed.json (``--quick``, a 192 x 192 x 6 volume with 128 patches to
check the script works, writes nothing unless ``--out`` is given) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# No torch at module level: the ONNX Runtime worker runs the product's path, which imports none.
from spineai import inference
from spineai.inference import (
    OnnxRunner,
    SlicePredictor,
    network_spacing,
    normalise_intensity,
    resample_to_spacing,
    slice_axis,
)
from spineai.models.registry import MODELS_DIR, ModelSpec, model_for_task
from spineai.orientation import to_canonical
from spineai.tiling import batch_size_for_memory, with_context

SCAN = "ivadomed-unf01/sub-unf01_T1w.nii.gz"
RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"size_xyz": (512, 512, 40), "patch": 256}
QUICK = {"size_xyz": (192, 192, 6), "patch": 128}
SPACING_XYZ = (0.5, 0.5, 3.0)  # the coarse third axis makes the 40 slices the acquisition slices
TUMOR_CHANNELS = (8, 16, 32, 64, 128)
RANDOM_SOURCE = "no tumor.json: UNet2D(in_channels=3, channels=(8, 16, 32, 64, 128)), random weights (seed 0)"


def benchmark_volume(scan: Path, size_xyz) -> sitk.Image:
    """The scan resampled (linear) onto ``size_xyz`` voxels over its own extent, then given SPACING_XYZ."""
    image = sitk.ReadImage(str(scan), sitk.sitkFloat32)
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    spacing = extent / np.array(size_xyz)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (np.array(image.GetSpacing()) / 2)
    origin = corner + direction @ (spacing / 2)
    size = [int(s) for s in size_xyz]
    resampled = sitk.Resample(
        image, size, sitk.Transform(), sitk.sitkLinear, tuple(origin), tuple(spacing), image.GetDirection()
    )
    resampled.SetSpacing(SPACING_XYZ)
    return resampled


def shipped_model() -> bool:
    return (MODELS_DIR / "tumor.json").exists()


def tumor_spec(patch: int) -> tuple[ModelSpec, str]:
    """The tumour model's record if shipped, else one of its architecture for random weights; tiled at
    ``patch`` unless the model's record sets its own patch size. Also says which."""
    if shipped_model():
        spec = model_for_task("tumor")
        return replace(spec, patch_size=spec.patch_size or patch), f"shipped tumour model {spec.name}"
    spec = ModelSpec(
        name="benchmark-random-unet2d",
        task="tumor",
        weights="",
        sha256="",
        channels=TUMOR_CHANNELS,
        in_plane_spacing_mm=(0.5, 1.0),
        percentiles=(0.5, 99.5),
        labels={1: "Tumour"},
        context_slices=1,
        patch_size=patch,
        patch_overlap=0.25,
    )
    return spec, RANDOM_SOURCE


def torch_predictor(spec: ModelSpec) -> SlicePredictor:
    """SpineAI's SlicePredictor with the network in PyTorch: the safetensors weights (or random ones,
    seed 0), BatchNorm folded, channels-last (``TorchRunner``), as inference ran before ONNX Runtime."""
    import torch

    from spineai.models.unet import fuse_for_inference
    from spineai.training.weights import TorchRunner, load_model, new_network

    if spec.sha256:
        model = load_model(spec)
    else:
        torch.manual_seed(0)
        model = new_network(spec).eval()
    return SlicePredictor(spec, TorchRunner(fuse_for_inference(model), "cpu"))


def network_slices(canonical: sitk.Image, spec: ModelSpec) -> np.ndarray:
    """The normalised (slices, H, W) stack the network sees, as SlicePredictor prepares it."""
    spacing = tuple(reversed(canonical.GetSpacing()))
    axis = slice_axis(spacing, canonical.GetSize()[::-1])
    grid = resample_to_spacing(canonical, network_spacing(spacing, axis, spec.in_plane_spacing_mm))
    volume = normalise_intensity(sitk.GetArrayViewFromImage(grid), spec.percentiles)
    return np.moveaxis(volume, axis, 0)


def timed(function, runs: int) -> dict:
    """One warm-up call (first-call set-up of the CPU kernels), then the median of ``runs`` calls."""
    started = time.perf_counter()
    result = function()
    cold = time.perf_counter() - started
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return {
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "first_call_s": round(cold, 3),
        "result": result,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def spineai_worker(runtime: str, threads: int, volume_path: Path, patch: int, runs: int, out_npy: Path) -> dict:
    """SpineAI's tiled inference with the network in PyTorch (``runtime`` 'torch') or on ONNX Runtime
    ('onnxruntime', the product's path)."""
    spec, source = tumor_spec(patch)
    if runtime == "torch":
        predictor = torch_predictor(spec)
    else:
        predictor = SlicePredictor(spec, OnnxRunner(spec, "cpu"))
    batch_size = batch_size_for_memory(spec.patch_size, spec.in_channels, spec.channels, "cpu")  # as the predictor
    loaded_mb = peak_rss_mb()
    image = sitk.ReadImage(str(volume_path))
    end_to_end = timed(lambda: predictor.probability(to_canonical(image)), runs)
    slices = network_slices(to_canonical(image), spec)
    inference_timing = timed(lambda: predictor._predict_slices(slices, None, None, None), runs)
    np.save(out_npy, inference_timing.pop("result"))
    end_to_end.pop("result")
    return {
        "network": source,
        "runtime": "PyTorch, channels-last, BatchNorm folded" if runtime == "torch" else "ONNX Runtime",
        "torch_imported": "torch" in sys.modules,
        "patch": spec.patch_size,
        "overlap": spec.patch_overlap,
        "batch_size": batch_size,
        "threads": threads,
        "end_to_end": end_to_end,
        "inference": inference_timing,
        "rss_after_loading_mb": round(loaded_mb, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def monai_worker(volume_path: Path, patch: int, runs: int, batch_size: int, out_npy: Path) -> dict:
    import torch
    from monai.inferers import sliding_window_inference

    spec, _ = tumor_spec(patch)
    # The very network SpineAI's TorchRunner runs (BatchNorm folded, channels-last): only the tiling differs.
    network = torch_predictor(spec).runner.model
    loaded_mb = peak_rss_mb()
    slices = network_slices(to_canonical(sitk.ReadImage(str(volume_path))), spec)

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        # channels-last patches as TorchRunner feeds them; blend probabilities, as SpineAI does
        return torch.sigmoid(network(batch.contiguous(memory_format=torch.channels_last)))

    @torch.inference_mode()
    def infer() -> np.ndarray:
        inputs = torch.from_numpy(with_context(slices, np.arange(len(slices)), spec.context_slices))
        roi = (spec.patch_size, spec.patch_size)
        output = sliding_window_inference(
            inputs, roi, batch_size, probabilities, overlap=spec.patch_overlap, mode="gaussian", sigma_scale=0.125
        )
        return output[:, 0].numpy()

    inference_timing = timed(infer, runs)
    np.save(out_npy, inference_timing.pop("result"))
    return {
        "inference": inference_timing,
        "rss_after_loading_mb": round(loaded_mb, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def versions() -> dict:
    import monai
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "monai": monai.__version__, "onnxruntime": onnxruntime.__version__}


def run_worker(*arguments: str) -> dict:
    """Run this script as a worker in a fresh process; its last stdout line is its JSON report."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *arguments]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def markdown_table(report: dict) -> str:
    ours, monai, onnx = report["spineai"], report["monai"], report["spineai_onnxruntime"]
    size = "x".join(str(s) for s in report["volume_size_xyz"])

    def product(*keys) -> str:
        if onnx is None:
            return "n/a"
        value = onnx
        for key in keys:
            value = value[key]
        return str(value)

    rows = [
        f"Tiled inference, {size}, patch {ours['patch']}, overlap {ours['overlap']}, batch {ours['batch_size']}; "
        f"{report['runs']} runs, threads: {ours['threads']}. Network: {ours['network']}.",
        "",
        "| | SpineAI (tiled SlicePredictor), PyTorch | MONAI sliding_window_inference, PyTorch "
        "| SpineAI on ONNX Runtime (the product) |",
        "|---|---|---|---|",
        f"| end to end `probability()`, median (s) | {ours['end_to_end']['median_s']} | "
        f"| {product('end_to_end', 'median_s')} |",
        f"| network inference, median (s) | {ours['inference']['median_s']} | {monai['inference']['median_s']} "
        f"| {product('inference', 'median_s')} |",
        f"| first call in a fresh process (s) | {ours['inference']['first_call_s']} "
        f"| {monai['inference']['first_call_s']} | {product('inference', 'first_call_s')} |",
        f"| peak RSS of its process (MB) | {ours['peak_rss_mb']} | {monai['peak_rss_mb']} | {product('peak_rss_mb')} |",
        f"| RSS after loading, before inference (MB) | {ours['rss_after_loading_mb']} "
        f"| {monai['rss_after_loading_mb']} | {product('rss_after_loading_mb')} |",
        f"| ratio MONAI / SpineAI (inference, both PyTorch) | {report['ratio_monai_over_spineai']} | | |",
        f"| max abs probability difference SpineAI vs MONAI | {report['max_abs_difference_vs_monai']} | | |",
        f"| max abs probability difference ONNX Runtime vs PyTorch | "
        f"{report['max_abs_difference_onnxruntime_vs_torch']} | | |",
        "",
        f"Target (30 s end to end, 2048 MB peak RSS), on the {report['target_judged_on']} path: "
        f"{'met' if report['target_met'] else 'NOT met'}.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small volume, to check the script works")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads (default: all CPUs)")
    parser.add_argument("--out", type=Path, help="results JSON (default: results/tumor_speed.json unless --quick)")
    args = parser.parse_args()
    setting = QUICK if args.quick else FULL
    out = args.out or (None if args.quick else RESULTS / "tumor_speed.json")
    with tempfile.TemporaryDirectory() as tmp:
        volume_path = Path(tmp) / "volume.nii.gz"
        ours_npy, monai_npy, onnx_npy = (Path(tmp) / f"{side}.npy" for side in ("ours", "monai", "onnx"))
        sitk.WriteImage(benchmark_volume(args.data / SCAN, setting["size_xyz"]), str(volume_path))
        common = [str(args.threads), str(volume_path), str(setting["patch"]), str(args.runs)]
        ours = run_worker("spineai", *common, str(ours_npy))
        monai = run_worker("monai", *common, str(monai_npy), str(ours["batch_size"]))
        onnx = run_worker("onnxruntime", *common, str(onnx_npy)) if shipped_model() else None
        difference = float(np.abs(np.load(ours_npy) - np.load(monai_npy)).max())
        onnx_difference = float(np.abs(np.load(onnx_npy) - np.load(ours_npy)).max()) if onnx else None
    judged = onnx or ours
    report = {
        "scan": SCAN,
        "volume_size_xyz": list(setting["size_xyz"]),
        "volume_spacing_mm_xyz": list(SPACING_XYZ),
        "runs": args.runs,
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "versions": versions(),
        "spineai": ours,
        "monai": monai,
        "spineai_onnxruntime": onnx,
        "ratio_monai_over_spineai": round(monai["inference"]["median_s"] / ours["inference"]["median_s"], 2),
        "max_abs_difference_vs_monai": round(difference, 4),
        "max_abs_difference_onnxruntime_vs_torch": None if onnx_difference is None else float(f"{onnx_difference:.2g}"),
        "target_judged_on": "ONNX Runtime" if onnx else "PyTorch",
        "target_met": judged["end_to_end"]["median_s"] <= 30 and judged["peak_rss_mb"] <= 2048,
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(report))


def worker_main(arguments: list[str]) -> None:
    side, threads, volume, patch, runs, out_npy, *rest = arguments
    if side == "onnxruntime":
        inference.limit_threads(int(threads))  # intra-op threads of the session
        report = spineai_worker("onnxruntime", int(threads), Path(volume), int(patch), int(runs), Path(out_npy))
    else:
        import torch

        torch.set_num_threads(int(threads))
        if side == "spineai":
            report = spineai_worker("torch", int(threads), Path(volume), int(patch), int(runs), Path(out_npy))
        else:
            report = monai_worker(Path(volume), int(patch), int(runs), int(rest[0]), Path(out_npy))
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2:])
    else:
        main()
