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
    table_suffix: str  # <stem>_<table_suffix>.csv: the task's main measurement table
    # Overlapping segments are bit flags of the label map (segment value v is where labels & v):
    # an intramedullary tumour is cord and tumour at once. Otherwise labels are exclusive values.
    overlapping: bool = False
    expected_contrast: str = ""  # what the task's network was made for, stated in sidecar and table

    def segment_mask(self, labels, value: int):
        """Where segment ``value`` is, in a label map array of this task."""
        return (labels & value) > 0 if self.overlapping else labels == value


TASKS = {
    "cord": TaskInfo("cord", "Spinal cord segmentation", [(1, "Spinal cord")], "cord_seg", "cord_morphometry"),
    "lesion": TaskInfo(
        "lesion",
        "Spinal cord injury lesion segmentation",
        [(1, "Spinal cord"), (2, "Spinal cord injury lesion")],
        "lesion_seg",
        "lesion",
        expected_contrast="T2w or T2*w",
    ),
    "tumor": TaskInfo(
        "tumor",
        "Spinal tumour segmentation",
        [(1, "Spinal cord"), (2, "Spinal tumour")],
        "tumor_seg",
        "tumor",
        overlapping=True,
        expected_contrast="Gd-enhanced T1w",
    ),
    # Nerve roots are the dural sac without CSF; the sac is measured in one plane per disc level.
    "stenosis": TaskInfo(
        "stenosis",
        "Lumbar central stenosis",
        [(1, "Dural sac"), (2, "Cerebrospinal fluid"), (4, "Posterior epidural fat")],
        "stenosis_seg",
        "stenosis",
        overlapping=True,
        expected_contrast="lumbar T2w (axial stack, or sagittal/3D)",
    ),
}


def output_names(image_path, task: str) -> dict[str, str]:
    """Result file names of ``task`` for ``image_path``: ``<stem>_<task>_seg.nii.gz``, its sidecar and table."""
    stem = image_stem(image_path)
    info = TASKS[task]
    return {
        "stem": stem,
        "mask": f"{stem}_{info.output_suffix}.nii.gz",
        "sidecar": f"{stem}_{info.output_suffix}.json",
        "table": f"{stem}_{info.table_suffix}.csv",
    }
