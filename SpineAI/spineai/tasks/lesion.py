"""Spinal cord injury lesion on T2: the cord, the lesion inside it, and SCT's lesion metrics with
tissue bridges and a BASIC proposal (``docs/lesion.md``)."""

from __future__ import annotations

from .base import Segmented, Table, TaskInputs
from .findings import FindingsTask, cord_then


class LesionTask(FindingsTask):
    name = "lesion"
    title = "Spinal cord injury lesion segmentation"
    panel_name = "lesion"
    segments = ((1, "Spinal cord"), (2, "Spinal cord injury lesion"))
    expected_contrast = "T2w or T2*w"
    # The cord region is cord or lesion (labels 1 and 2); an empty lesion segment is a finding
    # (lesion_found False, a total row of zeros), not an error. One row per lesion: no chart.
    required_segment = "Spinal cord"
    qc_total_columns = (
        ("Lesions", "n_lesions"),
        ("Lesion volume (mm³)", "volume"),
        ("Lesion length (mm)", "length"),
        ("Max axial damage ratio", "max_axial_damage_ratio"),
        ("BASIC grade (proposal)", "BASIC_proposed"),
    )

    def run(self, canonical, device, progress, should_cancel, inputs: TaskInputs, source: str) -> Segmented:
        """Label map 0/1/2 (cord, lesion): lesion components mostly outside the cord are dropped."""
        from ..postprocess import lesion_label_map

        cord, network, probability = cord_then(
            "lesion", canonical, device, progress, should_cancel, 0.5, inputs.model_dir
        )
        labels, dropped = lesion_label_map(cord.labels, probability, network.spec.threshold)
        return Segmented(labels, cord.networks + [network], {"lesion_voxels_dropped_outside_cord": dropped})

    def measure(self, labels, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        from ..measure.lesion import lesion_table

        rows, flags = lesion_table(labels)
        return [Table(self.table_name, rows, self.columns())], flags

    def columns(self) -> list[str]:
        from ..measure.lesion import LESION_COLUMNS

        return list(LESION_COLUMNS)

    def units(self) -> dict[str, str]:
        from ..measure.lesion import COLUMN_UNITS

        return dict(COLUMN_UNITS)
