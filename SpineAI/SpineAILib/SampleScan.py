"""The bundled sample scan in Slicer's Sample Data module (category "SpineAI").

The scan ships with the extension (``spineai/sample/t2.nii.gz``, a real cervical sagittal T2 from the
Spinal Cord Toolbox test data, MIT licence), so nothing is downloaded: the source's custom
downloader loads the file in place. Its file URI and SHA-256 are given too, so the source is
complete as Sample Data describes one (and a plain download of the URI is checked).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CATEGORY = "SpineAI"
SAMPLE_NAME = "SpineAI cervical T2"  # the button's text in the Sample Data module
NODE_NAME = "SpineAI sample T2"
THUMBNAIL = Path(__file__).resolve().parent.parent / "Resources" / "Icons" / "SpineAISampleT2.png"


def samplePath() -> Path:
    from spineai.sample import T2

    return T2


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def loadSample(source=None):
    """Load the bundled scan as the volume node NODE_NAME; return it (Sample Data's custom downloader)."""
    import slicer.util

    return slicer.util.loadVolume(str(samplePath()), {"name": NODE_NAME})


def sampleDataSourceArguments() -> dict:
    """Keyword arguments for ``SampleData.SampleDataLogic.registerCustomSampleDataSource``."""
    path = samplePath()
    return {
        "category": CATEGORY,
        "sampleName": SAMPLE_NAME,
        "uris": path.as_uri(),
        "fileNames": path.name,
        "nodeNames": NODE_NAME,
        "checksums": f"SHA256:{sha256(path)}",
        "thumbnailFileName": str(THUMBNAIL),
        "loadFileType": "VolumeFile",
        "customDownloader": loadSample,
    }


def registerSampleData() -> None:
    """Called when Slicer has started (``startupCompleted``): add the source to the Sample Data module."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(**sampleDataSourceArguments())
