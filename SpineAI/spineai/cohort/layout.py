"""Where a cohort run keeps things, and how to tell that a case is finished.

::

    OUT/cohort.json                 the cases of the latest run (id, image, levels) and the task
    OUT/failures.csv                case_id, input, error of every case that failed in the latest run
    OUT/<task>_summary.csv          one row per finished case, and the task's other cohort tables
                                    (``tasks.Task.cohort_tables``; the cord: cord_morphometry_all.csv)
    OUT/<case_id>/                  what ``pipeline.segment_file`` writes for that case
    OUT/qc/index.html               the QC report (``spineai.report.qc``)

A case is finished when its sidecar exists and every file the sidecar lists under ``outputs``
(mask and tables) exists: ``segment_file`` renames all its files into place together, sidecar
last, so a run that was killed mid-case leaves either a finished case or no sidecar at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import models
from ..tasks import get_task, output_names
from .discover import Case

MANIFEST = "cohort.json"
FAILURES = "failures.csv"
FAILURE_COLUMNS = ["case_id", "input", "error"]
QC_FOLDER = "qc"
PARTIAL_PREFIX = ".partial-"  # io.OutputSet's temporary names
SHIPPED_MODELS = str(Path(models.__file__).resolve().parent)  # a sidecar without model_folder was made with these


def case_folder(out_dir: Path, case_id: str) -> Path:
    return Path(out_dir) / case_id


def finished_sidecar(case_dir: Path, case: Case, task: str, model_dir: Path | None = None) -> dict | None:
    """The case's sidecar if the case is finished *for this input, levels file and model*, else None.

    Comparing the recorded input stops a resumed run from keeping another scan's results when a
    CSV list gives an existing id to a different image.
    """
    sidecar = read_finished_sidecar(case_dir / output_names(case.image, task)["sidecar"])
    if sidecar is None or sidecar.get("input") != str(Path(case.image).resolve()):
        return None
    wanted_levels = str(Path(case.levels).resolve()) if case.levels else None
    if sidecar.get("levels") != wanted_levels:
        return None
    return sidecar if made_with(sidecar, model_dir) else None


def made_with(sidecar: dict, model_dir: Path | None) -> bool:
    """Whether the result was made with the model of ``model_dir`` (None: the shipped models)."""
    return sidecar.get("model_folder", SHIPPED_MODELS) == str(
        Path(model_dir).resolve() if model_dir else SHIPPED_MODELS
    )


def find_finished_sidecar(case_dir: Path, task: str) -> dict | None:
    """The finished sidecar in ``case_dir`` without knowing the image name (report and aggregation)."""
    suffix = get_task(task).output_suffix
    # "[!.]": not a temporary ".partial-*" file that a killed run left beside the real outputs.
    for path in sorted(Path(case_dir).glob(f"[!.]*_{suffix}.json")):
        sidecar = read_finished_sidecar(path)
        if sidecar is not None:
            return sidecar
    return None


def read_failures(out_dir: Path) -> list[dict]:
    """The rows of ``failures.csv`` (none when no case failed)."""
    from ..tables import read_rows

    path = Path(out_dir) / FAILURES
    return read_rows(path) if path.is_file() else []


def read_finished_sidecar(path: Path) -> dict | None:
    try:
        sidecar = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    outputs = sidecar.get("outputs") if isinstance(sidecar, dict) else None
    if not isinstance(outputs, dict) or not outputs:
        return None
    if not all((path.parent / name).is_file() for name in outputs.values()):
        return None
    return {**sidecar, "folder": str(path.parent), "sidecar_path": str(path)}


def read_manifest(out_dir: Path) -> dict:
    """The latest run's manifest; for a folder without one, every sub-folder with a sidecar is a case."""
    path = Path(out_dir) / MANIFEST
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    folders = sorted(p for p in Path(out_dir).iterdir() if p.is_dir() and p.name != QC_FOLDER)
    return {"task": "cord", "cases": [{"case_id": p.name, "image": "", "levels": ""} for p in folders]}
