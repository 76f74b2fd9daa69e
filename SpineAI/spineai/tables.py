"""Reading back the CSV tables the engine writes (``io.OutputSet.write_csv`` writes them)."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_float(value) -> float:
    """A CSV cell as a number; NaN where it holds none."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
