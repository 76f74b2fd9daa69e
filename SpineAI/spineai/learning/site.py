"""The site folder: the corrected cases a site has collected, to fine-tune its own model on.

::

    SITE/corrections.csv                  one row per (case, task): what the case is and where from
    SITE/cases/<task>/<case_id>/image.nii.gz    the scan, as NIfTI whatever it was given as
    SITE/cases/<task>/<case_id>/labels.nii.gz   the corrected label map (the task's label values)
    SITE/cases/<task>/<case_id>/levels.mrk.json the disc levels (tasks measured at disc levels)
    SITE/models/<task>-<date>-<time>/      site models fine-tuned on them (``finetune``'s default)

A case is named by its scan's content (voxels and geometry), so adding the same scan again for
the same task replaces its correction, never duplicates it. Every file's sha256 is kept in the
manifest: a missing or damaged file is found before anything trains on it. Writes are all or
nothing: a case folder is made beside its final place and renamed into it, then the manifest is
replaced in one step.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, SpineAIError
from ..input_check import contrast_from_name
from ..io import read_image
from ..models.registry import sha256_of
from ..orientation import spacing_zyx, to_canonical

MANIFEST = "corrections.csv"


@dataclass(frozen=True)
class Correction:
    case_id: str
    task: str
    image: str  # paths relative to the site folder
    labels: str
    levels: str  # "" unless the task works at disc levels
    contrast: str  # from the file name or DICOM series description, "unknown" if neither says
    plane: str  # axial, sagittal, coronal or 3D, from the voxel spacing
    model: str  # the model that made the first result, "unknown" without its sidecar
    model_sha256: str
    edited: str  # "yes", "no" (the first result was kept as it was) or "unknown"
    added: str  # ISO time, UTC
    source: str  # the image as the user gave it
    sha256: str  # of image, labels and levels files, "image:labels[:levels]"

    def path(self, site: Path, kind: str) -> Path:
        return Path(site) / getattr(self, kind)


COLUMNS = [f.name for f in fields(Correction)]


def default_site_dir() -> Path:
    """``$SPINEAI_SITE``, else the user's SpineAI data folder (as the platform places per-user data)."""
    if os.environ.get("SPINEAI_SITE"):
        return Path(os.environ["SPINEAI_SITE"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "SpineAI" / "site"


def read_site(site: Path, task: str | None = None, check_files: bool = True) -> list[Correction]:
    """The site's corrections (of ``task``), every file checked against its recorded sha256."""
    site = Path(site)
    manifest = site / MANIFEST
    if not manifest.exists():
        return []
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        corrections = [Correction(**{name: row[name] for name in COLUMNS}) for row in rows]
    except (OSError, KeyError, TypeError, csv.Error, UnicodeDecodeError) as error:
        raise InputError(manifest, f"not a SpineAI corrections manifest ({type(error).__name__}: {error})") from None
    chosen = [c for c in corrections if task is None or c.task == task]
    if check_files:
        for correction in chosen:
            _check_files(site, correction)
    return chosen


def _check_files(site: Path, correction: Correction) -> None:
    kinds = ["image", "labels"] + (["levels"] if correction.levels else [])
    for kind, expected in zip(kinds, correction.sha256.split(":"), strict=True):
        path = correction.path(site, kind)
        if not path.is_file():
            raise InputError(path, f"missing from the site folder (case {correction.case_id}, {correction.task})")
        if sha256_of(path) != expected:
            raise InputError(path, "damaged: its sha256 differs from the one recorded when the case was added")


def add_correction(
    site: Path, image_path, labels_path, task: str, sidecar_path=None, levels_path=None, contrast: str | None = None
) -> Correction:
    """Read and check a scan and its corrected label map (files), then ``add_case`` them."""
    from ..measure.checks import check_label_map
    from ..tasks import get_task

    info = get_task(task)
    read_site(site, check_files=False)  # a damaged manifest stops here, before the slow reads
    image, labels = read_image(image_path), read_image(labels_path)
    check_label_map(labels, info, labels_path, image)
    levels = _read_levels(info, levels_path, labels_path)
    first = _first_result(sidecar_path, labels)
    contrast = contrast or guess_contrast(image_path, image)
    return add_case(site, image, labels, task, str(Path(image_path).resolve()), first, levels, contrast)


def add_case(
    site: Path,
    image: sitk.Image,
    labels: sitk.Image,
    task: str,
    source: str,
    first: dict | None = None,
    levels: list | dict | None = None,
    contrast: str | None = None,
) -> Correction:
    """Store a checked scan and its corrected label map in ``site``, replacing the same scan's earlier
    correction for ``task``; nothing in the site changes when a check fails. ``first``: the model
    that made the first result and whether it was edited (``model``, ``model_sha256``, ``edited``);
    ``levels``: the disc levels (``LevelPoint`` list or Slicer markups) of a task measured at them."""
    from ..measure.checks import check_label_map
    from ..tasks import get_task

    info = get_task(task)
    site = Path(site)
    existing = read_site(site, check_files=False)
    check_label_map(labels, info, source, image)
    if "disc_levels" in info.measure_needs and not levels:
        raise InputError(source, f"a {task} correction needs its disc levels")
    if isinstance(levels, list):
        from ..stenosis.levels import level_markups

        levels = level_markups(levels)
    case_id = scan_id(image)
    folder = Path("cases") / task / case_id
    correction = Correction(
        case_id=case_id,
        task=task,
        image=str(folder / "image.nii.gz"),
        labels=str(folder / "labels.nii.gz"),
        levels=str(folder / "levels.mrk.json") if levels else "",
        contrast=contrast or guess_contrast(source, image),
        plane=acquisition_plane(image),
        added=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=source,
        sha256="",
        **(first or {"model": "unknown", "model_sha256": "", "edited": "unknown"}),
    )
    staged = _stage_case(site, case_id, image, labels, levels)
    names = ("image.nii.gz", "labels.nii.gz", "levels.mrk.json")[: 2 + bool(levels)]
    correction = Correction(**{**asdict(correction), "sha256": ":".join(sha256_of(staged / name) for name in names)})
    kept = [c for c in existing if (c.case_id, c.task) != (case_id, task)]
    _commit(site, staged, site / folder, kept + [correction])
    return correction


def _read_levels(info, levels_path, labels_path) -> dict | None:
    """The disc levels a task measured at disc levels needs, as Slicer markups (checked by reading them)."""
    if "disc_levels" not in info.measure_needs:
        return None
    if levels_path is None:
        raise InputError(labels_path, f"a {info.name} correction needs its disc levels (--disc-levels)")
    from ..stenosis.levels import level_markups, read_level_points

    return level_markups(read_level_points(levels_path))


def _first_result(sidecar_path, labels: sitk.Image) -> dict:
    """The model that made the first result and whether the user changed it, from its sidecar."""
    if sidecar_path is None:
        return {"model": "unknown", "model_sha256": "", "edited": "unknown"}
    try:
        sidecar = json.loads(Path(sidecar_path).read_text(encoding="utf-8"))
        model, sha = sidecar["model"], sidecar["model_sha256"]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(sidecar_path, f"not a SpineAI sidecar ({type(error).__name__}: {error})") from None
    first = Path(sidecar_path).parent / sidecar.get("outputs", {}).get("mask", "")
    edited = "unknown"
    if first.is_file():
        same = np.array_equal(sitk.GetArrayFromImage(read_image(first)), sitk.GetArrayViewFromImage(labels))
        edited = "no" if same else "yes"
    return {"model": model, "model_sha256": sha, "edited": edited}


def scan_id(image: sitk.Image) -> str:
    """A name for the scan from its voxels and geometry: the same scan always gets the same one."""
    digest = hashlib.sha256(sitk.GetArrayViewFromImage(image).tobytes())
    for values in (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()):
        digest.update(np.round(np.asarray(values, float), 4).tobytes())
    return digest.hexdigest()[:16]


def guess_contrast(image_path, image: sitk.Image) -> str:
    """The contrast the file name (BIDS suffix and common words) or DICOM series description names."""
    texts = [Path(image_path).name]
    if image.HasMetaDataKey("0008|103e"):
        texts.append(image.GetMetaData("0008|103e"))
    return next((contrast for contrast in map(contrast_from_name, texts) if contrast), "unknown")


def acquisition_plane(image: sitk.Image) -> str:
    """Axial, sagittal or coronal: the axis with the coarsest spacing; 3D when spacings are within 20%."""
    spacing = spacing_zyx(to_canonical(image))  # canonical: z I->S, y P->A, x R->L
    if max(spacing) < 1.2 * min(spacing):
        return "3D"
    return ("axial", "coronal", "sagittal")[int(np.argmax(spacing))]


def _stage_case(site: Path, case_id: str, image, labels, levels) -> Path:
    """The case's files written into a new folder inside ``site`` (renamed into place by ``_commit``)."""
    site.mkdir(parents=True, exist_ok=True)
    staged = site / f".partial-{os.getpid()}-{case_id}"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    try:
        sitk.WriteImage(image, str(staged / "image.nii.gz"), useCompression=True)
        sitk.WriteImage(sitk.Cast(labels, sitk.sitkUInt8), str(staged / "labels.nii.gz"), useCompression=True)
        if levels:
            (staged / "levels.mrk.json").write_text(json.dumps(levels, indent=1), encoding="utf-8")
    except Exception:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def _commit(site: Path, staged: Path, target: Path, corrections: list[Correction]) -> None:
    """Put the staged case in place and the manifest after it; on failure the site is as before."""
    old = target.with_name(f".old-{os.getpid()}-{target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.rename(old)
    try:
        staged.rename(target)
        write_manifest(site, corrections)
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        if old.exists():
            old.rename(target)
        shutil.rmtree(staged, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_manifest(site: Path, corrections: list[Correction]) -> None:
    temporary = Path(site) / f".partial-{os.getpid()}-{MANIFEST}"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(c) for c in corrections)
    os.replace(temporary, Path(site) / MANIFEST)


def new_model_folder(site: Path, task: str) -> Path:
    """Where a fine-tune of ``task`` writes by default: ``SITE/models/<task>-<UTC date>-<time>``."""
    return Path(site) / "models" / f"{task}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def site_models(site: Path, task: str | None = None) -> list[dict]:
    """The site's fine-tuned models (of ``task``), newest first: name, task, created, folder."""
    found = []
    for record_path in sorted((Path(site) / "models").glob("*/*.json")):
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            entry = {"name": record["name"], "task": record["task"], "created": record["site"]["created"]}
        except (OSError, ValueError, KeyError):
            continue  # not a site model record (or a damaged one): not offered
        if task is None or entry["task"] == task:
            found.append(entry | {"folder": record_path.parent})
    return sorted(found, key=lambda entry: entry["created"], reverse=True)


def describe(corrections: list[Correction]) -> list[str]:
    """One line per case, for ``spineai corrections list``."""
    if not corrections:
        return ["no corrected case yet"]
    return [
        f"{c.task:<9} {c.case_id}  {c.contrast:<8} {c.plane:<8} edited={c.edited:<7} {c.added}  {c.source}"
        for c in corrections
    ]


def require_cases(site: Path, task: str) -> list[Correction]:
    """The site's cases of ``task``; an error naming the site when there are none."""
    cases = read_site(site, task)
    if not cases:
        raise SpineAIError(f"{site}: no corrected {task} case (add one with spineai corrections add)")
    return cases
