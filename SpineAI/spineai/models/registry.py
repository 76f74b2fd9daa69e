"""The model database: one JSON record per shipped network, files checked before use.

Each ``<name>.json`` beside this file is the single record of a model: architecture, the
preprocessing it was trained with (nnU-Net's "plans" idea), its labels, the safetensors weights
(what training and fine-tuning start from) and the ONNX graph exported from them (what inference
runs), each with its sha256. ``ModelSpec`` is that record in Python: ``from_json`` reads it,
``to_record`` writes it, and every trainer writes through it, so no record is written by hand.

No deep-learning runtime is imported here: the command line, the Slicer panel and inference read
records without torch. Loading the safetensors into a network lives in ``spineai.training.weights``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import SpineAIError

MODELS_DIR = Path(__file__).resolve().parent
SLICE_ORIENTATION = "LAS (SCT RPI)"
SLICE_AXIS = "coarsest spacing, then fewest voxels"
NORMALISATION = "percentile range to [0, 1]"


@dataclass(frozen=True)
class OnnxGraph:
    """The ONNX export of a model's weights: its file, checksum, opset and tensor signature.

    Shapes name their dynamic axes (batch, height, width); the channel counts are fixed."""

    file: str
    sha256: str
    opset: int
    input_name: str
    input_shape: tuple
    output_name: str
    output_shape: tuple

    def to_record(self) -> dict:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "opset": self.opset,
            "input": {"name": self.input_name, "shape": list(self.input_shape)},
            "output": {"name": self.output_name, "shape": list(self.output_shape)},
        }

    @classmethod
    def from_record(cls, record: dict) -> OnnxGraph:
        return cls(
            file=record["file"],
            sha256=record["sha256"],
            opset=int(record["opset"]),
            input_name=record["input"]["name"],
            input_shape=tuple(record["input"]["shape"]),
            output_name=record["output"]["name"],
            output_shape=tuple(record["output"]["shape"]),
        )


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    weights: str
    sha256: str
    channels: tuple[int, ...]
    in_plane_spacing_mm: tuple[float, float]
    percentiles: tuple[float, float]
    labels: dict[int, str]
    threshold: float | None = 0.5  # sigmoid networks; None for many-class (argmax) networks
    contrasts: tuple[str, ...] = ()
    context_slices: int = 0  # neighbouring slices on each side given as extra input channels (2.5D)
    # Slices further apart than this are no neighbours: each is given as its own context (None: always).
    context_max_spacing_mm: float | None = None
    patch_size: int | None = None  # in-plane patch of sliding-window inference; None: whole slices
    patch_overlap: float = 0.25  # fraction of the patch shared by neighbouring patches
    # Whole-slice networks may find their target first: every ``locate_every``-th slice, then every
    # slice within ``locate_margin_mm`` of what was found (0: every slice whole, one pass).
    locate_every: int = 0
    locate_margin_mm: float = 20.0
    out_channels: int = 1  # 1: sigmoid of one target; more: softmax over classes 0..out_channels-1
    # How the slices are taken, in words: None where the task cuts its own planes (the lumbar networks).
    orientation: str | None = SLICE_ORIENTATION
    slice_axis: str | None = SLICE_AXIS
    normalisation: str = NORMALISATION
    engine_version: str = ""
    onnx: OnnxGraph | None = None
    # Cross-validated median Dice per plane and contrast ({plane, contrast, median_dice, scans}):
    # what ``input_check`` holds an input against. Empty for a model nobody measured (a site's).
    measured: tuple[dict, ...] = ()
    # A site model: the contrasts of the corrected cases it was fine-tuned on (its record's ``site``
    # block), which ``input_check`` holds an input against; () for a shipped model.
    taught: tuple[str, ...] = ()
    folder: Path = field(default=MODELS_DIR, compare=False)

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1

    @property
    def size_divisor(self) -> int:
        """Height and width the network takes are multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.channels) - 1)

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights

    @property
    def onnx_path(self) -> Path | None:
        return self.folder / self.onnx.file if self.onnx else None

    def untrained(self) -> ModelSpec:
        """The settings alone, for a new training run: no weights, no ONNX graph, no engine version."""
        return replace(self, sha256="", onnx=None, engine_version="", measured=(), taught=())

    def trained(self, sha256: str, onnx: OnnxGraph | None, engine_version: str, folder: Path) -> ModelSpec:
        """The record of freshly written weights (and their ONNX export) in ``folder``: new weights
        carry no measured figures until a benchmark measures them."""
        return replace(self, sha256=sha256, onnx=onnx, engine_version=engine_version, folder=Path(folder), measured=())

    def to_record(self) -> dict:
        """The JSON record; ``from_json`` reads it back to an equal spec."""
        preprocessing = {"orientation": self.orientation, "slice_axis": self.slice_axis}
        preprocessing = {key: value for key, value in preprocessing.items() if value is not None}
        if self.context_max_spacing_mm is not None:
            preprocessing["context_max_spacing_mm"] = self.context_max_spacing_mm
        preprocessing |= {
            "in_plane_spacing_mm": list(self.in_plane_spacing_mm),
            "normalisation": self.normalisation,
            "percentiles": list(self.percentiles),
        }
        record = {
            "name": self.name,
            "task": self.task,
            "weights": self.weights,
            "sha256": self.sha256,
            "architecture": {
                "type": "UNet2D",
                "channels": list(self.channels),
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
            },
            "preprocessing": preprocessing,
            "labels": {str(k): v for k, v in self.labels.items()},
        }
        if self.threshold is not None:
            record["threshold"] = self.threshold
        record |= {"contrasts": list(self.contrasts), "engine_version": self.engine_version}
        if self.patch_size:
            record["inference"] = {"patch_size": self.patch_size, "overlap": self.patch_overlap}
        if self.locate_every:
            record["inference"] = {"locate_every": self.locate_every, "locate_margin_mm": self.locate_margin_mm}
        if self.onnx:
            record["onnx"] = self.onnx.to_record()
        if self.measured:
            record["measured"] = [dict(row) for row in self.measured]
        return record

    def write(self, folder: Path | None = None) -> Path:
        """Write the record as ``<folder>/<task>.json`` (default: the spec's own folder)."""
        path = Path(folder or self.folder) / f"{self.task}.json"
        path.write_text(json.dumps(self.to_record(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: Path) -> ModelSpec:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        architecture, preprocessing = record["architecture"], record["preprocessing"]
        inference = record.get("inference", {})  # optional: absent means whole-slice inference
        out_channels = architecture.get("out_channels", 1)
        return cls(
            name=record["name"],
            task=record["task"],
            weights=record["weights"],
            sha256=record["sha256"],
            channels=tuple(architecture["channels"]),
            in_plane_spacing_mm=tuple(preprocessing["in_plane_spacing_mm"]),
            percentiles=tuple(preprocessing["percentiles"]),
            labels={int(k): v for k, v in record["labels"].items()},
            threshold=record.get("threshold", 0.5 if out_channels == 1 else None),
            contrasts=tuple(record.get("contrasts", ())),
            context_slices=(architecture.get("in_channels", 1) - 1) // 2,
            context_max_spacing_mm=preprocessing.get("context_max_spacing_mm"),
            patch_size=inference.get("patch_size"),
            patch_overlap=inference.get("overlap", 0.25),
            locate_every=inference.get("locate_every", 0),
            locate_margin_mm=inference.get("locate_margin_mm", 20.0),
            out_channels=out_channels,
            orientation=preprocessing.get("orientation"),
            slice_axis=preprocessing.get("slice_axis"),
            normalisation=preprocessing.get("normalisation", NORMALISATION),
            engine_version=record.get("engine_version", ""),
            onnx=OnnxGraph.from_record(record["onnx"]) if "onnx" in record else None,
            measured=tuple(record.get("measured", ())),
            taught=tuple(sorted({case.get("contrast", "unknown") for case in record.get("site", {}).get("cases", ())})),
            folder=Path(path).resolve().parent,
        )


def model_for_task(task: str, models_dir: Path | None = None) -> ModelSpec:
    """The spec of the shipped model for ``task`` (``models_dir`` overrides the bundled folder)."""
    path = Path(models_dir or MODELS_DIR) / f"{task}.json"
    if not path.exists():
        raise SpineAIError(f"{path}: no model for task '{task}'")
    return ModelSpec.from_json(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_bytes(path: Path, sha256: str, what: str) -> bytes:
    """The file's bytes, read once, after checking them against the record's sha256: a session is
    then built from exactly the bytes that were checked."""
    path = Path(path)
    if not path.exists():
        raise SpineAIError(f"{path}: {what} not found")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise SpineAIError(f"{path}: sha256 {actual} does not match the model record ({sha256}); refusing to load")
    return data
