"""Turn a batch INPUT into a list of cases: a folder of scans, a BIDS dataset or a CSV list.

Every case gets an id that is unique in the cohort and safe as a folder name, because each case
writes its results into ``<out>/<case id>/``. Discovery only lists what is there; whether a file
really is a readable scan is decided when the case runs, so a bad file becomes a reported failure
instead of silently vanishing from the cohort.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpineAIError
from ..io import IMAGE_SUFFIXES, image_stem

DICOM_MARKER_OFFSET = 128  # DICOM Part 10 files carry b"DICM" after a 128-byte preamble
SKIPPED_FOLDERS = {"derivatives", "sourcedata", "code"}  # BIDS folders that hold no raw scans


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    levels: Path | None = None

    def as_record(self) -> dict:
        return {"case_id": self.case_id, "image": str(self.image), "levels": str(self.levels) if self.levels else ""}


def discover_cases(source, exclude: Path | None = None) -> list[Case]:
    """The cases of ``source`` in a stable order; ``exclude`` (the output folder) is never searched."""
    source = Path(source)
    if not source.exists():
        raise SpineAIError(f"{source}: not found")
    if source.is_file() and source.suffix.lower() == ".csv":
        cases = cases_from_csv(source)
    elif source.is_dir() and is_bids_dataset(source):
        cases = cases_from_bids(source)
    elif source.is_dir():
        cases = cases_from_folder(source, exclude)
    else:
        raise SpineAIError(f"{source}: give a folder of scans, a BIDS dataset or a CSV list (column 'image')")
    if not cases:
        raise SpineAIError(f"{source}: no scans found (looked for {', '.join(IMAGE_SUFFIXES)} and DICOM series)")
    return cases


# --- folder of scans --------------------------------------------------------------------------


def cases_from_folder(folder: Path, exclude: Path | None = None) -> list[Case]:
    """Every image file under ``folder`` (recursively) and every folder holding DICOM files."""
    folder = folder.resolve()
    images = list(_scan_folder(folder, exclude.resolve() if exclude else None))
    ids = unique_ids([_folder_case_id(path, folder) for path in images])
    return [Case(case_id, path) for case_id, path in zip(ids, images, strict=True)]


def _scan_folder(folder: Path, exclude: Path | None):
    entries = sorted(folder.iterdir())
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    if any(is_dicom_file(p) for p in files):
        yield folder  # a DICOM series folder is one case; read_image checks it holds one series
        return
    for path in files:
        if path.name.lower().endswith(IMAGE_SUFFIXES):
            yield path
    for path in entries:
        if path.is_dir() and not path.name.startswith(".") and path.name not in SKIPPED_FOLDERS and path != exclude:
            yield from _scan_folder(path, exclude)


def _folder_case_id(path: Path, root: Path) -> str:
    """Relative path without the image extension, '/' -> '_': 'site1/sub-01.nii.gz' -> 'site1_sub-01'."""
    relative = path.relative_to(root) if path != root else Path(path.name)
    parts = [*relative.parts[:-1], image_stem(relative.name)]
    return "_".join(parts)


def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(DICOM_MARKER_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


# --- BIDS ---------------------------------------------------------------------------------------


def is_bids_dataset(folder: Path) -> bool:
    """A BIDS root: has dataset_description.json, or sub-* folders holding anat/ (directly or per session)."""
    if (folder / "dataset_description.json").is_file():
        return True
    return any(folder.glob("sub-*/anat")) or any(folder.glob("sub-*/ses-*/anat"))


def cases_from_bids(root: Path) -> list[Case]:
    """sub-*/[ses-*/]anat/*.nii[.gz]; the case id is built from the BIDS entities (derivatives/ skipped)."""
    root = root.resolve()
    images = sorted(
        path
        for pattern in ("sub-*/anat/*", "sub-*/ses-*/anat/*")
        for path in root.glob(pattern)
        if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")) and not path.name.startswith(".")
    )
    ids = unique_ids([bids_case_id(path) for path in images])
    return [Case(case_id, path) for case_id, path in zip(ids, images, strict=True)]


def bids_case_id(path: Path) -> str:
    """'sub-01_ses-2_acq-sag_T2w' from the file's entities; subject and session taken from the folders
    when the file name lacks them, so ids stay unique across subjects even for non-compliant names."""
    entities = image_stem(path.name).split("_")
    folders = {part.split("-", 1)[0]: part for part in path.parts if re.fullmatch(r"(sub|ses)-[^_/]+", part)}
    names = {entity.split("-", 1)[0] for entity in entities if "-" in entity}
    missing = [folders[key] for key in ("sub", "ses") if key in folders and key not in names]
    return "_".join(missing + entities)


# --- CSV list -----------------------------------------------------------------------------------


def cases_from_csv(list_path: Path) -> list[Case]:
    """Rows of a CSV with column ``image`` (optional ``id``, ``levels``); relative paths are relative to the CSV."""
    with open(list_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "image" not in columns:
            found = ", ".join(columns) or "none"
            raise SpineAIError(f"{list_path}: the CSV list needs a column 'image' (found: {found})")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    rows = [row for row in rows if row.get("image")]
    images = [_relative_to(list_path.parent, row["image"]) for row in rows]
    levels = [_relative_to(list_path.parent, row["levels"]) if row.get("levels") else None for row in rows]
    given = [row.get("id") or "" for row in rows]
    _refuse_duplicate_ids(list_path, [i for i in given if i])
    ids = unique_ids([safe_id(i) if i else image_stem(p.name) for i, p in zip(given, images, strict=True)])
    return [Case(case_id, image, level) for case_id, image, level in zip(ids, images, levels, strict=True)]


def _relative_to(folder: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (folder / path).resolve()


def _refuse_duplicate_ids(list_path: Path, ids: list[str]) -> None:
    seen, duplicates = set(), set()
    for case_id in ids:
        (duplicates if case_id in seen else seen).add(case_id)
    if duplicates:
        repeated = ", ".join(sorted(duplicates))
        raise SpineAIError(f"{list_path}: the id column repeats {repeated}; every case needs its own id")


# --- ids ----------------------------------------------------------------------------------------


def safe_id(text: str) -> str:
    """A folder-safe case id: letters, digits, '.', '_', '-'; anything else becomes '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "case"


def unique_ids(ids: list[str]) -> list[str]:
    """Make ids unique by suffixing repeats ('t2', 't2-2', ...), keeping the first occurrence unchanged."""
    taken: set[str] = set()
    result = []
    for raw in ids:
        candidate, n = safe_id(raw), 1
        while candidate.lower() in taken:  # case-insensitive: two ids must not share a folder on macOS
            n += 1
            candidate = f"{safe_id(raw)}-{n}"
        taken.add(candidate.lower())
        result.append(candidate)
    return result
