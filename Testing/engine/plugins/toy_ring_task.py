"""A toy task, written as a newcomer would add one: one module and one terminology row.

"ring": the cerebrospinal fluid ring around the cord, drawn as the 2-voxel shell around what the
cord network finds, with its volume as the one measurement. It is not a clinical tool; it exists to
prove that a task defined outside the engine goes through segment, measure, a cohort and the QC
page without touching any other file. The test puts this folder and an entry point naming
``toy_ring_task:RingTask`` (group ``spineai.tasks``) on the path, as an installed plugin would be.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from spineai.tasks import Segmented, Table, Task, TaskInputs
from spineai.tasks.base import case_rows, run_facts
from spineai.terminology import Code, SegmentCode, add_segment_codes

RING = "Perimedullary ring"
COLUMNS = ["segment", "voxels", "volume_mm3"]

add_segment_codes(
    SegmentCode(
        "ring",
        RING,
        "",
        Code("SCT", "123037004", "Anatomical Structure"),
        Code("SCT", "65216001", "Cerebrospinal Fluid"),
        Code("", "", ""),
        Code("", "", ""),
        "#55bcff",
    )
)


class RingTask(Task):
    name = "ring"
    title = "Cerebrospinal fluid ring around the cord (toy)"
    panel_name = "ring"
    segments = ((1, RING),)
    required_segment = RING

    def run(self, canonical, device, progress, should_cancel, inputs: TaskInputs, source: str) -> Segmented:
        from spineai.tasks.cord import segment_cord

        cord = segment_cord(canonical, device, progress, should_cancel)
        ring = ring_around(cord.labels)
        return Segmented(ring, cord.networks, {"ring_voxels": int(ring.sum())})

    def measure(self, labels, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(labels)))
        volume = round(voxels * float(np.prod(labels.GetSpacing())), 3)
        return [Table(self.table_name, [{"segment": RING, "voxels": voxels, "volume_mm3": volume}], COLUMNS)], {}

    def columns(self) -> list[str]:
        return list(COLUMNS)

    def units(self) -> dict[str, str]:
        return {"segment": "", "voxels": "", "volume_mm3": "mm3"}

    def case_summary(self, case_id: str, sidecar: dict) -> dict:
        (row,) = case_rows(sidecar)
        return {"case_id": case_id, "volume_mm3": row["volume_mm3"]} | run_facts(sidecar)

    def cohort_tables(self, cases) -> list[Table]:
        summaries = [self.case_summary(case_id, sidecar) for case_id, sidecar in cases]
        return [Table("ring_summary", summaries, ["case_id", "volume_mm3", "seconds", "device", "model"], "summary")]

    def qc_measurements(self, sidecar: dict, summary: dict):
        return [("Ring volume (mm³)", summary["volume_mm3"])]


def ring_around(cord: np.ndarray) -> np.ndarray:
    """The 2-voxel shell around the cord in each axial slice (uint8 0/1)."""
    grown = ndimage.binary_dilation(cord > 0, ndimage.generate_binary_structure(3, 1)[None, 1], iterations=2)
    return (grown & ~(cord > 0)).astype(np.uint8)
