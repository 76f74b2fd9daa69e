"""Every code the DICOM SR uses, in one place: standard codes where the standard has one, private
ones (coding scheme ``99SPINEAI``, declared in each SR) where it has none.

Standard codes are taken from pydicom's code dictionary, which is generated from DICOM PS3.16, so a
wrong keyword fails at import instead of writing a wrong code. The choice of every code, and why a
private one where no standard code exists, is documented in ``docs/dicom-pacs.md``.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ..measure.levels import level_name

# --- the private coding scheme ----------------------------------------------------------------

PRIVATE_SCHEME = "99SPINEAI"  # PS3.16 8.2: a private coding scheme designator starts with "99"
PRIVATE_SCHEME_NAME = "SpineAI private codes"
PRIVATE_SCHEME_VERSION = "1"
PRIVATE_SCHEME_ORGANIZATION = "SpineAI project"


def private(value: str, meaning: str) -> Code:
    """A code of SpineAI's private scheme (CodeValue is SH: at most 16 characters)."""
    if len(value) > 16:
        raise ValueError(f"private code value {value!r} is longer than 16 characters")
    return Code(value, PRIVATE_SCHEME, meaning)


# --- units (UCUM) -----------------------------------------------------------------------------

MILLIMETRE = codes.UCUM.Millimeter  # mm
SQUARE_MILLIMETRE = codes.UCUM.SquareMillimeter  # mm2
CUBIC_MILLIMETRE = codes.UCUM.CubicMillimeter  # mm3
PERCENT = codes.UCUM.Percent  # %
RATIO = codes.UCUM.Ratio  # {ratio}: a dimensionless ratio (0..1 unless said otherwise)

# --- measurement concepts ---------------------------------------------------------------------

AREA = codes.SCT.Area  # 42798000
VOLUME = codes.SCT.Volume  # 118565006
LENGTH = codes.SCT.Length  # 410668003
WIDTH = codes.SCT.Width  # 103355008
DIAMETER = codes.SCT.Diameter  # 81827009
MEAN = codes.SCT.Mean  # 373098007 (derivation)
MAXIMUM = codes.SCT.Maximum  # 56851009 (derivation)

# Lesion metrics of SCT's sct_analyze_lesion and the tissue bridges (docs/lesion.md): no standard codes.
EQUIVALENT_DIAMETER_MAX = private("EQDIAM-MAX", "Maximum equivalent diameter")
DAMAGE_RATIO_MAX = private("DAMAGE-RATIO-MAX", "Maximum axial damage ratio")
MIDSAGITTAL_LENGTH = private("MIDSAG-LENGTH", "Lesion length in the interpolated midsagittal slice")
MIDSAGITTAL_WIDTH = private("MIDSAG-WIDTH", "Lesion width in the interpolated midsagittal slice")
DORSAL_BRIDGE = private("BRIDGE-DORSAL", "Dorsal tissue bridge width")
VENTRAL_BRIDGE = private("BRIDGE-VENTRAL", "Ventral tissue bridge width")
TOTAL_BRIDGE = private("BRIDGE-TOTAL", "Total tissue bridge width")
DORSAL_BRIDGE_RATIO = private("BRIDGE-DORS-RAT", "Dorsal tissue bridge ratio")
VENTRAL_BRIDGE_RATIO = private("BRIDGE-VENT-RAT", "Ventral tissue bridge ratio")
EPICENTRE_AP_RATIO = private("EPI-CORD-AP-RAT", "Cord AP compression ratio at the lesion epicentre")
BASIC_GRADE = private("BASIC-PROPOSAL", "BASIC grade (proposal)")
BASIC_VALUES = {
    "0": private("BASIC-0", "BASIC 0: no lesion"),
    "1-2": private("BASIC-1-2", "BASIC 1 or 2: lesion not across the whole axial section"),
    "3-4": private("BASIC-3-4", "BASIC 3 or 4: lesion across the whole axial section"),
    "n/a": private("BASIC-NA", "BASIC not assessable: no cord"),
}

# Tumour metrics (docs/tumor.md).
AP_DIAMETER_MAX = private("AP-DIAM-MAX", "Maximum anteroposterior diameter")
RL_DIAMETER_MAX = private("RL-DIAM-MAX", "Maximum right-left diameter")
FRACTION_IN_CORD = private("FRACTION-IN-CORD", "Fraction of the tumour volume inside the spinal cord")
ENHANCEMENT_RATIO = private("ENHANCE-RATIO", "Enhancement ratio to tumour-free cord (proposal)")
COMPARTMENT = private("COMPARTMENT", "Tumour compartment")
COMPARTMENT_VALUES = {
    "intramedullary": private("INTRAMEDULLARY", "Intramedullary"),
    "outside the cord": private("OUTSIDE-CORD", "Outside the spinal cord"),
    "mixed": private("MIXED-COMPART", "Partly inside and partly outside the spinal cord"),
    "unknown (no cord)": private("NO-CORD", "Compartment unknown: no spinal cord found"),
    "no tumour": private("NO-TUMOUR", "No tumour"),
}

# Stenosis measurements and grades (docs/stenosis.md).
SAC_AP_DIAMETER = private("DSAC-AP-DIAM", "Anteroposterior diameter of the dural sac")
SAC_RL_WIDTH = private("DSAC-RL-WIDTH", "Right-left width of the dural sac")
SCHIZAS_GRADE = private("SCHIZAS-GRADE", "Schizas grade of central lumbar stenosis")
SCHIZAS_VALUES = {
    grade: private(f"SCHIZAS-{grade}", f"Schizas grade {grade}") for grade in ("A", "A1", "A3", "A4", "B", "C", "D")
}
LEE_GRADE = private("LEE-GRADE", "Lee grade of central lumbar stenosis")
LEE_VALUES = {grade: private(f"LEE-{grade}", f"Lee grade {grade}") for grade in ("0", "1-2", "3")}
DSCA_CATEGORY = private("DSCA-CATEGORY", "Dural sac cross-sectional area category")
DSCA_VALUES = {
    "none": private("DSCA-NONE", "Dural sac area not reduced"),
    "relative": private("DSCA-RELATIVE", "Relative stenosis by dural sac area"),
    "absolute": private("DSCA-ABSOLUTE", "Absolute stenosis by dural sac area"),
}
RULE = private("RULE", "Rule that gave the value")
NOT_ASSESSABLE = private("NOT-ASSESSABLE", "Not assessable")

# --- anatomy ----------------------------------------------------------------------------------

SPINAL_CORD = codes.SCT.SpinalCord  # 2748008
S1_VERTEBRA = private("S1-VERTEBRA", "S1 vertebra")  # DICOM's vertebra lists (CID 7602/7603) stop at L5


def vertebra(level_code: int) -> Code:
    """The vertebra of SCT level code 1 (C1) .. 25 (S1): SNOMED CT "C1 vertebra" ... "L5 vertebra"."""
    name = level_name(int(level_code))
    return S1_VERTEBRA if name == "S1" else getattr(codes.SCT, f"{name}Vertebra")


def disc_level(name: str) -> Code:
    """SNOMED CT "Level of L4/L5 intervertebral disc" for the disc level named "L4-L5" (CID 1000/1001)."""
    upper, lower = name.split("-")
    return getattr(codes.SCT, f"LevelOf{upper}{lower}IntervertebralDisc")


def private_codes() -> list[Code]:
    """Every private code defined here (for the documentation's table and the tests)."""
    found = []
    for value in globals().values():
        if isinstance(value, Code) and value.scheme_designator == PRIVATE_SCHEME:
            found.append(value)
        elif isinstance(value, dict):
            found += [v for v in value.values() if isinstance(v, Code) and v.scheme_designator == PRIVATE_SCHEME]
    return list(dict.fromkeys(found))
