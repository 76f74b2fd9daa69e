"""Stenosis grades from the measured masks of one level: deterministic rules, thresholds in one place.

Definitions (``docs/measurements.md`` section 5):

* Schizas et al., Spine 2010;35(21):1919-24 (axial T2, by the CSF / nerve-root picture):
  A1 roots dorsal, < 1/2 of the sac; A2 dorsal roots along the dura, horseshoe; A3 roots dorsal,
  > 1/2; A4 roots central, most of the sac; B roots fill the whole sac, still apart (CSF between);
  C no roots to recognise, no CSF, posterior epidural fat present; D as C without that fat.
* Lee et al., AJR 2011 (axial T2): 0 anterior CSF not obliterated; 1 mild obliteration, roots all
  separable; 2 moderate, some aggregation; 3 severe, the roots one bundle.
* Dural sac cross-sectional area (DSCA): < 100 mm2 at two or more of L2-L3, L3-L4, L4-L5 goes with
  neurogenic claudication (Hamanishi et al., J Spinal Disord 1994); < 75 mm2 "absolute" stenosis is
  commonly attributed to Schonstrom et al. 1985 [page not verified]; AP diameter < 10 mm and
  DSCA < 70 mm2 are the most used thresholds (Steurer et al., BMC Musculoskelet Disord 2011;12:175).

The papers grade by eye; the fractions below that turn "no CSF", "dorsal" or "most of the sac" into
numbers are SpineAI's, chosen on phantoms built to each grade (``training/synthetic_canal.py``), and
every row of the table says which rule gave its grade. A2 (the horseshoe) is not told apart from A1,
and Lee 1 from 2 (root aggregation), by these masks: those grades are given as "A1" and "1-2" with
the reason in the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

CSF_ABSENT_FRACTION = 0.05  # CSF below this share of the sac: "no CSF" (Schizas C/D, Lee 3)
VENTRAL_ZONE = 0.2  # the ventral fifth of the sac (by AP extent) is where anterior CSF is judged
VENTRAL_CSF_CLEAR = 0.5  # at least half CSF there: anterior CSF not obliterated (Schizas A, Lee 0)
ROOTS_MAJORITY = 0.5  # roots over half the sac (Schizas A3, A4)
ROOTS_DORSAL_DEPTH = 0.55  # mean root depth (0 ventral .. 1 dorsal) from which roots lie dorsally
POSTERIOR_FAT_MIN_MM2 = 2.0  # posterior epidural fat present (Schizas C vs D)
DSCA_ABSOLUTE_MM2 = 75.0  # Schonstrom 1985 [UNVERIFIED]
DSCA_RELATIVE_MM2 = 100.0  # Hamanishi 1994
AP_NARROW_MM = 10.0  # Steurer 2011


@dataclass(frozen=True)
class Grade:
    value: str
    rule: str


def schizas_grade(m: dict) -> Grade:
    """Schizas grade of one level's measurements (``measure.stenosis.section_measurements``)."""
    csf, ventral, roots, depth = m["csf_fraction"], m["ventral_csf_fraction"], m["rootlet_fraction"], m["rootlet_depth"]
    if csf < CSF_ABSENT_FRACTION:
        fat = m["posterior_fat_mm2"] >= POSTERIOR_FAT_MIN_MM2
        rule = f"CSF {csf:.0%} of the sac (< {CSF_ABSENT_FRACTION:.0%}): no CSF, no roots to tell apart; "
        fat_area = m["posterior_fat_mm2"]
        rule += f"posterior epidural fat {fat_area:.1f} mm2 ({'>=' if fat else '<'} {POSTERIOR_FAT_MIN_MM2} mm2)"
        return Grade("C" if fat else "D", rule)
    if ventral < VENTRAL_CSF_CLEAR:
        return Grade(
            "B",
            f"CSF {csf:.0%} of the sac, but {ventral:.0%} of its ventral fifth (< {VENTRAL_CSF_CLEAR:.0%}): "
            "roots fill the whole sac with CSF between them",
        )
    rule = f"ventral fifth {ventral:.0%} CSF (>= {VENTRAL_CSF_CLEAR:.0%}); "
    rule += f"roots {roots:.0%} of the sac, mean depth {depth:.2f}"
    dorsal = depth >= ROOTS_DORSAL_DEPTH
    if roots >= ROOTS_MAJORITY:
        return Grade(
            "A3" if dorsal else "A4", rule + (": dorsal, over half" if dorsal else ": central, most of the sac")
        )
    if dorsal:
        return Grade("A1", rule + ": dorsal, under half (A2, a horseshoe along the dura, is not told apart)")
    return Grade("A", rule + ": under half and not dorsal, no subtype")


def lee_grade(m: dict) -> Grade:
    csf, ventral = m["csf_fraction"], m["ventral_csf_fraction"]
    if csf < CSF_ABSENT_FRACTION:
        return Grade("3", f"CSF {csf:.0%} of the sac (< {CSF_ABSENT_FRACTION:.0%}): the roots are one bundle")
    if ventral >= VENTRAL_CSF_CLEAR:
        return Grade("0", f"ventral fifth {ventral:.0%} CSF (>= {VENTRAL_CSF_CLEAR:.0%}): anterior CSF not obliterated")
    return Grade(
        "1-2", "anterior CSF obliterated; grades 1 and 2 differ by root aggregation, which the masks do not show"
    )


def dsca_category(area_mm2: float) -> Grade:
    if area_mm2 < DSCA_ABSOLUTE_MM2:
        return Grade("absolute", f"DSCA {area_mm2:.0f} mm2 < {DSCA_ABSOLUTE_MM2:.0f} mm2 (Schonstrom 1985)")
    if area_mm2 < DSCA_RELATIVE_MM2:
        return Grade("relative", f"DSCA {area_mm2:.0f} mm2 < {DSCA_RELATIVE_MM2:.0f} mm2 (Hamanishi 1994)")
    return Grade("none", f"DSCA {area_mm2:.0f} mm2 >= {DSCA_RELATIVE_MM2:.0f} mm2")
