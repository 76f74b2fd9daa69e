"""Fixtures for the Slicer module's tests: a real MRML scene (slicer-core) and real scans.

``mrml_app.boot()`` does the bootstrap (see docs/slicer-module.md); the module directory goes on
sys.path as in Slicer, so ``import SpineAILib`` and ``import spineai`` resolve as they do there.
"""

import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "SpineAI"
sys.path.insert(0, str(MODULE_DIR))

import mrml_app  # noqa: E402


@pytest.fixture
def mrml():
    """A fresh scene with the module logics, installed as slicer.mrmlScene / slicer.modules / slicer.app."""
    return mrml_app.boot()


@pytest.fixture(scope="session")
def cached_engine():
    """The real engine, run once per distinct input and task in the session (inference is the slow part).

    Same signature as SpineAILogic's ``engine``: inject it with ``SpineAILogic(engine=cached_engine)``.
    """
    from spineai.pipeline import segment

    results = {}

    def run(image, task, device, progress=None, should_cancel=None, source="input image"):
        key = (task, image.GetSize(), image.GetOrigin(), image.GetDirection(), hash(image_bytes(image)))
        if key not in results:
            results[key] = segment(image, task, device, progress=progress, should_cancel=should_cancel, source=source)
        return results[key]

    return run


def image_bytes(image) -> bytes:
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image).tobytes()


@pytest.fixture
def t2_path(data_dir) -> Path:
    return data_dir / "sct-testing" / "t2" / "t2.nii.gz"


@pytest.fixture
def t2_volume(mrml, t2_path):
    """The real cervical T2, loaded by Slicer's own reader into a patient/study in the subject hierarchy."""
    return mrml_app.loadIntoStudy(t2_path)
