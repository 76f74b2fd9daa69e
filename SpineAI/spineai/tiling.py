"""Patch-based (sliding-window) inference of the 2.5D slice network.

Array convention: ``slices`` is a (slices, H, W) float32 stack with the acquisition axis first, as
``SlicePredictor`` prepares it; a network batch is (N, 2 * context + 1, patch_h, patch_w), each
patch's neighbouring slices given as channels; probabilities come back as (slices, H, W) float32 on
the same grid. Tiles are in-plane only: every slice is covered by the same grid of tiles.

The network is any callable mapping a (N, C, h, w) float32 batch to (N, h, w) probabilities
(``inference.SlicePredictor.sigmoid_of``): tiling knows nothing of the runtime that runs it.

Overlapping tiles are blended with a Gaussian importance map (nnU-Net's and MONAI's 'gaussian'
mode): a tile's centre, which saw the most context, outweighs its border. Memory stays
O(volume) + O(batch): patches are gathered batch by batch, never all at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from itertools import islice

import numpy as np

from .errors import Cancelled, SpineAIError

Progress = Callable[[float], None]
ShouldCancel = Callable[[], bool]
Network = Callable[[np.ndarray], np.ndarray]  # (N, C, h, w) float32 -> (N, h, w) probabilities

MAX_BATCH = 32
CPU_BUDGET_CAP = 1 << 30  # 1 GiB for activations is plenty on CPU: larger batches run no faster there
CPU_BUDGET_FRACTION = 0.25  # of the RAM available now, leaving room for the volume and other programs
# Whole slices on the CPU: measured with the cord network on 224 x 384 slices (2 cores, ONNX Runtime),
# batches of 1, 2, 4 and 8 slices take the same time per slice within the noise of a shared machine,
# and each slice holds about 25 MB of activations (estimate 22 MB): one such slice per run keeps a
# fresh `spineai segment` small; small slices still go 8 at a time.
WHOLE_SLICE_CPU_BUDGET = 32 << 20
# ONNX Runtime does not report free GPU memory: a budget any CUDA GPU has, and an out-of-memory error
# halves the batch (``SlicePredictor``). 2 GiB allows MAX_BATCH patches of 256 pixels.
CUDA_BUDGET = 2 << 30
UNKNOWN_RAM_BUDGET = 512 << 20  # when the free RAM cannot be read (e.g. Windows without /proc)
WEIGHT_FLOOR = 1e-6  # keeps every pixel's blend weight positive, so the final division is safe


def with_context(slices: np.ndarray, indices: np.ndarray, context: int, step: int = 1) -> np.ndarray:
    """(len(indices), 2*context+1, H, W): each slice with its neighbours as channels (edges repeated);
    ``step=0``: the slice itself in every channel, for slices too far apart to be neighbours."""
    offsets = np.arange(-context, context + 1) * step
    neighbours = np.clip(indices[:, None] + offsets[None, :], 0, len(slices) - 1)
    return np.ascontiguousarray(slices[neighbours])


def tile_starts(length: int, patch: int, overlap: float) -> list[int]:
    """Tile start positions covering [0, length): evenly spaced, neighbours overlapping by at least
    ``overlap * patch`` pixels, first at 0 and last flush with the end (nnU-Net's placement).
    A length <= patch gives one tile."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), not {overlap}")
    if length <= patch:
        return [0]
    step = max(1, int(patch * (1 - overlap)))
    gaps = -(-(length - patch) // step)  # ceil: enough tiles that no gap exceeds the step
    # Integer spacing: consecutive starts differ by at most ceil((length - patch) / gaps) <= step.
    return [i * (length - patch) // gaps for i in range(gaps + 1)]


def tile_extent(length: int, patch: int, divisor: int) -> int:
    """Tile size along one axis: the patch, or the whole axis padded to the network's divisor."""
    return patch if length > patch else length + (-length) % divisor


def gaussian_profile(length: int, sigma_scale: float = 0.125) -> np.ndarray:
    """1D Gaussian of sigma ``sigma_scale * length`` centred on the tile, peak 1, never zero."""
    if sigma_scale <= 0:
        raise ValueError(f"sigma_scale must be positive, not {sigma_scale}")
    offsets = np.arange(length) - (length - 1) / 2
    profile = np.exp(-0.5 * (offsets / (sigma_scale * length)) ** 2)
    return np.maximum(profile / profile.max(), WEIGHT_FLOOR)


def blend_weights(patch_h: int, patch_w: int, sigma_scale: float = 0.125) -> np.ndarray:
    """(patch_h, patch_w) float32 Gaussian importance map: peak 1 at the centre, positive everywhere."""
    return np.outer(gaussian_profile(patch_h, sigma_scale), gaussian_profile(patch_w, sigma_scale)).astype(np.float32)


def tile_weights(extent: tuple[int, int], counts: tuple[int, int], sigma_scale: float) -> np.ndarray:
    """Blend weights of one tile; flat along an axis with a single tile, which nothing overlaps
    (a slice that fits one tile is then predicted exactly as a whole slice)."""
    (height, width), (count_y, count_x) = extent, counts
    profile_y = gaussian_profile(height, sigma_scale) if count_y > 1 else np.ones(height)
    profile_x = gaussian_profile(width, sigma_scale) if count_x > 1 else np.ones(width)
    return np.outer(profile_y, profile_x).astype(np.float32)


def coverage(weights: np.ndarray, starts_y: Sequence[int], starts_x: Sequence[int], shape) -> np.ndarray:
    """(H, W) sum of the tile weights over one slice: the normaliser of the blended probabilities."""
    total = np.zeros(shape, np.float32)
    for y in starts_y:
        for x in starts_x:
            window = total[y : y + weights.shape[0], x : x + weights.shape[1]]
            window += weights[: window.shape[0], : window.shape[1]]
    return total


def gather_patches(
    slices: np.ndarray, items, context: int, extent: tuple[int, int], normalise=None, step: int = 1
) -> np.ndarray:
    """(len(items), 2*context+1, *extent) patches for items (slice index, (y, x)); zero beyond the slice.
    ``normalise`` maps the slices' values to the network's input (None: they are normalised already);
    ``step`` as for ``with_context``."""
    patches = np.zeros((len(items), 2 * context + 1, *extent), np.float32)
    for row, (index, (y, x)) in enumerate(items):
        window = with_context(slices[:, y : y + extent[0], x : x + extent[1]], np.array([index]), context, step)[0]
        patches[row, :, : window.shape[1], : window.shape[2]] = normalise(window) if normalise else window
    return patches


def batches(count: int, tiles: list[tuple[int, int]], batch_size: int) -> Iterator[list]:
    """(slice index, tile) items, slice by slice, in lists of at most ``batch_size``."""
    items = ((index, tile) for index in range(count) for tile in tiles)
    while batch := list(islice(items, batch_size)):
        yield batch


def predict_tiled(
    network: Network,
    slices: np.ndarray,
    context: int,
    patch: int,
    overlap: float = 0.25,
    batch_size: int = 8,
    *,
    divisor: int = 1,
    sigma_scale: float = 0.125,
    progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    out: np.ndarray | None = None,
    normalise: Callable[[np.ndarray], np.ndarray] | None = None,
    neighbour_step: int = 1,
) -> np.ndarray:
    """(slices, H, W) float32 probabilities from square patches of ``patch`` pixels blended with
    Gaussian weights, in ``out`` when given (float32, that shape, any strides); ``normalise`` as for
    ``gather_patches``. ``patch`` must be a
    multiple of the network's ``divisor``; an axis shorter than the patch is inferred whole, padded
    with zeros to the divisor as whole slices are."""
    if patch % divisor:
        raise SpineAIError(f"patch size {patch} is not a multiple of the network's size divisor {divisor}")
    count, height, width = slices.shape
    starts_y, starts_x = tile_starts(height, patch, overlap), tile_starts(width, patch, overlap)
    extent = (tile_extent(height, patch, divisor), tile_extent(width, patch, divisor))
    weights = tile_weights(extent, (len(starts_y), len(starts_x)), sigma_scale)
    tiles = [(y, x) for y in starts_y for x in starts_x]
    output = np.zeros(slices.shape, np.float32) if out is None else out
    if out is not None:
        output.fill(0)  # a CPU rerun after a CUDA failure starts from nothing
    done, total = 0, count * len(tiles)
    for items in batches(count, tiles, batch_size):
        if should_cancel and should_cancel():
            raise Cancelled()
        weighted = network(gather_patches(slices, items, context, extent, normalise, neighbour_step)) * weights
        for (index, (y, x)), tile in zip(items, weighted, strict=True):
            window = output[index, y : y + extent[0], x : x + extent[1]]
            window += tile[: window.shape[0], : window.shape[1]]
        done += len(items)
        if progress:
            progress(done / total)
    output /= coverage(weights, starts_y, starts_x, (height, width))
    return output


def activation_bytes_per_patch(patch: int, in_channels: int, channels: Sequence[int]) -> int:
    """Estimated peak fp32 activation memory of one UNet2D patch in inference.

    At resolution level l (patch / 2**l pixels a side) the network holds the skip tensor and, while
    decoding, the upsampled tensor, their concatenation and a convolution output: about 4x the
    level's width, summed over levels (a level has 1/4 the pixels of the one above), plus the input.
    For channels (8, 16, 32, 64, 128) and 3 inputs: 65 floats per pixel, 17 MB for a 256 patch,
    against 15 MB per patch measured (peak RSS growth, CPU, channels_last, batches of 4 and 16):
    the estimate errs on the safe side, and fp16 on CUDA needs less still.
    """
    return activation_bytes(patch * patch, in_channels, channels)


def activation_bytes(pixels: int, in_channels: int, channels: Sequence[int]) -> int:
    """``activation_bytes_per_patch`` for an image of ``pixels`` pixels of any shape."""
    floats_per_pixel = in_channels + 4 * sum(width / 4**level for level, width in enumerate(channels))
    return int(4 * pixels * floats_per_pixel)


def slices_per_batch(shape: tuple[int, int], in_channels: int, channels: Sequence[int], device: str, largest: int):
    """Whole slices of ``shape`` (padded) per network run, 1 to ``largest``: on the CPU as many as fit
    WHOLE_SLICE_CPU_BUDGET (more per run are no faster there, only bigger), on CUDA the CUDA budget."""
    budget = CUDA_BUDGET if device == "cuda" else WHOLE_SLICE_CPU_BUDGET
    return int(min(largest, max(1, budget // activation_bytes(shape[0] * shape[1], in_channels, channels))))


def available_ram_bytes() -> int | None:
    """RAM available to new allocations: MemAvailable (Linux), else free pages, else None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_budget(device: str) -> int:
    """Bytes the activations of one batch may use on ``device`` ('cpu' or 'cuda')."""
    if device == "cuda":
        return CUDA_BUDGET
    available = available_ram_bytes()
    if available is None:
        return UNKNOWN_RAM_BUDGET
    return int(min(CPU_BUDGET_CAP, available * CPU_BUDGET_FRACTION))


def batch_size_for_memory(
    patch: int,
    in_channels: int,
    channels: Sequence[int],
    device: str = "cpu",
    budget_bytes: int | None = None,
) -> int:
    """Patches per batch that fit the memory budget (default: ``memory_budget(device)``), 1 to MAX_BATCH."""
    budget = memory_budget(str(device)) if budget_bytes is None else budget_bytes
    fitting = budget // activation_bytes_per_patch(patch, in_channels, channels)
    return int(min(MAX_BATCH, max(1, fitting)))
