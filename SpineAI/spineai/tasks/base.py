"""What a task is: its segments, its networks, its inputs, its measurement tables and how a cohort
and the QC page show it. Each task module subclasses ``Task``; the pipeline, ``spineai measure``,
the cohort tables, the QC page, DICOM and the Slicer module only ever talk to this interface.

Importing a task must stay cheap (no network runtime): the command line, the cohort driver and the
Slicer panel list tasks without running them, so heavy imports happen inside the methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import SimpleITK as sitk

RUN_COLUMNS = ["seconds", "device", "model", "engine_version"]  # run facts every cohort summary ends with


@dataclass(frozen=True)
class Table:
    """A measurement table: its rows, its columns in order, its file name ``<stem>_<name>.csv`` (for a
    cohort table the whole name without ``.csv``) and the key under which sidecars and callers find it."""

    name: str
    rows: list[dict]
    columns: list[str]
    kind: str = "table"


@dataclass(frozen=True)
class Chart:
    """The plot the Slicer module draws next to a task's table."""

    x: str
    y: str
    title: str


@dataclass
class TaskInputs:
    """What a task may take beside the scan, read and checked before the slow part.

    ``vertebral_levels``: a label image on the scan's grid (labelled cord or SCT disc labels) for
    per-level tables; ``disc_levels``: lumbar disc levels as points (``stenosis.levels.LevelPoint``);
    ``sagittal``: a sagittal scan of the same session to find the disc levels on. ``model_dir``: a
    model folder (a site model) for the task's own network instead of the shipped one.
    """

    vertebral_levels: sitk.Image | None = None
    vertebral_levels_source: str | None = None
    disc_levels: list | None = None
    sagittal: sitk.Image | None = None
    model_dir: Path | None = None

    def given(self) -> set[str]:
        names = ("vertebral_levels", "disc_levels", "sagittal")
        return {name for name in names if getattr(self, name) is not None}


@dataclass(frozen=True)
class Segmented:
    """A task network's output on the canonical grid: the label map array, the networks that ran
    (``inference`` predictors: ``.spec``, ``.device``; the task's own network last) and sidecar details."""

    labels: np.ndarray
    networks: list
    details: dict = field(default_factory=dict)


class Task:
    """One task. Subclasses set the class attributes and implement ``run`` and ``measure``."""

    name: str
    title: str
    panel_name: str  # as the panel says it: "Segment tumour" for the task "tumor"
    segments: tuple[tuple[int, str], ...]  # (label value, segment name); names key the terminology table
    # Overlapping segments are bit flags of the label map (segment value v is where labels & v): an
    # intramedullary tumour is cord and tumour at once. Otherwise labels are exclusive values.
    overlapping: bool = False
    expected_contrast: str = ""  # what the task's network was made for, stated in sidecar and table
    inputs: frozenset[str] = frozenset()  # the ``TaskInputs`` fields the task takes
    # The Slicer module: the segment that must hold voxels before measuring (None: any, not all empty),
    # whether measuring needs the scan itself, the chart beside the table, every column in every table.
    required_segment: str | None = None
    measure_needs_image: bool = False
    measure_needs: frozenset[str] = frozenset()  # ``TaskInputs`` a label map cannot be measured without
    measure_needs_hint: str = ""  # where the user finds them
    chart: Chart | None = None
    all_columns: bool = False

    # --- names -------------------------------------------------------------------------------

    @property
    def output_suffix(self) -> str:
        """``<stem>_<output_suffix>.nii.gz`` is the label map, ``.json`` its sidecar."""
        return f"{self.name}_seg"

    @property
    def levels_input(self) -> str:
        """What a plain "levels" file is for this task (a cohort list's levels column, the old --levels)."""
        return "disc_levels" if "disc_levels" in self.inputs else "vertebral_levels"

    @property
    def table_name(self) -> str:
        """The main measurement table: ``<stem>_<table_name>.csv``."""
        return self.name

    # --- label maps ---------------------------------------------------------------------------

    def segment_mask(self, labels: np.ndarray, value: int) -> np.ndarray:
        """Where segment ``value`` is, in a label map array of this task."""
        return (labels & value) > 0 if self.overlapping else labels == value

    def label_values(self) -> tuple[int, ...]:
        """Every value a label map of this task may hold: 0 and the segments, or every OR of the flags."""
        values = [value for value, _ in self.segments]
        if not self.overlapping:
            return (0, *values)
        ors = {sum(chosen) for count in range(len(values) + 1) for chosen in combinations(values, count)}
        return tuple(sorted(ors))

    def label_description(self) -> str:
        kind = "bit flags" if self.overlapping else "0 background,"
        return f"expected {kind} " + ", ".join(f"{value} {name.lower()}" for value, name in self.segments)

    # --- segmentation -------------------------------------------------------------------------

    def run(self, canonical: sitk.Image, device: str, progress, should_cancel, inputs: TaskInputs, source: str):
        """The task's networks on the canonical scan: a ``Segmented``."""
        raise NotImplementedError

    def cord_found(self, labels: np.ndarray, flags: dict) -> bool | None:
        """Whether a spinal cord is in the result (None: not looked for)."""
        return bool(self.segment_mask(labels, 1).any())

    def warning(self, image, sidecar: dict) -> str | None:
        """One line for the user when the result is empty, or the input's contrast is not supported
        (or not one a site model was fine-tuned on)."""
        check = sidecar.get("input_check") or {}
        unsupported = check.get("supported") is False or check.get("taught") is False
        contrast = f"; {sidecar['input_check']['note']}" if unsupported else ""
        if sidecar.get("cord_found") is False:
            return f"{image}: no spinal cord found; the mask is empty and the table has no rows{contrast}"
        return f"{image}: {sidecar['input_check']['note']}" if unsupported else None

    # --- measurements -------------------------------------------------------------------------

    def measure(self, labels: sitk.Image, image: sitk.Image | None, inputs: TaskInputs) -> tuple[list[Table], dict]:
        """The task's tables of a label map (``image``: the scan on the same grid, where given) and
        flags for the sidecar (an empty dict: none)."""
        raise NotImplementedError

    def measure_result(self, result, image: sitk.Image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        """The tables of a fresh segmentation (``pipeline.SegmentationResult``)."""
        return self.measure(result.mask, image, inputs)

    def extra_outputs(self, result) -> dict[str, tuple[str, dict]]:
        """Further JSON files of a segmentation: {kind: (file name suffix, content)}."""
        return {}

    def columns(self) -> list[str]:
        """The main table's columns."""
        raise NotImplementedError

    def units(self) -> dict[str, str]:
        raise NotImplementedError

    # --- cohorts and the QC page --------------------------------------------------------------

    def case_summary(self, case_id: str, sidecar: dict) -> dict:
        """One row of the cohort summary for a finished case."""
        raise NotImplementedError

    def cohort_tables(self, cases: list[tuple[str, dict]]) -> list[Table]:
        """The cohort's tables from its finished cases (case id, sidecar with ``folder``)."""
        raise NotImplementedError

    def qc_status(self, sidecar: dict) -> str:
        return "ok" if sidecar.get("cord_found") else "no cord"

    def qc_measurements(self, sidecar: dict, summary: dict) -> list[tuple[str, object]]:
        """(label, value) pairs the QC page shows for a case, in reading order, before the run facts."""
        raise NotImplementedError


# --- helpers the task modules share -----------------------------------------------------------


def case_rows(sidecar: dict, kind: str = "table") -> list[dict]:
    """The rows of a finished case's table of ``kind`` (empty when the case has none)."""
    from ..tables import read_rows

    name = sidecar.get("outputs", {}).get(kind)
    return read_rows(Path(sidecar["folder"]) / name) if name else []


def run_facts(sidecar: dict) -> dict:
    return {key: sidecar.get(key, "") for key in RUN_COLUMNS}


def rounded(value: float):
    return round(value, 4) if math.isfinite(value) else ""
