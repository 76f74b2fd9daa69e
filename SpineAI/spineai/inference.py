"""Slice-wise network inference on a canonical image, on ONNX Runtime.

The 2D network runs on the slices of the acquisition plane: the slice axis is the one with the
coarsest spacing (ties go to the axis with fewest voxels, e.g. the R-L axis of a 1 mm sagittal
volume). The two in-plane axes are resampled (SimpleITK, linear) only when their spacing lies
outside the range the model was trained on, and the probabilities are resampled back to the
canonical grid. Slices are inferred whole in batches, or, when the model's record sets
``inference.patch_size``, in overlapping patches blended with Gaussian weights (``spineai.tiling``)
so that large fields of view fit in memory.

The networks run as ONNX graphs (``models/<task>.onnx``, exported from the safetensors weights by
``spineai.training.export``) on ONNX Runtime's CPU or CUDA provider: inference needs no PyTorch.
Anything with ``run(batch) -> logits`` can stand in for the graph (training validates its PyTorch
network through the same code, ``training.weights.TorchRunner``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .devices import DEVICES
from .errors import Cancelled, SpineAIError
from .models.registry import ModelSpec, model_for_task, verified_bytes
from .tiling import batch_size_for_memory, predict_tiled, slices_per_batch, with_context

log = logging.getLogger(__name__)

Progress = Callable[[float], None]
ShouldCancel = Callable[[], bool]


CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# Heuristic cuDNN algorithm choice: the default exhaustive search benchmarks every new input shape,
# and whole-slice batches change shape with every scan.
CUDA_OPTIONS = {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}
_threads: int | None = None  # intra-op threads of new sessions; None: ONNX Runtime's default (one per core)


def cuda_available() -> bool:
    """Whether ONNX Runtime offers its CUDA provider here (onnxruntime-gpu installed)."""
    import onnxruntime

    return CUDA in onnxruntime.get_available_providers()


def resolve_device(device: str) -> str:
    """'cpu', or 'cuda' where ONNX Runtime has its CUDA provider. 'auto' picks CUDA when offered;
    'cuda' without it warns once and runs on the CPU (as a CUDA failure does)."""
    if device not in DEVICES:
        raise SpineAIError(f"unknown device '{device}' (choose {', '.join(DEVICES)})")
    if device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if device == "cuda":
        _warn_once(
            "CUDA requested but ONNX Runtime has no CUDA provider here (it needs onnxruntime-gpu and an "
            "NVIDIA GPU); running on the CPU instead"
        )
    return "cpu"


@cache
def _warn_once(message: str) -> None:
    log.warning(message)


def limit_threads(count: int | None) -> None:
    """Intra-op threads of the sessions made from now on (cohort workers run one each)."""
    global _threads
    if count != _threads:
        _threads = count
        network_for.cache_clear()


def slice_axis(spacing_zyx, size_zyx) -> int:
    """Array axis across the acquisition slices: coarsest spacing, then fewest voxels."""
    return min(range(3), key=lambda axis: (-round(spacing_zyx[axis], 3), size_zyx[axis]))


def network_spacing(spacing_zyx, axis: int, spacing_range) -> tuple[float, float, float]:
    """Spacing on the network grid: in-plane spacings clipped to the trained range, slice axis kept."""
    low, high = spacing_range
    return tuple(s if i == axis else float(np.clip(s, low, high)) for i, s in enumerate(spacing_zyx))


def resample_to_spacing(image: sitk.Image, spacing_zyx, interpolator=sitk.sitkLinear) -> sitk.Image:
    """Resample onto a grid of the given spacing covering the same physical extent."""
    old_xyz = np.array(image.GetSpacing())
    new_xyz = np.array(spacing_zyx[::-1], dtype=float)
    if np.allclose(old_xyz, new_xyz):
        return image
    size = np.maximum(np.round(np.array(image.GetSize()) * old_xyz / new_xyz), 1).astype(int)
    # Keep the first voxel's corner in place, so the two grids cover the same extent.
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (old_xyz / 2)
    origin = corner + direction @ (new_xyz / 2)
    return sitk.Resample(
        image,
        [int(s) for s in size],
        sitk.Transform(),
        interpolator,
        tuple(origin),
        tuple(new_xyz),
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


@dataclass(frozen=True)
class Intensity:
    """The map of a volume's [p_low, p_high] percentile range to [0, 1] (robust to scanner scale),
    outliers clipped to [-0.5, 2]. Elementwise, so a batch of slices normalised on its own is
    bit-identical to the same slices of the normalised volume: inference never holds a float copy
    of the whole scan."""

    low: float
    scale: float

    @classmethod
    def of(cls, array: np.ndarray, percentiles) -> Intensity:
        low, high = (float(p) for p in np.percentile(array, percentiles))
        return cls(low, high - low if high > low else 1.0)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        normalised = np.array(values, dtype=np.float32)
        normalised -= np.float32(self.low)
        normalised /= np.float32(self.scale)
        return np.clip(normalised, -0.5, 2.0, out=normalised)


def normalise_intensity(array: np.ndarray, percentiles) -> np.ndarray:
    """``array`` as float32, its [p_low, p_high] percentile range mapped to [0, 1], outliers clipped."""
    return Intensity.of(array, percentiles)(array)


@lru_cache(maxsize=8)
def network_for(task: str, device: str = "auto", models_dir: Path | None = None) -> SlicePredictor:
    """The network of ``task``'s model record (``models_dir``: another model folder), loaded once per
    process and device. Every task's networks come from here, so each has the CUDA-to-CPU fallback."""
    spec = model_for_task(task, models_dir)
    return SlicePredictor(spec, OnnxRunner(spec, resolve_device(device)))


class OnnxRunner:
    """A model's ONNX graph in an ONNX Runtime session: ``run(batch)`` maps (N, C, H, W) float32 to
    (N, out_channels, H, W) logits. The graph's sha256 is checked against the record first, and the
    session is built from exactly the bytes checked."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", graph: bytes | None = None):
        if spec.onnx is None:
            raise SpineAIError(
                f"{spec.folder / spec.task}.json: the model record names no ONNX graph; "
                f"write one with: spineai export-onnx {spec.folder}"
            )
        self.spec = spec
        self._graph = graph or verified_bytes(spec.onnx_path, spec.onnx.sha256, "ONNX graph")
        self.session, self.device = open_session(self._graph, device)

    def run(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.spec.onnx.input_name: np.ascontiguousarray(batch, np.float32)}
        return self.session.run([self.spec.onnx.output_name], feed)[0]

    def on_cpu(self) -> OnnxRunner:
        return OnnxRunner(self.spec, "cpu", self._graph)


def open_session(graph: bytes, device: str):
    """(session, device it runs on): the CUDA provider when asked and it works, else the CPU with a
    one-line warning. ONNX Runtime's own fallback is replaced by ours, which says it in one line."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the one-line warning below says what a missing CUDA library means
    # No CPU arena: it keeps the largest batch's activations for the life of the process (about 230 MB
    # more peak RSS for a `spineai segment` measured), and plain allocations were as fast here.
    options.enable_cpu_mem_arena = False
    # Idle threads sleep instead of spinning: on a machine shared with other work, spinning threads
    # took the cord network 1.8x longer here (0.64 s against 1.16 s for 26 slices, load 4.9 on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if _threads:
        options.intra_op_num_threads = _threads
    if device == "cuda":
        reason = "the CUDA provider did not start"
        try:
            # ONNX Runtime prints a fallback banner and warns on its own; the one line below replaces both.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                session = onnxruntime.InferenceSession(graph, options, providers=[(CUDA, CUDA_OPTIONS), CPU])
            if session.get_providers()[0] == CUDA:
                session.disable_fallback()  # a CUDA error at run time comes to SlicePredictor instead
                return session, "cuda"
        except Exception as error:  # onnxruntime's errors derive from Exception only
            reason = _first_line(error)
        _warn_once(f"CUDA failed ({reason}); running on the CPU instead")
    return onnxruntime.InferenceSession(graph, options, providers=[CPU]), "cpu"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation failure of the CUDA provider (its arena or cudaMalloc), by its message."""
    text = str(error).lower()
    return "out of memory" in text or "failed to allocate" in text


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32 logistic function without overflow for large |logits|."""
    decay = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1 / (1 + decay), decay / (1 + decay)).astype(np.float32)


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)


def pad_to(batch: np.ndarray, divisor: int) -> np.ndarray:
    """Zero-pad the last two axes at their ends up to multiples of ``divisor``."""
    pad_h, pad_w = (-batch.shape[-2]) % divisor, (-batch.shape[-1]) % divisor
    if not pad_h and not pad_w:
        return batch
    return np.pad(batch, [(0, 0)] * (batch.ndim - 2) + [(0, pad_h), (0, pad_w)])


LOCATE_MIN_PIXELS = 128  # the side of the training patches (``training.train``)


class SlicePredictor:
    """A network on a device: slice-wise probabilities of a canonical image (one-target networks)
    or class probabilities of 2D images (many-class networks). ``runner`` runs the network
    (``OnnxRunner``; training passes its PyTorch network). A CUDA failure reruns the work on the
    CPU with a warning."""

    def __init__(self, spec: ModelSpec, runner, batch_size: int = 8):
        self.spec = spec
        self.runner = runner
        self.batch_size = batch_size
        self.divisor = spec.size_divisor

    @property
    def device(self) -> str:
        """'cpu' or 'cuda': where the network runs now."""
        return self.runner.device

    def probability(
        self, canonical: sitk.Image, progress: Progress | None = None, should_cancel: ShouldCancel | None = None
    ) -> sitk.Image:
        """Cord probability (float32) on the canonical image's grid."""
        spacing = tuple(reversed(canonical.GetSpacing()))
        axis = slice_axis(spacing, canonical.GetSize()[::-1])
        network_grid = resample_to_spacing(canonical, network_spacing(spacing, axis, self.spec.in_plane_spacing_mm))
        values = sitk.GetArrayViewFromImage(network_grid)
        normalise = Intensity.of(values, self.spec.percentiles)
        # Batches are normalised as they are cut, and the probabilities written slice by slice into
        # the volume's own layout: no float or reordered copy of the whole volume is made.
        probabilities = np.empty(values.shape, np.float32)
        slices, out = np.moveaxis(values, axis, 0), np.moveaxis(probabilities, axis, 0)
        grid_spacing = network_grid.GetSpacing()[::-1]
        spacing = np.delete(grid_spacing, axis)  # (rows, columns) mm of a slice
        step = neighbour_step(self.spec, grid_spacing[axis])
        self._with_cpu_fallback(
            lambda: self._predict_slices(slices, out, progress, should_cancel, normalise, spacing, step)
        )
        probability = sitk.GetImageFromArray(probabilities)
        probability.CopyInformation(network_grid)
        if probability.GetSize() == canonical.GetSize() and network_grid is canonical:
            return probability
        return sitk.Resample(probability, canonical, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)

    def class_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax (N, classes, H, W) of a many-class network over 2D images (N, H, W)."""
        return self._with_cpu_fallback(lambda: class_probabilities(self.runner, images, self.divisor, self.batch_size))

    def sigmoid_of(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W) float32 probability of the first output channel for a (N, C, H, W) batch."""
        return sigmoid(self.runner.run(batch)[:, 0])

    def _with_cpu_fallback(self, work: Callable[[], np.ndarray]) -> np.ndarray:
        try:
            return work()
        except Exception as error:  # ONNX Runtime's errors derive from Exception only
            if self.device != "cuda" or isinstance(error, SpineAIError):
                raise
            log.warning("CUDA failed (%s); running on the CPU instead", _first_line(error))
            self.runner = self.runner.on_cpu()
            return work()

    def _predict_slices(self, slices, out, progress, should_cancel, normalise=None, spacing=None, step=1) -> np.ndarray:
        """Probabilities of (slices, H, W) into ``out`` of the same shape (any strides); ``normalise``
        maps raw slice values to the network's input (None: ``slices`` are normalised already);
        ``spacing``: (rows, columns) mm, for a network that locates its target first; ``step``:
        ``neighbour_step``."""
        if self.spec.patch_size:
            return self._predict_patches(slices, out, progress, should_cancel, normalise, step)
        if self.spec.locate_every and spacing is not None:
            return self._predict_located(slices, out, progress, should_cancel, normalise, spacing, step)
        return self._predict_whole_slices(slices, progress, should_cancel, out, normalise, step=step)

    def _predict_located(self, slices, out, progress, should_cancel, normalise, spacing, step) -> np.ndarray:
        """Two passes: every ``locate_every``-th slice whole, to find the target; then every slice of
        the box around what was found, ``locate_margin_mm`` wider in plane and a sampling step plus
        two slices wider across; probability 0 outside the box. The cord fills a tenth of a
        sagittal slice and a hundredth of an axial one, so most of the network's work was on
        background. A first pass that finds nothing runs every slice whole, as without locating."""
        every, count = self.spec.locate_every, len(slices)
        sampled = np.arange(every // 2, count, every)
        coarse = self._predict_whole_slices(
            slices, _part(progress, 0, 0.3), should_cancel, None, normalise, sampled, step
        )
        found = np.argwhere(coarse > self.spec.threshold)
        if not len(found):
            rest = _part(progress, 0.3, 1)
            return self._predict_whole_slices(slices, rest, should_cancel, out, normalise, None, step)
        first, last = sampled[found[:, 0].min()] - every - 2, sampled[found[:, 0].max()] + every + 2
        margin = np.ceil(self.spec.locate_margin_mm / np.asarray(spacing, float)).astype(int)
        low, high = found[:, 1:].min(0) - margin, found[:, 1:].max(0) + margin + 1
        # Never a smaller field of view than the training patches: on less context the network's
        # output changes (an axial T2*w lost half its cord on a 60 mm crop).
        grow = np.maximum(LOCATE_MIN_PIXELS - (high - low), 0)
        low, high = np.maximum(low - grow // 2, 0), high + grow - grow // 2
        box = (slice(max(first, 0), min(last + 1, count)), slice(low[0], high[0]), slice(low[1], high[1]))
        out[...] = 0
        window = slices[:, box[1], box[2]]  # a view; the box's slices keep their true neighbours as context
        indices = np.arange(count)[box[0]]
        return self._predict_whole_slices(
            window, _part(progress, 0.3, 1), should_cancel, out[box], normalise, indices, step
        )

    def _predict_patches(self, slices, out, progress, should_cancel, normalise=None, step=1) -> np.ndarray:
        """Sliding-window inference, the batch sized to free memory. A CUDA out-of-memory error
        halves the batch and starts again, down to one patch; after that ``probability`` falls
        back to the CPU as for whole slices."""
        spec = self.spec
        batch_size = batch_size_for_memory(spec.patch_size, spec.in_channels, spec.channels, self.device)
        while True:
            try:
                return predict_tiled(
                    self.sigmoid_of,
                    slices,
                    spec.context_slices,
                    spec.patch_size,
                    spec.patch_overlap,
                    batch_size,
                    divisor=self.divisor,
                    progress=progress,
                    should_cancel=should_cancel,
                    out=out,
                    normalise=normalise,
                    neighbour_step=step,
                )
            except Exception as error:
                if self.device != "cuda" or batch_size == 1 or not is_out_of_memory(error):
                    raise
                batch_size //= 2
                log.warning("CUDA out of memory; retrying with %d patches per batch", batch_size)

    def _predict_whole_slices(
        self, slices, progress, should_cancel, out=None, normalise=None, indices=None, step=1
    ) -> np.ndarray:
        """Probabilities of the slices at ``indices`` (default: all), in that order, into ``out``."""
        indices = np.arange(len(slices)) if indices is None else indices
        count, (height, width) = len(indices), slices.shape[1:]
        padded = (height + (-height) % self.divisor, width + (-width) % self.divisor)
        spec = self.spec
        batch_size = slices_per_batch(padded, spec.in_channels, spec.channels, self.device, self.batch_size)
        output = np.empty((count, height, width), dtype=np.float32) if out is None else out
        for start in range(0, count, batch_size):
            if should_cancel and should_cancel():
                raise Cancelled()
            chunk = indices[start : start + batch_size]
            batch = with_context(slices, chunk, self.spec.context_slices, step)
            batch = pad_to(normalise(batch) if normalise else batch, self.divisor)
            output[start : start + len(chunk)] = self.sigmoid_of(batch)[:, :height, :width]
            if progress:
                progress(min(1.0, (start + len(chunk)) / count))
        return output


def neighbour_step(spec: ModelSpec, slice_mm: float) -> int:
    """1: a 2.5D network sees each slice with its neighbours; 0: with itself in their place, where
    slices lie further apart than the record's ``context_max_spacing_mm`` (the thickest it learned
    neighbours from). 17 mm apart, the neighbours of an axial MT slice show other anatomy, and a
    network that never saw MT found the cord in one slice of five; each slice as its own context,
    in all five (``models/cord.md``)."""
    limit = spec.context_max_spacing_mm
    return 0 if limit is not None and slice_mm > limit + 1e-6 else 1


def _part(progress: Progress | None, start: float, end: float) -> Progress | None:
    """A progress callback for one part [start, end] of the work."""
    return None if progress is None else (lambda fraction: progress(start + (end - start) * fraction))


def class_probabilities(runner, images: np.ndarray, divisor: int, batch_size: int = 8) -> np.ndarray:
    """Softmax (N, classes, H, W) of a many-class network (``runner.run``) over 2D images (N, H, W),
    padded to the network's size divisor."""
    count, height, width = images.shape
    outputs = []
    for start in range(0, count, batch_size):
        batch = np.ascontiguousarray(images[start : start + batch_size], np.float32)[:, None]
        logits = runner.run(pad_to(batch, divisor))
        outputs.append(softmax(logits)[:, :, :height, :width])
    return np.concatenate(outputs) if outputs else np.zeros((0, 1, height, width), np.float32)
