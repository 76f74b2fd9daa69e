"""Spinal cord: the cord network on any contrast and plane, then SCT-style morphometry per slice
and, with vertebral levels, per level (``docs/morphometry.md``)."""

from __future__ import annotations

import math

import numpy as np

from .base import Chart, Segmented, Table, Task, TaskInputs, case_rows, rounded, run_facts

CSA = "MEAN(area)"


class CordTask(Task):
    name = "cord"
    title = "Spinal cord segmentation"
    panel_name = "cord"
    segments = ((1, "Spinal cord"),)
    inputs = frozenset({"vertebral_levels"})
    required_segment = "Spinal cord"
    chart = Chart("Slice (I->S)", CSA, "Spinal cord cross-sectional area")

    @property
    def table_name(self) -> str:
        return "cord_morphometry"

    def run(self, canonical, device, progress, should_cancel, inputs: TaskInputs, source: str) -> Segmented:
        return segment_cord(canonical, device, progress, should_cancel, inputs.model_dir)

    def measure(self, labels, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        """Per-slice morphometry, and per level with vertebral levels; no rows for an empty mask."""
        from ..measure.cord import LEVEL, aggregate_per_level, cord_morphometry

        levels = inputs.vertebral_levels
        found = bool(np.any(_array(labels)))
        rows = (
            cord_morphometry(labels, levels, levels_source=inputs.vertebral_levels_source or "levels") if found else []
        )
        columns = [c for c in self.columns() if levels is not None or c != LEVEL]
        tables = [Table(self.table_name, rows, columns, "per_slice")]
        if levels is not None:
            tables.append(Table(f"{self.table_name}_per_level", aggregate_per_level(rows), columns, "per_level"))
        return tables, {}

    def columns(self) -> list[str]:
        from ..measure.cord import MORPHOMETRY_COLUMNS

        return list(MORPHOMETRY_COLUMNS)

    def units(self) -> dict[str, str]:
        from ..measure.cord import COLUMN_UNITS

        return dict(COLUMN_UNITS)

    # --- cohorts and QC -----------------------------------------------------------------------

    def case_summary(self, case_id: str, sidecar: dict) -> dict:
        """CSA mean/SD over the measured slices, cord length, per-level CSA, run facts."""
        from ..measure.cord import LENGTH, LEVEL
        from ..tables import as_float

        per_slice = case_rows(sidecar, "per_slice")
        areas = [v for v in (as_float(row.get(CSA)) for row in per_slice) if math.isfinite(v)]
        lengths = [v for v in (as_float(row.get(LENGTH)) for row in per_slice) if math.isfinite(v)]
        row = {
            "case_id": case_id,
            "input": sidecar.get("input", ""),
            "cord_found": sidecar.get("cord_found", bool(areas)),
            "slices": len(areas),
            "mean_csa_mm2": rounded(sum(areas) / len(areas)) if areas else "",
            "std_csa_mm2": rounded(_population_std(areas)) if areas else "",
            "cord_length_mm": rounded(sum(lengths)) if lengths else "",
        }
        for level_row in case_rows(sidecar, "per_level"):
            row[level_column(level_row[LEVEL])] = rounded(as_float(level_row.get(CSA)))
        return row | run_facts(sidecar)

    def cohort_tables(self, cases: list[tuple[str, dict]]) -> list[Table]:
        from ..measure.cord import MORPHOMETRY_COLUMNS

        all_rows = [
            {"case_id": case_id, **row} for case_id, sidecar in cases for row in case_rows(sidecar, "per_slice")
        ]
        summaries = [self.case_summary(case_id, sidecar) for case_id, sidecar in cases]
        present = {key for row in all_rows for key in row}
        return [
            Table(
                "cord_morphometry_all",
                all_rows,
                ["case_id"] + [c for c in MORPHOMETRY_COLUMNS if c in present],
                "morphometry_all",
            ),
            Table("cord_summary", summaries, summary_columns(summaries), "summary"),
        ]

    def qc_measurements(self, sidecar: dict, summary: dict) -> list[tuple[str, object]]:
        pairs = [
            ("Mean CSA (mm²)", summary["mean_csa_mm2"]),
            ("CSA SD (mm²)", summary["std_csa_mm2"]),
            ("Cord length (mm)", summary["cord_length_mm"]),
            ("Slices measured", summary["slices"]),
            ("Cord found", "yes" if summary["cord_found"] else "no"),
        ]
        # Per-level columns are the only summary keys named csa_<level>_mm2 (``level_column``).
        return pairs + [(f"CSA {k[4:-4]} (mm²)", v) for k, v in summary.items() if k.startswith("csa_")]


def segment_cord(canonical, device, progress=None, should_cancel=None, model_dir=None) -> Segmented:
    """Cord mask (0/1, canonical array) from the cord network (``model_dir``: a site's cord model);
    the lesion and tumour tasks start here, with the shipped one."""
    from ..inference import network_for
    from ..orientation import canonical_array
    from ..postprocess import clean_cord_mask

    network = network_for("cord", device, model_dir)
    probability = canonical_array(network.probability(canonical, progress, should_cancel))
    return Segmented(clean_cord_mask(probability, network.spec.threshold), [network])


SUMMARY_COLUMNS = ["case_id", "input", "cord_found", "slices", "mean_csa_mm2", "std_csa_mm2", "cord_length_mm"]


def level_column(code) -> str:
    """'csa_C3_mm2' for SCT level code 3."""
    from ..measure.levels import level_name

    return f"csa_{level_name(int(float(code)))}_mm2"


def summary_columns(summaries: list[dict]) -> list[str]:
    """Fixed columns, then per-level CSA columns in level order (C1..S1), then the run facts."""
    from .base import RUN_COLUMNS

    level_columns = {key for row in summaries for key in row if key.startswith("csa_")}
    order = {level_column(code): code for code in range(1, 26)}
    return SUMMARY_COLUMNS + sorted(level_columns, key=lambda c: order.get(c, 99)) + RUN_COLUMNS


def _population_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _array(image):
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)
