"""The QC report: PNG writer, overlay orientation, and the page as a browser renders and drives it.

The browser test opens OUT/qc/index.html?selftest=keys in headless Chromium: the page walks every
case with simulated key presses (p, f, a, arrows, t, e), checks that each case's pictures loaded,
exports the marks through the CSV code path, and writes what it saw into the DOM, which we read
back with --dump-dom.
"""

import csv
import html
import io
import json
import re
import shutil
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import main
from spineai.report.png import png_bytes
from spineai.report.qc import render_case_views

SCANS = {"t2": "sct-testing/t2/t2.nii.gz", "mt0": "sct-testing/mt/mt0.nii.gz"}
LAS = (1, 0, 0, 0, -1, 0, 0, 0, 1)  # the canonical orientation: array y runs posterior -> anterior
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory, data_dir):
    """Two real scans and a truncated one through `spineai batch` (one worker)."""
    root = tmp_path_factory.mktemp("qc")
    (root / "scans").mkdir()
    for case_id, relative in SCANS.items():
        (root / "scans" / f"{case_id}.nii.gz").symlink_to(data_dir / relative)
    (root / "scans" / "broken.nii.gz").write_bytes((data_dir / SCANS["t2"]).read_bytes()[:3000])
    with redirect_stdout(io.StringIO()):
        code = main(["batch", str(root / "scans"), "--out", str(root / "out"), "--workers", "1", "--device", "cpu"])
    assert code == 1
    return root / "out"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("chromium is not installed: run the tests through .ci/run, which installs it")


def browse(page: Path, profile: Path, *options: str, query: str = "") -> str:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *options]
    result = subprocess.run(
        [*command, page.as_uri() + query], capture_output=True, text=True, encoding="utf-8", timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dom_text(dom: str, element_id: str) -> str:
    match = re.search(rf'<pre id="{element_id}"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    assert match, f"#{element_id} not in the page"
    return html.unescape(match.group(1))


# --- pictures ---------------------------------------------------------------------------------


def test_png_writer_output_reads_back_identical(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(png_bytes(rgb))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "x.png"))), rgb)


def fake_finished_case(folder: Path, image: sitk.Image, mask: sitk.Image) -> Path:
    """A case folder as segment_file leaves it (image elsewhere, mask, table, sidecar listing outputs)."""
    folder.mkdir(parents=True)
    sitk.WriteImage(image, str(folder.parent / "scan.nii.gz"))
    sitk.WriteImage(mask, str(folder / "scan_cord_seg.nii.gz"))
    (folder / "scan_cord_morphometry.csv").write_text("Slice (I->S)\n", encoding="utf-8")
    sidecar = {
        "input": str(folder.parent / "scan.nii.gz"),
        "created": "now",
        "model_sha256": "x",
        "outputs": {"mask": "scan_cord_seg.nii.gz", "per_slice": "scan_cord_morphometry.csv"},
    }
    (folder / "scan_cord_seg.json").write_text(json.dumps(sidecar), encoding="utf-8")
    return folder / "scan_cord_seg.json"


def bright_centre(path: Path) -> tuple[float, float]:
    """(row, column) of the brightest pixels of a PNG, as fractions of its height and width."""
    grey = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[..., 0]
    rows, cols = np.nonzero(grey >= grey.max() - 1)
    return rows.mean() / grey.shape[0], cols.mean() / grey.shape[1]


def test_views_are_drawn_the_same_way_round_whatever_the_acquisition_orientation(tmp_path):
    """A bright marker anterior and on the patient's right of a vertical cord lands top-left of the
    axial views (anterior up, patient's right on the viewer's left) for an image stored in PSR; the
    cord's mask is drawn in the middle; the sagittal view keeps the true proportions in mm."""
    z, y, x = np.mgrid[0:40, 0:40, 0:40]  # canonical a[z, y, x]: I->S, P->A, R->L
    cord = (y - 20) ** 2 + (x - 20) ** 2 <= 16
    volume = np.where(cord, 100.0, 20.0) + (z % 3)  # a little texture: no constant image
    volume[(y >= 30) & (x <= 12)] = 400.0  # anterior and on the right (x runs R->L), on every slice
    canonical = sitk.GetImageFromArray(volume.astype(np.float32))
    canonical.SetSpacing((0.8, 0.8, 1.5))
    canonical.SetDirection(LAS)
    mask = sitk.GetImageFromArray(cord.astype(np.uint8))
    mask.CopyInformation(canonical)
    stored, stored_mask = sitk.DICOMOrient(canonical, "PSR"), sitk.DICOMOrient(mask, "PSR")
    views = render_case_views(fake_finished_case(tmp_path / "case", stored, stored_mask), tmp_path, "case")
    assert [v["name"] for v in views] == ["sagittal", "axial1", "axial2", "axial3"]
    pictures = tmp_path / "qc" / "case"
    row, col = bright_centre(pictures / "axial3.png")
    assert row < 0.5 and col < 0.5
    overlay = sitk.GetArrayFromImage(sitk.ReadImage(str(pictures / "axial2_seg.png")))
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(pictures / "axial2.png")))
    coloured = np.any(overlay != plain, axis=2)
    rows, cols = np.nonzero(coloured)
    assert 0.3 < rows.mean() / coloured.shape[0] < 0.7 and 0.3 < cols.mean() / coloured.shape[1] < 0.7
    sagittal = sitk.GetArrayFromImage(sitk.ReadImage(str(pictures / "sagittal.png")))
    height_mm, width_mm = 40 * 1.5, 40 * 0.8  # true proportions: square pixels in mm
    assert sagittal.shape[0] / sagittal.shape[1] == pytest.approx(height_mm / width_mm, rel=0.02)


def test_sagittal_view_puts_superior_up_and_anterior_left(tmp_path):
    z, y, x = np.mgrid[0:30, 0:30, 0:30]
    cord = (y - 15) ** 2 + (x - 15) ** 2 <= 9
    volume = np.where(cord, 100.0, 20.0) + (x % 2)
    volume[24:, 24:, :] = 1000.0  # superior and anterior, across all x
    canonical = sitk.GetImageFromArray(volume.astype(np.float32))
    canonical.SetDirection(LAS)
    mask = sitk.GetImageFromArray(cord.astype(np.uint8))
    mask.CopyInformation(canonical)
    stored, stored_mask = sitk.DICOMOrient(canonical, "RPI"), sitk.DICOMOrient(mask, "RPI")
    render_case_views(fake_finished_case(tmp_path / "case", stored, stored_mask), tmp_path, "case")
    row, col = bright_centre(tmp_path / "qc" / "case" / "sagittal.png")
    assert row < 0.3 and col < 0.3


# --- the page -----------------------------------------------------------------------------------


def test_page_renders_every_case_and_keyboard_marks_export_to_csv(batch_out, tmp_path):
    page = batch_out / "qc" / "index.html"
    dom = browse(page, tmp_path / "profile", "--dump-dom", query="?selftest=keys")
    result = json.loads(dom_text(dom, "selftest-result"))
    order = [c["case_id"] for c in json.loads((batch_out / "cohort.json").read_text(encoding="utf-8"))["cases"]]
    assert [visit["id"] for visit in result["visits"]] == order == ["broken", "mt0", "t2"]
    for visit in result["visits"]:
        expected = 0 if visit["id"] == "broken" else 4  # mid-sagittal + 3 axial; none for a failed case
        assert visit["images"] == visit["loaded"] == expected, visit
        assert all(width > 0 for width in visit["widths"])
    marks = {case_id: entry["mark"] for case_id, entry in result["stored"].items()}
    assert marks == {"broken": "Pass", "mt0": "Fail", "t2": "Artifact"}  # p, f, a in case order
    assert (result["afterMarking"], result["afterUp"], result["afterDown"]) == (2, 1, 2)
    assert result["overlayOff"] and result["rows"] == 3
    exported = list(csv.DictReader(io.StringIO(dom_text(dom, "selftest-csv"))))
    assert [(row["case_id"], row["qc"]) for row in exported] == list(marks.items())
    assert exported[0]["status"] == "failed" and exported[2]["mean_csa_mm2"] != ""


def test_page_is_self_contained(batch_out):
    page = (batch_out / "qc" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert "the file is truncated or corrupt" in page  # the failed case carries its error


def test_qc_command_rebuilds_the_report_and_its_pictures(batch_out, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(batch_out, out)
    shutil.rmtree(out / "qc")
    assert main(["qc", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "qc" / "index.html")
    for case_id in ("t2", "mt0"):
        names = sorted(p.name for p in (out / "qc" / case_id).glob("*.png"))
        assert len(names) == 8  # 4 views, each plain and with the mask overlay
    assert '"id": "broken"' in (out / "qc" / "index.html").read_text(encoding="utf-8")


def test_screenshot_shows_the_selected_case(batch_out, tmp_path):
    """A picture for people (kept under the test's tmp folder); here we only check it is a real page."""
    shot = tmp_path / "qc.png"
    page = batch_out / "qc" / "index.html"
    browse(page, tmp_path / "profile", "--window-size=1400,900", f"--screenshot={shot}", query="#t2")
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))
    assert image.shape[:2] == (900, 1400) and image.std() > 10
