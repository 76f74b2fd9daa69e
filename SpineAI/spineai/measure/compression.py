"""Normalised compression ratio (SCT ``sct_compute_compression``, MSCC in the Fehlings/Miyanji spirit).

    ratio [%] = (1 - m_i / ((m_a + m_b) / 2)) * 100

m_i: the metric (default MEAN(diameter_AP)) at the compressed slice; m_a / m_b: its mean over the
slices whose distance along the centreline above / below the compressed slice lies in
[distance_mm, distance_mm + extent_mm] (10 to 30 mm by default). When only one side has measured
slices, that side serves for both (as SCT does). Distances along the centreline come from the
per-slice rows themselves: a slice's SUM(length) is the length of centreline it holds, so slice k
sits at s_k = sum of the lengths below it + half its own (a rejected slice counts the median length).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SpineAIError
from .cord import LENGTH, LEVEL, SLICE


def centreline_positions(rows: list[dict]) -> np.ndarray:
    """Position [mm] of each row's slice along the centreline: s_k = sum_{j<k} length_j + length_k / 2."""
    lengths = np.array([row[LENGTH] for row in rows], dtype=float)
    lengths[~np.isfinite(lengths)] = np.nanmedian(lengths) if np.any(np.isfinite(lengths)) else 1.0
    return np.cumsum(lengths) - lengths / 2


def reference_slices(positions: np.ndarray, index: int, distance_mm: float, extent_mm: float, sign: int) -> np.ndarray:
    """Indices of the rows at sign * (s_j - s_index) in [distance_mm, distance_mm + extent_mm] (sign +1 = above)."""
    offset = sign * (positions - positions[index])
    return np.nonzero((offset >= distance_mm) & (offset <= distance_mm + extent_mm))[0]


def mean_of(values: np.ndarray, indices: np.ndarray) -> float:
    """Mean of the finite values at ``indices`` (NaN when there is none)."""
    chosen = values[indices]
    chosen = chosen[np.isfinite(chosen)]
    return float(chosen.mean()) if chosen.size else math.nan


def compression_ratio_percent(m_i: float, m_above: float, m_below: float) -> float:
    """ratio [%] = (1 - m_i / ((m_a + m_b) / 2)) * 100; one missing side is replaced by the other."""
    m_above = m_below if math.isnan(m_above) else m_above
    m_below = m_above if math.isnan(m_below) else m_below
    return (1 - m_i / ((m_above + m_below) / 2)) * 100


def worst_slice(values: np.ndarray, sides: list[tuple[float, float]]) -> int:
    """Row index of the smallest metric among slices with healthy references on both sides (else on one)."""
    for needed in (2, 1):
        candidates = [
            i for i, (a, b) in enumerate(sides) if np.isfinite(values[i]) and np.isfinite([a, b]).sum() >= needed
        ]
        if candidates:
            return min(candidates, key=lambda i: values[i])
    raise SpineAIError("no slice has reference slices above or below it: the cord mask is too short for this distance")


def normalised_compression_ratio(
    rows: list[dict], slice_index: int | None = None, metric: str = "diameter_AP", distance_mm=10, extent_mm=20
) -> dict:
    """Normalised compression ratio at slice ``slice_index`` ("Slice (I->S)"), or at the worst slice.

    The worst slice is the one with the smallest metric among those whose reference windows hold
    measured slices on both sides (on one side if no slice has both). Returns the slice, its
    VertLevel (when known), the metric's value there (m_i), above (m_a) and below (m_b), the
    reference slices ("first:last") and ``<metric>_ratio`` in %.
    """
    values = np.array([row[f"MEAN({metric})"] for row in rows], dtype=float)
    positions = centreline_positions(rows)
    windows = [
        tuple(reference_slices(positions, i, distance_mm, extent_mm, sign) for sign in (1, -1))
        for i in range(len(rows))
    ]
    sides = [(mean_of(values, above), mean_of(values, below)) for above, below in windows]
    if slice_index is None:
        index = worst_slice(values, sides)
    else:
        matches = [i for i, row in enumerate(rows) if row[SLICE] == slice_index]
        if not matches or not np.isfinite(values[matches[0]]):
            raise SpineAIError(f"slice {slice_index} has no measured {metric}")
        index = matches[0]
    (m_above, m_below), (above, below) = sides[index], windows[index]
    if math.isnan(m_above) and math.isnan(m_below):
        raise SpineAIError(
            f"slice {rows[index][SLICE]} has no measured slices {distance_mm}-{distance_mm + extent_mm} mm away"
        )
    result = {SLICE: rows[index][SLICE]}
    if LEVEL in rows[index]:
        result[LEVEL] = rows[index][LEVEL]
    return result | {
        "metric": metric,
        "m_compression": float(values[index]),
        "m_above": m_above,
        "m_below": m_below,
        "slices_above": _span(rows, above),
        "slices_below": _span(rows, below),
        f"{metric}_ratio": compression_ratio_percent(float(values[index]), m_above, m_below),
    }


def _span(rows: list[dict], indices: np.ndarray) -> str:
    return f"{rows[indices[0]][SLICE]}:{rows[indices[-1]][SLICE]}" if len(indices) else ""
