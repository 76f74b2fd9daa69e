"""Why sagittal lesions are lost end to end: how much of each painted test lesion lies in the cord found.

For every painted copy of the held-out sagittal T2w scan (the lesion benchmark's test set), prints
the share of the lesion inside the cord mask the cord model finds and the cord probability at the
lesion's median voxel; writes the picture of the copy given (``docs/images/lesion_sagittal_cord_shift.png``).
A lesion component mostly outside the cord found is dropped as CSF (``postprocess.lesion_label_map``).

    python benchmarks/lesion_cord_shift.py [--data ../shared/data] [--cord MODEL_DIR] [--picture-copy 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SpineAI"))

from spineai.inference import network_for  # noqa: E402
from spineai.orientation import canonical_array  # noqa: E402
from spineai.postprocess import clean_cord_mask  # noqa: E402
from spineai.training.cases import BUILTIN_MANIFESTS, read_manifest  # noqa: E402
from spineai.training.synthetic_data import SYNTHETIC_TASKS, TEST_SEED, synthetic_test_scans  # noqa: E402

PICTURE = ROOT / "docs" / "images" / "lesion_sagittal_cord_shift.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--cord", type=Path, help="a cord model folder (default: the shipped one)")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--picture-copy", type=int, default=2)
    args = parser.parse_args()
    cases = read_manifest(BUILTIN_MANIFESTS["lesion"], args.data)
    sagittal = [case for case in cases if case.split == "val" and case.plane == "sagittal"]
    cord_network = network_for("cord", "cpu", args.cord)
    for copy in range(args.copies):
        for scan in synthetic_test_scans(sagittal, SYNTHETIC_TASKS["lesion"], seed=TEST_SEED + copy):
            if not scan.target.any():
                continue
            probability = canonical_array(cord_network.probability(scan.image))
            found = clean_cord_mask(probability, cord_network.spec.threshold) > 0
            lesion = scan.target > 0
            print(
                f"{scan.case.subject} copy {copy}: {lesion.sum()} lesion voxels, "
                f"{found[lesion].mean():.0%} in the cord found, "
                f"cord probability {np.median(probability[lesion]):.2f} at the median lesion voxel"
            )
            if copy == args.picture_copy:
                picture(canonical_array(scan.image), scan.cord > 0, lesion, found, probability)


def picture(image, cord, lesion, found, probability) -> None:
    """Sagittal and axial views through the lesion: the manual cord, the lesion, the cord found."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = int(np.argmax(lesion.sum(axis=(0, 1))))
    z, y = (int(np.median(axis)) for axis in np.nonzero(lesion)[:2])
    sagittal = np.s_[max(z - 20, 0) : z + 20, max(y - 35, 0) : y + 35, x]
    axial = np.s_[z, max(y - 25, 0) : y + 25, :]
    _, axes = plt.subplots(1, 3, figsize=(12, 4.5))
    views = (
        (sagittal, "sagittal: cord (green), lesion (yellow),\ncord found (red)"),
        (axial, "axial, through the lesion"),
    )
    for ax, (cut, title) in zip(axes[[0, 2]], views, strict=True):
        ax.imshow(image[cut], cmap="gray", origin="lower")
        for mask, colour in ((cord, "lime"), (lesion, "yellow"), (found, "red")):
            ax.contour(mask[cut], [0.5], colors=colour)
        ax.set_title(title, fontsize=10)
    axes[1].imshow(probability[sagittal], origin="lower", vmin=0, vmax=1)
    axes[1].set_title("cord network probability", fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    plt.tight_layout()
    plt.savefig(PICTURE, dpi=60)
    print(f"picture: {PICTURE}")


if __name__ == "__main__":
    main()
