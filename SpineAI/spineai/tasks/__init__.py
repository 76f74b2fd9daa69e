"""The tasks the engine offers: one module each, and the registry everything else looks them up in.

A task module defines a ``base.Task`` subclass: its segments, networks, inputs, measurement tables,
cohort tables and QC lines. The pipeline, ``spineai measure``, cohorts, the QC page, DICOM and the
Slicer module know tasks only through this registry, so a new task is one new module (plus its
segments' lines in the terminology table, ``spineai/terminology.csv``) and one ``register`` call.
A task can also live in another installed package that names it in the entry point group
``spineai.tasks`` (``name = "module:TaskClass"``): it is registered wherever the engine is
imported, Dask workers included.

Importing this package imports no network runtime: the command line, cohort drivers and the
Slicer panel list tasks and plan outputs without paying for it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from ..errors import SpineAIError
from ..io import image_stem
from .base import Chart, Segmented, Table, Task, TaskInputs
from .cord import CordTask
from .lesion import LesionTask
from .stenosis import StenosisTask
from .tumor import TumorTask

__all__ = [
    "TASKS",
    "Chart",
    "Segmented",
    "Table",
    "Task",
    "TaskInputs",
    "get_task",
    "load_task_plugins",
    "output_names",
    "register",
]
log = logging.getLogger(__name__)

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Make ``task`` known to the engine under ``task.name`` (a later task of the same name replaces it)."""
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name``; a ``SpineAIError`` listing the tasks when there is none."""
    if name not in TASKS:
        raise SpineAIError(f"unknown task '{name}' (available: {', '.join(TASKS)})")
    return TASKS[name]


def output_names(image_path, task: str) -> dict[str, str]:
    """Result file names of ``task`` for ``image_path``: ``<stem>_<task>_seg.nii.gz``, its sidecar and table."""
    stem = image_stem(image_path)
    info = get_task(task)
    return {
        "stem": stem,
        "mask": f"{stem}_{info.output_suffix}.nii.gz",
        "sidecar": f"{stem}_{info.output_suffix}.json",
        "table": f"{stem}_{info.table_name}.csv",
    }


def load_task_plugins() -> None:
    """Register the tasks installed packages declare in the entry point group ``spineai.tasks``
    (a ``Task`` subclass or instance); one that fails to load is skipped with a warning."""
    for entry in entry_points(group="spineai.tasks"):
        try:
            task = entry.load()
            register(task() if isinstance(task, type) else task)
        except Exception as error:  # a broken plugin must not take the shipped tasks down with it
            log.warning("task plugin %s could not be loaded: %s", entry.name, error)


for _task in (CordTask(), LesionTask(), TumorTask(), StenosisTask()):
    register(_task)
load_task_plugins()
