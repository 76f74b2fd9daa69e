"""Spinal tumour on Gd-T1: the cord, the enhancing tumour near it, and its volume, extent,
diameters and compartment (``docs/tumor.md``)."""

from __future__ import annotations

import numpy as np

from .base import Segmented, Table, TaskInputs
from .findings import FindingsTask, cord_then


class TumorTask(FindingsTask):
    name = "tumor"
    title = "Spinal tumour segmentation"
    panel_name = "tumour"
    segments = ((1, "Spinal cord"), (2, "Spinal tumour"))
    overlapping = True  # 1 cord, 2 tumour outside the cord, 3 tumour inside it
    expected_contrast = "Gd-enhanced T1w"
    inputs = frozenset({"vertebral_levels"})
    # No segment is required: no tumour is a finding (a zero total row, tumor_found False), and a
    # missing cord only makes the compartment "unknown (no cord)". The scan gives the enhancement ratio.
    measure_needs_image = True
    qc_total_columns = (
        ("Tumours", "n_components"),
        ("Tumour volume (mL)", "volume_ml"),
        ("Craniocaudal length (mm)", "craniocaudal_length"),
        ("Max 3D diameter (mm)", "max_3d_diameter"),
        ("Compartment", "compartment"),
        ("Levels", "levels"),
        ("Model expects", "expected_contrast"),
    )

    def run(self, canonical, device, progress, should_cancel, inputs: TaskInputs, source: str) -> Segmented:
        """Bit flags 1 cord, 2 tumour: components further than 10 mm from the cord are dropped."""
        from ..orientation import canonical_array, spacing_zyx
        from ..postprocess import clean_tumor_mask

        cord, network, probability = cord_then(
            "tumor", canonical, device, progress, should_cancel, 0.3, inputs.model_dir
        )
        tumor, dropped = clean_tumor_mask(probability, cord.labels, spacing_zyx(canonical), network.spec.threshold)
        details = {
            "input_appearance": input_appearance(canonical_array(canonical), cord.labels),
            "tumour_voxels_dropped_far_from_cord": dropped,
        }
        return Segmented((cord.labels | (tumor << 1)).astype(np.uint8), cord.networks + [network], details)

    def measure(self, labels, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        """One row per tumour and a total row, each saying which contrast the model expects: a scan of
        another contrast (T2 instead of Gd-T1) is run anyway."""
        from ..measure.tumor import tumor_table

        rows, flags = tumor_table(labels, image, inputs.vertebral_levels)
        rows = [{**row, "expected_contrast": self.expected_contrast} for row in rows]
        return [Table(self.table_name, rows, self.columns())], {**flags, "expected_contrast": self.expected_contrast}

    def measure_result(self, result, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        tables, flags = self.measure(result.mask, image, inputs)
        return tables, {**flags, "input_appearance": result.sidecar.get("input_appearance")}

    def columns(self) -> list[str]:
        from ..measure.tumor import TUMOR_COLUMNS

        return [*TUMOR_COLUMNS, "expected_contrast"]

    def units(self) -> dict[str, str]:
        from ..measure.tumor import COLUMN_UNITS

        return {**COLUMN_UNITS, "expected_contrast": ""}


def input_appearance(image: np.ndarray, cord: np.ndarray) -> dict:
    """T1- or T2-like, from the ring just around the cord (CSF): a hint where a contrast was expected, not a check."""
    from scipy import ndimage

    if not cord.any():
        return {"appearance": "unknown (no cord found)"}
    ring = ndimage.binary_dilation(cord > 0, iterations=2) & ~(cord > 0)
    ratio = float(np.median(image[ring]) / max(float(np.median(image[cord > 0])), 1e-6))
    appearance = "T2-like: CSF brighter than cord" if ratio > 1.1 else "T1-like: CSF not brighter than cord"
    return {"appearance": appearance, "csf_to_cord_ratio": round(ratio, 2)}
