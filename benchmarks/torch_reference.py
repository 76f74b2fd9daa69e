"""The PyTorch path, kept for the benchmarks only: the shipped safetensors weights in PyTorch (BatchNorm
folded, channels_last, as inference ran before ONNX Runtime), behind the same ``SlicePredictor`` as
the product, so that only the network runtime differs. Needs ``pip install -e .[train]``.

``use_torch_networks()`` makes every task get its networks from here instead of ONNX Runtime.
"""

from __future__ import annotations

from functools import lru_cache

from spineai import inference
from spineai.models.registry import model_for_task


@lru_cache(maxsize=8)
def torch_network_for(task: str, device: str = "auto", models_dir=None) -> inference.SlicePredictor:
    """``inference.network_for`` with the network in PyTorch on the CPU (the benchmarks' reference)."""
    from spineai.models.unet import fuse_for_inference
    from spineai.training.weights import TorchRunner, load_model

    spec = model_for_task(task, models_dir)
    return inference.SlicePredictor(spec, TorchRunner(fuse_for_inference(load_model(spec)), "cpu"))


def use_torch_networks() -> None:
    """From now on, in this process, every task runs its networks in PyTorch (tasks look
    ``inference.network_for`` up when they run), whole slices 8 at a time as PyTorch inference ran
    them (the ONNX path sizes its batches to memory; PyTorch is slower at one slice per run)."""
    from spineai import tiling

    inference.network_for = torch_network_for
    tiling.WHOLE_SLICE_CPU_BUDGET = 1 << 40
