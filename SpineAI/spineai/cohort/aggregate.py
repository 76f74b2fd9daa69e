"""One table per task over the whole cohort, rebuilt from the per-case outputs.

Rebuilding from what each case folder holds (rather than appending as cases finish) is what
makes the tables right after a resumed or killed run: every finished case of the latest run
appears exactly once, whichever run computed it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..io import OutputSet
from ..measure.cord import LENGTH, LEVEL, MORPHOMETRY_COLUMNS
from ..measure.levels import level_name
from .layout import case_folder, find_finished_sidecar, morphometry_all_name, read_manifest, summary_name

CSA = "MEAN(area)"
SUMMARY_COLUMNS = ["case_id", "input", "cord_found", "slices", "mean_csa_mm2", "std_csa_mm2", "cord_length_mm"]
RUN_COLUMNS = ["seconds", "device", "model", "engine_version"]


def finished_cases(out_dir: Path, task: str) -> list[tuple[str, dict]]:
    """(case id, sidecar) of every finished case of the latest run, in the run's case order."""
    manifest = read_manifest(out_dir)
    result = []
    for record in manifest["cases"]:
        sidecar = find_finished_sidecar(case_folder(out_dir, record["case_id"]), task)
        if sidecar is not None:
            result.append((record["case_id"], sidecar))
    return result


def case_tables(sidecar: dict) -> tuple[list[dict], list[dict]]:
    """The case's per-slice and per-level rows (per-level empty without levels)."""
    folder, outputs = Path(sidecar["folder"]), sidecar["outputs"]
    per_slice = read_rows(folder / outputs["per_slice"]) if "per_slice" in outputs else []
    per_level = read_rows(folder / outputs["per_level"]) if "per_level" in outputs else []
    return per_slice, per_level


def case_summary(case_id: str, sidecar: dict) -> dict:
    """One summary row: CSA mean/SD over the measured cord slices, cord length, per-level CSA, run facts."""
    per_slice, per_level = case_tables(sidecar)
    areas = [value for value in (as_float(row.get(CSA)) for row in per_slice) if math.isfinite(value)]
    lengths = [value for value in (as_float(row.get(LENGTH)) for row in per_slice) if math.isfinite(value)]
    row = {
        "case_id": case_id,
        "input": sidecar.get("input", ""),
        "cord_found": sidecar.get("cord_found", bool(areas)),
        "slices": len(areas),
        "mean_csa_mm2": _round(sum(areas) / len(areas)) if areas else "",
        "std_csa_mm2": _round(_population_std(areas)) if areas else "",
        "cord_length_mm": _round(sum(lengths)) if lengths else "",
    }
    for level_row in per_level:
        row[level_column(level_row[LEVEL])] = _round(as_float(level_row.get(CSA)))
    return row | {key: sidecar.get(key, "") for key in RUN_COLUMNS}


def level_column(code) -> str:
    """'csa_C3_mm2' for SCT level code 3."""
    return f"csa_{level_name(int(float(code)))}_mm2"


def aggregate_cohort(out_dir, task: str = "cord") -> dict[str, Path]:
    """Write OUT/<task>_morphometry_all.csv and OUT/<task>_summary.csv from the finished cases.

    The lesion and tumour tasks write OUT/<task>_all.csv (every lesion or tumour row of every
    case) and OUT/<task>_summary.csv (each case's total row).
    """
    out_dir = Path(out_dir)
    if task in ("lesion", "tumor"):
        return aggregate_findings(out_dir, task)
    if task == "stenosis":
        return aggregate_stenosis(out_dir)
    all_rows, summaries = [], []
    for case_id, sidecar in finished_cases(out_dir, task):
        per_slice, _ = case_tables(sidecar)
        all_rows += [{"case_id": case_id, **row} for row in per_slice]
        summaries.append(case_summary(case_id, sidecar))
    present = {key for row in all_rows for key in row}
    all_columns = ["case_id"] + [c for c in MORPHOMETRY_COLUMNS if c in present]
    with OutputSet(out_dir) as out:
        return {
            "morphometry_all": out.write_csv(all_rows, morphometry_all_name(task), all_columns),
            "summary": out.write_csv(summaries, summary_name(task), summary_columns(summaries)),
        }


def aggregate_findings(out_dir: Path, task: str) -> dict[str, Path]:
    """Lesion and tumour cohorts: every row of every case (``<task>_all.csv``) and each case's total row."""
    columns = finding_columns(task)
    found_key = f"{task}_found"
    all_rows, summaries = [], []
    for case_id, sidecar in finished_cases(out_dir, task):
        rows = read_rows(Path(sidecar["folder"]) / sidecar["outputs"]["table"])
        all_rows += [{"case_id": case_id, **row} for row in rows]
        summaries.append(
            {"case_id": case_id, "input": sidecar.get("input", ""), "cord_found": sidecar.get("cord_found", "")}
            | {found_key: sidecar.get(task, {}).get(found_key, "")}
            | {key: value for key, value in rows[-1].items() if key != "label"}
            | {key: sidecar.get(key, "") for key in RUN_COLUMNS}
        )
    total_columns = [c for c in columns if c != "label"]
    with OutputSet(out_dir) as out:
        return {
            f"{task}_all": out.write_csv(all_rows, f"{task}_all.csv", ["case_id", *columns]),
            "summary": out.write_csv(
                summaries,
                summary_name(task),
                ["case_id", "input", "cord_found", found_key, *total_columns, *RUN_COLUMNS],
            ),
        }


def aggregate_stenosis(out_dir: Path) -> dict[str, Path]:
    """Every level row of every case (``stenosis_all.csv``) and one row per case with each level's
    Schizas grade and dural sac area side by side (``stenosis_summary.csv``)."""
    from ..measure.stenosis import STENOSIS_COLUMNS
    from ..stenosis.levels import DISC_NAMES

    all_rows, summaries = [], []
    for case_id, sidecar in finished_cases(out_dir, "stenosis"):
        rows = read_rows(Path(sidecar["folder"]) / sidecar["outputs"]["table"])
        all_rows += [{"case_id": case_id, **row} for row in rows]
        flags = sidecar.get("stenosis", {})
        summary = {"case_id": case_id, "input": sidecar.get("input", ""), "levels_from": sidecar.get("levels_from", "")}
        summary |= {
            key: flags.get(key, "") for key in ("worst_schizas_grade", "smallest_dsca_mm2", "smallest_dsca_level")
        }
        for row in rows:
            summary[f"schizas_{row['level']}"] = row.get("schizas_grade", "")
            summary[f"dsca_{row['level']}_mm2"] = row.get("dural_sac_area_mm2", "")
        summaries.append(summary | {key: sidecar.get(key, "") for key in RUN_COLUMNS})
    per_level = [
        f"{kind}_{name}{unit}" for name in DISC_NAMES.values() for kind, unit in (("schizas", ""), ("dsca", "_mm2"))
    ]
    columns = ["case_id", "input", "levels_from", "worst_schizas_grade", "smallest_dsca_mm2", "smallest_dsca_level"]
    with OutputSet(out_dir) as out:
        return {
            "stenosis_all": out.write_csv(all_rows, "stenosis_all.csv", ["case_id", *STENOSIS_COLUMNS]),
            "summary": out.write_csv(summaries, summary_name("stenosis"), [*columns, *per_level, *RUN_COLUMNS]),
        }


def finding_columns(task: str) -> list[str]:
    if task == "lesion":
        from ..measure.lesion import LESION_COLUMNS

        return LESION_COLUMNS
    from ..measure.tumor import TUMOR_COLUMNS

    return [*TUMOR_COLUMNS, "expected_contrast"]


def summary_columns(summaries: list[dict]) -> list[str]:
    """Fixed columns, then per-level CSA columns in level order (C1..S1), then the run facts."""
    level_columns = {key for row in summaries for key in row if key.startswith("csa_")}
    order = {level_column(code): code for code in range(1, 26)}
    return SUMMARY_COLUMNS + sorted(level_columns, key=lambda c: order.get(c, 99)) + RUN_COLUMNS


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _population_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _round(value: float):
    return round(value, 4) if math.isfinite(value) else ""
