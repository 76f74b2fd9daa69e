"""ONNX Runtime against PyTorch: the label maps and tables of every task on real scans (issue 19).

Each scan is segmented twice through ``pipeline.segment`` in this process, once with the product's
ONNX graphs and once with the same networks in PyTorch (``torch_reference``), and the two label maps
are compared voxel by voxel, with the task's measurement tables. The stenosis task runs its disc
network on the scan and its sac network in the planes of the levels found.

With --before COMMIT, each scan also goes through `spineai segment` of this tree and of the engine as
it was at COMMIT (extracted with git archive; PyTorch inference then), and every file both write is
compared: label maps voxel by voxel, tables and level files as text.

Usage: python benchmarks/onnx_agreement.py [--data DIR] [--before 3dc4223]   (needs torch: `pip install -e .[train]`)
Writes benchmarks/results/onnx_agreement.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch_reference  # noqa: E402

from spineai import inference  # noqa: E402
from spineai.io import read_image  # noqa: E402
from spineai.orientation import to_canonical  # noqa: E402
from spineai.pipeline import segment  # noqa: E402
from spineai.sample import T2  # noqa: E402
from spineai.tasks import TaskInputs, get_task  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# (task, scan relative to the data folder; "sample" is the bundled T2)
SCANS = [
    ("cord", "sct-legacy/errsm_11/t2/t2.nii.gz"),
    ("cord", "sample"),
    ("lesion", "unlabelled/t2_ms_axial.nii.gz"),
    ("lesion", "gm-challenge/sub-9669/anat/sub-9669_run-1_T2starw.nii.gz"),
    ("tumor", "ivadomed-unf01/sub-unf01_T1w.nii.gz"),
    ("stenosis", "lumbar-ivd/ivd46_t2.nii.gz"),
    ("stenosis", "unlabelled/t2_lumbar_sagittal.nii.gz"),
]


def segment_both(task: str, image: sitk.Image):
    """(ONNX result, PyTorch result) of one scan: the label maps and the task's tables."""
    results = []
    for network_for in (inference.network_for, torch_reference.torch_network_for):
        inference_network_for = inference.network_for
        inference.network_for = network_for
        try:
            result = segment(image, task, "cpu")
            tables, _ = get_task(task).measure_result(result, image, TaskInputs())
        finally:
            inference.network_for = inference_network_for
        results.append((result, tables))
    return results


def compare(task: str, onnx, reference) -> dict:
    (a_result, a_tables), (b_result, b_tables) = onnx, reference
    a, b = (sitk.GetArrayFromImage(r.mask) for r in (a_result, b_result))
    differing = int(np.count_nonzero(a != b))
    record = {
        "voxels": int(a.size),
        "labelled_voxels_onnx": int(np.count_nonzero(a)),
        "labelled_voxels_torch": int(np.count_nonzero(b)),
        "differing_voxels": differing,
        "voxel_agreement": round(1 - differing / a.size, 8),
        "label_maps_identical": differing == 0,
        "tables_identical": same_tables(a_tables, b_tables),
    }
    if task == "stenosis":
        record["disc_levels_identical"] = a_result.sidecar["disc_levels"] == b_result.sidecar["disc_levels"]
        record["levels_found"] = [level["level"] for level in a_result.sidecar["disc_levels"]]
    return record


def probability_difference(task: str, image: sitk.Image) -> float:
    """Max |probability difference| of the task's own one-target network over the scan (cord, lesion, tumour)."""
    canonical = to_canonical(image)
    a, b = (
        sitk.GetArrayFromImage(network_for(task, "cpu").probability(canonical))
        for network_for in (inference.network_for, torch_reference.torch_network_for)
    )
    return float(np.abs(a - b).max())


def same_tables(first, second) -> bool:
    """Equal rows in every table (NaN equal to NaN)."""
    if [t.name for t in first] != [t.name for t in second]:
        return False
    return all(_same_rows(a.rows, b.rows) for a, b in zip(first, second, strict=True))


def _same_rows(first: list[dict], second: list[dict]) -> bool:
    def same(x, y):
        both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        return both_nan or x == y

    return len(first) == len(second) and all(
        a.keys() == b.keys() and all(same(a[k], b[k]) for k in a) for a, b in zip(first, second, strict=True)
    )


def extract_engine(commit: str, folder: Path) -> Path:
    """The SpineAI/ folder of ``commit`` (engine and models) under ``folder``, for PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "SpineAI"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "SpineAI"


def cli_outputs(engine: Path, task: str, scan: Path, out: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "spineai",
        "segment",
        str(scan),
        "--task",
        task,
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(engine)})
    return out


def compare_outputs(ours: Path, theirs: Path) -> dict:
    """Every file both `spineai segment` runs wrote: images voxel by voxel, the rest as text (the
    sidecar, which records times and versions, left out)."""
    names = sorted(p.name for p in ours.iterdir() if not p.name.endswith("_seg.json"))
    differing = {}
    for name in names:
        if name.endswith(".nii.gz"):
            a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(folder / name))) for folder in (ours, theirs))
            count = int(np.count_nonzero(a != b))
        else:
            count = int((ours / name).read_text() != (theirs / name).read_text())
        if count:
            differing[name] = count
    return {"files_compared": names, "files_differing": differing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--before", help="also compare `spineai segment` with the engine at this git commit")
    args = parser.parse_args()
    temporary = tempfile.TemporaryDirectory()
    before = extract_engine(args.before, Path(temporary.name)) if args.before else None
    import torch

    report = {
        "benchmark": "onnx_agreement",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "scans": [],
    }
    for task, scan in SCANS:
        image = read_image(T2 if scan == "sample" else args.data / scan)
        record = {"task": task, "scan": scan, "size": list(image.GetSize())}
        record |= compare(task, *segment_both(task, image))
        if task != "stenosis":
            record["max_probability_difference"] = float(f"{probability_difference(task, image):.2g}")
        if before:
            path = T2 if scan == "sample" else args.data / scan
            runs = [
                cli_outputs(engine, task, path, Path(temporary.name) / f"{name}-{len(report['scans'])}")
                for name, engine in (("now", REPO / "SpineAI"), ("before", before))
            ]
            record[f"cli_vs_{args.before}"] = compare_outputs(*runs)
        report["scans"].append(record)
        print(json.dumps(record), flush=True)
    report["all_label_maps_identical"] = all(r["label_maps_identical"] for r in report["scans"])
    report["all_tables_identical"] = all(r["tables_identical"] for r in report["scans"])
    if before:
        report["before_commit"] = args.before
        report[f"all_cli_outputs_identical_to_{args.before}"] = not any(
            r[f"cli_vs_{args.before}"]["files_differing"] for r in report["scans"]
        )
    temporary.cleanup()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_agreement.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n| task | scan | voxels | differing | agreement | tables identical |\n|---|---|---|---|---|---|")
    for r in report["scans"]:
        print(
            f"| {r['task']} | {r['scan']} | {r['voxels']} | {r['differing_voxels']} | "
            f"{r['voxel_agreement']:.8f} | {r['tables_identical']} |"
        )


if __name__ == "__main__":
    main()
