"""Labelled cases for training and validation, read from a manifest CSV.

A manifest has one row per scan: ``image, mask, subject, dataset, contrast, plane, split`` with
paths relative to the data folder and ``split`` in {train, val}; an optional ``fold`` column
assigns each subject to a cross-validation fold (``hold_out_fold``). ``cord_cases.csv`` beside
this file lists the labelled cord scans of SpineAI's shared data; a site trains on its own data by
writing a manifest in the same layout. Splits and folds must keep each subject on one side.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
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
    fold: str = ""

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
            fold=(row.get("fold") or "").strip(),
        )
        for row in rows
    ]
    for case in cases:
        for path in (case.image, case.mask):
            if not path.exists():
                raise InputError(path, f"listed in {manifest} but not found")
    check_subject_split(cases, manifest)
    check_subject_split(cases, manifest, side=lambda case: case.fold, what="folds")
    return cases


def hold_out_fold(cases: list[Case], fold: str | None, source="manifest") -> list[Case]:
    """The cases re-split for cross-validation: the subjects of ``fold`` are validation, every
    other case trains; ``fold=None``: every case trains (the model that uses all the labels)."""
    if fold is not None and fold not in {case.fold for case in cases}:
        raise InputError(source, f"no case is in fold {fold!r} (the manifest's fold column)")
    return [replace(case, split="val" if case.fold == fold else "train") for case in cases]


def check_subject_split(cases: list[Case], source, side=lambda case: case.split, what="train and val") -> None:
    """Refuse a split (or folds) that puts scans of one subject on two sides."""
    sides: dict[str, set[str]] = {}
    for case in cases:
        sides.setdefault(case.subject, set()).add(side(case))
    leaking = sorted(subject for subject, seen in sides.items() if len(seen) > 1)
    if leaking:
        raise InputError(source, f"subjects in more than one of {what}: {', '.join(leaking)}")
