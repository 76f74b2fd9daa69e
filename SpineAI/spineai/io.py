"""Reading scans and writing results.

``read_image`` accepts NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and a
folder holding one DICOM series, and refuses anything SpineAI cannot analyse with an
``InputError`` that names the file and the problem. ``OutputSet`` writes a group of result files
all-or-nothing: each goes to a hidden temporary name first and is renamed into place only when
every file of the group has been written, so a failure never leaves half a result behind.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_stem(path) -> str:
    """File name without its image extension: 'sub-01_T2w.nii.gz' -> 'sub-01_T2w'."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_image(path) -> sitk.Image:
    """Read a 3D scalar scan and check it is usable; raise ``InputError`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    image = _read_dicom_series(path) if path.is_dir() else _read_file(path)
    check_volume(image, path)
    return image


def _read_file(path: Path) -> sitk.Image:
    if not path.name.lower().endswith(IMAGE_SUFFIXES):
        raise InputError(path, "not a supported image format (NIfTI, NRRD, MHA/MHD or a DICOM series folder)")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        message = _itk_message(error)
        if "spacing" in message.lower():
            raise InputError(path, f"invalid voxel spacing ({message})") from None
        raise InputError(path, f"cannot read the image, the file is corrupt or truncated ({message})") from None
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_complete(path)
    _check_declared_spacing(path)
    return image


def _check_declared_spacing(path: Path) -> None:
    """ITK silently turns a negative spacing in a header into a flipped axis; a header declaring one
    is almost always a converter bug that would mirror the analysis, so refuse it."""
    declared = _declared_spacing(path)
    if declared is not None and any(s <= 0 for s in declared):
        raise InputError(path, f"invalid voxel spacing {tuple(declared)} in the header; every spacing must be positive")


def _declared_spacing(path: Path) -> list[float] | None:
    name = path.name.lower()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        header = handle.read(4096)
    if name.endswith((".nii", ".nii.gz")):
        sizeof_hdr = struct.unpack("<i", header[:4])[0]
        order = "<" if sizeof_hdr in (348, 540) else ">"
        if struct.unpack(order + "i", header[:4])[0] == 348:
            return list(struct.unpack(order + "3f", header[80:92]))
        return list(struct.unpack(order + "3d", header[112:136]))
    text = header.decode("latin-1")
    match = re.search(r"^(?:ElementSpacing|spacings)\s*[=:]\s*([^\n]+)", text, re.MULTILINE)
    if not match:
        return None
    values = [v for v in match.group(1).split() if v.lower() != "nan"]
    return [float(v) for v in values]


def _check_nifti_complete(path: Path) -> None:
    """ITK reads a truncated NIfTI without complaint (the missing voxels come back as zeros),
    so compare the data length the header promises with what the file holds."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(540)
            available = len(header) + sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 22), b""))
    except (EOFError, OSError, zlib.error):
        raise InputError(path, "the file is truncated or corrupt (compressed stream ends early)") from None
    expected = _nifti_expected_bytes(header)
    if expected is not None and available < expected:
        raise InputError(
            path, f"the file is truncated: the header announces {expected} bytes, the file holds {available}"
        )


def _nifti_expected_bytes(header: bytes) -> int | None:
    """vox_offset + voxels * bytes per voxel, from a NIfTI-1 or NIfTI-2 header (None if unrecognised)."""
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = struct.unpack(order + "f", header[108:112])[0]
            break
        if size == 540:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    voxels = int(np.prod([max(d, 1) for d in dims[1 : dims[0] + 1]], dtype=np.int64))
    return int(offset) + voxels * bitpix // 8


def _read_dicom_series(folder: Path) -> sitk.Image:
    files = dicom_series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in files])
    try:
        return reader.Execute()
    except RuntimeError as error:
        for path in files:  # name the culprit: read the slices one by one (only on this error path)
            try:
                sitk.ReadImage(str(path))
            except RuntimeError:
                raise InputError(path, f"cannot read this DICOM slice ({_itk_message(error)})") from None
        raise InputError(folder, f"cannot read the DICOM series ({_itk_message(error)})") from None


DICOM_MARKER = b"DICM"  # bytes 128-131 of every DICOM Part 10 file
PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian
SLICE_GAP_TOLERANCE = 0.05  # a gap may differ from the usual slice spacing by 5 % (rounded positions)


def dicom_series_files(folder) -> list[Path]:
    """The files of the one DICOM series in ``folder``, in SimpleITK's slice order, checked to form one volume.

    Files that are not DICOM images (notes, ``.DS_Store``, DICOMDIR, structured reports) are ignored.
    ``InputError`` when the folder holds no series or several (listed), when a DICOM image file in
    it cannot be read, or when the slices differ in size or orientation or are unevenly spaced (a
    missing or duplicated slice): SimpleITK would otherwise silently build a distorted volume.
    """
    folder = Path(folder)
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise InputError(folder, "folder holds no DICOM series")
    if len(series_ids) > 1:
        raise InputError(
            folder,
            f"folder holds {len(series_ids)} DICOM series; give the folder of one series: "
            + "; ".join(_describe_series(folder, series_id) for series_id in series_ids),
        )
    files = [Path(name) for name in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])]
    _refuse_unreadable_dicom_images(folder, files)
    _check_slice_geometry(folder, files)
    return files


def series_description(path) -> str:
    """The DICOM series description (0008,103E) of a series folder, '' for a file or when absent."""
    folder = Path(path)
    if not folder.is_dir():
        return ""
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(series_ids) != 1:
        return ""
    reader = sitk.ImageFileReader()
    reader.SetFileName(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])[0])
    reader.ReadImageInformation()
    return reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""


def _describe_series(folder: Path, series_id: str) -> str:
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.ReadImageInformation()
    description = reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""
    return f"{series_id} ({len(files)} files{', ' + repr(description) if description else ''})"


def _refuse_unreadable_dicom_images(folder: Path, series_files: list[Path]) -> None:
    """GDCM silently leaves out a slice it cannot parse and the rest of the volume closes the gap,
    so a DICOM file holding pixel data that did not make it into the series is an error."""
    in_series = {path.resolve() for path in series_files}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.resolve() not in in_series and _is_dicom_image_file(path):
            raise InputError(path, "DICOM image that cannot be read (corrupt or truncated); remove or re-export it")


def _is_dicom_image_file(path: Path) -> bool:
    """A DICOM Part 10 file with a pixel data element (DICOMDIR, SR and presentation states have none)."""
    data = path.read_bytes()
    return data[128:132] == DICOM_MARKER and any(tag in data for tag in PIXEL_DATA_TAGS)


def _check_slice_geometry(folder: Path, files: list[Path]) -> None:
    """Every slice the same size and orientation, and evenly spaced along the slice normal."""
    headers = [_slice_header(path) for path in files]
    size = Counter(header[0] for header in headers).most_common(1)[0][0]  # the odd slice is the minority
    direction = Counter(tuple(header[1].round(4).ravel()) for header in headers).most_common(1)[0][0]
    direction = np.reshape(direction, (3, 3))
    for path, (other_size, other_direction, _) in zip(files, headers, strict=True):
        if other_size != size:
            raise InputError(
                path, f"slice of size {other_size[0]}x{other_size[1]} in a series of {size[0]}x{size[1]} slices"
            )
        if not np.allclose(other_direction[:, :2], direction[:, :2], atol=1e-4):
            raise InputError(path, "slice oriented differently from the rest of the series (a localizer?)")
    if len(files) > 2:
        positions = np.array([origin @ direction[:, 2] for _, _, origin in headers])
        _check_even_spacing(folder, files, positions)


def _slice_header(path: Path) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """(columns, rows), direction matrix (columns = axes) and origin of one DICOM file, pixels unread."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(path, f"cannot read this DICOM slice ({_itk_message(error)})") from None
    direction = np.array(reader.GetDirection()).reshape(3, 3)
    return tuple(reader.GetSize()[:2]), direction, np.array(reader.GetOrigin())


def _check_even_spacing(folder: Path, files: list[Path], positions: np.ndarray) -> None:
    gaps = np.abs(np.diff(positions))
    usual = float(np.median(gaps))
    if usual <= 0:
        raise InputError(folder, "the slices of the series all lie at the same position; it is not a 3D volume")
    for k in np.flatnonzero(np.abs(gaps - usual) > SLICE_GAP_TOLERANCE * usual):
        raise InputError(
            folder,
            f"slices unevenly spaced: {gaps[k]:.3g} mm between {files[k].name} and {files[k + 1].name}, "
            f"{usual:.3g} mm elsewhere (a slice is missing, unreadable or duplicated)",
        )


def check_volume(image: sitk.Image, source) -> None:
    """Raise ``InputError`` unless ``image`` is a finite, non-empty 3D scalar volume with positive spacing."""
    if image.GetDimension() != 3:
        raise InputError(source, f"{image.GetDimension()}D image; SpineAI needs a 3D volume")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            source,
            f"{image.GetNumberOfComponentsPerPixel()} values per voxel; SpineAI needs a scalar (greyscale) image",
        )
    if min(image.GetSize()) < 2:
        raise InputError(source, f"a single slice (size {image.GetSize()}); SpineAI needs a 3D volume")
    spacing = np.asarray(image.GetSpacing())
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(source, f"invalid voxel spacing {tuple(spacing)}; every spacing must be positive")
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(source, f"{int(np.count_nonzero(~np.isfinite(array)))} voxels are NaN or infinite")
    if array.min() == array.max():
        raise InputError(source, f"empty image: every voxel is {array.flat[0]}")


def _itk_message(error: Exception) -> str:
    """The informative line of an ITK exception (it also carries source file and line numbers)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    line = (errors or lines or [type(error).__name__])[-1]
    return re.sub(r"\(0x[0-9a-fA-F]+\)", "", line).replace("  ", " ")


class OutputSet:
    """Write several result files into one folder, all or nothing.

    >>> with OutputSet(out_dir) as out:
    ...     out.write_image(mask, "scan_cord_seg.nii.gz")
    ...     out.write_json(sidecar, "scan_cord_seg.json")

    On leaving the block without an exception every file is renamed into place; after an
    exception the temporary files are removed and existing results are left untouched.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._pending: list[tuple[Path, Path]] = []

    def __enter__(self) -> OutputSet:
        self._created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            for temporary, final in self._pending:
                os.replace(temporary, final)
        else:
            for temporary, _ in self._pending:
                temporary.unlink(missing_ok=True)
            if self._created_folder and not any(self.folder.iterdir()):
                self.folder.rmdir()

    def path(self, name: str) -> Path:
        return self.folder / name

    def _temporary(self, name: str) -> Path:
        # Keep the real extension last so SimpleITK picks the right writer.
        temporary = self.folder / f".partial-{os.getpid()}-{name}"
        self._pending.append((temporary, self.folder / name))
        return temporary

    def write_image(self, image: sitk.Image, name: str) -> Path:
        sitk.WriteImage(image, str(self._temporary(name)), useCompression=True)
        return self.path(name)

    def write_json(self, data: dict, name: str) -> Path:
        self._temporary(name).write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
        return self.path(name)

    def write_bytes(self, data: bytes, name: str) -> Path:
        """A file already encoded in memory (a DICOM SEG or SR)."""
        self._temporary(name).write_bytes(data)
        return self.path(name)

    def write_csv(self, rows: list[dict], name: str, columns: list[str] | None = None) -> Path:
        columns = columns or (list(rows[0]) if rows else [])
        with open(self._temporary(name), "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return self.path(name)


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
