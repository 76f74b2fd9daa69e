"""Writing a model: safetensors weights, their ONNX export and the record, all through ``ModelSpec``.

The ONNX graph is the fused network (BatchNorm folded into the convolutions, as inference used to
run it in PyTorch) with dynamic batch, height and width, so one file serves whole slices of any size
and patches alike. Each export is checked against PyTorch on a random batch before it is recorded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import SpineAIError
from ..models.registry import ModelSpec, OnnxGraph, model_for_task, sha256_of
from .weights import inference_copy, load_model, save_weights

OPSET = 17
INPUT, OUTPUT = "image", "logits"
DYNAMIC = {0: "batch", 2: "height", 3: "width"}
TOLERANCE = 1e-3  # max |logit difference| between the export and PyTorch on the check batch (measured 1e-5)


def write_model(model: torch.nn.Module, spec: ModelSpec, out_dir: Path) -> ModelSpec:
    """``<task>.safetensors`` + ``<task>.onnx`` + ``<task>.json`` in ``out_dir``; returns the written spec."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sha256 = save_weights(model, out_dir / spec.weights)
    written = spec.trained(sha256, export_onnx(model, spec, out_dir), __version__, out_dir)
    written.write()
    return written


def export_onnx(model: torch.nn.Module, spec: ModelSpec, out_dir: Path) -> OnnxGraph:
    """Write ``<task>.onnx`` of ``model`` (left unchanged) in ``out_dir``, check it, return its record."""
    fused = inference_copy(model, spec).cpu()
    path = Path(out_dir) / f"{spec.task}.onnx"
    example = torch.zeros(1, spec.in_channels, 2 * spec.size_divisor, 3 * spec.size_divisor)
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice: unlike the new one, it needs no onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            fused,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: DYNAMIC, OUTPUT: DYNAMIC},
        )
    check_export(fused, path, spec)
    return OnnxGraph(
        file=path.name,
        sha256=sha256_of(path),
        opset=OPSET,
        input_name=INPUT,
        input_shape=("batch", spec.in_channels, "height", "width"),
        output_name=OUTPUT,
        output_shape=("batch", spec.out_channels, "height", "width"),
    )


def check_export(fused: torch.nn.Module, path: Path, spec: ModelSpec) -> float:
    """Max |logit difference| between ONNX Runtime and PyTorch on a random batch of two sizes;
    a ``SpineAIError`` above ``TOLERANCE``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for height, width in ((64, 96), (48, 160)):
        batch = rng.uniform(-0.5, 2.0, (2, spec.in_channels, height, width)).astype(np.float32)
        with torch.inference_mode():
            expected = fused(torch.from_numpy(batch)).numpy()
        worst = max(worst, float(np.abs(session.run([OUTPUT], {INPUT: batch})[0] - expected).max()))
    if worst > TOLERANCE:
        raise SpineAIError(f"{path}: the ONNX export differs from PyTorch by {worst:.2g} (tolerance {TOLERANCE})")
    return worst


def export_folder(models_dir: Path, tasks: list[str] | None = None) -> list[ModelSpec]:
    """Export the ONNX graph of every model record in ``models_dir`` (or of ``tasks``) from its
    checked safetensors weights and rewrite the records; the weights themselves are not touched."""
    models_dir = Path(models_dir)
    names = tasks or sorted(path.stem for path in models_dir.glob("*.json"))
    if not names:
        raise SpineAIError(f"{models_dir}: no model records (<task>.json) here")
    written = []
    for task in names:
        spec = model_for_task(task, models_dir)
        graph = export_onnx(load_model(spec), spec, models_dir)
        written.append(spec.trained(spec.sha256, graph, spec.engine_version, models_dir))
        written[-1].write()
    return written
