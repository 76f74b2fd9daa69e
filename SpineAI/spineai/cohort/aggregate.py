"""The cohort's tables, rebuilt from the per-case outputs; what they hold is the task's to say
(``tasks.Task.cohort_tables``: for the cord ``cord_morphometry_all.csv`` and ``cord_summary.csv``).

Rebuilding from what each case folder holds (rather than appending as cases finish) is what
makes the tables right after a resumed or killed run: every finished case of the latest run
appears exactly once, whichever run computed it.
"""

from __future__ import annotations

from pathlib import Path

from ..io import OutputSet
from ..tasks import get_task
from .layout import case_folder, find_finished_sidecar, read_manifest


def finished_cases(out_dir: Path, task: str) -> list[tuple[str, dict]]:
    """(case id, sidecar) of every finished case of the latest run, in the run's case order."""
    manifest = read_manifest(out_dir)
    result = []
    for record in manifest["cases"]:
        sidecar = find_finished_sidecar(case_folder(out_dir, record["case_id"]), task)
        if sidecar is not None:
            result.append((record["case_id"], sidecar))
    return result


def aggregate_cohort(out_dir, task: str = "cord") -> dict[str, Path]:
    """Write the task's cohort tables into ``out_dir`` from the finished cases; their paths by kind."""
    out_dir = Path(out_dir)
    tables = get_task(task).cohort_tables(finished_cases(out_dir, task))
    with OutputSet(out_dir) as out:
        return {table.kind: out.write_csv(table.rows, f"{table.name}.csv", table.columns) for table in tables}
