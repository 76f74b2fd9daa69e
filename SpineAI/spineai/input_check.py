"""The input's plane and contrast, checked against what the model was measured on.

A model record may carry ``measured``: its median Dice per acquisition plane and contrast
(``models/<task>.json``; the cord's cross-validated, from ``benchmarks/cord_crossval.py``). A row
may name its figure (``figure``: the lesion model's are on synthetic lesions) and the Dice it is
held against (``supported_from``, default ``SUPPORTED_DICE``). A scan whose plane and contrast
measured below that is run anyway, but the sidecar, the CLI and the Slicer status line say the
contrast is not supported. A site model (``spineai finetune``) is held against the contrasts of the
cases it was fine-tuned on: on another it is run, and said to be outside what it was taught.
The plane is the axis the network slices
(``inference.slice_axis``); the contrast is read from the name a user or scanner gave the scan:
a BIDS suffix (``sub-01_T1w``), a file name or a DICOM series description ("T1 TSE AX", "GRE ME").
"""

from __future__ import annotations

import re
from pathlib import Path

from .models.registry import ModelSpec

SUPPORTED_DICE = 0.80
PLANES = ("axial", "coronal", "sagittal")  # the canonical axes z, y, x (LAS) as slice axes
CONTRASTS = [  # (pattern in a file name or series description, contrast), first match wins: T2* before T2
    (r"t2star|t2\*|t2s\b|_t2s|gre|medic|merge", "T2starw"),
    (r"flair", "FLAIR"),
    (r"\bmt[0-9]?\b|_mt|mts|mton|mtoff", "MT"),
    (r"t1|mprage|unit1", "T1w"),
    (r"t2", "T2w"),
    (r"\bpd", "PDw"),
]


def sliced_plane(spacing_zyx, size_zyx) -> str:
    """'axial', 'coronal' or 'sagittal': the plane of the slices the network sees (canonical a[z, y, x])."""
    from .inference import slice_axis  # not at import: the Slicer panel reads contrasts without the networks

    return PLANES[slice_axis(spacing_zyx, size_zyx)]


def contrast_from_name(name: str) -> str | None:
    """The contrast a scan's file name (BIDS suffix, common words), DICOM series description or
    Slicer volume name states ('T1w', 'T2w', 'T2starw', 'MT', 'FLAIR', 'PDw'), or None."""
    text = Path(str(name)).name.lower()
    return next((contrast for pattern, contrast in CONTRASTS if re.search(pattern, text)), None)


def check_input(spec: ModelSpec, plane: str, name: str) -> dict | None:
    """{'plane', 'contrast', 'supported', 'note'} for a model that carries measured figures, else None.

    ``supported`` is True where the plane and contrast measured at least ``SUPPORTED_DICE``, False
    where below it, None where the contrast is not known from the name or was never measured. A
    site model is held against the contrasts it was fine-tuned on instead (``taught``).
    """
    contrast = contrast_from_name(name)
    found = {"plane": plane, "contrast": contrast or "unknown (not stated in the name)"}
    if spec.taught:
        return _site_check(spec, found, contrast)
    if not spec.measured:
        return None
    row = next((r for r in spec.measured if (r["plane"], r["contrast"]) == (plane, contrast)), None)
    if contrast is None or row is None:
        good = [f"{r['plane']} {r['contrast']}" for r in spec.measured if r["median_dice"] >= _bar(r)]
        measured = ", ".join(good)
        what = "contrast not known from its name" if contrast is None else f"{plane} {contrast} was not measured"
        return found | {"supported": None, "note": f"{what}; {spec.name} is measured on {measured}"}
    dice = row["median_dice"]
    figure = f"{row.get('figure', 'cross-validated median Dice')} {dice:.2f} on {row['scans']} scan(s)"
    if dice < _bar(row):
        note = f"{plane} {contrast} is not supported by {spec.name}: {figure}, below {_bar(row):.2f}"
        return found | {"supported": False, "median_dice": dice, "note": note}
    return found | {"supported": True, "median_dice": dice, "note": f"{plane} {contrast}: {figure}"}


def _site_check(spec: ModelSpec, found: dict, contrast: str | None) -> dict | None:
    """A site model against the contrasts it was fine-tuned on: on another one it may have lost
    what its starting model knew (the mixing bounds that loss, it does not remove it:
    docs/learning.md), so ``taught`` False is said like an unsupported contrast."""
    taught = [c for c in spec.taught if c != "unknown"]
    if not taught:  # no case named its contrast: nothing to hold the input against
        return None
    cases = f"{spec.name} was fine-tuned on this site's {', '.join(taught)} cases"
    if contrast in taught:
        return found | {"supported": None, "taught": True, "note": cases}
    what = contrast or "a scan whose name states no contrast"
    note = f"{cases} only; on {what} it may have lost some of what its starting model knew (compare the shipped model)"
    return found | {"supported": None, "taught": False, "note": note}


def _bar(row: dict) -> float:
    """The Dice a measured plane and contrast must reach to be called supported."""
    return row.get("supported_from", SUPPORTED_DICE)
