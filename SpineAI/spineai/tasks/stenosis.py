"""Lumbar central stenosis: disc levels, the dural sac, its CSF and the posterior epidural fat in the
plane of each level, and the sac's area, fractions and Schizas and Lee grades (``docs/stenosis.md``).

Levels come, in this order of preference, from disc-level points the user gives (markups JSON or a
disc label image), from a sagittal T2 of the same session (``sagittal``), or from the scan itself
when it is a sagittal or 3D scan. A level that is missing, out of order, outside the scan or without
a sac is kept as a row marked not assessable, never graded. Nerve roots are the sac without CSF.
"""

from __future__ import annotations

from .base import Segmented, Table, Task, TaskInputs, case_rows, run_facts


class StenosisTask(Task):
    name = "stenosis"
    title = "Lumbar central stenosis"
    panel_name = "dural sac"
    segments = ((1, "Dural sac"), (2, "Cerebrospinal fluid"), (4, "Posterior epidural fat"))
    overlapping = True
    expected_contrast = "lumbar T2w (axial stack, or sagittal/3D)"
    inputs = frozenset({"disc_levels", "sagittal"})
    required_segment = "Dural sac"
    all_columns = True  # one row per level, not assessable ones included: every column in every table
    measure_needs = frozenset({"disc_levels"})
    measure_needs_hint = "the segmentation wrote them as <stem>_stenosis_levels.mrk.json"

    def run(self, canonical, device, progress, should_cancel, inputs: TaskInputs, source: str) -> Segmented:
        """Bit flags 1 dural sac, 2 CSF, 4 posterior fat at each assessable level; the levels in the details."""
        from ..inference import network_for
        from ..stenosis.segment import assessment_problems, level_sections, segment_sections

        levels, origin = stenosis_levels(canonical, inputs, device, source)
        if progress:
            progress(0.3)
        sections = level_sections(canonical, levels)
        problems = assessment_problems(canonical, levels, sections)
        assessable = [s for s in sections if s.level.code not in problems]
        labels = segment_sections(canonical, assessable, device, inputs.model_dir)
        if progress:
            progress(1.0)
        networks = ([] if inputs.disc_levels else [network_for("discs", device)]) + [
            network_for("stenosis", device, inputs.model_dir)
        ]
        details = {"levels_from": origin, "disc_levels": [_level_record(level, problems) for level in levels]}
        return Segmented(labels, networks, details)

    def cord_found(self, labels, flags: dict) -> bool | None:
        return None  # not looked for: the lumbar canal holds the cauda equina

    def warning(self, image, sidecar: dict) -> str | None:
        if not sidecar[self.name]["levels_assessable"]:
            return f"{image}: no level could be assessed (see the table's reasons)"
        return None

    def measure(self, labels, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        """One row per level L1-L2 ... L5-S1 at the disc levels given; where a level cannot be assessed
        comes from the levels (order, spacing) and from the label map's grid (no slice, outside)."""
        from ..stenosis.levels import with_normals
        from ..stenosis.segment import assessment_problems

        levels = with_normals(inputs.disc_levels)
        return self._graded(labels, levels, assessment_problems(labels, levels))

    def measure_result(self, result, image, inputs: TaskInputs) -> tuple[list[Table], dict]:
        """The levels and problems the segmentation itself recorded."""
        from ..stenosis.levels import levels_from_records

        levels, problems = levels_from_records(result.sidecar["disc_levels"])
        return self._graded(result.mask, levels, problems)

    def _graded(self, labels, levels, problems) -> tuple[list[Table], dict]:
        from ..measure.stenosis import stenosis_flags, stenosis_table

        rows = stenosis_table(labels, levels, problems)
        return [Table(self.table_name, rows, self.columns())], {**stenosis_flags(rows), "notes": _notes(rows)}

    def extra_outputs(self, result) -> dict[str, tuple[str, dict]]:
        """The levels as a Slicer point list, from which ``spineai measure`` and the module re-grade."""
        from ..stenosis.levels import level_markups, levels_from_records

        levels, _ = levels_from_records(result.sidecar["disc_levels"])
        return {"levels": ("stenosis_levels.mrk.json", level_markups(levels))}

    def columns(self) -> list[str]:
        from ..measure.stenosis import STENOSIS_COLUMNS

        return list(STENOSIS_COLUMNS)

    def units(self) -> dict[str, str]:
        from ..measure.stenosis import COLUMN_UNITS

        return dict(COLUMN_UNITS)

    # --- cohorts and QC -----------------------------------------------------------------------

    def case_summary(self, case_id: str, sidecar: dict) -> dict:
        """Each level's Schizas grade and dural sac area side by side, the worst grade and smallest sac."""
        flags = sidecar.get(self.name, {})
        summary = {"case_id": case_id, "input": sidecar.get("input", ""), "levels_from": sidecar.get("levels_from", "")}
        summary |= {key: flags.get(key, "") for key in SUMMARY_FLAGS}
        for row in case_rows(sidecar):
            summary[f"schizas_{row['level']}"] = row.get("schizas_grade", "")
            summary[f"dsca_{row['level']}_mm2"] = row.get("dural_sac_area_mm2", "")
        return summary | run_facts(sidecar)

    def cohort_tables(self, cases: list[tuple[str, dict]]) -> list[Table]:
        from ..stenosis.levels import DISC_NAMES
        from .base import RUN_COLUMNS

        all_rows = [{"case_id": case_id, **row} for case_id, sidecar in cases for row in case_rows(sidecar)]
        per_level = [f"{kind}_{name}{unit}" for name in DISC_NAMES.values() for kind, unit in LEVEL_COLUMNS]
        columns = ["case_id", "input", "levels_from", *SUMMARY_FLAGS, *per_level, *RUN_COLUMNS]
        return [
            Table("stenosis_all", all_rows, ["case_id", *self.columns()], "stenosis_all"),
            Table("stenosis_summary", [self.case_summary(c, s) for c, s in cases], columns, "summary"),
        ]

    def qc_status(self, sidecar: dict) -> str:
        return "ok" if sidecar.get(self.name, {}).get("levels_assessable") else "no level assessable"

    def qc_measurements(self, sidecar: dict, summary: dict) -> list[tuple[str, object]]:
        pairs = [(row["level"], _level_finding(row)) for row in case_rows(sidecar)]
        return pairs + [("Levels from", sidecar.get("levels_from"))]


SUMMARY_FLAGS = ("worst_schizas_grade", "smallest_dsca_mm2", "smallest_dsca_level")
LEVEL_COLUMNS = (("schizas", ""), ("dsca", "_mm2"))


def stenosis_levels(image, inputs: TaskInputs, device="auto", source="input image"):
    """(levels with normals, where the levels came from)."""
    from ..stenosis.levels import find_discs, with_normals

    if inputs.disc_levels:
        levels, origin = list(inputs.disc_levels), "points given"
    elif inputs.sagittal is not None:
        levels, origin = find_discs(inputs.sagittal, device, "sagittal scan"), "disc network on the sagittal scan"
    else:
        levels, origin = find_discs(image, device, source), "disc network on the scan"
    return with_normals(levels), origin


def _level_record(level, problems: dict[int, str]) -> dict:
    return {
        "level": level.name,
        "point_lps_mm": [round(v, 4) for v in level.point],
        "normal_lps": [round(v, 6) for v in level.normal] if level.normal is not None else None,
        "source": level.source,
        "problem": problems.get(level.code, ""),
    }


def _notes(rows: list[dict]) -> list[str]:
    """The worst grade and every level that could not be assessed, in words."""
    from ..measure.stenosis import stenosis_flags

    flags = stenosis_flags(rows)
    notes = []
    if flags["worst_schizas_grade"]:
        notes.append(
            f"worst Schizas grade {flags['worst_schizas_grade']}; smallest dural sac "
            f"{flags['smallest_dsca_mm2']:.0f} mm2 at {flags['smallest_dsca_level']}"
        )
    return notes + [
        f"{row['level']} not assessable ({row['not_assessable_reason']})" for row in rows if not row["assessable"]
    ]


def _level_finding(row: dict) -> str:
    if row.get("assessable") != "True":
        return f"not assessable: {row.get('not_assessable_reason', '')}"
    return f"Schizas {row['schizas_grade']}, {float(row['dural_sac_area_mm2']):.0f} mm²"
