"""Shared fixtures: the real data folder and the bundled sample."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """$SPINEAI_DATA, else the shared/data folder beside the repository (always present in CI)."""
    return Path(os.environ.get("SPINEAI_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").exists():
        pytest.fail(f"real test data not found at {path}; set SPINEAI_DATA")
    return path
