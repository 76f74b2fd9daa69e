"""Install size of what inference needs (`pip install spineai`) beside PyTorch's (issue 19).

Two fresh virtual environments: one with the engine alone (`pip install .`: ONNX Runtime, NumPy,
SimpleITK, SciPy, tqdm and what they pull in), one with the PyTorch that inference needed before
(`torch` and `safetensors`, CPU build as .ci/run installs it). For each, the size on disk of every
installed distribution (the files its RECORD lists) and of the whole site-packages, pip and
setuptools left out. In 3D Slicer, numpy and SimpleITK are Slicer's own; the report lists what
Slicer would add for each path.

Usage: python benchmarks/install_size.py [--torch torch==2.13.0]
Writes benchmarks/results/install_size.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LEFT_OUT = {"pip", "setuptools", "wheel", "spineai"}
SLICER_OWN = {"numpy", "simpleitk"}  # Slicer ships these: never installed by the extension
ENGINE_REST = {"numpy", "simpleitk", "scipy", "tqdm"}  # what both paths need besides the network runtime

MEASURE = """
import importlib.metadata as m, json, sys
from pathlib import Path
sizes = {}
for dist in m.distributions():
    name = dist.metadata["Name"].lower()
    total = 0
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    sizes[name] = total
json.dump(sizes, sys.stdout)
"""


def installed_sizes(requirements: list[str], folder: Path) -> dict[str, int]:
    """Bytes on disk per distribution in a fresh venv after ``pip install requirements``."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    done = subprocess.run([str(python), "-c", MEASURE], check=True, capture_output=True, text=True)
    return {name: size for name, size in json.loads(done.stdout).items() if name not in LEFT_OUT}


def summary(sizes: dict[str, int]) -> dict:
    mb = {name: round(size / 2**20, 1) for name, size in sorted(sizes.items(), key=lambda item: -item[1])}
    slicer_adds = {name: value for name, value in mb.items() if name not in SLICER_OWN}
    return {
        "total_mb": round(sum(sizes.values()) / 2**20, 1),
        "beyond_slicer_numpy_and_simpleitk_mb": round(sum(slicer_adds.values()), 1),
        "distributions_mb": mb,
    }


def runtime_mb(sizes: dict[str, int]) -> float:
    """What runs the networks: everything installed but NumPy, SimpleITK, SciPy and tqdm."""
    return round(sum(size for name, size in sizes.items() if name not in ENGINE_REST) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch", default="torch==2.13.0", help="the PyTorch requirement (CPU build here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inference = installed_sizes([str(REPO)], Path(tmp) / "inference")
        torch = installed_sizes([args.torch, "safetensors>=0.4"], Path(tmp) / "torch")
    report = {
        "benchmark": "install_size",
        "python": platform.python_version(),
        "platform": platform.machine(),
        "inference_pip_install_spineai": summary(inference),
        "pytorch_as_inference_needed_before": summary(torch),
        "network_runtime_mb": {
            "onnxruntime_with_dependencies": runtime_mb(inference),
            "torch_with_dependencies_and_safetensors": runtime_mb(torch),
        },
        "note": "the PyTorch figure is the CPU build; CUDA builds of torch add several GB of NVIDIA libraries",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "install_size.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
