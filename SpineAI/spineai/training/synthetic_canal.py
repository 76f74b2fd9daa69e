"""Axial lumbar T2 phantoms at a disc level, drawn to a chosen Schizas grade, with exact labels.

No dural-sac masks or stenosis grades exist in SpineAI's data, so the sac network is trained on
these phantoms and the grading rules are tested on them. A phantom is a plane of the stenosis
grid (``stenosis.planes``: rows anterior -> posterior, columns right -> left, 0.5 mm): disc and
vertebral body, the canal with the dural sac (CSF bright, nerve roots dark dots, or, in grades C
and D, a homogeneous grey sac), posterior epidural fat, ligamenta flava, the posterior arch,
facets, muscles and subcutaneous fat, each with random size, position and T2 intensity, then
blurred (in-plane and across, as a resliced sagittal scan is), biased and noisy.

Labels are bit flags as the stenosis label map: 1 dural sac, 2 CSF (inside the sac), 4 posterior
epidural fat. The grade drawn is the grade the phantom was built to: the grading rules must give it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..stenosis.planes import PLANE_PIXELS, PLANE_SPACING_MM, POSTERIOR_SHIFT_MM

GRADES = ("A1", "A2", "A3", "A4", "B", "C", "D")
SAC, CSF, FAT = 1, 2, 4


@dataclass
class CanalPhantom:
    image: np.ndarray  # (rows, cols) float32, T2-like intensities, not normalised
    labels: np.ndarray  # (rows, cols) uint8 bit flags: 1 sac, 2 CSF, 4 posterior epidural fat
    grade: str


class _Canvas:
    """Shapes in mm on the plane grid: rows anterior -> posterior, columns right -> left."""

    def __init__(self, pixels: int = PLANE_PIXELS, spacing: float = PLANE_SPACING_MM):
        centres = (np.arange(pixels) + 0.5) * spacing
        self.r, self.c = np.meshgrid(centres, centres, indexing="ij")
        self.spacing = spacing

    def ellipse(self, centre, axes, angle_deg: float = 0.0) -> np.ndarray:
        dr, dc = self.r - centre[0], self.c - centre[1]
        angle = np.deg2rad(angle_deg)
        u = dr * np.cos(angle) + dc * np.sin(angle)
        v = -dr * np.sin(angle) + dc * np.cos(angle)
        return (u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1.0

    def disks(self, centres, radius: float) -> np.ndarray:
        mask = np.zeros(self.r.shape, bool)
        for r, c in centres:
            mask |= (self.r - r) ** 2 + (self.c - c) ** 2 <= radius**2
        return mask


def canal_phantom(grade: str, rng: np.random.Generator, disc_centre_mm=None) -> CanalPhantom:
    """One phantom of ``grade`` (A1-A4, B, C, D); ``disc_centre_mm`` (row, col) defaults to the
    plane's level point (the disc centre) moved a little at random."""
    if grade not in GRADES:
        raise ValueError(f"unknown Schizas grade {grade!r} (one of {GRADES})")
    canvas = _Canvas()
    field = PLANE_PIXELS * PLANE_SPACING_MM
    if disc_centre_mm is None:
        disc_centre_mm = (field / 2 - POSTERIOR_SHIFT_MM + rng.uniform(-8, 8), field / 2 + rng.uniform(-6, 6))
    anatomy = _anatomy(canvas, grade, rng, disc_centre_mm)
    image = _render(canvas, anatomy, rng)
    labels = (anatomy["sac"] * SAC + anatomy["csf"] * CSF + anatomy["fat"] * FAT).astype(np.uint8)
    return CanalPhantom(image.astype(np.float32), labels, grade)


def _anatomy(canvas: _Canvas, grade: str, rng, disc_centre) -> dict[str, np.ndarray]:
    rd, cd = disc_centre
    body_ap, body_rl = rng.uniform(14, 19), rng.uniform(18, 25)
    stenotic = grade in ("B", "C", "D")
    bulge = rng.uniform(1, 5) if stenotic else rng.uniform(0, 2.5)
    sac_ap = rng.uniform(3, 5.5) if stenotic else rng.uniform(5, 8.5)
    sac_rl = rng.uniform(5, 8) if stenotic else rng.uniform(7, 11)
    ventral_space = rng.uniform(0, 1.5)
    rs, cs = rd + body_ap + bulge + ventral_space + sac_ap, cd + rng.uniform(-1.5, 1.5)
    disc = canvas.ellipse((rd, cd), (body_ap, body_rl)) | canvas.ellipse(
        (rd + body_ap * 0.4, cd), (body_ap * 0.6 + bulge, body_rl * 0.8)
    )
    fat_depth = 0.0 if grade == "D" else (rng.uniform(2.5, 4.5) if stenotic else rng.uniform(2, 6))
    flavum_radius = rng.uniform(3, 6) if stenotic else rng.uniform(1.5, 3)
    flava = canvas.disks(
        [(rs + sac_ap * 0.8, cs - sac_rl * 0.95), (rs + sac_ap * 0.8, cs + sac_rl * 0.95)], flavum_radius
    )
    sac = canvas.ellipse((rs, cs), (sac_ap, sac_rl), rng.uniform(-8, 8)) & ~disc & ~flava
    sac = _largest(sac)
    canal = canvas.ellipse((rs + fat_depth / 2, cs), (sac_ap + fat_depth / 2 + 1.5, sac_rl + 2.5))
    if grade == "D":
        canal &= canvas.r < rs  # no fat behind the sac: the epidural space there is gone
    fat = (
        canvas.ellipse((rs + sac_ap + fat_depth / 2, cs), (fat_depth / 2 + 0.3, sac_rl * 0.6)) & ~sac & ~flava
        if fat_depth
        else canvas.ellipse((0, 0), (0.01, 0.01))
    )
    arch_centre = (rs + fat_depth / 2, cs)
    arch_outer = canvas.ellipse(arch_centre, (sac_ap + fat_depth + 7, sac_rl + 9))
    arch = arch_outer & ~canal & (canvas.r > rs - sac_ap * 0.3)
    spinous = (
        (np.abs(canvas.c - cs) < rng.uniform(2.5, 4))
        & (canvas.r > rs + sac_ap + fat_depth + 2)
        & (canvas.r < rs + sac_ap + 45)
    )
    facets = canvas.disks([(rs - 1, cs - sac_rl - 11), (rs - 1, cs + sac_rl + 11)], rng.uniform(4, 6))
    muscles = canvas.ellipse((rs + 28, cs - 22), (16, 14)) | canvas.ellipse((rs + 28, cs + 22), (16, 14))
    psoas = canvas.ellipse((rd + 2, cd - body_rl - 12), (12, 9)) | canvas.ellipse((rd + 2, cd + body_rl + 12), (12, 9))
    csf = sac & ~_roots(canvas, grade, sac, (rs, cs), rng)
    return {
        "disc": disc,
        "nucleus": canvas.ellipse((rd, cd), (body_ap * 0.45, body_rl * 0.55)),
        "sac": sac,
        "csf": csf,
        "fat": fat,
        "flava": flava & ~sac,
        "arch": arch,
        "spinous": spinous,
        "facets": facets,
        "muscles": muscles,
        "psoas": psoas,
        "canal": canal,
    }


def _largest(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask
    return components == 1 + int(np.argmax(np.bincount(components.ravel())[1:]))


def _roots(canvas: _Canvas, grade: str, sac: np.ndarray, centre, rng) -> np.ndarray:
    """Nerve-root pixels inside the sac, laid out as ``grade`` describes (Schizas 2010)."""
    if grade in ("C", "D"):
        return sac.copy()  # no recognisable roots and no CSF: a homogeneous grey sac
    rows = canvas.r[sac]
    depth = (canvas.r - rows.min()) / max(rows.max() - rows.min(), 1e-6)  # 0 ventral .. 1 dorsal
    edge = sac & ~ndimage.binary_erosion(sac, iterations=max(1, round(1.5 / canvas.spacing)))
    regions = {
        "A1": (sac & (depth > 0.62), (0.15, 0.35)),
        "A2": (edge & (depth > 0.45), (0.15, 0.35)),  # along the dorsal dura: a horseshoe
        "A3": (sac & (depth > 0.3), (0.55, 0.7)),
        "A4": (sac & (depth > 0.2) & (depth < 0.85), (0.55, 0.7)),
        "B": (sac, (0.55, 0.75)),
    }
    region, (low, high) = regions[grade]
    roots = np.zeros(sac.shape, bool)
    if grade == "B":  # the whole sac: roots reach its ventral part too (anterior CSF obliterated)
        ventral = sac & (depth < 0.2)
        roots = _scatter(canvas, ventral, roots, 0.65 * ventral.sum(), sac, grade, rng)
    return _scatter(canvas, region, roots, rng.uniform(low, high) * sac.sum(), sac, grade, rng)


def _scatter(canvas: _Canvas, region, roots, target: float, sac, grade: str, rng) -> np.ndarray:
    """Round roots of 1-2 mm dropped in ``region`` until they cover ``target`` pixels of the sac."""
    candidates = np.argwhere(region)
    for _ in range(1000):
        if roots.sum() >= target or not len(candidates):
            break
        r, c = candidates[rng.integers(len(candidates))] * canvas.spacing + canvas.spacing / 2
        roots |= canvas.disks([(r, c)], rng.uniform(0.5, 1.0)) & sac
        if grade == "B":  # roots fill the sac but stay apart: keep CSF between them
            roots &= ~_gaps(canvas, roots)
    return roots


def _gaps(canvas: _Canvas, roots: np.ndarray) -> np.ndarray:
    """A thin CSF seam where roots touch, so that B roots stay individual."""
    components, count = ndimage.label(roots)
    if count < 2:
        return np.zeros(roots.shape, bool)
    grown = ndimage.grey_dilation(components, size=3)
    return roots & (grown != components) & (components > 0)


def _render(canvas: _Canvas, anatomy: dict[str, np.ndarray], rng) -> np.ndarray:
    """T2-like intensities painted back to front, then blur, bias field and Rician-like noise."""
    u = rng.uniform
    image = np.full(canvas.r.shape, u(0.05, 0.15))
    image[canvas.r > canvas.r.max() - u(4, 15)] = u(0.6, 0.9)  # subcutaneous fat at the back
    layers = [
        ("psoas", u(0.15, 0.3)),
        ("muscles", u(0.15, 0.35)),
        ("canal", u(0.3, 0.7)),
        ("disc", u(0.15, 0.35)),
        ("nucleus", u(0.2, 0.75)),
        ("arch", u(0.25, 0.5)),
        ("spinous", u(0.25, 0.5)),
        ("facets", u(0.2, 0.45)),
        ("fat", u(0.65, 0.95)),
        ("flava", u(0.08, 0.25)),
        ("sac", u(0.3, 0.5)),
        ("csf", u(0.85, 1.0)),
    ]
    for name, value in layers:
        image[anatomy[name]] = value * u(0.9, 1.1)
    arch_rim = anatomy["arch"] & ~ndimage.binary_erosion(anatomy["arch"], iterations=2)
    image[arch_rim] = u(0.03, 0.12)  # cortical bone
    image += ndimage.gaussian_filter(rng.normal(0, u(0.02, 0.06), image.shape), 1.5)  # tissue texture
    sigma_px = (u(0.2, 0.8) / canvas.spacing, u(0.2, 2.2) / canvas.spacing)  # across: resliced sagittal
    image = ndimage.gaussian_filter(image, sigma_px)
    bias = ndimage.zoom(rng.normal(0, 0.12, (4, 4)), np.array(image.shape) / 4, order=3)
    image = image * np.exp(bias)
    if rng.random() < 0.3:  # a plane resliced from a sagittal stack ends where the stack ends (R-L)
        half_width = int(u(25, 45) / canvas.spacing)
        centre = image.shape[1] // 2 + rng.integers(-10, 11)
        image[:, : max(centre - half_width, 0)] = 0
        image[:, centre + half_width :] = 0
    noise = u(0.01, 0.05)
    image = np.hypot(image + rng.normal(0, noise, image.shape), rng.normal(0, noise, image.shape))
    return image * u(200, 2000)  # scanner scale: the network sees percentile-normalised planes
