"""A small rehearsal set that ships with the engine, so a site can fine-tune without SpineAI's data.

Crops around the cord of seven real scans the shipped cord model was trained on (never one of its
validation scans), with their manual cord masks. Sources and licences (MIT, CC0): README.md here.
A fine-tune mixes them with the site's cases so the model keeps what it knew on these contrasts;
the lesion and tumour tasks paint their targets into them, as their shipped training did.
``python -m spineai.learning.rehearsal DATA_DIR`` rebuilds the crops from SpineAI's shared data.
"""

from __future__ import annotations

import csv
from pathlib import Path

REHEARSAL_DIR = Path(__file__).resolve().parent
MANIFEST = REHEARSAL_DIR / "rehearsal.csv"


def rehearsal_cases():
    """The crops as training ``Case`` objects (split "train")."""
    from ...training.cases import Case

    with open(MANIFEST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Case(
            REHEARSAL_DIR / row["image"],
            REHEARSAL_DIR / row["mask"],
            row["subject"],
            row["dataset"],
            row["contrast"],
            row["plane"],
            "train",
        )
        for row in rows
    ]
