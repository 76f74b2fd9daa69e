"""The standard codes and colour of every segment the engine makes: one table, ``terminology.csv``,
read by the Slicer module (segment terminology) and by DICOM SEG/SR (segment descriptions).

One line per segment: the task that produces it, the segment name the engine reports, the label
under which 3D Slicer's terminology lists it, its codes (category, type, optional type modifier,
optional anatomic region; each as coding scheme, code value, code meaning: SCT = SNOMED CT), its
display colour (Slicer's recommended one where Slicer lists the type) and the Slicer terminology
context that lists the label (empty: Slicer's General Anatomy list). The label is empty when
Slicer's lists lack the type (SNOMED CT 52988006 "Lesion"). Why each code was chosen, and where no
standard code exists: ``docs/terminology.md``. A task's segments are added by adding lines (or,
for a task defined outside the package, with ``add_segment_codes``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TERMINOLOGY_CSV = Path(__file__).resolve().parent / "terminology.csv"


@dataclass(frozen=True)
class Code:
    scheme: str  # "SCT" (SNOMED CT), "DCM", ...
    value: str
    meaning: str

    def __bool__(self) -> bool:
        return bool(self.value)


NO_CODE = Code("", "", "")


@dataclass(frozen=True)
class SegmentCode:
    task: str
    name: str
    slicer_label: str  # the type's label in Slicer's terminology ``slicer_context`` ("" where not listed)
    category: Code
    type: Code
    type_modifier: Code
    region: Code
    color: str  # "#rrggbb"
    slicer_context: str = ""  # "" = Slicer's General Anatomy list

    @property
    def rgb(self) -> tuple[float, float, float]:
        """The colour as 0..1 floats."""
        hex_color = self.color.lstrip("#")
        return tuple(int(hex_color[i : i + 2], 16) / 255.0 for i in (0, 2, 4))

    @property
    def cielab(self) -> tuple[float, float, float]:
        """The colour as CIE L*a*b* (D65), as DICOM's RecommendedDisplayCIELabValue wants it."""
        return srgb_to_cielab(self.rgb)


_EXTRA: dict[tuple[str, str], SegmentCode] = {}


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, str], SegmentCode]:
    with open(TERMINOLOGY_CSV, newline="", encoding="utf-8") as handle:
        codes = [_from_row(row) for row in csv.DictReader(handle)]
    return {(code.task, code.name): code for code in codes}


def segment_codes() -> list[SegmentCode]:
    """Every line of the table, in file order, then those added by ``add_segment_codes``."""
    return list({**_table(), **_EXTRA}.values())


def codes_for_task(task: str) -> dict[str, SegmentCode]:
    """Segment name -> codes of the segments ``task`` produces."""
    return {code.name: code for code in segment_codes() if code.task == task}


def tasks_in_table() -> list[str]:
    """The tasks of the table, in the order of their first line."""
    return list(dict.fromkeys(code.task for code in segment_codes()))


def add_segment_codes(*codes: SegmentCode) -> None:
    """Codes of segments of a task registered from outside the package (a later line replaces one of the same name)."""
    _EXTRA.update({(code.task, code.name): code for code in codes})


def remove_segment_codes(task: str) -> None:
    """Forget the codes ``add_segment_codes`` gave ``task`` (a plugin task that is unregistered)."""
    for key in [key for key in _EXTRA if key[0] == task]:
        del _EXTRA[key]


def _from_row(row: dict) -> SegmentCode:
    def code(prefix: str) -> Code:
        return Code(row[f"{prefix}Scheme"].strip(), row[f"{prefix}Code"].strip(), row[f"{prefix}Meaning"].strip())

    return SegmentCode(
        row["Task"].strip(),
        row["Segment"].strip(),
        row["SlicerLabel"].strip(),
        code("Category"),
        code("Type"),
        code("TypeModifier"),
        code("Region"),
        row["Color"].strip(),
        (row.get("TerminologyContext") or "").strip(),
    )


def srgb_to_cielab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB (0..1) -> CIE L*a*b*, D65 white point (IEC 61966-2-1 and CIE 15)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    matrix = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
    xyz = [sum(m * c for m, c in zip(row, linear, strict=True)) for row in matrix]
    white = (0.95047, 1.0, 1.08883)

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(v / w) for v, w in zip(xyz, white, strict=True))
    return (round(116 * fy - 16, 1), round(500 * (fx - fy), 1), round(200 * (fy - fz), 1))
