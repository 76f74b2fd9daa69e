"""Labelled cases for training and validation, read from a manifest CSV.

A manifest has one row per scan: ``image, mask, subject, dataset, contrast, plane, split`` with
paths relative to the data folder and ``split`` in {train, val}. ``cord_cases.csv`` beside this
file lists the labelled cord scans of SpineAI's shared data; a site trains on its own data by
writing a manifest in the same layout. Splits must keep each subject on one side.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

# The tumour network is trained contrast-agnostic: every labelled cord scan can host a painted tumour.
BUILTIN_MANIFESTS = {task: Path(__file__).with_name(f"{task}_cases.csv") for task in ("cord", "lesion")}
BUILTIN_MANIFESTS["tumor"] = BUILTIN_MANIFESTS["cord"]
COLUMNS = ("image", "mask", "subject", "dataset", "contrast", "plane", "split")


@dataclass(frozen=True)
class Case:
    image: Path
    mask: Path
    subject: str
    dataset: str
    contrast: str
    plane: str
    split: str

    @property
    def group(self) -> str:
        """Validation results are reported per dataset and contrast."""
        return f"{self.dataset}/{self.contrast}"


def read_manifest(manifest: Path, data_root: Path) -> list[Case]:
    """Cases of a manifest, paths resolved against ``data_root``; checks files and the subject split."""
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing_columns = set(COLUMNS) - set(rows[0] if rows else ())
    if missing_columns:
        raise InputError(manifest, f"manifest lacks columns {sorted(missing_columns)}")
    cases = [
        Case(
            image=Path(data_root) / row["image"],
            mask=Path(data_root) / row["mask"],
            **{key: row[key] for key in COLUMNS[2:]},
        )
        for row in rows
    ]
    for case in cases:
        for path in (case.image, case.mask):
            if not path.exists():
                raise InputError(path, f"listed in {manifest} but not found")
    check_subject_split(cases, manifest)
    return cases


def check_subject_split(cases: list[Case], source) -> None:
    """Refuse a split that puts scans of one subject in both train and val."""
    splits: dict[str, set[str]] = {}
    for case in cases:
        splits.setdefault(case.subject, set()).add(case.split)
    leaking = sorted(subject for subject, sides in splits.items() if len(sides) > 1)
    if leaking:
        raise InputError(source, f"subjects in both train and val: {', '.join(leaking)}")
