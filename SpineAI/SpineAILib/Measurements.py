"""Which measurement each task gets in the panel: taken from the engine's task (``spineai.tasks``).

The segments of a spec are combined into one label map on the scan's grid (SimpleITK image,
``Logic.segmentsLabelMap``): for a task with exclusive labels each segment is painted with its
label value in the spec's order (a later segment wins where two overlap); for a task whose
segments overlap (``Task.overlapping``, the tumour task) the values are bit flags and are ORed
(cord 1 | tumour 2 = 3, intramedullary). ``measure`` takes that label map (and, with
``needsImage``, the scan on the same grid; with ``needsLevels``, the disc levels of the
segmentation's point list, ``LevelPoints``) and returns (rows, flags) of the task's main table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spineai.tasks import TASKS, Chart, Task, TaskInputs


@dataclass(frozen=True)
class MeasurementSpec:
    segments: tuple[tuple[int, str], ...]  # (label value, segment name), painted in this order
    # The segment that must hold voxels (measuring stops with a message when it is empty); None: any
    # segment may be empty, but not all of them.
    required: str | None
    # (labelMap), (labelMap, image) with needsImage, (labelMap, levels) with needsLevels
    measure: Callable[..., tuple[list[dict], dict]]
    columns: Callable[[], list[str]]
    units: Callable[[], dict[str, str]]
    chart: Chart | None = None
    needsImage: bool = False  # pass the scan itself (SimpleITK, the label map's grid) as second argument
    # Pass the disc levels (spineai.stenosis.levels.LevelPoint, LPS, with normals) as second argument:
    # the engine takes them as disc levels, and the result keeps them as a markups point list.
    needsLevels: bool = False
    allColumns: bool = False  # every column in every table, as the engine's CSV (else only those present)


def measurementSpec(task: Task) -> MeasurementSpec:
    """The panel's view of an engine task's measurement."""
    needsLevels = "disc_levels" in task.measure_needs

    def measure(labelMap, extra=None):
        image = extra if task.measure_needs_image else None
        inputs = TaskInputs(disc_levels=extra) if needsLevels else TaskInputs()
        tables, flags = _engineMeasure(task, labelMap, image, inputs)
        return tables[0].rows, flags

    return MeasurementSpec(
        task.segments,
        task.required_segment,
        measure,
        task.columns,
        task.units,
        task.chart,
        needsImage=task.measure_needs_image,
        needsLevels=needsLevels,
        allColumns=task.all_columns,
    )


def _engineMeasure(task: Task, labelMap, image, inputs):
    from spineai.errors import SpineAIError

    try:
        return task.measure(labelMap, image, inputs)
    except ImportError as error:  # the engine's measurement code needs scipy & co.
        raise SpineAIError(
            f"measuring needs the engine's Python packages ({error.name or error} is missing); "
            f"click Segment {task.panel_name} once to install them"
        ) from error


MEASUREMENTS = {name: measurementSpec(task) for name, task in TASKS.items()}


def presentColumns(spec: MeasurementSpec, rows: list[dict]) -> list[str]:
    """The spec's columns that the rows carry, in the spec's order (the engine omits optional ones)."""
    columns = spec.columns()
    if not rows or spec.allColumns:
        return columns
    return [column for column in columns if column in rows[0]] + [c for c in rows[0] if c not in columns]
