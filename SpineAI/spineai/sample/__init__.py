"""The bundled real sample scan (see README.md here for source and licence)."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent
T2 = SAMPLE_DIR / "t2.nii.gz"
T2_CORD_MANUAL = SAMPLE_DIR / "t2_seg-manual.nii.gz"
T2_LEVELS = SAMPLE_DIR / "t2_seg-manual_labeled.nii.gz"
T2_DISCS = SAMPLE_DIR / "labels.nii.gz"
