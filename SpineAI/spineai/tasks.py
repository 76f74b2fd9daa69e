"""The tasks the engine offers and the names of their result files.

Kept free of torch so that the command line, cohort drivers and the Slicer panel can list tasks
and plan outputs without paying for the deep-learning import.
"""

from __future__ import annotations

from dataclasses import dataclass

from .io import image_stem


@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    segments: list[tuple[int, str]]
    output_suffix: str


TASKS = {
    "cord": TaskInfo("cord", "Spinal cord segmentation", [(1, "Spinal cord")], "cord_seg"),
}


def output_names(image_path, task: str) -> dict[str, str]:
    """Result file names of ``task`` for ``image_path``: ``<stem>_<task>_seg.nii.gz`` and its sidecar."""
    stem = image_stem(image_path)
    suffix = TASKS[task].output_suffix
    return {"stem": stem, "mask": f"{stem}_{suffix}.nii.gz", "sidecar": f"{stem}_{suffix}.json"}
