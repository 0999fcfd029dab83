"""Shared fixtures: headless Qt, the real data beside the repository, small synthetic studies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CXR_SHARED_DATA", REPO.parent / "shared" / "data"))


def _require_or_skip(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("CXR_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"CXR_REQUIRE_SHARED_DATA=1 but {path} is missing")
    pytest.skip(f"real data not available at {path}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require_or_skip(SHARED_DATA)


@pytest.fixture(scope="session")
def dicom_dir(shared_data: Path) -> Path:
    return _require_or_skip(shared_data / "dicom")


@pytest.fixture(scope="session")
def nih_sample(shared_data: Path) -> Path:
    return _require_or_skip(shared_data / "nih14-sample")
